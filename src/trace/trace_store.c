/* The trace store of a run: RUN/traces.sqlite (index, per-sample tokens and grids)
 * and RUN/traces.f32 (float32 rows appended after a 64-byte header). Reading API of
 * include/vlmn/trace.h and the writer used by src/trace/trace_run.c. The committed end
 * of traces.f32 is a key of the database, written in the same transaction as the index
 * rows, so bytes past it (a killed writer) are never read and are cut on the next
 * write. Layout: docs/trace.md. */
#include "vlmn/trace.h"
#include "trace/trace_int.h"
#include "store/store.h"
#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'V', 'L', 'M', 'N', 'T', 'R', 'A', 'C'};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS trace_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS trace_samples ("
    "  sample_index INTEGER PRIMARY KEY, sample_id TEXT NOT NULL, image TEXT, image_path TEXT,"
    "  orig_w INTEGER NOT NULL, orig_h INTEGER NOT NULL, mode TEXT NOT NULL, image_size INTEGER NOT NULL,"
    "  n_tokens INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS trace_tokens ("
    "  sample_index INTEGER NOT NULL, pos INTEGER NOT NULL, token_id INTEGER NOT NULL, piece TEXT NOT NULL,"
    "  modality INTEGER NOT NULL, PRIMARY KEY (sample_index, pos)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS trace_grids ("
    "  sample_index INTEGER NOT NULL, grid INTEGER NOT NULL, first_pos INTEGER NOT NULL, rows INTEGER NOT NULL,"
    "  cols INTEGER NOT NULL, x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,"
    "  PRIMARY KEY (sample_index, grid)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS traces ("
    "  layer INTEGER NOT NULL, neuron INTEGER NOT NULL, sample_index INTEGER NOT NULL,"
    "  offset INTEGER NOT NULL, n_tokens INTEGER NOT NULL, max_act REAL,"
    "  PRIMARY KEY (layer, neuron, sample_index)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS traces_by_sample ON traces (sample_index);";

struct vlmn_traces {
    sqlite3 *db;
    int fd;
    uint64_t end;   /* committed bytes of traces.f32 */
    char path[4096];
    bool writer;
};

static vlmn_status db_err(vlmn_traces *t, const char *what)
{
    return vlmn_error(VLMN_E_DB, "%s: %s: %s", t->path, what, sqlite3_errmsg(t->db));
}

void vlmn_traces_close(vlmn_traces *t)
{
    if (!t) return;
    if (t->db) sqlite3_close(t->db);
    if (t->fd >= 0) close(t->fd);
    vlmn_free(t);
}

static vlmn_status read_end(vlmn_traces *t)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(t->db, "SELECT value FROM trace_meta WHERE key = 'f32_bytes'", -1, &q, NULL) != SQLITE_OK)
        return db_err(t, "trace_meta");
    t->end = VLMN_TRACE_HEADER;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(q, 0);
        t->end = v ? strtoull((const char *)v, NULL, 10) : 0;
    }
    sqlite3_finalize(q);
    if (t->end < VLMN_TRACE_HEADER || (t->end - VLMN_TRACE_HEADER) % 4)
        return vlmn_error(VLMN_E_FORMAT, "%s: bad f32_bytes %" PRIu64, t->path, t->end);
    return VLMN_OK;
}

static vlmn_status open_f32(vlmn_traces *t, const char *dir, bool create)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/traces.f32", dir);
    t->fd = open(p, create ? O_RDWR | O_CREAT | O_CLOEXEC : O_RDONLY | O_CLOEXEC, 0644);
    if (t->fd < 0) return vlmn_error(errno == ENOENT ? VLMN_E_NOTFOUND : VLMN_E_IO, "%s: %s", p, strerror(errno));
    struct stat sb;
    if (fstat(t->fd, &sb)) return vlmn_error(VLMN_E_IO, "%s: %s", p, strerror(errno));
    uint8_t h[VLMN_TRACE_HEADER];
    if (create && sb.st_size == 0) {
        memset(h, 0, sizeof h);
        memcpy(h, MAGIC, 8);
        uint32_t v = VLMN_TRACE_VERSION, rb = 4;
        memcpy(h + 8, &v, 4);
        memcpy(h + 12, &rb, 4);
        if (pwrite(t->fd, h, sizeof h, 0) != (ssize_t)sizeof h || fsync(t->fd))
            return vlmn_error(VLMN_E_IO, "%s: %s", p, strerror(errno));
        sb.st_size = sizeof h;
    }
    if (sb.st_size < VLMN_TRACE_HEADER || pread(t->fd, h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h, MAGIC, 8))
        return vlmn_error(VLMN_E_FORMAT, "%s: not a vlmn trace array (bad header)", p);
    uint32_t v;
    memcpy(&v, h + 8, 4);
    if (v != VLMN_TRACE_VERSION)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: format version %u (this vlmn reads %d)", p, v, VLMN_TRACE_VERSION);
    if ((uint64_t)sb.st_size < t->end)
        return vlmn_error(VLMN_E_FORMAT, "%s: %lld bytes, the index says %" PRIu64, p, (long long)sb.st_size, t->end);
    /* a writer cuts what a killed writer appended past the committed end */
    if (create && (uint64_t)sb.st_size > t->end && (ftruncate(t->fd, (off_t)t->end) || fsync(t->fd)))
        return vlmn_error(VLMN_E_IO, "%s: truncate: %s", p, strerror(errno));
    return VLMN_OK;
}

static vlmn_status traces_open(const char *dir, bool create, vlmn_traces **out)
{
    *out = NULL;
    vlmn_traces *t = vlmn_calloc(1, sizeof *t);
    if (!t) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    t->fd = -1;
    t->writer = create;
    snprintf(t->path, sizeof t->path, "%s/traces.sqlite", dir);
    vlmn_status st;
    if (!create && access(t->path, F_OK)) {
        st = vlmn_error(VLMN_E_NOTFOUND, "%s: no traces (run vlmn trace)", dir);
        goto fail;
    }
    int flags = create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(t->path, &t->db, flags, NULL) != SQLITE_OK) {
        st = db_err(t, "open");
        goto fail;
    }
    sqlite3_busy_timeout(t->db, 10000);
    if (create && ((st = vlmn_db_exec(t->db, "PRAGMA synchronous=FULL")) || (st = vlmn_db_exec(t->db, SCHEMA))))
        goto fail;
    if ((st = read_end(t)) || (st = open_f32(t, dir, create))) goto fail;
    *out = t;
    return VLMN_OK;
fail:
    vlmn_traces_close(t);
    return st;
}

vlmn_status vlmn_traces_open(const char *run_dir, vlmn_traces **out) { return traces_open(run_dir, false, out); }
vlmn_status vlmn_traces_open_write(const char *run_dir, vlmn_traces **out) { return traces_open(run_dir, true, out); }
sqlite3 *vlmn_traces_db(vlmn_traces *t) { return t->db; }

/* ---- lists ---- */
static vlmn_status collect(vlmn_traces *t, const char *sql, int a, int b, int ncol, int64_t **rows, int64_t *n)
{
    sqlite3_stmt *q;
    *rows = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(t->db, sql, -1, &q, NULL) != SQLITE_OK) return db_err(t, "query");
    if (a >= 0) sqlite3_bind_int(q, 1, a);
    if (b >= 0) sqlite3_bind_int(q, 2, b);
    int64_t cap = 0;
    int rc;
    vlmn_status st = VLMN_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n + ncol > cap) {
            cap = 2 * cap + 64;
            int64_t *nv = vlmn_realloc(*rows, (size_t)cap * sizeof *nv);
            if (!nv) {
                st = vlmn_error(VLMN_E_NOMEM, "out of memory");
                break;
            }
            *rows = nv;
        }
        for (int c = 0; c < ncol; c++) (*rows)[(*n)++] = sqlite3_column_int64(q, c);
    }
    if (!st && rc != SQLITE_DONE) st = db_err(t, "query");
    sqlite3_finalize(q);
    if (st) {
        vlmn_free(*rows);
        *rows = NULL;
        *n = 0;
    }
    *n /= ncol;
    return st;
}

vlmn_status vlmn_traces_neurons(vlmn_traces *t, vlmn_neuron_ref **out, int64_t *n)
{
    int64_t *rows;
    vlmn_status st = collect(t, "SELECT DISTINCT layer, neuron FROM traces ORDER BY layer, neuron", -1, -1, 2, &rows, n);
    *out = NULL;
    if (st || !*n) {
        vlmn_free(rows);
        return st;
    }
    vlmn_neuron_ref *v = vlmn_malloc((size_t)*n * sizeof *v);
    if (!v) {
        vlmn_free(rows);
        return vlmn_error(VLMN_E_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < *n; i++) v[i] = (vlmn_neuron_ref){(int32_t)rows[2 * i], (int32_t)rows[2 * i + 1]};
    vlmn_free(rows);
    *out = v;
    return VLMN_OK;
}

static vlmn_status to_u32(vlmn_status st, int64_t *rows, int64_t n, uint32_t **out)
{
    *out = NULL;
    if (st || !n) {
        vlmn_free(rows);
        return st;
    }
    uint32_t *v = vlmn_malloc((size_t)n * sizeof *v);
    if (!v) {
        vlmn_free(rows);
        return vlmn_error(VLMN_E_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) v[i] = (uint32_t)rows[i];
    vlmn_free(rows);
    *out = v;
    return VLMN_OK;
}

vlmn_status vlmn_traces_samples(vlmn_traces *t, uint32_t **out, int64_t *n)
{
    int64_t *rows;
    vlmn_status st = collect(t, "SELECT sample_index FROM trace_samples ORDER BY sample_index", -1, -1, 1, &rows, n);
    return to_u32(st, rows, *n, out);
}

vlmn_status vlmn_traces_neuron_samples(vlmn_traces *t, int layer, int neuron, uint32_t **out, int64_t *n)
{
    int64_t *rows;
    vlmn_status st = collect(t, "SELECT sample_index FROM traces WHERE layer = ?1 AND neuron = ?2 ORDER BY sample_index",
                             layer < 0 ? 0 : layer, neuron < 0 ? 0 : neuron, 1, &rows, n);
    return to_u32(st, rows, *n, out);
}

/* ---- one sample ---- */
void vlmn_trace_sample_free(vlmn_trace_sample *s)
{
    if (!s) return;
    if (s->pieces)
        for (int64_t i = 0; i < s->n_tokens; i++) vlmn_free(s->pieces[i]);
    vlmn_free(s->pieces);
    vlmn_free(s->ids);
    vlmn_free(s->modality);
    vlmn_free(s->grids);
    vlmn_free(s->sample_id);
    vlmn_free(s->image);
    vlmn_free(s->image_path);
    vlmn_free(s);
}

static char *dup_col(sqlite3_stmt *q, int c, bool *oom)
{
    const unsigned char *v = sqlite3_column_text(q, c);
    if (!v) return NULL;
    char *s = vlmn_strdup((const char *)v);
    if (!s) *oom = true;
    return s;
}

vlmn_status vlmn_traces_sample(vlmn_traces *t, uint32_t sample, vlmn_trace_sample **out)
{
    *out = NULL;
    sqlite3_stmt *q = NULL;
    vlmn_status st = VLMN_OK;
    bool oom = false;
    vlmn_trace_sample *s = vlmn_calloc(1, sizeof *s);
    if (!s) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    if (sqlite3_prepare_v2(t->db,
                           "SELECT sample_id, image, image_path, orig_w, orig_h, mode, image_size, n_tokens "
                           "FROM trace_samples WHERE sample_index = ?",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_err(t, "trace_samples");
        goto fail;
    }
    sqlite3_bind_int64(q, 1, sample);
    if (sqlite3_step(q) != SQLITE_ROW) {
        st = vlmn_error(VLMN_E_NOTFOUND, "%s: sample %u not traced", t->path, sample);
        goto fail;
    }
    s->sample = sample;
    s->sample_id = dup_col(q, 0, &oom);
    s->image = dup_col(q, 1, &oom);
    s->image_path = dup_col(q, 2, &oom);
    s->orig_w = sqlite3_column_int(q, 3);
    s->orig_h = sqlite3_column_int(q, 4);
    snprintf(s->mode, sizeof s->mode, "%s", sqlite3_column_text(q, 5) ? (const char *)sqlite3_column_text(q, 5) : "");
    s->image_size = sqlite3_column_int(q, 6);
    int64_t n = sqlite3_column_int64(q, 7);
    sqlite3_finalize(q);
    q = NULL;
    if (n < 0 || n > (1 << 24)) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: sample %u: bad token count %lld", t->path, sample, (long long)n);
        goto fail;
    }
    s->n_tokens = n;
    s->ids = vlmn_calloc((size_t)n + 1, sizeof *s->ids);
    s->pieces = vlmn_calloc((size_t)n + 1, sizeof *s->pieces);
    s->modality = vlmn_calloc((size_t)n + 1, 1);
    if (oom || !s->ids || !s->pieces || !s->modality) goto oom;
    if (sqlite3_prepare_v2(t->db, "SELECT pos, token_id, piece, modality FROM trace_tokens WHERE sample_index = ? ORDER BY pos",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_err(t, "trace_tokens");
        goto fail;
    }
    sqlite3_bind_int64(q, 1, sample);
    int64_t got = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t pos = sqlite3_column_int64(q, 0);
        if (pos != got || pos >= n) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: sample %u: token rows out of order", t->path, sample);
            goto fail;
        }
        s->ids[pos] = sqlite3_column_int(q, 1);
        s->pieces[pos] = dup_col(q, 2, &oom);
        if (!s->pieces[pos] && !oom) s->pieces[pos] = vlmn_strdup("");
        if (!s->pieces[pos]) goto oom;
        int md = sqlite3_column_int(q, 3);
        s->modality[pos] = (uint8_t)(md >= 0 && md <= 2 ? md : VLMN_TRACE_OTHER);
        got++;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (got != n) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: sample %u: %lld token rows, expected %lld", t->path, sample, (long long)got,
                        (long long)n);
        goto fail;
    }
    if (sqlite3_prepare_v2(t->db,
                           "SELECT first_pos, rows, cols, x0, y0, x1, y1 FROM trace_grids WHERE sample_index = ? "
                           "ORDER BY grid",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_err(t, "trace_grids");
        goto fail;
    }
    sqlite3_bind_int64(q, 1, sample);
    s->grids = vlmn_calloc(VLMN_TRACE_MAX_GRIDS, sizeof *s->grids);
    if (!s->grids) goto oom;
    while (sqlite3_step(q) == SQLITE_ROW && s->n_grids < VLMN_TRACE_MAX_GRIDS) {
        vlmn_trace_grid *g = &s->grids[s->n_grids];
        g->first_pos = sqlite3_column_int64(q, 0);
        g->rows = sqlite3_column_int(q, 1);
        g->cols = sqlite3_column_int(q, 2);
        g->x0 = sqlite3_column_double(q, 3);
        g->y0 = sqlite3_column_double(q, 4);
        g->x1 = sqlite3_column_double(q, 5);
        g->y1 = sqlite3_column_double(q, 6);
        if (g->rows < 1 || g->cols < 1 || g->rows > 4096 || g->cols > 4096 || g->first_pos < 0 ||
            g->first_pos + (int64_t)g->rows * g->cols > n || !(g->x1 > g->x0) || !(g->y1 > g->y0)) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: sample %u: bad grid %d", t->path, sample, s->n_grids);
            goto fail;
        }
        s->n_grids++;
    }
    sqlite3_finalize(q);
    *out = s;
    return VLMN_OK;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "out of memory");
fail:
    sqlite3_finalize(q);
    vlmn_trace_sample_free(s);
    return st;
}

static int lookup(vlmn_traces *t, int layer, int neuron, uint32_t sample, int64_t *off, int64_t *n)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(t->db, "SELECT offset, n_tokens FROM traces WHERE layer = ? AND neuron = ? AND sample_index = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int(q, 1, layer);
    sqlite3_bind_int(q, 2, neuron);
    sqlite3_bind_int64(q, 3, sample);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *off = sqlite3_column_int64(q, 0);
        *n = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

bool vlmn_traces_has(vlmn_traces *t, int layer, int neuron, uint32_t sample)
{
    int64_t off, n;
    return lookup(t, layer, neuron, sample, &off, &n) == 1;
}

vlmn_status vlmn_traces_get(vlmn_traces *t, int layer, int neuron, uint32_t sample, float **acts, int64_t *n)
{
    *acts = NULL;
    *n = 0;
    int64_t off, cnt;
    int r = lookup(t, layer, neuron, sample, &off, &cnt);
    if (r < 0) return db_err(t, "traces");
    if (r == 0) return vlmn_error(VLMN_E_NOTFOUND, "%s: neuron %d:%d on sample %u not traced", t->path, layer, neuron, sample);
    /* a reader opened before a writer's later commits: refresh the committed end */
    if (off >= VLMN_TRACE_HEADER && cnt >= 0 && cnt <= (1 << 24) && (uint64_t)off + 4 * (uint64_t)cnt > t->end) {
        vlmn_status st = read_end(t);
        if (st) return st;
    }
    if (off < VLMN_TRACE_HEADER || cnt < 0 || cnt > (1 << 24) || (uint64_t)off + 4 * (uint64_t)cnt > t->end)
        return vlmn_error(VLMN_E_FORMAT, "%s: trace %d:%d/%u points past the committed array", t->path, layer, neuron, sample);
    float *v = vlmn_malloc((size_t)(cnt ? cnt : 1) * sizeof *v);
    if (!v) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    if (pread(t->fd, v, (size_t)cnt * 4, (off_t)off) != (ssize_t)(cnt * 4)) {
        vlmn_free(v);
        return vlmn_error(VLMN_E_IO, "%s: short read of traces.f32", t->path);
    }
    *acts = v;
    *n = cnt;
    return VLMN_OK;
}

/* ---- writing ---- */
vlmn_status vlmn_traces_commit(vlmn_traces *t, const vlmn_trace_sample *s, bool new_sample, const vlmn_trace_row *rows,
                               int64_t n_rows, const float *data)
{
    VLMN_ASSERT(t->writer);
    vlmn_status st;
    uint64_t bytes = (uint64_t)n_rows * (uint64_t)s->n_tokens * 4;
    /* 1. the array bytes, durable before any index row points at them */
    const uint8_t *p = (const uint8_t *)data;
    for (uint64_t done = 0; done < bytes;) {
        ssize_t w = pwrite(t->fd, p + done, bytes - done > (1u << 30) ? (1u << 30) : (size_t)(bytes - done),
                           (off_t)(t->end + done));
        if (w <= 0) return vlmn_error(VLMN_E_IO, "%s: write traces.f32: %s", t->path, strerror(errno));
        done += (uint64_t)w;
    }
    if (bytes && fsync(t->fd)) return vlmn_error(VLMN_E_IO, "%s: fsync traces.f32: %s", t->path, strerror(errno));
    /* 2. the index rows and the new committed end, in one transaction */
    if ((st = vlmn_db_exec(t->db, "BEGIN"))) return st;
    sqlite3_stmt *q = NULL;
    if (new_sample) {
        if (sqlite3_prepare_v2(t->db,
                               "INSERT OR REPLACE INTO trace_samples (sample_index, sample_id, image, image_path, orig_w, "
                               "orig_h, mode, image_size, n_tokens) VALUES (?,?,?,?,?,?,?,?,?)",
                               -1, &q, NULL) != SQLITE_OK)
            goto dberr;
        sqlite3_bind_int64(q, 1, s->sample);
        sqlite3_bind_text(q, 2, s->sample_id ? s->sample_id : "", -1, SQLITE_TRANSIENT);
        if (s->image) sqlite3_bind_text(q, 3, s->image, -1, SQLITE_TRANSIENT);
        if (s->image_path) sqlite3_bind_text(q, 4, s->image_path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(q, 5, s->orig_w);
        sqlite3_bind_int(q, 6, s->orig_h);
        sqlite3_bind_text(q, 7, s->mode, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(q, 8, s->image_size);
        sqlite3_bind_int64(q, 9, s->n_tokens);
        if (sqlite3_step(q) != SQLITE_DONE) goto dberr;
        sqlite3_finalize(q);
        if (sqlite3_prepare_v2(t->db,
                               "INSERT OR REPLACE INTO trace_tokens (sample_index, pos, token_id, piece, modality) "
                               "VALUES (?,?,?,?,?)",
                               -1, &q, NULL) != SQLITE_OK)
            goto dberr;
        for (int64_t i = 0; i < s->n_tokens; i++) {
            sqlite3_bind_int64(q, 1, s->sample);
            sqlite3_bind_int64(q, 2, i);
            sqlite3_bind_int(q, 3, s->ids[i]);
            sqlite3_bind_text(q, 4, s->pieces[i] ? s->pieces[i] : "", -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(q, 5, s->modality[i]);
            if (sqlite3_step(q) != SQLITE_DONE) goto dberr;
            sqlite3_reset(q);
        }
        sqlite3_finalize(q);
        if (sqlite3_prepare_v2(t->db,
                               "INSERT OR REPLACE INTO trace_grids (sample_index, grid, first_pos, rows, cols, x0, y0, x1, "
                               "y1) VALUES (?,?,?,?,?,?,?,?,?)",
                               -1, &q, NULL) != SQLITE_OK)
            goto dberr;
        for (int g = 0; g < s->n_grids; g++) {
            const vlmn_trace_grid *G = &s->grids[g];
            sqlite3_bind_int64(q, 1, s->sample);
            sqlite3_bind_int(q, 2, g);
            sqlite3_bind_int64(q, 3, G->first_pos);
            sqlite3_bind_int(q, 4, G->rows);
            sqlite3_bind_int(q, 5, G->cols);
            sqlite3_bind_double(q, 6, G->x0);
            sqlite3_bind_double(q, 7, G->y0);
            sqlite3_bind_double(q, 8, G->x1);
            sqlite3_bind_double(q, 9, G->y1);
            if (sqlite3_step(q) != SQLITE_DONE) goto dberr;
            sqlite3_reset(q);
        }
        sqlite3_finalize(q);
    }
    if (sqlite3_prepare_v2(t->db,
                           "INSERT OR REPLACE INTO traces (layer, neuron, sample_index, offset, n_tokens, max_act) "
                           "VALUES (?,?,?,?,?,?)",
                           -1, &q, NULL) != SQLITE_OK)
        goto dberr;
    for (int64_t r = 0; r < n_rows; r++) {
        sqlite3_bind_int(q, 1, rows[r].layer);
        sqlite3_bind_int(q, 2, rows[r].neuron);
        sqlite3_bind_int64(q, 3, s->sample);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)(t->end + (uint64_t)r * (uint64_t)s->n_tokens * 4));
        sqlite3_bind_int64(q, 5, s->n_tokens);
        if (isfinite(rows[r].max_act)) sqlite3_bind_double(q, 6, rows[r].max_act);
        else sqlite3_bind_null(q, 6);
        if (sqlite3_step(q) != SQLITE_DONE) goto dberr;
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    q = NULL;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO trace_meta (key, value) VALUES ('f32_bytes', '%" PRIu64 "')",
             t->end + bytes);
    if ((st = vlmn_db_exec(t->db, sql)) || (st = vlmn_db_exec(t->db, "COMMIT"))) {
        vlmn_db_exec(t->db, "ROLLBACK");
        return st;
    }
    t->end += bytes;
    return VLMN_OK;
dberr:
    st = db_err(t, "write");
    sqlite3_finalize(q);
    vlmn_db_exec(t->db, "ROLLBACK");
    return st;
}

vlmn_status vlmn_traces_set_meta(vlmn_traces *t, const char *key, const char *value)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(t->db, "INSERT OR REPLACE INTO trace_meta (key, value) VALUES (?, ?)", -1, &q, NULL) != SQLITE_OK)
        return db_err(t, "trace_meta");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, value, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? VLMN_OK : db_err(t, "trace_meta");
}

vlmn_status vlmn_traces_get_meta(vlmn_traces *t, const char *key, char *buf, size_t n)
{
    buf[0] = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(t->db, "SELECT value FROM trace_meta WHERE key = ?", -1, &q, NULL) != SQLITE_OK)
        return db_err(t, "trace_meta");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
    vlmn_status st = VLMN_E_NOTFOUND;
    if (sqlite3_step(q) == SQLITE_ROW) {
        snprintf(buf, n, "%s", sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : "");
        st = VLMN_OK;
    }
    sqlite3_finalize(q);
    return st;
}

/* ---- geometry ---- */
vlmn_status vlmn_trace_geometry(int w, int h, const char *mode, int S, int grid_side, vlmn_trace_grid *g)
{
    if (w < 1 || h < 1 || S < 1 || grid_side < 1) return vlmn_error(VLMN_E_ARG, "geometry: empty image or grid");
    g->rows = g->cols = grid_side;
    if (!strcmp(mode, "pad")) {
        /* expand2square: centred on a max(w, h) square, offsets (side - w) / 2 */
        int side = w > h ? w : h, ox = (side - w) / 2, oy = (side - h) / 2;
        g->x0 = -ox;
        g->y0 = -oy;
        g->x1 = side - ox;
        g->y1 = side - oy;
        return VLMN_OK;
    }
    if (!strcmp(mode, "crop")) {
        /* shortest edge -> S (long = floor(S * long / short)), centre crop (dim - S) / 2 */
        int sh = w <= h ? w : h, lg = w <= h ? h : w;
        double nl = floor((double)S * (double)lg / (double)sh);
        int rw = w <= h ? S : (int)nl, rh = w <= h ? (int)nl : S;
        double sx = (double)rw / w, sy = (double)rh / h;
        int left = (rw - S) / 2, top = (rh - S) / 2;
        g->x0 = left / sx;
        g->y0 = top / sy;
        g->x1 = (left + S) / sx;
        g->y1 = (top + S) / sy;
        return VLMN_OK;
    }
    return vlmn_error(VLMN_E_ARG, "geometry: unknown preprocessing mode '%s' (pad or crop)", mode);
}

vlmn_status vlmn_trace_tile_grids(int w, int h, int cols, int rows, int n_tiles, int grid_side, int64_t first_pos,
                                  vlmn_trace_grid *g)
{
    if (w < 1 || h < 1 || cols < 1 || rows < 1 || grid_side < 1 || first_pos < 0)
        return vlmn_error(VLMN_E_ARG, "geometry: empty image, tile grid or token grid");
    const int nb = cols * rows;
    if ((n_tiles != nb && n_tiles != nb + 1) || (n_tiles == nb + 1 && nb == 1) || n_tiles > VLMN_TRACE_MAX_GRIDS)
        return vlmn_error(VLMN_E_ARG, "geometry: %d tiles do not fit a %d x %d tile grid (+ thumbnail, at most %d)",
                          n_tiles, cols, rows, VLMN_TRACE_MAX_GRIDS);
    const int64_t per = (int64_t)grid_side * grid_side;
    for (int i = 0; i < n_tiles; i++) {
        vlmn_trace_grid *G = &g[i];
        G->rows = G->cols = grid_side;
        G->first_pos = first_pos + i * per;
        if (i == nb) { /* the thumbnail: the whole image resized to S x S */
            G->x0 = G->y0 = 0;
            G->x1 = w;
            G->y1 = h;
            continue;
        }
        /* the image is resized to (cols S) x (rows S): tile (c, r) is the c-th of cols
         * equal columns and the r-th of rows equal rows of the original */
        const int c = i % cols, r = i / cols;
        G->x0 = (double)c * w / cols;
        G->x1 = (double)(c + 1) * w / cols;
        G->y0 = (double)r * h / rows;
        G->y1 = (double)(r + 1) * h / rows;
    }
    return VLMN_OK;
}
