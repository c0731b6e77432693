/* The neuron browser (`vlmn browse`): pages and a JSON API over one run, served by
 * libmicrohttpd on 127.0.0.1 or written as static files. Read-only on the run: the run
 * database is opened read-only and the neuron table is copied into an in-memory
 * database with indexes (and FTS5 over explanation text) at start. Flow: run store,
 * analysis, trace store, draw, explanations -> [browse]. Pages, API, security model:
 * docs/browse.md. */
#ifndef VLMN_BROWSE_H
#define VLMN_BROWSE_H

#include <signal.h>

#include "vlmn/vlmn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VLMN_BROWSE_MAX_URI 4096     /* longer request targets: 414 */
#define VLMN_BROWSE_MAX_Q 256        /* explanation search text, bytes */
#define VLMN_BROWSE_MAX_PER 500      /* rows per table page */

typedef enum vlmn_browse_page {
    VLMN_BP_OVERVIEW = 0,  /* /                    /api/run        */
    VLMN_BP_NEURONS,       /* /neurons?...         /api/neurons?...*/
    VLMN_BP_NEURON,        /* /neuron/L/N          /api/neuron/L/N */
    VLMN_BP_SAMPLE,        /* /sample/S            /api/sample/S   */
    VLMN_BP_IMAGE,         /* /img/S               (the sample's image file) */
    VLMN_BP_MODULATED      /* /mod/L/N/S.png       (activation-modulated image, traced pairs) */
} vlmn_browse_page;

typedef enum vlmn_browse_sort {
    VLMN_BS_NEURON = 0, VLMN_BS_MAX_ACT, VLMN_BS_PV, VLMN_BS_PT, VLMN_BS_PM, VLMN_BS_PU, VLMN_BS_SCORE
} vlmn_browse_sort;

/* A parsed request target. Numbers are syntactically valid and non-negative; whether
 * they name an existing neuron or sample is checked against the run (404). */
typedef struct vlmn_browse_req {
    vlmn_browse_page page;
    bool api;
    int64_t layer, neuron, sample;     /* path ids */
    /* table filters (-1 / NAN when absent) */
    int64_t f_layer;
    int f_label;                       /* vlmn_ntype or -1 */
    double p_min[4];                   /* p_v, p_t, p_m, p_u lower bounds, NAN = none */
    double act_min, score_min;
    char q[VLMN_BROWSE_MAX_Q + 1];     /* explanation text search (FTS5 words), "" = none */
    vlmn_browse_sort sort;
    bool asc;
    int64_t page_no;                   /* 1-based */
    int per;
} vlmn_browse_req;

/* Parse a raw request target ("/neurons?label=visual&page=2", not yet percent-
 * decoded). Returns the HTTP status: 200 when *out is valid, else 400 (bad syntax,
 * unknown or repeated parameter, bad number, traversal attempt), 404 (no such route)
 * or 414 (too long), with a one-line reason in err. Never reads outside `uri`. */
int vlmn_browse_parse(const char *uri, size_t len, vlmn_browse_req *out, char *err, size_t err_n);

/* ---- serving a run ---- */
typedef struct vlmn_browse vlmn_browse;

vlmn_status vlmn_browse_open(const char *run_dir, vlmn_browse **out);
void vlmn_browse_close(vlmn_browse *b);

/* Where the neuron table's index comes from. `vlmn_browse_write_index` (`vlmn browse RUN
 * --index`) writes RUN/browse-index.sqlite (VLMN_BROWSE_INDEX_FILE): the per-neuron
 * table, its indexes and the FTS5 table over explanations, with a fingerprint of what it
 * was built from (run state, classification time, count and newest time of explanations
 * and scores). vlmn_browse_open attaches it read-only when the fingerprint matches, else
 * builds the same index in memory (seconds for a 7B run). path gets the file written. */
#define VLMN_BROWSE_INDEX_FILE "browse-index.sqlite"
typedef enum vlmn_browse_index_src {
    VLMN_BROWSE_INDEX_MEMORY = 0,  /* built in memory, no index file */
    VLMN_BROWSE_INDEX_FROM_FILE,   /* RUN/browse-index.sqlite, read-only */
    VLMN_BROWSE_INDEX_STALE        /* the file exists but no longer matches: built in memory */
} vlmn_browse_index_src;
vlmn_status vlmn_browse_write_index(const char *run_dir, char *path, size_t path_n);
vlmn_browse_index_src vlmn_browse_index_source(const vlmn_browse *b);
int64_t vlmn_browse_n_neurons(const vlmn_browse *b);

/* One response. body vlmn_malloc'd (vlmn_free). */
typedef struct vlmn_browse_resp {
    int status;              /* HTTP status */
    const char *type;        /* Content-Type */
    char *body;
    size_t len;
} vlmn_browse_resp;

/* Answer a raw request target (never fails: errors become 4xx/5xx responses). */
void vlmn_browse_handle(vlmn_browse *b, const char *uri, size_t len, vlmn_browse_resp *r);

/* Serve on host:port (port 0: ephemeral) until *stop is set; prints the URL on stdout
 * once listening. */
vlmn_status vlmn_browse_serve(vlmn_browse *b, const char *host, int port, volatile sig_atomic_t *stop);

/* Write the whole site as static files under dir (works from file://). */
vlmn_status vlmn_browse_export(vlmn_browse *b, const char *dir, bool quiet);

#ifdef __cplusplus
}
#endif
#endif
