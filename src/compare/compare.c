/* vlmn_compare_runs: two runs of the same dataset compared neuron by neuron (top lists,
 * global maxima, labels and p_*) and by the paper's statistics. Reads run stores and
 * classifications only; never runs the model. Definitions: docs/compare.md. */
#include "vlmn/compare.h"
#include "vlmn/record.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[VLMN_NT_COUNT] = {"visual", "text", "multimodal", "unknown"};

/* Same sample indices and ids in both samples tables; counts the samples whose status
 * differs. */
static vlmn_status check_samples(vlmn_run *a, vlmn_run *b, int64_t *status_differs)
{
    const char *q = "SELECT sample_index, sample_id, status FROM samples ORDER BY sample_index";
    sqlite3_stmt *sa = NULL, *sb = NULL;
    vlmn_status st = VLMN_OK;
    *status_differs = 0;
    if (vlmn_run_n_samples(a) != vlmn_run_n_samples(b))
        return vlmn_error(VLMN_E_MISMATCH, "%s has %lld samples, %s has %lld: not runs of the same dataset",
                          vlmn_run_dir(a), (long long)vlmn_run_n_samples(a), vlmn_run_dir(b),
                          (long long)vlmn_run_n_samples(b));
    if (sqlite3_prepare_v2(vlmn_run_db(a), q, -1, &sa, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(vlmn_run_db(b), q, -1, &sb, NULL) != SQLITE_OK) {
        st = vlmn_error(VLMN_E_DB, "%s: samples: %s", sa ? vlmn_run_dir(b) : vlmn_run_dir(a),
                        sqlite3_errmsg(vlmn_run_db(sa ? b : a)));
        goto done;
    }
    for (;;) {
        int ra = sqlite3_step(sa), rb = sqlite3_step(sb);
        if (ra == SQLITE_DONE && rb == SQLITE_DONE) break;
        if (ra != SQLITE_ROW || rb != SQLITE_ROW) {
            st = vlmn_error(VLMN_E_DB, "%s: samples: read failed", ra != SQLITE_ROW ? vlmn_run_dir(a) : vlmn_run_dir(b));
            break;
        }
        int64_t ia = sqlite3_column_int64(sa, 0), ib = sqlite3_column_int64(sb, 0);
        const char *ida = (const char *)sqlite3_column_text(sa, 1), *idb = (const char *)sqlite3_column_text(sb, 1);
        if (ia != ib || !ida || !idb || strcmp(ida, idb)) {
            st = vlmn_error(VLMN_E_MISMATCH, "%s and %s differ at sample %lld (id '%s' vs '%s'): not runs of the same dataset",
                            vlmn_run_dir(a), vlmn_run_dir(b), (long long)(ia < ib ? ia : ib), ida ? ida : "",
                            idb ? idb : "");
            break;
        }
        const char *ka = (const char *)sqlite3_column_text(sa, 2), *kb = (const char *)sqlite3_column_text(sb, 2);
        if (!ka || !kb || strcmp(ka, kb)) ++*status_differs;
    }
done:
    sqlite3_finalize(sa);
    sqlite3_finalize(sb);
    return st;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

/* Jaccard index of the sample sets of two top lists (n <= VLMN_REC_MAX_TOP_N each). */
static double jaccard(const vlmn_top_entry *ea, int na, const vlmn_top_entry *eb, int nb, uint32_t *sa, uint32_t *sb)
{
    if (na == 0 && nb == 0) return 1.0;
    for (int i = 0; i < na; i++) sa[i] = ea[i].sample;
    for (int i = 0; i < nb; i++) sb[i] = eb[i].sample;
    qsort(sa, (size_t)na, sizeof *sa, cmp_u32);
    qsort(sb, (size_t)nb, sizeof *sb, cmp_u32);
    int i = 0, j = 0, both = 0;
    while (i < na && j < nb) {
        if (sa[i] == sb[j]) both++, i++, j++;
        else if (sa[i] < sb[j]) i++;
        else j++;
    }
    return (double)both / (double)(na + nb - both);
}

static double rel_err(float a, float b)
{
    double d = fabs((double)b - (double)a), m = fmax(fabs((double)a), fabs((double)b));
    if (m == 0) return 0;
    if (!isfinite(d)) return 1; /* an infinite maximum on one side only */
    return d / m;
}

/* Sums of one layer or of all; divided by the neuron count at the end. */
typedef struct acc {
    int64_t n, identical, same_label, all_within;
    double jac, err_sum, err_max, pdiff[VLMN_NT_COUNT];
    int64_t within[VLMN_NT_COUNT];
} acc;

static void acc_add(acc *s, const acc *x)
{
    s->n += x->n, s->identical += x->identical, s->same_label += x->same_label, s->all_within += x->all_within;
    s->jac += x->jac, s->err_sum += x->err_sum;
    if (x->err_max > s->err_max) s->err_max = x->err_max;
    for (int t = 0; t < VLMN_NT_COUNT; t++) s->pdiff[t] += x->pdiff[t], s->within[t] += x->within[t];
}

static void acc_finish(const acc *s, vlmn_compare_part *p)
{
    double n = s->n ? (double)s->n : 1;
    p->n_neurons = s->n;
    p->mean_jaccard = s->jac / n;
    p->identical_lists = (double)s->identical / n;
    p->max_rel_err_mean = s->err_sum / n;
    p->max_rel_err_max = s->err_max;
    p->label_agreement = (double)s->same_label / n;
    p->p_abs_diff_all = 0;
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        p->p_abs_diff[t] = s->pdiff[t] / n;
        p->p_within[t] = (double)s->within[t] / n;
        p->p_abs_diff_all += p->p_abs_diff[t] / VLMN_NT_COUNT;
    }
    p->p_within_all = (double)s->all_within / n;
}

/* Loads a's classification; *have = false when the run was never classified. */
static vlmn_status load_class(vlmn_run *r, vlmn_classification **c, bool *have)
{
    vlmn_status st = vlmn_classification_load(vlmn_run_db(r), c);
    *have = st == VLMN_OK;
    if (st == VLMN_E_NOTFOUND) return VLMN_OK;
    if (st) return vlmn_error_prefix(st, "%s", vlmn_run_dir(r));
    if ((*c)->n_layers != vlmn_run_n_layers(r) || (*c)->n_ff != vlmn_run_n_ff(r))
        return vlmn_error(VLMN_E_MISMATCH, "%s: classification shape differs from the run: classify it again",
                          vlmn_run_dir(r));
    return VLMN_OK;
}

vlmn_status vlmn_compare_runs(vlmn_run *a, vlmn_run *b, double p_tol, double top_frac, vlmn_compare **out)
{
    *out = NULL;
    int L = vlmn_run_n_layers(a), F = vlmn_run_n_ff(a);
    if (L != vlmn_run_n_layers(b) || F != vlmn_run_n_ff(b))
        return vlmn_error(VLMN_E_MISMATCH, "%s has %d layers x %d neurons, %s has %d x %d: not runs of the same model shape",
                          vlmn_run_dir(a), L, F, vlmn_run_dir(b), vlmn_run_n_layers(b), vlmn_run_n_ff(b));
    if (!(p_tol >= 0)) return vlmn_error(VLMN_E_ARG, "compare: p tolerance must be >= 0");
    vlmn_compare *c = vlmn_calloc(1, sizeof *c);
    vlmn_classification *ca = NULL, *cb = NULL;
    uint32_t *sa = NULL, *sb = NULL;
    acc *la = NULL;
    vlmn_status st;
    if (!c) return vlmn_error(VLMN_E_NOMEM, "compare: out of memory");
    c->n_layers = L, c->n_ff = F, c->p_tol = p_tol;
    c->top_n_a = vlmn_run_top_n(a), c->top_n_b = vlmn_run_top_n(b);
    c->top_n = c->top_n_a < c->top_n_b ? c->top_n_a : c->top_n_b;
    c->n_samples = vlmn_run_n_samples(a);
    if ((st = check_samples(a, b, &c->status_differs))) goto fail;
    bool ha, hb;
    if ((st = load_class(a, &ca, &ha)) || (st = load_class(b, &cb, &hb))) goto fail;
    c->classified = ha && hb;
    if (c->classified) {
        c->same_params = ca->params.t_v == cb->params.t_v && ca->params.n_v == cb->params.n_v &&
                         ca->params.t_t == cb->params.t_t && ca->params.n_t == cb->params.n_t &&
                         ca->params.norm == cb->params.norm;
        if ((st = vlmn_stats_compute(ca, top_frac, &c->stats_a)) || (st = vlmn_stats_compute(cb, top_frac, &c->stats_b)))
            goto fail;
    }
    c->layers = vlmn_calloc((size_t)(L > 0 ? L : 1), sizeof *c->layers);
    la = vlmn_calloc((size_t)(L > 0 ? L : 1), sizeof *la);
    sa = vlmn_malloc((size_t)c->top_n * sizeof *sa + 1);
    sb = vlmn_malloc((size_t)c->top_n * sizeof *sb + 1);
    if (!c->layers || !la || !sa || !sb) {
        st = vlmn_error(VLMN_E_NOMEM, "compare: out of memory");
        goto fail;
    }
    acc all = {0};
    for (int l = 0; l < L; l++) {
        acc *s = &la[l];
        for (int j = 0; j < F; j++) {
            int na, nb;
            const vlmn_top_entry *ea = vlmn_run_top(a, l, j, &na), *eb = vlmn_run_top(b, l, j, &nb);
            if (na > c->top_n) na = c->top_n;
            if (nb > c->top_n) nb = c->top_n;
            s->n++;
            s->jac += jaccard(ea, na, eb, nb, sa, sb);
            int same = na == nb;
            for (int i = 0; same && i < na; i++) same = ea[i].sample == eb[i].sample;
            s->identical += same;
            double e = rel_err(vlmn_run_stats(a, l, j)->max_act, vlmn_run_stats(b, l, j)->max_act);
            s->err_sum += e;
            if (e > s->err_max) s->err_max = e;
            if (c->classified) {
                const vlmn_neuron_class *na_ = &ca->neurons[(int64_t)l * F + j], *nb_ = &cb->neurons[(int64_t)l * F + j];
                s->same_label += na_->label == nb_->label;
                if (na_->label < VLMN_NT_COUNT && nb_->label < VLMN_NT_COUNT) c->confusion[na_->label][nb_->label]++;
                int allw = 1;
                for (int t = 0; t < VLMN_NT_COUNT; t++) {
                    double d = fabs(vlmn_neuron_p(na_, t) - vlmn_neuron_p(nb_, t));
                    s->pdiff[t] += d;
                    /* a small slack so that a difference of exactly p_tol in count/den counts */
                    int w = d <= p_tol + 1e-12;
                    s->within[t] += w;
                    allw &= w;
                }
                s->all_within += allw;
            }
        }
        acc_finish(s, &c->layers[l]);
        acc_add(&all, s);
    }
    acc_finish(&all, &c->all);
    free(la);
    free(sa);
    free(sb);
    vlmn_classification_free(ca);
    vlmn_classification_free(cb);
    *out = c;
    return VLMN_OK;
fail:
    free(la);
    free(sa);
    free(sb);
    vlmn_classification_free(ca);
    vlmn_classification_free(cb);
    vlmn_compare_free(c);
    return st;
}

void vlmn_compare_free(vlmn_compare *c)
{
    if (!c) return;
    free(c->layers);
    vlmn_stats_free(c->stats_a);
    vlmn_stats_free(c->stats_b);
    free(c);
}

/* Total-variation distance of two count vectors: the share of the total that has to move. */
static double moved(const int64_t *x, const int64_t *y, int n, int64_t total)
{
    int64_t d = 0;
    for (int i = 0; i < n; i++) d += x[i] > y[i] ? x[i] - y[i] : y[i] - x[i];
    return total > 0 ? (double)d / 2.0 / (double)total : 0;
}

vlmn_status vlmn_compare_print_text(FILE *f, const vlmn_compare *c, const char *name_a, const char *name_b)
{
    fprintf(f, "A = %s\nB = %s\n", name_a, name_b);
    fprintf(f, "%lld samples (same ids), %d layers x %d neurons, top-N %d", (long long)c->n_samples, c->n_layers,
            c->n_ff, c->top_n);
    if (c->top_n_a != c->top_n_b) fprintf(f, " (A keeps %d, B %d: the first %d compared)", c->top_n_a, c->top_n_b, c->top_n);
    fputc('\n', f);
    if (c->status_differs) fprintf(f, "warning: %lld samples failed in one run only\n", (long long)c->status_differs);
    if (!c->classified) fprintf(f, "labels and p: not compared (both runs must be classified: vlmn classify RUN)\n");
    else if (!c->same_params) fprintf(f, "warning: the runs were classified with different thresholds\n");
    fprintf(f, "\n%-6s %9s %10s %12s %12s", "layer", "jaccard", "identical", "max err mean", "max err max");
    if (c->classified) fprintf(f, " %9s %10s %10s", "labels", "|dp| mean", "dp<=tol");
    fputc('\n', f);
    for (int l = 0; l <= c->n_layers; l++) {
        const vlmn_compare_part *p = l < c->n_layers ? &c->layers[l] : &c->all;
        char name[16];
        snprintf(name, sizeof name, "%d", l);
        fprintf(f, "%-6s %9.4f %9.2f%% %12.2e %12.2e", l < c->n_layers ? name : "all", p->mean_jaccard,
                100 * p->identical_lists, p->max_rel_err_mean, p->max_rel_err_max);
        if (c->classified)
            fprintf(f, " %8.2f%% %10.2e %9.2f%%", 100 * p->label_agreement, p->p_abs_diff_all, 100 * p->p_within_all);
        fputc('\n', f);
    }
    fprintf(f, "(jaccard: mean over neurons of the top-N sample sets' Jaccard index; identical: same list in the\n"
               " same order; max err: |b - a| / max(|a|, |b|) of each neuron's global maximum; dp<=tol: all four\n"
               " p within %g)\n",
            c->p_tol);
    if (!c->classified) return ferror(f) ? vlmn_error(VLMN_E_IO, "compare: write failed") : VLMN_OK;

    const vlmn_compare_part *p = &c->all;
    fprintf(f, "\n%-11s %12s %12s\n", "p", "|dp| mean", "dp<=tol");
    for (int t = 0; t < VLMN_NT_COUNT; t++)
        fprintf(f, "p_%-9s %12.2e %11.2f%%\n", type_names[t], p->p_abs_diff[t], 100 * p->p_within[t]);
    fprintf(f, "\nlabels (rows A, columns B)\n%-11s", "");
    for (int t = 0; t < VLMN_NT_COUNT; t++) fprintf(f, " %11s", type_names[t]);
    fputc('\n', f);
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        fprintf(f, "%-11s", type_names[t]);
        for (int u = 0; u < VLMN_NT_COUNT; u++) fprintf(f, " %11lld", (long long)c->confusion[t][u]);
        fputc('\n', f);
    }
    const vlmn_stats *x = c->stats_a, *y = c->stats_b;
    fprintf(f, "\nstatistics A -> B (top-frac %g for Fig. 7)\n", x->top_frac);
    fprintf(f, "%-11s %13s %13s %13s %13s\n", "", "visual", "text", "multimodal", "unknown");
    fprintf(f, "%-11s", "Fig.6 label");
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        char cell[48];
        snprintf(cell, sizeof cell, "%lld->%lld", (long long)x->label_count[t], (long long)y->label_count[t]);
        fprintf(f, " %13s", cell);
    }
    fprintf(f, "\n%-11s", "Fig.5 p>0.8");
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        char cell[48];
        snprintf(cell, sizeof cell, "%lld->%lld", (long long)x->above[t], (long long)y->above[t]);
        fprintf(f, " %13s", cell);
    }
    fprintf(f, "\n%-11s", "Fig.5 moved");
    for (int t = 0; t < VLMN_NT_COUNT; t++)
        fprintf(f, " %12.2f%%", 100 * moved(x->hist[t], y->hist[t], VLMN_STATS_BINS, x->n_neurons));
    fprintf(f, "\n%-11s", "Fig.7 moved");
    for (int t = 0; t < VLMN_NT_COUNT; t++)
        fprintf(f, " %12.2f%%", 100 * moved(x->per_layer[t], y->per_layer[t], x->n_layers, x->top_k));
    fprintf(f, "\n%-11s", "Table 3");
    for (int k = 0; k < VLMN_STATS_N_PRUNE; k++) {
        char cell[64];
        snprintf(cell, sizeof cell, "%.1f:%lld->%lld", x->prune_tau[k], (long long)x->prune_count[k],
                 (long long)y->prune_count[k]);
        fprintf(f, " %13s", cell);
    }
    fprintf(f, "\n(moved: share of neurons that change histogram bin / of the top %lld that change layer, as the\n"
               " total-variation distance of the counts; Table 3: p_unknown >= tau counts)\n",
            (long long)x->top_k);
    return ferror(f) ? vlmn_error(VLMN_E_IO, "compare: write failed") : VLMN_OK;
}

static int add(cJSON *o, const char *k, cJSON *v)
{
    if (!v) return 0;
    cJSON_AddItemToObject(o, k, v);
    return 1;
}

static cJSON *part_json(const vlmn_compare_part *p, bool classified)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddNumberToObject(o, "n_neurons", (double)p->n_neurons) &&
             cJSON_AddNumberToObject(o, "mean_jaccard", p->mean_jaccard) &&
             cJSON_AddNumberToObject(o, "identical_lists", p->identical_lists) &&
             cJSON_AddNumberToObject(o, "global_max_rel_err_mean", p->max_rel_err_mean) &&
             cJSON_AddNumberToObject(o, "global_max_rel_err_max", p->max_rel_err_max);
    if (ok && classified) {
        cJSON *d = NULL, *w = NULL;
        ok = cJSON_AddNumberToObject(o, "label_agreement", p->label_agreement) &&
             cJSON_AddNumberToObject(o, "p_mean_abs_diff", p->p_abs_diff_all) &&
             cJSON_AddNumberToObject(o, "p_within_tol", p->p_within_all) &&
             add(o, "p_type_mean_abs_diff", d = cJSON_CreateObject()) && add(o, "p_type_within_tol", w = cJSON_CreateObject());
        for (int t = 0; ok && t < VLMN_NT_COUNT; t++)
            ok = cJSON_AddNumberToObject(d, type_names[t], p->p_abs_diff[t]) &&
                 cJSON_AddNumberToObject(w, type_names[t], p->p_within[t]);
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "label_agreement") && cJSON_AddNullToObject(o, "p_mean_abs_diff") &&
             cJSON_AddNullToObject(o, "p_within_tol");
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *pair_json(const int64_t *x, const int64_t *y, int n)
{
    cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray(), *b = cJSON_CreateArray();
    if (!o || !a || !b) {
        cJSON_Delete(o), cJSON_Delete(a), cJSON_Delete(b);
        return NULL;
    }
    cJSON_AddItemToObject(o, "a", a);
    cJSON_AddItemToObject(o, "b", b);
    for (int i = 0; i < n; i++) {
        cJSON *u = cJSON_CreateNumber((double)x[i]), *v = cJSON_CreateNumber((double)y[i]);
        if (!u || !v) {
            cJSON_Delete(u), cJSON_Delete(v), cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToArray(a, u);
        cJSON_AddItemToArray(b, v);
    }
    return o;
}

static cJSON *stats_json(const vlmn_compare *c)
{
    const vlmn_stats *x = c->stats_a, *y = c->stats_b;
    cJSON *o = cJSON_CreateObject(), *h = NULL, *hm = NULL, *ab = NULL, *pl = NULL, *pm = NULL;
    int ok = o && cJSON_AddNumberToObject(o, "top_frac", x->top_frac) && cJSON_AddNumberToObject(o, "top_k", (double)x->top_k) &&
             add(o, "labels", pair_json(x->label_count, y->label_count, VLMN_NT_COUNT)) &&
             add(o, "labels_moved", cJSON_CreateNumber(moved(x->label_count, y->label_count, VLMN_NT_COUNT, x->n_neurons))) &&
             add(o, "histogram", h = cJSON_CreateObject()) && add(o, "histogram_moved", hm = cJSON_CreateObject()) &&
             add(o, "above", ab = cJSON_CreateObject()) && add(o, "per_layer", pl = cJSON_CreateObject()) &&
             add(o, "per_layer_moved", pm = cJSON_CreateObject()) &&
             add(o, "prune_unknown", pair_json(x->prune_count, y->prune_count, VLMN_STATS_N_PRUNE));
    for (int t = 0; ok && t < VLMN_NT_COUNT; t++)
        ok = add(h, type_names[t], pair_json(x->hist[t], y->hist[t], VLMN_STATS_BINS)) &&
             add(hm, type_names[t], cJSON_CreateNumber(moved(x->hist[t], y->hist[t], VLMN_STATS_BINS, x->n_neurons))) &&
             add(ab, type_names[t], pair_json(&x->above[t], &y->above[t], 1)) &&
             add(pl, type_names[t], pair_json(x->per_layer[t], y->per_layer[t], x->n_layers)) &&
             add(pm, type_names[t], cJSON_CreateNumber(moved(x->per_layer[t], y->per_layer[t], x->n_layers, x->top_k)));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

vlmn_status vlmn_compare_print_json(FILE *f, const vlmn_compare *c, const char *name_a, const char *name_b)
{
    cJSON *root = cJSON_CreateObject(), *ls = NULL;
    int ok = root && cJSON_AddStringToObject(root, "a", name_a) && cJSON_AddStringToObject(root, "b", name_b) &&
             cJSON_AddNumberToObject(root, "n_samples", (double)c->n_samples) &&
             cJSON_AddNumberToObject(root, "n_layers", c->n_layers) && cJSON_AddNumberToObject(root, "n_ff", c->n_ff) &&
             cJSON_AddNumberToObject(root, "top_n", c->top_n) && cJSON_AddNumberToObject(root, "top_n_a", c->top_n_a) &&
             cJSON_AddNumberToObject(root, "top_n_b", c->top_n_b) &&
             cJSON_AddNumberToObject(root, "status_differs", (double)c->status_differs) &&
             cJSON_AddNumberToObject(root, "p_tol", c->p_tol) && cJSON_AddBoolToObject(root, "classified", c->classified) &&
             cJSON_AddBoolToObject(root, "same_params", c->classified && c->same_params) &&
             add(root, "overall", part_json(&c->all, c->classified)) && add(root, "layers", ls = cJSON_CreateArray());
    for (int l = 0; ok && l < c->n_layers; l++) {
        cJSON *p = part_json(&c->layers[l], c->classified);
        ok = p != NULL;
        if (ok) cJSON_AddItemToArray(ls, p);
    }
    if (ok && c->classified) {
        cJSON *m = cJSON_CreateArray();
        ok = add(root, "confusion", m);
        for (int t = 0; ok && t < VLMN_NT_COUNT; t++) {
            double row[VLMN_NT_COUNT];
            for (int u = 0; u < VLMN_NT_COUNT; u++) row[u] = (double)c->confusion[t][u];
            cJSON *r = cJSON_CreateDoubleArray(row, VLMN_NT_COUNT);
            ok = r != NULL;
            if (ok) cJSON_AddItemToArray(m, r);
        }
        ok = ok && add(root, "stats", stats_json(c));
    }
    char *txt = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!txt) return vlmn_error(VLMN_E_NOMEM, "compare: JSON: out of memory");
    fputs(txt, f);
    fputc('\n', f);
    free(txt);
    return ferror(f) ? vlmn_error(VLMN_E_IO, "compare: write failed") : VLMN_OK;
}
