/* Prompts and replies of the detection and fuzzing scorers (after EleutherAI's Delphi,
 * scorers/classifier): the explanation and labelled examples whose labels the scorer LLM
 * does not see, the 0/1 answers it returns (a JSON list, or P(1) from logprobs), and the
 * fuzzing highlights. Flow: explanation + samples -> [this] -> llm client -> answers ->
 * AUROC (score.c). docs/explain.md "Detection and fuzzing scorers". */
#include "vlmn/explain.h"
#include "core/alloc.h"
#include "explain/explain_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char D_SYSTEM[] =
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in an image and a "
    "short document. You will read an explanation of what one neuron does, then several examples, each a text and, "
    "for some neurons, its image. Decide for every example whether the neuron fires on it, that is whether the "
    "example contains what the explanation describes. Answer 1 for an example that does and 0 for one that does "
    "not, one answer per example, in the order of the examples.";
static const char F_SYSTEM[] =
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in a short document. "
    "You will read an explanation of what one neuron does, then several text examples in which some tokens are "
    "highlighted between << and >>. In some examples the highlights mark the tokens the neuron fires on, in others "
    "they were put on random tokens. Decide for every example whether the highlighted tokens are what the "
    "explanation describes. Answer 1 when every highlighted token matches the explanation and 0 otherwise, one "
    "answer per example, in the order of the examples.";
static const char SYS_JSON[] =
    "\n\nAnswer with a JSON object {\"answers\": [...]}, for example {\"answers\": [1, 0, 0]}.";
static const char SYS_LIST[] = "\n\nAnswer with a JSON list of integers only, for example [1, 0, 0].";

static const char D_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"answers\":{\"type\":\"array\",\"items\":{\"type\":\"integer\","
    "\"enum\":[0,1]}}},\"required\":[\"answers\"],\"additionalProperties\":false}";

const char *vlmn_dscorer_name(vlmn_dscorer s) { return s == VLMN_DS_FUZZING ? "fuzzing" : "detection"; }

/* A token as shown: newline and tab escaped so that every example stays on one line. */
static bool put_token(xmsgs *m, const char *t)
{
    char buf[256];
    size_t k = 0;
    for (const char *p = t; *p; p++) {
        if (k + 3 >= sizeof buf) {
            buf[k] = 0;
            if (!xmsg_text(m, buf)) return false;
            k = 0;
        }
        if (*p == '\n') buf[k++] = '\\', buf[k++] = 'n';
        else if (*p == '\t') buf[k++] = '\\', buf[k++] = 't';
        else if (*p == '\r') buf[k++] = '\\', buf[k++] = 'r';
        else buf[k++] = *p;
    }
    buf[k] = 0;
    return !k || xmsg_text(m, buf);
}

/* A highlighted token: leading blanks stay outside the markers (" <<circle>>"). */
static bool put_highlight(xmsgs *m, const char *t)
{
    const char *p = t;
    while (*p == ' ') p++;
    char lead[64];
    size_t nl = (size_t)(p - t) < sizeof lead - 1 ? (size_t)(p - t) : sizeof lead - 1;
    memcpy(lead, t, nl);
    lead[nl] = 0;
    return (!nl || xmsg_text(m, lead)) && xmsg_text(m, "<<") && put_token(m, p) && xmsg_text(m, ">>");
}

vlmn_status vlmn_dscore_body(vlmn_dscorer s, vlmn_dmode mode, const vlmn_xprompt_opts *o, const char *explanation,
                             const vlmn_dexample *ex, int n, char **json)
{
    *json = NULL;
    xmsgs m = {0};
    bool ok = xmsg_text(&m, s == VLMN_DS_FUZZING ? F_SYSTEM : D_SYSTEM) &&
              xmsg_text(&m, mode == VLMN_DMODE_JSON ? SYS_JSON : SYS_LIST) && xmsg_end(&m, "system");
    ok = ok && xmsg_text(&m, "Neuron explanation: the main thing this neuron does is find") &&
         xmsg_text(&m, explanation) && xmsg_text(&m, ".\n\nExamples:\n");
    char h[48];
    for (int i = 0; ok && i < n; i++) {
        snprintf(h, sizeof h, "Example %d:", i);
        ok = xmsg_text(&m, h);
        if (ok && ex[i].png && s == VLMN_DS_DETECTION) ok = xmsg_image(&m, ex[i].png, ex[i].png_len);
        ok = ok && xmsg_text(&m, " ");
        for (int t = 0; ok && t < ex[i].n_text; t++)
            ok = ex[i].highlight && ex[i].highlight[t] ? put_highlight(&m, ex[i].text_tokens[t])
                                                       : put_token(&m, ex[i].text_tokens[t]);
        ok = ok && xmsg_text(&m, "\n");
    }
    ok = ok && xmsg_end(&m, "user");
    if (!ok || !xmsg_finish(&m)) {
        xmsg_free(&m);
        return vlmn_error(VLMN_E_NOMEM, "%s: out of memory building the prompt", vlmn_dscorer_name(s));
    }
    vlmn_llm_chat c = xmsg_chat(&m, o);
    if (mode == VLMN_DMODE_JSON) {
        c.schema_name = "answers";
        c.schema_json = D_SCHEMA;
    } else if (mode == VLMN_DMODE_LOGPROB) {
        c.logprobs = true;
        c.top_logprobs = 5;
    }
    vlmn_status st = vlmn_llm_chat_body(&c, json);
    xmsg_free(&m);
    return st;
}

/* The answers array of a content: {"answers": [...]}, or the first [...] in the text. */
static vlmn_status answers_of(const char *content, int n, int *ans)
{
    cJSON *root = cJSON_Parse(content), *own = NULL;
    const cJSON *arr = NULL;
    if (cJSON_IsObject(root)) arr = cJSON_GetObjectItemCaseSensitive(root, "answers");
    else if (cJSON_IsArray(root)) arr = root;
    if (!arr) {
        const char *a = strchr(content, '['), *b = a ? strchr(a, ']') : NULL;
        if (a && b) {
            own = cJSON_ParseWithLength(a, (size_t)(b - a + 1));
            if (cJSON_IsArray(own)) arr = own;
        }
    }
    vlmn_status st = VLMN_OK;
    if (!cJSON_IsArray(arr)) st = vlmn_error(VLMN_E_FORMAT, "scorer reply: no list of answers");
    else if (cJSON_GetArraySize(arr) != n)
        st = vlmn_error(VLMN_E_FORMAT, "scorer reply: %d answers for %d examples", cJSON_GetArraySize(arr), n);
    for (int i = 0; !st && i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        if (cJSON_IsBool(e)) ans[i] = cJSON_IsTrue(e);
        else if (cJSON_IsNumber(e) && (e->valuedouble == 0 || e->valuedouble == 1)) ans[i] = e->valuedouble == 1;
        else if (cJSON_IsString(e) && (!strcmp(e->valuestring, "0") || !strcmp(e->valuestring, "1")))
            ans[i] = e->valuestring[0] == '1';
        else st = vlmn_error(VLMN_E_FORMAT, "scorer reply: answer %d is not 0 or 1", i);
    }
    cJSON_Delete(root);
    cJSON_Delete(own);
    return st;
}

/* The digit a token stands for once brackets, commas and blanks are stripped: '0', '1',
 * or 0 for anything else. */
static char digit_of(const char *t)
{
    char d = 0;
    for (const char *p = t; *p; p++) {
        if (*p == '[' || *p == ']' || *p == ',' || *p == ' ' || *p == '\n') continue;
        if ((*p != '0' && *p != '1') || d) return 0;
        d = *p;
    }
    return d;
}

vlmn_status vlmn_dscore_parse(vlmn_dmode mode, const char *reply, size_t len, int n, int *ans, double *prob,
                              bool *have_prob)
{
    *have_prob = false;
    vlmn_llm_reply r;
    vlmn_status st = vlmn_llm_chat_parse(reply, len, &r);
    if (st) return st;
    if (!r.content) st = vlmn_error(VLMN_E_FORMAT, "scorer reply: no content");
    if (!st) st = answers_of(r.content, n, ans);
    for (int i = 0; !st && i < n; i++) prob[i] = ans[i];
    if (!st && mode == VLMN_DMODE_LOGPROB && r.n_tokens > 0) {
        /* answer slots: the reply tokens that are a bare 0 or 1; P(1) normalised over the
         * 0/1 alternatives among their top_logprobs */
        int k = 0;
        bool ok = true;
        for (int t = 0; t < r.n_tokens && ok; t++) {
            char d = digit_of(r.tokens[t].token);
            if (!d) continue;
            if (k >= n || (d == '1') != (ans[k] == 1)) {
                ok = false;
                break;
            }
            double p0 = 0, p1 = 0;
            for (int j = 0; j < r.tokens[t].n_top; j++) {
                char a = digit_of(r.tokens[t].top[j].token);
                if (a == '0') p0 += exp(r.tokens[t].top[j].logprob);
                else if (a == '1') p1 += exp(r.tokens[t].top[j].logprob);
            }
            if (p0 + p1 <= 0) {
                p0 = d == '0';
                p1 = d == '1';
            }
            prob[k++] = p1 / (p0 + p1);
        }
        if (ok && k == n) *have_prob = true;
        else
            for (int i = 0; i < n; i++) prob[i] = ans[i];
    }
    vlmn_llm_reply_free(&r);
    return st;
}

int vlmn_fuzz_active(const float *acts, int n, double frac, uint8_t *hl)
{
    float mx = 0;
    for (int i = 0; i < n; i++)
        if (acts[i] > mx) mx = acts[i];
    int c = 0;
    for (int i = 0; i < n; i++) {
        hl[i] = mx > 0 && acts[i] >= frac * mx;
        c += hl[i];
    }
    return c;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int vlmn_fuzz_random(const uint8_t *active, int n, int count, uint64_t *rng, uint8_t *hl)
{
    memset(hl, 0, (size_t)n);
    int *cand = vlmn_malloc((size_t)(n > 0 ? n : 1) * sizeof *cand);
    if (!cand) return 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!active[i]) cand[m++] = i;
    int k = count < m ? count : m;
    for (int i = 0; i < k; i++) { /* partial Fisher-Yates */
        int j = i + (int)(splitmix(rng) % (uint64_t)(m - i));
        int t = cand[i];
        cand[i] = cand[j];
        cand[j] = t;
        hl[cand[i]] = 1;
    }
    vlmn_free(cand);
    return k;
}
