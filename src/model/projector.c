/* Projector (docs/engine.md): vision features [n x in_width] -> text embeddings
 * [n x n_embd]. LLaVA's `mlp2x_gelu` (HF LlavaMultiModalProjector): mm.0 Linear,
 * exact erf GELU, mm.2 Linear. */
#include "model/engine.h"

#include "core/alloc.h"

#include <string.h>

vlmn_status proj_load(eng_proj *p, const vlmn_gguf *g, eng_proj_kind kind, int in_width, int n_rows,
                      const char *text_path, int n_embd)
{
    const char *path = vlmn_gguf_path(g);
    vlmn_status st;
    p->kind = kind;
    p->in_width = in_width;
    p->out_width = n_embd;
    /* mm.0 [hidden x width], GELU, mm.2 [n_embd x hidden] */
    const vlmn_gguf_tensor *t0 = vlmn_gguf_find_tensor(g, "mm.0.weight");
    const vlmn_gguf_tensor *t2 = vlmn_gguf_find_tensor(g, "mm.2.weight");
    if (!t0) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor mm.0.weight: missing", path);
    if (!t2) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor mm.2.weight: missing", path);
    if (t0->ne[1] < 1 || t0->ne[1] > ENG_MAX_DIM)
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor mm.0.weight: bad shape", path);
    p->hidden = (int)t0->ne[1];
    if (t2->ne[1] != (uint64_t)n_embd)
        return vlmn_error(VLMN_E_MISMATCH,
                          "%s: projector output width %llu does not match %s: embedding_length %d (mismatched pair of files)",
                          path, (unsigned long long)t2->ne[1], text_path, n_embd);
    if ((st = eng_load_matrix(g, "mm.0.weight", p->hidden, in_width, &p->w0)) ||
        (st = eng_load_vec(g, "mm.0.bias", p->hidden, &p->b0)) ||
        (st = eng_load_matrix(g, "mm.2.weight", n_embd, p->hidden, &p->w2)) ||
        (st = eng_load_vec(g, "mm.2.bias", n_embd, &p->b2)))
        return st;
    bool ok = true;
    p->h = eng_scratch(n_rows, p->hidden, &ok);
    p->out = eng_scratch(n_rows, n_embd, &ok);
    if (!ok) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for vision scratch buffers");
    p->n_rows = n_rows;
    return VLMN_OK;
}

void proj_free(eng_proj *p)
{
    vlmn_matrix_release(&p->w0);
    vlmn_matrix_release(&p->w2);
    vlmn_free(p->b0);
    vlmn_free(p->b2);
    vlmn_free_aligned(p->h);
    vlmn_free_aligned(p->out);
    memset(p, 0, sizeof *p);
}

const float *proj_forward(eng_proj *p, const eng_ctx *c, const float *features, int64_t n)
{
    const int64_t H = p->hidden, E = p->out_width, W = p->in_width;
    eng_vgemm(c, &p->w0, features, n, W, p->h, H, false);
    eng_rows(c, EOP_BIAS, NULL, p->h, n, H, NULL, p->b0, 0.0f);
    eng_rows(c, EOP_GELU_ERF, NULL, p->h, n, H, NULL, NULL, 0.0f);
    eng_vgemm(c, &p->w2, p->h, n, H, p->out, E, false);
    eng_rows(c, EOP_BIAS, NULL, p->out, n, E, NULL, p->b2, 0.0f);
    return p->out;
}
