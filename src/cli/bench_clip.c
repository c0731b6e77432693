/* `vlmn bench clip`: the CLIP simulator's cost per image (MaskCLIP patch embeddings of a
 * CLIPModel folder: every vision block but the last + the last block's value path,
 * post-LN, projection; plus the cosine map) against LLaVA's own vision pass (the tower
 * up to the feature layer + projector, from vlmn_llava_forward's vision time) on the
 * same machine in the same run, interleaved rep by rep (other processes share the
 * cores, so only the ratio is meaningful). */
#include "cli.h"
#include "bench.h"
#include "core/alloc.h"
#include "vlmn/clip.h"
#include "vlmn/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_clip(int argc, char **argv)
{
    const char *cmd = "bench clip", *llava = NULL, *clipdir = NULL, *v;
    long reps = 3, threads = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_opt(argc, argv, &i, "llava", 0, &v))) {
            if (r < 0) return 2;
            llava = v;
        } else if ((r = cli_opt(argc, argv, &i, "clip", 0, &v))) {
            if (r < 0) return 2;
            clipdir = v;
        } else if ((r = cli_opt(argc, argv, &i, "reps", 0, &v))) {
            if (r < 0 || cli_parse_long(v, 1, 1000, &reps)) return cli_errorf(cmd, 2, "bad --reps");
        } else if ((r = cli_opt(argc, argv, &i, "threads", 't', &v))) {
            if (r < 0 || cli_parse_long(v, 0, 1024, &threads)) return cli_errorf(cmd, 2, "bad --threads");
        } else {
            return cli_errorf(cmd, 2, "unexpected argument '%s' (usage: vlmn bench clip --llava DIR --clip DIR "
                                      "[--reps N] [--threads N])", argv[i]);
        }
    }
    if (!llava || !clipdir) return cli_errorf(cmd, 2, "usage: vlmn bench clip --llava DIR --clip DIR [--reps N] [--threads N]");
    int rc = 1;
    vlmn_llava *m = NULL;
    vlmn_clip *c = NULL;
    vlmn_pool *pool = NULL;
    float *img = NULL, *pe = NULL, *map = NULL, *t = NULL;
    int32_t *ids = NULL;
    vlmn_llava_params lp = {.n_threads = (int)threads, .precision = VLMN_PREC_FAST};
    vlmn_status st;
    if ((st = vlmn_llava_load(llava, NULL, &lp, &m)) || (st = vlmn_pool_create((int)threads, &pool)) ||
        (st = vlmn_clip_load(clipdir, pool, VLMN_PREC_FAST, &c))) {
        rc = cli_fail(cmd, st);
        goto done;
    }
    const vlmn_llava_info *li = vlmn_llava_get_info(m);
    const vlmn_clip_info *ci = vlmn_clip_get_info(c);
    int S = li->image_size, SC = ci->image_size, G = ci->grid, D = ci->proj_dim, NI = li->n_image_tokens;
    img = vlmn_malloc((size_t)3 * (S > SC ? S : SC) * (S > SC ? S : SC) * sizeof *img);
    pe = vlmn_malloc((size_t)G * G * D * sizeof *pe);
    map = vlmn_malloc((size_t)G * G * sizeof *map);
    t = vlmn_calloc((size_t)D, sizeof *t);
    ids = vlmn_malloc((size_t)(NI + 1) * sizeof *ids);
    if (!img || !pe || !map || !t || !ids) {
        rc = cli_fail(cmd, vlmn_error(VLMN_E_NOMEM, "bench clip: out of memory"));
        goto done;
    }
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 3 * (S > SC ? S : SC) * (S > SC ? S : SC); i++) img[i] = 2 * bench_unit(&rng) - 1;
    for (int i = 0; i < D; i++) t[i] = 2 * bench_unit(&rng) - 1;
    for (int i = 0; i < NI; i++) ids[i] = -1;
    ids[NI] = 1;
    vlmn_forward_opts fo = {.n_layers_run = 1};
    printf("bench clip: LLaVA %s (vision %dpx, %d image tokens) vs CLIP %s (%dpx, %dx%d patches, width %d, %d blocks), "
           "%d threads\n",
           llava, S, NI, clipdir, SC, G, G, ci->v_width, ci->v_layers, vlmn_pool_size(pool));
    double best_l = 1e30, best_c = 1e30, sum_l = 0, sum_c = 0;
    for (long r = 0; r <= reps; r++) { /* rep 0 warms up */
        if ((st = vlmn_llava_forward(m, ids, NI + 1, img, &fo))) {
            rc = cli_fail(cmd, st);
            goto done;
        }
        vlmn_llava_times tm;
        vlmn_llava_last_times(m, &tm);
        double t0 = bench_wall();
        if ((st = vlmn_clip_image(c, img, NULL, pe))) {
            rc = cli_fail(cmd, st);
            goto done;
        }
        vlmn_clip_cosine(pe, G * G, D, t, map);
        double tc = bench_wall() - t0;
        if (r == 0) continue;
        printf("  rep %ld: LLaVA vision %.3f s, CLIP simulation %.3f s\n", r, tm.vision, tc);
        best_l = tm.vision < best_l ? tm.vision : best_l;
        best_c = tc < best_c ? tc : best_c;
        sum_l += tm.vision;
        sum_c += tc;
    }
    printf("LLaVA vision pass: best %.3f s, mean %.3f s; CLIP simulation per image: best %.3f s, mean %.3f s; "
           "ratio (best) %.3f, (mean) %.3f\n",
           best_l, sum_l / reps, best_c, sum_c / reps, best_c / best_l, sum_c / sum_l);
    rc = 0;
done:
    vlmn_free(img);
    vlmn_free(pe);
    vlmn_free(map);
    vlmn_free(t);
    vlmn_free(ids);
    vlmn_clip_free(c);
    vlmn_pool_free(pool);
    vlmn_llava_free(m);
    return rc;
}
