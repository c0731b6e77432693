/* GEMM by integer dot products (AVX512_VNNI) for Q8_0 and Q4_K weights.
 * FASTEST: activations quantised per 32-block to int8 (d = max|x|/127, q = round(x/d), as
 * ggml's q8_0 x q8_0 dot), packed into panels of 32 tokens with 128 added, since
 * vpdpbusd multiplies unsigned by signed bytes; the int32 sums of each block start at
 * -128 * (sum of its weights), which undoes the +128 exactly. Per 32-block:
 * acc += float(isum) * (d_act * d_w) [- min_w * sum(a) for Q4_K, f32 sum of the activations].
 * FAST: activations quantised to int16 with one scale per token and window of KBW
 * 32-blocks (512 values: d = max|x|/32767 over the window) and multiplied by the weights
 * widened to int16 with vpdpwssd (signed x signed, half the MACs of vpdpbusd). The
 * activation scale factors out of the window's sum: per 32-block only
 * acc += float(isum) * d_w [- min_w * sum(a) / d], and C += d * acc once per window
 * (a per-32-block d cost one more vmulps per accumulator and block, ~5% of the time).
 * Error ~1e-5 of the window's maximum (see docs/kernels.md for rows with outliers).
 * For each block of 6 weight rows the weights' integer values (Q8_0 bytes, or Q4_K
 * nibbles) are copied to a per-thread buffer with their per-32 scale (and Q4_K min); a
 * 6 (weights) x 32 (tokens) tile is kept over a K block of KBB 32-blocks; RB row blocks
 * take turns on each token panel. Each C value is one f32 sum over blocks (and windows) in
 * k order, whatever the thread count. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"
#include "kernels/transpose_avx512.h"
#include "kernels/act_quant_avx512.h"
#include "tensor/kquant.h"

#include <immintrin.h>
#include <string.h>

#define NVMAX 2 /* token vectors (16 tokens each) per micro-tile */
#define NRW 6   /* weight rows per micro-tile */
#define MP (16 * NVMAX)
#define KBB 128 /* 32-blocks per K block (a multiple of 8: whole Q4_K super-blocks) */
/* Row blocks that take turns on each token panel, so that the panel's activations (256 KiB
 * per K block in FAST mode) are read from L3 once per RB row blocks and then from L2:
 * measured +2% (FAST) at the LLaVA shapes, more while another process loads the L3. */
#define RB 4
/* FAST: 32-blocks per activation-scale window (KBB is a multiple of it). Measured at
 * M=680, 2 threads, before the row-block grouping: 8 (256 values) no faster than a scale
 * per 32-block, 16 +4%, 128 +6%; with RB = 4, 32 and 128 no faster than 16. The error on
 * rows with a 1000x outlier grows with the window (docs/kernels.md). */
#define KBW VLMN_FAST_WINDOW

typedef struct {
    const gemm_args *g;
    gemm_sched *sched;
    bool q4k;
    bool f16;         /* F16 weights, rounded to int16 per 32-block (always wide) */
    bool wide;        /* int16 activations and weights (FAST) instead of int8 */
    float aqmax;      /* wide: largest activation integer (32767; 8191 for F16) */
    int64_t nds;      /* activation scales per token: KB, or the number of windows if wide */
    uint32_t *apack;  /* [panels][KB][QS][MP]: 4 unsigned bytes / 2 int16 each */
    float *adscale;   /* [panels][nds][MP] activation scales (per 32-block, or per window) */
    float *asum;      /* [panels][KB][MP] f32 sums of the activations (Q4_K only; if wide,
                       * divided by the activation scale) */
    float *ctile;     /* per thread: [RB][panels][NRW * MP] partial sums */
    uint8_t *wq;      /* per thread: [RB][NRW][KBB][32] weight values (int8, or int16 if wide) */
    float *wd;        /* per thread: [RB][NRW][KBB] weight scales */
    float *wm;        /* per thread: [RB][NRW][KBB] weight mins (Q4_K) */
    int32_t *wcorr;   /* per thread: [RB][NRW][KBB] -128 * sum of the block's weights */
    int64_t cstride, KB;
} int8_job;

/* FASTEST: one 32-block of one token as 8 u32 (int8 + 128) in the low 8 lanes; sets the
 * scale and the f32 sum. */
static inline __m512i quant_block(const float *a, float *d_out, float *sum_out)
{
    __m256i q = _mm256_xor_si256(q8_quant32(a, d_out), _mm256_set1_epi8((char)0x80));
    if (sum_out) *sum_out = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 16)));
    return _mm512_castsi256_si512(q);
}

/* Packing: for 16 tokens at a time, each token's next 16 u32 (two int8 blocks or one
 * int16 block) are built in a register, then the 16 x 16 u32 tile is transposed so that
 * each store writes one u32 index for 16 tokens.
 * FAST: one int16 scale per token and window of KBW 32-blocks (d = max|x| / 32767 over
 * the window), found in a first pass over the window; Q4_K's block sums are stored
 * divided by d, as they are subtracted inside the window's sum. */
static void pack_a16(const int8_job *j, int ith, int nth)
{
    const gemm_args *g = j->g;
    const int64_t KB = j->KB, np = (g->M + MP - 1) / MP;
    for (int64_t p = np * ith / nth; p < np * (ith + 1) / nth; p++) {
        uint32_t *dst = j->apack + p * KB * 16 * MP;
        float *ds = j->adscale + p * j->nds * MP;
        float *as = j->q4k ? j->asum + p * KB * MP : NULL;
        int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
        for (int64_t grp = 0; grp < MP / 16; grp++)
            for (int64_t w0 = 0; w0 < KB; w0 += KBW) {
                const int64_t w1 = vlmn_fast_window_end(w0, KB);
                float inv[16];
                for (int i = 0; i < 16; i++) {
                    const int64_t t = grp * 16 + i;
                    float amax = 0.0f;
                    if (t < mr) amax = act_absmax(g->A + (m0 + t) * g->lda + 32 * w0, 32 * (w1 - w0));
                    ds[(w0 / KBW) * MP + t] = amax / j->aqmax;
                    inv[i] = amax > 0 ? j->aqmax / amax : 0.0f;
                }
                for (int64_t b = w0; b < w1; b++) {
                    __m512i r[16];
                    for (int i = 0; i < 16; i++) {
                        const int64_t t = grp * 16 + i;
                        if (t >= mr) {
                            if (as) as[b * MP + t] = 0.0f;
                            r[i] = _mm512_setzero_si512();
                            continue;
                        }
                        const float *a = g->A + (m0 + t) * g->lda + 32 * b;
                        if (as)
                            as[b * MP + t] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 16))) * inv[i];
                        r[i] = act_quant16(a, inv[i]);
                    }
                    transpose16_avx512(r);
                    for (int q = 0; q < 16; q++)
                        _mm512_store_si512((__m512i *)(dst + (b * 16 + q) * MP + grp * 16), r[q]);
                }
            }
    }
}

static void pack_a(void *ctx, int ith, int nth)
{
    const int8_job *j = ctx;
    if (j->wide) {
        pack_a16(j, ith, nth);
        return;
    }
    const gemm_args *g = j->g;
    const int64_t KB = j->KB, np = (g->M + MP - 1) / MP;
    const int QS = 8;  /* u32 per token per block */
    const int BPC = 2; /* blocks per 16 u32 */
    for (int64_t p = np * ith / nth; p < np * (ith + 1) / nth; p++) {
        uint32_t *dst = j->apack + p * KB * QS * MP;
        float *ds = j->adscale + p * KB * MP;
        float *as = j->q4k ? j->asum + p * KB * MP : NULL;
        int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
        for (int64_t grp = 0; grp < MP / 16; grp++)
            for (int64_t b = 0; b < KB; b += BPC) {
                const int nb = KB - b < BPC ? (int)(KB - b) : BPC;
                __m512i r[16];
                for (int i = 0; i < 16; i++) {
                    const int64_t t = grp * 16 + i;
                    if (t >= mr) {
                        for (int c = 0; c < nb; c++) {
                            ds[(b + c) * MP + t] = 0.0f;
                            if (as) as[(b + c) * MP + t] = 0.0f;
                        }
                        r[i] = _mm512_set1_epi8((char)0x80);
                        continue;
                    }
                    const float *a = g->A + (m0 + t) * g->lda + 32 * b;
                    float *sp = as ? &as[b * MP + t] : NULL;
                    r[i] = quant_block(a, &ds[b * MP + t], sp);
                    if (nb == 2) {
                        __m512i hi = quant_block(a + 32, &ds[(b + 1) * MP + t],
                                                 as ? &as[(b + 1) * MP + t] : NULL);
                        r[i] = _mm512_inserti64x4(r[i], _mm512_castsi512_si256(hi), 1);
                    }
                }
                transpose16_avx512(r);
                for (int q = 0; q < nb * QS; q++)
                    _mm512_store_si512((__m512i *)(dst + (b * QS + q) * MP + grp * 16), r[q]);
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

/* Weight tables of rows wrow[0..nr) for 32-blocks [b0, b1), at index r * KBB + b - b0.
 * Store a block's 32 weight values at entry t: as bytes, or widened to int16 with a
 * zero bias correction (vpdpwssd is signed x signed). */
static inline void put_w(const int8_job *j, uint8_t *wq, int32_t *wcorr, int64_t t, __m256i q,
                         bool is_unsigned)
{
    if (j->wide) {
        __m512i w = is_unsigned ? _mm512_cvtepu8_epi16(q) : _mm512_cvtepi8_epi16(q);
        _mm512_storeu_si512((__m512i *)(wq + t * 64), w);
        wcorr[t] = 0;
    } else {
        _mm256_storeu_si256((__m256i *)(wq + t * 32), q);
        wcorr[t] = corr32(q);
    }
}

static void weights_q8_0(const uint8_t *const *wrow, int nr, int64_t b0, int64_t b1,
                         const int8_job *j, uint8_t *wq, float *wd, float *wm, int32_t *wcorr)
{
    for (int r = 0; r < nr; r++)
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *blk = wrow[r] + b * 34; /* f16 d, 32 x int8 */
            uint16_t h;
            memcpy(&h, blk, 2);
            const int64_t t = r * KBB + (b - b0);
            wd[t] = _cvtsh_ss(h);
            put_w(j, wq, wcorr, t, _mm256_loadu_si256((const __m256i *)(blk + 2)), false);
        }
}

/* F16 rows (64 bytes per 32-block) rounded to int16 with a scale per 32-block:
 * d = max|w| / 8191, q = round(w / d). With activations also in [-8191, 8191], a
 * block's 32 products sum to at most 32 * 8191^2 < 2^31 (vpdpwssd does not saturate).
 * 14 bits against the block's largest weight: error ~3e-5 of it (f16 keeps 11). */
static void weights_f16(const uint8_t *const *wrow, int nr, int64_t b0, int64_t b1,
                        const int8_job *j, uint8_t *wq, float *wd, float *wm, int32_t *wcorr)
{
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int r = 0; r < nr; r++)
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *blk = wrow[r] + b * 64;
            __m512 x0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
            __m512 x1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(x0, absmask), _mm512_and_ps(x1, absmask)));
            const int64_t t = r * KBB + (b - b0);
            wd[t] = amax / 8191.0f;
            __m512 vid = _mm512_set1_ps(amax > 0 ? 8191.0f / amax : 0.0f);
            __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));
            __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
            _mm512_storeu_si512((__m512i *)(wq + t * 64),
                                _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(i0)),
                                                   _mm512_cvtepi32_epi16(i1), 1));
            wcorr[t] = 0;
        }
}

/* Q4_K super-block (256 values, 144 bytes): f16 d, f16 dmin, 12 bytes of 6-bit
 * scales/mins, 128 bytes of nibbles; 32-byte group g holds sub-blocks 2g (low nibbles)
 * and 2g+1 (high). x = d*sc*q - dmin*m (as ggml's dequantize_row_q4_K). */
static void weights_q4_k(const uint8_t *const *wrow, int nr, int64_t b0, int64_t b1,
                         const int8_job *j, uint8_t *wq, float *wd, float *wm, int32_t *wcorr)
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
                vlmn_kq_scale_min(s, blk + 4, &sc, &mn);
                const int64_t t = r * KBB + (b - b0) + s;
                __m256i x = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * (s / 2)));
                __m256i q = (s & 1) ? _mm256_and_si256(_mm256_srli_epi16(x, 4), lo4)
                                    : _mm256_and_si256(x, lo4);
                put_w(j, wq, wcorr, t, q, true);
                wd[t] = d * (float)sc;
                wm[t] = dmin * (float)mn;
            }
        }
}

/* FASTEST: int8 activations with a scale per 32-block; the f32 sums of the 6 x 32 tile
 * stay in registers over the K block. */
static inline __attribute__((always_inline)) void
tile(const int nr, const int nv, const bool q4k, const uint8_t *wq, int64_t b0, int64_t b1,
     const uint32_t *ap, const float *ads, const float *asum, const float *wd,
     const float *wm, const int32_t *wcorr, float *ct, bool first)
{
    __m512 acc[NRW][NVMAX];
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++)
            acc[j][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(ct + j * MP + v * 16);
    for (int64_t b = b0; b < b1; b++) {
        const int64_t t = b - b0;
        __m512i ia[NRW][NVMAX];
#pragma GCC unroll 16
        for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++) ia[j][v] = _mm512_set1_epi32(wcorr[j * KBB + t]);
        const uint32_t *a = ap + b * 8 * MP;
#pragma GCC unroll 16
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
        for (int v = 0; v < nv; v++) da[v] = _mm512_load_ps(ads + b * MP + 16 * v);
#pragma GCC unroll 16
        for (int j = 0; j < nr; j++) {
            __m512 dw = _mm512_set1_ps(wd[j * KBB + t]);
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++)
                acc[j][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[j][v]), _mm512_mul_ps(da[v], dw),
                                            acc[j][v]);
        }
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

/* FAST: int16 activations with one scale per token over the K block [b0, b1), so per
 * 32-block only the weight scale is applied (cvt + fma; a per-block activation scale cost
 * a vmulps per accumulator as well, ~5% of the loop, which competes with vpdpwssd for the
 * FP pipes), and the activation scale once at the end: C += da * sum_b dw_b * isum_b
 * [- mw_b * sum_b(a) / da]. The first k step of a block is a vpmaddwd (no zeroing). */
static inline __attribute__((always_inline)) void
tile16(const int nr, const int nv, const bool q4k, const uint8_t *wq, int64_t b0, int64_t b1,
       const uint32_t *ap, const float *ads, const float *asum, const float *wd,
       const float *wm, float *ct, bool first)
{
    for (int64_t w0 = b0; w0 < b1; w0 += KBW) {
        const int64_t w1 = vlmn_fast_window_end(w0, b1);
        __m512 acc[NRW][NVMAX];
#pragma GCC unroll 16
        for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++) acc[j][v] = _mm512_setzero_ps();
        for (int64_t b = w0; b < w1; b++) {
            const int64_t t = b - b0;
            __m512i ia[NRW][NVMAX];
            const uint32_t *a = ap + b * 16 * MP;
#pragma GCC unroll 16
            for (int q = 0; q < 16; q++) {
                __m512i av[NVMAX];
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++)
                    av[v] = _mm512_load_si512((const __m512i *)(a + q * MP + 16 * v));
#pragma GCC unroll 16
                for (int j = 0; j < nr; j++) {
                    int32_t w4;
                    memcpy(&w4, wq + (j * KBB + t) * 64 + 4 * q, 4);
                    __m512i wb = _mm512_set1_epi32(w4);
#pragma GCC unroll 16
                    for (int v = 0; v < nv; v++)
                        ia[j][v] = q == 0 ? _mm512_madd_epi16(av[v], wb)
                                          : _mm512_dpwssd_epi32(ia[j][v], av[v], wb);
                }
            }
            __m512 sa[NVMAX];
            if (q4k)
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++) sa[v] = _mm512_load_ps(asum + b * MP + 16 * v);
#pragma GCC unroll 16
            for (int j = 0; j < nr; j++) {
                __m512 dw = _mm512_set1_ps(wd[j * KBB + t]);
                __m512 mw = q4k ? _mm512_set1_ps(wm[j * KBB + t]) : dw;
#pragma GCC unroll 16
                for (int v = 0; v < nv; v++) {
                    acc[j][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[j][v]), dw, acc[j][v]);
                    if (q4k) acc[j][v] = _mm512_fnmadd_ps(sa[v], mw, acc[j][v]);
                }
            }
        }
        const bool init = first && w0 == b0;
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) {
            const __m512 da = _mm512_load_ps(ads + (w0 / KBW) * MP + 16 * v);
#pragma GCC unroll 16
            for (int j = 0; j < nr; j++) {
                float *c = ct + j * MP + v * 16;
                _mm512_store_ps(c, init ? _mm512_mul_ps(acc[j][v], da)
                                        : _mm512_fmadd_ps(acc[j][v], da, _mm512_load_ps(c)));
            }
        }
    }
}

#define NV_CASE(NR, NV)                                                                \
    case NV:                                                                           \
        if (q4k && wide) tile16(NR, NV, true, wq, b0, b1, ap, ads, asum, wd, wm, ct, first); \
        else if (q4k) tile(NR, NV, true, wq, b0, b1, ap, ads, asum, wd, wm, wcorr, ct, first); \
        else if (wide) tile16(NR, NV, false, wq, b0, b1, ap, ads, asum, wd, wm, ct, first); \
        else tile(NR, NV, false, wq, b0, b1, ap, ads, asum, wd, wm, wcorr, ct, first); \
        break;
#define TILE_CASE(NR)                                                                  \
    case NR:                                                                           \
        switch (nv) { NV_CASE(NR, 1) NV_CASE(NR, 2) }                                  \
        break;

static void run_tile(int nr, int nv, bool q4k, bool wide, const uint8_t *wq, int64_t b0, int64_t b1,
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
    const int64_t ts = NRW * KBB; /* table entries per row block */
    float *ctile = j->ctile + ith * j->cstride;
    uint8_t *wq = j->wq + ith * RB * ts * 64;
    float *wd = j->wd + ith * RB * ts, *wm = j->wm + ith * RB * ts;
    int32_t *wcorr = j->wcorr + ith * RB * ts;
    const uint8_t *wrow[NRW];
    int64_t c0, c1;
    while (gemm_sched_next(j->sched, &c0, &c1)) {
        for (int64_t g0 = c0; g0 < c1; g0 += RB) {
            const int64_t g1 = c1 - g0 < RB ? c1 : g0 + RB;
            for (int64_t b0 = 0; b0 < KB; b0 += KBB) {
                int64_t b1 = KB - b0 < KBB ? KB : b0 + KBB;
                bool last = b1 == KB;
                for (int64_t blk = g0; blk < g1; blk++) {
                    const int64_t n0 = blk * NRW, nr = N - n0 < NRW ? N - n0 : NRW, t = blk - g0;
                    for (int64_t r = 0; r < nr; r++)
                        wrow[r] = (const uint8_t *)g->W->data + (uint64_t)(n0 + r) * g->W->row_bytes;
                    if (j->q4k)
                        weights_q4_k(wrow, (int)nr, b0, b1, j, wq + t * ts * 64, wd + t * ts,
                                     wm + t * ts, wcorr + t * ts);
                    else if (j->f16)
                        weights_f16(wrow, (int)nr, b0, b1, j, wq + t * ts * 64, wd + t * ts,
                                    wm + t * ts, wcorr + t * ts);
                    else
                        weights_q8_0(wrow, (int)nr, b0, b1, j, wq + t * ts * 64, wd + t * ts,
                                     wm + t * ts, wcorr + t * ts);
                }
                for (int64_t p = 0; p < np; p++) {
                    int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
                    for (int64_t blk = g0; blk < g1; blk++) {
                        const int64_t n0 = blk * NRW, nr = N - n0 < NRW ? N - n0 : NRW, t = blk - g0;
                        float *ct = ctile + (t * np + p) * NRW * MP;
                        run_tile((int)nr, (int)((mr + 15) / 16), j->q4k, j->wide, wq + t * ts * 64,
                                 b0, b1, j->apack + p * KB * (j->wide ? 16 : 8) * MP,
                                 j->adscale + p * j->nds * MP,
                                 j->q4k ? j->asum + p * KB * MP : NULL, wd + t * ts, wm + t * ts,
                                 wcorr + t * ts, ct, b0 == 0);
                        if (last) gemm_store_tile(g, ct, MP, m0, mr, n0, nr);
                    }
                }
            }
        }
    }
}

static bool run(vlmn_pool *p, const gemm_args *g, bool q4k, bool f16, bool wide)
{
    const int64_t K = g->W->cols, np = (g->M + MP - 1) / MP;
    const int nth = vlmn_pool_size(p);
    if (K % (q4k ? 256 : 32)) return false;
    int8_job j;
    memset(&j, 0, sizeof j);
    j.g = g;
    j.q4k = q4k;
    j.f16 = f16;
    j.wide = wide;
    j.aqmax = f16 ? 8191.0f : 32767.0f;
    j.KB = K / 32;
    j.nds = wide ? vlmn_fast_windows(j.KB) : j.KB;
    j.cstride = RB * np * NRW * MP;
    const size_t ts = (size_t)NRW * KBB * RB * (size_t)nth;
    size_t abytes = (size_t)(np * j.KB * (wide ? 16 : 8) * MP) * 4;
    size_t sbytes = (size_t)(np * j.KB * MP) * 4; /* one plane of per-block floats */
    size_t dbytes = (size_t)(np * j.nds * MP) * 4;
    size_t cbytes = sizeof(float) * (size_t)(j.cstride * nth);
    size_t total = abytes + dbytes + sbytes * (size_t)(q4k ? 1 : 0) + cbytes + ts * (64 + 4 + 4 + 4);
    char *ws = vlmn_pool_scratch(p, total);
    if (!ws) return false;
    j.apack = (uint32_t *)ws;
    ws += abytes;
    j.adscale = (float *)ws;
    ws += dbytes;
    if (q4k) {
        j.asum = (float *)ws;
        ws += sbytes;
    }
    j.ctile = (float *)ws;
    ws += cbytes;
    j.wq = (uint8_t *)ws;
    ws += ts * 64;
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

static bool pass_q8_0(vlmn_pool *p, const gemm_args *g) { return run(p, g, false, false, g->prec != VLMN_PREC_FASTEST); }
static bool pass_q4_k(vlmn_pool *p, const gemm_args *g) { return run(p, g, true, false, g->prec != VLMN_PREC_FASTEST); }
static bool pass_f16(vlmn_pool *p, const gemm_args *g) { return run(p, g, false, true, true); }

/* Packed activation bytes per token (1 per value for int8, 2 for int16) for the cache
 * budget of gemm_by_passes (every RB row blocks stream the whole packed A). */
static int64_t a_row_bytes(const gemm_args *g, bool wide) { return g->W->cols * (wide ? 2 : 1); }

/* FAST: int16 activations (error ~1e-5 of the block maximum); FASTEST: int8 (ggml's
 * q8_0 x q8_0 rounding, ~2x faster). */
bool gemm_q8_0_avx512(vlmn_pool *p, const gemm_args *g)
{
    return gemm_by_passes(p, g, a_row_bytes(g, g->prec != VLMN_PREC_FASTEST), MP, pass_q8_0);
}
bool gemm_q4_k_avx512(vlmn_pool *p, const gemm_args *g)
{
    return gemm_by_passes(p, g, a_row_bytes(g, g->prec != VLMN_PREC_FASTEST), MP, pass_q4_k);
}
/* F16 (FAST and FASTEST): weights and activations as 14-bit integers, vpdpwssd. */
bool gemm_f16_avx512(vlmn_pool *p, const gemm_args *g)
{
    return gemm_by_passes(p, g, a_row_bytes(g, true), MP, pass_f16);
}
