/* The engine's parts (docs/engine.md): a vision encoder (vit.c: CLIP; InternViT), a
 * projector (projector.c: LLaVA's MLP), a decoder (decoder.c: the LLaMA family), an
 * architecture table (arch.c) mapping file metadata to parts, and the model (model.c)
 * that wires them behind the public vlmn_llava_* / vlmn_model_* API.
 * Data between parts: pixels [3 x S x S] -> vit -> features [n_patches x width] ->
 * projector -> embeddings [n_image_tokens x n_embd] -> decoder (with token rows). */
#ifndef VLMN_MODEL_ENGINE_H
#define VLMN_MODEL_ENGINE_H

#include "vlmn/model.h"
#include "vlmn/gguf.h"
#include "vlmn/kernels.h"

/* Sanity bounds on hyperparameters read from files (untrusted input). */
#define ENG_MAX_DIM (1 << 20)
#define ENG_MAX_LAYERS 1024
#define ENG_MAX_HEADS 4096
#define ENG_MAX_IMAGE 8192

/* How a part computes: the thread pool and the precision. */
typedef struct eng_ctx {
    vlmn_pool *pool;
    vlmn_precision prec;
} eng_ctx;

/* ---- weights.c: tensor lookup with shape/type checks, hyperparameters ---- */
vlmn_status eng_get_tensor(const vlmn_gguf *g, const char *name, int nd, const uint64_t *ne,
                           const vlmn_gguf_tensor **out);
vlmn_status eng_load_matrix(const vlmn_gguf *g, const char *name, int64_t rows, int64_t cols, vlmn_matrix *m);
vlmn_status eng_load_f32(const vlmn_gguf *g, const char *name, int nd, const uint64_t *ne, float **out);
vlmn_status eng_load_vec(const vlmn_gguf *g, const char *name, int64_t n, float **out);
vlmn_status eng_get_int(const vlmn_gguf *g, const char *key, long lo, long hi, int *out);
vlmn_status eng_get_float(const vlmn_gguf *g, const char *key, float dflt, float lo, float hi, float *out);
vlmn_status eng_expect_str(const vlmn_gguf *g, const char *key, const char *want, bool required);
/* Matrices stored back to back with one type and width as one stacked matrix (*ok). */
vlmn_status eng_fuse_rows(const vlmn_matrix *const *ms, int n, vlmn_matrix *out, bool *ok);
/* An aligned [a x b] f32 buffer; *ok = false on overflow or no memory. */
float *eng_scratch(int64_t a, int64_t b, bool *ok);
double eng_now(void);
void eng_lap(double *t0, double *acc);
void eng_gemm(const eng_ctx *c, const vlmn_matrix *W, const float *A, int64_t M, int64_t lda, float *C,
              int64_t ldc, bool acc);
/* As eng_gemm, FASTEST run as FAST (vision tower and projector) */
void eng_vgemm(const eng_ctx *c, const vlmn_matrix *W, const float *A, int64_t M, int64_t lda, float *C,
               int64_t ldc, bool acc);
/* Row-parallel ops (each row as the serial op: independent of the thread count). */
/* EOP_LS_ADD: y[r] += x[r] * w (layer scale, then residual) */
enum { EOP_QUICK_GELU, EOP_GELU_ERF, EOP_BIAS, EOP_LAYERNORM, EOP_LS_ADD };
void eng_rows(const eng_ctx *c, int op, const float *x, float *y, int64_t rows, int64_t n, const float *w,
              const float *b, float eps);

/* ---- arch.c: which parts a pair of files is made of ---- */
/* CLIP: pre-LN, conv without bias. INTERN (InternViT): no pre-LN, conv with bias,
 * layer scale ls1/ls2 on both branches. */
typedef enum eng_vit_kind { VIT_CLIP = 0, VIT_INTERN = 1 } eng_vit_kind;
/* MLP: LLaVA's mm.0, GELU, mm.2. INTERNVL: pixel shuffle (1/scale), LayerNorm, Linear,
 * GELU, Linear (mm.model.mlp.{0,1,3}). */
typedef enum eng_proj_kind { PROJ_MLP = 0, PROJ_INTERNVL = 1 } eng_proj_kind;
typedef enum eng_dec_kind { DEC_LLAMA = 0 } eng_dec_kind;

typedef struct eng_arch {
    const char *name;        /* model family, e.g. "llava-1.5" */
    const char *text_arch;   /* general.architecture of the text file */
    const char *prefix;      /* its key prefix ("llama" -> llama.block_count) */
    eng_dec_kind decoder;
    const char *vision_arch; /* general.architecture of the vision file */
    const char *proj_type;   /* clip.projector_type (may be absent for "mlp") */
    const char *vision_flag; /* bool key that must be true in the vision file */
    eng_vit_kind vit;
    eng_proj_kind projector;
    const char *template_name; /* its chat template (prompt.h), picked by --template auto */
    int max_tiles;             /* dynamic tiling: at most this many tiles (+ thumbnail); 0: one input */
} eng_arch;

/* The entry for a text file's general.architecture, or NULL. */
const eng_arch *eng_arch_for_text(const char *text_arch);
/* A comma-separated list of the supported text architectures (for error messages). */
const char *eng_arch_list(void);

/* ---- vit.c: vision encoder ---- */
typedef struct vit_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;  /* [width] */
    vlmn_matrix q, k, v, o;                /* [width x width] */
    float *q_b, *k_b, *v_b, *o_b;          /* [width] */
    vlmn_matrix fc1, fc2;                  /* [ff x width], [width x ff] */
    float *fc1_b, *fc2_b;                  /* [ff], [width] */
    float *ls1, *ls2;                      /* [width] layer scale (INTERN) */
} vit_layer;

typedef struct eng_vit {
    eng_vit_kind kind;
    int width, n_head, ff, n_run, patch, grid, n_pos; /* n_pos = n_patches + 1 (CLS) */
    int image_size, n_patches;
    float eps;
    bool gelu;                             /* erf GELU, else quick_gelu */
    float mean[3], std[3];
    float *class_embd;                     /* [width] */
    float *pos_embd;                       /* [n_pos x width] */
    float *pre_ln_w, *pre_ln_b;            /* [width] (CLIP) */
    float *patch_b;                        /* [width] (INTERN) */
    vlmn_matrix patch_w;                   /* [width x 3*P*P] (conv kernel) */
    vit_layer *layers;                     /* [n_run] */
    float *x, *xn, *q, *k, *v, *att, *ffb, *patches; /* scratch, allocated at load */
} eng_vit;

vlmn_status vit_load(eng_vit *v, const vlmn_gguf *g, eng_vit_kind kind);
void vit_free(eng_vit *v);
/* pixels [3 x S x S] -> the patch features [n_patches x width] (CLS dropped), a pointer
 * into v's scratch valid until the next call. */
const float *vit_forward(eng_vit *v, const eng_ctx *c, const float *px);

/* ---- projector.c ---- */
typedef struct eng_proj {
    eng_proj_kind kind;
    int in_width, hidden, out_width;       /* in_width: of the vision features */
    int grid, scale;                       /* INTERNVL: feature grid side, shuffle factor */
    int mlp_in;                            /* width entering the MLP (in_width * scale^2) */
    vlmn_matrix w0, w2;                    /* [hidden x mlp_in], [out x hidden] */
    float *b0, *b2;
    float *ln_w, *ln_b;                    /* INTERNVL: [mlp_in] */
    int64_t n_rows;                        /* output rows per image (tile) */
    float *sh, *h, *out;                   /* [n_rows x mlp_in], [n_rows x hidden], [n_rows x out] */
} eng_proj;

/* in_width, grid: the vision encoder's features; text_path / n_embd: the decoder's,
 * to name a mismatched pair of files. */
vlmn_status proj_load(eng_proj *p, const vlmn_gguf *g, eng_proj_kind kind, int in_width, int grid,
                      const char *text_path, int n_embd);
void proj_free(eng_proj *p);
/* features [grid^2 x in_width] -> embeddings [n_rows x out_width] (scratch of p) */
const float *proj_forward(eng_proj *p, const eng_ctx *c, const float *features);

/* ---- decoder.c: LLaMA-family text model ---- */
typedef struct dec_layer {
    float *attn_norm, *ffn_norm;           /* [n_embd] */
    vlmn_matrix wq, wk, wv, wo;
    vlmn_matrix gate, up, down;
    vlmn_matrix qkv, gu;                   /* fused views (see eng_fuse_rows) */
    bool has_qkv, has_gu;
} dec_layer;

typedef struct eng_dec {
    eng_dec_kind kind;
    int n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab;
    int head_dim, kv_dim, n_ctx;
    float rms_eps, rope_base;
    const vlmn_gguf_tensor *tok_embd;      /* [n_vocab x n_embd], rows dequantised on use */
    uint64_t tok_row_bytes;
    dec_layer *layers;
    float *out_norm;
    vlmn_matrix output;
    int64_t cap;                           /* scratch rows */
    float *x, *xn, *qkv, *att, *gate, *gu, *rope;
} eng_dec;

vlmn_status dec_load(eng_dec *d, const vlmn_gguf *g, const eng_arch *a);
void dec_free(eng_dec *d);
vlmn_status dec_ensure_scratch(eng_dec *d, int64_t T);
/* Row r of the input embeddings (d->x) from token `id`. */
vlmn_status dec_embed_token(eng_dec *d, int32_t id, int64_t r);
/* The whole prompt at positions 0..n-1 (d->x filled): n_run layers, capture, logits. */
void dec_forward(eng_dec *d, const eng_ctx *c, int64_t n, int n_run, const vlmn_forward_opts *o,
                 vlmn_llava_times *tm, double *t0);

struct vlmn_kv {
    int n_layer;
    int64_t kv_dim, cap, len;
    float *k, *v; /* [n_layer][cap][kv_dim]: K after RoPE, V; f32 like the activations */
};
/* T rows of several sequences (d->x filled, d->rope at each row's position). */
vlmn_status dec_step(eng_dec *d, const eng_ctx *c, int n_seq, vlmn_kv *const *kv, const int64_t *n,
                     const int64_t *row_seq, const int64_t *row_pos, int64_t T, int64_t max_keys,
                     const vlmn_forward_opts *o, vlmn_llava_times *tm, double *t0);

/* ---- model.c ---- */
struct vlmn_llava {
    vlmn_gguf *gt, *gv;
    const eng_arch *arch;
    eng_ctx ctx;
    vlmn_llava_info info;
    struct vlmn_tok *tok;
    eng_dec dec;
    bool has_vision;
    eng_vit vit;
    eng_proj proj;
    vlmn_llava_times times;                /* of the last forward */
};

#endif
