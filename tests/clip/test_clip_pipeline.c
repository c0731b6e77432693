/* `vlmn simulate` with the CLIP simulator through the real pipeline (what --visual clip
 * runs once the CLI has CLIP's tokenizer): planted model and dataset, record, classify,
 * trace the planted visual neurons, store explanations, then vlmn_simulate_run with the
 * tiny reference CLIP (4x4 patches) and a fixed tokenizer: every sample is simulated on
 * its 16x16 grid (pad geometry of images of many sizes, 4x4 -> 16x16 resampling), values
 * in 0..10, and vlmn_score_run scores each neuron. The tiny CLIP is random, so the scores'
 * values are not checked here (test_clip.c checks the numbers against the reference). */
#include "test.h"
#include "clip/clip_fixture.h"

#include "vlmn/clip.h"
#include "vlmn/pipeline.h"
#include "vlmn/run.h"

#include <sqlite3.h>
#include <unistd.h>

TEST(clip_simulate_pipeline)
{
    const char *bin = getenv("VLMN_BIN");
    CHECK(bin != NULL);
    if (!bin) return;
    char d[256], cmd[8192];
    snprintf(d, sizeof d, "%s/test_clip_pipeline.%d", test_tmp_dir(), (int)getpid());
    snprintf(cmd, sizeof cmd, "%s score %s/run >/dev/null", bin, d);
    if (clipfx_planted_run(bin, d, 40, "top:3,7,11,15,19") || clipfx_sh(cmd)) {
        CHECK(0);
        return;
    }
    char run[700];
    snprintf(run, sizeof run, "%s/run", d);
    vlmn_run *r = NULL;
    CHECK_EQ_INT(vlmn_run_open(run, &r), VLMN_OK);
    if (!r) return;
    CHECK(sqlite3_exec(vlmn_run_db(r),
                       "INSERT INTO explanations (layer, neuron, sampling, explainer, images, kind, samples, max_act, "
                       "text, status, prompt_hash, settings, created) VALUES "
                       "(0, 47, 'top', 't', 'modulated', 'visual', '[]', 1, 'red shapes', 'ok', '', '{}', 'now'),"
                       "(1, 40, 'top', 't', 'modulated', 'visual', '[]', 1, 'green shapes', 'ok', '', '{}', 'now')",
                       NULL, NULL, NULL) == SQLITE_OK);
    vlmn_run_close(r);
    char cdir[600];
    snprintf(cdir, sizeof cdir, "%s/clip/tiny", test_data_dir());
    vlmn_clip *c = NULL;
    CHECK_EQ_INT(vlmn_clip_load(cdir, NULL, VLMN_PREC_FAST, &c), VLMN_OK);
    if (!c) return;
    vlmn_xrun_summary s;
    CHECK_EQ_INT(clipfx_simulate(run, c, &s), VLMN_OK);
    CHECK_EQ_INT(s.neurons, 2);
    CHECK_EQ_INT(s.answered, 10);
    CHECK_EQ_INT(s.failed, 0);
    CHECK_EQ_INT(s.llm.requests, 0);
    /* again: nothing left to do */
    CHECK_EQ_INT(clipfx_simulate(run, c, &s), VLMN_OK);
    CHECK_EQ_INT(s.already, 10);
    vlmn_clip_free(c);
    int64_t ns = 0, nu = 0;
    CHECK_EQ_INT(vlmn_score_run(run, &ns, &nu), VLMN_OK);
    CHECK_EQ_INT(vlmn_run_open(run, &r), VLMN_OK);
    if (!r) return;
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(vlmn_run_db(r),
                       "SELECT n, sim FROM simulations WHERE simulator='clip-tiny' AND mode='clip' AND "
                       "modality='visual' AND status='ok'",
                       -1, &q, NULL);
    int rows = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int n = sqlite3_column_int(q, 0);
        CHECK_EQ_INT(n, 256);
        CHECK_EQ_INT(sqlite3_column_bytes(q, 1), n * 4);
        const float *v = sqlite3_column_blob(q, 1);
        bool ok = v != NULL;
        for (int i = 0; ok && i < n; i++) ok = v[i] >= 0 && v[i] <= 10;
        CHECK(ok);
        rows++;
    }
    sqlite3_finalize(q);
    CHECK_EQ_INT(rows, 10);
    sqlite3_prepare_v2(vlmn_run_db(r),
                       "SELECT COUNT(*) FROM scores WHERE explainer='t' AND simulator='clip-tiny:clip' AND n_visual=1280",
                       -1, &q, NULL);
    CHECK(sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 2);
    sqlite3_finalize(q);
    vlmn_run_close(r);
}

TEST_MAIN()
