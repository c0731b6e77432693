/* The built-in CLIP visual simulator (issue 15): MaskCLIP patch similarities of the
 * explanation on each sample's image, preprocessed with the geometry of the sample's
 * image-token grid, calibrated to 0..10 and resampled onto that grid.
 * Flow: simulate pipeline -> [this] -> clip towers -> simulations table. docs/clip.md. */
#include "vlmn/clip.h"
#include "vlmn/image.h"
#include "vlmn/trace.h"
#include "core/alloc.h"

#include <math.h>
#include <string.h>

typedef struct clipsim {
    vlmn_clip *clip;
    vlmn_clip_tokenize_fn tokenize;
    void *tok_user;
    char *last_text;  /* cache of the last explanation's embedding */
    float *last_emb;
} clipsim;

void vlmn_clip_resample(const float *in, int gi, float *out, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double y0 = (double)r * gi / rows, y1 = (double)(r + 1) * gi / rows;
        for (int c = 0; c < cols; c++) {
            double x0 = (double)c * gi / cols, x1 = (double)(c + 1) * gi / cols;
            double acc = 0, area = 0;
            for (int iy = (int)floor(y0); iy < gi && iy < y1; iy++) {
                double oy = fmin(iy + 1, y1) - fmax(iy, y0);
                if (oy <= 0) continue;
                for (int ix = (int)floor(x0); ix < gi && ix < x1; ix++) {
                    double ox = fmin(ix + 1, x1) - fmax(ix, x0);
                    if (ox <= 0) continue;
                    acc += ox * oy * in[iy * gi + ix];
                    area += ox * oy;
                }
            }
            out[r * cols + c] = area > 0 ? (float)(acc / area) : 0.f;
        }
    }
}

static bool same_rect(const vlmn_trace_grid *a, const vlmn_trace_grid *b)
{
    return fabs(a->x0 - b->x0) < 1e-6 && fabs(a->y0 - b->y0) < 1e-6 && fabs(a->x1 - b->x1) < 1e-6 &&
           fabs(a->y1 - b->y1) < 1e-6;
}

/* Whether the grid's rectangle is tile (c, r) of an even cols x rows tiling of the w x h
 * image (InternVL: the image resized to cols x rows tiles; the thumbnail is 1 x 1). */
static bool tile_of(int w, int h, const vlmn_trace_grid *g, int *cols, int *rows, int *c, int *r)
{
    const double tw = g->x1 - g->x0, th = g->y1 - g->y0;
    if (!(tw > 0 && th > 0)) return false;
    *cols = (int)lround(w / tw);
    *rows = (int)lround(h / th);
    if (*cols < 1 || *rows < 1 || *cols * *rows > VLMN_IMG_MAX_TILES) return false;
    *c = (int)lround(g->x0 / tw);
    *r = (int)lround(g->y0 / th);
    if (*c < 0 || *c >= *cols || *r < 0 || *r >= *rows) return false;
    /* the rectangles the trace gives that tiling (trace_store.c) */
    vlmn_trace_grid want[VLMN_TRACE_MAX_GRIDS];
    return vlmn_trace_tile_grids(w, h, *cols, *rows, *cols * *rows, 1, 0, want) == VLMN_OK &&
           same_rect(&want[*r * *cols + *c], g);
}

static vlmn_status text_embed(clipsim *t, const char *text, const float **emb)
{
    const vlmn_clip_info *I = vlmn_clip_get_info(t->clip);
    if (t->last_text && !strcmp(t->last_text, text)) {
        *emb = t->last_emb;
        return VLMN_OK;
    }
    int32_t *ids = vlmn_malloc((size_t)I->t_ctx * sizeof *ids);
    if (!ids) return vlmn_error(VLMN_E_NOMEM, "clip: out of memory");
    int n = 0;
    vlmn_status st = t->tokenize(t->tok_user, text, ids, I->t_ctx, &n);
    if (!st && (n < 1 || n > I->t_ctx)) st = vlmn_error(VLMN_E_RANGE, "clip: the tokenizer returned %d ids", n);
    if (!st) st = vlmn_clip_text(t->clip, ids, n, t->last_emb);
    vlmn_free(ids);
    vlmn_free(t->last_text);
    t->last_text = st ? NULL : vlmn_strdup(text);
    if (!st && !t->last_text) st = vlmn_error(VLMN_E_NOMEM, "clip: out of memory");
    *emb = t->last_emb;
    return st;
}

vlmn_status vlmn_clip_sample_patches(vlmn_clip *c, const vlmn_image *img, const vlmn_trace_grid *grids, int n_grids,
                                     int n_visual, int64_t sample_index, float *pe)
{
    const vlmn_clip_info *I = vlmn_clip_get_info(c);
    const int S = I->image_size, G = I->grid, D = I->proj_dim;
    float *px = vlmn_malloc((size_t)3 * S * S * sizeof *px);
    vlmn_status st = VLMN_OK;
    if (!px) return vlmn_error(VLMN_E_NOMEM, "clip: out of memory");
    int off = 0;
    for (int g = 0; g < n_grids; g++) {
        const vlmn_trace_grid *gr = &grids[g];
        vlmn_trace_grid pad, crop;
        int tc, tr, tx, ty;
        if (vlmn_trace_geometry(img->w, img->h, "pad", S, 1, &pad) == VLMN_OK && same_rect(&pad, gr))
            st = vlmn_img_preprocess(img, VLMN_IMG_PAD, S, I->image_mean, I->image_std, px);
        else if (vlmn_trace_geometry(img->w, img->h, "crop", S, 1, &crop) == VLMN_OK && same_rect(&crop, gr))
            st = vlmn_img_preprocess(img, VLMN_IMG_CROP, S, I->image_mean, I->image_std, px);
        else if (tile_of(img->w, img->h, gr, &tc, &tr, &tx, &ty)) /* InternVL: the tile at CLIP's size */
            st = vlmn_img_tile_at(img, S, tc, tr, tx, ty, I->image_mean, I->image_std, px);
        else {
            st = vlmn_error(VLMN_E_UNSUPPORTED,
                            "clip: sample %lld: grid %d covers [%g, %g) x [%g, %g), neither the pad nor the crop "
                            "of the %dx%d image nor one tile of an even tiling",
                            (long long)sample_index, g, gr->x0, gr->x1, gr->y0, gr->y1, img->w, img->h);
            goto out;
        }
        if (st) goto out;
        int n = gr->rows * gr->cols;
        if (off + n > n_visual) {
            st = vlmn_error(VLMN_E_MISMATCH, "clip: sample %lld: grids hold more than its %d image tokens",
                            (long long)sample_index, n_visual);
            goto out;
        }
        if ((st = vlmn_clip_image(c, px, NULL, pe + (size_t)g * G * G * D))) goto out;
        off += n;
    }
    if (off != n_visual)
        st = vlmn_error(VLMN_E_MISMATCH, "clip: sample %lld: grids hold %d of its %d image tokens",
                        (long long)sample_index, off, n_visual);
out:
    vlmn_free(px);
    return st;
}

vlmn_status vlmn_clip_sample_map(vlmn_clip *c, const float *pe, const vlmn_trace_grid *grids, int n_grids,
                                 const float *text_embed, float *sim)
{
    const vlmn_clip_info *I = vlmn_clip_get_info(c);
    const int G = I->grid, D = I->proj_dim;
    float *map = vlmn_malloc((size_t)G * G * sizeof *map);
    if (!map) return vlmn_error(VLMN_E_NOMEM, "clip: out of memory");
    int off = 0;
    for (int g = 0; g < n_grids; g++) {
        vlmn_clip_cosine(pe + (size_t)g * G * G * D, G * G, D, text_embed, map);
        for (int i = 0; i < G * G; i++) map[i] = vlmn_clip_calibrate(map[i]);
        vlmn_clip_resample(map, G, sim + off, grids[g].rows, grids[g].cols);
        off += grids[g].rows * grids[g].cols;
    }
    vlmn_free(map);
    return VLMN_OK;
}

static vlmn_status cs_local(void *self, const char *explanation, const vlmn_xsample *s, float *sim)
{
    clipsim *t = self;
    const vlmn_clip_info *I = vlmn_clip_get_info(t->clip);
    if (!s->png || !s->n_grids || !s->grids)
        return vlmn_error(VLMN_E_NOTFOUND, "clip: sample %lld has no image", (long long)s->sample_index);
    const float *temb = NULL;
    vlmn_status st = text_embed(t, explanation, &temb);
    if (st) return st;
    vlmn_image *img = NULL;
    if ((st = vlmn_img_decode_memory(s->png, s->png_len, "sample image", &img))) return st;
    const int G = I->grid, D = I->proj_dim;
    float *pe = vlmn_malloc((size_t)s->n_grids * G * G * D * sizeof *pe);
    if (!pe) st = vlmn_error(VLMN_E_NOMEM, "clip: out of memory");
    if (!st) st = vlmn_clip_sample_patches(t->clip, img, s->grids, s->n_grids, s->n_visual, s->sample_index, pe);
    if (!st) st = vlmn_clip_sample_map(t->clip, pe, s->grids, s->n_grids, temb, sim);
    vlmn_img_free(img);
    vlmn_free(pe);
    return st;
}

static void cs_free(void *self)
{
    clipsim *t = self;
    if (!t) return;
    vlmn_free(t->last_text);
    vlmn_free(t->last_emb);
    vlmn_free(t);
}

vlmn_status vlmn_clipsim_create(vlmn_clip *clip, vlmn_clip_tokenize_fn tokenize, void *tok_user, vlmn_simulator *out)
{
    memset(out, 0, sizeof *out);
    if (!clip || !tokenize) return vlmn_error(VLMN_E_ARG, "clip simulator: needs a model and a tokenizer");
    clipsim *t = vlmn_calloc(1, sizeof *t);
    if (!t || !(t->last_emb = vlmn_calloc((size_t)vlmn_clip_get_info(clip)->proj_dim, sizeof(float)))) {
        vlmn_free(t);
        return vlmn_error(VLMN_E_NOMEM, "clip simulator: out of memory");
    }
    t->clip = clip;
    t->tokenize = tokenize;
    t->tok_user = tok_user;
    out->name = "clip";
    out->modality = VLMN_SIM_VISUAL;
    out->self = t;
    out->local = cs_local;
    out->free = cs_free;
    return VLMN_OK;
}
