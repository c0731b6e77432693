/* CLIP's text tokenizer for the CLIP simulator: DIR/tokenizer.json through the Hugging
 * Face tokenizer reader (byte-level BPE with CLIP's normalizer and `</w>` word ends), as
 * the fixed context the text tower takes: <|startoftext|> text <|endoftext|>, cut to the
 * tower's context with the end token kept (HF truncation), padded with the end token;
 * checked against the loaded model's text tower (vocabulary, end token) before use, and
 * the folder's name as the CLI names its labels and simulator.
 * Flow: --clip DIR -> [this] -> ids -> vlmn_clip_text. */
#include "vlmn/clip.h"
#include "vlmn/tokenizer.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return vlmn_error(VLMN_E_NOTFOUND, "%s: no such folder (a CLIPModel folder is needed)", dir);
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

vlmn_status vlmn_clip_tokenizer_check(const char *dir, const void *user, const vlmn_clip *clip)
{
    const vlmn_tok *t = user;
    const vlmn_clip_info *I = vlmn_clip_get_info(clip);
    if (vlmn_tok_n_vocab(t) > I->t_vocab)
        return vlmn_error(VLMN_E_MISMATCH,
                          "%s/tokenizer.json: %d token ids, the text tower has %d (config.json "
                          "text_config.vocab_size): not this model's tokenizer",
                          dir, (int)vlmn_tok_n_vocab(t), I->t_vocab);
    if (I->eos_token_id != 2 && vlmn_tok_eos(t) != I->eos_token_id)
        return vlmn_error(VLMN_E_MISMATCH,
                          "%s/tokenizer.json: end token id %d, config.json text_config.eos_token_id is %d: not this "
                          "model's tokenizer",
                          dir, (int)vlmn_tok_eos(t), I->eos_token_id);
    return VLMN_OK;
}

void vlmn_clip_dir_name(const char *dir, char *out, size_t cap)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t a = n;
    while (a > 0 && dir[a - 1] != '/') a--;
    if (a == n) a = 0; /* "/" */
    snprintf(out, cap, "%.*s", (int)(n - a), dir + a);
}
