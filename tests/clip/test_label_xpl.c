/* Labels as explanations (vlmn label --as-explanations, issue 15) and labels in the
 * report and the browser. The planted run of test_label: neuron 0:47's traced image-token
 * activations are overwritten with the tiny reference CLIP's map of "red things" on ten
 * samples (top ranks 1,5,...,17 that label sees and 3,7,...,19 that score it). The label
 * explanation must be "red things", chosen on ranks 1,5,9,13,17 only, and after
 * vlmn_simulate_run (CLIP simulator) and vlmn_score_run its Pearson score is 1 (1e-6) on
 * ranks 3,7,11,15,19 while a wrong concept stored as an explanation scores lower. Reruns
 * leave the rows alone, a changed label drops the old simulations; the report and the
 * browser (HTML and JSON) list the labels with a hostile concept escaped; a report
 * without labels has no labels table. (A random tiny CLIP cannot recover the planted
 * concepts themselves: test_label.c says why.) */
#include "test.h"
#include "clip/clip_fixture.h"

#include "vlmn/browse.h"
#include "vlmn/clip.h"
#include "vlmn/image.h"
#include "vlmn/pipeline.h"
#include "vlmn/run.h"
#include "vlmn/trace.h"
#include "clip/label_int.h"
#include "core/alloc.h"

#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <unistd.h>

enum { WRONG = 6 }; /* "zebra" */
static const char HOSTILE[] = "<script>alert(1)</script>\"&'";
static const char HOSTILE_HTML[] = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;&#39;";

/* Overwrites 0:47's image-token activations on sample smp with the map of CLIPFX_CONCEPTS[c]. */
static bool plant(vlmn_clip *c, const char *run, vlmn_traces *tr, sqlite3 *tdb, int fd, uint32_t smp, int concept)
{
    (void)run;
    int nv = 0;
    float *map = clipfx_concept_map(c, tr, smp, concept, &nv);
    vlmn_trace_sample *ts = NULL;
    bool ok = map && vlmn_traces_sample(tr, smp, &ts) == VLMN_OK;
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(tdb, "SELECT offset FROM traces WHERE layer=0 AND neuron=47 AND sample_index=?", -1, &q, NULL);
    sqlite3_bind_int64(q, 1, smp);
    ok = ok && sqlite3_step(q) == SQLITE_ROW;
    int64_t off = ok ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    for (int64_t i = 0, v = 0; ok && i < ts->n_tokens; i++)
        if (ts->modality[i] == VLMN_TRACE_VISUAL) ok = pwrite(fd, &map[v++], 4, (off_t)(off + 4 * i)) == 4;
    free(map);
    vlmn_trace_sample_free(ts);
    return ok;
}

static int64_t count(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

static double score_of(sqlite3 *db, const char *explainer)
{
    sqlite3_stmt *q = NULL;
    double r = NAN;
    sqlite3_prepare_v2(db,
                       "SELECT score FROM scores WHERE layer=0 AND neuron=47 AND explainer=? AND scorer='pearson' AND "
                       "n_visual=1280",
                       -1, &q, NULL);
    sqlite3_bind_text(q, 1, explainer, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) r = sqlite3_column_double(q, 0);
    sqlite3_finalize(q);
    return r;
}

/* The browser's answer to uri. */
static char *browse_get(const char *run, const char *uri)
{
    vlmn_browse *b = NULL;
    if (vlmn_browse_open(run, &b)) return NULL;
    vlmn_browse_resp r = {0};
    vlmn_browse_handle(b, uri, strlen(uri), &r);
    vlmn_browse_close(b);
    if (r.status != 200) {
        vlmn_free(r.body);
        return NULL;
    }
    char *s = malloc(r.len + 1);
    memcpy(s, r.body, r.len);
    s[r.len] = 0;
    vlmn_free(r.body);
    return s;
}

static vlmn_status label(const char *run, vlmn_clip *c, const char *const *concepts, int nc, vlmn_label_summary *sum)
{
    vlmn_concepts cs = {.n = nc, .items = (char **)concepts};
    vlmn_label_opts o;
    vlmn_label_opts_default(&o);
    o.run_dir = run;
    o.concepts = &cs;
    o.top_k = 3;
    o.clip_name = "tiny";
    o.as_explanations = true;
    return vlmn_label_run(&o, c, clipfx_toks, NULL, sum);
}

static void simulate_and_score(const char *run, vlmn_clip *c)
{
    vlmn_xrun_summary s;
    CHECK_EQ_INT(clipfx_simulate(run, c, &s), VLMN_OK);
    CHECK_EQ_INT(s.failed, 0);
    int64_t ns = 0, nu = 0;
    CHECK_EQ_INT(vlmn_score_run(run, &ns, &nu), VLMN_OK);
}

TEST(label_explanations_scored_held_out)
{
    const char *bin = getenv("VLMN_BIN");
    CHECK(bin != NULL);
    if (!bin) return;
    char d[256], cmd[8192];
    snprintf(d, sizeof d, "%s/test_label_xpl.%d", test_tmp_dir(), (int)getpid());
    snprintf(cmd, sizeof cmd, "%s report %s/run -o %s/rep0 >/dev/null", bin, d, d);
    if (clipfx_planted_run(bin, d, 20, "top:1,3,5,7,9,11,13,15,17,19") || clipfx_sh(cmd)) {
        CHECK(0);
        return;
    }
    char run[700], path[800], cdir[600];
    snprintf(run, sizeof run, "%s/run", d);
    snprintf(cdir, sizeof cdir, "%s/clip/tiny", test_data_dir());
    /* a report of a run without labels: no labels table */
    snprintf(cmd, sizeof cmd, "! grep -q 'Labels of\\|<b>Labels.</b>' %s/rep0/index.html", d);
    CHECK(clipfx_sh(cmd) == 0);
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/run.sqlite", run);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db,
                       "UPDATE classification SET label='visual' WHERE layer=0 AND neuron=47;"
                       "UPDATE classification SET label='multimodal' WHERE layer=1 AND neuron=40;",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    /* the browser's neuron page of a run without labels: an empty list, no section */
    char *page = browse_get(run, "/api/neuron/0/47");
    CHECK(page && strstr(page, "\"labels\":[]"));
    free(page);
    page = browse_get(run, "/neuron/0/47");
    CHECK(page && !strstr(page, "Labels (CLIP"));
    free(page);

    vlmn_clip *c = NULL;
    CHECK_EQ_INT(vlmn_clip_load(cdir, NULL, VLMN_PREC_FAST, &c), VLMN_OK);
    if (!c) return;
    vlmn_run *r = NULL;
    CHECK_EQ_INT(vlmn_run_open(run, &r), VLMN_OK);
    if (!r) return;
    int ntop = 0;
    const vlmn_top_entry *te = vlmn_run_top(r, 0, 47, &ntop);
    CHECK(ntop >= 19);
    if (ntop < 19) return;
    uint32_t by_rank[20];
    for (int k = 1; k <= 19; k++) by_rank[k] = te[k - 1].sample;
    /* the held-out check itself: a scoring rank is refused, a label rank is not */
    CHECK_EQ_INT(label_xpl_heldout(r, run, 0, 47, &by_rank[7], 1), VLMN_E_ARG);
    CHECK(strstr(vlmn_errmsg(), "neuron 0:47") && strstr(vlmn_errmsg(), "rank 7"));
    CHECK_EQ_INT(label_xpl_heldout(r, run, 0, 47, &by_rank[5], 1), VLMN_OK);
    vlmn_run_close(r);
    char key[16];
    CHECK_EQ_INT(label_xpl_sampling("top:3,7,11,15,19", "tiny", key), VLMN_E_ARG);
    CHECK_EQ_INT(label_xpl_sampling("random:5:-1", "tiny", key), VLMN_E_ARG);
    CHECK_EQ_INT(label_xpl_sampling("random:5:7", "tiny", key), VLMN_OK);
    CHECK_EQ_STR(key, "random");
    CHECK_EQ_INT(label_xpl_sampling(VLMN_XTOP_SAMPLES, "tiny", key), VLMN_OK);
    CHECK_EQ_STR(key, "top");

    /* plant "red things" on the ten traced samples of 0:47 */
    vlmn_traces *tr = NULL;
    CHECK_EQ_INT(vlmn_traces_open(run, &tr), VLMN_OK);
    if (!tr) return;
    sqlite3 *tdb = NULL;
    snprintf(path, sizeof path, "%s/traces.sqlite", run);
    CHECK(sqlite3_open(path, &tdb) == SQLITE_OK);
    snprintf(path, sizeof path, "%s/traces.f32", run);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    for (int k = 1; k <= 19; k += 2) CHECK(plant(c, run, tr, tdb, fd, by_rank[k], CLIPFX_RED));
    close(fd);
    sqlite3_close(tdb);
    vlmn_traces_close(tr);

    vlmn_label_summary sum;
    CHECK_EQ_INT(label(run, c, CLIPFX_CONCEPTS, CLIPFX_NC, &sum), VLMN_OK);
    CHECK_EQ_INT(sum.neurons, 2);
    CHECK_EQ_INT(sum.expl_new, 2);
    snprintf(path, sizeof path, "%s/run.sqlite", run);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *q = NULL;
    CHECK(sqlite3_prepare_v2(db,
                             "SELECT text, status, kind, samples, images FROM explanations WHERE layer=0 AND neuron=47 "
                             "AND explainer='label:tiny' AND sampling='top'",
                             -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    char want[128];
    snprintf(want, sizeof want, "[%u,%u,%u,%u,%u]", by_rank[1], by_rank[5], by_rank[9], by_rank[13], by_rank[17]);
    CHECK_EQ_STR((const char *)sqlite3_column_text(q, 0), "red things");
    CHECK_EQ_STR((const char *)sqlite3_column_text(q, 1), "ok");
    CHECK_EQ_STR((const char *)sqlite3_column_text(q, 2), "visual");
    CHECK_EQ_STR((const char *)sqlite3_column_text(q, 3), want);
    CHECK_EQ_STR((const char *)sqlite3_column_text(q, 4), "clip");
    sqlite3_finalize(q);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM explanations WHERE layer=1 AND neuron=40 AND explainer='label:tiny' "
                           "AND kind='multimodal'"),
                 1);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM labels WHERE samples='top:1,5,9,13,17'"), 6);
    /* a wrong concept as a second explanation */
    snprintf(cmd, sizeof cmd,
             "INSERT INTO explanations (layer, neuron, sampling, explainer, images, kind, samples, max_act, text, "
             "status, prompt_hash, settings, created) VALUES (0, 47, 'top', 'wrong', 'modulated', 'visual', '[]', 1, "
             "'%s', 'ok', '', '{}', 'now')",
             CLIPFX_CONCEPTS[WRONG]);
    CHECK(sqlite3_exec(db, cmd, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);

    simulate_and_score(run, c);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    double sl = score_of(db, "label:tiny"), sw = score_of(db, "wrong");
    CHECK_MSG(fabs(sl - 1) < 1e-6, "label explanation: r = %.9f", sl);
    CHECK_MSG(sw < sl - 0.05, "wrong concept r = %.6f vs label %.6f", sw, sl);
    fprintf(stderr, "  pearson: label:tiny 'red things' %.6f, wrong '%s' %.6f\n", sl, CLIPFX_CONCEPTS[WRONG], sw);
    /* scored on ranks 3,7,11,15,19 only: none of the label's own samples */
    snprintf(cmd, sizeof cmd,
             "SELECT COUNT(*) FROM simulations WHERE layer=0 AND neuron=47 AND explainer='label:tiny' AND "
             "status='ok' AND rank IN (3,7,11,15,19) AND sample_index NOT IN (%u,%u,%u,%u,%u)",
             by_rank[1], by_rank[5], by_rank[9], by_rank[13], by_rank[17]);
    CHECK_EQ_INT(count(db, cmd), 5);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM simulations WHERE layer=0 AND neuron=47 AND explainer='label:tiny'"), 5);
    sqlite3_close(db);
    /* Table 2 has a label:tiny group */
    char t2p[800];
    snprintf(t2p, sizeof t2p, "%s/t2.txt", d);
    FILE *f = fopen(t2p, "w");
    CHECK_EQ_INT(vlmn_table2(run, 100, false, f), VLMN_OK);
    fclose(f);
    snprintf(cmd, sizeof cmd, "grep -q 'explainer label:tiny, simulator clip-tiny:clip' %s", t2p);
    CHECK(clipfx_sh(cmd) == 0);
    f = fopen(t2p, "w");
    CHECK_EQ_INT(vlmn_table2(run, 100, true, f), VLMN_OK);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "grep -q '\"explainer\":\"label:tiny\",\"simulator\":\"clip-tiny:clip\",\"images\":\"clip\"' %s", t2p);
    CHECK(clipfx_sh(cmd) == 0);

    /* rerun: same labels, nothing written, the simulations stay */
    CHECK_EQ_INT(label(run, c, CLIPFX_CONCEPTS, CLIPFX_NC, &sum), VLMN_OK);
    CHECK_EQ_INT(sum.expl_new, 0);
    CHECK_EQ_INT(sum.expl_same, 2);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM explanations WHERE explainer='label:tiny'"), 2);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM simulations WHERE layer=0 AND neuron=47 AND explainer='label:tiny'"), 5);
    sqlite3_close(db);
    /* a list without the concept: 0:47's label changes, its old simulations and score go */
    const char *fewer[CLIPFX_NC - 1];
    for (int k = 0, j = 0; k < CLIPFX_NC; k++)
        if (k != CLIPFX_RED) fewer[j++] = CLIPFX_CONCEPTS[k];
    CHECK_EQ_INT(label(run, c, fewer, CLIPFX_NC - 1, &sum), VLMN_OK);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM explanations WHERE explainer='label:tiny'"), 2);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM explanations WHERE explainer='label:tiny' AND layer=0 AND neuron=47 "
                           "AND text='red things'"),
                 0);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM simulations WHERE layer=0 AND neuron=47 AND explainer='label:tiny'"), 0);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM scores WHERE layer=0 AND neuron=47 AND explainer='label:tiny'"), 0);
    sqlite3_close(db);
    /* back to the full list, simulated and scored again */
    CHECK_EQ_INT(label(run, c, CLIPFX_CONCEPTS, CLIPFX_NC, &sum), VLMN_OK);
    simulate_and_score(run, c);
    vlmn_clip_free(c);

    /* the report and the browser show the labels; a hostile concept is escaped */
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_prepare_v2(db, "UPDATE labels SET concept=? WHERE layer=1 AND neuron=40 AND rank=1", -1, &q, NULL);
    sqlite3_bind_text(q, 1, HOSTILE, -1, SQLITE_STATIC);
    CHECK(sqlite3_step(q) == SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);
    snprintf(cmd, sizeof cmd,
             "set -e; %s report %s -o %s/rep >/dev/null; h=%s/rep/index.html; grep -q '<h3 id=\"labels-visual\">' $h; "
             "grep -q '<h3 id=\"labels-multimodal\">' $h; grep -q '<b>Labels.</b>' $h; "
             "grep -q '<td class=\"expl\">red things</td><td class=\"n\">1.000</td><td class=\"n\">1.000</td>"
             "<td>tiny</td><td>5 (top:1,5,9,13,17)</td><td class=\"expl\">%s</td><td>wrong</td>' $h; "
             "grep -qF '%s' $h; ! grep -q '<script>alert' $h",
             bin, run, d, d, CLIPFX_CONCEPTS[WRONG], HOSTILE_HTML);
    CHECK(clipfx_sh(cmd) == 0);
    page = browse_get(run, "/neuron/1/40");
    CHECK(page && strstr(page, "<table id=\"labels\">") && strstr(page, HOSTILE_HTML) && !strstr(page, "<script>alert"));
    free(page);
    page = browse_get(run, "/neuron/0/47");
    CHECK(page && strstr(page, "<td class=\"x\">red things</td><td class=\"n\">1.000</td><td class=\"n\">5</td>"));
    free(page);
    page = browse_get(run, "/api/neuron/0/47");
    CHECK(page && strstr(page, "\"labels\":[{\"clip\":\"tiny\",\"rank\":1,\"concept\":\"red things\",\"score\":1"));
    CHECK(page && strstr(page, "\"n_samples\":5}"));
    free(page);
    page = browse_get(run, "/api/neuron/1/40");
    CHECK(page && strstr(page, "\"concept\":\"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\\\"\\u0026'\""));
    if (page && !strstr(page, "\\u003cscript")) fprintf(stderr, "  %s\n", page);
    free(page);

    /* CLI: --as-explanations with a SPEC that is no explainer sampling is one line, nothing written */
    snprintf(cmd, sizeof cmd,
             "cd %s && ! %s label run --clip %s --as-explanations --samples top:3,7 2>e1 && "
             "grep -q 'is not an explainer sampling' e1 && test $(wc -l <e1) = 1",
             d, bin, cdir);
    CHECK(clipfx_sh(cmd) == 0);
}

TEST_MAIN()
