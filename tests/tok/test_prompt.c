/* Prompt templates: ids and modality labels must equal tests/reference/prompt_ref.py's
 * (LLaVA's get_prompt + tokenizer_image_token over sentencepiece), template strings must
 * equal LLaVA's conversation.py text, and bad arguments must be refused. */
#include "core/alloc.h"
#include "test.h"
#include "tok/tok_fixture.h"
#include "vlmn/prompt.h"

static vlmn_tok *load(void)
{
    vlmn_gguf *g = NULL;
    vlmn_tok *t = NULL;
    CHECK_EQ_INT(vlmn_gguf_open(test_path(test_data_dir(), "tok/bpe.gguf"), &g), VLMN_OK);
    if (g) CHECK_EQ_INT(vlmn_tok_from_gguf(g, &t), VLMN_OK);
    vlmn_gguf_close(g);
    return t;
}

static char *field_or_null(char *f) { return strcmp(f, "\\N") == 0 ? NULL : (tokfx_unescape(f), f); }

TEST(golden_prompts)
{
    vlmn_tok *t = load();
    if (!t) return;
    FILE *fp = fopen(test_path(test_data_dir(), "tok/prompt.tsv"), "rb");
    CHECK(fp != NULL);
    if (!fp) {
        vlmn_tok_free(t);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0, bad = 0, n_text = 0, n_image = 0;
    static int32_t want[8192];
    while (getline(&line, &cap, fp) > 0) {
        char *f[8];
        int nf = tokfx_split(line, f, 8);
        int32_t *ids = NULL;
        uint8_t *mod = NULL;
        int64_t n = 0;
        vlmn_status st;
        const char *wl;
        char *ws;
        if (f[0][0] == 'T' && nf == 7) {
            char *q = field_or_null(f[2]), *a = field_or_null(f[3]);
            st = vlmn_prompt_build(t, f[1], q, a, atoi(f[4]), &ids, &mod, &n);
            ws = f[5];
            wl = f[6];
        } else if (f[0][0] == 'R' && nf == 7) {
            size_t len = tokfx_unescape(f[1]);
            st = vlmn_prompt_tokenize(t, f[1], len, (size_t)atol(f[2]), (size_t)atol(f[3]),
                                      atoi(f[4]), &ids, &mod, &n);
            ws = f[5];
            wl = f[6];
        } else {
            CHECK_MSG(0, "bad fixture line %d", n_cases + 1);
            continue;
        }
        int nw = 0;
        for (char *p = strtok(ws, " "); p && nw < 8192; p = strtok(NULL, " ")) want[nw++] = atoi(p);
        int ok = st == VLMN_OK && n == nw && (size_t)n == strlen(wl);
        for (int64_t i = 0; ok && i < n; i++) {
            ok = ids[i] == want[i] && mod[i] == (uint8_t)(wl[i] - '0');
            n_text += mod[i] == VLMN_MOD_TEXT;
            n_image += mod[i] == VLMN_MOD_IMAGE;
        }
        if (!ok) {
            bad++;
            fprintf(stderr, "  case %d (%s %s): status %d, %lld ids (want %d)\n    got labels  ",
                    n_cases + 1, f[0], f[1], (int)st, (long long)n, nw);
            for (int64_t i = 0; i < n; i++) fputc('0' + mod[i], stderr);
            fprintf(stderr, "\n    want labels %s\n", wl);
        }
        n_cases++;
        vlmn_free(ids);
        vlmn_free(mod);
    }
    fprintf(stderr, "  prompt.tsv: %d cases, %d mismatches (%d text, %d image positions)\n",
            n_cases, bad, n_text, n_image);
    CHECK_EQ_INT(bad, 0);
    CHECK(n_cases >= 30);
    CHECK(n_text > 100);
    free(line);
    fclose(fp);
    vlmn_tok_free(t);
}

/* The template strings, written out from LLaVA's conversation.py by hand. */
TEST(template_strings)
{
    char *s = NULL;
    size_t ab, ae;
    CHECK_EQ_INT(vlmn_prompt_format("llava-v1", "What is this?", "A cat.", &s, &ab, &ae), VLMN_OK);
    CHECK_EQ_STR(s, "A chat between a curious human and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the human's "
                    "questions. USER: <image>\nWhat is this? ASSISTANT: A cat.</s>");
    if (s) CHECK(ae - ab == 6 && memcmp(s + ab, "A cat.", 6) == 0);
    vlmn_free(s);
    CHECK_EQ_INT(vlmn_prompt_format("vicuna-v1", "Q", NULL, &s, &ab, &ae), VLMN_OK);
    CHECK_EQ_STR(s, "A chat between a curious user and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the user's "
                    "questions. USER: <image>\nQ ASSISTANT:");
    CHECK_EQ_INT(ab, 0);
    CHECK_EQ_INT(ae, 0);
    vlmn_free(s);
    CHECK_EQ_INT(vlmn_prompt_format("plain", NULL, "two\nlines", &s, &ab, &ae), VLMN_OK);
    CHECK_EQ_STR(s, "<image>two\nlines\n");
    CHECK_EQ_INT(ab, 7);
    CHECK_EQ_INT(ae, 16);
    vlmn_free(s);
    const char *const *names = vlmn_prompt_templates();
    CHECK_EQ_STR(names[0], "llava-v1");
    CHECK_EQ_STR(names[1], "vicuna-v1");
    CHECK_EQ_STR(names[2], "plain");
    CHECK_EQ_STR(names[3], "llava-hf"); /* tests/model/test_hf_chat.c checks it against Jinja2 */
    CHECK(names[4] == NULL);
}

TEST(bad_arguments)
{
    char *s = NULL;
    size_t ab, ae;
    CHECK_EQ_INT(vlmn_prompt_format("llava-v2", "q", "a", &s, &ab, &ae), VLMN_E_NOTFOUND);
    CHECK(strstr(vlmn_errmsg(), "llava-v2") != NULL);
    CHECK_EQ_INT(vlmn_prompt_format("llava-v1", "q <image>", "a", &s, &ab, &ae), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_prompt_format("llava-v1", "q", "<image>", &s, &ab, &ae), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_prompt_format("plain", "a question", "a", &s, &ab, &ae), VLMN_E_ARG);
    CHECK(s == NULL);
    vlmn_tok *t = load();
    if (!t) return;
    int32_t *ids = NULL;
    uint8_t *mod = NULL;
    int64_t n = 0;
    CHECK_EQ_INT(vlmn_prompt_tokenize(t, "abc", 3, 2, 5, 1, &ids, &mod, &n), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_prompt_tokenize(t, "abc", 3, 2, 1, 1, &ids, &mod, &n), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_prompt_tokenize(t, "abc", 3, 0, 0, -1, &ids, &mod, &n), VLMN_E_RANGE);
    CHECK_EQ_INT(vlmn_prompt_build(t, "nope", "q", "a", 4, &ids, &mod, &n), VLMN_E_NOTFOUND);
    CHECK(ids == NULL && mod == NULL && n == 0);
    /* A prompt of one image and nothing else: BOS then the image. */
    CHECK_EQ_INT(vlmn_prompt_build(t, "plain", NULL, NULL, 3, &ids, &mod, &n), VLMN_OK);
    CHECK_EQ_INT(n, 4);
    if (n == 4) {
        CHECK_EQ_INT(ids[0], vlmn_tok_bos(t));
        CHECK_EQ_INT(mod[0], VLMN_MOD_PROMPT);
        CHECK(ids[1] == -1 && ids[3] == -1 && mod[2] == VLMN_MOD_IMAGE);
    }
    vlmn_free(ids);
    vlmn_free(mod);
    /* Allocation failures come back as VLMN_E_NOMEM, never a crash or leak. */
    int n_nomem = 0;
    for (long k = 1; k < 30; k++) {
        vlmn_alloc_fail_after(k);
        vlmn_status st = vlmn_prompt_build(t, "llava-v1", "What?", "A dog \xf0\x9f\xa6\x9c.</s>x", 8,
                                           &ids, &mod, &n);
        vlmn_alloc_fail_after(0);
        CHECK(st == VLMN_OK || st == VLMN_E_NOMEM);
        n_nomem += st == VLMN_E_NOMEM;
        vlmn_free(ids);
        vlmn_free(mod);
    }
    CHECK(n_nomem > 3);
    vlmn_tok_free(t);
}

TEST_MAIN()
