/*
 * similarity.c — cosine, angular distance, linear CKA (exact and minibatch) and residual norms over all
 * pairs of residual points, in one streaming pass (definitions in similarity.h). Saves to results and
 * draws heatmaps; it does not print and does not decide file names beyond the figure stems.
 */
#include "similarity.h"

#include "linalg.h"
#include "lsa/h5.h"
#include "similarity_pass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lsa_similarity_opts lsa_similarity_opts_default(void)
{
    return (struct lsa_similarity_opts){.cka_max_tokens = 4096, .cka_batch = 256};
}

void lsa_similarity_free(struct lsa_similarity_result *r)
{
    if (!r) return;
    for (int i = 0; r->names && i < r->n; i++) free(r->names[i]);
    free(r->names);
    free(r->point_index);
    free(r->model);
    free(r->cosine);
    free(r->angular);
    free(r->angular_last);
    free(r->resid_norm);
    free(r->cka_linear);
    free(r->cka_minibatch);
    free(r);
}

const char *lsa_similarity_point_label(const char *name, char *buf, size_t cap)
{
    int i;
    if (!strcmp(name, "embed")) snprintf(buf, cap, "emb");
    else if (sscanf(name, "blocks.%d.", &i) == 1) snprintf(buf, cap, "%d", i);
    else if (!strncmp(name, "ln_final", 8)) snprintf(buf, cap, "ln_f");
    else snprintf(buf, cap, "%s", name);
    return buf;
}

static int result_alloc(struct lsa_similarity_result *r, const struct lsa_capture_info *ci, int n)
{
    size_t nn = (size_t)n * n;
    r->n = n;
    r->names = calloc((size_t)n, sizeof *r->names);
    r->point_index = calloc((size_t)n, sizeof *r->point_index);
    r->model = lsa_path_base(ci->model_path);
    r->cosine = calloc(nn, sizeof(double));
    r->angular = calloc(nn, sizeof(double));
    r->angular_last = calloc(nn, sizeof(double));
    r->resid_norm = calloc((size_t)n, sizeof(double));
    if (!r->names || !r->point_index || !r->model || !r->cosine || !r->angular || !r->angular_last || !r->resid_norm)
        return lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        bool fin = i == ci->n_points;
        if (!(r->names[i] = strdup(fin ? "ln_final.hook_normalized" : ci->point_names[i])))
            return lsa_err(LSA_ENOMEM, "out of memory");
        r->point_index[i] = fin ? -1 : ci->point_index[i];
    }
    return 0;
}

/* Mirror the upper triangle of a (n, n) sum and divide by count. */
static void finish_mean(int n, const double *sum, double count, double *out)
{
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) out[i * n + j] = out[j * n + i] = count > 0 ? sum[i * n + j] / count : NAN;
}

int lsa_similarity_run(struct lsa_capture_reader *cap, const struct lsa_similarity_opts *o,
                       struct lsa_similarity_result **out)
{
    *out = NULL;
    const struct lsa_capture_info *ci = lsa_capture_read_info(cap);
    if (o->with_final && !ci->has_final)
        return lsa_err(LSA_EFORMAT, "%s: --final asks for /resid_final, which the capture lacks", ci->path);
    if (o->cka_batch < 0 || (o->cka_batch > 0 && o->cka_batch < 4) || o->cka_batch > 4096)
        return lsa_err(LSA_EINVAL, "--cka-batch %d: use 4..4096 (0 = none)", o->cka_batch);
    if (o->cka_max_tokens < 0) return lsa_err(LSA_EINVAL, "--cka-max-tokens must be >= 0");
    int P = ci->n_points, n = P + (o->with_final ? 1 : 0), D = ci->d_model;
    int64_t N = ci->n_tokens;
    if (N < 1) return lsa_err(LSA_EFORMAT, "%s: the capture has no tokens", ci->path);
    int b = o->cka_batch > 0 ? (N < o->cka_batch ? (int)N : o->cka_batch) : 0;
    if (b > 0 && b < 4) b = 0; /* too few tokens for HSIC1 */
    int64_t cap_tok = o->cka_max_tokens < N ? o->cka_max_tokens : N;
    if (cap_tok < 2) cap_tok = 0;
    if (cap_tok > 0 && (double)cap_tok * n * D * 8 > 64e9)
        return lsa_err(LSA_EINVAL, "--cka-max-tokens %lld needs %.0f GB; lower it", (long long)cap_tok,
                       (double)cap_tok * n * D * 8 / 1e9);
    /* read in whole chunks, about 32 MiB of float32 at a time */
    int64_t B = o->block_tokens > 0 ? o->block_tokens : (int64_t)((32 << 20) / ((size_t)n * D * 4));
    if (o->block_tokens <= 0 && B >= ci->chunk_tokens) B -= B % ci->chunk_tokens;
    if (B < 1) B = 1;
    if (B > N) B = N;

    struct lsa_similarity_result *r = calloc(1, sizeof *r);
    struct lsa_sim_pass s = {0};
    float *blk = NULL;
    int64_t *offs = NULL;
    unsigned char *last = NULL;
    int rc = r ? result_alloc(r, ci, n) : lsa_err(LSA_ENOMEM, "out of memory");
    if (!rc) rc = lsa_sim_pass_alloc(&s, n, D, b, cap_tok, !o->cka_f64);
    if (!rc && (!(blk = malloc((size_t)n * B * D * sizeof *blk)) || !(offs = malloc(4097 * sizeof *offs)) ||
                !(last = malloc((size_t)B))))
        rc = lsa_err(LSA_ENOMEM, "similarity: out of memory for a block of %lld tokens", (long long)B);
    /* The pass makes thousands of small GEMMs (a Gram per point of each minibatch): on one BLAS thread,
     * spread over the points with OpenMP, instead of OpenBLAS's threads handing each small call back and
     * forth (perf: 38% of the pass in their sched_yield). The exact CKA's large GEMMs get every thread
     * back. */
    int blas_threads = lsa_la_threads(1);
    /* sequence ends: a window of seq_offsets read as the tokens advance */
    int64_t off_base = 0, off_n = 0, next_seq = 1, next_end = -1, n_last = 0;
    for (int64_t t0 = 0; !rc && t0 < N; t0 += B) {
        int64_t T = t0 + B <= N ? B : N - t0;
        double t_a = lsa_sim_now();
        rc = lsa_capture_read_resid(cap, t0, t0 + T, blk);
        if (!rc && o->with_final) rc = lsa_capture_read_final(cap, t0, t0 + T, blk + (size_t)P * T * D);
        r->read_s += lsa_sim_now() - t_a;
        for (int64_t k = 0; !rc && k < T; k++) {
            int64_t t = t0 + k;
            while (!rc && next_end < t && next_seq <= ci->n_seqs) {
                if (next_seq >= off_base + off_n) {
                    off_base = next_seq;
                    off_n = ci->n_seqs + 1 - off_base < 4096 ? ci->n_seqs + 1 - off_base : 4096;
                    rc = lsa_capture_read_offsets(cap, off_base, off_base + off_n, offs);
                }
                if (!rc) next_end = offs[next_seq++ - off_base] - 1;
            }
            last[k] = t == next_end;
            n_last += last[k];
        }
        if (!rc) lsa_sim_pass_block(&s, blk, T, last);
    }
    if (!rc) lsa_sim_pass_flush(&s);
    r->token_s = s.token_s;
    r->minibatch_s = s.minibatch_s;
    if (!rc) {
        r->n_tokens = N;
        r->n_last = n_last;
        r->token_flops = (double)n * (n + 1) / 2 * 2.0 * D * (double)N;
        r->minibatch_flops = (double)s.n_batches * ((double)n * b * b * D + (double)n * (n + 1) * s.kp);
        r->last_token = o->last_token;
        finish_mean(n, s.cos_sum, (double)N, r->cosine);
        finish_mean(n, s.ang_sum, (double)N, r->angular);
        finish_mean(n, s.last_sum, (double)n_last, r->angular_last);
        for (int i = 0; i < n; i++) r->resid_norm[i] = s.norm_sum[i] / (double)N;
    }
    if (!rc && b > 0 && s.n_batches > 0) {
        if (!(r->cka_minibatch = malloc((size_t)n * n * sizeof(double)))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < n; i++)
            for (int j = 0; j < n; j++) {
                double den = sqrt(s.hsic[i * n + i]) * sqrt(s.hsic[j * n + j]);
                r->cka_minibatch[i * n + j] = den > 0 ? s.hsic[i * n + j] / den : NAN;
            }
        r->cka_batch = b;
        r->cka_n_batches = s.n_batches;
    }
    if (!rc && s.cap > 0) {
        if (!(r->cka_linear = malloc((size_t)n * n * sizeof(double)))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        lsa_la_threads(blas_threads);
        double t_d = lsa_sim_now();
        if (!rc) rc = lsa_sim_pass_exact(&s, r->cka_linear);
        r->exact_s = lsa_sim_now() - t_d;
        r->cka_tokens = s.kept;
        r->exact_flops = (double)n * (n + 1) / 2 * 2.0 * D * D * (double)s.kept;
    }
    r->cka_f32 = !o->cka_f64;
    lsa_la_threads(blas_threads);
    lsa_sim_pass_free(&s);
    free(blk);
    free(offs);
    free(last);
    if (rc) {
        lsa_similarity_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ------------------------------------------------------------------ saving */

static const char *gemm_precision(const struct lsa_similarity_result *r, bool exact)
{
    if (!r->cka_f32) return "float64";
#define STR_(x) #x
#define STR(x) STR_(x)
    return exact ? "float32 GEMMs over " STR(LSA_SIM_KBLOCK) " tokens at a time, summed in float64"
                 : "float32 Gram matrices, everything after them in float64";
}

int lsa_similarity_save(const struct lsa_similarity_result *r, struct lsa_results *res)
{
    const char *g = "similarity";
    int n = r->n, rc = lsa_results_attr_strs(res, "/similarity", "points", (const char *const *)r->names, n);
    if (!rc) rc = lsa_results_ivector(res, g, "point_index", n, r->point_index, NULL);
    if (!rc) rc = lsa_results_json_strs(res, "similarity_points", (const char *const *)r->names, n);
    if (!rc) rc = lsa_results_attr_str(res, "/similarity", "convention",
                                       "points are residuals before the final norm (0 = embed, i + 1 = after "
                                       "executed block i); ln_final.hook_normalized, when listed, is after it");
    if (!rc) rc = lsa_results_matrix(res, g, "cosine", n, n, r->cosine, "cosine");
    if (!rc) rc = lsa_results_attr_str(res, "/similarity/cosine", "definition",
                                       "C[i][j] = mean over tokens t of cos(x_i,t, x_j,t); cos = 0 for a zero vector");
    if (!rc) rc = lsa_results_attr_int(res, "/similarity/cosine", "n_tokens", r->n_tokens);
    if (!rc) rc = lsa_results_matrix(res, g, "angular", n, n, r->angular, r->last_token ? NULL : "angular");
    if (!rc) rc = lsa_results_attr_str(res, "/similarity/angular", "definition",
                                       "A[i][j] = mean over tokens t of arccos(cos(x_i,t, x_j,t)) / pi (Gromov et al. 2024)");
    if (!rc) rc = lsa_results_attr_int(res, "/similarity/angular", "n_tokens", r->n_tokens);
    if (!rc) rc = lsa_results_matrix(res, g, "angular_last", n, n, r->angular_last, r->last_token ? "angular" : NULL);
    if (!rc) rc = lsa_results_attr_str(res, "/similarity/angular_last", "definition",
                                       "angular distance averaged over the last token of each sequence only");
    if (!rc) rc = lsa_results_attr_int(res, "/similarity/angular_last", "n_tokens", r->n_last);
    if (!rc) rc = lsa_results_json_str(res, "angular_positions", r->last_token ? "last" : "all");
    if (!rc && r->cka_linear) {
        rc = lsa_results_matrix(res, g, "cka_linear", n, n, r->cka_linear, "cka_linear");
        if (!rc) rc = lsa_results_attr_str(res, "/similarity/cka_linear", "definition",
                                           "||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), X, Y centred over tokens "
                                           "(Kornblith et al. 2019), exact on the first n_tokens tokens");
        if (!rc) rc = lsa_results_attr_int(res, "/similarity/cka_linear", "n_tokens", r->cka_tokens);
        if (!rc) rc = lsa_results_attr_str(res, "/similarity/cka_linear", "gemm_precision", gemm_precision(r, true));
        if (!rc) rc = lsa_results_json_num(res, "cka_linear_tokens", (double)r->cka_tokens);
    } else if (!rc) rc = lsa_results_json_num(res, "cka_linear", NAN);
    if (!rc && r->cka_minibatch) {
        rc = lsa_results_matrix(res, g, "cka_minibatch", n, n, r->cka_minibatch, "cka_minibatch");
        if (!rc) rc = lsa_results_attr_str(res, "/similarity/cka_minibatch", "definition",
                                           "mean HSIC_1 over consecutive minibatches, normalised (Nguyen et al. "
                                           "2021; HSIC_1: Song et al. 2012); the last N mod batch_size tokens unused");
        if (!rc) rc = lsa_results_attr_int(res, "/similarity/cka_minibatch", "batch_size", r->cka_batch);
        if (!rc) rc = lsa_results_attr_str(res, "/similarity/cka_minibatch", "gemm_precision", gemm_precision(r, false));
        if (!rc) rc = lsa_results_attr_int(res, "/similarity/cka_minibatch", "n_batches", r->cka_n_batches);
        if (!rc) rc = lsa_results_json_num(res, "cka_minibatch_batch_size", r->cka_batch);
    } else if (!rc) rc = lsa_results_json_num(res, "cka_minibatch", NAN);
    if (!rc) rc = lsa_results_vector(res, g, "resid_norm", n, r->resid_norm, NULL);
    if (!rc) rc = lsa_results_attr_str(res, "/similarity/resid_norm", "definition",
                                       "mean over tokens of the Euclidean norm of each point");
    return rc;
}

/* ------------------------------------------------------------------ reuse */

void lsa_similarity_options(const struct lsa_similarity_opts *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "with_final=%d last_token=%d cka_max_tokens=%lld cka_batch=%d block_tokens=%lld cka_f64=%d",
             o->with_final, o->last_token, (long long)o->cka_max_tokens, o->cka_batch, (long long)o->block_tokens,
             o->cka_f64);
}

int lsa_similarity_load(struct lsa_h5 *h, const char *model_path, const struct lsa_similarity_opts *o,
                        struct lsa_similarity_result **out)
{
    *out = NULL;
    struct lsa_similarity_result *r = calloc(1, sizeof *r);
    if (!r) return lsa_err(LSA_ENOMEM, "out of memory");
    size_t n = 0;
    int rc = lsa_h5_attr_strs(h, "/similarity", "points", &r->names, &n);
    r->n = (int)n;
    size_t nn = n * n;
    int64_t v = 0;
    r->last_token = o->last_token;
    r->cka_f32 = !o->cka_f64; /* the options are part of the reuse key */
    if (!rc && !(r->model = lsa_path_base(model_path))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    if (!rc) rc = lsa_results_get_i64(h, "/similarity/point_index", n, &r->point_index);
    if (!rc) rc = lsa_results_get_f64(h, "/similarity/cosine", nn, &r->cosine);
    if (!rc) rc = lsa_results_get_f64(h, "/similarity/angular", nn, &r->angular);
    if (!rc) rc = lsa_results_get_f64(h, "/similarity/angular_last", nn, &r->angular_last);
    if (!rc) rc = lsa_results_get_f64(h, "/similarity/resid_norm", n, &r->resid_norm);
    if (!rc) rc = lsa_results_get_int(h, "/similarity/cosine", "n_tokens", &r->n_tokens);
    if (!rc) rc = lsa_results_get_int(h, "/similarity/angular_last", "n_tokens", &r->n_last);
    if (!rc && lsa_h5_exists(h, "/similarity/cka_linear")) {
        rc = lsa_results_get_f64(h, "/similarity/cka_linear", nn, &r->cka_linear);
        if (!rc) rc = lsa_results_get_int(h, "/similarity/cka_linear", "n_tokens", &r->cka_tokens);
    }
    if (!rc && lsa_h5_exists(h, "/similarity/cka_minibatch")) {
        rc = lsa_results_get_f64(h, "/similarity/cka_minibatch", nn, &r->cka_minibatch);
        if (!rc) rc = lsa_results_get_int(h, "/similarity/cka_minibatch", "batch_size", &v);
        r->cka_batch = (int)v;
        if (!rc) rc = lsa_results_get_int(h, "/similarity/cka_minibatch", "n_batches", &r->cka_n_batches);
    }
    if (rc) {
        lsa_similarity_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ------------------------------------------------------------------ figures */

struct hm_fig {
    const char *title;
    char subtitle[256];
    struct lsa_plot_heatmap hm;
};

static int draw_hm(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct hm_fig *f = ctx;
    struct lsa_plot_rect r = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, f->title, f->subtitle);
    return lsa_plot_heatmap(p, r, &f->hm);
}

static int save_hm(struct hm_fig *f, const struct lsa_plot_opts *po, const char *dir, const char *stem)
{
    struct lsa_plot_style st = lsa_plot_style_for(po->size);
    double h = st.slide_h > 0 ? st.slide_h : lsa_plot_heatmap_fig_height(&st, st.width, true, &f->hm);
    return lsa_plot_save_formats(dir, stem, st.width, h, po, draw_hm, f);
}

static void range(const double *v, int n, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
    if (!isfinite(*lo)) *lo = 0, *hi = 1;
}

int lsa_similarity_draw(const struct lsa_similarity_result *r, const struct lsa_plot_opts *po, const char *dir)
{
    int n = r->n, nn = n * n, rc = 0;
    char (*lab)[24] = calloc((size_t)n, sizeof *lab);
    const char **labels = calloc((size_t)n, sizeof *labels);
    if (!lab || !labels) {
        free(lab), free(labels);
        return lsa_err(LSA_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) labels[i] = lsa_similarity_point_label(r->names[i], lab[i], sizeof lab[i]);
    struct hm_fig f = {.hm = {.rows = n, .cols = n, .row_labels = labels, .col_labels = labels, .annotate = -1,
                              .xlabel = "residual stream after block", .ylabel = "residual stream after block"}};
    char cnt[32];
    snprintf(f.subtitle, sizeof f.subtitle, "%s \xc2\xb7 %s tokens", r->model, lsa_plot_fmt_count(r->n_tokens, cnt, sizeof cnt));
    double lo, hi;

    range(r->cosine, nn, &lo, &hi);
    f.title = "Mean cosine similarity";
    f.hm.v = r->cosine;
    f.hm.cbar_label = "cosine similarity";
    if (lo < -0.05) f.hm.cmap = LSA_CMAP_DIVERGING, f.hm.vmin = -1, f.hm.vmax = 1;
    else f.hm.cmap = LSA_CMAP_VIRIDIS, f.hm.vmin = fmin(0.9, floor(lo * 10) / 10), f.hm.vmax = 1;
    rc = save_hm(&f, po, dir, "cosine");

    const double *ang = r->last_token ? r->angular_last : r->angular;
    range(ang, nn, &lo, &hi);
    f.title = r->last_token ? "Angular distance (last token)" : "Angular distance (all tokens)";
    if (r->last_token)
        snprintf(f.subtitle, sizeof f.subtitle, "%s \xc2\xb7 %s sequences", r->model, lsa_plot_fmt_count(r->n_last, cnt, sizeof cnt));
    f.hm.v = ang;
    f.hm.cbar_label = "arccos(cos) / \xcf\x80";
    f.hm.cmap = LSA_CMAP_VIRIDIS, f.hm.vmin = 0, f.hm.vmax = fmax(0.1, ceil(hi * 10) / 10);
    if (!rc) rc = save_hm(&f, po, dir, "angular");
    snprintf(f.subtitle, sizeof f.subtitle, "%s \xc2\xb7 %s tokens", r->model, lsa_plot_fmt_count(r->n_tokens, cnt, sizeof cnt));

    f.hm.cmap = LSA_CMAP_VIRIDIS, f.hm.vmin = 0, f.hm.vmax = 1;
    f.hm.cbar_label = "linear CKA";
    if (!rc && r->cka_linear) {
        f.title = "Linear CKA (exact)";
        snprintf(f.subtitle, sizeof f.subtitle, "%s \xc2\xb7 first %s tokens", r->model, lsa_plot_fmt_count(r->cka_tokens, cnt, sizeof cnt));
        f.hm.v = r->cka_linear;
        rc = save_hm(&f, po, dir, "cka_linear");
    }
    if (!rc && r->cka_minibatch) {
        char title[64];
        snprintf(title, sizeof title, "Linear CKA (unbiased minibatch)");
        f.title = title;
        snprintf(f.subtitle, sizeof f.subtitle, "%s \xc2\xb7 %s minibatches of %d tokens", r->model, lsa_plot_fmt_count(r->cka_n_batches, cnt, sizeof cnt), r->cka_batch);
        f.hm.v = r->cka_minibatch;
        rc = save_hm(&f, po, dir, "cka_minibatch");
    }
    free(lab);
    free(labels);
    return rc;
}
