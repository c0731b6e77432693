/* Benchmark: write a LLaVA-1.5-7B-sized synthetic run (32 x 11,008 neurons, N = 50; the
 * real run store: stats.bin, top.bin, run.sqlite) to DIR, then time what `vlmn classify`
 * does on it: open (mmap), classify, save the classification table. The directory is
 * kept so `time vlmn classify DIR` can be run on it afterwards (about 1.3 GB).
 * usage: bench_classify_run [DIR [n_layers [n_ff [top_n]]]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "vlmn/analysis.h"
#include "vlmn/record.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int die(const char *what)
{
    fprintf(stderr, "bench_classify_run: %s: %s\n", what, vlmn_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/vlmn_bench_run";
    vlmn_rec_params p = {argc > 2 ? atoi(argv[2]) : 32, argc > 3 ? atoi(argv[3]) : 11008,
                         argc > 4 ? atoi(argv[4]) : 50, 0};
    vlmn_rec *r = NULL;
    if (vlmn_rec_create(&p, &r)) return die("create");
    int64_t n = (int64_t)p.n_layers * p.n_ff;
    vlmn_neuron_stats *st = vlmn_rec_stats(r);
    vlmn_top_entry *top = vlmn_rec_top(r);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    double t0 = now();
    for (int64_t i = 0; i < n; i++) {
        float m = 1.0f + (float)(i % 7);
        st[i].max_act = m;
        st[i].min_act = -0.2f;
        st[i].count = 1000;
        int style = (int)(i % 5);
        float vi = style == 0 || style == 2 ? 0.9f : 0.2f, vt = style == 1 || style == 2 ? 0.9f : 0.2f;
        for (int k = 0; k < p.top_n; k++) {
            vlmn_top_entry *e = &top[i * p.top_n + k];
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
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
    mkdir(dir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/run.sqlite", dir);
    unlink(path);
    sqlite3 *db = NULL;
    if (vlmn_db_open(path, true, &db)) return die("db");
    if (vlmn_store_write_arrays(dir, r, false)) return die("write arrays");
    if (vlmn_db_set_meta(db, "model", "%s", "synthetic llava-7b-sized state") ||
        vlmn_db_set_meta(db, "status", "%s", "complete"))
        return die("meta");
    vlmn_db_close(db);
    vlmn_rec_free(r);
    printf("wrote %s (%lld neurons, top_n %d) in %.2f s\n", dir, (long long)n, p.top_n, now() - t0);

    for (int rep = 0; rep < 2; rep++) {
        vlmn_run *run = NULL;
        vlmn_classification *c = NULL;
        vlmn_classify_params cp;
        vlmn_classify_defaults(&cp);
        double a = now();
        if (vlmn_run_open(dir, &run)) return die("open");
        double b = now();
        if (vlmn_classify_run(run, &cp, &c)) return die("classify");
        double cc = now();
        if (vlmn_classification_save(vlmn_run_db(run), c)) return die("save");
        double d = now();
        printf("pass %d: open %.3f s, classify %.3f s, save %.3f s, total %.3f s\n", rep + 1, b - a, cc - b, d - cc,
               d - a);
        vlmn_classification_free(c);
        vlmn_run_close(run);
    }
    return 0;
}
