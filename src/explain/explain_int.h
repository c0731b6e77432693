/* Internals shared by the explain module's files: building chat messages part by part
 * (text runs, PNG images) before handing them to vlmn_llm_chat_body. */
#ifndef VLMN_EXPLAIN_INT_H
#define VLMN_EXPLAIN_INT_H

#include "vlmn/explain.h"
#include "vlmn/draw.h"
#include "vlmn/pipeline.h"
#include "vlmn/run.h"
#include "vlmn/trace.h"
#include "core/buf.h"

#include <sqlite3.h>

#define VLMN_X_MAX_EXAMPLES 64
#define VLMN_X_MAX_TOKENS 8192

typedef struct xmsgs {
    vlmn_llm_part *parts;
    char **own;              /* [n_parts] text owned by the part (NULL for images) */
    int n_parts, cap_parts;
    const char **roles;      /* per message */
    int *first, *count;      /* its parts */
    int n_msgs, cap_msgs;
    vlmn_llm_msg *msgs;      /* made by xmsg_finish */
    vlmn_buf cur;            /* text being appended */
} xmsgs;

bool xmsg_text(xmsgs *m, const char *s);
bool xmsg_image(xmsgs *m, const uint8_t *png, size_t len);
bool xmsg_end(xmsgs *m, const char *role);
bool xmsg_finish(xmsgs *m);
void xmsg_free(xmsgs *m);
/* "<start>\n" tok \t act|unknown "\n" ... "<end>\n" */
bool xmsg_lines(xmsgs *m, int n, const char *const *tokens, const int *acts, bool unknown);
/* The chat request for finished messages with the prompt options' model and sampling
 * settings (m must outlive the result). */
vlmn_llm_chat xmsg_chat(const xmsgs *m, const vlmn_xprompt_opts *o);

/* Resets s and binds an explanation's key (layer, neuron, sampling, explainer, images),
 * the leading columns of every explanation table (xdb.c), to parameters 1..5. */
/* The stored 'ok' explanations (of one explainer / sampling when not NULL), in key order:
 * columns layer, neuron, sampling, explainer, images, kind, text. */
vlmn_status xdb_explanations(sqlite3 *db, const char *explainer, const char *sampling, sqlite3_stmt **out);
void xdb_bind_key(sqlite3_stmt *s, int layer, int neuron, const char *sampling, const char *explainer,
                  const char *images);

/* ---- shared by the run drivers (pipeline.c, dscore_run.c) ---- */

/* One sample of a neuron, loaded from the trace store (owns its arrays): x.text_* are
 * its text positions, x.visual_acts its image positions, x.png the picture drawn with
 * dopt when want_png and the sample has an image. */
typedef struct xload {
    vlmn_xsample x;
    vlmn_trace_sample *ts;
    float *acts;
    const char **tok;
    float *tacts, *vacts;
    uint8_t *png;
} xload;

vlmn_status xload_get(vlmn_traces *tr, int layer, int neuron, uint32_t sample, float neuron_max, bool want_png,
                      const vlmn_draw_opts *dopt, xload *l);
void xload_free(xload *l);
/* Opens the run, its explanation tables, the trace store (tr non-NULL) and the client
 * (c non-NULL; RUN/llm-cache.sqlite unless o->no_cache, path built in cache_buf). */
vlmn_status xrun_open(const vlmn_xrun_opts *o, vlmn_run **run, sqlite3 **db, vlmn_traces **tr, vlmn_llm **c,
                      char *cache_buf, size_t cache_n);
/* Runs items[0..n) through the client, then clears them and frees their bodies. */
vlmn_status xrun_send(vlmn_llm *cl, vlmn_llm_item *items, size_t n, vlmn_llm_done_fn done, void *ctx);

#endif
