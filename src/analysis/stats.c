/* The paper's statistics over a run's classification (section 4.3-4.4, Appendix B.1):
 * Fig. 5 histograms of p_v, p_t, p_m, p_u, Fig. 6 class distribution, Fig. 7 per-layer
 * counts of each type's most probable neurons, Table 3 pruning ratios. Probabilities
 * are compared as exact fractions count/den, so bins and ties never depend on rounding. */
#include "vlmn/analysis.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static const char *const type_titles[VLMN_NT_COUNT] = {"visual", "text", "multimodal", "unknown"};

/* Sort context for qsort_r: rank by p_type desc, then by layer-major index asc. */
struct rank_ctx {
    const vlmn_neuron_class *n;
    int type;
};

static int rank_cmp(const void *a, const void *b, void *vctx)
{
    const struct rank_ctx *ctx = vctx;
    int64_t ia = *(const int64_t *)a, ib = *(const int64_t *)b;
    const vlmn_neuron_class *na = &ctx->n[ia], *nb = &ctx->n[ib];
    /* ca/da vs cb/db exactly: ca*db vs cb*da (both < 2^32). */
    uint64_t l = (uint64_t)na->count[ctx->type] * nb->den, r = (uint64_t)nb->count[ctx->type] * na->den;
    if (l != r) return l > r ? -1 : 1;
    return ia < ib ? -1 : ia > ib;
}

vlmn_status vlmn_stats_rank(const vlmn_classification *c, int type, int64_t k, int64_t *idx)
{
    int64_t n = (int64_t)c->n_layers * c->n_ff;
    if (type < 0 || type >= VLMN_NT_COUNT || k < 0 || k > n)
        return vlmn_error(VLMN_E_ARG, "rank: type %d, k = %lld of %lld neurons", type, (long long)k, (long long)n);
    int64_t *all = vlmn_malloc((size_t)n * sizeof *all);
    if (!all) return vlmn_error(VLMN_E_NOMEM, "rank: out of memory");
    for (int64_t i = 0; i < n; i++) all[i] = i;
    struct rank_ctx ctx = {c->neurons, type};
    qsort_r(all, (size_t)n, sizeof *all, rank_cmp, &ctx);
    memcpy(idx, all, (size_t)k * sizeof *idx);
    vlmn_free(all);
    return VLMN_OK;
}

void vlmn_stats_free(vlmn_stats *s)
{
    if (!s) return;
    for (int t = 0; t < VLMN_NT_COUNT; t++) vlmn_free(s->per_layer[t]);
    vlmn_free(s);
}

vlmn_status vlmn_stats_compute(const vlmn_classification *c, double top_frac, vlmn_stats **out)
{
    *out = NULL;
    if (!(top_frac > 0 && top_frac <= 1))
        return vlmn_error(VLMN_E_ARG, "top fraction %g: must be in (0, 1]", top_frac);
    vlmn_status st = VLMN_OK;
    int64_t *idx = NULL;
    vlmn_stats *s = vlmn_calloc(1, sizeof *s);
    if (!s) return vlmn_error(VLMN_E_NOMEM, "stats: out of memory");
    s->params = c->params;
    s->n_layers = c->n_layers;
    s->n_ff = c->n_ff;
    s->n_neurons = (int64_t)c->n_layers * c->n_ff;
    s->above_threshold = 0.8;
    s->top_frac = top_frac;
    static const int tau10[VLMN_STATS_N_PRUNE] = {9, 8, 7, 6};
    for (int i = 0; i < VLMN_STATS_N_PRUNE; i++) s->prune_tau[i] = tau10[i] / 10.0;
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        s->per_layer[t] = vlmn_calloc((size_t)c->n_layers, sizeof(int64_t));
        if (!s->per_layer[t]) {
            st = vlmn_error(VLMN_E_NOMEM, "stats: out of memory");
            goto fail;
        }
    }
    for (int64_t i = 0; i < s->n_neurons; i++) {
        const vlmn_neuron_class *nc = &c->neurons[i];
        for (int t = 0; t < VLMN_NT_COUNT; t++) {
            uint32_t cnt = nc->count[t], den = nc->den;
            uint32_t bin = 10 * cnt / den;
            s->hist[t][bin > 9 ? 9 : bin]++;
            if (10 * cnt > 8 * den) s->above[t]++; /* p > 0.8 */
        }
        for (int k = 0; k < VLMN_STATS_N_PRUNE; k++)
            if (10 * (uint32_t)nc->count[VLMN_NT_UNKNOWN] >= (uint32_t)tau10[k] * nc->den) s->prune_count[k]++;
        s->label_count[nc->label < VLMN_NT_COUNT ? nc->label : VLMN_NT_UNKNOWN]++;
    }
    s->top_k = llround(top_frac * (double)s->n_neurons);
    if (s->top_k < 1) s->top_k = 1;
    if (s->top_k > s->n_neurons) s->top_k = s->n_neurons;
    idx = vlmn_malloc((size_t)s->top_k * sizeof *idx);
    if (!idx) {
        st = vlmn_error(VLMN_E_NOMEM, "stats: out of memory");
        goto fail;
    }
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        if ((st = vlmn_stats_rank(c, t, s->top_k, idx))) goto fail;
        for (int64_t i = 0; i < s->top_k; i++) s->per_layer[t][idx[i] / c->n_ff]++;
        const vlmn_neuron_class *last = &c->neurons[idx[s->top_k - 1]];
        s->top_min_p[t] = vlmn_neuron_p(last, t);
        /* How many neurons share the cut-off probability (exact fractions): when more
         * than were selected, the layer order of the tie rule decided which. */
        for (int64_t i = 0; i < s->n_neurons; i++) {
            const vlmn_neuron_class *nc = &c->neurons[i];
            if ((uint64_t)nc->count[t] * last->den == (uint64_t)last->count[t] * nc->den) s->top_tied[t]++;
        }
        for (int64_t i = 0; i < s->top_k; i++) {
            const vlmn_neuron_class *nc = &c->neurons[idx[i]];
            if ((uint64_t)nc->count[t] * last->den == (uint64_t)last->count[t] * nc->den) s->top_tied_in[t]++;
        }
    }
    vlmn_free(idx);
    *out = s;
    return VLMN_OK;
fail:
    vlmn_free(idx);
    vlmn_stats_free(s);
    return st;
}

static double share(int64_t k, int64_t n) { return n > 0 ? (double)k / (double)n : 0.0; }

vlmn_status vlmn_stats_print_text(FILE *f, const vlmn_stats *s)
{
    const vlmn_classify_params *p = &s->params;
    fprintf(f, "%lld neurons (%d layers x %d), classified with T_v=%g n_v=%d T_t=%g n_t=%d normalize=%s\n\n",
            (long long)s->n_neurons, s->n_layers, s->n_ff, p->t_v, p->n_v, p->t_t, p->n_t, vlmn_norm_name(p->norm));

    fprintf(f, "Figure 5: histograms of p_visual, p_text, p_multimodal, p_unknown (neurons per bin)\n");
    fprintf(f, "%-11s %12s %12s %12s %12s\n", "p", "visual", "text", "multimodal", "unknown");
    for (int k = 0; k < VLMN_STATS_BINS; k++) {
        char bin[32];
        snprintf(bin, sizeof bin, "[%.1f, %.1f%c", k / 10.0, (k + 1) / 10.0, k == VLMN_STATS_BINS - 1 ? ']' : ')');
        fprintf(f, "%-11s", bin);
        for (int t = 0; t < VLMN_NT_COUNT; t++) fprintf(f, " %12lld", (long long)s->hist[t][k]);
        fputc('\n', f);
    }
    fprintf(f, "%-11s", "p > 0.8");
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        char cell[32];
        snprintf(cell, sizeof cell, "%.1f%%", 100 * share(s->above[t], s->n_neurons));
        fprintf(f, " %12s", cell);
    }
    fputc('\n', f);
    fprintf(f, "%-11s", "(neurons)");
    for (int t = 0; t < VLMN_NT_COUNT; t++) fprintf(f, " %12lld", (long long)s->above[t]);
    fprintf(f, "\n\n");

    fprintf(f, "Figure 6: class distribution (label = most probable type)\n");
    fprintf(f, "%-11s %12s %8s\n", "label", "neurons", "share");
    for (int t = 0; t < VLMN_NT_COUNT; t++)
        fprintf(f, "%-11s %12lld %7.1f%%\n", type_titles[t], (long long)s->label_count[t],
                100 * share(s->label_count[t], s->n_neurons));
    fputc('\n', f);

    fprintf(f, "Figure 7: per-layer counts of the top %g%% of neurons (%lld of %lld) ranked by each type's p\n",
            100 * s->top_frac, (long long)s->top_k, (long long)s->n_neurons);
    fprintf(f, "%-11s %12s %12s %12s %12s\n", "layer", "visual", "text", "multimodal", "unknown");
    for (int l = 0; l < s->n_layers; l++) {
        fprintf(f, "%-11d", l);
        for (int t = 0; t < VLMN_NT_COUNT; t++) fprintf(f, " %12lld", (long long)s->per_layer[t][l]);
        fputc('\n', f);
    }
    fprintf(f, "%-11s", "lowest p");
    for (int t = 0; t < VLMN_NT_COUNT; t++) fprintf(f, " %12.3f", s->top_min_p[t]);
    fprintf(f, "\n%-11s", "tied at it");
    for (int t = 0; t < VLMN_NT_COUNT; t++) {
        char cell[48];
        snprintf(cell, sizeof cell, "%lld/%lld", (long long)s->top_tied_in[t], (long long)s->top_tied[t]);
        fprintf(f, " %12s", cell);
    }
    fprintf(f, "\n(tied at it: selected/all neurons whose p equals the lowest selected p; ties go to lower layers)\n\n");

    fprintf(f, "Table 3 (Appendix B.1): neurons with p_unknown >= tau (pruning candidates)\n");
    fprintf(f, "%-11s %12s %8s\n", "tau", "neurons", "share");
    for (int k = 0; k < VLMN_STATS_N_PRUNE; k++)
        fprintf(f, "%-11.1f %12lld %7.1f%%\n", s->prune_tau[k], (long long)s->prune_count[k],
                100 * share(s->prune_count[k], s->n_neurons));
    if (ferror(f)) return vlmn_error(VLMN_E_IO, "stats: write failed");
    return VLMN_OK;
}

static cJSON *count_share(int64_t k, int64_t n)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddNumberToObject(o, "count", (double)k) || !cJSON_AddNumberToObject(o, "share", share(k, n))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *int_array(const int64_t *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber((double)v[i]);
        if (!x) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

/* Adds `item` to `obj` as `name`; false (and frees nothing of obj) when item is NULL. */
static int add(cJSON *obj, const char *name, cJSON *item)
{
    if (!item) return 0;
    cJSON_AddItemToObject(obj, name, item);
    return 1;
}

vlmn_status vlmn_stats_print_json(FILE *f, const vlmn_stats *s)
{
    const vlmn_classify_params *p = &s->params;
    cJSON *root = cJSON_CreateObject(), *o = NULL;
    int ok = root != NULL;
    ok = ok && cJSON_AddNumberToObject(root, "n_layers", s->n_layers);
    ok = ok && cJSON_AddNumberToObject(root, "n_ff", s->n_ff);
    ok = ok && cJSON_AddNumberToObject(root, "n_neurons", (double)s->n_neurons);
    ok = ok && add(root, "params", o = cJSON_CreateObject());
    ok = ok && cJSON_AddNumberToObject(o, "t_v", p->t_v) && cJSON_AddNumberToObject(o, "n_v", p->n_v) &&
         cJSON_AddNumberToObject(o, "t_t", p->t_t) && cJSON_AddNumberToObject(o, "n_t", p->n_t) &&
         cJSON_AddStringToObject(o, "normalize", vlmn_norm_name(p->norm));

    /* Fig. 5 */
    cJSON *h = NULL;
    ok = ok && add(root, "histogram", h = cJSON_CreateObject());
    if (ok) {
        double edges[VLMN_STATS_BINS + 1];
        for (int k = 0; k <= VLMN_STATS_BINS; k++) edges[k] = k / 10.0;
        ok = add(h, "bin_edges", cJSON_CreateDoubleArray(edges, VLMN_STATS_BINS + 1));
        for (int t = 0; ok && t < VLMN_NT_COUNT; t++) ok = add(h, type_titles[t], int_array(s->hist[t], VLMN_STATS_BINS));
    }
    ok = ok && cJSON_AddNumberToObject(root, "above_threshold", s->above_threshold);
    ok = ok && add(root, "above", o = cJSON_CreateObject());
    for (int t = 0; ok && t < VLMN_NT_COUNT; t++) ok = add(o, type_titles[t], count_share(s->above[t], s->n_neurons));

    /* Fig. 6 */
    ok = ok && add(root, "labels", o = cJSON_CreateObject());
    for (int t = 0; ok && t < VLMN_NT_COUNT; t++)
        ok = add(o, type_titles[t], count_share(s->label_count[t], s->n_neurons));

    /* Fig. 7 */
    cJSON *top = NULL, *pl = NULL, *mp = NULL;
    ok = ok && add(root, "top", top = cJSON_CreateObject());
    ok = ok && cJSON_AddNumberToObject(top, "frac", s->top_frac) && cJSON_AddNumberToObject(top, "k", (double)s->top_k);
    cJSON *ti = NULL, *tin = NULL;
    ok = ok && add(top, "per_layer", pl = cJSON_CreateObject()) && add(top, "min_p", mp = cJSON_CreateObject()) &&
         add(top, "tied", ti = cJSON_CreateObject()) && add(top, "tied_selected", tin = cJSON_CreateObject());
    for (int t = 0; ok && t < VLMN_NT_COUNT; t++)
        ok = add(pl, type_titles[t], int_array(s->per_layer[t], s->n_layers)) &&
             cJSON_AddNumberToObject(mp, type_titles[t], s->top_min_p[t]) &&
             cJSON_AddNumberToObject(ti, type_titles[t], (double)s->top_tied[t]) &&
             cJSON_AddNumberToObject(tin, type_titles[t], (double)s->top_tied_in[t]);

    /* Table 3 */
    cJSON *pr = NULL;
    ok = ok && add(root, "prune_unknown", pr = cJSON_CreateArray());
    for (int k = 0; ok && k < VLMN_STATS_N_PRUNE; k++) {
        cJSON *e = count_share(s->prune_count[k], s->n_neurons);
        ok = e && cJSON_AddNumberToObject(e, "tau", s->prune_tau[k]);
        if (e) cJSON_AddItemToArray(pr, e);
    }
    char *txt = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!txt) return vlmn_error(VLMN_E_NOMEM, "stats: JSON: out of memory");
    fputs(txt, f);
    fputc('\n', f);
    free(txt);
    if (ferror(f)) return vlmn_error(VLMN_E_IO, "stats: write failed");
    return VLMN_OK;
}
