/* Tests for src/makemodel: the BPE vocabulary (structure, reachability, round trip through
 * vlmn's tokenizer), the generated GGUF pairs (every key and tensor with its shape and
 * type, seeded determinism, the converter's Q/K row order), presets and option checks,
 * the planted model's neuron list and the generated dataset. */
#include "test.h"
#include "vlmn/gguf.h"
#include "vlmn/image.h"
#include "vlmn/makemodel.h"
#include "vlmn/tokenizer.h"
#include "vlmn/types.h"
#include "makemodel/makemodel_int.h"
#include "makemodel/palette.h"
#include "makemodel/vocab.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>

static bool same_bytes(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = test_read_file(a, &la), *y = test_read_file(b, &lb);
    bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static const char *tmp_prefix(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    mkdir(test_tmp_dir(), 0777);
    snprintf(b, sizeof buf[0], "%s/mm_%s", test_tmp_dir(), name);
    return b;
}

/* ---- vocabulary ------------------------------------------------------------------ */

TEST(vocab_layout)
{
    vlmn_mm_vocab *v = NULL;
    CHECK_EQ_INT(vlmn_mm_vocab_build(701, &v), VLMN_OK);
    if (!v) return;
    CHECK_EQ_INT(v->n, 701);
    CHECK_EQ_STR(v->pieces[0], "<unk>");
    CHECK_EQ_INT(v->types[0], 2);
    CHECK_EQ_STR(v->pieces[1], "<s>");
    CHECK_EQ_INT(v->types[1], 3);
    CHECK_EQ_STR(v->pieces[2], "</s>");
    CHECK_EQ_INT(v->types[2], 3);
    CHECK_EQ_STR(v->pieces[3], "<0x00>");
    CHECK_EQ_STR(v->pieces[3 + 0x0A], "<0x0A>");
    CHECK_EQ_STR(v->pieces[258], "<0xFF>");
    for (int i = 3; i < 259; i++) CHECK_EQ_INT(v->types[i], 6);
    /* merges then characters: normal, scores 0, -1, -2, ... like spm_train's BPE */
    for (int i = 259; i < v->n; i++) {
        CHECK_EQ_INT(v->types[i], 1);
        CHECK(v->scores[i] == -(float)(i - 259));
    }
    /* unique pieces */
    int dup = 0;
    for (int i = 0; i < v->n; i++)
        for (int j = i + 1; j < v->n; j++) dup += !strcmp(v->pieces[i], v->pieces[j]);
    CHECK_EQ_INT(dup, 0);
    /* every merged piece is the concatenation of two pieces that exist */
    int unreachable = 0;
    for (int i = 259; i < 259 + v->n_merges; i++) {
        const char *p = v->pieces[i];
        size_t len = strlen(p);
        bool ok = false;
        for (size_t cut = 1; cut < len && !ok; cut++) {
            char a[128], b[128];
            if (cut >= sizeof a || len - cut >= sizeof b) break;
            memcpy(a, p, cut);
            a[cut] = 0;
            strcpy(b, p + cut);
            int32_t ia = vlmn_mm_vocab_find(v, a), ib = vlmn_mm_vocab_find(v, b);
            ok = ia >= 259 && ib >= 259 && ia != i && ib != i;
        }
        unreachable += !ok;
    }
    CHECK_EQ_INT(unreachable, 0);
    /* no newline piece: "\n" goes through byte fallback, like LLaMA's vocabulary */
    CHECK_EQ_INT(vlmn_mm_vocab_find(v, "\n"), -1);
    /* the words of LLaVA's prompt and of the demo descriptions are single pieces */
    static const char *const words[] = {"\xe2\x96\x81" "red", "\xe2\x96\x81" "circle", "\xe2\x96\x81" "magenta",
                                        "\xe2\x96\x81" "triangle", "\xe2\x96\x81" "ASSISTANT", "\xe2\x96\x81" "USER",
                                        "\xe2\x96\x81" "image", "\xe2\x96\x81" "assistant"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        CHECK_MSG(vlmn_mm_vocab_find(v, words[i]) > 258, "%s", words[i]);
    vlmn_mm_vocab_free(v);
}

TEST(vocab_sizes)
{
    vlmn_mm_vocab *v = NULL;
    int32_t min = vlmn_mm_vocab_min_size();
    CHECK(min > 259);
    CHECK_EQ_INT(vlmn_mm_vocab_build(min - 1, &v), VLMN_E_ARG);
    CHECK(v == NULL);
    CHECK_EQ_INT(vlmn_mm_vocab_build(min, &v), VLMN_OK);
    if (v) CHECK_EQ_INT(v->n_merges, 0);
    vlmn_mm_vocab_free(v);
    /* 32000 (LLaVA-7B): corpus merges run out, padding merges fill the rest */
    CHECK_EQ_INT(vlmn_mm_vocab_build(32000, &v), VLMN_OK);
    if (!v) return;
    CHECK_EQ_INT(v->n, 32000);
    CHECK(v->n_corpus_merges < v->n_merges);
    CHECK_EQ_INT(259 + v->n_merges + (min - 259), 32000);
    vlmn_mm_vocab *w = NULL;
    CHECK_EQ_INT(vlmn_mm_vocab_build(32000, &w), VLMN_OK);
    if (w)
        for (int i = 0; i < 32000; i++) CHECK(!strcmp(v->pieces[i], w->pieces[i]));
    vlmn_mm_vocab_free(w);
    vlmn_mm_vocab_free(v);
}

/* ---- files ---------------------------------------------------------------------- */

static vlmn_status write_preset(const char *preset, uint32_t type, uint64_t seed, const char *prefix)
{
    vlmn_mm_config c;
    vlmn_status st = vlmn_mm_preset(preset, type, &c);
    if (st) return st;
    c.seed = seed;
    return vlmn_mm_write_random(&c, prefix, NULL, NULL);
}

static void check_tensor(const vlmn_gguf *g, const char *name, uint32_t type, uint32_t n_dims, uint64_t e0,
                         uint64_t e1, uint64_t e2, uint64_t e3)
{
    const vlmn_gguf_tensor *t = vlmn_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "missing tensor %s", name);
    if (!t) return;
    CHECK_MSG(t->type == type, "%s: type %u, want %u", name, t->type, type);
    CHECK_MSG(t->n_dims == n_dims, "%s: n_dims %u, want %u", name, t->n_dims, n_dims);
    CHECK_MSG(t->ne[0] == e0 && t->ne[1] == e1 && t->ne[2] == e2 && t->ne[3] == e3,
              "%s: ne [%llu %llu %llu %llu]", name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
              (unsigned long long)t->ne[2], (unsigned long long)t->ne[3]);
}

static uint32_t get_u32(const vlmn_gguf *g, const char *key)
{
    uint32_t v = 0;
    CHECK_MSG(vlmn_gguf_get_u32(g, key, &v) == VLMN_OK, "key %s", key);
    return v;
}

/* Every key and tensor of the pair, written out here independently of the generator's
 * own tensor list. */
static void check_pair(const char *prefix, uint32_t mat, int D, int H, int HKV, int F, int L, int V,
                       int S, int P, int E, int EH, int FF, int VL)
{
    char path[1100];
    vlmn_gguf *g = NULL;
    snprintf(path, sizeof path, "%s-text.gguf", prefix);
    CHECK_EQ_INT(vlmn_gguf_open(path, &g), VLMN_OK);
    if (!g) return;
    const char *s = NULL;
    CHECK_EQ_INT(vlmn_gguf_get_str(g, "general.architecture", &s), VLMN_OK);
    CHECK_EQ_STR(s, "llama");
    CHECK_EQ_INT(get_u32(g, "llama.embedding_length"), D);
    CHECK_EQ_INT(get_u32(g, "llama.block_count"), L);
    CHECK_EQ_INT(get_u32(g, "llama.feed_forward_length"), F);
    CHECK_EQ_INT(get_u32(g, "llama.attention.head_count"), H);
    CHECK_EQ_INT(get_u32(g, "llama.attention.head_count_kv"), HKV);
    CHECK_EQ_INT(get_u32(g, "llama.rope.dimension_count"), D / H);
    CHECK(get_u32(g, "llama.context_length") > 0);
    float eps = 0, base = 0;
    CHECK_EQ_INT(vlmn_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps), VLMN_OK);
    CHECK(eps > 0 && eps < 1e-3f);
    CHECK_EQ_INT(vlmn_gguf_get_f32(g, "llama.rope.freq_base", &base), VLMN_OK);
    CHECK(base == 10000.0f);
    CHECK_EQ_INT(vlmn_gguf_get_str(g, "tokenizer.ggml.model", &s), VLMN_OK);
    CHECK_EQ_STR(s, "llama");
    CHECK_EQ_INT(vlmn_gguf_arr_count(g, vlmn_gguf_find_key(g, "tokenizer.ggml.tokens")), V);
    CHECK_EQ_INT(vlmn_gguf_arr_type(g, vlmn_gguf_find_key(g, "tokenizer.ggml.scores")), VLMN_GGUF_F32);
    CHECK_EQ_INT(vlmn_gguf_arr_count(g, vlmn_gguf_find_key(g, "tokenizer.ggml.scores")), V);
    CHECK_EQ_INT(vlmn_gguf_arr_type(g, vlmn_gguf_find_key(g, "tokenizer.ggml.token_type")), VLMN_GGUF_I32);
    CHECK_EQ_INT(vlmn_gguf_arr_count(g, vlmn_gguf_find_key(g, "tokenizer.ggml.token_type")), V);
    CHECK_EQ_INT(get_u32(g, "tokenizer.ggml.bos_token_id"), 1);
    CHECK_EQ_INT(get_u32(g, "tokenizer.ggml.eos_token_id"), 2);
    CHECK_EQ_INT(get_u32(g, "tokenizer.ggml.unknown_token_id"), 0);
    bool b = false;
    CHECK(vlmn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == VLMN_OK && b);
    CHECK(vlmn_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) == VLMN_OK && !b);
    CHECK(vlmn_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b) == VLMN_OK && b);
    CHECK_EQ_INT(vlmn_gguf_n_tensors(g), 3 + 9 * L);
    const uint32_t F32 = VLMN_TYPE_F32;
    int hd = D / H;
    check_tensor(g, "token_embd.weight", mat, 2, D, V, 1, 1);
    check_tensor(g, "output_norm.weight", F32, 1, D, 1, 1, 1);
    check_tensor(g, "output.weight", mat, 2, D, V, 1, 1);
    for (int l = 0; l < L; l++) {
        char n[64];
#define BLK(suffix, ty, nd, a, b_)                                                      \
    snprintf(n, sizeof n, "blk.%d." suffix, l);                                         \
    check_tensor(g, n, ty, nd, a, b_, 1, 1)
        BLK("attn_norm.weight", F32, 1, D, 1);
        BLK("attn_q.weight", mat, 2, D, D);
        BLK("attn_k.weight", mat, 2, D, hd * HKV);
        BLK("attn_v.weight", mat, 2, D, hd * HKV);
        BLK("attn_output.weight", mat, 2, D, D);
        BLK("ffn_norm.weight", F32, 1, D, 1);
        BLK("ffn_gate.weight", mat, 2, D, F);
        BLK("ffn_up.weight", mat, 2, D, F);
        BLK("ffn_down.weight", mat, 2, F, D);
#undef BLK
    }
    vlmn_gguf_close(g);

    snprintf(path, sizeof path, "%s-mmproj.gguf", prefix);
    CHECK_EQ_INT(vlmn_gguf_open(path, &g), VLMN_OK);
    if (!g) return;
    CHECK_EQ_INT(vlmn_gguf_get_str(g, "general.architecture", &s), VLMN_OK);
    CHECK_EQ_STR(s, "clip");
    CHECK(vlmn_gguf_get_bool(g, "clip.has_llava_projector", &b) == VLMN_OK && b);
    CHECK(vlmn_gguf_get_bool(g, "clip.use_gelu", &b) == VLMN_OK && !b);
    CHECK_EQ_INT(vlmn_gguf_get_str(g, "clip.projector_type", &s), VLMN_OK);
    CHECK_EQ_STR(s, "mlp");
    CHECK_EQ_INT(get_u32(g, "clip.vision.image_size"), S);
    CHECK_EQ_INT(get_u32(g, "clip.vision.patch_size"), P);
    CHECK_EQ_INT(get_u32(g, "clip.vision.embedding_length"), E);
    CHECK_EQ_INT(get_u32(g, "clip.vision.feed_forward_length"), FF);
    CHECK_EQ_INT(get_u32(g, "clip.vision.attention.head_count"), EH);
    CHECK_EQ_INT(get_u32(g, "clip.vision.block_count"), VL);
    CHECK(get_u32(g, "clip.vision.projection_dim") > 0);
    CHECK_EQ_INT(vlmn_gguf_get_f32(g, "clip.vision.attention.layer_norm_epsilon", &eps), VLMN_OK);
    float mean[3] = {0}, std[3] = {0};
    CHECK_EQ_INT(vlmn_gguf_get_arr_f32(g, "clip.vision.image_mean", mean, 3), VLMN_OK);
    CHECK_EQ_INT(vlmn_gguf_get_arr_f32(g, "clip.vision.image_std", std, 3), VLMN_OK);
    CHECK_NEAR(mean[0], 0.48145466, 1e-7);
    CHECK_NEAR(std[2], 0.27577711, 1e-7);
    CHECK_EQ_INT(vlmn_gguf_n_tensors(g), 9 + 16 * VL);
    uint64_t n_pos = (uint64_t)(S / P) * (uint64_t)(S / P) + 1;
    check_tensor(g, "v.class_embd", F32, 1, E, 1, 1, 1);
    check_tensor(g, "v.patch_embd.weight", mat == VLMN_TYPE_Q8_0 ? VLMN_TYPE_F16 : mat, 4, P, P, 3, E);
    check_tensor(g, "v.position_embd.weight", mat, 2, E, n_pos, 1, 1);
    check_tensor(g, "v.pre_ln.weight", F32, 1, E, 1, 1, 1);
    check_tensor(g, "v.pre_ln.bias", F32, 1, E, 1, 1, 1);
    CHECK(vlmn_gguf_find_tensor(g, "v.post_ln.weight") == NULL);
    for (int l = 0; l < VL; l++) {
        char n[64];
#define VB(suffix, ty, nd, a, b_)                                                       \
    snprintf(n, sizeof n, "v.blk.%d." suffix, l);                                       \
    check_tensor(g, n, ty, nd, a, b_, 1, 1)
        VB("attn_q.weight", mat, 2, E, E);
        VB("attn_q.bias", F32, 1, E, 1);
        VB("attn_k.weight", mat, 2, E, E);
        VB("attn_k.bias", F32, 1, E, 1);
        VB("attn_v.weight", mat, 2, E, E);
        VB("attn_v.bias", F32, 1, E, 1);
        VB("attn_out.weight", mat, 2, E, E);
        VB("attn_out.bias", F32, 1, E, 1);
        VB("ln1.weight", F32, 1, E, 1);
        VB("ln1.bias", F32, 1, E, 1);
        VB("ln2.weight", F32, 1, E, 1);
        VB("ln2.bias", F32, 1, E, 1);
        /* legacy swap: fc1 [FF, E] under ffn_down, fc2 [E, FF] under ffn_up */
        VB("ffn_down.weight", mat, 2, E, FF);
        VB("ffn_down.bias", F32, 1, FF, 1);
        VB("ffn_up.weight", mat, 2, FF, E);
        VB("ffn_up.bias", F32, 1, E, 1);
#undef VB
    }
    snprintf(path, sizeof path, "v.blk.%d.attn_q.weight", VL);
    CHECK(vlmn_gguf_find_tensor(g, path) == NULL);
    check_tensor(g, "mm.0.weight", mat, 2, E, D, 1, 1);
    check_tensor(g, "mm.0.bias", F32, 1, D, 1, 1, 1);
    check_tensor(g, "mm.2.weight", mat, 2, D, D, 1, 1);
    check_tensor(g, "mm.2.bias", F32, 1, D, 1, 1, 1);
    vlmn_gguf_close(g);
}

TEST(tiny_files_all_types)
{
    static const uint32_t types[] = {VLMN_TYPE_F32, VLMN_TYPE_F16, VLMN_TYPE_BF16, VLMN_TYPE_Q8_0};
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "tiny_t%u", types[i]);
        const char *prefix = tmp_prefix(name);
        CHECK_EQ_INT(write_preset("tiny", types[i], 3, prefix), VLMN_OK);
        if (types[i] == VLMN_TYPE_Q8_0)
            check_pair(prefix, types[i], 96, 6, 2, 64, 3, 701, 42, 14, 64, 4, 96, 2);
        else
            check_pair(prefix, types[i], 80, 5, 1, 45, 3, 701, 42, 14, 40, 5, 56, 2);
    }
}

TEST(custom_sizes)
{
    vlmn_mm_config c;
    CHECK_EQ_INT(vlmn_mm_preset("tiny", VLMN_TYPE_F16, &c), VLMN_OK);
    c.n_embd = 24, c.n_head = 3, c.n_head_kv = 3, c.n_ff = 7, c.n_layer = 2, c.n_vocab = 400;
    c.v_size = 28, c.v_patch = 7, c.v_embd = 12, c.v_head = 2, c.v_ff = 20, c.v_layer = 3;
    const char *prefix = tmp_prefix("custom");
    CHECK_EQ_INT(vlmn_mm_write_random(&c, prefix, NULL, NULL), VLMN_OK);
    check_pair(prefix, VLMN_TYPE_F16, 24, 3, 3, 7, 2, 400, 28, 7, 12, 2, 20, 3);
}

TEST(same_seed_same_bytes)
{
    const char *a = tmp_prefix("seed_a"), *b = tmp_prefix("seed_b"), *c = tmp_prefix("seed_c");
    CHECK_EQ_INT(write_preset("tiny", VLMN_TYPE_BF16, 42, a), VLMN_OK);
    CHECK_EQ_INT(write_preset("tiny", VLMN_TYPE_BF16, 42, b), VLMN_OK);
    CHECK_EQ_INT(write_preset("tiny", VLMN_TYPE_BF16, 43, c), VLMN_OK);
    char pa[1100], pb[1100], pc[1100];
    for (int k = 0; k < 2; k++) {
        const char *suf = k ? "mmproj" : "text";
        snprintf(pa, sizeof pa, "%s-%s.gguf", a, suf);
        snprintf(pb, sizeof pb, "%s-%s.gguf", b, suf);
        snprintf(pc, sizeof pc, "%s-%s.gguf", c, suf);
        CHECK_MSG(same_bytes(pa, pb), "%s differs between runs with the same seed", suf);
        CHECK_MSG(!same_bytes(pa, pc), "%s equal for different seeds", suf);
    }
}

/* Stored Q/K rows are the HF rows in llama.cpp's converter order: the test permutes the
 * HF matrix itself, as numpy's reshape(n_head, 2, hd/2, -1).swapaxes(1, 2). */
TEST(qk_converter_permutation)
{
    const char *prefix = tmp_prefix("perm");
    CHECK_EQ_INT(write_preset("tiny", VLMN_TYPE_F32, 5, prefix), VLMN_OK);
    char path[1100];
    snprintf(path, sizeof path, "%s-text.gguf", prefix);
    vlmn_gguf *g = NULL;
    CHECK_EQ_INT(vlmn_gguf_open(path, &g), VLMN_OK);
    if (!g) return;
    static const struct { const char *name; int heads; } qk[] = {{"blk.1.attn_q.weight", 5}, {"blk.1.attn_k.weight", 1}};
    int mismatches = 0, permuted_rows = 0;
    for (int k = 0; k < 2; k++) {
        const vlmn_gguf_tensor *t = vlmn_gguf_find_tensor(g, qk[k].name);
        CHECK(t != NULL);
        if (!t) continue;
        mm_tensor hf = {0};
        snprintf(hf.name, sizeof hf.name, "%s", qk[k].name);
        hf.n_dims = 2, hf.ne[0] = t->ne[0], hf.ne[1] = t->ne[1], hf.ne[2] = hf.ne[3] = 1;
        hf.type = VLMN_TYPE_F32, hf.kind = MM_INIT_NORMAL, hf.std = 1.0f / sqrtf((float)t->ne[0]);
        uint64_t rows = t->ne[1], cols = t->ne[0], hd = rows / (uint64_t)qk[k].heads;
        float *row = malloc(cols * sizeof *row);
        for (uint64_t h = 0; h < (uint64_t)qk[k].heads; h++)
            for (uint64_t half = 0; half < 2; half++)
                for (uint64_t i = 0; i < hd / 2; i++) {
                    uint64_t hf_row = h * hd + half * (hd / 2) + i; /* [h][half][i] */
                    uint64_t stored = h * hd + i * 2 + half;        /* [h][i][half] */
                    vlmn_mm_random_row(&hf, 5, hf_row, row);
                    const float *got = (const float *)t->data + stored * cols;
                    mismatches += memcmp(got, row, cols * sizeof *row) != 0;
                    permuted_rows += stored != hf_row;
                }
        free(row);
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK(permuted_rows > 0);
    vlmn_gguf_close(g);
}

TEST(q8_0_values_close)
{
    /* Q8_0 and F32 files of the same seed and sizes hold the same values up to
     * quantisation error (d/2 per value). */
    vlmn_mm_config c;
    CHECK_EQ_INT(vlmn_mm_preset("tiny", VLMN_TYPE_Q8_0, &c), VLMN_OK);
    const char *pq = tmp_prefix("q8"), *pf = tmp_prefix("q8f");
    CHECK_EQ_INT(vlmn_mm_write_random(&c, pq, NULL, NULL), VLMN_OK);
    c.type = VLMN_TYPE_F32;
    CHECK_EQ_INT(vlmn_mm_write_random(&c, pf, NULL, NULL), VLMN_OK);
    char a[1100], b[1100];
    snprintf(a, sizeof a, "%s-text.gguf", pq);
    snprintf(b, sizeof b, "%s-text.gguf", pf);
    vlmn_gguf *gq = NULL, *gf = NULL;
    CHECK_EQ_INT(vlmn_gguf_open(a, &gq), VLMN_OK);
    CHECK_EQ_INT(vlmn_gguf_open(b, &gf), VLMN_OK);
    if (gq && gf) {
        const vlmn_gguf_tensor *tq = vlmn_gguf_find_tensor(gq, "blk.2.ffn_down.weight");
        const vlmn_gguf_tensor *tf = vlmn_gguf_find_tensor(gf, "blk.2.ffn_down.weight");
        CHECK(tq && tf && tq->type == VLMN_TYPE_Q8_0);
        if (tq && tf) {
            int64_t n = (int64_t)(tq->ne[0] * tq->ne[1]);
            float *dq = malloc((size_t)n * sizeof *dq);
            CHECK_EQ_INT(vlmn_dequant(VLMN_TYPE_Q8_0, tq->data, dq, n), VLMN_OK);
            const float *ref = tf->data;
            double worst = 0, amax = 0;
            for (int64_t i = 0; i < n; i++) {
                worst = fmax(worst, fabs(dq[i] - ref[i]));
                amax = fmax(amax, fabs(ref[i]));
            }
            CHECK(worst <= amax / 127.0 * 0.5 * 1.01 + 1e-6);
            CHECK(amax > 0);
            free(dq);
        }
    }
    vlmn_gguf_close(gq);
    vlmn_gguf_close(gf);
}

TEST(presets_and_validation)
{
    vlmn_mm_config c;
    CHECK_EQ_INT(vlmn_mm_preset("llava-7b", VLMN_TYPE_BF16, &c), VLMN_OK);
    CHECK_EQ_INT(c.n_embd, 4096);
    CHECK_EQ_INT(c.n_ff, 11008);
    CHECK_EQ_INT(c.n_layer, 32);
    CHECK_EQ_INT(c.n_head, 32);
    CHECK_EQ_INT(c.n_head_kv, 32);
    CHECK_EQ_INT(c.n_vocab, 32000);
    CHECK_EQ_INT(c.n_ctx, 4096);
    CHECK_EQ_INT(c.v_size, 336);
    CHECK_EQ_INT(c.v_patch, 14);
    CHECK_EQ_INT(c.v_embd, 1024);
    CHECK_EQ_INT(c.v_ff, 4096);
    CHECK_EQ_INT(c.v_layer, 23);
    CHECK_EQ_INT(c.v_head, 16);
    CHECK(c.rms_eps == 1e-5f && c.v_eps == 1e-5f);
    CHECK_EQ_INT(vlmn_mm_validate(&c), VLMN_OK);
    /* its text file: 6.74e9 parameters in bf16 */
    mm_tensor *t = NULL;
    int n = 0;
    CHECK_EQ_INT(vlmn_mm_tensor_list(&c, MM_TEXT, &t, &n), VLMN_OK);
    uint64_t params = 0;
    for (int i = 0; i < n; i++) params += t[i].ne[0] * t[i].ne[1] * t[i].ne[2] * t[i].ne[3];
    CHECK_EQ_INT(params, 6738415616LL);
    vlmn_free(t);

    CHECK_EQ_INT(vlmn_mm_preset("nope", VLMN_TYPE_F32, &c), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_mm_preset("tiny", VLMN_TYPE_F32, &c), VLMN_OK);
    c.n_head = 3; /* 80 % 3 */
    CHECK_EQ_INT(vlmn_mm_validate(&c), VLMN_E_ARG);
    CHECK(strstr(vlmn_errmsg(), "n-head") != NULL);
    CHECK_EQ_INT(vlmn_mm_preset("tiny", VLMN_TYPE_F32, &c), VLMN_OK);
    c.type = VLMN_TYPE_Q8_0; /* 80 and 45 are not multiples of 32 */
    CHECK_EQ_INT(vlmn_mm_validate(&c), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_mm_preset("tiny", VLMN_TYPE_F32, &c), VLMN_OK);
    c.v_size = 43;
    CHECK_EQ_INT(vlmn_mm_validate(&c), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_mm_preset("tiny", VLMN_TYPE_F32, &c), VLMN_OK);
    c.n_vocab = 100;
    CHECK_EQ_INT(vlmn_mm_validate(&c), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_mm_preset("tiny", VLMN_TYPE_Q4_0, &c), VLMN_OK);
    CHECK_EQ_INT(vlmn_mm_validate(&c), VLMN_E_ARG);
}

/* ---- tokenizer round trip -------------------------------------------------------- */

TEST(tiny_vocab_round_trips_corpus)
{
    const char *prefix = tmp_prefix("tok");
    CHECK_EQ_INT(write_preset("tiny", VLMN_TYPE_F32, 1, prefix), VLMN_OK);
    char path[1100];
    snprintf(path, sizeof path, "%s-text.gguf", prefix);
    vlmn_gguf *g = NULL;
    vlmn_tok *tok = NULL;
    CHECK_EQ_INT(vlmn_gguf_open(path, &g), VLMN_OK);
    if (g) CHECK_EQ_INT(vlmn_tok_from_gguf(g, &tok), VLMN_OK);
    if (!tok) {
        vlmn_gguf_close(g);
        return;
    }
    /* the whole corpus (newlines go through byte fallback), line by line and at once,
     * plus characters the corpus never saw */
    const char *corpus = vlmn_mm_corpus();
    static const char extra[] = "tab\there, euro \xe2\x82\xac, emoji \xf0\x9f\x90\xb6, {braces} & <tags>\n";
    const char *texts[3] = {corpus, extra, "The image shows a red circle. The red circle is large."};
    int64_t total_tokens = 0, total_bytes = 0;
    for (int k = 0; k < 3; k++) {
        int32_t *ids = NULL;
        int64_t n = 0;
        char *back = NULL;
        size_t blen = 0;
        CHECK_EQ_INT(vlmn_tok_encode(tok, texts[k], strlen(texts[k]), 0, &ids, &n), VLMN_OK);
        CHECK_EQ_INT(vlmn_tok_decode(tok, ids, n, &back, &blen), VLMN_OK);
        CHECK_MSG(back && blen == strlen(texts[k]) && !memcmp(back, texts[k], blen), "text %d does not round-trip", k);
        int unk = 0;
        for (int64_t i = 0; i < n; i++) unk += ids[i] == 0;
        CHECK_EQ_INT(unk, 0);
        if (k == 0) total_tokens = n, total_bytes = (int64_t)strlen(texts[k]);
        if (k == 2) /* ▁The ▁image ▁shows ▁a ▁red ▁circle . ▁The ▁red ▁circle ▁is ▁large . */
            CHECK_EQ_INT(n, 13);
        vlmn_free(ids);
        vlmn_free(back);
    }
    /* the merges do compress: far fewer tokens than bytes */
    CHECK(total_tokens * 3 < total_bytes);
    vlmn_tok_free(tok);
    vlmn_gguf_close(g);
}

/* ---- planted model and dataset --------------------------------------------------- */

TEST(planted_files)
{
    vlmn_mm_config c;
    CHECK_EQ_INT(vlmn_mm_preset("planted", VLMN_TYPE_F32, &c), VLMN_OK);
    c.seed = 9;
    const char *prefix = tmp_prefix("planted");
    CHECK_EQ_INT(vlmn_mm_write_planted(&c, prefix), VLMN_OK);
    check_pair(prefix, VLMN_TYPE_F32, 64, 4, 4, 64, 4, 1000, 224, 14, 32, 2, 64, 2);
    char path[1100];
    snprintf(path, sizeof path, "%s-planted.json", prefix);
    char *text = test_read_file(path, NULL);
    CHECK(text != NULL);
    cJSON *arr = text ? cJSON_Parse(text) : NULL;
    CHECK(cJSON_IsArray(arr));
    int counts[4] = {0};
    uint8_t seen[4][64] = {{0}};
    int dup = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        int layer = cJSON_GetObjectItem(e, "layer")->valueint, neuron = cJSON_GetObjectItem(e, "neuron")->valueint;
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));
        CHECK(layer >= 0 && layer < 4 && neuron >= 0 && neuron < 64);
        if (layer < 0 || layer >= 4 || neuron < 0 || neuron >= 64 || !type) continue;
        dup += seen[layer][neuron]++;
        if (!strcmp(type, "visual")) counts[0]++;
        else if (!strcmp(type, "text")) counts[1]++;
        else if (!strcmp(type, "multimodal")) counts[2]++;
        else if (!strcmp(type, "unknown")) counts[3]++;
    }
    CHECK_EQ_INT(dup, 0);
    for (int k = 0; k < 4; k++) CHECK_EQ_INT(counts[k], 8);
    cJSON_Delete(arr);
    free(text);
    /* sizes the construction depends on are fixed */
    c.n_embd = 128, c.n_head = 8, c.n_head_kv = 8;
    CHECK_EQ_INT(vlmn_mm_write_planted(&c, prefix), VLMN_E_ARG);
    /* a vocabulary too small to hold the chosen words as single pieces */
    CHECK_EQ_INT(vlmn_mm_preset("planted", VLMN_TYPE_F32, &c), VLMN_OK);
    c.n_vocab = vlmn_mm_vocab_min_size();
    CHECK_EQ_INT(vlmn_mm_write_planted(&c, prefix), VLMN_E_ARG);
}

static int count_word(const char *text, const char *word)
{
    int n = 0;
    size_t wl = strlen(word);
    for (const char *p = text; (p = strstr(p, word)); p += wl)
        if ((p == text || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '.' || p[wl] == ',')) n++;
    return n;
}

TEST(dataset_json_layout)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", tmp_prefix("ds"));
    CHECK_EQ_INT(vlmn_mm_make_dataset(dir, 24, 5, VLMN_MM_JSON), VLMN_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/data.json", dir);
    char *text = test_read_file(path, NULL);
    snprintf(path, sizeof path, "%s/shapes.json", dir);
    char *shapes_text = test_read_file(path, NULL);
    cJSON *data = text ? cJSON_Parse(text) : NULL, *shapes = shapes_text ? cJSON_Parse(shapes_text) : NULL;
    CHECK(cJSON_IsArray(data) && cJSON_GetArraySize(data) == 24);
    CHECK(cJSON_IsArray(shapes) && cJSON_GetArraySize(shapes) == 24);
    for (int i = 0; data && shapes && i < cJSON_GetArraySize(data); i++) {
        cJSON *e = cJSON_GetArrayItem(data, i), *s = cJSON_GetArrayItem(shapes, i);
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(e, "id"));
        const char *image = cJSON_GetStringValue(cJSON_GetObjectItem(e, "image"));
        cJSON *conv = cJSON_GetObjectItem(e, "conversations");
        CHECK(id && image && cJSON_GetArraySize(conv) == 2);
        if (!id || !image || cJSON_GetArraySize(conv) != 2) continue;
        cJSON *h = cJSON_GetArrayItem(conv, 0), *gpt = cJSON_GetArrayItem(conv, 1);
        CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(h, "from")), "human");
        CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(h, "value")), "<image>\nDescribe the image in detail.");
        CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(gpt, "from")), "gpt");
        const char *desc = cJSON_GetStringValue(cJSON_GetObjectItem(gpt, "value"));
        CHECK(desc != NULL);
        /* the image decodes, with the documented size range */
        snprintf(path, sizeof path, "%s/%s", dir, image);
        vlmn_image *im = NULL;
        CHECK_EQ_INT(vlmn_img_load(path, &im), VLMN_OK);
        if (im) {
            CHECK(im->w >= 64 && im->w <= 200 && im->h >= 64 && im->h <= 200);
            CHECK(im->w * 2 <= im->h * 3 && im->h * 2 <= im->w * 3);
        }
        /* every drawn colour and shape is named at least 3 times, and each drawn shape
         * covers enough patches; pixels of each colour are really there */
        cJSON *sh;
        cJSON_ArrayForEach(sh, cJSON_GetObjectItem(s, "shapes")) {
            const char *col = cJSON_GetStringValue(cJSON_GetObjectItem(sh, "color"));
            const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(sh, "shape"));
            CHECK(col && kind && desc);
            if (!col || !kind || !desc) continue;
            CHECK_MSG(count_word(desc, col) >= 3, "%s: '%s' named %d times", id, col, count_word(desc, col));
            CHECK_MSG(count_word(desc, kind) >= 3, "%s: '%s' named %d times", id, kind, count_word(desc, kind));
            CHECK(cJSON_GetObjectItem(sh, "full_cells_16x16")->valueint >= 12);
            const uint8_t *rgb = NULL;
            for (int c = 0; c < MM_N_FEATURE_COLOURS; c++)
                if (!strcmp(col, mm_feature_colours[c].name)) rgb = mm_feature_colours[c].rgb;
            long hits = 0;
            for (int p = 0; rgb && im && p < im->w * im->h; p++) hits += !memcmp(im->rgb + 3 * p, rgb, 3);
            if (rgb && im) CHECK_MSG(hits * 20 >= (long)im->w * im->h, "%s: %s covers %ld pixels", id, col, hits);
        }
        vlmn_img_free(im);
    }
    cJSON_Delete(data);
    cJSON_Delete(shapes);
    free(shapes_text);

    /* same seed: same bytes; JSONL carries the same descriptions */
    char dir2[1100];
    snprintf(dir2, sizeof dir2, "%s", tmp_prefix("ds2"));
    CHECK_EQ_INT(vlmn_mm_make_dataset(dir2, 24, 5, VLMN_MM_JSONL), VLMN_OK);
    snprintf(path, sizeof path, "%s/data.jsonl", dir2);
    char *jl = test_read_file(path, NULL);
    CHECK(jl != NULL);
    int lines = 0;
    for (char *p = jl, *nl; p && *p; p = nl + 1) {
        nl = strchr(p, '\n');
        CHECK(nl != NULL);
        if (!nl) break;
        *nl = 0;
        cJSON *o = cJSON_Parse(p);
        CHECK(o && cJSON_GetObjectItem(o, "id") && cJSON_GetObjectItem(o, "image"));
        CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "question")), "Describe the image in detail.");
        const char *ans = cJSON_GetStringValue(cJSON_GetObjectItem(o, "answer"));
        CHECK(ans && text && strstr(text, ans));
        cJSON_Delete(o);
        lines++;
    }
    CHECK_EQ_INT(lines, 24);
    free(jl);
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/images/planted-000017.png", dir);
    snprintf(b, sizeof b, "%s/images/planted-000017.png", dir2);
    CHECK(same_bytes(a, b));
    free(text);
    CHECK_EQ_INT(vlmn_mm_make_dataset(dir, 0, 5, VLMN_MM_JSON), VLMN_E_ARG);
}

TEST_MAIN()
