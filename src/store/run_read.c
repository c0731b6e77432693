/* Reading a finished run (vlmn/run.h): the arrays are mmap'ed read-only, the
 * database is opened read-write so analysis can add its tables. */
#include "vlmn/run.h"
#include "vlmn/record.h"
#include "store/store.h"
#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct vlmn_run {
    char *dir;
    sqlite3 *db;
    int n_layers, n_ff, top_n;
    int64_t n_samples;
    void *stats_map, *top_map;
    size_t stats_len, top_len;
    const vlmn_neuron_stats *stats;
    const vlmn_top_entry *top;
    uint32_t *top_count; /* [n_layers * n_ff] */
};

static vlmn_status map_array(const char *dir, const char *name, const char magic[8], uint32_t rb, void **map,
                             size_t *len, int *L, int *F, int *N)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            return vlmn_error(VLMN_E_NOTFOUND, "%s: missing (not a finished run? a run in progress keeps its state in %s/ckpt)",
                              path, dir);
        return vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
    }
    struct stat sb;
    vlmn_status st = VLMN_OK;
    uint64_t n;
    if (fstat(fd, &sb) || sb.st_size < VLMN_STORE_HEADER) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: too short for a header", path);
        goto done;
    }
    *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (*map == MAP_FAILED) {
        *map = NULL;
        st = vlmn_error(VLMN_E_IO, "%s: mmap: %s", path, strerror(errno));
        goto done;
    }
    *len = (size_t)sb.st_size;
    st = vlmn_store_check_header(path, *map, (uint64_t)sb.st_size, magic, rb, L, F, N, &n);
done:
    close(fd);
    return st;
}

vlmn_status vlmn_run_open(const char *dir, vlmn_run **out)
{
    *out = NULL;
    vlmn_run *r = vlmn_calloc(1, sizeof *r);
    if (!r) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
    vlmn_status st;
    char path[4096];
    int L2, F2, N2;
    r->dir = vlmn_strdup(dir);
    if (!r->dir) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/run.sqlite", dir);
    if (access(path, F_OK)) {
        st = vlmn_error(VLMN_E_NOTFOUND, "%s: not a run directory (no run.sqlite)", dir);
        goto fail;
    }
    if ((st = vlmn_db_open(path, false, &r->db))) goto fail;
    char status[64];
    if (vlmn_db_get_meta(r->db, "status", status, sizeof status) || strcmp(status, "complete")) {
        st = vlmn_error(VLMN_E_ARG, "%s: run is not complete (status '%s'); finish it with vlmn record --resume", dir,
                        status);
        goto fail;
    }
    if ((st = map_array(dir, "stats.bin", "VLMNSTAT", sizeof(vlmn_neuron_stats), &r->stats_map, &r->stats_len,
                        &r->n_layers, &r->n_ff, &r->top_n)))
        goto fail;
    if ((st = map_array(dir, "top.bin", "VLMNTOPN", sizeof(vlmn_top_entry), &r->top_map, &r->top_len, &L2, &F2, &N2)))
        goto fail;
    if (L2 != r->n_layers || F2 != r->n_ff || N2 != r->top_n) {
        st = vlmn_error(VLMN_E_MISMATCH, "%s: stats.bin and top.bin shapes differ", dir);
        goto fail;
    }
    r->stats = (const vlmn_neuron_stats *)((const uint8_t *)r->stats_map + VLMN_STORE_HEADER);
    r->top = (const vlmn_top_entry *)((const uint8_t *)r->top_map + VLMN_STORE_HEADER);
    int64_t nn = (int64_t)r->n_layers * r->n_ff;
    r->top_count = vlmn_malloc((size_t)nn * sizeof *r->top_count);
    if (!r->top_count) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", dir);
        goto fail;
    }
    for (int64_t k = 0; k < nn; k++) {
        uint32_t c = 0;
        const vlmn_top_entry *e = r->top + k * r->top_n;
        while (c < (uint32_t)r->top_n && e[c].sample != VLMN_REC_EMPTY) c++;
        r->top_count[k] = c;
    }
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db, "SELECT count(*) FROM samples", -1, &s, NULL) != SQLITE_OK) {
        st = vlmn_error(VLMN_E_DB, "%s: %s", path, sqlite3_errmsg(r->db));
        goto fail;
    }
    if (sqlite3_step(s) == SQLITE_ROW) r->n_samples = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    *out = r;
    return VLMN_OK;
fail:
    vlmn_run_close(r);
    return st;
}

void vlmn_run_close(vlmn_run *r)
{
    if (!r) return;
    if (r->stats_map) munmap(r->stats_map, r->stats_len);
    if (r->top_map) munmap(r->top_map, r->top_len);
    if (r->db) sqlite3_close(r->db);
    vlmn_free(r->top_count);
    vlmn_free(r->dir);
    vlmn_free(r);
}

int vlmn_run_n_layers(const vlmn_run *r) { return r->n_layers; }
int vlmn_run_n_ff(const vlmn_run *r) { return r->n_ff; }
int vlmn_run_top_n(const vlmn_run *r) { return r->top_n; }
int64_t vlmn_run_n_samples(const vlmn_run *r) { return r->n_samples; }
void *vlmn_run_db(vlmn_run *r) { return r->db; }
const char *vlmn_run_dir(const vlmn_run *r) { return r->dir; }

const vlmn_neuron_stats *vlmn_run_stats(const vlmn_run *r, int layer, int neuron)
{
    if (layer < 0 || layer >= r->n_layers || neuron < 0 || neuron >= r->n_ff) return NULL;
    return &r->stats[(int64_t)layer * r->n_ff + neuron];
}

const vlmn_top_entry *vlmn_run_top(const vlmn_run *r, int layer, int neuron, int *n_out)
{
    *n_out = 0;
    if (layer < 0 || layer >= r->n_layers || neuron < 0 || neuron >= r->n_ff) return NULL;
    int64_t k = (int64_t)layer * r->n_ff + neuron;
    *n_out = (int)r->top_count[k];
    return r->top + k * r->top_n;
}
