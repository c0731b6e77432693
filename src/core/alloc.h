/* One allocation wrapper for the whole library, so tests can inject failures
 * (env VLMN_FAIL_ALLOC=N makes the N-th allocation after start fail) and every
 * size computation goes through the overflow-checked helpers below. */
#ifndef VLMN_CORE_ALLOC_H
#define VLMN_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

void *vlmn_malloc(size_t n);
void *vlmn_calloc(size_t count, size_t size);
void *vlmn_realloc(void *p, size_t n);
void  vlmn_free(void *p);
char *vlmn_strdup(const char *s);
char *vlmn_strndup(const char *s, size_t n);
/* A growable array p of *cap elements of `size` bytes that holds n: when n == *cap,
 * *cap is doubled (16 at first) and p reallocated. Returns the (possibly moved) array,
 * or NULL when out of memory or on overflow; p and *cap are then as they were. */
void *vlmn_grow(void *p, int n, int *cap, size_t size);
/* 64-byte aligned (for kernels); free with vlmn_free_aligned. */
void *vlmn_malloc_aligned(size_t n);
void  vlmn_free_aligned(void *p);

/* Test hook: make the n-th allocation from now fail (0 disables). */
void vlmn_alloc_fail_after(long n);

/* Overflow-checked arithmetic: return false on overflow. */
static inline bool vlmn_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool vlmn_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

#define VLMN_ASSERT(cond)                                                          \
    do {                                                                           \
        if (!(cond)) vlmn_assert_fail(#cond, __FILE__, __LINE__);                  \
    } while (0)
void vlmn_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#define VLMN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
