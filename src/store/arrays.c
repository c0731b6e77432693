/* Binary arrays of a run directory: stats.bin (vlmn_neuron_stats per neuron),
 * sums.bin (exact 128-bit sums), top.bin (vlmn_top_entry x top_n per neuron). Each
 * starts with a 64-byte little-endian header; docs/run-format.md has the layout. */
#include "store/store.h"
#include "core/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the run store writes its arrays in host order and assumes a little-endian host"
#endif

_Static_assert(sizeof(vlmn_neuron_stats) == 152, "stats record layout");
_Static_assert(sizeof(vlmn_top_entry) == 72, "top record layout");
_Static_assert(sizeof(vlmn_rec_fixsum) == 16, "sum record layout");

static const char MAGIC_STATS[8] = {'V', 'L', 'M', 'N', 'S', 'T', 'A', 'T'};
static const char MAGIC_SUMS[8] = {'V', 'L', 'M', 'N', 'S', 'U', 'M', 'S'};
static const char MAGIC_TOP[8] = {'V', 'L', 'M', 'N', 'T', 'O', 'P', 'N'};

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void make_header(uint8_t h[VLMN_STORE_HEADER], const char magic[8], const vlmn_rec_params *p,
                        uint32_t record_bytes, uint32_t k, uint64_t n_records)
{
    memset(h, 0, VLMN_STORE_HEADER);
    memcpy(h, magic, 8);
    put32(h + 8, VLMN_STORE_VERSION);
    put32(h + 12, (uint32_t)p->n_layers);
    put32(h + 16, (uint32_t)p->n_ff);
    put32(h + 20, (uint32_t)p->top_n);
    put32(h + 24, record_bytes);
    put32(h + 28, k);
    put64(h + 32, n_records);
}

vlmn_status vlmn_store_check_header(const char *path, const uint8_t *h, uint64_t file_size, const char magic[8],
                                    uint32_t record_bytes, int *n_layers, int *n_ff, int *top_n,
                                    uint64_t *n_records)
{
    if (file_size < VLMN_STORE_HEADER || memcmp(h, magic, 8))
        return vlmn_error(VLMN_E_FORMAT, "%s: not a vlmn array file (bad magic)", path);
    if (get32(h + 8) != VLMN_STORE_VERSION)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: format version %u (this vlmn reads %d)", path, get32(h + 8),
                          VLMN_STORE_VERSION);
    uint32_t L = get32(h + 12), F = get32(h + 16), N = get32(h + 20);
    if (L == 0 || L > 100000 || F == 0 || F > 10000000 || N == 0 || N > VLMN_REC_MAX_TOP_N)
        return vlmn_error(VLMN_E_FORMAT, "%s: bad shape %u layers x %u neurons, top-%u", path, L, F, N);
    if (get32(h + 24) != record_bytes)
        return vlmn_error(VLMN_E_FORMAT, "%s: record size %u, expected %u", path, get32(h + 24), record_bytes);
    uint64_t n = get64(h + 32), want = (uint64_t)L * F, bytes;
    if (record_bytes == sizeof(vlmn_top_entry)) want *= N;
    if (n != want) return vlmn_error(VLMN_E_FORMAT, "%s: %llu records, expected %llu", path, (unsigned long long)n,
                                     (unsigned long long)want);
    if (!vlmn_mul_ok(n, record_bytes, &bytes) || bytes + VLMN_STORE_HEADER != file_size)
        return vlmn_error(VLMN_E_FORMAT, "%s: file size %llu does not match %llu records of %u bytes", path,
                          (unsigned long long)file_size, (unsigned long long)n, record_bytes);
    *n_layers = (int)L;
    *n_ff = (int)F;
    *top_n = (int)N;
    *n_records = n;
    return VLMN_OK;
}

vlmn_status vlmn_store_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return vlmn_error(VLMN_E_IO, "%s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc) return vlmn_error(VLMN_E_IO, "%s: fsync: %s", dir, strerror(errno));
    return VLMN_OK;
}

vlmn_status vlmn_store_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? VLMN_OK : vlmn_error(VLMN_E_IO, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path)) {
            closedir(d);
            return vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
        }
    }
    closedir(d);
    if (rmdir(dir)) return vlmn_error(VLMN_E_IO, "%s: %s", dir, strerror(errno));
    return VLMN_OK;
}

/* Write header + n*rb bytes to dir/name (via name.tmp when atomic). */
static vlmn_status write_array(const char *dir, const char *name, const uint8_t *h, const void *data,
                               uint64_t bytes, bool atomic)
{
    char path[4096], tmp[4096 + 8];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const char *target = atomic ? tmp : path;
    FILE *f = fopen(target, "wb");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", target, strerror(errno));
    bool ok = fwrite(h, 1, VLMN_STORE_HEADER, f) == VLMN_STORE_HEADER;
    const uint8_t *p = data;
    for (uint64_t off = 0; ok && off < bytes;) {
        size_t k = bytes - off > (64u << 20) ? (64u << 20) : (size_t)(bytes - off);
        ok = fwrite(p + off, 1, k, f) == k;
        off += k;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f)) ok = false;
    if (!ok) {
        unlink(target);
        return vlmn_error(VLMN_E_IO, "%s: write failed: %s", target, strerror(err));
    }
    if (atomic && rename(tmp, path)) {
        unlink(tmp);
        return vlmn_error(VLMN_E_IO, "%s: rename: %s", path, strerror(errno));
    }
    return VLMN_OK;
}

vlmn_status vlmn_store_write_arrays(const char *dir, vlmn_rec *rec, bool atomic)
{
    const vlmn_rec_params *p = vlmn_rec_get_params(rec);
    uint64_t nn = (uint64_t)p->n_layers * (uint64_t)p->n_ff, nt = nn * (uint64_t)p->top_n;
    uint8_t h[VLMN_STORE_HEADER];
    vlmn_status st;
    vlmn_rec_sync(rec);
    make_header(h, MAGIC_STATS, p, sizeof(vlmn_neuron_stats), VLMN_HIST_BINS, nn);
    if ((st = write_array(dir, "stats.bin", h, vlmn_rec_stats(rec), nn * sizeof(vlmn_neuron_stats), atomic))) return st;
    make_header(h, MAGIC_SUMS, p, sizeof(vlmn_rec_fixsum), VLMN_REC_SUM_FRAC_BITS, nn);
    if ((st = write_array(dir, "sums.bin", h, vlmn_rec_fixsums(rec), nn * sizeof(vlmn_rec_fixsum), atomic))) return st;
    make_header(h, MAGIC_TOP, p, sizeof(vlmn_top_entry), VLMN_TOP_TOKENS, nt);
    if ((st = write_array(dir, "top.bin", h, vlmn_rec_top(rec), nt * sizeof(vlmn_top_entry), atomic))) return st;
    return vlmn_store_fsync_dir(dir);
}

static vlmn_status read_array(const char *dir, const char *name, const char magic[8], uint32_t rb, void *dst,
                              const vlmn_rec_params *want, int *L, int *F, int *N)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return vlmn_error(errno == ENOENT ? VLMN_E_NOTFOUND : VLMN_E_IO, "%s: %s", path, strerror(errno));
    vlmn_status st = VLMN_OK;
    struct stat sb;
    uint8_t h[VLMN_STORE_HEADER];
    uint64_t n;
    if (fstat(fileno(f), &sb) || fread(h, 1, sizeof h, f) != sizeof h) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: too short for a header", path);
        goto done;
    }
    if ((st = vlmn_store_check_header(path, h, (uint64_t)sb.st_size, magic, rb, L, F, N, &n))) goto done;
    if (!dst) goto done;
    if (*L != want->n_layers || *F != want->n_ff || *N != want->top_n) {
        st = vlmn_error(VLMN_E_MISMATCH, "%s: shape %d x %d top-%d, expected %d x %d top-%d", path, *L, *F, *N,
                        want->n_layers, want->n_ff, want->top_n);
        goto done;
    }
    if (fread(dst, rb, n, f) != n) st = vlmn_error(VLMN_E_IO, "%s: short read", path);
done:
    fclose(f);
    return st;
}

vlmn_status vlmn_store_read_shape(const char *dir, int *n_layers, int *n_ff, int *top_n)
{
    return read_array(dir, "stats.bin", MAGIC_STATS, sizeof(vlmn_neuron_stats), NULL, NULL, n_layers, n_ff, top_n);
}

vlmn_status vlmn_store_read_arrays(const char *dir, vlmn_rec *rec)
{
    const vlmn_rec_params *p = vlmn_rec_get_params(rec);
    int L, F, N;
    vlmn_status st;
    if ((st = read_array(dir, "stats.bin", MAGIC_STATS, sizeof(vlmn_neuron_stats), vlmn_rec_stats(rec), p, &L, &F, &N)))
        return st;
    if ((st = read_array(dir, "sums.bin", MAGIC_SUMS, sizeof(vlmn_rec_fixsum), vlmn_rec_fixsums(rec), p, &L, &F, &N)))
        return st;
    if ((st = read_array(dir, "top.bin", MAGIC_TOP, sizeof(vlmn_top_entry), vlmn_rec_top(rec), p, &L, &F, &N)))
        return st;
    vlmn_rec_sync(rec);
    return VLMN_OK;
}
