/* Model backend for `vlmn record` (any architecture of the engine): image load +
 * preprocessing (vlmn_llava_image_input: LLaVA's pad/crop, or InternVL's dynamic tiling,
 * up to the model's max_tiles tiles + thumbnail, with a variable number of image positions
 * per sample), prompt template with per-position labels (prompt module), engine forward
 * with the recorder as capture hook. Problems of one sample (unreadable image, prompt too long
 * for the context) fail that sample; engine errors during the forward are fatal. */
#include "run/record_run.h"
#include "vlmn/image.h"
#include "vlmn/model.h"
#include "vlmn/prompt.h"
#include "store/store.h"
#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

typedef struct llava_be {
    vlmn_llava *m;
    const vlmn_llava_info *info;
    char *images, *template_name;
    vlmn_hook hook;
    vlmn_img_mode mode;
    vlmn_rec *rec;
    int64_t n_captures;
} llava_be;

static void count_capture(void *user, int layer, const float *acts, int64_t n_tokens, int64_t n_ff)
{
    llava_be *b = user;
    b->n_captures++;
    vlmn_rec_capture(b->rec, layer, acts, n_tokens, n_ff);
}

static vlmn_status llava_run(void *user, const vlmn_sample *s, vlmn_rec *rec, bool prompt_as_text, char *why,
                             size_t why_n, int64_t *n_positions)
{
    llava_be *b = user;
    vlmn_image *img = NULL;
    int32_t *ids = NULL;
    uint8_t *mod = NULL;
    int64_t n = 0;
    vlmn_status st;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", b->images, s->image) >= (int)sizeof path) {
        snprintf(why, why_n, "%s/%s: path too long", b->images, s->image);
        return VLMN_OK;
    }
    /* everything before the forward is the sample's own problem */
    vlmn_vision_input vi = {0};
    if ((st = vlmn_img_load(path, &img)) || (st = vlmn_llava_image_input(b->m, img, b->mode, 0, &vi)) ||
        (st = vlmn_prompt_build(vlmn_llava_tokenizer(b->m), b->template_name, s->question, s->answer,
                                vi.n_image_tokens, &ids, &mod, &n))) {
        if (st == VLMN_E_NOMEM) goto out;
        snprintf(why, why_n, "%s", vlmn_errmsg());
        st = VLMN_OK;
        goto out;
    }
    if ((st = vlmn_rec_begin_sample(rec, (uint32_t)s->index, mod, n, prompt_as_text))) goto out;
    *n_positions = n;
    b->rec = rec;
    b->n_captures = 0;
    vlmn_forward_opts fo = {.capture = count_capture, .capture_user = b, .hook = b->hook, .n_tiles = vi.n_tiles};
    st = vlmn_llava_forward(b->m, ids, n, vi.pix, &fo);
    if (st && st != VLMN_E_NOMEM && b->n_captures == 0) {
        /* rejected before any layer ran (e.g. longer than the context): the recorder
         * state is untouched, so this is a failed sample, not a broken run */
        snprintf(why, why_n, "%s", vlmn_errmsg());
        st = VLMN_OK;
    }
out:
    vlmn_free(vi.pix);
    vlmn_img_free(img);
    vlmn_free(ids);
    vlmn_free(mod);
    return st;
}

static void llava_free(void *user)
{
    llava_be *b = user;
    if (!b) return;
    vlmn_llava_free(b->m);
    vlmn_free(b->images);
    vlmn_free(b->template_name);
    vlmn_free(b);
}

static vlmn_status llava_prov(void *user, sqlite3 *db)
{
    llava_be *b = user;
    const vlmn_llava_info *i = b->info;
    vlmn_status st;
    if ((st = vlmn_db_set_meta(db, "model_arch", "%s", i->arch))) return st;
    if (b->info->max_tiles) {
        /* the image positions of a sample: n_image_tokens_per_tile x its tiles */
        if ((st = vlmn_db_set_meta(db, "n_image_tokens_per_tile", "%d", i->n_image_tokens)) ||
            (st = vlmn_db_set_meta(db, "image_preprocess", "internvl-dynamic max_num=%d thumbnail", i->max_tiles)))
            return st;
    } else if ((st = vlmn_db_set_meta(db, "n_image_tokens_per_sample", "%d", i->n_image_tokens))) {
        return st;
    }
    if ((st = vlmn_db_set_meta(db, "image_size", "%d", i->image_size)) ||
        (st = vlmn_db_set_meta(db, "n_embd", "%d", i->n_embd)))
        return st;
    return VLMN_OK;
}

vlmn_status vlmn_backend_llava_create(const vlmn_record_opts *o, vlmn_rec_backend *be)
{
    llava_be *b = vlmn_calloc(1, sizeof *b);
    if (!b) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    vlmn_status st;
    b->hook = !strcmp(o->hook, "swiglu") ? VLMN_HOOK_SWIGLU : VLMN_HOOK_SILU_GATE;
    if ((st = vlmn_img_parse_mode(o->mode, &b->mode))) goto fail;
    b->images = vlmn_strdup(o->images);
    b->template_name = vlmn_strdup(o->template_name);
    if (!b->images || !b->template_name) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto fail;
    }
    vlmn_llava_params p = {.n_threads = o->threads};
    if ((st = vlmn_precision_parse(o->precision, &p.precision))) goto fail;
    if ((st = vlmn_llava_load(o->model, o->mmproj, &p, &b->m))) goto fail;
    b->info = vlmn_llava_get_info(b->m);
    if ((st = vlmn_llava_check_template(b->m, o->model, b->template_name))) goto fail;
    be->user = b;
    be->n_layers = b->info->n_layer;
    be->n_ff = b->info->n_ff;
    snprintf(be->name, sizeof be->name, "%s", b->info->max_tiles ? b->info->arch : "llava");
    be->run = llava_run;
    be->provenance = llava_prov;
    be->free = llava_free;
    return VLMN_OK;
fail:
    llava_free(b);
    return st;
}
