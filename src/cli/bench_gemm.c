/* `vlmn bench gemm`: time one GEMM shape with random weights of a type, next to the
 * machine's peak measured in the same run (kernels/peak.h), best of several reps
 * because the machine may be shared. */
#include "cli.h"
#include "bench.h"
#include "core/alloc.h"
#include "kernels/peak.h"
#include "vlmn/kernels.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float frand(void) { return 2.0f * bench_unit(&rng) - 1.0f; }

static const struct { const char *name; uint32_t type; } types[] = {
    {"bf16", VLMN_TYPE_BF16}, {"f16", VLMN_TYPE_F16}, {"q8_0", VLMN_TYPE_Q8_0},
    {"q4_k", VLMN_TYPE_Q4_K}, {"f32", VLMN_TYPE_F32},
};

/* Random weights in the GGUF layout of `type` (Q4_K: random bytes with sane d/dmin). */
static void *make_weights(uint32_t type, int64_t N, int64_t K, uint64_t rb)
{
    uint8_t *w = vlmn_malloc_aligned(rb * (uint64_t)N);
    float *tmp = vlmn_malloc(sizeof(float) * (size_t)K);
    if (!w || !tmp) goto fail;
    for (int64_t n = 0; n < N; n++) {
        uint8_t *row = w + rb * (uint64_t)n;
        for (int64_t k = 0; k < K; k++) tmp[k] = frand();
        switch (type) {
        case VLMN_TYPE_Q4_K:
            for (uint64_t i = 0; i < rb; i++) row[i] = (uint8_t)(rng >> (8 * (i & 7))), frand();
            for (int64_t b = 0; b < K / 256; b++) {
                uint16_t d = vlmn_f32_to_f16(0.002f), dm = vlmn_f32_to_f16(0.004f);
                memcpy(row + b * 144, &d, 2);
                memcpy(row + b * 144 + 2, &dm, 2);
            }
            break;
        default: vlmn_from_f32(type, tmp, row, K); break;
        }
    }
    vlmn_free(tmp);
    return w;
fail:
    vlmn_free(tmp);
    vlmn_free_aligned(w);
    return NULL;
}

int bench_peak(int argc, char **argv)
{
    long threads = 0;
    int json = 0, r;
    const char *v;
    for (int i = 1; i < argc; i++) {
        if ((r = cli_opt(argc, argv, &i, "threads", 't', &v))) {
            if (r < 0 || !v || cli_parse_long(v, 0, 256, &threads))
                return cli_errorf("bench peak", 2, "bad thread count");
        } else if (cli_flag(argv, i, "json", 0)) json = 1;
        else if (cli_unknown_option(&vlmn_cmd_bench, argv, i)) return 2;
        else return cli_errorf("bench peak", 2, "unexpected argument '%s'", argv[i]);
    }
    vlmn_pool *pool = NULL;
    vlmn_status st = vlmn_pool_create((int)threads, &pool);
    if (st) return cli_fail("bench peak", st);
    vlmn_isa isa = vlmn_isa_supported(VLMN_ISA_AVX512) ? VLMN_ISA_AVX512 : VLMN_ISA_AVX2;
    double f = vlmn_peak_measure(pool, VLMN_PEAK_F32_FMA, isa, 0.1, 5) * 1e-9;
    double b = vlmn_peak_measure(pool, VLMN_PEAK_BF16_DOT, isa, 0.1, 5) * 1e-9;
    double q = vlmn_peak_measure(pool, VLMN_PEAK_INT8_DOT, isa, 0.1, 5) * 1e-9;
    if (json)
        printf("{\"op\":\"peak\",\"isa\":\"%s\",\"threads\":%d,\"f32_fma_gflops\":%.2f,"
               "\"bf16_dot_gflops\":%.2f,\"int8_dot_gops\":%.2f}\n",
               vlmn_isa_name(isa), vlmn_pool_size(pool), f, b, q);
    else
        printf("peak isa=%s threads=%d: f32 FMA %.1f GFLOP/s, bf16 vdpbf16ps %.1f GFLOP/s, "
               "int8 vpdpbusd %.1f GOP/s\n", vlmn_isa_name(isa), vlmn_pool_size(pool), f, b, q);
    vlmn_pool_free(pool);
    return 0;
}

int bench_gemm(int argc, char **argv)
{
    const char *tname = "bf16", *isaname = NULL, *precname = "fast", *v;
    long M = 680, N = 11008, K = 4096, threads = 0, reps = 5;
    int json = 0, r;
    for (int i = 1; i < argc; i++) {
        long *lp = NULL;
        long lo = 1, hi = 1L << 20;
        if ((r = cli_opt(argc, argv, &i, "type", 0, &v))) tname = v;
        else if ((r = cli_opt(argc, argv, &i, "isa", 0, &v))) isaname = v;
        else if ((r = cli_opt(argc, argv, &i, "prec", 0, &v))) precname = v;
        else if ((r = cli_opt(argc, argv, &i, "m", 'm', &v))) lp = &M;
        else if ((r = cli_opt(argc, argv, &i, "n", 'n', &v))) lp = &N;
        else if ((r = cli_opt(argc, argv, &i, "k", 'k', &v))) lp = &K;
        else if ((r = cli_opt(argc, argv, &i, "threads", 't', &v))) lp = &threads, lo = 0, hi = 256;
        else if ((r = cli_opt(argc, argv, &i, "reps", 0, &v))) lp = &reps, hi = 100000;
        else if (cli_flag(argv, i, "json", 0)) { json = 1; continue; }
        else if (cli_unknown_option(&vlmn_cmd_bench, argv, i)) return 2;
        else return cli_errorf("bench gemm", 2, "unexpected argument '%s'", argv[i]);
        if (r < 0 || !v) return 2;
        if (lp && cli_parse_long(v, lo, hi, lp))
            return cli_errorf("bench gemm", 2, "bad value '%s' for %s", v, argv[i - 1]);
    }
    uint32_t type = 0;
    int found = 0;
    for (size_t i = 0; i < VLMN_ARRAY_LEN(types); i++)
        if (!strcmp(tname, types[i].name)) type = types[i].type, found = 1;
    if (!found) return cli_errorf("bench gemm", 2, "unknown type '%s' (bf16|f16|q8_0|q4_k|f32)", tname);
    vlmn_precision prec;
    if (!strcmp(precname, "fast")) prec = VLMN_PREC_FAST;
    else if (!strcmp(precname, "exact")) prec = VLMN_PREC_EXACT;
    else if (!strcmp(precname, "fastest")) prec = VLMN_PREC_FASTEST;
    else return cli_errorf("bench gemm", 2, "unknown precision '%s' (fast|fastest|exact)", precname);
    if (isaname) {
        vlmn_isa want;
        if (!strcmp(isaname, "ref")) want = VLMN_ISA_REF;
        else if (!strcmp(isaname, "avx2")) want = VLMN_ISA_AVX2;
        else if (!strcmp(isaname, "avx512")) want = VLMN_ISA_AVX512;
        else return cli_errorf("bench gemm", 2, "unknown ISA '%s' (ref|avx2|avx512)", isaname);
        vlmn_status st = vlmn_isa_force(want);
        if (st) return cli_fail("bench gemm", st);
    }
    vlmn_isa isa = vlmn_isa_active();
    uint64_t rb;
    vlmn_status st = vlmn_type_row_bytes(type, (uint64_t)K, &rb);
    if (st) return cli_fail("bench gemm", st);

    int rc = 1;
    vlmn_pool *pool = NULL;
    float *A = NULL, *C = NULL;
    void *w = NULL;
    vlmn_matrix W;
    memset(&W, 0, sizeof W);
    if ((st = vlmn_pool_create((int)threads, &pool))) { rc = cli_fail("bench gemm", st); goto done; }
    w = make_weights(type, N, K, rb);
    A = vlmn_malloc_aligned(sizeof(float) * (size_t)(M * K));
    C = vlmn_malloc_aligned(sizeof(float) * (size_t)(M * N));
    if (!w || !A || !C) { rc = cli_errorf("bench gemm", 1, "out of memory"); goto done; }
    for (long i = 0; i < M * K; i++) A[i] = frand();
    if ((st = vlmn_matrix_init(&W, type, N, K, w))) { rc = cli_fail("bench gemm", st); goto done; }

    /* Which peak bounds the kernel that will run (see vlmn_gemm's dispatch). */
    vlmn_peak_kind pk = VLMN_PEAK_F32_FMA;
    const char *pkname = "f32 FMA";
    if (isa == VLMN_ISA_AVX512 && prec != VLMN_PREC_EXACT && type == VLMN_TYPE_BF16)
        pk = VLMN_PEAK_BF16_DOT, pkname = "bf16 vdpbf16ps";
    /* FASTEST Q8_0/Q4_K: int8 dot products; FAST Q8_0/Q4_K and F16 (K a multiple of
     * 32): int16 ones (vpdpwssd, half the MACs of vpdpbusd at the same rate) */
    double pscale = 1.0;
    if (isa == VLMN_ISA_AVX512 && prec == VLMN_PREC_FASTEST && (type == VLMN_TYPE_Q8_0 || type == VLMN_TYPE_Q4_K))
        pk = VLMN_PEAK_INT8_DOT, pkname = "int8 vpdpbusd";
    else if (isa == VLMN_ISA_AVX512 && prec != VLMN_PREC_EXACT &&
             (type == VLMN_TYPE_Q8_0 || type == VLMN_TYPE_Q4_K || (type == VLMN_TYPE_F16 && K % 32 == 0)))
        pk = VLMN_PEAK_INT8_DOT, pkname = "int16 vpdpwssd (half the int8)", pscale = 0.5;
    vlmn_isa peak_isa = isa == VLMN_ISA_REF ? (vlmn_isa_supported(VLMN_ISA_AVX512) ? VLMN_ISA_AVX512 : VLMN_ISA_AVX2) : isa;
    double peak = pscale * vlmn_peak_measure(pool, pk, peak_isa, 0.05, 3);

    vlmn_gemm(pool, prec, &W, A, M, K, C, N, false); /* warm-up: scratch, page faults */
    /* Wall time is what counts; CPU time per thread is printed as well because it
     * hides the time other processes took the cores from us. */
    double best = 1e30, total = 0, best_cpu = 1e30;
    for (long rep = 0; rep < reps; rep++) {
        double t0 = bench_wall(), c0 = bench_cpu();
        vlmn_gemm(pool, prec, &W, A, M, K, C, N, false);
        double t = bench_wall() - t0, c = (bench_cpu() - c0) / vlmn_pool_size(pool);
        if (c < best_cpu) best_cpu = c;
        total += t;
        if (t < best) best = t;
    }
    double peak2 = pscale * vlmn_peak_measure(pool, pk, peak_isa, 0.05, 3);
    if (peak2 > peak) peak = peak2;
    double gflops = 2.0 * (double)M * (double)N * (double)K / best * 1e-9;
    double gflops_cpu = 2.0 * (double)M * (double)N * (double)K / best_cpu * 1e-9;
    double pg = peak * 1e-9;
    if (json)
        printf("{\"op\":\"gemm\",\"type\":\"%s\",\"prec\":\"%s\",\"isa\":\"%s\",\"m\":%ld,\"n\":%ld,"
               "\"k\":%ld,\"threads\":%d,\"reps\":%ld,\"seconds\":%.6f,\"mean_seconds\":%.6f,"
               "\"gflops\":%.2f,\"gflops_cpu_time\":%.2f,\"peak_kind\":\"%s\",\"peak_gflops\":%.2f,\"fraction_of_peak\":%.4f}\n",
               tname, precname, vlmn_isa_name(isa), M, N, K, vlmn_pool_size(pool), reps, best,
               total / (double)reps, gflops, gflops_cpu, pkname, pg, pg > 0 ? gflops / pg : 0.0);
    else
        printf("gemm %s %s isa=%s M=%ld N=%ld K=%ld threads=%d: best %.3f ms of %ld, "
               "%.1f GFLOP/s = %.1f%% of the %s peak %.1f GFLOP/s (by CPU time: %.1f%%)\n",
               tname, precname, vlmn_isa_name(isa), M, N, K, vlmn_pool_size(pool), best * 1e3, reps,
               gflops, pg > 0 ? 100.0 * gflops / pg : 0.0, pkname, pg,
               pg > 0 ? 100.0 * gflops_cpu / pg : 0.0);
    rc = 0;
done:
    vlmn_matrix_release(&W);
    vlmn_free_aligned(w);
    vlmn_free_aligned(A);
    vlmn_free_aligned(C);
    vlmn_pool_free(pool);
    return rc;
}
