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
