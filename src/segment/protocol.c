/* vlmn's segmenter protocol, version 1 (docs/segmenter.md): the prompt hygiene Grounding
 * DINO expects, the request body, the checked parse of a reply into the union of its
 * masks, and the mapping of a mask onto an image-token grid through the preprocessing
 * geometry. Replies are untrusted bytes: every size and count is checked.
 * Flow: explanation + image -> [body] ... reply -> [parse, to_grid] -> activations. */
#include "vlmn/segment.h"
#include "vlmn/image.h"
#include "vlmn/llm.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

vlmn_status vlmn_seg_prompt(const char *explanation, char **prompt)
{
    *prompt = NULL;
    size_t n = strlen(explanation);
    char *p = vlmn_malloc(n + 2);
    if (!p) return vlmn_error(VLMN_E_NOMEM, "segmenter: out of memory");
    size_t j = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)explanation[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            space = j > 0;
            continue;
        }
        if (space) p[j++] = ' ';
        space = false;
        p[j++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (!j) {
        vlmn_free(p);
        return vlmn_error(VLMN_E_ARG, "segmenter: empty explanation");
    }
    if (p[j - 1] != '.') p[j++] = '.';
    p[j] = 0;
    *prompt = p;
    return VLMN_OK;
}

vlmn_status vlmn_seg_body(const uint8_t *png, size_t png_len, const char *prompt, double box_threshold,
                          double text_threshold, char **json)
{
    *json = NULL;
    char *b64 = vlmn_llm_base64(png, png_len);
    cJSON *o = cJSON_CreateObject();
    bool ok = b64 && o && cJSON_AddNumberToObject(o, "version", VLMN_SEG_VERSION) &&
              cJSON_AddStringToObject(o, "image", b64) && cJSON_AddStringToObject(o, "image_format", "png") &&
              cJSON_AddStringToObject(o, "prompt", prompt) &&
              cJSON_AddNumberToObject(o, "box_threshold", box_threshold) &&
              cJSON_AddNumberToObject(o, "text_threshold", text_threshold);
    vlmn_free(b64);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) return vlmn_error(VLMN_E_NOMEM, "segmenter: out of memory building a request");
    *json = vlmn_strdup(s);
    cJSON_free(s);
    return *json ? VLMN_OK : vlmn_error(VLMN_E_NOMEM, "segmenter: out of memory building a request");
}

static bool get_int(const cJSON *v, int lo, int hi, int *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) || v->valuedouble != floor(v->valuedouble))
        return false;
    *out = (int)v->valuedouble;
    return true;
}

/* One mask of the reply ORed into u (w x h); scratch m of the same size. */
static vlmn_status one_mask(const cJSON *e, int k, int w, int h, uint8_t *u, uint8_t *m)
{
    if (!cJSON_IsObject(e)) return vlmn_error(VLMN_E_FORMAT, "segmenter reply: mask %d is not an object", k);
    const cJSON *rle = cJSON_GetObjectItemCaseSensitive(e, "rle");
    const cJSON *png = cJSON_GetObjectItemCaseSensitive(e, "png");
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(e, "score");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(e, "label");
    if (score && !cJSON_IsNumber(score)) return vlmn_error(VLMN_E_FORMAT, "segmenter reply: mask %d: score is not a number", k);
    if (label && !cJSON_IsString(label) && !cJSON_IsNull(label))
        return vlmn_error(VLMN_E_FORMAT, "segmenter reply: mask %d: label is not a string", k);
    vlmn_status st;
    if (cJSON_IsObject(rle)) {
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(rle, "size");
        const cJSON *counts = cJSON_GetObjectItemCaseSensitive(rle, "counts");
        int mh, mw;
        if (!cJSON_IsArray(size) || cJSON_GetArraySize(size) != 2 ||
            !get_int(cJSON_GetArrayItem(size, 0), 1, VLMN_SEG_MAX_SIDE, &mh) ||
            !get_int(cJSON_GetArrayItem(size, 1), 1, VLMN_SEG_MAX_SIDE, &mw))
            return vlmn_error(VLMN_E_FORMAT, "segmenter reply: mask %d: rle.size is not [height, width]", k);
        if (mw != w || mh != h)
            return vlmn_error(VLMN_E_MISMATCH, "segmenter reply: mask %d is %dx%d, the reply %dx%d", k, mw, mh, w, h);
        if (cJSON_IsString(counts)) {
            st = vlmn_rle_decode_string(counts->valuestring, strlen(counts->valuestring), h, w, m);
        } else if (cJSON_IsArray(counts)) {
            int nc = cJSON_GetArraySize(counts);
            if ((uint64_t)nc > (uint64_t)w * h + 1)
                return vlmn_error(VLMN_E_FORMAT, "segmenter reply: mask %d: %d runs for %dx%d pixels", k, nc, w, h);
            int64_t *runs = vlmn_malloc((size_t)(nc ? nc : 1) * sizeof *runs);
            if (!runs) return vlmn_error(VLMN_E_NOMEM, "segmenter: out of memory");
            int i = 0;
            const cJSON *c;
            st = VLMN_OK;
            cJSON_ArrayForEach(c, counts)
            {
                if (!cJSON_IsNumber(c) || !(c->valuedouble >= 0 && c->valuedouble <= (double)VLMN_SEG_MAX_PIXELS) ||
                    c->valuedouble != floor(c->valuedouble)) {
                    st = vlmn_error(VLMN_E_FORMAT, "RLE: run %d is not a count", i);
                    break;
                }
                runs[i++] = (int64_t)c->valuedouble;
            }
            if (!st) st = vlmn_rle_decode_counts(runs, (size_t)nc, h, w, m);
            vlmn_free(runs);
        } else {
            return vlmn_error(VLMN_E_FORMAT, "segmenter reply: mask %d: rle.counts is neither a string nor a list", k);
        }
        if (st) return vlmn_error_prefix(st, "segmenter reply: mask %d", k);
    } else if (cJSON_IsString(png)) {
        uint8_t *bytes = NULL;
        size_t nb = 0;
        if ((st = vlmn_llm_base64_decode(png->valuestring, strlen(png->valuestring), &bytes, &nb)))
            return vlmn_error_prefix(st, "segmenter reply: mask %d: png", k);
        vlmn_image *im = NULL;
        st = vlmn_img_decode_memory_limit(bytes, nb, "segmenter mask", VLMN_SEG_MAX_PIXELS, &im);
        vlmn_free(bytes);
        if (st) return vlmn_error_prefix(st, "segmenter reply: mask %d", k);
        if (im->w != w || im->h != h) {
            st = vlmn_error(VLMN_E_MISMATCH, "segmenter reply: mask %d is %dx%d, the reply %dx%d", k, im->w, im->h, w, h);
            vlmn_img_free(im);
            return st;
        }
        for (size_t i = 0; i < (size_t)w * h; i++) {
            const uint8_t *p = im->rgb + 3 * i;
            m[i] = p[0] >= 128 || p[1] >= 128 || p[2] >= 128;
        }
        vlmn_img_free(im);
    } else {
        return vlmn_error(VLMN_E_FORMAT, "segmenter reply: mask %d has neither \"rle\" nor \"png\"", k);
    }
    for (size_t i = 0; i < (size_t)w * h; i++) u[i] |= m[i];
    return VLMN_OK;
}

vlmn_status vlmn_seg_parse(const char *body, size_t len, int exp_w, int exp_h, uint8_t **mask, int *w_out, int *h_out,
                           int *n_masks)
{
    *mask = NULL;
    *w_out = *h_out = *n_masks = 0;
    cJSON *root = cJSON_ParseWithLength(body, len);
    vlmn_status st;
    uint8_t *u = NULL, *m = NULL;
    int w, h, ver;
    if (!cJSON_IsObject(root)) {
        st = vlmn_error(VLMN_E_FORMAT, "segmenter reply: not a JSON object");
        goto out;
    }
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (err && !cJSON_IsNull(err)) {
        st = vlmn_error(VLMN_E_FORMAT, "segmenter reply: error: %.200s",
                        cJSON_IsString(err) ? err->valuestring : "(not a string)");
        goto out;
    }
    if (!get_int(cJSON_GetObjectItemCaseSensitive(root, "version"), 0, 1 << 30, &ver)) {
        st = vlmn_error(VLMN_E_FORMAT, "segmenter reply: no integer \"version\"");
        goto out;
    }
    if (ver != VLMN_SEG_VERSION) {
        st = vlmn_error(VLMN_E_UNSUPPORTED, "segmenter reply: protocol version %d (vlmn speaks %d)", ver, VLMN_SEG_VERSION);
        goto out;
    }
    if (!get_int(cJSON_GetObjectItemCaseSensitive(root, "width"), 1, VLMN_SEG_MAX_SIDE, &w) ||
        !get_int(cJSON_GetObjectItemCaseSensitive(root, "height"), 1, VLMN_SEG_MAX_SIDE, &h) ||
        (uint64_t)w * (uint64_t)h > VLMN_SEG_MAX_PIXELS) {
        st = vlmn_error(VLMN_E_FORMAT, "segmenter reply: width / height missing or outside 1..%d", VLMN_SEG_MAX_SIDE);
        goto out;
    }
    if ((exp_w > 0 && w != exp_w) || (exp_h > 0 && h != exp_h)) {
        st = vlmn_error(VLMN_E_MISMATCH, "segmenter reply: masks are %dx%d but the image is %dx%d", w, h, exp_w, exp_h);
        goto out;
    }
    const cJSON *masks = cJSON_GetObjectItemCaseSensitive(root, "masks");
    if (!cJSON_IsArray(masks)) {
        st = vlmn_error(VLMN_E_FORMAT, "segmenter reply: no \"masks\" list");
        goto out;
    }
    int nm = cJSON_GetArraySize(masks);
    if (nm > VLMN_SEG_MAX_MASKS) {
        st = vlmn_error(VLMN_E_RANGE, "segmenter reply: %d masks (at most %d)", nm, VLMN_SEG_MAX_MASKS);
        goto out;
    }
    u = vlmn_calloc((size_t)w * h, 1);
    m = vlmn_malloc((size_t)w * h);
    if (!u || !m) {
        st = vlmn_error(VLMN_E_NOMEM, "segmenter: out of memory");
        goto out;
    }
    int k = 0;
    const cJSON *e;
    st = VLMN_OK;
    cJSON_ArrayForEach(e, masks)
    {
        if ((st = one_mask(e, k, w, h, u, m))) goto out;
        k++;
    }
    *mask = u;
    u = NULL;
    *w_out = w;
    *h_out = h;
    *n_masks = nm;
out:
    vlmn_free(u);
    vlmn_free(m);
    cJSON_Delete(root);
    return st;
}

vlmn_status vlmn_seg_parse_rule(const char *s, vlmn_seg_rule *out)
{
    if (!strcmp(s, "half")) *out = VLMN_SEG_HALF;
    else if (!strcmp(s, "fraction")) *out = VLMN_SEG_FRACTION;
    else return vlmn_error(VLMN_E_ARG, "coverage rule '%s': half or fraction", s);
    return VLMN_OK;
}

const char *vlmn_seg_rule_name(vlmn_seg_rule r) { return r == VLMN_SEG_FRACTION ? "fraction" : "half"; }

void vlmn_seg_to_grid(const uint8_t *mask, int w, int h, const vlmn_trace_grid *g, vlmn_seg_rule rule, float *out)
{
    double pw = (g->x1 - g->x0) / g->cols, ph = (g->y1 - g->y0) / g->rows;
    for (int r = 0; r < g->rows; r++) {
        double py0 = g->y0 + r * ph, py1 = py0 + ph;
        int iy0 = (int)fmax(0, floor(py0)), iy1 = (int)fmin(h, ceil(py1));
        for (int c = 0; c < g->cols; c++) {
            double px0 = g->x0 + c * pw, px1 = px0 + pw;
            int ix0 = (int)fmax(0, floor(px0)), ix1 = (int)fmin(w, ceil(px1));
            double covered = 0;
            for (int y = iy0; y < iy1; y++) {
                double oy = fmin(y + 1, py1) - fmax(y, py0);
                if (oy <= 0) continue;
                const uint8_t *row = mask + (size_t)y * w;
                double sx = 0;
                for (int x = ix0; x < ix1; x++)
                    if (row[x]) sx += fmin(x + 1, px1) - fmax(x, px0);
                covered += oy * sx;
            }
            double f = pw > 0 && ph > 0 ? covered / (pw * ph) : 0;
            if (f > 1) f = 1;
            out[r * g->cols + c] = rule == VLMN_SEG_FRACTION ? (float)(10 * f) : (f >= 0.5 - 1e-9 ? 10.f : 0.f);
        }
    }
}
