/* vlmn score: Pearson scores of the stored simulations (paper A.3) into RUN's scores
 * table; `vlmn stats RUN --table2` aggregates them as Table 2. */
#include "cli.h"

#include "vlmn/pipeline.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_score = {
    "score",
    "score explanations: Pearson r of simulated vs real activations (paper A.3)",
    "vlmn score RUN\n"
    "  Visual neurons: r over the image tokens of the simulated samples, text neurons: over\n"
    "  their text tokens, multi-modal: the mean of both (concatenated over the 5 samples).\n"
    "  Constant real activations give an undefined score (NULL, with a note); a constant\n"
    "  simulation of varying activations scores 0. Then `vlmn stats RUN --table2`.\n",
    run,
};

static int run(int argc, char **argv)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_unknown_option(&vlmn_cmd_score, argv, i)) return 2;
        if (dir) return cli_usage(&vlmn_cmd_score);
        dir = argv[i];
    }
    if (!dir) return cli_usage(&vlmn_cmd_score);
    int64_t n = 0, nu = 0;
    vlmn_status st = vlmn_score_run(dir, &n, &nu);
    if (st) return cli_fail("score", st);
    printf("score: %lld scores written (%lld undefined)\n", (long long)n, (long long)nu);
    return 0;
}
