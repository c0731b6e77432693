/* Classification of a recorded run: adapts the run store (vlmn_run_stats / vlmn_run_top)
 * to the classifier's source interface. Kept apart from classify.c so the classifier
 * itself depends on nothing but the vlmn_top_entry contract. */
#include "vlmn/analysis.h"

static float run_max_act(void *ctx, int layer, int neuron)
{
    const vlmn_neuron_stats *s = vlmn_run_stats(ctx, layer, neuron);
    return s ? s->max_act : 0.0f;
}

static const vlmn_top_entry *run_top(void *ctx, int layer, int neuron, int *n_out)
{
    return vlmn_run_top(ctx, layer, neuron, n_out);
}

vlmn_status vlmn_classify_run(vlmn_run *run, const vlmn_classify_params *p, vlmn_classification **out)
{
    vlmn_top_source src = {
        .n_layers = vlmn_run_n_layers(run),
        .n_ff = vlmn_run_n_ff(run),
        .ctx = run,
        .max_act = run_max_act,
        .top = run_top,
    };
    return vlmn_classify_source(&src, p, out);
}
