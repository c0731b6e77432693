/* Explanation, simulation and scoring of neurons (paper 3.3, A.1-A.3, Fig. 10/11,
 * Table 2): activation normalisation as Bills et al., the explainer and text-simulator
 * prompts, the simulator interface that text (LLM) and visual (segmenter, CLIP)
 * simulators share, Pearson scoring, and the run tables they are stored in.
 * Flow: run + traces -> [prompts] -> llm client -> [run tables] -> score/stats.
 * See docs/explain.md; tables: docs/run-format.md. */
#ifndef VLMN_EXPLAIN_H
#define VLMN_EXPLAIN_H

#include "vlmn/vlmn.h"
#include "vlmn/llm.h"

#include <sqlite3.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Neuron type used to pick the prompt and the score (classification labels). */
typedef enum vlmn_xkind { VLMN_XK_VISUAL = 0, VLMN_XK_TEXT = 1, VLMN_XK_MULTIMODAL = 2 } vlmn_xkind;
const char *vlmn_xkind_name(vlmn_xkind k); /* "visual", "text", "multimodal" */
vlmn_status vlmn_xkind_parse(const char *s, vlmn_xkind *k);

/* Bills et al. (neuron-explainer, activations/activation_records.py,
 * normalize_activations): a' = min(10, floor(10 * max(a, 0) / max_act)), an integer;
 * max_act <= 0 gives all zeros. */
int vlmn_norm_act(double a, double max_act);

struct vlmn_trace_grid; /* vlmn/trace.h */

/* One sample of a neuron as the prompts see it: text tokens with their activations,
 * and (for visual / multi-modal neurons) the picture to show (modulated or raw PNG). */
typedef struct vlmn_xsample {
    int64_t sample_index;
    int n_text;
    const char *const *text_tokens;  /* [n_text] token strings as the model's tokenizer shows them */
    const float *text_acts;          /* [n_text] real activations */
    int n_visual;
    const float *visual_acts;        /* [n_visual] real activations of the image tokens (grid order) */
    int grid_w, grid_h;              /* image-token grid (n_visual = grid_w * grid_h) */
    const uint8_t *png;              /* image shown to the explainer, NULL for text neurons */
    size_t png_len;
    int image_w, image_h;            /* the original image's size (0 when not loaded) */
    int n_grids;                     /* where the image tokens sit on the original image */
    const struct vlmn_trace_grid *grids; /* (trace.h), for visual simulators; NULL: unknown */
} vlmn_xsample;

/* One context example (M of them, default file data/explain_examples.json, replaceable
 * with --examples). */
typedef struct vlmn_xexample {
    char *explanation;
    int n_text;
    char **tokens;
    int *acts;                       /* already 0..10 */
    uint8_t *png;                    /* optional picture (NULL) */
    size_t png_len;
} vlmn_xexample;

typedef struct vlmn_xexamples {
    vlmn_xexample *ex;
    int n;
} vlmn_xexamples;

/* Reads an examples file (format in docs/explain.md); errors name the file and entry. */
vlmn_status vlmn_xexamples_load(const char *path, vlmn_xexamples *out);
vlmn_status vlmn_xexamples_parse(const char *json, size_t len, const char *name, vlmn_xexamples *out);
void vlmn_xexamples_free(vlmn_xexamples *e);
/* The shipped default set (data/explain_examples.json, compiled in) and its text. */
vlmn_status vlmn_xexamples_default(vlmn_xexamples *out);
const char *vlmn_xexamples_default_text(void);

/* Fig. 10 explainer prompt for a neuron of kind k from its samples (activations
 * normalised with max_act, the neuron's maximum), as a chat body. */
typedef struct vlmn_xprompt_opts {
    const char *model;
    double temperature;              /* default 1.0 as Bills; < 0: not sent */
    int max_tokens;                  /* default 60 */
    bool has_seed;
    int64_t seed;
} vlmn_xprompt_opts;

void vlmn_xprompt_opts_default(vlmn_xprompt_opts *o);

vlmn_status vlmn_explain_body(vlmn_xkind k, const vlmn_xexamples *ex, const vlmn_xsample *s, int n, double max_act,
                              const vlmn_xprompt_opts *o, char **json);
/* The explanation text of a reply (the completion of "the main thing this neuron does
 * is find", trimmed). */
vlmn_status vlmn_explain_parse(const char *body, size_t len, char **explanation);
/* check() for explainer replies (retries empty or malformed ones). */
vlmn_status vlmn_explain_check(const char *body, size_t len, void *user);

/* ---- simulators ----
 * A simulator turns (explanation, sample) into simulated activations 0..10 on the
 * sample's tokens of one modality. Remote ones build an HTTP request that goes through
 * the vlmn_llm client (retries, cache) and parse its reply; local ones compute directly. */
typedef enum vlmn_sim_modality { VLMN_SIM_TEXT = 0, VLMN_SIM_VISUAL = 1 } vlmn_sim_modality;

typedef struct vlmn_simulator {
    const char *name;                /* stored in simulations.mode: "json", "logprob", "segmenter", "clip" */
    vlmn_sim_modality modality;
    void *self;
    /* Remote: the request for one sample (path + vlmn_malloc'd body); NULL for local. */
    vlmn_status (*build)(void *self, vlmn_xkind k, const char *explanation, const vlmn_xsample *s,
                         const char **path, char **body);
    /* Remote: simulated activations from the reply; *n_mismatch counts tokens that did
     * not align with the real ones (their simulated value is NaN, never shifted). */
    vlmn_status (*parse)(void *self, const vlmn_xsample *s, const char *reply, size_t len, float *sim,
                         int *n_mismatch);
    /* Local: simulated activations computed directly (build and parse NULL). */
    vlmn_status (*local)(void *self, const char *explanation, const vlmn_xsample *s, float *sim);
    vlmn_llm_check_fn check;         /* reply check for remote ones */
    /* Remote, optional: a reply check that needs the sample (e.g. its image size);
     * used instead of `check` when set. */
    vlmn_status (*check_sample)(void *self, const vlmn_xsample *s, const char *reply, size_t len);
    void (*free)(void *self);
} vlmn_simulator;

/* Fig. 11 text simulators. json: the model returns {"tokens":[{"token":..,"activation":..}]}
 * under a JSON schema; logprob: Bills' expected-value simulator (the distribution over
 * "0".."10" at each activation slot, from top_logprobs). */
typedef enum vlmn_textsim_mode { VLMN_TEXTSIM_JSON = 0, VLMN_TEXTSIM_LOGPROB = 1 } vlmn_textsim_mode;
vlmn_status vlmn_textsim_create(vlmn_textsim_mode mode, const vlmn_xexamples *ex, const vlmn_xprompt_opts *o,
                                vlmn_simulator *out);
/* The pieces of the text simulator, for tests and tools: the chat body for one sample
 * (context examples with their answers, then the sample's tokens as "tok<TAB>unknown"
 * lines; multi-modal neurons' examples carry their pictures, the sample never does)
 * and the reply parsers (sim[s->n_text], NaN where not aligned). */
vlmn_status vlmn_textsim_body(vlmn_textsim_mode mode, const vlmn_xexamples *ex, const vlmn_xprompt_opts *o,
                              vlmn_xkind k, const char *explanation, const vlmn_xsample *s, char **json);
vlmn_status vlmn_textsim_parse_json(const vlmn_xsample *s, const char *reply, size_t len, float *sim,
                                    int *n_mismatch);
vlmn_status vlmn_textsim_parse_logprob(const vlmn_xsample *s, const char *reply, size_t len, float *sim,
                                       int *n_mismatch);

/* ---- scoring (A.3) ----
 * Pearson r of x and y over n pairs, in double, skipping pairs where either is NaN;
 * NAN when fewer than 2 pairs remain or either vector is constant. */
double vlmn_pearson(const float *x, const float *y, int n, int *n_used);

/* A neuron's A.3 score from its concatenated real/simulated vectors per modality
 * (NULL / n = 0 when that modality was not simulated). Visual neurons: r on visual
 * tokens; text: r on text tokens; multi-modal: the mean of both. A modality whose real
 * activations are constant is undefined (NaN, note says so); a simulation that is
 * constant while the real one varies scores 0 (it predicts nothing). Multi-modal with
 * one part undefined is undefined. *note gets a static string or NULL. */
typedef struct vlmn_xscore {
    double score, visual, text;     /* NaN when undefined */
    int n_visual, n_text;           /* pairs used */
    const char *note;
} vlmn_xscore;
void vlmn_score_neuron(vlmn_xkind k, const float *real_v, const float *sim_v, int n_v, const float *real_t,
                       const float *sim_t, int n_t, vlmn_xscore *out);

/* Mean of x[0..n) and its 95% percentile bootstrap interval (n_boot resamples with a
 * fixed seed); lo = hi = mean for n < 2. */
void vlmn_bootstrap_mean(const double *x, int n, int n_boot, uint64_t seed, double *mean, double *lo, double *hi);

/* ---- detection and fuzzing scorers (after EleutherAI's Delphi; docs/explain.md) ----
 * The scorer LLM reads an explanation and labelled examples it cannot see the labels
 * of: detection shows whole samples (top ones that activate the neuron and random ones
 * that do not) and asks which ones the neuron fires on; fuzzing shows the top samples
 * with tokens highlighted <<like this>>, the truly active ones or as many random ones,
 * and asks whether the highlights are what the explanation describes. One request per
 * explanation holds all its examples; the answer is a list of 0/1 (JSON schema in json
 * mode; with logprobs P("1") / (P("0") + P("1")) per answer, as Delphi). */
typedef enum vlmn_dscorer { VLMN_DS_DETECTION = 0, VLMN_DS_FUZZING = 1 } vlmn_dscorer;
/* json: response_format json_schema; logprob: a plain list with logprobs; plain: a plain
 * list, neither (servers without structured output or logprobs). */
typedef enum vlmn_dmode { VLMN_DMODE_JSON = 0, VLMN_DMODE_LOGPROB = 1, VLMN_DMODE_PLAIN = 2 } vlmn_dmode;
const char *vlmn_dscorer_name(vlmn_dscorer s); /* "detection", "fuzzing" */

/* One example as the scorer sees it. */
typedef struct vlmn_dexample {
    int n_text;
    const char *const *text_tokens;  /* joined as they are; newline/tab shown as \n, \t */
    const uint8_t *highlight;        /* fuzzing: [n_text], non-zero = shown <<highlighted>> */
    const uint8_t *png;              /* detection of visual/multi-modal neurons: the raw image */
    size_t png_len;
} vlmn_dexample;

/* The chat body: system prompt, then "Neuron explanation: the main thing this neuron does
 * is find<explanation>." and "Example i: ..." lines (i from 0). */
vlmn_status vlmn_dscore_body(vlmn_dscorer s, vlmn_dmode mode, const vlmn_xprompt_opts *o, const char *explanation,
                             const vlmn_dexample *ex, int n, char **json);
/* The n answers of a reply: ans[i] 0/1; prob[i] P(1) from the logprobs in logprob mode
 * when every answer has its 0/1 token among them (*have_prob true), else prob = ans.
 * VLMN_E_FORMAT when the reply is not a chat completion or holds other than n answers. */
vlmn_status vlmn_dscore_parse(vlmn_dmode mode, const char *reply, size_t len, int n, int *ans, double *prob,
                              bool *have_prob);
/* Fuzzing highlights: hl[i] = acts[i] >= frac * max(acts) (none when max <= 0); returns
 * how many. */
int vlmn_fuzz_active(const float *acts, int n, double frac, uint8_t *hl);
/* hl[] = `count` positions drawn uniformly (splitmix64 stream *rng) among those with
 * active[i] == 0 (all of them when fewer); returns how many were drawn. */
int vlmn_fuzz_random(const uint8_t *active, int n, int count, uint64_t *rng, uint8_t *hl);

/* AUROC of scores against 0/1 labels (NaN scores skipped): the Mann-Whitney U over the
 * (positive, negative) pairs divided by their number, a tie counting 1/2; NAN when
 * either class is empty. *n_pos / *n_neg (may be NULL) get the counts used. */
double vlmn_auroc(const double *score, const int *label, int n, int *n_pos, int *n_neg);

/* ---- run tables (docs/run-format.md) ---- */
vlmn_status vlmn_xdb_init(sqlite3 *db);

#ifdef __cplusplus
}
#endif
#endif
