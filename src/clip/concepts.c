/* Concept lists for `vlmn label`: one concept per line, '#' comments and blank lines
 * skipped; the default list is data/concepts.txt compiled in (docs/clip.md "Labels").
 * Flow: concepts file -> [this] -> label. */
#include "vlmn/clip.h"
#include "core/alloc.h"
#include "core/file.h"

#include <string.h>

void vlmn_concepts_free(vlmn_concepts *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) vlmn_free(c->items[i]);
    vlmn_free(c->items);
    memset(c, 0, sizeof *c);
}

static bool blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

vlmn_status vlmn_concepts_parse(const char *buf, size_t len, const char *name, vlmn_concepts *out)
{
    memset(out, 0, sizeof *out);
    int cap = 0, line = 0;
    vlmn_status st = VLMN_OK;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        line++;
        size_t a = i, b = e;
        i = e + 1;
        while (a < b && blank(buf[a])) a++;
        while (b > a && blank(buf[b - 1])) b--;
        if (a == b || buf[a] == '#') continue;
        for (size_t j = a; j < b; j++)
            if ((unsigned char)buf[j] < 0x20 || buf[j] == 0x7f) {
                st = vlmn_error(VLMN_E_FORMAT, "%s: line %d: a control character in the concept", name, line);
                goto fail;
            }
        if (b - a > VLMN_CONCEPT_MAX) {
            st = vlmn_error(VLMN_E_RANGE, "%s: line %d: a concept longer than %d bytes", name, line, VLMN_CONCEPT_MAX);
            goto fail;
        }
        for (int k = 0; k < out->n; k++)
            if (strlen(out->items[k]) == b - a && !memcmp(out->items[k], buf + a, b - a)) {
                st = vlmn_error(VLMN_E_FORMAT, "%s: line %d: concept \"%s\" listed twice", name, line, out->items[k]);
                goto fail;
            }
        if (out->n == VLMN_CONCEPTS_MAX) {
            st = vlmn_error(VLMN_E_RANGE, "%s: more than %d concepts", name, VLMN_CONCEPTS_MAX);
            goto fail;
        }
        if (out->n == cap) {
            int nc = cap ? cap * 2 : 64;
            char **ni = vlmn_realloc(out->items, (size_t)nc * sizeof *ni);
            if (!ni) goto nomem;
            out->items = ni;
            cap = nc;
        }
        char *s = vlmn_malloc(b - a + 1);
        if (!s) goto nomem;
        memcpy(s, buf + a, b - a);
        s[b - a] = 0;
        out->items[out->n++] = s;
    }
    if (out->n == 0) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: no concepts (one per line)", name);
        goto fail;
    }
    return VLMN_OK;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
fail:
    vlmn_concepts_free(out);
    return st;
}

vlmn_status vlmn_concepts_load(const char *path, vlmn_concepts *out)
{
    unsigned char *b = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    vlmn_status st = vlmn_file_read(path, 16u << 20, "concepts file", &b, &n);
    if (st) return st;
    st = vlmn_concepts_parse((const char *)b, n, path, out);
    vlmn_free(b);
    return st;
}

static const char DEFAULT_CONCEPTS[] =
#include "concepts.inc"
    ;

vlmn_status vlmn_concepts_default(vlmn_concepts *out)
{
    return vlmn_concepts_parse(DEFAULT_CONCEPTS, sizeof DEFAULT_CONCEPTS - 1, "default concepts", out);
}
