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

/* Attributes on an object (group or dataset; "/" for the root). */
int lsa_h5_attr_str(struct lsa_h5 *f, const char *obj, const char *attr, char **value); /* malloc'd */
int lsa_h5_attr_i64(struct lsa_h5 *f, const char *obj, const char *attr, int64_t **data, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
