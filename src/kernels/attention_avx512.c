/* Tiled attention with AVX-512 (flash-style): keys are transposed once per call, then
 * each unit of 4 query rows of one head walks the keys in blocks of 64 with an online
 * softmax (running max and sum, rescaling the output), so no T x T score matrix is
 * ever built: a 4 x 64 score tile and a 4 x head_dim output live in L1. Units are
 * split over threads, each output row computed whole by one thread in a fixed key
 * order, so results do not depend on the thread count. head_dim: multiple of 16, <= 256. */
#include "kernels/kernels_int.h"

#include <immintrin.h>
#include <math.h>

#define QR 4     /* query rows per unit */
#define KBLK 64  /* keys per block (4 vectors) */
#define DMAX 256

/* e^x for x <= 0 (scores minus their running max); about 1 ulp. x is clamped at -100,
 * where e^x is far below f32 resolution of the sums it joins. */
static inline __m512 exp_ps(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-100.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
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
    float o[QR][DMAX] __attribute__((aligned(64)));
    float s[QR][KBLK] __attribute__((aligned(64)));
    float m[QR], l[QR];
    for (int r = 0; r < QR; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int64_t d = 0; d < D; d++) o[r][d] = 0.0f;
    }
    const int64_t jend = a->causal ? i0 + nrow : T;
    const __m512 vscale = _mm512_set1_ps(a->scale);
    for (int64_t j0 = 0; j0 < jend; j0 += KBLK) {
        const int64_t jn = jend - j0 < KBLK ? jend - j0 : KBLK;
        const int nvec = (int)((jn + 15) / 16);
        /* scores: s[r][j] = scale * q_r . k_j, 4 rows x up to 4 key vectors */
        __m512 acc[QR][4];
#pragma GCC unroll 4
        for (int r = 0; r < QR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
        if (nvec == 4) {
            for (int64_t d = 0; d < D; d++) {
                const float *kd = kt + d * Tp + j0;
                __m512 k0 = _mm512_loadu_ps(kd), k1 = _mm512_loadu_ps(kd + 16);
                __m512 k2 = _mm512_loadu_ps(kd + 32), k3 = _mm512_loadu_ps(kd + 48);
#pragma GCC unroll 4
                for (int r = 0; r < QR; r++) {
                    __m512 qb = _mm512_set1_ps(qr[r][d]);
                    acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
                    acc[r][2] = _mm512_fmadd_ps(qb, k2, acc[r][2]);
                    acc[r][3] = _mm512_fmadd_ps(qb, k3, acc[r][3]);
                }
            }
        } else {
            for (int64_t d = 0; d < D; d++) {
                const float *kd = kt + d * Tp + j0;
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) {
                    if (v >= nvec) break;
                    __m512 kv = _mm512_loadu_ps(kd + 16 * v);
#pragma GCC unroll 4
                    for (int r = 0; r < QR; r++)
                        acc[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(qr[r][d]), kv, acc[r][v]);
                }
            }
        }
        /* online softmax per row */
        for (int r = 0; r < QR; r++) {
            int64_t lim = a->causal ? i0 + r + 1 - j0 : jn; /* valid keys in this block */
            if (lim > jn) lim = jn;
            if (r >= nrow) lim = jn < 1 ? jn : 1;
            __m512 mx = _mm512_set1_ps(-INFINITY);
            __mmask16 mk[4];
            for (int v = 0; v < 4; v++) {
                int64_t left = lim - 16 * v;
                mk[v] = (__mmask16)(left <= 0 ? 0 : left >= 16 ? 0xffff : (1u << left) - 1);
                acc[r][v] = _mm512_mul_ps(acc[r][v], vscale);
                mx = _mm512_mask_max_ps(mx, mk[v], mx, acc[r][v]);
            }
            float bmax = _mm512_reduce_max_ps(mx);
            float mnew = bmax > m[r] ? bmax : m[r];
            float c = expf(m[r] - mnew);
            __m512 vm = _mm512_set1_ps(mnew), sum = _mm512_setzero_ps();
            for (int v = 0; v < 4; v++) {
                __m512 p = _mm512_maskz_mov_ps(mk[v], exp_ps(_mm512_sub_ps(acc[r][v], vm)));
                _mm512_store_ps(&s[r][16 * v], p);
                sum = _mm512_add_ps(sum, p);
            }
            l[r] = l[r] * c + _mm512_reduce_add_ps(sum);
            m[r] = mnew;
            if (c != 1.0f) {
                __m512 vc = _mm512_set1_ps(c);
                for (int64_t d = 0; d < D; d += 16)
                    _mm512_store_ps(&o[r][d], _mm512_mul_ps(_mm512_load_ps(&o[r][d]), vc));
            }
        }
        /* o[r] += sum_j s[r][j] v_j, head_dim in chunks of 4 vectors */
        for (int64_t d0 = 0; d0 < D; d0 += 64) {
            const int dv = D - d0 >= 64 ? 4 : (int)((D - d0) / 16);
            __m512 oa[QR][4];
#pragma GCC unroll 4
            for (int r = 0; r < QR; r++)
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++)
                    oa[r][v] = v < dv ? _mm512_load_ps(&o[r][d0 + 16 * v]) : _mm512_setzero_ps();
            for (int64_t j = 0; j < jn; j++) {
                const float *vr = a->v + (j0 + j) * a->ldv + (int64_t)hk * D + d0;
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) {
                    if (v >= dv) break;
                    __m512 vv = _mm512_loadu_ps(vr + 16 * v);
#pragma GCC unroll 4
                    for (int r = 0; r < QR; r++)
                        oa[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(s[r][j]), vv, oa[r][v]);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < QR; r++)
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++)
                    if (v < dv) _mm512_store_ps(&o[r][d0 + 16 * v], oa[r][v]);
        }
    }
    for (int r = 0; r < nrow; r++) {
        float *out = a->out + (i0 + r) * a->ldo + (int64_t)h * D;
        __m512 inv = _mm512_set1_ps(1.0f / l[r]);
        for (int64_t d = 0; d < D; d += 16)
            _mm512_storeu_ps(out + d, _mm512_mul_ps(_mm512_load_ps(&o[r][d]), inv));
    }
}

static void attn_job_fn(void *ctx, int ith, int nth)
{
    const attn_job *a = ctx;
    const int64_t nq = (a->T + QR - 1) / QR, units = (int64_t)a->n_head * nq;
    for (int64_t u = units * ith / nth; u < units * (ith + 1) / nth; u++)
        unit(a, (int)(u / nq), (u % nq) * QR);
}

bool attention_avx512(vlmn_pool *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                      const float *v, int64_t ldv, float *out, int64_t ldo, int64_t T,
                      int n_head, int n_head_kv, int head_dim, float scale, bool causal)
{
    if (head_dim % 16 || head_dim > DMAX) return false;
    attn_job a = {q, k, v, ldq, ldk, ldv, ldo, T, (T + 15) & ~(int64_t)15, out, NULL,
                  n_head, n_head_kv, head_dim, scale, causal};
    a.kt = attention_keys_t(p, k, ldk, T, a.Tpad, n_head_kv, head_dim);
    if (!a.kt) return false;
    vlmn_pool_run(p, attn_job_fn, &a);
    return true;
}

/* vlmn_attention_head: scores 4 keys at a time (hd / 16 FMAs each, then a horizontal sum),
 * exp_ps on 16 scores at a time, then the values with the output in registers. */
bool attention_head_avx512(const float *q, const float *k, const float *v, int64_t ldkv, int64_t nk, int hd,
                           float scale, float *sc, float *out)
{
    if (hd % 16 || hd > DMAX) return false;
    const int nv = hd / 16;
    __m512 qv[DMAX / 16];
    for (int c = 0; c < nv; c++) qv[c] = _mm512_mul_ps(_mm512_loadu_ps(q + 16 * c), _mm512_set1_ps(scale));
    float mx = -INFINITY;
    int64_t j = 0;
    for (; j + 4 <= nk; j += 4) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *k0 = k + j * ldkv;
        for (int c = 0; c < nv; c++) {
            a0 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k0 + 16 * c), a0);
            a1 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k0 + ldkv + 16 * c), a1);
            a2 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k0 + 2 * ldkv + 16 * c), a2);
            a3 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k0 + 3 * ldkv + 16 * c), a3);
        }
        sc[j] = _mm512_reduce_add_ps(a0);
        sc[j + 1] = _mm512_reduce_add_ps(a1);
        sc[j + 2] = _mm512_reduce_add_ps(a2);
        sc[j + 3] = _mm512_reduce_add_ps(a3);
        mx = fmaxf(mx, fmaxf(fmaxf(sc[j], sc[j + 1]), fmaxf(sc[j + 2], sc[j + 3])));
    }
    for (; j < nk; j++) {
        __m512 a0 = _mm512_setzero_ps();
        for (int c = 0; c < nv; c++) a0 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + j * ldkv + 16 * c), a0);
        sc[j] = _mm512_reduce_add_ps(a0);
        mx = fmaxf(mx, sc[j]);
    }
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 vs = _mm512_setzero_ps();
    for (j = 0; j < nk; j += 16) {
        const __mmask16 m = nk - j >= 16 ? 0xffff : (__mmask16)((1u << (nk - j)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, sc + j), vm)));
        _mm512_mask_storeu_ps(sc + j, m, e);
        vs = _mm512_add_ps(vs, e);
    }
    const float inv = 1.0f / _mm512_reduce_add_ps(vs);
    __m512 o[DMAX / 16];
    for (int c = 0; c < nv; c++) o[c] = _mm512_setzero_ps();
    for (j = 0; j < nk; j++) {
        const __m512 p = _mm512_set1_ps(sc[j]);
        const float *vr = v + j * ldkv;
        for (int c = 0; c < nv; c++) o[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vr + 16 * c), o[c]);
    }
    for (int c = 0; c < nv; c++) _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(o[c], _mm512_set1_ps(inv)));
    return true;
}
