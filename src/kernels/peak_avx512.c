/* Register-resident throughput loops with AVX-512 (see peak.h): 12 independent
 * accumulators hide the latency of FMA / vdpbf16ps / vpdpbusd. */
#include "kernels/peak.h"

#include <immintrin.h>

#define CHAINS 12

double peak_loop_avx512(vlmn_peak_kind kind, long iters)
{
    __m512 f[CHAINS];
    __m512i q[CHAINS];
    __m512 x = _mm512_set1_ps(1e-9f), y = _mm512_set1_ps(0.999f);
    __m512i bx = _mm512_set1_epi8(1), by = _mm512_set1_epi8(-1);
    #pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) {
        f[c] = _mm512_set1_ps((float)c);
        q[c] = _mm512_set1_epi32(c);
    }
    /* The asm barriers keep the operands in registers and stop the compiler from
     * folding or hoisting the loop body. */
    switch (kind) {
    case VLMN_PEAK_F32_FMA:
        for (long i = 0; i < iters; i++) {
            __asm__ volatile("" : "+v"(x), "+v"(y));
            #pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++) f[c] = _mm512_fmadd_ps(x, y, f[c]);
        }
        break;
    case VLMN_PEAK_BF16_DOT:
        for (long i = 0; i < iters; i++) {
            __asm__ volatile("" : "+v"(x), "+v"(y));
            #pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++)
                f[c] = _mm512_dpbf16_ps(f[c], (__m512bh)x, (__m512bh)y);
        }
        break;
    case VLMN_PEAK_INT8_DOT:
        for (long i = 0; i < iters; i++) {
            __asm__ volatile("" : "+v"(bx), "+v"(by));
            #pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++) q[c] = _mm512_dpbusd_epi32(q[c], bx, by);
        }
        break;
    }
    __m512 s = _mm512_setzero_ps();
    __m512i t = _mm512_setzero_si512();
    #pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) {
        s = _mm512_add_ps(s, f[c]);
        t = _mm512_add_epi32(t, q[c]);
    }
    __asm__ volatile("" : : "v"(s), "v"(t));
    double per = kind == VLMN_PEAK_F32_FMA ? 32.0 : kind == VLMN_PEAK_BF16_DOT ? 64.0 : 128.0;
    return per * CHAINS * (double)iters;
}
