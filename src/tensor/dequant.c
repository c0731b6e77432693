/* Dequantisation of ggml tensor blocks to f32 (plain C reference, used by the GGUF
 * tooling, tests and as the ground truth for SIMD kernels). Block layouts and
 * formulas follow ggml's dequantize_row_* (ggml-quants.c); bytes are read
 * little-endian with memcpy so `src` may be unaligned. */
#include "vlmn/types.h"
#include "tensor/kquant.h"

#include <string.h>

#define QK 32   /* values per block of the legacy quants */
#define QK_K 256 /* values per K-quant super-block */

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline float rdh(const uint8_t *p) { return vlmn_f16_to_f32(rd16(p)); }

static void dq_f32(const uint8_t *s, float *y, int64_t n) { memcpy(y, s, (size_t)n * 4); }

static void dq_f16(const uint8_t *s, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = vlmn_f16_to_f32(rd16(s + 2 * i));
}

static void dq_bf16(const uint8_t *s, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = vlmn_bf16_to_f32(rd16(s + 2 * i));
}

/* Q8_0: f16 d, i8 q[32]; x = d*q. */
static void dq_q8_0(const uint8_t *s, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, s += 34, y += QK) {
        float d = rdh(s);
        for (int j = 0; j < QK; j++) y[j] = d * (float)(int8_t)s[2 + j];
    }
}

/* Q4_0: f16 d, u8 qs[16]; low nibbles are values 0..15, high nibbles 16..31;
 * x = (q - 8) * d. */
static void dq_q4_0(const uint8_t *s, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, s += 18, y += QK) {
        float d = rdh(s);
        const uint8_t *qs = s + 2;
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (float)((qs[j] & 0x0f) - 8) * d;
            y[j + QK / 2] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

/* Q4_1: f16 d, f16 m, u8 qs[16]; x = q*d + m. */
static void dq_q4_1(const uint8_t *s, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, s += 20, y += QK) {
        float d = rdh(s), m = rdh(s + 2);
        const uint8_t *qs = s + 4;
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (float)(qs[j] & 0x0f) * d + m;
            y[j + QK / 2] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

/* Q5_0: f16 d, u32 qh (bit j = 5th bit of value j), u8 qs[16]; x = (q - 16) * d. */
static void dq_q5_0(const uint8_t *s, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, s += 22, y += QK) {
        float d = rdh(s);
        uint32_t qh = rd32(s + 2);
        const uint8_t *qs = s + 6;
        for (int j = 0; j < QK / 2; j++) {
            int lo = (qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = (float)(lo - 16) * d;
            y[j + QK / 2] = (float)(hi - 16) * d;
        }
    }
}

/* Q5_1: f16 d, f16 m, u32 qh, u8 qs[16]; x = q*d + m. */
static void dq_q5_1(const uint8_t *s, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, s += 24, y += QK) {
        float d = rdh(s), m = rdh(s + 2);
        uint32_t qh = rd32(s + 4);
        const uint8_t *qs = s + 8;
        for (int j = 0; j < QK / 2; j++) {
            int lo = (qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = (float)lo * d + m;
            y[j + QK / 2] = (float)hi * d + m;
        }
    }
}

/* Q4_K: f16 d, f16 dmin, u8 scales[12], u8 qs[128]. Eight sub-blocks of 32 values;
 * each 32-byte group of qs holds two sub-blocks (low nibbles first).
 * x = d*sc*q - dmin*mn. */
static void dq_q4_k(const uint8_t *s, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, s += 144) {
        float d = rdh(s), dmin = rdh(s + 2);
        const uint8_t *sc = s + 4, *q = s + 16;
        for (int g = 0; g < 4; g++, q += 32) {
            int s1, m1, s2, m2;
            vlmn_kq_scale_min(2 * g, sc, &s1, &m1);
            vlmn_kq_scale_min(2 * g + 1, sc, &s2, &m2);
            float d1 = d * (float)s1, mm1 = dmin * (float)m1;
            float d2 = d * (float)s2, mm2 = dmin * (float)m2;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0f) - mm1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - mm2;
        }
    }
}

/* Q5_K: f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]. As Q4_K plus a 5th bit:
 * sub-block k takes bit k of qh[l]. */
static void dq_q5_k(const uint8_t *s, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, s += 176) {
        float d = rdh(s), dmin = rdh(s + 2);
        const uint8_t *sc = s + 4, *qh = s + 16, *q = s + 48;
        for (int g = 0; g < 4; g++, q += 32) {
            int s1, m1, s2, m2;
            vlmn_kq_scale_min(2 * g, sc, &s1, &m1);
            vlmn_kq_scale_min(2 * g + 1, sc, &s2, &m2);
            float d1 = d * (float)s1, mm1 = dmin * (float)m1;
            float d2 = d * (float)s2, mm2 = dmin * (float)m2;
            int b1 = 2 * g, b2 = 2 * g + 1;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((q[l] & 0x0f) + (((qh[l] >> b1) & 1) << 4)) - mm1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((q[l] >> 4) + (((qh[l] >> b2) & 1) << 4)) - mm2;
        }
    }
}

/* Q6_K: u8 ql[128], u8 qh[64], i8 scales[16], f16 d. Two halves of 128 values; in a
 * half, value l + 32*k (k = 0..3, l = 0..31) has low 4 bits from ql[l + 32*(k&1)]
 * (low nibble for k < 2, high for k >= 2) and high 2 bits from qh[l] bits 2k..2k+1;
 * x = d * scale[l/16 + 2k] * (q - 32). */
static void dq_q6_k(const uint8_t *s, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, s += 210) {
        float d = rdh(s + 208);
        const uint8_t *ql = s, *qh = s + 128;
        const int8_t *sc = (const int8_t *)(s + 192);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

vlmn_status vlmn_dequant(uint32_t type, const void *src, float *dst, int64_t n)
{
    if (!vlmn_type_supported(type)) {
        const char *name = vlmn_type_name(type);
        if (name) return vlmn_error(VLMN_E_UNSUPPORTED, "dequantisation of %s is not supported", name);
        return vlmn_error(VLMN_E_UNSUPPORTED, "unknown tensor type id %u", type);
    }
    uint32_t bv = vlmn_type_block_values(type);
    if (n < 0 || n % bv)
        return vlmn_error(VLMN_E_RANGE, "dequantise %s: %lld values is not a whole number of blocks of %u",
                          vlmn_type_name(type), (long long)n, bv);
    if (n == 0) return VLMN_OK;
    const uint8_t *s = src;
    int64_t nb = n / bv;
    switch (type) {
    case VLMN_TYPE_F32: dq_f32(s, dst, n); break;
    case VLMN_TYPE_F16: dq_f16(s, dst, n); break;
    case VLMN_TYPE_BF16: dq_bf16(s, dst, n); break;
    case VLMN_TYPE_Q8_0: dq_q8_0(s, dst, nb); break;
    case VLMN_TYPE_Q4_0: dq_q4_0(s, dst, nb); break;
    case VLMN_TYPE_Q4_1: dq_q4_1(s, dst, nb); break;
    case VLMN_TYPE_Q5_0: dq_q5_0(s, dst, nb); break;
    case VLMN_TYPE_Q5_1: dq_q5_1(s, dst, nb); break;
    case VLMN_TYPE_Q4_K: dq_q4_k(s, dst, nb); break;
    case VLMN_TYPE_Q5_K: dq_q5_k(s, dst, nb); break;
    case VLMN_TYPE_Q6_K: dq_q6_k(s, dst, nb); break;
    default: return vlmn_error(VLMN_E_INTERNAL, "dequantise: type %u in table but not handled", type);
    }
    return VLMN_OK;
}
