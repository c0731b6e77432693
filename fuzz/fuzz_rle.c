/* libFuzzer target for the segmenter's untrusted replies (src/segment): the bytes as a
 * whole reply (JSON with RLE, count-list or PNG masks) checked against a small image
 * size, and, after a 2-byte size header, as a bare COCO RLE string; a decoded mask must
 * re-encode to a string that decodes to the same mask. */
#include "vlmn/segment.h"
#include "core/alloc.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *mask = NULL;
    int w, h, nm;
    if (vlmn_seg_parse((const char *)data, size, 0, 0, &mask, &w, &h, &nm) == VLMN_OK) {
        float out[64];
        vlmn_trace_grid g = {.rows = 8, .cols = 8, .x0 = -3, .y0 = 0, .x1 = w + 3.5, .y1 = h};
        vlmn_seg_to_grid(mask, w, h, &g, VLMN_SEG_FRACTION, out);
        for (int i = 0; i < 64; i++)
            if (!(out[i] >= 0 && out[i] <= 10)) __builtin_trap();
    }
    vlmn_free(mask);
    if (size < 2) return 0;
    int mh = 1 + data[0] % 64, mw = 1 + data[1] % 64;
    uint8_t m[64 * 64], back[64 * 64];
    if (vlmn_rle_decode_string((const char *)data + 2, size - 2, mh, mw, m) == VLMN_OK) {
        char *s = NULL;
        if (vlmn_rle_encode_string(m, mh, mw, &s) != VLMN_OK) __builtin_trap();
        if (vlmn_rle_decode_string(s, strlen(s), mh, mw, back) != VLMN_OK) __builtin_trap();
        if (memcmp(m, back, (size_t)mh * mw)) __builtin_trap();
        vlmn_free(s);
    }
    return 0;
}
