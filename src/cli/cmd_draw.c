/* `vlmn draw`: the activation-modulated image (or raw / JET) and the token heat map of
 * one traced (neuron, sample) pair of a run (src/draw, docs/trace.md). */
#include "cli.h"

#include "vlmn/draw.h"
#include "vlmn/run.h"
#include "vlmn/trace.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern const struct vlmn_cmd vlmn_cmd_draw;

static const char USAGE[] =
    "vlmn draw RUN --neuron L:N --sample S -o DIR [--mode modulated|raw|jet]\n"
    "                [--upsample nearest|bilinear] [--background R,G,B] [--heat html,svg|none]\n"
    "                [--all-tokens]\n"
    "\n"
    "Draws one traced pair (vlmn trace first) into DIR:\n"
    "  L<l>_N<n>_S<s>_<mode>.png   on the original image's geometry (pad/crop undone):\n"
    "        modulated: a = clamp(act / neuron_max, 0, 1) per image patch, upsampled to the\n"
    "        pixels, pixel = a * image + (1 - a) * background; neuron_max = the neuron's\n"
    "        maximum over the run (stats.bin). raw: the image. jet: a JET overlay (alpha 0.5).\n"
    "  L<l>_N<n>_S<s>_heat.html / .svg   the tokens on green of opacity a\n"
    "\n"
    "  --neuron L:N         layer and neuron\n"
    "  --sample S           dataset sample index\n"
    "  -o, --output DIR     output folder (created if missing)\n"
    "  --mode M             modulated (default), raw or jet\n"
    "  --upsample U         nearest (default) or bilinear\n"
    "  --background R,G,B   modulated: colour where a = 0 (default 0,0,0)\n"
    "  --heat LIST          html, svg, html,svg (default) or none\n"
    "  --all-tokens         heat on prompt positions too (default: greyed)\n"
    "\n"
    "Prints the paths written, one a line.\n";

static int parse_pair(const char *s, long *a, long *b)
{
    char *e;
    errno = 0;
    *a = strtol(s, &e, 10);
    if (e == s || *e != ':' || errno || *a < 0) return -1;
    const char *t = e + 1;
    *b = strtol(t, &e, 10);
    if (e == t || *e || errno || *b < 0) return -1;
    return 0;
}

static int write_out(const char *cmd, const char *path, const void *data, size_t len)
{
    vlmn_status st = vlmn_draw_save(path, data, len);
    if (st) return cli_fail(cmd, st);
    printf("%s\n", path);
    return 0;
}

static int run(int argc, char **argv)
{
    const char *cmd = "draw", *v, *dir = NULL, *out = NULL, *neuron_s = NULL, *sample_s = NULL;
    const char *mode_s = "modulated", *up_s = "nearest", *bg_s = NULL, *heat_s = "html,svg";
    bool all = false;
    for (int i = 1; i < argc; i++) {
        int r;
        CLI_STR_OPT("neuron", 0, neuron_s)
        CLI_STR_OPT("sample", 0, sample_s)
        CLI_STR_OPT("output", 'o', out)
        CLI_STR_OPT("mode", 0, mode_s)
        CLI_STR_OPT("upsample", 0, up_s)
        CLI_STR_OPT("background", 0, bg_s)
        CLI_STR_OPT("heat", 0, heat_s)
        if (cli_flag(argv, i, "all-tokens", 0)) {
            all = true;
            continue;
        }
        if (cli_unknown_option(&vlmn_cmd_draw, argv, i)) return 2;
        if (dir) {
            cli_errorf(cmd, 2, "unexpected argument '%s'", argv[i]);
            return cli_usage(&vlmn_cmd_draw);
        }
        dir = argv[i];
    }
    if (!dir || !neuron_s || !sample_s || !out) {
        cli_errorf(cmd, 2, "RUN, --neuron, --sample and -o are required");
        return cli_usage(&vlmn_cmd_draw);
    }
    long L, N, S;
    if (parse_pair(neuron_s, &L, &N)) return cli_errorf(cmd, 2, "--neuron '%s': expected LAYER:NEURON", neuron_s);
    if (cli_parse_long(sample_s, 0, UINT32_MAX - 1, &S)) return cli_errorf(cmd, 2, "--sample '%s': expected an index", sample_s);
    vlmn_draw_opts o = {0};
    if (vlmn_draw_parse_mode(mode_s, &o.mode)) return cli_errorf(cmd, 2, "--mode: %s", vlmn_errmsg());
    if (vlmn_draw_parse_upsample(up_s, &o.upsample)) return cli_errorf(cmd, 2, "--upsample: %s", vlmn_errmsg());
    if (bg_s) {
        int r, g, b, n = 0;
        if (sscanf(bg_s, "%d,%d,%d%n", &r, &g, &b, &n) != 3 || bg_s[n] || r < 0 || r > 255 || g < 0 || g > 255 ||
            b < 0 || b > 255)
            return cli_errorf(cmd, 2, "--background '%s': expected R,G,B in 0..255", bg_s);
        o.background[0] = (uint8_t)r;
        o.background[1] = (uint8_t)g;
        o.background[2] = (uint8_t)b;
    }
    bool want_html = false, want_svg = false;
    if (strcmp(heat_s, "none")) {
        for (const char *p = heat_s; *p;) {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n == 4 && !strncmp(p, "html", 4)) want_html = true;
            else if (n == 3 && !strncmp(p, "svg", 3)) want_svg = true;
            else return cli_errorf(cmd, 2, "--heat '%s': expected html, svg, html,svg or none", heat_s);
            p += n + (e != NULL);
        }
    }

    int rc = 1;
    vlmn_status st;
    vlmn_run *run = NULL;
    vlmn_traces *tr = NULL;
    vlmn_trace_sample *ts = NULL;
    float *acts = NULL;
    vlmn_image *img = NULL, *pic = NULL;
    uint8_t *png = NULL;
    char *txt = NULL;
    size_t len;
    int64_t n;
    char path[4200];
    if ((st = vlmn_run_open(dir, &run)) || (st = vlmn_traces_open(dir, &tr))) goto fail;
    const vlmn_neuron_stats *ns = vlmn_run_stats(run, (int)L, (int)N);
    if (!ns) {
        rc = cli_errorf(cmd, 1, "%s: neuron %ld:%ld out of range (%d layers x %d neurons)", dir, L, N,
                        vlmn_run_n_layers(run), vlmn_run_n_ff(run));
        goto out;
    }
    float neuron_max = ns->max_act;
    if ((st = vlmn_traces_get(tr, (int)L, (int)N, (uint32_t)S, &acts, &n)) ||
        (st = vlmn_traces_sample(tr, (uint32_t)S, &ts)))
        goto fail;
    if (n != ts->n_tokens) {
        rc = cli_errorf(cmd, 1, "%s: trace has %lld positions, the sample %lld", dir, (long long)n, (long long)ts->n_tokens);
        goto out;
    }
    if (mkdir(out, 0777) && errno != EEXIST) {
        rc = cli_errorf(cmd, 1, "%s: %s", out, strerror(errno));
        goto out;
    }
    if (ts->n_grids > 0) {
        if (!ts->image_path) {
            rc = cli_errorf(cmd, 1, "%s: sample %ld has no image path", dir, S);
            goto out;
        }
        if ((st = vlmn_img_load(ts->image_path, &img))) goto fail;
        if (img->w != ts->orig_w || img->h != ts->orig_h) {
            rc = cli_errorf(cmd, 1, "%s: %d x %d, but it was %d x %d when traced", ts->image_path, img->w, img->h,
                            ts->orig_w, ts->orig_h);
            goto out;
        }
        if ((st = vlmn_draw_image(img, ts->grids, ts->n_grids, acts, n, neuron_max, &o, &pic)) ||
            (st = vlmn_draw_png(pic, &png, &len)))
            goto fail;
        snprintf(path, sizeof path, "%s/L%ld_N%ld_S%ld_%s.png", out, L, N, S, mode_s);
        if (write_out(cmd, path, png, len)) goto out;
    }
    vlmn_heat_opts ho = {.all_tokens = all};
    if (want_html) {
        if ((st = vlmn_draw_heat_html(ts, acts, neuron_max, &ho, &txt, &len))) goto fail;
        snprintf(path, sizeof path, "%s/L%ld_N%ld_S%ld_heat.html", out, L, N, S);
        if (write_out(cmd, path, txt, len)) goto out;
        vlmn_free(txt);
        txt = NULL;
    }
    if (want_svg) {
        if ((st = vlmn_draw_heat_svg(ts, acts, neuron_max, &ho, &txt, &len))) goto fail;
        snprintf(path, sizeof path, "%s/L%ld_N%ld_S%ld_heat.svg", out, L, N, S);
        if (write_out(cmd, path, txt, len)) goto out;
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(cmd, st);
out:
    vlmn_free(txt);
    vlmn_free(png);
    vlmn_img_free(pic);
    vlmn_img_free(img);
    vlmn_free(acts);
    vlmn_trace_sample_free(ts);
    vlmn_traces_close(tr);
    vlmn_run_close(run);
    return rc;
}

const struct vlmn_cmd vlmn_cmd_draw = {
    "draw", "activation-modulated image (PNG) and token heat (HTML/SVG) of a traced neuron on a sample", USAGE, run};
