/* libFuzzer target for the safetensors reader (src/safetensors/st_read.c): arbitrary
 * bytes -> vlmn_st_open_memory; every accepted tensor must lie inside the input and be
 * as large as its shape and dtype say. */
#include "vlmn/safetensors.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vlmn_st *s = NULL;
    if (vlmn_st_open_memory(data, size, "fuzz", &s) != VLMN_OK) {
        if (s) abort();
        return 0;
    }
    unsigned sum = 0;
    for (int64_t i = 0; i < vlmn_st_n_tensors(s); i++) {
        const vlmn_st_tensor *t = vlmn_st_tensor_at(s, i);
        uint64_t es = t->type == VLMN_TYPE_F32 ? 4 : 2;
        if (vlmn_st_find(s, t->name) != t) abort();
        if (vlmn_st_numel(t) * es != t->nbytes) abort();
        const uint8_t *p = t->data;
        if (t->nbytes && (p < data || p + t->nbytes > data + size)) abort();
        for (uint64_t j = 0; j < t->nbytes; j++) sum += p[j];
    }
    (void)sum;
    vlmn_st_close(s);
    return 0;
}
