/*
 * similarity.h — how alike every residual point is to every other, from one streaming pass over a
 * capture.
 *
 * Points: the capture's stored residual points /resid, P of them, all BEFORE the final norm (index 0 =
 * embed, the input to the first executed block; point "i" = blocks.i.hook_resid_post, the output of
 * executed block i). With opts.with_final the final-normed point ln_final.hook_normalized (/resid_final)
 * is appended as one more point. x_{i,t} is point i at token t, t = 0..N-1 over all sequences.
 *
 * Metrics (all (n, n) symmetric matrices, n = P or P + 1):
 *   cosine        C[i][j] = (1/N) sum_t cos(x_{i,t}, x_{j,t}),  cos(a, b) = <a, b> / (|a| |b|), taken as 0
 *                 when a or b is the zero vector; C[i][i] = 1 for points with no zero vector.
 *   angular       A[i][j] = (1/N) sum_t arccos(clamp(cos(x_{i,t}, x_{j,t}), -1, 1)) / pi, the angular
 *                 distance of Gromov et al. 2024 ("The Unreasonable Ineffectiveness of the Deeper Layers")
 *                 averaged per token, in [0, 1].
 *   angular_last  the same over the last token of each sequence only (as Gromov et al. measure it);
 *                 sequences are the capture's windows (seq_offsets).
 *   cka_linear    exact linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations
 *                 Revisited"): K[i][j] = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) with X = x_i, Y = x_j as
 *                 (n_tok, D) matrices centred over tokens (column means removed), on the first
 *                 n_tok = min(N, opts.cka_max_tokens) tokens. NaN when a point is constant.
 *   cka_minibatch the unbiased minibatch estimator of Nguyen, Raghu & Kornblith 2021 ("Do Wide and Deep
 *                 Networks Learn the Same Things?"): tokens are cut into consecutive minibatches of b
 *                 tokens (the last N mod b tokens are left out; when N < b, one minibatch of all N), and
 *                 CKA[i][j] = mean_k HSIC1(K_i^k, K_j^k) / sqrt(mean_k HSIC1(K_i^k, K_i^k) mean_k
 *                 HSIC1(K_j^k, K_j^k)), with K^k = X X^T the linear Gram matrix of minibatch k and
 *                 HSIC1(K, L) = [tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((b-1)(b-2)) - 2/(b-2) 1^T K~ L~ 1] / (b(b-3))
 *                 (Song et al. 2012), K~ = K with its diagonal zeroed. Needs b >= 4. HSIC1 does not
 *                 change when a constant is added to the features, so each minibatch is centred first
 *                 (for rounding only).
 *   resid_norm    the mean Euclidean norm (1/N) sum_t |x_{i,t}| of each point.
 *
 * Computation (similarity_pass.h): one pass over the capture in token blocks (multiples of the
 * capture's chunk). For each token, the dot products of its points in float64 give every pair's cosine,
 * angle and the norms (tokens spread over cores, then summed in token order, so that neither the block
 * size nor the thread count changes the result). Each minibatch's Gram matrices are one syrk per point
 * (points spread over cores); all pairs' tr(K~_i K~_j) come from their packed upper triangles. The exact
 * CKA is one GEMM per point against a group of points. Memory: a block of activations (about 32 MiB at
 * most), n b^2 / 2 doubles for the minibatch Grams, and for the exact CKA the first cka_max_tokens tokens
 * of every point (n * cka_max_tokens * D * 4 bytes, 8 with cka_f64) — the only part that depends on N,
 * and only up to that cap. Precision: everything is summed in float64; the CKA GEMMs themselves run in
 * float32 (centred values rounded to float32, sums over D in a minibatch Gram or over 512 tokens in the
 * exact CKA), about 1e-6 relative, unless opts.cka_f64 (--cka-f64). Results record which in the
 * gemm_precision attribute of cka_linear and cka_minibatch.
 *
 * results.h5: /similarity/{cosine, angular, angular_last, cka_linear, cka_minibatch, resid_norm}
 * (float64) with attributes (definition, n_tokens, batch_size, ...); /similarity has `points`.
 * summary.json: "cosine", "angular" (angular or angular_last as opts.last_token says; "angular_positions"
 * says which: "all" | "last"), "cka_linear" (with "cka_linear_tokens"), "cka_minibatch" (with
 * "cka_minibatch_batch_size") — matrices as lists of rows, rows and columns in the order of
 * "similarity_points" (the capture's points, plus "ln_final.hook_normalized" last with with_final);
 * null for NaN or when not computed.
 * (resid_norm goes to summary.json through redundancy.h.)
 * Figures (figures/): cosine, angular, cka_linear, cka_minibatch heatmaps.
 */
#ifndef LSA_ANALYSES_SIMILARITY_H
#define LSA_ANALYSES_SIMILARITY_H

#include "lsa/capture_read.h"
#include "plot.h"
#include "results.h"

struct lsa_similarity_opts {
    bool with_final;        /* append resid_final as a point (default false) */
    bool last_token;        /* summary "angular" = angular_last (--positions last); default false */
    int64_t cka_max_tokens; /* exact CKA on the first min(N, this) tokens; 0 = no exact CKA; default 4096 */
    int cka_batch;          /* minibatch size b >= 4; 0 = no minibatch CKA; default 256 */
    int64_t block_tokens;   /* tokens read at a time; 0 = from the capture's chunking (default) */
    bool cka_f64;           /* CKA GEMMs in float64 (default false: float32 GEMMs summed in float64,
                             * about 1e-6 relative, twice as fast; similarity_pass.h) */
};
struct lsa_similarity_opts lsa_similarity_opts_default(void);

struct lsa_similarity_result {
    int n;                  /* points (P, or P + 1 with the final-normed point) */
    char **names;           /* (n) point names as in the capture */
    int64_t *point_index;   /* (n) index in 0..n_executed (0 = embed); -1 for the final-normed point */
    char *model;            /* model name for titles (the model folder's base name) */
    int64_t n_tokens, n_last;
    bool last_token;        /* from the options */
    double *cosine;         /* (n, n) */
    double *angular;        /* (n, n) over all tokens */
    double *angular_last;   /* (n, n) over the last token of each sequence */
    double *resid_norm;     /* (n) */
    double *cka_linear;     /* (n, n), NULL when not computed */
    int64_t cka_tokens;     /* tokens the exact CKA used */
    double *cka_minibatch;  /* (n, n), NULL when not computed */
    int cka_batch;          /* minibatch size used */
    int64_t cka_n_batches;
    bool cka_f32;           /* the CKA GEMMs ran in float32 (see lsa_similarity_opts.cka_f64) */
    /* where the time went (zero in a result read back from results.h5): reading and widening the
     * capture, the per-token Gram matrices (cosine, angle, norms), the minibatch CKA Grams, the exact CKA
     * cross products; and the float64 flops of the last three (2 per multiply-add) */
    double read_s, token_s, minibatch_s, exact_s;
    double token_flops, minibatch_flops, exact_flops;
};

/* One pass over the capture. *out is freed with lsa_similarity_free. */
int lsa_similarity_run(struct lsa_capture_reader *cap, const struct lsa_similarity_opts *o,
                       struct lsa_similarity_result **out);
int lsa_similarity_save(const struct lsa_similarity_result *r, struct lsa_results *res);
/* The options that change the numbers, as text (for results reuse: results.h). */
void lsa_similarity_options(const struct lsa_similarity_opts *o, char *buf, size_t cap);
/* What lsa_similarity_save wrote, read back from a results.h5 (h) into *out; model_path names the model
 * for titles. Freed with lsa_similarity_free. */
int lsa_similarity_load(struct lsa_h5 *h, const char *model_path, const struct lsa_similarity_opts *o,
                        struct lsa_similarity_result **out);
/* The figures into dir (which must exist). */
int lsa_similarity_draw(const struct lsa_similarity_result *r, const struct lsa_plot_opts *po, const char *dir);
void lsa_similarity_free(struct lsa_similarity_result *r);

/* Short axis label for a point name: "emb", "0".."L-1" (after block i), "ln_f" (final norm). */
const char *lsa_similarity_point_label(const char *name, char *buf, size_t cap);

#endif
