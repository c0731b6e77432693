/* Decode-shaped BF16 GEMM with vdpbf16ps (AVX512_BF16), FAST / FASTEST precision:
 * C[M x N] (+)= A[M x K] W^T for M = 1..8 token rows, the bf16 weights read in place, each
 * weight row streamed once per call for all M tokens.
 *
 * Activations are rounded to bf16 (nearest even, vcvtne2ps2bf16) as the tile kernel
 * (gemm_bf16_avx512.c) rounds them, so decode and prefill compute the same products.
 * Tokens lie in the lanes (gemv_lanes_avx512.h): one vdpbf16ps takes 2P consecutive
 * weights of one row (4P bytes) broadcast to every token, against a register of the
 * matching bf16 activations of all tokens, and adds the lane's two products to its f32
 * sum; there are no block scales, so the products go straight into the f32 sums. Each
 * row has two sums per lane (even and odd steps) so that 8 chains hide the instruction's
 * latency in a 4-row tile. K beyond the last multiple of 16 is summed in scalar (f32, on
 * the rounded activations). The per-call activation table is K * MP * 2 bytes (176 KiB at
 * K = 11008, MP = 8), read from L2.
 *
 * Blocks of LANES_RB rows go to threads (gemm_sched) and each is computed whole in a
 * fixed order (per token: f32 sums per lane, the two chains, then the P lanes in order,
 * then the tail), so results do not depend on the thread count. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"
#include "kernels/gemv_lanes_avx512.h"

typedef struct gb_job {
    const gemm_args *g;
    gemm_sched sched;
    const __m512i *at; /* [K16 / 2P] steps of 64 bytes (as gemv_lanes_avx512.h) */
    const uint16_t *ar; /* [M][K] the rounded activations (bf16), for the tail */
    int64_t K16;
    int mp;
} gb_job;

/* nr rows (stride rb bytes) x MP padded tokens over ns steps; out[j * 16 + lane]. */
static inline __attribute__((always_inline)) void tile(const int MP, const int nr, const uint8_t *w, uint64_t rb,
                                                       const __m512i *at, int64_t ns, float *out)
{
    const int B = 64 / MP; /* weight bytes per step */
    __m512 acc[2][LANES_NR];
    #pragma GCC unroll 4
    for (int j = 0; j < nr; j++) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
    int64_t s = 0;
    for (; s + 2 <= ns; s += 2) {
        if ((s * B) % 64 == 0)
            #pragma GCC unroll 4
            for (int j = 0; j < nr; j++) /* the next tile's rows into L2, one line per row per line consumed (into L1: M = 8 10-20% slower) */
                _mm_prefetch((const char *)(w + (uint64_t)(j + nr) * rb + (uint64_t)(s * B)), _MM_HINT_T1);
        const __m512bh x0 = (__m512bh)_mm512_load_si512(at + s), x1 = (__m512bh)_mm512_load_si512(at + s + 1);
        #pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            const uint8_t *q = w + (uint64_t)j * rb + (uint64_t)(s * B);
            acc[0][j] = _mm512_dpbf16_ps(acc[0][j], x0, (__m512bh)lanes_bcast(MP, q));
            acc[1][j] = _mm512_dpbf16_ps(acc[1][j], x1, (__m512bh)lanes_bcast(MP, q + B));
        }
    }
    if (s < ns) {
        const __m512bh x0 = (__m512bh)_mm512_load_si512(at + s);
        #pragma GCC unroll 4
        for (int j = 0; j < nr; j++)
            acc[0][j] = _mm512_dpbf16_ps(acc[0][j], x0, (__m512bh)lanes_bcast(MP, w + (uint64_t)j * rb + (uint64_t)(s * B)));
    }
    #pragma GCC unroll 4
    for (int j = 0; j < nr; j++) _mm512_storeu_ps(out + 16 * j, _mm512_add_ps(acc[0][j], acc[1][j]));
}

#define TILE_NR(MP)                                               \
    switch (nr) {                                                 \
    case 1: tile(MP, 1, w, rb, at, ns, out); break;               \
    case 2: tile(MP, 2, w, rb, at, ns, out); break;               \
    case 3: tile(MP, 3, w, rb, at, ns, out); break;               \
    default: tile(MP, LANES_NR, w, rb, at, ns, out); break;       \
    }

static void run_tile(int mp, int nr, const uint8_t *w, uint64_t rb, const __m512i *at, int64_t ns, float *out)
{
    if (mp == 2) TILE_NR(2)
    else if (mp == 4) TILE_NR(4)
    else TILE_NR(8)
}

static void compute(void *ctx, int ith, int nth)
{
    (void)ith;
    (void)nth;
    gb_job *j = ctx;
    const gemm_args *g = j->g;
    const vlmn_matrix *W = g->W;
    const int64_t N = W->rows, K = W->cols, K16 = j->K16, M = g->M;
    const int P = 16 / j->mp;
    const int64_t ns = K16 / (2 * P);
    const uint64_t rb = W->row_bytes;
    float out[LANES_NR * 16], tail[LANES_NR * 8];
    int64_t c0, c1;
    while (gemm_sched_next(&j->sched, &c0, &c1))
        for (int64_t blk = c0; blk < c1; blk++) {
            const int64_t n0 = blk * LANES_RB, rows = N - n0 < LANES_RB ? N - n0 : LANES_RB;
            for (int64_t r = 0; r < rows; r += LANES_NR) {
                const int nr = rows - r < LANES_NR ? (int)(rows - r) : LANES_NR;
                const uint8_t *w = (const uint8_t *)W->data + (uint64_t)(n0 + r) * rb;
                run_tile(j->mp, nr, w, rb, j->at, ns, out);
                if (K16 < K)
                    for (int jr = 0; jr < nr; jr++)
                        for (int64_t t = 0; t < M; t++) {
                            float s = 0.0f;
                            for (int64_t k = K16; k < K; k++) {
                                uint16_t h;
                                memcpy(&h, w + (uint64_t)jr * rb + 2 * (uint64_t)k, 2);
                                s += vlmn_bf16_to_f32(j->ar[t * K + k]) * vlmn_bf16_to_f32(h);
                            }
                            tail[jr * 8 + t] = s;
                        }
                lanes_write(g, out, 16, K16 < K ? tail : NULL, nr, P, n0 + r);
            }
        }
}

bool gemv_bf16_avx512(vlmn_pool *p, const gemm_args *g)
{
    const vlmn_matrix *W = g->W;
    if (W->type != VLMN_TYPE_BF16 || g->prec == VLMN_PREC_EXACT || g->M < 1 || g->M > GEMV_MAX_M) return false;
    const int64_t M = g->M, K = W->cols, K16 = K & ~(int64_t)15, K32 = (K + 31) & ~(int64_t)31;
    const int mp = lanes_mp(M), P = 16 / mp;
    /* the table, then the rounded rows (K32 values each: whole 32-value conversions) */
    const size_t tab = (size_t)(K16 * mp * 2), rows = (size_t)(M * K32 * 2);
    uint8_t *ws = vlmn_pool_scratch(p, tab + rows);
    if (!ws) return false;
    uint16_t *ar = (uint16_t *)(ws + tab);
    for (int64_t t = 0; t < M; t++) {
        const float *a = g->A + t * g->lda;
        for (int64_t k = 0; k < K; k += 32) {
            const int64_t n = K - k < 32 ? K - k : 32;
            const __mmask16 lo = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
            const __mmask16 hi = (__mmask16)(n <= 16 ? 0 : n >= 32 ? 0xffff : (1u << (n - 16)) - 1);
            const __m512bh r = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, a + k + 16), _mm512_maskz_loadu_ps(lo, a + k));
            _mm512_storeu_si512((__m512i *)(ar + t * K32 + k), (__m512i)r);
        }
    }
    /* step s: token t's 2P bf16 of k in [2P s, 2P s + 2P) at byte 4P t; padding tokens 0 */
    memset(ws, 0, tab);
    for (int64_t s = 0; s < K16 / (2 * P); s++)
        for (int64_t t = 0; t < M; t++) memcpy(ws + 64 * s + 4 * P * t, ar + t * K32 + 2 * P * s, (size_t)(4 * P));
    /* the tail reads ar with row stride K: compact it in place (rows only move down) */
    if (K32 != K)
        for (int64_t t = 1; t < M; t++) memmove(ar + t * K, ar + t * K32, (size_t)K * 2);
    gb_job j = {.g = g, .at = (const __m512i *)ws, .ar = ar, .K16 = K16, .mp = mp};
    gemm_sched_init(&j.sched, (W->rows + LANES_RB - 1) / LANES_RB, vlmn_pool_size(p));
    vlmn_pool_run(p, compute, &j);
    return true;
}
