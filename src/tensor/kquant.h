/* K-quant block helpers shared by the dequantiser (dequant.c) and the int8/int16 GEMM
 * (kernels/gemm_int8_avx512.c). */
#ifndef VLMN_TENSOR_KQUANT_H
#define VLMN_TENSOR_KQUANT_H

#include <stdint.h>

/* K-quant 6-bit scale/min pair j (0..7) packed in 12 bytes: j<4 in the low 6 bits of
 * bytes j (scale) and j+4 (min); j>=4 in the nibbles of byte j+4 plus the top two
 * bits of bytes j-4 (scale) and j (min). As ggml's get_scale_min_k4. */
static inline void vlmn_kq_scale_min(int j, const uint8_t *q, int *sc, int *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

#endif
