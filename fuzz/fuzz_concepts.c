/* libFuzzer target for the concept-list parser of `vlmn label` (src/clip/concepts.c):
 * any bytes; an accepted list must hold 1..VLMN_CONCEPTS_MAX non-empty, trimmed,
 * distinct concepts of at most VLMN_CONCEPT_MAX bytes without control characters. */
#include "vlmn/clip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    vlmn_concepts c;
    if (vlmn_concepts_parse((const char *)data, size, "fuzz", &c) != VLMN_OK) return 0;
    if (c.n < 1 || c.n > VLMN_CONCEPTS_MAX) abort();
    for (int i = 0; i < c.n; i++) {
        size_t n = strlen(c.items[i]);
        if (n == 0 || n > VLMN_CONCEPT_MAX || c.items[i][0] == ' ' || c.items[i][n - 1] == ' ' ||
            c.items[i][0] == '#')
            abort();
        for (size_t j = 0; j < n; j++)
            if ((unsigned char)c.items[i][j] < 0x20 || c.items[i][j] == 0x7f) abort();
        for (int k = 0; k < i; k++)
            if (!strcmp(c.items[k], c.items[i])) abort();
    }
    vlmn_concepts_free(&c);
    return 0;
}
