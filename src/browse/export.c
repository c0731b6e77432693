/* `vlmn browse RUN --export DIR`: the same pages as static files that work from file://
 * (relative links, no server, no script). Precomputed: the overview, the neuron table per
 * label (all / visual / text / multimodal / unknown) in pages of 500 rows sorted as the
 * server's label links sort them, one page per neuron and per sample, the JSON of each
 * (DIR/api/...), the images of the samples shown, and the modulated PNG of every traced
 * pair shown. Files are written as NAME.tmp and renamed. */
#include "browse/browse_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"

#define EXPORT_PER 500

static vlmn_status mkdirs(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST) return vlmn_error(VLMN_E_IO, "%s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0777) && errno != EEXIST) return vlmn_error(VLMN_E_IO, "%s: %s", p, strerror(errno));
    return VLMN_OK;
}

static vlmn_status put(const char *dir, const char *rel, const void *data, size_t len)
{
    char path[4096], tmp[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, rel) >= sizeof path)
        return vlmn_error(VLMN_E_ARG, "%s: path too long", dir);
    char *slash = strrchr(path, '/');
    *slash = 0;
    vlmn_status st = mkdirs(path);
    *slash = '/';
    if (st) return st;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", tmp, strerror(errno));
    bool bad = len && fwrite(data, 1, len, f) != len;
    if (fclose(f)) bad = true;
    if (bad || rename(tmp, path)) {
        unlink(tmp);
        return vlmn_error(VLMN_E_IO, "%s: write failed", path);
    }
    return VLMN_OK;
}

/* Render req as HTML at rel and as JSON at api/rel_json. */
static vlmn_status page(vlmn_browse *b, vlmn_browse_req *q, const char *root, const char *dir, const char *rel,
                        const char *rel_json)
{
    browse_links ln = {true, root};
    const char *type;
    vlmn_status st = VLMN_OK;
    for (int api = 0; api < 2 && !st; api++) {
        vlmn_buf out = {0};
        q->api = api;
        int code = browse_render(b, q, &ln, &out, &type);
        if (code == 200 && out.p) {
            char r[512];
            snprintf(r, sizeof r, api ? "api/%s" : "%s", api ? rel_json : rel);
            st = put(dir, r, out.p, out.n);
        } else if (code != 404) {
            st = vlmn_error(VLMN_E_IO, "%s: page failed (%d)", rel, code);
        }
        vlmn_free(out.p);
    }
    return st;
}

static void req_init(vlmn_browse_req *q)
{
    char err[8];
    vlmn_browse_parse("/", 1, q, err, sizeof err);
}

vlmn_status vlmn_browse_export(vlmn_browse *b, const char *dir, bool quiet)
{
    vlmn_status st;
    vlmn_browse_req q;
    char rel[256], relj[256];
    if ((st = mkdirs(dir))) return st;
    req_init(&q);
    if ((st = page(b, &q, "", dir, "index.html", "run.json"))) return st;
    /* Table pages per label. */
    for (int lab = -1; lab < 4; lab++) {
        req_init(&q);
        q.page = VLMN_BP_NEURONS;
        q.per = EXPORT_PER;
        q.f_label = lab;
        if (lab >= 0) {
            q.sort = (vlmn_browse_sort)(VLMN_BS_PV + lab);
            q.asc = false;
        }
        int64_t total = lab < 0 ? (int64_t)b->n_layers * b->n_ff : b->label_count[lab];
        if (!b->has_neurons) total = 0;
        int64_t pages = total ? (total + EXPORT_PER - 1) / EXPORT_PER : 1;
        static const char *const nm[] = {"all", "visual", "text", "multimodal", "unknown"};
        for (int64_t p = 1; p <= pages; p++) {
            q.page_no = p;
            snprintf(rel, sizeof rel, "neurons/%s-%lld.html", nm[lab + 1], (long long)p);
            snprintf(relj, sizeof relj, "neurons/%s-%lld.json", nm[lab + 1], (long long)p);
            if ((st = page(b, &q, "../", dir, rel, relj))) return st;
        }
    }
    /* Neuron pages, their images and modulated pictures. */
    sqlite3_stmt *s = NULL;
    int64_t done = 0, total = b->has_neurons ? (int64_t)b->n_layers * b->n_ff : 0;
    for (int l = 0; l < b->n_layers && b->has_neurons; l++)
        for (int n = 0; n < b->n_ff; n++) {
            req_init(&q);
            q.page = VLMN_BP_NEURON;
            q.layer = l;
            q.neuron = n;
            snprintf(rel, sizeof rel, "neuron/%d/%d.html", l, n);
            snprintf(relj, sizeof relj, "neuron/%d/%d.json", l, n);
            if ((st = page(b, &q, "../../", dir, rel, relj))) return st;
            if (b->traces) {
                if (sqlite3_prepare_v2(b->db, "SELECT sample_index FROM top WHERE layer = ? AND neuron = ?", -1, &s,
                                       NULL) != SQLITE_OK)
                    return vlmn_error(VLMN_E_DB, "%s: top: %s", b->dir, sqlite3_errmsg(b->db));
                sqlite3_bind_int(s, 1, l);
                sqlite3_bind_int(s, 2, n);
                while (sqlite3_step(s) == SQLITE_ROW) {
                    int64_t smp = sqlite3_column_int64(s, 0);
                    char *bytes = NULL;
                    size_t len = 0;
                    if (browse_modulated(b, l, n, smp, &bytes, &len) == 200) {
                        snprintf(rel, sizeof rel, "mod/%d/%d/%lld.png", l, n, (long long)smp);
                        st = put(dir, rel, bytes, len);
                    }
                    vlmn_free(bytes);
                    if (st) {
                        sqlite3_finalize(s);
                        return st;
                    }
                }
                sqlite3_finalize(s);
            }
            if (!quiet && ++done % 10000 == 0) fprintf(stderr, "export: %lld of %lld neurons\n", (long long)done, (long long)total);
        }
    /* Sample pages and images. */
    if (sqlite3_prepare_v2(b->db, "SELECT sample_index FROM samples ORDER BY sample_index", -1, &s, NULL) != SQLITE_OK)
        return vlmn_error(VLMN_E_DB, "%s: samples: %s", b->dir, sqlite3_errmsg(b->db));
    while (sqlite3_step(s) == SQLITE_ROW) {
        int64_t smp = sqlite3_column_int64(s, 0);
        req_init(&q);
        q.page = VLMN_BP_SAMPLE;
        q.sample = smp;
        snprintf(rel, sizeof rel, "sample/%lld.html", (long long)smp);
        snprintf(relj, sizeof relj, "sample/%lld.json", (long long)smp);
        if ((st = page(b, &q, "../", dir, rel, relj))) break;
        char *bytes = NULL;
        size_t len = 0;
        const char *type, *ext;
        if (browse_image(b, smp, &bytes, &len, &type, &ext) == 200) {
            /* The pages link img/S.EXT with the dataset path's extension. */
            sqlite3_stmt *e = NULL;
            char want[16] = "img";
            if (sqlite3_prepare_v2(b->db, "SELECT image FROM samples WHERE sample_index = ?", -1, &e, NULL) ==
                SQLITE_OK) {
                sqlite3_bind_int64(e, 1, smp);
                if (sqlite3_step(e) == SQLITE_ROW && sqlite3_column_text(e, 0)) {
                    const char *p = (const char *)sqlite3_column_text(e, 0), *dot = strrchr(p, '.'),
                               *sl = strrchr(p, '/');
                    bool ok = dot && (!sl || dot > sl) && dot[1] && strlen(dot + 1) <= 5;
                    for (const char *c = dot ? dot + 1 : ""; ok && *c; c++)
                        ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9');
                    if (ok) snprintf(want, sizeof want, "%s", dot + 1);
                }
                sqlite3_finalize(e);
            }
            snprintf(rel, sizeof rel, "img/%lld.%s", (long long)smp, want);
            st = put(dir, rel, bytes, len);
        }
        vlmn_free(bytes);
        if (st) break;
    }
    sqlite3_finalize(s);
    return st;
}
