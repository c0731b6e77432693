/* GGUF container: read-only zero-copy reader (mmap) and a writer. The reader
 * validates every count, length, type, dimension and offset against the file size
 * before use; failures return a status and leave "PATH: key K: problem" (or
 * "PATH: tensor T: problem") in vlmn_errmsg(). Left of everything model-related. */
#ifndef VLMN_GGUF_H
#define VLMN_GGUF_H

#include "vlmn/vlmn.h"
#include "vlmn/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types (GGUF spec). */
typedef enum vlmn_gguf_vtype {
    VLMN_GGUF_U8 = 0, VLMN_GGUF_I8 = 1, VLMN_GGUF_U16 = 2, VLMN_GGUF_I16 = 3,
    VLMN_GGUF_U32 = 4, VLMN_GGUF_I32 = 5, VLMN_GGUF_F32 = 6, VLMN_GGUF_BOOL = 7,
    VLMN_GGUF_STRING = 8, VLMN_GGUF_ARRAY = 9, VLMN_GGUF_U64 = 10, VLMN_GGUF_I64 = 11,
    VLMN_GGUF_F64 = 12, VLMN_GGUF_VTYPE_COUNT_
} vlmn_gguf_vtype;

#define VLMN_GGUF_MAX_DIMS 4

/* Reader limits (inputs beyond them are rejected with VLMN_E_RANGE). */
#define VLMN_GGUF_MAX_ALIGNMENT (1u << 20)      /* general.alignment: power of two <= 1 MiB */
#define VLMN_GGUF_DEFAULT_ALIGNMENT 32
#define VLMN_GGUF_MAX_KV (1u << 20)             /* metadata entries */
#define VLMN_GGUF_MAX_TENSORS (1u << 20)        /* tensor infos */
#define VLMN_GGUF_MAX_KEY_LEN 65535u            /* bytes of a key or tensor name */
#define VLMN_GGUF_MAX_ARRAY_DEPTH 8             /* arrays nested in arrays */

typedef struct vlmn_gguf vlmn_gguf;

/* A string inside the mapped file: NOT NUL-terminated. */
typedef struct vlmn_gguf_str { const char *ptr; uint64_t len; } vlmn_gguf_str;

typedef struct vlmn_gguf_tensor {
    vlmn_gguf_str name;
    uint32_t type;                      /* vlmn_type */
    uint32_t n_dims;                    /* 1..VLMN_GGUF_MAX_DIMS */
    uint64_t ne[VLMN_GGUF_MAX_DIMS];    /* ne[0] fastest-varying (= PyTorch's last dim); unused = 1 */
    uint64_t offset;                    /* from the start of the data section */
    uint64_t nbytes;
    const void *data;                   /* points into the mapping */
} vlmn_gguf_tensor;

/* Open and validate. *out owned by the caller; free with vlmn_gguf_close. */
vlmn_status vlmn_gguf_open(const char *path, vlmn_gguf **out);
/* Same, over a caller-owned buffer (kept alive by the caller); `name` is used in messages. */
vlmn_status vlmn_gguf_open_memory(const void *buf, size_t size, const char *name, vlmn_gguf **out);
void vlmn_gguf_close(vlmn_gguf *g);

const char *vlmn_gguf_path(const vlmn_gguf *g);
uint32_t vlmn_gguf_version(const vlmn_gguf *g);
uint64_t vlmn_gguf_alignment(const vlmn_gguf *g);
uint64_t vlmn_gguf_file_size(const vlmn_gguf *g);

/* Metadata by index (0..n_kv-1) or key. find returns -1 when absent. */
int64_t vlmn_gguf_n_kv(const vlmn_gguf *g);
int64_t vlmn_gguf_find_key(const vlmn_gguf *g, const char *key);
vlmn_gguf_str vlmn_gguf_key(const vlmn_gguf *g, int64_t i);
vlmn_gguf_vtype vlmn_gguf_kv_type(const vlmn_gguf *g, int64_t i);
/* For arrays: element type and count. */
vlmn_gguf_vtype vlmn_gguf_arr_type(const vlmn_gguf *g, int64_t i);
uint64_t vlmn_gguf_arr_count(const vlmn_gguf *g, int64_t i);

/* Typed accessors by key. VLMN_E_NOTFOUND if absent, VLMN_E_TYPE if the stored type
 * differs (the integer getters accept any integer type whose value fits, the float
 * getter accepts F32/F64). Messages name the file and the key. */
vlmn_status vlmn_gguf_get_u32(const vlmn_gguf *g, const char *key, uint32_t *out);
vlmn_status vlmn_gguf_get_i32(const vlmn_gguf *g, const char *key, int32_t *out);
vlmn_status vlmn_gguf_get_u64(const vlmn_gguf *g, const char *key, uint64_t *out);
vlmn_status vlmn_gguf_get_f32(const vlmn_gguf *g, const char *key, float *out);
vlmn_status vlmn_gguf_get_bool(const vlmn_gguf *g, const char *key, bool *out);
/* Returns a NUL-terminated copy owned by the reader (valid until close). */
vlmn_status vlmn_gguf_get_str(const vlmn_gguf *g, const char *key, const char **out);
/* Arrays: element type must match (`want`). For numeric arrays `*data` points at the
 * packed little-endian elements in the mapping (may be unaligned: memcpy them). */
vlmn_status vlmn_gguf_get_arr(const vlmn_gguf *g, const char *key, vlmn_gguf_vtype want,
                              const void **data, uint64_t *count);
/* String array element j (NUL-terminated copies are NOT made: pointer + length). */
vlmn_status vlmn_gguf_get_arr_str(const vlmn_gguf *g, const char *key, uint64_t j, vlmn_gguf_str *out);
/* Copy a numeric array (any integer/float element type) converted to f32 / i64.
 * `count` must equal the array's count (VLMN_E_MISMATCH otherwise); get_arr_i64
 * rejects float elements and u64 values above INT64_MAX (VLMN_E_TYPE / VLMN_E_RANGE). */
vlmn_status vlmn_gguf_get_arr_f32(const vlmn_gguf *g, const char *key, float *dst, uint64_t count);
vlmn_status vlmn_gguf_get_arr_i64(const vlmn_gguf *g, const char *key, int64_t *dst, uint64_t count);
/* Signed 64-bit and double getters (integer / float types whose value fits). */
vlmn_status vlmn_gguf_get_i64(const vlmn_gguf *g, const char *key, int64_t *out);
vlmn_status vlmn_gguf_get_f64(const vlmn_gguf *g, const char *key, double *out);

/* Generic view of a value, for walkers that print everything (vlmn info, fuzz).
 * All bytes were validated at open; views point into the mapping. */
typedef struct vlmn_gguf_value {
    vlmn_gguf_vtype type;
    const uint8_t *data;    /* scalars: the little-endian bytes; STRING: the chars;
                             * ARRAY: the first element */
    uint64_t len;           /* STRING: byte length; ARRAY: bytes of all elements */
    vlmn_gguf_vtype arr_type; /* ARRAY only */
    uint64_t arr_count;       /* ARRAY only */
} vlmn_gguf_value;
/* View of metadata entry i (0..n_kv-1); VLMN_E_ARG for a bad index. */
vlmn_status vlmn_gguf_kv_value(const vlmn_gguf *g, int64_t i, vlmn_gguf_value *out);
/* Scalar readers for a view (any integer type / any float type; false if not). */
bool vlmn_gguf_value_u64(const vlmn_gguf_value *v, uint64_t *out); /* non-negative ints */
bool vlmn_gguf_value_i64(const vlmn_gguf_value *v, int64_t *out);  /* ints fitting i64 */
bool vlmn_gguf_value_f64(const vlmn_gguf_value *v, double *out);   /* F32/F64 */
/* Iterate over the elements of an ARRAY view in order (O(1) per step). */
typedef struct vlmn_gguf_iter {
    vlmn_gguf_value arr;
    uint64_t index;
    const uint8_t *pos;
} vlmn_gguf_iter;
void vlmn_gguf_iter_init(vlmn_gguf_iter *it, const vlmn_gguf_value *arr);
bool vlmn_gguf_iter_next(vlmn_gguf_iter *it, vlmn_gguf_value *elem);
/* Bytes of one element of a fixed-size type (0 for STRING/ARRAY/unknown). */
uint32_t vlmn_gguf_vtype_size(vlmn_gguf_vtype t);
/* "u8", "i8", ..., "string", "array", "u64", "i64", "f64"; "?" if unknown. */
const char *vlmn_gguf_vtype_name(vlmn_gguf_vtype t);

/* Tensors. find returns NULL when absent (no error set). */
int64_t vlmn_gguf_n_tensors(const vlmn_gguf *g);
const vlmn_gguf_tensor *vlmn_gguf_tensor_at(const vlmn_gguf *g, int64_t i);
const vlmn_gguf_tensor *vlmn_gguf_find_tensor(const vlmn_gguf *g, const char *name);

/* Rows of a tensor (a row is ne[0] values; rows = ne[1]*ne[2]*ne[3]). */
int64_t vlmn_gguf_tensor_rows(const vlmn_gguf_tensor *t);
/* Dequantise rows [row0, row0 + nrows) of a tensor into dst (nrows * ne[0] floats).
 * VLMN_E_RANGE (message naming the tensor) if the range is not inside the tensor,
 * VLMN_E_UNSUPPORTED if its type cannot be dequantised. */
vlmn_status vlmn_gguf_tensor_rows_f32(const vlmn_gguf_tensor *t, int64_t row0, int64_t nrows, float *dst);

/* ---- Writer ---------------------------------------------------------------------
 * Build in memory, then write: metadata in insertion order, tensors aligned to
 * `general.alignment` (default 32). Tensor data is copied at add time. */
typedef struct vlmn_gguf_writer vlmn_gguf_writer;

vlmn_status vlmn_gguf_writer_create(vlmn_gguf_writer **out);
void vlmn_gguf_writer_free(vlmn_gguf_writer *w);
vlmn_status vlmn_gguf_set_u32(vlmn_gguf_writer *w, const char *key, uint32_t v);
vlmn_status vlmn_gguf_set_i32(vlmn_gguf_writer *w, const char *key, int32_t v);
vlmn_status vlmn_gguf_set_u64(vlmn_gguf_writer *w, const char *key, uint64_t v);
vlmn_status vlmn_gguf_set_f32(vlmn_gguf_writer *w, const char *key, float v);
vlmn_status vlmn_gguf_set_bool(vlmn_gguf_writer *w, const char *key, bool v);
vlmn_status vlmn_gguf_set_str(vlmn_gguf_writer *w, const char *key, const char *v);
/* Numeric array of `count` elements of type `et` (packed little-endian in `data`). */
vlmn_status vlmn_gguf_set_arr(vlmn_gguf_writer *w, const char *key, vlmn_gguf_vtype et,
                              const void *data, uint64_t count);
vlmn_status vlmn_gguf_set_arr_str(vlmn_gguf_writer *w, const char *key,
                                  const char *const *strs, uint64_t count);
/* Any fixed-size scalar type (u8 ... f64, bool): `le` holds its little-endian bytes. */
vlmn_status vlmn_gguf_set_scalar(vlmn_gguf_writer *w, const char *key, vlmn_gguf_vtype t, const void *le);
/* Copy a value view from a reader (any type, nested arrays included); the bytes are
 * copied, so the reader may be closed afterwards. */
vlmn_status vlmn_gguf_set_value(vlmn_gguf_writer *w, const char *key, const vlmn_gguf_value *v);
/* Setting a key that is already set replaces its value (keeping its position).
 * Setting general.alignment (power of two <= VLMN_GGUF_MAX_ALIGNMENT) changes the
 * tensor alignment; keys must be 1..VLMN_GGUF_MAX_KEY_LEN bytes. */
/* Add a tensor whose raw bytes (already in `type`'s layout) are `data`; ne as in
 * vlmn_gguf_tensor (ne[0] fastest). */
vlmn_status vlmn_gguf_add_tensor(vlmn_gguf_writer *w, const char *name, uint32_t type,
                                 uint32_t n_dims, const uint64_t *ne, const void *data);
/* Add from f32 values, converting to `type` (F32, F16, BF16, Q8_0). */
vlmn_status vlmn_gguf_add_tensor_f32(vlmn_gguf_writer *w, const char *name, uint32_t type,
                                     uint32_t n_dims, const uint64_t *ne, const float *values);
/* Add a tensor whose bytes are produced at write time by `fill` (for models larger
 * than memory): fill(user, dst, nbytes) writes exactly nbytes of raw `type` data. */
typedef vlmn_status (*vlmn_gguf_fill_fn)(void *user, void *dst, uint64_t nbytes);
vlmn_status vlmn_gguf_add_tensor_fill(vlmn_gguf_writer *w, const char *name, uint32_t type,
                                      uint32_t n_dims, const uint64_t *ne,
                                      vlmn_gguf_fill_fn fill, void *user);
/* Add a tensor whose bytes stay where they are (not copied; must outlive the writer,
 * and any view of it): for vlmn_gguf_writer_view, also accepted by vlmn_gguf_write. */
vlmn_status vlmn_gguf_add_tensor_ref(vlmn_gguf_writer *w, const char *name, uint32_t type,
                                     uint32_t n_dims, const uint64_t *ne, const void *data);
/* A reader over the writer's metadata and tensors without writing a file (every tensor
 * must come from add_tensor_ref): how models in other containers (safetensors folders)
 * are handed to GGUF consumers without copying their weights. The header is encoded
 * and parsed back with all the reader's checks; `name` is the reader's path. The
 * writer may be freed afterwards. release(owner) (may be NULL) runs when the reader is
 * closed, or at once on failure: the owner keeps the tensors' bytes alive. */
vlmn_status vlmn_gguf_writer_view(vlmn_gguf_writer *w, const char *name, void (*release)(void *),
                                  void *owner, vlmn_gguf **out);
/* Write atomically: a temp file in the same folder, fsync, rename over `path`, fsync
 * of the folder. Tensors made by `fill` are mapped from the file (space reserved with
 * posix_fallocate first), so nothing of their size is allocated in memory. */
vlmn_status vlmn_gguf_write(vlmn_gguf_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
