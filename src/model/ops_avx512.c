/* AVX-512 versions of the FFN activation of the FAST path (ops.h): SiLU with a
 * vector exp (Cody-Waite reduction + degree-6 polynomial, ~1 ulp, inf/0 handled by
 * vscalefps) and the SwiGLU product, one pass over the rows while they are in cache.
 * Element-wise, so the result does not depend on how rows are split over threads. */
#include "model/ops.h"

#include <immintrin.h>
#include <math.h>

/* exp(x) for x in f32 range: x = n ln2 + r, |r| <= ln2/2; exp(r) by a Taylor-like
 * minimax polynomial, then scale by 2^n (vscalefps saturates to inf / 0 correctly). */
static inline __m512 exp_ps(__m512 x)
{
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(100.0f)), _mm512_set1_ps(-110.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    /* coefficients of exp on [-ln2/2, ln2/2] (Cephes expf) */
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 silu_ps(__m512 x)
{
    __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

void op_silu_mul_avx512(const float *g, const float *u, float *out, const uint8_t *mask, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 s = silu_ps(_mm512_loadu_ps(g + i));
        if (mask) {
            __m128i mb = _mm_loadu_si128((const __m128i *)(mask + i));
            __mmask16 z = _mm_test_epi8_mask(mb, mb);
            s = _mm512_maskz_mov_ps((__mmask16)~z, s);
        }
        if (u) s = _mm512_mul_ps(s, _mm512_loadu_ps(u + i));
        _mm512_storeu_ps(out + i, s);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 s = silu_ps(_mm512_maskz_loadu_ps(k, g + i));
        if (mask) {
            __m128i mb = _mm_maskz_loadu_epi8(k, mask + i);
            __mmask16 z = _mm_test_epi8_mask(mb, mb);
            s = _mm512_maskz_mov_ps((__mmask16)~z, s);
        }
        if (u) s = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(k, u + i));
        _mm512_mask_storeu_ps(out + i, k, s);
    }
}

void op_mul_avx512(const float *x, const float *y, float *out, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++) out[i] = x[i] * y[i];
}

/* op_rmsnorm with the sum of squares in 8 double lanes (then summed in a fixed
 * order): the same double-precision statistic up to summation order, vectorised. */
void op_rmsnorm_avx512(const float *x, float *y, int64_t rows, int64_t n, int64_t ld,
                       const float *w, float eps)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld;
        float *yr = y + r * ld;
        __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(xr + i));
            __m512d hi = _mm512_cvtps_pd(_mm256_loadu_ps(xr + i + 8));
            a0 = _mm512_fmadd_pd(lo, lo, a0);
            a1 = _mm512_fmadd_pd(hi, hi, a1);
        }
        double ss = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
        for (; i < n; i++) ss += (double)xr[i] * xr[i];
        double s = 1.0 / sqrt(ss / (double)n + (double)eps);
        /* y = (float)(x * s * w) in double, as the scalar op */
        __m512d sv = _mm512_set1_pd(s);
        for (i = 0; i + 8 <= n; i += 8) {
            __m512d xv = _mm512_cvtps_pd(_mm256_loadu_ps(xr + i));
            __m512d wv = _mm512_cvtps_pd(_mm256_loadu_ps(w + i));
            _mm256_storeu_ps(yr + i, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_mul_pd(xv, sv), wv)));
        }
        for (; i < n; i++) yr[i] = (float)(xr[i] * s * w[i]);
    }
}

/* x * sigmoid(1.702 x) (OpenAI CLIP's quick_gelu), as op_quick_gelu with the vector exp. */
void op_quick_gelu_avx512(float *x, int64_t n)
{
    const __m512 c = _mm512_set1_ps(-1.702f), one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        _mm512_storeu_ps(x + i, _mm512_div_ps(v, _mm512_add_ps(one, exp_ps(_mm512_mul_ps(c, v)))));
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(x + i, k, _mm512_div_ps(v, _mm512_add_ps(one, exp_ps(_mm512_mul_ps(c, v)))));
    }
}
