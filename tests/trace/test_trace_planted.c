/* The drawing follows the activations: on the planted model (src/makemodel/planted.c),
 * a visual neuron fires on image patches of its colour. Trace the first planted visual
 * neuron on its top samples, draw the modulated image, and check on the original
 * image's pixels that the brightest ones are the planted colour's pixels (colour found
 * here from the image file with the palette value, not from the drawing code), and
 * that `vlmn draw` writes a PNG of the original size. */
#include "test.h"
#include "vlmn/draw.h"
#include "vlmn/image.h"
#include "vlmn/run.h"
#include "vlmn/trace.h"

#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "e2e_fixture.h"

/* The dataset's drawing colours (src/makemodel/palette.h values, repeated here). */
static const struct { const char *name; int rgb[3]; } COLOURS[] = {
    {"red", {230, 30, 30}}, {"green", {25, 205, 25}}, {"blue", {30, 60, 230}},
    {"yellow", {240, 220, 20}}, {"cyan", {20, 210, 220}}, {"magenta", {220, 30, 210}}};

static bool is_colour(const uint8_t *p, const int rgb[3])
{
    for (int c = 0; c < 3; c++)
        if (abs((int)p[c] - rgb[c]) > 30) return false;
    return true;
}

TEST(modulated_image_of_planted_visual_neuron)
{
    const char *bin = getenv("VLMN_BIN");
    CHECK(bin != NULL);
    if (!bin) return;
    e2e_case cp;
    CHECK(e2e_case_init(&cp, "trace_planted", "planted", "data.json"));
    char *run = cp.run, pj[700], pics[600];
    snprintf(pj, sizeof pj, "%s-planted.json", cp.prefix);
    snprintf(pics, sizeof pics, "%s/pics", cp.dir);
    char *a[] = {(char *)bin, "make-model", "--preset", "planted", "-q", "-o", cp.prefix, NULL};
    char *b[] = {(char *)bin, "make-dataset", "-n", "40", "--seed", "3", "-o", cp.dsdir, NULL};
    char *c[] = {(char *)bin, "record", "-m", cp.text, "--mmproj", cp.mmproj, "--data", cp.data, "--images", cp.dsdir,
                 "-o", run, "--top-n", "5", "-t", "1", "-q", NULL};
    CHECK_EQ_INT(e2e_run(a), 0);
    CHECK_EQ_INT(e2e_run(b), 0);
    CHECK_EQ_INT(e2e_run(c), 0);
    /* the first planted visual neuron and its colour */
    char *js = test_read_file(pj, NULL);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    free(js);
    CHECK(j != NULL);
    int layer = -1, neuron = -1;
    const int *rgb = NULL;
    const char *colour = "";
    for (int i = 0; j && i < cJSON_GetArraySize(j) && layer < 0; i++) {
        cJSON *o = cJSON_GetArrayItem(j, i);
        const char *ty = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
        if (!ty || strcmp(ty, "visual")) continue;
        const char *f = cJSON_GetStringValue(cJSON_GetObjectItem(o, "feature"));
        for (size_t k = 0; f && k < sizeof COLOURS / sizeof COLOURS[0]; k++)
            if (!strcmp(COLOURS[k].name, f)) rgb = COLOURS[k].rgb, colour = COLOURS[k].name;
        layer = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "layer"));
        neuron = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "neuron"));
    }
    cJSON_Delete(j);
    CHECK(layer >= 0 && rgb);
    if (layer < 0 || !rgb) return;
    char spec[64];
    snprintf(spec, sizeof spec, "%d:%d", layer, neuron);
    char *t[] = {(char *)bin, "trace", run, "--neurons", spec, "--samples", "top:1-3", "-t", "1", "-q", NULL};
    CHECK_EQ_INT(e2e_run(t), 0);

    vlmn_run *r = NULL;
    vlmn_traces *tr = NULL;
    CHECK(vlmn_run_open(run, &r) == VLMN_OK);
    CHECK(vlmn_traces_open(run, &tr) == VLMN_OK);
    if (!r || !tr) goto out;
    float nmax = vlmn_run_stats(r, layer, neuron)->max_act;
    CHECK(nmax > 0);
    uint32_t *ss = NULL;
    int64_t ns = 0;
    CHECK(vlmn_traces_neuron_samples(tr, layer, neuron, &ss, &ns) == VLMN_OK);
    CHECK_EQ_INT(ns, 3);
    for (int64_t k = 0; k < ns; k++) {
        vlmn_trace_sample *s = NULL;
        float *acts = NULL, *alpha = NULL;
        int64_t n = 0;
        vlmn_image *img = NULL, *pic = NULL;
        CHECK(vlmn_traces_sample(tr, ss[k], &s) == VLMN_OK);
        CHECK(vlmn_traces_get(tr, layer, neuron, ss[k], &acts, &n) == VLMN_OK);
        if (s && acts && s->n_grids == 1 && vlmn_img_load(s->image_path, &img) == VLMN_OK) {
            CHECK_EQ_INT(img->w, s->orig_w);
            CHECK_EQ_INT(img->h, s->orig_h);
            vlmn_draw_opts o = {.mode = VLMN_DRAW_MODULATED, .upsample = VLMN_UPSAMPLE_NEAREST};
            CHECK(vlmn_draw_image(img, s->grids, 1, acts, n, nmax, &o, &pic) == VLMN_OK);
            CHECK(vlmn_draw_alpha(img->w, img->h, s->grids, 1, acts, n, nmax, VLMN_UPSAMPLE_NEAREST, &alpha) == VLMN_OK);
            if (pic && alpha) {
                /* mean a on the colour's pixels vs the others; the brightest pixels */
                double in = 0, outside = 0, amax = 0;
                int64_t n_in = 0, n_out = 0;
                for (int64_t i = 0; i < (int64_t)img->w * img->h; i++) {
                    if (alpha[i] > amax) amax = alpha[i];
                    if (is_colour(img->rgb + 3 * i, rgb)) in += alpha[i], n_in++;
                    else outside += alpha[i], n_out++;
                }
                int64_t top = 0, top_in = 0;
                for (int64_t i = 0; i < (int64_t)img->w * img->h; i++)
                    if (alpha[i] >= 0.5 * amax) {
                        top++;
                        top_in += is_colour(img->rgb + 3 * i, rgb);
                    }
                printf("sample %u: %s pixels %lld, mean a %.3f there, %.3f elsewhere; %lld of %lld brightest are %s\n",
                       ss[k], colour, (long long)n_in, n_in ? in / n_in : 0, n_out ? outside / n_out : 0,
                       (long long)top_in, (long long)top, colour);
                CHECK_MSG(n_in > 0, "sample %u has no %s pixels", ss[k], colour);
                double m_in = n_in ? in / n_in : 0, m_out = n_out ? outside / n_out : 0;
                CHECK_MSG(m_in > 4 * m_out + 0.05, "sample %u: mean a on %s %.3f, elsewhere %.3f", ss[k], colour, m_in,
                          m_out);
                CHECK_MSG(top > 0 && top_in * 10 >= top * 6, "sample %u: %lld of the %lld brightest pixels are %s",
                          ss[k], (long long)top_in, (long long)top, colour);
                /* the modulated picture is brightest there too (black background) */
                double b_in = 0, b_out = 0;
                for (int64_t i = 0; i < (int64_t)img->w * img->h; i++) {
                    double v = pic->rgb[3 * i] + pic->rgb[3 * i + 1] + pic->rgb[3 * i + 2];
                    if (is_colour(img->rgb + 3 * i, rgb)) b_in += v;
                    else b_out += v;
                }
                CHECK(n_in && n_out && b_in / n_in > 2 * (b_out / n_out));
            }
        } else {
            CHECK_MSG(0, "sample %u: no trace/grid/image", ss[k]);
        }
        vlmn_free(alpha);
        vlmn_img_free(pic);
        vlmn_img_free(img);
        vlmn_free(acts);
        vlmn_trace_sample_free(s);
    }
    /* the command writes PNGs of the original size and the heat files */
    if (ns > 0) {
        char sample[32], png[800];
        snprintf(sample, sizeof sample, "%u", ss[0]);
        char *dr[] = {(char *)bin, "draw", run, "--neuron", spec, "--sample", sample, "-o", pics, "--upsample",
                      "bilinear", NULL};
        CHECK_EQ_INT(e2e_run(dr), 0);
        snprintf(png, sizeof png, "%s/L%d_N%d_S%u_modulated.png", pics, layer, neuron, ss[0]);
        vlmn_image *pi = NULL, *orig = NULL;
        vlmn_trace_sample *s = NULL;
        CHECK(vlmn_img_load(png, &pi) == VLMN_OK);
        CHECK(vlmn_traces_sample(tr, ss[0], &s) == VLMN_OK);
        if (pi && s) {
            CHECK_EQ_INT(pi->w, s->orig_w);
            CHECK_EQ_INT(pi->h, s->orig_h);
        }
        snprintf(png, sizeof png, "%s/L%d_N%d_S%u_heat.html", pics, layer, neuron, ss[0]);
        char *h = test_read_file(png, NULL);
        CHECK(h && strstr(h, "vlmn-heat"));
        free(h);
        vlmn_img_free(pi);
        vlmn_img_free(orig);
        vlmn_trace_sample_free(s);
    }
    vlmn_free(ss);
out:
    vlmn_traces_close(tr);
    vlmn_run_close(r);
}

TEST_MAIN()
