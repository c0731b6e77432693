/* `vlmn prune-eval`: answer a QA set with the full model, with the unknown neurons of a
 * classified run pruned (p_u >= tau) and with random masks of the same size; grade the
 * answers offline; store everything in EVAL/eval.sqlite (resumable); print Table 3 and
 * draw Fig. 12. See include/vlmn/eval.h and docs/generate.md. */
#include "vlmn/eval.h"
#include "vlmn/mask.h"

#include "core/alloc.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_CONFIGS 1024

typedef struct config {
    char name[64];
    const char *kind; /* "full", "unknown", "random" */
    int tau_i;        /* -1 for full */
    double tau;
    int seed;         /* random: 1..K */
    vlmn_mask *mask;  /* NULL for full */
} config;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS configs(name TEXT PRIMARY KEY, kind TEXT NOT NULL, tau REAL, seed INTEGER,"
    " n_masked INTEGER NOT NULL, ratio REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS answers(config TEXT NOT NULL, item INTEGER NOT NULL, id TEXT NOT NULL,"
    " question TEXT NOT NULL, reference TEXT NOT NULL, answer TEXT NOT NULL, tokens TEXT NOT NULL,"
    " n_tokens INTEGER NOT NULL, exact REAL NOT NULL, f1 REAL NOT NULL, loglik REAL NOT NULL,"
    " n_ref_tokens INTEGER NOT NULL,"
    " judge_yes INTEGER, judge_score REAL, judge_model TEXT,"
    " PRIMARY KEY(config, item));";

static vlmn_status dberr(sqlite3 *db, const char *path, const char *what)
{
    return vlmn_error(VLMN_E_DB, "%s: %s: %s", path, what, sqlite3_errmsg(db));
}

static vlmn_status exec(sqlite3 *db, const char *path, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        vlmn_status st = vlmn_error(VLMN_E_DB, "%s: %s", path, msg ? msg : "sqlite error");
        sqlite3_free(msg);
        return st;
    }
    return VLMN_OK;
}

/* meta key: set when absent, else must equal (a resumed run must use the same settings). */
static vlmn_status meta_check(sqlite3 *db, const char *path, const char *key, const char *value)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?", -1, &s, NULL)) return dberr(db, path, "meta");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    vlmn_status st = VLMN_OK;
    if (sqlite3_step(s) == SQLITE_ROW) {
        const char *have = (const char *)sqlite3_column_text(s, 0);
        if (strcmp(have ? have : "", value))
            st = vlmn_error(VLMN_E_MISMATCH, "%s: made with %s '%s', not '%s' (use another -o to start afresh)", path,
                            key, have ? have : "", value);
        sqlite3_finalize(s);
        return st;
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(db, "INSERT INTO meta(key, value) VALUES(?, ?)", -1, &s, NULL)) return dberr(db, path, "meta");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) st = dberr(db, path, "meta");
    sqlite3_finalize(s);
    return st;
}

static char *tokens_json(const int32_t *t, int n)
{
    size_t cap = (size_t)n * 12 + 3;
    char *s = vlmn_malloc(cap);
    if (!s) return NULL;
    size_t o = 0;
    s[o++] = '[';
    for (int i = 0; i < n; i++) o += (size_t)snprintf(s + o, cap - o, "%s%d", i ? "," : "", t[i]);
    s[o++] = ']';
    s[o] = 0;
    return s;
}

typedef struct agg {
    double em, f1, ll;
    int64_t n;
    double jy, js; /* judge accuracy (mean of yes) and mean score over the graded answers */
    int64_t jn;    /* graded answers (failures excluded) */
} agg;

static vlmn_status aggregate(sqlite3 *db, const char *path, const char *cfg, agg *a)
{
    sqlite3_stmt *s;
    memset(a, 0, sizeof *a);
    if (sqlite3_prepare_v2(db,
                           "SELECT avg(exact), avg(f1), avg(loglik), count(*), avg(judge_yes), avg(judge_score), "
                           "count(judge_yes) FROM answers WHERE config=?",
                           -1, &s, NULL))
        return dberr(db, path, "aggregate");
    sqlite3_bind_text(s, 1, cfg, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        a->em = sqlite3_column_double(s, 0);
        a->f1 = sqlite3_column_double(s, 1);
        a->ll = sqlite3_column_double(s, 2);
        a->n = sqlite3_column_int64(s, 3);
        a->jy = sqlite3_column_double(s, 4);
        a->js = sqlite3_column_double(s, 5);
        a->jn = sqlite3_column_int64(s, 6);
    }
    sqlite3_finalize(s);
    return VLMN_OK;
}

/* mean and sample std (0 for one value) */
static void mean_std(const double *v, int n, double *m, double *sd)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *m = n ? s / n : NAN;
    for (int i = 0; i < n; i++) q += (v[i] - *m) * (v[i] - *m);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

typedef struct summary {
    double ratio[64];
    agg full, unk[64];
    double rnd_m[64][3], rnd_s[64][3];
    double rnd_jm[64][2], rnd_js[64][2];
} summary;

static void write_table(FILE *f, const vlmn_prune_eval_opts *o, const summary *S)
{
    fprintf(f, "%-30s %-22s", "", "Full model");
    for (int t = 0; t < o->n_tau; t++) {
        char h[32];
        snprintf(h, sizeof h, "w/o p_u>=%g", o->tau[t]);
        fprintf(f, " %-22s", h);
    }
    fprintf(f, "\n%-30s %6.1f/%5.1f/%8.4f  ", "Unknown neurons (EM/F1/LL)", 100 * S->full.em, 100 * S->full.f1,
            S->full.ll);
    for (int t = 0; t < o->n_tau; t++)
        fprintf(f, " %6.1f/%5.1f/%8.4f  ", 100 * S->unk[t].em, 100 * S->unk[t].f1, S->unk[t].ll);
    if (o->n_random_seeds > 0) {
        fprintf(f, "\n%-30s %6.1f/%5.1f/%8.4f  ", "Random neurons (EM/F1/LL)", 100 * S->full.em, 100 * S->full.f1,
                S->full.ll);
        for (int t = 0; t < o->n_tau; t++)
            fprintf(f, " %.1f+-%.1f/%.1f+-%.1f/%.4f+-%.4f", 100 * S->rnd_m[t][0], 100 * S->rnd_s[t][0],
                    100 * S->rnd_m[t][1], 100 * S->rnd_s[t][1], S->rnd_m[t][2], S->rnd_s[t][2]);
    }
    if (o->judge_model) {
        fprintf(f, "\n%-30s %6.1f/%4.2f (n=%lld)      ", "Unknown neurons (judge Acc./Score)", 100 * S->full.jy,
                S->full.js, (long long)S->full.jn);
        for (int t = 0; t < o->n_tau; t++)
            fprintf(f, " %6.1f/%4.2f (n=%lld)      ", 100 * S->unk[t].jy, S->unk[t].js, (long long)S->unk[t].jn);
        if (o->n_random_seeds > 0) {
            fprintf(f, "\n%-30s %6.1f/%4.2f              ", "Random neurons (judge Acc./Score)", 100 * S->full.jy,
                    S->full.js);
            for (int t = 0; t < o->n_tau; t++)
                fprintf(f, " %.1f+-%.1f/%.2f+-%.2f", 100 * S->rnd_jm[t][0], 100 * S->rnd_js[t][0], S->rnd_jm[t][1],
                        S->rnd_js[t][1]);
        }
    }
    fprintf(f, "\n%-30s %-22.1f", "Pruning ratio (%)", 0.0);
    for (int t = 0; t < o->n_tau; t++) fprintf(f, " %-22.2f", 100 * S->ratio[t]);
    fprintf(f, "\n(EM = exact match %%, F1 = token F1 %%, LL = mean log-likelihood per reference token;\n"
               " random: mean +- std over %d seeds; %lld questions per column)\n",
            o->n_random_seeds, (long long)S->full.n);
}

/* Fig. 12: F1 and reference log-likelihood against the pruning ratio, unknown vs random. */
static void write_fig(FILE *f, const vlmn_prune_eval_opts *o, const summary *S)
{
    const int W = 420, H = 300, L = 60, R = 20, T = 40, B = 50;
    const int n = o->n_tau;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"11\">\n", 2 * W, H);
    for (int panel = 0; panel < 2; panel++) {
        const int mi = panel == 0 ? 1 : 2;
        const double scale = panel == 0 ? 100.0 : 1.0;
        double xs[65], yu[65], yr[65], sr[65];
        xs[0] = 0;
        yu[0] = yr[0] = scale * (panel == 0 ? S->full.f1 : S->full.ll);
        sr[0] = 0;
        for (int t = 0; t < n; t++) {
            xs[t + 1] = 100 * S->ratio[t];
            yu[t + 1] = scale * (panel == 0 ? S->unk[t].f1 : S->unk[t].ll);
            yr[t + 1] = scale * S->rnd_m[t][mi];
            sr[t + 1] = scale * S->rnd_s[t][mi];
        }
        double x1 = 1e-9, y0 = INFINITY, y1 = -INFINITY;
        for (int i = 0; i <= n; i++) {
            if (xs[i] > x1) x1 = xs[i];
            double lo = yu[i], hi = yu[i];
            if (o->n_random_seeds > 0) {
                if (yr[i] - sr[i] < lo) lo = yr[i] - sr[i];
                if (yr[i] + sr[i] > hi) hi = yr[i] + sr[i];
            }
            if (lo < y0) y0 = lo;
            if (hi > y1) y1 = hi;
        }
        if (!(y1 > y0)) y1 = y0 + 1;
        double pad = 0.08 * (y1 - y0);
        y0 -= pad;
        y1 += pad;
        x1 *= 1.05;
        const int ox = panel * W;
#define PX(x) (ox + L + (double)((x) / x1) * (W - L - R))
#define PY(y) (T + (double)((y1 - (y)) / (y1 - y0)) * (H - T - B))
        fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"13\">%s vs pruning ratio</text>\n", ox + L,
                panel == 0 ? "Token F1 (%)" : "Reference log-likelihood");
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", ox + L, T,
                W - L - R, H - T - B);
        for (int k = 0; k <= 4; k++) {
            double yv = y0 + (y1 - y0) * k / 4, xv = x1 * k / 4;
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", ox + L - 4, PY(yv) + 4, yv);
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.1f</text>\n", PX(xv), H - B + 14, xv);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">pruned neurons (%%)</text>\n", ox + L + (W - L - R) / 2,
                H - 12);
        for (int series = 0; series < (o->n_random_seeds > 0 ? 2 : 1); series++) {
            const double *y = series == 0 ? yu : yr;
            const char *col = series == 0 ? "#1f77b4" : "#d62728";
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
            for (int i = 0; i <= n; i++) fprintf(f, "%.1f,%.1f ", PX(xs[i]), PY(y[i]));
            fprintf(f, "\"/>\n");
            for (int i = 0; i <= n; i++) {
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(xs[i]), PY(y[i]), col);
                if (series == 1 && sr[i] > 0)
                    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", PX(xs[i]),
                            PY(y[i] - sr[i]), PX(xs[i]), PY(y[i] + sr[i]), col);
            }
            fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", ox + L + 8, T + 14 + 14 * series, col,
                    series == 0 ? "unknown neurons (p_u >= tau)" : "random neurons (mean +- std)");
        }
#undef PX
#undef PY
    }
    fprintf(f, "</svg>\n");
}

static vlmn_status write_file(const char *dir, const char *name, const vlmn_prune_eval_opts *o, const summary *S,
                              bool svg)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", tmp, strerror(errno));
    if (svg)
        write_fig(f, o, S);
    else
        write_table(f, o, S);
    if (ferror(f) | fclose(f) || rename(tmp, path)) {
        remove(tmp);
        return vlmn_error(VLMN_E_IO, "%s: write failed", path);
    }
    return VLMN_OK;
}

vlmn_status vlmn_prune_eval(const vlmn_prune_eval_opts *o)
{
    vlmn_status st = VLMN_OK;
    if (o->n_tau < 1 || o->n_tau > 64) return vlmn_error(VLMN_E_ARG, "prune-eval: 1 to 64 tau values");
    for (int t = 0; t < o->n_tau; t++)
        if (!(o->tau[t] >= 0.0 && o->tau[t] <= 1.0))
            return vlmn_error(VLMN_E_RANGE, "prune-eval: tau %g outside [0, 1]", o->tau[t]);
    if (o->n_random_seeds < 0 || (int64_t)o->n_tau * (o->n_random_seeds + 1) + 1 > MAX_CONFIGS)
        return vlmn_error(VLMN_E_ARG, "prune-eval: too many random seeds");
    if (o->batch < 1 || o->batch > 256) return vlmn_error(VLMN_E_ARG, "prune-eval: batch outside [1, 256]");

    vlmn_qa_set qa = {0};
    vlmn_llava *m = NULL;
    config *cf = vlmn_calloc(MAX_CONFIGS, sizeof *cf);
    int n_cf = 0;
    sqlite3 *db = NULL;
    char dbpath[4200];
    snprintf(dbpath, sizeof dbpath, "%s/eval.sqlite", o->out_dir);
    if (!cf) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    /* everything that can be wrong with the inputs is found before OUT is touched */
    if ((st = vlmn_qa_load(o->data, o->images, true, &qa))) goto done;
    vlmn_llava_params lp = {.n_threads = o->n_threads, .precision = o->precision};
    if ((st = vlmn_llava_load(o->model, o->mmproj, &lp, &m))) goto done;
    if ((st = vlmn_llava_check_template(m, o->model, o->qa.template_name)) ||
        (st = vlmn_llava_check_tiles(m, o->model, o->qa.max_tiles)))
        goto done;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    cf[n_cf++] = (config){"full", "full", -1, NAN, 0, NULL};
    for (int t = 0; t < o->n_tau; t++) {
        config *c = &cf[n_cf++];
        *c = (config){"", "unknown", t, o->tau[t], 0, NULL};
        snprintf(c->name, sizeof c->name, "unknown_p_u>=%g", o->tau[t]);
        char q[64];
        snprintf(q, sizeof q, "p_u>=%.17g", o->tau[t]);
        if ((st = vlmn_mask_from_query(o->run_dir, q, in->n_layer, in->n_ff, &c->mask))) goto done;
    }
    for (int t = 0; t < o->n_tau; t++)
        for (int s = 1; s <= o->n_random_seeds; s++) {
            config *c = &cf[n_cf++];
            *c = (config){"", "random", t, o->tau[t], s, NULL};
            snprintf(c->name, sizeof c->name, "random_p_u>=%g_seed%d", o->tau[t], s);
            /* exactly as many neurons as the tau mask, drawn over all layers */
            double ratio = vlmn_mask_ratio(cf[1 + t].mask);
            if ((st = vlmn_mask_random(ratio, (uint64_t)s * 1000003u + (uint64_t)t, in->n_layer, in->n_ff, &c->mask)))
                goto done;
        }

    if (mkdir(o->out_dir, 0777) && errno != EEXIST) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", o->out_dir, strerror(errno));
        goto done;
    }
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        st = vlmn_error(VLMN_E_DB, "%s: cannot open", dbpath);
        goto done;
    }
    sqlite3_busy_timeout(db, 10000);
    if ((st = exec(db, dbpath, "PRAGMA synchronous=FULL; PRAGMA journal_mode=WAL;")) ||
        (st = exec(db, dbpath, SCHEMA)))
        goto done;
    {
        char v[256];
        const char *dl = strrchr(o->data, '/');
        if ((st = exec(db, dbpath, "BEGIN"))) goto done;
        snprintf(v, sizeof v, "%lld", (long long)qa.n);
        if ((st = meta_check(db, dbpath, "n_questions", v)) || (st = meta_check(db, dbpath, "data", dl ? dl + 1 : o->data)))
            goto done;
        snprintf(v, sizeof v, "%d", o->qa.gen.max_tokens);
        if ((st = meta_check(db, dbpath, "max_tokens", v))) goto done;
        snprintf(v, sizeof v, "%g/%g", (double)o->qa.gen.temperature, (double)o->qa.gen.top_p);
        if ((st = meta_check(db, dbpath, "temperature/top_p", v)) ||
            (st = meta_check(db, dbpath, "template", o->qa.template_name)) ||
            (st = meta_check(db, dbpath, "precision", vlmn_precision_name(o->precision))))
            goto done;
        snprintf(v, sizeof v, "%d", o->qa.max_tiles); /* 0: the model's own */
        if ((st = meta_check(db, dbpath, "max_tiles", v))) goto done;
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO configs VALUES(?,?,?,?,?,?)", -1, &s, NULL)) {
            st = dberr(db, dbpath, "configs");
            goto done;
        }
        for (int i = 0; i < n_cf; i++) {
            sqlite3_reset(s);
            sqlite3_bind_text(s, 1, cf[i].name, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, cf[i].kind, -1, SQLITE_STATIC);
            if (cf[i].tau_i >= 0) sqlite3_bind_double(s, 3, cf[i].tau); else sqlite3_bind_null(s, 3);
            if (cf[i].seed) sqlite3_bind_int(s, 4, cf[i].seed); else sqlite3_bind_null(s, 4);
            sqlite3_bind_int64(s, 5, cf[i].mask ? vlmn_mask_count(cf[i].mask) : 0);
            sqlite3_bind_double(s, 6, cf[i].mask ? vlmn_mask_ratio(cf[i].mask) : 0.0);
            if (sqlite3_step(s) != SQLITE_DONE) {
                st = dberr(db, dbpath, "configs");
                break;
            }
        }
        sqlite3_finalize(s);
        if (st || (st = exec(db, dbpath, "COMMIT"))) goto done;
    }

    const int B = o->batch;
    int64_t kept = 0, made = 0;
    char **ans = vlmn_calloc((size_t)B, sizeof *ans);
    int32_t **tok = vlmn_calloc((size_t)B, sizeof *tok);
    int *ntok = vlmn_calloc((size_t)B, sizeof *ntok);
    int64_t *idx = vlmn_calloc((size_t)B, sizeof *idx);
    uint8_t *have = vlmn_calloc((size_t)qa.n, 1);
    vlmn_qa_item *items = vlmn_calloc((size_t)B, sizeof *items);
    if (!ans || !tok || !ntok || !idx || !have || !items) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto loop_done;
    }
    for (int c = 0; c < n_cf && !st; c++) {
        /* resume: the questions this config already answered */
        memset(have, 0, (size_t)qa.n);
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(db, "SELECT item FROM answers WHERE config=?", -1, &s, NULL)) {
            st = dberr(db, dbpath, "answers");
            break;
        }
        sqlite3_bind_text(s, 1, cf[c].name, -1, SQLITE_STATIC);
        int64_t done_n = 0;
        while (sqlite3_step(s) == SQLITE_ROW) {
            int64_t it = sqlite3_column_int64(s, 0);
            if (it >= 0 && it < qa.n && !have[it]) have[it] = 1, done_n++;
        }
        sqlite3_finalize(s);
        kept += done_n;
        if (done_n == qa.n) continue;
        vlmn_forward_opts fo = {.neuron_mask = vlmn_mask_rows(cf[c].mask)};
        vlmn_qa_params qp = o->qa;
        qp.gen.opts = &fo;
        qp.gen.on_token = NULL;
        int64_t next = 0;
        while (!st) {
            int nb = 0;
            for (; next < qa.n && nb < B; next++)
                if (!have[next]) {
                    idx[nb] = next;
                    items[nb++] = qa.items[next];
                }
            if (nb == 0) break;
            if ((st = vlmn_qa_answer(m, items, nb, idx, 0, &qp, ans, tok, ntok))) break;
            double ll[256];
            int nref[256];
            for (int k = 0; k < nb && !st; k++)
                st = vlmn_qa_loglik(m, &items[k], &o->qa, fo.neuron_mask, &ll[k], &nref[k]);
            if (!st && !(st = exec(db, dbpath, "BEGIN"))) {
                if (sqlite3_prepare_v2(db, "INSERT INTO answers(config,item,id,question,reference,answer,tokens,n_tokens,"
                                           "exact,f1,loglik,n_ref_tokens) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                                       -1, &s, NULL)) {
                    st = dberr(db, dbpath, "answers");
                } else {
                    for (int k = 0; k < nb && !st; k++) {
                        char *tj = tokens_json(tok[k], ntok[k]);
                        sqlite3_reset(s);
                        sqlite3_bind_text(s, 1, cf[c].name, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(s, 2, idx[k]);
                        sqlite3_bind_text(s, 3, items[k].id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(s, 4, items[k].question, -1, SQLITE_STATIC);
                        sqlite3_bind_text(s, 5, items[k].answer, -1, SQLITE_STATIC);
                        sqlite3_bind_text(s, 6, ans[k], -1, SQLITE_STATIC);
                        sqlite3_bind_text(s, 7, tj ? tj : "[]", -1, SQLITE_STATIC);
                        sqlite3_bind_int(s, 8, ntok[k]);
                        sqlite3_bind_double(s, 9, vlmn_grade_exact(ans[k], items[k].answer));
                        sqlite3_bind_double(s, 10, vlmn_grade_f1(ans[k], items[k].answer));
                        sqlite3_bind_double(s, 11, ll[k]);
                        sqlite3_bind_int(s, 12, nref[k]);
                        if (!tj) st = vlmn_error(VLMN_E_NOMEM, "out of memory");
                        else if (sqlite3_step(s) != SQLITE_DONE) st = dberr(db, dbpath, "answers");
                        vlmn_free(tj);
                    }
                    sqlite3_finalize(s);
                }
                if (!st) st = exec(db, dbpath, "COMMIT");
                else exec(db, dbpath, "ROLLBACK");
            }
            for (int k = 0; k < nb; k++) {
                vlmn_free(ans[k]);
                vlmn_free(tok[k]);
                ans[k] = NULL;
                tok[k] = NULL;
            }
            done_n += nb;
            if (!st) made += nb;
            if (!st && o->progress)
                fprintf(o->progress, "vlmn prune-eval: %s: %lld/%lld\n", cf[c].name, (long long)done_n, (long long)qa.n);
        }
    }
loop_done:
    if (!st && o->progress)
        fprintf(o->progress, "vlmn prune-eval: %lld answers stored: %lld kept from before, %lld generated now\n",
                (long long)(kept + made), (long long)kept, (long long)made);
    vlmn_free(ans);
    vlmn_free(tok);
    vlmn_free(ntok);
    vlmn_free(idx);
    vlmn_free(have);
    vlmn_free(items);
    if (st) goto done;
    if (o->judge_model) {
        int64_t nj = 0, nf = 0;
        if ((st = vlmn_judge_answers(db, dbpath, o->judge_model, &o->judge, o->progress, &nj, &nf))) goto done;
    }

    summary *S = vlmn_calloc(1, sizeof *S);
    if (!S) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto done;
    }
    if ((st = aggregate(db, dbpath, "full", &S->full))) goto sum_done;
    for (int t = 0; t < o->n_tau; t++) {
        S->ratio[t] = vlmn_mask_ratio(cf[1 + t].mask);
        if ((st = aggregate(db, dbpath, cf[1 + t].name, &S->unk[t]))) goto sum_done;
        double v[3][MAX_CONFIGS], jv[2][MAX_CONFIGS];
        int nv = 0;
        for (int c = 1 + o->n_tau; c < n_cf; c++) {
            if (cf[c].tau_i != t) continue;
            agg a;
            if ((st = aggregate(db, dbpath, cf[c].name, &a))) goto sum_done;
            v[0][nv] = a.em, v[1][nv] = a.f1, v[2][nv] = a.ll;
            jv[0][nv] = a.jy, jv[1][nv] = a.js;
            nv++;
        }
        for (int k = 0; k < 3; k++) mean_std(v[k], nv, &S->rnd_m[t][k], &S->rnd_s[t][k]);
        for (int k = 0; k < 2; k++) mean_std(jv[k], nv, &S->rnd_jm[t][k], &S->rnd_js[t][k]);
    }
    if ((st = write_file(o->out_dir, "table3.txt", o, S, false)) || (st = write_file(o->out_dir, "fig12.svg", o, S, true)))
        goto sum_done;
    if (o->table) write_table(o->table, o, S);
sum_done:
    vlmn_free(S);
done:
    if (db) sqlite3_close(db);
    for (int i = 0; i < n_cf; i++) vlmn_mask_free(cf[i].mask);
    vlmn_free(cf);
    vlmn_llava_free(m);
    vlmn_qa_free(&qa);
    return st;
}
