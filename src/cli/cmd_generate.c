/* `vlmn generate`: answer one question about an image, or every question of a dataset
 * (JSONL {id, question, answer, tokens}), with greedy or temperature/top-p decoding,
 * batched, optionally with neurons pruned (--drop). See docs/generate.md. */
#include "cli.h"
#include "model_opts.h"

#include "vlmn/eval.h"
#include "vlmn/mask.h"
#include "vlmn/model.h"
#include "vlmn/prompt.h"
#include "vlmn/tokenizer.h"

#include "core/alloc.h"

#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const struct vlmn_cmd vlmn_cmd_generate;

static const char USAGE[] =
    "vlmn generate -m TEXT.gguf --mmproj MMPROJ.gguf (--image IMG --question Q | --data FILE [--images DIR])\n"
    "              [--max-tokens N] [--temperature T] [--top-p P] [--seed S] [--batch B]\n"
    "              [--drop SPEC] [--template T] [--mode pad|crop] [--max-tiles N] [--precision P] [-t N]\n"
    "              [-o OUT.jsonl]\n"
    "\n"
    "Generates answers. With --image/--question the answer is printed (streamed token by\n"
    "token on a terminal); with --data every sample's question is answered and one JSON\n"
    "line {\"id\",\"question\",\"answer\",\"tokens\"} per sample is written (stdout or -o).\n"
    "\n"
    "  -m, --model FILE     text model (GGUF)\n"
    "  --mmproj FILE        vision projector (GGUF)\n"
    "  --image FILE         JPEG or PNG (with --question)\n"
    "  --question Q         the question\n"
    "  --data FILE          a dataset (LLaVA JSON or JSONL, see docs/dataset.md)\n"
    "  --images DIR         folder the dataset's image paths are relative to (default:\n"
    "                       the dataset's folder)\n"
    "  --max-tokens N       stop after N new tokens (default 64); always stops at EOS (and\n"
    "                       at <|im_end|> with the internvl template)\n"
    "  --temperature T      0 (default): greedy, deterministic; > 0 sampling\n"
    "  --top-p P            nucleus sampling mass in (0, 1] (default 1: all tokens)\n"
    "  --seed S             sampling seed (default 0); sample i uses S + i\n"
    "  --batch B            sequences decoded together (default 8)\n"
    "  --drop SPEC          prune neurons (activation forced to 0): FILE.csv (layer,neuron),\n"
    "                       run:RUN:QUERY (e.g. run:R:p_u>=0.8), random:RATIO:SEED,\n"
    "                       random-matched:RUN:QUERY:SEED (same count per layer), none\n"
    "  --template T         auto (default: the model's family, llava-v1 for LLaVA, internvl\n"
    "                       for InternVL), llava-v1, vicuna-v1, llava-hf, internvl\n"
    "  --mode M             LLaVA's image preprocessing: pad (default) or crop\n"
    "  --max-tiles N        InternVL: the image is cut into at most N tiles of the model's\n"
    "                       size (+ a thumbnail), 1..64 (default 12, the model card's)\n"
    "  --precision P        fast (default), exact or fastest\n"
    "  -t, --threads N      threads (default: all CPUs)\n"
    "  -o, --output FILE    write the JSONL here (also for a single question)\n";

typedef struct stream {
    const vlmn_tok *tok;
    int32_t ids[4096];
    int n;
    size_t printed;
} stream;

static void on_token(void *user, int seq, int32_t id, int n_generated)
{
    stream *s = user;
    (void)seq;
    (void)n_generated;
    if (s->n >= (int)VLMN_ARRAY_LEN(s->ids)) return;
    s->ids[s->n++] = id;
    char *text;
    size_t len;
    if (vlmn_tok_decode(s->tok, s->ids, s->n, &text, &len)) return;
    /* a trailing U+FFFD may be an incomplete byte sequence: wait for the next token */
    size_t upto = len;
    if (upto >= 3 && !memcmp(text + upto - 3, "\xEF\xBF\xBD", 3)) upto -= 3;
    const char *p = text;
    size_t skip = 0;
    while (skip < upto && p[skip] == ' ' && s->printed == 0) skip++;
    if (s->printed < skip) s->printed = skip;
    if (upto > s->printed) {
        fwrite(text + s->printed, 1, upto - s->printed, stdout);
        fflush(stdout);
        s->printed = upto;
    }
    vlmn_free(text);
}

static int write_line(FILE *f, const vlmn_qa_item *it, const char *answer, const int32_t *tokens, int n)
{
    cJSON *o = cJSON_CreateObject(), *t = cJSON_CreateArray();
    if (!o || !t) {
        cJSON_Delete(o);
        cJSON_Delete(t);
        return -1;
    }
    cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddStringToObject(o, "question", it->question);
    cJSON_AddStringToObject(o, "answer", answer);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(t, cJSON_CreateNumber(tokens[i]));
    cJSON_AddItemToObject(o, "tokens", t);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return -1;
    int r = fputs(s, f) == EOF || fputc('\n', f) == EOF || fflush(f) ? -1 : 0;
    free(s);
    return r;
}

static int run(int argc, char **argv)
{
    const char *cmd = "generate";
    const char *image = NULL, *question = NULL, *data = NULL, *images = NULL, *drop = NULL, *out = NULL, *v;
    long max_tokens = 64, batch = 8, seed = 0;
    double temp = 0.0, top_p = 1.0;
    cli_model_opts mo = cli_model_opts_init("auto", true);
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_model_opt(cmd, argc, argv, &i, &mo)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        CLI_STR_OPT("image", 0, image)
        CLI_STR_OPT("question", 0, question)
        CLI_STR_OPT("data", 0, data)
        CLI_STR_OPT("images", 0, images)
        CLI_STR_OPT("drop", 0, drop)
        CLI_STR_OPT("output", 'o', out)
        CLI_LONG_OPT("max-tokens", 0, max_tokens, 1, 4096, "--max-tokens")
        CLI_LONG_OPT("batch", 0, batch, 1, 256, "--batch")
        CLI_LONG_OPT("seed", 0, seed, 0, (long)(~0ul >> 1), "--seed")
        if ((r = cli_opt(argc, argv, &i, "temperature", 0, &v)) != 0) {
            if (r < 0 || cli_parse_double(v, &temp) || !(temp >= 0 && temp <= 100))
                return cli_errorf(cmd, 2, "bad --temperature (0 = greedy, or > 0)");
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "top-p", 0, &v)) != 0) {
            if (r < 0 || cli_parse_double(v, &top_p) || !(top_p > 0 && top_p <= 1))
                return cli_errorf(cmd, 2, "bad --top-p (in (0, 1])");
            continue;
        }
        if (cli_unknown_option(&vlmn_cmd_generate, argv, i)) return 2;
        cli_errorf(cmd, 2, "unexpected argument '%s'", argv[i]);
        return cli_usage(&vlmn_cmd_generate);
    }
    if (!mo.model || !mo.mmproj || (!data && (!image || !question)) || (data && (image || question))) {
        cli_errorf(cmd, 2, "give -m, --mmproj and either --image with --question or --data");
        return cli_usage(&vlmn_cmd_generate);
    }
    static const char *const templates[] = {"llava-v1", "vicuna-v1", "llava-hf", "internvl", NULL};
    vlmn_img_mode mode;
    int bad = cli_model_opts_check(cmd, &mo, templates, &mode);
    if (bad) return bad;
    const char *model = mo.model, *mmproj = mo.mmproj, *tmpl = mo.tmpl;
    const long threads = mo.threads, max_tiles = mo.max_tiles;
    const vlmn_precision prec = mo.prec;

    int rc = 1;
    vlmn_status st;
    vlmn_llava *m = NULL;
    vlmn_mask *mask = NULL;
    vlmn_qa_set qa = {0};
    FILE *f = NULL;
    char **ans = NULL;
    int32_t **toks = NULL;
    int *ntok = NULL;
    int64_t *idx = NULL;
    vlmn_qa_item one = {"0", (char *)question, NULL, (char *)image};

    if (data && (st = vlmn_qa_load(data, images, false, &qa))) goto fail;
    vlmn_llava_params lp = {.n_threads = (int)threads, .precision = prec};
    if ((st = vlmn_llava_load(model, mmproj, &lp, &m))) goto fail;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    /* the template and the tile count must suit the model (named in the message) */
    if ((st = vlmn_llava_check_template(m, model, tmpl))) goto fail;
    if ((st = vlmn_llava_check_tiles(m, model, (int)max_tiles))) goto fail;
    if (drop && (st = vlmn_mask_parse(drop, in->n_layer, in->n_ff, &mask))) goto fail;
    if (mask) fprintf(stderr, "vlmn generate: --drop %s: %lld neurons (%.2f%%)\n", drop, (long long)vlmn_mask_count(mask),
                      100.0 * vlmn_mask_ratio(mask));
    const vlmn_qa_item *items = data ? qa.items : &one;
    const int64_t n_items = data ? qa.n : 1;
    if (out && !(f = fopen(out, "w"))) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", out, strerror(errno));
        goto fail;
    }
    if (!out && data) f = stdout;

    stream sm = {.tok = vlmn_llava_tokenizer(m)};
    const bool live = !data && isatty(STDOUT_FILENO);
    vlmn_forward_opts fo = {.neuron_mask = vlmn_mask_rows(mask)};
    vlmn_qa_params qp = {.template_name = tmpl, .mode = mode, .max_tiles = (int)max_tiles,
                         .gen = {.max_tokens = (int)max_tokens, .temperature = (float)temp, .top_p = (float)top_p,
                                 .eos = -1, .opts = &fo, .on_token = live ? on_token : NULL, .user = &sm}};
    const int B = (int)batch;
    ans = vlmn_calloc((size_t)B, sizeof *ans);
    toks = vlmn_calloc((size_t)B, sizeof *toks);
    ntok = vlmn_calloc((size_t)B, sizeof *ntok);
    idx = vlmn_calloc((size_t)B, sizeof *idx);
    if (!ans || !toks || !ntok || !idx) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto fail;
    }
    for (int64_t i0 = 0; i0 < n_items; i0 += B) {
        int nb = (int)(n_items - i0 < B ? n_items - i0 : B);
        for (int k = 0; k < nb; k++) idx[k] = i0 + k;
        if ((st = vlmn_qa_answer(m, items + i0, nb, idx, (uint64_t)seed, &qp, ans, toks, ntok))) goto fail;
        for (int k = 0; k < nb; k++) {
            if (!data && !live) printf("%s\n", ans[k]);
            if (live) printf("\n");
            if (f && write_line(f, &items[i0 + k], ans[k], toks[k], ntok[k])) {
                st = vlmn_error(VLMN_E_IO, "%s: %s", out ? out : "stdout", strerror(errno));
                goto fail;
            }
            vlmn_free(ans[k]);
            vlmn_free(toks[k]);
            ans[k] = NULL;
            toks[k] = NULL;
        }
        if (data) fprintf(stderr, "vlmn generate: %lld/%lld\n", (long long)(i0 + nb), (long long)n_items);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(cmd, st);
out:
    if (f && f != stdout && fclose(f) && !rc) rc = cli_errorf(cmd, 1, "%s: %s", out, strerror(errno));
    vlmn_free(ans);
    vlmn_free(toks);
    vlmn_free(ntok);
    vlmn_free(idx);
    vlmn_mask_free(mask);
    vlmn_qa_free(&qa);
    vlmn_llava_free(m);
    return rc;
}

const struct vlmn_cmd vlmn_cmd_generate = {
    "generate", "answer questions about images (greedy or sampled decoding, batched, --drop to prune neurons)", USAGE,
    run};
