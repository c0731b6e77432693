/* CLIP's text tokenizer for the CLIP simulator: DIR/tokenizer.json through the Hugging
 * Face tokenizer reader (byte-level BPE with CLIP's normalizer and `</w>` word ends), as
 * the fixed context the text tower takes: <|startoftext|> text <|endoftext|>, cut to the
 * tower's context with the end token kept (HF truncation), padded with the end token. */
#include "vlmn/clip.h"
#include "vlmn/tokenizer.h"

#include <stdio.h>
#include <string.h>

static vlmn_status tokenize(void *user, const char *text, int32_t *ids, int cap, int *n)
{
    const vlmn_tok *t = user;
    int32_t used = 0;
    vlmn_status st = vlmn_tok_encode_context(t, text, strlen(text), cap, vlmn_tok_eos(t), ids, &used);
    if (st) return st;
    *n = used;
    return VLMN_OK;
}

vlmn_status vlmn_clip_tokenizer_open(const char *dir, vlmn_clip_tokenize_fn *fn, void **user)
{
    *fn = NULL;
    *user = NULL;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path)
        return vlmn_error(VLMN_E_ARG, "%s: path too long", dir);
    vlmn_tok *t = NULL;
    vlmn_status st = vlmn_tok_load_hf(path, &t);
    if (st) return st;
    if (vlmn_tok_bos(t) < 0 || vlmn_tok_eos(t) < 0) {
        vlmn_tok_free(t);
        return vlmn_error(VLMN_E_FORMAT, "%s: no start/end tokens (not a CLIP tokenizer)", path);
    }
    *fn = tokenize;
    *user = t;
    return VLMN_OK;
}

void vlmn_clip_tokenizer_close(void *user) { vlmn_tok_free(user); }
