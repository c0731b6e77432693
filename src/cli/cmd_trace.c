/* `vlmn trace`: store, for selected neurons of a finished run, their activation on
 * every token of chosen samples (src/trace, docs/trace.md). */
#include "cli.h"

#include "vlmn/trace.h"

#include "core/alloc.h"

#include <math.h>

#include <inttypes.h>
#include <signal.h>
#include <string.h>

extern const struct vlmn_cmd vlmn_cmd_trace;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char USAGE[] =
    "vlmn trace RUN --neurons SPEC --samples SPEC [-m TEXT.gguf|HF_DIR] [--mmproj MMPROJ.gguf]\n"
    "                 [--data FILE] [--images DIR] [--precision fast|exact|fastest] [-t N] [-q]\n"
    "vlmn trace RUN --list\n"
    "\n"
    "Re-runs the run's model on just the samples needed (each once for all the neurons\n"
    "that need it, stopping after the deepest layer needed) and stores each selected\n"
    "neuron's activation on every position of its samples in RUN/traces.sqlite +\n"
    "RUN/traces.f32, with the token strings and the image-token grid. Resumable: run it\n"
    "again after a crash or Ctrl-C (exit 130) and only what is missing is computed.\n"
    "\n"
    "  --neurons SPEC   comma-separated terms, all ANDed: label=visual|text|multimodal|unknown,\n"
    "                   p>=X (p of the label given, else the largest p), p_v/p_t/p_m/p_u with\n"
    "                   >= > <= <, layer=A or layer=A-B, L:N;L:N (explicit), file:PATH (CSV\n"
    "                   layer,neuron), random:K:SEED (K of what the others leave), all.\n"
    "                   e.g. label=visual,p>=0.8,random:800:1  or  12:4347\n"
    "  --samples SPEC   top:1,5,9,13,17 or top:1-20 (ranks in each neuron's top list),\n"
    "                   random:K:SEED (K successful samples of the run), ids:3,17\n"
    "  -m, --model P    text model (default: the run's, from its provenance; must have the\n"
    "                   SHA-256 the run recorded)\n"
    "  --mmproj P       vision projector (default: the run's)\n"
    "  --data FILE      dataset (default: the run's)\n"
    "  --images DIR     image folder (default: the run's)\n"
    "  --precision P    default: the run's precision\n"
    "  -t, --threads N  threads (default: all CPUs)\n"
    "  -q, --quiet      no progress on stderr\n"
    "  --list           print the stored pairs as CSV (layer,neuron,sample,n_tokens,max_act\n"
    "                   over visual and text positions) and exit\n"
    "\n"
    "Prints one line on stdout: neurons, pairs, samples run, pairs stored now.\n";

static int list(const char *cmd, const char *dir)
{
    vlmn_traces *t = NULL;
    vlmn_neuron_ref *nr = NULL;
    int64_t nn = 0;
    vlmn_status st;
    if ((st = vlmn_traces_open(dir, &t)) || (st = vlmn_traces_neurons(t, &nr, &nn))) goto fail;
    printf("layer,neuron,sample,n_tokens,max_act\n");
    for (int64_t i = 0; i < nn; i++) {
        uint32_t *ss = NULL;
        int64_t ns = 0;
        if ((st = vlmn_traces_neuron_samples(t, nr[i].layer, nr[i].neuron, &ss, &ns))) goto fail;
        for (int64_t k = 0; k < ns; k++) {
            float *a = NULL;
            int64_t n = 0;
            vlmn_trace_sample *s = NULL;
            if ((st = vlmn_traces_get(t, nr[i].layer, nr[i].neuron, ss[k], &a, &n)) ||
                (st = vlmn_traces_sample(t, ss[k], &s))) {
                vlmn_free(a);
                vlmn_free(ss);
                goto fail;
            }
            float m = -INFINITY;
            for (int64_t p = 0; p < n && p < s->n_tokens; p++)
                if (s->modality[p] != VLMN_TRACE_OTHER && a[p] > m) m = a[p];
            printf("%d,%d,%u,%" PRId64 ",%.9g\n", nr[i].layer, nr[i].neuron, ss[k], n, (double)m);
            vlmn_free(a);
            vlmn_trace_sample_free(s);
        }
        vlmn_free(ss);
    }
    vlmn_free(nr);
    vlmn_traces_close(t);
    return 0;
fail:
    vlmn_free(nr);
    vlmn_traces_close(t);
    return cli_fail(cmd, st);
}

static int run(int argc, char **argv)
{
    const char *cmd = "trace", *v;
    vlmn_trace_opts o = {0};
    long threads = 0;
    bool do_list = false;
    for (int i = 1; i < argc; i++) {
        int r;
        CLI_STR_OPT("neurons", 0, o.neurons)
        CLI_STR_OPT("samples", 0, o.samples)
        CLI_STR_OPT("model", 'm', o.model)
        CLI_STR_OPT("mmproj", 0, o.mmproj)
        CLI_STR_OPT("data", 0, o.data)
        CLI_STR_OPT("images", 0, o.images)
        CLI_STR_OPT("precision", 0, o.precision)
        if ((r = cli_opt(argc, argv, &i, "threads", 't', &v)) != 0) {
            if (r < 0 || cli_parse_long(v, 1, 1024, &threads)) return cli_errorf(cmd, 2, "bad thread count");
            continue;
        }
        if (cli_flag(argv, i, "list", 0)) {
            do_list = true;
            continue;
        }
        if (cli_flag(argv, i, "quiet", 'q')) {
            o.quiet = true;
            continue;
        }
        if (cli_unknown_option(&vlmn_cmd_trace, argv, i)) return 2;
        if (o.run_dir) {
            cli_errorf(cmd, 2, "unexpected argument '%s'", argv[i]);
            return cli_usage(&vlmn_cmd_trace);
        }
        o.run_dir = argv[i];
    }
    if (do_list && o.run_dir) return list(cmd, o.run_dir);
    if (!o.run_dir || !o.neurons || !o.samples) {
        cli_errorf(cmd, 2, "RUN, --neurons and --samples are required");
        return cli_usage(&vlmn_cmd_trace);
    }
    if (o.precision && strcmp(o.precision, "fast") && strcmp(o.precision, "exact") && strcmp(o.precision, "fastest"))
        return cli_errorf(cmd, 2, "--precision: expected fast, exact or fastest");
    o.threads = (int)threads;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &stop_flag;
    vlmn_trace_summary s;
    vlmn_status st = vlmn_trace_run(&o, &s);
    if (st == VLMN_E_INTERRUPTED) {
        cli_fail(cmd, st);
        return 130;
    }
    if (st) return cli_fail(cmd, st);
    printf("neurons %" PRId64 " pairs %" PRId64 " samples %" PRId64 " run %" PRId64 " stored %" PRId64 " missing %" PRId64
           "\n",
           s.n_neurons, s.n_pairs, s.n_samples, s.n_run, s.n_pairs_stored, s.n_missing);
    return 0;
}

const struct vlmn_cmd vlmn_cmd_trace = {
    "trace", "store selected neurons' activations on every token of chosen samples (RUN/traces.*)", USAGE, run};
