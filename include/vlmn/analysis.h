/* Analysis of a recorded run: classify every neuron as visual / text / multi-modal /
 * unknown from its top-N samples (paper section 3.2, Table 1), and the paper's
 * statistics over those classes (section 4.3-4.4, Figures 5-7). Flow: run store ->
 * [analysis] -> report. Never runs the model. Definitions: docs/analysis.md. */
#ifndef VLMN_ANALYSIS_H
#define VLMN_ANALYSIS_H

#include <stdio.h>

#include "vlmn/vlmn.h"
#include "vlmn/run.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Neuron / sample types, in the paper's (p_v, p_t, p_m, p_u) order. */
typedef enum vlmn_ntype {
    VLMN_NT_VISUAL = 0,
    VLMN_NT_TEXT = 1,
    VLMN_NT_MULTIMODAL = 2,
    VLMN_NT_UNKNOWN = 3,
    VLMN_NT_COUNT = 4
} vlmn_ntype;

/* "visual", "text", "multimodal", "unknown" (the label stored in the database);
 * NULL for an out-of-range value. */
const char *vlmn_ntype_name(int t);
/* Inverse of vlmn_ntype_name; -1 when the name is not one of the four. */
int vlmn_ntype_parse(const char *name);

typedef enum vlmn_norm_mode {
    VLMN_NORM_FLOOR = 0,      /* min(10, floor(10 * max(a,0) / max_act)) (Bills et al.) */
    VLMN_NORM_CONTINUOUS = 1  /* 10 * max(a,0) / max_act */
} vlmn_norm_mode;

const char *vlmn_norm_name(vlmn_norm_mode m);            /* "floor" / "continuous" */
int vlmn_norm_parse(const char *name);                    /* mode, or -1 */

/* Thresholds of section 3.2: a sample is visual-activated when MORE than n_v image
 * tokens have a normalised activation GREATER than t_v; text-activated likewise. */
typedef struct vlmn_classify_params {
    double t_v;   /* in [0, 10] */
    int n_v;      /* in [0, VLMN_TOP_TOKENS - 1] */
    double t_t;
    int n_t;
    vlmn_norm_mode norm;
} vlmn_classify_params;

/* The paper's defaults: T_v = 2, n_v = 4, T_t = 3, n_t = 2, floor normalisation. */
void vlmn_classify_defaults(vlmn_classify_params *p);
/* VLMN_E_ARG with a message naming the bad parameter (n above 7: only the 8 largest
 * activations per modality are recorded; T outside [0, 10] or NaN). */
vlmn_status vlmn_classify_check(const vlmn_classify_params *p);

/* Normalised activation of `a` for a neuron whose global maximum is max_act, computed
 * in double precision exactly as docs/analysis.md states; 0 when max_act <= 0. */
double vlmn_normalize(float a, float max_act, vlmn_norm_mode mode);

/* Type of one top sample (Table 1). Parameters must have passed vlmn_classify_check. */
vlmn_ntype vlmn_classify_sample(const vlmn_classify_params *p, float max_act,
                                const vlmn_top_entry *e);

/* Per-neuron result. p_type = count[type] / den. den = n_top, except for a neuron with
 * no top samples (den = 1, count[UNKNOWN] = 1). A neuron with max_act <= 0 gets
 * count[UNKNOWN] = den (p_u = 1). */
typedef struct vlmn_neuron_class {
    uint16_t n_top;                   /* top samples looked at */
    uint16_t den;
    uint16_t count[VLMN_NT_COUNT];
    uint8_t label;                    /* vlmn_ntype */
    float max_act;                    /* the neuron's global maximum (copied) */
} vlmn_neuron_class;

static inline double vlmn_neuron_p(const vlmn_neuron_class *c, int type)
{
    return (double)c->count[type] / (double)c->den;
}

/* Label = the type with the largest count; ties go to the less specific type, in the
 * order unknown > multimodal > text > visual (docs/analysis.md). */
int vlmn_classify_label(const uint16_t count[VLMN_NT_COUNT]);

void vlmn_classify_neuron(const vlmn_classify_params *p, float max_act,
                          const vlmn_top_entry *top, int n_top, vlmn_neuron_class *out);

/* The classification of a whole run, neurons in layer-major order
 * (index = layer * n_ff + neuron). */
typedef struct vlmn_classification {
    int n_layers;
    int n_ff;
    vlmn_classify_params params;
    vlmn_neuron_class *neurons;       /* [n_layers * n_ff], owned */
} vlmn_classification;

vlmn_status vlmn_classification_create(int n_layers, int n_ff, vlmn_classification **out);
void vlmn_classification_free(vlmn_classification *c);

/* Where the classifier reads a neuron's state from: a run, or arrays (tests, bench).
 * Both callbacks are called concurrently from several threads. */
typedef struct vlmn_top_source {
    int n_layers;
    int n_ff;
    void *ctx;
    float (*max_act)(void *ctx, int layer, int neuron);
    const vlmn_top_entry *(*top)(void *ctx, int layer, int neuron, int *n_out);
} vlmn_top_source;

/* Classify every neuron of `src` (OpenMP over neurons). */
vlmn_status vlmn_classify_source(const vlmn_top_source *src, const vlmn_classify_params *p,
                                 vlmn_classification **out);
/* Same, reading the run's stored state. */
vlmn_status vlmn_classify_run(vlmn_run *run, const vlmn_classify_params *p,
                              vlmn_classification **out);

/* Database (db is a sqlite3 *, e.g. vlmn_run_db()): write the `classification` and
 * `classification_params` tables in one transaction, replacing earlier ones. */
vlmn_status vlmn_classification_save(void *db, const vlmn_classification *c);
/* Read them back; VLMN_E_NOTFOUND when the run was never classified. */
vlmn_status vlmn_classification_load(void *db, vlmn_classification **out);

/* ---- statistics (paper Figures 5, 6, 7 and Table 3) ---- */

#define VLMN_STATS_BINS 10
#define VLMN_STATS_N_PRUNE 4

typedef struct vlmn_stats {
    vlmn_classify_params params;                  /* of the classification */
    int n_layers;
    int n_ff;
    int64_t n_neurons;
    /* Fig. 5: hist[t][k] counts neurons with k/10 <= p_t < (k+1)/10 (k < 9); the last
     * bin is 0.9 <= p_t <= 1. Bin of p = c/d is min(9, floor(10 c / d)) in integers. */
    int64_t hist[VLMN_NT_COUNT][VLMN_STATS_BINS];
    double above_threshold;                       /* 0.8 */
    int64_t above[VLMN_NT_COUNT];                 /* neurons with p_t > above_threshold */
    /* Fig. 6: neurons per label. */
    int64_t label_count[VLMN_NT_COUNT];
    /* Fig. 7: the top_k = max(1, round(top_frac * n_neurons)) neurons ranked by p_t
     * (ties: lower layer, then lower neuron), counted per layer. */
    double top_frac;
    int64_t top_k;
    int64_t *per_layer[VLMN_NT_COUNT];            /* [n_layers] each, owned */
    double top_min_p[VLMN_NT_COUNT];              /* p_t of the last selected neuron */
    int64_t top_tied[VLMN_NT_COUNT];              /* neurons (of all) whose p_t equals it */
    int64_t top_tied_in[VLMN_NT_COUNT];           /* ... of which selected */
    /* Appendix B.1 / Table 3: neurons with p_u >= tau for tau = 0.9, 0.8, 0.7, 0.6. */
    double prune_tau[VLMN_STATS_N_PRUNE];
    int64_t prune_count[VLMN_STATS_N_PRUNE];
} vlmn_stats;

/* top_frac in (0, 1]. */
vlmn_status vlmn_stats_compute(const vlmn_classification *c, double top_frac, vlmn_stats **out);
void vlmn_stats_free(vlmn_stats *s);

/* The neurons ranked by p_type (desc; ties lower layer, then lower neuron first): fills
 * idx[0..k-1] with layer-major indices. k <= n_layers * n_ff. */
vlmn_status vlmn_stats_rank(const vlmn_classification *c, int type, int64_t k, int64_t *idx);

/* Text tables / one JSON object (with a trailing newline). */
vlmn_status vlmn_stats_print_text(FILE *f, const vlmn_stats *s);
vlmn_status vlmn_stats_print_json(FILE *f, const vlmn_stats *s);

#ifdef __cplusplus
}
#endif
#endif
