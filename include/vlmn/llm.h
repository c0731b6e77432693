/* The project's one HTTP client: JSON POSTs to OpenAI-compatible servers (chat
 * completions) and to any other JSON endpoint (the segmenter protocol of the visual
 * simulator), many in flight at once (libcurl multi), retried with backoff, answered
 * from a SQLite response cache when the same request was answered before, with token
 * and cost accounting. Used by explain / simulate / score and prune-eval's judge.
 * Flow: prompts (src/explain) -> [this] -> run tables. See docs/explain.md.
 *
 * Secrets: the API key is read from the environment variable named by
 * opts.api_key_env when the client is created, sent only as the `Authorization: Bearer`
 * header, and never written to the cache (cache keys hash the URL path and body only),
 * the run, a log line or an error message. */
#ifndef VLMN_LLM_H
#define VLMN_LLM_H

#include "vlmn/vlmn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- transport */

typedef struct vlmn_llm_opts {
    const char *base_url;    /* e.g. "https://api.openai.com/v1" (default), "http://127.0.0.1:8080/v1" */
    const char *api_key_env; /* env var holding the key (default "OPENAI_API_KEY"); unset/empty: no
                                Authorization header (local servers) */
    int concurrency;         /* requests in flight at once (default 8, 1..1024) */
    int max_attempts;        /* tries per item, first included (default 6) */
    double timeout_s;        /* whole-request timeout per attempt (default 120) */
    double connect_timeout_s;/* default 10 */
    double backoff_base_s;   /* first retry waits base * 2^(k-1) * U(0.5,1.5), capped (default 1) */
    double backoff_max_s;    /* cap of one wait (default 60) */
    const char *cache_path;  /* SQLite response cache (created); NULL: no cache */
    bool cache_read;         /* answer from the cache when present (default true when cache_path) */
    double price_in_per_mtok;  /* prices per million prompt / completion tokens, for the cost */
    double price_out_per_mtok; /* figure only (0: not counted); nothing is hard-coded */
    uint64_t jitter_seed;    /* seed of the backoff jitter (0: from time and pid) */
} vlmn_llm_opts;

/* Defaults as documented above (no cache). */
void vlmn_llm_opts_default(vlmn_llm_opts *o);

typedef struct vlmn_llm vlmn_llm;

/* Validates a 200 reply before it counts as answered (and is cached): return VLMN_OK, or
 * an error with a message (vlmn_error) to make the item retry as if the server had
 * failed; after max_attempts the item fails with that message. NULL: any 2xx counts. */
typedef vlmn_status (*vlmn_llm_check_fn)(const char *body, size_t len, void *user);

/* Final state of one item. */
typedef enum vlmn_llm_state {
    VLMN_LLM_PENDING = 0,
    VLMN_LLM_ANSWERED = 1,
    VLMN_LLM_FAILED = 2,
} vlmn_llm_state;

/* One request and, after vlmn_llm_run, its outcome. The caller fills the first block;
 * the client owns and frees the second (vlmn_llm_item_clear). */
typedef struct vlmn_llm_item {
    const char *path;        /* appended to base_url: "/chat/completions", "/segment" */
    const char *body;        /* JSON request body (caller-owned, alive during the run) */
    vlmn_llm_check_fn check; /* see above; vlmn_llm_chat_check for chat replies */
    void *user;              /* passed to check and to the done callback */

    vlmn_llm_state state;
    int http_status;         /* of the last attempt (0: no HTTP answer) */
    char *reply;             /* reply body, NUL-terminated (ANSWERED) */
    size_t reply_len;
    char *error;             /* why it failed (FAILED): server message or transport error */
    int attempts;            /* requests actually sent for it (0 when cached) */
    bool cached;             /* answered from the cache */
    char key[65];            /* cache key: hex SHA-256 of "POST " path "\n" body */
} vlmn_llm_item;

void vlmn_llm_item_clear(vlmn_llm_item *it);

/* Called once per item as soon as it ends (answered or failed), on the caller's thread,
 * so results can be committed one by one (a killed run loses nothing answered).
 * A non-OK return stops the run (items still pending stay PENDING). */
typedef vlmn_status (*vlmn_llm_done_fn)(vlmn_llm_item *it, void *user);

/* Totals since create (accumulated over runs). */
typedef struct vlmn_llm_stats {
    int64_t items, answered, failed, cached;
    int64_t requests;       /* HTTP requests sent (retries included) */
    int64_t retries;        /* requests beyond each item's first */
    int64_t http_429, http_5xx, timeouts, dropped, malformed;
    int64_t prompt_tokens, completion_tokens; /* from `usage` of chat replies (cached too) */
    double cost;            /* tokens * opts prices */
    double wait_s;          /* time spent waiting for retry-after / backoff */
} vlmn_llm_stats;

vlmn_status vlmn_llm_create(const vlmn_llm_opts *o, vlmn_llm **out);
void vlmn_llm_free(vlmn_llm *c);

/* Sends items[0..n) with at most opts.concurrency in flight, retrying on 429, 5xx,
 * timeouts, dropped connections and check() failures (waiting the larger of backoff and
 * the server's `retry-after` / `x-ratelimit-reset-*` headers); any other 4xx fails the
 * item at once with the server's error message. Each item ends ANSWERED or FAILED
 * (with its reason) unless `done` stops the run. Returns an error only for the client
 * itself (cache I/O, out of memory, `done` stopping it), never for a failed item. */
vlmn_status vlmn_llm_run(vlmn_llm *c, vlmn_llm_item *items, size_t n, vlmn_llm_done_fn done, void *user);

const vlmn_llm_stats *vlmn_llm_get_stats(const vlmn_llm *c);
/* "requests 12 (retries 2), cached 3, failed 0, tokens 1234 in / 56 out, cost 0.0012" */
void vlmn_llm_stats_line(const vlmn_llm_stats *s, char *buf, size_t n);

/* The cache key of (path, body): hex SHA-256 of "POST " path "\n" body. */
void vlmn_llm_key(const char *path, const char *body, char hex[65]);

/* ---------------------------------------------------------------- chat */

typedef enum vlmn_llm_part_kind { VLMN_LLM_TEXT = 0, VLMN_LLM_IMAGE_PNG = 1 } vlmn_llm_part_kind;

typedef struct vlmn_llm_part {
    vlmn_llm_part_kind kind;
    const char *text;            /* TEXT */
    const uint8_t *png;          /* IMAGE_PNG: bytes sent as data:image/png;base64,... */
    size_t png_len;
    const char *detail;          /* image detail "low"/"high"/"auto" or NULL (not sent) */
} vlmn_llm_part;

typedef struct vlmn_llm_msg {
    const char *role;            /* "system", "user", "assistant" */
    const vlmn_llm_part *parts;  /* one TEXT part alone is sent as a plain string content */
    int n_parts;
} vlmn_llm_msg;

typedef struct vlmn_llm_chat {
    const char *model;
    const vlmn_llm_msg *msgs;
    int n_msgs;
    double temperature;          /* < 0: not sent */
    int max_tokens;              /* <= 0: not sent */
    bool has_seed;
    int64_t seed;
    const char *schema_name;     /* with schema_json: response_format {type:json_schema,strict:true} */
    const char *schema_json;     /* JSON text of the schema; NULL: no response_format */
    bool logprobs;
    int top_logprobs;            /* 0..20, with logprobs */
} vlmn_llm_chat;

/* The request body (vlmn_malloc'd JSON, keys in a fixed order so equal requests hash
 * equally). */
vlmn_status vlmn_llm_chat_body(const vlmn_llm_chat *c, char **json);

typedef struct vlmn_llm_top {
    char *token;
    double logprob;
} vlmn_llm_top;

typedef struct vlmn_llm_tok {
    char *token;
    double logprob;
    int n_top;
    vlmn_llm_top *top;
} vlmn_llm_tok;

typedef struct vlmn_llm_reply {
    char *content;               /* choices[0].message.content */
    char *finish_reason;         /* may be NULL */
    int64_t prompt_tokens, completion_tokens; /* -1 when the reply has no usage */
    int n_tokens;                /* choices[0].logprobs.content, when asked for */
    vlmn_llm_tok *tokens;
} vlmn_llm_reply;

/* Parses a chat completion reply; VLMN_E_FORMAT with a message for anything that is not
 * one (no choices, content not a string, logprobs of the wrong shape, ...). Bounded:
 * at most VLMN_LLM_MAX_TOKENS logprob entries and VLMN_LLM_MAX_TOP alternatives each. */
#define VLMN_LLM_MAX_TOKENS 65536
#define VLMN_LLM_MAX_TOP 20
vlmn_status vlmn_llm_chat_parse(const char *body, size_t len, vlmn_llm_reply *out);
void vlmn_llm_reply_free(vlmn_llm_reply *r);
/* check() for chat replies: vlmn_llm_chat_parse succeeds and content is non-empty. */
vlmn_status vlmn_llm_chat_check(const char *body, size_t len, void *user);

/* Server error message of a non-2xx body ({"error":{"message":...}} or the first 200
 * bytes of the text) into buf. */
void vlmn_llm_error_message(const char *body, size_t len, char *buf, size_t n);

/* Base64 of n bytes (vlmn_malloc'd, NUL-terminated). */
char *vlmn_llm_base64(const uint8_t *p, size_t n);
/* The bytes of standard base64 text (padding optional; ASCII whitespace skipped; a
 * "data:...;base64," prefix skipped). *out vlmn_malloc'd; VLMN_E_FORMAT for any other
 * character or a bad length. */
vlmn_status vlmn_llm_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_n);

#ifdef __cplusplus
}
#endif
#endif
