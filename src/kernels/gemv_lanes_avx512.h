/* The "tokens in the lanes" layout of the AVX-512 decode kernels (gemv_q8_0_avx512.c,
 * gemv_bf16_avx512.c): M <= 8 tokens are padded to MP = 2, 4 or 8 and each of the 16
 * 32-bit lanes of a dot instruction belongs to one token (lane / P) and one of its
 * P = 16 / MP parts of the k range (lane % P). One instruction multiplies 4P consecutive
 * weight bytes of one row, broadcast to every token, by a register of the matching
 * activation bytes of all tokens (4P bytes per token, token t at byte 4P t), built once
 * per call. Include only from files built with the AVX-512 flags. */
#ifndef VLMN_KERNELS_GEMV_LANES_AVX512_H
#define VLMN_KERNELS_GEMV_LANES_AVX512_H

#include "kernels/kernels_int.h"

#include <immintrin.h>
#include <string.h>

#define LANES_NR 4  /* weight rows per register tile */
#define LANES_RB 16 /* weight rows per scheduled block (a multiple of LANES_NR) */

/* tokens padded: 2, 4 or 8 */
static inline int lanes_mp(int64_t M) { return M <= 2 ? 2 : M <= 4 ? 4 : 8; }

/* The 4P = 64 / MP bytes at q, repeated MP times. */
static inline __attribute__((always_inline)) __m512i lanes_bcast(const int MP, const uint8_t *q)
{
    if (MP == 2) return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)q));
    if (MP == 4) return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)q));
    long long v;
    memcpy(&v, q, 8);
    return _mm512_set1_epi64(v);
}

/* The 32 / MP int8 at q widened to int16, repeated MP times (the int16 form of
 * lanes_bcast: 2P weights per lane pair). */
static inline __attribute__((always_inline)) __m512i lanes_bcast16(const int MP, const uint8_t *q)
{
    __m256i r;
    if (MP == 2) r = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
    else if (MP == 4) {
        long long v;
        memcpy(&v, q, 8);
        r = _mm256_set1_epi64x(v);
    } else {
        int v;
        memcpy(&v, q, 4);
        r = _mm256_set1_epi32(v);
    }
    return _mm512_cvtepi8_epi16(r);
}

/* C[t][n0 + j] (+)= sum of the P lanes of token t in out[os * j + P t ..] (in lane order,
 * plus tail[j * 8 + t] where tail is not NULL), for the nr rows and M tokens of a tile. */
static inline void lanes_write(const gemm_args *g, const float *out, int os, const float *tail, int nr, int P,
                               int64_t n0)
{
    for (int j = 0; j < nr; j++)
        for (int64_t t = 0; t < g->M; t++) {
            const float *o = out + os * j + P * t;
            float s = o[0];
            for (int p = 1; p < P; p++) s += o[p];
            if (tail) s += tail[j * 8 + t];
            float *c = g->C + t * g->ldc + n0 + j;
            *c = g->accumulate ? *c + s : s;
        }
}

#endif
