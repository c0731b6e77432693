/* make-model --format hf: the seeded random LLaVA of makemodel.c written as a Hugging Face
 * folder (llava-hf layout) instead of a GGUF pair. Same tensors, same values: rows are
 * seeded by their HF row index, so Q/K come out un-permuted here and permuted in GGUF.
 * Tensors stream through the safetensors writer's fill callbacks (7B never in memory). */
#include "makemodel/makemodel_int.h"
#include "vlmn/safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/buf.h"

/* GGUF name -> HF name (llava-hf/llava-1.5-7b-hf). */
static void hf_name(const char *g, char *out, size_t cap)
{
    static const struct { const char *gg, *hf; } blk[] = {
        {"attn_norm.weight", "input_layernorm.weight"}, {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"}, {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"}, {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    static const struct { const char *gg, *hf; } vblk[] = {
        {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
        {"attn_out", "self_attn.out_proj"}, {"ln1", "layer_norm1"}, {"ln2", "layer_norm2"},
        {"ffn_down", "mlp.fc1"}, {"ffn_up", "mlp.fc2"}, /* legacy swap: ffn_down holds fc1 */
    };
    static const struct { const char *gg, *hf; } one[] = {
        {"token_embd.weight", "language_model.model.embed_tokens.weight"},
        {"output_norm.weight", "language_model.model.norm.weight"},
        {"output.weight", "language_model.lm_head.weight"},
        {"v.class_embd", "vision_tower.vision_model.embeddings.class_embedding"},
        {"v.patch_embd.weight", "vision_tower.vision_model.embeddings.patch_embedding.weight"},
        {"v.position_embd.weight", "vision_tower.vision_model.embeddings.position_embedding.weight"},
        {"v.pre_ln.weight", "vision_tower.vision_model.pre_layrnorm.weight"},
        {"v.pre_ln.bias", "vision_tower.vision_model.pre_layrnorm.bias"},
        {"v.post_ln.weight", "vision_tower.vision_model.post_layernorm.weight"},
        {"v.post_ln.bias", "vision_tower.vision_model.post_layernorm.bias"},
        {"mm.0.weight", "multi_modal_projector.linear_1.weight"}, {"mm.0.bias", "multi_modal_projector.linear_1.bias"},
        {"mm.2.weight", "multi_modal_projector.linear_2.weight"}, {"mm.2.bias", "multi_modal_projector.linear_2.bias"},
    };
    int l, n = 0;
    for (size_t i = 0; i < VLMN_ARRAY_LEN(one); i++)
        if (!strcmp(g, one[i].gg)) {
            snprintf(out, cap, "%s", one[i].hf);
            return;
        }
    if (sscanf(g, "blk.%d.%n", &l, &n) == 1 && n)
        for (size_t i = 0; i < VLMN_ARRAY_LEN(blk); i++)
            if (!strcmp(g + n, blk[i].gg)) {
                snprintf(out, cap, "language_model.model.layers.%d.%s", l, blk[i].hf);
                return;
            }
    n = 0;
    if (sscanf(g, "v.blk.%d.%n", &l, &n) == 1 && n)
        for (size_t i = 0; i < VLMN_ARRAY_LEN(vblk); i++) {
            size_t k = strlen(vblk[i].gg);
            if (!strncmp(g + n, vblk[i].gg, k) && g[n + k] == '.') {
                snprintf(out, cap, "vision_tower.vision_model.encoder.layers.%d.%s%s", l, vblk[i].hf, g + n + k);
                return;
            }
        }
    VLMN_ASSERT(!"make-model: tensor without an HF name");
}

/* protobuf encoding (sentencepiece_model.proto) */
static void pb_varint(vlmn_buf *b, uint64_t v)
{
    uint8_t c[10];
    int n = 0;
    do {
        c[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) c[n] |= 0x80;
        n++;
    } while (v);
    vlmn_buf_add(b, c, (size_t)n);
}
static void pb_key(vlmn_buf *b, uint32_t f, uint32_t wt) { pb_varint(b, (uint64_t)f << 3 | wt); }
static void pb_bytes(vlmn_buf *b, uint32_t f, const void *p, size_t n)
{
    pb_key(b, f, 2);
    pb_varint(b, n);
    vlmn_buf_add(b, p, n);
}

static vlmn_status write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[MM_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
    bool ok = fwrite(p, 1, n, f) == n;
    if (fclose(f) || !ok) return vlmn_error(VLMN_E_IO, "%s: write failed", path);
    return VLMN_OK;
}

static vlmn_status write_tokenizer(const char *dir, const vlmn_mm_vocab *v)
{
    vlmn_buf b = {0}, s = {0};
    for (int32_t i = 0; i < v->n; i++) {
        s.n = 0;
        pb_bytes(&s, 1, v->pieces[i], strlen(v->pieces[i]));
        uint32_t u;
        memcpy(&u, &v->scores[i], 4);
        uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        pb_key(&s, 2, 5);
        vlmn_buf_add(&s, le, 4);
        pb_key(&s, 3, 0);
        pb_varint(&s, (uint64_t)v->types[i]);
        pb_bytes(&b, 1, s.p, s.n);
    }
    s.n = 0; /* TrainerSpec: model_type BPE, byte_fallback, unk 0 / bos 1 / eos 2 */
    pb_key(&s, 3, 0);
    pb_varint(&s, 2);
    pb_key(&s, 35, 0);
    pb_varint(&s, 1);
    pb_key(&s, 40, 0);
    pb_varint(&s, 0);
    pb_key(&s, 41, 0);
    pb_varint(&s, 1);
    pb_key(&s, 42, 0);
    pb_varint(&s, 2);
    pb_bytes(&b, 2, s.p, s.n);
    s.n = 0; /* NormalizerSpec: identity, add_dummy_prefix, keep whitespace */
    pb_bytes(&s, 1, "identity", 8);
    pb_key(&s, 3, 0);
    pb_varint(&s, 1);
    pb_key(&s, 4, 0);
    pb_varint(&s, 0);
    pb_bytes(&b, 3, s.p, s.n);
    vlmn_status st = b.oom || s.oom ? vlmn_error(VLMN_E_NOMEM, "make-model: out of memory")
                                    : write_file(dir, "tokenizer.model", b.p, b.n);
    vlmn_free(b.p);
    vlmn_free(s.p);
    return st;
}

static const char *torch_dtype(uint32_t t)
{
    return t == VLMN_TYPE_F32 ? "float32" : t == VLMN_TYPE_F16 ? "float16" : "bfloat16";
}

static vlmn_status write_configs(const char *dir, const vlmn_mm_config *c)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "{\n \"architectures\": [\"LlavaForConditionalGeneration\"],\n \"model_type\": \"llava\",\n"
                     " \"image_token_index\": %d,\n \"projector_hidden_act\": \"gelu\",\n"
                     " \"vision_feature_layer\": -2,\n \"vision_feature_select_strategy\": \"default\",\n"
                     " \"torch_dtype\": \"%s\",\n \"tie_word_embeddings\": false,\n"
                     " \"text_config\": {\"model_type\": \"llama\", \"hidden_size\": %d, \"intermediate_size\": %d,"
                     " \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d,"
                     " \"max_position_embeddings\": %d, \"rms_norm_eps\": %.9g, \"rope_theta\": %.9g,"
                     " \"vocab_size\": %d, \"hidden_act\": \"silu\"},\n"
                     " \"vision_config\": {\"model_type\": \"clip_vision_model\", \"hidden_size\": %d,"
                     " \"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,"
                     " \"image_size\": %d, \"patch_size\": %d, \"layer_norm_eps\": %.9g, \"projection_dim\": %d,"
                     " \"hidden_act\": \"quick_gelu\"}\n}\n",
                     c->n_vocab, torch_dtype(c->type), c->n_embd, c->n_ff, c->n_layer, c->n_head, c->n_head_kv, c->n_ctx,
                     (double)c->rms_eps, (double)c->rope_base, c->n_vocab, c->v_embd, c->v_ff, c->v_layer + 1, c->v_head,
                     c->v_size, c->v_patch, (double)c->v_eps, c->v_proj_dim);
    vlmn_status st = write_file(dir, "config.json", buf, (size_t)n);
    if (st) return st;
    const float *m = vlmn_mm_clip_mean, *s = vlmn_mm_clip_std;
    n = snprintf(buf, sizeof buf,
                 "{\n \"image_processor_type\": \"CLIPImageProcessor\", \"do_resize\": true,"
                 " \"size\": {\"shortest_edge\": %d}, \"do_center_crop\": true,"
                 " \"crop_size\": {\"height\": %d, \"width\": %d}, \"do_rescale\": true, \"do_normalize\": true,"
                 " \"resample\": 3,\n \"image_mean\": [%.9g, %.9g, %.9g],\n \"image_std\": [%.9g, %.9g, %.9g]\n}\n",
                 c->v_size, c->v_size, c->v_size, (double)m[0], (double)m[1], (double)m[2], (double)s[0], (double)s[1],
                 (double)s[2]);
    if ((st = write_file(dir, "preprocessor_config.json", buf, (size_t)n))) return st;
    n = snprintf(buf, sizeof buf,
                 "{\"tokenizer_class\": \"LlamaTokenizer\", \"add_bos_token\": true, \"add_eos_token\": false}\n");
    return write_file(dir, "tokenizer_config.json", buf, (size_t)n);
}

vlmn_status vlmn_mm_write_random_hf(const vlmn_mm_config *c, const char *dir,
                                    void (*progress)(void *user, const char *line), void *user)
{
    vlmn_status st;
    if ((st = vlmn_mm_validate(c))) return st;
    if (c->type != VLMN_TYPE_F32 && c->type != VLMN_TYPE_F16 && c->type != VLMN_TYPE_BF16)
        return vlmn_error(VLMN_E_UNSUPPORTED, "make-model: --format hf takes f32, f16 or bf16 weights");
    if (strlen(dir) > MM_PATH_MAX - 64) return vlmn_error(VLMN_E_ARG, "%s: output folder name too long", dir);
    if (mkdir(dir, 0755) && errno != EEXIST) return vlmn_error(VLMN_E_IO, "%s: %s", dir, strerror(errno));
    vlmn_mm_vocab *v = NULL;
    mm_tensor *tt = NULL, *tv = NULL, *tx = NULL, *all = NULL;
    vlmn_mm_fill_ctx *ctx = NULL;
    vlmn_st_writer *w[2] = {NULL, NULL};
    vlmn_buf idx = {0};
    int nt = 0, nv = 0, nx = 0;
    vlmn_mm_config c1 = *c;
    c1.v_layer = c->v_layer + 1;
    if ((st = vlmn_mm_vocab_build(c->n_vocab, &v)) || (st = vlmn_mm_tensor_list(c, MM_TEXT, &tt, &nt)) ||
        (st = vlmn_mm_tensor_list(c, MM_CLIP, &tv, &nv)) || (st = vlmn_mm_tensor_list(&c1, MM_CLIP, &tx, &nx)))
        goto done;
    /* vision: the mmproj's tensors, then the extra block (from the v_layer + 1 list) and
     * post-LN; text second. Q/K: rows in HF order (seeded by their HF row). */
    int n = 0, cap = nt + nv + 16 + 2;
    all = vlmn_calloc((size_t)cap, sizeof *all);
    ctx = vlmn_calloc((size_t)cap, sizeof *ctx);
    if (!all || !ctx) {
        st = vlmn_error(VLMN_E_NOMEM, "make-model: out of memory");
        goto done;
    }
    char pre[32];
    snprintf(pre, sizeof pre, "v.blk.%d.", c->v_layer);
    for (int i = 0; i < nv; i++) all[n++] = tv[i];
    for (int i = 0; i < nx; i++)
        if (!strncmp(tx[i].name, pre, strlen(pre))) all[n++] = tx[i];
    for (int k = 0; k < 2; k++) {
        mm_tensor *x = &all[n++];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, k ? "v.post_ln.bias" : "v.post_ln.weight");
        x->n_dims = 1;
        x->ne[0] = (uint64_t)c->v_embd;
        x->ne[1] = x->ne[2] = x->ne[3] = 1;
        x->type = VLMN_TYPE_F32;
        x->kind = k ? MM_INIT_NORMAL : MM_INIT_NORM;
        x->std = k ? 0.05f : 0.1f;
    }
    int n_vis = n;
    for (int i = 0; i < nt; i++) all[n++] = tt[i];
    static const char *const shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    vlmn_buf_adds(&idx, "{\n \"metadata\": {\"format\": \"pt\"},\n \"weight_map\": {");
    for (int s = 0; s < 2; s++) {
        if ((st = vlmn_st_writer_create(&w[s]))) goto done;
        for (int i = s ? n_vis : 0; i < (s ? n : n_vis); i++) {
            mm_tensor *x = &all[i];
            x->permute_heads = 0;
            /* conv kernel and Q8_0 fallbacks: the type of the GGUF list (F32/F16/BF16 here) */
            char hn[160];
            hf_name(x->name, hn, sizeof hn);
            uint64_t shape[4];
            for (uint32_t d = 0; d < x->n_dims; d++) shape[d] = x->ne[x->n_dims - 1 - d];
            ctx[i] = (vlmn_mm_fill_ctx){x, c->seed, progress, user};
            if ((st = vlmn_st_writer_add(w[s], hn, x->type, x->n_dims, shape, vlmn_mm_fill_random, &ctx[i]))) goto done;
            vlmn_buf_adds(&idx, i ? ",\n  \"" : "\n  \"");
            vlmn_buf_adds(&idx, hn);
            vlmn_buf_adds(&idx, "\": \"");
            vlmn_buf_adds(&idx, shard[s]);
            vlmn_buf_adds(&idx, "\"");
        }
        char path[MM_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", dir, shard[s]);
        if ((st = vlmn_st_writer_write(w[s], path))) goto done;
    }
    vlmn_buf_adds(&idx, "\n }\n}\n");
    if (idx.oom) {
        st = vlmn_error(VLMN_E_NOMEM, "make-model: out of memory");
        goto done;
    }
    if ((st = write_file(dir, "model.safetensors.index.json", idx.p, idx.n)) || (st = write_tokenizer(dir, v)) ||
        (st = write_configs(dir, c)))
        goto done;
done:
    vlmn_st_writer_free(w[0]);
    vlmn_st_writer_free(w[1]);
    vlmn_free(idx.p);
    vlmn_free(all);
    vlmn_free(ctx);
    vlmn_free(tt);
    vlmn_free(tv);
    vlmn_free(tx);
    vlmn_mm_vocab_free(v);
    return st;
}
