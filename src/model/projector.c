/* Projector (docs/engine.md): vision features [grid^2 x in_width] of one image (tile)
 * -> text embeddings [n_rows x n_embd].
 * MLP: LLaVA's `mlp2x_gelu` (HF LlavaMultiModalProjector): mm.0 Linear, exact erf GELU,
 *   mm.2 Linear; n_rows = grid^2.
 * INTERNVL: InternVLChatModel.extract_feature: pixel_shuffle(scale_factor = 1/s, the
 *   v2 order), then mlp1 = LayerNorm (eps 1e-5), Linear, GELU, Linear
 *   (mm.model.mlp.{0,1,3}); n_rows = (grid/s)^2, the MLP's input width in_width * s^2.
 *   Pixel shuffle as HF's view/permute sequence gives it: output token (i, j) (row-major
 *   over the (grid/s)^2 grid) is the concatenation, for dy = 0..s-1 then dx = 0..s-1,
 *   of the feature at grid row s*i + dy, column s*j + dx. */
#include "model/engine.h"

#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

static vlmn_status check_out(const vlmn_gguf *g, const char *name, const char *text_path, int n_embd,
                             const vlmn_gguf_tensor **t)
{
    const char *path = vlmn_gguf_path(g);
    *t = vlmn_gguf_find_tensor(g, name);
    if (!*t) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor %s: missing", path, name);
    if ((*t)->ne[1] != (uint64_t)n_embd)
        return vlmn_error(VLMN_E_MISMATCH,
                          "%s: projector output width %llu does not match %s: embedding_length %d (mismatched pair of files)",
                          path, (unsigned long long)(*t)->ne[1], text_path, n_embd);
    return VLMN_OK;
}

vlmn_status proj_load(eng_proj *p, const vlmn_gguf *g, eng_proj_kind kind, int in_width, int grid,
                      const char *text_path, int n_embd)
{
    const char *path = vlmn_gguf_path(g);
    vlmn_status st;
    const vlmn_gguf_tensor *t0, *t2;
    p->kind = kind;
    p->in_width = in_width;
    p->out_width = n_embd;
    p->grid = grid;
    p->scale = 1;
    if (kind == PROJ_MLP) {
        /* mm.0 [hidden x width], GELU, mm.2 [n_embd x hidden] */
        t0 = vlmn_gguf_find_tensor(g, "mm.0.weight");
        if (!t0) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor mm.0.weight: missing", path);
        if ((st = check_out(g, "mm.2.weight", text_path, n_embd, &t2))) return st;
        if (t0->ne[1] < 1 || t0->ne[1] > ENG_MAX_DIM)
            return vlmn_error(VLMN_E_MISMATCH, "%s: tensor mm.0.weight: bad shape", path);
        p->hidden = (int)t0->ne[1];
        p->mlp_in = in_width;
        if ((st = eng_load_matrix(g, "mm.0.weight", p->hidden, in_width, &p->w0)) ||
            (st = eng_load_vec(g, "mm.0.bias", p->hidden, &p->b0)) ||
            (st = eng_load_matrix(g, "mm.2.weight", n_embd, p->hidden, &p->w2)) ||
            (st = eng_load_vec(g, "mm.2.bias", n_embd, &p->b2)))
            return st;
    } else {
        const char *key = "clip.vision.projector.scale_factor";
        p->scale = 2; /* InternVL's downsample_ratio 0.5 */
        if (vlmn_gguf_find_key(g, key) >= 0 && (st = eng_get_int(g, key, 1, 64, &p->scale))) return st;
        if (grid % p->scale)
            return vlmn_error(VLMN_E_UNSUPPORTED, "%s: patch grid %d x %d is not divisible by %s %d", path, grid, grid,
                              key, p->scale);
        if ((int64_t)in_width * p->scale * p->scale > ENG_MAX_DIM)
            return vlmn_error(VLMN_E_RANGE, "%s: projector input too wide", path);
        p->mlp_in = in_width * p->scale * p->scale;
        if ((st = check_out(g, "mm.model.mlp.1.weight", text_path, n_embd, &t0))) return st;
        p->hidden = n_embd;
        if ((st = eng_load_vec(g, "mm.model.mlp.0.weight", p->mlp_in, &p->ln_w)) ||
            (st = eng_load_vec(g, "mm.model.mlp.0.bias", p->mlp_in, &p->ln_b)) ||
            (st = eng_load_matrix(g, "mm.model.mlp.1.weight", n_embd, p->mlp_in, &p->w0)) ||
            (st = eng_load_vec(g, "mm.model.mlp.1.bias", n_embd, &p->b0)) ||
            (st = eng_load_matrix(g, "mm.model.mlp.3.weight", n_embd, n_embd, &p->w2)) ||
            (st = eng_load_vec(g, "mm.model.mlp.3.bias", n_embd, &p->b2)))
            return st;
    }
    const int gs = grid / p->scale;
    p->n_rows = (int64_t)gs * gs;
    bool ok = true;
    if (kind == PROJ_INTERNVL) p->sh = eng_scratch(p->n_rows, p->mlp_in, &ok);
    p->h = eng_scratch(p->n_rows, p->hidden, &ok);
    p->out = eng_scratch(p->n_rows, n_embd, &ok);
    if (!ok) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for vision scratch buffers");
    return VLMN_OK;
}

void proj_free(eng_proj *p)
{
    vlmn_matrix_release(&p->w0);
    vlmn_matrix_release(&p->w2);
    vlmn_free(p->b0);
    vlmn_free(p->b2);
    vlmn_free(p->ln_w);
    vlmn_free(p->ln_b);
    vlmn_free_aligned(p->sh);
    vlmn_free_aligned(p->h);
    vlmn_free_aligned(p->out);
    memset(p, 0, sizeof *p);
}

const float *proj_forward(eng_proj *p, const eng_ctx *c, const float *features)
{
    const int64_t H = p->hidden, E = p->out_width, W = p->in_width, n = p->n_rows;
    const float *in = features;
    if (p->kind == PROJ_INTERNVL) {
        const int s = p->scale, G = p->grid, gs = G / s;
        for (int i = 0; i < gs; i++)
            for (int j = 0; j < gs; j++) {
                float *dst = p->sh + ((int64_t)i * gs + j) * p->mlp_in;
                for (int dy = 0; dy < s; dy++)
                    for (int dx = 0; dx < s; dx++, dst += W)
                        memcpy(dst, features + ((int64_t)(s * i + dy) * G + (s * j + dx)) * W, (size_t)W * sizeof(float));
            }
        eng_rows(c, EOP_LAYERNORM, p->sh, p->sh, n, p->mlp_in, p->ln_w, p->ln_b, 1e-5f);
        in = p->sh;
    }
    eng_vgemm(c, &p->w0, in, n, p->mlp_in, p->h, H, false);
    eng_rows(c, EOP_BIAS, NULL, p->h, n, H, NULL, p->b0, 0.0f);
    eng_rows(c, EOP_GELU_ERF, NULL, p->h, n, H, NULL, NULL, 0.0f);
    eng_vgemm(c, &p->w2, p->h, n, H, p->out, E, false);
    eng_rows(c, EOP_BIAS, NULL, p->out, n, E, NULL, p->b2, 0.0f);
    return p->out;
}
