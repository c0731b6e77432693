/* Model and dataset generators: seeded random LLaVA-1.5 GGUF pairs in llama.cpp's layout
 * (a `llama` text model and a legacy `clip` mmproj), the constructed "planted" model whose
 * chosen FFN neurons are visual/text/multi-modal/unknown by design, and the procedurally
 * drawn dataset that goes with it. Sits left of everything: it only writes files. */
#ifndef VLMN_MAKEMODEL_H
#define VLMN_MAKEMODEL_H

#include "vlmn/vlmn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vlmn_mm_config {
    /* text model (llama) */
    int n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab, n_ctx;
    float rms_eps, rope_base;
    /* vision tower (clip) and projector */
    int v_size, v_patch, v_embd, v_ff, v_layer, v_head, v_proj_dim;
    float v_eps;
    uint32_t type;  /* vlmn_type of the weight matrices: F32, F16, BF16 or Q8_0 */
    uint64_t seed;
    /* VLMN_MM_LLAVA: llama + legacy llava clip. VLMN_MM_INTERNVL: InternVL 2.5 as
     * llama.cpp's converter writes it: internlm2 text model + clip mmproj with
     * projector_type internvl (InternViT: conv bias, no pre-LN, ls1/ls2; pixel shuffle
     * 0.5 + mm.model.mlp.{0,1,3}). --format hf is LLaVA only. */
    int arch;
} vlmn_mm_config;
enum { VLMN_MM_LLAVA = 0, VLMN_MM_INTERNVL = 1 };

/* Fill `cfg` with a preset ("tiny", "llava-7b", "planted", "internvl-tiny",
 * "internvl-8b") for weight type `type`
 * (tiny's sizes depend on it: Q8_0 needs rows that are multiples of 32).
 * VLMN_E_ARG for an unknown preset. */
vlmn_status vlmn_mm_preset(const char *name, uint32_t type, vlmn_mm_config *cfg);

/* Check that the sizes are usable (heads divide widths, Q8_0 rows, vocabulary size). */
vlmn_status vlmn_mm_validate(const vlmn_mm_config *cfg);

/* Write PREFIX-text.gguf and PREFIX-mmproj.gguf with seeded random weights, streamed
 * tensor by tensor (memory stays small whatever the model size). `progress` may be
 * NULL; otherwise it receives one line per tensor written. */
vlmn_status vlmn_mm_write_random(const vlmn_mm_config *cfg, const char *prefix,
                                 void (*progress)(void *user, const char *line), void *user);

/* The same model (same seed: the same weights, bit for bit) as a Hugging Face folder DIR
 * in the llava-hf layout (docs/hf.md): config.json, preprocessor_config.json,
 * tokenizer_config.json, tokenizer.model (SentencePiece protobuf of the same vocabulary),
 * two safetensors shards (vision tower + projector, language model) and
 * model.safetensors.index.json. Q/K rows in HF order; the CLIP tower gets the last block
 * and post-LN the legacy mmproj lacks (vision_feature_layer -2 leaves them unused).
 * Weight type F32, F16 or BF16. */
vlmn_status vlmn_mm_write_random_hf(const vlmn_mm_config *cfg, const char *dir,
                                    void (*progress)(void *user, const char *line), void *user);

/* Write the planted model: PREFIX-text.gguf, PREFIX-mmproj.gguf and PREFIX-planted.json
 * (the planted neurons and their true types). Uses cfg->seed, cfg->type, cfg->n_vocab,
 * cfg->v_size and cfg->v_patch; the other sizes are fixed by the construction. */
vlmn_status vlmn_mm_write_planted(const vlmn_mm_config *cfg, const char *prefix);

/* JSON: data.json (LLaVA layout); JSONL: data.jsonl; QA: qa.jsonl, the same images
 * with the question "Which shapes are in the image?" and the reference answer from the
 * scene truth, e.g. "a red circle and a green square" (for `vlmn prune-eval`). */
typedef enum vlmn_mm_format { VLMN_MM_JSON = 0, VLMN_MM_JSONL = 1, VLMN_MM_QA = 2 } vlmn_mm_format;

/* Draw `n` PNG images into DIR/images/ and write DIR/data.json (LLaVA detail_23k
 * layout) or DIR/data.jsonl ({"id","image","question","answer"} per line), plus
 * DIR/shapes.json (what each image shows). Image paths are relative to DIR. */
vlmn_status vlmn_mm_make_dataset(const char *dir, int n, uint64_t seed, vlmn_mm_format fmt);

#ifdef __cplusplus
}
#endif
#endif
