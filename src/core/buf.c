/* vlmn_buf: see buf.h. */
#include "core/buf.h"
#include "core/alloc.h"

void vlmn_buf_add(vlmn_buf *b, const void *data, size_t n)
{
    if (b->oom) return;
    if (n >= SIZE_MAX / 2 - b->n) {
        b->oom = true;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = vlmn_realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
}
