/* The LLM client against tests/llm/llm_server.c: request bodies, reply parsing, every
 * injected fault (429 + retry-after, 500, dropped connection, slow reply past the
 * timeout, malformed JSON, 400), the response cache, and that the key never leaves the
 * Authorization header (server checks) nor lands in the cache. */
#include "test.h"
#include "llm/server.h"
#include "vlmn/llm.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#define KEY "sk-test-Zq8XfTopSecret0123"

static test_server srv;

static size_t grab(char *p, size_t s, size_t n, void *ud)
{
    char *b = ud;
    size_t k = strlen(b), m = s * n;
    if (k + m < 4095) memcpy(b + k, p, m), b[k + m] = 0;
    return m;
}

/* GET /stats -> field */
static long server_stat(const char *field)
{
    char buf[4096] = "", url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/stats", srv.port);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, grab);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, buf);
    curl_easy_perform(e);
    curl_easy_cleanup(e);
    cJSON *o = cJSON_Parse(buf);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    long r = cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
    if (!strcmp(field, "violations") && r) {
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(o, "last_violation");
        fprintf(stderr, "  server violation: %s\n", cJSON_IsString(lv) ? lv->valuestring : "?");
    }
    cJSON_Delete(o);
    return r;
}

static char *simple_body(const char *model, const char *text)
{
    vlmn_llm_part p = {.kind = VLMN_LLM_TEXT, .text = text};
    vlmn_llm_msg m = {.role = "user", .parts = &p, .n_parts = 1};
    vlmn_llm_chat c = {.model = model, .msgs = &m, .n_msgs = 1, .temperature = 0, .max_tokens = 16};
    char *body = NULL;
    CHECK(vlmn_llm_chat_body(&c, &body) == VLMN_OK);
    return body;
}

TEST(base64_vectors)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"}; /* RFC 4648 section 10 */
    for (int i = 0; i < 7; i++) {
        char *b = vlmn_llm_base64((const uint8_t *)in[i], strlen(in[i]));
        CHECK_EQ_STR(b, out[i]);
        vlmn_free(b);
    }
}

TEST(chat_body_fields)
{
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    vlmn_llm_part parts[2] = {{.kind = VLMN_LLM_TEXT, .text = "look\tat this"},
                              {.kind = VLMN_LLM_IMAGE_PNG, .png = png, .png_len = sizeof png, .detail = "low"}};
    vlmn_llm_part sys = {.kind = VLMN_LLM_TEXT, .text = "system text"};
    vlmn_llm_msg msgs[2] = {{.role = "system", .parts = &sys, .n_parts = 1}, {.role = "user", .parts = parts, .n_parts = 2}};
    vlmn_llm_chat c = {.model = "m1", .msgs = msgs, .n_msgs = 2, .temperature = 0.5, .max_tokens = 60, .has_seed = true,
                       .seed = 7, .schema_name = "sim", .schema_json = "{\"type\":\"object\"}", .logprobs = true,
                       .top_logprobs = 5};
    char *body = NULL;
    CHECK(vlmn_llm_chat_body(&c, &body) == VLMN_OK);
    cJSON *r = cJSON_Parse(body);
    CHECK(r != NULL);
    CHECK_EQ_STR(cJSON_GetObjectItem(r, "model")->valuestring, "m1");
    cJSON *ms = cJSON_GetObjectItem(r, "messages");
    CHECK_EQ_INT(cJSON_GetArraySize(ms), 2);
    CHECK_EQ_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 0), "content")->valuestring, "system text");
    cJSON *uc = cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 1), "content");
    CHECK(cJSON_IsArray(uc) && cJSON_GetArraySize(uc) == 2);
    CHECK_EQ_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(uc, 0), "text")->valuestring, "look\tat this");
    cJSON *iu = cJSON_GetObjectItem(cJSON_GetArrayItem(uc, 1), "image_url");
    CHECK_EQ_STR(cJSON_GetObjectItem(iu, "url")->valuestring, "data:image/png;base64,iVBORw0KGgoAAAAN");
    CHECK_EQ_STR(cJSON_GetObjectItem(iu, "detail")->valuestring, "low");
    CHECK(cJSON_GetObjectItem(r, "temperature")->valuedouble == 0.5);
    CHECK_EQ_INT(cJSON_GetObjectItem(r, "max_tokens")->valueint, 60);
    CHECK_EQ_INT(cJSON_GetObjectItem(r, "seed")->valueint, 7);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r, "logprobs")));
    CHECK_EQ_INT(cJSON_GetObjectItem(r, "top_logprobs")->valueint, 5);
    cJSON *rf = cJSON_GetObjectItem(r, "response_format");
    CHECK_EQ_STR(cJSON_GetObjectItem(rf, "type")->valuestring, "json_schema");
    cJSON *js = cJSON_GetObjectItem(rf, "json_schema");
    CHECK_EQ_STR(cJSON_GetObjectItem(js, "name")->valuestring, "sim");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(js, "strict")));
    CHECK(cJSON_IsObject(cJSON_GetObjectItem(js, "schema")));
    cJSON_Delete(r);
    /* same request, same bytes (the cache key depends on it) */
    char *again = NULL;
    CHECK(vlmn_llm_chat_body(&c, &again) == VLMN_OK);
    CHECK_EQ_STR(body, again);
    vlmn_free(again);
    vlmn_free(body);
    c.top_logprobs = 21;
    CHECK(vlmn_llm_chat_body(&c, &body) == VLMN_E_ARG);
    c.top_logprobs = 0;
    c.schema_json = "{not json";
    CHECK(vlmn_llm_chat_body(&c, &body) == VLMN_E_ARG);
}

TEST(reply_parse)
{
    const char *good = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":\"stop\","
                       "\"logprobs\":{\"content\":[{\"token\":\"hi\",\"logprob\":-0.5,\"top_logprobs\":[{\"token\":\"hi\","
                       "\"logprob\":-0.5},{\"token\":\"ho\",\"logprob\":-1}]}]}}],\"usage\":{\"prompt_tokens\":12,"
                       "\"completion_tokens\":3}}";
    vlmn_llm_reply r;
    CHECK(vlmn_llm_chat_parse(good, strlen(good), &r) == VLMN_OK);
    CHECK_EQ_STR(r.content, "hi");
    CHECK_EQ_STR(r.finish_reason, "stop");
    CHECK_EQ_INT(r.prompt_tokens, 12);
    CHECK_EQ_INT(r.completion_tokens, 3);
    CHECK_EQ_INT(r.n_tokens, 1);
    CHECK_EQ_INT(r.tokens[0].n_top, 2);
    CHECK_EQ_STR(r.tokens[0].top[1].token, "ho");
    vlmn_llm_reply_free(&r);
    const char *bad[] = {"", "{", "[]", "{\"choices\":[]}", "{\"choices\":[{\"message\":{\"content\":3}}]}",
                         "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":{\"content\":{}}}]}",
                         "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":{\"content\":[{\"token\":1}]}}]}"};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(bad); i++) {
        CHECK(vlmn_llm_chat_parse(bad[i], strlen(bad[i]), &r) != VLMN_OK);
        CHECK(r.content == NULL && r.tokens == NULL);
    }
    char m[256];
    { const char *eb = "{\"error\":{\"message\":\"quota\"}}"; vlmn_llm_error_message(eb, strlen(eb), m, sizeof m); }
    CHECK_EQ_STR(m, "quota");
}

TEST(cache_key_distinct)
{
    char k1[65], k2[65];
    vlmn_llm_key("/chat/completions", "{}", k1);
    vlmn_llm_key("/chat/completions", "{ }", k2);
    CHECK(strlen(k1) == 64 && strcmp(k1, k2) != 0);
    vlmn_llm_key("/segment", "{}", k2);
    CHECK(strcmp(k1, k2) != 0);
}

static int n_done;
static vlmn_status count_done(vlmn_llm_item *it, void *user)
{
    n_done++;
    CHECK(it->state != VLMN_LLM_PENDING);
    return VLMN_OK;
}

TEST(faults_end_answered_or_failed)
{
    const char *cache = test_path(test_tmp_dir(), "llm_faults_cache.sqlite");
    unlink(cache);
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", cache);
    unlink(wal);
    vlmn_llm_opts o;
    vlmn_llm_opts_default(&o);
    o.base_url = srv.base_url;
    o.api_key_env = "VLMN_TEST_CLIENT_KEY";
    o.concurrency = 4;
    o.max_attempts = 3;
    o.timeout_s = 1.0;
    o.backoff_base_s = 0.05;
    o.backoff_max_s = 0.2;
    o.cache_path = cache;
    o.price_in_per_mtok = 2.5;
    o.price_out_per_mtok = 10;
    o.jitter_seed = 42;
    vlmn_llm *c = NULL;
    CHECK(vlmn_llm_create(&o, &c) == VLMN_OK);
    if (!c) return;
    const char *models[] = {"ok", "f429", "f500", "fdrop", "fslow", "fbadjson", "f400", "always500"};
    enum { N = 8 };
    vlmn_llm_item it[N];
    char *bodies[N];
    memset(it, 0, sizeof it);
    for (int i = 0; i < N; i++) {
        bodies[i] = simple_body(models[i], "hello");
        it[i].path = "/chat/completions";
        it[i].body = bodies[i];
        it[i].check = vlmn_llm_chat_check;
    }
    long before = server_stat("requests");
    n_done = 0;
    CHECK(vlmn_llm_run(c, it, N, count_done, NULL) == VLMN_OK);
    CHECK_EQ_INT(n_done, N);
    for (int i = 0; i < 6; i++) {
        CHECK_MSG(it[i].state == VLMN_LLM_ANSWERED, "%s: %s", models[i], it[i].error ? it[i].error : "");
        CHECK_EQ_INT(it[i].attempts, i == 0 ? 1 : 2);
        CHECK(!it[i].cached);
    }
    CHECK(it[6].state == VLMN_LLM_FAILED && it[6].attempts == 1);
    CHECK(it[6].error && strstr(it[6].error, "HTTP 400") && strstr(it[6].error, "model f400 does not exist"));
    CHECK(it[7].state == VLMN_LLM_FAILED && it[7].attempts == 3);
    CHECK(it[7].error && strstr(it[7].error, "HTTP 500") && strstr(it[7].error, "after 3 attempts"));
    const vlmn_llm_stats *s = vlmn_llm_get_stats(c);
    CHECK_EQ_INT(s->answered, 6);
    CHECK_EQ_INT(s->failed, 2);
    CHECK_EQ_INT(s->requests, 1 + 5 * 2 + 1 + 3);
    CHECK_EQ_INT(server_stat("requests") - before, 1 + 5 * 2 + 1 + 3);
    CHECK_EQ_INT(s->http_429, 1);
    CHECK_EQ_INT(s->http_5xx, 1 + 3);
    CHECK_EQ_INT(s->timeouts, 1);
    CHECK_EQ_INT(s->dropped, 1);
    CHECK_EQ_INT(s->malformed, 1);
    CHECK(s->wait_s >= 1.0); /* the 429's retry-after: 1 was honoured */
    CHECK_EQ_INT(s->prompt_tokens, 600);
    CHECK_EQ_INT(s->completion_tokens, 60);
    CHECK_NEAR(s->cost, 600 * 2.5e-6 + 60 * 10e-6, 1e-12);
    for (int i = 0; i < N; i++)
        CHECK(!it[i].error || !strstr(it[i].error, KEY));
    char line[512];
    vlmn_llm_stats_line(s, line, sizeof line);
    CHECK(strstr(line, "failed 2") != NULL);

    /* rerun: the answered ones come from the cache, the failed ones are retried */
    before = server_stat("requests");
    CHECK(vlmn_llm_run(c, it, N, NULL, NULL) == VLMN_OK);
    for (int i = 0; i < 6; i++) CHECK(it[i].state == VLMN_LLM_ANSWERED && it[i].cached && it[i].attempts == 0);
    CHECK(it[6].state == VLMN_LLM_FAILED && it[7].state == VLMN_LLM_FAILED);
    CHECK_EQ_INT(server_stat("requests") - before, 1 + 3);
    for (int i = 0; i < N; i++) {
        vlmn_llm_item_clear(&it[i]);
        vlmn_free(bodies[i]);
    }
    vlmn_llm_free(c);
    CHECK_EQ_INT(server_stat("violations"), 0);
    /* the key is nowhere in the cache */
    size_t n = 0;
    char *bytes = test_read_file(cache, &n);
    CHECK(bytes != NULL);
    CHECK(bytes && !memmem(bytes, n, KEY, strlen(KEY)));
    free(bytes);
    bytes = test_read_file(wal, &n);
    CHECK(!bytes || !memmem(bytes, n, KEY, strlen(KEY)));
    free(bytes);
}

TEST(many_in_flight)
{
    vlmn_llm_opts o;
    vlmn_llm_opts_default(&o);
    o.base_url = srv.base_url;
    o.api_key_env = "VLMN_TEST_CLIENT_KEY";
    o.concurrency = 16;
    o.backoff_base_s = 0.01;
    vlmn_llm *c = NULL;
    CHECK(vlmn_llm_create(&o, &c) == VLMN_OK);
    if (!c) return;
    enum { N = 300 };
    vlmn_llm_item *it = calloc(N, sizeof *it);
    char **bodies = calloc(N, sizeof *bodies);
    for (int i = 0; i < N; i++) {
        char t[32];
        snprintf(t, sizeof t, "item %d", i);
        bodies[i] = simple_body(i % 3 == 0 ? "f500" : "ok", t);
        it[i].path = "/chat/completions";
        it[i].body = bodies[i];
        it[i].check = vlmn_llm_chat_check;
    }
    CHECK(vlmn_llm_run(c, it, N, NULL, NULL) == VLMN_OK);
    int answered = 0;
    for (int i = 0; i < N; i++) {
        answered += it[i].state == VLMN_LLM_ANSWERED;
        /* each reply belongs to its own request: the server echoes the prompt length */
        vlmn_llm_reply r;
        if (it[i].state == VLMN_LLM_ANSWERED && vlmn_llm_chat_parse(it[i].reply, it[i].reply_len, &r) == VLMN_OK) {
            char want[64];
            snprintf(want, sizeof want, " things (reply %zu)", strlen("item ") + (i < 10 ? 1 : i < 100 ? 2 : 3));
            CHECK_EQ_STR(r.content, want);
            vlmn_llm_reply_free(&r);
        }
        vlmn_llm_item_clear(&it[i]);
        vlmn_free(bodies[i]);
    }
    CHECK_EQ_INT(answered, N);
    free(it);
    free(bodies);
    vlmn_llm_free(c);
    CHECK_EQ_INT(server_stat("violations"), 0);
}

TEST(identical_requests_sent_once)
{
    vlmn_llm_opts o;
    vlmn_llm_opts_default(&o);
    o.base_url = srv.base_url;
    o.api_key_env = "VLMN_TEST_CLIENT_KEY";
    vlmn_llm *c = NULL;
    CHECK(vlmn_llm_create(&o, &c) == VLMN_OK);
    if (!c) return;
    char *b1 = simple_body("ok", "same"), *b2 = simple_body("ok", "other");
    vlmn_llm_item it[4] = {{.path = "/chat/completions", .body = b1}, {.path = "/chat/completions", .body = b2},
                           {.path = "/chat/completions", .body = b1}, {.path = "/chat/completions", .body = b1}};
    long before = server_stat("requests");
    n_done = 0;
    CHECK(vlmn_llm_run(c, it, 4, count_done, NULL) == VLMN_OK);
    CHECK_EQ_INT(n_done, 4);
    CHECK_EQ_INT(server_stat("requests") - before, 2);
    for (int i = 0; i < 4; i++) CHECK(it[i].state == VLMN_LLM_ANSWERED && it[i].reply);
    CHECK_EQ_STR(it[0].reply, it[3].reply);
    CHECK_EQ_INT(it[2].attempts, 0);
    for (int i = 0; i < 4; i++) vlmn_llm_item_clear(&it[i]);
    vlmn_free(b1);
    vlmn_free(b2);
    vlmn_llm_free(c);
}

TEST(no_key_is_a_401_failure)
{
    vlmn_llm_opts o;
    vlmn_llm_opts_default(&o);
    o.base_url = srv.base_url;
    o.api_key_env = "VLMN_TEST_UNSET_KEY_VAR";
    vlmn_llm *c = NULL;
    CHECK(vlmn_llm_create(&o, &c) == VLMN_OK);
    if (!c) return;
    char *b = simple_body("ok", "x");
    vlmn_llm_item it = {.path = "/chat/completions", .body = b, .check = vlmn_llm_chat_check};
    long v0 = server_stat("violations");
    CHECK(vlmn_llm_run(c, &it, 1, NULL, NULL) == VLMN_OK);
    CHECK(it.state == VLMN_LLM_FAILED && it.attempts == 1 && it.http_status == 401);
    CHECK(it.error && strstr(it.error, "bad Authorization"));
    CHECK_EQ_INT(server_stat("violations") - v0, 1); /* the server saw the missing key */
    vlmn_llm_item_clear(&it);
    vlmn_free(b);
    vlmn_llm_free(c);
}

TEST(bad_options)
{
    vlmn_llm_opts o;
    vlmn_llm_opts_default(&o);
    vlmn_llm *c = NULL;
    o.concurrency = 0;
    CHECK(vlmn_llm_create(&o, &c) == VLMN_E_ARG && !c);
    vlmn_llm_opts_default(&o);
    o.base_url = "ftp://x";
    CHECK(vlmn_llm_create(&o, &c) == VLMN_E_ARG && !c);
    vlmn_llm_opts_default(&o);
    o.base_url = "http://127.0.0.1:1/v1"; /* nothing listens: a connection error, retried, then failed */
    o.max_attempts = 2;
    o.backoff_base_s = 0.01;
    CHECK(vlmn_llm_create(&o, &c) == VLMN_OK);
    char *b = simple_body("ok", "x");
    vlmn_llm_item it = {.path = "/chat/completions", .body = b};
    CHECK(vlmn_llm_run(c, &it, 1, NULL, NULL) == VLMN_OK);
    CHECK(it.state == VLMN_LLM_FAILED && it.attempts == 2 && it.error);
    vlmn_llm_item_clear(&it);
    vlmn_free(b);
    vlmn_llm_free(c);
}

int main(int argc, char **argv)
{
    setenv("VLMN_TEST_KEY", KEY, 1);
    setenv("VLMN_TEST_CLIENT_KEY", KEY, 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (test_server_start(&srv, test_tmp_dir())) return 1;
    int passed = 0, failed = 0;
    for (int i = 0; i < test_count_; i++) {
        if (argc > 1 && !strstr(test_cases_[i].name, argv[1])) continue;
        int before = test_failed_checks_;
        test_cases_[i].fn();
        if (test_failed_checks_ == before) passed++;
        else {
            failed++;
            fprintf(stderr, "FAIL %s\n", test_cases_[i].name);
        }
    }
    test_server_stop(&srv);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
