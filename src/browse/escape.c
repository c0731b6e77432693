/* Escaping for every string the browser did not write itself (dataset ids, image paths,
 * token strings, LLM explanations): HTML text and attributes, and JSON strings. */
#include "browse/browse_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "core/alloc.h"

void browse_printf(vlmn_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        vlmn_buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = vlmn_malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    vlmn_buf_add(b, big, (size_t)n);
    vlmn_free(big);
}

void browse_html(vlmn_buf *b, const char *s)
{
    const char *run = s;
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *rep = NULL;
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default:
            if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) rep = "?";
        }
        if (rep) {
            vlmn_buf_add(b, run, (size_t)(s - run));
            vlmn_buf_adds(b, rep);
            run = s + 1;
        }
    }
    if (s) vlmn_buf_add(b, run, (size_t)(s - run));
}

/* Length of a valid UTF-8 sequence at s (1..4), 0 if invalid. */
static int utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    int n = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    if (!n || s[0] > 0xF4) return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;            /* overlong */
    if (n == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0;           /* surrogates */
    if (n == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;            /* overlong */
    if (n == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0;           /* > U+10FFFF */
    return n;
}

void browse_json_str(vlmn_buf *b, const char *s)
{
    vlmn_buf_adds(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        unsigned char c = *p;
        char esc[8];
        if (c == '"') vlmn_buf_adds(b, "\\\"");
        else if (c == '\\') vlmn_buf_adds(b, "\\\\");
        else if (c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            vlmn_buf_adds(b, esc);
        } else if (c < 0x80) {
            vlmn_buf_add(b, p, 1);
        } else {
            int n = utf8_len(p);
            if (n) {
                vlmn_buf_add(b, p, (size_t)n);
                p += n;
                continue;
            }
            vlmn_buf_adds(b, "\\ufffd");
        }
        p++;
    }
    vlmn_buf_adds(b, "\"");
}

void browse_json_num(vlmn_buf *b, double v)
{
    if (isfinite(v)) browse_printf(b, "%.9g", v);
    else vlmn_buf_adds(b, "null");
}
