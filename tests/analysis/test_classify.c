/* Tests for src/analysis classification: the classifier fed only the recorded top-N /
 * top-8 state must agree exactly with a direct computation over every token of every
 * top sample (written out here without the classifier), for several thresholds and
 * both normalisation modes; parameter checks, tie rule, database round trip. */
#include "test.h"
#include "vlmn/analysis.h"
#include "core/alloc.h"

#include <sqlite3.h>

/* ---- a small synthetic dataset with full activation arrays ---- */
enum { L = 3, F = 48, S = 70, TOPN = 20, MAXTOK = 40 };

struct dataset {
    int n_img[S], n_txt[S];
    float act[L][F][S][MAXTOK]; /* image tokens first, then text tokens */
    float max_act[L][F];        /* raw global max over every token (may be < 0) */
    int top[L][F][TOPN];        /* top-N sample indices (by sample max, ties lower index) */
    vlmn_top_entry state[L][F][TOPN];
};

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static double unif(void) { return rnd() / 4294967296.0; } /* [0, 1) */

static float gen_act(int style, int is_img, float scale)
{
    /* Styles: 0 visual-ish, 1 text-ish, 2 both, 3 quiet, 4 negative only, 5 values on the
     * exact grid scale*q/10 (floor boundaries), 6 mixed continuous. */
    double u = unif();
    switch (style) {
    case 0: return (float)(is_img ? scale * u : scale * 0.2 * u - 0.1);
    case 1: return (float)(is_img ? scale * 0.25 * u : scale * u);
    case 2: return (float)(scale * u);
    case 3: return (float)(scale * 0.15 * u - 0.05);
    case 4: return (float)(-0.01 - u);
    case 5: return (float)(scale * (double)(rnd() % 11) / 10.0);
    default: return (float)(scale * u * u * (rnd() % 3 ? 1 : -0.3));
    }
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static struct dataset *make_dataset(void)
{
    static const int img_counts[] = {0, 3, 5, 8, 16, 24};
    static const int txt_counts[] = {0, 1, 2, 3, 5, 12};
    struct dataset *d = calloc(1, sizeof *d);
    for (int s = 0; s < S; s++) {
        d->n_img[s] = img_counts[rnd() % 6];
        d->n_txt[s] = txt_counts[rnd() % 6];
        if (d->n_img[s] + d->n_txt[s] == 0) d->n_txt[s] = 1;
    }
    for (int l = 0; l < L; l++)
        for (int j = 0; j < F; j++) {
            int style = j % 7;
            float scale = (float)(0.5 + 4 * unif());
            float mx = -INFINITY, smax[S];
            for (int s = 0; s < S; s++) {
                smax[s] = -INFINITY;
                /* Sample-level variation so that top-N membership is not trivial. */
                float sscale = scale * (float)(0.3 + unif());
                int T = d->n_img[s] + d->n_txt[s];
                for (int k = 0; k < T; k++) {
                    float a = gen_act(style, k < d->n_img[s], style == 5 ? scale : sscale);
                    d->act[l][j][s][k] = a;
                    if (a > smax[s]) smax[s] = a;
                }
                if (smax[s] > mx) mx = smax[s];
            }
            d->max_act[l][j] = mx;
            /* Top-N by sample max, ties to the lower sample index (selection sort). */
            int used[S] = {0};
            for (int r = 0; r < TOPN; r++) {
                int best = -1;
                for (int s = 0; s < S; s++)
                    if (!used[s] && (best < 0 || smax[s] > smax[best])) best = s;
                used[best] = 1;
                d->top[l][j][r] = best;
                /* The recorded state: 8 largest per modality, -INFINITY padded. */
                vlmn_top_entry *e = &d->state[l][j][r];
                float img[MAXTOK], txt[MAXTOK];
                int ni = d->n_img[best], nt = d->n_txt[best];
                memcpy(img, d->act[l][j][best], (size_t)ni * sizeof(float));
                memcpy(txt, d->act[l][j][best] + ni, (size_t)nt * sizeof(float));
                qsort(img, (size_t)ni, sizeof(float), cmp_desc);
                qsort(txt, (size_t)nt, sizeof(float), cmp_desc);
                e->sample = (uint32_t)best;
                e->max_act = smax[best];
                for (int k = 0; k < VLMN_TOP_TOKENS; k++) {
                    e->img[k] = k < ni ? img[k] : -INFINITY;
                    e->txt[k] = k < nt ? txt[k] : -INFINITY;
                }
            }
        }
    return d;
}

/* Direct reference: normalise every token, count those above T, apply Table 1. */
static double ref_norm(float a, float m, int continuous)
{
    if (m <= 0) return 0;
    double x = a > 0 ? 10.0 * (double)a / (double)m : 0.0;
    if (continuous) return x;
    x = floor(x);
    return x < 10 ? x : 10;
}

static void ref_classify(const struct dataset *d, int l, int j, double tv, int nv, double tt, int nt,
                         int continuous, int count[4], int *label)
{
    memset(count, 0, 4 * sizeof(int));
    for (int r = 0; r < TOPN; r++) {
        int s = d->top[l][j][r], hv = 0, ht = 0;
        for (int k = 0; k < d->n_img[s]; k++)
            hv += ref_norm(d->act[l][j][s][k], d->max_act[l][j], continuous) > tv;
        for (int k = 0; k < d->n_txt[s]; k++)
            ht += ref_norm(d->act[l][j][s][d->n_img[s] + k], d->max_act[l][j], continuous) > tt;
        int va = hv > nv, ta = ht > nt;
        count[va && ta ? 2 : va ? 0 : ta ? 1 : 3]++;
    }
    /* Tie rule written independently: the most probable types, then the first of them
     * in the order unknown, multimodal, text, visual. */
    int mx = 0;
    for (int t = 0; t < 4; t++)
        if (count[t] > mx) mx = count[t];
    static const int pref[4] = {3, 2, 1, 0};
    for (int i = 0; i < 4; i++)
        if (count[pref[i]] == mx) {
            *label = pref[i];
            break;
        }
}

static struct dataset *g_data;
static float src_max(void *ctx, int l, int j) { return ((struct dataset *)ctx)->max_act[l][j]; }
static const vlmn_top_entry *src_top(void *ctx, int l, int j, int *n)
{
    *n = TOPN;
    return ((struct dataset *)ctx)->state[l][j];
}

TEST(classifier_matches_full_activation_reference)
{
    if (!g_data) g_data = make_dataset();
    struct dataset *d = g_data;
    vlmn_top_source src = {L, F, d, src_max, src_top};
    struct { double tv; int nv; double tt; int nt; } settings[] = {
        {2, 4, 3, 2},     /* paper defaults */
        {0, 0, 0, 0},     /* any positive token */
        {5, 7, 1.5, 1},   /* n at the limit, fractional T */
        {9, 1, 6.5, 3},
        {7.3, 2, 10, 0},  /* T = 10: nothing can exceed it */
    };
    int seen_types[2][4] = {{0}};
    int seen_labels[2][4] = {{0}};
    for (int mode = 0; mode < 2; mode++)
        for (size_t k = 0; k < VLMN_ARRAY_LEN(settings); k++) {
            vlmn_classify_params p = {settings[k].tv, settings[k].nv, settings[k].tt, settings[k].nt,
                                      mode ? VLMN_NORM_CONTINUOUS : VLMN_NORM_FLOOR};
            vlmn_classification *c = NULL;
            CHECK_EQ_INT(vlmn_classify_source(&src, &p, &c), VLMN_OK);
            if (!c) continue;
            int mismatches = 0;
            for (int l = 0; l < L; l++)
                for (int j = 0; j < F; j++) {
                    int cnt[4], label = -1;
                    ref_classify(d, l, j, p.t_v, p.n_v, p.t_t, p.n_t, mode, cnt, &label);
                    const vlmn_neuron_class *nc = &c->neurons[l * F + j];
                    int ok = nc->label == label && nc->n_top == TOPN && nc->den == TOPN;
                    for (int t = 0; t < 4; t++) {
                        ok = ok && nc->count[t] == cnt[t];
                        CHECK_NEAR(vlmn_neuron_p(nc, t), cnt[t] / (double)TOPN, 1e-15);
                        seen_types[mode][t] += cnt[t];
                    }
                    seen_labels[mode][label] += k == 0;
                    if (!ok && mismatches++ < 5)
                        fprintf(stderr, "  setting %zu mode %d neuron (%d,%d): ref %d/%d/%d/%d label %d, "
                                "got %d/%d/%d/%d label %d\n", k, mode, l, j, cnt[0], cnt[1], cnt[2], cnt[3],
                                label, nc->count[0], nc->count[1], nc->count[2], nc->count[3], nc->label);
                }
            CHECK_EQ_INT(mismatches, 0);
            vlmn_classification_free(c);
        }
    /* The dataset exercises every sample type and every label (default thresholds). */
    for (int mode = 0; mode < 2; mode++)
        for (int t = 0; t < 4; t++) {
            CHECK_MSG(seen_types[mode][t] > 0, "mode %d type %d never seen", mode, t);
            CHECK_MSG(seen_labels[mode][t] > 0, "mode %d label %d never seen", mode, t);
        }
}

TEST(floor_and_continuous_differ_somewhere)
{
    /* With T_v = 2, an activation of 0.29 * max is 2.9 continuous (> 2) but 2 floored. */
    vlmn_top_entry e;
    for (int k = 0; k < VLMN_TOP_TOKENS; k++) {
        e.img[k] = k < 5 ? 0.29f : -INFINITY;
        e.txt[k] = -INFINITY;
    }
    vlmn_classify_params p;
    vlmn_classify_defaults(&p);
    CHECK_EQ_INT(vlmn_classify_sample(&p, 1.0f, &e), VLMN_NT_UNKNOWN);
    p.norm = VLMN_NORM_CONTINUOUS;
    CHECK_EQ_INT(vlmn_classify_sample(&p, 1.0f, &e), VLMN_NT_VISUAL);
    /* "More than n_v = 4": 4 tokens at 0.5 * max are not enough. */
    e.img[4] = -INFINITY;
    for (int k = 0; k < 4; k++) e.img[k] = 0.5f;
    CHECK_EQ_INT(vlmn_classify_sample(&p, 1.0f, &e), VLMN_NT_UNKNOWN);
}

TEST(normalize_values)
{
    CHECK_NEAR(vlmn_normalize(1.0f, 2.0f, VLMN_NORM_FLOOR), 5, 0);
    CHECK_NEAR(vlmn_normalize(0.99f, 2.0f, VLMN_NORM_FLOOR), 4, 0);
    CHECK_NEAR(vlmn_normalize(0.99f, 2.0f, VLMN_NORM_CONTINUOUS), 4.95, 1e-6);
    CHECK_NEAR(vlmn_normalize(3.0f, 2.0f, VLMN_NORM_FLOOR), 10, 0); /* clamped */
    CHECK_NEAR(vlmn_normalize(-1.0f, 2.0f, VLMN_NORM_FLOOR), 0, 0);
    CHECK_NEAR(vlmn_normalize(-INFINITY, 2.0f, VLMN_NORM_CONTINUOUS), 0, 0);
    CHECK_NEAR(vlmn_normalize(NAN, 2.0f, VLMN_NORM_CONTINUOUS), 0, 0);
    CHECK_NEAR(vlmn_normalize(1.0f, 0.0f, VLMN_NORM_FLOOR), 0, 0);
    CHECK_NEAR(vlmn_normalize(1.0f, -1.0f, VLMN_NORM_CONTINUOUS), 0, 0);
}

TEST(params_check)
{
    vlmn_classify_params p;
    vlmn_classify_defaults(&p);
    CHECK(p.t_v == 2 && p.n_v == 4 && p.t_t == 3 && p.n_t == 2 && p.norm == VLMN_NORM_FLOOR);
    CHECK_EQ_INT(vlmn_classify_check(&p), VLMN_OK);
    p.n_v = 7;
    p.n_t = 7;
    CHECK_EQ_INT(vlmn_classify_check(&p), VLMN_OK);
    p.n_v = 8;
    CHECK_EQ_INT(vlmn_classify_check(&p), VLMN_E_ARG);
    CHECK(strstr(vlmn_errmsg(), "n_v = 8") != NULL);
    p.n_v = 4;
    p.n_t = 8;
    CHECK_EQ_INT(vlmn_classify_check(&p), VLMN_E_ARG);
    p.n_t = -1;
    CHECK_EQ_INT(vlmn_classify_check(&p), VLMN_E_ARG);
    p.n_t = 2;
    p.t_v = -0.5;
    CHECK_EQ_INT(vlmn_classify_check(&p), VLMN_E_ARG);
    p.t_v = NAN;
    CHECK_EQ_INT(vlmn_classify_check(&p), VLMN_E_ARG);
    p.t_v = 2;
    p.t_t = 10.5;
    CHECK_EQ_INT(vlmn_classify_check(&p), VLMN_E_ARG);
    /* The classifier refuses bad parameters too. */
    vlmn_top_source src = {1, 1, NULL, NULL, NULL};
    vlmn_classification *c = (vlmn_classification *)1;
    CHECK_EQ_INT(vlmn_classify_source(&src, &p, &c), VLMN_E_ARG);
    CHECK(c == NULL);
}

TEST(tie_rule_and_names)
{
    uint16_t c1[4] = {5, 5, 0, 0};
    CHECK_EQ_INT(vlmn_classify_label(c1), VLMN_NT_TEXT);
    uint16_t c2[4] = {5, 5, 5, 0};
    CHECK_EQ_INT(vlmn_classify_label(c2), VLMN_NT_MULTIMODAL);
    uint16_t c3[4] = {4, 1, 1, 4};
    CHECK_EQ_INT(vlmn_classify_label(c3), VLMN_NT_UNKNOWN);
    uint16_t c4[4] = {6, 1, 1, 4};
    CHECK_EQ_INT(vlmn_classify_label(c4), VLMN_NT_VISUAL);
    uint16_t c5[4] = {3, 3, 4, 0};
    CHECK_EQ_INT(vlmn_classify_label(c5), VLMN_NT_MULTIMODAL);
    for (int t = 0; t < 4; t++) CHECK_EQ_INT(vlmn_ntype_parse(vlmn_ntype_name(t)), t);
    CHECK(vlmn_ntype_name(4) == NULL);
    CHECK_EQ_INT(vlmn_ntype_parse("Visual"), -1);
    CHECK_EQ_INT(vlmn_norm_parse("floor"), VLMN_NORM_FLOOR);
    CHECK_EQ_INT(vlmn_norm_parse("continuous"), VLMN_NORM_CONTINUOUS);
    CHECK_EQ_INT(vlmn_norm_parse("round"), -1);
}

TEST(dead_and_empty_neurons_are_unknown)
{
    vlmn_classify_params p;
    vlmn_classify_defaults(&p);
    p.t_v = 0;
    p.n_v = 0;
    vlmn_top_entry e[3];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < VLMN_TOP_TOKENS; k++) e[i].img[k] = e[i].txt[k] = 5.0f;
    vlmn_neuron_class nc;
    vlmn_classify_neuron(&p, 0.0f, e, 3, &nc); /* max_act <= 0 */
    CHECK_EQ_INT(nc.label, VLMN_NT_UNKNOWN);
    CHECK_NEAR(vlmn_neuron_p(&nc, VLMN_NT_UNKNOWN), 1.0, 0);
    CHECK_EQ_INT(nc.n_top, 3);
    vlmn_classify_neuron(&p, -2.0f, e, 3, &nc);
    CHECK_NEAR(vlmn_neuron_p(&nc, VLMN_NT_UNKNOWN), 1.0, 0);
    vlmn_classify_neuron(&p, 5.0f, NULL, 0, &nc); /* no samples */
    CHECK_EQ_INT(nc.label, VLMN_NT_UNKNOWN);
    CHECK_EQ_INT(nc.n_top, 0);
    CHECK_NEAR(vlmn_neuron_p(&nc, VLMN_NT_UNKNOWN), 1.0, 0);
    vlmn_classify_neuron(&p, 5.0f, e, 3, &nc);
    CHECK_EQ_INT(nc.label, VLMN_NT_MULTIMODAL);
    CHECK_EQ_INT(nc.count[VLMN_NT_MULTIMODAL], 3);
}

static sqlite3 *open_db(const char *name)
{
    const char *path = test_path(test_tmp_dir(), name);
    remove(path);
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

TEST(database_round_trip_and_replace)
{
    if (!g_data) g_data = make_dataset();
    sqlite3 *db = open_db("test_classify.sqlite");
    CHECK(db != NULL);
    if (!db) return;
    vlmn_classification *c = NULL, *back = NULL;
    CHECK_EQ_INT(vlmn_classification_load(db, &back), VLMN_E_NOTFOUND);
    vlmn_top_source src = {L, F, g_data, src_max, src_top};
    vlmn_classify_params p = {5, 7, 1.5, 1, VLMN_NORM_CONTINUOUS};
    CHECK_EQ_INT(vlmn_classify_source(&src, &p, &c), VLMN_OK);
    /* An empty neuron (n_top = 0) survives the round trip as p_u = 1. */
    c->neurons[5].n_top = 0;
    c->neurons[5].den = 1;
    memset(c->neurons[5].count, 0, sizeof c->neurons[5].count);
    c->neurons[5].count[VLMN_NT_UNKNOWN] = 1;
    c->neurons[5].label = VLMN_NT_UNKNOWN;
    c->neurons[6].max_act = NAN;
    CHECK_EQ_INT(vlmn_classification_save(db, c), VLMN_OK);
    vlmn_classify_defaults(&p);
    vlmn_classification *c2 = NULL;
    CHECK_EQ_INT(vlmn_classify_source(&src, &p, &c2), VLMN_OK);
    CHECK_EQ_INT(vlmn_classification_load(db, &back), VLMN_OK);
    if (back) {
        CHECK_EQ_INT(back->n_layers, L);
        CHECK_EQ_INT(back->n_ff, F);
        CHECK(back->params.t_v == 5 && back->params.n_v == 7 && back->params.t_t == 1.5 && back->params.n_t == 1);
        CHECK_EQ_INT(back->params.norm, VLMN_NORM_CONTINUOUS);
        for (int i = 0; i < L * F; i++) {
            const vlmn_neuron_class *a = &c->neurons[i], *b = &back->neurons[i];
            CHECK(a->n_top == b->n_top && a->den == b->den && a->label == b->label);
            CHECK(!memcmp(a->count, b->count, sizeof a->count));
            if (i != 6) CHECK(a->max_act == b->max_act);
        }
        CHECK(isnan(back->neurons[6].max_act));
        vlmn_classification_free(back);
        back = NULL;
    }
    /* The stored probabilities are the fractions; the label column is the name. */
    sqlite3_stmt *s;
    CHECK(sqlite3_prepare_v2(db, "SELECT p_visual+p_text+p_multimodal+p_unknown, label FROM classification "
                             "WHERE layer=1 AND neuron=3", -1, &s, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(s) == SQLITE_ROW);
    CHECK_NEAR(sqlite3_column_double(s, 0), 1.0, 1e-12);
    CHECK_EQ_STR((const char *)sqlite3_column_text(s, 1), vlmn_ntype_name(c->neurons[F + 3].label));
    sqlite3_finalize(s);
    /* Reclassifying replaces the table. */
    CHECK_EQ_INT(vlmn_classification_save(db, c2), VLMN_OK);
    CHECK_EQ_INT(vlmn_classification_load(db, &back), VLMN_OK);
    if (back) {
        CHECK(back->params.t_v == 2 && back->params.norm == VLMN_NORM_FLOOR);
        for (int i = 0; i < L * F; i++) CHECK(!memcmp(back->neurons[i].count, c2->neurons[i].count, 8));
        vlmn_classification_free(back);
        back = NULL;
    }
    /* A missing row is refused, not silently zero. */
    CHECK(sqlite3_exec(db, "DELETE FROM classification WHERE layer=0 AND neuron=0", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_EQ_INT(vlmn_classification_load(db, &back), VLMN_E_FORMAT);
    CHECK(back == NULL);
    /* Bad counts are refused. */
    CHECK_EQ_INT(vlmn_classification_save(db, c2), VLMN_OK);
    CHECK(sqlite3_exec(db, "UPDATE classification SET n_visual = n_visual + 1 WHERE layer=2 AND neuron=1", NULL,
                       NULL, NULL) == SQLITE_OK);
    CHECK_EQ_INT(vlmn_classification_load(db, &back), VLMN_E_FORMAT);
    vlmn_classification_free(c);
    vlmn_classification_free(c2);
    sqlite3_close(db);
}

TEST(save_rolls_back_on_failure)
{
    sqlite3 *db = open_db("test_classify_ro.sqlite");
    if (!db) return;
    vlmn_classification *c = NULL;
    CHECK_EQ_INT(vlmn_classification_create(2, 3, &c), VLMN_OK);
    for (int i = 0; i < 6; i++) {
        c->neurons[i].n_top = c->neurons[i].den = 4;
        c->neurons[i].count[i % 4] = 4;
        c->neurons[i].label = (uint8_t)(i % 4);
    }
    CHECK_EQ_INT(vlmn_classification_save(db, c), VLMN_OK);
    /* A save that fails (read-only connection) must leave the old classification intact. */
    c->neurons[3].label = VLMN_NT_VISUAL;
    sqlite3_close(db);
    db = NULL;
    CHECK(sqlite3_open(test_path(test_tmp_dir(), "test_classify_ro.sqlite"), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(vlmn_classification_save(db, c) == VLMN_E_DB);
    CHECK(sqlite3_exec(db, "PRAGMA query_only=0", NULL, NULL, NULL) == SQLITE_OK);
    vlmn_classification *back = NULL;
    CHECK_EQ_INT(vlmn_classification_load(db, &back), VLMN_OK);
    if (back) CHECK_EQ_INT(back->neurons[3].label, 3);
    vlmn_classification_free(back);
    vlmn_classification_free(c);
    sqlite3_close(db);
}

TEST_MAIN()
