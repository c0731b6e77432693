/* Helpers shared by the GEMM variants: writing a transposed register tile back to C. */
#ifndef VLMN_KERNELS_GEMM_TILES_H
#define VLMN_KERNELS_GEMM_TILES_H

#include "kernels/kernels_int.h"

#include <stdatomic.h>

/* Dynamic distribution of weight-row blocks: threads take chunks from a shared
 * counter, so a thread slowed down by other processes does not hold the others up.
 * Every block is computed whole by one thread in the same way, so which thread takes
 * it does not change any result. */
typedef struct gemm_sched {
    atomic_long next;
    int64_t n, chunk;
} gemm_sched;

static inline void gemm_sched_init(gemm_sched *s, int64_t n, int nth)
{
    atomic_store(&s->next, 0);
    s->n = n;
    s->chunk = n / (64 * (int64_t)nth); /* small: the last chunks end close together */
    if (s->chunk < 1) s->chunk = 1;
}

static inline bool gemm_sched_next(gemm_sched *s, int64_t *b0, int64_t *b1)
{
    int64_t b = atomic_fetch_add(&s->next, s->chunk);
    if (b >= s->n) return false;
    *b0 = b;
    *b1 = b + s->chunk < s->n ? b + s->chunk : s->n;
    return true;
}

/* out[j * ldo + i] holds C[m0 + i][n0 + j] (the kernels keep weights x tokens tiles);
 * store the mr x nr valid part, adding to C in accumulate mode. */
static inline void gemm_store_tile(const gemm_args *g, const float *out, int64_t ldo,
                                   int64_t m0, int64_t mr, int64_t n0, int64_t nr)
{
    for (int64_t i = 0; i < mr; i++) {
        float *c = g->C + (m0 + i) * g->ldc + n0;
        if (g->accumulate)
            for (int64_t j = 0; j < nr; j++) c[j] += out[j * ldo + i];
        else
            for (int64_t j = 0; j < nr; j++) c[j] = out[j * ldo + i];
    }
}

#endif
