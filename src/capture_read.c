/*
 * capture_read.c — open and validate an "lsa-capture" file and read it in token blocks (see
 * include/lsa/capture_read.h). Everything goes through h5.c; this file only knows the layout.
 * It does not cache data: each read is one hyperslab straight into the caller's buffer.
 */
#include "lsa/capture_read.h"

#include "lsa/capture.h"
#include "lsa/h5.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lsa_capture_reader {
    struct lsa_h5 *f;
    struct lsa_capture_info info;
    char *path, *model_path, *model_type, *dtype;
    char **names;     /* (P) */
    size_t n_names;
    int64_t *index;   /* (P) */
};

void lsa_capture_read_close(struct lsa_capture_reader *r)
{
    if (!r) return;
    lsa_h5_close(r->f);
    free(r->path);
    free(r->model_path);
    free(r->model_type);
    free(r->dtype);
    lsa_h5_free_names(r->names, r->n_names);
    free(r->index);
    free(r);
}

const struct lsa_capture_info *lsa_capture_read_info(const struct lsa_capture_reader *r) { return &r->info; }

/* A scalar integer attribute on the root. */
static int root_int(struct lsa_capture_reader *r, const char *name, int64_t *v)
{
    int64_t *a = NULL;
    size_t n = 0;
    int rc = lsa_h5_attr_i64(r->f, "/", name, &a, &n);
    if (rc == 0 && n != 1) rc = lsa_err(LSA_EFORMAT, "%s: attribute %s has %zu values, expected 1", r->path, name, n);
    if (rc == 0) *v = a[0];
    free(a);
    return rc;
}

static int check_layout(struct lsa_capture_reader *r)
{
    const char *p = r->path;
    char *fmt = NULL;
    if (lsa_h5_attr_str(r->f, "/", "format", &fmt) || strcmp(fmt, LSA_CAPTURE_FORMAT) != 0) {
        free(fmt);
        return lsa_err(LSA_EFORMAT, "%s: not an lsa capture (no format=\"%s\" attribute)", p, LSA_CAPTURE_FORMAT);
    }
    free(fmt);
    int64_t ver, d_attr, n_layers;
    if (root_int(r, "format_version", &ver)) return LSA_EFORMAT;
    if (ver != LSA_CAPTURE_VERSION)
        return lsa_err(LSA_EUNSUP, "%s: capture format_version %lld, this lsa reads version %d", p, (long long)ver,
                       LSA_CAPTURE_VERSION);
    if (root_int(r, "d_model", &d_attr) || root_int(r, "n_layers", &n_layers)) return LSA_EFORMAT;
    if (lsa_h5_attr_str(r->f, "/", "model_path", &r->model_path) ||
        lsa_h5_attr_str(r->f, "/", "model_type", &r->model_type) || lsa_h5_attr_str(r->f, "/", "dtype", &r->dtype))
        return LSA_EFORMAT;

    int rank;
    int64_t dims[LSA_H5_MAX_RANK], chunk[LSA_H5_MAX_RANK];
    if (lsa_h5_shape(r->f, "/resid", &rank, dims)) return LSA_EFORMAT;
    if (rank != 3) return lsa_err(LSA_EFORMAT, "%s: /resid has rank %d, expected 3 [point, token, feature]", p, rank);
    int64_t P = dims[0], N = dims[1], D = dims[2];
    if (P < 1 || P > 4097 || D < 1 || D > (1 << 20))
        return lsa_err(LSA_EFORMAT, "%s: /resid has shape [%lld, %lld, %lld]: expected 1..4097 points and some features", p,
                       (long long)P, (long long)N, (long long)D);
    if (D != d_attr)
        return lsa_err(LSA_EFORMAT, "%s: /resid has %lld features, attribute d_model says %lld", p, (long long)D,
                       (long long)d_attr);
    if (lsa_h5_chunk(r->f, "/resid", &rank, chunk)) return LSA_EFORMAT;
    r->info.chunk_tokens = chunk[1] > 0 ? chunk[1] : 1024;

    if (lsa_h5_attr_strs(r->f, "/resid", "points", &r->names, &r->n_names)) return LSA_EFORMAT;
    size_t n_index = 0;
    if (lsa_h5_attr_i64(r->f, "/resid", "point_index", &r->index, &n_index)) return LSA_EFORMAT;
    if (r->n_names != (size_t)P || n_index != (size_t)P)
        return lsa_err(LSA_EFORMAT, "%s: /resid has %lld points but %zu names and %zu point_index entries", p,
                       (long long)P, r->n_names, n_index);
    for (int64_t i = 0; i < P; i++)
        if (r->index[i] < 0 || (i > 0 && r->index[i] <= r->index[i - 1]))
            return lsa_err(LSA_EFORMAT, "%s: /resid point_index is not increasing at entry %lld", p, (long long)i);

    if (lsa_h5_shape(r->f, "/tokens", &rank, dims)) return LSA_EFORMAT;
    if (rank != 1 || dims[0] != N)
        return lsa_err(LSA_EFORMAT, "%s: /tokens has %lld entries, /resid has %lld tokens", p, (long long)dims[0],
                       (long long)N);
    if (lsa_h5_shape(r->f, "/seq_offsets", &rank, dims)) return LSA_EFORMAT;
    if (rank != 1 || dims[0] < 1) return lsa_err(LSA_EFORMAT, "%s: /seq_offsets is empty", p);
    int64_t S = dims[0] - 1, first, last, one = 1, s0 = 0, s1 = S;
    if (lsa_h5_read_slab_i64(r->f, "/seq_offsets", 1, &s0, &one, &first) ||
        lsa_h5_read_slab_i64(r->f, "/seq_offsets", 1, &s1, &one, &last))
        return LSA_EFORMAT;
    if (first != 0 || last != N)
        return lsa_err(LSA_EFORMAT, "%s: /seq_offsets runs from %lld to %lld, expected 0 to %lld tokens", p,
                       (long long)first, (long long)last, (long long)N);
    r->info.has_final = lsa_h5_exists(r->f, "/resid_final");
    if (r->info.has_final) {
        if (lsa_h5_shape(r->f, "/resid_final", &rank, dims)) return LSA_EFORMAT;
        if (rank != 2 || dims[0] != N || dims[1] != D)
            return lsa_err(LSA_EFORMAT, "%s: /resid_final has shape [%lld, %lld], expected [%lld, %lld]", p,
                           (long long)dims[0], (long long)(rank > 1 ? dims[1] : 0), (long long)N, (long long)D);
    }
    r->info.n_points = (int)P;
    r->info.n_tokens = N;
    r->info.n_seqs = S;
    r->info.d_model = (int)D;
    r->info.n_layers = (int)n_layers;
    return 0;
}

struct lsa_capture_reader *lsa_capture_read_open(const char *path)
{
    struct lsa_capture_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    if (!(r->f = lsa_h5_open(path)) || check_layout(r)) {
        lsa_capture_read_close(r);
        return NULL;
    }
    r->info.path = r->path;
    r->info.model_path = r->model_path;
    r->info.model_type = r->model_type;
    r->info.dtype = r->dtype;
    r->info.point_names = (const char *const *)r->names;
    r->info.point_index = r->index;
    return r;
}

/* Whether x[0..n) are all finite: exponent bits not all set, tested on the bits so that it vectorises
 * (isfinite does not without -ffast-math); the slow scan for the message runs only when one is not. */
static bool all_finite(const float *x, size_t n)
{
    uint32_t bad = 0;
#pragma omp simd reduction(| : bad)
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

static int check_range(const struct lsa_capture_reader *r, int64_t t0, int64_t t1)
{
    if (t0 < 0 || t1 < t0 || t1 > r->info.n_tokens)
        return lsa_err(LSA_EINVAL, "%s: token range [%lld, %lld) outside 0..%lld", r->path, (long long)t0,
                       (long long)t1, (long long)r->info.n_tokens);
    return 0;
}

int lsa_capture_read_resid(struct lsa_capture_reader *r, int64_t t0, int64_t t1, float *out)
{
    int rc = check_range(r, t0, t1);
    if (rc) return rc;
    int64_t P = r->info.n_points, D = r->info.d_model, T = t1 - t0;
    int64_t start[3] = {0, t0, 0}, count[3] = {P, T, D};
    if ((rc = lsa_h5_read_slab_f32(r->f, "/resid", 3, start, count, out))) return rc;
    size_t n = (size_t)(P * T * D);
    bool finite = all_finite(out, n);
    for (size_t i = 0; !finite && i < n; i++)
        if (!isfinite(out[i])) {
            size_t per = (size_t)(T * D);
            return lsa_err(LSA_ENUM, "%s: /resid has a non-finite value (%g) at point %zu (%s), token %lld", r->path,
                           (double)out[i], i / per, r->names[i / per], (long long)(t0 + (int64_t)((i % per) / D)));
        }
    return 0;
}

int lsa_capture_read_final(struct lsa_capture_reader *r, int64_t t0, int64_t t1, float *out)
{
    if (!r->info.has_final) return lsa_err(LSA_EFORMAT, "%s: the capture has no /resid_final", r->path);
    int rc = check_range(r, t0, t1);
    if (rc) return rc;
    int64_t D = r->info.d_model, start[2] = {t0, 0}, count[2] = {t1 - t0, D};
    if ((rc = lsa_h5_read_slab_f32(r->f, "/resid_final", 2, start, count, out))) return rc;
    size_t n = (size_t)((t1 - t0) * D);
    bool finite = all_finite(out, n);
    for (size_t i = 0; !finite && i < n; i++)
        if (!isfinite(out[i]))
            return lsa_err(LSA_ENUM, "%s: /resid_final has a non-finite value (%g) at token %lld", r->path,
                           (double)out[i], (long long)(t0 + (int64_t)(i / (size_t)D)));
    return 0;
}

int lsa_capture_read_offsets(struct lsa_capture_reader *r, int64_t s0, int64_t s1, int64_t *out)
{
    if (s0 < 0 || s1 < s0 || s1 > r->info.n_seqs + 1)
        return lsa_err(LSA_EINVAL, "%s: sequence range [%lld, %lld) outside 0..%lld", r->path, (long long)s0,
                       (long long)s1, (long long)r->info.n_seqs + 1);
    int64_t count = s1 - s0;
    int rc = lsa_h5_read_slab_i64(r->f, "/seq_offsets", 1, &s0, &count, out);
    if (rc) return rc;
    for (int64_t i = 0; i < count; i++)
        if (out[i] < 0 || out[i] > r->info.n_tokens || (i > 0 && out[i] <= out[i - 1]))
            return lsa_err(LSA_EFORMAT, "%s: /seq_offsets[%lld] = %lld is out of order or outside 0..%lld", r->path,
                           (long long)(s0 + i), (long long)out[i], (long long)r->info.n_tokens);
    return 0;
}
