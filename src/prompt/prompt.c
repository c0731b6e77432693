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

/* InternVL 2.5's system message (InternVLChatModel.system_message, used by chat()) */
static const char SYS_INTERNVL[] =
    "\xe4\xbd\xa0\xe6\x98\xaf\xe4\xb9\xa6\xe7\x94\x9f\xc2\xb7\xe4\xb8\x87\xe8\xb1\xa1"
    "\xef\xbc\x8c\xe8\x8b\xb1\xe6\x96\x87\xe5\x90\x8d\xe6\x98\xaf"
    "InternVL\xef\xbc\x8c\xe6\x98\xaf\xe7\x94\xb1\xe4\xb8\x8a\xe6\xb5\xb7\xe4\xba\xba"
    "\xe5\xb7\xa5\xe6\x99\xba\xe8\x83\xbd\xe5\xae\x9e\xe9\xaa\x8c\xe5\xae\xa4\xe3\x80"
    "\x81\xe6\xb8\x85\xe5\x8d\x8e\xe5\xa4\xa7\xe5\xad\xa6\xe5\x8f\x8a\xe5\xa4\x9a\xe5"
    "\xae\xb6\xe5\x90\x88\xe4\xbd\x9c\xe5\x8d\x95\xe4\xbd\x8d\xe8\x81\x94\xe5\x90\x88"
    "\xe5\xbc\x80\xe5\x8f\x91\xe7\x9a\x84\xe5\xa4\x9a\xe6\xa8\xa1\xe6\x80\x81\xe5\xa4"
    "\xa7\xe8\xaf\xad\xe8\xa8\x80\xe6\xa8\xa1\xe5\x9e\x8b\xe3\x80\x82";

static const char *const templates[] = {"llava-v1", "vicuna-v1", "plain", "llava-hf", "internvl", NULL};

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
    } else if (strcmp(name, "internvl") == 0) {
        /* InternVL's conversation.py internlm2-chat (SeparatorStyle.MPT: no newline
         * after <|im_end|>) as chat() builds it: question = "<image>\n" + question,
         * "<image>" then replaced by <img> + the tiles' IMG_CONTEXT tokens + </img>
         * (here the image positions). With an answer the assistant turn is closed. */
        vlmn_buf_adds(&b, "<|im_start|>system\n");
        vlmn_buf_adds(&b, SYS_INTERNVL);
        vlmn_buf_adds(&b, "<|im_end|><|im_start|>user\n<img>" VLMN_PROMPT_IMAGE "</img>\n");
        vlmn_buf_adds(&b, question ? question : "");
        vlmn_buf_adds(&b, "<|im_end|><|im_start|>assistant\n");
        if (answer && *answer) {
            *ans_begin = b.n;
            vlmn_buf_adds(&b, answer);
            *ans_end = b.n;
            vlmn_buf_adds(&b, "<|im_end|>");
        }
    } else {
        return vlmn_error(VLMN_E_NOTFOUND, "prompt: no template \"%s\" (llava-v1, vicuna-v1, plain, llava-hf, internvl)",
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
static const char *const CHAT_SPECIALS[] = {"<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"};
#define N_SPECIAL (3 + (int)(sizeof CHAT_SPECIALS / sizeof *CHAT_SPECIALS))

static vlmn_status encode_chunk(const vlmn_tok *t, const char *prompt, size_t b, size_t e,
                                size_t tb, size_t te, pout *o)
{
    /* BOS/EOS/UNK, and InternVL's chat tokens where the vocabulary has them as control
     * or user-defined pieces (HF splits every added token out of the text) */
    int32_t special[N_SPECIAL] = {vlmn_tok_bos(t), vlmn_tok_eos(t), vlmn_tok_unk(t)};
    for (int k = 3; k < N_SPECIAL; k++) {
        const char *s = CHAT_SPECIALS[k - 3];
        int32_t id = vlmn_tok_find(t, s, strlen(s));
        vlmn_tok_type ty = id >= 0 ? vlmn_tok_token_type(t, id) : 0;
        special[k] = ty == VLMN_TOKT_CONTROL || ty == VLMN_TOKT_USER_DEFINED ? id : -1;
    }
    vlmn_status st;
    size_t pos = b;
    while (pos < e) {
        size_t best = e, best_len = 0;
        int32_t best_id = -1;
        for (int k = 0; k < N_SPECIAL; k++) {
            if (special[k] < 0) continue;
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

bool vlmn_prompt_stop_token(const vlmn_tok *t, const char *template_name, int32_t *id)
{
    if (!t || !template_name || strcmp(template_name, "internvl")) return false;
    /* conversation.py internlm2-chat: sep "<|im_end|>", which generation stops at */
    static const char END[] = "<|im_end|>";
    int32_t k = vlmn_tok_find(t, END, sizeof END - 1);
    vlmn_tok_type ty = k >= 0 ? vlmn_tok_token_type(t, k) : 0;
    if (ty != VLMN_TOKT_CONTROL && ty != VLMN_TOKT_USER_DEFINED) return false;
    *id = k;
    return true;
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
