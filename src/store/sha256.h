/* SHA-256 (FIPS 180-4) for provenance hashes of model and dataset files in the run
 * store. Small and dependency-free; not constant-time (no secrets are hashed). */
#ifndef VLMN_STORE_SHA256_H
#define VLMN_STORE_SHA256_H

#include "vlmn/vlmn.h"

typedef struct vlmn_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} vlmn_sha256;

void vlmn_sha256_init(vlmn_sha256 *c);
void vlmn_sha256_update(vlmn_sha256 *c, const void *data, size_t n);
void vlmn_sha256_final(vlmn_sha256 *c, uint8_t out[32]);
/* Hex digest (65 bytes with NUL) and size of a file. */
vlmn_status vlmn_sha256_file(const char *path, char hex[65], uint64_t *size);

#endif
