/* Chat completions on the wire: building request bodies (text and PNG image parts,
 * response_format json_schema, logprobs) and parsing replies, bounded and checked.
 * Flow: prompts -> [this] -> transport (client.c). Protocol: OpenAI chat completions. */
#include "vlmn/llm.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

char *vlmn_llm_base64(const uint8_t *p, size_t n)
{
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n > (SIZE_MAX / 4) * 3 - 3) return NULL;
    size_t out_n = (n + 2) / 3 * 4;
    char *o = vlmn_malloc(out_n + 1);
    if (!o) return NULL;
    size_t j = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        o[j++] = T[v >> 18];
        o[j++] = T[(v >> 12) & 63];
        o[j++] = T[(v >> 6) & 63];
        o[j++] = T[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        o[j++] = T[v >> 18];
        o[j++] = T[(v >> 12) & 63];
        o[j++] = '=';
        o[j++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        o[j++] = T[v >> 18];
        o[j++] = T[(v >> 12) & 63];
        o[j++] = T[(v >> 6) & 63];
        o[j++] = '=';
    }
    o[j] = 0;
    return o;
}

vlmn_status vlmn_llm_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    const char *comma = n > 5 && !strncmp(s, "data:", 5) ? memchr(s, ',', n) : NULL;
    if (comma) {
        n -= (size_t)(comma + 1 - s);
        s = comma + 1;
    }
    uint8_t *o = vlmn_malloc(n / 4 * 3 + 3);
    if (!o) return vlmn_error(VLMN_E_NOMEM, "base64: out of memory");
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t j = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int v;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad) goto bad; /* data after padding */
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        else goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        digits++;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (uint8_t)(acc >> bits);
        }
    }
    if (digits % 4 == 1 || pad > 2 || (pad && (digits + (size_t)pad) % 4)) goto bad;
    *out = o;
    *out_n = j;
    return VLMN_OK;
bad:
    vlmn_free(o);
    return vlmn_error(VLMN_E_FORMAT, "base64: malformed text");
}

static vlmn_status nomem(void) { return vlmn_error(VLMN_E_NOMEM, "llm: out of memory building a request"); }

static cJSON *build_content(const vlmn_llm_msg *m)
{
    if (m->n_parts == 1 && m->parts[0].kind == VLMN_LLM_TEXT)
        return cJSON_CreateString(m->parts[0].text ? m->parts[0].text : "");
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return NULL;
    for (int i = 0; i < m->n_parts; i++) {
        const vlmn_llm_part *p = &m->parts[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) goto fail;
        cJSON_AddItemToArray(arr, o);
        if (p->kind == VLMN_LLM_TEXT) {
            if (!cJSON_AddStringToObject(o, "type", "text") || !cJSON_AddStringToObject(o, "text", p->text ? p->text : ""))
                goto fail;
        } else {
            char *b64 = vlmn_llm_base64(p->png, p->png_len);
            if (!b64) goto fail;
            size_t n = strlen(b64) + 32;
            char *url = vlmn_malloc(n);
            if (!url) {
                vlmn_free(b64);
                goto fail;
            }
            snprintf(url, n, "data:image/png;base64,%s", b64);
            vlmn_free(b64);
            cJSON *iu = cJSON_CreateObject();
            bool ok = iu && cJSON_AddStringToObject(o, "type", "image_url") && cJSON_AddItemToObject(o, "image_url", iu) &&
                      cJSON_AddStringToObject(iu, "url", url) &&
                      (!p->detail || cJSON_AddStringToObject(iu, "detail", p->detail));
            vlmn_free(url);
            if (!ok) goto fail;
        }
    }
    return arr;
fail:
    cJSON_Delete(arr);
    return NULL;
}

vlmn_status vlmn_llm_chat_body(const vlmn_llm_chat *c, char **json)
{
    *json = NULL;
    if (!c->model || !*c->model) return vlmn_error(VLMN_E_ARG, "llm: no model name");
    if (c->n_msgs <= 0) return vlmn_error(VLMN_E_ARG, "llm: no messages");
    if (c->top_logprobs < 0 || c->top_logprobs > VLMN_LLM_MAX_TOP)
        return vlmn_error(VLMN_E_ARG, "llm: top_logprobs %d outside 0..%d", c->top_logprobs, VLMN_LLM_MAX_TOP);
    cJSON *root = cJSON_CreateObject(), *msgs = NULL;
    if (!root || !cJSON_AddStringToObject(root, "model", c->model)) goto fail;
    msgs = cJSON_AddArrayToObject(root, "messages");
    if (!msgs) goto fail;
    for (int i = 0; i < c->n_msgs; i++) {
        cJSON *m = cJSON_CreateObject();
        if (!m) goto fail;
        cJSON_AddItemToArray(msgs, m);
        if (!cJSON_AddStringToObject(m, "role", c->msgs[i].role)) goto fail;
        cJSON *content = build_content(&c->msgs[i]);
        if (!content) goto fail;
        cJSON_AddItemToObject(m, "content", content);
    }
    if (c->temperature >= 0 && !cJSON_AddNumberToObject(root, "temperature", c->temperature)) goto fail;
    if (c->max_tokens > 0 && !cJSON_AddNumberToObject(root, "max_tokens", c->max_tokens)) goto fail;
    if (c->has_seed && !cJSON_AddNumberToObject(root, "seed", (double)c->seed)) goto fail;
    if (c->logprobs) {
        if (!cJSON_AddTrueToObject(root, "logprobs")) goto fail;
        if (c->top_logprobs > 0 && !cJSON_AddNumberToObject(root, "top_logprobs", c->top_logprobs)) goto fail;
    }
    if (c->schema_json) {
        cJSON *schema = cJSON_Parse(c->schema_json);
        if (!schema) {
            cJSON_Delete(root);
            return vlmn_error(VLMN_E_ARG, "llm: response schema is not JSON");
        }
        cJSON *rf = cJSON_AddObjectToObject(root, "response_format");
        cJSON *js = rf ? cJSON_AddObjectToObject(rf, "json_schema") : NULL;
        if (!rf || !cJSON_AddStringToObject(rf, "type", "json_schema") || !js ||
            !cJSON_AddStringToObject(js, "name", c->schema_name ? c->schema_name : "reply") ||
            !cJSON_AddTrueToObject(js, "strict")) {
            cJSON_Delete(schema);
            goto fail;
        }
        cJSON_AddItemToObject(js, "schema", schema);
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!txt) return nomem();
    *json = vlmn_strdup(txt);
    cJSON_free(txt);
    return *json ? VLMN_OK : nomem();
fail:
    cJSON_Delete(root);
    return nomem();
}

void vlmn_llm_reply_free(vlmn_llm_reply *r)
{
    if (!r) return;
    vlmn_free(r->content);
    vlmn_free(r->finish_reason);
    for (int i = 0; i < r->n_tokens; i++) {
        vlmn_free(r->tokens[i].token);
        for (int j = 0; j < r->tokens[i].n_top; j++) vlmn_free(r->tokens[i].top[j].token);
        vlmn_free(r->tokens[i].top);
    }
    vlmn_free(r->tokens);
    memset(r, 0, sizeof *r);
}

static int64_t get_count(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15) return -1;
    return (int64_t)v->valuedouble;
}

vlmn_status vlmn_llm_chat_parse(const char *body, size_t len, vlmn_llm_reply *out)
{
    memset(out, 0, sizeof *out);
    out->prompt_tokens = out->completion_tokens = -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    vlmn_status st = VLMN_OK;
    if (!root) return vlmn_error(VLMN_E_FORMAT, "llm reply: not JSON");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    const cJSON *msg = cJSON_IsObject(c0) ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    const cJSON *content = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    if (!cJSON_IsString(content)) {
        st = vlmn_error(VLMN_E_FORMAT, "llm reply: no choices[0].message.content string");
        goto done;
    }
    if (!(out->content = vlmn_strdup(content->valuestring))) goto oom;
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    if (cJSON_IsString(fr) && !(out->finish_reason = vlmn_strdup(fr->valuestring))) goto oom;
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        out->prompt_tokens = get_count(usage, "prompt_tokens");
        out->completion_tokens = get_count(usage, "completion_tokens");
    }
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(c0, "logprobs");
    if (lp && !cJSON_IsNull(lp)) {
        const cJSON *arr = cJSON_IsObject(lp) ? cJSON_GetObjectItemCaseSensitive(lp, "content") : NULL;
        if (!cJSON_IsArray(arr)) {
            st = vlmn_error(VLMN_E_FORMAT, "llm reply: logprobs.content is not an array");
            goto done;
        }
        int n = cJSON_GetArraySize(arr);
        if (n > VLMN_LLM_MAX_TOKENS) {
            st = vlmn_error(VLMN_E_RANGE, "llm reply: %d logprob tokens (limit %d)", n, VLMN_LLM_MAX_TOKENS);
            goto done;
        }
        if (n > 0 && !(out->tokens = vlmn_calloc((size_t)n, sizeof *out->tokens))) goto oom;
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "token");
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(e, "logprob");
            if (!cJSON_IsString(t) || !cJSON_IsNumber(l)) {
                st = vlmn_error(VLMN_E_FORMAT, "llm reply: logprobs entry %d lacks token/logprob", out->n_tokens);
                goto done;
            }
            vlmn_llm_tok *k = &out->tokens[out->n_tokens++];
            k->logprob = l->valuedouble;
            if (!(k->token = vlmn_strdup(t->valuestring))) goto oom;
            const cJSON *top = cJSON_GetObjectItemCaseSensitive(e, "top_logprobs");
            if (cJSON_IsArray(top)) {
                int m = cJSON_GetArraySize(top);
                if (m > VLMN_LLM_MAX_TOP) m = VLMN_LLM_MAX_TOP;
                if (m > 0 && !(k->top = vlmn_calloc((size_t)m, sizeof *k->top))) goto oom;
                const cJSON *a;
                cJSON_ArrayForEach(a, top)
                {
                    if (k->n_top >= m) break;
                    const cJSON *at = cJSON_GetObjectItemCaseSensitive(a, "token");
                    const cJSON *al = cJSON_GetObjectItemCaseSensitive(a, "logprob");
                    if (!cJSON_IsString(at) || !cJSON_IsNumber(al)) {
                        st = vlmn_error(VLMN_E_FORMAT, "llm reply: top_logprobs of entry %d malformed", out->n_tokens - 1);
                        goto done;
                    }
                    k->top[k->n_top].logprob = al->valuedouble;
                    if (!(k->top[k->n_top].token = vlmn_strdup(at->valuestring))) goto oom;
                    k->n_top++;
                }
            }
        }
    }
    goto done;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "llm reply: out of memory");
done:
    cJSON_Delete(root);
    if (st) vlmn_llm_reply_free(out), out->prompt_tokens = out->completion_tokens = -1;
    return st;
}

vlmn_status vlmn_llm_chat_check(const char *body, size_t len, void *user)
{
    vlmn_llm_reply r;
    vlmn_status st = vlmn_llm_chat_parse(body, len, &r);
    if (st) return st;
    bool empty = !r.content || !*r.content;
    vlmn_llm_reply_free(&r);
    return empty ? vlmn_error(VLMN_E_FORMAT, "llm reply: empty content") : VLMN_OK;
}

void vlmn_llm_error_message(const char *body, size_t len, char *buf, size_t n)
{
    if (!n) return;
    buf[0] = 0;
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
    if (cJSON_IsString(m)) snprintf(buf, n, "%s", m->valuestring);
    else if (cJSON_IsString(e)) snprintf(buf, n, "%s", e->valuestring);
    else if (body && len) {
        size_t k = len < 200 ? len : 200;
        if (k >= n) k = n - 1;
        size_t j = 0;
        for (size_t i = 0; i < k; i++) {
            unsigned char ch = (unsigned char)body[i];
            buf[j++] = (ch >= 32 && ch < 127) ? (char)ch : ' ';
        }
        buf[j] = 0;
    }
    cJSON_Delete(root);
}
