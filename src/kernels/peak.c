/* Peak measurement driver (see peak.h): runs the per-ISA loop on every pool thread at
 * once and keeps the best of several runs, since the machine may be shared. */
#include "kernels/peak.h"
#include "kernels/kernels_int.h"

#include "core/alloc.h"

#include <string.h>
#include <time.h>

typedef struct { vlmn_peak_kind kind; vlmn_isa isa; long iters; double ops[VLMN_POOL_MAX_THREADS]; } peak_job;

static void peak_fn(void *ctx, int ith, int nth)
{
    peak_job *j = ctx;
    j->ops[ith] = j->isa == VLMN_ISA_AVX512 ? peak_loop_avx512(j->kind, j->iters)
                  : j->isa == VLMN_ISA_AVX2 ? peak_loop_avx2(j->kind, j->iters) : 0.0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double vlmn_peak_measure(vlmn_pool *p, vlmn_peak_kind kind, vlmn_isa isa, double seconds, int reps)
{
    if (!vlmn_isa_supported(isa) || isa == VLMN_ISA_REF) return 0.0;
    if (isa == VLMN_ISA_AVX2 && kind != VLMN_PEAK_F32_FMA) return 0.0;
    static peak_job j; /* large; one measurement at a time */
    j.kind = kind;
    j.isa = isa;
    /* Calibrate the iteration count on a short run so each rep lasts ~`seconds`
     * (also in unoptimised sanitizer builds). */
    j.iters = 10000;
    double t0 = now();
    vlmn_pool_run(p, peak_fn, &j);
    double t1 = now() - t0;
    double want = t1 > 0 ? (double)j.iters * seconds / t1 : 1e6;
    j.iters = want < 10000 ? 10000 : want > 1e9 ? 1000000000L : (long)want;
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        vlmn_pool_run(p, peak_fn, &j);
        double t = now() - t0, ops = 0.0;
        for (int i = 0; i < vlmn_pool_size(p); i++) ops += j.ops[i];
        if (t > 0 && ops / t > best) best = ops / t;
    }
    return best;
}

typedef struct {
    const uint8_t *buf;
    size_t slice;
    bool avx2;
    uint64_t sink[VLMN_POOL_MAX_THREADS];
} bw_job;

static void bw_fn(void *ctx, int ith, int nth)
{
    bw_job *j = ctx;
    (void)nth;
    const uint8_t *p = j->buf + (size_t)ith * j->slice;
    if (j->avx2) {
        j->sink[ith] ^= mem_read_avx2(p, j->slice);
        return;
    }
    const uint64_t *q = (const uint64_t *)p;
    uint64_t s0 = 0, s1 = 0;
    for (size_t i = 0; i < j->slice / 8; i += 2) s0 ^= q[i], s1 ^= q[i + 1];
    j->sink[ith] ^= s0 ^ s1;
}

double vlmn_mem_read_bandwidth(vlmn_pool *p, size_t bytes, int reps)
{
    static bw_job j; /* one measurement at a time */
    const int nth = vlmn_pool_size(p);
    j.slice = bytes / (size_t)nth / 128 * 128;
    if (j.slice == 0) return 0.0;
    uint8_t *buf = vlmn_malloc_aligned(j.slice * (size_t)nth);
    if (!buf) return 0.0;
    memset(buf, 0x5a, j.slice * (size_t)nth); /* faults the pages in */
    j.buf = buf;
    j.avx2 = vlmn_isa_supported(VLMN_ISA_AVX2);
    double best = 0.0;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        vlmn_pool_run(p, bw_fn, &j);
        double t = now() - t0;
        if (r > 0 && t > 0 && (double)(j.slice * (size_t)nth) / t > best) best = (double)(j.slice * (size_t)nth) / t;
    }
    vlmn_free_aligned(buf);
    return best;
}
