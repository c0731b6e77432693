/* Shared by the engine-vs-reference tests (test_llava.c, test_internvl.c, test_generate.c,
 * test_hf.c): the fixtures under tests/data (npy arrays and GGUF pairs DIR/NAME.{text,mmproj}.gguf),
 * a capture sink collecting every layer's [T x n_ff] FFN activation block, the normwise
 * error, one forward pass compared layer by layer (and on the last logits) with the
 * float64 reference's golden arrays, the references' neuron MASK, and byte-edited copies
 * of GGUF fixtures for the bad-file cases. */
#ifndef VLMN_TESTS_MODEL_FIXTURE_H
#define VLMN_TESTS_MODEL_FIXTURE_H

#include "test.h"

#include "vlmn/model.h"
#include "vlmn/npy.h"

#include <stdint.h>
#include <string.h>

/* The reference scripts' MASK: layer -> neurons zeroed before down_proj. */
static const int MFX_MASK0[] = {0, 7, 44}, MFX_MASK1[] = {3, 4, 5, 30};

/* tests/data/PATH as an array; NULL (and a line on stderr) when unreadable. */
static inline vlmn_npy *mfx_npy(const char *path)
{
    vlmn_npy *a = NULL;
    if (vlmn_npy_read(test_path(test_data_dir(), path), &a)) fprintf(stderr, "  cannot read %s: %s\n", path, vlmn_errmsg());
    return a;
}

/* The pair tests/data/DIR/NAME.{text,mmproj}.gguf on 2 threads; NULL when it fails. */
static inline vlmn_model *mfx_load(const char *dir, const char *name, vlmn_precision prec)
{
    char t[128], mm[128];
    snprintf(t, sizeof t, "%s/%s.text.gguf", dir, name);
    snprintf(mm, sizeof mm, "%s/%s.mmproj.gguf", dir, name);
    vlmn_model_params p = {.n_threads = 2, .precision = prec};
    vlmn_model *m = NULL;
    if (vlmn_model_load(test_path(test_data_dir(), t), test_path(test_data_dir(), mm), &p, &m))
        fprintf(stderr, "  load %s: %s\n", name, vlmn_errmsg());
    return m;
}

/* Capture sink: copies every captured layer into acts[l][T][FF]; counts calls, and as
 * bad the calls out of order (layers must come in increasing order) or of another size. */
typedef struct mfx_sink {
    float *acts;
    int64_t T, FF;
    int n_layer, calls, last_layer, bad;
} mfx_sink;

static inline void mfx_on_capture(void *user, int layer, const float *a, int64_t T, int64_t FF)
{
    mfx_sink *s = user;
    s->calls++;
    if (layer <= s->last_layer || layer >= s->n_layer || T != s->T || FF != s->FF) {
        s->bad++;
        return;
    }
    s->last_layer = layer;
    memcpy(s->acts + (int64_t)layer * T * FF, a, (size_t)(T * FF) * sizeof(float));
}

/* Normwise relative error ||a - b|| / ||b|| (absolute when b is 0). */
static inline double mfx_rel_err(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* One forward pass of m over ids (image: the pixels of n_tiles tiles, 0 for one image)
 * with `hook` and, when masked, MFX_MASK; every layer's activation block must be within
 * normwise tol of gold [n_layer, T, n_ff] and, when lg is given, the last lg->shape[0]
 * logits of lg. Prints the errors on one line; returns the worst layer error. */
static inline double mfx_forward_vs_gold(vlmn_model *m, const char *model, vlmn_precision prec, const char *gold_name,
                                         const vlmn_npy *ids, const float *image, int n_tiles, const vlmn_npy *gold,
                                         const vlmn_npy *lg, vlmn_hook hook, bool masked, double tol)
{
    double worst = -1;
    const vlmn_model_info *in = vlmn_model_get_info(m);
    mfx_sink s = {.T = (int64_t)ids->count, .FF = in->n_ff, .n_layer = in->n_layer, .last_layer = -1};
    s.acts = calloc(gold->count, sizeof(float));
    const uint8_t *mask[64] = {0};
    uint8_t *mbuf = calloc(2 * (size_t)in->n_ff, 1);
    if (masked) {
        for (size_t i = 0; i < sizeof MFX_MASK0 / sizeof *MFX_MASK0; i++) mbuf[MFX_MASK0[i]] = 1;
        for (size_t i = 0; i < sizeof MFX_MASK1 / sizeof *MFX_MASK1; i++) mbuf[in->n_ff + MFX_MASK1[i]] = 1;
        mask[0] = mbuf;
        mask[1] = mbuf + in->n_ff;
    }
    int64_t nl = lg ? lg->shape[0] : 0;
    float *logits = lg ? calloc(lg->count, sizeof(float)) : NULL;
    vlmn_forward_opts o = {.capture = mfx_on_capture, .capture_user = &s, .hook = hook,
                           .neuron_mask = masked ? mask : NULL, .logits = logits, .n_logits = nl,
                           .n_tiles = n_tiles};
    vlmn_status st = vlmn_model_forward(m, ids->data, (int64_t)ids->count, image, &o);
    CHECK_MSG(st == VLMN_OK, "%s", vlmn_errmsg());
    CHECK_EQ_INT(s.calls, in->n_layer);
    CHECK_EQ_INT(s.bad, 0);
    const int64_t blk = s.T * s.FF;
    fprintf(stderr, "  %-5s %-7s %-26s", model, vlmn_precision_name(prec), gold_name);
    for (int l = 0; l < in->n_layer; l++) {
        double e = mfx_rel_err(s.acts + l * blk, (const float *)gold->data + l * blk, blk);
        fprintf(stderr, " L%d %.2e", l, e);
        CHECK_MSG(e <= tol, "%s %s layer %d: normwise error %.3e > %.0e", model, gold_name, l, e, tol);
        if (e > worst) worst = e;
    }
    if (lg) {
        double e = mfx_rel_err(logits, lg->data, (int64_t)lg->count);
        fprintf(stderr, " logits %.2e", e);
        CHECK_MSG(e <= tol, "%s logits: normwise error %.3e > %.0e", model, e, tol);
    }
    fputc('\n', stderr);
    free(logits);
    free(mbuf);
    free(s.acts);
    return worst;
}

/* The last error is one non-empty line. */
static inline bool mfx_one_line(void)
{
    const char *e = vlmn_errmsg();
    return e && *e && !strchr(e, '\n');
}

/* Writes b[0..n) to VLMN_TMP/NAME; its path (a rotating static buffer), NULL on failure. */
static inline const char *mfx_write_tmp(const char *name, const unsigned char *b, size_t n)
{
    const char *p = test_path(test_tmp_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    fwrite(b, 1, n, f);
    fclose(f);
    return p;
}

/* Offset just after the string `name` stored with its u64 length prefix in a GGUF file
 * (a metadata key or a tensor-info record's name), 0 when absent. */
static inline size_t mfx_find_str(const unsigned char *b, size_t n, const char *name)
{
    size_t ln = strlen(name);
    for (size_t i = 8; i + ln + 12 < n; i++) {
        uint64_t l;
        memcpy(&l, b + i - 8, 8);
        if (l == ln && !memcmp(b + i, name, ln)) return i + ln;
    }
    return 0;
}

/* The status of loading the pair (text, mmproj) on one thread in EXACT precision. */
static inline vlmn_status mfx_try_load(const char *t, const char *mm)
{
    vlmn_model *m = NULL;
    vlmn_model_params p = {.n_threads = 1, .precision = VLMN_PREC_EXACT};
    vlmn_status st = vlmn_model_load(t, mm, &p, &m);
    vlmn_model_free(m);
    return st;
}

#endif
