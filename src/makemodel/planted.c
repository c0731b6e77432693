/* The planted LLaVA: a tiny model whose weights are constructed so that chosen FFN
 * neurons are visual (fire on image patches of one colour), text (fire on one word of the
 * description), multi-modal (a colour's patches and its word) or unknown (never fire).
 * How: CLIP passes a patch's mean colour through untouched, the projector turns it into
 * per-colour detector values on reserved text dimensions, chosen word embeddings carry a
 * unit on their own reserved dimensions, LLaMA attention and FFN outputs are zero so every
 * layer sees the input embedding, and each planted neuron's gate row is a large multiple
 * of its feature direction minus a threshold carried by a constant dimension.
 * docs/make-model.md explains the arithmetic. */
#include "vlmn/makemodel.h"
#include "vlmn/gguf.h"
#include "vlmn/types.h"
#include "makemodel/makemodel_int.h"
#include "makemodel/palette.h"
#include "makemodel/rng.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Fixed sizes of the construction. */
#define P_EMBD 64
#define P_FF 64
#define P_LAYER 4
#define P_VEMBD 32

/* Text dimensions: 0 constant, then colour (image), colour-word and shape-word dims. */
#define DIM_CONST 0
#define DIM_COL(c) (1 + (c))
#define DIM_WCOL(c) (1 + MM_N_FEATURE_COLOURS + (c))
#define DIM_WSHAPE(s) (1 + 2 * MM_N_FEATURE_COLOURS + (s))
#define DIM_FREE0 (1 + 2 * MM_N_FEATURE_COLOURS + MM_N_SHAPES)

/* Constants of the construction (see docs/make-model.md). */
#define C_B 8.0f       /* value of the constant text dimension */
#define C_FREE 0.25f   /* std of the free text dimensions (token embeddings, image bias) */
#define C_K 20.0f      /* magnitude of the constant +-K vision channels */
#define C_G 12.0f      /* detector gain in the projector */
#define C_T 0.8f       /* detector threshold on the colour score */
#define C_GATE 16.0f   /* gate gain of planted neurons */
#define C_THETA 0.5f   /* gate threshold on the feature value (0 absent, 1 present) */
#define C_WEAK 0.3f    /* gate scale of the unplanted, random neurons */
#define C_READ 3.0f    /* last-layer read-out of the multimodal neurons: +~2 on every shape
                        * word's logit where the neuron fires (on its colour word) */

enum { T_VISUAL, T_TEXT, T_MULTI, T_UNKNOWN };
static const char *const type_names[] = {"visual", "text", "multimodal", "unknown"};

typedef struct planted { int type, feature, layer, neuron; } planted;

/* 8 of each type, 2 of each type per layer. Features: colour index (visual,
 * multimodal) or shape index (text). */
static const int plan[][2] = {
    {T_VISUAL, 0}, {T_VISUAL, 1}, {T_VISUAL, 2}, {T_VISUAL, 3}, {T_VISUAL, 4}, {T_VISUAL, 5}, {T_VISUAL, 0}, {T_VISUAL, 1},
    {T_TEXT, 0}, {T_TEXT, 1}, {T_TEXT, 2}, {T_TEXT, 3}, {T_TEXT, 4}, {T_TEXT, 5}, {T_TEXT, 0}, {T_TEXT, 1},
    {T_MULTI, 0}, {T_MULTI, 1}, {T_MULTI, 2}, {T_MULTI, 3}, {T_MULTI, 4}, {T_MULTI, 5}, {T_MULTI, 2}, {T_MULTI, 3},
    {T_UNKNOWN, -1}, {T_UNKNOWN, -1}, {T_UNKNOWN, -1}, {T_UNKNOWN, -1},
    {T_UNKNOWN, -1}, {T_UNKNOWN, -1}, {T_UNKNOWN, -1}, {T_UNKNOWN, -1},
};
#define N_PLANTED ((int)(sizeof plan / sizeof plan[0]))

void vlmn_mm_planted_defaults(vlmn_mm_config *c)
{
    c->n_embd = P_EMBD, c->n_ff = P_FF, c->n_layer = P_LAYER, c->n_head = 4, c->n_head_kv = 4;
    c->n_vocab = 1000, c->n_ctx = 2048;
    c->v_size = 224, c->v_patch = 14, c->v_embd = P_VEMBD, c->v_ff = 64, c->v_layer = 2, c->v_head = 2;
    c->v_proj_dim = 64;
    c->type = c->type ? c->type : VLMN_TYPE_F32;
}

/* Colour score of an RGB value (0..1) for feature colour c: +-(x - 0.5) summed towards
 * c's corner of the RGB cube; 1.5 at the corner itself, <= 0.5 at every other corner. */
static double colour_score(int c, const double x[3])
{
    double s = 0;
    for (int i = 0; i < 3; i++) s += (mm_feature_corner[c][i] ? 1.0 : -1.0) * (x[i] - 0.5);
    return s;
}

static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* Check that every detector separates its colour from all other colours drawn. */
static vlmn_status check_palette(void)
{
    for (int c = 0; c < MM_N_FEATURE_COLOURS; c++) {
        const mm_colour *all[MM_N_FEATURE_COLOURS + MM_N_NEUTRAL_COLOURS + MM_N_BACKGROUNDS];
        int n = 0;
        for (int i = 0; i < MM_N_FEATURE_COLOURS; i++) all[n++] = &mm_feature_colours[i];
        for (int i = 0; i < MM_N_NEUTRAL_COLOURS; i++) all[n++] = &mm_neutral_colours[i];
        for (int i = 0; i < MM_N_BACKGROUNDS; i++) all[n++] = &mm_backgrounds[i];
        for (int i = 0; i < n; i++) {
            double x[3] = {all[i]->rgb[0] / 255.0, all[i]->rgb[1] / 255.0, all[i]->rgb[2] / 255.0};
            double s = colour_score(c, x);
            bool self = all[i] == &mm_feature_colours[c];
            if (self ? s < C_T + 0.15 : s > C_T - 0.15)
                return vlmn_error(VLMN_E_INTERNAL, "planted: detector %s does not separate %s (score %.3f)",
                                  mm_feature_colours[c].name, all[i]->name, s);
        }
    }
    return VLMN_OK;
}

typedef struct buf { char name[64]; uint32_t n_dims; uint64_t ne[4]; float *v; bool f32; } buf;

typedef struct builder {
    buf *b;
    int n, cap;
    mm_rng rng;
} builder;

/* A zero-filled tensor; `f32` keeps it F32 whatever the weight type (1-D tensors). */
static float *new_tensor(builder *B, const char *name, uint32_t n_dims, uint64_t e0, uint64_t e1, uint64_t e2, uint64_t e3)
{
    if (B->n == B->cap) {
        int nc = B->cap ? B->cap * 2 : 64;
        buf *nb = vlmn_realloc(B->b, (size_t)nc * sizeof *nb);
        if (!nb) return NULL;
        B->b = nb;
        B->cap = nc;
    }
    buf *x = &B->b[B->n];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->n_dims = n_dims;
    x->ne[0] = e0, x->ne[1] = e1, x->ne[2] = e2, x->ne[3] = e3;
    x->f32 = n_dims == 1;
    x->v = vlmn_calloc((size_t)(e0 * e1 * e2 * e3), sizeof(float));
    if (!x->v) return NULL;
    B->n++;
    return x->v;
}

static void fill_normal(builder *B, float *v, size_t n, float std, float mean)
{
    for (size_t i = 0; i < n; i++) v[i] = mean + std * mm_rng_normal(&B->rng);
}

static void builder_free(builder *B)
{
    for (int i = 0; i < B->n; i++) vlmn_free(B->b[i].v);
    vlmn_free(B->b);
}

static vlmn_status write_built(builder *B, const vlmn_mm_config *c, int which, const char *path, const vlmn_mm_vocab *v)
{
    vlmn_gguf_writer *w = NULL;
    vlmn_status st;
    if ((st = vlmn_gguf_writer_create(&w))) return st;
    st = which == MM_TEXT ? vlmn_mm_text_metadata(w, c, "vlmn planted llava (llama)", v)
                          : vlmn_mm_clip_metadata(w, c, "vlmn planted llava (clip)");
    for (int i = 0; !st && i < B->n; i++) {
        const buf *x = &B->b[i];
        uint32_t type = x->f32 ? VLMN_TYPE_F32 : c->type;
        if (type == VLMN_TYPE_Q8_0 && x->ne[0] % 32) type = VLMN_TYPE_F16; /* the conv kernel */
        st = vlmn_gguf_add_tensor_f32(w, x->name, type, x->n_dims, x->ne, x->v);
    }
    if (!st) st = vlmn_gguf_write(w, path);
    vlmn_gguf_writer_free(w);
    return st;
}

#define NEW(name, nd, e0, e1, e2, e3)                                            \
    do {                                                                         \
        if (!(t = new_tensor(B, name, nd, e0, e1, e2, e3))) goto nomem;         \
    } while (0)

static vlmn_status build_clip(builder *B, const vlmn_mm_config *c)
{
    const uint64_t E = P_VEMBD, FF = (uint64_t)c->v_ff, P = (uint64_t)c->v_patch, D = P_EMBD;
    const uint64_t n_pos = (uint64_t)(c->v_size / c->v_patch) * (uint64_t)(c->v_size / c->v_patch) + 1;
    const int n_k = (int)E - 6; /* channels 6.. carry +-K */
    float *t;
    char nm[64];
    NEW("v.class_embd", 1, E, 1, 1, 1);
    /* Conv kernel [E, 3, P, P]: channel ch < 3 averages colour ch over the patch,
     * channel 3 + ch its negation, so the vector sums to zero (LayerNorm's mean). */
    NEW("v.patch_embd.weight", 4, P, P, 3, E);
    for (uint64_t ch = 0; ch < 3; ch++)
        for (uint64_t k = 0; k < P * P; k++) {
            t[(ch * 3 + ch) * P * P + k] = 1.0f / (float)(P * P);
            t[((ch + 3) * 3 + ch) * P * P + k] = -1.0f / (float)(P * P);
        }
    /* +-K on the remaining channels at every position: LayerNorm's variance is then
     * dominated by a constant, so pre_ln scales the colour channels by ~1/sigma0. */
    NEW("v.position_embd.weight", 2, E, n_pos, 1, 1);
    for (uint64_t p = 0; p < n_pos; p++)
        for (int j = 0; j < n_k; j++) t[p * E + 6 + (uint64_t)j] = (j & 1) ? -C_K : C_K;
    NEW("v.pre_ln.weight", 1, E, 1, 1, 1);
    for (int j = 0; j < 6; j++) t[j] = 1.0f; /* the +-K channels are dropped here */
    NEW("v.pre_ln.bias", 1, E, 1, 1, 1);
    for (int l = 0; l < c->v_layer; l++) {
        /* Random attention inputs and fc1, zero attention output and fc2: each block
         * adds nothing to the residual stream. */
        static const char *const qkvo[4] = {"attn_q", "attn_k", "attn_v", "attn_out"};
        for (int k = 0; k < 4; k++) {
            snprintf(nm, sizeof nm, "v.blk.%d.%s.weight", l, qkvo[k]);
            NEW(nm, 2, E, E, 1, 1);
            if (k < 3) fill_normal(B, t, E * E, 1.0f / sqrtf((float)E), 0);
            snprintf(nm, sizeof nm, "v.blk.%d.%s.bias", l, qkvo[k]);
            NEW(nm, 1, E, 1, 1, 1);
        }
        snprintf(nm, sizeof nm, "v.blk.%d.ln1.weight", l);
        NEW(nm, 1, E, 1, 1, 1);
        fill_normal(B, t, E, 0, 1.0f);
        snprintf(nm, sizeof nm, "v.blk.%d.ln1.bias", l);
        NEW(nm, 1, E, 1, 1, 1);
        snprintf(nm, sizeof nm, "v.blk.%d.ffn_down.weight", l); /* fc1 (legacy name swap) */
        NEW(nm, 2, E, FF, 1, 1);
        fill_normal(B, t, E * FF, 1.0f / sqrtf((float)E), 0);
        snprintf(nm, sizeof nm, "v.blk.%d.ffn_down.bias", l);
        NEW(nm, 1, FF, 1, 1, 1);
        snprintf(nm, sizeof nm, "v.blk.%d.ffn_up.weight", l); /* fc2 */
        NEW(nm, 2, FF, E, 1, 1);
        snprintf(nm, sizeof nm, "v.blk.%d.ffn_up.bias", l);
        NEW(nm, 1, E, 1, 1, 1);
        snprintf(nm, sizeof nm, "v.blk.%d.ln2.weight", l);
        NEW(nm, 1, E, 1, 1, 1);
        fill_normal(B, t, E, 0, 1.0f);
        snprintf(nm, sizeof nm, "v.blk.%d.ln2.bias", l);
        NEW(nm, 1, E, 1, 1, 1);
    }
    /* Projector. Pixel x (0..1) is normalised to n = (x - mean) / std, averaged over the
     * patch, and leaves pre_ln as f = n / sigma0 (sigma0 = K sqrt(n_k / E)). Hidden unit
     * c computes G (score_c(x) - T) from f; GELU keeps it only where colour c is present;
     * mm.2 scales it so a patch of exactly the palette colour gives 1 on DIM_COL(c). */
    const double sigma0 = C_K * sqrt((double)n_k / (double)E);
    float *w0, *b0, *w2, *b2;
    NEW("mm.0.weight", 2, E, D, 1, 1);
    w0 = t;
    NEW("mm.0.bias", 1, D, 1, 1, 1);
    b0 = t;
    NEW("mm.2.weight", 2, D, D, 1, 1);
    w2 = t;
    NEW("mm.2.bias", 1, D, 1, 1, 1);
    b2 = t;
    for (int col = 0; col < MM_N_FEATURE_COLOURS; col++) {
        double bias = -C_T;
        for (int i = 0; i < 3; i++) {
            double a = mm_feature_corner[col][i] ? 1.0 : -1.0;
            /* score = sum a_i (x_i - 0.5), x_i = std_i * sigma0 * f_i + mean_i */
            w0[(uint64_t)col * E + (uint64_t)i] = (float)(C_G * a * vlmn_mm_clip_std[i] * sigma0);
            bias += a * (vlmn_mm_clip_mean[i] - 0.5);
        }
        b0[col] = (float)(C_G * bias);
        double x[3] = {mm_feature_colours[col].rgb[0] / 255.0, mm_feature_colours[col].rgb[1] / 255.0,
                       mm_feature_colours[col].rgb[2] / 255.0};
        double full = gelu(C_G * (colour_score(col, x) - C_T));
        w2[(uint64_t)DIM_COL(col) * D + (uint64_t)col] = (float)(1.0 / full);
    }
    b2[DIM_CONST] = C_B;
    for (uint64_t d = DIM_FREE0; d < D; d++) b2[d] = C_FREE * mm_rng_normal(&B->rng);
    return VLMN_OK;
nomem:
    return vlmn_error(VLMN_E_NOMEM, "planted: out of memory");
}

static vlmn_status build_text(builder *B, const vlmn_mm_config *c, const vlmn_mm_vocab *v, const planted *pl)
{
    const uint64_t D = P_EMBD, F = P_FF, V = (uint64_t)v->n;
    const uint64_t hd = D / (uint64_t)c->n_head, kv = hd * (uint64_t)c->n_head_kv;
    float *t;
    char nm[64];
    /* Token embeddings: the constant, random free dimensions, and a unit on the word
     * dimension of the colour and shape words. */
    NEW("token_embd.weight", 2, D, V, 1, 1);
    for (uint64_t i = 0; i < V; i++) {
        t[i * D + DIM_CONST] = C_B;
        for (uint64_t d = DIM_FREE0; d < D; d++) t[i * D + d] = C_FREE * mm_rng_normal(&B->rng);
    }
    for (int col = 0; col < MM_N_FEATURE_COLOURS; col++) {
        char piece[64];
        snprintf(piece, sizeof piece, "\xe2\x96\x81%s", mm_feature_colours[col].name);
        int32_t id = vlmn_mm_vocab_find(v, piece);
        if (id < 0) return vlmn_error(VLMN_E_ARG, "planted: vocabulary of %d pieces has no piece '%s': use a larger --n-vocab", v->n, piece);
        t[(uint64_t)id * D + DIM_WCOL(col)] = 1.0f;
    }
    int32_t shape_id[MM_N_SHAPES];
    for (int s = 0; s < MM_N_SHAPES; s++) {
        char piece[64];
        snprintf(piece, sizeof piece, "\xe2\x96\x81%s", mm_shape_names[s]);
        int32_t id = vlmn_mm_vocab_find(v, piece);
        if (id < 0) return vlmn_error(VLMN_E_ARG, "planted: vocabulary of %d pieces has no piece '%s': use a larger --n-vocab", v->n, piece);
        t[(uint64_t)id * D + DIM_WSHAPE(s)] = 1.0f;
        shape_id[s] = id;
    }
    NEW("output_norm.weight", 1, D, 1, 1, 1);
    fill_normal(B, t, D, 0, 1.0f);
    NEW("output.weight", 2, D, V, 1, 1);
    fill_normal(B, t, D * V, 1.0f / sqrtf((float)D), 0);
    const float *out_w = t;
    for (int l = 0; l < c->n_layer; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        NEW(nm, 1, D, 1, 1, 1);
        fill_normal(B, t, D, 0, 1.0f);
        /* Random Q/K/V (their row order does not matter for random values) and a zero
         * output projection: attention leaves the residual stream unchanged. */
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l);
        NEW(nm, 2, D, D, 1, 1);
        fill_normal(B, t, D * D, 1.0f / sqrtf((float)D), 0);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l);
        NEW(nm, 2, D, kv, 1, 1);
        fill_normal(B, t, D * kv, 1.0f / sqrtf((float)D), 0);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);
        NEW(nm, 2, D, kv, 1, 1);
        fill_normal(B, t, D * kv, 1.0f / sqrtf((float)D), 0);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l);
        NEW(nm, 2, D, D, 1, 1);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        NEW(nm, 1, D, 1, 1, 1);
        fill_normal(B, t, D, 0, 1.0f);
        float *gate, *up;
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l);
        NEW(nm, 2, D, F, 1, 1);
        gate = t;
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);
        NEW(nm, 2, D, F, 1, 1);
        up = t;
        /* Unplanted neurons: weak random gates on the free dimensions only. */
        for (uint64_t j = 0; j < F; j++) {
            for (uint64_t d = DIM_FREE0; d < D; d++) gate[j * D + d] = C_WEAK * mm_rng_normal(&B->rng) / sqrtf((float)(D - DIM_FREE0));
            for (uint64_t d = 0; d < D; d++) up[j * D + d] = mm_rng_normal(&B->rng) / sqrtf((float)D);
        }
        for (int p = 0; p < N_PLANTED; p++) {
            if (pl[p].layer != l) continue;
            float *g = gate + (uint64_t)pl[p].neuron * D, *u = up + (uint64_t)pl[p].neuron * D;
            memset(g, 0, D * sizeof *g);
            memset(u, 0, D * sizeof *u);
            /* up = x_const / B / rms ~ 1 > 0: SiLU(gate) * up keeps SiLU's sign (swiglu hook). */
            u[DIM_CONST] = 1.0f / C_B;
            /* gate = GATE (x_feature - THETA) / rms(x): the constant dimension carries
             * the threshold, RMSNorm scales both terms alike. */
            g[DIM_CONST] = -C_GATE * C_THETA / C_B;
            int f = pl[p].feature;
            switch (pl[p].type) {
            case T_VISUAL: g[DIM_COL(f)] = C_GATE; break;
            case T_TEXT: g[DIM_WSHAPE(f)] = C_GATE; break;
            case T_MULTI: g[DIM_COL(f)] = C_GATE, g[DIM_WCOL(f)] = C_GATE; break;
            default: g[DIM_CONST] = -C_GATE / C_B; break; /* always about -GATE */
            }
        }
        /* zero (FFNs add nothing to the residual stream), except in the last layer: its
         * multimodal neurons, which fire on their colour word, write the sum of the shape
         * words' output rows, so the model expects a shape after a colour word (a colour
         * word is always followed by its shape in the descriptions). Nothing reads the
         * residual stream after the last layer but the logits: every activation stays as
         * without it; pruning those neurons lowers the reference answers' likelihood. */
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
        NEW(nm, 2, F, D, 1, 1);
        for (int p = 0; p < N_PLANTED && l == c->n_layer - 1; p++) {
            if (pl[p].layer != l || pl[p].type != T_MULTI) continue;
            /* swiglu of a firing planted neuron: SiLU(~7.8) * up(~0.97) */
            const float scale = C_READ / 7.6f;
            for (int s = 0; s < MM_N_SHAPES; s++)
                for (uint64_t d = 0; d < D; d++) t[d * F + (uint64_t)pl[p].neuron] += scale * out_w[(uint64_t)shape_id[s] * D + d];
        }
    }
    return VLMN_OK;
nomem:
    return vlmn_error(VLMN_E_NOMEM, "planted: out of memory");
}

static vlmn_status write_json(const char *path, const planted *pl)
{
    cJSON *arr = cJSON_CreateArray();
    char *text = NULL;
    vlmn_status st = VLMN_OK;
    if (!arr) goto nomem;
    for (int p = 0; p < N_PLANTED; p++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) goto nomem;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddNumberToObject(o, "layer", pl[p].layer);
        cJSON_AddNumberToObject(o, "neuron", pl[p].neuron);
        cJSON_AddStringToObject(o, "type", type_names[pl[p].type]);
        char desc[128];
        const char *feat = NULL;
        switch (pl[p].type) {
        case T_VISUAL:
            feat = mm_feature_colours[pl[p].feature].name;
            snprintf(desc, sizeof desc, "%s image patches", feat);
            break;
        case T_TEXT:
            feat = mm_shape_names[pl[p].feature];
            snprintf(desc, sizeof desc, "the word \" %s\"", feat);
            break;
        case T_MULTI:
            feat = mm_feature_colours[pl[p].feature].name;
            snprintf(desc, sizeof desc, "%s image patches and the word \" %s\"", feat, feat);
            break;
        default: snprintf(desc, sizeof desc, "nothing (activation <= 0 everywhere)"); break;
        }
        if (feat) cJSON_AddStringToObject(o, "feature", feat);
        else cJSON_AddNullToObject(o, "feature");
        cJSON_AddStringToObject(o, "fires_on", desc);
    }
    if (!(text = cJSON_Print(arr))) goto nomem;
    char tmp[MM_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = vlmn_error(VLMN_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        remove(tmp);
        st = vlmn_error(VLMN_E_IO, "%s: write failed", path);
    }
    goto done;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "planted: out of memory");
done:
    if (text) cJSON_free(text);
    cJSON_Delete(arr);
    return st;
}

vlmn_status vlmn_mm_write_planted(const vlmn_mm_config *c, const char *prefix)
{
    vlmn_status st;
    if ((st = vlmn_mm_validate(c))) return st;
    if (c->n_embd != P_EMBD || c->n_ff != P_FF || c->n_layer != P_LAYER || c->v_embd != P_VEMBD)
        return vlmn_error(VLMN_E_ARG, "planted: n_embd %d, n_ff %d, n_layer %d and v_embd %d are fixed by the construction",
                          P_EMBD, P_FF, P_LAYER, P_VEMBD);
    if ((st = check_palette())) return st;
    char text[MM_PATH_MAX], mmproj[MM_PATH_MAX], json[MM_PATH_MAX];
    if ((st = vlmn_mm_paths(prefix, text, mmproj, json, "planted.json"))) return st;

    /* Neuron positions: planted spec i goes to layer i % n_layer at a seeded random
     * free index, so neither layers nor indices are all alike. */
    planted pl[N_PLANTED];
    mm_rng r;
    mm_rng_seed(&r, c->seed, 0x706c616e74ULL /* "plant" */, 0);
    uint8_t taken[P_LAYER][P_FF] = {{0}};
    for (int i = 0; i < N_PLANTED; i++) {
        pl[i].type = plan[i][0];
        pl[i].feature = plan[i][1];
        pl[i].layer = i % P_LAYER;
        int j;
        do j = (int)mm_rng_below(&r, P_FF);
        while (taken[pl[i].layer][j]);
        taken[pl[i].layer][j] = 1;
        pl[i].neuron = j;
    }

    vlmn_mm_vocab *v = NULL;
    builder bt = {0}, bc = {0};
    mm_rng_seed(&bt.rng, c->seed, 0x74657874ULL, 0);
    mm_rng_seed(&bc.rng, c->seed, 0x636c6970ULL, 0);
    if ((st = vlmn_mm_vocab_build(c->n_vocab, &v))) goto done;
    if ((st = build_text(&bt, c, v, pl))) goto done;
    if ((st = build_clip(&bc, c))) goto done;
    if ((st = write_built(&bt, c, MM_TEXT, text, v))) goto done;
    if ((st = write_built(&bc, c, MM_CLIP, mmproj, v))) goto done;
    st = write_json(json, pl);
done:
    builder_free(&bt);
    builder_free(&bc);
    vlmn_mm_vocab_free(v);
    return st;
}
