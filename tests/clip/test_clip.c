/* CLIP towers (src/clip) against the float64 PyTorch reference of HF CLIPModel
 * semantics (tests/reference/clip_ref.py -> tests/data/clip/tiny): image embedding,
 * MaskCLIP patch embeddings and their cosine with a text embedding, text embeddings
 * (EOT pooling with padding after the end token), within 1e-4; load errors. */
#include "test.h"

#include "vlmn/clip.h"
#include "vlmn/draw.h"
#include "vlmn/image.h"
#include "vlmn/trace.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

static float *floats(const cJSON *a, int *n)
{
    *n = cJSON_GetArraySize(a);
    float *p = malloc((size_t)(*n ? *n : 1) * sizeof *p);
    for (int i = 0; i < *n; i++) p[i] = (float)cJSON_GetArrayItem(a, i)->valuedouble;
    return p;
}

static double max_abs_diff(const float *a, const cJSON *want, int n_expect)
{
    int n;
    float *w = floats(want, &n);
    double m = n == n_expect ? 0 : INFINITY;
    for (int i = 0; i < n && i < n_expect; i++) m = fmax(m, fabs((double)a[i] - w[i]));
    free(w);
    return m;
}

static void check_towers(const char *folder, vlmn_pool *pool, vlmn_precision prec, double tol)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/clip/%s", test_data_dir(), folder);
    vlmn_clip *c = NULL;
    CHECK_EQ_INT(vlmn_clip_load(dir, pool, prec, &c), VLMN_OK);
    if (!c) return;
    const vlmn_clip_info *I = vlmn_clip_get_info(c);
    CHECK(I->grid == 4 && I->proj_dim == 8 && I->v_layers == 2 && I->t_ctx == 10 && I->eos_token_id == 39);
    CHECK_NEAR(I->logit_scale, exp(2.6592), 0.05); /* bf16-rounded in the bf16 folder */
    char *text = test_read_file(test_path(dir, "expected.json"), NULL);
    cJSON *e = cJSON_Parse(text);
    int np;
    float *px = floats(cJSON_GetObjectItem(e, "pixels"), &np);
    CHECK_EQ_INT(np, 3 * 28 * 28);
    float img[8], patch[16 * 8], sim[16];
    CHECK_EQ_INT(vlmn_clip_image(c, px, img, patch), VLMN_OK);
    double d = max_abs_diff(img, cJSON_GetObjectItem(e, "image_embed"), 8);
    CHECK_MSG(d <= tol, "image embed off by %g", d);
    d = max_abs_diff(patch, cJSON_GetObjectItem(e, "patch_embed"), 16 * 8);
    CHECK_MSG(d <= tol, "patch embed off by %g", d);
    /* patch_embed alone (no CLS pass) gives the same */
    float patch2[16 * 8];
    CHECK_EQ_INT(vlmn_clip_image(c, px, NULL, patch2), VLMN_OK);
    CHECK(!memcmp(patch, patch2, sizeof patch));
    const cJSON *t;
    int k = 0;
    float t0[8];
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(e, "texts"))
    {
        const cJSON *ids = cJSON_GetObjectItem(t, "ids");
        int32_t id[16];
        int n = cJSON_GetArraySize(ids);
        for (int i = 0; i < n; i++) id[i] = cJSON_GetArrayItem(ids, i)->valueint;
        float emb[8];
        CHECK_EQ_INT(vlmn_clip_text(c, id, n, emb), VLMN_OK);
        d = max_abs_diff(emb, cJSON_GetObjectItem(t, "embed"), 8);
        CHECK_MSG(d <= tol, "text %d embed off by %g", k, d);
        if (k == 0) memcpy(t0, emb, sizeof t0);
        k++;
    }
    CHECK_EQ_INT(k, 3);
    vlmn_clip_cosine(patch, 16, 8, t0, sim);
    d = max_abs_diff(sim, cJSON_GetObjectItem(e, "maskclip_cos"), 16);
    CHECK_MSG(d <= tol, "MaskCLIP cosine off by %g", d);
    /* bad ids */
    int32_t bad[3] = {38, 5, 7};
    float emb[8];
    CHECK_EQ_INT(vlmn_clip_text(c, bad, 3, emb), VLMN_E_ARG);
    bad[1] = 40;
    CHECK_EQ_INT(vlmn_clip_text(c, bad, 3, emb), VLMN_E_RANGE);
    int32_t many[11] = {38, 39};
    CHECK_EQ_INT(vlmn_clip_text(c, many, 11, emb), VLMN_E_ARG);
    cJSON_Delete(e);
    free(text);
    free(px);
    vlmn_clip_free(c);
}

TEST(towers_match_reference_exact) { check_towers("tiny", NULL, VLMN_PREC_EXACT, 1e-4); }

/* BF16 weights are used as stored (views, as the engine runs LLaVA's tower) */
TEST(towers_match_reference_bf16_weights) { check_towers("tiny-bf16", NULL, VLMN_PREC_EXACT, 1e-4); }

TEST(towers_match_reference_fast_pool)
{
    vlmn_pool *p = NULL;
    CHECK_EQ_INT(vlmn_pool_create(2, &p), VLMN_OK);
    check_towers("tiny", p, VLMN_PREC_FAST, 1e-4); /* F32 weights: FAST keeps f32 activations */
    vlmn_pool_free(p);
}

static int g_tok_calls;
static vlmn_status fixed_tokens(void *user, const char *text, int32_t *ids, int cap, int *n)
{
    (void)user;
    g_tok_calls++;
    CHECK_EQ_STR(text, "red things");
    static const int32_t t[4] = {38, 5, 7, 39};
    CHECK(cap >= 4);
    memcpy(ids, t, sizeof t);
    *n = 4;
    return VLMN_OK;
}

/* The simulator's whole path (PNG -> LLaVA pad geometry -> CLIP preprocessing -> MaskCLIP
 * -> calibration -> area resampling onto the sample's grid) against the reference. */
TEST(simulator_matches_reference)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/clip/tiny", test_data_dir());
    vlmn_clip *c = NULL;
    CHECK_EQ_INT(vlmn_clip_load(dir, NULL, VLMN_PREC_EXACT, &c), VLMN_OK);
    if (!c) return;
    vlmn_simulator sim;
    CHECK_EQ_INT(vlmn_clipsim_create(c, fixed_tokens, NULL, &sim), VLMN_OK);
    CHECK(sim.local && !sim.build && sim.modality == VLMN_SIM_VISUAL && !strcmp(sim.name, "clip"));
    char *text = test_read_file(test_path(dir, "expected.json"), NULL);
    cJSON *e = cJSON_Parse(text);
    const cJSON *k;
    int n_cases = 0;
    g_tok_calls = 0;
    cJSON_ArrayForEach(k, cJSON_GetObjectItem(e, "sim_cases"))
    {
        int w = cJSON_GetObjectItem(k, "w")->valueint, h = cJSON_GetObjectItem(k, "h")->valueint;
        int grid = cJSON_GetObjectItem(k, "grid")->valueint, n;
        float *rgb = floats(cJSON_GetObjectItem(k, "rgb"), &n);
        CHECK_EQ_INT(n, w * h * 3);
        vlmn_image *im = NULL;
        vlmn_img_create(w, h, &im);
        for (int i = 0; i < n; i++) im->rgb[i] = (uint8_t)rgb[i];
        uint8_t *png = NULL;
        size_t len = 0;
        CHECK_EQ_INT(vlmn_draw_png(im, &png, &len), VLMN_OK);
        vlmn_trace_grid g;
        CHECK_EQ_INT(vlmn_trace_geometry(w, h, "pad", 28, grid, &g), VLMN_OK);
        float real[16] = {0}, out[16];
        vlmn_xsample s = {.sample_index = n_cases, .n_visual = grid * grid, .visual_acts = real, .grid_w = grid,
                          .grid_h = grid, .png = png, .png_len = len, .image_w = w, .image_h = h, .n_grids = 1, .grids = &g};
        CHECK_EQ_INT(sim.local(sim.self, "red things", &s, out), VLMN_OK);
        double d = max_abs_diff(out, cJSON_GetObjectItem(k, "sim"), grid * grid);
        CHECK_MSG(d <= 1e-3, "case %d (%dx%d, grid %d): off by %g on the 0..10 scale", n_cases, w, h, grid, d);
        /* a rectangle that is neither the pad nor the crop of the image is refused */
        g.x0 += 3;
        CHECK_EQ_INT(sim.local(sim.self, "red things", &s, out), VLMN_E_UNSUPPORTED);
        /* InternVL's tiles (2 tiles + thumbnail): each grid's patches are CLIP's on that
         * tile as vlmn_img_tiles cuts it at CLIP's size (tiles.c, bit-exact against PIL) */
        {
            const vlmn_clip_info *I = vlmn_clip_get_info(c);
            const int S = I->image_size, G = I->grid, D = I->proj_dim;
            float *tiles = NULL;
            int nt = 0, tc = 0, trw = 0;
            CHECK_EQ_INT(vlmn_img_tiles(im, S, 2, 2, true, I->image_mean, I->image_std, &tiles, &nt, &tc, &trw), VLMN_OK);
            CHECK_EQ_INT(nt, 3);
            vlmn_trace_grid tg[3];
            CHECK_EQ_INT(vlmn_trace_tile_grids(w, h, tc, trw, 3, grid, 0, tg), VLMN_OK);
            float *pe = malloc(sizeof(float) * 3 * (size_t)(G * G * D)), *pw = malloc(sizeof(float) * (size_t)(G * G * D));
            CHECK_EQ_INT(vlmn_clip_sample_patches(c, im, tg, 3, 3 * grid * grid, n_cases, pe), VLMN_OK);
            for (int t = 0; t < 3 && tiles; t++) {
                CHECK_EQ_INT(vlmn_clip_image(c, tiles + (size_t)t * 3 * S * S, NULL, pw), VLMN_OK);
                CHECK_MSG(!memcmp(pw, pe + (size_t)t * G * G * D, sizeof(float) * (size_t)(G * G * D)),
                          "case %d: tile %d of %dx%d: patches differ from CLIP on the cut tile", n_cases, t, tc, trw);
            }
            vlmn_xsample st = s;
            st.n_visual = 3 * grid * grid;
            st.n_grids = 3;
            st.grids = tg;
            float out3[48];
            CHECK_EQ_INT(sim.local(sim.self, "red things", &st, out3), VLMN_OK);
            /* a tile rectangle off the even tiling is refused */
            tg[1].x0 += 1;
            CHECK_EQ_INT(sim.local(sim.self, "red things", &st, out3), VLMN_E_UNSUPPORTED);
            CHECK(strstr(vlmn_errmsg(), "nor one tile of an even tiling") != NULL);
            free(pe);
            free(pw);
            vlmn_free(tiles);
        }
        /* a grid larger than the sample's image tokens */
        CHECK_EQ_INT(vlmn_trace_geometry(w, h, "pad", 28, grid, &g), VLMN_OK);
        s.n_visual = grid * grid - 1;
        CHECK_EQ_INT(sim.local(sim.self, "red things", &s, out), VLMN_E_MISMATCH);
        vlmn_free(png);
        vlmn_img_free(im);
        free(rgb);
        n_cases++;
    }
    CHECK_EQ_INT(n_cases, 3);
    CHECK_EQ_INT(g_tok_calls, 1); /* one explanation: embedded once */
    sim.free(sim.self);
    cJSON_Delete(e);
    free(text);
    vlmn_clip_free(c);
}

TEST(resample)
{
    const float in[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    float out[9];
    vlmn_clip_resample(in, 4, out, 2, 2);
    CHECK_NEAR(out[0], 2.5, 1e-6);
    CHECK_NEAR(out[3], 12.5, 1e-6);
    vlmn_clip_resample(in, 4, out, 1, 1);
    CHECK_NEAR(out[0], 7.5, 1e-6);
    float id[16];
    vlmn_clip_resample(in, 4, id, 4, 4);
    CHECK(!memcmp(id, in, sizeof in));
    vlmn_clip_resample(in, 4, out, 3, 3); /* cells of 4/3: (0,0) = (0 + 1/3 * 1 + 1/3 * 4 + 1/9 * 5) / (16/9) */
    CHECK_NEAR(out[0], (0 + 1.0 / 3 + 4.0 / 3 + 5.0 / 9) / (16.0 / 9), 1e-5);
}

TEST(calibration)
{
    CHECK(vlmn_clip_calibrate(-0.2f) == 0);
    CHECK_NEAR(vlmn_clip_calibrate(0.25f), 2.5, 1e-6);
    CHECK(vlmn_clip_calibrate(1.5f) == 10);
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *b = test_read_file(from, &n);
    FILE *f = fopen(to, "wb");
    if (f && b) fwrite(b, 1, n, f);
    if (f) fclose(f);
    free(b);
}

TEST(load_errors)
{
    vlmn_clip *c = NULL;
    CHECK(vlmn_clip_load("/nonexistent/clip", NULL, VLMN_PREC_EXACT, &c) != VLMN_OK);
    CHECK(c == NULL);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/test_clip.%d", test_tmp_dir(), (int)getpid());
    mkdir(dir, 0777);
    char src[600];
    snprintf(src, sizeof src, "%s/clip/tiny", test_data_dir());
    copy_file(test_path(src, "model.safetensors"), test_path(dir, "model.safetensors"));
    /* a config whose projection size disagrees with the tensors */
    char *cfg = test_read_file(test_path(src, "config.json"), NULL);
    cJSON *j = cJSON_Parse(cfg);
    cJSON_ReplaceItemInObject(j, "projection_dim", cJSON_CreateNumber(9));
    char *s = cJSON_Print(j);
    FILE *f = fopen(test_path(dir, "config.json"), "w");
    fputs(s, f);
    fclose(f);
    CHECK(vlmn_clip_load(dir, NULL, VLMN_PREC_EXACT, &c) == VLMN_E_MISMATCH);
    CHECK(strstr(vlmn_errmsg(), "visual_projection.weight") != NULL);
    free(s);
    /* not a CLIPModel */
    cJSON_ReplaceItemInObject(j, "model_type", cJSON_CreateString("llava"));
    s = cJSON_Print(j);
    f = fopen(test_path(dir, "config.json"), "w");
    fputs(s, f);
    fclose(f);
    CHECK(vlmn_clip_load(dir, NULL, VLMN_PREC_EXACT, &c) == VLMN_E_UNSUPPORTED);
    CHECK(strstr(vlmn_errmsg(), "model_type") != NULL);
    free(s);
    cJSON_Delete(j);
    free(cfg);
}

TEST_MAIN()
