/* Options shared by the commands that talk to an LLM server (explain, simulate,
 * prune-eval --judge): --base-url, --api-key-env, --concurrency, --max-attempts,
 * --timeout, --price-in, --price-out, --temperature, --max-tokens, --seed. */
#ifndef VLMN_CLI_LLM_CLI_H
#define VLMN_CLI_LLM_CLI_H

#include "vlmn/llm.h"
#include "vlmn/explain.h"

#define LLM_CLI_USAGE                                                                              \
    "  --base-url URL       OpenAI-compatible server (https://api.openai.com/v1; llama-server,\n"   \
    "                       vLLM, Ollama: http://127.0.0.1:PORT/v1)\n"                              \
    "  --api-key-env NAME   environment variable holding the key (OPENAI_API_KEY); never stored\n"  \
    "  --concurrency N      requests in flight (8)\n"                                               \
    "  --max-attempts N     tries per request, retries on 429/5xx/timeouts/drops (6)\n"             \
    "  --timeout S          seconds per request (120)\n"                                            \
    "  --price-in P, --price-out P   prices per million prompt / completion tokens (cost line)\n"   \
    "  --temperature T, --max-tokens N, --seed N   sampling settings sent to the server\n"

/* 1: argv[*i] was one of these (consumed), 0: not, -1: bad value (usage error). */
int llm_cli_opt(int argc, char **argv, int *i, vlmn_llm_opts *lo, vlmn_xprompt_opts *po);
#endif
