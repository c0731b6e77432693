/* vlmn browse: a local, read-only web browser over a run (pages + JSON API), or the
 * same site written as static files (--export). docs/browse.md. */
#include "cli.h"

#include <signal.h>
#include <string.h>

#include "vlmn/browse.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_browse = {
    "browse",
    "browse a run's neurons in a local web page (and JSON API), or export it as static files",
    "vlmn browse RUN [--port 8080] [--host 127.0.0.1]\n"
    "vlmn browse RUN --export DIR\n"
    "vlmn browse RUN --index\n"
    "  Serves the overview (figures, totals), a neuron table with filters and sorting, one\n"
    "  page per neuron and per sample, and /api/ JSON for the same data (docs/browse.md).\n"
    "  Read-only on the run; a run still being recorded can be browsed.\n"
    "  --port P      TCP port, 0 = any free one (8080); the URL is printed on stdout\n"
    "  --host H      IPv4 address to bind (127.0.0.1; anything else exposes the run)\n"
    "  --export DIR  write the whole site as static files under DIR and exit\n"
    "  --index       write RUN/browse-index.sqlite (neuron table, indexes, FTS5 over\n"
    "                explanations) and exit; later starts use it while it matches the run\n"
    "                (else they index in memory: seconds for a 7B run)\n"
    "  -q, --quiet   no progress or notes on stderr\n",
    run,
};

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { stop_flag = 1; }

static int run(int argc, char **argv)
{
    const char *dir = NULL, *host = "127.0.0.1", *export_dir = NULL, *v;
    long port = 8080;
    int quiet = 0, index = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_opt(argc, argv, &i, "port", 0, &v))) {
            if (r < 0 || cli_parse_long(v, 0, 65535, &port)) return cli_errorf("browse", 2, "--port: 0..65535");
        } else if ((r = cli_opt(argc, argv, &i, "host", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_browse);
            host = v;
        } else if ((r = cli_opt(argc, argv, &i, "export", 0, &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_browse);
            export_dir = v;
        } else if (cli_flag(argv, i, "index", 0)) {
            index = 1;
        } else if (cli_flag(argv, i, "quiet", 'q')) {
            quiet = 1;
        } else if (cli_unknown_option(&vlmn_cmd_browse, argv, i)) {
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_browse);
        }
    }
    if (!dir || (index && export_dir)) return cli_usage(&vlmn_cmd_browse);
    vlmn_status st;
    if (index) {
        char path[4200];
        if ((st = vlmn_browse_write_index(dir, path, sizeof path))) return cli_fail("browse", st);
        printf("%s\n", path);
        return 0;
    }
    vlmn_browse *b = NULL;
    if ((st = vlmn_browse_open(dir, &b))) return cli_fail("browse", st);
    if (!quiet && vlmn_browse_index_source(b) == VLMN_BROWSE_INDEX_STALE)
        fprintf(stderr, "browse: %s/%s no longer matches the run (indexed in memory); `vlmn browse %s --index` "
                        "refreshes it\n", dir, VLMN_BROWSE_INDEX_FILE, dir);
    else if (!quiet && vlmn_browse_index_source(b) == VLMN_BROWSE_INDEX_MEMORY && vlmn_browse_n_neurons(b) > 100000)
        fprintf(stderr, "browse: indexed %lld neurons in memory; `vlmn browse %s --index` once makes later starts "
                        "instant\n", (long long)vlmn_browse_n_neurons(b), dir);
    if (export_dir) {
        st = vlmn_browse_export(b, export_dir, quiet);
        if (!st) printf("%s/index.html\n", export_dir);
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        st = vlmn_browse_serve(b, host, (int)port, &stop_flag);
    }
    vlmn_browse_close(b);
    return st ? cli_fail("browse", st) : 0;
}
