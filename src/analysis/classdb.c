/* The classification in the run database: tables `classification` (one row per neuron)
 * and `classification_params` (one row: the thresholds and mode used). Written in one
 * transaction that replaces any earlier classification, so a reader never sees a mix. */
#include "vlmn/analysis.h"

#include <math.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

static const char schema_sql[] =
    "DROP TABLE IF EXISTS classification;"
    "DROP TABLE IF EXISTS classification_params;"
    "CREATE TABLE classification("
    " layer INTEGER NOT NULL, neuron INTEGER NOT NULL,"
    " p_visual REAL NOT NULL, p_text REAL NOT NULL, p_multimodal REAL NOT NULL, p_unknown REAL NOT NULL,"
    " label TEXT NOT NULL,"
    " n_top INTEGER NOT NULL, n_visual INTEGER NOT NULL, n_text INTEGER NOT NULL,"
    " n_multimodal INTEGER NOT NULL, n_unknown INTEGER NOT NULL,"
    " norm_max REAL,"
    " PRIMARY KEY(layer, neuron)) WITHOUT ROWID;"
    "CREATE TABLE classification_params("
    " t_v REAL NOT NULL, n_v INTEGER NOT NULL, t_t REAL NOT NULL, n_t INTEGER NOT NULL,"
    " normalize TEXT NOT NULL, n_layers INTEGER NOT NULL, n_ff INTEGER NOT NULL,"
    " label_tie_order TEXT NOT NULL, vlmn_version TEXT NOT NULL, created_utc TEXT NOT NULL);";

static vlmn_status db_fail(sqlite3 *db, const char *what)
{
    return vlmn_error(VLMN_E_DB, "classification: %s: %s", what, sqlite3_errmsg(db));
}

vlmn_status vlmn_classification_save(void *dbv, const vlmn_classification *c)
{
    sqlite3 *db = dbv;
    sqlite3_stmt *ins = NULL;
    vlmn_status st = VLMN_OK;
    /* A savepoint works both inside and outside a caller's transaction. */
    if (sqlite3_exec(db, "SAVEPOINT vlmn_classify", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, "begin");
    if (sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        st = db_fail(db, "create tables");
        goto fail;
    }
    {
        char when[32];
        time_t now = time(NULL);
        struct tm tmv;
        gmtime_r(&now, &tmv);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
        sqlite3_stmt *ps = NULL;
        if (sqlite3_prepare_v2(db, "INSERT INTO classification_params VALUES(?,?,?,?,?,?,?,?,?,?)", -1, &ps,
                               NULL) != SQLITE_OK) {
            st = db_fail(db, "prepare params");
            goto fail;
        }
        sqlite3_bind_double(ps, 1, c->params.t_v);
        sqlite3_bind_int(ps, 2, c->params.n_v);
        sqlite3_bind_double(ps, 3, c->params.t_t);
        sqlite3_bind_int(ps, 4, c->params.n_t);
        sqlite3_bind_text(ps, 5, vlmn_norm_name(c->params.norm), -1, SQLITE_STATIC);
        sqlite3_bind_int(ps, 6, c->n_layers);
        sqlite3_bind_int(ps, 7, c->n_ff);
        sqlite3_bind_text(ps, 8, "unknown,multimodal,text,visual", -1, SQLITE_STATIC);
        sqlite3_bind_text(ps, 9, vlmn_version(), -1, SQLITE_STATIC);
        sqlite3_bind_text(ps, 10, when, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(ps);
        sqlite3_finalize(ps);
        if (rc != SQLITE_DONE) {
            st = db_fail(db, "insert params");
            goto fail;
        }
    }
    if (sqlite3_prepare_v2(db, "INSERT INTO classification VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &ins,
                           NULL) != SQLITE_OK) {
        st = db_fail(db, "prepare insert");
        goto fail;
    }
    for (int l = 0; l < c->n_layers; l++) {
        for (int j = 0; j < c->n_ff; j++) {
            const vlmn_neuron_class *nc = &c->neurons[(int64_t)l * c->n_ff + j];
            sqlite3_bind_int(ins, 1, l);
            sqlite3_bind_int(ins, 2, j);
            for (int t = 0; t < VLMN_NT_COUNT; t++) sqlite3_bind_double(ins, 3 + t, vlmn_neuron_p(nc, t));
            sqlite3_bind_text(ins, 7, vlmn_ntype_name(nc->label), -1, SQLITE_STATIC);
            sqlite3_bind_int(ins, 8, nc->n_top);
            for (int t = 0; t < VLMN_NT_COUNT; t++)
                sqlite3_bind_int(ins, 9 + t, nc->n_top ? nc->count[t] : 0);
            if (isfinite(nc->max_act))
                sqlite3_bind_double(ins, 13, nc->max_act);
            else
                sqlite3_bind_null(ins, 13);
            if (sqlite3_step(ins) != SQLITE_DONE) {
                st = db_fail(db, "insert");
                goto fail;
            }
            sqlite3_reset(ins);
        }
    }
    sqlite3_finalize(ins);
    ins = NULL;
    if (sqlite3_exec(db, "RELEASE vlmn_classify", NULL, NULL, NULL) != SQLITE_OK) {
        st = db_fail(db, "commit");
        goto fail;
    }
    return VLMN_OK;
fail:
    sqlite3_finalize(ins);
    sqlite3_exec(db, "ROLLBACK TO vlmn_classify; RELEASE vlmn_classify", NULL, NULL, NULL);
    return st;
}

vlmn_status vlmn_classification_load(void *dbv, vlmn_classification **out)
{
    sqlite3 *db = dbv;
    sqlite3_stmt *s = NULL;
    vlmn_classification *c = NULL;
    vlmn_status st;
    *out = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT t_v, n_v, t_t, n_t, normalize, n_layers, n_ff FROM classification_params",
                                -1, &s, NULL);
    if (rc != SQLITE_OK) {
        if (strstr(sqlite3_errmsg(db), "no such table"))
            return vlmn_error(VLMN_E_NOTFOUND, "the run has no classification (run `vlmn classify RUN` first)");
        return db_fail(db, "read params");
    }
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return vlmn_error(VLMN_E_FORMAT, "classification_params: no row");
    }
    vlmn_classify_params p;
    p.t_v = sqlite3_column_double(s, 0);
    p.n_v = sqlite3_column_int(s, 1);
    p.t_t = sqlite3_column_double(s, 2);
    p.n_t = sqlite3_column_int(s, 3);
    int mode = vlmn_norm_parse((const char *)sqlite3_column_text(s, 4));
    int64_t n_layers = sqlite3_column_int64(s, 5), n_ff = sqlite3_column_int64(s, 6);
    sqlite3_finalize(s);
    s = NULL;
    if (mode < 0) return vlmn_error(VLMN_E_FORMAT, "classification_params: unknown normalisation mode");
    p.norm = (vlmn_norm_mode)mode;
    if ((st = vlmn_classify_check(&p))) return vlmn_error_prefix(st, "classification_params");
    /* Bound the grid before allocating: 2^20 layers or neurons per layer is far above
     * any model and keeps n_layers * n_ff within int64. */
    if (n_layers <= 0 || n_ff <= 0 || n_layers > (1 << 20) || n_ff > (1 << 20))
        return vlmn_error(VLMN_E_FORMAT, "classification_params: %lld layers x %lld neurons",
                          (long long)n_layers, (long long)n_ff);
    if ((st = vlmn_classification_create((int)n_layers, (int)n_ff, &c))) return st;
    c->params = p;
    if (sqlite3_prepare_v2(db,
                           "SELECT layer, neuron, label, n_top, n_visual, n_text, n_multimodal, n_unknown, norm_max"
                           " FROM classification",
                           -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(db, "read");
        goto fail;
    }
    int64_t rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t l = sqlite3_column_int64(s, 0), j = sqlite3_column_int64(s, 1);
        if (l < 0 || l >= n_layers || j < 0 || j >= n_ff) {
            st = vlmn_error(VLMN_E_FORMAT, "classification: neuron (%lld, %lld) outside %lld x %lld",
                            (long long)l, (long long)j, (long long)n_layers, (long long)n_ff);
            goto fail;
        }
        vlmn_neuron_class *nc = &c->neurons[l * n_ff + j];
        int label = vlmn_ntype_parse((const char *)sqlite3_column_text(s, 2));
        int64_t n_top = sqlite3_column_int64(s, 3), sum = 0;
        int64_t cnt[VLMN_NT_COUNT];
        int bad = label < 0 || n_top < 0 || n_top > UINT16_MAX;
        for (int t = 0; t < VLMN_NT_COUNT; t++) {
            cnt[t] = sqlite3_column_int64(s, 4 + t);
            if (cnt[t] < 0 || cnt[t] > UINT16_MAX) bad = 1;
            else sum += cnt[t];
        }
        if (nc->den != 0) {
            st = vlmn_error(VLMN_E_FORMAT, "classification: neuron (%lld, %lld) twice", (long long)l, (long long)j);
            goto fail;
        }
        if (bad || sum != n_top) {
            st = vlmn_error(VLMN_E_FORMAT, "classification: neuron (%lld, %lld): bad label or counts",
                            (long long)l, (long long)j);
            goto fail;
        }
        nc->n_top = (uint16_t)n_top;
        if (n_top == 0) {
            nc->den = 1;
            nc->count[VLMN_NT_UNKNOWN] = 1;
        } else {
            nc->den = (uint16_t)n_top;
            for (int t = 0; t < VLMN_NT_COUNT; t++) nc->count[t] = (uint16_t)cnt[t];
        }
        nc->label = (uint8_t)label;
        nc->max_act = sqlite3_column_type(s, 8) == SQLITE_NULL ? NAN : (float)sqlite3_column_double(s, 8);
        rows++;
    }
    if (rc != SQLITE_DONE) {
        st = db_fail(db, "read");
        goto fail;
    }
    sqlite3_finalize(s);
    s = NULL;
    /* In-range rows without duplicates numbering n_layers * n_ff cover every neuron. */
    if (rows != n_layers * n_ff) {
        st = vlmn_error(VLMN_E_FORMAT, "classification: %lld rows for %lld x %lld neurons", (long long)rows,
                        (long long)n_layers, (long long)n_ff);
        goto fail;
    }
    *out = c;
    return VLMN_OK;
fail:
    sqlite3_finalize(s);
    vlmn_classification_free(c);
    return st;
}
