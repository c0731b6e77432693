/* tokenizer.json tests: every line of tests/data/hftok/hftok.corpus.tsv (ids and decoded
 * text from the independent pure-Python reference tests/reference/hftok_ref.py, five
 * tokenizer.json files: LLaMA legacy and Metaspace forms, CLIP, GPT-2, a misc one) must
 * match; the LLaMA tokenizer.json must give sentencepiece's ids (tests/data/tok corpus,
 * the same vocabulary) and the same ids as the SentencePiece path; malformed files give
 * one-line errors naming the file; CLIP's fixed context; GGUF's tokenizer.huggingface.json. */
#include "core/alloc.h"
#include "test.h"
#include "tok/tok_fixture.h"
#include "vlmn/gguf.h"
#include "vlmn/tokenizer.h"

static int parse_ids(char *s, int32_t *ids, int max)
{
    int n = 0;
    for (char *p = strtok(s, " "); p && n < max; p = strtok(NULL, " ")) ids[n++] = atoi(p);
    return n;
}

static void print_ids(const char *what, const int32_t *ids, int64_t n)
{
    fprintf(stderr, "    %s:", what);
    for (int64_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

static const char *NAMES[] = {"llama_legacy", "llama_meta", "clip", "gpt2", "misc"};
enum { N_NAMES = 5, MAXIDS = 4096 };

static vlmn_tok *load(const char *name)
{
    char file[256];
    snprintf(file, sizeof file, "hftok/%s.tokenizer.json", name);
    vlmn_tok *t = NULL;
    vlmn_status st = vlmn_tok_load_hf(test_path(test_data_dir(), file), &t);
    CHECK_MSG(st == VLMN_OK, "%s: %s", file, vlmn_errmsg());
    return t;
}

TEST(reference_corpus)
{
    vlmn_tok *toks[N_NAMES];
    for (int i = 0; i < N_NAMES; i++) {
        toks[i] = load(NAMES[i]);
        if (!toks[i]) return;
    }
    CHECK(vlmn_tok_is_hf(toks[0]));
    FILE *fp = fopen(test_path(test_data_dir(), "hftok/hftok.corpus.tsv"), "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    int32_t *want = malloc(MAXIDS * sizeof *want);
    char *line = NULL;
    size_t cap = 0;
    int lines[N_NAMES] = {0}, bad = 0, dec_checked = 0;
    while (getline(&line, &cap, fp) > 0) {
        if (line[0] == '#') continue;
        char *f[6];
        int nf = tokfx_split(line, f, 6);
        CHECK_EQ_INT(nf, 6);
        if (nf != 6) break;
        int k = 0;
        while (k < N_NAMES && strcmp(NAMES[k], f[1])) k++;
        CHECK(k < N_NAMES);
        if (k == N_NAMES) break;
        size_t tl = tokfx_unescape(f[3]);
        int nw = parse_ids(f[4], want, MAXIDS);
        int flags = strcmp(f[2], "b") == 0 ? vlmn_tok_default_flags(toks[k]) : 0;
        int32_t *ids = NULL;
        int64_t *spans = NULL;
        int64_t n = 0;
        lines[k]++;
        vlmn_status st = vlmn_tok_encode_spans(toks[k], f[3], tl, flags, &ids, &spans, &n);
        bool same = st == VLMN_OK && n == nw && (n == 0 || memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
        if (!same && bad++ < 10) {
            fprintf(stderr, "  %s [%s] \"%s\"\n", f[1], f[2], f[3]);
            print_ids("want", want, nw);
            print_ids("got ", ids, n);
        }
        for (int64_t i = 0; st == VLMN_OK && i < n; i++)
            CHECK(spans[2 * i] >= 0 && spans[2 * i] <= spans[2 * i + 1] && spans[2 * i + 1] <= (int64_t)tl);
        if (same && strcmp(f[5], "-") != 0) {
            size_t dl = tokfx_unescape(f[5]), gl = 0;
            char *got = NULL;
            st = vlmn_tok_decode(toks[k], ids, n, &got, &gl);
            CHECK(st == VLMN_OK);
            if (st == VLMN_OK && (gl != dl || memcmp(got, f[5], dl)) && bad++ < 10)
                fprintf(stderr, "  decode %s [%s] \"%s\": want \"%s\" got \"%s\"\n", f[1], f[2], f[3], f[5], got);
            dec_checked++;
            vlmn_free(got);
        }
        vlmn_free(ids);
        vlmn_free(spans);
    }
    CHECK_EQ_INT(bad, 0);
    for (int i = 0; i < N_NAMES; i++) CHECK_MSG(lines[i] >= 400, "%s: %d lines", NAMES[i], lines[i]);
    CHECK(dec_checked >= 1500);
    fprintf(stderr, "  %d + %d + %d + %d + %d lines, %d decodes, %d mismatches\n", lines[0], lines[1], lines[2],
            lines[3], lines[4], dec_checked, bad);
    free(line);
    free(want);
    fclose(fp);
    for (int i = 0; i < N_NAMES; i++) vlmn_tok_free(toks[i]);
}

/* The LLaMA tokenizer.json (converted from the sentencepiece model as transformers does)
 * against sentencepiece's own ids on tok_ref.py's corpus and against vlmn's SentencePiece
 * path on the same vocabulary. Texts that contain an added token's text are left out:
 * tokenizer.json matches them in the text, sentencepiece does not. */
/* Compares `json` with sentencepiece's ids in tok_ref.py's corpus `corpus` and with vlmn's
 * SentencePiece path over the same vocabulary `tsv`; texts holding one of the added
 * tokens' text are left out. Returns the number of texts compared. */
static int compare_with_spm(const char *json, const char *tsv, const char *corpus, const char *const *added, int n_added)
{
    vlmn_tok *hf = load(json);
    vlmn_tok *sp = tokfx_load_tsv(test_path(test_data_dir(), tsv));
    CHECK(sp != NULL);
    if (!hf || !sp) return 0;
    FILE *fp = fopen(test_path(test_data_dir(), corpus), "rb");
    CHECK(fp != NULL);
    if (!fp) return 0;
    int32_t *want = malloc((1 << 16) * sizeof *want);
    char *line = NULL;
    size_t cap = 0;
    int checked = 0, skipped = 0, bad = 0, span_bad = 0;
    while (getline(&line, &cap, fp) > 0) {
        char *f[6];
        if (line[0] != 'E' || tokfx_split(line, f, 6) != 5) continue;
        size_t tl = tokfx_unescape(f[2]);
        bool has = false;
        for (int i = 0; i < n_added && !has; i++) has = memmem(f[2], tl, added[i], strlen(added[i])) != NULL;
        /* user-defined "▁▁▁▁": sentencepiece finds it after normalizing (3 spaces at the
         * start, 4 inside), tokenizer.json looks for it in the raw text */
        char *norm = malloc(3 * tl + 4);
        size_t nl = 3;
        memcpy(norm, "\xe2\x96\x81", 3);
        for (size_t i = 0; i < tl; i++) {
            if (f[2][i] == ' ') memcpy(norm + nl, "\xe2\x96\x81", 3), nl += 3;
            else norm[nl++] = f[2][i];
        }
        for (int i = 0; i < n_added && !has; i++)
            has = !strncmp(added[i], "\xe2\x96\x81", 3) && memmem(norm, nl, added[i], strlen(added[i])) != NULL;
        free(norm);
        if (has) {
            skipped++;
            continue;
        }
        int nw = parse_ids(f[3], want, 1 << 16);
        int flags = (strchr(f[1], 'b') ? VLMN_TOK_BOS : 0) | (strchr(f[1], 'e') ? VLMN_TOK_EOS : 0);
        int32_t *a = NULL, *b = NULL;
        int64_t na = 0, nb = 0, *sa = NULL, *sb = NULL;
        CHECK(vlmn_tok_encode_spans(hf, f[2], tl, flags, &a, &sa, &na) == VLMN_OK);
        CHECK(vlmn_tok_encode_spans(sp, f[2], tl, flags, &b, &sb, &nb) == VLMN_OK);
        bool same = na == nw && nb == nw && memcmp(a, want, (size_t)na * sizeof *a) == 0 &&
                    memcmp(b, want, (size_t)nb * sizeof *b) == 0;
        if (same && memcmp(sa, sb, (size_t)(2 * na) * sizeof *sa) != 0 && span_bad++ < 5) {
            fprintf(stderr, "  spans differ: %s [%s] \"%.60s\"\n", json, f[1], f[2]);
            for (int64_t k = 0; k < na && k < 12; k++)
                fprintf(stderr, "    %d: [%lld,%lld) vs [%lld,%lld)\n", (int)a[k], (long long)sa[2 * k],
                        (long long)sa[2 * k + 1], (long long)sb[2 * k], (long long)sb[2 * k + 1]);
        }
        vlmn_free(sa);
        vlmn_free(sb);
        if (!same && bad++ < 10) {
            fprintf(stderr, "  %s [%s] \"%.80s\"\n", json, f[1], f[2]);
            print_ids("sentencepiece", want, nw);
            print_ids("tokenizer.json", a, na);
            print_ids("vlmn spm", b, nb);
        }
        checked++;
        vlmn_free(a);
        vlmn_free(b);
    }
    fprintf(stderr, "  %s: %d texts compared, %d with added-token text left out, %d mismatches\n", json, checked,
            skipped, bad);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(span_bad, 0); /* the same source spans as the SentencePiece path */
    CHECK_EQ_INT(vlmn_tok_n_vocab(hf), vlmn_tok_n_vocab(sp));
    CHECK_EQ_INT(vlmn_tok_bos(hf), vlmn_tok_bos(sp));
    CHECK_EQ_INT(vlmn_tok_eos(hf), vlmn_tok_eos(sp));
    CHECK_EQ_INT(vlmn_tok_unk(hf), vlmn_tok_unk(sp));
    CHECK_EQ_INT(vlmn_tok_default_flags(hf), VLMN_TOK_BOS);
    for (int32_t i = 0; i < vlmn_tok_n_vocab(sp); i++) /* the same piece types (control, unk, byte, user) */
        if (vlmn_tok_token_type(hf, i) != vlmn_tok_token_type(sp, i) && bad++ < 20)
            fprintf(stderr, "  %s: type of %d: %d, sentencepiece %d\n", json, (int)i, vlmn_tok_token_type(hf, i),
                    vlmn_tok_token_type(sp, i));
    CHECK_EQ_INT(bad, 0);
    free(line);
    free(want);
    fclose(fp);
    vlmn_tok_free(hf);
    vlmn_tok_free(sp);
    return checked;
}

/* The LLaMA tokenizer.json (converted from the sentencepiece model as transformers does)
 * against sentencepiece on tok_ref.py's corpora: with byte fallback, user-defined and
 * control pieces, and without byte fallback. */
TEST(llama_json_equals_sentencepiece)
{
    static const char *added[] = {"<unk>", "<s>", "</s>", "<ctrl>", "<image>", "[SEP]", "qq",
                                  "\xe2\x96\x81\xe2\x96\x81\xe2\x96\x81\xe2\x96\x81"};
    CHECK(compare_with_spm("llama_legacy", "tok/bpe.vocab.tsv", "tok/bpe.corpus.tsv", added, 8) >= 2000);
    static const char *added2[] = {"<unk>", "<s>", "</s>", "qq"};
    CHECK(compare_with_spm("llama_nobf", "tok/bpe_nobf.vocab.tsv", "tok/bpe_nobf.corpus.tsv", added2, 4) >= 700);
    vlmn_tok *hf = load("llama_legacy");
    int32_t b0 = hf ? vlmn_tok_find(hf, "<0x0A>", 6) : -1;
    CHECK(b0 >= 0 && vlmn_tok_token_type(hf, b0) == VLMN_TOKT_BYTE);
    vlmn_tok_free(hf);
}

TEST(spans)
{
    vlmn_tok *t = load("llama_legacy");
    vlmn_tok *c = load("clip");
    if (!t || !c) return;
    int32_t *ids = NULL;
    int64_t *sp = NULL, n = 0;
    /* "a<s>b": ▁a, <s>, ▁b -- the dummy prefixes have no source bytes */
    CHECK(vlmn_tok_encode_spans(t, "a<s>b", 5, 0, &ids, &sp, &n) == VLMN_OK);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_EQ_INT(ids[1], 1);
        CHECK(sp[0] == 0 && sp[1] == 1 && sp[2] == 1 && sp[3] == 4 && sp[4] == 4 && sp[5] == 5);
    }
    vlmn_free(ids);
    vlmn_free(sp);
    /* CLIP lowercases and NFC-composes: spans point into the original text */
    const char *txt = "Caf\x65\xcc\x81 DOG"; /* "Cafe" + U+0301 + " DOG" */
    CHECK(vlmn_tok_encode_spans(c, txt, strlen(txt), VLMN_TOK_BOS | VLMN_TOK_EOS, &ids, &sp, &n) == VLMN_OK);
    CHECK(n >= 4);
    if (n >= 4) {
        CHECK(sp[0] == 0 && sp[1] == 0);                     /* <|startoftext|> */
        CHECK(sp[2 * (n - 1)] == (int64_t)strlen(txt));      /* <|endoftext|> */
        CHECK_EQ_INT(sp[2 * (n - 2) + 1], (int64_t)strlen(txt)); /* "dog</w>" ends the text */
        CHECK_EQ_INT(sp[2 * (n - 2)], 7);
    }
    vlmn_free(ids);
    vlmn_free(sp);
    vlmn_tok_free(t);
    vlmn_tok_free(c);
}

TEST(clip_context)
{
    vlmn_tok *c = load("clip");
    if (!c) return;
    int32_t ids[8], n_used = 0;
    int32_t sot = vlmn_tok_bos(c), eot = vlmn_tok_eos(c);
    CHECK(sot >= 0 && eot == sot + 1);
    CHECK_EQ_INT(vlmn_tok_default_flags(c), VLMN_TOK_BOS | VLMN_TOK_EOS);
    const char *longt = "a photo of the cat sitting on a table with red and blue plates";
    CHECK(vlmn_tok_encode_context(c, longt, strlen(longt), 8, 0, ids, &n_used) == VLMN_OK);
    CHECK_EQ_INT(n_used, 8);
    CHECK_EQ_INT(ids[0], sot);
    CHECK_EQ_INT(ids[7], eot);
    int32_t *full = NULL;
    int64_t nf = 0;
    CHECK(vlmn_tok_encode(c, longt, strlen(longt), VLMN_TOK_BOS, &full, &nf) == VLMN_OK);
    CHECK(nf > 8 && memcmp(full, ids, 7 * sizeof *ids) == 0);
    vlmn_free(full);
    CHECK(vlmn_tok_encode_context(c, "a dog", 5, 8, eot, ids, &n_used) == VLMN_OK);
    CHECK(n_used >= 3 && n_used < 8);
    CHECK_EQ_INT(ids[n_used - 1], eot);
    for (int i = n_used; i < 8; i++) CHECK_EQ_INT(ids[i], eot);
    CHECK(vlmn_tok_encode_context(c, "a", 1, 2, 0, ids, NULL) == VLMN_E_ARG);
    vlmn_tok_free(c);
}

/* Malformed files: an error (never a crash), one line, naming the file. */
TEST(malformed)
{
    static const char *bad[] = {
        "",
        "[]",
        "{\"model\": 3}",
        "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"ab\"]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\"]]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"BertNormalizer\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"[a-z]+\"}, \"content\": \"x\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Sideways\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"ab\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": 1}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"CTC\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 5}]}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": {}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b c\"]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"post_processor\": {\"type\": \"RobertaProcessing\", \"cls\": [\"<s>\", 7], \"sep\": [\"</s>\", 0]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}], \"special_tokens\": {}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Sequence\", \"normalizers\": []}]}]}]}]}]}]}]}]}]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 16000000}, \"merges\": []}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vlmn_tok *t = NULL;
        vlmn_status st = vlmn_tok_from_hf_json(bad[i], strlen(bad[i]), "dir/tokenizer.json", &t);
        CHECK_MSG(st != VLMN_OK && t == NULL, "case %zu accepted", i);
        const char *m = vlmn_errmsg();
        CHECK_MSG(strncmp(m, "dir/tokenizer.json: ", 20) == 0 && !strchr(m, '\n'), "case %zu: %s", i, m);
        vlmn_tok_free(t);
    }
    /* the minimal valid file, and a missing file */
    const char *ok = "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}}";
    vlmn_tok *t = NULL;
    CHECK(vlmn_tok_from_hf_json(ok, strlen(ok), "x", &t) == VLMN_OK);
    int32_t *ids = NULL;
    int64_t n = 0;
    if (t) CHECK(vlmn_tok_encode(t, "abac", 4, 0, &ids, &n) == VLMN_OK && n == 2 && ids[0] == 2 && ids[1] == 0);
    vlmn_free(ids);
    vlmn_tok_free(t);
    CHECK(vlmn_tok_load_hf("/nonexistent/tokenizer.json", &t) != VLMN_OK && t == NULL);
}

/* GGUF's tokenizer.huggingface.json key builds the same tokenizer. */
TEST(gguf_carries_json)
{
    size_t jl = 0;
    char *json = test_read_file(test_path(test_data_dir(), "hftok/clip.tokenizer.json"), &jl);
    CHECK(json != NULL);
    if (!json) return;
    vlmn_gguf_writer *w = NULL;
    CHECK(vlmn_gguf_writer_create(&w) == VLMN_OK);
    CHECK(vlmn_gguf_set_str(w, "general.architecture", "clip") == VLMN_OK);
    CHECK(vlmn_gguf_set_str(w, "tokenizer.huggingface.json", json) == VLMN_OK);
    const char *path = test_path(test_tmp_dir(), "hftok_carry.gguf");
    CHECK(vlmn_gguf_write(w, path) == VLMN_OK);
    vlmn_gguf_writer_free(w);
    vlmn_gguf *g = NULL;
    CHECK(vlmn_gguf_open(path, &g) == VLMN_OK);
    vlmn_tok *a = NULL, *b = load("clip");
    if (g) CHECK(vlmn_tok_from_gguf(g, &a) == VLMN_OK);
    if (a && b) {
        int32_t *x = NULL, *y = NULL;
        int64_t nx = 0, ny = 0;
        const char *s = "A photo of 2 cats, don't they?";
        CHECK(vlmn_tok_encode(a, s, strlen(s), VLMN_TOK_BOS | VLMN_TOK_EOS, &x, &nx) == VLMN_OK);
        CHECK(vlmn_tok_encode(b, s, strlen(s), VLMN_TOK_BOS | VLMN_TOK_EOS, &y, &ny) == VLMN_OK);
        CHECK(nx == ny && nx > 3 && memcmp(x, y, (size_t)nx * sizeof *x) == 0);
        vlmn_free(x);
        vlmn_free(y);
    }
    vlmn_tok_free(a);
    vlmn_tok_free(b);
    vlmn_gguf_close(g);
    free(json);
}

TEST_MAIN()
