/* `vlmn trace` on InternVL (make-model internvl-tiny: 84-px tiles, 3 x 3 tokens per
 * tile) over make-dataset images of many aspect ratios: every traced sample carries one
 * grid per tile plus the thumbnail, each tile's rectangle the part of the original
 * image that tile (c, r) of the cols x rows grid covers (the image is resized to
 * cols S x rows S, so [c w / cols, (c+1) w / cols) x [r h / rows, (r+1) h / rows)), the
 * thumbnail the whole image; first_pos of grid i = the first image position + 9 i; the
 * grids cover the image positions exactly; the traced activations are bit-identical to
 * `vlmn probe`'s at every position; `vlmn draw` writes a picture for multi-tile samples
 * and each pixel takes its tile's patch (never the thumbnail's). */
#include "test.h"
#include "vlmn/dataset.h"
#include "vlmn/draw.h"
#include "vlmn/image.h"
#include "vlmn/npy.h"
#include "vlmn/trace.h"

#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>

#include "e2e_fixture.h"

#define TILE 84   /* internvl-tiny's image_size */
#define SIDE 3    /* (84 / 14 / 2) tokens per tile side */
#define N_SAMPLES 13 /* 12 of make-dataset + a 90 x 90 square (one tile) */

static e2e_case C;

static bool setup(void)
{
    const char *bin = getenv("VLMN_BIN");
    if (!bin || !e2e_case_init(&C, "trace_internvl", "ivl", "data.jsonl")) return false;
    char cmd[4096];
    char *a[] = {(char *)bin, "make-model", "--preset", "internvl-tiny", "--seed", "7", "-q", "-o", C.prefix, NULL};
    char *b[] = {(char *)bin, "make-dataset", "-n", "12", "--seed", "9", "--format", "jsonl", "-o", C.dsdir, NULL};
    if (e2e_run(a) || e2e_run(b)) return false;
    /* a square image (one tile, no thumbnail) besides make-dataset's aspect ratios */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/images/square.png' && echo '{\"id\":\"sq\",\"image\":\"images/square.png\","
             "\"question\":\"Describe the image.\",\"answer\":\"A red square.\"}' >> '%s'",
             test_path(test_data_dir(), "internvl/img_square.png"), C.dsdir, C.data);
    if (system(cmd)) return false;
    char *c[] = {(char *)bin, "record", "-m", C.text, "--mmproj", C.mmproj, "--data", C.data, "--images", C.dsdir,
                 "--template", "internvl", "-o", C.run, "--top-n", "12", "-t", "1", "-q", NULL};
    char *t[] = {(char *)bin, "trace", C.run, "--neurons", "random:12:3", "--samples", "ids:0,1,2,3,4,5,6,7,8,9,10,11,12",
                 "-t", "1", "-q", NULL};
    return !e2e_run(c) && !e2e_run(t);
}

/* The grids the sample must have, from its image size alone. */
static int expected_grids(int w, int h, int64_t first, vlmn_trace_grid *g)
{
    int cols = 0, rows = 0;
    if (vlmn_img_tile_grid(w, h, TILE, 1, 12, &cols, &rows)) return -1;
    int n = cols * rows;
    for (int i = 0; i < n; i++) {
        int c = i % cols, r = i / cols;
        g[i] = (vlmn_trace_grid){first + (int64_t)i * SIDE * SIDE, SIDE, SIDE, (double)c * w / cols, (double)r * h / rows,
                                 (double)(c + 1) * w / cols, (double)(r + 1) * h / rows};
    }
    if (n > 1) {
        g[n] = (vlmn_trace_grid){first + (int64_t)n * SIDE * SIDE, SIDE, SIDE, 0, 0, w, h};
        n++;
    }
    return n;
}

static char draw_sample[16] = "", draw_neuron[32] = "";
static void draw_tiled_sample(void);

TEST(tile_grids_and_activations)
{
    CHECK(setup());
    vlmn_traces *t = NULL;
    CHECK(vlmn_traces_open(C.run, &t) == VLMN_OK);
    if (!t) return;
    vlmn_neuron_ref *nr = NULL;
    int64_t nn = 0, ns = 0;
    uint32_t *ss = NULL;
    CHECK(vlmn_traces_neurons(t, &nr, &nn) == VLMN_OK);
    CHECK_EQ_INT(nn, 12);
    CHECK(vlmn_traces_samples(t, &ss, &ns) == VLMN_OK);
    CHECK_EQ_INT(ns, N_SAMPLES);
    int64_t pairs = 0, mismatches = 0;
    int one_tile = 0, multi_tile = 0, max_grids = 0;
    for (int64_t k = 0; k < ns; k++) {
        e2e_probe po = {0};
        bool ok = e2e_probe_sample(&C, ss[k], "internvl", &po);
        CHECK_MSG(ok, "probe of sample %u", ss[k]);
        vlmn_trace_sample *ts = NULL;
        CHECK(vlmn_traces_sample(t, ss[k], &ts) == VLMN_OK);
        if (!ok || !ts) goto next;
        int64_t L = po.acts->shape[0], T = po.acts->shape[1];
        CHECK_EQ_INT(ts->n_tokens, T);
        CHECK_EQ_STR(ts->mode, "tiles");
        CHECK_EQ_INT(ts->image_size, TILE);
        int64_t first = -1, n_img = 0;
        for (int64_t i = 0; i < T && i < ts->n_tokens; i++) {
            cJSON *o = cJSON_GetArrayItem(po.tokens, (int)i);
            CHECK_EQ_INT(ts->ids[i], (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "id")));
            if (ts->modality[i] == VLMN_TRACE_VISUAL) {
                if (first < 0) first = i;
                n_img++;
            }
        }
        vlmn_trace_grid want[VLMN_TRACE_MAX_GRIDS];
        int nw = expected_grids(ts->orig_w, ts->orig_h, first, want);
        CHECK_MSG(ts->n_grids == nw, "sample %u (%dx%d): %d grids, expected %d", ss[k], ts->orig_w, ts->orig_h,
                  ts->n_grids, nw);
        CHECK_EQ_INT(n_img, (int64_t)nw * SIDE * SIDE); /* the grids hold every image position */
        if (nw == 1) one_tile++;
        else multi_tile++;
        if (nw > max_grids) max_grids = nw;
        for (int g = 0; g < ts->n_grids && g < nw; g++) {
            const vlmn_trace_grid *G = &ts->grids[g], *W = &want[g];
            CHECK_EQ_INT(G->first_pos, W->first_pos);
            CHECK_EQ_INT(G->rows, SIDE);
            CHECK_EQ_INT(G->cols, SIDE);
            CHECK_NEAR(G->x0, W->x0, 1e-9);
            CHECK_NEAR(G->y0, W->y0, 1e-9);
            CHECK_NEAR(G->x1, W->x1, 1e-9);
            CHECK_NEAR(G->y1, W->y1, 1e-9);
            for (int p = 0; p < SIDE * SIDE; p++) CHECK_EQ_INT(ts->modality[G->first_pos + p], VLMN_TRACE_VISUAL);
        }
        for (int64_t i = 0; i < nn; i++) {
            if (!vlmn_traces_has(t, nr[i].layer, nr[i].neuron, ss[k])) continue;
            float *acts = NULL;
            int64_t n = 0;
            CHECK(vlmn_traces_get(t, nr[i].layer, nr[i].neuron, ss[k], &acts, &n) == VLMN_OK);
            CHECK_EQ_INT(n, T);
            CHECK(nr[i].layer < L);
            mismatches += e2e_probe_mismatches(&po, nr[i].layer, nr[i].neuron, acts, n);
            pairs++;
            /* drawing: each pixel centre takes the patch of the tile covering it (nearest) */
            float *a = NULL;
            if (acts && ts->n_grids > 1 &&
                vlmn_draw_alpha(ts->orig_w, ts->orig_h, ts->grids, ts->n_grids, acts, n, 1e30f, VLMN_UPSAMPLE_NEAREST,
                                &a) == VLMN_OK) {
                float mx = 0;
                for (int64_t p = 0; p < n; p++) mx = acts[p] > mx ? acts[p] : mx;
                vlmn_free(a);
                a = NULL;
                CHECK(vlmn_draw_alpha(ts->orig_w, ts->orig_h, ts->grids, ts->n_grids, acts, n, mx,
                                      VLMN_UPSAMPLE_NEAREST, &a) == VLMN_OK);
                int bad = 0;
                for (int y = 0; a && y < ts->orig_h; y++)
                    for (int x = 0; x < ts->orig_w; x++) {
                        double cx = x + 0.5, cy = y + 0.5;
                        int g = 0;
                        while (g < nw - 1 && !(cx >= want[g].x0 && cx < want[g].x1 && cy >= want[g].y0 && cy < want[g].y1))
                            g++;
                        CHECK(g < nw - 1); /* a tile, never the thumbnail */
                        int c = (int)((cx - want[g].x0) / (want[g].x1 - want[g].x0) * SIDE);
                        int r = (int)((cy - want[g].y0) / (want[g].y1 - want[g].y0) * SIDE);
                        float v = acts[want[g].first_pos + r * SIDE + c] / mx;
                        v = v > 0 ? (v < 1 ? v : 1) : 0;
                        if (fabsf(a[(size_t)y * ts->orig_w + x] - v) > 1e-6f) bad++;
                    }
                CHECK_EQ_INT(bad, 0);
                if (!draw_sample[0] && mx > 0) {
                    snprintf(draw_sample, sizeof draw_sample, "%u", ss[k]);
                    snprintf(draw_neuron, sizeof draw_neuron, "%d:%d", nr[i].layer, nr[i].neuron);
                }
            }
            vlmn_free(a);
            vlmn_free(acts);
        }
    next:
        vlmn_trace_sample_free(ts);
        e2e_probe_free(&po);
    }
    fprintf(stderr, "  %lld pairs; %d one-tile and %d tiled samples (at most %d grids)\n", (long long)pairs, one_tile,
            multi_tile, max_grids);
    CHECK(pairs >= N_SAMPLES);
    CHECK_EQ_INT(mismatches, 0); /* bit-identical to vlmn probe */
    CHECK(one_tile >= 1);        /* the aspect ratios give both layouts */
    CHECK(multi_tile >= 3);
    CHECK(max_grids >= 4);
    vlmn_free(nr);
    vlmn_free(ss);
    vlmn_traces_close(t);
    draw_tiled_sample();
}

static void draw_tiled_sample(void)
{
    CHECK(draw_sample[0] != 0);
    if (!draw_sample[0]) return;
    char out[700], png[900];
    snprintf(out, sizeof out, "%s/pics", C.dir);
    static const char *const modes[] = {"jet", "modulated"};
    for (int i = 0; i < 2; i++) {
        char *a[] = {(char *)getenv("VLMN_BIN"), "draw", C.run, "--neuron", draw_neuron, "--sample", draw_sample,
                     "-o", out, "--mode", (char *)modes[i], "--heat", "html", NULL};
        CHECK_EQ_INT(e2e_run(a), 0);
        const char *colon = strchr(draw_neuron, ':');
        snprintf(png, sizeof png, "%s/L%.*s_N%s_S%s_%s.png", out, (int)(colon - draw_neuron), draw_neuron, colon + 1,
                 draw_sample, modes[i]);
        struct stat sb;
        CHECK_MSG(stat(png, &sb) == 0 && sb.st_size > 100, "%s", png);
        vlmn_image *im = NULL;
        CHECK(vlmn_img_load(png, &im) == VLMN_OK);
        vlmn_img_free(im);
    }
}

TEST_MAIN()
