/* Vision encoder (docs/engine.md), pixels [3 x S x S] -> [n_patches x width] over the
 * blocks the model selects (feature_layer), CLS dropped:
 * CLIP: HF CLIPVisionModel (CLIPVisionEmbeddings: conv patches without bias, CLS first,
 *   position embeddings 0..N; pre_layrnorm; pre-norm CLIPEncoderLayers, quick_gelu or
 *   erf GELU).
 * INTERN: InternViT (modeling_intern_vit.py, 300M: LayerNorm): conv patches with bias,
 *   CLS first, position embeddings 0..N (at the native size: no interpolation), no
 *   pre-LN; blocks x += ls1 * attn(norm1(x)) (packed qkv with bias, split by the
 *   converter), x += ls2 * fc2(GELU(fc1(norm2(x)))); no post-norm. */
#include "model/engine.h"

#include "core/alloc.h"
#include "model/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* clip.vision.feature_layer: HF `vision_feature_layer`, an index into hidden_states
 * (0 = pre-LN embeddings, k = after k blocks, negative counts from the end). */
static vlmn_status feature_layer(const vlmn_gguf *g, int n_stored, int *n_run)
{
    const char *path = vlmn_gguf_path(g);
    const char *key = "clip.vision.feature_layer";
    int64_t i = vlmn_gguf_find_key(g, key);
    *n_run = n_stored;
    if (i < 0) return VLMN_OK;
    int64_t fl;
    if (vlmn_gguf_kv_type(g, i) == VLMN_GGUF_ARRAY) {
        if (vlmn_gguf_arr_count(g, i) != 1)
            return vlmn_error(VLMN_E_UNSUPPORTED, "%s: key %s: %llu feature layers (only one is supported)", path,
                              key, (unsigned long long)vlmn_gguf_arr_count(g, i));
        float f;
        vlmn_status st = vlmn_gguf_get_arr_f32(g, key, &f, 1);
        if (st) return st;
        fl = (int64_t)f;
    } else {
        int32_t v;
        vlmn_status st = vlmn_gguf_get_i32(g, key, &v);
        if (st) return st;
        fl = v;
    }
    int64_t n = fl >= 0 ? fl : (int64_t)n_stored + 1 + fl;
    if (n < 0 || n > n_stored)
        return vlmn_error(VLMN_E_RANGE, "%s: key %s: %lld with %d stored blocks", path, key, (long long)fl, n_stored);
    *n_run = (int)n;
    return VLMN_OK;
}

vlmn_status vit_load(eng_vit *m, const vlmn_gguf *g, eng_vit_kind kind)
{
    const char *path = vlmn_gguf_path(g);
    vlmn_status st;
    char name[96];
    int n_stored, S;

    m->kind = kind;
    m->gelu = false;
    if (vlmn_gguf_find_key(g, "clip.use_gelu") >= 0 && (st = vlmn_gguf_get_bool(g, "clip.use_gelu", &m->gelu)))
        return st;
    if ((st = eng_get_int(g, "clip.vision.image_size", 1, ENG_MAX_IMAGE, &S)) ||
        (st = eng_get_int(g, "clip.vision.patch_size", 1, ENG_MAX_IMAGE, &m->patch)) ||
        (st = eng_get_int(g, "clip.vision.embedding_length", 1, ENG_MAX_DIM, &m->width)) ||
        (st = eng_get_int(g, "clip.vision.feed_forward_length", 1, ENG_MAX_DIM, &m->ff)) ||
        (st = eng_get_int(g, "clip.vision.attention.head_count", 1, ENG_MAX_HEADS, &m->n_head)) ||
        (st = eng_get_int(g, "clip.vision.block_count", 0, ENG_MAX_LAYERS, &n_stored)) ||
        (st = eng_get_float(g, "clip.vision.attention.layer_norm_epsilon", 1e-5f, 0.0f, 1.0f, &m->eps)))
        return st;
    if (S % m->patch)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: image_size %d not a multiple of patch_size %d", path, S, m->patch);
    if (m->width % m->n_head)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: embedding_length %d not a multiple of head_count %d", path,
                          m->width, m->n_head);
    if ((st = feature_layer(g, n_stored, &m->n_run))) return st;
    m->grid = S / m->patch;
    if ((int64_t)m->grid * m->grid > (1 << 20)) return vlmn_error(VLMN_E_RANGE, "%s: too many patches", path);
    m->n_pos = m->grid * m->grid + 1;
    m->image_size = S;
    m->n_patches = m->grid * m->grid;

    /* OpenAI CLIP normalisation unless the file says otherwise */
    static const float mean0[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std0[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memcpy(m->mean, mean0, sizeof mean0);
    memcpy(m->std, std0, sizeof std0);
    if (vlmn_gguf_find_key(g, "clip.vision.image_mean") >= 0 &&
        (st = vlmn_gguf_get_arr_f32(g, "clip.vision.image_mean", m->mean, 3)))
        return st;
    if (vlmn_gguf_find_key(g, "clip.vision.image_std") >= 0 &&
        (st = vlmn_gguf_get_arr_f32(g, "clip.vision.image_std", m->std, 3)))
        return st;
    for (int c = 0; c < 3; c++)
        if (!(m->std[c] > 0)) return vlmn_error(VLMN_E_RANGE, "%s: key clip.vision.image_std: values must be > 0", path);

    const int64_t W = m->width, FF = m->ff, P = m->patch;
    {
        uint64_t ne[4] = {(uint64_t)P, (uint64_t)P, 3, (uint64_t)W};
        const vlmn_gguf_tensor *t;
        if ((st = eng_get_tensor(g, "v.patch_embd.weight", 4, ne, &t))) return st;
        /* the conv kernel [width][3][P][P] is a [width x 3*P*P] matrix */
        if ((st = vlmn_matrix_init(&m->patch_w, t->type, W, 3 * P * P, t->data)))
            return vlmn_error_prefix(st, "%s: tensor v.patch_embd.weight", path);
    }
    {
        uint64_t ne[2] = {(uint64_t)W, (uint64_t)m->n_pos};
        if ((st = eng_load_vec(g, "v.class_embd", W, &m->class_embd)) ||
            (st = eng_load_f32(g, "v.position_embd.weight", 2, ne, &m->pos_embd)))
            return st;
        if (kind == VIT_CLIP && ((st = eng_load_vec(g, "v.pre_ln.weight", W, &m->pre_ln_w)) ||
                                 (st = eng_load_vec(g, "v.pre_ln.bias", W, &m->pre_ln_b))))
            return st;
        if (kind == VIT_INTERN && (st = eng_load_vec(g, "v.patch_embd.bias", W, &m->patch_b))) return st;
    }
    m->layers = vlmn_calloc((size_t)(m->n_run ? m->n_run : 1), sizeof *m->layers);
    if (!m->layers) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    for (int l = 0; l < m->n_run; l++) {
        vit_layer *L = &m->layers[l];
#define NM(s) (snprintf(name, sizeof name, "v.blk.%d." s, l), name)
        if ((st = eng_load_vec(g, NM("ln1.weight"), W, &L->ln1_w)) ||
            (st = eng_load_vec(g, NM("ln1.bias"), W, &L->ln1_b)) ||
            (st = eng_load_vec(g, NM("ln2.weight"), W, &L->ln2_w)) ||
            (st = eng_load_vec(g, NM("ln2.bias"), W, &L->ln2_b)) ||
            (st = eng_load_matrix(g, NM("attn_q.weight"), W, W, &L->q)) ||
            (st = eng_load_vec(g, NM("attn_q.bias"), W, &L->q_b)) ||
            (st = eng_load_matrix(g, NM("attn_k.weight"), W, W, &L->k)) ||
            (st = eng_load_vec(g, NM("attn_k.bias"), W, &L->k_b)) ||
            (st = eng_load_matrix(g, NM("attn_v.weight"), W, W, &L->v)) ||
            (st = eng_load_vec(g, NM("attn_v.bias"), W, &L->v_b)) ||
            (st = eng_load_matrix(g, NM("attn_out.weight"), W, W, &L->o)) ||
            (st = eng_load_vec(g, NM("attn_out.bias"), W, &L->o_b)))
            return st;
        /* Legacy llava converter stores CLIP's fc1 under ffn_down and fc2 under ffn_up;
         * newer files do not. fc1 is the one that takes `width` inputs. */
        const vlmn_gguf_tensor *dn = vlmn_gguf_find_tensor(g, NM("ffn_down.weight"));
        /* (when width == ff the shapes cannot tell; legacy is what LLaVA-1.5 files use) */
        bool legacy = W == FF || (dn && dn->ne[0] == (uint64_t)W && dn->ne[1] == (uint64_t)FF);
        const char *n1 = legacy ? "ffn_down" : "ffn_up", *n2 = legacy ? "ffn_up" : "ffn_down";
        char wn[96], bn[96];
        snprintf(wn, sizeof wn, "v.blk.%d.%s.weight", l, n1);
        snprintf(bn, sizeof bn, "v.blk.%d.%s.bias", l, n1);
        if ((st = eng_load_matrix(g, wn, FF, W, &L->fc1)) || (st = eng_load_vec(g, bn, FF, &L->fc1_b))) return st;
        snprintf(wn, sizeof wn, "v.blk.%d.%s.weight", l, n2);
        snprintf(bn, sizeof bn, "v.blk.%d.%s.bias", l, n2);
        if ((st = eng_load_matrix(g, wn, W, FF, &L->fc2)) || (st = eng_load_vec(g, bn, W, &L->fc2_b))) return st;
        if (kind == VIT_INTERN && ((st = eng_load_vec(g, NM("ls1.weight"), W, &L->ls1)) ||
                                   (st = eng_load_vec(g, NM("ls2.weight"), W, &L->ls2))))
            return st;
#undef NM
    }
    /* scratch depends only on the model: allocated once here */
    bool ok = true;
    const int64_t NP = m->n_pos;
    m->x = eng_scratch(NP, W, &ok);
    m->xn = eng_scratch(NP, W, &ok);
    m->q = eng_scratch(NP, W, &ok);
    m->k = eng_scratch(NP, W, &ok);
    m->v = eng_scratch(NP, W, &ok);
    m->att = eng_scratch(NP, W, &ok);
    m->ffb = eng_scratch(NP, m->ff, &ok);
    m->patches = eng_scratch(m->n_patches, 3LL * P * P, &ok);
    if (!ok) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for vision scratch buffers");
    return VLMN_OK;
}

void vit_free(eng_vit *m)
{
    if (m->layers) {
        for (int l = 0; l < m->n_run; l++) {
            vit_layer *L = &m->layers[l];
            float *vs[] = {L->ln1_w, L->ln1_b, L->ln2_w, L->ln2_b, L->q_b, L->k_b, L->v_b, L->o_b,
                           L->fc1_b, L->fc2_b, L->ls1, L->ls2};
            for (size_t i = 0; i < VLMN_ARRAY_LEN(vs); i++) vlmn_free(vs[i]);
            vlmn_matrix *ms[] = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2};
            for (size_t i = 0; i < VLMN_ARRAY_LEN(ms); i++) vlmn_matrix_release(ms[i]);
        }
        vlmn_free(m->layers);
    }
    vlmn_free(m->class_embd);
    vlmn_free(m->pos_embd);
    vlmn_free(m->pre_ln_w);
    vlmn_free(m->pre_ln_b);
    vlmn_free(m->patch_b);
    vlmn_matrix_release(&m->patch_w);
    float *sc[] = {m->x, m->xn, m->q, m->k, m->v, m->att, m->ffb, m->patches};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(sc); i++) vlmn_free_aligned(sc[i]);
    memset(m, 0, sizeof *m);
}

const float *vit_forward(eng_vit *m, const eng_ctx *c, const float *px)
{
    const int64_t W = m->width, NP = m->n_pos, NI = NP - 1, P = m->patch, G = m->grid;
    const int64_t S = G * P, K = 3 * P * P, hd = W / m->n_head;
    const float eps = m->eps;
    /* Conv2d(stride = kernel = P) as a GEMM over patches; patch rows in row-major grid
     * order, each laid out as the kernel: [c][ky][kx]. */
    for (int64_t py = 0; py < G; py++)
        for (int64_t pxi = 0; pxi < G; pxi++) {
            float *dst = m->patches + (py * G + pxi) * K;
            for (int64_t ch = 0; ch < 3; ch++)
                for (int64_t ky = 0; ky < P; ky++)
                    memcpy(dst + (ch * P + ky) * P, px + (ch * S + py * P + ky) * S + pxi * P, (size_t)P * sizeof(float));
        }
    /* CLS first (position 0), then the patches at positions 1..N */
    memcpy(m->x, m->class_embd, (size_t)W * sizeof(float));
    eng_vgemm(c, &m->patch_w, m->patches, NI, K, m->x + W, W, false);
    if (m->patch_b) eng_rows(c, EOP_BIAS, NULL, m->x + W, NI, W, NULL, m->patch_b, eps);
    for (int64_t i = 0; i < NP * W; i++) m->x[i] += m->pos_embd[i];
    if (m->pre_ln_w) op_layernorm(m->x, m->x, NP, W, W, m->pre_ln_w, m->pre_ln_b, eps);

    for (int l = 0; l < m->n_run; l++) {
        const vit_layer *L = &m->layers[l];
        eng_rows(c, EOP_LAYERNORM, m->x, m->xn, NP, W, L->ln1_w, L->ln1_b, eps);
        eng_vgemm(c, &L->q, m->xn, NP, W, m->q, W, false);
        eng_vgemm(c, &L->k, m->xn, NP, W, m->k, W, false);
        eng_vgemm(c, &L->v, m->xn, NP, W, m->v, W, false);
        eng_rows(c, EOP_BIAS, NULL, m->q, NP, W, NULL, L->q_b, eps);
        eng_rows(c, EOP_BIAS, NULL, m->k, NP, W, NULL, L->k_b, eps);
        eng_rows(c, EOP_BIAS, NULL, m->v, NP, W, NULL, L->v_b, eps);
        vlmn_attention(c->pool, m->q, W, m->k, W, m->v, W, m->att, W, NP, m->n_head, m->n_head, (int)hd,
                       1.0f / sqrtf((float)hd), false);
        if (L->ls1) { /* x += ls1 * (att Wo^T + b) */
            eng_vgemm(c, &L->o, m->att, NP, W, m->xn, W, false);
            eng_rows(c, EOP_BIAS, NULL, m->xn, NP, W, NULL, L->o_b, eps);
            eng_rows(c, EOP_LS_ADD, m->xn, m->x, NP, W, L->ls1, NULL, eps);
        } else {
            eng_vgemm(c, &L->o, m->att, NP, W, m->x, W, true);
            eng_rows(c, EOP_BIAS, NULL, m->x, NP, W, NULL, L->o_b, eps);
        }
        eng_rows(c, EOP_LAYERNORM, m->x, m->xn, NP, W, L->ln2_w, L->ln2_b, eps);
        eng_vgemm(c, &L->fc1, m->xn, NP, W, m->ffb, m->ff, false);
        eng_rows(c, EOP_BIAS, NULL, m->ffb, NP, m->ff, NULL, L->fc1_b, eps);
        eng_rows(c, m->gelu ? EOP_GELU_ERF : EOP_QUICK_GELU, NULL, m->ffb, NP, m->ff, NULL, NULL, eps);
        if (L->ls2) { /* x += ls2 * (fc2(h) + b) */
            eng_vgemm(c, &L->fc2, m->ffb, NP, m->ff, m->xn, W, false);
            eng_rows(c, EOP_BIAS, NULL, m->xn, NP, W, NULL, L->fc2_b, eps);
            eng_rows(c, EOP_LS_ADD, m->xn, m->x, NP, W, L->ls2, NULL, eps);
        } else {
            eng_vgemm(c, &L->fc2, m->ffb, NP, m->ff, m->x, W, true);
            eng_rows(c, EOP_BIAS, NULL, m->x, NP, W, NULL, L->fc2_b, eps);
        }
    }
    /* drop CLS; no post-LN (LLaVA reads hidden_states[select_layer], InternVL
     * last_hidden_state of an encoder without a final norm) */
    return m->x + W;
}
