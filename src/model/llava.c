/* LLaVA-1.5 engine: loads a llama.cpp-layout GGUF pair (text `llama` + `clip` mmproj),
 * checks every tensor, and runs the forward pass with HF transformers semantics
 * (CLIPVisionModel -> LlavaMultiModalProjector -> LlamaModel), handing the FFN
 * activations of every layer to a capture callback. Flow: tokens/pixels -> [this] -> hook. */
#include "vlmn/model.h"
#include "vlmn/gguf.h"
#include "vlmn/tokenizer.h"

#include "core/alloc.h"
#include "model/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sanity bounds on hyperparameters read from files (untrusted input). */
#define LLAVA_MAX_DIM (1 << 20)
#define LLAVA_MAX_LAYERS 1024
#define LLAVA_MAX_HEADS 4096
#define LLAVA_MAX_IMAGE 8192

typedef struct text_layer {
    float *attn_norm, *ffn_norm;           /* [n_embd] */
    vlmn_matrix wq, wk, wv, wo;            /* [n_embd|kv_dim x n_embd], wo [n_embd x n_embd] */
    vlmn_matrix gate, up, down;            /* [n_ff x n_embd], down [n_embd x n_ff] */
    /* q|k|v and gate|up as one matrix when the file stores them back to back with the
     * same type (one GEMM pass over the activations, see fuse_rows) */
    vlmn_matrix qkv, gu;
    bool has_qkv, has_gu;
} text_layer;

typedef struct vis_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;  /* [width] */
    vlmn_matrix q, k, v, o;                /* [width x width] */
    float *q_b, *k_b, *v_b, *o_b;          /* [width] */
    vlmn_matrix fc1, fc2;                  /* [ff x width], [width x ff] */
    float *fc1_b, *fc2_b;                  /* [ff], [width] */
} vis_layer;

struct vlmn_llava {
    vlmn_gguf *gt, *gv;
    vlmn_pool *pool;
    vlmn_precision prec;
    vlmn_llava_info info;
    struct vlmn_tok *tok;

    /* text model */
    int head_dim, kv_dim, n_ctx;
    float rms_eps, rope_base;
    const vlmn_gguf_tensor *tok_embd;      /* [n_vocab x n_embd], rows dequantised on use */
    uint64_t tok_row_bytes;
    text_layer *tl;
    float *out_norm;                       /* [n_embd] */
    vlmn_matrix output;                    /* [n_vocab x n_embd] (token_embd when tied) */

    /* vision tower + projector */
    int v_width, v_head, v_ff, v_run, v_patch, v_grid, v_pos; /* v_pos = n_patches + 1 */
    int mm_hidden;
    float v_eps;
    bool v_gelu;                           /* clip.use_gelu: erf GELU, else quick_gelu */
    float *class_embd;                     /* [width] */
    float *pos_embd;                       /* [v_pos x width] */
    float *pre_ln_w, *pre_ln_b;            /* [width] */
    vlmn_matrix patch;                     /* [width x 3*P*P] (conv kernel, no bias) */
    vis_layer *vl;
    vlmn_matrix mm0, mm2;                  /* [mm_hidden x width], [n_embd x mm_hidden] */
    float *mm0_b, *mm2_b;

    vlmn_llava_times times;                /* of the last forward */

    /* scratch, sized for `cap` tokens; grown (rarely) when a longer sample comes */
    int64_t cap;
    float *x, *xn, *qkv, *att, *gate, *gu, *rope; /* text; qkv [T x (E+2KV)], gu [T x 2FF] */
    float *vx, *vxn, *vq, *vk, *vv, *vatt, *vff, *vpatch, *mmh, *img; /* vision */
};

/* ------------------------------------------------------------------------------ */
/* Loading helpers                                                                */

static void shape_str(char *buf, size_t cap, const uint64_t *ne, int nd)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < nd && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? ", " : "", (unsigned long long)ne[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Find `name` and check it is supported and has exactly the shape `ne` (ne[0]
 * fastest; missing trailing dims are 1). */
static vlmn_status get_tensor(const vlmn_gguf *g, const char *name, int nd,
                              const uint64_t *ne, const vlmn_gguf_tensor **out)
{
    const char *path = vlmn_gguf_path(g);
    const vlmn_gguf_tensor *t = vlmn_gguf_find_tensor(g, name);
    if (!t) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor %s: missing", path, name);
    if (!vlmn_type_supported(t->type)) {
        const char *tn = vlmn_type_name(t->type);
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor %s: type %s not supported", path, name,
                          tn ? tn : "(unknown)");
    }
    bool ok = true;
    for (int i = 0; i < VLMN_GGUF_MAX_DIMS; i++) {
        uint64_t want = i < nd ? ne[i] : 1;
        if (t->ne[i] != want) ok = false;
    }
    if (!ok) {
        char a[96], b[96];
        shape_str(a, sizeof a, t->ne, (int)t->n_dims);
        shape_str(b, sizeof b, ne, nd);
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor %s: shape %s, expected %s", path, name, a, b);
    }
    *out = t;
    return VLMN_OK;
}

static vlmn_status load_matrix(const vlmn_gguf *g, const char *name, int64_t rows, int64_t cols,
                               vlmn_matrix *m)
{
    const vlmn_gguf_tensor *t;
    uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows};
    vlmn_status st = get_tensor(g, name, 2, ne, &t);
    if (st) return st;
    uint64_t rb;
    if (vlmn_type_row_bytes(t->type, (uint64_t)cols, &rb))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor %s: %lld columns is not a multiple of the %s block size",
                          vlmn_gguf_path(g), name, (long long)cols, vlmn_type_name(t->type));
    st = vlmn_matrix_init(m, t->type, rows, cols, t->data);
    if (st) return vlmn_error_prefix(st, "%s: tensor %s", vlmn_gguf_path(g), name);
    return VLMN_OK;
}

/* Dequantise a whole tensor of shape ne into a new f32 buffer. */
static vlmn_status load_f32(const vlmn_gguf *g, const char *name, int nd, const uint64_t *ne,
                            float **out)
{
    const vlmn_gguf_tensor *t;
    vlmn_status st = get_tensor(g, name, nd, ne, &t);
    if (st) return st;
    uint64_t n = 1;
    for (int i = 0; i < nd; i++)
        if (!vlmn_mul_ok(n, ne[i], &n)) return vlmn_error(VLMN_E_RANGE, "%s: tensor %s: too large", vlmn_gguf_path(g), name);
    uint64_t bv = vlmn_type_block_values(t->type);
    if (bv == 0 || n % bv)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor %s: %llu values is not a multiple of the %s block size",
                          vlmn_gguf_path(g), name, (unsigned long long)n, vlmn_type_name(t->type));
    float *buf = vlmn_malloc(n * sizeof(float));
    if (!buf) return vlmn_error(VLMN_E_NOMEM, "%s: tensor %s: out of memory", vlmn_gguf_path(g), name);
    st = vlmn_dequant(t->type, t->data, buf, (int64_t)n);
    if (st) {
        vlmn_free(buf);
        return vlmn_error_prefix(st, "%s: tensor %s", vlmn_gguf_path(g), name);
    }
    *out = buf;
    return VLMN_OK;
}

static vlmn_status load_vec(const vlmn_gguf *g, const char *name, int64_t n, float **out)
{
    uint64_t ne[1] = {(uint64_t)n};
    return load_f32(g, name, 1, ne, out);
}

/* Integer hyperparameter in [lo, hi]. */
static vlmn_status get_int(const vlmn_gguf *g, const char *key, long lo, long hi, int *out)
{
    uint64_t v;
    vlmn_status st = vlmn_gguf_get_u64(g, key, &v);
    if (st) return st;
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return vlmn_error(VLMN_E_RANGE, "%s: key %s: value %llu outside [%ld, %ld]", vlmn_gguf_path(g),
                          key, (unsigned long long)v, lo, hi);
    *out = (int)v;
    return VLMN_OK;
}

static vlmn_status get_float(const vlmn_gguf *g, const char *key, float dflt, float lo, float hi, float *out)
{
    if (vlmn_gguf_find_key(g, key) < 0) {
        *out = dflt;
        return VLMN_OK;
    }
    float v;
    vlmn_status st = vlmn_gguf_get_f32(g, key, &v);
    if (st) return st;
    if (!(v >= lo && v <= hi))
        return vlmn_error(VLMN_E_RANGE, "%s: key %s: value %g outside [%g, %g]", vlmn_gguf_path(g), key,
                          (double)v, (double)lo, (double)hi);
    *out = v;
    return VLMN_OK;
}

static vlmn_status expect_str(const vlmn_gguf *g, const char *key, const char *want, bool required)
{
    const char *s;
    if (!required && vlmn_gguf_find_key(g, key) < 0) return VLMN_OK;
    vlmn_status st = vlmn_gguf_get_str(g, key, &s);
    if (st) return st;
    if (strcmp(s, want))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: key %s is '%s', expected '%s'", vlmn_gguf_path(g), key, s, want);
    return VLMN_OK;
}

/* Matrices with the same type and width whose rows follow each other in the mapping
 * (as make-model writes q,k,v and gate,up; llama.cpp's converter writes gate,up so)
 * are one matrix with the rows stacked: one GEMM computes all outputs side by side
 * and packs the activations once. *ok = false (and nothing built) otherwise. */
static vlmn_status fuse_rows(const vlmn_matrix *const *ms, int n, vlmn_matrix *out, bool *ok)
{
    int64_t rows = 0;
    *ok = false;
    for (int i = 0; i < n; i++) {
        if (ms[i]->type != ms[0]->type || ms[i]->cols != ms[0]->cols || ms[i]->packed) return VLMN_OK;
        if (i && (const uint8_t *)ms[i - 1]->data + (uint64_t)ms[i - 1]->rows * ms[i - 1]->row_bytes !=
                     (const uint8_t *)ms[i]->data)
            return VLMN_OK;
        rows += ms[i]->rows;
    }
    vlmn_status st = vlmn_matrix_init(out, ms[0]->type, rows, ms[0]->cols, ms[0]->data);
    if (st) return st;
    *ok = true;
    return VLMN_OK;
}

static vlmn_status load_text(vlmn_llava *m)
{
    const vlmn_gguf *g = m->gt;
    const char *path = vlmn_gguf_path(g);
    vlmn_llava_info *in = &m->info;
    vlmn_status st;
    char name[96];

    if ((st = expect_str(g, "general.architecture", "llama", true))) return st;
    if ((st = get_int(g, "llama.embedding_length", 2, LLAVA_MAX_DIM, &in->n_embd)) ||
        (st = get_int(g, "llama.block_count", 1, LLAVA_MAX_LAYERS, &in->n_layer)) ||
        (st = get_int(g, "llama.feed_forward_length", 1, LLAVA_MAX_DIM, &in->n_ff)) ||
        (st = get_int(g, "llama.attention.head_count", 1, LLAVA_MAX_HEADS, &in->n_head)))
        return st;
    in->n_head_kv = in->n_head;
    if (vlmn_gguf_find_key(g, "llama.attention.head_count_kv") >= 0 &&
        (st = get_int(g, "llama.attention.head_count_kv", 1, LLAVA_MAX_HEADS, &in->n_head_kv)))
        return st;
    m->n_ctx = 0;
    if (vlmn_gguf_find_key(g, "llama.context_length") >= 0 &&
        (st = get_int(g, "llama.context_length", 1, 1 << 24, &m->n_ctx)))
        return st;
    if (in->n_embd % in->n_head || (in->n_embd / in->n_head) % 2)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: embedding_length %d is not an even head_dim times head_count %d",
                          path, in->n_embd, in->n_head);
    if (in->n_head % in->n_head_kv)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: head_count %d is not a multiple of head_count_kv %d", path,
                          in->n_head, in->n_head_kv);
    m->head_dim = in->n_embd / in->n_head;
    m->kv_dim = m->head_dim * in->n_head_kv;
    if (vlmn_gguf_find_key(g, "llama.rope.dimension_count") >= 0) {
        int rd;
        if ((st = get_int(g, "llama.rope.dimension_count", 1, LLAVA_MAX_DIM, &rd))) return st;
        if (rd != m->head_dim)
            return vlmn_error(VLMN_E_UNSUPPORTED, "%s: rope.dimension_count %d != head_dim %d (partial RoPE not supported)",
                              path, rd, m->head_dim);
    }
    if ((st = get_float(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f, 0.0f, 1.0f, &m->rms_eps)) ||
        (st = get_float(g, "llama.rope.freq_base", 10000.0f, 1.0f, 1e12f, &m->rope_base)))
        return st;
    if (vlmn_gguf_find_key(g, "llama.rope.scaling.type") >= 0) {
        const char *s;
        if ((st = vlmn_gguf_get_str(g, "llama.rope.scaling.type", &s))) return st;
        if (strcmp(s, "none"))
            return vlmn_error(VLMN_E_UNSUPPORTED, "%s: rope scaling '%s' not supported", path, s);
    }

    const int64_t E = in->n_embd, FF = in->n_ff, KV = m->kv_dim;
    m->tok_embd = vlmn_gguf_find_tensor(g, "token_embd.weight");
    if (!m->tok_embd) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor token_embd.weight: missing", path);
    uint64_t nv = m->tok_embd->ne[1];
    if (nv < 1 || nv > (1u << 24) || m->tok_embd->n_dims != 2)
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor token_embd.weight: bad vocabulary size", path);
    in->n_vocab = (int)nv;
    {
        uint64_t ne[2] = {(uint64_t)E, nv};
        if ((st = get_tensor(g, "token_embd.weight", 2, ne, &m->tok_embd))) return st;
        if (vlmn_type_row_bytes(m->tok_embd->type, (uint64_t)E, &m->tok_row_bytes))
            return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor token_embd.weight: width %lld not a multiple of the block size",
                              path, (long long)E);
    }
    /* VLMN_LLAVA_NOFUSE (any value): separate GEMMs, for tests of the unfused path */
    const bool nofuse = getenv("VLMN_LLAVA_NOFUSE") != NULL;
    m->tl = vlmn_calloc((size_t)in->n_layer, sizeof *m->tl);
    if (!m->tl) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    for (int l = 0; l < in->n_layer; l++) {
        text_layer *L = &m->tl[l];
#define NM(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
        if ((st = load_vec(g, NM("attn_norm.weight"), E, &L->attn_norm)) ||
            (st = load_matrix(g, NM("attn_q.weight"), E, E, &L->wq)) ||
            (st = load_matrix(g, NM("attn_k.weight"), KV, E, &L->wk)) ||
            (st = load_matrix(g, NM("attn_v.weight"), KV, E, &L->wv)) ||
            (st = load_matrix(g, NM("attn_output.weight"), E, E, &L->wo)) ||
            (st = load_vec(g, NM("ffn_norm.weight"), E, &L->ffn_norm)) ||
            (st = load_matrix(g, NM("ffn_gate.weight"), FF, E, &L->gate)) ||
            (st = load_matrix(g, NM("ffn_up.weight"), FF, E, &L->up)) ||
            (st = load_matrix(g, NM("ffn_down.weight"), E, FF, &L->down)))
            return st;
#undef NM
        const vlmn_matrix *qkv[] = {&L->wq, &L->wk, &L->wv}, *gu[] = {&L->gate, &L->up};
        if (nofuse) continue;
        if ((st = fuse_rows(qkv, 3, &L->qkv, &L->has_qkv)) || (st = fuse_rows(gu, 2, &L->gu, &L->has_gu)))
            return st;
    }
    if ((st = load_vec(g, "output_norm.weight", E, &m->out_norm))) return st;
    /* HF ties lm_head to embed_tokens when the converter wrote no `output` */
    if (vlmn_gguf_find_tensor(g, "output.weight"))
        st = load_matrix(g, "output.weight", in->n_vocab, E, &m->output);
    else
        st = load_matrix(g, "token_embd.weight", in->n_vocab, E, &m->output);
    return st;
}

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

static vlmn_status load_vision(vlmn_llava *m)
{
    const vlmn_gguf *g = m->gv;
    const char *path = vlmn_gguf_path(g);
    vlmn_status st;
    char name[96];
    bool b;
    int n_stored, S;

    if ((st = expect_str(g, "general.architecture", "clip", true))) return st;
    if ((st = vlmn_gguf_get_bool(g, "clip.has_llava_projector", &b))) return st;
    if (!b) return vlmn_error(VLMN_E_UNSUPPORTED, "%s: clip.has_llava_projector is false", path);
    if ((st = expect_str(g, "clip.projector_type", "mlp", false))) return st;
    m->v_gelu = false;
    if (vlmn_gguf_find_key(g, "clip.use_gelu") >= 0 && (st = vlmn_gguf_get_bool(g, "clip.use_gelu", &m->v_gelu)))
        return st;
    if ((st = get_int(g, "clip.vision.image_size", 1, LLAVA_MAX_IMAGE, &S)) ||
        (st = get_int(g, "clip.vision.patch_size", 1, LLAVA_MAX_IMAGE, &m->v_patch)) ||
        (st = get_int(g, "clip.vision.embedding_length", 1, LLAVA_MAX_DIM, &m->v_width)) ||
        (st = get_int(g, "clip.vision.feed_forward_length", 1, LLAVA_MAX_DIM, &m->v_ff)) ||
        (st = get_int(g, "clip.vision.attention.head_count", 1, LLAVA_MAX_HEADS, &m->v_head)) ||
        (st = get_int(g, "clip.vision.block_count", 0, LLAVA_MAX_LAYERS, &n_stored)) ||
        (st = get_float(g, "clip.vision.attention.layer_norm_epsilon", 1e-5f, 0.0f, 1.0f, &m->v_eps)))
        return st;
    if (S % m->v_patch)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: image_size %d not a multiple of patch_size %d", path, S, m->v_patch);
    if (m->v_width % m->v_head)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: embedding_length %d not a multiple of head_count %d", path,
                          m->v_width, m->v_head);
    if ((st = feature_layer(g, n_stored, &m->v_run))) return st;
    m->v_grid = S / m->v_patch;
    if ((int64_t)m->v_grid * m->v_grid > (1 << 20))
        return vlmn_error(VLMN_E_RANGE, "%s: too many patches", path);
    m->v_pos = m->v_grid * m->v_grid + 1;
    m->info.image_size = S;
    m->info.n_image_tokens = m->v_grid * m->v_grid;

    /* OpenAI CLIP normalisation unless the file says otherwise */
    static const float mean0[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std0[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memcpy(m->info.image_mean, mean0, sizeof mean0);
    memcpy(m->info.image_std, std0, sizeof std0);
    if (vlmn_gguf_find_key(g, "clip.vision.image_mean") >= 0 &&
        (st = vlmn_gguf_get_arr_f32(g, "clip.vision.image_mean", m->info.image_mean, 3)))
        return st;
    if (vlmn_gguf_find_key(g, "clip.vision.image_std") >= 0 &&
        (st = vlmn_gguf_get_arr_f32(g, "clip.vision.image_std", m->info.image_std, 3)))
        return st;
    for (int c = 0; c < 3; c++)
        if (!(m->info.image_std[c] > 0))
            return vlmn_error(VLMN_E_RANGE, "%s: key clip.vision.image_std: values must be > 0", path);

    const int64_t W = m->v_width, FF = m->v_ff, P = m->v_patch;
    {
        uint64_t ne[4] = {(uint64_t)P, (uint64_t)P, 3, (uint64_t)W};
        const vlmn_gguf_tensor *t;
        if ((st = get_tensor(g, "v.patch_embd.weight", 4, ne, &t))) return st;
        /* the conv kernel [width][3][P][P] is a [width x 3*P*P] matrix */
        if ((st = vlmn_matrix_init(&m->patch, t->type, W, 3 * P * P, t->data)))
            return vlmn_error_prefix(st, "%s: tensor v.patch_embd.weight", path);
    }
    {
        uint64_t ne[2] = {(uint64_t)W, (uint64_t)m->v_pos};
        if ((st = load_vec(g, "v.class_embd", W, &m->class_embd)) ||
            (st = load_f32(g, "v.position_embd.weight", 2, ne, &m->pos_embd)) ||
            (st = load_vec(g, "v.pre_ln.weight", W, &m->pre_ln_w)) ||
            (st = load_vec(g, "v.pre_ln.bias", W, &m->pre_ln_b)))
            return st;
    }
    m->vl = vlmn_calloc((size_t)(m->v_run ? m->v_run : 1), sizeof *m->vl);
    if (!m->vl) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    for (int l = 0; l < m->v_run; l++) {
        vis_layer *L = &m->vl[l];
#define NM(s) (snprintf(name, sizeof name, "v.blk.%d." s, l), name)
        if ((st = load_vec(g, NM("ln1.weight"), W, &L->ln1_w)) || (st = load_vec(g, NM("ln1.bias"), W, &L->ln1_b)) ||
            (st = load_vec(g, NM("ln2.weight"), W, &L->ln2_w)) || (st = load_vec(g, NM("ln2.bias"), W, &L->ln2_b)) ||
            (st = load_matrix(g, NM("attn_q.weight"), W, W, &L->q)) || (st = load_vec(g, NM("attn_q.bias"), W, &L->q_b)) ||
            (st = load_matrix(g, NM("attn_k.weight"), W, W, &L->k)) || (st = load_vec(g, NM("attn_k.bias"), W, &L->k_b)) ||
            (st = load_matrix(g, NM("attn_v.weight"), W, W, &L->v)) || (st = load_vec(g, NM("attn_v.bias"), W, &L->v_b)) ||
            (st = load_matrix(g, NM("attn_out.weight"), W, W, &L->o)) || (st = load_vec(g, NM("attn_out.bias"), W, &L->o_b)))
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
        if ((st = load_matrix(g, wn, FF, W, &L->fc1)) || (st = load_vec(g, bn, FF, &L->fc1_b))) return st;
        snprintf(wn, sizeof wn, "v.blk.%d.%s.weight", l, n2);
        snprintf(bn, sizeof bn, "v.blk.%d.%s.bias", l, n2);
        if ((st = load_matrix(g, wn, W, FF, &L->fc2)) || (st = load_vec(g, bn, W, &L->fc2_b))) return st;
#undef NM
    }
    /* Projector: mm.0 [hidden x width], GELU, mm.2 [n_embd x hidden]. */
    const vlmn_gguf_tensor *t0 = vlmn_gguf_find_tensor(g, "mm.0.weight");
    const vlmn_gguf_tensor *t2 = vlmn_gguf_find_tensor(g, "mm.2.weight");
    if (!t0) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor mm.0.weight: missing", path);
    if (!t2) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor mm.2.weight: missing", path);
    if (t0->ne[1] < 1 || t0->ne[1] > LLAVA_MAX_DIM)
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor mm.0.weight: bad shape", path);
    m->mm_hidden = (int)t0->ne[1];
    if (t2->ne[1] != (uint64_t)m->info.n_embd)
        return vlmn_error(VLMN_E_MISMATCH, "%s: projector output width %llu does not match %s: embedding_length %d (mismatched pair of files)",
                          path, (unsigned long long)t2->ne[1], vlmn_gguf_path(m->gt), m->info.n_embd);
    if ((st = load_matrix(g, "mm.0.weight", m->mm_hidden, W, &m->mm0)) ||
        (st = load_vec(g, "mm.0.bias", m->mm_hidden, &m->mm0_b)) ||
        (st = load_matrix(g, "mm.2.weight", m->info.n_embd, m->mm_hidden, &m->mm2)) ||
        (st = load_vec(g, "mm.2.bias", m->info.n_embd, &m->mm2_b)))
        return st;
    return VLMN_OK;
}

void vlmn_llava_free(vlmn_llava *m)
{
    if (!m) return;
    if (m->tl) {
        for (int l = 0; l < m->info.n_layer; l++) {
            text_layer *L = &m->tl[l];
            vlmn_free(L->attn_norm);
            vlmn_free(L->ffn_norm);
            vlmn_matrix_release(&L->wq);
            vlmn_matrix_release(&L->wk);
            vlmn_matrix_release(&L->wv);
            vlmn_matrix_release(&L->wo);
            vlmn_matrix_release(&L->gate);
            vlmn_matrix_release(&L->up);
            vlmn_matrix_release(&L->down);
            vlmn_matrix_release(&L->qkv);
            vlmn_matrix_release(&L->gu);
        }
        vlmn_free(m->tl);
    }
    vlmn_free(m->out_norm);
    vlmn_matrix_release(&m->output);
    if (m->vl) {
        for (int l = 0; l < m->v_run; l++) {
            vis_layer *L = &m->vl[l];
            float *vs[] = {L->ln1_w, L->ln1_b, L->ln2_w, L->ln2_b, L->q_b, L->k_b, L->v_b, L->o_b, L->fc1_b, L->fc2_b};
            for (size_t i = 0; i < VLMN_ARRAY_LEN(vs); i++) vlmn_free(vs[i]);
            vlmn_matrix *ms[] = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2};
            for (size_t i = 0; i < VLMN_ARRAY_LEN(ms); i++) vlmn_matrix_release(ms[i]);
        }
        vlmn_free(m->vl);
    }
    vlmn_free(m->class_embd);
    vlmn_free(m->pos_embd);
    vlmn_free(m->pre_ln_w);
    vlmn_free(m->pre_ln_b);
    vlmn_matrix_release(&m->patch);
    vlmn_matrix_release(&m->mm0);
    vlmn_matrix_release(&m->mm2);
    vlmn_free(m->mm0_b);
    vlmn_free(m->mm2_b);
    float *sc[] = {m->x, m->xn, m->qkv, m->att, m->gate, m->gu, m->rope,
                   m->vx, m->vxn, m->vq, m->vk, m->vv, m->vatt, m->vff, m->vpatch, m->mmh, m->img};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(sc); i++) vlmn_free_aligned(sc[i]);
    vlmn_tok_free(m->tok);
    vlmn_pool_free(m->pool);
    vlmn_gguf_close(m->gt);
    vlmn_gguf_close(m->gv);
    vlmn_free(m);
}

static float *scratch(int64_t a, int64_t b, bool *ok)
{
    uint64_t n;
    if (!vlmn_mul_ok((uint64_t)a, (uint64_t)b, &n) || !vlmn_mul_ok(n, sizeof(float), &n)) {
        *ok = false;
        return NULL;
    }
    float *p = vlmn_malloc_aligned(n ? n : 64);
    if (!p) *ok = false;
    return p;
}

/* Vision scratch depends only on the model: allocated once at load. */
static vlmn_status alloc_vision_scratch(vlmn_llava *m)
{
    bool ok = true;
    const int64_t NP = m->v_pos, W = m->v_width, NI = m->info.n_image_tokens;
    int64_t ph = m->mm_hidden > m->info.n_embd ? m->mm_hidden : m->info.n_embd;
    m->vx = scratch(NP, W, &ok);
    m->vxn = scratch(NP, W, &ok);
    m->vq = scratch(NP, W, &ok);
    m->vk = scratch(NP, W, &ok);
    m->vv = scratch(NP, W, &ok);
    m->vatt = scratch(NP, W, &ok);
    m->vff = scratch(NP, m->v_ff, &ok);
    m->vpatch = scratch(NI, 3LL * m->v_patch * m->v_patch, &ok);
    m->mmh = scratch(NI, ph, &ok);
    m->img = scratch(NI, m->info.n_embd, &ok);
    if (!ok) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for vision scratch buffers");
    return VLMN_OK;
}

static vlmn_status ensure_text_scratch(vlmn_llava *m, int64_t T)
{
    if (T <= m->cap) return VLMN_OK;
    float **bufs[] = {&m->x, &m->xn, &m->qkv, &m->att, &m->gate, &m->gu, &m->rope};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(bufs); i++) {
        vlmn_free_aligned(*bufs[i]);
        *bufs[i] = NULL;
    }
    m->cap = 0;
    bool ok = true;
    const int64_t E = m->info.n_embd, FF = m->info.n_ff, KV = m->kv_dim;
    m->x = scratch(T, E, &ok);
    m->xn = scratch(T, E, &ok);
    m->qkv = scratch(T, E + 2 * KV, &ok);
    m->att = scratch(T, E, &ok);
    m->gate = scratch(T, FF, &ok);
    m->gu = scratch(T, 2 * FF, &ok);
    m->rope = scratch(T, m->head_dim, &ok);
    if (!ok) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for %lld-token scratch buffers", (long long)T);
    m->cap = T;
    return VLMN_OK;
}

vlmn_status vlmn_llava_load_gguf(vlmn_gguf *text, vlmn_gguf *mmproj, const vlmn_llava_params *params,
                                 vlmn_llava **out)
{
    vlmn_status st;
    *out = NULL;
    vlmn_llava *m = vlmn_calloc(1, sizeof *m);
    if (!m) {
        vlmn_gguf_close(text);
        vlmn_gguf_close(mmproj);
        return vlmn_error(VLMN_E_NOMEM, "llava: out of memory");
    }
    m->gt = text;
    m->gv = mmproj;
    m->prec = params ? params->precision : VLMN_PREC_FAST;
    if ((st = load_text(m))) goto fail;
    /* text-only (no mmproj): samples without image positions, e.g. for benchmarks */
    if (m->gv && (st = load_vision(m))) goto fail;
    if (m->gv && (st = alloc_vision_scratch(m))) goto fail;
    if ((st = vlmn_tok_from_gguf(m->gt, &m->tok))) goto fail;
    if (vlmn_tok_n_vocab(m->tok) > m->info.n_vocab) {
        st = vlmn_error(VLMN_E_MISMATCH, "%s: the tokenizer has %d pieces but token_embd.weight only %d rows",
                        vlmn_gguf_path(m->gt), (int)vlmn_tok_n_vocab(m->tok), m->info.n_vocab);
        goto fail;
    }
    if ((st = vlmn_pool_create(params ? params->n_threads : 0, &m->pool))) goto fail;
    *out = m;
    return VLMN_OK;
fail:
    vlmn_llava_free(m);
    return st;
}

vlmn_status vlmn_llava_load(const char *text_path, const char *mmproj_path,
                            const vlmn_llava_params *params, vlmn_llava **out)
{
    vlmn_status st;
    vlmn_gguf *gt = NULL, *gv = NULL;
    *out = NULL;
    if (!text_path) return vlmn_error(VLMN_E_ARG, "llava: a text model is needed");
    if (vlmn_hf_is_folder(text_path)) {
        /* a folder as mmproj: the original LLaVA layout's CLIP folder (--clip) */
        bool clip = mmproj_path && vlmn_hf_is_folder(mmproj_path);
        if (mmproj_path && !clip)
            return vlmn_error(VLMN_E_ARG, "%s: a Hugging Face folder holds the vision tower: no --mmproj", text_path);
        if ((st = vlmn_hf_llava_open_clip(text_path, clip ? mmproj_path : NULL, &gt, &gv))) return st;
        return vlmn_llava_load_gguf(gt, gv, params, out);
    }
    if ((st = vlmn_gguf_open(text_path, &gt))) return st;
    if (mmproj_path && (st = vlmn_gguf_open(mmproj_path, &gv))) {
        vlmn_gguf_close(gt);
        return st;
    }
    return vlmn_llava_load_gguf(gt, gv, params, out);
}

const vlmn_llava_info *vlmn_llava_get_info(const vlmn_llava *m) { return &m->info; }
void vlmn_llava_last_times(const vlmn_llava *m, vlmn_llava_times *out) { *out = m->times; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Adds the seconds since *t0 to *acc and restarts the clock. */
static void lap(double *t0, double *acc)
{
    double t = now_s();
    *acc += t - *t0;
    *t0 = t;
}
struct vlmn_tok *vlmn_llava_tokenizer(const vlmn_llava *m) { return m->tok; }

/* ------------------------------------------------------------------------------ */
/* Forward                                                                        */

static void gemm(vlmn_llava *m, const vlmn_matrix *W, const float *A, int64_t M, int64_t lda,
                 float *C, int64_t ldc, bool acc)
{
    vlmn_gemm(m->pool, m->prec, W, A, M, lda, C, ldc, acc);
}

/* The vision tower and projector run FASTEST as FAST: they are ~7% of a sample's
 * time, and int8 activations there would add their error to every image position. */
static void vgemm(vlmn_llava *m, const vlmn_matrix *W, const float *A, int64_t M, int64_t lda,
                  float *C, int64_t ldc, bool acc)
{
    vlmn_precision p = m->prec == VLMN_PREC_FASTEST ? VLMN_PREC_FAST : m->prec;
    vlmn_gemm(m->pool, p, W, A, M, lda, C, ldc, acc);
}

/* Row-parallel activation / bias / LayerNorm of the vision tower (each row computed as
 * by the serial op: results independent of the thread count). */
enum { VOP_QUICK_GELU, VOP_GELU_ERF, VOP_BIAS, VOP_LAYERNORM };

typedef struct vrows {
    int op;
    const float *x;
    float *y;
    int64_t rows, n;
    const float *w, *b;
    float eps;
    bool vec;
} vrows;

static void vrows_run(void *ctx, int ith, int nth)
{
    const vrows *o = ctx;
    int64_t r0 = o->rows * ith / nth, r1 = o->rows * (ith + 1) / nth;
    float *y = o->y + r0 * o->n;
    switch (o->op) {
    case VOP_QUICK_GELU:
        if (o->vec)
            op_quick_gelu_avx512(y, (r1 - r0) * o->n);
        else
            op_quick_gelu(y, (r1 - r0) * o->n);
        break;
    case VOP_GELU_ERF: op_gelu_erf(y, (r1 - r0) * o->n); break;
    case VOP_BIAS: op_add_bias(y, r1 - r0, o->n, o->n, o->b); break;
    default: op_layernorm(o->x + r0 * o->n, y, r1 - r0, o->n, o->n, o->w, o->b, o->eps); break;
    }
}

static void vrows_do(vlmn_llava *m, int op, const float *x, float *y, int64_t rows, int64_t n,
                     const float *w, const float *b)
{
    vrows o = {op, x, y, rows, n, w, b, m->v_eps,
               m->prec != VLMN_PREC_EXACT && vlmn_isa_active() == VLMN_ISA_AVX512};
    vlmn_pool_run(m->pool, vrows_run, &o);
}

/* CLIPVisionModel (HF CLIPVisionEmbeddings/CLIPEncoder semantics) + LlavaMultiModalProjector:
 * pixels [3 x S x S] -> m->img [n_patches x n_embd]. */
static void vision_forward(vlmn_llava *m, const float *px)
{
    const int64_t W = m->v_width, NP = m->v_pos, NI = NP - 1, P = m->v_patch, G = m->v_grid;
    const int64_t S = G * P, K = 3 * P * P, hd = W / m->v_head;
    /* Conv2d(stride = kernel = P, no bias) as a GEMM over patches; patch rows in
     * row-major grid order, each laid out as the kernel: [c][ky][kx]. */
    for (int64_t py = 0; py < G; py++)
        for (int64_t pxi = 0; pxi < G; pxi++) {
            float *dst = m->vpatch + (py * G + pxi) * K;
            for (int64_t c = 0; c < 3; c++)
                for (int64_t ky = 0; ky < P; ky++)
                    memcpy(dst + (c * P + ky) * P, px + (c * S + py * P + ky) * S + pxi * P, (size_t)P * sizeof(float));
        }
    /* CLS first (position 0), then the patches at positions 1..N */
    memcpy(m->vx, m->class_embd, (size_t)W * sizeof(float));
    vgemm(m, &m->patch, m->vpatch, NI, K, m->vx + W, W, false);
    for (int64_t i = 0; i < NP * W; i++) m->vx[i] += m->pos_embd[i];
    op_layernorm(m->vx, m->vx, NP, W, W, m->pre_ln_w, m->pre_ln_b, m->v_eps);

    for (int l = 0; l < m->v_run; l++) {
        const vis_layer *L = &m->vl[l];
        vrows_do(m, VOP_LAYERNORM, m->vx, m->vxn, NP, W, L->ln1_w, L->ln1_b);
        vgemm(m, &L->q, m->vxn, NP, W, m->vq, W, false);
        vgemm(m, &L->k, m->vxn, NP, W, m->vk, W, false);
        vgemm(m, &L->v, m->vxn, NP, W, m->vv, W, false);
        vrows_do(m, VOP_BIAS, NULL, m->vq, NP, W, NULL, L->q_b);
        vrows_do(m, VOP_BIAS, NULL, m->vk, NP, W, NULL, L->k_b);
        vrows_do(m, VOP_BIAS, NULL, m->vv, NP, W, NULL, L->v_b);
        vlmn_attention(m->pool, m->vq, W, m->vk, W, m->vv, W, m->vatt, W, NP, m->v_head, m->v_head,
                       (int)hd, 1.0f / sqrtf((float)hd), false);
        vgemm(m, &L->o, m->vatt, NP, W, m->vx, W, true);
        vrows_do(m, VOP_BIAS, NULL, m->vx, NP, W, NULL, L->o_b);
        vrows_do(m, VOP_LAYERNORM, m->vx, m->vxn, NP, W, L->ln2_w, L->ln2_b);
        vgemm(m, &L->fc1, m->vxn, NP, W, m->vff, m->v_ff, false);
        vrows_do(m, VOP_BIAS, NULL, m->vff, NP, m->v_ff, NULL, L->fc1_b);
        vrows_do(m, m->v_gelu ? VOP_GELU_ERF : VOP_QUICK_GELU, NULL, m->vff, NP, m->v_ff, NULL, NULL);
        vgemm(m, &L->fc2, m->vff, NP, m->v_ff, m->vx, W, true);
        vrows_do(m, VOP_BIAS, NULL, m->vx, NP, W, NULL, L->fc2_b);
    }
    /* drop CLS; no post-LN (LLaVA reads hidden_states[select_layer]) */
    const int64_t H = m->mm_hidden, E = m->info.n_embd;
    vgemm(m, &m->mm0, m->vx + W, NI, W, m->mmh, H, false);
    vrows_do(m, VOP_BIAS, NULL, m->mmh, NI, H, NULL, m->mm0_b);
    vrows_do(m, VOP_GELU_ERF, NULL, m->mmh, NI, H, NULL, NULL);
    vgemm(m, &m->mm2, m->mmh, NI, H, m->img, E, false);
    vrows_do(m, VOP_BIAS, NULL, m->img, NI, E, NULL, m->mm2_b);
}

/* The FFN activation over rows, split by rows over the pool. gu holds gate | up side
 * by side ([T x 2FF]); out ([T x FF]) gets
 *   stage SILU:    SiLU(gate), masked neurons zeroed (the SILU_GATE hook reads this)
 *   stage MUL:     out *= up
 *   stage SWIGLU:  both at once (one pass while the rows are in cache).
 * FAST uses the AVX-512 vector exp where available; EXACT libm expf. */
enum { ACT_SILU, ACT_MUL, ACT_SWIGLU };

typedef struct ffn_act {
    float *out;
    const float *gu;
    const uint8_t *mask;
    int64_t T, FF;
    int stage;
    bool vec;
} ffn_act;

static void ffn_act_rows(void *ctx, int ith, int nth)
{
    const ffn_act *a = ctx;
    const int64_t FF = a->FF;
    int64_t r0 = a->T * ith / nth, r1 = a->T * (ith + 1) / nth;
    for (int64_t t = r0; t < r1; t++) {
        float *o = a->out + t * FF;
        const float *g = a->gu + t * 2 * FF, *u = g + FF;
        if (a->vec) {
            if (a->stage == ACT_MUL)
                op_mul_avx512(o, u, o, FF);
            else
                op_silu_mul_avx512(g, a->stage == ACT_SWIGLU ? u : NULL, o, a->mask, FF);
            continue;
        }
        if (a->stage != ACT_MUL) {
            memcpy(o, g, (size_t)FF * sizeof(float));
            op_silu(o, FF);
            if (a->mask)
                for (int64_t j = 0; j < FF; j++)
                    if (a->mask[j]) o[j] = 0.0f;
        }
        if (a->stage != ACT_SILU) op_mul(o, u, FF);
    }
}

/* Row-parallel RMSNorm and RoPE: each row is computed exactly as by the serial op,
 * so the result does not depend on the thread count. */
typedef struct rows_op {
    const float *x;
    float *y;
    int64_t rows, n, ld;
    const float *w;
    float eps;
    int n_head, head_dim; /* rope */
    const float *cs;
    bool vec;             /* AVX-512 variant (FAST on AVX-512 CPUs) */
} rows_op;

static void rmsnorm_rows(void *ctx, int ith, int nth)
{
    const rows_op *o = ctx;
    int64_t r0 = o->rows * ith / nth, r1 = o->rows * (ith + 1) / nth;
    if (o->vec)
        op_rmsnorm_avx512(o->x + r0 * o->ld, o->y + r0 * o->ld, r1 - r0, o->n, o->ld, o->w, o->eps);
    else
        op_rmsnorm(o->x + r0 * o->ld, o->y + r0 * o->ld, r1 - r0, o->n, o->ld, o->w, o->eps);
}

static void rmsnorm(vlmn_llava *m, const float *x, float *y, int64_t rows, int64_t n, const float *w)
{
    rows_op o = {x, y, rows, n, n, w, m->rms_eps, 0, 0, NULL,
                 m->prec != VLMN_PREC_EXACT && vlmn_isa_active() == VLMN_ISA_AVX512};
    vlmn_pool_run(m->pool, rmsnorm_rows, &o);
}

static void rope_rows(void *ctx, int ith, int nth)
{
    const rows_op *o = ctx;
    int64_t r0 = o->rows * ith / nth, r1 = o->rows * (ith + 1) / nth;
    op_rope_pairs(o->y + r0 * o->ld, r1 - r0, o->ld, o->n_head, o->head_dim, o->cs + r0 * o->head_dim);
}

static void rope(vlmn_llava *m, float *x, int64_t rows, int64_t ld, int n_head)
{
    rows_op o = {NULL, x, rows, 0, ld, NULL, 0, n_head, m->head_dim, m->rope, false};
    vlmn_pool_run(m->pool, rope_rows, &o);
}

vlmn_status vlmn_llava_forward(vlmn_llava *m, const int32_t *ids, int64_t n,
                               const float *image, const vlmn_forward_opts *opts)
{
    static const vlmn_forward_opts none = {0};
    const vlmn_llava_info *in = &m->info;
    const int64_t E = in->n_embd, FF = in->n_ff, KV = m->kv_dim, NI = in->n_image_tokens;
    vlmn_status st;
    if (!opts) opts = &none;
    if (!ids || n <= 0) return vlmn_error(VLMN_E_ARG, "llava: empty token sequence");
    if (m->n_ctx > 0 && n > m->n_ctx)
        return vlmn_error(VLMN_E_RANGE, "llava: %lld positions exceed the model's context length %d", (long long)n, m->n_ctx);
    int64_t n_img = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] == -1)
            n_img++;
        else if (ids[i] < 0 || ids[i] >= in->n_vocab)
            return vlmn_error(VLMN_E_RANGE, "llava: token id %d at position %lld outside the vocabulary (%d)", ids[i],
                              (long long)i, in->n_vocab);
    }
    if (image ? n_img != NI : n_img != 0)
        return vlmn_error(VLMN_E_MISMATCH, "llava: %lld image positions in the sequence, expected %lld", (long long)n_img,
                          (long long)(image ? NI : 0));
    if (opts->logits && (opts->n_logits < 1 || opts->n_logits > n))
        return vlmn_error(VLMN_E_ARG, "llava: n_logits %lld outside [1, %lld]", (long long)opts->n_logits, (long long)n);
    if (image && !m->gv) return vlmn_error(VLMN_E_ARG, "llava: an image was given but no mmproj file was loaded");
    if (opts->n_layers_run < 0 || opts->n_layers_run > in->n_layer || (opts->n_layers_run && opts->logits))
        return vlmn_error(VLMN_E_ARG, "llava: n_layers_run %d outside [0, %d] or with logits", opts->n_layers_run,
                          in->n_layer);
    const int n_run = opts->n_layers_run ? opts->n_layers_run : in->n_layer;
    if ((st = ensure_text_scratch(m, n))) return st;

    vlmn_llava_times *tm = &m->times;
    memset(tm, 0, sizeof *tm);
    double t_start = now_s(), t0 = t_start;
    if (image) vision_forward(m, image);
    lap(&t0, &tm->vision);
    /* input embeddings: token rows, image embeddings in place of the -1 positions */
    for (int64_t i = 0, k = 0; i < n; i++) {
        float *row = m->x + i * E;
        if (ids[i] == -1) {
            memcpy(row, m->img + (k++) * E, (size_t)E * sizeof(float));
        } else {
            const uint8_t *src = (const uint8_t *)m->tok_embd->data + (uint64_t)ids[i] * m->tok_row_bytes;
            if ((st = vlmn_dequant(m->tok_embd->type, src, row, E))) return st;
        }
    }
    op_rope_table(m->rope, n, m->head_dim, m->rope_base);
    lap(&t0, &tm->rope);

    const int64_t LQ = E + 2 * KV;  /* row stride of q | k | v */
    float *q = m->qkv, *k = m->qkv + E, *v = m->qkv + E + KV;
    const bool vec = m->prec != VLMN_PREC_EXACT && vlmn_isa_active() == VLMN_ISA_AVX512;
    for (int l = 0; l < n_run; l++) {
        const text_layer *L = &m->tl[l];
        /* attention block (LlamaAttention): pre-RMSNorm, RoPE, causal SDPA, residual */
        rmsnorm(m, m->x, m->xn, n, E, L->attn_norm);
        lap(&t0, &tm->norm);
        if (L->has_qkv) {
            gemm(m, &L->qkv, m->xn, n, E, q, LQ, false);
        } else {
            gemm(m, &L->wq, m->xn, n, E, q, LQ, false);
            gemm(m, &L->wk, m->xn, n, E, k, LQ, false);
            gemm(m, &L->wv, m->xn, n, E, v, LQ, false);
        }
        lap(&t0, &tm->qkv);
        rope(m, q, n, LQ, in->n_head);
        rope(m, k, n, LQ, in->n_head_kv);
        lap(&t0, &tm->rope);
        vlmn_attention(m->pool, q, LQ, k, LQ, v, LQ, m->att, E, n, in->n_head, in->n_head_kv,
                       m->head_dim, 1.0f / sqrtf((float)m->head_dim), true);
        lap(&t0, &tm->attention);
        gemm(m, &L->wo, m->att, n, E, m->x, E, true);
        lap(&t0, &tm->wo);

        /* FFN (LlamaMLP): down(act_fn(gate(x)) * up(x)) */
        rmsnorm(m, m->x, m->xn, n, E, L->ffn_norm);
        lap(&t0, &tm->norm);
        if (L->has_gu) {
            gemm(m, &L->gu, m->xn, n, E, m->gu, 2 * FF, false);
        } else {
            gemm(m, &L->gate, m->xn, n, E, m->gu, 2 * FF, false);
            gemm(m, &L->up, m->xn, n, E, m->gu + FF, 2 * FF, false);
        }
        lap(&t0, &tm->ffn_up);
        /* pruned neurons read 0 at both hooks, as a PyTorch hook zeroing act_fn's output */
        bool cap = opts->capture && (!opts->capture_layers || opts->capture_layers[l]);
        bool split = cap && opts->hook == VLMN_HOOK_SILU_GATE;
        ffn_act fa = {m->gate, m->gu, opts->neuron_mask ? opts->neuron_mask[l] : NULL, n, FF,
                      split ? ACT_SILU : ACT_SWIGLU, vec};
        vlmn_pool_run(m->pool, ffn_act_rows, &fa);
        if (split) {
            lap(&t0, &tm->act);
            opts->capture(opts->capture_user, l, m->gate, n, FF);
            lap(&t0, &tm->capture);
            fa.stage = ACT_MUL;
            vlmn_pool_run(m->pool, ffn_act_rows, &fa);
        }
        lap(&t0, &tm->act);
        if (cap && opts->hook == VLMN_HOOK_SWIGLU) {
            opts->capture(opts->capture_user, l, m->gate, n, FF);
            lap(&t0, &tm->capture);
        }
        gemm(m, &L->down, m->gate, n, FF, m->x, E, true);
        lap(&t0, &tm->down);
    }
    if (opts->logits) {
        const int64_t nl = opts->n_logits;
        const float *last = m->x + (n - nl) * E;
        op_rmsnorm(last, m->xn, nl, E, E, m->out_norm, m->rms_eps);
        gemm(m, &m->output, m->xn, nl, E, opts->logits, in->n_vocab, false);
        lap(&t0, &tm->logits);
    }
    tm->total = now_s() - t_start;
    return VLMN_OK;
}

/* ------------------------------------------------------------------------------ */
/* KV cache and incremental steps (decoding, see decode.c and docs/generate.md)   */

struct vlmn_kv {
    int n_layer;
    int64_t kv_dim, cap, len;
    float *k, *v; /* [n_layer][cap][kv_dim]: K after RoPE, V; f32 like the activations */
};

uint64_t vlmn_kv_bytes(const vlmn_llava *m, int64_t cap)
{
    return 2ull * (uint64_t)m->info.n_layer * (uint64_t)(cap > 0 ? cap : 0) * (uint64_t)m->kv_dim * sizeof(float);
}

vlmn_status vlmn_kv_create(const vlmn_llava *m, int64_t cap, vlmn_kv **out)
{
    *out = NULL;
    if (cap < 1) return vlmn_error(VLMN_E_ARG, "llava: KV cache of %lld positions", (long long)cap);
    if (m->n_ctx > 0 && cap > m->n_ctx)
        return vlmn_error(VLMN_E_RANGE, "llava: %lld positions exceed the model's context length %d", (long long)cap,
                          m->n_ctx);
    vlmn_kv *kv = vlmn_calloc(1, sizeof *kv);
    if (!kv) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for the KV cache");
    kv->n_layer = m->info.n_layer;
    kv->kv_dim = m->kv_dim;
    kv->cap = cap;
    bool ok = true;
    kv->k = scratch((int64_t)kv->n_layer * cap, kv->kv_dim, &ok);
    kv->v = scratch((int64_t)kv->n_layer * cap, kv->kv_dim, &ok);
    if (!ok) {
        vlmn_kv_free(kv);
        return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for a KV cache of %lld positions (%llu bytes)",
                          (long long)cap, (unsigned long long)vlmn_kv_bytes(m, cap));
    }
    *out = kv;
    return VLMN_OK;
}

void vlmn_kv_free(vlmn_kv *kv)
{
    if (!kv) return;
    vlmn_free_aligned(kv->k);
    vlmn_free_aligned(kv->v);
    vlmn_free(kv);
}

int64_t vlmn_kv_len(const vlmn_kv *kv) { return kv->len; }
int64_t vlmn_kv_cap(const vlmn_kv *kv) { return kv->cap; }
void vlmn_kv_truncate(vlmn_kv *kv, int64_t len)
{
    if (len >= 0 && len < kv->len) kv->len = len;
}

/* Attention of the new rows of several sequences against their caches: sequence b's
 * query i sits at position len_b + i and sees keys 0..len_b + i (causal). Tasks are
 * (row, head) pairs split over the pool; f32 softmax with max subtraction, like
 * vlmn_attention. */
typedef struct kv_att {
    const float *q;          /* [T x E] rows (stride ldq) */
    int64_t ldq;
    float *out;              /* [T x E] */
    vlmn_kv *const *kv;
    const int64_t *row_seq;  /* [T] sequence of each row */
    const int64_t *row_pos;  /* [T] position of each row */
    int layer;
    int64_t T;
    int n_head, n_head_kv, head_dim;
    float scale;
    float *sc;               /* [nth x max_keys] score scratch */
    int64_t max_keys;
} kv_att;

static void kv_att_run(void *ctx, int ith, int nth)
{
    const kv_att *a = ctx;
    const int64_t tasks = a->T * a->n_head, hd = a->head_dim;
    const int grp = a->n_head / a->n_head_kv;
    float *sc = a->sc + (int64_t)ith * a->max_keys;
    for (int64_t t = tasks * ith / nth; t < tasks * (ith + 1) / nth; t++) {
        int64_t r = t / a->n_head;
        int h = (int)(t % a->n_head);
        const vlmn_kv *kv = a->kv[a->row_seq[r]];
        const int64_t nk = a->row_pos[r] + 1, kvd = kv->kv_dim;
        const float *q = a->q + r * a->ldq + (int64_t)h * hd;
        const float *K = kv->k + (int64_t)a->layer * kv->cap * kvd + (int64_t)(h / grp) * hd;
        const float *V = kv->v + (int64_t)a->layer * kv->cap * kvd + (int64_t)(h / grp) * hd;
        float mx = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
            const float *kr = K + j * kvd;
            float s = 0.0f;
            for (int64_t d = 0; d < hd; d++) s += q[d] * kr[d];
            s *= a->scale;
            sc[j] = s;
            if (s > mx) mx = s;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += sc[j];
        }
        float *o = a->out + r * (int64_t)a->n_head * hd + (int64_t)h * hd;
        for (int64_t d = 0; d < hd; d++) o[d] = 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            const float *vr = V + j * kvd;
            const float p = sc[j];
            for (int64_t d = 0; d < hd; d++) o[d] += p * vr[d];
        }
        const float inv = 1.0f / sum;
        for (int64_t d = 0; d < hd; d++) o[d] *= inv;
    }
}

vlmn_status vlmn_llava_step(vlmn_llava *m, int n_seq, vlmn_kv *const *kv, const int32_t *const *ids,
                            const int64_t *n, const float *const *images, const vlmn_forward_opts *opts)
{
    static const vlmn_forward_opts none = {0};
    const vlmn_llava_info *in = &m->info;
    const int64_t E = in->n_embd, FF = in->n_ff, KV = m->kv_dim, NI = in->n_image_tokens;
    vlmn_status st;
    if (!opts) opts = &none;
    if (n_seq < 1 || !kv || !ids || !n) return vlmn_error(VLMN_E_ARG, "llava: step with no sequence");
    int64_t T = 0, max_keys = 0;
    for (int b = 0; b < n_seq; b++) {
        if (!kv[b] || !ids[b] || n[b] < 1) return vlmn_error(VLMN_E_ARG, "llava: sequence %d: no tokens", b);
        if (kv[b]->n_layer != in->n_layer || kv[b]->kv_dim != KV)
            return vlmn_error(VLMN_E_MISMATCH, "llava: sequence %d: KV cache made for another model", b);
        for (int c = 0; c < b; c++)
            if (kv[c] == kv[b]) return vlmn_error(VLMN_E_ARG, "llava: sequences %d and %d share a KV cache", c, b);
        if (n[b] > kv[b]->cap - kv[b]->len)
            return vlmn_error(VLMN_E_RANGE, "llava: sequence %d: %lld + %lld positions exceed its KV cache (%lld)", b,
                              (long long)kv[b]->len, (long long)n[b], (long long)kv[b]->cap);
        if (opts->logits && (opts->n_logits < 1 || opts->n_logits > n[b]))
            return vlmn_error(VLMN_E_ARG, "llava: sequence %d: n_logits %lld outside [1, %lld]", b,
                              (long long)opts->n_logits, (long long)n[b]);
        const float *img = images ? images[b] : NULL;
        int64_t n_img = 0;
        for (int64_t i = 0; i < n[b]; i++) {
            int32_t id = ids[b][i];
            if (id == -1)
                n_img++;
            else if (id < 0 || id >= in->n_vocab)
                return vlmn_error(VLMN_E_RANGE, "llava: sequence %d: token id %d at position %lld outside the vocabulary (%d)",
                                  b, id, (long long)(kv[b]->len + i), in->n_vocab);
        }
        if (img ? n_img != NI : n_img != 0)
            return vlmn_error(VLMN_E_MISMATCH, "llava: sequence %d: %lld image positions, expected %lld", b,
                              (long long)n_img, (long long)(img ? NI : 0));
        if (img && !m->gv) return vlmn_error(VLMN_E_ARG, "llava: an image was given but no mmproj file was loaded");
        T += n[b];
        if (kv[b]->len + n[b] > max_keys) max_keys = kv[b]->len + n[b];
    }
    if ((st = ensure_text_scratch(m, T))) return st;
    int nth = vlmn_pool_size(m->pool);
    int64_t *row_seq = vlmn_malloc((size_t)T * 2 * sizeof(int64_t));
    float *sc = vlmn_malloc((size_t)nth * (size_t)max_keys * sizeof(float));
    if (!row_seq || !sc) {
        vlmn_free(row_seq);
        vlmn_free(sc);
        return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for a %lld-row step", (long long)T);
    }
    int64_t *row_pos = row_seq + T;

    vlmn_llava_times *tm = &m->times;
    memset(tm, 0, sizeof *tm);
    double t_start = now_s(), t0 = t_start;
    /* input embeddings and the RoPE rows at each row's own position */
    const int half = m->head_dim / 2;
    for (int b = 0, r = 0; b < n_seq; b++) {
        const float *img = images ? images[b] : NULL;
        if (img) {
            vision_forward(m, img);
            lap(&t0, &tm->vision);
        }
        for (int64_t i = 0, k = 0; i < n[b]; i++, r++) {
            float *row = m->x + (int64_t)r * E;
            row_seq[r] = b;
            row_pos[r] = kv[b]->len + i;
            if (ids[b][i] == -1) {
                memcpy(row, m->img + (k++) * E, (size_t)E * sizeof(float));
            } else {
                const uint8_t *src = (const uint8_t *)m->tok_embd->data + (uint64_t)ids[b][i] * m->tok_row_bytes;
                if ((st = vlmn_dequant(m->tok_embd->type, src, row, E))) goto done;
            }
            /* as op_rope_table at position row_pos[r] */
            for (int j = 0; j < half; j++) {
                double inv = pow((double)m->rope_base, -(2.0 * j) / (double)m->head_dim);
                double ang = (double)row_pos[r] * inv;
                m->rope[((int64_t)r * half + j) * 2 + 0] = (float)cos(ang);
                m->rope[((int64_t)r * half + j) * 2 + 1] = (float)sin(ang);
            }
        }
    }
    lap(&t0, &tm->rope);

    const int64_t LQ = E + 2 * KV;
    float *q = m->qkv, *k = m->qkv + E, *v = m->qkv + E + KV;
    const bool vec = m->prec != VLMN_PREC_EXACT && vlmn_isa_active() == VLMN_ISA_AVX512;
    for (int l = 0; l < in->n_layer; l++) {
        const text_layer *L = &m->tl[l];
        rmsnorm(m, m->x, m->xn, T, E, L->attn_norm);
        lap(&t0, &tm->norm);
        if (L->has_qkv) {
            gemm(m, &L->qkv, m->xn, T, E, q, LQ, false);
        } else {
            gemm(m, &L->wq, m->xn, T, E, q, LQ, false);
            gemm(m, &L->wk, m->xn, T, E, k, LQ, false);
            gemm(m, &L->wv, m->xn, T, E, v, LQ, false);
        }
        lap(&t0, &tm->qkv);
        rope(m, q, T, LQ, in->n_head);
        rope(m, k, T, LQ, in->n_head_kv);
        for (int64_t r = 0; r < T; r++) {
            vlmn_kv *c = kv[row_seq[r]];
            int64_t at = ((int64_t)l * c->cap + row_pos[r]) * KV;
            memcpy(c->k + at, k + r * LQ, (size_t)KV * sizeof(float));
            memcpy(c->v + at, v + r * LQ, (size_t)KV * sizeof(float));
        }
        lap(&t0, &tm->rope);
        kv_att ka = {q, LQ, m->att, kv, row_seq, row_pos, l, T, in->n_head, in->n_head_kv, m->head_dim,
                     1.0f / sqrtf((float)m->head_dim), sc, max_keys};
        vlmn_pool_run(m->pool, kv_att_run, &ka);
        lap(&t0, &tm->attention);
        gemm(m, &L->wo, m->att, T, E, m->x, E, true);
        lap(&t0, &tm->wo);

        rmsnorm(m, m->x, m->xn, T, E, L->ffn_norm);
        lap(&t0, &tm->norm);
        if (L->has_gu) {
            gemm(m, &L->gu, m->xn, T, E, m->gu, 2 * FF, false);
        } else {
            gemm(m, &L->gate, m->xn, T, E, m->gu, 2 * FF, false);
            gemm(m, &L->up, m->xn, T, E, m->gu + FF, 2 * FF, false);
        }
        lap(&t0, &tm->ffn_up);
        bool cap = opts->capture && (!opts->capture_layers || opts->capture_layers[l]);
        bool split = cap && opts->hook == VLMN_HOOK_SILU_GATE;
        ffn_act fa = {m->gate, m->gu, opts->neuron_mask ? opts->neuron_mask[l] : NULL, T, FF,
                      split ? ACT_SILU : ACT_SWIGLU, vec};
        vlmn_pool_run(m->pool, ffn_act_rows, &fa);
        if (split) {
            lap(&t0, &tm->act);
            opts->capture(opts->capture_user, l, m->gate, T, FF);
            lap(&t0, &tm->capture);
            fa.stage = ACT_MUL;
            vlmn_pool_run(m->pool, ffn_act_rows, &fa);
        }
        lap(&t0, &tm->act);
        if (cap && opts->hook == VLMN_HOOK_SWIGLU) {
            opts->capture(opts->capture_user, l, m->gate, T, FF);
            lap(&t0, &tm->capture);
        }
        gemm(m, &L->down, m->gate, T, FF, m->x, E, true);
        lap(&t0, &tm->down);
    }
    for (int b = 0; b < n_seq; b++) kv[b]->len += n[b];
    if (opts->logits) {
        /* the last n_logits rows of every sequence, gathered: one GEMM for all */
        const int64_t nl = opts->n_logits;
        for (int b = 0, r0 = 0; b < n_seq; r0 += (int)n[b], b++)
            op_rmsnorm(m->x + (r0 + n[b] - nl) * E, m->xn + (int64_t)b * nl * E, nl, E, E, m->out_norm, m->rms_eps);
        gemm(m, &m->output, m->xn, (int64_t)n_seq * nl, E, opts->logits, in->n_vocab, false);
        lap(&t0, &tm->logits);
    }
    tm->total = now_s() - t_start;
done:
    vlmn_free(row_seq);
    vlmn_free(sc);
    return st;
}
