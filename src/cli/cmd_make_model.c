/* `vlmn make-model`: write a seeded random LLaVA-1.5 GGUF pair (presets tiny, llava-7b,
 * or any sizes) or the constructed planted model. */
#include "cli.h"
#include "vlmn/makemodel.h"
#include "vlmn/types.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_make_model = {
    "make-model", "write a random (or planted) LLaVA-1.5 GGUF model pair",
    "vlmn make-model [--preset tiny|llava-7b|planted|internvl-tiny|internvl-8b] [--type f32|f16|bf16|q8_0]\n"
    "                [--seed S]\n"
    "                [--n-embd N --n-ff N --n-layer N --n-head N --n-head-kv N --n-vocab N --n-ctx N]\n"
    "                [--v-size N --v-patch N --v-embd N --v-ff N --v-layer N --v-head N --v-proj-dim N]\n"
    "                [--format gguf|hf] [-q] -o PREFIX\n"
    "  Writes PREFIX-text.gguf (llama) and PREFIX-mmproj.gguf (legacy llava clip) in\n"
    "  llama.cpp's LLaVA-1.5 layout, with a SentencePiece BPE vocabulary. Presets:\n"
    "    tiny      odd sizes for tests (default; q8_0 uses multiples of 32), f32 by default\n"
    "    llava-7b  the real LLaVA-1.5-7B shapes (about 14 GB), bf16 by default, streamed\n"
    "    planted   a tiny model whose chosen FFN neurons are visual/text/multimodal/unknown\n"
    "              by construction; also writes PREFIX-planted.json (f32 by default)\n"
    "    internvl-tiny  InternVL 2.5 layout (internlm2 text + internvl mmproj), odd sizes\n"
    "    internvl-8b    the InternVL2.5-8B shapes (about 16 GB), bf16 by default\n"
    "  --format hf writes the same weights as a Hugging Face folder PREFIX/ (llava-hf\n"
    "  layout: config.json, safetensors shards + index, tokenizer.model; f32/f16/bf16).\n"
    "  Size options override the preset. The same seed gives identical files.\n"
    "  Progress goes to stderr when it is a terminal (-q: never).\n",
    run,
};

static void progress(void *user, const char *line)
{
    const time_t *t0 = user;
    fprintf(stderr, "[%4lds] %s\n", (long)(time(NULL) - *t0), line);
}

static int parse_type(const char *s, uint32_t *out)
{
    if (!strcmp(s, "f32")) *out = VLMN_TYPE_F32;
    else if (!strcmp(s, "f16")) *out = VLMN_TYPE_F16;
    else if (!strcmp(s, "bf16")) *out = VLMN_TYPE_BF16;
    else if (!strcmp(s, "q8_0")) *out = VLMN_TYPE_Q8_0;
    else return -1;
    return 0;
}

static int run(int argc, char **argv)
{
    const char *preset = "tiny", *out = NULL, *type_s = NULL, *format = "gguf", *v;
    long seed = 1;
    bool quiet = false;
    /* Size overrides, applied after the preset. */
    struct { const char *opt; long val; bool set; } dims[] = {
        {"n-embd", 0, 0}, {"n-ff", 0, 0}, {"n-layer", 0, 0}, {"n-head", 0, 0}, {"n-head-kv", 0, 0}, {"n-vocab", 0, 0}, {"n-ctx", 0, 0},
        {"v-size", 0, 0}, {"v-patch", 0, 0}, {"v-embd", 0, 0}, {"v-ff", 0, 0}, {"v-layer", 0, 0}, {"v-head", 0, 0}, {"v-proj-dim", 0, 0},
    };
    const int n_dims = (int)(sizeof dims / sizeof dims[0]);
    for (int i = 1; i < argc; i++) {
        int r = 0;
        if ((r = cli_opt(argc, argv, &i, "preset", 0, &v))) {
            if (r < 0) return 2;
            preset = v;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "output", 'o', &v))) {
            if (r < 0) return 2;
            out = v;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "format", 0, &v))) {
            if (r < 0) return 2;
            format = v;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "type", 0, &v))) {
            if (r < 0) return 2;
            type_s = v;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "seed", 0, &v))) {
            if (r < 0 || cli_parse_long(v, 0, 0x7fffffffffffffffL, &seed)) return cli_errorf("make-model", 2, "bad --seed value");
            continue;
        }
        if (cli_flag(argv, i, "quiet", 'q')) {
            quiet = true;
            continue;
        }
        int k;
        for (k = 0; k < n_dims; k++) {
            if ((r = cli_opt(argc, argv, &i, dims[k].opt, 0, &v))) {
                if (r < 0) return 2;
                if (cli_parse_long(v, 1, 1L << 30, &dims[k].val))
                    return cli_errorf("make-model", 2, "bad --%s value '%s'", dims[k].opt, v);
                dims[k].set = true;
                break;
            }
        }
        if (k < n_dims) continue;
        if (cli_unknown_option(&vlmn_cmd_make_model, argv, i)) return 2;
        fprintf(stderr, "vlmn make-model: unexpected argument '%s'\n", argv[i]);
        return cli_usage(&vlmn_cmd_make_model);
    }
    if (!out) return cli_usage(&vlmn_cmd_make_model);
    bool planted = !strcmp(preset, "planted"), hf = !strcmp(format, "hf");
    if (!hf && strcmp(format, "gguf")) return cli_errorf("make-model", 2, "unknown --format '%s' (gguf, hf)", format);
    if (hf && planted) return cli_errorf("make-model", 2, "--format hf is for the random presets, not planted");
    uint32_t type = !strcmp(preset, "llava-7b") || !strcmp(preset, "internvl-8b") ? VLMN_TYPE_BF16 : VLMN_TYPE_F32;
    if (type_s && parse_type(type_s, &type))
        return cli_errorf("make-model", 2, "unknown --type '%s' (f32, f16, bf16, q8_0)", type_s);
    vlmn_mm_config c;
    vlmn_status st = vlmn_mm_preset(preset, type, &c);
    if (st) return cli_errorf("make-model", 2, "%s", vlmn_errmsg());
    c.seed = (uint64_t)seed;
    int *fields[] = {&c.n_embd, &c.n_ff, &c.n_layer, &c.n_head, &c.n_head_kv, &c.n_vocab, &c.n_ctx,
                     &c.v_size, &c.v_patch, &c.v_embd, &c.v_ff, &c.v_layer, &c.v_head, &c.v_proj_dim};
    for (int k = 0; k < n_dims; k++)
        if (dims[k].set) *fields[k] = (int)dims[k].val;
    if ((st = vlmn_mm_validate(&c))) return cli_errorf("make-model", 2, "%s", vlmn_errmsg());
    if (hf && c.arch != VLMN_MM_LLAVA) return cli_errorf("make-model", 2, "--format hf is for the LLaVA presets");
    time_t t0 = time(NULL);
    bool show = !quiet && isatty(2);
    if (hf) {
        if ((st = vlmn_mm_write_random_hf(&c, out, show ? progress : NULL, &t0))) return cli_fail("make-model", st);
        printf("%s\n", out);
        return 0;
    }
    st = planted ? vlmn_mm_write_planted(&c, out) : vlmn_mm_write_random(&c, out, show ? progress : NULL, &t0);
    if (st) return cli_fail("make-model", st);
    printf("%s-text.gguf\n%s-mmproj.gguf\n", out, out);
    if (planted) printf("%s-planted.json\n", out);
    return 0;
}
