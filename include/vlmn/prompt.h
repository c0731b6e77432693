/* Prompt templates for LLaVA-1.5: (question, answer) -> prompt text -> token ids with an
 * image slot, every position labelled image / text (the answer) / prompt. Tokenisation
 * follows LLaVA's tokenizer_image_token (mm_utils.py) over HF's slow LlamaTokenizer.
 * Flow: tokenizer (tokenizer.h) -> [this] -> model forward (model.h). See docs/tokenizer.md. */
#ifndef VLMN_PROMPT_H
#define VLMN_PROMPT_H

#include "vlmn/vlmn.h"
#include "vlmn/model.h"
#include "vlmn/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The placeholder LLaVA splits prompts at. */
#define VLMN_PROMPT_IMAGE "<image>"
/* Id written at image positions (model.h: "positions with id -1 take the image
 * embeddings in order"). LLaVA itself uses IMAGE_TOKEN_INDEX = -200 once. */
#define VLMN_PROMPT_IMAGE_ID (-1)

/* Template names, NULL-terminated: "llava-v1", "vicuna-v1", "plain", "llava-hf" (the
 * USER/ASSISTANT chat template of llava-hf folders, no system prompt). */
const char *const *vlmn_prompt_templates(void);

/* The prompt text of a template (NUL-terminated, vlmn_malloc'd, caller frees) and the
 * byte range [*ans_begin, *ans_end) of the answer in it (empty when answer is NULL).
 *   llava-v1  (LLaVA conv_llava_v1): SYSTEM " USER: <image>\n" question " ASSISTANT:"
 *             then, with an answer, " " answer "</s>"; SYSTEM = "A chat between a curious
 *             human and an artificial intelligence assistant. The assistant gives
 *             helpful, detailed, and polite answers to the human's questions."
 *   vicuna-v1 (conv_vicuna_v1, LLaVA-1.5's training/eval template): the same with
 *             "user"/"user's" in place of "human"/"human's".
 *   plain     (conv_llava_plain as preprocess_plain uses it): "<image>" answer "\n";
 *             the question must be NULL or "".
 * question NULL is "" for the v1 templates; answer NULL gives the generation prompt
 * (ending in "ASSISTANT:" / "<image>"); for the v1 templates answer "" does too, as
 * get_prompt() treats an empty message like None (plain gives "<image>
"). Question or answer containing "<image>" is
 * VLMN_E_ARG; an unknown template is VLMN_E_NOTFOUND. */
vlmn_status vlmn_prompt_format(const char *template_name, const char *question,
                               const char *answer, char **text, size_t *ans_begin,
                               size_t *ans_end);

/* Tokenise a prompt as LLaVA's tokenizer_image_token: split at every "<image>", tokenise
 * each chunk like HF's slow LlamaTokenizer (legacy): the texts of the BOS, EOS and
 * unknown pieces ("<s>", "</s>", "<unk>") become those ids, every text between them is
 * SentencePiece-encoded on its own (with its own dummy prefix); BOS once at the start
 * (when the vocabulary adds BOS), n_image_tokens positions of id -1 at each "<image>".
 * modality[i] is VLMN_MOD_IMAGE for image positions, VLMN_MOD_TEXT for tokens made
 * from at least one byte of prompt[text_begin, text_end) (so the answer's first token,
 * which carries the separating space, is text), VLMN_MOD_PROMPT for the rest (BOS,
 * system, roles, question, "</s>"). *ids and *modality are vlmn_malloc'd (caller frees). */
vlmn_status vlmn_prompt_tokenize(const vlmn_tok *t, const char *prompt, size_t len,
                                 size_t text_begin, size_t text_end, int n_image_tokens,
                                 int32_t **ids, uint8_t **modality, int64_t *n);

/* The token that ends the assistant's turn in `template_name` when it is not the
 * tokenizer's EOS: "internvl" -> <|im_end|> (a control token of the vocabulary). False
 * (and *id untouched) for the other templates or when the vocabulary lacks it. */
bool vlmn_prompt_stop_token(const vlmn_tok *t, const char *template_name, int32_t *id);

/* vlmn_prompt_format + vlmn_prompt_tokenize with the answer as the text range. The
 * closing "</s>" is labelled prompt: it is the template's separator, not description. */
vlmn_status vlmn_prompt_build(const vlmn_tok *t, const char *template_name,
                              const char *question, const char *answer, int n_image_tokens,
                              int32_t **ids, uint8_t **modality, int64_t *n);

#ifdef __cplusplus
}
#endif
#endif
