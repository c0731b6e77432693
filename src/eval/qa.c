/* QA sets, batched answering, teacher-forced reference likelihood, offline grades.
 * See include/vlmn/eval.h and docs/generate.md. */
#include "vlmn/eval.h"
#include "vlmn/dataset.h"
#include "vlmn/prompt.h"
#include "vlmn/tokenizer.h"

#include "core/alloc.h"

#include <ctype.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s) { return s ? vlmn_strdup(s) : NULL; }

void vlmn_qa_free(vlmn_qa_set *s)
{
    for (int64_t i = 0; i < s->n; i++) {
        vlmn_free(s->items[i].id);
        vlmn_free(s->items[i].question);
        vlmn_free(s->items[i].answer);
        vlmn_free(s->items[i].image);
    }
    vlmn_free(s->items);
    s->items = NULL;
    s->n = 0;
}

vlmn_status vlmn_qa_load(const char *path, const char *images_dir, bool need_answers, vlmn_qa_set *out)
{
    memset(out, 0, sizeof *out);
    char dir[4096];
    if (images_dir) {
        snprintf(dir, sizeof dir, "%s", images_dir);
    } else {
        snprintf(dir, sizeof dir, "%s", path);
        char *sl = strrchr(dir, '/');
        if (sl)
            *sl = 0;
        else
            snprintf(dir, sizeof dir, ".");
    }
    vlmn_dataset *ds;
    vlmn_status st = vlmn_ds_open(path, VLMN_DS_AUTO, &ds);
    if (st) return st;
    int64_t cap = 0;
    for (;;) {
        vlmn_sample s;
        bool eof;
        if ((st = vlmn_ds_next(ds, &s, &eof))) break;
        if (eof) break;
        if (s.error) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: sample %lld (id '%s'): %s", path, (long long)s.index, s.id, s.error);
            break;
        }
        if (need_answers && (!s.answer || !*s.answer)) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: sample %lld (id '%s') has no reference answer", path,
                            (long long)s.index, s.id);
            break;
        }
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            vlmn_qa_item *g = vlmn_realloc(out->items, (size_t)cap * sizeof *g);
            if (!g) {
                st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
                break;
            }
            out->items = g;
        }
        vlmn_qa_item *it = &out->items[out->n];
        memset(it, 0, sizeof *it);
        out->n++;
        it->id = vlmn_strdup(s.id ? s.id : "");
        it->question = vlmn_strdup(s.question ? s.question : "");
        it->answer = dup_or_null(s.answer);
        if (s.image) {
            size_t L = strlen(dir) + strlen(s.image) + 2;
            it->image = vlmn_malloc(L);
            if (it->image) snprintf(it->image, L, "%s/%s", dir, s.image);
        }
        if (!it->id || !it->question || (s.answer && !it->answer) || (s.image && !it->image)) {
            st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
            break;
        }
    }
    vlmn_ds_close(ds);
    if (!st && out->n == 0) st = vlmn_error(VLMN_E_FORMAT, "%s: no samples", path);
    if (st) vlmn_qa_free(out);
    return st;
}

/* The vision input of an item (pix NULL for none): the model's preprocessing
 * (vlmn_llava_image_input: pad / crop, or InternVL's tiles); vi->pix is vlmn_malloc'd. */
static vlmn_status load_pixels(vlmn_llava *m, const vlmn_qa_item *it, const vlmn_qa_params *p, vlmn_vision_input *vi)
{
    memset(vi, 0, sizeof *vi);
    if (!it->image) return VLMN_OK;
    vlmn_image *img;
    vlmn_status st = vlmn_img_load(it->image, &img);
    if (st) return st;
    st = vlmn_llava_image_input(m, img, p->mode, p->max_tiles, vi);
    vlmn_img_free(img);
    if (st) return vlmn_error_prefix(st, "sample '%s'", it->id);
    return VLMN_OK;
}

/* Prompt ids for an item: the template with the image slot (or the question alone for
 * a text-only item). */
static vlmn_status build(vlmn_llava *m, const vlmn_qa_item *it, const vlmn_vision_input *vi, const char *tmpl,
                         const char *answer, int32_t **ids, uint8_t **mod, int64_t *n)
{
    const vlmn_tok *tok = vlmn_llava_tokenizer(m);
    if (it->image) return vlmn_prompt_build(tok, tmpl, it->question, answer, vi->n_image_tokens, ids, mod, n);
    char *text;
    size_t lo, hi;
    vlmn_status st = vlmn_prompt_format(tmpl, it->question, answer, &text, &lo, &hi);
    if (st) return st;
    /* drop the "<image>\n" slot of a text-only sample (InternVL's "<img><image></img>\n":
     * chat() without pixel values adds no image at all) */
    char *at = strstr(text, VLMN_PROMPT_IMAGE);
    if (at) {
        static const char IMG0[] = "<img>", IMG1[] = "</img>";
        const char *end = at + strlen(VLMN_PROMPT_IMAGE);
        if (at - text >= (ptrdiff_t)strlen(IMG0) && !memcmp(at - strlen(IMG0), IMG0, strlen(IMG0)) &&
            !strncmp(end, IMG1, strlen(IMG1))) {
            at -= strlen(IMG0);
            end += strlen(IMG1);
        }
        if (*end == '\n') end++;
        size_t k = (size_t)(end - at);
        size_t off = (size_t)(at - text);
        memmove(at, at + k, strlen(at + k) + 1);
        if (lo > off) lo -= k, hi -= k;
    }
    st = vlmn_prompt_tokenize(tok, text, strlen(text), lo, hi, 0, ids, mod, n);
    vlmn_free(text);
    return st;
}

vlmn_status vlmn_qa_answer(vlmn_llava *m, const vlmn_qa_item *items, int n, const int64_t *index, uint64_t seed_base,
                           const vlmn_qa_params *p, char **answers, int32_t **tokens, int *n_tokens)
{
    vlmn_status st = VLMN_OK;
    const vlmn_tok *tok = vlmn_llava_tokenizer(m);
    vlmn_gen_seq *seqs = vlmn_calloc((size_t)n, sizeof *seqs);
    vlmn_vision_input *pix = vlmn_calloc((size_t)n, sizeof *pix);
    uint8_t **mods = vlmn_calloc((size_t)n, sizeof *mods);
    if (!seqs || !pix || !mods) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        answers[i] = NULL;
        tokens[i] = NULL;
        n_tokens[i] = 0;
    }
    for (int i = 0; i < n; i++) {
        int32_t *ids;
        int64_t len;
        if ((st = load_pixels(m, &items[i], p, &pix[i]))) goto done;
        if ((st = build(m, &items[i], &pix[i], p->template_name, NULL, &ids, &mods[i], &len))) {
            st = vlmn_error_prefix(st, "sample '%s'", items[i].id);
            goto done;
        }
        seqs[i] = (vlmn_gen_seq){.ids = ids, .n = len, .image = pix[i].pix, .n_tiles = pix[i].n_tiles,
                                 .seed = seed_base + (uint64_t)(index ? index[i] : i),
                                 .out = vlmn_malloc((size_t)p->gen.max_tokens * sizeof(int32_t))};
        if (!seqs[i].out) {
            st = vlmn_error(VLMN_E_NOMEM, "out of memory");
            goto done;
        }
    }
    vlmn_gen_params g = p->gen;
    if (g.eos < 0) g.eos = vlmn_tok_eos(tok);
    int32_t stop[1];
    if (!g.n_stop && vlmn_prompt_stop_token(tok, p->template_name, &stop[0])) {
        g.stop = stop; /* the template's end of turn (InternVL: <|im_end|>) */
        g.n_stop = 1;
    }
    if ((st = vlmn_generate(m, seqs, n, &g))) goto done;
    for (int i = 0; i < n; i++) {
        char *text;
        if ((st = vlmn_tok_decode(tok, seqs[i].out, seqs[i].n_out, &text, NULL))) goto done;
        /* the answer follows "ASSISTANT:": LLaVA strips the surrounding spaces */
        char *a = text;
        while (*a == ' ') a++;
        size_t L = strlen(a);
        while (L && isspace((unsigned char)a[L - 1])) L--;
        memmove(text, a, L);
        text[L] = 0;
        answers[i] = text;
        tokens[i] = seqs[i].out;
        n_tokens[i] = seqs[i].n_out;
        seqs[i].out = NULL;
    }
done:
    if (st && answers)
        for (int i = 0; i < n; i++) {
            vlmn_free(answers[i]);
            vlmn_free(tokens[i]);
            answers[i] = NULL;
            tokens[i] = NULL;
        }
    for (int i = 0; seqs && i < n; i++) {
        vlmn_free((void *)seqs[i].ids);
        vlmn_free(seqs[i].out);
    }
    for (int i = 0; pix && i < n; i++) vlmn_free(pix[i].pix);
    for (int i = 0; mods && i < n; i++) vlmn_free(mods[i]);
    vlmn_free(seqs);
    vlmn_free(pix);
    vlmn_free(mods);
    return st;
}

vlmn_status vlmn_qa_loglik(vlmn_llava *m, const vlmn_qa_item *item, const vlmn_qa_params *p,
                           const uint8_t *const *neuron_mask, double *mean_ll, int *n_tok)
{
    *mean_ll = NAN;
    *n_tok = 0;
    if (!item->answer) return vlmn_error(VLMN_E_ARG, "sample '%s' has no reference answer", item->id);
    const int V = vlmn_llava_get_info(m)->n_vocab;
    float *lg = NULL;
    vlmn_vision_input vi;
    int32_t *ids = NULL;
    uint8_t *mod = NULL;
    int64_t n = 0;
    vlmn_status st = load_pixels(m, item, p, &vi);
    if (!st && (st = build(m, item, &vi, p->template_name, item->answer, &ids, &mod, &n)))
        st = vlmn_error_prefix(st, "sample '%s'", item->id);
    if (st) goto done;
    int64_t first = -1, cnt = 0;
    for (int64_t i = 0; i < n; i++)
        if (mod[i] == VLMN_MOD_TEXT) {
            if (first < 0) first = i;
            cnt++;
        }
    if (first < 1) {
        st = vlmn_error(VLMN_E_ARG, "sample '%s': the reference answer has no tokens", item->id);
        goto done;
    }
    /* logits of positions first-1 .. n-1: row r predicts position first + r */
    const int64_t nl = n - first + 1;
    lg = vlmn_malloc((size_t)nl * (size_t)V * sizeof(float));
    if (!lg) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto done;
    }
    vlmn_forward_opts o = {.neuron_mask = neuron_mask, .logits = lg, .n_logits = nl, .n_tiles = vi.n_tiles};
    if ((st = vlmn_llava_forward(m, ids, n, vi.pix, &o))) goto done;
    double sum = 0;
    for (int64_t i = first; i < n; i++) {
        if (mod[i] != VLMN_MOD_TEXT) continue;
        const float *row = lg + (i - first) * V;
        double mx = row[0];
        for (int v = 1; v < V; v++)
            if (row[v] > mx) mx = row[v];
        double z = 0;
        for (int v = 0; v < V; v++) z += exp((double)row[v] - mx);
        sum += (double)row[ids[i]] - mx - log(z);
    }
    *mean_ll = sum / (double)cnt;
    *n_tok = (int)cnt;
done:
    vlmn_free(vi.pix);
    vlmn_free(lg);
    vlmn_free(ids);
    vlmn_free(mod);
    return st;
}

/* ---- grades ---- */

/* SQuAD normalisation into words: lower case, punctuation out, articles out. */
static int words(const char *s, char ***out)
{
    size_t L = strlen(s);
    char *b = vlmn_malloc(L + 1);
    char **w = vlmn_malloc((L / 2 + 2) * sizeof *w);
    int n = 0;
    if (!b || !w) {
        vlmn_free(b);
        vlmn_free(w);
        *out = NULL;
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < L; i++) {
        unsigned char c = (unsigned char)s[i];
        if (ispunct(c)) continue;
        b[k++] = (char)tolower(c);
    }
    b[k] = 0;
    char *save = NULL;
    for (char *t = strtok_r(b, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (!strcmp(t, "a") || !strcmp(t, "an") || !strcmp(t, "the")) continue;
        w[n++] = t;
    }
    w[n] = b; /* the buffer, freed by free_words */
    *out = w;
    return n;
}

static void free_words(char **w, int n)
{
    if (!w) return;
    vlmn_free(w[n]);
    vlmn_free(w);
}

double vlmn_grade_exact(const char *answer, const char *reference)
{
    char **a, **r;
    int na = words(answer, &a), nr = words(reference, &r);
    double e = 0;
    if (na >= 0 && nr >= 0 && na == nr) {
        e = 1;
        for (int i = 0; i < na; i++)
            if (strcmp(a[i], r[i])) e = 0;
    }
    free_words(a, na);
    free_words(r, nr);
    return e;
}

double vlmn_grade_f1(const char *answer, const char *reference)
{
    char **a, **r;
    int na = words(answer, &a), nr = words(reference, &r);
    double f = 0;
    if (na == 0 && nr == 0) {
        f = 1;
    } else if (na > 0 && nr > 0) {
        uint8_t *used = vlmn_calloc((size_t)nr, 1);
        int common = 0;
        for (int i = 0; used && i < na; i++)
            for (int j = 0; j < nr; j++)
                if (!used[j] && !strcmp(a[i], r[j])) {
                    used[j] = 1;
                    common++;
                    break;
                }
        vlmn_free(used);
        if (common) {
            double p = (double)common / na, rc = (double)common / nr;
            f = 2 * p * rc / (p + rc);
        }
    }
    free_words(a, na);
    free_words(r, nr);
    return f;
}
