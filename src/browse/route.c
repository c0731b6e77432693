/* Request targets of the browser: a strict parser of the raw (not yet decoded) URI into
 * a vlmn_browse_req. It is the only place a request's bytes are interpreted, so it
 * rejects everything it does not know (400), never builds a file path, and bounds every
 * length (fuzz/fuzz_browse_query.c). */
#include "vlmn/browse.h"
#include "vlmn/analysis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 6
#define MAX_SEG 64
#define MAX_VAL (VLMN_BROWSE_MAX_Q * 3)

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into out (cap bytes incl. NUL); plus = space when form. -1 on a
 * bad escape, a NUL byte or overflow. */
static int decode(const char *s, size_t n, bool form, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = h * 16 + l;
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        if (c == 0 || o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return (int)o;
}

/* A non-negative decimal integer, at most 12 digits, no sign or spaces. */
static int parse_id(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 12) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_num(const char *s, double *out)
{
    if (!*s || strlen(s) > 32) return -1;
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789.-+eE", *p)) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static const char *const sort_names[] = {"neuron", "max_act", "p_v", "p_t", "p_m", "p_u", "score"};

static int fail(char *err, size_t n, int code, const char *fmt, const char *arg)
{
    snprintf(err, n, fmt, arg);
    return code;
}

static int query_param(vlmn_browse_req *r, const char *key, const char *val, unsigned *seen, char *err, size_t en)
{
    static const char *const keys[] = {"layer", "label", "p_v", "p_t", "p_m", "p_u", "act", "score",
                                       "q",     "sort",  "order", "page", "per"};
    int k = -1;
    for (int i = 0; i < (int)(sizeof keys / sizeof keys[0]); i++)
        if (!strcmp(key, keys[i])) k = i;
    if (k < 0) return fail(err, en, 400, "unknown parameter '%.40s'", key);
    if (*seen & (1u << k)) return fail(err, en, 400, "parameter '%s' given twice", keys[k]);
    *seen |= 1u << k;
    if (!*val) return 200; /* an empty form field ("layer=&p_v=") means: not given */
    int64_t i64;
    double d;
    switch (k) {
    case 0:
        if (parse_id(val, &i64)) return fail(err, en, 400, "layer: not a non-negative integer", "");
        r->f_layer = i64;
        break;
    case 1:
        if (!strcmp(val, "any")) break;
        if ((r->f_label = vlmn_ntype_parse(val)) < 0)
            return fail(err, en, 400, "label: one of visual, text, multimodal, unknown, any", "");
        break;
    case 2: case 3: case 4: case 5:
        if (parse_num(val, &d) || d < 0 || d > 1) return fail(err, en, 400, "%s: a number in [0, 1]", keys[k]);
        r->p_min[k - 2] = d;
        break;
    case 6: case 7:
        if (parse_num(val, &d)) return fail(err, en, 400, "%s: not a number", keys[k]);
        if (k == 6) r->act_min = d;
        else r->score_min = d;
        break;
    case 8:
        if (strlen(val) > VLMN_BROWSE_MAX_Q) return fail(err, en, 400, "q: longer than 256 bytes", "");
        snprintf(r->q, sizeof r->q, "%s", val);
        break;
    case 9: {
        int s = -1;
        for (int i = 0; i < (int)(sizeof sort_names / sizeof sort_names[0]); i++)
            if (!strcmp(val, sort_names[i])) s = i;
        if (s < 0) return fail(err, en, 400, "sort: one of neuron, max_act, p_v, p_t, p_m, p_u, score", "");
        r->sort = (vlmn_browse_sort)s;
        break;
    }
    case 10:
        if (!strcmp(val, "asc")) r->asc = true;
        else if (!strcmp(val, "desc")) r->asc = false;
        else return fail(err, en, 400, "order: asc or desc", "");
        break;
    case 11:
        if (parse_id(val, &i64) || i64 < 1 || i64 > 100000000) return fail(err, en, 400, "page: 1..100000000", "");
        r->page_no = i64;
        break;
    case 12:
        if (parse_id(val, &i64) || i64 < 1 || i64 > VLMN_BROWSE_MAX_PER) return fail(err, en, 400, "per: 1..500", "");
        r->per = (int)i64;
        break;
    }
    return 200;
}

static void req_defaults(vlmn_browse_req *r)
{
    memset(r, 0, sizeof *r);
    r->layer = r->neuron = r->sample = -1;
    r->f_layer = -1;
    r->f_label = -1;
    for (int t = 0; t < 4; t++) r->p_min[t] = NAN;
    r->act_min = r->score_min = NAN;
    r->sort = VLMN_BS_NEURON;
    r->asc = true;
    r->page_no = 1;
    r->per = 100;
}

int vlmn_browse_parse(const char *uri, size_t len, vlmn_browse_req *r, char *err, size_t en)
{
    req_defaults(r);
    if (en) err[0] = 0;
    if (len > VLMN_BROWSE_MAX_URI) return fail(err, en, 414, "request target longer than 4096 bytes", "");
    if (len == 0 || uri[0] != '/') return fail(err, en, 400, "request target must start with '/'", "");
    size_t qpos = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)uri[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '#')
            return fail(err, en, 400, "bad byte in request target", "");
        if (c == '?' && qpos == len) qpos = i;
    }
    /* Path: decoded segment by segment; '.', '..', '/' or '\' inside a segment are refused. */
    char seg[MAX_SEGS][MAX_SEG];
    int ns = 0;
    size_t i = 1;
    while (i < qpos) {
        size_t j = i;
        while (j < qpos && uri[j] != '/') j++;
        if (j == i) {
            if (j < qpos || ns > 0) return fail(err, en, 400, "empty path segment", "");
            break;
        }
        if (ns == MAX_SEGS) return fail(err, en, 404, "no such page", "");
        int d = decode(uri + i, j - i, false, seg[ns], MAX_SEG);
        if (d < 0) return fail(err, en, 400, "bad percent-escape or segment too long in path", "");
        if (!strcmp(seg[ns], ".") || !strcmp(seg[ns], "..") || strchr(seg[ns], '/') || strchr(seg[ns], '\\'))
            return fail(err, en, 400, "path traversal refused", "");
        ns++;
        i = j + 1;
        if (j == qpos - 1 && uri[j] == '/') break; /* trailing slash */
    }
    int s0 = 0;
    if (ns > 0 && !strcmp(seg[0], "api")) {
        r->api = true;
        s0 = 1;
    }
    int n = ns - s0;
    const char *a = n > 0 ? seg[s0] : "";
    bool ok_ids = true;
    if (n == 0) {
        r->page = VLMN_BP_OVERVIEW;
    } else if (r->api && n == 1 && !strcmp(a, "run")) {
        r->page = VLMN_BP_OVERVIEW;
    } else if (n == 1 && !strcmp(a, "neurons")) {
        r->page = VLMN_BP_NEURONS;
    } else if (n == 3 && !strcmp(a, "neuron")) {
        r->page = VLMN_BP_NEURON;
        ok_ids = !parse_id(seg[s0 + 1], &r->layer) && !parse_id(seg[s0 + 2], &r->neuron);
    } else if (n == 2 && !strcmp(a, "sample")) {
        r->page = VLMN_BP_SAMPLE;
        ok_ids = !parse_id(seg[s0 + 1], &r->sample);
    } else if (!r->api && n == 2 && !strcmp(a, "img")) {
        r->page = VLMN_BP_IMAGE;
        ok_ids = !parse_id(seg[s0 + 1], &r->sample);
    } else if (!r->api && n == 4 && !strcmp(a, "mod")) {
        r->page = VLMN_BP_MODULATED;
        char *dot = strrchr(seg[s0 + 3], '.');
        if (!dot || strcmp(dot, ".png")) return fail(err, en, 404, "no such page", "");
        *dot = 0;
        ok_ids = !parse_id(seg[s0 + 1], &r->layer) && !parse_id(seg[s0 + 2], &r->neuron) &&
                 !parse_id(seg[s0 + 3], &r->sample);
    } else {
        return fail(err, en, 404, "no such page", "");
    }
    if (!ok_ids) return fail(err, en, 400, "ids in the path must be non-negative integers", "");
    /* Query string. */
    unsigned seen = 0;
    for (size_t p = qpos + 1; p < len + (qpos < len);) {
        size_t e = p;
        while (e < len && uri[e] != '&') e++;
        if (e > p) {
            if (r->page != VLMN_BP_NEURONS) return fail(err, en, 400, "this page takes no parameters", "");
            size_t eq = p;
            while (eq < e && uri[eq] != '=') eq++;
            if (eq == e) return fail(err, en, 400, "parameter without '='", "");
            char key[MAX_SEG], val[MAX_VAL + 1];
            if (decode(uri + p, eq - p, true, key, sizeof key) <= 0)
                return fail(err, en, 400, "bad parameter name", "");
            if (decode(uri + eq + 1, e - eq - 1, true, val, sizeof val) < 0)
                return fail(err, en, 400, "bad percent-escape or value too long in parameter '%.40s'", key);
            int c = query_param(r, key, val, &seen, err, en);
            if (c != 200) return c;
        }
        p = e + 1;
        if (e >= len) break;
    }
    return 200;
}
