/* Tokenizer tests: every line of the sentencepiece-made corpora (tests/data/tok/, from
 * tests/reference/tok_ref.py) must encode to sentencepiece's ids and decode to its text,
 * plus hand-checked cases for spans, UNUSED pieces, bad vocabularies and OOM paths. */
#include <time.h>

#include "core/alloc.h"
#include "gguf/gguf_build.h"
#include "test.h"
#include "tok/tok_fixture.h"
#include "vlmn/tokenizer.h"

static int parse_ids(char *s, int32_t *ids, int max)
{
    int n = 0;
    for (char *p = strtok(s, " "); p && n < max; p = strtok(NULL, " ")) ids[n++] = atoi(p);
    return n;
}

static uint64_t fnv_bytes(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void print_ids(const char *what, const int32_t *ids, int64_t n)
{
    fprintf(stderr, "    %s:", what);
    for (int64_t i = 0; i < n && i < 60; i++) fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n");
}

/* Runs one corpus file against `t`; returns the number of mismatching lines. */
static int run_corpus(vlmn_tok *t, const char *corpus, int *n_lines)
{
    FILE *fp = fopen(corpus, "rb");
    CHECK_MSG(fp != NULL, "cannot open %s", corpus);
    if (!fp) return 1;
    enum { MAXIDS = 1 << 16, MAXU = 1 << 14, U_BYTES = 1 << 21, LT_BYTES = 1 << 20 };
    int32_t *want = malloc(MAXIDS * sizeof *want);
    char *line = NULL, *lt = malloc(LT_BYTES), *u_all = malloc(U_BYTES);
    size_t *u_off = malloc(MAXU * sizeof *u_off), *u_sz = malloc(MAXU * sizeof *u_sz);
    size_t cap = 0, lt_len = 0, u_len = 0;
    int n_u = 0;
    int bad = 0, lines = 0, long_done = 0;
    ssize_t r;
    while ((r = getline(&line, &cap, fp)) > 0) {
        char *f[6];
        int nf = tokfx_split(line, f, 6);
        lines++;
        if (f[0][0] == 'E' && nf == 5) {
            const char *flags = f[1];
            size_t tl = tokfx_unescape(f[2]);
            int nw = parse_ids(f[3], want, MAXIDS);
            int fl = (strchr(flags, 'b') ? VLMN_TOK_BOS : 0) | (strchr(flags, 'e') ? VLMN_TOK_EOS : 0);
            if (strcmp(flags, "u") == 0 && n_u < MAXU && u_len + tl <= U_BYTES) {
                memcpy(u_all + u_len, f[2], tl); /* kept for the long text */
                u_off[n_u] = u_len;
                u_sz[n_u++] = tl;
                u_len += tl;
            }
            int32_t *ids = NULL;
            int64_t n = 0;
            vlmn_status st = vlmn_tok_encode(t, f[2], tl, fl, &ids, &n);
            int ok = st == VLMN_OK && n == nw && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
            if (!ok) {
                if (bad < 10) {
                    fprintf(stderr, "  %s:%d: encode mismatch for \"%s\"\n", corpus, lines, f[2]);
                    print_ids("want", want, nw);
                    print_ids("got ", ids, n);
                }
                bad++;
            } else {
                char *dec = NULL;
                size_t dl = 0;
                const char *exp = f[4];
                size_t el;
                if (strcmp(exp, "=") == 0) {
                    exp = f[2];
                    el = tl;
                } else {
                    el = tokfx_unescape(f[4]);
                }
                st = vlmn_tok_decode(t, ids, n, &dec, &dl);
                if (st || dl != el || memcmp(dec, exp, el)) {
                    if (bad < 10)
                        fprintf(stderr, "  %s:%d: decode mismatch: \"%s\" vs \"%s\"\n", corpus,
                                lines, dec ? dec : "(err)", exp);
                    bad++;
                }
                vlmn_free(dec);
            }
            vlmn_free(ids);
        } else if (f[0][0] == 'D' && nf == 3) {
            int nw = parse_ids(f[1], want, MAXIDS);
            size_t el = tokfx_unescape(f[2]);
            char *dec = NULL;
            size_t dl = 0;
            vlmn_status st = vlmn_tok_decode(t, want, nw, &dec, &dl);
            if (st || dl != el || memcmp(dec, f[2], el)) {
                if (bad < 10) {
                    fprintf(stderr, "  %s:%d: decode mismatch: \"%s\" vs \"%s\"\n", corpus, lines,
                            dec ? dec : "(err)", f[2]);
                    print_ids("ids", want, nw);
                }
                bad++;
            }
            vlmn_free(dec);
        } else if (f[0][0] == 'L' && nf == 5) {
            /* The ~100 kB text: same ids (by count and hash) and same decoded text. */
            /* tok_ref.py's long_text(): the "u" texts joined by newlines, cycling, until
             * 100,000 bytes are reached. */
            for (size_t sz = 0; sz < 100000 && n_u > 0;) {
                for (int k = 0; k < n_u; k++) {
                    if (lt_len + u_sz[k] + 1 > LT_BYTES) break;
                    if (sz > 0) lt[lt_len++] = '\n';
                    memcpy(lt + lt_len, u_all + u_off[k], u_sz[k]);
                    lt_len += u_sz[k];
                    sz += u_sz[k] + 1;
                    if (sz >= 100000) break;
                }
            }
            long n_want = atol(f[1]);
            unsigned long long h_want = strtoull(f[2], NULL, 16), hd_want = strtoull(f[4], NULL, 16);
            int32_t *ids = NULL;
            int64_t n = 0;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            vlmn_status st = vlmn_tok_encode(t, lt, lt_len, 0, &ids, &n);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            fprintf(stderr, "  %s: long text %zu bytes -> %lld tokens in %.1f ms (informational)\n",
                    corpus, lt_len, (long long)n,
                    (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
            uint64_t h = 0xcbf29ce484222325ull;
            for (int64_t i = 0; i < n; i++) {
                unsigned char b[4] = {(unsigned char)ids[i], (unsigned char)(ids[i] >> 8),
                                      (unsigned char)(ids[i] >> 16), (unsigned char)(ids[i] >> 24)};
                h = fnv_bytes(h, b, 4);
            }
            char *dec = NULL;
            size_t dl = 0;
            if (st == VLMN_OK) st = vlmn_tok_decode(t, ids, n, &dec, &dl);
            int ok = st == VLMN_OK && n == n_want && h == h_want && (long)dl == atol(f[3]) &&
                     fnv_bytes(0xcbf29ce484222325ull, (const unsigned char *)dec, dl) == hd_want;
            CHECK_MSG(ok, "%s: long text: %lld ids (want %ld), hash %016llx (want %016llx)", corpus,
                      (long long)n, n_want, (unsigned long long)h, h_want);
            bad += !ok;
            long_done = 1;
            vlmn_free(ids);
            vlmn_free(dec);
        } else {
            fprintf(stderr, "  %s:%d: bad fixture line\n", corpus, lines);
            bad++;
        }
    }
    CHECK_MSG(long_done, "%s: no long-text line", corpus);
    free(line);
    free(lt);
    free(u_all);
    free(u_off);
    free(u_sz);
    free(want);
    fclose(fp);
    *n_lines = lines;
    return bad;
}

static void corpus_test(const char *vocab, const char *corpus)
{
    vlmn_tok *t = tokfx_load_tsv(test_path(test_data_dir(), vocab));
    CHECK(t != NULL);
    if (!t) return;
    int lines = 0;
    int bad = run_corpus(t, test_path(test_data_dir(), corpus), &lines);
    fprintf(stderr, "  %s: %d lines, %d mismatches\n", corpus, lines, bad);
    CHECK_EQ_INT(bad, 0);
    CHECK(lines >= 500);
    vlmn_tok_free(t);
}

TEST(corpus_byte_fallback) { corpus_test("tok/bpe.vocab.tsv", "tok/bpe.corpus.tsv"); }
TEST(corpus_no_byte_fallback) { corpus_test("tok/bpe_nobf.vocab.tsv", "tok/bpe_nobf.corpus.tsv"); }

static int enc_eq(vlmn_tok *t, const char *text, int flags, const int32_t *want, int nw);
#define enc_eq_global enc_eq

/* The same corpora through the GGUF path (vlmn_tok_from_gguf). */
static void corpus_gguf_test(const char *gguf, const char *tsv, const char *corpus)
{
    vlmn_gguf *g = NULL;
    vlmn_tok *t = NULL, *ref = NULL;
    CHECK_EQ_INT(vlmn_gguf_open(test_path(test_data_dir(), gguf), &g), VLMN_OK);
    if (!g) return;
    vlmn_status st = vlmn_tok_from_gguf(g, &t);
    CHECK_MSG(st == VLMN_OK, "%s", vlmn_errmsg());
    vlmn_gguf_close(g); /* the tokenizer keeps its own copy */
    ref = tokfx_load_tsv(test_path(test_data_dir(), tsv));
    if (t && ref) {
        CHECK_EQ_INT(vlmn_tok_n_vocab(t), vlmn_tok_n_vocab(ref));
        int diff = 0;
        for (int32_t i = 0; i < vlmn_tok_n_vocab(t); i++) {
            size_t a, b;
            const char *pa = vlmn_tok_piece(t, i, &a), *pb = vlmn_tok_piece(ref, i, &b);
            diff += a != b || memcmp(pa, pb, a) || vlmn_tok_score(t, i) != vlmn_tok_score(ref, i) ||
                    vlmn_tok_token_type(t, i) != vlmn_tok_token_type(ref, i);
        }
        CHECK_EQ_INT(diff, 0);
        CHECK_EQ_INT(vlmn_tok_bos(t), 1);
        CHECK_EQ_INT(vlmn_tok_eos(t), 2);
        CHECK_EQ_INT(vlmn_tok_unk(t), 0);
        CHECK_EQ_INT(vlmn_tok_default_flags(t), VLMN_TOK_BOS);
        int lines = 0;
        int bad = run_corpus(t, test_path(test_data_dir(), corpus), &lines);
        fprintf(stderr, "  %s via %s: %d lines, %d mismatches\n", corpus, gguf, lines, bad);
        CHECK_EQ_INT(bad, 0);
    }
    vlmn_tok_free(t);
    vlmn_tok_free(ref);
}

TEST(corpus_gguf)
{
    corpus_gguf_test("tok/bpe.gguf", "tok/bpe.vocab.tsv", "tok/bpe.corpus.tsv");
    corpus_gguf_test("tok/bpe_nobf.gguf", "tok/bpe_nobf.vocab.tsv", "tok/bpe_nobf.corpus.tsv");
}

/* A small GGUF with tokenizer keys; `mode` breaks one of them. */
static vlmn_status tok_from_built(int mode, vlmn_tok **t)
{
    gb_buf kv = {0}, file = {0};
    int n_kv = 0;
    const char *model = mode == 1 ? "gpt2" : "llama";
    if (mode != 2) { gb_kv_str(&kv, "tokenizer.ggml.model", model); n_kv++; }
    if (mode != 3) {
        gb_str(&kv, "tokenizer.ggml.tokens");
        gb_u32(&kv, 9); /* array */
        gb_u32(&kv, mode == 4 ? 4 : 8); /* of u32 (wrong) / of string */
        gb_u64(&kv, 3);
        for (int i = 0; i < 3; i++) {
            if (mode == 4) gb_u32(&kv, (uint32_t)i);
            else gb_str(&kv, (const char *[]){"<unk>", "a", "\xe2\x96\x81\x61"}[i]);
        }
        n_kv++;
    }
    gb_str(&kv, "tokenizer.ggml.scores");
    gb_u32(&kv, 9);
    gb_u32(&kv, 6); /* f32 */
    gb_u64(&kv, mode == 5 ? 2 : 3);
    for (int i = 0; i < (mode == 5 ? 2 : 3); i++) {
        float f = (float)-i;
        gb_put(&kv, &f, 4);
    }
    n_kv++;
    gb_kv_u32(&kv, "tokenizer.ggml.bos_token_id", mode == 6 ? 3 : 1);
    gb_kv_u64(&kv, "tokenizer.ggml.unknown_token_id", 0); /* any integer type will do */
    n_kv += 2;
    gb_file(&file, 3, 0, (uint64_t)n_kv, &kv, NULL, 0, 32, 0);
    vlmn_gguf *g = NULL;
    vlmn_status st = vlmn_gguf_open_memory(file.b, file.n, "built.gguf", &g);
    if (st == VLMN_OK) st = vlmn_tok_from_gguf(g, t);
    vlmn_gguf_close(g);
    gb_free(&kv);
    gb_free(&file);
    return st;
}

TEST(gguf_bad_tokenizer_keys)
{
    vlmn_tok *t = NULL;
    CHECK_EQ_INT(tok_from_built(0, &t), VLMN_OK);
    if (t) {
        /* types absent: all normal; bos, unk as given; eos takes the default 2 */
        CHECK_EQ_INT(vlmn_tok_eos(t), 2);
        CHECK_EQ_INT(vlmn_tok_unk(t), 0);
        CHECK(enc_eq_global(t, "a", VLMN_TOK_BOS | VLMN_TOK_EOS, (const int32_t[]){1, 2, 2}, 3));
        CHECK(enc_eq_global(t, "b b", 0, (const int32_t[]){0}, 1)); /* one merged unknown run */
        vlmn_tok_free(t);
        t = NULL;
    }
    CHECK_EQ_INT(tok_from_built(1, &t), VLMN_E_UNSUPPORTED);
    CHECK(strstr(vlmn_errmsg(), "gpt2") != NULL);
    CHECK_EQ_INT(tok_from_built(2, &t), VLMN_E_NOTFOUND);
    CHECK_EQ_INT(tok_from_built(3, &t), VLMN_E_NOTFOUND);
    CHECK_EQ_INT(tok_from_built(4, &t), VLMN_E_TYPE);
    CHECK_EQ_INT(tok_from_built(5, &t), VLMN_E_MISMATCH);
    CHECK_EQ_INT(tok_from_built(6, &t), VLMN_E_RANGE);
    CHECK(strstr(vlmn_errmsg(), "bos_token_id") != NULL);
    CHECK(t == NULL);
}

/* A tiny vocabulary for hand-worked cases. */
static vlmn_tok *tiny(const char *const *toks, const float *scores, const int32_t *types, int n,
                      bool space_prefix)
{
    vlmn_tok_vocab v = {.n_vocab = n, .tokens = toks, .scores = scores, .types = types,
                        .bos_id = 1, .eos_id = 2, .unk_id = -1, .add_bos = true,
                        .add_space_prefix = space_prefix};
    vlmn_tok *t = NULL;
    vlmn_status st = vlmn_tok_create(&v, &t);
    CHECK_MSG(st == VLMN_OK, "%s", vlmn_errmsg());
    return t;
}

static int enc_eq(vlmn_tok *t, const char *text, int flags, const int32_t *want, int nw)
{
    int32_t *ids = NULL;
    int64_t n = 0;
    vlmn_status st = vlmn_tok_encode(t, text, strlen(text), flags, &ids, &n);
    int ok = st == VLMN_OK && n == nw && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "  encode \"%s\":\n", text);
        print_ids("want", want, nw);
        print_ids("got ", ids, n);
    }
    vlmn_free(ids);
    return ok;
}

/* bpe_model.cc: an UNUSED piece takes part in merges but is split back into the two
 * pieces it was made from; if it grows into a normal piece first, that piece stays. */
TEST(unused_pieces_resegmented)
{
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "c",
                                       "ab", "abc", "\xe2\x96\x81\x61"};
    static const float sc[] = {0, 0, 0, -1, -2, -3, -4, 10, 5, -100};
    static const int32_t ty[] = {2, 3, 3, 1, 1, 1, 1, 5, 1, 5};
    vlmn_tok *t = tiny(toks, sc, ty, 10, true);
    if (!t) return;
    /* "ab": ab (unused) merges first; "▁" + "ab" is no piece -> ▁ a b */
    CHECK(enc_eq(t, "ab", 0, (const int32_t[]){3, 4, 5}, 3));
    /* "abc": ab, then abc (normal) -> ▁ abc */
    CHECK(enc_eq(t, "abc", 0, (const int32_t[]){3, 8}, 2));
    /* "a": ▁a (unused, score -100) merges, then splits into ▁ a */
    CHECK(enc_eq(t, "a", 0, (const int32_t[]){3, 4}, 2));
    /* unknown 'd' (no byte fallback) -> unk; two unknowns in a row merge into one */
    CHECK(enc_eq(t, "dd", VLMN_TOK_BOS | VLMN_TOK_EOS, (const int32_t[]){1, 3, 0, 2}, 4));
    CHECK(enc_eq(t, "d b", 0, (const int32_t[]){3, 0, 3, 5}, 4));
    vlmn_tok_free(t);
}

/* Equal scores: the leftmost pair merges first (SymbolPairComparator). */
TEST(ties_merge_leftmost)
{
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "x", "xx"};
    static const float sc[] = {0, 0, 0, 0, 1};
    static const int32_t ty[] = {2, 3, 3, 1, 1};
    vlmn_tok *t = tiny(toks, sc, ty, 5, false);
    if (!t) return;
    CHECK(enc_eq(t, "xxx", 0, (const int32_t[]){4, 3}, 2));
    CHECK(enc_eq(t, "xxxxx", 0, (const int32_t[]){4, 4, 3}, 3));
    CHECK(enc_eq(t, "", VLMN_TOK_BOS, (const int32_t[]){1}, 1));
    vlmn_tok_free(t);
}

TEST(spans)
{
    vlmn_tok *t = tokfx_load_tsv(test_path(test_data_dir(), "tok/bpe.vocab.tsv"));
    CHECK(t != NULL);
    if (!t) return;
    const char *text = "a cat \xf0\x9f\xa6\x9c!"; /* U+1F99C is not in the vocabulary */
    int32_t *ids = NULL;
    int64_t *sp = NULL, n = 0;
    CHECK_EQ_INT(vlmn_tok_encode_spans(t, text, strlen(text), VLMN_TOK_BOS | VLMN_TOK_EOS, &ids,
                                       &sp, &n), VLMN_OK);
    CHECK(n >= 8);
    CHECK_EQ_INT(ids[0], vlmn_tok_bos(t));
    CHECK_EQ_INT(sp[0], 0);
    CHECK_EQ_INT(sp[1], 0);
    CHECK_EQ_INT(ids[n - 1], vlmn_tok_eos(t));
    CHECK_EQ_INT(sp[2 * n - 2], (int64_t)strlen(text));
    int n_bytes = 0;
    for (int64_t i = 1; i + 1 < n; i++) {
        CHECK(sp[2 * i] <= sp[2 * i + 1]);
        CHECK(sp[2 * i] >= sp[2 * i - 2]); /* non-decreasing */
        if (vlmn_tok_token_type(t, ids[i]) == VLMN_TOKT_BYTE) {
            n_bytes++;
            CHECK_EQ_INT(sp[2 * i], 6); /* the whole emoji */
            CHECK_EQ_INT(sp[2 * i + 1], 10);
        }
    }
    CHECK_EQ_INT(n_bytes, 4);
    CHECK_EQ_INT(sp[2 * (n - 2) + 1], (int64_t)strlen(text)); /* "!" ends the text */
    vlmn_free(ids);
    vlmn_free(sp);
    vlmn_tok_free(t);
}

TEST(bad_vocabularies_and_ids)
{
    vlmn_tok *t = NULL;
    static const char *const no_unk[] = {"a", "b"};
    vlmn_tok_vocab v = {.n_vocab = 2, .tokens = no_unk, .bos_id = -1, .eos_id = -1, .unk_id = -1};
    CHECK_EQ_INT(vlmn_tok_create(&v, &t), VLMN_E_FORMAT);
    CHECK(t == NULL);
    CHECK(strstr(vlmn_errmsg(), "unknown") != NULL);
    static const char *const bad_byte[] = {"<unk>", "<0xG1>"};
    static const int32_t ty[] = {2, 6};
    vlmn_tok_vocab v2 = {.n_vocab = 2, .tokens = bad_byte, .types = ty, .bos_id = -1, .eos_id = -1, .unk_id = 0};
    CHECK_EQ_INT(vlmn_tok_create(&v2, &t), VLMN_E_FORMAT);
    vlmn_tok_vocab v3 = {.n_vocab = 2, .tokens = bad_byte, .bos_id = 5, .eos_id = -1, .unk_id = 0};
    CHECK_EQ_INT(vlmn_tok_create(&v3, &t), VLMN_E_RANGE);
    vlmn_tok_vocab v4 = {.n_vocab = 0, .tokens = bad_byte};
    CHECK_EQ_INT(vlmn_tok_create(&v4, &t), VLMN_E_ARG);
    vlmn_tok_free(NULL);

    t = tokfx_load_tsv(test_path(test_data_dir(), "tok/bpe.vocab.tsv"));
    CHECK(t != NULL);
    if (!t) return;
    char *s = NULL;
    CHECK_EQ_INT(vlmn_tok_decode(t, (const int32_t[]){5, 4000}, 2, &s, NULL), VLMN_E_RANGE);
    CHECK(s == NULL);
    CHECK_EQ_INT(vlmn_tok_decode(t, (const int32_t[]){-1}, 1, &s, NULL), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_tok_decode(t, NULL, 0, &s, NULL), VLMN_OK);
    CHECK_EQ_STR(s, "");
    vlmn_free(s);
    size_t pl = 0;
    CHECK_EQ_STR(vlmn_tok_piece(t, 1, &pl), "<s>");
    CHECK_EQ_INT(pl, 3);
    CHECK(vlmn_tok_piece(t, 4000, NULL) == NULL);
    CHECK_EQ_INT(vlmn_tok_find(t, "<s>", 3), 1);
    CHECK_EQ_INT(vlmn_tok_find(t, "no such piece", 13), -1);
    CHECK_EQ_INT(vlmn_tok_default_flags(t), VLMN_TOK_BOS);
    vlmn_tok_free(t);
}

/* Every allocation failure inside encode/decode must come back as VLMN_E_NOMEM. */
TEST(allocation_failures)
{
    vlmn_tok *t = tokfx_load_tsv(test_path(test_data_dir(), "tok/bpe.vocab.tsv"));
    CHECK(t != NULL);
    if (!t) return;
    const char *text = "A photo of a cat \xf0\x9f\xa6\x9c sitting on a table, 12 qqq <image>.";
    int n_nomem = 0;
    for (long k = 1; k < 40; k++) {
        int32_t *ids = NULL;
        int64_t *sp = NULL, n = 0;
        vlmn_alloc_fail_after(k);
        vlmn_status st = vlmn_tok_encode_spans(t, text, strlen(text), VLMN_TOK_BOS, &ids, &sp, &n);
        char *s = NULL;
        if (st == VLMN_OK) st = vlmn_tok_decode(t, ids, n, &s, NULL);
        vlmn_alloc_fail_after(0);
        CHECK(st == VLMN_OK || st == VLMN_E_NOMEM);
        n_nomem += st == VLMN_E_NOMEM;
        vlmn_free(ids);
        vlmn_free(sp);
        vlmn_free(s);
    }
    CHECK(n_nomem > 3);
    vlmn_tok_free(t);
}

TEST_MAIN()
