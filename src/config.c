/*
 * config.c — config.json (transformers 4.x or 5.x style) → struct lsa_arch.
 *
 * 4.x writes rope settings at the top level (rope_theta, rope_scaling, partial_rotary_factor, and for
 * gpt_neox rotary_pct / rotary_emb_base); 5.x nests them in "rope_parameters". Both are read; where both
 * appear the nested one wins, as in transformers 5. Defaults are the ones each transformers config class
 * uses when a key is absent. RoPE scaling types other than default/linear are refused, never ignored.
 */
#include "lsa/model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *get(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

/* Integer config value: def when absent; *bad set when present but not a non-negative integer. */
/* Far beyond any released model, yet small enough that products of two dimensions fit in 64 bits and
 * four times one fits in an int. */
enum { LSA_MAX_DIM = 1 << 20, LSA_MAX_VOCAB = 1 << 24 };

static int get_int(const cJSON *o, const char *key, int def, const char **bad)
{
    const cJSON *v = get(o, key);
    if (!v) return def;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 || v->valuedouble != floor(v->valuedouble)) {
        *bad = key;
        return def;
    }
    return (int)v->valuedouble;
}

static double get_num(const cJSON *o, const char *key, double def, const char **bad)
{
    const cJSON *v = get(o, key);
    if (!v) return def;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        *bad = key;
        return def;
    }
    return v->valuedouble;
}

static bool get_bool(const cJSON *o, const char *key, bool def)
{
    const cJSON *v = get(o, key);
    return v && cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int parse_act(const char *path, const char *name, enum lsa_act_kind *act)
{
    static const struct {
        const char *name;
        enum lsa_act_kind act;
    } tab[] = {
        {"silu", LSA_ACT_SILU},          {"swish", LSA_ACT_SILU},         {"gelu", LSA_ACT_GELU},
        {"gelu_new", LSA_ACT_GELU_TANH}, {"gelu_pytorch_tanh", LSA_ACT_GELU_TANH},
        {"gelu_fast", LSA_ACT_GELU_TANH}, {"relu", LSA_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(name, tab[i].name) == 0) {
            *act = tab[i].act;
            return 0;
        }
    return lsa_err(LSA_EUNSUP, "%s: activation \"%s\" is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh, "
                   "gelu_fast, relu)", path, name);
}

/* RoPE settings from rope_parameters (5.x) overriding top-level keys (4.x). */
static int parse_rope(const char *path, const cJSON *root, struct lsa_arch *a, double def_partial,
                      const char **bad)
{
    const cJSON *rp = get(root, "rope_parameters");
    if (rp && !cJSON_IsObject(rp)) return lsa_err(LSA_EFORMAT, "%s: rope_parameters is not an object", path);
    double theta = get_num(root, "rope_theta", get_num(root, "rotary_emb_base", 10000.0, bad), bad);
    double partial = get_num(root, "partial_rotary_factor", get_num(root, "rotary_pct", def_partial, bad), bad);
    const cJSON *scaling = get(root, "rope_scaling");
    if (rp) {
        theta = get_num(rp, "rope_theta", theta, bad);
        partial = get_num(rp, "partial_rotary_factor", partial, bad);
        scaling = rp; /* 5.x keeps rope_type and factor in the same object */
    }
    a->rope_theta = theta;
    a->rope_linear_factor = 1.0;
    if (scaling) {
        if (!cJSON_IsObject(scaling)) return lsa_err(LSA_EFORMAT, "%s: rope_scaling is not an object", path);
        const char *type = get_str(scaling, "rope_type");
        if (!type) type = get_str(scaling, "type");
        if (!type) type = "default";
        if (strcmp(type, "linear") == 0) {
            a->rope_linear_factor = get_num(scaling, "factor", 1.0, bad);
            if (!(a->rope_linear_factor > 0))
                return lsa_err(LSA_EFORMAT, "%s: rope scaling factor must be > 0", path);
        } else if (strcmp(type, "default") != 0) {
            return lsa_err(LSA_EUNSUP, "%s: rope scaling type \"%s\" is not implemented (default, linear)", path,
                           type);
        }
    }
    if (!(theta > 0)) return lsa_err(LSA_EFORMAT, "%s: rope_theta must be > 0 (found %g)", path, theta);
    if (!(partial > 0 && partial <= 1))
        return lsa_err(LSA_EFORMAT, "%s: partial rotary factor must be in (0, 1] (found %g)", path, partial);
    a->rope_dims = (int)(a->d_head * partial);
    a->rope_dims -= a->rope_dims % 2;
    return 0;
}

static int fill_arch(const char *path, const cJSON *root, struct lsa_arch *a)
{
    const char *bad = NULL;
    const char *mt = get_str(root, "model_type");
    if (!mt) return lsa_err(LSA_EFORMAT, "%s: no model_type", path);
    if (strlen(mt) >= sizeof a->model_type) return lsa_err(LSA_EUNSUP, "%s: unknown model_type", path);
    memset(a, 0, sizeof *a);
    strcpy(a->model_type, mt);
    a->bos_id = get_int(root, "bos_token_id", -1, &bad);
    a->eos_id = get_int(root, "eos_token_id", -1, &bad);
    bad = NULL; /* token ids may be lists in some configs; they are informative only */
    a->n_vocab = get_int(root, "vocab_size", 0, &bad);
    a->rope_linear_factor = 1.0;
    const char *act = NULL;
    double def_partial = 1.0;

    if (strcmp(mt, "gpt2") == 0) {
        a->d_model = get_int(root, "n_embd", 768, &bad);
        a->n_layer = get_int(root, "n_layer", 12, &bad);
        a->n_head = get_int(root, "n_head", 12, &bad);
        a->n_head_kv = a->n_head;
        /* the default is computed before the range check below, so keep it from overflowing */
        a->d_ff = get_int(root, "n_inner", a->d_model <= LSA_MAX_DIM ? 4 * a->d_model : 0, &bad);
        a->n_ctx = get_int(root, "n_positions", 1024, &bad);
        a->norm = LSA_NORM_LAYER;
        a->norm_bias = true;
        a->norm_eps = (float)get_num(root, "layer_norm_epsilon", 1e-5, &bad);
        act = get_str(root, "activation_function");
        if (!act) act = "gelu_new";
        a->pos = LSA_POS_LEARNED;
        a->tied_head = get_bool(root, "tie_word_embeddings", true);
        a->qkv_layout = LSA_QKV_CONCAT;
        a->qkv_bias = a->o_bias = a->mlp_bias = true;
        a->attn_scale_by_layer = get_bool(root, "scale_attn_by_inverse_layer_idx", false);
        if (!get_bool(root, "scale_attn_weights", true))
            return lsa_err(LSA_EUNSUP, "%s: scale_attn_weights=false is not supported", path);
    } else if (strcmp(mt, "gpt_neox") == 0) {
        a->d_model = get_int(root, "hidden_size", 0, &bad);
        a->n_layer = get_int(root, "num_hidden_layers", 0, &bad);
        a->n_head = get_int(root, "num_attention_heads", 0, &bad);
        a->n_head_kv = a->n_head;
        a->d_ff = get_int(root, "intermediate_size", 0, &bad);
        a->n_ctx = get_int(root, "max_position_embeddings", 2048, &bad);
        a->norm = LSA_NORM_LAYER;
        a->norm_bias = true;
        a->norm_eps = (float)get_num(root, "layer_norm_eps", 1e-5, &bad);
        act = get_str(root, "hidden_act");
        if (!act) act = "gelu";
        a->pos = LSA_POS_ROPE;
        a->parallel_residual = get_bool(root, "use_parallel_residual", true);
        a->tied_head = get_bool(root, "tie_word_embeddings", false);
        a->qkv_layout = LSA_QKV_PER_HEAD;
        a->qkv_bias = a->o_bias = get_bool(root, "attention_bias", true);
        a->mlp_bias = true;
        def_partial = 0.25;
    } else if (!strcmp(mt, "llama") || !strcmp(mt, "mistral") || !strcmp(mt, "qwen2") || !strcmp(mt, "gemma") ||
               !strcmp(mt, "phi3")) {
        bool gemma = !strcmp(mt, "gemma");
        a->d_model = get_int(root, "hidden_size", 0, &bad);
        a->n_layer = get_int(root, "num_hidden_layers", 0, &bad);
        a->n_head = get_int(root, "num_attention_heads", 0, &bad);
        a->n_head_kv = get_int(root, "num_key_value_heads", a->n_head, &bad);
        a->d_ff = get_int(root, "intermediate_size", 0, &bad);
        a->n_ctx = get_int(root, "max_position_embeddings", 2048, &bad);
        a->norm = LSA_NORM_RMS;
        a->norm_eps = (float)get_num(root, "rms_norm_eps", 1e-6, &bad);
        a->norm_plus_one = gemma;
        act = gemma ? get_str(root, "hidden_activation") : NULL;
        if (!act) act = get_str(root, "hidden_act");
        if (!act) act = gemma ? "gelu_pytorch_tanh" : "silu";
        a->gated_mlp = true;
        a->pos = LSA_POS_ROPE;
        a->embed_scale = gemma;
        a->tied_head = get_bool(root, "tie_word_embeddings", gemma);
        if (!strcmp(mt, "phi3")) {
            a->qkv_layout = LSA_QKV_CONCAT;
            a->gate_up_fused = true;
        }
        a->qkv_bias = !strcmp(mt, "qwen2") || get_bool(root, "attention_bias", false);
        a->o_bias = !strcmp(mt, "llama") && get_bool(root, "attention_bias", false);
        a->mlp_bias = get_bool(root, "mlp_bias", false);
        if (!strcmp(mt, "qwen2") && get_bool(root, "use_sliding_window", false))
            return lsa_err(LSA_EUNSUP, "%s: qwen2 use_sliding_window=true is not supported", path);
        if (strcmp(mt, "qwen2") != 0) a->sliding_window = get_int(root, "sliding_window", 0, &bad);
    } else {
        return lsa_err(LSA_EUNSUP, "%s: unknown model_type \"%s\" (lsa supports gpt2, llama, mistral, qwen2, gemma, "
                       "gpt_neox, phi3)", path, mt);
    }
    if (bad) return lsa_err(LSA_EFORMAT, "%s: %s has an invalid value", path, bad);
    if (a->d_model > LSA_MAX_DIM || a->d_ff > LSA_MAX_DIM || a->n_head > LSA_MAX_DIM || a->n_layer > LSA_MAX_DIM ||
        a->n_vocab > LSA_MAX_VOCAB)
        return lsa_err(LSA_EFORMAT, "%s: layers, hidden size, heads or intermediate size above %d, or vocab size "
                       "above %d (found %d, %d, %d, %d, %d)", path, LSA_MAX_DIM, LSA_MAX_VOCAB, a->n_layer,
                       a->d_model, a->n_head, a->d_ff, a->n_vocab);
    if (a->n_layer <= 0 || a->d_model <= 0 || a->n_head <= 0 || a->n_head_kv <= 0 || a->d_ff <= 0 || a->n_vocab <= 0)
        return lsa_err(LSA_EFORMAT, "%s: layers, hidden size, heads, kv heads, intermediate size and vocab size must "
                       "all be > 0 (found %d, %d, %d, %d, %d, %d)", path, a->n_layer, a->d_model, a->n_head,
                       a->n_head_kv, a->d_ff, a->n_vocab);
    if (a->n_head % a->n_head_kv)
        return lsa_err(LSA_EFORMAT, "%s: %d attention heads are not a multiple of %d key/value heads", path,
                       a->n_head, a->n_head_kv);
    int def_head = a->d_model / a->n_head;
    a->d_head = get_int(root, "head_dim", strcmp(mt, "gemma") == 0 ? 256 : def_head, &bad);
    if (a->qkv_layout != LSA_QKV_SEPARATE || a->pos == LSA_POS_LEARNED) a->d_head = def_head;
    if (bad || a->d_head <= 0 || a->d_head > LSA_MAX_DIM)
        return lsa_err(LSA_EFORMAT, "%s: head_dim has an invalid value", path);
    bool explicit_head = get(root, "head_dim") && a->qkv_layout == LSA_QKV_SEPARATE && a->pos == LSA_POS_ROPE;
    if (a->d_model % a->n_head && !explicit_head && strcmp(mt, "gemma") != 0)
        return lsa_err(LSA_EFORMAT, "%s: %d heads do not divide hidden size %d", path, a->n_head, a->d_model);
    if (!(a->norm_eps > 0)) return lsa_err(LSA_EFORMAT, "%s: norm epsilon must be > 0", path);
    int rc = parse_act(path, act, &a->act);
    if (rc) return rc;
    if (a->pos == LSA_POS_ROPE) {
        rc = parse_rope(path, root, a, def_partial, &bad);
        if (rc) return rc;
        if (bad) return lsa_err(LSA_EFORMAT, "%s: %s has an invalid value", path, bad);
    }
    return 0;
}

int lsa_arch_from_config(const char *path, struct lsa_arch *arch)
{
    char *txt = NULL;
    size_t len = 0;
    int rc = lsa_read_file(path, 64u << 20, &txt, &len);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lsa_err(LSA_EFORMAT, "%s: not a valid JSON object", path);
    }
    rc = fill_arch(path, root, arch);
    cJSON_Delete(root);
    return rc;
}
