/* The CLIP text tokenizer the CLI hands to the CLIP simulator (vlmn_clipsim_create):
 * DIR/tokenizer.json (byte-level BPE, 77-token context, <|startoftext|> ... <|endoftext|>).
 * GLUE FOR THE LEAD: the tokenizer.json reader lives on branch hftok
 * (vlmn_tok_load_hf + vlmn_tok_encode_context); until it is merged this refuses with a
 * one-line error, and everything else of `--visual clip` is in place. */
#include "clip_tok.h"

#include <stdio.h>

vlmn_status clip_cli_tokenizer(const char *clip_dir, vlmn_clip_tokenize_fn *fn, void **user, void (**free_fn)(void *))
{
    *fn = NULL;
    *user = NULL;
    *free_fn = NULL;
    return vlmn_error(VLMN_E_UNSUPPORTED,
                      "%s/tokenizer.json: CLIP's text tokenizer is not built into this vlmn yet (tokenizer.json "
                      "support is pending)",
                      clip_dir);
}
