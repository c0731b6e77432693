/* 16 x 16 transpose of 32-bit elements in AVX-512 registers, used by the GEMM kernels to
 * pack activations token-major -> k-major. Include only from *_avx512.c files. */
#ifndef VLMN_KERNELS_TRANSPOSE_AVX512_H
#define VLMN_KERNELS_TRANSPOSE_AVX512_H

#include <immintrin.h>

/* r[i] holds row i of a 16 x 16 matrix of u32; on return r[j] holds column j. */
static inline void transpose16_avx512(__m512i r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    /* now 128-bit lane L of u[4i+c] holds rows 4i..4i+3 of column 4L+c */
    for (int c = 0; c < 4; c++) {
        __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
        __m512i b = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
        __m512i e = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        __m512i f = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_i32x4(a, e, 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(a, e, 0xdd);
        r[4 + c] = _mm512_shuffle_i32x4(b, f, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(b, f, 0xdd);
    }
}

#endif
