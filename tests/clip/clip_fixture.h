/* Shared by the CLIP tests that work on a planted run (test_clip_pipeline, test_label,
 * test_label_xpl): the fixed tokenizer that fits the tiny reference CLIP (start 38, one
 * id per word from its first letter, end 39), the concept list, the planted run with
 * its two visual neurons traced, and the library's CLIP map of a concept on a traced
 * sample (what the CLIP simulator computes). */
#ifndef VLMN_TESTS_CLIP_FIXTURE_H
#define VLMN_TESTS_CLIP_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "vlmn/clip.h"
#include "vlmn/image.h"
#include "vlmn/pipeline.h"
#include "vlmn/trace.h"

static inline vlmn_status clipfx_toks(void *user, const char *text, int32_t *ids, int cap, int *n)
{
    (void)user;
    int k = 0;
    ids[k++] = 38;
    for (const char *p = text; *p && k < cap - 1; p++)
        if (*p != ' ' && (p == text || p[-1] == ' ')) ids[k++] = 1 + (*p % 36);
    ids[k++] = 39;
    *n = k;
    return VLMN_OK;
}

/* vlmn_simulate_run on run with the CLIP simulator of c and the fixed tokenizer, as
 * simulator "clip-tiny", no cache; the summary in *s */
static inline vlmn_status clipfx_simulate(const char *run, vlmn_clip *c, vlmn_xrun_summary *s)
{
    vlmn_simulator sim;
    vlmn_status st = vlmn_clipsim_create(c, clipfx_toks, NULL, &sim);
    if (st) return st;
    vlmn_xrun_opts o;
    vlmn_xrun_opts_default(&o);
    o.run_dir = run;
    o.no_cache = true;
    st = vlmn_simulate_run(&o, &sim, "clip-tiny", s);
    sim.free(sim.self);
    return st;
}

static inline int clipfx_sh(const char *cmd)
{
    int r = system(cmd);
    if (r) fprintf(stderr, "  command failed (%d): %s\n", r, cmd);
    return r;
}

/* every concept starts with other letters (the test tokenizer keeps first letters) */
static const char *CLIPFX_CONCEPTS[] __attribute__((unused)) = {"blue sky", "red things", "green grass", "yellow",
                                              "white wall", "metal", "zebra"};
enum { CLIPFX_NC = 7, CLIPFX_RED = 1 };

/* DIR/m (planted model), DIR/data (n_samples drawn images), DIR/run recorded (top-20),
 * classified, and its visual neurons 0:47 and 1:40 traced on `samples`. 0 when done. */
static inline int clipfx_planted_run(const char *bin, const char *d, int n_samples, const char *samples)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "rm -rf %s && mkdir -p %s && %s make-model --preset planted -o %s/m >/dev/null && "
             "%s make-dataset -n %d -o %s/data >/dev/null && "
             "%s record -m %s/m-text.gguf --mmproj %s/m-mmproj.gguf --data %s/data/data.json --images %s/data "
             "--top-n 20 -q -o %s/run >/dev/null 2>&1 && %s classify %s/run >/dev/null && "
             "%s trace %s/run --neurons '0:47;1:40' --samples %s -q >/dev/null 2>&1",
             d, d, bin, d, bin, n_samples, d, bin, d, d, d, d, d, bin, d, bin, d, samples);
    return clipfx_sh(cmd);
}

/* The CLIP map of CLIPFX_CONCEPTS[concept] on traced sample smp: *nv values (its image
 * tokens), malloc'd; NULL on any failure (or a sample without image tokens). */
static inline float *clipfx_concept_map(vlmn_clip *c, vlmn_traces *tr, uint32_t smp, int concept, int *nv_out)
{
    const vlmn_clip_info *I = vlmn_clip_get_info(c);
    vlmn_trace_sample *ts = NULL;
    vlmn_image *img = NULL;
    if (vlmn_traces_sample(tr, smp, &ts) || vlmn_img_load(ts->image_path, &img)) {
        vlmn_trace_sample_free(ts);
        return NULL;
    }
    int nv = 0;
    for (int64_t i = 0; i < ts->n_tokens; i++) nv += ts->modality[i] == VLMN_TRACE_VISUAL;
    int32_t ids[80];
    int n = 0;
    float *temb = malloc((size_t)I->proj_dim * sizeof *temb);
    float *pe = malloc((size_t)ts->n_grids * I->grid * I->grid * I->proj_dim * sizeof *pe);
    float *map = malloc((size_t)(nv ? nv : 1) * sizeof *map);
    bool ok = nv > 0 && clipfx_toks(NULL, CLIPFX_CONCEPTS[concept], ids, I->t_ctx < 80 ? I->t_ctx : 80, &n) == VLMN_OK &&
              vlmn_clip_text(c, ids, n, temb) == VLMN_OK &&
              vlmn_clip_sample_patches(c, img, ts->grids, ts->n_grids, nv, smp, pe) == VLMN_OK &&
              vlmn_clip_sample_map(c, pe, ts->grids, ts->n_grids, temb, map) == VLMN_OK;
    free(temb);
    free(pe);
    vlmn_img_free(img);
    vlmn_trace_sample_free(ts);
    if (!ok) {
        free(map);
        return NULL;
    }
    *nv_out = nv;
    return map;
}

#endif
