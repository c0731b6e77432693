/* Benchmark: classify a LLaVA-1.5-7B-sized synthetic state (32 layers x 11,008 neurons,
 * N = 50 top samples with 8 + 8 recorded activations each, about 1.27 GB) in memory, then
 * save the classification to SQLite and compute the statistics. The budget is
 * < 10 s for the classification on the 2-core machine.
 * usage: bench_classify [n_layers [n_ff [top_n [db_path]]]] */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <sqlite3.h>
#include <time.h>

#include "vlmn/analysis.h"

struct state {
    int n_ff, top_n;
    float *max_act;            /* [n_layers * n_ff] */
    vlmn_top_entry *top;       /* [n_layers * n_ff * top_n] */
};

static float s_max(void *ctx, int l, int j)
{
    struct state *s = ctx;
    return s->max_act[(int64_t)l * s->n_ff + j];
}

static const vlmn_top_entry *s_top(void *ctx, int l, int j, int *n)
{
    struct state *s = ctx;
    *n = s->top_n;
    return s->top + ((int64_t)l * s->n_ff + j) * s->top_n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int n_layers = argc > 1 ? atoi(argv[1]) : 32;
    int n_ff = argc > 2 ? atoi(argv[2]) : 11008;
    int top_n = argc > 3 ? atoi(argv[3]) : 50;
    const char *db_path = argc > 4 ? argv[4] : "/tmp/bench_classify.sqlite";
    if (n_layers <= 0 || n_ff <= 0 || top_n <= 0) {
        fprintf(stderr, "usage: bench_classify [n_layers [n_ff [top_n [db_path]]]]\n");
        return 2;
    }
    int64_t n = (int64_t)n_layers * n_ff;
    struct state st = {n_ff, top_n, malloc((size_t)n * sizeof(float)),
                       malloc((size_t)(n * top_n) * sizeof(vlmn_top_entry))};
    if (!st.max_act || !st.top) {
        fprintf(stderr, "bench_classify: out of memory for %lld entries\n", (long long)(n * top_n));
        return 1;
    }
    double t0 = now();
    /* Synthetic state: each neuron has a "style" so every class occurs; values descend
     * within a sample as the recorder stores them. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int64_t i = 0; i < n; i++) {
        st.max_act[i] = 1.0f + (float)(i % 7);
        int style = (int)(i % 5);
        for (int r = 0; r < top_n; r++) {
            vlmn_top_entry *e = &st.top[i * top_n + r];
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            float u = (float)((x >> 40) & 0xffffff) / 16777216.0f;
            float vi = style == 0 || style == 2 ? 0.9f : 0.2f, vt = style == 1 || style == 2 ? 0.9f : 0.2f;
            e->sample = (uint32_t)(r * 97 + i % 1000);
            for (int k = 0; k < VLMN_TOP_TOKENS; k++) {
                e->img[k] = st.max_act[i] * vi * (1.0f - 0.1f * k) * (0.5f + u);
                e->txt[k] = st.max_act[i] * vt * (1.0f - 0.12f * k) * (1.5f - u);
            }
            e->max_act = fmaxf(e->img[0], e->txt[0]);
        }
    }
    double t_gen = now() - t0;

    vlmn_top_source src = {n_layers, n_ff, &st, s_max, s_top};
    vlmn_classify_params p;
    vlmn_classify_defaults(&p);
    vlmn_classification *c = NULL;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        vlmn_classification_free(c);
        c = NULL;
        t0 = now();
        if (vlmn_classify_source(&src, &p, &c) != VLMN_OK) {
            fprintf(stderr, "bench_classify: %s\n", vlmn_errmsg());
            return 1;
        }
        double t = now() - t0;
        if (t < best) best = t;
    }
    int64_t lab[4] = {0};
    for (int64_t i = 0; i < n; i++) lab[c->neurons[i].label]++;

    sqlite3 *db = NULL;
    remove(db_path);
    if (sqlite3_open(db_path, &db) != SQLITE_OK) {
        fprintf(stderr, "bench_classify: cannot open %s\n", db_path);
        return 1;
    }
    t0 = now();
    if (vlmn_classification_save(db, c) != VLMN_OK) {
        fprintf(stderr, "bench_classify: %s\n", vlmn_errmsg());
        return 1;
    }
    double t_save = now() - t0;
    vlmn_classification *back = NULL;
    t0 = now();
    if (vlmn_classification_load(db, &back) != VLMN_OK) {
        fprintf(stderr, "bench_classify: %s\n", vlmn_errmsg());
        return 1;
    }
    double t_load = now() - t0;
    vlmn_stats *s = NULL;
    t0 = now();
    if (vlmn_stats_compute(back, 0.03, &s) != VLMN_OK) {
        fprintf(stderr, "bench_classify: %s\n", vlmn_errmsg());
        return 1;
    }
    double t_stats = now() - t0;
    sqlite3_close(db);
    remove(db_path);

    printf("neurons %lld (%d x %d), top_n %d, state %.2f GB (generated in %.2f s)\n", (long long)n, n_layers,
           n_ff, top_n, (double)(n * top_n) * sizeof(vlmn_top_entry) / 1e9, t_gen);
    printf("classify (best of 3): %.3f s   labels v/t/m/u: %lld %lld %lld %lld\n", best, (long long)lab[0],
           (long long)lab[1], (long long)lab[2], (long long)lab[3]);
    printf("save to SQLite: %.3f s   load: %.3f s   stats (top 3%%): %.3f s\n", t_save, t_load, t_stats);
    vlmn_stats_free(s);
    vlmn_classification_free(back);
    vlmn_classification_free(c);
    free(st.max_act);
    free(st.top);
    return 0;
}
