/* Text side of the tokenizer.json pipeline: code-point strings with source ranges,
 * Unicode classes (ICU), the known regexes as hand-written matchers, normalizers and
 * pre-tokenizers with the semantics of the Rust `tokenizers` library. */
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>

#include "core/alloc.h"
#include "tok/hf.h"

/* ---- strings ------------------------------------------------------------------ */

void hf_str_free(hf_str *s)
{
    vlmn_free(s->cp);
    vlmn_free(s->a);
    vlmn_free(s->b);
    memset(s, 0, sizeof *s);
}

static bool str_reserve(hf_str *s, size_t n)
{
    if (s->oom) return false;
    if (n <= s->cap) return true;
    size_t cap = s->cap ? s->cap : 16;
    while (cap < n) cap *= 2;
    uint32_t *cp = vlmn_realloc(s->cp, cap * sizeof *cp);
    if (cp) s->cp = cp;
    int64_t *a = cp ? vlmn_realloc(s->a, cap * sizeof *a) : NULL;
    if (a) s->a = a;
    int64_t *b = a ? vlmn_realloc(s->b, cap * sizeof *b) : NULL;
    if (b) s->b = b;
    if (!b) {
        s->oom = true;
        return false;
    }
    s->cap = cap;
    return true;
}

void hf_str_push(hf_str *s, uint32_t cp, int64_t a, int64_t b)
{
    if (!str_reserve(s, s->n + 1)) return;
    s->cp[s->n] = cp;
    s->a[s->n] = a;
    s->b[s->n] = b;
    s->n++;
}

void hf_str_append(hf_str *dst, const hf_str *src, size_t i, size_t j)
{
    if (src->oom) dst->oom = true;
    if (j <= i || !str_reserve(dst, dst->n + (j - i))) return;
    memcpy(dst->cp + dst->n, src->cp + i, (j - i) * sizeof *dst->cp);
    memcpy(dst->a + dst->n, src->a + i, (j - i) * sizeof *dst->a);
    memcpy(dst->b + dst->n, src->b + i, (j - i) * sizeof *dst->b);
    dst->n += j - i;
}

/* Length of the valid UTF-8 sequence at s, 0 if invalid (no overlongs/surrogates). */
static size_t utf8_valid(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
#define T(x) (((x) & 0xC0) == 0x80)
    if (n >= 2 && (c & 0xE0) == 0xC0 && T(s[1])) {
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return *cp >= 0x80 ? 2 : 0;
    }
    if (n >= 3 && (c & 0xF0) == 0xE0 && T(s[1]) && T(s[2])) {
        *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return *cp >= 0x800 && (*cp < 0xD800 || *cp > 0xDFFF) ? 3 : 0;
    }
    if (n >= 4 && (c & 0xF8) == 0xF0 && T(s[1]) && T(s[2]) && T(s[3])) {
        *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
        return *cp >= 0x10000 && *cp <= 0x10FFFF ? 4 : 0;
    }
#undef T
    return 0;
}

void hf_str_from_utf8(hf_str *s, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    if (!str_reserve(s, s->n + len)) return;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = utf8_valid(p + i, len - i, &cp);
        if (!l) cp = 0xFFFD, l = 1;
        hf_str_push(s, cp, (int64_t)i, (int64_t)(i + l));
        i += l;
    }
}

size_t hf_utf8_get(const char *s, size_t n, uint32_t *cp)
{
    if (!n) return 0;
    size_t l = utf8_valid((const unsigned char *)s, n, cp);
    if (!l) *cp = 0xFFFD, l = 1;
    return l;
}

size_t hf_utf8_put(uint32_t c, char *o)
{
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- Unicode classes (as Oniguruma's \s, \p{L}, \p{N}, \w) -------------------- */

bool hf_is_ws(uint32_t c)
{
    return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

static bool is_L(uint32_t c) { return c < 0x80 ? ((c | 32) >= 'a' && (c | 32) <= 'z') : (U_GET_GC_MASK((UChar32)c) & U_GC_L_MASK) != 0; }
static bool is_N(uint32_t c) { return c < 0x80 ? (c >= '0' && c <= '9') : (U_GET_GC_MASK((UChar32)c) & U_GC_N_MASK) != 0; }
bool hf_is_word(uint32_t c)
{
    if (c < 0x80) return is_L(c) || is_N(c) || c == '_';
    return (U_GET_GC_MASK((UChar32)c) & (U_GC_L_MASK | U_GC_M_MASK | U_GC_N_MASK | U_GC_PC_MASK)) != 0;
}
static bool is_other(uint32_t c) { return !hf_is_ws(c) && !is_L(c) && !is_N(c); }
static bool not_word_ws(uint32_t c) { return !hf_is_word(c) && !hf_is_ws(c); }

static uint32_t b2u[256];
static int16_t u2b[324];

static void byte_tables(void)
{
    static bool done;
    if (done) return;
    int n = 0;
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        b2u[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
        u2b[b2u[b]] = (int16_t)b;
    }
    done = true;
}

uint32_t hf_byte_char(unsigned b)
{
    byte_tables();
    return b2u[b & 255];
}

int hf_char_byte(uint32_t c)
{
    byte_tables();
    return c < 324 ? u2b[c] : -1;
}

/* ---- the known regexes ---------------------------------------------------------- */

static size_t run_of(const uint32_t *s, size_t n, size_t i, bool (*pred)(uint32_t))
{
    size_t j = i;
    while (j < n && pred(s[j])) j++;
    return j;
}

static size_t contraction(const uint32_t *s, size_t n, size_t i)
{
    if (s[i] != '\'' || i + 1 >= n) return 0;
    uint32_t c = s[i + 1], d = i + 2 < n ? s[i + 2] : 0;
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
    return 0;
}

static bool lit_at(const uint32_t *s, size_t n, size_t i, const char *lit)
{
    size_t l = strlen(lit);
    if (i + l > n) return false;
    for (size_t k = 0; k < l; k++)
        if (s[i + k] != (unsigned char)lit[k]) return false;
    return true;
}

/* Length of the match starting at i (0: none), alternatives tried in order. */
static size_t re_match(int kind, const uint32_t *s, size_t n, size_t i)
{
    size_t k;
    switch (kind) {
    case HF_RE_GPT2: {
        /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
        if ((k = contraction(s, n, i))) return k;
        bool (*preds[3])(uint32_t) = {is_L, is_N, is_other};
        for (int p = 0; p < 3; p++) {
            if (s[i] == ' ' && i + 1 < n && preds[p](s[i + 1])) return run_of(s, n, i + 1, preds[p]) - i;
            if (preds[p](s[i])) return run_of(s, n, i, preds[p]) - i;
        }
        if (hf_is_ws(s[i])) {
            size_t j = run_of(s, n, i, hf_is_ws);
            return j == n || j - i == 1 ? j - i : j - i - 1;
        }
        return 0;
    }
    case HF_RE_CLIP:
        /* <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ */
        if (lit_at(s, n, i, "<|startoftext|>")) return 15;
        if (lit_at(s, n, i, "<|endoftext|>")) return 13;
        if ((k = contraction(s, n, i))) return k;
        if (is_L(s[i])) return run_of(s, n, i, is_L) - i;
        if (is_N(s[i])) return 1;
        if (is_other(s[i])) return run_of(s, n, i, is_other) - i;
        return 0;
    case HF_RE_WS: return run_of(s, n, i, hf_is_ws) - i; /* \s+ */
    case HF_RE_WORDS:                                    /* \w+|[^\w\s]+ */
        if (hf_is_word(s[i])) return run_of(s, n, i, hf_is_word) - i;
        if (!hf_is_ws(s[i])) return run_of(s, n, i, not_word_ws) - i;
        return 0;
    }
    return 0;
}

size_t hf_find(const hf_pat *p, const uint32_t *s, size_t n, size_t **m, bool *oom)
{
    size_t cnt = 0, cap = 0;
    *m = NULL;
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        if (p->kind == HF_PAT_LIT) {
            if (p->n && i + p->n <= n && memcmp(s + i, p->lit, p->n * sizeof *s) == 0) k = p->n;
        } else {
            k = re_match(p->kind, s, n, i);
        }
        if (!k) {
            i++;
            continue;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            size_t *nm = vlmn_realloc(*m, cap * 2 * sizeof *nm);
            if (!nm) {
                *oom = true;
                return cnt;
            }
            *m = nm;
        }
        (*m)[2 * cnt] = i;
        (*m)[2 * cnt + 1] = i + k;
        cnt++;
        i += k;
    }
    return cnt;
}

/* find_matches: the string cut into [a, b, is_match] pieces covering it. */
typedef struct piece3 {
    size_t a, b;
    bool d;
} piece3;

static piece3 *find_pieces(const hf_pat *p, const uint32_t *s, size_t n, bool invert, size_t *np, bool *oom)
{
    size_t *m = NULL;
    size_t cnt = hf_find(p, s, n, &m, oom);
    piece3 *out = vlmn_malloc((2 * cnt + 2) * sizeof *out);
    if (!out) {
        *oom = true;
        vlmn_free(m);
        return NULL;
    }
    size_t k = 0, prev = 0;
    if (n == 0) out[k++] = (piece3){0, 0, false};
    for (size_t i = 0; i < cnt; i++) {
        if (m[2 * i] != prev) out[k++] = (piece3){prev, m[2 * i], false};
        out[k++] = (piece3){m[2 * i], m[2 * i + 1], true};
        prev = m[2 * i + 1];
    }
    if (n && prev != n) out[k++] = (piece3){prev, n, false};
    vlmn_free(m);
    if (invert)
        for (size_t i = 0; i < k; i++) out[i].d = !out[i].d;
    *np = k;
    return out;
}

/* NormalizedString::split behaviours, in place; returns the new count. */
static size_t apply_behavior(piece3 *v, size_t k, int behavior)
{
    size_t o = 0;
    bool prev = false;
    switch (behavior) {
    case HF_B_REMOVED:
        for (size_t i = 0; i < k; i++)
            if (!v[i].d) v[o++] = v[i];
        return o;
    case HF_B_ISOLATED: return k;
    case HF_B_MERGED_PREV:
        for (size_t i = 0; i < k; i++) {
            if (v[i].d && !prev && o) v[o - 1].b = v[i].b;
            else v[o++] = v[i];
            prev = v[i].d;
        }
        return o;
    case HF_B_CONTIGUOUS:
        for (size_t i = 0; i < k; i++) {
            if (v[i].d == prev && o) v[o - 1].b = v[i].b;
            else v[o++] = v[i];
            prev = v[i].d;
        }
        return o;
    case HF_B_MERGED_NEXT: {
        /* right to left, building the result from the end of the array */
        size_t w = k;
        for (size_t i = k; i-- > 0;) {
            piece3 x = v[i];
            if (x.d && !prev && w < k) v[w].a = x.a;
            else v[--w] = x;
            prev = x.d;
        }
        memmove(v, v + w, (k - w) * sizeof *v);
        return k - w;
    }
    }
    return k;
}

/* ---- normalizers ------------------------------------------------------------------ */

static void replace_matches(hf_str *s, const hf_pat *p, const uint32_t *content, size_t n_content)
{
    size_t *m = NULL;
    bool oom = false;
    size_t cnt = hf_find(p, s->cp, s->n, &m, &oom);
    if (oom) s->oom = true;
    if (!cnt) {
        vlmn_free(m);
        return;
    }
    hf_str o = {0};
    size_t prev = 0;
    for (size_t i = 0; i < cnt; i++) {
        size_t x = m[2 * i], y = m[2 * i + 1];
        hf_str_append(&o, s, prev, x);
        /* the replacement takes the source range of what it replaces */
        int64_t a = s->a[x], b = s->b[y - 1];
        for (size_t j = x; j < y; j++) {
            if (s->a[j] < a) a = s->a[j];
            if (s->b[j] > b) b = s->b[j];
        }
        for (size_t j = 0; j < n_content; j++) hf_str_push(&o, content[j], a, b);
        prev = y;
    }
    hf_str_append(&o, s, prev, s->n);
    vlmn_free(m);
    if (s->oom) o.oom = true;
    hf_str_free(s);
    *s = o;
}

static void unicode_normalize(hf_str *s, int type)
{
    UErrorCode e = U_ZERO_ERROR;
    const UNormalizer2 *nz = type == HF_N_NFC ? unorm2_getNFCInstance(&e)
                             : type == HF_N_NFD ? unorm2_getNFDInstance(&e)
                             : type == HF_N_NFKC ? unorm2_getNFKCInstance(&e)
                                                 : unorm2_getNFKDInstance(&e);
    if (U_FAILURE(e)) {
        s->oom = true;
        return;
    }
    hf_str o = {0};
    UChar in[64], out[256];
    for (size_t i = 0; i < s->n;) {
        size_t j = i + 1;
        while (j < s->n && !unorm2_hasBoundaryBefore(nz, (UChar32)s->cp[j])) j++;
        /* a chunk between boundaries; too long chunks (Zalgo text) are left as they are */
        int32_t ni = 0;
        bool fits = j - i <= 30;
        for (size_t k = i; fits && k < j; k++) U16_APPEND_UNSAFE(in, ni, (UChar32)s->cp[k]);
        e = U_ZERO_ERROR;
        int32_t no = fits ? unorm2_normalize(nz, in, ni, out, 256, &e) : -1;
        if (!fits || U_FAILURE(e)) {
            hf_str_append(&o, s, i, j);
        } else {
            int64_t a = s->a[i], b = s->b[i];
            for (size_t k = i; k < j; k++) {
                if (s->a[k] < a) a = s->a[k];
                if (s->b[k] > b) b = s->b[k];
            }
            for (int32_t k = 0; k < no;) {
                UChar32 c;
                U16_NEXT_UNSAFE(out, k, c);
                hf_str_push(&o, (uint32_t)c, a, b);
            }
        }
        i = j;
    }
    if (s->oom) o.oom = true;
    hf_str_free(s);
    *s = o;
}

static void lowercase(hf_str *s)
{
    hf_str o = {0};
    for (size_t i = 0; i < s->n; i++) {
        uint32_t c = s->cp[i];
        if (c == 0x130) { /* the one unconditional multi-character lower case */
            hf_str_push(&o, 'i', s->a[i], s->b[i]);
            hf_str_push(&o, 0x307, s->a[i], s->b[i]);
        } else {
            hf_str_push(&o, c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : (uint32_t)u_tolower((UChar32)c),
                        s->a[i], s->b[i]);
        }
    }
    if (s->oom) o.oom = true;
    hf_str_free(s);
    *s = o;
}

void hf_normalize(const hf_node *n, hf_str *s)
{
    if (!n) return;
    switch (n->type) {
    case HF_N_SEQ:
        for (int i = 0; i < n->n_kids; i++) hf_normalize(&n->kids[i], s);
        return;
    case HF_N_PREPEND: {
        if (!s->n) return;
        hf_str o = {0};
        for (size_t i = 0; i < n->n_str; i++) hf_str_push(&o, n->str[i], s->a[0], s->a[0]);
        hf_str_append(&o, s, 0, s->n);
        hf_str_free(s);
        *s = o;
        return;
    }
    case HF_N_REPLACE: replace_matches(s, &n->pat, n->str, n->n_str); return;
    case HF_N_NFC: case HF_N_NFD: case HF_N_NFKC: case HF_N_NFKD: unicode_normalize(s, n->type); return;
    case HF_N_LOWER: lowercase(s); return;
    case HF_N_STRIP: {
        size_t i = 0, j = s->n;
        if (n->flag_a)
            while (i < j && hf_is_ws(s->cp[i])) i++;
        if (n->flag_b)
            while (j > i && hf_is_ws(s->cp[j - 1])) j--;
        if (i == 0 && j == s->n) return;
        hf_str o = {0};
        hf_str_append(&o, s, i, j);
        if (s->oom) o.oom = true;
        hf_str_free(s);
        *s = o;
        return;
    }
    }
}

/* ---- pre-tokenizers ------------------------------------------------------------ */

void hf_words_free(hf_words *w)
{
    for (size_t i = 0; i < w->n; i++) hf_str_free(&w->w[i]);
    vlmn_free(w->w);
    memset(w, 0, sizeof *w);
}

/* Take ownership of s as a new word (empty ones are dropped, as tokenizers does). */
static void words_add(hf_words *w, hf_str *s, bool origin, bool **origins, size_t *ocap)
{
    if (s->oom) w->oom = true;
    if (!s->n || w->oom) {
        hf_str_free(s);
        return;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        hf_str *nw = vlmn_realloc(w->w, cap * sizeof *nw);
        if (!nw) {
            w->oom = true;
            hf_str_free(s);
            return;
        }
        w->w = nw;
        w->cap = cap;
    }
    if (origins) {
        if (*ocap < w->cap) {
            bool *no = vlmn_realloc(*origins, w->cap * sizeof *no);
            if (!no) {
                w->oom = true;
                hf_str_free(s);
                return;
            }
            *origins = no;
            *ocap = w->cap;
        }
        (*origins)[w->n] = origin;
    }
    w->w[w->n++] = *s;
    memset(s, 0, sizeof *s);
}

/* Cut s by pattern + behaviour into words. */
static void split_into(const hf_str *s, const hf_pat *p, int behavior, bool invert, bool origin, hf_words *out,
                       bool **origins, size_t *ocap)
{
    size_t k = 0;
    bool oom = false;
    piece3 *v = find_pieces(p, s->cp, s->n, invert, &k, &oom);
    if (!v) {
        out->oom = true;
        return;
    }
    k = apply_behavior(v, k, behavior);
    for (size_t i = 0; i < k; i++) {
        hf_str w = {0};
        hf_str_append(&w, s, v[i].a, v[i].b);
        words_add(out, &w, origin && v[i].a == 0, origins, ocap);
    }
    if (oom) out->oom = true;
    vlmn_free(v);
}

static const hf_pat PAT_GPT2 = {HF_RE_GPT2, NULL, 0};
static const hf_pat PAT_WORDS = {HF_RE_WORDS, NULL, 0};
static const hf_pat PAT_WS = {HF_RE_WS, NULL, 0};

/* One pre-tokenizer over one split. */
static void pre_one(const hf_node *p, hf_str *s, bool origin, hf_words *out, bool **origins, size_t *ocap)
{
    switch (p->type) {
    case HF_P_METASPACE: {
        uint32_t rep = p->pat.n ? p->pat.lit[0] : 0x2581;
        for (size_t i = 0; i < s->n; i++)
            if (s->cp[i] == ' ') s->cp[i] = rep;
        bool add = (p->scheme == HF_SCHEME_ALWAYS || (p->scheme == HF_SCHEME_FIRST && origin)) &&
                   !(s->n && s->cp[0] == rep);
        hf_str t = {0};
        if (add) hf_str_push(&t, rep, s->n ? s->a[0] : 0, s->n ? s->a[0] : 0);
        hf_str_append(&t, s, 0, s->n);
        if (p->flag_a) {
            hf_pat rp = {HF_PAT_LIT, &rep, 1};
            split_into(&t, &rp, HF_B_MERGED_NEXT, false, origin, out, origins, ocap);
            hf_str_free(&t);
        } else {
            words_add(out, &t, origin, origins, ocap);
        }
        return;
    }
    case HF_P_BYTELEVEL: {
        hf_str t = {0};
        if (p->flag_a && !(s->n && s->cp[0] == ' ')) hf_str_push(&t, ' ', s->n ? s->a[0] : 0, s->n ? s->a[0] : 0);
        hf_str_append(&t, s, 0, s->n);
        hf_words tmp = {0};
        if (p->flag_b) split_into(&t, &PAT_GPT2, HF_B_ISOLATED, false, origin, &tmp, NULL, NULL);
        else words_add(&tmp, &t, origin, NULL, NULL);
        hf_str_free(&t);
        if (tmp.oom) out->oom = true;
        for (size_t i = 0; i < tmp.n; i++) {
            hf_str b = {0};
            const hf_str *w = &tmp.w[i];
            for (size_t j = 0; j < w->n; j++) {
                char u[4];
                size_t l = hf_utf8_put(w->cp[j], u);
                for (size_t q = 0; q < l; q++) hf_str_push(&b, hf_byte_char((unsigned char)u[q]), w->a[j], w->b[j]);
            }
            words_add(out, &b, origin && i == 0, origins, ocap);
        }
        hf_words_free(&tmp);
        return;
    }
    case HF_P_SPLIT: split_into(s, &p->pat, p->behavior, p->flag_b, origin, out, origins, ocap); return;
    case HF_P_WHITESPACE: split_into(s, &PAT_WORDS, HF_B_REMOVED, true, origin, out, origins, ocap); return;
    case HF_P_WSSPLIT: split_into(s, &PAT_WS, HF_B_REMOVED, false, origin, out, origins, ocap); return;
    }
}

void hf_pre_tokenize(const hf_node *p, const hf_str *in, bool at_origin, hf_words *out)
{
    hf_str s = {0};
    hf_str_append(&s, in, 0, in->n);
    if (!p) {
        words_add(out, &s, at_origin, NULL, NULL);
        return;
    }
    if (p->type != HF_P_SEQ) {
        size_t ocap = 0;
        pre_one(p, &s, at_origin, out, NULL, &ocap);
        hf_str_free(&s);
        return;
    }
    /* Sequence: each pre-tokenizer over every split of the previous one */
    hf_words cur = {0};
    bool *org = NULL;
    size_t ocap = 0;
    words_add(&cur, &s, at_origin, &org, &ocap);
    for (int k = 0; k < p->n_kids && !cur.oom; k++) {
        hf_words next = {0};
        bool *norg = NULL;
        size_t nocap = 0;
        for (size_t i = 0; i < cur.n; i++) pre_one(&p->kids[k], &cur.w[i], org[i], &next, &norg, &nocap);
        hf_words_free(&cur);
        vlmn_free(org);
        cur = next;
        org = norg;
        ocap = nocap;
    }
    if (cur.oom) out->oom = true;
    for (size_t i = 0; i < cur.n; i++) words_add(out, &cur.w[i], false, NULL, NULL);
    cur.n = 0;
    hf_words_free(&cur);
    vlmn_free(org);
}
