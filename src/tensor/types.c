/* Tensor element types: ggml's type table (names, block sizes), row sizes with
 * overflow checks, f16/bf16 scalar conversions and Q8_0 quantisation. Sits under the
 * GGUF reader/writer and the kernels. Block layouts follow ggml-common.h. */
#include "vlmn/types.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"

struct type_info {
    const char *name;
    uint32_t block_values; /* values per block */
    uint32_t block_bytes;  /* bytes per block */
    bool supported;        /* vlmn_dequant handles it */
};

/* ggml ids; gaps (4, 5, 31-33: removed upstream) stay unknown. Sizes from the block
 * structs in ggml-common.h (QK_K = 256). Known-but-unsupported types still get a row
 * size so that files holding them can be opened and listed. */
static const struct type_info type_table[VLMN_TYPE_COUNT_] = {
    [VLMN_TYPE_F32] = {"F32", 1, 4, true},
    [VLMN_TYPE_F16] = {"F16", 1, 2, true},
    [VLMN_TYPE_Q4_0] = {"Q4_0", 32, 18, true},  /* f16 d, u8 qs[16] */
    [VLMN_TYPE_Q4_1] = {"Q4_1", 32, 20, true},  /* f16 d, f16 m, u8 qs[16] */
    [VLMN_TYPE_Q5_0] = {"Q5_0", 32, 22, true},  /* f16 d, u8 qh[4], u8 qs[16] */
    [VLMN_TYPE_Q5_1] = {"Q5_1", 32, 24, true},  /* f16 d, f16 m, u8 qh[4], u8 qs[16] */
    [VLMN_TYPE_Q8_0] = {"Q8_0", 32, 34, true},  /* f16 d, i8 qs[32] */
    [VLMN_TYPE_Q8_1] = {"Q8_1", 32, 36, false}, /* f16 d, f16 s, i8 qs[32] */
    [VLMN_TYPE_Q2_K] = {"Q2_K", 256, 84, false},
    [VLMN_TYPE_Q3_K] = {"Q3_K", 256, 110, false},
    [VLMN_TYPE_Q4_K] = {"Q4_K", 256, 144, true}, /* f16 d, f16 dmin, u8 scales[12], u8 qs[128] */
    [VLMN_TYPE_Q5_K] = {"Q5_K", 256, 176, true}, /* + u8 qh[32] before qs */
    [VLMN_TYPE_Q6_K] = {"Q6_K", 256, 210, true}, /* u8 ql[128], u8 qh[64], i8 sc[16], f16 d */
    [VLMN_TYPE_Q8_K] = {"Q8_K", 256, 292, false},
    [16] = {"IQ2_XXS", 256, 66, false},
    [17] = {"IQ2_XS", 256, 74, false},
    [18] = {"IQ3_XXS", 256, 98, false},
    [19] = {"IQ1_S", 256, 50, false},
    [20] = {"IQ4_NL", 32, 18, false},
    [21] = {"IQ3_S", 256, 110, false},
    [22] = {"IQ2_S", 256, 82, false},
    [23] = {"IQ4_XS", 256, 136, false},
    [VLMN_TYPE_I8] = {"I8", 1, 1, false},
    [VLMN_TYPE_I16] = {"I16", 1, 2, false},
    [VLMN_TYPE_I32] = {"I32", 1, 4, false},
    [VLMN_TYPE_I64] = {"I64", 1, 8, false},
    [VLMN_TYPE_F64] = {"F64", 1, 8, false},
    [29] = {"IQ1_M", 256, 56, false},
    [VLMN_TYPE_BF16] = {"BF16", 1, 2, true},
    [34] = {"TQ1_0", 256, 54, false},
    [35] = {"TQ2_0", 256, 66, false},
    [39] = {"MXFP4", 32, 17, false},
};

static const struct type_info *info_of(uint32_t type)
{
    if (type >= VLMN_TYPE_COUNT_ || !type_table[type].name) return NULL;
    return &type_table[type];
}

const char *vlmn_type_name(uint32_t type)
{
    const struct type_info *t = info_of(type);
    return t ? t->name : NULL;
}

uint32_t vlmn_type_block_values(uint32_t type)
{
    const struct type_info *t = info_of(type);
    return t ? t->block_values : 0;
}

uint32_t vlmn_type_block_bytes(uint32_t type)
{
    const struct type_info *t = info_of(type);
    return t ? t->block_bytes : 0;
}

bool vlmn_type_supported(uint32_t type)
{
    const struct type_info *t = info_of(type);
    return t && t->supported;
}

vlmn_status vlmn_type_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes)
{
    const struct type_info *t = info_of(type);
    if (!t) return vlmn_error(VLMN_E_UNSUPPORTED, "unknown tensor type id %u", type);
    if (n % t->block_values)
        return vlmn_error(VLMN_E_RANGE, "row of %llu values is not a whole number of %s blocks (%u values)",
                          (unsigned long long)n, t->name, t->block_values);
    if (!vlmn_mul_ok(n / t->block_values, t->block_bytes, bytes))
        return vlmn_error(VLMN_E_RANGE, "row of %llu %s values overflows a byte count",
                          (unsigned long long)n, t->name);
    return VLMN_OK;
}

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE binary16 -> binary32 is exact; subnormals are m * 2^-24. */
float vlmn_f16_to_f32(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f;
    uint32_t m = h & 0x3ff;
    if (e == 0) {
        float f = (float)m * 0x1p-24f;
        return s ? -f : f;
    }
    if (e == 31) return bits_f32(s | 0x7f800000u | (m << 13));
    return bits_f32(s | ((e + 112) << 23) | (m << 13));
}

/* binary32 -> binary16, round to nearest even (as numpy's astype(float16) and the
 * F16C instruction); NaN stays a quiet NaN, overflow goes to infinity. */
uint16_t vlmn_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t s = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(s | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000u) return (uint16_t)(s | 0x7c00); /* >= 65520 rounds to inf */
    if (ax >= 0x38800000u) {                              /* normal: >= 2^-14 */
        uint32_t r = (((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ff);
        uint32_t rem = ax & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++; /* carry may bump exponent */
        return (uint16_t)(s | r);
    }
    if (ax <= 0x33000000u) return s; /* <= 2^-25: ties to even gives 0 */
    uint32_t e = ax >> 23;
    uint32_t mant = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e; /* value in units of 2^-24 is mant >> shift */
    uint32_t r = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(s | r);
}

float vlmn_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* Round to nearest even as torch does; NaN is kept quiet (top mantissa bit set). */
uint16_t vlmn_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ggml's reference rule (quantize_row_q8_0_ref): d = amax/127, q = round(x * (1/d)),
 * d stored as f16. roundf rounds halves away from zero, as ggml does. */
static void put_u16s(uint8_t *d, const float *src, int64_t n, uint16_t (*conv)(float))
{
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = conv(src[i]);
        d[2 * i] = (uint8_t)h;
        d[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

vlmn_status vlmn_from_f32(uint32_t type, const float *src, void *dst, int64_t n)
{
    uint8_t *d = dst;
    switch (type) {
    case VLMN_TYPE_F32:
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(d, src, (size_t)n * sizeof(float));
#else
        for (int64_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &src[i], 4);
            for (int k = 0; k < 4; k++) d[4 * i + k] = (uint8_t)(u >> (8 * k));
        }
#endif
        return VLMN_OK;
    case VLMN_TYPE_F16: put_u16s(d, src, n, vlmn_f32_to_f16); return VLMN_OK;
    case VLMN_TYPE_BF16: put_u16s(d, src, n, vlmn_f32_to_bf16); return VLMN_OK;
    case VLMN_TYPE_Q8_0: vlmn_quantize_q8_0(src, dst, n); return VLMN_OK;
    default:
        return vlmn_error(VLMN_E_UNSUPPORTED, "no conversion from f32 to %s",
                          vlmn_type_name(type) ? vlmn_type_name(type) : "this type");
    }
}

void vlmn_quantize_q8_0(const float *src, void *dst, int64_t n)
{
    uint8_t *out = dst;
    for (int64_t b = 0; b + 32 <= n; b += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(src[b + j]);
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = vlmn_f32_to_f16(d);
        out[0] = (uint8_t)(dh & 0xff);
        out[1] = (uint8_t)(dh >> 8);
        for (int j = 0; j < 32; j++) {
            float q = roundf(src[b + j] * id);
            if (!(q >= -127.0f && q <= 127.0f)) q = 0.0f; /* NaN/inf input: no UB cast */
            out[2 + j] = (uint8_t)(int8_t)q;
        }
        out += 34;
    }
}
