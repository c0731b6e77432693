/* Machine peak measured with register-resident loops (for `vlmn bench`): each thread
 * runs independent chains of one instruction so the result is the core's throughput
 * bound, the yardstick that GEMM efficiency is reported against. */
#ifndef VLMN_KERNELS_PEAK_H
#define VLMN_KERNELS_PEAK_H

#include "vlmn/kernels.h"

typedef enum vlmn_peak_kind {
    VLMN_PEAK_F32_FMA = 0,  /* vfmadd231ps: 2 flop per lane */
    VLMN_PEAK_BF16_DOT = 1, /* vdpbf16ps: 2 flop per bf16 pair (AVX-512 only) */
    VLMN_PEAK_INT8_DOT = 2, /* vpdpbusd: 2 op per byte pair (AVX-512 only) */
} vlmn_peak_kind;

/* Operations per second of all pool threads together (best of `reps` runs of about
 * `seconds` each), or 0 when the ISA lacks the instruction. */
double vlmn_peak_measure(vlmn_pool *p, vlmn_peak_kind kind, vlmn_isa isa, double seconds, int reps);

/* Per-ISA loops: run `iters` iterations, return the operations done. */
double peak_loop_avx512(vlmn_peak_kind kind, long iters);
double peak_loop_avx2(vlmn_peak_kind kind, long iters);

#endif
