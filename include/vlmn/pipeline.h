/* The explain -> simulate -> score commands as library calls on a run directory
 * (paper 4.6, Table 2), on top of vlmn/explain.h (prompts, simulators, scoring) and
 * vlmn/llm.h (the client). Results go to RUN/run.sqlite (tables in docs/run-format.md),
 * answered requests to the response cache RUN/llm-cache.sqlite. See docs/explain.md. */
#ifndef VLMN_PIPELINE_H
#define VLMN_PIPELINE_H

#include "vlmn/explain.h"
#include "vlmn/llm.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The samples the explainer sees with sampling "top", and the top ranks every explanation
 * is simulated (and so scored) on, paper 4.6 / A.2: disjoint, so a score is held out from
 * what the explanation was made from. vlmn label --as-explanations keeps to the same split. */
#define VLMN_XTOP_SAMPLES "top:1,5,9,13,17"
#define VLMN_SIM_SAMPLES "top:3,7,11,15,19"
#define VLMN_SIM_NRANKS 5
extern const int vlmn_sim_ranks[VLMN_SIM_NRANKS];

typedef struct vlmn_xrun_opts {
    const char *run_dir;
    const char *neurons;          /* explain: neuron SPEC (select.h) */
    const char *sampling;         /* "top" (ranks 1,5,9,13,17) | "random" (5 random samples) */
    uint64_t random_seed;         /* of random sampling (default 1) */
    const char *images;           /* "modulated" | "raw" */
    const char *examples_path;    /* NULL: the shipped default set */
    bool force_kind;              /* use `kind` for every neuron instead of its label */
    vlmn_xkind kind;
    vlmn_xprompt_opts prompt;     /* model (explainer or simulator), temperature, max tokens, seed */
    vlmn_textsim_mode textsim;
    vlmn_llm_opts llm;            /* base URL, key variable, concurrency, retries, prices */
    bool no_cache;                /* no RUN/llm-cache.sqlite */
    const char *filter_explainer; /* simulate: only explanations by this model (NULL: all) */
    const char *filter_sampling;
    FILE *progress;               /* failures, mismatches (NULL: quiet) */
    FILE *out;                    /* explain: one result line per neuron (NULL: none) */
} vlmn_xrun_opts;

void vlmn_xrun_opts_default(vlmn_xrun_opts *o);

typedef struct vlmn_xrun_summary {
    int64_t neurons, already, skipped, answered, failed, missing, mismatches;
    vlmn_llm_stats llm;
} vlmn_xrun_summary;

/* Explanations for every selected neuron that has none yet (status ok) for this
 * (sampling, explainer, images); the kind from the classification (unknown ones are
 * skipped) unless force_kind. Every needed (neuron, sample) pair must be traced, else
 * VLMN_E_NOTFOUND naming the `vlmn trace` command to run (nothing is sent). */
vlmn_status vlmn_explain_run(const vlmn_xrun_opts *o, vlmn_xrun_summary *sum);

/* Simulations with `sim` (stored under simulator = simname, mode = sim->name) of every
 * ok explanation (filters in o) on its top ranks 3,7,11,15,19, skipping the stored ones.
 * Text simulators serve text and multi-modal neurons, visual ones visual and multi-modal. */
vlmn_status vlmn_simulate_run(const vlmn_xrun_opts *o, vlmn_simulator *sim, const char *simname,
                              vlmn_xrun_summary *sum);

/* Pearson scores (A.3) of every explanation with simulations into `scores` (replaced);
 * *n_scored / *n_undefined count the rows written and those with a NULL score. */
vlmn_status vlmn_score_run(const char *run_dir, int64_t *n_scored, int64_t *n_undefined);

/* Detection / fuzzing scores (explain.h "detection and fuzzing scorers") of every ok
 * explanation (filters in x) not yet scored by this scorer and model, one request each,
 * one committed `scores` row per answer (scorer = "detection" / "fuzzing", simulator =
 * the scorer model, score = AUROC, accuracy, n_pos, n_neg, detail = the examples, labels
 * and answers as JSON). Positives: top ranks 3,7,11,15,19. Detection negatives: the
 * samples of `negatives` (random:K:SEED, the same for every neuron) that are not in the
 * neuron's top list and stay below active_frac * the neuron's max on its kind's tokens,
 * as many as positives. Fuzzing: text tokens >= active_frac * the sample's text max are
 * the true highlights; visual neurons are skipped. Untraced pairs: VLMN_E_NOTFOUND
 * naming the `vlmn trace` command, nothing sent. Failed requests write no row. */
typedef struct vlmn_drun_opts {
    vlmn_xrun_opts x;             /* run_dir, prompt.model = the scorer model, llm, filters, progress */
    vlmn_dscorer scorer;
    vlmn_dmode mode;
    const char *negatives;        /* default "random:10:1" */
    double active_frac;           /* default 0.5 */
    uint64_t shuffle_seed;        /* order of the examples and fuzzed positions (default 1) */
} vlmn_drun_opts;

void vlmn_drun_opts_default(vlmn_drun_opts *o);
vlmn_status vlmn_dscore_run(const vlmn_drun_opts *o, vlmn_xrun_summary *sum);

/* Table 2: per explainer / simulator combination, mean score per kind (rows) and
 * sampling (columns), n and a 95% bootstrap interval (n_boot resamples, fixed seed).
 * json: one JSON object instead of the text layout. */
vlmn_status vlmn_table2(const char *run_dir, int n_boot, bool json, FILE *f);

/* Visual simulators that other modules provide (segmenter, clip): a name -> create
 * function table; VLMN_E_NOTFOUND when `name` is not compiled in. */
typedef vlmn_status (*vlmn_visual_sim_create_fn)(const char *arg, const vlmn_llm_opts *llm, vlmn_simulator *out);
vlmn_status vlmn_visual_sim_register(const char *name, vlmn_visual_sim_create_fn fn);
vlmn_status vlmn_visual_sim_create(const char *name, const char *arg, const vlmn_llm_opts *llm, vlmn_simulator *out);

#ifdef __cplusplus
}
#endif
#endif
