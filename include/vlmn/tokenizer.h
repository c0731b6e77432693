/* SentencePiece BPE tokenizer for LLaMA-style vocabularies (GGUF `tokenizer.ggml.model =
 * "llama"`): encoding and decoding exactly as the `sentencepiece` library (0.1.97) does
 * with LLaMA's settings (identity normaliser, dummy prefix, byte fallback).
 * Flow: text -> [this] -> prompt templates (prompt.h) -> model forward. See docs/tokenizer.md. */
#ifndef VLMN_TOKENIZER_H
#define VLMN_TOKENIZER_H

#include "vlmn/vlmn.h"
#include "vlmn/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vlmn_tok vlmn_tok;

/* Token types: the codes of GGUF `tokenizer.ggml.token_type` (= sentencepiece's
 * ModelProto.SentencePiece.Type). Other codes (e.g. 0, "undefined") count as NORMAL. */
typedef enum vlmn_tok_type {
    VLMN_TOKT_NORMAL = 1,
    VLMN_TOKT_UNKNOWN = 2,
    VLMN_TOKT_CONTROL = 3,      /* <s>, </s>: never matched in text, decode to "" */
    VLMN_TOKT_USER_DEFINED = 4, /* matched greedily (longest) in the text, never split */
    VLMN_TOKT_UNUSED = 5,       /* merged, then split back into their parts */
    VLMN_TOKT_BYTE = 6          /* <0xNN>: byte fallback */
} vlmn_tok_type;

/* A vocabulary given as arrays (copied by vlmn_tok_create). */
typedef struct vlmn_tok_vocab {
    int32_t n_vocab;
    const char *const *tokens;   /* [n_vocab] piece bytes (U+2581 for spaces) */
    const uint64_t *token_lens;  /* [n_vocab] byte lengths; NULL: tokens are NUL-terminated */
    const float *scores;         /* [n_vocab] merge priority (higher first); NULL: all 0 */
    const int32_t *types;        /* [n_vocab] vlmn_tok_type; NULL: all NORMAL */
    int32_t bos_id, eos_id;      /* -1: none */
    int32_t unk_id;              /* -1: the first UNKNOWN-type token (one is required) */
    bool add_bos, add_eos;       /* defaults for vlmn_tok_default_flags() */
    bool add_space_prefix;       /* sentencepiece's add_dummy_prefix (LLaMA: true) */
} vlmn_tok_vocab;

/* Build a tokenizer. Byte fallback is on when the vocabulary has BYTE tokens (their
 * pieces must be "<0xNN>", NN upper-case hex); a byte without a piece encodes as unk.
 * Duplicate pieces: the first id wins. *out owned by the caller (vlmn_tok_free). */
vlmn_status vlmn_tok_create(const vlmn_tok_vocab *v, vlmn_tok **out);
/* Build from a GGUF's tokenizer.ggml.* keys (model must be "llama"). Absent optional
 * keys take llama.cpp's defaults: scores 0, types NORMAL, bos 1, eos 2, unk 0,
 * add_bos_token true, add_eos_token false, add_space_prefix true. */
vlmn_status vlmn_tok_from_gguf(const vlmn_gguf *g, vlmn_tok **out);
void vlmn_tok_free(vlmn_tok *t);

/* A SentencePiece `tokenizer.model` file's bytes (ModelProto), as Hugging Face folders
 * hold it, parsed into vocabulary arrays. Only BPE models with the identity normaliser
 * are accepted (LLaMA's); ids outside the vocabulary become -1. The pieces point into
 * `buf`, which must outlive the result. Free with vlmn_tok_spm_free. */
typedef struct vlmn_tok_spm {
    int32_t n;
    const char **tokens;    /* [n] piece bytes (not NUL-terminated) */
    uint64_t *lens;         /* [n] */
    float *scores;          /* [n] */
    int32_t *types;         /* [n] vlmn_tok_type */
    int32_t unk_id, bos_id, eos_id;
    bool add_dummy_prefix;
} vlmn_tok_spm;
vlmn_status vlmn_tok_spm_parse(const void *buf, size_t size, const char *name, vlmn_tok_spm **out);
void vlmn_tok_spm_free(vlmn_tok_spm *s);

/* A Hugging Face `tokenizer.json` (the `tokenizers` library's format): BPE model with
 * merges ("a b" or ["a", "b"]), added tokens, and the normalizers, pre-tokenizers,
 * post-processors and decoders listed in docs/tokenizer.md (LLaMA's and CLIP's among
 * them); anything else is VLMN_E_UNSUPPORTED. `name` (the file) starts every error.
 * The result behaves as any vlmn_tok: VLMN_TOK_BOS / VLMN_TOK_EOS add the specials the
 * post-processor puts before / after a sequence, vlmn_tok_default_flags() says whether it
 * does; encode follows `tokenizers` (added tokens are matched in the text, unlike the
 * SentencePiece path; invalid UTF-8 becomes U+FFFD first), decode skips special tokens. */
vlmn_status vlmn_tok_from_hf_json(const char *json, size_t len, const char *name, vlmn_tok **out);
vlmn_status vlmn_tok_load_hf(const char *path, vlmn_tok **out); /* reads the file */
bool vlmn_tok_is_hf(const vlmn_tok *t);

/* A fixed context as CLIP's text tower takes it (ctx = 77 for CLIP): the default specials
 * around the text, the text's tokens cut so that everything fits in ctx with the closing
 * specials kept (HF truncation), then pad_id up to ctx. ids has room for ctx entries;
 * *n_used (optional) gets the count before padding. ctx must exceed the specials. */
vlmn_status vlmn_tok_encode_context(const vlmn_tok *t, const char *text, size_t len, int32_t ctx,
                                    int32_t pad_id, int32_t *ids, int32_t *n_used);

int32_t vlmn_tok_n_vocab(const vlmn_tok *t);
int32_t vlmn_tok_bos(const vlmn_tok *t); /* -1 if none */
int32_t vlmn_tok_eos(const vlmn_tok *t);
int32_t vlmn_tok_unk(const vlmn_tok *t);
/* Piece bytes of `id` (NUL-terminated, owned by t) and its length; NULL if out of range. */
const char *vlmn_tok_piece(const vlmn_tok *t, int32_t id, size_t *len);
vlmn_tok_type vlmn_tok_token_type(const vlmn_tok *t, int32_t id); /* 0 if out of range */
float vlmn_tok_score(const vlmn_tok *t, int32_t id);
/* Id of a piece (control/unknown/byte pieces first, as sentencepiece's PieceToId),
 * -1 if absent. */
int32_t vlmn_tok_find(const vlmn_tok *t, const char *piece, size_t len);

/* Encode flags. */
enum { VLMN_TOK_BOS = 1, VLMN_TOK_EOS = 2 };
/* The file's add_bos/add_eos as flags. */
int vlmn_tok_default_flags(const vlmn_tok *t);

/* Encode `len` bytes of text (any bytes: invalid UTF-8 becomes U+FFFD as sentencepiece
 * does; text that looks like a control token, "<s>", is plain text). *ids is allocated
 * with vlmn_malloc (caller vlmn_free()s it; may be non-NULL when *n == 0). */
vlmn_status vlmn_tok_encode(const vlmn_tok *t, const char *text, size_t len, int flags,
                            int32_t **ids, int64_t *n);
/* Same, and *spans (if spans != NULL) receives 2 * n offsets: token i came from
 * text[spans[2i], spans[2i+1]). The dummy-prefix space has no source bytes; every byte
 * token of a byte-fallback character gets the span of the whole character; BOS/EOS
 * get empty spans at 0 / len. Caller vlmn_free()s *spans. */
vlmn_status vlmn_tok_encode_spans(const vlmn_tok *t, const char *text, size_t len, int flags,
                                  int32_t **ids, int64_t **spans, int64_t *n);

/* Decode ids to text as sentencepiece's DecodeIds: control tokens vanish, unknown
 * decodes to " \u2047 ", U+2581 -> ' ', the first piece's leading U+2581 (the dummy
 * prefix) is dropped, runs of byte tokens are reassembled into UTF-8 with each invalid
 * byte becoming U+FFFD. *text is NUL-terminated, vlmn_malloc'd (caller frees); *len
 * (optional) its length. An id out of range is VLMN_E_RANGE. */
vlmn_status vlmn_tok_decode(const vlmn_tok *t, const int32_t *ids, int64_t n, char **text,
                            size_t *len);

#ifdef __cplusplus
}
#endif
#endif
