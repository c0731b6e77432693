/* Tests for the GGUF reader (src/gguf/gguf_read.c): a hand-assembled valid file, every
 * accessor, and hostile inputs (truncation at every byte, huge counts, bad ids, bad
 * dims/offsets/alignment, duplicates, wrong-type access). Each failure must give its
 * specific status and a one-line message naming the file and the key or tensor. */
#include "test.h"
#include "vlmn/gguf.h"
#include "core/alloc.h"
#include "gguf_build.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME "t.gguf"

static void kv_scalar(gb_buf *o, const char *k, uint32_t type, const void *v, size_t n)
{
    gb_str(o, k);
    gb_u32(o, type);
    gb_put(o, v, n);
}

/* The metadata of the valid test file: every value type, nested arrays. */
static int valid_kvs(gb_buf *o)
{
    uint8_t u8 = 200;
    int8_t i8 = -5;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    float f32 = 1.5f;
    uint8_t bo = 1;
    int64_t i64 = INT64_MIN;
    double f64 = 0.1;
    gb_kv_str(o, "general.architecture", "llama");
    gb_kv_u32(o, "general.alignment", 32);
    kv_scalar(o, "test.u8", VLMN_GGUF_U8, &u8, 1);
    kv_scalar(o, "test.i8", VLMN_GGUF_I8, &i8, 1);
    kv_scalar(o, "test.u16", VLMN_GGUF_U16, &u16, 2);
    kv_scalar(o, "test.i16", VLMN_GGUF_I16, &i16, 2);
    gb_kv_u32(o, "test.u32", 4000000000u);
    kv_scalar(o, "test.i32", VLMN_GGUF_I32, &i32, 4);
    kv_scalar(o, "test.f32", VLMN_GGUF_F32, &f32, 4);
    kv_scalar(o, "test.bool", VLMN_GGUF_BOOL, &bo, 1);
    gb_kv_u64(o, "test.u64", UINT64_MAX);
    kv_scalar(o, "test.i64", VLMN_GGUF_I64, &i64, 8);
    kv_scalar(o, "test.f64", VLMN_GGUF_F64, &f64, 8);
    /* array of i32 */
    gb_str(o, "test.arr_i32");
    gb_u32(o, VLMN_GGUF_ARRAY);
    gb_u32(o, VLMN_GGUF_I32);
    gb_u64(o, 3);
    gb_u32(o, 1);
    gb_u32(o, (uint32_t)-2);
    gb_u32(o, 3);
    /* array of strings */
    gb_str(o, "test.arr_str");
    gb_u32(o, VLMN_GGUF_ARRAY);
    gb_u32(o, VLMN_GGUF_STRING);
    gb_u64(o, 3);
    gb_str(o, "a");
    gb_str(o, "bc");
    gb_str(o, "");
    /* array of arrays: [[1, 2] (u8), ["x"] (string)] */
    gb_str(o, "test.nested");
    gb_u32(o, VLMN_GGUF_ARRAY);
    gb_u32(o, VLMN_GGUF_ARRAY);
    gb_u64(o, 2);
    gb_u32(o, VLMN_GGUF_U8);
    gb_u64(o, 2);
    gb_u8(o, 1);
    gb_u8(o, 2);
    gb_u32(o, VLMN_GGUF_STRING);
    gb_u64(o, 1);
    gb_str(o, "x");
    /* array of f32 */
    float fa[2] = {0.5f, 2.0f};
    gb_str(o, "test.arr_f32");
    gb_u32(o, VLMN_GGUF_ARRAY);
    gb_u32(o, VLMN_GGUF_F32);
    gb_u64(o, 2);
    gb_put(o, fa, 8);
    return 17;
}

static const struct gb_tensor valid_tensors[2] = {
    {"a", 2, {8, 3}, VLMN_TYPE_F32, 0},
    {"b", 2, {32, 2}, VLMN_TYPE_Q8_0, 96},
};
#define VALID_DATA 164 /* 96 + 2*34 */

static void make_valid(gb_buf *o)
{
    gb_buf kv = {0};
    int n = valid_kvs(&kv);
    gb_file(o, 3, 2, (uint64_t)n, &kv, valid_tensors, 2, 32, VALID_DATA);
    gb_free(&kv);
}

/* Expect status st and a one-line message naming the file and `what` (if given). */
#define EXPECT_FAIL(b, n, st_, what)                                                          \
    do {                                                                                      \
        vlmn_gguf *g_ = NULL;                                                                 \
        uint8_t *c_ = malloc((n) ? (n) : 1);                                                  \
        memcpy(c_, (b), (n));                                                                 \
        vlmn_status s_ = vlmn_gguf_open_memory(c_, (n), NAME, &g_);                           \
        CHECK_MSG(s_ == (st_), "status %d (%s), want %d; msg: %s", s_, vlmn_strerror(s_), st_, vlmn_errmsg()); \
        CHECK(g_ == NULL);                                                                    \
        const char *m_ = vlmn_errmsg();                                                       \
        CHECK_MSG(strncmp(m_, NAME ": ", strlen(NAME) + 2) == 0, "msg: %s", m_);              \
        CHECK_MSG(!strchr(m_, '\n'), "msg: %s", m_);                                          \
        CHECK_MSG(strstr(m_, (what)) != NULL, "msg '%s' lacks '%s'", m_, (what));             \
        vlmn_gguf_close(g_);                                                                  \
        free(c_);                                                                             \
    } while (0)

TEST(valid_file_metadata)
{
    gb_buf o = {0};
    make_valid(&o);
    vlmn_gguf *g = NULL;
    vlmn_status st = vlmn_gguf_open_memory(o.b, o.n, NAME, &g);
    CHECK_MSG(st == VLMN_OK, "%s", vlmn_errmsg());
    if (st) {
        gb_free(&o);
        return;
    }
    CHECK_EQ_INT(vlmn_gguf_version(g), 3);
    CHECK_EQ_INT(vlmn_gguf_alignment(g), 32);
    CHECK_EQ_INT(vlmn_gguf_n_kv(g), 17);
    CHECK_EQ_INT(vlmn_gguf_file_size(g), o.n);
    CHECK_EQ_STR(vlmn_gguf_path(g), NAME);

    const char *s;
    CHECK(vlmn_gguf_get_str(g, "general.architecture", &s) == VLMN_OK);
    CHECK_EQ_STR(s, "llama");
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    bool b;
    CHECK(vlmn_gguf_get_u32(g, "test.u32", &u32) == VLMN_OK && u32 == 4000000000u);
    CHECK(vlmn_gguf_get_u32(g, "test.u8", &u32) == VLMN_OK && u32 == 200);
    CHECK(vlmn_gguf_get_u32(g, "test.u16", &u32) == VLMN_OK && u32 == 60000);
    CHECK(vlmn_gguf_get_i32(g, "test.i8", &i32) == VLMN_OK && i32 == -5);
    CHECK(vlmn_gguf_get_i32(g, "test.i16", &i32) == VLMN_OK && i32 == -30000);
    CHECK(vlmn_gguf_get_i32(g, "test.i32", &i32) == VLMN_OK && i32 == -2000000000);
    CHECK(vlmn_gguf_get_u64(g, "test.u64", &u64) == VLMN_OK && u64 == UINT64_MAX);
    CHECK(vlmn_gguf_get_i64(g, "test.i64", &i64) == VLMN_OK && i64 == INT64_MIN);
    CHECK(vlmn_gguf_get_f32(g, "test.f32", &f) == VLMN_OK && f == 1.5f);
    CHECK(vlmn_gguf_get_f64(g, "test.f64", &d) == VLMN_OK && d == 0.1);
    CHECK(vlmn_gguf_get_f32(g, "test.f64", &f) == VLMN_OK && f == 0.1f);
    CHECK(vlmn_gguf_get_bool(g, "test.bool", &b) == VLMN_OK && b);

    /* values that do not fit, wrong types, absent keys */
    CHECK_EQ_INT(vlmn_gguf_get_i32(g, "test.u32", &i32), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_gguf_get_u32(g, "test.i8", &u32), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_gguf_get_u32(g, "test.u64", &u32), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_gguf_get_i64(g, "test.u64", &i64), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_gguf_get_u32(g, "general.architecture", &u32), VLMN_E_TYPE);
    CHECK_EQ_STR(vlmn_errmsg(), NAME ": key general.architecture: has type string, expected u32");
    CHECK_EQ_INT(vlmn_gguf_get_str(g, "test.u32", &s), VLMN_E_TYPE);
    CHECK(strstr(vlmn_errmsg(), "test.u32") && strstr(vlmn_errmsg(), NAME));
    CHECK_EQ_INT(vlmn_gguf_get_f32(g, "test.u32", &f), VLMN_E_TYPE);
    CHECK_EQ_INT(vlmn_gguf_get_bool(g, "test.u8", &b), VLMN_E_TYPE);
    CHECK_EQ_INT(vlmn_gguf_get_u32(g, "test.f32", &u32), VLMN_E_TYPE);
    CHECK_EQ_INT(vlmn_gguf_get_u32(g, "test.bool", &u32), VLMN_E_TYPE);
    CHECK_EQ_INT(vlmn_gguf_get_u32(g, "test.arr_i32", &u32), VLMN_E_TYPE);
    CHECK(strstr(vlmn_errmsg(), "array of i32"));
    CHECK_EQ_INT(vlmn_gguf_get_u32(g, "no.such.key", &u32), VLMN_E_NOTFOUND);
    CHECK_EQ_STR(vlmn_errmsg(), NAME ": key no.such.key: not found");
    CHECK_EQ_INT(vlmn_gguf_find_key(g, "no.such.key"), -1);
    CHECK_EQ_INT(vlmn_gguf_find_key(g, "test"), -1);
    CHECK_EQ_INT(vlmn_gguf_find_key(g, "test.u8x"), -1);

    /* arrays */
    const void *data;
    uint64_t n;
    CHECK(vlmn_gguf_get_arr(g, "test.arr_i32", VLMN_GGUF_I32, &data, &n) == VLMN_OK && n == 3);
    int32_t ai[3];
    memcpy(ai, data, 12);
    CHECK(ai[0] == 1 && ai[1] == -2 && ai[2] == 3);
    CHECK_EQ_INT(vlmn_gguf_get_arr(g, "test.arr_i32", VLMN_GGUF_U32, &data, &n), VLMN_E_TYPE);
    CHECK_EQ_INT(vlmn_gguf_get_arr(g, "test.u32", VLMN_GGUF_U32, &data, &n), VLMN_E_TYPE);
    float fa[3];
    CHECK(vlmn_gguf_get_arr_f32(g, "test.arr_i32", fa, 3) == VLMN_OK && fa[1] == -2.0f);
    CHECK(vlmn_gguf_get_arr_f32(g, "test.arr_f32", fa, 2) == VLMN_OK && fa[0] == 0.5f && fa[1] == 2.0f);
    CHECK_EQ_INT(vlmn_gguf_get_arr_f32(g, "test.arr_f32", fa, 3), VLMN_E_MISMATCH);
    CHECK_EQ_INT(vlmn_gguf_get_arr_f32(g, "test.arr_str", fa, 3), VLMN_E_TYPE);
    int64_t ii[3];
    CHECK(vlmn_gguf_get_arr_i64(g, "test.arr_i32", ii, 3) == VLMN_OK && ii[1] == -2);
    CHECK_EQ_INT(vlmn_gguf_get_arr_i64(g, "test.arr_f32", ii, 2), VLMN_E_TYPE);
    vlmn_gguf_str e;
    CHECK(vlmn_gguf_get_arr_str(g, "test.arr_str", 1, &e) == VLMN_OK && e.len == 2 && !memcmp(e.ptr, "bc", 2));
    CHECK(vlmn_gguf_get_arr_str(g, "test.arr_str", 2, &e) == VLMN_OK && e.len == 0);
    CHECK_EQ_INT(vlmn_gguf_get_arr_str(g, "test.arr_str", 3, &e), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_gguf_get_arr_str(g, "test.arr_i32", 0, &e), VLMN_E_TYPE);
    int64_t ni = vlmn_gguf_find_key(g, "test.nested");
    CHECK(ni >= 0);
    CHECK_EQ_INT(vlmn_gguf_kv_type(g, ni), VLMN_GGUF_ARRAY);
    CHECK_EQ_INT(vlmn_gguf_arr_type(g, ni), VLMN_GGUF_ARRAY);
    CHECK_EQ_INT(vlmn_gguf_arr_count(g, ni), 2);
    vlmn_gguf_str k = vlmn_gguf_key(g, ni);
    CHECK(k.len == 11 && !memcmp(k.ptr, "test.nested", 11));
    CHECK(vlmn_gguf_key(g, 99).ptr == NULL);

    /* nested walk */
    vlmn_gguf_value v, el, inner;
    CHECK(vlmn_gguf_kv_value(g, ni, &v) == VLMN_OK);
    vlmn_gguf_iter it, it2;
    vlmn_gguf_iter_init(&it, &v);
    CHECK(vlmn_gguf_iter_next(&it, &el) && el.type == VLMN_GGUF_ARRAY && el.arr_type == VLMN_GGUF_U8 &&
          el.arr_count == 2 && el.len == 2);
    vlmn_gguf_iter_init(&it2, &el);
    CHECK(vlmn_gguf_iter_next(&it2, &inner) && inner.data[0] == 1);
    CHECK(vlmn_gguf_iter_next(&it2, &inner) && inner.data[0] == 2);
    CHECK(!vlmn_gguf_iter_next(&it2, &inner));
    CHECK(vlmn_gguf_iter_next(&it, &el) && el.arr_type == VLMN_GGUF_STRING && el.arr_count == 1);
    vlmn_gguf_iter_init(&it2, &el);
    CHECK(vlmn_gguf_iter_next(&it2, &inner) && inner.type == VLMN_GGUF_STRING && inner.len == 1 &&
          inner.data[0] == 'x');
    CHECK(!vlmn_gguf_iter_next(&it, &el));
    CHECK_EQ_INT(vlmn_gguf_kv_value(g, -1, &v), VLMN_E_ARG);

    /* tensors */
    CHECK_EQ_INT(vlmn_gguf_n_tensors(g), 2);
    const vlmn_gguf_tensor *ta = vlmn_gguf_find_tensor(g, "a"), *tb = vlmn_gguf_find_tensor(g, "b");
    CHECK(ta && tb && !vlmn_gguf_find_tensor(g, "c") && !vlmn_gguf_find_tensor(g, ""));
    if (ta && tb) {
        CHECK(ta->n_dims == 2 && ta->ne[0] == 8 && ta->ne[1] == 3 && ta->ne[2] == 1 && ta->ne[3] == 1);
        CHECK(ta->nbytes == 96 && tb->nbytes == 68 && tb->offset == 96 && tb->type == VLMN_TYPE_Q8_0);
        size_t data_start = o.n - VALID_DATA;
        CHECK((const uint8_t *)ta->data == o.b + data_start);
        CHECK((const uint8_t *)tb->data == o.b + data_start + 96);
        CHECK(vlmn_gguf_tensor_at(g, 1) == tb && vlmn_gguf_tensor_at(g, 2) == NULL);
    }
    vlmn_gguf_close(g);
    gb_free(&o);
}

TEST(version_2_and_default_alignment)
{
    gb_buf kv = {0}, o = {0};
    gb_kv_str(&kv, "general.architecture", "clip");
    struct gb_tensor t = {"w", 1, {4}, VLMN_TYPE_F16, 0};
    gb_file(&o, 2, 1, 1, &kv, &t, 1, 32, 8);
    vlmn_gguf *g = NULL;
    CHECK_MSG(vlmn_gguf_open_memory(o.b, o.n, NAME, &g) == VLMN_OK, "%s", vlmn_errmsg());
    if (g) {
        CHECK_EQ_INT(vlmn_gguf_version(g), 2);
        CHECK_EQ_INT(vlmn_gguf_alignment(g), 32);
        CHECK((const uint8_t *)vlmn_gguf_tensor_at(g, 0)->data == o.b + o.n - 8);
        vlmn_gguf_close(g);
    }
    gb_free(&kv);
    gb_free(&o);
}

TEST(empty_file_with_no_tensors)
{
    gb_buf o = {0};
    gb_file(&o, 3, 0, 0, NULL, NULL, 0, 0, 0);
    vlmn_gguf *g = NULL;
    CHECK(vlmn_gguf_open_memory(o.b, o.n, NAME, &g) == VLMN_OK);
    CHECK(g && vlmn_gguf_n_kv(g) == 0 && vlmn_gguf_n_tensors(g) == 0);
    CHECK(g && vlmn_gguf_find_key(g, "x") == -1 && vlmn_gguf_find_tensor(g, "x") == NULL);
    vlmn_gguf_close(g);
    gb_free(&o);
}

TEST(truncation_at_every_byte)
{
    gb_buf o = {0};
    make_valid(&o);
    int bad = 0;
    for (size_t len = 0; len < o.n; len++) {
        vlmn_gguf *g = NULL;
        uint8_t *c = malloc(len ? len : 1);
        memcpy(c, o.b, len);
        vlmn_status st = vlmn_gguf_open_memory(c, len, NAME, &g);
        const char *m = vlmn_errmsg();
        if (st == VLMN_OK || g || strncmp(m, NAME ": ", strlen(NAME) + 2) || strchr(m, '\n')) {
            if (bad++ < 5) fprintf(stderr, "  len %zu: status %d msg %s\n", len, st, m);
        }
        vlmn_gguf_close(g);
        free(c);
    }
    CHECK_EQ_INT(bad, 0);
    gb_free(&o);
}

TEST(bad_magic_and_versions)
{
    gb_buf o = {0};
    make_valid(&o);
    o.b[0] = 'X';
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "not a GGUF file");
    o.b[0] = 'G';
    o.b[4] = 1;
    EXPECT_FAIL(o.b, o.n, VLMN_E_UNSUPPORTED, "version 1");
    o.b[4] = 4;
    EXPECT_FAIL(o.b, o.n, VLMN_E_UNSUPPORTED, "version 4");
    o.b[4] = 0;
    o.b[7] = 3;
    EXPECT_FAIL(o.b, o.n, VLMN_E_UNSUPPORTED, "big-endian");
    EXPECT_FAIL(o.b, 0, VLMN_E_FORMAT, "too small");
    gb_free(&o);
}

TEST(huge_counts)
{
    gb_buf o = {0};
    make_valid(&o);
    uint64_t big = UINT64_MAX;
    memcpy(o.b + 16, &big, 8); /* n_kv */
    EXPECT_FAIL(o.b, o.n, VLMN_E_RANGE, "metadata count");
    big = 100000;              /* under the limit but more than the file can hold */
    memcpy(o.b + 16, &big, 8);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "cannot fit");
    big = 17;
    memcpy(o.b + 16, &big, 8);
    big = UINT64_MAX;
    memcpy(o.b + 8, &big, 8); /* n_tensors */
    EXPECT_FAIL(o.b, o.n, VLMN_E_RANGE, "tensor count");
    big = 1000;
    memcpy(o.b + 8, &big, 8);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "cannot fit");
    big = 18; /* one more kv than present: the first tensor info is read as a kv */
    memcpy(o.b + 8, &(uint64_t){2}, 8);
    memcpy(o.b + 16, &big, 8);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "");
    gb_free(&o);
}

TEST(string_lengths)
{
    gb_buf kv = {0}, o = {0};
    gb_u64(&kv, UINT64_MAX); /* key length */
    gb_put(&kv, "abcdefghijklmnopqrstuvwxyz", 26);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "string length 18446744073709551615 past end of file");
    gb_free(&kv);
    gb_free(&o);

    gb_str(&kv, "k.str");
    gb_u32(&kv, VLMN_GGUF_STRING);
    gb_u64(&kv, UINT64_MAX - 3);
    gb_put(&kv, "abcdefghijklmnopqrstuvwxyz", 26);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key k.str: string length");
    gb_free(&kv);
    gb_free(&o);

    gb_u64(&kv, 0); /* empty key */
    gb_u32(&kv, VLMN_GGUF_U32);
    gb_u32(&kv, 1);
    gb_u64(&kv, 0);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "empty name");
    gb_free(&kv);
    gb_free(&o);

    gb_u64(&kv, 3); /* key with a NUL */
    gb_put(&kv, "a\0b", 3);
    gb_u32(&kv, VLMN_GGUF_U32);
    gb_u32(&kv, 1);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "name contains a NUL byte");
    gb_free(&kv);
    gb_free(&o);
}

TEST(bad_value_types)
{
    gb_buf kv = {0}, o = {0};
    gb_str(&kv, "k.bad");
    gb_u32(&kv, 13);
    gb_u64(&kv, 0);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key k.bad: bad value type id 13");
    gb_free(&kv);
    gb_free(&o);

    gb_str(&kv, "k.arr");
    gb_u32(&kv, VLMN_GGUF_ARRAY);
    gb_u32(&kv, 0xffffffffu);
    gb_u64(&kv, 1);
    gb_u64(&kv, 0);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key k.arr: bad array element type id 4294967295");
    gb_free(&kv);
    gb_free(&o);

    gb_str(&kv, "k.bool");
    gb_u32(&kv, VLMN_GGUF_BOOL);
    gb_u8(&kv, 2);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key k.bool: bool value 2");
    gb_free(&kv);
    gb_free(&o);

    /* array count x element size overflows */
    gb_str(&kv, "k.arr");
    gb_u32(&kv, VLMN_GGUF_ARRAY);
    gb_u32(&kv, VLMN_GGUF_U64);
    gb_u64(&kv, UINT64_MAX / 4);
    gb_u64(&kv, 0);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key k.arr: array of");
    gb_free(&kv);
    gb_free(&o);

    /* huge string-array count */
    gb_str(&kv, "k.strs");
    gb_u32(&kv, VLMN_GGUF_ARRAY);
    gb_u32(&kv, VLMN_GGUF_STRING);
    gb_u64(&kv, UINT64_MAX);
    gb_u64(&kv, 0);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key k.strs: array of");
    gb_free(&kv);
    gb_free(&o);

    /* a bad element deep inside: the message names its position */
    gb_str(&kv, "k.deep");
    gb_u32(&kv, VLMN_GGUF_ARRAY);
    gb_u32(&kv, VLMN_GGUF_ARRAY);
    gb_u64(&kv, 2);
    gb_u32(&kv, VLMN_GGUF_BOOL);
    gb_u64(&kv, 1);
    gb_u8(&kv, 1);
    gb_u32(&kv, VLMN_GGUF_STRING);
    gb_u64(&kv, 2);
    gb_str(&kv, "ok");
    gb_u64(&kv, 1000);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key k.deep element 1.1: string length 1000");
    gb_free(&kv);
    gb_free(&o);
}

TEST(nesting_depth_limit)
{
    for (int levels = VLMN_GGUF_MAX_ARRAY_DEPTH; levels <= VLMN_GGUF_MAX_ARRAY_DEPTH + 1; levels++) {
        gb_buf kv = {0}, o = {0};
        gb_str(&kv, "k.nest");
        gb_u32(&kv, VLMN_GGUF_ARRAY);
        for (int l = 1; l < levels; l++) {
            gb_u32(&kv, VLMN_GGUF_ARRAY);
            gb_u64(&kv, 1);
        }
        gb_u32(&kv, VLMN_GGUF_U8);
        gb_u64(&kv, 1);
        gb_u8(&kv, 7);
        gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
        if (levels <= VLMN_GGUF_MAX_ARRAY_DEPTH) {
            vlmn_gguf *g = NULL;
            CHECK_MSG(vlmn_gguf_open_memory(o.b, o.n, NAME, &g) == VLMN_OK, "%s", vlmn_errmsg());
            vlmn_gguf_close(g);
        } else {
            EXPECT_FAIL(o.b, o.n, VLMN_E_RANGE, "key k.nest");
        }
        gb_free(&kv);
        gb_free(&o);
    }
}

/* One tensor (or two) with the given fields; data of `data` bytes. */
static void tensor_file(gb_buf *o, const struct gb_tensor *t, int nt, size_t data)
{
    gb_file(o, 3, (uint64_t)nt, 0, NULL, t, nt, 32, data);
}

TEST(bad_tensor_infos)
{
    gb_buf o = {0};
    struct gb_tensor t = {"w.bad", 2, {4, 2}, 99, 0};
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_UNSUPPORTED, "tensor w.bad: unknown tensor type id 99");
    gb_free(&o);
    t.type = 4; /* removed Q4_2 */
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_UNSUPPORTED, "tensor w.bad: unknown tensor type id 4");
    gb_free(&o);
    t.type = VLMN_TYPE_F32;
    t.n_dims = 0;
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.bad: n_dims 0");
    gb_free(&o);
    t.n_dims = 5;
    t.ne[2] = t.ne[3] = t.ne[4] = 1;
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.bad: n_dims 5");
    gb_free(&o);
    t.n_dims = 2;
    t.ne[1] = 0;
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.bad: dimension 1 is 0");
    gb_free(&o);
    t.n_dims = 4;
    t.ne[0] = t.ne[1] = t.ne[2] = t.ne[3] = 1ull << 20; /* 2^80 elements */
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_RANGE, "tensor w.bad: element count overflows");
    gb_free(&o);
    t.n_dims = 2;
    t.ne[0] = 1ull << 62;
    t.ne[1] = 1;
    tensor_file(&o, &t, 1, 64); /* 2^62 F32 values = 2^64 bytes */
    EXPECT_FAIL(o.b, o.n, VLMN_E_RANGE, "tensor w.bad: byte size overflows");
    gb_free(&o);
    t.ne[0] = 33;
    t.type = VLMN_TYPE_Q8_0;
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.bad: row of 33 values is not a whole number of Q8_0 blocks");
    gb_free(&o);
    t.ne[0] = 4;
    t.ne[1] = 2;
    t.type = VLMN_TYPE_F32;
    t.offset = 64; /* 32 bytes at 64 in a 64-byte data section */
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.bad: data at offset 0x40 + 32 bytes past end of file");
    gb_free(&o);
    t.offset = UINT64_MAX - 31; /* aligned, and offset + size overflows */
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.bad: data at offset");
    gb_free(&o);
    t.offset = 8;
    tensor_file(&o, &t, 1, 64);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.bad: offset 0x8 is not a multiple of the alignment 32");
    gb_free(&o);

    struct gb_tensor two[2] = {{"w.one", 1, {16}, VLMN_TYPE_F32, 0}, {"w.two", 1, {8}, VLMN_TYPE_F32, 32}};
    tensor_file(&o, two, 2, 96); /* w.one is 64 bytes: [0,64) overlaps [32,64) */
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.two: data at 0x20 overlaps tensor w.one");
    gb_free(&o);
    two[1].offset = 64;
    two[1].name = "w.one";
    tensor_file(&o, two, 2, 96);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "tensor w.one: duplicate tensor name");
    gb_free(&o);
    two[1].name = "w.two";
    tensor_file(&o, two, 2, 96);
    vlmn_gguf *g = NULL;
    CHECK_MSG(vlmn_gguf_open_memory(o.b, o.n, NAME, &g) == VLMN_OK, "%s", vlmn_errmsg());
    vlmn_gguf_close(g);
    gb_free(&o);
}

static void alignment_file(gb_buf *o, uint32_t type, uint64_t a)
{
    gb_buf kv = {0};
    gb_str(&kv, "general.alignment");
    gb_u32(&kv, type);
    if (type == VLMN_GGUF_U64) gb_u64(&kv, a);
    else if (type == VLMN_GGUF_STRING) gb_str(&kv, "32");
    else gb_u32(&kv, (uint32_t)a);
    /* header = 24 + 33 (kv) + 77 (tensor info) = 134 bytes, padded to 192 */
    struct gb_tensor t = {"w.a.long.name.that.pushes.the.header.past.128", 1, {8}, VLMN_TYPE_F32, 0};
    gb_file(o, 3, 1, 1, &kv, &t, 1, 64, 32);
    gb_free(&kv);
}

TEST(alignment_values)
{
    gb_buf o = {0};
    alignment_file(&o, VLMN_GGUF_U32, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key general.alignment: 0 is not a power of two");
    gb_free(&o);
    alignment_file(&o, VLMN_GGUF_U32, 3);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key general.alignment: 3 is not a power of two");
    gb_free(&o);
    alignment_file(&o, VLMN_GGUF_U64, 1ull << 40);
    EXPECT_FAIL(o.b, o.n, VLMN_E_RANGE, "key general.alignment: 1099511627776 exceeds the limit");
    gb_free(&o);
    alignment_file(&o, VLMN_GGUF_STRING, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_TYPE, "key general.alignment: has type string");
    gb_free(&o);
    alignment_file(&o, VLMN_GGUF_U32, 64);
    vlmn_gguf *g = NULL;
    CHECK_MSG(vlmn_gguf_open_memory(o.b, o.n, NAME, &g) == VLMN_OK, "%s", vlmn_errmsg());
    CHECK(g && vlmn_gguf_alignment(g) == 64);
    CHECK(g && ((const uint8_t *)vlmn_gguf_tensor_at(g, 0)->data - o.b) % 64 == 0);
    vlmn_gguf_close(g);
    gb_free(&o);
    /* the data section must start at the next multiple of the alignment: a file padded
     * to 64 but declaring 128 puts the tensor past the end */
    alignment_file(&o, VLMN_GGUF_U32, 128);
    CHECK_EQ_INT(vlmn_gguf_open_memory(o.b, o.n, NAME, &g), VLMN_E_FORMAT);
    gb_free(&o);
}

TEST(string_with_nul_byte)
{
    gb_buf kv = {0}, o = {0};
    gb_str(&kv, "k.s");
    gb_u32(&kv, VLMN_GGUF_STRING);
    gb_u64(&kv, 3);
    gb_put(&kv, "a\0b", 3);
    gb_file(&o, 3, 0, 1, &kv, NULL, 0, 0, 0);
    vlmn_gguf *g = NULL;
    CHECK(vlmn_gguf_open_memory(o.b, o.n, NAME, &g) == VLMN_OK); /* legal in GGUF */
    const char *s;
    CHECK(g && vlmn_gguf_get_str(g, "k.s", &s) == VLMN_E_FORMAT);
    CHECK_EQ_STR(vlmn_errmsg(), NAME ": key k.s: string contains a NUL byte");
    vlmn_gguf_value v;
    CHECK(g && vlmn_gguf_kv_value(g, 0, &v) == VLMN_OK && v.len == 3 && v.data[1] == 0);
    vlmn_gguf_close(g);
    gb_free(&kv);
    gb_free(&o);
}

TEST(duplicate_keys)
{
    gb_buf kv = {0}, o = {0};
    gb_kv_u32(&kv, "a.b", 1);
    gb_kv_str(&kv, "a.c", "x");
    gb_kv_u32(&kv, "a.b", 2);
    gb_file(&o, 3, 0, 3, &kv, NULL, 0, 0, 0);
    EXPECT_FAIL(o.b, o.n, VLMN_E_FORMAT, "key a.b: duplicate key");
    gb_free(&kv);
    gb_free(&o);
}

TEST(many_keys_and_tensors_lookup)
{
    enum { N = 5000 };
    gb_buf kv = {0}, o = {0};
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "k.%d", (i * 7919) % N);
        gb_kv_u32(&kv, name, (uint32_t)((i * 7919) % N));
    }
    struct gb_tensor *t = calloc(N, sizeof *t);
    char (*names)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 16, "t%d", N - 1 - i);
        t[i] = (struct gb_tensor){names[i], 1, {8}, VLMN_TYPE_F32, (uint64_t)i * 32};
    }
    gb_file(&o, 3, N, N, &kv, t, N, 32, (size_t)N * 32);
    vlmn_gguf *g = NULL;
    CHECK_MSG(vlmn_gguf_open_memory(o.b, o.n, NAME, &g) == VLMN_OK, "%s", vlmn_errmsg());
    int bad = 0;
    for (int i = 0; g && i < N; i++) {
        uint32_t v = 0;
        snprintf(name, sizeof name, "k.%d", i);
        if (vlmn_gguf_get_u32(g, name, &v) || v != (uint32_t)i) bad++;
        snprintf(name, sizeof name, "t%d", i);
        const vlmn_gguf_tensor *tt = vlmn_gguf_find_tensor(g, name);
        if (!tt || tt->offset != (uint64_t)(N - 1 - i) * 32) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    vlmn_gguf_close(g);
    free(t);
    free(names);
    gb_free(&kv);
    gb_free(&o);
}

TEST(open_from_disk)
{
    gb_buf o = {0};
    make_valid(&o);
    const char *p = test_path(test_tmp_dir(), "test_gguf_valid.gguf");
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fwrite(o.b, 1, o.n, f);
    fclose(f);
    vlmn_gguf *g = NULL;
    CHECK_MSG(vlmn_gguf_open(p, &g) == VLMN_OK, "%s", vlmn_errmsg());
    const vlmn_gguf_tensor *t = g ? vlmn_gguf_find_tensor(g, "b") : NULL;
    CHECK(t && !memcmp(t->data, o.b + o.n - VALID_DATA + 96, 68));
    vlmn_gguf_close(g);
    f = fopen(p, "wb");
    fwrite(o.b, 1, o.n - 1, f);
    fclose(f);
    CHECK_EQ_INT(vlmn_gguf_open(p, &g), VLMN_E_FORMAT);
    CHECK(strncmp(vlmn_errmsg(), p, strlen(p)) == 0);
    f = fopen(p, "wb");
    fclose(f);
    CHECK_EQ_INT(vlmn_gguf_open(p, &g), VLMN_E_FORMAT);
    unlink(p);
    CHECK_EQ_INT(vlmn_gguf_open(p, &g), VLMN_E_NOTFOUND);
    CHECK(strstr(vlmn_errmsg(), "test_gguf_valid.gguf") != NULL);
    CHECK_EQ_INT(vlmn_gguf_open(test_tmp_dir(), &g), VLMN_E_IO);
    CHECK(g == NULL);
    gb_free(&o);
}

TEST(allocation_failures)
{
    gb_buf o = {0};
    make_valid(&o);
    int ok = 0, nomem = 0, other = 0;
    for (long k = 1; k < 40; k++) {
        vlmn_gguf *g = NULL;
        vlmn_alloc_fail_after(k);
        vlmn_status st = vlmn_gguf_open_memory(o.b, o.n, NAME, &g);
        vlmn_alloc_fail_after(0);
        if (st == VLMN_OK) ok++;
        else if (st == VLMN_E_NOMEM) nomem++;
        else other++;
        vlmn_gguf_close(g);
    }
    CHECK(nomem > 3);
    CHECK(ok > 0);
    CHECK_EQ_INT(other, 0);
    gb_free(&o);
}

TEST_MAIN()
