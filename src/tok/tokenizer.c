/* SentencePiece BPE encoder/decoder over a LLaMA-style vocabulary. Reproduces
 * sentencepiece 0.1.97 (normalizer.cc with the identity rule, bpe_model.cc,
 * sentencepiece_processor.cc): text -> normalised string -> characters -> score-ordered
 * merges (binary heap + linked list, O(n log n)) -> byte fallback / unknown runs. */
#include "vlmn/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "tok/hf.h"

#define SPACE_SYM "\xe2\x96\x81" /* U+2581, what sentencepiece writes for ' ' */
#define SPACE_SYM_LEN 3
#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define UNK_SURFACE " \xe2\x81\x87 " /* sentencepiece's kDefaultUnknownSymbol " ⁇ " */
/* Symbol indexes are int32 and every input byte can become 3 normalised bytes. */
#define VLMN_TOK_MAX_TEXT ((size_t)INT32_MAX / 4)

/* Open-addressing hash set of piece ids keyed by piece bytes. */
typedef struct piece_table {
    int32_t *slots; /* -1 empty */
    uint64_t mask;
} piece_table;

struct vlmn_tok {
    int32_t n_vocab;
    char *blob;          /* all pieces, each NUL-terminated */
    uint64_t *off;       /* [n_vocab] into blob */
    uint32_t *len;       /* [n_vocab] */
    float *scores;       /* [n_vocab] */
    uint8_t *types;      /* [n_vocab] vlmn_tok_type */
    piece_table normal;  /* NORMAL, USER_DEFINED, UNUSED: sentencepiece's pieces_ */
    piece_table reserved; /* the others: reserved_id_map_ */
    piece_table user;    /* USER_DEFINED only (the prefix matcher's dictionary) */
    uint32_t *ud_lens;   /* distinct user-defined piece lengths, longest first */
    int32_t n_ud_lens;
    int32_t byte_id[256];
    bool byte_fallback, has_unused;
    int32_t bos, eos, unk;
    bool add_bos, add_eos, add_space_prefix;
    vlmn_hftok *hf; /* tokenizer.json pipeline (hf_*.c) instead of SentencePiece */
};

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static const char *piece_of(const vlmn_tok *t, int32_t id) { return t->blob + t->off[id]; }

static vlmn_status table_init(piece_table *pt, int32_t n_entries)
{
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n_entries + 1) cap <<= 1;
    pt->slots = vlmn_malloc(cap * sizeof *pt->slots);
    if (!pt->slots) return vlmn_error(VLMN_E_NOMEM, "tokenizer: out of memory");
    memset(pt->slots, 0xff, cap * sizeof *pt->slots);
    pt->mask = cap - 1;
    return VLMN_OK;
}

static int32_t table_find(const vlmn_tok *t, const piece_table *pt, const char *s, size_t n)
{
    if (!pt->slots) return -1;
    for (uint64_t h = hash_bytes(s, n) & pt->mask;; h = (h + 1) & pt->mask) {
        int32_t id = pt->slots[h];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(piece_of(t, id), s, n) == 0) return id;
    }
}

/* Insert unless the piece is already there (first id wins). */
static void table_insert(vlmn_tok *t, piece_table *pt, int32_t id)
{
    const char *s = piece_of(t, id);
    size_t n = t->len[id];
    for (uint64_t h = hash_bytes(s, n) & pt->mask;; h = (h + 1) & pt->mask) {
        int32_t o = pt->slots[h];
        if (o < 0) {
            pt->slots[h] = id;
            return;
        }
        if (t->len[o] == n && memcmp(piece_of(t, o), s, n) == 0) return;
    }
}

/* Length of the valid UTF-8 character at s (n > 0 bytes available), or 0 if the bytes
 * there are not valid UTF-8 -- sentencepiece's DecodeUTF8: no overlongs, no
 * surrogates, nothing above U+10FFFF. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
#define TRAIL(x) (((x) & 0xC0) == 0x80)
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        unsigned cp = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        return TRAIL(s[1]) && cp >= 0x80 ? 2 : 0;
    }
    if (n >= 3 && (c & 0xF0) == 0xE0) {
        unsigned cp = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return TRAIL(s[1]) && TRAIL(s[2]) && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000) ? 3 : 0;
    }
    if (n >= 4 && (c & 0xF8) == 0xF0) {
        unsigned cp = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return TRAIL(s[1]) && TRAIL(s[2]) && TRAIL(s[3]) && cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
    }
#undef TRAIL
    return 0;
}

/* sentencepiece's OneCharLen: the length the lead byte announces. */
static size_t one_char_len(unsigned char c)
{
    static const unsigned char tab[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return tab[c >> 4];
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xNN>" (upper-case hex, as sentencepiece's ByteToPiece writes) -> NN, else -1. */
static int byte_piece_value(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* ---- construction ------------------------------------------------------------- */

static int cmp_u32_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void vlmn_tok_free(vlmn_tok *t)
{
    if (!t) return;
    vlmn_free(t->blob);
    vlmn_free(t->off);
    vlmn_free(t->len);
    vlmn_free(t->scores);
    vlmn_free(t->types);
    vlmn_free(t->normal.slots);
    vlmn_free(t->reserved.slots);
    vlmn_free(t->user.slots);
    vlmn_free(t->ud_lens);
    hf_tok_free(t->hf);
    vlmn_free(t);
}

void vlmn_tok_attach_hf(vlmn_tok *t, vlmn_hftok *h, int32_t unk)
{
    t->hf = h;
    t->unk = unk;
}

const vlmn_hftok *vlmn_tok_hf(const vlmn_tok *t) { return t->hf; }

bool vlmn_tok_is_hf(const vlmn_tok *t) { return t && t->hf; }

vlmn_status vlmn_tok_create(const vlmn_tok_vocab *v, vlmn_tok **out)
{
    vlmn_status st = VLMN_OK;
    vlmn_tok *t = NULL;
    *out = NULL;
    if (!v || v->n_vocab <= 0 || v->n_vocab >= INT32_MAX || !v->tokens)
        return vlmn_error(VLMN_E_ARG, "tokenizer: empty or invalid vocabulary");
    int32_t n = v->n_vocab;
    t = vlmn_calloc(1, sizeof *t);
    if (!t) return vlmn_error(VLMN_E_NOMEM, "tokenizer: out of memory");
    t->n_vocab = n;
    t->off = vlmn_malloc((size_t)n * sizeof *t->off);
    t->len = vlmn_malloc((size_t)n * sizeof *t->len);
    t->scores = vlmn_malloc((size_t)n * sizeof *t->scores);
    t->types = vlmn_malloc((size_t)n);
    if (!t->off || !t->len || !t->scores || !t->types) goto nomem;

    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!v->tokens[i]) {
            st = vlmn_error(VLMN_E_ARG, "tokenizer: token %d is NULL", (int)i);
            goto fail;
        }
        uint64_t l = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
        if (l > UINT32_MAX / 2) {
            st = vlmn_error(VLMN_E_RANGE, "tokenizer: token %d is %llu bytes long", (int)i,
                            (unsigned long long)l);
            goto fail;
        }
        t->off[i] = total;
        t->len[i] = (uint32_t)l;
        if (!vlmn_add_ok(total, l + 1, &total)) goto nomem;
    }
    if (total > SIZE_MAX) goto nomem;
    t->blob = vlmn_malloc((size_t)total);
    if (!t->blob) goto nomem;
    for (int32_t i = 0; i < n; i++) {
        memcpy(t->blob + t->off[i], v->tokens[i], t->len[i]);
        t->blob[t->off[i] + t->len[i]] = '\0';
        t->scores[i] = v->scores ? v->scores[i] : 0.0f;
        int32_t ty = v->types ? v->types[i] : VLMN_TOKT_NORMAL;
        t->types[i] = (ty >= VLMN_TOKT_NORMAL && ty <= VLMN_TOKT_BYTE) ? (uint8_t)ty
                                                                       : VLMN_TOKT_NORMAL;
    }

    int32_t n_normal = 0, n_reserved = 0, n_user = 0;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    for (int32_t i = 0; i < n; i++) {
        switch (t->types[i]) {
        case VLMN_TOKT_USER_DEFINED: n_user++; n_normal++; break;
        case VLMN_TOKT_UNUSED: t->has_unused = true; n_normal++; break;
        case VLMN_TOKT_NORMAL: n_normal++; break;
        default: n_reserved++; break;
        }
        if (t->types[i] == VLMN_TOKT_BYTE) {
            int b = byte_piece_value(piece_of(t, i), t->len[i]);
            if (b < 0) {
                st = vlmn_error(VLMN_E_FORMAT, "tokenizer: byte token %d is not <0xNN>", (int)i);
                goto fail;
            }
            if (t->byte_id[b] < 0) t->byte_id[b] = i;
            t->byte_fallback = true;
        }
    }
    if ((st = table_init(&t->normal, n_normal)) || (st = table_init(&t->reserved, n_reserved)))
        goto fail;
    if (n_user && (st = table_init(&t->user, n_user))) goto fail;
    if (n_user) {
        t->ud_lens = vlmn_malloc((size_t)n_user * sizeof *t->ud_lens);
        if (!t->ud_lens) goto nomem;
    }
    for (int32_t i = 0; i < n; i++) {
        uint8_t ty = t->types[i];
        if (ty == VLMN_TOKT_NORMAL || ty == VLMN_TOKT_USER_DEFINED || ty == VLMN_TOKT_UNUSED)
            table_insert(t, &t->normal, i);
        else
            table_insert(t, &t->reserved, i);
        if (ty == VLMN_TOKT_USER_DEFINED && t->len[i] > 0) {
            table_insert(t, &t->user, i);
            t->ud_lens[t->n_ud_lens++] = t->len[i];
        }
    }
    if (t->n_ud_lens) { /* distinct lengths, longest first */
        qsort(t->ud_lens, (size_t)t->n_ud_lens, sizeof *t->ud_lens, cmp_u32_desc);
        int32_t k = 1;
        for (int32_t i = 1; i < t->n_ud_lens; i++)
            if (t->ud_lens[i] != t->ud_lens[k - 1]) t->ud_lens[k++] = t->ud_lens[i];
        t->n_ud_lens = k;
    }

    t->unk = v->unk_id;
    if (t->unk < 0)
        for (int32_t i = 0; i < n && t->unk < 0; i++)
            if (t->types[i] == VLMN_TOKT_UNKNOWN) t->unk = i;
    if (t->unk < 0 || t->unk >= n) {
        st = vlmn_error(VLMN_E_FORMAT, "tokenizer: no unknown token (unk id %d, %d tokens)",
                        (int)v->unk_id, (int)n);
        goto fail;
    }
    if (v->bos_id >= n || v->eos_id >= n || v->bos_id < -1 || v->eos_id < -1) {
        st = vlmn_error(VLMN_E_RANGE, "tokenizer: bos id %d / eos id %d out of range (%d tokens)",
                        (int)v->bos_id, (int)v->eos_id, (int)n);
        goto fail;
    }
    t->bos = v->bos_id;
    t->eos = v->eos_id;
    t->add_bos = v->add_bos && t->bos >= 0;
    t->add_eos = v->add_eos && t->eos >= 0;
    t->add_space_prefix = v->add_space_prefix;
    *out = t;
    return VLMN_OK;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "tokenizer: out of memory (%d tokens)", (int)n);
fail:
    vlmn_tok_free(t);
    return st;
}

/* ---- accessors ---------------------------------------------------------------- */

int32_t vlmn_tok_n_vocab(const vlmn_tok *t) { return t->n_vocab; }
int32_t vlmn_tok_bos(const vlmn_tok *t) { return t->bos; }
int32_t vlmn_tok_eos(const vlmn_tok *t) { return t->eos; }
int32_t vlmn_tok_unk(const vlmn_tok *t) { return t->unk; }
int vlmn_tok_default_flags(const vlmn_tok *t)
{
    return (t->add_bos ? VLMN_TOK_BOS : 0) | (t->add_eos ? VLMN_TOK_EOS : 0);
}

const char *vlmn_tok_piece(const vlmn_tok *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->len[id];
    return piece_of(t, id);
}

vlmn_tok_type vlmn_tok_token_type(const vlmn_tok *t, int32_t id)
{
    return id < 0 || id >= t->n_vocab ? (vlmn_tok_type)0 : (vlmn_tok_type)t->types[id];
}

float vlmn_tok_score(const vlmn_tok *t, int32_t id)
{
    return id < 0 || id >= t->n_vocab ? 0.0f : t->scores[id];
}

/* sentencepiece's PieceToId without the unk fallback: reserved pieces first. */
int32_t vlmn_tok_find(const vlmn_tok *t, const char *piece, size_t len)
{
    int32_t id = table_find(t, &t->reserved, piece, len);
    return id >= 0 ? id : table_find(t, &t->normal, piece, len);
}

/* ---- encoding ----------------------------------------------------------------- */

typedef struct symbol {
    int32_t prev, next; /* -1 at the ends */
    uint32_t start, len; /* bytes of the normalised string */
    bool freeze;        /* user-defined piece: never merged */
} symbol;

typedef struct pair {
    float score;
    int32_t left, right;
    uint32_t size; /* merged length when queued; stale if the symbols changed since */
} pair;

/* Heap order as sentencepiece's SymbolPairComparator: higher score first, then the
 * leftmost pair. */
static bool pair_before(const pair *a, const pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct heap {
    pair *v;
    size_t n, cap;
} heap;

static bool heap_push(heap *h, pair p)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        pair *nv = vlmn_realloc(h->v, cap * sizeof *nv);
        if (!nv) return false;
        h->v = nv;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = p;
    return true;
}

static pair heap_pop(heap *h)
{
    pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->v[c + 1], &h->v[c])) c++;
        if (!pair_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Growable output of ids and spans. */
typedef struct outbuf {
    int32_t *ids;
    int64_t *spans;
    int64_t n, cap;
} outbuf;

static bool out_push(outbuf *o, int32_t id, int64_t b, int64_t e)
{
    if (o->n == o->cap) {
        int64_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *ni = vlmn_realloc(o->ids, (size_t)cap * sizeof *ni);
        if (!ni) return false;
        o->ids = ni;
        int64_t *ns = vlmn_realloc(o->spans, (size_t)cap * 2 * sizeof *ns);
        if (!ns) return false;
        o->spans = ns;
        o->cap = cap;
    }
    o->ids[o->n] = id;
    o->spans[2 * o->n] = b;
    o->spans[2 * o->n + 1] = e;
    o->n++;
    return true;
}

typedef struct enc_state {
    const vlmn_tok *t;
    const char *norm;   /* normalised text */
    uint32_t *n2o;      /* [norm_len + 1] source offset of each normalised byte */
    symbol *sym;
    heap agenda;
    uint32_t *rev_left; /* [n_vocab] UNUSED pieces: length of the left part (0: none) */
} enc_state;

static bool maybe_add_pair(enc_state *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0 || s->sym[left].freeze || s->sym[right].freeze) return true;
    uint32_t size = s->sym[left].len + s->sym[right].len;
    int32_t id = table_find(s->t, &s->t->normal, s->norm + s->sym[left].start, size);
    if (id < 0) return true;
    pair p = {s->t->scores[id], left, right, size};
    if (!heap_push(&s->agenda, p)) return false;
    /* As bpe_model.cc: remember how an UNUSED piece was formed (last candidate wins). */
    if (s->rev_left && s->t->types[id] == VLMN_TOKT_UNUSED) s->rev_left[id] = s->sym[left].len;
    return true;
}

/* PieceToId with the unk fallback; *found says whether the piece exists. */
static int32_t piece_to_id(const vlmn_tok *t, const char *p, size_t n, bool *found)
{
    int32_t id = vlmn_tok_find(t, p, n);
    *found = id >= 0;
    return id >= 0 ? id : t->unk;
}

/* Emit the piece norm[b, b+n) as sentencepiece's Encode + PopulateSentencePieceText:
 * unknown pieces become byte tokens (byte fallback) or extend a preceding unknown. */
static bool emit_piece(enc_state *s, outbuf *o, uint32_t b, uint32_t n, bool *prev_unk)
{
    const vlmn_tok *t = s->t;
    bool found;
    int32_t id = piece_to_id(t, s->norm + b, n, &found);
    bool is_unk = !found || t->types[id] == VLMN_TOKT_UNKNOWN;
    int64_t ob = s->n2o[b], oe = s->n2o[b + n];
    if (is_unk && t->byte_fallback) {
        for (uint32_t i = 0; i < n; i++) {
            int32_t bid = t->byte_id[(unsigned char)s->norm[b + i]];
            if (!out_push(o, bid >= 0 ? bid : t->unk, ob, oe)) return false;
        }
    } else if (is_unk && *prev_unk && o->n > 0) {
        o->spans[2 * o->n - 1] = oe; /* merged into the previous unknown */
    } else if (!out_push(o, id, ob, oe)) {
        return false;
    }
    *prev_unk = is_unk;
    return true;
}

/* bpe_model.cc's resegment: an UNUSED piece is replaced by the two pieces it was
 * merged from, recursively. Iterative (explicit stack) so hostile vocabularies cannot
 * exhaust the C stack. */
static bool emit_resegmented(enc_state *s, outbuf *o, uint32_t b, uint32_t n, bool *prev_unk)
{
    uint32_t stack_b[64], stack_n[64];
    uint32_t *sb = stack_b, *sn = stack_n;
    size_t top = 0, cap = 64;
    bool ok = true;
    sb[top] = b;
    sn[top++] = n;
    while (top > 0 && ok) {
        uint32_t pb = sb[--top], pn = sn[top];
        bool found;
        int32_t id = piece_to_id(s->t, s->norm + pb, pn, &found);
        uint32_t ll = found && s->t->types[id] == VLMN_TOKT_UNUSED ? s->rev_left[id] : 0;
        if (ll == 0 || ll >= pn) {
            ok = emit_piece(s, o, pb, pn, prev_unk);
            continue;
        }
        if (top + 2 > cap) {
            size_t nc = cap * 2;
            uint32_t *nb = vlmn_malloc(nc * sizeof *nb), *nn = vlmn_malloc(nc * sizeof *nn);
            if (!nb || !nn) {
                vlmn_free(nb);
                vlmn_free(nn);
                ok = false;
                break;
            }
            memcpy(nb, sb, top * sizeof *nb);
            memcpy(nn, sn, top * sizeof *nn);
            if (sb != stack_b) {
                vlmn_free(sb);
                vlmn_free(sn);
            }
            sb = nb;
            sn = nn;
            cap = nc;
        }
        sb[top] = pb + ll; /* right part pushed first: the left one is emitted first */
        sn[top++] = pn - ll;
        sb[top] = pb;
        sn[top++] = ll;
    }
    if (sb != stack_b) {
        vlmn_free(sb);
        vlmn_free(sn);
    }
    return ok;
}

/* Normaliser (identity rule, remove_extra_whitespaces=false): optional dummy prefix,
 * ' ' -> U+2581, each invalid UTF-8 byte -> U+FFFD; everything else copied. */
static uint32_t normalize(const vlmn_tok *t, const char *text, uint32_t len, char *norm,
                          uint32_t *n2o)
{
    uint32_t k = 0;
    if (len == 0) return 0; /* sentencepiece: empty input, no dummy prefix */
    if (t->add_space_prefix) {
        memcpy(norm, SPACE_SYM, SPACE_SYM_LEN);
        n2o[0] = n2o[1] = n2o[2] = 0;
        k = SPACE_SYM_LEN;
    }
    for (uint32_t i = 0; i < len;) {
        const unsigned char *p = (const unsigned char *)text + i;
        size_t cl = utf8_valid_len(p, len - i);
        if (cl == 1 && *p == ' ') {
            memcpy(norm + k, SPACE_SYM, SPACE_SYM_LEN);
            n2o[k] = n2o[k + 1] = n2o[k + 2] = i;
            k += SPACE_SYM_LEN;
        } else if (cl == 0) {
            memcpy(norm + k, REPLACEMENT, 3);
            n2o[k] = n2o[k + 1] = n2o[k + 2] = i;
            k += 3;
            cl = 1;
        } else {
            for (size_t j = 0; j < cl; j++) {
                norm[k] = (char)p[j];
                n2o[k++] = i;
            }
        }
        i += (uint32_t)cl;
    }
    n2o[k] = len;
    return k;
}

/* sentencepiece's PrefixMatcher: the longest user-defined piece at norm[pos..], else
 * one character. */
static uint32_t prefix_match(const vlmn_tok *t, const char *norm, uint32_t rem, bool *freeze)
{
    for (int32_t i = 0; i < t->n_ud_lens; i++) {
        uint32_t l = t->ud_lens[i];
        if (l <= rem && table_find(t, &t->user, norm, l) >= 0) {
            *freeze = true;
            return l;
        }
    }
    *freeze = false;
    size_t l = one_char_len((unsigned char)norm[0]);
    return l < rem ? (uint32_t)l : rem;
}

vlmn_status vlmn_tok_encode_spans(const vlmn_tok *t, const char *text, size_t len, int flags,
                                  int32_t **ids, int64_t **spans, int64_t *n)
{
    vlmn_status st = VLMN_OK;
    enc_state s = {.t = t};
    outbuf o = {0};
    char *norm = NULL;
    *ids = NULL;
    if (spans) *spans = NULL;
    *n = 0;
    if (!text && len) return vlmn_error(VLMN_E_ARG, "tokenize: NULL text");
    if (len > VLMN_TOK_MAX_TEXT)
        return vlmn_error(VLMN_E_RANGE, "tokenize: text of %zu bytes is too long (max %zu)", len,
                          VLMN_TOK_MAX_TEXT);

    if (t->hf) return hf_encode(t, t->hf, text, len, flags, ids, spans, n);
    if ((flags & VLMN_TOK_BOS) && t->bos >= 0 && !out_push(&o, t->bos, 0, 0)) goto nomem;

    size_t cap = (size_t)len * 3 + SPACE_SYM_LEN + 1;
    norm = vlmn_malloc(cap);
    s.n2o = vlmn_malloc(cap * sizeof *s.n2o);
    if (!norm || !s.n2o) goto nomem;
    uint32_t nlen = normalize(t, text, (uint32_t)len, norm, s.n2o);
    s.norm = norm;

    if (nlen > 0) {
        s.sym = vlmn_malloc((size_t)nlen * sizeof *s.sym);
        if (!s.sym) goto nomem;
        if (t->has_unused) {
            s.rev_left = vlmn_calloc((size_t)t->n_vocab, sizeof *s.rev_left);
            if (!s.rev_left) goto nomem;
        }
        int32_t ns = 0;
        for (uint32_t pos = 0; pos < nlen;) {
            bool fr;
            uint32_t l = prefix_match(t, norm + pos, nlen - pos, &fr);
            s.sym[ns] = (symbol){ns - 1, pos + l < nlen ? ns + 1 : -1, pos, l, fr};
            ns++;
            pos += l;
        }
        for (int32_t i = 1; i < ns; i++)
            if (!maybe_add_pair(&s, i - 1, i)) goto nomem;

        while (s.agenda.n > 0) {
            pair top = heap_pop(&s.agenda);
            symbol *l = &s.sym[top.left], *r = &s.sym[top.right];
            if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue; /* stale */
            l->len += r->len;
            l->next = r->next;
            if (r->next >= 0) s.sym[r->next].prev = top.left;
            r->len = 0;
            if (!maybe_add_pair(&s, l->prev, top.left) || !maybe_add_pair(&s, top.left, l->next))
                goto nomem;
        }

        bool prev_unk = false;
        for (int32_t i = 0; i != -1; i = s.sym[i].next) {
            bool ok = t->has_unused
                          ? emit_resegmented(&s, &o, s.sym[i].start, s.sym[i].len, &prev_unk)
                          : emit_piece(&s, &o, s.sym[i].start, s.sym[i].len, &prev_unk);
            if (!ok) goto nomem;
        }
    }
    if ((flags & VLMN_TOK_EOS) && t->eos >= 0 && !out_push(&o, t->eos, (int64_t)len, (int64_t)len))
        goto nomem;
    if (!o.ids) { /* always hand back an allocation so callers can free uniformly */
        o.ids = vlmn_malloc(sizeof *o.ids);
        o.spans = vlmn_malloc(2 * sizeof *o.spans);
        if (!o.ids || !o.spans) goto nomem;
    }
    *ids = o.ids;
    if (spans) *spans = o.spans;
    else vlmn_free(o.spans);
    *n = o.n;
    o.ids = NULL;
    o.spans = NULL;
    goto done;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "tokenize: out of memory (text of %zu bytes)", len);
done:
    vlmn_free(o.ids);
    vlmn_free(o.spans);
    vlmn_free(norm);
    vlmn_free(s.n2o);
    vlmn_free(s.sym);
    vlmn_free(s.agenda.v);
    vlmn_free(s.rev_left);
    return st;
}

vlmn_status vlmn_tok_encode(const vlmn_tok *t, const char *text, size_t len, int flags,
                            int32_t **ids, int64_t *n)
{
    return vlmn_tok_encode_spans(t, text, len, flags, ids, NULL, n);
}

/* ---- decoding ----------------------------------------------------------------- */

/* ProcessBytePieces: bytes -> UTF-8 characters, each invalid byte -> U+FFFD. */
static void flush_bytes(vlmn_buf *b, const unsigned char *bytes, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t cl = utf8_valid_len(bytes + i, n - i);
        if (cl == 0) {
            vlmn_buf_add(b, REPLACEMENT, 3);
            i++;
        } else {
            vlmn_buf_add(b, (const char *)bytes + i, cl);
            i += cl;
        }
    }
}

vlmn_status vlmn_tok_decode(const vlmn_tok *t, const int32_t *ids, int64_t n, char **text,
                            size_t *len)
{
    vlmn_buf b = {0};
    unsigned char *bytes = NULL;
    size_t nbytes = 0;
    *text = NULL;
    if (len) *len = 0;
    if (n < 0 || (n > 0 && !ids)) return vlmn_error(VLMN_E_ARG, "detokenize: bad arguments");
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return vlmn_error(VLMN_E_RANGE, "detokenize: invalid id %d at position %lld (%d tokens)",
                              (int)ids[i], (long long)i, (int)t->n_vocab);
    if (t->hf) return hf_decode(t, t->hf, ids, n, text, len);
    if (n > 0) {
        bytes = vlmn_malloc((size_t)n);
        if (!bytes) return vlmn_error(VLMN_E_NOMEM, "detokenize: out of memory");
    }
    vlmn_buf_add(&b, "", 0);
    bool is_bos_ws = true, bos_ws_seen = false;
    for (int64_t i = 0; i < n; i++) {
        /* Decode(ids) goes through the pieces: id -> piece -> PieceToId. */
        int32_t id = vlmn_tok_find(t, piece_of(t, ids[i]), t->len[ids[i]]);
        if (id < 0) id = ids[i];
        uint8_t ty = t->types[id];
        if (ty == VLMN_TOKT_BYTE) {
            bytes[nbytes++] = (unsigned char)byte_piece_value(piece_of(t, id), t->len[id]);
            continue;
        }
        flush_bytes(&b, bytes, nbytes);
        nbytes = 0;
        if (bos_ws_seen || b.n > 0) is_bos_ws = false;
        bos_ws_seen = false;
        if (ty == VLMN_TOKT_CONTROL) continue;
        if (ty == VLMN_TOKT_UNKNOWN) {
            vlmn_buf_add(&b, UNK_SURFACE, sizeof UNK_SURFACE - 1);
            continue;
        }
        const char *p = piece_of(t, id);
        size_t pl = t->len[id];
        if (is_bos_ws && t->add_space_prefix && pl >= SPACE_SYM_LEN &&
            memcmp(p, SPACE_SYM, SPACE_SYM_LEN) == 0) {
            p += SPACE_SYM_LEN;
            pl -= SPACE_SYM_LEN;
            bos_ws_seen = true;
        }
        size_t start = 0;
        for (size_t j = 0; j + SPACE_SYM_LEN <= pl;) {
            if (memcmp(p + j, SPACE_SYM, SPACE_SYM_LEN) == 0) {
                vlmn_buf_add(&b, p + start, j - start);
                vlmn_buf_add(&b, " ", 1);
                j += SPACE_SYM_LEN;
                start = j;
            } else {
                j++;
            }
        }
        vlmn_buf_add(&b, p + start, pl - start);
    }
    flush_bytes(&b, bytes, nbytes);
    vlmn_free(bytes);
    if (b.oom) {
        vlmn_free(b.p);
        return vlmn_error(VLMN_E_NOMEM, "detokenize: out of memory");
    }
    *text = b.p;
    if (len) *len = b.n;
    return VLMN_OK;
}

vlmn_status vlmn_tok_encode_context(const vlmn_tok *t, const char *text, size_t len, int32_t ctx,
                                    int32_t pad_id, int32_t *ids, int32_t *n_used)
{
    int flags = vlmn_tok_default_flags(t);
    int32_t pre[4], post[4];
    int np = 0, nq = 0;
    if (t->hf) {
        for (int i = 0; (flags & VLMN_TOK_BOS) && i < t->hf->n_pre; i++) pre[np++] = t->hf->pre_ids[i];
        for (int i = 0; (flags & VLMN_TOK_EOS) && i < t->hf->n_post; i++) post[nq++] = t->hf->post_ids[i];
    } else {
        if ((flags & VLMN_TOK_BOS) && t->bos >= 0) pre[np++] = t->bos;
        if ((flags & VLMN_TOK_EOS) && t->eos >= 0) post[nq++] = t->eos;
    }
    if (ctx <= np + nq)
        return vlmn_error(VLMN_E_ARG, "tokenize: context of %d tokens leaves no room for text", (int)ctx);
    if (pad_id < 0 || pad_id >= t->n_vocab)
        return vlmn_error(VLMN_E_RANGE, "tokenize: pad id %d out of range", (int)pad_id);
    int32_t *body = NULL;
    int64_t nb = 0;
    vlmn_status st = vlmn_tok_encode(t, text, len, 0, &body, &nb);
    if (st) return st;
    int64_t keep = nb < ctx - np - nq ? nb : ctx - np - nq;
    int32_t k = 0;
    for (int i = 0; i < np; i++) ids[k++] = pre[i];
    for (int64_t i = 0; i < keep; i++) ids[k++] = body[i];
    for (int i = 0; i < nq; i++) ids[k++] = post[i];
    if (n_used) *n_used = k;
    while (k < ctx) ids[k++] = pad_id;
    vlmn_free(body);
    return VLMN_OK;
}
