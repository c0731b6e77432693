/* LLaVA prompt templates and tokenizer_image_token: prompt text -> ids with image slots
 * and per-position modality labels. Reference semantics: LLaVA's llava/conversation.py
 * (SeparatorStyle.TWO / PLAIN), llava/mm_utils.py (tokenizer_image_token) and HF's slow
 * LlamaTokenizer (special tokens split out of the text, each other piece of text
 * SentencePiece-encoded with its own dummy prefix). */
#include "vlmn/prompt.h"

#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"

#define PROMPT_MAX_IMAGE_TOKENS (1 << 20)

static const char SYS_HUMAN[] =
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions.";
static const char SYS_USER[] =
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.";

static const char *const templates[] = {"llava-v1", "vicuna-v1", "plain", "llava-hf", NULL};

const char *const *vlmn_prompt_templates(void) { return templates; }

vlmn_status vlmn_prompt_format(const char *name, const char *question, const char *answer,
                               char **text, size_t *ans_begin, size_t *ans_end)
{
    *text = NULL;
    *ans_begin = *ans_end = 0;
    if (!name) return vlmn_error(VLMN_E_ARG, "prompt: no template name");
    if ((question && strstr(question, VLMN_PROMPT_IMAGE)) || (answer && strstr(answer, VLMN_PROMPT_IMAGE)))
        return vlmn_error(VLMN_E_ARG, "prompt: question or answer contains \"%s\"", VLMN_PROMPT_IMAGE);
    vlmn_buf b = {0};
    if (strcmp(name, "llava-v1") == 0 || strcmp(name, "vicuna-v1") == 0) {
        /* conversation.py, SeparatorStyle.TWO: system + sep, then per message
         * role + ": " + message + seps[i % 2] (sep " ", sep2 "</s>"), an empty last
         * message is role + ":". The image goes first in the question as "<image>\n". */
        vlmn_buf_adds(&b, name[0] == 'l' ? SYS_HUMAN : SYS_USER);
        vlmn_buf_adds(&b, " USER: " VLMN_PROMPT_IMAGE "\n");
        vlmn_buf_adds(&b, question ? question : "");
        vlmn_buf_adds(&b, " ASSISTANT:");
        if (answer && *answer) { /* get_prompt: an empty message is "role:" like None */
            vlmn_buf_adds(&b, " ");
            *ans_begin = b.n;
            vlmn_buf_adds(&b, answer);
            *ans_end = b.n;
            vlmn_buf_adds(&b, "</s>");
        }
    } else if (strcmp(name, "llava-hf") == 0) {
        /* llava-hf's chat_template.json rendered for [user: image + question, assistant:
         * answer]: role.upper() + ": ", images as "<image>\n", each text + " "; without an
         * answer the generation prompt "ASSISTANT:". No system prompt. */
        vlmn_buf_adds(&b, "USER: " VLMN_PROMPT_IMAGE "\n");
        vlmn_buf_adds(&b, question ? question : "");
        vlmn_buf_adds(&b, " ASSISTANT:");
        if (answer) {
            vlmn_buf_adds(&b, " ");
            *ans_begin = b.n;
            vlmn_buf_adds(&b, answer);
            *ans_end = b.n;
            vlmn_buf_adds(&b, " ");
        }
    } else if (strcmp(name, "plain") == 0) {
        /* train.py preprocess_plain: "<image>" + answer + conv_llava_plain.sep ("\n"). */
        if (question && *question)
            return vlmn_error(VLMN_E_ARG, "prompt: template plain takes no question");
        vlmn_buf_adds(&b, VLMN_PROMPT_IMAGE);
        if (answer) {
            *ans_begin = b.n;
            vlmn_buf_adds(&b, answer);
            *ans_end = b.n;
            vlmn_buf_adds(&b, "\n");
        }
    } else {
        return vlmn_error(VLMN_E_NOTFOUND, "prompt: no template \"%s\" (llava-v1, vicuna-v1, plain, llava-hf)",
                          name);
    }
    if (b.oom) {
        vlmn_free(b.p);
        *ans_begin = *ans_end = 0;
        return vlmn_error(VLMN_E_NOMEM, "prompt: out of memory");
    }
    *text = b.p;
    return VLMN_OK;
}

/* Output being built. */
typedef struct pout {
    int32_t *ids;
    uint8_t *mod;
    int64_t n, cap;
} pout;

static bool pout_push(pout *o, int32_t id, uint8_t mod)
{
    if (o->n == o->cap) {
        int64_t cap = o->cap ? o->cap * 2 : 256;
        int32_t *ni = vlmn_realloc(o->ids, (size_t)cap * sizeof *ni);
        if (!ni) return false;
        o->ids = ni;
        uint8_t *nm = vlmn_realloc(o->mod, (size_t)cap);
        if (!nm) return false;
        o->mod = nm;
        o->cap = cap;
    }
    o->ids[o->n] = id;
    o->mod[o->n++] = mod;
    return true;
}

static uint8_t label(int64_t b, int64_t e, size_t tb, size_t te)
{
    return tb < te && b < (int64_t)te && e > (int64_t)tb ? VLMN_MOD_TEXT : VLMN_MOD_PROMPT;
}

/* SentencePiece-encode prompt[b, e) (no BOS/EOS) and append with labels. */
static vlmn_status encode_segment(const vlmn_tok *t, const char *prompt, size_t b, size_t e,
                                  size_t tb, size_t te, pout *o)
{
    int32_t *ids = NULL;
    int64_t *sp = NULL, n = 0;
    if (e <= b) return VLMN_OK;
    vlmn_status st = vlmn_tok_encode_spans(t, prompt + b, e - b, 0, &ids, &sp, &n);
    for (int64_t i = 0; st == VLMN_OK && i < n; i++)
        if (!pout_push(o, ids[i], label((int64_t)b + sp[2 * i], (int64_t)b + sp[2 * i + 1], tb, te)))
            st = vlmn_error(VLMN_E_NOMEM, "prompt: out of memory");
    vlmn_free(ids);
    vlmn_free(sp);
    return st;
}

/* One chunk between "<image>"s, as HF's tokenizer(chunk) without its BOS: the texts of
 * the special tokens are cut out (earliest match, longest on ties, as HF's Trie.split)
 * and become their ids; they are AddedTokens with lstrip/rstrip off in LLaVA's
 * tokenizer_config.json, so the text around them is not stripped. */
static vlmn_status encode_chunk(const vlmn_tok *t, const char *prompt, size_t b, size_t e,
                                size_t tb, size_t te, pout *o)
{
    int32_t special[3] = {vlmn_tok_bos(t), vlmn_tok_eos(t), vlmn_tok_unk(t)};
    vlmn_status st;
    size_t pos = b;
    while (pos < e) {
        size_t best = e, best_len = 0;
        int32_t best_id = -1;
        for (int k = 0; k < 3; k++) {
            size_t pl = 0;
            const char *p = vlmn_tok_piece(t, special[k], &pl);
            if (!p || pl == 0 || pl > e - pos) continue;
            const char *hit = memmem(prompt + pos, e - pos, p, pl);
            if (!hit) continue;
            size_t at = (size_t)(hit - prompt);
            if (at < best || (at == best && pl > best_len)) {
                best = at;
                best_len = pl;
                best_id = special[k];
            }
        }
        if ((st = encode_segment(t, prompt, pos, best, tb, te, o))) return st;
        if (best_id < 0) break;
        if (!pout_push(o, best_id, label((int64_t)best, (int64_t)(best + best_len), tb, te)))
            return vlmn_error(VLMN_E_NOMEM, "prompt: out of memory");
        pos = best + best_len;
    }
    return VLMN_OK;
}

vlmn_status vlmn_prompt_tokenize(const vlmn_tok *t, const char *prompt, size_t len,
                                 size_t text_begin, size_t text_end, int n_image_tokens,
                                 int32_t **ids, uint8_t **modality, int64_t *n)
{
    vlmn_status st = VLMN_OK;
    pout o = {0};
    *ids = NULL;
    *modality = NULL;
    *n = 0;
    if (!t || (!prompt && len))
        return vlmn_error(VLMN_E_ARG, "prompt: NULL tokenizer or prompt");
    if (n_image_tokens < 0 || n_image_tokens > PROMPT_MAX_IMAGE_TOKENS)
        return vlmn_error(VLMN_E_RANGE, "prompt: %d image tokens (0..%d)", n_image_tokens,
                          PROMPT_MAX_IMAGE_TOKENS);
    if (text_begin > text_end || text_end > len)
        return vlmn_error(VLMN_E_RANGE, "prompt: text range [%zu, %zu) outside the prompt (%zu bytes)",
                          text_begin, text_end, len);
    /* tokenizer_image_token keeps the first chunk's BOS and drops the others'. */
    if ((vlmn_tok_default_flags(t) & VLMN_TOK_BOS) && !pout_push(&o, vlmn_tok_bos(t), VLMN_MOD_PROMPT))
        goto nomem;
    const size_t il = sizeof VLMN_PROMPT_IMAGE - 1;
    for (size_t pos = 0;;) {
        const char *hit = len - pos >= il ? memmem(prompt + pos, len - pos, VLMN_PROMPT_IMAGE, il) : NULL;
        size_t end = hit ? (size_t)(hit - prompt) : len;
        if ((st = encode_chunk(t, prompt, pos, end, text_begin, text_end, &o))) goto fail;
        if (!hit) break;
        for (int k = 0; k < n_image_tokens; k++)
            if (!pout_push(&o, VLMN_PROMPT_IMAGE_ID, VLMN_MOD_IMAGE)) goto nomem;
        pos = end + il;
    }
    if (!o.ids) { /* nothing at all: still hand back allocations, as the tokenizer does */
        o.ids = vlmn_malloc(sizeof *o.ids);
        o.mod = vlmn_malloc(1);
        if (!o.ids || !o.mod) goto nomem;
    }
    *ids = o.ids;
    *modality = o.mod;
    *n = o.n;
    return VLMN_OK;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "prompt: out of memory");
fail:
    vlmn_free(o.ids);
    vlmn_free(o.mod);
    return st;
}

vlmn_status vlmn_prompt_build(const vlmn_tok *t, const char *template_name, const char *question,
                              const char *answer, int n_image_tokens, int32_t **ids,
                              uint8_t **modality, int64_t *n)
{
    char *text = NULL;
    size_t ab, ae;
    *ids = NULL;
    *modality = NULL;
    *n = 0;
    vlmn_status st = vlmn_prompt_format(template_name, question, answer, &text, &ab, &ae);
    if (st) return st;
    st = vlmn_prompt_tokenize(t, text, strlen(text), ab, ae, n_image_tokens, ids, modality, n);
    vlmn_free(text);
    return st;
}
