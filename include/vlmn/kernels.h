/* Compute kernels: a persistent thread pool, GEMM of f32 activations by weight
 * matrices of any supported type, and attention. Each op has a plain C reference;
 * SIMD variants (AVX2, AVX-512 with BF16/VNNI) are chosen once from cpuid and can be
 * forced with VLMN_ISA=ref|avx2|avx512. Results do not depend on the thread count. */
#ifndef VLMN_KERNELS_H
#define VLMN_KERNELS_H

#include "vlmn/vlmn.h"
#include "vlmn/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- thread pool ---- */
typedef struct vlmn_pool vlmn_pool;
/* n_threads <= 0: number of online CPUs. */
vlmn_status vlmn_pool_create(int n_threads, vlmn_pool **out);
void vlmn_pool_free(vlmn_pool *p);
int vlmn_pool_size(const vlmn_pool *p);
/* Run fn(ctx, ith, nth) on every thread (ith = 0..nth-1) and wait. The calling thread
 * takes part as ith 0. p == NULL runs fn(ctx, 0, 1) inline. One run at a time per pool
 * (vlmn_gemm / vlmn_attention on a pool count as runs; do not call them from fn). */
void vlmn_pool_run(vlmn_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx);

/* ---- ISA selection ---- */
typedef enum vlmn_isa { VLMN_ISA_REF = 0, VLMN_ISA_AVX2 = 1, VLMN_ISA_AVX512 = 2 } vlmn_isa;
/* The ISA in use: the best the CPU supports, or VLMN_ISA from the environment. */
vlmn_isa vlmn_isa_active(void);
const char *vlmn_isa_name(vlmn_isa isa);
/* True if the CPU and the OS support `isa` (whatever VLMN_ISA says). */
bool vlmn_isa_supported(vlmn_isa isa);
/* Force an ISA (tests/bench); returns VLMN_E_UNSUPPORTED if the CPU lacks it. */
vlmn_status vlmn_isa_force(vlmn_isa isa);

/* ---- precision ----
 * EXACT: weights dequantised to f32, activations f32, f32 accumulation.
 * FAST: the kernels may round activations (to bf16 for BF16 weights; for Q8_0/Q4_K
 * weights to int16 with one scale per token and 512-value window, error ~1e-5 relative
 * to the window's maximum, so a token with a 1000x outlier gets ~2e-4 normwise on its
 * outputs; for F16 weights, weights per 32-block and activations per window to 14-bit
 * integers, ~9e-5 normwise); bounded error, see docs/kernels.md.
 * FASTEST: as FAST, but Q8_0/Q4_K activations are rounded to int8 once per 32-block
 * (ggml's q8_0 x q8_0 dot): about twice as fast for those types, normwise error ~1e-2. */
typedef enum vlmn_precision {
    VLMN_PREC_FAST = 0,
    VLMN_PREC_EXACT = 1,
    VLMN_PREC_FASTEST = 2
} vlmn_precision;

/* Without AVX-512 every precision runs the f32 kernels. With VLMN_EMULATE_PRECISION=1 in
 * the environment, FAST and FASTEST on BF16 and Q8_0 weights first round the GEMM's
 * activations as the AVX-512 kernels do (bf16 round-to-nearest-even; Q8_0 FAST: int16,
 * one scale per token and 512-value window; FASTEST: int8, one scale per 32-block), so
 * the effect of a precision on results can be measured on any machine (bench/precision.sh).
 * Equal to the AVX-512 kernels up to the order of the f32 sums. Returns whether it is on
 * (read once; only on AVX2/ref: AVX-512 runs the real kernels). */
bool vlmn_precision_emulated(void);
/* The emulated rounding of one activation row of K values (K a multiple of 32 for Q8_0)
 * into out; false when (prec, type) has none (EXACT, or a type other than BF16/Q8_0). */
bool vlmn_precision_round_row(vlmn_precision prec, uint32_t type, const float *x, int64_t K, float *out);

/* "fast", "exact", "fastest" (the names the CLI takes and runs record). */
const char *vlmn_precision_name(vlmn_precision prec);
/* Parses a name; VLMN_E_ARG (with a message listing the names) when unknown. */
vlmn_status vlmn_precision_parse(const char *name, vlmn_precision *out);

/* ---- weight matrix ----
 * W has `rows` (N, output features) rows of `cols` (K, input features) values of
 * `type`, row-major as stored in GGUF (ne0 = cols). `data` stays owned by the caller
 * (usually the mmap) and must outlive the matrix. init may build a packed copy for
 * the fast kernels (kept in m->packed; freed by vlmn_matrix_release). */
typedef struct vlmn_matrix {
    uint32_t type;
    int64_t rows, cols;
    const void *data;
    uint64_t row_bytes;
    void *packed;       /* kernel-private layout or NULL */
    uint64_t packed_bytes;
    int packed_kind;    /* kernel-private */
} vlmn_matrix;

vlmn_status vlmn_matrix_init(vlmn_matrix *m, uint32_t type, int64_t rows, int64_t cols,
                             const void *data);
void vlmn_matrix_release(vlmn_matrix *m);

/* C[M x N] = A[M x K] * W^T (+ C if accumulate). lda/ldc in floats. */
void vlmn_gemm(vlmn_pool *p, vlmn_precision prec, const vlmn_matrix *W,
               const float *A, int64_t M, int64_t lda, float *C, int64_t ldc, bool accumulate);

/* Scaled dot-product attention for T tokens. q: [T x n_head*head_dim], k,v:
 * [T x n_head_kv*head_dim] (row strides ldq/ldk/ldv in floats), out: [T x n_head*head_dim]
 * (ldo). Head h uses kv head h / (n_head / n_head_kv). scale usually 1/sqrt(head_dim).
 * causal: token i attends to 0..i. Softmax in f32 with max subtraction. */
void vlmn_attention(vlmn_pool *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                    const float *v, int64_t ldv, float *out, int64_t ldo, int64_t T,
                    int n_head, int n_head_kv, int head_dim, float scale, bool causal);

/* One head of one query row against nk keys (a decode step's attention over its cache):
 * out[0..head_dim) = softmax(scale * q . k_j) v_j over j < nk, k and v rows head_dim
 * floats long at a stride of ldkv floats; sc: nk floats of scratch. Single-threaded (the
 * caller splits rows and heads); softmax in f32 with max subtraction. */
void vlmn_attention_head(const float *q, const float *k, const float *v, int64_t ldkv, int64_t nk, int head_dim,
                         float scale, float *sc, float *out);

#ifdef __cplusplus
}
#endif
#endif
