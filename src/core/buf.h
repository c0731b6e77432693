/* Growable byte string for building text or encoded bytes: every append keeps a NUL
 * after the data (so `p` is a C string when the contents are text), an append that
 * cannot allocate sets `oom` and later appends do nothing. Start from {0}; free `p`
 * with vlmn_free. */
#ifndef VLMN_CORE_BUF_H
#define VLMN_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct vlmn_buf {
    char *p;
    size_t n, cap;
    bool oom;
} vlmn_buf;

/* Appends n bytes (n = 0 still allocates, so p is "" rather than NULL). */
void vlmn_buf_add(vlmn_buf *b, const void *data, size_t n);
static inline void vlmn_buf_adds(vlmn_buf *b, const char *s) { vlmn_buf_add(b, s, strlen(s)); }

#endif
