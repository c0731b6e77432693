/* The model options that `vlmn generate`, `probe` and `prune-eval` share (src/cli/model_opts.c):
 * -m/--model, --mmproj, --template, --mode, --precision, -t/--threads and, where the
 * command has it, --max-tiles; parsed in the command's argument loop, then checked. */
#ifndef VLMN_CLI_MODEL_OPTS_H
#define VLMN_CLI_MODEL_OPTS_H

#include "vlmn/image.h"
#include "vlmn/model.h"

#include <stdbool.h>

typedef struct cli_model_opts {
    const char *model, *mmproj;
    const char *tmpl;   /* --template (the caller sets the default) */
    const char *mode_s; /* --mode, "pad" when not given */
    long threads;       /* -t, 0 = all CPUs */
    long max_tiles;     /* --max-tiles, 0 = not given */
    bool has_max_tiles; /* whether --max-tiles is one of the command's options */
    vlmn_precision prec; /* --precision, VLMN_PREC_FAST when not given */
} cli_model_opts;

/* Defaults: the template tmpl, pad, all CPUs, fast. */
cli_model_opts cli_model_opts_init(const char *tmpl, bool has_max_tiles);

/* In the argument loop: 1 when argv[*i] was one of the options (*i advanced past its
 * value), 0 when not, -1 after printing "vlmn CMD: ..." for a bad value (exit with 2). */
int cli_model_opt(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o);

/* After the loop: --template must be "auto" or one of `templates` (NULL-terminated;
 * the message lists them), then "auto" is resolved for the model (vlmn_cli_template);
 * --mode is parsed into *mode. 0, or the exit code after printing the error. */
int cli_model_opts_check(const char *cmd, cli_model_opts *o, const char *const *templates, vlmn_img_mode *mode);

#endif
