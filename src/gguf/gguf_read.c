/* GGUF reader: maps a file read-only and validates the whole header (metadata,
 * tensor table, data ranges) before anything is used, so that later accessors can
 * trust the bytes. Zero-copy: keys, strings, arrays and tensor data point into the
 * mapping. Format: GGUF spec v2/v3 (little-endian), as in MODEL-NOTES "GGUF container". */
#include "vlmn/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "gguf/gguf_int.h"

/* Smallest encodings, used to bound counts by the bytes left before allocating:
 * a kv is key length (8) + key (>= 1) + type (4) + value (>= 1);
 * a tensor info is name length (8) + name (>= 1) + n_dims (4) + one dim (8) + type (4)
 * + offset (8); an array element that is itself an array is type (4) + count (8). */
#define MIN_KV_BYTES 14u
#define MIN_TENSOR_INFO_BYTES 33u
#define MIN_STRING_BYTES 8u
#define MIN_NESTED_ARRAY_BYTES 12u
#define HEADER_BYTES 24u

struct kv {
    vlmn_gguf_str key;
    vlmn_gguf_value v;
    char *str;                /* STRING values: NUL-terminated copy (get_str) */
    const uint8_t **elems;    /* STRING arrays: each element's length field (get_arr_str) */
};

struct name_ref {             /* sorted index entry for key / tensor lookup */
    const char *p;
    uint64_t len;
    uint32_t idx;
};

struct vlmn_gguf {
    char *path;
    const uint8_t *base;
    uint64_t size;
    bool mapped;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_start;
    int64_t n_kv;
    struct kv *kv;
    struct name_ref *kv_index;
    int64_t n_tensors;
    vlmn_gguf_tensor *tensors;
    struct name_ref *t_index;
    /* views (vlmn_gguf_writer_view): base is an owned header-only buffer, tensor data
     * are ext[i], and release(owner) frees what they point into */
    const void *const *ext;
    void (*release)(void *);
    void *owner;
};

static const char *const vtype_names[VLMN_GGUF_VTYPE_COUNT_] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
static const uint8_t vtype_sizes[VLMN_GGUF_VTYPE_COUNT_] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *vlmn_gguf_vtype_name(vlmn_gguf_vtype t)
{
    return (unsigned)t < VLMN_GGUF_VTYPE_COUNT_ ? vtype_names[t] : "?";
}

uint32_t vlmn_gguf_vtype_size(vlmn_gguf_vtype t)
{
    return (unsigned)t < VLMN_GGUF_VTYPE_COUNT_ ? vtype_sizes[t] : 0;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* Printable, bounded rendering of untrusted bytes for messages. */
#define SHOW_MAX 80
typedef struct { char s[SHOW_MAX * 4 + 8]; } showbuf;
static const char *show(showbuf *b, const char *p, uint64_t len)
{
    size_t o = 0;
    for (uint64_t i = 0; i < len && i < SHOW_MAX; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f) b->s[o++] = (char)c;
        else o += (size_t)snprintf(b->s + o, 5, "\\x%02x", c);
    }
    if (len > SHOW_MAX) { memcpy(b->s + o, "...", 3); o += 3; }
    b->s[o] = 0;
    return b->s;
}

/* ---- Parsing -------------------------------------------------------------------- */

struct cur {
    const uint8_t *base;
    uint64_t size, pos;
    const char *path;
    char ctx[SHOW_MAX * 4 + 64]; /* "key K" / "tensor T" for messages */
    int depth;                     /* array nesting, for "element i" in messages */
    uint64_t elem[VLMN_GGUF_MAX_ARRAY_DEPTH + 1];
};

static inline uint64_t left(const struct cur *c) { return c->size - c->pos; }

static bool take(struct cur *c, uint64_t n, const uint8_t **p)
{
    if (n > left(c)) return false;
    *p = c->base + c->pos;
    c->pos += n;
    return true;
}

static bool take_u32(struct cur *c, uint32_t *v)
{
    const uint8_t *p;
    if (!take(c, 4, &p)) return false;
    *v = rd32(p);
    return true;
}

static bool take_u64(struct cur *c, uint64_t *v)
{
    const uint8_t *p;
    if (!take(c, 8, &p)) return false;
    *v = rd64(p);
    return true;
}

static vlmn_status cfail(struct cur *c, vlmn_status st, const char *what)
{
    char where[(VLMN_GGUF_MAX_ARRAY_DEPTH + 1) * 24 + 16] = "";
    size_t o = 0;
    for (int d = 0; d < c->depth && d <= VLMN_GGUF_MAX_ARRAY_DEPTH; d++)
        o += (size_t)snprintf(where + o, sizeof where - o, "%s%llu", d ? "." : " element ", (unsigned long long)c->elem[d]);
    return vlmn_error(st, "%s: %s%s: %s (at byte %llu of %llu)", c->path, c->ctx, where, what,
                      (unsigned long long)c->pos, (unsigned long long)c->size);
}

/* A string (u64 length + bytes). */
static vlmn_status parse_string(struct cur *c, const uint8_t **p, uint64_t *len)
{
    char msg[128];
    if (!take_u64(c, len)) return cfail(c, VLMN_E_FORMAT, "truncated string length");
    if (*len > left(c)) {
        snprintf(msg, sizeof msg, "string length %llu past end of file", (unsigned long long)*len);
        return cfail(c, VLMN_E_FORMAT, msg);
    }
    take(c, *len, p);
    return VLMN_OK;
}

static vlmn_status parse_array_body(struct cur *c, int depth, vlmn_gguf_value *out);

/* One value of type t (t already read). */
static vlmn_status parse_value(struct cur *c, uint32_t t, int depth, vlmn_gguf_value *out)
{
    char msg[128];
    memset(out, 0, sizeof *out);
    if (t >= VLMN_GGUF_VTYPE_COUNT_) {
        snprintf(msg, sizeof msg, "bad value type id %u", t);
        return cfail(c, VLMN_E_FORMAT, msg);
    }
    out->type = (vlmn_gguf_vtype)t;
    if (t == VLMN_GGUF_STRING) return parse_string(c, &out->data, &out->len);
    if (t == VLMN_GGUF_ARRAY) return parse_array_body(c, depth + 1, out);
    if (!take(c, vtype_sizes[t], &out->data)) return cfail(c, VLMN_E_FORMAT, "truncated value");
    out->len = vtype_sizes[t];
    if (t == VLMN_GGUF_BOOL && out->data[0] > 1) {
        snprintf(msg, sizeof msg, "bool value %u is not 0 or 1", out->data[0]);
        return cfail(c, VLMN_E_FORMAT, msg);
    }
    return VLMN_OK;
}

/* Array: u32 element type, u64 count, elements. depth counts array levels (1 = top). */
static vlmn_status parse_array_body(struct cur *c, int depth, vlmn_gguf_value *out)
{
    char msg[160];
    uint32_t et;
    uint64_t n;
    if (depth > VLMN_GGUF_MAX_ARRAY_DEPTH) {
        snprintf(msg, sizeof msg, "arrays nested deeper than %d", VLMN_GGUF_MAX_ARRAY_DEPTH);
        return cfail(c, VLMN_E_RANGE, msg);
    }
    if (!take_u32(c, &et)) return cfail(c, VLMN_E_FORMAT, "truncated array element type");
    if (et >= VLMN_GGUF_VTYPE_COUNT_) {
        snprintf(msg, sizeof msg, "bad array element type id %u", et);
        return cfail(c, VLMN_E_FORMAT, msg);
    }
    if (!take_u64(c, &n)) return cfail(c, VLMN_E_FORMAT, "truncated array count");
    out->type = VLMN_GGUF_ARRAY;
    out->arr_type = (vlmn_gguf_vtype)et;
    out->arr_count = n;
    out->data = c->base + c->pos;
    uint64_t start = c->pos;
    uint32_t es = vtype_sizes[et];
    if (es) {
        uint64_t bytes;
        if (!vlmn_mul_ok(n, es, &bytes) || bytes > left(c)) {
            snprintf(msg, sizeof msg, "array of %llu %s past end of file", (unsigned long long)n, vtype_names[et]);
            return cfail(c, VLMN_E_FORMAT, msg);
        }
        if (et == VLMN_GGUF_BOOL)
            for (uint64_t j = 0; j < n; j++)
                if (c->base[c->pos + j] > 1) {
                    snprintf(msg, sizeof msg, "bool value %u is not 0 or 1", c->base[c->pos + j]);
                    c->elem[c->depth++] = j;
                    c->pos += j;
                    return cfail(c, VLMN_E_FORMAT, msg);
                }
        c->pos += bytes;
    } else {
        uint64_t min = et == VLMN_GGUF_STRING ? MIN_STRING_BYTES : MIN_NESTED_ARRAY_BYTES;
        if (n > left(c) / min) {
            snprintf(msg, sizeof msg, "array of %llu %s past end of file", (unsigned long long)n, vtype_names[et]);
            return cfail(c, VLMN_E_FORMAT, msg);
        }
        int slot = c->depth++;
        for (uint64_t j = 0; j < n; j++) {
            vlmn_gguf_value e;
            c->elem[slot] = j;
            vlmn_status st = parse_value(c, et, depth, &e);
            if (st) return st;
        }
        c->depth--;
    }
    out->len = c->pos - start;
    return VLMN_OK;
}

/* A key or tensor name: non-empty, bounded, no NUL (looked up by C string). */
static vlmn_status parse_name(struct cur *c, vlmn_gguf_str *out)
{
    const uint8_t *p;
    uint64_t len;
    char msg[128];
    vlmn_status st = parse_string(c, &p, &len);
    if (st) return st;
    if (len == 0) return cfail(c, VLMN_E_FORMAT, "empty name");
    if (len > VLMN_GGUF_MAX_KEY_LEN) {
        snprintf(msg, sizeof msg, "name of %llu bytes exceeds %u", (unsigned long long)len, VLMN_GGUF_MAX_KEY_LEN);
        return cfail(c, VLMN_E_RANGE, msg);
    }
    if (memchr(p, 0, len)) return cfail(c, VLMN_E_FORMAT, "name contains a NUL byte");
    out->ptr = (const char *)p;
    out->len = len;
    return VLMN_OK;
}

static int cmp_ref(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    uint64_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->p, y->p, n);
    if (r) return r;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_offset(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int64_t lookup(const struct name_ref *idx, int64_t n, const char *name)
{
    if (!name) return -1;
    uint64_t len = strlen(name);
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        uint64_t m = idx[mid].len < len ? idx[mid].len : len;
        int r = memcmp(idx[mid].p, name, m);
        if (!r) r = idx[mid].len < len ? -1 : idx[mid].len > len;
        if (r == 0) return idx[mid].idx;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* Trusted walk over an already validated value: its size in bytes. */
static uint64_t value_bytes(const uint8_t *p, vlmn_gguf_vtype t)
{
    if (t == VLMN_GGUF_STRING) return 8 + rd64(p);
    if (t != VLMN_GGUF_ARRAY) return vtype_sizes[t];
    vlmn_gguf_vtype et = (vlmn_gguf_vtype)rd32(p);
    uint64_t n = rd64(p + 4), off = 12;
    if (vtype_sizes[et]) return off + n * vtype_sizes[et];
    for (uint64_t j = 0; j < n; j++) off += value_bytes(p + off, et);
    return off;
}

void vlmn_gguf_close(vlmn_gguf *g)
{
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            vlmn_free(g->kv[i].str);
            vlmn_free(g->kv[i].elems);
        }
    vlmn_free(g->kv);
    vlmn_free(g->kv_index);
    vlmn_free(g->tensors);
    vlmn_free(g->t_index);
    if (g->mapped && g->base) munmap((void *)g->base, (size_t)g->size);
    if (g->ext) {
        vlmn_free((void *)g->base);
        vlmn_free((void *)g->ext);
    }
    if (g->release) g->release(g->owner);
    vlmn_free(g->path);
    vlmn_free(g);
}

static vlmn_status nomem(const vlmn_gguf *g)
{
    return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", g->path);
}

static vlmn_status parse_kvs(vlmn_gguf *g, struct cur *c)
{
    showbuf sb;
    for (int64_t i = 0; i < g->n_kv; i++) {
        struct kv *kv = &g->kv[i];
        uint32_t t;
        c->depth = 0;
        snprintf(c->ctx, sizeof c->ctx, "metadata entry %lld", (long long)i);
        vlmn_status st = parse_name(c, &kv->key);
        if (st) return st;
        snprintf(c->ctx, sizeof c->ctx, "key %s", show(&sb, kv->key.ptr, kv->key.len));
        if (!take_u32(c, &t)) return cfail(c, VLMN_E_FORMAT, "truncated value type");
        st = parse_value(c, t, 0, &kv->v);
        if (st) return st;
    }
    return VLMN_OK;
}

/* Sorted indexes, duplicate keys, alignment, string copies. */
static vlmn_status index_kvs(vlmn_gguf *g)
{
    showbuf sb;
    g->kv_index = vlmn_calloc((size_t)g->n_kv, sizeof *g->kv_index);
    if (!g->kv_index) return nomem(g);
    for (int64_t i = 0; i < g->n_kv; i++)
        g->kv_index[i] = (struct name_ref){g->kv[i].key.ptr, g->kv[i].key.len, (uint32_t)i};
    qsort(g->kv_index, (size_t)g->n_kv, sizeof *g->kv_index, cmp_ref);
    for (int64_t i = 1; i < g->n_kv; i++)
        if (g->kv_index[i].len == g->kv_index[i - 1].len &&
            !memcmp(g->kv_index[i].p, g->kv_index[i - 1].p, g->kv_index[i].len))
            return vlmn_error(VLMN_E_FORMAT, "%s: key %s: duplicate key (entries %u and %u)", g->path,
                              show(&sb, g->kv_index[i].p, g->kv_index[i].len), g->kv_index[i - 1].idx,
                              g->kv_index[i].idx);

    for (int64_t i = 0; i < g->n_kv; i++) {
        struct kv *kv = &g->kv[i];
        if (kv->v.type == VLMN_GGUF_STRING) {
            kv->str = vlmn_strndup((const char *)kv->v.data, (size_t)kv->v.len);
            if (!kv->str) return nomem(g);
        } else if (kv->v.type == VLMN_GGUF_ARRAY && kv->v.arr_type == VLMN_GGUF_STRING && kv->v.arr_count) {
            kv->elems = vlmn_malloc((size_t)kv->v.arr_count * sizeof *kv->elems);
            if (!kv->elems) return nomem(g);
            const uint8_t *p = kv->v.data;
            for (uint64_t j = 0; j < kv->v.arr_count; j++) {
                kv->elems[j] = p;
                p += 8 + rd64(p);
            }
        }
    }

    g->alignment = VLMN_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = lookup(g->kv_index, g->n_kv, "general.alignment");
    if (ai >= 0) {
        uint64_t a;
        if (!vlmn_gguf_value_u64(&g->kv[ai].v, &a))
            return vlmn_error(VLMN_E_TYPE, "%s: key general.alignment: has type %s, expected an unsigned integer",
                              g->path, vlmn_gguf_vtype_name(g->kv[ai].v.type));
        if (a == 0 || (a & (a - 1)))
            return vlmn_error(VLMN_E_FORMAT, "%s: key general.alignment: %llu is not a power of two", g->path,
                              (unsigned long long)a);
        if (a > VLMN_GGUF_MAX_ALIGNMENT)
            return vlmn_error(VLMN_E_RANGE, "%s: key general.alignment: %llu exceeds the limit %u", g->path,
                              (unsigned long long)a, VLMN_GGUF_MAX_ALIGNMENT);
        g->alignment = a;
    }
    return VLMN_OK;
}

static vlmn_status parse_tensors(vlmn_gguf *g, struct cur *c)
{
    showbuf sb;
    char msg[200];
    for (int64_t i = 0; i < g->n_tensors; i++) {
        vlmn_gguf_tensor *t = &g->tensors[i];
        snprintf(c->ctx, sizeof c->ctx, "tensor info %lld", (long long)i);
        vlmn_status st = parse_name(c, &t->name);
        if (st) return st;
        snprintf(c->ctx, sizeof c->ctx, "tensor %s", show(&sb, t->name.ptr, t->name.len));
        if (!take_u32(c, &t->n_dims)) return cfail(c, VLMN_E_FORMAT, "truncated n_dims");
        if (t->n_dims < 1 || t->n_dims > VLMN_GGUF_MAX_DIMS) {
            snprintf(msg, sizeof msg, "n_dims %u not in 1..%d", t->n_dims, VLMN_GGUF_MAX_DIMS);
            return cfail(c, VLMN_E_FORMAT, msg);
        }
        uint64_t nel = 1;
        for (uint32_t d = 0; d < VLMN_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (!take_u64(c, &t->ne[d])) return cfail(c, VLMN_E_FORMAT, "truncated dimensions");
            if (t->ne[d] == 0) {
                snprintf(msg, sizeof msg, "dimension %u is 0", d);
                return cfail(c, VLMN_E_FORMAT, msg);
            }
            if (!vlmn_mul_ok(nel, t->ne[d], &nel) || nel > (uint64_t)INT64_MAX)
                return cfail(c, VLMN_E_RANGE, "element count overflows");
        }
        if (!take_u32(c, &t->type)) return cfail(c, VLMN_E_FORMAT, "truncated type");
        const char *tn = vlmn_type_name(t->type);
        if (!tn) {
            snprintf(msg, sizeof msg, "unknown tensor type id %u", t->type);
            return cfail(c, VLMN_E_UNSUPPORTED, msg);
        }
        uint64_t row;
        if (t->ne[0] % vlmn_type_block_values(t->type)) {
            snprintf(msg, sizeof msg, "row of %llu values is not a whole number of %s blocks (%u values)",
                     (unsigned long long)t->ne[0], tn, vlmn_type_block_values(t->type));
            return cfail(c, VLMN_E_FORMAT, msg);
        }
        if (vlmn_type_row_bytes(t->type, t->ne[0], &row) || !vlmn_mul_ok(row, nel / t->ne[0], &t->nbytes))
            return cfail(c, VLMN_E_RANGE, "byte size overflows");
        if (!take_u64(c, &t->offset)) return cfail(c, VLMN_E_FORMAT, "truncated offset");
        if (t->offset % g->alignment) {
            snprintf(msg, sizeof msg, "offset 0x%llx is not a multiple of the alignment %llu",
                     (unsigned long long)t->offset, (unsigned long long)g->alignment);
            return cfail(c, VLMN_E_FORMAT, msg);
        }
    }
    return VLMN_OK;
}

/* Data ranges inside the file, duplicate names, overlaps. */
static vlmn_status place_tensors(vlmn_gguf *g, uint64_t header_end)
{
    showbuf sa, sb;
    uint64_t ds = header_end + (g->alignment - header_end % g->alignment) % g->alignment;
    g->data_start = ds;
    if (g->n_tensors == 0) return VLMN_OK;
    if (ds > g->size && !g->ext)
        return vlmn_error(VLMN_E_FORMAT, "%s: data section at 0x%llx starts past end of file (size 0x%llx)", g->path,
                          (unsigned long long)ds, (unsigned long long)g->size);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        vlmn_gguf_tensor *t = &g->tensors[i];
        uint64_t a, e;
        if (g->ext) {
            t->data = g->ext[i];
            continue;
        }
        if (!vlmn_add_ok(ds, t->offset, &a) || !vlmn_add_ok(a, t->nbytes, &e) || e > g->size)
            return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: data at offset 0x%llx + %llu bytes past end of file (size 0x%llx)",
                              g->path, show(&sa, t->name.ptr, t->name.len), (unsigned long long)t->offset,
                              (unsigned long long)t->nbytes, (unsigned long long)g->size);
        t->data = g->base + a;
    }
    g->t_index = vlmn_calloc((size_t)g->n_tensors, sizeof *g->t_index);
    if (!g->t_index) return nomem(g);
    for (int64_t i = 0; i < g->n_tensors; i++)
        g->t_index[i] = (struct name_ref){g->tensors[i].name.ptr, g->tensors[i].name.len, (uint32_t)i};
    qsort(g->t_index, (size_t)g->n_tensors, sizeof *g->t_index, cmp_ref);
    for (int64_t i = 1; i < g->n_tensors; i++)
        if (g->t_index[i].len == g->t_index[i - 1].len &&
            !memcmp(g->t_index[i].p, g->t_index[i - 1].p, g->t_index[i].len))
            return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: duplicate tensor name", g->path,
                              show(&sa, g->t_index[i].p, g->t_index[i].len));

    /* Overlap check on tensors sorted by offset (a scratch copy of the index). */
    struct name_ref *by_off = vlmn_malloc((size_t)g->n_tensors * sizeof *by_off);
    if (!by_off) return nomem(g);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        by_off[i].p = NULL;
        by_off[i].len = g->tensors[i].offset;
        by_off[i].idx = (uint32_t)i;
    }
    qsort(by_off, (size_t)g->n_tensors, sizeof *by_off, cmp_offset);
    vlmn_status st = VLMN_OK;
    for (int64_t i = 1; i < g->n_tensors; i++) {
        const vlmn_gguf_tensor *prev = &g->tensors[by_off[i - 1].idx], *cur = &g->tensors[by_off[i].idx];
        if (prev->offset + prev->nbytes > cur->offset) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: data at 0x%llx overlaps tensor %s (0x%llx + %llu bytes)",
                            g->path, show(&sa, cur->name.ptr, cur->name.len), (unsigned long long)cur->offset,
                            show(&sb, prev->name.ptr, prev->name.len), (unsigned long long)prev->offset,
                            (unsigned long long)prev->nbytes);
            break;
        }
    }
    vlmn_free(by_off);
    return st;
}

static vlmn_status parse_all(vlmn_gguf *g)
{
    struct cur c = {.base = g->base, .size = g->size, .pos = 0, .path = g->path};
    char msg[160];
    snprintf(c.ctx, sizeof c.ctx, "header");
    if (g->size < 4) return cfail(&c, VLMN_E_FORMAT, "file too small for a GGUF header");
    if (memcmp(g->base, "GGUF", 4))
        return vlmn_error(VLMN_E_FORMAT, "%s: not a GGUF file (bad magic)", g->path);
    if (g->size < HEADER_BYTES) return cfail(&c, VLMN_E_FORMAT, "truncated header");
    g->version = rd32(g->base + 4);
    if (g->version == 1)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: GGUF version 1 is not supported (only versions 2 and 3)", g->path);
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: big-endian GGUF is not supported", g->path);
    if (g->version != 2 && g->version != 3)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: GGUF version %u is not supported (only versions 2 and 3)",
                          g->path, g->version);
    uint64_t nt = rd64(g->base + 8), nkv = rd64(g->base + 16);
    c.pos = HEADER_BYTES;
    if (nkv > VLMN_GGUF_MAX_KV) {
        snprintf(msg, sizeof msg, "metadata count %llu exceeds the limit %u", (unsigned long long)nkv, VLMN_GGUF_MAX_KV);
        return cfail(&c, VLMN_E_RANGE, msg);
    }
    if (nt > VLMN_GGUF_MAX_TENSORS) {
        snprintf(msg, sizeof msg, "tensor count %llu exceeds the limit %u", (unsigned long long)nt, VLMN_GGUF_MAX_TENSORS);
        return cfail(&c, VLMN_E_RANGE, msg);
    }
    if (nkv > left(&c) / MIN_KV_BYTES || nt > (left(&c) - nkv * MIN_KV_BYTES) / MIN_TENSOR_INFO_BYTES) {
        snprintf(msg, sizeof msg, "%llu metadata entries and %llu tensors cannot fit in the file",
                 (unsigned long long)nkv, (unsigned long long)nt);
        return cfail(&c, VLMN_E_FORMAT, msg);
    }
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    g->kv = vlmn_calloc(nkv ? (size_t)nkv : 1, sizeof *g->kv);
    g->tensors = vlmn_calloc(nt ? (size_t)nt : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return nomem(g);
    vlmn_status st = parse_kvs(g, &c);
    if (!st) st = index_kvs(g);
    if (!st) st = parse_tensors(g, &c);
    if (!st) st = place_tensors(g, c.pos);
    return st;
}

static vlmn_status open_common(vlmn_gguf *g, vlmn_gguf **out)
{
    vlmn_status st = parse_all(g);
    if (st) {
        vlmn_gguf_close(g);
        return st;
    }
    *out = g;
    return VLMN_OK;
}

vlmn_status vlmn_gguf_open_memory(const void *buf, size_t size, const char *name, vlmn_gguf **out)
{
    *out = NULL;
    if (!buf && size) return vlmn_error(VLMN_E_ARG, "gguf_open_memory: NULL buffer");
    vlmn_gguf *g = vlmn_calloc(1, sizeof *g);
    if (!g) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name ? name : "(memory)");
    g->path = vlmn_strdup(name ? name : "(memory)");
    if (!g->path) {
        vlmn_free(g);
        return vlmn_error(VLMN_E_NOMEM, "out of memory");
    }
    g->base = buf ? buf : (const uint8_t *)"";
    g->size = size;
    return open_common(g, out);
}

vlmn_status vlmn_gguf_open_view_(void *hdr, size_t size, const char *name, const void **data, uint64_t n_data,
                                 void (*release)(void *), void *owner, vlmn_gguf **out)
{
    *out = NULL;
    vlmn_gguf *g = vlmn_calloc(1, sizeof *g);
    if (!g || !(g->path = vlmn_strdup(name))) {
        vlmn_free(g);
        vlmn_free(hdr);
        vlmn_free(data);
        if (release) release(owner);
        return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    }
    g->base = hdr;
    g->size = size;
    g->ext = data;
    g->release = release;
    g->owner = owner;
    vlmn_status st = parse_all(g);
    if (!st && (uint64_t)g->n_tensors != n_data) st = vlmn_error(VLMN_E_INTERNAL, "%s: view tensor count", name);
    if (st) {
        vlmn_gguf_close(g);
        return st;
    }
    *out = g;
    return VLMN_OK;
}

vlmn_status vlmn_gguf_open(const char *path, vlmn_gguf **out)
{
    *out = NULL;
    if (!path) return vlmn_error(VLMN_E_ARG, "gguf_open: NULL path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vlmn_error(errno == ENOENT ? VLMN_E_NOTFOUND : VLMN_E_IO, "%s: %s", path, strerror(errno));
    struct stat sbuf;
    if (fstat(fd, &sbuf) < 0) {
        int e = errno;
        close(fd);
        return vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(sbuf.st_mode)) {
        close(fd);
        return vlmn_error(VLMN_E_IO, "%s: not a regular file", path);
    }
    vlmn_gguf *g = vlmn_calloc(1, sizeof *g);
    if (!g || !(g->path = vlmn_strdup(path))) {
        vlmn_free(g);
        close(fd);
        return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    }
    g->size = (uint64_t)sbuf.st_size;
    if (g->size == 0) {
        close(fd);
        vlmn_gguf_close(g);
        return vlmn_error(VLMN_E_FORMAT, "%s: empty file, not a GGUF file", path);
    }
    void *m = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        vlmn_gguf_close(g);
        return vlmn_error(VLMN_E_IO, "%s: mmap: %s", path, strerror(e));
    }
    g->base = m;
    g->mapped = true;
    return open_common(g, out);
}

/* ---- Accessors ------------------------------------------------------------------ */

const char *vlmn_gguf_path(const vlmn_gguf *g) { return g->path; }
uint32_t vlmn_gguf_version(const vlmn_gguf *g) { return g->version; }
uint64_t vlmn_gguf_alignment(const vlmn_gguf *g) { return g->alignment; }
uint64_t vlmn_gguf_file_size(const vlmn_gguf *g) { return g->size; }
int64_t vlmn_gguf_n_kv(const vlmn_gguf *g) { return g->n_kv; }
int64_t vlmn_gguf_n_tensors(const vlmn_gguf *g) { return g->n_tensors; }

int64_t vlmn_gguf_find_key(const vlmn_gguf *g, const char *key) { return lookup(g->kv_index, g->n_kv, key); }

vlmn_gguf_str vlmn_gguf_key(const vlmn_gguf *g, int64_t i)
{
    if (i < 0 || i >= g->n_kv) return (vlmn_gguf_str){NULL, 0};
    return g->kv[i].key;
}

vlmn_gguf_vtype vlmn_gguf_kv_type(const vlmn_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? g->kv[i].v.type : VLMN_GGUF_VTYPE_COUNT_;
}

vlmn_gguf_vtype vlmn_gguf_arr_type(const vlmn_gguf *g, int64_t i)
{
    if (i < 0 || i >= g->n_kv || g->kv[i].v.type != VLMN_GGUF_ARRAY) return VLMN_GGUF_VTYPE_COUNT_;
    return g->kv[i].v.arr_type;
}

uint64_t vlmn_gguf_arr_count(const vlmn_gguf *g, int64_t i)
{
    if (i < 0 || i >= g->n_kv || g->kv[i].v.type != VLMN_GGUF_ARRAY) return 0;
    return g->kv[i].v.arr_count;
}

vlmn_status vlmn_gguf_kv_value(const vlmn_gguf *g, int64_t i, vlmn_gguf_value *out)
{
    if (i < 0 || i >= g->n_kv)
        return vlmn_error(VLMN_E_ARG, "%s: metadata index %lld out of range", g->path, (long long)i);
    *out = g->kv[i].v;
    return VLMN_OK;
}

bool vlmn_gguf_value_u64(const vlmn_gguf_value *v, uint64_t *out)
{
    int64_t s;
    switch (v->type) {
    case VLMN_GGUF_U8: *out = v->data[0]; return true;
    case VLMN_GGUF_U16: *out = rd16(v->data); return true;
    case VLMN_GGUF_U32: *out = rd32(v->data); return true;
    case VLMN_GGUF_U64: *out = rd64(v->data); return true;
    case VLMN_GGUF_I8: case VLMN_GGUF_I16: case VLMN_GGUF_I32: case VLMN_GGUF_I64:
        if (!vlmn_gguf_value_i64(v, &s) || s < 0) return false;
        *out = (uint64_t)s;
        return true;
    default: return false;
    }
}

bool vlmn_gguf_value_i64(const vlmn_gguf_value *v, int64_t *out)
{
    uint64_t u;
    switch (v->type) {
    case VLMN_GGUF_I8: *out = (int8_t)v->data[0]; return true;
    case VLMN_GGUF_I16: *out = (int16_t)rd16(v->data); return true;
    case VLMN_GGUF_I32: *out = (int32_t)rd32(v->data); return true;
    case VLMN_GGUF_I64: *out = (int64_t)rd64(v->data); return true;
    case VLMN_GGUF_U8: case VLMN_GGUF_U16: case VLMN_GGUF_U32: case VLMN_GGUF_U64:
        if (!vlmn_gguf_value_u64(v, &u) || u > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)u;
        return true;
    default: return false;
    }
}

bool vlmn_gguf_value_f64(const vlmn_gguf_value *v, double *out)
{
    if (v->type == VLMN_GGUF_F32) {
        uint32_t u = rd32(v->data);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        return true;
    }
    if (v->type == VLMN_GGUF_F64) {
        uint64_t u = rd64(v->data);
        memcpy(out, &u, 8);
        return true;
    }
    return false;
}

void vlmn_gguf_iter_init(vlmn_gguf_iter *it, const vlmn_gguf_value *arr)
{
    it->arr = *arr;
    it->index = 0;
    it->pos = arr->type == VLMN_GGUF_ARRAY ? arr->data : NULL;
}

bool vlmn_gguf_iter_next(vlmn_gguf_iter *it, vlmn_gguf_value *e)
{
    if (it->arr.type != VLMN_GGUF_ARRAY || it->index >= it->arr.arr_count) return false;
    const uint8_t *p = it->pos;
    vlmn_gguf_vtype t = it->arr.arr_type;
    memset(e, 0, sizeof *e);
    e->type = t;
    if (t == VLMN_GGUF_STRING) {
        e->len = rd64(p);
        e->data = p + 8;
    } else if (t == VLMN_GGUF_ARRAY) {
        e->arr_type = (vlmn_gguf_vtype)rd32(p);
        e->arr_count = rd64(p + 4);
        e->data = p + 12;
        e->len = value_bytes(p, t) - 12;
    } else {
        e->data = p;
        e->len = vtype_sizes[t];
    }
    it->pos = p + value_bytes(p, t);
    it->index++;
    return true;
}

/* Lookup with the standard messages. */
static vlmn_status get_kv(const vlmn_gguf *g, const char *key, const struct kv **out)
{
    int64_t i = vlmn_gguf_find_key(g, key);
    if (i < 0) return vlmn_error(VLMN_E_NOTFOUND, "%s: key %s: not found", g->path, key ? key : "(null)");
    *out = &g->kv[i];
    return VLMN_OK;
}

static vlmn_status wrong_type(const vlmn_gguf *g, const char *key, const vlmn_gguf_value *v, const char *want)
{
    if (v->type == VLMN_GGUF_ARRAY)
        return vlmn_error(VLMN_E_TYPE, "%s: key %s: has type array of %s, expected %s", g->path, key,
                          vlmn_gguf_vtype_name(v->arr_type), want);
    return vlmn_error(VLMN_E_TYPE, "%s: key %s: has type %s, expected %s", g->path, key,
                      vlmn_gguf_vtype_name(v->type), want);
}

static bool is_int(vlmn_gguf_vtype t)
{
    return t <= VLMN_GGUF_I32 || t == VLMN_GGUF_U64 || t == VLMN_GGUF_I64;
}

static vlmn_status get_int(const vlmn_gguf *g, const char *key, int64_t lo, uint64_t hi, const char *want,
                           bool *neg, uint64_t *mag)
{
    const struct kv *kv = NULL;
    vlmn_status st = get_kv(g, key, &kv);
    if (st) return st;
    if (!is_int(kv->v.type)) return wrong_type(g, key, &kv->v, want);
    uint64_t u;
    int64_t s;
    if (vlmn_gguf_value_u64(&kv->v, &u)) {
        if (u > hi)
            return vlmn_error(VLMN_E_RANGE, "%s: key %s: value %llu out of range for %s", g->path, key,
                              (unsigned long long)u, want);
        *neg = false;
        *mag = u;
        return VLMN_OK;
    }
    vlmn_gguf_value_i64(&kv->v, &s); /* negative signed value */
    if (s < lo)
        return vlmn_error(VLMN_E_RANGE, "%s: key %s: value %lld out of range for %s", g->path, key, (long long)s, want);
    *neg = true;
    *mag = (uint64_t)s;
    return VLMN_OK;
}

vlmn_status vlmn_gguf_get_u32(const vlmn_gguf *g, const char *key, uint32_t *out)
{
    bool neg;
    uint64_t m;
    vlmn_status st = get_int(g, key, 0, UINT32_MAX, "u32", &neg, &m);
    if (!st) *out = (uint32_t)m;
    return st;
}

vlmn_status vlmn_gguf_get_i32(const vlmn_gguf *g, const char *key, int32_t *out)
{
    bool neg;
    uint64_t m;
    vlmn_status st = get_int(g, key, INT32_MIN, INT32_MAX, "i32", &neg, &m);
    if (!st) *out = (int32_t)(int64_t)m;
    return st;
}

vlmn_status vlmn_gguf_get_u64(const vlmn_gguf *g, const char *key, uint64_t *out)
{
    bool neg;
    uint64_t m;
    vlmn_status st = get_int(g, key, 0, UINT64_MAX, "u64", &neg, &m);
    if (!st) *out = m;
    return st;
}

vlmn_status vlmn_gguf_get_i64(const vlmn_gguf *g, const char *key, int64_t *out)
{
    bool neg;
    uint64_t m;
    vlmn_status st = get_int(g, key, INT64_MIN, INT64_MAX, "i64", &neg, &m);
    if (!st) *out = (int64_t)m;
    return st;
}

vlmn_status vlmn_gguf_get_f64(const vlmn_gguf *g, const char *key, double *out)
{
    const struct kv *kv = NULL;
    vlmn_status st = get_kv(g, key, &kv);
    if (st) return st;
    if (!vlmn_gguf_value_f64(&kv->v, out)) return wrong_type(g, key, &kv->v, "f32 or f64");
    return VLMN_OK;
}

vlmn_status vlmn_gguf_get_f32(const vlmn_gguf *g, const char *key, float *out)
{
    double d;
    vlmn_status st = vlmn_gguf_get_f64(g, key, &d);
    if (!st) *out = (float)d;
    return st;
}

vlmn_status vlmn_gguf_get_bool(const vlmn_gguf *g, const char *key, bool *out)
{
    const struct kv *kv = NULL;
    vlmn_status st = get_kv(g, key, &kv);
    if (st) return st;
    if (kv->v.type != VLMN_GGUF_BOOL) return wrong_type(g, key, &kv->v, "bool");
    *out = kv->v.data[0] != 0;
    return VLMN_OK;
}

vlmn_status vlmn_gguf_get_str(const vlmn_gguf *g, const char *key, const char **out)
{
    const struct kv *kv = NULL;
    vlmn_status st = get_kv(g, key, &kv);
    if (st) return st;
    if (kv->v.type != VLMN_GGUF_STRING) return wrong_type(g, key, &kv->v, "string");
    if (memchr(kv->v.data, 0, (size_t)kv->v.len))
        return vlmn_error(VLMN_E_FORMAT, "%s: key %s: string contains a NUL byte", g->path, key);
    *out = kv->str;
    return VLMN_OK;
}

static vlmn_status get_array(const vlmn_gguf *g, const char *key, const struct kv **out)
{
    vlmn_status st = get_kv(g, key, out);
    if (st) return st;
    if ((*out)->v.type != VLMN_GGUF_ARRAY) return wrong_type(g, key, &(*out)->v, "an array");
    return VLMN_OK;
}

vlmn_status vlmn_gguf_get_arr(const vlmn_gguf *g, const char *key, vlmn_gguf_vtype want, const void **data,
                              uint64_t *count)
{
    const struct kv *kv = NULL;
    vlmn_status st = get_array(g, key, &kv);
    if (st) return st;
    if (kv->v.arr_type != want) {
        char w[32];
        snprintf(w, sizeof w, "array of %s", vlmn_gguf_vtype_name(want));
        return wrong_type(g, key, &kv->v, w);
    }
    *data = kv->v.data;
    *count = kv->v.arr_count;
    return VLMN_OK;
}

vlmn_status vlmn_gguf_get_arr_str(const vlmn_gguf *g, const char *key, uint64_t j, vlmn_gguf_str *out)
{
    const struct kv *kv = NULL;
    vlmn_status st = get_array(g, key, &kv);
    if (st) return st;
    if (kv->v.arr_type != VLMN_GGUF_STRING) return wrong_type(g, key, &kv->v, "array of string");
    if (j >= kv->v.arr_count)
        return vlmn_error(VLMN_E_RANGE, "%s: key %s: index %llu out of range (%llu elements)", g->path, key,
                          (unsigned long long)j, (unsigned long long)kv->v.arr_count);
    out->len = rd64(kv->elems[j]);
    out->ptr = (const char *)kv->elems[j] + 8;
    return VLMN_OK;
}

/* Element j of a validated numeric array as a scalar view. */
static vlmn_gguf_value elem_view(const vlmn_gguf_value *arr, uint64_t j)
{
    vlmn_gguf_value e = {.type = arr->arr_type, .data = arr->data + j * vtype_sizes[arr->arr_type],
                         .len = vtype_sizes[arr->arr_type]};
    return e;
}

static vlmn_status get_numeric_array(const vlmn_gguf *g, const char *key, uint64_t count, bool allow_float,
                                     const struct kv **out)
{
    vlmn_status st = get_array(g, key, out);
    if (st) return st;
    vlmn_gguf_vtype et = (*out)->v.arr_type;
    bool ok = is_int(et) || (allow_float && (et == VLMN_GGUF_F32 || et == VLMN_GGUF_F64));
    if (!ok) return wrong_type(g, key, &(*out)->v, allow_float ? "a numeric array" : "an integer array");
    if ((*out)->v.arr_count != count)
        return vlmn_error(VLMN_E_MISMATCH, "%s: key %s: has %llu elements, expected %llu", g->path, key,
                          (unsigned long long)(*out)->v.arr_count, (unsigned long long)count);
    return VLMN_OK;
}

vlmn_status vlmn_gguf_get_arr_f32(const vlmn_gguf *g, const char *key, float *dst, uint64_t count)
{
    const struct kv *kv = NULL;
    vlmn_status st = get_numeric_array(g, key, count, true, &kv);
    if (st) return st;
    for (uint64_t j = 0; j < count; j++) {
        vlmn_gguf_value e = elem_view(&kv->v, j);
        double d;
        int64_t s;
        uint64_t u;
        if (vlmn_gguf_value_f64(&e, &d)) dst[j] = (float)d;
        else if (vlmn_gguf_value_i64(&e, &s)) dst[j] = (float)s;
        else if (vlmn_gguf_value_u64(&e, &u)) dst[j] = (float)u;
    }
    return VLMN_OK;
}

vlmn_status vlmn_gguf_get_arr_i64(const vlmn_gguf *g, const char *key, int64_t *dst, uint64_t count)
{
    const struct kv *kv = NULL;
    vlmn_status st = get_numeric_array(g, key, count, false, &kv);
    if (st) return st;
    for (uint64_t j = 0; j < count; j++) {
        vlmn_gguf_value e = elem_view(&kv->v, j);
        if (!vlmn_gguf_value_i64(&e, &dst[j]))
            return vlmn_error(VLMN_E_RANGE, "%s: key %s: element %llu does not fit in i64", g->path, key,
                              (unsigned long long)j);
    }
    return VLMN_OK;
}

const vlmn_gguf_tensor *vlmn_gguf_tensor_at(const vlmn_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const vlmn_gguf_tensor *vlmn_gguf_find_tensor(const vlmn_gguf *g, const char *name)
{
    int64_t i = lookup(g->t_index, g->n_tensors, name);
    return i >= 0 ? &g->tensors[i] : NULL;
}

int64_t vlmn_gguf_tensor_rows(const vlmn_gguf_tensor *t)
{
    return (int64_t)(t->ne[1] * t->ne[2] * t->ne[3]); /* bounded by the validated element count */
}

vlmn_status vlmn_gguf_tensor_rows_f32(const vlmn_gguf_tensor *t, int64_t row0, int64_t nrows, float *dst)
{
    showbuf sb;
    int64_t rows = vlmn_gguf_tensor_rows(t);
    if (row0 < 0 || nrows < 0 || row0 > rows || nrows > rows - row0)
        return vlmn_error(VLMN_E_RANGE, "tensor %s: %lld rows from row %lld outside its %lld rows",
                          show(&sb, t->name.ptr, t->name.len), (long long)nrows, (long long)row0, (long long)rows);
    uint64_t row_bytes;
    vlmn_status st = vlmn_type_row_bytes(t->type, t->ne[0], &row_bytes);
    if (!st) st = vlmn_dequant(t->type, (const uint8_t *)t->data + (uint64_t)row0 * row_bytes, dst,
                               nrows * (int64_t)t->ne[0]);
    if (st) return vlmn_error_prefix(st, "tensor %s", show(&sb, t->name.ptr, t->name.len));
    return VLMN_OK;
}
