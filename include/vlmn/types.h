/* Tensor element types (ggml's ids, as stored in GGUF) and dequantisation to f32.
 * Sits under the GGUF reader and the kernels: everything that touches weights. */
#ifndef VLMN_TYPES_H
#define VLMN_TYPES_H

#include "vlmn/vlmn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ggml type ids (values fixed by the GGUF format). */
typedef enum vlmn_type {
    VLMN_TYPE_F32 = 0,
    VLMN_TYPE_F16 = 1,
    VLMN_TYPE_Q4_0 = 2,
    VLMN_TYPE_Q4_1 = 3,
    VLMN_TYPE_Q5_0 = 6,
    VLMN_TYPE_Q5_1 = 7,
    VLMN_TYPE_Q8_0 = 8,
    VLMN_TYPE_Q8_1 = 9,
    VLMN_TYPE_Q2_K = 10,
    VLMN_TYPE_Q3_K = 11,
    VLMN_TYPE_Q4_K = 12,
    VLMN_TYPE_Q5_K = 13,
    VLMN_TYPE_Q6_K = 14,
    VLMN_TYPE_Q8_K = 15,
    VLMN_TYPE_I8 = 24,
    VLMN_TYPE_I16 = 25,
    VLMN_TYPE_I32 = 26,
    VLMN_TYPE_I64 = 27,
    VLMN_TYPE_F64 = 28,
    VLMN_TYPE_BF16 = 30,
    VLMN_TYPE_COUNT_ = 40 /* upper bound of ids accepted as an index */
} vlmn_type;

/* Name of a type ("F32", "Q4_K", ...) or NULL when the id is not known. */
const char *vlmn_type_name(uint32_t type);
/* Values per block (1 for plain types, 32 or 256 for quantised) and bytes per block;
 * both 0 when the type is unknown. */
uint32_t vlmn_type_block_values(uint32_t type);
uint32_t vlmn_type_block_bytes(uint32_t type);
/* True if vlmn can dequantise this type (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K). */
bool vlmn_type_supported(uint32_t type);
/* Bytes of a row of n values; VLMN_E_RANGE if n is not a multiple of the block size,
 * VLMN_E_UNSUPPORTED for unknown types, overflow checked. */
vlmn_status vlmn_type_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes);

/* Dequantise n values (n a multiple of the block size) starting at src (which must
 * point at a block boundary) into dst. */
vlmn_status vlmn_dequant(uint32_t type, const void *src, float *dst, int64_t n);

/* Scalar conversions (exact, round-to-nearest-even where narrowing). */
float    vlmn_f16_to_f32(uint16_t h);
uint16_t vlmn_f32_to_f16(float f);
float    vlmn_bf16_to_f32(uint16_t h);
uint16_t vlmn_f32_to_bf16(float f);

/* Quantise n floats (n multiple of 32) to Q8_0 blocks as ggml does:
 * d = max|x|/127 stored as f16, q = round(x/d). dst holds n/32*34 bytes. */
void vlmn_quantize_q8_0(const float *src, void *dst, int64_t n);

/* n floats to F32, F16, BF16 (rounded to nearest even) or Q8_0 (as above; n a multiple
 * of 32) in the GGUF layout (little-endian) at dst; VLMN_E_UNSUPPORTED for other types. */
vlmn_status vlmn_from_f32(uint32_t type, const float *src, void *dst, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
