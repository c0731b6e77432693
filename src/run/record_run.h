/* A recording run end to end: dataset -> backend (model forward with the capture
 * hook) -> recorder -> run store, with checkpoints, resume, sharding, merge.
 * Used by `vlmn record` and `vlmn merge` (src/cli). Layout: docs/run-format.md. */
#ifndef VLMN_RUN_RECORD_RUN_H
#define VLMN_RUN_RECORD_RUN_H

#include "vlmn/dataset.h"
#include "vlmn/record.h"
#include <signal.h>
#include <sqlite3.h>

/* What produces activations. run() handles one sample: it either calls
 * vlmn_rec_begin_sample and feeds every layer through vlmn_rec_capture (success), or
 * leaves the recorder alone and writes why the sample failed into why[] (missing or
 * corrupt image, prompt too long...), returning VLMN_OK in both cases. Any other
 * status is fatal for the run. */
typedef struct vlmn_rec_backend {
    void *user;
    int n_layers, n_ff;
    char name[128];  /* the run table's "backend" value: what produced the activations */
    vlmn_status (*run)(void *user, const vlmn_sample *s, vlmn_rec *rec, bool prompt_as_text, char *why,
                       size_t why_n, int64_t *n_positions);
    /* provenance keys (model paths, sizes, SHA-256) into the run table */
    vlmn_status (*provenance)(void *user, sqlite3 *db);
    void (*free)(void *user);
} vlmn_rec_backend;

typedef struct vlmn_record_opts {
    const char *data;          /* dataset file */
    const char *images;        /* folder the samples' "image" paths are relative to */
    const char *out;           /* run directory */
    const char *model, *mmproj;
    const char *synthetic;     /* "LxF[:seed]": synthetic backend (tests, benchmarks) */
    int top_n;                 /* default 50 */
    const char *hook;          /* silu_gate | swiglu */
    const char *template_name; /* llava-v1 | plain */
    bool text_all;             /* --text-tokens all: prompt positions count as text */
    const char *mode;          /* pad | crop */
    const char *precision;     /* fast | exact | fastest (vlmn_precision_name) */
    int64_t limit;             /* only dataset indices < limit (<= 0: all) */
    int shard_i, shard_n;      /* this run takes indices with index % shard_n == shard_i */
    int threads;
    bool resume, strict;
    int64_t checkpoint_every;  /* samples between checkpoints (default 100) */
    int64_t log_every;         /* samples between log lines when stderr is not a TTY */
    int progress;              /* -1 never, 0 auto (TTY line / log lines), 1 log lines */
    volatile sig_atomic_t *stop; /* set by a signal handler: stop at a sample boundary */
    bool quiet;
} vlmn_record_opts;

typedef struct vlmn_record_summary {
    int64_t n_done, n_ok, n_failed, n_tokens_image, n_tokens_text;
    bool already_complete;
    bool interrupted;
    int64_t next_index;
} vlmn_record_summary;

void vlmn_record_opts_default(vlmn_record_opts *o);
vlmn_status vlmn_record_run(const vlmn_record_opts *o, vlmn_rec_backend *be, vlmn_record_summary *sum);

/* Merge complete shard runs (same options, shards 0..N-1 of one N) into out. */
vlmn_status vlmn_record_merge(const char *const *in, int n_in, const char *out, bool quiet);

/* Backends. */
vlmn_status vlmn_backend_synth_create(const char *spec, const char *images, vlmn_rec_backend *be);
vlmn_status vlmn_backend_llava_create(const vlmn_record_opts *o, vlmn_rec_backend *be);

#endif
