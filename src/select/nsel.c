/* Neuron SPECs ("label=visual,p>=0.8,random:800:1", "12:4347;3:10", "layer=2-5,p_u<0.1"):
 * the one parser of neuron selections (also behind neuron-mask queries), and their
 * resolution on a model shape and a classification. Grammar: include/vlmn/select.h,
 * docs/trace.md. */
#include "vlmn/select.h"
#include "vlmn/analysis.h"

#include "select/select_int.h"
#include "core/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_LABEL, K_P, K_LAYER, K_SET, K_RANDOM, K_ALL };
enum { OP_GE, OP_GT, OP_LE, OP_LT, OP_EQ };
#define FIELD_MAXP (-1) /* bare "p" */

typedef struct nterm {
    int kind;
    int field;            /* K_LABEL: vlmn_ntype; K_P: vlmn_ntype or FIELD_MAXP */
    int op;
    double value;
    int64_t a, b;         /* K_LAYER range; K_RANDOM k, (seed in u) */
    uint64_t u;
    int64_t *keys;        /* K_SET: sorted unique layer << 32 | neuron */
    int64_t n_keys;
    char *what;           /* K_SET: the term text, for messages */
} nterm;

struct vlmn_nsel {
    int n;
    nterm t[VLMN_SEL_MAX_TERMS];
    int label;            /* first label= term's type, -1 if none */
    int random;           /* index of the random term, -1 if none */
    char *text;
};

void vlmn_nsel_free(vlmn_nsel *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        vlmn_free(s->t[i].keys);
        vlmn_free(s->t[i].what);
    }
    vlmn_free(s->text);
    vlmn_free(s);
}

static int field_parse(const char *s, size_t n)
{
    static const char *const names[][2] = {
        {"p_v", "p_visual"}, {"p_t", "p_text"}, {"p_m", "p_multimodal"}, {"p_u", "p_unknown"}};
    if (n == 1 && s[0] == 'p') return FIELD_MAXP;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++)
            if (strlen(names[i][k]) == n && !strncmp(s, names[i][k], n)) return i;
    return -2;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t vlmn_sel_sort_unique(int64_t *v, int64_t n)
{
    if (n <= 1) return n;
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int64_t m = 1;
    for (int64_t i = 1; i < n; i++)
        if (v[i] != v[m - 1]) v[m++] = v[i];
    return m;
}

bool vlmn_sel_parse_int(const char **p, int64_t lo, int64_t hi, int64_t *out)
{
    const char *s = *p;
    if (!isdigit((unsigned char)*s) && !(*s == '-' && isdigit((unsigned char)s[1]))) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < lo || v > hi) return false;
    *p = end;
    *out = v;
    return true;
}

/* Growable int64 list. */
static bool push(int64_t **v, int64_t *n, int64_t *cap, int64_t x)
{
    if (*n == *cap) {
        int64_t nc = *cap ? 2 * *cap : 64;
        int64_t *nv = vlmn_realloc(*v, (size_t)nc * sizeof **v);
        if (!nv) return false;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return true;
}

#define KEY(l, j) (((int64_t)(l) << 32) | (int64_t)(uint32_t)(j))

/* "12:4347;3:10" */
static vlmn_status parse_pairs(const char *spec, const char *s, size_t len, nterm *t)
{
    int64_t cap = 0;
    const char *p = s, *end = s + len;
    while (p < end) {
        int64_t l, j;
        if (!vlmn_sel_parse_int(&p, 0, INT32_MAX, &l) || p >= end || *p != ':') goto bad;
        p++;
        if (!vlmn_sel_parse_int(&p, 0, INT32_MAX, &j) || p > end) goto bad;
        if (t->n_keys >= VLMN_SEL_MAX_LIST)
            return vlmn_error(VLMN_E_RANGE, "neuron spec '%s': more than %d neurons listed", spec, VLMN_SEL_MAX_LIST);
        if (!push(&t->keys, &t->n_keys, &cap, KEY(l, j))) return vlmn_error(VLMN_E_NOMEM, "out of memory");
        if (p == end) break;
        if (*p != ';' || p + 1 == end) goto bad;
        p++;
    }
    t->n_keys = vlmn_sel_sort_unique(t->keys, t->n_keys);
    return VLMN_OK;
bad:
    return vlmn_error(VLMN_E_ARG, "neuron spec '%s': bad neuron list '%.*s' (expected LAYER:NEURON;LAYER:NEURON...)",
                      spec, (int)len, s);
}

/* file:PATH, lines "layer,neuron" */
static vlmn_status parse_file(const char *spec, const char *path, nterm *t)
{
    FILE *f = fopen(path, "r");
    if (!f) return vlmn_error(VLMN_E_IO, "neuron spec '%s': %s: %s", spec, path, strerror(errno));
    char line[256];
    int64_t cap = 0, ln = 0;
    vlmn_status st = VLMN_OK;
    while (fgets(line, sizeof line, f)) {
        ln++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            st = vlmn_error(VLMN_E_FORMAT, "%s:%lld: line too long", path, (long long)ln);
            break;
        }
        const char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (!*p || *p == '#') continue;
        if (ln == 1 && !strncmp(p, "layer", 5)) continue; /* header */
        int64_t l, j;
        if (!vlmn_sel_parse_int(&p, 0, INT32_MAX, &l)) goto bad;
        while (*p == ' ' || *p == '\t') p++;
        if (*p++ != ',') goto bad;
        while (*p == ' ' || *p == '\t') p++;
        if (!vlmn_sel_parse_int(&p, 0, INT32_MAX, &j)) goto bad;
        while (isspace((unsigned char)*p)) p++;
        if (*p) goto bad;
        if (t->n_keys >= VLMN_SEL_MAX_LIST) {
            st = vlmn_error(VLMN_E_RANGE, "%s: more than %d neurons", path, VLMN_SEL_MAX_LIST);
            break;
        }
        if (!push(&t->keys, &t->n_keys, &cap, KEY(l, j))) {
            st = vlmn_error(VLMN_E_NOMEM, "out of memory");
            break;
        }
        continue;
    bad:
        st = vlmn_error(VLMN_E_FORMAT, "%s:%lld: expected 'layer,neuron'", path, (long long)ln);
        break;
    }
    if (!st && ferror(f)) st = vlmn_error(VLMN_E_IO, "%s: read error", path);
    fclose(f);
    if (!st) t->n_keys = vlmn_sel_sort_unique(t->keys, t->n_keys);
    return st;
}

static vlmn_status parse_term(vlmn_nsel *q, const char *spec, const char *s, size_t len)
{
    /* trim */
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (!len) return vlmn_error(VLMN_E_ARG, "neuron spec '%s': empty term", spec);
    if (q->n == VLMN_SEL_MAX_TERMS)
        return vlmn_error(VLMN_E_RANGE, "neuron spec '%s': more than %d terms", spec, VLMN_SEL_MAX_TERMS);
    nterm *t = &q->t[q->n];
    memset(t, 0, sizeof *t);
    char buf[256];
    if (len == 3 && !strncmp(s, "all", 3)) {
        t->kind = K_ALL;
        q->n++;
        return VLMN_OK;
    }
    if (len > 5 && !strncmp(s, "file:", 5)) {
        if (len - 5 >= 4096) return vlmn_error(VLMN_E_RANGE, "neuron spec '%s': file path too long", spec);
        char *path = vlmn_strndup(s + 5, len - 5);
        if (!path) return vlmn_error(VLMN_E_NOMEM, "out of memory");
        t->kind = K_SET;
        t->what = path;
        q->n++; /* owned by q from here, even on error */
        return parse_file(spec, path, t);
    }
    if (len > 7 && !strncmp(s, "random:", 7)) {
        const char *p = s + 7, *e = s + len;
        int64_t k;
        if (!vlmn_sel_parse_int(&p, 0, INT64_MAX, &k) || p >= e || *p != ':') goto bad_random;
        p++;
        char *end;
        if (!isdigit((unsigned char)*p)) goto bad_random;
        errno = 0;
        unsigned long long seed = strtoull(p, &end, 10);
        if (errno || end != e) goto bad_random;
        if (q->random >= 0) return vlmn_error(VLMN_E_ARG, "neuron spec '%s': more than one random: term", spec);
        t->kind = K_RANDOM;
        t->a = k;
        t->u = seed;
        q->random = q->n++;
        return VLMN_OK;
    bad_random:
        return vlmn_error(VLMN_E_ARG, "neuron spec '%s': bad '%.*s' (expected random:K:SEED, K >= 0)", spec, (int)len, s);
    }
    if (isdigit((unsigned char)s[0])) {
        t->kind = K_SET;
        t->what = vlmn_strndup(s, len);
        if (!t->what) return vlmn_error(VLMN_E_NOMEM, "out of memory");
        q->n++;
        return parse_pairs(spec, s, len, t);
    }
    /* NAME OP VALUE */
    const char *p = s, *e = s + len;
    while (p < e && (isalnum((unsigned char)*p) || *p == '_')) p++;
    size_t nl = (size_t)(p - s);
    while (p < e && isspace((unsigned char)*p)) p++;
    int op = -1;
    if (p + 1 < e && p[0] == '>' && p[1] == '=') op = OP_GE, p += 2;
    else if (p + 1 < e && p[0] == '<' && p[1] == '=') op = OP_LE, p += 2;
    else if (p + 1 < e && p[0] == '=' && p[1] == '=') op = OP_EQ, p += 2;
    else if (p < e && p[0] == '>') op = OP_GT, p++;
    else if (p < e && p[0] == '<') op = OP_LT, p++;
    else if (p < e && p[0] == '=') op = OP_EQ, p++;
    while (p < e && isspace((unsigned char)*p)) p++;
    size_t vl = (size_t)(e - p);
    if (vl >= sizeof buf) vl = sizeof buf - 1;
    memcpy(buf, p, vl);
    buf[vl] = 0;
    if (nl == 5 && !strncmp(s, "label", 5)) {
        if (op != OP_EQ) goto bad;
        int ty = vlmn_ntype_parse(buf);
        if (ty < 0)
            return vlmn_error(VLMN_E_ARG, "neuron spec '%s': unknown label '%s' (visual, text, multimodal, unknown)",
                              spec, buf);
        t->kind = K_LABEL;
        t->field = ty;
        if (q->label < 0) q->label = ty;
        q->n++;
        return VLMN_OK;
    }
    if (nl == 5 && !strncmp(s, "layer", 5)) {
        if (op != OP_EQ) goto bad;
        const char *v = buf;
        int64_t a, b;
        if (!vlmn_sel_parse_int(&v, 0, INT32_MAX, &a)) goto bad_layer;
        b = a;
        if (*v == '-') {
            v++;
            if (!vlmn_sel_parse_int(&v, 0, INT32_MAX, &b) || b < a) goto bad_layer;
        }
        if (*v) goto bad_layer;
        t->kind = K_LAYER;
        t->a = a;
        t->b = b;
        q->n++;
        return VLMN_OK;
    bad_layer:
        return vlmn_error(VLMN_E_ARG, "neuron spec '%s': bad layer range '%s' (expected layer=A or layer=A-B, A <= B)",
                          spec, buf);
    }
    int fi = field_parse(s, nl);
    if (fi == -2)
        return vlmn_error(VLMN_E_ARG,
                          "neuron spec '%s': unknown term '%.*s' (label=, p, p_v, p_t, p_m, p_u, layer=, L:N, file:, "
                          "random:, all)",
                          spec, (int)len, s);
    if (op < 0 || !vl) goto bad;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end || errno) goto bad;
    if (!(v >= 0.0 && v <= 1.0))
        return vlmn_error(VLMN_E_RANGE, "neuron spec '%s': threshold %g outside [0, 1]", spec, v);
    t->kind = K_P;
    t->field = fi;
    t->op = op;
    t->value = v;
    q->n++;
    return VLMN_OK;
bad:
    return vlmn_error(VLMN_E_ARG, "neuron spec '%s': bad term '%.*s' (expected e.g. p_u>=0.8, label=visual, layer=3-5)",
                      spec, (int)len, s);
}

vlmn_status vlmn_nsel_parse(const char *spec, vlmn_nsel **out)
{
    *out = NULL;
    if (!spec) spec = "";
    size_t sl = strlen(spec);
    if (sl > VLMN_SEL_MAX_SPEC) return vlmn_error(VLMN_E_RANGE, "neuron spec: longer than %d bytes", VLMN_SEL_MAX_SPEC);
    const char *p = spec;
    while (isspace((unsigned char)*p)) p++;
    if (!*p) return vlmn_error(VLMN_E_ARG, "neuron spec: empty (use 'all' for every neuron)");
    vlmn_nsel *q = vlmn_calloc(1, sizeof *q);
    if (!q || !(q->text = vlmn_strdup(spec))) {
        vlmn_free(q);
        return vlmn_error(VLMN_E_NOMEM, "out of memory");
    }
    q->label = -1;
    q->random = -1;
    vlmn_status st = VLMN_OK;
    p = spec;
    for (;;) {
        const char *e = p;
        while (*e && *e != ',' && *e != '&') e++;
        if ((st = parse_term(q, spec, p, (size_t)(e - p)))) break;
        if (!*e) break;
        p = e + (e[0] == '&' && e[1] == '&' ? 2 : 1);
    }
    if (st) {
        vlmn_nsel_free(q);
        return st;
    }
    *out = q;
    return VLMN_OK;
}

bool vlmn_nsel_needs_class(const vlmn_nsel *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->t[i].kind == K_LABEL || s->t[i].kind == K_P) return true;
    return false;
}

bool vlmn_nsel_class_only(const vlmn_nsel *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->t[i].kind != K_LABEL && s->t[i].kind != K_P) return false;
    return true;
}

bool vlmn_nsel_match_class(const vlmn_nsel *s, const vlmn_neuron_class *c)
{
    for (int i = 0; i < s->n; i++) {
        const nterm *t = &s->t[i];
        if (t->kind == K_LABEL) {
            if (c->label != t->field) return false;
            continue;
        }
        if (t->kind != K_P) continue;
        if (c->den == 0) return false;
        double p;
        if (t->field >= 0) {
            p = vlmn_neuron_p(c, t->field);
        } else if (s->label >= 0) {
            p = vlmn_neuron_p(c, s->label);
        } else {
            p = 0;
            for (int k = 0; k < VLMN_NT_COUNT; k++)
                if (vlmn_neuron_p(c, k) > p) p = vlmn_neuron_p(c, k);
        }
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

static bool in_set(const nterm *t, int64_t key)
{
    return t->n_keys && bsearch(&key, t->keys, (size_t)t->n_keys, sizeof key, cmp_i64) != NULL;
}

vlmn_status vlmn_nsel_resolve(const vlmn_nsel *s, int n_layers, int n_ff, const vlmn_classification *cls,
                              vlmn_neuron_ref **out, int64_t *n)
{
    *out = NULL;
    *n = 0;
    if (n_layers < 1 || n_ff < 1) return vlmn_error(VLMN_E_ARG, "neuron spec: empty model shape");
    bool need = vlmn_nsel_needs_class(s);
    if (need && !cls)
        return vlmn_error(VLMN_E_ARG, "neuron spec '%s': label/p terms need a classified run (run vlmn classify)",
                          s->text);
    if (need && (cls->n_layers != n_layers || cls->n_ff != n_ff))
        return vlmn_error(VLMN_E_MISMATCH, "neuron spec '%s': classification is %d x %d, the run %d x %d", s->text,
                          cls->n_layers, cls->n_ff, n_layers, n_ff);
    /* range checks, and the smallest explicit set as the candidates */
    const nterm *base = NULL;
    for (int i = 0; i < s->n; i++) {
        const nterm *t = &s->t[i];
        if (t->kind == K_LAYER && t->b >= n_layers)
            return vlmn_error(VLMN_E_RANGE, "neuron spec '%s': layer %lld out of range (the run has layers 0-%d)",
                              s->text, (long long)t->b, n_layers - 1);
        if (t->kind != K_SET) continue;
        for (int64_t k = 0; k < t->n_keys; k++) {
            int64_t l = t->keys[k] >> 32, j = t->keys[k] & 0xffffffff;
            if (l >= n_layers || j >= n_ff)
                return vlmn_error(VLMN_E_RANGE, "neuron spec '%s': neuron %lld:%lld out of range (%d layers x %d neurons)",
                                  s->text, (long long)l, (long long)j, n_layers, n_ff);
        }
        if (!base || t->n_keys < base->n_keys) base = t;
    }
    int64_t total = base ? base->n_keys : (int64_t)n_layers * n_ff;
    vlmn_neuron_ref *v = total ? vlmn_malloc((size_t)total * sizeof *v) : NULL;
    if (total && !v) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    int64_t m = 0;
    for (int64_t c = 0; c < total; c++) {
        int l, j;
        if (base) {
            l = (int)(base->keys[c] >> 32);
            j = (int)(base->keys[c] & 0xffffffff);
        } else {
            l = (int)(c / n_ff);
            j = (int)(c % n_ff);
        }
        bool ok = true;
        for (int i = 0; ok && i < s->n; i++) {
            const nterm *t = &s->t[i];
            if (t->kind == K_LAYER) ok = l >= t->a && l <= t->b;
            else if (t->kind == K_SET && t != base) ok = in_set(t, KEY(l, j));
        }
        if (ok && need) ok = vlmn_nsel_match_class(s, &cls->neurons[(int64_t)l * n_ff + j]);
        if (ok) v[m++] = (vlmn_neuron_ref){l, j};
    }
    if (s->random >= 0 && s->t[s->random].a < m) {
        int64_t k = s->t[s->random].a;
        int64_t *pick = k ? vlmn_malloc((size_t)k * sizeof *pick) : NULL;
        vlmn_status st;
        if (k && !pick) st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        else st = vlmn_select_random(m, k, s->t[s->random].u, pick);
        if (st) {
            vlmn_free(pick);
            vlmn_free(v);
            return st;
        }
        for (int64_t i = 0; i < k; i++) v[i] = v[pick[i]]; /* pick ascending: in place is safe */
        vlmn_free(pick);
        m = k;
    }
    if (!m) {
        vlmn_free(v);
        v = NULL;
    }
    *out = v;
    *n = m;
    return VLMN_OK;
}

/* ---- random ---- */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [0, m), m >= 1 (Lemire 2019) */
static uint64_t uniform(uint64_t *s, uint64_t m)
{
    unsigned __int128 r = (unsigned __int128)splitmix64(s) * m;
    uint64_t lo = (uint64_t)r;
    if (lo < m) {
        uint64_t t = -m % m;
        while (lo < t) {
            r = (unsigned __int128)splitmix64(s) * m;
            lo = (uint64_t)r;
        }
    }
    return (uint64_t)(r >> 64);
}

vlmn_status vlmn_select_random(int64_t n, int64_t k, uint64_t seed, int64_t *pick)
{
    if (n < 0 || k < 0 || k > n) return vlmn_error(VLMN_E_ARG, "random: cannot draw %lld of %lld", (long long)k, (long long)n);
    if (!k) return VLMN_OK;
    int64_t *perm = vlmn_malloc((size_t)n * sizeof *perm);
    if (!perm) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    uint64_t st = seed;
    for (int64_t i = 0; i < k; i++) {
        int64_t j = i + (int64_t)uniform(&st, (uint64_t)(n - i));
        int64_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    memcpy(pick, perm, (size_t)k * sizeof *pick);
    vlmn_free(perm);
    qsort(pick, (size_t)k, sizeof *pick, cmp_i64);
    return VLMN_OK;
}
