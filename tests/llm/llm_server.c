/* Test server for the LLM client: speaks the OpenAI chat-completions protocol on
 * 127.0.0.1 (ephemeral port written to --port-file), checks every request it gets and
 * injects faults chosen by the request's model name. Started and stopped by tests/llm/.
 *
 * Models (behaviour on the FIRST time a given body is seen; later tries answer "ok"):
 *   ok          answer                       f429   429 + retry-after: 1
 *   f500        500                          fdrop  connection dropped mid-body
 *   fslow       reply after 2.5 s            fbadjson  malformed JSON (200)
 *   f400        400 with an error message, every time
 *   always500   500 every time
 *   fbadtok     simulator reply whose token list does not match the prompt's, every time
 *   judge       Video-ChatGPT judge: {'pred': 'yes', 'score': 5} when the predicted answer
 *               equals the correct one, else no/1; judgebad: first reply malformed;
 *               judgenever: always malformed
 *   planted     deterministic "LLM": explains a neuron as the tokens its prompt shows
 *               with activation >= 5 (quoted), simulates 10 on the tokens an explanation
 *               quotes and 0 elsewhere (see docs/explain.md); slowplanted: the same after
 *               200 ms (for kill -9 tests). Detection / fuzzing prompts ("Neuron
 *               explanation: ..." then "Example i: ..." lines): a sample is active iff
 *               its line contains a string the explanation quotes; highlights <<..>>
 *               match iff there is one and every one is quoted (blanks trimmed); other
 *               models answer i % 2. JSON mode {"answers":[..]}, logprob mode "[1, 0]"
 *               with P = 0.9 on the answer's digit
 * Checks: body is JSON with model + messages (role, content string or parts), image
 * parts are data:image/png;base64 of a PNG, response_format well-formed, the key in
 * $VLMN_TEST_KEY appears only in the Authorization header. A failed check answers 400
 * "check failed: ..." and counts a violation. GET /stats: {"requests":N,"violations":N,
 * "last_violation":"...","by_model":{...},"images":N,"dup_answered":N}
 * (dup_answered: 200 answers to a body that had been answered before). */
#include "mhd_test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY (32u << 20)
#define MAX_SEEN 200000

static const char *g_key;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static long g_requests, g_violations, g_images, g_dup_answered;
static uint64_t *g_answered; /* hashes of bodies answered 200 (open addressing) */
static char g_last_violation[512];
static cJSON *g_by_model;
static uint64_t *g_seen; /* hashes of bodies seen (open addressing) */

typedef struct conn {
    mhd_body b; /* first: mhd_serve frees it */
    bool key_in_headers;
} conn;

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h ? h : 1;
}

/* true the first time this body is seen */
static bool first_time(const char *p, size_t n)
{
    uint64_t h = fnv(p, n);
    pthread_mutex_lock(&g_mu);
    size_t i = h % MAX_SEEN;
    bool first = true;
    for (size_t k = 0; k < MAX_SEEN; k++, i = (i + 1) % MAX_SEEN) {
        if (g_seen[i] == h) {
            first = false;
            break;
        }
        if (!g_seen[i]) {
            g_seen[i] = h;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return first;
}

/* counts a 200 answer; true when this body was answered before */
static void answered(const char *p, size_t n)
{
    uint64_t h = fnv(p, n);
    pthread_mutex_lock(&g_mu);
    size_t i = h % MAX_SEEN;
    for (size_t k = 0; k < MAX_SEEN; k++, i = (i + 1) % MAX_SEEN) {
        if (g_answered[i] == h) {
            g_dup_answered++;
            break;
        }
        if (!g_answered[i]) {
            g_answered[i] = h;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
}

static void violation(const char *msg)
{
    pthread_mutex_lock(&g_mu);
    g_violations++;
    snprintf(g_last_violation, sizeof g_last_violation, "%s", msg);
    pthread_mutex_unlock(&g_mu);
    fprintf(stderr, "llm_server: check failed: %s\n", msg);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body, const char *retry_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after) MHD_add_response_header(r, "retry-after", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    conn *cn = cls;
    if (g_key && *g_key && strcasecmp(k, "Authorization") && ((v && strstr(v, g_key)) || strstr(k, g_key)))
        cn->key_in_headers = true;
    return MHD_YES;
}

static bool is_b64(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
                  ch == '/' || (ch == '=' && i >= n - 2);
        if (!ok) return false;
    }
    /* "iVBORw0KGgo" is the base64 of the PNG signature */
    return strncmp(s, "iVBORw0KGgo", 11) == 0;
}

/* Validates a chat request; returns NULL or the problem. */
static const char *check_chat(const cJSON *root, int *n_images)
{
    static __thread char why[256];
    if (!cJSON_IsObject(root)) return "body is not a JSON object";
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(model) || !*model->valuestring) return "no model";
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) return "no messages";
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                                      strcmp(role->valuestring, "assistant")))
            return "message without a valid role";
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(content)) continue;
        if (!cJSON_IsArray(content)) return "content is neither a string nor parts";
        const cJSON *p;
        cJSON_ArrayForEach(p, content)
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
            if (!cJSON_IsString(type)) return "part without type";
            if (!strcmp(type->valuestring, "text")) {
                if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, "text"))) return "text part without text";
            } else if (!strcmp(type->valuestring, "image_url")) {
                if (strcmp(role->valuestring, "user")) return "image part outside a user message";
                const cJSON *iu = cJSON_GetObjectItemCaseSensitive(p, "image_url");
                const cJSON *url = cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : NULL;
                if (!cJSON_IsString(url)) return "image part without image_url.url";
                const char *pre = "data:image/png;base64,";
                if (strncmp(url->valuestring, pre, strlen(pre))) return "image url is not a PNG data: URL";
                if (!is_b64(url->valuestring + strlen(pre))) return "image data is not base64 of a PNG";
                (*n_images)++;
            } else {
                snprintf(why, sizeof why, "unknown part type %.40s", type->valuestring);
                return why;
            }
        }
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (rf) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsString(t)) return "response_format without type";
        if (!strcmp(t->valuestring, "json_schema")) {
            const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
            if (!cJSON_IsObject(js) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(js, "name")) ||
                !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(js, "schema")))
                return "json_schema without name/schema";
        }
    }
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
    if (lp && (!cJSON_IsNumber(lp) || lp->valueint < 0 || lp->valueint > 20 ||
               !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "logprobs"))))
        return "top_logprobs without logprobs or out of 0..20";
    return NULL;
}

/* All text of the last user message (parts joined). */
static void last_user_text(const cJSON *root, char *out, size_t n)
{
    out[0] = 0;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages"), *m, *last = NULL;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(role) && !strcmp(role->valuestring, "user")) last = m;
    }
    if (!last) return;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
    size_t k = 0;
    if (cJSON_IsString(content)) {
        snprintf(out, n, "%s", content->valuestring);
        return;
    }
    const cJSON *p;
    cJSON_ArrayForEach(p, content)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(t)) {
            int w = snprintf(out + k, n - k, "%s", t->valuestring);
            if (w < 0 || (size_t)w >= n - k) return;
            k += (size_t)w;
        }
    }
}

/* Tokens of every <start> .. <end> block of `txt`: each line "tok\tvalue". */
typedef struct toks {
    char tok[4096][64];
    char val[4096][16];
    int n;
} toks;

static void parse_lines(const char *txt, toks *t)
{
    t->n = 0;
    const char *s = txt;
    while ((s = strstr(s, "<start>\n"))) {
        s += 8;
        const char *e = strstr(s, "<end>");
        if (!e) return;
        while (s < e && t->n < 4096) {
            const char *nl = memchr(s, '\n', (size_t)(e - s));
            if (!nl) nl = e;
            const char *tab = memchr(s, '\t', (size_t)(nl - s));
            if (tab) {
                size_t a = (size_t)(tab - s), b = (size_t)(nl - tab - 1);
                if (a > 63) a = 63;
                if (b > 15) b = 15;
                memcpy(t->tok[t->n], s, a);
                t->tok[t->n][a] = 0;
                memcpy(t->val[t->n], tab + 1, b);
                t->val[t->n][b] = 0;
                t->n++;
            }
            s = nl + 1;
        }
        s = e;
    }
}

/* Explanation after "the main thing this neuron does is find" in the last user text. */
static const char *explanation_of(const char *txt)
{
    const char *key = "the main thing this neuron does is find";
    const char *p = NULL, *q = txt;
    while ((q = strstr(q, key))) p = q, q++;
    return p ? p + strlen(key) : "";
}

static char *chat_reply(const char *content, const cJSON *logprob_tokens)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", "chatcmpl-test");
    cJSON_AddStringToObject(r, "object", "chat.completion");
    cJSON *ch = cJSON_AddArrayToObject(r, "choices");
    cJSON *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", content);
    cJSON_AddStringToObject(c0, "finish_reason", "stop");
    if (logprob_tokens) {
        cJSON *lp = cJSON_AddObjectToObject(c0, "logprobs");
        cJSON_AddItemToObject(lp, "content", cJSON_Duplicate(logprob_tokens, 1));
    }
    cJSON *u = cJSON_AddObjectToObject(r, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", 100);
    cJSON_AddNumberToObject(u, "completion_tokens", 10);
    cJSON_AddNumberToObject(u, "total_tokens", 110);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

static bool quoted_in(const char *expl, const char *tok)
{
    char q[80];
    snprintf(q, sizeof q, "\"%s\"", tok);
    return strstr(expl, q) != NULL;
}

/* Video-ChatGPT judge: yes/5 when the predicted answer equals the correct one (case and
 * surrounding blanks aside), else no/1. */
static char *judge_reply(const char *txt)
{
    char ref[1024] = "", pred[1024] = "";
    const char *a = strstr(txt, "Correct Answer: "), *b = strstr(txt, "Predicted Answer: ");
    if (a) sscanf(a + 16, "%1023[^\n]", ref);
    if (b) sscanf(b + 18, "%1023[^\n]", pred);
    bool same = a && b && !strcasecmp(ref, pred);
    return chat_reply(same ? "{'pred': 'yes', 'score': 5}" : "{'pred': 'no', 'score': 1}", NULL);
}

/* ---- detection / fuzzing scorer prompts ---- */

#define MAX_QUOTES 64

/* The quoted strings of an explanation (up to "\n\nExamples:"). */
static int quotes_of(const char *expl, char q[][64])
{
    const char *end = strstr(expl, "\n\nExamples:");
    int n = 0;
    for (const char *p = expl; (!end || p < end) && (p = strchr(p, '"')) && (!end || p < end) && n < MAX_QUOTES;) {
        const char *e = strchr(p + 1, '"');
        if (!e || (end && e > end)) break;
        size_t k = (size_t)(e - p - 1);
        if (k > 0 && k < 64) {
            memcpy(q[n], p + 1, k);
            q[n++][k] = 0;
        }
        p = e + 1;
    }
    return n;
}

static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t')) s++, (*n)--;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t')) (*n)--;
    return s;
}

/* 0/1 of one example line for the planted scorer. */
static int classify_line(const char *line, size_t len, char q[][64], int nq)
{
    char buf[1 << 14];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, line, len);
    buf[len] = 0;
    if (strstr(buf, "<<")) {
        int nh = 0;
        for (const char *p = buf; (p = strstr(p, "<<"));) {
            const char *e = strstr(p + 2, ">>");
            if (!e) return 0;
            size_t hn = (size_t)(e - p - 2);
            const char *h = trim(p + 2, &hn);
            bool ok = false;
            for (int i = 0; i < nq && !ok; i++) {
                size_t qn = strlen(q[i]);
                const char *t = trim(q[i], &qn);
                ok = qn == hn && !memcmp(t, h, hn);
            }
            if (!ok) return 0;
            nh++;
            p = e + 2;
        }
        return nh > 0;
    }
    for (int i = 0; i < nq; i++)
        if (*q[i] && strstr(buf, q[i])) return 1;
    return 0;
}

static char *classifier_reply(const char *txt, bool planted, bool json_mode, bool lp_mode)
{
    const char *key = "Neuron explanation: ";
    const char *ex = strstr(txt, key);
    char (*q)[64] = calloc(MAX_QUOTES, 64);
    int nq = quotes_of(ex + strlen(key), q);
    int ans[256], n = 0;
    for (const char *p = strstr(txt, "\nExample "); p && n < 256; p = strstr(p + 1, "\nExample ")) {
        const char *colon = strchr(p, ':');
        if (!colon) break;
        const char *nl = strchr(colon, '\n');
        size_t len = nl ? (size_t)(nl - colon - 1) : strlen(colon + 1);
        ans[n] = planted ? classify_line(colon + 1, len, q, nq) : n % 2;
        n++;
    }
    free(q);
    char content[2048];
    size_t k = 0;
    k += (size_t)snprintf(content + k, sizeof content - k, json_mode ? "{\"answers\": [" : "[");
    cJSON *lps = lp_mode ? cJSON_CreateArray() : NULL;
    for (int i = 0; i < n && k < sizeof content - 16; i++) {
        if (i) k += (size_t)snprintf(content + k, sizeof content - k, ", ");
        k += (size_t)snprintf(content + k, sizeof content - k, "%d", ans[i]);
        if (lps) {
            const char *pieces[2] = {i ? ", " : "[", ans[i] ? "1" : "0"};
            for (int j = 0; j < 2; j++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "token", pieces[j]);
                cJSON_AddNumberToObject(e, "logprob", j ? -0.10536051565782628 : 0);
                cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
                if (j) {
                    cJSON *a = cJSON_CreateObject(), *b = cJSON_CreateObject();
                    cJSON_AddStringToObject(a, "token", ans[i] ? "1" : "0");
                    cJSON_AddNumberToObject(a, "logprob", -0.10536051565782628);
                    cJSON_AddStringToObject(b, "token", ans[i] ? "0" : "1");
                    cJSON_AddNumberToObject(b, "logprob", -2.3025850929940455);
                    cJSON_AddItemToArray(top, a);
                    cJSON_AddItemToArray(top, b);
                }
                cJSON_AddItemToArray(lps, e);
            }
        }
    }
    snprintf(content + k, sizeof content - k, json_mode ? "]}" : "]");
    if (lps) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "token", "]");
        cJSON_AddNumberToObject(e, "logprob", 0);
        cJSON_AddArrayToObject(e, "top_logprobs");
        cJSON_AddItemToArray(lps, e);
    }
    char *out = chat_reply(content, lps);
    cJSON_Delete(lps);
    return out;
}

/* The answer content for a checked request. */
static char *answer(const cJSON *root, const char *model, bool bad_tokens)
{
    static __thread char txt[1 << 16];
    last_user_text(root, txt, sizeof txt);
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    bool json_mode = rf != NULL;
    bool lp_mode = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "logprobs"));
    toks *t = calloc(1, sizeof *t);
    parse_lines(txt, t);
    bool simulating = t->n > 0 && !strcmp(t->val[0], "unknown");
    char *out = NULL;
    const bool planted = !strcmp(model, "planted") || !strcmp(model, "slowplanted");
    if (!strcmp(model, "judge") || !strcmp(model, "judgebad")) {
        free(t);
        return judge_reply(txt);
    }
    if (strstr(txt, "Neuron explanation: ") && strstr(txt, "\nExample 0:")) {
        free(t);
        return classifier_reply(txt, planted, json_mode, lp_mode);
    }
    if (simulating) {
        const char *expl = explanation_of(txt);
        if (json_mode) {
            cJSON *o = cJSON_CreateObject();
            cJSON *arr = cJSON_AddArrayToObject(o, "tokens");
            for (int i = 0; i < t->n; i++) {
                cJSON *e = cJSON_CreateObject();
                const char *tok = t->tok[i];
                if (bad_tokens && i == t->n / 2) tok = "MISMATCH";
                cJSON_AddStringToObject(e, "token", tok);
                cJSON_AddNumberToObject(e, "activation", planted ? (quoted_in(expl, t->tok[i]) ? 10 : 0) : (i % 11));
                cJSON_AddItemToArray(arr, e);
            }
            if (bad_tokens) cJSON_AddItemToArray(arr, cJSON_CreateObject()); /* an extra malformed entry */
            char *s = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            out = chat_reply(s, NULL);
            free(s);
        } else if (lp_mode) {
            /* "tok\tN\n" lines, one logprob entry per piece, top_logprobs at the number */
            cJSON *lps = cJSON_CreateArray();
            size_t cap = 1 << 16, k = 0;
            char *content = calloc(1, cap);
            for (int i = 0; i < t->n; i++) {
                int v = planted ? (quoted_in(expl, t->tok[i]) ? 10 : 0) : (i % 11);
                const char *tok = (bad_tokens && i == t->n / 2) ? "MISMATCH" : t->tok[i];
                char num[8];
                snprintf(num, sizeof num, "%d", v);
                const char *pieces[4] = {tok, "\t", num, "\n"};
                for (int j = 0; j < 4; j++) {
                    k += (size_t)snprintf(content + k, cap - k, "%s", pieces[j]);
                    cJSON *e = cJSON_CreateObject();
                    cJSON_AddStringToObject(e, "token", pieces[j]);
                    cJSON_AddNumberToObject(e, "logprob", j == 2 ? -0.1 : 0);
                    cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
                    if (j == 2) {
                        /* 80% on v, 20% on (v + 5) % 11 */
                        cJSON *a = cJSON_CreateObject(), *b = cJSON_CreateObject();
                        cJSON_AddStringToObject(a, "token", num);
                        cJSON_AddNumberToObject(a, "logprob", -0.22314355131420976);
                        char alt[8];
                        snprintf(alt, sizeof alt, "%d", (v + 5) % 11);
                        cJSON_AddStringToObject(b, "token", alt);
                        cJSON_AddNumberToObject(b, "logprob", -1.6094379124341003);
                        cJSON_AddItemToArray(top, a);
                        cJSON_AddItemToArray(top, b);
                    }
                    cJSON_AddItemToArray(lps, e);
                }
            }
            out = chat_reply(content, lps);
            cJSON_Delete(lps);
            free(content);
        } else {
            out = chat_reply("0", NULL);
        }
    } else if (planted && t->n > 0) {
        /* explanation: the distinct tokens with activation >= 5 of the neuron's samples */
        char expl[2048] = " the tokens";
        size_t k = strlen(expl);
        int nq = 0;
        for (int i = 0; i < t->n; i++) {
            if (atoi(t->val[i]) < 5) continue;
            if (quoted_in(expl, t->tok[i])) continue;
            int w = snprintf(expl + k, sizeof expl - k, "%s \"%s\"", nq ? "," : "", t->tok[i]);
            if (w < 0 || (size_t)w >= sizeof expl - k) break;
            k += (size_t)w;
            nq++;
        }
        out = chat_reply(nq ? expl : " nothing in particular", NULL);
    } else {
        char c[128];
        snprintf(c, sizeof c, " things (reply %zu)", strlen(txt));
        out = chat_reply(c, NULL);
    }
    free(t);
    return out;
}

typedef struct drop_state {
    size_t sent;
} drop_state;

static ssize_t drop_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    static const char part[] = "{\"id\":\"chatcmpl-test\",\"choices\":[{\"message\":{\"content\":\"trunc";
    if (pos >= sizeof part - 1) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = sizeof part - 1 - pos;
    if (n > max) n = max;
    memcpy(buf, part + pos, n);
    return (ssize_t)n;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **ptr)
{
    conn *cn = *ptr;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        *ptr = cn;
        MHD_get_connection_values(c, MHD_HEADER_KIND, check_header, cn);
        return MHD_YES;
    }
    if (*upload_size) {
        mhd_body_append(&cn->b, upload, *upload_size, MAX_BODY);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!strcmp(method, "GET") && !strcmp(url, "/stats")) {
        pthread_mutex_lock(&g_mu);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "requests", (double)g_requests);
        cJSON_AddNumberToObject(o, "violations", (double)g_violations);
        cJSON_AddNumberToObject(o, "images", (double)g_images);
        cJSON_AddNumberToObject(o, "dup_answered", (double)g_dup_answered);
        cJSON_AddStringToObject(o, "last_violation", g_last_violation);
        cJSON_AddItemToObject(o, "by_model", cJSON_Duplicate(g_by_model, 1));
        pthread_mutex_unlock(&g_mu);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        enum MHD_Result r = reply(c, 200, s, NULL);
        free(s);
        return r;
    }
    if (strcmp(method, "POST") || strcmp(url, "/v1/chat/completions"))
        return reply(c, 404, "{\"error\":{\"message\":\"no such endpoint\"}}", NULL);
    pthread_mutex_lock(&g_mu);
    g_requests++;
    pthread_mutex_unlock(&g_mu);
    const char *body = cn->b.body ? cn->b.body : "";
    if (cn->key_in_headers) {
        violation("API key in a header other than Authorization");
        return reply(c, 400, "{\"error\":{\"message\":\"check failed: key in header\"}}", NULL);
    }
    if (g_key && *g_key && strstr(body, g_key)) {
        violation("API key in the request body");
        return reply(c, 400, "{\"error\":{\"message\":\"check failed: key in body\"}}", NULL);
    }
    if (g_key && *g_key) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        char want[512];
        snprintf(want, sizeof want, "Bearer %s", g_key);
        if (!auth || strcmp(auth, want)) {
            violation("missing or wrong Authorization header");
            return reply(c, 401, "{\"error\":{\"message\":\"check failed: bad Authorization\"}}", NULL);
        }
    }
    cJSON *root = cJSON_ParseWithLength(body, cn->b.n);
    int n_images = 0;
    const char *why = cn->b.too_big ? "body too large" : check_chat(root, &n_images);
    if (why) {
        violation(why);
        char m[400];
        snprintf(m, sizeof m, "{\"error\":{\"message\":\"check failed: %s\"}}", why);
        cJSON_Delete(root);
        return reply(c, 400, m, NULL);
    }
    const char *model = cJSON_GetObjectItemCaseSensitive(root, "model")->valuestring;
    pthread_mutex_lock(&g_mu);
    g_images += n_images;
    cJSON *cnt = cJSON_GetObjectItemCaseSensitive(g_by_model, model);
    if (cnt) cJSON_SetNumberValue(cnt, cnt->valuedouble + 1);
    else cJSON_AddNumberToObject(g_by_model, model, 1);
    pthread_mutex_unlock(&g_mu);
    bool first = first_time(body, cn->b.n);
    enum MHD_Result ret;
    if (!strcmp(model, "f400")) {
        ret = reply(c, 400, "{\"error\":{\"message\":\"model f400 does not exist\",\"type\":\"invalid_request_error\"}}", NULL);
    } else if (!strcmp(model, "always500")) {
        ret = reply(c, 500, "{\"error\":{\"message\":\"internal error\"}}", NULL);
    } else if (first && !strcmp(model, "f429")) {
        ret = reply(c, 429, "{\"error\":{\"message\":\"rate limited\"}}", "1");
    } else if (first && !strcmp(model, "f500")) {
        ret = reply(c, 500, "{\"error\":{\"message\":\"boom\"}}", NULL);
    } else if ((first && !strcmp(model, "judgebad")) || !strcmp(model, "judgenever")) {
        char *s = chat_reply("I think the answer is right.", NULL);
        ret = reply(c, 200, s, NULL);
        free(s);
    } else if (first && !strcmp(model, "fbadjson")) {
        ret = reply(c, 200, "{\"choices\":[{\"message\":{\"content\":\"x\"", NULL);
    } else if (first && !strcmp(model, "fdrop")) {
        struct MHD_Response *r = MHD_create_response_from_callback(4096, 64, drop_cb, NULL, NULL);
        ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
    } else {
        if (first && !strcmp(model, "fslow")) usleep(2500000);
        if (!strcmp(model, "slowplanted")) usleep(200000);
        char *s = answer(root, model, !strcmp(model, "fbadtok"));
        answered(body, cn->b.n);
        ret = reply(c, 200, s, NULL);
        free(s);
    }
    cJSON_Delete(root);
    return ret;
}


int main(int argc, char **argv)
{
    const char *port_file = NULL;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--port-file")) port_file = argv[i + 1];
    if (!port_file) {
        fprintf(stderr, "usage: llm_server --port-file FILE (key to check in $VLMN_TEST_KEY)\n");
        return 2;
    }
    g_key = getenv("VLMN_TEST_KEY");
    g_by_model = cJSON_CreateObject();
    g_seen = calloc(MAX_SEEN, sizeof *g_seen);
    g_answered = calloc(MAX_SEEN, sizeof *g_answered);
    int rc = mhd_serve("llm_server", handle, port_file);
    cJSON_Delete(g_by_model);
    free(g_seen);
    free(g_answered);
    return rc;
}
