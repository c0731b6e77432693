/* End to end: `vlmn record` over 40 generated samples with a tiny model must give
 * the global maxima, statistics and top-N lists (with their top-8 image/text values)
 * that a brute-force pass over `vlmn probe` outputs of every sample gives
 * (activations.npy + tokens.json per sample, read here independently); and `vlmn classify`
 * must give the (p_v, p_t, p_m, p_u) and labels computed from those probe outputs. */
#include "test.h"
#include "vlmn/dataset.h"
#include "vlmn/npy.h"
#include "vlmn/record.h"
#include "vlmn/run.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e_fixture.h"

enum { NS = 40, TOPN = 5 };

typedef struct {
    int64_t T;
    uint8_t *cls; /* 0 image, 1 text, 2 not counted */
    float *acts;  /* [L][T][F] */
} probe_t;

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* `vlmn probe` on each of the first NS samples of case c (outputs in c->dir/probe<i>).
 * Fills P[0..] and the layer/FFN sizes; returns how many samples were probed. */
static int probe_all(const e2e_case *c, probe_t *P, int *Lp, int *Fp)
{
    int L = 0, F = 0, ns = 0;
    while (ns < NS) {
        e2e_probe po = {0};
        if (!e2e_probe_sample(c, (uint32_t)ns, NULL, &po)) {
            CHECK_MSG(0, "sample %d: probe failed or bad probe output", ns);
            e2e_probe_free(&po);
            break;
        }
        const vlmn_npy *arr = po.acts;
        L = (int)arr->shape[0];
        F = (int)arr->shape[2];
        P[ns].T = arr->shape[1];
        P[ns].acts = malloc(arr->count * sizeof(float));
        memcpy(P[ns].acts, arr->data, arr->count * sizeof(float));
        P[ns].cls = malloc((size_t)P[ns].T);
        CHECK_EQ_INT(cJSON_GetArraySize(po.tokens), P[ns].T);
        for (int64_t t = 0; t < P[ns].T; t++) P[ns].cls[t] = (uint8_t)e2e_probe_modality(&po, t);
        e2e_probe_free(&po);
        ns++;
    }
    *Lp = L;
    *Fp = F;
    return ns;
}

/* Neuron (l, k)'s maximum over the counted (image and answer) tokens of each probed
 * sample, into smax[0..NS). */
static void sample_maxima(const probe_t *P, int F, int l, int k, float *smax)
{
    for (int i = 0; i < NS; i++) {
        smax[i] = -INFINITY;
        for (int64_t t = 0; t < P[i].T; t++) {
            if (P[i].cls[t] == 2) continue;
            float v = P[i].acts[((int64_t)l * P[i].T + t) * F + k];
            smax[i] = v > smax[i] ? v : smax[i];
        }
    }
}

/* The n samples of highest smax, best first (ties: lower index), into top[0..n). */
static void top_samples(const float *smax, int n, int *top)
{
    bool used[NS] = {0};
    for (int rank = 0; rank < n; rank++) {
        int best = -1;
        for (int i = 0; i < NS; i++)
            if (!used[i] && (best < 0 || smax[i] > smax[best])) best = i;
        used[best] = true;
        top[rank] = best;
    }
}

TEST(record_equals_probe_brute_force)
{
    const char *bin = getenv("VLMN_BIN");
    if (!bin) {
        CHECK_MSG(0, "VLMN_BIN not set");
        return;
    }
    e2e_case cp;
    CHECK(e2e_case_init(&cp, "rec_vs_probe", "tiny", "data.json"));
    char *prefix = cp.prefix, *text = cp.text, *mmproj = cp.mmproj, *dsdir = cp.dsdir, *data = cp.data,
         *run = cp.run;
    {
        char *a[] = {(char *)bin, "make-model", "--preset", "tiny", "--seed", "3", "-q", "-o", prefix, NULL};
        CHECK_EQ_INT(e2e_run(a), 0);
        char *b[] = {(char *)bin, "make-dataset", "-n", "40", "--seed", "5", "-o", dsdir, NULL};
        CHECK_EQ_INT(e2e_run(b), 0);
        char *c[] = {(char *)bin, "record", "-m", text, "--mmproj", mmproj, "--data", data, "--images", dsdir,
                     "-o", run, "--top-n", "5", "-t", "1", "--checkpoint-every", "16", "-q", NULL};
        CHECK_EQ_INT(e2e_run(c), 0);
    }
    /* probe every sample */
    static probe_t P[NS];
    int L = 0, F = 0;
    int ns = probe_all(&cp, P, &L, &F);
    CHECK_EQ_INT(ns, NS);

    vlmn_run *r = NULL;
    CHECK(vlmn_run_open(run, &r) == VLMN_OK);
    if (!r || ns != NS) goto out;
    CHECK_EQ_INT(vlmn_run_n_layers(r), L);
    CHECK_EQ_INT(vlmn_run_n_ff(r), F);
    CHECK_EQ_INT(vlmn_run_n_samples(r), NS);
    int bad = 0;
    for (int l = 0; l < L && bad < 5; l++)
        for (int k = 0; k < F && bad < 5; k++) {
            float smax[NS], gmax = -INFINITY, gmin = INFINITY;
            double sum = 0;
            uint64_t cnt = 0;
            sample_maxima(P, F, l, k, smax);
            for (int i = 0; i < NS; i++)
                for (int64_t t = 0; t < P[i].T; t++) {
                    if (P[i].cls[t] == 2) continue;
                    float v = P[i].acts[((int64_t)l * P[i].T + t) * F + k];
                    gmax = v > gmax ? v : gmax;
                    gmin = v < gmin ? v : gmin;
                    sum += v;
                    cnt++;
                }
            const vlmn_neuron_stats *st = vlmn_run_stats(r, l, k);
            if (st->max_act != gmax || st->min_act != gmin || st->count != cnt ||
                fabs(st->sum - sum) > 1e-6 * (1 + fabs(sum))) {
                CHECK_MSG(0, "neuron %d/%d: max %.9g min %.9g count %llu, probe %.9g %.9g %llu", l, k, st->max_act,
                          st->min_act, (unsigned long long)st->count, gmax, gmin, (unsigned long long)cnt);
                bad++;
            }
            int n;
            const vlmn_top_entry *top = vlmn_run_top(r, l, k, &n);
            CHECK_EQ_INT(n, TOPN);
            int order[TOPN];
            top_samples(smax, TOPN, order);
            for (int rank = 0; rank < n && rank < TOPN; rank++) {
                int best = order[rank];
                float im[4096], tx[4096];
                int ni = 0, nt = 0;
                for (int64_t t = 0; t < P[best].T && ni < 4096 && nt < 4096; t++) {
                    float v = P[best].acts[((int64_t)l * P[best].T + t) * F + k];
                    if (P[best].cls[t] == 0) im[ni++] = v;
                    else if (P[best].cls[t] == 1) tx[nt++] = v;
                }
                qsort(im, (size_t)ni, sizeof(float), cmp_desc);
                qsort(tx, (size_t)nt, sizeof(float), cmp_desc);
                bool ok = top[rank].sample == (uint32_t)best && top[rank].max_act == smax[best];
                for (int q = 0; q < VLMN_TOP_TOKENS; q++)
                    ok = ok && top[rank].img[q] == (q < ni ? im[q] : -INFINITY) &&
                         top[rank].txt[q] == (q < nt ? tx[q] : -INFINITY);
                if (!ok) {
                    CHECK_MSG(0, "neuron %d/%d rank %d: sample %u max %.9g, probe: sample %d max %.9g", l, k, rank + 1,
                              top[rank].sample, top[rank].max_act, best, smax[best]);
                    bad++;
                }
            }
        }
    /* the samples table counts the probe's labels */
    sqlite3 *db = vlmn_run_db(r);
    sqlite3_stmt *q;
    CHECK(sqlite3_prepare_v2(db, "SELECT sample_index, n_image_tokens, n_text_tokens FROM samples ORDER BY 1", -1, &q,
                             NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int i = sqlite3_column_int(q, 0);
        int64_t ni = 0, nt = 0;
        for (int64_t t = 0; i < NS && t < P[i].T; t++) {
            ni += P[i].cls[t] == 0;
            nt += P[i].cls[t] == 1;
        }
        CHECK_EQ_INT(sqlite3_column_int64(q, 1), ni);
        CHECK_EQ_INT(sqlite3_column_int64(q, 2), nt);
    }
    sqlite3_finalize(q);
out:
    vlmn_run_close(r);
    for (int i = 0; i < ns; i++) {
        free(P[i].acts);
        free(P[i].cls);
    }
}

/* Issue 6 "done when": (p_v, p_t, p_m, p_u) and the label of EVERY neuron, computed here from
 * the probe activations of every sample with plain code (global max over counted tokens, top-N
 * samples by sample max, every image/answer token of those samples normalised and counted, Table 1
 * of the paper, tie rule unknown > multimodal > text > visual of docs/analysis.md), must equal
 * what `vlmn classify` stores, for three threshold settings in both normalisation modes. The
 * planted model and dataset make all four sample types occur (checked: otherwise vacuous). */
enum { CTOPN = 10 };

typedef struct {
    const char *tv, *nv, *tt, *nt;
} cls_setting;

static const char *expected_label(const int n[4]) /* n: visual, text, multimodal, unknown */
{
    static const int order[4] = {3, 2, 1, 0}; /* less specific first */
    static const char *names[4] = {"visual", "text", "multimodal", "unknown"};
    int best = order[0];
    for (int q = 1; q < 4; q++)
        if (n[order[q]] > n[best]) best = order[q];
    return names[best];
}

static double norm_act(float a, float m, bool floor_mode)
{
    double x = (double)a > 0 ? (double)a : 0.0;
    double v = 10.0 * x / (double)m;
    if (!floor_mode) return v;
    v = floor(v);
    return v < 10 ? v : 10;
}

TEST(classify_equals_probe_brute_force)
{
    const char *bin = getenv("VLMN_BIN");
    if (!bin) {
        CHECK_MSG(0, "VLMN_BIN not set");
        return;
    }
    e2e_case cp;
    CHECK(e2e_case_init(&cp, "classify_vs_probe", "planted", "data.json"));
    char *prefix = cp.prefix, *text = cp.text, *mmproj = cp.mmproj, *dsdir = cp.dsdir, *data = cp.data,
         *run = cp.run;
    char dbpath[700];
    snprintf(dbpath, sizeof dbpath, "%s/run.sqlite", run);
    {
        char *a[] = {(char *)bin, "make-model", "--preset", "planted", "-q", "-o", prefix, NULL};
        CHECK_EQ_INT(e2e_run(a), 0);
        char *b[] = {(char *)bin, "make-dataset", "--preset", "planted", "-n", "40", "-o", dsdir, NULL};
        CHECK_EQ_INT(e2e_run(b), 0);
        char *c[] = {(char *)bin, "record", "-m", text, "--mmproj", mmproj, "--data", data, "--images", dsdir,
                     "-o", run, "--top-n", "10", "-t", "1", "-q", NULL};
        CHECK_EQ_INT(e2e_run(c), 0);
    }
    static probe_t P[NS];
    int L = 0, F = 0;
    int ns = probe_all(&cp, P, &L, &F);
    CHECK_EQ_INT(ns, NS);
    if (ns != NS || L <= 0 || F <= 0) goto out;

    /* per neuron: global max over counted tokens and its top-N samples (ties: lower index) */
    int nn = L * F;
    float *gmax = malloc((size_t)nn * sizeof(float));
    int *top = malloc((size_t)nn * CTOPN * sizeof(int));
    int distinct_tops = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < F; k++) {
            float smax[NS], g = -INFINITY;
            sample_maxima(P, F, l, k, smax);
            for (int i = 0; i < NS; i++) g = smax[i] > g ? smax[i] : g;
            gmax[l * F + k] = g;
            int *tp = top + (size_t)(l * F + k) * CTOPN;
            top_samples(smax, CTOPN, tp);
            if (l * F + k > 0 && memcmp(tp, top, CTOPN * sizeof(int)) != 0) distinct_tops++;
        }
    CHECK_MSG(distinct_tops > 0, "every neuron has the same top-%d samples: the test would be trivial", CTOPN);

    static const cls_setting settings[3] = {{"2", "4", "3", "2"}, {"0", "0", "1", "0"}, {"5", "7", "6", "5"}};
    for (int si = 0; si < 3; si++)
        for (int fm = 1; fm >= 0; fm--) {
            const cls_setting *cs = &settings[si];
            const char *mode = fm ? "floor" : "continuous";
            char *a[] = {(char *)bin, "classify", run, "--tv", (char *)cs->tv, "--nv", (char *)cs->nv, "--tt",
                         (char *)cs->tt, "--nt", (char *)cs->nt, "--normalize", (char *)mode, NULL};
            CHECK_EQ_INT(e2e_run(a), 0);
            double Tv = atof(cs->tv), Tt = atof(cs->tt);
            int nv = atoi(cs->nv), nt = atoi(cs->nt);
            sqlite3 *db = NULL;
            CHECK(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
            sqlite3_stmt *q = NULL;
            CHECK(sqlite3_prepare_v2(db,
                                     "SELECT layer, neuron, p_visual, p_text, p_multimodal, p_unknown, label, n_top "
                                     "FROM classification ORDER BY layer, neuron",
                                     -1, &q, NULL) == SQLITE_OK);
            int rows = 0, bad = 0, pos[4] = {0};
            while (q && sqlite3_step(q) == SQLITE_ROW) {
                int l = sqlite3_column_int(q, 0), k = sqlite3_column_int(q, 1);
                if (l < 0 || l >= L || k < 0 || k >= F || l * F + k != rows) {
                    CHECK_MSG(0, "%s %s: unexpected row %d/%d", cs->tv, mode, l, k);
                    break;
                }
                rows++;
                int n[4] = {0}; /* visual, text, multimodal, unknown */
                float m = gmax[l * F + k];
                const int *tp = top + (size_t)(l * F + k) * CTOPN;
                for (int rank = 0; rank < CTOPN; rank++) {
                    const probe_t *pr = &P[tp[rank]];
                    int ci = 0, ct = 0;
                    if (m > 0)
                        for (int64_t t = 0; t < pr->T; t++) {
                            if (pr->cls[t] == 2) continue;
                            double v = norm_act(pr->acts[((int64_t)l * pr->T + t) * F + k], m, fm);
                            if (pr->cls[t] == 0) ci += v > Tv;
                            else ct += v > Tt;
                        }
                    bool vis = ci > nv, txt = ct > nt;
                    n[vis && txt ? 2 : vis ? 0 : txt ? 1 : 3]++;
                }
                const char *lab = expected_label(n);
                const char *got = (const char *)sqlite3_column_text(q, 6);
                bool ok = sqlite3_column_int(q, 7) == CTOPN && got && !strcmp(got, lab);
                for (int c = 0; c < 4; c++) {
                    ok = ok && fabs(sqlite3_column_double(q, 2 + c) - (double)n[c] / CTOPN) < 1e-9;
                    pos[c] += n[c] > 0;
                }
                if (!ok && bad++ < 5)
                    CHECK_MSG(0,
                              "tv %s nv %s tt %s nt %s %s: neuron %d/%d: vlmn %.3f %.3f %.3f %.3f %s (n_top %d), "
                              "probe %d %d %d %d of %d %s",
                              cs->tv, cs->nv, cs->tt, cs->nt, mode, l, k, sqlite3_column_double(q, 2),
                              sqlite3_column_double(q, 3), sqlite3_column_double(q, 4), sqlite3_column_double(q, 5),
                              got ? got : "(null)", sqlite3_column_int(q, 7), n[0], n[1], n[2], n[3], CTOPN, lab);
            }
            sqlite3_finalize(q);
            sqlite3_close(db);
            CHECK_EQ_INT(rows, nn);
            CHECK_MSG(bad == 0, "tv %s %s: %d of %d neurons differ", cs->tv, mode, bad, nn);
            if (si == 0 && fm) /* the default setting must exercise every sample type */
                CHECK_MSG(pos[0] > 0 && pos[1] > 0 && pos[2] > 0 && pos[3] > 0,
                          "default setting: neurons with p_v>0 %d, p_t>0 %d, p_m>0 %d, p_u>0 %d (need all > 0)",
                          pos[0], pos[1], pos[2], pos[3]);
            if (si == 0) printf("%s defaults: neurons with p_v>0 %d, p_t>0 %d, p_m>0 %d, p_u>0 %d of %d\n", mode,
                                pos[0], pos[1], pos[2], pos[3], nn);
        }
    free(gmax);
    free(top);
out:
    for (int i = 0; i < ns; i++) {
        free(P[i].acts);
        free(P[i].cls);
    }
}

TEST_MAIN()
