/* The decode-shaped Q8_0 integer kernel (gemv_q8_0_avx512.c, FASTEST, M = 1..8) against
 * ggml's q8_0 x q8_0 dot computed here in double from the weight bytes and activations
 * rounded by this file's own scalar code (d = max|x| / 127, q = nearbyint(x * 127 / max|x|)),
 * on odd sizes: N not a multiple of the 4-row tile nor of the 16-row block, K of 1, 3 and
 * 130 blocks, every M (padded to 2, 4 and 8 tokens in the kernel), lda > K, ldc > N with
 * guard values, accumulate mode, bit-identical results for 1, 2 and 3 threads, vlmn_gemm
 * taking this kernel on AVX-512 (same bits), and agreement with the tile kernel
 * (gemm_q8_0_avx512) run on the same rows, which rounds the activations the same way.
 * Bound: |c - c64| <= 2e-6 * sum_b sum_i |w_i q_i| * d_w * d_a (the scale of the f32 sums
 * of partial dots in any order; the integer sums are exact). Without AVX-512 (or with VLMN_ISA below it) the
 * kernel is not there to test: it says so and passes. */
#include "test.h"
#include "vlmn/kernels.h"
#include "kernels/kernels_int.h"

#include <stdint.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float frand(void) { return (float)(rnd() % 2000001) / 1000000.0f - 1.0f; }

static const float GUARD = 7777.0f;

/* ggml's rounding of one 32-block and the double dot with one weight block */
static void ref_dot(const uint8_t *blk, const float *x, double *val, double *mag)
{
    double amax = 0;
    for (int i = 0; i < 32; i++) amax = fmax(amax, fabs(x[i]));
    const float inv = amax > 0 ? 127.0f / (float)amax : 0.0f;
    long isum = 0, iabs = 0;
    for (int i = 0; i < 32; i++) {
        const long p = (long)(int8_t)blk[2 + i] * (long)nearbyintf(x[i] * inv);
        isum += p;
        iabs += labs(p);
    }
    uint16_t h;
    memcpy(&h, blk, 2);
    const double sc = vlmn_f16_to_f32(h) * (amax / 127.0);
    *val += (double)isum * sc;
    *mag += (double)iabs * sc;
}

static double worst;

static void check_shape(int64_t M, int64_t N, int64_t K, vlmn_pool *p2, vlmn_pool *p3)
{
    const int64_t nb = K / 32, lda = K + 7, ldc = N + 3, rb = nb * 34;
    uint8_t *w = malloc((size_t)(rb * N));
    float *tmp = malloc(sizeof(float) * (size_t)K), *A = malloc(sizeof(float) * (size_t)(M * lda));
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) tmp[k] = frand() * (1.0f + (float)(n % 3));
        CHECK_EQ_INT(vlmn_from_f32(VLMN_TYPE_Q8_0, tmp, w + rb * n, K), VLMN_OK);
    }
    for (int64_t i = 0; i < M * lda; i++) A[i] = frand() * (i % 37 == 0 ? 9.0f : 1.0f);
    vlmn_matrix W;
    CHECK_EQ_INT(vlmn_matrix_init(&W, VLMN_TYPE_Q8_0, N, K, w), VLMN_OK);
    double *ref = calloc((size_t)(M * N), sizeof(double)), *mag = calloc((size_t)(M * N), sizeof(double));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t b = 0; b < nb; b++) ref_dot(w + rb * n + 34 * b, A + m * lda + 32 * b, &ref[m * N + n], &mag[m * N + n]);

    const size_t cn = (size_t)((M + 2) * ldc);
    float *c[6];
    for (int i = 0; i < 6; i++) {
        c[i] = malloc(sizeof(float) * cn);
        for (size_t q = 0; q < cn; q++) c[i][q] = GUARD;
    }
    for (int64_t m = 0; m < M; m++) /* c[3]: accumulate onto m + n / 8 */
        for (int64_t n = 0; n < N; n++) c[3][m * ldc + n] = (float)m + (float)n / 8;
    gemm_args g = {&W, A, M, lda, c[0], ldc, false, VLMN_PREC_FASTEST};
    CHECK(gemv_q8_0_avx512(NULL, &g));
    g.C = c[1];
    CHECK(gemv_q8_0_avx512(p2, &g));
    g.C = c[2];
    CHECK(gemv_q8_0_avx512(p3, &g));
    g.C = c[3];
    g.accumulate = true;
    CHECK(gemv_q8_0_avx512(p2, &g));
    vlmn_gemm(p3, VLMN_PREC_FASTEST, &W, A, M, lda, c[4], ldc, false);
    gemm_args t = {&W, A, M, lda, c[5], ldc, false, VLMN_PREC_FASTEST};
    CHECK(gemm_q8_0_avx512(p2, &t)); /* the tile kernel, on the same rounding */

    double e = 0, ea = 0, et = 0;
    int guards = 1;
    for (int64_t m = 0; m < M + 2; m++)
        for (int64_t n = 0; n < ldc; n++) {
            const size_t i = (size_t)(m * ldc + n);
            if (m >= M || n >= N) {
                for (int q = 0; q < 4; q++) guards &= c[q][i] == GUARD;
                continue;
            }
            const double s = mag[m * N + n] + 1e-30, r = ref[m * N + n];
            e = fmax(e, fabs(c[0][i] - r) / s);
            ea = fmax(ea, fabs(c[3][i] - (r + ((double)m + (double)n / 8))) / (s + (double)m + (double)n / 8));
            et = fmax(et, fabs((double)c[0][i] - c[5][i]) / s);
        }
    CHECK_MSG(e <= 2e-6 && ea <= 2e-6 && et <= 4e-6,
              "M=%lld N=%lld K=%lld: error %.3g (accumulate %.3g, vs the tile kernel %.3g)", (long long)M,
              (long long)N, (long long)K, e, ea, et);
    CHECK_MSG(guards, "M=%lld N=%lld K=%lld: guard overwritten", (long long)M, (long long)N, (long long)K);
    CHECK_MSG(!memcmp(c[0], c[1], sizeof(float) * cn) && !memcmp(c[0], c[2], sizeof(float) * cn),
              "M=%lld N=%lld K=%lld: results differ with the thread count", (long long)M, (long long)N, (long long)K);
    CHECK_MSG(!memcmp(c[0], c[4], sizeof(float) * cn), "M=%lld N=%lld K=%lld: vlmn_gemm did not run this kernel",
              (long long)M, (long long)N, (long long)K);
    if (e > worst) worst = e;
    for (int i = 0; i < 6; i++) free(c[i]);
    free(ref); free(mag); free(A); free(tmp); free(w);
    vlmn_matrix_release(&W);
}

TEST(gemv_q8_0_vnni_against_int8_dot)
{
    if (vlmn_isa_active() != VLMN_ISA_AVX512) {
        printf("ISA %s: gemv_q8_0_avx512 not tested (needs avx512)\n", vlmn_isa_name(vlmn_isa_active()));
        return;
    }
    vlmn_pool *p2 = NULL, *p3 = NULL;
    CHECK_EQ_INT(vlmn_pool_create(2, &p2), VLMN_OK);
    CHECK_EQ_INT(vlmn_pool_create(3, &p3), VLMN_OK);
    static const int64_t Ns[] = {1, 7, 37}, Ks[] = {32, 96, 4160};
    for (int64_t M = 1; M <= GEMV_MAX_M; M++)
        for (int b = 0; b < 3; b++)
            for (int k = 0; k < 3; k++) check_shape(M, Ns[b], Ks[k], p2, p3);
    printf("observed max error (|c - c64| / sum |w q| d_w d_a) gemv_q8_0_avx512 %.3g\n", worst);
    vlmn_pool_free(p2);
    vlmn_pool_free(p3);
}

/* Calls the kernel does not take: the caller falls back (nothing written). */
TEST(gemv_q8_0_vnni_declines)
{
    if (vlmn_isa_active() != VLMN_ISA_AVX512) return;
    uint8_t w[3 * 34] = {0};
    float A[9 * 32] = {0}, C[9 * 3];
    for (int i = 0; i < 27; i++) C[i] = GUARD;
    vlmn_matrix W;
    CHECK_EQ_INT(vlmn_matrix_init(&W, VLMN_TYPE_Q8_0, 3, 32, w), VLMN_OK);
    gemm_args g = {&W, A, 1, 32, C, 3, false, VLMN_PREC_FAST};
    CHECK(!gemv_q8_0_avx512(NULL, &g)); /* FAST rounds to int16: not this kernel's rounding */
    g.prec = VLMN_PREC_EXACT;
    CHECK(!gemv_q8_0_avx512(NULL, &g));
    g.prec = VLMN_PREC_FASTEST;
    g.M = 9;
    CHECK(!gemv_q8_0_avx512(NULL, &g)); /* M > 8: the tile kernel's shape */
    vlmn_matrix_release(&W);
    float wf[3 * 32] = {0};
    CHECK_EQ_INT(vlmn_matrix_init(&W, VLMN_TYPE_F32, 3, 32, wf), VLMN_OK);
    g.M = 1;
    CHECK(!gemv_q8_0_avx512(NULL, &g)); /* not Q8_0 */
    vlmn_matrix_release(&W);
    for (int i = 0; i < 27; i++) CHECK(C[i] == GUARD);
}

TEST_MAIN()
