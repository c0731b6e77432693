/* Streaming dataset reader (LLaVA conversation JSON array, JSONL): a small byte
 * scanner cuts out one top-level element at a time (tracking strings and escapes),
 * and only that slice is handed to cJSON. Memory = one sample, whatever the file size. */
#include "vlmn/dataset.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define DS_BUF 65536

struct vlmn_dataset {
    FILE *f;
    char *name;
    vlmn_ds_format fmt;
    unsigned char buf[DS_BUF];
    size_t pos, len;
    uint64_t off;      /* file offset of buf[pos] */
    bool started;      /* LLaVA: '[' consumed */
    bool done;         /* end reached */
    int64_t index;     /* index of the next element */
    /* current element */
    char *elem;
    size_t elem_len, elem_cap;
    uint64_t elem_off;
    cJSON *json;
    char *question;
    char idbuf[64];
    void *mem;         /* vlmn_ds_open_mem: the bytes behind f */
};

static int ds_getc(vlmn_dataset *ds)
{
    if (ds->pos == ds->len) {
        ds->len = fread(ds->buf, 1, DS_BUF, ds->f);
        ds->pos = 0;
        if (ds->len == 0) return EOF;
    }
    ds->off++;
    return ds->buf[ds->pos++];
}

static int ds_peek(vlmn_dataset *ds)
{
    if (ds->pos == ds->len) {
        ds->len = fread(ds->buf, 1, DS_BUF, ds->f);
        ds->pos = 0;
        if (ds->len == 0) return EOF;
    }
    return ds->buf[ds->pos];
}

static bool is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int skip_ws(vlmn_dataset *ds)
{
    int c;
    while ((c = ds_peek(ds)) != EOF && is_ws(c)) ds_getc(ds);
    return c;
}

static vlmn_status ds_fail(vlmn_dataset *ds, uint64_t off, const char *what)
{
    ds->done = true;
    return vlmn_error(VLMN_E_FORMAT, "%s: sample %lld (byte offset %llu): %s", ds->name,
                      (long long)ds->index, (unsigned long long)off, what);
}

static vlmn_status elem_push(vlmn_dataset *ds, int c)
{
    if (ds->elem_len + 1 >= ds->elem_cap) {
        if (ds->elem_cap >= VLMN_DS_MAX_SAMPLE_BYTES)
            return ds_fail(ds, ds->elem_off, "sample larger than 64 MiB");
        size_t cap = ds->elem_cap ? ds->elem_cap * 2 : 4096;
        char *p = vlmn_realloc(ds->elem, cap);
        if (!p) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", ds->name);
        ds->elem = p;
        ds->elem_cap = cap;
    }
    ds->elem[ds->elem_len++] = (char)c;
    return VLMN_OK;
}

/* Cut the next element into ds->elem. *eof at the end of the stream. */
static vlmn_status cut_element(vlmn_dataset *ds, bool *eof)
{
    vlmn_status st;
    *eof = false;
    ds->elem_len = 0;
    if (ds->done) {
        *eof = true;
        return VLMN_OK;
    }
    if (ds->fmt == VLMN_DS_JSONL) {
        int c;
        while ((c = ds_peek(ds)) != EOF && is_ws(c)) ds_getc(ds); /* blank lines */
        if (c == EOF) {
            ds->done = true;
            *eof = true;
            return VLMN_OK;
        }
        ds->elem_off = ds->off;
        while ((c = ds_getc(ds)) != EOF && c != '\n')
            if ((st = elem_push(ds, c))) return st;
        if (ferror(ds->f)) return vlmn_error(VLMN_E_IO, "%s: read error", ds->name);
        ds->elem[ds->elem_len] = 0;
        return VLMN_OK;
    }
    /* LLaVA: one element of the top-level array. */
    int c = skip_ws(ds);
    if (!ds->started) {
        if (c != '[') return ds_fail(ds, ds->off, "expected '[' (a JSON array of samples)");
        ds_getc(ds);
        ds->started = true;
        c = skip_ws(ds);
        if (c == ']') goto end_array;
    } else {
        if (c == ']') goto end_array;
        if (c != ',') return ds_fail(ds, ds->off, c == EOF ? "unexpected end of file (missing ']')" : "expected ',' or ']' after a sample");
        ds_getc(ds);
        c = skip_ws(ds);
    }
    if (c != '{') return ds_fail(ds, ds->off, c == EOF ? "unexpected end of file" : "expected '{' (each sample must be an object)");
    ds->elem_off = ds->off;
    int depth = 0;
    bool in_str = false, esc = false;
    for (;;) {
        c = ds_getc(ds);
        if (c == EOF) {
            if (ferror(ds->f)) return vlmn_error(VLMN_E_IO, "%s: read error", ds->name);
            return ds_fail(ds, ds->elem_off, "unexpected end of file inside the sample");
        }
        if ((st = elem_push(ds, c))) return st;
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') {
            if (--depth == 0) break;
        }
    }
    if (c != '}') return ds_fail(ds, ds->elem_off, "mismatched brackets");
    ds->elem[ds->elem_len] = 0;
    return VLMN_OK;
end_array:
    ds_getc(ds);
    c = skip_ws(ds);
    if (c != EOF) return ds_fail(ds, ds->off, "data after the closing ']'");
    ds->done = true;
    *eof = true;
    return VLMN_OK;
}

char *vlmn_ds_clean_question(const char *v)
{
    static const char tag[] = "<image>";
    size_t n = strlen(v), k = 0;
    char *out = vlmn_malloc(n + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        if (strncmp(v + i, tag, sizeof tag - 1) == 0) {
            i += sizeof tag - 1;
            continue;
        }
        out[k++] = v[i++];
    }
    out[k] = 0;
    /* Python str.strip(): ASCII whitespace and the \x1c-\x1f separators. */
#define PYSPACE(ch) ((ch) == ' ' || ((ch) >= '\t' && (ch) <= '\r') || ((ch) >= 0x1c && (ch) <= 0x1f))
    size_t a = 0;
    while (a < k && PYSPACE((unsigned char)out[a])) a++;
    while (k > a && PYSPACE((unsigned char)out[k - 1])) k--;
#undef PYSPACE
    memmove(out, out + a, k - a);
    out[k - a] = 0;
    return out;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Fill s from ds->json; semantic problems go to s->error. */
static vlmn_status build_sample(vlmn_dataset *ds, vlmn_sample *s)
{
    const cJSON *o = ds->json;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (cJSON_IsString(id)) s->id = id->valuestring;
    else if (cJSON_IsNumber(id)) {
        snprintf(ds->idbuf, sizeof ds->idbuf, "%.17g", id->valuedouble);
        s->id = ds->idbuf;
    } else s->id = "";
    s->image = get_str(o, "image");
    const char *q = NULL;
    if (ds->fmt == VLMN_DS_JSONL) {
        q = get_str(o, "question");
        s->answer = get_str(o, "answer");
        if (!q) s->error = "no \"question\" string";
        else if (!s->answer) s->error = "no \"answer\" string";
    } else {
        const cJSON *conv = cJSON_GetObjectItemCaseSensitive(o, "conversations");
        if (!cJSON_IsArray(conv)) s->error = "no \"conversations\" array";
        else {
            const cJSON *t;
            bool seen_human = false;
            cJSON_ArrayForEach(t, conv) {
                const char *from = get_str(t, "from"), *val = get_str(t, "value");
                if (!from || !val) {
                    s->error = "a conversation turn without \"from\"/\"value\" strings";
                    break;
                }
                if (!seen_human && !strcmp(from, "human")) {
                    q = val;
                    seen_human = true;
                } else if (seen_human && !strcmp(from, "gpt")) {
                    s->answer = val;
                    break;
                }
            }
            if (!s->error && !q) s->error = "no \"human\" turn";
            else if (!s->error && !s->answer) s->error = "no \"gpt\" turn after the first \"human\" turn";
        }
    }
    if (!s->error && !s->image) s->error = "no \"image\" string";
    if (q && !s->error) {
        ds->question = vlmn_ds_clean_question(q);
        if (!ds->question) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", ds->name);
        s->question = ds->question;
    }
    if (s->error) {
        s->question = NULL;
        s->answer = NULL;
    }
    return VLMN_OK;
}

static void release_current(vlmn_dataset *ds)
{
    cJSON_Delete(ds->json);
    ds->json = NULL;
    vlmn_free(ds->question);
    ds->question = NULL;
}

vlmn_status vlmn_ds_next(vlmn_dataset *ds, vlmn_sample *s, bool *eof)
{
    memset(s, 0, sizeof *s);
    release_current(ds);
    vlmn_status st = cut_element(ds, eof);
    if (st || *eof) return st;
    s->index = ds->index;
    s->offset = ds->elem_off;
    const char *end = NULL;
    ds->json = cJSON_ParseWithLengthOpts(ds->elem, ds->elem_len, &end, 0);
    if (!ds->json) {
        char what[128];
        const char *ep = cJSON_GetErrorPtr();
        uint64_t at = ds->elem_off;
        if (ep && ep >= ds->elem && ep <= ds->elem + ds->elem_len) at += (uint64_t)(ep - ds->elem);
        snprintf(what, sizeof what, "invalid JSON near byte offset %llu", (unsigned long long)at);
        return ds_fail(ds, ds->elem_off, what);
    }
    if (ds->fmt == VLMN_DS_JSONL) {
        while (end && end < ds->elem + ds->elem_len && is_ws((unsigned char)*end)) end++;
        if (end && end != ds->elem + ds->elem_len) return ds_fail(ds, ds->elem_off, "data after the JSON object on this line");
    }
    if (!cJSON_IsObject(ds->json)) return ds_fail(ds, ds->elem_off, "not a JSON object");
    ds->index++;
    return build_sample(ds, s);
}

vlmn_status vlmn_ds_skip(vlmn_dataset *ds, bool *eof)
{
    release_current(ds);
    vlmn_status st = cut_element(ds, eof);
    if (!st && !*eof) ds->index++;
    return st;
}

static vlmn_status ds_init(vlmn_dataset *ds, vlmn_ds_format fmt)
{
    if (fmt == VLMN_DS_AUTO) {
        int c = skip_ws(ds);
        if (c == '[') fmt = VLMN_DS_LLAVA;
        else if (c == '{') fmt = VLMN_DS_JSONL;
        else
            return vlmn_error(VLMN_E_FORMAT, "%s: byte offset %llu: not a dataset (expected a JSON array '[' or JSON lines '{')",
                              ds->name, (unsigned long long)ds->off);
    }
    ds->fmt = fmt;
    return VLMN_OK;
}

vlmn_status vlmn_ds_open(const char *path, vlmn_ds_format fmt, vlmn_dataset **out)
{
    *out = NULL;
    vlmn_dataset *ds = vlmn_calloc(1, sizeof *ds);
    if (!ds) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    vlmn_status st;
    ds->name = vlmn_strdup(path);
    if (!ds->name) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    ds->f = fopen(path, "rb");
    if (!ds->f) {
        st = vlmn_error(errno == ENOENT ? VLMN_E_NOTFOUND : VLMN_E_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if ((st = ds_init(ds, fmt))) goto fail;
    *out = ds;
    return VLMN_OK;
fail:
    vlmn_ds_close(ds);
    return st;
}

vlmn_status vlmn_ds_open_mem(const void *data, size_t n, const char *name, vlmn_ds_format fmt,
                             vlmn_dataset **out)
{
    *out = NULL;
    vlmn_dataset *ds = vlmn_calloc(1, sizeof *ds);
    if (!ds) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    vlmn_status st;
    ds->name = vlmn_strdup(name);
    if (!ds->name) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    if (n == 0) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: byte offset 0: not a dataset (empty)", name);
        goto fail;
    }
    /* a private copy read through fmemopen (the caller's buffer may go away) */
    ds->mem = vlmn_malloc(n);
    if (!ds->mem) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    memcpy(ds->mem, data, n);
    ds->f = fmemopen(ds->mem, n, "rb");
    if (!ds->f) {
        st = vlmn_error(VLMN_E_IO, "%s: fmemopen: %s", name, strerror(errno));
        goto fail;
    }
    if ((st = ds_init(ds, fmt))) goto fail;
    *out = ds;
    return VLMN_OK;
fail:
    vlmn_ds_close(ds);
    return st;
}

void vlmn_ds_close(vlmn_dataset *ds)
{
    if (!ds) return;
    release_current(ds);
    if (ds->f) fclose(ds->f);
    vlmn_free(ds->elem);
    vlmn_free(ds->name);
    vlmn_free(ds->mem);
    vlmn_free(ds);
}

vlmn_ds_format vlmn_ds_get_format(const vlmn_dataset *ds) { return ds->fmt; }

vlmn_status vlmn_ds_count(const char *path, vlmn_ds_format fmt, int64_t *n)
{
    vlmn_dataset *ds;
    vlmn_status st = vlmn_ds_open(path, fmt, &ds);
    if (st) return st;
    int64_t k = 0;
    bool eof = false;
    while (!(st = vlmn_ds_skip(ds, &eof)) && !eof) k++;
    vlmn_ds_close(ds);
    *n = k;
    return st;
}
