/* Opening a run for browsing: run.sqlite read-only (a run still being recorded works:
 * its neuron tables are simply empty), and a table `m.nt` with one row per neuron (stats,
 * classification, first explanation, best Pearson score), indexed for the table's filters and
 * sorts, with FTS5 over the explanation text. `m` is RUN/browse-index.sqlite, attached
 * read-only, when `vlmn browse RUN --index` wrote it and it still matches the run (its
 * fingerprint), else an in-memory database built at start. */
#include "browse/browse_int.h"

#include <errno.h>
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

/* SQLite URI of a path (percent-encoded) with ?mode=MODE. */
static void path_uri(const char *path, const char *mode, char *uri, size_t n)
{
    size_t u = (size_t)snprintf(uri, n, "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c && u + 4 < n; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr("/._-~", *c))
            uri[u++] = (char)*c;
        else
            u += (size_t)snprintf(uri + u, n - u, "%%%02X", *c);
    }
    snprintf(uri + u, n - u, "?mode=%s", mode);
}

static vlmn_status attach(vlmn_browse *b, const char *uri)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(b->db, "ATTACH ? AS m", -1, &s, NULL) != SQLITE_OK)
        return vlmn_error(VLMN_E_DB, "%s: attach: %s", b->dir, sqlite3_errmsg(b->db));
    sqlite3_bind_text(s, 1, uri, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return vlmn_error(VLMN_E_DB, "%s: attach index: %s", b->dir, sqlite3_errmsg(b->db));
    return VLMN_OK;
}

/* What the index is built from: the run's shape and state, the classification's time and
 * the count and newest time of explanations and scores. An index whose fingerprint differs
 * is not used. */
static void fingerprint(vlmn_browse *b, char *out, size_t n)
{
    char end[64], cls[64] = "-", x[96] = "-", sc[96] = "-";
    sqlite3_stmt *s;
    meta(b->db, "end_time", end, sizeof end);
    if (b->has_class && sqlite3_prepare_v2(b->db, "SELECT created_utc FROM classification_params", -1, &s, NULL) ==
                            SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
            snprintf(cls, sizeof cls, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
    }
    static const char *const q[2] = {"SELECT count(*) || ' ' || ifnull(max(created), '') FROM explanations",
                                     "SELECT count(*) || ' ' || ifnull(max(created), '') FROM scores"};
    char *dst[2] = {x, sc};
    bool has[2] = {b->has_expl, b->has_scores};
    for (int i = 0; i < 2; i++) {
        if (!has[i] || sqlite3_prepare_v2(b->db, q[i], -1, &s, NULL) != SQLITE_OK) continue;
        if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
            snprintf(dst[i], sizeof x, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
    }
    snprintf(out, n, "vlmn-browse-index 2|%d x %d|%s %s|%lld samples|class %s|expl %s|scores %s", b->n_layers, b->n_ff,
             b->status, end, (long long)b->n_samples, cls, x, sc);
}

/* Create and fill m.nt, its indexes, the FTS5 table and m.meta in the attached m. */
static vlmn_status create_index(vlmn_browse *b, const char *fp)
{
    vlmn_status st;
    if ((st = exec(b, "CREATE TABLE m.nt (k INTEGER PRIMARY KEY, layer INTEGER, neuron INTEGER, max_act REAL,"
                      " min_act REAL, mean REAL, count INTEGER, p_v REAL, p_t REAL, p_m REAL, p_u REAL, label INTEGER,"
                      " expl TEXT, score REAL);"
                      "CREATE TABLE m.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")))
        return st;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(b->db, "INSERT INTO m.meta VALUES ('fingerprint', ?)", -1, &s, NULL) != SQLITE_OK)
        return vlmn_error(VLMN_E_DB, "%s: index meta: %s", b->dir, sqlite3_errmsg(b->db));
    sqlite3_bind_text(s, 1, fp, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return vlmn_error(VLMN_E_DB, "%s: index meta: %s", b->dir, sqlite3_errmsg(b->db));
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
             b->has_expl ? "LEFT JOIN (SELECT layer, neuron, text, min((explainer GLOB 'label:*') || created) FROM "
                           "explanations WHERE status = 'ok' "
                           "AND text IS NOT NULL GROUP BY layer, neuron) x "
                           "ON x.layer = n.layer AND x.neuron = n.neuron"
                         : "",
             b->has_scores ? "LEFT JOIN (SELECT layer, neuron, max(score) AS score FROM scores WHERE scorer = 'pearson' "
                             "GROUP BY layer, neuron) "
                             "sc ON sc.layer = n.layer AND sc.neuron = n.neuron"
                           : "",
             b->n_layers, b->n_ff);
    if ((st = exec(b, "BEGIN")) || (st = exec(b, sql))) return st;
    /* One index per sort key, alone (unfiltered sorts) and after the label (the label
     * links and label filters walk it in order instead of sorting); ANALYZE samples
     * (analysis_limit) so that the planner chooses between them. */
    static const char *const idx =
        "CREATE INDEX m.nt_act ON nt(max_act); CREATE INDEX m.nt_pv ON nt(p_v); CREATE INDEX m.nt_pt ON nt(p_t);"
        "CREATE INDEX m.nt_pm ON nt(p_m); CREATE INDEX m.nt_pu ON nt(p_u); CREATE INDEX m.nt_sc ON nt(score);"
        "CREATE INDEX m.nt_lact ON nt(label, max_act); CREATE INDEX m.nt_lpv ON nt(label, p_v);"
        "CREATE INDEX m.nt_lpt ON nt(label, p_t); CREATE INDEX m.nt_lpm ON nt(label, p_m);"
        "CREATE INDEX m.nt_lpu ON nt(label, p_u); CREATE INDEX m.nt_lsc ON nt(label, score);"
        "CREATE INDEX m.nt_lk ON nt(label, k);"
        "CREATE VIRTUAL TABLE m.nfts USING fts5(expl, content='nt', content_rowid='k');"
        "INSERT INTO m.nfts(rowid, expl) SELECT k, expl FROM m.nt WHERE expl IS NOT NULL;"
        "COMMIT; PRAGMA analysis_limit = 1000; ANALYZE m;";
    return exec(b, idx);
}

/* Use RUN/browse-index.sqlite when it exists and matches the run; else build in memory. */
static vlmn_status build_index(vlmn_browse *b)
{
    char path[4096], uri[3 * 4096 + 32], fp[512], have[512] = "";
    vlmn_status st;
    fingerprint(b, fp, sizeof fp);
    snprintf(path, sizeof path, "%s/%s", b->dir, VLMN_BROWSE_INDEX_FILE);
    if (!access(path, R_OK)) {
        path_uri(path, "ro", uri, sizeof uri);
        if (!attach(b, uri)) {
            sqlite3_stmt *s;
            if (sqlite3_prepare_v2(b->db, "SELECT value FROM m.meta WHERE key = 'fingerprint'", -1, &s, NULL) ==
                SQLITE_OK) {
                if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
                    snprintf(have, sizeof have, "%s", (const char *)sqlite3_column_text(s, 0));
                sqlite3_finalize(s);
            }
            if (!strcmp(have, fp) && one_int(b->db, "SELECT count(*) FROM m.nt", -1) >= 0) {
                b->index_src = VLMN_BROWSE_INDEX_FROM_FILE;
                return exec(b, "PRAGMA m.mmap_size = 1073741824"); /* read through the page cache, no copies */
            }
            if ((st = exec(b, "DETACH m"))) return st;
        } else {
            vlmn_clear_error();
        }
        b->index_src = VLMN_BROWSE_INDEX_STALE;
    }
    if ((st = exec(b, "ATTACH ':memory:' AS m"))) return st;
    return create_index(b, fp);
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

/* Open the run read-only and read its shape; the index is left to the caller. */
static vlmn_status open_run(const char *dir, bool create, vlmn_browse **out)
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
    path_uri(path, "ro", uri, sizeof uri);
    /* create: the connection may create files, for the index file attached by
     * vlmn_browse_write_index (main stays mode=ro either way). */
    if (sqlite3_open_v2(uri, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI | (create ? SQLITE_OPEN_CREATE : 0),
                        NULL) != SQLITE_OK) {
        st = vlmn_error(VLMN_E_DB, "%s: %s", path, b->db ? sqlite3_errmsg(b->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(b->db, 5000);
    /* The run and the index file are data, not code: no functions with side effects from
     * views or triggers a crafted file might carry. */
    sqlite3_exec(b->db, "PRAGMA trusted_schema = OFF", NULL, NULL, NULL);
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
    b->has_labels = b->has_neurons && has_table(b->db, "labels");
    *out = b;
    return VLMN_OK;
fail:
    vlmn_browse_close(b);
    return st;
}

vlmn_status vlmn_browse_open(const char *dir, vlmn_browse **out)
{
    vlmn_browse *b = NULL;
    vlmn_status st;
    *out = NULL;
    if ((st = open_run(dir, false, &b))) return st;
    if ((st = build_index(b)) || (b->has_class && (st = figures(b)))) {
        vlmn_browse_close(b);
        return st;
    }
    if (vlmn_traces_open(dir, &b->traces)) {
        b->traces = NULL;
        vlmn_clear_error();
    }
    *out = b;
    return VLMN_OK;
}

vlmn_browse_index_src vlmn_browse_index_source(const vlmn_browse *b) { return b->index_src; }
int64_t vlmn_browse_n_neurons(const vlmn_browse *b) { return b->has_neurons ? (int64_t)b->n_layers * b->n_ff : 0; }

vlmn_status vlmn_browse_write_index(const char *dir, char *path, size_t path_n)
{
    vlmn_browse *b = NULL;
    vlmn_status st;
    char tmp[4200], uri[3 * 4200 + 32], fp[512];
    if ((st = open_run(dir, true, &b))) return st;
    snprintf(path, path_n, "%s/%s", dir, VLMN_BROWSE_INDEX_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    fingerprint(b, fp, sizeof fp);
    path_uri(tmp, "rwc", uri, sizeof uri);
    /* Built under NAME.tmp with no journal, then renamed: a reader sees the old file or
     * the whole new one. The run itself stays read-only (main is mode=ro). */
    if (!(st = attach(b, uri)) && !(st = exec(b, "PRAGMA m.journal_mode = OFF; PRAGMA m.synchronous = OFF")) &&
        !(st = create_index(b, fp)) && !(st = exec(b, "DETACH m"))) {
        if (rename(tmp, path)) st = vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
    }
    if (st) unlink(tmp);
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
