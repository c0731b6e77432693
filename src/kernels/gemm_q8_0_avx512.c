/* Q8_0-weight GEMM with AVX512_VNNI (vpdpbusd), FAST precision: activations are
 * quantised per 32-block to int8 with an f32 scale (d = max|x|/127, q = round(x/d), as
 * ggml's q8_0 x q8_0 dot), packed into panels of 32 tokens with 128 added (vpdpbusd
 * multiplies unsigned by signed bytes); weights are read in place from their GGUF
 * blocks, 4 bytes broadcast at a time. Per block, the int32 sums start at
 * -128 * (sum of the weight block) to undo the +128, then are scaled by
 * d_act * d_weight into f32 accumulators: a 6 (weights) x 32 (tokens) tile kept over
 * a K block, each C value one f32 sum over blocks in k order. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"

#include <immintrin.h>
#include <string.h>

#ifndef NVMAX
#define NVMAX 2 /* token vectors (16 tokens each) per micro-tile */
#define NRW 6   /* weight rows per micro-tile */
#endif
#define MP (16 * NVMAX)
#define QB 34   /* bytes per Q8_0 block: f16 d + 32 int8 */
#ifndef KBB
#define KBB 128 /* 32-blocks per K block */
#endif

typedef struct {
    const gemm_args *g;
    gemm_sched *sched;
    uint32_t *apack;  /* [panels][KB][8][MP] 4 unsigned bytes each */
    float *adscale;   /* [panels][KB][MP] activation scales */
    float *ctile;     /* per thread: [panels][NRW * MP] partial sums */
    int32_t *wcorr;   /* per thread: [NRW][KB] -128 * sum of weight block */
    float *wd;        /* per thread: [NRW][KB] weight scales */
    int64_t cstride, wstride, KB;
} q8_job;

static void pack_a(void *ctx, int ith, int nth)
{
    const q8_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t KB = j->KB, np = (g->M + MP - 1) / MP;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t p = np * ith / nth; p < np * (ith + 1) / nth; p++) {
        uint32_t *dst = j->apack + p * KB * 8 * MP;
        float *ds = j->adscale + p * KB * MP;
        int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
        for (int64_t i = 0; i < MP; i++) {
            if (i >= mr) {
                for (int64_t b = 0; b < KB; b++) {
                    ds[b * MP + i] = 0.0f;
                    for (int q = 0; q < 8; q++) dst[(b * 8 + q) * MP + i] = 0x80808080u;
                }
                continue;
            }
            const float *a = g->A + (m0 + i) * g->lda;
            for (int64_t b = 0; b < KB; b++) {
                __m512 x0 = _mm512_loadu_ps(a + 32 * b), x1 = _mm512_loadu_ps(a + 32 * b + 16);
                __m512 mx = _mm512_max_ps(_mm512_and_ps(x0, absmask), _mm512_and_ps(x1, absmask));
                float amax = _mm512_reduce_max_ps(mx);
                float d = amax / 127.0f, id = amax > 0 ? 127.0f / amax : 0.0f;
                ds[b * MP + i] = d;
                __m512 vid = _mm512_set1_ps(id);
                /* round to nearest (even on ties), |q| <= 127 */
                __m128i q0 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, vid)));
                __m128i q1 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, vid)));
                const __m128i bias = _mm_set1_epi8((char)0x80);
                uint32_t t[8];
                _mm_storeu_si128((__m128i *)t, _mm_xor_si128(q0, bias));
                _mm_storeu_si128((__m128i *)(t + 4), _mm_xor_si128(q1, bias));
                for (int q = 0; q < 8; q++) dst[(b * 8 + q) * MP + i] = t[q];
            }
        }
    }
}

/* Weight-side tables for rows wrow[0..nr) and blocks [b0, b1): scales as f32 and the
 * -128 * sum(q) correction (sum by SAD on the bytes xor 0x80). */
static void weight_tables(const uint8_t *const *wrow, int nr, int64_t b0, int64_t b1,
                          float *wd, int32_t *wcorr, int64_t ld)
{
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int r = 0; r < nr; r++)
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *blk = wrow[r] + b * QB;
            uint16_t h;
            memcpy(&h, blk, 2);
            wd[r * ld + (b - b0)] = _cvtsh_ss(h);
            __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(blk + 2)), bias);
            __m256i s = _mm256_sad_epu8(q, _mm256_setzero_si256());
            __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            int64_t sum = _mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1) - 32 * 128;
            wcorr[r * ld + (b - b0)] = (int32_t)(-128 * sum);
        }
}

static inline __attribute__((always_inline)) void
tile(const int nr, const int nv, const uint8_t *const *wrow, int64_t b0, int64_t b1,
     const uint32_t *ap, const float *ads, const float *wd, const int32_t *wcorr, int64_t ld,
     float *ct, bool first)
{
    __m512 acc[NRW][NVMAX];
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++)
            acc[j][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(ct + j * MP + v * 16);
    for (int64_t b = b0; b < b1; b++) {
        __m512i ia[NRW][NVMAX];
#pragma GCC unroll 16
        for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++) ia[j][v] = _mm512_set1_epi32(wcorr[j * ld + (b - b0)]);
        const uint32_t *a = ap + b * 8 * MP;
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
            __m512i av[NVMAX];
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++)
                av[v] = _mm512_load_si512((const __m512i *)(a + q * MP + 16 * v));
#pragma GCC unroll 16
            for (int j = 0; j < nr; j++) {
                int32_t w4;
                memcpy(&w4, wrow[j] + b * QB + 2 + 4 * q, 4);
                __m512i wb = _mm512_set1_epi32(w4);
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++) ia[j][v] = _mm512_dpbusd_epi32(ia[j][v], av[v], wb);
            }
        }
        __m512 da[NVMAX];
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) da[v] = _mm512_load_ps(ads + b * MP + 16 * v);
#pragma GCC unroll 16
        for (int j = 0; j < nr; j++) {
            __m512 dw = _mm512_set1_ps(wd[j * ld + (b - b0)]);
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++)
                acc[j][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[j][v]), _mm512_mul_ps(da[v], dw),
                                            acc[j][v]);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) _mm512_store_ps(ct + j * MP + v * 16, acc[j][v]);
}

#define NV_CASE(NR, NV)                                                                \
    case NV: tile(NR, NV, wrow, b0, b1, ap, ads, wd, wcorr, ld, ct, first); break;
#if NVMAX == 2
#define NV_CASES(NR) NV_CASE(NR, 1) NV_CASE(NR, 2)
#else
#define NV_CASES(NR) NV_CASE(NR, 1) NV_CASE(NR, 2) NV_CASE(NR, 3)
#endif
#define TILE_CASE(NR)                                                                  \
    case NR:                                                                           \
        switch (nv) { NV_CASES(NR) }                                                   \
        break;

static void run_tile(int nr, int nv, const uint8_t *const *wrow, int64_t b0, int64_t b1,
                     const uint32_t *ap, const float *ads, const float *wd,
                     const int32_t *wcorr, int64_t ld, float *ct, bool first)
{
    switch (nr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4)
#if NRW > 4
        TILE_CASE(5) TILE_CASE(6)
#endif
    }
}

static void compute(void *ctx, int ith, int nth)
{
    const q8_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t N = g->W->rows, KB = j->KB, np = (g->M + MP - 1) / MP;
    float *ctile = j->ctile + ith * j->cstride;
    float *wd = j->wd + ith * j->wstride;
    int32_t *wcorr = j->wcorr + ith * j->wstride;
    const uint8_t *wrow[NRW];
    int64_t c0, c1;
    while (gemm_sched_next(j->sched, &c0, &c1))
    for (int64_t b = c0; b < c1; b++) {
        int64_t n0 = b * NRW, nr = N - n0 < NRW ? N - n0 : NRW;
        for (int64_t r = 0; r < nr; r++)
            wrow[r] = (const uint8_t *)g->W->data + (uint64_t)(n0 + r) * g->W->row_bytes;
        for (int64_t b0 = 0; b0 < KB; b0 += KBB) {
            int64_t b1 = KB - b0 < KBB ? KB : b0 + KBB;
            bool last = b1 == KB;
            weight_tables(wrow, (int)nr, b0, b1, wd, wcorr, KBB);
            for (int64_t p = 0; p < np; p++) {
                int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
                float *ct = ctile + p * NRW * MP;
                run_tile((int)nr, (int)((mr + 15) / 16), wrow, b0, b1,
                         j->apack + p * KB * 8 * MP, j->adscale + p * KB * MP, wd, wcorr, KBB,
                         ct, b0 == 0);
                if (last) gemm_store_tile(g, ct, MP, m0, mr, n0, nr);
            }
        }
    }
}

bool gemm_q8_0_avx512(vlmn_pool *p, const gemm_args *g)
{
    const int64_t K = g->W->cols, np = (g->M + MP - 1) / MP;
    const int nth = vlmn_pool_size(p);
    if (K % 32) return false;
    q8_job j;
    memset(&j, 0, sizeof j);
    j.g = g;
    j.KB = K / 32;
    j.cstride = np * NRW * MP;
    j.wstride = (NRW * KBB + 15) & ~(int64_t)15;
    size_t abytes = (size_t)(np * j.KB * 8 * MP) * 4;
    size_t sbytes = (size_t)(np * j.KB * MP) * 4;
    size_t cbytes = sizeof(float) * (size_t)(j.cstride * nth);
    size_t tbytes = 4 * (size_t)(j.wstride * nth);
    char *ws = vlmn_pool_scratch(p, abytes + sbytes + cbytes + 2 * tbytes);
    if (!ws) return false;
    j.apack = (uint32_t *)ws;
    j.adscale = (float *)(ws + abytes);
    j.ctile = (float *)(ws + abytes + sbytes);
    j.wd = (float *)(ws + abytes + sbytes + cbytes);
    j.wcorr = (int32_t *)(ws + abytes + sbytes + cbytes + tbytes);
    vlmn_pool_run(p, pack_a, &j);
    gemm_sched sched;
    gemm_sched_init(&sched, (g->W->rows + NRW - 1) / NRW, nth);
    j.sched = &sched;
    vlmn_pool_run(p, compute, &j);
    return true;
}
