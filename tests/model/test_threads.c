/* Determinism of the LLaVA engine: pools of 1 and 2 threads give bit-identical FFN
 * activations (every layer, both hooks, with a neuron mask) and logits on the tiny
 * engine fixtures, in FAST and EXACT precision; and the fused q|k|v and gate|up GEMMs
 * give the same bits as the separate GEMMs (VLMN_LLAVA_NOFUSE). */
#include "test.h"

#include "vlmn/model.h"
#include "vlmn/npy.h"
#include "vlmn/kernels.h"
#include "model/ops.h"

#include <math.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct grab {
    float *acts; /* [n_layer x T x FF] */
    int64_t T, FF;
    int calls;
} grab;

static void on_capture(void *user, int layer, const float *acts, int64_t n_tokens, int64_t n_ff)
{
    grab *g = user;
    if (n_tokens == g->T && n_ff == g->FF)
        memcpy(g->acts + (int64_t)layer * n_tokens * n_ff, acts, (size_t)(n_tokens * n_ff) * sizeof(float));
    g->calls++;
}

typedef struct result {
    float *acts, *logits;
    int64_t n_acts, n_logits;
} result;

/* One forward of the v1 fixture sample; false on failure (reported). */
static bool run(const char *model, vlmn_precision prec, int threads, vlmn_hook hook, bool fuse, result *r)
{
    char t[64], mm[64];
    snprintf(t, sizeof t, "engine/%s.text.gguf", model);
    snprintf(mm, sizeof mm, "engine/%s.mmproj.gguf", model);
    if (fuse)
        unsetenv("VLMN_LLAVA_NOFUSE");
    else
        setenv("VLMN_LLAVA_NOFUSE", "1", 1);
    vlmn_llava_params p = {.n_threads = threads, .precision = prec};
    vlmn_llava *m = NULL;
    vlmn_npy *ids = NULL, *pix = NULL;
    bool ok = false;
    memset(r, 0, sizeof *r);
    vlmn_status st = vlmn_llava_load(test_path(test_data_dir(), t), test_path(test_data_dir(), mm), &p, &m);
    unsetenv("VLMN_LLAVA_NOFUSE");
    CHECK_MSG(st == VLMN_OK, "load %s: %s", model, vlmn_errmsg());
    if (st) return false;
    if (vlmn_npy_read(test_path(test_data_dir(), "engine/ids_v1.npy"), &ids) ||
        vlmn_npy_read(test_path(test_data_dir(), "engine/pixels_wide.npy"), &pix)) {
        CHECK_MSG(0, "fixtures: %s", vlmn_errmsg());
        goto out;
    }
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    const int64_t T = (int64_t)ids->count, FF = in->n_ff;
    grab g = {calloc((size_t)(in->n_layer * T * FF), sizeof(float)), T, FF, 0};
    uint8_t *mbuf = calloc((size_t)in->n_layer * (size_t)FF, 1);
    const uint8_t **mask = calloc((size_t)in->n_layer, sizeof *mask);
    r->n_logits = 3 * (int64_t)in->n_vocab;
    r->logits = calloc((size_t)r->n_logits, sizeof(float));
    CHECK(g.acts && mbuf && mask && r->logits);
    if (!g.acts || !mbuf || !mask || !r->logits) {
        free(g.acts), free(mbuf), free(mask);
        goto out;
    }
    for (int l = 0; l < in->n_layer; l++) {
        mask[l] = mbuf + (int64_t)l * FF;
        mbuf[(int64_t)l * FF + (l * 7 + 3) % FF] = 1;
    }
    vlmn_forward_opts o = {.capture = on_capture, .capture_user = &g, .hook = hook,
                           .neuron_mask = (const uint8_t *const *)mask, .logits = r->logits, .n_logits = 3};
    st = vlmn_llava_forward(m, ids->data, T, pix->data, &o);
    CHECK_MSG(st == VLMN_OK, "forward %s: %s", model, vlmn_errmsg());
    CHECK_EQ_INT(g.calls, in->n_layer);
    free(mbuf);
    free(mask);
    r->acts = g.acts;
    r->n_acts = in->n_layer * T * FF;
    ok = st == VLMN_OK;
out:
    vlmn_npy_free(ids);
    vlmn_npy_free(pix);
    vlmn_llava_free(m);
    return ok;
}

static void result_free(result *r)
{
    free(r->acts);
    free(r->logits);
}

static void same_bits(const char *model, vlmn_precision prec, vlmn_hook hook, int ta, bool fa, int tb, bool fb)
{
    result a, b;
    bool oa = run(model, prec, ta, hook, fa, &a), ob = run(model, prec, tb, hook, fb, &b);
    if (oa && ob) {
        CHECK_MSG(!memcmp(a.acts, b.acts, (size_t)a.n_acts * sizeof(float)),
                  "%s %s hook %d: activations differ between %d%s and %d%s threads", model,
                  prec == VLMN_PREC_EXACT ? "exact" : "fast", (int)hook, ta, fa ? "" : " (unfused)", tb,
                  fb ? "" : " (unfused)");
        CHECK_MSG(!memcmp(a.logits, b.logits, (size_t)a.n_logits * sizeof(float)),
                  "%s %s: logits differ between %d and %d threads", model,
                  prec == VLMN_PREC_EXACT ? "exact" : "fast", ta, tb);
        /* the check has teeth: the activations are not all zero */
        int64_t nz = 0;
        for (int64_t i = 0; i < a.n_acts; i++) nz += a.acts[i] != 0.0f;
        CHECK(nz > a.n_acts / 2);
    }
    result_free(&a);
    result_free(&b);
}

static const char *const MODELS[] = {"bf16", "q8_0", "f32"};

TEST(threads_1_vs_2_fast)
{
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) {
        same_bits(MODELS[i], VLMN_PREC_FAST, VLMN_HOOK_SILU_GATE, 1, true, 2, true);
        same_bits(MODELS[i], VLMN_PREC_FAST, VLMN_HOOK_SWIGLU, 1, true, 2, true);
    }
}

TEST(threads_1_vs_2_exact)
{
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) {
        same_bits(MODELS[i], VLMN_PREC_EXACT, VLMN_HOOK_SILU_GATE, 1, true, 2, true);
        same_bits(MODELS[i], VLMN_PREC_EXACT, VLMN_HOOK_SWIGLU, 1, true, 2, true);
    }
}

TEST(threads_3_fast)
{
    /* an odd split of rows and columns */
    same_bits("bf16", VLMN_PREC_FAST, VLMN_HOOK_SWIGLU, 1, true, 3, true);
}

TEST(fused_vs_separate_gemms)
{
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) {
        same_bits(MODELS[i], VLMN_PREC_FAST, VLMN_HOOK_SWIGLU, 2, true, 2, false);
        same_bits(MODELS[i], VLMN_PREC_EXACT, VLMN_HOOK_SILU_GATE, 2, true, 1, false);
    }
}

/* Text-only load (no mmproj): token-only samples run, image inputs are refused. */
TEST(text_only_model)
{
    vlmn_llava_params p = {.n_threads = 2, .precision = VLMN_PREC_FAST};
    vlmn_llava *m = NULL;
    vlmn_status st = vlmn_llava_load(test_path(test_data_dir(), "engine/bf16.text.gguf"), NULL, &p, &m);
    CHECK_MSG(st == VLMN_OK, "%s", vlmn_errmsg());
    if (st) return;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    CHECK_EQ_INT(in->n_image_tokens, 0);
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = (i * 5 + 1) % in->n_vocab;
    grab g = {calloc((size_t)(in->n_layer * 12 * in->n_ff), sizeof(float)), 12, in->n_ff, 0};
    vlmn_forward_opts o = {.capture = on_capture, .capture_user = &g};
    CHECK_EQ_INT(vlmn_llava_forward(m, ids, 12, NULL, &o), VLMN_OK);
    CHECK_EQ_INT(g.calls, in->n_layer);
    static const float px[3] = {0};
    CHECK_EQ_INT(vlmn_llava_forward(m, ids, 12, px, &o), VLMN_E_ARG);
    ids[3] = -1;
    CHECK(vlmn_llava_forward(m, ids, 12, NULL, &o) != VLMN_OK);
    vlmn_llava_times t;
    vlmn_llava_last_times(m, &t);
    CHECK(t.total >= 0);
    free(g.acts);
    vlmn_llava_free(m);
}

/* The FAST path's AVX-512 element-wise ops against the scalar ones (EXACT path). */
TEST(avx512_ops_match_scalar)
{
    if (!vlmn_isa_supported(VLMN_ISA_AVX512)) {
        fprintf(stderr, "  no AVX-512: skipped\n");
        return;
    }
    enum { N = 1000 };
    static float g[N], u[N], o[N], ref[N], y[N], yref[N], w[N];
    static uint8_t mask[N];
    for (int i = 0; i < N; i++) {
        g[i] = (float)(i - 500) * 0.05f * (float)(1 + i % 7); /* -175 .. 175 */
        u[i] = 1.0f + (float)(i % 13) * 0.25f;
        mask[i] = i % 17 == 3;
        w[i] = 0.5f + (float)(i % 5) * 0.1f;
    }
    g[0] = -1e30f, g[1] = 1e30f, g[2] = 0.0f, g[3] = -0.0f, g[4] = -88.5f, g[5] = 89.0f;
    for (int n = 1; n <= N; n += n < 40 ? 1 : 97) {
        for (int masked = 0; masked < 2; masked++) {
            memcpy(ref, g, sizeof ref);
            op_silu(ref, n);
            for (int i = 0; i < n; i++) {
                if (masked && mask[i]) ref[i] = 0.0f;
                ref[i] *= u[i];
            }
            op_silu_mul_avx512(g, u, o, masked ? mask : NULL, n);
            for (int i = 0; i < n; i++) {
                double d = fabs((double)o[i] - ref[i]), tol = 4e-7 * fabs((double)ref[i]) + 1e-37;
                CHECK_MSG(d <= tol, "silu*up n=%d i=%d g=%g: %.9g vs %.9g", n, i, (double)g[i], (double)o[i], (double)ref[i]);
                if (d > tol) return;
            }
        }
    }
    /* quick_gelu */
    for (int n = 1; n <= N; n += n < 40 ? 1 : 97) {
        memcpy(ref, g, sizeof ref);
        memcpy(o, g, sizeof o);
        op_quick_gelu(ref, n);
        op_quick_gelu_avx512(o, n);
        for (int i = 0; i < n; i++) {
            double d = fabs((double)o[i] - ref[i]), tol = 4e-7 * fabs((double)ref[i]) + 1e-37;
            CHECK_MSG(d <= tol, "quick_gelu n=%d i=%d x=%g: %.9g vs %.9g", n, i, (double)g[i], (double)o[i], (double)ref[i]);
            if (d > tol) return;
        }
    }
    /* x * y */
    op_mul_avx512(g + 6, u, o, N - 6);
    for (int i = 0; i < N - 6; i++) CHECK(o[i] == g[i + 6] * u[i]);
    /* RMSNorm: rows of odd widths */
    for (int n = 1; n <= 300; n += 37) {
        op_rmsnorm(g + 6, yref, 3, n, n, w, 1e-5f);
        op_rmsnorm_avx512(g + 6, y, 3, n, n, w, 1e-5f);
        for (int i = 0; i < 3 * n; i++) {
            double d = fabs((double)y[i] - yref[i]);
            CHECK_MSG(d <= 1.2e-7 * fabs((double)yref[i]), "rmsnorm n=%d i=%d: %.9g vs %.9g", n, i, (double)y[i], (double)yref[i]);
        }
    }
}

TEST_MAIN()
