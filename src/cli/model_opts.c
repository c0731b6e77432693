/* The model options of `vlmn generate`, `probe` and `prune-eval`, parsed and checked
 * in one place (see model_opts.h): argv -> cli_model_opts -> the command's load call. */
#include "model_opts.h"

#include "cli.h"
#include "info_hf.h"

#include <string.h>

cli_model_opts cli_model_opts_init(const char *tmpl, bool has_max_tiles)
{
    return (cli_model_opts){.tmpl = tmpl, .mode_s = "pad", .has_max_tiles = has_max_tiles, .prec = VLMN_PREC_FAST};
}

int cli_model_opt(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o)
{
    static const struct {
        const char *name;
        char short_;
    } str_opts[] = {{"model", 'm'}, {"mmproj", 0}, {"template", 0}, {"mode", 0}};
    const char **str_vals[] = {&o->model, &o->mmproj, &o->tmpl, &o->mode_s};
    const char *v;
    int r;
    for (size_t k = 0; k < sizeof str_opts / sizeof *str_opts; k++)
        if ((r = cli_opt(argc, argv, i, str_opts[k].name, str_opts[k].short_, &v)) != 0) {
            if (r < 0) return -1;
            *str_vals[k] = v;
            return 1;
        }
    if ((r = cli_opt(argc, argv, i, "threads", 't', &v)) != 0) {
        if (r < 0 || cli_parse_long(v, 1, 1024, &o->threads)) {
            cli_errorf(cmd, 2, "bad thread count '%s'", v ? v : "");
            return -1;
        }
        return 1;
    }
    if (o->has_max_tiles && (r = cli_opt(argc, argv, i, "max-tiles", 0, &v)) != 0) {
        if (r < 0 || cli_parse_long(v, 1, VLMN_IMG_MAX_TILES, &o->max_tiles)) {
            cli_errorf(cmd, 2, "bad --max-tiles (1..64) '%s'", v ? v : "");
            return -1;
        }
        return 1;
    }
    if ((r = cli_opt(argc, argv, i, "precision", 0, &v)) != 0) {
        if (r < 0 || vlmn_precision_parse(v, &o->prec)) {
            cli_errorf(cmd, 2, "--precision: expected fast, exact or fastest");
            return -1;
        }
        return 1;
    }
    return 0;
}

int cli_model_opts_check(const char *cmd, cli_model_opts *o, const char *const *templates, vlmn_img_mode *mode)
{
    bool known = !strcmp(o->tmpl, "auto");
    char list[256] = "auto";
    for (const char *const *t = templates; *t; t++) {
        known |= !strcmp(*t, o->tmpl);
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, ", %s", *t);
    }
    if (!known) return cli_errorf(cmd, 2, "unknown template '%s' (%s)", o->tmpl, list);
    if (vlmn_cli_template(cmd, o->model, &o->tmpl)) return 1;
    if (vlmn_img_parse_mode(o->mode_s, mode)) return cli_errorf(cmd, 2, "unknown mode '%s' (pad, crop)", o->mode_s);
    return 0;
}
