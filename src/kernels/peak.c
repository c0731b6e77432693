/* Peak measurement driver (see peak.h): runs the per-ISA loop on every pool thread at
 * once and keeps the best of several runs, since the machine may be shared. */
#include "kernels/peak.h"
#include "kernels/kernels_int.h"

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
