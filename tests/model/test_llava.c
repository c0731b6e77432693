/* LLaVA engine vs the float64 reference (tests/reference/llava_ref.py): every layer's
 * [T x n_ff] FFN activation block and the last logits, for F32/F16/BF16/Q8_0 tiny models
 * (GQA and not, legacy and new fc naming, feature_layer, both hooks, two templates and
 * image aspect ratios, a neuron mask), in EXACT and FAST precision; plus bad inputs. */
#include "model/model_fixture.h"

#include "vlmn/model.h"
#include "vlmn/npy.h"
#include "vlmn/gguf.h"
#include "model/ops.h"
#include "core/alloc.h"

#include <stdint.h>
#include <string.h>

#define VLMN_ARRAY_LEN_(a) (sizeof(a) / sizeof((a)[0]))
#define EXACT_TOL 1e-4
#define FAST_TOL 1e-2
/* int8 activations for Q8_0 (the other types run as FAST): measured up to 2.1e-2 here */
#define FASTEST_TOL 3e-2

static const char *const MODELS[] = {"f32", "f16", "bf16", "q8_0"};

/* Run one case and compare against golden `gold_name`; returns the worst layer error. */
static double run_case(const char *model, vlmn_precision prec, const char *ids_name, const char *pix_name,
                       const char *gold_name, vlmn_hook hook, bool masked, const char *logits_name)
{
    double worst = -1;
    vlmn_llava *m = mfx_load("engine", model, prec);
    vlmn_npy *ids = mfx_npy(ids_name), *pix = mfx_npy(pix_name), *gold = mfx_npy(gold_name);
    vlmn_npy *lg = logits_name ? mfx_npy(logits_name) : NULL;
    CHECK(m && ids && pix && gold && (!logits_name || lg));
    if (!m || !ids || !pix || !gold || (logits_name && !lg)) goto out;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    CHECK_EQ_INT(ids->dtype, VLMN_NPY_I32);
    CHECK_EQ_INT(gold->ndim, 3);
    CHECK_EQ_INT(gold->shape[0], in->n_layer);
    CHECK_EQ_INT(gold->shape[1], (int64_t)ids->count);
    CHECK_EQ_INT(gold->shape[2], in->n_ff);
    CHECK_EQ_INT(pix->shape[1], in->image_size);
    if (gold->shape[0] != in->n_layer || gold->shape[1] != (int64_t)ids->count || gold->shape[2] != in->n_ff) goto out;
    double tol = prec == VLMN_PREC_EXACT ? EXACT_TOL : prec == VLMN_PREC_FASTEST ? FASTEST_TOL : FAST_TOL;
    worst = mfx_forward_vs_gold(m, model, prec, gold_name, ids, pix->data, 0, gold, lg, hook, masked, tol);
out:
    vlmn_npy_free(ids);
    vlmn_npy_free(pix);
    vlmn_npy_free(gold);
    vlmn_npy_free(lg);
    vlmn_llava_free(m);
    return worst;
}

static void all_cases(vlmn_precision prec)
{
    char g[64], lgn[64];
    for (size_t i = 0; i < VLMN_ARRAY_LEN_(MODELS); i++) {
        const char *mo = MODELS[i];
        snprintf(g, sizeof g, "engine/%s_v1_silu.npy", mo);
        snprintf(lgn, sizeof lgn, "engine/%s_v1_logits.npy", mo);
        run_case(mo, prec, "engine/ids_v1.npy", "engine/pixels_wide.npy", g, VLMN_HOOK_SILU_GATE, false, lgn);
        snprintf(g, sizeof g, "engine/%s_plain_silu.npy", mo);
        run_case(mo, prec, "engine/ids_plain.npy", "engine/pixels_tall.npy", g, VLMN_HOOK_SILU_GATE, false, NULL);
        snprintf(g, sizeof g, "engine/%s_plain_swiglu.npy", mo);
        run_case(mo, prec, "engine/ids_plain.npy", "engine/pixels_tall.npy", g, VLMN_HOOK_SWIGLU, false, NULL);
        /* the neuron mask: v1 for f16 (silu_gate) and bf16 (swiglu), plain for the others */
        bool v1 = !strcmp(mo, "f16") || !strcmp(mo, "bf16"), silu = !strcmp(mo, "f16");
        snprintf(g, sizeof g, "engine/%s_%smask_%s.npy", mo, v1 ? "v1" : "plain", silu ? "silu" : "swiglu");
        run_case(mo, prec, v1 ? "engine/ids_v1.npy" : "engine/ids_plain.npy",
                 v1 ? "engine/pixels_wide.npy" : "engine/pixels_tall.npy", g,
                 silu ? VLMN_HOOK_SILU_GATE : VLMN_HOOK_SWIGLU, true, NULL);
    }
}

TEST(reference_exact) { all_cases(VLMN_PREC_EXACT); }
TEST(reference_fast) { all_cases(VLMN_PREC_FAST); }
TEST(reference_fastest) { all_cases(VLMN_PREC_FASTEST); }

/* The mask must change the forward pass: the unmasked golden differs from the masked
 * one after layer 0, so comparing the masked run with the unmasked golden must fail. */
TEST(mask_changes_downstream)
{
    vlmn_npy *a = mfx_npy("engine/f16_v1_silu.npy"), *b = mfx_npy("engine/f16_v1mask_silu.npy");
    CHECK(a && b);
    if (a && b) {
        int64_t blk = a->shape[1] * a->shape[2];
        for (int l = 1; l < a->shape[0]; l++)
            CHECK(mfx_rel_err((float *)a->data + l * blk, (float *)b->data + l * blk, blk) > 1e-3);
    }
    vlmn_npy_free(a);
    vlmn_npy_free(b);
}

/* Only the selected layers are captured; logits do not depend on capture. */
TEST(capture_layers_and_no_capture)
{
    vlmn_llava *m = mfx_load("engine", "bf16", VLMN_PREC_EXACT);
    vlmn_npy *ids = mfx_npy("engine/ids_plain.npy"), *pix = mfx_npy("engine/pixels_tall.npy");
    CHECK(m && ids && pix);
    if (m && ids && pix) {
        const vlmn_llava_info *in = vlmn_llava_get_info(m);
        int64_t T = (int64_t)ids->count;
        mfx_sink s = {.T = T, .FF = in->n_ff, .n_layer = in->n_layer, .last_layer = -1};
        s.acts = calloc((size_t)(in->n_layer * T * in->n_ff), sizeof(float));
        uint8_t sel[3] = {0, 1, 0};
        float l1[2 * 440], l2[2 * 440];
        CHECK(in->n_vocab <= 440);
        vlmn_forward_opts o = {.capture = mfx_on_capture, .capture_user = &s, .capture_layers = sel,
                               .logits = l1, .n_logits = 2};
        CHECK_EQ_INT(vlmn_llava_forward(m, ids->data, T, pix->data, &o), VLMN_OK);
        CHECK_EQ_INT(s.calls, 1);
        CHECK_EQ_INT(s.last_layer, 1);
        vlmn_forward_opts o2 = {.logits = l2, .n_logits = 2};
        CHECK_EQ_INT(vlmn_llava_forward(m, ids->data, T, pix->data, &o2), VLMN_OK);
        CHECK(memcmp(l1, l2, sizeof(float) * 2 * (size_t)in->n_vocab) == 0);
        CHECK_EQ_INT(vlmn_llava_forward(m, ids->data, T, pix->data, NULL), VLMN_OK);
        /* a text-only sequence (no image positions, no image) */
        int32_t txt[4] = {1, 300, 301, 2};
        CHECK_EQ_INT(vlmn_llava_forward(m, txt, 4, NULL, &o2), VLMN_OK);
        free(s.acts);
    }
    vlmn_npy_free(ids);
    vlmn_npy_free(pix);
    vlmn_llava_free(m);
}

TEST(bad_forward_inputs)
{
    vlmn_llava *m = mfx_load("engine", "f32", VLMN_PREC_EXACT);
    vlmn_npy *pix = mfx_npy("engine/pixels_wide.npy");
    CHECK(m && pix);
    if (m && pix) {
        int32_t ids[12] = {1, -1, -1, -1, -1, -1, -1, -1, -1, 5, 6, 2};
        CHECK_EQ_INT(vlmn_llava_forward(m, ids, 12, pix->data, NULL), VLMN_E_MISMATCH); /* 8 of 9 */
        CHECK(mfx_one_line());
        CHECK_EQ_INT(vlmn_llava_forward(m, ids, 12, NULL, NULL), VLMN_E_MISMATCH);      /* no image */
        int32_t bad[3] = {1, 100000, 2};
        CHECK_EQ_INT(vlmn_llava_forward(m, bad, 3, NULL, NULL), VLMN_E_RANGE);
        CHECK(mfx_one_line());
        bad[1] = -7;
        CHECK_EQ_INT(vlmn_llava_forward(m, bad, 3, NULL, NULL), VLMN_E_RANGE);
    }
    vlmn_npy_free(pix);
    vlmn_llava_free(m);
}

/* ---- bad files: made by editing the fixture's bytes ---- */

TEST(bad_files)
{
    const char *dir = test_data_dir();
    char tp[512], mp[512], mp2[512];
    snprintf(tp, sizeof tp, "%s/engine/f32.text.gguf", dir);
    snprintf(mp, sizeof mp, "%s/engine/f32.mmproj.gguf", dir);
    snprintf(mp2, sizeof mp2, "%s/engine/bf16.mmproj.gguf", dir);
    CHECK_EQ_INT(mfx_try_load(tp, mp), VLMN_OK);

    /* mismatched pair: the bf16 projector makes 80-wide embeddings, the f32 text is 48 */
    CHECK_EQ_INT(mfx_try_load(tp, mp2), VLMN_E_MISMATCH);
    CHECK(mfx_one_line());
    CHECK(strstr(vlmn_errmsg(), "f32.text.gguf") && strstr(vlmn_errmsg(), "bf16.mmproj.gguf"));

    /* swapped files */
    CHECK(mfx_try_load(mp, tp) != VLMN_OK);
    CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "architecture"));

    size_t n;
    unsigned char *b = test_read_file(tp, &n);
    CHECK(b != NULL);
    if (!b) return;
    /* missing tensor: rename blk.1.ffn_up.weight */
    size_t at = mfx_find_str(b, n, "blk.1.ffn_up.weight");
    CHECK(at > 0);
    if (at) {
        b[at - 1] = 'X';
        const char *p = mfx_write_tmp("engine_missing.gguf", b, n);
        CHECK_EQ_INT(mfx_try_load(p, mp), VLMN_E_NOTFOUND);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "blk.1.ffn_up.weight") && strstr(vlmn_errmsg(), "missing"));
        b[at - 1] = 't';
    }
    /* wrong shape: blk.0.ffn_norm.weight [48] -> [47] */
    at = mfx_find_str(b, n, "blk.0.ffn_norm.weight");
    CHECK(at > 0);
    if (at) {
        uint64_t ne0;
        memcpy(&ne0, b + at + 4, 8);
        CHECK_EQ_INT(ne0, 48);
        ne0 = 47;
        memcpy(b + at + 4, &ne0, 8);
        const char *p = mfx_write_tmp("engine_shape.gguf", b, n);
        CHECK_EQ_INT(mfx_try_load(p, mp), VLMN_E_MISMATCH);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "blk.0.ffn_norm.weight") && strstr(vlmn_errmsg(), "shape"));
        ne0 = 48;
        memcpy(b + at + 4, &ne0, 8);
    }
    free(b);

    /* vision: wrong shape of a projector bias, missing class embedding */
    b = test_read_file(mp, &n);
    CHECK(b != NULL);
    if (!b) return;
    at = mfx_find_str(b, n, "mm.0.bias");
    CHECK(at > 0);
    if (at) {
        uint64_t ne0 = 47;
        memcpy(b + at + 4, &ne0, 8);
        const char *p = mfx_write_tmp("engine_mmshape.gguf", b, n);
        CHECK_EQ_INT(mfx_try_load(tp, p), VLMN_E_MISMATCH);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "mm.0.bias"));
    }
    free(b);
    b = test_read_file(mp, &n);
    at = b ? mfx_find_str(b, n, "v.class_embd") : 0;
    CHECK(at > 0);
    if (at) {
        b[at - 1] = 'X';
        const char *p = mfx_write_tmp("engine_nocls.gguf", b, n);
        CHECK_EQ_INT(mfx_try_load(tp, p), VLMN_E_NOTFOUND);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "v.class_embd"));
    }
    free(b);
    CHECK(mfx_try_load("/nonexistent/x.gguf", mp) != VLMN_OK);
    CHECK(mfx_one_line());
}

/* The small ops against libm in double: exact erf GELU (not llama.cpp's tanh form, which
 * differs by ~1.5e-4 at x = 1), quick_gelu, SiLU, norms, RoPE on adjacent pairs. */
TEST(ops)
{
    float xs[] = {-6.0f, -2.1f, -1.0f, -0.3f, 0.0f, 0.5f, 1.0f, 2.1f, 7.0f};
    enum { N = sizeof xs / sizeof xs[0] };
    float g[N], q[N], s[N];
    memcpy(g, xs, sizeof xs);
    memcpy(q, xs, sizeof xs);
    memcpy(s, xs, sizeof xs);
    op_gelu_erf(g, N);
    op_quick_gelu(q, N);
    op_silu(s, N);
    for (int i = 0; i < N; i++) {
        double x = xs[i];
        CHECK_NEAR(g[i], 0.5 * x * (1 + erf(x / sqrt(2.0))), 2e-6);
        CHECK_NEAR(q[i], x / (1 + exp(-1.702 * x)), 2e-6);
        CHECK_NEAR(s[i], x / (1 + exp(-x)), 2e-6);
    }
    CHECK_NEAR(g[6], 0.8413447460685429, 1e-6); /* tanh form: 0.841192 */

    float x[2][5] = {{1, -2, 3, 0.5f, 4}, {0, 0, 0, 0, 1}}, y[2][5];
    float w[5] = {1, 2, 0.5f, 1, -1}, b[5] = {0.1f, 0, 0, -0.1f, 0};
    op_rmsnorm(&x[0][0], &y[0][0], 2, 5, 5, w, 1e-5f);
    double ms = (1 + 4 + 9 + 0.25 + 16) / 5.0;
    CHECK_NEAR(y[0][1], -2 / sqrt(ms + 1e-5) * 2, 1e-6);
    op_layernorm(&x[0][0], &y[0][0], 2, 5, 5, w, b, 1e-5f);
    double mu = 6.5 / 5, var = 0;
    for (int i = 0; i < 5; i++) var += (x[0][i] - mu) * (x[0][i] - mu);
    var /= 5;
    CHECK_NEAR(y[0][4], (4 - mu) / sqrt(var + 1e-5) * -1, 1e-6);
    CHECK_NEAR(y[1][3], (0 - 0.2) / sqrt(0.16 + 1e-5) - 0.1, 1e-6);

    /* RoPE: position 3, head_dim 4, base 100: pair i rotates by 3 * 100^(-2i/4) */
    float cs[4 * 2 * 2], v[4 * 4] = {0};
    op_rope_table(cs, 4, 4, 100.0f);
    v[12] = 1, v[13] = 2, v[14] = 3, v[15] = -1;
    op_rope_pairs(v, 4, 4, 1, 4, cs);
    double a0 = 3.0, a1 = 3.0 / 10.0;
    CHECK_NEAR(v[12], cos(a0) - 2 * sin(a0), 1e-6);
    CHECK_NEAR(v[13], 2 * cos(a0) + sin(a0), 1e-6);
    CHECK_NEAR(v[14], 3 * cos(a1) + sin(a1), 1e-6);
    CHECK_NEAR(v[15], -cos(a1) + 3 * sin(a1), 1e-6);
}

/* Loading from GGUF handles opened over memory gives the same logits. */
TEST(load_from_memory)
{
    size_t nt = 0, nm = 0;
    char tp[512], mp[512];
    snprintf(tp, sizeof tp, "%s/engine/q8_0.text.gguf", test_data_dir());
    snprintf(mp, sizeof mp, "%s/engine/q8_0.mmproj.gguf", test_data_dir());
    unsigned char *bt = test_read_file(tp, &nt), *bm = test_read_file(mp, &nm);
    vlmn_npy *ids = mfx_npy("engine/ids_v1.npy"), *pix = mfx_npy("engine/pixels_wide.npy");
    vlmn_npy *lg = mfx_npy("engine/q8_0_v1_logits.npy");
    vlmn_gguf *gt = NULL, *gv = NULL;
    CHECK(bt && bm && ids && pix && lg);
    CHECK_EQ_INT(vlmn_gguf_open_memory(bt, nt, "t.gguf", &gt), VLMN_OK);
    CHECK_EQ_INT(vlmn_gguf_open_memory(bm, nm, "m.gguf", &gv), VLMN_OK);
    vlmn_llava *m = NULL;
    vlmn_llava_params p = {.n_threads = 2, .precision = VLMN_PREC_EXACT};
    CHECK_EQ_INT(vlmn_llava_load_gguf(gt, gv, &p, &m), VLMN_OK);
    if (m && ids && pix && lg) {
        float *out = calloc(lg->count, sizeof(float));
        vlmn_forward_opts o = {.logits = out, .n_logits = lg->shape[0]};
        CHECK_EQ_INT(vlmn_llava_forward(m, ids->data, (int64_t)ids->count, pix->data, &o), VLMN_OK);
        CHECK(mfx_rel_err(out, lg->data, (int64_t)lg->count) <= EXACT_TOL);
        free(out);
    }
    vlmn_llava_free(m);
    /* swapped handles: one-line error, both closed */
    gt = gv = NULL;
    CHECK_EQ_INT(vlmn_gguf_open_memory(bt, nt, "t.gguf", &gt), VLMN_OK);
    CHECK_EQ_INT(vlmn_gguf_open_memory(bm, nm, "m.gguf", &gv), VLMN_OK);
    m = NULL;
    CHECK(vlmn_llava_load_gguf(gv, gt, &p, &m) != VLMN_OK);
    CHECK(m == NULL && mfx_one_line());
    vlmn_npy_free(ids);
    vlmn_npy_free(pix);
    vlmn_npy_free(lg);
    free(bt);
    free(bm);
}

/* Every allocation of the loader and of a forward pass failing in turn: a clean
 * VLMN_E_NOMEM (or success once past the allocations), never a crash or a leak. */
TEST(alloc_failures)
{
    const char *dir = test_data_dir();
    char tp[512], mp[512];
    snprintf(tp, sizeof tp, "%s/engine/q8_0.text.gguf", dir);
    snprintf(mp, sizeof mp, "%s/engine/q8_0.mmproj.gguf", dir);
    int32_t ids[4] = {1, 300, 301, 2};
    int ok_runs = 0;
    for (long k = 1; k < 400 && ok_runs < 3; k++) {
        vlmn_llava *m = NULL;
        vlmn_llava_params p = {.n_threads = 1, .precision = VLMN_PREC_FAST};
        vlmn_alloc_fail_after(k);
        vlmn_status st = vlmn_llava_load(tp, mp, &p, &m);
        if (!st) st = vlmn_llava_forward(m, ids, 4, NULL, NULL);
        vlmn_alloc_fail_after(0);
        CHECK_MSG(st == VLMN_OK || st == VLMN_E_NOMEM, "allocation %ld: %s", k, vlmn_errmsg());
        if (st == VLMN_OK) ok_runs++;
        vlmn_llava_free(m);
    }
    CHECK(ok_runs > 0);
}

TEST_MAIN()
