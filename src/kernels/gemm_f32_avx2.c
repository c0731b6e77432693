/* f32 GEMM with AVX2 FMA, for every weight type and precision when AVX-512 is not
 * there (activations stay f32: no rounding): rows of W are dequantised to f32 per block
 * of rows (F32 rows used in place; no repacked copy), A is packed once per call into
 * panels of 16 tokens, and the micro-kernel keeps a 6 (weights) x 16 (tokens) tile of
 * C in registers over all of K, so every C value is one f32 sum in k order, whatever the
 * thread count. */
#include "kernels/kernels_int.h"
#include "kernels/gemm_tiles.h"

#include <immintrin.h>
#include <string.h>

#define MP 16  /* tokens per A panel (2 ymm) */
#define NRW 6  /* weight rows per micro-tile */

typedef struct {
    const gemm_args *g;
    gemm_sched *sched;
    float *apack;  /* [panels][K][MP] */
    float *wbuf;   /* per thread: [NRW][K] */
    int64_t wstride; /* floats per thread in wbuf */
} f32_job;

static void pack_a(void *ctx, int ith, int nth)
{
    const f32_job *j = ctx;
    const gemm_args *g = j->g;
    const int64_t K = g->W->cols, np = (g->M + MP - 1) / MP;
    for (int64_t p = np * ith / nth; p < np * (ith + 1) / nth; p++) {
        float *dst = j->apack + p * K * MP;
        int64_t m0 = p * MP, mr = g->M - m0 < MP ? g->M - m0 : MP;
        for (int64_t i = 0; i < mr; i++) {
            const float *a = g->A + (m0 + i) * g->lda;
            for (int64_t k = 0; k < K; k++) dst[k * MP + i] = a[k];
        }
        for (int64_t i = mr; i < MP; i++)
            for (int64_t k = 0; k < K; k++) dst[k * MP + i] = 0.0f;
    }
}

static inline __attribute__((always_inline)) void
tile(const int nr, const int nv, const float *w, int64_t K, const float *ap, float *out)
{
    __m256 acc[NRW][2];
    #pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 16
        for (int v = 0; v < nv; v++) acc[j][v] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m256 a0 = _mm256_load_ps(ap + k * MP);
        __m256 a1 = nv > 1 ? _mm256_load_ps(ap + k * MP + 8) : a0;
        #pragma GCC unroll 16
        for (int j = 0; j < nr; j++) {
            __m256 b = _mm256_set1_ps(w[j * K + k]);
            acc[j][0] = _mm256_fmadd_ps(a0, b, acc[j][0]);
            if (nv > 1) acc[j][1] = _mm256_fmadd_ps(a1, b, acc[j][1]);
        }
    }
    #pragma GCC unroll 16
    for (int j = 0; j < nr; j++)
        #pragma GCC unroll 16
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(out + j * MP + v * 8, acc[j][v]);
}

#define TILE_CASE(NR)                                                                  \
    case NR:                                                                           \
        if (nv > 1) tile(NR, 2, w, K, ap, out);                                        \
        else tile(NR, 1, w, K, ap, out);                                               \
        break;

static void run_tile(int nr, int nv, const float *w, int64_t K, const float *ap, float *out)
{
    switch (nr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
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
        for (; i + 8 <= n; i += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
            __m256 f = f16 ? _mm256_cvtph_ps(h)
                           : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
            _mm256_storeu_ps(buf + i, f);
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
            run_tile((int)nr, mr > 8 ? 2 : 1, w, K, j->apack + p * K * MP, out);
            gemm_store_tile(g, out, MP, m0, mr, n0, nr);
        }
    }
}

bool gemm_f32_avx2(vlmn_pool *p, const gemm_args *g)
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
