/* `vlmn record`: one streaming pass over a dataset keeping every FFN neuron's
 * statistics and top-N samples in a run directory; checkpoints, --resume, --shard,
 * and under `mpirun` one shard per rank merged on rank 0. */
#include "cli.h"
#include "core/alloc.h"
#include "info_hf.h"
#include "run/record_run.h"
#include "vlmn/kernels.h"
#include "vlmn/model.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef VLMN_HAVE_MPI
#include <mpi.h>
#endif

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char usage[] =
    "vlmn record (-m TEXT.gguf --mmproj MMPROJ.gguf | -m HF_DIR [--clip DIR]) --data FILE --images DIR -o RUN [options]\n"
    "  --data FILE            LLaVA conversation JSON (array) or JSONL {id,image,question,answer}\n"
    "  --images DIR           folder the samples' \"image\" paths are relative to\n"
    "  -o, --out RUN          run directory (created; see docs/run-format.md)\n"
    "  --top-n N              samples kept per neuron (default 50)\n"
    "  --hook silu_gate|swiglu  activation read per neuron (default silu_gate)\n"
    "  --template T           llava-v1 (default), vicuna-v1, plain, llava-hf, or auto (the\n"
    "                         folder's chat template; llava-v1 if none)\n"
    "  --text-tokens answer|all   text tokens = answer tokens (default) or every non-image token\n"
    "  --mode pad|crop        image preprocessing (default pad, as LLaVA-1.5)\n"
    "  --precision P          fast (default: the fast kernels, normwise error <= 1e-2; against\n"
    "                         exact: 99.97% of labels, top-50 Jaccard 0.9997 on Q8_0, 99.45% and\n"
    "                         0.984 on BF16), exact (f32 from dequantised weights, <= 1e-4;\n"
    "                         about 2x slower) or fastest (EXPERIMENTAL, Q8_0/Q4_K weights: int8\n"
    "                         activations, about 1.5x faster than fast; 98.9% of labels and\n"
    "                         Jaccard 0.961: below the 99% / 0.98 goal; bench/RESULTS.md)\n"
    "                         The precision is printed on stderr and stored in the run.\n"
    "  --limit N              only the first N samples of the dataset\n"
    "  --shard I/N            only samples with index mod N == I (merge shards with vlmn merge)\n"
    "  -t, --threads T        threads (default: all CPUs)\n"
    "  --resume               continue an interrupted run from its last checkpoint\n"
    "  --strict               stop at the first failed sample\n"
    "  --checkpoint-every N   samples between checkpoints (default 100)\n"
    "  --log-every N          samples between log lines when stderr is not a terminal (default 100)\n"
    "  --quiet                no progress, no summary\n"
    "  --synthetic LxF[:SEED[:IMG]]  pseudo-activations instead of a model (tests, benchmarks)\n"
    "Ctrl-C (SIGINT/SIGTERM) stops at a sample boundary with a checkpoint; exit status 130.\n"
    "Under mpirun (OpenMPI), each rank records shard RANK/SIZE into RUN/shards/ and rank 0 merges.\n";

const struct vlmn_cmd vlmn_cmd_record;

static int parse_args(int argc, char **argv, vlmn_record_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        long n;
        int r;
#define OPT(l, s) ((r = cli_opt(argc, argv, &i, l, s, &v)) != 0)
        if (OPT("model", 'm')) {
            if (r < 0) return 2;
            o->model = v;
        } else if (OPT("mmproj", 0) || OPT("clip", 0)) { /* --clip: an original-layout folder's CLIP */
            if (r < 0) return 2;
            o->mmproj = v;
        } else if (OPT("data", 0)) {
            if (r < 0) return 2;
            o->data = v;
        } else if (OPT("images", 0)) {
            if (r < 0) return 2;
            o->images = v;
        } else if (OPT("out", 'o')) {
            if (r < 0) return 2;
            o->out = v;
        } else if (OPT("top-n", 0)) {
            if (r < 0 || cli_parse_long(v, 1, 1000, &n)) return cli_errorf("record", 2, "--top-n: expected 1..1000");
            o->top_n = (int)n;
        } else if (OPT("hook", 0)) {
            if (r < 0 || (strcmp(v, "silu_gate") && strcmp(v, "swiglu")))
                return cli_errorf("record", 2, "--hook: expected silu_gate or swiglu");
            o->hook = v;
        } else if (OPT("template", 0)) {
            if (r < 0 || (strcmp(v, "llava-v1") && strcmp(v, "vicuna-v1") && strcmp(v, "plain") && strcmp(v, "llava-hf") &&
                          strcmp(v, "auto")))
                return cli_errorf("record", 2, "--template: expected llava-v1, vicuna-v1, plain, llava-hf or auto");
            o->template_name = v;
        } else if (OPT("text-tokens", 0)) {
            if (r < 0 || (strcmp(v, "answer") && strcmp(v, "all")))
                return cli_errorf("record", 2, "--text-tokens: expected answer or all");
            o->text_all = !strcmp(v, "all");
        } else if (OPT("mode", 0)) {
            if (r < 0 || (strcmp(v, "pad") && strcmp(v, "crop"))) return cli_errorf("record", 2, "--mode: expected pad or crop");
            o->mode = v;
        } else if (OPT("precision", 0)) {
            vlmn_precision pr;
            if (r < 0 || vlmn_precision_parse(v, &pr)) return cli_errorf("record", 2, "--precision: expected fast, exact or fastest");
            o->precision = v;
        } else if (OPT("limit", 0)) {
            if (r < 0 || cli_parse_long(v, 1, INT64_MAX, &n)) return cli_errorf("record", 2, "--limit: expected N >= 1");
            o->limit = n;
        } else if (OPT("shard", 0)) {
            int a, b, k = 0;
            if (r < 0 || sscanf(v, "%d/%d%n", &a, &b, &k) != 2 || v[k] || b < 1 || a < 0 || a >= b)
                return cli_errorf("record", 2, "--shard: expected I/N with 0 <= I < N");
            o->shard_i = a;
            o->shard_n = b;
        } else if (OPT("threads", 't')) {
            if (r < 0 || cli_parse_long(v, 1, 4096, &n)) return cli_errorf("record", 2, "--threads: expected 1..4096");
            o->threads = (int)n;
        } else if (OPT("checkpoint-every", 0)) {
            if (r < 0 || cli_parse_long(v, 1, INT64_MAX, &n)) return cli_errorf("record", 2, "--checkpoint-every: expected N >= 1");
            o->checkpoint_every = n;
        } else if (OPT("log-every", 0)) {
            if (r < 0 || cli_parse_long(v, 1, INT64_MAX, &n)) return cli_errorf("record", 2, "--log-every: expected N >= 1");
            o->log_every = n;
            o->progress = 1;
        } else if (OPT("synthetic", 0)) {
            if (r < 0) return 2;
            o->synthetic = v;
        } else if (cli_flag(argv, i, "resume", 0)) {
            o->resume = true;
        } else if (cli_flag(argv, i, "strict", 0)) {
            o->strict = true;
        } else if (cli_flag(argv, i, "quiet", 'q')) {
            o->quiet = true;
        } else if (cli_unknown_option(&vlmn_cmd_record, argv, i)) {
            return 2;
        } else {
            fprintf(stderr, "vlmn record: unexpected argument '%s'\n", argv[i]);
            return cli_usage(&vlmn_cmd_record);
        }
#undef OPT
    }
    if (!o->data || !o->out) {
        fprintf(stderr, "vlmn record: --data and -o are required\n");
        return cli_usage(&vlmn_cmd_record);
    }
    bool hf = o->model && vlmn_hf_is_folder(o->model) && (!o->mmproj || vlmn_hf_is_folder(o->mmproj));
    static char clip_dir[4096]; /* the original layout's CLIP folder, found next to it: hashed into the run */
    char *clip = NULL;
    if (hf && !o->mmproj && vlmn_hf_clip_folder(o->model, &clip) == VLMN_OK && clip) {
        snprintf(clip_dir, sizeof clip_dir, "%s", clip);
        o->mmproj = clip_dir;
    }
    vlmn_free(clip);
    if (!o->synthetic && (!o->model || (!o->mmproj && !hf) || !o->images)) {
        fprintf(stderr, "vlmn record: -m, --mmproj and --images are required\n");
        return cli_usage(&vlmn_cmd_record);
    }
    if (vlmn_cli_template("record", o->model, &o->template_name)) return 1;
    return 0;
}

static int mpi_world_size(void)
{
    const char *e = getenv("OMPI_COMM_WORLD_SIZE");
    return e ? atoi(e) : 0;
}

#define FASTEST_JUDGEMENT                                                                        \
    "against exact on the same Q8_0 weights it kept 98.9% of the labels and a mean top-50 Jaccard\n" \
    "  of 0.961 (goal 99% and 0.98; fast: 99.97% and 0.9997): see bench/RESULTS.md"

/* What the precision benchmark (bench/RESULTS.md, "Precision modes judged by results")
 * measured for each mode, told to the user before a run starts. */
static void print_precision(const vlmn_record_opts *o)
{
    if (o->synthetic) return;
    if (!strcmp(o->precision, "fastest")) /* even with --quiet */
        fprintf(stderr, "vlmn record: warning: --precision fastest is experimental: %s\n", FASTEST_JUDGEMENT);
    if (o->quiet) return;
    const char *isa = vlmn_isa_name(vlmn_isa_active());
    bool exact = !strcmp(o->precision, "exact");
    fprintf(stderr, "vlmn record: precision %s (kernels %s%s; stored in the run as key precision)\n", o->precision, isa,
            !exact && vlmn_precision_emulated() ? ", activations rounded as the AVX-512 kernels: VLMN_EMULATE_PRECISION" : "");
}

static int record_one(vlmn_record_opts *o, bool summary)
{
    vlmn_rec_backend be = {0};
    print_precision(o);
    vlmn_status st = o->synthetic ? vlmn_backend_synth_create(o->synthetic, o->images, &be)
                                  : vlmn_backend_llava_create(o, &be);
    if (st) return cli_fail("record", st);
    vlmn_record_summary sum;
    st = vlmn_record_run(o, &be, &sum);
    if (be.free) be.free(be.user);
    if (st == VLMN_E_INTERRUPTED) {
        fprintf(stderr, "vlmn record: %s\n", vlmn_errmsg());
        return 130;
    }
    if (st) return cli_fail("record", st);
    if (summary && !o->quiet && !sum.already_complete)
        printf("recorded %s: %" PRId64 " samples (%" PRId64 " ok, %" PRId64 " failed), %" PRId64
               " image tokens, %" PRId64 " text tokens\n",
               o->out, sum.n_done, sum.n_ok, sum.n_failed, sum.n_tokens_image, sum.n_tokens_text);
    return 0;
}

static int run_record(int argc, char **argv)
{
    vlmn_record_opts o;
    vlmn_record_opts_default(&o);
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &stop_flag;

    int world = mpi_world_size();
    if (world <= 1) return record_one(&o, true);
#ifndef VLMN_HAVE_MPI
    return cli_errorf("record", 1, "launched under mpirun (OMPI_COMM_WORLD_SIZE=%d) but this vlmn was built without MPI",
                      world);
#else
    if (o.shard_n != 1) return cli_errorf("record", 2, "--shard cannot be combined with mpirun (ranks are the shards)");
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char shards[4096], mine[4200];
    snprintf(shards, sizeof shards, "%s/shards", o.out);
    if (rank == 0) {
        mkdir(o.out, 0755);
        mkdir(shards, 0755);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    snprintf(mine, sizeof mine, "%s/%d-of-%d", shards, rank, size);
    const char *final_out = o.out;
    o.out = mine;
    o.shard_i = rank;
    o.shard_n = size;
    if (rank != 0) o.quiet = true; /* one progress display */
    rc = record_one(&o, false);
    int ok = rc == 0, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rank == 0 && all_ok) {
        char db[4200];
        snprintf(db, sizeof db, "%s/run.sqlite", final_out);
        bool done = false;
        if (access(db, F_OK) == 0) {
            sqlite3 *h;
            char status[64] = "";
            if (!vlmn_db_open(db, false, &h)) {
                vlmn_db_get_meta(h, "status", status, sizeof status);
                vlmn_db_close(h);
            }
            done = !strcmp(status, "complete");
            if (!done) unlink(db); /* a merge that died half-way: redo it */
        }
        if (!done) {
            const char **in = malloc(sizeof *in * (size_t)size);
            char(*names)[4200] = malloc(sizeof *names * (size_t)size);
            if (!in || !names) {
                rc = cli_errorf("record", 1, "out of memory");
            } else {
                for (int r = 0; r < size; r++) {
                    snprintf(names[r], sizeof names[r], "%s/%d-of-%d", shards, r, size);
                    in[r] = names[r];
                }
                vlmn_status st = vlmn_record_merge(in, size, final_out, true);
                if (st) rc = cli_fail("record", st);
                sqlite3 *h;
                if (!st && !o.quiet && !vlmn_db_open(db, false, &h)) {
                    char k[5][64];
                    const char *keys[5] = {"n_samples", "n_ok", "n_failed", "n_image_tokens", "n_text_tokens"};
                    for (int q = 0; q < 5; q++) vlmn_db_get_meta(h, keys[q], k[q], sizeof k[q]);
                    vlmn_db_close(h);
                    printf("recorded %s (%d ranks, merged): %s samples (%s ok, %s failed), %s image tokens, %s text tokens\n",
                           final_out, size, k[0], k[1], k[2], k[3], k[4]);
                }
            }
            free(in);
            free(names);
        }
    } else if (rank == 0 && rc == 0) {
        rc = cli_errorf("record", 1, "another rank failed; %s/shards holds the shard runs (resume with --resume)", final_out);
    }
    int rc_all = 0;
    MPI_Allreduce(&rc, &rc_all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return rank == 0 ? (rc ? rc : rc_all) : rc;
#endif
}

const struct vlmn_cmd vlmn_cmd_record = {"record", "record every FFN neuron's top-N samples over a dataset", usage,
                                         run_record};
