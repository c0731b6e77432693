/* libFuzzer target for the browser's request layer (src/browse/route.c) without a socket:
 * the bytes are a raw request target ("/neurons?label=visual&q=..."). A parse must never
 * read outside the input, and an accepted request must be one the pages can use as is:
 * a known page, ids and numbers in range, the search text bounded and NUL-terminated, and
 * its FTS5 query (browse_fts_query) accepted by SQLite's FTS5 as a query, never as syntax
 * error. Everything refused must come with a 4xx status and a message. */
#include "browse/browse_int.h"

#include <math.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static sqlite3_stmt *fts_stmt(void)
{
    static sqlite3 *db;
    static sqlite3_stmt *st;
    if (st) return st;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "CREATE VIRTUAL TABLE f USING fts5(expl);"
                     "INSERT INTO f VALUES ('the tokens \"\xe2\x96\x81" "red\", \"\xe2\x96\x81" "circle\"'), "
                     "('red image patches'), ('things (reply 185)');",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT rowid FROM f WHERE f MATCH ?", -1, &st, NULL) != SQLITE_OK)
        abort();
    return st;
}

static void check_req(const vlmn_browse_req *r)
{
    if (r->page < VLMN_BP_OVERVIEW || r->page > VLMN_BP_MODULATED) abort();
    if (r->api && (r->page == VLMN_BP_IMAGE || r->page == VLMN_BP_MODULATED)) abort();
    if (r->page == VLMN_BP_NEURON || r->page == VLMN_BP_MODULATED)
        if (r->layer < 0 || r->neuron < 0 || r->layer > 999999999999LL || r->neuron > 999999999999LL) abort();
    if ((r->page == VLMN_BP_SAMPLE || r->page == VLMN_BP_IMAGE || r->page == VLMN_BP_MODULATED) &&
        (r->sample < 0 || r->sample > 999999999999LL))
        abort();
    if (r->f_layer < -1 || r->f_label < -1 || r->f_label > 3) abort();
    for (int t = 0; t < 4; t++)
        if (!isnan(r->p_min[t]) && !(r->p_min[t] >= 0 && r->p_min[t] <= 1)) abort();
    if (!isnan(r->act_min) && !isfinite(r->act_min)) abort();
    if (!isnan(r->score_min) && !isfinite(r->score_min)) abort();
    if (r->sort < VLMN_BS_NEURON || r->sort > VLMN_BS_SCORE) abort();
    if (r->page_no < 1 || r->page_no > 100000000 || r->per < 1 || r->per > VLMN_BROWSE_MAX_PER) abort();
    size_t ql = strnlen(r->q, sizeof r->q);
    if (ql > VLMN_BROWSE_MAX_Q) abort();
    if (r->page != VLMN_BP_NEURONS && ql) abort();
    if (!ql) return;
    char fq[VLMN_BROWSE_MAX_Q * 2 + 8];
    int terms = browse_fts_query(r->q, fq, sizeof fq);
    if (terms < 0) abort(); /* the documented size must suffice for any accepted q */
    if (terms == 0) return; /* the page answers 400 "no searchable words" */
    sqlite3_stmt *st = fts_stmt();
    sqlite3_bind_text(st, 1, fq, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
    if (rc != SQLITE_DONE) abort(); /* an FTS5 syntax error: user bytes leaked into syntax */
    sqlite3_reset(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * VLMN_BROWSE_MAX_URI) return 0;
    /* An exact-size heap copy, so ASan sees any read past the end. */
    char *uri = malloc(size ? size : 1);
    if (!uri) return 0;
    memcpy(uri, data, size);
    vlmn_browse_req r;
    char err[160];
    memset(err, 'x', sizeof err);
    int code = vlmn_browse_parse(uri, size, &r, err, sizeof err);
    if (code == 200) {
        check_req(&r);
    } else {
        if (code != 400 && code != 404 && code != 414) abort();
        if (!memchr(err, 0, sizeof err) || !err[0]) abort(); /* a message, terminated */
    }
    free(uri);
    return 0;
}
