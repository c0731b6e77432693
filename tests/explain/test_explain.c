/* Explain module: Bills' normalisation, the Fig. 10 / Fig. 11 prompts against golden
 * text typed from the paper and neuron-explainer (not produced by the code), reply
 * alignment (mismatches counted, never shifted), logprob expectation, Pearson against
 * the float64 reference (tests/reference/pearson_ref.py) to 1e-12, A.3 scoring rules. */
#include "test.h"
#include "vlmn/explain.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <math.h>

static const char GOLD_EXPLAIN_SYSTEM[] =
    "We are studying neurons in a neural network. Each neuron looks for some particular thing in an image and a "
    "short document, which includes a picture and text tokens. Look at the parts of the document the neuron "
    "activates for and summarize in a single sentence what the neuron is looking for. Don't list examples of "
    "words.\n\nThe activation format is token<tab>activation. Activation values range from 0 to 10. A neuron "
    "finding what it's looking for is represented by a non-zero activation value. The higher the activation "
    "value, the stronger the match.";

static const char GOLD_SIM_SYSTEM[] =
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in an image and a "
    "short document. Look at summary of what the neuron does, and try to predict how it will fire on each "
    "token.\n\nThe activation format is token<tab>activation, activations go from 0 to 10, \"unknown\" indicates an "
    "unknown activation. Most activations will be 0.\n\nPlease extract tokens and unknowns based on the string input "
    "(in the format of token\\tunknown\\n). Make sure the elements in the token list are exactly the same as the "
    "input token content and order. Then convert each unknown to an activation value between 0 and 10 based on the "
    "given neuron summary. Make sure do not miss text tokens.\n\nAnswer with a JSON object {\"tokens\": [{\"token\": "
    "..., \"activation\": ...}, ...]}, one entry per input token.";

static const char *EX_JSON = "{\"examples\":[{\"explanation\":\"colour words\",\"tokens\":[\"A\",\" red\",\" car\"],"
                             "\"activations\":[0,10,1]}]}";

static const char *msg_text(cJSON *msgs, int i, const char *role)
{
    cJSON *m = cJSON_GetArrayItem(msgs, i);
    if (!m || strcmp(cJSON_GetObjectItem(m, "role")->valuestring, role)) return "(wrong role)";
    cJSON *c = cJSON_GetObjectItem(m, "content");
    return cJSON_IsString(c) ? c->valuestring : "(not a string)";
}

TEST(norm_as_bills)
{
    CHECK_EQ_INT(vlmn_norm_act(-3, 4), 0);
    CHECK_EQ_INT(vlmn_norm_act(0, 4), 0);
    CHECK_EQ_INT(vlmn_norm_act(4, 4), 10);
    CHECK_EQ_INT(vlmn_norm_act(5, 4), 10);     /* min(10, ...) */
    CHECK_EQ_INT(vlmn_norm_act(1.9, 4), 4);    /* floor(4.75) */
    CHECK_EQ_INT(vlmn_norm_act(3.999, 4), 9);  /* floor, not round */
    CHECK_EQ_INT(vlmn_norm_act(1, 0), 0);
    CHECK_EQ_INT(vlmn_norm_act(1, -2), 0);
    CHECK_EQ_INT(vlmn_norm_act(NAN, 4), 0);
}

TEST(examples_default_and_bad)
{
    vlmn_xexamples e;
    CHECK(vlmn_xexamples_default(&e) == VLMN_OK);
    CHECK_EQ_INT(e.n, 8); /* M = 8 as the paper */
    for (int i = 0; i < e.n; i++) CHECK(e.ex[i].n_text > 0 && e.ex[i].explanation[0]);
    vlmn_xexamples_free(&e);
    const char *bad[] = {"", "{}", "{\"examples\":[]}", "{\"examples\":[{\"explanation\":\"x\",\"tokens\":[\"a\"],"
                         "\"activations\":[11]}]}",
                         "{\"examples\":[{\"explanation\":\"x\",\"tokens\":[\"a\"],\"activations\":[1,2]}]}",
                         "{\"examples\":[{\"explanation\":\"x\",\"tokens\":[\"a\"],\"activations\":[1.5]}]}",
                         "{\"examples\":[{\"explanation\":\"x\",\"tokens\":[\"a\"],\"activations\":[1],\"image\":\"Zm9v\"}]}"};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(bad); i++) {
        CHECK(vlmn_xexamples_parse(bad[i], strlen(bad[i]), "t.json", &e) != VLMN_OK);
        CHECK(strstr(vlmn_errmsg(), "t.json") != NULL);
    }
}

TEST(golden_explainer_prompt_text_neuron)
{
    vlmn_xexamples ex;
    CHECK(vlmn_xexamples_parse(EX_JSON, strlen(EX_JSON), "ex", &ex) == VLMN_OK);
    const char *toks[] = {"The", " blue", " sky"};
    float acts[] = {-0.5f, 4.0f, 1.9f};
    vlmn_xsample s = {.sample_index = 3, .n_text = 3, .text_tokens = toks, .text_acts = acts};
    vlmn_xprompt_opts o;
    vlmn_xprompt_opts_default(&o);
    o.model = "gpt-4o";
    char *body = NULL;
    CHECK(vlmn_explain_body(VLMN_XK_TEXT, &ex, &s, 1, 4.0, &o, &body) == VLMN_OK);
    cJSON *r = cJSON_Parse(body);
    CHECK(r != NULL);
    cJSON *msgs = cJSON_GetObjectItem(r, "messages");
    CHECK_EQ_INT(cJSON_GetArraySize(msgs), 4);
    CHECK_EQ_STR(msg_text(msgs, 0, "system"), GOLD_EXPLAIN_SYSTEM);
    CHECK_EQ_STR(msg_text(msgs, 1, "user"), "\n\nNeuron 1\nNeuron 1 sample 1:\n<start>\nA\t0\n red\t10\n car\t1\n<end>\n"
                                            "\nExplanation of neuron 1 behavior: the main thing this neuron does is find");
    CHECK_EQ_STR(msg_text(msgs, 2, "assistant"), " colour words.");
    CHECK_EQ_STR(msg_text(msgs, 3, "user"),
                 "\n\nNeuron 2\nNeuron 2 sample 1:\n<start>\nThe\t0\n blue\t10\n sky\t4\n<end>\n"
                 "\nExplanation of neuron 2 behavior: the main thing this neuron does is find");
    CHECK_EQ_STR(cJSON_GetObjectItem(r, "model")->valuestring, "gpt-4o");
    CHECK(cJSON_GetObjectItem(r, "temperature")->valuedouble == 1.0);
    CHECK_EQ_INT(cJSON_GetObjectItem(r, "max_tokens")->valueint, 60);
    cJSON_Delete(r);
    vlmn_free(body);
    vlmn_xexamples_free(&ex);
}

TEST(explainer_prompt_visual_has_images_not_lines)
{
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3};
    const char *toks[] = {"a"};
    float acts[] = {1};
    vlmn_xsample s[2] = {{.n_text = 1, .text_tokens = toks, .text_acts = acts, .png = png, .png_len = sizeof png},
                         {.n_text = 1, .text_tokens = toks, .text_acts = acts, .png = png, .png_len = sizeof png}};
    vlmn_xprompt_opts o;
    vlmn_xprompt_opts_default(&o);
    o.model = "m";
    char *body = NULL;
    CHECK(vlmn_explain_body(VLMN_XK_VISUAL, NULL, s, 2, 1.0, &o, &body) == VLMN_OK);
    cJSON *r = cJSON_Parse(body);
    cJSON *msgs = cJSON_GetObjectItem(r, "messages");
    CHECK_EQ_INT(cJSON_GetArraySize(msgs), 2);
    CHECK(strstr(msg_text(msgs, 0, "system"), "activation-modulated") != NULL);
    cJSON *c = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content");
    CHECK(cJSON_IsArray(c));
    int n_img = 0;
    cJSON *p;
    cJSON_ArrayForEach(p, c)
    {
        if (!strcmp(cJSON_GetObjectItem(p, "type")->valuestring, "image_url")) n_img++;
        else CHECK(!strstr(cJSON_GetObjectItem(p, "text")->valuestring, "<start>"));
    }
    CHECK_EQ_INT(n_img, 2);
    CHECK_EQ_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(c, 0), "text")->valuestring, "\n\nNeuron 1\nNeuron 1 sample 1:\n");
    cJSON_Delete(r);
    vlmn_free(body);
    /* multi-modal: both */
    CHECK(vlmn_explain_body(VLMN_XK_MULTIMODAL, NULL, s, 1, 1.0, &o, &body) == VLMN_OK);
    CHECK(strstr(body, "image_url") && strstr(body, "<start>\\na\\t10\\n<end>"));
    vlmn_free(body);
}

TEST(golden_simulator_prompt_json)
{
    vlmn_xexamples ex;
    CHECK(vlmn_xexamples_parse(EX_JSON, strlen(EX_JSON), "ex", &ex) == VLMN_OK);
    const char *toks[] = {"The", " blue", " sky"};
    float acts[] = {0, 4, 1};
    vlmn_xsample s = {.n_text = 3, .text_tokens = toks, .text_acts = acts};
    vlmn_xprompt_opts o;
    vlmn_xprompt_opts_default(&o);
    o.model = "gpt-4o";
    o.temperature = 0;
    char *body = NULL;
    CHECK(vlmn_textsim_body(VLMN_TEXTSIM_JSON, &ex, &o, VLMN_XK_TEXT, "blue things", &s, &body) == VLMN_OK);
    cJSON *r = cJSON_Parse(body);
    cJSON *msgs = cJSON_GetObjectItem(r, "messages");
    CHECK_EQ_INT(cJSON_GetArraySize(msgs), 4);
    CHECK_EQ_STR(msg_text(msgs, 0, "system"), GOLD_SIM_SYSTEM);
    CHECK_EQ_STR(msg_text(msgs, 1, "user"), "\n\nNeuron 1\nExplanation of neuron 1 behavior: the main thing this neuron "
                                            "does is find colour words.\n<start>\nA\tunknown\n red\tunknown\n car\tunknown\n<end>\n");
    CHECK_EQ_STR(msg_text(msgs, 2, "assistant"), "{\"tokens\":[{\"token\":\"A\",\"activation\":0},{\"token\":\" red\","
                                                 "\"activation\":10},{\"token\":\" car\",\"activation\":1}]}");
    CHECK_EQ_STR(msg_text(msgs, 3, "user"), "\n\nNeuron 2\nExplanation of neuron 2 behavior: the main thing this neuron "
                                            "does is find blue things.\n<start>\nThe\tunknown\n blue\tunknown\n sky\tunknown\n<end>\n");
    cJSON *js = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "response_format"), "json_schema");
    CHECK_EQ_STR(cJSON_GetObjectItem(js, "name")->valuestring, "simulation");
    CHECK(!cJSON_GetObjectItem(r, "logprobs"));
    cJSON_Delete(r);
    vlmn_free(body);
    CHECK(vlmn_textsim_body(VLMN_TEXTSIM_LOGPROB, &ex, &o, VLMN_XK_TEXT, "blue things", &s, &body) == VLMN_OK);
    r = cJSON_Parse(body);
    msgs = cJSON_GetObjectItem(r, "messages");
    CHECK_EQ_STR(msg_text(msgs, 2, "assistant"), "<start>\nA\t0\n red\t10\n car\t1\n<end>\n");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r, "logprobs")));
    CHECK_EQ_INT(cJSON_GetObjectItem(r, "top_logprobs")->valueint, 15);
    cJSON_Delete(r);
    vlmn_free(body);
    vlmn_xexamples_free(&ex);
}

static char *wrap(const char *content)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *ch = cJSON_AddArrayToObject(r, "choices");
    cJSON *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON *m = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(m, "content", content);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

TEST(json_alignment_counts_mismatches)
{
    const char *toks[] = {"The", " blue", " sky", " is"};
    vlmn_xsample s = {.n_text = 4, .text_tokens = toks};
    float sim[4];
    int mis = -1;
    char *b = wrap("{\"tokens\":[{\"token\":\"The\",\"activation\":0},{\"token\":\"blue\",\"activation\":12},"
                   "{\"token\":\" sky\",\"activation\":3},{\"token\":\" is\",\"activation\":1}]}");
    CHECK(vlmn_textsim_parse_json(&s, b, strlen(b), sim, &mis) == VLMN_OK);
    CHECK_EQ_INT(mis, 0);
    CHECK(sim[0] == 0 && sim[1] == 10 && sim[2] == 3 && sim[3] == 1); /* 12 clamped; "blue" == " blue" trimmed */
    vlmn_free(b);
    /* a dropped token: positions after it do not match and are not shifted */
    b = wrap("```json\n{\"tokens\":[{\"token\":\"The\",\"activation\":1},{\"token\":\" sky\",\"activation\":5},"
             "{\"token\":\" is\",\"activation\":2}]}\n```");
    CHECK(vlmn_textsim_parse_json(&s, b, strlen(b), sim, &mis) == VLMN_OK);
    CHECK_EQ_INT(mis, 3);
    CHECK(sim[0] == 1 && isnan(sim[1]) && isnan(sim[2]) && isnan(sim[3]));
    vlmn_free(b);
    /* an extra token counts too */
    b = wrap("{\"tokens\":[{\"token\":\"The\",\"activation\":1},{\"token\":\" blue\",\"activation\":1},{\"token\":\" sky\","
             "\"activation\":1},{\"token\":\" is\",\"activation\":1},{\"token\":\".\",\"activation\":1}]}");
    CHECK(vlmn_textsim_parse_json(&s, b, strlen(b), sim, &mis) == VLMN_OK);
    CHECK_EQ_INT(mis, 1);
    vlmn_free(b);
    b = wrap("no json here");
    CHECK(vlmn_textsim_parse_json(&s, b, strlen(b), sim, &mis) == VLMN_E_FORMAT);
    vlmn_free(b);
}

TEST(logprob_expected_value)
{
    const char *toks[] = {"a", " b"};
    vlmn_xsample s = {.n_text = 2, .text_tokens = toks};
    /* "a\t" then slot 3 (p 0.5) / 5 (p 0.25) / "x" (ignored) / 9 (p 0.25); "\n b\t" then slot 0 only */
    const char *reply =
        "{\"choices\":[{\"message\":{\"content\":\"a\\t3\\n b\\t0\\n\"},\"logprobs\":{\"content\":["
        "{\"token\":\"<start>\\n\",\"logprob\":0,\"top_logprobs\":[]},"
        "{\"token\":\"a\",\"logprob\":0,\"top_logprobs\":[]},{\"token\":\"\\t\",\"logprob\":0,\"top_logprobs\":[]},"
        "{\"token\":\"3\",\"logprob\":-0.6931471805599453,\"top_logprobs\":[{\"token\":\"3\",\"logprob\":-0.6931471805599453},"
        "{\"token\":\"5\",\"logprob\":-1.3862943611198906},{\"token\":\"x\",\"logprob\":-2},{\"token\":\"9\",\"logprob\":"
        "-1.3862943611198906}]},"
        "{\"token\":\"\\n\",\"logprob\":0,\"top_logprobs\":[]},{\"token\":\" b\",\"logprob\":0,\"top_logprobs\":[]},"
        "{\"token\":\"\\t\",\"logprob\":0,\"top_logprobs\":[]},{\"token\":\"0\",\"logprob\":0,\"top_logprobs\":"
        "[{\"token\":\"0\",\"logprob\":0}]},{\"token\":\"\\n<end>\",\"logprob\":0,\"top_logprobs\":[]}]}}]}";
    float sim[2];
    int mis = -1;
    CHECK(vlmn_textsim_parse_logprob(&s, reply, strlen(reply), sim, &mis) == VLMN_OK);
    CHECK_EQ_INT(mis, 0);
    CHECK_NEAR(sim[0], 0.5 * 3 + 0.25 * 5 + 0.25 * 9, 1e-6);
    CHECK_NEAR(sim[1], 0, 1e-6);
    const char *nolp = "{\"choices\":[{\"message\":{\"content\":\"a\\t3\"}}]}";
    CHECK(vlmn_textsim_parse_logprob(&s, nolp, strlen(nolp), sim, &mis) == VLMN_E_FORMAT);
}

TEST(pearson_matches_float64_reference)
{
    char *txt = test_read_file(test_path(test_data_dir(), "explain/pearson.txt"), NULL);
    CHECK(txt != NULL);
    if (!txt) return;
    char *p = txt, *end;
    long n_cases = strtol(p, &end, 10);
    p = end;
    CHECK(n_cases >= 10);
    for (long c = 0; c < n_cases; c++) {
        long n = strtol(p, &end, 10);
        p = end;
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        for (long i = 0; i < n; i++) x[i] = strtof(p, &end), p = end;
        for (long i = 0; i < n; i++) y[i] = strtof(p, &end), p = end;
        double want = strtod(p, &end);
        p = end;
        int used = 0;
        double r = vlmn_pearson(x, y, (int)n, &used);
        CHECK_EQ_INT(used, n);
        CHECK_MSG(fabs(r - want) <= 1e-12, "case %ld (n=%ld): %.17g vs %.17g", c, n, r, want);
        free(x);
        free(y);
    }
    free(txt);
    float a[] = {1, 1, 1}, b[] = {1, 2, 3}, nan3[] = {NAN, 2, 3};
    CHECK(isnan(vlmn_pearson(a, b, 3, NULL)));
    CHECK(isnan(vlmn_pearson(b, b, 1, NULL)));
    int used;
    CHECK_NEAR(vlmn_pearson(nan3, b, 3, &used), 1.0, 1e-15);
    CHECK_EQ_INT(used, 2);
}

TEST(a3_score_rules)
{
    float rv[] = {0, 1, 2, 3}, sv[] = {0, 1, 2, 4}, rt[] = {0, 5, 0, 1}, st[] = {0, 9, 1, 0}, flat[] = {2, 2, 2, 2};
    vlmn_xscore s;
    vlmn_score_neuron(VLMN_XK_VISUAL, rv, sv, 4, rt, st, 4, &s);
    CHECK_NEAR(s.score, vlmn_pearson(rv, sv, 4, NULL), 1e-15);
    CHECK(isnan(s.text) && s.n_visual == 4);
    vlmn_score_neuron(VLMN_XK_TEXT, rv, sv, 4, rt, st, 4, &s);
    CHECK_NEAR(s.score, vlmn_pearson(rt, st, 4, NULL), 1e-15);
    vlmn_score_neuron(VLMN_XK_MULTIMODAL, rv, sv, 4, rt, st, 4, &s);
    CHECK_NEAR(s.score, 0.5 * (vlmn_pearson(rv, sv, 4, NULL) + vlmn_pearson(rt, st, 4, NULL)), 1e-15);
    /* constant simulation: 0; constant real: undefined */
    vlmn_score_neuron(VLMN_XK_TEXT, NULL, NULL, 0, rt, flat, 4, &s);
    CHECK(s.score == 0.0);
    vlmn_score_neuron(VLMN_XK_TEXT, NULL, NULL, 0, flat, st, 4, &s);
    CHECK(isnan(s.score) && s.note && strstr(s.note, "constant real"));
    /* multi-modal with its visual part missing: undefined, said why */
    vlmn_score_neuron(VLMN_XK_MULTIMODAL, NULL, NULL, 0, rt, st, 4, &s);
    CHECK(isnan(s.score) && !isnan(s.text) && s.note && strstr(s.note, "no simulated visual"));
}

TEST(bootstrap_interval)
{
    double x[200];
    for (int i = 0; i < 200; i++) x[i] = (i % 10) * 0.1;
    double m, lo, hi;
    vlmn_bootstrap_mean(x, 200, 2000, 1, &m, &lo, &hi);
    CHECK_NEAR(m, 0.45, 1e-12);
    /* sd 0.2872, se 0.0203: the 95% interval is about +-0.04 */
    CHECK(lo < m && hi > m && lo > 0.40 && hi < 0.50);
    vlmn_bootstrap_mean(x, 1, 2000, 1, &m, &lo, &hi);
    CHECK(m == 0 && lo == 0 && hi == 0);
}

TEST_MAIN()
