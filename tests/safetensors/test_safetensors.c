/* safetensors reader: well-formed files and folders read back exactly; every hostile
 * header (length past the file, 100 MB header, bad JSON, bad dtype, shape x dtype
 * overflow, out-of-range / overlapping offsets, duplicates, bad index) gives one error
 * line naming the file and the problem. */
#include "test.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vlmn/safetensors.h"

/* 8-byte length + header + data bytes, in a static buffer. */
static uint8_t fbuf[4096];
static size_t make(const char *hdr, size_t data_bytes)
{
    size_t n = strlen(hdr);
    for (int i = 0; i < 8; i++) fbuf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(fbuf + 8, hdr, n);
    for (size_t i = 0; i < data_bytes; i++) fbuf[8 + n + i] = (uint8_t)(i * 7 + 1);
    return 8 + n + data_bytes;
}

/* Open from memory; expect failure with status `want` and `frag` in the message. */
static void expect_fail(const char *hdr, size_t data, vlmn_status want, const char *frag)
{
    size_t n = make(hdr, data);
    vlmn_st *s = (vlmn_st *)1;
    vlmn_status st = vlmn_st_open_memory(fbuf, n, "bad.safetensors", &s);
    CHECK_MSG(st == want, "status %d, want %d for %s (%s)", (int)st, (int)want, hdr, vlmn_errmsg());
    CHECK(s == NULL);
    const char *m = vlmn_errmsg();
    CHECK_MSG(strstr(m, "bad.safetensors: ") == m, "message does not name the file: %s", m);
    CHECK_MSG(strstr(m, frag) != NULL, "message '%s' lacks '%s'", m, frag);
    CHECK_MSG(!strchr(m, '\n'), "message is not one line: %s", m);
}

TEST(reads_tensors)
{
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                    "\"s\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[30,32]}}  ";
    size_t n = make(h, 32);
    vlmn_st *s = NULL;
    CHECK_EQ_INT(vlmn_st_open_memory(fbuf, n, "ok.safetensors", &s), VLMN_OK);
    if (!s) return;
    CHECK_EQ_INT(vlmn_st_n_tensors(s), 3);
    CHECK_EQ_STR(vlmn_st_tensor_at(s, 0)->name, "a");
    CHECK_EQ_STR(vlmn_st_metadata(s, "format"), "pt");
    CHECK(vlmn_st_metadata(s, "nothing") == NULL);
    const vlmn_st_tensor *a = vlmn_st_find(s, "a"), *b = vlmn_st_find(s, "b"), *sc = vlmn_st_find(s, "s");
    CHECK(a && b && sc && !vlmn_st_find(s, "c"));
    if (!a || !b || !sc) goto done;
    CHECK_EQ_INT(a->type, VLMN_TYPE_F32);
    CHECK_EQ_INT(a->n_dims, 2);
    CHECK_EQ_INT(a->shape[0], 2);
    CHECK_EQ_INT(a->shape[1], 3);
    CHECK_EQ_INT(vlmn_st_numel(a), 6);
    CHECK(a->data == fbuf + 8 + strlen(h)); /* zero-copy */
    CHECK_EQ_INT(b->type, VLMN_TYPE_BF16);
    CHECK(b->data == fbuf + 8 + strlen(h) + 24);
    CHECK_EQ_INT(sc->n_dims, 0);
    CHECK_EQ_INT(vlmn_st_numel(sc), 1);
done:
    vlmn_st_close(s);
}

TEST(hostile_headers)
{
    /* too small, header length past the file, a 100 MB header */
    vlmn_st *s;
    CHECK_EQ_INT(vlmn_st_open_memory("\x01\x00", 2, "bad.safetensors", &s), VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "too small"));
    uint8_t past[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK_EQ_INT(vlmn_st_open_memory(past, sizeof past, "bad.safetensors", &s), VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "header length 200 past end of file (size 16)"));
    uint8_t huge[16] = {0x00, 0xe1, 0xf5, 0x05, 0, 0, 0, 0}; /* 100,000,000 */
    CHECK_EQ_INT(vlmn_st_open_memory(huge, sizeof huge, "bad.safetensors", &s), VLMN_E_RANGE);
    CHECK(strstr(vlmn_errmsg(), "header length 100000000 exceeds the limit"));
    uint8_t wrap[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ_INT(vlmn_st_open_memory(wrap, sizeof wrap, "bad.safetensors", &s), VLMN_E_RANGE);

    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, VLMN_E_FORMAT, "not valid JSON");
    expect_fail("[1,2]", 0, VLMN_E_FORMAT, "not a JSON object");
    expect_fail("{} x", 0, VLMN_E_FORMAT, "bytes after the JSON object");
    expect_fail("{\"a\":7}", 0, VLMN_E_FORMAT, "tensor a: entry is not an object");
    expect_fail("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, VLMN_E_FORMAT, "tensor a: dtype missing");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, VLMN_E_FORMAT, "tensor a: shape missing");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, VLMN_E_FORMAT, "tensor a: data_offsets");
    expect_fail("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, VLMN_E_FORMAT, "unknown dtype \"Q4\"");
    expect_fail("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, VLMN_E_UNSUPPORTED,
                "tensor a: dtype I64 not supported (only F32, F16, BF16)");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, VLMN_E_FORMAT, "shape[0]");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, VLMN_E_FORMAT, "shape[0]");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,2,3,4,5,6,7,8,9],\"data_offsets\":[0,4]}}", 4, VLMN_E_RANGE,
                "9 dimensions");
    /* 2^32 * 2^32 * 4 bytes wraps 64 bits */
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
                VLMN_E_RANGE, "tensor a: shape x dtype size overflows");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, VLMN_E_FORMAT,
                "tensor a: data_offsets [0, 8] outside the data section (4 bytes)");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, VLMN_E_FORMAT, "outside the data");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 8, VLMN_E_FORMAT, "data_offsets");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, VLMN_E_MISMATCH,
                "tensor a: data_offsets span 4 bytes, shape x dtype needs 8");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, VLMN_E_FORMAT, "tensor b: data overlaps tensor a");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8, VLMN_E_FORMAT, "tensor a: duplicate tensor name");
    expect_fail("{\"__metadata__\":{\"k\":1}}", 0, VLMN_E_FORMAT, "__metadata__ key k is not a string");
    expect_fail("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, VLMN_E_FORMAT, "empty name");
}

static const char *tmpdir(const char *name)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/st_%s", getenv("VLMN_TMP") ? getenv("VLMN_TMP") : "/tmp", name);
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", p, p);
    if (system(cmd)) return NULL;
    return p;
}

static void put(const char *dir, const char *name, const void *b, size_t n)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(b, 1, n, f) == n);
    fclose(f);
}

TEST(big_header_file)
{
    /* a sparse file whose header really is 100 MB */
    const char *d = tmpdir("big");
    if (!d) return;
    char p[1200];
    snprintf(p, sizeof p, "%s/big.safetensors", d);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(fd >= 0);
    uint8_t len[8] = {0x00, 0xe1, 0xf5, 0x05, 0, 0, 0, 0};
    CHECK(write(fd, len, 8) == 8);
    CHECK(ftruncate(fd, 100000008) == 0);
    close(fd);
    vlmn_st *s;
    CHECK_EQ_INT(vlmn_st_open(p, &s), VLMN_E_RANGE);
    CHECK(strstr(vlmn_errmsg(), "big.safetensors: header length 100000000 exceeds the limit"));
}

TEST(folder_with_index)
{
    const char *d = tmpdir("idx");
    if (!d) return;
    size_t n = make("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    put(d, "s1.safetensors", fbuf, n);
    n = make("{\"y\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2);
    put(d, "s2.safetensors", fbuf, n);
    const char *idx = "{\"metadata\":{},\"weight_map\":{\"x\":\"s1.safetensors\",\"y\":\"s2.safetensors\"}}";
    put(d, "model.safetensors.index.json", idx, strlen(idx));
    vlmn_st *s = NULL;
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_OK);
    if (s) {
        CHECK_EQ_INT(vlmn_st_n_shards(s), 2);
        CHECK_EQ_INT(vlmn_st_n_tensors(s), 2);
        CHECK(vlmn_st_find(s, "y") && vlmn_st_find(s, "y")->shard == 1);
        vlmn_st_close(s);
    }
    /* the index names a tensor that is in another shard */
    idx = "{\"weight_map\":{\"x\":\"s1.safetensors\",\"y\":\"s2.safetensors\",\"z\":\"s1.safetensors\"}}";
    put(d, "model.safetensors.index.json", idx, strlen(idx));
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_E_NOTFOUND);
    CHECK(strstr(vlmn_errmsg(), "tensor z: listed in the index but in no shard"));
    idx = "{\"weight_map\":{\"x\":\"s2.safetensors\",\"y\":\"s1.safetensors\"}}";
    put(d, "model.safetensors.index.json", idx, strlen(idx));
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_E_MISMATCH);
    CHECK(strstr(vlmn_errmsg(), "index says s2.safetensors"));
    /* a shard holds a tensor the index does not list */
    idx = "{\"weight_map\":{\"x\":\"s1.safetensors\"}}";
    put(d, "model.safetensors.index.json", idx, strlen(idx));
    n = make("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    put(d, "s1.safetensors", fbuf, n);
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_E_MISMATCH);
    CHECK(strstr(vlmn_errmsg(), "tensor w: not listed in"));
    /* the same name in two shards */
    n = make("{\"x\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2);
    put(d, "s2.safetensors", fbuf, n);
    idx = "{\"weight_map\":{\"x\":\"s1.safetensors\",\"w\":\"s2.safetensors\"}}";
    put(d, "model.safetensors.index.json", idx, strlen(idx));
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "tensor x: duplicate tensor name"));
    /* shard names that leave the folder, a missing shard, bad JSON */
    idx = "{\"weight_map\":{\"x\":\"../s1.safetensors\"}}";
    put(d, "model.safetensors.index.json", idx, strlen(idx));
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "not a file name in the folder"));
    idx = "{\"weight_map\":{\"x\":\"gone.safetensors\"}}";
    put(d, "model.safetensors.index.json", idx, strlen(idx));
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_E_NOTFOUND);
    CHECK(strstr(vlmn_errmsg(), "gone.safetensors: "));
    put(d, "model.safetensors.index.json", "{", 1);
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "model.safetensors.index.json: not valid JSON"));
    const char *e = tmpdir("empty");
    CHECK_EQ_INT(vlmn_st_open(e, &s), VLMN_E_NOTFOUND);
}

static vlmn_status fill_seq(void *user, void *dst, uint64_t n)
{
    uint8_t *p = dst;
    for (uint64_t i = 0; i < n; i++) p[i] = (uint8_t)(i + (uintptr_t)user);
    return VLMN_OK;
}

TEST(writer_roundtrip)
{
    const char *d = tmpdir("w");
    if (!d) return;
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    vlmn_st_writer *w;
    CHECK_EQ_INT(vlmn_st_writer_create(&w), VLMN_OK);
    uint64_t s1[2] = {3, 5}, s2[1] = {7};
    CHECK_EQ_INT(vlmn_st_writer_add(w, "m.w", VLMN_TYPE_BF16, 2, s1, fill_seq, (void *)1), VLMN_OK);
    CHECK_EQ_INT(vlmn_st_writer_add(w, "m.b", VLMN_TYPE_F32, 1, s2, fill_seq, (void *)2), VLMN_OK);
    CHECK_EQ_INT(vlmn_st_writer_write(w, p), VLMN_OK);
    vlmn_st_writer_free(w);
    vlmn_st *s = NULL;
    CHECK_EQ_INT(vlmn_st_open(d, &s), VLMN_OK);
    if (!s) return;
    const vlmn_st_tensor *a = vlmn_st_find(s, "m.w"), *b = vlmn_st_find(s, "m.b");
    CHECK(a && b);
    if (a && b) {
        CHECK_EQ_INT(a->nbytes, 30);
        CHECK_EQ_INT(b->nbytes, 28);
        CHECK_EQ_INT(((const uint8_t *)a->data)[29], 30);
        CHECK_EQ_INT(((const uint8_t *)b->data)[0], 2);
    }
    vlmn_st_close(s);
}

TEST_MAIN()
