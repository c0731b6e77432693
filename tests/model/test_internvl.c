/* InternVL 2.5 engine (InternViT + pixel shuffle + mlp1 + InternLM2) vs the float64
 * reference (tests/reference/internvl_ref.py): every layer's [T x n_ff] FFN activation
 * block for four images of different aspect ratios (1, 3, 3 and 4 tiles), both hooks,
 * a neuron mask and the last logits, on F32/F16/BF16/Q8_0 tiny pairs in EXACT (1e-4)
 * and FAST (1e-2); plus inconsistent files and inputs (one-line errors). */
#include "model/model_fixture.h"

#include "vlmn/model.h"
#include "vlmn/npy.h"
#include "vlmn/prompt.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>

#include <stdint.h>
#include <string.h>

#define EXACT_TOL 1e-4
#define FAST_TOL 1e-2

static const char *const MODELS[] = {"f32", "f16", "bf16", "q8_0"};
static const char *const IMAGES[] = {"wide", "tall", "square", "portrait"};

static vlmn_npy *npy(const char *name)
{
    char p[128];
    snprintf(p, sizeof p, "internvl/%s", name);
    return mfx_npy(p);
}

static void run_case(vlmn_model *m, const char *model, vlmn_precision prec, const char *image, const char *gold_name,
                     vlmn_hook hook, bool masked, const char *logits_name)
{
    char b1[64], b2[64];
    snprintf(b1, sizeof b1, "ids_%s.npy", image);
    snprintf(b2, sizeof b2, "tiles_%s.npy", image);
    vlmn_npy *ids = npy(b1), *tiles = npy(b2), *gold = npy(gold_name);
    vlmn_npy *lg = logits_name ? npy(logits_name) : NULL;
    CHECK(ids && tiles && gold && (!logits_name || lg));
    if (!ids || !tiles || !gold || (logits_name && !lg)) goto out;
    const vlmn_model_info *in = vlmn_model_get_info(m);
    CHECK_EQ_INT(tiles->ndim, 4);
    CHECK_EQ_INT(tiles->shape[2], in->image_size);
    CHECK_EQ_INT(gold->shape[0], in->n_layer);
    CHECK_EQ_INT(gold->shape[1], (int64_t)ids->count);
    CHECK_EQ_INT(gold->shape[2], in->n_ff);
    if (gold->shape[0] != in->n_layer || gold->shape[1] != (int64_t)ids->count || gold->shape[2] != in->n_ff) goto out;
    int64_t n_img = 0;
    for (size_t i = 0; i < ids->count; i++) n_img += ((const int32_t *)ids->data)[i] == -1;
    CHECK_EQ_INT(n_img, tiles->shape[0] * in->n_image_tokens);

    mfx_forward_vs_gold(m, model, prec, gold_name, ids, tiles->data, (int)tiles->shape[0], gold, lg, hook, masked,
                        prec == VLMN_PREC_EXACT ? EXACT_TOL : FAST_TOL);
out:
    vlmn_npy_free(ids);
    vlmn_npy_free(tiles);
    vlmn_npy_free(gold);
    vlmn_npy_free(lg);
}

static void all_cases(vlmn_precision prec)
{
    char g[64], lgn[64];
    for (size_t i = 0; i < sizeof MODELS / sizeof *MODELS; i++) {
        const char *mo = MODELS[i];
        vlmn_model *m = mfx_load("internvl", mo, prec);
        CHECK(m != NULL);
        if (!m) continue;
        CHECK_EQ_STR(vlmn_model_get_info(m)->arch, "internvl-2.5");
        CHECK_EQ_INT(vlmn_model_get_info(m)->n_image_tokens, 9);
        for (size_t k = 0; k < sizeof IMAGES / sizeof *IMAGES; k++) {
            snprintf(g, sizeof g, "%s_%s_silu.npy", mo, IMAGES[k]);
            snprintf(lgn, sizeof lgn, "%s_%s_logits.npy", mo, IMAGES[k]);
            run_case(m, mo, prec, IMAGES[k], g, VLMN_HOOK_SILU_GATE, false, k == 0 ? lgn : NULL);
        }
        snprintf(g, sizeof g, "%s_wide_swiglu.npy", mo);
        run_case(m, mo, prec, "wide", g, VLMN_HOOK_SWIGLU, false, NULL);
        snprintf(g, sizeof g, "%s_tallmask_swiglu.npy", mo);
        run_case(m, mo, prec, "tall", g, VLMN_HOOK_SWIGLU, true, NULL);
        vlmn_model_free(m);
    }
}

TEST(reference_exact) { all_cases(VLMN_PREC_EXACT); }
TEST(reference_fast) { all_cases(VLMN_PREC_FAST); }

/* A step (prefill of two sequences with tiled images) gives the forward's activations. */
TEST(step_matches_reference)
{
    vlmn_model *m = mfx_load("internvl", "q8_0", VLMN_PREC_EXACT);
    vlmn_npy *ids = npy("ids_tall.npy"), *tiles = npy("tiles_tall.npy"), *gold = npy("q8_0_tall_silu.npy");
    CHECK(m && ids && tiles && gold);
    if (m && ids && tiles && gold) {
        const vlmn_model_info *in = vlmn_model_get_info(m);
        int64_t T = (int64_t)ids->count;
        mfx_sink s = {.T = 2 * T, .FF = in->n_ff, .n_layer = in->n_layer, .last_layer = -1};
        s.acts = calloc((size_t)(in->n_layer * 2 * T * in->n_ff), sizeof(float));
        vlmn_kv *kv[2] = {0};
        CHECK(vlmn_kv_create(m, T, &kv[0]) == VLMN_OK && vlmn_kv_create(m, T, &kv[1]) == VLMN_OK);
        const int32_t *pi[2] = {ids->data, ids->data};
        int64_t n[2] = {T, T};
        const float *im[2] = {tiles->data, tiles->data};
        vlmn_forward_opts o = {.capture = mfx_on_capture, .capture_user = &s, .n_tiles = (int)tiles->shape[0]};
        CHECK_MSG(vlmn_model_step(m, 2, kv, pi, n, im, &o) == VLMN_OK, "%s", vlmn_errmsg());
        for (int l = 0; l < in->n_layer; l++)
            for (int b = 0; b < 2; b++) {
                double e = mfx_rel_err(s.acts + ((int64_t)l * 2 * T + b * T) * in->n_ff,
                                   (const float *)gold->data + (int64_t)l * T * in->n_ff, T * in->n_ff);
                CHECK_MSG(e <= EXACT_TOL, "layer %d seq %d: %.3e", l, b, e);
            }
        vlmn_kv_free(kv[0]);
        vlmn_kv_free(kv[1]);
        free(s.acts);
    }
    vlmn_npy_free(ids);
    vlmn_npy_free(tiles);
    vlmn_npy_free(gold);
    vlmn_model_free(m);
}

TEST(bad_inputs)
{
    vlmn_model *m = mfx_load("internvl", "f32", VLMN_PREC_EXACT);
    vlmn_npy *ids = npy("ids_wide.npy"), *tiles = npy("tiles_wide.npy");
    CHECK(m && ids && tiles);
    if (m && ids && tiles) {
        /* 3 tiles' image positions, but the image is said to have 2 or 4 tiles */
        vlmn_forward_opts o = {.n_tiles = 2};
        CHECK_EQ_INT(vlmn_model_forward(m, ids->data, (int64_t)ids->count, tiles->data, &o), VLMN_E_MISMATCH);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "image positions"));
        o.n_tiles = 4;
        CHECK_EQ_INT(vlmn_model_forward(m, ids->data, (int64_t)ids->count, tiles->data, &o), VLMN_E_MISMATCH);
        o.n_tiles = -1;
        CHECK(vlmn_model_forward(m, ids->data, (int64_t)ids->count, tiles->data, &o) != VLMN_OK);
        CHECK(mfx_one_line());
    }
    vlmn_npy_free(ids);
    vlmn_npy_free(tiles);
    vlmn_model_free(m);
}

/* ---- inconsistent files, made by editing the fixture's bytes ---- */
/* Sets the u32 value of metadata key `key` (type u32 in the fixture) in a copy. */
static const char *with_u32(const char *src, const char *key, uint32_t v, const char *out)
{
    size_t n;
    unsigned char *b = test_read_file(src, &n);
    if (!b) return NULL;
    size_t at = mfx_find_str(b, n, key);
    const char *p = NULL;
    uint32_t type;
    if (at) memcpy(&type, b + at, 4);
    if (at && type == 4) {
        memcpy(b + at + 4, &v, 4);
        p = mfx_write_tmp(out, b, n);
    }
    free(b);
    return p;
}

TEST(bad_files)
{
    const char *dir = test_data_dir();
    char tp[512], mp[512], mp2[512];
    snprintf(tp, sizeof tp, "%s/internvl/f32.text.gguf", dir);
    snprintf(mp, sizeof mp, "%s/internvl/f32.mmproj.gguf", dir);
    snprintf(mp2, sizeof mp2, "%s/internvl/bf16.mmproj.gguf", dir);
    CHECK_EQ_INT(mfx_try_load(tp, mp), VLMN_OK);
    /* mismatched pair: 80-wide projector output for a 64-wide text model */
    CHECK_EQ_INT(mfx_try_load(tp, mp2), VLMN_E_MISMATCH);
    CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "mismatched pair"));
    /* an InternLM2 text model with LLaVA's projector, and the reverse */
    char lm[512];
    snprintf(lm, sizeof lm, "%s/engine/q8_0.mmproj.gguf", dir);
    CHECK(mfx_try_load(tp, lm) != VLMN_OK);
    CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "projector_type"));
    /* wrong head counts: 8 query heads and 3 KV heads; 4 KV heads (attn_k has 2) */
    const char *p = with_u32(tp, "internlm2.attention.head_count_kv", 3, "ivl_kv3.gguf");
    CHECK(p != NULL);
    if (p) {
        CHECK_EQ_INT(mfx_try_load(p, mp), VLMN_E_UNSUPPORTED);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "head_count_kv 3"));
    }
    p = with_u32(tp, "internlm2.attention.head_count_kv", 4, "ivl_kv4.gguf");
    CHECK(p != NULL);
    if (p) {
        CHECK_EQ_INT(mfx_try_load(p, mp), VLMN_E_MISMATCH);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "blk.0.attn_k.weight") && strstr(vlmn_errmsg(), "shape"));
    }
    p = with_u32(tp, "internlm2.attention.head_count", 7, "ivl_h7.gguf");
    CHECK(p != NULL);
    if (p) {
        CHECK(mfx_try_load(p, mp) != VLMN_OK);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "ivl_h7.gguf"));
    }
    /* a patch grid the pixel shuffle cannot halve: image_size 98 -> 7 x 7 */
    p = with_u32(mp, "clip.vision.image_size", 98, "ivl_img98.gguf");
    CHECK(p != NULL);
    if (p) {
        CHECK(mfx_try_load(tp, p) != VLMN_OK);
        CHECK(mfx_one_line() && strstr(vlmn_errmsg(), "ivl_img98.gguf"));
    }
    /* missing tensors: layer scale, projector norm */
    const char *miss[] = {"v.blk.1.ls2.weight", "mm.model.mlp.0.bias", "v.patch_embd.bias", "blk.2.ffn_gate.weight"};
    for (size_t i = 0; i < sizeof miss / sizeof *miss; i++) {
        bool text = miss[i][0] == 'b';
        size_t n;
        unsigned char *b = test_read_file(text ? tp : mp, &n);
        size_t at = b ? mfx_find_str(b, n, miss[i]) : 0;
        CHECK(at > 0);
        if (at) {
            b[at - 1] = 'X';
            const char *q = mfx_write_tmp("ivl_missing.gguf", b, n);
            CHECK_EQ_INT(text ? mfx_try_load(q, mp) : mfx_try_load(tp, q), VLMN_E_NOTFOUND);
            CHECK(mfx_one_line() && strstr(vlmn_errmsg(), miss[i]) && strstr(vlmn_errmsg(), "missing"));
        }
        free(b);
    }
}

/* The internvl template (internlm2-chat, InternVL's system message, <img> + image
 * positions + </img>) tokenised as HF does (added tokens split out, each text piece
 * encoded on its own), with labels, vs internvl_ref.py's hf_tokenize. */
TEST(prompt_matches_reference)
{
    vlmn_model *m = mfx_load("internvl", "f32", VLMN_PREC_EXACT);
    char *js = test_read_file(test_path(test_data_dir(), "internvl/prompts.json"), NULL);
    cJSON *a = js ? cJSON_Parse(js) : NULL;
    CHECK(m && cJSON_IsArray(a));
    int cases = 0;
    cJSON *e;
    if (m && a)
        cJSON_ArrayForEach(e, a)
        {
            const cJSON *q = cJSON_GetObjectItem(e, "question"), *an = cJSON_GetObjectItem(e, "answer");
            int nt = cJSON_GetObjectItem(e, "n_tiles")->valueint;
            const cJSON *ids = cJSON_GetObjectItem(e, "ids"), *mods = cJSON_GetObjectItem(e, "modality");
            int32_t *got = NULL;
            uint8_t *mod = NULL;
            int64_t n = 0;
            CHECK_MSG(vlmn_prompt_build(vlmn_llava_tokenizer(m), "internvl", q->valuestring,
                                        cJSON_IsString(an) ? an->valuestring : NULL,
                                        nt * vlmn_model_get_info(m)->n_image_tokens, &got, &mod, &n) == VLMN_OK,
                      "%s", vlmn_errmsg());
            CHECK_EQ_INT(n, cJSON_GetArraySize(ids));
            int bad = 0;
            for (int64_t i = 0; i < n && i < cJSON_GetArraySize(ids); i++) {
                const char *ms = cJSON_GetArrayItem(mods, (int)i)->valuestring;
                int want = !strcmp(ms, "image") ? VLMN_MOD_IMAGE : !strcmp(ms, "text") ? VLMN_MOD_TEXT : VLMN_MOD_PROMPT;
                if (got[i] != cJSON_GetArrayItem(ids, (int)i)->valueint || mod[i] != want) {
                    if (!bad) fprintf(stderr, "  position %lld: id %d (%d), reference %d (%s)\n", (long long)i, got[i],
                                      mod[i], cJSON_GetArrayItem(ids, (int)i)->valueint, ms);
                    bad++;
                }
            }
            CHECK_EQ_INT(bad, 0);
            vlmn_free(got);
            vlmn_free(mod);
            cases++;
        }
    CHECK_EQ_INT(cases, 3);
    cJSON_Delete(a);
    free(js);
    vlmn_model_free(m);
}

TEST_MAIN()
