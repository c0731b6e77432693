/* The run database (RUN/run.sqlite): run provenance (key/value), samples, neurons.
 * Schema in docs/run-format.md; everything goes through prepared statements. */
#include "store/store.h"
#include "core/alloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS samples ("
    "  sample_index INTEGER PRIMARY KEY,"  /* index in the dataset file, 0-based */
    "  sample_id TEXT NOT NULL,"
    "  image TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('ok','failed')),"
    "  error TEXT,"
    "  n_image_tokens INTEGER NOT NULL,"
    "  n_text_tokens INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS neurons ("
    "  layer INTEGER NOT NULL, neuron INTEGER NOT NULL,"
    "  max_act REAL, min_act REAL, mean REAL, count INTEGER NOT NULL,"
    "  PRIMARY KEY (layer, neuron)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS top ("
    "  layer INTEGER NOT NULL, neuron INTEGER NOT NULL, rank INTEGER NOT NULL,"
    "  sample_index INTEGER NOT NULL, max_act REAL NOT NULL,"
    "  PRIMARY KEY (layer, neuron, rank)) WITHOUT ROWID;";

bool vlmn_db_has_table(sqlite3 *db, const char *name)
{
    sqlite3_stmt *s = NULL;
    bool has = sqlite3_prepare_v2(db, "SELECT 1 FROM main.sqlite_master WHERE type IN ('table','view') AND name=?", -1,
                                  &s, NULL) == SQLITE_OK &&
               sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return has;
}

bool vlmn_db_has_column(sqlite3 *db, const char *table, const char *column)
{
    sqlite3_stmt *s = NULL;
    bool has = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, column, -1, SQLITE_STATIC);
        has = sqlite3_step(s) == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    return has;
}

const char *vlmn_db_col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

double vlmn_db_col_num(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NAN : sqlite3_column_double(s, i);
}

vlmn_status vlmn_db_err(sqlite3 *db, const char *what)
{
    return vlmn_error(VLMN_E_DB, "%s: %s: %s", sqlite3_db_filename(db, "main"), what, sqlite3_errmsg(db));
}

vlmn_status vlmn_db_open(const char *path, bool create, sqlite3 **out)
{
    *out = NULL;
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        vlmn_status st = vlmn_error(VLMN_E_DB, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return st;
    }
    sqlite3_busy_timeout(db, 10000);
    vlmn_status st;
    if ((st = vlmn_db_exec(db, "PRAGMA synchronous=FULL")) || (create && (st = vlmn_db_exec(db, SCHEMA)))) {
        sqlite3_close(db);
        return st;
    }
    *out = db;
    return VLMN_OK;
}

void vlmn_db_close(sqlite3 *db) { sqlite3_close(db); }

vlmn_status vlmn_db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        vlmn_status st = vlmn_error(VLMN_E_DB, "%s: %s", sqlite3_db_filename(db, "main"), msg ? msg : "error");
        sqlite3_free(msg);
        return st;
    }
    return VLMN_OK;
}

vlmn_status vlmn_db_set_meta(sqlite3 *db, const char *key, const char *fmt, ...)
{
    char val[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO run(key, value) VALUES (?, ?)", -1, &s, NULL) != SQLITE_OK)
        return vlmn_db_err(db, "run");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, val, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? VLMN_OK : vlmn_db_err(db, "run");
}

vlmn_status vlmn_db_get_meta(sqlite3 *db, const char *key, char *buf, size_t n)
{
    buf[0] = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT value FROM run WHERE key = ?", -1, &s, NULL) != SQLITE_OK)
        return vlmn_db_err(db, "run");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    vlmn_status st = VLMN_OK;
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(s, 0);
        snprintf(buf, n, "%s", v ? (const char *)v : "");
    } else if (rc == SQLITE_DONE) {
        st = vlmn_error(VLMN_E_NOTFOUND, "%s: run key '%s' missing", sqlite3_db_filename(db, "main"), key);
    } else {
        st = vlmn_db_err(db, "run");
    }
    sqlite3_finalize(s);
    return st;
}

static bool list_has(const char *list, const char *item, size_t len)
{
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && !strncmp(p, item, len)) return true;
        p += n + (e != NULL);
    }
    return false;
}

vlmn_status vlmn_db_meta_add_items(sqlite3 *db, const char *key, const char *items)
{
    char list[1024];
    vlmn_db_get_meta(db, key, list, sizeof list); /* missing: empty */
    for (const char *p = items; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        size_t used = strlen(list);
        if (n && !list_has(list, p, n)) {
            if (used + n + 2 > sizeof list)
                return vlmn_error(VLMN_E_RANGE, "%s: run key '%s' too long", sqlite3_db_filename(db, "main"), key);
            snprintf(list + used, sizeof list - used, "%s%.*s", used ? "," : "", (int)n, p);
        }
        p += n + (e != NULL);
    }
    return vlmn_db_set_meta(db, key, "%s", list);
}

vlmn_status vlmn_db_put_sample(sqlite3 *db, const vlmn_store_sample *x)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO samples(sample_index, sample_id, image, status, error, "
                           "n_image_tokens, n_text_tokens) VALUES (?,?,?,?,?,?,?)",
                           -1, &s, NULL) != SQLITE_OK)
        return vlmn_db_err(db, "samples");
    sqlite3_bind_int64(s, 1, x->index);
    sqlite3_bind_text(s, 2, x->id ? x->id : "", -1, SQLITE_TRANSIENT);
    if (x->image) sqlite3_bind_text(s, 3, x->image, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, 3);
    sqlite3_bind_text(s, 4, x->ok ? "ok" : "failed", -1, SQLITE_STATIC);
    if (x->error) sqlite3_bind_text(s, 5, x->error, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, 5);
    sqlite3_bind_int64(s, 6, x->n_image_tokens);
    sqlite3_bind_int64(s, 7, x->n_text_tokens);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? VLMN_OK : vlmn_db_err(db, "samples");
}

vlmn_status vlmn_db_write_neurons(sqlite3 *db, vlmn_rec *rec)
{
    const vlmn_rec_params *p = vlmn_rec_get_params(rec);
    const vlmn_neuron_stats *stats = vlmn_rec_stats(rec);
    vlmn_status st;
    if ((st = vlmn_db_exec(db, "BEGIN; DELETE FROM neurons;"))) return st;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "INSERT INTO neurons(layer, neuron, max_act, min_act, mean, count) VALUES (?,?,?,?,?,?)",
                           -1, &s, NULL) != SQLITE_OK) {
        st = vlmn_db_err(db, "neurons");
        goto fail;
    }
    for (int l = 0; l < p->n_layers; l++)
        for (int j = 0; j < p->n_ff; j++) {
            const vlmn_neuron_stats *x = &stats[(int64_t)l * p->n_ff + j];
            sqlite3_bind_int(s, 1, l);
            sqlite3_bind_int(s, 2, j);
            /* no counted token: NULL rather than +-inf */
            if (x->count) {
                sqlite3_bind_double(s, 3, x->max_act);
                sqlite3_bind_double(s, 4, x->min_act);
                sqlite3_bind_double(s, 5, x->sum / (double)x->count);
            } else {
                sqlite3_bind_null(s, 3);
                sqlite3_bind_null(s, 4);
                sqlite3_bind_null(s, 5);
            }
            sqlite3_bind_int64(s, 6, (sqlite3_int64)x->count);
            if (sqlite3_step(s) != SQLITE_DONE) {
                st = vlmn_db_err(db, "neurons");
                sqlite3_finalize(s);
                goto fail;
            }
            sqlite3_reset(s);
        }
    sqlite3_finalize(s);
    return vlmn_db_exec(db, "COMMIT");
fail:
    vlmn_db_exec(db, "ROLLBACK");
    return st;
}

vlmn_status vlmn_db_write_top(sqlite3 *db, vlmn_rec *rec)
{
    const vlmn_rec_params *p = vlmn_rec_get_params(rec);
    const vlmn_top_entry *top = vlmn_rec_top(rec);
    vlmn_status st;
    if ((st = vlmn_db_exec(db, "BEGIN; DELETE FROM top;"))) return st;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "INSERT INTO top(layer, neuron, rank, sample_index, max_act) VALUES (?,?,?,?,?)", -1,
                           &s, NULL) != SQLITE_OK) {
        st = vlmn_db_err(db, "top");
        goto fail;
    }
    for (int l = 0; l < p->n_layers; l++)
        for (int j = 0; j < p->n_ff; j++) {
            const vlmn_top_entry *e = &top[((int64_t)l * p->n_ff + j) * p->top_n];
            for (int k = 0; k < p->top_n && e[k].sample != VLMN_REC_EMPTY; k++) {
                sqlite3_bind_int(s, 1, l);
                sqlite3_bind_int(s, 2, j);
                sqlite3_bind_int(s, 3, k + 1);
                sqlite3_bind_int64(s, 4, e[k].sample);
                sqlite3_bind_double(s, 5, e[k].max_act);
                if (sqlite3_step(s) != SQLITE_DONE) {
                    st = vlmn_db_err(db, "top");
                    sqlite3_finalize(s);
                    goto fail;
                }
                sqlite3_reset(s);
            }
        }
    sqlite3_finalize(s);
    return vlmn_db_exec(db, "COMMIT");
fail:
    vlmn_db_exec(db, "ROLLBACK");
    return st;
}
