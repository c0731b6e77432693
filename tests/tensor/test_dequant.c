/* Tests for src/tensor: type table, row sizes, f16/bf16 conversions, Q8_0 quantisation
 * and dequantisation of every supported type against golden values made by
 * tests/reference/dequant_ref.py (NumPy/torch, written from the block layouts). */
#include "test.h"
#include "vlmn/types.h"

#include <stdint.h>

static uint8_t *slurp(const char *name, size_t *n)
{
    return test_read_file(test_path(test_data_dir(), name), n);
}

static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* |got - want| <= 1e-6 * max(1, |want|), and exact for infinities. */
static int compare(const float *got, const float *want, int64_t n, const char *what)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float g = got[i], w = want[i];
        bool ok = isinf(w) ? g == w : fabsf(g - w) <= 1e-6f * fmaxf(1.0f, fabsf(w));
        if (isnan(g) || !ok) {
            if (bad++ < 5) fprintf(stderr, "  %s[%lld]: got %.9g want %.9g\n", what, (long long)i, g, w);
        }
    }
    return bad;
}

static void check_golden(const char *file, uint32_t want_type)
{
    size_t n;
    uint8_t *b = slurp(file, &n);
    CHECK(b != NULL);
    if (!b) return;
    CHECK(n >= 16 && !memcmp(b, "VLDQ", 4));
    uint32_t type = le32(b + 4), nv = le32(b + 8), nraw = le32(b + 12);
    CHECK_EQ_INT(type, want_type);
    CHECK_EQ_INT(n, 16 + (size_t)nraw + (size_t)nv * 4);
    uint64_t rb = 0;
    CHECK(vlmn_type_row_bytes(type, nv, &rb) == VLMN_OK);
    CHECK_EQ_INT(rb, nraw);
    const uint8_t *raw = b + 16;
    float *want = malloc((size_t)nv * 4), *got = malloc((size_t)nv * 4 + 64);
    memcpy(want, raw + nraw, (size_t)nv * 4);
    /* whole range, with a guard after the output */
    memset(got, 0xa5, (size_t)nv * 4 + 64);
    CHECK_MSG(vlmn_dequant(type, raw, got, nv) == VLMN_OK, "%s", vlmn_errmsg());
    CHECK_EQ_INT(compare(got, want, nv, file), 0);
    for (int i = 0; i < 64; i++) CHECK(((uint8_t *)(got + nv))[i] == 0xa5);
    /* every sub-range of whole blocks, from an unaligned copy of the source */
    uint32_t bv = vlmn_type_block_values(type), bb = vlmn_type_block_bytes(type);
    uint8_t *un = malloc(nraw + 1);
    memcpy(un + 1, raw, nraw);
    int bad = 0;
    for (uint32_t s = 0; s < nv / bv; s++)
        for (uint32_t e = s + 1; e <= nv / bv; e++) {
            memset(got, 0, (size_t)nv * 4);
            if (vlmn_dequant(type, un + 1 + (size_t)s * bb, got, (int64_t)(e - s) * bv) != VLMN_OK) bad++;
            else bad += compare(got, want + (size_t)s * bv, (int64_t)(e - s) * bv, file) != 0;
        }
    CHECK_EQ_INT(bad, 0);
    free(un);
    free(want);
    free(got);
    free(b);
}

TEST(golden_f32) { check_golden("tensor/dq_F32.bin", VLMN_TYPE_F32); }
TEST(golden_f16) { check_golden("tensor/dq_F16.bin", VLMN_TYPE_F16); }
TEST(golden_bf16) { check_golden("tensor/dq_BF16.bin", VLMN_TYPE_BF16); }
TEST(golden_q8_0) { check_golden("tensor/dq_Q8_0.bin", VLMN_TYPE_Q8_0); }
TEST(golden_q4_0) { check_golden("tensor/dq_Q4_0.bin", VLMN_TYPE_Q4_0); }
TEST(golden_q4_1) { check_golden("tensor/dq_Q4_1.bin", VLMN_TYPE_Q4_1); }
TEST(golden_q5_0) { check_golden("tensor/dq_Q5_0.bin", VLMN_TYPE_Q5_0); }
TEST(golden_q5_1) { check_golden("tensor/dq_Q5_1.bin", VLMN_TYPE_Q5_1); }
TEST(golden_q4_k) { check_golden("tensor/dq_Q4_K.bin", VLMN_TYPE_Q4_K); }
TEST(golden_q5_k) { check_golden("tensor/dq_Q5_K.bin", VLMN_TYPE_Q5_K); }
TEST(golden_q6_k) { check_golden("tensor/dq_Q6_K.bin", VLMN_TYPE_Q6_K); }

/* A hand-computed Q4_0 block (MODEL-NOTES: x[j] = ((qs[j]&15)-8)*d, x[j+16] = ((qs[j]>>4)-8)*d). */
TEST(q4_0_by_hand)
{
    uint8_t blk[18] = {0x00, 0x40}; /* d = 2.0 (f16 0x4000) */
    blk[2] = 0x9f;                  /* value 0: 15-8 = 7 -> 14; value 16: 9-8 = 1 -> 2 */
    blk[17] = 0x08;                 /* value 15: 8-8 = 0; value 31: 0-8 = -8 -> -16 */
    float y[32];
    CHECK(vlmn_dequant(VLMN_TYPE_Q4_0, blk, y, 32) == VLMN_OK);
    CHECK(y[0] == 14.0f && y[16] == 2.0f && y[15] == 0.0f && y[31] == -16.0f && y[1] == -16.0f);
}

/* One block of each other type, values worked out by hand from the layouts in
 * docs/gguf.md (f16: 1.0 = 0x3c00, 0.5 = 0x3800, 2.0 = 0x4000, -1.0 = 0xbc00, 0.25 = 0x3400). */
TEST(other_blocks_by_hand)
{
    float y[256];
    uint8_t q8[34] = {0x00, 0x34};
    q8[2 + 3] = (uint8_t)-100;
    CHECK(vlmn_dequant(VLMN_TYPE_Q8_0, q8, y, 32) == VLMN_OK && y[3] == -25.0f && y[0] == 0.0f);

    uint8_t q41[20] = {0x00, 0x40, 0x00, 0xbc};
    q41[4] = 0x3f;
    CHECK(vlmn_dequant(VLMN_TYPE_Q4_1, q41, y, 32) == VLMN_OK && y[0] == 29.0f && y[16] == 5.0f && y[1] == -1.0f);

    uint8_t q50[22] = {0x00, 0x3c, 0x01, 0x00, 0x01, 0x80}; /* qh bits 0, 16, 31 */
    q50[6 + 0] = 0x21;
    q50[6 + 15] = 0xf0;
    CHECK(vlmn_dequant(VLMN_TYPE_Q5_0, q50, y, 32) == VLMN_OK);
    CHECK(y[0] == 1.0f && y[16] == 2.0f && y[15] == -16.0f && y[31] == 15.0f && y[1] == -16.0f);

    uint8_t q51[24] = {0x00, 0x3c, 0x00, 0x38, 0x02, 0x00, 0x00, 0x00}; /* qh bit 1 */
    q51[8 + 1] = 0x04;
    CHECK(vlmn_dequant(VLMN_TYPE_Q5_1, q51, y, 32) == VLMN_OK && y[1] == 20.5f && y[0] == 0.5f);

    /* Q4_K: d = 1, dmin = 0.5; scales bytes: [0]=3 (sc0), [4]=2 (m0), [1]=0xc1 (sc1 = 1,
     * top bits -> sc5 += 48), [5]=0x40 (m1 = 0, top bits -> m5 += 16), [9]=0x25
     * (sc5 low = 5, m5 low = 2): sc5 = 53, m5 = 18. */
    uint8_t q4k[144] = {0x00, 0x3c, 0x00, 0x38};
    uint8_t *sc = q4k + 4, *qs = q4k + 16;
    sc[0] = 3, sc[4] = 2, sc[1] = 0xc1, sc[5] = 0x40, sc[9] = 0x25;
    qs[0] = 0x07;        /* sub-block 0 value 0: 7 -> 1*3*7 - 0.5*2 = 20; sub-block 1 value 0: 0 -> 0 */
    qs[64 + 3] = 0xa0;   /* sub-block 5 (high nibbles of group 2) value 3: 10 -> 530 - 9 = 521 */
    CHECK(vlmn_dequant(VLMN_TYPE_Q4_K, q4k, y, 256) == VLMN_OK);
    CHECK(y[0] == 20.0f && y[32] == 0.0f && y[5 * 32 + 3] == 521.0f && y[5 * 32] == -9.0f);

    /* Q5_K: d = 1, dmin = 0; sc0 = sc1 = 1; sc7 = (byte 11 & 15) | (byte 3 >> 6) << 4 = 2;
     * 5th bit of sub-block k is bit k of qh[l]. */
    uint8_t q5k[176] = {0x00, 0x3c, 0x00, 0x00};
    uint8_t *sc5 = q5k + 4, *qh5 = q5k + 16, *qs5 = q5k + 48;
    sc5[0] = 1, sc5[1] = 1, sc5[11] = 0x02;
    qh5[2] = 0x02, qs5[2] = 0x30;   /* sub-block 1 value 2: (3 + 16) * 1 = 19; sub-block 0 value 2: 0 */
    qh5[5] = 0x80, qs5[96 + 5] = 0x10; /* sub-block 7 value 5: (1 + 16) * 2 = 34 */
    CHECK(vlmn_dequant(VLMN_TYPE_Q5_K, q5k, y, 256) == VLMN_OK);
    CHECK(y[34] == 19.0f && y[2] == 0.0f && y[7 * 32 + 5] == 34.0f);

    /* Q6_K: ql[128] qh[64] sc[16] d; d = 0.5. */
    uint8_t q6k[210] = {0};
    uint8_t *ql = q6k, *qh = q6k + 128;
    int8_t *s6 = (int8_t *)(q6k + 192);
    q6k[208] = 0x00, q6k[209] = 0x38;
    s6[0] = 2, s6[6] = -3, s6[11] = 4;
    ql[0] = 0x5a, qh[0] = 0x81;  /* value 0: (10 | 1<<4) - 32 = -6 -> 0.5*2*-6 = -6 */
    ql[32] = 0xf0;               /* value 96: (15 | 2<<4) - 32 = 15 -> 0.5*-3*15 = -22.5 */
    ql[112] = 0x03, qh[48] = 0x0c; /* value 176 (half 1, k 1, l 16): (3 | 3<<4) - 32 = 19 -> 0.5*4*19 = 38 */
    CHECK(vlmn_dequant(VLMN_TYPE_Q6_K, q6k, y, 256) == VLMN_OK);
    CHECK(y[0] == -6.0f && y[96] == -22.5f && y[176] == 38.0f);
}

TEST(dequant_arguments)
{
    float y[64];
    uint8_t raw[256] = {0};
    CHECK_EQ_INT(vlmn_dequant(VLMN_TYPE_Q8_0, raw, y, 33), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_dequant(VLMN_TYPE_Q8_0, raw, y, -32), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_dequant(VLMN_TYPE_Q8_0, raw, y, 0), VLMN_OK);
    CHECK_EQ_INT(vlmn_dequant(VLMN_TYPE_Q2_K, raw, y, 256), VLMN_E_UNSUPPORTED);
    CHECK(strstr(vlmn_errmsg(), "Q2_K") != NULL);
    CHECK_EQ_INT(vlmn_dequant(99, raw, y, 1), VLMN_E_UNSUPPORTED);
    CHECK_EQ_INT(vlmn_dequant(4, raw, y, 1), VLMN_E_UNSUPPORTED);
}

TEST(type_table)
{
    static const struct { uint32_t t; const char *name; uint32_t bv, bb; bool sup; } want[] = {
        {0, "F32", 1, 4, true},      {1, "F16", 1, 2, true},      {2, "Q4_0", 32, 18, true},
        {3, "Q4_1", 32, 20, true},   {6, "Q5_0", 32, 22, true},   {7, "Q5_1", 32, 24, true},
        {8, "Q8_0", 32, 34, true},   {9, "Q8_1", 32, 36, false},  {10, "Q2_K", 256, 84, false},
        {11, "Q3_K", 256, 110, false}, {12, "Q4_K", 256, 144, true}, {13, "Q5_K", 256, 176, true},
        {14, "Q6_K", 256, 210, true}, {15, "Q8_K", 256, 292, false}, {30, "BF16", 1, 2, true},
        {28, "F64", 1, 8, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_EQ_STR(vlmn_type_name(want[i].t), want[i].name);
        CHECK_EQ_INT(vlmn_type_block_values(want[i].t), want[i].bv);
        CHECK_EQ_INT(vlmn_type_block_bytes(want[i].t), want[i].bb);
        CHECK_EQ_INT(vlmn_type_supported(want[i].t), want[i].sup);
    }
    CHECK(vlmn_type_name(4) == NULL && vlmn_type_name(5) == NULL && vlmn_type_name(40) == NULL);
    CHECK(vlmn_type_name(UINT32_MAX) == NULL && vlmn_type_block_bytes(UINT32_MAX) == 0);
    CHECK(!vlmn_type_supported(VLMN_TYPE_COUNT_));
}

TEST(row_bytes)
{
    uint64_t b;
    CHECK(vlmn_type_row_bytes(VLMN_TYPE_F32, 37, &b) == VLMN_OK && b == 148);
    CHECK(vlmn_type_row_bytes(VLMN_TYPE_Q4_K, 4096, &b) == VLMN_OK && b == 16 * 144);
    CHECK(vlmn_type_row_bytes(VLMN_TYPE_Q6_K, 0, &b) == VLMN_OK && b == 0);
    CHECK_EQ_INT(vlmn_type_row_bytes(VLMN_TYPE_Q4_K, 4095, &b), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_type_row_bytes(VLMN_TYPE_F32, UINT64_MAX / 2, &b), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_type_row_bytes(77, 32, &b), VLMN_E_UNSUPPORTED);
}

TEST(conversions_golden)
{
    size_t n;
    uint8_t *b = slurp("tensor/conv_f16.bin", &n);
    CHECK(b != NULL);
    if (!b) return;
    uint32_t cnt = le32(b + 4);
    CHECK(!memcmp(b, "VLCV", 4) && n == 8 + (size_t)cnt * 8);
    const uint8_t *xs = b + 8, *hs = xs + (size_t)cnt * 4, *bs = hs + (size_t)cnt * 2;
    int bad_h = 0, bad_b = 0, bad_back = 0;
    for (uint32_t i = 0; i < cnt; i++) {
        float x;
        uint16_t h, bb;
        memcpy(&x, xs + 4 * i, 4);
        memcpy(&h, hs + 2 * i, 2);
        memcpy(&bb, bs + 2 * i, 2);
        uint16_t gh = vlmn_f32_to_f16(x), gb = vlmn_f32_to_bf16(x);
        if (gh != h && bad_h++ < 5) fprintf(stderr, "  f16(%a) = %04x want %04x\n", x, gh, h);
        if (gb != bb && bad_b++ < 5) fprintf(stderr, "  bf16(%a) = %04x want %04x\n", x, gb, bb);
        /* widening is exact: f16 -> f32 -> f16 is the identity */
        if (vlmn_f32_to_f16(vlmn_f16_to_f32(h)) != h || vlmn_f32_to_bf16(vlmn_bf16_to_f32(bb)) != bb) bad_back++;
    }
    CHECK(cnt > 4000);
    CHECK_EQ_INT(bad_h, 0);
    CHECK_EQ_INT(bad_b, 0);
    CHECK_EQ_INT(bad_back, 0);
    free(b);
}

TEST(conversions_nan_and_exhaustive_f16)
{
    CHECK(isnan(vlmn_f16_to_f32(vlmn_f32_to_f16(NAN))));
    CHECK(isnan(vlmn_bf16_to_f32(vlmn_f32_to_bf16(NAN))));
    CHECK(isnan(vlmn_bf16_to_f32(vlmn_f32_to_bf16(-NAN))));
    /* every f16 bit pattern survives f16 -> f32 -> f16 (NaNs stay NaN) */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = vlmn_f16_to_f32((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !isnan(f) : vlmn_f32_to_f16(f) != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(vlmn_f16_to_f32(0x0001) == 0x1p-24f && vlmn_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(vlmn_f16_to_f32(0xfc00) == -INFINITY);
}

TEST(quantize_q8_0_golden)
{
    size_t n;
    uint8_t *b = slurp("tensor/q8_0_quant.bin", &n);
    CHECK(b != NULL);
    if (!b) return;
    uint32_t cnt = le32(b + 4);
    CHECK(!memcmp(b, "VLQ8", 4) && cnt % 32 == 0 && n == 8 + (size_t)cnt * 4 + cnt / 32 * 34);
    float *x = malloc((size_t)cnt * 4);
    memcpy(x, b + 8, (size_t)cnt * 4);
    uint8_t *q = malloc(cnt / 32 * 34);
    vlmn_quantize_q8_0(x, q, cnt);
    CHECK(memcmp(q, b + 8 + (size_t)cnt * 4, cnt / 32 * 34) == 0);
    memset(q, 0, cnt / 32 * 34);
    CHECK(vlmn_from_f32(VLMN_TYPE_Q8_0, x, q, cnt) == VLMN_OK);
    CHECK(memcmp(q, b + 8 + (size_t)cnt * 4, cnt / 32 * 34) == 0);
    free(x);
    free(q);
    free(b);
}

/* vlmn_from_f32 writes the GGUF bytes (little-endian) of the scalar conversions. */
TEST(from_f32)
{
    const float x[5] = {1.0f, -2.5f, 0.1f, 65504.0f, -1e-8f};
    uint8_t d[20];
    CHECK(vlmn_from_f32(VLMN_TYPE_F32, x, d, 5) == VLMN_OK);
    for (int i = 0; i < 5; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        CHECK(le32(d + 4 * i) == u);
    }
    const uint32_t t16[2] = {VLMN_TYPE_F16, VLMN_TYPE_BF16};
    for (int k = 0; k < 2; k++) {
        CHECK(vlmn_from_f32(t16[k], x, d, 5) == VLMN_OK);
        for (int i = 0; i < 5; i++) {
            uint16_t h = k ? vlmn_f32_to_bf16(x[i]) : vlmn_f32_to_f16(x[i]);
            CHECK(d[2 * i] == (uint8_t)h && d[2 * i + 1] == (uint8_t)(h >> 8));
        }
    }
    CHECK(vlmn_from_f32(VLMN_TYPE_Q4_K, x, d, 5) == VLMN_E_UNSUPPORTED);
    CHECK(strstr(vlmn_errmsg(), "Q4_K") != NULL);
}

TEST_MAIN()
