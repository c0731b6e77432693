/* Neuron masks: the (layer, neuron) sets the engine zeroes (vlmn_forward_opts.
 * neuron_mask), built from a CSV file, a query on a classified run, or at random.
 * Nothing here writes a file. See include/vlmn/mask.h and docs/generate.md. */
#include "vlmn/mask.h"
#include "vlmn/analysis.h"

#include "core/alloc.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vlmn_mask {
    int n_layer;
    int64_t n_ff, count;
    uint8_t *bits;        /* [n_layer * n_ff] */
    int64_t *layer_count; /* [n_layer] */
    const uint8_t **rows; /* [n_layer]: NULL or bits + l * n_ff */
};

vlmn_status vlmn_mask_create(int n_layer, int n_ff, vlmn_mask **out)
{
    *out = NULL;
    if (n_layer < 1 || n_ff < 1) return vlmn_error(VLMN_E_ARG, "mask: %d layers of %d neurons", n_layer, n_ff);
    vlmn_mask *m = vlmn_calloc(1, sizeof *m);
    if (!m) return vlmn_error(VLMN_E_NOMEM, "mask: out of memory");
    m->n_layer = n_layer;
    m->n_ff = n_ff;
    m->bits = vlmn_calloc((size_t)n_layer * (size_t)n_ff, 1);
    m->layer_count = vlmn_calloc((size_t)n_layer, sizeof *m->layer_count);
    m->rows = vlmn_calloc((size_t)n_layer, sizeof *m->rows);
    if (!m->bits || !m->layer_count || !m->rows) {
        vlmn_mask_free(m);
        return vlmn_error(VLMN_E_NOMEM, "mask: out of memory");
    }
    *out = m;
    return VLMN_OK;
}

void vlmn_mask_free(vlmn_mask *m)
{
    if (!m) return;
    vlmn_free(m->bits);
    vlmn_free(m->layer_count);
    vlmn_free(m->rows);
    vlmn_free(m);
}

vlmn_status vlmn_mask_set(vlmn_mask *m, int layer, int64_t neuron)
{
    if (layer < 0 || layer >= m->n_layer)
        return vlmn_error(VLMN_E_RANGE, "mask: layer %d outside [0, %d)", layer, m->n_layer);
    if (neuron < 0 || neuron >= m->n_ff)
        return vlmn_error(VLMN_E_RANGE, "mask: neuron %lld outside [0, %lld)", (long long)neuron, (long long)m->n_ff);
    uint8_t *b = &m->bits[(int64_t)layer * m->n_ff + neuron];
    if (!*b) {
        *b = 1;
        m->count++;
        m->layer_count[layer]++;
        m->rows[layer] = m->bits + (int64_t)layer * m->n_ff;
    }
    return VLMN_OK;
}

bool vlmn_mask_get(const vlmn_mask *m, int layer, int64_t neuron)
{
    if (layer < 0 || layer >= m->n_layer || neuron < 0 || neuron >= m->n_ff) return false;
    return m->bits[(int64_t)layer * m->n_ff + neuron] != 0;
}

int64_t vlmn_mask_count(const vlmn_mask *m) { return m->count; }
int64_t vlmn_mask_layer_count(const vlmn_mask *m, int layer)
{
    return layer >= 0 && layer < m->n_layer ? m->layer_count[layer] : 0;
}
double vlmn_mask_ratio(const vlmn_mask *m) { return (double)m->count / ((double)m->n_layer * (double)m->n_ff); }
const uint8_t *const *vlmn_mask_rows(const vlmn_mask *m) { return m && m->count ? m->rows : NULL; }

/* ---- CSV ---- */

vlmn_status vlmn_mask_from_csv(const char *path, int n_layer, int n_ff, vlmn_mask **out)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", path, strerror(errno));
    vlmn_mask *m;
    vlmn_status st = vlmn_mask_create(n_layer, n_ff, &m);
    if (st) {
        fclose(f);
        return st;
    }
    char line[512];
    long ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            st = vlmn_error(VLMN_E_FORMAT, "%s: line %ld: too long", path, ln);
            break;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p) continue;
        if (ln == 1 && !strncmp(p, "layer", 5)) continue; /* header */
        char *end;
        errno = 0;
        long l = strtol(p, &end, 10);
        if (end == p || errno) goto bad;
        p = end;
        while (*p == ' ' || *p == '\t') p++;
        if (*p != ',') goto bad;
        p++;
        long long j = strtoll(p, &end, 10);
        if (end == p || errno) goto bad;
        p = end;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (*p) goto bad;
        if (l < 0 || l >= n_layer) {
            st = vlmn_error(VLMN_E_RANGE, "%s: line %ld: layer %ld outside [0, %d)", path, ln, l, n_layer);
            break;
        }
        if (j < 0 || j >= n_ff) {
            st = vlmn_error(VLMN_E_RANGE, "%s: line %ld: neuron %lld outside [0, %d)", path, ln, j, n_ff);
            break;
        }
        vlmn_mask_set(m, (int)l, j);
        continue;
    bad:
        st = vlmn_error(VLMN_E_FORMAT, "%s: line %ld: expected 'layer,neuron'", path, ln);
        break;
    }
    if (!st && ferror(f)) st = vlmn_error(VLMN_E_IO, "%s: read error", path);
    fclose(f);
    if (st) {
        vlmn_mask_free(m);
        return st;
    }
    *out = m;
    return VLMN_OK;
}

/* ---- query on a run ---- */

vlmn_status vlmn_mask_from_query(const char *run_dir, const char *query, int n_layer, int n_ff, vlmn_mask **out)
{
    *out = NULL;
    vlmn_nsel *q;
    vlmn_status st = vlmn_nsel_parse(query, &q);
    if (st) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/run.sqlite", run_dir);
    sqlite3 *db = NULL;
    vlmn_classification *c = NULL;
    if (vlmn_nsel_needs_class(q)) {
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            st = vlmn_error(VLMN_E_NOTFOUND, "%s: not a run directory (cannot open run.sqlite read-only)", run_dir);
            sqlite3_close(db);
            vlmn_nsel_free(q);
            return st;
        }
        sqlite3_busy_timeout(db, 10000);
        st = vlmn_classification_load(db, &c);
        sqlite3_close(db);
        if (st) {
            vlmn_nsel_free(q);
            return vlmn_error_prefix(st, "%s", run_dir);
        }
        if (c->n_layers != n_layer || c->n_ff != n_ff)
            st = vlmn_error(VLMN_E_MISMATCH, "%s: classified %d layers x %d neurons, the model has %d x %d", run_dir,
                            c->n_layers, c->n_ff, n_layer, n_ff);
    }
    vlmn_neuron_ref *sel = NULL;
    int64_t n_sel = 0;
    vlmn_mask *m = NULL;
    if (!st) st = vlmn_nsel_resolve(q, n_layer, n_ff, c, &sel, &n_sel);
    if (!st && n_sel == 0) st = vlmn_error(VLMN_E_NOTFOUND, "%s: query '%s' selects no neuron", run_dir, query);
    if (!st && !(st = vlmn_mask_create(n_layer, n_ff, &m)))
        for (int64_t i = 0; i < n_sel; i++) vlmn_mask_set(m, sel[i].layer, sel[i].neuron);
    vlmn_free(sel);
    vlmn_classification_free(c);
    vlmn_nsel_free(q);
    *out = m;
    return st;
}

/* ---- random ---- */

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* k distinct indices of [0, n) (Floyd's algorithm over a byte map), set via fn. */
static void draw(uint64_t *rng, int64_t n, int64_t k, uint8_t *seen)
{
    for (int64_t j = n - k; j < n; j++) {
        int64_t t = (int64_t)(next_u64(rng) % (uint64_t)(j + 1));
        if (seen[t]) t = j;
        seen[t] = 1;
    }
}

vlmn_status vlmn_mask_random(double ratio, uint64_t seed, int n_layer, int n_ff, vlmn_mask **out)
{
    *out = NULL;
    if (!(ratio >= 0.0 && ratio <= 1.0)) return vlmn_error(VLMN_E_RANGE, "mask: ratio %g outside [0, 1]", ratio);
    vlmn_mask *m;
    vlmn_status st = vlmn_mask_create(n_layer, n_ff, &m);
    if (st) return st;
    const int64_t N = (int64_t)n_layer * n_ff;
    int64_t k = (int64_t)llround(ratio * (double)N);
    uint64_t rng = seed;
    draw(&rng, N, k, m->bits);
    for (int64_t i = 0; i < N; i++)
        if (m->bits[i]) {
            m->bits[i] = 0;
            vlmn_mask_set(m, (int)(i / n_ff), i % n_ff);
        }
    *out = m;
    return VLMN_OK;
}

vlmn_status vlmn_mask_random_like(const vlmn_mask *like, uint64_t seed, vlmn_mask **out)
{
    vlmn_mask *m;
    vlmn_status st = vlmn_mask_create(like->n_layer, (int)like->n_ff, &m);
    if (st) return st;
    uint64_t rng = seed;
    for (int l = 0; l < m->n_layer; l++) {
        uint8_t *row = m->bits + (int64_t)l * m->n_ff;
        draw(&rng, m->n_ff, like->layer_count[l], row);
        for (int64_t j = 0; j < m->n_ff; j++)
            if (row[j]) {
                row[j] = 0;
                vlmn_mask_set(m, l, j);
            }
    }
    *out = m;
    return VLMN_OK;
}

/* ---- --drop SPEC ---- */

static vlmn_status parse_seed(const char *spec, const char *s, uint64_t *seed)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-') return vlmn_error(VLMN_E_ARG, "--drop %s: bad seed '%s'", spec, s);
    *seed = v;
    return VLMN_OK;
}

vlmn_status vlmn_mask_parse(const char *spec, int n_layer, int n_ff, vlmn_mask **out)
{
    *out = NULL;
    vlmn_status st;
    if (!spec || !*spec) return vlmn_error(VLMN_E_ARG, "--drop: empty spec");
    if (!strcmp(spec, "none")) return vlmn_mask_create(n_layer, n_ff, out);
    if (!strncmp(spec, "random:", 7)) {
        const char *r = spec + 7, *c = strchr(r, ':');
        if (!c) return vlmn_error(VLMN_E_ARG, "--drop %s: expected random:RATIO:SEED", spec);
        char buf[64];
        if ((size_t)(c - r) >= sizeof buf) return vlmn_error(VLMN_E_ARG, "--drop %s: bad ratio", spec);
        memcpy(buf, r, (size_t)(c - r));
        buf[c - r] = 0;
        char *end;
        double ratio = strtod(buf, &end);
        if (!*buf || *end) return vlmn_error(VLMN_E_ARG, "--drop %s: bad ratio '%s'", spec, buf);
        uint64_t seed;
        if ((st = parse_seed(spec, c + 1, &seed))) return st;
        return vlmn_mask_random(ratio, seed, n_layer, n_ff, out);
    }
    bool matched = !strncmp(spec, "random-matched:", 15);
    if (matched || !strncmp(spec, "run:", 4)) {
        /* RUN may contain ':' only if QUERY (and SEED) come after the last ones */
        char *s = vlmn_strdup(spec + (matched ? 15 : 4));
        if (!s) return vlmn_error(VLMN_E_NOMEM, "out of memory");
        uint64_t seed = 0;
        char *tail = NULL;
        if (matched) {
            tail = strrchr(s, ':');
            if (!tail) {
                vlmn_free(s);
                return vlmn_error(VLMN_E_ARG, "--drop %s: expected random-matched:RUN:QUERY:SEED", spec);
            }
            *tail++ = 0;
            if ((st = parse_seed(spec, tail, &seed))) {
                vlmn_free(s);
                return st;
            }
        }
        char *qs = strrchr(s, ':');
        if (!qs || qs == s) {
            vlmn_free(s);
            return vlmn_error(VLMN_E_ARG, "--drop %s: expected %s:RUN:QUERY%s", spec, matched ? "random-matched" : "run",
                              matched ? ":SEED" : "");
        }
        *qs++ = 0;
        vlmn_mask *q = NULL;
        st = vlmn_mask_from_query(s, qs, n_layer, n_ff, &q);
        vlmn_free(s);
        if (st || !matched) {
            *out = q;
            return st;
        }
        st = vlmn_mask_random_like(q, seed, out);
        vlmn_mask_free(q);
        return st;
    }
    return vlmn_mask_from_csv(spec, n_layer, n_ff, out);
}
