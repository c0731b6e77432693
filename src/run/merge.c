/* `vlmn merge`: fold complete shard runs (shards 0..N-1 of the same options) into
 * the run one uninterrupted pass would give: arrays via vlmn_rec_merge (exact), the
 * samples rows copied, summary counters added, run keys copied with shard = 0/1. */
#include "run/record_run.h"
#include "store/store.h"
#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* keys recomputed by the merge (everything else must agree between shards) */
static bool merge_owned_key(const char *k)
{
    static const char *const own[] = {"shard", "start_time", "end_time", "resume_times", "n_samples", "n_ok",
                                      "n_failed", "n_image_tokens", "n_text_tokens", "status", "merge_sources",
                                      "isa"};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(own); i++)
        if (!strcmp(k, own[i])) return true;
    return false;
}

static int64_t meta_i64(sqlite3 *db, const char *k)
{
    char b[64];
    if (vlmn_db_get_meta(db, k, b, sizeof b)) return 0;
    return strtoll(b, NULL, 10);
}

vlmn_status vlmn_record_merge(const char *const *in, int n_in, const char *out, bool quiet)
{
    vlmn_status st = VLMN_OK;
    sqlite3 **dbs = NULL, *odb = NULL;
    vlmn_rec *acc = NULL, *tmp = NULL;
    char path[4096], buf[512];
    bool *seen = NULL;
    if (n_in < 1) return vlmn_error(VLMN_E_ARG, "merge: no input runs");
    dbs = vlmn_calloc((size_t)n_in, sizeof *dbs);
    if (!dbs) return vlmn_error(VLMN_E_NOMEM, "merge: out of memory");
    int N = 0;
    for (int i = 0; i < n_in; i++) {
        snprintf(path, sizeof path, "%s/run.sqlite", in[i]);
        if (access(path, F_OK)) {
            st = vlmn_error(VLMN_E_NOTFOUND, "%s: not a run directory (no run.sqlite)", in[i]);
            goto done;
        }
        if ((st = vlmn_db_open(path, false, &dbs[i]))) goto done;
        vlmn_db_get_meta(dbs[i], "status", buf, sizeof buf);
        if (strcmp(buf, "complete")) {
            st = vlmn_error(VLMN_E_ARG, "%s: run is not complete (status '%s'); finish it with vlmn record --resume", in[i], buf);
            goto done;
        }
        int si, sn;
        vlmn_db_get_meta(dbs[i], "shard", buf, sizeof buf);
        if (sscanf(buf, "%d/%d", &si, &sn) != 2 || sn < 1 || si < 0 || si >= sn) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: bad shard '%s'", in[i], buf);
            goto done;
        }
        if (i == 0) {
            N = sn;
            seen = vlmn_calloc((size_t)N, 1);
            if (!seen) {
                st = vlmn_error(VLMN_E_NOMEM, "merge: out of memory");
                goto done;
            }
        }
        if (sn != N) {
            st = vlmn_error(VLMN_E_MISMATCH, "%s: shard %d/%d, but %s is a shard of %d", in[i], si, sn, in[0], N);
            goto done;
        }
        if (seen[si]) {
            st = vlmn_error(VLMN_E_ARG, "%s: shard %d/%d given twice", in[i], si, sn);
            goto done;
        }
        seen[si] = 1;
        /* every other key must agree with the first run */
        if (i > 0) {
            sqlite3_stmt *s;
            sqlite3_prepare_v2(dbs[0], "SELECT key, value FROM run ORDER BY key", -1, &s, NULL);
            while (sqlite3_step(s) == SQLITE_ROW) {
                const char *k = (const char *)sqlite3_column_text(s, 0), *v = (const char *)sqlite3_column_text(s, 1);
                if (merge_owned_key(k)) continue;
                char other[8192];
                vlmn_db_get_meta(dbs[i], k, other, sizeof other);
                if (strcmp(v, other)) {
                    st = vlmn_error(VLMN_E_MISMATCH, "%s: run key '%s' is '%s', but '%s' in %s", in[i], k, other, v, in[0]);
                    sqlite3_finalize(s);
                    goto done;
                }
            }
            sqlite3_finalize(s);
        }
    }
    for (int i = 0; i < N; i++)
        if (!seen[i]) {
            st = vlmn_error(VLMN_E_ARG, "merge: shard %d/%d is missing (a merge needs all N shards)", i, N);
            goto done;
        }
    if (n_in != N) {
        st = vlmn_error(VLMN_E_ARG, "merge: %d runs given for %d shards", n_in, N);
        goto done;
    }

    /* arrays */
    int L, F, TN;
    if ((st = vlmn_store_read_shape(in[0], &L, &F, &TN))) goto done;
    vlmn_rec_params rp = {L, F, TN, 0};
    if ((st = vlmn_rec_create(&rp, &acc)) || (st = vlmn_rec_create(&rp, &tmp))) goto done;
    if ((st = vlmn_store_read_arrays(in[0], acc))) goto done;
    for (int i = 1; i < n_in; i++) {
        if ((st = vlmn_store_read_arrays(in[i], tmp)) || (st = vlmn_rec_merge(acc, tmp))) goto done;
    }

    /* output run */
    if (mkdir(out, 0755) && errno != EEXIST) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", out, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof path, "%s/run.sqlite", out);
    if (access(path, F_OK) == 0) {
        st = vlmn_error(VLMN_E_ARG, "%s: already holds a run", out);
        goto done;
    }
    if ((st = vlmn_db_open(path, true, &odb))) goto done;
    if ((st = vlmn_db_exec(odb, "BEGIN"))) goto done;
    {
        sqlite3_stmt *s;
        sqlite3_prepare_v2(dbs[0], "SELECT key, value FROM run", -1, &s, NULL);
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *k = (const char *)sqlite3_column_text(s, 0);
            if (merge_owned_key(k)) continue;
            if ((st = vlmn_db_set_meta(odb, k, "%s", (const char *)sqlite3_column_text(s, 1)))) {
                sqlite3_finalize(s);
                goto done;
            }
        }
        sqlite3_finalize(s);
    }
    if ((st = vlmn_db_set_meta(odb, "status", "merging")) || (st = vlmn_db_exec(odb, "COMMIT"))) goto done;
    int64_t tot[5] = {0};
    static const char *const cnt_keys[5] = {"n_samples", "n_ok", "n_failed", "n_image_tokens", "n_text_tokens"};
    char sources[4096] = "", tbuf[64];
    for (int i = 0; i < n_in; i++) {
        for (int k = 0; k < 5; k++) tot[k] += meta_i64(dbs[i], cnt_keys[k]);
        size_t len = strlen(sources);
        snprintf(sources + len, sizeof sources - len, "%s%s", i ? " " : "", in[i]);
        /* ATTACH is not allowed inside a transaction: one autocommit step per shard */
        char *sql = sqlite3_mprintf("ATTACH DATABASE %Q AS src; INSERT INTO samples SELECT * FROM src.samples; "
                                    "DETACH DATABASE src;",
                                    sqlite3_db_filename(dbs[i], "main"));
        if (!sql) {
            st = vlmn_error(VLMN_E_NOMEM, "merge: out of memory");
            goto done;
        }
        st = vlmn_db_exec(odb, sql);
        sqlite3_free(sql);
        if (st) goto done;
    }
    for (int k = 0; k < 5; k++)
        if ((st = vlmn_db_set_meta(odb, cnt_keys[k], "%" PRId64, tot[k]))) goto done;
    /* every ISA level that recorded samples of any shard */
    for (int i = 0; i < n_in; i++) {
        char isa[1024];
        vlmn_db_get_meta(dbs[i], "isa", isa, sizeof isa);
        if ((st = vlmn_db_meta_add_items(odb, "isa", isa))) goto done;
    }
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if ((st = vlmn_db_set_meta(odb, "shard", "0/1")) || (st = vlmn_db_set_meta(odb, "merge_sources", "%s", sources)) ||
        (st = vlmn_db_set_meta(odb, "start_time", "%s", tbuf)) || (st = vlmn_db_set_meta(odb, "end_time", "%s", tbuf)))
        goto done;
    if ((st = vlmn_store_write_arrays(out, acc, true))) goto done;
    if ((st = vlmn_db_write_neurons(odb, acc)) || (st = vlmn_db_write_top(odb, acc))) goto done;
    if ((st = vlmn_db_set_meta(odb, "status", "complete"))) goto done;
    if (!quiet)
        fprintf(stderr, "vlmn merge: %d shards -> %s (%" PRId64 " samples, %" PRId64 " failed)\n", n_in, out, tot[0],
                tot[2]);
done:
    if (dbs)
        for (int i = 0; i < n_in; i++) sqlite3_close(dbs[i]);
    vlmn_free(dbs);
    vlmn_free(seen);
    if (odb) vlmn_db_close(odb);
    vlmn_rec_free(acc);
    vlmn_rec_free(tmp);
    return st;
}
