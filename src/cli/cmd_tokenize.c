/* `vlmn tokenize`: encode a text with a GGUF's SentencePiece vocabulary and print the
 * ids (or, with --json, the ids and their pieces). */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/alloc.h"
#include "core/file.h"
#include "vlmn/gguf.h"
#include "vlmn/tokenizer.h"

#define TOKENIZE_MAX_STDIN ((size_t)1 << 30)

static const char usage[] =
    "vlmn tokenize -m MODEL.gguf|tokenizer.json [--no-bos] [--eos] [--json] TEXT\n"
    "  Encode TEXT (\"-\": all of stdin, byte for byte, newlines included) with the\n"
    "  SentencePiece vocabulary of MODEL.gguf (tokenizer.ggml.* keys) or a Hugging Face\n"
    "  tokenizer.json and print the ids on one line, separated by spaces.\n"
    "  -m, --model FILE  GGUF file with a \"llama\" tokenizer, or a tokenizer.json (a\n"
    "                    file whose name ends in .json)\n"
    "  --no-bos          do not add BOS (default: the file's add_bos_token, usually on)\n"
    "  --eos             add EOS (default: the file's add_eos_token, usually off)\n"
    "  --json            print [{\"id\": ID, \"piece\": PIECE}, ...] instead\n"
    "  GGUF: text that looks like a control token (\"<s>\") is tokenized as plain text;\n"
    "  tokenizer.json: added tokens in the text are matched, as `tokenizers` does.\n";

static int run(int argc, char **argv);
const struct vlmn_cmd vlmn_cmd_tokenize = {"tokenize", "text -> token ids with a GGUF vocabulary",
                                           usage, run};

static int print_json(const vlmn_tok *t, const int32_t *ids, int64_t n)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return -1;
    for (int64_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        size_t pl = 0;
        const char *p = vlmn_tok_piece(t, ids[i], &pl);
        char *ps = vlmn_strndup(p, pl); /* pieces may hold NUL bytes in hostile files */
        if (!o || !ps || !cJSON_AddNumberToObject(o, "id", ids[i]) ||
            !cJSON_AddStringToObject(o, "piece", ps)) {
            vlmn_free(ps);
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return -1;
        }
        vlmn_free(ps);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    if (!s) return -1;
    printf("%s\n", s);
    cJSON_free(s);
    return 0;
}

static int run(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    int no_bos = 0, eos = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = cli_opt(argc, argv, &i, "model", 'm', &v))) {
            if (r < 0) return cli_usage(&vlmn_cmd_tokenize);
            model = v;
        } else if (cli_flag(argv, i, "no-bos", 0)) {
            no_bos = 1;
        } else if (cli_flag(argv, i, "eos", 0)) {
            eos = 1;
        } else if (cli_flag(argv, i, "json", 0)) {
            json = 1;
        } else if (cli_unknown_option(&vlmn_cmd_tokenize, argv, i)) {
            return 2;
        } else if (!text) {
            text = argv[i];
        } else {
            cli_errorf("tokenize", 2, "more than one TEXT (quote the text)");
            return cli_usage(&vlmn_cmd_tokenize);
        }
    }
    if (!model || !text) return cli_usage(&vlmn_cmd_tokenize);

    int rc = 1;
    vlmn_gguf *g = NULL;
    vlmn_tok *t = NULL;
    char *buf = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    size_t len = 0;
    vlmn_status st;
    size_t ml = strlen(model);
    bool is_json = ml >= 5 && !strcmp(model + ml - 5, ".json");
    if (is_json ? (st = vlmn_tok_load_hf(model, &t)) : ((st = vlmn_gguf_open(model, &g)) || (st = vlmn_tok_from_gguf(g, &t)))) {
        rc = cli_fail("tokenize", st);
        goto done;
    }
    if (strcmp(text, "-") == 0) {
        if ((st = vlmn_file_read_stream(stdin, "stdin", TOKENIZE_MAX_STDIN, "text", (unsigned char **)&buf, &len))) {
            rc = cli_fail("tokenize", st);
            goto done;
        }
        text = buf;
    } else {
        len = strlen(text);
    }
    int flags = vlmn_tok_default_flags(t);
    if (no_bos) flags &= ~VLMN_TOK_BOS;
    if (eos) flags |= VLMN_TOK_EOS;
    if ((st = vlmn_tok_encode(t, text, len, flags, &ids, &n))) {
        rc = cli_fail("tokenize", st);
        goto done;
    }
    if (json) {
        if (print_json(t, ids, n)) {
            rc = cli_errorf("tokenize", 1, "out of memory writing JSON");
            goto done;
        }
    } else {
        for (int64_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        printf("\n");
    }
    rc = fflush(stdout) == 0 ? 0 : cli_errorf("tokenize", 1, "cannot write the output");
done:
    vlmn_free(ids);
    vlmn_free(buf);
    vlmn_tok_free(t);
    vlmn_gguf_close(g);
    return rc;
}
