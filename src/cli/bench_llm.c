/* `vlmn bench llm`: what the LLM client and the explainer's prompt builder cost.
 *
 * 1. Requests/s the client sustains (issue goal: >= 500/s at 64 in flight, so the client
 *    is never the bottleneck): N distinct chat requests (no cache, no duplicates) against
 *    a server given by --base-url, at --concurrency C, and in the same run a baseline of
 *    one request in flight, so the ratio shows what concurrency buys on this machine
 *    and this server. Client CPU seconds per request are printed beside.
 * 2. The CPU cost of one explainer prompt with five activation-modulated images (the
 *    Fig. 10 visual prompt): draw each modulated picture from a 24 x 24 activation grid
 *    on a W x H image, PNG-encode it and build the chat body (base64 data: URLs). The
 *    baseline measured in the same run is the PNG encoding of the same pictures alone. */
#include "cli.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "vlmn/draw.h"
#include "vlmn/explain.h"
#include "vlmn/llm.h"

static const char usage[] =
    "vlmn bench llm [--base-url URL] [--model NAME] [--requests N] [--concurrency C]\n"
    "               [--baseline-requests B] [--images K] [--width W] [--height H] [--reps R]\n";

typedef struct {
    double wall, cpu;
    int64_t answered, failed, requests;
} tput;

/* N distinct requests at concurrency conc; `tag` keeps bodies distinct across phases. */
static vlmn_status throughput(const char *base, const char *model, long n, int conc, const char *tag, tput *out)
{
    vlmn_llm_opts o;
    vlmn_llm_opts_default(&o);
    o.base_url = base;
    o.concurrency = conc;
    o.api_key_env = "VLMN_BENCH_NO_KEY"; /* a bench never sends a real key */
    vlmn_llm *c = NULL;
    vlmn_status st = vlmn_llm_create(&o, &c);
    if (st) return st;
    char **bodies = vlmn_calloc((size_t)n, sizeof *bodies);
    vlmn_llm_item *items = vlmn_calloc((size_t)n, sizeof *items);
    if (!bodies || !items) {
        st = vlmn_error(VLMN_E_NOMEM, "bench llm: out of memory");
        goto out;
    }
    for (long i = 0; i < n && !st; i++) {
        char text[96];
        snprintf(text, sizeof text, "bench %s request %ld", tag, i);
        vlmn_llm_part part = {.kind = VLMN_LLM_TEXT, .text = text};
        vlmn_llm_msg msg = {.role = "user", .parts = &part, .n_parts = 1};
        vlmn_llm_chat ch = {.model = model, .msgs = &msg, .n_msgs = 1, .temperature = 0, .max_tokens = 8};
        st = vlmn_llm_chat_body(&ch, &bodies[i]);
        items[i].path = "/chat/completions";
        items[i].body = bodies[i];
        items[i].check = vlmn_llm_chat_check;
    }
    if (st) goto out;
    double w0 = bench_wall(), c0 = bench_cpu();
    st = vlmn_llm_run(c, items, (size_t)n, NULL, NULL);
    out->wall = bench_wall() - w0;
    out->cpu = bench_cpu() - c0;
    const vlmn_llm_stats *s = vlmn_llm_get_stats(c);
    out->answered = s->answered;
    out->failed = s->failed;
    out->requests = s->requests;
out:
    for (long i = 0; items && bodies && i < n; i++) {
        vlmn_llm_item_clear(&items[i]);
        vlmn_free(bodies[i]);
    }
    vlmn_free(items);
    vlmn_free(bodies);
    vlmn_llm_free(c);
    return st;
}

/* A W x H test picture: smooth colour ramps plus noise (compresses like a photo more
 * than a flat image would). */
static void fill_image(vlmn_image *im, uint64_t *rng)
{
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            uint8_t *p = im->rgb + ((size_t)y * im->w + x) * 3;
            int noise = (int)(bench_unit(rng) * 48);
            p[0] = (uint8_t)((x * 255 / im->w + noise) & 0xff);
            p[1] = (uint8_t)((y * 255 / im->h + noise) & 0xff);
            p[2] = (uint8_t)(((x + y) * 127 / (im->w + im->h) + noise) & 0xff);
        }
}

typedef struct {
    double total_cpu, png_cpu;
    size_t body_bytes;
} pcost;

/* One Fig. 10 visual prompt of k samples; best of reps. */
static vlmn_status prompt_cost(int k, int w, int h, long reps, pcost *out)
{
    enum { G = 24 };
    uint64_t rng = 0x5eed1234abcdull;
    vlmn_image *img = NULL, **pics = NULL;
    float *acts = vlmn_malloc((size_t)k * G * G * sizeof *acts);
    uint8_t **png = vlmn_calloc((size_t)k, sizeof *png);
    size_t *png_len = vlmn_calloc((size_t)k, sizeof *png_len);
    vlmn_xsample *xs = vlmn_calloc((size_t)k, sizeof *xs);
    pics = vlmn_calloc((size_t)k, sizeof *pics);
    vlmn_xexamples ex = {0};
    char *body = NULL;
    vlmn_status st = VLMN_OK;
    if (!acts || !png || !png_len || !xs || !pics) {
        st = vlmn_error(VLMN_E_NOMEM, "bench llm: out of memory");
        goto out;
    }
    if ((st = vlmn_img_create(w, h, &img)) || (st = vlmn_xexamples_default(&ex))) goto out;
    fill_image(img, &rng);
    for (int i = 0; i < k * G * G; i++) acts[i] = bench_unit(&rng) * 4.0f - 1.0f;
    vlmn_trace_grid grid = {.first_pos = 0, .rows = G, .cols = G, .x0 = 0, .y0 = 0, .x1 = w, .y1 = h};
    vlmn_draw_opts dopt = {.mode = VLMN_DRAW_MODULATED, .upsample = VLMN_UPSAMPLE_NEAREST};
    vlmn_xprompt_opts popt;
    vlmn_xprompt_opts_default(&popt);
    popt.model = "bench";
    out->total_cpu = out->png_cpu = 1e30;
    for (long r = 0; r < reps && !st; r++) {
        /* the whole prompt: draw + encode + body */
        double c0 = bench_cpu();
        for (int s = 0; s < k && !st; s++) {
            vlmn_image *pic = NULL;
            st = vlmn_draw_image(img, &grid, 1, acts + (size_t)s * G * G, G * G, 3.0f, &dopt, &pic);
            if (!st) st = vlmn_draw_png(pic, &png[s], &png_len[s]);
            vlmn_img_free(pics[s]);
            pics[s] = pic;
            xs[s] = (vlmn_xsample){.sample_index = s, .n_visual = G * G, .visual_acts = acts + (size_t)s * G * G,
                                   .grid_w = G, .grid_h = G, .png = png[s], .png_len = png_len[s]};
        }
        if (!st) st = vlmn_explain_body(VLMN_XK_VISUAL, &ex, xs, k, 3.0, &popt, &body);
        double total = bench_cpu() - c0;
        if (body) out->body_bytes = strlen(body);
        vlmn_free(body);
        body = NULL;
        for (int s = 0; s < k; s++) {
            vlmn_free(png[s]);
            png[s] = NULL;
        }
        /* baseline: the PNG encoding of the same pictures alone */
        c0 = bench_cpu();
        for (int s = 0; s < k && !st; s++) st = vlmn_draw_png(pics[s], &png[s], &png_len[s]);
        double enc = bench_cpu() - c0;
        for (int s = 0; s < k; s++) {
            vlmn_free(png[s]);
            png[s] = NULL;
        }
        if (total < out->total_cpu) out->total_cpu = total;
        if (enc < out->png_cpu) out->png_cpu = enc;
    }
out:
    for (int s = 0; pics && s < k; s++) vlmn_img_free(pics[s]);
    for (int s = 0; png && s < k; s++) vlmn_free(png[s]);
    vlmn_free(pics);
    vlmn_free(png);
    vlmn_free(png_len);
    vlmn_free(xs);
    vlmn_free(acts);
    vlmn_free(body);
    vlmn_xexamples_free(&ex);
    vlmn_img_free(img);
    return st;
}

int bench_llm(int argc, char **argv)
{
    const char *base = NULL, *model = "ok", *v;
    long n = 5000, conc = 64, nb = 200, k = 5, w = 640, h = 480, reps = 3;
    int r;
    for (int i = 1; i < argc; i++) {
        long *lp = NULL, lo = 1, hi = 1 << 24;
        if ((r = cli_opt(argc, argv, &i, "base-url", 0, &v))) {
            if (r < 0) return 2;
            base = v;
            continue;
        } else if ((r = cli_opt(argc, argv, &i, "model", 0, &v))) {
            if (r < 0) return 2;
            model = v;
            continue;
        } else if ((r = cli_opt(argc, argv, &i, "requests", 0, &v))) lp = &n;
        else if ((r = cli_opt(argc, argv, &i, "concurrency", 0, &v))) lp = &conc, hi = 1024;
        else if ((r = cli_opt(argc, argv, &i, "baseline-requests", 0, &v))) lp = &nb;
        else if ((r = cli_opt(argc, argv, &i, "images", 0, &v))) lp = &k, hi = 64;
        else if ((r = cli_opt(argc, argv, &i, "width", 0, &v))) lp = &w, hi = 8192;
        else if ((r = cli_opt(argc, argv, &i, "height", 0, &v))) lp = &h, hi = 8192;
        else if ((r = cli_opt(argc, argv, &i, "reps", 0, &v))) lp = &reps, hi = 100;
        else if (cli_unknown_option(&vlmn_cmd_bench, argv, i)) return 2;
        else {
            fprintf(stderr, "usage: %s", usage);
            return 2;
        }
        if (r < 0 || cli_parse_long(v, lo, hi, lp)) {
            fprintf(stderr, "usage: %s", usage);
            return 2;
        }
    }
    vlmn_status st;
    if (base) {
        tput one = {0}, many = {0};
        if ((st = throughput(base, model, nb, 1, "baseline", &one)) ||
            (st = throughput(base, model, n, (int)conc, "concurrent", &many)))
            return cli_fail("bench", st);
        double rs1 = (double)one.answered / one.wall, rsn = (double)many.answered / many.wall;
        printf("llm client against %s (model %s)\n", base, model);
        printf("  baseline, 1 in flight:  %ld requests in %.3f s = %.1f req/s, answered %lld, failed %lld\n", nb,
               one.wall, rs1, (long long)one.answered, (long long)one.failed);
        printf("  %ld in flight:           %ld requests in %.3f s = %.1f req/s, answered %lld, failed %lld, "
               "sent %lld\n",
               conc, n, many.wall, rsn, (long long)many.answered, (long long)many.failed, (long long)many.requests);
        printf("  ratio vs baseline: %.2fx; client CPU %.1f us/request (goal >= 500 req/s: %s)\n", rsn / rs1,
               1e6 * many.cpu / (double)n, rsn >= 500 ? "met" : "missed");
        if (many.failed || one.failed) return cli_errorf("bench", 1, "%lld requests failed", (long long)(many.failed + one.failed));
    } else {
        printf("llm client: no --base-url, throughput not measured (start a server, e.g. the tests' vlmn_llm_server)\n");
    }
    pcost pc = {0};
    if ((st = prompt_cost((int)k, (int)w, (int)h, reps, &pc))) return cli_fail("bench", st);
    printf("explainer prompt, %ld modulated %ldx%ld images: %.1f ms CPU (best of %ld), PNG encoding alone %.1f ms, "
           "ratio %.2fx, body %.2f MB\n",
           k, w, h, 1e3 * pc.total_cpu, reps, 1e3 * pc.png_cpu, pc.total_cpu / pc.png_cpu, pc.body_bytes / 1e6);
    return 0;
}
