/* Hugging Face folders (tests/data/hf/, written by tests/reference/make_hf_fixture.py from
 * the GGUF pairs of tests/data/engine/): the folder and its GGUF pair give IDENTICAL
 * activations and logits (bit for bit, both precisions) and both match the float64
 * reference (llava_ref.py) within the engine's bounds (1e-4 exact, 1e-2 fast). Covers old
 * and new HF tensor names, two shards, the CLIP block the legacy mmproj lacks (unused at
 * vision_feature_layer -2), tokenizer.model, and the one-line errors for unsupported
 * layouts. */
#include "model/model_fixture.h"

#include "vlmn/gguf.h"
#include "vlmn/model.h"
#include "vlmn/npy.h"
#include "vlmn/tokenizer.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#define EXACT_TOL 1e-4
#define FAST_TOL 1e-2

static vlmn_npy *load_npy(const char *name)
{
    vlmn_npy *a = NULL;
    if (vlmn_npy_read(test_path(test_data_dir(), name), &a)) fprintf(stderr, "  cannot read %s: %s\n", name, vlmn_errmsg());
    return a;
}

static vlmn_llava *load(const char *name, bool hf, vlmn_precision prec)
{
    char t[64], mm[64];
    vlmn_llava_params p = {.n_threads = 2, .precision = prec};
    vlmn_llava *m = NULL;
    vlmn_status st;
    if (hf) {
        snprintf(t, sizeof t, "hf/llava-%s", name);
        st = vlmn_llava_load(test_path(test_data_dir(), t), NULL, &p, &m);
    } else {
        snprintf(t, sizeof t, "engine/%s.text.gguf", name);
        snprintf(mm, sizeof mm, "engine/%s.mmproj.gguf", name);
        char tp[1024];
        snprintf(tp, sizeof tp, "%s", test_path(test_data_dir(), t));
        st = vlmn_llava_load(tp, test_path(test_data_dir(), mm), &p, &m);
    }
    CHECK_MSG(st == VLMN_OK, "load %s (%s): %s", name, hf ? "hf" : "gguf", vlmn_errmsg());
    return m;
}

typedef struct sink { float *acts; int64_t T, FF; int calls; } sink;

static void on_capture(void *user, int layer, const float *a, int64_t T, int64_t FF)
{
    sink *s = user;
    s->calls++;
    if (T == s->T && FF == s->FF) memcpy(s->acts + (int64_t)layer * T * FF, a, (size_t)(T * FF) * sizeof(float));
}

/* Activations [L x T x FF] and the last 2 logits of one model on ids_v1 + the wide image. */
static bool run(vlmn_llava *m, const vlmn_npy *ids, const vlmn_npy *pix, float *acts, float *logits, int64_t n_logits)
{
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    sink s = {.acts = acts, .T = (int64_t)ids->count, .FF = in->n_ff};
    vlmn_forward_opts o = {.capture = on_capture, .capture_user = &s, .hook = VLMN_HOOK_SILU_GATE,
                           .logits = logits, .n_logits = n_logits};
    vlmn_status st = vlmn_llava_forward(m, ids->data, (int64_t)ids->count, pix->data, &o);
    CHECK_MSG(st == VLMN_OK, "%s", vlmn_errmsg());
    CHECK_EQ_INT(s.calls, in->n_layer);
    return st == VLMN_OK && s.calls == in->n_layer;
}

static void same_as_gguf_and_reference(const char *name, vlmn_precision prec)
{
    char gn[64], ln[64];
    snprintf(gn, sizeof gn, "engine/%s_v1_silu.npy", name);
    snprintf(ln, sizeof ln, "engine/%s_v1_logits.npy", name);
    vlmn_npy *ids = load_npy("engine/ids_v1.npy"), *pix = load_npy("engine/pixels_wide.npy");
    vlmn_npy *gold = load_npy(gn), *lg = load_npy(ln);
    vlmn_llava *mg = load(name, false, prec), *mh = load(name, true, prec);
    CHECK(ids && pix && gold && lg && mg && mh);
    if (!ids || !pix || !gold || !lg || !mg || !mh) goto out;
    const vlmn_llava_info *ig = vlmn_llava_get_info(mg), *ih = vlmn_llava_get_info(mh);
    CHECK_EQ_INT(ih->n_layer, ig->n_layer);
    CHECK_EQ_INT(ih->n_ff, ig->n_ff);
    CHECK_EQ_INT(ih->n_vocab, ig->n_vocab);
    CHECK_EQ_INT(ih->n_image_tokens, ig->n_image_tokens);
    CHECK(!memcmp(ih->image_mean, ig->image_mean, sizeof ih->image_mean));
    CHECK(!memcmp(ih->image_std, ig->image_std, sizeof ih->image_std));
    /* the tokenizer from tokenizer.model is the one from the GGUF vocabulary */
    const struct vlmn_tok *tg = vlmn_llava_tokenizer(mg), *th = vlmn_llava_tokenizer(mh);
    CHECK_EQ_INT(vlmn_tok_n_vocab(th), vlmn_tok_n_vocab(tg));
    const char *txt = "Describe the image: two cats, 42 birds.";
    int32_t *a = NULL, *b = NULL;
    int64_t na = 0, nb = 0;
    CHECK_EQ_INT(vlmn_tok_encode(tg, txt, strlen(txt), VLMN_TOK_BOS, &a, &na), VLMN_OK);
    CHECK_EQ_INT(vlmn_tok_encode(th, txt, strlen(txt), VLMN_TOK_BOS, &b, &nb), VLMN_OK);
    CHECK(na == nb && na > 0 && !memcmp(a, b, (size_t)na * sizeof *a));
    free(a);
    free(b);
    if (ih->n_ff != ig->n_ff || ih->n_layer != ig->n_layer) goto out;

    int64_t n = (int64_t)gold->count, nl = lg->shape[0];
    float *ag = calloc((size_t)n, sizeof(float)), *ah = calloc((size_t)n, sizeof(float));
    float *lgg = calloc(lg->count, sizeof(float)), *lgh = calloc(lg->count, sizeof(float));
    if (run(mg, ids, pix, ag, lgg, nl) && run(mh, ids, pix, ah, lgh, nl)) {
        CHECK_MSG(!memcmp(ag, ah, (size_t)n * sizeof(float)), "%s %s: HF and GGUF activations differ", name,
                  vlmn_precision_name(prec));
        CHECK_MSG(!memcmp(lgg, lgh, lg->count * sizeof(float)), "%s: HF and GGUF logits differ", name);
        double tol = prec == VLMN_PREC_EXACT ? EXACT_TOL : FAST_TOL;
        int64_t blk = n / ig->n_layer;
        fprintf(stderr, "  %-5s %-6s", name, vlmn_precision_name(prec));
        for (int l = 0; l < ig->n_layer; l++) {
            double e = mfx_rel_err(ah + l * blk, (const float *)gold->data + l * blk, blk);
            fprintf(stderr, " L%d %.2e", l, e);
            CHECK_MSG(e <= tol, "%s layer %d: error %.3e > %.0e", name, l, e, tol);
        }
        double e = mfx_rel_err(lgh, lg->data, (int64_t)lg->count);
        fprintf(stderr, " logits %.2e\n", e);
        CHECK_MSG(e <= tol, "%s logits: error %.3e > %.0e", name, e, tol);
    }
    free(ag);
    free(ah);
    free(lgg);
    free(lgh);
out:
    vlmn_llava_free(mg);
    vlmn_llava_free(mh);
    vlmn_npy_free(ids);
    vlmn_npy_free(pix);
    vlmn_npy_free(gold);
    vlmn_npy_free(lg);
}

TEST(f32_legacy_names) { same_as_gguf_and_reference("f32", VLMN_PREC_EXACT); same_as_gguf_and_reference("f32", VLMN_PREC_FAST); }
TEST(f16_new_names) { same_as_gguf_and_reference("f16", VLMN_PREC_EXACT); same_as_gguf_and_reference("f16", VLMN_PREC_FAST); }
TEST(bf16_two_shards) { same_as_gguf_and_reference("bf16", VLMN_PREC_EXACT); same_as_gguf_and_reference("bf16", VLMN_PREC_FAST); }

/* The views hold the folder's stored bytes in their stored type; Q is the converter's
 * permutation of the HF rows; the last CLIP block is there but not run. */
TEST(views_hold_the_stored_bytes)
{
    vlmn_gguf *t = NULL, *v = NULL;
    CHECK_EQ_INT(vlmn_hf_llava_open(test_path(test_data_dir(), "hf/llava-bf16"), &t, &v), VLMN_OK);
    if (!t || !v) return;
    const vlmn_gguf_tensor *up = vlmn_gguf_find_tensor(t, "blk.1.ffn_up.weight");
    const vlmn_gguf_tensor *q = vlmn_gguf_find_tensor(t, "blk.1.attn_q.weight");
    CHECK(up && q);
    CHECK(up && up->type == VLMN_TYPE_BF16 && up->ne[0] == 80 && up->ne[1] == 45);
    CHECK(vlmn_gguf_find_tensor(v, "v.blk.3.attn_q.weight") != NULL); /* the 4th block is there */
    int64_t fl = 0;
    CHECK_EQ_INT(vlmn_gguf_get_i64(v, "clip.vision.feature_layer", &fl), VLMN_OK);
    CHECK_EQ_INT(fl, -2);
    /* Q is the converter's permutation of the HF rows */
    vlmn_gguf *g = NULL;
    CHECK_EQ_INT(vlmn_gguf_open(test_path(test_data_dir(), "engine/bf16.text.gguf"), &g), VLMN_OK);
    if (g && q) {
        const vlmn_gguf_tensor *gq = vlmn_gguf_find_tensor(g, "blk.1.attn_q.weight");
        CHECK(gq && gq->nbytes == q->nbytes && !memcmp(gq->data, q->data, q->nbytes));
        const vlmn_gguf_tensor *gu = vlmn_gguf_find_tensor(g, "blk.1.ffn_up.weight");
        CHECK(up && gu && gu->nbytes == up->nbytes && !memcmp(gu->data, up->data, up->nbytes));
    }
    vlmn_gguf_close(g);
    vlmn_gguf_close(t);
    vlmn_gguf_close(v);
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char *tmpdir(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/hf_%s", getenv("VLMN_TMP") ? getenv("VLMN_TMP") : "/tmp", name);
    mkdir(p, 0755);
    return p;
}

static void load_fails(const char *dir, vlmn_status want, const char *frag)
{
    vlmn_llava *m = NULL;
    vlmn_llava_params p = {.n_threads = 1};
    vlmn_status st = vlmn_llava_load(dir, NULL, &p, &m);
    CHECK_MSG(st == want, "status %d want %d: %s", (int)st, (int)want, vlmn_errmsg());
    CHECK(m == NULL);
    CHECK_MSG(strstr(vlmn_errmsg(), frag) && !strchr(vlmn_errmsg(), '\n'), "message: %s", vlmn_errmsg());
}

TEST(unsupported_layouts)
{
    const char *d = tmpdir("orig");
    put(d, "config.json", "{\"architectures\":[\"LlavaLlamaForCausalLM\"],\"mm_vision_tower\":\"openai/clip-vit-large-patch14-336\"}");
    load_fails(d, VLMN_E_UNSUPPORTED, "config.json: mm_projector_type \"linear\" not supported (only mlp2x_gelu)");
    /* the original layout as liuhaotian ships it: PyTorch pickles only */
    put(d, "config.json", "{\"architectures\":[\"LlavaLlamaForCausalLM\"],\"mm_projector_type\":\"mlp2x_gelu\"}");
    put(d, "pytorch_model-00001-of-00002.bin", "not a pickle");
    load_fails(d, VLMN_E_UNSUPPORTED, "hf_orig: only PyTorch pickles (pytorch_model*.bin), which vlmn does not read: convert");
    d = tmpdir("ivl");
    put(d, "config.json", "{\"architectures\":[\"InternVLChatModel\"]}");
    load_fails(d, VLMN_E_UNSUPPORTED, "InternVL is not yet supported");
    load_fails(test_path(test_data_dir(), "hf/clip"), VLMN_E_UNSUPPORTED, "CLIPModel: a CLIP model, not a LLaVA");
    d = tmpdir("badjson");
    put(d, "config.json", "{\"architectures\":");
    load_fails(d, VLMN_E_FORMAT, "config.json: not a JSON object");
    d = tmpdir("noarch");
    put(d, "config.json", "{}");
    load_fails(d, VLMN_E_FORMAT, "no architectures entry");
    d = tmpdir("noweights");
    put(d, "config.json", "{\"architectures\":[\"LlavaForConditionalGeneration\"]}");
    load_fails(d, VLMN_E_NOTFOUND, "no model.safetensors.index.json or model.safetensors");
    /* an --mmproj next to a folder */
    vlmn_llava *m = NULL;
    CHECK_EQ_INT(vlmn_llava_load(test_path(test_data_dir(), "hf/llava-f32"), "x.gguf", NULL, &m), VLMN_E_ARG);
}

TEST_MAIN()
