/* Comparison of two runs of the same dataset at the level of what a researcher reads out
 * of them (different precisions, engines, machines, or a merged run against one pass):
 * overlap of the top-N sample lists, agreement of labels and p_*, change of the paper's
 * statistics, relative error of the global maxima. Flow: run store -> analysis ->
 * [compare]. Definitions: docs/compare.md. */
#ifndef VLMN_COMPARE_H
#define VLMN_COMPARE_H

#include <stdbool.h>
#include <stdio.h>

#include "vlmn/analysis.h"
#include "vlmn/run.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Figures over one layer, or over all neurons. Shares are in [0, 1]. */
typedef struct vlmn_compare_part {
    int64_t n_neurons;
    double mean_jaccard;        /* mean of |A & B| / |A | B| over the top sample sets (both empty: 1) */
    double identical_lists;     /* share of neurons whose top lists are equal, same samples in the same order */
    double max_rel_err_mean;    /* global maximum: |b - a| / max(|a|, |b|) (0 when both are 0) */
    double max_rel_err_max;
    /* Only when both runs are classified (vlmn_compare.classified): */
    double label_agreement;     /* share of neurons with the same label */
    double p_abs_diff[VLMN_NT_COUNT]; /* mean |p_A - p_B| per type */
    double p_within[VLMN_NT_COUNT];   /* share of neurons with |p_A - p_B| <= p_tol per type */
    double p_abs_diff_all;      /* mean of the four p_abs_diff */
    double p_within_all;        /* share of neurons with all four within p_tol */
} vlmn_compare_part;

typedef struct vlmn_compare {
    int n_layers, n_ff;
    int top_n_a, top_n_b;
    int top_n;                  /* entries compared per list: min(top_n_a, top_n_b) */
    int64_t n_samples;
    int64_t status_differs;     /* samples ok in one run and failed in the other */
    double p_tol;
    bool classified;            /* both runs have a classification */
    bool same_params;           /* ... made with the same thresholds */
    int64_t confusion[VLMN_NT_COUNT][VLMN_NT_COUNT]; /* [label in A][label in B] */
    vlmn_compare_part all;
    vlmn_compare_part *layers;  /* [n_layers], owned */
    vlmn_stats *stats_a, *stats_b; /* Fig. 5-7 / Table 3 of each run when classified, owned */
} vlmn_compare;

/* VLMN_E_MISMATCH with a one-line message when the runs are not of the same dataset
 * (sample count or an id differs) or shape (n_layers, n_ff). Classifications are read
 * from the runs' databases. p_tol >= 0; top_frac in (0, 1] as vlmn_stats_compute. */
vlmn_status vlmn_compare_runs(vlmn_run *a, vlmn_run *b, double p_tol, double top_frac, vlmn_compare **out);
void vlmn_compare_free(vlmn_compare *c);

/* Human-readable tables / one JSON object (trailing newline). */
vlmn_status vlmn_compare_print_text(FILE *f, const vlmn_compare *c, const char *name_a, const char *name_b);
vlmn_status vlmn_compare_print_json(FILE *f, const vlmn_compare *c, const char *name_a, const char *name_b);

#ifdef __cplusplus
}
#endif
#endif
