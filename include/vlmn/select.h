/* Neuron and sample selection on a recorded run: the one parser of neuron SPECs
 * ("label=visual,p>=0.8,random:800:1", "12:4347;3:10", "file:list.csv", "layer=3-5,p_u>=0.9")
 * and sample SPECs ("top:1,5,9", "top:1-20", "random:5:SEED", "ids:3,17"), resolved
 * against a run (its classification, its top lists, its samples table) into, per
 * neuron, the samples to look at. Used by `vlmn trace`, `vlmn browse`, the explainer
 * and neuron masks (--drop run:RUN:QUERY). Flow: run store -> [select] -> trace/draw.
 * Grammar and the random algorithm: docs/trace.md. */
#ifndef VLMN_SELECT_H
#define VLMN_SELECT_H

#include "vlmn/vlmn.h"
#include "vlmn/run.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vlmn_neuron_class;
struct vlmn_classification;

/* Limits of a SPEC (bad input beyond them is VLMN_E_RANGE with a message). */
#define VLMN_SEL_MAX_TERMS 64       /* terms of one neuron SPEC */
#define VLMN_SEL_MAX_LIST 100000    /* explicit L:N pairs, ranks or ids in one SPEC */
#define VLMN_SEL_MAX_SPEC 65536     /* bytes of one SPEC */

/* One neuron: layer l is GGUF block blk.l, neuron j is row j of ffn_gate. */
typedef struct vlmn_neuron_ref {
    int32_t layer;
    int32_t neuron;
} vlmn_neuron_ref;

/* ---- neuron SPEC ----
 * Comma-separated terms, all ANDed ('&' is accepted as a separator too):
 *   label=T        T visual|text|multimodal|unknown (the classification's label)
 *   p OP X         p of the label given by a label= term, else max(p_v,p_t,p_m,p_u)
 *   p_v OP X       also p_t, p_m, p_u (or p_visual, p_text, p_multimodal, p_unknown);
 *                  OP one of >= > <= < (= and == for equality); X in [0, 1]
 *   layer=A        layer=A-B (inclusive)
 *   L:N            explicit neurons, several joined by ';' ("12:4347;3:10")
 *   file:PATH      a CSV of "layer,neuron" lines (header, blank lines, '#' comments ok)
 *   random:K:SEED  K neurons drawn uniformly from what the other terms leave (all of
 *                  them when fewer); at most one, applied last whatever its position
 *   all            every neuron (the same as an empty term list, which is refused)
 * Explicit and file terms restrict the set to their neurons (AND, like the others).
 * Terms on p or label need a classified run (`vlmn classify`). */
typedef struct vlmn_nsel vlmn_nsel;

vlmn_status vlmn_nsel_parse(const char *spec, vlmn_nsel **out);
void vlmn_nsel_free(vlmn_nsel *s);
/* Has label/p terms (so resolving needs a classification). */
bool vlmn_nsel_needs_class(const vlmn_nsel *s);
/* True when only label/p terms are present (what a mask query may hold). */
bool vlmn_nsel_class_only(const vlmn_nsel *s);
/* The label/p terms alone on one neuron's class (a neuron with den = 0 matches no p
 * term). */
bool vlmn_nsel_match_class(const vlmn_nsel *s, const struct vlmn_neuron_class *c);
/* Every neuron of an n_layers x n_ff model matching all terms, layer-major ascending,
 * no duplicates; random:K:SEED applied last. `cls` may be NULL when
 * !vlmn_nsel_needs_class (else VLMN_E_ARG "needs a classified run"). Explicit or file
 * neurons outside the model are VLMN_E_RANGE naming them. An empty result is not an
 * error (*n = 0). *out is vlmn_malloc'd (vlmn_free), NULL when *n = 0. */
vlmn_status vlmn_nsel_resolve(const vlmn_nsel *s, int n_layers, int n_ff, const struct vlmn_classification *cls,
                              vlmn_neuron_ref **out, int64_t *n);

/* ---- sample SPEC ----
 *   top:R,R-R,...  ranks in each neuron's recorded top list (1 = highest); ranks past
 *                  a neuron's list (a dataset with fewer samples) are skipped, counted
 *                  in vlmn_selection.n_missing
 *   random:K:SEED  K sample indices drawn uniformly from the run's successful samples
 *                  (the same K for every neuron)
 *   ids:I,I,...    dataset sample indices (the same for every neuron); an index that
 *                  is not a successful sample of the run is VLMN_E_RANGE */
typedef struct vlmn_ssel vlmn_ssel;

vlmn_status vlmn_ssel_parse(const char *spec, vlmn_ssel **out);
void vlmn_ssel_free(vlmn_ssel *s);

/* A resolved selection: neuron i has samples[off[i] .. off[i+1]) (top: in rank order,
 * with rank[] set; random/ids: ascending, rank 0). */
typedef struct vlmn_selection {
    int64_t n_neurons;
    vlmn_neuron_ref *neurons;  /* [n_neurons], layer-major ascending */
    int64_t *off;              /* [n_neurons + 1] */
    uint32_t *samples;         /* [off[n_neurons]] dataset sample indices */
    uint16_t *rank;            /* [off[n_neurons]] top rank (1-based) or 0 */
    int64_t n_missing;         /* requested top ranks that the lists do not have */
    int64_t n_samples;         /* distinct samples over all neurons */
    uint32_t *distinct;        /* [n_samples] ascending */
    int deepest_layer;         /* max layer of the neurons; -1 when none */
} vlmn_selection;

/* Parse both SPECs and resolve them on an open run (its classification is loaded
 * when the neuron SPEC needs one). An empty neuron set or sample set is not an error:
 * n_neurons / n_samples = 0 (callers report it). Free with vlmn_selection_free. */
vlmn_status vlmn_select(vlmn_run *run, const char *neuron_spec, const char *sample_spec, vlmn_selection **out);
void vlmn_selection_free(vlmn_selection *s);

/* The random draws (docs/trace.md): a splitmix64 stream seeded with SEED; partial
 * Fisher-Yates over the candidates in ascending order: for i = 0..K-1, j = i +
 * uniform(n - i) (Lemire's unbiased multiply-shift, rejection on the low word), swap;
 * the first K are then sorted ascending. Picks idx[0..k) of [0, n) into `pick`. */
vlmn_status vlmn_select_random(int64_t n, int64_t k, uint64_t seed, int64_t *pick);

#ifdef __cplusplus
}
#endif
#endif
