/*
 * safetensors.h — memory-mapped reader for Hugging Face safetensors checkpoints.
 *
 * File format: 8-byte little-endian header length N, then N bytes of JSON
 *   { "<name>": {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...], "data_offsets": [begin, end]},
 *     "__metadata__": {...} }
 * then the data block; offsets are relative to the end of the header. A sharded checkpoint is a
 * model.safetensors.index.json whose "weight_map" maps tensor names to shard files in the same folder.
 *
 * Every size, offset and shape is validated against the file before use (hostile files are expected).
 * Data stays memory-mapped; lsa_st_read_f32 widens one tensor to float32 exactly.
 * Ownership: lsa_st_open returns a set the caller closes with lsa_st_close (NULL ok); tensor pointers
 * borrowed from it live until lsa_st_close.
 */
#ifndef LSA_SAFETENSORS_H
#define LSA_SAFETENSORS_H

#include "lsa/lsa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LSA_ST_MAX_RANK 8

enum lsa_dtype { LSA_DT_UNKNOWN = 0, LSA_DT_F32, LSA_DT_F16, LSA_DT_BF16 };

struct lsa_st_tensor {
    const char *name;            /* borrowed */
    const char *dtype_name;      /* as written in the file, e.g. "BF16"; borrowed */
    enum lsa_dtype dtype;        /* LSA_DT_UNKNOWN for dtypes lsa cannot widen */
    int rank;
    int64_t shape[LSA_ST_MAX_RANK];
    int64_t n_elem;
    const void *data;            /* into the mapping */
    size_t nbytes;
    const char *file;            /* the shard it lives in; borrowed */
};

struct lsa_st;

/* path: a .safetensors file, a model.safetensors.index.json, or a folder holding either. */
struct lsa_st *lsa_st_open(const char *path);
void lsa_st_close(struct lsa_st *st);

size_t lsa_st_count(const struct lsa_st *st);
const struct lsa_st_tensor *lsa_st_at(const struct lsa_st *st, size_t i);
/* NULL when absent (no error recorded: absence is often legitimate). */
const struct lsa_st_tensor *lsa_st_find(const struct lsa_st *st, const char *name);
/* The main path the set was opened from (file or index). */
const char *lsa_st_path(const struct lsa_st *st);

/* Widen t's data to float32 into out (t->n_elem floats). LSA_EUNSUP for dtypes other than F32/F16/BF16. */
int lsa_st_read_f32(const struct lsa_st_tensor *t, float *out);

/* Widen n stored values of dtype dt (F32, F16 or BF16, little-endian, any alignment) into out. */
void lsa_widen_f32(enum lsa_dtype dt, const void *src, size_t n, float *out);

float lsa_f16_to_f32(uint16_t h);
float lsa_bf16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
