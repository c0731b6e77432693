/* Chat templates of Hugging Face folders: tests/data/hftok/chat/ (from the Jinja2
 * renderings of tests/reference/chat_template_ref.py) -- each folder's template is
 * classified as expected, and the engine's template of that name formats every case to
 * exactly what Jinja2 renders; unknown and malformed templates are one-line errors. */
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "test.h"
#include "tok/tok_fixture.h"
#include "vlmn/model.h"
#include "vlmn/prompt.h"

TEST(folders_and_renders)
{
    char dir[1024], sub[1100];
    snprintf(dir, sizeof dir, "%s/hftok/chat", test_data_dir());
    snprintf(sub, sizeof sub, "%s/renders.tsv", dir);
    FILE *fp = fopen(sub, "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    char *line = NULL, cur[64] = "", got_name[64] = "";
    size_t cap = 0;
    int n_f = 0, n_r = 0;
    while (getline(&line, &cap, fp) > 0) {
        if (line[0] == '#') continue;
        char *f[6];
        int nf = tokfx_split(line, f, 6);
        if (f[0][0] == 'F' && nf == 3) {
            const char *name = NULL;
            char src[1024];
            snprintf(sub, sizeof sub, "%s/%s", dir, f[1]);
            vlmn_status st = vlmn_hf_chat_template(sub, &name, src, sizeof src);
            if (!strcmp(f[2], "-")) {
                CHECK_MSG(st == VLMN_E_UNSUPPORTED, "%s accepted", f[1]);
                CHECK(strstr(vlmn_errmsg(), "chat_template.json: chat template not recognised") != NULL);
            } else if (!*f[2]) {
                CHECK(st == VLMN_OK && name == NULL);
            } else {
                CHECK_MSG(st == VLMN_OK && name && !strcmp(name, f[2]), "%s: %s", f[1], name ? name : vlmn_errmsg());
                CHECK(strstr(src, f[1]) != NULL);
            }
            snprintf(cur, sizeof cur, "%s", f[1]);
            snprintf(got_name, sizeof got_name, "%s", name ? name : "");
            n_f++;
        } else if (f[0][0] == 'R' && nf == 5) {
            CHECK(!strcmp(f[1], cur) && *got_name);
            tokfx_unescape(f[2]);
            bool none = !strcmp(f[3], "\\N");
            if (!none) tokfx_unescape(f[3]);
            tokfx_unescape(f[4]);
            char *text = NULL;
            size_t a = 0, b = 0;
            CHECK(vlmn_prompt_format(got_name, f[2], none ? NULL : f[3], &text, &a, &b) == VLMN_OK);
            CHECK_MSG(text && !strcmp(text, f[4]), "%s: got \"%s\" want \"%s\"", cur, text ? text : "", f[4]);
            if (text && !none && *f[3]) CHECK(b - a == strlen(f[3]) && !memcmp(text + a, f[3], b - a));
            vlmn_free(text);
            n_r++;
        } else {
            CHECK_MSG(0, "bad line %s", f[0]);
        }
    }
    CHECK_EQ_INT(n_f, 7);
    CHECK_EQ_INT(n_r, 30);
    free(line);
    fclose(fp);
}

static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

TEST(malformed)
{
    static const char *bad[] = {
        "{\"chat_template\": 3}",
        "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}",
        "[1, 2]",
        "{\"chat_template\": \"{{ bos_token }}[INST] USER ASSISTANT <image>\"}",
        "{\"chat_template\": \"USER: {{ x }} ASSISTANT:\"}", /* no image slot */
    };
    char dir[1024], p1[1100], p2[1100];
    snprintf(dir, sizeof dir, "%s/hf_chat_bad", test_tmp_dir());
    snprintf(p1, sizeof p1, "%s/tokenizer_config.json", dir);
    snprintf(p2, sizeof p2, "%s/chat_template.json", dir);
    mkdir(dir, 0755);
    unlink(p2);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file(p1, bad[i]);
        const char *name = "x";
        vlmn_status st = vlmn_hf_chat_template(dir, &name, NULL, 0);
        CHECK_MSG(st != VLMN_OK && name == NULL, "case %zu", i);
        CHECK_MSG(strstr(vlmn_errmsg(), "tokenizer_config.json: ") && !strchr(vlmn_errmsg(), '\n'), "%s", vlmn_errmsg());
    }
    /* chat_template.json wins over tokenizer_config.json */
    write_file(p2, "{\"chat_template\": \"USER: <image> ASSISTANT:\"}");
    const char *name = NULL;
    CHECK(vlmn_hf_chat_template(dir, &name, NULL, 0) == VLMN_OK && name && !strcmp(name, "llava-hf"));
    CHECK(vlmn_hf_chat_classify("{{ messages }}") == NULL);
}

TEST_MAIN()
