/* Decode-shaped Q8_0 GEMM by integer dot products (AVX512_VNNI), FASTEST precision:
 * C[M x N] (+)= A[M x K] W^T for M = 1..8 token rows, the weights read in place from the
 * GGUF layout (34-byte blocks: f16 scale + 32 int8), each weight row streamed once per call
 * for all M tokens.
 *
 * Activations are rounded as the tile kernel rounds them (q8_quant_avx512.h: int8 per
 * token and 32-block, ggml's q8_0), so decode and prefill compute the same products.
 * Tokens lie in the lanes: the M tokens are padded to Mp = 2, 4 or 8 and each of the 16
 * int32 lanes of a vpdpbusd belongs to one token and one of its P = 16 / Mp parts of the
 * k range; one step takes 4P consecutive weights of one row, broadcast to all Mp tokens
 * (vbroadcasti64x4 / vbroadcasti32x4 / vpbroadcastq straight from the block), against a
 * register holding the 4P matching activation bytes of every token. A 32-block is
 * Mp / 2 steps. vpdpbusd multiplies unsigned by signed bytes: the weights become unsigned
 * by xor 0x80 (w + 128), and each lane's int32 sum starts at -128 * the sum of the
 * activation bytes it multiplies (computed once per call), which undoes the +128 exactly. Per
 * 32-block and row: acc += float(isum) * (d_w * d_act) (the act scales are a 16-lane
 * vector per block). Tiles of NR rows share the activation registers of a block.
 * The per-call activation table (Mp / 2 + 2 vectors of 64 bytes per block: 132 KiB at
 * K = 11008, Mp = 8) is read from L2.
 *
 * Blocks of GQ_RB rows go to threads (gemm_sched) and each is computed whole in a fixed
 * order (per token: f32 sums over blocks per lane, then the P lanes in order), so results
 * do not depend on the thread count. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"
#include "kernels/q8_quant_avx512.h"

#include <immintrin.h>
#include <string.h>

#define Q8_BYTES 34
#define GQ_NR 4  /* weight rows per tile */
#define GQ_RB 16 /* weight rows per scheduled block (a multiple of GQ_NR) */

typedef struct gq_job {
    const gemm_args *g;
    gemm_sched sched;
    const __m512i *at; /* per 32-block: Mp / 2 byte vectors, corrections, scales (as __m512) */
    int mp;
} gq_job;

/* nr rows (stride rb bytes) x MP padded tokens over nb blocks; out[j * 16 + lane] = the
 * f32 sums of row j per lane (token lane / P, part lane % P). */
static inline __attribute__((always_inline)) void tile(const int MP, const int nr, const uint8_t *w, uint64_t rb,
                                                       const __m512i *at, int64_t nb, float *out)
{
    const int S = MP / 2; /* steps per block */
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 acc[GQ_NR];
    #pragma GCC unroll 4
    for (int j = 0; j < nr; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (uint64_t)b * Q8_BYTES;
        const __m512i *ab = at + b * (S + 2);
        #pragma GCC unroll 4
        for (int j = 0; j < nr; j++) /* the next tile's rows, one line per row per block */
            _mm_prefetch((const char *)(blk + (uint64_t)(j + nr) * rb), _MM_HINT_T0);
        __m512i x[4];
        #pragma GCC unroll 4
        for (int s = 0; s < S; s++) x[s] = _mm512_load_si512(ab + s);
        const __m512i corr = _mm512_load_si512(ab + S);
        const __m512 da = _mm512_castsi512_ps(_mm512_load_si512(ab + S + 1));
        #pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            const uint8_t *q = blk + (uint64_t)j * rb + 2;
            __m512i isum = corr;
            #pragma GCC unroll 4
            for (int s = 0; s < S; s++) {
                __m512i wv;
                if (MP == 2) wv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)q));
                else if (MP == 4) wv = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(q + 16 * s)));
                else {
                    long long v;
                    memcpy(&v, q + 8 * s, 8);
                    wv = _mm512_set1_epi64(v);
                }
                isum = _mm512_dpbusd_epi32(isum, _mm512_xor_si512(wv, bias), x[s]);
            }
            uint16_t h;
            memcpy(&h, blk + (uint64_t)j * rb, 2);
            const __m512 sc = _mm512_mul_ps(da, _mm512_set1_ps(_cvtsh_ss(h)));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sc, acc[j]);
        }
    }
    #pragma GCC unroll 4
    for (int j = 0; j < nr; j++) _mm512_storeu_ps(out + 16 * j, acc[j]);
}

#define TILE_NR(MP)                                               \
    switch (nr) {                                                 \
    case 1: tile(MP, 1, w, rb, at, nb, out); break;               \
    case 2: tile(MP, 2, w, rb, at, nb, out); break;               \
    case 3: tile(MP, 3, w, rb, at, nb, out); break;               \
    default: tile(MP, GQ_NR, w, rb, at, nb, out); break;          \
    }

static void run_tile(int mp, int nr, const uint8_t *w, uint64_t rb, const __m512i *at, int64_t nb, float *out)
{
    if (mp == 2) TILE_NR(2)
    else if (mp == 4) TILE_NR(4)
    else TILE_NR(8)
}

static void compute(void *ctx, int ith, int nth)
{
    (void)ith;
    (void)nth;
    gq_job *j = ctx;
    const gemm_args *g = j->g;
    const vlmn_matrix *W = g->W;
    const int64_t N = W->rows, nb = W->cols / 32, M = g->M;
    const uint64_t rb = W->row_bytes;
    const int P = 16 / j->mp;
    float out[GQ_NR * 16];
    int64_t c0, c1;
    while (gemm_sched_next(&j->sched, &c0, &c1))
        for (int64_t blk = c0; blk < c1; blk++) {
            const int64_t n0 = blk * GQ_RB, rows = N - n0 < GQ_RB ? N - n0 : GQ_RB;
            for (int64_t r = 0; r < rows; r += GQ_NR) {
                const int nr = rows - r < GQ_NR ? (int)(rows - r) : GQ_NR;
                run_tile(j->mp, nr, (const uint8_t *)W->data + (uint64_t)(n0 + r) * rb, rb, j->at, nb, out);
                for (int jr = 0; jr < nr; jr++)
                    for (int64_t t = 0; t < M; t++) {
                        float s = out[16 * jr + P * t];
                        for (int p = 1; p < P; p++) s += out[16 * jr + P * t + p];
                        float *c = g->C + t * g->ldc + n0 + r + jr;
                        *c = g->accumulate ? *c + s : s;
                    }
            }
        }
}

bool gemv_q8_0_avx512(vlmn_pool *p, const gemm_args *g)
{
    const vlmn_matrix *W = g->W;
    if (W->type != VLMN_TYPE_Q8_0 || g->prec != VLMN_PREC_FASTEST || g->M < 1 || g->M > GEMV_MAX_M ||
        W->cols % 32)
        return false;
    const int64_t M = g->M, nb = W->cols / 32;
    const int mp = M <= 2 ? 2 : M <= 4 ? 4 : 8, S = mp / 2, P = 16 / mp;
    __m512i *at = vlmn_pool_scratch(p, sizeof(__m512i) * (size_t)(nb * (S + 2)));
    if (!at) return false;
    /* the activation table: per block, step s holds token t's bytes [4P s, 4P s + 4P) at
     * byte 4P t; then per lane -128 * the sum of the bytes it multiplies (each lane's sum
     * is then exactly its part of the dot: a correction summed in one lane would leave
     * the others ~128x larger than the result, and their f32 products would not cancel
     * exactly); then d_act of token t in lanes [P t, P t + P). Padding tokens are zero in
     * all three. */
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *xb = (uint8_t *)(at + b * (S + 2));
        int32_t corr[16] = {0};
        float da[16] = {0};
        memset(xb, 0, (size_t)S * 64);
        for (int64_t t = 0; t < M; t++) {
            float d;
            int8_t q[32];
            _mm256_storeu_si256((__m256i *)q, q8_quant32(g->A + t * g->lda + 32 * b, &d));
            for (int s = 0; s < S; s++) {
                memcpy(xb + 64 * s + 4 * P * t, q + 4 * P * s, (size_t)(4 * P));
                for (int i = 0; i < 4 * P; i++) corr[P * t + i / 4] -= 128 * q[4 * P * s + i];
            }
            for (int i = 0; i < P; i++) da[P * t + i] = d;
        }
        memcpy(xb + 64 * S, corr, 64);
        memcpy(xb + 64 * (S + 1), da, 64);
    }
    gq_job j = {.g = g, .at = at, .mp = mp};
    gemm_sched_init(&j.sched, (W->rows + GQ_RB - 1) / GQ_RB, vlmn_pool_size(p));
    vlmn_pool_run(p, compute, &j);
    return true;
}
