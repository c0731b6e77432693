/* Small element-wise and row-wise ops of the LLaVA forward pass (norms, RoPE,
 * activations). The heavy ops (GEMM, attention) are in the kernels module; these
 * are cheap next to them and written for exactness (double accumulators). */
#ifndef VLMN_MODEL_OPS_H
#define VLMN_MODEL_OPS_H

#include <stdint.h>

/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w   (LlamaRMSNorm), rows of n, stride ld. */
void op_rmsnorm(const float *x, float *y, int64_t rows, int64_t n, int64_t ld,
                const float *w, float eps);
/* y[r] = (x[r] - mean) / sqrt(var + eps) * w + b   (nn.LayerNorm, biased variance). */
void op_layernorm(const float *x, float *y, int64_t rows, int64_t n, int64_t ld,
                  const float *w, const float *b, float eps);
/* x[r] += b for every row. */
void op_add_bias(float *x, int64_t rows, int64_t n, int64_t ld, const float *b);

/* RoPE table: cs[(p * half + i) * 2 + {0,1}] = {cos, sin}(p * base^(-2i/head_dim)),
 * computed in double, for p in [0, n_pos). */
void op_rope_table(float *cs, int64_t n_pos, int head_dim, float base);
/* Rotate adjacent pairs (x[2i], x[2i+1]) of every head of every row: the layout of
 * GGUF Q/K rows after llama.cpp's converter permute, equivalent to HF's rotate_half
 * on the original rows. x: [n_pos x n_head*head_dim] with row stride ld. */
void op_rope_pairs(float *x, int64_t n_pos, int64_t ld, int n_head, int head_dim,
                   const float *cs);

/* Activations, in place over n values. */
void op_silu(float *x, int64_t n);        /* x * sigmoid(x) */
void op_quick_gelu(float *x, int64_t n);  /* x * sigmoid(1.702 x) (OpenAI CLIP) */
void op_gelu_erf(float *x, int64_t n);    /* 0.5 x (1 + erf(x / sqrt 2)) (nn.GELU()) */
void op_mul(float *x, const float *y, int64_t n); /* x *= y */

/* AVX-512 (ops_avx512.c; call only when the CPU has it), used by the FAST path:
 * out = SiLU(g) (0 where mask[i] != 0; mask may be NULL), times u when u != NULL.
 * The vector exp is within ~1 ulp of expf, so results differ from op_silu in the
 * last bits; element-wise, hence independent of the thread split. */
void op_silu_mul_avx512(const float *g, const float *u, float *out, const uint8_t *mask, int64_t n);
/* op_rmsnorm, vectorised (double lanes; the sum order differs from op_rmsnorm). */
void op_rmsnorm_avx512(const float *x, float *y, int64_t rows, int64_t n, int64_t ld,
                       const float *w, float eps);
/* op_quick_gelu with the vector exp, in place. */
void op_quick_gelu_avx512(float *x, int64_t n);
/* out = x * y */
void op_mul_avx512(const float *x, const float *y, float *out, int64_t n);

#endif
