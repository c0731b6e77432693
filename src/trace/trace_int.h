/* Writer side of the trace store (src/trace/trace_store.c), for the tracing loop. */
#ifndef VLMN_TRACE_INT_H
#define VLMN_TRACE_INT_H

#include "vlmn/trace.h"
#include <sqlite3.h>

/* One stored (neuron, sample) row of a commit. */
typedef struct vlmn_trace_row {
    int32_t layer, neuron;
    float max_act;   /* over the sample's visual and text positions (-inf: none) */
} vlmn_trace_row;

/* Open (creating if needed) RUN/traces.sqlite + RUN/traces.f32 for writing; bytes of
 * traces.f32 past the committed end are cut. */
vlmn_status vlmn_traces_open_write(const char *run_dir, vlmn_traces **out);
sqlite3 *vlmn_traces_db(vlmn_traces *t);
/* Append n_rows x s->n_tokens floats (data, row r = rows[r]) and commit: fsync of the
 * array, then one transaction with the sample's rows (when new_sample), the index rows
 * and the new committed end. */
vlmn_status vlmn_traces_commit(vlmn_traces *t, const vlmn_trace_sample *s, bool new_sample, const vlmn_trace_row *rows,
                               int64_t n_rows, const float *data);
vlmn_status vlmn_traces_set_meta(vlmn_traces *t, const char *key, const char *value);
vlmn_status vlmn_traces_get_meta(vlmn_traces *t, const char *key, char *buf, size_t n);

#endif
