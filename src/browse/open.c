/* Opening a run for browsing: run.sqlite read-only (a run still being recorded works:
 * its neuron tables are simply empty), and an in-memory table `m.nt` with one row per
 * neuron (stats, classification, first explanation, best score), indexed for the
 * table's filters and sorts, with FTS5 over the explanation text. */
#include "browse/browse_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "vlmn/analysis.h"
#include "vlmn/report.h"

static vlmn_status exec(vlmn_browse *b, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(b->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        vlmn_status st = vlmn_error(VLMN_E_DB, "%s/run.sqlite: %s", b->dir, msg ? msg : "error");
        sqlite3_free(msg);
        return st;
    }
    return VLMN_OK;
}

static bool has_table(sqlite3 *db, const char *name)
{
    sqlite3_stmt *s;
    bool ok = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM main.sqlite_master WHERE type='table' AND name=?", -1, &s, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        ok = sqlite3_step(s) == SQLITE_ROW;
        sqlite3_finalize(s);
    }
    return ok;
}

static int64_t one_int(sqlite3 *db, const char *sql, int64_t dflt)
{
    sqlite3_stmt *s;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    return v;
}

static void meta(sqlite3 *db, const char *key, char *out, size_t n)
{
    sqlite3_stmt *s;
    out[0] = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM run WHERE key = ?", -1, &s, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
}

static vlmn_status build_index(vlmn_browse *b)
{
    vlmn_status st;
    if ((st = exec(b, "ATTACH ':memory:' AS m;"
                      "CREATE TABLE m.nt (k INTEGER PRIMARY KEY, layer INTEGER, neuron INTEGER, max_act REAL,"
                      " min_act REAL, mean REAL, count INTEGER, p_v REAL, p_t REAL, p_m REAL, p_u REAL, label INTEGER,"
                      " expl TEXT, score REAL);")))
        return st;
    if (!b->has_neurons) return VLMN_OK;
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO m.nt SELECT n.layer * %d + n.neuron, n.layer, n.neuron, n.max_act, n.min_act, n.mean, "
             "n.count, %s, %s, %s FROM neurons n %s %s %s WHERE n.layer >= 0 AND n.layer < %d AND n.neuron >= 0 "
             "AND n.neuron < %d ORDER BY 1",
             b->n_ff,
             b->has_class ? "c.p_visual, c.p_text, c.p_multimodal, c.p_unknown, "
                            "CASE c.label WHEN 'visual' THEN 0 WHEN 'text' THEN 1 WHEN 'multimodal' THEN 2 "
                            "WHEN 'unknown' THEN 3 END"
                          : "NULL, NULL, NULL, NULL, NULL",
             b->has_expl ? "x.text" : "NULL", b->has_scores ? "sc.score" : "NULL",
             b->has_class ? "LEFT JOIN classification c ON c.layer = n.layer AND c.neuron = n.neuron" : "",
             b->has_expl ? "LEFT JOIN (SELECT layer, neuron, text, min(created) FROM explanations WHERE status = 'ok' "
                           "AND text IS NOT NULL GROUP BY layer, neuron) x "
                           "ON x.layer = n.layer AND x.neuron = n.neuron"
                         : "",
             b->has_scores ? "LEFT JOIN (SELECT layer, neuron, max(score) AS score FROM scores GROUP BY layer, neuron) "
                             "sc ON sc.layer = n.layer AND sc.neuron = n.neuron"
                           : "",
             b->n_layers, b->n_ff);
    if ((st = exec(b, "BEGIN")) || (st = exec(b, sql))) return st;
    static const char *const idx =
        "CREATE INDEX m.nt_act ON nt(max_act); CREATE INDEX m.nt_pv ON nt(p_v); CREATE INDEX m.nt_pt ON nt(p_t);"
        "CREATE INDEX m.nt_pm ON nt(p_m); CREATE INDEX m.nt_pu ON nt(p_u); CREATE INDEX m.nt_sc ON nt(score);"
        "CREATE INDEX m.nt_lact ON nt(label, max_act); CREATE INDEX m.nt_lpv ON nt(label, p_v);"
        "CREATE INDEX m.nt_lpt ON nt(label, p_t); CREATE INDEX m.nt_lpm ON nt(label, p_m);"
        "CREATE INDEX m.nt_lpu ON nt(label, p_u); CREATE INDEX m.nt_lk ON nt(label, k);"
        "CREATE VIRTUAL TABLE m.nfts USING fts5(expl, content='nt', content_rowid='k');"
        "INSERT INTO m.nfts(rowid, expl) SELECT k, expl FROM m.nt WHERE expl IS NOT NULL;"
        "COMMIT; ANALYZE m;";
    return exec(b, idx);
}

static vlmn_status figures(vlmn_browse *b)
{
    vlmn_classification *c = NULL;
    vlmn_stats *s = NULL;
    vlmn_status st = vlmn_classification_load(b->db, &c);
    if (st) return VLMN_OK; /* no classification: no figures (message on the page) */
    if (c->n_layers == b->n_layers && c->n_ff == b->n_ff && !vlmn_stats_compute(c, 0.03, &s)) {
        char *mem = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&mem, &len);
        if (f) {
            vlmn_report_write_figures(f, s);
            fclose(f);
            b->figures = vlmn_strdup(mem ? mem : "");
            free(mem); /* open_memstream's buffer comes from libc malloc */
        }
        for (int t = 0; t < 4; t++) b->label_count[t] = s->label_count[t];
    }
    vlmn_stats_free(s);
    vlmn_classification_free(c);
    return VLMN_OK;
}

vlmn_status vlmn_browse_open(const char *dir, vlmn_browse **out)
{
    *out = NULL;
    vlmn_browse *b = vlmn_calloc(1, sizeof *b);
    if (!b || !(b->dir = vlmn_strdup(dir))) {
        vlmn_free(b);
        return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
    }
    vlmn_status st;
    char path[4096], v[64];
    if ((size_t)snprintf(path, sizeof path, "%s/run.sqlite", dir) >= sizeof path) {
        st = vlmn_error(VLMN_E_ARG, "%s: path too long", dir);
        goto fail;
    }
    if (access(path, R_OK)) {
        st = vlmn_error(VLMN_E_NOTFOUND, "%s: not a run directory (no readable run.sqlite)", dir);
        goto fail;
    }
    /* The run is opened read-only through a URI (mode=ro) while the connection itself is
     * read-write: the in-memory index attached below inherits the connection's flags and
     * must be writable. */
    char uri[3 * sizeof path + 32];
    size_t u = (size_t)snprintf(uri, sizeof uri, "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr("/._-~", *c))
            uri[u++] = (char)*c;
        else
            u += (size_t)snprintf(uri + u, sizeof uri - u, "%%%02X", *c);
    }
    snprintf(uri + u, sizeof uri - u, "?mode=ro");
    if (sqlite3_open_v2(uri, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        st = vlmn_error(VLMN_E_DB, "%s: %s", path, b->db ? sqlite3_errmsg(b->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(b->db, 5000);
    if (!has_table(b->db, "run")) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: no run table (not a vlmn run)", path);
        goto fail;
    }
    meta(b->db, "status", b->status, sizeof b->status);
    meta(b->db, "images", b->images, sizeof b->images);
    meta(b->db, "n_layers", v, sizeof v);
    b->n_layers = atoi(v);
    meta(b->db, "n_ff", v, sizeof v);
    b->n_ff = atoi(v);
    meta(b->db, "top_n", v, sizeof v);
    b->top_n = atoi(v);
    if (b->n_layers < 0 || b->n_layers > (1 << 16) || b->n_ff < 0 || b->n_ff > (1 << 20)) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: run shape %d x %d out of range", path, b->n_layers, b->n_ff);
        goto fail;
    }
    b->n_samples = one_int(b->db, "SELECT count(*) FROM samples", 0);
    b->has_neurons = has_table(b->db, "neurons") && !strcmp(b->status, "complete");
    b->has_class = b->has_neurons && has_table(b->db, "classification");
    b->has_expl = b->has_neurons && has_table(b->db, "explanations");
    b->has_scores = b->has_neurons && has_table(b->db, "scores");
    b->has_sims = b->has_neurons && has_table(b->db, "simulations");
    if ((st = build_index(b))) goto fail;
    if (b->has_class && (st = figures(b))) goto fail;
    if (vlmn_traces_open(dir, &b->traces)) b->traces = NULL;
    *out = b;
    return VLMN_OK;
fail:
    vlmn_browse_close(b);
    return st;
}

void vlmn_browse_close(vlmn_browse *b)
{
    if (!b) return;
    vlmn_traces_close(b->traces);
    sqlite3_close(b->db);
    vlmn_free(b->figures);
    vlmn_free(b->dir);
    vlmn_free(b);
}
