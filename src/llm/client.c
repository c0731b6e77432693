/* The HTTP transport of vlmn_llm: a curl multi loop keeping up to `concurrency` JSON
 * POSTs in flight, per-item retry with exponential backoff + jitter (honouring
 * retry-after and x-ratelimit-reset-*), the SQLite response cache and the accounting.
 * Flow: request bodies (chat.c or any JSON) -> [this] -> replies to the caller. */
#include "vlmn/llm.h"
#include "core/alloc.h"
#include "store/sha256.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VLMN_LLM_MAX_REPLY (64u << 20) /* a reply larger than this is an error */
#define VLMN_LLM_MAX_WAIT 3600.0        /* cap on a server-requested wait (s) */

struct vlmn_llm {
    char *base_url;
    char *auth_header;  /* "Authorization: Bearer KEY" or NULL; never logged */
    vlmn_llm_opts o;
    CURLM *multi;
    sqlite3 *cache;
    sqlite3_stmt *get, *put;
    uint64_t rng;
    vlmn_llm_stats s;
};

/* One in-flight transfer. */
typedef struct xfer {
    CURL *easy;
    struct curl_slist *hdrs;
    size_t item;
    char *data;
    size_t n, cap;
    bool too_big;
    double retry_after;  /* from headers, -1 none */
    char errbuf[CURL_ERROR_SIZE];
} xfer;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static double rng_u01(vlmn_llm *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (double)(c->rng >> 11) * (1.0 / 9007199254740992.0);
}

void vlmn_llm_opts_default(vlmn_llm_opts *o)
{
    memset(o, 0, sizeof *o);
    o->base_url = "https://api.openai.com/v1";
    o->api_key_env = "OPENAI_API_KEY";
    o->concurrency = 8;
    o->max_attempts = 6;
    o->timeout_s = 120;
    o->connect_timeout_s = 10;
    o->backoff_base_s = 1;
    o->backoff_max_s = 60;
    o->cache_read = true;
}

void vlmn_llm_key(const char *path, const char *body, char hex[65])
{
    vlmn_sha256 h;
    uint8_t d[32];
    vlmn_sha256_init(&h);
    vlmn_sha256_update(&h, "POST ", 5);
    vlmn_sha256_update(&h, path, strlen(path));
    vlmn_sha256_update(&h, "\n", 1);
    vlmn_sha256_update(&h, body, strlen(body));
    vlmn_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

void vlmn_llm_item_clear(vlmn_llm_item *it)
{
    vlmn_free(it->reply);
    vlmn_free(it->error);
    it->reply = it->error = NULL;
    it->reply_len = 0;
    it->state = VLMN_LLM_PENDING;
    it->http_status = 0;
    it->attempts = 0;
    it->cached = false;
}

static vlmn_status cache_open(vlmn_llm *c, const char *path)
{
    if (sqlite3_open_v2(path, &c->cache, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        return vlmn_error(VLMN_E_DB, "%s: %s", path, c->cache ? sqlite3_errmsg(c->cache) : "cannot open");
    sqlite3_busy_timeout(c->cache, 10000);
    /* WAL + synchronous=NORMAL: a committed answer survives a killed process. */
    const char *sql = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                      "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, path TEXT NOT NULL,"
                      " reply BLOB NOT NULL, created TEXT NOT NULL) WITHOUT ROWID;";
    char *msg = NULL;
    if (sqlite3_exec(c->cache, sql, NULL, NULL, &msg) != SQLITE_OK) {
        vlmn_status st = vlmn_error(VLMN_E_DB, "%s: %s", path, msg ? msg : "error");
        sqlite3_free(msg);
        return st;
    }
    if (sqlite3_prepare_v2(c->cache, "SELECT reply FROM cache WHERE key = ?", -1, &c->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->cache,
                           "INSERT OR REPLACE INTO cache (key, path, reply, created) VALUES (?, ?, ?,"
                           " strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                           -1, &c->put, NULL) != SQLITE_OK)
        return vlmn_error(VLMN_E_DB, "%s: %s", path, sqlite3_errmsg(c->cache));
    return VLMN_OK;
}

vlmn_status vlmn_llm_create(const vlmn_llm_opts *o, vlmn_llm **out)
{
    *out = NULL;
    static bool curl_inited;
    if (!curl_inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return vlmn_error(VLMN_E_NET, "llm: curl init failed");
        curl_inited = true;
    }
    vlmn_llm_opts d;
    vlmn_llm_opts_default(&d);
    if (!o) o = &d;
    if (o->concurrency < 1 || o->concurrency > 1024)
        return vlmn_error(VLMN_E_ARG, "llm: concurrency %d outside 1..1024", o->concurrency);
    if (o->max_attempts < 1 || o->max_attempts > 100)
        return vlmn_error(VLMN_E_ARG, "llm: max attempts %d outside 1..100", o->max_attempts);
    if (!(o->timeout_s > 0) || !(o->backoff_base_s >= 0) || !(o->backoff_max_s >= 0))
        return vlmn_error(VLMN_E_ARG, "llm: timeouts and backoff must be positive");
    vlmn_llm *c = vlmn_calloc(1, sizeof *c);
    if (!c) return vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
    c->o = *o;
    const char *base = o->base_url ? o->base_url : d.base_url;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') bl--;
    c->base_url = vlmn_strndup(base, bl);
    c->o.base_url = c->base_url;
    c->o.cache_path = NULL;
    const char *env = o->api_key_env && *o->api_key_env ? o->api_key_env : d.api_key_env;
    const char *key = getenv(env);
    vlmn_status st = VLMN_OK;
    if (!c->base_url) goto oom;
    if (strncmp(c->base_url, "http://", 7) && strncmp(c->base_url, "https://", 8)) {
        st = vlmn_error(VLMN_E_ARG, "llm: base URL %s is not http:// or https://", c->base_url);
        goto fail;
    }
    if (key && *key) {
        for (const char *p = key; *p; p++)
            if ((unsigned char)*p < 32 || *p == 127) {
                st = vlmn_error(VLMN_E_ARG, "llm: the key in $%s holds control characters", env);
                goto fail;
            }
        size_t n = strlen(key) + 32;
        if (!(c->auth_header = vlmn_malloc(n))) goto oom;
        snprintf(c->auth_header, n, "Authorization: Bearer %s", key);
    }
    c->rng = o->jitter_seed ? o->jitter_seed : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
    if (!c->rng) c->rng = 1;
    if (!(c->multi = curl_multi_init())) goto oom;
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->concurrency);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)o->concurrency);
    if (o->cache_path && (st = cache_open(c, o->cache_path))) goto fail;
    *out = c;
    return VLMN_OK;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
fail:
    vlmn_llm_free(c);
    return st;
}

void vlmn_llm_free(vlmn_llm *c)
{
    if (!c) return;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->put);
    sqlite3_close(c->cache);
    if (c->multi) curl_multi_cleanup(c->multi);
    if (c->auth_header) {
        memset(c->auth_header, 0, strlen(c->auth_header));
        vlmn_free(c->auth_header);
    }
    vlmn_free(c->base_url);
    vlmn_free(c);
}

const vlmn_llm_stats *vlmn_llm_get_stats(const vlmn_llm *c) { return &c->s; }

void vlmn_llm_stats_line(const vlmn_llm_stats *s, char *buf, size_t n)
{
    snprintf(buf, n,
             "items %lld: answered %lld (cached %lld), failed %lld; requests %lld (retries %lld: 429 %lld, 5xx %lld, "
             "timeouts %lld, dropped %lld, malformed %lld); tokens %lld in / %lld out; cost %.4f",
             (long long)s->items, (long long)s->answered, (long long)s->cached, (long long)s->failed,
             (long long)s->requests, (long long)s->retries, (long long)s->http_429, (long long)s->http_5xx,
             (long long)s->timeouts, (long long)s->dropped, (long long)s->malformed, (long long)s->prompt_tokens,
             (long long)s->completion_tokens, s->cost);
}

/* usage.prompt_tokens / completion_tokens of a reply, when it has them. */
static void account(vlmn_llm *c, const char *body, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *u = root ? cJSON_GetObjectItemCaseSensitive(root, "usage") : NULL;
    if (cJSON_IsObject(u)) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        if (cJSON_IsNumber(p) && p->valuedouble >= 0 && p->valuedouble < 1e12) {
            c->s.prompt_tokens += (int64_t)p->valuedouble;
            c->s.cost += p->valuedouble * c->o.price_in_per_mtok * 1e-6;
        }
        if (cJSON_IsNumber(q) && q->valuedouble >= 0 && q->valuedouble < 1e12) {
            c->s.completion_tokens += (int64_t)q->valuedouble;
            c->s.cost += q->valuedouble * c->o.price_out_per_mtok * 1e-6;
        }
    }
    cJSON_Delete(root);
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
    xfer *x = ud;
    size_t n = sz * nm;
    if (x->n + n > VLMN_LLM_MAX_REPLY) {
        x->too_big = true;
        return 0;
    }
    if (x->n + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->n + n + 1) cap *= 2;
        char *q = vlmn_realloc(x->data, cap);
        if (!q) return 0;
        x->data = q;
        x->cap = cap;
    }
    memcpy(x->data + x->n, p, n);
    x->n += n;
    x->data[x->n] = 0;
    return n;
}

/* Seconds in a rate-limit reset value: "1s", "6m0s", "20ms", "1.5", "2h". */
static double parse_duration(const char *s, size_t n)
{
    double total = 0;
    bool any = false;
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i >= n || s[i] == '\r' || s[i] == '\n') break;
        char tmp[32];
        size_t k = 0;
        while (i < n && k + 1 < sizeof tmp && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) tmp[k++] = s[i++];
        tmp[k] = 0;
        if (!k) return -1;
        double v = strtod(tmp, NULL);
        if (i + 1 < n && s[i] == 'm' && s[i + 1] == 's') v *= 1e-3, i += 2;
        else if (i < n && s[i] == 'h') v *= 3600, i++;
        else if (i < n && s[i] == 'm') v *= 60, i++;
        else if (i < n && s[i] == 's') i++;
        total += v;
        any = true;
    }
    return any ? total : -1;
}

static bool hdr_is(const char *p, size_t n, const char *name, const char **val, size_t *vn)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(p, name, k) || p[k] != ':') return false;
    *val = p + k + 1;
    *vn = n - k - 1;
    return true;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    xfer *x = ud;
    size_t n = sz * nm;
    const char *v;
    size_t vn;
    double d = -1;
    if (n >= 5 && !strncmp(p, "HTTP/", 5)) x->retry_after = -1; /* a new response (after 100-continue) */
    if (hdr_is(p, n, "retry-after-ms", &v, &vn)) {
        d = parse_duration(v, vn);
        if (d >= 0) d *= 1e-3;
    } else if (hdr_is(p, n, "retry-after", &v, &vn) || hdr_is(p, n, "x-ratelimit-reset-requests", &v, &vn) ||
               hdr_is(p, n, "x-ratelimit-reset-tokens", &v, &vn)) {
        d = parse_duration(v, vn); /* HTTP dates in retry-after are not parsed: backoff applies */
    }
    if (d >= 0) {
        if (d > VLMN_LLM_MAX_WAIT) d = VLMN_LLM_MAX_WAIT;
        if (d > x->retry_after) x->retry_after = d;
    }
    return n;
}

static vlmn_status set_error(vlmn_llm_item *it, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    vlmn_free(it->error);
    it->error = vlmn_strdup(msg);
    return it->error ? VLMN_OK : vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
}

typedef struct runq {
    size_t *idx;    /* items waiting to be (re)sent */
    double *ready;  /* when each may go */
    size_t n, cap;
} runq;

static bool runq_push(runq *q, size_t i, double t)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        size_t *a = vlmn_realloc(q->idx, cap * sizeof *a);
        if (!a) return false;
        q->idx = a;
        double *b = vlmn_realloc(q->ready, cap * sizeof *b);
        if (!b) return false;
        q->ready = b;
        q->cap = cap;
    }
    q->idx[q->n] = i;
    q->ready[q->n] = t;
    q->n++;
    return true;
}

static vlmn_status cache_lookup(vlmn_llm *c, vlmn_llm_item *it, bool *hit)
{
    *hit = false;
    if (!c->cache || !c->o.cache_read) return VLMN_OK;
    sqlite3_reset(c->get);
    sqlite3_bind_text(c->get, 1, it->key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(c->get);
    if (rc == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(c->get, 0);
        int n = sqlite3_column_bytes(c->get, 0);
        if (!(it->reply = vlmn_malloc((size_t)n + 1))) return vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
        if (n) memcpy(it->reply, b, (size_t)n);
        it->reply[n] = 0;
        it->reply_len = (size_t)n;
        *hit = true;
    } else if (rc != SQLITE_DONE) {
        return vlmn_error(VLMN_E_DB, "llm cache: %s", sqlite3_errmsg(c->cache));
    }
    sqlite3_reset(c->get);
    return VLMN_OK;
}

static vlmn_status cache_store(vlmn_llm *c, const vlmn_llm_item *it)
{
    if (!c->cache) return VLMN_OK;
    sqlite3_reset(c->put);
    sqlite3_bind_text(c->put, 1, it->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->put, 2, it->path, -1, SQLITE_STATIC);
    sqlite3_bind_blob(c->put, 3, it->reply, (int)it->reply_len, SQLITE_STATIC);
    int rc = sqlite3_step(c->put);
    sqlite3_reset(c->put);
    if (rc != SQLITE_DONE) return vlmn_error(VLMN_E_DB, "llm cache: %s", sqlite3_errmsg(c->cache));
    return VLMN_OK;
}

static vlmn_status start(vlmn_llm *c, vlmn_llm_item *items, xfer *x, size_t i)
{
    vlmn_llm_item *it = &items[i];
    x->item = i;
    x->n = 0;
    x->too_big = false;
    x->retry_after = -1;
    x->errbuf[0] = 0;
    if (!x->easy && !(x->easy = curl_easy_init())) return vlmn_error(VLMN_E_NOMEM, "llm: curl_easy_init failed");
    if (!x->hdrs) {
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        if (h && c->auth_header) h = curl_slist_append(h, c->auth_header) ? h : (curl_slist_free_all(h), NULL);
        if (h && !curl_slist_append(h, "Expect:")) curl_slist_free_all(h), h = NULL;
        if (!h) return vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
        x->hdrs = h;
    }
    size_t ul = strlen(c->base_url) + strlen(it->path) + 1;
    char *url = vlmn_malloc(ul);
    if (!url) return vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
    snprintf(url, ul, "%s%s", c->base_url, it->path);
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url); /* curl copies it */
    vlmn_free(url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, it->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(it->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->o.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)((c->o.connect_timeout_s > 0 ? c->o.connect_timeout_s : 10) * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) return vlmn_error(VLMN_E_NET, "llm: curl_multi_add_handle failed");
    it->attempts++;
    c->s.requests++;
    if (it->attempts > 1) c->s.retries++;
    return VLMN_OK;
}

/* Outcome of one finished attempt: retry (with the wait), answer, or fail. */
static vlmn_status finish(vlmn_llm *c, vlmn_llm_item *it, xfer *x, CURLcode res, bool *retry, double *wait)
{
    *retry = false;
    *wait = 0;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    it->http_status = (int)code;
    char why[400];
    why[0] = 0;
    bool transient = false;
    if (res != CURLE_OK) {
        if (x->too_big) {
            snprintf(why, sizeof why, "reply larger than %u bytes", VLMN_LLM_MAX_REPLY);
        } else {
            transient = true;
            if (res == CURLE_OPERATION_TIMEDOUT) c->s.timeouts++;
            else c->s.dropped++;
            snprintf(why, sizeof why, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
        }
    } else if (code == 429 || code >= 500 || code == 408) {
        transient = true;
        if (code == 429) c->s.http_429++;
        else c->s.http_5xx++;
        char m[300];
        vlmn_llm_error_message(x->data, x->n, m, sizeof m);
        snprintf(why, sizeof why, "HTTP %ld%s%s", code, *m ? ": " : "", m);
    } else if (code < 200 || code >= 300) {
        char m[300];
        vlmn_llm_error_message(x->data, x->n, m, sizeof m);
        snprintf(why, sizeof why, "HTTP %ld%s%s", code, *m ? ": " : "", m);
    } else {
        const char *body = x->data ? x->data : "";
        if (it->check && it->check(body, x->n, it->user) != VLMN_OK) {
            transient = true;
            c->s.malformed++;
            snprintf(why, sizeof why, "malformed reply: %s", vlmn_errmsg());
        } else {
            it->reply = vlmn_malloc(x->n + 1);
            if (!it->reply) return vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
            memcpy(it->reply, body, x->n);
            it->reply[x->n] = 0;
            it->reply_len = x->n;
            it->state = VLMN_LLM_ANSWERED;
            account(c, it->reply, it->reply_len);
            return cache_store(c, it);
        }
    }
    if (transient && it->attempts < c->o.max_attempts) {
        double b = c->o.backoff_base_s * pow(2.0, it->attempts - 1) * (0.5 + rng_u01(c));
        if (b > c->o.backoff_max_s) b = c->o.backoff_max_s;
        if (x->retry_after > b) b = x->retry_after;
        *retry = true;
        *wait = b;
        c->s.wait_s += b;
        return VLMN_OK;
    }
    it->state = VLMN_LLM_FAILED;
    char att[32];
    snprintf(att, sizeof att, "%d", it->attempts);
    return set_error(it, transient ? "%s (after %s attempts)" : "%s", why, att);
}

static int cmp_key(const void *a, const void *b, void *ctx)
{
    const vlmn_llm_item *items = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int r = strcmp(items[i].key, items[j].key);
    return r ? r : (i < j ? -1 : i > j);
}
static int cmp_size(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    return i < j ? -1 : i > j;
}

vlmn_status vlmn_llm_run(vlmn_llm *c, vlmn_llm_item *items, size_t n, vlmn_llm_done_fn done, void *user)
{
    vlmn_status st = VLMN_OK;
    size_t *next_dup = NULL;
    int conc = c->o.concurrency;
    xfer *xs = vlmn_calloc((size_t)conc, sizeof *xs);
    bool *busy = vlmn_calloc((size_t)conc, sizeof *busy);
    runq q = {0};
    if (!xs || !busy) {
        st = vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
        goto out;
    }
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        vlmn_llm_item *it = &items[i];
        vlmn_llm_item_clear(it);
        c->s.items++;
        if (!it->path || !it->body) {
            it->state = VLMN_LLM_FAILED;
            if ((st = set_error(it, "%s%s", "no request path or body", ""))) goto out;
            c->s.failed++;
            if (done && (st = done(it, user))) goto out;
            continue;
        }
        vlmn_llm_key(it->path, it->body, it->key);
        bool hit;
        if ((st = cache_lookup(c, it, &hit))) goto out;
        if (hit) {
            it->state = VLMN_LLM_ANSWERED;
            it->cached = true;
            c->s.answered++;
            c->s.cached++;
            account(c, it->reply, it->reply_len);
            if (done && (st = done(it, user))) goto out;
            continue;
        }
        if (!runq_push(&q, i, t0)) {
            st = vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
            goto out;
        }
    }
    /* identical requests in one run are sent once: the others follow their leader */
    if (q.n > 1) {
        size_t *ord = vlmn_malloc(q.n * sizeof *ord);
        next_dup = vlmn_malloc(n * sizeof *next_dup);
        if (!ord || !next_dup) {
            vlmn_free(ord);
            vlmn_free(next_dup);
            st = vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++) next_dup[i] = SIZE_MAX;
        memcpy(ord, q.idx, q.n * sizeof *ord);
        qsort_r(ord, q.n, sizeof *ord, cmp_key, items);
        size_t w = 0, lead = SIZE_MAX, tail = SIZE_MAX;
        for (size_t k = 0; k < q.n; k++) {
            size_t i = ord[k];
            if (lead != SIZE_MAX && !strcmp(items[lead].key, items[i].key)) {
                next_dup[tail] = i;
                tail = i;
                continue;
            }
            lead = tail = i;
            ord[w++] = i;
        }
        /* keep the queue in item order */
        qsort(ord, w, sizeof *ord, cmp_size);
        memcpy(q.idx, ord, w * sizeof *ord);
        q.n = w;
        vlmn_free(ord);
    }
    size_t head = 0; /* q entries before head are taken; retries are appended */
    int active = 0;
    while (head < q.n || active > 0) {
        double t = now_s();
        /* start ready items into free slots (queue is FIFO; a waiting item does not block others) */
        for (size_t k = head; k < q.n && active < conc; k++) {
            if (q.ready[k] > t) continue;
            int slot = 0;
            while (busy[slot]) slot++;
            size_t i = q.idx[k];
            /* remove entry k by moving head's entry into it */
            q.idx[k] = q.idx[head];
            q.ready[k] = q.ready[head];
            head++;
            if ((st = start(c, items, &xs[slot], i))) goto out;
            busy[slot] = true;
            active++;
        }
        int finished = 0; /* transfers that ended this round free a slot: refill before waiting */
        if (active > 0) {
            int running;
            curl_multi_perform(c->multi, &running);
            CURLMsg *m;
            int left;
            while ((m = curl_multi_info_read(c->multi, &left))) {
                if (m->msg != CURLMSG_DONE) continue;
                xfer *x = NULL;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
                CURLcode res = m->data.result;
                curl_multi_remove_handle(c->multi, m->easy_handle);
                int slot = (int)(x - xs);
                busy[slot] = false;
                active--;
                finished++;
                vlmn_llm_item *it = &items[x->item];
                bool retry;
                double w;
                if ((st = finish(c, it, x, res, &retry, &w))) goto out;
                if (retry) {
                    if (!runq_push(&q, x->item, now_s() + w)) {
                        st = vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
                        goto out;
                    }
                    continue;
                }
                if (it->state == VLMN_LLM_ANSWERED) c->s.answered++;
                else c->s.failed++;
                if (done && (st = done(it, user))) goto out;
                for (size_t j = next_dup ? next_dup[x->item] : SIZE_MAX; j != SIZE_MAX; j = next_dup[j]) {
                    vlmn_llm_item *d = &items[j];
                    d->state = it->state;
                    d->http_status = it->http_status;
                    if ((it->reply && !(d->reply = vlmn_malloc(it->reply_len + 1))) ||
                        (it->error && !(d->error = vlmn_strdup(it->error)))) {
                        st = vlmn_error(VLMN_E_NOMEM, "llm: out of memory");
                        goto out;
                    }
                    if (it->reply) memcpy(d->reply, it->reply, it->reply_len + 1);
                    d->reply_len = it->reply_len;
                    if (d->state == VLMN_LLM_ANSWERED) {
                        c->s.answered++;
                        account(c, d->reply, d->reply_len);
                    } else {
                        c->s.failed++;
                    }
                    if (done && (st = done(d, user))) goto out;
                }
            }
        }
        if (finished) continue;
        /* sleep until a transfer has news or the earliest queued retry is due */
        double next = -1;
        for (size_t k = head; k < q.n; k++)
            if (next < 0 || q.ready[k] < next) next = q.ready[k];
        int wait_ms = 1000;
        if (next >= 0 && active < conc) {
            double d = (next - now_s()) * 1000;
            wait_ms = d < 0 ? 0 : d > 1000 ? 1000 : (int)d + 1;
        }
        if (wait_ms == 0) continue;
        if (active > 0) curl_multi_poll(c->multi, NULL, 0, wait_ms, NULL);
        else if (head < q.n) usleep((useconds_t)wait_ms * 1000);
    }
out:
    vlmn_free(next_dup);
    if (xs) {
        for (int k = 0; k < conc; k++) {
            if (xs[k].easy) {
                if (busy && busy[k]) curl_multi_remove_handle(c->multi, xs[k].easy);
                curl_easy_cleanup(xs[k].easy);
            }
            curl_slist_free_all(xs[k].hdrs);
            vlmn_free(xs[k].data);
        }
    }
    vlmn_free(xs);
    vlmn_free(busy);
    vlmn_free(q.idx);
    vlmn_free(q.ready);
    return st;
}
