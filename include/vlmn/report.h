/* The HTML report of a classified run: one self-contained DIR/index.html (inline SVG and
 * CSS, nothing fetched from the network) with the paper's Figures 5-7, Table 3, the
 * run's provenance and the most confident neurons of each type. Flow: analysis ->
 * [report]. Everything that comes from data is HTML-escaped. */
#ifndef VLMN_REPORT_H
#define VLMN_REPORT_H

#include <stdio.h>

#include "vlmn/analysis.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VLMN_REPORT_MAX_SAMPLES 5      /* top samples shown per neuron */

typedef struct vlmn_report_kv {
    const char *key;
    const char *value;
} vlmn_report_kv;

/* One top sample of a neuron, as the report shows it. */
typedef struct vlmn_report_sample {
    int64_t sample;                    /* dataset index */
    float max_act;                     /* the neuron's max activation on it */
    char id[64];                       /* dataset id ("" if unknown) */
    char image[1024];                  /* readable image path ("" if unknown) */
} vlmn_report_sample;

/* One scored explanation (vlmn explain / simulate / score), as the report lists it. */
typedef struct vlmn_report_expl {
    int layer, neuron;
    const char *kind;                  /* "visual" | "text" | "multimodal" */
    const char *sampling, *explainer, *simulator;
    const char *text;                  /* the explanation (from an LLM: escaped on output) */
    double score;                      /* Pearson per A.3; NaN: undefined */
} vlmn_report_expl;

/* One neuron's best LLM-free label (vlmn label, rank 1), as the report lists it, next to
 * the neuron's best-scored other explanation when it has one. */
typedef struct vlmn_report_label {
    int layer, neuron;
    const char *kind;                  /* "visual" | "multimodal" */
    const char *clip, *concept;        /* concept: from a user's file (escaped on output) */
    const char *samples;               /* the sample SPEC it was chosen on ("" if unknown) */
    double score;                      /* Pearson r on those samples; NaN: undefined */
    int n_samples;
    double heldout;                    /* score of explainer label:<clip> (pearson); NaN: none */
    const char *explanation;           /* best-scored other explanation (NULL: none) */
    const char *explainer;
    double expl_score;                 /* its Pearson score; NaN: undefined */
} vlmn_report_label;

typedef struct vlmn_report_input {
    const char *title;                 /* e.g. the run directory */
    const vlmn_classification *cls;
    const vlmn_stats *stats;
    const vlmn_report_kv *provenance;  /* run metadata, shown in order */
    int n_provenance;
    int n_confident;                   /* neurons listed per type (default 10 when 0) */
    /* Fills up to `max` top samples of a neuron (rank order); returns how many (0 when
     * unknown). May be NULL. */
    int (*samples)(void *ctx, int layer, int neuron, vlmn_report_sample *out, int max);
    void *ctx;
    /* Optional "Explanations" section (shown when table2 or n_expl is set): the text of
     * `vlmn stats --table2` and the best-scored explanations of each type. */
    const char *table2;
    const vlmn_report_expl *expl;
    int n_expl;
    /* Optional labels table in that section (shown when n_labels > 0). */
    const vlmn_report_label *labels;
    int n_labels;
} vlmn_report_input;

/* Write dir/index.html (created through a temporary file and a rename; dir is created
 * when missing). Images of the listed samples that can be read are copied into
 * dir/img/ and shown as thumbnails. */
vlmn_status vlmn_report_write(const char *dir, const vlmn_report_input *in);

/* The report's figure sections (Figures 5-7, Table 3) as HTML with inline SVG, and the
 * report's style sheet: shared with the browser's overview page (vlmn browse). */
void vlmn_report_write_figures(FILE *f, const vlmn_stats *s);
const char *vlmn_report_css(void);

/* HTML-escape s (& < > " ') onto f. */
void vlmn_report_escape(FILE *f, const char *s);

#ifdef __cplusplus
}
#endif
#endif
