/* The streaming recorder: consumes each layer's [n_tokens x n_ff] activation block
 * (the engine's capture callback) and keeps, per neuron, global statistics and the
 * top-N samples with their 8 largest image/text activations. Memory is fixed at
 * creation (independent of the dataset size). Flow: capture hook -> [recorder] -> run store. */
#ifndef VLMN_RECORD_H
#define VLMN_RECORD_H

#include "vlmn/vlmn.h"
#include "vlmn/run.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VLMN_REC_MAX_TOP_N 1000
/* sample index of an unused top slot (its values are -INFINITY) */
#define VLMN_REC_EMPTY UINT32_MAX
/* Fixed-point scale of the exact per-neuron sum: each sample's sum (double, tokens
 * added in position order) is rounded to a multiple of 2^-VLMN_REC_SUM_FRAC_BITS and
 * added to a 128-bit integer. Integer addition is associative, so any shard split
 * and merge order gives the bit-identical sum. */
#define VLMN_REC_SUM_FRAC_BITS 32

typedef struct vlmn_rec_params {
    int n_layers;
    int n_ff;
    int top_n;          /* 1..VLMN_REC_MAX_TOP_N */
    int n_threads;      /* <= 0: OpenMP default */
} vlmn_rec_params;

/* 128-bit two's complement sum, as stored on disk (little-endian lo, hi). */
typedef struct vlmn_rec_fixsum {
    uint64_t lo;
    int64_t hi;
} vlmn_rec_fixsum;

typedef struct vlmn_rec vlmn_rec;

vlmn_status vlmn_rec_create(const vlmn_rec_params *p, vlmn_rec **out);
void vlmn_rec_free(vlmn_rec *r);
const vlmn_rec_params *vlmn_rec_get_params(const vlmn_rec *r);
/* Bytes of recording state for a shape (what vlmn_rec_create allocates, +- a few kB). */
uint64_t vlmn_rec_state_bytes(int n_layers, int n_ff, int top_n);

/* Start sample `sample` (dataset index; must be larger than every earlier one).
 * labels[t] is a vlmn_modality per position. Counted tokens: IMAGE positions (image
 * class) and TEXT positions (text class); PROMPT positions count as text only when
 * prompt_as_text (--text-tokens all). The labels are copied. */
vlmn_status vlmn_rec_begin_sample(vlmn_rec *r, uint32_t sample, const uint8_t *labels,
                                  int64_t n_tokens, bool prompt_as_text);
/* vlmn_capture_fn: feed one layer of the current sample (user = the recorder). */
void vlmn_rec_capture(void *user, int layer, const float *acts, int64_t n_tokens, int64_t n_ff);
/* Finish the sample: VLMN_E_MISMATCH if a layer was missing, repeated, or had the
 * wrong shape. After an error the state may hold part of the sample: discard it. */
vlmn_status vlmn_rec_end_sample(vlmn_rec *r);
/* Counted image/text tokens of the current (or last) sample. */
void vlmn_rec_sample_counts(const vlmn_rec *r, int64_t *n_image, int64_t *n_text);

/* State arrays, neuron k = layer * n_ff + neuron:
 * stats[k], fixsum[k], top[k * top_n + rank] (rank 0 best; unused slots have
 * sample == VLMN_REC_EMPTY) and top_count[k]. Writable so the store can load them;
 * call vlmn_rec_sync(r) after writing fixsum/top arrays by hand. */
vlmn_neuron_stats *vlmn_rec_stats(vlmn_rec *r);
vlmn_rec_fixsum *vlmn_rec_fixsums(vlmn_rec *r);
vlmn_top_entry *vlmn_rec_top(vlmn_rec *r);
uint32_t *vlmn_rec_top_count(vlmn_rec *r);
/* Recompute stats[].sum from fixsum[] and top_count[] from the top slots. */
void vlmn_rec_sync(vlmn_rec *r);

/* Fold `src` (disjoint samples, same shape) into `dst`: max/min/count/histogram/sum
 * exactly, top lists by (max_act desc, sample asc). The result does not depend on the
 * order of merges. */
vlmn_status vlmn_rec_merge(vlmn_rec *dst, const vlmn_rec *src);

/* Ranking used everywhere: a before b iff a.max_act > b.max_act, or equal and
 * a.sample < b.sample (ties: lower sample index first). */
static inline bool vlmn_top_before(const vlmn_top_entry *a, const vlmn_top_entry *b)
{
    return a->max_act > b->max_act || (a->max_act == b->max_act && a->sample < b->sample);
}

/* Histogram bin of one activation (the bins of vlmn_hist_edges()). */
int vlmn_hist_bin(float x);

#ifdef __cplusplus
}
#endif
#endif
