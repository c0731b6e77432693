/* libFuzzer target for the GGUF reader: open arbitrary bytes, then touch everything a
 * caller may touch after a successful open (every key through every typed getter,
 * every array element through the iterator, every tensor looked up by name and its
 * first and last rows dequantised). Any out-of-bounds read shows up under ASan. */
#include "vlmn/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROW 4096

static volatile uint64_t sink;

static void walk(const vlmn_gguf_value *v, int depth)
{
    uint64_t u;
    int64_t s;
    double d;
    if (vlmn_gguf_value_u64(v, &u)) sink += u;
    if (vlmn_gguf_value_i64(v, &s)) sink += (uint64_t)s;
    if (vlmn_gguf_value_f64(v, &d)) sink += (uint64_t)(d == d);
    if (v->type == VLMN_GGUF_STRING && v->len) sink += v->data[0] + v->data[v->len - 1];
    if (v->type != VLMN_GGUF_ARRAY) return;
    vlmn_gguf_iter it;
    vlmn_gguf_value e;
    vlmn_gguf_iter_init(&it, v);
    uint64_t n = 0;
    while (vlmn_gguf_iter_next(&it, &e)) {
        walk(&e, depth + 1);
        n++;
    }
    if (n != v->arr_count) abort(); /* the iterator must see exactly count elements */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vlmn_gguf *g = NULL;
    if (vlmn_gguf_open_memory(data, size, "fuzz.gguf", &g) != VLMN_OK) return 0;
    for (int64_t i = 0; i < vlmn_gguf_n_kv(g); i++) {
        vlmn_gguf_value v;
        if (vlmn_gguf_kv_value(g, i, &v) != VLMN_OK) abort();
        walk(&v, 0);
        vlmn_gguf_str k = vlmn_gguf_key(g, i);
        char *key = malloc(k.len + 1);
        memcpy(key, k.ptr, k.len);
        key[k.len] = 0;
        if (vlmn_gguf_find_key(g, key) != i) abort(); /* keys are unique and NUL-free */
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f;
        double d;
        bool b;
        const char *s;
        const void *p;
        uint64_t n;
        vlmn_gguf_get_u32(g, key, &u32);
        vlmn_gguf_get_i32(g, key, &i32);
        vlmn_gguf_get_u64(g, key, &u64);
        vlmn_gguf_get_i64(g, key, &i64);
        vlmn_gguf_get_f32(g, key, &f);
        vlmn_gguf_get_f64(g, key, &d);
        vlmn_gguf_get_bool(g, key, &b);
        if (vlmn_gguf_get_str(g, key, &s) == VLMN_OK) sink += strlen(s);
        if (v.type == VLMN_GGUF_ARRAY) {
            if (vlmn_gguf_get_arr(g, key, v.arr_type, &p, &n) != VLMN_OK || n != v.arr_count) abort();
            if (v.arr_type == VLMN_GGUF_STRING) {
                vlmn_gguf_str e;
                for (uint64_t j = 0; j < n; j++)
                    if (vlmn_gguf_get_arr_str(g, key, j, &e) == VLMN_OK && e.len) sink += (uint8_t)e.ptr[e.len - 1];
            } else if (n <= 1 << 16) {
                float *fa = malloc((n ? n : 1) * sizeof *fa);
                int64_t *ia = malloc((n ? n : 1) * sizeof *ia);
                vlmn_gguf_get_arr_f32(g, key, fa, n);
                vlmn_gguf_get_arr_i64(g, key, ia, n);
                free(fa);
                free(ia);
            }
        }
        free(key);
    }
    float *row = malloc(MAX_ROW * sizeof *row);
    for (int64_t i = 0; i < vlmn_gguf_n_tensors(g); i++) {
        const vlmn_gguf_tensor *t = vlmn_gguf_tensor_at(g, i);
        char *name = malloc(t->name.len + 1);
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = 0;
        if (vlmn_gguf_find_tensor(g, name) != t) abort();
        free(name);
        const uint8_t *end = (const uint8_t *)t->data + t->nbytes;
        if ((const uint8_t *)t->data < data || end > data + size) abort();
        if (t->nbytes) sink += end[-1];
        if (vlmn_type_supported(t->type) && t->ne[0] <= MAX_ROW) {
            int64_t rows = vlmn_gguf_tensor_rows(t);
            if (vlmn_gguf_tensor_rows_f32(t, 0, 1, row) != VLMN_OK) abort();
            if (vlmn_gguf_tensor_rows_f32(t, rows - 1, 1, row) != VLMN_OK) abort();
            if (vlmn_gguf_tensor_rows_f32(t, rows, 1, row) != VLMN_E_RANGE) abort();
            sink += (uint64_t)(row[0] == row[0]);
        }
    }
    free(row);
    vlmn_gguf_close(g);
    return 0;
}
