/*
 * h5.c — reading HDF5 files through the public lsa_h5 API. The only file that includes hdf5.h.
 * HDF5's automatic error printing is turned off once; every failing call becomes an lsa error naming
 * the file and the object. Writing captures lives here too once the capture writer lands.
 */
#include "lsa/h5.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

struct lsa_h5 {
    hid_t fid;
    char *path;
};

static void silence_hdf5(void)
{
    static int done;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

struct lsa_h5 *lsa_h5_open(const char *path)
{
    silence_hdf5();
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            lsa_err(LSA_EIO, "%s: cannot open file", path);
            return NULL;
        }
        fclose(fp);
        lsa_err(LSA_EFORMAT, "%s: not an HDF5 file (or damaged)", path);
        return NULL;
    }
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fid < 0) {
        lsa_err(LSA_EFORMAT, "%s: cannot open HDF5 file (damaged or truncated)", path);
        return NULL;
    }
    struct lsa_h5 *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        H5Fclose(fid);
        lsa_err(LSA_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    f->fid = fid;
    return f;
}

void lsa_h5_close(struct lsa_h5 *f)
{
    if (!f) return;
    H5Fclose(f->fid);
    free(f->path);
    free(f);
}

const char *lsa_h5_path(const struct lsa_h5 *f) { return f->path; }

bool lsa_h5_exists(struct lsa_h5 *f, const char *name)
{
    if (strcmp(name, "/") == 0) return true;
    /* H5Lexists needs every intermediate link to exist, so check each prefix. */
    char buf[1024];
    size_t n = strlen(name);
    if (n >= sizeof buf) return false;
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (H5Lexists(f->fid, buf, H5P_DEFAULT) <= 0) return false;
            buf[i] = c;
        }
    }
    return true;
}

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)g;
    (void)info;
    struct {
        char **v;
        size_t n, cap;
    } *acc = op;
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 16;
        char **v = realloc(acc->v, cap * sizeof *v);
        if (!v) return -1;
        acc->v = v;
        acc->cap = cap;
    }
    if (!(acc->v[acc->n] = strdup(name))) return -1;
    acc->n++;
    return 0;
}

int lsa_h5_list(struct lsa_h5 *f, const char *group, char ***names, size_t *n)
{
    struct {
        char **v;
        size_t n, cap;
    } acc = {0};
    *names = NULL;
    *n = 0;
    if (!lsa_h5_exists(f, group)) return lsa_err(LSA_EFORMAT, "%s: group %s is missing", f->path, group);
    hid_t g = H5Gopen2(f->fid, group, H5P_DEFAULT);
    if (g < 0) return lsa_err(LSA_EFORMAT, "%s: %s is not a group", f->path, group);
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &acc);
    H5Gclose(g);
    if (rc < 0) {
        lsa_h5_free_names(acc.v, acc.n);
        return lsa_err(LSA_EFORMAT, "%s: cannot list group %s", f->path, group);
    }
    *names = acc.v;
    *n = acc.n;
    return 0;
}

void lsa_h5_free_names(char **names, size_t n)
{
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static hid_t open_dset(struct lsa_h5 *f, const char *dset)
{
    if (!lsa_h5_exists(f, dset)) {
        lsa_err(LSA_EFORMAT, "%s: dataset %s is missing", f->path, dset);
        return -1;
    }
    hid_t d = H5Dopen2(f->fid, dset, H5P_DEFAULT);
    if (d < 0) lsa_err(LSA_EFORMAT, "%s: %s is not a readable dataset", f->path, dset);
    return d;
}

static int space_shape(hid_t space, const char *path, const char *obj, int *rank, int64_t dims[LSA_H5_MAX_RANK],
                       size_t *count)
{
    int r = H5Sget_simple_extent_ndims(space);
    if (r < 0 || r > LSA_H5_MAX_RANK) return lsa_err(LSA_EFORMAT, "%s: %s has unsupported rank %d", path, obj, r);
    hsize_t h[LSA_H5_MAX_RANK];
    H5Sget_simple_extent_dims(space, h, NULL);
    size_t c = 1;
    for (int i = 0; i < r; i++) {
        if (dims) dims[i] = (int64_t)h[i];
        if (h[i] && c > SIZE_MAX / 16 / h[i]) return lsa_err(LSA_EFORMAT, "%s: %s is too large", path, obj);
        c *= h[i];
    }
    if (rank) *rank = r;
    if (count) *count = c;
    return 0;
}

int lsa_h5_shape(struct lsa_h5 *f, const char *dset, int *rank, int64_t dims[LSA_H5_MAX_RANK])
{
    hid_t d = open_dset(f, dset);
    if (d < 0) return LSA_EFORMAT;
    hid_t s = H5Dget_space(d);
    int rc = space_shape(s, f->path, dset, rank, dims, NULL);
    H5Sclose(s);
    H5Dclose(d);
    return rc;
}

static int read_dset(struct lsa_h5 *f, const char *dset, hid_t memtype, size_t elsize, void **data, size_t *n_out)
{
    *data = NULL;
    *n_out = 0;
    hid_t d = open_dset(f, dset);
    if (d < 0) return LSA_EFORMAT;
    hid_t s = H5Dget_space(d);
    size_t n = 0;
    int rc = space_shape(s, f->path, dset, NULL, NULL, &n);
    void *buf = NULL;
    if (rc == 0) {
        buf = malloc(n ? n * elsize : 1);
        if (!buf) rc = lsa_err(LSA_ENOMEM, "%s: out of memory reading %s", f->path, dset);
    }
    if (rc == 0 && n && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = lsa_err(LSA_EFORMAT, "%s: cannot read dataset %s (damaged, or not numeric)", f->path, dset);
    H5Sclose(s);
    H5Dclose(d);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *n_out = n;
    return 0;
}

int lsa_h5_read_f32(struct lsa_h5 *f, const char *dset, float **data, size_t *n_out)
{
    return read_dset(f, dset, H5T_NATIVE_FLOAT, sizeof(float), (void **)data, n_out);
}

int lsa_h5_read_i64(struct lsa_h5 *f, const char *dset, int64_t **data, size_t *n_out)
{
    return read_dset(f, dset, H5T_NATIVE_INT64, sizeof(int64_t), (void **)data, n_out);
}

static hid_t open_attr(struct lsa_h5 *f, const char *obj, const char *attr)
{
    if (!lsa_h5_exists(f, obj) || H5Aexists_by_name(f->fid, obj, attr, H5P_DEFAULT) <= 0) {
        lsa_err(LSA_EFORMAT, "%s: attribute %s on %s is missing", f->path, attr, obj);
        return -1;
    }
    hid_t a = H5Aopen_by_name(f->fid, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) lsa_err(LSA_EFORMAT, "%s: cannot open attribute %s on %s", f->path, attr, obj);
    return a;
}

int lsa_h5_attr_str(struct lsa_h5 *f, const char *obj, const char *attr, char **value)
{
    *value = NULL;
    hid_t a = open_attr(f, obj, attr);
    if (a < 0) return LSA_EFORMAT;
    int rc = 0;
    hid_t ft = H5Aget_type(a);
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = lsa_err(LSA_EFORMAT, "%s: attribute %s on %s is not a string", f->path, attr, obj);
    } else if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *s = NULL;
        if (H5Aread(a, mt, &s) < 0 || !s) {
            rc = lsa_err(LSA_EFORMAT, "%s: cannot read attribute %s on %s", f->path, attr, obj);
        } else {
            *value = strdup(s);
            H5free_memory(s);
            if (!*value) rc = lsa_err(LSA_ENOMEM, "out of memory");
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        char *s = calloc(1, n + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1);
        if (!s) rc = lsa_err(LSA_ENOMEM, "out of memory");
        else if (H5Aread(a, mt, s) < 0) rc = lsa_err(LSA_EFORMAT, "%s: cannot read attribute %s", f->path, attr);
        H5Tclose(mt);
        if (rc) free(s);
        else *value = s;
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int lsa_h5_attr_i64(struct lsa_h5 *f, const char *obj, const char *attr, int64_t **data, size_t *n)
{
    *data = NULL;
    *n = 0;
    hid_t a = open_attr(f, obj, attr);
    if (a < 0) return LSA_EFORMAT;
    hid_t s = H5Aget_space(a);
    size_t count = 0;
    int rc = space_shape(s, f->path, attr, NULL, NULL, &count);
    int64_t *buf = NULL;
    if (rc == 0 && !(buf = malloc((count ? count : 1) * sizeof *buf))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    if (rc == 0 && H5Aread(a, H5T_NATIVE_INT64, buf) < 0)
        rc = lsa_err(LSA_EFORMAT, "%s: attribute %s on %s is not an integer array", f->path, attr, obj);
    H5Sclose(s);
    H5Aclose(a);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *n = count;
    return 0;
}
