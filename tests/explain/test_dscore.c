/* Detection and fuzzing scorers: AUROC against the float64 reference (tests/reference/
 * auroc_ref.py, pairwise Mann-Whitney with exact fractions) to 1e-12 ties included, the
 * prompts (explanation, examples, images only for detection, <<highlights>>, schema or
 * logprobs), the reply parser (answer count, JSON object / list / fenced text, P(1) from
 * top_logprobs, fallback to the 0/1 answers) and the fuzzing highlights. */
#include "test.h"
#include "vlmn/explain.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>

TEST(auroc_matches_float64_reference)
{
    char *txt = test_read_file(test_path(test_data_dir(), "explain/auroc.txt"), NULL);
    CHECK(txt != NULL);
    if (!txt) return;
    char *p = txt, *end;
    long n_cases = strtol(p, &end, 10);
    p = end;
    CHECK(n_cases >= 10);
    for (long c = 0; c < n_cases; c++) {
        long n = strtol(p, &end, 10);
        p = end;
        double *s = malloc((size_t)n * sizeof *s);
        int *y = malloc((size_t)n * sizeof *y);
        for (long i = 0; i < n; i++) s[i] = strtod(p, &end), p = end;
        for (long i = 0; i < n; i++) y[i] = (int)strtol(p, &end, 10), p = end;
        double want = strtod(p, &end);
        p = end;
        int np = 0, nn = 0, cp = 0;
        for (long i = 0; i < n; i++) cp += y[i];
        double a = vlmn_auroc(s, y, (int)n, &np, &nn);
        CHECK_EQ_INT(np, cp);
        CHECK_EQ_INT(nn, n - cp);
        CHECK_MSG(fabs(a - want) <= 1e-12, "case %ld (n=%ld): %.17g vs %.17g", c, n, a, want);
        free(s);
        free(y);
    }
    free(txt);
}

TEST(auroc_edge_cases)
{
    double s[] = {0.2, 0.9, NAN, 0.4};
    int y[] = {0, 1, 1, 0}, ones[] = {1, 1, 1, 1};
    int np, nn;
    CHECK_NEAR(vlmn_auroc(s, y, 4, &np, &nn), 1.0, 0);
    CHECK(np == 1 && nn == 2); /* the NaN score is not counted */
    CHECK(isnan(vlmn_auroc(s, ones, 4, NULL, NULL)));
    CHECK(isnan(vlmn_auroc(s, y, 0, &np, &nn)) && np == 0 && nn == 0);
    double t[] = {1, 1, 0, 1}; /* labels 1,0,0,1 -> pos {1,1}, neg {1,0}: (0.5 + 1 + 0.5 + 1) / 4 */
    int u[] = {1, 0, 0, 1};
    CHECK_NEAR(vlmn_auroc(t, u, 4, NULL, NULL), 0.75, 0);
}

static cJSON *user_msg(cJSON *root) { return cJSON_GetArrayItem(cJSON_GetObjectItem(root, "messages"), 1); }

/* All text of a message (string or parts), and its number of image parts. */
static void msg_all(cJSON *m, char *out, size_t n, int *n_img)
{
    out[0] = 0;
    *n_img = 0;
    cJSON *c = cJSON_GetObjectItem(m, "content");
    if (cJSON_IsString(c)) {
        snprintf(out, n, "%s", c->valuestring);
        return;
    }
    cJSON *p;
    cJSON_ArrayForEach(p, c)
    {
        cJSON *t = cJSON_GetObjectItem(p, "text");
        if (cJSON_IsString(t)) strncat(out, t->valuestring, n - strlen(out) - 1);
        else (*n_img)++;
    }
}

static const uint8_t PNG[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 0};

TEST(detection_prompt)
{
    const char *t0[] = {"A", " red", "\n", " circle"}, *t1[] = {"Two", " squares"};
    vlmn_dexample ex[2] = {{.n_text = 4, .text_tokens = t0, .png = PNG, .png_len = sizeof PNG},
                           {.n_text = 2, .text_tokens = t1}};
    vlmn_xprompt_opts o;
    vlmn_xprompt_opts_default(&o);
    o.model = "m";
    o.temperature = 0;
    char *body = NULL;
    CHECK(vlmn_dscore_body(VLMN_DS_DETECTION, VLMN_DMODE_JSON, &o, " red things", ex, 2, &body) == VLMN_OK);
    cJSON *root = cJSON_Parse(body);
    CHECK(root != NULL);
    char txt[4096];
    int ni;
    msg_all(user_msg(root), txt, sizeof txt, &ni);
    CHECK_EQ_STR(txt, "Neuron explanation: the main thing this neuron does is find red things.\n\nExamples:\n"
                      "Example 0: A red\\n circle\nExample 1: Two squares\n");
    CHECK_EQ_INT(ni, 1);
    cJSON *rf = cJSON_GetObjectItem(root, "response_format");
    CHECK(rf && !strcmp(cJSON_GetObjectItem(rf, "type")->valuestring, "json_schema"));
    CHECK(!cJSON_GetObjectItem(root, "logprobs"));
    msg_all(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "messages"), 0), txt, sizeof txt, &ni);
    CHECK(strstr(txt, "whether the neuron fires on it") && strstr(txt, "{\"answers\""));
    cJSON_Delete(root);
    vlmn_free(body);

    /* fuzzing: highlights, no picture even when given; logprob mode asks for top_logprobs */
    uint8_t hl[4] = {0, 1, 0, 1};
    ex[0].highlight = hl;
    CHECK(vlmn_dscore_body(VLMN_DS_FUZZING, VLMN_DMODE_LOGPROB, &o, " red things", ex, 1, &body) == VLMN_OK);
    root = cJSON_Parse(body);
    msg_all(user_msg(root), txt, sizeof txt, &ni);
    CHECK(strstr(txt, "Example 0: A <<red>>\\n <<circle>>\n") != NULL);
    CHECK_EQ_INT(ni, 0);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(root, "logprobs")));
    CHECK_EQ_INT(cJSON_GetObjectItem(root, "top_logprobs")->valueint, 5);
    CHECK(!cJSON_GetObjectItem(root, "response_format"));
    cJSON_Delete(root);
    vlmn_free(body);

    /* plain: neither schema nor logprobs, the list asked for in the system prompt */
    CHECK(vlmn_dscore_body(VLMN_DS_DETECTION, VLMN_DMODE_PLAIN, &o, " red things", ex, 2, &body) == VLMN_OK);
    root = cJSON_Parse(body);
    CHECK(!cJSON_GetObjectItem(root, "response_format") && !cJSON_GetObjectItem(root, "logprobs"));
    msg_all(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "messages"), 0), txt, sizeof txt, &ni);
    CHECK(strstr(txt, "JSON list of integers only") != NULL);
    cJSON_Delete(root);
    vlmn_free(body);
}

static const char *reply_of(const char *content, char *buf, size_t n)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *c = cJSON_AddArrayToObject(r, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(c, c0);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(c0, "message"), "content", content);
    char *s = cJSON_PrintUnformatted(r);
    snprintf(buf, n, "%s", s);
    cJSON_free(s);
    cJSON_Delete(r);
    return buf;
}

TEST(parse_answers)
{
    char buf[4096];
    int a[4];
    double p[4];
    bool hp;
    const char *r = reply_of("{\"answers\": [1, 0, true, 0]}", buf, sizeof buf);
    CHECK(vlmn_dscore_parse(VLMN_DMODE_JSON, r, strlen(r), 4, a, p, &hp) == VLMN_OK);
    CHECK(a[0] == 1 && a[1] == 0 && a[2] == 1 && a[3] == 0 && !hp && p[2] == 1.0);
    r = reply_of("Sure: ```[0, 1, 1, 0]```", buf, sizeof buf);
    CHECK(vlmn_dscore_parse(VLMN_DMODE_JSON, r, strlen(r), 4, a, p, &hp) == VLMN_OK);
    CHECK(a[0] == 0 && a[1] == 1 && a[3] == 0);
    r = reply_of("[1, 0, 1]", buf, sizeof buf);
    CHECK(vlmn_dscore_parse(VLMN_DMODE_JSON, r, strlen(r), 4, a, p, &hp) == VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "3 answers for 4 examples") != NULL);
    r = reply_of("[1, 0, 2, 0]", buf, sizeof buf);
    CHECK(vlmn_dscore_parse(VLMN_DMODE_JSON, r, strlen(r), 4, a, p, &hp) == VLMN_E_FORMAT);
    r = reply_of("no idea", buf, sizeof buf);
    CHECK(vlmn_dscore_parse(VLMN_DMODE_JSON, r, strlen(r), 4, a, p, &hp) == VLMN_E_FORMAT);
    CHECK(vlmn_dscore_parse(VLMN_DMODE_JSON, "{\"x\":1}", 7, 4, a, p, &hp) == VLMN_E_FORMAT);
}

TEST(parse_logprobs)
{
    /* "[1, 0]": P(1) = e^-0.2 / (e^-0.2 + e^-2) at the first slot, e^-3 / (e^-3 + e^-0.1) at the second */
    const char *r = "{\"choices\":[{\"message\":{\"content\":\"[1, 0]\"},\"logprobs\":{\"content\":["
                    "{\"token\":\"[\",\"logprob\":0,\"top_logprobs\":[]},"
                    "{\"token\":\"1\",\"logprob\":-0.2,\"top_logprobs\":[{\"token\":\"1\",\"logprob\":-0.2},"
                    "{\"token\":\"0\",\"logprob\":-2},{\"token\":\"x\",\"logprob\":-3}]},"
                    "{\"token\":\", \",\"logprob\":0,\"top_logprobs\":[]},"
                    "{\"token\":\"0\",\"logprob\":-0.1,\"top_logprobs\":[{\"token\":\"0\",\"logprob\":-0.1},"
                    "{\"token\":\" 1\",\"logprob\":-3}]},"
                    "{\"token\":\"]\",\"logprob\":0,\"top_logprobs\":[]}]}}]}";
    int a[2];
    double p[2];
    bool hp;
    CHECK(vlmn_dscore_parse(VLMN_DMODE_LOGPROB, r, strlen(r), 2, a, p, &hp) == VLMN_OK);
    CHECK(hp && a[0] == 1 && a[1] == 0);
    CHECK_NEAR(p[0], exp(-0.2) / (exp(-0.2) + exp(-2)), 1e-12);
    CHECK_NEAR(p[1], exp(-3) / (exp(-3) + exp(-0.1)), 1e-12);
    /* no logprobs in the reply: the 0/1 answers */
    char buf[512];
    const char *r2 = reply_of("[1, 0]", buf, sizeof buf);
    CHECK(vlmn_dscore_parse(VLMN_DMODE_LOGPROB, r2, strlen(r2), 2, a, p, &hp) == VLMN_OK);
    CHECK(!hp && p[0] == 1 && p[1] == 0);
}

TEST(fuzz_highlights)
{
    float acts[] = {0.1f, 4, -1, 2, 1.99f, 0};
    uint8_t hl[6], fz[6];
    CHECK_EQ_INT(vlmn_fuzz_active(acts, 6, 0.5, hl), 2);
    CHECK(hl[1] && hl[3] && !hl[4] && !hl[0]);
    float none[] = {0, -1, 0};
    CHECK_EQ_INT(vlmn_fuzz_active(none, 3, 0.5, hl), 0);
    vlmn_fuzz_active(acts, 6, 0.5, hl);
    uint64_t rng = 7;
    for (int rep = 0; rep < 50; rep++) {
        CHECK_EQ_INT(vlmn_fuzz_random(hl, 6, 2, &rng, fz), 2);
        int c = 0;
        for (int i = 0; i < 6; i++) {
            c += fz[i];
            CHECK(!(fz[i] && hl[i])); /* never a truly active token */
        }
        CHECK_EQ_INT(c, 2);
    }
    CHECK_EQ_INT(vlmn_fuzz_random(hl, 6, 10, &rng, fz), 4); /* only 4 inactive */
    uint8_t all[2] = {1, 1};
    CHECK_EQ_INT(vlmn_fuzz_random(all, 2, 1, &rng, fz), 0);
}

/* A run made before the scorers: its scores table gets the new columns, rows kept. */
TEST(scores_table_upgraded_in_place)
{
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db,
                       "CREATE TABLE scores (layer INTEGER NOT NULL, neuron INTEGER NOT NULL, sampling TEXT NOT NULL,"
                       " explainer TEXT NOT NULL, images TEXT NOT NULL, simulator TEXT NOT NULL, scorer TEXT NOT NULL,"
                       " kind TEXT NOT NULL, score REAL, score_visual REAL, score_text REAL, n_visual INTEGER NOT NULL,"
                       " n_text INTEGER NOT NULL, n_mismatch INTEGER NOT NULL, note TEXT, created TEXT NOT NULL,"
                       " PRIMARY KEY (layer, neuron, sampling, explainer, images, simulator, scorer)) WITHOUT ROWID;"
                       "INSERT INTO scores VALUES (1,2,'top','e','none','s','pearson','text',0.5,NULL,0.5,0,9,0,"
                       "NULL,'t');",
                       NULL, NULL, NULL) == SQLITE_OK);
    CHECK(vlmn_xdb_init(db) == VLMN_OK);
    CHECK(vlmn_xdb_init(db) == VLMN_OK); /* idempotent */
    sqlite3_stmt *q = NULL;
    CHECK(sqlite3_prepare_v2(db, "SELECT score, accuracy, n_pos, n_neg, detail FROM scores", -1, &q, NULL) ==
          SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_NEAR(sqlite3_column_double(q, 0), 0.5, 0);
    CHECK(sqlite3_column_type(q, 1) == SQLITE_NULL && sqlite3_column_type(q, 4) == SQLITE_NULL);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

TEST_MAIN()
