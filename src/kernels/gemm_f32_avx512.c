/* f32 GEMM with AVX-512 FMA, used for EXACT precision of every weight type and for
 * F32/F16/Q4_K weights in FAST mode: rows of W are dequantised to f32 per block of
 * rows (F32 rows are used in place; no repacked copy), A is packed once per call into
 * panels of 48 tokens, and the micro-kernel keeps an 8 (weights) x 48 (tokens) tile of C in registers over all of K,
 * so every C value is one f32 sum in k order, whatever the thread count. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"
#include "kernels/transpose_avx512.h"

#include <immintrin.h>
#include <string.h>

#define NVMAX 3         /* token vectors per micro-tile */
#define MP (16 * NVMAX) /* tokens per A panel */
#define NRW 8           /* weight rows per micro-tile (8 x 48: fewest broadcasts per FMA) */

typedef struct {
    const gemm_args *g;
    gemm_sched *sched;
    float *apack;  /* [panels][K][MP] */
    float *wbuf;   /* per thread: [NRW][K] */
    int64_t wstride; /* floats per thread in wbuf */
} f32_job;

/* Packing: 16 tokens x 16 k at a time, transposed in registers. */
static void pack_a(void *ctx, int ith, int nth)
{
    const f32_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t K = g->W->cols, np = (g->M + MP - 1) / MP;
    for (int64_t p = np * ith / nth; p < np * (ith + 1) / nth; p++) {
        float *dst = j->apack + p * K * MP;
        int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
        for (int64_t grp = 0; grp < MP / 16; grp++)
            for (int64_t k = 0; k < K; k += 16) {
                int64_t n = K - k < 16 ? K - k : 16;
                __mmask16 mk = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
                __m512i r[16];
                for (int i = 0; i < 16; i++) {
                    int64_t t = grp * 16 + i;
                    r[i] = t < mr ? _mm512_maskz_loadu_epi32(mk, g->A + (m0 + t) * g->lda + k)
                                  : _mm512_setzero_si512();
                }
                transpose16_avx512(r);
                for (int64_t q = 0; q < n; q++)
                    _mm512_store_si512((__m512i *)(dst + (k + q) * MP + grp * 16), r[q]);
            }
    }
}

static inline __attribute__((always_inline)) void
tile(const int nr, const int nv, const float *w, int64_t K, const float *ap, float *out)
{
    __m512 acc[NRW][NVMAX];
    __m512 a[NVMAX];
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) acc[j][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) a[v] = _mm512_load_ps(ap + k * MP + 16 * v);
#pragma GCC unroll 16
        for (int j = 0; j < nr; j++) {
            __m512 b = _mm512_set1_ps(w[j * K + k]);
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++) acc[j][v] = _mm512_fmadd_ps(a[v], b, acc[j][v]);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) _mm512_storeu_ps(out + j * MP + v * 16, acc[j][v]);
}

#define NV_CASE(NR, NV) case NV: tile(NR, NV, w, K, ap, out); break;
#define TILE_CASE(NR)                                                                  \
    case NR:                                                                           \
        switch (nv) { NV_CASE(NR, 1) NV_CASE(NR, 2) NV_CASE(NR, 3) }                   \
        break;

static void run_tile(int nr, int nv, const float *w, int64_t K, const float *ap, float *out)
{
    switch (nr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4)
        TILE_CASE(5) TILE_CASE(6) TILE_CASE(7) TILE_CASE(8)
    }
}

/* Rows [n0, n0+nr) of W as f32 with row stride K: F32 weights are used in place, F16
 * and BF16 are widened with vector instructions (exact), other types go through
 * vlmn_dequant. */
static const float *load_rows(const vlmn_matrix *W, int64_t n0, int64_t nr, float *buf)
{
    const int64_t K = W->cols, n = nr * K;
    const uint8_t *base = (const uint8_t *)W->data + (uint64_t)n0 * W->row_bytes;
    if (W->type == VLMN_TYPE_F32) return (const float *)base;
    if (W->type == VLMN_TYPE_F16 || W->type == VLMN_TYPE_BF16) {
        const uint16_t *src = (const uint16_t *)base; /* rows are contiguous */
        const bool f16 = W->type == VLMN_TYPE_F16;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            __m256i h = _mm256_loadu_si256((const __m256i *)(src + i));
            __m512 f = f16 ? _mm512_cvtph_ps(h)
                           : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            _mm512_storeu_ps(buf + i, f);
        }
        for (; i < n; i++) buf[i] = f16 ? vlmn_f16_to_f32(src[i]) : vlmn_bf16_to_f32(src[i]);
        return buf;
    }
    gemm_dequant_rows(W, n0, nr, buf, K);
    return buf;
}

static void compute(void *ctx, int ith, int nth)
{
    const f32_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t N = g->W->rows, K = g->W->cols, np = (g->M + MP - 1) / MP;
    float *wbuf = j->wbuf + ith * j->wstride;
    float out[NRW * MP] __attribute__((aligned(64)));
    int64_t c0, c1;
    while (gemm_sched_next(j->sched, &c0, &c1))
    for (int64_t b = c0; b < c1; b++) {
        int64_t n0 = b * NRW, nr = N - n0 < NRW ? N - n0 : NRW;
        const float *w = load_rows(g->W, n0, nr, wbuf);
        for (int64_t p = 0; p < np; p++) {
            int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
            run_tile((int)nr, (int)((mr + 15) / 16), w, K, j->apack + p * K * MP, out);
            gemm_store_tile(g, out, MP, m0, mr, n0, nr);
        }
    }
}

bool gemm_f32_avx512(vlmn_pool *p, const gemm_args *g)
{
    const int64_t K = g->W->cols, np = (g->M + MP - 1) / MP;
    const int nth = vlmn_pool_size(p);
    f32_job j = {g, NULL, NULL, NULL, (NRW * K + 15) & ~(int64_t)15};
    size_t abytes = sizeof(float) * (size_t)(np * K * MP);
    size_t wbytes = sizeof(float) * (size_t)(j.wstride * nth);
    char *ws = vlmn_pool_scratch(p, abytes + wbytes);
    if (!ws) return false;
    j.apack = (float *)ws;
    j.wbuf = (float *)(ws + abytes);
    vlmn_pool_run(p, pack_a, &j);
    gemm_sched sched;
    gemm_sched_init(&sched, (g->W->rows + NRW - 1) / NRW, nth);
    j.sched = &sched;
    vlmn_pool_run(p, compute, &j);
    return true;
}
