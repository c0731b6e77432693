/* Decode-shaped Q8_0 GEMM by integer dot products (AVX512_VNNI), FAST and FASTEST
 * precision: C[M x N] (+)= A[M x K] W^T for M = 1..8 token rows, the weights read in place
 * from the GGUF layout (34-byte blocks: f16 scale + 32 int8), each weight row streamed once
 * per call for all M tokens.
 *
 * Activations are rounded as the tile kernel (gemm_int8_avx512.c) rounds them, by the same
 * code (act_quant_avx512.h), so decode and prefill compute the same products. Tokens lie in
 * the lanes (gemv_lanes_avx512.h): one instruction takes consecutive weights of one row,
 * broadcast to all MP padded tokens straight from the block, against a register of the
 * matching activations of every token.
 * FASTEST (tile): int8 activations per 32-block; a block is MP / 2 vpdpbusd per row.
 * vpdpbusd multiplies unsigned by signed bytes: the weights become unsigned by xor 0x80
 * (w + 128), and each lane's int32 sum starts at -128 * the sum of the activation bytes it
 * multiplies (computed once per call), which undoes the +128 exactly. Per 32-block and row:
 * acc += float(isum) * (d_w * d_act) (the act scales are a 16-lane vector per block).
 * FAST (tile16): int16 activations with one scale per token and window of 16 blocks,
 * vpdpwssd on the weights widened in the broadcast; per block acc_w += float(isum) * d_w,
 * per window acc += acc_w * d_act.
 * Tiles of LANES_NR rows share the activation registers of a block. The per-call table
 * (FASTEST: MP / 2 + 2 vectors of 64 bytes per block, 132 KiB at K = 11008, MP = 8; FAST:
 * MP vectors per block, 176 KiB) is read from L2.
 *
 * Blocks of LANES_RB rows go to threads (gemm_sched) and each is computed whole in a fixed
 * order (per token: f32 sums over blocks per lane, then the P lanes in order), so results
 * do not depend on the thread count. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"
#include "kernels/act_quant_avx512.h"
#include "kernels/gemv_lanes_avx512.h"

#define Q8_BYTES 34

typedef struct gq_job {
    const gemm_args *g;
    gemm_sched sched;
    const __m512i *at; /* the activation table (table8 / table16) */
    int mp;
    bool wide; /* FAST: int16 activations */
} gq_job;

/* nr rows (stride rb bytes) x MP padded tokens over nb blocks; out[j * 16 + lane] = the
 * f32 sums of row j per lane (token lane / P, part lane % P). */
static inline __attribute__((always_inline)) void tile(const int MP, const int nr, const uint8_t *w, uint64_t rb,
                                                       const __m512i *at, int64_t nb, float *out)
{
    const int S = MP / 2; /* steps per block */
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 acc[LANES_NR];
    #pragma GCC unroll 4
    for (int j = 0; j < nr; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (uint64_t)b * Q8_BYTES;
        const __m512i *ab = at + b * (S + 2);
        #pragma GCC unroll 4
        for (int j = 0; j < nr; j++) /* the next tile's rows into L2 (10% faster than into L1 at M = 1) */
            _mm_prefetch((const char *)(blk + (uint64_t)(j + nr) * rb), _MM_HINT_T1);
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
                const __m512i wv = lanes_bcast(MP, q + 4 * (16 / MP) * s);
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

/* tile16's token groups for MP padded tokens: 8 run as 2 groups of 4 */
static inline int tile16_groups(int mp) { return mp == 8 ? 2 : 1; }

/* FAST: the same over int16 activations with vpdpwssd (signed x signed, no correction),
 * in G groups of MG tokens (MP = 8 runs as 2 groups of 4: each widened weight register
 * then serves both groups, half the vpmovsxbw of one group of 8 (M = 8: 2.13 -> 1.78 ms
 * per 4096 x 4096 call)). Per block MG steps of 2P weights for each group, at
 * at + (b * G + g) * MG; the window scales follow the blocks (at + nb * G * MG +
 * window * G + g). Per block acc_w += float(isum) * d_w, per window acc += acc_w * d_act,
 * as the tile kernel sums. out[(j * G + g) * 16 + lane]. */
static inline __attribute__((always_inline)) void tile16(const int MP, const int nr, const uint8_t *w, uint64_t rb,
                                                         const __m512i *at, int64_t nb, float *out)
{
    const int G = tile16_groups(MP), MG = MP / G, P = 16 / MG;
    __m512 acc[2][LANES_NR];
    #pragma GCC unroll 4
    for (int j = 0; j < nr; j++) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
    for (int64_t w0 = 0, w1; w0 < nb; w0 = w1) {
        w1 = vlmn_fast_window_end(w0, nb);
        __m512 accw[2][LANES_NR];
        #pragma GCC unroll 4
        for (int j = 0; j < nr; j++) accw[0][j] = accw[1][j] = _mm512_setzero_ps();
        for (int64_t b = w0; b < w1; b++) {
            const uint8_t *blk = w + (uint64_t)b * Q8_BYTES;
            const __m512i *ab = at + b * G * MG;
            #pragma GCC unroll 4
            for (int j = 0; j < nr; j++) /* the next tile's rows into L2 (10% faster than into L1 at M = 1) */
                _mm_prefetch((const char *)(blk + (uint64_t)(j + nr) * rb), _MM_HINT_T1);
            __m512i x[8];
            #pragma GCC unroll 8
            for (int s = 0; s < G * MG; s++) x[s] = _mm512_load_si512(ab + s);
            #pragma GCC unroll 4
            for (int j = 0; j < nr; j++) {
                const uint8_t *q = blk + (uint64_t)j * rb + 2;
                /* two chains per row (the groups, or even and odd steps): 8 in flight */
                __m512i isum[2];
                __m512i wv = lanes_bcast16(MG, q);
                isum[0] = _mm512_madd_epi16(wv, x[0]);
                if (G == 2) isum[1] = _mm512_madd_epi16(wv, x[MG]);
                else isum[1] = _mm512_madd_epi16(lanes_bcast16(MG, q + 2 * P), x[1]);
                #pragma GCC unroll 8
                for (int s = G == 2 ? 1 : 2; s < MG; s++) {
                    wv = lanes_bcast16(MG, q + 2 * P * s);
                    if (G == 2) {
                        isum[0] = _mm512_dpwssd_epi32(isum[0], wv, x[s]);
                        isum[1] = _mm512_dpwssd_epi32(isum[1], wv, x[MG + s]);
                    } else isum[s & 1] = _mm512_dpwssd_epi32(isum[s & 1], wv, x[s]);
                }
                uint16_t h;
                memcpy(&h, blk + (uint64_t)j * rb, 2);
                const __m512 dw = _mm512_set1_ps(_cvtsh_ss(h));
                if (G == 2) {
                    accw[0][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[0]), dw, accw[0][j]);
                    accw[1][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[1]), dw, accw[1][j]);
                } else
                    accw[0][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(isum[0], isum[1])), dw, accw[0][j]);
            }
        }
        #pragma GCC unroll 2
        for (int gi = 0; gi < G; gi++) {
            const __m512 da = _mm512_castsi512_ps(_mm512_load_si512(at + nb * G * MG + (w0 / VLMN_FAST_WINDOW) * G + gi));
            #pragma GCC unroll 4
            for (int j = 0; j < nr; j++) acc[gi][j] = _mm512_fmadd_ps(accw[gi][j], da, acc[gi][j]);
        }
    }
    #pragma GCC unroll 4
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 2
        for (int gi = 0; gi < G; gi++) _mm512_storeu_ps(out + 16 * (j * G + gi), acc[gi][j]);
}

#define TILE_NR(F, MP)                                            \
    switch (nr) {                                                 \
    case 1: F(MP, 1, w, rb, at, nb, out); break;                  \
    case 2: F(MP, 2, w, rb, at, nb, out); break;                  \
    case 3: F(MP, 3, w, rb, at, nb, out); break;                  \
    default: F(MP, LANES_NR, w, rb, at, nb, out); break;          \
    }

static void run_tile(bool wide, int mp, int nr, const uint8_t *w, uint64_t rb, const __m512i *at, int64_t nb,
                     float *out)
{
    if (wide) {
        if (mp == 2) TILE_NR(tile16, 2)
        else if (mp == 4) TILE_NR(tile16, 4)
        else TILE_NR(tile16, 8)
    } else {
        if (mp == 2) TILE_NR(tile, 2)
        else if (mp == 4) TILE_NR(tile, 4)
        else TILE_NR(tile, 8)
    }
}

static void compute(void *ctx, int ith, int nth)
{
    (void)ith;
    (void)nth;
    gq_job *j = ctx;
    const gemm_args *g = j->g;
    const vlmn_matrix *W = g->W;
    const int64_t N = W->rows, nb = W->cols / 32;
    const uint64_t rb = W->row_bytes;
    /* lanes per token, out floats per row (tile16 runs its tokens in G groups) */
    const int G = j->wide ? tile16_groups(j->mp) : 1, P = 16 * G / j->mp, os = 16 * G;
    float out[LANES_NR * 32];
    int64_t c0, c1;
    while (gemm_sched_next(&j->sched, &c0, &c1))
        for (int64_t blk = c0; blk < c1; blk++) {
            const int64_t n0 = blk * LANES_RB, rows = N - n0 < LANES_RB ? N - n0 : LANES_RB;
            for (int64_t r = 0; r < rows; r += LANES_NR) {
                const int nr = rows - r < LANES_NR ? (int)(rows - r) : LANES_NR;
                run_tile(j->wide, j->mp, nr, (const uint8_t *)W->data + (uint64_t)(n0 + r) * rb, rb, j->at, nb, out);
                lanes_write(g, out, os, NULL, nr, P, n0 + r);
            }
        }
}

/* FASTEST table: per block, step s holds token t's bytes [4P s, 4P s + 4P) at byte 4P t;
 * then per lane -128 * the sum of the bytes it multiplies (each lane's sum is then exactly
 * its part of the dot: a correction summed in one lane would leave the others ~128x larger
 * than the result, and their f32 products would not cancel exactly); then d_act of token t
 * in lanes [P t, P t + P). Padding tokens are zero in all three. */
static void table8(const gemm_args *g, int mp, int64_t nb, __m512i *at)
{
    const int S = mp / 2, P = 16 / mp;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *xb = (uint8_t *)(at + b * (S + 2));
        int32_t corr[16] = {0};
        float da[16] = {0};
        memset(xb, 0, (size_t)S * 64);
        for (int64_t t = 0; t < g->M; t++) {
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
}

/* FAST table: tokens in G groups of mg (tile16); per block and group, step s (of mg) holds
 * token t's int16 of k in [2P s, 2P s + 2P) at byte 4P (t % mg); after the blocks, per
 * window and group the d_act of token t in lanes [P (t % mg), + P). */
static void table16(const gemm_args *g, int G, int mg, int64_t nb, __m512i *at)
{
    const int P = 16 / mg;
    memset(at, 0, sizeof(__m512i) * (size_t)((nb * mg + vlmn_fast_windows(nb)) * G));
    for (int64_t t = 0; t < g->M; t++) {
        const float *a = g->A + t * g->lda;
        const int64_t gi = t / mg, tl = t % mg;
        for (int64_t w0 = 0, w1; w0 < nb; w0 = w1) {
            w1 = vlmn_fast_window_end(w0, nb);
            const float amax = act_absmax(a + 32 * w0, 32 * (w1 - w0)), qmax = 32767.0f;
            float *da = (float *)(at + nb * G * mg + (w0 / VLMN_FAST_WINDOW) * G + gi);
            for (int i = 0; i < P; i++) da[P * tl + i] = amax / qmax;
            for (int64_t b = w0; b < w1; b++) {
                int16_t q[32];
                _mm512_storeu_si512((__m512i *)q, act_quant16(a + 32 * b, amax > 0 ? qmax / amax : 0.0f));
                for (int s = 0; s < mg; s++)
                    memcpy((uint8_t *)(at + (b * G + gi) * mg + s) + 4 * P * tl, q + 2 * P * s, (size_t)(4 * P));
            }
        }
    }
}

bool gemv_q8_0_avx512(vlmn_pool *p, const gemm_args *g)
{
    const vlmn_matrix *W = g->W;
    if (W->type != VLMN_TYPE_Q8_0 || g->prec == VLMN_PREC_EXACT || g->M < 1 || g->M > GEMV_MAX_M || W->cols % 32)
        return false;
    const bool wide = g->prec == VLMN_PREC_FAST;
    const int64_t nb = W->cols / 32;
    const int mp = lanes_mp(g->M), G = wide ? tile16_groups(mp) : 1;
    const int64_t nv = wide ? (nb * (mp / G) + vlmn_fast_windows(nb)) * G : nb * (mp / 2 + 2);
    __m512i *at = vlmn_pool_scratch(p, sizeof(__m512i) * (size_t)nv);
    if (!at) return false;
    if (wide) table16(g, G, mp / G, nb, at);
    else table8(g, mp, nb, at);
    gq_job j = {.g = g, .at = at, .mp = mp, .wide = wide};
    gemm_sched_init(&j.sched, (W->rows + LANES_RB - 1) / LANES_RB, vlmn_pool_size(p));
    vlmn_pool_run(p, compute, &j);
    return true;
}
