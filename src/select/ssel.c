/* Sample SPECs ("top:1,5,9", "top:1-20", "random:5:SEED", "ids:3,17") and the
 * resolution of a (neuron SPEC, sample SPEC) pair on an open run into per-neuron
 * sample lists (include/vlmn/select.h). */
#include "vlmn/select.h"
#include "vlmn/analysis.h"
#include "vlmn/record.h"

#include "select/select_int.h"
#include "core/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

enum { S_TOP, S_RANDOM, S_IDS };

struct vlmn_ssel {
    int kind;
    int64_t *v;     /* S_TOP: ranks, S_IDS: indices; sorted unique */
    int64_t n;
    int64_t k;      /* S_RANDOM */
    uint64_t seed;
};

void vlmn_ssel_free(vlmn_ssel *s)
{
    if (!s) return;
    vlmn_free(s->v);
    vlmn_free(s);
}

/* "1,5,9-12" with values in [lo, hi] */
static vlmn_status parse_list(const char *spec, const char *p, int64_t lo, int64_t hi, const char *what, vlmn_ssel *s)
{
    int64_t cap = 0;
    for (;;) {
        int64_t a, b;
        if (!vlmn_sel_parse_int(&p, 0, INT64_MAX, &a)) goto bad;
        b = a;
        if (*p == '-') {
            p++;
            if (!vlmn_sel_parse_int(&p, 0, INT64_MAX, &b) || b < a) goto bad;
        }
        if (a < lo || b > hi)
            return vlmn_error(VLMN_E_RANGE, "sample spec '%s': %s %lld out of range [%lld, %lld]", spec, what,
                              (long long)(a < lo ? a : b), (long long)lo, (long long)hi);
        if (b - a >= VLMN_SEL_MAX_LIST || s->n + (b - a + 1) > VLMN_SEL_MAX_LIST)
            return vlmn_error(VLMN_E_RANGE, "sample spec '%s': more than %d %ss", spec, VLMN_SEL_MAX_LIST, what);
        if (s->n + (b - a + 1) > cap) {
            int64_t nc = 2 * (s->n + (b - a + 1)) + 16;
            int64_t *nv = vlmn_realloc(s->v, (size_t)nc * sizeof *nv);
            if (!nv) return vlmn_error(VLMN_E_NOMEM, "out of memory");
            s->v = nv;
            cap = nc;
        }
        for (int64_t x = a; x <= b; x++) s->v[s->n++] = x;
        if (!*p) break;
        if (*p != ',' || !p[1]) goto bad;
        p++;
    }
    s->n = vlmn_sel_sort_unique(s->v, s->n);
    return VLMN_OK;
bad:
    return vlmn_error(VLMN_E_ARG, "sample spec '%s': expected a list like 1,5,9-12", spec);
}

vlmn_status vlmn_ssel_parse(const char *spec, vlmn_ssel **out)
{
    *out = NULL;
    if (!spec || !*spec) return vlmn_error(VLMN_E_ARG, "sample spec: empty (top:1-5, random:K:SEED or ids:I,J)");
    if (strlen(spec) > VLMN_SEL_MAX_SPEC) return vlmn_error(VLMN_E_RANGE, "sample spec: longer than %d bytes", VLMN_SEL_MAX_SPEC);
    vlmn_ssel *s = vlmn_calloc(1, sizeof *s);
    if (!s) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    vlmn_status st;
    if (!strncmp(spec, "top:", 4)) {
        s->kind = S_TOP;
        st = parse_list(spec, spec + 4, 1, VLMN_REC_MAX_TOP_N, "rank", s);
    } else if (!strncmp(spec, "ids:", 4)) {
        s->kind = S_IDS;
        st = parse_list(spec, spec + 4, 0, UINT32_MAX - 1, "sample index", s);
    } else if (!strncmp(spec, "random:", 7)) {
        s->kind = S_RANDOM;
        const char *p = spec + 7;
        char *end;
        st = VLMN_OK;
        if (!vlmn_sel_parse_int(&p, 1, UINT32_MAX, &s->k) || *p != ':' || !isdigit((unsigned char)p[1])) {
            st = vlmn_error(VLMN_E_ARG, "sample spec '%s': expected random:K:SEED with K >= 1", spec);
        } else {
            errno = 0;
            s->seed = strtoull(p + 1, &end, 10);
            if (errno || *end) st = vlmn_error(VLMN_E_ARG, "sample spec '%s': bad SEED", spec);
        }
    } else {
        st = vlmn_error(VLMN_E_ARG, "sample spec '%s': unknown (top:R,R-R | random:K:SEED | ids:I,J)", spec);
    }
    if (st) {
        vlmn_ssel_free(s);
        return st;
    }
    *out = s;
    return VLMN_OK;
}

void vlmn_selection_free(vlmn_selection *s)
{
    if (!s) return;
    vlmn_free(s->neurons);
    vlmn_free(s->off);
    vlmn_free(s->samples);
    vlmn_free(s->rank);
    vlmn_free(s->distinct);
    vlmn_free(s);
}

/* The run's successful sample indices, ascending. */
static vlmn_status ok_samples(vlmn_run *run, int64_t **out, int64_t *n)
{
    sqlite3 *db = vlmn_run_db(run);
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(db, "SELECT sample_index FROM samples WHERE status = 'ok' ORDER BY sample_index", -1, &q,
                           NULL) != SQLITE_OK)
        return vlmn_error(VLMN_E_DB, "%s: samples: %s", vlmn_run_dir(run), sqlite3_errmsg(db));
    int64_t cap = 0;
    vlmn_status st = VLMN_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            int64_t *nv = vlmn_realloc(*out, (size_t)cap * sizeof *nv);
            if (!nv) {
                st = vlmn_error(VLMN_E_NOMEM, "out of memory");
                break;
            }
            *out = nv;
        }
        (*out)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    if (!st && rc != SQLITE_DONE) st = vlmn_error(VLMN_E_DB, "%s: samples: %s", vlmn_run_dir(run), sqlite3_errmsg(db));
    sqlite3_finalize(q);
    if (st) {
        vlmn_free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

vlmn_status vlmn_select(vlmn_run *run, const char *neuron_spec, const char *sample_spec, vlmn_selection **out)
{
    *out = NULL;
    vlmn_nsel *ns = NULL;
    vlmn_ssel *ss = NULL;
    vlmn_classification *cls = NULL;
    vlmn_selection *r = NULL;
    int64_t *oks = NULL, n_ok = 0, *list = NULL, n_list = 0;
    vlmn_status st;
    if ((st = vlmn_nsel_parse(neuron_spec, &ns)) || (st = vlmn_ssel_parse(sample_spec, &ss))) goto done;
    const int L = vlmn_run_n_layers(run), F = vlmn_run_n_ff(run);
    if (vlmn_nsel_needs_class(ns) && (st = vlmn_classification_load(vlmn_run_db(run), &cls))) {
        vlmn_error_prefix(st, "%s", vlmn_run_dir(run));
        goto done;
    }
    if (!(r = vlmn_calloc(1, sizeof *r))) goto oom;
    r->deepest_layer = -1;
    if ((st = vlmn_nsel_resolve(ns, L, F, cls, &r->neurons, &r->n_neurons))) goto done;
    if (ss->kind == S_TOP && ss->v[ss->n - 1] > vlmn_run_top_n(run)) {
        st = vlmn_error(VLMN_E_RANGE, "sample spec '%s': rank %lld out of range (the run keeps top-%d)", sample_spec,
                        (long long)ss->v[ss->n - 1], vlmn_run_top_n(run));
        goto done;
    }
    /* the per-neuron list for random/ids */
    if (ss->kind != S_TOP) {
        if ((st = ok_samples(run, &oks, &n_ok))) goto done;
        if (ss->kind == S_IDS) {
            list = ss->v;
            n_list = ss->n;
            for (int64_t i = 0, j = 0; i < n_list; i++) {
                while (j < n_ok && oks[j] < list[i]) j++;
                if (j == n_ok || oks[j] != list[i]) {
                    st = vlmn_error(VLMN_E_RANGE, "sample spec '%s': sample %lld out of range (not a successful sample of the run)",
                                    sample_spec, (long long)list[i]);
                    goto done;
                }
            }
        } else {
            n_list = ss->k < n_ok ? ss->k : n_ok;
            int64_t *pick = n_list ? vlmn_malloc((size_t)n_list * sizeof *pick) : NULL;
            if (n_list && !pick) goto oom;
            if ((st = vlmn_select_random(n_ok, n_list, ss->seed, pick))) {
                vlmn_free(pick);
                goto done;
            }
            for (int64_t i = 0; i < n_list; i++) pick[i] = oks[pick[i]];
            list = pick;
        }
    }
    int64_t per = ss->kind == S_TOP ? ss->n : n_list;
    uint64_t total;
    if (!vlmn_mul_ok((uint64_t)r->n_neurons, (uint64_t)per, &total) || total > ((uint64_t)1 << 34)) {
        st = vlmn_error(VLMN_E_RANGE, "selection: %lld neurons x %lld samples is too many", (long long)r->n_neurons,
                        (long long)per);
        goto done;
    }
    r->off = vlmn_calloc((size_t)r->n_neurons + 1, sizeof *r->off);
    r->samples = total ? vlmn_malloc((size_t)total * sizeof *r->samples) : NULL;
    r->rank = total ? vlmn_malloc((size_t)total * sizeof *r->rank) : NULL;
    if (!r->off || (total && (!r->samples || !r->rank))) goto oom;
    int64_t m = 0;
    for (int64_t i = 0; i < r->n_neurons; i++) {
        const vlmn_neuron_ref *nr = &r->neurons[i];
        if (nr->layer > r->deepest_layer) r->deepest_layer = nr->layer;
        if (ss->kind == S_TOP) {
            int nt;
            const vlmn_top_entry *e = vlmn_run_top(run, nr->layer, nr->neuron, &nt);
            for (int64_t k = 0; k < ss->n; k++) {
                if (ss->v[k] > nt) {
                    r->n_missing++;
                    continue;
                }
                r->samples[m] = e[ss->v[k] - 1].sample;
                r->rank[m++] = (uint16_t)ss->v[k];
            }
        } else {
            for (int64_t k = 0; k < n_list; k++) {
                r->samples[m] = (uint32_t)list[k];
                r->rank[m++] = 0;
            }
        }
        r->off[i + 1] = m;
    }
    /* distinct samples */
    if (m) {
        if (!(r->distinct = vlmn_malloc((size_t)m * sizeof *r->distinct))) goto oom;
        memcpy(r->distinct, r->samples, (size_t)m * sizeof *r->distinct);
        qsort(r->distinct, (size_t)m, sizeof *r->distinct, cmp_u32);
        int64_t d = 1;
        for (int64_t i = 1; i < m; i++)
            if (r->distinct[i] != r->distinct[d - 1]) r->distinct[d++] = r->distinct[i];
        r->n_samples = d;
    }
    *out = r;
    r = NULL;
    st = VLMN_OK;
    goto done;
oom:
    st = vlmn_error(VLMN_E_NOMEM, "out of memory");
done:
    if (list && list != (ss ? ss->v : NULL)) vlmn_free(list);
    vlmn_free(oks);
    vlmn_selection_free(r);
    vlmn_classification_free(cls);
    vlmn_nsel_free(ns);
    vlmn_ssel_free(ss);
    return st;
}
