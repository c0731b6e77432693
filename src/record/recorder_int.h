/* Recorder internals: the two per-chunk passes, AVX-512 variants (recorder_avx512.c,
 * called only when vlmn_isa_active() is AVX512). They give the same numbers as the
 * plain loops in recorder.c (same per-neuron order of the double sums, same max/min
 * rule, same histogram bins, same top-8 arrays bit for bit). */
#ifndef VLMN_RECORD_RECORDER_INT_H
#define VLMN_RECORD_RECORDER_INT_H

#include "vlmn/run.h"

#include <stdint.h>

/* Stats pass over neurons [j0, j1) of one layer block `acts` (row stride F) for the
 * counted rows: smax/smin/ssum[j] (initialised by the caller) take each row in order,
 * st[j].hist gets one count per value. */
void rec_stats_avx512(const float *acts, int64_t F, const int32_t *rows, int64_t n_rows, int64_t j0,
                      int64_t j1, float *smax, float *smin, double *ssum, vlmn_neuron_stats *st);

/* The 8 largest image-row (out[0]) and text-row (out[1]) values of neurons
 * [j, j + nl), nl <= 16, descending, -INFINITY where fewer: out[c][rank][lane]. */
void rec_top8_avx512(const float *acts, int64_t F, const int32_t *rows, const uint8_t *is_img,
                     int64_t n_rows, int64_t j, int nl, float out[2][VLMN_TOP_TOKENS][16]);

#endif
