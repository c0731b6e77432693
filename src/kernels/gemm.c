/* GEMM front end: weight-matrix setup, the plain C reference (gemm_ref) and the
 * run-time choice of a SIMD variant. C[M x N] (+)= A[M x K] * W^T, W as stored in
 * GGUF (N rows of K values). Every variant partitions the N outputs over threads and
 * never splits a dot product, so results do not depend on the thread count. */
#include "kernels/kernels_int.h"
#include "core/alloc.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

vlmn_status vlmn_matrix_init(vlmn_matrix *m, uint32_t type, int64_t rows, int64_t cols,
                             const void *data)
{
    memset(m, 0, sizeof *m);
    if (!vlmn_type_supported(type))
        return vlmn_error(VLMN_E_UNSUPPORTED, "matrix: type %u not supported", type);
    if (rows <= 0 || cols <= 0 || !data)
        return vlmn_error(VLMN_E_ARG, "matrix: bad shape %lld x %lld",
                          (long long)rows, (long long)cols);
    uint64_t rb, total;
    vlmn_status st = vlmn_type_row_bytes(type, (uint64_t)cols, &rb);
    if (st) return st;
    if (!vlmn_mul_ok(rb, (uint64_t)rows, &total))
        return vlmn_error(VLMN_E_RANGE, "matrix: %lld x %lld too large",
                          (long long)rows, (long long)cols);
    m->type = type;
    m->rows = rows;
    m->cols = cols;
    m->data = data;
    m->row_bytes = rb;
    /* No repacked copy: every kernel reads W in its GGUF layout (see docs/kernels.md),
     * so the weights stay in the mmap and cost no extra memory. */
    m->packed = NULL;
    m->packed_bytes = 0;
    m->packed_kind = 0;
    return VLMN_OK;
}

void vlmn_matrix_release(vlmn_matrix *m)
{
    if (!m) return;
    vlmn_free_aligned(m->packed);
    m->packed = NULL;
    m->packed_bytes = 0;
}

void gemm_dequant_rows(const vlmn_matrix *W, int64_t n0, int64_t nr, float *dst, int64_t ldd)
{
    const uint8_t *base = (const uint8_t *)W->data;
    for (int64_t i = 0; i < nr; i++)
        vlmn_dequant(W->type, base + (uint64_t)(n0 + i) * W->row_bytes, dst + i * ldd, W->cols);
}

/* ---- reference ---- */

#define REF_KCHUNK 256 /* a multiple of every block size (32, 256) */
#define REF_MBLOCK 64

static void gemm_ref_job(void *ctx, int ith, int nth)
{
    const gemm_args *g = ctx;
    const vlmn_matrix *W = g->W;
    const int64_t N = W->rows, K = W->cols, M = g->M;
    const uint32_t bv = vlmn_type_block_values(W->type), bb = vlmn_type_block_bytes(W->type);
    const int64_t n0 = N * ith / nth, n1 = N * (ith + 1) / nth;
    float wbuf[REF_KCHUNK];
    float acc[REF_MBLOCK];
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *row = (const uint8_t *)W->data + (uint64_t)n * W->row_bytes;
        for (int64_t mb = 0; mb < M; mb += REF_MBLOCK) {
            int64_t mc = M - mb < REF_MBLOCK ? M - mb : REF_MBLOCK;
            for (int64_t i = 0; i < mc; i++) acc[i] = 0.0f;
            for (int64_t k0 = 0; k0 < K; k0 += REF_KCHUNK) {
                int64_t kc = K - k0 < REF_KCHUNK ? K - k0 : REF_KCHUNK;
                vlmn_dequant(W->type, row + (uint64_t)(k0 / bv) * bb, wbuf, kc);
                for (int64_t i = 0; i < mc; i++) {
                    const float *a = g->A + (mb + i) * g->lda + k0;
                    float s = acc[i];
                    for (int64_t k = 0; k < kc; k++) s += a[k] * wbuf[k];
                    acc[i] = s;
                }
            }
            for (int64_t i = 0; i < mc; i++) {
                float *c = g->C + (mb + i) * g->ldc + n;
                *c = g->accumulate ? *c + acc[i] : acc[i];
            }
        }
    }
}

void gemm_ref(vlmn_pool *p, const gemm_args *g)
{
    vlmn_pool_run(p, gemm_ref_job, (void *)g);
}

/* ---- precision emulation (see kernels.h) ---- */

bool vlmn_precision_emulated(void)
{
    static atomic_int on = -1;
    int v = atomic_load(&on);
    if (v < 0) {
        const char *e = getenv("VLMN_EMULATE_PRECISION");
        v = e && !strcmp(e, "1") && vlmn_isa_active() != VLMN_ISA_AVX512;
        atomic_store(&on, v);
    }
    return v;
}

/* f32 -> bf16 -> f32, round to nearest even (as vcvtne2ps2bf16; NaN kept a NaN). */
static float round_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u;
    else u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* Quantise x[0..n) with one scale: d = max|x| / qmax, q = rint(x * (qmax / max|x|)) in
 * f32 (round to nearest even, as vcvtps2dq), value q * d. */
static void round_scaled(const float *x, int64_t n, float qmax, float *out)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / qmax, inv = amax > 0 ? qmax / amax : 0.0f;
    for (int64_t i = 0; i < n; i++) out[i] = nearbyintf(x[i] * inv) * d;
}

bool vlmn_precision_round_row(vlmn_precision prec, uint32_t type, const float *x, int64_t K, float *out)
{
    if (prec == VLMN_PREC_EXACT) return false;
    if (type == VLMN_TYPE_BF16) {
        for (int64_t i = 0; i < K; i++) out[i] = round_bf16(x[i]);
        return true;
    }
    if (type != VLMN_TYPE_Q8_0 || K % 32) return false;
    const int64_t KB = K / 32;
    if (prec == VLMN_PREC_FASTEST) {
        for (int64_t b = 0; b < KB; b++) round_scaled(x + 32 * b, 32, 127.0f, out + 32 * b);
        return true;
    }
    for (int64_t w0 = 0; w0 < KB; w0 += VLMN_FAST_WINDOW) { /* the AVX-512 FAST kernels' windows */
        const int64_t w1 = vlmn_fast_window_end(w0, KB);
        round_scaled(x + 32 * w0, 32 * (w1 - w0), 32767.0f, out + 32 * w0);
    }
    return true;
}

/* Where an AVX-512 machine runs gemv_avx2 instead of its own kernels: decode shapes, from
 * thread-CPU times of `vlmn bench gemm --m M --n 4096 --k 4096 -t 1` on a Zen 4 (docs/kernels.md):
 * the AVX-512 tile kernels cost about the same from M = 1 to 8 (their token panels are 32-48
 * tall), the streaming gemv is 2-4x faster at M = 1 and falls behind at M = 4 for F32 (which
 * the AVX-512 kernel reads in place). F16 and every EXACT product run the f32 AVX-512 kernel
 * on widened weights, slower than gemv for all M <= 8. BF16 and Q8_0 in FAST / FASTEST take
 * their own decode kernels instead (gemv_bf16_avx512, gemv_q8_0_avx512: tokens in the lanes,
 * the tile kernels' rounding; 1.1-3x gemv from M = 1 to 8), so vlmn_gemm tries those first.
 * gemv keeps the activations f32, so where it runs decode is as exact as EXACT. */
bool avx512_runs_gemv(uint32_t type, vlmn_precision prec, int64_t M)
{
    if (M > GEMV_MAX_M) return false;
    if (type == VLMN_TYPE_F32) return M <= 3;
    return prec == VLMN_PREC_EXACT || type == VLMN_TYPE_F16;
}

/* The f32 GEMM on activations rounded as the precision's AVX-512 kernel rounds them;
 * false when there is nothing to emulate (or no memory: then the caller runs plain f32,
 * which only makes the result more exact). */
static bool gemm_emulated(vlmn_pool *p, const gemm_args *g, bool avx2)
{
    if (g->prec == VLMN_PREC_EXACT || (g->W->type != VLMN_TYPE_BF16 && g->W->type != VLMN_TYPE_Q8_0)) return false;
    /* AVX-512 runs these shapes unrounded too */
    if (avx512_runs_gemv(g->W->type, g->prec, g->M)) return false;
    const int64_t K = g->W->cols;
    float *a = vlmn_malloc((size_t)g->M * (size_t)K * sizeof *a);
    if (!a) return false;
    for (int64_t m = 0; m < g->M; m++)
        if (!vlmn_precision_round_row(g->prec, g->W->type, g->A + m * g->lda, K, a + m * K)) {
            vlmn_free(a);
            return false;
        }
    gemm_args e = *g;
    e.A = a;
    e.lda = K;
    if (!avx2 || !gemm_f32_avx2(p, &e)) gemm_ref(p, &e);
    vlmn_free(a);
    return true;
}

bool gemm_by_passes(vlmn_pool *p, const gemm_args *g, int64_t a_bytes_per_row, int64_t mp,
                    bool (*pass)(vlmn_pool *, const gemm_args *))
{
    int64_t mc = VLMN_GEMM_A_PASS_BYTES / (a_bytes_per_row > 0 ? a_bytes_per_row : 1) / mp * mp;
    if (mc < mp) mc = mp;
    for (int64_t m0 = 0; m0 < g->M; m0 += mc) {
        gemm_args s = *g;
        s.A = g->A + m0 * g->lda;
        s.C = g->C + m0 * g->ldc;
        s.M = g->M - m0 < mc ? g->M - m0 : mc;
        if (!pass(p, &s)) {
            VLMN_ASSERT(m0 == 0); /* later passes reuse the first one's workspace */
            return false;
        }
    }
    return true;
}

void vlmn_gemm(vlmn_pool *p, vlmn_precision prec, const vlmn_matrix *W,
               const float *A, int64_t M, int64_t lda, float *C, int64_t ldc, bool accumulate)
{
    if (M <= 0 || W->rows <= 0) return;
    VLMN_ASSERT(lda >= W->cols && ldc >= W->rows && A && C);
    gemm_args g = {W, A, M, lda, C, ldc, accumulate, prec};
    bool done = false;
    switch (vlmn_isa_active()) {
    case VLMN_ISA_AVX512:
        if (W->type == VLMN_TYPE_Q8_0) done = gemv_q8_0_avx512(p, &g); /* decode shapes, FAST/FASTEST */
        else if (W->type == VLMN_TYPE_BF16) done = gemv_bf16_avx512(p, &g);
        if (!done && avx512_runs_gemv(W->type, prec, M)) done = gemv_avx2(p, &g);
        if (!done && prec != VLMN_PREC_EXACT) {
            if (W->type == VLMN_TYPE_BF16) done = gemm_bf16_avx512(p, &g);
            else if (W->type == VLMN_TYPE_Q8_0) done = gemm_q8_0_avx512(p, &g);
            else if (W->type == VLMN_TYPE_Q4_K) done = gemm_q4_k_avx512(p, &g);
            else if (W->type == VLMN_TYPE_F16) done = gemm_f16_avx512(p, &g);
        }
        if (!done) done = gemm_f32_avx512(p, &g);
        break;
    case VLMN_ISA_AVX2:
        if (vlmn_precision_emulated()) done = gemm_emulated(p, &g, true);
        if (!done && M <= GEMV_MAX_M) done = gemv_avx2(p, &g);
        if (!done) done = gemm_f32_avx2(p, &g);
        break;
    case VLMN_ISA_REF:
        if (vlmn_precision_emulated()) done = gemm_emulated(p, &g, false);
        break;
    }
    if (!done) gemm_ref(p, &g);
}
