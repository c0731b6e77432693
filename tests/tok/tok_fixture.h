/* Shared by the tokenizer tests and the tokenizer fuzz target: reads the fixtures that
 * tests/reference/tok_ref.py writes (TSV vocabularies, escaped text fields). */
#ifndef VLMN_TESTS_TOK_FIXTURE_H
#define VLMN_TESTS_TOK_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vlmn/tokenizer.h"

/* Undo tok_ref.py's esc(): \\ \t \n \r \xNN. In place; returns the byte length. */
static inline size_t tokfx_unescape(char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i];) {
        if (s[i] == '\\' && s[i + 1]) {
            char c = s[i + 1];
            if (c == 'x' && s[i + 2] && s[i + 3]) {
                char hex[3] = {s[i + 2], s[i + 3], 0};
                s[o++] = (char)strtol(hex, NULL, 16);
                i += 4;
                continue;
            }
            s[o++] = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
            i += 2;
            continue;
        }
        s[o++] = s[i++];
    }
    s[o] = '\0';
    return o;
}

/* Split a line (trailing newline removed) at TABs into at most max fields. */
static inline int tokfx_split(char *line, char **f, int max)
{
    size_t L = strlen(line);
    if (L && line[L - 1] == '\n') line[--L] = '\0';
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') {
            *p = '\0';
            f[n++] = p + 1;
        }
    return n;
}

/* Load "<id> TAB <type> TAB <score> TAB <escaped piece>" lines (header "# ... bos=B eos=E
 * unk=U") into a tokenizer. NULL on any problem (message on stderr). */
static inline vlmn_tok *tokfx_load_tsv(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    int n = 0, cap_t = 0, bos = -1, eos = -1, unk = -1;
    char **toks = NULL;
    uint64_t *lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    vlmn_tok *t = NULL;
    while (getline(&line, &cap, fp) > 0) {
        if (line[0] == '#') {
            const char *p = strstr(line, "bos=");
            if (p) sscanf(p, "bos=%d eos=%d unk=%d", &bos, &eos, &unk);
            continue;
        }
        char *f[4];
        if (tokfx_split(line, f, 4) != 4) goto done;
        if (n == cap_t) {
            cap_t = cap_t ? cap_t * 2 : 1024;
            toks = realloc(toks, cap_t * sizeof *toks);
            lens = realloc(lens, cap_t * sizeof *lens);
            scores = realloc(scores, cap_t * sizeof *scores);
            types = realloc(types, cap_t * sizeof *types);
        }
        if (atoi(f[0]) != n) goto done;
        types[n] = atoi(f[1]);
        scores[n] = strtof(f[2], NULL);
        lens[n] = tokfx_unescape(f[3]);
        toks[n] = malloc(lens[n] + 1);
        memcpy(toks[n], f[3], lens[n] + 1);
        n++;
    }
    {
        vlmn_tok_vocab v = {.n_vocab = n, .tokens = (const char *const *)toks,
                            .token_lens = lens, .scores = scores, .types = types,
                            .bos_id = bos, .eos_id = eos, .unk_id = unk,
                            .add_bos = true, .add_eos = false, .add_space_prefix = true};
        if (vlmn_tok_create(&v, &t)) fprintf(stderr, "%s: %s\n", path, vlmn_errmsg());
    }
done:
    if (!t) fprintf(stderr, "cannot load vocabulary %s\n", path);
    for (int i = 0; i < n; i++) free(toks[i]);
    free(toks);
    free(lens);
    free(scores);
    free(types);
    free(line);
    fclose(fp);
    return t;
}

#endif
