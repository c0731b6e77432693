/* Whole-file reads for parsers of untrusted files (images, .npy): one bounded,
 * checked read so each parser only sees a buffer. */
#ifndef VLMN_CORE_FILE_H
#define VLMN_CORE_FILE_H

#include "vlmn/vlmn.h"

#include <stdio.h>

/* Read the regular file `path` (at most max_bytes) into a new buffer (free with
 * vlmn_free). Errors name the file: cannot open, not a regular file, too large
 * (`what` says what kind of file, e.g. "image"), out of memory, read failed. */
vlmn_status vlmn_file_read(const char *path, uint64_t max_bytes, const char *what,
                           unsigned char **buf, size_t *len);

/* Read all of stream `f` (a pipe: stdin for a "-" argument) into a new buffer, at most
 * max_bytes; `name` names it in errors ("stdin"). Free with vlmn_free. */
vlmn_status vlmn_file_read_stream(FILE *f, const char *name, uint64_t max_bytes, const char *what,
                                  unsigned char **buf, size_t *len);
#endif
