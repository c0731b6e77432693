/* The inputs of a loaded model as every command builds them (record, probe, trace,
 * generate, the QA answering of prune-eval): whether a prompt template fits the model
 * (its family's template, the special tokens it needs), and the vision input of an
 * image: the
 * architecture table says whether the family tiles (InternVL: dynamic_preprocess, up to
 * max_tiles tiles + thumbnail, src/image/tiles.c) or takes one S x S input (LLaVA:
 * pad / crop, src/image/preprocess.c). Flow: decoded image -> [this] -> pixels +
 * n_tiles -> vlmn_llava_forward / step (opts.n_tiles). */
#include "vlmn/model.h"

#include "vlmn/tokenizer.h"

#include "core/alloc.h"

#include <string.h>

vlmn_status vlmn_llava_image_input(const vlmn_llava *m, const vlmn_image *img, vlmn_img_mode mode, int max_tiles,
                                   vlmn_vision_input *out)
{
    memset(out, 0, sizeof *out);
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    if (!img) return vlmn_error(VLMN_E_ARG, "image input: no image");
    if (in->image_size < 1) return vlmn_error(VLMN_E_ARG, "image input: the model has no vision part (no mmproj)");
    if (!in->max_tiles) {
        if (max_tiles > 1)
            return vlmn_error(VLMN_E_ARG, "a %s model takes one %dx%d image input, not up to %d tiles", in->arch,
                              in->image_size, in->image_size, max_tiles);
        const size_t S = (size_t)in->image_size;
        float *p = vlmn_malloc(3 * S * S * sizeof *p);
        if (!p) return vlmn_error(VLMN_E_NOMEM, "out of memory");
        vlmn_status st = vlmn_img_preprocess(img, mode, in->image_size, in->image_mean, in->image_std, p);
        if (st) {
            vlmn_free(p);
            return st;
        }
        *out = (vlmn_vision_input){p, 1, 1, 1, in->n_image_tokens};
        return VLMN_OK;
    }
    if (max_tiles <= 0) max_tiles = in->max_tiles;
    if (max_tiles > VLMN_IMG_MAX_TILES)
        return vlmn_error(VLMN_E_RANGE, "a %s model takes 1..%d tiles per image, not %d", in->arch, VLMN_IMG_MAX_TILES,
                          max_tiles);
    vlmn_status st = vlmn_img_tiles(img, in->image_size, 1, max_tiles, true, in->image_mean, in->image_std, &out->pix,
                                    &out->n_tiles, &out->cols, &out->rows);
    if (st) return st;
    out->n_image_tokens = out->n_tiles * in->n_image_tokens;
    return VLMN_OK;
}

vlmn_status vlmn_llava_check_tiles(const vlmn_llava *m, const char *model_path, int max_tiles)
{
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    if (max_tiles > 1 && !in->max_tiles)
        return vlmn_error(VLMN_E_ARG, "%s: a %s model takes one image input, not --max-tiles %d", model_path, in->arch,
                          max_tiles);
    if (in->max_tiles && in->n_ctx > 0) {
        /* the most image positions a sample can have: the tiles + the thumbnail */
        const long nt = max_tiles ? max_tiles : in->max_tiles, most = (nt + (nt > 1)) * in->n_image_tokens;
        if (most >= in->n_ctx)
            return vlmn_error(VLMN_E_RANGE, "%s: %ld tiles (+ thumbnail) are %ld image positions, beyond the context "
                              "length %d (lower --max-tiles)", model_path, nt, most, in->n_ctx);
    }
    return VLMN_OK;
}

vlmn_status vlmn_llava_check_template(const vlmn_llava *m, const char *model_path, const char *tmpl)
{
    const vlmn_llava_info *in = vlmn_llava_get_info(m);
    const bool ivl_t = !strcmp(tmpl, "internvl"), ivl_m = in->template_name && !strcmp(in->template_name, "internvl");
    if (ivl_m && !ivl_t)
        return vlmn_error(VLMN_E_ARG, "%s: an %s model needs --template internvl (not %s)", model_path, in->arch, tmpl);
    if (!ivl_m && ivl_t)
        return vlmn_error(VLMN_E_ARG, "%s: --template internvl is for InternVL models, not %s (use %s)", model_path,
                          in->arch, in->template_name ? in->template_name : "llava-v1");
    if (ivl_t) {
        /* the template's markers must be single control tokens, as InternVL's added tokens */
        static const char *const need[] = {"<|im_start|>", "<|im_end|>", "<img>", "</img>"};
        const struct vlmn_tok *t = vlmn_llava_tokenizer(m);
        for (size_t k = 0; k < sizeof need / sizeof *need; k++) {
            int32_t id = vlmn_tok_find(t, need[k], strlen(need[k]));
            vlmn_tok_type ty = id >= 0 ? vlmn_tok_token_type(t, id) : 0;
            if (ty != VLMN_TOKT_CONTROL && ty != VLMN_TOKT_USER_DEFINED)
                return vlmn_error(VLMN_E_FORMAT, "%s: --template internvl needs the special token %s, which the "
                                  "vocabulary lacks", model_path, need[k]);
        }
    }
    return VLMN_OK;
}
