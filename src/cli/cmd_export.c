/* `vlmn export RUN neurons|top|samples|run [--format csv|json]`: a run's tables as
 * CSV (RFC 4180) or JSON on stdout. `neurons` adds every column of a
 * `classification` table (layer, neuron, ...) when analysis has written one. */
#include "cli.h"
#include "vlmn/run.h"
#include "vlmn/record.h"

#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "vlmn export RUN neurons|top|samples|run [--format csv|json] [-o FILE]\n"
    "  neurons  layer,neuron,max_act,min_act,mean,count[,classification columns]\n"
    "  top      layer,neuron,rank,sample_id,max_act,sample_index (rank 1 = highest)\n"
    "  samples  sample_id,image,status,n_image_tokens,n_text_tokens,sample_index,error\n"
    "  run      key,value (provenance and options)\n"
    "  -f, --format csv|json  (default csv)\n"
    "  -o, --out FILE         write to FILE (default, and \"-\": stdout)\n";

const struct vlmn_cmd vlmn_cmd_export;

typedef struct out {
    FILE *f;
    bool json;
    int n_cols;
    const char **cols;
    int col;
    int64_t rows;
} out;

static void csv_str(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void begin(out *o)
{
    if (o->json) fputs("[", o->f);
    else
        for (int i = 0; i < o->n_cols; i++) {
            if (i) fputc(',', o->f);
            csv_str(o->f, o->cols[i]);
        }
    if (!o->json) fputc('\n', o->f);
}

static void field_prefix(out *o)
{
    if (o->json) {
        if (o->col == 0) fputs(o->rows ? ",\n{" : "\n{", o->f);
        else fputc(',', o->f);
        json_str(o->f, o->cols[o->col]);
        fputc(':', o->f);
    } else if (o->col) {
        fputc(',', o->f);
    }
}

static void field_end(out *o)
{
    if (++o->col == o->n_cols) {
        fputs(o->json ? "}" : "\n", o->f);
        o->col = 0;
        o->rows++;
    }
}

static void put_null(out *o)
{
    field_prefix(o);
    if (o->json) fputs("null", o->f);
    field_end(o);
}
static void put_str(out *o, const char *s)
{
    if (!s) {
        put_null(o);
        return;
    }
    field_prefix(o);
    if (o->json) json_str(o->f, s);
    else csv_str(o->f, s);
    field_end(o);
}
static void put_int(out *o, int64_t v)
{
    field_prefix(o);
    fprintf(o->f, "%" PRId64, v);
    field_end(o);
}
/* %.9g: every float value round-trips */
static void put_real(out *o, double v)
{
    if (!isfinite(v)) {
        if (o->json) put_null(o);
        else put_str(o, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    field_prefix(o);
    fprintf(o->f, "%.9g", v);
    field_end(o);
}

static void finish(out *o) { fputs(o->json ? (o->rows ? "\n]\n" : "]\n") : "", o->f); }

static void put_column(out *o, sqlite3_stmt *s, int i)
{
    switch (sqlite3_column_type(s, i)) {
    case SQLITE_NULL: put_null(o); break;
    case SQLITE_INTEGER: put_int(o, sqlite3_column_int64(s, i)); break;
    case SQLITE_FLOAT: put_real(o, sqlite3_column_double(s, i)); break;
    default: put_str(o, (const char *)sqlite3_column_text(s, i)); break;
    }
}

static int export_query(out *o, sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return cli_errorf("export", 1, "%s", sqlite3_errmsg(db));
    o->n_cols = sqlite3_column_count(s);
    const char **cols = calloc((size_t)o->n_cols, sizeof *cols);
    if (!cols) {
        sqlite3_finalize(s);
        return cli_errorf("export", 1, "out of memory");
    }
    for (int i = 0; i < o->n_cols; i++) cols[i] = sqlite3_column_name(s, i);
    o->cols = cols;
    begin(o);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        for (int i = 0; i < o->n_cols; i++) put_column(o, s, i);
    finish(o);
    free(cols);
    o->cols = NULL;
    int ret = rc == SQLITE_DONE ? 0 : cli_errorf("export", 1, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return ret;
}

static bool has_classification(sqlite3 *db)
{
    sqlite3_stmt *s;
    bool yes = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type IN ('table','view') AND name='classification'",
                           -1, &s, NULL) == SQLITE_OK) {
        yes = sqlite3_step(s) == SQLITE_ROW;
        sqlite3_finalize(s);
    }
    return yes;
}

/* neurons + every classification column except its keys */
static int export_neurons(out *o, sqlite3 *db)
{
    char sql[8192] = "SELECT n.layer, n.neuron, n.max_act, n.min_act, n.mean, n.count";
    if (has_classification(db)) {
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('classification')", -1, &s, NULL) == SQLITE_OK) {
            while (sqlite3_step(s) == SQLITE_ROW) {
                const char *c = (const char *)sqlite3_column_text(s, 0);
                if (!c || !strcmp(c, "layer") || !strcmp(c, "neuron")) continue;
                char *q = sqlite3_mprintf(", c.%w", c);
                if (q && strlen(sql) + strlen(q) + 1 < sizeof sql) strcat(sql, q);
                sqlite3_free(q);
            }
            sqlite3_finalize(s);
        }
        strcat(sql, " FROM neurons n LEFT JOIN classification c ON c.layer = n.layer AND c.neuron = n.neuron");
    } else {
        strcat(sql, " FROM neurons n");
    }
    strcat(sql, " ORDER BY n.layer, n.neuron");
    return export_query(o, db, sql);
}

static int export_top(out *o, vlmn_run *run)
{
    sqlite3 *db = vlmn_run_db(run);
    /* sample index -> id */
    int64_t max_idx = -1;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT max(sample_index) FROM samples", -1, &s, NULL) != SQLITE_OK)
        return cli_errorf("export", 1, "%s", sqlite3_errmsg(db));
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) max_idx = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    char **ids = calloc((size_t)(max_idx + 1 > 0 ? max_idx + 1 : 1), sizeof *ids);
    if (!ids) return cli_errorf("export", 1, "out of memory");
    if (sqlite3_prepare_v2(db, "SELECT sample_index, sample_id FROM samples", -1, &s, NULL) == SQLITE_OK) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            int64_t i = sqlite3_column_int64(s, 0);
            const char *id = (const char *)sqlite3_column_text(s, 1);
            if (i >= 0 && i <= max_idx && id) ids[i] = strdup(id);
        }
        sqlite3_finalize(s);
    }
    static const char *cols[] = {"layer", "neuron", "rank", "sample_id", "max_act", "sample_index"};
    o->cols = cols;
    o->n_cols = 6;
    begin(o);
    int L = vlmn_run_n_layers(run), F = vlmn_run_n_ff(run);
    for (int l = 0; l < L; l++)
        for (int j = 0; j < F; j++) {
            int n;
            const vlmn_top_entry *e = vlmn_run_top(run, l, j, &n);
            for (int k = 0; k < n; k++) {
                put_int(o, l);
                put_int(o, j);
                put_int(o, k + 1);
                put_str(o, (int64_t)e[k].sample <= max_idx && ids[e[k].sample] ? ids[e[k].sample] : "");
                put_real(o, e[k].max_act);
                put_int(o, e[k].sample);
            }
        }
    finish(o);
    for (int64_t i = 0; i <= max_idx; i++) free(ids[i]);
    free(ids);
    return 0;
}

static int run_export(int argc, char **argv)
{
    const char *dir = NULL, *what = NULL, *fmt = "csv", *outp = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_opt(argc, argv, &i, "format", 'f', &v))) {
            if (r < 0) return 2;
            fmt = v;
        } else if ((r = cli_opt(argc, argv, &i, "out", 'o', &v))) {
            if (r < 0) return 2;
            outp = v;
        } else if (cli_unknown_option(&vlmn_cmd_export, argv, i)) {
            return 2;
        } else if (!dir) dir = argv[i];
        else if (!what) what = argv[i];
        else return cli_usage(&vlmn_cmd_export);
    }
    if (!dir || !what) return cli_usage(&vlmn_cmd_export);
    if (strcmp(fmt, "csv") && strcmp(fmt, "json")) return cli_errorf("export", 2, "--format: expected csv or json");
    if (strcmp(what, "neurons") && strcmp(what, "top") && strcmp(what, "samples") && strcmp(what, "run"))
        return cli_errorf("export", 2, "'%s': expected neurons, top, samples or run", what);
    vlmn_run *run;
    vlmn_status st = vlmn_run_open(dir, &run);
    if (st) return cli_fail("export", st);
    out o = {stdout, !strcmp(fmt, "json"), 0, NULL, 0, 0};
    if (outp && !strcmp(outp, "-")) outp = NULL; /* "-": stdout, as without -o */
    if (outp && !(o.f = fopen(outp, "w"))) {
        vlmn_run_close(run);
        return cli_errorf("export", 1, "%s: cannot write", outp);
    }
    sqlite3 *db = vlmn_run_db(run);
    int rc;
    if (!strcmp(what, "neurons")) rc = export_neurons(&o, db);
    else if (!strcmp(what, "top")) rc = export_top(&o, run);
    else if (!strcmp(what, "samples"))
        rc = export_query(&o, db,
                          "SELECT sample_id, image, status, n_image_tokens, n_text_tokens, sample_index, error "
                          "FROM samples ORDER BY sample_index");
    else rc = export_query(&o, db, "SELECT key, value FROM run ORDER BY key");
    if (fflush(o.f) || ferror(o.f)) rc = cli_errorf("export", 1, "write error");
    if (outp) fclose(o.f);
    vlmn_run_close(run);
    return rc;
}

const struct vlmn_cmd vlmn_cmd_export = {"export", "export a run's neurons, top lists, samples or metadata (CSV/JSON)",
                                         usage, run_export};
