/* Attention front end and plain C reference: softmax(scale * q k^T [causal mask]) v
 * per head, f32, max-subtracted (as torch.nn.functional.softmax). Work is split over
 * (head, query row) pairs, so results do not depend on the thread count. */
#include "kernels/kernels_int.h"

#include "core/alloc.h"

#include <math.h>

typedef struct attn_args {
    const float *q, *k, *v;
    int64_t ldq, ldk, ldv, ldo, T;
    float *out;
    int n_head, n_head_kv, head_dim;
    float scale;
    bool causal;
} attn_args;

static float dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void attention_ref_job(void *ctx, int ith, int nth)
{
    const attn_args *a = ctx;
    const int64_t T = a->T, D = a->head_dim;
    const int64_t rows = (int64_t)a->n_head * T;
    const int group = a->n_head / a->n_head_kv;
    for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; r++) {
        const int h = (int)(r / T), hk = h / group;
        const int64_t i = r % T, jn = a->causal ? i + 1 : T;
        const float *q = a->q + i * a->ldq + (int64_t)h * D;
        float *o = a->out + i * a->ldo + (int64_t)h * D;
        /* Two passes over the keys (max, then exp-sum and weighted values), so the
         * reference needs no T-sized buffer. */
        float mx = -INFINITY;
        for (int64_t j = 0; j < jn; j++) {
            float s = a->scale * dot(q, a->k + j * a->ldk + (int64_t)hk * D, (int)D);
            if (s > mx) mx = s;
        }
        for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
        float sum = 0.0f;
        for (int64_t j = 0; j < jn; j++) {
            float s = a->scale * dot(q, a->k + j * a->ldk + (int64_t)hk * D, (int)D);
            float e = expf(s - mx);
            sum += e;
            const float *v = a->v + j * a->ldv + (int64_t)hk * D;
            for (int64_t d = 0; d < D; d++) o[d] += e * v[d];
        }
        for (int64_t d = 0; d < D; d++) o[d] /= sum;
    }
}

typedef struct kt_args {
    const float *k;
    int64_t ldk, T, Tpad;
    int n_head_kv, D;
    float *kt;
} kt_args;

static void transpose_k_job(void *ctx, int ith, int nth)
{
    const kt_args *a = ctx;
    const int64_t D = a->D, T = a->T, Tp = a->Tpad;
    for (int hk = a->n_head_kv * ith / nth; hk < a->n_head_kv * (ith + 1) / nth; hk++) {
        float *kt = a->kt + (int64_t)hk * D * Tp;
        for (int64_t j = 0; j < Tp; j++) {
            const float *kr = a->k + j * a->ldk + (int64_t)hk * D;
            for (int64_t d = 0; d < D; d++) kt[d * Tp + j] = j < T ? kr[d] : 0.0f;
        }
    }
}

float *attention_keys_t(vlmn_pool *p, const float *k, int64_t ldk, int64_t T, int64_t Tpad, int n_head_kv, int D)
{
    float *kt = vlmn_pool_scratch(p, sizeof(float) * (size_t)n_head_kv * (size_t)D * (size_t)Tpad);
    if (!kt) return NULL;
    kt_args a = {k, ldk, T, Tpad, n_head_kv, D, kt};
    vlmn_pool_run(p, transpose_k_job, &a);
    return kt;
}

void attention_ref(vlmn_pool *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                   const float *v, int64_t ldv, float *out, int64_t ldo, int64_t T,
                   int n_head, int n_head_kv, int head_dim, float scale, bool causal)
{
    attn_args a = {q, k, v, ldq, ldk, ldv, ldo, T, out, n_head, n_head_kv, head_dim, scale, causal};
    vlmn_pool_run(p, attention_ref_job, &a);
}

void vlmn_attention(vlmn_pool *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                    const float *v, int64_t ldv, float *out, int64_t ldo, int64_t T,
                    int n_head, int n_head_kv, int head_dim, float scale, bool causal)
{
    if (T <= 0 || n_head <= 0) return;
    VLMN_ASSERT(n_head_kv > 0 && n_head % n_head_kv == 0 && head_dim > 0);
    const vlmn_isa isa = vlmn_isa_active();
    if (isa == VLMN_ISA_AVX512 &&
        attention_avx512(p, q, ldq, k, ldk, v, ldv, out, ldo, T, n_head, n_head_kv, head_dim,
                         scale, causal))
        return;
    if (isa == VLMN_ISA_AVX2 &&
        attention_avx2(p, q, ldq, k, ldk, v, ldv, out, ldo, T, n_head, n_head_kv, head_dim, scale, causal))
        return;
    attention_ref(p, q, ldq, k, ldk, v, ldv, out, ldo, T, n_head, n_head_kv, head_dim, scale,
                  causal);
}

/* The reference of vlmn_attention_head: scores in k order (serial f32 dots), expf, then
 * the values in key order (the engine's decode attention before the SIMD kernels). */
static void attention_head_ref(const float *q, const float *k, const float *v, int64_t ldkv, int64_t nk, int hd,
                               float scale, float *sc, float *o)
{
    float mx = -INFINITY;
    for (int64_t j = 0; j < nk; j++) {
        const float s = dot(q, k + j * ldkv, hd) * scale;
        sc[j] = s;
        if (s > mx) mx = s;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < nk; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    for (int d = 0; d < hd; d++) o[d] = 0.0f;
    for (int64_t j = 0; j < nk; j++) {
        const float *vr = v + j * ldkv, pj = sc[j];
        for (int d = 0; d < hd; d++) o[d] += pj * vr[d];
    }
    const float inv = 1.0f / sum;
    for (int d = 0; d < hd; d++) o[d] *= inv;
}

void vlmn_attention_head(const float *q, const float *k, const float *v, int64_t ldkv, int64_t nk, int head_dim,
                         float scale, float *sc, float *out)
{
    if (nk <= 0 || head_dim <= 0) return;
    const vlmn_isa isa = vlmn_isa_active();
    if (isa == VLMN_ISA_AVX512 && attention_head_avx512(q, k, v, ldkv, nk, head_dim, scale, sc, out)) return;
    if (isa == VLMN_ISA_AVX2 && attention_head_avx2(q, k, v, ldkv, nk, head_dim, scale, sc, out)) return;
    attention_head_ref(q, k, v, ldkv, nk, head_dim, scale, sc, out);
}
