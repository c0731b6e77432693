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

/* Reads bytes (a multiple of 128, 32-byte aligned) with 4 independent 32-byte load
 * chains; the returned word depends on every byte so the loads cannot be dropped. */
uint64_t mem_read_avx2(const void *buf, size_t bytes)
{
    const __m256i *p = buf;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < bytes / 32; i += 4) {
        s0 = _mm256_xor_si256(s0, _mm256_load_si256(p + i));
        s1 = _mm256_xor_si256(s1, _mm256_load_si256(p + i + 1));
        s2 = _mm256_xor_si256(s2, _mm256_load_si256(p + i + 2));
        s3 = _mm256_xor_si256(s3, _mm256_load_si256(p + i + 3));
    }
    __m256i s = _mm256_xor_si256(_mm256_xor_si256(s0, s1), _mm256_xor_si256(s2, s3));
    return (uint64_t)_mm256_extract_epi64(s, 0) ^ (uint64_t)_mm256_extract_epi64(s, 3);
}
