/* safetensors container: read-only zero-copy reader (mmap) for one file or a Hugging
 * Face folder of shards (model.safetensors.index.json). A file is an 8-byte little-
 * endian header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets"}},
 * then the raw little-endian data. Every length, offset, dtype and shape is checked
 * against the file before use; failures return a status and leave one line
 * "PATH: problem" in vlmn_errmsg(). Left of everything model-related (like gguf.h). */
#ifndef VLMN_SAFETENSORS_H
#define VLMN_SAFETENSORS_H

#include "vlmn/vlmn.h"
#include "vlmn/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reader limits (inputs beyond them are rejected with VLMN_E_RANGE). The JSON header of
 * a 7B model is ~100 KB; the safetensors library itself refuses headers over 100 MB. */
#define VLMN_ST_MAX_HEADER (16u << 20)     /* bytes of one file's JSON header */
#define VLMN_ST_MAX_DIMS 8
#define VLMN_ST_MAX_SHARDS 4096
#define VLMN_ST_MAX_INDEX (64u << 20)      /* bytes of model.safetensors.index.json */

typedef struct vlmn_st vlmn_st;

typedef struct vlmn_st_tensor {
    const char *name;                   /* NUL-terminated, owned by the reader */
    uint32_t type;                      /* VLMN_TYPE_F32, _F16 or _BF16 */
    uint32_t n_dims;                    /* 0..VLMN_ST_MAX_DIMS (0: a scalar) */
    uint64_t shape[VLMN_ST_MAX_DIMS];   /* PyTorch order: shape[0] slowest; unused = 1 */
    uint64_t nbytes;
    const void *data;                   /* points into the shard's mapping (may be unaligned) */
    int shard;                          /* index into the shards */
} vlmn_st_tensor;

/* Does the folder hold PyTorch pickles (pytorch_model*.bin)? vlmn_st_open on a folder
 * with only those says how to convert them. */
bool vlmn_st_has_pickles(const char *dir);
/* Open `path`: a .safetensors file, or a folder holding model.safetensors.index.json
 * (every shard it names is opened; each tensor must be in the shard the index says and
 * every shard's tensors must be in the index) or a single model.safetensors.
 * *out owned by the caller; free with vlmn_st_close. */
vlmn_status vlmn_st_open(const char *path, vlmn_st **out);
/* One file's bytes from a caller-owned buffer (kept alive by the caller). */
vlmn_status vlmn_st_open_memory(const void *buf, size_t size, const char *name, vlmn_st **out);
void vlmn_st_close(vlmn_st *s);

const char *vlmn_st_path(const vlmn_st *s);
int vlmn_st_n_shards(const vlmn_st *s);
const char *vlmn_st_shard_path(const vlmn_st *s, int i);
uint64_t vlmn_st_shard_size(const vlmn_st *s, int i);
int64_t vlmn_st_n_tensors(const vlmn_st *s);
/* Tensors sorted by name. */
const vlmn_st_tensor *vlmn_st_tensor_at(const vlmn_st *s, int64_t i);
/* NULL when absent (no error set). */
const vlmn_st_tensor *vlmn_st_find(const vlmn_st *s, const char *name);
/* A "__metadata__" string value of the first shard, NULL when absent. */
const char *vlmn_st_metadata(const vlmn_st *s, const char *key);
/* Number of values of a tensor (product of its shape). */
uint64_t vlmn_st_numel(const vlmn_st_tensor *t);

/* ---- Writer ---------------------------------------------------------------------
 * Streams one file: header first (tensors declared up front, offsets in order), then
 * each tensor's bytes in declaration order. Used by make-model and the tests. */
typedef struct vlmn_st_writer vlmn_st_writer;
vlmn_status vlmn_st_writer_create(vlmn_st_writer **out);
void vlmn_st_writer_free(vlmn_st_writer *w);
/* Declare a tensor (type F32/F16/BF16, shape in PyTorch order); its bytes come from
 * fill(user, dst, nbytes) at write time (dst is a shared mapping of the file). */
typedef vlmn_status (*vlmn_st_fill_fn)(void *user, void *dst, uint64_t nbytes);
vlmn_status vlmn_st_writer_add(vlmn_st_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                               const uint64_t *shape, vlmn_st_fill_fn fill, void *user);
/* Write atomically (temp file, fsync, rename). */
vlmn_status vlmn_st_writer_write(vlmn_st_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
