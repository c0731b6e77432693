/* Run store, writer side: the binary arrays (stats.bin, sums.bin, top.bin) and the
 * SQLite database (run.sqlite) of a run directory. Layout: docs/run-format.md.
 * Flow: recorder -> [store] -> analysis (which reads through vlmn/run.h). */
#ifndef VLMN_STORE_STORE_H
#define VLMN_STORE_STORE_H

#include "vlmn/record.h"
#include <sqlite3.h>

#define VLMN_STORE_VERSION 1
#define VLMN_STORE_HEADER 64

/* One row of the samples table. */
typedef struct vlmn_store_sample {
    int64_t index;          /* dataset index */
    const char *id;
    const char *image;      /* may be NULL */
    bool ok;
    const char *error;      /* NULL when ok */
    int64_t n_image_tokens, n_text_tokens;
} vlmn_store_sample;

/* Write stats.bin, sums.bin, top.bin into dir. durable: each file is written as
 * NAME.tmp, fsynced, renamed over NAME, and the directory fsynced. */
vlmn_status vlmn_store_write_arrays(const char *dir, vlmn_rec *rec, bool atomic);
/* Read the shape from dir/stats.bin. */
vlmn_status vlmn_store_read_shape(const char *dir, int *n_layers, int *n_ff, int *top_n);
/* Load the three arrays of dir into rec (same shape). */
vlmn_status vlmn_store_read_arrays(const char *dir, vlmn_rec *rec);
/* Validate a header of an array file; returns the record count. */
vlmn_status vlmn_store_check_header(const char *path, const uint8_t *h, uint64_t file_size, const char magic[8],
                                    uint32_t record_bytes, int *n_layers, int *n_ff, int *top_n,
                                    uint64_t *n_records);

/* fsync a directory (after renames inside it). */
vlmn_status vlmn_store_fsync_dir(const char *dir);
/* rm -r of a directory that only holds plain files (checkpoint dirs). */
vlmn_status vlmn_store_remove_dir(const char *dir);

/* ---- SQLite ---- */
vlmn_status vlmn_db_open(const char *path, bool create, sqlite3 **out);
void vlmn_db_close(sqlite3 *db);
vlmn_status vlmn_db_exec(sqlite3 *db, const char *sql);
/* Whether the main database has a table (or view) of that name. */
bool vlmn_db_has_table(sqlite3 *db, const char *name);
/* Whether its table has that column (for tables that gained columns later). */
bool vlmn_db_has_column(sqlite3 *db, const char *table, const char *column);
/* Column i of the current row: text ("" for NULL), number (NaN for NULL). */
const char *vlmn_db_col_text(sqlite3_stmt *s, int i);
double vlmn_db_col_num(sqlite3_stmt *s, int i);
/* VLMN_E_DB "FILE: what: sqlite's message" for the last error on db. */
vlmn_status vlmn_db_err(sqlite3 *db, const char *what);
vlmn_status vlmn_db_set_meta(sqlite3 *db, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Value of a run key into buf ("" and VLMN_E_NOTFOUND if absent). */
vlmn_status vlmn_db_get_meta(sqlite3 *db, const char *key, char *buf, size_t n);
/* Adds each comma-separated item of `items` that is not yet in the key's comma-separated
 * list (created if missing), keeping the order of first appearance. */
vlmn_status vlmn_db_meta_add_items(sqlite3 *db, const char *key, const char *items);
vlmn_status vlmn_db_put_sample(sqlite3 *db, const vlmn_store_sample *s);
/* Replace the neurons table from the recorder state (one transaction). */
vlmn_status vlmn_db_write_neurons(sqlite3 *db, vlmn_rec *rec);
/* Replace the top table (layer, neuron, rank, sample_index, max_act) from the
 * recorder's lists (one transaction; the top-8 values stay in top.bin). */
vlmn_status vlmn_db_write_top(sqlite3 *db, vlmn_rec *rec);

#endif
