/*
 * model_impl.h — the loaded model as the forward sees it (private to src/). Every weight is a float32
 * array, row-major; shapes are in the comments. Linear layers are stored as the checkpoint has them:
 * torch Linear is (n_out, n_in), GPT-2's Conv1D is (n_in, n_out) and flagged in_out.
 */
#ifndef LSA_MODEL_IMPL_H
#define LSA_MODEL_IMPL_H

#include "lsa/model.h"
#include "lsa/safetensors.h"

/*
 * A weight matrix: float32 (f32 set: in place in the mapping or widened at load), or kept in its stored
 * F16/BF16 form in the mapping (f32 NULL, raw set) and widened by the forward when used — the memory-saving
 * path for checkpoints whose float32 copy would not fit (see lsa_model_opts).
 */
struct lsa_mat {
    const float *f32;
    const void *raw;
    enum lsa_dtype dt;
};

/* The matrix as float32: m->f32, or n elements widened into scratch. */
const float *lsa_mat_f32(const struct lsa_mat *m, size_t n, float *scratch);
/* Rows r0 .. r0 + nr of a matrix with `cols` columns, widened into out (nr, cols). */
void lsa_mat_rows(const struct lsa_mat *m, size_t cols, size_t r0, size_t nr, float *out);

struct lsa_linear {
    struct lsa_mat w; /* (n_out, n_in), or (n_in, n_out) when in_out */
    const float *b; /* (n_out) or NULL */
    int n_in, n_out;
    bool in_out;
    struct lsa_packed *packed; /* oneDNN's packed copy of w (src/packed.h), or NULL: OpenBLAS runs the layer */
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

struct lsa_gguf;

struct lsa_model {
    char *path;
    struct lsa_arch arch;
    struct lsa_st *st;      /* safetensors source, or NULL */
    struct lsa_gguf *gguf;  /* GGUF source, or NULL */
    void *map;              /* llama2.c source: the mapped .bin, or NULL */
    size_t map_size;
    struct lsa_tokenizer *tok;
    struct lsa_mat tok_embd; /* (n_vocab, d_model) */
    const float *pos_embd;  /* (n_ctx, d_model) or NULL */
    struct lsa_norm_w final_norm;
    struct lsa_mat head;    /* (n_vocab, d_model) */
    struct lsa_packed *head_packed; /* oneDNN's packed copy of a float32 head, or NULL (model.c says when) */
    struct lsa_layer_w *layers; /* (n_layer) */
    float **owned;          /* widened copies to free */
    size_t n_owned;
    int64_t n_params;
    bool lazy;              /* some matrices are kept in their stored dtype */
    size_t max_lazy;        /* elements of the largest such matrix (the forward's widening scratch) */
};

/* A float array of n elements that the model owns (freed with it); NULL with LSA_ENOMEM recorded. */
float *lsa_model_alloc(struct lsa_model *m, size_t n);

/*
 * Reorder the rows of a q or k projection (n_head * d_head rows of row_len floats, in place) from
 * interleaved RoPE pairs (Meta / llama2.c / llama.cpp's GGUF layout: pair i of a head is rows 2i, 2i+1)
 * to the half-split layout the forward uses (transformers: pair i is rows i and i + d_head/2). Biases
 * are one-float rows.
 */
int lsa_rope_unpermute(float *w, int n_head, int d_head, size_t row_len);

/* Format loaders: fill arch, weights and tokenizer of a model whose path is set (gguf_model.c,
 * llama2c.c). tokenizer may be NULL (llama2.c: found beside the model). */
int lsa_gguf_model_load(struct lsa_model *m);
int lsa_llama2c_model_load(struct lsa_model *m, const char *tokenizer);

#endif
