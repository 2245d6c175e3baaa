/*
 * capture.c — documents → windows → forward → HDF5, one window at a time. The layout is described in
 * include/lsa/capture.h and docs/capture-format.md. This file decides what goes where; h5.c does the I/O.
 *
 * Crashes and resuming: the file is written as <out>.partial and flushed every few seconds; each sequence
 * gets a row of /seq_checksums (its tokens, its stored data, the row itself). --resume re-reads the
 * interrupted run's <out>.partial, checks its recorded options, and writes a fresh <out>.partial-new in
 * which each window whose tokens match the interrupted run's is copied from the old file (its data
 * verified against the checksum) instead of computed; the first window that cannot be taken back (damaged
 * by the crash, or simply not there) and all after it are computed. When taking back stops, the new file
 * replaces the old one. The old file is only ever read: a crashed HDF5 file may have inconsistent
 * structures, and writing into it could spread the damage.
 */
#include "lsa/capture.h"

#include "lsa/h5.h"
#include "half.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES (1 << 20)
#define CHECKPOINT_DEFAULT 10.0 /* seconds between flushes of <out>.partial */

/* Taking back the sequences of an interrupted run (--resume). */
struct resume {
    struct lsa_h5 *src; /* <out>.partial of the interrupted run, read-only; NULL once taking back ended */
    int64_t n;          /* its sequences with an intact /seq_checksums row */
    int64_t *sums;      /* (n, 3) those rows */
    int64_t taken;      /* sequences copied from it */
    float *buf;         /* (ctx, d_model) one stored row of one window */
};

struct lsa_capture {
    const struct lsa_model *m;
    const struct lsa_tokenizer *tok;
    struct lsa_capture_opts o;
    struct lsa_plan *plan;   /* owned copy */
    char *path, *tmp;        /* the final name; the file being written (<out>.partial or <out>.partial-new) */
    char *partial, *staging; /* <out>.partial, <out>.partial-new */
    struct lsa_h5w *w;
    struct lsa_h5w_dset *tokens, *offsets, *texts, *resid, *final, *mid, *attn, *mlp, *logits, *nll, *sums;
    struct lsa_fwd *fwd;
    int ctx, d, V, n_pos; /* window, d_model, vocab, executed positions */
    bool bos;
    int *point_row; /* (n_pos + 1) row in resid for each point, -1 = not stored */
    int n_points;
    int64_t n_tok, n_seq;
    float *nll_buf;    /* (ctx) */
    float *logit_buf;  /* (ctx, V) when logits are captured */
    int64_t win_start; /* token offset of the window being written (for the hook) */
    uint64_t win_hash; /* checksum of what the window stored so far */
    uint16_t *half;    /* (ctx, d_model) one stored row as f16 bits, checksummed and written */
    struct resume res;
    double next_flush; /* monotonic seconds of the next checkpoint */
};

struct lsa_capture_opts lsa_capture_opts_default(void)
{
    return (struct lsa_capture_opts){.bos = -1, .components = LSA_CAP_RESID, .compress = 4};
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------------------------ checksums */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* A 64-bit checksum of n bytes (implementation-defined; only lsa reads it back). */
static uint64_t hash_bytes(uint64_t seed, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = mix(seed ^ (n * 0x9e3779b97f4a7c15ull)), w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, b + i, 8);
        h = (h ^ mix(w)) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
    }
    w = 0;
    memcpy(&w, b + i, n - i);
    return mix(h ^ w);
}

/* /seq_checksums column 0: FNV-1a 64 of the sequence's token ids as little-endian int32 (documented, so
 * that a notebook can recompute it). */
static uint64_t token_checksum(const int32_t *ids, int n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            h ^= ((uint32_t)ids[i] >> (8 * k)) & 0xff;
            h *= 0x100000001b3ull;
        }
    return h;
}

/* Column 2: the row's own check, so that a row damaged by a crash is never mistaken for other input. */
static uint64_t row_check(int64_t s, uint64_t tok, uint64_t data)
{
    return mix(mix((uint64_t)s ^ 0x6c73612d63617074ull) ^ tok) ^ mix(data + 0x9e3779b97f4a7c15ull);
}

/* What the checksum of stored data covers, one seed per dataset row. */
enum { SUM_RESID = 1, SUM_FINAL, SUM_MID, SUM_ATTN, SUM_MLP, SUM_LOGITS, SUM_NLL, SUM_TEXT };

/* Parse a --layers spec into point rows; n_points = count selected. */
static int parse_points(struct lsa_capture *c, const char *spec)
{
    int P = c->n_pos + 1;
    for (int i = 0; i < P; i++) c->point_row[i] = spec ? -1 : i;
    c->n_points = spec ? 0 : P;
    if (!spec) return 0;
    const char *s = spec;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s) goto bad;
        if (*end == '-') {
            const char *s2 = end + 1;
            b = strtol(s2, &end, 10);
            if (end == s2) goto bad;
        }
        if (a < 0 || b < a || b >= P)
            return lsa_err(LSA_EINVAL, "--layers %s: points are 0 (embed) .. %d (after the last layer)", spec, P - 1);
        for (long i = a; i <= b; i++) c->point_row[i] = 0;
        if (*end == ',') end++;
        else if (*end) goto bad;
        s = end;
    }
    for (int i = 0; i < P; i++) /* rows follow point order, whatever order the spec listed them in */
        if (c->point_row[i] == 0) c->point_row[i] = c->n_points++;
    return 0;
bad:
    return lsa_err(LSA_EINVAL, "--layers %s: expected point indices like 0-5,12", spec);
}

/* Rows [win_start, win_start + T) of one activation dataset (row < 0: the 2-D resid_final), and their
 * checksum, of the data as stored (f16 bits or f32), added to the window's. */
static int put_act(struct lsa_capture *c, struct lsa_h5w_dset *ds, int what, int row, const float *x, int T)
{
    int64_t start[3] = {row, c->win_start, 0}, count[3] = {1, T, c->d};
    int64_t *st = row < 0 ? start + 1 : start, *ct = row < 0 ? count + 1 : count;
    size_t n = (size_t)T * (size_t)c->d;
    uint64_t seed = (uint64_t)what << 32 | (uint32_t)(row + 1);
    if (c->o.f32) {
        c->win_hash += hash_bytes(seed, x, n * sizeof *x);
        return lsa_h5w_write(ds, st, ct, x);
    }
    lsa_half_encode(x, c->half, n);
    c->win_hash += hash_bytes(seed, c->half, n * sizeof *c->half);
    return lsa_h5w_write_half(ds, st, ct, c->half);
}

/* The forward checks the residual stream after each layer; the embedding and the final norm are checked
 * here, so that a NaN/Inf weight there is caught too (and named). */
static int check_finite(const struct lsa_capture *c, const char *where, const float *x, int T, int d)
{
    if (c->o.allow_nonfinite) return 0;
    for (size_t i = 0; i < (size_t)T * (size_t)d; i++)
        if (!isfinite(x[i]))
            return lsa_err(LSA_ENUM, "non-finite activation (%s) in %s at token %zu, feature %zu",
                           isnan(x[i]) ? "NaN" : "Inf", where, i / (size_t)d, i % (size_t)d);
    return 0;
}

static int hook(void *ctx, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    struct lsa_capture *c = ctx;
    int rc = pt == LSA_PT_EMBED        ? check_finite(c, "the embedding output", x, T, d)
             : pt == LSA_PT_FINAL_NORM ? check_finite(c, "the final norm's output", x, T, d)
                                       : 0;
    if (rc) return rc;
    switch (pt) {
    case LSA_PT_EMBED:
    case LSA_PT_RESID_POST: {
        int row = c->point_row[pt == LSA_PT_EMBED ? 0 : pos + 1];
        return row < 0 ? 0 : put_act(c, c->resid, SUM_RESID, row, x, T);
    }
    case LSA_PT_FINAL_NORM:
        return put_act(c, c->final, SUM_FINAL, -1, x, T);
    case LSA_PT_RESID_MID:
        return put_act(c, c->mid, SUM_MID, pos, x, T);
    case LSA_PT_ATTN_OUT:
        return put_act(c, c->attn, SUM_ATTN, pos, x, T);
    case LSA_PT_MLP_OUT:
        return put_act(c, c->mlp, SUM_MLP, pos, x, T);
    }
    return 0;
}

static struct lsa_h5w_dset *act_dset(struct lsa_capture *c, const char *name, int64_t rows, const char *axis0)
{
    enum lsa_h5_type t = c->o.f32 ? LSA_H5_F32 : LSA_H5_F16;
    int64_t per = CHUNK_BYTES / ((int64_t)c->d * (c->o.f32 ? 4 : 2));
    if (per < 1) per = 1;
    struct lsa_h5w_dset *ds;
    if (rows < 0) {
        int64_t dims[2] = {0, c->d}, chunk[2] = {per, c->d};
        ds = lsa_h5w_dset(c->w, name, t, 2, dims, 0, chunk, c->o.compress);
        const char *axes[] = {"token", "feature"};
        if (ds) lsa_h5w_attr_strs(c->w, name, "axes", axes, 2);
    } else {
        int64_t dims[3] = {rows, 0, c->d}, chunk[3] = {1, per, c->d};
        ds = lsa_h5w_dset(c->w, name, t, 3, dims, 1, chunk, c->o.compress);
        const char *axes[] = {axis0, "token", "feature"};
        if (ds) lsa_h5w_attr_strs(c->w, name, "axes", axes, 3);
    }
    /* deflate on every core between windows (chunkstage.h), not inside HDF5 during the forward; same file */
    if (ds && c->o.compress > 0 && lsa_h5w_dset_stage(ds)) return NULL;
    return ds;
}

/* TransformerLens-style names of the stored residual points. */
static int write_point_names(struct lsa_capture *c)
{
    const char **names = calloc((size_t)c->n_points + 1, sizeof *names);
    int64_t *index = calloc((size_t)c->n_points + 1, sizeof *index);
    char *store = calloc((size_t)c->n_points + 1, 48);
    int rc = 0;
    if (!names || !index || !store) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; !rc && i <= c->n_pos; i++) {
        int row = c->point_row[i];
        if (row < 0) continue;
        char *s = store + (size_t)row * 48;
        if (i == 0) snprintf(s, 48, "embed");
        else snprintf(s, 48, "blocks.%d.hook_resid_post", i - 1);
        names[row] = s;
        index[row] = i;
    }
    if (!rc) rc = lsa_h5w_attr_strs(c->w, "/resid", "points", names, (size_t)c->n_points);
    if (!rc) rc = lsa_h5w_attr_i64(c->w, "/resid", "point_index", index, (size_t)c->n_points);
    free(names);
    free(index);
    free(store);
    return rc;
}

static int write_root_attrs(struct lsa_capture *c)
{
    const struct lsa_arch *a = lsa_model_arch(c->m);
    struct lsa_h5w *w = c->w;
    char created[32];
    time_t now = time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    int64_t v;
    int rc = lsa_h5w_attr_str(w, "/", "format", LSA_CAPTURE_FORMAT);
    v = LSA_CAPTURE_VERSION;
    if (!rc) rc = lsa_h5w_attr_int(w, "/", "format_version", v);
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "lsa_version", LSA_VERSION);
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "lsa_commit", lsa_commit());
    /* absolute, so that a report run from another folder finds the model again */
    char *abs = realpath(lsa_model_path(c->m), NULL);
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "model_path", abs ? abs : lsa_model_path(c->m));
    free(abs);
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "model_type", a->model_type);
    int64_t dims[] = {a->n_layer, a->d_model, a->n_vocab, a->n_head, c->ctx, c->bos};
    const char *dn[] = {"n_layers", "d_model", "n_vocab", "n_heads", "ctx", "bos"};
    for (int i = 0; i < 6 && !rc; i++) rc = lsa_h5w_attr_int(w, "/", dn[i], dims[i]);
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "dtype", c->o.f32 ? "f32" : "f16");
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "weight_dtype", a->dtype);
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "created", created);
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "command", c->o.command ? c->o.command : "");
    if (!rc) rc = lsa_h5w_attr_str(w, "/", "tokenizer", lsa_tokenizer_kind_name(c->tok));
    int64_t *arr = calloc((size_t)c->n_pos + 1, sizeof *arr);
    if (!arr) return lsa_err(LSA_ENOMEM, "out of memory");
    for (int k = 0; k < 3 && !rc; k++) {
        for (int i = 0; i < c->n_pos; i++)
            arr[i] = k == 0 ? c->plan->layer[i] : k == 1 ? c->plan->drop_attn[i] : c->plan->drop_mlp[i];
        static const char *nm[] = {"layer_order", "drop_attn", "drop_mlp"};
        rc = lsa_h5w_attr_i64(w, "/", nm[k], arr, (size_t)c->n_pos);
    }
    free(arr);
    return rc;
}

/* ------------------------------------------------------------------ resuming */

/* Compare an integer (array) attribute of the interrupted run with this run's value. */
static int same_ints(struct lsa_capture *c, const char *obj, const char *name, const int64_t *want, size_t n,
                     const char *what)
{
    int64_t *got = NULL;
    size_t m = 0;
    int rc = lsa_h5_attr_i64(c->res.src, obj, name, &got, &m);
    bool same = !rc && m == n && (n == 0 || memcmp(got, want, n * sizeof *want) == 0);
    char g[128] = "", w[128] = "";
    for (size_t i = 0; !same && !rc && i < m && strlen(g) < 100; i++)
        snprintf(g + strlen(g), sizeof g - strlen(g), "%s%lld", i ? "," : "", (long long)got[i]);
    for (size_t i = 0; !same && !rc && i < n && strlen(w) < 100; i++)
        snprintf(w + strlen(w), sizeof w - strlen(w), "%s%lld", i ? "," : "", (long long)want[i]);
    free(got);
    if (rc) return lsa_err_wrap(rc, "%s: cannot resume", c->partial);
    if (!same)
        return lsa_err(LSA_EINVAL,
                       "%s: the interrupted run used %s %s, this run %s: resume with the same model "
                       "and options, or remove the file to start afresh",
                       c->partial, what, g, w);
    return 0;
}

/* The options recorded in the interrupted run's file must be this run's. */
static int check_recorded(struct lsa_capture *c)
{
    const struct lsa_arch *a = lsa_model_arch(c->m);
    struct lsa_h5 *f = c->res.src;
    char *fmt = NULL, *model = NULL, *dtype = NULL, *abs = realpath(lsa_model_path(c->m), NULL);
    const char *mp = abs ? abs : lsa_model_path(c->m), *dt = c->o.f32 ? "f32" : "f16";
    int rc = 0;
    if (lsa_h5_attr_str(f, "/", "format", &fmt) || strcmp(fmt, LSA_CAPTURE_FORMAT) ||
        !lsa_h5_exists(f, "/seq_checksums"))
        rc = lsa_err(LSA_EFORMAT, "%s: not a resumable lsa capture (remove it to start afresh)", c->partial);
    else if (lsa_h5_attr_str(f, "/", "model_path", &model) || lsa_h5_attr_str(f, "/", "dtype", &dtype))
        rc = lsa_err_wrap(LSA_EFORMAT, "%s: cannot resume", c->partial);
    else if (strcmp(model, mp))
        rc = lsa_err(LSA_EINVAL,
                     "%s: the interrupted run used the model %s, this run %s: resume with the same "
                     "model and options, or remove the file to start afresh",
                     c->partial, model, mp);
    else if (strcmp(dtype, dt))
        rc = lsa_err(LSA_EINVAL,
                     "%s: the interrupted run used --dtype %s, this run --dtype %s: resume with the "
                     "same model and options, or remove the file to start afresh",
                     c->partial, dtype, dt);
    free(fmt), free(model), free(dtype), free(abs);
    static const char *const names[] = {"n_layers", "d_model", "n_vocab", "ctx", "bos"};
    static const char *const whats[] = {"n_layers", "d_model", "n_vocab", "--ctx", "bos (--bos/--no-bos)"};
    int64_t vals[] = {a->n_layer, a->d_model, a->n_vocab, c->ctx, c->bos};
    for (int i = 0; i < 5 && !rc; i++) rc = same_ints(c, "/", names[i], &vals[i], 1, whats[i]);
    int64_t *arr = calloc((size_t)c->n_pos + 1, sizeof *arr);
    if (!rc && !arr) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int k = 0; k < 3 && !rc; k++) {
        static const char *const nm[] = {"layer_order", "drop_attn", "drop_mlp"};
        for (int i = 0; i < c->n_pos; i++)
            arr[i] = k == 0 ? c->plan->layer[i] : k == 1 ? c->plan->drop_attn[i] : c->plan->drop_mlp[i];
        rc = same_ints(c, "/", nm[k], arr, (size_t)c->n_pos, k == 0 ? "the layer plan (layer_order)" : nm[k]);
    }
    int n = 0;
    for (int i = 0; i <= c->n_pos && !rc; i++)
        if (c->point_row[i] >= 0) arr[n++] = i;
    if (!rc) rc = same_ints(c, "/resid", "point_index", arr, (size_t)n, "the points (--layers)");
    free(arr);
    static const char *const comp[] = {"/resid_mid", "/attn_out", "/mlp_out", "/logits"};
    static const unsigned bit[] = {LSA_CAP_MID, LSA_CAP_ATTN, LSA_CAP_MLP, LSA_CAP_LOGITS};
    for (int i = 0; i < 4 && !rc; i++)
        if (lsa_h5_exists(f, comp[i]) != !!(c->o.components & bit[i]))
            rc = lsa_err(LSA_EINVAL,
                         "%s: the interrupted run %s %s, this run %s (--components): resume with the same "
                         "model and options, or remove the file to start afresh",
                         c->partial, lsa_h5_exists(f, comp[i]) ? "stored" : "did not store", comp[i] + 1,
                         (c->o.components & bit[i]) ? "does" : "does not");
    return rc;
}

/* Open the interrupted run's file, check it, and read its intact checksum rows. */
static int resume_open(struct lsa_capture *c)
{
    struct resume *r = &c->res;
    if (!(r->src = lsa_h5_open(c->partial)))
        return lsa_err_wrap(LSA_EFORMAT, "cannot resume (remove %s to start afresh)", c->partial);
    /* windows are read back one by one: keep every chunk of a window's rows decompressed (two token
     * chunks across all rows of the widest dataset, ~1 MiB each) */
    int rows = c->n_points > c->n_pos ? c->n_points : c->n_pos;
    lsa_h5_keep_open(r->src, ((size_t)2 * (size_t)rows + 2) * (size_t)CHUNK_BYTES + ((size_t)1 << 20));
    int rc = check_recorded(c), rank;
    int64_t dims[LSA_H5_MAX_RANK];
    size_t n = 0;
    if (!rc && (lsa_h5_shape(r->src, "/seq_checksums", &rank, dims) || rank != 2 || dims[1] != 3))
        rc = lsa_err(LSA_EFORMAT,
                     "%s: /seq_checksums should be [sequences, 3]: cannot resume (remove it to start "
                     "afresh)",
                     c->partial);
    if (!rc && dims[0] > 0 && lsa_h5_read_i64(r->src, "/seq_checksums", &r->sums, &n)) r->sums = NULL, n = 0;
    /* rows after the first damaged one are not trusted either */
    for (r->n = 0; !rc && r->n < (int64_t)n / 3; r->n++) {
        const int64_t *row = r->sums + 3 * r->n;
        if ((uint64_t)row[2] != row_check(r->n, (uint64_t)row[0], (uint64_t)row[1])) break;
    }
    if (!rc && !(r->buf = malloc((size_t)c->ctx * (size_t)c->d * sizeof *r->buf)))
        rc = lsa_err(LSA_ENOMEM, "out of memory");
    return rc;
}

/* Stop taking back: close the old file and let the new one take its name. */
static int resume_end(struct lsa_capture *c)
{
    if (!c->res.src) return 0;
    lsa_h5_close(c->res.src);
    c->res.src = NULL;
    int rc = lsa_h5w_flush(c->w);
    if (!rc && rename(c->staging, c->partial) != 0)
        rc = lsa_err(LSA_EIO, "%s: cannot rename to %s: %s", c->staging, c->partial, strerror(errno));
    if (!rc) c->tmp = c->partial;
    if (!rc) rc = lsa_h5w_renamed(c->w, c->partial);
    c->next_flush = now_s() + (c->o.checkpoint_seconds > 0 ? c->o.checkpoint_seconds : CHECKPOINT_DEFAULT);
    return rc;
}

/* ------------------------------------------------------------------ opening */

/* The datasets, their axes and the root attributes of a new file at c->tmp. */
static int create_file(struct lsa_capture *c)
{
    const struct lsa_capture_opts *o = &c->o;
    if (!(c->w = lsa_h5w_create(c->tmp))) return lsa_err_wrap(LSA_EIO, "%s", c->path);
    int rc = 0;
    int64_t zero = 0, big = 1 << 16, d1[1] = {0}, ch[1] = {big}, chs[1] = {256};
    int64_t ds[2] = {0, 3}, cs[2] = {4096, 3};
    const char *tok_axes[] = {"token"}, *seq_axes[] = {"sequence"}, *sum_axes[] = {"sequence", "checksum"};
    c->tokens = lsa_h5w_dset(c->w, "tokens", LSA_H5_I32, 1, d1, 0, ch, o->compress);
    /* nll and seq_checksums stay uncompressed: their chunks never move, so a crash cannot damage the rows
     * flushed before it (float noise compresses little anyway) */
    c->nll = lsa_h5w_dset(c->w, "nll", LSA_H5_F32, 1, d1, 0, ch, 0);
    c->offsets = lsa_h5w_dset(c->w, "seq_offsets", LSA_H5_I64, 1, d1, 0, ch, o->compress);
    c->texts = lsa_h5w_dset(c->w, "texts", LSA_H5_STR, 1, d1, 0, chs, 0);
    c->sums = lsa_h5w_dset(c->w, "seq_checksums", LSA_H5_I64, 2, ds, 0, cs, 0);
    c->resid = act_dset(c, "resid", c->n_points, "point");
    c->final = act_dset(c, "resid_final", -1, NULL);
    if (o->components & LSA_CAP_MID) c->mid = act_dset(c, "resid_mid", c->n_pos, "layer");
    if (o->components & LSA_CAP_ATTN) c->attn = act_dset(c, "attn_out", c->n_pos, "layer");
    if (o->components & LSA_CAP_MLP) c->mlp = act_dset(c, "mlp_out", c->n_pos, "layer");
    if (o->components & LSA_CAP_LOGITS) {
        int64_t per = CHUNK_BYTES / ((int64_t)c->V * 4), dims[2] = {0, c->V}, chunk[2] = {per < 1 ? 1 : per, c->V};
        c->logits = lsa_h5w_dset(c->w, "logits", LSA_H5_F32, 2, dims, 0, chunk, o->compress);
        const char *ax[] = {"token", "vocab"};
        if (c->logits) rc = lsa_h5w_attr_strs(c->w, "/logits", "axes", ax, 2);
    }
    if (!c->tokens || !c->nll || !c->offsets || !c->texts || !c->sums || !c->resid || !c->final ||
        ((o->components & LSA_CAP_MID) && !c->mid) || ((o->components & LSA_CAP_ATTN) && !c->attn) ||
        ((o->components & LSA_CAP_MLP) && !c->mlp) || ((o->components & LSA_CAP_LOGITS) && !c->logits))
        rc = LSA_EIO;
    if (!rc) rc = lsa_h5w_attr_strs(c->w, "/tokens", "axes", tok_axes, 1);
    if (!rc) rc = lsa_h5w_attr_strs(c->w, "/nll", "axes", tok_axes, 1);
    if (!rc) rc = lsa_h5w_attr_strs(c->w, "/texts", "axes", seq_axes, 1);
    if (!rc) rc = lsa_h5w_attr_strs(c->w, "/seq_checksums", "axes", sum_axes, 2);
    int64_t st[1] = {0}, ct[1] = {1};
    if (!rc) rc = lsa_h5w_write(c->offsets, st, ct, &zero);
    if (!rc) rc = write_point_names(c);
    if (!rc) rc = write_root_attrs(c);
    if (!rc) rc = lsa_h5w_flush(c->w);
    return rc;
}

static char *with_suffix(const char *path, const char *suffix)
{
    char *s = malloc(strlen(path) + strlen(suffix) + 1);
    if (s) strcat(strcpy(s, path), suffix);
    return s;
}

struct lsa_capture *lsa_capture_open(const char *path, const struct lsa_model *m, const struct lsa_capture_opts *o)
{
    const struct lsa_arch *a = lsa_model_arch(m);
    const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
    if (!tok) {
        lsa_err(LSA_EUNSUP, "%s: no tokenizer found beside the model", lsa_model_path(m));
        return NULL;
    }
    struct lsa_capture *c = calloc(1, sizeof *c);
    if (!c) {
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    c->m = m;
    c->tok = tok;
    c->o = *o;
    c->d = a->d_model;
    c->V = a->n_vocab;
    int rc = 0;
    c->ctx = o->ctx > 0 ? o->ctx : (a->n_ctx < 1024 ? a->n_ctx : 1024);
    if (a->pos == LSA_POS_LEARNED && c->ctx > a->n_ctx)
        rc = lsa_err(LSA_EINVAL, "--ctx %d exceeds the model's %d learned positions", c->ctx, a->n_ctx);
    c->bos = o->bos < 0 ? lsa_tokenizer_adds_bos(tok) : o->bos;
    if (!rc && c->bos && lsa_tokenizer_bos(tok) < 0) rc = lsa_err(LSA_EINVAL, "--bos: the tokenizer has no BOS token");
    if (!rc && c->ctx < 1 + c->bos) rc = lsa_err(LSA_EINVAL, "--ctx %d is too small", c->ctx);
    if (!rc && (o->compress < 0 || o->compress > 9)) rc = lsa_err(LSA_EINVAL, "--compress %d: use 0..9", o->compress);
    if (!rc) {
        c->plan = o->plan ? lsa_plan_new(o->plan->n) : lsa_plan_identity(a->n_layer);
        if (!c->plan) rc = LSA_ENOMEM;
        else if (o->plan) {
            for (int i = 0; i < o->plan->n; i++) {
                c->plan->layer[i] = o->plan->layer[i];
                c->plan->drop_attn[i] = o->plan->drop_attn[i];
                c->plan->drop_mlp[i] = o->plan->drop_mlp[i];
                c->plan->group[i] = o->plan->group[i];
            }
        }
    }
    if (!rc) rc = lsa_plan_check(c->plan, a->n_layer);
    if (!rc) {
        c->n_pos = c->plan->n;
        c->point_row = calloc((size_t)c->n_pos + 1, sizeof *c->point_row);
        c->nll_buf = calloc((size_t)c->ctx, sizeof *c->nll_buf);
        c->half = malloc((size_t)c->ctx * (size_t)c->d * sizeof *c->half);
        if ((o->components & LSA_CAP_LOGITS)) c->logit_buf = malloc((size_t)c->ctx * c->V * sizeof *c->logit_buf);
        c->path = strdup(path);
        c->partial = with_suffix(path, ".partial");
        c->staging = with_suffix(path, ".partial-new");
        if (!c->point_row || !c->nll_buf || !c->half || !c->path || !c->partial || !c->staging ||
            ((o->components & LSA_CAP_LOGITS) && !c->logit_buf))
            rc = lsa_err(LSA_ENOMEM, "out of memory");
    }
    if (!rc) rc = parse_points(c, o->layers);
    if (!rc && !(c->fwd = lsa_fwd_new(m, c->ctx))) rc = LSA_ENOMEM;
    struct stat st;
    if (!rc && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rc = lsa_err(LSA_EINVAL, "%s: is a directory (--out names the capture file to write)", path);
    bool have_partial = !rc && lstat(c->partial, &st) == 0;
    if (have_partial && !o->resume)
        rc = lsa_err(LSA_EINVAL,
                     "%s exists: an interrupted capture? Run the same command with --resume to continue "
                     "it, or remove the file to start afresh",
                     c->partial);
    if (have_partial && !rc) rc = resume_open(c);
    if (!rc) {
        c->tmp = c->staging; /* a file appears as <out>.partial only once it can be opened */
        rc = create_file(c);
    }
    if (!rc && c->res.src && c->res.n == 0) rc = resume_end(c); /* nothing to take back */
    if (!rc && !c->res.src && c->tmp == c->staging) {
        if (rename(c->staging, c->partial) != 0)
            rc = lsa_err(LSA_EIO, "%s: cannot rename to %s: %s", c->staging, c->partial, strerror(errno));
        else c->tmp = c->partial;
        if (!rc) rc = lsa_h5w_renamed(c->w, c->partial);
    }
    c->next_flush = now_s() + (o->checkpoint_seconds > 0 ? o->checkpoint_seconds : CHECKPOINT_DEFAULT);
    if (rc) {
        lsa_capture_abort(c);
        return NULL;
    }
    return c;
}

/* ------------------------------------------------------------------ windows */

/* After the activations: tokens, nll, logits, text, offsets and the checksum row of the window. */
static int put_window(struct lsa_capture *c, const int32_t *ids, int n, const char *text)
{
    int64_t st[2] = {c->n_tok, 0}, ct[2] = {n, c->V}, s1[1] = {c->n_seq}, c1[1] = {1}, so[1] = {c->n_seq + 1};
    int64_t end = c->n_tok + n, rs[2] = {c->n_seq, 0}, rc3[2] = {1, 3};
    c->win_hash += hash_bytes((uint64_t)SUM_NLL << 32, c->nll_buf, (size_t)n * sizeof *c->nll_buf);
    if (c->logits)
        c->win_hash += hash_bytes((uint64_t)SUM_LOGITS << 32, c->logit_buf, (size_t)n * (size_t)c->V * sizeof(float));
    c->win_hash += hash_bytes((uint64_t)SUM_TEXT << 32, text, strlen(text));
    uint64_t th = token_checksum(ids, n);
    int64_t row[3] = {(int64_t)th, (int64_t)c->win_hash, (int64_t)row_check(c->n_seq, th, c->win_hash)};
    int rc;
    if ((rc = lsa_h5w_write(c->tokens, st, ct, ids)) || (rc = lsa_h5w_write(c->nll, st, ct, c->nll_buf)) ||
        (c->logits && (rc = lsa_h5w_write(c->logits, st, ct, c->logit_buf))) ||
        (rc = lsa_h5w_write(c->texts, s1, c1, &text)) || (rc = lsa_h5w_write(c->offsets, so, c1, &end)) ||
        (rc = lsa_h5w_write(c->sums, rs, rc3, row)) || (rc = lsa_h5w_commit(c->w, end)))
        return rc;
    c->n_tok = end;
    c->n_seq++;
    if (c->o.progress) c->o.progress(c->o.progress_ctx, c->n_tok);
    return 0;
}

/* Capture one window of n tokens whose text is `text`. */
static int capture_window(struct lsa_capture *c, const int32_t *ids, int n, const char *text, const char *source)
{
    struct lsa_fwd_request req = {
        .plan = c->plan,
        .points = LSA_PT_EMBED | LSA_PT_RESID_POST | LSA_PT_FINAL_NORM | (c->mid ? LSA_PT_RESID_MID : 0) |
                  (c->attn ? LSA_PT_ATTN_OUT : 0) | (c->mlp ? LSA_PT_MLP_OUT : 0),
        .hook = hook,
        .hook_ctx = c,
        .nll = c->nll_buf,
        .logits = c->logit_buf,
        .allow_nonfinite = c->o.allow_nonfinite,
    };
    c->win_start = c->n_tok;
    c->win_hash = 0;
    int rc = lsa_fwd_run(c->fwd, ids, n, &req);
    if (rc == LSA_ENUM)
        return lsa_err_wrap(rc, "%s: sequence %lld (use --allow-nonfinite to store it anyway)", source,
                            (long long)c->n_seq);
    if (rc) return rc;
    c->nll_buf[n - 1] = NAN;
    return put_window(c, ids, n, text);
}

/* One row (row < 0: 2-D) of a dataset of the interrupted run, for this window, into the new file: 0 when
 * copied, 1 when the old file cannot give it, < 0 when the new file failed. */
static int take_act(struct lsa_capture *c, struct lsa_h5w_dset *ds, const char *name, int what, int row, int T)
{
    int64_t start[3] = {row, c->win_start, 0}, count[3] = {1, T, c->d};
    if (row < 0 ? lsa_h5_read_slab_f32(c->res.src, name, 2, start + 1, count + 1, c->res.buf)
                : lsa_h5_read_slab_f32(c->res.src, name, 3, start, count, c->res.buf))
        return 1;
    return put_act(c, ds, what, row, c->res.buf, T);
}

/*
 * Take this window from the interrupted run instead of computing it: 1 when taken, 0 when its stored data
 * do not verify (damaged by the crash: compute it and stop taking back), < 0 on error. Whatever a failed
 * take wrote is overwritten by the computed window, which covers the same rows.
 */
static int take_window(struct lsa_capture *c, const int32_t *ids, int n, const char *text, const char *source)
{
    const int64_t *row = c->res.sums + 3 * c->n_seq;
    if ((uint64_t)row[0] != token_checksum(ids, n))
        return lsa_err(LSA_EINVAL,
                       "%s: input differs from the interrupted run at sequence %lld (%s): resume with "
                       "the same inputs, or remove the file to start afresh",
                       c->partial, (long long)c->n_seq, source);
    c->win_start = c->n_tok;
    c->win_hash = 0;
    int rc = 0;
    for (int i = 0; i <= c->n_pos && !rc; i++)
        if (c->point_row[i] >= 0) rc = take_act(c, c->resid, "/resid", SUM_RESID, c->point_row[i], n);
    if (!rc) rc = take_act(c, c->final, "/resid_final", SUM_FINAL, -1, n);
    for (int l = 0; l < c->n_pos && !rc; l++) {
        if (c->mid) rc = take_act(c, c->mid, "/resid_mid", SUM_MID, l, n);
        if (!rc && c->attn) rc = take_act(c, c->attn, "/attn_out", SUM_ATTN, l, n);
        if (!rc && c->mlp) rc = take_act(c, c->mlp, "/mlp_out", SUM_MLP, l, n);
    }
    int64_t st[2] = {c->n_tok, 0}, ct[2] = {n, c->V};
    if (!rc && c->logits && lsa_h5_read_slab_f32(c->res.src, "/logits", 2, st, ct, c->logit_buf)) rc = 1;
    if (!rc && lsa_h5_read_slab_f32(c->res.src, "/nll", 1, st, ct, c->nll_buf)) rc = 1;
    if (rc) return rc < 0 ? rc : 0; /* < 0: the new file failed; 1: the old one cannot give this window */
    uint64_t h = c->win_hash;       /* what put_window will add, computed ahead to verify before writing */
    h += hash_bytes((uint64_t)SUM_NLL << 32, c->nll_buf, (size_t)n * sizeof *c->nll_buf);
    if (c->logits) h += hash_bytes((uint64_t)SUM_LOGITS << 32, c->logit_buf, (size_t)n * (size_t)c->V * sizeof(float));
    h += hash_bytes((uint64_t)SUM_TEXT << 32, text, strlen(text));
    if (h != (uint64_t)row[1]) return 0;
    if ((rc = put_window(c, ids, n, text))) return rc;
    c->res.taken++;
    return 1;
}

/* A window: taken back from the interrupted run while that works, else computed; then maybe a checkpoint. */
static int do_window(struct lsa_capture *c, const int32_t *ids, int n, const char *text, const char *source)
{
    int rc = 0;
    if (c->res.src && c->n_seq < c->res.n) {
        int took = take_window(c, ids, n, text, source);
        if (took < 0) return took;
        if (took && c->n_seq < c->res.n) return 0;
        if ((rc = resume_end(c)) || took) return rc; /* taking back ends here: the last one, or a damaged one */
    }
    if ((rc = capture_window(c, ids, n, text, source))) return rc;
    double t = now_s();
    if (t < c->next_flush || c->res.src) return 0;
    rc = lsa_h5w_flush(c->w);
    /* by default, flushing takes at most ~5% of the time; an interval that was asked for is kept */
    double took = now_s() - t, every = c->o.checkpoint_seconds > 0 ? c->o.checkpoint_seconds : CHECKPOINT_DEFAULT;
    c->next_flush = now_s() + (c->o.checkpoint_seconds > 0 || every > 20 * took ? every : 20 * took);
    return rc;
}

int lsa_capture_add(struct lsa_capture *c, const char *text, size_t len, const char *source)
{
    if (lsa_capture_full(c)) return 0;
    const char *nul = memchr(text, 0, len);
    if (nul)
        return lsa_err(LSA_ETEXT, "%s: NUL byte at byte %zu: text must not contain NUL (a binary or UTF-16 file?)",
                       source, (size_t)(nul - text));
    int32_t *ids = NULL, *win = NULL;
    size_t n = 0;
    int rc = lsa_tokenizer_encode(c->tok, text, len, false, &ids, &n);
    if (rc) return lsa_err_wrap(rc, "%s", source);
    if (n == 0) {
        free(ids);
        return 0;
    }
    int body = c->ctx - (c->bos ? 1 : 0);
    size_t n_win = (n + (size_t)body - 1) / (size_t)body;
    if (!(win = malloc((size_t)c->ctx * sizeof *win))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (size_t k = 0; k < n_win && !rc && !lsa_capture_full(c); k++) {
        size_t from = k * (size_t)body, m = n - from < (size_t)body ? n - from : (size_t)body;
        int t = 0;
        if (c->bos) win[t++] = lsa_tokenizer_bos(c->tok);
        memcpy(win + t, ids + from, m * sizeof *win);
        t += (int)m;
        if (c->o.max_tokens && c->n_tok + t > c->o.max_tokens) t = (int)(c->o.max_tokens - c->n_tok);
        if (t < 1) break;
        char *wtext = NULL;
        size_t wlen;
        if (n_win > 1 || t < (int)m + (c->bos ? 1 : 0)) {
            rc = lsa_tokenizer_decode(c->tok, win, (size_t)t, true, &wtext, &wlen);
            if (rc) break;
        } else {
            if (!(wtext = malloc(len + 1))) {
                rc = lsa_err(LSA_ENOMEM, "out of memory");
                break;
            }
            memcpy(wtext, text, len);
            wtext[len] = 0;
        }
        rc = do_window(c, win, t, wtext, source);
        free(wtext);
    }
    free(win);
    free(ids);
    return rc;
}

bool lsa_capture_full(const struct lsa_capture *c) { return c->o.max_tokens && c->n_tok >= c->o.max_tokens; }
int64_t lsa_capture_n_tokens(const struct lsa_capture *c) { return c->n_tok; }
int64_t lsa_capture_n_seqs(const struct lsa_capture *c) { return c->n_seq; }
int64_t lsa_capture_n_resumed(const struct lsa_capture *c) { return c->res.taken; }

/* ------------------------------------------------------------------ closing */

static void free_capture(struct lsa_capture *c)
{
    lsa_h5_close(c->res.src);
    free(c->res.sums);
    free(c->res.buf);
    lsa_fwd_free(c->fwd);
    lsa_plan_free(c->plan);
    free(c->point_row);
    free(c->nll_buf);
    free(c->logit_buf);
    free(c->half);
    free(c->path);
    free(c->partial);
    free(c->staging);
    free(c);
}

/* After a failure: close the file; remove it, except that a --resume run keeps <out>.partial (the
 * interrupted run's, or its continuation) for another try. */
static void drop(struct lsa_capture *c)
{
    char keep[1024];
    snprintf(keep, sizeof keep, "%s", lsa_errmsg()); /* closing must not replace the real error */
    if (c->w) lsa_h5w_close(c->w);
    c->w = NULL;
    if (c->tmp && (!c->o.resume || strcmp(c->tmp, c->partial))) unlink(c->tmp);
    lsa_err(LSA_EIO, "%s", keep);
}

int lsa_capture_finish(struct lsa_capture *c)
{
    int rc = 0;
    if (c->res.src && c->n_seq < c->res.n)
        rc = lsa_err(LSA_EINVAL,
                     "%s: input differs from the interrupted run at sequence %lld: it ends there, the "
                     "interrupted run had %lld sequences",
                     c->partial, (long long)c->n_seq, (long long)c->res.n);
    if (!rc) rc = resume_end(c);
    if (!rc && c->n_tok == 0) rc = lsa_err(LSA_ETEXT, "%s: the input gave no tokens: nothing to capture", c->path);
    if (!rc) rc = lsa_h5w_attr_int(c->w, "/", "n_tokens", c->n_tok);
    if (!rc) rc = lsa_h5w_attr_int(c->w, "/", "n_sequences", c->n_seq);
    if (!rc) {
        rc = lsa_h5w_close(c->w);
        c->w = NULL;
    }
    if (!rc && rename(c->tmp, c->path) != 0)
        rc = lsa_err(LSA_EIO, "%s: cannot rename the finished capture into place: %s", c->path, strerror(errno));
    if (rc) drop(c);
    free_capture(c);
    return rc;
}

void lsa_capture_abort(struct lsa_capture *c)
{
    if (!c) return;
    drop(c);
    free_capture(c);
}
