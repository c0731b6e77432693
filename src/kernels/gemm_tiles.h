/* Helpers shared by the GEMM variants: writing a transposed register tile back to C. */
#ifndef VLMN_KERNELS_GEMM_TILES_H
#define VLMN_KERNELS_GEMM_TILES_H

#include "kernels/kernels_int.h"

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
