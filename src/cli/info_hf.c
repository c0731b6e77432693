/* `vlmn info DIR`: what a Hugging Face model folder holds: architecture and sub-configs
 * (config.json), safetensors shards, tensors with dtypes and shapes, tokenizer files,
 * preprocessing, and for LLaVA what the engine loads from it. Text or --json. */
#include "cli.h"
#include "cli/info_hf.h"
#include "vlmn/gguf.h"
#include "vlmn/model.h"
#include "vlmn/safetensors.h"
#include "vlmn/tokenizer.h"
#include "core/alloc.h"
#include "core/file.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *dtype_name(uint32_t t)
{
    return t == VLMN_TYPE_F32 ? "F32" : t == VLMN_TYPE_F16 ? "F16" : t == VLMN_TYPE_BF16 ? "BF16" : "?";
}

static bool exists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static cJSON *read_json(const char *dir, const char *name)
{
    char p[4096];
    unsigned char *buf = NULL;
    size_t n = 0;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (access(p, F_OK) || vlmn_file_read(p, 4u << 20, "JSON config", &buf, &n)) return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)buf, n);
    vlmn_free(buf);
    return j;
}

/* The sub-config keys that say a tower's shape. */
static const char *const SHAPE_KEYS[] = {"model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                                         "num_attention_heads", "num_key_value_heads", "image_size", "patch_size",
                                         "vocab_size", "hidden_act", NULL};

static void print_sub(const cJSON *cfg, const char *key)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!cJSON_IsObject(c)) return;
    printf("%s:", key);
    for (int i = 0; SHAPE_KEYS[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, SHAPE_KEYS[i]);
        if (cJSON_IsString(v)) printf(" %s %s", SHAPE_KEYS[i], v->valuestring);
        else if (cJSON_IsNumber(v)) printf(" %s %.17g", SHAPE_KEYS[i], v->valuedouble);
    }
    printf("\n");
}

/* The engine's view of a LLaVA folder (or why it cannot load it). */
static void print_engine(const char *dir)
{
    vlmn_gguf *t = NULL, *v = NULL;
    if (vlmn_hf_llava_open(dir, &t, &v)) {
        printf("engine: not loadable: %s\n", vlmn_errmsg());
        return;
    }
    uint32_t E = 0, L = 0, FF = 0, H = 0, HKV = 0, VL = 0, VW = 0, VFF = 0, VH = 0, S = 0, P = 0;
    int32_t fl = 0;
    vlmn_gguf_get_u32(t, "llama.embedding_length", &E);
    vlmn_gguf_get_u32(t, "llama.block_count", &L);
    vlmn_gguf_get_u32(t, "llama.feed_forward_length", &FF);
    vlmn_gguf_get_u32(t, "llama.attention.head_count", &H);
    vlmn_gguf_get_u32(t, "llama.attention.head_count_kv", &HKV);
    vlmn_gguf_get_u32(v, "clip.vision.block_count", &VL);
    vlmn_gguf_get_u32(v, "clip.vision.embedding_length", &VW);
    vlmn_gguf_get_u32(v, "clip.vision.feed_forward_length", &VFF);
    vlmn_gguf_get_u32(v, "clip.vision.attention.head_count", &VH);
    vlmn_gguf_get_u32(v, "clip.vision.image_size", &S);
    vlmn_gguf_get_u32(v, "clip.vision.patch_size", &P);
    vlmn_gguf_get_i32(v, "clip.vision.feature_layer", &fl);
    const vlmn_gguf_tensor *emb = vlmn_gguf_find_tensor(t, "token_embd.weight");
    printf("engine: llama %u layers, n_embd %u, n_ff %u, %u heads (%u kv), vocab %" PRIu64 ", lm_head %s\n", L, E, FF,
           H, HKV, emb ? emb->ne[1] : 0, vlmn_gguf_find_tensor(t, "output.weight") ? "stored" : "tied");
    int64_t run = fl >= 0 ? fl : (int64_t)VL + 1 + fl;
    printf("engine: clip %u blocks stored, %lld run (vision_feature_layer %d), width %u, ff %u, %u heads, image %u, "
           "patch %u; projector mlp (linear_1, gelu, linear_2)\n",
           VL, (long long)run, (int)fl, VW, VFF, VH, S, P);
    int64_t nv = vlmn_gguf_find_key(t, "tokenizer.ggml.tokens");
    vlmn_tok *tok = NULL;
    if (nv < 0 && vlmn_tok_from_gguf(t, &tok) == VLMN_OK)
        printf("engine: tokenizer tokenizer.json, %d tokens; Q/K rows permuted at load (copy), other weights mapped\n",
               (int)vlmn_tok_n_vocab(tok));
    else
        printf("engine: tokenizer tokenizer.model, %" PRIu64 " pieces; Q/K rows permuted at load (copy), other weights mapped\n",
               nv >= 0 ? vlmn_gguf_arr_count(t, nv) : 0);
    vlmn_tok_free(tok);
    vlmn_gguf_close(t);
    vlmn_gguf_close(v);
}

int vlmn_cli_template(const char *cmd, const char *model, const char **tmpl)
{
    if (!*tmpl || strcmp(*tmpl, "auto")) return 0;
    const char *name = NULL;
    vlmn_status st = model && vlmn_hf_is_folder(model) ? vlmn_hf_chat_template(model, &name, NULL, 0) : VLMN_OK;
    if (st) return cli_fail(cmd, st);
    vlmn_gguf *g = NULL;
    if (!name && model && !vlmn_hf_is_folder(model) && vlmn_gguf_open(model, &g) == VLMN_OK) {
        /* a GGUF file: its family's template (InternVL: internvl); an unreadable file
         * fails at load with its own message */
        const char *arch = NULL;
        if (vlmn_gguf_get_str(g, "general.architecture", &arch) == VLMN_OK) name = vlmn_arch_template(arch);
        vlmn_gguf_close(g);
    }
    *tmpl = name ? name : "llava-v1";
    return 0;
}

static int info_text(const char *dir, const cJSON *cfg, const vlmn_st *s)
{
    const char *arch = cfg ? vlmn_hf_architecture(cfg) : NULL;
    const cJSON *mt = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "model_type") : NULL;
    printf("%s: Hugging Face folder, architecture %s", dir, arch ? arch : "(none)");
    if (cJSON_IsString(mt)) printf(" (model_type %s)", mt->valuestring);
    printf("\n");
    if (cfg) {
        print_sub(cfg, "text_config");
        print_sub(cfg, "vision_config");
    }
    uint64_t total = 0, by[3] = {0};
    for (int64_t i = 0; i < vlmn_st_n_tensors(s); i++) {
        const vlmn_st_tensor *t = vlmn_st_tensor_at(s, i);
        total += t->nbytes;
        by[t->type == VLMN_TYPE_F32 ? 0 : t->type == VLMN_TYPE_F16 ? 1 : 2]++;
    }
    printf("safetensors: %d shard%s, %" PRId64 " tensors (F32 %" PRIu64 ", F16 %" PRIu64 ", BF16 %" PRIu64 "), %" PRIu64
           " bytes of data\n",
           vlmn_st_n_shards(s), vlmn_st_n_shards(s) == 1 ? "" : "s", vlmn_st_n_tensors(s), by[0], by[1], by[2], total);
    for (int i = 0; i < vlmn_st_n_shards(s); i++)
        printf("  %s  %" PRIu64 " bytes\n", vlmn_st_shard_path(s, i), vlmn_st_shard_size(s, i));
    printf("tokenizer:%s%s%s\n", exists(dir, "tokenizer.model") ? " tokenizer.model" : "",
           exists(dir, "tokenizer.json") ? " tokenizer.json" : "",
           !exists(dir, "tokenizer.model") && !exists(dir, "tokenizer.json") ? " (none)" : "");
    const char *chat = NULL;
    char chat_src[4096];
    if (vlmn_hf_chat_template(dir, &chat, chat_src, sizeof chat_src))
        printf("chat template: not recognised (%s)\n", vlmn_errmsg());
    else if (chat)
        printf("chat template: %s (from %s)\n", chat, strrchr(chat_src, '/') ? strrchr(chat_src, '/') + 1 : chat_src);
    else
        printf("chat template: none (prompts use --template, default llava-v1)\n");
    cJSON *pp = read_json(dir, "preprocessor_config.json");
    if (pp) {
        char *txt = cJSON_PrintUnformatted(pp);
        printf("preprocessor_config.json: %s\n", txt ? txt : "");
        cJSON_free(txt);
        cJSON_Delete(pp);
    }
    if (arch && !strcmp(arch, "LlavaLlamaForCausalLM")) { /* the original layout: its CLIP folder */
        char *clip = NULL;
        if (vlmn_hf_clip_folder(dir, &clip)) printf("vision tower: not found: %s\n", vlmn_errmsg());
        else printf("vision tower: %s (mm_vision_tower %s; --clip DIR overrides)\n", clip,
                    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(cfg, "mm_vision_tower"))
                        ? cJSON_GetObjectItemCaseSensitive(cfg, "mm_vision_tower")->valuestring : "?");
        vlmn_free(clip);
    }
    if (arch && (!strcmp(arch, "LlavaForConditionalGeneration") || !strcmp(arch, "LlavaLlamaForCausalLM"))) print_engine(dir);
    else printf("engine: %s is not run by vlmn (LLaVA only); the reader checked every tensor\n", arch ? arch : "folder");
    printf("tensors (%" PRId64 "):\n", vlmn_st_n_tensors(s));
    for (int64_t i = 0; i < vlmn_st_n_tensors(s); i++) {
        const vlmn_st_tensor *t = vlmn_st_tensor_at(s, i);
        char shp[160];
        size_t o = (size_t)snprintf(shp, sizeof shp, "[");
        for (uint32_t d = 0; d < t->n_dims && o < sizeof shp; d++)
            o += (size_t)snprintf(shp + o, sizeof shp - o, "%s%" PRIu64, d ? ", " : "", t->shape[d]);
        if (o < sizeof shp) snprintf(shp + o, sizeof shp - o, "]");
        printf("  %-60s  %-4s  %-24s  %" PRIu64 "  shard %d\n", t->name, dtype_name(t->type), shp, t->nbytes, t->shard);
    }
    return 0;
}

static int info_json(const char *dir, const cJSON *cfg, const vlmn_st *s)
{
    cJSON *o = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *ts = cJSON_CreateArray();
    const char *arch = cfg ? vlmn_hf_architecture(cfg) : NULL;
    cJSON_AddStringToObject(o, "folder", dir);
    if (arch) cJSON_AddStringToObject(o, "architecture", arch);
    else cJSON_AddNullToObject(o, "architecture");
    if (cfg) cJSON_AddItemToObject(o, "config", cJSON_Duplicate(cfg, true));
    for (int i = 0; i < vlmn_st_n_shards(s); i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "file", vlmn_st_shard_path(s, i));
        cJSON_AddNumberToObject(x, "size", (double)vlmn_st_shard_size(s, i));
        cJSON_AddItemToArray(sh, x);
    }
    cJSON_AddItemToObject(o, "shards", sh);
    for (int64_t i = 0; i < vlmn_st_n_tensors(s); i++) {
        const vlmn_st_tensor *t = vlmn_st_tensor_at(s, i);
        cJSON *x = cJSON_CreateObject(), *shape = cJSON_CreateArray();
        cJSON_AddStringToObject(x, "name", t->name);
        cJSON_AddStringToObject(x, "dtype", dtype_name(t->type));
        for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToObject(x, "shape", shape);
        cJSON_AddNumberToObject(x, "bytes", (double)t->nbytes);
        cJSON_AddNumberToObject(x, "shard", t->shard);
        cJSON_AddItemToArray(ts, x);
    }
    cJSON_AddItemToObject(o, "tensors", ts);
    cJSON *tok = cJSON_CreateArray();
    if (exists(dir, "tokenizer.model")) cJSON_AddItemToArray(tok, cJSON_CreateString("tokenizer.model"));
    if (exists(dir, "tokenizer.json")) cJSON_AddItemToArray(tok, cJSON_CreateString("tokenizer.json"));
    cJSON_AddItemToObject(o, "tokenizer_files", tok);
    const char *chat = NULL;
    if (vlmn_hf_chat_template(dir, &chat, NULL, 0) == VLMN_OK && chat) cJSON_AddStringToObject(o, "chat_template", chat);
    else cJSON_AddNullToObject(o, "chat_template");
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt) return cli_errorf("info", 1, "%s: out of memory formatting JSON", dir);
    printf("%s\n", txt);
    cJSON_free(txt);
    return 0;
}

int vlmn_info_hf(const char *dir, bool json)
{
    vlmn_st *s = NULL;
    cJSON *cfg = read_json(dir, "config.json");
    if (!cfg || !cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return cli_errorf("info", 1, "%s/config.json: missing or not a JSON object", dir);
    }
    vlmn_status st = vlmn_st_open(dir, &s);
    if (st) {
        if (!json && vlmn_st_has_pickles(dir)) { /* say what is there before the error */
            const char *arch = vlmn_hf_architecture(cfg);
            printf("%s: Hugging Face folder, architecture %s\n", dir, arch ? arch : "(none)");
            printf("weights: PyTorch pickles only (pytorch_model*.bin)\n");
            printf("tokenizer:%s%s\n", exists(dir, "tokenizer.model") ? " tokenizer.model" : "",
                   exists(dir, "tokenizer.json") ? " tokenizer.json" : "");
        }
        cJSON_Delete(cfg);
        fflush(stdout);
        return cli_fail("info", st);
    }
    int rc = json ? info_json(dir, cfg, s) : info_text(dir, cfg, s);
    vlmn_st_close(s);
    cJSON_Delete(cfg);
    return rc;
}
