/* vlmn CLI entry: dispatch to the commands collected from src/cli/cmd_*.c. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define VLMN_CMD(n) extern const struct vlmn_cmd vlmn_cmd_##n;
#include "vlmn_cmds.inc"
#undef VLMN_CMD

static const struct vlmn_cmd *const commands[] = {
#define VLMN_CMD(n) &vlmn_cmd_##n,
#include "vlmn_cmds.inc"
#undef VLMN_CMD
    NULL,
};

int cli_fail(const char *cmd, vlmn_status st)
{
    const char *m = vlmn_errmsg();
    fprintf(stderr, "vlmn %s: %s\n", cmd, m && *m ? m : vlmn_strerror(st));
    return 1;
}

int cli_errorf(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vlmn %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_usage(const struct vlmn_cmd *cmd)
{
    fprintf(stderr, "usage: %s", cmd->usage);
    return 2;
}

int cli_flag(char **argv, int i, const char *long_, char short_)
{
    const char *a = argv[i];
    if (short_ && a[0] == '-' && a[1] == short_ && a[2] == 0) return 1;
    return a[0] == '-' && a[1] == '-' && strcmp(a + 2, long_) == 0;
}

int cli_opt(int argc, char **argv, int *i, const char *long_, char short_, const char **val)
{
    const char *a = argv[*i];
    size_t ln = strlen(long_);
    if (a[0] == '-' && a[1] == '-' && strncmp(a + 2, long_, ln) == 0 && a[2 + ln] == '=') {
        *val = a + 3 + ln;
        return 1;
    }
    if (!cli_flag(argv, *i, long_, short_)) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "vlmn: option %s needs a value\n", a);
        *val = NULL;
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

const char *cli_optval(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

int cli_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static const struct vlmn_cmd *find(const char *name)
{
    for (size_t i = 0; commands[i]; i++)
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    return NULL;
}

static void print_help(FILE *f)
{
    fprintf(f, "vlmn %s: record and explain the neurons of vision-language models\n\n"
               "usage: vlmn <command> [options]\n       vlmn help <command>\n       vlmn --version\n\n"
               "commands:\n", vlmn_version());
    for (size_t i = 0; commands[i]; i++)
        fprintf(f, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--version") || !strcmp(c, "-V") || !strcmp(c, "version")) {
        printf("vlmn %s\n", vlmn_version());
        return 0;
    }
    if (!strcmp(c, "help") || !strcmp(c, "--help") || !strcmp(c, "-h")) {
        if (argc > 2) {
            const struct vlmn_cmd *cmd = find(argv[2]);
            if (!cmd) {
                fprintf(stderr, "vlmn help: no command '%s' (see 'vlmn help')\n", argv[2]);
                return 2;
            }
            printf("vlmn %s: %s\n\nusage: %s", cmd->name, cmd->summary, cmd->usage);
            return 0;
        }
        print_help(stdout);
        return 0;
    }
    const struct vlmn_cmd *cmd = find(c);
    if (!cmd) {
        fprintf(stderr, "vlmn: no command '%s' (see 'vlmn help')\n", c);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("vlmn %s: %s\n\nusage: %s", cmd->name, cmd->summary, cmd->usage);
            return 0;
        }
    return cmd->run(argc - 1, argv + 1);
}
