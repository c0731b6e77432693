/* LLaVA-1.5 image preprocessing: RGB image -> the [3, S, S] float32 vision input.
 *  pad:  LLaVA's expand2square (llava/mm_utils.py) with background
 *        tuple(int(x * 255) for x in image_mean), then CLIPImageProcessor (resize to
 *        S x S, centre crop a no-op);
 *  crop: HF CLIPImageProcessor alone: shortest edge -> S (long = int(S * long / short),
 *        transformers get_resize_output_image_size), centre crop S x S with offsets
 *        (dim - S) // 2 (transformers image_transforms.center_crop).
 * Then rescale 1/255 (in float64, stored float32) and (x - mean) / std in float32. */
#include "vlmn/image.h"
#include "core/alloc.h"

#include <math.h>
#include <string.h>

vlmn_status vlmn_img_parse_mode(const char *s, vlmn_img_mode *mode)
{
    if (s && !strcmp(s, "pad")) *mode = VLMN_IMG_PAD;
    else if (s && !strcmp(s, "crop")) *mode = VLMN_IMG_CROP;
    else return vlmn_error(VLMN_E_ARG, "unknown preprocessing mode '%s' (pad or crop)", s ? s : "");
    return VLMN_OK;
}

const char *vlmn_img_mode_name(vlmn_img_mode mode)
{
    return mode == VLMN_IMG_PAD ? "pad" : mode == VLMN_IMG_CROP ? "crop" : "?";
}

/* LLaVA expand2square: centred on a side x side canvas of the background colour. */
static vlmn_status expand_to_square(const vlmn_image *in, const uint8_t bg[3], vlmn_image **out)
{
    int side = in->w > in->h ? in->w : in->h;
    vlmn_image *sq;
    vlmn_status st = vlmn_img_create(side, side, &sq);
    if (st) return vlmn_error_prefix(st, "pad to square");
    size_t n = (size_t)side * (size_t)side;
    for (size_t i = 0; i < n; i++) memcpy(sq->rgb + 3 * i, bg, 3);
    int x0 = (side - in->w) / 2, y0 = (side - in->h) / 2;
    for (int y = 0; y < in->h; y++)
        memcpy(sq->rgb + ((size_t)(y + y0) * (size_t)side + (size_t)x0) * 3,
               in->rgb + (size_t)y * (size_t)in->w * 3, (size_t)in->w * 3);
    *out = sq;
    return VLMN_OK;
}

/* CLIPImageProcessor resize {"shortest_edge": S}: aspect kept, the long side
 * truncated as Python's int(S * long / short) (true division in double). False if
 * the result would exceed the pixel limit. */
static bool shortest_edge_size(int w, int h, int S, int *ow, int *oh)
{
    int shortside = w <= h ? w : h, longside = w <= h ? h : w;
    double newlong = floor((double)S * (double)longside / (double)shortside);
    if (newlong * S > (double)VLMN_IMG_MAX_PIXELS) return false;
    *ow = w <= h ? S : (int)newlong;
    *oh = w <= h ? (int)newlong : S;
    return true;
}

vlmn_status vlmn_img_prepare(const vlmn_image *in, vlmn_img_mode mode, int S,
                             const float mean[3], vlmn_image **out)
{
    *out = NULL;
    if (!in || in->w < 1 || in->h < 1) return vlmn_error(VLMN_E_ARG, "preprocess: empty image");
    if (S < 1 || S > 8192) return vlmn_error(VLMN_E_ARG, "preprocess: image size %d out of range", S);
    vlmn_status st;
    vlmn_image *sq = NULL, *rs = NULL;
    if (mode == VLMN_IMG_PAD) {
        const vlmn_image *src = in;
        if (in->w != in->h) {
            uint8_t bg[3];
            for (int c = 0; c < 3; c++) {
                double v = (double)mean[c] * 255.0;
                if (!(v >= 0.0 && v < 256.0))
                    return vlmn_error(VLMN_E_RANGE, "preprocess: image_mean[%d] = %g not in [0, 1]",
                                      c, (double)mean[c]);
                bg[c] = (uint8_t)(int)v; /* Python int(): truncation */
            }
            if ((st = expand_to_square(in, bg, &sq))) return st;
            src = sq;
        }
        st = vlmn_img_resize_bicubic(src, S, S, out);
        vlmn_img_free(sq);
        return st;
    }
    if (mode != VLMN_IMG_CROP) return vlmn_error(VLMN_E_ARG, "preprocess: bad mode %d", (int)mode);
    int rw, rh;
    if (!shortest_edge_size(in->w, in->h, S, &rw, &rh))
        return vlmn_error(VLMN_E_RANGE, "preprocess: a %dx%d image resized to shortest edge %d "
                          "exceeds %llu pixels", in->w, in->h, S,
                          (unsigned long long)VLMN_IMG_MAX_PIXELS);
    if ((st = vlmn_img_resize_bicubic(in, rw, rh, &rs))) return st;
    if (rw == S && rh == S) {
        *out = rs;
        return VLMN_OK;
    }
    if ((st = vlmn_img_create(S, S, &sq))) {
        vlmn_img_free(rs);
        return st;
    }
    /* Both sides are >= S here, so transformers never pads. */
    int top = (rh - S) / 2, left = (rw - S) / 2;
    for (int y = 0; y < S; y++)
        memcpy(sq->rgb + (size_t)y * (size_t)S * 3,
               rs->rgb + ((size_t)(y + top) * (size_t)rw + (size_t)left) * 3, (size_t)S * 3);
    vlmn_img_free(rs);
    *out = sq;
    return VLMN_OK;
}

void vlmn_img_normalize(const vlmn_image *sq, const float mean[3], const float std[3], float *out)
{
    VLMN_ASSERT(sq && sq->w == sq->h);
    size_t n = (size_t)sq->w * (size_t)sq->h;
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * n;
        for (size_t i = 0; i < n; i++) {
            /* transformers rescale: image.astype(float64) * (1/255) -> float32;
             * normalize: (x - mean) / std with float32 mean/std. */
            float x = (float)((double)sq->rgb[3 * i + (size_t)c] * (1.0 / 255.0));
            o[i] = (x - mean[c]) / std[c];
        }
    }
}

vlmn_status vlmn_img_preprocess(const vlmn_image *in, vlmn_img_mode mode, int S,
                                const float mean[3], const float std[3], float *out)
{
    for (int c = 0; c < 3; c++)
        if (!(std[c] > 0.0f))
            return vlmn_error(VLMN_E_RANGE, "preprocess: image_std[%d] = %g must be > 0", c,
                              (double)std[c]);
    vlmn_image *sq;
    vlmn_status st = vlmn_img_prepare(in, mode, S, mean, &sq);
    if (st) return st;
    vlmn_img_normalize(sq, mean, std, out);
    vlmn_img_free(sq);
    return VLMN_OK;
}
