/* Generation on top of vlmn_llava_step: prefill each prompt into its own KV cache, then
 * batched decode steps (one row per unfinished sequence through every GEMM), greedy or
 * temperature/top-p sampling, stop at EOS, a stop token (InternVL's <|im_end|>) or
 * max_tokens. Tiled images (InternVL) prefill with their own tile count. Flow: prompt
 * ids -> [this] -> token ids (and capture hooks on every step). See docs/generate.md. */
#include "vlmn/model.h"

#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: the sampler's generator (tiny state, any seed is fine) */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct prob {
    double p;
    int id;
} prob;

static int prob_desc(const void *a, const void *b)
{
    const prob *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

int32_t vlmn_sample_token(const float *logits, int n_vocab, float temperature, float top_p, uint64_t *rng)
{
    if (n_vocab < 1) return -1;
    if (!(temperature > 0.0f)) return argmax(logits, n_vocab);
    prob *pr = malloc((size_t)n_vocab * sizeof *pr);
    if (!pr) return argmax(logits, n_vocab); /* out of memory: the mode, never garbage */
    const double mx = logits[argmax(logits, n_vocab)];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) {
        pr[i].p = exp(((double)logits[i] - mx) / (double)temperature);
        pr[i].id = i;
        sum += pr[i].p;
    }
    qsort(pr, (size_t)n_vocab, sizeof *pr, prob_desc);
    int keep = n_vocab;
    if (top_p > 0.0f && top_p < 1.0f) {
        double acc = 0.0;
        for (int i = 0; i < n_vocab; i++) {
            acc += pr[i].p / sum;
            if (acc >= (double)top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double mass = 0.0;
    for (int i = 0; i < keep; i++) mass += pr[i].p;
    /* uniform in [0, mass) from the top 53 bits */
    double u = (double)(next_u64(rng) >> 11) * (1.0 / 9007199254740992.0) * mass;
    int32_t id = pr[keep - 1].id;
    double acc = 0.0;
    for (int i = 0; i < keep; i++) {
        acc += pr[i].p;
        if (u < acc) {
            id = pr[i].id;
            break;
        }
    }
    free(pr);
    return id;
}

static bool is_stop(const vlmn_gen_params *p, int32_t t)
{
    if (t == p->eos) return true;
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop && t == p->stop[i]) return true;
    return false;
}

vlmn_status vlmn_generate(vlmn_llava *m, vlmn_gen_seq *seqs, int n_seq, const vlmn_gen_params *p)
{
    if (n_seq < 1 || !seqs || !p) return vlmn_error(VLMN_E_ARG, "generate: nothing to generate");
    if (p->max_tokens < 1) return vlmn_error(VLMN_E_ARG, "generate: max_tokens %d < 1", p->max_tokens);
    const int V = vlmn_llava_get_info(m)->n_vocab;
    vlmn_forward_opts o = {0};
    if (p->opts) o = *p->opts;
    o.n_logits = 1;
    vlmn_status st = VLMN_OK;
    vlmn_kv **kv = vlmn_calloc((size_t)n_seq, sizeof *kv);
    vlmn_kv **akv = vlmn_calloc((size_t)n_seq, sizeof *akv);
    int32_t *tok = vlmn_calloc((size_t)n_seq, sizeof *tok);
    const int32_t **aid = vlmn_calloc((size_t)n_seq, sizeof *aid);
    int64_t *one = vlmn_calloc((size_t)n_seq, sizeof *one);
    int *act = vlmn_calloc((size_t)n_seq, sizeof *act);
    uint64_t *rng = vlmn_calloc((size_t)n_seq, sizeof *rng);
    float *logits = vlmn_malloc((size_t)n_seq * (size_t)V * sizeof(float));
    if (!kv || !akv || !tok || !aid || !one || !act || !rng || !logits) {
        st = vlmn_error(VLMN_E_NOMEM, "generate: out of memory");
        goto done;
    }
    o.logits = logits;
    int n_act = 0;
    for (int b = 0; b < n_seq; b++) {
        vlmn_gen_seq *s = &seqs[b];
        s->n_out = 0;
        s->hit_eos = false;
        rng[b] = s->seed;
        /* the last generated token is never fed back: n + max_tokens - 1 positions */
        if ((st = vlmn_kv_create(m, s->n + p->max_tokens - 1, &kv[b]))) goto done;
        const float *img = s->image;
        o.n_tiles = s->n_tiles; /* each prompt is prefilled on its own: its own tile count */
        if ((st = vlmn_llava_step(m, 1, &kv[b], &s->ids, &s->n, &img, &o))) goto done;
        int32_t t = vlmn_sample_token(logits, V, p->temperature, p->top_p, &rng[b]);
        if (is_stop(p, t)) {
            s->hit_eos = true;
            continue;
        }
        s->out[s->n_out++] = t;
        if (p->on_token) p->on_token(p->user, b, t, s->n_out);
        if (s->n_out < p->max_tokens) act[n_act++] = b;
    }
    o.n_tiles = 0; /* decode steps have no image positions */
    while (n_act > 0) {
        for (int i = 0; i < n_act; i++) {
            vlmn_gen_seq *s = &seqs[act[i]];
            akv[i] = kv[act[i]];
            tok[i] = s->out[s->n_out - 1];
            aid[i] = &tok[i];
            one[i] = 1;
        }
        if ((st = vlmn_llava_step(m, n_act, akv, aid, one, NULL, &o))) goto done;
        int still = 0;
        for (int i = 0; i < n_act; i++) {
            int b = act[i];
            vlmn_gen_seq *s = &seqs[b];
            int32_t t = vlmn_sample_token(logits + (size_t)i * V, V, p->temperature, p->top_p, &rng[b]);
            if (is_stop(p, t)) {
                s->hit_eos = true;
                continue;
            }
            s->out[s->n_out++] = t;
            if (p->on_token) p->on_token(p->user, b, t, s->n_out);
            if (s->n_out < p->max_tokens) act[still++] = b;
        }
        n_act = still;
    }
done:
    if (kv)
        for (int b = 0; b < n_seq; b++) vlmn_kv_free(kv[b]);
    vlmn_free(kv);
    vlmn_free(akv);
    vlmn_free(tok);
    vlmn_free(aid);
    vlmn_free(one);
    vlmn_free(act);
    vlmn_free(rng);
    vlmn_free(logits);
    return st;
}
