/* Test helper: assemble GGUF byte images by hand (independently of vlmn's writer) so
 * that tests can make valid files and corrupt exactly one field. Header-only, used by
 * tests/gguf/test_gguf.c. */
#ifndef VLMN_TEST_GGUF_BUILD_H
#define VLMN_TEST_GGUF_BUILD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct gb_buf {
    uint8_t *b;
    size_t n, cap;
} gb_buf;

static inline void gb_put(gb_buf *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->b = realloc(o->b, o->cap);
        if (!o->b) abort();
    }
    if (n) memcpy(o->b + o->n, p, n);
    o->n += n;
}
static inline void gb_u8(gb_buf *o, uint8_t v) { gb_put(o, &v, 1); }
static inline void gb_u32(gb_buf *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    gb_put(o, b, 4);
}
static inline void gb_u64(gb_buf *o, uint64_t v)
{
    gb_u32(o, (uint32_t)v);
    gb_u32(o, (uint32_t)(v >> 32));
}
static inline void gb_str(gb_buf *o, const char *s)
{
    gb_u64(o, strlen(s));
    gb_put(o, s, strlen(s));
}
static inline void gb_free(gb_buf *o)
{
    free(o->b);
    memset(o, 0, sizeof *o);
}

/* kv helpers: key + type + value */
static inline void gb_kv_u32(gb_buf *o, const char *k, uint32_t v) { gb_str(o, k); gb_u32(o, 4); gb_u32(o, v); }
static inline void gb_kv_u64(gb_buf *o, const char *k, uint64_t v) { gb_str(o, k); gb_u32(o, 10); gb_u64(o, v); }
static inline void gb_kv_str(gb_buf *o, const char *k, const char *v) { gb_str(o, k); gb_u32(o, 8); gb_str(o, v); }

struct gb_tensor {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[6];
    uint32_t type;
    uint64_t offset;
};

/* magic, version, counts, kv bytes, tensor infos, padding to `align`, `data_bytes` of
 * data (byte i = i*7 mod 251). n_kv/n_tensors are written as given (may lie). */
static inline void gb_file(gb_buf *o, uint32_t version, uint64_t n_tensors, uint64_t n_kv, const gb_buf *kvs,
                    const struct gb_tensor *t, int nt, uint64_t align, size_t data_bytes)
{
    gb_put(o, "GGUF", 4);
    gb_u32(o, version);
    gb_u64(o, n_tensors);
    gb_u64(o, n_kv);
    if (kvs) gb_put(o, kvs->b, kvs->n);
    for (int i = 0; i < nt; i++) {
        gb_str(o, t[i].name);
        gb_u32(o, t[i].n_dims);
        for (uint32_t d = 0; d < t[i].n_dims && d < 6; d++) gb_u64(o, t[i].ne[d]);
        gb_u32(o, t[i].type);
        gb_u64(o, t[i].offset);
    }
    while (align && o->n % align) gb_u8(o, 0);
    for (size_t i = 0; i < data_bytes; i++) gb_u8(o, (uint8_t)(i * 7 % 251));
}

#endif
