/*
 * logit_lens.h — what each residual point "predicts" when decoded through the final norm and the
 * unembedding (nostalgebraist 2020, "interpreting GPT: the logit lens"; the final norm's statistics are
 * recomputed on each point, as the tuned lens (Belrose et al. 2023) and TransformerLens do):
 *   logits_l,t = U · FinalNorm(x_l,t),   p_l,t = softmax(logits_l,t)
 * Points: the capture's stored residual points /resid (before the final norm), P of them. p_final,t is
 * the model's own output distribution: from /resid_final (the final-normed point) when the capture has
 * it, else from the last stored point. Per stored point l, averaged over every token t that has a next
 * token in its sequence (N_scored of them):
 *   entropy          H(p_l,t)                                           nats
 *   kl_to_final      KL(p_final,t ‖ p_l,t)                              nats
 *   cross_entropy    −log p_l,t(x_{t+1})                                nats
 *   top1_agree_final [argmax p_l,t = argmax p_final,t]                  fraction
 *   true_prob        p_l,t(x_{t+1})
 *   true_rank        #{v : logits_l,t[v] > logits_l,t[x_{t+1}]} (0 = top); median (the mean of the two
 *                    middle values when N_scored is even) and mean
 *   final_top1_rank  rank of argmax p_final,t under p_l,t; mean
 * The same values per token, for the first opts.per_token scored tokens (default 4096), and a grid for
 * one sequence (rows = points, columns = positions): the top-1 token, its probability and the entropy —
 * the figure of the logit-lens posts.
 *
 * results.h5: /logit_lens/{entropy, kl_to_final, cross_entropy, top1_agree_final, true_prob,
 * true_rank_median, true_rank_mean, final_top1_rank_mean} (P), /logit_lens/per_token/{token_index,
 * next_token, final_top1 (K), entropy, kl_to_final, cross_entropy, true_prob (P, K) float64, true_rank,
 * final_top1_rank, top1 (P, K) int64}, /logit_lens/grid/{top1, prob, entropy (P, C), input, next (C)}.
 * summary.json: "logit_lens" → {"points", "n_tokens", "kl_to_final", "entropy", "cross_entropy",
 * "top1_agree_final", "true_prob", "true_token_rank_median", "true_token_rank_mean",
 * "final_top1_rank_mean"}, each a list over the points (docs/summary-keys.md).
 * Figures: logit_lens_grid (the token grid), logit_lens_curves (KL, entropy, CE; top-1 agreement and
 * probability of the true token per point).
 * Memory: one block of tokens' points and logits (P·B·D + 3·B·V floats), a rank histogram (P·V) and the
 * per-token arrays (7·P·K values).
 */
#ifndef LSA_ANALYSES_LOGIT_LENS_H
#define LSA_ANALYSES_LOGIT_LENS_H

#include "lsa/capture_read.h"
#include "lsa/forward.h"
#include "plot.h"
#include "results.h"

struct lsa_lens_opts {
    int block;          /* tokens per block (default 128) */
    int64_t max_tokens; /* 0 = the whole capture */
    int64_t per_token;  /* keep per-token values for the first this many scored tokens (default 4096; 0 = none) */
    int grid_seq;       /* sequence shown in the grid (default 0) */
    int grid_from, grid_to; /* positions [from, to) within it; to = 0: from + 16 capped at the length */
};

struct lsa_lens_opts lsa_lens_opts_default(void);

struct lsa_lens_result {
    int n_points;
    char **point_names;   /* (P) the capture's point names */
    char *model;          /* the model's folder or file base name, for titles */
    bool final_from_capture; /* p_final from /resid_final (else from the last stored point) */
    int64_t n_tokens;     /* tokens scored */
    double *entropy, *kl_to_final, *cross_entropy, *top1_agree_final, *true_prob; /* (P) means */
    double *true_rank_median, *true_rank_mean, *final_top1_rank_mean;              /* (P) */
    /* per token: the first n_kept scored tokens, in capture order */
    int64_t n_kept;
    int64_t *kept_index;      /* (K) index of the token in the capture's /tokens */
    int64_t *kept_next;       /* (K) the true next token */
    int64_t *kept_final_top1; /* (K) argmax p_final */
    double *tok_entropy, *tok_kl, *tok_ce, *tok_true_prob;      /* (P, K) */
    int64_t *tok_true_rank, *tok_final_top1_rank, *tok_top1;    /* (P, K) */
    /* grid: (P, grid_cols) */
    int grid_seq, grid_from, grid_cols;
    int32_t *grid_top;    /* top-1 token id */
    float *grid_prob;     /* its probability */
    float *grid_entropy;  /* entropy at that cell */
    int32_t *grid_input;  /* (grid_cols) the input token at each position */
    int32_t *grid_next;   /* (grid_cols) the true next token (-1 at the end of the sequence) */
    char **grid_top_text; /* (P, grid_cols) readable pieces (lsa_lens_piece_label) */
    char **grid_input_text, **grid_next_text; /* (grid_cols); next: "" at the end of the sequence */
};

/* Run over the capture with the model it was made with (borrowed). *out is freed with lsa_lens_free. */
int lsa_lens_run(struct lsa_capture_reader *cr, const struct lsa_model *m, const struct lsa_lens_opts *o,
                 struct lsa_lens_result **out);
int lsa_lens_save(const struct lsa_lens_result *r, struct lsa_results *res);
/* Options that change the numbers, as text, and the saved result read back with the model's tokenizer
 * for the grid's labels (results.h: reuse). */
void lsa_lens_options(const struct lsa_lens_opts *o, char *buf, size_t cap);
int lsa_lens_load(struct lsa_h5 *h, const struct lsa_model *m, const char *model_path, struct lsa_lens_result **out);
/* Figures into dir (which must exist). */
int lsa_lens_draw(const struct lsa_lens_result *r, const struct lsa_plot_opts *po, const char *dir);
void lsa_lens_free(struct lsa_lens_result *r);

/*
 * A token's vocabulary piece made readable for a figure, into buf (NUL-terminated, cut with "…" when
 * longer than cap allows): a leading-space marker ("Ġ" of byte-level BPE, "▁" of SentencePiece) becomes
 * "·", newline "↵", tab "⇥", carriage return "⏎"; byte-fallback pieces <0xNN> show the character when
 * printable ASCII, else "<NN>"; byte-level bytes that do not form UTF-8 show as "<NN>". tok NULL, or an
 * id outside it: "#id".
 */
const char *lsa_lens_piece_label(const struct lsa_tokenizer *tok, int32_t id, char *buf, size_t cap);

#endif
