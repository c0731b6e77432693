/* Activation rounding of the integer kernels, shared by the tile GEMM (gemm_int8_avx512.c)
 * and the decode kernel (gemv_q8_0_avx512.c) so that both round a token to the same
 * integers. FASTEST: int8 per 32-block as ggml's q8_0 (d = max|x| / 127, q = round(x / d))
 * except that d stays f32. FAST: int16 with one scale per window of VLMN_FAST_WINDOW
 * 32-blocks (d = max|x| / qmax over the window). Ties round to even (the default MXCSR
 * mode). Include only from files built with the AVX-512 flags. */
#ifndef VLMN_KERNELS_ACT_QUANT_AVX512_H
#define VLMN_KERNELS_ACT_QUANT_AVX512_H

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

/* max |x| over a[0..n), n a multiple of 16 */
static inline float act_absmax(const float *a, int64_t n)
{
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __m512 mx = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 16) mx = _mm512_max_ps(mx, _mm512_and_ps(_mm512_loadu_ps(a + k), absmask));
    return _mm512_reduce_max_ps(mx);
}

/* the 32 values at a times inv, rounded (|q| <= the qmax that inv was made for), as int16 */
static inline __m512i act_quant16(const float *a, float inv)
{
    const __m512 vid = _mm512_set1_ps(inv);
    __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a), vid));
    __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + 16), vid));
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(i0)), _mm512_cvtepi32_epi16(i1), 1);
}

#endif
