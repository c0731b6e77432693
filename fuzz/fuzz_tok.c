/* libFuzzer target for the tokenizer and the prompt tokenizer: arbitrary bytes must
 * encode and decode without crashing, spans must stay inside the text, and valid UTF-8
 * without U+2581 must survive decode(encode(x)) == x with the byte-fallback vocabulary.
 * Vocabularies: tests/data/tok/bpe.gguf (found from the binary's folder, ../tests/...,
 * or $VLMN_FUZZ_TOK_GGUF) and a small built-in one with UNUSED, user-defined and
 * unknown-only paths. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "vlmn/prompt.h"
#include "vlmn/tokenizer.h"

static vlmn_tok *tok_file, *tok_small;

static vlmn_tok *load_gguf(const char *path)
{
    vlmn_gguf *g = NULL;
    vlmn_tok *t = NULL;
    if (vlmn_gguf_open(path, &g) == VLMN_OK) vlmn_tok_from_gguf(g, &t);
    vlmn_gguf_close(g);
    return t;
}

static vlmn_tok *build_small(void)
{
    static char bytes[256][8];
    const char *toks[300];
    float scores[300];
    int32_t types[300];
    int n = 0;
#define ADD(s, sc, ty) (toks[n] = (s), scores[n] = (sc), types[n++] = (ty))
    ADD("<unk>", 0, VLMN_TOKT_UNKNOWN);
    ADD("<s>", 0, VLMN_TOKT_CONTROL);
    ADD("</s>", 0, VLMN_TOKT_CONTROL);
    ADD("qq", 0, VLMN_TOKT_USER_DEFINED);
    ADD("<image>", 0, VLMN_TOKT_USER_DEFINED);
    ADD("\xe2\x96\x81", -1, VLMN_TOKT_NORMAL);
    ADD("a", -2, VLMN_TOKT_NORMAL);
    ADD("b", -3, VLMN_TOKT_NORMAL);
    ADD("c", -4, VLMN_TOKT_NORMAL);
    ADD("ab", 5, VLMN_TOKT_UNUSED);
    ADD("abc", 4, VLMN_TOKT_NORMAL);
    ADD("\xe2\x96\x81" "a", 3, VLMN_TOKT_UNUSED);
    ADD("\xe2\x96\x81" "ab", 6, VLMN_TOKT_NORMAL);
    ADD("cc", 1, VLMN_TOKT_NORMAL);
    ADD("ccc", 1, VLMN_TOKT_UNUSED);
    ADD("\xe2\x96\x81\xe2\x96\x81", 2, VLMN_TOKT_NORMAL);
    ADD("\xc3\xa9", -5, VLMN_TOKT_NORMAL);
    for (int b = 0; b < 200; b++) { /* bytes 200..255 missing: they fall back to unk */
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        ADD(bytes[b], 0, VLMN_TOKT_BYTE);
    }
#undef ADD
    vlmn_tok_vocab v = {.n_vocab = n, .tokens = toks, .scores = scores, .types = types,
                        .bos_id = 1, .eos_id = 2, .unk_id = 0, .add_bos = true,
                        .add_space_prefix = true};
    vlmn_tok *t = NULL;
    vlmn_tok_create(&v, &t);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *env = getenv("VLMN_FUZZ_TOK_GGUF");
    if (env) tok_file = load_gguf(env);
    char exe[PATH_MAX];
    ssize_t r = readlink("/proc/self/exe", exe, sizeof exe - 64);
    if (!tok_file && r > 0) {
        exe[r] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            strcpy(slash, "/../tests/data/tok/bpe.gguf");
            tok_file = load_gguf(exe);
        }
    }
    if (!tok_file) tok_file = load_gguf("tests/data/tok/bpe.gguf");
    tok_small = build_small();
    if (!tok_file || !tok_small) {
        fprintf(stderr, "fuzz_tok: cannot load tests/data/tok/bpe.gguf (set VLMN_FUZZ_TOK_GGUF)\n");
        abort();
    }
    return 0;
}

/* sentencepiece's UTF-8 validity (no overlongs, surrogates or > U+10FFFF). */
static int valid_utf8_no_2581(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!l || i + l > n) return 0;
        unsigned cp = l == 1 ? c : l == 2 ? c & 0x1F : l == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[l] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) return 0;
        i += l;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    vlmn_tok *t = (mode & 1) ? tok_small : tok_file;
    int flags = (mode >> 1) & 3;

    int32_t *ids = NULL;
    int64_t *sp = NULL, n = 0;
    if (vlmn_tok_encode_spans(t, text, len, flags, &ids, &sp, &n) != VLMN_OK) abort();
    int64_t prev = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= vlmn_tok_n_vocab(t)) abort();
        if (sp[2 * i] < prev || sp[2 * i] > sp[2 * i + 1] || sp[2 * i + 1] > (int64_t)len) abort();
        prev = sp[2 * i];
    }
    char *dec = NULL;
    size_t dl = 0;
    if (vlmn_tok_decode(t, ids, n, &dec, &dl) != VLMN_OK) abort();
    if (t == tok_file && valid_utf8_no_2581(data + 1, len) && (dl != len || memcmp(dec, text, len)))
        abort(); /* decode(encode(x)) == x */
    vlmn_free(dec);
    vlmn_free(ids);
    vlmn_free(sp);

    /* Prompt tokenizer over the same bytes: image slots counted, labels valid. */
    int n_img = (mode >> 3) & 7;
    size_t tb = len ? (size_t)(mode * 7) % (len + 1) : 0;
    size_t te = tb + (len - tb) / 2;
    uint8_t *mod = NULL;
    if (vlmn_prompt_tokenize(t, text, len, tb, te, n_img, &ids, &mod, &n) != VLMN_OK) abort();
    int64_t n_images = 0, n_slots = 0;
    for (size_t i = 0; i + 7 <= len;) {
        if (memcmp(text + i, "<image>", 7) == 0) {
            n_slots++;
            i += 7;
        } else {
            i++;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (mod[i] > VLMN_MOD_PROMPT || (mod[i] == VLMN_MOD_IMAGE) != (ids[i] == -1)) abort();
        n_images += ids[i] == -1;
    }
    if (n_images != n_slots * n_img) abort();
    vlmn_free(ids);
    vlmn_free(mod);
    return 0;
}
