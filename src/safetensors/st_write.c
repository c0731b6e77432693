/* safetensors writer: declared tensors -> one file (JSON header padded with spaces to a
 * multiple of 8, as the safetensors library writes it, then the data in declaration
 * order). Tensor bytes come from fill callbacks writing into a shared mapping of the
 * file, so models larger than memory can be written (make-model --format hf). */
#include "vlmn/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"

struct wt {
    char *name;
    uint32_t type, n_dims;
    uint64_t shape[VLMN_ST_MAX_DIMS];
    uint64_t nbytes, offset;
    vlmn_st_fill_fn fill;
    void *user;
};

struct vlmn_st_writer {
    struct wt *t;
    size_t n, cap;
};

vlmn_status vlmn_st_writer_create(vlmn_st_writer **out)
{
    *out = vlmn_calloc(1, sizeof **out);
    return *out ? VLMN_OK : vlmn_error(VLMN_E_NOMEM, "safetensors writer: out of memory");
}

void vlmn_st_writer_free(vlmn_st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) vlmn_free(w->t[i].name);
    vlmn_free(w->t);
    vlmn_free(w);
}

static const char *dtype_name(uint32_t type)
{
    switch (type) {
    case VLMN_TYPE_F32: return "F32";
    case VLMN_TYPE_F16: return "F16";
    case VLMN_TYPE_BF16: return "BF16";
    default: return NULL;
    }
}

vlmn_status vlmn_st_writer_add(vlmn_st_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                               const uint64_t *shape, vlmn_st_fill_fn fill, void *user)
{
    if (!dtype_name(type)) return vlmn_error(VLMN_E_UNSUPPORTED, "safetensors writer: tensor %s: type not F32/F16/BF16", name);
    if (n_dims > VLMN_ST_MAX_DIMS || !name[0] || strchr(name, '"') || strchr(name, '\\'))
        return vlmn_error(VLMN_E_ARG, "safetensors writer: tensor %s: bad name or rank", name);
    if (w->n == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 64;
        struct wt *nt = vlmn_realloc(w->t, nc * sizeof *nt);
        if (!nt) return vlmn_error(VLMN_E_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = nc;
    }
    struct wt *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->nbytes = type == VLMN_TYPE_F32 ? 4 : 2;
    for (uint32_t i = 0; i < n_dims; i++) {
        t->shape[i] = shape[i];
        if (!vlmn_mul_ok(t->nbytes, shape[i], &t->nbytes))
            return vlmn_error(VLMN_E_RANGE, "safetensors writer: tensor %s: too large", name);
    }
    t->offset = w->n ? w->t[w->n - 1].offset + w->t[w->n - 1].nbytes : 0;
    if (!(t->name = vlmn_strdup(name))) return vlmn_error(VLMN_E_NOMEM, "safetensors writer: out of memory");
    t->type = type;
    t->n_dims = n_dims;
    t->fill = fill;
    t->user = user;
    w->n++;
    return VLMN_OK;
}

vlmn_status vlmn_st_writer_write(vlmn_st_writer *w, const char *path)
{
    vlmn_buf h = {0};
    char num[96];
    vlmn_buf_add(&h, "{", 1);
    for (size_t i = 0; i < w->n; i++) {
        const struct wt *t = &w->t[i];
        if (i) vlmn_buf_add(&h, ",", 1);
        vlmn_buf_adds(&h, "\"");
        vlmn_buf_adds(&h, t->name);
        vlmn_buf_adds(&h, "\":{\"dtype\":\"");
        vlmn_buf_adds(&h, dtype_name(t->type));
        vlmn_buf_adds(&h, "\",\"shape\":[");
        for (uint32_t d = 0; d < t->n_dims; d++) {
            snprintf(num, sizeof num, "%s%llu", d ? "," : "", (unsigned long long)t->shape[d]);
            vlmn_buf_adds(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)t->offset,
                 (unsigned long long)(t->offset + t->nbytes));
        vlmn_buf_adds(&h, num);
    }
    vlmn_buf_add(&h, "}", 1);
    while (!h.oom && h.n % 8) vlmn_buf_add(&h, " ", 1);
    if (h.oom) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    uint64_t data = w->n ? w->t[w->n - 1].offset + w->t[w->n - 1].nbytes : 0;
    uint64_t total = 8 + h.n + data;
    vlmn_status st = VLMN_OK;
    size_t pl = strlen(path) + 16;
    char *tmp = vlmn_malloc(pl);
    int fd = -1;
    uint8_t *map = NULL;
    if (!tmp) {
        vlmn_free(h.p);
        return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, pl, "%s.tmp.XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0) {
        st = vlmn_error(VLMN_E_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        vlmn_free(tmp);
        vlmn_free(h.p);
        return st;
    }
    fchmod(fd, 0644);
    int e = posix_fallocate(fd, 0, (off_t)total);
    if (e) {
        st = vlmn_error(VLMN_E_IO, "%s: cannot reserve %llu bytes: %s", path, (unsigned long long)total, strerror(e));
        goto fail;
    }
    map = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        st = vlmn_error(VLMN_E_IO, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    for (int i = 0; i < 8; i++) map[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    memcpy(map + 8, h.p, h.n);
    for (size_t i = 0; i < w->n; i++) {
        const struct wt *t = &w->t[i];
        uint8_t *dst = map + 8 + h.n + t->offset;
        if ((st = t->fill(t->user, dst, t->nbytes))) {
            vlmn_error_prefix(st, "%s: tensor %s", path, t->name);
            goto fail;
        }
    }
    if (msync(map, (size_t)total, MS_SYNC) < 0 || fsync(fd) < 0) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    munmap(map, (size_t)total);
    map = NULL;
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
    vlmn_free(h.p);
    return VLMN_OK;
fail:
    if (map) munmap(map, (size_t)total);
    if (fd >= 0) close(fd);
    unlink(tmp);
    vlmn_free(tmp);
    vlmn_free(h.p);
    return st;
}
