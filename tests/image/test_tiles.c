/* InternVL dynamic tiling (src/image/tiles.c) vs the model card's dynamic_preprocess +
 * torchvision ToTensor/Normalize run by tests/reference/internvl_ref.py: the grid choice
 * for 30 image sizes x max_num 12/6/1 (closest ratio, area tie-break), and the tiles'
 * float32 pixels of four PNGs at an 84-px tile size (max 4 tiles + thumbnail), bit for
 * bit; bad arguments. */
#include "test.h"

#include "vlmn/image.h"
#include "vlmn/npy.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <string.h>

static const float MEAN[3] = {0.485f, 0.456f, 0.406f}, STD[3] = {0.229f, 0.224f, 0.225f};

TEST(grid_matches_reference)
{
    char *js = test_read_file(test_path(test_data_dir(), "internvl/tile_grids.json"), NULL);
    CHECK(js != NULL);
    cJSON *a = js ? cJSON_Parse(js) : NULL;
    CHECK(cJSON_IsArray(a));
    int n = 0, bad = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        int w = cJSON_GetObjectItem(e, "w")->valueint, h = cJSON_GetObjectItem(e, "h")->valueint;
        int mx = cJSON_GetObjectItem(e, "max_num")->valueint;
        int c = 0, r = 0;
        CHECK_EQ_INT(vlmn_img_tile_grid(w, h, 448, 1, mx, &c, &r), VLMN_OK);
        if (c != cJSON_GetObjectItem(e, "cols")->valueint || r != cJSON_GetObjectItem(e, "rows")->valueint) {
            fprintf(stderr, "  %dx%d max %d: %dx%d, reference %dx%d\n", w, h, mx, c, r,
                    cJSON_GetObjectItem(e, "cols")->valueint, cJSON_GetObjectItem(e, "rows")->valueint);
            bad++;
        }
        n++;
    }
    CHECK_EQ_INT(n, 90);
    CHECK_EQ_INT(bad, 0);
    cJSON_Delete(a);
    free(js);
}

TEST(pixels_match_reference)
{
    static const char *const names[] = {"wide", "tall", "square", "portrait"};
    static const int want_tiles[] = {3, 4, 1, 3};
    for (int k = 0; k < 4; k++) {
        char p[128], q[128];
        snprintf(p, sizeof p, "internvl/img_%s.png", names[k]);
        snprintf(q, sizeof q, "internvl/tiles_%s.npy", names[k]);
        vlmn_image *im = NULL;
        vlmn_npy *ref = NULL;
        CHECK_EQ_INT(vlmn_img_load(test_path(test_data_dir(), p), &im), VLMN_OK);
        CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), q), &ref), VLMN_OK);
        float *px = NULL;
        int nt = 0, c = 0, r = 0;
        if (im && ref) {
            CHECK_EQ_INT(vlmn_img_tiles(im, 84, 1, 4, true, MEAN, STD, &px, &nt, &c, &r), VLMN_OK);
            CHECK_EQ_INT(nt, want_tiles[k]);
            CHECK_EQ_INT(ref->shape[0], nt);
            if (px && ref->count == (size_t)nt * 3 * 84 * 84) {
                size_t diff = 0;
                for (size_t i = 0; i < ref->count; i++)
                    if (memcmp(&px[i], (const float *)ref->data + i, sizeof(float))) diff++;
                CHECK_MSG(diff == 0, "%s: %zu of %zu values differ", names[k], diff, ref->count);
            }
        }
        vlmn_free(px);
        vlmn_npy_free(ref);
        vlmn_img_free(im);
    }
}

TEST(thumbnail_only_with_several_tiles)
{
    vlmn_image *im = NULL;
    CHECK_EQ_INT(vlmn_img_create(300, 100, &im), VLMN_OK);
    float *px = NULL;
    int nt = 0, c = 0, r = 0;
    /* 3:1 fits 3x1 and 6x2 exactly; 6x2 wins only when the image has more than half
     * of its pixels (30000 > 0.5 * 28 * 28 * 12, not > 0.5 * 448 * 448 * 12) */
    CHECK_EQ_INT(vlmn_img_tiles(im, 448, 1, 12, false, MEAN, STD, &px, &nt, &c, &r), VLMN_OK);
    CHECK_EQ_INT(c, 3);
    CHECK_EQ_INT(r, 1);
    CHECK_EQ_INT(nt, 3);
    vlmn_free(px);
    CHECK_EQ_INT(vlmn_img_tiles(im, 28, 1, 12, true, MEAN, STD, &px, &nt, &c, &r), VLMN_OK);
    CHECK_EQ_INT(c, 6);
    CHECK_EQ_INT(r, 2);
    CHECK_EQ_INT(nt, 13);
    vlmn_free(px);
    CHECK_EQ_INT(vlmn_img_tiles(im, 28, 1, 1, true, MEAN, STD, &px, &nt, &c, &r), VLMN_OK);
    CHECK_EQ_INT(nt, 1); /* one tile: no thumbnail */
    vlmn_free(px);
    CHECK(vlmn_img_tiles(im, 28, 1, 0, true, MEAN, STD, &px, &nt, &c, &r) != VLMN_OK);
    CHECK(vlmn_img_tiles(im, 28, 3, 2, true, MEAN, STD, &px, &nt, &c, &r) != VLMN_OK);
    CHECK(vlmn_img_tiles(im, 0, 1, 12, true, MEAN, STD, &px, &nt, &c, &r) != VLMN_OK);
    CHECK(vlmn_img_tile_grid(0, 5, 448, 1, 12, &c, &r) != VLMN_OK);
    vlmn_img_free(im);
}

TEST_MAIN()
