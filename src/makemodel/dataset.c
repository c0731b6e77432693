/* The demo dataset for the planted model: procedurally drawn PNG images of coloured
 * shapes on plain backgrounds, with descriptions in LLaVA's detail_23k layout that name
 * each shape's colour and kind at least three times (so the paper's text rule, more than
 * n_t = 2 tokens above T_t, can fire) and shapes big enough to cover at least
 * MIN_FULL_CELLS fully covered cells of a 16x16 patch grid (for the visual rule). */
#include "vlmn/makemodel.h"
#include "vlmn/segment.h"
#include "makemodel/palette.h"
#include "makemodel/rng.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define GRID 16           /* patch grid the coverage check uses (224 px / 14) */
#define MIN_FULL_CELLS 12 /* cells at least FULL_FRACTION covered by each shape's colour */
#define FULL_FRACTION 0.95
#define MAX_SHAPES 3
#define QUESTION "Describe the image in detail."
#define QA_QUESTION "Which shapes are in the image?"

typedef struct shape {
    int kind;           /* index into mm_shape_names */
    const mm_colour *colour;
    int feature;        /* index into mm_feature_colours, -1 for neutral colours */
    double cx, cy, r;   /* pixels */
    double vx[10], vy[10]; /* star vertices */
    int full_cells;
} shape;

typedef struct picture {
    int w, h, n_shapes;
    const mm_colour *bg;
    shape shapes[MAX_SHAPES];
    uint8_t *rgb; /* [h][w][3] */
} picture;

static bool in_triangle(double px, double py, const double v[6])
{
    double d1 = (px - v[2]) * (v[1] - v[3]) - (v[0] - v[2]) * (py - v[3]);
    double d2 = (px - v[4]) * (v[3] - v[5]) - (v[2] - v[4]) * (py - v[5]);
    double d3 = (px - v[0]) * (v[5] - v[1]) - (v[4] - v[0]) * (py - v[1]);
    bool neg = d1 < 0 || d2 < 0 || d3 < 0, pos = d1 > 0 || d2 > 0 || d3 > 0;
    return !(neg && pos);
}

/* Is pixel centre (px, py) inside the shape? */
static bool inside(const shape *s, double px, double py)
{
    double dx = px - s->cx, dy = py - s->cy, r = s->r;
    switch (s->kind) {
    case 0: return dx * dx + dy * dy <= r * r;
    case 1: return fabs(dx) <= 0.9 * r && fabs(dy) <= 0.9 * r;
    case 2: {
        double v[6] = {s->cx, s->cy - r, s->cx - r, s->cy + 0.8 * r, s->cx + r, s->cy + 0.8 * r};
        return in_triangle(px, py, v);
    }
    case 3: { /* five-pointed star: even-odd rule over its 10 vertices */
        const double *vx = s->vx, *vy = s->vy;
        bool in = false;
        for (int i = 0, j = 9; i < 10; j = i++)
            if ((vy[i] > py) != (vy[j] > py) && px < (vx[j] - vx[i]) * (py - vy[i]) / (vy[j] - vy[i]) + vx[i]) in = !in;
        return in;
    }
    case 4: return fabs(dx) + fabs(dy) <= r;
    default: return (fabs(dx) <= r / 3 && fabs(dy) <= r) || (fabs(dy) <= r / 3 && fabs(dx) <= r);
    }
}

static void render(picture *p)
{
    for (size_t i = 0; i < (size_t)p->w * p->h; i++) memcpy(p->rgb + i * 3, p->bg->rgb, 3);
    for (int k = 0; k < p->n_shapes; k++) {
        const shape *s = &p->shapes[k];
        int x0 = (int)floor(s->cx - s->r) - 1, x1 = (int)ceil(s->cx + s->r) + 1;
        int y0 = (int)floor(s->cy - s->r) - 1, y1 = (int)ceil(s->cy + s->r) + 1;
        x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
        x1 = x1 > p->w ? p->w : x1, y1 = y1 > p->h ? p->h : y1;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                if (inside(s, x + 0.5, y + 0.5)) memcpy(p->rgb + ((size_t)y * p->w + x) * 3, s->colour->rgb, 3);
    }
}

/* Count, for each shape, the cells of a GRIDxGRID grid over the image padded to a square
 * (as LLaVA-1.5 pads) that its colour covers by at least FULL_FRACTION. */
static void coverage(picture *p)
{
    int side = p->w > p->h ? p->w : p->h;
    int ox = (side - p->w) / 2, oy = (side - p->h) / 2;
    for (int k = 0; k < p->n_shapes; k++) {
        const uint8_t *col = p->shapes[k].colour->rgb;
        int full = 0;
        for (int gy = 0; gy < GRID; gy++)
            for (int gx = 0; gx < GRID; gx++) {
                int x0 = gx * side / GRID, x1 = (gx + 1) * side / GRID;
                int y0 = gy * side / GRID, y1 = (gy + 1) * side / GRID;
                int hit = 0, tot = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        tot++;
                        int ix = x - ox, iy = y - oy;
                        if (ix < 0 || iy < 0 || ix >= p->w || iy >= p->h) continue;
                        if (!memcmp(p->rgb + ((size_t)iy * p->w + ix) * 3, col, 3)) hit++;
                    }
                if (tot && hit >= FULL_FRACTION * tot) full++;
            }
        p->shapes[k].full_cells = full;
    }
}

/* Lay out n shapes in disjoint cells: one cell, two halves, or a half plus two quarters. */
static void layout(picture *p, mm_rng *r)
{
    double cells[MAX_SHAPES][4]; /* x, y, w, h */
    double W = p->w, H = p->h;
    bool wide = W >= H;
    int n = p->n_shapes;
    if (n == 1) {
        cells[0][0] = 0, cells[0][1] = 0, cells[0][2] = W, cells[0][3] = H;
    } else {
        /* first cell: one half along the long side */
        if (wide) {
            cells[0][0] = 0, cells[0][1] = 0, cells[0][2] = W / 2, cells[0][3] = H;
            cells[1][0] = W / 2, cells[1][1] = 0, cells[1][2] = W / 2, cells[1][3] = n == 2 ? H : H / 2;
            if (n == 3) cells[2][0] = W / 2, cells[2][1] = H / 2, cells[2][2] = W / 2, cells[2][3] = H / 2;
        } else {
            cells[0][0] = 0, cells[0][1] = 0, cells[0][2] = W, cells[0][3] = H / 2;
            cells[1][0] = 0, cells[1][1] = H / 2, cells[1][2] = n == 2 ? W : W / 2, cells[1][3] = H / 2;
            if (n == 3) cells[2][0] = W / 2, cells[2][1] = H / 2, cells[2][2] = W / 2, cells[2][3] = H / 2;
        }
        if (mm_rng_below(r, 2)) /* mirror so the big cell is not always first */
            for (int k = 0; k < n; k++) {
                if (wide) cells[k][0] = W - cells[k][0] - cells[k][2];
                else cells[k][1] = H - cells[k][1] - cells[k][3];
            }
    }
    for (int k = 0; k < n; k++) {
        double cw = cells[k][2], ch = cells[k][3], m = cw < ch ? cw : ch;
        double rad = 0.5 * m * (0.72 + 0.22 * mm_rng_uniform(r));
        shape *s = &p->shapes[k];
        s->r = rad;
        s->cx = cells[k][0] + rad + (cw - 2 * rad) * mm_rng_uniform(r);
        s->cy = cells[k][1] + rad + (ch - 2 * rad) * mm_rng_uniform(r);
        for (int i = 0; i < 10; i++) {
            double a = -M_PI / 2 + i * M_PI / 5, rr = (i & 1) ? 0.5 * rad : rad;
            s->vx[i] = s->cx + rr * cos(a);
            s->vy[i] = s->cy + rr * sin(a);
        }
    }
}

/* Draw one picture. `next_feature` and `next_kind` cycle through the feature colours and
 * the shape kinds so each appears about equally often; the layout is redrawn until every
 * shape covers MIN_FULL_CELLS cells, dropping the last shape if it will not fit. */
static vlmn_status draw(picture *p, mm_rng *r, int *next_feature, int *next_kind)
{
    int n = 1 + (int)mm_rng_below(r, 3);
    p->w = 64 + (int)mm_rng_below(r, 137);
    p->h = 64 + (int)mm_rng_below(r, 137);
    if (p->w > 1.5 * p->h) p->w = (int)(1.5 * p->h);
    if (p->h > 1.5 * p->w) p->h = (int)(1.5 * p->w);
    p->bg = &mm_backgrounds[mm_rng_below(r, MM_N_BACKGROUNDS)];
    int used[MM_N_FEATURE_COLOURS] = {0};
    const mm_colour *neutral_used = NULL;
    for (int k = 0; k < n; k++) {
        shape *s = &p->shapes[k];
        s->kind = *next_kind;
        *next_kind = (*next_kind + 1) % MM_N_SHAPES;
        if (mm_rng_uniform(r) < 0.12 && !neutral_used) {
            /* a neutral colour that stands out from the background */
            const mm_colour *c;
            do c = &mm_neutral_colours[mm_rng_below(r, MM_N_NEUTRAL_COLOURS)];
            while (abs((int)c->rgb[0] - (int)p->bg->rgb[0]) < 60);
            s->colour = neutral_used = c;
            s->feature = -1;
        } else {
            int f = *next_feature % MM_N_FEATURE_COLOURS;
            while (used[f]) f = (f + 1) % MM_N_FEATURE_COLOURS;
            used[f] = 1;
            *next_feature = f + 1;
            s->colour = &mm_feature_colours[f];
            s->feature = f;
        }
    }
    vlmn_free(p->rgb);
    p->rgb = vlmn_malloc((size_t)p->w * p->h * 3);
    if (!p->rgb) return vlmn_error(VLMN_E_NOMEM, "make-dataset: out of memory");
    for (; n >= 1; n--) {
        p->n_shapes = n;
        for (int attempt = 0; attempt < 60; attempt++) {
            layout(p, r);
            render(p);
            coverage(p);
            bool ok = true;
            for (int k = 0; k < n; k++) ok = ok && p->shapes[k].full_cells >= MIN_FULL_CELLS;
            if (ok) return VLMN_OK;
        }
    }
    return vlmn_error(VLMN_E_INTERNAL, "make-dataset: could not lay out a %dx%d picture", p->w, p->h);
}

/* The ground-truth mask of shape k (the pixels render() paints with it; shapes do not
 * overlap) as COCO RLE {"size":[h,w],"counts":STRING} under "mask". */
static vlmn_status add_mask(cJSON *o, const picture *p, int k)
{
    uint8_t *m = vlmn_calloc((size_t)p->w * p->h, 1);
    if (!m) return vlmn_error(VLMN_E_NOMEM, "make-dataset: out of memory");
    const shape *s = &p->shapes[k];
    for (int y = 0; y < p->h; y++)
        for (int x = 0; x < p->w; x++) m[(size_t)y * p->w + x] = inside(s, x + 0.5, y + 0.5);
    char *counts = NULL;
    vlmn_status st = vlmn_rle_encode_string(m, p->h, p->w, &counts);
    vlmn_free(m);
    if (st) return st;
    cJSON *mk = cJSON_AddObjectToObject(o, "mask");
    cJSON *size = mk ? cJSON_AddArrayToObject(mk, "size") : NULL;
    bool ok = size && cJSON_AddItemToArray(size, cJSON_CreateNumber(p->h)) &&
              cJSON_AddItemToArray(size, cJSON_CreateNumber(p->w)) && cJSON_AddStringToObject(mk, "counts", counts);
    vlmn_free(counts);
    return ok ? VLMN_OK : vlmn_error(VLMN_E_NOMEM, "make-dataset: out of memory");
}

/* Append printf-style text to a fixed buffer (descriptions are short). */
static void cat(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t cap, const char *fmt, ...)
{
    size_t l = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, cap - l, fmt, ap);
    va_end(ap);
}

static void describe(const picture *p, mm_rng *r, char *out, size_t cap)
{
    static const char *const counts[] = {"", "a single shape", "two shapes", "three shapes"};
    out[0] = 0;
    cat(out, cap, "The image shows %s on a plain %s background: ", counts[p->n_shapes], p->bg->name);
    for (int k = 0; k < p->n_shapes; k++) {
        const shape *s = &p->shapes[k];
        const char *sep = k == 0 ? "" : (k == p->n_shapes - 1 ? " and " : ", ");
        cat(out, cap, "%sa %s %s", sep, s->colour->name, mm_shape_names[s->kind]);
    }
    cat(out, cap, ".");
    for (int k = 0; k < p->n_shapes; k++) {
        const shape *s = &p->shapes[k];
        double frac = (s->r * 2) * (s->r * 2) / ((double)p->w * p->h);
        const char *size = frac > 0.45 ? "large" : frac > 0.25 ? "fairly large" : frac > 0.12 ? "medium sized" : "small";
        static const char *const pos[3][3] = {
            {"near the top left corner", "near the top edge", "near the top right corner"},
            {"on the left side", "in the center", "on the right side"},
            {"near the bottom left corner", "near the bottom edge", "near the bottom right corner"},
        };
        int gx = (int)(3 * s->cx / p->w), gy = (int)(3 * s->cy / p->h);
        gx = gx < 0 ? 0 : gx > 2 ? 2 : gx;
        gy = gy < 0 ? 0 : gy > 2 ? 2 : gy;
        cat(out, cap, " The %s %s is %s and sits %s of the picture.", s->colour->name,
            mm_shape_names[s->kind], size, pos[gy][gx]);
    }
    for (int k = 0; k < p->n_shapes; k++) {
        const shape *s = &p->shapes[k];
        cat(out, cap, " The %s %s has %s edges.", s->colour->name, mm_shape_names[s->kind],
            s->kind == 0 ? "smooth, round" : "sharp, clean");
    }
    cat(out, cap, " %s", mm_rng_below(r, 2) ? "Overall, the scene is simple, with flat colors and no text."
                                            : "Overall, the picture is clean and the shapes do not overlap.");
}

static vlmn_status write_png(const char *path, const picture *p)
{
    FILE *volatile f = fopen(path, "wb");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: cannot create: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return vlmn_error(VLMN_E_IO, "%s: PNG write failed", path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)p->w, (png_uint_32)p->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < p->h; y++) png_write_row(png, p->rgb + (size_t)y * p->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f)) return vlmn_error(VLMN_E_IO, "%s: write failed: %s", path, strerror(errno));
    return VLMN_OK;
}

/* Write text to dir/name through a temporary file and rename. */
static vlmn_status write_text(const char *dir, const char *name, const char *text)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        remove(tmp);
        return vlmn_error(VLMN_E_IO, "%s: write failed", path);
    }
    return VLMN_OK;
}

static vlmn_status mkdir_p(const char *path)
{
    if (mkdir(path, 0777) && errno != EEXIST) return vlmn_error(VLMN_E_IO, "%s: cannot create directory: %s", path, strerror(errno));
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode)) return vlmn_error(VLMN_E_IO, "%s: not a directory", path);
    return VLMN_OK;
}

vlmn_status vlmn_mm_make_dataset(const char *dir, int n, uint64_t seed, vlmn_mm_format fmt)
{
    if (n < 1 || n > 1000000) return vlmn_error(VLMN_E_ARG, "make-dataset: number of images %d out of range 1..1000000", n);
    char sub[4096];
    if ((size_t)snprintf(sub, sizeof sub, "%s/images", dir) >= sizeof sub - 64)
        return vlmn_error(VLMN_E_ARG, "%s: path too long", dir);
    vlmn_status st;
    if ((st = mkdir_p(dir)) || (st = mkdir_p(sub))) return st;

    picture p = {0};
    cJSON *data = cJSON_CreateArray(), *truth = cJSON_CreateArray();
    char *jsonl = NULL, *text = NULL;
    size_t jl_len = 0, jl_cap = 0;
    if (!data || !truth) goto nomem;
    mm_rng r;
    mm_rng_seed(&r, seed, 0x64617461 /* "data" */, 0);
    int next_feature = 0, next_kind = 0;
    for (int i = 0; i < n; i++) {
        if ((st = draw(&p, &r, &next_feature, &next_kind))) goto fail;
        char id[64], rel[96], path[4200], desc[2048];
        snprintf(id, sizeof id, "planted-%06d", i);
        snprintf(rel, sizeof rel, "images/%s.png", id);
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        if ((st = write_png(path, &p))) goto fail;
        describe(&p, &r, desc, sizeof desc);
        if (fmt == VLMN_MM_QA) {
            /* a short answer from the scene truth: the shapes, in drawing order */
            desc[0] = 0;
            for (int k = 0; k < p.n_shapes; k++)
                cat(desc, sizeof desc, "%sa %s %s", k == 0 ? "" : (k == p.n_shapes - 1 ? " and " : ", "),
                    p.shapes[k].colour->name, mm_shape_names[p.shapes[k].kind]);
        }

        cJSON *t = cJSON_CreateObject(), *arr = cJSON_CreateArray();
        if (!t || !arr) {
            cJSON_Delete(t);
            cJSON_Delete(arr);
            goto nomem;
        }
        cJSON_AddItemToArray(truth, t);
        cJSON_AddStringToObject(t, "id", id);
        cJSON_AddStringToObject(t, "image", rel);
        cJSON_AddNumberToObject(t, "width", p.w);
        cJSON_AddNumberToObject(t, "height", p.h);
        cJSON_AddStringToObject(t, "background", p.bg->name);
        cJSON_AddItemToObject(t, "shapes", arr);
        for (int k = 0; k < p.n_shapes; k++) {
            cJSON *s = cJSON_CreateObject();
            if (!s) goto nomem;
            cJSON_AddItemToArray(arr, s);
            cJSON_AddStringToObject(s, "color", p.shapes[k].colour->name);
            cJSON_AddStringToObject(s, "shape", mm_shape_names[p.shapes[k].kind]);
            cJSON_AddNumberToObject(s, "full_cells_16x16", p.shapes[k].full_cells);
            if ((st = add_mask(s, &p, k))) goto fail;
        }

        cJSON *e = cJSON_CreateObject();
        if (!e) goto nomem;
        cJSON_AddStringToObject(e, "id", id);
        cJSON_AddStringToObject(e, "image", rel);
        if (fmt != VLMN_MM_JSON) {
            cJSON_AddStringToObject(e, "question", fmt == VLMN_MM_QA ? QA_QUESTION : QUESTION);
            cJSON_AddStringToObject(e, "answer", desc);
            char *line = cJSON_PrintUnformatted(e);
            cJSON_Delete(e);
            if (!line) goto nomem;
            size_t ll = strlen(line);
            if (jl_len + ll + 2 > jl_cap) {
                size_t nc = (jl_cap + ll + 2) * 2;
                char *nj = vlmn_realloc(jsonl, nc);
                if (!nj) {
                    cJSON_free(line);
                    goto nomem;
                }
                jsonl = nj;
                jl_cap = nc;
            }
            memcpy(jsonl + jl_len, line, ll);
            jl_len += ll;
            jsonl[jl_len++] = '\n';
            jsonl[jl_len] = 0;
            cJSON_free(line);
        } else {
            cJSON_AddItemToArray(data, e);
            cJSON *conv = cJSON_AddArrayToObject(e, "conversations");
            cJSON *h = cJSON_CreateObject(), *g = cJSON_CreateObject();
            if (!conv || !h || !g) {
                cJSON_Delete(h);
                cJSON_Delete(g);
                goto nomem;
            }
            cJSON_AddItemToArray(conv, h);
            cJSON_AddItemToArray(conv, g);
            cJSON_AddStringToObject(h, "from", "human");
            cJSON_AddStringToObject(h, "value", "<image>\n" QUESTION);
            cJSON_AddStringToObject(g, "from", "gpt");
            cJSON_AddStringToObject(g, "value", desc);
        }
    }
    if (fmt != VLMN_MM_JSON) {
        if ((st = write_text(dir, fmt == VLMN_MM_QA ? "qa.jsonl" : "data.jsonl", jsonl ? jsonl : ""))) goto fail;
    } else {
        if (!(text = cJSON_Print(data))) goto nomem;
        if ((st = write_text(dir, "data.json", text))) goto fail;
        cJSON_free(text);
        text = NULL;
    }
    if (!(text = cJSON_Print(truth))) goto nomem;
    st = write_text(dir, "shapes.json", text);
    goto done;
nomem:
    st = vlmn_error(VLMN_E_NOMEM, "make-dataset: out of memory");
fail:
done:
    if (text) cJSON_free(text);
    vlmn_free(jsonl);
    vlmn_free(p.rgb);
    cJSON_Delete(data);
    cJSON_Delete(truth);
    return st;
}
