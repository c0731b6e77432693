/* Tokenizer from a GGUF's tokenizer.ggml.* metadata (the keys llama.cpp's converter
 * writes for SentencePiece "llama" vocabularies). Every value is untrusted: counts
 * must agree, ids must be in range. */
#include <string.h>

#include "core/alloc.h"
#include "vlmn/tokenizer.h"

/* Optional id key: absent -> def (if in range, else -1); present -> must be in range. */
static vlmn_status get_id(const vlmn_gguf *g, const char *key, int32_t def, int32_t n, int32_t *out)
{
    int64_t v;
    if (vlmn_gguf_find_key(g, key) < 0) {
        *out = def < n ? def : -1;
        return VLMN_OK;
    }
    vlmn_status st = vlmn_gguf_get_i64(g, key, &v);
    if (st) return st;
    if (v < 0 || v >= n)
        return vlmn_error(VLMN_E_RANGE, "%s: key %s: token id %lld out of range (%d tokens)",
                          vlmn_gguf_path(g), key, (long long)v, (int)n);
    *out = (int32_t)v;
    return VLMN_OK;
}

static vlmn_status get_flag(const vlmn_gguf *g, const char *key, bool def, bool *out)
{
    if (vlmn_gguf_find_key(g, key) < 0) {
        *out = def;
        return VLMN_OK;
    }
    return vlmn_gguf_get_bool(g, key, out);
}

vlmn_status vlmn_tok_from_gguf(const vlmn_gguf *g, vlmn_tok **out)
{
    vlmn_status st;
    const char *model = NULL;
    const char **toks = NULL;
    uint64_t *lens = NULL;
    float *scores = NULL;
    int64_t *types64 = NULL;
    int32_t *types = NULL;
    *out = NULL;
    const char *path = vlmn_gguf_path(g);

    /* a Hugging Face tokenizer.json carried whole (GGUF's tokenizer.huggingface.json) */
    int64_t kj = vlmn_gguf_find_key(g, "tokenizer.huggingface.json");
    if (kj >= 0 && vlmn_gguf_find_key(g, "tokenizer.ggml.tokens") < 0) {
        const char *json = NULL;
        if ((st = vlmn_gguf_get_str(g, "tokenizer.huggingface.json", &json)))
            return vlmn_error_prefix(st, "tokenizer");
        const char *src = NULL;
        if (vlmn_gguf_find_key(g, "tokenizer.huggingface.source") >= 0)
            vlmn_gguf_get_str(g, "tokenizer.huggingface.source", &src);
        return vlmn_tok_from_hf_json(json, strlen(json), src ? src : path, out);
    }
    if ((st = vlmn_gguf_get_str(g, "tokenizer.ggml.model", &model)))
        return vlmn_error_prefix(st, "tokenizer");
    if (strcmp(model, "llama") != 0)
        return vlmn_error(VLMN_E_UNSUPPORTED,
                          "%s: tokenizer.ggml.model is \"%s\"; only \"llama\" (SentencePiece) is supported",
                          path, model);
    int64_t ki = vlmn_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (ki < 0) return vlmn_error(VLMN_E_NOTFOUND, "%s: key tokenizer.ggml.tokens missing", path);
    if (vlmn_gguf_kv_type(g, ki) != VLMN_GGUF_ARRAY || vlmn_gguf_arr_type(g, ki) != VLMN_GGUF_STRING)
        return vlmn_error(VLMN_E_TYPE, "%s: key tokenizer.ggml.tokens is not an array of strings", path);
    uint64_t n = vlmn_gguf_arr_count(g, ki);
    if (n == 0 || n >= INT32_MAX)
        return vlmn_error(VLMN_E_RANGE, "%s: key tokenizer.ggml.tokens: %llu tokens", path,
                          (unsigned long long)n);

    toks = vlmn_malloc(n * sizeof *toks);
    lens = vlmn_malloc(n * sizeof *lens);
    if (!toks || !lens) goto nomem;
    for (uint64_t j = 0; j < n; j++) {
        vlmn_gguf_str s;
        if ((st = vlmn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", j, &s))) goto fail;
        toks[j] = s.ptr;
        lens[j] = s.len;
    }
    if (vlmn_gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
        scores = vlmn_malloc(n * sizeof *scores);
        if (!scores) goto nomem;
        if ((st = vlmn_gguf_get_arr_f32(g, "tokenizer.ggml.scores", scores, n))) goto fail;
    }
    if (vlmn_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        types64 = vlmn_malloc(n * sizeof *types64);
        types = vlmn_malloc(n * sizeof *types);
        if (!types64 || !types) goto nomem;
        if ((st = vlmn_gguf_get_arr_i64(g, "tokenizer.ggml.token_type", types64, n))) goto fail;
        for (uint64_t j = 0; j < n; j++)
            types[j] = types64[j] >= 0 && types64[j] <= 255 ? (int32_t)types64[j] : 0;
    }

    vlmn_tok_vocab v = {.n_vocab = (int32_t)n, .tokens = toks, .token_lens = lens,
                        .scores = scores, .types = types};
    /* llama.cpp's defaults for SentencePiece vocabularies. */
    if ((st = get_id(g, "tokenizer.ggml.bos_token_id", 1, v.n_vocab, &v.bos_id)) ||
        (st = get_id(g, "tokenizer.ggml.eos_token_id", 2, v.n_vocab, &v.eos_id)) ||
        (st = get_id(g, "tokenizer.ggml.unknown_token_id", 0, v.n_vocab, &v.unk_id)) ||
        (st = get_flag(g, "tokenizer.ggml.add_bos_token", true, &v.add_bos)) ||
        (st = get_flag(g, "tokenizer.ggml.add_eos_token", false, &v.add_eos)) ||
        (st = get_flag(g, "tokenizer.ggml.add_space_prefix", true, &v.add_space_prefix)))
        goto fail;
    if ((st = vlmn_tok_create(&v, out))) vlmn_error_prefix(st, "%s", path);
    goto done;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "%s: tokenizer: out of memory (%llu tokens)", path,
                    (unsigned long long)n);
fail:
done:
    vlmn_free(toks);
    vlmn_free(lens);
    vlmn_free(scores);
    vlmn_free(types64);
    vlmn_free(types);
    return st;
}
