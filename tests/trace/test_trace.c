/* End to end on a tiny generated LLaVA: `vlmn trace` of 20 neurons x 10 samples
 * (top:1-10 of a top-20 run) must store exactly the slices of `vlmn probe` output
 * (activations.npy [L, T, F], tokens.json) of those samples: bit-identical floats,
 * same ids, pieces, modalities; `top:1,5,9,13,17` must pick exactly those ranks of the
 * recorded lists (read back independently from the run's `top` table); a second
 * `vlmn trace` with more ranks stores only the new pairs. */
#include "test.h"
#include "vlmn/dataset.h"
#include "vlmn/npy.h"
#include "vlmn/run.h"
#include "vlmn/select.h"
#include "vlmn/trace.h"

#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "e2e_fixture.h"

static e2e_case C;
static int setup_ok = -1;

static bool setup(void)
{
    if (setup_ok >= 0) return setup_ok;
    setup_ok = 0;
    const char *bin = getenv("VLMN_BIN");
    if (!bin || !e2e_case_init(&C, "trace_e2e", "tiny", "data.json")) return false;
    char *a[] = {(char *)bin, "make-model", "--preset", "tiny", "--seed", "7", "-q", "-o", C.prefix, NULL};
    char *b[] = {(char *)bin, "make-dataset", "-n", "24", "--seed", "9", "-o", C.dsdir, NULL};
    char *c[] = {(char *)bin, "record", "-m", C.text, "--mmproj", C.mmproj, "--data", C.data, "--images", C.dsdir,
                 "-o", C.run, "--top-n", "20", "-t", "1", "-q", NULL};
    if (e2e_run(a) || e2e_run(b) || e2e_run(c)) return false;
    setup_ok = 1;
    return true;
}

TEST(top_ranks_are_the_recorded_ranks)
{
    CHECK(setup());
    vlmn_run *run = NULL;
    CHECK(vlmn_run_open(C.run, &run) == VLMN_OK);
    if (!run) return;
    vlmn_selection *s = NULL;
    CHECK(vlmn_select(run, "random:20:5", "top:1,5,9,13,17", &s) == VLMN_OK);
    if (!s) {
        vlmn_run_close(run);
        return;
    }
    CHECK_EQ_INT(s->n_neurons, 20);
    CHECK_EQ_INT(s->n_missing, 0);
    sqlite3 *db = NULL;
    char path[700];
    snprintf(path, sizeof path, "%s/run.sqlite", C.run);
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_stmt *q = NULL;
    CHECK(sqlite3_prepare_v2(db, "SELECT sample_index FROM top WHERE layer = ? AND neuron = ? AND rank = ?", -1, &q,
                             NULL) == SQLITE_OK);
    static const int ranks[] = {1, 5, 9, 13, 17};
    for (int64_t i = 0; i < s->n_neurons; i++) {
        CHECK_EQ_INT(s->off[i + 1] - s->off[i], 5);
        if (i) CHECK(s->neurons[i - 1].layer < s->neurons[i].layer ||
                     (s->neurons[i - 1].layer == s->neurons[i].layer && s->neurons[i - 1].neuron < s->neurons[i].neuron));
        for (int k = 0; k < 5; k++) {
            sqlite3_reset(q);
            sqlite3_bind_int(q, 1, s->neurons[i].layer);
            sqlite3_bind_int(q, 2, s->neurons[i].neuron);
            sqlite3_bind_int(q, 3, ranks[k]);
            CHECK(sqlite3_step(q) == SQLITE_ROW);
            CHECK_EQ_INT(s->samples[s->off[i] + k], sqlite3_column_int64(q, 0));
            CHECK_EQ_INT(s->rank[s->off[i] + k], ranks[k]);
        }
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    vlmn_selection_free(s);
    /* the same seed gives the same neurons; another seed others */
    vlmn_selection *a = NULL, *b = NULL;
    CHECK(vlmn_select(run, "random:20:5", "ids:0,3", &a) == VLMN_OK);
    CHECK(vlmn_select(run, "random:20:6", "ids:0,3", &b) == VLMN_OK);
    if (a && b) {
        CHECK_EQ_INT(a->n_samples, 2);
        CHECK_EQ_INT(a->distinct[0], 0);
        CHECK_EQ_INT(a->distinct[1], 3);
        CHECK(memcmp(a->neurons, b->neurons, 20 * sizeof *a->neurons) != 0);
    }
    vlmn_selection_free(a);
    vlmn_selection_free(b);
    /* out of range */
    CHECK(vlmn_select(run, "all", "top:21", &a) == VLMN_E_RANGE);
    CHECK(strstr(vlmn_errmsg(), "out of range") != NULL);
    CHECK(vlmn_select(run, "all", "ids:24", &a) == VLMN_E_RANGE);
    CHECK(vlmn_select(run, "9:0", "top:1", &a) == VLMN_E_RANGE);
    CHECK(vlmn_select(run, "label=visual", "top:1", &a) != VLMN_OK); /* not classified */
    CHECK(strstr(vlmn_errmsg(), "classif") != NULL);
    vlmn_run_close(run);
}

static int trace_cli(const char *neurons, const char *samples)
{
    char *a[] = {(char *)getenv("VLMN_BIN"), "trace", C.run, "--neurons", (char *)neurons, "--samples", (char *)samples,
                 "-t", "1", "-q", NULL};
    return e2e_run(a);
}

TEST(traces_equal_probe_slices)
{
    CHECK(setup());
    CHECK_EQ_INT(trace_cli("random:20:11", "top:1-10"), 0);
    vlmn_traces *t = NULL;
    CHECK(vlmn_traces_open(C.run, &t) == VLMN_OK);
    if (!t) return;
    vlmn_neuron_ref *nr = NULL;
    int64_t nn = 0;
    CHECK(vlmn_traces_neurons(t, &nr, &nn) == VLMN_OK);
    CHECK_EQ_INT(nn, 20);
    uint32_t *ss = NULL;
    int64_t ns = 0;
    CHECK(vlmn_traces_samples(t, &ss, &ns) == VLMN_OK);
    CHECK(ns >= 10 && ns <= 24);
    int64_t pairs = 0, mismatches = 0;
    for (int64_t k = 0; k < ns; k++) {
        e2e_probe po = {0};
        bool ok = e2e_probe_sample(&C, ss[k], NULL, &po);
        CHECK_MSG(ok, "probe of sample %u", ss[k]);
        vlmn_trace_sample *ts = NULL;
        CHECK(vlmn_traces_sample(t, ss[k], &ts) == VLMN_OK);
        if (ok && ts) {
            int64_t L = po.acts->shape[0], T = po.acts->shape[1];
            CHECK_EQ_INT(ts->n_tokens, T);
            CHECK_EQ_INT(cJSON_GetArraySize(po.tokens), T);
            for (int64_t i = 0; i < T && i < ts->n_tokens; i++) {
                cJSON *o = cJSON_GetArrayItem(po.tokens, (int)i);
                CHECK_EQ_INT(ts->ids[i], (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "id")));
                CHECK_EQ_STR(ts->pieces[i], cJSON_GetStringValue(cJSON_GetObjectItem(o, "piece")));
                CHECK_EQ_INT(ts->modality[i], e2e_probe_modality(&po, i));
            }
            /* one 3 x 3 grid at the first image position (tiny: 42 px, patch 14) */
            CHECK_EQ_INT(ts->n_grids, 1);
            if (ts->n_grids == 1) {
                CHECK_EQ_INT(ts->grids[0].rows, 3);
                CHECK_EQ_INT(ts->modality[ts->grids[0].first_pos], 0);
                CHECK(ts->grids[0].first_pos == 0 || ts->modality[ts->grids[0].first_pos - 1] != 0);
            }
            for (int64_t i = 0; i < nn; i++) {
                float *acts = NULL;
                int64_t n = 0;
                if (!vlmn_traces_has(t, nr[i].layer, nr[i].neuron, ss[k])) continue;
                CHECK(vlmn_traces_get(t, nr[i].layer, nr[i].neuron, ss[k], &acts, &n) == VLMN_OK);
                CHECK_EQ_INT(n, T);
                CHECK(nr[i].layer < L);
                mismatches += e2e_probe_mismatches(&po, nr[i].layer, nr[i].neuron, acts, n);
                pairs++;
                vlmn_free(acts);
            }
        }
        vlmn_trace_sample_free(ts);
        e2e_probe_free(&po);
    }
    CHECK_EQ_INT(pairs, 200);
    CHECK_EQ_INT(mismatches, 0); /* bit-identical to vlmn probe */
    /* a missing pair */
    float *x = NULL;
    int64_t n;
    CHECK(vlmn_traces_get(t, 0, 0, 999, &x, &n) == VLMN_E_NOTFOUND);
    vlmn_free(nr);
    vlmn_free(ss);
    vlmn_traces_close(t);
    /* more ranks of the same neurons: only the new pairs are stored */
    CHECK_EQ_INT(trace_cli("random:20:11", "top:1-12"), 0);
    CHECK(vlmn_traces_open(C.run, &t) == VLMN_OK);
    if (!t) return;
    sqlite3 *db = NULL;
    char path[700];
    snprintf(path, sizeof path, "%s/traces.sqlite", C.run);
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_stmt *q = NULL;
    CHECK(sqlite3_prepare_v2(db, "SELECT count(*), count(DISTINCT offset) FROM traces", -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int64(q, 0), 240);
    CHECK_EQ_INT(sqlite3_column_int64(q, 1), 240);
    sqlite3_finalize(q);
    sqlite3_close(db);
    vlmn_traces_close(t);
}

TEST(store_absent)
{
    vlmn_traces *t = NULL;
    CHECK(vlmn_traces_open("/nonexistent-run", &t) == VLMN_E_NOTFOUND);
}

TEST_MAIN()
