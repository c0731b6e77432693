/* Thread-local error messages and status names (core; everything calls this). */
#include "vlmn/vlmn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

static const char *const status_names[VLMN_STATUS_COUNT_] = {
    [VLMN_OK] = "ok",
    [VLMN_E_NOMEM] = "out of memory",
    [VLMN_E_IO] = "I/O error",
    [VLMN_E_FORMAT] = "malformed input",
    [VLMN_E_UNSUPPORTED] = "unsupported",
    [VLMN_E_ARG] = "bad argument",
    [VLMN_E_NOTFOUND] = "not found",
    [VLMN_E_TYPE] = "wrong type",
    [VLMN_E_RANGE] = "out of range",
    [VLMN_E_MISMATCH] = "mismatch",
    [VLMN_E_INTERRUPTED] = "interrupted",
    [VLMN_E_DB] = "database error",
    [VLMN_E_NET] = "network error",
    [VLMN_E_INTERNAL] = "internal error",
};

const char *vlmn_strerror(vlmn_status st)
{
    if ((unsigned)st >= VLMN_STATUS_COUNT_ || !status_names[st])
        return "unknown status";
    return status_names[st];
}

const char *vlmn_errmsg(void) { return errbuf; }

void vlmn_clear_error(void) { errbuf[0] = 0; }

vlmn_status vlmn_error(vlmn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return st;
}

vlmn_status vlmn_error_prefix(vlmn_status st, const char *fmt, ...)
{
    char prefix[512], old[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    const char *rest = old[0] ? old : vlmn_strerror(st);
    /* Assemble by hand: the result is cut at the buffer size, which is intended. */
    size_t np = strlen(prefix), nr = strlen(rest), cap = sizeof errbuf - 1, k = 0;
    for (size_t i = 0; i < np && k < cap; i++) errbuf[k++] = prefix[i];
    if (k < cap) errbuf[k++] = ':';
    if (k < cap) errbuf[k++] = ' ';
    for (size_t i = 0; i < nr && k < cap; i++) errbuf[k++] = rest[i];
    errbuf[k] = 0;
    return st;
}

const char *vlmn_version(void) { return VLMN_VERSION; }
