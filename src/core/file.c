/* Whole-file reads for the parsers of untrusted files (core). */
#include "core/file.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

vlmn_status vlmn_file_read(const char *path, uint64_t max_bytes, const char *what,
                           unsigned char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    vlmn_status st = VLMN_OK;
    unsigned char *b = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = vlmn_error(VLMN_E_IO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        st = vlmn_error(VLMN_E_RANGE, "%s: %s file too large (%lld bytes)", path, what,
                        (long long)sb.st_size);
        goto out;
    }
    size_t n = (size_t)sb.st_size;
    b = vlmn_malloc(n ? n : 1);
    if (!b) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if (n && fread(b, 1, n, f) != n) {
        st = vlmn_error(VLMN_E_IO, "%s: read failed", path);
        goto out;
    }
    *buf = b;
    *len = n;
    b = NULL;
out:
    vlmn_free(b);
    fclose(f);
    return st;
}

vlmn_status vlmn_file_read_stream(FILE *f, const char *name, uint64_t max_bytes, const char *what,
                                  unsigned char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    *buf = NULL;
    *len = 0;
    unsigned char *b = vlmn_malloc(cap);
    if (!b) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    for (;;) {
        if (n == cap) {
            if ((uint64_t)cap > max_bytes) break;
            unsigned char *nb = vlmn_realloc(b, cap * 2);
            if (!nb) {
                vlmn_free(b);
                return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        vlmn_free(b);
        return vlmn_error(VLMN_E_IO, "%s: read failed", name);
    }
    if ((uint64_t)n > max_bytes) {
        vlmn_free(b);
        return vlmn_error(VLMN_E_RANGE, "%s: %s too large (more than %llu bytes)", name, what,
                          (unsigned long long)max_bytes);
    }
    *buf = b;
    *len = n;
    return VLMN_OK;
}
