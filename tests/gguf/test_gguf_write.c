/* Tests for the GGUF writer (src/gguf/gguf_write.c): bit-exact round trips through the
 * reader for every metadata type (nested arrays included) and for F32/F16/BF16/Q8_0
 * and raw tensors, fill-streamed tensors, alignment, atomic replacement, bad calls. */
#include "test.h"
#include "vlmn/gguf.h"
#include "gguf_build.h"
#include "core/alloc.h"

#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

static const char *tmpfile_path(const char *name) { return test_path(test_tmp_dir(), name); }

/* Simple deterministic floats. */
static float frand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return ((float)(*s >> 8) / (float)(1u << 24) - 0.5f) * 8.0f;
}

static int count_tmp_leftovers(const char *prefix)
{
    DIR *d = opendir(test_tmp_dir());
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

TEST(metadata_round_trip_every_type)
{
    vlmn_gguf_writer *w = NULL;
    CHECK(vlmn_gguf_writer_create(&w) == VLMN_OK);
    uint8_t u8 = 255;
    int8_t i8 = -128;
    uint16_t u16 = 65535;
    int16_t i16 = -32768;
    int64_t i64 = INT64_MIN;
    double f64 = -1.0 / 3.0;
    CHECK(vlmn_gguf_set_str(w, "general.architecture", "llama") == VLMN_OK);
    CHECK(vlmn_gguf_set_scalar(w, "t.u8", VLMN_GGUF_U8, &u8) == VLMN_OK);
    CHECK(vlmn_gguf_set_scalar(w, "t.i8", VLMN_GGUF_I8, &i8) == VLMN_OK);
    CHECK(vlmn_gguf_set_scalar(w, "t.u16", VLMN_GGUF_U16, &u16) == VLMN_OK);
    CHECK(vlmn_gguf_set_scalar(w, "t.i16", VLMN_GGUF_I16, &i16) == VLMN_OK);
    CHECK(vlmn_gguf_set_u32(w, "t.u32", UINT32_MAX) == VLMN_OK);
    CHECK(vlmn_gguf_set_i32(w, "t.i32", INT32_MIN) == VLMN_OK);
    CHECK(vlmn_gguf_set_f32(w, "t.f32", -0.0f) == VLMN_OK);
    CHECK(vlmn_gguf_set_bool(w, "t.bool", false) == VLMN_OK);
    CHECK(vlmn_gguf_set_u64(w, "t.u64", UINT64_MAX) == VLMN_OK);
    CHECK(vlmn_gguf_set_scalar(w, "t.i64", VLMN_GGUF_I64, &i64) == VLMN_OK);
    CHECK(vlmn_gguf_set_scalar(w, "t.f64", VLMN_GGUF_F64, &f64) == VLMN_OK);
    CHECK(vlmn_gguf_set_str(w, "t.unicode", "h\xc3\xa9llo \xe2\x96\x81 \xf0\x9f\x98\x80") == VLMN_OK);
    CHECK(vlmn_gguf_set_str(w, "t.empty", "") == VLMN_OK);
    float fa[3] = {1.0f, -2.5f, 1e-30f};
    CHECK(vlmn_gguf_set_arr(w, "t.arr_f32", VLMN_GGUF_F32, fa, 3) == VLMN_OK);
    uint64_t ua[2] = {0, UINT64_MAX};
    CHECK(vlmn_gguf_set_arr(w, "t.arr_u64", VLMN_GGUF_U64, ua, 2) == VLMN_OK);
    uint8_t ba[3] = {1, 0, 1};
    CHECK(vlmn_gguf_set_arr(w, "t.arr_bool", VLMN_GGUF_BOOL, ba, 3) == VLMN_OK);
    CHECK(vlmn_gguf_set_arr(w, "t.arr_empty", VLMN_GGUF_I32, NULL, 0) == VLMN_OK);
    const char *strs[3] = {"<s>", "\xe2\x96\x81the", ""};
    CHECK(vlmn_gguf_set_arr_str(w, "t.arr_str", strs, 3) == VLMN_OK);
    /* replacing keeps one entry */
    CHECK(vlmn_gguf_set_u32(w, "t.replaced", 1) == VLMN_OK);
    CHECK(vlmn_gguf_set_str(w, "t.replaced", "two") == VLMN_OK);

    /* nested arrays come from a reader view */
    gb_buf kv = {0}, src = {0};
    gb_str(&kv, "src.nested");
    gb_u32(&kv, VLMN_GGUF_ARRAY);
    gb_u32(&kv, VLMN_GGUF_ARRAY);
    gb_u64(&kv, 2);
    gb_u32(&kv, VLMN_GGUF_I16);
    gb_u64(&kv, 1);
    gb_u8(&kv, 0xff);
    gb_u8(&kv, 0x7f);
    gb_u32(&kv, VLMN_GGUF_ARRAY);
    gb_u64(&kv, 1);
    gb_u32(&kv, VLMN_GGUF_STRING);
    gb_u64(&kv, 1);
    gb_str(&kv, "deep");
    gb_file(&src, 3, 0, 1, &kv, NULL, 0, 0, 0);
    vlmn_gguf *gs = NULL;
    CHECK(vlmn_gguf_open_memory(src.b, src.n, "src", &gs) == VLMN_OK);
    vlmn_gguf_value nv;
    CHECK(gs && vlmn_gguf_kv_value(gs, 0, &nv) == VLMN_OK);
    if (gs) CHECK(vlmn_gguf_set_value(w, "t.nested", &nv) == VLMN_OK);
    vlmn_gguf_close(gs);

    const char *p = tmpfile_path("rt_meta.gguf");
    CHECK_MSG(vlmn_gguf_write(w, p) == VLMN_OK, "%s", vlmn_errmsg());
    vlmn_gguf_writer_free(w);

    vlmn_gguf *g = NULL;
    CHECK_MSG(vlmn_gguf_open(p, &g) == VLMN_OK, "%s", vlmn_errmsg());
    if (!g) goto out;
    CHECK_EQ_INT(vlmn_gguf_n_kv(g), 21);
    CHECK_EQ_INT(vlmn_gguf_version(g), 3);
    /* insertion order kept */
    vlmn_gguf_str k0 = vlmn_gguf_key(g, 0), k1 = vlmn_gguf_key(g, 1);
    CHECK(k0.len == 20 && !memcmp(k0.ptr, "general.architecture", 20));
    CHECK(k1.len == 4 && !memcmp(k1.ptr, "t.u8", 4));
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t s64;
    float f;
    double d;
    bool b = true;
    const char *s;
    CHECK(vlmn_gguf_get_u32(g, "t.u8", &u32) == VLMN_OK && u32 == 255);
    CHECK(vlmn_gguf_get_i32(g, "t.i8", &i32) == VLMN_OK && i32 == -128);
    CHECK(vlmn_gguf_get_u32(g, "t.u16", &u32) == VLMN_OK && u32 == 65535);
    CHECK(vlmn_gguf_get_i32(g, "t.i16", &i32) == VLMN_OK && i32 == -32768);
    CHECK(vlmn_gguf_get_u32(g, "t.u32", &u32) == VLMN_OK && u32 == UINT32_MAX);
    CHECK(vlmn_gguf_get_i32(g, "t.i32", &i32) == VLMN_OK && i32 == INT32_MIN);
    CHECK(vlmn_gguf_get_f32(g, "t.f32", &f) == VLMN_OK && f == 0.0f && signbit(f));
    CHECK(vlmn_gguf_get_bool(g, "t.bool", &b) == VLMN_OK && !b);
    CHECK(vlmn_gguf_get_u64(g, "t.u64", &u64) == VLMN_OK && u64 == UINT64_MAX);
    CHECK(vlmn_gguf_get_i64(g, "t.i64", &s64) == VLMN_OK && s64 == INT64_MIN);
    CHECK(vlmn_gguf_get_f64(g, "t.f64", &d) == VLMN_OK && d == f64);
    CHECK(vlmn_gguf_get_str(g, "t.unicode", &s) == VLMN_OK);
    CHECK_EQ_STR(s, "h\xc3\xa9llo \xe2\x96\x81 \xf0\x9f\x98\x80");
    CHECK(vlmn_gguf_get_str(g, "t.empty", &s) == VLMN_OK && s[0] == 0);
    CHECK(vlmn_gguf_get_str(g, "t.replaced", &s) == VLMN_OK);
    CHECK_EQ_STR(s, "two");
    CHECK(vlmn_gguf_find_key(g, "t.replaced") == 19);
    float fb[3];
    CHECK(vlmn_gguf_get_arr_f32(g, "t.arr_f32", fb, 3) == VLMN_OK && !memcmp(fa, fb, 12));
    const void *data;
    uint64_t n;
    CHECK(vlmn_gguf_get_arr(g, "t.arr_u64", VLMN_GGUF_U64, &data, &n) == VLMN_OK && n == 2 && !memcmp(data, ua, 16));
    CHECK(vlmn_gguf_get_arr(g, "t.arr_bool", VLMN_GGUF_BOOL, &data, &n) == VLMN_OK && n == 3 && !memcmp(data, ba, 3));
    CHECK(vlmn_gguf_get_arr(g, "t.arr_empty", VLMN_GGUF_I32, &data, &n) == VLMN_OK && n == 0);
    for (uint64_t j = 0; j < 3; j++) {
        vlmn_gguf_str e;
        CHECK(vlmn_gguf_get_arr_str(g, "t.arr_str", j, &e) == VLMN_OK && e.len == strlen(strs[j]) &&
              !memcmp(e.ptr, strs[j], e.len));
    }
    /* the nested value is byte-identical to its source */
    vlmn_gguf_value v;
    CHECK(vlmn_gguf_kv_value(g, vlmn_gguf_find_key(g, "t.nested"), &v) == VLMN_OK);
    CHECK(v.type == VLMN_GGUF_ARRAY && v.arr_type == VLMN_GGUF_ARRAY && v.arr_count == 2);
    size_t nested_off = 24 + 8 + strlen("src.nested") + 4 + 12;
    CHECK(v.len == src.n - nested_off && !memcmp(v.data, src.b + nested_off, (size_t)v.len));
out:
    vlmn_gguf_close(g);
    gb_free(&kv);
    gb_free(&src);
    unlink(p);
}

struct fill_ctx {
    uint32_t seed;
    int calls;
    vlmn_status fail;
};

static vlmn_status fill_f32(void *user, void *dst, uint64_t nbytes)
{
    struct fill_ctx *c = user;
    c->calls++;
    if (c->fail) return vlmn_error(c->fail, "fill refused");
    float *f = dst;
    uint32_t s = c->seed;
    for (uint64_t i = 0; i < nbytes / 4; i++) f[i] = frand(&s);
    return VLMN_OK;
}

TEST(tensor_round_trip)
{
    enum { R = 3, C = 37, QC = 64 };
    uint32_t seed = 7;
    float x[R * QC], q4k[2 * 144 / 4 + 1];
    for (int i = 0; i < R * QC; i++) x[i] = frand(&seed);
    uint8_t raw_q4k[2 * 144];
    for (int i = 0; i < 2 * 144; i++) raw_q4k[i] = (uint8_t)(i * 37 + 11);
    (void)q4k;

    vlmn_gguf_writer *w = NULL;
    CHECK(vlmn_gguf_writer_create(&w) == VLMN_OK);
    CHECK(vlmn_gguf_set_u32(w, "general.alignment", 64) == VLMN_OK);
    uint64_t ne_odd[2] = {C, R}, ne_q[2] = {QC, R}, ne_k[1] = {512}, ne_fill[3] = {1000, 3, 2};
    CHECK(vlmn_gguf_add_tensor_f32(w, "f32", VLMN_TYPE_F32, 2, ne_odd, x) == VLMN_OK);
    CHECK(vlmn_gguf_add_tensor_f32(w, "f16", VLMN_TYPE_F16, 2, ne_odd, x) == VLMN_OK);
    CHECK(vlmn_gguf_add_tensor_f32(w, "bf16", VLMN_TYPE_BF16, 2, ne_odd, x) == VLMN_OK);
    CHECK(vlmn_gguf_add_tensor_f32(w, "q8_0", VLMN_TYPE_Q8_0, 2, ne_q, x) == VLMN_OK);
    CHECK(vlmn_gguf_add_tensor(w, "q4_k.raw", VLMN_TYPE_Q4_K, 1, ne_k, raw_q4k) == VLMN_OK);
    struct fill_ctx fc = {.seed = 99};
    CHECK(vlmn_gguf_add_tensor_fill(w, "filled", VLMN_TYPE_F32, 3, ne_fill, fill_f32, &fc) == VLMN_OK);
    const char *p = tmpfile_path("rt_tensors.gguf");
    CHECK_MSG(vlmn_gguf_write(w, p) == VLMN_OK, "%s", vlmn_errmsg());
    CHECK_EQ_INT(fc.calls, 1);
    vlmn_gguf_writer_free(w);

    vlmn_gguf *g = NULL;
    CHECK_MSG(vlmn_gguf_open(p, &g) == VLMN_OK, "%s", vlmn_errmsg());
    if (!g) return;
    CHECK_EQ_INT(vlmn_gguf_alignment(g), 64);
    CHECK_EQ_INT(vlmn_gguf_n_tensors(g), 6);
    for (int64_t i = 0; i < vlmn_gguf_n_tensors(g); i++) CHECK(vlmn_gguf_tensor_at(g, i)->offset % 64 == 0);
    float y[R * QC];
    const vlmn_gguf_tensor *t = vlmn_gguf_find_tensor(g, "f32");
    CHECK(t && t->n_dims == 2 && t->ne[0] == C && t->ne[1] == R && t->nbytes == R * C * 4);
    CHECK(t && !memcmp(t->data, x, R * C * 4));
    t = vlmn_gguf_find_tensor(g, "f16");
    int bad = 0;
    for (int i = 0; t && i < R * C; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
        if (h != vlmn_f32_to_f16(x[i])) bad++;
    }
    CHECK(t && vlmn_dequant(t->type, t->data, y, R * C) == VLMN_OK);
    for (int i = 0; t && i < R * C; i++)
        if (y[i] != vlmn_f16_to_f32(vlmn_f32_to_f16(x[i])) || fabsf(y[i] - x[i]) > 4e-3f) bad++;
    /* row ranges */
    float rows[2 * C];
    CHECK(t && vlmn_gguf_tensor_rows(t) == R);
    CHECK(t && vlmn_gguf_tensor_rows_f32(t, 1, 2, rows) == VLMN_OK && !memcmp(rows, y + C, sizeof rows));
    CHECK(t && vlmn_gguf_tensor_rows_f32(t, 3, 0, rows) == VLMN_OK);
    CHECK(t && vlmn_gguf_tensor_rows_f32(t, 2, 2, rows) == VLMN_E_RANGE);
    CHECK(strstr(vlmn_errmsg(), "tensor f16: 2 rows from row 2 outside its 3 rows") != NULL);
    CHECK(t && vlmn_gguf_tensor_rows_f32(t, -1, 1, rows) == VLMN_E_RANGE);
    CHECK(t && vlmn_gguf_tensor_rows_f32(t, 1, INT64_MAX, rows) == VLMN_E_RANGE);
    t = vlmn_gguf_find_tensor(g, "bf16");
    for (int i = 0; t && i < R * C; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
        if (h != vlmn_f32_to_bf16(x[i])) bad++;
    }
    CHECK(t && vlmn_dequant(t->type, t->data, y, R * C) == VLMN_OK);
    for (int i = 0; t && i < R * C; i++)
        if (fabsf(y[i] - x[i]) > fabsf(x[i]) / 128) bad++;
    CHECK_EQ_INT(bad, 0);
    t = vlmn_gguf_find_tensor(g, "q8_0");
    uint8_t qref[R * QC / 32 * 34];
    vlmn_quantize_q8_0(x, qref, R * QC);
    CHECK(t && t->nbytes == sizeof qref && !memcmp(t->data, qref, sizeof qref));
    CHECK(t && vlmn_dequant(t->type, t->data, y, R * QC) == VLMN_OK);
    for (int i = 0; t && i < R * QC; i++) /* |error| <= d/2 with d = amax/127 <= 4/127 */
        if (fabsf(y[i] - x[i]) > 4.0f / 127 / 2 * 1.01f) bad++;
    CHECK_EQ_INT(bad, 0);
    float qrow[QC];
    CHECK(t && vlmn_gguf_tensor_rows_f32(t, 2, 1, qrow) == VLMN_OK && !memcmp(qrow, y + 2 * QC, sizeof qrow));
    t = vlmn_gguf_find_tensor(g, "q4_k.raw");
    CHECK(t && t->nbytes == sizeof raw_q4k && !memcmp(t->data, raw_q4k, sizeof raw_q4k));
    float krow[512], kall[512];
    CHECK(t && vlmn_gguf_tensor_rows_f32(t, 0, 1, krow) == VLMN_OK);
    CHECK(vlmn_dequant(VLMN_TYPE_Q4_K, raw_q4k, kall, 512) == VLMN_OK && !memcmp(krow, kall, sizeof krow));
    t = vlmn_gguf_find_tensor(g, "filled");
    CHECK(t && t->n_dims == 3 && t->ne[2] == 2 && t->nbytes == 6000 * 4);
    uint32_t s = 99;
    for (int i = 0; t && i < 6000; i++) {
        float v;
        memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
        if (v != frand(&s)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* the file ends with the last tensor's data */
    const vlmn_gguf_tensor *last = vlmn_gguf_tensor_at(g, 5);
    FILE *f = fopen(p, "rb");
    uint8_t tail[64];
    CHECK(f && fseek(f, -64, SEEK_END) == 0 && fread(tail, 1, 64, f) == 64);
    CHECK(!memcmp(tail, (const uint8_t *)last->data + last->nbytes - 64, 64));
    if (f) fclose(f);
    vlmn_gguf_close(g);
    unlink(p);
}

TEST(atomic_replace_and_failures)
{
    const char *p = tmpfile_path("rt_atomic.gguf");
    vlmn_gguf_writer *w = NULL;
    vlmn_gguf_writer_create(&w);
    vlmn_gguf_set_str(w, "general.name", "first");
    CHECK(vlmn_gguf_write(w, p) == VLMN_OK);
    vlmn_gguf_set_str(w, "general.name", "second");
    CHECK(vlmn_gguf_write(w, p) == VLMN_OK);
    vlmn_gguf *g = NULL;
    const char *s = NULL;
    CHECK(vlmn_gguf_open(p, &g) == VLMN_OK && vlmn_gguf_get_str(g, "general.name", &s) == VLMN_OK);
    CHECK_EQ_STR(s, "second");
    vlmn_gguf_close(g);

    /* a failing fill leaves the old file and no temporary behind */
    struct fill_ctx fc = {.seed = 1, .fail = VLMN_E_INTERRUPTED};
    uint64_t ne[1] = {8};
    CHECK(vlmn_gguf_add_tensor_fill(w, "x", VLMN_TYPE_F32, 1, ne, fill_f32, &fc) == VLMN_OK);
    CHECK_EQ_INT(vlmn_gguf_write(w, p), VLMN_E_INTERRUPTED);
    CHECK(strstr(vlmn_errmsg(), "tensor x") && strstr(vlmn_errmsg(), "fill refused"));
    CHECK_EQ_INT(count_tmp_leftovers("rt_atomic.gguf"), 0);
    CHECK(vlmn_gguf_open(p, &g) == VLMN_OK && vlmn_gguf_n_tensors(g) == 0);
    vlmn_gguf_close(g);
    vlmn_gguf_writer_free(w);
    unlink(p);

    vlmn_gguf_writer_create(&w);
    CHECK_EQ_INT(vlmn_gguf_write(w, "/nonexistent-dir-vlmn/x.gguf"), VLMN_E_IO);
    CHECK(strstr(vlmn_errmsg(), "/nonexistent-dir-vlmn/x.gguf") != NULL);
    vlmn_gguf_writer_free(w);
}

TEST(writer_rejects_bad_calls)
{
    vlmn_gguf_writer *w = NULL;
    vlmn_gguf_writer_create(&w);
    float v[64] = {0};
    uint64_t ne[4] = {32, 2, 1, 1}, ne0[2] = {32, 0}, ne33[1] = {33};
    CHECK(vlmn_gguf_add_tensor_f32(w, "a", VLMN_TYPE_F32, 2, ne, v) == VLMN_OK);
    CHECK_EQ_INT(vlmn_gguf_add_tensor_f32(w, "a", VLMN_TYPE_F32, 2, ne, v), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_add_tensor_f32(w, "", VLMN_TYPE_F32, 2, ne, v), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_add_tensor_f32(w, "b", VLMN_TYPE_F32, 0, ne, v), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_add_tensor_f32(w, "b", VLMN_TYPE_F32, 5, ne, v), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_add_tensor_f32(w, "b", VLMN_TYPE_F32, 2, ne0, v), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_add_tensor_f32(w, "b", VLMN_TYPE_Q8_0, 1, ne33, v), VLMN_E_RANGE);
    CHECK(strstr(vlmn_errmsg(), "tensor b") != NULL);
    CHECK_EQ_INT(vlmn_gguf_add_tensor_f32(w, "b", VLMN_TYPE_Q4_K, 1, ne, v), VLMN_E_UNSUPPORTED);
    CHECK_EQ_INT(vlmn_gguf_add_tensor(w, "b", 99, 1, ne, v), VLMN_E_UNSUPPORTED);
    CHECK_EQ_INT(vlmn_gguf_add_tensor(w, "b", VLMN_TYPE_F32, 1, ne, NULL), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_add_tensor_fill(w, "b", VLMN_TYPE_F32, 1, ne, NULL, NULL), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_set_u32(w, "general.alignment", 64), VLMN_E_ARG); /* after tensors */
    CHECK_EQ_INT(vlmn_gguf_set_u32(w, "", 1), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_set_arr(w, "k", VLMN_GGUF_STRING, v, 1), VLMN_E_ARG);
    uint8_t two = 2;
    CHECK_EQ_INT(vlmn_gguf_set_scalar(w, "k", VLMN_GGUF_BOOL, &two), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_set_scalar(w, "k", VLMN_GGUF_ARRAY, &two), VLMN_E_ARG);
    vlmn_gguf_writer_free(w);
    vlmn_gguf_writer_create(&w);
    CHECK_EQ_INT(vlmn_gguf_set_u32(w, "general.alignment", 3), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_set_u32(w, "general.alignment", 0), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_set_u64(w, "general.alignment", 1ull << 40), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_gguf_set_str(w, "general.alignment", "x"), VLMN_E_ARG);
    vlmn_gguf_writer_free(w);
    vlmn_gguf_writer_free(NULL);
}

TEST(allocation_failures)
{
    const char *p = tmpfile_path("rt_alloc.gguf");
    int ok = 0, nomem = 0, other = 0;
    for (long k = 1; k < 40; k++) {
        vlmn_gguf_writer *w = NULL;
        float v[64] = {1.0f};
        uint64_t ne[1] = {64};
        const char *strs[2] = {"a", "b"};
        vlmn_alloc_fail_after(k);
        vlmn_status st = vlmn_gguf_writer_create(&w);
        if (!st) st = vlmn_gguf_set_str(w, "general.architecture", "llama");
        if (!st) st = vlmn_gguf_set_arr_str(w, "t.s", strs, 2);
        if (!st) st = vlmn_gguf_set_arr(w, "t.f", VLMN_GGUF_F32, v, 64);
        if (!st) st = vlmn_gguf_add_tensor_f32(w, "a", VLMN_TYPE_Q8_0, 1, ne, v);
        if (!st) st = vlmn_gguf_add_tensor_f32(w, "b", VLMN_TYPE_F16, 1, ne, v);
        if (!st) st = vlmn_gguf_write(w, p);
        vlmn_alloc_fail_after(0);
        if (st == VLMN_OK) ok++;
        else if (st == VLMN_E_NOMEM) nomem++;
        else {
            other++;
            fprintf(stderr, "  k=%ld: %s\n", k, vlmn_errmsg());
        }
        vlmn_gguf_writer_free(w);
    }
    CHECK(nomem > 5);
    CHECK(ok > 0);
    CHECK_EQ_INT(other, 0);
    CHECK_EQ_INT(count_tmp_leftovers("rt_alloc.gguf"), 0);
    unlink(p);
}

TEST_MAIN()
