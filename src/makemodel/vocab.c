/* BPE vocabulary training for generated models, following spm_train's BPE trainer:
 * words are whitespace-separated with a U+2581 prefix, every corpus character is a
 * required piece, the most frequent adjacent pair (weighted by word frequency) is merged
 * repeatedly, merged piece k gets score -k and the characters follow with continuing
 * scores. Pieces never mix letters with punctuation, never contain digits (LLaMA's
 * split_digits) and carry U+2581 only in front, as spm's IsValidSentencePiece. */
#include "makemodel/vocab.h"
#include "makemodel/rng.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIECE_CHARS 16 /* spm's max_sentencepiece_length default */
#define WS "\xe2\x96\x81"  /* U+2581 */

enum { CLS_NONE = 0, CLS_LETTER = 1, CLS_DIGIT = 2, CLS_PUNCT = 3 };

typedef struct sym {
    char *str;
    int len_chars;
    int starts_ws;
    int cls;       /* class of the characters after the optional U+2581 */
    int has_digit;
} sym;

/* String -> id map (open addressing, FNV-1a). */
typedef struct strmap { char **keys; int32_t *vals; size_t cap, n; } strmap;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int32_t strmap_get(const strmap *m, const char *k)
{
    if (!m->cap) return -1;
    for (size_t i = fnv(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i]) return -1;
        if (!strcmp(m->keys[i], k)) return m->vals[i];
    }
}

/* Stores the pointer `k` (not a copy): keys live in the symbol/word tables. */
static vlmn_status strmap_put(strmap *m, char *k, int32_t v)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        char **nk = vlmn_calloc(nc, sizeof *nk);
        int32_t *nv = vlmn_calloc(nc, sizeof *nv);
        if (!nk || !nv) {
            vlmn_free(nk);
            vlmn_free(nv);
            return vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t j = fnv(m->keys[i]) & (nc - 1);
            while (nk[j]) j = (j + 1) & (nc - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        vlmn_free(m->keys);
        vlmn_free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = nc;
    }
    size_t i = fnv(k) & (m->cap - 1);
    while (m->keys[i]) i = (i + 1) & (m->cap - 1);
    m->keys[i] = k;
    m->vals[i] = v;
    m->n++;
    return VLMN_OK;
}

static void strmap_free(strmap *m)
{
    vlmn_free(m->keys);
    vlmn_free(m->vals);
}

typedef struct word { int32_t *syms; int n; int64_t freq; } word;

typedef struct trainer {
    sym *syms;
    int32_t n_syms, cap_syms;
    strmap sym_ids;
    word *words;
    int32_t n_words;
    int64_t *char_freq; /* [n_syms] while collecting characters */
} trainer;

static int utf8_len(unsigned char c)
{
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) return 2;
    if ((c & 0xf0) == 0xe0) return 3;
    if ((c & 0xf8) == 0xf0) return 4;
    return 1;
}

static int char_class(const char *c, int len)
{
    unsigned char b = (unsigned char)c[0];
    if (len == 3 && !memcmp(c, WS, 3)) return CLS_NONE;
    if (len > 1) return CLS_LETTER; /* non-ASCII letters (the corpus has no other) */
    if (b >= '0' && b <= '9') return CLS_DIGIT;
    if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')) return CLS_LETTER;
    return CLS_PUNCT;
}

/* Id of the symbol spelled `s` (len bytes), created when new. */
static vlmn_status sym_intern(trainer *t, const char *s, size_t len, int32_t *id)
{
    char *str = vlmn_strndup(s, len);
    if (!str) return vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
    int32_t found = strmap_get(&t->sym_ids, str);
    if (found >= 0) {
        vlmn_free(str);
        *id = found;
        return VLMN_OK;
    }
    if (t->n_syms == t->cap_syms) {
        int32_t nc = t->cap_syms ? t->cap_syms * 2 : 512;
        sym *ns = vlmn_realloc(t->syms, (size_t)nc * sizeof *ns);
        int64_t *nf = vlmn_realloc(t->char_freq, (size_t)nc * sizeof *nf);
        if (ns) t->syms = ns;
        if (nf) t->char_freq = nf;
        if (!ns || !nf) {
            vlmn_free(str);
            return vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
        }
        t->cap_syms = nc;
    }
    sym *y = &t->syms[t->n_syms];
    memset(y, 0, sizeof *y);
    y->str = str;
    int cls = CLS_NONE;
    for (size_t i = 0; i < len;) {
        int l = utf8_len((unsigned char)s[i]);
        if (i + (size_t)l > len) l = (int)(len - i);
        int c = char_class(s + i, l);
        if (i == 0 && c == CLS_NONE) y->starts_ws = 1;
        if (c == CLS_DIGIT) y->has_digit = 1;
        if (c != CLS_NONE && cls == CLS_NONE) cls = c;
        y->len_chars++;
        i += (size_t)l;
    }
    y->cls = cls;
    t->char_freq[t->n_syms] = 0;
    vlmn_status st = strmap_put(&t->sym_ids, str, t->n_syms);
    if (st) {
        vlmn_free(str);
        return st;
    }
    *id = t->n_syms++;
    return VLMN_OK;
}

static bool merge_ok(const trainer *t, int32_t a, int32_t b)
{
    const sym *x = &t->syms[a], *y = &t->syms[b];
    if (y->starts_ws || x->has_digit || y->has_digit) return false;
    if (x->len_chars + y->len_chars > MAX_PIECE_CHARS) return false;
    return x->cls == CLS_NONE || y->cls == CLS_NONE || x->cls == y->cls;
}

/* Split the corpus into unique words ("\u2581word"), counting each word and character. */
static vlmn_status load_words(trainer *t, const char *corpus)
{
    strmap wmap = {0};
    char **wkeys = NULL;
    int32_t cap_words = 0;
    vlmn_status st = VLMN_OK;
    const char *p = corpus;
    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ' ' && *e != '\n' && *e != '\t' && *e != '\r') e++;
        size_t wl = (size_t)(e - p);
        char *w = vlmn_malloc(wl + 4);
        if (!w) {
            st = vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
            goto done;
        }
        memcpy(w, WS, 3);
        memcpy(w + 3, p, wl);
        w[wl + 3] = 0;
        p = e;
        int32_t wi = strmap_get(&wmap, w);
        if (wi >= 0) {
            t->words[wi].freq++;
            vlmn_free(w);
            continue;
        }
        if (t->n_words == cap_words) {
            int32_t nc = cap_words ? cap_words * 2 : 256;
            word *nw = vlmn_realloc(t->words, (size_t)nc * sizeof *nw);
            char **nk = vlmn_realloc(wkeys, (size_t)nc * sizeof *nk);
            if (nw) t->words = nw;
            if (nk) wkeys = nk;
            if (!nw || !nk) {
                vlmn_free(w);
                st = vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
                goto done;
            }
            cap_words = nc;
        }
        word *wd = &t->words[t->n_words];
        wkeys[t->n_words] = w;
        wd->freq = 1;
        wd->n = 0;
        wd->syms = vlmn_malloc((wl + 1) * sizeof *wd->syms);
        if (!wd->syms) {
            vlmn_free(w);
            st = vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
            goto done;
        }
        t->n_words++;
        for (size_t i = 0; w[i];) {
            int l = utf8_len((unsigned char)w[i]);
            int32_t id;
            if ((st = sym_intern(t, w + i, (size_t)l, &id))) goto done;
            wd->syms[wd->n++] = id;
            i += (size_t)l;
        }
        if ((st = strmap_put(&wmap, w, t->n_words - 1))) goto done;
    }
    for (int32_t i = 0; i < t->n_words; i++)
        for (int j = 0; j < t->words[i].n; j++) t->char_freq[t->words[i].syms[j]] += t->words[i].freq;
done:
    for (int32_t i = 0; i < t->n_words; i++) vlmn_free(wkeys[i]);
    vlmn_free(wkeys);
    strmap_free(&wmap);
    return st;
}

static void trainer_free(trainer *t)
{
    for (int32_t i = 0; i < t->n_syms; i++) vlmn_free(t->syms[i].str);
    vlmn_free(t->syms);
    vlmn_free(t->char_freq);
    for (int32_t i = 0; i < t->n_words; i++) vlmn_free(t->words[i].syms);
    vlmn_free(t->words);
    strmap_free(&t->sym_ids);
}

/* Pair counts for one iteration (open addressing; `stamp` avoids clearing). */
typedef struct pairtab { uint64_t *keys; int64_t *counts; uint32_t *stamps; size_t cap; } pairtab;

static int64_t *pair_slot(pairtab *pt, uint64_t key, uint32_t stamp)
{
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 20) & (pt->cap - 1);
    for (;; i = (i + 1) & (pt->cap - 1)) {
        if (pt->stamps[i] != stamp) {
            pt->stamps[i] = stamp;
            pt->keys[i] = key;
            pt->counts[i] = 0;
            return &pt->counts[i];
        }
        if (pt->keys[i] == key) return &pt->counts[i];
    }
}

/* Char symbol order for the tail of the vocabulary: frequency desc, then bytes asc. */
static int cmp_chars(const void *pa, const void *pb, void *ctx)
{
    const trainer *sort_ctx = ctx;
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    int64_t fa = sort_ctx->char_freq[a], fb = sort_ctx->char_freq[b];
    if (fa != fb) return fa > fb ? -1 : 1;
    return strcmp(sort_ctx->syms[a].str, sort_ctx->syms[b].str);
}

int32_t vlmn_mm_vocab_min_size(void)
{
    trainer t = {0};
    int32_t n = -1;
    if (load_words(&t, vlmn_mm_corpus()) == VLMN_OK) n = 3 + 256 + t.n_syms;
    trainer_free(&t);
    return n;
}

void vlmn_mm_vocab_free(vlmn_mm_vocab *v)
{
    if (!v) return;
    if (v->pieces)
        for (int32_t i = 0; i < v->n; i++) vlmn_free(v->pieces[i]);
    vlmn_free(v->pieces);
    vlmn_free(v->scores);
    vlmn_free(v->types);
    vlmn_free(v);
}

int32_t vlmn_mm_vocab_find(const vlmn_mm_vocab *v, const char *piece)
{
    for (int32_t i = 0; i < v->n; i++)
        if (!strcmp(v->pieces[i], piece)) return i;
    return -1;
}

#define PAD_MAX_HEAD 9

/* Padding tails: short lower-case ASCII pieces, so padded words look like words. */
static bool is_lower_tail(const sym *y)
{
    if (y->starts_ws || y->len_chars > 3) return false;
    for (const char *c = y->str; *c; c++)
        if (*c < 'a' || *c > 'z') return false;
    return true;
}

/* Further merges once the corpus is exhausted: join a random letter piece (or the bare
 * word-start) with a short random letter piece, keeping only new valid pieces. */
static vlmn_status pad_merges(trainer *t, int32_t *merged, int32_t *n_merged, int32_t want)
{
    mm_rng r;
    mm_rng_seed(&r, 0x766c6d6e766f6361ULL, 1, 0);
    int32_t *heads = vlmn_malloc((size_t)(t->n_syms + want) * sizeof *heads);
    int32_t *tails = vlmn_malloc((size_t)(t->n_syms + want) * sizeof *tails);
    int32_t n_heads = 0, n_tails = 0;
    vlmn_status st = VLMN_OK;
    if (!heads || !tails) {
        st = vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
        goto done;
    }
    for (int32_t i = 0; i < t->n_syms; i++) {
        const sym *y = &t->syms[i];
        if (y->cls != CLS_LETTER && !(y->starts_ws && y->len_chars == 1)) continue;
        if (y->has_digit || y->len_chars > PAD_MAX_HEAD) continue;
        heads[n_heads++] = i;
        if (is_lower_tail(y)) tails[n_tails++] = i;
    }
    if (!n_heads || !n_tails) {
        st = vlmn_error(VLMN_E_INTERNAL, "vocabulary: corpus has no letters to pad with");
        goto done;
    }
    int misses = 0;
    char buf[128];
    while (*n_merged < want) {
        int32_t a = heads[mm_rng_below(&r, (uint64_t)n_heads)];
        int32_t b = tails[mm_rng_below(&r, (uint64_t)n_tails)];
        if (!merge_ok(t, a, b) || (size_t)snprintf(buf, sizeof buf, "%s%s", t->syms[a].str, t->syms[b].str) >= sizeof buf ||
            strmap_get(&t->sym_ids, buf) >= 0) {
            if (++misses > 1000000) {
                st = vlmn_error(VLMN_E_INTERNAL, "vocabulary: cannot find %d more merges", want - *n_merged);
                goto done;
            }
            continue;
        }
        misses = 0;
        int32_t id;
        if ((st = sym_intern(t, buf, strlen(buf), &id))) goto done;
        merged[(*n_merged)++] = id;
        if (t->syms[id].len_chars <= PAD_MAX_HEAD) heads[n_heads++] = id;
        if (is_lower_tail(&t->syms[id])) tails[n_tails++] = id;
    }
done:
    vlmn_free(heads);
    vlmn_free(tails);
    return st;
}

vlmn_status vlmn_mm_vocab_build(int32_t n, vlmn_mm_vocab **out)
{
    *out = NULL;
    trainer t = {0};
    pairtab pt = {0};
    int32_t *merged = NULL, *chars = NULL;
    vlmn_mm_vocab *v = NULL;
    vlmn_status st;
    if ((st = load_words(&t, vlmn_mm_corpus()))) goto fail;
    int32_t n_chars = t.n_syms; /* right after load_words every symbol is a character */
    int32_t want = n - 3 - 256 - n_chars;
    if (n <= 0 || want < 0) {
        st = vlmn_error(VLMN_E_ARG, "vocabulary size %d too small: need at least %d (3 control + 256 byte + %d character pieces)",
                        n, 3 + 256 + n_chars, n_chars);
        goto fail;
    }
    chars = vlmn_malloc((size_t)(n_chars ? n_chars : 1) * sizeof *chars);
    merged = vlmn_malloc((size_t)(want ? want : 1) * sizeof *merged);
    size_t positions = 0;
    for (int32_t i = 0; i < t.n_words; i++) positions += (size_t)t.words[i].n;
    pt.cap = 1;
    while (pt.cap < positions * 2 + 16) pt.cap *= 2;
    pt.keys = vlmn_malloc(pt.cap * sizeof *pt.keys);
    pt.counts = vlmn_malloc(pt.cap * sizeof *pt.counts);
    pt.stamps = vlmn_calloc(pt.cap, sizeof *pt.stamps);
    if (!chars || !merged || !pt.keys || !pt.counts || !pt.stamps) {
        st = vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < n_chars; i++) chars[i] = i;
    qsort_r(chars, (size_t)n_chars, sizeof *chars, cmp_chars, &t);

    /* Corpus merges: recount every pair each round (the corpus is small). */
    int32_t n_merged = 0;
    for (uint32_t stamp = 1; n_merged < want; stamp++) {
        for (int32_t i = 0; i < t.n_words; i++) {
            const word *w = &t.words[i];
            for (int j = 0; j + 1 < w->n; j++)
                *pair_slot(&pt, (uint64_t)w->syms[j] << 32 | (uint32_t)w->syms[j + 1], stamp) += w->freq;
        }
        int64_t best = 0;
        uint64_t best_key = 0;
        for (size_t i = 0; i < pt.cap; i++) {
            if (pt.stamps[i] != stamp || pt.counts[i] < best) continue;
            if (pt.counts[i] == best && pt.keys[i] > best_key) continue;
            int32_t a = (int32_t)(pt.keys[i] >> 32), b = (int32_t)(uint32_t)pt.keys[i];
            if (!merge_ok(&t, a, b)) continue;
            best = pt.counts[i];
            best_key = pt.keys[i];
        }
        if (!best) break;
        int32_t a = (int32_t)(best_key >> 32), b = (int32_t)(uint32_t)best_key;
        char buf[128];
        snprintf(buf, sizeof buf, "%s%s", t.syms[a].str, t.syms[b].str);
        int32_t id;
        if ((st = sym_intern(&t, buf, strlen(buf), &id))) goto fail;
        merged[n_merged++] = id;
        for (int32_t i = 0; i < t.n_words; i++) {
            word *w = &t.words[i];
            int k = 0;
            for (int j = 0; j < w->n; j++) {
                if (j + 1 < w->n && w->syms[j] == a && w->syms[j + 1] == b) {
                    w->syms[k++] = id;
                    j++;
                } else {
                    w->syms[k++] = w->syms[j];
                }
            }
            w->n = k;
        }
    }
    int32_t n_corpus = n_merged;
    if (n_merged < want && (st = pad_merges(&t, merged, &n_merged, want))) goto fail;

    v = vlmn_calloc(1, sizeof *v);
    if (!v) goto nomem;
    v->n = n;
    v->pieces = vlmn_calloc((size_t)n, sizeof *v->pieces);
    v->scores = vlmn_calloc((size_t)n, sizeof *v->scores);
    v->types = vlmn_calloc((size_t)n, sizeof *v->types);
    if (!v->pieces || !v->scores || !v->types) goto nomem;
    static const char *const meta[3] = {"<unk>", "<s>", "</s>"};
    int32_t k = 0;
    for (int i = 0; i < 3; i++, k++) {
        if (!(v->pieces[k] = vlmn_strdup(meta[i]))) goto nomem;
        v->types[k] = i == 0 ? MM_TOK_UNKNOWN : MM_TOK_CONTROL;
    }
    for (int i = 0; i < 256; i++, k++) {
        char b[8];
        snprintf(b, sizeof b, "<0x%02X>", i);
        if (!(v->pieces[k] = vlmn_strdup(b))) goto nomem;
        v->types[k] = MM_TOK_BYTE;
    }
    int32_t rank = 0;
    for (int32_t i = 0; i < n_merged; i++, k++, rank++) {
        if (!(v->pieces[k] = vlmn_strdup(t.syms[merged[i]].str))) goto nomem;
        v->scores[k] = -(float)rank;
        v->types[k] = MM_TOK_NORMAL;
    }
    for (int32_t i = 0; i < n_chars; i++, k++, rank++) {
        if (!(v->pieces[k] = vlmn_strdup(t.syms[chars[i]].str))) goto nomem;
        v->scores[k] = -(float)rank;
        v->types[k] = MM_TOK_NORMAL;
    }
    VLMN_ASSERT(k == n);
    v->n_merges = n_merged;
    v->n_corpus_merges = n_corpus;
    *out = v;
    v = NULL;
    st = VLMN_OK;
    goto done;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "vocabulary: out of memory");
fail:
done:
    vlmn_mm_vocab_free(v);
    vlmn_free(pt.keys);
    vlmn_free(pt.counts);
    vlmn_free(pt.stamps);
    vlmn_free(merged);
    vlmn_free(chars);
    trainer_free(&t);
    return st;
}
