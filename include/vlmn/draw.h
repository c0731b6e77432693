/* Pictures of a neuron on a sample: the activation-modulated image (paper Fig. 3/13-20:
 * "the more transparent the image patch, the more activated this visual token is"),
 * the raw image (B.3 ablation), a JET overlay, and token heat as HTML and SVG. Output
 * goes to memory (the explainer sends PNGs as data: URLs, the browser serves them) or
 * to a file (atomically). Flow: trace store -> [draw] -> browse, explainer, papers.
 *
 * Modulated image, on the ORIGINAL image's geometry (the pad/crop undone through the
 * grid rectangle of vlmn_trace_grid): for every image-token position p of a grid,
 *     a_p = clamp(act_p / neuron_max, 0, 1)           (0 everywhere if neuron_max <= 0)
 * a(x, y) is a_p upsampled to the original pixels, nearest (the patch containing the
 * pixel centre) or bilinear (patch centres as samples, clamped at the borders), and
 *     pixel = round(a * image + (1 - a) * background)  per channel, background default
 *                                                      black (0, 0, 0)
 * JET: pixel = round((1 - alpha) * image + alpha * jet(a)), jet the MATLAB colormap
 * (blue at 0, red at 1), alpha default 0.5. Raw: the image unchanged. Pixels no grid
 * covers keep the image (modulated: a = 0 there, i.e. background). */
#ifndef VLMN_DRAW_H
#define VLMN_DRAW_H

#include "vlmn/vlmn.h"
#include "vlmn/image.h"
#include "vlmn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vlmn_draw_mode {
    VLMN_DRAW_MODULATED = 0,
    VLMN_DRAW_RAW = 1,
    VLMN_DRAW_JET = 2
} vlmn_draw_mode;

typedef enum vlmn_upsample {
    VLMN_UPSAMPLE_NEAREST = 0,
    VLMN_UPSAMPLE_BILINEAR = 1
} vlmn_upsample;

typedef struct vlmn_draw_opts {
    vlmn_draw_mode mode;
    vlmn_upsample upsample;
    uint8_t background[3];  /* modulated: colour where a = 0 ({0} = black) */
    float jet_alpha;        /* JET: weight of the colour map; <= 0 or > 1: 0.5 */
} vlmn_draw_opts;

/* "modulated" | "raw" | "jet", "nearest" | "bilinear" -> enum; VLMN_E_ARG otherwise. */
vlmn_status vlmn_draw_parse_mode(const char *s, vlmn_draw_mode *out);
vlmn_status vlmn_draw_parse_upsample(const char *s, vlmn_upsample *out);

/* Per-pixel a (in [0, 1]) of the original w x h image from one sample's activations
 * acts[n_tokens] (positions as in the grids): a[y * w + x]. vlmn_malloc'd. */
vlmn_status vlmn_draw_alpha(int w, int h, const vlmn_trace_grid *grids, int n_grids, const float *acts,
                            int64_t n_tokens, float neuron_max, vlmn_upsample up, float **out);

/* The picture as a new image of the original's size (vlmn_img_free). `img` is the
 * original image (vlmn_img_load of vlmn_trace_sample.image_path). */
vlmn_status vlmn_draw_image(const vlmn_image *img, const vlmn_trace_grid *grids, int n_grids, const float *acts,
                            int64_t n_tokens, float neuron_max, const vlmn_draw_opts *o, vlmn_image **out);

/* 8-bit RGB PNG of an image in memory (*png vlmn_malloc'd, vlmn_free). */
vlmn_status vlmn_draw_png(const vlmn_image *im, uint8_t **png, size_t *len);

/* Token heat: every position's token string, HTML-escaped (SVG: XML-escaped), on a
 * green background of intensity a = clamp(act / neuron_max, 0, 1) (rgba(0, 160, 0, a)),
 * the activation in a title attribute. The image positions are one "<image>" box
 * shaded by their maximum. Positions with modality OTHER are shown greyed unless
 * all_tokens. HTML: a <div class="vlmn-heat"> fragment (inline styles, no script). */
typedef struct vlmn_heat_opts {
    bool all_tokens;        /* also shade prompt positions (default: greyed, no heat) */
    int svg_width;          /* SVG: wrap width in px (<= 0: 800) */
} vlmn_heat_opts;

vlmn_status vlmn_draw_heat_html(const vlmn_trace_sample *s, const float *acts, float neuron_max,
                                const vlmn_heat_opts *o, char **out, size_t *len);
vlmn_status vlmn_draw_heat_svg(const vlmn_trace_sample *s, const float *acts, float neuron_max,
                               const vlmn_heat_opts *o, char **out, size_t *len);

/* `data:image/png;base64,...` for a PNG (NUL-terminated, vlmn_malloc'd). */
vlmn_status vlmn_draw_data_url(const uint8_t *png, size_t len, char **out);

/* Write bytes to `path` atomically (PATH.tmp, fsync, rename). */
vlmn_status vlmn_draw_save(const char *path, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
