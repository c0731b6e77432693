/* The browser's pages (HTML) and API (JSON) over an open run: overview, neuron table,
 * neuron, sample. Every string from the run (dataset ids, image paths, token strings,
 * explanations) goes through browse_html / browse_json_str. Shared by the server and
 * the static export (links differ, see browse_links). */
#include "browse/browse_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "store/store.h"
#include "vlmn/analysis.h"
#include "vlmn/draw.h"
#include "vlmn/report.h"

static const char *const lab_name[4] = {"visual", "text", "multimodal", "unknown"};
static const char *const sort_col[] = {"k", "max_act", "p_v", "p_t", "p_m", "p_u", "score"};
static const char *const sort_name[] = {"neuron", "max_act", "p_v", "p_t", "p_m", "p_u", "score"};

#define ADD(s) vlmn_buf_adds(out, s)

/* ---- links ---- */
static void l_root(vlmn_buf *out, const browse_links *ln) { ADD(ln->root); }
static void l_overview(vlmn_buf *out, const browse_links *ln)
{
    l_root(out, ln);
    if (ln->exported) ADD("index.html");
}
static void l_neuron(vlmn_buf *out, const browse_links *ln, int l, int n)
{
    l_root(out, ln);
    browse_printf(out, "neuron/%d/%d%s", l, n, ln->exported ? ".html" : "");
}
static void l_sample(vlmn_buf *out, const browse_links *ln, int64_t s)
{
    l_root(out, ln);
    browse_printf(out, "sample/%lld%s", (long long)s, ln->exported ? ".html" : "");
}
static void l_table(vlmn_buf *out, const browse_links *ln, int label, int64_t page)
{
    l_root(out, ln);
    if (ln->exported)
        browse_printf(out, "neurons/%s-%lld.html", label < 0 ? "all" : lab_name[label], (long long)page);
    else if (label < 0)
        browse_printf(out, "neurons?page=%lld", (long long)page);
    else
        browse_printf(out, "neurons?label=%s&amp;sort=p_%c&amp;order=desc&amp;page=%lld", lab_name[label],
                      "vtmu"[label], (long long)page);
}

/* Extension of an image path when short and alphanumeric, else "img". */
static const char *img_ext(const char *path, char *ext, size_t n)
{
    const char *dot = path ? strrchr(path, '.') : NULL, *slash = path ? strrchr(path, '/') : NULL;
    snprintf(ext, n, "img");
    if (!dot || (slash && dot < slash) || !dot[1] || strlen(dot + 1) > 5) return ext;
    for (const char *p = dot + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) return ext;
    snprintf(ext, n, "%s", dot + 1);
    return ext;
}
static void l_img(vlmn_buf *out, const browse_links *ln, int64_t s, const char *image)
{
    char ext[8];
    l_root(out, ln);
    if (ln->exported) browse_printf(out, "img/%lld.%s", (long long)s, img_ext(image, ext, sizeof ext));
    else browse_printf(out, "img/%lld", (long long)s);
}
static void l_mod(vlmn_buf *out, const browse_links *ln, int l, int n, int64_t s)
{
    l_root(out, ln);
    browse_printf(out, "mod/%d/%d/%lld.png", l, n, (long long)s);
}

static const char page_css[] =
    "form.f label{margin-right:10px;font-size:13px}form.f input{width:70px}form.f input[name=q]{width:180px}"
    ".pg a{margin:0 6px}table.sim{display:block;overflow-x:auto;max-width:100%}table.sim td{white-space:pre}.heat{margin:4px 0 10px;line-height:1.9}.tops img{width:96px;height:96px;"
    "object-fit:cover;border:1px solid #ccc}.nb a{margin-right:10px}td.x{max-width:420px}";

static void head(vlmn_buf *out, vlmn_browse *b, const browse_links *ln, const char *title)
{
    ADD("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    browse_html(out, title);
    ADD(" - vlmn browse</title><style>");
    ADD(vlmn_report_css());
    ADD(page_css);
    ADD("</style></head><body><main><nav><a href=\"");
    l_overview(out, ln);
    ADD("\">overview</a><a href=\"");
    l_table(out, ln, -1, 1);
    ADD("\">all neurons</a>");
    for (int t = 0; t < 4; t++) {
        browse_printf(out, "<a class=\"lab-%s\" href=\"", lab_name[t]);
        l_table(out, ln, t, 1);
        browse_printf(out, "\">%s</a>", lab_name[t]);
    }
    ADD("<span style=\"color:#777\">run ");
    browse_html(out, b->dir);
    ADD("</span></nav>\n");
}

static void tail(vlmn_buf *out) { ADD("</main></body></html>\n"); }

void browse_error_page(vlmn_buf *out, bool api, int code, const char *msg, const char **type)
{
    if (api) {
        *type = "application/json; charset=utf-8";
        browse_printf(out, "{\"status\":%d,\"error\":", code);
        browse_json_str(out, msg);
        ADD("}\n");
    } else {
        *type = "text/html; charset=utf-8";
        browse_printf(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%d</title></head>"
                           "<body><h1>%d</h1><p id=\"error\">",
                      code, code);
        browse_html(out, msg);
        ADD("</p><p><a href=\"/\">overview</a></p></body></html>\n");
    }
}


static void html_num(vlmn_buf *out, double v, const char *fmt)
{
    if (isfinite(v)) browse_printf(out, fmt, v);
    else ADD("&#8211;");
}

/* ---- overview ---- */
static int overview(vlmn_browse *b, const vlmn_browse_req *r, const browse_links *ln, vlmn_buf *out)
{
    sqlite3_stmt *s = NULL;
    if (r->api) {
        browse_printf(out, "{\"run\":");
        browse_json_str(out, b->dir);
        browse_printf(out, ",\"status\":");
        browse_json_str(out, b->status);
        browse_printf(out, ",\"n_layers\":%d,\"n_ff\":%d,\"top_n\":%d,\"n_samples\":%lld,\"classified\":%s,"
                           "\"explanations\":%s,\"traces\":%s,\"labels\":{",
                      b->n_layers, b->n_ff, b->top_n, (long long)b->n_samples, b->has_class ? "true" : "false",
                      b->has_expl ? "true" : "false", b->traces ? "true" : "false");
        for (int t = 0; t < 4; t++)
            browse_printf(out, "%s\"%s\":%lld", t ? "," : "", lab_name[t], (long long)b->label_count[t]);
        ADD("},\"provenance\":{");
        if (sqlite3_prepare_v2(b->db, "SELECT key, value FROM run ORDER BY rowid", -1, &s, NULL) == SQLITE_OK) {
            for (int i = 0; sqlite3_step(s) == SQLITE_ROW; i++) {
                if (i) ADD(",");
                browse_json_str(out, vlmn_db_col_text(s, 0));
                ADD(":");
                browse_json_str(out, vlmn_db_col_text(s, 1));
            }
        }
        sqlite3_finalize(s);
        ADD("}}\n");
        return 200;
    }
    head(out, b, ln, "overview");
    ADD("<h1>Neurons of ");
    browse_html(out, b->dir);
    browse_printf(out, "</h1><p class=\"sub\" id=\"totals\">status <b>");
    browse_html(out, b->status);
    browse_printf(out, "</b>; %d layers &#215; %d FFN neurons = %lld neurons; %lld samples; top-%d lists.</p>\n",
                  b->n_layers, b->n_ff, (long long)b->n_layers * b->n_ff, (long long)b->n_samples, b->top_n);
    if (b->has_class) {
        ADD("<table id=\"labels\"><tr><th>class</th><th>neurons</th></tr>");
        for (int t = 0; t < 4; t++) {
            browse_printf(out, "<tr><td><a href=\"");
            l_table(out, ln, t, 1);
            browse_printf(out, "\">%s</a></td><td class=\"n\">%lld</td></tr>", lab_name[t],
                          (long long)b->label_count[t]);
        }
        ADD("</table>\n");
    } else if (b->has_neurons) {
        ADD("<p>Not classified yet: run <code>vlmn classify RUN</code> for labels and figures.</p>");
    } else {
        ADD("<p>The run is not complete: neuron tables appear when <code>vlmn record</code> finishes.</p>");
    }
    if (!ln->exported) {
        ADD("<form class=\"f\" action=\"/neurons\" method=\"get\"><label>explanation contains "
            "<input name=\"q\" maxlength=\"256\"></label><button>search</button></form>");
    }
    if (b->figures) ADD(b->figures);
    ADD("<section id=\"provenance\"><h2>Provenance</h2><table class=\"kv\">");
    if (sqlite3_prepare_v2(b->db, "SELECT key, value FROM run ORDER BY rowid", -1, &s, NULL) == SQLITE_OK) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            ADD("<tr><td>");
            browse_html(out, vlmn_db_col_text(s, 0));
            ADD("</td><td>");
            browse_html(out, vlmn_db_col_text(s, 1));
            ADD("</td></tr>");
        }
    }
    sqlite3_finalize(s);
    ADD("</table></section>");
    tail(out);
    return 200;
}

/* ---- neuron table ---- */

int browse_fts_query(const char *q, char *out, size_t n)
{
    size_t o = 0;
    int terms = 0;
    for (const unsigned char *p = (const unsigned char *)q; *p;) {
        while (*p && !(*p >= 0x80 || (*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'z'))) p++;
        if (!*p) break;
        if (o + 4 >= n) return -1;
        if (terms) out[o++] = ' ';
        out[o++] = '"';
        while (*p >= 0x80 || (*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'z')) {
            if (o + 3 >= n) return -1;
            out[o++] = (char)*p++;
        }
        out[o++] = '"';
        terms++;
    }
    out[o] = 0;
    return terms;
}

static int neurons(vlmn_browse *b, const vlmn_browse_req *r, const browse_links *ln, vlmn_buf *out)
{
    char where[1024] = "1", fq[VLMN_BROWSE_MAX_Q * 2 + 8];
    if (r->f_layer >= 0 && r->f_layer >= b->n_layers) return -400;
    if (r->q[0] && browse_fts_query(r->q, fq, sizeof fq) <= 0) return -401;
    size_t w = 1;
#define W(...) w += (size_t)snprintf(where + w, sizeof where - w, __VA_ARGS__)
    if (r->f_layer >= 0) W(" AND k >= ?1 AND k < ?2");
    if (r->f_label >= 0) W(" AND label = ?3");
    static const char *const pc[4] = {"p_v", "p_t", "p_m", "p_u"};
    for (int t = 0; t < 4; t++)
        if (!isnan(r->p_min[t])) W(" AND %s >= ?%d", pc[t], 4 + t);
    if (!isnan(r->act_min)) W(" AND max_act >= ?8");
    if (!isnan(r->score_min)) W(" AND score >= ?9");
    if (r->q[0]) W(" AND k IN (SELECT rowid FROM m.nfts WHERE nfts MATCH ?10)");
#undef W
    const char *col = sort_col[r->sort], *dir = r->asc ? "ASC" : "DESC";
    char sql[2048], csql[1400];
    snprintf(sql, sizeof sql,
             "SELECT layer, neuron, label, p_v, p_t, p_m, p_u, max_act, expl, score FROM m.nt WHERE %s "
             "ORDER BY %s %s%s%s%s LIMIT ?11 OFFSET ?12",
             where, col, dir, r->sort != VLMN_BS_NEURON && r->asc ? " NULLS LAST" : "", /* missing values last */
             r->sort == VLMN_BS_NEURON ? "" : ", k ", r->sort == VLMN_BS_NEURON ? "" : dir);
    snprintf(csql, sizeof csql, "SELECT count(*) FROM m.nt WHERE %s", where);
    sqlite3_stmt *s[2] = {NULL, NULL};
    if (sqlite3_prepare_v2(b->db, sql, -1, &s[0], NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(b->db, csql, -1, &s[1], NULL) != SQLITE_OK) {
        sqlite3_finalize(s[0]);
        sqlite3_finalize(s[1]);
        return -500;
    }
    for (int i = 0; i < 2; i++) {
        int64_t lo = r->f_layer * (int64_t)b->n_ff;
        sqlite3_bind_int64(s[i], 1, lo);
        sqlite3_bind_int64(s[i], 2, lo + b->n_ff);
        sqlite3_bind_int(s[i], 3, r->f_label);
        for (int t = 0; t < 4; t++) sqlite3_bind_double(s[i], 4 + t, r->p_min[t]);
        sqlite3_bind_double(s[i], 8, r->act_min);
        sqlite3_bind_double(s[i], 9, r->score_min);
        sqlite3_bind_text(s[i], 10, fq, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int(s[0], 11, r->per);
    sqlite3_bind_int64(s[0], 12, (r->page_no - 1) * (int64_t)r->per);
    int64_t total = sqlite3_step(s[1]) == SQLITE_ROW ? sqlite3_column_int64(s[1], 0) : 0;
    int64_t pages = total ? (total + r->per - 1) / r->per : 1;
    if (r->api) {
        browse_printf(out, "{\"total\":%lld,\"page\":%lld,\"per\":%d,\"pages\":%lld,\"sort\":\"%s\",\"order\":\"%s\","
                           "\"neurons\":[",
                      (long long)total, (long long)r->page_no, r->per, (long long)pages, sort_name[r->sort],
                      r->asc ? "asc" : "desc");
        for (int i = 0; sqlite3_step(s[0]) == SQLITE_ROW; i++) {
            int lab = sqlite3_column_type(s[0], 2) == SQLITE_NULL ? -1 : sqlite3_column_int(s[0], 2);
            browse_printf(out, "%s{\"layer\":%d,\"neuron\":%d,\"label\":", i ? "," : "", sqlite3_column_int(s[0], 0),
                          sqlite3_column_int(s[0], 1));
            if (lab >= 0 && lab < 4) browse_printf(out, "\"%s\"", lab_name[lab]);
            else ADD("null");
            static const char *const pk[] = {"p_v", "p_t", "p_m", "p_u", "max_act"};
            for (int c = 0; c < 5; c++) {
                browse_printf(out, ",\"%s\":", pk[c]);
                browse_json_num(out, vlmn_db_col_num(s[0], 3 + c));
            }
            ADD(",\"explanation\":");
            if (sqlite3_column_type(s[0], 8) == SQLITE_NULL) ADD("null");
            else browse_json_str(out, vlmn_db_col_text(s[0], 8));
            ADD(",\"score\":");
            browse_json_num(out, vlmn_db_col_num(s[0], 9));
            ADD("}");
        }
        ADD("]}\n");
    } else {
        head(out, b, ln, "neurons");
        browse_printf(out, "<h1>Neurons</h1><p class=\"sub\" id=\"count\">%lld neurons match", (long long)total);
        if (r->f_label >= 0) browse_printf(out, " (label %s)", lab_name[r->f_label]);
        browse_printf(out, "; page %lld of %lld.</p>\n", (long long)r->page_no, (long long)pages);
        if (!ln->exported) {
            ADD("<form class=\"f\" id=\"filter\" action=\"/neurons\" method=\"get\"><label>layer <input name=\"layer\"");
            if (r->f_layer >= 0) browse_printf(out, " value=\"%lld\"", (long long)r->f_layer);
            ADD("></label><label>label <select name=\"label\"><option value=\"any\">any</option>");
            for (int t = 0; t < 4; t++)
                browse_printf(out, "<option%s>%s</option>", r->f_label == t ? " selected" : "", lab_name[t]);
            ADD("</select></label>");
            static const char *const fk[] = {"p_v", "p_t", "p_m", "p_u"};
            for (int t = 0; t < 4; t++) {
                browse_printf(out, "<label>%s &#8805; <input name=\"%s\"", fk[t], fk[t]);
                if (!isnan(r->p_min[t])) browse_printf(out, " value=\"%g\"", r->p_min[t]);
                ADD("></label>");
            }
            ADD("<label>max act &#8805; <input name=\"act\"");
            if (!isnan(r->act_min)) browse_printf(out, " value=\"%g\"", r->act_min);
            ADD("></label><label>score &#8805; <input name=\"score\"");
            if (!isnan(r->score_min)) browse_printf(out, " value=\"%g\"", r->score_min);
            ADD("></label><label>explanation <input name=\"q\" maxlength=\"256\" value=\"");
            browse_html(out, r->q);
            ADD("\"></label><label>sort <select name=\"sort\">");
            for (int k = 0; k < 7; k++)
                browse_printf(out, "<option%s>%s</option>", (int)r->sort == k ? " selected" : "", sort_name[k]);
            browse_printf(out, "</select></label><select name=\"order\"><option%s>asc</option><option%s>desc</option>"
                               "</select> <button id=\"apply\">apply</button></form>\n",
                          r->asc ? " selected" : "", r->asc ? "" : " selected");
        }
        ADD("<table id=\"neurons\"><tr><th>layer</th><th>neuron</th><th>label</th><th>p<sub>v</sub></th>"
            "<th>p<sub>t</sub></th><th>p<sub>m</sub></th><th>p<sub>u</sub></th><th>max act.</th>"
            "<th>explanation</th><th>score</th></tr>\n");
        while (sqlite3_step(s[0]) == SQLITE_ROW) {
            int l = sqlite3_column_int(s[0], 0), n = sqlite3_column_int(s[0], 1);
            int lab = sqlite3_column_type(s[0], 2) == SQLITE_NULL ? -1 : sqlite3_column_int(s[0], 2);
            browse_printf(out, "<tr><td class=\"n\">%d</td><td class=\"n\"><a class=\"nl\" href=\"", l);
            l_neuron(out, ln, l, n);
            browse_printf(out, "\">%d</a></td><td class=\"lab\">%s</td>", n, lab >= 0 && lab < 4 ? lab_name[lab] : "");
            for (int c = 0; c < 4; c++) {
                ADD("<td class=\"n\">");
                html_num(out, vlmn_db_col_num(s[0], 3 + c), "%.2f");
                ADD("</td>");
            }
            ADD("<td class=\"n\">");
            html_num(out, vlmn_db_col_num(s[0], 7), "%.4g");
            ADD("</td><td class=\"x\">");
            browse_html(out, vlmn_db_col_text(s[0], 8));
            ADD("</td><td class=\"n\">");
            html_num(out, vlmn_db_col_num(s[0], 9), "%.3f");
            ADD("</td></tr>\n");
        }
        ADD("</table><p class=\"pg\">");
        /* Pagination links keep the filters: the server rebuilds the query string. */
        for (int d = -1; d <= 1; d += 2) {
            int64_t p = r->page_no + d;
            if (p < 1 || p > pages) continue;
            browse_printf(out, "<a id=\"%s\" href=\"", d < 0 ? "prev" : "next");
            if (ln->exported) {
                l_table(out, ln, r->f_label, p);
            } else {
                browse_printf(out, "/neurons?page=%lld&amp;per=%d&amp;sort=%s&amp;order=%s", (long long)p, r->per,
                              sort_name[r->sort], r->asc ? "asc" : "desc");
                if (r->f_layer >= 0) browse_printf(out, "&amp;layer=%lld", (long long)r->f_layer);
                if (r->f_label >= 0) browse_printf(out, "&amp;label=%s", lab_name[r->f_label]);
                for (int t = 0; t < 4; t++)
                    if (!isnan(r->p_min[t])) browse_printf(out, "&amp;p_%c=%.17g", "vtmu"[t], r->p_min[t]);
                if (!isnan(r->act_min)) browse_printf(out, "&amp;act=%.17g", r->act_min);
                if (!isnan(r->score_min)) browse_printf(out, "&amp;score=%.17g", r->score_min);
                if (r->q[0]) {
                    ADD("&amp;q=");
                    for (const unsigned char *c = (const unsigned char *)r->q; *c; c++)
                        browse_printf(out, "%%%02X", *c);
                }
            }
            browse_printf(out, "\">%s</a>", d < 0 ? "&#8592; previous" : "next &#8594;");
        }
        ADD("</p>");
        tail(out);
    }
    sqlite3_finalize(s[0]);
    sqlite3_finalize(s[1]);
    return 200;
}

/* ---- neuron page ---- */
static void floats_json(vlmn_buf *out, const void *blob, int bytes)
{
    ADD("[");
    for (int i = 0; i + 4 <= bytes; i += 4) {
        float f;
        memcpy(&f, (const char *)blob + i, 4);
        if (i) ADD(",");
        browse_json_num(out, f);
    }
    ADD("]");
}

#define SIMS_SHOWN 64 /* tokens shown per simulated sample */

static void sims_html(vlmn_buf *out, const void *sim, int sb, const void *real, int rb, const char *const *pieces)
{
    int n = rb / 4;
    if (n > SIMS_SHOWN) n = SIMS_SHOWN;
    ADD("<table class=\"sim\">");
    if (pieces) {
        ADD("<tr><th>token</th>");
        for (int i = 0; i < n; i++) {
            ADD("<td>");
            browse_html(out, pieces[i]);
            ADD("</td>");
        }
        ADD("</tr>");
    }
    ADD("<tr><th>real</th>");
    for (int i = 0; i < n; i++) {
        float f;
        memcpy(&f, (const char *)real + 4 * i, 4);
        browse_printf(out, "<td class=\"n\">%.3g</td>", f);
    }
    ADD("</tr><tr><th>simulated</th>");
    for (int i = 0; i < n; i++) {
        float f = NAN;
        if (sim && 4 * i + 4 <= sb) memcpy(&f, (const char *)sim + 4 * i, 4);
        ADD("<td class=\"n\">");
        html_num(out, f, "%.3g");
        ADD("</td>");
    }
    ADD("</tr></table>");
}

static int neuron(vlmn_browse *b, const vlmn_browse_req *r, const browse_links *ln, vlmn_buf *out)
{
    if (!b->has_neurons || r->layer >= b->n_layers || r->neuron >= b->n_ff) return -404;
    int L = (int)r->layer, N = (int)r->neuron;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(b->db,
                           "SELECT label, p_v, p_t, p_m, p_u, max_act, min_act, mean, count FROM m.nt WHERE k = ?",
                           -1, &s, NULL) != SQLITE_OK)
        return -500;
    sqlite3_bind_int64(s, 1, (int64_t)L * b->n_ff + N);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return -404;
    }
    int lab = sqlite3_column_type(s, 0) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 0);
    double v[8];
    for (int i = 0; i < 8; i++) v[i] = vlmn_db_col_num(s, 1 + i);
    sqlite3_finalize(s);
    float nmax = (float)v[4];
    static const char *const vk[] = {"p_v", "p_t", "p_m", "p_u", "max_act", "min_act", "mean", "count"};
    char title[64];
    snprintf(title, sizeof title, "neuron %d:%d", L, N);
    if (r->api) {
        browse_printf(out, "{\"layer\":%d,\"neuron\":%d,\"label\":", L, N);
        if (lab >= 0 && lab < 4) browse_printf(out, "\"%s\"", lab_name[lab]);
        else ADD("null");
        for (int i = 0; i < 8; i++) {
            browse_printf(out, ",\"%s\":", vk[i]);
            browse_json_num(out, v[i]);
        }
    } else {
        head(out, b, ln, title);
        browse_printf(out, "<h1 id=\"title\">Neuron %d:%d <span class=\"lab\">%s</span></h1>", L, N,
                      lab >= 0 && lab < 4 ? lab_name[lab] : "(not classified)");
        ADD("<p class=\"nb\" id=\"neighbours\">same layer: ");
        static const int steps[] = {-100, -10, -1, 1, 10, 100};
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            int m = N + steps[i];
            if (m < 0 || m >= b->n_ff) continue;
            ADD("<a href=\"");
            l_neuron(out, ln, L, m);
            browse_printf(out, "\">%s%d (%d:%d)</a>", steps[i] > 0 ? "+" : "", steps[i], L, m);
        }
        ADD("</p><table class=\"kv\" id=\"stats\">");
        for (int i = 0; i < 8; i++) {
            browse_printf(out, "<tr><td>%s</td><td class=\"n\">", vk[i]);
            html_num(out, v[i], i < 4 ? "%.3f" : "%.6g");
            ADD("</td></tr>");
        }
        ADD("</table>");
    }
    /* Explanations, scores and simulations (tables of explain/simulate/score, when present).
     * HTML: each section only when the run has its table; "none yet" when the neuron has no row. */
    static const char *const none_yet = "<p class=\"sub\">none yet for this neuron</p>";
    if (r->api) ADD(",\"explanations\":[");
    else if (b->has_expl) ADD("<h2>Explanations</h2>");
    int rows = 0;
    if (b->has_expl && sqlite3_prepare_v2(b->db,
                                          "SELECT explainer, sampling, images, kind, status, text, error, created "
                                          "FROM explanations WHERE layer = ? AND neuron = ? ORDER BY created",
                                          -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int(s, 1, L);
        sqlite3_bind_int(s, 2, N);
        static const char *const ek[] = {"explainer", "sampling", "images", "kind", "status", "text", "error",
                                         "created"};
        for (; sqlite3_step(s) == SQLITE_ROW; rows++) {
            if (r->api) {
                ADD(rows ? ",{" : "{");
                for (int c = 0; c < 8; c++) {
                    browse_printf(out, "%s\"%s\":", c ? "," : "", ek[c]);
                    if (sqlite3_column_type(s, c) == SQLITE_NULL) ADD("null");
                    else browse_json_str(out, vlmn_db_col_text(s, c));
                }
                ADD("}");
                continue;
            }
            if (!rows)
                ADD("<table id=\"explanations\"><tr><th>explainer</th><th>sampling</th><th>images</th><th>kind</th>"
                    "<th>status</th><th>explanation</th></tr>");
            ADD("<tr>");
            for (int c = 0; c < 6; c++) {
                ADD(c == 5 ? "<td class=\"x expl\">" : "<td>");
                browse_html(out, c == 5 && !strcmp(vlmn_db_col_text(s, 4), "failed") ? vlmn_db_col_text(s, 6) : vlmn_db_col_text(s, c));
                ADD("</td>");
            }
            ADD("</tr>");
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    if (!r->api && b->has_expl) ADD(rows ? "</table>" : none_yet);
    /* LLM-free labels (vlmn label): the concepts whose CLIP maps best match the neuron */
    if (r->api) ADD("],\"labels\":[");
    else if (b->has_labels) ADD("<h2>Labels (CLIP, no LLM)</h2>");
    rows = 0;
    if (b->has_labels && sqlite3_prepare_v2(b->db,
                                            "SELECT clip, rank, concept, score, n_samples FROM labels WHERE layer = ? "
                                            "AND neuron = ? ORDER BY clip, rank",
                                            -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int(s, 1, L);
        sqlite3_bind_int(s, 2, N);
        for (; sqlite3_step(s) == SQLITE_ROW; rows++) {
            if (r->api) {
                ADD(rows ? ",{\"clip\":" : "{\"clip\":");
                browse_json_str(out, vlmn_db_col_text(s, 0));
                browse_printf(out, ",\"rank\":%d,\"concept\":", sqlite3_column_int(s, 1));
                browse_json_str(out, vlmn_db_col_text(s, 2));
                ADD(",\"score\":");
                browse_json_num(out, vlmn_db_col_num(s, 3));
                browse_printf(out, ",\"n_samples\":%d}", sqlite3_column_int(s, 4));
                continue;
            }
            if (!rows)
                ADD("<p class=\"sub\">The concepts whose CLIP (MaskCLIP) maps best match this neuron: score = "
                    "Pearson r of the concept's map and the real activations over the image tokens of the labelled "
                    "samples (not held out; a label scored on held-out samples appears above as explainer "
                    "label:CLIP).</p><table id=\"labels\"><tr><th>clip</th><th>rank</th><th>concept</th>"
                    "<th>score (r)</th><th>samples</th></tr>");
            ADD("<tr><td>");
            browse_html(out, vlmn_db_col_text(s, 0));
            browse_printf(out, "</td><td class=\"n\">%d</td><td class=\"x\">", sqlite3_column_int(s, 1));
            browse_html(out, vlmn_db_col_text(s, 2));
            ADD("</td><td class=\"n\">");
            html_num(out, vlmn_db_col_num(s, 3), "%.3f");
            browse_printf(out, "</td><td class=\"n\">%d</td></tr>", sqlite3_column_int(s, 4));
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    if (!r->api && b->has_labels) ADD(rows ? "</table>" : none_yet);
    if (r->api) ADD("],\"scores\":[");
    else if (b->has_scores) ADD("<h2>Scores</h2>");
    rows = 0;
    if (b->has_scores && sqlite3_prepare_v2(b->db,
                                            "SELECT explainer, simulator, scorer, kind, score, score_visual, score_text,"
                                            " n_visual, n_text, note FROM scores WHERE layer = ? AND neuron = ? "
                                            "ORDER BY score DESC",
                                            -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int(s, 1, L);
        sqlite3_bind_int(s, 2, N);
        for (; sqlite3_step(s) == SQLITE_ROW; rows++) {
            if (r->api) {
                ADD(rows ? ",{\"explainer\":" : "{\"explainer\":");
                browse_json_str(out, vlmn_db_col_text(s, 0));
                ADD(",\"simulator\":");
                browse_json_str(out, vlmn_db_col_text(s, 1));
                ADD(",\"scorer\":");
                browse_json_str(out, vlmn_db_col_text(s, 2));
                ADD(",\"kind\":");
                browse_json_str(out, vlmn_db_col_text(s, 3));
                static const char *const sk[] = {"score", "score_visual", "score_text", "n_visual", "n_text"};
                for (int c = 0; c < 5; c++) {
                    browse_printf(out, ",\"%s\":", sk[c]);
                    browse_json_num(out, vlmn_db_col_num(s, 4 + c));
                }
                ADD(",\"note\":");
                if (sqlite3_column_type(s, 9) == SQLITE_NULL) ADD("null");
                else browse_json_str(out, vlmn_db_col_text(s, 9));
                ADD("}");
                continue;
            }
            if (!rows)
                ADD("<table id=\"scores\"><tr><th>explainer</th><th>simulator</th><th>scorer</th><th>kind</th>"
                    "<th>score</th><th>visual</th><th>text</th><th>note</th></tr>");
            ADD("<tr>");
            for (int c = 0; c < 4; c++) {
                ADD("<td>");
                browse_html(out, vlmn_db_col_text(s, c));
                ADD("</td>");
            }
            for (int c = 4; c < 7; c++) {
                ADD("<td class=\"n\">");
                html_num(out, vlmn_db_col_num(s, c), "%.3f");
                ADD("</td>");
            }
            ADD("<td>");
            browse_html(out, vlmn_db_col_text(s, 9));
            ADD("</td></tr>");
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    if (!r->api && b->has_scores) ADD(rows ? "</table>" : none_yet);
    if (r->api) ADD("],\"simulations\":[");
    else if (b->has_sims) ADD("<h2>Real vs simulated activations</h2>");
    rows = 0;
    if (b->has_sims && sqlite3_prepare_v2(b->db,
                                          "SELECT sample_index, rank, simulator, mode, modality, sim, real, status, "
                                          "explainer FROM simulations WHERE layer = ? AND neuron = ? "
                                          "ORDER BY explainer, simulator, rank LIMIT 50",
                                          -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int(s, 1, L);
        sqlite3_bind_int(s, 2, N);
        for (; sqlite3_step(s) == SQLITE_ROW; rows++) {
            const void *sim = sqlite3_column_blob(s, 5);
            int sb = sqlite3_column_bytes(s, 5);
            const void *real = sqlite3_column_blob(s, 6);
            int rb = sqlite3_column_bytes(s, 6);
            int64_t smp = sqlite3_column_int64(s, 0);
            if (r->api) {
                browse_printf(out, "%s{\"sample\":%lld,\"rank\":%d,\"explainer\":", rows ? "," : "", (long long)smp,
                              sqlite3_column_int(s, 1));
                browse_json_str(out, vlmn_db_col_text(s, 8));
                ADD(",\"simulator\":");
                browse_json_str(out, vlmn_db_col_text(s, 2));
                ADD(",\"mode\":");
                browse_json_str(out, vlmn_db_col_text(s, 3));
                ADD(",\"modality\":");
                browse_json_str(out, vlmn_db_col_text(s, 4));
                ADD(",\"status\":");
                browse_json_str(out, vlmn_db_col_text(s, 7));
                ADD(",\"real\":");
                floats_json(out, real, rb);
                ADD(",\"sim\":");
                if (sim) floats_json(out, sim, sb);
                else ADD("null");
                ADD("}");
                continue;
            }
            if (!rows)
                ADD("<p class=\"sub\">Real: the neuron's activations on the simulated tokens; simulated: the "
                    "simulator's 0&#8211;10 predictions from the explanation (the score correlates the two, so "
                    "their scales need not match).</p><div id=\"simulations\">");
            browse_printf(out, "<h3>sample <a href=\"");
            l_sample(out, ln, smp);
            browse_printf(out, "\">#%lld</a> (rank %d, ", (long long)smp, sqlite3_column_int(s, 1));
            browse_html(out, vlmn_db_col_text(s, 4));
            ADD(", explainer ");
            browse_html(out, vlmn_db_col_text(s, 8));
            ADD(", simulator ");
            browse_html(out, vlmn_db_col_text(s, 2));
            ADD(")</h3>");
            /* The token strings of the simulated (text) tokens, from the trace store. */
            vlmn_trace_sample *ts = NULL;
            const char *pieces[SIMS_SHOWN];
            int np = 0;
            if (b->traces && !strcmp(vlmn_db_col_text(s, 4), "text") && smp >= 0 && smp <= UINT32_MAX &&
                !vlmn_traces_sample(b->traces, (uint32_t)smp, &ts)) {
                int64_t nt = 0;
                for (int64_t i = 0; i < ts->n_tokens; i++)
                    if (ts->modality[i] == VLMN_TRACE_TEXT && nt++ < SIMS_SHOWN) pieces[np++] = ts->pieces[i];
                if (nt != rb / 4) np = 0; /* not the tokens that were simulated */
            }
            sims_html(out, sim, sb, real, rb, np ? pieces : NULL);
            vlmn_trace_sample_free(ts);
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    if (!r->api && b->has_sims) ADD(rows ? "</div>" : none_yet);
    /* Top samples, with the modulated image and token heat of traced pairs. */
    ADD(r->api ? "],\"top\":[" : "<h2>Top samples</h2><table class=\"tops\" id=\"top\"><tr><th>rank</th>"
                                 "<th>sample</th><th>max act.</th><th>image</th><th>modulated / tokens</th></tr>\n");
    if (sqlite3_prepare_v2(b->db,
                           "SELECT t.rank, t.sample_index, t.max_act, s.sample_id, s.image FROM top t LEFT JOIN samples"
                           " s USING (sample_index) WHERE t.layer = ? AND t.neuron = ? ORDER BY t.rank",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int(s, 1, L);
        sqlite3_bind_int(s, 2, N);
        for (int i = 0; sqlite3_step(s) == SQLITE_ROW; i++) {
            int64_t smp = sqlite3_column_int64(s, 1);
            bool traced = b->traces && smp >= 0 && smp <= UINT32_MAX && vlmn_traces_has(b->traces, L, N, (uint32_t)smp);
            bool has_img = sqlite3_column_type(s, 4) != SQLITE_NULL;
            if (r->api) {
                browse_printf(out, "%s{\"rank\":%d,\"sample\":%lld,\"max_act\":", i ? "," : "", sqlite3_column_int(s, 0),
                              (long long)smp);
                browse_json_num(out, vlmn_db_col_num(s, 2));
                ADD(",\"id\":");
                browse_json_str(out, vlmn_db_col_text(s, 3));
                ADD(",\"image\":");
                if (has_img) browse_json_str(out, vlmn_db_col_text(s, 4));
                else ADD("null");
                browse_printf(out, ",\"traced\":%s}", traced ? "true" : "false");
                continue;
            }
            browse_printf(out, "<tr><td class=\"n\">%d</td><td><a class=\"sl\" href=\"", sqlite3_column_int(s, 0));
            l_sample(out, ln, smp);
            browse_printf(out, "\">#%lld</a> ", (long long)smp);
            browse_html(out, vlmn_db_col_text(s, 3));
            ADD("</td><td class=\"n\">");
            html_num(out, vlmn_db_col_num(s, 2), "%.4g");
            ADD("</td><td>");
            if (has_img) {
                ADD("<img alt=\"sample image\" loading=\"lazy\" src=\"");
                l_img(out, ln, smp, vlmn_db_col_text(s, 4));
                ADD("\">");
            }
            ADD("</td><td>");
            if (traced) {
                vlmn_trace_sample *ts = NULL;
                float *acts = NULL;
                int64_t na = 0;
                if (has_img) {
                    ADD("<img class=\"mod\" alt=\"activation-modulated image\" loading=\"lazy\" src=\"");
                    l_mod(out, ln, L, N, smp);
                    ADD("\">");
                }
                if (!vlmn_traces_sample(b->traces, (uint32_t)smp, &ts) &&
                    !vlmn_traces_get(b->traces, L, N, (uint32_t)smp, &acts, &na) && na == ts->n_tokens) {
                    char *heat = NULL;
                    size_t hl = 0;
                    vlmn_heat_opts ho = {0};
                    if (!vlmn_draw_heat_html(ts, acts, nmax, &ho, &heat, &hl)) {
                        ADD("<div class=\"heat\">");
                        vlmn_buf_add(out, heat, hl);
                        ADD("</div>");
                    }
                    vlmn_free(heat);
                }
                vlmn_free(acts);
                vlmn_trace_sample_free(ts);
            }
            ADD("</td></tr>\n");
        }
        sqlite3_finalize(s);
    }
    if (r->api) ADD("]}\n");
    else {
        ADD("</table>");
        tail(out);
    }
    return 200;
}

/* ---- sample page ---- */
static int sample(vlmn_browse *b, const vlmn_browse_req *r, const browse_links *ln, vlmn_buf *out)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(b->db,
                           "SELECT sample_id, image, status, error, n_image_tokens, n_text_tokens FROM samples "
                           "WHERE sample_index = ?",
                           -1, &s, NULL) != SQLITE_OK)
        return -500;
    sqlite3_bind_int64(s, 1, r->sample);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return -404;
    }
    vlmn_trace_sample *ts = NULL;
    if (b->traces && r->sample <= UINT32_MAX && vlmn_traces_sample(b->traces, (uint32_t)r->sample, &ts)) ts = NULL;
    bool has_img = sqlite3_column_type(s, 1) != SQLITE_NULL;
    if (r->api) {
        browse_printf(out, "{\"sample\":%lld,\"id\":", (long long)r->sample);
        browse_json_str(out, vlmn_db_col_text(s, 0));
        ADD(",\"image\":");
        if (has_img) browse_json_str(out, vlmn_db_col_text(s, 1));
        else ADD("null");
        ADD(",\"status\":");
        browse_json_str(out, vlmn_db_col_text(s, 2));
        ADD(",\"error\":");
        if (sqlite3_column_type(s, 3) == SQLITE_NULL) ADD("null");
        else browse_json_str(out, vlmn_db_col_text(s, 3));
        browse_printf(out, ",\"n_image_tokens\":%lld,\"n_text_tokens\":%lld,\"tokens\":",
                      (long long)sqlite3_column_int64(s, 4), (long long)sqlite3_column_int64(s, 5));
        if (ts) {
            ADD("[");
            for (int64_t i = 0; i < ts->n_tokens; i++) {
                if (i) ADD(",");
                browse_json_str(out, ts->pieces[i]);
            }
            ADD("]");
        } else {
            ADD("null");
        }
        ADD("}\n");
    } else {
        char title[64];
        snprintf(title, sizeof title, "sample %lld", (long long)r->sample);
        head(out, b, ln, title);
        browse_printf(out, "<h1 id=\"title\">Sample #%lld</h1><table class=\"kv\" id=\"sample\"><tr><td>id</td><td>",
                      (long long)r->sample);
        browse_html(out, vlmn_db_col_text(s, 0));
        ADD("</td></tr><tr><td>image</td><td>");
        browse_html(out, vlmn_db_col_text(s, 1));
        ADD("</td></tr><tr><td>status</td><td>");
        browse_html(out, vlmn_db_col_text(s, 2));
        if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
            ADD(": ");
            browse_html(out, vlmn_db_col_text(s, 3));
        }
        browse_printf(out, "</td></tr><tr><td>tokens</td><td>%lld image, %lld text</td></tr></table>",
                      (long long)sqlite3_column_int64(s, 4), (long long)sqlite3_column_int64(s, 5));
        if (has_img) {
            ADD("<p><img alt=\"sample image\" style=\"max-width:480px\" src=\"");
            l_img(out, ln, r->sample, vlmn_db_col_text(s, 1));
            ADD("\"></p>");
        }
        if (ts) {
            ADD("<h2>Tokens (traced)</h2><p id=\"tokens\" class=\"heat\">");
            for (int64_t i = 0; i < ts->n_tokens; i++) {
                if (ts->modality[i] == VLMN_TRACE_VISUAL && i > 0 && ts->modality[i - 1] == VLMN_TRACE_VISUAL) continue;
                ADD("<span style=\"border:1px solid #ddd;margin:1px;padding:0 2px\">");
                browse_html(out, ts->pieces[i]);
                ADD("</span>");
            }
            ADD("</p>");
        }
        tail(out);
    }
    sqlite3_finalize(s);
    vlmn_trace_sample_free(ts);
    return 200;
}

int browse_render(vlmn_browse *b, const vlmn_browse_req *r, const browse_links *ln, vlmn_buf *out, const char **type)
{
    *type = r->api ? "application/json; charset=utf-8" : "text/html; charset=utf-8";
    int c;
    switch (r->page) {
    case VLMN_BP_OVERVIEW: c = overview(b, r, ln, out); break;
    case VLMN_BP_NEURONS: c = neurons(b, r, ln, out); break;
    case VLMN_BP_NEURON: c = neuron(b, r, ln, out); break;
    case VLMN_BP_SAMPLE: c = sample(b, r, ln, out); break;
    default: c = -404;
    }
    if (c > 0 && !out->oom) return c;
    out->n = 0;
    if (out->p) out->p[0] = 0;
    out->oom = false;
    const char *msg = c == -400 ? "layer out of range"
                      : c == -401 ? "q: no searchable words"
                      : c == -404 ? "no such neuron or sample in this run"
                                  : "internal error";
    int code = c == -401 ? 400 : c < 0 ? -c : 500;
    browse_error_page(out, r->api, code, msg, type);
    return code;
}
