/* Thread pool: every thread index runs exactly once per job, the caller takes part,
 * p == NULL runs inline, and many back-to-back jobs neither lose nor repeat work. */
#include "test.h"
#include "vlmn/kernels.h"

#include <pthread.h>
#include <stdatomic.h>

struct job {
    atomic_int calls[16];
    atomic_int bad_nth;
    int want_nth;
    pthread_t caller;
    atomic_int caller_was_0;
    atomic_long sum;
};

static void job_fn(void *ctx, int ith, int nth)
{
    struct job *j = ctx;
    if (nth != j->want_nth || ith < 0 || ith >= nth) atomic_fetch_add(&j->bad_nth, 1);
    else atomic_fetch_add(&j->calls[ith], 1);
    if (ith == 0 && pthread_equal(pthread_self(), j->caller)) atomic_store(&j->caller_was_0, 1);
    atomic_fetch_add(&j->sum, ith + 1);
}

static void check_pool(int n)
{
    vlmn_pool *p = NULL;
    CHECK_EQ_INT(vlmn_pool_create(n, &p), VLMN_OK);
    if (!p) return;
    CHECK_EQ_INT(vlmn_pool_size(p), n);
    for (int rep = 0; rep < 100; rep++) {
        struct job j;
        memset(&j, 0, sizeof j);
        j.want_nth = n;
        j.caller = pthread_self();
        vlmn_pool_run(p, job_fn, &j);
        /* All work is finished when run returns. */
        CHECK_EQ_INT(atomic_load(&j.bad_nth), 0);
        CHECK_EQ_INT(atomic_load(&j.sum), (long)n * (n + 1) / 2);
        CHECK_EQ_INT(atomic_load(&j.caller_was_0), 1);
        for (int i = 0; i < n; i++) CHECK_EQ_INT(atomic_load(&j.calls[i]), 1);
        if (test_failed_checks_) break;
    }
    vlmn_pool_free(p);
}

TEST(pool_sizes)
{
    check_pool(1);
    check_pool(2);
    check_pool(3);
    check_pool(8);
}

TEST(pool_null_runs_inline)
{
    struct job j;
    memset(&j, 0, sizeof j);
    j.want_nth = 1;
    j.caller = pthread_self();
    vlmn_pool_run(NULL, job_fn, &j);
    CHECK_EQ_INT(atomic_load(&j.calls[0]), 1);
    CHECK_EQ_INT(atomic_load(&j.caller_was_0), 1);
    CHECK_EQ_INT(vlmn_pool_size(NULL), 1);
    vlmn_pool_free(NULL);
}

TEST(pool_default_size)
{
    vlmn_pool *p = NULL;
    CHECK_EQ_INT(vlmn_pool_create(0, &p), VLMN_OK);
    CHECK(p && vlmn_pool_size(p) >= 1);
    vlmn_pool_free(p);
    CHECK(vlmn_pool_create(100000, &p) == VLMN_E_RANGE);
    CHECK(p == NULL);
}

TEST(isa_names_and_force)
{
    CHECK_EQ_STR(vlmn_isa_name(VLMN_ISA_REF), "ref");
    CHECK_EQ_STR(vlmn_isa_name(VLMN_ISA_AVX2), "avx2");
    CHECK_EQ_STR(vlmn_isa_name(VLMN_ISA_AVX512), "avx512");
    vlmn_isa a = vlmn_isa_active();
    CHECK_EQ_INT(vlmn_isa_force(VLMN_ISA_REF), VLMN_OK);
    CHECK_EQ_INT(vlmn_isa_active(), VLMN_ISA_REF);
    CHECK_EQ_INT(vlmn_isa_force(a), VLMN_OK);
    CHECK_EQ_INT(vlmn_isa_active(), a);
}

TEST_MAIN()
