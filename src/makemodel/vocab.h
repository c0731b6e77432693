/* SentencePiece-style BPE vocabulary for generated models (makemodel module):
 * <unk> <s> </s>, the 256 byte-fallback pieces <0x00>..<0xFF>, then pieces learned by
 * BPE merges over the built-in corpus (score = -merge rank, as spm_train's BPE trainer),
 * then the corpus' single characters (most frequent first), exactly n pieces. */
#ifndef VLMN_MAKEMODEL_VOCAB_H
#define VLMN_MAKEMODEL_VOCAB_H

#include "vlmn/vlmn.h"

/* Token types as stored in tokenizer.ggml.token_type (SentencePiece's). */
enum { MM_TOK_NORMAL = 1, MM_TOK_UNKNOWN = 2, MM_TOK_CONTROL = 3, MM_TOK_BYTE = 6 };

typedef struct vlmn_mm_vocab {
    int32_t n;
    char **pieces;   /* [n] UTF-8, NUL-terminated; U+2581 marks a word start */
    float *scores;   /* [n] */
    int32_t *types;  /* [n] MM_TOK_* */
    int32_t n_merges;        /* pieces learned by merging (including padding merges) */
    int32_t n_corpus_merges; /* of which learned from the corpus itself */
} vlmn_mm_vocab;

/* The built-in corpus (NUL-terminated UTF-8, lines separated by '\n'). */
const char *vlmn_mm_corpus(void);

/* Smallest vocabulary size possible: 3 + 256 + the corpus' distinct characters. */
int32_t vlmn_mm_vocab_min_size(void);

/* Build a vocabulary of exactly n pieces. When the corpus has no pair left to merge,
 * further merges of existing pieces are drawn from a fixed pseudo-random sequence (the
 * result depends on n only), so every piece stays reachable by merges.
 * VLMN_E_ARG if n < vlmn_mm_vocab_min_size(). Free with vlmn_mm_vocab_free. */
vlmn_status vlmn_mm_vocab_build(int32_t n, vlmn_mm_vocab **out);
void vlmn_mm_vocab_free(vlmn_mm_vocab *v);

/* Id of a piece, or -1. Linear scan: for set-up code, not per-token use. */
int32_t vlmn_mm_vocab_find(const vlmn_mm_vocab *v, const char *piece);

#endif
