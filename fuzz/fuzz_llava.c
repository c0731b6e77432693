/* Fuzz the model loader (any listed architecture: LLaVA, InternVL) and a short forward
 * pass over a pair of GGUF files given as
 * one input: u32 little-endian length of the text file, the text file, the mmproj file.
 * Every tensor is checked against the hyperparameters, so a model that loads has sizes
 * bounded by the input; the forward pass is only run on small ones. */
#include "vlmn/gguf.h"
#include "vlmn/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    uint32_t lt;
    memcpy(&lt, data, 4);
    if (lt > size - 4) return 0;
    vlmn_gguf *gt = NULL, *gv = NULL;
    if (vlmn_gguf_open_memory(data + 4, lt, "text.gguf", &gt)) return 0;
    if (vlmn_gguf_open_memory(data + 4 + lt, size - 4 - lt, "mmproj.gguf", &gv)) {
        vlmn_gguf_close(gt);
        return 0;
    }
    vlmn_llava_params p = {.n_threads = 1, .precision = VLMN_PREC_FAST};
    vlmn_llava *m = NULL;
    if (vlmn_llava_load_gguf(gt, gv, &p, &m) == VLMN_OK) {
        const vlmn_llava_info *in = vlmn_llava_get_info(m);
        int64_t ni = in->n_image_tokens, n = ni + 3;
        uint64_t work = (uint64_t)in->n_layer * (uint64_t)in->n_embd * (uint64_t)in->n_ff;
        if (ni <= 64 && in->image_size <= 128 && work <= (1u << 22)) {
            int32_t ids[67];
            ids[0] = 0;
            for (int64_t i = 1; i <= ni; i++) ids[i] = -1;
            ids[ni + 1] = in->n_vocab - 1;
            ids[ni + 2] = 0;
            float *px = calloc((size_t)3 * in->image_size * in->image_size, sizeof(float));
            float *logits = calloc((size_t)in->n_vocab, sizeof(float));
            vlmn_forward_opts o = {.logits = logits, .n_logits = 1};
            if (px && logits) vlmn_llava_forward(m, ids, n, px, &o);
            free(px);
            free(logits);
        }
        vlmn_llava_free(m);
    }
    return 0;
}
