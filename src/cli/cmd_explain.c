/* vlmn explain: Fig. 10 explanations of selected neurons by an LLM (paper 3.3, A.1),
 * stored in RUN's explanations table; resumable (answered neurons are never asked
 * again, answered requests are cached). */
#include "cli.h"
#include "llm_cli.h"

#include <string.h>

#include "vlmn/pipeline.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_explain = {
    "explain",
    "explain neurons with an LLM from their top or random samples (paper 3.3, Fig. 10)",
    "vlmn explain RUN --neurons SPEC --explainer MODEL [--sampling top|random] [--examples FILE]\n"
    "             [--images modulated|raw] [--kind visual|text|multimodal] [--random-seed N]\n"
    "             [--no-cache] [-q] [LLM options]\n"
    "  Needs the samples traced (`vlmn trace RUN --neurons SPEC --samples top:1,5,9,13,17`;\n"
    "  for --sampling random the command it prints). Prints one line per neuron:\n"
    "  LAYER:NEURON<TAB>kind<TAB>ok|failed<TAB>explanation or reason; totals on stderr.\n"
    "  --neurons SPEC     neuron SPEC (docs/trace.md), e.g. 'label=text,p>=0.8,random:800:1'\n"
    "  --explainer MODEL  model name sent to the server (e.g. gpt-4o)\n"
    "  --sampling S       top: ranks 1,5,9,13,17 (default); random: 5 random dataset samples\n"
    "  --examples FILE    context examples (default: the shipped set of 8, docs/explain.md)\n"
    "  --images M         modulated (default) or raw (the B.3 ablation)\n"
    "  --kind K           prompt every neuron as this type instead of its classification label\n"
    "  --random-seed N    seed of --sampling random (1)\n"
    "  --no-cache         do not use RUN/llm-cache.sqlite\n"
    "  -q                 no per-item failure lines on stderr\n" LLM_CLI_USAGE,
    run,
};

static int run(int argc, char **argv)
{
    vlmn_xrun_opts o;
    vlmn_xrun_opts_default(&o);
    const char *v;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = llm_cli_opt(argc, argv, &i, &o.llm, &o.prompt))) {
            if (r < 0) return cli_usage(&vlmn_cmd_explain);
        } else if ((r = cli_opt(argc, argv, &i, "neurons", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_explain);
            o.neurons = v;
        } else if ((r = cli_opt(argc, argv, &i, "explainer", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_explain);
            o.prompt.model = v;
        } else if ((r = cli_opt(argc, argv, &i, "sampling", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_explain);
            o.sampling = v;
        } else if ((r = cli_opt(argc, argv, &i, "examples", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_explain);
            o.examples_path = v;
        } else if ((r = cli_opt(argc, argv, &i, "images", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_explain);
            o.images = v;
        } else if ((r = cli_opt(argc, argv, &i, "kind", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_explain);
            if (vlmn_xkind_parse(v, &o.kind)) return cli_errorf("explain", 2, "--kind %s: visual, text or multimodal", v);
            o.force_kind = true;
        } else if ((r = cli_opt(argc, argv, &i, "random-seed", 0, &v))) {
            long s;
            if (r < 0 || cli_parse_long(v, 0, 0x7fffffffL, &s)) return cli_usage(&vlmn_cmd_explain);
            o.random_seed = (uint64_t)s;
        } else if (cli_flag(argv, i, "no-cache", 0)) {
            o.no_cache = true;
        } else if (cli_flag(argv, i, "quiet", 'q')) {
            quiet = true;
        } else if (cli_unknown_option(&vlmn_cmd_explain, argv, i)) {
            return 2;
        } else if (!o.run_dir) {
            o.run_dir = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_explain);
        }
    }
    if (!o.run_dir || !o.neurons || !o.prompt.model) return cli_usage(&vlmn_cmd_explain);
    if (strcmp(o.sampling, "top") && strcmp(o.sampling, "random"))
        return cli_errorf("explain", 2, "--sampling %s: top or random", o.sampling);
    if (strcmp(o.images, "modulated") && strcmp(o.images, "raw"))
        return cli_errorf("explain", 2, "--images %s: modulated or raw", o.images);
    o.progress = quiet ? NULL : stderr;
    o.out = stdout;
    vlmn_xrun_summary s;
    vlmn_status st = vlmn_explain_run(&o, &s);
    char line[600];
    vlmn_llm_stats_line(&s.llm, line, sizeof line);
    fprintf(stderr,
            "explain: %lld neurons: %lld explained now, %lld failed, %lld already explained, %lld skipped "
            "(unknown/unclassified); %s\n",
            (long long)s.neurons, (long long)s.answered, (long long)s.failed, (long long)s.already,
            (long long)s.skipped, line);
    if (st) return cli_fail("explain", st);
    if (fflush(stdout)) return cli_errorf("explain", 1, "stdout: write failed");
    return s.failed ? 1 : 0;
}
