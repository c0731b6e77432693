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

/* First argument after the `--` that main() removed (NULL: there was none). Pointer
 * compare, so commands that hand argv + k to a subcommand still get it right. */
static char **positional_from;

int cli_after_dashdash(char **argv, int i)
{
    return positional_from && argv + i >= positional_from;
}

/* Levenshtein distance of two short strings (option names; longer ones are cut). */
static int edit_distance(const char *a, const char *b)
{
    enum { MAX = 64 };
    int la = (int)strnlen(a, MAX), lb = (int)strnlen(b, MAX), d[MAX + 1], prev;
    for (int j = 0; j <= lb; j++) d[j] = j;
    for (int i = 1; i <= la; i++) {
        prev = d[0];
        d[0] = i;
        for (int j = 1; j <= lb; j++) {
            int cur = d[j], sub = prev + (a[i - 1] != b[j - 1]);
            int best = d[j] + 1 < d[j - 1] + 1 ? d[j] + 1 : d[j - 1] + 1;
            d[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    return d[lb];
}

/* The option names the usage text mentions: "--word" and "-x" tokens. */
static void nearest_option(const char *usage, const char *opt, char *best, size_t n)
{
    int best_d = 1 << 30;
    best[0] = 0;
    for (const char *p = usage; (p = strchr(p, '-')) != NULL;) {
        int lead = p == usage || p[-1] == ' ' || p[-1] == '[' || p[-1] == '(' || p[-1] == '|' || p[-1] == ',' ||
                   p[-1] == '\n' || p[-1] == '"';
        const char *q = p + 1;
        if (*q == '-') q++;
        const char *e = q;
        while ((*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z') || (*e >= '0' && *e <= '9') || (*e == '-' && e > q))
            e++;
        size_t len = (size_t)(e - p);
        int is_long = p[1] == '-';
        /* A long option is only matched with long ones ("--x" is no typo of "-o"). */
        int given_long = opt[1] == '-';
        if (lead && e > q && (is_long || (e - q == 1 && !given_long)) && len < n) {
            char name[64];
            if (len < sizeof name) {
                memcpy(name, p, len);
                name[len] = 0;
                int d = edit_distance(opt, name);
                if (d < best_d) {
                    best_d = d;
                    memcpy(best, name, len + 1);
                }
            }
        }
        p = e > p + 1 ? e : p + 1;
    }
    /* Only a suggestion that is close: at most a third of the longer name changed. */
    size_t lo = strlen(opt), lb = strlen(best);
    if (best_d > (int)((lo > lb ? lo : lb) / 3 + 1)) best[0] = 0;
}

int cli_unknown_option(const struct vlmn_cmd *cmd, char **argv, int i)
{
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == 0 || cli_after_dashdash(argv, i)) return 0;
    char opt[64], best[64];
    size_t k = strcspn(a, "=");
    snprintf(opt, sizeof opt, "%.*s", (int)(k < sizeof opt ? k : sizeof opt - 1), a);
    nearest_option(cmd->usage, opt, best, sizeof best);
    if (best[0])
        fprintf(stderr, "vlmn %s: unknown option %s (did you mean %s?)\n", cmd->name, opt, best);
    else
        fprintf(stderr, "vlmn %s: unknown option %s (see vlmn help %s)\n", cmd->name, opt, cmd->name);
    return 2;
}

int cli_flag(char **argv, int i, const char *long_, char short_)
{
    const char *a = argv[i];
    if (cli_after_dashdash(argv, i)) return 0;
    if (short_ && a[0] == '-' && a[1] == short_ && a[2] == 0) return 1;
    return a[0] == '-' && a[1] == '-' && strcmp(a + 2, long_) == 0;
}

int cli_opt(int argc, char **argv, int *i, const char *long_, char short_, const char **val)
{
    const char *a = argv[*i];
    size_t ln = strlen(long_);
    if (cli_after_dashdash(argv, *i)) return 0;
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
        if (argc > 2 && strcmp(argv[2], "--help") && strcmp(argv[2], "-h")) {
            fprintf(stderr, "vlmn version: takes no arguments\n");
            return 2;
        }
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
    if (!cmd && c[0] == '-') {
        fprintf(stderr, "vlmn: unknown option %s (see 'vlmn help')\n", c);
        return 2;
    }
    if (!cmd) {
        fprintf(stderr, "vlmn: no command '%s' (see 'vlmn help')\n", c);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            /* End of options: drop it; what follows is positional (cli_after_dashdash). */
            memmove(argv + i, argv + i + 1, (size_t)(argc - i) * sizeof *argv); /* argv[argc] == NULL too */
            argc--;
            positional_from = argv + i;
            break;
        }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("vlmn %s: %s\n\nusage: %s", cmd->name, cmd->summary, cmd->usage);
            return 0;
        }
    }
    return cmd->run(argc - 1, argv + 1);
}
