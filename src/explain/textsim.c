/* The Fig. 11 text simulator (paper A.2): given an explanation, the LLM predicts an
 * activation 0..10 for every text token of a sample. JSON mode asks for the token list
 * under a JSON schema and aligns it to the real tokens position by position (a token
 * that differs is a mismatch: its value is NaN, nothing is shifted); logprob mode is
 * Bills et al.'s expected-value simulator over "0".."10" at each activation slot.
 * Flow: explanation + sample tokens -> [this] -> llm client -> simulated activations. */
#include "vlmn/explain.h"
#include "core/alloc.h"
#include "explain/explain_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char SIM_SYSTEM[] =
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in an image and a "
    "short document. Look at summary of what the neuron does, and try to predict how it will fire on each "
    "token.\n\nThe activation format is token<tab>activation, activations go from 0 to 10, \"unknown\" indicates an "
    "unknown activation. Most activations will be 0.\n\nPlease extract tokens and unknowns based on the string input "
    "(in the format of token\\tunknown\\n). Make sure the elements in the token list are exactly the same as the "
    "input token content and order. Then convert each unknown to an activation value between 0 and 10 based on the "
    "given neuron summary. Make sure do not miss text tokens.";
static const char SIM_SYSTEM_JSON[] =
    "\n\nAnswer with a JSON object {\"tokens\": [{\"token\": ..., \"activation\": ...}, ...]}, one entry per input "
    "token.";
static const char SIM_SYSTEM_LINES[] =
    "\n\nAnswer with the same lines between <start> and <end>, each unknown replaced by the activation.";

static const char SIM_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"tokens\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"properties\":{\"token\":{\"type\":\"string\"},\"activation\":{\"type\":\"integer\"}},"
    "\"required\":[\"token\",\"activation\"],\"additionalProperties\":false}}},\"required\":[\"tokens\"],"
    "\"additionalProperties\":false}";

typedef struct textsim {
    vlmn_textsim_mode mode;
    const vlmn_xexamples *ex;
    vlmn_xprompt_opts o;
    char *model;
} textsim;

static bool add_case(xmsgs *m, int index, const char *expl, const uint8_t *png, size_t png_len, int n,
                     const char *const *tokens)
{
    char h[64];
    snprintf(h, sizeof h, "\n\nNeuron %d\n", index);
    bool ok = xmsg_text(m, h) && xmsg_text(m, "Explanation of neuron ") && (snprintf(h, sizeof h, "%d", index), 1) &&
              xmsg_text(m, h) && xmsg_text(m, " behavior: the main thing this neuron does is find ") &&
              xmsg_text(m, expl) && xmsg_text(m, ".\n");
    if (ok && png) ok = xmsg_image(m, png, png_len) && xmsg_text(m, "\n");
    return ok && xmsg_lines(m, n, tokens, NULL, true) && xmsg_end(m, "user");
}

static bool add_answer(xmsgs *m, vlmn_textsim_mode mode, const vlmn_xexample *e)
{
    if (mode == VLMN_TEXTSIM_LOGPROB)
        return xmsg_lines(m, e->n_text, (const char *const *)e->tokens, e->acts, false) && xmsg_end(m, "assistant");
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = o ? cJSON_AddArrayToObject(o, "tokens") : NULL;
    bool ok = arr != NULL;
    for (int i = 0; ok && i < e->n_text; i++) {
        cJSON *t = cJSON_CreateObject();
        ok = t && cJSON_AddItemToArray(arr, t) && cJSON_AddStringToObject(t, "token", e->tokens[i]) &&
             cJSON_AddNumberToObject(t, "activation", e->acts[i]);
    }
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    ok = s && xmsg_text(m, s) && xmsg_end(m, "assistant");
    cJSON_free(s);
    return ok;
}

vlmn_status vlmn_textsim_body(vlmn_textsim_mode mode, const vlmn_xexamples *ex, const vlmn_xprompt_opts *o,
                              vlmn_xkind k, const char *explanation, const vlmn_xsample *s, char **json)
{
    *json = NULL;
    xmsgs m = {0};
    bool ok = xmsg_text(&m, SIM_SYSTEM) && xmsg_text(&m, mode == VLMN_TEXTSIM_JSON ? SIM_SYSTEM_JSON : SIM_SYSTEM_LINES) &&
              xmsg_end(&m, "system");
    for (int i = 0; ok && ex && i < ex->n; i++) {
        const vlmn_xexample *e = &ex->ex[i];
        /* multi-modal neurons: the context examples carry their pictures (A.2) */
        ok = add_case(&m, i + 1, e->explanation, k == VLMN_XK_MULTIMODAL ? e->png : NULL, e->png_len, e->n_text,
                      (const char *const *)e->tokens) &&
             add_answer(&m, mode, e);
    }
    /* the sample being simulated: text only */
    ok = ok && add_case(&m, (ex ? ex->n : 0) + 1, explanation, NULL, 0, s->n_text, s->text_tokens);
    if (!ok || !xmsg_finish(&m)) {
        xmsg_free(&m);
        return vlmn_error(VLMN_E_NOMEM, "simulate: out of memory building the prompt");
    }
    vlmn_llm_chat c = xmsg_chat(&m, o);
    if (mode == VLMN_TEXTSIM_JSON) {
        c.schema_name = "simulation";
        c.schema_json = SIM_SCHEMA;
    } else {
        c.logprobs = true;
        c.top_logprobs = 15;
    }
    vlmn_status st = vlmn_llm_chat_body(&c, json);
    xmsg_free(&m);
    return st;
}

/* Token equality for alignment: equal after trimming ASCII whitespace at both ends
 * (servers and models often drop the leading space of a piece). */
static bool same_token(const char *a, const char *b)
{
    while (*a == ' ' || *a == '\t' || *a == '\n') a++;
    while (*b == ' ' || *b == '\t' || *b == '\n') b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na && (a[na - 1] == ' ' || a[na - 1] == '\t' || a[na - 1] == '\n')) na--;
    while (nb && (b[nb - 1] == ' ' || b[nb - 1] == '\t' || b[nb - 1] == '\n')) nb--;
    return na == nb && !memcmp(a, b, na);
}

static float clamp10(double v) { return v < 0 ? 0.f : v > 10 ? 10.f : (float)v; }

/* Positional alignment of the returned (token, value) list to the real tokens. */
static void align(const vlmn_xsample *s, int m, const char *const *tok, const double *val, float *sim, int *n_mismatch)
{
    int mis = 0;
    for (int i = 0; i < s->n_text; i++) {
        if (i < m && tok[i] && same_token(tok[i], s->text_tokens[i])) {
            sim[i] = isnan(val[i]) ? NAN : clamp10(val[i]);
        } else {
            sim[i] = NAN;
            mis++;
        }
    }
    if (m > s->n_text) mis += m - s->n_text;
    *n_mismatch = mis;
}

static vlmn_status parse_json_tokens(const char *content, cJSON **root, const cJSON **arr)
{
    *root = cJSON_Parse(content);
    /* tolerate a ```json fence around the object */
    if (!*root) {
        const char *a = strchr(content, '{'), *b = strrchr(content, '}');
        if (a && b && b > a) *root = cJSON_ParseWithLength(a, (size_t)(b - a + 1));
    }
    *arr = *root ? cJSON_GetObjectItemCaseSensitive(*root, "tokens") : NULL;
    if (!cJSON_IsArray(*arr)) {
        cJSON_Delete(*root);
        *root = NULL;
        return vlmn_error(VLMN_E_FORMAT, "simulator reply: no {\"tokens\": [...]} object");
    }
    if (cJSON_GetArraySize(*arr) > VLMN_X_MAX_TOKENS * 2) {
        cJSON_Delete(*root);
        *root = NULL;
        return vlmn_error(VLMN_E_RANGE, "simulator reply: too many tokens");
    }
    return VLMN_OK;
}

vlmn_status vlmn_textsim_parse_json(const vlmn_xsample *s, const char *reply, size_t len, float *sim, int *n_mismatch)
{
    vlmn_llm_reply r;
    vlmn_status st = vlmn_llm_chat_parse(reply, len, &r);
    if (st) return st;
    cJSON *root;
    const cJSON *arr;
    if ((st = parse_json_tokens(r.content, &root, &arr))) {
        vlmn_llm_reply_free(&r);
        return st;
    }
    int m = cJSON_GetArraySize(arr);
    const char **tok = vlmn_calloc((size_t)(m ? m : 1), sizeof *tok);
    double *val = vlmn_calloc((size_t)(m ? m : 1), sizeof *val);
    if (!tok || !val) {
        st = vlmn_error(VLMN_E_NOMEM, "simulator reply: out of memory");
    } else {
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "token");
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "activation");
            tok[i] = cJSON_IsString(t) ? t->valuestring : NULL;
            val[i] = cJSON_IsNumber(a) ? a->valuedouble : NAN;
            if (!tok[i]) val[i] = NAN;
            i++;
        }
        align(s, m, tok, val, sim, n_mismatch);
    }
    vlmn_free(tok);
    vlmn_free(val);
    cJSON_Delete(root);
    vlmn_llm_reply_free(&r);
    return st;
}

/* Integer 0..10 written by a token ("7", " 7", "10"), else -1. */
static int slot_value(const char *t)
{
    while (*t == ' ') t++;
    if (!*t) return -1;
    int v = 0;
    for (const char *p = t; *p; p++) {
        if (*p < '0' || *p > '9' || p - t > 1) return -1;
        v = v * 10 + (*p - '0');
    }
    return v <= 10 ? v : -1;
}

vlmn_status vlmn_textsim_parse_logprob(const vlmn_xsample *s, const char *reply, size_t len, float *sim,
                                       int *n_mismatch)
{
    vlmn_llm_reply r;
    vlmn_status st = vlmn_llm_chat_parse(reply, len, &r);
    if (st) return st;
    if (r.n_tokens == 0) {
        vlmn_llm_reply_free(&r);
        return vlmn_error(VLMN_E_FORMAT, "simulator reply: no logprobs (the server does not return them?)");
    }
    /* Walk the reply's tokens keeping the current line; a token right after a tab that
     * writes 0..10 is an activation slot of the line's token. */
    int cap = r.n_tokens, m = 0;
    char **tok = vlmn_calloc((size_t)cap, sizeof *tok);
    double *val = vlmn_calloc((size_t)cap, sizeof *val);
    vlmn_buf line = {0};
    bool after_tab = false;
    if (!tok || !val) goto oom;
    for (int i = 0; i < r.n_tokens; i++) {
        const char *t = r.tokens[i].token;
        int v = after_tab ? slot_value(t) : -1;
        if (v >= 0) {
            double num = 0, den = 0;
            for (int j = 0; j < r.tokens[i].n_top; j++) {
                int k = slot_value(r.tokens[i].top[j].token);
                if (k < 0) continue;
                double p = exp(r.tokens[i].top[j].logprob);
                num += p * k;
                den += p;
            }
            char *lt = line.p ? line.p : "";
            size_t n = strlen(lt);
            if (n && lt[n - 1] == '\t') n--;
            if (!(tok[m] = vlmn_strndup(lt, n))) goto oom;
            val[m++] = den > 0 ? num / den : v;
            after_tab = false;
            line.n = 0;
            if (line.p) line.p[0] = 0;
            continue;
        }
        for (const char *p = t; *p; p++) {
            if (*p == '\n') {
                line.n = 0;
                if (line.p) line.p[0] = 0;
                after_tab = false;
            } else {
                vlmn_buf_add(&line, p, 1);
                after_tab = *p == '\t';
            }
        }
        if (line.oom) goto oom;
        /* "<start>" / "<end>" lines are not tokens */
    }
    align(s, m, (const char *const *)tok, val, sim, n_mismatch);
    goto done;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "simulator reply: out of memory");
done:
    for (int i = 0; i < m; i++) vlmn_free(tok[i]);
    vlmn_free(tok);
    vlmn_free(val);
    vlmn_free(line.p);
    vlmn_llm_reply_free(&r);
    return st;
}

static vlmn_status ts_build(void *self, vlmn_xkind k, const char *explanation, const vlmn_xsample *s,
                            const char **path, char **body)
{
    textsim *t = self;
    *path = "/chat/completions";
    return vlmn_textsim_body(t->mode, t->ex, &t->o, k, explanation, s, body);
}

static vlmn_status ts_parse(void *self, const vlmn_xsample *s, const char *reply, size_t len, float *sim,
                            int *n_mismatch)
{
    textsim *t = self;
    return t->mode == VLMN_TEXTSIM_JSON ? vlmn_textsim_parse_json(s, reply, len, sim, n_mismatch)
                                        : vlmn_textsim_parse_logprob(s, reply, len, sim, n_mismatch);
}

static vlmn_status check_json(const char *body, size_t len, void *user)
{
    vlmn_llm_reply r;
    vlmn_status st = vlmn_llm_chat_parse(body, len, &r);
    if (st) return st;
    cJSON *root;
    const cJSON *arr;
    st = parse_json_tokens(r.content, &root, &arr);
    cJSON_Delete(root);
    vlmn_llm_reply_free(&r);
    return st;
}

static vlmn_status check_logprob(const char *body, size_t len, void *user)
{
    vlmn_llm_reply r;
    vlmn_status st = vlmn_llm_chat_parse(body, len, &r);
    if (st) return st;
    if (r.n_tokens == 0) st = vlmn_error(VLMN_E_FORMAT, "simulator reply: no logprobs");
    vlmn_llm_reply_free(&r);
    return st;
}

static void ts_free(void *self)
{
    textsim *t = self;
    if (!t) return;
    vlmn_free(t->model);
    vlmn_free(t);
}

vlmn_status vlmn_textsim_create(vlmn_textsim_mode mode, const vlmn_xexamples *ex, const vlmn_xprompt_opts *o,
                                vlmn_simulator *out)
{
    memset(out, 0, sizeof *out);
    textsim *t = vlmn_calloc(1, sizeof *t);
    if (!t) return vlmn_error(VLMN_E_NOMEM, "simulate: out of memory");
    t->mode = mode;
    t->ex = ex;
    t->o = *o;
    if (!(t->model = vlmn_strdup(o->model ? o->model : ""))) {
        vlmn_free(t);
        return vlmn_error(VLMN_E_NOMEM, "simulate: out of memory");
    }
    t->o.model = t->model;
    out->name = mode == VLMN_TEXTSIM_JSON ? "json" : "logprob";
    out->modality = VLMN_SIM_TEXT;
    out->self = t;
    out->build = ts_build;
    out->parse = ts_parse;
    out->check = mode == VLMN_TEXTSIM_JSON ? check_json : check_logprob;
    out->free = ts_free;
    return VLMN_OK;
}
