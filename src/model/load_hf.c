/* Hugging Face LLaVA folders (llava-hf/llava-1.5-7b-hf layout: config.json with
 * LlavaForConditionalGeneration, *.safetensors, tokenizer.model, preprocessor_config.json)
 * as the two GGUF views the engine loads (llama text model + clip mmproj), built from
 * config.json and the tensor names without copying weights: views point into the
 * safetensors mappings. Only Q and K of the decoder are copied, row-permuted as llama.cpp's
 * converter does, so that the same forward pass (RoPE on adjacent pairs) gives identical
 * activations from both forms; their mapped source pages are dropped (MADV_DONTNEED).
 * See docs/hf.md. Flow: folder -> [this] -> llava.c loader. */
#include "vlmn/gguf.h"
#include "vlmn/model.h"
#include "vlmn/safetensors.h"
#include "vlmn/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/file.h"

#define HF_MAX_CONFIG (4u << 20)
#define HF_MAX_TOKENIZER (64u << 20)

/* What both views keep alive: the safetensors reader and the permuted Q/K copies. */
struct hf_owner {
    vlmn_st *st;
    vlmn_st *clip; /* the original layout's separate CLIP folder (NULL: none) */
    void **copies;
    int n_copies, cap_copies;
    int refs;
};

static void owner_release(void *p)
{
    struct hf_owner *o = p;
    if (!o || --o->refs > 0) return;
    for (int i = 0; i < o->n_copies; i++) vlmn_free(o->copies[i]);
    vlmn_free(o->copies);
    vlmn_st_close(o->st);
    vlmn_st_close(o->clip);
    vlmn_free(o);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = vlmn_malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Parse DIR/name as JSON (NULL with VLMN_OK when absent and !required). */
static vlmn_status read_json(const char *dir, const char *name, bool required, cJSON **out)
{
    *out = NULL;
    char *p = join(dir, name);
    if (!p) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
    if (!required && access(p, F_OK) != 0) {
        vlmn_free(p);
        return VLMN_OK;
    }
    unsigned char *buf = NULL;
    size_t n = 0;
    vlmn_status st = vlmn_file_read(p, HF_MAX_CONFIG, "JSON config", &buf, &n);
    if (!st) {
        *out = cJSON_ParseWithLength((const char *)buf, n);
        if (!*out || !cJSON_IsObject(*out)) {
            cJSON_Delete(*out);
            *out = NULL;
            st = vlmn_error(VLMN_E_FORMAT, "%s: not a JSON object", p);
        }
    }
    vlmn_free(buf);
    vlmn_free(p);
    return st;
}

/* Integer config value (default when absent or null), in [lo, hi]. */
static vlmn_status cfg_int(const cJSON *o, const char *path, const char *key, long dflt, long lo, long hi, int *out)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) {
        *out = (int)dflt;
        return VLMN_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long)v->valuedouble || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return vlmn_error(VLMN_E_RANGE, "%s: %s is not an integer in [%ld, %ld]", path, key, lo, hi);
    *out = (int)v->valuedouble;
    return VLMN_OK;
}

static vlmn_status cfg_num(const cJSON *o, const char *path, const char *key, double dflt, double lo, double hi,
                           float *out)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) {
        *out = (float)dflt;
        return VLMN_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return vlmn_error(VLMN_E_RANGE, "%s: %s is not a number in [%g, %g]", path, key, lo, hi);
    *out = (float)v->valuedouble;
    return VLMN_OK;
}

static const char *cfg_str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

const char *vlmn_hf_architecture(const void *config_json)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive((const cJSON *)config_json, "architectures");
    const cJSON *a0 = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
    return cJSON_IsString(a0) ? a0->valuestring : NULL;
}

/* The first of the HF names `cands` (prefix + suffix) present in the folder. */
static const vlmn_st_tensor *find_any(const vlmn_st *s, const char *const *prefixes, const char *suffix, char *name,
                                      size_t cap)
{
    for (int i = 0; prefixes[i]; i++) {
        snprintf(name, cap, "%s%s", prefixes[i], suffix);
        const vlmn_st_tensor *t = vlmn_st_find(s, name);
        if (t) return t;
    }
    snprintf(name, cap, "%s%s", prefixes[0], suffix);
    return NULL;
}

/* Add HF tensor -> GGUF name (shape reversed: ne[0] = PyTorch's last dim). */
static vlmn_status add_ref(vlmn_gguf_writer *w, const vlmn_st *s, const char *const *prefixes, const char *suffix,
                           const char *gname, const void *data_override, const vlmn_st_tensor **tout)
{
    char hn[256];
    const vlmn_st_tensor *t = find_any(s, prefixes, suffix, hn, sizeof hn);
    if (!t) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor %s: missing", vlmn_st_path(s), hn);
    if (t->n_dims < 1 || t->n_dims > VLMN_GGUF_MAX_DIMS)
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor %s: %u dimensions", vlmn_st_path(s), hn, t->n_dims);
    uint64_t ne[VLMN_GGUF_MAX_DIMS];
    for (uint32_t d = 0; d < t->n_dims; d++) ne[d] = t->shape[t->n_dims - 1 - d];
    if (tout) *tout = t;
    vlmn_status st = vlmn_gguf_add_tensor_ref(w, gname, t->type, t->n_dims, ne, data_override ? data_override : t->data);
    return st ? vlmn_error_prefix(st, "%s: tensor %s", vlmn_st_path(s), hn) : VLMN_OK;
}

/* llama.cpp's convert permute for RoPE: GGUF row h*hd + 2i + j = HF row h*hd + j*hd/2 + i.
 * The copy is owned by o; the mapped source pages are given back. */
static vlmn_status permute_rows(struct hf_owner *o, const vlmn_st_tensor *t, int n_head, const void **out)
{
    if (t->n_dims != 2 || t->shape[0] % (uint64_t)(2 * n_head))
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor %s: %llu rows for %d heads", vlmn_st_path(o->st), t->name,
                          (unsigned long long)t->shape[0], n_head);
    uint64_t rows = t->shape[0], rb = t->nbytes / rows, hd = rows / (uint64_t)n_head;
    uint8_t *dst = t->nbytes <= SIZE_MAX ? vlmn_malloc((size_t)t->nbytes) : NULL;
    if (!dst) return vlmn_error(VLMN_E_NOMEM, "%s: tensor %s: out of memory", vlmn_st_path(o->st), t->name);
    if (o->n_copies == o->cap_copies) {
        int nc = o->cap_copies ? 2 * o->cap_copies : 64;
        void **c = vlmn_realloc(o->copies, (size_t)nc * sizeof *c);
        if (!c) {
            vlmn_free(dst);
            return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", vlmn_st_path(o->st));
        }
        o->copies = c;
        o->cap_copies = nc;
    }
    o->copies[o->n_copies++] = dst;
    const uint8_t *src = t->data;
    for (uint64_t h = 0; h < (uint64_t)n_head; h++)
        for (uint64_t i = 0; i < hd / 2; i++)
            for (uint64_t j = 0; j < 2; j++)
                memcpy(dst + (h * hd + 2 * i + j) * rb, src + (h * hd + j * (hd / 2) + i) * rb, (size_t)rb);
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)src + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
    uintptr_t e = ((uintptr_t)src + (uintptr_t)t->nbytes) / (uintptr_t)pg * (uintptr_t)pg;
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED); /* read-only private file pages: re-read if touched */
    *out = dst;
    return VLMN_OK;
}

/* tokenizer.json (used when there is no tokenizer.model) -> the GGUF key
 * tokenizer.huggingface.json, checked here so that a bad file fails at load. */
static vlmn_status add_tokenizer_json(vlmn_gguf_writer *w, const char *dir)
{
    char *p = join(dir, "tokenizer.json");
    if (!p) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
    if (access(p, F_OK) != 0) {
        vlmn_free(p);
        return vlmn_error(VLMN_E_NOTFOUND, "%s: no tokenizer.model or tokenizer.json", dir);
    }
    unsigned char *buf = NULL;
    size_t n = 0;
    char *json = NULL;
    vlmn_tok *t = NULL;
    vlmn_status st = vlmn_file_read(p, HF_MAX_TOKENIZER, "tokenizer.json", &buf, &n);
    if (st) goto done;
    if (memchr(buf, 0, n)) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: holds a NUL byte", p);
        goto done;
    }
    if ((st = vlmn_tok_from_hf_json((const char *)buf, n, p, &t))) goto done;
    if (!(json = vlmn_strndup((const char *)buf, n))) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", p);
        goto done;
    }
    if ((st = vlmn_gguf_set_str(w, "tokenizer.huggingface.json", json)) ||
        (st = vlmn_gguf_set_str(w, "tokenizer.huggingface.source", p)))
        goto done;
done:
    vlmn_tok_free(t);
    vlmn_free(json);
    vlmn_free(buf);
    vlmn_free(p);
    return st;
}

/* tokenizer.model -> tokenizer.ggml.* keys. */
static vlmn_status add_tokenizer(vlmn_gguf_writer *w, const char *dir, const cJSON *tcfg)
{
    char *p = join(dir, "tokenizer.model");
    if (!p) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
    if (access(p, F_OK) != 0) {
        vlmn_free(p);
        return add_tokenizer_json(w, dir);
    }
    unsigned char *buf = NULL;
    size_t n = 0;
    vlmn_tok_spm *spm = NULL;
    char **strs = NULL;
    vlmn_status st = vlmn_file_read(p, HF_MAX_TOKENIZER, "tokenizer model", &buf, &n);
    if (st) goto done;
    if ((st = vlmn_tok_spm_parse(buf, n, p, &spm))) goto done;
    strs = vlmn_calloc((size_t)spm->n, sizeof *strs);
    if (!strs) goto nomem;
    for (int32_t i = 0; i < spm->n; i++) {
        if (memchr(spm->tokens[i], 0, (size_t)spm->lens[i])) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: piece %d holds a NUL byte", p, (int)i);
            goto done;
        }
        if (!(strs[i] = vlmn_malloc((size_t)spm->lens[i] + 1))) goto nomem;
        memcpy(strs[i], spm->tokens[i], (size_t)spm->lens[i]);
        strs[i][spm->lens[i]] = 0;
    }
    /* tokenizer_config.json: add_bos_token (LlamaTokenizer default true), add_eos_token */
    const cJSON *ab = tcfg ? cJSON_GetObjectItemCaseSensitive(tcfg, "add_bos_token") : NULL;
    const cJSON *ae = tcfg ? cJSON_GetObjectItemCaseSensitive(tcfg, "add_eos_token") : NULL;
    if ((st = vlmn_gguf_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (st = vlmn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)strs, (uint64_t)spm->n)) ||
        (st = vlmn_gguf_set_arr(w, "tokenizer.ggml.scores", VLMN_GGUF_F32, spm->scores, (uint64_t)spm->n)) ||
        (st = vlmn_gguf_set_arr(w, "tokenizer.ggml.token_type", VLMN_GGUF_I32, spm->types, (uint64_t)spm->n)) ||
        (st = vlmn_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", ab ? cJSON_IsTrue(ab) : true)) ||
        (st = vlmn_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", ae ? cJSON_IsTrue(ae) : false)) ||
        (st = vlmn_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", spm->add_dummy_prefix)))
        goto done;
    if (spm->bos_id >= 0 && (st = vlmn_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)spm->bos_id))) goto done;
    if (spm->eos_id >= 0 && (st = vlmn_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)spm->eos_id))) goto done;
    if (spm->unk_id >= 0 && (st = vlmn_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)spm->unk_id)))
        goto done;
    goto done;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", p);
done:
    if (strs)
        for (int32_t i = 0; i < spm->n; i++) vlmn_free(strs[i]);
    vlmn_free(strs);
    vlmn_tok_spm_free(spm);
    vlmn_free(buf);
    vlmn_free(p);
    return st;
}

static vlmn_status build_text(struct hf_owner *o, const char *dir, const char *cpath, const cJSON *tc,
                              const cJSON *tcfg, bool original, vlmn_gguf_writer *w)
{
    static const char *const lm_hf[] = {"language_model.model.", "model.language_model.", NULL};
    static const char *const head_hf[] = {"language_model.", "", NULL};
    static const char *const lm_orig[] = {"model.", NULL}; /* LlavaLlamaForCausalLM */
    static const char *const head_orig[] = {"", NULL};
    const char *const *lm = original ? lm_orig : lm_hf, *const *head = original ? head_orig : head_hf;
    int E, FF, L, H, HKV, ctx;
    float eps, theta;
    vlmn_status st;
    const char *model_type = original ? "llama" : cfg_str(tc, "model_type", "llama");
    if (strcmp(model_type, "llama"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: text_config.model_type \"%s\" not supported (only llama)", cpath, model_type);
    if (strcmp(cfg_str(tc, "hidden_act", "silu"), "silu"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: text_config.hidden_act is not silu", cpath);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(tc, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) return vlmn_error(VLMN_E_UNSUPPORTED, "%s: text_config.rope_scaling not supported", cpath);
    /* LlamaConfig's defaults for absent keys */
    if ((st = cfg_int(tc, cpath, "hidden_size", 4096, 2, 1 << 20, &E)) ||
        (st = cfg_int(tc, cpath, "intermediate_size", 11008, 1, 1 << 20, &FF)) ||
        (st = cfg_int(tc, cpath, "num_hidden_layers", 32, 1, 1024, &L)) ||
        (st = cfg_int(tc, cpath, "num_attention_heads", 32, 1, 4096, &H)) ||
        (st = cfg_int(tc, cpath, "num_key_value_heads", H, 1, 4096, &HKV)) ||
        (st = cfg_int(tc, cpath, "max_position_embeddings", 2048, 1, 1 << 24, &ctx)) ||
        (st = cfg_num(tc, cpath, "rms_norm_eps", 1e-6, 0, 1, &eps)) ||
        (st = cfg_num(tc, cpath, "rope_theta", 10000, 1, 1e12, &theta)))
        return st;
    if (E % H || (E / H) % 2 || H % HKV)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: hidden_size %d / %d heads / %d kv heads is not a supported split", cpath,
                          E, H, HKV);
    if ((st = vlmn_gguf_set_str(w, "general.architecture", "llama")) ||
        (st = vlmn_gguf_set_u32(w, "llama.embedding_length", (uint32_t)E)) ||
        (st = vlmn_gguf_set_u32(w, "llama.block_count", (uint32_t)L)) ||
        (st = vlmn_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)FF)) ||
        (st = vlmn_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)H)) ||
        (st = vlmn_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)HKV)) ||
        (st = vlmn_gguf_set_u32(w, "llama.context_length", (uint32_t)ctx)) ||
        (st = vlmn_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", eps)) ||
        (st = vlmn_gguf_set_f32(w, "llama.rope.freq_base", theta)))
        return st;
    if ((st = add_tokenizer(w, dir, tcfg))) return st;
    if ((st = add_ref(w, o->st, lm, "embed_tokens.weight", "token_embd.weight", NULL, NULL))) return st;
    char hs[128], gn[96];
    for (int l = 0; l < L; l++) {
        static const struct { const char *hf, *gg; int perm; } map[] = {
            {"input_layernorm.weight", "attn_norm.weight", 0}, {"self_attn.q_proj.weight", "attn_q.weight", 1},
            {"self_attn.k_proj.weight", "attn_k.weight", 2},   {"self_attn.v_proj.weight", "attn_v.weight", 0},
            {"self_attn.o_proj.weight", "attn_output.weight", 0}, {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
            {"mlp.gate_proj.weight", "ffn_gate.weight", 0},    {"mlp.up_proj.weight", "ffn_up.weight", 0},
            {"mlp.down_proj.weight", "ffn_down.weight", 0},
        };
        for (size_t k = 0; k < VLMN_ARRAY_LEN(map); k++) {
            snprintf(hs, sizeof hs, "layers.%d.%s", l, map[k].hf);
            snprintf(gn, sizeof gn, "blk.%d.%s", l, map[k].gg);
            const void *data = NULL;
            if (map[k].perm) {
                char hn[256];
                const vlmn_st_tensor *t = find_any(o->st, lm, hs, hn, sizeof hn);
                if (!t) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor %s: missing", vlmn_st_path(o->st), hn);
                if ((st = permute_rows(o, t, map[k].perm == 1 ? H : HKV, &data))) return st;
            }
            if ((st = add_ref(w, o->st, lm, hs, gn, data, NULL))) return st;
        }
    }
    if ((st = add_ref(w, o->st, lm, "norm.weight", "output_norm.weight", NULL, NULL))) return st;
    char hn[256];
    /* HF ties lm_head to embed_tokens when tie_word_embeddings (no lm_head stored) */
    if (find_any(o->st, head, "lm_head.weight", hn, sizeof hn) &&
        (st = add_ref(w, o->st, head, "lm_head.weight", "output.weight", NULL, NULL)))
        return st;
    return VLMN_OK;
}

/* Where the vision tower and projector come from: the llava-hf folder itself, or (original
 * layout) a CLIP folder plus model.mm_projector.0/2 in the LLaVA folder. */
struct vis_src {
    const vlmn_st *vst, *pst;
    const char *const *vt, *const *pj;
    const char *lin1, *lin2;   /* projector layer names after the prefix */
    const char *ppdir;         /* folder with preprocessor_config.json */
    const char *vcpath;        /* config file the vision config comes from */
};

/* llava-hf's projector / feature selection keys (LlavaConfig) */
static vlmn_status hf_vision_keys(const char *cpath, const cJSON *cfg, int *fl)
{
    if (strcmp(cfg_str(cfg, "projector_hidden_act", "gelu"), "gelu"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: projector_hidden_act is not gelu", cpath);
    if (strcmp(cfg_str(cfg, "vision_feature_select_strategy", "default"), "default"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: vision_feature_select_strategy \"%s\" not supported (only default)",
                          cpath, cfg_str(cfg, "vision_feature_select_strategy", ""));
    const cJSON *pb = cJSON_GetObjectItemCaseSensitive(cfg, "multimodal_projector_bias");
    if (pb && cJSON_IsFalse(pb)) return vlmn_error(VLMN_E_UNSUPPORTED, "%s: projector without bias not supported", cpath);
    if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(cfg, "vision_feature_layer")))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: several vision_feature_layer values not supported", cpath);
    /* LlavaConfig's vision_feature_layer -2 */
    return cfg_int(cfg, cpath, "vision_feature_layer", -2, -1025, 1024, fl);
}

/* The original LLaVA's mm_* keys (LlavaLlamaForCausalLM, llava/model/multimodal_*) */
static vlmn_status orig_vision_keys(const char *cpath, const cJSON *cfg, int *fl)
{
    const char *pt = cfg_str(cfg, "mm_projector_type", "linear");
    if (strcmp(pt, "mlp2x_gelu"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: mm_projector_type \"%s\" not supported (only mlp2x_gelu)", cpath, pt);
    const char *sf = cfg_str(cfg, "mm_vision_select_feature", "patch");
    if (strcmp(sf, "patch"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: mm_vision_select_feature \"%s\" not supported (only patch)", cpath, sf);
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(cfg, "mm_use_im_start_end");
    if (cJSON_IsTrue(se)) return vlmn_error(VLMN_E_UNSUPPORTED, "%s: mm_use_im_start_end not supported", cpath);
    return cfg_int(cfg, cpath, "mm_vision_select_layer", -2, -1025, 1024, fl);
}

static vlmn_status build_vision(const struct vis_src *src, const cJSON *vc, int fl, vlmn_gguf_writer *w)
{
    const char *const *vt = src->vt, *const *pj = src->pj;
    const char *cpath = src->vcpath, *dir = src->ppdir;
    int W, FF, L, H, S, P;
    float eps;
    vlmn_status st;
    if (strcmp(cfg_str(vc, "model_type", "clip_vision_model"), "clip_vision_model"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: vision_config.model_type \"%s\" not supported (only clip_vision_model)",
                          cpath, cfg_str(vc, "model_type", ""));
    const char *act = cfg_str(vc, "hidden_act", "quick_gelu");
    if (strcmp(act, "quick_gelu") && strcmp(act, "gelu"))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: vision_config.hidden_act \"%s\" not supported", cpath, act);
    /* CLIPVisionConfig's defaults */
    if ((st = cfg_int(vc, cpath, "hidden_size", 768, 1, 1 << 20, &W)) ||
        (st = cfg_int(vc, cpath, "intermediate_size", 3072, 1, 1 << 20, &FF)) ||
        (st = cfg_int(vc, cpath, "num_hidden_layers", 12, 1, 1024, &L)) ||
        (st = cfg_int(vc, cpath, "num_attention_heads", 12, 1, 4096, &H)) ||
        (st = cfg_int(vc, cpath, "image_size", 224, 1, 8192, &S)) ||
        (st = cfg_int(vc, cpath, "patch_size", 32, 1, 8192, &P)) ||
        (st = cfg_num(vc, cpath, "layer_norm_eps", 1e-5, 0, 1, &eps)))
        return st;
    float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    cJSON *pp = NULL;
    if ((st = read_json(dir, "preprocessor_config.json", false, &pp))) return st;
    for (int k = 0; k < 2 && pp; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(pp, k ? "image_std" : "image_mean");
        if (!a) continue;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) {
            cJSON_Delete(pp);
            return vlmn_error(VLMN_E_FORMAT, "%s/preprocessor_config.json: %s is not 3 numbers", dir,
                              k ? "image_std" : "image_mean");
        }
        for (int c = 0; c < 3; c++) {
            const cJSON *x = cJSON_GetArrayItem(a, c);
            if (!cJSON_IsNumber(x)) {
                cJSON_Delete(pp);
                return vlmn_error(VLMN_E_FORMAT, "%s/preprocessor_config.json: %s is not 3 numbers", dir,
                                  k ? "image_std" : "image_mean");
            }
            (k ? stdv : mean)[c] = (float)x->valuedouble;
        }
    }
    cJSON_Delete(pp);
    if ((st = vlmn_gguf_set_str(w, "general.architecture", "clip")) ||
        (st = vlmn_gguf_set_bool(w, "clip.has_llava_projector", true)) ||
        (st = vlmn_gguf_set_str(w, "clip.projector_type", "mlp")) ||
        (st = vlmn_gguf_set_bool(w, "clip.use_gelu", strcmp(act, "gelu") == 0)) ||
        (st = vlmn_gguf_set_u32(w, "clip.vision.image_size", (uint32_t)S)) ||
        (st = vlmn_gguf_set_u32(w, "clip.vision.patch_size", (uint32_t)P)) ||
        (st = vlmn_gguf_set_u32(w, "clip.vision.embedding_length", (uint32_t)W)) ||
        (st = vlmn_gguf_set_u32(w, "clip.vision.feed_forward_length", (uint32_t)FF)) ||
        (st = vlmn_gguf_set_u32(w, "clip.vision.attention.head_count", (uint32_t)H)) ||
        (st = vlmn_gguf_set_u32(w, "clip.vision.block_count", (uint32_t)L)) ||
        (st = vlmn_gguf_set_f32(w, "clip.vision.attention.layer_norm_epsilon", eps)) ||
        (st = vlmn_gguf_set_i32(w, "clip.vision.feature_layer", fl)) ||
        (st = vlmn_gguf_set_arr(w, "clip.vision.image_mean", VLMN_GGUF_F32, mean, 3)) ||
        (st = vlmn_gguf_set_arr(w, "clip.vision.image_std", VLMN_GGUF_F32, stdv, 3)))
        return st;
    if ((st = add_ref(w, src->vst, vt, "embeddings.class_embedding", "v.class_embd", NULL, NULL)) ||
        (st = add_ref(w, src->vst, vt, "embeddings.patch_embedding.weight", "v.patch_embd.weight", NULL, NULL)) ||
        (st = add_ref(w, src->vst, vt, "embeddings.position_embedding.weight", "v.position_embd.weight", NULL, NULL)) ||
        (st = add_ref(w, src->vst, vt, "pre_layrnorm.weight", "v.pre_ln.weight", NULL, NULL)) ||
        (st = add_ref(w, src->vst, vt, "pre_layrnorm.bias", "v.pre_ln.bias", NULL, NULL)))
        return st;
    char hs[128], gn[96];
    for (int l = 0; l < L; l++) {
        /* fc1 goes under ffn_down and fc2 under ffn_up: the legacy mmproj naming, which
         * the loader recognises by shape (and assumes when width == ff) */
        static const struct { const char *hf, *gg; } map[] = {
            {"layer_norm1", "ln1"},          {"layer_norm2", "ln2"},          {"self_attn.q_proj", "attn_q"},
            {"self_attn.k_proj", "attn_k"},  {"self_attn.v_proj", "attn_v"},  {"self_attn.out_proj", "attn_out"},
            {"mlp.fc1", "ffn_down"},         {"mlp.fc2", "ffn_up"},
        };
        for (size_t k = 0; k < VLMN_ARRAY_LEN(map); k++)
            for (int b = 0; b < 2; b++) {
                snprintf(hs, sizeof hs, "encoder.layers.%d.%s.%s", l, map[k].hf, b ? "bias" : "weight");
                snprintf(gn, sizeof gn, "v.blk.%d.%s.%s", l, map[k].gg, b ? "bias" : "weight");
                if ((st = add_ref(w, src->vst, vt, hs, gn, NULL, NULL))) return st;
            }
    }
    char p1w[64], p1b[64], p2w[64], p2b[64];
    snprintf(p1w, sizeof p1w, "%s.weight", src->lin1);
    snprintf(p1b, sizeof p1b, "%s.bias", src->lin1);
    snprintf(p2w, sizeof p2w, "%s.weight", src->lin2);
    snprintf(p2b, sizeof p2b, "%s.bias", src->lin2);
    if ((st = add_ref(w, src->pst, pj, p1w, "mm.0.weight", NULL, NULL)) ||
        (st = add_ref(w, src->pst, pj, p1b, "mm.0.bias", NULL, NULL)) ||
        (st = add_ref(w, src->pst, pj, p2w, "mm.2.weight", NULL, NULL)) ||
        (st = add_ref(w, src->pst, pj, p2b, "mm.2.bias", NULL, NULL)))
        return st;
    return VLMN_OK;
}

bool vlmn_hf_is_folder(const char *path)
{
    char *p = join(path, "config.json");
    bool ok = p && access(p, F_OK) == 0;
    vlmn_free(p);
    return ok;
}

/* The original layout's CLIP folder: clip_dir, else a folder next to dir named after
 * mm_vision_tower ("openai/clip-vit-large-patch14-336": PARENT/clip-vit-large-patch14-336
 * or PARENT/openai/clip-vit-large-patch14-336), else the tower as a path. */
static vlmn_status find_clip(const char *dir, const char *cpath, const cJSON *cfg, const char *clip_dir, char **out)
{
    *out = NULL;
    if (clip_dir) {
        if (!vlmn_hf_is_folder(clip_dir))
            return vlmn_error(VLMN_E_NOTFOUND, "%s: not a Hugging Face folder (no config.json)", clip_dir);
        *out = vlmn_strdup(clip_dir);
        return *out ? VLMN_OK : vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
    }
    const char *tower = cfg_str(cfg, "mm_vision_tower", cfg_str(cfg, "vision_tower", NULL));
    if (!tower || !*tower) return vlmn_error(VLMN_E_FORMAT, "%s: no mm_vision_tower: give the CLIP folder with --clip DIR", cpath);
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    size_t pl = dl;
    while (pl > 0 && dir[pl - 1] != '/') pl--;
    char parent[4096];
    snprintf(parent, sizeof parent, "%.*s", pl ? (int)(pl - 1 > 0 ? pl - 1 : 1) : 1, pl ? dir : ".");
    const char *base = strrchr(tower, '/') ? strrchr(tower, '/') + 1 : tower;
    char cand[3][4096 + 512];
    snprintf(cand[0], sizeof cand[0], "%s/%s", parent, base);
    snprintf(cand[1], sizeof cand[1], "%s/%s", parent, tower);
    snprintf(cand[2], sizeof cand[2], "%s", tower);
    for (int i = 0; i < 3; i++)
        if (vlmn_hf_is_folder(cand[i])) {
            *out = vlmn_strdup(cand[i]);
            return *out ? VLMN_OK : vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
        }
    return vlmn_error(VLMN_E_NOTFOUND, "%s: vision tower %s not found (looked for %s and %s): give --clip DIR", cpath,
                      tower, cand[0], cand[1]);
}

vlmn_status vlmn_hf_clip_folder(const char *dir, char **clip_dir)
{
    cJSON *cfg = NULL;
    *clip_dir = NULL;
    vlmn_status st = read_json(dir, "config.json", true, &cfg);
    if (st) return st;
    const char *arch = vlmn_hf_architecture(cfg);
    if (arch && !strcmp(arch, "LlavaLlamaForCausalLM")) {
        char *cpath = join(dir, "config.json");
        st = cpath ? find_clip(dir, cpath, cfg, NULL, clip_dir) : vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
        vlmn_free(cpath);
    }
    cJSON_Delete(cfg);
    return st;
}

vlmn_status vlmn_hf_llava_open_clip(const char *dir, const char *clip_dir, vlmn_gguf **text, vlmn_gguf **mmproj)
{
    *text = *mmproj = NULL;
    cJSON *cfg = NULL, *tcfg = NULL, *ccfg = NULL;
    vlmn_gguf_writer *wt = NULL, *wv = NULL;
    struct hf_owner *o = NULL;
    char *cpath = join(dir, "config.json"), *tname = NULL, *vname = NULL, *cdir = NULL, *ccpath = NULL;
    vlmn_status st;
    if (!cpath) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
    if ((st = read_json(dir, "config.json", true, &cfg))) goto fail;
    const char *arch = vlmn_hf_architecture(cfg);
    if (!arch) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: no architectures entry", cpath);
        goto fail;
    }
    bool original = !strcmp(arch, "LlavaLlamaForCausalLM");
    if (!original && strcmp(arch, "LlavaForConditionalGeneration")) {
        const char *why = !strcmp(arch, "InternVLChatModel") || !strcmp(arch, "InternVLForConditionalGeneration")
                              ? "InternVL is not yet supported"
                          : !strcmp(arch, "CLIPModel") ? "a CLIP model, not a LLaVA (vlmn info describes it)"
                                                       : "not a supported architecture (LlavaForConditionalGeneration, "
                                                         "LlavaLlamaForCausalLM)";
        st = vlmn_error(VLMN_E_UNSUPPORTED, "%s: %s: %s", cpath, arch, why);
        goto fail;
    }
    if (!original && clip_dir) {
        st = vlmn_error(VLMN_E_ARG, "%s: LlavaForConditionalGeneration holds its vision tower: no --clip/--mmproj", cpath);
        goto fail;
    }
    const cJSON *tc = original ? cfg : cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
    const cJSON *vc = original ? NULL : cJSON_GetObjectItemCaseSensitive(cfg, "vision_config");
    if ((tc && !cJSON_IsObject(tc)) || (vc && !cJSON_IsObject(vc))) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: text_config / vision_config is not an object", cpath);
        goto fail;
    }
    int fl = 0;
    if ((st = original ? orig_vision_keys(cpath, cfg, &fl) : hf_vision_keys(cpath, cfg, &fl))) goto fail;
    if ((st = read_json(dir, "tokenizer_config.json", false, &tcfg))) goto fail;
    if (!(o = vlmn_calloc(1, sizeof *o))) goto nomem;
    if ((st = vlmn_st_open(dir, &o->st))) goto fail;
    struct vis_src src;
    if (original) {
        /* the separate CLIP folder: CLIPModel (vision_config) or CLIPVisionModel */
        static const char *const vt[] = {"vision_model.", NULL};
        static const char *const pj[] = {"model.mm_projector.", NULL};
        if ((st = find_clip(dir, cpath, cfg, clip_dir, &cdir))) goto fail;
        if (!(ccpath = join(cdir, "config.json"))) goto nomem;
        if ((st = read_json(cdir, "config.json", true, &ccfg))) goto fail;
        const cJSON *cv = cJSON_GetObjectItemCaseSensitive(ccfg, "vision_config");
        vc = cJSON_IsObject(cv) ? cv : ccfg;
        if ((st = vlmn_st_open(cdir, &o->clip))) goto fail;
        src = (struct vis_src){o->clip, o->st, vt, pj, "0", "2", cdir, ccpath};
    } else {
        static const char *const vt[] = {"vision_tower.vision_model.", "model.vision_tower.vision_model.", NULL};
        static const char *const pj[] = {"multi_modal_projector.", "model.multi_modal_projector.", NULL};
        src = (struct vis_src){o->st, o->st, vt, pj, "linear_1", "linear_2", dir, cpath};
    }
    if ((st = vlmn_gguf_writer_create(&wt)) || (st = vlmn_gguf_writer_create(&wv))) goto fail;
    if ((st = build_text(o, dir, cpath, tc, tcfg, original, wt)) || (st = build_vision(&src, vc, fl, wv))) goto fail;
    tname = join(dir, "(text model)");
    vname = original ? join(cdir, "(vision tower)") : join(dir, "(vision tower)");
    if (!tname || !vname) goto nomem;
    o->refs = 2;
    st = vlmn_gguf_writer_view(wt, tname, owner_release, o, text);
    vlmn_status st2 = vlmn_gguf_writer_view(wv, vname, owner_release, o, mmproj);
    o = NULL; /* owned by the views now (each view's failure released its reference) */
    if (!st) st = st2;
    if (st) goto fail;
    goto done;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
fail:
    vlmn_gguf_close(*text);
    vlmn_gguf_close(*mmproj);
    *text = *mmproj = NULL;
    if (o) {
        o->refs = 1;
        owner_release(o);
    }
done:
    vlmn_gguf_writer_free(wt);
    vlmn_gguf_writer_free(wv);
    vlmn_free(tname);
    vlmn_free(vname);
    vlmn_free(cpath);
    vlmn_free(cdir);
    vlmn_free(ccpath);
    cJSON_Delete(cfg);
    cJSON_Delete(tcfg);
    cJSON_Delete(ccfg);
    return st;
}

vlmn_status vlmn_hf_llava_open(const char *dir, vlmn_gguf **text, vlmn_gguf **mmproj)
{
    return vlmn_hf_llava_open_clip(dir, NULL, text, mmproj);
}
