/* `vlmn probe`: run one LLaVA sample (image + prompt) through the engine and write the
 * FFN activations of the chosen layers (DIR/activations.npy, float32 [L, T, n_ff]) and
 * the positions they belong to (DIR/tokens.json). The front end of the engine for
 * inspection and end-to-end tests. */
#include "cli.h"
#include "info_hf.h"
#include "model_opts.h"

#include "vlmn/image.h"
#include "vlmn/model.h"
#include "vlmn/npy.h"
#include "vlmn/prompt.h"
#include "vlmn/tokenizer.h"

#include "core/alloc.h"

#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const struct vlmn_cmd vlmn_cmd_probe;

static const char USAGE[] =
    "vlmn probe (-m TEXT.gguf --mmproj MMPROJ.gguf | -m HF_DIR [--clip DIR]) --image IMG\n"
    "                  (--question Q --answer A [--template T] | --prompt RAW)\n"
    "                  [--hook silu_gate|swiglu] [--layers SPEC] [--mode pad|crop]\n"
    "                  [--precision fast|exact|fastest | --exact] [-t N] -o DIR\n"
    "\n"
    "Runs one sample and writes DIR/activations.npy (float32 [n_layers, n_tokens, n_ff]:\n"
    "the FFN activations of the selected layers at every position, image positions\n"
    "expanded in place) and DIR/tokens.json ([{\"pos\",\"id\" (-1 = image),\"piece\",\n"
    "\"modality\": \"image\"|\"text\"|\"prompt\"}]).\n"
    "\n"
    "  -m, --model FILE     text model (GGUF, llama architecture), or a Hugging Face\n"
    "                       LLaVA folder (no --mmproj; see docs/hf.md)\n"
    "  --mmproj FILE        vision projector (GGUF, clip with a LLaVA projector)\n"
    "  --clip DIR           CLIP folder of an original-layout LLaVA folder (default: the\n"
    "                       folder next to it named after mm_vision_tower)\n"
    "  --image FILE         JPEG or PNG\n"
    "  --question Q         question (llava-v1 template)\n"
    "  --answer A           answer / description: the positions labelled \"text\"\n"
    "  --template T         llava-v1 (default: LLaVA's conv_llava_v1 with its system\n"
    "                       prompt), vicuna-v1 (the same with \"user\" for \"human\") or\n"
    "                       plain (<image> followed by the answer), llava-hf (USER: <image>\\n\n"
    "                       Q ASSISTANT: A, the chat template of llava-hf folders), internvl\n"
    "                       for InternVL models (internlm2-chat; the image dynamically tiled,\n"
    "                       up to 12 tiles + a thumbnail, --mode ignored) or auto (the\n"
    "                       folder's chat template; llava-v1 if none)\n"
    "  --prompt RAW         raw prompt containing <image> once, tokenized as LLaVA's\n"
    "                       tokenizer_image_token (BOS, chunks tokenized separately)\n"
    "  --hook H             silu_gate (default: SiLU(W_gate x)) or swiglu (input of down_proj)\n"
    "  --layers SPEC        layers to write, e.g. 0-3,7 (default: all)\n"
    "  --mode M             image preprocessing: pad (default, LLaVA-1.5) or crop (HF)\n"
    "  --precision P        fast (default: the fast kernels, normwise error <= 1e-2), exact\n"
    "                       (f32 from dequantised weights, <= 1e-4) or fastest (Q8_0/Q4_K:\n"
    "                       int8 activations, error up to ~2e-2; docs/engine.md)\n"
    "  --exact              the same as --precision exact\n"
    "  -t, --threads N      threads (default: all CPUs)\n"
    "  -o, --output DIR     output folder (created if missing)\n";

/* A sample's positions: ids (-1 = image) and modality labels (vlmn_modality). */
typedef struct seq {
    int32_t *ids;
    uint8_t *mod;
    int64_t n;
} seq;

/* "0-3,7" -> sel[n_layer]; returns the count, -1 on a bad spec. */
static int parse_layers(const char *spec, int n_layer, uint8_t *sel)
{
    memset(sel, 0, (size_t)n_layer);
    const char *p = spec;
    while (*p) {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b;
        if (end == p || errno || a < 0) return -1;
        p = end;
        if (*p == '-') {
            p++;
            b = strtol(p, &end, 10);
            if (end == p || errno || b < a) return -1;
            p = end;
        } else {
            b = a;
        }
        if (b >= n_layer) return -1;
        for (long l = a; l <= b; l++) sel[l] = 1;
        if (*p == ',') {
            p++;
            if (!*p) return -1;
        } else if (*p) {
            return -1;
        }
    }
    int n = 0;
    for (int l = 0; l < n_layer; l++) n += sel[l];
    return n;
}

/* Streams each captured layer into the .npy being written. */
typedef struct sink {
    FILE *f;
    int err;
} sink;

static void on_capture(void *user, int layer, const float *acts, int64_t T, int64_t FF)
{
    sink *s = user;
    (void)layer;
    if (!s->err && fwrite(acts, sizeof(float), (size_t)(T * FF), s->f) != (size_t)(T * FF)) s->err = errno ? errno : EIO;
}

static vlmn_status write_tokens_json(const char *path, const vlmn_tok *tok, const seq *s)
{
    static const char *const mods[] = {"image", "text", "prompt"};
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < s->n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddNumberToObject(o, "pos", (double)i);
        cJSON_AddNumberToObject(o, "id", s->ids[i]);
        const char *piece = "<image>";
        if (s->ids[i] >= 0) {
            size_t len;
            piece = vlmn_tok_piece(tok, s->ids[i], &len);
            if (!piece) piece = "";
        }
        cJSON_AddStringToObject(o, "piece", piece);
        cJSON_AddStringToObject(o, "modality", mods[s->mod[i]]);
    }
    char *txt = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    if (!txt) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    vlmn_status st = VLMN_OK;
    if (!f || fputs(txt, f) == EOF || fputc('\n', f) == EOF || fflush(f) || fsync(fileno(f)))
        st = vlmn_error(VLMN_E_IO, "%s: %s", tmp, strerror(errno));
    if (f && fclose(f) && !st) st = vlmn_error(VLMN_E_IO, "%s: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path)) st = vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
    if (st) unlink(tmp);
    free(txt);
    return st;
}

static int run(int argc, char **argv)
{
    const char *cmd = "probe";
    const char *clip = NULL, *image = NULL, *question = NULL, *answer = NULL, *raw = NULL, *hook_s = "silu_gate";
    const char *layers = NULL, *out = NULL, *v;
    cli_model_opts mo = cli_model_opts_init("llava-v1", false);
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_model_opt(cmd, argc, argv, &i, &mo)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        CLI_STR_OPT("clip", 0, clip)
        CLI_STR_OPT("image", 0, image)
        CLI_STR_OPT("question", 0, question)
        CLI_STR_OPT("answer", 0, answer)
        CLI_STR_OPT("prompt", 0, raw)
        CLI_STR_OPT("hook", 0, hook_s)
        CLI_STR_OPT("layers", 0, layers)
        CLI_STR_OPT("output", 'o', out)
        if (cli_flag(argv, i, "exact", 0)) {
            mo.prec = VLMN_PREC_EXACT;
            continue;
        }
        if (cli_unknown_option(&vlmn_cmd_probe, argv, i)) return 2;
        cli_errorf(cmd, 2, "unexpected argument '%s'", argv[i]);
        return cli_usage(&vlmn_cmd_probe);
    }
    const char *model = mo.model, *mmproj = mo.mmproj;
    if (clip && mmproj) return cli_errorf(cmd, 2, "--clip (a CLIP folder) excludes --mmproj");
    if (clip) mmproj = clip; /* the original LLaVA layout's CLIP folder goes where the mmproj goes */
    if (model && (!mmproj || clip) && vlmn_hf_is_folder(model)) mmproj = clip; /* the folder holds the tower */
    else if (!model || !mmproj || !image || !out) {
        cli_errorf(cmd, 2, "-m, --mmproj, --image and -o are required");
        return cli_usage(&vlmn_cmd_probe);
    }
    if (!image || !out) {
        cli_errorf(cmd, 2, "--image and -o are required");
        return cli_usage(&vlmn_cmd_probe);
    }
    if (raw && (question || answer)) return cli_errorf(cmd, 2, "--prompt excludes --question/--answer");
    if (!raw && !answer) return cli_errorf(cmd, 2, "give --answer (and --question) or --prompt");
    vlmn_img_mode mode;
    int bad = cli_model_opts_check(cmd, &mo, vlmn_prompt_templates(), &mode);
    if (bad) return bad;
    const char *tmpl = mo.tmpl;
    if (!raw && strcmp(tmpl, "plain") && !question) return cli_errorf(cmd, 2, "the %s template needs --question", tmpl);
    vlmn_hook hook;
    if (!strcmp(hook_s, "silu_gate"))
        hook = VLMN_HOOK_SILU_GATE;
    else if (!strcmp(hook_s, "swiglu"))
        hook = VLMN_HOOK_SWIGLU;
    else
        return cli_errorf(cmd, 2, "unknown hook '%s' (silu_gate, swiglu)", hook_s);

    int rc = 1;
    vlmn_status st;
    vlmn_llava *m = NULL;
    vlmn_image *img = NULL;
    float *pix = NULL;
    vlmn_vision_input vi = {0};
    uint8_t *sel = NULL;
    char *prompt = NULL;
    seq s = {0};
    sink sk = {0};
    char npy_path[4096], npy_tmp[4200], json_path[4096];

    vlmn_llava_params p = {.n_threads = (int)mo.threads, .precision = mo.prec};
    if ((st = vlmn_llava_load(model, mmproj, &p, &m))) goto fail;
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    const vlmn_tok *tok = vlmn_llava_tokenizer(m);
    /* the family's chat template; InternVL: dynamic tiling (up to 12 tiles + thumbnail) */
    if (!raw && (st = vlmn_llava_check_template(m, model, tmpl))) goto fail;
    if ((st = vlmn_img_load(image, &img)) || (st = vlmn_llava_image_input(m, img, mode, 0, &vi))) goto fail;
    pix = vi.pix;

    /* the prompt as LLaVA builds it (prompt.h: conv templates + tokenizer_image_token);
     * a raw prompt's text is all labelled `text` */
    size_t ans_lo = 0, ans_hi = 0;
    if (raw) {
        prompt = vlmn_strdup(raw);
        if (!prompt) {
            st = vlmn_error(VLMN_E_NOMEM, "out of memory");
            goto fail;
        }
        ans_hi = strlen(prompt);
    } else if ((st = vlmn_prompt_format(tmpl, question, answer, &prompt, &ans_lo, &ans_hi))) {
        goto fail;
    }
    /* one image per sample: exactly one <image> */
    const char *at = strstr(prompt, VLMN_PROMPT_IMAGE);
    if (!at) {
        st = vlmn_error(VLMN_E_ARG, "the prompt has no %s but an image is given", VLMN_PROMPT_IMAGE);
        goto fail;
    }
    if (strstr(at + strlen(VLMN_PROMPT_IMAGE), VLMN_PROMPT_IMAGE)) {
        st = vlmn_error(VLMN_E_ARG, "the prompt has more than one %s (one image per sample)", VLMN_PROMPT_IMAGE);
        goto fail;
    }
    if ((st = vlmn_prompt_tokenize(tok, prompt, strlen(prompt), ans_lo, ans_hi, vi.n_image_tokens, &s.ids,
                                   &s.mod, &s.n)))
        goto fail;

    sel = vlmn_calloc((size_t)in->n_layer, 1);
    if (!sel) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto fail;
    }
    int n_sel = in->n_layer;
    if (layers) {
        n_sel = parse_layers(layers, in->n_layer, sel);
        if (n_sel <= 0) {
            rc = cli_errorf(cmd, 2, "bad --layers '%s' (layers 0-%d, e.g. 0-3,7)", layers, in->n_layer - 1);
            goto out;
        }
    } else {
        memset(sel, 1, (size_t)in->n_layer);
    }

    if (mkdir(out, 0777) && errno != EEXIST) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", out, strerror(errno));
        goto fail;
    }
    snprintf(npy_path, sizeof npy_path, "%s/activations.npy", out);
    snprintf(npy_tmp, sizeof npy_tmp, "%s.tmp", npy_path);
    snprintf(json_path, sizeof json_path, "%s/tokens.json", out);
    int64_t shape[3] = {n_sel, s.n, in->n_ff};
    char hdr[256];
    size_t hl = vlmn_npy_header(hdr, sizeof hdr, VLMN_NPY_F32, 3, shape);
    sk.f = fopen(npy_tmp, "wb");
    if (!sk.f || !hl || fwrite(hdr, 1, hl, sk.f) != hl) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", npy_tmp, strerror(errno));
        goto fail;
    }
    vlmn_forward_opts o = {.capture = on_capture, .capture_user = &sk, .hook = hook, .capture_layers = sel,
                           .n_tiles = vi.n_tiles};
    if ((st = vlmn_llava_forward(m, s.ids, s.n, pix, &o))) goto fail;
    if (sk.err || fflush(sk.f) || fsync(fileno(sk.f))) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", npy_tmp, strerror(sk.err ? sk.err : errno));
        goto fail;
    }
    int cr = fclose(sk.f);
    sk.f = NULL;
    if (cr || rename(npy_tmp, npy_path)) {
        st = vlmn_error(VLMN_E_IO, "%s: %s", npy_path, strerror(errno));
        goto fail;
    }
    if ((st = write_tokens_json(json_path, tok, &s))) goto fail;
    rc = 0;
    goto out;
fail:
    rc = cli_fail(cmd, st);
    if (sk.f) unlink(npy_tmp);
out:
    if (sk.f) fclose(sk.f);
    vlmn_free(s.ids);
    vlmn_free(s.mod);
    vlmn_free(prompt);
    vlmn_free(sel);
    vlmn_free(pix);
    vlmn_img_free(img);
    vlmn_llava_free(m);
    return rc;
}

const struct vlmn_cmd vlmn_cmd_probe = {
    "probe", "run one LLaVA sample and write its FFN activations (.npy) and tokens (.json)", USAGE, run};
