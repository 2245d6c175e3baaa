/*
 * h5.h — the one door to HDF5 (hdf5.h is included only by src/h5.c).
 *
 * A small reader over HDF5 files used by tests, the capture reader and the analyses: open a file, read
 * whole datasets (converted to float32 / int64 on read, whatever their stored type), read attributes.
 * HDF5's own error printing is silenced; failures become lsa errors naming the file and the object.
 * Ownership: lsa_h5_open returns a handle the caller closes with lsa_h5_close (NULL ok). Read functions
 * return malloc'd arrays the caller frees with free().
 */
#ifndef LSA_H5_H
#define LSA_H5_H

#include "lsa/lsa.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSA_H5_MAX_RANK 8

struct lsa_h5;

struct lsa_h5 *lsa_h5_open(const char *path); /* read-only */
void lsa_h5_close(struct lsa_h5 *f);
const char *lsa_h5_path(const struct lsa_h5 *f);

bool lsa_h5_exists(struct lsa_h5 *f, const char *name); /* group or dataset, full path from the root */
/* Names of the direct children of a group, sorted; *names is a malloc'd array of malloc'd strings,
 * free with lsa_h5_free_names. */
int lsa_h5_list(struct lsa_h5 *f, const char *group, char ***names, size_t *n);
void lsa_h5_free_names(char **names, size_t n);

/* Shape of a dataset; *rank <= LSA_H5_MAX_RANK. */
int lsa_h5_shape(struct lsa_h5 *f, const char *dset, int *rank, int64_t dims[LSA_H5_MAX_RANK]);
/* Whole dataset converted to float / int64; shape via lsa_h5_shape. *n_out is the element count. */
int lsa_h5_read_f32(struct lsa_h5 *f, const char *dset, float **data, size_t *n_out);
int lsa_h5_read_i64(struct lsa_h5 *f, const char *dset, int64_t **data, size_t *n_out);
int lsa_h5_read_f64(struct lsa_h5 *f, const char *dset, double **data, size_t *n_out);

/* Attributes on an object (group or dataset; "/" for the root). */
int lsa_h5_attr_str(struct lsa_h5 *f, const char *obj, const char *attr, char **value); /* malloc'd */
int lsa_h5_attr_i64(struct lsa_h5 *f, const char *obj, const char *attr, int64_t **data, size_t *n);
int lsa_h5_attr_f64(struct lsa_h5 *f, const char *obj, const char *attr, double **data, size_t *n);

/* ------------------------------------------------------------------ writing */

/*
 * A file being written. Datasets grow along one axis (the token axis), chunked and optionally
 * compressed (deflate + shuffle). Element types on disk: LSA_H5_F16 (IEEE half), LSA_H5_F32, LSA_H5_I32,
 * LSA_H5_I64, LSA_H5_STR (variable-length UTF-8, rank 1). In memory, float datasets take float32 (F16 is
 * rounded to nearest even here), I32 takes int32_t, I64 int64_t, STR const char *.
 */
enum lsa_h5_type { LSA_H5_F16 = 1, LSA_H5_F32, LSA_H5_I32, LSA_H5_I64, LSA_H5_STR };

struct lsa_h5w;
struct lsa_h5w_dset;

/* Create (truncate) path. NULL on failure. */
struct lsa_h5w *lsa_h5w_create(const char *path);
/* Flush and close; returns the first error met while writing or closing. NULL ok. */
int lsa_h5w_close(struct lsa_h5w *w);

int lsa_h5w_attr_str(struct lsa_h5w *w, const char *obj, const char *name, const char *value);
int lsa_h5w_attr_strs(struct lsa_h5w *w, const char *obj, const char *name, const char *const *values, size_t n);
int lsa_h5w_attr_i64(struct lsa_h5w *w, const char *obj, const char *name, const int64_t *values, size_t n); /* 1-D */
int lsa_h5w_attr_int(struct lsa_h5w *w, const char *obj, const char *name, int64_t value); /* scalar */
int lsa_h5w_attr_f64(struct lsa_h5w *w, const char *obj, const char *name, double value);

/*
 * A dataset of the given rank whose axis grow_axis starts at 0 and grows as data is written; the other
 * dims are fixed. chunk gives the chunk shape; level 0..9 deflate (0 = none). Owned by w (closed with it).
 */
struct lsa_h5w_dset *lsa_h5w_dset(struct lsa_h5w *w, const char *name, enum lsa_h5_type type, int rank,
                                  const int64_t dims[], int grow_axis, const int64_t chunk[], int level);
/* Write a hyperslab [start, start + count), extending the grow axis as needed. */
int lsa_h5w_write(struct lsa_h5w_dset *d, const int64_t start[], const int64_t count[], const void *data);
/* The same for an LSA_H5_F16 dataset from IEEE half bits already converted (lsa_h5_f16_bits). */
int lsa_h5w_write_half(struct lsa_h5w_dset *d, const int64_t start[], const int64_t count[], const uint16_t *bits);

/* ------------------------------------------------------------------ partial reads and small arrays */

/* Chunk shape of a dataset (*rank as lsa_h5_shape); all zero for a contiguous dataset. */
int lsa_h5_chunk(struct lsa_h5 *f, const char *dset, int *rank, int64_t dims[LSA_H5_MAX_RANK]);
/*
 * Read the hyperslab [start, start + count) of a dataset of the given rank into out (caller's buffer of
 * prod(count) elements, row-major), converted to float32 / int64 whatever the stored type. The range is
 * checked against the dataset's shape (LSA_EINVAL when outside).
 */
int lsa_h5_read_slab_f32(struct lsa_h5 *f, const char *dset, int rank, const int64_t start[], const int64_t count[],
                         float *out);
int lsa_h5_read_slab_i64(struct lsa_h5 *f, const char *dset, int rank, const int64_t start[], const int64_t count[],
                         int64_t *out);
/* A string or 1-D string-array attribute (variable or fixed length); free with lsa_h5_free_names. */
int lsa_h5_attr_strs(struct lsa_h5 *f, const char *obj, const char *attr, char ***values, size_t *n);

/* A whole fixed-size (contiguous, uncompressed) dataset written at once: float64 or int64 on disk.
 * Intermediate groups are created. For results and other small arrays. */
int lsa_h5w_array_f64(struct lsa_h5w *w, const char *name, int rank, const int64_t dims[], const double *data);
int lsa_h5w_array_i64(struct lsa_h5w *w, const char *name, int rank, const int64_t dims[], const int64_t *data);
/* Create a group (and its parents) so that attributes can be put on it; an existing group is fine. */
int lsa_h5w_group(struct lsa_h5w *w, const char *name);

/* ------------------------------------------------------------------ checkpoints (resumable capture) */

/*
 * Flush everything written so far into the file and onto the disk (fsync). After a crash, a reader of the
 * file finds at least what the last flush wrote, except the chunks that were partly filled then and have
 * been rewritten since (a compressed chunk that is rewritten moves, and its old place may be reused):
 * whoever reads a crashed file back must verify what it takes (lsa_capture keeps checksums for that).
 */
int lsa_h5w_flush(struct lsa_h5w *w);
/* From now on, datasets of f that are read stay open until lsa_h5_close, each with a chunk cache of
 * cache_bytes: for many small partial reads of compressed data (each would otherwise decompress its
 * chunks again). */
void lsa_h5_keep_open(struct lsa_h5 *f, size_t cache_bytes);
/*
 * Compress this dataset's chunks outside HDF5, on all cores (src/chunkstage.h), instead of in HDF5's
 * filter pipeline on the writing thread: for a compressed F16/F32 dataset of rank 2 (token, feature) or 3
 * (slice, token, feature) growing along the token axis, with chunks of one slice and whole rows. Writes
 * must then be whole rows of one slice; rows stay in memory until lsa_h5w_commit says they are final,
 * and an incomplete last chunk is stored at each flush and at close. The file is the same as without.
 */
int lsa_h5w_dset_stage(struct lsa_h5w_dset *d);
/* Rows (along the growing axis) below `rows` of every staged dataset are final: store their full chunks. */
int lsa_h5w_commit(struct lsa_h5w *w, int64_t rows);
/* The file being written was renamed (rename(2) keeps it open): messages name it path from now on. */
int lsa_h5w_renamed(struct lsa_h5w *w, const char *path);
/* The IEEE half bits that lsa_h5w_write stores for x in an LSA_H5_F16 dataset (round to nearest even). */
uint16_t lsa_h5_f16_bits(float x);

#ifdef __cplusplus
}
#endif
#endif
