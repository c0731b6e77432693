/* `vlmn bench record`: cost of the streaming recorder per sample, alone (random
 * blocks of a given shape, default LLaVA-1.5-7B: 32 layers x 680 tokens x 11008) and,
 * with a model, as overhead over the bare forward pass (same input, capture off/on,
 * alternating, best and mean of several reps). */
#include "cli.h"
#include "bench.h"
#include "core/alloc.h"
#include "vlmn/image.h"
#include "vlmn/model.h"
#include "vlmn/prompt.h"
#include "vlmn/record.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    /* roughly SiLU-shaped: mostly small, a tail of large values */
    float u = bench_unit(&rng);
    return u < 0.7f ? u * 0.4f - 0.27f : (u - 0.7f) * 20.f;
}

typedef struct timed_rec {
    vlmn_rec *rec;
    double t;
} timed_rec;

static void timed_capture(void *user, int layer, const float *acts, int64_t n, int64_t f)
{
    timed_rec *tr = user;
    double t0 = bench_wall();
    vlmn_rec_capture(tr->rec, layer, acts, n, f);
    tr->t += bench_wall() - t0;
}

/* Recorder alone on random blocks: warm-up samples (the top lists are not full:
 * every neuron takes the top-8 path) and steady-state samples (blocks repeat, so no
 * neuron enters: the one-pass cost). */
static int bench_alone(int L, int T, int F, int topn, int threads, int samples, bool json)
{
    enum { R = 3 };
    size_t blk = (size_t)T * (size_t)F;
    float *b = vlmn_malloc((R + 1) * blk * sizeof(float));
    uint8_t *lab = vlmn_malloc((size_t)T);
    vlmn_rec *rec = NULL;
    vlmn_rec_params p = {L, F, topn, threads};
    if (!b || !lab || vlmn_rec_create(&p, &rec)) {
        vlmn_free(b);
        vlmn_free(lab);
        return cli_errorf("bench", 1, "out of memory for the recorder state (%" PRIu64 " bytes)",
                          vlmn_rec_state_bytes(L, F, topn));
    }
    for (size_t i = 0; i < R * blk; i++) b[i] = frand();
    /* the steady-state block is below every warm-up block at every position: its
     * sample max never beats a kept entry */
    for (size_t i = 0; i < blk; i++) {
        float m = b[i];
        for (int k = 1; k < R; k++) m = b[k * blk + i] < m ? b[k * blk + i] : m;
        b[R * blk + i] = m - 0.01f;
    }
    /* LLaVA-like layout: 35 prompt positions, image, role words, answer */
    int n_img = T >= 620 ? 576 : T / 2;
    for (int t = 0; t < T; t++)
        lab[t] = t < 35 ? VLMN_MOD_PROMPT : t < 35 + n_img ? VLMN_MOD_IMAGE : t < 40 + n_img ? VLMN_MOD_PROMPT : VLMN_MOD_TEXT;
    double warm = 0, steady = 1e30, steady_sum = 0;
    int n_warm = topn, n_steady = 0;
    for (int s = 0; s < n_warm + samples; s++) {
        double t0 = bench_wall();
        vlmn_rec_begin_sample(rec, (uint32_t)s, lab, T, false);
        for (int l = 0; l < L; l++) vlmn_rec_capture(rec, l, b + (size_t)(s < n_warm ? (s + l) % R : R) * blk, T, F);
        vlmn_rec_end_sample(rec);
        double dt = bench_wall() - t0;
        if (s < n_warm) warm += dt;
        else {
            steady = dt < steady ? dt : steady;
            steady_sum += dt;
            n_steady++;
        }
    }
    uint64_t bytes = vlmn_rec_state_bytes(L, F, topn);
    if (json)
        printf("{\"layers\":%d,\"tokens\":%d,\"n_ff\":%d,\"top_n\":%d,\"state_bytes\":%" PRIu64
               ",\"warmup_s_per_sample\":%.4f,\"steady_s_per_sample_best\":%.4f,\"steady_s_per_sample_mean\":%.4f}\n",
               L, T, F, topn, bytes, warm / n_warm, steady, steady_sum / n_steady);
    else
        printf("recorder alone: %d layers x [%d tokens x %d neurons], top-%d, state %.1f MiB\n"
               "  warm-up (lists filling, every neuron extracts its top-8): %.4f s/sample\n"
               "  steady state (no neuron enters): best %.4f s/sample, mean %.4f s/sample (%d samples)\n",
               L, T, F, topn, bytes / 1048576.0, warm / n_warm, steady, steady_sum / n_steady, n_steady);
    vlmn_rec_free(rec);
    vlmn_free(b);
    vlmn_free(lab);
    return 0;
}

static int bench_model(const char *text, const char *mmproj, int topn, int threads, int reps, int answer_words,
                       bool json)
{
    vlmn_llava *m = NULL;
    vlmn_image *img = NULL;
    float *pix = NULL;
    int32_t *ids = NULL;
    uint8_t *mod = NULL;
    char *answer = NULL;
    vlmn_rec *rec = NULL;
    int64_t n = 0;
    int rc = 1;
    vlmn_status st;
    vlmn_llava_params lp = {.n_threads = threads, .precision = VLMN_PREC_FAST};
    if ((st = vlmn_llava_load(text, mmproj, &lp, &m))) goto fail;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    int S = in->image_size;
    if ((st = vlmn_img_create(S + 17, S, &img))) goto fail;
    for (int i = 0; i < (S + 17) * S * 3; i++) img->rgb[i] = (uint8_t)(rng = rng * 6364136223846793005ull + 1, rng >> 56);
    pix = vlmn_malloc(3 * (size_t)S * (size_t)S * sizeof(float));
    answer = vlmn_malloc((size_t)answer_words * 6 + 1);
    if (!pix || !answer) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto fail;
    }
    answer[0] = 0;
    for (int w = 0; w < answer_words; w++) strcat(answer, w % 3 ? "cat " : "red ");
    if ((st = vlmn_img_preprocess(img, VLMN_IMG_PAD, S, in->image_mean, in->image_std, pix))) goto fail;
    if ((st = vlmn_prompt_build(vlmn_llava_tokenizer(m), "llava-v1", "Describe the image in detail.", answer,
                                in->n_image_tokens, &ids, &mod, &n)))
        goto fail;
    vlmn_rec_params rp = {in->n_layer, in->n_ff, topn, threads};
    if ((st = vlmn_rec_create(&rp, &rec))) goto fail;
    timed_rec tr = {rec, 0};
    double bare_best = 1e30, rec_best = 1e30, bare_sum = 0, rec_sum = 0, cap_sum = 0;
    vlmn_forward_opts off = {.hook = VLMN_HOOK_SILU_GATE};
    vlmn_forward_opts on = {.capture = timed_capture, .capture_user = &tr, .hook = VLMN_HOOK_SILU_GATE};
    /* one untimed forward to fault the weights in */
    if ((st = vlmn_llava_forward(m, ids, n, pix, &off))) goto fail;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_wall();
        if ((st = vlmn_llava_forward(m, ids, n, pix, &off))) goto fail;
        double t1 = bench_wall();
        tr.t = 0;
        if ((st = vlmn_rec_begin_sample(rec, (uint32_t)r, mod, n, false))) goto fail;
        if ((st = vlmn_llava_forward(m, ids, n, pix, &on))) goto fail;
        if ((st = vlmn_rec_end_sample(rec))) goto fail;
        double t2 = bench_wall();
        bare_sum += t1 - t0;
        rec_sum += t2 - t1;
        cap_sum += tr.t;
        /* the same sample every rep: once the top-N lists are full (rep >= N) it no
         * longer enters them, so later reps show the steady-state one-pass cost */
        if (!json)
            printf("  rep %d (%s): bare %.4f s, with recorder %.4f s, inside the capture %.4f s (%.2f%%)\n", r + 1,
                    r < topn ? "lists filling" : "steady state", t1 - t0, t2 - t1, tr.t, 100.0 * tr.t / (t1 - t0));
        bare_best = t1 - t0 < bare_best ? t1 - t0 : bare_best;
        rec_best = t2 - t1 < rec_best ? t2 - t1 : rec_best;
    }
    double ovh_best = 100.0 * (rec_best - bare_best) / bare_best, ovh_cap = 100.0 * (cap_sum / reps) / (bare_sum / reps);
    if (json)
        printf("{\"n_layer\":%d,\"n_ff\":%d,\"tokens\":%" PRId64 ",\"reps\":%d,\"bare_s_best\":%.4f,\"bare_s_mean\":%.4f,"
               "\"record_s_best\":%.4f,\"record_s_mean\":%.4f,\"capture_s_mean\":%.4f,\"overhead_pct_best\":%.2f,"
               "\"capture_pct_of_bare\":%.2f}\n",
               in->n_layer, in->n_ff, n, reps, bare_best, bare_sum / reps, rec_best, rec_sum / reps, cap_sum / reps,
               ovh_best, ovh_cap);
    else
        printf("forward of one sample (%" PRId64 " positions, %d layers x %d neurons), %d reps:\n"
               "  bare forward:            best %.4f s, mean %.4f s\n"
               "  forward + recorder:      best %.4f s, mean %.4f s\n"
               "  time inside the capture: mean %.4f s = %.2f%% of the bare forward\n"
               "  overhead (best vs best): %.2f%%\n",
               n, in->n_layer, in->n_ff, reps, bare_best, bare_sum / reps, rec_best, rec_sum / reps, cap_sum / reps,
               ovh_cap, ovh_best);
    rc = 0;
    goto out;
fail:
    rc = cli_fail("bench", st);
out:
    vlmn_rec_free(rec);
    vlmn_free(ids);
    vlmn_free(mod);
    vlmn_free(answer);
    vlmn_free(pix);
    vlmn_img_free(img);
    vlmn_llava_free(m);
    return rc;
}

int bench_record(int argc, char **argv)
{
    const char *text = NULL, *mmproj = NULL, *v;
    long L = 32, T = 680, F = 11008, topn = 50, threads = 0, samples = 5, reps = 3, words = 80;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        int r;
        long *lp = NULL, lo = 1, hi = 1L << 24;
        if ((r = cli_opt(argc, argv, &i, "model", 'm', &v))) text = v;
        else if ((r = cli_opt(argc, argv, &i, "mmproj", 0, &v))) mmproj = v;
        else if ((r = cli_opt(argc, argv, &i, "layers", 0, &v))) lp = &L, hi = 1000;
        else if ((r = cli_opt(argc, argv, &i, "tokens", 0, &v))) lp = &T;
        else if ((r = cli_opt(argc, argv, &i, "n-ff", 0, &v))) lp = &F;
        else if ((r = cli_opt(argc, argv, &i, "top-n", 0, &v))) lp = &topn, hi = VLMN_REC_MAX_TOP_N;
        else if ((r = cli_opt(argc, argv, &i, "threads", 't', &v))) lp = &threads, hi = 4096;
        else if ((r = cli_opt(argc, argv, &i, "samples", 0, &v))) lp = &samples;
        else if ((r = cli_opt(argc, argv, &i, "reps", 0, &v))) lp = &reps;
        else if ((r = cli_opt(argc, argv, &i, "answer-words", 0, &v))) lp = &words, hi = 100000;
        else if (cli_flag(argv, i, "json", 0)) {
            json = true;
            continue;
        } else if (cli_unknown_option(&vlmn_cmd_bench, argv, i)) {
            return 2;
        } else return cli_errorf("bench", 2, "record: unexpected argument '%s'", argv[i]);
        if (r < 0) return 2;
        if (lp && cli_parse_long(v, lo, hi, lp)) return cli_errorf("bench", 2, "record: bad value '%s' for %s", v, argv[i - 1]);
    }
    if (!!text != !!mmproj) return cli_errorf("bench", 2, "record: give both -m and --mmproj, or neither");
    if (text) return bench_model(text, mmproj, (int)topn, (int)threads, (int)reps, (int)words, json);
    return bench_alone((int)L, (int)T, (int)F, (int)topn, (int)threads, (int)samples, json);
}
