/* vlmn_compare_runs and `vlmn compare` on hand-made runs whose top lists, maxima and
 * classifications are written directly, so every figure of the comparison is known in
 * closed form (worked out in the comments below). */
#include "test.h"
#include "vlmn/compare.h"
#include "vlmn/record.h"
#include "store/store.h"

#include <cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { L = 2, F = 4, N = 4, S = 10 };

/* A run: top[l][j] = the sample list (N entries, rank order), max[l][j] the global max,
 * count[l][j] the classification counts (den = sum; NULL: not classified). */
typedef struct spec {
    int f;                 /* n_ff (F, or another for the shape test) */
    const char *id_prefix; /* sample ids are PREFIX + index */
    uint32_t top[L][F + 1][N];
    float max[L][F + 1];
    int classified;
    uint16_t count[L][F + 1][4];
} spec;

static char *dir_of(const char *name)
{
    static char d[8][1024];
    static int k;
    char *p = d[k++ % 8];
    snprintf(p, 1024, "%s/compare_%s", test_tmp_dir(), name);
    return p;
}

static void write_run(const char *dir, const spec *sp)
{
    char db[1200];
    mkdir(dir, 0755);
    snprintf(db, sizeof db, "%s/run.sqlite", dir);
    unlink(db);
    vlmn_rec_params p = {L, sp->f, N, 1};
    vlmn_rec *r = NULL;
    CHECK(vlmn_rec_create(&p, &r) == VLMN_OK);
    if (!r) return;
    for (int l = 0; l < L; l++)
        for (int j = 0; j < sp->f; j++) {
            int k = l * sp->f + j;
            vlmn_rec_stats(r)[k].max_act = sp->max[l][j];
            vlmn_rec_stats(r)[k].count = 1;
            for (int i = 0; i < N; i++) {
                vlmn_top_entry *e = &vlmn_rec_top(r)[k * N + i];
                e->sample = sp->top[l][j][i];
                e->max_act = sp->max[l][j] - (float)i * 0.01f; /* rank order by value */
                for (int t = 0; t < VLMN_TOP_TOKENS; t++) e->img[t] = e->txt[t] = -INFINITY;
            }
        }
    vlmn_rec_sync(r);
    sqlite3 *h = NULL;
    CHECK(vlmn_db_open(db, true, &h) == VLMN_OK);
    char id[64];
    for (int s = 0; s < S; s++) {
        snprintf(id, sizeof id, "%s%d", sp->id_prefix, s);
        vlmn_store_sample x = {s, id, "x.png", true, NULL, 1, 1};
        CHECK(vlmn_db_put_sample(h, &x) == VLMN_OK);
    }
    CHECK(vlmn_db_write_neurons(h, r) == VLMN_OK);
    CHECK(vlmn_db_write_top(h, r) == VLMN_OK);
    CHECK(vlmn_store_write_arrays(dir, r, false) == VLMN_OK);
    CHECK(vlmn_db_set_meta(h, "status", "%s", "complete") == VLMN_OK);
    if (sp->classified) {
        vlmn_classification *c = NULL;
        CHECK(vlmn_classification_create(L, sp->f, &c) == VLMN_OK);
        vlmn_classify_defaults(&c->params);
        for (int l = 0; l < L; l++)
            for (int j = 0; j < sp->f; j++) {
                vlmn_neuron_class *n = &c->neurons[l * sp->f + j];
                int den = 0;
                for (int t = 0; t < 4; t++) den += n->count[t] = sp->count[l][j][t];
                n->n_top = n->den = (uint16_t)den;
                n->label = (uint8_t)vlmn_classify_label(n->count);
                n->max_act = sp->max[l][j];
            }
        CHECK_MSG(vlmn_classification_save(h, c) == VLMN_OK, "%s", vlmn_errmsg());
        vlmn_classification_free(c);
    }
    vlmn_db_close(h);
    vlmn_rec_free(r);
}

/* Run A: every neuron's list is samples 0,1,2,3, max 2, counts {4,0,0,0} (visual). */
static void spec_a(spec *a)
{
    memset(a, 0, sizeof *a);
    a->f = F;
    a->id_prefix = "s";
    a->classified = 1;
    for (int l = 0; l < L; l++)
        for (int j = 0; j <= F; j++) { /* F + 1: the shape test's run has one more neuron */
            for (int i = 0; i < N; i++) a->top[l][j][i] = (uint32_t)i;
            a->max[l][j] = 2.0f;
            a->count[l][j][0] = 4;
        }
    a->max[1][1] = 0.0f; /* both 0 in B too: relative error 0 */
}

/* Run B, differences from A:
 *   l0 n1: same set, other order        -> Jaccard 1, not identical
 *   l0 n2: {0,1,2,9}                     -> Jaccard 3/5
 *   l0 n3: {6,7,8,9}                     -> Jaccard 0
 *   l1 n0: max 2.1                       -> relative error 0.1 / 2.1
 *   l0 n0: counts {3,1,0,0} (visual)     -> |dp_v| = |dp_t| = 0.25
 *   l0 n1: counts {0,4,0,0} (text)       -> label differs, |dp_v| = |dp_t| = 1
 *   l1 n2: counts {49,1,0,0} (visual)    -> |dp_v| = |dp_t| = 0.02: within the tolerance
 * Layer 0: Jaccard (1 + 1 + 0.6 + 0) / 4 = 0.65, identical 1/4, labels 3/4.
 * Layer 1: Jaccard 1, identical 1, labels 1. Overall: 0.825, 5/8, 7/8. */
static void spec_b(spec *b)
{
    spec_a(b);
    uint32_t l0n1[N] = {1, 0, 3, 2}, l0n2[N] = {0, 9, 1, 2}, l0n3[N] = {9, 8, 7, 6};
    memcpy(b->top[0][1], l0n1, sizeof l0n1);
    memcpy(b->top[0][2], l0n2, sizeof l0n2);
    memcpy(b->top[0][3], l0n3, sizeof l0n3);
    b->max[1][0] = 2.1f;
    uint16_t c00[4] = {3, 1, 0, 0}, c01[4] = {0, 4, 0, 0}, c12[4] = {49, 1, 0, 0};
    memcpy(b->count[0][0], c00, sizeof c00);
    memcpy(b->count[0][1], c01, sizeof c01);
    memcpy(b->count[1][2], c12, sizeof c12);
}

static vlmn_status compare(const char *da, const char *db, vlmn_compare **c)
{
    vlmn_run *a = NULL, *b = NULL;
    vlmn_status st = vlmn_run_open(da, &a);
    if (!st) st = vlmn_run_open(db, &b);
    if (!st) st = vlmn_compare_runs(a, b, 0.02, 0.25, c);
    vlmn_run_close(a);
    vlmn_run_close(b);
    return st;
}

TEST(known_overlap_and_agreement)
{
    static spec a, b;
    spec_a(&a);
    spec_b(&b);
    const char *da = dir_of("a"), *db = dir_of("b");
    write_run(da, &a);
    write_run(db, &b);
    vlmn_compare *c = NULL;
    CHECK(compare(da, db, &c) == VLMN_OK);
    if (!c) return;
    CHECK(c->classified && c->same_params);
    CHECK_EQ_INT(c->n_samples, S);
    CHECK_EQ_INT(c->top_n, N);
    CHECK_EQ_INT(c->status_differs, 0);
    CHECK_NEAR(c->layers[0].mean_jaccard, 0.65, 1e-12);
    CHECK_NEAR(c->layers[1].mean_jaccard, 1.0, 1e-12);
    CHECK_NEAR(c->all.mean_jaccard, 0.825, 1e-12);
    CHECK_NEAR(c->layers[0].identical_lists, 0.25, 1e-12);
    CHECK_NEAR(c->all.identical_lists, 5.0 / 8, 1e-12);
    CHECK_NEAR(c->layers[0].label_agreement, 0.75, 1e-12);
    CHECK_NEAR(c->layers[1].label_agreement, 1.0, 1e-12);
    CHECK_NEAR(c->all.label_agreement, 7.0 / 8, 1e-12);
    double e = ((double)2.1f - 2.0) / (double)2.1f; /* 2.1 as the float stored */
    CHECK_NEAR(c->layers[1].max_rel_err_max, e, 1e-12);
    CHECK_NEAR(c->layers[1].max_rel_err_mean, e / 4, 1e-12);
    CHECK_NEAR(c->layers[0].max_rel_err_max, 0, 0);
    CHECK_NEAR(c->all.max_rel_err_mean, e / 8, 1e-12);
    double dv = (0.25 + 1 + 1.0 / 50) / 8;
    CHECK_NEAR(c->all.p_abs_diff[VLMN_NT_VISUAL], dv, 1e-12);
    CHECK_NEAR(c->all.p_abs_diff[VLMN_NT_TEXT], dv, 1e-12);
    CHECK_NEAR(c->all.p_abs_diff[VLMN_NT_MULTIMODAL], 0, 0);
    CHECK_NEAR(c->all.p_abs_diff_all, dv / 2, 1e-12);
    CHECK_NEAR(c->all.p_within[VLMN_NT_VISUAL], 6.0 / 8, 1e-12); /* 0.02 counts as within */
    CHECK_NEAR(c->all.p_within[VLMN_NT_UNKNOWN], 1.0, 1e-12);
    CHECK_NEAR(c->all.p_within_all, 6.0 / 8, 1e-12);
    CHECK_NEAR(c->layers[1].p_within_all, 1.0, 1e-12);
    CHECK_EQ_INT(c->confusion[VLMN_NT_VISUAL][VLMN_NT_VISUAL], 7);
    CHECK_EQ_INT(c->confusion[VLMN_NT_VISUAL][VLMN_NT_TEXT], 1);
    CHECK_EQ_INT(c->stats_a->label_count[VLMN_NT_VISUAL], 8);
    CHECK_EQ_INT(c->stats_b->label_count[VLMN_NT_VISUAL], 7);
    CHECK_EQ_INT(c->stats_b->label_count[VLMN_NT_TEXT], 1);
    vlmn_compare_free(c);

    /* A against itself: everything agrees. */
    CHECK(compare(da, da, &c) == VLMN_OK);
    if (c) {
        CHECK_NEAR(c->all.mean_jaccard, 1, 0);
        CHECK_NEAR(c->all.identical_lists, 1, 0);
        CHECK_NEAR(c->all.label_agreement, 1, 0);
        CHECK_NEAR(c->all.p_abs_diff_all, 0, 0);
        CHECK_NEAR(c->all.max_rel_err_max, 0, 0);
    }
    vlmn_compare_free(c);
}

TEST(unclassified_and_mismatched_runs)
{
    static spec a, u, ids, shape;
    spec_a(&a);
    u = a;
    u.classified = 0;
    ids = a;
    ids.id_prefix = "other";
    shape = a;
    shape.f = F + 1;
    const char *da = dir_of("a2"), *du = dir_of("unclassified"), *di = dir_of("ids"), *ds = dir_of("shape");
    write_run(da, &a);
    write_run(du, &u);
    write_run(di, &ids);
    write_run(ds, &shape);
    vlmn_compare *c = NULL;
    CHECK(compare(da, du, &c) == VLMN_OK);
    if (c) {
        CHECK(!c->classified);
        CHECK(c->stats_a == NULL && c->stats_b == NULL);
        CHECK_NEAR(c->all.mean_jaccard, 1, 0);
    }
    vlmn_compare_free(c);
    c = NULL;
    CHECK(compare(da, di, &c) == VLMN_E_MISMATCH);
    CHECK(c == NULL);
    CHECK(strstr(vlmn_errmsg(), "same dataset") != NULL);
    CHECK(compare(da, ds, &c) == VLMN_E_MISMATCH);
    CHECK(strstr(vlmn_errmsg(), "shape") != NULL);
}

/* The CLI: --json carries the same figures; a mismatch is one line on stderr, exit 1. */
static int sh(const char *cmd, char *out, size_t n)
{
    char tmp[1200], full[4096];
    snprintf(tmp, sizeof tmp, "%s/compare_out.txt", test_tmp_dir());
    snprintf(full, sizeof full, "{ %s; } > '%s'", cmd, tmp);
    int rc = system(full);
    out[0] = 0;
    FILE *f = fopen(tmp, "rb");
    if (f) {
        size_t k = fread(out, 1, n - 1, f);
        out[k] = 0;
        fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(cli_json_text_and_errors)
{
    const char *bin = getenv("VLMN_BIN");
    CHECK(bin != NULL);
    if (!bin) return;
    static spec a, b, ids;
    spec_a(&a);
    spec_b(&b);
    ids = a;
    ids.id_prefix = "other";
    const char *da = dir_of("cli_a"), *db = dir_of("cli_b"), *di = dir_of("cli_ids");
    write_run(da, &a);
    write_run(db, &b);
    write_run(di, &ids);
    static char out[1 << 16];
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' compare '%s' '%s' --json", bin, da, db);
    CHECK_EQ_INT(sh(cmd, out, sizeof out), 0);
    cJSON *j = cJSON_Parse(out);
    CHECK(j != NULL);
    if (j) {
        cJSON *o = cJSON_GetObjectItem(j, "overall");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "classified")));
        CHECK_NEAR(cJSON_GetObjectItem(o, "mean_jaccard")->valuedouble, 0.825, 1e-12);
        CHECK_NEAR(cJSON_GetObjectItem(o, "identical_lists")->valuedouble, 5.0 / 8, 1e-12);
        CHECK_NEAR(cJSON_GetObjectItem(o, "label_agreement")->valuedouble, 7.0 / 8, 1e-12);
        CHECK_NEAR(cJSON_GetObjectItem(o, "p_within_tol")->valuedouble, 6.0 / 8, 1e-12);
        cJSON *ls = cJSON_GetObjectItem(j, "layers");
        CHECK_EQ_INT(cJSON_GetArraySize(ls), L);
        CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetArrayItem(ls, 0), "mean_jaccard")->valuedouble, 0.65, 1e-12);
        cJSON *lab = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stats"), "labels");
        CHECK_EQ_INT(cJSON_GetArrayItem(cJSON_GetObjectItem(lab, "b"), 1)->valueint, 1);
        cJSON_Delete(j);
    }
    snprintf(cmd, sizeof cmd, "'%s' compare '%s' '%s'", bin, da, db);
    CHECK_EQ_INT(sh(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "all       0.8250") != NULL);
    CHECK(strstr(out, "87.50%") != NULL);
    /* Mismatched datasets: exit 1, one line on stderr, nothing on stdout. */
    snprintf(cmd, sizeof cmd, "'%s' compare '%s' '%s' 2>&1 >/dev/null", bin, da, di);
    CHECK_EQ_INT(sh(cmd, out, sizeof out), 1);
    CHECK(strstr(out, "vlmn compare: ") == out && strchr(out, '\n') == out + strlen(out) - 1);
    snprintf(cmd, sizeof cmd, "'%s' compare '%s' 2>/dev/null", bin, da);
    CHECK_EQ_INT(sh(cmd, out, sizeof out), 2);
}

TEST_MAIN()
