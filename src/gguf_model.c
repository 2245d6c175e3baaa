/*
 * gguf_model.c — a GGUF checkpoint as an lsa model: llama.cpp metadata → struct lsa_arch, llama.cpp
 * tensor names → the same weights the safetensors loader binds, tokenizer.ggml.* → a tokenizer.
 *
 * Architectures (general.architecture): llama (also Mistral, which llama.cpp stores as llama), qwen2,
 * gemma, phi3, gpt2, gptneox. What differs from the Hugging Face layout, as convert_hf_to_gguf.py writes it:
 *   - llama: q and k rows are permuted to interleaved RoPE pairs (Meta's original layout); they are put
 *     back into the half-split order here, so that the model equals its HF form;
 *   - gemma: norm weights are stored as 1 + w, so the forward uses them as plain RMSNorm weights;
 *   - gpt2: the Conv1D matrices are stored transposed, i.e. as ordinary (out, in) linear weights;
 *   - gptneox: query_key_value is stored as [q | k | v], no longer per head;
 *   - phi3: ffn_up holds [gate | up].
 * GGUF lists a matrix's dimensions innermost first: ne = [n_in, n_out] is a torch (n_out, n_in) matrix.
 * Weights are float32 in memory: aligned F32 tensors are used in place, everything else is widened or
 * dequantized at load (gguf_quant.c).
 */
#include "lsa/gguf.h"
#include "model_impl.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum family { FAM_LLAMA, FAM_QWEN2, FAM_GEMMA, FAM_PHI3, FAM_GPT2, FAM_NEOX };

static const struct {
    const char *gguf, *model_type;
    enum family fam;
} archs[] = {
    {"llama", "llama", FAM_LLAMA}, {"qwen2", "qwen2", FAM_QWEN2},  {"gemma", "gemma", FAM_GEMMA},
    {"phi3", "phi3", FAM_PHI3},    {"gpt2", "gpt2", FAM_GPT2},     {"gptneox", "gpt_neox", FAM_NEOX},
};

struct ctx {
    struct lsa_model *m;
    struct lsa_gguf *g;
    const char *path;
    enum family fam;
    const char *arch; /* GGUF architecture name, the metadata key prefix */
    int64_t type_elems[64]; /* elements stored per ggml type, for the dtype label */
};

/* ---------------------------------------------------------------- metadata → arch */

static int meta_int(struct ctx *c, const char *key, int64_t def, int lo, int *out)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", c->arch, key);
    int64_t v;
    if (def < 0 && !lsa_gguf_find_kv(c->g, k)) return lsa_err(LSA_EFORMAT, "%s: metadata %s is missing", c->path, k);
    int rc = lsa_gguf_get_int(c->g, k, def, &v);
    if (rc) return rc;
    if (v < lo || v > (1 << 30))
        return lsa_err(LSA_EFORMAT, "%s: metadata %s is %lld (expected %d..%d)", c->path, k, (long long)v, lo, 1 << 30);
    *out = (int)v;
    return 0;
}

static int meta_float(struct ctx *c, const char *key, double def, double *out)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", c->arch, key);
    int rc = lsa_gguf_get_float(c->g, k, def, out);
    if (!rc && !isfinite(*out)) rc = lsa_err(LSA_EFORMAT, "%s: metadata %s is not finite", c->path, k);
    return rc;
}

static int token_id_meta(struct ctx *c, const char *key, int *out)
{
    int64_t v;
    int rc = lsa_gguf_get_int(c->g, key, -1, &v);
    *out = (v < 0 || v >= INT32_MAX) ? -1 : (int)v; /* llama.cpp writes 0xFFFFFFFF for "none" */
    return rc;
}

static bool has(struct ctx *c, const char *name) { return lsa_gguf_find_tensor(c->g, name) != NULL; }

static int fill_arch(struct ctx *c)
{
    struct lsa_arch *a = &c->m->arch;
    memset(a, 0, sizeof *a);
    snprintf(a->model_type, sizeof a->model_type, "%s", archs[c->fam].model_type);
    int rc;
    if ((rc = meta_int(c, "block_count", -1, 1, &a->n_layer)) || (rc = meta_int(c, "embedding_length", -1, 1, &a->d_model)) ||
        (rc = meta_int(c, "feed_forward_length", -1, 1, &a->d_ff)) ||
        (rc = meta_int(c, "attention.head_count", -1, 1, &a->n_head)) ||
        (rc = meta_int(c, "attention.head_count_kv", a->n_head, 1, &a->n_head_kv)) ||
        (rc = meta_int(c, "context_length", 2048, 1, &a->n_ctx)) ||
        (rc = meta_int(c, "attention.sliding_window", 0, 0, &a->sliding_window)))
        return rc;
    if (a->n_head % a->n_head_kv)
        return lsa_err(LSA_EFORMAT, "%s: %d attention heads are not a multiple of %d key/value heads", c->path,
                       a->n_head, a->n_head_kv);
    if ((rc = meta_int(c, "attention.key_length", a->d_model / a->n_head, 1, &a->d_head))) return rc;
    if (c->fam != FAM_LLAMA && c->fam != FAM_QWEN2 && c->fam != FAM_GEMMA && a->d_head * a->n_head != a->d_model)
        return lsa_err(LSA_EFORMAT, "%s: %d heads of %d do not make embedding_length %d", c->path, a->n_head,
                       a->d_head, a->d_model);
    const struct lsa_gguf_tensor *emb = lsa_gguf_find_tensor(c->g, "token_embd.weight");
    if (!emb) return lsa_err(LSA_EFORMAT, "%s: tensor token_embd.weight is missing", c->path);
    if (emb->n_dims != 2 || emb->ne[1] <= 0 || emb->ne[1] > INT32_MAX / 2)
        return lsa_err(LSA_EFORMAT, "%s: tensor token_embd.weight should be 2-dimensional", c->path);
    a->n_vocab = (int)emb->ne[1];
    if ((rc = token_id_meta(c, "tokenizer.ggml.bos_token_id", &a->bos_id)) ||
        (rc = token_id_meta(c, "tokenizer.ggml.eos_token_id", &a->eos_id)))
        return rc;

    bool ln = c->fam == FAM_GPT2 || c->fam == FAM_NEOX;
    double eps;
    if ((rc = meta_float(c, ln ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon", ln ? 1e-5 : 1e-6,
                         &eps)))
        return rc;
    if (!(eps > 0)) return lsa_err(LSA_EFORMAT, "%s: norm epsilon must be > 0", c->path);
    a->norm_eps = (float)eps;
    a->norm = ln ? LSA_NORM_LAYER : LSA_NORM_RMS;
    a->norm_bias = has(c, "blk.0.attn_norm.bias");
    a->tied_head = !has(c, "output.weight");
    a->pos = c->fam == FAM_GPT2 ? LSA_POS_LEARNED : LSA_POS_ROPE;
    a->gated_mlp = !ln;
    a->act = c->fam == FAM_GEMMA || c->fam == FAM_GPT2 ? LSA_ACT_GELU_TANH : c->fam == FAM_NEOX ? LSA_ACT_GELU
                                                                                                 : LSA_ACT_SILU;
    a->embed_scale = c->fam == FAM_GEMMA;
    a->qkv_layout = c->fam == FAM_PHI3 || ln ? LSA_QKV_CONCAT : LSA_QKV_SEPARATE;
    a->gate_up_fused = c->fam == FAM_PHI3;
    a->qkv_bias = has(c, "blk.0.attn_q.bias") || has(c, "blk.0.attn_qkv.bias");
    a->o_bias = has(c, "blk.0.attn_output.bias");
    a->mlp_bias = has(c, "blk.0.ffn_down.bias");
    if (c->fam == FAM_NEOX && (rc = lsa_gguf_get_bool(c->g, "gptneox.use_parallel_residual", true,
                                                      &a->parallel_residual)))
        return rc;
    a->rope_linear_factor = 1.0;
    if (a->pos == LSA_POS_ROPE) {
        if ((rc = meta_float(c, "rope.freq_base", 10000.0, &a->rope_theta)) ||
            (rc = meta_int(c, "rope.dimension_count", a->d_head, 2, &a->rope_dims)))
            return rc;
        if (!(a->rope_theta > 0)) return lsa_err(LSA_EFORMAT, "%s: rope.freq_base must be > 0", c->path);
        if (a->rope_dims > a->d_head || a->rope_dims % 2)
            return lsa_err(LSA_EFORMAT, "%s: rope.dimension_count %d should be even and at most the head size %d",
                           c->path, a->rope_dims, a->d_head);
        char k[128];
        struct lsa_gguf_str st;
        snprintf(k, sizeof k, "%s.rope.scaling.type", c->arch);
        if ((rc = lsa_gguf_get_str(c->g, k, &st))) return rc;
        double factor;
        if ((rc = meta_float(c, "rope.scaling.factor", 0.0, &factor))) return rc;
        if (st.p && st.n == 6 && !memcmp(st.p, "linear", 6)) {
            a->rope_linear_factor = factor;
        } else if (st.p && !(st.n == 4 && !memcmp(st.p, "none", 4))) {
            return lsa_err(LSA_EUNSUP, "%s: rope scaling type \"%.*s\" is not implemented (none, linear)", c->path,
                           (int)(st.n > 40 ? 40 : st.n), st.p);
        } else if (!st.p) {
            if ((rc = meta_float(c, "rope.scale_linear", 1.0, &a->rope_linear_factor))) return rc;
        }
        if (!(a->rope_linear_factor > 0)) return lsa_err(LSA_EFORMAT, "%s: rope scaling factor must be > 0", c->path);
    }
    return 0;
}

/* ---------------------------------------------------------------- weights */

/* Bind tensor `name` as a float32 (d0, d1) matrix (torch order; rank 1 when d1 == 0). permute_heads > 0:
 * un-permute interleaved RoPE rows in groups of d_head rows (d_head = d0 / permute_heads). */
static int bind(struct ctx *c, const float **out, const char *name, int64_t d0, int64_t d1, int permute_heads)
{
    const struct lsa_gguf_tensor *t = lsa_gguf_find_tensor(c->g, name);
    if (!t) return lsa_err(LSA_EFORMAT, "%s: tensor %s is missing", c->path, name);
    int rank = t->n_dims;
    while (rank > 1 && t->ne[rank - 1] == 1) rank--;
    bool ok = d1 ? (rank <= 2 && t->ne[0] == d1 && t->ne[1] == d0) : (rank == 1 && t->ne[0] == d0);
    if (!ok) {
        if (d1)
            return lsa_err(LSA_EFORMAT, "%s: tensor %s has ne [%lld,%lld,%lld,%lld], metadata says [%lld,%lld] "
                           "(GGUF order, innermost first)", c->path, name, (long long)t->ne[0], (long long)t->ne[1],
                           (long long)t->ne[2], (long long)t->ne[3], (long long)d1, (long long)d0);
        return lsa_err(LSA_EFORMAT, "%s: tensor %s has ne [%lld,%lld,%lld,%lld], metadata says [%lld]", c->path, name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                       (long long)d0);
    }
    struct lsa_model *m = c->m;
    m->n_params += t->n_elem;
    if (t->type < 64) c->type_elems[t->type] += t->n_elem;
    if (t->type == LSA_GGML_F32 && !permute_heads && (uintptr_t)t->data % sizeof(float) == 0) {
        *out = t->data;
        return 0;
    }
    float *w = lsa_model_alloc(m, (size_t)t->n_elem);
    if (!w) return LSA_ENOMEM;
    int rc = lsa_gguf_read_f32(c->g, t, w);
    if (!rc && permute_heads) {
        if (d0 % permute_heads || (d0 / permute_heads) % 2)
            return lsa_err(LSA_EFORMAT, "%s: tensor %s: %lld rows do not split into %d heads of even size", c->path,
                           name, (long long)d0, permute_heads);
        rc = lsa_rope_unpermute(w, permute_heads, (int)(d0 / permute_heads), d1 ? (size_t)d1 : 1);
    }
    *out = w;
    return rc;
}

static int bindf(struct ctx *c, const float **out, int64_t d0, int64_t d1, int permute, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int bindf(struct ctx *c, const float **out, int64_t d0, int64_t d1, int permute, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return bind(c, out, name, d0, d1, permute);
}

/* blk.<i>.<what>.weight (+ .bias), a linear (n_out, n_in). */
static int linear(struct ctx *c, struct lsa_linear *l, int i, const char *what, int n_in, int n_out, bool bias,
                  int permute)
{
    l->n_in = n_in;
    l->n_out = n_out;
    l->in_out = false;
    int rc = bindf(c, &l->w.f32, n_out, n_in, permute, "blk.%d.%s.weight", i, what);
    if (!rc && bias) rc = bindf(c, &l->b, n_out, 0, permute, "blk.%d.%s.bias", i, what);
    return rc;
}

static int norm(struct ctx *c, struct lsa_norm_w *n, const char *prefix, int d)
{
    int rc = bindf(c, &n->w, d, 0, 0, "%s.weight", prefix);
    if (!rc && c->m->arch.norm_bias) rc = bindf(c, &n->b, d, 0, 0, "%s.bias", prefix);
    return rc;
}

static int bind_layer(struct ctx *c, int i)
{
    const struct lsa_arch *a = &c->m->arch;
    struct lsa_layer_w *L = &c->m->layers[i];
    int d = a->d_model, q_dim = a->n_head * a->d_head, kv_dim = a->n_head_kv * a->d_head;
    char p[64];
    snprintf(p, sizeof p, "blk.%d.attn_norm", i);
    int rc = norm(c, &L->attn_norm, p, d);
    snprintf(p, sizeof p, "blk.%d.ffn_norm", i);
    if (!rc && !(rc = norm(c, &L->mlp_norm, p, d)) && a->qkv_layout == LSA_QKV_SEPARATE) {
        bool perm = c->fam == FAM_LLAMA;
        rc = linear(c, &L->q, i, "attn_q", d, q_dim, a->qkv_bias, perm ? a->n_head : 0);
        if (!rc) rc = linear(c, &L->k, i, "attn_k", d, kv_dim, a->qkv_bias, perm ? a->n_head_kv : 0);
        if (!rc) rc = linear(c, &L->v, i, "attn_v", d, kv_dim, a->qkv_bias, 0);
    } else if (!rc) {
        rc = linear(c, &L->qkv, i, "attn_qkv", d, q_dim + 2 * kv_dim, a->qkv_bias, 0);
    }
    if (!rc) rc = linear(c, &L->o, i, "attn_output", q_dim, d, a->o_bias, 0);
    if (!rc && a->gate_up_fused) {
        rc = linear(c, &L->gate_up, i, "ffn_up", d, 2 * a->d_ff, a->mlp_bias, 0);
    } else if (!rc && a->gated_mlp) {
        rc = linear(c, &L->gate, i, "ffn_gate", d, a->d_ff, a->mlp_bias, 0);
        if (!rc) rc = linear(c, &L->up, i, "ffn_up", d, a->d_ff, a->mlp_bias, 0);
    } else if (!rc) {
        rc = linear(c, &L->up, i, "ffn_up", d, a->d_ff, a->mlp_bias, 0);
    }
    if (!rc) rc = linear(c, &L->down, i, "ffn_down", a->d_ff, d, a->mlp_bias, 0);
    return rc;
}

static int bind_all(struct ctx *c)
{
    struct lsa_model *m = c->m;
    const struct lsa_arch *a = &m->arch;
    if (!(m->layers = calloc((size_t)a->n_layer, sizeof *m->layers))) return lsa_err(LSA_ENOMEM, "out of memory");
    int rc = bind(c, &m->tok_embd.f32, "token_embd.weight", a->n_vocab, a->d_model, 0);
    if (!rc && a->pos == LSA_POS_LEARNED) rc = bind(c, &m->pos_embd, "position_embd.weight", a->n_ctx, a->d_model, 0);
    for (int i = 0; i < a->n_layer && !rc; i++) rc = bind_layer(c, i);
    if (!rc) rc = norm(c, &m->final_norm, "output_norm", a->d_model);
    if (!rc) {
        if (a->tied_head) m->head = m->tok_embd;
        else rc = bind(c, &m->head.f32, "output.weight", a->n_vocab, a->d_model, 0);
    }
    if (rc) return rc;
    /* dtype: the type that stores the most weights */
    int best = 0;
    for (int t = 1; t < 64; t++)
        if (c->type_elems[t] > c->type_elems[best]) best = t;
    const char *nm = lsa_ggml_type_name((uint32_t)best);
    snprintf(m->arch.dtype, sizeof m->arch.dtype, "%s", nm ? nm : "?");
    return 0;
}

/* ---------------------------------------------------------------- tokenizer */

static int load_tokenizer(struct ctx *c)
{
    struct lsa_gguf_str model;
    int rc = lsa_gguf_get_str(c->g, "tokenizer.ggml.model", &model);
    if (rc || !model.p || (model.n == 8 && !memcmp(model.p, "no_vocab", 8))) return rc;
    bool sp = model.n == 5 && !memcmp(model.p, "llama", 5), bl = model.n == 4 && !memcmp(model.p, "gpt2", 4);
    if (!sp && !bl)
        return lsa_err(LSA_EUNSUP, "%s: tokenizer.ggml.model \"%.*s\" is not supported (llama, gpt2)", c->path,
                       (int)(model.n > 40 ? 40 : model.n), model.p);
    const struct lsa_gguf_kv *toks = lsa_gguf_find_kv(c->g, "tokenizer.ggml.tokens");
    const struct lsa_gguf_kv *scores = lsa_gguf_find_kv(c->g, "tokenizer.ggml.scores");
    const struct lsa_gguf_kv *types = lsa_gguf_find_kv(c->g, "tokenizer.ggml.token_type");
    const struct lsa_gguf_kv *merges = lsa_gguf_find_kv(c->g, "tokenizer.ggml.merges");
    if (!toks || toks->type != LSA_GGUF_ARRAY || toks->elem != LSA_GGUF_STRING || toks->n == 0 || toks->n > INT32_MAX / 2)
        return lsa_err(LSA_EFORMAT, "%s: tokenizer.ggml.tokens is missing or not an array of strings", c->path);
    uint64_t n = toks->n;
    if (scores && (scores->type != LSA_GGUF_ARRAY || scores->elem == LSA_GGUF_STRING || scores->n != n))
        return lsa_err(LSA_EFORMAT, "%s: tokenizer.ggml.scores should be %llu numbers", c->path, (unsigned long long)n);
    if (types && (types->type != LSA_GGUF_ARRAY || types->elem == LSA_GGUF_STRING || types->n != n))
        return lsa_err(LSA_EFORMAT, "%s: tokenizer.ggml.token_type should be %llu numbers", c->path,
                       (unsigned long long)n);
    if (bl && (!merges || merges->type != LSA_GGUF_ARRAY || merges->elem != LSA_GGUF_STRING))
        return lsa_err(LSA_EFORMAT, "%s: tokenizer.ggml.merges is missing or not an array of strings", c->path);
    struct lsa_tok_parts p = {.source = c->path, .kind = sp ? LSA_TOK_SP_BPE : LSA_TOK_BYTELEVEL_BPE,
                              .n_vocab = (int32_t)n};
    size_t nm = bl ? (size_t)merges->n : 0;
    const char **pieces = malloc((size_t)n * sizeof *pieces), **mp = malloc((nm ? nm : 1) * sizeof *mp);
    size_t *plen = malloc((size_t)n * sizeof *plen), *mlen = malloc((nm ? nm : 1) * sizeof *mlen);
    float *sc = scores ? malloc((size_t)n * sizeof *sc) : NULL;
    int32_t *ty = types ? malloc((size_t)n * sizeof *ty) : NULL;
    char *pre = NULL;
    if (!pieces || !mp || !plen || !mlen || (scores && !sc) || (types && !ty)) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < n && !rc; i++) {
        pieces[i] = toks->str[i].p;
        plen[i] = (size_t)toks->str[i].n;
        /* numbers of any stored type: checked before the conversion (NaN or 1e300 has no int32 or float) */
        double v = sc ? lsa_gguf_arr_num(scores, i) : 0, t = ty ? lsa_gguf_arr_num(types, i) : 0;
        if (!(fabs(v) <= FLT_MAX))
            rc = lsa_err(LSA_EFORMAT, "%s: tokenizer.ggml.scores[%llu] is %g, not a finite float", c->path,
                         (unsigned long long)i, v);
        else if (!(t >= INT32_MIN && t <= INT32_MAX && t == floor(t)))
            rc = lsa_err(LSA_EFORMAT, "%s: tokenizer.ggml.token_type[%llu] is %g, not a token type", c->path,
                         (unsigned long long)i, t);
        if (sc && !rc) sc[i] = (float)v;
        if (ty && !rc) ty[i] = (int32_t)t;
    }
    for (size_t i = 0; i < nm && !rc; i++) {
        mp[i] = merges->str[i].p;
        mlen[i] = (size_t)merges->str[i].n;
    }
    struct lsa_gguf_str ps;
    if (!rc) rc = lsa_gguf_get_str(c->g, "tokenizer.ggml.pre", &ps);
    if (!rc && ps.p && !(pre = strndup(ps.p, (size_t)(ps.n > 64 ? 64 : ps.n)))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    int bos = -1, eos = -1, unk = -1;
    if (!rc) rc = token_id_meta(c, "tokenizer.ggml.bos_token_id", &bos);
    if (!rc) rc = token_id_meta(c, "tokenizer.ggml.eos_token_id", &eos);
    if (!rc) rc = token_id_meta(c, "tokenizer.ggml.unknown_token_id", &unk);
    if (!rc) rc = lsa_gguf_get_bool(c->g, "tokenizer.ggml.add_bos_token", sp && bos >= 0, &p.add_bos);
    if (!rc) rc = lsa_gguf_get_bool(c->g, "tokenizer.ggml.add_eos_token", false, &p.add_eos);
    if (!rc) rc = lsa_gguf_get_bool(c->g, "tokenizer.ggml.add_space_prefix", sp, &p.add_space_prefix);
    if (!rc) {
        p.pieces = pieces;
        p.piece_len = plen;
        p.scores = sc;
        p.types = ty;
        p.merges = mp;
        p.merge_len = mlen;
        p.n_merges = nm;
        p.pre = pre;
        p.bos = bos;
        p.eos = eos;
        p.unk = sp ? unk : -1;
        if (!(c->m->tok = lsa_tokenizer_from_parts(&p))) rc = LSA_EFORMAT;
    }
    free(pieces), free(plen), free(mp), free(mlen), free(sc), free(ty), free(pre);
    if (!rc && lsa_tokenizer_n_vocab(c->m->tok) > c->m->arch.n_vocab)
        rc = lsa_err(LSA_EFORMAT, "%s: tokenizer has %d ids but token_embd has %d rows", c->path,
                     lsa_tokenizer_n_vocab(c->m->tok), c->m->arch.n_vocab);
    return rc;
}

/* ---------------------------------------------------------------- entry point */

int lsa_gguf_model_load(struct lsa_model *m)
{
    struct ctx c = {.m = m, .path = m->path};
    if (!(m->gguf = c.g = lsa_gguf_open(m->path))) return LSA_EFORMAT;
    struct lsa_gguf_str arch;
    int rc = lsa_gguf_get_str(c.g, "general.architecture", &arch);
    if (rc) return rc;
    if (!arch.p) return lsa_err(LSA_EFORMAT, "%s: metadata general.architecture is missing", m->path);
    size_t k = 0, n_arch = sizeof archs / sizeof archs[0];
    while (k < n_arch && !(strlen(archs[k].gguf) == arch.n && !memcmp(archs[k].gguf, arch.p, arch.n))) k++;
    if (k == n_arch)
        return lsa_err(LSA_EUNSUP, "%s: GGUF architecture \"%.*s\" is not supported (llama, qwen2, gemma, phi3, gpt2, "
                       "gptneox)", m->path, (int)(arch.n > 40 ? 40 : arch.n), arch.p);
    c.fam = archs[k].fam;
    c.arch = archs[k].gguf;
    if ((rc = fill_arch(&c)) || (rc = bind_all(&c))) return rc;
    return load_tokenizer(&c);
}
