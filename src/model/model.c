/* The model (docs/engine.md): a GGUF pair (text + vision projector) loaded as the parts
 * the architecture table (arch.c) names for it, behind the public API of
 * include/vlmn/model.h: vision encoder -> projector -> decoder, with the FFN
 * activations of every layer handed to a capture callback. Callers (probe, record,
 * trace, generate) do not know the architecture. */
#include "model/engine.h"
#include "vlmn/tokenizer.h"

#include "core/alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vlmn_llava_free(vlmn_llava *m)
{
    if (!m) return;
    dec_free(&m->dec);
    vit_free(&m->vit);
    proj_free(&m->proj);
    vlmn_tok_free(m->tok);
    vlmn_pool_free(m->ctx.pool);
    vlmn_gguf_close(m->gt);
    vlmn_gguf_close(m->gv);
    vlmn_free(m);
}

static vlmn_status load_parts(vlmn_llava *m)
{
    vlmn_status st;
    const char *arch;
    const char *path = vlmn_gguf_path(m->gt);
    if ((st = vlmn_gguf_get_str(m->gt, "general.architecture", &arch))) return st;
    m->arch = eng_arch_for_text(arch);
    if (!m->arch)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: key general.architecture is '%s', expected one of: %s", path, arch,
                          eng_arch_list());
    if ((st = dec_load(&m->dec, m->gt, m->arch))) return st;
    vlmn_llava_info *in = &m->info;
    in->n_layer = m->dec.n_layer;
    in->n_embd = m->dec.n_embd;
    in->n_ff = m->dec.n_ff;
    in->n_head = m->dec.n_head;
    in->n_head_kv = m->dec.n_head_kv;
    in->n_vocab = m->dec.n_vocab;
    in->n_ctx = m->dec.n_ctx;
    in->arch = m->arch->name;
    in->template_name = m->arch->template_name;
    in->max_tiles = m->arch->max_tiles;
    if (!m->gv) return VLMN_OK; /* text-only: samples without image positions */
    const vlmn_gguf *g = m->gv;
    const char *vpath = vlmn_gguf_path(g);
    bool b;
    if ((st = eng_expect_str(g, "general.architecture", m->arch->vision_arch, true))) return st;
    if ((st = vlmn_gguf_get_bool(g, m->arch->vision_flag, &b))) return st;
    if (!b) return vlmn_error(VLMN_E_UNSUPPORTED, "%s: %s is false", vpath, m->arch->vision_flag);
    if ((st = eng_expect_str(g, "clip.projector_type", m->arch->proj_type, false))) return st;
    if ((st = vit_load(&m->vit, g, m->arch->vit))) return st;
    m->has_vision = true;
    in->image_size = m->vit.image_size;
    memcpy(in->image_mean, m->vit.mean, sizeof in->image_mean);
    memcpy(in->image_std, m->vit.std, sizeof in->image_std);
    if ((st = proj_load(&m->proj, g, m->arch->projector, m->vit.width, m->vit.grid, path, in->n_embd))) return st;
    in->n_image_tokens = (int)m->proj.n_rows;
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
    m->ctx.prec = params ? params->precision : VLMN_PREC_FAST;
    if ((st = load_parts(m))) goto fail;
    if ((st = vlmn_tok_from_gguf(m->gt, &m->tok))) goto fail;
    if (vlmn_tok_n_vocab(m->tok) > m->info.n_vocab) {
        st = vlmn_error(VLMN_E_MISMATCH, "%s: the tokenizer has %d pieces but token_embd.weight only %d rows",
                        vlmn_gguf_path(m->gt), (int)vlmn_tok_n_vocab(m->tok), m->info.n_vocab);
        goto fail;
    }
    if ((st = vlmn_pool_create(params ? params->n_threads : 0, &m->ctx.pool))) goto fail;
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
struct vlmn_tok *vlmn_llava_tokenizer(const vlmn_llava *m) { return m->tok; }

/* Vision encoder + projector: tile `tile` of the pixels -> [n_image_tokens x n_embd] */
static const float *image_embeddings(vlmn_llava *m, const float *px, int64_t tile)
{
    const int64_t S = m->vit.image_size;
    const float *f = vit_forward(&m->vit, &m->ctx, px + tile * 3 * S * S);
    return proj_forward(&m->proj, &m->ctx, f);
}

vlmn_status vlmn_llava_forward(vlmn_llava *m, const int32_t *ids, int64_t n,
                               const float *image, const vlmn_forward_opts *opts)
{
    static const vlmn_forward_opts none = {0};
    const vlmn_llava_info *in = &m->info;
    eng_dec *d = &m->dec;
    vlmn_status st;
    if (!opts) opts = &none;
    const int64_t E = in->n_embd, NT = opts->n_tiles > 0 ? opts->n_tiles : 1, NI = in->n_image_tokens * NT;
    if (opts->n_tiles < 0 || opts->n_tiles > 4096) return vlmn_error(VLMN_E_ARG, "llava: n_tiles %d", opts->n_tiles);
    if (!ids || n <= 0) return vlmn_error(VLMN_E_ARG, "llava: empty token sequence");
    if (d->n_ctx > 0 && n > d->n_ctx)
        return vlmn_error(VLMN_E_RANGE, "llava: %lld positions exceed the model's context length %d", (long long)n, d->n_ctx);
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
    if (image && !m->has_vision) return vlmn_error(VLMN_E_ARG, "llava: an image was given but no mmproj file was loaded");
    if (opts->n_layers_run < 0 || opts->n_layers_run > in->n_layer || (opts->n_layers_run && opts->logits))
        return vlmn_error(VLMN_E_ARG, "llava: n_layers_run %d outside [0, %d] or with logits", opts->n_layers_run,
                          in->n_layer);
    const int n_run = opts->n_layers_run ? opts->n_layers_run : in->n_layer;
    if ((st = dec_ensure_scratch(d, n))) return st;

    vlmn_llava_times *tm = &m->times;
    memset(tm, 0, sizeof *tm);
    double t_start = eng_now(), t0 = t_start;
    /* input embeddings: token rows, image embeddings in place of the -1 positions
     * (tile after tile) */
    const int64_t NI1 = in->n_image_tokens;
    const float *img = NULL;
    for (int64_t i = 0, k = 0; i < n; i++) {
        if (ids[i] == -1) {
            if (k % NI1 == 0) {
                eng_lap(&t0, &tm->rope);
                img = image_embeddings(m, image, k / NI1);
                eng_lap(&t0, &tm->vision);
            }
            memcpy(d->x + i * E, img + (k % NI1) * E, (size_t)E * sizeof(float));
            k++;
        } else if ((st = dec_embed_token(d, ids[i], i))) {
            return st;
        }
    }
    dec_forward(d, &m->ctx, n, n_run, opts, tm, &t0);
    tm->total = eng_now() - t_start;
    return VLMN_OK;
}

/* ------------------------------------------------------------------------------ */
/* KV cache and incremental steps (decoding, see decode.c and docs/generate.md)   */

uint64_t vlmn_kv_bytes(const vlmn_llava *m, int64_t cap)
{
    return 2ull * (uint64_t)m->info.n_layer * (uint64_t)(cap > 0 ? cap : 0) * (uint64_t)m->dec.kv_dim * sizeof(float);
}

vlmn_status vlmn_kv_create(const vlmn_llava *m, int64_t cap, vlmn_kv **out)
{
    *out = NULL;
    if (cap < 1) return vlmn_error(VLMN_E_ARG, "llava: KV cache of %lld positions", (long long)cap);
    if (m->dec.n_ctx > 0 && cap > m->dec.n_ctx)
        return vlmn_error(VLMN_E_RANGE, "llava: %lld positions exceed the model's context length %d", (long long)cap,
                          m->dec.n_ctx);
    vlmn_kv *kv = vlmn_calloc(1, sizeof *kv);
    if (!kv) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for the KV cache");
    kv->n_layer = m->info.n_layer;
    kv->kv_dim = m->dec.kv_dim;
    kv->cap = cap;
    bool ok = true;
    kv->k = eng_scratch((int64_t)kv->n_layer * cap, kv->kv_dim, &ok);
    kv->v = eng_scratch((int64_t)kv->n_layer * cap, kv->kv_dim, &ok);
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

vlmn_status vlmn_llava_step(vlmn_llava *m, int n_seq, vlmn_kv *const *kv, const int32_t *const *ids,
                            const int64_t *n, const float *const *images, const vlmn_forward_opts *opts)
{
    static const vlmn_forward_opts none = {0};
    const vlmn_llava_info *in = &m->info;
    eng_dec *d = &m->dec;
    vlmn_status st;
    if (!opts) opts = &none;
    const int64_t E = in->n_embd, KV = d->kv_dim, NT = opts->n_tiles > 0 ? opts->n_tiles : 1;
    const int64_t NI1 = in->n_image_tokens, NI = NI1 * NT;
    if (opts->n_tiles < 0 || opts->n_tiles > 4096) return vlmn_error(VLMN_E_ARG, "llava: n_tiles %d", opts->n_tiles);
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
        if (img && !m->has_vision) return vlmn_error(VLMN_E_ARG, "llava: an image was given but no mmproj file was loaded");
        T += n[b];
        if (kv[b]->len + n[b] > max_keys) max_keys = kv[b]->len + n[b];
    }
    if ((st = dec_ensure_scratch(d, T))) return st;
    int64_t *row_seq = vlmn_malloc((size_t)T * 2 * sizeof(int64_t));
    if (!row_seq) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for a %lld-row step", (long long)T);
    int64_t *row_pos = row_seq + T;

    vlmn_llava_times *tm = &m->times;
    memset(tm, 0, sizeof *tm);
    double t_start = eng_now(), t0 = t_start;
    /* input embeddings and the RoPE rows at each row's own position */
    const int half = d->head_dim / 2;
    for (int b = 0, r = 0; b < n_seq; b++) {
        const float *img = NULL;
        for (int64_t i = 0, k = 0; i < n[b]; i++, r++) {
            row_seq[r] = b;
            row_pos[r] = kv[b]->len + i;
            if (ids[b][i] == -1) {
                if (k % NI1 == 0) {
                    img = image_embeddings(m, images[b], k / NI1);
                    eng_lap(&t0, &tm->vision);
                }
                memcpy(d->x + (int64_t)r * E, img + (k % NI1) * E, (size_t)E * sizeof(float));
                k++;
            } else if ((st = dec_embed_token(d, ids[b][i], r))) {
                goto done;
            }
            /* as op_rope_table at position row_pos[r] */
            for (int j = 0; j < half; j++) {
                double inv = pow((double)d->rope_base, -(2.0 * j) / (double)d->head_dim);
                double ang = (double)row_pos[r] * inv;
                d->rope[((int64_t)r * half + j) * 2 + 0] = (float)cos(ang);
                d->rope[((int64_t)r * half + j) * 2 + 1] = (float)sin(ang);
            }
        }
    }
    eng_lap(&t0, &tm->rope);
    st = dec_step(d, &m->ctx, n_seq, kv, n, row_seq, row_pos, T, max_keys, opts, tm, &t0);
    tm->total = eng_now() - t_start;
done:
    vlmn_free(row_seq);
    return st;
}
