/* Weights and hyperparameters from GGUF files for the engine's parts: every tensor
 * looked up with its exact shape and a supported type, every integer range-checked
 * (untrusted input), one-line errors naming the file and the tensor or key. Also the
 * small shared helpers of the parts (scratch buffers, clocks, GEMM by precision,
 * row-parallel vision ops). */
#include "model/engine.h"

#include "core/alloc.h"
#include "model/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void shape_str(char *buf, size_t cap, const uint64_t *ne, int nd)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < nd && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? ", " : "", (unsigned long long)ne[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Find `name` and check it is supported and has exactly the shape `ne` (ne[0]
 * fastest; missing trailing dims are 1). */
vlmn_status eng_get_tensor(const vlmn_gguf *g, const char *name, int nd,
                              const uint64_t *ne, const vlmn_gguf_tensor **out)
{
    const char *path = vlmn_gguf_path(g);
    const vlmn_gguf_tensor *t = vlmn_gguf_find_tensor(g, name);
    if (!t) return vlmn_error(VLMN_E_NOTFOUND, "%s: tensor %s: missing", path, name);
    if (!vlmn_type_supported(t->type)) {
        const char *tn = vlmn_type_name(t->type);
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor %s: type %s not supported", path, name,
                          tn ? tn : "(unknown)");
    }
    bool ok = true;
    for (int i = 0; i < VLMN_GGUF_MAX_DIMS; i++) {
        uint64_t want = i < nd ? ne[i] : 1;
        if (t->ne[i] != want) ok = false;
    }
    if (!ok) {
        char a[96], b[96];
        shape_str(a, sizeof a, t->ne, (int)t->n_dims);
        shape_str(b, sizeof b, ne, nd);
        return vlmn_error(VLMN_E_MISMATCH, "%s: tensor %s: shape %s, expected %s", path, name, a, b);
    }
    *out = t;
    return VLMN_OK;
}

vlmn_status eng_load_matrix(const vlmn_gguf *g, const char *name, int64_t rows, int64_t cols,
                               vlmn_matrix *m)
{
    const vlmn_gguf_tensor *t;
    uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows};
    vlmn_status st = eng_get_tensor(g, name, 2, ne, &t);
    if (st) return st;
    uint64_t rb;
    if (vlmn_type_row_bytes(t->type, (uint64_t)cols, &rb))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor %s: %lld columns is not a multiple of the %s block size",
                          vlmn_gguf_path(g), name, (long long)cols, vlmn_type_name(t->type));
    st = vlmn_matrix_init(m, t->type, rows, cols, t->data);
    if (st) return vlmn_error_prefix(st, "%s: tensor %s", vlmn_gguf_path(g), name);
    return VLMN_OK;
}

/* Dequantise a whole tensor of shape ne into a new f32 buffer. */
vlmn_status eng_load_f32(const vlmn_gguf *g, const char *name, int nd, const uint64_t *ne,
                            float **out)
{
    const vlmn_gguf_tensor *t;
    vlmn_status st = eng_get_tensor(g, name, nd, ne, &t);
    if (st) return st;
    uint64_t n = 1;
    for (int i = 0; i < nd; i++)
        if (!vlmn_mul_ok(n, ne[i], &n)) return vlmn_error(VLMN_E_RANGE, "%s: tensor %s: too large", vlmn_gguf_path(g), name);
    uint64_t bv = vlmn_type_block_values(t->type);
    if (bv == 0 || n % bv)
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: tensor %s: %llu values is not a multiple of the %s block size",
                          vlmn_gguf_path(g), name, (unsigned long long)n, vlmn_type_name(t->type));
    float *buf = vlmn_malloc(n * sizeof(float));
    if (!buf) return vlmn_error(VLMN_E_NOMEM, "%s: tensor %s: out of memory", vlmn_gguf_path(g), name);
    st = vlmn_dequant(t->type, t->data, buf, (int64_t)n);
    if (st) {
        vlmn_free(buf);
        return vlmn_error_prefix(st, "%s: tensor %s", vlmn_gguf_path(g), name);
    }
    *out = buf;
    return VLMN_OK;
}

vlmn_status eng_load_vec(const vlmn_gguf *g, const char *name, int64_t n, float **out)
{
    uint64_t ne[1] = {(uint64_t)n};
    return eng_load_f32(g, name, 1, ne, out);
}

/* Integer hyperparameter in [lo, hi]. */
vlmn_status eng_get_int(const vlmn_gguf *g, const char *key, long lo, long hi, int *out)
{
    uint64_t v;
    vlmn_status st = vlmn_gguf_get_u64(g, key, &v);
    if (st) return st;
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return vlmn_error(VLMN_E_RANGE, "%s: key %s: value %llu outside [%ld, %ld]", vlmn_gguf_path(g),
                          key, (unsigned long long)v, lo, hi);
    *out = (int)v;
    return VLMN_OK;
}

vlmn_status eng_get_float(const vlmn_gguf *g, const char *key, float dflt, float lo, float hi, float *out)
{
    if (vlmn_gguf_find_key(g, key) < 0) {
        *out = dflt;
        return VLMN_OK;
    }
    float v;
    vlmn_status st = vlmn_gguf_get_f32(g, key, &v);
    if (st) return st;
    if (!(v >= lo && v <= hi))
        return vlmn_error(VLMN_E_RANGE, "%s: key %s: value %g outside [%g, %g]", vlmn_gguf_path(g), key,
                          (double)v, (double)lo, (double)hi);
    *out = v;
    return VLMN_OK;
}

vlmn_status eng_expect_str(const vlmn_gguf *g, const char *key, const char *want, bool required)
{
    const char *s;
    if (!required && vlmn_gguf_find_key(g, key) < 0) return VLMN_OK;
    vlmn_status st = vlmn_gguf_get_str(g, key, &s);
    if (st) return st;
    if (strcmp(s, want))
        return vlmn_error(VLMN_E_UNSUPPORTED, "%s: key %s is '%s', expected '%s'", vlmn_gguf_path(g), key, s, want);
    return VLMN_OK;
}

/* Matrices with the same type and width whose rows follow each other in the mapping
 * (as make-model writes q,k,v and gate,up; llama.cpp's converter writes gate,up so)
 * are one matrix with the rows stacked: one GEMM computes all outputs side by side
 * and packs the activations once. *ok = false (and nothing built) otherwise. */
vlmn_status eng_fuse_rows(const vlmn_matrix *const *ms, int n, vlmn_matrix *out, bool *ok)
{
    int64_t rows = 0;
    *ok = false;
    for (int i = 0; i < n; i++) {
        if (ms[i]->type != ms[0]->type || ms[i]->cols != ms[0]->cols || ms[i]->packed) return VLMN_OK;
        if (i && (const uint8_t *)ms[i - 1]->data + (uint64_t)ms[i - 1]->rows * ms[i - 1]->row_bytes !=
                     (const uint8_t *)ms[i]->data)
            return VLMN_OK;
        rows += ms[i]->rows;
    }
    vlmn_status st = vlmn_matrix_init(out, ms[0]->type, rows, ms[0]->cols, ms[0]->data);
    if (st) return st;
    *ok = true;
    return VLMN_OK;
}

float *eng_scratch(int64_t a, int64_t b, bool *ok)
{
    uint64_t n;
    if (!vlmn_mul_ok((uint64_t)a, (uint64_t)b, &n) || !vlmn_mul_ok(n, sizeof(float), &n)) {
        *ok = false;
        return NULL;
    }
    float *p = vlmn_malloc_aligned(n ? n : 64);
    if (!p) *ok = false;
    return p;
}

double eng_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Adds the seconds since *t0 to *acc and restarts the clock. */
void eng_lap(double *t0, double *acc)
{
    double t = eng_now();
    *acc += t - *t0;
    *t0 = t;
}

void eng_gemm(const eng_ctx *c, const vlmn_matrix *W, const float *A, int64_t M, int64_t lda, float *C,
              int64_t ldc, bool acc)
{
    vlmn_gemm(c->pool, c->prec, W, A, M, lda, C, ldc, acc);
}

/* The vision tower and projector run FASTEST as FAST: they are ~7% of a sample's
 * time, and int8 activations there would add their error to every image position. */
void eng_vgemm(const eng_ctx *c, const vlmn_matrix *W, const float *A, int64_t M, int64_t lda, float *C,
               int64_t ldc, bool acc)
{
    vlmn_precision p = c->prec == VLMN_PREC_FASTEST ? VLMN_PREC_FAST : c->prec;
    vlmn_gemm(c->pool, p, W, A, M, lda, C, ldc, acc);
}

/* Row-parallel activation / bias / LayerNorm (each row computed as by the serial op:
 * results independent of the thread count). */
typedef struct vrows {
    int op;
    const float *x;
    float *y;
    int64_t rows, n;
    const float *w, *b;
    float eps;
    bool vec;
} vrows;

static void vrows_run(void *ctx, int ith, int nth)
{
    const vrows *o = ctx;
    int64_t r0 = o->rows * ith / nth, r1 = o->rows * (ith + 1) / nth;
    float *y = o->y + r0 * o->n;
    switch (o->op) {
    case EOP_QUICK_GELU:
        if (o->vec)
            op_quick_gelu_avx512(y, (r1 - r0) * o->n);
        else
            op_quick_gelu(y, (r1 - r0) * o->n);
        break;
    case EOP_GELU_ERF: op_gelu_erf(y, (r1 - r0) * o->n); break;
    case EOP_BIAS: op_add_bias(y, r1 - r0, o->n, o->n, o->b); break;
    case EOP_LS_ADD:
        for (int64_t r = r0; r < r1; r++) {
            const float *x = o->x + r * o->n;
            float *yr = o->y + r * o->n;
            for (int64_t j = 0; j < o->n; j++) yr[j] += x[j] * o->w[j];
        }
        break;
    default: op_layernorm(o->x + r0 * o->n, y, r1 - r0, o->n, o->n, o->w, o->b, o->eps); break;
    }
}

void eng_rows(const eng_ctx *c, int op, const float *x, float *y, int64_t rows, int64_t n, const float *w,
              const float *b, float eps)
{
    vrows o = {op, x, y, rows, n, w, b, eps, c->prec != VLMN_PREC_EXACT && vlmn_isa_active() == VLMN_ISA_AVX512};
    vlmn_pool_run(c->pool, vrows_run, &o);
}
