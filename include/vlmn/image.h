/* vlmn: image input. Decodes JPEG/PNG into 8-bit RGB exactly as PIL's
 * Image.open(path).convert('RGB') does (Debian Pillow 9.4 + libjpeg-turbo 2.1 + libpng 1.6),
 * resizes like PIL's Image.resize(..., BICUBIC) and turns an image into LLaVA-1.5's
 * vision input [3 x S x S] float32 (docs/image.md). Sits left of the model in the flow:
 * dataset -> image -> model forward. */
#ifndef VLMN_IMAGE_H
#define VLMN_IMAGE_H

#include "vlmn/vlmn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest image decoded, checked from the header before any pixel buffer is
 * allocated (PIL itself refuses > 2 * 89478485 pixels; we are stricter). */
#define VLMN_IMG_MAX_PIXELS ((uint64_t)64 << 20)
/* Progressive JPEGs with more scans than this are rejected (scan-flood DoS). */
#define VLMN_IMG_MAX_JPEG_SCANS 500
/* Largest ancillary PNG chunk libpng may buffer (iCCP, zTXt, ...). */
#define VLMN_IMG_MAX_PNG_CHUNK ((size_t)8 << 20)
/* Largest image file read by vlmn_img_load. */
#define VLMN_IMG_MAX_FILE_BYTES ((uint64_t)512 << 20)

/* An 8-bit RGB image, interleaved, row-major, no padding: rgb[(y * w + x) * 3 + c].
 * Owned by the caller; free with vlmn_img_free. */
typedef struct vlmn_image {
    int w, h;
    uint8_t *rgb; /* [h][w][3] */
} vlmn_image;

/* A new w x h image filled with zeros (w, h >= 1, w * h <= VLMN_IMG_MAX_PIXELS). */
vlmn_status vlmn_img_create(int w, int h, vlmn_image **out);
void vlmn_img_free(vlmn_image *im);

/* Decode a JPEG or PNG file (format from the magic bytes, never the extension).
 * Errors: VLMN_E_IO (cannot read), VLMN_E_FORMAT (corrupt/truncated/empty),
 * VLMN_E_UNSUPPORTED (other formats), VLMN_E_RANGE (too large); message "PATH: problem". */
vlmn_status vlmn_img_load(const char *path, vlmn_image **out);
/* The same from bytes in memory; `name` is used in messages. */
vlmn_status vlmn_img_decode_memory(const void *buf, size_t len, const char *name,
                                   vlmn_image **out);
/* With a smaller pixel limit (e.g. for fuzzing); max_pixels <= VLMN_IMG_MAX_PIXELS. */
vlmn_status vlmn_img_decode_memory_limit(const void *buf, size_t len, const char *name,
                                         uint64_t max_pixels, vlmn_image **out);

/* Decoder options. Defaults ({0}): VLMN_IMG_MAX_PIXELS, lenient. */
typedef struct vlmn_img_decode_opts {
    uint64_t max_pixels; /* 0 = VLMN_IMG_MAX_PIXELS; larger values are capped to it */
    /* false (default): like PIL, libjpeg/libpng warnings about corrupt but decodable
     * data are ignored and the image decodes to PIL's pixels. true: any such warning is
     * an error (VLMN_E_FORMAT, "PATH: JPEG: corrupt data: ..."). */
    bool strict;
} vlmn_img_decode_opts;
vlmn_status vlmn_img_decode_memory_opts(const void *buf, size_t len, const char *name,
                                        const vlmn_img_decode_opts *opts, vlmn_image **out);

/* Resize to w x h like PIL Image.resize((w, h), Image.BICUBIC) on an RGB image:
 * separable, horizontal pass first, each pass rounded and clipped to uint8, a = -0.5,
 * support 2 * max(1, in/out), PIL's 22-bit fixed-point coefficients. */
vlmn_status vlmn_img_resize_bicubic(const vlmn_image *in, int w, int h, vlmn_image **out);

typedef enum vlmn_img_mode {
    VLMN_IMG_PAD = 0, /* LLaVA-1.5 expand2square with the mean colour, then resize */
    VLMN_IMG_CROP = 1 /* HF CLIPImageProcessor: shortest edge to S, centre crop */
} vlmn_img_mode;

/* "pad" / "crop" -> mode; VLMN_E_ARG otherwise. */
vlmn_status vlmn_img_parse_mode(const char *s, vlmn_img_mode *mode);
const char *vlmn_img_mode_name(vlmn_img_mode mode);

/* The S x S uint8 RGB image the model sees, before normalisation. `mean` (the
 * processor's image_mean, in [0, 1]) gives the pad colour int(mean * 255). */
vlmn_status vlmn_img_prepare(const vlmn_image *in, vlmn_img_mode mode, int S,
                             const float mean[3], vlmn_image **out);

/* x / 255 then (x - mean) / std per channel, planar out[c * S * S + y * S + x]
 * (float32 arithmetic as transformers' rescale + normalize). `sq` must be square. */
void vlmn_img_normalize(const vlmn_image *sq, const float mean[3], const float std[3],
                        float *out);

/* prepare + normalize: out holds 3 * S * S floats. */
vlmn_status vlmn_img_preprocess(const vlmn_image *in, vlmn_img_mode mode, int S,
                                const float mean[3], const float std[3], float *out);

/* ---- InternVL dynamic tiling (src/image/tiles.c, docs/image.md) ---- */
#define VLMN_IMG_MAX_TILES 64
/* The grid InternVL's find_closest_aspect_ratio picks for a w x h image among the
 * cols x rows grids with min_num <= cols * rows <= max_num (model card default 1..12). */
vlmn_status vlmn_img_tile_grid(int w, int h, int S, int min_num, int max_num, int *cols, int *rows);
/* dynamic_preprocess(image, min_num, max_num, S, use_thumbnail) + ToTensor + Normalize:
 * *out (vlmn_malloc'd, caller frees) = *n_tiles planar [3 x S x S] tiles, row by row
 * over the grid, then the thumbnail when thumbnail and the grid has > 1 tile. */
vlmn_status vlmn_img_tiles(const vlmn_image *in, int S, int min_num, int max_num, bool thumbnail,
                           const float mean[3], const float std[3], float **out, int *n_tiles, int *cols, int *rows);
/* One tile of a given cols x rows tiling, as vlmn_img_tiles makes it: the image resized
 * to (cols * S) x (rows * S), tile (c, r) normalised into out[3 x S x S]; cols = rows = 1
 * is the thumbnail. For simulators that see a sample's tiles at another S (CLIP). */
vlmn_status vlmn_img_tile_at(const vlmn_image *in, int S, int cols, int rows, int c, int r, const float mean[3],
                             const float std[3], float *out);

#ifdef __cplusplus
}
#endif
#endif
