/* Attention: the reference and the AVX2 / AVX-512 tiled kernels against a double-precision
 * softmax(scale q k^T) v computed here, causal and full, grouped KV heads, odd T (so
 * tiles have tails), strided rows, guard values, and bit-identical results for 1, 2
 * and 3 threads. Bound: normwise relative error <= 1e-5 (observed values printed). */
#include "test.h"
#include "vlmn/kernels.h"

#include <stdint.h>

#define KERNEL_RNG_SEED 0x9E3779B97F4A7C15ull
#include "kernel_rng.h"

static const float GUARD = -4242.0f;

static void attn64(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                   int64_t ldv, double *out, int64_t T, int H, int Hkv, int D, double scale,
                   bool causal)
{
    double *s = malloc(sizeof(double) * (size_t)T);
    for (int h = 0; h < H; h++) {
        int hk = h / (H / Hkv);
        for (int64_t i = 0; i < T; i++) {
            int64_t jn = causal ? i + 1 : T;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < jn; j++) {
                double d = 0;
                for (int e = 0; e < D; e++)
                    d += (double)q[i * ldq + h * D + e] * k[j * ldk + hk * D + e];
                s[j] = d * scale;
                if (s[j] > mx) mx = s[j];
            }
            for (int64_t j = 0; j < jn; j++) sum += (s[j] = exp(s[j] - mx));
            for (int e = 0; e < D; e++) {
                double o = 0;
                for (int64_t j = 0; j < jn; j++) o += s[j] * v[j * ldv + hk * D + e];
                out[i * H * D + h * D + e] = o / sum;
            }
        }
    }
    free(s);
}

static double worst_err;

static void check_attn(int64_t T, int H, int Hkv, int D, bool causal, float amp)
{
    const int64_t ldq = (int64_t)H * D + 3, ldk = (int64_t)Hkv * D + 5, ldv = ldk + 2;
    const int64_t ldo = (int64_t)H * D + 7;
    float *q = malloc(sizeof(float) * (size_t)(T * ldq));
    float *k = malloc(sizeof(float) * (size_t)(T * ldk));
    float *v = malloc(sizeof(float) * (size_t)(T * ldv));
    for (int64_t i = 0; i < T * ldq; i++) q[i] = amp * frand();
    for (int64_t i = 0; i < T * ldk; i++) k[i] = amp * frand();
    for (int64_t i = 0; i < T * ldv; i++) v[i] = frand();
    double *o64 = malloc(sizeof(double) * (size_t)(T * H * D));
    float scale = 1.0f / sqrtf((float)D);
    attn64(q, ldq, k, ldk, v, ldv, o64, T, H, Hkv, D, scale, causal);
    vlmn_pool *p2 = NULL, *p3 = NULL;
    vlmn_pool_create(2, &p2);
    vlmn_pool_create(3, &p3);
    vlmn_isa saved = vlmn_isa_active();
    size_t n = (size_t)((T + 1) * ldo);
    float *o[3];
    for (int isa = VLMN_ISA_REF; isa <= VLMN_ISA_AVX512; isa++) {
        if (vlmn_isa_force((vlmn_isa)isa) != VLMN_OK) continue;
        vlmn_pool *pools[3] = {NULL, p2, p3};
        for (int t = 0; t < 3; t++) {
            o[t] = malloc(sizeof(float) * n);
            for (size_t i = 0; i < n; i++) o[t][i] = GUARD;
            vlmn_attention(pools[t], q, ldq, k, ldk, v, ldv, o[t], ldo, T, H, Hkv, D, scale,
                           causal);
        }
        double num = 0, den = 0;
        int guards = 1;
        for (int64_t i = 0; i <= T; i++)
            for (int64_t c = 0; c < ldo; c++) {
                float x = o[0][i * ldo + c];
                if (i == T || c >= (int64_t)H * D) {
                    guards &= x == GUARD;
                    continue;
                }
                double w = o64[i * H * D + c];
                num += (x - w) * (x - w);
                den += w * w;
            }
        double err = sqrt(num / den);
        if (!(err <= 1e-5)) err = INFINITY;
        if (err > worst_err) worst_err = err;
        CHECK_MSG(err <= 1e-5, "%s T=%lld H=%d/%d D=%d causal=%d: error %.3g",
                  vlmn_isa_name((vlmn_isa)isa), (long long)T, H, Hkv, D, causal, err);
        CHECK_MSG(guards, "%s T=%lld D=%d: guard overwritten", vlmn_isa_name((vlmn_isa)isa),
                  (long long)T, D);
        CHECK_MSG(!memcmp(o[0], o[1], n * sizeof(float)) && !memcmp(o[0], o[2], n * sizeof(float)),
                  "%s T=%lld D=%d causal=%d: results differ with thread count",
                  vlmn_isa_name((vlmn_isa)isa), (long long)T, D, causal);
        for (int t = 0; t < 3; t++) free(o[t]);
    }
    vlmn_isa_force(saved);
    vlmn_pool_free(p2);
    vlmn_pool_free(p3);
    free(q); free(k); free(v); free(o64);
}

TEST(attention_causal)
{
    check_attn(1, 2, 2, 64, true, 1.0f);
    check_attn(37, 4, 2, 64, true, 1.0f);
    check_attn(130, 2, 1, 128, true, 2.0f);
}

TEST(attention_full)
{
    check_attn(5, 2, 2, 64, false, 1.0f);
    check_attn(77, 3, 3, 64, false, 3.0f);
    check_attn(130, 2, 2, 128, false, 1.0f);
}

/* Head sizes the AVX-512 kernel does not tile (24, 40) take the reference there and the AVX2 kernel (multiples of 8) on AVX2. */
TEST(attention_odd_head_dim)
{
    check_attn(19, 2, 1, 24, true, 1.0f);
    check_attn(19, 2, 2, 40, false, 1.0f);
}

TEST(attention_zero_tokens)
{
    float x = GUARD;
    vlmn_attention(NULL, &x, 1, &x, 1, &x, 1, &x, 1, 0, 1, 1, 1, 1.0f, true);
    CHECK(x == GUARD);
    printf("observed max attention error %.3g\n", worst_err);
}

/* vlmn_attention_head (a decode step: one query against nk cached keys) on every ISA the
 * CPU has, against the double softmax here: nk = 1 (the first token), 3, 17 (tails of the
 * 4-key and 8/16-score steps), 700 (a LLaVA prompt); head_dim 128 (LLaVA), 64, 80 and 40
 * (not multiples of 16: AVX-512 leaves them to the reference), 36 (not of 8 either); k/v
 * rows strided (grouped heads share a row). Bound: normwise 1e-5; nothing past out[hd). */
TEST(attention_head_decode)
{
    static const int64_t NK[] = {1, 3, 17, 700};
    static const int HD[] = {128, 64, 80, 40, 36};
    static const vlmn_isa isas[] = {VLMN_ISA_REF, VLMN_ISA_AVX2, VLMN_ISA_AVX512};
    const vlmn_isa saved = vlmn_isa_active();
    double worst = 0;
    for (int ii = 0; ii < 3; ii++) {
        if (!vlmn_isa_supported(isas[ii]) || isas[ii] > saved) continue;
        vlmn_isa_force(isas[ii]);
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 5; b++) {
                const int64_t nk = NK[a], hd = HD[b], ld = 3 * hd + 5;
                float *q = malloc(sizeof(float) * (size_t)hd), *k = malloc(sizeof(float) * (size_t)(nk * ld));
                float *v = malloc(sizeof(float) * (size_t)(nk * ld)), *sc = malloc(sizeof(float) * (size_t)nk);
                float *o = malloc(sizeof(float) * (size_t)(hd + 4));
                for (int64_t i = 0; i < hd; i++) q[i] = 3.0f * frand();
                for (int64_t i = 0; i < nk * ld; i++) k[i] = frand(), v[i] = frand();
                for (int i = 0; i < 4; i++) o[hd + i] = GUARD;
                const double scale = 1.0 / sqrt((double)hd);
                vlmn_attention_head(q, k, v, ld, nk, (int)hd, (float)scale, sc, o);
                double mx = -INFINITY, sum = 0, num = 0, den = 0;
                double *s = malloc(sizeof(double) * (size_t)nk);
                for (int64_t j = 0; j < nk; j++) {
                    s[j] = 0;
                    for (int64_t d = 0; d < hd; d++) s[j] += (double)q[d] * k[j * ld + d];
                    s[j] *= (double)(float)scale;
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j < nk; j++) sum += s[j] = exp(s[j] - mx);
                for (int64_t d = 0; d < hd; d++) {
                    double w = 0;
                    for (int64_t j = 0; j < nk; j++) w += s[j] * v[j * ld + d];
                    w /= sum;
                    num += (o[d] - w) * (o[d] - w);
                    den += w * w;
                }
                const double e = sqrt(num / den);
                CHECK_MSG(e <= 1e-5, "%s nk=%lld hd=%lld: error %.3g", vlmn_isa_name(isas[ii]), (long long)nk,
                          (long long)hd, e);
                for (int i = 0; i < 4; i++) CHECK(o[hd + i] == GUARD);
                if (e > worst) worst = e;
                free(s); free(q); free(k); free(v); free(sc); free(o);
            }
    }
    vlmn_isa_force(saved);
    printf("observed max vlmn_attention_head error %.3g\n", worst);
}

TEST_MAIN()
