/* The segmenter visual simulator (paper A.2): for each (sample, explanation) one request
 * of the segmenter protocol with the sample's original image and the explanation as
 * the prompt; the union of the returned masks mapped onto the sample's image-token
 * grids (vlmn_seg_to_grid) are the simulated visual activations.
 * Flow: simulate pipeline -> [this] -> llm client -> simulations table. */
#include "vlmn/segment.h"
#include "core/alloc.h"

#include <string.h>

typedef struct segsim {
    vlmn_segsim_opts o;
} segsim;

void vlmn_segsim_opts_default(vlmn_segsim_opts *o)
{
    o->box_threshold = 0.35;
    o->text_threshold = 0.25;
    o->rule = VLMN_SEG_HALF;
}

static vlmn_status ss_build(void *self, vlmn_xkind k, const char *explanation, const vlmn_xsample *s,
                            const char **path, char **body)
{
    (void)k;
    segsim *t = self;
    *path = VLMN_SEG_PATH;
    *body = NULL;
    if (!s->png || !s->n_grids || !s->grids)
        return vlmn_error(VLMN_E_NOTFOUND, "segmenter: sample %lld has no image", (long long)s->sample_index);
    char *prompt = NULL;
    vlmn_status st = vlmn_seg_prompt(explanation, &prompt);
    if (!st) st = vlmn_seg_body(s->png, s->png_len, prompt, t->o.box_threshold, t->o.text_threshold, body);
    vlmn_free(prompt);
    return st;
}

/* The reply's masks on the sample's grids (in grid order, as the visual tokens). */
static vlmn_status ss_map(segsim *t, const vlmn_xsample *s, const char *reply, size_t len, float *sim)
{
    uint8_t *mask = NULL;
    int w, h, nm;
    vlmn_status st = vlmn_seg_parse(reply, len, s->image_w, s->image_h, &mask, &w, &h, &nm);
    if (st) return st;
    int off = 0;
    for (int g = 0; g < s->n_grids && !st; g++) {
        int n = s->grids[g].rows * s->grids[g].cols;
        if (off + n > s->n_visual) {
            st = vlmn_error(VLMN_E_MISMATCH, "segmenter: sample %lld: grids hold more than its %d image tokens",
                            (long long)s->sample_index, s->n_visual);
            break;
        }
        if (sim) vlmn_seg_to_grid(mask, w, h, &s->grids[g], t->o.rule, sim + off);
        off += n;
    }
    if (!st && off != s->n_visual)
        st = vlmn_error(VLMN_E_MISMATCH, "segmenter: sample %lld: grids hold %d of its %d image tokens",
                        (long long)s->sample_index, off, s->n_visual);
    vlmn_free(mask);
    return st;
}

static vlmn_status ss_parse(void *self, const vlmn_xsample *s, const char *reply, size_t len, float *sim,
                            int *n_mismatch)
{
    *n_mismatch = 0;
    return ss_map(self, s, reply, len, sim);
}

static vlmn_status ss_check(void *self, const vlmn_xsample *s, const char *reply, size_t len)
{
    return ss_map(self, s, reply, len, NULL);
}

static void ss_free(void *self) { vlmn_free(self); }

vlmn_status vlmn_segsim_create(const vlmn_segsim_opts *o, vlmn_simulator *out)
{
    memset(out, 0, sizeof *out);
    if (!(o->box_threshold >= 0 && o->box_threshold <= 1) || !(o->text_threshold >= 0 && o->text_threshold <= 1))
        return vlmn_error(VLMN_E_ARG, "segmenter: thresholds must lie in 0..1");
    segsim *t = vlmn_calloc(1, sizeof *t);
    if (!t) return vlmn_error(VLMN_E_NOMEM, "segmenter: out of memory");
    t->o = *o;
    out->name = "segmenter";
    out->modality = VLMN_SIM_VISUAL;
    out->self = t;
    out->build = ss_build;
    out->parse = ss_parse;
    out->check_sample = ss_check;
    out->free = ss_free;
    return VLMN_OK;
}
