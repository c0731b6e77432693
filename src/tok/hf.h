/* Internal: the Hugging Face `tokenizer.json` pipeline (src/tok/hf_*.c) behind the
 * vlmn_tok API. Text is handled as code points, each with the byte range [a, b) of the
 * input it came from (inserted characters have a == b). See docs/tokenizer.md.
 * Flow: hf_json.c (parse) -> hf_text.c (normalizers, pre-tokenizers) -> hf_bpe.c
 * (added tokens, BPE, post-processor, decoders). */
#ifndef VLMN_TOK_HF_H
#define VLMN_TOK_HF_H

#include "vlmn/tokenizer.h"

/* ---- code-point strings with source ranges -------------------------------------- */
typedef struct hf_str {
    uint32_t *cp;
    int64_t *a, *b;
    size_t n, cap;
    bool oom;
} hf_str;

void hf_str_free(hf_str *s);
void hf_str_push(hf_str *s, uint32_t cp, int64_t a, int64_t b);
/* Append s[i, j) of src. */
void hf_str_append(hf_str *dst, const hf_str *src, size_t i, size_t j);
/* UTF-8 bytes -> code points; each byte of invalid UTF-8 becomes U+FFFD. */
void hf_str_from_utf8(hf_str *s, const char *text, size_t len);
/* Code points -> UTF-8 (returns bytes written; buf needs 4 * n). */
size_t hf_utf8_put(uint32_t cp, char *out);
/* Decode one code point of a NUL-free UTF-8 string (valid: from cJSON); 0 on end. */
size_t hf_utf8_get(const char *s, size_t n, uint32_t *cp);

bool hf_is_ws(uint32_t c);
bool hf_is_word(uint32_t c); /* \w: letter, mark, number, connector punctuation */
uint32_t hf_byte_char(unsigned b);   /* GPT-2's bytes_to_unicode */
int hf_char_byte(uint32_t c);        /* inverse, -1 if none */

/* ---- patterns: a literal or one of the known regexes ---------------------------- */
enum { HF_PAT_LIT = 0, HF_RE_GPT2, HF_RE_CLIP, HF_RE_WS, HF_RE_WORDS };
typedef struct hf_pat {
    int kind;
    uint32_t *lit; /* code points of a literal */
    size_t n;
} hf_pat;

/* ---- normalizers, pre-tokenizers, decoders (trees from the JSON) ----------------- */
enum {
    HF_N_SEQ = 1, HF_N_PREPEND, HF_N_REPLACE, HF_N_NFC, HF_N_NFD, HF_N_NFKC, HF_N_NFKD,
    HF_N_LOWER, HF_N_STRIP,
    HF_P_SEQ, HF_P_METASPACE, HF_P_BYTELEVEL, HF_P_SPLIT, HF_P_WHITESPACE, HF_P_WSSPLIT,
    HF_D_SEQ, HF_D_REPLACE, HF_D_BYTEFALLBACK, HF_D_FUSE, HF_D_STRIP, HF_D_METASPACE,
    HF_D_BYTELEVEL, HF_D_BPE
};
enum { HF_SCHEME_ALWAYS, HF_SCHEME_FIRST, HF_SCHEME_NEVER };
enum { HF_B_REMOVED, HF_B_ISOLATED, HF_B_MERGED_PREV, HF_B_MERGED_NEXT, HF_B_CONTIGUOUS };

typedef struct hf_node hf_node;
struct hf_node {
    int type;
    hf_node *kids;
    int n_kids;
    hf_pat pat;           /* Replace / Split pattern; Metaspace replacement */
    uint32_t *str;        /* Prepend / Replace content / Strip content / BPE suffix */
    size_t n_str;
    int scheme, behavior; /* Metaspace prepend_scheme; Split behaviour */
    bool flag_a, flag_b;  /* Strip left/right; Metaspace split; ByteLevel prefix/regex;
                             Split invert */
    int start, stop;      /* Strip decoder */
};

void hf_normalize(const hf_node *n, hf_str *s);
/* Pre-tokenize `in` (already normalized): the resulting words are appended to *out as
 * separate strings. at_origin: `in` starts at input offset 0. */
typedef struct hf_words {
    hf_str *w;
    size_t n, cap;
    bool oom;
} hf_words;
void hf_words_free(hf_words *w);
void hf_pre_tokenize(const hf_node *p, const hf_str *in, bool at_origin, hf_words *out);
/* Regex/literal matches over s: [a, b) pairs, returns count (*m vlmn_malloc'd). */
size_t hf_find(const hf_pat *p, const uint32_t *s, size_t n, size_t **m, bool *oom);

/* ---- the tokenizer --------------------------------------------------------------- */
typedef struct hf_added {
    int32_t id;
    uint32_t *cp;
    size_t n;
    bool special, lstrip, rstrip, normalized, single_word;
} hf_added;

typedef struct vlmn_hftok {
    hf_node *normalizer, *pre, *decoder; /* NULL: none */
    /* BPE */
    uint32_t *prefix, *suffix; /* continuing_subword_prefix / end_of_word_suffix (NULL: none) */
    size_t n_prefix, n_suffix;
    bool fuse_unk, byte_fallback, ignore_merges;
    int32_t unk;                   /* -1: none */
    int32_t byte_id[256];
    uint64_t *merge_keys;          /* open addressing: (left << 32 | right) + 1, 0 empty */
    uint32_t *merge_rank, *merge_new;
    uint64_t merge_mask;
    int32_t *vocab_slots;          /* piece bytes -> id (vocab, not added tokens) */
    uint64_t vocab_mask;
    /* added tokens, sorted by first code point */
    hf_added *added;
    int32_t n_added;
    bool *is_special;              /* [n_vocab] skipped by decode */
    /* post-processor */
    int32_t pre_ids[4], post_ids[4];
    int n_pre, n_post;
    char *name;
} vlmn_hftok;

void hf_tok_free(vlmn_hftok *h);
/* Vocabulary lookup by piece bytes; -1 if absent. */
int32_t hf_vocab_find(const vlmn_tok *t, const vlmn_hftok *h, const char *s, size_t n);
vlmn_status hf_encode(const vlmn_tok *t, const vlmn_hftok *h, const char *text, size_t len, int flags,
                      int32_t **ids, int64_t **spans, int64_t *n);
vlmn_status hf_decode(const vlmn_tok *t, const vlmn_hftok *h, const int32_t *ids, int64_t n, char **text,
                      size_t *len);

/* tokenizer.c: attach the pipeline to a vocabulary built by vlmn_tok_create (t owns h). */
void vlmn_tok_attach_hf(vlmn_tok *t, vlmn_hftok *h, int32_t unk);
const vlmn_hftok *vlmn_tok_hf(const vlmn_tok *t);

#endif
