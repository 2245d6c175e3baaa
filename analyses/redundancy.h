/*
 * redundancy.h — which blocks change the residual stream least, from the similarity pass's numbers
 * (no second pass over the capture).
 *
 * Points as in similarity.h: x_0 = embed (input to block 0), x_{l+1} = output of block l, before the
 * final norm; they must be a contiguous run of the capture's points (the final-normed point is not used).
 * With P such points there are L = P - 1 blocks, numbered by their position l = 0..L-1 (plus the index of
 * the first stored point when the capture kept a later range only).
 *
 *   block_influence  BI_l = 1 - (1/N) sum_t cos(x_{l,t}, x_{l+1,t}), l = 0..L-1: Block Influence of
 *                    ShortGPT (Men et al. 2024, "ShortGPT: Layers in Large Language Models are More
 *                    Redundant Than You Expect"), over all tokens. Low BI = the block barely turns the
 *                    residual stream.
 *   bi_ranking       block indices sorted by BI ascending (most redundant first; ties by index).
 *   distance         d(l, n) = angular distance between x_l and x_{l+n} (similarity.h: mean over all
 *                    tokens, or over each sequence's last token with opts.last_token, as Gromov et al. 2024
 *                    "The Unreasonable Ineffectiveness of the Deeper Layers" do), table (L-1, L): row n-1,
 *                    column l, NaN where l + n > L.
 *   best_block       for each block size n = 1..L-1: l*(n) = argmin_l d(l, n) (first on ties), the start of
 *                    the n consecutive blocks l*..l*+n-1 whose removal changes the representation least,
 *                    and d(l*(n), n).
 *   resid_norm       mean Euclidean norm of each point x_0..x_L (as in the Curse of Depth papers, e.g.
 *                    Sun et al. 2025, "The Curse of Depth in Large Language Models"), and
 *   norm_growth      resid_norm[l + 1] / resid_norm[l], l = 0..L-1.
 *
 * results.h5: /redundancy/{block_influence, bi_ranking, distance, best_block (table n, start, distance),
 * resid_norm, norm_growth}. summary.json: "block_influence", "bi_ranking", "best_block" (list of
 * {n, start, distance}), "resid_norm", "norm_growth", "best_block_positions" ("all" | "last").
 * Figures: block_influence (bars, ranking marked), best_block (d vs start for several n), block_distance
 * (heatmap of the table), resid_norm (norm and growth).
 */
#ifndef LSA_ANALYSES_REDUNDANCY_H
#define LSA_ANALYSES_REDUNDANCY_H

#include "plot.h"
#include "results.h"
#include "similarity.h"

struct lsa_redundancy_opts {
    bool last_token; /* best block on last-token distances (Gromov et al.); default false = all tokens */
    int n_marked;    /* blocks marked as most redundant in the BI figure; 0 = L / 4 (at least 1) */
};
struct lsa_redundancy_opts lsa_redundancy_opts_default(void);

struct lsa_redundancy_best {
    int n, start;
    double distance;
};

struct lsa_redundancy_result {
    int n_blocks;             /* L */
    int first;                /* position of the first block (point_index of the first point) */
    bool last_token;
    char *model;
    int64_t n_tokens, n_last;  /* tokens; sequences (last tokens) */
    double *block_influence;  /* (L) */
    int64_t *bi_ranking;      /* (L) block positions, most redundant first */
    double *distance;         /* (L - 1, L) */
    struct lsa_redundancy_best *best; /* (L - 1) */
    double *resid_norm;       /* (L + 1) */
    double *norm_growth;      /* (L) */
    int n_marked;
};

int lsa_redundancy_run(const struct lsa_similarity_result *sim, const struct lsa_redundancy_opts *o,
                       struct lsa_redundancy_result **out);
int lsa_redundancy_save(const struct lsa_redundancy_result *r, struct lsa_results *res);
/* Options that change the numbers, as text, and the saved result read back (results.h: reuse). */
void lsa_redundancy_options(const struct lsa_redundancy_opts *o, const struct lsa_similarity_opts *so, char *buf,
                            size_t cap);
int lsa_redundancy_load(struct lsa_h5 *h, const char *model_path, const struct lsa_redundancy_opts *o,
                        struct lsa_redundancy_result **out);
int lsa_redundancy_draw(const struct lsa_redundancy_result *r, const struct lsa_plot_opts *po, const char *dir);
void lsa_redundancy_free(struct lsa_redundancy_result *r);

#endif
