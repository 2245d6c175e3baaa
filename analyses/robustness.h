/*
 * robustness.h — how much a model's predictions suffer when layers are deleted, swapped or rearranged.
 *
 * The model is re-run on fixed token windows under many layer plans; each plan ("variant") is compared
 * with the intact model on every predicted token t (those with a next token in the same window):
 *   nll   mean −log p_variant(x_{t+1})                          (nats; baseline_nll for the intact model)
 *   kl    mean KL(p_intact,t ‖ p_variant,t)                     (nats)
 *   top1  mean [argmax p_variant,t = argmax p_intact,t]         (fraction)
 * Variants:
 *   delete i            layer i removed (Gromov et al. 2024; ShortGPT, Men et al. 2024; Lad et al. 2024)
 *   swap i,i+1          adjacent layers exchanged (Lad et al. 2024); optionally every pair i<j (swap_all)
 *   drop_attn/drop_mlp  one layer's attention or MLP sub-block removed (He et al. 2024, What Matters in
 *                       Transformers; FinerCut, Zhang et al. 2024)
 *   removal curves      k = 0..L-1 layers removed: in Block Influence order (least influential first,
 *                       BI_l = 1 − mean_t cos(x_l, x_{l+1}) on these windows, ShortGPT); as the contiguous block
 *                       of k layers whose input and output are closest in mean angular distance over all
 *                       tokens (Gromov et al.); in random order (mean over seeds)
 *   painters            middle half [L/4, 3L/4): skipped, reversed, every position running the middle layer,
 *                       run as one parallel group (Sun et al. 2024, Transformer Layers as Painters)
 * A variant whose plan starts like the intact plan resumes from the intact residual at that point
 * instead of recomputing the shared prefix (reuse_prefix).
 */
#ifndef LSA_ANALYSES_ROBUSTNESS_H
#define LSA_ANALYSES_ROBUSTNESS_H

#include "lsa/forward.h"

struct lsa_robust_opts {
    int64_t max_tokens;  /* tokens of the windows to use; 0 = all (default 8192) */
    bool swap_all;       /* the full L×L swap matrix (default off) */
    bool sublayers;      /* drop_attn / drop_mlp per layer (default on) */
    bool curves;         /* removal curves (default on) */
    int random_seeds;    /* seeds for the random-order curve (default 3) */
    bool painters;       /* painters variants (default on) */
    bool reuse_prefix;   /* resume variants from the intact prefix (default on) */
    void (*progress)(void *ctx, int64_t done, int64_t total); /* variant-windows done */
    void *progress_ctx;
};

struct lsa_robust_opts lsa_robust_opts_default(void);

struct lsa_robust_metrics {
    double nll, kl, top1;
};

#define LSA_ROBUST_NAME 48

struct lsa_robust_named {
    char name[LSA_ROBUST_NAME];
    char plan[256]; /* lsa_plan_format of the variant */
    struct lsa_robust_metrics m;
};

struct lsa_robust_result {
    int n_layer;
    int64_t n_predicted;                 /* tokens scored */
    double baseline_nll;
    struct lsa_robust_metrics *del;      /* (n_layer) */
    struct lsa_robust_metrics *swap;     /* (n_layer - 1): i, i+1 */
    struct lsa_robust_metrics *drop_attn, *drop_mlp; /* (n_layer) or NULL */
    struct lsa_robust_metrics *swap_all; /* (n_layer, n_layer), [i][i] = intact; or NULL */
    double *curve_bi, *curve_block, *curve_random; /* (n_layer): nll with k = index layers removed; or NULL */
    int *bi_order;                       /* (n_layer) layers, least influential first */
    double *bi;                          /* (n_layer) Block Influence on these windows */
    int *block_start;                    /* (n_layer) best block start for k (k = 0: 0) */
    struct lsa_robust_named *painters;   /* (n_painters) */
    int n_painters;
    double seconds;
};

/*
 * Run every variant over the windows seq s = tokens[offsets[s] : offsets[s+1]] (each at most the model's
 * usable context). Fills *out (free with lsa_robust_free).
 */
int lsa_robust_run(const struct lsa_model *m, const int32_t *tokens, const int64_t *offsets, int n_seq,
                   const struct lsa_robust_opts *o, struct lsa_robust_result *out);
void lsa_robust_free(struct lsa_robust_result *r);

#endif
