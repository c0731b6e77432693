/* `vlmn compare RUN_A RUN_B`: results-level agreement of two runs of the same dataset
 * (top lists, labels, p_*, the paper's statistics, global maxima) as tables or JSON. */
#include "cli.h"
#include "vlmn/compare.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_compare = {
    "compare",
    "agreement of two runs of one dataset: top lists, labels, p, statistics, maxima",
    "vlmn compare RUN_A RUN_B [--p-tol 0.02] [--top-frac 0.03] [--json]\n"
    "  Per layer and overall: mean Jaccard index of the neurons' top-N sample sets and the\n"
    "  share of identical lists, relative error of each neuron's global maximum and, when\n"
    "  both runs are classified (vlmn classify), label agreement with the confusion matrix,\n"
    "  mean |p_A - p_B| and the share within the tolerance for p_visual, p_text,\n"
    "  p_multimodal, p_unknown, and the change of Fig. 5-7 and Table 3 (vlmn stats).\n"
    "  Runs must hold the same samples (count and ids) and shape (layers, n_ff); with\n"
    "  different top-N the first min(N_A, N_B) entries are compared. See docs/compare.md.\n"
    "  --p-tol X      tolerance for \"p within\" (default 0.02)\n"
    "  --top-frac F   fraction of neurons per type for Fig. 7, in (0, 1] (default 0.03)\n"
    "  --json         one JSON object instead of tables\n",
    run,
};

static int run(int argc, char **argv)
{
    const char *dir[2] = {NULL, NULL}, *v;
    double tol = 0.02, frac = 0.03;
    int json = 0, nd = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_opt(argc, argv, &i, "p-tol", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &tol) || !(tol >= 0 && tol <= 1))
                return cli_errorf("compare", 2, "--p-tol: expected a number in [0, 1]");
        } else if ((r = cli_opt(argc, argv, &i, "top-frac", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &frac) || !(frac > 0 && frac <= 1))
                return cli_errorf("compare", 2, "--top-frac: expected a number in (0, 1]");
        } else if (cli_flag(argv, i, "json", 0)) {
            json = 1;
        } else if (cli_unknown_option(&vlmn_cmd_compare, argv, i)) {
            return 2;
        } else if (nd < 2) {
            dir[nd++] = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_compare);
        }
    }
    if (nd != 2) return cli_usage(&vlmn_cmd_compare);
    vlmn_run *a = NULL, *b = NULL;
    vlmn_compare *c = NULL;
    vlmn_status st;
    if (!(st = vlmn_run_open(dir[0], &a)) && !(st = vlmn_run_open(dir[1], &b)) &&
        !(st = vlmn_compare_runs(a, b, tol, frac, &c)))
        st = json ? vlmn_compare_print_json(stdout, c, dir[0], dir[1]) : vlmn_compare_print_text(stdout, c, dir[0], dir[1]);
    vlmn_compare_free(c);
    vlmn_run_close(a);
    vlmn_run_close(b);
    if (!st && fflush(stdout) != 0) st = vlmn_error(VLMN_E_IO, "stdout: write failed");
    return st ? cli_fail("compare", st) : 0;
}
