/* `vlmn info FILE... [--json]`: what a GGUF file holds. Text: header, general and
 * architecture hyperparameters, tokenizer summary, tensor table. JSON: one object per
 * file per line (format in docs/gguf.md), integers printed exactly, floats as %.17g. */
#include "cli.h"
#include "vlmn/gguf.h"
#include "vlmn/model.h"
#include "cli/info_hf.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define JSON_ARRAY_MAX 64 /* longer arrays are summarised as {"type":..,"count":..} */
#define TEXT_ARRAY_MAX 8

static void sprintf_(vlmn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sprintf_(vlmn_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    vlmn_buf_adds(b, tmp);
}

/* Length of a valid UTF-8 sequence at p (n bytes left), or 0 if invalid. */
static int utf8_len(const uint8_t *p, uint64_t n)
{
    uint8_t c = p[0];
    int len;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if ((uint64_t)len > n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return len;
}

/* JSON string literal: escapes as cJSON/Python json do; invalid UTF-8 bytes become
 * U+FFFD so the output is always valid JSON. */
static void json_str(vlmn_buf *b, const char *s, uint64_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    vlmn_buf_add(b, "\"", 1);
    for (uint64_t i = 0; i < n;) {
        uint8_t c = p[i];
        if (c < 0x80) {
            switch (c) {
            case '"': vlmn_buf_add(b, "\\\"", 2); break;
            case '\\': vlmn_buf_add(b, "\\\\", 2); break;
            case '\b': vlmn_buf_add(b, "\\b", 2); break;
            case '\f': vlmn_buf_add(b, "\\f", 2); break;
            case '\n': vlmn_buf_add(b, "\\n", 2); break;
            case '\r': vlmn_buf_add(b, "\\r", 2); break;
            case '\t': vlmn_buf_add(b, "\\t", 2); break;
            default:
                if (c < 0x20) sprintf_(b, "\\u%04x", c);
                else vlmn_buf_add(b, (const char *)&p[i], 1);
            }
            i++;
            continue;
        }
        int l = utf8_len(p + i, n - i);
        if (l) {
            vlmn_buf_add(b, (const char *)p + i, (size_t)l);
            i += (uint64_t)l;
        } else {
            vlmn_buf_add(b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    vlmn_buf_add(b, "\"", 1);
}

/* A valid-UTF-8 C string for cJSON object keys (keys hold no NUL: the reader checks);
 * cJSON escapes it when printing. Caller frees. */
static char *key_cstr(vlmn_gguf_str k)
{
    vlmn_buf o = {0};
    const uint8_t *p = (const uint8_t *)k.ptr;
    for (uint64_t i = 0; i < k.len;) {
        int l = p[i] < 0x80 ? 1 : utf8_len(p + i, k.len - i);
        if (l) vlmn_buf_add(&o, (const char *)p + i, (size_t)l);
        else vlmn_buf_add(&o, "\xef\xbf\xbd", 3);
        i += l ? (uint64_t)l : 1;
    }
    if (!o.p) vlmn_buf_adds(&o, "");
    if (o.oom) {
        vlmn_free(o.p);
        return NULL;
    }
    return o.p;
}

static void fmt_float(vlmn_buf *b, double d, bool json)
{
    if (isnan(d)) vlmn_buf_adds(b, json ? "\"nan\"" : "nan");
    else if (isinf(d)) vlmn_buf_adds(b, d > 0 ? (json ? "\"inf\"" : "inf") : (json ? "\"-inf\"" : "-inf"));
    else sprintf_(b, json ? "%.17g" : "%.9g", d);
}

/* Scalar or string value as text (JSON literal when json). */
static void fmt_scalar(vlmn_buf *b, const vlmn_gguf_value *v, bool json)
{
    uint64_t u;
    int64_t s;
    double d;
    if (v->type == VLMN_GGUF_BOOL) vlmn_buf_adds(b, v->data[0] ? "true" : "false");
    else if (v->type == VLMN_GGUF_STRING) json_str(b, (const char *)v->data, v->len);
    else if (vlmn_gguf_value_f64(v, &d)) fmt_float(b, d, json);
    else if (vlmn_gguf_value_u64(v, &u)) sprintf_(b, "%" PRIu64, u);
    else if (vlmn_gguf_value_i64(v, &s)) sprintf_(b, "%" PRId64, s);
}

static cJSON *raw(vlmn_buf *b)
{
    cJSON *r = b->oom ? NULL : cJSON_CreateRaw(b->p ? b->p : "null");
    vlmn_free(b->p);
    memset(b, 0, sizeof *b);
    return r;
}

static cJSON *value_json(const vlmn_gguf_value *v)
{
    if (v->type != VLMN_GGUF_ARRAY) {
        vlmn_buf b = {0};
        fmt_scalar(&b, v, true);
        return raw(&b);
    }
    if (v->arr_count > JSON_ARRAY_MAX) {
        cJSON *o = cJSON_CreateObject();
        vlmn_buf b = {0};
        sprintf_(&b, "%" PRIu64, v->arr_count);
        if (o && (!cJSON_AddStringToObject(o, "type", vlmn_gguf_vtype_name(v->arr_type)) ||
                  !cJSON_AddItemToObject(o, "count", raw(&b)))) {
            cJSON_Delete(o);
            return NULL;
        }
        vlmn_free(b.p);
        return o;
    }
    cJSON *a = cJSON_CreateArray();
    vlmn_gguf_iter it;
    vlmn_gguf_value e;
    vlmn_gguf_iter_init(&it, v);
    while (a && vlmn_gguf_iter_next(&it, &e)) {
        cJSON *item = value_json(&e);
        if (!item || !cJSON_AddItemToArray(a, item)) {
            cJSON_Delete(item);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *u64_json(uint64_t v)
{
    vlmn_buf b = {0};
    sprintf_(&b, "%" PRIu64, v);
    return raw(&b);
}

static int info_json(const vlmn_gguf *g)
{
    cJSON *root = cJSON_CreateObject(), *md = cJSON_CreateObject(), *ts = cJSON_CreateArray();
    bool ok = root && md && ts;
    vlmn_buf b = {0};
    json_str(&b, vlmn_gguf_path(g), strlen(vlmn_gguf_path(g)));
    ok = ok && cJSON_AddItemToObject(root, "file", raw(&b));
    ok = ok && cJSON_AddItemToObject(root, "version", u64_json(vlmn_gguf_version(g)));
    ok = ok && cJSON_AddItemToObject(root, "alignment", u64_json(vlmn_gguf_alignment(g)));
    int64_t ai = vlmn_gguf_find_key(g, "general.architecture");
    vlmn_gguf_value av;
    if (ai >= 0 && !vlmn_gguf_kv_value(g, ai, &av) && av.type == VLMN_GGUF_STRING) {
        json_str(&b, (const char *)av.data, av.len);
        ok = ok && cJSON_AddItemToObject(root, "architecture", raw(&b));
    } else {
        ok = ok && cJSON_AddNullToObject(root, "architecture");
    }
    for (int64_t i = 0; ok && i < vlmn_gguf_n_kv(g); i++) {
        vlmn_gguf_value v;
        vlmn_gguf_kv_value(g, i, &v);
        char *k = key_cstr(vlmn_gguf_key(g, i));
        cJSON *item = value_json(&v);
        ok = k && item && cJSON_AddItemToObject(md, k, item);
        if (!ok) cJSON_Delete(item);
        vlmn_free(k);
    }
    if (ok) ok = cJSON_AddItemToObject(root, "metadata", md);
    else cJSON_Delete(md);
    md = NULL;
    for (int64_t i = 0; ok && i < vlmn_gguf_n_tensors(g); i++) {
        const vlmn_gguf_tensor *t = vlmn_gguf_tensor_at(g, i);
        cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
        json_str(&b, t->name.ptr, t->name.len);
        ok = o && shape && cJSON_AddItemToObject(o, "name", raw(&b)) &&
             cJSON_AddStringToObject(o, "type", vlmn_type_name(t->type));
        for (uint32_t d = t->n_dims; ok && d-- > 0;) ok = cJSON_AddItemToArray(shape, u64_json(t->ne[d]));
        if (ok) ok = cJSON_AddItemToObject(o, "shape", shape);
        else cJSON_Delete(shape);
        ok = ok && cJSON_AddItemToObject(o, "offset", u64_json(t->offset)) &&
             cJSON_AddItemToObject(o, "bytes", u64_json(t->nbytes)) && cJSON_AddItemToArray(ts, o);
        if (!ok) cJSON_Delete(o);
    }
    if (ok) ok = cJSON_AddItemToObject(root, "tensors", ts);
    else cJSON_Delete(ts);
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    vlmn_free(b.p);
    if (!out) return cli_errorf("info", 1, "%s: out of memory formatting JSON", vlmn_gguf_path(g));
    fputs(out, stdout);
    fputc('\n', stdout);
    free(out);
    return 0;
}

/* ---- Text ----------------------------------------------------------------------- */

static void fmt_text_value(vlmn_buf *b, const vlmn_gguf_value *v)
{
    if (v->type != VLMN_GGUF_ARRAY) {
        fmt_scalar(b, v, false);
        return;
    }
    if (v->arr_count > TEXT_ARRAY_MAX) {
        sprintf_(b, "[%" PRIu64 " x %s]", v->arr_count, vlmn_gguf_vtype_name(v->arr_type));
        return;
    }
    vlmn_gguf_iter it;
    vlmn_gguf_value e;
    vlmn_gguf_iter_init(&it, v);
    vlmn_buf_adds(b, "[");
    for (int k = 0; vlmn_gguf_iter_next(&it, &e); k++) {
        if (k) vlmn_buf_adds(b, ", ");
        fmt_text_value(b, &e);
    }
    vlmn_buf_adds(b, "]");
}

static void print_kv(const vlmn_gguf *g, int64_t i)
{
    vlmn_buf b = {0};
    vlmn_gguf_value v;
    vlmn_gguf_str k = vlmn_gguf_key(g, i);
    vlmn_gguf_kv_value(g, i, &v);
    json_str(&b, k.ptr, k.len); /* keys are printed sanitised, without the quotes */
    printf("  %.*s = ", b.p ? (int)b.n - 2 : 0, b.p ? b.p + 1 : "");
    vlmn_free(b.p);
    memset(&b, 0, sizeof b);
    fmt_text_value(&b, &v);
    printf("%s\n", b.p ? b.p : "");
    vlmn_free(b.p);
}

static bool has_prefix(vlmn_gguf_str k, const char *p)
{
    size_t n = strlen(p);
    return k.len > n && !memcmp(k.ptr, p, n);
}

static void human_bytes(char *out, size_t n, uint64_t v)
{
    if (v >= (1ull << 30)) snprintf(out, n, "%.2f GiB", (double)v / (1ull << 30));
    else if (v >= (1ull << 20)) snprintf(out, n, "%.2f MiB", (double)v / (1ull << 20));
    else if (v >= 1024) snprintf(out, n, "%.1f KiB", (double)v / 1024);
    else snprintf(out, n, "%" PRIu64 " B", v);
}

/* "id" or "id (token)" for tokenizer ids. */
static void print_token_id(const vlmn_gguf *g, const char *label, const char *key)
{
    uint32_t id;
    if (vlmn_gguf_get_u32(g, key, &id)) return;
    vlmn_gguf_str tok;
    vlmn_buf b = {0};
    if (!vlmn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", id, &tok)) json_str(&b, tok.ptr, tok.len);
    printf(", %s %u%s%s", label, id, b.p ? " " : "", b.p ? b.p : "");
    vlmn_free(b.p);
}

static int info_text(const vlmn_gguf *g)
{
    char sz[32];
    human_bytes(sz, sizeof sz, vlmn_gguf_file_size(g));
    printf("%s: GGUF v%u, %" PRId64 " metadata keys, %" PRId64 " tensors, alignment %" PRIu64 ", %s\n",
           vlmn_gguf_path(g), vlmn_gguf_version(g), vlmn_gguf_n_kv(g), vlmn_gguf_n_tensors(g),
           vlmn_gguf_alignment(g), sz);
    const char *arch = NULL;
    if (vlmn_gguf_get_str(g, "general.architecture", &arch)) arch = NULL;
    printf("architecture: %s\n", arch ? arch : "(none)");

    printf("general:\n");
    for (int64_t i = 0; i < vlmn_gguf_n_kv(g); i++)
        if (has_prefix(vlmn_gguf_key(g, i), "general.")) print_kv(g, i);
    if (arch && *arch) {
        char prefix[128];
        snprintf(prefix, sizeof prefix, "%s.", arch);
        printf("hyperparameters (%s.*):\n", arch);
        for (int64_t i = 0; i < vlmn_gguf_n_kv(g); i++)
            if (has_prefix(vlmn_gguf_key(g, i), prefix)) print_kv(g, i);
    }
    int64_t ti = vlmn_gguf_find_key(g, "tokenizer.ggml.tokens");
    const char *model = NULL;
    if (ti >= 0 || !vlmn_gguf_get_str(g, "tokenizer.ggml.model", &model)) {
        if (vlmn_gguf_get_str(g, "tokenizer.ggml.model", &model)) model = "(none)";
        printf("tokenizer: model %s, vocab size %" PRIu64, model, vlmn_gguf_arr_count(g, ti));
        print_token_id(g, "bos", "tokenizer.ggml.bos_token_id");
        print_token_id(g, "eos", "tokenizer.ggml.eos_token_id");
        print_token_id(g, "unk", "tokenizer.ggml.unknown_token_id");
        print_token_id(g, "pad", "tokenizer.ggml.padding_token_id");
        int64_t mi = vlmn_gguf_find_key(g, "tokenizer.ggml.merges");
        if (mi >= 0) printf(", %" PRIu64 " merges", vlmn_gguf_arr_count(g, mi));
        printf("\n");
    }
    int other = 0;
    for (int64_t i = 0; i < vlmn_gguf_n_kv(g); i++) {
        vlmn_gguf_str k = vlmn_gguf_key(g, i);
        char prefix[128];
        snprintf(prefix, sizeof prefix, "%s.", arch ? arch : "\x01");
        if (!has_prefix(k, "general.") && !has_prefix(k, "tokenizer.") && !has_prefix(k, prefix)) {
            if (!other++) printf("other keys:\n");
            print_kv(g, i);
        }
    }

    uint64_t total = 0;
    size_t wname = 4;
    for (int64_t i = 0; i < vlmn_gguf_n_tensors(g); i++) {
        const vlmn_gguf_tensor *t = vlmn_gguf_tensor_at(g, i);
        total += t->nbytes;
        if (t->name.len > wname) wname = t->name.len > 60 ? 60 : (size_t)t->name.len;
    }
    human_bytes(sz, sizeof sz, total);
    printf("tensors (%" PRId64 ", %s):\n", vlmn_gguf_n_tensors(g), sz);
    if (vlmn_gguf_n_tensors(g)) printf("  %-*s  %-7s  %-24s  %s\n", (int)wname, "name", "type", "shape", "bytes");
    for (int64_t i = 0; i < vlmn_gguf_n_tensors(g); i++) {
        const vlmn_gguf_tensor *t = vlmn_gguf_tensor_at(g, i);
        vlmn_buf nb = {0}, shp = {0};
        json_str(&nb, t->name.ptr, t->name.len);
        vlmn_buf_adds(&shp, "[");
        for (uint32_t d = t->n_dims; d-- > 0;) sprintf_(&shp, "%" PRIu64 "%s", t->ne[d], d ? ", " : "");
        vlmn_buf_adds(&shp, "]");
        printf("  %-*.*s  %-7s  %-24s  %" PRIu64 "\n", (int)wname, nb.p ? (int)nb.n - 2 : 0, nb.p ? nb.p + 1 : "",
               vlmn_type_name(t->type), shp.p ? shp.p : "", t->nbytes);
        vlmn_free(nb.p);
        vlmn_free(shp.p);
    }
    return 0;
}

const struct vlmn_cmd vlmn_cmd_info;

static int run_info(int argc, char **argv)
{
    bool json = false;
    int nfiles = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "json", 0)) json = true;
        else if (cli_unknown_option(&vlmn_cmd_info, argv, i)) return 2;
        else nfiles++;
    }
    if (!nfiles) return cli_errorf("info", 2, "no FILE given (see 'vlmn help info')");
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "json", 0)) continue;
        if (vlmn_hf_is_folder(argv[i])) {
            fflush(stdout);
            if (vlmn_info_hf(argv[i], json)) rc = 1;
            continue;
        }
        vlmn_gguf *g = NULL;
        vlmn_status st = vlmn_gguf_open(argv[i], &g);
        if (st) {
            fflush(stdout);
            rc = cli_fail("info", st);
            continue;
        }
        if (json ? info_json(g) : info_text(g)) rc = 1;
        vlmn_gguf_close(g);
    }
    fflush(stdout);
    return rc;
}

const struct vlmn_cmd vlmn_cmd_info = {
    "info",
    "show the metadata and tensors of GGUF files and Hugging Face folders",
    "vlmn info FILE|DIR... [--json]\n"
    "  Print each GGUF file's header, architecture hyperparameters, tokenizer summary and\n"
    "  tensor table (name, type, shape in PyTorch order, bytes).\n"
    "  --json  one JSON object per file per line: file, version, alignment, architecture,\n"
    "          metadata (every key; arrays longer than 64 as {\"type\":..,\"count\":..}),\n"
    "          tensors (name, type, shape, offset, bytes). See docs/gguf.md.\n"
    "  A Hugging Face folder (config.json + safetensors, docs/hf.md): architecture,\n"
    "  sub-configs, shards, dtypes, tokenizer files, preprocessing, what the engine loads\n"
    "  (LLaVA) and the tensor table; --json: folder, architecture, config, shards,\n"
    "  tensors (name, dtype, shape, bytes, shard), tokenizer_files.\n"
    "  Exit 1 if any file cannot be read (\"vlmn info: PATH: problem\" on stderr).\n",
    run_info,
};
