/* InternVL's dynamic tiling (the model card's dynamic_preprocess + build_transform):
 * pick the tile grid (cols x rows, min_num <= cols * rows <= max_num) whose aspect
 * ratio is closest to the image's (ties: the later, larger grid when the image has
 * more than half its pixels), resize the image to (cols * S) x (rows * S) with PIL's
 * BICUBIC, cut it into S x S tiles row by row, add an S x S thumbnail of the whole
 * image when there is more than one tile, and normalise each tile as torchvision's
 * ToTensor + Normalize (float32: x / 255, then (x - mean) / std). */
#include "vlmn/image.h"

#include "core/alloc.h"

#include <math.h>
#include <string.h>

vlmn_status vlmn_img_tile_grid(int w, int h, int S, int min_num, int max_num, int *cols, int *rows)
{
    if (w < 1 || h < 1) return vlmn_error(VLMN_E_ARG, "tiles: empty image");
    if (S < 1 || S > 8192) return vlmn_error(VLMN_E_ARG, "tiles: tile size %d out of range", S);
    if (min_num < 1 || max_num < min_num || max_num > VLMN_IMG_MAX_TILES)
        return vlmn_error(VLMN_E_ARG, "tiles: tile counts %d..%d not within 1..%d", min_num, max_num,
                          VLMN_IMG_MAX_TILES);
    const double aspect = (double)w / (double)h, area = (double)w * (double)h;
    double best_diff = INFINITY;
    int bi = 1, bj = 1;
    /* target_ratios sorted by area (cols * rows); within an area by cols */
    for (int n = 1; n <= max_num; n++)
        for (int i = 1; i <= n; i++) {
            if (n % i) continue;
            int j = n / i;
            if (n < min_num) continue;
            double diff = fabs(aspect - (double)i / (double)j);
            if (diff < best_diff) {
                best_diff = diff;
                bi = i, bj = j;
            } else if (diff == best_diff && area > 0.5 * (double)S * (double)S * (double)i * (double)j) {
                bi = i, bj = j;
            }
        }
    *cols = bi;
    *rows = bj;
    return VLMN_OK;
}

/* torchvision ToTensor + Normalize of an S x S region at (x0, y0) of `im`. */
static void normalize_tile(const vlmn_image *im, int x0, int y0, int S, const float mean[3], const float std[3],
                           float *out)
{
    const size_t n = (size_t)S * (size_t)S;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++) {
            const uint8_t *src = im->rgb + ((size_t)(y0 + y) * (size_t)im->w + (size_t)x0) * 3 + (size_t)c;
            float *o = out + (size_t)c * n + (size_t)y * (size_t)S;
            for (int x = 0; x < S; x++) {
                float v = (float)src[(size_t)x * 3] / 255.0f;
                o[x] = (v - mean[c]) / std[c];
            }
        }
}

vlmn_status vlmn_img_tiles(const vlmn_image *in, int S, int min_num, int max_num, bool thumbnail,
                           const float mean[3], const float std[3], float **out, int *n_tiles, int *cols, int *rows)
{
    *out = NULL;
    *n_tiles = 0;
    if (!in) return vlmn_error(VLMN_E_ARG, "tiles: no image");
    for (int c = 0; c < 3; c++)
        if (!(std[c] > 0.0f))
            return vlmn_error(VLMN_E_RANGE, "tiles: image_std[%d] = %g must be > 0", c, (double)std[c]);
    int gc, gr;
    vlmn_status st = vlmn_img_tile_grid(in->w, in->h, S, min_num, max_num, &gc, &gr);
    if (st) return st;
    const int nb = gc * gr, nt = nb + (thumbnail && nb != 1);
    const size_t per = 3 * (size_t)S * (size_t)S;
    vlmn_image *rs = NULL, *th = NULL;
    float *px = vlmn_malloc((size_t)nt * per * sizeof(float));
    if (!px) return vlmn_error(VLMN_E_NOMEM, "tiles: out of memory for %d tiles", nt);
    if ((st = vlmn_img_resize_bicubic(in, S * gc, S * gr, &rs))) goto fail;
    for (int i = 0; i < nb; i++) normalize_tile(rs, (i % gc) * S, (i / gc) * S, S, mean, std, px + (size_t)i * per);
    if (nt > nb) {
        if ((st = vlmn_img_resize_bicubic(in, S, S, &th))) goto fail;
        normalize_tile(th, 0, 0, S, mean, std, px + (size_t)nb * per);
    }
    vlmn_img_free(rs);
    vlmn_img_free(th);
    *out = px;
    *n_tiles = nt;
    if (cols) *cols = gc;
    if (rows) *rows = gr;
    return VLMN_OK;
fail:
    vlmn_img_free(rs);
    vlmn_img_free(th);
    vlmn_free(px);
    return st;
}

vlmn_status vlmn_img_tile_at(const vlmn_image *in, int S, int cols, int rows, int c, int r, const float mean[3],
                             const float std[3], float *out)
{
    if (!in) return vlmn_error(VLMN_E_ARG, "tiles: no image");
    if (S < 1 || cols < 1 || rows < 1 || c < 0 || c >= cols || r < 0 || r >= rows ||
        (int64_t)cols * rows > VLMN_IMG_MAX_TILES)
        return vlmn_error(VLMN_E_ARG, "tiles: no tile (%d, %d) in a %d x %d grid of %d px", c, r, cols, rows, S);
    for (int k = 0; k < 3; k++)
        if (!(std[k] > 0.0f)) return vlmn_error(VLMN_E_RANGE, "tiles: image_std[%d] = %g must be > 0", k, (double)std[k]);
    vlmn_image *rs = NULL;
    vlmn_status st = vlmn_img_resize_bicubic(in, S * cols, S * rows, &rs);
    if (st) return st;
    normalize_tile(rs, c * S, r * S, S, mean, std, out);
    vlmn_img_free(rs);
    return VLMN_OK;
}
