/* libFuzzer target for the streaming dataset reader (src/data): arbitrary bytes as a
 * LLaVA JSON array or JSONL file; every element is read until the end or an error. */
#include "vlmn/dataset.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vlmn_dataset *ds;
    if (vlmn_ds_open_mem(data, size, "fuzz", VLMN_DS_AUTO, &ds) != VLMN_OK) return 0;
    vlmn_sample s;
    bool eof = false;
    for (int i = 0; i < 100000; i++) {
        /* alternate next and skip: both paths */
        vlmn_status st = (i % 3 == 2) ? vlmn_ds_skip(ds, &eof) : vlmn_ds_next(ds, &s, &eof);
        if (st || eof) break;
        if (i % 3 != 2 && !s.error) {
            /* the sample's strings must be valid C strings */
            volatile size_t n = strlen(s.id) + strlen(s.image) + strlen(s.question) + strlen(s.answer);
            (void)n;
        }
    }
    vlmn_ds_close(ds);
    return 0;
}
