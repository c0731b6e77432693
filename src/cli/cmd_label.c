/* vlmn label: LLM-free labels of visual and multi-modal neurons (issue 15): the concepts
 * of a list whose CLIP (MaskCLIP) maps best match the neuron's traced activations,
 * Pearson r over the visual tokens, the K best kept in RUN/run.sqlite `labels`. */
#include "cli.h"

#include "vlmn/clip.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_label = {
    "label",
    "label visual/multi-modal neurons with the concepts whose CLIP maps match their activations",
    "vlmn label RUN --clip DIR [--concepts FILE] [--neurons SPEC] [--samples SPEC] [--top K]\n"
    "           [--as-explanations] [-q]\n"
    "  For every selected neuron classified visual or multimodal, the MaskCLIP map of each\n"
    "  concept (as `vlmn simulate --visual clip` simulates an explanation) on its traced\n"
    "  samples, Pearson r over the concatenated visual tokens against the real activations;\n"
    "  the K best go to the `labels` table and stdout (LAYER:NEURON<TAB>concept<TAB>r).\n"
    "  --clip DIR         a Hugging Face CLIPModel folder with tokenizer.json (docs/clip.md)\n"
    "  --concepts FILE    one concept per line ('#' comments); default: the shipped list\n"
    "                     (data/concepts.txt: COCO's 80 classes + common visual words)\n"
    "  --neurons SPEC     neuron SPEC (docs/trace.md); default: every traced neuron\n"
    "  --samples SPEC     sample SPEC (default top:3,7,11,15,19, the simulation ranks; with\n"
    "                     --as-explanations top:1,5,9,13,17, the explainer's); the pairs must\n"
    "                     be traced (`vlmn trace RUN --neurons SPEC --samples SPEC`)\n"
    "  --top K            concepts kept per neuron (default 5)\n"
    "  --as-explanations  also store each neuron's best concept as an explanation (explainer\n"
    "                     label:<clip folder name>, images clip, sampling top, or random for\n"
    "                     --samples random:5:SEED) for `vlmn simulate` / `score` / `stats\n"
    "                     --table2`; its samples must not be its scoring ranks 3,7,11,15,19\n"
    "  -q, --quiet        no summary on stderr\n",
    run,
};

static int run(int argc, char **argv)
{
    vlmn_label_opts o;
    vlmn_label_opts_default(&o);
    const char *v, *clip_dir = NULL, *concepts_path = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_opt(argc, argv, &i, "clip", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_label);
            clip_dir = v;
        } else if ((r = cli_opt(argc, argv, &i, "concepts", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_label);
            concepts_path = v;
        } else if ((r = cli_opt(argc, argv, &i, "neurons", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_label);
            o.neurons = v;
        } else if ((r = cli_opt(argc, argv, &i, "samples", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_label);
            o.samples = v;
        } else if ((r = cli_opt(argc, argv, &i, "top", 0, &v))) {
            long k;
            if (r < 0 || cli_parse_long(v, 1, 100000, &k)) return cli_errorf("label", 2, "--top: an integer >= 1");
            o.top_k = (int)k;
        } else if (cli_flag(argv, i, "as-explanations", 0)) {
            o.as_explanations = true;
        } else if (cli_flag(argv, i, "quiet", 'q')) {
            quiet = true;
        } else if (cli_unknown_option(&vlmn_cmd_label, argv, i)) {
            return 2;
        } else if (!o.run_dir) {
            o.run_dir = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_label);
        }
    }
    if (!o.run_dir) return cli_usage(&vlmn_cmd_label);
    if (!clip_dir) return cli_errorf("label", 2, "needs --clip DIR (a CLIPModel folder)");
    vlmn_concepts cs = {0};
    vlmn_clip *clip = NULL;
    vlmn_pool *pool = NULL;
    vlmn_clip_tokenize_fn tok_fn = NULL;
    void *tok_user = NULL;
    vlmn_label_summary s = {0};
    vlmn_status st = concepts_path ? vlmn_concepts_load(concepts_path, &cs) : vlmn_concepts_default(&cs);
    o.concepts = &cs;
    o.concepts_name = concepts_path;
    char name[512];
    vlmn_clip_dir_name(clip_dir, name, sizeof name);
    o.clip_name = name;
    o.out = stdout;
    /* cheap checks (run, classification, traces) before loading CLIP */
    if (!st) st = vlmn_label_check(&o);
    if (!st) st = vlmn_clip_tokenizer_open(clip_dir, &tok_fn, &tok_user);
    if (!st) st = vlmn_pool_create(0, &pool);
    if (!st) st = vlmn_clip_load(clip_dir, pool, VLMN_PREC_FAST, &clip);
    if (!st) st = vlmn_clip_tokenizer_check(clip_dir, tok_user, clip);
    if (!st) st = vlmn_label_run(&o, clip, tok_fn, tok_user, &s);
    vlmn_clip_free(clip);
    vlmn_pool_free(pool);
    if (tok_user) vlmn_clip_tokenizer_close(tok_user);
    vlmn_concepts_free(&cs);
    if (st) return cli_fail("label", st);
    if (!quiet)
        fprintf(stderr, "label: %lld neurons labelled with %s (%lld samples), %lld not visual/multi-modal: skipped\n",
                (long long)s.neurons, name, (long long)s.samples, (long long)s.skipped);
    if (!quiet && o.as_explanations)
        fprintf(stderr, "label: explanations label:%s: %lld written, %lld unchanged\n", name, (long long)s.expl_new,
                (long long)s.expl_same);
    return 0;
}
