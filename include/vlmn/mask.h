/* Neuron masks for pruning (paper B.1): a set of (layer, neuron) pairs whose FFN
 * activation the engine forces to 0 (vlmn_forward_opts.neuron_mask). Sources: a CSV
 * file, a query on a classified run, random (global ratio) and random with the same
 * per-layer counts as a query. A mask is built in memory; no model or run file is
 * ever written. Flow: run.sqlite / CSV -> [this] -> model forward. See docs/generate.md. */
#ifndef VLMN_MASK_H
#define VLMN_MASK_H

#include "vlmn/vlmn.h"
#include "vlmn/select.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vlmn_mask vlmn_mask;

vlmn_status vlmn_mask_create(int n_layer, int n_ff, vlmn_mask **out);
void vlmn_mask_free(vlmn_mask *m);
/* Set (layer, neuron); VLMN_E_RANGE outside the model. */
vlmn_status vlmn_mask_set(vlmn_mask *m, int layer, int64_t neuron);
bool vlmn_mask_get(const vlmn_mask *m, int layer, int64_t neuron);
int64_t vlmn_mask_count(const vlmn_mask *m);               /* neurons masked */
int64_t vlmn_mask_layer_count(const vlmn_mask *m, int layer);
double vlmn_mask_ratio(const vlmn_mask *m);                /* count / (n_layer * n_ff) */
/* For vlmn_forward_opts.neuron_mask: per layer NULL (nothing masked) or [n_ff] bytes;
 * NULL when the mask is empty, so an empty mask runs exactly the unmasked path. */
const uint8_t *const *vlmn_mask_rows(const vlmn_mask *m);

/* A neuron query: a neuron SPEC of vlmn/select.h (the one parser), e.g. "p_u>=0.8",
 * "p_v>=0.5&p_u<0.2", "label=unknown", "layer=2-3,p_u>=0.9". vlmn_query_match applies
 * its label/p terms to one neuron's class; vlmn_mask_from_query resolves all terms. */
typedef struct vlmn_nsel vlmn_query;
static inline vlmn_status vlmn_query_parse(const char *text, vlmn_query **out) { return vlmn_nsel_parse(text, out); }
static inline void vlmn_query_free(vlmn_query *q) { vlmn_nsel_free(q); }
static inline bool vlmn_query_match(const vlmn_query *q, const struct vlmn_neuron_class *c)
{
    return vlmn_nsel_match_class(q, c);
}

/* Masks from a source. n_layer/n_ff are the model's; a run's classification must have
 * the same shape.
 *   vlmn_mask_from_csv:    lines "layer,neuron" (a "layer,neuron" header, blank lines
 *                          and '#' comments allowed); an index outside the model is an
 *                          error naming the line.
 *   vlmn_mask_from_query:  the neurons of RUN/run.sqlite's classification matching the
 *                          query (read-only; a neuron SPEC); an empty result is an error.
 *   vlmn_mask_random:      round(ratio * n_layer * n_ff) neurons drawn uniformly over
 *                          all layers (the paper's control), ratio in [0, 1].
 *   vlmn_mask_random_like: in every layer as many neurons as `like` has there, drawn
 *                          uniformly in that layer (they may overlap `like`'s).
 *   vlmn_mask_parse:       a --drop SPEC: FILE.csv | run:RUN:QUERY | random:RATIO:SEED |
 *                          random-matched:RUN:QUERY:SEED | none (empty). */
vlmn_status vlmn_mask_from_csv(const char *path, int n_layer, int n_ff, vlmn_mask **out);
vlmn_status vlmn_mask_from_query(const char *run_dir, const char *query, int n_layer, int n_ff, vlmn_mask **out);
vlmn_status vlmn_mask_random(double ratio, uint64_t seed, int n_layer, int n_ff, vlmn_mask **out);
vlmn_status vlmn_mask_random_like(const vlmn_mask *like, uint64_t seed, vlmn_mask **out);
vlmn_status vlmn_mask_parse(const char *spec, int n_layer, int n_ff, vlmn_mask **out);

#ifdef __cplusplus
}
#endif
#endif
