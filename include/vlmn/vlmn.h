/* vlmn: public umbrella header. Status codes, error messages, version.
 * Every library function that can fail returns vlmn_status and leaves a one-line
 * human message (naming the file/key/tensor and the problem) in vlmn_errmsg(). */
#ifndef VLMN_VLMN_H
#define VLMN_VLMN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Append-only: values are stored in run databases and must never change. */
typedef enum vlmn_status {
    VLMN_OK = 0,
    VLMN_E_NOMEM = 1,        /* allocation failed */
    VLMN_E_IO = 2,           /* open/read/write/mmap failed */
    VLMN_E_FORMAT = 3,       /* malformed or hostile input bytes */
    VLMN_E_UNSUPPORTED = 4,  /* well-formed but not supported (type, version, arch) */
    VLMN_E_ARG = 5,          /* bad argument or option from the caller */
    VLMN_E_NOTFOUND = 6,     /* key, tensor, file or id missing */
    VLMN_E_TYPE = 7,         /* value has another type than asked for */
    VLMN_E_RANGE = 8,        /* value out of the allowed range / overflow */
    VLMN_E_MISMATCH = 9,     /* shapes or files that must agree do not */
    VLMN_E_INTERRUPTED = 10, /* stopped by a signal at a clean boundary */
    VLMN_E_DB = 11,          /* SQLite error */
    VLMN_E_NET = 12,         /* network / HTTP error */
    VLMN_E_INTERNAL = 13,
    VLMN_STATUS_COUNT_
} vlmn_status;

/* Static string naming the status ("out of memory", ...). Never NULL. */
const char *vlmn_strerror(vlmn_status st);

/* The message of the last error set on this thread ("" if none). Valid until the
 * next vlmn call on this thread that fails. */
const char *vlmn_errmsg(void);

/* Set this thread's error message (printf-style) and return `st`. For use by
 * library modules: `return vlmn_error(VLMN_E_FORMAT, "%s: bad magic", path);` */
vlmn_status vlmn_error(vlmn_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the current message with "prefix: " (to add context while unwinding). */
vlmn_status vlmn_error_prefix(vlmn_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void vlmn_clear_error(void);

const char *vlmn_version(void);

#ifdef __cplusplus
}
#endif
#endif
