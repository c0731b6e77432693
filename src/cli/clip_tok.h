/* The CLI's CLIP tokenizer for `vlmn simulate --visual clip` (clip_tok.c). */
#ifndef VLMN_CLI_CLIP_TOK_H
#define VLMN_CLI_CLIP_TOK_H

#include "vlmn/clip.h"

/* A tokenize callback (and its state, freed with *free_fn) for the CLIP folder DIR. */
vlmn_status clip_cli_tokenizer(const char *clip_dir, vlmn_clip_tokenize_fn *fn, void **user, void (**free_fn)(void *));
#endif
