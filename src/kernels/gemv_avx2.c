/* Decode-shaped GEMM with AVX2 FMA: C[M x N] (+)= A[M x K] W^T for M = 1..8 token rows
 * (batched decoding), BF16 / F16 / F32 / Q8_0 weights read in place. Each weight row is
 * streamed from memory once per call and used for all M rows: a register tile of nr weight
 * rows x M tokens (nr = 4, 4, 3, 2, 1, 1, 1, 1 for M = 1..8) takes 8 k values of each row
 * per step, widened to f32 in registers (Q8_0: int8 -> f32 times the block's f16 scale,
 * which is exact: 8 x 11 significant bits), against the M activation rows. K is cut in
 * chunks of about 16 KiB of activations (4096 values at M = 1, 512 at M = 8) so that A
 * stays in L1 while the block's rows pass; the tile's 8-lane partial sums are parked per
 * block between chunks. Blocks of 12 weight rows are handed out to threads (gemm_sched)
 * and each is computed whole in a fixed order, so results do not depend on the thread
 * count. Activations stay f32 (no rounding): the result equals gemm_ref's up to the order
 * of the f32 sums. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"

#include <immintrin.h>
#include <string.h>

#define GEMV_RB 12               /* weight rows per scheduled block (a multiple of every nr) */
#define GEMV_ABYTES (16 * 1024)  /* activation bytes per K chunk */
#define Q8_BYTES 34              /* Q8_0 block: f16 scale + 32 int8 */

typedef struct gemv_job {
    const gemm_args *g;
    gemm_sched sched;
    int64_t kc; /* values per K chunk, a multiple of 32 */
} gemv_job;

static int tile_rows(int64_t M)
{
    static const int nr[GEMV_MAX_M + 1] = {0, 4, 4, 3, 2, 1, 1, 1, 1};
    return nr[M];
}

/* 8 weights of a 16/32-bit type as f32 */
static inline __attribute__((always_inline)) __m256 load8(const int type, const uint8_t *p)
{
    if (type == VLMN_TYPE_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    if (type == VLMN_TYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return _mm256_loadu_ps((const float *)p);
}

/* nr rows (stride rb bytes, w at the chunk's first value) x mm tokens, kv values (a
 * multiple of 8): part[j * mm + i] += the 8-lane products of row j and token i. */
static inline __attribute__((always_inline)) void
tile_flat(const int type, const int nr, const int mm, const uint8_t *w, uint64_t rb, const float *a,
          int64_t lda, int64_t kv, __m256 *part)
{
    const int es = type == VLMN_TYPE_F32 ? 4 : 2;
    __m256 acc[4][GEMV_MAX_M];
    #pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) acc[j][i] = part[j * mm + i];
    for (int64_t k = 0; k < kv; k += 8) {
        __m256 wv[4];
        #pragma GCC unroll 8
        for (int j = 0; j < nr; j++) wv[j] = load8(type, w + (uint64_t)j * rb + (uint64_t)k * es);
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) {
            const __m256 x = _mm256_loadu_ps(a + i * lda + k);
            #pragma GCC unroll 8
            for (int j = 0; j < nr; j++) acc[j][i] = _mm256_fmadd_ps(wv[j], x, acc[j][i]);
        }
    }
    #pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) part[j * mm + i] = acc[j][i];
}

/* The same for Q8_0: w at the chunk's first block, nb blocks of 32. */
static inline __attribute__((always_inline)) void
tile_q8(const int nr, const int mm, const uint8_t *w, uint64_t rb, const float *a, int64_t lda, int64_t nb,
        __m256 *part)
{
    __m256 acc[4][GEMV_MAX_M];
    #pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) acc[j][i] = part[j * mm + i];
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (uint64_t)b * Q8_BYTES;
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
                const __m256 x = _mm256_loadu_ps(a + i * lda + 32 * b + 8 * v);
                #pragma GCC unroll 8
                for (int j = 0; j < nr; j++) acc[j][i] = _mm256_fmadd_ps(wv[j], x, acc[j][i]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 8
        for (int i = 0; i < mm; i++) part[j * mm + i] = acc[j][i];
}

/* One K chunk of nrows (<= GEMV_RB) rows for all M tokens: tiles of nr rows, then single
 * rows for the rest. The switches give every (type, nr, mm) its own unrolled loop. */
#define FLAT_MM(T, NR)                                                                   \
    switch (mm) {                                                                        \
    case 1: tile_flat(T, NR, 1, w, rb, a, lda, kv, part); break;                         \
    case 2: tile_flat(T, NR, 2, w, rb, a, lda, kv, part); break;                         \
    case 3: tile_flat(T, NR, 3, w, rb, a, lda, kv, part); break;                         \
    case 4: tile_flat(T, NR, 4, w, rb, a, lda, kv, part); break;                         \
    case 5: tile_flat(T, NR, 5, w, rb, a, lda, kv, part); break;                         \
    case 6: tile_flat(T, NR, 6, w, rb, a, lda, kv, part); break;                         \
    case 7: tile_flat(T, NR, 7, w, rb, a, lda, kv, part); break;                         \
    default: tile_flat(T, NR, 8, w, rb, a, lda, kv, part); break;                        \
    }

static void chunk_flat_t(const int type, int nr, int mm, const uint8_t *w, uint64_t rb, const float *a,
                         int64_t lda, int64_t kv, __m256 *part)
{
    switch (nr) {
    case 1: FLAT_MM(type, 1) break;
    case 2: FLAT_MM(type, 2) break;
    case 3: FLAT_MM(type, 3) break;
    default: FLAT_MM(type, 4) break;
    }
}

static void chunk_flat(int type, int nr, int mm, const uint8_t *w, uint64_t rb, const float *a, int64_t lda,
                       int64_t kv, __m256 *part)
{
    if (type == VLMN_TYPE_BF16) chunk_flat_t(VLMN_TYPE_BF16, nr, mm, w, rb, a, lda, kv, part);
    else if (type == VLMN_TYPE_F16) chunk_flat_t(VLMN_TYPE_F16, nr, mm, w, rb, a, lda, kv, part);
    else chunk_flat_t(VLMN_TYPE_F32, nr, mm, w, rb, a, lda, kv, part);
}

#define Q8_MM(NR)                                                                        \
    switch (mm) {                                                                        \
    case 1: tile_q8(NR, 1, w, rb, a, lda, nb, part); break;                              \
    case 2: tile_q8(NR, 2, w, rb, a, lda, nb, part); break;                              \
    case 3: tile_q8(NR, 3, w, rb, a, lda, nb, part); break;                              \
    case 4: tile_q8(NR, 4, w, rb, a, lda, nb, part); break;                              \
    case 5: tile_q8(NR, 5, w, rb, a, lda, nb, part); break;                              \
    case 6: tile_q8(NR, 6, w, rb, a, lda, nb, part); break;                              \
    case 7: tile_q8(NR, 7, w, rb, a, lda, nb, part); break;                              \
    default: tile_q8(NR, 8, w, rb, a, lda, nb, part); break;                             \
    }

static void chunk_q8(int nr, int mm, const uint8_t *w, uint64_t rb, const float *a, int64_t lda, int64_t nb,
                     __m256 *part)
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
    const int mm = (int)M, nr = tile_rows(M), type = (int)W->type;
    const bool q8 = type == VLMN_TYPE_Q8_0;
    const int es = type == VLMN_TYPE_F32 ? 4 : 2;
    const int64_t K8 = K & ~(int64_t)7; /* flat types: the rest is summed in scalar */
    const uint64_t rb = W->row_bytes;
    __m256 part[GEMV_RB * GEMV_MAX_M];
    int64_t c0, c1;
    while (gemm_sched_next(&j->sched, &c0, &c1))
        for (int64_t blk = c0; blk < c1; blk++) {
            const int64_t n0 = blk * GEMV_RB, rows = N - n0 < GEMV_RB ? N - n0 : GEMV_RB;
            const uint8_t *wb = (const uint8_t *)W->data + (uint64_t)n0 * rb;
            for (int64_t i = 0; i < rows * mm; i++) part[i] = _mm256_setzero_ps();
            for (int64_t k0 = 0; k0 < K8; k0 += j->kc) {
                const int64_t kv = K8 - k0 < j->kc ? K8 - k0 : j->kc;
                const float *a = g->A + k0;
                for (int64_t r = 0, t; r < rows; r += t) {
                    t = r + nr <= rows ? nr : 1;
                    const uint8_t *w = wb + (uint64_t)r * rb;
                    if (q8) chunk_q8((int)t, mm, w + (uint64_t)(k0 / 32) * Q8_BYTES, rb, a, g->lda, kv / 32, part + r * mm);
                    else chunk_flat(type, (int)t, mm, w + (uint64_t)k0 * es, rb, a, g->lda, kv, part + r * mm);
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
    gemv_job j;
    j.g = g;
    j.kc = (GEMV_ABYTES / (4 * g->M)) & ~(int64_t)31;
    gemm_sched_init(&j.sched, (g->W->rows + GEMV_RB - 1) / GEMV_RB, vlmn_pool_size(p));
    vlmn_pool_run(p, compute, &j);
    return true;
}
