/* safetensors reader: maps each shard read-only, parses its JSON header with cJSON and
 * validates every entry (dtype, shape, data_offsets, overlaps, duplicates) before any
 * tensor is used, so that callers can trust the views. Zero-copy: tensor data point into
 * the mappings. Format: huggingface/safetensors (8-byte LE length + JSON + data). */
#include "vlmn/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/file.h"

/* Integers in JSON are doubles for cJSON: beyond 2^53 they are not exact. */
#define ST_MAX_JSON_INT 9007199254740992.0

struct shard {
    char *path;
    const uint8_t *base;
    uint64_t size;
    bool mapped;
    uint64_t data_start;          /* 8 + header length */
};

struct vlmn_st {
    char *path;
    int n_shards;
    struct shard *shards;
    int64_t n;
    vlmn_st_tensor *t;            /* sorted by name */
    cJSON *meta;                  /* __metadata__ of shard 0 (detached), or NULL */
};

static const struct {
    const char *name;
    uint32_t type;                /* UINT32_MAX: known to safetensors, not to vlmn */
    uint32_t size;
} dtypes[] = {
    {"F32", VLMN_TYPE_F32, 4}, {"F16", VLMN_TYPE_F16, 2}, {"BF16", VLMN_TYPE_BF16, 2},
    {"F64", UINT32_MAX, 8}, {"I64", UINT32_MAX, 8}, {"I32", UINT32_MAX, 4}, {"I16", UINT32_MAX, 2},
    {"I8", UINT32_MAX, 1}, {"U8", UINT32_MAX, 1}, {"U16", UINT32_MAX, 2}, {"U32", UINT32_MAX, 4},
    {"U64", UINT32_MAX, 8}, {"BOOL", UINT32_MAX, 1}, {"F8_E4M3", UINT32_MAX, 1},
    {"F8_E5M2", UINT32_MAX, 1},
};

void vlmn_st_close(vlmn_st *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_shards; i++) {
        struct shard *h = &s->shards[i];
        if (h->mapped && h->base) munmap((void *)h->base, (size_t)h->size);
        vlmn_free(h->path);
    }
    vlmn_free(s->shards);
    for (int64_t i = 0; i < s->n; i++) vlmn_free((char *)s->t[i].name);
    vlmn_free(s->t);
    cJSON_Delete(s->meta);
    vlmn_free(s->path);
    vlmn_free(s);
}

/* A printable, bounded copy of an untrusted name for messages. */
typedef struct { char s[80]; } showbuf;
static const char *show(showbuf *b, const char *p)
{
    size_t o = 0;
    for (; *p && o + 5 < sizeof b->s; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c < 0x7f) b->s[o++] = (char)c;
        else o += (size_t)snprintf(b->s + o, sizeof b->s - o, "\\x%02x", c);
    }
    if (*p) memcpy(b->s + (o < sizeof b->s - 4 ? o : sizeof b->s - 4), "...", 4);
    else b->s[o] = 0;
    return b->s;
}

static bool json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_JSON_INT) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const vlmn_st_tensor *)a)->name, ((const vlmn_st_tensor *)b)->name);
}

static int cmp_ptr(const void *a, const void *b)
{
    const vlmn_st_tensor *x = *(const vlmn_st_tensor *const *)a, *y = *(const vlmn_st_tensor *const *)b;
    uintptr_t p = (uintptr_t)x->data, q = (uintptr_t)y->data;
    return p < q ? -1 : p > q;
}

/* One entry of a header: fills *t (name owned by t) or returns an error naming it. */
static vlmn_status parse_entry(const struct shard *h, const cJSON *e, int shard, vlmn_st_tensor *t)
{
    showbuf sb;
    const char *nm = show(&sb, e->string);
    if (!e->string[0]) return vlmn_error(VLMN_E_FORMAT, "%s: tensor with an empty name", h->path);
    if (!cJSON_IsObject(e)) return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: entry is not an object", h->path, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: dtype missing or not a string", h->path, nm);
    if (!cJSON_IsArray(sh)) return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: shape missing or not an array", h->path, nm);
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: data_offsets is not an array of two integers", h->path, nm);
    uint32_t esize = 0;
    t->type = UINT32_MAX;
    size_t k;
    for (k = 0; k < VLMN_ARRAY_LEN(dtypes); k++)
        if (!strcmp(dt->valuestring, dtypes[k].name)) break;
    if (k == VLMN_ARRAY_LEN(dtypes)) {
        showbuf db;
        return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: unknown dtype \"%s\"", h->path, nm, show(&db, dt->valuestring));
    }
    if (dtypes[k].type == UINT32_MAX)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor %s: dtype %s not supported (only F32, F16, BF16)", h->path, nm,
                          dtypes[k].name);
    t->type = dtypes[k].type;
    esize = dtypes[k].size;
    int nd = cJSON_GetArraySize(sh);
    if (nd > VLMN_ST_MAX_DIMS)
        return vlmn_error(VLMN_E_RANGE, "%s: tensor %s: %d dimensions (at most %d)", h->path, nm, nd, VLMN_ST_MAX_DIMS);
    t->n_dims = (uint32_t)nd;
    for (int i = 0; i < VLMN_ST_MAX_DIMS; i++) t->shape[i] = 1;
    uint64_t nbytes = esize;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        if (!json_uint(d, &t->shape[i]))
            return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: shape[%d] is not a non-negative integer", h->path, nm, i);
        if (!vlmn_mul_ok(nbytes, t->shape[i], &nbytes))
            return vlmn_error(VLMN_E_RANGE, "%s: tensor %s: shape x dtype size overflows", h->path, nm);
        i++;
    }
    uint64_t b, en;
    if (!json_uint(cJSON_GetArrayItem(of, 0), &b) || !json_uint(cJSON_GetArrayItem(of, 1), &en))
        return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: data_offsets is not an array of two integers", h->path, nm);
    uint64_t avail = h->size - h->data_start;
    if (b > en || en > avail)
        return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] outside the data section (%llu bytes)",
                          h->path, nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)avail);
    if (en - b != nbytes)
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor %s: data_offsets span %llu bytes, shape x dtype needs %llu",
                          h->path, nm, (unsigned long long)(en - b), (unsigned long long)nbytes);
    t->nbytes = nbytes;
    t->data = h->base + h->data_start + b;
    t->shard = shard;
    t->name = vlmn_strdup(e->string);
    if (!t->name) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", h->path);
    return VLMN_OK;
}

/* Parse the header of shard `si` and append its tensors to s->t. */
static vlmn_status parse_shard(vlmn_st *s, int si)
{
    struct shard *h = &s->shards[si];
    if (h->size < 8)
        return vlmn_error(VLMN_E_FORMAT, "%s: file of %llu bytes is too small for a safetensors header", h->path,
                          (unsigned long long)h->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | h->base[i];
    if (n > VLMN_ST_MAX_HEADER)
        return vlmn_error(VLMN_E_RANGE, "%s: header length %llu exceeds the limit of %u bytes", h->path,
                          (unsigned long long)n, VLMN_ST_MAX_HEADER);
    if (n > h->size - 8)
        return vlmn_error(VLMN_E_FORMAT, "%s: header length %llu past end of file (size %llu)", h->path,
                          (unsigned long long)n, (unsigned long long)h->size);
    if (n < 2) return vlmn_error(VLMN_E_FORMAT, "%s: header of %llu bytes is not a JSON object", h->path, (unsigned long long)n);
    h->data_start = 8 + n;
    if (memchr(h->base + 8, 0, (size_t)n))
        return vlmn_error(VLMN_E_FORMAT, "%s: header holds a NUL byte", h->path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)h->base + 8, (size_t)n, &end, false);
    if (!root) {
        uint64_t at = end ? (uint64_t)(end - (const char *)h->base) : 8;
        return vlmn_error(VLMN_E_FORMAT, "%s: header is not valid JSON (near byte %llu)", h->path, (unsigned long long)at);
    }
    /* Anything but trailing spaces (HF pads headers to 8 bytes) after the object is bad. */
    for (const char *p = end; p && p < (const char *)h->base + 8 + n; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            return vlmn_error(VLMN_E_FORMAT, "%s: header has bytes after the JSON object", h->path);
        }
    vlmn_status st = VLMN_OK;
    if (!cJSON_IsObject(root)) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: header is not a JSON object", h->path);
        goto done;
    }
    int cnt = cJSON_GetArraySize(root);
    vlmn_st_tensor *nt = vlmn_realloc(s->t, ((size_t)s->n + (size_t)cnt + 1) * sizeof *s->t);
    if (!nt) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", h->path);
        goto done;
    }
    s->t = nt;
    const cJSON *e;
    int64_t first = s->n;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                st = vlmn_error(VLMN_E_FORMAT, "%s: __metadata__ is not an object", h->path);
                goto done;
            }
            const cJSON *v;
            cJSON_ArrayForEach(v, e) if (!cJSON_IsString(v)) {
                showbuf sb;
                st = vlmn_error(VLMN_E_FORMAT, "%s: __metadata__ key %s is not a string", h->path, show(&sb, v->string));
                goto done;
            }
            if (si == 0 && !s->meta) s->meta = cJSON_DetachItemViaPointer(root, (cJSON *)e);
            break;
        }
    }
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) continue;
        vlmn_st_tensor *t = &s->t[s->n];
        memset(t, 0, sizeof *t);
        if ((st = parse_entry(h, e, si, t))) goto done;
        s->n++;
    }
    /* Overlaps inside this shard, on the entries sorted by data address. */
    int64_t m = s->n - first;
    if (m > 1) {
        const vlmn_st_tensor **by = vlmn_malloc((size_t)m * sizeof *by);
        if (!by) {
            st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", h->path);
            goto done;
        }
        for (int64_t i = 0; i < m; i++) by[i] = &s->t[first + i];
        qsort(by, (size_t)m, sizeof *by, cmp_ptr);
        for (int64_t i = 1; i < m && !st; i++) {
            const uint8_t *pe = (const uint8_t *)by[i - 1]->data + by[i - 1]->nbytes;
            if (pe > (const uint8_t *)by[i]->data) {
                showbuf a, b;
                st = vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: data overlaps tensor %s", h->path, show(&a, by[i]->name),
                                show(&b, by[i - 1]->name));
            }
        }
        vlmn_free(by);
    }
done:
    cJSON_Delete(root);
    return st;
}

static vlmn_status map_shard(struct shard *h)
{
    int fd = open(h->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vlmn_error(errno == ENOENT ? VLMN_E_NOTFOUND : VLMN_E_IO, "%s: %s", h->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return vlmn_error(VLMN_E_IO, "%s: not a regular file", h->path);
    }
    h->size = (uint64_t)sb.st_size;
    if (h->size == 0) {
        close(fd);
        return vlmn_error(VLMN_E_FORMAT, "%s: empty file, not a safetensors file", h->path);
    }
    void *p = mmap(NULL, (size_t)h->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return vlmn_error(VLMN_E_IO, "%s: mmap: %s", h->path, strerror(e));
    h->base = p;
    h->mapped = true;
    return VLMN_OK;
}

/* Sort by name, reject duplicates (in one header or across shards). */
static vlmn_status finish(vlmn_st *s)
{
    if (s->n) qsort(s->t, (size_t)s->n, sizeof *s->t, cmp_name);
    for (int64_t i = 1; i < s->n; i++)
        if (!strcmp(s->t[i].name, s->t[i - 1].name)) {
            showbuf b;
            const struct shard *h = &s->shards[s->t[i].shard];
            return vlmn_error(VLMN_E_FORMAT, "%s: tensor %s: duplicate tensor name", h->path, show(&b, s->t[i].name));
        }
    return VLMN_OK;
}

static vlmn_st *new_reader(const char *path, int n_shards)
{
    vlmn_st *s = vlmn_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->path = vlmn_strdup(path);
    s->shards = vlmn_calloc((size_t)n_shards, sizeof *s->shards);
    if (!s->path || !s->shards) {
        vlmn_st_close(s);
        return NULL;
    }
    return s;
}

vlmn_status vlmn_st_open_memory(const void *buf, size_t size, const char *name, vlmn_st **out)
{
    *out = NULL;
    if (!name) name = "(memory)";
    if (!buf && size) return vlmn_error(VLMN_E_ARG, "st_open_memory: NULL buffer");
    vlmn_st *s = new_reader(name, 1);
    if (!s) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    s->n_shards = 1;
    s->shards[0].path = vlmn_strdup(name);
    s->shards[0].base = buf ? buf : (const uint8_t *)"";
    s->shards[0].size = size;
    vlmn_status st = s->shards[0].path ? parse_shard(s, 0) : vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    if (!st) st = finish(s);
    if (st) {
        vlmn_st_close(s);
        return st;
    }
    *out = s;
    return VLMN_OK;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = vlmn_malloc(a + b + 2);
    if (p) snprintf(p, a + b + 2, "%s/%s", dir, name);
    return p;
}

/* A shard name from the index must be a plain file name inside the folder. */
static bool plain_name(const char *s)
{
    return s[0] && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && strlen(s) < 1024;
}

static vlmn_status open_index(const char *dir, const char *ipath, vlmn_st **out)
{
    unsigned char *txt = NULL;
    size_t len = 0;
    vlmn_status st = vlmn_file_read(ipath, VLMN_ST_MAX_INDEX, "safetensors index", &txt, &len);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength((const char *)txt, len);
    vlmn_free(txt);
    if (!root) return vlmn_error(VLMN_E_FORMAT, "%s: not valid JSON", ipath);
    vlmn_st *s = NULL;
    const char **names = NULL;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: weight_map missing or not an object", ipath);
        goto fail;
    }
    /* distinct shard names, in order of first appearance */
    int nm = cJSON_GetArraySize(wm), ns = 0;
    names = vlmn_calloc((size_t)nm + 1, sizeof *names);
    if (!names) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", ipath);
        goto fail;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        showbuf b;
        if (!cJSON_IsString(e) || !plain_name(e->valuestring)) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: weight_map entry %s is not a file name in the folder", ipath,
                            show(&b, e->string));
            goto fail;
        }
        int j;
        for (j = 0; j < ns; j++)
            if (!strcmp(names[j], e->valuestring)) break;
        if (j == ns) {
            if (ns == VLMN_ST_MAX_SHARDS) {
                st = vlmn_error(VLMN_E_RANGE, "%s: more than %d shards", ipath, VLMN_ST_MAX_SHARDS);
                goto fail;
            }
            names[ns++] = e->valuestring;
        }
    }
    if (!ns) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: weight_map is empty", ipath);
        goto fail;
    }
    s = new_reader(dir, ns);
    if (!s) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", ipath);
        goto fail;
    }
    for (int i = 0; i < ns; i++) {
        s->n_shards = i + 1;
        if (!(s->shards[i].path = join(dir, names[i]))) {
            st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", ipath);
            goto fail;
        }
        if ((st = map_shard(&s->shards[i])) || (st = parse_shard(s, i))) goto fail;
    }
    if ((st = finish(s))) goto fail;
    /* the index and the shards must agree, both ways */
    cJSON_ArrayForEach(e, wm) {
        showbuf b;
        const vlmn_st_tensor *t = vlmn_st_find(s, e->string);
        if (!t) {
            st = vlmn_error(VLMN_E_NOTFOUND, "%s: tensor %s: listed in the index but in no shard", ipath, show(&b, e->string));
            goto fail;
        }
        if (strcmp(s->shards[t->shard].path + strlen(dir) + 1, e->valuestring)) {
            st = vlmn_error(VLMN_E_MISMATCH, "%s: tensor %s: index says %s, found in %s", ipath, show(&b, e->string),
                            e->valuestring, s->shards[t->shard].path);
            goto fail;
        }
    }
    if (s->n != nm) {
        for (int64_t i = 0; i < s->n; i++)
            if (!cJSON_GetObjectItemCaseSensitive(wm, s->t[i].name)) {
                showbuf b;
                st = vlmn_error(VLMN_E_MISMATCH, "%s: tensor %s: not listed in %s", s->shards[s->t[i].shard].path,
                                show(&b, s->t[i].name), ipath);
                goto fail;
            }
        st = vlmn_error(VLMN_E_FORMAT, "%s: weight_map lists a tensor twice", ipath);
        goto fail;
    }
    vlmn_free(names);
    cJSON_Delete(root);
    *out = s;
    return VLMN_OK;
fail:
    vlmn_free(names);
    cJSON_Delete(root);
    vlmn_st_close(s);
    return st;
}

bool vlmn_st_has_pickles(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        found = !strncmp(e->d_name, "pytorch_model", 13) && n >= 4 && !strcmp(e->d_name + n - 4, ".bin");
    }
    closedir(d);
    return found;
}

vlmn_status vlmn_st_open(const char *path, vlmn_st **out)
{
    *out = NULL;
    if (!path) return vlmn_error(VLMN_E_ARG, "st_open: NULL path");
    struct stat sb;
    if (stat(path, &sb) < 0)
        return vlmn_error(errno == ENOENT ? VLMN_E_NOTFOUND : VLMN_E_IO, "%s: %s", path, strerror(errno));
    vlmn_status st;
    if (S_ISDIR(sb.st_mode)) {
        char *ip = join(path, "model.safetensors.index.json");
        if (!ip) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
        if (access(ip, F_OK) == 0) {
            st = open_index(path, ip, out);
            vlmn_free(ip);
            return st;
        }
        vlmn_free(ip);
        char *one = join(path, "model.safetensors");
        if (!one) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
        if (access(one, F_OK) != 0) {
            vlmn_free(one);
            if (vlmn_st_has_pickles(path))
                return vlmn_error(VLMN_E_UNSUPPORTED,
                                  "%s: only PyTorch pickles (pytorch_model*.bin), which vlmn does not read: convert them to "
                                  "safetensors first (transformers: from_pretrained + save_pretrained(out, "
                                  "safe_serialization=True); or torch.load + safetensors.torch.save_file per shard)",
                                  path);
            return vlmn_error(VLMN_E_NOTFOUND, "%s: no model.safetensors.index.json or model.safetensors in the folder", path);
        }
        st = vlmn_st_open(one, out);
        vlmn_free(one);
        return st;
    }
    vlmn_st *s = new_reader(path, 1);
    if (!s) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    s->n_shards = 1;
    if (!(s->shards[0].path = vlmn_strdup(path))) st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    else if (!(st = map_shard(&s->shards[0])) && !(st = parse_shard(s, 0))) st = finish(s);
    if (st) {
        vlmn_st_close(s);
        return st;
    }
    *out = s;
    return VLMN_OK;
}

const char *vlmn_st_path(const vlmn_st *s) { return s->path; }
int vlmn_st_n_shards(const vlmn_st *s) { return s->n_shards; }
const char *vlmn_st_shard_path(const vlmn_st *s, int i) { return i >= 0 && i < s->n_shards ? s->shards[i].path : NULL; }
uint64_t vlmn_st_shard_size(const vlmn_st *s, int i) { return i >= 0 && i < s->n_shards ? s->shards[i].size : 0; }
int64_t vlmn_st_n_tensors(const vlmn_st *s) { return s->n; }
const vlmn_st_tensor *vlmn_st_tensor_at(const vlmn_st *s, int64_t i) { return i >= 0 && i < s->n ? &s->t[i] : NULL; }

const vlmn_st_tensor *vlmn_st_find(const vlmn_st *s, const char *name)
{
    int64_t lo = 0, hi = s->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->t[mid].name, name);
        if (!c) return &s->t[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *vlmn_st_metadata(const vlmn_st *s, const char *key)
{
    const cJSON *v = s->meta ? cJSON_GetObjectItemCaseSensitive(s->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

uint64_t vlmn_st_numel(const vlmn_st_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) n *= t->shape[i]; /* validated at open: no overflow */
    return n;
}
