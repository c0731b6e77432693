/* Neuron queries on a classification ("p_u>=0.8&p_v<0.1", "label=unknown"): a small
 * parser of ANDed conditions, evaluated per neuron. See include/vlmn/mask.h. */
#include "vlmn/mask.h"
#include "vlmn/analysis.h"

#include "core/alloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_MAX_TERMS 16

enum { OP_GE, OP_GT, OP_LE, OP_LT, OP_EQ, OP_LABEL };

typedef struct term {
    int field; /* vlmn_ntype */
    int op;
    double value;
} term;

struct vlmn_query {
    int n;
    term t[QUERY_MAX_TERMS];
};

static int field_parse(const char *s, size_t n)
{
    static const char *const names[][2] = {{"p_v", "p_visual"}, {"p_t", "p_text"}, {"p_m", "p_multimodal"},
                                           {"p_u", "p_unknown"}};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++)
            if (strlen(names[i][k]) == n && !strncmp(s, names[i][k], n)) return i;
    return -1;
}

vlmn_status vlmn_query_parse(const char *text, vlmn_query **out)
{
    *out = NULL;
    if (!text || !*text) return vlmn_error(VLMN_E_ARG, "query: empty");
    vlmn_query *q = vlmn_calloc(1, sizeof *q);
    if (!q) return vlmn_error(VLMN_E_NOMEM, "query: out of memory");
    const char *p = text;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        const char *f = p;
        while (isalnum((unsigned char)*p) || *p == '_') p++;
        size_t fl = (size_t)(p - f);
        while (isspace((unsigned char)*p)) p++;
        if (q->n == QUERY_MAX_TERMS) goto bad_many;
        term *t = &q->t[q->n];
        if (fl == 5 && !strncmp(f, "label", 5)) {
            if (*p != '=') goto bad;
            p += p[1] == '=' ? 2 : 1;
            while (isspace((unsigned char)*p)) p++;
            const char *v = p;
            while (isalpha((unsigned char)*p)) p++;
            char name[16] = {0};
            if ((size_t)(p - v) >= sizeof name) goto bad;
            memcpy(name, v, (size_t)(p - v));
            int ty = vlmn_ntype_parse(name);
            if (ty < 0) {
                vlmn_free(q);
                return vlmn_error(VLMN_E_ARG, "query '%s': unknown label '%s' (visual, text, multimodal, unknown)", text,
                                  name);
            }
            *t = (term){ty, OP_LABEL, 0};
        } else {
            int fi = field_parse(f, fl);
            if (fi < 0) {
                vlmn_free(q);
                return vlmn_error(VLMN_E_ARG, "query '%s': unknown field '%.*s' (p_v, p_t, p_m, p_u, label)", text,
                                  (int)fl, f);
            }
            int op;
            if (p[0] == '>' && p[1] == '=') op = OP_GE, p += 2;
            else if (p[0] == '<' && p[1] == '=') op = OP_LE, p += 2;
            else if (p[0] == '=' && p[1] == '=') op = OP_EQ, p += 2;
            else if (p[0] == '>') op = OP_GT, p++;
            else if (p[0] == '<') op = OP_LT, p++;
            else if (p[0] == '=') op = OP_EQ, p++;
            else goto bad;
            char *end;
            double v = strtod(p, &end);
            if (end == p) goto bad;
            p = end;
            if (!(v >= 0.0 && v <= 1.0)) {
                vlmn_free(q);
                return vlmn_error(VLMN_E_RANGE, "query '%s': threshold %g outside [0, 1]", text, v);
            }
            *t = (term){fi, op, v};
        }
        q->n++;
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        if (*p == '&' || *p == ',') {
            p += p[0] == '&' && p[1] == '&' ? 2 : 1;
            continue;
        }
        goto bad;
    }
    *out = q;
    return VLMN_OK;
bad_many:
    vlmn_free(q);
    return vlmn_error(VLMN_E_ARG, "query '%s': more than %d conditions", text, QUERY_MAX_TERMS);
bad:
    vlmn_free(q);
    return vlmn_error(VLMN_E_ARG, "query '%s': expected FIELD OP VALUE (e.g. p_u>=0.8) or label=TYPE, joined by &",
                      text);
}

void vlmn_query_free(vlmn_query *q) { vlmn_free(q); }

bool vlmn_query_match(const vlmn_query *q, const vlmn_neuron_class *c)
{
    for (int i = 0; i < q->n; i++) {
        const term *t = &q->t[i];
        if (t->op == OP_LABEL) {
            if (c->label != t->field) return false;
            continue;
        }
        if (c->den == 0) return false;
        double p = vlmn_neuron_p(c, t->field);
        bool ok;
        switch (t->op) {
        case OP_GE: ok = p >= t->value; break;
        case OP_GT: ok = p > t->value; break;
        case OP_LE: ok = p <= t->value; break;
        case OP_LT: ok = p < t->value; break;
        default: ok = p == t->value; break;
        }
        if (!ok) return false;
    }
    return true;
}
