/* Minimal test framework for vlmn: each tests/<module>/test_*.c is one executable run by
 * CTest. TEST(name) defines a case; main() from TEST_MAIN() runs them all and prints
 * "N passed, N failed". Checks record failures and continue within a case.
 * Environment (set by CMake): VLMN_TEST_DATA (tests/data), VLMN_BIN (the CLI),
 * VLMN_TMP (a scratch folder inside the build tree). */
#ifndef VLMN_TEST_H
#define VLMN_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
struct test_case { const char *name; test_fn fn; };

static struct test_case test_cases_[256];
static int test_count_;
static int test_failed_checks_;

#define TEST(tname)                                                                 \
    static void test_##tname(void);                                                 \
    __attribute__((constructor)) static void test_reg_##tname(void)                 \
    {                                                                               \
        test_cases_[test_count_].name = #tname;                                     \
        test_cases_[test_count_++].fn = test_##tname;                               \
    }                                                                               \
    static void test_##tname(void)

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failed_checks_++;                                                  \
        }                                                                           \
    } while (0)

#define CHECK_MSG(cond, ...)                                                        \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "  %s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                    \
            test_failed_checks_++;                                                  \
        }                                                                           \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                          \
    do {                                                                            \
        long long a_ = (long long)(a), b_ = (long long)(b);                         \
        if (a_ != b_) {                                                             \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__,   \
                    __LINE__, #a, #b, a_, b_);                                      \
            test_failed_checks_++;                                                  \
        }                                                                           \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                          \
    do {                                                                            \
        const char *a_ = (a), *b_ = (b);                                            \
        if (!a_ || !b_ || strcmp(a_, b_)) {                                         \
            fprintf(stderr, "  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n",         \
                    __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
            test_failed_checks_++;                                                  \
        }                                                                           \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                       \
    do {                                                                            \
        double a_ = (double)(a), b_ = (double)(b);                                  \
        if (!(fabs(a_ - b_) <= (tol))) {                                            \
            fprintf(stderr, "  %s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n",      \
                    __FILE__, __LINE__, #a, #b, (double)(tol), a_, b_);             \
            test_failed_checks_++;                                                  \
        }                                                                           \
    } while (0)

static inline const char *test_data_dir(void)
{
    const char *d = getenv("VLMN_TEST_DATA");
    return d ? d : "tests/data";
}
static inline const char *test_tmp_dir(void)
{
    const char *d = getenv("VLMN_TMP");
    return d ? d : "/tmp";
}
/* Path helper: returns a static buffer "dir/name" (rotating, 8 slots). */
static inline const char *test_path(const char *dir, const char *name)
{
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

/* Read a whole file into a new NUL-terminated buffer (free with free()); *len (if not
 * NULL) gets its size. Returns NULL, with a message, when it cannot be read. */
static inline void *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "  cannot open %s\n", path);
        return NULL;
    }
    char *b = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (!b) {
        fprintf(stderr, "  cannot read %s\n", path);
        return NULL;
    }
    b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

#define TEST_MAIN()                                                                 \
    int main(int argc, char **argv)                                                 \
    {                                                                               \
        int passed = 0, failed = 0;                                                 \
        for (int i = 0; i < test_count_; i++) {                                     \
            if (argc > 1 && !strstr(test_cases_[i].name, argv[1])) continue;       \
            int before = test_failed_checks_;                                       \
            test_cases_[i].fn();                                                    \
            if (test_failed_checks_ == before) {                                    \
                passed++;                                                           \
            } else {                                                                \
                failed++;                                                           \
                fprintf(stderr, "FAIL %s\n", test_cases_[i].name);                  \
            }                                                                       \
        }                                                                           \
        printf("%d passed, %d failed\n", passed, failed);                           \
        return failed ? 1 : 0;                                                      \
    }

#endif
