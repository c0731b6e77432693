/* Internals of the browser module: the open run (read-only database + in-memory index
 * tables), escaping, and the renderers shared by the server and the static export. */
#ifndef VLMN_BROWSE_INT_H
#define VLMN_BROWSE_INT_H

#include <sqlite3.h>

#include "core/buf.h"
#include "vlmn/browse.h"
#include "vlmn/trace.h"

struct vlmn_browse {
    char *dir;
    sqlite3 *db;              /* main = run.sqlite read-only, m = :memory: index tables */
    int n_layers, n_ff, top_n;
    int64_t n_samples;
    char status[32];
    char images[2048];        /* the run's images folder ("" if none) */
    bool has_neurons, has_class, has_expl, has_scores, has_sims, has_labels;
    int64_t label_count[4];
    char *figures;            /* overview figures HTML (report), NULL without classification */
    vlmn_traces *traces;      /* NULL when the run has none */
    vlmn_browse_index_src index_src;
};

/* Where links point: the server ("/neuron/3/7") or a static export ("../neuron/3/7.html"
 * relative to the page being written). */
typedef struct browse_links {
    bool exported;
    const char *root;         /* "/" or "", "../", "../../" */
} browse_links;

/* HTML text/attribute escaping (& < > " ' and control bytes); JSON string escaping with
 * < > & as \u escapes and invalid UTF-8 replaced by U+FFFD (quotes included). */
void browse_html(vlmn_buf *b, const char *s);
void browse_json_str(vlmn_buf *b, const char *s);
void browse_printf(vlmn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* JSON number or null for non-finite. */
void browse_json_num(vlmn_buf *b, double v);

/* FTS5 query from free text q: each run of ASCII letters/digits or non-ASCII bytes
 * becomes a double-quoted term (space-separated, so all must match), so no byte of q is
 * ever FTS5 syntax. Returns the number of terms (0: none), -1 when out (n bytes) is too
 * small; VLMN_BROWSE_MAX_Q * 2 + 8 always suffices. fuzz/fuzz_browse_request.c checks
 * that SQLite accepts every such query. */
int browse_fts_query(const char *q, char *out, size_t n);

/* Render a page (HTML or JSON by req->api) into out; returns the HTTP status. Errors
 * render as a short page / {"error": ...}. type gets the Content-Type. */
int browse_render(vlmn_browse *b, const vlmn_browse_req *req, const browse_links *ln, vlmn_buf *out,
                  const char **type);
void browse_error_page(vlmn_buf *out, bool api, int code, const char *msg, const char **type);

/* The image file of a sample, resolved from the samples table only; 0 ok (bytes and
 * type filled, vlmn_free), 404 unknown sample / no readable image. ext gets "jpg"... */
int browse_image(vlmn_browse *b, int64_t sample, char **bytes, size_t *len, const char **type, const char **ext);
/* The modulated PNG of a traced (neuron, sample); 200 or 404. */
int browse_modulated(vlmn_browse *b, int layer, int neuron, int64_t sample, char **bytes, size_t *len);

#endif
