/* NumPy .npy writer and strict reader (see include/vlmn/npy.h). Used for the
 * preprocessed image tensor (`vlmn preprocess`), dumps of activations and fixtures.
 * Format: numpy.lib.format, version 1.0 on write. */
#include "vlmn/npy.h"
#include "core/alloc.h"
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vlmn npy: little-endian host assumed (data is written as in memory)"
#endif

static const struct {
    const char *descr;
    const char *alt; /* other spelling numpy accepts for the same type */
    size_t size;
} dtypes[VLMN_NPY_DTYPE_COUNT_] = {
    [VLMN_NPY_F32] = {"<f4", NULL, 4}, [VLMN_NPY_F64] = {"<f8", NULL, 8},
    [VLMN_NPY_U8] = {"|u1", "<u1", 1}, [VLMN_NPY_I8] = {"|i1", "<i1", 1},
    [VLMN_NPY_U16] = {"<u2", NULL, 2}, [VLMN_NPY_I16] = {"<i2", NULL, 2},
    [VLMN_NPY_U32] = {"<u4", NULL, 4}, [VLMN_NPY_I32] = {"<i4", NULL, 4},
    [VLMN_NPY_U64] = {"<u8", NULL, 8}, [VLMN_NPY_I64] = {"<i8", NULL, 8},
    [VLMN_NPY_F16] = {"<f2", NULL, 2},
};

size_t vlmn_npy_dtype_size(vlmn_npy_dtype dt)
{
    return (unsigned)dt < VLMN_NPY_DTYPE_COUNT_ ? dtypes[dt].size : 0;
}

const char *vlmn_npy_dtype_descr(vlmn_npy_dtype dt)
{
    return (unsigned)dt < VLMN_NPY_DTYPE_COUNT_ ? dtypes[dt].descr : NULL;
}

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

size_t vlmn_npy_header(char *buf, size_t cap, vlmn_npy_dtype dt, int ndim, const int64_t *shape)
{
    if ((unsigned)dt >= VLMN_NPY_DTYPE_COUNT_ || ndim < 0 || ndim > VLMN_NPY_MAX_DIMS) return 0;
    /* The dict exactly as numpy's write_array_header_1_0 spells it. */
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtypes[dt].descr);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return 0;
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRId64, i ? ", " : "", shape[i]);
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    if (n <= 0 || (size_t)n >= sizeof dict) return 0;
    /* magic(6) + version(2) + len(2) + dict + spaces + '\n', total a multiple of 64. */
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) / 64 * 64;
    if (total > cap || total - 10 > 65535) return 0;
    memcpy(buf, npy_magic, 6);
    buf[6] = 1;
    buf[7] = 0;
    size_t hl = total - 10;
    buf[8] = (char)(hl & 0xff);
    buf[9] = (char)(hl >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
    buf[total - 1] = '\n';
    return total;
}

static vlmn_status write_all(int fd, const void *p, size_t n, const char *path)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return vlmn_error(VLMN_E_IO, "%s: write failed: %s", path, strerror(errno));
        }
        c += w;
        n -= (size_t)w;
    }
    return VLMN_OK;
}

/* Make the rename durable (best effort: some file systems refuse fsync on a dir). */
static void fsync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

/* Header and payload size of an array to write; errors name `path`. */
static vlmn_status prepare(const char *path, vlmn_npy_dtype dt, int ndim, const int64_t *shape, const void *data,
                           char hdr[1024], size_t *hlen, uint64_t *bytes)
{
    *hlen = vlmn_npy_header(hdr, 1024, dt, ndim, shape);
    if (!*hlen) return vlmn_error(VLMN_E_ARG, "%s: invalid npy dtype or shape", path);
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++)
        if (!vlmn_mul_ok(count, (uint64_t)shape[i], &count))
            return vlmn_error(VLMN_E_RANGE, "%s: npy shape overflows", path);
    if (!vlmn_mul_ok(count, dtypes[dt].size, bytes) || *bytes > SIZE_MAX)
        return vlmn_error(VLMN_E_RANGE, "%s: npy shape overflows", path);
    if (*bytes && !data) return vlmn_error(VLMN_E_ARG, "%s: npy write without data", path);
    return VLMN_OK;
}

vlmn_status vlmn_npy_write_fd(int fd, const char *name, vlmn_npy_dtype dt, int ndim, const int64_t *shape,
                              const void *data)
{
    char hdr[1024];
    size_t hlen;
    uint64_t bytes;
    vlmn_status st = prepare(name, dt, ndim, shape, data, hdr, &hlen, &bytes);
    if (!st) st = write_all(fd, hdr, hlen, name);
    if (!st && bytes) st = write_all(fd, data, (size_t)bytes, name);
    return st;
}

vlmn_status vlmn_npy_write(const char *path, vlmn_npy_dtype dt, int ndim, const int64_t *shape,
                           const void *data)
{
    char hdr[1024];
    size_t hlen;
    uint64_t bytes;
    vlmn_status pst = prepare(path, dt, ndim, shape, data, hdr, &hlen, &bytes);
    if (pst) return pst;

    size_t plen = strlen(path);
    char *tmp = vlmn_malloc(plen + 16);
    if (!tmp) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    vlmn_status st = VLMN_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = vlmn_error(VLMN_E_IO, "%s: cannot create temporary file: %s", path, strerror(errno));
        goto out;
    }
    /* mkstemp creates 0600; give the file the usual umask-based mode. */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) {
        st = vlmn_error(VLMN_E_IO, "%s: chmod failed: %s", path, strerror(errno));
        goto fail;
    }
    if ((st = write_all(fd, hdr, hlen, path)) != VLMN_OK) goto fail;
    if (bytes && (st = write_all(fd, data, (size_t)bytes, path)) != VLMN_OK) goto fail;
    /* Crash safety: data on disk before the rename makes it visible. */
    if (fsync(fd) != 0) {
        st = vlmn_error(VLMN_E_IO, "%s: fsync failed: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        st = vlmn_error(VLMN_E_IO, "%s: close failed: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        st = vlmn_error(VLMN_E_IO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    fsync_dir(path);
    goto out;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
out:
    vlmn_free(tmp);
    return st;
}

/* ---- strict header parser ------------------------------------------------------ */

struct hp {
    const char *p, *end;
};

static void hp_ws(struct hp *h)
{
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t')) h->p++;
}

static int hp_char(struct hp *h, char c)
{
    hp_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes into out (cap bytes incl. NUL). */
static int hp_str(struct hp *h, char *out, size_t cap)
{
    hp_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return 0;
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || (unsigned char)*h->p < 0x20 || n + 1 >= cap) return 0;
        out[n++] = *h->p++;
    }
    if (h->p >= h->end) return 0;
    h->p++;
    out[n] = 0;
    return 1;
}

static int hp_word(struct hp *h, const char *w)
{
    hp_ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) >= n && !memcmp(h->p, w, n)) {
        h->p += n;
        return 1;
    }
    return 0;
}

static int hp_int(struct hp *h, int64_t *v)
{
    hp_ws(h);
    int64_t x = 0;
    const char *s = h->p;
    while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
        if (x > (INT64_MAX - 9) / 10) return 0;
        x = x * 10 + (*h->p++ - '0');
    }
    if (h->p == s) return 0;
    /* numpy on some platforms wrote "3L"; accept it. */
    if (h->p < h->end && *h->p == 'L') h->p++;
    *v = x;
    return 1;
}

static vlmn_status bad(const char *name, const char *what)
{
    return vlmn_error(VLMN_E_FORMAT, "%s: npy header: %s", name, what);
}

vlmn_status vlmn_npy_parse(const void *buf, size_t len, const char *name, vlmn_npy **out)
{
    *out = NULL;
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, npy_magic, 6))
        return vlmn_error(VLMN_E_FORMAT, "%s: not a .npy file (bad magic)", name);
    unsigned major = b[6], minor = b[7];
    size_t hl, pre;
    if (major == 1 && minor == 0) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        pre = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (len < 12) return bad(name, "truncated");
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        pre = 12;
    } else {
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: npy version %u.%u not supported", name, major,
                          minor);
    }
    if (hl > len - pre) return bad(name, "header length past end of file");
    size_t data_off = pre + hl;
    /* numpy >= 1.9 aligns the data to 64 bytes (older versions to 16); require 16. */
    if (data_off % 16) return bad(name, "data not aligned");
    struct hp h = {(const char *)b + pre, (const char *)b + data_off};
    if (hl == 0 || h.end[-1] != '\n') return bad(name, "header does not end with newline");
    h.end--;

    char descr[16] = "";
    int have_descr = 0, have_fo = 0, have_shape = 0, fortran = 0, ndim = 0;
    int64_t shape[VLMN_NPY_MAX_DIMS];
    if (!hp_char(&h, '{')) return bad(name, "expected '{'");
    while (!hp_char(&h, '}')) {
        char key[32];
        if (!hp_str(&h, key, sizeof key)) return bad(name, "expected a quoted key");
        if (!hp_char(&h, ':')) return bad(name, "expected ':'");
        if (!strcmp(key, "descr")) {
            if (have_descr++ || !hp_str(&h, descr, sizeof descr)) return bad(name, "bad 'descr'");
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fo++) return bad(name, "duplicate 'fortran_order'");
            if (hp_word(&h, "True")) fortran = 1;
            else if (!hp_word(&h, "False")) return bad(name, "bad 'fortran_order'");
        } else if (!strcmp(key, "shape")) {
            if (have_shape++ || !hp_char(&h, '(')) return bad(name, "bad 'shape'");
            while (!hp_char(&h, ')')) {
                if (ndim >= VLMN_NPY_MAX_DIMS)
                    return vlmn_error(VLMN_E_UNSUPPORTED, "%s: npy: more than %d dimensions", name,
                                      VLMN_NPY_MAX_DIMS);
                if (!hp_int(&h, &shape[ndim])) return bad(name, "bad shape entry");
                ndim++;
                if (!hp_char(&h, ',')) {
                    if (!hp_char(&h, ')')) return bad(name, "bad 'shape'");
                    if (ndim == 1) return bad(name, "1-d shape without trailing comma");
                    break;
                }
            }
        } else {
            return bad(name, "unknown key");
        }
        if (!hp_char(&h, ',')) {
            if (!hp_char(&h, '}')) return bad(name, "expected ',' or '}'");
            break;
        }
    }
    hp_ws(&h);
    if (h.p != h.end) return bad(name, "junk after dict");
    if (!have_descr || !have_fo || !have_shape) return bad(name, "missing key");
    if (fortran)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: npy: Fortran-order arrays not supported", name);
    int dt = -1;
    for (int i = 0; i < VLMN_NPY_DTYPE_COUNT_; i++)
        if (!strcmp(descr, dtypes[i].descr) || (dtypes[i].alt && !strcmp(descr, dtypes[i].alt)))
            dt = i;
    if (dt < 0)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: npy dtype '%s' not supported", name, descr);

    uint64_t count = 1, bytes;
    for (int i = 0; i < ndim; i++)
        if (!vlmn_mul_ok(count, (uint64_t)shape[i], &count))
            return vlmn_error(VLMN_E_RANGE, "%s: npy shape overflows", name);
    if (!vlmn_mul_ok(count, dtypes[dt].size, &bytes) || bytes > VLMN_NPY_MAX_BYTES)
        return vlmn_error(VLMN_E_RANGE, "%s: npy data too large", name);
    if (bytes != len - data_off)
        return vlmn_error(VLMN_E_FORMAT, "%s: npy data is %zu bytes, shape needs %" PRIu64, name,
                          len - data_off, bytes);

    vlmn_npy *a = vlmn_calloc(1, sizeof *a);
    if (!a) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    a->dtype = (vlmn_npy_dtype)dt;
    a->ndim = ndim;
    memcpy(a->shape, shape, sizeof(int64_t) * (size_t)ndim);
    a->count = count;
    if (bytes) {
        a->data = vlmn_malloc((size_t)bytes);
        if (!a->data) {
            vlmn_free(a);
            return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
        }
        memcpy(a->data, b + data_off, (size_t)bytes);
    }
    *out = a;
    return VLMN_OK;
}

vlmn_status vlmn_npy_read(const char *path, vlmn_npy **out)
{
    *out = NULL;
    unsigned char *buf;
    size_t len;
    vlmn_status st = vlmn_file_read(path, VLMN_NPY_MAX_BYTES + 65536 + 12, "npy", &buf, &len);
    if (st) return st;
    st = vlmn_npy_parse(buf, len, path, out);
    vlmn_free(buf);
    return st;
}

void vlmn_npy_free(vlmn_npy *a)
{
    if (!a) return;
    vlmn_free(a->data);
    vlmn_free(a);
}
