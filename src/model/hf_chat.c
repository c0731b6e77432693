/* The chat template of a Hugging Face folder (chat_template.json, or tokenizer_config.json's
 * "chat_template": a string or a list of {name, template}) mapped to one of the engine's
 * prompt templates (prompt.h). Jinja is not run: the template text is classified by what
 * it writes (see docs/hf.md "Chat template"). Flow: folder -> [this] -> vlmn_prompt_format. */
#include "vlmn/model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/file.h"

#define HF_MAX_CHAT_JSON (16u << 20)

/* Classify a Jinja chat template; NULL if it is not one the engine knows. */
const char *vlmn_hf_chat_classify(const char *tmpl)
{
    static const char *const others[] = {"<|im_start|>", "[INST]", "<|start_header_id|>", "<start_of_turn>",
                                         "<|user|>", "<|im_end|>", "<|eot_id|>", NULL};
    for (int i = 0; others[i]; i++)
        if (strstr(tmpl, others[i])) return NULL;
    bool user = strstr(tmpl, "USER") || strstr(tmpl, ".upper()");
    if (!user || !strstr(tmpl, "ASSISTANT")) return NULL;
    if (strstr(tmpl, "A chat between a curious human")) return "llava-v1";
    if (strstr(tmpl, "A chat between a curious user")) return "vicuna-v1";
    return strstr(tmpl, "<image>") ? "llava-hf" : NULL;
}

static vlmn_status read_obj(const char *path, cJSON **out)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    *out = NULL;
    vlmn_status st = vlmn_file_read(path, HF_MAX_CHAT_JSON, "JSON config", &buf, &n);
    if (st) return st;
    *out = cJSON_ParseWithLength((const char *)buf, n);
    vlmn_free(buf);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return vlmn_error(VLMN_E_FORMAT, "%s: not a JSON object", path);
    }
    return VLMN_OK;
}

vlmn_status vlmn_hf_chat_template(const char *dir, const char **name, char *source, size_t source_cap)
{
    static const char *const files[] = {"chat_template.json", "tokenizer_config.json"};
    *name = NULL;
    if (source_cap) source[0] = '\0';
    for (int f = 0; f < 2; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        if (access(path, F_OK) != 0) continue;
        cJSON *o = NULL;
        vlmn_status st = read_obj(path, &o);
        if (st) return st;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "chat_template");
        const char *text = NULL;
        if (cJSON_IsString(t)) {
            text = t->valuestring;
        } else if (cJSON_IsArray(t)) { /* [{name, template}]: the "default" one */
            const cJSON *x;
            cJSON_ArrayForEach(x, t)
            {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(x, "name");
                const cJSON *tt = cJSON_GetObjectItemCaseSensitive(x, "template");
                if (cJSON_IsString(nm) && cJSON_IsString(tt) && !strcmp(nm->valuestring, "default")) text = tt->valuestring;
            }
            if (!text) {
                cJSON_Delete(o);
                return vlmn_error(VLMN_E_FORMAT, "%s: chat_template list has no \"default\" template", path);
            }
        } else if (t && !cJSON_IsNull(t)) {
            cJSON_Delete(o);
            return vlmn_error(VLMN_E_FORMAT, "%s: chat_template is neither a string nor a list", path);
        }
        if (!text) {
            cJSON_Delete(o);
            continue;
        }
        *name = vlmn_hf_chat_classify(text);
        if (source_cap) snprintf(source, source_cap, "%s", path);
        cJSON_Delete(o);
        if (!*name)
            return vlmn_error(VLMN_E_UNSUPPORTED,
                              "%s: chat template not recognised (known: LLaVA-1.5 USER/ASSISTANT); "
                              "choose one with --template llava-v1|vicuna-v1|llava-hf|plain",
                              path);
        return VLMN_OK;
    }
    return VLMN_OK;
}
