/* Tests for src/core: error messages, allocation wrapper and failure injection. */
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

TEST_MAIN()
