/* Shared between the GGUF reader and writer (not public): a reader over a header-only
 * buffer whose tensors live elsewhere, for vlmn_gguf_writer_view. */
#ifndef VLMN_GGUF_INT_H
#define VLMN_GGUF_INT_H

#include "vlmn/gguf.h"

/* Takes ownership of hdr and data (vlmn_malloc'd) and calls release(owner) at close, or
 * at once on failure. data[i] is tensor i's bytes, in header order. */
vlmn_status vlmn_gguf_open_view_(void *hdr, size_t size, const char *name, const void **data, uint64_t n_data,
                                 void (*release)(void *), void *owner, vlmn_gguf **out);

#endif
