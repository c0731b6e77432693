/* The architecture table (docs/engine.md): which parts (decoder, vision encoder,
 * projector) a GGUF pair is made of, from the text file's general.architecture and the
 * vision file's general.architecture / clip.projector_type. A new model family is a
 * row here plus the parts it needs. */
#include "model/engine.h"
#include "vlmn/model.h"

#include <string.h>

static const eng_arch ARCHS[] = {
    {"llava-1.5", "llama", "llama", DEC_LLAMA, "clip", "mlp", "clip.has_llava_projector", VIT_CLIP, PROJ_MLP, "llava-v1", 0},
    /* InternVL 2.5 (8B): InternLM2 text model (llama.cpp's converter splits wqkv into
     * attn_q/k/v and permutes Q/K as for llama), InternViT + pixel shuffle + mlp1 */
    {"internvl-2.5", "internlm2", "internlm2", DEC_LLAMA, "clip", "internvl", "clip.has_vision_encoder", VIT_INTERN,
     PROJ_INTERNVL, "internvl", 12 /* max_num of the model card's dynamic_preprocess */},
};

const eng_arch *eng_arch_for_text(const char *text_arch)
{
    for (size_t i = 0; i < sizeof ARCHS / sizeof *ARCHS; i++)
        if (!strcmp(ARCHS[i].text_arch, text_arch)) return &ARCHS[i];
    return NULL;
}

const char *eng_arch_list(void) { return "llama, internlm2"; }

const char *vlmn_arch_template(const char *text_arch)
{
    const eng_arch *a = text_arch ? eng_arch_for_text(text_arch) : NULL;
    return a ? a->template_name : NULL;
}

bool vlmn_arch_known(const char *family)
{
    for (size_t i = 0; family && i < sizeof ARCHS / sizeof *ARCHS; i++)
        if (!strcmp(ARCHS[i].name, family)) return true;
    return false;
}
