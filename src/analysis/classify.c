/* Neuron classification (paper section 3.2, Table 1): normalise each top sample's
 * recorded activations by the neuron's global maximum, decide visual-/text-activated,
 * and turn the sample types into (p_v, p_t, p_m, p_u) and a label. Reads only the
 * stored top-N state, so reclassifying never runs the model. */
#include "vlmn/analysis.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"

static const char *const type_names[VLMN_NT_COUNT] = {"visual", "text", "multimodal", "unknown"};

const char *vlmn_ntype_name(int t)
{
    return t >= 0 && t < VLMN_NT_COUNT ? type_names[t] : NULL;
}

int vlmn_ntype_parse(const char *name)
{
    for (int t = 0; t < VLMN_NT_COUNT; t++)
        if (name && strcmp(name, type_names[t]) == 0) return t;
    return -1;
}

const char *vlmn_norm_name(vlmn_norm_mode m)
{
    return m == VLMN_NORM_CONTINUOUS ? "continuous" : "floor";
}

int vlmn_norm_parse(const char *name)
{
    if (!name) return -1;
    if (strcmp(name, "floor") == 0) return VLMN_NORM_FLOOR;
    if (strcmp(name, "continuous") == 0) return VLMN_NORM_CONTINUOUS;
    return -1;
}

void vlmn_classify_defaults(vlmn_classify_params *p)
{
    p->t_v = 2;
    p->n_v = 4;
    p->t_t = 3;
    p->n_t = 2;
    p->norm = VLMN_NORM_FLOOR;
}

vlmn_status vlmn_classify_check(const vlmn_classify_params *p)
{
    /* T >= 0 also keeps the -INFINITY padding of missing tokens (normalised to 0) from
     * ever counting as "above T". */
    if (!(p->t_v >= 0 && p->t_v <= 10))
        return vlmn_error(VLMN_E_ARG, "T_v = %g: must be in [0, 10]", p->t_v);
    if (!(p->t_t >= 0 && p->t_t <= 10))
        return vlmn_error(VLMN_E_ARG, "T_t = %g: must be in [0, 10]", p->t_t);
    /* "more than n tokens" needs the (n+1)-th largest activation, and only the
     * VLMN_TOP_TOKENS largest per modality are recorded. */
    if (p->n_v < 0 || p->n_v > VLMN_TOP_TOKENS - 1)
        return vlmn_error(VLMN_E_ARG, "n_v = %d: must be in [0, %d] (the run keeps the %d largest "
                          "image-token activations per sample)", p->n_v, VLMN_TOP_TOKENS - 1, VLMN_TOP_TOKENS);
    if (p->n_t < 0 || p->n_t > VLMN_TOP_TOKENS - 1)
        return vlmn_error(VLMN_E_ARG, "n_t = %d: must be in [0, %d] (the run keeps the %d largest "
                          "text-token activations per sample)", p->n_t, VLMN_TOP_TOKENS - 1, VLMN_TOP_TOKENS);
    if (p->norm != VLMN_NORM_FLOOR && p->norm != VLMN_NORM_CONTINUOUS)
        return vlmn_error(VLMN_E_ARG, "normalisation mode %d unknown", (int)p->norm);
    return VLMN_OK;
}

double vlmn_normalize(float a, float max_act, vlmn_norm_mode mode)
{
    if (!(max_act > 0)) return 0;
    /* a > 0 is false for NaN and -INFINITY (padding): both normalise to 0. */
    double x = a > 0 ? 10.0 * (double)a / (double)max_act : 0.0;
    if (mode == VLMN_NORM_FLOOR) {
        x = floor(x);
        if (x > 10) x = 10;
    }
    return x;
}

/* "More than n tokens above T" holds iff the (n+1)-th largest normalised activation is
 * above T: normalisation is non-decreasing in a, so the order of the recorded (raw,
 * descending) activations is the order of the normalised ones. */
static inline int activated(const float *desc, int n, double t, float max_act, vlmn_norm_mode m)
{
    return vlmn_normalize(desc[n], max_act, m) > t;
}

vlmn_ntype vlmn_classify_sample(const vlmn_classify_params *p, float max_act, const vlmn_top_entry *e)
{
    int v = activated(e->img, p->n_v, p->t_v, max_act, p->norm);
    int t = activated(e->txt, p->n_t, p->t_t, max_act, p->norm);
    /* Table 1. */
    if (v && t) return VLMN_NT_MULTIMODAL;
    if (v) return VLMN_NT_VISUAL;
    if (t) return VLMN_NT_TEXT;
    return VLMN_NT_UNKNOWN;
}

int vlmn_classify_label(const uint16_t count[VLMN_NT_COUNT])
{
    /* Scan from the least specific type; a later (more specific) type must be strictly
     * more probable to win, so a tie never claims more than the data shows. */
    static const int order[VLMN_NT_COUNT] = {VLMN_NT_UNKNOWN, VLMN_NT_MULTIMODAL, VLMN_NT_TEXT, VLMN_NT_VISUAL};
    int best = order[0];
    for (int i = 1; i < VLMN_NT_COUNT; i++)
        if (count[order[i]] > count[best]) best = order[i];
    return best;
}

void vlmn_classify_neuron(const vlmn_classify_params *p, float max_act, const vlmn_top_entry *top,
                          int n_top, vlmn_neuron_class *out)
{
    memset(out, 0, sizeof *out);
    out->max_act = max_act;
    if (n_top <= 0 || !top) {
        out->den = 1;
        out->count[VLMN_NT_UNKNOWN] = 1;
        out->label = VLMN_NT_UNKNOWN;
        return;
    }
    VLMN_ASSERT(n_top <= UINT16_MAX);
    out->n_top = (uint16_t)n_top;
    out->den = (uint16_t)n_top;
    if (!(max_act > 0)) {
        out->count[VLMN_NT_UNKNOWN] = (uint16_t)n_top;
    } else {
        for (int i = 0; i < n_top; i++) out->count[vlmn_classify_sample(p, max_act, &top[i])]++;
    }
    out->label = (uint8_t)vlmn_classify_label(out->count);
}

vlmn_status vlmn_classification_create(int n_layers, int n_ff, vlmn_classification **out)
{
    *out = NULL;
    uint64_t n, bytes;
    if (n_layers <= 0 || n_ff <= 0)
        return vlmn_error(VLMN_E_ARG, "classification of %d layers x %d neurons", n_layers, n_ff);
    if (!vlmn_mul_ok((uint64_t)n_layers, (uint64_t)n_ff, &n) ||
        !vlmn_mul_ok(n, sizeof(vlmn_neuron_class), &bytes) || bytes > SIZE_MAX)
        return vlmn_error(VLMN_E_RANGE, "classification of %d layers x %d neurons: too large", n_layers, n_ff);
    vlmn_classification *c = vlmn_calloc(1, sizeof *c);
    if (!c) return vlmn_error(VLMN_E_NOMEM, "classification: out of memory");
    c->neurons = vlmn_calloc((size_t)n, sizeof(vlmn_neuron_class));
    if (!c->neurons) {
        vlmn_free(c);
        return vlmn_error(VLMN_E_NOMEM, "classification of %d x %d neurons: out of memory", n_layers, n_ff);
    }
    c->n_layers = n_layers;
    c->n_ff = n_ff;
    vlmn_classify_defaults(&c->params);
    *out = c;
    return VLMN_OK;
}

void vlmn_classification_free(vlmn_classification *c)
{
    if (!c) return;
    vlmn_free(c->neurons);
    vlmn_free(c);
}

vlmn_status vlmn_classify_source(const vlmn_top_source *src, const vlmn_classify_params *p,
                                 vlmn_classification **out)
{
    *out = NULL;
    vlmn_status st = vlmn_classify_check(p);
    if (st) return st;
    vlmn_classification *c;
    if ((st = vlmn_classification_create(src->n_layers, src->n_ff, &c))) return st;
    c->params = *p;
    const int64_t n = (int64_t)src->n_layers * src->n_ff;
    const int n_ff = src->n_ff;
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 1024) reduction(| : bad)
    for (int64_t i = 0; i < n; i++) {
        int layer = (int)(i / n_ff), neuron = (int)(i % n_ff);
        int n_top = 0;
        const vlmn_top_entry *top = src->top(src->ctx, layer, neuron, &n_top);
        if (n_top > UINT16_MAX) {
            bad = 1;
            continue;
        }
        vlmn_classify_neuron(p, src->max_act(src->ctx, layer, neuron), top, n_top, &c->neurons[i]);
    }
    if (bad) {
        vlmn_classification_free(c);
        return vlmn_error(VLMN_E_RANGE, "classify: a neuron has more than %d top samples", UINT16_MAX);
    }
    *out = c;
    return VLMN_OK;
}
