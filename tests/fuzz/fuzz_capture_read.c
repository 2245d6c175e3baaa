/*
 * fuzz_capture_read — the capture reader (lsa_capture_read_open and its block reads) on hostile captures.
 * Mutating HDF5 bytes would mostly fuzz libhdf5's own parser, which lsa cannot fix; what lsa decides is
 * which attributes, types and shapes it accepts. So the input is a recipe: it says, for every attribute
 * and dataset the reader looks at, whether it is there, its HDF5 type (string, string array, integer,
 * integer array, float; a group instead of a dataset), its rank and shape, and the values (raw bytes,
 * so NaN and Inf occur). The file is written through lsa's own HDF5 writer, then opened and read whole.
 */
#include "fuzz_util.h"
#include "lsa/capture_read.h"
#include "lsa/h5.h"

#include <math.h>

/* An attribute on obj named name: absent, a string, a string array, an integer, an integer array or a
 * float; good_str / good_int are the plausible values. */
static void attr(struct lsa_h5w *w, struct fz_cur *c, const char *obj, const char *name, const char *good_str,
                 int64_t good_int)
{
    int kind = fz_u8(c) % 8;
    const char *strs[3] = {good_str ? good_str : "x", "lsa-capture", ""};
    int64_t ints[4] = {good_int, (int64_t)fz_u64(c, 8), 1, -1};
    switch (kind) {
    case 0: break; /* absent */
    case 1:
    case 2: /* the plausible value, most of the time */
        if (good_str) lsa_h5w_attr_str(w, obj, name, good_str);
        else lsa_h5w_attr_int(w, obj, name, good_int);
        break;
    case 3: lsa_h5w_attr_str(w, obj, name, fz_u8(c) & 1 ? "lsa-capture" : "garbage"); break;
    case 4: lsa_h5w_attr_strs(w, obj, name, strs, fz_u8(c) % 4); break;
    case 5: lsa_h5w_attr_int(w, obj, name, ints[fz_u8(c) % 4]); break;
    case 6: lsa_h5w_attr_i64(w, obj, name, ints, fz_u8(c) % 5); break;
    case 7: lsa_h5w_attr_f64(w, obj, name, (double)ints[1]); break;
    }
}

/* A dataset (or a group, or nothing) called name with a fuzzed type, rank, shape and contents. */
static void dataset(struct lsa_h5w *w, struct fz_cur *c, const char *name, int good_rank, const int64_t good_dims[])
{
    int kind = fz_u8(c) % 8;
    if (kind == 0) return;
    if (kind == 1) {
        lsa_h5w_group(w, name);
        return;
    }
    int rank = kind < 5 ? good_rank : 1 + fz_u8(c) % 4;
    int64_t dims[4], n = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = kind < 4 && i < good_rank ? good_dims[i] : fz_u8(c) % 6;
        n *= dims[i];
    }
    enum lsa_h5_type types[] = {LSA_H5_F16, LSA_H5_F32, LSA_H5_I32, LSA_H5_I64, LSA_H5_STR};
    enum lsa_h5_type t = types[fz_u8(c) % 5];
    if (n > 4096) n = 0, dims[0] = 0;
    /* values: raw input bytes as float bits (NaN, Inf, huge) or as small integers */
    float *f = calloc((size_t)n + 1, sizeof *f);
    int64_t *i64 = calloc((size_t)n + 1, sizeof *i64);
    int32_t *i32 = calloc((size_t)n + 1, sizeof *i32);
    const char **s = calloc((size_t)n + 1, sizeof *s);
    bool small = fz_u8(c) & 1;
    for (int64_t k = 0; k < n; k++) {
        uint64_t v = fz_u64(c, small ? 1 : 4);
        uint32_t bits = (uint32_t)v;
        memcpy(&f[k], &bits, 4);
        if (small) f[k] = (float)v;
        i64[k] = small ? (int64_t)(v % 20) - 2 : (int64_t)fz_u64(c, 8);
        i32[k] = (int32_t)i64[k];
        s[k] = k & 1 ? "a" : "";
    }
    const void *data = t == LSA_H5_STR ? (const void *)s : t == LSA_H5_I32 ? (const void *)i32
                       : t == LSA_H5_I64 ? (const void *)i64 : (const void *)f;
    if (fz_u8(c) & 1 && (t == LSA_H5_I64 || t == LSA_H5_F32)) { /* contiguous, written at once */
        double *dd = calloc((size_t)n + 1, sizeof *dd);
        for (int64_t k = 0; k < n; k++) dd[k] = f[k];
        if (t == LSA_H5_I64) lsa_h5w_array_i64(w, name, rank, dims, i64);
        else lsa_h5w_array_f64(w, name, rank, dims, dd);
        free(dd);
    } else {
        int grow = rank > 1 ? 1 : 0;
        int64_t chunk[4] = {1, 1 + fz_u8(c) % 4, 1, 1}, zero[4] = {0, 0, 0, 0};
        for (int i = 0; i < rank; i++)
            if (i != grow && dims[i] > 0) chunk[i] = dims[i];
        struct lsa_h5w_dset *d = lsa_h5w_dset(w, name, t, rank, dims, grow, chunk, fz_u8(c) % 3);
        if (d && n > 0) lsa_h5w_write(d, zero, dims, data);
    }
    free(f), free(i64), free(i32), free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_cur c = {data, size, 0};
    static char path[512];
    if (!path[0]) snprintf(path, sizeof path, "%s/c.h5", fz_folder());
    struct lsa_h5w *w = lsa_h5w_create(path);
    if (!w) abort();
    int64_t P = 1 + fz_u8(&c) % 4, N = fz_u8(&c) % 6, D = 1 + fz_u8(&c) % 4, S = 1 + fz_u8(&c) % 3;
    attr(w, &c, "/", "format", "lsa-capture", 0);
    attr(w, &c, "/", "format_version", NULL, 1);
    attr(w, &c, "/", "d_model", NULL, D);
    attr(w, &c, "/", "n_layers", NULL, P - 1);
    attr(w, &c, "/", "model_path", "/m", 0);
    attr(w, &c, "/", "model_type", "llama", 0);
    attr(w, &c, "/", "dtype", "f16", 0);
    int64_t rd[3] = {P, N, D}, td[1] = {N}, od[1] = {S + 1}, fd[2] = {N, D};
    dataset(w, &c, "/resid", 3, rd);
    dataset(w, &c, "/tokens", 1, td);
    dataset(w, &c, "/seq_offsets", 1, od);
    dataset(w, &c, "/resid_final", 2, fd);
    const char *names[] = {"embed", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "x", "y", "z"};
    int64_t index[6];
    for (int i = 0; i < 6; i++) index[i] = fz_u8(&c) & 1 ? i : (int64_t)fz_u64(&c, 8);
    switch (fz_u8(&c) % 4) {
    case 0: break;
    case 1: lsa_h5w_attr_strs(w, "/resid", "points", names, (size_t)P); break;
    default: lsa_h5w_attr_strs(w, "/resid", "points", names, fz_u8(&c) % 7); break;
    }
    switch (fz_u8(&c) % 4) {
    case 0: break;
    case 1: lsa_h5w_attr_i64(w, "/resid", "point_index", index, (size_t)P); break;
    case 2: lsa_h5w_attr_i64(w, "/resid", "point_index", index, fz_u8(&c) % 7); break;
    case 3: lsa_h5w_attr_strs(w, "/resid", "point_index", names, fz_u8(&c) % 7); break;
    }
    lsa_h5w_close(w); /* attributes on a missing /resid fail; that is part of the recipe */

    fz_clear_error();
    struct lsa_capture_reader *r = lsa_capture_read_open(path);
    if (!r) {
        fz_check_error("lsa_capture_read_open");
        return 0;
    }
    const struct lsa_capture_info *ci = lsa_capture_read_info(r);
    if (ci->n_points < 1 || ci->d_model < 1 || ci->n_tokens < 0 || ci->n_seqs < 0 || ci->chunk_tokens < 1) abort();
    for (int i = 0; i < ci->n_points; i++) (void)strlen(ci->point_names[i]);
    size_t per = (size_t)ci->n_points * (size_t)ci->d_model;
    float *buf = malloc((per + (size_t)ci->d_model) * (size_t)(ci->n_tokens + 1) * sizeof *buf);
    for (int64_t t0 = 0; t0 < ci->n_tokens; t0 += 2) {
        int64_t t1 = t0 + 2 < ci->n_tokens ? t0 + 2 : ci->n_tokens;
        if (lsa_capture_read_resid(r, t0, t1, buf) == 0)
            for (size_t k = 0; k < per * (size_t)(t1 - t0); k++)
                if (!isfinite(buf[k])) abort(); /* non-finite values must be reported, not returned */
        if (ci->has_final) (void)lsa_capture_read_final(r, t0, t1, buf);
    }
    (void)lsa_capture_read_resid(r, 0, ci->n_tokens + 1, buf); /* out of range: an error, not a read */
    int64_t *offs = malloc((size_t)(ci->n_seqs + 2) * sizeof *offs);
    (void)lsa_capture_read_offsets(r, 0, ci->n_seqs + 1, offs);
    (void)lsa_capture_read_offsets(r, 1, ci->n_seqs + 1, offs);
    free(offs);
    free(buf);
    lsa_capture_read_close(r);
    return 0;
}
