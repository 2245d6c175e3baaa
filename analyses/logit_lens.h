/*
 * logit_lens.h — what each residual point "predicts" when decoded through the final norm and the
 * unembedding (nostalgebraist 2020, "interpreting GPT: the logit lens"; the final norm's statistics are
 * recomputed on each point, as the tuned lens (Belrose et al. 2023) and TransformerLens do):
 *   logits_l,t = U · FinalNorm(x_l,t),   p_l,t = softmax(logits_l,t)
 * p_final,t is the model's own output distribution (from resid_final when the capture has it, else from
 * the last stored point). Per stored point l, averaged over every token t that has a next token in its
 * sequence:
 *   entropy          H(p_l,t)                                         nats
 *   kl_to_final      KL(p_final,t ‖ p_l,t)                              nats
 *   cross_entropy    −log p_l,t(x_{t+1})                                nats
 *   top1_agree_final [argmax p_l,t = argmax p_final,t]
 *   true_prob        p_l,t(x_{t+1})
 *   true_rank        #{v : logits_l,t[v] > logits_l,t[x_{t+1}]} (0 = top); median and mean
 *   final_top1_rank  rank of argmax p_final,t under p_l,t; mean
 * plus a grid for one sequence (rows = points, columns = positions): the top-1 decoded token, its
 * probability and the entropy — the figure of the logit-lens posts.
 * Memory: one block of tokens' points and logits (P·B·D + B·V floats) and a rank histogram (P·V).
 */
#ifndef LSA_ANALYSES_LOGIT_LENS_H
#define LSA_ANALYSES_LOGIT_LENS_H

#include "lsa/capture_read.h"
#include "lsa/forward.h"

struct lsa_lens_opts {
    int block;          /* tokens per block (default 128) */
    int64_t max_tokens; /* 0 = the whole capture */
    int grid_seq;       /* sequence shown in the grid (default 0) */
    int grid_from, grid_to; /* positions [from, to) within it; to = 0: from + 24 capped at the length */
};

struct lsa_lens_opts lsa_lens_opts_default(void);

struct lsa_lens_result {
    int n_points;
    int64_t n_tokens; /* tokens scored */
    double *entropy, *kl_to_final, *cross_entropy, *top1_agree_final, *true_prob; /* (P) means */
    double *true_rank_median, *true_rank_mean, *final_top1_rank_mean;              /* (P) */
    /* grid: (P, grid_cols) */
    int grid_seq, grid_from, grid_cols;
    int32_t *grid_top;    /* top-1 token id */
    float *grid_prob;     /* its probability */
    float *grid_entropy;  /* entropy at that cell */
    int32_t *grid_input;  /* (grid_cols) the input token at each position */
    int32_t *grid_next;   /* (grid_cols) the true next token (-1 at the end of the sequence) */
};

/* Run over the capture with the model it was made with (borrowed). Free with lsa_lens_free. */
int lsa_lens_run(struct lsa_capture_reader *cr, const struct lsa_model *m, const struct lsa_lens_opts *o,
                 struct lsa_lens_result *out);
void lsa_lens_free(struct lsa_lens_result *r);

#endif
