/* Oracle segmenter for the tests: speaks vlmn's segmenter protocol (docs/segmenter.md)
 * on 127.0.0.1 (ephemeral port written to --port-file) and answers from a make-dataset
 * folder's ground truth (DIR/shapes.json masks): the image in a request is recognised
 * by its decoded pixels, and the masks returned are those of the shapes the prompt
 * names (every colour and shape word it names must match; a prompt naming none gets no
 * masks). Started and stopped by tests/explain/test_segmenter.sh.
 *
 *   --dataset DIR      the make-dataset folder (required)
 *   --format F         masks as rle (compressed COCO string, default), counts
 *                      (uncompressed run list) or png
 *   --faults           the FIRST time a request body is seen, by its hash mod 5: 500,
 *                      a reply after --slow seconds (past the client's timeout),
 *                      malformed RLE, a mask of the wrong size, or a normal answer;
 *                      later tries of the same body answer normally
 *   --slow S           seconds of the slow fault (default 3)
 *   --bad-image ID     requests for image ID always get masks of the wrong size
 * Checks every request: JSON, version 1, a base64 PNG image of a dataset picture,
 * image_format "png", a prompt that is lowercase and ends with ".", thresholds in 0..1.
 * A failed check answers 400 and counts a violation. GET /stats: {"requests","answered",
 * "faults","violations","last_violation","masks","prompts":{prompt:count}}. */
#include "vlmn/image.h"
#include "vlmn/llm.h"
#include "vlmn/segment.h"
#include "vlmn/draw.h"
#include "core/alloc.h"
#include "core/file.h"
#include "mhd_test.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY (64u << 20)
#define MAX_SEEN 200003

typedef struct gshape {
    char colour[32], shape[32];
    char *counts; /* compressed RLE */
} gshape;

typedef struct gimage {
    char id[64];
    int w, h;
    uint64_t hash;
    int n;
    gshape *s;
} gimage;

static gimage *g_img;
static int g_n_img;
static const char *g_format = "rle";
static bool g_faults;
static double g_slow = 3;
static const char *g_bad_image;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static long g_requests, g_answered, g_n_faults, g_violations, g_masks;
static char g_last_violation[512];
static cJSON *g_prompts;
static uint64_t *g_seen;

typedef struct conn {
    mhd_body b; /* first: mhd_serve frees it */
} conn;

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h ? h : 1;
}
#define FNV0 1469598103934665603ull

static uint64_t image_hash(const vlmn_image *im)
{
    uint64_t h = fnv(&im->w, sizeof im->w, FNV0);
    h = fnv(&im->h, sizeof im->h, h);
    return fnv(im->rgb, (size_t)im->w * im->h * 3, h);
}

static bool first_time(uint64_t h)
{
    pthread_mutex_lock(&g_mu);
    size_t i = h % MAX_SEEN;
    bool first = true;
    for (size_t k = 0; k < MAX_SEEN; k++, i = (i + 1) % MAX_SEEN) {
        if (g_seen[i] == h) {
            first = false;
            break;
        }
        if (!g_seen[i]) {
            g_seen[i] = h;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return first;
}

static void violation(const char *why)
{
    pthread_mutex_lock(&g_mu);
    g_violations++;
    snprintf(g_last_violation, sizeof g_last_violation, "%s", why);
    pthread_mutex_unlock(&g_mu);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static int load_dataset(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/shapes.json", dir);
    unsigned char *b = NULL;
    size_t n = 0;
    if (vlmn_file_read(path, 256u << 20, "shapes.json", &b, &n)) {
        fprintf(stderr, "seg_server: %s\n", vlmn_errmsg());
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)b, n);
    vlmn_free(b);
    if (!cJSON_IsArray(root)) {
        fprintf(stderr, "seg_server: %s: not a JSON list\n", path);
        return -1;
    }
    g_n_img = cJSON_GetArraySize(root);
    g_img = calloc((size_t)g_n_img + 1, sizeof *g_img);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        gimage *g = &g_img[i++];
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *im = cJSON_GetObjectItemCaseSensitive(e, "image");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shapes");
        if (!cJSON_IsString(id) || !cJSON_IsString(im) || !cJSON_IsArray(sh)) {
            fprintf(stderr, "seg_server: %s: entry %d lacks id / image / shapes (an old make-dataset?)\n", path, i);
            return -1;
        }
        snprintf(g->id, sizeof g->id, "%s", id->valuestring);
        snprintf(path, sizeof path, "%s/%s", dir, im->valuestring);
        vlmn_image *img = NULL;
        if (vlmn_img_load(path, &img)) {
            fprintf(stderr, "seg_server: %s\n", vlmn_errmsg());
            return -1;
        }
        g->w = img->w;
        g->h = img->h;
        g->hash = image_hash(img);
        vlmn_img_free(img);
        g->n = cJSON_GetArraySize(sh);
        g->s = calloc((size_t)g->n + 1, sizeof *g->s);
        int k = 0;
        const cJSON *s;
        cJSON_ArrayForEach(s, sh)
        {
            const cJSON *col = cJSON_GetObjectItemCaseSensitive(s, "color");
            const cJSON *kind = cJSON_GetObjectItemCaseSensitive(s, "shape");
            const cJSON *mask = cJSON_GetObjectItemCaseSensitive(s, "mask");
            const cJSON *counts = mask ? cJSON_GetObjectItemCaseSensitive(mask, "counts") : NULL;
            if (!cJSON_IsString(col) || !cJSON_IsString(kind) || !cJSON_IsString(counts)) {
                fprintf(stderr, "seg_server: %s: shape %d lacks color / shape / mask.counts\n", g->id, k);
                return -1;
            }
            snprintf(g->s[k].colour, sizeof g->s[k].colour, "%s", col->valuestring);
            snprintf(g->s[k].shape, sizeof g->s[k].shape, "%s", kind->valuestring);
            g->s[k].counts = strdup(counts->valuestring);
            k++;
        }
    }
    cJSON_Delete(root);
    return 0;
}

/* Is `word` (a whole word, optionally plural) in the prompt? */
static bool names(const char *prompt, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = prompt; (p = strstr(p, word)); p++) {
        bool left = p == prompt || !((p[-1] >= 'a' && p[-1] <= 'z'));
        const char *q = p + n;
        if (*q == 's' || *q == 'e') q += *q == 'e' && q[1] == 's' ? 2 : (*q == 's');
        bool right = !(*q >= 'a' && *q <= 'z');
        if (left && right) return true;
    }
    return false;
}

static const char *const COLOURS[] = {"red", "green", "blue", "yellow", "cyan", "magenta", "gray", "black", "white"};
static const char *const SHAPES[] = {"circle", "square", "triangle", "star", "diamond", "cross"};

static bool matches(const char *prompt, const gshape *s)
{
    bool any_c = false, any_s = false;
    for (size_t i = 0; i < sizeof COLOURS / sizeof *COLOURS; i++) any_c = any_c || names(prompt, COLOURS[i]);
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++) any_s = any_s || names(prompt, SHAPES[i]);
    if (!any_c && !any_s) return false;
    return (!any_c || names(prompt, s->colour)) && (!any_s || names(prompt, s->shape));
}

/* One mask in the chosen format (wrong: a mask one row taller than the image). */
static cJSON *mask_json(const gimage *g, const gshape *s, bool wrong, bool bad_rle)
{
    cJSON *o = cJSON_CreateObject();
    char label[80];
    snprintf(label, sizeof label, "%s %s", s->colour, s->shape);
    int h = g->h + (wrong ? 1 : 0), w = g->w;
    if (bad_rle) {
        cJSON *r = cJSON_AddObjectToObject(o, "rle");
        cJSON *size = cJSON_AddArrayToObject(r, "size");
        cJSON_AddItemToArray(size, cJSON_CreateNumber(h));
        cJSON_AddItemToArray(size, cJSON_CreateNumber(w));
        cJSON_AddStringToObject(r, "counts", "0~~~~~~~~~\x7f");
    } else if (wrong || !strcmp(g_format, "rle")) {
        cJSON *r = cJSON_AddObjectToObject(o, "rle");
        cJSON *size = cJSON_AddArrayToObject(r, "size");
        cJSON_AddItemToArray(size, cJSON_CreateNumber(h));
        cJSON_AddItemToArray(size, cJSON_CreateNumber(w));
        cJSON_AddStringToObject(r, "counts", s->counts);
    } else {
        uint8_t *m = malloc((size_t)w * h);
        vlmn_rle_decode_string(s->counts, strlen(s->counts), h, w, m);
        if (!strcmp(g_format, "png")) {
            vlmn_image *im = NULL;
            vlmn_img_create(w, h, &im);
            for (size_t i = 0; i < (size_t)w * h; i++) memset(im->rgb + 3 * i, m[i] ? 255 : 0, 3);
            uint8_t *png = NULL;
            size_t len = 0;
            vlmn_draw_png(im, &png, &len);
            char *b64 = vlmn_llm_base64(png, len);
            cJSON_AddStringToObject(o, "png", b64);
            vlmn_free(b64);
            vlmn_free(png);
            vlmn_img_free(im);
        } else { /* counts: runs in column-major order, starting with 0s */
            cJSON *r = cJSON_AddObjectToObject(o, "rle");
            cJSON *size = cJSON_AddArrayToObject(r, "size");
            cJSON_AddItemToArray(size, cJSON_CreateNumber(h));
            cJSON_AddItemToArray(size, cJSON_CreateNumber(w));
            cJSON *arr = cJSON_AddArrayToObject(r, "counts");
            int cur = 0;
            long run = 0;
            for (long k = 0; k < (long)w * h; k++) {
                int v = m[(k % h) * w + k / h];
                if (v != cur) {
                    cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)run));
                    run = 0;
                    cur = v;
                }
                run++;
            }
            cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)run));
        }
        free(m);
    }
    cJSON_AddNumberToObject(o, "score", 0.9);
    cJSON_AddStringToObject(o, "label", label);
    return o;
}

static const char *check_request(const cJSON *root, const char **prompt, const gimage **img)
{
    if (!cJSON_IsObject(root)) return "body is not a JSON object";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1) return "version is not 1";
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "image_format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "png")) return "image_format is not png";
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!cJSON_IsString(p) || !*p->valuestring) return "no prompt";
    size_t n = strlen(p->valuestring);
    if (p->valuestring[n - 1] != '.') return "prompt does not end with '.'";
    for (const char *q = p->valuestring; *q; q++)
        if (*q >= 'A' && *q <= 'Z') return "prompt is not lowercase";
    if (strstr(p->valuestring, "  ") || p->valuestring[0] == ' ') return "prompt has stray spaces";
    *prompt = p->valuestring;
    const char *th[2] = {"box_threshold", "text_threshold"};
    for (int i = 0; i < 2; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, th[i]);
        if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0 && t->valuedouble <= 1)) return "threshold missing or outside 0..1";
    }
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(root, "image");
    if (!cJSON_IsString(im)) return "no image";
    uint8_t *b = NULL;
    size_t nb = 0;
    if (vlmn_llm_base64_decode(im->valuestring, strlen(im->valuestring), &b, &nb)) return "image is not base64";
    if (nb < 8 || memcmp(b, "\x89PNG\r\n\x1a\n", 8)) {
        vlmn_free(b);
        return "image is not a PNG";
    }
    vlmn_image *x = NULL;
    vlmn_status st = vlmn_img_decode_memory(b, nb, "request", &x);
    vlmn_free(b);
    if (st) return "image does not decode";
    uint64_t h = image_hash(x);
    vlmn_img_free(x);
    for (int i = 0; i < g_n_img; i++)
        if (g_img[i].hash == h) {
            *img = &g_img[i];
            return NULL;
        }
    return "image is not a dataset picture";
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **ptr)
{
    (void)cls, (void)version;
    conn *cn = *ptr;
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *ptr = cn;
        return MHD_YES;
    }
    if (*upload_size) {
        mhd_body_append(&cn->b, upload, *upload_size, MAX_BODY);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!strcmp(method, "GET") && !strcmp(url, "/stats")) {
        pthread_mutex_lock(&g_mu);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "requests", (double)g_requests);
        cJSON_AddNumberToObject(o, "answered", (double)g_answered);
        cJSON_AddNumberToObject(o, "faults", (double)g_n_faults);
        cJSON_AddNumberToObject(o, "violations", (double)g_violations);
        cJSON_AddNumberToObject(o, "masks", (double)g_masks);
        cJSON_AddStringToObject(o, "last_violation", g_last_violation);
        cJSON_AddItemToObject(o, "prompts", cJSON_Duplicate(g_prompts, 1));
        pthread_mutex_unlock(&g_mu);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        enum MHD_Result r = reply(c, 200, s);
        free(s);
        return r;
    }
    if (strcmp(method, "POST") || strcmp(url, "/segment")) return reply(c, 404, "{\"error\":\"no such endpoint\"}");
    pthread_mutex_lock(&g_mu);
    g_requests++;
    pthread_mutex_unlock(&g_mu);
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")) {
        violation("an Authorization header was sent to the segmenter");
        return reply(c, 400, "{\"error\":\"check failed: Authorization header\"}");
    }
    cJSON *root = cJSON_ParseWithLength(cn->b.body ? cn->b.body : "", cn->b.n);
    const char *prompt = NULL;
    const gimage *img = NULL;
    const char *why = cn->b.too_big ? "body too large" : check_request(root, &prompt, &img);
    if (why) {
        violation(why);
        char m[400];
        snprintf(m, sizeof m, "{\"error\":\"check failed: %s\"}", why);
        cJSON_Delete(root);
        return reply(c, 400, m);
    }
    pthread_mutex_lock(&g_mu);
    cJSON *cnt = cJSON_GetObjectItemCaseSensitive(g_prompts, prompt);
    if (cnt) cJSON_SetNumberValue(cnt, cnt->valuedouble + 1);
    else cJSON_AddNumberToObject(g_prompts, prompt, 1);
    pthread_mutex_unlock(&g_mu);
    uint64_t h = fnv(cn->b.body, cn->b.n, FNV0);
    int fault = g_faults && first_time(h) ? (int)(h % 5) : 4;
    bool wrong = fault == 3 || (g_bad_image && !strcmp(g_bad_image, img->id));
    enum MHD_Result ret;
    if (fault != 4) {
        pthread_mutex_lock(&g_mu);
        g_n_faults++;
        pthread_mutex_unlock(&g_mu);
    }
    if (fault == 0) {
        ret = reply(c, 500, "{\"error\":\"injected fault\"}");
    } else {
        if (fault == 1) usleep((useconds_t)(g_slow * 1e6));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "version", 1);
        cJSON_AddNumberToObject(o, "width", img->w);
        cJSON_AddNumberToObject(o, "height", img->h);
        cJSON *arr = cJSON_AddArrayToObject(o, "masks");
        int nm = 0;
        for (int k = 0; k < img->n; k++)
            if (matches(prompt, &img->s[k])) {
                cJSON_AddItemToArray(arr, mask_json(img, &img->s[k], wrong, fault == 2));
                nm++;
            }
        if (fault == 2 && nm == 0) cJSON_AddItemToArray(arr, mask_json(img, &img->s[0], false, true));
        if (wrong && nm == 0) cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "width"), img->w + 7);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        pthread_mutex_lock(&g_mu);
        g_answered++;
        g_masks += nm;
        pthread_mutex_unlock(&g_mu);
        ret = reply(c, 200, s);
        free(s);
    }
    cJSON_Delete(root);
    return ret;
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *dataset = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--faults")) g_faults = true;
        else if (i + 1 < argc && !strcmp(argv[i], "--port-file")) port_file = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--dataset")) dataset = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--format")) g_format = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--slow")) g_slow = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--bad-image")) g_bad_image = argv[++i];
        else {
            fprintf(stderr, "seg_server: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!port_file || !dataset) {
        fprintf(stderr, "usage: seg_server --dataset DIR --port-file FILE [--format rle|counts|png] [--faults] "
                        "[--slow S] [--bad-image ID]\n");
        return 2;
    }
    if (load_dataset(dataset)) return 1;
    g_prompts = cJSON_CreateObject();
    g_seen = calloc(MAX_SEEN, sizeof *g_seen);
    int rc = mhd_serve("seg_server", handle, port_file);
    return rc;
}
