/* VLMN_EMULATE_PRECISION: the f32 path's rounding of activations for FAST/FASTEST, checked
 * against the rounding rules stated in kernels.h / docs/kernels.md (bf16 round to nearest
 * even; Q8_0 FASTEST ggml's q8_0 x q8_0 dot per 32-block; FAST int16 per 512-value window),
 * written out here independently in double precision. */
#include "test.h"
#include "vlmn/kernels.h"
#include "vlmn/types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TEST(bf16_round_to_nearest_even)
{
    float x[6] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.0f - 0x1p-7f, 1.0f + 0x1p-8f + 0x1p-20f, 0.0f, 3.0f};
    float want[6] = {1.0f, 1.0f + 0x1p-6f, -2.0f, 1.0f + 0x1p-7f, 0.0f, 3.0f};
    float out[6];
    CHECK(vlmn_precision_round_row(VLMN_PREC_FAST, VLMN_TYPE_BF16, x, 6, out));
    for (int i = 0; i < 6; i++) CHECK_MSG(out[i] == want[i], "%d: %a != %a", i, out[i], want[i]);
    CHECK(vlmn_precision_round_row(VLMN_PREC_FASTEST, VLMN_TYPE_BF16, x, 6, out)); /* same kernel */
    CHECK(!vlmn_precision_round_row(VLMN_PREC_EXACT, VLMN_TYPE_BF16, x, 6, out));
    CHECK(!vlmn_precision_round_row(VLMN_PREC_FAST, VLMN_TYPE_F16, x, 6, out));
}

static uint64_t rng = 88172645463325252ull;
static double unif(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Each value is an integer multiple of its scale max|x|/qmax (over the block or window),
 * within half a step of x; the scale windows are where the kernels put them. */
static void check_grid(const float *x, const float *o, int64_t n, double qmax)
{
    double amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(x[i]));
    double d = amax / qmax;
    for (int64_t i = 0; i < n; i++) {
        double q = o[i] / d;
        /* q * d is a float: q is an integer up to its rounding, ~6e-8 relative */
        CHECK_MSG(fabs(q - nearbyint(q)) < 4e-7 * qmax + 1e-4 && fabs(q) <= qmax + 1e-3, "value %lld not on the grid (q = %g)",
                  (long long)i, q);
        CHECK_MSG(fabs(o[i] - x[i]) <= 0.5 * d * (1 + 1e-5), "value %lld: error %g > half step %g", (long long)i,
                  fabs(o[i] - x[i]), d / 2);
    }
}

TEST(q8_0_fastest_and_fast_grids)
{
    enum { K = 33 * 32 }; /* 33 blocks: FAST windows of 16, 16 and 1 blocks */
    static float x[K], o[K];
    for (int i = 0; i < K; i++) x[i] = (float)(unif() * 2 - 1);
    x[5] = 40.0f;       /* outlier in block 0 / window 0 only */
    x[32 * 20] = -9.0f; /* in block 20 / window 1 */
    CHECK(vlmn_precision_round_row(VLMN_PREC_FASTEST, VLMN_TYPE_Q8_0, x, K, o));
    for (int b = 0; b < K / 32; b++) check_grid(x + 32 * b, o + 32 * b, 32, 127);
    CHECK(vlmn_precision_round_row(VLMN_PREC_FAST, VLMN_TYPE_Q8_0, x, K, o));
    check_grid(x, o, 512, 32767);
    check_grid(x + 512, o + 512, 512, 32767);
    check_grid(x + 1024, o + 1024, 32, 32767);
    float y[40] = {0};
    CHECK(!vlmn_precision_round_row(VLMN_PREC_FAST, VLMN_TYPE_Q8_0, y, 40, o)); /* K % 32 */
}

/* The emulated GEMM equals ggml's q8_0 x q8_0 dot, computed here from the bytes, for M = 9
 * tokens (the tile kernel's shape) and M = 3 (a decode shape: AVX-512 runs FASTEST Q8_0
 * decode through gemv_q8_0_avx512, which rounds as the tile kernel does, so it is
 * emulated too; avx512_runs_gemv in gemm.c). */
TEST(q8_0_fastest_gemm_is_the_int8_dot)
{
    enum { N = 5, Kc = 96, MMAX = 9 };
    setenv("VLMN_EMULATE_PRECISION", "1", 1);
    if (vlmn_isa_active() == VLMN_ISA_AVX512) {
        /* the real kernels run there, checked against the reference by test_gemm */
        CHECK(!vlmn_precision_emulated());
        return;
    }
    CHECK(vlmn_precision_emulated());
    static float w[N * Kc], a[MMAX * Kc], c[MMAX * N];
    for (int i = 0; i < N * Kc; i++) w[i] = (float)(unif() * 2 - 1);
    for (int i = 0; i < MMAX * Kc; i++) a[i] = (float)(unif() * 4 - 2);
    static unsigned char wq[N * (Kc / 32) * 34];
    CHECK(vlmn_from_f32(VLMN_TYPE_Q8_0, w, wq, N * Kc) == VLMN_OK);
    vlmn_matrix W;
    vlmn_pool *pool = NULL;
    CHECK(vlmn_matrix_init(&W, VLMN_TYPE_Q8_0, N, Kc, wq) == VLMN_OK);
    CHECK(vlmn_pool_create(2, &pool) == VLMN_OK);
    for (int M = 3; M <= MMAX; M += MMAX - 3) {
        vlmn_gemm(pool, VLMN_PREC_FASTEST, &W, a, M, Kc, c, N, false);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double ref = 0;
                for (int b = 0; b < Kc / 32; b++) {
                    const unsigned char *blk = wq + ((size_t)n * (Kc / 32) + (size_t)b) * 34;
                    uint16_t h;
                    memcpy(&h, blk, 2);
                    double dw = vlmn_f16_to_f32(h);
                    const float *x = a + m * Kc + 32 * b;
                    double amax = 0;
                    for (int i = 0; i < 32; i++) amax = fmax(amax, fabs(x[i]));
                    float inv = amax > 0 ? 127.0f / (float)amax : 0.0f;
                    long isum = 0;
                    for (int i = 0; i < 32; i++) isum += (long)(signed char)blk[2 + i] * (long)nearbyintf(x[i] * inv);
                    ref += (double)isum * dw * (amax / 127.0);
                }
                CHECK_NEAR(c[m * N + n], ref, 1e-5 * (1 + fabs(ref)));
            }
    }
    vlmn_pool_free(pool);
    vlmn_matrix_release(&W);
}

TEST_MAIN()
