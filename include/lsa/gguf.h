/*
 * gguf.h — memory-mapped reader for GGUF files (llama.cpp / ggml checkpoints), versions 2 and 3, and
 * ggml's block-quantized tensor types dequantized to float32.
 *
 * File format (all little-endian):
 *   "GGUF" magic, uint32 version (2 or 3), uint64 n_tensors, uint64 n_kv;
 *   n_kv metadata entries: string key, uint32 value type, value;
 *   n_tensors tensor infos: string name, uint32 n_dims (1..4), uint64 ne[n_dims], uint32 ggml type,
 *     uint64 offset (relative to the data section, a multiple of the alignment);
 *   padding to the alignment (metadata "general.alignment", default 32), then the data section.
 *   A string is uint64 length + bytes (no NUL). Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32,
 *   6 f32, 7 bool, 8 string, 9 array (uint32 element type, uint64 count, elements; no nested arrays),
 *   10 u64, 11 i64, 12 f64.
 *   ne[0] is the innermost (contiguous) dimension: a torch (rows, cols) matrix is ne = [cols, rows].
 *
 * Every count, length, offset and shape is checked against the file before use: a hostile file gives
 * LSA_EFORMAT with a one-line message naming the file and the problem, never a crash.
 * Ownership: lsa_gguf_open returns a handle the caller closes with lsa_gguf_close (NULL ok); every
 * pointer borrowed from it (keys, strings, tensor infos, tensor data) lives until lsa_gguf_close.
 * Strings from the file are not NUL-terminated: they travel with their length.
 */
#ifndef LSA_GGUF_H
#define LSA_GGUF_H

#include "lsa/lsa.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSA_GGUF_MAX_DIMS 4
#define LSA_GGUF_DEFAULT_ALIGNMENT 32

enum lsa_gguf_vtype {
    LSA_GGUF_U8 = 0, LSA_GGUF_I8 = 1, LSA_GGUF_U16 = 2, LSA_GGUF_I16 = 3, LSA_GGUF_U32 = 4, LSA_GGUF_I32 = 5,
    LSA_GGUF_F32 = 6, LSA_GGUF_BOOL = 7, LSA_GGUF_STRING = 8, LSA_GGUF_ARRAY = 9, LSA_GGUF_U64 = 10,
    LSA_GGUF_I64 = 11, LSA_GGUF_F64 = 12,
};

/* ggml tensor types (the numbers stored in the file). */
enum lsa_ggml_type {
    LSA_GGML_F32 = 0, LSA_GGML_F16 = 1, LSA_GGML_Q4_0 = 2, LSA_GGML_Q4_1 = 3, LSA_GGML_Q5_0 = 6,
    LSA_GGML_Q5_1 = 7, LSA_GGML_Q8_0 = 8, LSA_GGML_Q8_1 = 9, LSA_GGML_Q2_K = 10, LSA_GGML_Q3_K = 11,
    LSA_GGML_Q4_K = 12, LSA_GGML_Q5_K = 13, LSA_GGML_Q6_K = 14, LSA_GGML_Q8_K = 15, LSA_GGML_IQ4_NL = 20,
    LSA_GGML_BF16 = 30,
};

struct lsa_gguf_str {
    const char *p; /* into the mapping, not NUL-terminated */
    uint64_t n;
};

struct lsa_gguf_kv {
    const char *key;          /* NUL-terminated copy */
    enum lsa_gguf_vtype type;
    enum lsa_gguf_vtype elem; /* element type of an array */
    uint64_t n;               /* array length (1 for scalars) */
    const void *data;         /* scalar or fixed-size array elements, into the mapping (may be unaligned) */
    struct lsa_gguf_str *str; /* (n) the string(s) of a string or string array */
};

struct lsa_gguf_tensor {
    const char *name;       /* NUL-terminated copy */
    uint32_t type;          /* enum lsa_ggml_type, or another number (then unsupported) */
    int n_dims;
    int64_t ne[LSA_GGUF_MAX_DIMS]; /* ne[0] innermost; unused dims are 1 */
    int64_t n_elem;
    uint64_t offset;        /* from the start of the data section */
    const void *data;       /* into the mapping */
    size_t nbytes;
};

struct lsa_gguf;

/* Open and validate path. NULL on failure (lsa_errmsg names the file and problem). */
struct lsa_gguf *lsa_gguf_open(const char *path);
void lsa_gguf_close(struct lsa_gguf *g);

const char *lsa_gguf_path(const struct lsa_gguf *g);
uint32_t lsa_gguf_version(const struct lsa_gguf *g);
uint32_t lsa_gguf_alignment(const struct lsa_gguf *g);
uint64_t lsa_gguf_data_offset(const struct lsa_gguf *g); /* file offset of the data section */

size_t lsa_gguf_n_kv(const struct lsa_gguf *g);
const struct lsa_gguf_kv *lsa_gguf_kv_at(const struct lsa_gguf *g, size_t i);
/* NULL when absent (no error recorded). */
const struct lsa_gguf_kv *lsa_gguf_find_kv(const struct lsa_gguf *g, const char *key);

/*
 * Typed metadata getters. Absent key: *out = def and 0. Present with an incompatible type or value
 * (e.g. a negative count, a string where a number is due): LSA_EFORMAT naming the file and the key.
 * get_int accepts every integer type and bool; get_float also accepts integers.
 */
int lsa_gguf_get_int(const struct lsa_gguf *g, const char *key, int64_t def, int64_t *out);
int lsa_gguf_get_float(const struct lsa_gguf *g, const char *key, double def, double *out);
int lsa_gguf_get_bool(const struct lsa_gguf *g, const char *key, bool def, bool *out);
/* A string value: *s = NULL when absent. */
int lsa_gguf_get_str(const struct lsa_gguf *g, const char *key, struct lsa_gguf_str *s);
/* Element i of a numeric array as a double (the caller checks i < kv->n). */
double lsa_gguf_arr_num(const struct lsa_gguf_kv *kv, uint64_t i);

size_t lsa_gguf_n_tensors(const struct lsa_gguf *g);
const struct lsa_gguf_tensor *lsa_gguf_tensor_at(const struct lsa_gguf *g, size_t i);
/* NULL when absent (no error recorded). */
const struct lsa_gguf_tensor *lsa_gguf_find_tensor(const struct lsa_gguf *g, const char *name);

/* Dequantize/widen tensor t to float32 into out (t->n_elem floats). LSA_EUNSUP naming the tensor and its
 * type for types lsa cannot read. */
int lsa_gguf_read_f32(const struct lsa_gguf *g, const struct lsa_gguf_tensor *t, float *out);

/* ---- ggml types (gguf_quant.c) ---- */

/* "Q4_K", ...; NULL for numbers lsa does not know. */
const char *lsa_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block; 0 for unknown types. */
int64_t lsa_ggml_block_elems(uint32_t type);
size_t lsa_ggml_block_bytes(uint32_t type);
/* Whether lsa_ggml_dequantize reads this type: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K Q8_K. */
bool lsa_ggml_type_supported(uint32_t type);
/*
 * Dequantize n elements (a multiple of the block size) stored as `type` at src into out, exactly as
 * ggml's reference dequantize_row_* does (same float operations in the same order). LSA_EUNSUP for
 * unsupported types, LSA_EINVAL when n is not a multiple of the block size.
 */
int lsa_ggml_dequantize(uint32_t type, const void *src, int64_t n, float *out);

#ifdef __cplusplus
}
#endif
#endif
