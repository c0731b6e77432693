/* The vlmn command line: one file per command (src/cli/cmd_<name>.c) that defines
 *   const struct vlmn_cmd vlmn_cmd_<name> = { "name", "one-line summary", usage, run };
 * The build collects them; main.c dispatches. Commands print results on stdout only,
 * progress and errors on stderr, and return an exit code (0 ok, 1 failure, 2 usage). */
#ifndef VLMN_CLI_H
#define VLMN_CLI_H

#include "vlmn/vlmn.h"
#include <stdio.h>

struct vlmn_cmd {
    const char *name;
    const char *summary; /* one line, for `vlmn help` */
    const char *usage;   /* full text for `vlmn help NAME` and usage errors */
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

/* Print "vlmn CMD: MESSAGE" for a failed status (uses vlmn_errmsg()) and return 1. */
int cli_fail(const char *cmd, vlmn_status st);
/* Print "vlmn CMD: <formatted>" on stderr and return `code`. */
int cli_errorf(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Print the usage of `cmd` on stderr and return 2. */
int cli_usage(const struct vlmn_cmd *cmd);

/* Conventions every command gets from main.c and these helpers (docs/cli.md):
 *  - `vlmn CMD --help` / `-h` (anywhere before `--`) prints the usage on stdout, exit 0;
 *  - `--` ends the options: main.c removes it, and cli_opt/cli_flag never match an
 *    argument that came after it, cli_unknown_option treats it as positional;
 *  - a lone `-` is positional (stdin/stdout where the command says so);
 *  - unknown options: in the argument loop, after every option test and before taking
 *    argv[i] as positional, call
 *        } else if (cli_unknown_option(&vlmn_cmd_NAME, argv, i)) { return 2; }
 *    It prints "vlmn NAME: unknown option --foo (did you mean --bar?)", the nearest
 *    option named in the command's usage text, and returns 2; 0 for a positional.
 * Exit codes: 0 ok, 1 error, 2 usage. */
int cli_unknown_option(const struct vlmn_cmd *cmd, char **argv, int i);
/* True when argv[i] came after `--` (a positional argument whatever it looks like). */
int cli_after_dashdash(char **argv, int i);

/* Minimal option parsing shared by commands: long options "--name value" or
 * "--name=value", short "-x value". Returns the value or NULL; `*i` is advanced. */
const char *cli_optval(int argc, char **argv, int *i);
/* True if argv[*i] is the option --long (or -s when short_ != 0); sets *val when it
 * takes a value (returns false and prints an error if the value is missing). */
int cli_opt(int argc, char **argv, int *i, const char *long_, char short_, const char **val);
int cli_flag(char **argv, int i, const char *long_, char short_);
/* Parse integers/floats strictly; return 0 on success. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *s, double *out);

/* Argument-loop shorthands, for a loop `for (int i = 1; i < argc; i++) { int r; ... }`
 * with `const char *v` (and, for CLI_LONG_OPT, the command name `cmd`) in scope: when
 * argv[i] is --l (or -s), store its value in var and go to the next argument; a missing
 * value returns 2 from the command, as does a value of CLI_LONG_OPT outside [lo, hi]
 * ("vlmn CMD: bad WHAT 'VALUE'"). */
#define CLI_STR_OPT(l, s, var)                                                      \
    if ((r = cli_opt(argc, argv, &i, l, s, &v)) != 0) {                             \
        if (r < 0) return 2;                                                        \
        var = v;                                                                    \
        continue;                                                                   \
    }
#define CLI_LONG_OPT(l, s, var, lo, hi, what)                                       \
    if ((r = cli_opt(argc, argv, &i, l, s, &v)) != 0) {                             \
        if (r < 0 || cli_parse_long(v, lo, hi, &var)) return cli_errorf(cmd, 2, "bad %s '%s'", what, v ? v : ""); \
        continue;                                                                   \
    }

#endif
