/* libFuzzer target for the SentencePiece ModelProto parser (src/tok/tok_spm.c): arbitrary
 * bytes -> vlmn_tok_spm_parse; accepted pieces must lie inside the input, and a
 * tokenizer built from them must encode without crashing. */
#include "vlmn/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vlmn_tok_spm *s = NULL;
    if (vlmn_tok_spm_parse(data, size, "fuzz", &s) != VLMN_OK) {
        if (s) abort();
        return 0;
    }
    if (s->n <= 0) abort();
    for (int32_t i = 0; i < s->n; i++) {
        const uint8_t *p = (const uint8_t *)s->tokens[i];
        if (s->lens[i] && (p < data || p + s->lens[i] > data + size)) abort();
    }
    vlmn_tok_vocab v = {.n_vocab = s->n, .tokens = s->tokens, .token_lens = s->lens, .scores = s->scores,
                        .types = s->types, .bos_id = s->bos_id, .eos_id = s->eos_id, .unk_id = s->unk_id,
                        .add_bos = true, .add_space_prefix = s->add_dummy_prefix};
    vlmn_tok *t = NULL;
    if (vlmn_tok_create(&v, &t) == VLMN_OK) {
        int32_t *ids = NULL;
        int64_t n = 0;
        if (vlmn_tok_encode(t, "Hello world, 42 <s>", 19, VLMN_TOK_BOS, &ids, &n) == VLMN_OK) vlmn_free(ids);
        vlmn_tok_free(t);
    }
    vlmn_tok_spm_free(s);
    return 0;
}
