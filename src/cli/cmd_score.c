/* vlmn score: Pearson scores of the stored simulations (paper A.3), or the detection /
 * fuzzing scores of the stored explanations by an LLM (after Delphi), into RUN's scores
 * table; `vlmn stats RUN --table2` aggregates them as Table 2. */
#include "cli.h"
#include "llm_cli.h"

#include <string.h>

#include "vlmn/pipeline.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_score = {
    "score",
    "score explanations: Pearson r of simulated vs real activations (paper A.3), or detection/fuzzing AUROC",
    "vlmn score RUN [--scorer pearson|detection|fuzzing --scorer-model MODEL [--mode json|logprob|plain]\n"
    "               [--negatives random:K:SEED] [--active-frac F] [--shuffle-seed N]\n"
    "               [--explainer MODEL] [--sampling S] [--no-cache] [-q] [LLM options]]\n"
    "  pearson (default, local): visual neurons: r over the image tokens of the simulated samples,\n"
    "  text neurons: over their text tokens, multi-modal: the mean of both (concatenated over the\n"
    "  5 samples). Constant real activations give an undefined score (NULL, with a note); a\n"
    "  constant simulation of varying activations scores 0.\n"
    "  detection: the scorer model sees the explanation and, shuffled, the top ranks 3,7,11,15,19\n"
    "  and as many random samples the neuron does not fire on (text; visual and multi-modal\n"
    "  neurons: with the raw image) and answers 0/1 per sample; score = AUROC, and accuracy.\n"
    "  fuzzing: the same top samples with their active text tokens highlighted <<tok>>, and copies\n"
    "  with as many random tokens highlighted; the model answers whether the highlights match\n"
    "  the explanation (visual neurons are skipped). Resumable: scored explanations are skipped.\n"
    "  --scorer-model MODEL  LLM that answers (stored as the scores' simulator)\n"
    "  --mode M              json (default; response_format json_schema), logprob (AUROC of\n"
    "                        P(1)/(P(0)+P(1)) from top_logprobs) or plain (a list in the text:\n"
    "                        servers with neither)\n"
    "  --negatives SPEC      random samples the negatives come from (random:10:1); traced with\n"
    "                        `vlmn trace RUN --neurons SPEC --samples random:10:1`\n"
    "  --active-frac F       a negative stays below F x the neuron's max; a highlighted token\n"
    "                        reaches F x its sample's text max (0.5)\n"
    "  --shuffle-seed N      order of the examples and the fuzzed positions (1)\n"
    "  --explainer MODEL, --sampling S   only explanations by this model / sampling\n"
    "  Then `vlmn stats RUN --table2`.\n" LLM_CLI_USAGE,
    run,
};

static int run(int argc, char **argv)
{
    vlmn_drun_opts o;
    vlmn_drun_opts_default(&o);
    const char *dir = NULL, *v, *scorer = "pearson", *mode = "json";
    bool quiet = false, llm_opts = false;
    long l;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = llm_cli_opt(argc, argv, &i, &o.x.llm, &o.x.prompt))) {
            if (r < 0) return cli_usage(&vlmn_cmd_score);
            llm_opts = true;
        } else if ((r = cli_opt(argc, argv, &i, "scorer", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_score);
            scorer = v;
        } else if ((r = cli_opt(argc, argv, &i, "scorer-model", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_score);
            o.x.prompt.model = v;
        } else if ((r = cli_opt(argc, argv, &i, "mode", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_score);
            mode = v;
        } else if ((r = cli_opt(argc, argv, &i, "negatives", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_score);
            o.negatives = v;
        } else if ((r = cli_opt(argc, argv, &i, "active-frac", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &o.active_frac)) return cli_usage(&vlmn_cmd_score);
        } else if ((r = cli_opt(argc, argv, &i, "shuffle-seed", 0, &v))) {
            if (r < 0 || cli_parse_long(v, 0, 0x7fffffffL, &l)) return cli_usage(&vlmn_cmd_score);
            o.shuffle_seed = (uint64_t)l;
        } else if ((r = cli_opt(argc, argv, &i, "explainer", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_score);
            o.x.filter_explainer = v;
        } else if ((r = cli_opt(argc, argv, &i, "sampling", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_score);
            o.x.filter_sampling = v;
        } else if (cli_flag(argv, i, "no-cache", 0)) {
            o.x.no_cache = true;
        } else if (cli_flag(argv, i, "quiet", 'q')) {
            quiet = true;
        } else if (cli_unknown_option(&vlmn_cmd_score, argv, i)) {
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_score);
        }
    }
    if (!dir) return cli_usage(&vlmn_cmd_score);
    if (!strcmp(scorer, "pearson")) {
        if (o.x.prompt.model || llm_opts)
            return cli_errorf("score", 2, "--scorer pearson is local: no --scorer-model or LLM options");
        int64_t n = 0, nu = 0;
        vlmn_status st = vlmn_score_run(dir, &n, &nu);
        if (st) return cli_fail("score", st);
        printf("score: %lld scores written (%lld undefined)\n", (long long)n, (long long)nu);
        return 0;
    }
    if (!strcmp(scorer, "detection")) o.scorer = VLMN_DS_DETECTION;
    else if (!strcmp(scorer, "fuzzing")) o.scorer = VLMN_DS_FUZZING;
    else return cli_errorf("score", 2, "--scorer %s: pearson, detection or fuzzing", scorer);
    if (!o.x.prompt.model) return cli_errorf("score", 2, "--scorer %s needs --scorer-model MODEL", scorer);
    if (!strcmp(mode, "json")) o.mode = VLMN_DMODE_JSON;
    else if (!strcmp(mode, "logprob")) o.mode = VLMN_DMODE_LOGPROB;
    else if (!strcmp(mode, "plain")) o.mode = VLMN_DMODE_PLAIN;
    else return cli_errorf("score", 2, "--mode %s: json, logprob or plain", mode);
    o.x.run_dir = dir;
    o.x.progress = quiet ? NULL : stderr;
    vlmn_xrun_summary s = {0};
    vlmn_status st = vlmn_dscore_run(&o, &s);
    char line[600];
    vlmn_llm_stats_line(&s.llm, line, sizeof line);
    fprintf(stderr,
            "score: %s: %lld explanations: %lld scored now, %lld failed, %lld already scored, %lld skipped; %s\n",
            scorer, (long long)s.neurons, (long long)s.answered, (long long)s.failed, (long long)s.already,
            (long long)s.skipped, line);
    if (st) return cli_fail("score", st);
    return s.failed ? 1 : 0;
}
