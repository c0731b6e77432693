/* libFuzzer target for the image decoder (src/image/decode.c): arbitrary bytes ->
 * vlmn_img_decode_memory_opts, then (on success) a small preprocess so that resize
 * sees every decoded geometry. Pixel limit lowered to keep each run fast. */
#include "vlmn/image.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define FUZZ_MAX_PIXELS (1u << 18)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    vlmn_image *im = NULL;
    /* The last byte's low bit picks strict mode, so both warning paths are covered. */
    vlmn_img_decode_opts opts = {FUZZ_MAX_PIXELS, size > 0 && (data[size - 1] & 1)};
    if (vlmn_img_decode_memory_opts(data, size, "fuzz", &opts, &im) != VLMN_OK) {
        if (im) abort(); /* an error must leave no image */
        return 0;
    }
    if (!im || im->w < 1 || im->h < 1) abort();
    /* Touch every pixel (ASan/MSan catch uninitialised or short buffers). */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)im->w * (size_t)im->h * 3; i++) sum += im->rgb[i];
    (void)sum;
    float out[3 * 14 * 14];
    int S = 14;
    if ((uint64_t)im->w * im->h <= 4096 || (im->w <= 64 * im->h && im->h <= 64 * im->w)) {
        vlmn_img_preprocess(im, (size & 1) ? VLMN_IMG_CROP : VLMN_IMG_PAD, S, mean, stdv, out);
    }
    vlmn_img_free(im);
    return 0;
}
