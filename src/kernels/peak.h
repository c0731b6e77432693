/* Machine peak measured with register-resident loops (for `vlmn bench`): each thread
 * runs independent chains of one instruction so the result is the core's throughput
 * bound, the yardstick that GEMM efficiency is reported against. */
#ifndef VLMN_KERNELS_PEAK_H
#define VLMN_KERNELS_PEAK_H

#include "vlmn/kernels.h"

#include <stddef.h>
#include <stdint.h>

typedef enum vlmn_peak_kind {
    VLMN_PEAK_F32_FMA = 0,  /* vfmadd231ps: 2 flop per lane */
    VLMN_PEAK_BF16_DOT = 1, /* vdpbf16ps: 2 flop per bf16 pair (AVX-512 only) */
    VLMN_PEAK_INT8_DOT = 2, /* vpdpbusd: 2 op per byte pair (AVX-512 only) */
} vlmn_peak_kind;

/* Operations per second of all pool threads together (best of `reps` runs of about
 * `seconds` each), or 0 when the ISA lacks the instruction. */
double vlmn_peak_measure(vlmn_pool *p, vlmn_peak_kind kind, vlmn_isa isa, double seconds, int reps);

/* Memory read bandwidth in bytes/s: every pool thread reads its slice of one buffer of
 * `bytes` (far larger than the caches; rounded down to a multiple of 128 per thread)
 * with 32-byte loads (AVX2; plain 8-byte loads without it), best of `reps` passes after
 * one that faults the pages in. 0 when the buffer cannot be allocated. */
double vlmn_mem_read_bandwidth(vlmn_pool *p, size_t bytes, int reps);

/* Per-ISA loops: run `iters` iterations, return the operations done. */
double peak_loop_avx512(vlmn_peak_kind kind, long iters);
double peak_loop_avx2(vlmn_peak_kind kind, long iters);
uint64_t mem_read_avx2(const void *buf, size_t bytes);

#endif
