/* AVX-512 passes of the recorder (see recorder_int.h): 16 neurons per vector. The
 * stats pass keeps max/min/double sums per lane in row order, exactly as the plain
 * loop, computes the 16 histogram bins from the float bits in registers and leaves
 * only the increments scalar. The top-8 pass keeps the 8 largest values of 16 neurons
 * in 8 registers per modality; most rows are rejected by one compare with the 8th. */
#include "record/recorder_int.h"

#include <immintrin.h>
#include <math.h>

#define HSTRIDE ((int)(sizeof(vlmn_neuron_stats) / sizeof(uint32_t)))
_Static_assert(sizeof(vlmn_neuron_stats) % sizeof(uint32_t) == 0, "stats stride in uint32");

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/* hist_bin() of recorder.c for 16 values at once. */
static inline __m512i bins16(__m512 v)
{
    const __m512i u = _mm512_castps_si512(v);
    const __m512i e = _mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 23), _mm512_set1_epi32(0xff)),
                                       _mm512_set1_epi32(127));
    __m512i pos = _mm512_add_epi32(e, _mm512_set1_epi32(24));
    pos = _mm512_max_epi32(_mm512_min_epi32(pos, _mm512_set1_epi32(31)), _mm512_set1_epi32(16));
    /* a power of two (zero mantissa) on the negative side belongs to the bin above */
    __mmask16 pow2 = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7fffff));
    __m512i e2 = _mm512_mask_sub_epi32(e, pow2, e, _mm512_set1_epi32(1));
    __m512i neg = _mm512_sub_epi32(_mm512_set1_epi32(7), e2);
    neg = _mm512_max_epi32(_mm512_min_epi32(neg, _mm512_set1_epi32(15)), _mm512_setzero_si512());
    __m512i b = _mm512_mask_blend_epi32(_mm512_movepi32_mask(u), pos, neg);
    __mmask16 zero = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7fffffff));
    return _mm512_mask_blend_epi32(zero, b, _mm512_set1_epi32(16));
}

void rec_stats_avx512(const float *acts, int64_t F, const int32_t *rows, int64_t n_rows, int64_t j0,
                      int64_t j1, float *smax, float *smin, double *ssum, vlmn_neuron_stats *st)
{
    const __m512i laneoff = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(HSTRIDE));
    int32_t idx[16] __attribute__((aligned(64)));
    for (int64_t q = 0; q < n_rows; q++) {
        const float *x = acts + (int64_t)rows[q] * F;
        for (int64_t j = j0; j < j1; j += 16) {
            const int64_t nl = j1 - j < 16 ? j1 - j : 16;
            const __mmask16 m = lanes(nl);
            const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
            /* v > max ? v : max (NaN never replaces), as the plain loop */
            _mm512_mask_storeu_ps(smax + j, m, _mm512_max_ps(v, _mm512_maskz_loadu_ps(m, smax + j)));
            _mm512_mask_storeu_ps(smin + j, m, _mm512_min_ps(v, _mm512_maskz_loadu_ps(m, smin + j)));
            const __mmask8 mlo = (__mmask8)m, mhi = (__mmask8)(m >> 8);
            __m512d s0 = _mm512_maskz_loadu_pd(mlo, ssum + j), s1 = _mm512_maskz_loadu_pd(mhi, ssum + j + 8);
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
            _mm512_mask_storeu_pd(ssum + j, mlo, s0);
            _mm512_mask_storeu_pd(ssum + j + 8, mhi, s1);
            _mm512_store_si512((__m512i *)idx, _mm512_add_epi32(bins16(v), laneoff));
            uint32_t *h = st[j].hist;
            if (nl == 16) {
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++) h[idx[i]]++;
            } else {
                for (int i = 0; i < nl; i++) h[idx[i]]++;
            }
        }
    }
}

/* Insert x (-INFINITY in lanes that do not enter) into the descending t[0..7] as the
 * plain insertion does: x goes before the first value it is greater than and the rest
 * shift down one place, bits unchanged (so +0 and -0 keep their order). t is sorted, so
 * the masks "x > t[i]" are false then true along i. */
static inline __attribute__((always_inline)) void insert8(__m512 t[VLMN_TOP_TOKENS], __m512 x)
{
    __mmask16 g[VLMN_TOP_TOKENS];
#pragma GCC unroll 8
    for (int i = 0; i < VLMN_TOP_TOKENS; i++) g[i] = _mm512_cmp_ps_mask(x, t[i], _CMP_GT_OQ);
#pragma GCC unroll 8
    for (int i = VLMN_TOP_TOKENS - 1; i > 0; i--)
        t[i] = _mm512_mask_blend_ps(g[i], t[i], _mm512_mask_blend_ps(g[i - 1], x, t[i - 1]));
    t[0] = _mm512_mask_blend_ps(g[0], t[0], x);
}

void rec_top8_avx512(const float *acts, int64_t F, const int32_t *rows, const uint8_t *is_img,
                     int64_t n_rows, int64_t j, int nl, float out[2][VLMN_TOP_TOKENS][16])
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __mmask16 m = lanes(nl);
    __m512 ti[VLMN_TOP_TOKENS], tt[VLMN_TOP_TOKENS];
    for (int i = 0; i < VLMN_TOP_TOKENS; i++) ti[i] = tt[i] = ninf;
    for (int64_t q = 0; q < n_rows; q++) {
        /* lanes past nl read -inf and never enter */
        const __m512 v = _mm512_mask_loadu_ps(ninf, m, acts + (int64_t)rows[q] * F + j);
        if (is_img[q]) {
            const __mmask16 g = _mm512_cmp_ps_mask(v, ti[VLMN_TOP_TOKENS - 1], _CMP_GT_OQ);
            if (g) insert8(ti, _mm512_mask_blend_ps(g, ninf, v));
        } else {
            const __mmask16 g = _mm512_cmp_ps_mask(v, tt[VLMN_TOP_TOKENS - 1], _CMP_GT_OQ);
            if (g) insert8(tt, _mm512_mask_blend_ps(g, ninf, v));
        }
    }
    for (int i = 0; i < VLMN_TOP_TOKENS; i++) {
        _mm512_storeu_ps(out[0][i], ti[i]);
        _mm512_storeu_ps(out[1][i], tt[i]);
    }
}
