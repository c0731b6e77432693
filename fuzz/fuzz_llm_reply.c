/* libFuzzer target for everything that parses an LLM server's reply (untrusted bytes):
 * the chat-completion parser (content, usage, logprobs), the server error message
 * extractor, the explainer's reply parser, both simulator reply aligners (JSON token
 * list and logprob expectation) on a fixed 4-token sample, the detection / fuzzing
 * scorers' 0/1 answers (both modes, 3 examples), and the judge's lenient Python-dict
 * parser. Parsed values must stay in their documented ranges. */
#include "vlmn/eval.h"
#include "vlmn/explain.h"
#include "vlmn/llm.h"

#include "core/alloc.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* simulated activations are 0..10 or NaN (not aligned) */
static int in_range(const float *v, int n)
{
    for (int i = 0; i < n; i++)
        if (!isnan(v[i]) && !(v[i] >= 0 && v[i] <= 10)) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;

    vlmn_llm_reply r;
    if (!vlmn_llm_chat_parse(s, size, &r)) {
        if (!r.content || r.n_tokens < 0 || r.n_tokens > VLMN_LLM_MAX_TOKENS) abort();
        for (int i = 0; i < r.n_tokens; i++)
            if (r.tokens[i].n_top < 0 || r.tokens[i].n_top > VLMN_LLM_MAX_TOP) abort();
        vlmn_llm_reply_free(&r);
    }
    char msg[256];
    vlmn_llm_error_message(s, size, msg, sizeof msg);
    if (strlen(msg) >= sizeof msg) abort();

    char *expl = NULL;
    if (!vlmn_explain_parse(s, size, &expl) && !expl) abort();
    vlmn_free(expl);

    static const char *const toks[] = {"The", " cat", " sat", "."};
    static const float acts[] = {0.5f, 3.0f, -1.0f, 0.0f};
    vlmn_xsample xs = {.n_text = 4, .text_tokens = toks, .text_acts = acts};
    float sim[4];
    int mism = 0;
    /* mismatches may exceed n_text (extra returned tokens count too) */
    if (!vlmn_textsim_parse_json(&xs, s, size, sim, &mism) && (mism < 0 || !in_range(sim, 4))) abort();
    if (!vlmn_textsim_parse_logprob(&xs, s, size, sim, &mism) && (mism < 0 || !in_range(sim, 4))) abort();

    /* detection / fuzzing answers: 0/1, P(1) in [0, 1] */
    int ans[3];
    double prob[3];
    bool have_prob;
    for (int mode = 0; mode < 2; mode++)
        if (!vlmn_dscore_parse((vlmn_dmode)mode, s, size, 3, ans, prob, &have_prob))
            for (int i = 0; i < 3; i++)
                if ((ans[i] != 0 && ans[i] != 1) || !(prob[i] >= 0 && prob[i] <= 1)) abort();

    int yes = 0;
    double score = 0;
    if (!vlmn_judge_parse(s, &yes, &score) && (yes < 0 || yes > 1 || !(score >= 0 && score <= 5))) abort();
    free(s);
    return 0;
}
