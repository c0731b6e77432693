/* Tests for src/analysis/stats.c: Fig. 5 / 6 / 7 and Table 3 numbers on a hand-made
 * classification of 3 layers x 4 neurons whose expected values were worked out by hand
 * (see the comments), the text tables and the JSON object. */
#include "test.h"
#include "vlmn/analysis.h"
#include "core/alloc.h"

#include <cJSON.h>

/* (visual, text, multimodal, unknown) counts; den = sum (n_top), except the empty neuron. */
static const int counts[12][4] = {
    {10, 0, 0, 0}, /* L0 n0: visual, p_v 1.0 */
    {0, 9, 1, 0},  /* L0 n1: text */
    {3, 3, 2, 2},  /* L0 n2: visual/text tie -> text */
    {0, 0, 0, 10}, /* L0 n3: unknown, p_u 1.0 */
    {8, 0, 2, 0},  /* L1 n0: visual, p_v 0.8 (not > 0.8) */
    {0, 0, 9, 1},  /* L1 n1: multimodal */
    {5, 0, 0, 5},  /* L1 n2: visual/unknown tie -> unknown */
    {5, 0, 0, 0},  /* L1 n3: den 5, visual, p_v 1.0 */
    {1, 1, 1, 7},  /* L2 n0: unknown, p_u 0.7 */
    {0, 10, 0, 0}, /* L2 n1: text */
    {0, 0, 0, 0},  /* L2 n2: no samples -> p_u 1 */
    {2, 2, 6, 0},  /* L2 n3: multimodal */
};
static const int labels[12] = {0, 1, 1, 3, 0, 2, 3, 0, 3, 1, 3, 2};

static vlmn_classification *make(void)
{
    vlmn_classification *c = NULL;
    CHECK_EQ_INT(vlmn_classification_create(3, 4, &c), VLMN_OK);
    if (!c) return NULL;
    for (int i = 0; i < 12; i++) {
        vlmn_neuron_class *n = &c->neurons[i];
        int sum = 0;
        for (int t = 0; t < 4; t++) {
            n->count[t] = (uint16_t)counts[i][t];
            sum += counts[i][t];
        }
        n->n_top = (uint16_t)sum;
        n->den = (uint16_t)(sum ? sum : 1);
        if (!sum) n->count[VLMN_NT_UNKNOWN] = 1;
        n->label = (uint8_t)vlmn_classify_label(n->count);
        CHECK_EQ_INT(n->label, labels[i]);
        n->max_act = 1.0f + (float)i;
    }
    return c;
}

static const int64_t exp_hist[4][10] = {
    /* p_v: 0 x5, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0 x2 */
    {5, 1, 1, 1, 0, 1, 0, 0, 1, 2},
    /* p_t: 0 x7, 0.1, 0.2, 0.3, 0.9, 1.0 */
    {7, 1, 1, 1, 0, 0, 0, 0, 0, 2},
    /* p_m: 0 x6, 0.1 x2, 0.2 x2, 0.6, 0.9 */
    {6, 2, 2, 0, 0, 0, 1, 0, 0, 1},
    /* p_u: 0 x6, 0.1, 0.2, 0.5, 0.7, 1.0 x2 */
    {6, 1, 1, 0, 0, 1, 0, 1, 0, 2},
};
static const int64_t exp_above[4] = {2, 2, 1, 2};
static const int64_t exp_labels[4] = {3, 3, 2, 4};
/* top 25% = 3 neurons. visual: idx 0 (1.0), 7 (1.0, tie -> lower layer later), 4 (0.8);
 * text: 9, 1, 2; multimodal: 5 (0.9), 11 (0.6), 2 (0.2, ties with 4 -> lower layer);
 * unknown: 3, 10 (1.0), 8 (0.7). */
static const int64_t exp_layer[4][3] = {{1, 2, 0}, {2, 0, 1}, {1, 1, 1}, {1, 0, 2}};
static const double exp_min_p[4] = {0.8, 0.3, 0.2, 0.7};
static const int64_t exp_prune[4] = {2, 2, 3, 3}; /* p_u >= 0.9, 0.8, 0.7, 0.6 */
/* Neurons at the cut-off p: visual 0.8 {4}; text 0.3 {2}; multimodal 0.2 {2, 4} of which 2
 * selected; unknown 0.7 {8}. */
static const int64_t exp_tied[4] = {1, 1, 2, 1}, exp_tied_in[4] = {1, 1, 1, 1};

TEST(figures_match_hand_computation)
{
    vlmn_classification *c = make();
    if (!c) return;
    vlmn_stats *s = NULL;
    CHECK_EQ_INT(vlmn_stats_compute(c, 0.25, &s), VLMN_OK);
    if (s) {
        CHECK_EQ_INT(s->n_neurons, 12);
        for (int t = 0; t < 4; t++) {
            for (int k = 0; k < 10; k++) CHECK_MSG(s->hist[t][k] == exp_hist[t][k], "hist[%d][%d] = %lld", t, k,
                                                   (long long)s->hist[t][k]);
            CHECK_EQ_INT(s->above[t], exp_above[t]);
            CHECK_EQ_INT(s->label_count[t], exp_labels[t]);
            for (int l = 0; l < 3; l++) CHECK_EQ_INT(s->per_layer[t][l], exp_layer[t][l]);
            CHECK_NEAR(s->top_min_p[t], exp_min_p[t], 1e-12);
            CHECK_EQ_INT(s->prune_count[t], exp_prune[t]);
            CHECK_EQ_INT(s->top_tied[t], exp_tied[t]);
            CHECK_EQ_INT(s->top_tied_in[t], exp_tied_in[t]);
        }
        CHECK_EQ_INT(s->top_k, 3);
    }
    int64_t idx[12];
    CHECK_EQ_INT(vlmn_stats_rank(c, VLMN_NT_MULTIMODAL, 12, idx), VLMN_OK);
    static const int64_t exp_rank_m[12] = {5, 11, 2, 4, 1, 8, 0, 3, 6, 7, 9, 10};
    for (int i = 0; i < 12; i++) CHECK_EQ_INT(idx[i], exp_rank_m[i]);
    CHECK_EQ_INT(vlmn_stats_rank(c, 4, 1, idx), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_stats_rank(c, 0, 13, idx), VLMN_E_ARG);
    vlmn_stats_free(s);

    /* k rounds to nearest and is at least 1: 0.01 * 12 -> 1; 0.2 * 12 = 2.4 -> 2; 1 -> all. */
    CHECK_EQ_INT(vlmn_stats_compute(c, 0.01, &s), VLMN_OK);
    if (s) CHECK_EQ_INT(s->top_k, 1);
    vlmn_stats_free(s);
    CHECK_EQ_INT(vlmn_stats_compute(c, 0.2, &s), VLMN_OK);
    if (s) CHECK_EQ_INT(s->top_k, 2);
    vlmn_stats_free(s);
    CHECK_EQ_INT(vlmn_stats_compute(c, 1.0, &s), VLMN_OK);
    if (s) {
        CHECK_EQ_INT(s->top_k, 12);
        for (int t = 0; t < 4; t++)
            for (int l = 0; l < 3; l++) CHECK_EQ_INT(s->per_layer[t][l], 4);
    }
    vlmn_stats_free(s);
    s = (vlmn_stats *)1;
    CHECK_EQ_INT(vlmn_stats_compute(c, 0, &s), VLMN_E_ARG);
    CHECK(s == NULL);
    CHECK_EQ_INT(vlmn_stats_compute(c, 1.5, &s), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_stats_compute(c, NAN, &s), VLMN_E_ARG);
    vlmn_classification_free(c);
}

static char *print_to_string(int json, vlmn_stats *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    CHECK_EQ_INT(json ? vlmn_stats_print_json(f, s) : vlmn_stats_print_text(f, s), VLMN_OK);
    fclose(f);
    return buf;
}

TEST(json_is_valid_and_complete)
{
    vlmn_classification *c = make();
    vlmn_stats *s = NULL;
    if (!c || vlmn_stats_compute(c, 0.25, &s) != VLMN_OK) {
        CHECK(0);
        vlmn_classification_free(c);
        return;
    }
    char *txt = print_to_string(1, s);
    CHECK(txt && strchr(txt, '\n') == txt + strlen(txt) - 1); /* one line */
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    CHECK(j != NULL);
    if (j) {
        static const char *names[4] = {"visual", "text", "multimodal", "unknown"};
        CHECK_EQ_INT(cJSON_GetObjectItem(j, "n_neurons")->valuedouble, 12);
        cJSON *p = cJSON_GetObjectItem(j, "params");
        CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p, "normalize")), "floor");
        CHECK_EQ_INT(cJSON_GetObjectItem(p, "n_v")->valuedouble, 4);
        cJSON *h = cJSON_GetObjectItem(j, "histogram");
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(h, "bin_edges")), 11);
        for (int t = 0; t < 4; t++) {
            cJSON *a = cJSON_GetObjectItem(h, names[t]);
            CHECK_EQ_INT(cJSON_GetArraySize(a), 10);
            for (int k = 0; k < 10; k++) CHECK_EQ_INT(cJSON_GetArrayItem(a, k)->valuedouble, exp_hist[t][k]);
            cJSON *lab = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "labels"), names[t]);
            CHECK_EQ_INT(cJSON_GetObjectItem(lab, "count")->valuedouble, exp_labels[t]);
            CHECK_NEAR(cJSON_GetObjectItem(lab, "share")->valuedouble, exp_labels[t] / 12.0, 1e-12);
            cJSON *ab = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "above"), names[t]);
            CHECK_EQ_INT(cJSON_GetObjectItem(ab, "count")->valuedouble, exp_above[t]);
            cJSON *pl = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "top"), "per_layer"), names[t]);
            CHECK_EQ_INT(cJSON_GetArraySize(pl), 3);
            for (int l = 0; l < 3; l++) CHECK_EQ_INT(cJSON_GetArrayItem(pl, l)->valuedouble, exp_layer[t][l]);
        }
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "top"), "k")->valuedouble, 3);
        cJSON *tied = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "top"), "tied");
        CHECK_EQ_INT(cJSON_GetObjectItem(tied, "multimodal")->valuedouble, 2);
        cJSON *pr = cJSON_GetObjectItem(j, "prune_unknown");
        CHECK_EQ_INT(cJSON_GetArraySize(pr), 4);
        CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetArrayItem(pr, 2), "tau")->valuedouble, 0.7, 1e-12);
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetArrayItem(pr, 2), "count")->valuedouble, 3);
        cJSON_Delete(j);
    }
    free(txt);

    txt = print_to_string(0, s);
    CHECK(txt != NULL);
    if (txt) {
        CHECK(strstr(txt, "Figure 5") && strstr(txt, "Figure 6") && strstr(txt, "Figure 7"));
        /* Last bin row: 2 2 1 2; labels; layer 2 row of Fig. 7: 0 1 1 2. */
        CHECK(strstr(txt, "[0.9, 1.0]             2            2            1            2\n") != NULL);
        CHECK(strstr(txt, "unknown                4    33.3%\n") != NULL);
        CHECK(strstr(txt, "\n2                      0            1            1            2\n") != NULL);
        CHECK(strstr(txt, "p > 0.8            16.7%        16.7%         8.3%        16.7%\n") != NULL);
        if (!strstr(txt, "[0.9, 1.0]")) fputs(txt, stderr);
    }
    free(txt);
    vlmn_stats_free(s);
    vlmn_classification_free(c);
}

TEST(allocation_failures_are_reported)
{
    vlmn_classification *c = make();
    if (!c) return;
    int failures = 0;
    for (long n = 1; n <= 12; n++) {
        vlmn_stats *s = NULL;
        vlmn_alloc_fail_after(n);
        vlmn_status st = vlmn_stats_compute(c, 0.25, &s);
        vlmn_alloc_fail_after(0);
        if (st != VLMN_OK) {
            failures++;
            CHECK_EQ_INT(st, VLMN_E_NOMEM);
            CHECK(s == NULL);
        } else {
            CHECK(s != NULL && s->top_k == 3);
        }
        vlmn_stats_free(s);
        vlmn_classification *c2 = NULL;
        vlmn_alloc_fail_after(n);
        st = vlmn_classification_create(3, 4, &c2);
        vlmn_alloc_fail_after(0);
        CHECK(st == VLMN_OK ? c2 != NULL : c2 == NULL);
        vlmn_classification_free(c2);
    }
    CHECK(failures >= 6); /* 4 per-layer arrays, the rank index, and the sort buffer */
    vlmn_classification_free(c);
}

TEST_MAIN()
