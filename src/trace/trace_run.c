/* The tracing loop of `vlmn trace`: resolve the selection on a finished run, group the
 * (neuron, sample) pairs by sample, drop the pairs already stored, and run each
 * remaining sample once through the engine (the run's model, prompt template, image
 * mode, hook and precision), capturing only the needed layers and stopping after the
 * deepest one; each sample is committed to the trace store before the next starts. */
#include "vlmn/trace.h"
#include "vlmn/dataset.h"
#include "vlmn/image.h"
#include "vlmn/model.h"
#include "vlmn/prompt.h"
#include "vlmn/tokenizer.h"
#include "trace/trace_int.h"
#include "store/store.h"
#include "store/sha256.h"
#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATHMAX 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Captured columns: row r of out[] is neuron col[r] of layer lay[r] over T positions. */
typedef struct grab {
    const int32_t *lay, *col;
    int64_t n_rows, T;
    float *out;
    int64_t n_layers_seen;
} grab;

static void on_capture(void *user, int layer, const float *acts, int64_t T, int64_t FF)
{
    grab *g = user;
    g->n_layers_seen++;
    for (int64_t r = 0; r < g->n_rows; r++) {
        if (g->lay[r] != layer) continue;
        float *o = g->out + r * T;
        const float *a = acts + g->col[r];
        for (int64_t t = 0; t < T; t++) o[t] = a[t * FF];
    }
}

/* The model file must be the one the run recorded (size and SHA-256; folders: not checked). */
static vlmn_status check_file(sqlite3 *db, const char *key, const char *path)
{
    char want[128], k[64];
    struct stat sb;
    if (stat(path, &sb)) return vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return VLMN_OK;
    snprintf(k, sizeof k, "%s_sha256", key);
    if (vlmn_db_get_meta(db, k, want, sizeof want) || strlen(want) != 64) return VLMN_OK;
    char hex[65];
    uint64_t size;
    vlmn_status st = vlmn_sha256_file(path, hex, &size);
    if (st) return st;
    if (strcmp(hex, want))
        return vlmn_error(VLMN_E_MISMATCH, "%s: SHA-256 %s, the run was recorded with %s (%s)", path, hex, want, key);
    return VLMN_OK;
}

/* Store-wide settings must agree with the ones this call traces with. */
static vlmn_status check_meta(vlmn_traces *t, const char *key, const char *val)
{
    char old[512];
    if (vlmn_traces_get_meta(t, key, old, sizeof old)) return vlmn_traces_set_meta(t, key, val);
    if (strcmp(old, val))
        return vlmn_error(VLMN_E_MISMATCH, "traces: '%s' is '%s' in the store, now '%s' (trace with the run's settings)",
                          key, old, val);
    return VLMN_OK;
}

typedef struct prov {
    char backend[256], model[PATHMAX], mmproj[PATHMAX], data[PATHMAX], images[PATHMAX];
    char hook[32], tmpl[32], mode[8], precision[16];
} prov;

static vlmn_status read_prov(sqlite3 *db, const char *dir, prov *p)
{
    vlmn_status st;
    if ((st = vlmn_db_get_meta(db, "backend", p->backend, sizeof p->backend))) return st;
    /* "llava" (LLaVA runs) or the engine family's name (internvl-2.5) */
    if (strcmp(p->backend, "llava") && !vlmn_arch_known(p->backend))
        return vlmn_error(VLMN_E_UNSUPPORTED,
                          "%s: recorded with backend '%s'; only llava runs and the engine's models (%s) can be traced",
                          dir, p->backend, "internvl-2.5");
    if ((st = vlmn_db_get_meta(db, "model", p->model, sizeof p->model)) ||
        (st = vlmn_db_get_meta(db, "data", p->data, sizeof p->data)) ||
        (st = vlmn_db_get_meta(db, "hook", p->hook, sizeof p->hook)) ||
        (st = vlmn_db_get_meta(db, "template", p->tmpl, sizeof p->tmpl)) ||
        (st = vlmn_db_get_meta(db, "mode", p->mode, sizeof p->mode)))
        return st;
    vlmn_db_get_meta(db, "mmproj", p->mmproj, sizeof p->mmproj);
    vlmn_db_get_meta(db, "images", p->images, sizeof p->images);
    if (vlmn_db_get_meta(db, "precision", p->precision, sizeof p->precision)) snprintf(p->precision, sizeof p->precision, "fast");
    return VLMN_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Build the stored description of one sample (tokens, modality, grids, geometry): one
 * grid for LLaVA's single input (pad / crop geometry), one per tile + the thumbnail for
 * a tiled image (vlmn_trace_tile_grids). */
static vlmn_status describe(const vlmn_tok *tok, const vlmn_sample *ds, const char *path, const vlmn_image *img,
                            const prov *p, const vlmn_llava_info *in, const vlmn_vision_input *vi, const int32_t *ids,
                            const uint8_t *mod, int64_t n, vlmn_trace_sample *s, vlmn_trace_grid *grids)
{
    memset(s, 0, sizeof *s);
    s->sample = (uint32_t)ds->index;
    s->sample_id = (char *)ds->id;
    s->image = (char *)ds->image;
    s->image_path = (char *)path;
    s->orig_w = img->w;
    s->orig_h = img->h;
    snprintf(s->mode, sizeof s->mode, "%s", in->max_tiles ? "tiles" : p->mode);
    s->image_size = in->image_size;
    s->n_tokens = n;
    s->ids = (int32_t *)ids;
    s->modality = (uint8_t *)mod;
    s->pieces = vlmn_calloc((size_t)n + 1, sizeof *s->pieces);
    if (!s->pieces) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    int64_t first = -1;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0) {
            if (first < 0) first = i;
            s->pieces[i] = vlmn_strdup(VLMN_PROMPT_IMAGE);
        } else {
            size_t len = 0;
            const char *pc = vlmn_tok_piece(tok, ids[i], &len);
            s->pieces[i] = vlmn_strndup(pc ? pc : "", pc ? len : 0);
        }
        if (!s->pieces[i]) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    }
    int side = (int)lround(sqrt((double)in->n_image_tokens));
    if (first < 0 || side * side != in->n_image_tokens) return VLMN_OK;
    vlmn_status st = in->max_tiles
                         ? vlmn_trace_tile_grids(img->w, img->h, vi->cols, vi->rows, vi->n_tiles, side, first, grids)
                         : vlmn_trace_geometry(img->w, img->h, p->mode, in->image_size, side, grids);
    if (st) return st;
    if (!in->max_tiles) grids->first_pos = first;
    s->grids = grids;
    s->n_grids = in->max_tiles ? vi->n_tiles : 1;
    return VLMN_OK;
}

static void free_pieces(vlmn_trace_sample *s)
{
    if (!s->pieces) return;
    for (int64_t i = 0; i < s->n_tokens; i++) vlmn_free(s->pieces[i]);
    vlmn_free(s->pieces);
    s->pieces = NULL;
}

vlmn_status vlmn_trace_run(const vlmn_trace_opts *o, vlmn_trace_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    vlmn_status st;
    vlmn_run *run = NULL;
    vlmn_selection *sel = NULL;
    vlmn_traces *tr = NULL;
    vlmn_llava *m = NULL;
    vlmn_dataset *ds = NULL;
    int lock_fd = -1;
    int64_t *boff = NULL, *bfill = NULL, *bucket = NULL;
    uint8_t *todo = NULL, *newsample = NULL, *caplayers = NULL;
    int32_t *lay = NULL, *col = NULL;
    vlmn_trace_row *rows = NULL;
    float *out = NULL;
    size_t out_cap = 0;
    prov *p = vlmn_calloc(1, sizeof *p);
    if (!p) return vlmn_error(VLMN_E_NOMEM, "out of memory");

    if ((st = vlmn_run_open(o->run_dir, &run))) goto done;
    sqlite3 *rdb = vlmn_run_db(run);
    if ((st = read_prov(rdb, o->run_dir, p))) goto done;
    if ((st = vlmn_select(run, o->neurons, o->samples, &sel))) goto done;
    sum->n_neurons = sel->n_neurons;
    sum->n_pairs = sel->off[sel->n_neurons];
    sum->n_missing = sel->n_missing;
    sum->n_samples = sel->n_samples;
    sum->deepest_layer = sel->deepest_layer;
    if (!o->quiet)
        fprintf(stderr, "vlmn trace: %" PRId64 " neurons, %" PRId64 " (neuron, sample) pairs over %" PRId64
                        " samples, deepest layer %d%s\n",
                sum->n_neurons, sum->n_pairs, sum->n_samples, sum->deepest_layer,
                sum->n_pairs ? "" : ": empty selection, nothing to trace");
    if (!o->quiet && sum->n_missing)
        fprintf(stderr, "vlmn trace: %" PRId64 " requested top ranks are past their neuron's list (skipped)\n",
                sum->n_missing);
    if (!sum->n_pairs) goto done;

    /* one writer per trace store */
    char path[PATHMAX + 64];
    snprintf(path, sizeof path, "%s/traces.lock", o->run_dir);
    lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB)) {
        st = vlmn_error(VLMN_E_ARG, "%s: traces in use by another vlmn trace", o->run_dir);
        goto done;
    }
    if ((st = vlmn_traces_open_write(o->run_dir, &tr))) goto done;
    const char *precision = o->precision ? o->precision : p->precision;
    char model_sha[128] = "";
    vlmn_db_get_meta(rdb, "model_sha256", model_sha, sizeof model_sha);
    if ((st = vlmn_db_exec(vlmn_traces_db(tr), "BEGIN"))) goto done;
    st = check_meta(tr, "format_version", "1");
    if (!st) st = check_meta(tr, "hook", p->hook);
    if (!st) st = check_meta(tr, "template", p->tmpl);
    if (!st) st = check_meta(tr, "mode", p->mode);
    if (!st) st = check_meta(tr, "precision", precision);
    if (!st) st = check_meta(tr, "model_sha256", model_sha);
    if (!st) st = check_meta(tr, "isa", vlmn_isa_name(vlmn_isa_active()));
    vlmn_db_exec(vlmn_traces_db(tr), st ? "ROLLBACK" : "COMMIT");
    if (st) goto done;

    /* group the pairs by sample: bucket[boff[d] .. boff[d+1]) = neuron indices */
    const int64_t D = sel->n_samples, NP = sum->n_pairs;
    boff = vlmn_calloc((size_t)D + 1, sizeof *boff);
    bfill = vlmn_calloc((size_t)D + 1, sizeof *bfill);
    bucket = vlmn_malloc((size_t)NP * sizeof *bucket);
    todo = vlmn_calloc((size_t)NP, 1);
    newsample = vlmn_calloc((size_t)D, 1);
    if (!boff || !bfill || !bucket || !todo || !newsample) goto oom;
    for (int64_t i = 0; i < sel->n_neurons; i++)
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++) {
            const uint32_t *d = bsearch(&sel->samples[k], sel->distinct, (size_t)D, sizeof *d, cmp_u32);
            VLMN_ASSERT(d);
            boff[d - sel->distinct + 1]++;
        }
    for (int64_t d = 0; d < D; d++) boff[d + 1] += boff[d];
    for (int64_t i = 0; i < sel->n_neurons; i++)
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++) {
            int64_t d = (const uint32_t *)bsearch(&sel->samples[k], sel->distinct, (size_t)D, sizeof(uint32_t), cmp_u32) -
                        sel->distinct;
            bucket[boff[d] + bfill[d]++] = i; /* neurons ascending within each bucket */
        }
    /* what is stored already */
    int64_t n_todo_samples = 0, n_todo_pairs = 0;
    uint32_t *stored = NULL;
    int64_t n_stored = 0;
    if ((st = vlmn_traces_samples(tr, &stored, &n_stored))) goto done;
    for (int64_t d = 0; d < D; d++) {
        bool any = false;
        for (int64_t b = boff[d]; b < boff[d + 1]; b++) {
            const vlmn_neuron_ref *nr = &sel->neurons[bucket[b]];
            if (!vlmn_traces_has(tr, nr->layer, nr->neuron, sel->distinct[d])) {
                todo[b] = 1;
                any = true;
                n_todo_pairs++;
            }
        }
        newsample[d] = !n_stored || !bsearch(&sel->distinct[d], stored, (size_t)n_stored, sizeof *stored, cmp_u32);
        if (any) n_todo_samples++;
    }
    vlmn_free(stored);
    if (!o->quiet)
        fprintf(stderr, "vlmn trace: %" PRId64 " pairs already stored; %" PRId64 " to trace on %" PRId64 " samples\n",
                NP - n_todo_pairs, n_todo_pairs, n_todo_samples);
    if (!n_todo_samples) goto done;

    /* model and dataset, as the run recorded them */
    const char *model = o->model ? o->model : p->model;
    const char *mmproj = o->mmproj ? o->mmproj : (p->mmproj[0] ? p->mmproj : NULL);
    if ((st = check_file(rdb, "model", model)) || (mmproj && (st = check_file(rdb, "mmproj", mmproj)))) goto done;
    vlmn_llava_params lp = {.n_threads = o->threads};
    if ((st = vlmn_precision_parse(precision, &lp.precision))) goto done;
    if ((st = vlmn_llava_load(model, mmproj, &lp, &m))) goto done;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    if (in->n_layer != vlmn_run_n_layers(run) || in->n_ff != vlmn_run_n_ff(run)) {
        st = vlmn_error(VLMN_E_MISMATCH, "%s: %d layers x %d neurons, the run has %d x %d", model, in->n_layer, in->n_ff,
                        vlmn_run_n_layers(run), vlmn_run_n_ff(run));
        goto done;
    }
    const vlmn_tok *tok = vlmn_llava_tokenizer(m);
    vlmn_img_mode mode;
    if ((st = vlmn_img_parse_mode(p->mode, &mode))) goto done;
    vlmn_hook hook = !strcmp(p->hook, "swiglu") ? VLMN_HOOK_SWIGLU : VLMN_HOOK_SILU_GATE;
    caplayers = vlmn_calloc((size_t)in->n_layer, 1);
    lay = vlmn_malloc((size_t)NP * sizeof *lay);
    col = vlmn_malloc((size_t)NP * sizeof *col);
    rows = vlmn_malloc((size_t)NP * sizeof *rows);
    if (!caplayers || !lay || !col || !rows) goto oom;
    const char *data = o->data ? o->data : p->data, *images = o->images ? o->images : p->images;
    if ((st = vlmn_ds_open(data, VLMN_DS_AUTO, &ds))) goto done;

    double t0 = now_s();
    int64_t done_samples = 0, idx = 0;
    bool eof = false;
    for (int64_t d = 0; d < D; d++) {
        bool need = false;
        for (int64_t b = boff[d]; b < boff[d + 1]; b++) need |= todo[b];
        if (!need) continue;
        if (o->stop && *o->stop) {
            sum->interrupted = true;
            break;
        }
        for (; idx < (int64_t)sel->distinct[d] && !eof; idx++)
            if ((st = vlmn_ds_skip(ds, &eof))) goto done;
        vlmn_sample s;
        if (!eof && (st = vlmn_ds_next(ds, &s, &eof))) goto done;
        if (eof) {
            st = vlmn_error(VLMN_E_MISMATCH, "%s: ended before sample %u (dataset changed?)", data, sel->distinct[d]);
            goto done;
        }
        idx++;
        VLMN_ASSERT(s.index == (int64_t)sel->distinct[d]);
        if (s.error) {
            st = vlmn_error(VLMN_E_MISMATCH, "%s: sample %" PRId64 ": %s (the run recorded it as ok: dataset changed?)",
                            data, s.index, s.error);
            goto done;
        }
        char ipath[PATHMAX * 2 + 2];
        snprintf(ipath, sizeof ipath, "%s/%s", images, s.image ? s.image : "");
        vlmn_image *img = NULL;
        int32_t *ids = NULL;
        uint8_t *mod = NULL;
        int64_t n = 0;
        vlmn_vision_input vi = {0};
        if ((st = vlmn_img_load(ipath, &img)) || (st = vlmn_llava_image_input(m, img, mode, 0, &vi)) ||
            (st = vlmn_prompt_build(tok, p->tmpl, s.question, s.answer, vi.n_image_tokens, &ids, &mod, &n))) {
            vlmn_img_free(img);
            vlmn_free(vi.pix);
            vlmn_error_prefix(st, "sample %" PRId64, s.index);
            goto done;
        }
        /* the rows of this sample, layer-major (bucket order) */
        int64_t nr = 0;
        int deep = -1;
        memset(caplayers, 0, (size_t)in->n_layer);
        for (int64_t b = boff[d]; b < boff[d + 1]; b++) {
            if (!todo[b]) continue;
            const vlmn_neuron_ref *ref = &sel->neurons[bucket[b]];
            lay[nr] = ref->layer;
            col[nr] = ref->neuron;
            rows[nr] = (vlmn_trace_row){ref->layer, ref->neuron, -INFINITY};
            caplayers[ref->layer] = 1;
            if (ref->layer > deep) deep = ref->layer;
            nr++;
        }
        size_t need_floats = (size_t)nr * (size_t)n;
        if (need_floats > out_cap) {
            float *no = vlmn_realloc(out, need_floats * sizeof *no);
            if (!no) {
                vlmn_img_free(img);
                vlmn_free(vi.pix);
                vlmn_free(ids);
                vlmn_free(mod);
                goto oom;
            }
            out = no;
            out_cap = need_floats;
        }
        grab g = {lay, col, nr, n, out, 0};
        vlmn_forward_opts fo = {.capture = on_capture, .capture_user = &g, .hook = hook, .capture_layers = caplayers,
                                .n_layers_run = deep + 1, .n_tiles = vi.n_tiles};
        st = vlmn_llava_forward(m, ids, n, vi.pix, &fo);
        vlmn_free(vi.pix);
        vlmn_trace_sample ts = {0};
        vlmn_trace_grid grids[VLMN_TRACE_MAX_GRIDS];
        if (!st) st = describe(tok, &s, ipath, img, p, in, &vi, ids, mod, n, &ts, grids);
        if (!st) {
            for (int64_t r = 0; r < nr; r++)
                for (int64_t t = 0; t < n; t++)
                    if (mod[t] != VLMN_TRACE_OTHER && out[r * n + t] > rows[r].max_act) rows[r].max_act = out[r * n + t];
            st = vlmn_traces_commit(tr, &ts, newsample[d], rows, nr, out);
        }
        free_pieces(&ts);
        vlmn_img_free(img);
        vlmn_free(ids);
        vlmn_free(mod);
        if (st) {
            vlmn_error_prefix(st, "sample %" PRId64, s.index);
            goto done;
        }
        sum->n_run++;
        sum->n_pairs_stored += nr;
        done_samples++;
        if (!o->quiet) {
            double el = now_s() - t0;
            fprintf(stderr, "[trace] %" PRId64 "/%" PRId64 " samples (index %" PRId64 ", %" PRId64
                            " pairs, layers 0-%d), %.2f s/sample\n",
                    done_samples, n_todo_samples, s.index, nr, deep, el / (double)done_samples);
        }
    }
    if (sum->interrupted)
        st = vlmn_error(VLMN_E_INTERRUPTED, "%s: stopped after %" PRId64 " samples; run again to continue", o->run_dir,
                        done_samples);
    goto done;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "out of memory");
done:
    vlmn_ds_close(ds);
    vlmn_llava_free(m);
    vlmn_traces_close(tr);
    vlmn_selection_free(sel);
    vlmn_run_close(run);
    if (lock_fd >= 0) close(lock_fd);
    vlmn_free(boff);
    vlmn_free(bfill);
    vlmn_free(bucket);
    vlmn_free(todo);
    vlmn_free(newsample);
    vlmn_free(caplayers);
    vlmn_free(lay);
    vlmn_free(col);
    vlmn_free(rows);
    vlmn_free(out);
    vlmn_free(p);
    return st;
}
