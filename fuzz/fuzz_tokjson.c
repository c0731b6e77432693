/* libFuzzer target for the tokenizer.json reader (src/tok/hf_json.c) and its pipeline
 * (hf_text.c, hf_bpe.c): arbitrary bytes -> vlmn_tok_from_hf_json; an accepted file must
 * encode fixed texts and the input's own bytes, and decode the ids, without crashing;
 * every id must be in range. */
#include "vlmn/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"

static void run(const vlmn_tok *t, const char *s, size_t n)
{
    int32_t *ids = NULL;
    int64_t *spans = NULL, k = 0;
    if (vlmn_tok_encode_spans(t, s, n, vlmn_tok_default_flags(t), &ids, &spans, &k) != VLMN_OK) return;
    for (int64_t i = 0; i < k; i++) {
        if (ids[i] < 0 || ids[i] >= vlmn_tok_n_vocab(t)) abort();
        if (spans[2 * i] < 0 || spans[2 * i] > spans[2 * i + 1] || spans[2 * i + 1] > (int64_t)n) abort();
    }
    char *text = NULL;
    size_t tl = 0;
    if (vlmn_tok_decode(t, ids, k, &text, &tl) == VLMN_OK) vlmn_free(text);
    vlmn_free(ids);
    vlmn_free(spans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vlmn_tok *t = NULL;
    if (vlmn_tok_from_hf_json((const char *)data, size, "fuzz", &t) != VLMN_OK) {
        if (t) abort();
        return 0;
    }
    static const char *texts[] = {"", "Hello world, 42 <s> </s>", "  a\tb\n\nc  ", "caf\xc3\xa9 e\xcc\x81 \xf0\x9f\x98\x80",
                                  "\xff\xfe<|endoftext|>don't", "<0x41>\xe2\x96\x81x"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        size_t n = 0;
        while (texts[i][n]) n++;
        run(t, texts[i], n);
    }
    run(t, (const char *)data, size < 512 ? size : 512);
    int32_t ctx[16];
    vlmn_tok_encode_context(t, "a photo of a cat", 16, 16, 0, ctx, NULL);
    vlmn_tok_free(t);
    return 0;
}
