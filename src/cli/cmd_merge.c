/* `vlmn merge RUN... -o RUN`: combine the shard runs of one recording (--shard I/N,
 * all N of them) into the run a single pass gives. */
#include "cli.h"
#include "run/record_run.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] = "vlmn merge RUN... -o OUT\n"
                            "  Combines complete shard runs (vlmn record --shard I/N, all N) into OUT: identical\n"
                            "  statistics, top lists and samples to a single uninterrupted pass.\n"
                            "  -q, --quiet   no summary line\n";

const struct vlmn_cmd vlmn_cmd_merge;

static int run_merge(int argc, char **argv)
{
    const char *out = NULL;
    bool quiet = false;
    const char **in = calloc((size_t)argc, sizeof *in);
    int n = 0, rc = 0;
    if (!in) return cli_errorf("merge", 1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = cli_opt(argc, argv, &i, "out", 'o', &v);
        if (r < 0) {
            rc = 2;
            goto done;
        }
        if (r > 0) out = v;
        else if (cli_flag(argv, i, "quiet", 'q')) quiet = true;
        else if (cli_unknown_option(&vlmn_cmd_merge, argv, i)) {
            rc = 2;
            goto done;
        } else in[n++] = argv[i];
    }
    if (!out || n < 1) {
        rc = cli_usage(&vlmn_cmd_merge);
        goto done;
    }
    vlmn_status st = vlmn_record_merge(in, n, out, quiet);
    if (st) rc = cli_fail("merge", st);
done:
    free(in);
    return rc;
}

const struct vlmn_cmd vlmn_cmd_merge = {"merge", "combine shard runs into one run", usage, run_merge};
