/*
 * model_impl.h — the loaded model as the forward sees it (private to src/). Every weight is a float32
 * array, row-major; shapes are in the comments. Linear layers are stored as the checkpoint has them:
 * torch Linear is (n_out, n_in), GPT-2's Conv1D is (n_in, n_out) and flagged in_out.
 */
#ifndef LSA_MODEL_IMPL_H
#define LSA_MODEL_IMPL_H

#include "lsa/model.h"
#include "lsa/safetensors.h"

struct lsa_linear {
    const float *w; /* (n_out, n_in), or (n_in, n_out) when in_out */
    const float *b; /* (n_out) or NULL */
    int n_in, n_out;
    bool in_out;
};

struct lsa_norm_w {
    const float *w; /* (d_model) */
    const float *b; /* (d_model) or NULL */
};

struct lsa_layer_w {
    struct lsa_norm_w attn_norm, mlp_norm;
    struct lsa_linear qkv;      /* fused: (q_dim + 2 kv_dim) outputs, layout per arch.qkv_layout */
    struct lsa_linear q, k, v;  /* separate */
    struct lsa_linear o;        /* (d_model) outputs from (n_head * d_head) */
    struct lsa_linear gate_up;  /* fused [gate | up], (2 d_ff) outputs */
    struct lsa_linear gate, up; /* gated MLP; up alone is the first MLP matrix of an ungated MLP */
    struct lsa_linear down;     /* (d_model) outputs from (d_ff) */
};

struct lsa_model {
    char *path;
    struct lsa_arch arch;
    struct lsa_st *st;
    struct lsa_tokenizer *tok;
    const float *tok_embd;  /* (n_vocab, d_model) */
    const float *pos_embd;  /* (n_ctx, d_model) or NULL */
    struct lsa_norm_w final_norm;
    const float *head;      /* (n_vocab, d_model) */
    struct lsa_layer_w *layers; /* (n_layer) */
    float **owned;          /* widened copies to free */
    size_t n_owned;
    int64_t n_params;
};

#endif
