/* `vlmn bench classify`: time the neuron classifier on a LLaVA-1.5-7B-sized synthetic
 * state (32 x 11,008 neurons, N = 50 top samples, 8 + 8 activations each: 1.27 GB):
 * in memory, and through the real run store exactly as `vlmn classify RUN` does it
 * (open + mmap, classify, save the classification table). The budget for the
 * latter is 10 s on the 2-core machine. */
#include "cli.h"
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "vlmn/analysis.h"
#include "vlmn/record.h"

/* Deterministic synthetic state: each neuron has a style (visual / text / both / quiet)
 * so every class occurs; activations descend within a sample as the recorder keeps them. */
static void fill(vlmn_rec *r, const vlmn_rec_params *p)
{
    int64_t n = (int64_t)p->n_layers * p->n_ff;
    vlmn_neuron_stats *st = vlmn_rec_stats(r);
    vlmn_top_entry *top = vlmn_rec_top(r);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int64_t i = 0; i < n; i++) {
        float m = 1.0f + (float)(i % 7);
        st[i].max_act = m;
        st[i].min_act = -0.2f;
        st[i].count = 1000;
        int style = (int)(i % 5);
        float vi = style == 0 || style == 2 ? 0.9f : 0.2f, vt = style == 1 || style == 2 ? 0.9f : 0.2f;
        for (int k = 0; k < p->top_n; k++) {
            vlmn_top_entry *e = &top[i * p->top_n + k];
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            float u = (float)((x >> 40) & 0xffffff) / 16777216.0f;
            e->sample = (uint32_t)k;
            for (int t = 0; t < VLMN_TOP_TOKENS; t++) {
                e->img[t] = m * vi * (1.0f - 0.1f * t) * (0.5f + u);
                e->txt[t] = m * vt * (1.0f - 0.12f * t) * (1.5f - u);
            }
            e->max_act = m * (1.0f - 0.01f * k);
        }
    }
    vlmn_rec_sync(r);
}

struct mem_src {
    const vlmn_rec_params *p;
    const vlmn_neuron_stats *st;
    const vlmn_top_entry *top;
};
static float mem_max(void *ctx, int l, int j)
{
    struct mem_src *m = ctx;
    return m->st[(int64_t)l * m->p->n_ff + j].max_act;
}
static const vlmn_top_entry *mem_top(void *ctx, int l, int j, int *n)
{
    struct mem_src *m = ctx;
    *n = m->p->top_n;
    return m->top + ((int64_t)l * m->p->n_ff + j) * m->p->top_n;
}

int bench_classify(int argc, char **argv)
{
    static const char usage[] = "vlmn bench classify [--layers 32] [--ff 11008] [--top-n 50] [--dir DIR] [--keep] "
                                "[--reps 3]\n";
    long L = 32, F = 11008, N = 50, reps = 3;
    const char *dir = NULL, *v;
    int keep = 0, r;
    for (int i = 1; i < argc; i++) {
        long *lp = NULL, lo = 1, hi = 1 << 20;
        if ((r = cli_opt(argc, argv, &i, "layers", 0, &v))) lp = &L;
        else if ((r = cli_opt(argc, argv, &i, "ff", 0, &v))) lp = &F;
        else if ((r = cli_opt(argc, argv, &i, "top-n", 0, &v))) lp = &N, hi = VLMN_REC_MAX_TOP_N;
        else if ((r = cli_opt(argc, argv, &i, "reps", 0, &v))) lp = &reps, hi = 100;
        else if ((r = cli_opt(argc, argv, &i, "dir", 0, &v))) {
            if (r < 0) return 2;
            dir = v;
            continue;
        } else if (cli_flag(argv, i, "keep", 0)) {
            keep = 1;
            continue;
        } else if (cli_unknown_option(&vlmn_cmd_bench, argv, i)) {
            return 2;
        } else {
            fprintf(stderr, "usage: %s", usage);
            return 2;
        }
        if (r < 0 || cli_parse_long(v, lo, hi, lp)) {
            fprintf(stderr, "usage: %s", usage);
            return 2;
        }
    }
    char tmpdir[] = "/tmp/vlmn-bench-classify.XXXXXX";
    if (!dir) {
        if (!mkdtemp(tmpdir)) return cli_errorf("bench classify", 1, "cannot create a folder in /tmp");
        dir = tmpdir;
    } else if (mkdir(dir, 0755) != 0 && access(dir, W_OK) != 0) {
        return cli_errorf("bench classify", 1, "%s: cannot create or write", dir);
    }
    vlmn_rec_params p = {(int)L, (int)F, (int)N, 0};
    vlmn_rec *rec = NULL;
    vlmn_status st;
    if ((st = vlmn_rec_create(&p, &rec))) return cli_fail("bench classify", st);
    double t0 = bench_wall();
    fill(rec, &p);
    double t_fill = bench_wall() - t0;

    /* In memory. */
    struct mem_src ms = {&p, vlmn_rec_stats(rec), vlmn_rec_top(rec)};
    vlmn_top_source src = {p.n_layers, p.n_ff, &ms, mem_max, mem_top};
    vlmn_classify_params cp;
    vlmn_classify_defaults(&cp);
    double best_mem = INFINITY;
    for (long k = 0; k < reps; k++) {
        vlmn_classification *c = NULL;
        double a = bench_wall();
        if ((st = vlmn_classify_source(&src, &cp, &c))) {
            vlmn_rec_free(rec);
            return cli_fail("bench classify", st);
        }
        double b = bench_wall() - a;
        if (b < best_mem) best_mem = b;
        vlmn_classification_free(c);
    }

    /* Through the run store. */
    char path[4096];
    snprintf(path, sizeof path, "%s/run.sqlite", dir);
    unlink(path);
    sqlite3 *db = NULL;
    t0 = bench_wall();
    if ((st = vlmn_db_open(path, true, &db)) || (st = vlmn_store_write_arrays(dir, rec, false)) ||
        (st = vlmn_db_set_meta(db, "model", "%s", "synthetic state (vlmn bench classify)")) ||
        (st = vlmn_db_set_meta(db, "status", "%s", "complete"))) {
        vlmn_db_close(db);
        vlmn_rec_free(rec);
        return cli_fail("bench classify", st);
    }
    vlmn_db_close(db);
    double t_write = bench_wall() - t0;
    vlmn_rec_free(rec);
    double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY}; /* open, classify, save, total */
    int64_t lab[VLMN_NT_COUNT] = {0};
    for (long k = 0; k < reps; k++) {
        vlmn_run *run = NULL;
        vlmn_classification *c = NULL;
        double a = bench_wall();
        if (!(st = vlmn_run_open(dir, &run))) {
            double b = bench_wall();
            if (!(st = vlmn_classify_run(run, &cp, &c))) {
                double cc = bench_wall();
                if (!(st = vlmn_classification_save(vlmn_run_db(run), c))) {
                    double d = bench_wall(), t[4] = {b - a, cc - b, d - cc, d - a};
                    for (int q = 0; q < 4; q++) best[q] = t[q] < best[q] ? t[q] : best[q];
                    memset(lab, 0, sizeof lab);
                    for (int64_t i = 0; i < (int64_t)L * F; i++) lab[c->neurons[i].label]++;
                }
            }
        }
        vlmn_classification_free(c);
        vlmn_run_close(run);
        if (st) break;
    }
    if (!keep) {
        static const char *const files[] = {"run.sqlite", "run.sqlite-journal", "stats.bin", "sums.bin", "top.bin"};
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            unlink(path);
        }
        if (dir == tmpdir) rmdir(dir);
    }
    if (st) return cli_fail("bench classify", st);
    printf("classify %ld x %ld neurons, top_n %ld (state %.2f GB; generated %.2f s, written %.2f s)\n", L, F, N,
           (double)(L * F * N) * sizeof(vlmn_top_entry) / 1e9, t_fill, t_write);
    printf("  in memory:           best of %ld %.3f s\n", reps, best_mem);
    printf("  run store (as vlmn classify): best of %ld %.3f s = open %.3f + classify %.3f + save %.3f\n", reps,
           best[3], best[0], best[1], best[2]);
    printf("  labels visual/text/multimodal/unknown: %lld %lld %lld %lld\n", (long long)lab[0], (long long)lab[1],
           (long long)lab[2], (long long)lab[3]);
    if (keep) printf("  run kept in %s (try: time vlmn classify %s)\n", dir, dir);
    return 0;
}
