/* libFuzzer target for the selection SPEC parsers (src/select): the bytes up to the
 * first newline are a neuron SPEC (parsed, then resolved on a 3 x 7 model with a fixed
 * classification), the rest a sample SPEC. Accepted selections must be sorted, unique
 * and inside the model. "file:" terms are skipped (they would open arbitrary paths). */
#include "vlmn/analysis.h"
#include "vlmn/select.h"

#include "core/alloc.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { L = 3, F = 7 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    if (memchr(data, 0, size) || strstr(s, "file:")) {
        free(s);
        return 0;
    }
    char *nl = strchr(s, '\n'), *sample = nl ? nl + 1 : "top:1";
    if (nl) *nl = 0;
    static vlmn_classification *c;
    if (!c) {
        if (vlmn_classification_create(L, F, &c)) abort();
        for (int k = 0; k < L * F; k++) {
            vlmn_neuron_class *n = &c->neurons[k];
            memset(n, 0, sizeof *n);
            n->n_top = n->den = (uint16_t)(k % 5);  /* den 0 included */
            n->label = (uint8_t)(k % 4);
            n->count[k % 4] = n->den;
        }
    }
    vlmn_nsel *ns = NULL;
    if (vlmn_nsel_parse(s, &ns) == VLMN_OK) {
        vlmn_neuron_ref *v = NULL;
        int64_t n = -1;
        if (vlmn_nsel_resolve(ns, L, F, c, &v, &n) == VLMN_OK) {
            if (n < 0 || n > L * F || (n && !v)) abort();
            for (int64_t i = 0; i < n; i++) {
                if (v[i].layer < 0 || v[i].layer >= L || v[i].neuron < 0 || v[i].neuron >= F) abort();
                if (i && v[i - 1].layer * F + v[i - 1].neuron >= v[i].layer * F + v[i].neuron) abort();
            }
        }
        vlmn_free(v);
        for (int k = 0; k < L * F; k++) (void)vlmn_nsel_match_class(ns, &c->neurons[k]);
        vlmn_nsel_free(ns);
    } else if (ns) {
        abort();
    }
    vlmn_ssel *ss = NULL;
    if (vlmn_ssel_parse(sample, &ss) != VLMN_OK && ss) abort();
    vlmn_ssel_free(ss);
    free(s);
    return 0;
}
