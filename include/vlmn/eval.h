/* Question answering on top of the engine: a QA set (the dataset formats of
 * dataset.h), batched generation of answers (vlmn_generate), the teacher-forced
 * log-likelihood of a reference answer, and the offline grades (exact match, token F1).
 * Used by `vlmn generate` and `vlmn prune-eval`. Flow: dataset + model -> [this] ->
 * answers and grades. See docs/generate.md. */
#ifndef VLMN_EVAL_H
#define VLMN_EVAL_H

#include "vlmn/vlmn.h"
#include "vlmn/model.h"
#include "vlmn/image.h"
#include "vlmn/llm.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vlmn_qa_item {
    char *id, *question, *answer; /* answer: the reference, NULL when the file has none */
    char *image;                  /* path (images_dir joined), NULL when text-only */
} vlmn_qa_item;

typedef struct vlmn_qa_set {
    vlmn_qa_item *items;
    int64_t n;
} vlmn_qa_set;

/* Read every sample of a dataset file (vlmn_ds_open, AUTO format). Image paths are
 * joined to images_dir (NULL: the file's folder). need_answers: a sample without a
 * reference answer is an error naming it. A sample the dataset marks unusable is an
 * error too (a QA set is small: everything is read up front). */
vlmn_status vlmn_qa_load(const char *path, const char *images_dir, bool need_answers, vlmn_qa_set *out);
void vlmn_qa_free(vlmn_qa_set *s);

typedef struct vlmn_qa_params {
    const char *template_name;  /* prompt.h template, e.g. "llava-v1" */
    vlmn_img_mode mode;
    int max_tiles;              /* tiled models (InternVL): most tiles per image; 0: the model's */
    vlmn_gen_params gen;        /* decoding; gen.eos < 0 here means the tokenizer's EOS; with
                                 * no gen.stop the template's end-of-turn token stops too */
} vlmn_qa_params;

/* Answers for items[0..n) generated in one batch: answers[i] (vlmn_malloc'd text),
 * tokens[i] (vlmn_malloc'd ids, n_tokens[i]). Item i samples with seed gen.seed-base
 * `seed_base + index[i]` (index NULL: i), so answers do not depend on the batching. */
vlmn_status vlmn_qa_answer(vlmn_llava *m, const vlmn_qa_item *items, int n, const int64_t *index, uint64_t seed_base,
                           const vlmn_qa_params *p, char **answers, int32_t **tokens, int *n_tokens);

/* Mean natural-log likelihood per token of item->answer's tokens (the positions the
 * template labels text) given the image and question, teacher-forced in one prefill,
 * prompted and preprocessed as p says (template, mode, max_tiles; p->gen unused);
 * *n_tok gets their count. */
vlmn_status vlmn_qa_loglik(vlmn_llava *m, const vlmn_qa_item *item, const vlmn_qa_params *p,
                           const uint8_t *const *neuron_mask, double *mean_ll, int *n_tok);

/* Offline grades, SQuAD style: lower case, punctuation and the articles a/an/the
 * removed, whitespace split. exact = 1 if the normalised strings are equal;
 * F1 over the multiset of words (1 when both are empty). */
double vlmn_grade_exact(const char *answer, const char *reference);
double vlmn_grade_f1(const char *answer, const char *reference);


/* ---- prune-eval (paper B.1, Table 3, Fig. 12) ----
 * For the full model, every tau (mask p_u >= tau from RUN's classification) and
 * n_random_seeds random masks of each tau's size: answer every question, grade it
 * (exact, F1, teacher-forced mean log-likelihood of the reference), store it in
 * OUT/eval.sqlite (table `answers`, one row per config and question, committed batch by
 * batch: a killed run resumes where it stopped), then write OUT/table3.txt (also on
 * `table`), OUT/fig12.svg. With judge_model set, every answer is then graded by the
 * LLM judge (vlmn_judge_answers) and Table 3 gets judge accuracy / score rows. All masks are built and checked before OUT is touched. */
typedef struct vlmn_prune_eval_opts {
    const char *run_dir, *data, *images, *model, *mmproj, *out_dir;
    const double *tau;
    int n_tau;
    int n_random_seeds;
    int batch;
    int n_threads;
    vlmn_precision precision;
    vlmn_qa_params qa;          /* template, mode, gen (max_tokens, greedy...) */
    FILE *table;                /* Table 3 layout printed here too (NULL: not) */
    FILE *progress;             /* one line per batch (NULL: quiet) */
    const char *judge_model;    /* LLM judge (Video-ChatGPT protocol) model; NULL: no judge */
    vlmn_llm_opts judge;        /* its client options (base_url = --judge URL) */
} vlmn_prune_eval_opts;

vlmn_status vlmn_prune_eval(const vlmn_prune_eval_opts *o);

/* ---- LLM judge (Video-ChatGPT protocol: yes/no + score 0..5) ----
 * The chat body for one answer; the lenient parse of the Python-dict reply
 * ("{'pred': 'yes', 'score': 4}"); and grading every answer of an eval database that
 * has no grade by `model` yet (judge_yes, judge_score, judge_model; a reply still
 * malformed after the client's retries leaves judge_yes NULL: a failure, never "no"). */
vlmn_status vlmn_judge_body(const char *model, const char *question, const char *reference, const char *answer,
                            char **json);
vlmn_status vlmn_judge_parse(const char *content, int *yes, double *score);
struct sqlite3;
vlmn_status vlmn_judge_answers(struct sqlite3 *db, const char *path, const char *model, const vlmn_llm_opts *lo,
                               FILE *progress, int64_t *n_judged, int64_t *n_failed);

#ifdef __cplusplus
}
#endif
#endif
