/* Synthetic backend: deterministic pseudo-activations (a hash of sample index,
 * layer, position, neuron) with an image/prompt/text layout derived from the sample,
 * so the whole recording pipeline (checkpoints, resume, shards, merge, MPI) can be
 * tested and benchmarked without a model. The image file must exist and be non-empty. */
#include "run/record_run.h"
#include "vlmn/model.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct synth {
    int n_layers, n_ff, n_img;
    int delay_ms;      /* per sample: lets tests interrupt a run mid-way */
    uint64_t seed;
    char *images;
    float *block;      /* [cap x n_ff] */
    int64_t cap;
    uint8_t *labels;
} synth;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static vlmn_status synth_run(void *user, const vlmn_sample *s, vlmn_rec *rec, bool prompt_as_text, char *why,
                             size_t why_n, int64_t *n_positions)
{
    synth *y = user;
    if (y->images && s->image) {
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", y->images, s->image);
        if (stat(path, &sb)) {
            snprintf(why, why_n, "%s: %s", path, strerror(errno));
            return VLMN_OK;
        }
        if (sb.st_size == 0) {
            snprintf(why, why_n, "%s: corrupt image (empty file)", path);
            return VLMN_OK;
        }
    }
    /* layout: BOS + question prompt, image, role words, answer (text) */
    int64_t np = 2 + (int64_t)(strlen(s->question) % 5), nt = 1 + (int64_t)(strlen(s->answer) % 9);
    int64_t T = np + y->n_img + 2 + nt;
    if (T > y->cap) {
        float *b = vlmn_realloc(y->block, (size_t)T * (size_t)y->n_ff * sizeof(float));
        if (!b) return vlmn_error(VLMN_E_NOMEM, "synthetic backend: out of memory");
        y->block = b;
        uint8_t *l = vlmn_realloc(y->labels, (size_t)T);
        if (!l) return vlmn_error(VLMN_E_NOMEM, "synthetic backend: out of memory");
        y->labels = l;
        y->cap = T;
    }
    int64_t t = 0;
    for (int64_t i = 0; i < np; i++) y->labels[t++] = VLMN_MOD_PROMPT;
    for (int64_t i = 0; i < y->n_img; i++) y->labels[t++] = VLMN_MOD_IMAGE;
    for (int64_t i = 0; i < 2; i++) y->labels[t++] = VLMN_MOD_PROMPT;
    for (int64_t i = 0; i < nt; i++) y->labels[t++] = VLMN_MOD_TEXT;
    *n_positions = T;
    vlmn_status st = vlmn_rec_begin_sample(rec, (uint32_t)s->index, y->labels, T, prompt_as_text);
    if (st) return st;
    for (int l = 0; l < y->n_layers; l++) {
        for (int64_t p = 0; p < T; p++) {
            uint64_t base = mix(y->seed ^ mix(((uint64_t)s->index << 20) ^ ((uint64_t)l << 12) ^ (uint64_t)p));
            float *row = y->block + p * y->n_ff;
            for (int j = 0; j < y->n_ff; j++) {
                uint64_t h = mix(base + (uint64_t)j);
                /* multiples of 1/8 in [-3, 9): plenty of exact ties */
                row[j] = (float)((int)(h % 97)) * 0.125f - 3.0f;
            }
        }
        vlmn_rec_capture(rec, l, y->block, T, y->n_ff);
    }
    if (y->delay_ms > 0) {
        struct timespec ts = {y->delay_ms / 1000, (long)(y->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return VLMN_OK;
}

static vlmn_status synth_prov(void *user, sqlite3 *db)
{
    (void)user;
    (void)db;
    return VLMN_OK;
}

static void synth_free(void *user)
{
    synth *y = user;
    if (!y) return;
    vlmn_free(y->block);
    vlmn_free(y->labels);
    vlmn_free(y->images);
    vlmn_free(y);
}

vlmn_status vlmn_backend_synth_create(const char *spec, const char *images, vlmn_rec_backend *be)
{
    int L = 0, F = 0, n = 0;
    unsigned long long seed = 1;
    int img = 12, delay = 0;
    if (sscanf(spec, "%dx%d%n", &L, &F, &n) != 2 || L <= 0 || F <= 0 || L > 1000 || F > 1000000)
        return vlmn_error(VLMN_E_ARG, "--synthetic '%s': expected LAYERSxNFF[:SEED[:IMAGE_TOKENS[:DELAY_MS]]]", spec);
    if (spec[n] && (spec[n] != ':' || sscanf(spec + n, ":%llu:%d:%d", &seed, &img, &delay) < 1))
        return vlmn_error(VLMN_E_ARG, "--synthetic '%s': expected LAYERSxNFF[:SEED[:IMAGE_TOKENS[:DELAY_MS]]]", spec);
    if (img < 0 || img > 100000 || delay < 0 || delay > 60000)
        return vlmn_error(VLMN_E_ARG, "--synthetic '%s': bad image token count or delay", spec);
    synth *y = vlmn_calloc(1, sizeof *y);
    if (!y) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    y->n_layers = L;
    y->n_ff = F;
    y->seed = seed;
    y->n_img = img;
    y->delay_ms = delay;
    if (images && !(y->images = vlmn_strdup(images))) {
        synth_free(y);
        return vlmn_error(VLMN_E_NOMEM, "out of memory");
    }
    be->user = y;
    be->n_layers = L;
    be->n_ff = F;
    /* the delay is not part of the identity: it does not change the activations */
    snprintf(be->name, sizeof be->name, "synthetic:%dx%d:%llu:%d", L, F, seed, img);
    be->run = synth_run;
    be->provenance = synth_prov;
    be->free = synth_free;
    return VLMN_OK;
}
