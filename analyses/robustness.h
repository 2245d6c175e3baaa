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
 *                       BI_l = 1 − mean_t cos(x_l, x_{l+1}) on these windows, ShortGPT, or the order given
 *                       in opts.bi_order, e.g. the redundancy analysis's ranking over a whole capture); as
 *                       the contiguous block of k layers whose input and output are closest in mean angular
 *                       distance over all tokens of these windows (Gromov et al.); in random order (mean over
 *                       seeds)
 *   painters            middle half [L/4, 3L/4): skipped, reversed, every position running the middle layer,
 *                       run as one parallel group (Sun et al. 2024, Transformer Layers as Painters)
 * A variant whose plan starts like the intact plan resumes from the intact residual at that point
 * instead of recomputing the shared prefix (reuse_prefix; results are identical either way).
 *
 * Windows: whole sequences in order until max_tokens (the last one cut), from a capture's own tokens
 * (lsa_robust_windows_capture) or from text tokenized as `lsa capture` does it (lsa_robust_windows_text).
 *
 * results.h5: /robustness/{delete, drop_attn, drop_mlp (tables layer, nll, kl, top1), swap (i, j, nll,
 * kl, top1), swap_all_nll, swap_all_kl, swap_all_top1 (L, L; with swap_all), removal_bi_order,
 * removal_best_block, removal_random (tables k, nll), bi, bi_order, block_start, painters (table nll,
 * kl, top1 with a `names` attribute)}, attributes baseline_nll, n_tokens, n_windows.
 * summary.json: "robustness" → {"baseline_nll", "baseline_ppl", "n_tokens", "n_windows", "delete",
 * "swap", "drop_attn", "drop_mlp", "swap_all" (with swap_all: rows of nll), "removal_curve" →
 * {"bi_order", "best_block", "random"}, "bi_order", "bi_order_source", "painters"} (docs/summary-keys.md).
 * Figures: robustness_delete_swap (delta NLL per deleted layer and per swapped pair), robustness_sublayers
 * (attention vs MLP removal), robustness_removal (the three removal curves), robustness_swap_all (heatmap,
 * with swap_all), robustness_painters.
 */
#ifndef LSA_ANALYSES_ROBUSTNESS_H
#define LSA_ANALYSES_ROBUSTNESS_H

#include "lsa/forward.h"
#include "plot.h"
#include "results.h"

struct lsa_robust_opts {
    int64_t max_tokens;  /* tokens of the windows to use; 0 = all (default 8192) */
    bool swap_all;       /* the full L×L swap matrix (default off) */
    bool sublayers;      /* drop_attn / drop_mlp per layer (default on) */
    bool curves;         /* removal curves (default on) */
    int random_seeds;    /* seeds for the random-order curve (default 3) */
    bool painters;       /* painters variants (default on) */
    bool reuse_prefix;   /* resume variants from the intact prefix (default on) */
    const int *bi_order; /* (n_layer) or NULL: the removal order of the BI curve (least influential first)
                            instead of BI on these windows; borrowed for the call */
    const char *bi_order_source; /* what bi_order came from, for the results (default "these windows") */
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
    char *model;                         /* the model's folder or file base name, for titles */
    int64_t n_tokens;                    /* tokens of the windows used */
    int n_windows;
    int64_t n_predicted;                 /* tokens scored */
    double baseline_nll;
    struct lsa_robust_metrics *del;      /* (n_layer) */
    struct lsa_robust_metrics *swap;     /* (n_layer - 1): i, i+1 */
    struct lsa_robust_metrics *drop_attn, *drop_mlp; /* (n_layer) or NULL */
    struct lsa_robust_metrics *swap_all; /* (n_layer, n_layer), [i][i] = intact; or NULL */
    double *curve_bi, *curve_block, *curve_random; /* (n_layer): nll with k = index layers removed; or NULL */
    int random_seeds;                    /* seeds averaged in curve_random */
    int *bi_order;                       /* (n_layer) layers, least influential first (the curve's order) */
    char *bi_order_source;               /* "these windows" or opts.bi_order_source */
    double *bi;                          /* (n_layer) Block Influence on these windows */
    int *block_start;                    /* (n_layer) best block start for k (k = 0: 0) */
    struct lsa_robust_named *painters;   /* (n_painters) */
    int n_painters;
    double seconds;
};

/*
 * Run every variant over the windows seq s = tokens[offsets[s] : offsets[s+1]] (each at most the model's
 * usable context). *out is freed with lsa_robust_free.
 */
int lsa_robust_run(const struct lsa_model *m, const int32_t *tokens, const int64_t *offsets, int n_seq,
                   const struct lsa_robust_opts *o, struct lsa_robust_result **out);
int lsa_robust_save(const struct lsa_robust_result *r, struct lsa_results *res);
struct lsa_robust_windows;
/* Options that change the numbers (with the windows' count and size), as text, and the saved result read
 * back (results.h: reuse; seconds is 0 in a loaded result). */
void lsa_robust_options(const struct lsa_robust_opts *o, const struct lsa_robust_windows *w, int n_layer, char *buf,
                        size_t cap);
int lsa_robust_load(struct lsa_h5 *h, const char *model_path, struct lsa_robust_result **out);
/* Figures into dir (which must exist). */
int lsa_robust_draw(const struct lsa_robust_result *r, const struct lsa_plot_opts *po, const char *dir);
void lsa_robust_free(struct lsa_robust_result *r);

/* Token windows to run on; free with lsa_robust_windows_free (NULL ok). */
struct lsa_robust_windows {
    int32_t *tokens;   /* (n_tokens) */
    int64_t *offsets;  /* (n_seq + 1) */
    int n_seq;
    int64_t n_tokens;
    int cap_seq;       /* allocated sequences */
    int64_t cap_tok;   /* allocated tokens */
    bool identity_plan; /* from a capture: it ran the intact model (layer_order 0..n-1, nothing dropped) */
    int plan_layers;    /* from a capture: the length n of its layer_order */
};
/* The capture's own tokens and sequences, at most max_tokens of them (0 = all; whole sequences, the last
 * cut). The capture is validated on read (tokens inside 0..n_vocab-1 of the model is checked by the run). */
struct lsa_robust_windows *lsa_robust_windows_capture(const char *capture_path, int64_t max_tokens);
/* An empty set of windows to add text to. */
struct lsa_robust_windows *lsa_robust_windows_new(void);
/*
 * Tokenize one document with the model's tokenizer as `lsa capture` does (no special tokens, then BOS at
 * the start of each window when the tokenizer adds one) and cut it into windows of ctx tokens (0 = the
 * model's context, at most 1024); stops adding once max_tokens are held (0 = no limit). source names the
 * text in errors.
 */
int lsa_robust_windows_add(struct lsa_robust_windows *w, const struct lsa_model *m, const char *text, size_t len,
                           const char *source, int ctx, int64_t max_tokens);
void lsa_robust_windows_free(struct lsa_robust_windows *w);

#endif
