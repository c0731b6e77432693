/* Kernel-module internals: the workspace hook of the pool, the per-ISA GEMM and
 * attention entry points (defined in gemm_<type>_<isa>.c / attention_<isa>.c, each
 * compiled with its own -m flags and only called after the cpuid check in isa.c). */
#ifndef VLMN_KERNELS_INT_H
#define VLMN_KERNELS_INT_H

#include "vlmn/kernels.h"

#define VLMN_POOL_MAX_THREADS 256

/* Grow-only workspace of the pool (or of the calling thread when p == NULL); valid
 * until the next call. 64-byte aligned; NULL when out of memory. */
void *vlmn_pool_scratch(vlmn_pool *p, size_t bytes);

/* One GEMM call, as passed to the variant kernels: C[M x N] (+)= A[M x K] W^T. */
typedef struct gemm_args {
    const vlmn_matrix *W;
    const float *A;
    int64_t M, lda;
    float *C;
    int64_t ldc;
    bool accumulate;
    vlmn_precision prec;
} gemm_args;

/* Reference: dequantise rows of W, f32 accumulation in k order. */
void gemm_ref(vlmn_pool *p, const gemm_args *g);

/* Fast variants. Each returns false (having done nothing) when it cannot run the
 * call (e.g. no workspace), and the caller falls back to the reference. */
bool gemm_f32_avx512(vlmn_pool *p, const gemm_args *g);   /* any type, f32 FMA */
bool gemm_bf16_avx512(vlmn_pool *p, const gemm_args *g);  /* vdpbf16ps */
bool gemm_q8_0_avx512(vlmn_pool *p, const gemm_args *g);  /* vpdpbusd (gemm_int8_avx512.c) */
bool gemm_q4_k_avx512(vlmn_pool *p, const gemm_args *g);  /* vpdpbusd (gemm_int8_avx512.c) */
bool gemm_f16_avx512(vlmn_pool *p, const gemm_args *g);   /* vpdpwssd (gemm_int8_avx512.c) */
bool gemm_f32_avx2(vlmn_pool *p, const gemm_args *g);     /* any type, f32 FMA */
/* Decode shapes (M <= GEMV_MAX_M) for BF16/F16/F32/Q8_0 weights, f32 FMA, each weight
 * row read once for all M rows (gemv_avx2.c); false for other M or types. */
#define GEMV_MAX_M 8
/* FAST precision on integer kernels: 32-blocks per int16 activation-scale window; the
 * windows of blocks [w0, end) are [w0, w0 + 16), [w0 + 16, ...), the last one what remains.
 * The tile kernel, the decode kernel and the emulation all walk them with these. */
#define VLMN_FAST_WINDOW 16
static inline int64_t vlmn_fast_window_end(int64_t w0, int64_t end)
{
    return end - w0 < VLMN_FAST_WINDOW ? end : w0 + VLMN_FAST_WINDOW;
}
static inline int64_t vlmn_fast_windows(int64_t nb) { return (nb + VLMN_FAST_WINDOW - 1) / VLMN_FAST_WINDOW; }
bool gemv_avx2(vlmn_pool *p, const gemm_args *g);
/* Decode shapes (M <= GEMV_MAX_M) for Q8_0 weights in FAST / FASTEST precision, vpdpwssd /
 * vpdpbusd on the weights in place, activations rounded as the tile kernel's
 * (gemv_q8_0_avx512.c); false for other calls. */
bool gemv_q8_0_avx512(vlmn_pool *p, const gemm_args *g);
/* Decode shapes (M <= GEMV_MAX_M) for BF16 weights in FAST / FASTEST precision, vdpbf16ps
 * on the weights in place, activations rounded to bf16 as the tile kernel's
 * (gemv_bf16_avx512.c); false for other calls. */
bool gemv_bf16_avx512(vlmn_pool *p, const gemm_args *g);
/* Whether vlmn_gemm on AVX-512 takes gemv_avx2 for this call (gemm.c: decode shapes where
 * it beats the AVX-512 kernels). */
bool avx512_runs_gemv(uint32_t type, vlmn_precision prec, int64_t M);

/* Runs `pass` on consecutive slices of at most `mc` token rows of the call (mc rounded
 * down to a multiple of `mp`, at least mp), where mc is what keeps a_bytes_per_row * mc
 * under VLMN_GEMM_A_PASS_BYTES: the tile kernels stream their whole packed A once per
 * block of weight rows, so A has to stay in the last-level cache. The first pass is the
 * largest, so its workspace serves the others: only it can fail, before anything is
 * written (false, as the kernels' own). Each C value depends only on its own row, so the
 * slicing changes no bit (gemm.c). */
#define VLMN_GEMM_A_PASS_BYTES ((int64_t)8 << 20)
bool gemm_by_passes(vlmn_pool *p, const gemm_args *g, int64_t a_bytes_per_row, int64_t mp,
                    bool (*pass)(vlmn_pool *, const gemm_args *));

/* Dequantise rows [n0, n0+nr) of W, columns [0, K), into dst (row stride ldd floats). */
void gemm_dequant_rows(const vlmn_matrix *W, int64_t n0, int64_t nr, float *dst, int64_t ldd);

void attention_ref(vlmn_pool *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                   const float *v, int64_t ldv, float *out, int64_t ldo, int64_t T,
                   int n_head, int n_head_kv, int head_dim, float scale, bool causal);
/* One call of a tiled attention kernel (attention_<isa>.c). */
typedef struct attn_job {
    const float *q, *k, *v;
    int64_t ldq, ldk, ldv, ldo, T, Tpad;
    float *out;
    float *kt; /* keys as attention_keys_t lays them out */
    int n_head, n_head_kv, D;
    float scale;
    bool causal;
} attn_job;

/* The tiled kernels' key layout: k's rows [T x n_head_kv*D] as [n_head_kv][D][Tpad] (zeros
 * past T) in the pool's workspace (attention.c); NULL when out of memory. */
float *attention_keys_t(vlmn_pool *p, const float *k, int64_t ldk, int64_t T, int64_t Tpad, int n_head_kv, int D);
bool attention_avx512(vlmn_pool *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                      const float *v, int64_t ldv, float *out, int64_t ldo, int64_t T,
                      int n_head, int n_head_kv, int head_dim, float scale, bool causal);
bool attention_avx2(vlmn_pool *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                    const float *v, int64_t ldv, float *out, int64_t ldo, int64_t T,
                    int n_head, int n_head_kv, int head_dim, float scale, bool causal);

/* vlmn_attention_head's kernels (head_dim a multiple of 16 / 8, at most 256); false when
 * they do not take the call. */
bool attention_head_avx512(const float *q, const float *k, const float *v, int64_t ldkv, int64_t nk, int hd,
                           float scale, float *sc, float *out);
bool attention_head_avx2(const float *q, const float *k, const float *v, int64_t ldkv, int64_t nk, int hd,
                         float scale, float *sc, float *out);

#endif
