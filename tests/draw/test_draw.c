/* Drawing (include/vlmn/draw.h): the modulation formula on known activations (constant
 * activation -> uniform modulation, one hot patch -> exactly its pixels), the pad and
 * crop geometry, nearest vs bilinear, raw and JET, PNG round trip, data: URLs, and
 * token heat with hostile token strings escaped. Expected values are computed here
 * from the formulas in the header, not by the code under test. */
#include "test.h"
#include "vlmn/draw.h"
#include "vlmn/image.h"

#include "core/alloc.h"

#include <math.h>

static vlmn_image *noise_image(int w, int h, unsigned seed)
{
    vlmn_image *im = NULL;
    if (vlmn_img_create(w, h, &im)) return NULL;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        seed = seed * 1103515245u + 12345u;
        im->rgb[i] = (uint8_t)(seed >> 16);
    }
    return im;
}

TEST(geometry_pad_and_crop)
{
    vlmn_trace_grid g;
    CHECK(vlmn_trace_geometry(30, 20, "pad", 42, 3, &g) == VLMN_OK);
    CHECK_NEAR(g.x0, 0, 0);
    CHECK_NEAR(g.y0, -5, 0);
    CHECK_NEAR(g.x1, 30, 0);
    CHECK_NEAR(g.y1, 25, 0);
    CHECK(vlmn_trace_geometry(21, 40, "pad", 42, 3, &g) == VLMN_OK); /* side 40, x offset (40-21)/2 = 9 */
    CHECK_NEAR(g.x0, -9, 0);
    CHECK_NEAR(g.x1, 31, 0);
    CHECK_NEAR(g.y0, 0, 0);
    CHECK_NEAR(g.y1, 40, 0);
    /* crop: 60x42 -> shortest edge 42 keeps 60x42, crop left (60-42)/2 = 9 */
    CHECK(vlmn_trace_geometry(60, 42, "crop", 42, 3, &g) == VLMN_OK);
    CHECK_NEAR(g.x0, 9, 1e-12);
    CHECK_NEAR(g.x1, 51, 1e-12);
    CHECK_NEAR(g.y0, 0, 1e-12);
    CHECK_NEAR(g.y1, 42, 1e-12);
    /* 100x50 -> 84x42 (scale 0.84), left (84-42)/2 = 21 -> 25 original px */
    CHECK(vlmn_trace_geometry(100, 50, "crop", 42, 3, &g) == VLMN_OK);
    CHECK_NEAR(g.x0, 21 / 0.84, 1e-9);
    CHECK_NEAR(g.x1, 63 / 0.84, 1e-9);
    CHECK_NEAR(g.y1, 50, 1e-9);
    CHECK(vlmn_trace_geometry(10, 10, "stretch", 42, 3, &g) == VLMN_E_ARG);
    CHECK(vlmn_trace_geometry(0, 10, "pad", 42, 3, &g) == VLMN_E_ARG);
}

TEST(constant_activation_gives_uniform_modulation)
{
    vlmn_image *im = noise_image(30, 20, 1);
    CHECK(im != NULL);
    if (!im) return;
    vlmn_trace_grid g;
    CHECK(vlmn_trace_geometry(30, 20, "pad", 42, 3, &g) == VLMN_OK);
    g.first_pos = 2;
    float acts[2 + 9 + 3];
    for (int i = 0; i < 14; i++) acts[i] = 100.0f; /* non-grid positions must not matter */
    for (int i = 2; i < 11; i++) acts[i] = 1.5f;
    for (int up = 0; up < 2; up++) {
        vlmn_draw_opts o = {.mode = VLMN_DRAW_MODULATED, .upsample = (vlmn_upsample)up, .background = {10, 20, 30}};
        vlmn_image *out = NULL;
        CHECK(vlmn_draw_image(im, &g, 1, acts, 14, 6.0f, &o, &out) == VLMN_OK); /* a = 0.25 */
        if (!out) continue;
        CHECK_EQ_INT(out->w, 30);
        CHECK_EQ_INT(out->h, 20);
        int bad = 0;
        for (size_t i = 0; i < 30 * 20; i++)
            for (int c = 0; c < 3; c++) {
                double want = floor(0.25 * im->rgb[3 * i + c] + 0.75 * o.background[c] + 0.5);
                if (out->rgb[3 * i + c] != (uint8_t)want) bad++;
            }
        CHECK_EQ_INT(bad, 0);
        vlmn_img_free(out);
    }
    /* on a uniform image the picture is uniform */
    memset(im->rgb, 200, 30 * 20 * 3);
    vlmn_image *out = NULL;
    vlmn_draw_opts o = {.upsample = VLMN_UPSAMPLE_BILINEAR};
    CHECK(vlmn_draw_image(im, &g, 1, acts, 14, 6.0f, &o, &out) == VLMN_OK);
    if (out) {
        int diff = 0;
        for (size_t i = 0; i < 30 * 20 * 3; i++) diff += out->rgb[i] != out->rgb[0];
        CHECK_EQ_INT(diff, 0);
        CHECK_EQ_INT(out->rgb[0], 50);
    }
    vlmn_img_free(out);
    vlmn_img_free(im);
}

TEST(one_hot_patch_nearest_and_bilinear)
{
    vlmn_trace_grid g = {0, 3, 3, 0, 0, 30, 30};
    float acts[9] = {0};
    acts[1 * 3 + 2] = 4.0f; /* row 1, col 2: pixels x 20..29, y 10..19 */
    float *a = NULL;
    CHECK(vlmn_draw_alpha(30, 30, &g, 1, acts, 9, 4.0f, VLMN_UPSAMPLE_NEAREST, &a) == VLMN_OK);
    if (a) {
        int bad = 0;
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < 30; x++) {
                float want = x >= 20 && y >= 10 && y < 20 ? 1.0f : 0.0f;
                bad += a[y * 30 + x] != want;
            }
        CHECK_EQ_INT(bad, 0);
    }
    vlmn_free(a);
    CHECK(vlmn_draw_alpha(30, 30, &g, 1, acts, 9, 4.0f, VLMN_UPSAMPLE_BILINEAR, &a) == VLMN_OK);
    if (a) {
        /* patch centre (25, 15) is pixel (24.5..25.5): pixel 24 has centre 24.5, u = 2.45,
         * fu = 1.95 -> 0.95 of col 2; pixel 25: u = 2.55 -> clamped col 2 fully */
        CHECK_NEAR(a[14 * 30 + 25], 0.95 * 1.0, 1e-6);  /* y centre 14.5: fv = 0.95 -> 0.95 of row 1 */
        CHECK_NEAR(a[14 * 30 + 24], 0.95 * 0.95, 1e-6);
        CHECK_NEAR(a[0], 0, 0);
        /* monotone towards the hot patch along its row */
        for (int x = 1; x < 30; x++) CHECK(a[15 * 30 + x] >= a[15 * 30 + x - 1]);
    }
    vlmn_free(a);
    /* negative, NaN and neuron_max <= 0 give 0; above the max clamps to 1 */
    float b[9] = {-1, NAN, 8, 0, 0, 0, 0, 0, 0};
    CHECK(vlmn_draw_alpha(30, 30, &g, 1, b, 9, 4.0f, VLMN_UPSAMPLE_NEAREST, &a) == VLMN_OK);
    if (a) {
        CHECK_NEAR(a[0], 0, 0);
        CHECK_NEAR(a[15], 0, 0);
        CHECK_NEAR(a[25], 1, 0);
    }
    vlmn_free(a);
    CHECK(vlmn_draw_alpha(30, 30, &g, 1, b, 9, 0.0f, VLMN_UPSAMPLE_NEAREST, &a) == VLMN_OK);
    if (a) CHECK_NEAR(a[25], 0, 0);
    vlmn_free(a);
    /* a grid past the positions is refused */
    CHECK(vlmn_draw_alpha(30, 30, &g, 1, b, 8, 4.0f, VLMN_UPSAMPLE_NEAREST, &a) == VLMN_E_ARG);
}

TEST(raw_jet_png)
{
    vlmn_image *im = noise_image(17, 9, 5), *out = NULL;
    if (!im) return;
    vlmn_trace_grid g = {0, 1, 1, 0, 0, 17, 9};
    float act = 0; /* a = 0: jet(0) = (0, 0, 0.5) */
    vlmn_draw_opts o = {.mode = VLMN_DRAW_RAW};
    CHECK(vlmn_draw_image(im, &g, 1, &act, 1, 1.0f, &o, &out) == VLMN_OK);
    if (out) CHECK(memcmp(out->rgb, im->rgb, 17 * 9 * 3) == 0);
    vlmn_img_free(out);
    o.mode = VLMN_DRAW_JET;
    CHECK(vlmn_draw_image(im, &g, 1, &act, 1, 1.0f, &o, &out) == VLMN_OK);
    if (out) {
        int bad = 0;
        for (size_t i = 0; i < 17 * 9; i++) {
            bad += out->rgb[3 * i] != (uint8_t)floor(0.5 * im->rgb[3 * i] + 0.5);
            bad += out->rgb[3 * i + 2] != (uint8_t)floor(0.5 * im->rgb[3 * i + 2] + 0.5 * 127.5 + 0.5);
        }
        CHECK_EQ_INT(bad, 0);
    }
    uint8_t *png = NULL;
    size_t len = 0;
    CHECK(vlmn_draw_png(out, &png, &len) == VLMN_OK);
    vlmn_image *back = NULL;
    CHECK(png && vlmn_img_decode_memory(png, len, "drawn.png", &back) == VLMN_OK);
    if (back && out) {
        CHECK_EQ_INT(back->w, 17);
        CHECK_EQ_INT(back->h, 9);
        CHECK(memcmp(back->rgb, out->rgb, 17 * 9 * 3) == 0);
    }
    char *url = NULL;
    CHECK(vlmn_draw_data_url(png, len, &url) == VLMN_OK);
    if (url) CHECK(!strncmp(url, "data:image/png;base64,iVBORw0KGgo", 33));
    vlmn_free(url);
    CHECK(vlmn_draw_data_url((const uint8_t *)"Man", 3, &url) == VLMN_OK);
    if (url) CHECK_EQ_STR(url + 22, "TWFu");
    vlmn_free(url);
    CHECK(vlmn_draw_data_url((const uint8_t *)"Ma", 2, &url) == VLMN_OK);
    if (url) CHECK_EQ_STR(url + 22, "TWE=");
    vlmn_free(url);
    vlmn_free(png);
    vlmn_img_free(back);
    vlmn_img_free(out);
    vlmn_img_free(im);
    vlmn_draw_mode m;
    vlmn_upsample u;
    CHECK(vlmn_draw_parse_mode("jet", &m) == VLMN_OK && m == VLMN_DRAW_JET);
    CHECK(vlmn_draw_parse_mode("Jet", &m) == VLMN_E_ARG);
    CHECK(vlmn_draw_parse_upsample("bilinear", &u) == VLMN_OK && u == VLMN_UPSAMPLE_BILINEAR);
    CHECK(vlmn_draw_parse_upsample("cubic", &u) == VLMN_E_ARG);
}

TEST(heat_escapes_tokens)
{
    char *pieces[] = {"<s>", "\xE2\x96\x81<script>alert(1)</script>", "<image>", "<image>", "a&b\"'", "\x01x", "end"};
    int32_t ids[] = {1, 5, -1, -1, 6, 7, 8};
    uint8_t mod[] = {VLMN_TRACE_OTHER, VLMN_TRACE_TEXT, VLMN_TRACE_VISUAL, VLMN_TRACE_VISUAL, VLMN_TRACE_TEXT,
                     VLMN_TRACE_TEXT, VLMN_TRACE_OTHER};
    float acts[] = {9, 2, 1, 4, 0, -3, 4};
    vlmn_trace_sample s = {.n_tokens = 7, .ids = ids, .pieces = pieces, .modality = mod};
    char *h = NULL;
    size_t n = 0;
    CHECK(vlmn_draw_heat_html(&s, acts, 4.0f, NULL, &h, &n) == VLMN_OK);
    if (h) {
        CHECK(strlen(h) == n);
        CHECK(strstr(h, "<script") == NULL);
        CHECK(strstr(h, " &lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
        CHECK(strstr(h, "a&amp;b&quot;&#39;") != NULL);
        CHECK(strstr(h, "\x01") == NULL);
        CHECK(strstr(h, "rgba(0,160,0,0.500)") != NULL);   /* act 2 of 4 */
        CHECK(strstr(h, "2 image tokens, max 4") != NULL);   /* one box for the image */
        CHECK(strstr(h, "rgba(0,160,0,1.000)") != NULL);     /* its max 4 of 4 */
        /* "<image>" appears once, escaped */
        const char *p = strstr(h, "&lt;image&gt;");
        CHECK(p && !strstr(p + 1, "&lt;image&gt;"));
        CHECK(strstr(h, "style=\"color:#999\">&lt;s&gt;") != NULL); /* prompt: greyed */
    }
    vlmn_free(h);
    vlmn_heat_opts ho = {.all_tokens = true, .svg_width = 120};
    CHECK(vlmn_draw_heat_svg(&s, acts, 4.0f, &ho, &h, &n) == VLMN_OK);
    if (h) {
        CHECK(!strncmp(h, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39));
        CHECK(strstr(h, "<script") == NULL);
        CHECK(strstr(h, "&lt;script&gt;") != NULL);
        CHECK(strstr(h, "fill-opacity=\"1.000\"") != NULL); /* <s>: 9 of 4, clamped */
        CHECK(strstr(h, "</svg>\n") != NULL);
    }
    vlmn_free(h);
}

TEST_MAIN()
