/* The architecture table (docs/engine.md): which parts (decoder, vision encoder,
 * projector) a GGUF pair is made of, from the text file's general.architecture and the
 * vision file's general.architecture / clip.projector_type. A new model family is a
 * row here plus the parts it needs. */
#include "model/engine.h"

#include <string.h>

static const eng_arch ARCHS[] = {
    {"llava-1.5", "llama", "llama", DEC_LLAMA, "clip", "mlp", VIT_CLIP, PROJ_MLP},
};

const eng_arch *eng_arch_for_text(const char *text_arch)
{
    for (size_t i = 0; i < sizeof ARCHS / sizeof *ARCHS; i++)
        if (!strcmp(ARCHS[i].text_arch, text_arch)) return &ARCHS[i];
    return NULL;
}

const char *eng_arch_list(void) { return "llama"; }
