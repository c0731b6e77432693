/* libFuzzer target for the strict .npy parser (src/io/npy.c): arbitrary bytes ->
 * vlmn_npy_parse; an accepted array must be self-consistent. */
#include "vlmn/npy.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vlmn_npy *a = NULL;
    if (vlmn_npy_parse(data, size, "fuzz", &a) != VLMN_OK) {
        if (a) abort();
        return 0;
    }
    if (!a || a->ndim < 0 || a->ndim > VLMN_NPY_MAX_DIMS) abort();
    uint64_t count = 1;
    for (int i = 0; i < a->ndim; i++) count *= (uint64_t)a->shape[i];
    if (a->ndim < 0 || a->ndim > VLMN_NPY_MAX_DIMS || count != a->count ||
        (count && !a->data) || count * vlmn_npy_dtype_size(a->dtype) > size)
        abort();
    const uint8_t *p = a->data;
    unsigned sum = 0;
    for (uint64_t i = 0; i < count * vlmn_npy_dtype_size(a->dtype); i++) sum += p[i];
    (void)sum;
    vlmn_npy_free(a);
    return 0;
}
