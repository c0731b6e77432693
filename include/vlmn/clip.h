/* CLIP (Hugging Face CLIPModel semantics) from a safetensors folder, for the built-in
 * visual simulator and LLM-free labels (issue 15): the full vision tower (embeddings,
 * pre-LN, every block, post-LN on CLS, visual projection), the text tower on token ids
 * (causal blocks, final LN, EOT pooling, text projection) and MaskCLIP patch maps (the
 * last block's value path per patch: out_proj(v_proj(LN1(x))), no attention mixing, no
 * residual, no MLP; then post-LN and the visual projection; cosine with a text
 * embedding). Weights are converted to float32 at load and run on the engine's
 * kernels (vlmn_gemm, vlmn_attention). Tokenisation (CLIP's byte-level BPE) is not
 * here: the text tower takes ids. See docs/clip.md.
 * Flow: CLIPModel folder -> [this] -> embeddings / patch similarities -> simulator. */
#ifndef VLMN_CLIP_H
#define VLMN_CLIP_H

#include "vlmn/vlmn.h"
#include "vlmn/kernels.h"
#include "vlmn/explain.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vlmn_clip vlmn_clip;

typedef struct vlmn_clip_info {
    int image_size, patch_size, grid;        /* grid = image_size / patch_size */
    int v_width, v_layers, v_heads, v_ff;
    int t_width, t_layers, t_heads, t_ff, t_ctx, t_vocab;
    int proj_dim;
    int eos_token_id;                        /* HF text_config.eos_token_id (2: legacy argmax pooling) */
    float image_mean[3], image_std[3];       /* preprocessor_config.json (OpenAI CLIP's by default) */
    double logit_scale;                      /* exp(logit_scale) of the checkpoint (NaN if absent) */
} vlmn_clip_info;

/* Loads DIR (config.json of a CLIPModel + model.safetensors or an index; optional
 * preprocessor_config.json). `pool` (NULL: serial) runs the kernels; prec as the engine
 * (VLMN_PREC_EXACT for reference checks). Errors name the folder and the problem. */
vlmn_status vlmn_clip_load(const char *dir, vlmn_pool *pool, vlmn_precision prec, vlmn_clip **out);
void vlmn_clip_free(vlmn_clip *c);
const vlmn_clip_info *vlmn_clip_get_info(const vlmn_clip *c);

/* The vision tower on preprocessed pixels px[3 x S x S] (channel-major, normalised):
 * image_embed[proj_dim] = visual_projection(post_LN(CLS of the last block)) (may be
 * NULL), and patch_embed[grid*grid x proj_dim] the MaskCLIP per-patch embeddings in
 * row-major grid order (may be NULL). Neither is L2-normalised. */
vlmn_status vlmn_clip_image(vlmn_clip *c, const float *px, float *image_embed, float *patch_embed);

/* The text tower on ids[n] (1 <= n <= t_ctx, the caller's tokenisation including
 * start and end tokens): text_projection(final_LN(hidden at the pooled position)),
 * pooled = first position holding eos_token_id, or argmax(ids) when eos_token_id is 2
 * (HF's legacy rule); VLMN_E_ARG when no id is the end token. Not normalised. */
vlmn_status vlmn_clip_text(vlmn_clip *c, const int32_t *ids, int n, float *text_embed);

/* Cosine similarities sim[n] of each row of emb[n x d] with t[d]. */
void vlmn_clip_cosine(const float *emb, int n, int d, const float *t, float *sim);

/* The documented calibration of MaskCLIP similarities to simulated activations 0..10:
 * a = 10 * clamp(cos, 0, 1) (linear in the cosine, so Pearson r over concatenated
 * samples compares raw similarities; negative similarity means absent). */
float vlmn_clip_calibrate(float cos);

/* ---- the CLIP visual simulator (simulations.mode "clip") ----
 * Local: for each sample, the original image is preprocessed for CLIP with the same
 * geometry as the sample's image-token grid (pad or crop, recognised from the grid
 * rectangle; an InternVL tile or thumbnail rectangle: that tile of the image resized to
 * cols x rows tiles at CLIP's size, vlmn_img_tile_at; anything else is refused), the MaskCLIP map of the
 * explanation (cosine per CLIP patch) calibrated by vlmn_clip_calibrate, and resampled
 * to the sample's grid by area (vlmn_clip_resample; identity when the sizes agree, as
 * ViT-L/14-336 and LLaVA-1.5's 24 x 24). */
typedef vlmn_status (*vlmn_clip_tokenize_fn)(void *user, const char *text, int32_t *ids, int cap, int *n);

/* CLIP's own tokenizer from a CLIPModel folder (DIR/tokenizer.json: lowercase, byte-level
 * BPE with `</w>` word ends): start token, text, end token, cut to cap with the end token
 * kept. *user is freed with vlmn_clip_tokenizer_close. */
vlmn_status vlmn_clip_tokenizer_open(const char *dir, vlmn_clip_tokenize_fn *fn, void **user);
void vlmn_clip_tokenizer_close(void *user);
/* VLMN_E_MISMATCH, naming DIR/tokenizer.json, when the tokenizer (`user` of
 * vlmn_clip_tokenizer_open) does not fit the loaded model: ids beyond the text tower's
 * vocab_size, or an end token other than text_config.eos_token_id (unless 2, legacy). */
vlmn_status vlmn_clip_tokenizer_check(const char *dir, const void *user, const vlmn_clip *clip);
/* The CLIP folder's name as labels and simulators are named by it (label:NAME,
 * clip-NAME): the last component of dir, trailing '/' ignored ("a/tiny/" -> "tiny"). */
void vlmn_clip_dir_name(const char *dir, char *out, size_t cap);

/* clip and the tokenizer are borrowed (alive while the simulator is). tokenize must
 * produce CLIP's ids including start and end tokens, at most cap (= t_ctx) of them. */
vlmn_status vlmn_clipsim_create(vlmn_clip *clip, vlmn_clip_tokenize_fn tokenize, void *tok_user, vlmn_simulator *out);

/* The simulator's two halves, for callers that reuse one image pass for many texts
 * (vlmn label): vlmn_clip_sample_patches runs the vision tower once per grid of a
 * sample (img the original image; grids as traced, pad or crop geometry, together
 * holding n_visual image tokens) into pe[n_grids x grid*grid x proj_dim];
 * vlmn_clip_sample_map turns them and a text embedding into the simulated activations
 * sim[n_visual] (cosine, vlmn_clip_calibrate, resampling onto each grid). */
struct vlmn_image;
struct vlmn_trace_grid;
vlmn_status vlmn_clip_sample_patches(vlmn_clip *c, const struct vlmn_image *img, const struct vlmn_trace_grid *grids,
                                     int n_grids, int n_visual, int64_t sample_index, float *pe);
vlmn_status vlmn_clip_sample_map(vlmn_clip *c, const float *pe, const struct vlmn_trace_grid *grids, int n_grids,
                                 const float *text_embed, float *sim);

/* Area-weighted resampling of a gi x gi map (row-major) onto rows x cols over the same
 * square: out cell = mean of in over its rectangle. */
void vlmn_clip_resample(const float *in, int gi, float *out, int rows, int cols);

/* ---- LLM-free labels (vlmn label, docs/clip.md "Labels") ----
 * A concept list: one concept per line (UTF-8, surrounding blanks trimmed), blank lines
 * and lines starting with '#' skipped; at most VLMN_CONCEPT_MAX bytes per concept and
 * VLMN_CONCEPTS_MAX concepts, duplicates refused. Errors name `name` and the line. */
#define VLMN_CONCEPT_MAX 200
#define VLMN_CONCEPTS_MAX 10000
typedef struct vlmn_concepts {
    int n;
    char **items;   /* [n] */
} vlmn_concepts;
vlmn_status vlmn_concepts_parse(const char *buf, size_t len, const char *name, vlmn_concepts *out);
vlmn_status vlmn_concepts_load(const char *path, vlmn_concepts *out);
vlmn_status vlmn_concepts_default(vlmn_concepts *out);  /* data/concepts.txt, compiled in */
void vlmn_concepts_free(vlmn_concepts *c);

typedef struct vlmn_label_opts {
    const char *run_dir;
    const char *neurons;   /* neuron SPEC; NULL: every traced neuron */
    const char *samples;   /* sample SPEC (NULL: "top:3,7,11,15,19", or with as_explanations
                            * the explainer's "top:1,5,9,13,17") */
    const vlmn_concepts *concepts;
    int top_k;             /* concepts kept per neuron (default 5) */
    const char *clip_name; /* labels.clip (the CLIP folder's name) */
    FILE *out;             /* LAYER:NEURON \t concept \t r lines (NULL: none) */
    /* Also store each labelled neuron's rank-1 concept as an `explanations` row
     * (explainer "label:<clip_name>", images "clip", sampling "top" for top:1,5,9,13,17 or
     * "random" for random:5:SEED, the only sample SPECs allowed then) so that simulate /
     * score / stats --table2 treat it as any explanation. Its samples must be disjoint
     * from the neuron's scoring samples (top ranks 3,7,11,15,19), else VLMN_E_ARG. A row
     * with the same text is left as it is; a changed one replaces the old row and drops
     * the old one's simulations and scores. NaN r: a 'failed' row (nothing to simulate). */
    bool as_explanations;
    const char *concepts_name; /* explanations.settings "concepts" (NULL: "default") */
} vlmn_label_opts;
void vlmn_label_opts_default(vlmn_label_opts *o);

typedef struct vlmn_label_summary {
    int64_t neurons, skipped, samples;  /* labelled, not visual/multi-modal, distinct samples */
    int64_t expl_new, expl_same;        /* as_explanations: rows written / left unchanged */
} vlmn_label_summary;

/* Labels every selected visual or multi-modal neuron (classification label) with the
 * top_k concepts whose CLIP map (vlmn_clip_sample_map of the concept's text) best
 * matches its traced activations: Pearson r over the visual tokens of its samples
 * concatenated. One vision pass per distinct sample, one text pass per concept. Rows
 * replace the neuron's previous ones for this clip_name in RUN/run.sqlite `labels`.
 * Every selected (neuron, sample) pair must be traced, else VLMN_E_NOTFOUND naming the
 * `vlmn trace` command (checked before anything is computed). `clip` and `tokenize`
 * are borrowed. */
vlmn_status vlmn_label_run(const vlmn_label_opts *o, vlmn_clip *clip, vlmn_clip_tokenize_fn tokenize, void *tok_user,
                           vlmn_label_summary *sum);
/* Only the checks of vlmn_label_run (run, classification, traces), without CLIP. */
vlmn_status vlmn_label_check(const vlmn_label_opts *o);

#ifdef __cplusplus
}
#endif
#endif
