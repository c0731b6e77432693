/* Encoding and decoding with a tokenizer.json pipeline, as the Rust `tokenizers`
 * library does: added tokens (leftmost-longest, raw text first, then the normalized
 * text), normalizer, pre-tokenizer, BPE (merge ranks, lowest first, then leftmost;
 * byte fallback; unk fusing), post-processor specials; decoders on the way back. */
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "tok/hf.h"

#define REPLACEMENT "\xef\xbf\xbd"

void hf_tok_free(vlmn_hftok *h);

/* ---- output ------------------------------------------------------------------------ */

typedef struct out_ids {
    int32_t *ids;
    int64_t *spans;
    int64_t n, cap;
    bool oom;
} out_ids;

static void out_push(out_ids *o, int32_t id, int64_t a, int64_t b)
{
    if (o->oom) return;
    if (o->n == o->cap) {
        int64_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *ni = vlmn_realloc(o->ids, (size_t)cap * sizeof *ni);
        if (ni) o->ids = ni;
        int64_t *ns = ni ? vlmn_realloc(o->spans, (size_t)cap * 2 * sizeof *ns) : NULL;
        if (!ns) {
            o->oom = true;
            return;
        }
        o->spans = ns;
        o->cap = cap;
    }
    o->ids[o->n] = id;
    o->spans[2 * o->n] = a;
    o->spans[2 * o->n + 1] = b;
    o->n++;
}

/* Source span of chars [i, j) of s: the union of their non-empty ranges. */
static void span_of(const hf_str *s, size_t i, size_t j, int64_t *a, int64_t *b)
{
    *a = -1;
    *b = -1;
    for (size_t k = i; k < j; k++) {
        if (s->a[k] >= s->b[k]) continue;
        if (*a < 0 || s->a[k] < *a) *a = s->a[k];
        if (s->b[k] > *b) *b = s->b[k];
    }
    if (*a < 0) *a = *b = i < s->n ? s->a[i] : (s->n ? s->b[s->n - 1] : 0);
}

/* ---- BPE ------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static bool merge_find(const vlmn_hftok *h, int32_t l, int32_t r, uint32_t *rank, int32_t *nid)
{
    if (!h->merge_keys) return false;
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    for (uint64_t s = mix64(key) & h->merge_mask;; s = (s + 1) & h->merge_mask) {
        if (h->merge_keys[s] == 0) return false;
        if (h->merge_keys[s] == key) {
            *rank = h->merge_rank[s];
            *nid = (int32_t)h->merge_new[s];
            return true;
        }
    }
}

typedef struct sym {
    int32_t id;
    int32_t prev, next;
    uint32_t ca, cb; /* chars of the word */
    bool gone;
} sym;

typedef struct mcand {
    uint32_t rank, pos;
    int32_t nid;
} mcand;

static bool cand_before(const mcand *x, const mcand *y)
{
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

typedef struct mheap {
    mcand *v;
    size_t n, cap;
} mheap;

static bool heap_push(mheap *hp, mcand c)
{
    if (hp->n == hp->cap) {
        size_t cap = hp->cap ? hp->cap * 2 : 64;
        mcand *nv = vlmn_realloc(hp->v, cap * sizeof *nv);
        if (!nv) return false;
        hp->v = nv;
        hp->cap = cap;
    }
    size_t i = hp->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &hp->v[p])) break;
        hp->v[i] = hp->v[p];
        i = p;
    }
    hp->v[i] = c;
    return true;
}

static mcand heap_pop(mheap *hp)
{
    mcand top = hp->v[0], last = hp->v[--hp->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= hp->n) break;
        if (c + 1 < hp->n && cand_before(&hp->v[c + 1], &hp->v[c])) c++;
        if (!cand_before(&hp->v[c], &last)) break;
        hp->v[i] = hp->v[c];
        i = c;
    }
    if (hp->n) hp->v[i] = last;
    return top;
}

typedef struct syms {
    sym *v;
    size_t n, cap;
} syms;

static bool sym_add(syms *s, int32_t id, uint32_t ca, uint32_t cb)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        sym *nv = vlmn_realloc(s->v, cap * sizeof *nv);
        if (!nv) return false;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n] = (sym){id, (int32_t)s->n - 1, -1, ca, cb, false};
    if (s->n) s->v[s->n - 1].next = (int32_t)s->n;
    s->n++;
    return true;
}

/* One word (pre-tokenized split) -> tokens. */
static bool bpe_word(const vlmn_tok *t, const vlmn_hftok *h, const hf_str *w, out_ids *o)
{
    size_t cap = 4 * (w->n + h->n_prefix + h->n_suffix) + 4;
    char *buf = vlmn_malloc(cap);
    if (!buf) return false;
    bool ok = false;
    syms s = {0};
    mheap hp = {0};
    if (h->ignore_merges) {
        size_t l = 0;
        for (size_t i = 0; i < w->n; i++) l += hf_utf8_put(w->cp[i], buf + l);
        int32_t id = hf_vocab_find(t, h, buf, l);
        if (id >= 0) {
            int64_t a, b;
            span_of(w, 0, w->n, &a, &b);
            out_push(o, id, a, b);
            vlmn_free(buf);
            return true;
        }
    }
    int32_t unk = -1;
    uint32_t unk_a = 0;
    for (size_t i = 0; i < w->n; i++) {
        size_t l = 0;
        if (i > 0)
            for (size_t k = 0; k < h->n_prefix; k++) l += hf_utf8_put(h->prefix[k], buf + l);
        l += hf_utf8_put(w->cp[i], buf + l);
        if (i + 1 == w->n)
            for (size_t k = 0; k < h->n_suffix; k++) l += hf_utf8_put(h->suffix[k], buf + l);
        int32_t id = hf_vocab_find(t, h, buf, l);
        if (id >= 0) {
            if (unk >= 0 && !sym_add(&s, unk, unk_a, (uint32_t)i)) goto done;
            unk = -1;
            if (!sym_add(&s, id, (uint32_t)i, (uint32_t)i + 1)) goto done;
            continue;
        }
        if (h->byte_fallback) {
            bool all = true;
            for (size_t k = 0; k < l; k++) all = all && h->byte_id[(unsigned char)buf[k]] >= 0;
            if (all) {
                for (size_t k = 0; k < l; k++)
                    if (!sym_add(&s, h->byte_id[(unsigned char)buf[k]], (uint32_t)i, (uint32_t)i + 1)) goto done;
                continue;
            }
        }
        if (h->unk >= 0) {
            if (unk >= 0 && !h->fuse_unk) {
                if (!sym_add(&s, unk, unk_a, (uint32_t)i)) goto done;
                unk = -1;
            }
            if (unk < 0) {
                unk = h->unk;
                unk_a = (uint32_t)i;
            }
        }
    }
    if (unk >= 0 && !sym_add(&s, unk, unk_a, (uint32_t)w->n)) goto done;

    for (size_t i = 0; i + 1 < s.n; i++) {
        uint32_t rank;
        int32_t nid;
        if (merge_find(h, s.v[i].id, s.v[i + 1].id, &rank, &nid) && !heap_push(&hp, (mcand){rank, (uint32_t)i, nid}))
            goto done;
    }
    while (hp.n) {
        mcand top = heap_pop(&hp);
        sym *cur = &s.v[top.pos];
        if (cur->gone || cur->next < 0) continue;
        sym *right = &s.v[cur->next];
        uint32_t rank;
        int32_t nid;
        if (!merge_find(h, cur->id, right->id, &rank, &nid) || nid != top.nid) continue; /* stale */
        cur->id = top.nid;
        cur->cb = right->cb;
        right->gone = true;
        cur->next = right->next;
        if (right->next >= 0) s.v[right->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 && merge_find(h, s.v[cur->prev].id, cur->id, &rank, &nid) &&
            !heap_push(&hp, (mcand){rank, (uint32_t)cur->prev, nid}))
            goto done;
        if (cur->next >= 0 && merge_find(h, cur->id, s.v[cur->next].id, &rank, &nid) &&
            !heap_push(&hp, (mcand){rank, top.pos, nid}))
            goto done;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (s.v[i].gone) continue;
        int64_t a, b;
        span_of(w, s.v[i].ca, s.v[i].cb, &a, &b);
        out_push(o, s.v[i].id, a, b);
    }
    ok = !o->oom;
done:
    vlmn_free(buf);
    vlmn_free(s.v);
    vlmn_free(hp.v);
    return ok;
}

/* ---- added tokens ---------------------------------------------------------------- */

typedef struct seg {
    size_t i, j;
    int32_t id; /* -1: text */
} seg;

typedef struct segs {
    seg *v;
    size_t n, cap;
    bool oom;
} segs;

static void seg_add(segs *s, size_t i, size_t j, int32_t id)
{
    if (s->oom) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        seg *nv = vlmn_realloc(s->v, cap * sizeof *nv);
        if (!nv) {
            s->oom = true;
            return;
        }
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = (seg){i, j, id};
}

/* Leftmost-longest matches of the added tokens with this `normalized` flag. */
static void split_added(const vlmn_hftok *h, const hf_str *s, bool normalized, segs *out)
{
    size_t start = 0;
    for (size_t i = 0; i < s->n;) {
        /* binary search for the first added token starting with s[i] */
        int32_t lo = 0, hi = h->n_added;
        while (lo < hi) {
            int32_t mid = (lo + hi) / 2;
            if (h->added[mid].cp[0] < s->cp[i]) lo = mid + 1;
            else hi = mid;
        }
        const hf_added *best = NULL;
        for (int32_t k = lo; k < h->n_added && h->added[k].cp[0] == s->cp[i]; k++) {
            const hf_added *a = &h->added[k];
            if (a->normalized != normalized || i + a->n > s->n || (best && a->n <= best->n)) continue;
            if (memcmp(a->cp, s->cp + i, a->n * sizeof *a->cp) == 0) best = a;
        }
        if (!best) {
            i++;
            continue;
        }
        size_t a = i, b = i + best->n;
        i = b;                    /* the matcher goes on after the match (non-overlapping) */
        if (a < start) continue;  /* inside what a previous rstrip took */
        if (best->single_word && ((a > 0 && hf_is_word(s->cp[a - 1])) || (b < s->n && hf_is_word(s->cp[b])))) continue;
        if (best->lstrip)
            while (a > start && hf_is_ws(s->cp[a - 1])) a--;
        if (best->rstrip)
            while (b < s->n && hf_is_ws(s->cp[b])) b++;
        if (a > start) seg_add(out, start, a, -1);
        seg_add(out, a, b, best->id);
        start = b;
    }
    if (start < s->n || s->n == 0) seg_add(out, start, s->n, -1);
}

/* ---- encode ------------------------------------------------------------------------ */

static bool encode_text(const vlmn_tok *t, const vlmn_hftok *h, hf_str *seg_text, bool origin, out_ids *o)
{
    hf_normalize(h->normalizer, seg_text);
    if (seg_text->oom) return false;
    segs ss = {0};
    split_added(h, seg_text, true, &ss);
    bool ok = !ss.oom;
    for (size_t k = 0; ok && k < ss.n; k++) {
        seg g = ss.v[k];
        if (g.id >= 0) {
            int64_t a, b;
            span_of(seg_text, g.i, g.j, &a, &b);
            out_push(o, g.id, a, b);
            continue;
        }
        if (g.j == g.i) continue;
        hf_str piece = {0};
        hf_str_append(&piece, seg_text, g.i, g.j);
        hf_words words = {0};
        hf_pre_tokenize(h->pre, &piece, origin && g.i == 0, &words);
        ok = !piece.oom && !words.oom;
        for (size_t w = 0; ok && w < words.n; w++) ok = bpe_word(t, h, &words.w[w], o);
        hf_words_free(&words);
        hf_str_free(&piece);
    }
    vlmn_free(ss.v);
    return ok && !o->oom;
}

vlmn_status hf_encode(const vlmn_tok *t, const vlmn_hftok *h, const char *text, size_t len, int flags,
                      int32_t **ids, int64_t **spans, int64_t *n)
{
    out_ids o = {0};
    hf_str raw = {0};
    segs ss = {0};
    bool ok = true;
    if (flags & VLMN_TOK_BOS)
        for (int i = 0; i < h->n_pre; i++) out_push(&o, h->pre_ids[i], 0, 0);
    hf_str_from_utf8(&raw, text, len);
    split_added(h, &raw, false, &ss);
    ok = !raw.oom && !ss.oom;
    for (size_t k = 0; ok && k < ss.n; k++) {
        seg g = ss.v[k];
        if (g.id >= 0) {
            int64_t a, b;
            span_of(&raw, g.i, g.j, &a, &b);
            out_push(&o, g.id, a, b);
            continue;
        }
        hf_str s = {0};
        hf_str_append(&s, &raw, g.i, g.j);
        ok = encode_text(t, h, &s, g.i == 0, &o);
        hf_str_free(&s);
    }
    if (flags & VLMN_TOK_EOS)
        for (int i = 0; i < h->n_post; i++) out_push(&o, h->post_ids[i], (int64_t)len, (int64_t)len);
    if (!o.ids) out_push(&o, 0, 0, 0), o.n = 0; /* always hand back an allocation */
    vlmn_free(ss.v);
    hf_str_free(&raw);
    if (!ok || o.oom) {
        vlmn_free(o.ids);
        vlmn_free(o.spans);
        return vlmn_error(VLMN_E_NOMEM, "tokenize: out of memory (text of %zu bytes)", len);
    }
    *ids = o.ids;
    if (spans) *spans = o.spans;
    else vlmn_free(o.spans);
    *n = o.n;
    return VLMN_OK;
}

/* ---- decode ------------------------------------------------------------------------ */

typedef struct toks {
    vlmn_buf *v;
    size_t n, cap;
    bool oom;
} toks;

static vlmn_buf *toks_add(toks *ts)
{
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 32;
        vlmn_buf *nv = vlmn_realloc(ts->v, cap * sizeof *nv);
        if (!nv) {
            ts->oom = true;
            return NULL;
        }
        ts->v = nv;
        ts->cap = cap;
    }
    vlmn_buf *b = &ts->v[ts->n++];
    memset(b, 0, sizeof *b);
    vlmn_buf_add(b, "", 0);
    return b;
}

static void toks_free(toks *ts)
{
    for (size_t i = 0; i < ts->n; i++) vlmn_free(ts->v[i].p);
    vlmn_free(ts->v);
    memset(ts, 0, sizeof *ts);
}

static bool utf8_strict(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = hf_utf8_get((const char *)p + i, n - i, &cp);
        if (cp == 0xFFFD && !(l == 3 && n - i >= 3 && memcmp(p + i, REPLACEMENT, 3) == 0)) return false;
        i += l;
    }
    return true;
}

/* String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD. */
static void utf8_lossy(vlmn_buf *o, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t need = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (need == 1) {
            vlmn_buf_add(o, p + i, 1);
            i++;
            continue;
        }
        if (!need) {
            vlmn_buf_add(o, REPLACEMENT, 3);
            i++;
            continue;
        }
        size_t k = 1;
        while (k < need && i + k < n) {
            unsigned x = p[i + k];
            unsigned lo = 0x80, hi = 0xBF;
            if (k == 1) {
                if (c == 0xE0) lo = 0xA0;
                else if (c == 0xED) hi = 0x9F;
                else if (c == 0xF0) lo = 0x90;
                else if (c == 0xF4) hi = 0x8F;
            }
            if (x < lo || x > hi) break;
            k++;
        }
        if (k == need) vlmn_buf_add(o, p + i, k);
        else vlmn_buf_add(o, REPLACEMENT, 3);
        i += k;
    }
}

static bool cp_eq_at(const char *p, size_t n, size_t i, const uint32_t *lit, size_t nl, size_t *blen)
{
    size_t j = i;
    for (size_t k = 0; k < nl; k++) {
        uint32_t c;
        size_t l = hf_utf8_get(p + j, n - j, &c);
        if (!l || c != lit[k]) return false;
        j += l;
    }
    *blen = j - i;
    return nl > 0;
}

/* Replace every occurrence of lit (code points) in b by rep bytes. */
static void buf_replace(vlmn_buf *b, const uint32_t *lit, size_t nl, const char *rep, size_t nrep)
{
    vlmn_buf o = {0};
    vlmn_buf_add(&o, "", 0);
    for (size_t i = 0; i < b->n;) {
        size_t bl;
        if (cp_eq_at(b->p, b->n, i, lit, nl, &bl)) {
            vlmn_buf_add(&o, rep, nrep);
            i += bl;
        } else {
            vlmn_buf_add(&o, b->p + i, 1);
            i++;
        }
    }
    vlmn_free(b->p);
    *b = o;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void decode_chain(const hf_node *d, toks *ts)
{
    switch (d->type) {
    case HF_D_SEQ:
        for (int i = 0; i < d->n_kids; i++) decode_chain(&d->kids[i], ts);
        return;
    case HF_D_REPLACE: {
        char rep[64];
        size_t nr = 0;
        for (size_t k = 0; k < d->n_str && nr + 4 <= sizeof rep; k++) nr += hf_utf8_put(d->str[k], rep + nr);
        for (size_t i = 0; i < ts->n; i++) buf_replace(&ts->v[i], d->pat.lit, d->pat.n, rep, nr);
        return;
    }
    case HF_D_BYTEFALLBACK: {
        toks o = {0};
        unsigned char *pend = vlmn_malloc(ts->n + 1);
        size_t np = 0;
        if (!pend) {
            ts->oom = true;
            return;
        }
        for (size_t i = 0; i <= ts->n; i++) {
            const vlmn_buf *b = i < ts->n ? &ts->v[i] : NULL;
            if (b && b->n == 6 && memcmp(b->p, "<0x", 3) == 0 && b->p[5] == '>' && hexv(b->p[3]) >= 0 &&
                hexv(b->p[4]) >= 0) {
                pend[np++] = (unsigned char)(hexv(b->p[3]) * 16 + hexv(b->p[4]));
                continue;
            }
            if (np) {
                if (utf8_strict(pend, np)) {
                    vlmn_buf *x = toks_add(&o);
                    if (x) vlmn_buf_add(x, pend, np);
                } else {
                    for (size_t k = 0; k < np; k++) {
                        vlmn_buf *x = toks_add(&o);
                        if (x) vlmn_buf_add(x, REPLACEMENT, 3);
                    }
                }
                np = 0;
            }
            if (b) {
                vlmn_buf *x = toks_add(&o);
                if (x) vlmn_buf_add(x, b->p, b->n);
            }
        }
        vlmn_free(pend);
        bool oom = o.oom || ts->oom;
        toks_free(ts);
        *ts = o;
        ts->oom = oom;
        return;
    }
    case HF_D_FUSE: {
        if (ts->n <= 1) return;
        for (size_t i = 1; i < ts->n; i++) {
            vlmn_buf_add(&ts->v[0], ts->v[i].p, ts->v[i].n);
            vlmn_free(ts->v[i].p);
        }
        ts->n = 1;
        return;
    }
    case HF_D_STRIP: {
        uint32_t c = d->n_str ? d->str[0] : ' ';
        for (size_t i = 0; i < ts->n; i++) {
            vlmn_buf *b = &ts->v[i];
            size_t a = 0, e = b->n, bl;
            for (int k = 0; k < d->start && cp_eq_at(b->p, e, a, &c, 1, &bl); k++) a += bl;
            for (int k = 0; k < d->stop && e > a; k++) {
                size_t j = e - 1;
                while (j > a && ((unsigned char)b->p[j] & 0xC0) == 0x80) j--;
                if (!cp_eq_at(b->p, e, j, &c, 1, &bl) || j + bl != e) break;
                e = j;
            }
            memmove(b->p, b->p + a, e - a);
            b->n = e - a;
            b->p[b->n] = '\0';
        }
        return;
    }
    case HF_D_METASPACE: {
        uint32_t rep = d->pat.n ? d->pat.lit[0] : 0x2581;
        for (size_t i = 0; i < ts->n; i++)
            buf_replace(&ts->v[i], &rep, 1, " ", i == 0 && d->scheme != HF_SCHEME_NEVER ? 0 : 1);
        return;
    }
    case HF_D_BYTELEVEL: {
        vlmn_buf raw = {0};
        vlmn_buf_add(&raw, "", 0);
        for (size_t i = 0; i < ts->n; i++) {
            const vlmn_buf *b = &ts->v[i];
            bool all = true;
            for (size_t j = 0; j < b->n && all;) {
                uint32_t c;
                size_t l = hf_utf8_get(b->p + j, b->n - j, &c);
                all = hf_char_byte(c) >= 0;
                j += l;
            }
            if (!all) {
                vlmn_buf_add(&raw, b->p, b->n);
                continue;
            }
            for (size_t j = 0; j < b->n;) {
                uint32_t c;
                size_t l = hf_utf8_get(b->p + j, b->n - j, &c);
                unsigned char x = (unsigned char)hf_char_byte(c);
                vlmn_buf_add(&raw, &x, 1);
                j += l;
            }
        }
        vlmn_buf o = {0};
        vlmn_buf_add(&o, "", 0);
        utf8_lossy(&o, (const unsigned char *)raw.p, raw.n);
        if (raw.oom) o.oom = true;
        vlmn_free(raw.p);
        for (size_t i = 0; i < ts->n; i++) vlmn_free(ts->v[i].p);
        ts->n = 1;
        ts->v[0] = o;
        return;
    }
    case HF_D_BPE: {
        for (size_t i = 0; i < ts->n; i++)
            buf_replace(&ts->v[i], d->str, d->n_str, " ", i + 1 == ts->n ? 0 : 1);
        return;
    }
    }
}

vlmn_status hf_decode(const vlmn_tok *t, const vlmn_hftok *h, const int32_t *ids, int64_t n, char **text,
                      size_t *len)
{
    toks ts = {0};
    for (int64_t i = 0; i < n; i++) {
        if (h->is_special[ids[i]]) continue;
        size_t pl;
        const char *p = vlmn_tok_piece(t, ids[i], &pl);
        vlmn_buf *b = toks_add(&ts);
        if (b) vlmn_buf_add(b, p, pl);
    }
    if (h->decoder && ts.n) decode_chain(h->decoder, &ts);
    vlmn_buf o = {0};
    vlmn_buf_add(&o, "", 0);
    for (size_t i = 0; i < ts.n; i++) {
        if (i && !h->decoder) vlmn_buf_add(&o, " ", 1);
        vlmn_buf_add(&o, ts.v[i].p, ts.v[i].n);
        if (ts.v[i].oom) o.oom = true;
    }
    bool oom = ts.oom || o.oom;
    toks_free(&ts);
    if (oom) {
        vlmn_free(o.p);
        return vlmn_error(VLMN_E_NOMEM, "detokenize: out of memory");
    }
    *text = o.p;
    if (len) *len = o.n;
    return VLMN_OK;
}
