/*
 * forward.h — the forward pass over one window of tokens, with an optional layer plan.
 *
 * Layer plan: which layers run, in which order (delete = omit, swap = exchange, repeat = list twice,
 * reverse = reversed range), with per-position flags that drop the attention or MLP sub-block, and
 * optional parallel groups (consecutive positions with the same non-zero group id all read the same
 * input and their residual updates are summed). The identity plan runs 0..n_layer-1.
 *
 * Residual points (TransformerLens names), reported through a hook as they are computed, each (T, d_model):
 *   LSA_PT_EMBED       "hook_embed"          input to the first executed layer (position/scale included)
 *   LSA_PT_RESID_MID   "blocks.i.hook_resid_mid"  x + attn_out (for parallel-residual models too)
 *   LSA_PT_ATTN_OUT    "blocks.i.hook_attn_out"   attention sub-block output (after o_proj + bias)
 *   LSA_PT_MLP_OUT     "blocks.i.hook_mlp_out"    MLP sub-block output
 *   LSA_PT_RESID_POST  "blocks.i.hook_resid_post" after the i-th executed position (before final norm)
 *   LSA_PT_FINAL_NORM  "ln_final.hook_normalized" the last residual after the final norm
 * i is the position in the plan, not the layer index.
 *
 * Numerics: float32 storage and GEMMs (OpenBLAS), reductions in norms and softmax in double.
 * Ownership: lsa_fwd_new returns a state the caller frees with lsa_fwd_free; it borrows the model, which
 * must outlive it. The state owns all activation memory, sized once for max_tokens (no allocation per run).
 */
#ifndef LSA_FORWARD_H
#define LSA_FORWARD_H

#include "lsa/model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lsa_plan {
    int n;              /* positions */
    int32_t *layer;     /* (n) layer index run at each position */
    uint8_t *drop_attn; /* (n) 1 = skip the attention sub-block */
    uint8_t *drop_mlp;  /* (n) 1 = skip the MLP sub-block */
    int32_t *group;     /* (n) 0 = sequential; equal non-zero ids at consecutive positions run in parallel */
};

/* Allocate a plan of n positions, all zero; free with lsa_plan_free (NULL ok). */
struct lsa_plan *lsa_plan_new(int n);
struct lsa_plan *lsa_plan_identity(int n_layer);
void lsa_plan_free(struct lsa_plan *p);
/* Check indices and groups against n_layer; LSA_EINVAL with a message saying which position is wrong. */
int lsa_plan_check(const struct lsa_plan *p, int n_layer);
/*
 * Build a plan from CLI-style specs, each may be NULL: order "0,1,3,2" or ranges "0-5,7,5-0";
 * skip "3,7"; swap "4:5" (several separated by commas); drop_attn / drop_mlp "10,11" (layer indices:
 * every position that runs that layer). Returns NULL with LSA_EINVAL on a bad spec.
 */
struct lsa_plan *lsa_plan_parse(int n_layer, const char *order, const char *skip, const char *swap,
                                const char *drop_attn, const char *drop_mlp);
/* A compact text form ("0,1,3,2;drop_attn=...") into buf, for provenance. */
void lsa_plan_format(const struct lsa_plan *p, char *buf, size_t cap);

enum lsa_point {
    LSA_PT_EMBED = 1u << 0,
    LSA_PT_RESID_MID = 1u << 1,
    LSA_PT_ATTN_OUT = 1u << 2,
    LSA_PT_MLP_OUT = 1u << 3,
    LSA_PT_RESID_POST = 1u << 4,
    LSA_PT_FINAL_NORM = 1u << 5,
};
const char *lsa_point_name(enum lsa_point pt); /* "embed", "resid_mid", ... */

/* Called with each requested point; x is (n_tok, d_model), valid only during the call. pos is the plan
 * position (-1 for embed and final norm). Return non-zero to abort the forward with that status. */
typedef int (*lsa_point_fn)(void *ctx, enum lsa_point pt, int pos, const float *x, int n_tok, int d_model);

struct lsa_fwd_request {
    const struct lsa_plan *plan; /* NULL = identity */
    unsigned points;             /* mask of enum lsa_point for the hook */
    lsa_point_fn hook;
    void *hook_ctx;
    float *nll;       /* (n_tok - 1) or NULL: -log p(tok[t+1] | tok[<=t]) */
    int top_k;        /* 0..64 */
    int32_t *top_ids; /* (n_tok, top_k) or NULL, highest logit first */
    float *logits;    /* (n_tok, n_vocab) or NULL */
    /* Resume from a known residual: when x_start is set, the embedding is skipped and plan positions
     * start_pos.. run on x_start (n_tok, d_model), e.g. the intact model's resid_post at start_pos - 1.
     * Sweeps over plans that share a prefix reuse it this way. */
    const float *x_start;
    int start_pos;
    /* By default a NaN/Inf in the residual stream stops the run with LSA_ENUM naming the layer and token. */
    bool allow_nonfinite;
};

struct lsa_fwd;

struct lsa_fwd *lsa_fwd_new(const struct lsa_model *m, int max_tokens);
void lsa_fwd_free(struct lsa_fwd *f);
/* Run tokens[0..n_tok) (positions 0..n_tok-1). n_tok <= max_tokens. */
int lsa_fwd_run(struct lsa_fwd *f, const int32_t *tokens, int n_tok, const struct lsa_fwd_request *req);

/* Threads that share each layer's token rows in a run of n_tok tokens (1: OpenBLAS's threads share each
 * GEMM instead). Chosen by model size and n_tok; LSA_FORWARD_SPLIT=N in the environment when the state is
 * made forces N (0 or 1: never split). */
int lsa_fwd_split(const struct lsa_fwd *f, int n_tok);

/*
 * Logit lens: logits (n_tok, n_vocab) = head · FinalNorm(x) for any residual x (n_tok, d_model), the final
 * norm's statistics recomputed on x. n_tok <= the state's max_tokens.
 */
int lsa_fwd_unembed(struct lsa_fwd *f, const float *x, int n_tok, float *logits);
/* logits (n_tok, n_vocab) = head · h for an already final-normed h (n_tok, d_model), e.g. resid_final. */
int lsa_fwd_head(struct lsa_fwd *f, const float *h, int n_tok, float *logits);

#ifdef __cplusplus
}
#endif
#endif
