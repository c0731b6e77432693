/* The AVX-512 decode kernels (M = 1..8, tokens in the lanes: gemv_q8_0_avx512.c for Q8_0
 * FASTEST, gemv_bf16_avx512.c for BF16 FAST) against a double product computed here from
 * the weight bytes and activations rounded by this file's own scalar code: ggml's q8_0
 * (d = max|x| / 127, q = nearbyint(x * 127 / max|x|)) per 32-block, and bf16 round to
 * nearest even by bit arithmetic. Odd sizes: N not a multiple of the 4-row tile nor of the
 * 16-row block; K of 1, 3 and 130 blocks (Q8_0), and 5, 37, 4103 (BF16: K < 16, and tails
 * past the last multiple of 16); every M (padded to 2, 4 and 8 tokens in the kernels);
 * lda > K, ldc > N with guard values, accumulate mode, bit-identical results for 1, 2 and 3
 * threads, vlmn_gemm taking the kernel on AVX-512 (same bits), and agreement with the tile
 * kernel of the same precision (gemm_q8_0_avx512 / gemm_bf16_avx512) on the same rows,
 * which rounds the activations the same way. Bound: |c - c64| <= 2e-6 * sum |w a'| (a' the
 * rounded activations, in Q8_0's case q * d_a with w = q_w * d_w: the scale of the f32 sums
 * of partial dots in any order; Q8_0's integer sums are exact), which one lost product
 * (>= 1 / K of the sum) would exceed. Without AVX-512 (or with VLMN_ISA below it) the
 * kernels are not there to test: it says so and passes. */
#include "test.h"
#include "vlmn/kernels.h"
#include "kernels/kernels_int.h"

#include <stdint.h>

#define KERNEL_RNG_SEED 0x9E3779B97F4A7C15ull
#include "kernel_rng.h"

static const float GUARD = 7777.0f;

/* a[0..n) rounded to integers with one scale: q = nearbyint(x * qmax / max|x|) (the
 * kernels' float inverse), as q * max|x| / qmax in double */
static void round_scaled(const float *a, int64_t n, float qmax, double *out)
{
    double amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(a[i]));
    const float inv = amax > 0 ? qmax / (float)amax : 0.0f;
    for (int64_t i = 0; i < n; i++) out[i] = (double)nearbyintf(a[i] * inv) * (amax / qmax);
}

/* bf16 of x, round to nearest even, as f32 (no NaN here) */
static double bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

static double worst[2][32]; /* [FAST][type] */

static void check_shape(uint32_t type, vlmn_precision prec, int64_t M, int64_t N, int64_t K, vlmn_pool *p2,
                        vlmn_pool *p3)
{
    const bool q8 = type == VLMN_TYPE_Q8_0;
    bool (*kernel)(vlmn_pool *, const gemm_args *) = q8 ? gemv_q8_0_avx512 : gemv_bf16_avx512;
    bool (*tiles)(vlmn_pool *, const gemm_args *) = q8 ? gemm_q8_0_avx512 : gemm_bf16_avx512;
    uint64_t rb = 0;
    CHECK_EQ_INT(vlmn_type_row_bytes(type, (uint64_t)K, &rb), VLMN_OK);
    const int64_t lda = K + 7, ldc = N + 3;
    uint8_t *w = malloc((size_t)(rb * (uint64_t)N));
    float *tmp = malloc(sizeof(float) * (size_t)K), *A = malloc(sizeof(float) * (size_t)(M * lda));
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) tmp[k] = frand() * (1.0f + (float)(n % 3));
        CHECK_EQ_INT(vlmn_from_f32(type, tmp, w + rb * (uint64_t)n, K), VLMN_OK);
    }
    for (int64_t i = 0; i < M * lda; i++) A[i] = frand() * (i % 37 == 0 ? 9.0f : 1.0f);
    vlmn_matrix W;
    CHECK_EQ_INT(vlmn_matrix_init(&W, type, N, K, w), VLMN_OK);
    /* the rounded activations a' (double) and the double dot with the weights as stored */
    double *ar = malloc(sizeof(double) * (size_t)K);
    double *ref = calloc((size_t)(M * N), sizeof(double)), *mag = calloc((size_t)(M * N), sizeof(double));
    for (int64_t m = 0; m < M; m++) {
        const float *a = A + m * lda;
        if (!q8)
            for (int64_t k = 0; k < K; k++) ar[k] = bf16_round(a[k]);
        else if (prec == VLMN_PREC_FASTEST)
            for (int64_t b = 0; b < K / 32; b++) round_scaled(a + 32 * b, 32, 127.0f, ar + 32 * b);
        else /* FAST: windows of 16 blocks, the last one the rest */
            for (int64_t b0 = 0, b1; b0 < K / 32; b0 = b1) {
                b1 = K / 32 - b0 < 16 ? K / 32 : b0 + 16;
                round_scaled(a + 32 * b0, 32 * (b1 - b0), 32767.0f, ar + 32 * b0);
            }
        for (int64_t n = 0; n < N; n++) {
            vlmn_dequant(type, w + rb * (uint64_t)n, tmp, K);
            for (int64_t k = 0; k < K; k++) {
                ref[m * N + n] += ar[k] * tmp[k];
                mag[m * N + n] += fabs(ar[k] * tmp[k]);
            }
        }
    }
    free(ar);

    const size_t cn = (size_t)((M + 2) * ldc);
    float *c[6];
    for (int i = 0; i < 6; i++) {
        c[i] = malloc(sizeof(float) * cn);
        for (size_t q = 0; q < cn; q++) c[i][q] = GUARD;
    }
    for (int64_t m = 0; m < M; m++) /* c[3]: accumulate onto m + n / 8 */
        for (int64_t n = 0; n < N; n++) c[3][m * ldc + n] = (float)m + (float)n / 8;
    gemm_args g = {&W, A, M, lda, c[0], ldc, false, prec};
    CHECK(kernel(NULL, &g));
    g.C = c[1];
    CHECK(kernel(p2, &g));
    g.C = c[2];
    CHECK(kernel(p3, &g));
    g.C = c[3];
    g.accumulate = true;
    CHECK(kernel(p2, &g));
    vlmn_gemm(p3, prec, &W, A, M, lda, c[4], ldc, false);
    gemm_args t = {&W, A, M, lda, c[5], ldc, false, prec};
    CHECK(tiles(p2, &t)); /* the tile kernel, on the same rounding */

    double e = 0, ea = 0, et = 0;
    int guards = 1;
    for (int64_t m = 0; m < M + 2; m++)
        for (int64_t n = 0; n < ldc; n++) {
            const size_t i = (size_t)(m * ldc + n);
            if (m >= M || n >= N) {
                for (int q = 0; q < 4; q++) guards &= c[q][i] == GUARD;
                continue;
            }
            const double s = mag[m * N + n] + 1e-30, r = ref[m * N + n], o = (double)m + (double)n / 8;
            e = fmax(e, fabs(c[0][i] - r) / s);
            ea = fmax(ea, fabs(c[3][i] - (r + o)) / (s + o));
            et = fmax(et, fabs((double)c[0][i] - c[5][i]) / s);
        }
    char tn[32];
    snprintf(tn, sizeof tn, "%s %s", vlmn_type_name(type), prec == VLMN_PREC_FAST ? "fast" : "fastest");
    CHECK_MSG(e <= 2e-6 && ea <= 2e-6 && et <= 4e-6,
              "%s M=%lld N=%lld K=%lld: error %.3g (accumulate %.3g, vs the tile kernel %.3g)", tn, (long long)M,
              (long long)N, (long long)K, e, ea, et);
    CHECK_MSG(guards, "%s M=%lld N=%lld K=%lld: guard overwritten", tn, (long long)M, (long long)N, (long long)K);
    CHECK_MSG(!memcmp(c[0], c[1], sizeof(float) * cn) && !memcmp(c[0], c[2], sizeof(float) * cn),
              "%s M=%lld N=%lld K=%lld: results differ with the thread count", tn, (long long)M, (long long)N,
              (long long)K);
    CHECK_MSG(!memcmp(c[0], c[4], sizeof(float) * cn), "%s M=%lld N=%lld K=%lld: vlmn_gemm did not run this kernel",
              tn, (long long)M, (long long)N, (long long)K);
    if (e > worst[prec == VLMN_PREC_FAST][type]) worst[prec == VLMN_PREC_FAST][type] = e;
    for (int i = 0; i < 6; i++) free(c[i]);
    free(ref); free(mag); free(A); free(tmp); free(w);
    vlmn_matrix_release(&W);
}

static void check_type(uint32_t type, vlmn_precision prec, const int64_t *Ks, int nk)
{
    if (vlmn_isa_active() != VLMN_ISA_AVX512) {
        printf("ISA %s: the %s decode kernel not tested (needs avx512)\n", vlmn_isa_name(vlmn_isa_active()),
               vlmn_type_name(type));
        return;
    }
    vlmn_pool *p2 = NULL, *p3 = NULL;
    CHECK_EQ_INT(vlmn_pool_create(2, &p2), VLMN_OK);
    CHECK_EQ_INT(vlmn_pool_create(3, &p3), VLMN_OK);
    static const int64_t Ns[] = {1, 7, 37};
    for (int64_t M = 1; M <= GEMV_MAX_M; M++)
        for (int b = 0; b < 3; b++)
            for (int k = 0; k < nk; k++) check_shape(type, prec, M, Ns[b], Ks[k], p2, p3);
    printf("observed max error (|c - c64| / sum |w a'|) %s %s %.3g\n", vlmn_type_name(type), vlmn_precision_name(prec),
           worst[prec == VLMN_PREC_FAST][type]);
    vlmn_pool_free(p2);
    vlmn_pool_free(p3);
}

/* Q8_0 K: 1, 3 blocks (one short FAST window), 130 (8 windows and a short one) */
static const int64_t KQ[] = {32, 96, 4160}, KB[] = {5, 37, 4103};
TEST(gemv_q8_0_avx512_fastest) { check_type(VLMN_TYPE_Q8_0, VLMN_PREC_FASTEST, KQ, 3); }
TEST(gemv_q8_0_avx512_fast) { check_type(VLMN_TYPE_Q8_0, VLMN_PREC_FAST, KQ, 3); }
TEST(gemv_bf16_avx512_fast) { check_type(VLMN_TYPE_BF16, VLMN_PREC_FAST, KB, 3); }

/* Calls the kernel does not take: the caller falls back (nothing written). */
TEST(gemv_avx512_declines)
{
    if (vlmn_isa_active() != VLMN_ISA_AVX512) return;
    uint8_t w[3 * 34] = {0};
    float A[9 * 32] = {0}, C[9 * 3];
    for (int i = 0; i < 27; i++) C[i] = GUARD;
    vlmn_matrix W;
    CHECK_EQ_INT(vlmn_matrix_init(&W, VLMN_TYPE_Q8_0, 3, 32, w), VLMN_OK);
    gemm_args g = {&W, A, 1, 32, C, 3, false, VLMN_PREC_EXACT};
    CHECK(!gemv_q8_0_avx512(NULL, &g)); /* EXACT keeps f32 activations */
    g.prec = VLMN_PREC_FASTEST;
    g.M = 9;
    CHECK(!gemv_q8_0_avx512(NULL, &g)); /* M > 8: the tile kernel's shape */
    vlmn_matrix_release(&W);
    float wf[3 * 32] = {0};
    CHECK_EQ_INT(vlmn_matrix_init(&W, VLMN_TYPE_F32, 3, 32, wf), VLMN_OK);
    g.M = 1;
    CHECK(!gemv_q8_0_avx512(NULL, &g)); /* not Q8_0 */
    CHECK(!gemv_bf16_avx512(NULL, &g)); /* not BF16 */
    vlmn_matrix_release(&W);
    uint16_t wb[3 * 32] = {0};
    CHECK_EQ_INT(vlmn_matrix_init(&W, VLMN_TYPE_BF16, 3, 32, wb), VLMN_OK);
    g.prec = VLMN_PREC_EXACT;
    CHECK(!gemv_bf16_avx512(NULL, &g)); /* EXACT keeps f32 activations */
    g.prec = VLMN_PREC_FAST;
    g.M = 9;
    CHECK(!gemv_bf16_avx512(NULL, &g));
    vlmn_matrix_release(&W);
    for (int i = 0; i < 27; i++) CHECK(C[i] == GUARD);
}

TEST_MAIN()
