/* The loopback HTTP harness of the test servers (tests/llm/llm_server.c, the OpenAI
 * protocol; tests/explain/seg_server.c, the oracle segmenter): request bodies gathered per
 * connection, and a daemon on 127.0.0.1 whose ephemeral port is written to a file for the
 * test that started it. Tests only; the product's server is src/browse/serve.c. */
#ifndef VLMN_MHD_TEST_H
#define VLMN_MHD_TEST_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

/* Per-connection state; a server's own connection struct starts with one of these. */
typedef struct mhd_body {
    char *body; /* NUL-terminated, NULL until the first chunk */
    size_t n, cap;
    bool too_big; /* more than the limit arrived; the rest was dropped */
} mhd_body;

/* Appends one upload chunk, keeping at most `max` bytes. */
void mhd_body_append(mhd_body *b, const char *data, size_t n, size_t max);

/* Serves `handle` on 127.0.0.1 (port chosen by the kernel, written to port_file through a
 * rename) until SIGTERM or SIGINT; each request's state (*ptr, calloc'd by the handler,
 * starting with an mhd_body) is freed when it ends. Returns 0, or 1 when the daemon cannot start (said on stderr). */
int mhd_serve(const char *name, MHD_AccessHandlerCallback handle, const char *port_file);

#endif
