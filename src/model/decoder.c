/* Decoder (docs/engine.md): the LLaMA family as HF LlamaModel computes it (RMSNorm,
 * RoPE on the converter's adjacent-pair layout, causal grouped-query attention,
 * SiLU-gated FFN), with the FFN activation of every layer handed to the capture
 * callback; the whole prompt at once (dec_forward) or rows of several sequences against
 * their KV caches (dec_step). Input: d->x [T x n_embd] filled by the model. */
#include "model/engine.h"
#include "vlmn/tokenizer.h"

#include "core/alloc.h"
#include "model/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vlmn_status dec_load(eng_dec *m, const vlmn_gguf *g, const eng_arch *a)
{
    const char *path = vlmn_gguf_path(g);
    eng_dec *in = m;
    vlmn_status st;
    char name[96], kb[128];
#define KEY(s) (snprintf(kb, sizeof kb, "%s." s, a->prefix), kb)

    m->kind = a->decoder;
    if ((st = eng_get_int(g, KEY("embedding_length"), 2, ENG_MAX_DIM, &in->n_embd)) ||
        (st = eng_get_int(g, KEY("block_count"), 1, ENG_MAX_LAYERS, &in->n_layer)) ||
        (st = eng_get_int(g, KEY("feed_forward_length"), 1, ENG_MAX_DIM, &in->n_ff)) ||
        (st = eng_get_int(g, KEY("attention.head_count"), 1, ENG_MAX_HEADS, &in->n_head)))
        return st;
    in->n_head_kv = in->n_head;
    if (vlmn_gguf_find_key(g, KEY("attention.head_count_kv")) >= 0 &&
        (st = eng_get_int(g, KEY("attention.head_count_kv"), 1, ENG_MAX_HEADS, &in->n_head_kv)))
        return st;
    m->n_ctx = 0;
    if (vlmn_gguf_find_key(g, KEY("context_length")) >= 0 &&
        (st = eng_get_int(g, KEY("context_length"), 1, 1 << 24, &m->n_ctx)))
        return st;
    if (in->n_embd % in->n_head || (in->n_embd / in->n_head) % 2)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: embedding_length %d is not an even head_dim times head_count %d",
                          path, in->n_embd, in->n_head);
    if (in->n_head % in->n_head_kv)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: head_count %d is not a multiple of head_count_kv %d", path,
                          in->n_head, in->n_head_kv);
    m->head_dim = in->n_embd / in->n_head;
    m->kv_dim = m->head_dim * in->n_head_kv;
    if (vlmn_gguf_find_key(g, KEY("rope.dimension_count")) >= 0) {
        int rd;
        if ((st = eng_get_int(g, KEY("rope.dimension_count"), 1, ENG_MAX_DIM, &rd))) return st;
        if (rd != m->head_dim)
            return vlmn_error(VLMN_E_UNSUPPORTED, "%s: rope.dimension_count %d != head_dim %d (partial RoPE not supported)",
                              path, rd, m->head_dim);
    }
    if ((st = eng_get_float(g, KEY("attention.layer_norm_rms_epsilon"), 1e-5f, 0.0f, 1.0f, &m->rms_eps)) ||
        (st = eng_get_float(g, KEY("rope.freq_base"), 10000.0f, 1.0f, 1e12f, &m->rope_base)))
        return st;
    if (vlmn_gguf_find_key(g, KEY("rope.scaling.type")) >= 0) {
        const char *s;
        if ((st = vlmn_gguf_get_str(g, KEY("rope.scaling.type"), &s))) return st;
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
        if ((st = eng_get_tensor(g, "token_embd.weight", 2, ne, &m->tok_embd))) return st;
        if (vlmn_type_row_bytes(m->tok_embd->type, (uint64_t)E, &m->tok_row_bytes))
            return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor token_embd.weight: width %lld not a multiple of the block size",
                              path, (long long)E);
    }
    /* VLMN_LLAVA_NOFUSE (any value): separate GEMMs, for tests of the unfused path */
    const bool nofuse = getenv("VLMN_LLAVA_NOFUSE") != NULL;
    m->layers = vlmn_calloc((size_t)in->n_layer, sizeof *m->layers);
    if (!m->layers) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    for (int l = 0; l < in->n_layer; l++) {
        dec_layer *L = &m->layers[l];
#define NM(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
        if ((st = eng_load_vec(g, NM("attn_norm.weight"), E, &L->attn_norm)) ||
            (st = eng_load_matrix(g, NM("attn_q.weight"), E, E, &L->wq)) ||
            (st = eng_load_matrix(g, NM("attn_k.weight"), KV, E, &L->wk)) ||
            (st = eng_load_matrix(g, NM("attn_v.weight"), KV, E, &L->wv)) ||
            (st = eng_load_matrix(g, NM("attn_output.weight"), E, E, &L->wo)) ||
            (st = eng_load_vec(g, NM("ffn_norm.weight"), E, &L->ffn_norm)) ||
            (st = eng_load_matrix(g, NM("ffn_gate.weight"), FF, E, &L->gate)) ||
            (st = eng_load_matrix(g, NM("ffn_up.weight"), FF, E, &L->up)) ||
            (st = eng_load_matrix(g, NM("ffn_down.weight"), E, FF, &L->down)))
            return st;
#undef NM
        const vlmn_matrix *qkv[] = {&L->wq, &L->wk, &L->wv}, *gu[] = {&L->gate, &L->up};
        if (nofuse) continue;
        if ((st = eng_fuse_rows(qkv, 3, &L->qkv, &L->has_qkv)) || (st = eng_fuse_rows(gu, 2, &L->gu, &L->has_gu)))
            return st;
    }
    if ((st = eng_load_vec(g, "output_norm.weight", E, &m->out_norm))) return st;
    /* HF ties lm_head to embed_tokens when the converter wrote no `output` */
    if (vlmn_gguf_find_tensor(g, "output.weight"))
        st = eng_load_matrix(g, "output.weight", in->n_vocab, E, &m->output);
    else
        st = eng_load_matrix(g, "token_embd.weight", in->n_vocab, E, &m->output);
#undef KEY
    return st;
}


void dec_free(eng_dec *m)
{
    if (m->layers) {
        for (int l = 0; l < m->n_layer; l++) {
            dec_layer *L = &m->layers[l];
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
        vlmn_free(m->layers);
    }
    vlmn_free(m->out_norm);
    vlmn_matrix_release(&m->output);
    float *sc[] = {m->x, m->xn, m->qkv, m->att, m->gate, m->gu, m->rope};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(sc); i++) vlmn_free_aligned(sc[i]);
    memset(m, 0, sizeof *m);
}

vlmn_status dec_ensure_scratch(eng_dec *m, int64_t T)
{
    if (T <= m->cap) return VLMN_OK;
    float **bufs[] = {&m->x, &m->xn, &m->qkv, &m->att, &m->gate, &m->gu, &m->rope};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(bufs); i++) {
        vlmn_free_aligned(*bufs[i]);
        *bufs[i] = NULL;
    }
    m->cap = 0;
    bool ok = true;
    const int64_t E = m->n_embd, FF = m->n_ff, KV = m->kv_dim;
    m->x = eng_scratch(T, E, &ok);
    m->xn = eng_scratch(T, E, &ok);
    m->qkv = eng_scratch(T, E + 2 * KV, &ok);
    m->att = eng_scratch(T, E, &ok);
    m->gate = eng_scratch(T, FF, &ok);
    m->gu = eng_scratch(T, 2 * FF, &ok);
    m->rope = eng_scratch(T, m->head_dim, &ok);
    if (!ok) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for %lld-token scratch buffers", (long long)T);
    m->cap = T;
    return VLMN_OK;
}

vlmn_status dec_embed_token(eng_dec *m, int32_t id, int64_t r)
{
    const uint8_t *src = (const uint8_t *)m->tok_embd->data + (uint64_t)id * m->tok_row_bytes;
    return vlmn_dequant(m->tok_embd->type, src, m->x + r * m->n_embd, m->n_embd);
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

static void rmsnorm(const eng_dec *m, const eng_ctx *c, const float *x, float *y, int64_t rows, int64_t n,
                    const float *w)
{
    rows_op o = {x, y, rows, n, n, w, m->rms_eps, 0, 0, NULL,
                 c->prec != VLMN_PREC_EXACT && vlmn_isa_active() == VLMN_ISA_AVX512};
    vlmn_pool_run(c->pool, rmsnorm_rows, &o);
}

static void rope_rows(void *ctx, int ith, int nth)
{
    const rows_op *o = ctx;
    int64_t r0 = o->rows * ith / nth, r1 = o->rows * (ith + 1) / nth;
    op_rope_pairs(o->y + r0 * o->ld, r1 - r0, o->ld, o->n_head, o->head_dim, o->cs + r0 * o->head_dim);
}

static void rope(const eng_dec *m, const eng_ctx *c, float *x, int64_t rows, int64_t ld, int n_head)
{
    rows_op o = {NULL, x, rows, 0, ld, NULL, 0, n_head, m->head_dim, m->rope, false};
    vlmn_pool_run(c->pool, rope_rows, &o);
}

/* Attention of the new rows of several sequences against their caches: sequence b's
 * query i sits at position len_b + i and sees keys 0..len_b + i (causal). Tasks are
 * (row, head) pairs split over the pool, each vlmn_attention_head (f32 softmax with max
 * subtraction, like vlmn_attention). */
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
        vlmn_attention_head(q, K, V, kvd, nk, (int)hd, a->scale, sc, a->out + r * (int64_t)a->n_head * hd + (int64_t)h * hd);
    }
}

/* One decoder layer over T rows (d->x updated in place). kv == NULL: the rows are one
 * sequence at positions 0..T-1 (causal attention among them); otherwise each row
 * attends to its sequence's cache, which receives the row's K/V first. */
static void layer_run(eng_dec *m, const eng_ctx *c, int l, int64_t T, vlmn_kv *const *kv, const int64_t *row_seq,
                      const int64_t *row_pos, float *sc, int64_t max_keys, const vlmn_forward_opts *opts,
                      vlmn_llava_times *tm, double *t0)
{
    const int64_t E = m->n_embd, FF = m->n_ff, KV = m->kv_dim;
    const int64_t LQ = E + 2 * KV; /* row stride of q | k | v */
    float *q = m->qkv, *k = m->qkv + E, *v = m->qkv + E + KV;
    const bool vec = c->prec != VLMN_PREC_EXACT && vlmn_isa_active() == VLMN_ISA_AVX512;
    const dec_layer *L = &m->layers[l];
    /* attention block (LlamaAttention): pre-RMSNorm, RoPE, causal SDPA, residual */
    rmsnorm(m, c, m->x, m->xn, T, E, L->attn_norm);
    eng_lap(t0, &tm->norm);
    if (L->has_qkv) {
        eng_gemm(c, &L->qkv, m->xn, T, E, q, LQ, false);
    } else {
        eng_gemm(c, &L->wq, m->xn, T, E, q, LQ, false);
        eng_gemm(c, &L->wk, m->xn, T, E, k, LQ, false);
        eng_gemm(c, &L->wv, m->xn, T, E, v, LQ, false);
    }
    eng_lap(t0, &tm->qkv);
    rope(m, c, q, T, LQ, m->n_head);
    rope(m, c, k, T, LQ, m->n_head_kv);
    if (!kv) {
        eng_lap(t0, &tm->rope);
        vlmn_attention(c->pool, q, LQ, k, LQ, v, LQ, m->att, E, T, m->n_head, m->n_head_kv, m->head_dim,
                       1.0f / sqrtf((float)m->head_dim), true);
    } else {
        for (int64_t r = 0; r < T; r++) {
            vlmn_kv *cc = kv[row_seq[r]];
            int64_t at = ((int64_t)l * cc->cap + row_pos[r]) * KV;
            memcpy(cc->k + at, k + r * LQ, (size_t)KV * sizeof(float));
            memcpy(cc->v + at, v + r * LQ, (size_t)KV * sizeof(float));
        }
        eng_lap(t0, &tm->rope);
        kv_att ka = {q, LQ, m->att, kv, row_seq, row_pos, l, T, m->n_head, m->n_head_kv, m->head_dim,
                     1.0f / sqrtf((float)m->head_dim), sc, max_keys};
        vlmn_pool_run(c->pool, kv_att_run, &ka);
    }
    eng_lap(t0, &tm->attention);
    eng_gemm(c, &L->wo, m->att, T, E, m->x, E, true);
    eng_lap(t0, &tm->wo);

    /* FFN (LlamaMLP): down(act_fn(gate(x)) * up(x)) */
    rmsnorm(m, c, m->x, m->xn, T, E, L->ffn_norm);
    eng_lap(t0, &tm->norm);
    if (L->has_gu) {
        eng_gemm(c, &L->gu, m->xn, T, E, m->gu, 2 * FF, false);
    } else {
        eng_gemm(c, &L->gate, m->xn, T, E, m->gu, 2 * FF, false);
        eng_gemm(c, &L->up, m->xn, T, E, m->gu + FF, 2 * FF, false);
    }
    eng_lap(t0, &tm->ffn_up);
    /* pruned neurons read 0 at both hooks, as a PyTorch hook zeroing act_fn's output */
    bool cap = opts->capture && (!opts->capture_layers || opts->capture_layers[l]);
    bool split = cap && opts->hook == VLMN_HOOK_SILU_GATE;
    ffn_act fa = {m->gate, m->gu, opts->neuron_mask ? opts->neuron_mask[l] : NULL, T, FF,
                  split ? ACT_SILU : ACT_SWIGLU, vec};
    vlmn_pool_run(c->pool, ffn_act_rows, &fa);
    if (split) {
        eng_lap(t0, &tm->act);
        opts->capture(opts->capture_user, l, m->gate, T, FF);
        eng_lap(t0, &tm->capture);
        fa.stage = ACT_MUL;
        vlmn_pool_run(c->pool, ffn_act_rows, &fa);
    }
    eng_lap(t0, &tm->act);
    if (cap && opts->hook == VLMN_HOOK_SWIGLU) {
        opts->capture(opts->capture_user, l, m->gate, T, FF);
        eng_lap(t0, &tm->capture);
    }
    eng_gemm(c, &L->down, m->gate, T, FF, m->x, E, true);
    eng_lap(t0, &tm->down);
}

void dec_forward(eng_dec *m, const eng_ctx *c, int64_t n, int n_run, const vlmn_forward_opts *opts,
                 vlmn_llava_times *tm, double *t0)
{
    const int64_t E = m->n_embd;
    op_rope_table(m->rope, n, m->head_dim, m->rope_base);
    eng_lap(t0, &tm->rope);
    for (int l = 0; l < n_run; l++) layer_run(m, c, l, n, NULL, NULL, NULL, NULL, 0, opts, tm, t0);
    if (opts->logits) {
        const int64_t nl = opts->n_logits;
        const float *last = m->x + (n - nl) * E;
        op_rmsnorm(last, m->xn, nl, E, E, m->out_norm, m->rms_eps);
        eng_gemm(c, &m->output, m->xn, nl, E, opts->logits, m->n_vocab, false);
        eng_lap(t0, &tm->logits);
    }
}

vlmn_status dec_step(eng_dec *m, const eng_ctx *c, int n_seq, vlmn_kv *const *kv, const int64_t *n,
                     const int64_t *row_seq, const int64_t *row_pos, int64_t T, int64_t max_keys,
                     const vlmn_forward_opts *opts, vlmn_llava_times *tm, double *t0)
{
    const int64_t E = m->n_embd;
    int nth = vlmn_pool_size(c->pool);
    float *sc = vlmn_malloc((size_t)nth * (size_t)max_keys * sizeof(float));
    if (!sc) return vlmn_error(VLMN_E_NOMEM, "llava: out of memory for a %lld-row step", (long long)T);
    for (int l = 0; l < m->n_layer; l++) layer_run(m, c, l, T, kv, row_seq, row_pos, sc, max_keys, opts, tm, t0);
    for (int b = 0; b < n_seq; b++) kv[b]->len += n[b];
    if (opts->logits) {
        /* the last n_logits rows of every sequence, gathered: one GEMM for all */
        const int64_t nl = opts->n_logits;
        for (int b = 0, r0 = 0; b < n_seq; r0 += (int)n[b], b++)
            op_rmsnorm(m->x + (r0 + n[b] - nl) * E, m->xn + (int64_t)b * nl * E, nl, E, E, m->out_norm, m->rms_eps);
        eng_gemm(c, &m->output, m->xn, (int64_t)n_seq * nl, E, opts->logits, m->n_vocab, false);
        eng_lap(t0, &tm->logits);
    }
    vlmn_free(sc);
    return VLMN_OK;
}
