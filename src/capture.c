/*
 * capture.c — documents → windows → forward → HDF5, one window at a time. The layout is described in
 * include/lsa/capture.h and docs/capture-format.md. This file decides what goes where; h5.c does the I/O.
 */
#include "lsa/capture.h"

#include "lsa/h5.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES (1 << 20)

struct lsa_capture {
    const struct lsa_model *m;
    const struct lsa_tokenizer *tok;
    struct lsa_capture_opts o;
    struct lsa_plan *plan; /* owned copy */
    char *path, *tmp;
    struct lsa_h5w *w;
    struct lsa_h5w_dset *tokens, *offsets, *texts, *resid, *final, *mid, *attn, *mlp, *logits, *nll;
    struct lsa_fwd *fwd;
    int ctx, d, V, n_pos;  /* window, d_model, vocab, executed positions */
    bool bos;
    int *point_row;        /* (n_pos + 1) row in resid for each point, -1 = not stored */
    int n_points;
    int64_t n_tok, n_seq;
    float *nll_buf;        /* (ctx) */
    float *logit_buf;      /* (ctx, V) when logits are captured */
    int64_t win_start;     /* token offset of the window being written (for the hook) */
};

struct lsa_capture_opts lsa_capture_opts_default(void)
{
    return (struct lsa_capture_opts){.bos = -1, .components = LSA_CAP_RESID, .compress = 4};
}

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

static int hook(void *ctx, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    struct lsa_capture *c = ctx;
    int64_t start[3] = {0, c->win_start, 0}, count[3] = {1, T, d};
    switch (pt) {
    case LSA_PT_EMBED:
    case LSA_PT_RESID_POST: {
        int row = c->point_row[pt == LSA_PT_EMBED ? 0 : pos + 1];
        if (row < 0) return 0;
        start[0] = row;
        return lsa_h5w_write(c->resid, start, count, x);
    }
    case LSA_PT_FINAL_NORM: return lsa_h5w_write(c->final, start + 1, count + 1, x);
    case LSA_PT_RESID_MID: start[0] = pos; return lsa_h5w_write(c->mid, start, count, x);
    case LSA_PT_ATTN_OUT: start[0] = pos; return lsa_h5w_write(c->attn, start, count, x);
    case LSA_PT_MLP_OUT: start[0] = pos; return lsa_h5w_write(c->mlp, start, count, x);
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
    if (!rc && c->bos && lsa_tokenizer_bos(tok) < 0)
        rc = lsa_err(LSA_EINVAL, "--bos: the tokenizer has no BOS token");
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
        if ((o->components & LSA_CAP_LOGITS))
            c->logit_buf = malloc((size_t)c->ctx * c->V * sizeof *c->logit_buf);
        c->path = strdup(path);
        c->tmp = malloc(strlen(path) + 32);
        if (!c->point_row || !c->nll_buf || !c->path || !c->tmp || ((o->components & LSA_CAP_LOGITS) && !c->logit_buf))
            rc = lsa_err(LSA_ENOMEM, "out of memory");
    }
    if (!rc) rc = parse_points(c, o->layers);
    if (!rc && !(c->fwd = lsa_fwd_new(m, c->ctx))) rc = LSA_ENOMEM;
    if (!rc) {
        sprintf(c->tmp, "%s.partial-%d", path, (int)getpid());
        if (!(c->w = lsa_h5w_create(c->tmp))) rc = lsa_err_wrap(LSA_EIO, "%s", path);
    }
    if (!rc) {
        int64_t zero = 0, big = 1 << 16, d1[1] = {0}, ch[1] = {big}, chs[1] = {256};
        const char *tok_axes[] = {"token"}, *seq_axes[] = {"sequence"};
        c->tokens = lsa_h5w_dset(c->w, "tokens", LSA_H5_I32, 1, d1, 0, ch, c->o.compress);
        c->nll = lsa_h5w_dset(c->w, "nll", LSA_H5_F32, 1, d1, 0, ch, c->o.compress);
        c->offsets = lsa_h5w_dset(c->w, "seq_offsets", LSA_H5_I64, 1, d1, 0, ch, c->o.compress);
        c->texts = lsa_h5w_dset(c->w, "texts", LSA_H5_STR, 1, d1, 0, chs, 0);
        c->resid = act_dset(c, "resid", c->n_points, "point");
        c->final = act_dset(c, "resid_final", -1, NULL);
        if (o->components & LSA_CAP_MID) c->mid = act_dset(c, "resid_mid", c->n_pos, "layer");
        if (o->components & LSA_CAP_ATTN) c->attn = act_dset(c, "attn_out", c->n_pos, "layer");
        if (o->components & LSA_CAP_MLP) c->mlp = act_dset(c, "mlp_out", c->n_pos, "layer");
        if (o->components & LSA_CAP_LOGITS) {
            int64_t per = CHUNK_BYTES / ((int64_t)c->V * 4), dims[2] = {0, c->V}, chunk[2] = {per < 1 ? 1 : per, c->V};
            c->logits = lsa_h5w_dset(c->w, "logits", LSA_H5_F32, 2, dims, 0, chunk, c->o.compress);
            const char *ax[] = {"token", "vocab"};
            if (c->logits) rc = lsa_h5w_attr_strs(c->w, "/logits", "axes", ax, 2);
        }
        if (!c->tokens || !c->nll || !c->offsets || !c->texts || !c->resid || !c->final ||
            ((o->components & LSA_CAP_MID) && !c->mid) || ((o->components & LSA_CAP_ATTN) && !c->attn) ||
            ((o->components & LSA_CAP_MLP) && !c->mlp) || ((o->components & LSA_CAP_LOGITS) && !c->logits))
            rc = LSA_EIO;
        if (!rc) rc = lsa_h5w_attr_strs(c->w, "/tokens", "axes", tok_axes, 1);
        if (!rc) rc = lsa_h5w_attr_strs(c->w, "/nll", "axes", tok_axes, 1);
        if (!rc) rc = lsa_h5w_attr_strs(c->w, "/texts", "axes", seq_axes, 1);
        int64_t st[1] = {0}, ct[1] = {1};
        if (!rc) rc = lsa_h5w_write(c->offsets, st, ct, &zero);
        if (!rc) rc = write_point_names(c);
        if (!rc) rc = write_root_attrs(c);
    }
    if (rc) {
        lsa_capture_abort(c);
        return NULL;
    }
    return c;
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
    int rc = lsa_fwd_run(c->fwd, ids, n, &req);
    if (rc == LSA_ENUM)
        return lsa_err_wrap(rc, "%s: sequence %lld (use --allow-nonfinite to store it anyway)", source,
                            (long long)c->n_seq);
    if (rc) return rc;
    c->nll_buf[n - 1] = NAN;
    int64_t st[2] = {c->n_tok, 0}, ct[2] = {n, c->V}, s1[1] = {c->n_seq}, c1[1] = {1}, so[1] = {c->n_seq + 1};
    int64_t end = c->n_tok + n;
    if ((rc = lsa_h5w_write(c->tokens, st, ct, ids)) || (rc = lsa_h5w_write(c->nll, st, ct, c->nll_buf)) ||
        (c->logits && (rc = lsa_h5w_write(c->logits, st, ct, c->logit_buf))) ||
        (rc = lsa_h5w_write(c->texts, s1, c1, &text)) || (rc = lsa_h5w_write(c->offsets, so, c1, &end)))
        return rc;
    c->n_tok = end;
    c->n_seq++;
    if (c->o.progress) c->o.progress(c->o.progress_ctx, c->n_tok);
    return 0;
}

int lsa_capture_add(struct lsa_capture *c, const char *text, size_t len, const char *source)
{
    if (lsa_capture_full(c)) return 0;
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
        rc = capture_window(c, win, t, wtext, source);
        free(wtext);
    }
    free(win);
    free(ids);
    return rc;
}

bool lsa_capture_full(const struct lsa_capture *c) { return c->o.max_tokens && c->n_tok >= c->o.max_tokens; }
int64_t lsa_capture_n_tokens(const struct lsa_capture *c) { return c->n_tok; }
int64_t lsa_capture_n_seqs(const struct lsa_capture *c) { return c->n_seq; }

static void free_capture(struct lsa_capture *c)
{
    lsa_fwd_free(c->fwd);
    lsa_plan_free(c->plan);
    free(c->point_row);
    free(c->nll_buf);
    free(c->logit_buf);
    free(c->path);
    free(c->tmp);
    free(c);
}

int lsa_capture_finish(struct lsa_capture *c)
{
    int rc = 0;
    if (c->n_tok == 0) rc = lsa_err(LSA_ETEXT, "%s: the input gave no tokens: nothing to capture", c->path);
    if (!rc) rc = lsa_h5w_attr_int(c->w, "/", "n_tokens", c->n_tok);
    if (!rc) rc = lsa_h5w_attr_int(c->w, "/", "n_sequences", c->n_seq);
    int rc2 = lsa_h5w_close(c->w);
    c->w = NULL;
    if (!rc) rc = rc2;
    if (!rc && rename(c->tmp, c->path) != 0)
        rc = lsa_err(LSA_EIO, "%s: cannot rename the finished capture into place: %s", c->path, strerror(errno));
    if (rc) unlink(c->tmp);
    free_capture(c);
    return rc;
}

void lsa_capture_abort(struct lsa_capture *c)
{
    if (!c) return;
    if (c->w) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", lsa_errmsg()); /* closing must not replace the real error */
        lsa_h5w_close(c->w);
        lsa_err(LSA_EIO, "%s", keep);
        unlink(c->tmp);
    }
    free_capture(c);
}
