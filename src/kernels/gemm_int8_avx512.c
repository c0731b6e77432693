/* GEMM by int8 dot products (AVX512_VNNI vpdpbusd) for Q8_0 and Q4_K weights, FAST
 * precision. Activations are quantised per 32-block to int8 with an f32 scale
 * (d = max|x|/127, q = round(x/d), as ggml's q8_0 x q8_0 dot) and packed into panels of
 * 32 tokens with 128 added (vpdpbusd multiplies unsigned by signed bytes). For each block
 * of 6 weight rows the weights' int8 values (Q8_0 bytes, or Q4_K nibbles widened to
 * bytes) are copied to a small per-thread buffer with their per-32 scale (and Q4_K
 * min) and -128 * (sum of the 32 weights), the start value of the int32 sums that undoes
 * the +128. Then per 32-block: isum = sum (qa + 128) * qw - 128 * sum qw (exact), and
 * acc += float(isum) * (d_act * d_w) [- min_w * sum(a) for Q4_K, with the f32 sum of the
 * activations]. A 6 (weights) x 32 (tokens) tile is kept over a K block; each C value is
 * one f32 sum over blocks in k order, whatever the thread count. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"

#include <immintrin.h>
#include <string.h>

#define NVMAX 2 /* token vectors (16 tokens each) per micro-tile */
#define NRW 6   /* weight rows per micro-tile */
#define MP (16 * NVMAX)
#define KBB 128 /* 32-blocks per K block (a multiple of 8: whole Q4_K super-blocks) */

typedef struct {
    const gemm_args *g;
    gemm_sched *sched;
    bool q4k;
    int npass;        /* 1: activations int8 once; 2: plus an int8 residual (see pack_a) */
    uint32_t *apack;  /* [panels][KB][npass][8][MP] 4 unsigned bytes each */
    float *adscale;   /* [panels][KB][npass][MP] activation scales */
    float *asum;      /* [panels][KB][MP] f32 sums of the activations (Q4_K only) */
    float *ctile;     /* per thread: [panels][NRW * MP] partial sums */
    int8_t *wq;       /* per thread: [NRW][KBB * 32] weight values */
    float *wd;        /* per thread: [NRW][KBB] weight scales */
    float *wm;        /* per thread: [NRW][KBB] weight mins (Q4_K) */
    int32_t *wcorr;   /* per thread: [NRW][KBB] -128 * sum of the block's weights */
    int64_t cstride, KB;
} int8_job;

static void pack_a(void *ctx, int ith, int nth)
{
    const int8_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t KB = j->KB, np = (g->M + MP - 1) / MP;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const int npass = j->npass;
    for (int64_t p = np * ith / nth; p < np * (ith + 1) / nth; p++) {
        uint32_t *dst = j->apack + p * KB * npass * 8 * MP;
        float *ds = j->adscale + p * KB * npass * MP;
        float *as = j->q4k ? j->asum + p * KB * MP : NULL;
        int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
        for (int64_t i = 0; i < MP; i++) {
            if (i >= mr) {
                for (int64_t b = 0; b < KB; b++) {
                    if (as) as[b * MP + i] = 0.0f;
                    for (int ps = 0; ps < npass; ps++) {
                        ds[(b * npass + ps) * MP + i] = 0.0f;
                        for (int q = 0; q < 8; q++)
                            dst[((b * npass + ps) * 8 + q) * MP + i] = 0x80808080u;
                    }
                }
                continue;
            }
            const float *a = g->A + (m0 + i) * g->lda;
            for (int64_t b = 0; b < KB; b++) {
                __m512 x0 = _mm512_loadu_ps(a + 32 * b), x1 = _mm512_loadu_ps(a + 32 * b + 16);
                __m512 mx = _mm512_max_ps(_mm512_and_ps(x0, absmask), _mm512_and_ps(x1, absmask));
                float amax = _mm512_reduce_max_ps(mx);
                float d = amax / 127.0f, id = amax > 0 ? 127.0f / amax : 0.0f;
                if (as) as[b * MP + i] = _mm512_reduce_add_ps(_mm512_add_ps(x0, x1));
                __m512 vid = _mm512_set1_ps(id);
                __m512 y0 = _mm512_mul_ps(x0, vid), y1 = _mm512_mul_ps(x1, vid);
                for (int ps = 0; ps < npass; ps++) {
                    /* q = round(y) (to nearest even), |q| <= 127; pass 2 quantises the
                     * remainder y - q (|.| <= 1/2) with scale d/254, so that
                     * x = d * (q1 + q2 / 254) to within d/508. */
                    __m512 r0 = _mm512_roundscale_ps(y0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    __m512 r1 = _mm512_roundscale_ps(y1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    __m128i q0 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(r0));
                    __m128i q1 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(r1));
                    const __m128i bias = _mm_set1_epi8((char)0x80);
                    uint32_t t[8];
                    _mm_storeu_si128((__m128i *)t, _mm_xor_si128(q0, bias));
                    _mm_storeu_si128((__m128i *)(t + 4), _mm_xor_si128(q1, bias));
                    for (int q = 0; q < 8; q++) dst[((b * npass + ps) * 8 + q) * MP + i] = t[q];
                    ds[(b * npass + ps) * MP + i] = ps ? d / 254.0f : d;
                    const __m512 s254 = _mm512_set1_ps(254.0f);
                    y0 = _mm512_mul_ps(_mm512_sub_ps(y0, r0), s254);
                    y1 = _mm512_mul_ps(_mm512_sub_ps(y1, r1), s254);
                }
            }
        }
    }
}

/* -128 * sum of 32 signed bytes (by SAD on the bytes xor 0x80). */
static inline int32_t corr32(__m256i q)
{
    __m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)),
                                _mm256_setzero_si256());
    __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    int64_t sum = _mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1) - 32 * 128;
    return (int32_t)(-128 * sum);
}

/* Weight tables of rows wrow[0..nr) for 32-blocks [b0, b1), at index b - b0. */
static void weights_q8_0(const uint8_t *const *wrow, int nr, int64_t b0, int64_t b1,
                         const int8_job *j, int8_t *wq, float *wd, int32_t *wcorr)
{
    for (int r = 0; r < nr; r++)
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *blk = wrow[r] + b * 34; /* f16 d, 32 x int8 */
            uint16_t h;
            memcpy(&h, blk, 2);
            const int64_t t = r * KBB + (b - b0);
            wd[t] = _cvtsh_ss(h);
            __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
            _mm256_storeu_si256((__m256i *)(wq + t * 32), q);
            wcorr[t] = corr32(q);
        }
    (void)j;
}

/* Q4_K super-block (256 values, 144 bytes): f16 d, f16 dmin, 12 bytes of 6-bit
 * scales/mins, 128 bytes of nibbles; 32-byte group g holds sub-blocks 2g (low nibbles)
 * and 2g+1 (high). x = d*sc*q - dmin*m (as ggml's dequantize_row_q4_K). */
static inline void q4k_scale_min(int s, const uint8_t *q, int *sc, int *mn)
{
    if (s < 4) {
        *sc = q[s] & 63;
        *mn = q[s + 4] & 63;
    } else {
        *sc = (q[s + 4] & 0x0f) | ((q[s - 4] >> 6) << 4);
        *mn = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
    }
}

static void weights_q4_k(const uint8_t *const *wrow, int nr, int64_t b0, int64_t b1,
                         const int8_job *j, int8_t *wq, float *wd, int32_t *wcorr)
{
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    for (int r = 0; r < nr; r++)
        for (int64_t b = b0; b < b1; b += 8) {
            const uint8_t *blk = wrow[r] + (b / 8) * 144;
            uint16_t hd, hm;
            memcpy(&hd, blk, 2);
            memcpy(&hm, blk + 2, 2);
            const float d = _cvtsh_ss(hd), dmin = _cvtsh_ss(hm);
            for (int s = 0; s < 8; s++) {
                int sc, mn;
                q4k_scale_min(s, blk + 4, &sc, &mn);
                const int64_t t = r * KBB + (b - b0) + s;
                __m256i x = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * (s / 2)));
                __m256i q = (s & 1) ? _mm256_and_si256(_mm256_srli_epi16(x, 4), lo4)
                                    : _mm256_and_si256(x, lo4);
                _mm256_storeu_si256((__m256i *)(wq + t * 32), q);
                wd[t] = d * (float)sc;
                j->wm[(wd - j->wd) + t] = dmin * (float)mn;
                wcorr[t] = corr32(q);
            }
        }
}

static inline __attribute__((always_inline)) void
tile(const int nr, const int nv, const bool q4k, const int npass, const int8_t *wq,
     int64_t b0, int64_t b1,
     const uint32_t *ap, const float *ads, const float *asum, const float *wd,
     const float *wm, const int32_t *wcorr, float *ct, bool first)
{
    __m512 acc[NRW][NVMAX];
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++)
            acc[j][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(ct + j * MP + v * 16);
    /* One loop over (block, pass): a second pass is the residual plane of the same block,
     * with its own scale, so the loop body (and register use) is the single-pass one. */
    for (int64_t vb = b0 * npass; vb < b1 * npass; vb++) {
        const int64_t b = vb / npass, t = b - b0;
        {
            __m512i ia[NRW][NVMAX];
#pragma GCC unroll 16
            for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++) ia[j][v] = _mm512_set1_epi32(wcorr[j * KBB + t]);
            const uint32_t *a = ap + vb * 8 * MP;
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) {
                __m512i av[NVMAX];
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++)
                    av[v] = _mm512_load_si512((const __m512i *)(a + q * MP + 16 * v));
#pragma GCC unroll 16
                for (int j = 0; j < nr; j++) {
                    int32_t w4;
                    memcpy(&w4, wq + (j * KBB + t) * 32 + 4 * q, 4);
                    __m512i wb = _mm512_set1_epi32(w4);
#pragma GCC unroll 16
                    for (int v = 0; v < nv; v++) ia[j][v] = _mm512_dpbusd_epi32(ia[j][v], av[v], wb);
                }
            }
            __m512 da[NVMAX];
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++) da[v] = _mm512_load_ps(ads + vb * MP + 16 * v);
#pragma GCC unroll 16
            for (int j = 0; j < nr; j++) {
                __m512 dw = _mm512_set1_ps(wd[j * KBB + t]);
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++)
                    acc[j][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[j][v]),
                                                _mm512_mul_ps(da[v], dw), acc[j][v]);
            }
        }
        if (vb % npass != npass - 1) continue;
        if (q4k) {
            __m512 sa[NVMAX];
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++) sa[v] = _mm512_load_ps(asum + b * MP + 16 * v);
#pragma GCC unroll 16
            for (int j = 0; j < nr; j++) {
                __m512 mw = _mm512_set1_ps(wm[j * KBB + t]);
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++) acc[j][v] = _mm512_fnmadd_ps(sa[v], mw, acc[j][v]);
            }
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) _mm512_store_ps(ct + j * MP + v * 16, acc[j][v]);
}

#define NV_CASE(NR, NV)                                                                \
    case NV:                                                                           \
        if (q4k && npass == 2) tile(NR, NV, true, 2, wq, b0, b1, ap, ads, asum, wd, wm, wcorr, ct, first); \
        else if (q4k) tile(NR, NV, true, 1, wq, b0, b1, ap, ads, asum, wd, wm, wcorr, ct, first); \
        else if (npass == 2) tile(NR, NV, false, 2, wq, b0, b1, ap, ads, asum, wd, wm, wcorr, ct, first); \
        else tile(NR, NV, false, 1, wq, b0, b1, ap, ads, asum, wd, wm, wcorr, ct, first); \
        break;
#define TILE_CASE(NR)                                                                  \
    case NR:                                                                           \
        switch (nv) { NV_CASE(NR, 1) NV_CASE(NR, 2) }                                  \
        break;

static void run_tile(int nr, int nv, bool q4k, int npass, const int8_t *wq, int64_t b0, int64_t b1,
                     const uint32_t *ap, const float *ads, const float *asum, const float *wd,
                     const float *wm, const int32_t *wcorr, float *ct, bool first)
{
    switch (nr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
    }
}

static void compute(void *ctx, int ith, int nth)
{
    const int8_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t N = g->W->rows, KB = j->KB, np = (g->M + MP - 1) / MP;
    const int64_t ts = NRW * KBB; /* per-thread table entries */
    float *ctile = j->ctile + ith * j->cstride;
    int8_t *wq = j->wq + ith * ts * 32;
    float *wd = j->wd + ith * ts, *wm = j->wm ? j->wm + ith * ts : NULL;
    int32_t *wcorr = j->wcorr + ith * ts;
    const uint8_t *wrow[NRW];
    int64_t c0, c1;
    while (gemm_sched_next(j->sched, &c0, &c1)) {
        for (int64_t blk = c0; blk < c1; blk++) {
            int64_t n0 = blk * NRW, nr = N - n0 < NRW ? N - n0 : NRW;
            for (int64_t r = 0; r < nr; r++)
                wrow[r] = (const uint8_t *)g->W->data + (uint64_t)(n0 + r) * g->W->row_bytes;
            for (int64_t b0 = 0; b0 < KB; b0 += KBB) {
                int64_t b1 = KB - b0 < KBB ? KB : b0 + KBB;
                bool last = b1 == KB;
                if (j->q4k) weights_q4_k(wrow, (int)nr, b0, b1, j, wq, wd, wcorr);
                else weights_q8_0(wrow, (int)nr, b0, b1, j, wq, wd, wcorr);
                for (int64_t p = 0; p < np; p++) {
                    int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
                    float *ct = ctile + p * NRW * MP;
                    run_tile((int)nr, (int)((mr + 15) / 16), j->q4k, j->npass, wq, b0, b1,
                             j->apack + p * KB * j->npass * 8 * MP,
                             j->adscale + p * KB * j->npass * MP,
                             j->q4k ? j->asum + p * KB * MP : NULL, wd, wm, wcorr, ct, b0 == 0);
                    if (last) gemm_store_tile(g, ct, MP, m0, mr, n0, nr);
                }
            }
        }
    }
}

static bool run(vlmn_pool *p, const gemm_args *g, bool q4k, int npass)
{
    const int64_t K = g->W->cols, np = (g->M + MP - 1) / MP;
    const int nth = vlmn_pool_size(p);
    if (K % (q4k ? 256 : 32)) return false;
    int8_job j;
    memset(&j, 0, sizeof j);
    j.g = g;
    j.q4k = q4k;
    j.npass = npass;
    j.KB = K / 32;
    j.cstride = np * NRW * MP;
    const size_t ts = (size_t)NRW * KBB * (size_t)nth;
    size_t abytes = (size_t)(np * j.KB * npass * 8 * MP) * 4;
    size_t sbytes = (size_t)(np * j.KB * MP) * 4; /* one plane of per-block floats */
    size_t cbytes = sizeof(float) * (size_t)(j.cstride * nth);
    size_t total = abytes + sbytes * (size_t)(npass + (q4k ? 1 : 0)) + cbytes + ts * (32 + 4 + 4 + 4);
    char *ws = vlmn_pool_scratch(p, total);
    if (!ws) return false;
    j.apack = (uint32_t *)ws;
    ws += abytes;
    j.adscale = (float *)ws;
    ws += sbytes * (size_t)npass;
    if (q4k) {
        j.asum = (float *)ws;
        ws += sbytes;
    }
    j.ctile = (float *)ws;
    ws += cbytes;
    j.wq = (int8_t *)ws;
    ws += ts * 32;
    j.wd = (float *)ws;
    ws += ts * 4;
    j.wm = (float *)ws;
    ws += ts * 4;
    j.wcorr = (int32_t *)ws;
    vlmn_pool_run(p, pack_a, &j);
    gemm_sched sched;
    gemm_sched_init(&sched, (g->W->rows + NRW - 1) / NRW, nth);
    j.sched = &sched;
    vlmn_pool_run(p, compute, &j);
    return true;
}

/* FAST: two int8 passes (error ~1e-5 of the activations' block maximum); FASTEST: one
 * (ggml's q8_0 x q8_0 rounding, ~2x faster). */
bool gemm_q8_0_avx512(vlmn_pool *p, const gemm_args *g)
{
    return run(p, g, false, g->prec == VLMN_PREC_FASTEST ? 1 : 2);
}
bool gemm_q4_k_avx512(vlmn_pool *p, const gemm_args *g)
{
    return run(p, g, true, g->prec == VLMN_PREC_FASTEST ? 1 : 2);
}
