/* Seeded random LLaVA-1.5 model pairs in llama.cpp's GGUF layout: the `llama` text model
 * (Q/K rows in the converter's permuted order) and the legacy `clip` mmproj (fc1 stored as
 * ffn_down, fc2 as ffn_up, last block already dropped). Every row of every tensor is drawn
 * from its own RNG stream (seed, tensor name, row), so tensors are produced at write time
 * (vlmn_gguf_add_tensor_fill) and a 7B model never sits in memory. */
#include "vlmn/makemodel.h"
#include "vlmn/gguf.h"
#include "vlmn/types.h"
#include "makemodel/makemodel_int.h"
#include "makemodel/rng.h"
#include "makemodel/vocab.h"
#include "core/alloc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const float vlmn_mm_clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float vlmn_mm_clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

vlmn_status vlmn_mm_preset(const char *name, uint32_t type, vlmn_mm_config *c)
{
    memset(c, 0, sizeof *c);
    c->type = type;
    c->seed = 1;
    c->rms_eps = 1e-5f;
    c->v_eps = 1e-5f;
    c->rope_base = 10000.0f;
    if (!strcmp(name, "tiny")) {
        /* Odd sizes on purpose (5 heads of 16, one KV head, n_ff 45, 9 patches) so that
         * code assuming powers of two or n_head == n_head_kv fails loudly. Q8_0 needs
         * every row length to be a multiple of 32, hence the second set. */
        if (type == VLMN_TYPE_Q8_0) {
            c->n_embd = 96, c->n_head = 6, c->n_head_kv = 2, c->n_ff = 64;
            c->v_embd = 64, c->v_head = 4, c->v_ff = 96;
        } else {
            c->n_embd = 80, c->n_head = 5, c->n_head_kv = 1, c->n_ff = 45;
            c->v_embd = 40, c->v_head = 5, c->v_ff = 56;
        }
        c->n_layer = 3, c->n_vocab = 701, c->n_ctx = 512;
        c->v_size = 42, c->v_patch = 14, c->v_layer = 2, c->v_proj_dim = 32;
        c->rms_eps = 1e-6f;
    } else if (!strcmp(name, "llava-7b")) {
        /* LLaVA-1.5-7B: Vicuna-7B (LLaMA-2 shapes) + CLIP ViT-L/14-336 (24 blocks, the
         * converter keeps 23) + a 1024->4096->4096 MLP projector. */
        c->n_embd = 4096, c->n_ff = 11008, c->n_layer = 32, c->n_head = 32, c->n_head_kv = 32;
        c->n_vocab = 32000, c->n_ctx = 4096;
        c->v_size = 336, c->v_patch = 14, c->v_embd = 1024, c->v_ff = 4096, c->v_layer = 23;
        c->v_head = 16, c->v_proj_dim = 768;
    } else if (!strcmp(name, "planted")) {
        vlmn_mm_planted_defaults(c);
    } else if (!strcmp(name, "internvl-tiny")) {
        /* Odd sizes again: GQA 4:1 as InternLM2.5 (8 heads of 10, 2 KV heads), n_ff 45,
         * 84-pixel tiles: a 6 x 6 patch grid, 9 tokens per tile after the pixel shuffle. */
        c->arch = VLMN_MM_INTERNVL;
        if (type == VLMN_TYPE_Q8_0) {
            c->n_embd = 96, c->n_head = 8, c->n_head_kv = 2, c->n_ff = 64;
            c->v_embd = 32, c->v_head = 4, c->v_ff = 64;
        } else {
            c->n_embd = 80, c->n_head = 8, c->n_head_kv = 2, c->n_ff = 45;
            c->v_embd = 40, c->v_head = 4, c->v_ff = 56;
        }
        c->n_layer = 3, c->n_vocab = 701, c->n_ctx = 2048;
        c->v_size = 84, c->v_patch = 14, c->v_layer = 2, c->v_proj_dim = c->n_embd;
        c->v_eps = 1e-6f, c->rope_base = 1e6f;
    } else if (!strcmp(name, "internvl-8b")) {
        /* InternVL2.5-8B: InternLM2.5-7B-chat (GQA 32/8, n_ff 14336, rope_theta 1e6,
         * vocabulary 92553) + InternViT-300M-448px (24 blocks) + mlp1 4096 -> 4096. */
        c->arch = VLMN_MM_INTERNVL;
        c->n_embd = 4096, c->n_ff = 14336, c->n_layer = 32, c->n_head = 32, c->n_head_kv = 8;
        c->n_vocab = 92553, c->n_ctx = 32768, c->rope_base = 1e6f;
        c->v_size = 448, c->v_patch = 14, c->v_embd = 1024, c->v_ff = 4096, c->v_layer = 24;
        c->v_head = 16, c->v_proj_dim = 4096, c->v_eps = 1e-6f;
    } else {
        return vlmn_error(VLMN_E_ARG, "unknown preset '%s' (tiny, llava-7b, planted, internvl-tiny, internvl-8b)", name);
    }
    return VLMN_OK;
}

vlmn_status vlmn_mm_validate(const vlmn_mm_config *c)
{
    const struct { const char *name; int v, lo, hi; } dims[] = {
        {"n-embd", c->n_embd, 2, 65536}, {"n-ff", c->n_ff, 1, 262144}, {"n-layer", c->n_layer, 1, 1024},
        {"n-head", c->n_head, 1, 4096}, {"n-head-kv", c->n_head_kv, 1, 4096}, {"n-vocab", c->n_vocab, 1, 1 << 22},
        {"n-ctx", c->n_ctx, 1, 1 << 24}, {"v-size", c->v_size, 1, 8192}, {"v-patch", c->v_patch, 1, 1024},
        {"v-embd", c->v_embd, 1, 65536}, {"v-ff", c->v_ff, 1, 262144}, {"v-layer", c->v_layer, 1, 1024},
        {"v-head", c->v_head, 1, 4096}, {"v-proj-dim", c->v_proj_dim, 1, 65536},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v < dims[i].lo || dims[i].v > dims[i].hi)
            return vlmn_error(VLMN_E_ARG, "--%s %d out of range %d..%d", dims[i].name, dims[i].v, dims[i].lo, dims[i].hi);
    if (c->n_embd % c->n_head) return vlmn_error(VLMN_E_ARG, "--n-embd %d is not a multiple of --n-head %d", c->n_embd, c->n_head);
    if ((c->n_embd / c->n_head) % 2) return vlmn_error(VLMN_E_ARG, "head size %d must be even (RoPE rotates pairs)", c->n_embd / c->n_head);
    if (c->n_head % c->n_head_kv) return vlmn_error(VLMN_E_ARG, "--n-head %d is not a multiple of --n-head-kv %d", c->n_head, c->n_head_kv);
    if (c->v_embd % c->v_head) return vlmn_error(VLMN_E_ARG, "--v-embd %d is not a multiple of --v-head %d", c->v_embd, c->v_head);
    if (c->v_size % c->v_patch) return vlmn_error(VLMN_E_ARG, "--v-size %d is not a multiple of --v-patch %d", c->v_size, c->v_patch);
    if (c->arch == VLMN_MM_INTERNVL && (c->v_size / c->v_patch) % 2)
        return vlmn_error(VLMN_E_ARG, "internvl: the patch grid %d must be even (pixel shuffle 0.5)", c->v_size / c->v_patch);
    if (c->type != VLMN_TYPE_F32 && c->type != VLMN_TYPE_F16 && c->type != VLMN_TYPE_BF16 && c->type != VLMN_TYPE_Q8_0)
        return vlmn_error(VLMN_E_ARG, "weight type %s not supported here (f32, f16, bf16, q8_0)",
                          vlmn_type_name(c->type) ? vlmn_type_name(c->type) : "?");
    if (c->type == VLMN_TYPE_Q8_0) {
        const struct { const char *name; int v; } rows[] = {
            {"n-embd", c->n_embd}, {"n-ff", c->n_ff}, {"v-embd", c->v_embd}, {"v-ff", c->v_ff}};
        for (size_t i = 0; i < 4; i++)
            if (rows[i].v % 32)
                return vlmn_error(VLMN_E_ARG, "q8_0: --%s %d is not a multiple of 32 (Q8_0 rows are 32-value blocks)",
                                  rows[i].name, rows[i].v);
    }
    int32_t min_vocab = vlmn_mm_vocab_min_size() + (c->arch == VLMN_MM_INTERNVL ? 5 : 0);
    if (c->n_vocab < min_vocab)
        return vlmn_error(VLMN_E_ARG, "--n-vocab %d too small: the built-in vocabulary needs at least %d pieces", c->n_vocab, min_vocab);
    return VLMN_OK;
}

uint32_t vlmn_mm_file_type(uint32_t type)
{
    /* llama.cpp's general.file_type (LLAMA_FTYPE_*) */
    switch (type) {
    case VLMN_TYPE_F16: return 1;
    case VLMN_TYPE_Q8_0: return 7;
    case VLMN_TYPE_BF16: return 32;
    default: return 0;
    }
}

/* ---- metadata ------------------------------------------------------------------ */

vlmn_status vlmn_mm_text_metadata(vlmn_gguf_writer *w, const vlmn_mm_config *c, const char *name,
                                  const vlmn_mm_vocab *v)
{
    vlmn_status st;
#define TRY(x) \
    if ((st = (x))) return st
    const char *a = c->arch == VLMN_MM_INTERNVL ? "internlm2" : "llama";
    char k[96];
#define K(s) (snprintf(k, sizeof k, "%s." s, a), k)
    TRY(vlmn_gguf_set_str(w, "general.architecture", a));
    TRY(vlmn_gguf_set_str(w, "general.name", name));
    TRY(vlmn_gguf_set_u32(w, "general.file_type", vlmn_mm_file_type(c->type)));
    TRY(vlmn_gguf_set_u64(w, "general.vlmn.seed", c->seed));
    TRY(vlmn_gguf_set_u32(w, K("context_length"), (uint32_t)c->n_ctx));
    TRY(vlmn_gguf_set_u32(w, K("embedding_length"), (uint32_t)c->n_embd));
    TRY(vlmn_gguf_set_u32(w, K("block_count"), (uint32_t)c->n_layer));
    TRY(vlmn_gguf_set_u32(w, K("feed_forward_length"), (uint32_t)c->n_ff));
    TRY(vlmn_gguf_set_u32(w, K("rope.dimension_count"), (uint32_t)(c->n_embd / c->n_head)));
    TRY(vlmn_gguf_set_u32(w, K("attention.head_count"), (uint32_t)c->n_head));
    TRY(vlmn_gguf_set_u32(w, K("attention.head_count_kv"), (uint32_t)c->n_head_kv));
    TRY(vlmn_gguf_set_f32(w, K("attention.layer_norm_rms_epsilon"), c->rms_eps));
    TRY(vlmn_gguf_set_f32(w, K("rope.freq_base"), c->rope_base));
    TRY(vlmn_gguf_set_u32(w, K("vocab_size"), (uint32_t)v->n));
#undef K
    TRY(vlmn_gguf_set_str(w, "tokenizer.ggml.model", "llama"));
    TRY(vlmn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces, (uint64_t)v->n));
    TRY(vlmn_gguf_set_arr(w, "tokenizer.ggml.scores", VLMN_GGUF_F32, v->scores, (uint64_t)v->n));
    TRY(vlmn_gguf_set_arr(w, "tokenizer.ggml.token_type", VLMN_GGUF_I32, v->types, (uint64_t)v->n));
    TRY(vlmn_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1));
    TRY(vlmn_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2));
    TRY(vlmn_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    TRY(vlmn_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true));
    TRY(vlmn_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false));
    TRY(vlmn_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", true));
    return VLMN_OK;
}

vlmn_status vlmn_mm_clip_metadata(vlmn_gguf_writer *w, const vlmn_mm_config *c, const char *name)
{
    vlmn_status st;
    const bool ivl = c->arch == VLMN_MM_INTERNVL;
    TRY(vlmn_gguf_set_str(w, "general.architecture", "clip"));
    TRY(vlmn_gguf_set_str(w, "general.name", name));
    TRY(vlmn_gguf_set_str(w, "general.description", ivl ? "InternViT + mlp1 for InternVL 2.5 (llama.cpp mmproj layout)"
                                                        : "image encoder for LLaVA (legacy converter layout)"));
    TRY(vlmn_gguf_set_u32(w, "general.file_type", vlmn_mm_file_type(c->type)));
    TRY(vlmn_gguf_set_u64(w, "general.vlmn.seed", c->seed));
    TRY(vlmn_gguf_set_bool(w, "clip.has_text_encoder", false));
    TRY(vlmn_gguf_set_bool(w, "clip.has_vision_encoder", true));
    if (!ivl) TRY(vlmn_gguf_set_bool(w, "clip.has_llava_projector", true));
    TRY(vlmn_gguf_set_str(w, "clip.projector_type", ivl ? "internvl" : "mlp"));
    TRY(vlmn_gguf_set_bool(w, "clip.use_gelu", ivl));
    if (ivl) TRY(vlmn_gguf_set_u32(w, "clip.vision.projector.scale_factor", 2));
    TRY(vlmn_gguf_set_u32(w, "clip.vision.image_size", (uint32_t)c->v_size));
    TRY(vlmn_gguf_set_u32(w, "clip.vision.patch_size", (uint32_t)c->v_patch));
    TRY(vlmn_gguf_set_u32(w, "clip.vision.embedding_length", (uint32_t)c->v_embd));
    TRY(vlmn_gguf_set_u32(w, "clip.vision.feed_forward_length", (uint32_t)c->v_ff));
    TRY(vlmn_gguf_set_u32(w, "clip.vision.projection_dim", (uint32_t)c->v_proj_dim));
    TRY(vlmn_gguf_set_u32(w, "clip.vision.attention.head_count", (uint32_t)c->v_head));
    TRY(vlmn_gguf_set_f32(w, "clip.vision.attention.layer_norm_epsilon", c->v_eps));
    TRY(vlmn_gguf_set_u32(w, "clip.vision.block_count", (uint32_t)c->v_layer));
    static const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};
    TRY(vlmn_gguf_set_arr(w, "clip.vision.image_mean", VLMN_GGUF_F32, ivl ? in_mean : vlmn_mm_clip_mean, 3));
    TRY(vlmn_gguf_set_arr(w, "clip.vision.image_std", VLMN_GGUF_F32, ivl ? in_std : vlmn_mm_clip_std, 3));
#undef TRY
    return VLMN_OK;
}

/* ---- tensor list --------------------------------------------------------------- */

vlmn_status vlmn_mm_tensor_list(const vlmn_mm_config *c, int which, mm_tensor **out, int *n_out)
{
    const bool ivl = c->arch == VLMN_MM_INTERNVL;
    int n_text = 3 + 9 * c->n_layer, n_clip = ivl ? 10 + 18 * c->v_layer : 9 + 16 * c->v_layer;
    int cap = which == MM_TEXT ? n_text : n_clip;
    mm_tensor *t = vlmn_calloc((size_t)cap, sizeof *t);
    if (!t) return vlmn_error(VLMN_E_NOMEM, "make-model: out of memory");
    int n = 0;
    const uint32_t mat = c->type;
    /* 1-D tensors stay F32 as llama.cpp's converters keep them. Names are formatted
     * with the block index; names without one end in "%.0d", which prints nothing for 0. */
#define ADD(nm_fmt, idx, nd, e0, e1, e2, e3, ty, kind_, std_)                              \
    do {                                                                                    \
        mm_tensor *x = &t[n++];                                                             \
        snprintf(x->name, sizeof x->name, nm_fmt, idx);                                     \
        x->n_dims = nd;                                                                     \
        x->ne[0] = e0, x->ne[1] = e1, x->ne[2] = e2, x->ne[3] = e3;                         \
        x->type = ty;                                                                       \
        x->kind = kind_;                                                                    \
        x->std = std_;                                                                      \
    } while (0)
    if (which == MM_TEXT) {
        uint64_t D = (uint64_t)c->n_embd, F = (uint64_t)c->n_ff, V = (uint64_t)c->n_vocab;
        uint64_t hd = D / (uint64_t)c->n_head, kv = hd * (uint64_t)c->n_head_kv;
        /* Residual-branch outputs are scaled down by sqrt(2 n_layer) (GPT-2's rule)
         * so the residual stream of a deep random model stays of order one. */
        float out_scale = 1.0f / sqrtf(2.0f * (float)c->n_layer);
        ADD("token_embd.weight%.0d", 0, 2, D, V, 1, 1, mat, MM_INIT_NORMAL, 1.0f);
        ADD("output_norm.weight%.0d", 0, 1, D, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
        ADD("output.weight%.0d", 0, 2, D, V, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)D));
        for (int l = 0; l < c->n_layer; l++) {
            ADD("blk.%d.attn_norm.weight", l, 1, D, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
            ADD("blk.%d.attn_q.weight", l, 2, D, D, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)D));
            t[n - 1].permute_heads = c->n_head;
            ADD("blk.%d.attn_k.weight", l, 2, D, kv, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)D));
            t[n - 1].permute_heads = c->n_head_kv;
            ADD("blk.%d.attn_v.weight", l, 2, D, kv, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)D));
            ADD("blk.%d.attn_output.weight", l, 2, D, D, 1, 1, mat, MM_INIT_NORMAL, out_scale / sqrtf((float)D));
            ADD("blk.%d.ffn_norm.weight", l, 1, D, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
            ADD("blk.%d.ffn_gate.weight", l, 2, D, F, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)D));
            ADD("blk.%d.ffn_up.weight", l, 2, D, F, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)D));
            ADD("blk.%d.ffn_down.weight", l, 2, F, D, 1, 1, mat, MM_INIT_NORMAL, out_scale / sqrtf((float)F));
        }
    } else {
        uint64_t E = (uint64_t)c->v_embd, FF = (uint64_t)c->v_ff, P = (uint64_t)c->v_patch, D = (uint64_t)c->n_embd;
        uint64_t n_pos = (uint64_t)(c->v_size / c->v_patch) * (uint64_t)(c->v_size / c->v_patch) + 1;
        float out_scale = 1.0f / sqrtf(2.0f * (float)c->v_layer);
        /* The conv kernel's rows are patch_size long: Q8_0 cannot hold them, so with
         * q8_0 it is F16 (as llama.cpp's mmproj files keep it). */
        uint32_t conv = mat == VLMN_TYPE_Q8_0 ? VLMN_TYPE_F16 : mat;
        ADD("v.class_embd%.0d", 0, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.5f);
        ADD("v.patch_embd.weight%.0d", 0, 4, P, P, 3, E, conv, MM_INIT_NORMAL, 1.0f / sqrtf((float)(3 * P * P)));
        if (ivl) {
            /* InternViT: conv bias, no pre-LN; the converter forces position_embd to F32 */
            ADD("v.patch_embd.bias%.0d", 0, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
            ADD("v.position_embd.weight%.0d", 0, 2, E, n_pos, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.5f);
        } else {
            ADD("v.position_embd.weight%.0d", 0, 2, E, n_pos, 1, 1, mat, MM_INIT_NORMAL, 0.5f);
            ADD("v.pre_ln.weight%.0d", 0, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
            ADD("v.pre_ln.bias%.0d", 0, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
        }
        for (int l = 0; l < c->v_layer; l++) {
            static const char *const qkvo[4] = {"attn_q", "attn_k", "attn_v", "attn_out"};
            for (int k = 0; k < 4; k++) {
                char fmtw[64], fmtb[64];
                snprintf(fmtw, sizeof fmtw, "v.blk.%%d.%s.weight", qkvo[k]);
                snprintf(fmtb, sizeof fmtb, "v.blk.%%d.%s.bias", qkvo[k]);
                ADD(fmtw, l, 2, E, E, 1, 1, mat, MM_INIT_NORMAL, (k == 3 ? out_scale : 1.0f) / sqrtf((float)E));
                ADD(fmtb, l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
            }
            ADD("v.blk.%d.ln1.weight", l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
            ADD("v.blk.%d.ln1.bias", l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
            if (ivl) {
                /* new naming: fc1 as ffn_up, fc2 as ffn_down; layer scales */
                ADD("v.blk.%d.ffn_up.weight", l, 2, E, FF, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)E));
                ADD("v.blk.%d.ffn_up.bias", l, 1, FF, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
                ADD("v.blk.%d.ffn_down.weight", l, 2, FF, E, 1, 1, mat, MM_INIT_NORMAL, out_scale / sqrtf((float)FF));
                ADD("v.blk.%d.ffn_down.bias", l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
                ADD("v.blk.%d.ls1.weight", l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
                ADD("v.blk.%d.ls2.weight", l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
            } else {
                /* Legacy swap: CLIP's fc1 ([v_ff, v_embd]) is stored as ffn_down and fc2
                 * ([v_embd, v_ff]) as ffn_up. */
                ADD("v.blk.%d.ffn_down.weight", l, 2, E, FF, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)E));
                ADD("v.blk.%d.ffn_down.bias", l, 1, FF, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
                ADD("v.blk.%d.ffn_up.weight", l, 2, FF, E, 1, 1, mat, MM_INIT_NORMAL, out_scale / sqrtf((float)FF));
                ADD("v.blk.%d.ffn_up.bias", l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
            }
            ADD("v.blk.%d.ln2.weight", l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
            ADD("v.blk.%d.ln2.bias", l, 1, E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
        }
        if (ivl) {
            /* mlp1: LayerNorm(4E), Linear(4E -> D), GELU, Linear(D -> D) */
            ADD("mm.model.mlp.0.weight%.0d", 0, 1, 4 * E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORM, 0.1f);
            ADD("mm.model.mlp.0.bias%.0d", 0, 1, 4 * E, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
            ADD("mm.model.mlp.1.weight%.0d", 0, 2, 4 * E, D, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)(4 * E)));
            ADD("mm.model.mlp.1.bias%.0d", 0, 1, D, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
            ADD("mm.model.mlp.3.weight%.0d", 0, 2, D, D, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)D));
            ADD("mm.model.mlp.3.bias%.0d", 0, 1, D, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
        } else {
            ADD("mm.0.weight%.0d", 0, 2, E, D, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)E));
            ADD("mm.0.bias%.0d", 0, 1, D, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
            ADD("mm.2.weight%.0d", 0, 2, D, D, 1, 1, mat, MM_INIT_NORMAL, 1.0f / sqrtf((float)D));
            ADD("mm.2.bias%.0d", 0, 1, D, 1, 1, 1, VLMN_TYPE_F32, MM_INIT_NORMAL, 0.05f);
        }
    }
#undef ADD
    VLMN_ASSERT(n == cap);
    *out = t;
    *n_out = n;
    return VLMN_OK;
}

/* Row index in the HF (un-permuted) weight that stored row r comes from. llama.cpp's
 * converter reshapes each head's rows as (2, hd/2) and swaps the axes, so HF's
 * rotate_half halves become adjacent pairs: stored row h*hd + 2i + j holds HF row
 * h*hd + j*hd/2 + i. */
uint64_t vlmn_mm_unpermute_row(uint64_t r, uint64_t n_rows, int n_heads)
{
    uint64_t hd = n_rows / (uint64_t)n_heads;
    uint64_t h = r / hd, k = r % hd, i = k / 2, j = k % 2;
    return h * hd + j * (hd / 2) + i;
}

static uint64_t name_stream(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* One row of f32 values of tensor t (stored row index r). */
void vlmn_mm_random_row(const mm_tensor *t, uint64_t seed, uint64_t r, float *dst)
{
    uint64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    uint64_t src = t->permute_heads ? vlmn_mm_unpermute_row(r, n_rows, t->permute_heads) : r;
    mm_rng g;
    mm_rng_seed(&g, seed, name_stream(t->name), src);
    for (uint64_t i = 0; i < t->ne[0]; i++) {
        float z = mm_rng_normal(&g);
        dst[i] = t->kind == MM_INIT_NORM ? 1.0f + t->std * z : t->std * z;
    }
}

vlmn_status vlmn_mm_fill_random(void *user, void *dst, uint64_t nbytes)
{
    const vlmn_mm_fill_ctx *f = user;
    const mm_tensor *t = f->t;
    uint64_t row_bytes, n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    vlmn_status st = vlmn_type_row_bytes(t->type, t->ne[0], &row_bytes);
    if (st) return st;
    if (row_bytes * n_rows != nbytes)
        return vlmn_error(VLMN_E_INTERNAL, "make-model: tensor %s: writer asks for %llu bytes, expected %llu", t->name,
                          (unsigned long long)nbytes, (unsigned long long)(row_bytes * n_rows));
    int failed = 0;
#pragma omp parallel if (n_rows * t->ne[0] >= ((uint64_t)1 << 22))
    {
        float *row = vlmn_malloc(t->ne[0] * sizeof *row);
        if (!row) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < (int64_t)n_rows; r++) {
            if (!row) continue;
            vlmn_mm_random_row(t, f->seed, (uint64_t)r, row);
            vlmn_from_f32(t->type, row, (char *)dst + (uint64_t)r * row_bytes, (int64_t)t->ne[0]);
        }
        vlmn_free(row);
    }
    if (failed) return vlmn_error(VLMN_E_NOMEM, "make-model: out of memory");
    if (f->progress) {
        char line[160];
        snprintf(line, sizeof line, "%-32s %-5s %8.1f MiB", t->name, vlmn_type_name(t->type), (double)nbytes / 1048576.0);
        f->progress(f->user, line);
    }
    return VLMN_OK;
}

static vlmn_status write_random_file(const vlmn_mm_config *c, int which, const char *path, const vlmn_mm_vocab *v,
                                     void (*progress)(void *, const char *), void *user)
{
    vlmn_gguf_writer *w = NULL;
    mm_tensor *t = NULL;
    vlmn_mm_fill_ctx *ctx = NULL;
    int n = 0;
    char name[128];
    vlmn_status st;
    if ((st = vlmn_gguf_writer_create(&w))) goto done;
    snprintf(name, sizeof name, "vlmn random %s (seed %llu)",
             which == MM_TEXT ? (c->arch == VLMN_MM_INTERNVL ? "internlm2" : "llama") : "clip",
             (unsigned long long)c->seed);
    st = which == MM_TEXT ? vlmn_mm_text_metadata(w, c, name, v) : vlmn_mm_clip_metadata(w, c, name);
    if (st) goto done;
    if ((st = vlmn_mm_tensor_list(c, which, &t, &n))) goto done;
    ctx = vlmn_calloc((size_t)n, sizeof *ctx);
    if (!ctx) {
        st = vlmn_error(VLMN_E_NOMEM, "make-model: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        ctx[i] = (vlmn_mm_fill_ctx){&t[i], c->seed, progress, user};
        if ((st = vlmn_gguf_add_tensor_fill(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne, vlmn_mm_fill_random, &ctx[i])))
            goto done;
    }
    st = vlmn_gguf_write(w, path);
done:
    vlmn_gguf_writer_free(w);
    vlmn_free(ctx);
    vlmn_free(t);
    return st;
}

vlmn_status vlmn_mm_paths(const char *prefix, char *text, char *mmproj, char *extra, const char *extra_suffix)
{
    if (strlen(prefix) > MM_PATH_MAX - 32) return vlmn_error(VLMN_E_ARG, "%s: output prefix too long", prefix);
    snprintf(text, MM_PATH_MAX, "%s-text.gguf", prefix);
    snprintf(mmproj, MM_PATH_MAX, "%s-mmproj.gguf", prefix);
    if (extra) snprintf(extra, MM_PATH_MAX, "%s-%s", prefix, extra_suffix);
    return VLMN_OK;
}

/* InternLM2's added chat tokens (control pieces at the end of the vocabulary, as the
 * converter stores InternVL's tokenizer_config added_tokens_decoder). */
static const char *const INTERNVL_SPECIALS[] = {"<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"};
#define N_INTERNVL_SPECIALS 5

static vlmn_status add_specials(vlmn_mm_vocab *v)
{
    int32_t n = v->n + N_INTERNVL_SPECIALS;
    char **p = vlmn_realloc(v->pieces, (size_t)n * sizeof *p);
    if (p) v->pieces = p;
    float *sc = p ? vlmn_realloc(v->scores, (size_t)n * sizeof *sc) : NULL;
    if (sc) v->scores = sc;
    int32_t *ty = sc ? vlmn_realloc(v->types, (size_t)n * sizeof *ty) : NULL;
    if (ty) v->types = ty;
    if (!ty) return vlmn_error(VLMN_E_NOMEM, "make-model: out of memory");
    for (int i = 0; i < N_INTERNVL_SPECIALS; i++) {
        if (!(v->pieces[v->n] = vlmn_strdup(INTERNVL_SPECIALS[i]))) return vlmn_error(VLMN_E_NOMEM, "make-model: out of memory");
        v->scores[v->n] = 0.0f;
        v->types[v->n++] = MM_TOK_CONTROL;
    }
    return VLMN_OK;
}

vlmn_status vlmn_mm_write_random(const vlmn_mm_config *c, const char *prefix,
                                 void (*progress)(void *user, const char *line), void *user)
{
    vlmn_status st;
    if ((st = vlmn_mm_validate(c))) return st;
    char text[MM_PATH_MAX], mmproj[MM_PATH_MAX];
    if ((st = vlmn_mm_paths(prefix, text, mmproj, NULL, NULL))) return st;
    vlmn_mm_vocab *v = NULL;
    const bool ivl = c->arch == VLMN_MM_INTERNVL;
    if ((st = vlmn_mm_vocab_build(c->n_vocab - (ivl ? N_INTERNVL_SPECIALS : 0), &v))) return st;
    if (ivl && (st = add_specials(v))) {
        vlmn_mm_vocab_free(v);
        return st;
    }
    st = write_random_file(c, MM_TEXT, text, v, progress, user);
    if (!st) st = write_random_file(c, MM_CLIP, mmproj, v, progress, user);
    vlmn_mm_vocab_free(v);
    return st;
}
