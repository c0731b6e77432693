/* GGUF writer: collects metadata and tensors in memory (or as fill callbacks for
 * tensors larger than memory) and writes a version-3 little-endian file atomically.
 * Layout as the GGUF spec: header, kvs in insertion order, tensor infos, padding to
 * general.alignment, tensor data each at an aligned offset. */
#include "vlmn/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "gguf/gguf_int.h"

struct wkv {
    char *key;
    uint8_t *val; /* u32 type + encoded value */
    size_t n;
};

struct wtensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[VLMN_GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
    void *data; /* owned copy, or NULL when fill is set; borrowed when ref */
    bool ref;
    vlmn_gguf_fill_fn fill;
    void *user;
};

struct vlmn_gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
    uint64_t alignment;
};

static void bu32(vlmn_buf *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    vlmn_buf_add(o, b, 4);
}
static void bu64(vlmn_buf *o, uint64_t v)
{
    bu32(o, (uint32_t)v);
    bu32(o, (uint32_t)(v >> 32));
}
static void bstr(vlmn_buf *o, const char *s, uint64_t n)
{
    bu64(o, n);
    vlmn_buf_add(o, s, (size_t)n);
}

vlmn_status vlmn_gguf_writer_create(vlmn_gguf_writer **out)
{
    *out = vlmn_calloc(1, sizeof **out);
    if (!*out) return vlmn_error(VLMN_E_NOMEM, "gguf writer: out of memory");
    (*out)->alignment = VLMN_GGUF_DEFAULT_ALIGNMENT;
    return VLMN_OK;
}

void vlmn_gguf_writer_free(vlmn_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        vlmn_free(w->kv[i].key);
        vlmn_free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        vlmn_free(w->t[i].name);
        if (!w->t[i].ref) vlmn_free(w->t[i].data);
    }
    vlmn_free(w->kv);
    vlmn_free(w->t);
    vlmn_free(w);
}

/* Store key -> encoded value (takes ownership of enc->p on success and failure). */
static vlmn_status put_kv(vlmn_gguf_writer *w, const char *key, vlmn_buf *enc)
{
    if (enc->oom) {
        vlmn_free(enc->p);
        return vlmn_error(VLMN_E_NOMEM, "gguf writer: key %s: out of memory", key ? key : "");
    }
    size_t kl = key ? strlen(key) : 0;
    if (kl == 0 || kl > VLMN_GGUF_MAX_KEY_LEN) {
        vlmn_free(enc->p);
        return vlmn_error(VLMN_E_ARG, "gguf writer: key of %zu bytes (must be 1..%u)", kl, VLMN_GGUF_MAX_KEY_LEN);
    }
    uint32_t vt = (uint8_t)enc->p[0] | (uint32_t)(uint8_t)enc->p[1] << 8; /* type ids < 256 */
    if (!strcmp(key, "general.alignment") && (vt == VLMN_GGUF_STRING || vt == VLMN_GGUF_ARRAY)) {
        vlmn_free(enc->p);
        return vlmn_error(VLMN_E_ARG, "gguf writer: general.alignment must be an unsigned integer");
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            vlmn_free(w->kv[i].val);
            w->kv[i].val = (uint8_t *)enc->p;
            w->kv[i].n = enc->n;
            return VLMN_OK;
        }
    if (w->n_kv >= VLMN_GGUF_MAX_KV) {
        vlmn_free(enc->p);
        return vlmn_error(VLMN_E_RANGE, "gguf writer: key %s: more than %u keys", key, VLMN_GGUF_MAX_KV);
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        struct wkv *nk = vlmn_realloc(w->kv, cap * sizeof *nk);
        if (!nk) {
            vlmn_free(enc->p);
            return vlmn_error(VLMN_E_NOMEM, "gguf writer: key %s: out of memory", key);
        }
        w->kv = nk;
        w->cap_kv = cap;
    }
    char *k = vlmn_strdup(key);
    if (!k) {
        vlmn_free(enc->p);
        return vlmn_error(VLMN_E_NOMEM, "gguf writer: key %s: out of memory", key);
    }
    w->kv[w->n_kv++] = (struct wkv){k, (uint8_t *)enc->p, enc->n};
    return VLMN_OK;
}

vlmn_status vlmn_gguf_set_scalar(vlmn_gguf_writer *w, const char *key, vlmn_gguf_vtype t, const void *le)
{
    uint32_t sz = vlmn_gguf_vtype_size(t);
    if (!sz) return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: %s is not a scalar type", key ? key : "",
                               vlmn_gguf_vtype_name(t));
    if (t == VLMN_GGUF_BOOL && *(const uint8_t *)le > 1)
        return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: bool byte must be 0 or 1", key ? key : "");
    if (key && !strcmp(key, "general.alignment")) {
        vlmn_gguf_value v = {.type = t, .data = le, .len = sz};
        uint64_t a;
        if (!vlmn_gguf_value_u64(&v, &a) || a == 0 || (a & (a - 1)) || a > VLMN_GGUF_MAX_ALIGNMENT)
            return vlmn_error(VLMN_E_ARG, "gguf writer: general.alignment must be an unsigned power of two <= %u",
                              VLMN_GGUF_MAX_ALIGNMENT);
        if (w->n_t)
            return vlmn_error(VLMN_E_ARG, "gguf writer: set general.alignment before adding tensors");
        w->alignment = a;
    }
    vlmn_buf e = {0};
    bu32(&e, (uint32_t)t);
    vlmn_buf_add(&e, le, sz);
    return put_kv(w, key, &e);
}

vlmn_status vlmn_gguf_set_u32(vlmn_gguf_writer *w, const char *key, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return vlmn_gguf_set_scalar(w, key, VLMN_GGUF_U32, b);
}

vlmn_status vlmn_gguf_set_i32(vlmn_gguf_writer *w, const char *key, int32_t v)
{
    uint32_t u = (uint32_t)v;
    uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    return vlmn_gguf_set_scalar(w, key, VLMN_GGUF_I32, b);
}

vlmn_status vlmn_gguf_set_u64(vlmn_gguf_writer *w, const char *key, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return vlmn_gguf_set_scalar(w, key, VLMN_GGUF_U64, b);
}

vlmn_status vlmn_gguf_set_f32(vlmn_gguf_writer *w, const char *key, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    return vlmn_gguf_set_scalar(w, key, VLMN_GGUF_F32, b);
}

vlmn_status vlmn_gguf_set_bool(vlmn_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return vlmn_gguf_set_scalar(w, key, VLMN_GGUF_BOOL, &b);
}

vlmn_status vlmn_gguf_set_str(vlmn_gguf_writer *w, const char *key, const char *v)
{
    if (!v) return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: NULL string", key ? key : "");
    vlmn_buf e = {0};
    bu32(&e, VLMN_GGUF_STRING);
    bstr(&e, v, strlen(v));
    return put_kv(w, key, &e);
}

vlmn_status vlmn_gguf_set_arr(vlmn_gguf_writer *w, const char *key, vlmn_gguf_vtype et, const void *data,
                              uint64_t count)
{
    uint32_t sz = vlmn_gguf_vtype_size(et);
    uint64_t bytes;
    if (!sz) return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: arrays of %s need set_arr_str / set_value",
                               key ? key : "", vlmn_gguf_vtype_name(et));
    if (!vlmn_mul_ok(count, sz, &bytes) || bytes > SIZE_MAX / 2)
        return vlmn_error(VLMN_E_RANGE, "gguf writer: key %s: array too large", key ? key : "");
    if (count && !data) return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: NULL array data", key ? key : "");
    if (et == VLMN_GGUF_BOOL)
        for (uint64_t j = 0; j < count; j++)
            if (((const uint8_t *)data)[j] > 1)
                return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: bool element %llu is not 0 or 1",
                                  key ? key : "", (unsigned long long)j);
    vlmn_buf e = {0};
    bu32(&e, VLMN_GGUF_ARRAY);
    bu32(&e, (uint32_t)et);
    bu64(&e, count);
    vlmn_buf_add(&e, data, (size_t)bytes);
    return put_kv(w, key, &e);
}

vlmn_status vlmn_gguf_set_arr_str(vlmn_gguf_writer *w, const char *key, const char *const *strs, uint64_t count)
{
    if (count && !strs) return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: NULL string array", key ? key : "");
    vlmn_buf e = {0};
    bu32(&e, VLMN_GGUF_ARRAY);
    bu32(&e, VLMN_GGUF_STRING);
    bu64(&e, count);
    for (uint64_t j = 0; j < count; j++) {
        if (!strs[j]) {
            vlmn_free(e.p);
            return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: string %llu is NULL", key ? key : "",
                              (unsigned long long)j);
        }
        bstr(&e, strs[j], strlen(strs[j]));
    }
    return put_kv(w, key, &e);
}

vlmn_status vlmn_gguf_set_value(vlmn_gguf_writer *w, const char *key, const vlmn_gguf_value *v)
{
    if (vlmn_gguf_vtype_size(v->type)) return vlmn_gguf_set_scalar(w, key, v->type, v->data);
    vlmn_buf e = {0};
    bu32(&e, (uint32_t)v->type);
    if (v->type == VLMN_GGUF_STRING) {
        bstr(&e, (const char *)v->data, v->len);
    } else if (v->type == VLMN_GGUF_ARRAY) {
        bu32(&e, (uint32_t)v->arr_type);
        bu64(&e, v->arr_count);
        vlmn_buf_add(&e, v->data, (size_t)v->len); /* elements are contiguous, already encoded */
    } else {
        vlmn_free(e.p);
        return vlmn_error(VLMN_E_ARG, "gguf writer: key %s: bad value type %d", key ? key : "", (int)v->type);
    }
    return put_kv(w, key, &e);
}

/* Validate and append a tensor entry (data/fill filled in by the caller). */
static vlmn_status new_tensor(vlmn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                              const uint64_t *ne, struct wtensor **out)
{
    const char *nm = name ? name : "";
    size_t nl = strlen(nm);
    if (nl == 0 || nl > VLMN_GGUF_MAX_KEY_LEN)
        return vlmn_error(VLMN_E_ARG, "gguf writer: tensor name of %zu bytes (must be 1..%u)", nl,
                          VLMN_GGUF_MAX_KEY_LEN);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, nm)) return vlmn_error(VLMN_E_ARG, "gguf writer: tensor %s: added twice", nm);
    if (!vlmn_type_name(type))
        return vlmn_error(VLMN_E_UNSUPPORTED, "gguf writer: tensor %s: unknown type id %u", nm, type);
    if (n_dims < 1 || n_dims > VLMN_GGUF_MAX_DIMS)
        return vlmn_error(VLMN_E_ARG, "gguf writer: tensor %s: n_dims %u not in 1..%d", nm, n_dims,
                          VLMN_GGUF_MAX_DIMS);
    struct wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    uint64_t nel = 1, row;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0) return vlmn_error(VLMN_E_ARG, "gguf writer: tensor %s: dimension %u is 0", nm, d);
        t.ne[d] = ne[d];
        if (!vlmn_mul_ok(nel, ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return vlmn_error(VLMN_E_RANGE, "gguf writer: tensor %s: element count overflows", nm);
    }
    vlmn_status st = vlmn_type_row_bytes(type, t.ne[0], &row);
    if (st) return vlmn_error_prefix(st, "gguf writer: tensor %s", nm);
    if (!vlmn_mul_ok(row, nel / t.ne[0], &t.nbytes) || t.nbytes > (uint64_t)INT64_MAX)
        return vlmn_error(VLMN_E_RANGE, "gguf writer: tensor %s: byte size overflows", nm);
    if (w->n_t >= VLMN_GGUF_MAX_TENSORS)
        return vlmn_error(VLMN_E_RANGE, "gguf writer: tensor %s: more than %u tensors", nm, VLMN_GGUF_MAX_TENSORS);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        struct wtensor *nt = vlmn_realloc(w->t, cap * sizeof *nt);
        if (!nt) return vlmn_error(VLMN_E_NOMEM, "gguf writer: tensor %s: out of memory", nm);
        w->t = nt;
        w->cap_t = cap;
    }
    t.name = vlmn_strdup(nm);
    if (!t.name) return vlmn_error(VLMN_E_NOMEM, "gguf writer: tensor %s: out of memory", nm);
    w->t[w->n_t] = t;
    *out = &w->t[w->n_t];
    return VLMN_OK;
}

static vlmn_status tensor_alloc(struct wtensor *t)
{
    if (t->nbytes <= SIZE_MAX / 2 && (t->data = vlmn_malloc((size_t)t->nbytes))) return VLMN_OK;
    vlmn_status st = vlmn_error(VLMN_E_NOMEM, "gguf writer: tensor %s: cannot allocate %llu bytes (use add_tensor_fill)",
                                t->name, (unsigned long long)t->nbytes);
    vlmn_free(t->name);
    return st;
}

vlmn_status vlmn_gguf_add_tensor(vlmn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                 const uint64_t *ne, const void *data)
{
    struct wtensor *t;
    vlmn_status st = new_tensor(w, name, type, n_dims, ne, &t);
    if (st) return st;
    if (!data) {
        vlmn_free(t->name);
        return vlmn_error(VLMN_E_ARG, "gguf writer: tensor %s: NULL data", name);
    }
    if ((st = tensor_alloc(t))) return st;
    memcpy(t->data, data, (size_t)t->nbytes);
    w->n_t++;
    return VLMN_OK;
}

vlmn_status vlmn_gguf_add_tensor_f32(vlmn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                     const uint64_t *ne, const float *values)
{
    if (type != VLMN_TYPE_F32 && type != VLMN_TYPE_F16 && type != VLMN_TYPE_BF16 && type != VLMN_TYPE_Q8_0)
        return vlmn_error(VLMN_E_UNSUPPORTED, "gguf writer: tensor %s: cannot convert f32 to %s", name ? name : "",
                          vlmn_type_name(type) ? vlmn_type_name(type) : "an unknown type");
    struct wtensor *t;
    vlmn_status st = new_tensor(w, name, type, n_dims, ne, &t);
    if (st) return st;
    if (!values) {
        vlmn_free(t->name);
        return vlmn_error(VLMN_E_ARG, "gguf writer: tensor %s: NULL data", name);
    }
    if ((st = tensor_alloc(t))) return st;
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    vlmn_from_f32(type, values, t->data, (int64_t)n); /* type checked above */
    w->n_t++;
    return VLMN_OK;
}

static vlmn_status encode_header(vlmn_gguf_writer *w, vlmn_buf *h, uint64_t *total);

vlmn_status vlmn_gguf_add_tensor_ref(vlmn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                     const uint64_t *ne, const void *data)
{
    struct wtensor *t;
    if (!data) return vlmn_error(VLMN_E_ARG, "gguf writer: tensor %s: NULL data", name ? name : "");
    vlmn_status st = new_tensor(w, name, type, n_dims, ne, &t);
    if (st) return st;
    t->data = (void *)data;
    t->ref = true;
    w->n_t++;
    return VLMN_OK;
}

vlmn_status vlmn_gguf_writer_view(vlmn_gguf_writer *w, const char *name, void (*release)(void *), void *owner,
                                  vlmn_gguf **out)
{
    vlmn_buf h = {0};
    uint64_t total;
    const void **data = NULL;
    *out = NULL;
    vlmn_status st = VLMN_OK;
    for (size_t i = 0; i < w->n_t && !st; i++)
        if (!w->t[i].ref) st = vlmn_error(VLMN_E_ARG, "gguf writer: view of tensor %s that is not a reference", w->t[i].name);
    if (!st) st = encode_header(w, &h, &total);
    if (!st && !(data = vlmn_malloc((w->n_t ? w->n_t : 1) * sizeof *data)))
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    if (st) {
        vlmn_free(h.p);
        if (release) release(owner);
        return st;
    }
    for (size_t i = 0; i < w->n_t; i++) data[i] = w->t[i].data;
    return vlmn_gguf_open_view_(h.p, h.n, name, data, w->n_t, release, owner, out);
}

vlmn_status vlmn_gguf_add_tensor_fill(vlmn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                      const uint64_t *ne, vlmn_gguf_fill_fn fill, void *user)
{
    if (!fill) return vlmn_error(VLMN_E_ARG, "gguf writer: tensor %s: NULL fill function", name ? name : "");
    struct wtensor *t;
    vlmn_status st = new_tensor(w, name, type, n_dims, ne, &t);
    if (st) return st;
    t->fill = fill;
    t->user = user;
    w->n_t++;
    return VLMN_OK;
}

/* ---- Output --------------------------------------------------------------------- */

static vlmn_status write_all(int fd, const void *p, size_t n, const char *path)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return vlmn_error(VLMN_E_IO, "%s: write: %s", path, strerror(errno));
        }
        b += k;
        n -= (size_t)k;
    }
    return VLMN_OK;
}

static vlmn_status pwrite_all(int fd, const void *p, uint64_t n, uint64_t off, const char *path)
{
    const uint8_t *b = p;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t k = pwrite(fd, b, chunk, (off_t)off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return vlmn_error(VLMN_E_IO, "%s: write: %s", path, strerror(errno));
        }
        b += k;
        n -= (uint64_t)k;
        off += (uint64_t)k;
    }
    return VLMN_OK;
}

/* Header bytes (up to the data section, padded) and the tensors' offsets. */
static vlmn_status encode_header(vlmn_gguf_writer *w, vlmn_buf *h, uint64_t *total)
{
    vlmn_buf_add(h, "GGUF", 4);
    bu32(h, 3);
    bu64(h, w->n_t);
    bu64(h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        bstr(h, w->kv[i].key, strlen(w->kv[i].key));
        vlmn_buf_add(h, w->kv[i].val, w->kv[i].n);
    }
    uint64_t off = 0, a = w->alignment;
    for (size_t i = 0; i < w->n_t; i++) {
        struct wtensor *t = &w->t[i];
        off = (off + a - 1) / a * a;
        t->offset = off;
        bstr(h, t->name, strlen(t->name));
        bu32(h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) bu64(h, t->ne[d]);
        bu32(h, t->type);
        bu64(h, t->offset);
        if (!vlmn_add_ok(off, t->nbytes, &off)) return vlmn_error(VLMN_E_RANGE, "gguf writer: file size overflows");
    }
    while (!h->oom && h->n % a) vlmn_buf_add(h, "", 1);
    if (h->oom) return vlmn_error(VLMN_E_NOMEM, "gguf writer: out of memory");
    if (!vlmn_add_ok(h->n, off, total)) return vlmn_error(VLMN_E_RANGE, "gguf writer: file size overflows");
    return VLMN_OK;
}

/* Let `fill` write straight into the file through a shared mapping. */
static vlmn_status fill_tensor(int fd, uint64_t pos, const struct wtensor *t, const char *path)
{
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t start = pos - pos % (uint64_t)pg, lead = pos - start;
    size_t len = (size_t)(lead + t->nbytes);
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
    if (m == MAP_FAILED) return vlmn_error(VLMN_E_IO, "%s: tensor %s: mmap: %s", path, t->name, strerror(errno));
    vlmn_status st = t->fill(t->user, (uint8_t *)m + lead, t->nbytes);
    if (st) vlmn_error_prefix(st, "%s: tensor %s", path, t->name);
    munmap(m, len);
    return st;
}

vlmn_status vlmn_gguf_write(vlmn_gguf_writer *w, const char *path)
{
    vlmn_buf h = {0};
    uint64_t total = 0;
    char *tmp = NULL, *dircopy = NULL;
    int fd = -1;
    vlmn_status st = encode_header(w, &h, &total);
    if (st) goto fail;
    size_t pl = strlen(path);
    tmp = vlmn_malloc(pl + 16);
    if (!tmp) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        st = vlmn_error(VLMN_E_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        vlmn_free(tmp);
        tmp = NULL;
        goto fail;
    }
    fchmod(fd, 0644);
    bool any_fill = false;
    for (size_t i = 0; i < w->n_t; i++) any_fill |= w->t[i].fill != NULL;
    if (any_fill) {
        int e = posix_fallocate(fd, 0, (off_t)total);
        if (e) {
            st = vlmn_error(VLMN_E_IO, "%s: cannot reserve %llu bytes: %s", path, (unsigned long long)total, strerror(e));
            goto fail;
        }
    }
    if ((st = write_all(fd, h.p, h.n, path))) goto fail;
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        uint64_t pos = h.n + t->offset;
        if (t->fill) st = fill_tensor(fd, pos, t, path);
        else st = pwrite_all(fd, t->data, t->nbytes, pos, path);
        if (st) goto fail;
    }
    /* trailing padding of the last tensor is not written: the file ends with its data */
    if (ftruncate(fd, (off_t)total) < 0 || fsync(fd) < 0) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        st = vlmn_error(VLMN_E_IO, "%s: close: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        st = vlmn_error(VLMN_E_IO, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    vlmn_free(tmp);
    tmp = NULL;
    dircopy = vlmn_strdup(path);
    if (dircopy) {
        int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd); /* make the rename durable; failure here is not fatal */
            close(dfd);
        }
    }
    vlmn_free(dircopy);
    vlmn_free(h.p);
    return VLMN_OK;
fail:
    if (fd >= 0) close(fd);
    if (tmp) {
        unlink(tmp);
        vlmn_free(tmp);
    }
    vlmn_free(h.p);
    return st;
}
