/* Traces: for selected (neuron, sample) pairs of a run, the neuron's activation on
 * every position of the sample, with the sample's tokens (ids, strings, modality), its
 * image-token grids and the preprocessing geometry needed to draw on the original
 * image. `vlmn trace` re-runs the model on just the samples needed (each once for all
 * its neurons, stopping after the deepest layer needed) and appends to the store in
 * the run directory:
 *   RUN/traces.sqlite  index + per-sample tables (docs/trace.md)
 *   RUN/traces.f32     float32 activations, 64-byte header, rows appended
 * Flow: run store + select -> model forward -> [trace store] -> draw, browse, explainer. */
#ifndef VLMN_TRACE_H
#define VLMN_TRACE_H

#include <signal.h>

#include "vlmn/vlmn.h"
#include "vlmn/select.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VLMN_TRACE_VERSION 1
#define VLMN_TRACE_HEADER 64
#define VLMN_TRACE_MAX_GRIDS 64   /* grids per sample (InternVL: up to 12 tiles + thumbnail) */

/* Per-position modality, stored as these numbers (the values of vlmn_modality). */
typedef enum vlmn_trace_mod {
    VLMN_TRACE_VISUAL = 0,  /* an image-token position */
    VLMN_TRACE_TEXT = 1,    /* a counted text (answer) token */
    VLMN_TRACE_OTHER = 2    /* BOS, system prompt, roles, question, separators */
} vlmn_trace_mod;

/* One image-token grid: positions first_pos .. first_pos + rows * cols - 1, row-major,
 * cover the rectangle [x0, x1) x [y0, y1) of the ORIGINAL image, in its pixel
 * coordinates (pixel (x, y) spans [x, x+1) x [y, y+1)). With pad the rectangle is
 * larger than the image (the mean-colour borders); with crop it is the part kept.
 * LLaVA-1.5: one 24 x 24 grid; InternVL: one per tile (+ the thumbnail). */
typedef struct vlmn_trace_grid {
    int64_t first_pos;
    int rows, cols;
    double x0, y0, x1, y1;
} vlmn_trace_grid;

/* What is stored per traced sample. Owned by the struct; vlmn_trace_sample_free. */
typedef struct vlmn_trace_sample {
    uint32_t sample;           /* dataset index */
    char *sample_id;           /* the dataset's id */
    char *image;               /* as in the dataset (relative to the run's images folder) */
    char *image_path;          /* resolved path of the image file when traced */
    int orig_w, orig_h;        /* original image size in pixels */
    char mode[8];              /* "pad" / "crop"; "tiles": InternVL's dynamic tiling */
    int image_size;            /* S of the S x S vision input */
    int64_t n_tokens;
    int32_t *ids;              /* [n_tokens] token ids, -1 at image positions */
    char **pieces;             /* [n_tokens] token strings (UTF-8, "<image>" at image positions) */
    uint8_t *modality;         /* [n_tokens] vlmn_trace_mod */
    int n_grids;
    vlmn_trace_grid *grids;    /* [n_grids] */
} vlmn_trace_sample;

void vlmn_trace_sample_free(vlmn_trace_sample *s);

/* Geometry of one square S x S vision input made from a w x h image with `mode`
 * ("pad" or "crop", as vlmn_img_prepare), as the grid rectangle in original pixel
 * coordinates (rows = cols = grid side). */
vlmn_status vlmn_trace_geometry(int w, int h, const char *mode, int S, int grid_side, vlmn_trace_grid *g);

/* The grids of a dynamically tiled image (InternVL): n_tiles = cols x rows tiles, row by
 * row, plus the thumbnail when n_tiles = cols x rows + 1; each a grid_side x grid_side
 * token grid, tile i's first position first_pos + i x grid_side^2. The image is resized
 * to cols S x rows S before the cut, so tile (c, r) covers [c w / cols, (c+1) w / cols)
 * x [r h / rows, (r+1) h / rows) of the original; the thumbnail the whole [0, w) x [0, h)
 * (drawing takes the first grid covering a pixel: the tiles, never the thumbnail). g
 * holds n_tiles (<= VLMN_TRACE_MAX_GRIDS) grids. */
vlmn_status vlmn_trace_tile_grids(int w, int h, int cols, int rows, int n_tiles, int grid_side, int64_t first_pos,
                                  vlmn_trace_grid *g);

/* ---- reading ---- */
typedef struct vlmn_traces vlmn_traces;

/* Open RUN's trace store read-only; VLMN_E_NOTFOUND when the run has none. */
vlmn_status vlmn_traces_open(const char *run_dir, vlmn_traces **out);
void vlmn_traces_close(vlmn_traces *t);
/* The traced neurons (layer-major ascending) / all traced samples (ascending) / the
 * samples traced for one neuron (ascending). Arrays vlmn_malloc'd (vlmn_free); NULL
 * when *n = 0. */
vlmn_status vlmn_traces_neurons(vlmn_traces *t, vlmn_neuron_ref **out, int64_t *n);
vlmn_status vlmn_traces_samples(vlmn_traces *t, uint32_t **out, int64_t *n);
vlmn_status vlmn_traces_neuron_samples(vlmn_traces *t, int layer, int neuron, uint32_t **out, int64_t *n);
/* A traced sample's tokens and geometry; VLMN_E_NOTFOUND when not traced. */
vlmn_status vlmn_traces_sample(vlmn_traces *t, uint32_t sample, vlmn_trace_sample **out);
/* (layer, neuron, sample) -> its activation on every position: *acts [*n] float32
 * (vlmn_malloc'd, vlmn_free); VLMN_E_NOTFOUND when that pair was not traced. */
vlmn_status vlmn_traces_get(vlmn_traces *t, int layer, int neuron, uint32_t sample, float **acts, int64_t *n);
/* Whether the pair is stored. */
bool vlmn_traces_has(vlmn_traces *t, int layer, int neuron, uint32_t sample);

/* ---- tracing (`vlmn trace`) ---- */
typedef struct vlmn_trace_opts {
    const char *run_dir;
    const char *neurons;        /* neuron SPEC (select.h) */
    const char *samples;        /* sample SPEC */
    const char *model, *mmproj; /* NULL: the run's provenance (model, mmproj keys) */
    const char *images;         /* NULL: the run's images folder */
    const char *data;           /* NULL: the run's dataset file */
    int threads;                /* <= 0: all CPUs */
    const char *precision;      /* NULL: the run's precision */
    bool quiet;                 /* no progress on stderr */
    volatile sig_atomic_t *stop;/* set by a signal handler: stop after the current sample */
} vlmn_trace_opts;

typedef struct vlmn_trace_summary {
    int64_t n_neurons, n_pairs;      /* selected neurons, (neuron, sample) pairs */
    int64_t n_missing;               /* requested top ranks absent from the lists */
    int64_t n_samples;               /* distinct samples selected */
    int64_t n_run;                   /* samples run through the model now */
    int64_t n_pairs_stored;          /* pairs stored now (others were stored before) */
    int deepest_layer;
    bool interrupted;
} vlmn_trace_summary;

/* Select, run the needed samples (each once, up to the deepest needed layer, only the
 * needed layers captured), store. Resumable: pairs already stored are never
 * recomputed; a sample is committed (array bytes fsynced, then the index rows in one
 * SQLite transaction) before the next starts, so kill -9 loses at most the sample in
 * flight. The model files must have the SHA-256 the run recorded (VLMN_E_MISMATCH). */
vlmn_status vlmn_trace_run(const vlmn_trace_opts *o, vlmn_trace_summary *sum);

#ifdef __cplusplus
}
#endif
#endif
