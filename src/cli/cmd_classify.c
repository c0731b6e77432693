/* vlmn classify: classify every neuron of a recorded run from its stored top-N state
 * (never runs the model) and write the classification tables into RUN/run.sqlite. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "vlmn/analysis.h"
#include "vlmn/run.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_classify = {
    "classify",
    "classify neurons as visual/text/multimodal/unknown (paper 3.2)",
    "vlmn classify RUN [--tv 2] [--nv 4] [--tt 3] [--nt 2] [--normalize floor|continuous]\n"
    "  For each neuron and each of its top-N samples, activations are normalised to 0..10 by\n"
    "  the neuron's global maximum; the sample is visual-activated when more than NV image\n"
    "  tokens exceed TV, text-activated when more than NT text tokens exceed TT (Table 1).\n"
    "  p_visual..p_unknown are the fractions over the top-N samples; the label is the most\n"
    "  probable type (ties: unknown > multimodal > text > visual). Results replace the\n"
    "  `classification` and `classification_params` tables of RUN/run.sqlite.\n"
    "  --tv, --tt   thresholds in [0, 10] (defaults 2 and 3)\n"
    "  --nv, --nt   counts in [0, 7] (defaults 4 and 2; the run keeps 8 activations per modality)\n"
    "  --normalize  floor (default, min(10, floor(10 a / max))) or continuous (10 a / max)\n",
    run,
};

static int run(int argc, char **argv)
{
    const char *dir = NULL, *v;
    vlmn_classify_params p;
    vlmn_classify_defaults(&p);
    for (int i = 1; i < argc; i++) {
        int r;
        long n;
        if ((r = cli_opt(argc, argv, &i, "tv", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &p.t_v)) return cli_usage(&vlmn_cmd_classify);
        } else if ((r = cli_opt(argc, argv, &i, "tt", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &p.t_t)) return cli_usage(&vlmn_cmd_classify);
        } else if ((r = cli_opt(argc, argv, &i, "nv", 0, &v))) {
            if (r < 0 || cli_parse_long(v, -1000, 1000, &n)) return cli_usage(&vlmn_cmd_classify);
            p.n_v = (int)n;
        } else if ((r = cli_opt(argc, argv, &i, "nt", 0, &v))) {
            if (r < 0 || cli_parse_long(v, -1000, 1000, &n)) return cli_usage(&vlmn_cmd_classify);
            p.n_t = (int)n;
        } else if ((r = cli_opt(argc, argv, &i, "normalize", 0, &v))) {
            int m = r < 0 ? -1 : vlmn_norm_parse(v);
            if (m < 0) return cli_errorf("classify", 2, "--normalize must be floor or continuous");
            p.norm = (vlmn_norm_mode)m;
        } else if (cli_unknown_option(&vlmn_cmd_classify, argv, i)) {
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_classify);
        }
    }
    if (!dir) return cli_usage(&vlmn_cmd_classify);
    vlmn_status st = vlmn_classify_check(&p);
    if (st) return cli_errorf("classify", 2, "%s", vlmn_errmsg());
    vlmn_run *r = NULL;
    vlmn_classification *c = NULL;
    if ((st = vlmn_run_open(dir, &r)) || (st = vlmn_classify_run(r, &p, &c)) ||
        (st = vlmn_classification_save(vlmn_run_db(r), c))) {
        vlmn_classification_free(c);
        vlmn_run_close(r);
        return cli_fail("classify", st);
    }
    int64_t n = (int64_t)c->n_layers * c->n_ff, lab[VLMN_NT_COUNT] = {0};
    for (int64_t i = 0; i < n; i++) lab[c->neurons[i].label]++;
    printf("classified %lld neurons (%d layers x %d): visual %lld, text %lld, multimodal %lld, unknown %lld\n",
           (long long)n, c->n_layers, c->n_ff, (long long)lab[0], (long long)lab[1], (long long)lab[2],
           (long long)lab[3]);
    vlmn_classification_free(c);
    vlmn_run_close(r);
    return 0;
}
