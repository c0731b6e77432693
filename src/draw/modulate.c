/* Activation-modulated images (include/vlmn/draw.h): per image-token activations ->
 * per-pixel a on the original image (nearest or bilinear over the patch grid, the
 * pad/crop undone through the grid rectangle) -> modulated / JET / raw picture. */
#include "vlmn/draw.h"
#include "core/alloc.h"

#include <math.h>
#include <string.h>

vlmn_status vlmn_draw_parse_mode(const char *s, vlmn_draw_mode *out)
{
    if (s && !strcmp(s, "modulated")) *out = VLMN_DRAW_MODULATED;
    else if (s && !strcmp(s, "raw")) *out = VLMN_DRAW_RAW;
    else if (s && !strcmp(s, "jet")) *out = VLMN_DRAW_JET;
    else return vlmn_error(VLMN_E_ARG, "unknown drawing mode '%s' (modulated, raw, jet)", s ? s : "");
    return VLMN_OK;
}

vlmn_status vlmn_draw_parse_upsample(const char *s, vlmn_upsample *out)
{
    if (s && !strcmp(s, "nearest")) *out = VLMN_UPSAMPLE_NEAREST;
    else if (s && !strcmp(s, "bilinear")) *out = VLMN_UPSAMPLE_BILINEAR;
    else return vlmn_error(VLMN_E_ARG, "unknown upsampling '%s' (nearest, bilinear)", s ? s : "");
    return VLMN_OK;
}

static float patch_a(const float *acts, int64_t pos, float neuron_max)
{
    if (!(neuron_max > 0)) return 0;
    float a = acts[pos] / neuron_max;
    if (!(a > 0)) return 0; /* negative and NaN */
    return a < 1 ? a : 1;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

vlmn_status vlmn_draw_alpha(int w, int h, const vlmn_trace_grid *grids, int n_grids, const float *acts,
                            int64_t n_tokens, float neuron_max, vlmn_upsample up, float **out)
{
    *out = NULL;
    if (w < 1 || h < 1 || (uint64_t)w * (uint64_t)h > VLMN_IMG_MAX_PIXELS)
        return vlmn_error(VLMN_E_RANGE, "draw: image %d x %d out of range", w, h);
    if (n_grids < 0 || n_grids > VLMN_TRACE_MAX_GRIDS) return vlmn_error(VLMN_E_RANGE, "draw: %d grids", n_grids);
    for (int g = 0; g < n_grids; g++) {
        const vlmn_trace_grid *G = &grids[g];
        if (G->rows < 1 || G->cols < 1 || G->first_pos < 0 ||
            G->first_pos + (int64_t)G->rows * G->cols > n_tokens || !(G->x1 > G->x0) || !(G->y1 > G->y0))
            return vlmn_error(VLMN_E_ARG, "draw: grid %d does not fit the sample's %lld positions", g, (long long)n_tokens);
    }
    float *a = vlmn_calloc((size_t)w * (size_t)h, sizeof *a);
    if (!a) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double cx = x + 0.5, cy = y + 0.5;
            for (int g = 0; g < n_grids; g++) {
                const vlmn_trace_grid *G = &grids[g];
                if (cx < G->x0 || cx >= G->x1 || cy < G->y0 || cy >= G->y1) continue;
                /* grid coordinates: patch c spans [c, c+1) */
                double u = (cx - G->x0) / (G->x1 - G->x0) * G->cols, v = (cy - G->y0) / (G->y1 - G->y0) * G->rows;
                const float *A = acts + G->first_pos;
                float val;
                if (up == VLMN_UPSAMPLE_NEAREST) {
                    int c = clampi((int)floor(u), 0, G->cols - 1), r = clampi((int)floor(v), 0, G->rows - 1);
                    val = patch_a(A, (int64_t)r * G->cols + c, neuron_max);
                } else {
                    /* patch centres at c + 0.5 are the samples; clamped at the borders */
                    double fu = u - 0.5, fv = v - 0.5;
                    int c0 = (int)floor(fu), r0 = (int)floor(fv);
                    double tu = fu - c0, tv = fv - r0;
                    int c1 = clampi(c0 + 1, 0, G->cols - 1), r1 = clampi(r0 + 1, 0, G->rows - 1);
                    c0 = clampi(c0, 0, G->cols - 1);
                    r0 = clampi(r0, 0, G->rows - 1);
                    double a00 = patch_a(A, (int64_t)r0 * G->cols + c0, neuron_max),
                           a01 = patch_a(A, (int64_t)r0 * G->cols + c1, neuron_max),
                           a10 = patch_a(A, (int64_t)r1 * G->cols + c0, neuron_max),
                           a11 = patch_a(A, (int64_t)r1 * G->cols + c1, neuron_max);
                    val = (float)((1 - tv) * ((1 - tu) * a00 + tu * a01) + tv * ((1 - tu) * a10 + tu * a11));
                }
                a[(size_t)y * w + x] = val;
                break; /* the first grid covering the pixel */
            }
        }
    *out = a;
    return VLMN_OK;
}

static uint8_t u8(double v)
{
    v = floor(v + 0.5);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static double jet(double a, int ch)
{
    /* MATLAB jet: red, green, blue ramps centred at 3/4, 1/2, 1/4 */
    double c = ch == 0 ? 3 : ch == 1 ? 2 : 1, v = 1.5 - fabs(4 * a - c);
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

vlmn_status vlmn_draw_image(const vlmn_image *img, const vlmn_trace_grid *grids, int n_grids, const float *acts,
                            int64_t n_tokens, float neuron_max, const vlmn_draw_opts *o, vlmn_image **out)
{
    *out = NULL;
    static const vlmn_draw_opts defaults = {0};
    if (!o) o = &defaults;
    if (!img || !img->rgb) return vlmn_error(VLMN_E_ARG, "draw: no image");
    vlmn_image *r;
    vlmn_status st = vlmn_img_create(img->w, img->h, &r);
    if (st) return st;
    size_t n = (size_t)img->w * (size_t)img->h;
    if (o->mode == VLMN_DRAW_RAW) {
        memcpy(r->rgb, img->rgb, 3 * n);
        *out = r;
        return VLMN_OK;
    }
    float *a;
    if ((st = vlmn_draw_alpha(img->w, img->h, grids, n_grids, acts, n_tokens, neuron_max, o->upsample, &a))) {
        vlmn_img_free(r);
        return st;
    }
    double alpha = o->jet_alpha > 0 && o->jet_alpha <= 1 ? o->jet_alpha : 0.5;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            double im = img->rgb[3 * i + c];
            r->rgb[3 * i + c] = o->mode == VLMN_DRAW_JET ? u8((1 - alpha) * im + alpha * 255.0 * jet(a[i], c))
                                                          : u8(a[i] * im + (1 - a[i]) * o->background[c]);
        }
    vlmn_free(a);
    *out = r;
    return VLMN_OK;
}
