/* Internals shared by the random model writer (makemodel.c) and the planted model
 * (planted.c): tensor lists in llama.cpp's LLaVA layout, metadata, type conversion. */
#ifndef VLMN_MAKEMODEL_INT_H
#define VLMN_MAKEMODEL_INT_H

#include "vlmn/makemodel.h"
#include "vlmn/gguf.h"
#include "makemodel/vocab.h"

#define MM_PATH_MAX 4096

enum { MM_TEXT = 0, MM_CLIP = 1 };
enum { MM_INIT_NORMAL = 0, MM_INIT_NORM = 1 /* 1 + std * z */ };

typedef struct mm_tensor {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[4];     /* ne[0] fastest */
    uint32_t type;
    int kind;           /* MM_INIT_* */
    float std;
    int permute_heads;  /* > 0: Q/K rows in the converter's order for this many heads */
} mm_tensor;

extern const float vlmn_mm_clip_mean[3], vlmn_mm_clip_std[3];

void vlmn_mm_planted_defaults(vlmn_mm_config *c);
uint32_t vlmn_mm_file_type(uint32_t type);
vlmn_status vlmn_mm_text_metadata(vlmn_gguf_writer *w, const vlmn_mm_config *c, const char *name,
                                  const vlmn_mm_vocab *v);
vlmn_status vlmn_mm_clip_metadata(vlmn_gguf_writer *w, const vlmn_mm_config *c, const char *name);
/* All tensors of the text (MM_TEXT) or mmproj (MM_CLIP) file, in file order.
 * *out owned by the caller (vlmn_free). */
vlmn_status vlmn_mm_tensor_list(const vlmn_mm_config *c, int which, mm_tensor **out, int *n_out);
uint64_t vlmn_mm_unpermute_row(uint64_t r, uint64_t n_rows, int n_heads);
void vlmn_mm_random_row(const mm_tensor *t, uint64_t seed, uint64_t r, float *dst);
/* Fill callback (GGUF and safetensors writers): the raw `t->type` bytes of tensor t,
 * row by row from vlmn_mm_random_row; one progress line per tensor when set. */
typedef struct vlmn_mm_fill_ctx {
    const mm_tensor *t;
    uint64_t seed;
    void (*progress)(void *user, const char *line);
    void *user;
} vlmn_mm_fill_ctx;
vlmn_status vlmn_mm_fill_random(void *user, void *dst, uint64_t nbytes);
vlmn_status vlmn_mm_paths(const char *prefix, char *text, char *mmproj, char *extra, const char *extra_suffix);

#endif
