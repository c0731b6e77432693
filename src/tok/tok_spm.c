/* SentencePiece `tokenizer.model` (a ModelProto protobuf, as Hugging Face folders ship
 * it) -> the vocabulary arrays the tokenizer is built from. Only the fields LLaMA's BPE
 * model needs are read (pieces, trainer_spec model_type / unk, bos, eos ids,
 * normalizer_spec name / add_dummy_prefix / remove_extra_whitespaces); every length and
 * varint is untrusted. Field numbers: sentencepiece_model.proto. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "vlmn/tokenizer.h"

#define SPM_MAX_PIECES (1 << 22)

struct pb { const uint8_t *p, *end; };

static bool varint(struct pb *b, uint64_t *v)
{
    *v = 0;
    for (int s = 0; s < 64 && b->p < b->end; s += 7) {
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) return true;
    }
    return false;
}

/* Next field: number, wire type, and for length-delimited fields the sub-buffer. */
static bool field(struct pb *b, uint32_t *num, uint32_t *wt, uint64_t *v, struct pb *sub)
{
    uint64_t key;
    if (!varint(b, &key) || key >> 35) return false;
    *num = (uint32_t)(key >> 3);
    *wt = (uint32_t)(key & 7);
    switch (*wt) {
    case 0: return varint(b, v);
    case 1:
        if (b->end - b->p < 8) return false;
        b->p += 8;
        return true;
    case 5:
        if (b->end - b->p < 4) return false;
        *v = (uint64_t)b->p[0] | (uint64_t)b->p[1] << 8 | (uint64_t)b->p[2] << 16 | (uint64_t)b->p[3] << 24;
        b->p += 4;
        return true;
    case 2:
        if (!varint(b, v) || *v > (uint64_t)(b->end - b->p)) return false;
        sub->p = b->p;
        sub->end = b->p + *v;
        b->p += *v;
        return true;
    default: return false;
    }
}

void vlmn_tok_spm_free(vlmn_tok_spm *s)
{
    if (!s) return;
    vlmn_free(s->tokens);
    vlmn_free(s->lens);
    vlmn_free(s->scores);
    vlmn_free(s->types);
    vlmn_free(s);
}

vlmn_status vlmn_tok_spm_parse(const void *buf, size_t size, const char *name, vlmn_tok_spm **out)
{
    *out = NULL;
    vlmn_tok_spm *s = vlmn_calloc(1, sizeof *s);
    if (!s) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    s->unk_id = 0;
    s->bos_id = 1;
    s->eos_id = 2;
    s->add_dummy_prefix = true;
    struct pb b = {buf, (const uint8_t *)buf + size}, sub, f;
    uint32_t num, wt;
    uint64_t v;
    size_t cap = 0;
    int64_t model_type = 1; /* proto default: UNIGRAM */
    vlmn_status st = VLMN_OK;
    while (b.p < b.end) {
        if (!field(&b, &num, &wt, &v, &sub)) goto bad;
        if (num == 1 && wt == 2) { /* SentencePiece */
            if (s->n == SPM_MAX_PIECES) {
                st = vlmn_error(VLMN_E_RANGE, "%s: more than %d pieces", name, SPM_MAX_PIECES);
                goto fail;
            }
            if ((size_t)s->n == cap) {
                cap = cap ? 2 * cap : 1024;
                const char **t = vlmn_realloc(s->tokens, cap * sizeof *t);
                if (t) s->tokens = t;
                uint64_t *l = vlmn_realloc(s->lens, cap * sizeof *l);
                if (l) s->lens = l;
                float *sc = vlmn_realloc(s->scores, cap * sizeof *sc);
                if (sc) s->scores = sc;
                int32_t *ty = vlmn_realloc(s->types, cap * sizeof *ty);
                if (ty) s->types = ty;
                if (!t || !l || !sc || !ty) {
                    st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
                    goto fail;
                }
            }
            int32_t i = s->n;
            s->tokens[i] = "";
            s->lens[i] = 0;
            s->scores[i] = 0;
            s->types[i] = VLMN_TOKT_NORMAL;
            bool has_piece = false;
            while (sub.p < sub.end) {
                if (!field(&sub, &num, &wt, &v, &f)) goto bad;
                if (num == 1 && wt == 2) {
                    s->tokens[i] = (const char *)f.p;
                    s->lens[i] = v;
                    has_piece = true;
                } else if (num == 2 && wt == 5) {
                    uint32_t u = (uint32_t)v;
                    memcpy(&s->scores[i], &u, 4);
                } else if (num == 3 && wt == 0) {
                    s->types[i] = v >= 1 && v <= 6 ? (int32_t)v : VLMN_TOKT_NORMAL;
                }
            }
            if (!has_piece) {
                st = vlmn_error(VLMN_E_FORMAT, "%s: piece %d has no text", name, (int)i);
                goto fail;
            }
            s->n++;
        } else if (num == 2 && wt == 2) { /* TrainerSpec */
            while (sub.p < sub.end) {
                if (!field(&sub, &num, &wt, &v, &f)) goto bad;
                if (wt != 0) continue;
                if (num == 3) model_type = (int64_t)v;
                else if (num == 40) s->unk_id = (int32_t)(int64_t)v;
                else if (num == 41) s->bos_id = (int32_t)(int64_t)v;
                else if (num == 42) s->eos_id = (int32_t)(int64_t)v;
            }
        } else if (num == 3 && wt == 2) { /* NormalizerSpec */
            while (sub.p < sub.end) {
                if (!field(&sub, &num, &wt, &v, &f)) goto bad;
                if (num == 1 && wt == 2) {
                    if (!(v == 8 && !memcmp(f.p, "identity", 8))) {
                        st = vlmn_error(VLMN_E_UNSUPPORTED, "%s: normalizer \"%.*s\" not supported (only identity)", name,
                                        v < 40 ? (int)v : 40, (const char *)f.p);
                        goto fail;
                    }
                } else if (num == 3 && wt == 0) s->add_dummy_prefix = v != 0;
                else if (num == 4 && wt == 0 && v) {
                    st = vlmn_error(VLMN_E_UNSUPPORTED, "%s: remove_extra_whitespaces not supported", name);
                    goto fail;
                }
            }
        }
    }
    if (model_type != 2) {
        st = vlmn_error(VLMN_E_UNSUPPORTED, "%s: SentencePiece model type %lld not supported (only BPE)", name,
                        (long long)model_type);
        goto fail;
    }
    if (s->n == 0) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: no pieces", name);
        goto fail;
    }
    /* ids outside the vocabulary (e.g. -1: none) mean "no such token" */
    if (s->unk_id < 0 || s->unk_id >= s->n) s->unk_id = -1;
    if (s->bos_id < 0 || s->bos_id >= s->n) s->bos_id = -1;
    if (s->eos_id < 0 || s->eos_id >= s->n) s->eos_id = -1;
    *out = s;
    return VLMN_OK;
bad:
    st = vlmn_error(VLMN_E_FORMAT, "%s: not a SentencePiece model (bad protobuf at byte %lld)", name,
                    (long long)(b.p - (const uint8_t *)buf));
fail:
    vlmn_tok_spm_free(s);
    return st;
}
