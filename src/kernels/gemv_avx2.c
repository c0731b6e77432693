/* Decode-shaped GEMM with AVX2 FMA: C[M x N] (+)= A[M x K] W^T for M = 1..8 token rows
 * (batched decoding), BF16 / F16 / F32 / Q8_0 weights read in place. Each weight row is
 * streamed from memory once per call, start to end, and used for all M rows: a register
 * tile of nr weight rows x M tokens (nr = 4, 4, 3, 3 for M = 1..4, 2 for Q8_0 at M = 4;
 * M = 5..8 run as two
 * token groups for the 16/32-bit types, one 1 x M tile for Q8_0) takes 8 k
 * values of each row per step, widened to f32 in registers (Q8_0: int8 -> f32 times the
 * block's f16 scale, which is exact: 8 x 11 significant bits), against the M activation
 * rows (packed once per call, interleaved by 8 k values, into the pool's workspace).
 * K is not cut in chunks: visiting rows in short bursts to keep A in L1 defeated the
 * hardware prefetcher (M = 1 became 8x slower), so A (M x K f32, <= 352 KiB at LLaVA
 * widths) is read from L2. Each tile prefetches the rows of the next one (one line per row
 * per line consumed), so a new row's first lines do not wait for the hardware prefetcher
 * to pick up its stream (M = 1: BF16 2.8 -> 2.25 ms, Q8_0 2.3 -> 1.6 ms at 4096 x 4096,
 * one thread). Blocks of 12 weight rows are handed out to threads
 * (gemm_sched) and each is computed whole in a fixed order, so results do not depend on
 * the thread count. Activations stay f32 (no rounding): the result equals gemm_ref's up
 * to the order of the f32 sums. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"

#include <immintrin.h>
#include <string.h>

#define GEMV_RB 12               /* weight rows per scheduled block (a multiple of every nr) */
#define Q8_BYTES 34              /* Q8_0 block: f16 scale + 32 int8 */

typedef struct gemv_job {
    const gemm_args *g;
    gemm_sched sched;
    const float *ap;   /* A packed: [K8 / 8][M][8] */
} gemv_job;

/* Weight rows per tile for mm tokens: nr x mm accumulators + nr weight vectors (+ nr
 * scales for Q8_0) + 1 activation in 16 ymm registers. 3 x 4 (16 registers) beat 2 x 4
 * for the 16/32-bit types (BF16 4096 x 4096, M = 4: ~4.1 -> ~3.4 ms, M = 8 as 2 x 4:
 * ~7.2 -> ~6.0 ms, noisy); Q8_0 showed no difference and keeps 2 x 4. */
static int tile_rows(int64_t M, bool q8)
{
    static const int nr[GEMV_MAX_M + 1] = {0, 4, 4, 3, 2, 1, 1, 1, 1};
    return !q8 && M == 4 ? 3 : nr[M];
}

/* 8 weights of a 16/32-bit type as f32 */
static inline __attribute__((always_inline)) __m256 load8(const int type, const uint8_t *p)
{
    if (type == VLMN_TYPE_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    if (type == VLMN_TYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return _mm256_loadu_ps((const float *)p);
}

/* nr rows (stride rb bytes) x mm tokens, the first kv values (a multiple of 8): part[j * mm + i] += the 8-lane products of row j and token i. */
static inline __attribute__((always_inline)) void
tile_flat(const int type, const int nr, const int mm, const uint8_t *w, uint64_t rb, const float *ap, int ms,
          int64_t kv, __m256 *part)
{
    const int es = type == VLMN_TYPE_F32 ? 4 : 2;
    __m256 acc[4][GEMV_MAX_M];
    #pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) acc[j][i] = part[j * ms + i];
    for (int64_t k = 0; k < kv; k += 8) {
        __m256 wv[4];
        if ((k & 31) == 0) /* the next tile's rows, one line per row: ready when it starts */
            #pragma GCC unroll 8
            for (int j = 0; j < nr; j++) _mm_prefetch((const char *)(w + (uint64_t)(j + nr) * rb + (uint64_t)k * es), _MM_HINT_T0);
        #pragma GCC unroll 8
        for (int j = 0; j < nr; j++) wv[j] = load8(type, w + (uint64_t)j * rb + (uint64_t)k * es);
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) {
            const __m256 x = _mm256_load_ps(ap + (k / 8 * ms + i) * 8);
            #pragma GCC unroll 8
            for (int j = 0; j < nr; j++) acc[j][i] = _mm256_fmadd_ps(wv[j], x, acc[j][i]);
        }
    }
    #pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) part[j * ms + i] = acc[j][i];
}

/* The same for Q8_0: the first nb blocks of 32. */
static inline __attribute__((always_inline)) void
tile_q8(const int nr, const int mm, const uint8_t *w, uint64_t rb, const float *ap, int ms, int64_t nb, __m256 *part)
{
    __m256 acc[4][GEMV_MAX_M];
    #pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) acc[j][i] = part[j * ms + i];
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (uint64_t)b * Q8_BYTES;
        #pragma GCC unroll 8
        for (int j = 0; j < nr; j++) /* the next tile's rows (see tile_flat) */
            _mm_prefetch((const char *)(blk + (uint64_t)(j + nr) * rb), _MM_HINT_T0);
        __m256 d[4];
        #pragma GCC unroll 8
        for (int j = 0; j < nr; j++) {
            uint16_t h;
            memcpy(&h, blk + (uint64_t)j * rb, 2);
            d[j] = _mm256_set1_ps(_cvtsh_ss(h));
        }
        #pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            __m256 wv[4];
            #pragma GCC unroll 8
            for (int j = 0; j < nr; j++) {
                const __m128i q = _mm_loadl_epi64((const __m128i *)(blk + (uint64_t)j * rb + 2 + 8 * v));
                wv[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d[j]);
            }
            #pragma GCC unroll 8
            for (int i = 0; i < mm; i++) {
                const __m256 x = _mm256_load_ps(ap + ((4 * b + v) * ms + i) * 8);
                #pragma GCC unroll 8
                for (int j = 0; j < nr; j++) acc[j][i] = _mm256_fmadd_ps(wv[j], x, acc[j][i]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) part[j * ms + i] = acc[j][i];
}

/* One tile of nr rows for all mm tokens; the switches give every (type, nr, mm) its own
 * unrolled loop. */
#define FLAT_MM(T, NR)                                                                   \
    switch (mm) {                                                                        \
    case 1: tile_flat(T, NR, 1, w, rb, ap, ms, kv, part); break;                         \
    case 2: tile_flat(T, NR, 2, w, rb, ap, ms, kv, part); break;                         \
    case 3: tile_flat(T, NR, 3, w, rb, ap, ms, kv, part); break;                         \
    case 4: tile_flat(T, NR, 4, w, rb, ap, ms, kv, part); break;                         \
    case 5: tile_flat(T, NR, 5, w, rb, ap, ms, kv, part); break;                         \
    case 6: tile_flat(T, NR, 6, w, rb, ap, ms, kv, part); break;                         \
    case 7: tile_flat(T, NR, 7, w, rb, ap, ms, kv, part); break;                         \
    default: tile_flat(T, NR, 8, w, rb, ap, ms, kv, part); break;                        \
    }

static void chunk_flat_t(const int type, int nr, int mm, const uint8_t *w, uint64_t rb, const float *ap, int ms,
                         int64_t kv, __m256 *part)
{
    switch (nr) {
    case 1: FLAT_MM(type, 1) break;
    case 2: FLAT_MM(type, 2) break;
    case 3: FLAT_MM(type, 3) break;
    default: FLAT_MM(type, 4) break;
    }
}

static void chunk_flat(int type, int nr, int mm, const uint8_t *w, uint64_t rb, const float *ap, int ms, int64_t kv,
                       __m256 *part)
{
    if (type == VLMN_TYPE_BF16) chunk_flat_t(VLMN_TYPE_BF16, nr, mm, w, rb, ap, ms, kv, part);
    else if (type == VLMN_TYPE_F16) chunk_flat_t(VLMN_TYPE_F16, nr, mm, w, rb, ap, ms, kv, part);
    else chunk_flat_t(VLMN_TYPE_F32, nr, mm, w, rb, ap, ms, kv, part);
}

#define Q8_MM(NR)                                                                        \
    switch (mm) {                                                                        \
    case 1: tile_q8(NR, 1, w, rb, ap, ms, nb, part); break;                              \
    case 2: tile_q8(NR, 2, w, rb, ap, ms, nb, part); break;                              \
    case 3: tile_q8(NR, 3, w, rb, ap, ms, nb, part); break;                              \
    case 4: tile_q8(NR, 4, w, rb, ap, ms, nb, part); break;                              \
    case 5: tile_q8(NR, 5, w, rb, ap, ms, nb, part); break;                              \
    case 6: tile_q8(NR, 6, w, rb, ap, ms, nb, part); break;                              \
    case 7: tile_q8(NR, 7, w, rb, ap, ms, nb, part); break;                              \
    default: tile_q8(NR, 8, w, rb, ap, ms, nb, part); break;                             \
    }

static void chunk_q8(int nr, int mm, const uint8_t *w, uint64_t rb, const float *ap, int ms, int64_t nb, __m256 *part)
{
    switch (nr) {
    case 1: Q8_MM(1) break;
    case 2: Q8_MM(2) break;
    case 3: Q8_MM(3) break;
    default: Q8_MM(4) break;
    }
}

/* lanes of v summed in a fixed order */
static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void compute(void *ctx, int ith, int nth)
{
    (void)ith;
    (void)nth;
    gemv_job *j = ctx;
    const gemm_args *g = j->g;
    const vlmn_matrix *W = g->W;
    const int64_t N = W->rows, K = W->cols, M = g->M;
    const int mm = (int)M, type = (int)W->type;
    const bool q8 = type == VLMN_TYPE_Q8_0;
    const int64_t K8 = K & ~(int64_t)7; /* flat types: the rest is summed in scalar */
    const uint64_t rb = W->row_bytes;
    __m256 part[GEMV_RB * GEMV_MAX_M];
    int64_t c0, c1;
    while (gemm_sched_next(&j->sched, &c0, &c1))
        for (int64_t blk = c0; blk < c1; blk++) {
            const int64_t n0 = blk * GEMV_RB, rows = N - n0 < GEMV_RB ? N - n0 : GEMV_RB;
            const uint8_t *wb = (const uint8_t *)W->data + (uint64_t)n0 * rb;
            for (int64_t i = 0; i < rows * mm; i++) part[i] = _mm256_setzero_ps();
            /* 16/32-bit types: tokens in groups of at most 4 (M > 4: 4 + the rest), each
             * over all rows of the block (the second pass finds them in L1/L2): 2 x 4
             * tiles load fewer activations per FMA than 1 x 8. Q8_0 takes all M at once
             * (widening its weights twice costs more). */
            const int gmax = q8 ? GEMV_MAX_M : 4;
            for (int i0 = 0; i0 < mm && K8 > 0; i0 += gmax) {
                const int gm = mm - i0 < gmax ? mm - i0 : gmax, gr = tile_rows(gm, q8);
                for (int64_t r = 0, t; r < rows; r += t) {
                    t = r + gr <= rows ? gr : 1;
                    const uint8_t *w = wb + (uint64_t)r * rb;
                    if (q8) chunk_q8((int)t, gm, w, rb, j->ap + i0 * 8, mm, K8 / 32, part + r * mm + i0);
                    else chunk_flat(type, (int)t, gm, w, rb, j->ap + i0 * 8, mm, K8, part + r * mm + i0);
                }
            }
            for (int64_t r = 0; r < rows; r++) {
                const uint8_t *wr = wb + (uint64_t)r * rb;
                for (int i = 0; i < mm; i++) {
                    float s = hsum(part[r * mm + i]);
                    const float *a = g->A + i * g->lda;
                    for (int64_t k = K8; k < K; k++) { /* flat types only: Q8_0 has K % 32 == 0 */
                        float wk;
                        if (type == VLMN_TYPE_BF16) { uint16_t h; memcpy(&h, wr + 2 * k, 2); wk = vlmn_bf16_to_f32(h); }
                        else if (type == VLMN_TYPE_F16) { uint16_t h; memcpy(&h, wr + 2 * k, 2); wk = vlmn_f16_to_f32(h); }
                        else memcpy(&wk, wr + 4 * k, 4);
                        s += a[k] * wk;
                    }
                    float *c = g->C + i * g->ldc + n0 + r;
                    *c = g->accumulate ? *c + s : s;
                }
            }
        }
}

bool gemv_avx2(vlmn_pool *p, const gemm_args *g)
{
    const uint32_t t = g->W->type;
    if (g->M < 1 || g->M > GEMV_MAX_M) return false;
    if (t != VLMN_TYPE_BF16 && t != VLMN_TYPE_F16 && t != VLMN_TYPE_F32 && t != VLMN_TYPE_Q8_0) return false;
    const int64_t M = g->M, K8 = g->W->cols & ~(int64_t)7;
    float *ap = K8 ? vlmn_pool_scratch(p, sizeof(float) * (size_t)(K8 * M)) : NULL;
    if (K8 && !ap) return false;
    /* A interleaved per 8 k values: the M vectors a step loads are one 32*M-byte run
     * (rows of A lie a multiple of 4 KiB apart at LLaVA widths, which would put all M
     * loads in one L1 set) */
    for (int64_t k = 0; k < K8; k += 8)
        for (int64_t i = 0; i < M; i++) memcpy(ap + (k * M + i * 8), g->A + i * g->lda + k, 8 * sizeof(float));
    gemv_job j;
    j.g = g;
    j.ap = ap;
    gemm_sched_init(&j.sched, (g->W->rows + GEMV_RB - 1) / GEMV_RB, vlmn_pool_size(p));
    vlmn_pool_run(p, compute, &j);
    return true;
}
