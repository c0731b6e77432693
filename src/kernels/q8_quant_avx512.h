/* Activation rounding of the FASTEST precision for Q8_0 / Q4_K weights, shared by the tile
 * GEMM (gemm_int8_avx512.c) and the decode kernel (gemv_q8_0_avx512.c), so both round a
 * token's 32-block to the same integers: ggml's q8_0 (d = max|x| / 127, q = round(x / d))
 * except that d stays f32 and ties round to even (the default MXCSR mode). Include only
 * from files built with the AVX-512 flags. */
#ifndef VLMN_KERNELS_Q8_QUANT_AVX512_H
#define VLMN_KERNELS_Q8_QUANT_AVX512_H

#include <immintrin.h>

/* The 32 signed bytes of one 32-block of a; sets its scale d. */
static inline __m256i q8_quant32(const float *a, float *d_out)
{
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __m512 x0 = _mm512_loadu_ps(a), x1 = _mm512_loadu_ps(a + 16);
    __m512 mx = _mm512_max_ps(_mm512_and_ps(x0, absmask), _mm512_and_ps(x1, absmask));
    float amax = _mm512_reduce_max_ps(mx);
    const float qmax = 127.0f;
    *d_out = amax / qmax;
    __m512 vid = _mm512_set1_ps(amax > 0 ? qmax / amax : 0.0f);
    /* round to nearest (even on ties), |q| <= qmax */
    __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));
    __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(i0)), _mm512_cvtepi32_epi8(i1), 1);
}

#endif
