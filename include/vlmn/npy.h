/* vlmn: NumPy .npy files (format version 1.0 written; 1.0/2.0/3.0 read), the
 * interchange format for preprocessed images, activations and test fixtures.
 * Spec: numpy.lib.format ("NPY format"): magic "\x93NUMPY", version, header length,
 * an ASCII Python dict literal {'descr', 'fortran_order', 'shape'} padded with spaces
 * and ended by '\n' so that the data starts at a multiple of 64 bytes. Only
 * little-endian, C-order arrays of the plain numeric dtypes below are supported. */
#ifndef VLMN_NPY_H
#define VLMN_NPY_H

#include "vlmn/vlmn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VLMN_NPY_MAX_DIMS 8
/* Reader limit: a file whose data would exceed this is rejected before allocating. */
#define VLMN_NPY_MAX_BYTES ((uint64_t)16 << 30)

typedef enum vlmn_npy_dtype {
    VLMN_NPY_F32 = 0, /* '<f4' */
    VLMN_NPY_F64,     /* '<f8' */
    VLMN_NPY_U8,      /* '|u1' */
    VLMN_NPY_I8,      /* '|i1' */
    VLMN_NPY_U16,     /* '<u2' */
    VLMN_NPY_I16,     /* '<i2' */
    VLMN_NPY_U32,     /* '<u4' */
    VLMN_NPY_I32,     /* '<i4' */
    VLMN_NPY_U64,     /* '<u8' */
    VLMN_NPY_I64,     /* '<i8' */
    VLMN_NPY_F16,     /* '<f2' (raw IEEE half bits) */
    VLMN_NPY_DTYPE_COUNT_
} vlmn_npy_dtype;

/* Element size in bytes (0 for an invalid dtype). */
size_t vlmn_npy_dtype_size(vlmn_npy_dtype dt);
/* The descr string numpy writes for it ("<f4", "|u1", ...); NULL if invalid. */
const char *vlmn_npy_dtype_descr(vlmn_npy_dtype dt);

/* Write a C-order array atomically: the file is written to a temporary name in the
 * same folder, fsync'ed, renamed over `path` only when complete, and the folder is
 * fsync'ed (best effort). ndim in [0, 8]; shape
 * entries >= 0; `data` holds prod(shape) elements (may be NULL if that is 0). */
vlmn_status vlmn_npy_write(const char *path, vlmn_npy_dtype dt, int ndim,
                           const int64_t *shape, const void *data);
/* The same bytes to an open descriptor (stdout for "-"), not atomic; `name` for errors. */
vlmn_status vlmn_npy_write_fd(int fd, const char *name, vlmn_npy_dtype dt, int ndim, const int64_t *shape,
                              const void *data);
static inline vlmn_status vlmn_npy_write_f32(const char *path, int ndim, const int64_t *shape,
                                             const float *data)
{
    return vlmn_npy_write(path, VLMN_NPY_F32, ndim, shape, data);
}

/* Encode the header (magic .. '\n') for such an array into buf (at most cap bytes);
 * returns its length (a multiple of 64), or 0 if invalid arguments / too small. */
size_t vlmn_npy_header(char *buf, size_t cap, vlmn_npy_dtype dt, int ndim, const int64_t *shape);

/* A loaded array. Owned by the caller; free with vlmn_npy_free. */
typedef struct vlmn_npy {
    vlmn_npy_dtype dtype;
    int ndim;
    int64_t shape[VLMN_NPY_MAX_DIMS];
    uint64_t count;  /* number of elements, prod(shape) */
    void *data;      /* count * dtype size bytes (NULL when count == 0) */
} vlmn_npy;

/* Strict reader: validates magic, version, header dict (keys, types, padding),
 * dtype, C order, and that the data size matches the file size exactly. */
vlmn_status vlmn_npy_read(const char *path, vlmn_npy **out);
/* Same from bytes in memory; `name` is used in error messages. */
vlmn_status vlmn_npy_parse(const void *buf, size_t len, const char *name, vlmn_npy **out);
void vlmn_npy_free(vlmn_npy *a);

#ifdef __cplusplus
}
#endif
#endif
