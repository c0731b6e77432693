/* Row-wise and element-wise ops of the LLaVA forward pass; see ops.h. Norm
 * statistics accumulate in double so they stay within f32 rounding of the float64
 * reference whatever the width. */
#include "model/ops.h"

#include <math.h>

void op_rmsnorm(const float *x, float *y, int64_t rows, int64_t n, int64_t ld,
                const float *w, float eps)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld;
        float *yr = y + r * ld;
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        double s = 1.0 / sqrt(ss / (double)n + (double)eps);
        for (int64_t i = 0; i < n; i++) yr[i] = (float)(xr[i] * s * w[i]);
    }
}

void op_layernorm(const float *x, float *y, int64_t rows, int64_t n, int64_t ld,
                  const float *w, const float *b, float eps)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld;
        float *yr = y + r * ld;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; i++) mean += xr[i];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        double s = 1.0 / sqrt(var / (double)n + (double)eps);
        for (int64_t i = 0; i < n; i++) yr[i] = (float)((xr[i] - mean) * s * w[i] + b[i]);
    }
}

void op_add_bias(float *x, int64_t rows, int64_t n, int64_t ld, const float *b)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) x[r * ld + i] += b[i];
}

void op_rope_table(float *cs, int64_t n_pos, int head_dim, float base)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* HF LlamaRotaryEmbedding: inv_freq = 1 / base^(arange(0, dim, 2) / dim) */
        double inv = pow((double)base, -(2.0 * i) / (double)head_dim);
        for (int64_t p = 0; p < n_pos; p++) {
            double a = (double)p * inv;
            cs[(p * half + i) * 2 + 0] = (float)cos(a);
            cs[(p * half + i) * 2 + 1] = (float)sin(a);
        }
    }
}

void op_rope_pairs(float *x, int64_t n_pos, int64_t ld, int n_head, int head_dim,
                   const float *cs)
{
    int half = head_dim / 2;
    for (int64_t p = 0; p < n_pos; p++) {
        const float *c = cs + p * half * 2;
        for (int h = 0; h < n_head; h++) {
            float *v = x + p * ld + (int64_t)h * head_dim;
            for (int i = 0; i < half; i++) {
                float co = c[2 * i], si = c[2 * i + 1];
                float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * co - b * si;
                v[2 * i + 1] = b * co + a * si;
            }
        }
    }
}

void op_silu(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void op_quick_gelu(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void op_gelu_erf(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void op_mul(float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] *= y[i];
}
