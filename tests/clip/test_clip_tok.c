/* CLIP's text tokenizer as the CLIP simulator gets it (vlmn_clip_tokenizer_open on a
 * folder holding CLIP's tokenizer.json): ids with the start and end tokens equal the
 * independent Python reference's (tests/reference/hftok_ref.py, corpus rows "clip" with
 * specials), a long text is cut to the context with the end token kept, and a folder
 * without tokenizer.json is a one-line error naming the file. */
#include "test.h"

#include "vlmn/clip.h"
#include "tok/tok_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096];

static int setup(void)
{
    snprintf(dir, sizeof dir, "%s/test_clip_tok.%d", test_tmp_dir(), (int)getpid());
    mkdir(dir, 0777);
    size_t n = 0;
    char *json = test_read_file(test_path(test_data_dir(), "hftok/clip.tokenizer.json"), &n);
    if (!json) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(json, 1, n, f) == n;
    if (f) fclose(f);
    free(json);
    return ok ? 0 : -1;
}

TEST(ids_match_reference_corpus)
{
    CHECK(setup() == 0);
    vlmn_clip_tokenize_fn fn;
    void *u;
    CHECK(vlmn_clip_tokenizer_open(dir, &fn, &u) == VLMN_OK);
    FILE *f = fopen(test_path(test_data_dir(), "hftok/hftok.corpus.tsv"), "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[8192];
    int compared = 0;
    while (fgets(line, sizeof line, f)) {
        /* E <TAB> name <TAB> flags <TAB> text <TAB> ids <TAB> decoded; texts unescaped as test_hftok does */
        char *fld[6] = {0};
        int k = 0;
        for (char *p = line, *q; k < 6 && p; p = q ? q + 1 : NULL, k++) {
            q = strchr(p, '\t');
            if (q) *q = 0;
            fld[k] = p;
        }
        if (k < 5 || strcmp(fld[0], "E") || strcmp(fld[1], "clip") || strcmp(fld[2], "b")) continue;
        size_t tl = tokfx_unescape(fld[3]);
        if (strlen(fld[3]) != tl) continue; /* an escaped NUL: the callback takes C strings */
        int32_t want[80], got[77];
        int nw = 0;
        for (char *p = fld[4], *e; *p && nw < 80; p = e) {
            long v = strtol(p, &e, 10);
            if (e == p) break;
            want[nw++] = (int32_t)v;
        }
        if (nw > 77) continue;
        int ng = -1;
        CHECK(fn(u, fld[3], got, 77, &ng) == VLMN_OK);
        CHECK_MSG(ng == nw && !memcmp(got, want, (size_t)nw * sizeof *got), "text '%s': %d ids, want %d", fld[3], ng, nw);
        compared++;
    }
    fclose(f);
    fprintf(stderr, "  %d corpus texts compared\n", compared);
    CHECK(compared >= 200);
    vlmn_clip_tokenizer_close(u);
}

TEST(long_text_cut_to_context_keeping_the_end_token)
{
    CHECK(setup() == 0);
    vlmn_clip_tokenize_fn fn;
    void *u;
    CHECK(vlmn_clip_tokenizer_open(dir, &fn, &u) == VLMN_OK);
    char text[2001];
    for (int i = 0; i < 1000; i++) memcpy(text + 2 * i, "a ", 2);
    text[2000] = 0;
    int32_t ids[77];
    int n = 0;
    CHECK(fn(u, text, ids, 77, &n) == VLMN_OK);
    CHECK_EQ_INT(n, 77);
    CHECK_EQ_INT(ids[0], 782);  /* <|startoftext|> */
    CHECK_EQ_INT(ids[76], 783); /* <|endoftext|> */
    CHECK_EQ_INT(ids[1], 353);  /* "a</w>" */
    vlmn_clip_tokenizer_close(u);
}

TEST(missing_tokenizer_is_an_error_naming_the_file)
{
    vlmn_clip_tokenize_fn fn;
    void *u;
    char empty[4200];
    snprintf(empty, sizeof empty, "%s/test_clip_tok_empty.%d", test_tmp_dir(), (int)getpid());
    mkdir(empty, 0777);
    CHECK(vlmn_clip_tokenizer_open(empty, &fn, &u) != VLMN_OK);
    CHECK(strstr(vlmn_errmsg(), "tokenizer.json") != NULL);
    CHECK(fn == NULL && u == NULL);
}

TEST_MAIN()
