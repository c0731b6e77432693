/* BF16-weight GEMM with AVX512_BF16 (vdpbf16ps), FAST/FASTEST precision: activations are
 * rounded to bf16 (round to nearest even) while being packed into panels of 48 tokens
 * x 2 k; weights are read in place from their GGUF rows (no repacked copy), each
 * k-pair broadcast against the token panel. An 8 (weights) x 48 (tokens) tile of C
 * stays in registers over a block of K; partial tiles are parked in a per-thread
 * buffer between K blocks, so each C value is one f32 sum in k order. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"
#include "kernels/transpose_avx512.h"

#include <immintrin.h>
#include <string.h>

/* Tile shape, measured on Zen 4 (CPU time, 1 thread, 672x4092x4096): 8 x 48 reaches
 * ~90% of the vdpbf16ps peak, 12 x 32 ~78%, 6 x 64 ~89%. Fewer broadcasts per dot
 * product is what counts. */
#ifndef NVMAX
#define NVMAX 3  /* token vectors (16 tokens each) per micro-tile */
#define NRW 8    /* weight rows per micro-tile */
#endif
#define MP (16 * NVMAX) /* tokens per A panel */
#ifndef KPB
#define KPB 1024 /* k-pairs per K block: 8 W rows x 4 KiB in L1/L2, A sub-panel 192 KiB */
#endif

typedef struct {
    const gemm_args *g;
    gemm_sched *sched;
    uint32_t *apack;  /* [panels][KP][MP] bf16 pairs */
    float *ctile;     /* per thread: [panels][NRW * MP] partial sums */
    int64_t cstride;  /* floats per thread in ctile */
    int64_t KP;
} bf16_job;

/* Packing: 16 tokens x 32 k at a time are rounded to bf16 pairs (16 u32 per token) and
 * transposed in registers into 16 k-pair vectors of 16 tokens. */
static void pack_a(void *ctx, int ith, int nth)
{
    const bf16_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t K = g->W->cols, KP = j->KP, np = (g->M + MP - 1) / MP;
    for (int64_t p = np * ith / nth; p < np * (ith + 1) / nth; p++) {
        uint32_t *dst = j->apack + p * KP * MP;
        int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
        for (int64_t grp = 0; grp < MP / 16; grp++)
            for (int64_t k = 0; k < K; k += 32) {
                int64_t n = K - k < 32 ? K - k : 32;
                __mmask16 lo = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
                __mmask16 hi = (__mmask16)(n <= 16 ? 0 : n >= 32 ? 0xffff : (1u << (n - 16)) - 1);
                __m512i r[16];
                for (int i = 0; i < 16; i++) {
                    int64_t t = grp * 16 + i;
                    if (t >= mr) {
                        r[i] = _mm512_setzero_si512();
                        continue;
                    }
                    const float *a = g->A + (m0 + t) * g->lda + k;
                    __m512 x0 = _mm512_maskz_loadu_ps(lo, a);
                    __m512 x1 = _mm512_maskz_loadu_ps(hi, a + 16);
                    r[i] = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
                }
                transpose16_avx512(r);
                int64_t npair = (n + 1) / 2;
                for (int64_t q = 0; q < npair; q++)
                    _mm512_store_si512((__m512i *)(dst + (k / 2 + q) * MP + grp * 16), r[q]);
            }
    }
}

/* acc[j][v] += A pairs (tokens 16v..16v+15) . W row j pair, for k-pairs [kp0, kp1). */
static inline __attribute__((always_inline)) void
tile(const int nr, const int nv, const uint16_t *const *wrow, int64_t kp0, int64_t kp1,
     bool k_odd_tail, const uint32_t *ap, float *ct, bool first)
{
    __m512 acc[NRW][NVMAX];
    __m512bh a[NVMAX];
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++)
            acc[j][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(ct + j * MP + v * 16);
    for (int64_t kp = kp0; kp < kp1; kp++) {
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++)
            a[v] = (__m512bh)_mm512_load_si512((const __m512i *)(ap + kp * MP + 16 * v));
#pragma GCC unroll 16
        for (int j = 0; j < nr; j++) {
            uint32_t wp;
            memcpy(&wp, wrow[j] + 2 * kp, 4);
            __m512bh b = (__m512bh)_mm512_set1_epi32((int)wp);
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++) acc[j][v] = _mm512_dpbf16_ps(acc[j][v], a[v], b);
        }
    }
    if (k_odd_tail) { /* last k of an odd K: pair (w, 0); A's pad is 0 too */
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++)
            a[v] = (__m512bh)_mm512_load_si512((const __m512i *)(ap + kp1 * MP + 16 * v));
#pragma GCC unroll 16
        for (int j = 0; j < nr; j++) {
            __m512bh b = (__m512bh)_mm512_set1_epi32((int)wrow[j][2 * kp1]);
#pragma GCC unroll 16
            for (int v = 0; v < nv; v++) acc[j][v] = _mm512_dpbf16_ps(acc[j][v], a[v], b);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) _mm512_store_ps(ct + j * MP + v * 16, acc[j][v]);
}

/* Instantiate the tile for every (rows, token vectors) shape so that each is fully
 * unrolled with its accumulators in registers. */
#define NV_CASE(NR, NV)                                                                \
    case NV: tile(NR, NV, wrow, kp0, kp1, odd, ap, ct, first); break;
#if NVMAX == 2
#define NV_CASES(NR) NV_CASE(NR, 1) NV_CASE(NR, 2)
#elif NVMAX == 3
#define NV_CASES(NR) NV_CASE(NR, 1) NV_CASE(NR, 2) NV_CASE(NR, 3)
#else
#define NV_CASES(NR) NV_CASE(NR, 1) NV_CASE(NR, 2) NV_CASE(NR, 3) NV_CASE(NR, 4)
#endif
#define TILE_CASE(NR)                                                                  \
    case NR:                                                                           \
        switch (nv) { NV_CASES(NR) }                                                   \
        break;

static void run_tile(int nr, int nv, const uint16_t *const *wrow, int64_t kp0, int64_t kp1,
                     bool odd, const uint32_t *ap, float *ct, bool first)
{
    switch (nr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
#if NRW > 6
        TILE_CASE(7) TILE_CASE(8)
#endif
#if NRW > 8
        TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
#endif
    }
}

static void compute(void *ctx, int ith, int nth)
{
    const bf16_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t N = g->W->rows, K = g->W->cols, KP = j->KP, np = (g->M + MP - 1) / MP;
    const int64_t KFULL = K / 2; /* complete k-pairs in W rows */
    float *ctile = j->ctile + ith * j->cstride;
    const uint16_t *wrow[NRW];
    int64_t c0, c1;
    while (gemm_sched_next(j->sched, &c0, &c1))
    for (int64_t b = c0; b < c1; b++) {
        int64_t n0 = b * NRW, nr = N - n0 < NRW ? N - n0 : NRW;
        for (int64_t r = 0; r < nr; r++)
            wrow[r] = (const uint16_t *)((const uint8_t *)g->W->data + (uint64_t)(n0 + r) * g->W->row_bytes);
        for (int64_t kp0 = 0; kp0 < KP; kp0 += KPB) {
            int64_t kp1 = KP - kp0 < KPB ? KP : kp0 + KPB;
            bool last = kp1 == KP;
            bool odd = last && KFULL < KP;
            int64_t kfull1 = odd ? KFULL : kp1;
            for (int64_t p = 0; p < np; p++) {
                int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
                float *ct = ctile + p * NRW * MP;
                run_tile((int)nr, (int)((mr + 15) / 16), wrow, kp0, kfull1, odd,
                         j->apack + p * KP * MP, ct, kp0 == 0);
                if (last) gemm_store_tile(g, ct, MP, m0, mr, n0, nr);
            }
        }
    }
}

static bool bf16_pass(vlmn_pool *p, const gemm_args *g)
{
    const int64_t K = g->W->cols, np = (g->M + MP - 1) / MP;
    const int nth = vlmn_pool_size(p);
    bf16_job j = {g, NULL, NULL, NULL, np * NRW * MP, (K + 1) / 2};
    size_t abytes = sizeof(uint32_t) * (size_t)(np * j.KP * MP);
    size_t cbytes = sizeof(float) * (size_t)(j.cstride * nth);
    char *ws = vlmn_pool_scratch(p, abytes + cbytes);
    if (!ws) return false;
    j.apack = (uint32_t *)ws;
    j.ctile = (float *)(ws + abytes);
    vlmn_pool_run(p, pack_a, &j);
    gemm_sched sched;
    gemm_sched_init(&sched, (g->W->rows + NRW - 1) / NRW, nth);
    j.sched = &sched;
    vlmn_pool_run(p, compute, &j);
    return true;
}

/* In passes of token rows whose packed A (4 bytes per k-pair) fits the cache budget: at
 * 1400 tokens x K = 14336 (InternLM2's ffn_down) the 40 MB of A left the 32 MiB L3 and the
 * kernel ran at 43% of the vdpbf16ps peak instead of ~84%. */
bool gemm_bf16_avx512(vlmn_pool *p, const gemm_args *g)
{
    return gemm_by_passes(p, g, (g->W->cols + 1) / 2 * 4, MP, bf16_pass);
}
