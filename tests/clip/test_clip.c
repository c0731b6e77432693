/* CLIP towers (src/clip) against the float64 PyTorch reference of HF CLIPModel
 * semantics (tests/reference/clip_ref.py -> tests/data/clip/tiny): image embedding,
 * MaskCLIP patch embeddings and their cosine with a text embedding, text embeddings
 * (EOT pooling with padding after the end token), within 1e-4; load errors. */
#include "test.h"

#include "vlmn/clip.h"
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

static void check_towers(vlmn_pool *pool, vlmn_precision prec, double tol)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/clip/tiny", test_data_dir());
    vlmn_clip *c = NULL;
    CHECK_EQ_INT(vlmn_clip_load(dir, pool, prec, &c), VLMN_OK);
    if (!c) return;
    const vlmn_clip_info *I = vlmn_clip_get_info(c);
    CHECK(I->grid == 4 && I->proj_dim == 8 && I->v_layers == 2 && I->t_ctx == 10 && I->eos_token_id == 39);
    CHECK_NEAR(I->logit_scale, exp(2.6592), 1e-4);
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

TEST(towers_match_reference_exact) { check_towers(NULL, VLMN_PREC_EXACT, 1e-4); }

TEST(towers_match_reference_fast_pool)
{
    vlmn_pool *p = NULL;
    CHECK_EQ_INT(vlmn_pool_create(2, &p), VLMN_OK);
    check_towers(p, VLMN_PREC_FAST, 1e-4); /* F32 weights: FAST keeps f32 activations */
    vlmn_pool_free(p);
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
