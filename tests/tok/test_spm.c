/* SentencePiece tokenizer.model parser: the reference's model (tests/data/engine/
 * tiny.spm.model, trained by sentencepiece in llava_ref.py) gives exactly the vocabulary
 * its GGUF holds (tokens, scores, types, ids); hostile protobufs give one-line errors. */
#include "test.h"

#include "vlmn/gguf.h"
#include "vlmn/tokenizer.h"
#include "core/alloc.h"
#include "core/file.h"

static unsigned char *model;
static size_t model_len;

static void load(void)
{
    if (!model) vlmn_file_read(test_path(test_data_dir(), "engine/tiny.spm.model"), 1 << 20, "model", &model, &model_len);
}

TEST(same_vocabulary_as_gguf)
{
    load();
    CHECK(model != NULL);
    vlmn_tok_spm *s = NULL;
    vlmn_gguf *g = NULL;
    CHECK_EQ_INT(vlmn_tok_spm_parse(model, model_len, "tiny.spm.model", &s), VLMN_OK);
    CHECK_EQ_INT(vlmn_gguf_open(test_path(test_data_dir(), "engine/f32.text.gguf"), &g), VLMN_OK);
    if (!s || !g) goto out;
    CHECK_EQ_INT(s->n, 440);
    CHECK_EQ_INT(s->unk_id, 0);
    CHECK_EQ_INT(s->bos_id, 1);
    CHECK_EQ_INT(s->eos_id, 2);
    CHECK(s->add_dummy_prefix);
    float *sc = calloc((size_t)s->n, sizeof *sc);
    int64_t *ty = calloc((size_t)s->n, sizeof *ty);
    CHECK_EQ_INT(vlmn_gguf_get_arr_f32(g, "tokenizer.ggml.scores", sc, (uint64_t)s->n), VLMN_OK);
    CHECK_EQ_INT(vlmn_gguf_get_arr_i64(g, "tokenizer.ggml.token_type", ty, (uint64_t)s->n), VLMN_OK);
    int bad = 0;
    for (int32_t i = 0; i < s->n; i++) {
        vlmn_gguf_str p;
        if (vlmn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)i, &p) || p.len != s->lens[i] ||
            memcmp(p.ptr, s->tokens[i], p.len) || sc[i] != s->scores[i] || ty[i] != s->types[i])
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    free(sc);
    free(ty);
out:
    vlmn_tok_spm_free(s);
    vlmn_gguf_close(g);
}

static void fails(const void *b, size_t n, vlmn_status want, const char *frag)
{
    vlmn_tok_spm *s = (vlmn_tok_spm *)1;
    vlmn_status st = vlmn_tok_spm_parse(b, n, "t.model", &s);
    CHECK_MSG(st == want, "status %d want %d (%s)", (int)st, (int)want, vlmn_errmsg());
    CHECK(s == NULL);
    CHECK_MSG(strstr(vlmn_errmsg(), "t.model: ") && strstr(vlmn_errmsg(), frag), "message: %s", vlmn_errmsg());
}

TEST(hostile)
{
    load();
    if (!model) return;
    /* every truncation of the real model is rejected or parses to a smaller prefix */
    for (size_t n = 0; n < model_len; n += 97) {
        vlmn_tok_spm *s = NULL;
        if (vlmn_tok_spm_parse(model, n, "t.model", &s) == VLMN_OK) {
            CHECK(s->n > 0 && s->n <= 440);
            vlmn_tok_spm_free(s);
        }
    }
    fails("", 0, VLMN_E_UNSUPPORTED, "model type 1 not supported (only BPE)");
    fails("\x0a\x05\x0a\x01", 4, VLMN_E_FORMAT, "bad protobuf");                 /* length past the end */
    fails("\x0a\x02\x10\x01\x12\x02\x18\x02", 8, VLMN_E_FORMAT, "piece 0 has no text");
    fails("\x12\x02\x18\x02", 4, VLMN_E_FORMAT, "no pieces");                     /* BPE, no pieces */
    fails("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11, VLMN_E_FORMAT, "bad protobuf"); /* varint overflow */
    fails("\x0a\x03\x0a\x01\x61\x12\x02\x18\x01", 9, VLMN_E_UNSUPPORTED, "only BPE"); /* unigram */
    fails("\x0a\x03\x0a\x01\x61\x12\x02\x18\x02\x1a\x06\x0a\x04nfkc", 17, VLMN_E_UNSUPPORTED,
          "normalizer \"nfkc\" not supported");
    fails("\x0a\x03\x0a\x01\x61\x12\x02\x18\x02\x1a\x02\x20\x01", 13, VLMN_E_UNSUPPORTED, "remove_extra_whitespaces");
    fails("\x0f", 1, VLMN_E_FORMAT, "bad protobuf");                              /* wire type 7 */
    vlmn_tok_spm *s = NULL;
    /* one piece, BPE, an unknown trainer field (10): defaults bos 1 / eos 2 are out of range */
    CHECK_EQ_INT(vlmn_tok_spm_parse("\x0a\x03\x0a\x01\x61\x12\x04\x18\x02\x50\x07", 11, "t.model", &s), VLMN_OK);
    if (s) {
        CHECK_EQ_INT(s->n, 1);
        CHECK_EQ_INT(s->unk_id, 0);
        CHECK_EQ_INT(s->bos_id, -1);
        CHECK_EQ_INT(s->eos_id, -1);
    }
    vlmn_tok_spm_free(s);
    vlmn_free(model);
}

TEST_MAIN()
