/* `vlmn label` machinery (issue 15), exactly: the planted run of test_clip_pipeline with
 * its two visual neurons traced, then neuron 0:47's traced activations on its image
 * tokens are overwritten with the CLIP map of the concept "red things" on each sample
 * (computed through the library: vlmn_clip_sample_patches + vlmn_clip_sample_map, what
 * the CLIP simulator runs). vlmn_label_run with the tiny reference CLIP must rank "red
 * things" first with r = 1 (1e-6) and every other concept lower, the other scores must
 * equal vlmn_pearson over the concatenated vectors, rows are replaced on a rerun; and
 * the CLI's errors (no --clip, untraced pairs, bad concepts files) are one line naming
 * the problem. (A random tiny CLIP cannot recover the planted concepts themselves.) */
#include "test.h"
#include "clip/clip_fixture.h"

#include "vlmn/clip.h"
#include "vlmn/explain.h"
#include "vlmn/image.h"
#include "vlmn/trace.h"
#include "core/alloc.h"

#include <math.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <unistd.h>

static const uint32_t *top5(sqlite3 *db, int layer, int neuron, uint32_t out[5])
{
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db, "SELECT sample_index FROM traces WHERE layer=? AND neuron=? ORDER BY sample_index", -1, &q,
                       NULL);
    sqlite3_bind_int(q, 1, layer);
    sqlite3_bind_int(q, 2, neuron);
    int k = 0;
    while (k < 5 && sqlite3_step(q) == SQLITE_ROW) out[k++] = (uint32_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return k == 5 ? out : NULL;
}

TEST(label_ranks_the_planted_concept_first)
{
    const char *bin = getenv("VLMN_BIN");
    CHECK(bin != NULL);
    if (!bin) return;
    char d[256], cmd[8192];
    snprintf(d, sizeof d, "%s/test_label.%d", test_tmp_dir(), (int)getpid());
    if (clipfx_planted_run(bin, d, 40, "top:3,7,11,15,19")) {
        CHECK(0);
        return;
    }
    char run[700], path[800], cdir[600];
    snprintf(run, sizeof run, "%s/run", d);
    snprintf(cdir, sizeof cdir, "%s/clip/tiny", test_data_dir());
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/run.sqlite", run);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    /* one visual and one multi-modal neuron (both pass the label filter) */
    CHECK(sqlite3_exec(db,
                       "UPDATE classification SET label='visual' WHERE layer=0 AND neuron=47;"
                       "UPDATE classification SET label='multimodal' WHERE layer=1 AND neuron=40;",
                       NULL, NULL, NULL) == SQLITE_OK);
    CHECK_EQ_INT(sqlite3_changes(db), 1);
    sqlite3_close(db);

    vlmn_clip *c = NULL;
    CHECK_EQ_INT(vlmn_clip_load(cdir, NULL, VLMN_PREC_FAST, &c), VLMN_OK);
    if (!c) return;
    vlmn_traces *tr = NULL;
    CHECK_EQ_INT(vlmn_traces_open(run, &tr), VLMN_OK);
    if (!tr) return;
    /* plant: 0:47's image-token activations := the map of "red things" */
    snprintf(path, sizeof path, "%s/traces.sqlite", run);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    uint32_t smp[5];
    CHECK(top5(db, 0, 47, smp) != NULL);
    snprintf(path, sizeof path, "%s/traces.f32", run);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    for (int s = 0; s < 5; s++) {
        int nv = 0;
        float *map = clipfx_concept_map(c, tr, smp[s], CLIPFX_RED, &nv);
        CHECK(map != NULL && nv == 256);
        if (!map) break;
        vlmn_trace_sample *ts = NULL;
        CHECK_EQ_INT(vlmn_traces_sample(tr, smp[s], &ts), VLMN_OK);
        sqlite3_stmt *q = NULL;
        sqlite3_prepare_v2(db, "SELECT offset FROM traces WHERE layer=0 AND neuron=47 AND sample_index=?", -1, &q, NULL);
        sqlite3_bind_int64(q, 1, smp[s]);
        CHECK(sqlite3_step(q) == SQLITE_ROW);
        int64_t off = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        int v = 0;
        for (int64_t i = 0; ts && i < ts->n_tokens; i++)
            if (ts->modality[i] == VLMN_TRACE_VISUAL)
                CHECK(pwrite(fd, &map[v++], 4, (off_t)(off + 4 * i)) == 4);
        CHECK_EQ_INT(v, nv);
        vlmn_trace_sample_free(ts);
        free(map);
    }
    close(fd);
    sqlite3_close(db);
    vlmn_traces_close(tr);
    tr = NULL;

    vlmn_concepts cs = {.n = CLIPFX_NC, .items = (char **)CLIPFX_CONCEPTS};
    vlmn_label_opts o;
    vlmn_label_opts_default(&o);
    o.run_dir = run;
    o.concepts = &cs;
    o.top_k = CLIPFX_NC;
    o.clip_name = "tiny";
    char outp[800];
    snprintf(outp, sizeof outp, "%s/out.txt", d);
    o.out = fopen(outp, "w");
    vlmn_label_summary sum;
    CHECK_EQ_INT(vlmn_label_run(&o, c, clipfx_toks, NULL, &sum), VLMN_OK);
    fclose(o.out);
    CHECK_EQ_INT(sum.neurons, 2);
    snprintf(path, sizeof path, "%s/traces.sqlite", run);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db, "SELECT COUNT(DISTINCT sample_index) FROM traces", -1, &q, NULL);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_EQ_INT(sum.samples, sqlite3_column_int(q, 0)); /* one vision pass per distinct sample */
    sqlite3_finalize(q);
    sqlite3_close(db);
    CHECK_EQ_INT(sum.skipped, 0);
    /* printed: first line of 0:47 */
    FILE *f = fopen(outp, "r");
    char line[256] = "";
    CHECK(f && fgets(line, sizeof line, f));
    if (f) fclose(f);
    CHECK_EQ_STR(line, "0:47\tred things\t1.0000\n");

    snprintf(path, sizeof path, "%s/run.sqlite", run);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db,
                             "SELECT concept, rank, score, n_samples FROM labels WHERE layer=0 AND neuron=47 AND "
                             "clip='tiny' ORDER BY rank",
                             -1, &q, NULL) == SQLITE_OK);
    int rows = 0;
    double second = NAN;
    char second_name[64] = "";
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *con = (const char *)sqlite3_column_text(q, 0);
        double r = sqlite3_column_double(q, 2);
        CHECK_EQ_INT(sqlite3_column_int(q, 1), rows + 1);
        CHECK_EQ_INT(sqlite3_column_int(q, 3), 5);
        if (rows == 0) {
            CHECK_EQ_STR(con, "red things");
            CHECK_MSG(fabs(r - 1) < 1e-6, "r = %.9f", r);
        } else {
            CHECK_MSG(r < 1 - 1e-3, "%s: r = %.9f", con, r);
        }
        if (rows == 1) {
            second = r;
            snprintf(second_name, sizeof second_name, "%s", con);
        }
        rows++;
    }
    sqlite3_finalize(q);
    CHECK_EQ_INT(rows, CLIPFX_NC);
    /* the runner-up's r equals vlmn_pearson over the concatenated visual tokens */
    int ci = -1;
    for (int k = 0; k < CLIPFX_NC; k++)
        if (!strcmp(CLIPFX_CONCEPTS[k], second_name)) ci = k;
    CHECK(ci >= 0 && ci != CLIPFX_RED);
    CHECK_EQ_INT(vlmn_traces_open(run, &tr), VLMN_OK);
    float *x = malloc(5 * 256 * sizeof *x), *y = malloc(5 * 256 * sizeof *y);
    int m = 0;
    for (int s = 0; ci >= 0 && s < 5; s++) {
        int nv = 0;
        float *map = clipfx_concept_map(c, tr, smp[s], ci, &nv), *acts = NULL;
        int64_t n = 0;
        vlmn_trace_sample *ts = NULL;
        CHECK(map && vlmn_traces_get(tr, 0, 47, smp[s], &acts, &n) == VLMN_OK &&
              vlmn_traces_sample(tr, smp[s], &ts) == VLMN_OK);
        for (int64_t i = 0, v = 0; ts && map && i < n; i++)
            if (ts->modality[i] == VLMN_TRACE_VISUAL) {
                x[m] = acts[i];
                y[m++] = map[v++];
            }
        vlmn_free(acts);
        vlmn_trace_sample_free(ts);
        free(map);
    }
    CHECK_EQ_INT(m, 1280);
    double want = vlmn_pearson(x, y, m, NULL);
    CHECK_MSG(fabs(want - second) < 1e-9, "stored %.12f, vlmn_pearson %.12f", second, want);
    free(x);
    free(y);
    vlmn_traces_close(tr);
    /* the multi-modal neuron is labelled too */
    sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM labels WHERE layer=1 AND neuron=40 AND clip='tiny'", -1, &q, NULL);
    CHECK(sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == CLIPFX_NC);
    sqlite3_finalize(q);
    sqlite3_close(db);

    /* rerun with top 2: the neuron's rows are replaced */
    o.top_k = 2;
    o.out = NULL;
    CHECK_EQ_INT(vlmn_label_run(&o, c, clipfx_toks, NULL, &sum), VLMN_OK);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM labels WHERE clip='tiny'", -1, &q, NULL);
    CHECK(sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 4);
    sqlite3_finalize(q);
    sqlite3_close(db);
    /* a text neuron in the SPEC is skipped (it needs no traces), the visual one labelled */
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_prepare_v2(db, "SELECT layer, neuron FROM classification WHERE label='text' ORDER BY layer, neuron LIMIT 1",
                       -1, &q, NULL);
    char spec[64] = "";
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    snprintf(spec, sizeof spec, "0:47;%d:%d", sqlite3_column_int(q, 0), sqlite3_column_int(q, 1));
    sqlite3_finalize(q);
    sqlite3_close(db);
    o.neurons = spec;
    CHECK_EQ_INT(vlmn_label_run(&o, c, clipfx_toks, NULL, &sum), VLMN_OK);
    CHECK_EQ_INT(sum.neurons, 1);
    CHECK_EQ_INT(sum.skipped, 1);
    vlmn_clip_free(c);

    /* CLI errors: one line naming the problem */
    snprintf(cmd, sizeof cmd,
             "set -e; cd %s; fails() { \"$@\" && exit 9; return 0; }; "
             "fails %s label run 2>e1; grep -q 'needs --clip DIR' e1; test $(wc -l <e1) = 1; "
             "fails %s label run --clip %s --samples top:1 2>e2; "
             "grep -qF \"no neuron is traced on samples top:1; run \\`vlmn trace run --neurons SPEC --samples top:1\" e2; "
             "test $(wc -l <e2) = 1; "
             "fails %s label run --clip %s --neurons 0:47 --samples top:1,3 2>e3; "
             "grep -qF \"1 (neuron, sample) pairs are not traced; run \\`vlmn trace run --neurons '0:47'\" e3; "
             "printf '# only comments\\n\\n' > empty.txt; "
             "fails %s label run --clip %s --concepts empty.txt 2>e4; grep -q 'empty.txt: no concepts' e4; "
             "test $(wc -l <e4) = 1; "
             "printf 'red\\nblue\\nred\\n' > dup.txt; "
             "fails %s label run --clip %s --concepts dup.txt 2>e5; grep -q 'dup.txt: line 3' e5; "
             "fails %s label run --clip %s --concepts nosuch.txt 2>e6; grep -q 'nosuch.txt' e6; "
             "test $(wc -l <e6) = 1",
             d, bin, bin, cdir, bin, cdir, bin, cdir, bin, cdir, bin, cdir);
    CHECK(clipfx_sh(cmd) == 0);
}

TEST(concepts_parse)
{
    vlmn_concepts c;
    const char txt[] = "# header\n  red  \n\n\tblue sky\r\n#x\ngreen";
    CHECK_EQ_INT(vlmn_concepts_parse(txt, sizeof txt - 1, "t", &c), VLMN_OK);
    CHECK_EQ_INT(c.n, 3);
    if (c.n == 3) {
        CHECK_EQ_STR(c.items[0], "red");
        CHECK_EQ_STR(c.items[1], "blue sky");
        CHECK_EQ_STR(c.items[2], "green");
    }
    vlmn_concepts_free(&c);
    CHECK(vlmn_concepts_parse("a\nb\x01\n", 5, "t", &c) == VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "t: line 2") != NULL);
    char big[300];
    memset(big, 'a', sizeof big);
    CHECK(vlmn_concepts_parse(big, sizeof big, "t", &c) == VLMN_E_RANGE);
    /* the shipped list: COCO's 80 classes and the visual words, no duplicates */
    CHECK_EQ_INT(vlmn_concepts_default(&c), VLMN_OK);
    CHECK(c.n >= 250);
    CHECK_EQ_STR(c.items[0], "person");
    CHECK_EQ_STR(c.items[79], "toothbrush");
    vlmn_concepts_free(&c);
}

TEST_MAIN()
