/* Allocation wrapper with failure injection, and the assertion handler (core). */
#include "core/alloc.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown; /* 0: off; k>0: the k-th allocation fails */

void vlmn_alloc_fail_after(long n) { atomic_store(&fail_countdown, n); }

static bool should_fail(void)
{
    static atomic_int env_read;
    if (!atomic_exchange(&env_read, 1)) {
        const char *e = getenv("VLMN_FAIL_ALLOC");
        if (e && *e) atomic_store(&fail_countdown, atol(e));
    }
    long c = atomic_load(&fail_countdown);
    if (c <= 0) return false;
    c = atomic_fetch_sub(&fail_countdown, 1);
    return c == 1;
}

void *vlmn_malloc(size_t n)
{
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *vlmn_calloc(size_t count, size_t size)
{
    if (should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *vlmn_realloc(void *p, size_t n)
{
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void vlmn_free(void *p) { free(p); }

void *vlmn_grow(void *p, int n, int *cap, size_t size)
{
    if (n < *cap) return p;
    if (*cap > INT_MAX / 2) return NULL;
    int c = *cap ? 2 * *cap : 16;
    uint64_t bytes;
    if (!vlmn_mul_ok((uint64_t)c, size, &bytes) || bytes > SIZE_MAX) return NULL;
    void *t = vlmn_realloc(p, (size_t)bytes);
    if (t) *cap = c;
    return t;
}

char *vlmn_strndup(const char *s, size_t n)
{
    char *d = vlmn_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *vlmn_strdup(const char *s) { return vlmn_strndup(s, strlen(s)); }

void *vlmn_malloc_aligned(size_t n)
{
    if (should_fail()) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    return p;
}

void vlmn_free_aligned(void *p) { free(p); }

void vlmn_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "vlmn: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
