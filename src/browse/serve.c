/* The browser's HTTP side: one request target -> one response (vlmn_browse_handle),
 * images from the run's sample list only, and the libmicrohttpd server that binds
 * 127.0.0.1 unless told otherwise. Requests are answered on one thread, so the one
 * read-only SQLite connection is never shared. */
#include "browse/browse_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "vlmn/draw.h"
#include "vlmn/image.h"

#define BROWSE_MAX_IMAGE_BYTES (64u << 20)
#define BROWSE_CSP                                                                                                 \
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; " \
    "frame-ancestors 'none'"

/* Image type by its first bytes; NULL when not an image we serve. */
static const char *image_type(const unsigned char *h, size_t n, const char **ext)
{
    if (n >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF) return *ext = "jpg", "image/jpeg";
    if (n >= 8 && !memcmp(h, "\x89PNG\r\n\x1a\n", 8)) return *ext = "png", "image/png";
    if (n >= 6 && !memcmp(h, "GIF8", 4)) return *ext = "gif", "image/gif";
    if (n >= 12 && !memcmp(h, "RIFF", 4) && !memcmp(h + 8, "WEBP", 4)) return *ext = "webp", "image/webp";
    if (n >= 2 && h[0] == 'B' && h[1] == 'M') return *ext = "bmp", "image/bmp";
    return NULL;
}

static bool has_dotdot(const char *p)
{
    for (const char *s = p; (s = strstr(s, "..")); s += 2)
        if ((s == p || s[-1] == '/') && (s[2] == 0 || s[2] == '/')) return true;
    return false;
}

/* Read a regular file of at most max bytes. */
static int read_file(const char *path, char **bytes, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0) return -1;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > (off_t)BROWSE_MAX_IMAGE_BYTES) {
        close(fd);
        return -1;
    }
    char *p = vlmn_malloc((size_t)st.st_size);
    size_t got = 0;
    while (p && got < (size_t)st.st_size) {
        ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!p || got != (size_t)st.st_size) {
        vlmn_free(p);
        return -1;
    }
    *bytes = p;
    *len = got;
    return 0;
}

int browse_image(vlmn_browse *b, int64_t smp, char **bytes, size_t *len, const char **type, const char **ext)
{
    sqlite3_stmt *s;
    char img[2048] = "";
    if (sqlite3_prepare_v2(b->db, "SELECT image FROM samples WHERE sample_index = ? AND image IS NOT NULL", -1, &s,
                           NULL) != SQLITE_OK)
        return 500;
    sqlite3_bind_int64(s, 1, smp);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(img, sizeof img, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    if (!img[0] || has_dotdot(img)) return 404;
    /* As `vlmn report`: absolute, else under the run's images folder, tried as given,
     * next to the run directory, then inside it. */
    char cand[3][4096];
    int nc = 0, w;
    /* a candidate that does not fit is dropped (never tried cut short) */
#define CAND(...) (w = snprintf(cand[nc], sizeof cand[0], __VA_ARGS__), nc += w >= 0 && (size_t)w < sizeof cand[0])
    if (img[0] == '/' || !b->images[0]) {
        CAND("%s", img);
    } else {
        CAND("%s/%s", b->images, img);
        if (b->images[0] != '/') {
            const char *slash = strrchr(b->dir, '/');
            CAND("%.*s/%s/%s", slash ? (int)(slash - b->dir) : 1, slash ? b->dir : ".", b->images, img);
            CAND("%s/%s/%s", b->dir, b->images, img);
        }
    }
#undef CAND
    for (int i = 0; i < nc; i++) {
        if (read_file(cand[i], bytes, len)) continue;
        if ((*type = image_type((const unsigned char *)*bytes, *len, ext))) return 200;
        vlmn_free(*bytes);
        *bytes = NULL;
        return 404;
    }
    return 404;
}

int browse_modulated(vlmn_browse *b, int layer, int neuron, int64_t smp, char **bytes, size_t *len)
{
    if (!b->traces || smp < 0 || smp > UINT32_MAX || layer >= b->n_layers || neuron >= b->n_ff) return 404;
    vlmn_trace_sample *ts = NULL;
    float *acts = NULL;
    int64_t na = 0;
    vlmn_image *im = NULL, *mod = NULL;
    int code = 404;
    sqlite3_stmt *s;
    float nmax = 0;
    if (sqlite3_prepare_v2(b->db, "SELECT max_act FROM m.nt WHERE k = ?", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, (int64_t)layer * b->n_ff + neuron);
        if (sqlite3_step(s) == SQLITE_ROW) nmax = (float)sqlite3_column_double(s, 0);
        sqlite3_finalize(s);
    }
    if (vlmn_traces_get(b->traces, layer, neuron, (uint32_t)smp, &acts, &na) ||
        vlmn_traces_sample(b->traces, (uint32_t)smp, &ts) || !ts->image_path || na != ts->n_tokens)
        goto done;
    if (vlmn_img_load(ts->image_path, &im)) goto done;
    vlmn_draw_opts o = {0};
    uint8_t *png = NULL;
    if (vlmn_draw_image(im, ts->grids, ts->n_grids, acts, na, nmax, &o, &mod) || vlmn_draw_png(mod, &png, len)) {
        code = 500;
        goto done;
    }
    *bytes = (char *)png;
    code = 200;
done:
    vlmn_img_free(im);
    vlmn_img_free(mod);
    vlmn_free(acts);
    vlmn_trace_sample_free(ts);
    return code;
}

void vlmn_browse_handle(vlmn_browse *b, const char *uri, size_t len, vlmn_browse_resp *r)
{
    vlmn_browse_req q;
    char err[160];
    vlmn_buf out = {0};
    memset(r, 0, sizeof *r);
    int code = vlmn_browse_parse(uri, len, &q, err, sizeof err);
    browse_links ln = {false, "/"};
    if (code != 200) {
        browse_error_page(&out, len >= 4 && !memcmp(uri, "/api", 4), code, err, &r->type);
    } else if (q.page == VLMN_BP_IMAGE || q.page == VLMN_BP_MODULATED) {
        char *bytes = NULL;
        size_t n = 0;
        const char *ext;
        r->type = "image/png";
        code = q.page == VLMN_BP_IMAGE ? browse_image(b, q.sample, &bytes, &n, &r->type, &ext)
                                       : browse_modulated(b, (int)q.layer, (int)q.neuron, q.sample, &bytes, &n);
        if (code == 200) {
            r->status = 200;
            r->body = bytes;
            r->len = n;
            return;
        }
        browse_error_page(&out, false, code, code == 404 ? "no such image" : "cannot draw this image", &r->type);
    } else {
        code = browse_render(b, &q, &ln, &out, &r->type);
    }
    if (out.oom) {
        vlmn_free(out.p);
        out = (vlmn_buf){0};
        code = 500;
        r->type = "text/plain";
        vlmn_buf_adds(&out, "out of memory\n");
    }
    r->status = code;
    r->body = out.p;
    r->len = out.n;
}

/* ---- libmicrohttpd ---- */

/* The raw request target, before libmicrohttpd decodes it: our parser sees the bytes. */
static void *uri_log(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls;
    (void)con;
    size_t n = strnlen(uri, VLMN_BROWSE_MAX_URI + 1);
    char *c = vlmn_malloc(n + 1);
    if (c) {
        memcpy(c, uri, n);
        c[n] = 0;
    }
    return c;
}

static void done_cb(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode t)
{
    vlmn_free(*con_cls);
    *con_cls = NULL;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                              const char *version, const char *data, size_t *data_size, void **con_cls)
{
    vlmn_browse *b = cls;
    vlmn_browse_resp r;
    const char *raw = *con_cls;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        vlmn_buf out = {0};
        browse_error_page(&out, false, 405, "only GET and HEAD", &r.type);
        r.status = 405;
        r.body = out.p;
        r.len = out.n;
    } else if (*data_size) {
        *data_size = 0; /* a GET with a body: ignore the body */
        return MHD_YES;
    } else if (!raw) {
        vlmn_buf out = {0};
        browse_error_page(&out, false, 500, "out of memory", &r.type);
        r.status = 500;
        r.body = out.p;
        r.len = out.n;
    } else {
        size_t n = strlen(raw);
        vlmn_browse_handle(b, raw, n, &r);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(r.len, r.body ? r.body : (char *)"", r.body ? vlmn_free : NULL);
    if (!resp) {
        vlmn_free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r.type ? r.type : "text/plain");
    MHD_add_response_header(resp, "Content-Security-Policy", BROWSE_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(con, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

vlmn_status vlmn_browse_serve(vlmn_browse *b, const char *host, int port, volatile sig_atomic_t *stop)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return vlmn_error(VLMN_E_ARG, "--host %s: not an IPv4 address", host);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, answer, b,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, done_cb, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!d) return vlmn_error(VLMN_E_IO, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? info->port : port;
    printf("http://%s:%d/\n", host, bound);
    fflush(stdout);
    while (!*stop) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(d);
    return VLMN_OK;
}
