/* vlmn stats: the paper's statistics over a classified run (Figures 5-7, Table 3) as
 * text tables or one JSON object. Reads the classification tables only. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "vlmn/analysis.h"
#include "vlmn/run.h"
#include "vlmn/pipeline.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_stats = {
    "stats",
    "histograms, class distribution and per-layer counts of neuron types (paper 4.3-4.4)",
    "vlmn stats RUN [--top-frac 0.03] [--json]\n"
    "  Needs `vlmn classify RUN` first. Prints Fig. 5 (histograms of p_visual, p_text,\n"
    "  p_multimodal, p_unknown in bins of 0.1, share above 0.8), Fig. 6 (neurons per label),\n"
    "  Fig. 7 (per-layer counts of the top fraction of neurons ranked by each type's\n"
    "  probability) and Table 3 (neurons with p_unknown >= 0.9 .. 0.6).\n"
    "  --top-frac F  fraction of all neurons taken per type for Fig. 7, in (0, 1] (0.03)\n"
    "  --json        one JSON object instead of text tables\n"
    "  --table2      the paper's Table 2 instead: mean explanation score (Pearson, `vlmn score`)\n"
    "                per neuron type and sampling, 95% bootstrap interval, n scored / undefined\n"
    "  --bootstrap N resamples of the interval (1000)\n",
    run,
};

static int run(int argc, char **argv)
{
    const char *dir = NULL, *v;
    double frac = 0.03;
    int json = 0, table2 = 0;
    long n_boot = 1000;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_opt(argc, argv, &i, "top-frac", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &frac)) return cli_usage(&vlmn_cmd_stats);
        } else if (cli_flag(argv, i, "json", 0)) {
            json = 1;
        } else if (cli_flag(argv, i, "table2", 0)) {
            table2 = 1;
        } else if ((r = cli_opt(argc, argv, &i, "bootstrap", 0, &v))) {
            if (r < 0 || cli_parse_long(v, 2, 1000000, &n_boot)) return cli_usage(&vlmn_cmd_stats);
        } else if (cli_unknown_option(&vlmn_cmd_stats, argv, i)) {
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_stats);
        }
    }
    if (!dir) return cli_usage(&vlmn_cmd_stats);
    if (!(frac > 0 && frac <= 1)) return cli_errorf("stats", 2, "--top-frac %g: must be in (0, 1]", frac);
    if (table2) {
        vlmn_status st2 = vlmn_table2(dir, (int)n_boot, json, stdout);
        if (!st2 && fflush(stdout) != 0) st2 = vlmn_error(VLMN_E_IO, "stdout: write failed");
        return st2 ? cli_fail("stats", st2) : 0;
    }
    vlmn_run *r = NULL;
    vlmn_classification *c = NULL;
    vlmn_stats *s = NULL;
    vlmn_status st;
    if (!(st = vlmn_run_open(dir, &r)) && !(st = vlmn_classification_load(vlmn_run_db(r), &c))) {
        if (c->n_layers != vlmn_run_n_layers(r) || c->n_ff != vlmn_run_n_ff(r))
            st = vlmn_error(VLMN_E_MISMATCH, "%s: classification shape differs from the run: classify it again", dir);
        else
            st = vlmn_stats_compute(c, frac, &s);
    }
    if (!st)
        st = json ? vlmn_stats_print_json(stdout, s) : vlmn_stats_print_text(stdout, s);
    vlmn_stats_free(s);
    vlmn_classification_free(c);
    vlmn_run_close(r);
    if (!st && fflush(stdout) != 0) st = vlmn_error(VLMN_E_IO, "stdout: write failed");
    return st ? cli_fail("stats", st) : 0;
}
