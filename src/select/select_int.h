/* Helpers shared by the neuron and sample SPEC parsers. */
#ifndef VLMN_SELECT_INT_H
#define VLMN_SELECT_INT_H

#include <stdbool.h>
#include <stdint.h>

/* Sort ascending and drop duplicates; returns the new count. */
int64_t vlmn_sel_sort_unique(int64_t *v, int64_t n);
/* A decimal integer at *p in [lo, hi]; advances *p. False on no digits/overflow/range. */
bool vlmn_sel_parse_int(const char **p, int64_t lo, int64_t hi, int64_t *out);

#endif
