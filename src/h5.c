/*
 * h5.c — reading HDF5 files through the public lsa_h5 API. The only file that includes hdf5.h.
 * HDF5's automatic error printing is turned off once; every failing call becomes an lsa error naming
 * the file and the object. Writing (captures, results) lives here too.
 */
#include "lsa/h5.h"

#include "chunkread.h"
#include "chunkstage.h"
#include "half.h"
#include "lsa/safetensors.h"

#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEP_MAX 16

struct lsa_h5 {
    hid_t fid;
    char *path;
    size_t keep_bytes; /* lsa_h5_keep_open: chunk cache of each dataset kept open; 0 = open per read */
    char *kept_name[KEEP_MAX];
    hid_t kept_id[KEEP_MAX];
    int n_kept;
    struct lsa_chunkread_scratch scratch;
};

static void silence_hdf5(void)
{
    static int done;
    if (!done) {
        /* No library shutdown at exit: after a write failure (disk full) a file may fail to close, and
         * HDF5 1.10 then crashes closing it again in its atexit handler. lsa closes what it opens. */
        H5dont_atexit();
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
    for (int i = 0; i < f->n_kept; i++) {
        H5Dclose(f->kept_id[i]);
        free(f->kept_name[i]);
    }
    H5Fclose(f->fid);
    lsa_chunkread_scratch_free(&f->scratch);
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
    for (int i = 0; i < f->n_kept; i++)
        if (!strcmp(f->kept_name[i], dset)) return f->kept_id[i];
    if (!lsa_h5_exists(f, dset)) {
        lsa_err(LSA_EFORMAT, "%s: dataset %s is missing", f->path, dset);
        return -1;
    }
    hid_t dapl = H5P_DEFAULT;
    if (f->keep_bytes && (dapl = H5Pcreate(H5P_DATASET_ACCESS)) >= 0)
        H5Pset_chunk_cache(dapl, 10007, f->keep_bytes, 1.0);
    hid_t d = H5Dopen2(f->fid, dset, dapl < 0 ? H5P_DEFAULT : dapl);
    if (dapl > 0 && dapl != H5P_DEFAULT) H5Pclose(dapl);
    if (d < 0) lsa_err(LSA_EFORMAT, "%s: %s is not a readable dataset", f->path, dset);
    if (d >= 0 && f->keep_bytes && f->n_kept < KEEP_MAX && (f->kept_name[f->n_kept] = strdup(dset)))
        f->kept_id[f->n_kept++] = d;
    return d;
}

/* H5Dclose, except for the datasets kept open (lsa_h5_keep_open). */
static void close_dset(struct lsa_h5 *f, hid_t d)
{
    for (int i = 0; i < f->n_kept; i++)
        if (f->kept_id[i] == d) return;
    H5Dclose(d);
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
    close_dset(f, d);
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
    close_dset(f, d);
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

int lsa_h5_read_f64(struct lsa_h5 *f, const char *dset, double **data, size_t *n_out)
{
    return read_dset(f, dset, H5T_NATIVE_DOUBLE, sizeof(double), (void **)data, n_out);
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
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t count = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = lsa_err(LSA_EFORMAT, "%s: attribute %s on %s is not a string", f->path, attr, obj);
    } else if (count != 1) { /* reading an array into one string would overrun it */
        rc = lsa_err(LSA_EFORMAT, "%s: attribute %s on %s holds %lld values, expected one string", f->path, attr, obj,
                     (long long)count);
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

static int attr_num(struct lsa_h5 *f, const char *obj, const char *attr, hid_t memtype, size_t elsize, void **data,
                    size_t *n)
{
    *data = NULL;
    *n = 0;
    hid_t a = open_attr(f, obj, attr);
    if (a < 0) return LSA_EFORMAT;
    hid_t s = H5Aget_space(a), ft = H5Aget_type(a);
    size_t count = 0;
    int rc = space_shape(s, f->path, attr, NULL, NULL, &count);
    H5T_class_t cl = H5Tget_class(ft);
    void *buf = NULL;
    if (rc == 0 && cl != H5T_INTEGER && cl != H5T_FLOAT)
        rc = lsa_err(LSA_EFORMAT, "%s: attribute %s on %s is not numeric", f->path, attr, obj);
    if (rc == 0 && !(buf = malloc((count ? count : 1) * elsize))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    if (rc == 0 && H5Aread(a, memtype, buf) < 0)
        rc = lsa_err(LSA_EFORMAT, "%s: cannot read attribute %s on %s as numbers", f->path, attr, obj);
    H5Tclose(ft);
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

int lsa_h5_attr_i64(struct lsa_h5 *f, const char *obj, const char *attr, int64_t **data, size_t *n)
{
    return attr_num(f, obj, attr, H5T_NATIVE_INT64, sizeof(int64_t), (void **)data, n);
}

int lsa_h5_attr_f64(struct lsa_h5 *f, const char *obj, const char *attr, double **data, size_t *n)
{
    return attr_num(f, obj, attr, H5T_NATIVE_DOUBLE, sizeof(double), (void **)data, n);
}

/* ================================================================== writing */

struct lsa_h5w_dset {
    struct lsa_h5w *w;
    char *name;
    hid_t id, memtype;
    enum lsa_h5_type type;
    int rank, grow;
    hsize_t dims[LSA_H5_MAX_RANK];
    uint16_t *half; /* conversion scratch for F16 */
    size_t half_cap;
    hsize_t chunk[LSA_H5_MAX_RANK];
    int level;
    struct lsa_stage *stage; /* lsa_h5w_dset_stage: chunks compressed here and stored raw */
};

struct lsa_h5w {
    hid_t fid;
    char *path;
    hid_t f16; /* IEEE half type */
    struct lsa_h5w_dset **d;
    size_t n_d;
    int err;
};

/* Why a write failed, when the system said (HDF5's own stack is silenced): ": No space left on device",
 * ": File too large" (a size limit); else a hint. errno is cleared before the calls that use this. */
static const char *io_reason(void)
{
    static _Thread_local char buf[96];
    if (errno == ENOSPC || errno == EFBIG || errno == EDQUOT || errno == EIO || errno == EROFS) {
        snprintf(buf, sizeof buf, ": %s", strerror(errno));
        return buf;
    }
    return " (disk full?)";
}

static hid_t make_f16(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    H5Tset_precision(t, 16);
    return t;
}

struct lsa_h5w *lsa_h5w_create(const char *path)
{
    silence_hdf5();
    struct lsa_h5w *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    w->fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->fid < 0) {
        lsa_err(LSA_EIO, "%s: cannot create HDF5 file (folder missing or not writable?)", path);
        free(w->path);
        free(w);
        return NULL;
    }
    w->f16 = make_f16();
    return w;
}

static int stage_flush(struct lsa_h5w *w);

int lsa_h5w_close(struct lsa_h5w *w)
{
    if (!w) return 0;
    int rc = w->err ? w->err : stage_flush(w);
    for (size_t i = 0; i < w->n_d; i++) {
        struct lsa_h5w_dset *d = w->d[i];
        lsa_stage_free(d->stage);
        if (H5Dclose(d->id) < 0 && !rc) rc = lsa_err(LSA_EIO, "%s: closing %s failed", w->path, d->name);
        if (d->type == LSA_H5_STR) H5Tclose(d->memtype);
        free(d->half);
        free(d->name);
        free(d);
    }
    free(w->d);
    H5Tclose(w->f16);
    errno = 0;
    if (H5Fflush(w->fid, H5F_SCOPE_GLOBAL) < 0 && !rc)
        rc = lsa_err(LSA_EIO, "%s: flush failed%s", w->path, io_reason());
    errno = 0;
    if (H5Fclose(w->fid) < 0 && !rc) rc = lsa_err(LSA_EIO, "%s: close failed%s", w->path, io_reason());
    free(w->path);
    free(w);
    return rc;
}

static int fail_w(struct lsa_h5w *w, int code)
{
    if (!w->err) w->err = code;
    return code;
}

static int write_attr(struct lsa_h5w *w, const char *obj, const char *name, hid_t type, hid_t space, const void *v)
{
    hid_t a = H5Acreate_by_name(w->fid, obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Awrite(a, type, v) < 0)
        rc = fail_w(w, lsa_err(LSA_EIO, "%s: cannot write attribute %s on %s", w->path, name, obj));
    if (a >= 0) H5Aclose(a);
    return rc;
}

static hid_t vlen_str(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

int lsa_h5w_attr_str(struct lsa_h5w *w, const char *obj, const char *name, const char *value)
{
    hid_t t = vlen_str(), s = H5Screate(H5S_SCALAR);
    int rc = write_attr(w, obj, name, t, s, &value);
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

int lsa_h5w_attr_strs(struct lsa_h5w *w, const char *obj, const char *name, const char *const *values, size_t n)
{
    hsize_t dim = n;
    hid_t t = vlen_str(), s = H5Screate_simple(1, &dim, NULL);
    int rc = write_attr(w, obj, name, t, s, values);
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

int lsa_h5w_attr_i64(struct lsa_h5w *w, const char *obj, const char *name, const int64_t *values, size_t n)
{
    hsize_t dim = n;
    hid_t s = H5Screate_simple(1, &dim, NULL);
    int rc = write_attr(w, obj, name, H5T_NATIVE_INT64, s, values);
    H5Sclose(s);
    return rc;
}

int lsa_h5w_attr_int(struct lsa_h5w *w, const char *obj, const char *name, int64_t value)
{
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = write_attr(w, obj, name, H5T_NATIVE_INT64, s, &value);
    H5Sclose(s);
    return rc;
}

int lsa_h5w_attr_f64(struct lsa_h5w *w, const char *obj, const char *name, double value)
{
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = write_attr(w, obj, name, H5T_NATIVE_DOUBLE, s, &value);
    H5Sclose(s);
    return rc;
}

struct lsa_h5w_dset *lsa_h5w_dset(struct lsa_h5w *w, const char *name, enum lsa_h5_type type, int rank,
                                  const int64_t dims[], int grow_axis, const int64_t chunk[], int level)
{
    struct lsa_h5w_dset *d = calloc(1, sizeof *d);
    struct lsa_h5w_dset **v = realloc(w->d, (w->n_d + 1) * sizeof *v);
    if (!d || !v || !(d->name = strdup(name))) {
        free(d);
        if (v) w->d = v;
        fail_w(w, lsa_err(LSA_ENOMEM, "out of memory"));
        return NULL;
    }
    w->d = v;
    d->w = w;
    d->type = type;
    d->rank = rank;
    d->grow = grow_axis;
    d->level = level;
    hsize_t cur[LSA_H5_MAX_RANK], max[LSA_H5_MAX_RANK], ch[LSA_H5_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        cur[i] = d->dims[i] = i == grow_axis ? 0 : (hsize_t)dims[i];
        max[i] = i == grow_axis ? H5S_UNLIMITED : (hsize_t)dims[i];
        ch[i] = d->chunk[i] = chunk[i] > 0 ? (hsize_t)chunk[i] : 1;
    }
    hid_t ftype;
    switch (type) {
    case LSA_H5_F16:
        ftype = w->f16;
        d->memtype = w->f16;
        break;
    case LSA_H5_F32:
        ftype = H5T_IEEE_F32LE;
        d->memtype = H5T_NATIVE_FLOAT;
        break;
    case LSA_H5_I32:
        ftype = H5T_STD_I32LE;
        d->memtype = H5T_NATIVE_INT32;
        break;
    case LSA_H5_I64:
        ftype = H5T_STD_I64LE;
        d->memtype = H5T_NATIVE_INT64;
        break;
    default:
        ftype = d->memtype = vlen_str();
        break;
    }
    hid_t space = H5Screate_simple(rank, cur, max), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, ch);
    if (level > 0 && type != LSA_H5_STR) {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, (unsigned)level);
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    /* Keep every chunk of the current token range in cache: a window's write usually fills a chunk only
     * partly, and an evicted partial chunk would be recompressed and reread at each window. */
    size_t chunk_bytes = type == LSA_H5_F16 ? 2 : type == LSA_H5_I64 || type == LSA_H5_STR ? 8 : 4, across = 1;
    for (int i = 0; i < rank; i++) {
        chunk_bytes *= ch[i];
        if (i != grow_axis) across *= (max[i] + ch[i] - 1) / ch[i];
    }
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, 10007, 2 * across * chunk_bytes + (1 << 20), 1.0);
    d->id = H5Dcreate2(w->fid, name, ftype, space, lcpl, dcpl, dapl);
    H5Pclose(dapl);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (d->id < 0) {
        if (type == LSA_H5_STR) H5Tclose(d->memtype);
        fail_w(w, lsa_err(LSA_EIO, "%s: cannot create dataset %s", w->path, name));
        free(d->name);
        free(d);
        return NULL;
    }
    w->d[w->n_d++] = d;
    return d;
}

/* half: data are float16 bits already (F16 datasets only) */
static int write_slab(struct lsa_h5w_dset *d, const int64_t start[], const int64_t count[], const void *data, bool half)
{
    struct lsa_h5w *w = d->w;
    if (w->err) return w->err;
    hsize_t st[LSA_H5_MAX_RANK], ct[LSA_H5_MAX_RANK];
    size_t n = 1;
    for (int i = 0; i < d->rank; i++) {
        st[i] = (hsize_t)start[i];
        ct[i] = (hsize_t)count[i];
        n *= ct[i];
        if (i != d->grow && st[i] + ct[i] > d->dims[i])
            return fail_w(w, lsa_err(LSA_EINVAL, "%s: write outside dataset %s", w->path, d->name));
    }
    if (n == 0) return 0;
    if (st[d->grow] + ct[d->grow] > d->dims[d->grow]) {
        d->dims[d->grow] = st[d->grow] + ct[d->grow];
        errno = 0;
        if (H5Dset_extent(d->id, d->dims) < 0)
            return fail_w(w, lsa_err(LSA_EIO, "%s: cannot extend dataset %s%s", w->path, d->name, io_reason()));
    }
    if (d->type == LSA_H5_F16 && !half) {
        if (d->half_cap < n) {
            uint16_t *h = realloc(d->half, n * sizeof *h);
            if (!h) return fail_w(w, lsa_err(LSA_ENOMEM, "out of memory"));
            d->half = h;
            d->half_cap = n;
        }
        const float *f = data;
        lsa_half_encode(f, d->half, n);
        data = d->half;
    }
    if (d->stage) {
        int64_t a = d->rank == 3 ? (int64_t)st[0] : 0;
        if ((d->rank == 3 && ct[0] != 1) || st[d->rank - 1] != 0 || ct[d->rank - 1] != d->dims[d->rank - 1])
            return fail_w(w, lsa_err(LSA_EINVAL, "%s: %s is written in whole rows of one slice", w->path, d->name));
        int rc = lsa_stage_put(d->stage, a, (int64_t)st[d->grow], (int64_t)ct[d->grow], data);
        return rc ? fail_w(w, lsa_err_wrap(rc, "%s: %s", w->path, d->name)) : 0;
    }
    hid_t fs = H5Dget_space(d->id), ms = H5Screate_simple(d->rank, ct, NULL);
    int rc = 0;
    errno = 0;
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, ct, NULL) < 0 ||
        H5Dwrite(d->id, d->memtype, ms, fs, H5P_DEFAULT, data) < 0)
        rc = fail_w(w, lsa_err(LSA_EIO, "%s: writing dataset %s failed%s", w->path, d->name, io_reason()));
    H5Sclose(ms);
    H5Sclose(fs);
    return rc;
}

int lsa_h5w_write(struct lsa_h5w_dset *d, const int64_t start[], const int64_t count[], const void *data)
{
    return write_slab(d, start, count, data, false);
}

int lsa_h5w_write_half(struct lsa_h5w_dset *d, const int64_t start[], const int64_t count[], const uint16_t *bits)
{
    if (d->type != LSA_H5_F16)
        return fail_w(d->w, lsa_err(LSA_EINVAL, "%s: %s does not hold float16", d->w->path, d->name));
    return write_slab(d, start, count, bits, true);
}

/* ================================================================== partial reads and small arrays */

int lsa_h5_chunk(struct lsa_h5 *f, const char *dset, int *rank, int64_t dims[LSA_H5_MAX_RANK])
{
    hid_t d = open_dset(f, dset);
    if (d < 0) return LSA_EFORMAT;
    hid_t s = H5Dget_space(d), p = H5Dget_create_plist(d);
    int r = 0, rc = space_shape(s, f->path, dset, &r, NULL, NULL);
    for (int i = 0; i < LSA_H5_MAX_RANK; i++) dims[i] = 0;
    if (rc == 0 && p >= 0 && H5Pget_layout(p) == H5D_CHUNKED) {
        hsize_t h[LSA_H5_MAX_RANK];
        if (H5Pget_chunk(p, LSA_H5_MAX_RANK, h) != r)
            rc = lsa_err(LSA_EFORMAT, "%s: cannot read the chunk shape of %s", f->path, dset);
        for (int i = 0; rc == 0 && i < r; i++) dims[i] = (int64_t)h[i];
    }
    if (rank) *rank = r;
    if (p >= 0) H5Pclose(p);
    H5Sclose(s);
    close_dset(f, d);
    return rc;
}

/* Check that start..start+count lies in dataset d (of rank rank); its shape into dims. */
static int slab_shape(struct lsa_h5 *f, hid_t d, const char *dset, int rank, const int64_t start[],
                      const int64_t count[], int64_t dims[LSA_H5_MAX_RANK])
{
    hid_t fs = H5Dget_space(d);
    int r = 0, rc = space_shape(fs, f->path, dset, &r, dims, NULL);
    H5Sclose(fs);
    if (rc == 0 && r != rank) rc = lsa_err(LSA_EFORMAT, "%s: %s has rank %d, expected %d", f->path, dset, r, rank);
    for (int i = 0; rc == 0 && i < rank; i++)
        if (start[i] < 0 || count[i] < 0 || start[i] > dims[i] || count[i] > dims[i] - start[i])
            rc = lsa_err(LSA_EINVAL, "%s: read of %s outside its shape (axis %d: [%lld, %lld) of %lld)", f->path, dset,
                         i, (long long)start[i], (long long)(start[i] + count[i]), (long long)dims[i]);
    return rc;
}

static int read_slab(struct lsa_h5 *f, const char *dset, int rank, const int64_t start[], const int64_t count[],
                     hid_t memtype, void *out)
{
    hid_t d = open_dset(f, dset);
    if (d < 0) return LSA_EFORMAT;
    int64_t dims[LSA_H5_MAX_RANK];
    int rc = slab_shape(f, d, dset, rank, start, count, dims);
    hsize_t st[LSA_H5_MAX_RANK], ct[LSA_H5_MAX_RANK];
    size_t n = 1;
    for (int i = 0; rc == 0 && i < rank; i++) {
        st[i] = (hsize_t)start[i];
        ct[i] = (hsize_t)count[i];
        n *= ct[i];
    }
    if (rc == 0 && n > 0) {
        hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, ct, NULL);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, ct, NULL) < 0 ||
            H5Dread(d, memtype, ms, fs, H5P_DEFAULT, out) < 0)
            rc = lsa_err(LSA_EFORMAT, "%s: cannot read %s (damaged, or not numeric)", f->path, dset);
        H5Sclose(ms);
        H5Sclose(fs);
    }
    close_dset(f, d);
    return rc;
}

int lsa_h5_read_slab_f32(struct lsa_h5 *f, const char *dset, int rank, const int64_t start[], const int64_t count[],
                         float *out)
{
    bool half = false;
    if (lsa_h5_exists(f, dset)) {
        hid_t d = open_dset(f, dset);
        if (d >= 0) {
            int64_t dims[LSA_H5_MAX_RANK];
            int rc = slab_shape(f, d, dset, rank, start, count, dims);
            if (rc == 0) rc = lsa_chunkread_f32(&f->scratch, d, f->path, dset, rank, dims, start, count, out);
            /* a float16 dataset the chunk reader did not take is still read raw and widened here:
             * HDF5's own half-to-float conversion is a slow generic path */
            hid_t t = rc == 1 ? H5Dget_type(d) : -1;
            if (t >= 0) {
                half = lsa_chunkread_float_elem(t) == 2;
                H5Tclose(t);
            }
            close_dset(f, d);
            if (rc != 1) return rc; /* read by lsa_chunkread_f32, or an error */
        }
    }
    if (!half) return read_slab(f, dset, rank, start, count, H5T_NATIVE_FLOAT, out);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= count[i] > 0 ? (size_t)count[i] : 0;
    /* Read the halves into the upper half of out and widen front to back: out[i] (bytes 4i..4i+3) only
     * overwrites halves j <= i, which are already consumed (no scratch buffer, no heap churn). */
    uint16_t *raw = (uint16_t *)out + n;
    hid_t mt = H5Tcopy(H5T_IEEE_F32LE); /* the same half type the writer uses, as the memory type */
    H5Tset_fields(mt, 15, 10, 5, 0, 10);
    H5Tset_size(mt, 2);
    H5Tset_ebias(mt, 15);
    H5Tset_precision(mt, 16);
    int rc = read_slab(f, dset, rank, start, count, mt, raw);
    H5Tclose(mt);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint16_t h;
        memcpy(&h, raw + i, sizeof h);
        float v = lsa_f16_to_f32(h);
        memcpy(out + i, &v, sizeof v);
    }
    return rc;
}

int lsa_h5_read_slab_i64(struct lsa_h5 *f, const char *dset, int rank, const int64_t start[], const int64_t count[],
                         int64_t *out)
{
    return read_slab(f, dset, rank, start, count, H5T_NATIVE_INT64, out);
}

int lsa_h5_attr_strs(struct lsa_h5 *f, const char *obj, const char *attr, char ***values, size_t *n)
{
    *values = NULL;
    *n = 0;
    hid_t a = open_attr(f, obj, attr);
    if (a < 0) return LSA_EFORMAT;
    hid_t ft = H5Aget_type(a), s = H5Aget_space(a);
    size_t count = 0;
    int rc = space_shape(s, f->path, attr, NULL, NULL, &count);
    char **v = NULL;
    if (rc == 0 && H5Tget_class(ft) != H5T_STRING)
        rc = lsa_err(LSA_EFORMAT, "%s: attribute %s on %s is not a string array", f->path, attr, obj);
    if (rc == 0 && !(v = calloc(count ? count : 1, sizeof *v))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    if (rc == 0 && count > 0 && H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char **raw = calloc(count, sizeof *raw);
        if (!raw) rc = lsa_err(LSA_ENOMEM, "out of memory");
        else if (H5Aread(a, mt, raw) < 0)
            rc = lsa_err(LSA_EFORMAT, "%s: cannot read attribute %s on %s", f->path, attr, obj);
        for (size_t i = 0; rc == 0 && i < count; i++)
            if (!(v[i] = strdup(raw[i] ? raw[i] : ""))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        if (raw) {
            for (size_t i = 0; i < count; i++) H5free_memory(raw[i]);
            free(raw);
        }
        H5Tclose(mt);
    } else if (rc == 0 && count > 0) {
        size_t len = H5Tget_size(ft);
        char *buf = calloc(count, len + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, len + 1);
        if (!buf) rc = lsa_err(LSA_ENOMEM, "out of memory");
        else if (H5Aread(a, mt, buf) < 0)
            rc = lsa_err(LSA_EFORMAT, "%s: cannot read attribute %s on %s", f->path, attr, obj);
        for (size_t i = 0; rc == 0 && i < count; i++)
            if (!(v[i] = strndup(buf + i * (len + 1), len))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        free(buf);
        H5Tclose(mt);
    }
    H5Sclose(s);
    H5Tclose(ft);
    H5Aclose(a);
    if (rc) {
        lsa_h5_free_names(v, count);
        return rc;
    }
    *values = v;
    *n = count;
    return 0;
}

static int write_array(struct lsa_h5w *w, const char *name, int rank, const int64_t dims[], hid_t ftype, hid_t mtype,
                       const void *data)
{
    if (w->err) return w->err;
    if (rank < 1 || rank > LSA_H5_MAX_RANK) return fail_w(w, lsa_err(LSA_EINVAL, "%s: bad rank for %s", w->path, name));
    hsize_t h[LSA_H5_MAX_RANK];
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (h[i] = (hsize_t)dims[i]);
    hid_t space = H5Screate_simple(rank, h, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(w->fid, name, ftype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (d < 0 || (n > 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0))
        rc = fail_w(w, lsa_err(LSA_EIO, "%s: cannot write dataset %s", w->path, name));
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(space);
    return rc;
}

int lsa_h5w_array_f64(struct lsa_h5w *w, const char *name, int rank, const int64_t dims[], const double *data)
{
    return write_array(w, name, rank, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data);
}

int lsa_h5w_array_i64(struct lsa_h5w *w, const char *name, int rank, const int64_t dims[], const int64_t *data)
{
    return write_array(w, name, rank, dims, H5T_STD_I64LE, H5T_NATIVE_INT64, data);
}

int lsa_h5w_group(struct lsa_h5w *w, const char *name)
{
    if (w->err) return w->err;
    if (H5Lexists(w->fid, name, H5P_DEFAULT) > 0) return 0;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(w->fid, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) return fail_w(w, lsa_err(LSA_EIO, "%s: cannot create group %s", w->path, name));
    H5Gclose(g);
    return 0;
}

/* ================================================================== checkpoints (issue 9) */

/* A chunk compressed by the stage, stored as it is (filter mask 0: shuffle and deflate applied). */
static int emit_chunk(void *ctx, int64_t a, int64_t k, const void *data, size_t n)
{
    struct lsa_h5w_dset *d = ctx;
    hsize_t off[LSA_H5_MAX_RANK] = {0};
    if (d->rank == 3) off[0] = (hsize_t)a;
    off[d->grow] = (hsize_t)k * d->chunk[d->grow];
    errno = 0;
    if (H5Dwrite_chunk(d->id, H5P_DEFAULT, 0, off, n, data) < 0)
        return lsa_err(LSA_EIO, "%s: writing a chunk of %s failed%s", d->w->path, d->name, io_reason());
    return 0;
}

int lsa_h5w_dset_stage(struct lsa_h5w_dset *d)
{
    struct lsa_h5w *w = d->w;
    if (w->err) return w->err;
    size_t elem = d->type == LSA_H5_F16 ? 2 : d->type == LSA_H5_F32 ? 4 : 0;
    if (!elem || d->level <= 0 || (d->rank != 2 && d->rank != 3) || d->grow != d->rank - 2 ||
        (d->rank == 3 && d->chunk[0] != 1) || d->chunk[d->rank - 1] != d->dims[d->rank - 1])
        return fail_w(w, lsa_err(LSA_EINVAL, "%s: %s cannot be staged (compressed float rows, one slice per chunk)",
                                 w->path, d->name));
    d->stage = lsa_stage_new(elem, elem * d->dims[d->rank - 1], (int64_t)d->chunk[d->grow],
                             d->rank == 3 ? (int64_t)d->dims[0] : 1, d->level);
    return d->stage ? 0 : fail_w(w, LSA_ENOMEM);
}

int lsa_h5w_commit(struct lsa_h5w *w, int64_t rows)
{
    if (w->err) return w->err;
    for (size_t i = 0; i < w->n_d; i++) {
        struct lsa_h5w_dset *d = w->d[i];
        int rc = d->stage ? lsa_stage_commit(d->stage, rows, false, emit_chunk, d) : 0;
        if (rc) return fail_w(w, rc);
    }
    return 0;
}

/* Every staged dataset's last, incomplete chunks too (kept staged: they are stored again when full). */
static int stage_flush(struct lsa_h5w *w)
{
    for (size_t i = 0; i < w->n_d; i++) {
        struct lsa_h5w_dset *d = w->d[i];
        int rc = d->stage ? lsa_stage_commit(d->stage, lsa_stage_committed(d->stage), true, emit_chunk, d) : 0;
        if (rc) return fail_w(w, rc);
    }
    return 0;
}

int lsa_h5w_flush(struct lsa_h5w *w)
{
    if (w->err) return w->err;
    int rc = stage_flush(w);
    if (rc) return rc;
    errno = 0;
    if (H5Fflush(w->fid, H5F_SCOPE_GLOBAL) < 0)
        return fail_w(w, lsa_err(LSA_EIO, "%s: flush failed%s", w->path, io_reason()));
    /* and onto the disk, so that a crash of the machine (not only of lsa) keeps what was flushed */
    void *handle = NULL;
    if (H5Fget_vfd_handle(w->fid, H5P_DEFAULT, &handle) >= 0 && handle && fsync(*(int *)handle) != 0 &&
        errno != EINVAL && errno != EROFS)
        return fail_w(w, lsa_err(LSA_EIO, "%s: fsync failed: %s", w->path, strerror(errno)));
    return 0;
}

uint16_t lsa_h5_f16_bits(float x) { return lsa_half_from_float(x); }

int lsa_h5w_renamed(struct lsa_h5w *w, const char *path)
{
    char *p = strdup(path);
    if (!p) return lsa_err(LSA_ENOMEM, "out of memory");
    free(w->path);
    w->path = p;
    return 0;
}

void lsa_h5_keep_open(struct lsa_h5 *f, size_t cache_bytes) { f->keep_bytes = cache_bytes; }
