/* The run: what `vlmn record` keeps per neuron, and the run directory (SQLite
 * database + binary arrays) that stores it. Flow: capture hook -> recorder -> [run
 * store] -> analysis (classify, stats, report). The structs below are the contract
 * between recording and analysis; the on-disk layout is documented in the README. */
#ifndef VLMN_RUN_H
#define VLMN_RUN_H

#include "vlmn/vlmn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per top sample we keep the K largest image-token and text-token activations, so a
 * neuron can be classified later with any thresholds T in [0,10] and counts n < K
 * (n_v, n_t <= 7) without running the model again: "more than n tokens above T" holds
 * iff the (n+1)-th largest activation is above T. */
#define VLMN_TOP_TOKENS 8
#define VLMN_HIST_BINS 32

/* One of a neuron's top-N samples. Unused slots of img/txt (a sample with fewer
 * tokens of that modality) hold -INFINITY. */
typedef struct vlmn_top_entry {
    uint32_t sample;                  /* index of the sample in dataset order */
    float max_act;                    /* max activation over the sample's counted tokens */
    float img[VLMN_TOP_TOKENS];       /* largest image-token activations, descending */
    float txt[VLMN_TOP_TOKENS];       /* largest text-token activations, descending */
} vlmn_top_entry;

/* Whole-dataset statistics of one neuron over all counted tokens. */
typedef struct vlmn_neuron_stats {
    float max_act;                    /* global maximum activation (raw, may be < 0) */
    float min_act;
    double sum;                       /* for the mean: sum / count */
    uint64_t count;                   /* counted tokens seen */
    uint32_t hist[VLMN_HIST_BINS];    /* coarse histogram, bin edges: vlmn_hist_edges() */
} vlmn_neuron_stats;

/* Fixed histogram bin edges shared by every run (VLMN_HIST_BINS + 1 values). */
const float *vlmn_hist_edges(void);

/* ---- reading a finished run ---- */
typedef struct vlmn_run vlmn_run;

vlmn_status vlmn_run_open(const char *dir, vlmn_run **out);
void vlmn_run_close(vlmn_run *r);
int vlmn_run_n_layers(const vlmn_run *r);
int vlmn_run_n_ff(const vlmn_run *r);
int vlmn_run_top_n(const vlmn_run *r);
int64_t vlmn_run_n_samples(const vlmn_run *r);
/* Stats of one neuron. */
const vlmn_neuron_stats *vlmn_run_stats(const vlmn_run *r, int layer, int neuron);
/* The neuron's top entries, rank order (best first); *n_out <= top_n (fewer when the
 * dataset had fewer samples). Pointer valid until close. */
const vlmn_top_entry *vlmn_run_top(const vlmn_run *r, int layer, int neuron, int *n_out);
/* The run's SQLite handle (sqlite3 *), for modules that add tables (classification). */
void *vlmn_run_db(vlmn_run *r);
const char *vlmn_run_dir(const vlmn_run *r);

#ifdef __cplusplus
}
#endif
#endif
