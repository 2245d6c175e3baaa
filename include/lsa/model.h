/*
 * model.h — a checkpoint loaded for the forward pass: its architecture description and its weights.
 *
 * Accepted model names (lsa_model_resolve):
 *   - a Hugging Face model folder (config.json + model.safetensors or model.safetensors.index.json);
 *   - a Hugging Face id ("gpt2", "org/name") found in the local HF cache: $HF_HUB_CACHE, else
 *     $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub, folder
 *     models--org--name/snapshots/<rev>, <rev> read from refs/main. No network access, ever.
 *
 * Architectures (config.json "model_type"): gpt2, llama, mistral, qwen2, gemma, gpt_neox, phi3, all
 * described by one struct lsa_arch that drives one generic decoder-block forward. config.json is read as
 * transformers 4.x writes it (rope_theta, rope_scaling, partial_rotary_factor, rotary_pct,
 * rotary_emb_base at the top level) and as 5.x does (nested in rope_parameters).
 *
 * Also a GGUF file (.gguf, quantized types included) or a llama2.c checkpoint (.bin, with its tokenizer.bin).
 *
 * F32 tensors are used in place from the memory map; F16/BF16 ones are widened exactly to float32, at load
 * or, for checkpoints too big for that, per matrix in the forward (enum lsa_widen). GGUF quantized types
 * are dequantized at load. Ownership: lsa_model_load returns a model the caller frees with lsa_model_free (NULL
 * ok); pointers borrowed from it (arch, tokenizer, path) live until then.
 */
#ifndef LSA_MODEL_H
#define LSA_MODEL_H

#include "lsa/lsa.h"
#include "lsa/tokenizer.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

enum lsa_norm_kind { LSA_NORM_RMS = 1, LSA_NORM_LAYER = 2 };
enum lsa_act_kind { LSA_ACT_SILU = 1, LSA_ACT_GELU = 2 /* erf */, LSA_ACT_GELU_TANH = 3, LSA_ACT_RELU = 4 };
enum lsa_pos_kind { LSA_POS_ROPE = 1, LSA_POS_LEARNED = 2 };
/* How fused attention projections lay out q, k, v along their output dimension. */
enum lsa_qkv_layout {
    LSA_QKV_SEPARATE = 0,   /* q_proj, k_proj, v_proj */
    LSA_QKV_CONCAT = 1,     /* [q | k | v] (gpt2 c_attn, phi3 qkv_proj) */
    LSA_QKV_PER_HEAD = 2,   /* per head [q_h | k_h | v_h] (gpt_neox query_key_value) */
};

#define LSA_NAME_MAX 64

/* Plain description of a decoder-only transformer, filled from config.json (or GGUF metadata). */
struct lsa_arch {
    char model_type[LSA_NAME_MAX]; /* config model_type, e.g. "llama" */
    int n_layer, d_model, n_head, n_head_kv, d_head, d_ff, n_vocab, n_ctx;
    enum lsa_norm_kind norm;
    float norm_eps;
    bool norm_plus_one;     /* gemma: x * (1 + w) */
    bool norm_bias;         /* LayerNorm with bias */
    enum lsa_act_kind act;
    bool gated_mlp;         /* act(gate(x)) * up(x), else act(fc(x)) */
    bool parallel_residual; /* gpt_neox: x + attn(ln1 x) + mlp(ln2 x) */
    enum lsa_pos_kind pos;
    double rope_theta;
    int rope_dims;          /* rotated dimensions per head (partial rotary), even */
    double rope_linear_factor; /* rope_scaling "linear": positions divided by this; 1 otherwise */
    bool embed_scale;       /* gemma: embeddings times sqrt(d_model) */
    bool tied_head;         /* lm head is the token embedding */
    enum lsa_qkv_layout qkv_layout;
    bool gate_up_fused;     /* phi3 gate_up_proj: [gate | up] */
    bool qkv_bias, o_bias, mlp_bias;
    bool attn_scale_by_layer; /* gpt2 scale_attn_by_inverse_layer_idx */
    int sliding_window;     /* mistral/phi3: a query sees the last sliding_window keys; 0 = unlimited */
    int bos_id, eos_id;     /* from config, -1 if none */
    char dtype[16];         /* the stored weight dtype, e.g. "F32", "BF16" */
};

struct lsa_model;

/*
 * Resolve a user-given model name (folder, file or HF id) to a path on disk, written to out (size cap).
 * LSA_EIO with a message listing where it looked when nothing is found.
 */
int lsa_model_resolve(const char *name, char *out, size_t cap);

/* Parse config.json into *arch (no weights). */
int lsa_arch_from_config(const char *config_path, struct lsa_arch *arch);

/* Load a model (resolving name as above) with its tokenizer when one is found beside it. */
struct lsa_model *lsa_model_load(const char *name);

/*
 * F16/BF16 weights: widened to float32 once at load (EAGER), or kept memory-mapped in their stored dtype
 * and widened one matrix at a time by the forward (LAZY: resident memory is about the mapped weights plus
 * one float32 matrix, so a 7-8B bf16 checkpoint runs in 24 GiB). AUTO picks LAZY when the float32 copy
 * would exceed a quarter of physical memory. Results are identical either way (widening is exact).
 */
enum lsa_widen { LSA_WIDEN_AUTO = 0, LSA_WIDEN_EAGER = 1, LSA_WIDEN_LAZY = 2 };

struct lsa_model_opts {
    const char *tokenizer; /* llama2.c tokenizer.bin; NULL = found beside the model */
    enum lsa_widen widen;
};

struct lsa_model *lsa_model_load_opts(const char *name, const struct lsa_model_opts *o);
bool lsa_model_is_lazy(const struct lsa_model *m);
void lsa_model_free(struct lsa_model *m);

const struct lsa_arch *lsa_model_arch(const struct lsa_model *m);
/* Borrowed; NULL when the checkpoint has no tokenizer. */
const struct lsa_tokenizer *lsa_model_tokenizer(const struct lsa_model *m);
const char *lsa_model_path(const struct lsa_model *m); /* the resolved path */
int64_t lsa_model_n_params(const struct lsa_model *m); /* stored parameters, tied head counted once */

#ifdef __cplusplus
}
#endif
#endif
