/* Tiled attention with AVX2 FMA, the ymm counterpart of attention_avx512.c: keys are
 * transposed once per call ([n_head_kv][head_dim][T padded to 16], zeros past T), then
 * each unit of QR query rows of one head walks the keys in blocks of 16 with an online
 * softmax (running max and sum, the output rescaled when the max grows), so no T x T
 * score matrix is built. The register tiles are sized for 16 ymm registers: scores
 * QR x 2 vectors (8 accumulators, 2 key vectors, 1 broadcast), output updates QR x 2
 * vectors of head_dim. Units are split over threads and each output row is computed
 * whole by one thread in a fixed key order, so results do not depend on the thread
 * count. head_dim: a multiple of 8, <= 256 (others take the reference). */
#include "kernels/kernels_int.h"

#include <immintrin.h>
#include <math.h>

#define QR 4     /* query rows per unit */
#define KBLK 16  /* keys per block (2 vectors) */
#define DMAX 256

/* e^x for x <= 0 (scores minus their running max), the polynomial of attention_avx512.c;
 * 2^n is built in the exponent bits, so x is clamped at -87 (n >= -126 stays normal):
 * e^-87 is far below the f32 resolution of the sums it joins. */
static inline __m256 exp_ps(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void unit(const attn_job *a, int h, int64_t i0)
{
    const int64_t D = a->D, T = a->T, Tp = a->Tpad;
    const int hk = h / (a->n_head / a->n_head_kv);
    const float *kt = a->kt + (int64_t)hk * D * Tp;
    const int64_t nrow = T - i0 < QR ? T - i0 : QR;
    const float *qr[QR];
    for (int r = 0; r < QR; r++)
        qr[r] = a->q + (i0 + (r < nrow ? r : 0)) * a->ldq + (int64_t)h * D;
    float o[QR][DMAX] __attribute__((aligned(32)));
    float s[QR][KBLK] __attribute__((aligned(32)));
    float m[QR], l[QR];
    for (int r = 0; r < QR; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int64_t d = 0; d < D; d++) o[r][d] = 0.0f;
    }
    const int64_t jend = a->causal ? i0 + nrow : T;
    const __m256 vscale = _mm256_set1_ps(a->scale), ninf = _mm256_set1_ps(-INFINITY);
    const __m256i idx0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), idx1 = _mm256_add_epi32(idx0, _mm256_set1_epi32(8));
    for (int64_t j0 = 0; j0 < jend; j0 += KBLK) {
        const int64_t jn = jend - j0 < KBLK ? jend - j0 : KBLK;
        /* scores: s[r][j] = scale * q_r . k_j (padded keys are zeros, masked below) */
        __m256 acc[QR][2];
#pragma GCC unroll 4
        for (int r = 0; r < QR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        for (int64_t d = 0; d < D; d++) {
            const float *kd = kt + d * Tp + j0;
            const __m256 k0 = _mm256_loadu_ps(kd), k1 = _mm256_loadu_ps(kd + 8);
#pragma GCC unroll 4
            for (int r = 0; r < QR; r++) {
                const __m256 qb = _mm256_broadcast_ss(qr[r] + d);
                acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
            }
        }
        /* online softmax per row */
        for (int r = 0; r < QR; r++) {
            int64_t lim = a->causal ? i0 + r + 1 - j0 : jn; /* valid keys in this block */
            if (lim > jn) lim = jn;
            if (r >= nrow) lim = jn < 1 ? jn : 1;
            const __m256i vl = _mm256_set1_epi32((int)lim);
            const __m256 mk0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(vl, idx0));
            const __m256 mk1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(vl, idx1));
            const __m256 s0 = _mm256_blendv_ps(ninf, _mm256_mul_ps(acc[r][0], vscale), mk0);
            const __m256 s1 = _mm256_blendv_ps(ninf, _mm256_mul_ps(acc[r][1], vscale), mk1);
            const float bmax = hmax8(_mm256_max_ps(s0, s1));
            const float mnew = bmax > m[r] ? bmax : m[r];
            const float c = expf(m[r] - mnew);
            const __m256 vm = _mm256_set1_ps(mnew);
            const __m256 p0 = _mm256_and_ps(mk0, exp_ps(_mm256_sub_ps(s0, vm)));
            const __m256 p1 = _mm256_and_ps(mk1, exp_ps(_mm256_sub_ps(s1, vm)));
            _mm256_store_ps(&s[r][0], p0);
            _mm256_store_ps(&s[r][8], p1);
            l[r] = l[r] * c + hsum8(_mm256_add_ps(p0, p1));
            m[r] = mnew;
            if (c != 1.0f) {
                const __m256 vc = _mm256_set1_ps(c);
                for (int64_t d = 0; d < D; d += 8)
                    _mm256_store_ps(&o[r][d], _mm256_mul_ps(_mm256_load_ps(&o[r][d]), vc));
            }
        }
        /* o[r] += sum_j s[r][j] v_j, head_dim in chunks of 2 vectors */
        for (int64_t d0 = 0; d0 < D; d0 += 16) {
            const int dv = D - d0 >= 16 ? 2 : 1;
            __m256 oa[QR][2];
#pragma GCC unroll 4
            for (int r = 0; r < QR; r++) {
                oa[r][0] = _mm256_load_ps(&o[r][d0]);
                oa[r][1] = dv > 1 ? _mm256_load_ps(&o[r][d0 + 8]) : _mm256_setzero_ps();
            }
            for (int64_t j = 0; j < jn; j++) {
                const float *vr = a->v + (j0 + j) * a->ldv + (int64_t)hk * D + d0;
                const __m256 v0 = _mm256_loadu_ps(vr);
                if (dv > 1) {
                    const __m256 v1 = _mm256_loadu_ps(vr + 8);
#pragma GCC unroll 4
                    for (int r = 0; r < QR; r++) {
                        const __m256 sb = _mm256_broadcast_ss(&s[r][j]);
                        oa[r][0] = _mm256_fmadd_ps(sb, v0, oa[r][0]);
                        oa[r][1] = _mm256_fmadd_ps(sb, v1, oa[r][1]);
                    }
                } else {
#pragma GCC unroll 4
                    for (int r = 0; r < QR; r++) oa[r][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(&s[r][j]), v0, oa[r][0]);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < QR; r++) {
                _mm256_store_ps(&o[r][d0], oa[r][0]);
                if (dv > 1) _mm256_store_ps(&o[r][d0 + 8], oa[r][1]);
            }
        }
    }
    for (int r = 0; r < nrow; r++) {
        float *out = a->out + (i0 + r) * a->ldo + (int64_t)h * D;
        const __m256 inv = _mm256_set1_ps(1.0f / l[r]);
        for (int64_t d = 0; d < D; d += 8) _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_load_ps(&o[r][d]), inv));
    }
}

static void attn_job_fn(void *ctx, int ith, int nth)
{
    const attn_job *a = ctx;
    const int64_t nq = (a->T + QR - 1) / QR, units = (int64_t)a->n_head * nq;
    for (int64_t u = units * ith / nth; u < units * (ith + 1) / nth; u++) unit(a, (int)(u / nq), (u % nq) * QR);
}

bool attention_avx2(vlmn_pool *p, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                    int64_t ldv, float *out, int64_t ldo, int64_t T, int n_head, int n_head_kv, int head_dim,
                    float scale, bool causal)
{
    if (head_dim % 8 || head_dim > DMAX) return false;
    attn_job a = {q,   k,         v,  ldq, ldk, ldv, ldo, T, (T + 15) & ~(int64_t)15, out, NULL, n_head, n_head_kv,
                  head_dim, scale, causal};
    a.kt = attention_keys_t(p, k, ldk, T, a.Tpad, n_head_kv, head_dim);
    if (!a.kt) return false;
    vlmn_pool_run(p, attn_job_fn, &a);
    return true;
}

/* vlmn_attention_head: as attention_head_avx512 with 8-lane vectors. */
bool attention_head_avx2(const float *q, const float *k, const float *v, int64_t ldkv, int64_t nk, int hd,
                         float scale, float *sc, float *out)
{
    if (hd % 8 || hd > DMAX) return false;
    const int nv = hd / 8;
    __m256 qv[DMAX / 8];
    for (int c = 0; c < nv; c++) qv[c] = _mm256_mul_ps(_mm256_loadu_ps(q + 8 * c), _mm256_set1_ps(scale));
    float mx = -INFINITY;
    int64_t j = 0;
    for (; j + 4 <= nk; j += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *k0 = k + j * ldkv;
        for (int c = 0; c < nv; c++) {
            a0 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k0 + 8 * c), a0);
            a1 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k0 + ldkv + 8 * c), a1);
            a2 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k0 + 2 * ldkv + 8 * c), a2);
            a3 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k0 + 3 * ldkv + 8 * c), a3);
        }
        sc[j] = hsum8(a0);
        sc[j + 1] = hsum8(a1);
        sc[j + 2] = hsum8(a2);
        sc[j + 3] = hsum8(a3);
        mx = fmaxf(mx, fmaxf(fmaxf(sc[j], sc[j + 1]), fmaxf(sc[j + 2], sc[j + 3])));
    }
    for (; j < nk; j++) {
        __m256 a0 = _mm256_setzero_ps();
        for (int c = 0; c < nv; c++) a0 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k + j * ldkv + 8 * c), a0);
        sc[j] = hsum8(a0);
        mx = fmaxf(mx, sc[j]);
    }
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= nk; j += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(sc + j), vm));
        _mm256_storeu_ps(sc + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    float sum = hsum8(vs);
    for (; j < nk; j++) { /* the tail: the same polynomial, one lane */
        sc[j] = _mm256_cvtss_f32(exp_ps(_mm256_set1_ps(sc[j] - mx)));
        sum += sc[j];
    }
    const float inv = 1.0f / sum;
    __m256 o[DMAX / 8];
    for (int c = 0; c < nv; c++) o[c] = _mm256_setzero_ps();
    for (j = 0; j < nk; j++) {
        const __m256 p = _mm256_set1_ps(sc[j]);
        const float *vr = v + j * ldkv;
        for (int c = 0; c < nv; c++) o[c] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vr + 8 * c), o[c]);
    }
    for (int c = 0; c < nv; c++) _mm256_storeu_ps(out + 8 * c, _mm256_mul_ps(o[c], _mm256_set1_ps(inv)));
    return true;
}
