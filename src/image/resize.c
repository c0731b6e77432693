/* Bicubic resize matching PIL's Image.resize(size, Image.BICUBIC) on 8-bit RGB
 * (Pillow 9.4 libImaging/Resample.c semantics, re-implemented): per axis a table of
 * filter weights (a = -0.5, support 2 * max(1, scale)), normalised to sum 1 in double,
 * then rounded to 22-bit fixed point; horizontal pass first into a uint8 image, then
 * vertical; each output sample rounded (+0.5 ulp) and clipped to [0, 255].
 * An axis whose size does not change is not filtered at all (PIL skips that pass). */
#include "vlmn/image.h"
#include "core/alloc.h"

#include <math.h>
#include <string.h>

/* The double arithmetic below must round exactly like PIL's build (no FMA). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#define PREC_BITS 22 /* PIL: 32 - 8 bits of result - 2 bits of headroom */

static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* One axis: for each output index, the first input index (*lo), count (*n) and
 * ksize fixed-point weights. Returns ksize, 0 on allocation failure. */
struct axis {
    int ksize;
    int *lo, *n;
    int32_t *k; /* [out][ksize] */
};

static void axis_free(struct axis *a)
{
    vlmn_free(a->lo);
    vlmn_free(a->n);
    vlmn_free(a->k);
    memset(a, 0, sizeof *a);
}

static vlmn_status axis_init(struct axis *a, int in, int out)
{
    memset(a, 0, sizeof *a);
    double scale = (double)in / out;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * fscale;
    a->ksize = (int)ceil(support) * 2 + 1;
    double *w = vlmn_malloc((size_t)a->ksize * sizeof *w);
    a->lo = vlmn_malloc((size_t)out * sizeof *a->lo);
    a->n = vlmn_malloc((size_t)out * sizeof *a->n);
    a->k = vlmn_calloc((size_t)out * (size_t)a->ksize, sizeof *a->k);
    if (!w || !a->lo || !a->n || !a->k) {
        vlmn_free(w);
        axis_free(a);
        return vlmn_error(VLMN_E_NOMEM, "out of memory for resize coefficients");
    }
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale;
        double ss = 1.0 / fscale;
        /* Window [center - support, center + support) rounded to pixel edges; the
         * casts truncate toward zero exactly as PIL's (int) casts. */
        int lo = (int)(center - support + 0.5);
        if (lo < 0) lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > in) hi = in;
        int n = hi - lo;
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            w[i] = bicubic((i + lo - center + 0.5) * ss);
            sum += w[i];
        }
        int32_t *k = a->k + (size_t)o * (size_t)a->ksize;
        for (int i = 0; i < n; i++) {
            double v = sum != 0.0 ? w[i] / sum : w[i];
            k[i] = (int32_t)(v < 0 ? -0.5 + v * (1 << PREC_BITS) : 0.5 + v * (1 << PREC_BITS));
        }
        a->lo[o] = lo;
        a->n[o] = n;
    }
    vlmn_free(w);
    return VLMN_OK;
}

/* Fixed-point sum -> uint8: +half already in the sum, arithmetic shift (floor), clip. */
static inline uint8_t clip8(int64_t s)
{
    int64_t v = s >> PREC_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void pass_h(const uint8_t *src, int sw, uint8_t *dst, int dw, int h, const struct axis *a)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + (size_t)y * (size_t)sw * 3;
        uint8_t *d = dst + (size_t)y * (size_t)dw * 3;
        for (int x = 0; x < dw; x++) {
            const int32_t *k = a->k + (size_t)x * (size_t)a->ksize;
            const uint8_t *p = s + (size_t)a->lo[x] * 3;
            int64_t r = 1 << (PREC_BITS - 1), g = r, b = r;
            for (int i = 0; i < a->n[x]; i++) {
                r += (int64_t)p[3 * i] * k[i];
                g += (int64_t)p[3 * i + 1] * k[i];
                b += (int64_t)p[3 * i + 2] * k[i];
            }
            d[3 * x] = clip8(r);
            d[3 * x + 1] = clip8(g);
            d[3 * x + 2] = clip8(b);
        }
    }
}

static void pass_v(const uint8_t *src, int w, uint8_t *dst, int dh, const struct axis *a)
{
    size_t stride = (size_t)w * 3;
    for (int y = 0; y < dh; y++) {
        const int32_t *k = a->k + (size_t)y * (size_t)a->ksize;
        const uint8_t *s = src + (size_t)a->lo[y] * stride;
        uint8_t *d = dst + (size_t)y * stride;
        for (size_t x = 0; x < stride; x++) {
            int64_t v = 1 << (PREC_BITS - 1);
            for (int i = 0; i < a->n[y]; i++) v += (int64_t)s[(size_t)i * stride + x] * k[i];
            d[x] = clip8(v);
        }
    }
}

vlmn_status vlmn_img_resize_bicubic(const vlmn_image *in, int w, int h, vlmn_image **out)
{
    *out = NULL;
    vlmn_image *tmp = NULL, *res = NULL;
    struct axis ax = {0}, ay = {0};
    vlmn_status st;
    if (!in || in->w < 1 || in->h < 1)
        return vlmn_error(VLMN_E_ARG, "resize: empty input image");
    if ((st = vlmn_img_create(w, h, &res))) return vlmn_error_prefix(st, "resize");
    if (w == in->w && h == in->h) { /* PIL returns a copy */
        memcpy(res->rgb, in->rgb, (size_t)w * (size_t)h * 3);
        *out = res;
        return VLMN_OK;
    }
    const vlmn_image *src = in;
    if (w != in->w) {
        if ((st = axis_init(&ax, in->w, w))) goto fail;
        if (h == in->h) {
            pass_h(in->rgb, in->w, res->rgb, w, h, &ax);
            goto done;
        }
        if ((st = vlmn_img_create(w, in->h, &tmp))) goto fail;
        pass_h(in->rgb, in->w, tmp->rgb, w, in->h, &ax);
        src = tmp;
    }
    if ((st = axis_init(&ay, in->h, h))) goto fail;
    pass_v(src->rgb, w, res->rgb, h, &ay);
done:
    axis_free(&ax);
    axis_free(&ay);
    vlmn_img_free(tmp);
    *out = res;
    return VLMN_OK;
fail:
    axis_free(&ax);
    axis_free(&ay);
    vlmn_img_free(tmp);
    vlmn_img_free(res);
    return st;
}
