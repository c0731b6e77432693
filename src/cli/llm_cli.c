/* Parsing of the LLM options shared by explain, simulate and prune-eval --judge. */
#include "cli.h"
#include "llm_cli.h"

int llm_cli_opt(int argc, char **argv, int *i, vlmn_llm_opts *lo, vlmn_xprompt_opts *po)
{
    const char *v;
    int r;
    long l;
    double d;
    if ((r = cli_opt(argc, argv, i, "base-url", 0, &v))) {
        if (r < 0) return -1;
        lo->base_url = v;
    } else if ((r = cli_opt(argc, argv, i, "api-key-env", 0, &v))) {
        if (r < 0) return -1;
        lo->api_key_env = v;
    } else if ((r = cli_opt(argc, argv, i, "concurrency", 0, &v))) {
        if (r < 0 || cli_parse_long(v, 1, 1024, &l)) return -1;
        lo->concurrency = (int)l;
    } else if ((r = cli_opt(argc, argv, i, "max-attempts", 0, &v))) {
        if (r < 0 || cli_parse_long(v, 1, 100, &l)) return -1;
        lo->max_attempts = (int)l;
    } else if ((r = cli_opt(argc, argv, i, "timeout", 0, &v))) {
        if (r < 0 || cli_parse_double(v, &d) || !(d > 0)) return -1;
        lo->timeout_s = d;
    } else if ((r = cli_opt(argc, argv, i, "price-in", 0, &v))) {
        if (r < 0 || cli_parse_double(v, &d) || d < 0) return -1;
        lo->price_in_per_mtok = d;
    } else if ((r = cli_opt(argc, argv, i, "price-out", 0, &v))) {
        if (r < 0 || cli_parse_double(v, &d) || d < 0) return -1;
        lo->price_out_per_mtok = d;
    } else if (po && (r = cli_opt(argc, argv, i, "temperature", 0, &v))) {
        if (r < 0 || cli_parse_double(v, &d)) return -1;
        po->temperature = d;
    } else if (po && (r = cli_opt(argc, argv, i, "max-tokens", 0, &v))) {
        if (r < 0 || cli_parse_long(v, 1, 1000000, &l)) return -1;
        po->max_tokens = (int)l;
    } else if (po && (r = cli_opt(argc, argv, i, "seed", 0, &v))) {
        if (r < 0 || cli_parse_long(v, 0, 0x7fffffffL, &l)) return -1;
        po->has_seed = true;
        po->seed = l;
    } else {
        return 0;
    }
    return 1;
}
