/* `vlmn bench decode`: decode tokens/s of the LLaVA text model at batch 1 and 8 (or any
 * list), for BF16 and Q8_0 weights at LLaVA-1.5-7B widths with K layers (a model written
 * here with make-model's llava-7b preset, or -m TEXT.gguf), per layer and extrapolated to
 * the full depth, with the machine's memory read bandwidth measured in the same run and
 * the weight traffic of a step as a fraction of it. Decoding is what vlmn_generate does:
 * one vlmn_llava_step per token with one row per sequence, each sequence its own KV
 * cache, logits of every row. */
#include "cli.h"
#include "bench.h"
#include "core/alloc.h"
#include "kernels/peak.h"
#include "vlmn/gguf.h"
#include "vlmn/makemodel.h"
#include "vlmn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BATCHES 8
#define MAX_MODELS 4
#define MAX_BATCH 64

static const char *cmd = "bench decode";

typedef struct model_bytes {
    uint64_t step;   /* bytes of weights one step reads: all but token_embd */
    uint64_t layer;  /* blk.* tensors / n_layer */
    uint64_t other;  /* output + output_norm */
} model_bytes;

static int tensor_bytes(const char *path, int n_layer, model_bytes *b)
{
    vlmn_gguf *g;
    memset(b, 0, sizeof *b);
    if (vlmn_gguf_open(path, &g)) return -1;
    uint64_t blk = 0;
    for (int64_t i = 0; i < vlmn_gguf_n_tensors(g); i++) {
        const vlmn_gguf_tensor *t = vlmn_gguf_tensor_at(g, i);
        const vlmn_gguf_str *s = &t->name;
        if (s->len == 17 && !memcmp(s->ptr, "token_embd.weight", 17)) continue;
        b->step += t->nbytes;
        if (s->len > 4 && !memcmp(s->ptr, "blk.", 4)) blk += t->nbytes;
        else b->other += t->nbytes;
    }
    vlmn_gguf_close(g);
    b->layer = n_layer > 0 ? blk / (uint64_t)n_layer : 0;
    return 0;
}

typedef struct result {
    double best_s;      /* wall seconds of the timed decode steps, best rep */
    double logits_s;    /* of which the final norm + vocabulary projection */
    double cpu_s;       /* process CPU seconds / threads in the best rep */
    int have;
} result;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* B sequences, each prefilled with P ids (BOS + random), then `tokens` timed steps of B
 * rows. Returns a status; *r gets this rep when it beats the best so far. */
static vlmn_status decode_run(vlmn_llava *m, int B, long P, long tokens, int nth, float *logits, result *r)
{
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    vlmn_kv *kv[MAX_BATCH] = {0};
    int32_t tok[MAX_BATCH], *prompt = vlmn_malloc((size_t)P * sizeof *prompt);
    const int32_t *ids[MAX_BATCH];
    int64_t n[MAX_BATCH];
    vlmn_status st = VLMN_OK;
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)B;
    if (!prompt) return vlmn_error(VLMN_E_NOMEM, "bench decode: out of memory");
    vlmn_forward_opts o = {0};
    o.logits = logits;
    o.n_logits = 1;
    for (int b = 0; b < B && !st; b++) {
        if ((st = vlmn_kv_create(m, P + tokens, &kv[b]))) break;
        for (long i = 0; i < P; i++) prompt[i] = i == 0 ? 1 : (int32_t)(rnd(&s) % (uint64_t)in->n_vocab);
        const int32_t *pp = prompt;
        int64_t pn = P;
        st = vlmn_llava_step(m, 1, &kv[b], &pp, &pn, NULL, &o);
    }
    double wall = 0, lg = 0, c0 = bench_cpu();
    for (long t = 0; t < tokens && !st; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = (int32_t)(rnd(&s) % (uint64_t)in->n_vocab);
            ids[b] = &tok[b];
            n[b] = 1;
        }
        double t0 = bench_wall();
        st = vlmn_llava_step(m, B, kv, ids, n, NULL, &o);
        wall += bench_wall() - t0;
        vlmn_llava_times tm;
        vlmn_llava_last_times(m, &tm);
        lg += tm.logits;
    }
    double cpu = (bench_cpu() - c0) / nth;
    for (int b = 0; b < B; b++) vlmn_kv_free(kv[b]);
    vlmn_free(prompt);
    if (!st && (!r->have || wall < r->best_s)) {
        r->best_s = wall;
        r->logits_s = lg;
        r->cpu_s = cpu;
        r->have = 1;
    }
    return st;
}

static int parse_list(const char *s, long *out, int max, long lo, long hi)
{
    int k = 0;
    char buf[256];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (k == max || cli_parse_long(p, lo, hi, &out[k])) return -1;
        k++;
    }
    return k ? k : -1;
}

static int parse_types(const char *s, uint32_t *out, int max)
{
    int k = 0;
    char buf[256];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (k == max) return -1;
        if (!strcmp(p, "bf16")) out[k++] = VLMN_TYPE_BF16;
        else if (!strcmp(p, "q8_0")) out[k++] = VLMN_TYPE_Q8_0;
        else if (!strcmp(p, "f16")) out[k++] = VLMN_TYPE_F16;
        else if (!strcmp(p, "f32")) out[k++] = VLMN_TYPE_F32;
        else return -1;
    }
    return k ? k : -1;
}

static uint32_t weight_type(const char *path)
{
    vlmn_gguf *g;
    uint32_t t = 0;
    if (vlmn_gguf_open(path, &g)) return 0;
    const vlmn_gguf_tensor *w = vlmn_gguf_find_tensor(g, "blk.0.ffn_up.weight");
    if (w) t = w->type;
    vlmn_gguf_close(g);
    return t;
}

int bench_decode(int argc, char **argv)
{
    const char *text = NULL, *dir = NULL, *preset = "llava-7b", *v;
    long layers = 2, tokens = 128, P = 1, threads = 0, reps = 1, full = 32, bw_mib = 1024;
    long batches[MAX_BATCHES] = {1, 8};
    int n_batches = 2, n_types = 2, keep = 0, json = 0, r;
    uint32_t types[MAX_MODELS] = {VLMN_TYPE_BF16, VLMN_TYPE_Q8_0};
    vlmn_precision prec = VLMN_PREC_FAST;
    for (int i = 1; i < argc; i++) {
        long *lp = NULL, lo = 1, hi = 1L << 20;
        if ((r = cli_opt(argc, argv, &i, "model", 'm', &v))) text = v;
        else if ((r = cli_opt(argc, argv, &i, "dir", 0, &v))) dir = v;
        else if ((r = cli_opt(argc, argv, &i, "preset", 0, &v))) preset = v;
        else if ((r = cli_opt(argc, argv, &i, "layers", 0, &v))) lp = &layers, hi = 1024;
        else if ((r = cli_opt(argc, argv, &i, "tokens", 0, &v))) lp = &tokens, hi = 1L << 16;
        else if ((r = cli_opt(argc, argv, &i, "prompt", 0, &v))) lp = &P, hi = 1L << 16;
        else if ((r = cli_opt(argc, argv, &i, "threads", 't', &v))) lp = &threads, lo = 0, hi = 256;
        else if ((r = cli_opt(argc, argv, &i, "reps", 0, &v))) lp = &reps, hi = 100;
        else if ((r = cli_opt(argc, argv, &i, "full-layers", 0, &v))) lp = &full, hi = 1024;
        else if ((r = cli_opt(argc, argv, &i, "bw-mib", 0, &v))) lp = &bw_mib, hi = 1L << 16;
        else if ((r = cli_opt(argc, argv, &i, "batch", 0, &v))) {
            if (r < 0) return 2;
            if ((n_batches = parse_list(v, batches, MAX_BATCHES, 1, MAX_BATCH)) < 0)
                return cli_errorf(cmd, 2, "bad --batch '%s' (a list of 1..%d, at most %d)", v, MAX_BATCH, MAX_BATCHES);
            continue;
        } else if ((r = cli_opt(argc, argv, &i, "type", 0, &v))) {
            if (r < 0) return 2;
            if ((n_types = parse_types(v, types, MAX_MODELS)) < 0)
                return cli_errorf(cmd, 2, "bad --type '%s' (a list of bf16, q8_0, f16, f32)", v);
            continue;
        } else if (cli_flag(argv, i, "keep", 0)) { keep = 1; continue; }
        else if (cli_flag(argv, i, "exact", 0)) { prec = VLMN_PREC_EXACT; continue; }
        else if (cli_flag(argv, i, "fastest", 0)) { prec = VLMN_PREC_FASTEST; continue; }
        else if (cli_flag(argv, i, "json", 0)) { json = 1; continue; }
        else if (cli_unknown_option(&vlmn_cmd_bench, argv, i)) return 2;
        else return cli_errorf(cmd, 2, "unexpected argument '%s'", argv[i]);
        if (r < 0 || !v) return 2;
        if (lp && cli_parse_long(v, lo, hi, lp)) return cli_errorf(cmd, 2, "bad value '%s' for %s", v, argv[i - 1]);
    }

    /* the models: -m, or one per --type written here */
    char paths[MAX_MODELS][4096], mmprojs[MAX_MODELS][4096];
    int n_models = 0, rc = 1;
    char tmpdir[] = "/tmp/vlmn-bench-decode.XXXXXX";
    vlmn_status st;
    double t_write = 0;
    if (text) {
        snprintf(paths[0], sizeof paths[0], "%s", text);
        mmprojs[0][0] = 0;
        n_models = 1;
    } else {
        if (dir && strlen(dir) > 3900) return cli_errorf(cmd, 2, "--dir: path too long");
        if (!dir) {
            if (!mkdtemp(tmpdir)) return cli_errorf(cmd, 1, "cannot create a folder in /tmp");
            dir = tmpdir;
        } else if (mkdir(dir, 0755) != 0 && access(dir, W_OK) != 0) {
            return cli_errorf(cmd, 1, "%s: cannot create or write", dir);
        }
        double t0 = bench_wall();
        for (int k = 0; k < n_types; k++) {
            vlmn_mm_config cfg;
            if ((st = vlmn_mm_preset(preset, types[k], &cfg))) { rc = cli_fail(cmd, st); goto cleanup; }
            cfg.n_layer = (int)layers;
            cfg.v_layer = 1; /* the vision tower is not used: keep its file small */
            char prefix[4096];
            snprintf(prefix, sizeof prefix, "%s/decode-%s", dir, vlmn_type_name(types[k]));
            snprintf(paths[k], sizeof paths[k], "%.4000s-text.gguf", prefix);
            snprintf(mmprojs[k], sizeof mmprojs[k], "%.4000s-mmproj.gguf", prefix);
            n_models = k + 1;
            if ((st = vlmn_mm_validate(&cfg)) || (st = vlmn_mm_write_random(&cfg, prefix, NULL, NULL))) {
                rc = cli_fail(cmd, st);
                goto cleanup;
            }
        }
        t_write = bench_wall() - t0;
    }

    vlmn_pool *pool = NULL;
    if ((st = vlmn_pool_create((int)threads, &pool))) { rc = cli_fail(cmd, st); goto cleanup; }
    const int nth = vlmn_pool_size(pool);
    const size_t bw_bytes = (size_t)bw_mib << 20;
    double bw = vlmn_mem_read_bandwidth(pool, bw_bytes, 3);
    long bmax = 1;
    for (int b = 0; b < n_batches; b++) bmax = batches[b] > bmax ? batches[b] : bmax;

    result res[MAX_MODELS][MAX_BATCHES];
    memset(res, 0, sizeof res);
    int n_layer[MAX_MODELS] = {0}, n_vocab[MAX_MODELS] = {0};
    model_bytes mb[MAX_MODELS];
    if (!json)
        printf("decode: %d threads, %ld timed tokens per sequence after a %ld-token prompt, best of %ld reps%s%s\n", nth,
               tokens, P, reps, text ? "" : "; models in ", text ? "" : dir);
    for (int k = 0; k < n_models; k++) {
        vlmn_llava_params lp = {(int)threads, prec};
        vlmn_llava *m = NULL;
        if ((st = vlmn_llava_load(paths[k], NULL, &lp, &m))) { rc = cli_fail(cmd, st); goto done; }
        const vlmn_llava_info *in = vlmn_llava_get_info(m);
        n_layer[k] = in->n_layer;
        n_vocab[k] = in->n_vocab;
        tensor_bytes(paths[k], in->n_layer, &mb[k]);
        float *logits = vlmn_malloc((size_t)bmax * (size_t)in->n_vocab * sizeof(float));
        if (!logits) {
            vlmn_llava_free(m);
            rc = cli_errorf(cmd, 1, "out of memory");
            goto done;
        }
        /* warm-up: pages the weights in and sizes the scratch for the largest batch */
        result warm = {0};
        st = decode_run(m, (int)bmax, P, 2, nth, logits, &warm);
        /* reps alternate over the batch sizes, so a slow stretch of a shared machine hits all */
        for (long rep = 0; rep < reps && !st; rep++)
            for (int b = 0; b < n_batches && !st; b++) st = decode_run(m, (int)batches[b], P, tokens, nth, logits, &res[k][b]);
        vlmn_free(logits);
        vlmn_llava_free(m);
        if (st) { rc = cli_fail(cmd, st); goto done; }
        if (k + 1 < n_models) { /* between models too: the best of all counts */
            double b = vlmn_mem_read_bandwidth(pool, bw_bytes, 3);
            if (b > bw) bw = b;
        }
    }
    double bw2 = vlmn_mem_read_bandwidth(pool, bw_bytes, 3);
    if (bw2 > bw) bw = bw2;

    if (!json) {
        printf("memory read bandwidth (best of before/between/after the models, %ld MiB buffer, %d threads): %.2f GB/s\n", bw_mib, nth, bw * 1e-9);
        printf("%-6s %6s %5s %10s %9s %9s %9s %10s %9s %10s %9s %12s\n", "type", "layers", "batch", "tokens/s", "step ms",
               "layer ms", "logit ms", "weight GB/s", "of bw", "cpu tok/s", "x batch1", "tok/s @" );
    }
    for (int k = 0; k < n_models; k++) {
        const char *tn = vlmn_type_name(weight_type(paths[k]));
        if (!tn) tn = "?";
        double base = 0;
        for (int b = 0; b < n_batches; b++) {
            const result *x = &res[k][b];
            const double B = (double)batches[b], step = x->best_s / tokens, lstep = x->logits_s / tokens;
            const double layer = (step - lstep) / n_layer[k];
            const double tps = B * tokens / x->best_s, cpu_tps = B * tokens / x->cpu_s;
            const double ext_step = lstep + layer * (double)full, ext_tps = B / ext_step;
            const double gbps = (double)mb[k].step / step;
            if (batches[b] == 1) base = tps;
            const double vs1 = base > 0 ? tps / base : NAN;
            if (json)
                printf("{\"op\":\"decode\",\"model\":\"%s\",\"weights\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"layers\":%d,"
                       "\"n_vocab\":%d,\"batch\":%ld,\"prompt\":%ld,\"tokens\":%ld,\"reps\":%ld,\"tokens_per_s\":%.4f,"
                       "\"tokens_per_s_cpu_time\":%.4f,\"step_ms\":%.4f,\"per_layer_ms\":%.4f,\"logits_ms\":%.4f,"
                       "\"full_layers\":%ld,\"extrapolated_tokens_per_s\":%.4f,\"weight_bytes_per_step\":%llu,"
                       "\"layer_weight_bytes\":%llu,\"weight_gbps\":%.3f,\"mem_read_gbps\":%.3f,\"bandwidth_fraction\":%.4f,"
                       "\"vs_batch1\":%.4f,\"write_s\":%.2f}\n",
                       paths[k], tn, vlmn_precision_name(prec), nth, n_layer[k], n_vocab[k], batches[b], P, tokens, reps, tps,
                       cpu_tps, step * 1e3, layer * 1e3, lstep * 1e3, full, ext_tps, (unsigned long long)mb[k].step,
                       (unsigned long long)mb[k].layer, gbps * 1e-9, bw * 1e-9, bw > 0 ? gbps / bw : 0.0,
                       isnan(vs1) ? 0.0 : vs1, t_write);
            else
                printf("%-6s %6d %5ld %10.3f %9.2f %9.3f %9.3f %10.2f %8.1f%% %10.3f %9.2f %8.3f @%ld\n", tn, n_layer[k],
                       batches[b], tps, step * 1e3, layer * 1e3, lstep * 1e3, gbps * 1e-9,
                       bw > 0 ? 100.0 * gbps / bw : 0.0, cpu_tps, vs1, ext_tps, full);
        }
    }
    if (!json)
        printf("tokens/s = batch x tokens / wall time of the timed steps (all sequences together); layer ms = (step - "
               "logits) / layers; tok/s @%ld = batch / (logits + %ld x layer); weight GB/s = bytes of every tensor but "
               "token_embd per step / step time\n", full, full);
    rc = 0;
done:
    vlmn_pool_free(pool);
cleanup:
    if (!text && !keep) {
        for (int k = 0; k < n_models; k++) {
            unlink(paths[k]);
            unlink(mmprojs[k]);
        }
        if (dir == tmpdir) rmdir(dir);
    } else if (!text && keep && !json) {
        printf("models kept in %s\n", dir);
    }
    return rc;
}
