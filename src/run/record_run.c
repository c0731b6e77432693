/* The recording loop: owns the run directory while it runs. Samples rows go into
 * run.sqlite inside a transaction committed at each checkpoint; the recorder state is
 * checkpointed into RUN/ckpt (built in RUN/ckpt.tmp, fsynced, renamed whole). Resume
 * = load RUN/ckpt, delete sample rows past it, skip the dataset to it, go on. */
#include "run/record_run.h"
#include "store/store.h"
#include "store/sha256.h"
#include "vlmn/kernels.h"
#include "core/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATHMAX 4096

void vlmn_record_opts_default(vlmn_record_opts *o)
{
    memset(o, 0, sizeof *o);
    o->top_n = 50;
    o->hook = "silu_gate";
    o->template_name = "llava-v1";
    o->mode = "pad";
    o->precision = "fast";
    o->shard_n = 1;
    o->checkpoint_every = 100;
    o->log_every = 100;
}

typedef struct progress_state {
    int64_t next_index;
    int64_t n_ok, n_failed, n_img, n_txt;
} progress_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void utc_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- checkpoint ---- */
static vlmn_status write_state_file(const char *dir, const progress_state *ps)
{
    char path[PATHMAX];
    if (snprintf(path, sizeof path, "%s/progress.txt", dir) >= (int)sizeof path)
        return vlmn_error(VLMN_E_RANGE, "%s: path too long", dir);
    FILE *f = fopen(path, "w");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
    fprintf(f, "vlmn-checkpoint 1\nnext_index %" PRId64 "\nn_ok %" PRId64 "\nn_failed %" PRId64
               "\nn_image_tokens %" PRId64 "\nn_text_tokens %" PRId64 "\n",
            ps->next_index, ps->n_ok, ps->n_failed, ps->n_img, ps->n_txt);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f)) ok = false;
    return ok ? VLMN_OK : vlmn_error(VLMN_E_IO, "%s: write failed", path);
}

static vlmn_status read_state_file(const char *dir, progress_state *ps)
{
    char path[PATHMAX];
    if (snprintf(path, sizeof path, "%s/progress.txt", dir) >= (int)sizeof path)
        return vlmn_error(VLMN_E_RANGE, "%s: path too long", dir);
    FILE *f = fopen(path, "r");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
    int v = 0;
    int n = fscanf(f,
                   "vlmn-checkpoint %d\nnext_index %" SCNd64 "\nn_ok %" SCNd64 "\nn_failed %" SCNd64
                   "\nn_image_tokens %" SCNd64 "\nn_text_tokens %" SCNd64,
                   &v, &ps->next_index, &ps->n_ok, &ps->n_failed, &ps->n_img, &ps->n_txt);
    fclose(f);
    if (n != 6 || v != 1 || ps->next_index < 0)
        return vlmn_error(VLMN_E_FORMAT, "%s: not a vlmn checkpoint progress file", path);
    return VLMN_OK;
}

static bool dir_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* RUN/ckpt.tmp is built and fsynced, then RUN/ckpt -> RUN/ckpt.old, ckpt.tmp ->
 * ckpt, fsync(RUN), remove ckpt.old. At every instant RUN/ckpt or RUN/ckpt.old is a
 * complete checkpoint (ckpt.tmp never is trusted). */
static vlmn_status write_checkpoint(const char *out, vlmn_rec *rec, const progress_state *ps)
{
    char tmp[PATHMAX], cur[PATHMAX], old[PATHMAX];
    snprintf(tmp, sizeof tmp, "%s/ckpt.tmp", out);
    snprintf(cur, sizeof cur, "%s/ckpt", out);
    snprintf(old, sizeof old, "%s/ckpt.old", out);
    vlmn_status st;
    if ((st = vlmn_store_remove_dir(tmp))) return st;
    if (mkdir(tmp, 0755)) return vlmn_error(VLMN_E_IO, "%s: %s", tmp, strerror(errno));
    if ((st = vlmn_store_write_arrays(tmp, rec, false)) || (st = write_state_file(tmp, ps)) ||
        (st = vlmn_store_fsync_dir(tmp)))
        return st;
    if (dir_exists(cur)) {
        if ((st = vlmn_store_remove_dir(old))) return st;
        if (rename(cur, old)) return vlmn_error(VLMN_E_IO, "%s: rename: %s", cur, strerror(errno));
    }
    if (rename(tmp, cur)) return vlmn_error(VLMN_E_IO, "%s: rename: %s", tmp, strerror(errno));
    if ((st = vlmn_store_fsync_dir(out))) return st;
    return vlmn_store_remove_dir(old);
}

/* ---- provenance ---- */
/* Provenance stores absolute paths, so a report or export run from another folder
 * still finds the files (the path as given when it cannot be resolved). Returns a
 * thread-local buffer valid until the next call. */
static const char *abs_path(const char *p)
{
    static _Thread_local char buf[PATH_MAX];
    return realpath(p, buf) ? buf : p;
}

/* A folder (Hugging Face model): SHA-256 over "name\0sha256-hex\n" of its regular files
 * in name order (sub-folders are not part of a model), size = their total. */
static vlmn_status folder_sha256(const char *dir, char hex[65], uint64_t *size)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0) return vlmn_error(VLMN_E_IO, "%s: %s", dir, strerror(errno));
    vlmn_sha256 c;
    vlmn_sha256_init(&c);
    *size = 0;
    vlmn_status st = VLMN_OK;
    for (int i = 0; i < n; i++) {
        char p[PATH_MAX], fh[65];
        struct stat sb;
        uint64_t fs;
        snprintf(p, sizeof p, "%s/%s", dir, ents[i]->d_name);
        if (!st && stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (!(st = vlmn_sha256_file(p, fh, &fs))) {
                vlmn_sha256_update(&c, ents[i]->d_name, strlen(ents[i]->d_name) + 1);
                vlmn_sha256_update(&c, fh, 64);
                vlmn_sha256_update(&c, "\n", 1);
                *size += fs;
            }
        }
        free(ents[i]);
    }
    free(ents);
    if (st) return st;
    uint8_t d[32];
    vlmn_sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return VLMN_OK;
}

static vlmn_status put_file_meta(sqlite3 *db, const char *key, const char *path)
{
    char hex[65], k[128];
    uint64_t size;
    struct stat sb;
    vlmn_status st = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? folder_sha256(path, hex, &size)
                                                                  : vlmn_sha256_file(path, hex, &size);
    if (st) return st;
    if ((st = vlmn_db_set_meta(db, key, "%s", abs_path(path)))) return st;
    snprintf(k, sizeof k, "%s_size", key);
    if ((st = vlmn_db_set_meta(db, k, "%" PRIu64, size))) return st;
    snprintf(k, sizeof k, "%s_sha256", key);
    return vlmn_db_set_meta(db, k, "%s", hex);
}

/* The keys that must agree between a run and its --resume (and between shards). */
static const char *const option_keys[] = {"backend", "model_sha256", "mmproj_sha256", "data_sha256", "top_n",
                                          "hook", "template", "text_tokens", "mode", "precision", "limit",
                                          "shard", "n_layers", "n_ff"};

static vlmn_status set_options(sqlite3 *db, const vlmn_record_opts *o, const vlmn_rec_backend *be)
{
    vlmn_status st;
#define SET(k, ...) \
    if ((st = vlmn_db_set_meta(db, k, __VA_ARGS__))) return st
    SET("format_version", "%d", VLMN_STORE_VERSION);
    SET("vlmn_version", "%s", vlmn_version());
    SET("backend", "%s", be->name);
    SET("top_n", "%d", o->top_n);
    SET("hook", "%s", o->hook);
    SET("template", "%s", o->template_name);
    SET("text_tokens", "%s", o->text_all ? "all" : "answer");
    SET("mode", "%s", o->mode);
    SET("precision", "%s", o->precision);
    SET("limit", "%" PRId64, o->limit > 0 ? o->limit : (int64_t)0);
    SET("shard", "%d/%d", o->shard_i, o->shard_n);
    SET("images", "%s", o->images ? abs_path(o->images) : "");
    SET("n_layers", "%d", be->n_layers);
    SET("n_ff", "%d", be->n_ff);
    SET("hist_edges", "%s", "signed log2: -inf,-2^7..-2^-7,0,2^-7..2^7,+inf (32 bins)");
    SET("tie_break", "%s", "max_act descending, then sample_index ascending");
#undef SET
    if ((st = put_file_meta(db, "data", o->data))) return st;
    if (!o->synthetic) {
        if ((st = put_file_meta(db, "model", o->model))) return st;
        /* a Hugging Face folder holds the vision tower: no mmproj file */
        if (o->mmproj && (st = put_file_meta(db, "mmproj", o->mmproj))) return st;
        if (!o->mmproj && ((st = vlmn_db_set_meta(db, "mmproj", "%s", "")) ||
                           (st = vlmn_db_set_meta(db, "mmproj_sha256", "%s", "(in the model folder)"))))
            return st;
    }
    return be->provenance ? be->provenance(be->user, db) : VLMN_OK;
}

/* On --resume: the stored options must equal the new ones. */
static vlmn_status check_resume_options(sqlite3 *db, const vlmn_record_opts *o, const vlmn_rec_backend *be)
{
    /* write the new options inside a savepoint, compare key by key, roll back */
    vlmn_status st;
    char old[VLMN_ARRAY_LEN(option_keys)][512];
    for (size_t i = 0; i < VLMN_ARRAY_LEN(option_keys); i++) vlmn_db_get_meta(db, option_keys[i], old[i], sizeof old[i]);
    if ((st = vlmn_db_exec(db, "SAVEPOINT chk"))) return st;
    st = set_options(db, o, be);
    for (size_t i = 0; !st && i < VLMN_ARRAY_LEN(option_keys); i++) {
        char now[512];
        vlmn_db_get_meta(db, option_keys[i], now, sizeof now);
        if (strcmp(now, old[i]))
            st = vlmn_error(VLMN_E_MISMATCH, "--resume: '%s' was '%s' in the run, now '%s' (resume with the same inputs and options)",
                            option_keys[i], old[i], now);
    }
    /* compare only: the run keeps the values it was started with */
    vlmn_db_exec(db, "ROLLBACK TO chk; RELEASE chk");
    return st;
}

/* ---- progress ---- */
typedef struct progress {
    bool tty;
    int mode;
    int64_t log_every, total, done0;
    double t0, last;
    int64_t tokens;
    bool quiet;
} progress;

static void fmt_eta(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long v = (long)s;
    if (v >= 3600) snprintf(buf, n, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else if (v >= 60) snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
    else snprintf(buf, n, "%lds", v);
}

static void progress_show(progress *p, int64_t done, int64_t failed, bool final)
{
    if (p->quiet || p->mode < 0) return;
    double t = now_s();
    int64_t k = done - p->done0;
    if (p->tty && p->mode == 0) {
        if (!final && t - p->last < 0.25) return;
    } else if (!final && (p->log_every <= 0 || k == 0 || k % p->log_every)) {
        return;
    }
    p->last = t;
    double el = t - p->t0, rate = el > 0 ? k / el : 0, trate = el > 0 ? p->tokens / el : 0;
    char eta[32];
    fmt_eta(rate > 0 ? (p->total - done) / rate : -1, eta, sizeof eta);
    if (p->tty && p->mode == 0)
        fprintf(stderr, "\r[record] %" PRId64 "/%" PRId64 " samples  %.2f samples/s  %.0f tokens/s  ETA %s  failures %" PRId64 "\033[K%s",
                done, p->total, rate, trate, eta, failed, final ? "\n" : "");
    else
        fprintf(stderr, "[record] %" PRId64 "/%" PRId64 " samples, %.2f samples/s, %.0f tokens/s, ETA %s, failures %" PRId64 "\n",
                done, p->total, rate, trate, eta, failed);
}

/* Number of dataset indices this run owns. */
static int64_t owned_count(int64_t n_elems, const vlmn_record_opts *o)
{
    int64_t n = o->limit > 0 && o->limit < n_elems ? o->limit : n_elems;
    if (n <= o->shard_i) return 0;
    return (n - o->shard_i + o->shard_n - 1) / o->shard_n;
}

static int64_t owned_before(int64_t idx, const vlmn_record_opts *o)
{
    return owned_count(idx, o);
}

vlmn_status vlmn_record_run(const vlmn_record_opts *o, vlmn_rec_backend *be, vlmn_record_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    vlmn_status st = VLMN_OK;
    sqlite3 *db = NULL;
    vlmn_rec *rec = NULL;
    vlmn_dataset *ds = NULL;
    bool in_tx = false;
    int lock_fd = -1;
    bool setup_done = false;
    char path[PATHMAX], ckpt[PATHMAX], timebuf[64], why[1024];
    progress_state ps = {0};
    if (o->top_n < 1 || o->top_n > VLMN_REC_MAX_TOP_N)
        return vlmn_error(VLMN_E_ARG, "--top-n %d: must be 1..%d", o->top_n, VLMN_REC_MAX_TOP_N);
    if (o->shard_n < 1 || o->shard_i < 0 || o->shard_i >= o->shard_n)
        return vlmn_error(VLMN_E_ARG, "--shard %d/%d: need 0 <= I < N", o->shard_i, o->shard_n);

    /* The dataset is scanned whole (its element count drives the progress line) before
     * the run directory is touched, so a malformed file leaves nothing behind. */
    int64_t n_elems = 0;
    if ((st = vlmn_ds_count(o->data, VLMN_DS_AUTO, &n_elems))) return st;
    if ((st = vlmn_ds_open(o->data, VLMN_DS_AUTO, &ds))) return st;

    /* run directory */
    if (mkdir(o->out, 0755) && errno != EEXIST) {
        vlmn_ds_close(ds);
        return vlmn_error(VLMN_E_IO, "%s: %s", o->out, strerror(errno));
    }
    /* one writer per run directory (released by the kernel if we are killed) */
    snprintf(path, sizeof path, "%s/lock", o->out);
    lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB)) {
        st = vlmn_error(VLMN_E_ARG, "%s: in use by another vlmn record", o->out);
        goto done;
    }
    snprintf(path, sizeof path, "%s/run.sqlite", o->out);
    if ((st = vlmn_db_open(path, true, &db))) goto done;
    /* a database without a status is a run that never got past its setup */
    char status[64] = "";
    vlmn_db_get_meta(db, "status", status, sizeof status);
    bool exists = status[0] != 0;
    if (exists && !o->resume) {
        st = vlmn_error(VLMN_E_ARG, "%s: already holds a run (use --resume to continue it, or another -o)", o->out);
        goto done;
    }
    vlmn_rec_params rp = {be->n_layers, be->n_ff, o->top_n, o->threads};
    if ((st = vlmn_rec_create(&rp, &rec))) goto done;

    /* one transaction for the setup (each autocommit statement would fsync) */
    if ((st = vlmn_db_exec(db, "BEGIN"))) goto done;
    in_tx = true;
    if (exists && !strcmp(status, "complete")) {
        if ((st = check_resume_options(db, o, be))) goto done;
        sum->already_complete = true;
        if (!o->quiet) fprintf(stderr, "vlmn record: %s is already complete\n", o->out);
        goto done;
    }
    if (exists) {
        if ((st = check_resume_options(db, o, be))) goto done;
        snprintf(ckpt, sizeof ckpt, "%s/ckpt", o->out);
        if (!dir_exists(ckpt)) snprintf(ckpt, sizeof ckpt, "%s/ckpt.old", o->out);
        if (dir_exists(ckpt)) {
            if ((st = read_state_file(ckpt, &ps)) || (st = vlmn_store_read_arrays(ckpt, rec))) {
                vlmn_error_prefix(st, "resume");
                goto done;
            }
        }
        char sql[128];
        snprintf(sql, sizeof sql, "DELETE FROM samples WHERE sample_index >= %" PRId64, ps.next_index);
        if ((st = vlmn_db_exec(db, sql))) goto done;
        utc_now(timebuf, sizeof timebuf);
        char prev[4096] = "";
        vlmn_db_get_meta(db, "resume_times", prev, sizeof prev);
        if ((st = vlmn_db_set_meta(db, "resume_times", "%s%s%s", prev, prev[0] ? " " : "", timebuf))) goto done;
        if (!o->quiet)
            fprintf(stderr, "vlmn record: resuming %s at dataset index %" PRId64 " (%" PRId64 " samples done)\n", o->out,
                    ps.next_index, ps.n_ok + ps.n_failed);
    } else {
        /* fresh run (or one that failed during its setup: nothing was kept) */
        if ((st = vlmn_db_exec(db, "DELETE FROM samples; DELETE FROM neurons; DELETE FROM run;"))) goto done;
        if ((st = set_options(db, o, be))) goto done;
        utc_now(timebuf, sizeof timebuf);
        if ((st = vlmn_db_set_meta(db, "start_time", "%s", timebuf))) goto done;
        if ((st = vlmn_db_set_meta(db, "status", "running"))) goto done;
    }
    /* the kernels' ISA level (fresh run or resume): activations are bit-identical only
     * within one level */
    if ((st = vlmn_db_meta_add_items(db, "isa", vlmn_isa_name(vlmn_isa_active())))) goto done;
    /* VLMN_EMULATE_PRECISION (kernels.h): the f32 kernels rounded activations as AVX-512 would */
    if (!o->synthetic && strcmp(o->precision, "exact") &&
        (st = vlmn_db_meta_add_items(db, "precision_emulation", vlmn_precision_emulated() ? "avx512-rounding" : "none")))
        goto done;

    if ((st = vlmn_db_exec(db, "COMMIT"))) goto done;
    in_tx = false;
    setup_done = true;
    /* dataset (checked whole before anything was created): skip to the resume point */
    bool eof = false;
    for (int64_t i = 0; i < ps.next_index && !eof; i++)
        if ((st = vlmn_ds_skip(ds, &eof))) goto done;

    progress pr = {isatty(2) == 1, o->progress, o->log_every, owned_count(n_elems, o), 0, now_s(), 0, 0, o->quiet};
    pr.done0 = owned_before(ps.next_index, o);
    pr.last = 0;
    int64_t since_ckpt = 0;
    if ((st = vlmn_db_exec(db, "BEGIN"))) goto done;
    in_tx = true;
    if ((st = vlmn_db_set_meta(db, "data_elements", "%" PRId64, n_elems))) goto done;
    if ((st = vlmn_db_set_meta(db, "data_format", "%s", vlmn_ds_get_format(ds) == VLMN_DS_LLAVA ? "llava-json" : "jsonl")))
        goto done;
    int64_t idx = ps.next_index;
    for (;;) {
        if (o->stop && *o->stop) {
            sum->interrupted = true;
            break;
        }
        if (o->limit > 0 && idx >= o->limit) break;
        if (idx % o->shard_n != o->shard_i) {
            if ((st = vlmn_ds_skip(ds, &eof))) goto done;
            if (eof) break;
            idx++;
            continue;
        }
        vlmn_sample s;
        if ((st = vlmn_ds_next(ds, &s, &eof))) goto done;
        if (eof) break;
        VLMN_ASSERT(s.index == idx);
        why[0] = 0;
        int64_t npos = 0;
        if (s.error) snprintf(why, sizeof why, "%s: sample %" PRId64 ": %s", o->data, s.index, s.error);
        else if ((st = be->run(be->user, &s, rec, o->text_all, why, sizeof why, &npos))) goto done;
        vlmn_store_sample row = {s.index, s.id, s.image, why[0] == 0, why[0] ? why : NULL, 0, 0};
        if (!why[0]) {
            if ((st = vlmn_rec_end_sample(rec))) goto done;
            vlmn_rec_sample_counts(rec, &row.n_image_tokens, &row.n_text_tokens);
            ps.n_ok++;
            ps.n_img += row.n_image_tokens;
            ps.n_txt += row.n_text_tokens;
            pr.tokens += npos;
        } else {
            ps.n_failed++;
            if (!o->quiet && pr.tty && pr.mode == 0) fputc('\n', stderr);
            if (!o->quiet) fprintf(stderr, "vlmn record: sample %" PRId64 " failed: %s\n", s.index, why);
        }
        if ((st = vlmn_db_put_sample(db, &row))) goto done;
        if (!why[0] || !o->strict) ps.next_index = idx + 1;
        if (why[0] && o->strict) {
            st = vlmn_error(VLMN_E_ARG, "sample %" PRId64 " failed (--strict): %s", s.index, why);
            goto done;
        }
        idx++;
        progress_show(&pr, owned_before(idx, o), ps.n_failed, false);
        if (++since_ckpt >= o->checkpoint_every && o->checkpoint_every > 0) {
            if ((st = vlmn_db_exec(db, "COMMIT"))) goto done;
            in_tx = false;
            if ((st = write_checkpoint(o->out, rec, &ps))) goto done;
            if ((st = vlmn_db_exec(db, "BEGIN"))) goto done;
            in_tx = true;
            since_ckpt = 0;
        }
    }
    progress_show(&pr, owned_before(idx, o), ps.n_failed, true);
    if ((st = vlmn_db_exec(db, "COMMIT"))) goto done;
    in_tx = false;
    if (sum->interrupted) {
        if ((st = write_checkpoint(o->out, rec, &ps))) goto done;
        st = vlmn_error(VLMN_E_INTERRUPTED, "%s: stopped at a sample boundary (dataset index %" PRId64
                                            "); checkpoint written, continue with --resume",
                        o->out, ps.next_index);
        goto done;
    }
    /* finish: arrays, neurons table, summary, status */
    if ((st = vlmn_store_write_arrays(o->out, rec, true))) goto done;
    if ((st = vlmn_db_write_neurons(db, rec)) || (st = vlmn_db_write_top(db, rec))) goto done;
    if ((st = vlmn_db_exec(db, "BEGIN"))) goto done;
    in_tx = true;
    utc_now(timebuf, sizeof timebuf);
#define SET(k, ...) \
    if ((st = vlmn_db_set_meta(db, k, __VA_ARGS__))) goto done
    SET("n_samples", "%" PRId64, ps.n_ok + ps.n_failed);
    SET("n_ok", "%" PRId64, ps.n_ok);
    SET("n_failed", "%" PRId64, ps.n_failed);
    SET("n_image_tokens", "%" PRId64, ps.n_img);
    SET("n_text_tokens", "%" PRId64, ps.n_txt);
    SET("end_time", "%s", timebuf);
    SET("status", "%s", "complete");
#undef SET
    if ((st = vlmn_db_exec(db, "COMMIT"))) goto done;
    in_tx = false;
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", o->out);
    vlmn_store_remove_dir(ckpt);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.old", o->out);
    vlmn_store_remove_dir(ckpt);
done:
    if (in_tx) {
        /* setup: keep nothing (bad dataset/model path...). Later: keep the rows of a
         * failed run up to here (they are re-done after the checkpoint on resume). */
        vlmn_db_exec(db, setup_done ? "COMMIT" : "ROLLBACK");
    }
    sum->n_ok = ps.n_ok;
    sum->n_failed = ps.n_failed;
    sum->n_done = ps.n_ok + ps.n_failed;
    sum->n_tokens_image = ps.n_img;
    sum->n_tokens_text = ps.n_txt;
    sum->next_index = ps.next_index;
    vlmn_ds_close(ds);
    vlmn_rec_free(rec);
    if (db) vlmn_db_close(db);
    if (lock_fd >= 0) close(lock_fd);
    return st;
}
