/* `vlmn bench forward`: whole-model speed of the LLaVA engine on a LLaVA-shaped sample
 * (576 image + 104 text positions by default), with and without the real recorder as
 * capture hook, the vision tower timed separately, peak RSS, and the machine's bf16 /
 * int8 peaks measured in the same run (other processes share the cores). */
#include "cli.h"
#include "bench.h"
#include "core/alloc.h"
#include "kernels/peak.h"
#include "vlmn/gguf.h"
#include "vlmn/model.h"
#include "vlmn/record.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Sum of the text model's tensor bytes (what the mmap brings into RSS). */
static uint64_t file_tensor_bytes(const char *path)
{
    vlmn_gguf *g;
    if (vlmn_gguf_open(path, &g)) return 0;
    uint64_t b = 0;
    for (int64_t i = 0; i < vlmn_gguf_n_tensors(g); i++) b += vlmn_gguf_tensor_at(g, i)->nbytes;
    vlmn_gguf_close(g);
    return b;
}

typedef struct run_stats {
    double best, mean;        /* seconds per sample (whole forward) */
    double best_cpu;          /* process CPU seconds / threads, best rep */
    vlmn_llava_times bt;      /* part times of the best rep */
} run_stats;

static int bench_tiles = 1; /* image tiles per sample (InternVL), set by bench_forward */

/* One timed pass (rep r of reps), with the recorder as capture hook when rec. */
static vlmn_status timed(vlmn_llava *m, const int32_t *ids, int64_t n, const float *img,
                         vlmn_rec *rec, const uint8_t *labels, long r, long reps, int nth, run_stats *rs)
{
    vlmn_forward_opts fo = {.n_tiles = bench_tiles};
    if (rec) fo.capture = vlmn_rec_capture, fo.capture_user = rec;
    if (r == 0) {
        rs->best = rs->best_cpu = 1e30;
        rs->mean = 0;
    }
    vlmn_status st;
    if (rec && (st = vlmn_rec_begin_sample(rec, (uint32_t)r, labels, n, false))) return st;
    double t0 = bench_wall(), c0 = bench_cpu();
    if ((st = vlmn_llava_forward(m, ids, n, img, &fo))) return st;
    double t = bench_wall() - t0, c = (bench_cpu() - c0) / nth;
    if (c < rs->best_cpu) rs->best_cpu = c;
    if (rec && (st = vlmn_rec_end_sample(rec))) return st;
    rs->mean += t / (double)reps;
    if (t < rs->best) {
        rs->best = t;
        vlmn_llava_last_times(m, &rs->bt);
    }
    return VLMN_OK;
}

static void measure_peaks(vlmn_pool *pool, double *bf16, double *int8, double *f32)
{
    vlmn_isa isa = vlmn_isa_supported(VLMN_ISA_AVX512) ? VLMN_ISA_AVX512 : VLMN_ISA_AVX2;
    double b = vlmn_peak_measure(pool, VLMN_PEAK_BF16_DOT, isa, 0.05, 3);
    double i = vlmn_peak_measure(pool, VLMN_PEAK_INT8_DOT, isa, 0.05, 3);
    double f = vlmn_peak_measure(pool, VLMN_PEAK_F32_FMA, isa, 0.05, 3);
    if (b > *bf16) *bf16 = b;
    if (i > *int8) *int8 = i;
    if (f > *f32) *f32 = f;
}

static void print_parts(const char *what, const run_stats *rs)
{
    const vlmn_llava_times *t = &rs->bt;
    printf("  %-10s best %.3f s (mean %.3f; CPU time / threads %.3f): vision %.3f | qkv %.3f rope %.3f attention %.3f wo %.3f "
           "norm %.3f gate+up %.3f act %.3f down %.3f capture %.3f\n",
           what, rs->best, rs->mean, rs->best_cpu, t->vision, t->qkv, t->rope, t->attention, t->wo, t->norm, t->ffn_up,
           t->act, t->down, t->capture);
}

static void json_parts(const char *key, const run_stats *rs)
{
    const vlmn_llava_times *t = &rs->bt;
    printf(",\"%s\":{\"best_s\":%.4f,\"mean_s\":%.4f,\"best_cpu_s\":%.4f,\"vision_s\":%.4f,\"qkv_s\":%.4f,\"rope_s\":%.4f,"
           "\"attention_s\":%.4f,\"wo_s\":%.4f,\"norm_s\":%.4f,\"gate_up_s\":%.4f,\"act_s\":%.4f,"
           "\"down_s\":%.4f,\"capture_s\":%.4f}",
           key, rs->best, rs->mean, rs->best_cpu, t->vision, t->qkv, t->rope, t->attention, t->wo, t->norm, t->ffn_up, t->act,
           t->down, t->capture);
}

int bench_forward(int argc, char **argv)
{
    const char *cmd = "bench forward", *text = NULL, *mmproj = NULL, *v;
    long T = 680, NI = 576, threads = 0, reps = 2, top_n = 50, tiles = 1;
    int json = 0, ni_given = 0, cap_mode = 2 /* 0 no, 1 only capture, 2 both */, r;
    vlmn_precision prec = VLMN_PREC_FAST;
    for (int i = 1; i < argc; i++) {
        long *lp = NULL, lo = 1, hi = 1L << 20;
        if ((r = cli_opt(argc, argv, &i, "model", 'm', &v))) text = v;
        else if ((r = cli_opt(argc, argv, &i, "mmproj", 0, &v))) mmproj = v;
        else if ((r = cli_opt(argc, argv, &i, "tokens", 0, &v))) lp = &T;
        else if ((r = cli_opt(argc, argv, &i, "image-tokens", 0, &v))) lp = &NI, lo = 0, ni_given = 1;
        else if ((r = cli_opt(argc, argv, &i, "threads", 't', &v))) lp = &threads, lo = 0, hi = 256;
        else if ((r = cli_opt(argc, argv, &i, "tiles", 0, &v))) lp = &tiles, hi = 64;
        else if ((r = cli_opt(argc, argv, &i, "reps", 0, &v))) lp = &reps, hi = 1000;
        else if ((r = cli_opt(argc, argv, &i, "top-n", 0, &v))) lp = &top_n, hi = VLMN_REC_MAX_TOP_N;
        else if (cli_flag(argv, i, "no-capture", 0)) { cap_mode = 0; continue; }
        else if (cli_flag(argv, i, "capture", 0)) { cap_mode = 1; continue; }
        else if (cli_flag(argv, i, "exact", 0)) { prec = VLMN_PREC_EXACT; continue; }
        else if (cli_flag(argv, i, "fastest", 0)) { prec = VLMN_PREC_FASTEST; continue; }
        else if (cli_flag(argv, i, "json", 0)) { json = 1; continue; }
        else if (cli_unknown_option(&vlmn_cmd_bench, argv, i)) return 2;
        else return cli_errorf(cmd, 2, "unexpected argument '%s'", argv[i]);
        if (r < 0 || !v) return 2;
        if (lp && cli_parse_long(v, lo, hi, lp)) return cli_errorf(cmd, 2, "bad value '%s' for %s", v, argv[i - 1]);
    }
    if (!text) return cli_errorf(cmd, 2, "-m TEXT.gguf is required");
    bench_tiles = (int)tiles;

    vlmn_llava_params lp = {(int)threads, prec};
    vlmn_llava *m = NULL;
    vlmn_rec *rec = NULL;
    vlmn_pool *pool = NULL;
    int32_t *ids = NULL, *ids_text = NULL;
    uint8_t *labels = NULL;
    float *img = NULL;
    int rc = 1;
    double tl = bench_wall();
    vlmn_status st = vlmn_llava_load(text, mmproj, &lp, &m);
    if (st) return cli_fail(cmd, st);
    tl = bench_wall() - tl;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    if (!mmproj) NI = 0;
    if (mmproj && !ni_given) NI = (long)in->n_image_tokens * tiles;
    if (mmproj && NI != (long)in->n_image_tokens * tiles) {
        rc = cli_errorf(cmd, 2, "--image-tokens %ld: the vision tower makes %d per tile (%ld tiles)", NI,
                        in->n_image_tokens, tiles);
        goto done;
    }
    if (NI > T) {
        rc = cli_errorf(cmd, 2, "--tokens %ld is less than the %ld image positions", T, NI);
        goto done;
    }
    /* sample: BOS, a few prompt ids, the image block, then text ids (random, fixed seed) */
    ids = vlmn_malloc((size_t)T * sizeof *ids);
    ids_text = vlmn_malloc((size_t)T * sizeof *ids_text);
    labels = vlmn_malloc((size_t)T);
    if (!ids || !ids_text || !labels) { rc = cli_errorf(cmd, 1, "out of memory"); goto done; }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int64_t img0 = NI > 0 && T - NI >= 5 ? 5 : 0;
    for (long i = 0; i < T; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        ids_text[i] = i == 0 ? 1 : (int32_t)(s % (uint64_t)in->n_vocab);
        bool im = i >= img0 && i < img0 + NI;
        ids[i] = im ? -1 : ids_text[i];
        labels[i] = im ? VLMN_MOD_IMAGE : i < img0 ? VLMN_MOD_PROMPT : VLMN_MOD_TEXT;
    }
    if (NI > 0) {
        int64_t S = in->image_size, np = 3 * S * S * tiles;
        img = vlmn_malloc((size_t)np * sizeof *img);
        if (!img) { rc = cli_errorf(cmd, 1, "out of memory"); goto done; }
        for (int64_t i = 0; i < np; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; img[i] = (float)(s >> 40) / (1 << 23) - 1.0f; }
    }
    uint64_t rec_bytes = 0;
    if (cap_mode) {
        vlmn_rec_params rp = {in->n_layer, in->n_ff, (int)top_n, (int)threads};
        rec_bytes = vlmn_rec_state_bytes(in->n_layer, in->n_ff, (int)top_n);
        if ((st = vlmn_rec_create(&rp, &rec))) { rc = cli_fail(cmd, st); goto done; }
    }
    /* the peaks, on a pool of the same size, before the forward (same load conditions) */
    if ((st = vlmn_pool_create((int)threads, &pool))) { rc = cli_fail(cmd, st); goto done; }
    int nth = vlmn_pool_size(pool);

    /* warm-up (pages the weights in, sizes the scratch) */
    vlmn_forward_opts fo0 = {.n_tiles = (int)tiles};
    double tw = bench_wall();
    if ((st = vlmn_llava_forward(m, ids, T, img, &fo0))) { rc = cli_fail(cmd, st); goto done; }
    tw = bench_wall() - tw;

    /* peaks just before and after the timed reps (the best counts) */
    double pk_bf16 = 0, pk_int8 = 0, pk_f32 = 0;
    measure_peaks(pool, &pk_bf16, &pk_int8, &pk_f32);
    run_stats nocap = {0}, withcap = {0};
    /* alternating, so that a slow stretch of a shared machine hits both kinds of pass */
    for (long r = 0; r < reps; r++) {
        if (cap_mode != 1 && (st = timed(m, ids, T, img, NULL, labels, r, reps, nth, &nocap))) { rc = cli_fail(cmd, st); goto done; }
        if (cap_mode && (st = timed(m, ids, T, img, rec, labels, r, reps, nth, &withcap))) { rc = cli_fail(cmd, st); goto done; }
    }

    measure_peaks(pool, &pk_bf16, &pk_int8, &pk_f32);
    /* FLOPs of the text decoder (GEMMs + attention q.k and p.v over causal pairs) */
    const double E = in->n_embd, FF = in->n_ff, KV = (double)in->n_embd * in->n_head_kv / in->n_head;
    const double hd = E / in->n_head, Tn = (double)T;
    double flop_text = in->n_layer * (2.0 * Tn * (2 * E * E + 2 * E * KV + 3 * E * FF) +
                                      4.0 * in->n_head * hd * Tn * (Tn + 1) / 2);
    const run_stats *ref = cap_mode == 1 ? &withcap : &nocap;
    double text_nocap = cap_mode != 1 ? nocap.best - nocap.bt.vision : 0;
    double text_cap = cap_mode ? withcap.best - withcap.bt.vision : 0;
    double vis = ref->bt.vision;
    double overhead = cap_mode == 2 ? (text_cap - text_nocap) / text_nocap : 0;
    /* the recorder's own time in the best capture pass: steadier than the difference of
     * two whole passes, which moves by a few percent between identical passes on a VM */
    double inside = cap_mode ? withcap.bt.capture / text_cap : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss * 1024.0;
    uint64_t wbytes = file_tensor_bytes(text) + (mmproj ? file_tensor_bytes(mmproj) : 0);
    const char *pname = prec == VLMN_PREC_EXACT ? "exact" : prec == VLMN_PREC_FASTEST ? "fastest" : "fast";
    uint32_t wtype = 0;
    {
        vlmn_gguf *g;
        if (!vlmn_gguf_open(text, &g)) {
            const vlmn_gguf_tensor *t = vlmn_gguf_find_tensor(g, "blk.0.ffn_up.weight");
            if (t) wtype = t->type;
            vlmn_gguf_close(g);
        }
    }
    const char *tname = vlmn_type_name(wtype) ? vlmn_type_name(wtype) : "?";
    /* the bound of the text GEMMs' kernel (AVX-512; see vlmn_gemm's dispatch) */
    double pk = pk_f32;
    const char *pkname = "f32";
    if (prec == VLMN_PREC_EXACT || wtype == VLMN_TYPE_F32) {
    } else if (wtype == VLMN_TYPE_BF16) {
        pk = pk_bf16, pkname = "bf16";
    } else if (prec == VLMN_PREC_FASTEST && wtype != VLMN_TYPE_F16) {
        pk = pk_int8, pkname = "int8";
    } else {
        pk = 0.5 * pk_int8, pkname = "int16 (half the int8)";
    }
    if (json) {
        printf("{\"op\":\"forward\",\"model\":\"%s\",\"weights\":\"%s\",\"precision\":\"%s\",\"threads\":%d,"
               "\"tokens\":%ld,\"image_tokens\":%ld,\"reps\":%ld,\"load_s\":%.3f,\"warmup_s\":%.3f",
               text, tname, pname, nth, T, NI, reps, tl, tw);
        if (cap_mode != 1) {
            printf(",\"text_tokens_per_s\":%.3f,\"text_s\":%.4f", Tn / text_nocap, text_nocap);
            json_parts("no_capture", &nocap);
        }
        if (cap_mode) {
            printf(",\"text_tokens_per_s_capture\":%.3f,\"text_s_capture\":%.4f,\"sample_s_capture\":%.4f",
                   Tn / text_cap, text_cap, withcap.best);
            json_parts("capture", &withcap);
        }
        if (cap_mode == 2) printf(",\"capture_overhead\":%.4f", overhead);
        if (cap_mode) printf(",\"capture_inside\":%.4f", inside);
        printf(",\"vision_s\":%.4f,\"text_gflops\":%.2f,\"peak_bf16_gflops\":%.2f,\"peak_int8_gops\":%.2f,"
               "\"peak_f32_gflops\":%.2f,\"weight_bytes\":%llu,\"recorder_bytes\":%llu,\"max_rss_bytes\":%.0f}\n",
               vis, flop_text / (cap_mode == 1 ? text_cap : text_nocap) * 1e-9, pk_bf16 * 1e-9, pk_int8 * 1e-9,
               pk_f32 * 1e-9, (unsigned long long)wbytes, (unsigned long long)rec_bytes, rss);
    } else {
        printf("forward %s (%s weights, %s precision), %d threads, %ld tokens (%ld image), best of %ld reps; "
               "load %.1f s, warm-up %.1f s\n", text, tname, pname, nth, T, NI, reps, tl, tw);
        printf("peaks this run (best of before/after the reps): bf16 %.1f GFLOP/s, int8 %.1f GOP/s, f32 %.1f GFLOP/s\n", pk_bf16 * 1e-9,
               pk_int8 * 1e-9, pk_f32 * 1e-9);
        if (cap_mode != 1) print_parts("no-capture", &nocap);
        if (cap_mode) print_parts("capture", &withcap);
        double tt = cap_mode == 1 ? text_cap : text_nocap;
        printf("text decoder: %.2f tokens/s without capture, %.2f tokens/s with capture "
               "(%.3f / %.3f s per sample); %.1f GFLOP/s = %.1f%% of the %s peak\n",
               cap_mode != 1 ? Tn / text_nocap : NAN, cap_mode ? Tn / text_cap : NAN, text_nocap, text_cap,
               flop_text / tt * 1e-9, 100.0 * flop_text / tt / pk, pkname);
        if (cap_mode == 2) printf("capture overhead: %.2f%% of the text forward (passes alternate)\n", 100.0 * overhead);
        if (cap_mode) printf("time inside the capture (the recorder): %.3f s = %.2f%% of the text forward\n",
                             withcap.bt.capture, 100.0 * inside);
        if (cap_mode != 1) printf("by CPU time (removes time other processes held the cores): %.2f tokens/s without capture", Tn / (nocap.best_cpu - nocap.bt.vision));
        if (cap_mode) printf("%s%.2f tokens/s with capture", cap_mode == 2 ? ", " : "by CPU time: ", Tn / (withcap.best_cpu - withcap.bt.vision));
        printf("\n");
        if (NI > 0) printf("vision tower + projector: %.3f s per sample\n", vis);
        if (cap_mode) printf("whole sample with capture: %.3f s\n", withcap.best);
        printf("peak RSS %.2f GiB; weights %.2f GiB; recorder state %.2f GiB; RSS - weights - recorder %.2f GiB\n",
               rss / 1073741824.0, (double)wbytes / 1073741824.0, (double)rec_bytes / 1073741824.0,
               (rss - (double)wbytes - (double)rec_bytes) / 1073741824.0);
    }
    rc = 0;
done:
    vlmn_free(ids);
    vlmn_free(ids_text);
    vlmn_free(labels);
    vlmn_free(img);
    vlmn_rec_free(rec);
    vlmn_pool_free(pool);
    vlmn_llava_free(m);
    return rc;
}
