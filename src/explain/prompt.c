/* The explainer side of paper 3.3 / A.1: Bills et al.'s activation normalisation, the
 * context examples (shipped default, --examples file), and the Fig. 10 prompt as a
 * chat body; the explanation parsed from the reply.
 * Flow: neuron samples (trace store) -> [this] -> llm client. See docs/explain.md. */
#include "vlmn/explain.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/file.h"
#include "explain/explain_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const char *vlmn_xkind_name(vlmn_xkind k)
{
    return k == VLMN_XK_VISUAL ? "visual" : k == VLMN_XK_TEXT ? "text" : "multimodal";
}

vlmn_status vlmn_xkind_parse(const char *s, vlmn_xkind *k)
{
    if (!strcmp(s, "visual")) *k = VLMN_XK_VISUAL;
    else if (!strcmp(s, "text")) *k = VLMN_XK_TEXT;
    else if (!strcmp(s, "multimodal") || !strcmp(s, "multi-modal")) *k = VLMN_XK_MULTIMODAL;
    else return vlmn_error(VLMN_E_ARG, "neuron kind '%s' is not visual, text or multimodal", s);
    return VLMN_OK;
}

/* As neuron_explainer.activations.activation_records.normalize_activations:
 * min(10, floor(10 * relu(x) / max_activation)), all 0 when max_activation <= 0. */
int vlmn_norm_act(double a, double max_act)
{
    if (!(max_act > 0) || !(a > 0)) return 0;
    double v = floor(10.0 * a / max_act);
    return v >= 10 ? 10 : (int)v;
}

void vlmn_xexamples_free(vlmn_xexamples *e)
{
    if (!e) return;
    for (int i = 0; i < e->n; i++) {
        vlmn_xexample *x = &e->ex[i];
        vlmn_free(x->explanation);
        for (int j = 0; j < x->n_text; j++) vlmn_free(x->tokens[j]);
        vlmn_free(x->tokens);
        vlmn_free(x->acts);
        vlmn_free(x->png);
    }
    vlmn_free(e->ex);
    e->ex = NULL;
    e->n = 0;
}

static int b64v(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static bool b64_decode(const char *s, uint8_t **out, size_t *n)
{
    size_t len = strlen(s);
    if (len % 4) return false;
    uint8_t *o = vlmn_malloc(len / 4 * 3 + 1);
    if (!o) return false;
    size_t k = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) {
            v[j] = s[i + j] == '=' && i + 4 == len && j >= 2 ? 0 : b64v((unsigned char)s[i + j]);
            if (v[j] < 0) {
                vlmn_free(o);
                return false;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        o[k++] = (uint8_t)(w >> 16);
        if (s[i + 2] != '=') o[k++] = (uint8_t)(w >> 8);
        if (s[i + 3] != '=') o[k++] = (uint8_t)w;
    }
    *out = o;
    *n = k;
    return true;
}

vlmn_status vlmn_xexamples_parse(const char *json, size_t len, const char *name, vlmn_xexamples *out)
{
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(json, len);
    vlmn_status st = VLMN_OK;
    if (!root) return vlmn_error(VLMN_E_FORMAT, "%s: not JSON", name);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "examples");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n <= 0 || n > VLMN_X_MAX_EXAMPLES) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: needs an \"examples\" array of 1..%d entries", name, VLMN_X_MAX_EXAMPLES);
        goto done;
    }
    if (!(out->ex = vlmn_calloc((size_t)n, sizeof *out->ex))) goto oom;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        int i = out->n;
        vlmn_xexample *x = &out->ex[out->n++];
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(e, "explanation");
        const cJSON *tk = cJSON_GetObjectItemCaseSensitive(e, "tokens");
        const cJSON *ac = cJSON_GetObjectItemCaseSensitive(e, "activations");
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(e, "image");
        if (!cJSON_IsString(ex) || !cJSON_IsArray(tk) || !cJSON_IsArray(ac) ||
            cJSON_GetArraySize(tk) != cJSON_GetArraySize(ac) || cJSON_GetArraySize(tk) > VLMN_X_MAX_TOKENS) {
            st = vlmn_error(VLMN_E_FORMAT,
                            "%s: example %d needs \"explanation\" and \"tokens\"/\"activations\" arrays of equal length "
                            "(at most %d)",
                            name, i + 1, VLMN_X_MAX_TOKENS);
            goto done;
        }
        if (!(x->explanation = vlmn_strdup(ex->valuestring))) goto oom;
        int m = cJSON_GetArraySize(tk);
        if (m > 0 && (!(x->tokens = vlmn_calloc((size_t)m, sizeof *x->tokens)) ||
                      !(x->acts = vlmn_calloc((size_t)m, sizeof *x->acts))))
            goto oom;
        for (int j = 0; j < m; j++) {
            const cJSON *t = cJSON_GetArrayItem(tk, j), *a = cJSON_GetArrayItem(ac, j);
            if (!cJSON_IsString(t) || !cJSON_IsNumber(a) || a->valuedouble != floor(a->valuedouble) ||
                a->valuedouble < 0 || a->valuedouble > 10) {
                st = vlmn_error(VLMN_E_FORMAT, "%s: example %d token %d: needs a string and an integer 0..10", name,
                                i + 1, j + 1);
                goto done;
            }
            if (!(x->tokens[j] = vlmn_strdup(t->valuestring))) goto oom;
            x->acts[j] = (int)a->valuedouble;
            x->n_text = j + 1;
        }
        if (im) {
            if (!cJSON_IsString(im) || !b64_decode(im->valuestring, &x->png, &x->png_len) || x->png_len < 8 ||
                memcmp(x->png, "\x89PNG\r\n\x1a\n", 8)) {
                st = vlmn_error(VLMN_E_FORMAT, "%s: example %d: \"image\" is not base64 of a PNG", name, i + 1);
                goto done;
            }
        }
    }
    goto done;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
done:
    cJSON_Delete(root);
    if (st) vlmn_xexamples_free(out);
    return st;
}

vlmn_status vlmn_xexamples_load(const char *path, vlmn_xexamples *out)
{
    unsigned char *b = NULL;
    size_t n = 0;
    vlmn_status st = vlmn_file_read(path, 64u << 20, "examples file", &b, &n);
    if (st) return st;
    st = vlmn_xexamples_parse((const char *)b, n, path, out);
    vlmn_free(b);
    return st;
}

static const char DEFAULT_EXAMPLES[] =
#include "explain_examples.inc"
    ;

vlmn_status vlmn_xexamples_default(vlmn_xexamples *out)
{
    return vlmn_xexamples_parse(DEFAULT_EXAMPLES, sizeof DEFAULT_EXAMPLES - 1, "default examples", out);
}

const char *vlmn_xexamples_default_text(void) { return DEFAULT_EXAMPLES; }

/* ---- message building ---- */

void xmsg_free(xmsgs *m)
{
    for (int i = 0; i < m->n_parts; i++) vlmn_free(m->own[i]);
    vlmn_free(m->own);
    vlmn_free(m->parts);
    vlmn_free(m->roles);
    vlmn_free(m->first);
    vlmn_free(m->count);
    vlmn_free(m->msgs);
    vlmn_free(m->cur.p);
    memset(m, 0, sizeof *m);
}

static bool grow(xmsgs *m)
{
    if (m->n_parts < m->cap_parts) return true;
    int cap = m->cap_parts ? m->cap_parts * 2 : 32;
    vlmn_llm_part *p = vlmn_realloc(m->parts, (size_t)cap * sizeof *p);
    if (!p) return false;
    m->parts = p;
    char **o = vlmn_realloc(m->own, (size_t)cap * sizeof *o);
    if (!o) return false;
    m->own = o;
    m->cap_parts = cap;
    return true;
}

bool xmsg_text(xmsgs *m, const char *s)
{
    vlmn_buf_adds(&m->cur, s);
    return !m->cur.oom;
}

static bool flush_text(xmsgs *m)
{
    if (m->cur.oom) return false;
    if (!m->cur.p || m->cur.n == 0) return true;
    if (!grow(m)) return false;
    m->own[m->n_parts] = m->cur.p;
    m->parts[m->n_parts] = (vlmn_llm_part){.kind = VLMN_LLM_TEXT, .text = m->cur.p};
    m->n_parts++;
    memset(&m->cur, 0, sizeof m->cur);
    return true;
}

bool xmsg_image(xmsgs *m, const uint8_t *png, size_t len)
{
    if (!flush_text(m) || !grow(m)) return false;
    m->own[m->n_parts] = NULL;
    m->parts[m->n_parts] = (vlmn_llm_part){.kind = VLMN_LLM_IMAGE_PNG, .png = png, .png_len = len};
    m->n_parts++;
    return true;
}

bool xmsg_end(xmsgs *m, const char *role)
{
    if (!flush_text(m)) return false;
    if (m->n_msgs == m->cap_msgs) {
        int cap = m->cap_msgs ? m->cap_msgs * 2 : 16;
        const char **r = vlmn_realloc(m->roles, (size_t)cap * sizeof *r);
        if (!r) return false;
        m->roles = r;
        int *f = vlmn_realloc(m->first, (size_t)cap * sizeof *f);
        if (!f) return false;
        m->first = f;
        int *c = vlmn_realloc(m->count, (size_t)cap * sizeof *c);
        if (!c) return false;
        m->count = c;
        m->cap_msgs = cap;
    }
    int first = m->n_msgs ? m->first[m->n_msgs - 1] + m->count[m->n_msgs - 1] : 0;
    m->roles[m->n_msgs] = role;
    m->first[m->n_msgs] = first;
    m->count[m->n_msgs] = m->n_parts - first;
    m->n_msgs++;
    return true;
}

bool xmsg_finish(xmsgs *m)
{
    if (!(m->msgs = vlmn_calloc((size_t)(m->n_msgs ? m->n_msgs : 1), sizeof *m->msgs))) return false;
    for (int i = 0; i < m->n_msgs; i++)
        m->msgs[i] = (vlmn_llm_msg){.role = m->roles[i], .parts = m->parts + m->first[i], .n_parts = m->count[i]};
    return true;
}

bool xmsg_lines(xmsgs *m, int n, const char *const *tokens, const int *acts, bool unknown)
{
    bool ok = xmsg_text(m, "<start>\n");
    for (int i = 0; ok && i < n; i++) {
        char v[16];
        if (unknown) snprintf(v, sizeof v, "unknown");
        else snprintf(v, sizeof v, "%d", acts[i]);
        ok = xmsg_text(m, tokens[i]) && xmsg_text(m, "\t") && xmsg_text(m, v) && xmsg_text(m, "\n");
    }
    return ok && xmsg_text(m, "<end>\n");
}

static const char EXPLAIN_SYSTEM[] =
    "We are studying neurons in a neural network. Each neuron looks for some particular thing in an image and a "
    "short document, which includes a picture and text tokens. Look at the parts of the document the neuron "
    "activates for and summarize in a single sentence what the neuron is looking for. Don't list examples of "
    "words.\n\nThe activation format is token<tab>activation. Activation values range from 0 to 10. A neuron "
    "finding what it's looking for is represented by a non-zero activation value. The higher the activation "
    "value, the stronger the match.";
static const char EXPLAIN_SYSTEM_IMAGES[] =
    " The pictures are activation-modulated: the more visible an image patch, the more the neuron is activated "
    "by it.";

vlmn_llm_chat xmsg_chat(const xmsgs *m, const vlmn_xprompt_opts *o)
{
    return (vlmn_llm_chat){.model = o->model,
                           .msgs = m->msgs,
                           .n_msgs = m->n_msgs,
                           .temperature = o->temperature,
                           .max_tokens = o->max_tokens,
                           .has_seed = o->has_seed,
                           .seed = o->seed};
}

static bool add_neuron(xmsgs *m, int index, int n_samples, const vlmn_xsample *s, const vlmn_xexample *ex,
                       vlmn_xkind k, double max_act)
{
    char h[96];
    snprintf(h, sizeof h, "\n\nNeuron %d\n", index);
    bool ok = xmsg_text(m, h);
    int ns = ex ? 1 : n_samples;
    for (int j = 0; ok && j < ns; j++) {
        snprintf(h, sizeof h, "Neuron %d sample %d:\n", index, j + 1);
        ok = xmsg_text(m, h);
        const uint8_t *png = ex ? ex->png : s[j].png;
        size_t png_len = ex ? ex->png_len : s[j].png_len;
        if (ok && png && k != VLMN_XK_TEXT) ok = xmsg_image(m, png, png_len) && xmsg_text(m, "\n");
        if (!ok) break;
        if (ex) {
            if (k != VLMN_XK_VISUAL || !ex->png)
                ok = xmsg_lines(m, ex->n_text, (const char *const *)ex->tokens, ex->acts, false);
        } else if (k != VLMN_XK_VISUAL) {
            int *acts = vlmn_malloc((size_t)(s[j].n_text ? s[j].n_text : 1) * sizeof *acts);
            if (!acts) return false;
            for (int t = 0; t < s[j].n_text; t++) acts[t] = vlmn_norm_act(s[j].text_acts[t], max_act);
            ok = xmsg_lines(m, s[j].n_text, s[j].text_tokens, acts, false);
            vlmn_free(acts);
        }
    }
    snprintf(h, sizeof h, "\nExplanation of neuron %d behavior: the main thing this neuron does is find", index);
    return ok && xmsg_text(m, h) && xmsg_end(m, "user");
}

vlmn_status vlmn_explain_body(vlmn_xkind k, const vlmn_xexamples *ex, const vlmn_xsample *s, int n, double max_act,
                              const vlmn_xprompt_opts *o, char **json)
{
    *json = NULL;
    if (n <= 0) return vlmn_error(VLMN_E_ARG, "explain: no samples");
    xmsgs m = {0};
    bool ok = xmsg_text(&m, EXPLAIN_SYSTEM) && (k == VLMN_XK_TEXT || xmsg_text(&m, EXPLAIN_SYSTEM_IMAGES)) &&
              xmsg_end(&m, "system");
    for (int i = 0; ok && ex && i < ex->n; i++) {
        char a[1024];
        ok = add_neuron(&m, i + 1, 1, NULL, &ex->ex[i], k, 10);
        snprintf(a, sizeof a, " %s.", ex->ex[i].explanation);
        ok = ok && xmsg_text(&m, a) && xmsg_end(&m, "assistant");
    }
    ok = ok && add_neuron(&m, (ex ? ex->n : 0) + 1, n, s, NULL, k, max_act);
    if (!ok || !xmsg_finish(&m)) {
        xmsg_free(&m);
        return vlmn_error(VLMN_E_NOMEM, "explain: out of memory building the prompt");
    }
    vlmn_llm_chat c = xmsg_chat(&m, o);
    vlmn_status st = vlmn_llm_chat_body(&c, json);
    xmsg_free(&m);
    return st;
}

void vlmn_xprompt_opts_default(vlmn_xprompt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->temperature = 1.0;
    o->max_tokens = 60;
}

vlmn_status vlmn_explain_parse(const char *body, size_t len, char **explanation)
{
    *explanation = NULL;
    vlmn_llm_reply r;
    vlmn_status st = vlmn_llm_chat_parse(body, len, &r);
    if (st) return st;
    const char *p = r.content;
    const char *prefix = "the main thing this neuron does is find";
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    if (!strncmp(p, prefix, strlen(prefix))) p += strlen(prefix);
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t' || p[n - 1] == '\r')) n--;
    if (n > 0 && p[n - 1] == '.') n--; /* as Bills' _remove_final_period */
    if (n == 0) st = vlmn_error(VLMN_E_FORMAT, "explain reply: empty explanation");
    else if (!(*explanation = vlmn_strndup(p, n))) st = vlmn_error(VLMN_E_NOMEM, "explain reply: out of memory");
    vlmn_llm_reply_free(&r);
    return st;
}

vlmn_status vlmn_explain_check(const char *body, size_t len, void *user)
{
    char *e = NULL;
    vlmn_status st = vlmn_explain_parse(body, len, &e);
    vlmn_free(e);
    return st;
}
