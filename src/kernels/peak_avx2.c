/* Register-resident FMA throughput loop with AVX2 (see peak.h). AVX2 has no bf16 or
 * int8 dot instruction that the AVX2 kernels use, so only the f32 peak exists here. */
#include "kernels/peak.h"

#include <immintrin.h>

#define CHAINS 10

double peak_loop_avx2(vlmn_peak_kind kind, long iters)
{
    if (kind != VLMN_PEAK_F32_FMA) return 0.0;
    __m256 f[CHAINS];
    __m256 x = _mm256_set1_ps(1e-9f), y = _mm256_set1_ps(0.999f);
    #pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) f[c] = _mm256_set1_ps((float)c);
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+x"(x), "+x"(y));
        #pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++) f[c] = _mm256_fmadd_ps(x, y, f[c]);
    }
    __m256 s = _mm256_setzero_ps();
    #pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) s = _mm256_add_ps(s, f[c]);
    __asm__ volatile("" : : "x"(s));
    return 16.0 * CHAINS * (double)iters;
}
