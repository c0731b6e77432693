/* Hugging Face `tokenizer.json` -> vlmn_tok: the vocabulary as vlmn_tok arrays plus the
 * pipeline (normalizer, pre-tokenizer, BPE model, added tokens, post-processor, decoder)
 * that the encoder in hf_bpe.c runs. The file is untrusted: every field is checked and a
 * problem is one error naming the file. See docs/tokenizer.md for what is supported. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/file.h"
#include "tok/hf.h"

#define HF_MAX_JSON (256u << 20)
#define HF_MAX_VOCAB (1 << 24)
#define HF_MAX_DEPTH 8

static const char *const GPT2_RE =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const CLIP_RE = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|"
                                   "[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

typedef struct ctx {
    const char *name;
    vlmn_status st;
} ctx;

static bool fail(ctx *c, vlmn_status st, const char *fmt, const char *what)
{
    if (!c->st) c->st = vlmn_error(st, fmt, c->name, what ? what : "");
    return false;
}

static void node_free(hf_node *n)
{
    if (!n) return;
    for (int i = 0; i < n->n_kids; i++) node_free(&n->kids[i]);
    vlmn_free(n->kids);
    vlmn_free(n->pat.lit);
    vlmn_free(n->str);
}

void hf_tok_free(vlmn_hftok *h)
{
    if (!h) return;
    hf_node *ns[3] = {h->normalizer, h->pre, h->decoder};
    for (int i = 0; i < 3; i++) {
        node_free(ns[i]);
        vlmn_free(ns[i]);
    }
    vlmn_free(h->prefix);
    vlmn_free(h->suffix);
    vlmn_free(h->merge_keys);
    vlmn_free(h->merge_rank);
    vlmn_free(h->merge_new);
    vlmn_free(h->vocab_slots);
    for (int32_t i = 0; i < h->n_added; i++) vlmn_free(h->added[i].cp);
    vlmn_free(h->added);
    vlmn_free(h->is_special);
    vlmn_free(h->name);
    vlmn_free(h);
}

/* UTF-8 (from cJSON) -> code points. */
static bool to_cps(ctx *c, const char *s, uint32_t **out, size_t *n)
{
    size_t l = strlen(s);
    *out = vlmn_malloc((l + 1) * sizeof **out);
    if (!*out) return fail(c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
    size_t k = 0;
    for (size_t i = 0; i < l;) {
        uint32_t cp;
        i += hf_utf8_get(s + i, l - i, &cp);
        (*out)[k++] = cp;
    }
    *n = k;
    return true;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jbool(const cJSON *o, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static bool parse_pattern(ctx *c, const cJSON *p, hf_pat *out)
{
    const char *s = p ? jstr(p, "String") : NULL;
    if (s) {
        out->kind = HF_PAT_LIT;
        return to_cps(c, s, &out->lit, &out->n);
    }
    const char *r = p ? jstr(p, "Regex") : NULL;
    if (!r) return fail(c, VLMN_E_FORMAT, "%s: pattern is neither {\"String\"} nor {\"Regex\"}%s", NULL);
    if (strcmp(r, GPT2_RE) == 0) out->kind = HF_RE_GPT2;
    else if (strcmp(r, CLIP_RE) == 0) out->kind = HF_RE_CLIP;
    else if (strcmp(r, "\\s+") == 0) out->kind = HF_RE_WS;
    else if (strcmp(r, "\\w+|[^\\w\\s]+") == 0) out->kind = HF_RE_WORDS;
    else return fail(c, VLMN_E_UNSUPPORTED, "%s: regex \"%.60s\" is not supported (known: GPT-2's, CLIP's, \\s+)", r);
    return true;
}

static bool parse_node(ctx *c, const cJSON *o, hf_node *n, int kind, int depth);

static bool parse_kids(ctx *c, const cJSON *arr, hf_node *n, int kind, int depth)
{
    if (!cJSON_IsArray(arr)) return fail(c, VLMN_E_FORMAT, "%s: Sequence without its list%s", NULL);
    int k = cJSON_GetArraySize(arr);
    if (k > 64) return fail(c, VLMN_E_RANGE, "%s: Sequence of more than 64 steps%s", NULL);
    n->kids = vlmn_calloc((size_t)k + 1, sizeof *n->kids);
    if (!n->kids) return fail(c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        n->n_kids++; /* counted first: a half-parsed step is freed with the rest */
        if (!parse_node(c, x, &n->kids[n->n_kids - 1], kind, depth + 1)) return false;
    }
    return true;
}

/* kind: 0 normalizer, 1 pre-tokenizer, 2 decoder. */
static bool parse_node(ctx *c, const cJSON *o, hf_node *n, int kind, int depth)
{
    static const char *const what[3] = {"normalizer", "pre_tokenizer", "decoder"};
    if (depth > HF_MAX_DEPTH) return fail(c, VLMN_E_RANGE, "%s: %s nested too deeply", what[kind]);
    const char *t = cJSON_IsObject(o) ? jstr(o, "type") : NULL;
    if (!t) return fail(c, VLMN_E_FORMAT, "%s: %s without a \"type\"", what[kind]);
    char msg[160];
    if (kind == 0) {
        if (!strcmp(t, "Sequence")) return n->type = HF_N_SEQ, parse_kids(c, cJSON_GetObjectItemCaseSensitive(o, "normalizers"), n, 0, depth);
        if (!strcmp(t, "Prepend")) {
            const char *s = jstr(o, "prepend");
            n->type = HF_N_PREPEND;
            return s ? to_cps(c, s, &n->str, &n->n_str) : fail(c, VLMN_E_FORMAT, "%s: Prepend without \"prepend\"%s", NULL);
        }
        if (!strcmp(t, "Replace")) {
            const char *s = jstr(o, "content");
            n->type = HF_N_REPLACE;
            if (!s) return fail(c, VLMN_E_FORMAT, "%s: Replace without \"content\"%s", NULL);
            return parse_pattern(c, cJSON_GetObjectItemCaseSensitive(o, "pattern"), &n->pat) &&
                   to_cps(c, s, &n->str, &n->n_str);
        }
        if (!strcmp(t, "NFC")) return n->type = HF_N_NFC, true;
        if (!strcmp(t, "NFD")) return n->type = HF_N_NFD, true;
        if (!strcmp(t, "NFKC")) return n->type = HF_N_NFKC, true;
        if (!strcmp(t, "NFKD")) return n->type = HF_N_NFKD, true;
        if (!strcmp(t, "Lowercase")) return n->type = HF_N_LOWER, true;
        if (!strcmp(t, "Strip")) {
            n->type = HF_N_STRIP;
            n->flag_a = jbool(o, "strip_left", true);
            n->flag_b = jbool(o, "strip_right", true);
            return true;
        }
    } else if (kind == 1) {
        if (!strcmp(t, "Sequence")) return n->type = HF_P_SEQ, parse_kids(c, cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), n, 1, depth);
        if (!strcmp(t, "Metaspace") || !strcmp(t, "ByteLevel") || !strcmp(t, "Split") || !strcmp(t, "Whitespace") ||
            !strcmp(t, "WhitespaceSplit")) {
            if (!strcmp(t, "Metaspace")) {
                const char *r = jstr(o, "replacement"), *sc = jstr(o, "prepend_scheme");
                n->type = HF_P_METASPACE;
                n->flag_a = jbool(o, "split", true);
                bool add = jbool(o, "add_prefix_space", true); /* the older form */
                n->scheme = !sc ? (add ? HF_SCHEME_ALWAYS : HF_SCHEME_NEVER)
                            : !strcmp(sc, "always") ? HF_SCHEME_ALWAYS
                            : !strcmp(sc, "first")  ? HF_SCHEME_FIRST
                            : !strcmp(sc, "never")  ? HF_SCHEME_NEVER
                                                    : -1;
                if (n->scheme < 0) return fail(c, VLMN_E_FORMAT, "%s: Metaspace prepend_scheme \"%.20s\" unknown", sc);
                if (!r || !to_cps(c, r, &n->pat.lit, &n->pat.n) || n->pat.n != 1)
                    return fail(c, VLMN_E_FORMAT, "%s: Metaspace replacement is not one character%s", NULL);
                return true;
            }
            if (!strcmp(t, "ByteLevel")) {
                n->type = HF_P_BYTELEVEL;
                n->flag_a = jbool(o, "add_prefix_space", true);
                n->flag_b = jbool(o, "use_regex", true);
                return true;
            }
            if (!strcmp(t, "Split")) {
                const char *b = jstr(o, "behavior");
                n->type = HF_P_SPLIT;
                n->flag_b = jbool(o, "invert", false);
                n->behavior = !b ? -1
                              : !strcmp(b, "Removed")            ? HF_B_REMOVED
                              : !strcmp(b, "Isolated")           ? HF_B_ISOLATED
                              : !strcmp(b, "MergedWithPrevious") ? HF_B_MERGED_PREV
                              : !strcmp(b, "MergedWithNext")     ? HF_B_MERGED_NEXT
                              : !strcmp(b, "Contiguous")         ? HF_B_CONTIGUOUS
                                                                 : -1;
                if (n->behavior < 0) return fail(c, VLMN_E_FORMAT, "%s: Split behavior \"%.30s\" unknown", b ? b : "(none)");
                return parse_pattern(c, cJSON_GetObjectItemCaseSensitive(o, "pattern"), &n->pat);
            }
            n->type = !strcmp(t, "Whitespace") ? HF_P_WHITESPACE : HF_P_WSSPLIT;
            return true;
        }
    } else {
        if (!strcmp(t, "Sequence")) return n->type = HF_D_SEQ, parse_kids(c, cJSON_GetObjectItemCaseSensitive(o, "decoders"), n, 2, depth);
        if (!strcmp(t, "Replace")) {
            const char *s = jstr(o, "content");
            n->type = HF_D_REPLACE;
            if (!s) return fail(c, VLMN_E_FORMAT, "%s: Replace without \"content\"%s", NULL);
            if (!parse_pattern(c, cJSON_GetObjectItemCaseSensitive(o, "pattern"), &n->pat)) return false;
            if (n->pat.kind != HF_PAT_LIT) return fail(c, VLMN_E_UNSUPPORTED, "%s: Replace decoder with a regex%s", NULL);
            return to_cps(c, s, &n->str, &n->n_str);
        }
        if (!strcmp(t, "ByteFallback")) return n->type = HF_D_BYTEFALLBACK, true;
        if (!strcmp(t, "Fuse")) return n->type = HF_D_FUSE, true;
        if (!strcmp(t, "ByteLevel")) return n->type = HF_D_BYTELEVEL, true;
        if (!strcmp(t, "Strip")) {
            const char *s = jstr(o, "content");
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "start"), *b = cJSON_GetObjectItemCaseSensitive(o, "stop");
            n->type = HF_D_STRIP;
            if (!s || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0 || a->valuedouble > 1e6 ||
                b->valuedouble < 0 || b->valuedouble > 1e6)
                return fail(c, VLMN_E_FORMAT, "%s: Strip decoder needs content, start, stop%s", NULL);
            n->start = (int)a->valuedouble;
            n->stop = (int)b->valuedouble;
            return to_cps(c, s, &n->str, &n->n_str);
        }
        if (!strcmp(t, "Metaspace")) {
            const char *r = jstr(o, "replacement"), *sc = jstr(o, "prepend_scheme");
            n->type = HF_D_METASPACE;
            bool add = jbool(o, "add_prefix_space", true);
            n->scheme = sc ? (!strcmp(sc, "never") ? HF_SCHEME_NEVER : HF_SCHEME_ALWAYS)
                           : (add ? HF_SCHEME_ALWAYS : HF_SCHEME_NEVER);
            if (!r || !to_cps(c, r, &n->pat.lit, &n->pat.n) || n->pat.n != 1)
                return fail(c, VLMN_E_FORMAT, "%s: Metaspace replacement is not one character%s", NULL);
            return true;
        }
        if (!strcmp(t, "BPEDecoder")) {
            const char *s = jstr(o, "suffix");
            n->type = HF_D_BPE;
            return to_cps(c, s ? s : "</w>", &n->str, &n->n_str);
        }
    }
    snprintf(msg, sizeof msg, "%s type \"%.40s\"", what[kind], t);
    return fail(c, VLMN_E_UNSUPPORTED, "%s: %s is not supported", msg);
}

static bool parse_tree(ctx *c, const cJSON *root, const char *key, int kind, hf_node **out)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!o || cJSON_IsNull(o)) return true;
    *out = vlmn_calloc(1, sizeof **out);
    if (!*out) return fail(c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
    return parse_node(c, o, *out, kind, 0);
}

/* ---- hashing ------------------------------------------------------------------------ */

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

int32_t hf_vocab_find(const vlmn_tok *t, const vlmn_hftok *h, const char *s, size_t n)
{
    for (uint64_t k = fnv(s, n) & h->vocab_mask;; k = (k + 1) & h->vocab_mask) {
        int32_t id = h->vocab_slots[k];
        if (id < 0) return -1;
        size_t pl;
        const char *p = vlmn_tok_piece(t, id, &pl);
        if (pl == n && memcmp(p, s, n) == 0) return id;
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int cmp_added(const void *x, const void *y)
{
    const hf_added *a = x, *b = y;
    if (a->cp[0] != b->cp[0]) return a->cp[0] < b->cp[0] ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* ---- the whole file ---------------------------------------------------------------- */

static int32_t added_id(const vlmn_hftok *h, const char *content)
{
    for (int32_t i = 0; i < h->n_added; i++) {
        const hf_added *a = &h->added[i];
        size_t l = strlen(content), k = 0;
        bool eq = true;
        for (size_t j = 0; j < a->n && eq; j++) {
            char u[4];
            size_t ul = hf_utf8_put(a->cp[j], u);
            eq = k + ul <= l && memcmp(content + k, u, ul) == 0;
            k += ul;
        }
        if (eq && k == l) return a->id;
    }
    return -1;
}

static bool post_ids(ctx *c, const cJSON *p, vlmn_hftok *h, int32_t n_vocab, int depth)
{
    if (!p || cJSON_IsNull(p)) return true;
    const char *t = jstr(p, "type");
    if (!t || depth > HF_MAX_DEPTH) return fail(c, VLMN_E_FORMAT, "%s: post_processor without a \"type\"%s", NULL);
    if (!strcmp(t, "ByteLevel")) return true;
    if (!strcmp(t, "Sequence")) {
        const cJSON *x, *arr = cJSON_GetObjectItemCaseSensitive(p, "processors");
        if (!cJSON_IsArray(arr)) return fail(c, VLMN_E_FORMAT, "%s: post_processor Sequence without processors%s", NULL);
        cJSON_ArrayForEach(x, arr) if (!post_ids(c, x, h, n_vocab, depth + 1)) return false;
        return true;
    }
    if (!strcmp(t, "RobertaProcessing") || !strcmp(t, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si) || ci->valuedouble < 0 || ci->valuedouble >= n_vocab ||
            si->valuedouble < 0 || si->valuedouble >= n_vocab || h->n_pre >= 4 || h->n_post >= 4)
            return fail(c, VLMN_E_FORMAT, "%s: %s needs cls and sep [token, id] with ids in the vocabulary", t);
        h->pre_ids[h->n_pre++] = (int32_t)ci->valuedouble;
        h->post_ids[h->n_post++] = (int32_t)si->valuedouble;
        return true;
    }
    if (!strcmp(t, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *sp = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single)) return fail(c, VLMN_E_FORMAT, "%s: TemplateProcessing without \"single\"%s", NULL);
        bool seen = false;
        const cJSON *x;
        cJSON_ArrayForEach(x, single)
        {
            if (cJSON_GetObjectItemCaseSensitive(x, "Sequence")) {
                seen = true;
                continue;
            }
            const char *id = jstr(cJSON_GetObjectItemCaseSensitive(x, "SpecialToken"), "id");
            const cJSON *ids = id ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, id), "ids") : NULL;
            if (!cJSON_IsArray(ids)) return fail(c, VLMN_E_FORMAT, "%s: TemplateProcessing item \"%.40s\" has no ids", id ? id : "?");
            const cJSON *v;
            cJSON_ArrayForEach(v, ids)
            {
                int *cnt = seen ? &h->n_post : &h->n_pre;
                int32_t *arr = seen ? h->post_ids : h->pre_ids;
                if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= n_vocab || *cnt >= 4)
                    return fail(c, VLMN_E_FORMAT, "%s: TemplateProcessing \"%.40s\": bad id or too many specials", id);
                arr[(*cnt)++] = (int32_t)v->valuedouble;
            }
        }
        return true;
    }
    return fail(c, VLMN_E_UNSUPPORTED, "%s: post_processor type \"%.40s\" is not supported", t);
}

static bool is_id(const cJSON *v, int32_t *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < HF_MAX_VOCAB) ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return false;
    *out = (int32_t)v->valuedouble;
    return true;
}

vlmn_status vlmn_tok_from_hf_json(const char *json, size_t len, const char *name, vlmn_tok **out)
{
    ctx c = {name ? name : "tokenizer.json", VLMN_OK};
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    vlmn_hftok *h = NULL;
    const char **toks = NULL;
    int32_t *types = NULL;
    vlmn_tok *t = NULL;
    if (!cJSON_IsObject(root)) {
        fail(&c, VLMN_E_FORMAT, "%s: not a JSON object%s", NULL);
        goto done;
    }
    h = vlmn_calloc(1, sizeof *h);
    if (!h || !(h->name = vlmn_strdup(c.name))) {
        fail(&c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = cJSON_IsObject(model) ? jstr(model, "type") : NULL;
    if (!cJSON_IsObject(model)) {
        fail(&c, VLMN_E_FORMAT, "%s: no \"model\" object%s", NULL);
        goto done;
    }
    if (mtype && strcmp(mtype, "BPE") != 0) {
        fail(&c, VLMN_E_UNSUPPORTED, "%s: model type \"%.30s\" is not supported (only BPE)", mtype);
        goto done;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        fail(&c, VLMN_E_FORMAT, "%s: model needs a \"vocab\" object and a \"merges\" list%s", NULL);
        goto done;
    }
    if (drop && !cJSON_IsNull(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0)) {
        fail(&c, VLMN_E_UNSUPPORTED, "%s: BPE dropout is not supported%s", NULL);
        goto done;
    }
    if (added && !cJSON_IsArray(added)) {
        fail(&c, VLMN_E_FORMAT, "%s: added_tokens is not a list%s", NULL);
        goto done;
    }
    /* vocabulary size: the largest id + 1 */
    int32_t n_vocab = 0, id;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab)
    {
        if (!is_id(x, &id)) {
            fail(&c, VLMN_E_FORMAT, "%s: vocab entry \"%.40s\" has no valid id", x->string);
            goto done;
        }
        if (id + 1 > n_vocab) n_vocab = id + 1;
    }
    cJSON_ArrayForEach(x, added)
    {
        if (!is_id(cJSON_GetObjectItemCaseSensitive(x, "id"), &id) || !jstr(x, "content")) {
            fail(&c, VLMN_E_FORMAT, "%s: added token without a valid id and content%s", NULL);
            goto done;
        }
        if (id + 1 > n_vocab) n_vocab = id + 1;
    }
    if (n_vocab == 0) {
        fail(&c, VLMN_E_FORMAT, "%s: empty vocabulary%s", NULL);
        goto done;
    }
    /* ids index arrays: a few entries with huge ids must not cost gigabytes */
    int64_t n_entries = (int64_t)cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
    if ((int64_t)n_vocab > 2 * n_entries + 1024) {
        char what[64];
        snprintf(what, sizeof what, "%d for %lld entries", (int)n_vocab - 1, (long long)n_entries);
        fail(&c, VLMN_E_FORMAT, "%s: token ids are not dense (largest id %s)", what);
        goto done;
    }
    toks = vlmn_calloc((size_t)n_vocab, sizeof *toks);
    types = vlmn_malloc((size_t)n_vocab * sizeof *types);
    h->is_special = vlmn_calloc((size_t)n_vocab, sizeof *h->is_special);
    if (!toks || !types || !h->is_special) {
        fail(&c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
        goto done;
    }
    for (int32_t i = 0; i < n_vocab; i++) types[i] = VLMN_TOKT_NORMAL;
    cJSON_ArrayForEach(x, vocab)
    {
        is_id(x, &id);
        if (toks[id]) {
            fail(&c, VLMN_E_FORMAT, "%s: vocab id used twice (\"%.40s\")", x->string);
            goto done;
        }
        toks[id] = x->string;
    }
    int32_t n_added = cJSON_GetArraySize(added);
    h->added = vlmn_calloc((size_t)n_added + 1, sizeof *h->added);
    if (!h->added) {
        fail(&c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
        goto done;
    }
    cJSON_ArrayForEach(x, added)
    {
        is_id(cJSON_GetObjectItemCaseSensitive(x, "id"), &id);
        const char *content = jstr(x, "content");
        hf_added *a = &h->added[h->n_added];
        a->id = id;
        a->special = jbool(x, "special", false);
        a->lstrip = jbool(x, "lstrip", false);
        a->rstrip = jbool(x, "rstrip", false);
        a->single_word = jbool(x, "single_word", false);
        a->normalized = jbool(x, "normalized", !a->special);
        if (!to_cps(&c, content, &a->cp, &a->n)) goto done;
        if (!toks[id]) toks[id] = content;
        types[id] = a->special ? VLMN_TOKT_CONTROL : VLMN_TOKT_USER_DEFINED;
        h->is_special[id] = a->special;
        if (a->n == 0) { /* an empty token never matches */
            vlmn_free(a->cp);
            a->cp = NULL;
            continue;
        }
        h->n_added++;
    }
    if (h->n_added) qsort(h->added, (size_t)h->n_added, sizeof *h->added, cmp_added);
    for (int32_t i = 0; i < n_vocab; i++)
        if (!toks[i]) toks[i] = "";

    /* BPE options */
    const char *unk = jstr(model, "unk_token"), *pre = jstr(model, "continuing_subword_prefix"),
               *suf = jstr(model, "end_of_word_suffix");
    h->fuse_unk = jbool(model, "fuse_unk", false);
    h->byte_fallback = jbool(model, "byte_fallback", false);
    h->ignore_merges = jbool(model, "ignore_merges", false);
    if ((pre && *pre && !to_cps(&c, pre, &h->prefix, &h->n_prefix)) ||
        (suf && *suf && !to_cps(&c, suf, &h->suffix, &h->n_suffix)))
        goto done;
    h->unk = -1;
    if (unk) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(vocab, unk);
        if (!is_id(u, &h->unk)) {
            fail(&c, VLMN_E_FORMAT, "%s: unk_token \"%.40s\" is not in the vocab", unk);
            goto done;
        }
    }
    if (h->byte_fallback)
        for (int32_t i = 0; i < n_vocab; i++) {
            const char *p = toks[i];
            if (types[i] == VLMN_TOKT_NORMAL && strlen(p) == 6 && !strncmp(p, "<0x", 3) && p[5] == '>') {
                char *end;
                char hex[3] = {p[3], p[4], 0};
                long v = strtol(hex, &end, 16);
                bool upper = (p[3] < 'a' || p[3] > 'f') && (p[4] < 'a' || p[4] > 'f');
                if (*end == '\0' && upper && v >= 0 && v < 256) types[i] = VLMN_TOKT_BYTE;
            }
        }

    /* special-token ids for the vlmn_tok flags */
    if (!post_ids(&c, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), h, n_vocab, 0)) goto done;
    bool add_bos = h->n_pre > 0, add_eos = h->n_post > 0;
    static const char *const bos_names[] = {"<s>", "<|startoftext|>", "<|begin_of_text|>", "[CLS]", NULL};
    static const char *const eos_names[] = {"</s>", "<|endoftext|>", "<|end_of_text|>", "[SEP]", NULL};
    int32_t bos = h->n_pre ? h->pre_ids[0] : -1, eos = h->n_post ? h->post_ids[h->n_post - 1] : -1;
    for (int i = 0; bos < 0 && bos_names[i]; i++) bos = added_id(h, bos_names[i]);
    for (int i = 0; eos < 0 && eos_names[i]; i++) eos = added_id(h, eos_names[i]);
    /* the unk token is UNKNOWN (as in SentencePiece vocabularies) unless it doubles as
     * BOS/EOS (CLIP's <|endoftext|>) */
    if (h->unk >= 0 && h->unk != bos && h->unk != eos) types[h->unk] = VLMN_TOKT_UNKNOWN;
    if (!h->n_pre && bos >= 0) h->pre_ids[h->n_pre++] = bos;
    if (!h->n_post && eos >= 0) h->post_ids[h->n_post++] = eos;

    if (!parse_tree(&c, root, "normalizer", 0, &h->normalizer) || !parse_tree(&c, root, "pre_tokenizer", 1, &h->pre) ||
        !parse_tree(&c, root, "decoder", 2, &h->decoder))
        goto done;

    vlmn_tok_vocab v = {.n_vocab = n_vocab, .tokens = toks, .types = types, .bos_id = bos, .eos_id = eos,
                        .unk_id = h->unk >= 0 ? h->unk : 0, .add_bos = add_bos, .add_eos = add_eos,
                        .add_space_prefix = false};
    if ((c.st = vlmn_tok_create(&v, &t))) {
        c.st = vlmn_error_prefix(c.st, "%s", c.name);
        goto done;
    }

    /* vocab hash (model vocabulary only) and byte tokens */
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n_vocab + 1) cap <<= 1;
    h->vocab_slots = vlmn_malloc(cap * sizeof *h->vocab_slots);
    if (!h->vocab_slots) {
        fail(&c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
        goto done;
    }
    memset(h->vocab_slots, 0xff, cap * sizeof *h->vocab_slots);
    h->vocab_mask = cap - 1;
    cJSON_ArrayForEach(x, vocab)
    {
        is_id(x, &id);
        size_t l = strlen(x->string);
        uint64_t k = fnv(x->string, l) & h->vocab_mask;
        while (h->vocab_slots[k] >= 0) k = (k + 1) & h->vocab_mask;
        h->vocab_slots[k] = id;
    }
    for (int b = 0; b < 256; b++) {
        char code[8];
        snprintf(code, sizeof code, "<0x%02X>", b);
        h->byte_id[b] = hf_vocab_find(t, h, code, 6);
    }

    /* merges: (left id, right id) -> (rank, merged id) */
    int32_t n_merges = cJSON_GetArraySize(merges);
    cap = 16;
    while (cap < 2 * (uint64_t)n_merges + 1) cap <<= 1;
    h->merge_keys = vlmn_calloc(cap, sizeof *h->merge_keys);
    h->merge_rank = vlmn_malloc(cap * sizeof *h->merge_rank);
    h->merge_new = vlmn_malloc(cap * sizeof *h->merge_new);
    if (!h->merge_keys || !h->merge_rank || !h->merge_new) {
        fail(&c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
        goto done;
    }
    h->merge_mask = cap - 1;
    char *buf = NULL;
    size_t buf_cap = 0;
    uint32_t rank = 0;
    cJSON_ArrayForEach(x, merges)
    {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if (cJSON_IsString(x)) {
            const char *sp = strchr(x->valuestring, ' ');
            if (sp && !strchr(sp + 1, ' ')) { /* exactly two parts, as split(' ') requires */
                a = x->valuestring;
                la = (size_t)(sp - a);
                b = sp + 1;
                lb = strlen(b);
            }
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 && cJSON_IsString(cJSON_GetArrayItem(x, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(x, 1))) {
            a = cJSON_GetArrayItem(x, 0)->valuestring;
            b = cJSON_GetArrayItem(x, 1)->valuestring;
            la = strlen(a);
            lb = strlen(b);
        }
        if (!a) {
            vlmn_free(buf);
            fail(&c, VLMN_E_FORMAT, "%s: merge %s is neither \"a b\" nor [\"a\", \"b\"]",
                 cJSON_IsString(x) ? x->valuestring : "(not a string)");
            goto done;
        }
        /* the merged piece: a + b[len(continuing_subword_prefix):], as tokenizers cuts it
         * (whether or not b starts with the prefix) */
        size_t skip = pre ? strlen(pre) : 0;
        if (skip > lb) {
            vlmn_free(buf);
            fail(&c, VLMN_E_FORMAT, "%s: merge \"%.40s\": right piece shorter than continuing_subword_prefix", b);
            goto done;
        }
        if (la + lb + 1 > buf_cap) {
            buf_cap = (la + lb + 1) * 2;
            char *nb = vlmn_realloc(buf, buf_cap);
            if (!nb) {
                vlmn_free(buf);
                fail(&c, VLMN_E_NOMEM, "%s: out of memory%s", NULL);
                goto done;
            }
            buf = nb;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b + skip, lb - skip);
        int32_t ia = hf_vocab_find(t, h, a, la), ib = hf_vocab_find(t, h, b, lb),
                in = hf_vocab_find(t, h, buf, la + lb - skip);
        if (ia < 0 || ib < 0 || in < 0) {
            char what[96];
            snprintf(what, sizeof what, "%.*s + %.*s", (int)(la < 40 ? la : 40), a, (int)(lb < 40 ? lb : 40), b);
            vlmn_free(buf);
            fail(&c, VLMN_E_FORMAT, "%s: merge %s: a piece is not in the vocab", what);
            goto done;
        }
        uint64_t key = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
        uint64_t k = mix64(key) & h->merge_mask;
        while (h->merge_keys[k] && h->merge_keys[k] != key) k = (k + 1) & h->merge_mask;
        h->merge_keys[k] = key; /* a repeated pair: the later rank wins, as in a HashMap */
        h->merge_rank[k] = rank++;
        h->merge_new[k] = (uint32_t)in;
    }
    vlmn_free(buf);
    vlmn_tok_attach_hf(t, h, h->unk);
    h = NULL;
    *out = t;
    t = NULL;
done:
    vlmn_tok_free(t);
    hf_tok_free(h);
    vlmn_free(toks);
    vlmn_free(types);
    cJSON_Delete(root);
    return c.st;
}

vlmn_status vlmn_tok_load_hf(const char *path, vlmn_tok **out)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    *out = NULL;
    vlmn_status st = vlmn_file_read(path, HF_MAX_JSON, "tokenizer.json", &buf, &n);
    if (st) return st;
    st = vlmn_tok_from_hf_json((const char *)buf, n, path, out);
    vlmn_free(buf);
    return st;
}
