/* Tests for src/data: the streaming LLaVA-JSON and JSONL readers, the LLaVA question
 * rule, and error messages (sample index + byte offset) on malformed input. */
#include "test.h"
#include "vlmn/dataset.h"
#include "core/alloc.h"

static vlmn_dataset *open_str(const char *s, vlmn_ds_format fmt)
{
    vlmn_dataset *ds = NULL;
    vlmn_status st = vlmn_ds_open_mem(s, strlen(s), "mem.json", fmt, &ds);
    CHECK_MSG(st == VLMN_OK, "%s", vlmn_errmsg());
    return ds;
}

TEST(llava_array_streaming)
{
    const char *js =
        "  [\n {\"id\": \"000001\", \"image\": \"a.jpg\", \"conversations\": ["
        "{\"from\": \"human\", \"value\": \"<image>\\nWhat is {this}? \\\"[x]\\\"\"},"
        "{\"from\": \"gpt\", \"value\": \"A cat.\"}, {\"from\": \"human\", \"value\": \"more\"}]},\n"
        "{\"id\": 17, \"image\": \"b.png\", \"conversations\": [{\"from\":\"gpt\",\"value\":\"skip\"},"
        "{\"from\": \"human\", \"value\": \"Describe.\\n<image>\"}, {\"from\": \"gpt\", \"value\": \" Two dogs.\\n\"}]},"
        "{\"id\": \"x\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]},"
        "{\"id\": \"y\", \"image\": \"c.jpg\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}\n]\n";
    vlmn_dataset *ds = open_str(js, VLMN_DS_AUTO);
    if (!ds) return;
    CHECK_EQ_INT(vlmn_ds_get_format(ds), VLMN_DS_LLAVA);
    vlmn_sample s;
    bool eof;
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && !eof);
    CHECK_EQ_INT(s.index, 0);
    CHECK_EQ_INT(s.offset, 5);
    CHECK_EQ_STR(s.id, "000001");
    CHECK_EQ_STR(s.image, "a.jpg");
    CHECK_EQ_STR(s.question, "What is {this}? \"[x]\"");
    CHECK_EQ_STR(s.answer, "A cat.");
    CHECK(s.error == NULL);
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && !eof);
    CHECK_EQ_INT(s.index, 1);
    CHECK_EQ_STR(s.id, "17");
    CHECK_EQ_STR(s.question, "Describe.");
    CHECK_EQ_STR(s.answer, " Two dogs.\n");
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && !eof);
    CHECK_EQ_INT(s.index, 2);
    CHECK(s.error && strstr(s.error, "image"));
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && !eof);
    CHECK(s.error && strstr(s.error, "gpt"));
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && eof);
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && eof);
    vlmn_ds_close(ds);
}

TEST(jsonl)
{
    const char *js = "{\"id\":\"a\",\"image\":\"1.jpg\",\"question\":\"<image>\\n  Q1 \",\"answer\":\"A1\"}\n"
                     "\n"
                     "{\"id\":\"b\",\"image\":\"2.jpg\",\"question\":\"Q2\",\"answer\":\"A2 \\u00e9\"}";
    vlmn_dataset *ds = open_str(js, VLMN_DS_AUTO);
    if (!ds) return;
    CHECK_EQ_INT(vlmn_ds_get_format(ds), VLMN_DS_JSONL);
    vlmn_sample s;
    bool eof;
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && !eof);
    CHECK_EQ_STR(s.question, "Q1");
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && !eof);
    CHECK_EQ_INT(s.index, 1);
    CHECK_EQ_STR(s.answer, "A2 \xc3\xa9");
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && eof);
    vlmn_ds_close(ds);
}

TEST(question_rule)
{
    const char *in[] = {"<image>\nHi", "Hi\n<image>", " a <image> b ", "<image><image>", "\t\x1f x \v"};
    const char *out[] = {"Hi", "Hi", "a  b", "", "x"};
    for (size_t i = 0; i < VLMN_ARRAY_LEN(in); i++) {
        char *q = vlmn_ds_clean_question(in[i]);
        CHECK_EQ_STR(q, out[i]);
        vlmn_free(q);
    }
}

/* A malformed file: the message names the file, sample index and byte offset. */
static void expect_error(const char *js, int skip_ok, const char *want_sub)
{
    vlmn_dataset *ds = NULL;
    vlmn_status st = vlmn_ds_open_mem(js, strlen(js), "bad.json", VLMN_DS_AUTO, &ds);
    if (st == VLMN_OK) {
        vlmn_sample s;
        bool eof = false;
        for (int i = 0; i < skip_ok; i++) CHECK_MSG(vlmn_ds_next(ds, &s, &eof) == VLMN_OK, "%s", vlmn_errmsg());
        st = vlmn_ds_next(ds, &s, &eof);
        CHECK(st == VLMN_E_FORMAT);
        /* errors are sticky: no garbage after them */
        CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && eof);
    }
    CHECK_MSG(strstr(vlmn_errmsg(), want_sub) != NULL, "message '%s' lacks '%s'", vlmn_errmsg(), want_sub);
    CHECK(strstr(vlmn_errmsg(), "bad.json") != NULL);
    vlmn_ds_close(ds);
}

TEST(malformed_input)
{
    expect_error("[{\"id\":1}, {\"id\": 2,}]", 1, "sample 1 (byte offset 11)");
    expect_error("[{\"id\":1} {\"id\":2}]", 1, "expected ','");
    expect_error("[{\"id\":1}, 3]", 1, "must be an object");
    expect_error("[{\"id\":\"unterminated}]", 0, "unexpected end of file");
    expect_error("[{\"id\":1}", 1, "missing ']'");
    expect_error("[{\"id\":1}] x", 1, "after the closing");
    expect_error("[{\"id\":1},]", 1, "must be an object");
    expect_error("[{\"a\":[1}]", 0, "sample 0");
    expect_error("{\"id\":1}\n{\"id\":2} 5\n", 1, "sample 1 (byte offset 9)");
    expect_error("{\"id\":1}\n[1]\n", 1, "not a JSON object");
    expect_error("{\"id\":1}\n{\"id\":\n", 1, "invalid JSON");
    expect_error("hello", 0, "not a dataset");
    expect_error("", 0, "not a dataset");
    expect_error("   \n", 0, "not a dataset");
}

TEST(count_and_skip)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/ds_count.json", test_tmp_dir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputc('[', f);
    /* > one read buffer, strings with brackets and escapes */
    for (int i = 0; i < 3000; i++)
        fprintf(f, "%s{\"id\":\"%d\",\"image\":\"i%d.jpg\",\"conversations\":[{\"from\":\"human\",\"value\":\"]}\\\\\\\"{[\"},"
                   "{\"from\":\"gpt\",\"value\":\"a\"}]}",
                i ? ",\n" : "", i, i);
    fputs("]", f);
    fclose(f);
    int64_t n = -1;
    CHECK(vlmn_ds_count(path, VLMN_DS_AUTO, &n) == VLMN_OK);
    CHECK_EQ_INT(n, 3000);
    vlmn_dataset *ds;
    CHECK(vlmn_ds_open(path, VLMN_DS_AUTO, &ds) == VLMN_OK);
    bool eof;
    for (int i = 0; i < 2500; i++) CHECK(vlmn_ds_skip(ds, &eof) == VLMN_OK && !eof);
    vlmn_sample s;
    CHECK(vlmn_ds_next(ds, &s, &eof) == VLMN_OK && !eof);
    CHECK_EQ_INT(s.index, 2500);
    CHECK_EQ_STR(s.id, "2500");
    CHECK_EQ_STR(s.question, "]}\\\"{[");
    vlmn_ds_close(ds);
    CHECK(vlmn_ds_open("/nonexistent/x.json", VLMN_DS_AUTO, &ds) == VLMN_E_NOTFOUND);
}

TEST_MAIN()
