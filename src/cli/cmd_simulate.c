/* vlmn simulate: Fig. 11 simulations of the stored explanations on the neurons' top
 * ranks 3,7,11,15,19 (paper A.2): text by an LLM (JSON or logprob mode), visual by a
 * visual simulator module (--visual NAME) when one is built in. Resumable. */
#include "cli.h"
#include "llm_cli.h"

#include <string.h>

#include "vlmn/pipeline.h"
#include "vlmn/segment.h"
#include "vlmn/clip.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_simulate = {
    "simulate",
    "simulate activations from explanations (paper A.2, Fig. 11) on top ranks 3,7,11,15,19",
    "vlmn simulate RUN --simulator MODEL [--mode json|logprob] [--explainer MODEL] [--sampling S]\n"
    "              [--examples FILE] [--visual NAME [--visual-arg ARG]] [--no-cache] [-q] [LLM options]\n"
    "  Simulates every stored explanation (text and multi-modal neurons: text tokens; with\n"
    "  --visual: visual and multi-modal neurons: image tokens) on the neuron's top ranks\n"
    "  3,7,11,15,19 (traced: `vlmn trace RUN --neurons SPEC --samples top:3,7,11,15,19`).\n"
    "  Returned tokens that differ from the real ones are counted (never shifted) and reported.\n"
    "  --simulator MODEL  text simulator model name\n"
    "  --mode M           json (default; response_format json_schema) or logprob (expected value\n"
    "                     over 0..10 from top_logprobs, servers that return logprobs)\n"
    "  --explainer MODEL, --sampling S   only explanations by this model / sampling\n"
    "  --visual NAME      a visual simulator module (segmenter, clip) instead of the text one\n"
    "  --segmenter-url URL   --visual segmenter: the server of vlmn's segmenter protocol\n"
    "                     (docs/segmenter.md; POST URL/segment); its key, if any, in\n"
    "                     $VLMN_SEGMENTER_KEY (or --api-key-env)\n"
    "  --box-threshold X, --text-threshold X   sent to the segmenter (0.35, 0.25)\n"
    "  --coverage half|fraction   a patch is 10 when >= half covered (default), or 10 x\n"
    "                     its covered fraction\n"
    "  --clip DIR         --visual clip: a Hugging Face CLIPModel folder (docs/clip.md):\n"
    "                     MaskCLIP patch similarities of the explanation, 10 * clamp(cos, 0, 1)\n"
    "  With --visual the stored simulator name is --simulator NAME, segmenter-RULE or\n"
    "  clip-FOLDERNAME.\n" LLM_CLI_USAGE,
    run,
};

static int run(int argc, char **argv)
{
    vlmn_xrun_opts o;
    vlmn_xrun_opts_default(&o);
    o.prompt.temperature = 0;
    o.prompt.max_tokens = 0;
    const char *v, *mode = "json", *visual = NULL, *visual_arg = NULL, *seg_url = NULL,
               *clip_dir = NULL;
    const char *default_key_env = o.llm.api_key_env;
    vlmn_segsim_opts so;
    vlmn_segsim_opts_default(&so);
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = llm_cli_opt(argc, argv, &i, &o.llm, &o.prompt))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
        } else if ((r = cli_opt(argc, argv, &i, "simulator", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            o.prompt.model = v;
        } else if ((r = cli_opt(argc, argv, &i, "mode", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            mode = v;
        } else if ((r = cli_opt(argc, argv, &i, "explainer", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            o.filter_explainer = v;
        } else if ((r = cli_opt(argc, argv, &i, "sampling", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            o.filter_sampling = v;
        } else if ((r = cli_opt(argc, argv, &i, "examples", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            o.examples_path = v;
        } else if ((r = cli_opt(argc, argv, &i, "visual", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            visual = v;
        } else if ((r = cli_opt(argc, argv, &i, "visual-arg", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            visual_arg = v;
        } else if ((r = cli_opt(argc, argv, &i, "clip", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            clip_dir = v;
        } else if ((r = cli_opt(argc, argv, &i, "segmenter-url", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            seg_url = v;
        } else if ((r = cli_opt(argc, argv, &i, "box-threshold", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &so.box_threshold) || !(so.box_threshold >= 0 && so.box_threshold <= 1))
                return cli_errorf("simulate", 2, "--box-threshold: a number in 0..1");
        } else if ((r = cli_opt(argc, argv, &i, "text-threshold", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &so.text_threshold) || !(so.text_threshold >= 0 && so.text_threshold <= 1))
                return cli_errorf("simulate", 2, "--text-threshold: a number in 0..1");
        } else if ((r = cli_opt(argc, argv, &i, "coverage", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_simulate);
            if (vlmn_seg_parse_rule(v, &so.rule)) return cli_errorf("simulate", 2, "--coverage %s: half or fraction", v);
        } else if (cli_flag(argv, i, "no-cache", 0)) {
            o.no_cache = true;
        } else if (cli_flag(argv, i, "quiet", 'q')) {
            quiet = true;
        } else if (cli_unknown_option(&vlmn_cmd_simulate, argv, i)) {
            return 2;
        } else if (!o.run_dir) {
            o.run_dir = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_simulate);
        }
    }
    if (!o.run_dir || (!o.prompt.model && !visual)) return cli_usage(&vlmn_cmd_simulate);
    if (!strcmp(mode, "json")) o.textsim = VLMN_TEXTSIM_JSON;
    else if (!strcmp(mode, "logprob")) o.textsim = VLMN_TEXTSIM_LOGPROB;
    else return cli_errorf("simulate", 2, "--mode %s: json or logprob", mode);
    o.progress = quiet ? NULL : stderr;
    vlmn_xexamples ex = {0};
    vlmn_simulator sim = {0};
    vlmn_status st;
    vlmn_clip *clip = NULL;
    vlmn_pool *pool = NULL;
    vlmn_clip_tokenize_fn tok_fn = NULL;
    void *tok_user = NULL;
    char simname[512];
    if (visual && !strcmp(visual, "segmenter")) {
        if (!seg_url) return cli_errorf("simulate", 2, "--visual segmenter needs --segmenter-url URL");
        o.llm.base_url = seg_url;
        /* never send an LLM provider's key to a segmenter by default */
        if (o.llm.api_key_env == default_key_env) o.llm.api_key_env = "VLMN_SEGMENTER_KEY";
        st = vlmn_segsim_create(&so, &sim);
        if (o.prompt.model) snprintf(simname, sizeof simname, "%s", o.prompt.model);
        else snprintf(simname, sizeof simname, "segmenter-%s", vlmn_seg_rule_name(so.rule));
    } else if (visual && !strcmp(visual, "clip")) {
        if (!clip_dir) return cli_errorf("simulate", 2, "--visual clip needs --clip DIR");
        st = vlmn_clip_tokenizer_open(clip_dir, &tok_fn, &tok_user);
        if (!st) st = vlmn_pool_create(0, &pool);
        if (!st) st = vlmn_clip_load(clip_dir, pool, VLMN_PREC_FAST, &clip);
        if (!st) st = vlmn_clip_tokenizer_check(clip_dir, tok_user, clip);
        if (!st) st = vlmn_clipsim_create(clip, tok_fn, tok_user, &sim);
        char base[400];
        vlmn_clip_dir_name(clip_dir, base, sizeof base);
        if (o.prompt.model) snprintf(simname, sizeof simname, "%s", o.prompt.model);
        else snprintf(simname, sizeof simname, "clip-%s", base);
    } else if (visual) {
        st = vlmn_visual_sim_create(visual, visual_arg, &o.llm, &sim);
        snprintf(simname, sizeof simname, "%s%s%s", visual, visual_arg ? ":" : "", visual_arg ? visual_arg : "");
    } else {
        st = o.examples_path ? vlmn_xexamples_load(o.examples_path, &ex) : vlmn_xexamples_default(&ex);
        if (!st) st = vlmn_textsim_create(o.textsim, &ex, &o.prompt, &sim);
        snprintf(simname, sizeof simname, "%s", o.prompt.model);
    }
    vlmn_xrun_summary s = {0};
    if (!st && clip) o.no_cache = true; /* local: nothing to cache */
    bool ran = !st; /* a simulator that could not be set up: its one-line error, no summary */
    if (!st) st = vlmn_simulate_run(&o, &sim, simname, &s);
    if (sim.free) sim.free(sim.self);
    vlmn_clip_free(clip);
    vlmn_pool_free(pool);
    if (tok_user) vlmn_clip_tokenizer_close(tok_user);
    vlmn_xexamples_free(&ex);
    char line[600];
    vlmn_llm_stats_line(&s.llm, line, sizeof line);
    if (ran)
        fprintf(stderr,
                "simulate: %lld explanations: %lld samples simulated now, %lld failed, %lld already simulated, %lld "
                "not traced/missing, %lld mismatched tokens; %s\n",
                (long long)s.neurons, (long long)s.answered, (long long)s.failed, (long long)s.already,
                (long long)s.missing, (long long)s.mismatches, line);
    if (st) return cli_fail("simulate", st);
    return s.failed ? 1 : 0;
}
