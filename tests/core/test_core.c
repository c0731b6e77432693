/* Tests for src/core: error messages, allocation wrapper (growable arrays too) and failure injection. */
#include "test.h"
#include "vlmn/vlmn.h"
#include "core/alloc.h"

TEST(error_message_and_prefix)
{
    vlmn_status st = vlmn_error(VLMN_E_FORMAT, "bad magic 0x%x", 0x1234);
    CHECK_EQ_INT(st, VLMN_E_FORMAT);
    CHECK_EQ_STR(vlmn_errmsg(), "bad magic 0x1234");
    vlmn_error_prefix(st, "%s", "model.gguf");
    CHECK_EQ_STR(vlmn_errmsg(), "model.gguf: bad magic 0x1234");
    vlmn_clear_error();
    CHECK_EQ_STR(vlmn_errmsg(), "");
}

TEST(strerror_covers_all)
{
    for (int s = 0; s < VLMN_STATUS_COUNT_; s++) CHECK(strcmp(vlmn_strerror(s), "unknown status") != 0);
    CHECK_EQ_STR(vlmn_strerror(VLMN_STATUS_COUNT_), "unknown status");
}

TEST(alloc_failure_injection)
{
    vlmn_alloc_fail_after(2);
    void *a = vlmn_malloc(10);
    void *b = vlmn_malloc(10);
    void *c = vlmn_malloc(10);
    CHECK(a != NULL);
    CHECK(b == NULL);
    CHECK(c != NULL);
    vlmn_free(a);
    vlmn_free(c);
    char *s = vlmn_strndup("abcdef", 3);
    CHECK_EQ_STR(s, "abc");
    vlmn_free(s);
}

TEST(overflow_helpers)
{
    uint64_t r;
    CHECK(vlmn_mul_ok(1u << 20, 1u << 20, &r) && r == (1ull << 40));
    CHECK(!vlmn_mul_ok(UINT64_MAX / 2, 3, &r));
    CHECK(!vlmn_add_ok(UINT64_MAX, 1, &r));
}

/* vlmn_grow: room for one more when full (16, then doubling), the array kept when the
 * reallocation fails, NULL on a size that overflows. */
TEST(grow)
{
    int *a = NULL, cap = 0;
    for (int n = 0; n < 40; n++) {
        int *t = vlmn_grow(a, n, &cap, sizeof *a);
        CHECK(t != NULL);
        if (!t) break;
        a = t;
        a[n] = n;
        CHECK(cap > n);
    }
    CHECK_EQ_INT(cap, 64);
    CHECK(vlmn_grow(a, 40, &cap, sizeof *a) == a); /* not full */
    vlmn_alloc_fail_after(1);
    CHECK(vlmn_grow(a, 64, &cap, sizeof *a) == NULL);
    vlmn_alloc_fail_after(0);
    CHECK_EQ_INT(cap, 64);
    CHECK_EQ_INT(a[39], 39);
    int big = 1 << 30;
    CHECK(vlmn_grow(a, big, &big, SIZE_MAX / 4) == NULL);
    CHECK_EQ_INT(big, 1 << 30);
    vlmn_free(a);
}

TEST_MAIN()
