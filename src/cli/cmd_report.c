/* vlmn report: write a self-contained HTML report (inline SVG figures, no network) of a
 * classified run: Figures 5-7, Table 3, most confident neurons, provenance. */
#include "cli.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "vlmn/analysis.h"
#include "vlmn/pipeline.h"
#include "vlmn/report.h"
#include "store/store.h"
#include "vlmn/run.h"

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_report = {
    "report",
    "write an HTML report of a classified run (figures, neurons, provenance)",
    "vlmn report RUN -o DIR [--top-frac 0.03] [--neurons 10]\n"
    "  Needs `vlmn classify RUN` first. Writes DIR/index.html (self-contained: inline SVG\n"
    "  and CSS) and copies the images of the listed top samples into DIR/img/ when their\n"
    "  paths are known (absolute, or relative to the run's `images` directory; a relative\n"
    "  `images` is tried from the current directory, next to RUN, then inside RUN).\n"
    "  -o DIR        output directory (created when missing)\n"
    "  --top-frac F  fraction of neurons per type for Figure 7, in (0, 1] (0.03)\n"
    "  --neurons K   most confident neurons listed per type (10); with scored explanations\n"
    "                (vlmn explain, simulate, score) also the K best-scored per type and Table 2,\n"
    "                with labels (vlmn label) the K best-labelled visual / multi-modal neurons\n",
    run,
};

#define MAX_PROV 256

struct ctx {
    vlmn_run *run;
    sqlite3 *db;
    sqlite3_stmt *sample;
    char images[2048]; /* image root from the run table, "" if none */
};

/* Run keys that may name the folder image paths are relative to. */
static const char *const image_root_keys[] = {"images", "images_dir", "image_dir", "image_root"};

/* An image path from the samples table: absolute as is; otherwise relative to the run's
 * image root, which itself may be relative to where `vlmn record` ran: tried as given,
 * then next to the run directory, then inside it. "" when none is readable. */
static void resolve_image(const struct ctx *x, const char *img, char *out, size_t n)
{
    const char *run = vlmn_run_dir(x->run), *slash = strrchr(run, '/');
    int plen = slash ? (int)(slash - run) : 1;
    const char *parent = slash ? run : ".";
    int w[3] = {-1, -1, -1};
    char cand[3][4096];
    if (img[0] == '/' || !x->images[0]) {
        w[0] = snprintf(cand[0], sizeof cand[0], "%s", img);
    } else {
        w[0] = snprintf(cand[0], sizeof cand[0], "%s/%s", x->images, img);
        if (x->images[0] != '/') {
            w[1] = snprintf(cand[1], sizeof cand[1], "%.*s/%s/%s", plen, parent, x->images, img);
            w[2] = snprintf(cand[2], sizeof cand[2], "%s/%s/%s", run, x->images, img);
        }
    }
    for (int k = 0; k < 3; k++)
        if (w[k] >= 0 && (size_t)w[k] < n && (size_t)w[k] < sizeof cand[k] && access(cand[k], R_OK) == 0) {
            memcpy(out, cand[k], (size_t)w[k] + 1);
            return;
        }
    out[0] = 0;
}

/* Columns first .. first + n - 1 of the current row as text, "" for NULL. */
static void col_texts(sqlite3_stmt *q, int first, int n, const char **col)
{
    for (int k = 0; k < n; k++) col[k] = vlmn_db_col_text(q, first + k);
}

/* The scored explanations for the report, best `per_kind` of each type (NULL scores
 * last), and the Table 2 text; nothing when the run has no scores table. Strings are
 * vlmn_strdup'd into *out (free with expl_free). */
static void expl_free(vlmn_report_expl *e, int n)
{
    for (int i = 0; e && i < n; i++) {
        vlmn_free((char *)e[i].kind);
        vlmn_free((char *)e[i].sampling);
        vlmn_free((char *)e[i].explainer);
        vlmn_free((char *)e[i].simulator);
        vlmn_free((char *)e[i].text);
    }
    vlmn_free(e);
}

static vlmn_status load_explanations(const char *dir, sqlite3 *db, int per_kind, vlmn_report_expl **out, int *n_out,
                                     char **table2)
{
    *out = NULL;
    *n_out = 0;
    *table2 = NULL;
    sqlite3_stmt *q = NULL;
    if (!vlmn_db_has_table(db, "scores") || !vlmn_db_has_table(db, "explanations")) return VLMN_OK;
    vlmn_status st = VLMN_OK;
    if (sqlite3_prepare_v2(db,
                           "SELECT layer, neuron, kind, sampling, explainer, simulator, text, score FROM ("
                           " SELECT s.layer, s.neuron, s.kind, s.sampling, s.explainer, s.simulator, e.text, s.score,"
                           "  ROW_NUMBER() OVER (PARTITION BY s.kind ORDER BY s.score IS NULL, s.score DESC, s.layer,"
                           "  s.neuron, s.sampling, s.explainer) AS r"
                           " FROM scores s JOIN explanations e ON e.layer = s.layer AND e.neuron = s.neuron AND"
                           "  e.sampling = s.sampling AND e.explainer = s.explainer AND e.images = s.images"
                           " WHERE s.scorer = 'pearson' AND e.status = 'ok') WHERE r <= ? ORDER BY kind, r",
                           -1, &q, NULL) != SQLITE_OK)
        return vlmn_error(VLMN_E_DB, "%s: scores: %s", dir, sqlite3_errmsg(db));
    sqlite3_bind_int(q, 1, per_kind);
    vlmn_report_expl *e = NULL;
    int n = 0, cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        vlmn_report_expl *t = vlmn_grow(e, n, &cap, sizeof *e);
        if (!t) goto oom;
        e = t;
        vlmn_report_expl *x = &e[n++];
        memset(x, 0, sizeof *x);
        x->layer = sqlite3_column_int(q, 0);
        x->neuron = sqlite3_column_int(q, 1);
        const char *col[5];
        col_texts(q, 2, 5, col);
        x->score = vlmn_db_col_num(q, 7);
        if (!(x->kind = vlmn_strdup(col[0])) || !(x->sampling = vlmn_strdup(col[1])) ||
            !(x->explainer = vlmn_strdup(col[2])) || !(x->simulator = vlmn_strdup(col[3])) ||
            !(x->text = vlmn_strdup(col[4])))
            goto oom;
    }
    sqlite3_finalize(q);
    /* Table 2 exactly as `vlmn stats RUN --table2` prints it */
    size_t len = 0;
    FILE *f = open_memstream(table2, &len);
    if (!f) goto oom2;
    st = vlmn_table2(dir, 1000, false, f);
    fclose(f);
    if (st) {
        free(*table2);
        *table2 = NULL;
        expl_free(e, n);
        return st;
    }
    *out = e;
    *n_out = n;
    return VLMN_OK;
oom:
    sqlite3_finalize(q);
oom2:
    expl_free(e, n);
    return vlmn_error(VLMN_E_NOMEM, "report: out of memory");
}

static void labels_free(vlmn_report_label *l, int n)
{
    for (int i = 0; l && i < n; i++) {
        vlmn_free((char *)l[i].kind);
        vlmn_free((char *)l[i].clip);
        vlmn_free((char *)l[i].concept);
        vlmn_free((char *)l[i].samples);
        vlmn_free((char *)l[i].explanation);
        vlmn_free((char *)l[i].explainer);
    }
    vlmn_free(l);
}

/* The rank-1 labels (vlmn label) of the best-labelled `per_kind` visual and multi-modal
 * neurons, with the held-out score of the label as an explanation (explainer
 * label:<clip>, sampling top) and the neuron's best-scored other explanation; nothing
 * when the run has no labels table. */
static vlmn_status load_labels(const char *dir, sqlite3 *db, int per_kind, vlmn_report_label **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!vlmn_db_has_table(db, "labels")) return VLMN_OK;
    bool hx = vlmn_db_has_table(db, "explanations"), hs = hx && vlmn_db_has_table(db, "scores");
    sqlite3_stmt *q = NULL;
    const bool has_samples = vlmn_db_has_column(db, "labels", "samples");
    char sql[3072];
    snprintf(sql, sizeof sql,
             "WITH best AS (%s) "
             "SELECT layer, neuron, kind, clip, concept, samples, score, n_samples, heldout, text, explainer, "
             "xscore FROM (SELECT l.layer, l.neuron, c.label AS kind, l.clip, l.concept, %s AS samples, l.score, "
             "l.n_samples, %s AS heldout, b.text, b.explainer, b.score AS xscore, ROW_NUMBER() OVER (PARTITION BY "
             "c.label ORDER BY l.score IS NULL, l.score DESC, l.layer, l.neuron, l.clip) AS r FROM labels l "
             "JOIN classification c ON c.layer = l.layer AND c.neuron = l.neuron "
             "LEFT JOIN best b ON b.layer = l.layer AND b.neuron = l.neuron AND b.rn = 1 "
             "WHERE l.rank = 1 AND c.label IN ('visual', 'multimodal')) WHERE r <= ? ORDER BY kind DESC, r",
             !hx ? "SELECT NULL AS layer, NULL AS neuron, NULL AS text, NULL AS explainer, NULL AS score, 1 AS rn "
                   "WHERE 0"
             : hs ? "SELECT e.layer, e.neuron, e.text, e.explainer, s.score, ROW_NUMBER() OVER (PARTITION BY "
                    "e.layer, e.neuron ORDER BY s.score IS NULL, s.score DESC, e.created) AS rn FROM explanations e "
                    "LEFT JOIN scores s ON s.layer = e.layer AND s.neuron = e.neuron AND s.sampling = e.sampling AND "
                    "s.explainer = e.explainer AND s.images = e.images AND s.scorer = 'pearson' "
                    "WHERE e.status = 'ok' AND e.explainer NOT GLOB 'label:*'"
                  : "SELECT layer, neuron, text, explainer, NULL AS score, ROW_NUMBER() OVER (PARTITION BY layer, "
                    "neuron ORDER BY created) AS rn FROM explanations WHERE status = 'ok' AND explainer NOT GLOB "
                    "'label:*'",
             has_samples ? "l.samples" : "NULL",
             hs ? "(SELECT max(s.score) FROM scores s WHERE s.layer = l.layer AND s.neuron = l.neuron AND "
                  "s.explainer = 'label:' || l.clip AND s.sampling = 'top' AND s.scorer = 'pearson')"
                : "NULL");
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return vlmn_error(VLMN_E_DB, "%s: labels: %s", dir, sqlite3_errmsg(db));
    sqlite3_bind_int(q, 1, per_kind);
    vlmn_report_label *l = NULL;
    int n = 0, cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        vlmn_report_label *t = vlmn_grow(l, n, &cap, sizeof *l);
        if (!t) goto oom;
        l = t;
        vlmn_report_label *x = &l[n++];
        memset(x, 0, sizeof *x);
        x->layer = sqlite3_column_int(q, 0);
        x->neuron = sqlite3_column_int(q, 1);
        const char *col[4];
        col_texts(q, 2, 4, col);
        x->score = vlmn_db_col_num(q, 6);
        x->n_samples = sqlite3_column_int(q, 7);
        x->heldout = vlmn_db_col_num(q, 8);
        x->expl_score = vlmn_db_col_num(q, 11);
        if (!(x->kind = vlmn_strdup(col[0])) || !(x->clip = vlmn_strdup(col[1])) ||
            !(x->concept = vlmn_strdup(col[2])) || !(x->samples = vlmn_strdup(col[3])))
            goto oom;
        if (sqlite3_column_type(q, 9) != SQLITE_NULL &&
            (!(x->explanation = vlmn_strdup((const char *)sqlite3_column_text(q, 9))) ||
             !(x->explainer = vlmn_strdup(sqlite3_column_text(q, 10) ? (const char *)sqlite3_column_text(q, 10) : ""))))
            goto oom;
    }
    sqlite3_finalize(q);
    *out = l;
    *n_out = n;
    return VLMN_OK;
oom:
    sqlite3_finalize(q);
    labels_free(l, n);
    return vlmn_error(VLMN_E_NOMEM, "report: out of memory");
}

static int samples_cb(void *vctx, int layer, int neuron, vlmn_report_sample *out, int max)
{
    struct ctx *x = vctx;
    int n = 0;
    const vlmn_top_entry *top = vlmn_run_top(x->run, layer, neuron, &n);
    if (n > max) n = max;
    for (int i = 0; i < n; i++) {
        vlmn_report_sample *s = &out[i];
        memset(s, 0, sizeof *s);
        s->sample = top[i].sample;
        s->max_act = top[i].max_act;
        if (!x->sample) continue;
        sqlite3_reset(x->sample);
        sqlite3_bind_int64(x->sample, 1, top[i].sample);
        if (sqlite3_step(x->sample) != SQLITE_ROW) continue;
        const char *id = (const char *)sqlite3_column_text(x->sample, 0);
        const char *img = (const char *)sqlite3_column_text(x->sample, 1);
        if (id) snprintf(s->id, sizeof s->id, "%s", id);
        if (img && img[0]) resolve_image(x, img, s->image, sizeof s->image);
    }
    return n;
}

static int run(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *v;
    double frac = 0.03;
    long n_conf = 10;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_opt(argc, argv, &i, "output", 'o', &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_report);
            out = v;
        } else if ((r = cli_opt(argc, argv, &i, "top-frac", 0, &v))) {
            if (r < 0 || cli_parse_double(v, &frac)) return cli_usage(&vlmn_cmd_report);
        } else if ((r = cli_opt(argc, argv, &i, "neurons", 0, &v))) {
            if (r < 0 || cli_parse_long(v, 1, 1000, &n_conf)) return cli_errorf("report", 2, "--neurons: 1..1000");
        } else if (cli_unknown_option(&vlmn_cmd_report, argv, i)) {
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage(&vlmn_cmd_report);
        }
    }
    if (!dir || !out) return cli_usage(&vlmn_cmd_report);
    if (!(frac > 0 && frac <= 1)) return cli_errorf("report", 2, "--top-frac %g: must be in (0, 1]", frac);

    struct ctx x = {0};
    vlmn_classification *c = NULL;
    vlmn_stats *s = NULL;
    vlmn_report_kv prov[MAX_PROV];
    int n_prov = 0;
    sqlite3_stmt *q = NULL;
    vlmn_report_expl *expl = NULL;
    int n_expl = 0;
    char *table2 = NULL;
    vlmn_report_label *labels = NULL;
    int n_labels = 0;
    vlmn_status st;
    if ((st = vlmn_run_open(dir, &x.run))) goto done;
    x.db = vlmn_run_db(x.run);
    if ((st = vlmn_classification_load(x.db, &c))) goto done;
    if (c->n_layers != vlmn_run_n_layers(x.run) || c->n_ff != vlmn_run_n_ff(x.run)) {
        st = vlmn_error(VLMN_E_MISMATCH, "%s: classification shape differs from the run: classify it again", dir);
        goto done;
    }
    if ((st = vlmn_stats_compute(c, frac, &s))) goto done;
    /* Provenance: the run table (key, value) in insertion order. */
    if (sqlite3_prepare_v2(x.db, "SELECT key, value FROM run ORDER BY rowid", -1, &q, NULL) == SQLITE_OK) {
        while (n_prov < MAX_PROV && sqlite3_step(q) == SQLITE_ROW) {
            const char *k = (const char *)sqlite3_column_text(q, 0), *val = (const char *)sqlite3_column_text(q, 1);
            prov[n_prov].key = vlmn_strdup(k ? k : "");
            prov[n_prov].value = vlmn_strdup(val ? val : "");
            if (!prov[n_prov].key || !prov[n_prov].value) {
                vlmn_free((char *)prov[n_prov].key);
                vlmn_free((char *)prov[n_prov].value);
                st = vlmn_error(VLMN_E_NOMEM, "report: out of memory");
                goto done;
            }
            for (size_t j = 0; j < VLMN_ARRAY_LEN(image_root_keys); j++)
                if (!x.images[0] && !strcmp(prov[n_prov].key, image_root_keys[j]))
                    snprintf(x.images, sizeof x.images, "%s", prov[n_prov].value);
            n_prov++;
        }
    }
    /* Sample ids and image paths, when the run has a samples table. */
    if (sqlite3_prepare_v2(x.db, "SELECT sample_id, image FROM samples WHERE sample_index = ?", -1, &x.sample, NULL) !=
        SQLITE_OK)
        x.sample = NULL;
    if ((st = load_explanations(dir, x.db, (int)n_conf, &expl, &n_expl, &table2)) ||
        (st = load_labels(dir, x.db, (int)n_conf, &labels, &n_labels)))
        goto done;
    /* titled with the model family when the run names it (record's model_arch) */
    char arch[64], title[4200];
    if (vlmn_db_get_meta(x.db, "model_arch", arch, sizeof arch) == VLMN_OK && arch[0])
        snprintf(title, sizeof title, "%s (%s)", dir, arch);
    else
        snprintf(title, sizeof title, "%s", dir);
    vlmn_report_input in = {
        .title = title,
        .cls = c,
        .stats = s,
        .provenance = prov,
        .n_provenance = n_prov,
        .n_confident = (int)n_conf,
        .samples = samples_cb,
        .ctx = &x,
        .table2 = table2,
        .expl = expl,
        .n_expl = n_expl,
        .labels = labels,
        .n_labels = n_labels,
    };
    if ((st = vlmn_report_write(out, &in))) goto done;
    printf("%s/index.html\n", out);
done:
    expl_free(expl, n_expl);
    labels_free(labels, n_labels);
    free(table2);
    sqlite3_finalize(q);
    sqlite3_finalize(x.sample);
    for (int i = 0; i < n_prov; i++) {
        vlmn_free((char *)prov[i].key);
        vlmn_free((char *)prov[i].value);
    }
    vlmn_stats_free(s);
    vlmn_classification_free(c);
    vlmn_run_close(x.run);
    return st ? cli_fail("report", st) : 0;
}
