/* The segmenter protocol pieces (src/segment): COCO RLE against the independent numpy
 * reference (tests/reference/rle_ref.py -> tests/data/segment/rle_fixture.json), hostile
 * RLE, base64, prompt hygiene, reply parsing (sizes, versions, PNG masks), the mapping
 * of masks onto the patch grid through the pad / crop geometry, and the simulator's
 * request and reply on one sample. */
#include "test.h"

#include "vlmn/draw.h"
#include "vlmn/image.h"
#include "vlmn/makemodel.h"
#include "makemodel/palette.h"
#include "vlmn/llm.h"
#include "vlmn/segment.h"
#include "vlmn/trace.h"
#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <unistd.h>

TEST(rle_matches_reference)
{
    size_t n = 0;
    char *text = test_read_file(test_path(test_data_dir(), "segment/rle_fixture.json"), &n);
    CHECK(text != NULL);
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    CHECK(cJSON_IsArray(root) && cJSON_GetArraySize(root) >= 20);
    const cJSON *c;
    int k = 0;
    cJSON_ArrayForEach(c, root)
    {
        int h = cJSON_GetObjectItem(c, "h")->valueint, w = cJSON_GetObjectItem(c, "w")->valueint;
        const char *counts = cJSON_GetObjectItem(c, "counts")->valuestring;
        const cJSON *rows = cJSON_GetObjectItem(c, "rows"), *runs = cJSON_GetObjectItem(c, "runs");
        uint8_t *want = calloc((size_t)h * w, 1), *got = calloc((size_t)h * w, 1);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) want[y * w + x] = cJSON_GetArrayItem(rows, y)->valuestring[x] == '1';
        CHECK_EQ_INT(vlmn_rle_decode_string(counts, strlen(counts), h, w, got), VLMN_OK);
        CHECK_MSG(!memcmp(want, got, (size_t)h * w), "case %d: string decode", k);
        int nr = cJSON_GetArraySize(runs);
        int64_t *r = calloc((size_t)nr + 1, sizeof *r);
        for (int i = 0; i < nr; i++) r[i] = (int64_t)cJSON_GetArrayItem(runs, i)->valuedouble;
        memset(got, 7, (size_t)h * w);
        CHECK_EQ_INT(vlmn_rle_decode_counts(r, (size_t)nr, h, w, got), VLMN_OK);
        CHECK_MSG(!memcmp(want, got, (size_t)h * w), "case %d: counts decode", k);
        char *enc = NULL;
        CHECK_EQ_INT(vlmn_rle_encode_string(want, h, w, &enc), VLMN_OK);
        CHECK_MSG(enc && !strcmp(enc, counts), "case %d: encode %s vs %s", k, enc ? enc : "", counts);
        vlmn_free(enc);
        free(r);
        free(want);
        free(got);
        k++;
    }
    cJSON_Delete(root);
    free(text);
}

TEST(rle_hostile)
{
    uint8_t m[64];
    /* runs that do not cover the mask, or overflow it */
    CHECK_EQ_INT(vlmn_rle_decode_string("1", 1, 2, 2, m), VLMN_E_FORMAT);
    CHECK_EQ_INT(vlmn_rle_decode_string("5", 1, 2, 2, m), VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "RLE") != NULL);
    /* characters out of range, a number that never ends, an over-long number */
    CHECK_EQ_INT(vlmn_rle_decode_string("1 3", 3, 2, 2, m), VLMN_E_FORMAT);
    CHECK_EQ_INT(vlmn_rle_decode_string("P", 1, 2, 2, m), VLMN_E_FORMAT);
    CHECK_EQ_INT(vlmn_rle_decode_string("PPPPPPPPPP0", 11, 2, 2, m), VLMN_E_FORMAT);
    /* a negative run: "0" "4" then delta -> negative */
    CHECK_EQ_INT(vlmn_rle_decode_string("04000_", 6, 2, 2, m), VLMN_E_FORMAT);
    /* negative number as the first run ('?' + 0x10 sign) */
    CHECK_EQ_INT(vlmn_rle_decode_string("O", 1, 2, 2, m), VLMN_E_FORMAT);
    int64_t runs[3] = {1, -1, 4};
    CHECK_EQ_INT(vlmn_rle_decode_counts(runs, 3, 2, 2, m), VLMN_E_FORMAT);
    int64_t big[2] = {1, INT64_MAX};
    CHECK_EQ_INT(vlmn_rle_decode_counts(big, 2, 2, 2, m), VLMN_E_FORMAT);
    CHECK_EQ_INT(vlmn_rle_decode_string("4", 1, 0, 2, m), VLMN_E_FORMAT);
    CHECK_EQ_INT(vlmn_rle_decode_string("4", 1, 1 << 20, 1 << 20, m), VLMN_E_FORMAT);
    /* an empty string is zero runs: only right for ... no mask; 1x1 needs one run */
    CHECK_EQ_INT(vlmn_rle_decode_string("", 0, 1, 1, m), VLMN_E_FORMAT);
    CHECK_EQ_INT(vlmn_rle_decode_string("1", 1, 1, 1, m), VLMN_OK);
    CHECK_EQ_INT(m[0], 0);
    CHECK_EQ_INT(vlmn_rle_decode_string("01", 2, 1, 1, m), VLMN_OK);
    CHECK_EQ_INT(m[0], 1);
}

TEST(base64_roundtrip)
{
    uint8_t b[300];
    for (int i = 0; i < 300; i++) b[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n < 7; n++) {
        char *s = vlmn_llm_base64(b, n * 41 + (n % 3));
        uint8_t *d = NULL;
        size_t dn = 0;
        CHECK_EQ_INT(vlmn_llm_base64_decode(s, strlen(s), &d, &dn), VLMN_OK);
        CHECK_EQ_INT(dn, n * 41 + (n % 3));
        CHECK(dn == 0 || !memcmp(d, b, dn));
        vlmn_free(d);
        vlmn_free(s);
    }
    uint8_t *d = NULL;
    size_t dn = 0;
    CHECK_EQ_INT(vlmn_llm_base64_decode("data:image/png;base64,aGk=", 26, &d, &dn), VLMN_OK);
    CHECK(dn == 2 && d[0] == 'h' && d[1] == 'i');
    vlmn_free(d);
    CHECK_EQ_INT(vlmn_llm_base64_decode("aGk", 3, &d, &dn), VLMN_OK); /* unpadded */
    vlmn_free(d);
    CHECK_EQ_INT(vlmn_llm_base64_decode("a", 1, &d, &dn), VLMN_E_FORMAT);
    CHECK_EQ_INT(vlmn_llm_base64_decode("aG!k", 4, &d, &dn), VLMN_E_FORMAT);
    CHECK_EQ_INT(vlmn_llm_base64_decode("aG==k", 5, &d, &dn), VLMN_E_FORMAT);
}

TEST(prompt_hygiene)
{
    char *p = NULL;
    CHECK_EQ_INT(vlmn_seg_prompt("  Red   CIRCLES\n on\tblue ", &p), VLMN_OK);
    CHECK_EQ_STR(p, "red circles on blue.");
    vlmn_free(p);
    CHECK_EQ_INT(vlmn_seg_prompt("a cat.", &p), VLMN_OK);
    CHECK_EQ_STR(p, "a cat.");
    vlmn_free(p);
    CHECK_EQ_INT(vlmn_seg_prompt(" \n\t", &p), VLMN_E_ARG);
    CHECK(p == NULL);
}

static char *reply_json(int w, int h, const char *masks)
{
    char *s = malloc(strlen(masks) + 128);
    sprintf(s, "{\"version\":1,\"width\":%d,\"height\":%d,\"masks\":[%s]}", w, h, masks);
    return s;
}

TEST(parse_reply)
{
    /* 2 wide, 3 tall; column-major runs: mask A = pixel (0,0) ; mask B = column 1 */
    char *r = reply_json(2, 3,
                         "{\"rle\":{\"size\":[3,2],\"counts\":[0,1,5]},\"score\":0.8,\"label\":\"a\"},"
                         "{\"rle\":{\"size\":[3,2],\"counts\":\"33\"},\"score\":0.5}");
    uint8_t *m = NULL;
    int w, h, nm;
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 2, 3, &m, &w, &h, &nm), VLMN_OK);
    CHECK(w == 2 && h == 3 && nm == 2);
    const uint8_t want[6] = {1, 1, 0, 1, 0, 1};
    CHECK(m && !memcmp(m, want, 6));
    vlmn_free(m);
    /* the image is another size */
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 3, 3, &m, &w, &h, &nm), VLMN_E_MISMATCH);
    CHECK(strstr(vlmn_errmsg(), "but the image is 3x3") != NULL);
    free(r);
    /* a mask of another size than the reply */
    r = reply_json(2, 3, "{\"rle\":{\"size\":[4,2],\"counts\":[8]}}");
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 2, 3, &m, &w, &h, &nm), VLMN_E_MISMATCH);
    free(r);
    /* malformed RLE */
    r = reply_json(2, 3, "{\"rle\":{\"size\":[3,2],\"counts\":\"~~~\"}}");
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 2, 3, &m, &w, &h, &nm), VLMN_E_FORMAT);
    CHECK(strstr(vlmn_errmsg(), "mask 0") != NULL);
    free(r);
    r = reply_json(2, 3, "{\"rle\":{\"size\":[3,2],\"counts\":[1,2.5,2.5]}}");
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 2, 3, &m, &w, &h, &nm), VLMN_E_FORMAT);
    free(r);
    r = reply_json(2, 3, "{\"score\":1}");
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 2, 3, &m, &w, &h, &nm), VLMN_E_FORMAT);
    free(r);
    /* no masks: an empty union */
    r = reply_json(2, 3, "");
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 2, 3, &m, &w, &h, &nm), VLMN_OK);
    CHECK(nm == 0 && m && !m[0] && !m[5]);
    vlmn_free(m);
    free(r);
    const char *bad[] = {"", "[]", "{\"version\":2,\"width\":2,\"height\":3,\"masks\":[]}",
                         "{\"width\":2,\"height\":3,\"masks\":[]}", "{\"version\":1,\"width\":0,\"height\":3,\"masks\":[]}",
                         "{\"version\":1,\"width\":2,\"height\":3}", "{\"error\":\"no GPU\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_MSG(vlmn_seg_parse(bad[i], strlen(bad[i]), 2, 3, &m, &w, &h, &nm) != VLMN_OK, "%s", bad[i]);
        CHECK(m == NULL);
    }
    /* a PNG mask */
    vlmn_image *im = NULL;
    CHECK_EQ_INT(vlmn_img_create(2, 3, &im), VLMN_OK);
    memset(im->rgb, 0, 18);
    memset(im->rgb + 3 * 5, 255, 3); /* pixel (1, 2) */
    uint8_t *png = NULL;
    size_t len = 0;
    CHECK_EQ_INT(vlmn_draw_png(im, &png, &len), VLMN_OK);
    char *b64 = vlmn_llm_base64(png, len);
    char *mk = malloc(strlen(b64) + 32);
    sprintf(mk, "{\"png\":\"%s\"}", b64);
    r = reply_json(2, 3, mk);
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 2, 3, &m, &w, &h, &nm), VLMN_OK);
    const uint8_t want2[6] = {0, 0, 0, 0, 0, 1};
    CHECK(m && !memcmp(m, want2, 6));
    vlmn_free(m);
    free(r);
    r = reply_json(3, 2, mk);
    CHECK_EQ_INT(vlmn_seg_parse(r, strlen(r), 3, 2, &m, &w, &h, &nm), VLMN_E_MISMATCH);
    free(r);
    free(mk);
    vlmn_free(b64);
    vlmn_free(png);
    vlmn_img_free(im);
}

TEST(grid_pad_and_crop)
{
    /* 100 x 50 image padded to a square: 4x4 grid spans y in [-25, 75) */
    vlmn_trace_grid g;
    CHECK_EQ_INT(vlmn_trace_geometry(100, 50, "pad", 336, 4, &g), VLMN_OK);
    CHECK_NEAR(g.y0, -25, 1e-9);
    CHECK_NEAR(g.y1, 75, 1e-9);
    uint8_t *m = calloc(100 * 50, 1);
    memset(m, 1, 100 * 50); /* the whole image */
    float out[16];
    vlmn_seg_to_grid(m, 100, 50, &g, VLMN_SEG_HALF, out);
    for (int c = 0; c < 4; c++) {
        CHECK_EQ_INT((int)out[c], 0);       /* pad above */
        CHECK_EQ_INT((int)out[4 + c], 10);
        CHECK_EQ_INT((int)out[8 + c], 10);
        CHECK_EQ_INT((int)out[12 + c], 0);  /* pad below */
    }
    /* left 30 columns only: patch columns are 25 px wide: col 0 full, col 1 covered 5/25 */
    memset(m, 0, 100 * 50);
    for (int y = 0; y < 50; y++) memset(m + y * 100, 1, 30);
    vlmn_seg_to_grid(m, 100, 50, &g, VLMN_SEG_FRACTION, out);
    CHECK_NEAR(out[4], 10, 1e-5);
    CHECK_NEAR(out[5], 2, 1e-5);
    CHECK_NEAR(out[6], 0, 1e-6);
    CHECK_NEAR(out[0], 0, 1e-6);
    vlmn_seg_to_grid(m, 100, 50, &g, VLMN_SEG_HALF, out);
    CHECK(out[4] == 10 && out[5] == 0);
    /* crop: a 3x3 grid over the centre square [25, 75) x [0, 50) of the image */
    CHECK_EQ_INT(vlmn_trace_geometry(100, 50, "crop", 336, 3, &g), VLMN_OK);
    CHECK_NEAR(g.x0, 25, 1e-9);
    vlmn_seg_to_grid(m, 100, 50, &g, VLMN_SEG_FRACTION, out);
    /* columns 25..30 of the mask fall in crop column 0 (16.67 px wide): 5 / 16.67 */
    CHECK_NEAR(out[0], 10 * 5 / (50.0 / 3), 1e-4);
    CHECK_NEAR(out[1], 0, 1e-6);
    /* a fractional grid: half a pixel covered counts as half */
    vlmn_trace_grid q = {.rows = 1, .cols = 1, .x0 = 0.5, .y0 = 0, .x1 = 2.5, .y1 = 1};
    uint8_t two[2] = {1, 0};
    vlmn_seg_to_grid(two, 2, 1, &q, VLMN_SEG_FRACTION, out);
    CHECK_NEAR(out[0], 10 * 0.5 / 2, 1e-6);
    free(m);
}

TEST(simulator_request_and_reply)
{
    vlmn_segsim_opts o;
    vlmn_segsim_opts_default(&o);
    CHECK_NEAR(o.box_threshold, 0.35, 1e-12);
    CHECK_NEAR(o.text_threshold, 0.25, 1e-12);
    vlmn_simulator sim;
    CHECK_EQ_INT(vlmn_segsim_create(&o, &sim), VLMN_OK);
    CHECK(sim.modality == VLMN_SIM_VISUAL && !strcmp(sim.name, "segmenter") && sim.check_sample);
    vlmn_trace_grid g;
    vlmn_trace_geometry(4, 2, "pad", 336, 2, &g); /* 2x2 grid over y in [-1, 3) */
    float real[4] = {0};
    const uint8_t png[8] = {0x89, 'P', 'N', 'G', 1, 2, 3, 4};
    vlmn_xsample s = {.sample_index = 7, .n_visual = 4, .visual_acts = real, .grid_w = 2, .grid_h = 2,
                      .png = png, .png_len = 8, .image_w = 4, .image_h = 2, .n_grids = 1, .grids = &g};
    const char *path;
    char *body = NULL;
    CHECK_EQ_INT(sim.build(sim.self, VLMN_XK_VISUAL, "Red Shapes", &s, &path, &body), VLMN_OK);
    CHECK_EQ_STR(path, "/segment");
    cJSON *b = cJSON_Parse(body);
    CHECK(b && cJSON_GetObjectItem(b, "version")->valueint == 1);
    CHECK_EQ_STR(cJSON_GetObjectItem(b, "prompt")->valuestring, "red shapes.");
    CHECK_EQ_STR(cJSON_GetObjectItem(b, "image_format")->valuestring, "png");
    CHECK_NEAR(cJSON_GetObjectItem(b, "box_threshold")->valuedouble, 0.35, 1e-12);
    uint8_t *d = NULL;
    size_t dn = 0;
    const char *img = cJSON_GetObjectItem(b, "image")->valuestring;
    CHECK_EQ_INT(vlmn_llm_base64_decode(img, strlen(img), &d, &dn), VLMN_OK);
    CHECK(dn == 8 && !memcmp(d, png, 8));
    vlmn_free(d);
    cJSON_Delete(b);
    vlmn_free(body);
    /* the left half of the 4x2 image: column-major runs 0, 4 ones, 4 zeros */
    char *r = reply_json(4, 2, "{\"rle\":{\"size\":[2,4],\"counts\":[0,4,4]}}");
    CHECK_EQ_INT(sim.check_sample(sim.self, &s, r, strlen(r)), VLMN_OK);
    float out[4];
    int mis = -1;
    CHECK_EQ_INT(sim.parse(sim.self, &s, r, strlen(r), out, &mis), VLMN_OK);
    CHECK_EQ_INT(mis, 0);
    /* each patch is 2x2 px; row 0 spans y [-1, 1): half inside the image */
    CHECK(out[0] == 10 && out[1] == 0 && out[2] == 10 && out[3] == 0);
    free(r);
    r = reply_json(5, 2, "");
    CHECK(sim.check_sample(sim.self, &s, r, strlen(r)) == VLMN_E_MISMATCH);
    free(r);
    s.png = NULL;
    CHECK(sim.build(sim.self, VLMN_XK_VISUAL, "red", &s, &path, &body) != VLMN_OK);
    sim.free(sim.self);
    o.box_threshold = 2;
    CHECK_EQ_INT(vlmn_segsim_create(&o, &sim), VLMN_E_ARG);
}

/* make-dataset's ground-truth masks are exactly the pixels painted in the shape's colour
 * (checked on the PNGs it wrote, not on how the masks were made). */
TEST(dataset_masks_match_pixels)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/test_segment_ds.%d", test_tmp_dir(), (int)getpid());
    CHECK_EQ_INT(vlmn_mm_make_dataset(dir, 12, 5, VLMN_MM_JSON), VLMN_OK);
    char *text = test_read_file(test_path(dir, "shapes.json"), NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK(cJSON_IsArray(root));
    int n_shapes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        vlmn_image *im = NULL;
        CHECK_EQ_INT(vlmn_img_load(test_path(dir, cJSON_GetObjectItem(e, "image")->valuestring), &im), VLMN_OK);
        if (!im) continue;
        CHECK_EQ_INT(cJSON_GetObjectItem(e, "width")->valueint, im->w);
        CHECK_EQ_INT(cJSON_GetObjectItem(e, "height")->valueint, im->h);
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(e, "shapes"))
        {
            const char *col = cJSON_GetObjectItem(s, "color")->valuestring;
            const uint8_t *rgb = NULL;
            for (int i = 0; i < MM_N_FEATURE_COLOURS; i++)
                if (!strcmp(mm_feature_colours[i].name, col)) rgb = mm_feature_colours[i].rgb;
            for (int i = 0; i < MM_N_NEUTRAL_COLOURS; i++)
                if (!strcmp(mm_neutral_colours[i].name, col)) rgb = mm_neutral_colours[i].rgb;
            CHECK(rgb != NULL);
            const cJSON *mk = cJSON_GetObjectItem(s, "mask");
            const cJSON *size = cJSON_GetObjectItem(mk, "size");
            CHECK_EQ_INT(cJSON_GetArrayItem(size, 0)->valueint, im->h);
            CHECK_EQ_INT(cJSON_GetArrayItem(size, 1)->valueint, im->w);
            const char *counts = cJSON_GetObjectItem(mk, "counts")->valuestring;
            uint8_t *m = malloc((size_t)im->w * im->h);
            CHECK_EQ_INT(vlmn_rle_decode_string(counts, strlen(counts), im->h, im->w, m), VLMN_OK);
            long diff = 0, inside = 0;
            for (size_t i = 0; rgb && i < (size_t)im->w * im->h; i++) {
                bool painted = !memcmp(im->rgb + 3 * i, rgb, 3);
                diff += painted != (m[i] != 0);
                inside += m[i];
            }
            CHECK_MSG(diff == 0, "%s %s: %ld pixels differ", cJSON_GetObjectItem(e, "id")->valuestring, col, diff);
            CHECK(inside > 100);
            free(m);
            n_shapes++;
        }
        vlmn_img_free(im);
    }
    CHECK(n_shapes >= 12);
    cJSON_Delete(root);
    free(text);
}

TEST_MAIN()
