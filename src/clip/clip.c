/* CLIPModel from a Hugging Face folder (config.json + safetensors): loading (weights to
 * float32, shapes checked against the config), the vision tower with MaskCLIP patch
 * embeddings, and the text tower on token ids, on the engine's kernels (vlmn_gemm,
 * vlmn_attention) and row ops (src/model/ops.h). HF CLIPModel semantics: pre-LN blocks,
 * q scaled by head_dim^-0.5, quick_gelu or erf gelu, causal text attention, EOT pooling.
 * Flow: folder -> [this] -> embeddings -> clip simulator / labels. See docs/clip.md. */
#include "vlmn/clip.h"
#include "vlmn/safetensors.h"
#include "vlmn/types.h"
#include "core/alloc.h"
#include "core/file.h"
#include "model/ops.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CLIP_MAX_DIM 16384
#define CLIP_MAX_LAYERS 256

typedef struct clayer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b;
    vlmn_matrix q, k, v, o, fc1, fc2;
} clayer;

typedef struct tower {
    int W, L, H, FF;
    float eps;
    bool gelu;  /* erf GELU, else quick_gelu */
    clayer *l;
} tower;

struct vlmn_clip {
    vlmn_clip_info info;
    vlmn_pool *pool;
    vlmn_precision prec;
    vlmn_st *st;
    const char *dir;
    tower v, t;
    float *class_embd, *v_pos, *pre_w, *pre_b, *post_w, *post_b; /* vision */
    vlmn_matrix patch, vproj;
    float *tok_embd, *t_pos, *fin_w, *fin_b;                     /* text */
    vlmn_matrix tproj;
    float **owned;
    int n_owned, cap_owned;
};

static vlmn_status nomem(const vlmn_clip *c) { return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", c->dir); }

static bool own(vlmn_clip *c, float *p)
{
    if (c->n_owned == c->cap_owned) {
        int cap = c->cap_owned ? c->cap_owned * 2 : 64;
        float **t = vlmn_realloc(c->owned, (size_t)cap * sizeof *t);
        if (!t) return false;
        c->owned = t;
        c->cap_owned = cap;
    }
    c->owned[c->n_owned++] = p;
    return true;
}

/* Tensor `name` of shape dims[nd] as float32 (owned by c). */
static vlmn_status get(vlmn_clip *c, const char *name, int nd, const int64_t *dims, float **out)
{
    const vlmn_st_tensor *t = vlmn_st_find(c->st, name);
    if (!t) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor %s missing", c->dir, name);
    bool ok = (int)t->n_dims == nd || (nd == 0 && t->n_dims == 1 && t->shape[0] == 1);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        ok = ok && (int64_t)t->shape[i] == dims[i];
        n *= dims[i];
    }
    if (!ok) {
        char want[128] = "", got[128] = "";
        for (int i = 0; i < nd; i++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "x" : "", (long long)dims[i]);
        for (uint32_t i = 0; i < t->n_dims; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? "x" : "", (unsigned long long)t->shape[i]);
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor %s is [%s], config says [%s]", c->dir, name, got, want);
    }
    float *p = vlmn_malloc_aligned((size_t)(n ? n : 1) * sizeof *p);
    if (!p || !own(c, p)) {
        vlmn_free_aligned(p);
        return nomem(c);
    }
    vlmn_status st = vlmn_dequant(t->type, t->data, p, n);
    if (st) return vlmn_error_prefix(st, "%s: tensor %s", c->dir, name);
    *out = p;
    return VLMN_OK;
}

static vlmn_status get_vec(vlmn_clip *c, const char *name, int64_t n, float **out)
{
    return get(c, name, 1, &n, out);
}

/* A weight matrix: F16 / BF16 stay as stored (a view into the mapping, as the engine
 * runs LLaVA's tower), F32 is copied. */
static vlmn_status get_mat(vlmn_clip *c, const char *name, int64_t rows, int64_t cols, vlmn_matrix *m)
{
    float *p;
    int64_t d[2] = {rows, cols};
    const vlmn_st_tensor *t = vlmn_st_find(c->st, name);
    if (t && t->type != VLMN_TYPE_F32 && t->n_dims == 2 && (int64_t)t->shape[0] == rows && (int64_t)t->shape[1] == cols) {
        vlmn_status st = vlmn_matrix_init(m, t->type, rows, cols, t->data);
        return st ? vlmn_error_prefix(st, "%s: %s", c->dir, name) : VLMN_OK;
    }
    vlmn_status st = get(c, name, 2, d, &p);
    if (st) return st;
    if ((st = vlmn_matrix_init(m, VLMN_TYPE_F32, rows, cols, p))) return vlmn_error_prefix(st, "%s: %s", c->dir, name);
    return VLMN_OK;
}

static vlmn_status load_tower(vlmn_clip *c, tower *tw, const char *prefix)
{
    tw->l = vlmn_calloc((size_t)tw->L, sizeof *tw->l);
    if (!tw->l) return nomem(c);
    char n[256];
    vlmn_status st;
    const int64_t W = tw->W, FF = tw->FF;
    for (int l = 0; l < tw->L; l++) {
        clayer *L = &tw->l[l];
#define P(s) (snprintf(n, sizeof n, "%s.encoder.layers.%d.%s", prefix, l, s), n)
        if ((st = get_vec(c, P("layer_norm1.weight"), W, &L->ln1_w)) || (st = get_vec(c, P("layer_norm1.bias"), W, &L->ln1_b)) ||
            (st = get_vec(c, P("layer_norm2.weight"), W, &L->ln2_w)) || (st = get_vec(c, P("layer_norm2.bias"), W, &L->ln2_b)) ||
            (st = get_mat(c, P("self_attn.q_proj.weight"), W, W, &L->q)) || (st = get_vec(c, P("self_attn.q_proj.bias"), W, &L->q_b)) ||
            (st = get_mat(c, P("self_attn.k_proj.weight"), W, W, &L->k)) || (st = get_vec(c, P("self_attn.k_proj.bias"), W, &L->k_b)) ||
            (st = get_mat(c, P("self_attn.v_proj.weight"), W, W, &L->v)) || (st = get_vec(c, P("self_attn.v_proj.bias"), W, &L->v_b)) ||
            (st = get_mat(c, P("self_attn.out_proj.weight"), W, W, &L->o)) ||
            (st = get_vec(c, P("self_attn.out_proj.bias"), W, &L->o_b)) ||
            (st = get_mat(c, P("mlp.fc1.weight"), FF, W, &L->fc1)) || (st = get_vec(c, P("mlp.fc1.bias"), FF, &L->fc1_b)) ||
            (st = get_mat(c, P("mlp.fc2.weight"), W, FF, &L->fc2)) || (st = get_vec(c, P("mlp.fc2.bias"), W, &L->fc2_b)))
            return st;
#undef P
    }
    return VLMN_OK;
}

static vlmn_status read_json(const char *dir, const char *name, bool required, cJSON **out)
{
    *out = NULL;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (!required && access(p, F_OK) != 0) return VLMN_OK;
    unsigned char *buf = NULL;
    size_t n = 0;
    vlmn_status st = vlmn_file_read(p, 4u << 20, "JSON config", &buf, &n);
    if (st) return st;
    *out = cJSON_ParseWithLength((const char *)buf, n);
    vlmn_free(buf);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return vlmn_error(VLMN_E_FORMAT, "%s: not a JSON object", p);
    }
    return VLMN_OK;
}

static vlmn_status cfg_int(const char *dir, const cJSON *o, const char *sect, const char *key, int dflt, int lo, int hi,
                           int *out)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) {
        if (dflt < lo) return vlmn_error(VLMN_E_FORMAT, "%s/config.json: %s.%s missing", dir, sect, key);
        *out = dflt;
        return VLMN_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return vlmn_error(VLMN_E_FORMAT, "%s/config.json: %s.%s is not an integer in %d..%d", dir, sect, key, lo, hi);
    *out = (int)v->valuedouble;
    return VLMN_OK;
}

static vlmn_status cfg_tower(const char *dir, const cJSON *o, const char *sect, tower *t, int dW, int dL, int dH, int dFF)
{
    vlmn_status st;
    if ((st = cfg_int(dir, o, sect, "hidden_size", dW, 1, CLIP_MAX_DIM, &t->W)) ||
        (st = cfg_int(dir, o, sect, "num_hidden_layers", dL, 1, CLIP_MAX_LAYERS, &t->L)) ||
        (st = cfg_int(dir, o, sect, "num_attention_heads", dH, 1, 1024, &t->H)) ||
        (st = cfg_int(dir, o, sect, "intermediate_size", dFF, 1, 4 * CLIP_MAX_DIM, &t->FF)))
        return st;
    if (t->W % t->H) return vlmn_error(VLMN_E_FORMAT, "%s/config.json: %s: hidden_size %d not divisible by %d heads", dir, sect, t->W, t->H);
    const cJSON *eps = o ? cJSON_GetObjectItemCaseSensitive(o, "layer_norm_eps") : NULL;
    t->eps = cJSON_IsNumber(eps) && eps->valuedouble > 0 && eps->valuedouble < 1 ? (float)eps->valuedouble : 1e-5f;
    const cJSON *act = o ? cJSON_GetObjectItemCaseSensitive(o, "hidden_act") : NULL;
    const char *a = cJSON_IsString(act) ? act->valuestring : "quick_gelu";
    if (!strcmp(a, "gelu")) t->gelu = true;
    else if (strcmp(a, "quick_gelu"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s/config.json: %s.hidden_act \"%s\" (quick_gelu or gelu)", dir, sect, a);
    return VLMN_OK;
}

vlmn_status vlmn_clip_load(const char *dir, vlmn_pool *pool, vlmn_precision prec, vlmn_clip **out)
{
    *out = NULL;
    vlmn_clip *c = vlmn_calloc(1, sizeof *c);
    if (!c) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
    c->dir = vlmn_strdup(dir);
    c->pool = pool;
    c->prec = prec;
    cJSON *cfg = NULL, *pre = NULL;
    vlmn_status st;
    vlmn_clip_info *I = &c->info;
    if (!c->dir) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
        goto fail;
    }
    if ((st = read_json(dir, "config.json", true, &cfg)) || (st = read_json(dir, "preprocessor_config.json", false, &pre)))
        goto fail;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (!cJSON_IsString(mt) || strcmp(mt->valuestring, "clip")) {
        st = vlmn_error(VLMN_E_UNSUPPORTED, "%s/config.json: model_type is not \"clip\" (a CLIPModel folder is needed)", dir);
        goto fail;
    }
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(cfg, "vision_config");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
    if ((st = cfg_tower(dir, vc, "vision_config", &c->v, 768, 12, 12, 3072)) ||
        (st = cfg_tower(dir, tc, "text_config", &c->t, 512, 12, 8, 2048)) ||
        (st = cfg_int(dir, vc, "vision_config", "image_size", 224, 1, 8192, &I->image_size)) ||
        (st = cfg_int(dir, vc, "vision_config", "patch_size", 32, 1, 8192, &I->patch_size)) ||
        (st = cfg_int(dir, tc, "text_config", "max_position_embeddings", 77, 1, 8192, &I->t_ctx)) ||
        (st = cfg_int(dir, tc, "text_config", "vocab_size", 49408, 1, 1 << 24, &I->t_vocab)) ||
        (st = cfg_int(dir, tc, "text_config", "eos_token_id", 2, 0, 1 << 24, &I->eos_token_id)) ||
        (st = cfg_int(dir, cfg, "config", "projection_dim", 512, 1, CLIP_MAX_DIM, &I->proj_dim)))
        goto fail;
    if (I->image_size % I->patch_size) {
        st = vlmn_error(VLMN_E_FORMAT, "%s/config.json: image_size %d not a multiple of patch_size %d", dir, I->image_size,
                        I->patch_size);
        goto fail;
    }
    I->grid = I->image_size / I->patch_size;
    I->v_width = c->v.W, I->v_layers = c->v.L, I->v_heads = c->v.H, I->v_ff = c->v.FF;
    I->t_width = c->t.W, I->t_layers = c->t.L, I->t_heads = c->t.H, I->t_ff = c->t.FF;
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, sd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memcpy(I->image_mean, mean, sizeof mean);
    memcpy(I->image_std, sd, sizeof sd);
    for (int k = 0; k < 2 && pre; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(pre, k ? "image_std" : "image_mean");
        if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3)
            for (int i = 0; i < 3; i++) {
                const cJSON *x = cJSON_GetArrayItem(a, i);
                if (cJSON_IsNumber(x) && (!k || x->valuedouble > 0)) (k ? I->image_std : I->image_mean)[i] = (float)x->valuedouble;
            }
    }
    if ((st = vlmn_st_open(dir, &c->st))) goto fail;
    const int64_t G = I->grid, P = I->patch_size, W = c->v.W, TW = c->t.W, D = I->proj_dim;
    int64_t cls_d[1] = {W}, patch_d[4] = {W, 3, P, P}, vpos_d[2] = {G * G + 1, W};
    float *pw;
    if ((st = get(c, "vision_model.embeddings.class_embedding", 1, cls_d, &c->class_embd)) ||
        (st = get(c, "vision_model.embeddings.patch_embedding.weight", 4, patch_d, &pw)) ||
        (st = get(c, "vision_model.embeddings.position_embedding.weight", 2, vpos_d, &c->v_pos)) ||
        (st = get_vec(c, "vision_model.pre_layrnorm.weight", W, &c->pre_w)) ||
        (st = get_vec(c, "vision_model.pre_layrnorm.bias", W, &c->pre_b)) ||
        (st = get_vec(c, "vision_model.post_layernorm.weight", W, &c->post_w)) ||
        (st = get_vec(c, "vision_model.post_layernorm.bias", W, &c->post_b)) ||
        (st = get_mat(c, "visual_projection.weight", D, W, &c->vproj)) || (st = load_tower(c, &c->v, "vision_model")))
        goto fail;
    if ((st = vlmn_matrix_init(&c->patch, VLMN_TYPE_F32, W, 3 * P * P, pw))) goto fail;
    int64_t tok_d[2] = {I->t_vocab, TW}, tpos_d[2] = {I->t_ctx, TW};
    if ((st = get(c, "text_model.embeddings.token_embedding.weight", 2, tok_d, &c->tok_embd)) ||
        (st = get(c, "text_model.embeddings.position_embedding.weight", 2, tpos_d, &c->t_pos)) ||
        (st = get_vec(c, "text_model.final_layer_norm.weight", TW, &c->fin_w)) ||
        (st = get_vec(c, "text_model.final_layer_norm.bias", TW, &c->fin_b)) ||
        (st = get_mat(c, "text_projection.weight", D, TW, &c->tproj)) || (st = load_tower(c, &c->t, "text_model")))
        goto fail;
    float *ls = NULL;
    I->logit_scale = NAN;
    if (vlmn_st_find(c->st, "logit_scale") && get(c, "logit_scale", 0, NULL, &ls) == VLMN_OK) I->logit_scale = exp(ls[0]);
    vlmn_clear_error();
    cJSON_Delete(cfg);
    cJSON_Delete(pre);
    *out = c;
    return VLMN_OK;
fail:
    cJSON_Delete(cfg);
    cJSON_Delete(pre);
    vlmn_clip_free(c);
    return st;
}

static void free_tower(tower *t)
{
    if (!t->l) return;
    for (int l = 0; l < t->L; l++) {
        clayer *L = &t->l[l];
        vlmn_matrix_release(&L->q), vlmn_matrix_release(&L->k), vlmn_matrix_release(&L->v);
        vlmn_matrix_release(&L->o), vlmn_matrix_release(&L->fc1), vlmn_matrix_release(&L->fc2);
    }
    vlmn_free(t->l);
}

void vlmn_clip_free(vlmn_clip *c)
{
    if (!c) return;
    free_tower(&c->v);
    free_tower(&c->t);
    vlmn_matrix_release(&c->patch);
    vlmn_matrix_release(&c->vproj);
    vlmn_matrix_release(&c->tproj);
    for (int i = 0; i < c->n_owned; i++) vlmn_free_aligned(c->owned[i]);
    vlmn_free(c->owned);
    vlmn_st_close(c->st);
    vlmn_free((char *)c->dir);
    vlmn_free(c);
}

const vlmn_clip_info *vlmn_clip_get_info(const vlmn_clip *c) { return &c->info; }

/* ---------------------------------------------------------------- forward */

typedef struct scratch {
    float *h, *q, *k, *v, *att, *ff;
} scratch;

static bool scratch_alloc(scratch *s, int64_t T, int64_t W, int64_t FF)
{
    s->h = vlmn_malloc_aligned((size_t)(T * W) * sizeof(float));
    s->q = vlmn_malloc_aligned((size_t)(T * W) * sizeof(float));
    s->k = vlmn_malloc_aligned((size_t)(T * W) * sizeof(float));
    s->v = vlmn_malloc_aligned((size_t)(T * W) * sizeof(float));
    s->att = vlmn_malloc_aligned((size_t)(T * W) * sizeof(float));
    s->ff = vlmn_malloc_aligned((size_t)(T * FF) * sizeof(float));
    return s->h && s->q && s->k && s->v && s->att && s->ff;
}

static void scratch_free(scratch *s)
{
    vlmn_free_aligned(s->h), vlmn_free_aligned(s->q), vlmn_free_aligned(s->k);
    vlmn_free_aligned(s->v), vlmn_free_aligned(s->att), vlmn_free_aligned(s->ff);
}

static void gemm(vlmn_clip *c, const vlmn_matrix *W, const float *A, int64_t M, float *C, bool acc)
{
    vlmn_gemm(c->pool, c->prec, W, A, M, W->cols, C, W->rows, acc);
}

/* Row ops split by rows over the pool (each row as the serial op computes it, so the
 * results do not depend on the thread count). */
enum { ROP_LN, ROP_BIAS, ROP_QGELU, ROP_GELU };

typedef struct rows_op {
    int op;
    const float *x;
    float *y;
    int64_t rows, n;
    const float *w, *b;
    float eps;
} rows_op;

static void rows_run(void *ctx, int ith, int nth)
{
    const rows_op *o = ctx;
    int64_t r0 = o->rows * ith / nth, r1 = o->rows * (ith + 1) / nth;
    if (r1 <= r0) return;
    float *y = o->y + r0 * o->n;
    switch (o->op) {
    case ROP_LN: op_layernorm(o->x + r0 * o->n, y, r1 - r0, o->n, o->n, o->w, o->b, o->eps); break;
    case ROP_BIAS: op_add_bias(y, r1 - r0, o->n, o->n, o->b); break;
    case ROP_QGELU: op_quick_gelu(y, (r1 - r0) * o->n); break;
    default: op_gelu_erf(y, (r1 - r0) * o->n); break;
    }
}

static void rows(vlmn_clip *c, int op, const float *x, float *y, int64_t n_rows, int64_t n, const float *w,
                 const float *b, float eps)
{
    rows_op o = {op, x, y, n_rows, n, w, b, eps};
    vlmn_pool_run(c->pool, rows_run, &o);
}

/* One pre-LN encoder block on x[T x W]. */
static void block(vlmn_clip *c, const tower *tw, const clayer *L, float *x, int64_t T, bool causal, scratch *s)
{
    const int64_t W = tw->W, FF = tw->FF, hd = W / tw->H;
    rows(c, ROP_LN, x, s->h, T, W, L->ln1_w, L->ln1_b, tw->eps);
    gemm(c, &L->q, s->h, T, s->q, false);
    gemm(c, &L->k, s->h, T, s->k, false);
    gemm(c, &L->v, s->h, T, s->v, false);
    rows(c, ROP_BIAS, NULL, s->q, T, W, NULL, L->q_b, 0);
    rows(c, ROP_BIAS, NULL, s->k, T, W, NULL, L->k_b, 0);
    rows(c, ROP_BIAS, NULL, s->v, T, W, NULL, L->v_b, 0);
    vlmn_attention(c->pool, s->q, W, s->k, W, s->v, W, s->att, W, T, tw->H, tw->H, (int)hd, 1.0f / sqrtf((float)hd),
                   causal);
    gemm(c, &L->o, s->att, T, x, true);
    rows(c, ROP_BIAS, NULL, x, T, W, NULL, L->o_b, 0);
    rows(c, ROP_LN, x, s->h, T, W, L->ln2_w, L->ln2_b, tw->eps);
    gemm(c, &L->fc1, s->h, T, s->ff, false);
    rows(c, ROP_BIAS, NULL, s->ff, T, FF, NULL, L->fc1_b, 0);
    rows(c, tw->gelu ? ROP_GELU : ROP_QGELU, NULL, s->ff, T, FF, NULL, NULL, 0);
    gemm(c, &L->fc2, s->ff, T, x, true);
    rows(c, ROP_BIAS, NULL, x, T, W, NULL, L->fc2_b, 0);
}

vlmn_status vlmn_clip_image(vlmn_clip *c, const float *px, float *image_embed, float *patch_embed)
{
    const vlmn_clip_info *I = &c->info;
    const int64_t G = I->grid, P = I->patch_size, S = I->image_size, W = c->v.W, NI = G * G, NP = NI + 1, K = 3 * P * P;
    scratch s;
    float *x = vlmn_malloc_aligned((size_t)(NP * W) * sizeof(float));
    float *pat = vlmn_malloc_aligned((size_t)(NI * K) * sizeof(float));
    if (!scratch_alloc(&s, NP, W, c->v.FF) || !x || !pat) {
        scratch_free(&s);
        vlmn_free_aligned(x);
        vlmn_free_aligned(pat);
        return nomem(c);
    }
    /* Conv2d(stride = kernel = P, no bias) as a GEMM over patches in [c][ky][kx] order */
    for (int64_t py = 0; py < G; py++)
        for (int64_t pxi = 0; pxi < G; pxi++) {
            float *dst = pat + (py * G + pxi) * K;
            for (int64_t ch = 0; ch < 3; ch++)
                for (int64_t ky = 0; ky < P; ky++)
                    memcpy(dst + (ch * P + ky) * P, px + (ch * S + py * P + ky) * S + pxi * P, (size_t)P * sizeof(float));
        }
    memcpy(x, c->class_embd, (size_t)W * sizeof(float));
    vlmn_gemm(c->pool, c->prec, &c->patch, pat, NI, K, x + W, W, false);
    for (int64_t i = 0; i < NP * W; i++) x[i] += c->v_pos[i];
    rows(c, ROP_LN, x, x, NP, W, c->pre_w, c->pre_b, c->v.eps);
    for (int l = 0; l < c->v.L - 1; l++) block(c, &c->v, &c->v.l[l], x, NP, false, &s);
    const clayer *last = &c->v.l[c->v.L - 1];
    if (patch_embed) {
        /* MaskCLIP: value path of the last block per patch, then post-LN + projection */
        rows(c, ROP_LN, x + W, s.h, NI, W, last->ln1_w, last->ln1_b, c->v.eps);
        gemm(c, &last->v, s.h, NI, s.v, false);
        rows(c, ROP_BIAS, NULL, s.v, NI, W, NULL, last->v_b, 0);
        gemm(c, &last->o, s.v, NI, s.q, false);
        rows(c, ROP_BIAS, NULL, s.q, NI, W, NULL, last->o_b, 0);
        rows(c, ROP_LN, s.q, s.q, NI, W, c->post_w, c->post_b, c->v.eps);
        gemm(c, &c->vproj, s.q, NI, patch_embed, false);
    }
    if (image_embed) {
        block(c, &c->v, last, x, NP, false, &s);
        op_layernorm(x, s.h, 1, W, W, c->post_w, c->post_b, c->v.eps);
        gemm(c, &c->vproj, s.h, 1, image_embed, false);
    }
    scratch_free(&s);
    vlmn_free_aligned(x);
    vlmn_free_aligned(pat);
    return VLMN_OK;
}

vlmn_status vlmn_clip_text(vlmn_clip *c, const int32_t *ids, int n, float *text_embed)
{
    const vlmn_clip_info *I = &c->info;
    if (n < 1 || n > I->t_ctx) return vlmn_error(VLMN_E_ARG, "clip text: %d tokens (1..%d)", n, I->t_ctx);
    int pooled = -1;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= I->t_vocab) return vlmn_error(VLMN_E_RANGE, "clip text: token id %d outside 0..%d", ids[i], I->t_vocab - 1);
        if (I->eos_token_id == 2) {
            if (pooled < 0 || ids[i] > ids[pooled]) pooled = i;
        } else if (pooled < 0 && ids[i] == I->eos_token_id) {
            pooled = i;
        }
    }
    if (pooled < 0) return vlmn_error(VLMN_E_ARG, "clip text: no end-of-text token (id %d) in the ids", I->eos_token_id);
    const int64_t W = c->t.W;
    scratch s;
    float *x = vlmn_malloc_aligned((size_t)(n * W) * sizeof(float));
    if (!scratch_alloc(&s, n, W, c->t.FF) || !x) {
        scratch_free(&s);
        vlmn_free_aligned(x);
        return nomem(c);
    }
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < W; j++) x[i * W + j] = c->tok_embd[(int64_t)ids[i] * W + j] + c->t_pos[i * W + j];
    for (int l = 0; l < c->t.L; l++) block(c, &c->t, &c->t.l[l], x, n, true, &s);
    op_layernorm(x + (int64_t)pooled * W, s.h, 1, W, W, c->fin_w, c->fin_b, c->t.eps);
    gemm(c, &c->tproj, s.h, 1, text_embed, false);
    scratch_free(&s);
    vlmn_free_aligned(x);
    return VLMN_OK;
}

void vlmn_clip_cosine(const float *emb, int n, int d, const float *t, float *sim)
{
    double tt = 0;
    for (int j = 0; j < d; j++) tt += (double)t[j] * t[j];
    for (int i = 0; i < n; i++) {
        const float *e = emb + (int64_t)i * d;
        double ee = 0, et = 0;
        for (int j = 0; j < d; j++) {
            ee += (double)e[j] * e[j];
            et += (double)e[j] * t[j];
        }
        sim[i] = ee > 0 && tt > 0 ? (float)(et / sqrt(ee * tt)) : 0.f;
    }
}

float vlmn_clip_calibrate(float cos) { return cos <= 0 ? 0.f : cos >= 1 ? 10.f : 10.f * cos; }
