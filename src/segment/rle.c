/* COCO run-length encoding of binary masks (the format pycocotools writes and Grounded
 * SAM 2's demo stores): decoding the compressed string and the uncompressed count list
 * from untrusted bytes, and encoding the string form for the dataset's ground truth.
 * Flow: segmenter replies, make-dataset -> [this] -> row-major masks. */
#include "vlmn/segment.h"
#include "core/alloc.h"

#include <string.h>

/* Fill the row-major mask from column-major runs, checking they sum to h * w. */
typedef struct runs_out {
    uint8_t *mask;
    int h, w;
    uint64_t pos, total;
    int val;
} runs_out;

static vlmn_status put_run(runs_out *o, int64_t run)
{
    if (run < 0) return vlmn_error(VLMN_E_FORMAT, "RLE: negative run length %lld", (long long)run);
    if ((uint64_t)run > o->total - o->pos)
        return vlmn_error(VLMN_E_FORMAT, "RLE: runs exceed the %dx%d mask", o->w, o->h);
    if (o->val)
        for (uint64_t k = o->pos; k < o->pos + (uint64_t)run; k++) {
            uint64_t x = k / (uint64_t)o->h, y = k % (uint64_t)o->h;
            o->mask[y * (uint64_t)o->w + x] = 1;
        }
    o->pos += (uint64_t)run;
    o->val ^= 1;
    return VLMN_OK;
}

static vlmn_status check_size(int h, int w)
{
    if (h < 1 || w < 1 || h > VLMN_SEG_MAX_SIDE || w > VLMN_SEG_MAX_SIDE)
        return vlmn_error(VLMN_E_FORMAT, "RLE: mask size %dx%d outside 1..%d", w, h, VLMN_SEG_MAX_SIDE);
    if ((uint64_t)h * (uint64_t)w > VLMN_SEG_MAX_PIXELS)
        return vlmn_error(VLMN_E_FORMAT, "RLE: mask size %dx%d over %llu pixels", w, h,
                          (unsigned long long)VLMN_SEG_MAX_PIXELS);
    return VLMN_OK;
}

static vlmn_status runs_end(const runs_out *o)
{
    if (o->pos != o->total)
        return vlmn_error(VLMN_E_FORMAT, "RLE: runs cover %llu of the %dx%d mask's %llu pixels",
                          (unsigned long long)o->pos, o->w, o->h, (unsigned long long)o->total);
    return VLMN_OK;
}

vlmn_status vlmn_rle_decode_counts(const int64_t *runs, size_t n, int h, int w, uint8_t *mask)
{
    vlmn_status st;
    if ((st = check_size(h, w))) return st;
    memset(mask, 0, (size_t)h * (size_t)w);
    runs_out o = {.mask = mask, .h = h, .w = w, .total = (uint64_t)h * (uint64_t)w};
    for (size_t i = 0; i < n; i++)
        if ((st = put_run(&o, runs[i]))) return st;
    return runs_end(&o);
}

vlmn_status vlmn_rle_decode_string(const char *s, size_t len, int h, int w, uint8_t *mask)
{
    vlmn_status st;
    if ((st = check_size(h, w))) return st;
    memset(mask, 0, (size_t)h * (size_t)w);
    runs_out o = {.mask = mask, .h = h, .w = w, .total = (uint64_t)h * (uint64_t)w};
    int64_t prev2 = 0, prev1 = 0; /* runs m-2 and m-1 */
    size_t m = 0, p = 0;
    while (p < len) {
        int64_t x = 0;
        int k = 0;
        bool more = true;
        while (more) {
            if (p >= len) return vlmn_error(VLMN_E_FORMAT, "RLE: string ends inside a number");
            int c = (unsigned char)s[p] - 48;
            if (c < 0 || c > 63) return vlmn_error(VLMN_E_FORMAT, "RLE: character 0x%02x at %zu out of range", (unsigned char)s[p], p);
            if (k >= 7) return vlmn_error(VLMN_E_FORMAT, "RLE: number at %zu too long", p);
            x |= (int64_t)(c & 0x1f) << (5 * k);
            more = c & 0x20;
            p++;
            k++;
            if (!more && (c & 0x10)) x |= (int64_t)(~(uint64_t)0 << (5 * k));
        }
        if (m > 2) {
            /* delta against run m-2: bounded values, no overflow (|x| < 2^35, runs <= 2^28) */
            x += prev2;
        }
        if ((st = put_run(&o, x))) return st;
        prev2 = prev1;
        prev1 = x;
        m++;
    }
    return runs_end(&o);
}

vlmn_status vlmn_rle_encode_string(const uint8_t *mask, int h, int w, char **out)
{
    *out = NULL;
    vlmn_status st;
    if ((st = check_size(h, w))) return st;
    uint64_t total = (uint64_t)h * (uint64_t)w;
    /* runs in column-major order, starting with zeros */
    size_t cap = 64, m = 0;
    int64_t *runs = vlmn_malloc(cap * sizeof *runs);
    if (!runs) return vlmn_error(VLMN_E_NOMEM, "RLE: out of memory");
    int cur = 0;
    int64_t run = 0;
    for (uint64_t k = 0; k <= total; k++) {
        int v = k < total ? mask[(k % (uint64_t)h) * (uint64_t)w + k / (uint64_t)h] != 0 : !cur;
        if (v != cur) {
            if (m == cap) {
                int64_t *t = vlmn_realloc(runs, 2 * cap * sizeof *t);
                if (!t) {
                    vlmn_free(runs);
                    return vlmn_error(VLMN_E_NOMEM, "RLE: out of memory");
                }
                runs = t;
                cap *= 2;
            }
            runs[m++] = run;
            run = 0;
            cur = v;
        }
        run++;
    }
    /* at most 7 characters per run */
    char *s = vlmn_malloc(m * 7 + 1);
    if (!s) {
        vlmn_free(runs);
        return vlmn_error(VLMN_E_NOMEM, "RLE: out of memory");
    }
    size_t p = 0;
    for (size_t i = 0; i < m; i++) {
        int64_t x = runs[i];
        if (i > 2) x -= runs[i - 2];
        bool more = true;
        while (more) {
            int c = (int)(x & 0x1f);
            x >>= 5; /* arithmetic shift of a negative delta, as pycocotools */
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            s[p++] = (char)(c + 48);
        }
    }
    s[p] = 0;
    vlmn_free(runs);
    *out = s;
    return VLMN_OK;
}
