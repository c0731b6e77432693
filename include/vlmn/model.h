/* LLaVA-1.5 engine: loads the text model (`llama`) and the vision projector (`clip`)
 * GGUF pair and runs the forward pass with HF-transformers semantics, handing every
 * FFN neuron's activation on every token to a capture callback.
 * Flow: image/tokens -> [this] -> capture hook -> recorder. */
#ifndef VLMN_MODEL_H
#define VLMN_MODEL_H

#include "vlmn/vlmn.h"
#include "vlmn/kernels.h"
#include "vlmn/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a neuron's activation is read. */
typedef enum vlmn_hook {
    VLMN_HOOK_SILU_GATE = 0, /* SiLU(W_gate x): "output of the activation function" (paper) */
    VLMN_HOOK_SWIGLU = 1     /* SiLU(W_gate x) * (W_up x): input of down_proj */
} vlmn_hook;

/* Role of a position in the sequence. */
typedef enum vlmn_modality {
    VLMN_MOD_IMAGE = 0,  /* one of the image embeddings */
    VLMN_MOD_TEXT = 1,   /* answer/description token: the paper's "text tokens" */
    VLMN_MOD_PROMPT = 2  /* system prompt, role words, question, BOS */
} vlmn_modality;

typedef struct vlmn_llava vlmn_llava;
struct vlmn_gguf;

typedef struct vlmn_llava_params {
    int n_threads;             /* <= 0: all CPUs */
    vlmn_precision precision;  /* FAST (default) or EXACT */
} vlmn_llava_params;

typedef struct vlmn_llava_info {
    const char *arch;      /* model family from the architecture table, e.g. "llava-1.5" */
    int n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab;
    int n_ctx;             /* context length (positions); 0: the file states none */
    int image_size;        /* e.g. 336 */
    int n_image_tokens;    /* per image (tile): (image_size / patch_size)^2, e.g. 576;
                            * InternVL (image_size / patch_size / 2)^2, e.g. 256 */
    float image_mean[3], image_std[3];
    const char *template_name; /* the family's chat template (prompt.h): "llava-v1", "internvl" */
    int max_tiles;         /* dynamic tiling (InternVL): default most tiles per image (12),
                            * plus a thumbnail; 0: one image_size^2 input (LLaVA) */
} vlmn_llava_info;

/* text_path may also be a Hugging Face folder (config.json + safetensors, see
 * docs/hf.md); then mmproj_path must be NULL.
 * mmproj_path (mmproj) may be NULL: text-only model, samples without image positions. */
vlmn_status vlmn_llava_load(const char *text_path, const char *mmproj_path,
                            const vlmn_llava_params *params, vlmn_llava **out);
/* The same from GGUF files already open (e.g. vlmn_gguf_open_memory); takes ownership
 * of both handles: they are closed by vlmn_llava_free, or at once on failure. mmproj
 * may be NULL (text-only). */
vlmn_status vlmn_llava_load_gguf(struct vlmn_gguf *text, struct vlmn_gguf *mmproj,
                                 const vlmn_llava_params *params, vlmn_llava **out);
void vlmn_llava_free(vlmn_llava *m);

/* Hugging Face folders (src/model/load_hf.c). A folder with a config.json? */
bool vlmn_hf_is_folder(const char *path);
/* The first `architectures` entry of a parsed config.json (a cJSON object), or NULL. */
const char *vlmn_hf_architecture(const void *config_json);
/* An llava-hf layout folder as the (text, mmproj) GGUF views vlmn_llava_load_gguf takes,
 * mapping the safetensors weights without copying them (Q/K: a row-permuted copy). Both
 * owned by the caller (vlmn_gguf_close); other architectures: VLMN_E_UNSUPPORTED. */
vlmn_status vlmn_hf_llava_open(const char *dir, struct vlmn_gguf **text, struct vlmn_gguf **mmproj);
/* The same for the original LLaVA layout too (liuhaotian/llava-v1.5-7b:
 * LlavaLlamaForCausalLM, model.* and model.mm_projector.0/2 tensors) with its separate
 * CLIP folder: clip_dir, or NULL to look next to dir for a folder named after
 * mm_vision_tower (see docs/hf.md). clip_dir with the llava-hf layout is VLMN_E_ARG. */
vlmn_status vlmn_hf_llava_open_clip(const char *dir, const char *clip_dir, struct vlmn_gguf **text,
                                    struct vlmn_gguf **mmproj);
/* The CLIP folder an original-layout folder uses when none is given (*clip_dir
 * vlmn_malloc'd); NULL for other layouts. */
vlmn_status vlmn_hf_clip_folder(const char *dir, char **clip_dir);
/* The prompt template (prompt.h) for the folder's chat template (chat_template.json, else
 * tokenizer_config.json's chat_template; src/model/hf_chat.c): "llava-hf" for LLaVA-1.5's
 * USER/ASSISTANT template, "llava-v1"/"vicuna-v1" when it holds their system prompt;
 * *name NULL (VLMN_OK) when the folder has none; an unknown template is VLMN_E_UNSUPPORTED
 * naming the file. source (optional) gets the file it came from. */
vlmn_status vlmn_hf_chat_template(const char *dir, const char **name, char *source, size_t source_cap);
const char *vlmn_hf_chat_classify(const char *jinja_template);
const vlmn_llava_info *vlmn_llava_get_info(const vlmn_llava *m);
/* The tokenizer built from the text model's vocabulary (owned by the model). */
struct vlmn_tok *vlmn_llava_tokenizer(const vlmn_llava *m);

/* The vision input of one image as this model takes it (src/model/inputs.c), for
 * every command that runs images: max_tiles == 0 in the info: one S x S input made with
 * `mode` (LLaVA's pad / crop); else InternVL's dynamic tiling with 1..max_tiles tiles
 * (<= 0: the info's default; at most VLMN_IMG_MAX_TILES) and the thumbnail when there
 * is more than one tile (`mode` unused). max_tiles > 1 on a model without tiling is
 * VLMN_E_ARG. pix: n_tiles planar [3 x S x S] inputs (vlmn_malloc'd, vlmn_free); cols x
 * rows the tile grid (1 x 1 without tiling); n_image_tokens = n_tiles x the info's. */
typedef struct vlmn_vision_input {
    float *pix;
    int n_tiles, cols, rows;
    int n_image_tokens;
} vlmn_vision_input;
vlmn_status vlmn_llava_image_input(const vlmn_llava *m, const vlmn_image *img, vlmn_img_mode mode, int max_tiles,
                                   vlmn_vision_input *out);

/* The chat template (prompt.h) of the family whose text file has this
 * general.architecture ("llama" -> "llava-v1", "internlm2" -> "internvl"); NULL when the
 * architecture is not in the table. */
const char *vlmn_arch_template(const char *text_arch);
/* Whether `family` is a model family of the table (vlmn_llava_info.arch, e.g. "internvl-2.5"). */
bool vlmn_arch_known(const char *family);

/* Whether prompt template `tmpl` (prompt.h) fits the model: a family with its own chat
 * template (InternVL: "internvl") takes only that one, the others not it, and the
 * template's special tokens (<|im_start|>, <|im_end|>, <img>, </img>) must be control
 * tokens of the vocabulary. VLMN_E_ARG / VLMN_E_FORMAT naming model_path. */
vlmn_status vlmn_llava_check_template(const vlmn_llava *m, const char *model_path, const char *tmpl);
/* Whether the model can take up to max_tiles tiles per image (0: its own default): a
 * one-input model (LLaVA) takes no --max-tiles > 1, and the tiles + thumbnail must fit the
 * context. VLMN_E_ARG / VLMN_E_RANGE naming model_path. */
vlmn_status vlmn_llava_check_tiles(const vlmn_llava *m, const char *model_path, int max_tiles);

/* Capture callback: called once per captured layer, in layer order, with the
 * activations of all n_tokens positions of the sample: acts[t * n_ff + j]. The block
 * is only valid during the call. */
typedef void (*vlmn_capture_fn)(void *user, int layer, const float *acts,
                                int64_t n_tokens, int64_t n_ff);

typedef struct vlmn_forward_opts {
    vlmn_capture_fn capture;     /* NULL: no capture, no cost */
    void *capture_user;
    vlmn_hook hook;
    const uint8_t *capture_layers; /* [n_layer] 1 = capture; NULL = all */
    /* Pruning: neuron_mask[l] is NULL or [n_ff] bytes, 1 = zero this neuron before
     * down_proj in layer l (changes everything downstream). NULL = no mask.
     * The activation is zeroed right after SiLU, so both hooks read 0 for it. */
    const uint8_t *const *neuron_mask;
    /* Logits: NULL = skip the final norm and vocabulary projection. Otherwise
     * [n_logits x n_vocab] for the last n_logits positions. */
    float *logits;
    int64_t n_logits;
    /* vlmn_llava_forward only: run decoder layers 0..n_layers_run-1 and stop (0 = all),
     * e.g. when only shallow layers are captured; logits must then be NULL. */
    int n_layers_run;
    /* Images made of tiles (InternVL's dynamic tiling): `image` holds n_tiles
     * preprocessed [3 x S x S] tiles one after the other, and the sequence has
     * n_tiles * n_image_tokens image positions, tile after tile. 0 = 1. In a step,
     * every sequence's image has this many tiles. */
    int n_tiles;
} vlmn_forward_opts;

/* One sample: `ids` has n entries; positions with id -1 take the image embeddings in
 * order (there must be exactly n_image_tokens of them, or none when image == NULL).
 * `image` is the preprocessed [3 x S x S] float input (see vlmn_image_preprocess). */
vlmn_status vlmn_llava_forward(vlmn_llava *m, const int32_t *ids, int64_t n,
                               const float *image, const vlmn_forward_opts *opts);


/* ---- Incremental decoding (docs/generate.md) ----
 * A KV cache holds one sequence's keys (after RoPE) and values for every layer, in
 * f32: vlmn_kv_bytes = 2 * n_layer * cap * n_head_kv * head_dim * 4 bytes (LLaVA-7B:
 * 1 MiB per position, 2.5 GiB for 2,600 positions). */
typedef struct vlmn_kv vlmn_kv;
uint64_t vlmn_kv_bytes(const vlmn_llava *m, int64_t cap);
/* An empty cache for up to `cap` positions (at most the model's context length). */
vlmn_status vlmn_kv_create(const vlmn_llava *m, int64_t cap, vlmn_kv **out);
void vlmn_kv_free(vlmn_kv *kv);
int64_t vlmn_kv_len(const vlmn_kv *kv);   /* positions held */
int64_t vlmn_kv_cap(const vlmn_kv *kv);
/* Forget every position from `len` on (len < vlmn_kv_len), e.g. to reuse a prefix. */
void vlmn_kv_truncate(vlmn_kv *kv, int64_t len);

/* One step over n_seq sequences at once: sequence b appends ids[b][0..n[b]) (-1 =
 * image positions, then images[b] must be given, as in vlmn_llava_forward; images may
 * be NULL) at positions vlmn_kv_len(kv[b]).. and attends to its own cache. All rows go
 * through each GEMM together (a prefill is one step with the whole prompt, a batched
 * decode one step with n[b] = 1 for every b). opts as for vlmn_llava_forward: the
 * capture callback gets the rows of all sequences, sequence after sequence
 * (n_tokens = sum n[b]); neuron_mask applies to every row; logits, when given, is
 * [n_seq x n_logits x n_vocab]: the last n_logits rows of each sequence (n_logits <=
 * every n[b]). The caches grow by n[b]; on error they are left as they were. */
vlmn_status vlmn_llava_step(vlmn_llava *m, int n_seq, vlmn_kv *const *kv, const int32_t *const *ids,
                            const int64_t *n, const float *const *images, const vlmn_forward_opts *opts);

/* ---- Generation (src/model/decode.c) ---- */
/* Next token from logits[n_vocab]: temperature <= 0 is greedy (the first maximum);
 * otherwise softmax(logits / temperature) restricted to the smallest set of most
 * probable tokens whose mass reaches top_p (top_p >= 1 or <= 0: all), sampled with
 * *rng (advanced; any seed value). Deterministic for a given rng state. */
int32_t vlmn_sample_token(const float *logits, int n_vocab, float temperature, float top_p, uint64_t *rng);

/* Called for every generated token (streaming): sequence index, its token id, the
 * number of tokens it has generated so far (1 for the first). */
typedef void (*vlmn_token_fn)(void *user, int seq, int32_t id, int n_generated);

typedef struct vlmn_gen_params {
    int max_tokens;          /* stop after this many new tokens (>= 1) */
    float temperature;       /* <= 0: greedy */
    float top_p;             /* nucleus mass, (0, 1]; >= 1 = all tokens */
    int32_t eos;             /* stop token (the tokenizer's EOS); -1: none. Not kept in out */
    const int32_t *stop;     /* [n_stop] more stop tokens (InternVL: <|im_end|>), not kept either */
    int n_stop;
    const vlmn_forward_opts *opts; /* capture and neuron_mask (logits and n_tiles ignored:
                                    * vlmn_gen_seq.n_tiles); NULL = none */
    vlmn_token_fn on_token;  /* NULL = none */
    void *user;
} vlmn_gen_params;

typedef struct vlmn_gen_seq {
    const int32_t *ids;      /* the prompt (-1 = image positions) */
    int64_t n;
    const float *image;      /* preprocessed pixels or NULL */
    int n_tiles;             /* tiles in image (vlmn_vision_input.n_tiles; 0 = 1) */
    uint64_t seed;           /* sampling seed of this sequence (unused when greedy) */
    int32_t *out;            /* [max_tokens] generated ids (caller's buffer) */
    int n_out;               /* set: how many */
    bool hit_eos;            /* set: stopped at EOS or a stop token (else at max_tokens) */
} vlmn_gen_seq;

/* Generates for n_seq prompts together: each prompt is prefilled on its own (one
 * step), then all unfinished sequences advance one token per step, batched through
 * the GEMMs. A sequence's tokens do not depend on which others run beside it (up to
 * rounding: each GEMM row is computed on its own, but on AVX2 a step of at most 8 rows
 * runs gemv_avx2, whose f32 sums are ordered unlike the tile kernel's). */
vlmn_status vlmn_generate(vlmn_llava *m, vlmn_gen_seq *seqs, int n_seq, const vlmn_gen_params *p);

/* ---- Architecture-neutral names (docs/engine.md) ----
 * The engine is built from parts (vision encoder, projector, decoder) that an
 * architecture table picks from the files' metadata; vlmn_llava_* is its historical
 * name and works for every listed architecture (vlmn_llava_info.arch says which). */
typedef vlmn_llava vlmn_model;
typedef vlmn_llava_params vlmn_model_params;
typedef vlmn_llava_info vlmn_model_info;
static inline vlmn_status vlmn_model_load(const char *text_path, const char *mmproj_path,
                                          const vlmn_model_params *params, vlmn_model **out)
{
    return vlmn_llava_load(text_path, mmproj_path, params, out);
}
static inline void vlmn_model_free(vlmn_model *m) { vlmn_llava_free(m); }
static inline const vlmn_model_info *vlmn_model_get_info(const vlmn_model *m) { return vlmn_llava_get_info(m); }
static inline vlmn_status vlmn_model_forward(vlmn_model *m, const int32_t *ids, int64_t n, const float *image,
                                             const vlmn_forward_opts *opts)
{
    return vlmn_llava_forward(m, ids, n, image, opts);
}
static inline vlmn_status vlmn_model_step(vlmn_model *m, int n_seq, vlmn_kv *const *kv,
                                          const int32_t *const *ids, const int64_t *n,
                                          const float *const *images, const vlmn_forward_opts *opts)
{
    return vlmn_llava_step(m, n_seq, kv, ids, n, images, opts);
}

/* Wall seconds spent in the parts of the last vlmn_llava_forward call (the cost of
 * taking them is a few clock reads per layer), for `vlmn bench forward`. */
typedef struct vlmn_llava_times {
    double total;      /* the whole call */
    double vision;     /* vision tower + projector */
    double capture;    /* inside the capture callback */
    double qkv, rope, attention, wo;   /* text attention block (rope includes the input
                                        * embedding lookup and the RoPE table) */
    double norm, ffn_up, act, down;    /* norms, gate+up GEMMs, SiLU*up, down GEMM */
    double logits;     /* final norm + vocabulary projection */
} vlmn_llava_times;
void vlmn_llava_last_times(const vlmn_llava *m, vlmn_llava_times *out);

#ifdef __cplusplus
}
#endif
#endif
