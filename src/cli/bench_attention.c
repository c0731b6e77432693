/* `vlmn bench attention`: time vlmn_attention at LLaVA shapes (T tokens, heads x
 * head_dim), causal or full, best of several reps, with the f32 FMA peak measured in
 * the same run. FLOPs counted: 4 * heads * head_dim * (number of q.k pairs). */
#include "cli.h"
#include "bench.h"
#include "core/alloc.h"
#include "kernels/peak.h"
#include "vlmn/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_attention(int argc, char **argv)
{
    long T = 680, H = 32, Hkv = 32, D = 128, threads = 0, reps = 5;
    int json = 0, causal = 1, r;
    const char *v, *isaname = NULL;
    for (int i = 1; i < argc; i++) {
        long *lp = NULL, lo = 1, hi = 1L << 16;
        if ((r = cli_opt(argc, argv, &i, "tokens", 0, &v))) lp = &T;
        else if ((r = cli_opt(argc, argv, &i, "heads", 0, &v))) lp = &H;
        else if ((r = cli_opt(argc, argv, &i, "kv-heads", 0, &v))) lp = &Hkv;
        else if ((r = cli_opt(argc, argv, &i, "head-dim", 0, &v))) lp = &D, hi = 4096;
        else if ((r = cli_opt(argc, argv, &i, "threads", 't', &v))) lp = &threads, lo = 0, hi = 256;
        else if ((r = cli_opt(argc, argv, &i, "reps", 0, &v))) lp = &reps, hi = 100000;
        else if ((r = cli_opt(argc, argv, &i, "isa", 0, &v))) isaname = v;
        else if (cli_flag(argv, i, "causal", 0)) { causal = 1; continue; }
        else if (cli_flag(argv, i, "full", 0)) { causal = 0; continue; }
        else if (cli_flag(argv, i, "json", 0)) { json = 1; continue; }
        else if (cli_unknown_option(&vlmn_cmd_bench, argv, i)) return 2;
        else return cli_errorf("bench attention", 2, "unexpected argument '%s'", argv[i]);
        if (r < 0 || !v) return 2;
        if (lp && cli_parse_long(v, lo, hi, lp))
            return cli_errorf("bench attention", 2, "bad value '%s' for %s", v, argv[i - 1]);
    }
    if (H % Hkv) return cli_errorf("bench attention", 2, "--heads must be a multiple of --kv-heads");
    if (isaname) {
        vlmn_isa want;
        if (!strcmp(isaname, "ref")) want = VLMN_ISA_REF;
        else if (!strcmp(isaname, "avx2")) want = VLMN_ISA_AVX2;
        else if (!strcmp(isaname, "avx512")) want = VLMN_ISA_AVX512;
        else return cli_errorf("bench attention", 2, "unknown ISA '%s' (ref|avx2|avx512)", isaname);
        vlmn_status st = vlmn_isa_force(want);
        if (st) return cli_fail("bench attention", st);
    }
    vlmn_pool *pool = NULL;
    vlmn_status st = vlmn_pool_create((int)threads, &pool);
    if (st) return cli_fail("bench attention", st);
    size_t nq = (size_t)(T * H * D), nk = (size_t)(T * Hkv * D);
    float *q = vlmn_malloc_aligned(nq * 4), *k = vlmn_malloc_aligned(nk * 4);
    float *vv = vlmn_malloc_aligned(nk * 4), *o = vlmn_malloc_aligned(nq * 4);
    int rc = 1;
    if (!q || !k || !vv || !o) { rc = cli_errorf("bench attention", 1, "out of memory"); goto done; }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < nq; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; q[i] = (float)(s >> 40) / (1 << 24) - 0.5f; }
    for (size_t i = 0; i < nk; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; k[i] = (float)(s >> 40) / (1 << 24) - 0.5f; vv[i] = k[i] * 0.5f; }
    vlmn_isa isa = vlmn_isa_active();
    vlmn_isa pisa = vlmn_isa_supported(VLMN_ISA_AVX512) ? VLMN_ISA_AVX512 : VLMN_ISA_AVX2;
    double peak = vlmn_peak_measure(pool, VLMN_PEAK_F32_FMA, pisa, 0.05, 3);
    float scale = 1.0f / sqrtf((float)D);
    vlmn_attention(pool, q, H * D, k, Hkv * D, vv, Hkv * D, o, H * D, T, (int)H, (int)Hkv, (int)D, scale, causal);
    double best = 1e30, best_cpu = 1e30;
    for (long i = 0; i < reps; i++) {
        double t0 = bench_wall(), c0 = bench_cpu();
        vlmn_attention(pool, q, H * D, k, Hkv * D, vv, Hkv * D, o, H * D, T, (int)H, (int)Hkv, (int)D, scale, causal);
        double t = bench_wall() - t0, c = (bench_cpu() - c0) / vlmn_pool_size(pool);
        if (t < best) best = t;
        if (c < best_cpu) best_cpu = c;
    }
    double pairs = causal ? (double)T * (double)(T + 1) / 2.0 : (double)T * (double)T;
    double gflops = 4.0 * (double)H * (double)D * pairs / best * 1e-9;
    double gflops_cpu = 4.0 * (double)H * (double)D * pairs / best_cpu * 1e-9;
    if (json)
        printf("{\"op\":\"attention\",\"isa\":\"%s\",\"tokens\":%ld,\"heads\":%ld,\"kv_heads\":%ld,"
               "\"head_dim\":%ld,\"causal\":%s,\"threads\":%d,\"seconds\":%.6f,\"gflops\":%.2f,"
               "\"gflops_cpu_time\":%.2f,\"peak_gflops\":%.2f}\n", vlmn_isa_name(isa), T, H, Hkv, D,
               causal ? "true" : "false", vlmn_pool_size(pool), best, gflops, gflops_cpu, peak * 1e-9);
    else
        printf("attention isa=%s T=%ld heads=%ld/%ld head_dim=%ld %s threads=%d: best %.3f ms, "
               "%.1f GFLOP/s (f32 FMA peak %.1f; by CPU time %.1f GFLOP/s)\n", vlmn_isa_name(isa),
               T, H, Hkv, D, causal ? "causal" : "full", vlmn_pool_size(pool), best * 1e3, gflops,
               peak * 1e-9, gflops_cpu);
    rc = 0;
done:
    vlmn_free_aligned(q);
    vlmn_free_aligned(k);
    vlmn_free_aligned(vv);
    vlmn_free_aligned(o);
    vlmn_pool_free(pool);
    return rc;
}
