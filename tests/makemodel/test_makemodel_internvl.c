/* `make-model --preset internvl-tiny|internvl-8b`: the InternVL 2.5 pair (internlm2 text
 * + internvl mmproj) loads in the engine with the preset's shapes, runs a 2-tile image
 * (each tile's image positions from its own tile), same seed gives the same bytes, and
 * the 8B preset has InternVL2.5-8B's shapes. */
#include "test.h"
#include "vlmn/gguf.h"
#include "vlmn/makemodel.h"
#include "vlmn/model.h"
#include "vlmn/types.h"

#include <stdint.h>
#include <sys/stat.h>

static const char *prefix(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    mkdir(test_tmp_dir(), 0777);
    snprintf(b, sizeof buf[0], "%s/ivl_%s", test_tmp_dir(), name);
    return b;
}

typedef struct cap {
    float *l0;
    int64_t T, FF;
    int calls, bad;
} cap;

static void on_capture(void *user, int layer, const float *a, int64_t T, int64_t FF)
{
    cap *c = user;
    c->calls++;
    for (int64_t i = 0; i < T * FF; i++)
        if (!isfinite(a[i])) c->bad++;
    if (layer == 0 && T == c->T && FF == c->FF) memcpy(c->l0, a, (size_t)(T * FF) * sizeof(float));
}

TEST(tiny_pair_loads_and_runs_two_tiles)
{
    const uint32_t types[] = {VLMN_TYPE_F32, VLMN_TYPE_F16, VLMN_TYPE_BF16, VLMN_TYPE_Q8_0};
    for (size_t ti = 0; ti < 4; ti++) {
        vlmn_mm_config c;
        CHECK_EQ_INT(vlmn_mm_preset("internvl-tiny", types[ti], &c), VLMN_OK);
        const char *p = prefix(vlmn_type_name(types[ti]));
        CHECK_MSG(vlmn_mm_write_random(&c, p, NULL, NULL) == VLMN_OK, "%s", vlmn_errmsg());
        char t[1100], mm[1100];
        snprintf(t, sizeof t, "%s-text.gguf", p);
        snprintf(mm, sizeof mm, "%s-mmproj.gguf", p);
        vlmn_model_params mp = {.n_threads = 2, .precision = VLMN_PREC_EXACT};
        vlmn_model *m = NULL;
        CHECK_MSG(vlmn_model_load(t, mm, &mp, &m) == VLMN_OK, "%s", vlmn_errmsg());
        if (!m) continue;
        const vlmn_model_info *in = vlmn_model_get_info(m);
        CHECK_EQ_STR(in->arch, "internvl-2.5");
        CHECK_EQ_INT(in->n_head, 8);
        CHECK_EQ_INT(in->n_head_kv, 2);
        CHECK_EQ_INT(in->n_ff, c.n_ff);
        CHECK_EQ_INT(in->image_size, 84);
        CHECK_EQ_INT(in->n_image_tokens, 9);
        CHECK_NEAR(in->image_mean[0], 0.485, 1e-7);
        CHECK_NEAR(in->image_std[2], 0.225, 1e-7);
        /* two tiles with different pixels: BOS, <img>-ish token, 18 image positions, 2 tokens */
        const int S = 84, NT = 2, T = 22;
        float *px = malloc(sizeof(float) * NT * 3 * S * S);
        for (int i = 0; i < NT * 3 * S * S; i++) px[i] = (float)sin(0.37 * i + (i >= 3 * S * S ? 2.0 : 0.0));
        int32_t ids[22];
        ids[0] = 1, ids[1] = 7;
        for (int i = 2; i < 20; i++) ids[i] = -1;
        ids[20] = 8, ids[21] = 2;
        cap cp = {.T = T, .FF = in->n_ff};
        cp.l0 = calloc((size_t)T * in->n_ff, sizeof(float));
        vlmn_forward_opts o = {.capture = on_capture, .capture_user = &cp, .n_tiles = NT};
        CHECK_MSG(vlmn_model_forward(m, ids, T, px, &o) == VLMN_OK, "%s", vlmn_errmsg());
        CHECK_EQ_INT(cp.calls, in->n_layer);
        CHECK_EQ_INT(cp.bad, 0);
        /* layer 0 at the first image position of each tile differs (tile 2 read its pixels) */
        double d = 0;
        for (int j = 0; j < in->n_ff; j++) d += fabs(cp.l0[2 * in->n_ff + j] - cp.l0[11 * in->n_ff + j]);
        CHECK(d > 1e-3);
        /* one tile only: 9 positions expected, 18 given */
        o.n_tiles = 1;
        CHECK_EQ_INT(vlmn_model_forward(m, ids, T, px, &o), VLMN_E_MISMATCH);
        free(cp.l0);
        free(px);
        vlmn_model_free(m);
    }
}

TEST(same_seed_same_bytes)
{
    vlmn_mm_config c;
    CHECK_EQ_INT(vlmn_mm_preset("internvl-tiny", VLMN_TYPE_Q8_0, &c), VLMN_OK);
    const char *a = prefix("s1"), *b = prefix("s2");
    CHECK_EQ_INT(vlmn_mm_write_random(&c, a, NULL, NULL), VLMN_OK);
    CHECK_EQ_INT(vlmn_mm_write_random(&c, b, NULL, NULL), VLMN_OK);
    for (int k = 0; k < 2; k++) {
        char x[1100], y[1100];
        snprintf(x, sizeof x, "%s-%s.gguf", a, k ? "mmproj" : "text");
        snprintf(y, sizeof y, "%s-%s.gguf", b, k ? "mmproj" : "text");
        size_t lx = 0, ly = 0;
        char *bx = test_read_file(x, &lx), *by = test_read_file(y, &ly);
        CHECK(bx && by && lx == ly && lx > 0 && !memcmp(bx, by, lx));
        free(bx);
        free(by);
    }
}

TEST(presets_8b_shapes_and_validation)
{
    vlmn_mm_config c;
    CHECK_EQ_INT(vlmn_mm_preset("internvl-8b", VLMN_TYPE_BF16, &c), VLMN_OK);
    CHECK_EQ_INT(c.arch, VLMN_MM_INTERNVL);
    CHECK_EQ_INT(c.n_embd, 4096);
    CHECK_EQ_INT(c.n_ff, 14336);
    CHECK_EQ_INT(c.n_layer, 32);
    CHECK_EQ_INT(c.n_head, 32);
    CHECK_EQ_INT(c.n_head_kv, 8);
    CHECK_EQ_INT(c.v_size, 448);
    CHECK_EQ_INT(c.v_embd, 1024);
    CHECK_EQ_INT(c.v_layer, 24);
    CHECK_EQ_INT(vlmn_mm_validate(&c), VLMN_OK);
    c.v_size = 14 * 7; /* a 7 x 7 grid cannot be pixel-shuffled by 0.5 */
    CHECK_EQ_INT(vlmn_mm_validate(&c), VLMN_E_ARG);
    CHECK(strstr(vlmn_errmsg(), "even") != NULL);
    CHECK(vlmn_mm_preset("internvl-huge", VLMN_TYPE_F32, &c) != VLMN_OK);
}

TEST_MAIN()
