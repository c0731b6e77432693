/* Visual simulation by a segmenter (paper A.2: Grounded SAM 2): the explanation is the
 * text prompt, the masks the segmenter returns for a sample's image become simulated
 * activations on the image-token grid (10 inside, 0 outside, or 10 x the covered
 * fraction), mapped through the preprocessing geometry (pad/crop undone by the grid
 * rectangle of vlmn_trace_grid). The wire format is vlmn's segmenter protocol, version
 * 1 (docs/segmenter.md); requests go through the vlmn_llm client (concurrency, retries,
 * cache). Masks are COCO RLE (compressed string or uncompressed counts) or PNG.
 * Flow: explanation + sample image -> [this] -> llm client -> simulations table. */
#ifndef VLMN_SEGMENT_H
#define VLMN_SEGMENT_H

#include "vlmn/vlmn.h"
#include "vlmn/explain.h"
#include "vlmn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VLMN_SEG_VERSION 1
#define VLMN_SEG_PATH "/segment"      /* POSTed to --segmenter-url + this */
#define VLMN_SEG_MAX_SIDE 16384       /* mask width / height limit */
#define VLMN_SEG_MAX_PIXELS (1u << 26) /* mask width x height limit */
#define VLMN_SEG_MAX_MASKS 1024       /* masks per reply */

/* ---- COCO run-length encoding ----
 * A mask of h rows and w columns, counted in COLUMN-major order (as pycocotools: pixel
 * (x, y) is element x * h + y), alternating runs of 0 and 1 starting with 0. Masks in
 * memory here are ROW-major bytes m[y * w + x] in {0, 1}. */

/* The compressed string form (pycocotools rleToString: 6-bit characters from '0', run
 * k > 2 stored as the difference to run k - 2). VLMN_E_FORMAT with a message for a
 * character out of range, an over-long number, a negative run or runs that do not sum
 * to h * w. */
vlmn_status vlmn_rle_decode_string(const char *s, size_t len, int h, int w, uint8_t *mask);
/* The uncompressed form: runs[n] (non-negative, summing to h * w). */
vlmn_status vlmn_rle_decode_counts(const int64_t *runs, size_t n, int h, int w, uint8_t *mask);
/* The compressed string of a row-major mask (vlmn_malloc'd, NUL-terminated). */
vlmn_status vlmn_rle_encode_string(const uint8_t *mask, int h, int w, char **out);

/* ---- the protocol ---- */

/* Grounding DINO prompt hygiene: ASCII lowercase, whitespace runs to one space, trimmed,
 * ending with "." (added when missing). vlmn_malloc'd; an empty explanation is an error. */
vlmn_status vlmn_seg_prompt(const char *explanation, char **prompt);

/* Request body {"version":1,"image":BASE64,"image_format":"png","prompt":...,
 * "box_threshold":..,"text_threshold":..} (keys in this order; vlmn_malloc'd). */
vlmn_status vlmn_seg_body(const uint8_t *png, size_t png_len, const char *prompt, double box_threshold,
                          double text_threshold, char **json);

/* Parses a reply {"version":1,"width":W,"height":H,"masks":[{"rle":{"size":[H,W],
 * "counts":STRING|[...]}|"png":BASE64, "score":S, "label":L}, ...]} into the union of
 * its masks (row-major, *mask vlmn_malloc'd, W x H). exp_w / exp_h > 0: the size the
 * image has; a reply or a mask of another size is VLMN_E_MISMATCH. No masks: an
 * all-zero union (the segmenter found nothing). */
vlmn_status vlmn_seg_parse(const char *body, size_t len, int exp_w, int exp_h, uint8_t **mask, int *w, int *h,
                           int *n_masks);

/* How a patch counts as covered. */
typedef enum vlmn_seg_rule {
    VLMN_SEG_HALF = 0,      /* 10 when at least half of the patch is inside a mask, else 0 */
    VLMN_SEG_FRACTION = 1,  /* 10 x the covered fraction of the patch */
} vlmn_seg_rule;
vlmn_status vlmn_seg_parse_rule(const char *s, vlmn_seg_rule *out); /* "half" | "fraction" */
const char *vlmn_seg_rule_name(vlmn_seg_rule r);

/* Simulated activations out[g->rows * g->cols] (row-major, grid order) of a w x h
 * mask over grid g: patch (r, c) is the rectangle [x0 + c pw, x0 + (c+1) pw) x
 * [y0 + r ph, ...) of the original image (pw = (x1 - x0) / cols), its covered fraction
 * the area of mask pixels (unit squares) inside it over its area; pad outside the image
 * is never covered. */
void vlmn_seg_to_grid(const uint8_t *mask, int w, int h, const vlmn_trace_grid *g, vlmn_seg_rule rule, float *out);

typedef struct vlmn_segsim_opts {
    double box_threshold;    /* default 0.35 (Grounded SAM 2's demo) */
    double text_threshold;   /* default 0.25 */
    vlmn_seg_rule rule;      /* default VLMN_SEG_HALF */
} vlmn_segsim_opts;
void vlmn_segsim_opts_default(vlmn_segsim_opts *o);

/* The segmenter as a remote visual simulator (simulations.mode "segmenter"): one
 * request per (sample image, explanation); the reply is checked against the sample's
 * image size before it counts as answered, so a malformed or wrong-size reply is
 * retried and, when it persists, stored as a failed item with its reason. */
vlmn_status vlmn_segsim_create(const vlmn_segsim_opts *o, vlmn_simulator *out);

#ifdef __cplusplus
}
#endif
#endif
