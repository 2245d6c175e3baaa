/*
 * model.c — resolve a model name to a folder or file, dispatch on what it is (Hugging Face folder, GGUF
 * file by its magic, llama2.c .bin), read an HF folder's config and tokenizer, and bind every weight the
 * architecture needs, checking each tensor's presence and shape against the config. GGUF and llama2.c
 * checkpoints are bound by gguf_model.c and llama2c.c onto the same struct lsa_arch and weights. It
 * computes nothing; forward.c does.
 */
#include "lsa/gguf.h"
#include "lsa/llama2c.h"
#include "model_impl.h"
#include "packed.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- resolving names */

static bool is_dir(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static bool exists(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0;
}

/* An HF id is "name" or "org/name" made of [A-Za-z0-9._-]. */
static bool looks_like_hf_id(const char *s)
{
    int slashes = 0;
    if (!*s || *s == '.' || *s == '/') return false;
    for (const char *p = s; *p; p++) {
        if (*p == '/') {
            if (++slashes > 1 || p[1] == 0) return false;
        } else if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= 'A' && *p <= 'Z'))) {
            return false;
        }
    }
    return true;
}

static void hub_dir(char *out, size_t cap)
{
    const char *v;
    if ((v = getenv("HF_HUB_CACHE")) && *v) snprintf(out, cap, "%s", v);
    else if ((v = getenv("HF_HOME")) && *v) snprintf(out, cap, "%s/hub", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v) snprintf(out, cap, "%s/huggingface/hub", v);
    else snprintf(out, cap, "%s/.cache/huggingface/hub", getenv("HOME") ? getenv("HOME") : "");
}

int lsa_model_resolve(const char *name, char *out, size_t cap)
{
    if (exists(name) || !looks_like_hf_id(name)) {
        if (!exists(name)) return lsa_err(LSA_EIO, "%s: no such file or directory", name);
        if ((size_t)snprintf(out, cap, "%s", name) >= cap) return lsa_err(LSA_EINVAL, "%s: path too long", name);
        return 0;
    }
    char hub[PATH_MAX], repo[PATH_MAX + 600], ref[sizeof repo + 16], snap[sizeof repo + 160];
    hub_dir(hub, sizeof hub);
    char id[256];
    snprintf(id, sizeof id, "%s", name);
    for (char *p = id; *p; p++)
        if (*p == '/') *p = 0x01; /* placeholder, replaced by "--" below */
    char flat[512] = "";
    for (char *p = id; *p; p++) {
        size_t n = strlen(flat);
        if (*p == 0x01) snprintf(flat + n, sizeof flat - n, "--");
        else snprintf(flat + n, sizeof flat - n, "%c", *p);
    }
    snprintf(repo, sizeof repo, "%s/models--%s", hub, flat);
    if (!is_dir(repo))
        return lsa_err(LSA_EIO, "%s: not a file or folder, and not in the Hugging Face cache (looked for %s; set "
                       "HF_HOME or HF_HUB_CACHE if your cache is elsewhere)", name, repo);
    snprintf(ref, sizeof ref, "%s/refs/main", repo);
    FILE *f = fopen(ref, "r");
    char rev[128] = "";
    if (f) {
        if (!fgets(rev, sizeof rev, f)) rev[0] = 0;
        fclose(f);
        rev[strcspn(rev, "\r\n")] = 0;
    }
    if (!rev[0] || strchr(rev, '/'))
        return lsa_err(LSA_EIO, "%s: cached at %s but %s is missing or empty", name, repo, ref);
    snprintf(snap, sizeof snap, "%s/snapshots/%s", repo, rev);
    if (!is_dir(snap)) return lsa_err(LSA_EIO, "%s: refs/main names snapshot %s, which is not in %s", name, rev, repo);
    if ((size_t)snprintf(out, cap, "%s", snap) >= cap) return lsa_err(LSA_EINVAL, "%s: path too long", snap);
    return 0;
}

/* ---------------------------------------------------------------- helpers for the format loaders */

float *lsa_model_alloc(struct lsa_model *m, size_t n)
{
    float **v = realloc(m->owned, (m->n_owned + 1) * sizeof *v);
    if (!v) {
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    m->owned = v;
    float *w = malloc(n * sizeof *w + 1);
    if (!w) {
        lsa_err(LSA_ENOMEM, "%s: out of memory for %zu weights", m->path, n);
        return NULL;
    }
    m->owned[m->n_owned++] = w;
    return w;
}

int lsa_rope_unpermute(float *w, int n_head, int d_head, size_t row_len)
{
    int half = d_head / 2;
    size_t head = (size_t)d_head * row_len;
    float *tmp = malloc(head * sizeof *tmp);
    if (!tmp) return lsa_err(LSA_ENOMEM, "out of memory");
    for (int h = 0; h < n_head; h++) {
        float *x = w + (size_t)h * head;
        memcpy(tmp, x, head * sizeof *tmp);
        /* interleaved row 2i + j (pair i, member j) goes to half-split row j * half + i */
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy(x + (size_t)(j * half + i) * row_len, tmp + (size_t)(2 * i + j) * row_len, row_len * sizeof *x);
    }
    free(tmp);
    return 0;
}

/* ---------------------------------------------------------------- binding weights */

struct binder {
    struct lsa_model *m;
    bool lazy;           /* keep F16/BF16 matrices in their stored form */
    char file[PATH_MAX]; /* for messages */
};

/* Find a tensor by name, also without the leading component ("model.", "transformer.", "gpt_neox."),
 * since base-model saves drop it. */
static const struct lsa_st_tensor *find(struct binder *b, const char *name)
{
    const struct lsa_st_tensor *t = lsa_st_find(b->m->st, name);
    const char *dot = strchr(name, '.');
    if (!t && dot) t = lsa_st_find(b->m->st, dot + 1);
    return t;
}

/* Find tensor `name` and check it has the expected shape (rank 1 when d1 == 0). */
static int lookup(struct binder *b, const struct lsa_st_tensor **out, const char *name, int64_t d0, int64_t d1)
{
    const struct lsa_st_tensor *t = find(b, name);
    if (!t) return lsa_err(LSA_EFORMAT, "%s: tensor %s is missing", b->file, name);
    bool ok = d1 ? (t->rank == 2 && t->shape[0] == d0 && t->shape[1] == d1) : (t->rank == 1 && t->shape[0] == d0);
    if (!ok) {
        char got[128] = "";
        for (int i = 0; i < t->rank; i++) {
            size_t n = strlen(got);
            snprintf(got + n, sizeof got - n, "%s%lld", i ? "," : "", (long long)t->shape[i]);
        }
        if (d1)
            return lsa_err(LSA_EFORMAT, "%s: tensor %s has shape [%s], config says [%lld,%lld]", t->file, name, got,
                           (long long)d0, (long long)d1);
        return lsa_err(LSA_EFORMAT, "%s: tensor %s has shape [%s], config says [%lld]", t->file, name, got,
                       (long long)d0);
    }
    if (t->dtype != LSA_DT_F32 && t->dtype != LSA_DT_F16 && t->dtype != LSA_DT_BF16)
        return lsa_err(LSA_EUNSUP, "%s: tensor %s has dtype %s; lsa reads F32, F16 and BF16", t->file, t->name,
                       t->dtype_name);
    b->m->n_params += t->n_elem;
    *out = t;
    return 0;
}

/* Bind a float32 view of tensor `name`: in place when it is aligned F32, else widened now. */
static int bind(struct binder *b, const float **out, const char *name, int64_t d0, int64_t d1)
{
    const struct lsa_st_tensor *t;
    int rc = lookup(b, &t, name, d0, d1);
    if (rc) return rc;
    if (t->dtype == LSA_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return 0;
    }
    float *w = lsa_model_alloc(b->m, (size_t)t->n_elem);
    if (!w) return lsa_err(LSA_ENOMEM, "%s: out of memory widening %s", t->file, name);
    lsa_widen_f32(t->dtype, t->data, (size_t)t->n_elem, w);
    *out = w;
    return 0;
}

/* Bind a weight matrix: like bind, except that a lazy model keeps F16/BF16 matrices in the mapping. */
static int bind_mat(struct binder *b, struct lsa_mat *out, const char *name, int64_t d0, int64_t d1)
{
    const struct lsa_st_tensor *t;
    if (!b->lazy || !find(b, name) || find(b, name)->dtype == LSA_DT_F32) return bind(b, &out->f32, name, d0, d1);
    int rc = lookup(b, &t, name, d0, d1);
    if (rc) return rc;
    out->f32 = NULL;
    out->raw = t->data;
    out->dt = t->dtype;
    b->m->lazy = true;
    if ((size_t)t->n_elem > b->m->max_lazy) b->m->max_lazy = (size_t)t->n_elem;
    return 0;
}

static int bindf(struct binder *b, const float **out, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bindf(struct binder *b, const float **out, int64_t d0, int64_t d1, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return bind(b, out, name, d0, d1);
}

/* A linear layer "<prefix>.weight" (+ ".bias" when has_bias). */
static int bind_linear(struct binder *b, struct lsa_linear *l, const char *prefix, int n_in, int n_out, bool in_out,
                       bool has_bias)
{
    l->n_in = n_in;
    l->n_out = n_out;
    l->in_out = in_out;
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int rc = bind_mat(b, &l->w, name, in_out ? n_in : n_out, in_out ? n_out : n_in);
    if (!rc && has_bias) rc = bindf(b, &l->b, n_out, 0, "%s.bias", prefix);
    return rc;
}

static int bind_norm(struct binder *b, struct lsa_norm_w *n, const char *prefix, int d, bool has_bias)
{
    int rc = bindf(b, &n->w, d, 0, "%s.weight", prefix);
    if (!rc && has_bias) rc = bindf(b, &n->b, d, 0, "%s.bias", prefix);
    return rc;
}

/* Tensor names per family: printf patterns taking the layer index. */
struct names {
    const char *embd, *pos, *final_norm, *head;
    const char *attn_norm, *mlp_norm, *q, *k, *v, *qkv, *o, *gate, *up, *gate_up, *down;
};

static const struct names llama_names = {
    "model.embed_tokens.weight", NULL, "model.norm", "lm_head.weight",
    "model.layers.%d.input_layernorm", "model.layers.%d.post_attention_layernorm",
    "model.layers.%d.self_attn.q_proj", "model.layers.%d.self_attn.k_proj", "model.layers.%d.self_attn.v_proj",
    "model.layers.%d.self_attn.qkv_proj", "model.layers.%d.self_attn.o_proj", "model.layers.%d.mlp.gate_proj",
    "model.layers.%d.mlp.up_proj", "model.layers.%d.mlp.gate_up_proj", "model.layers.%d.mlp.down_proj",
};
static const struct names gpt2_names = {
    "transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f", "lm_head.weight",
    "transformer.h.%d.ln_1", "transformer.h.%d.ln_2", NULL, NULL, NULL, "transformer.h.%d.attn.c_attn",
    "transformer.h.%d.attn.c_proj", NULL, "transformer.h.%d.mlp.c_fc", NULL, "transformer.h.%d.mlp.c_proj",
};
static const struct names neox_names = {
    "gpt_neox.embed_in.weight", NULL, "gpt_neox.final_layer_norm", "embed_out.weight",
    "gpt_neox.layers.%d.input_layernorm", "gpt_neox.layers.%d.post_attention_layernorm", NULL, NULL, NULL,
    "gpt_neox.layers.%d.attention.query_key_value", "gpt_neox.layers.%d.attention.dense", NULL,
    "gpt_neox.layers.%d.mlp.dense_h_to_4h", NULL, "gpt_neox.layers.%d.mlp.dense_4h_to_h",
};

static int bind_layer(struct binder *b, const struct names *nm, int i)
{
    const struct lsa_arch *a = &b->m->arch;
    struct lsa_layer_w *L = &b->m->layers[i];
    bool conv1d = a->pos == LSA_POS_LEARNED; /* GPT-2 stores Conv1D (in, out) */
    int q_dim = a->n_head * a->d_head, kv_dim = a->n_head_kv * a->d_head;
    char p[256];
#define NAME(pat) (snprintf(p, sizeof p, pat, i), p)
    int rc = bind_norm(b, &L->attn_norm, NAME(nm->attn_norm), a->d_model, a->norm_bias);
    if (!rc) rc = bind_norm(b, &L->mlp_norm, NAME(nm->mlp_norm), a->d_model, a->norm_bias);
    if (!rc && a->qkv_layout == LSA_QKV_SEPARATE) {
        rc = bind_linear(b, &L->q, NAME(nm->q), a->d_model, q_dim, false, a->qkv_bias);
        if (!rc) rc = bind_linear(b, &L->k, NAME(nm->k), a->d_model, kv_dim, false, a->qkv_bias);
        if (!rc) rc = bind_linear(b, &L->v, NAME(nm->v), a->d_model, kv_dim, false, a->qkv_bias);
    } else if (!rc) {
        rc = bind_linear(b, &L->qkv, NAME(nm->qkv), a->d_model, q_dim + 2 * kv_dim, conv1d, a->qkv_bias);
    }
    if (!rc) rc = bind_linear(b, &L->o, NAME(nm->o), q_dim, a->d_model, conv1d, a->o_bias);
    if (!rc && a->gate_up_fused) rc = bind_linear(b, &L->gate_up, NAME(nm->gate_up), a->d_model, 2 * a->d_ff, false,
                                                  a->mlp_bias);
    else if (!rc && a->gated_mlp) {
        rc = bind_linear(b, &L->gate, NAME(nm->gate), a->d_model, a->d_ff, false, a->mlp_bias);
        if (!rc) rc = bind_linear(b, &L->up, NAME(nm->up), a->d_model, a->d_ff, false, a->mlp_bias);
    } else if (!rc) {
        rc = bind_linear(b, &L->up, NAME(nm->up), a->d_model, a->d_ff, conv1d, a->mlp_bias);
    }
    if (!rc) rc = bind_linear(b, &L->down, NAME(nm->down), a->d_ff, a->d_model, conv1d, a->mlp_bias);
#undef NAME
    return rc;
}

static int bind_all(struct lsa_model *m, enum lsa_widen widen)
{
    struct binder b = {.m = m, .lazy = widen == LSA_WIDEN_LAZY};
    if (widen == LSA_WIDEN_AUTO) {
        /* Widen up front when the float32 copy of the F16/BF16 tensors fits a quarter of the memory; else keep
         * them mapped and widen one matrix at a time in the forward. */
        double bytes = 0, budget = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / 4;
        for (size_t i = 0; i < lsa_st_count(m->st); i++)
            if (lsa_st_at(m->st, i)->dtype != LSA_DT_F32) bytes += 4.0 * (double)lsa_st_at(m->st, i)->n_elem;
        b.lazy = bytes > budget;
    }
    snprintf(b.file, sizeof b.file, "%s", lsa_st_path(m->st));
    const struct lsa_arch *a = &m->arch;
    const struct names *nm = a->pos == LSA_POS_LEARNED ? &gpt2_names
                             : a->qkv_layout == LSA_QKV_PER_HEAD ? &neox_names : &llama_names;
    if (!(m->layers = calloc((size_t)a->n_layer, sizeof *m->layers))) return lsa_err(LSA_ENOMEM, "out of memory");
    int rc = bind_mat(&b, &m->tok_embd, nm->embd, a->n_vocab, a->d_model);
    if (!rc && nm->pos) rc = bind(&b, &m->pos_embd, nm->pos, a->n_ctx, a->d_model);
    for (int i = 0; i < a->n_layer && !rc; i++) rc = bind_layer(&b, nm, i);
    if (!rc) rc = bind_norm(&b, &m->final_norm, nm->final_norm, a->d_model, a->norm_bias);
    if (!rc) {
        /* Some tied checkpoints also store the head; an untied one must. */
        if (a->tied_head) m->head = m->tok_embd;
        else rc = bind_mat(&b, &m->head, nm->head, a->n_vocab, a->d_model);
    }
    if (!rc) {
        const struct lsa_st_tensor *t = find(&b, nm->embd);
        snprintf(m->arch.dtype, sizeof m->arch.dtype, "%s", t->dtype_name);
    }
    return rc;
}

/* ---------------------------------------------------------------- load / free */

enum source { SRC_HF, SRC_GGUF, SRC_LLAMA2C };

/* What kind of checkpoint path is: a folder, a GGUF file (by magic) or a llama2.c .bin. */
static int detect(const char *path, enum source *src)
{
    if (is_dir(path)) {
        *src = SRC_HF;
        return 0;
    }
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return lsa_err(LSA_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    size_t len = strlen(path);
    if (n == 4 && memcmp(magic, "GGUF", 4) == 0) *src = SRC_GGUF;
    else if ((len > 4 && strcmp(path + len - 4, ".bin") == 0) || (n == 4 && memcmp(magic, "ak42", 4) == 0))
        *src = SRC_LLAMA2C;
    else if (len > 5 && strcmp(path + len - 5, ".gguf") == 0)
        return lsa_err(LSA_EFORMAT, "%s: not a GGUF file (bad magic: expected \"GGUF\")", path);
    else
        return lsa_err(LSA_EUNSUP, "%s: not a model folder (config.json + model.safetensors), a GGUF file or a "
                       "llama2.c .bin checkpoint", path);
    return 0;
}

static int load_hf(struct lsa_model *m, enum lsa_widen widen)
{
    char p[PATH_MAX + 32];
    const char *dir = m->path;
    snprintf(p, sizeof p, "%s/config.json", dir);
    int rc = 0;
    if (!exists(p)) rc = lsa_err(LSA_EIO, "%s: config.json is missing", dir);
    if (!rc) rc = lsa_arch_from_config(p, &m->arch);
    if (!rc && !(m->st = lsa_st_open(dir))) rc = LSA_EFORMAT;
    if (!rc) rc = bind_all(m, widen);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (!rc && exists(p) && !(m->tok = lsa_tokenizer_load(p))) rc = LSA_EFORMAT;
    if (!rc && m->tok && lsa_tokenizer_n_vocab(m->tok) > m->arch.n_vocab)
        rc = lsa_err(LSA_EFORMAT, "%s: tokenizer has %d ids but the model's vocabulary is %d", p,
                     lsa_tokenizer_n_vocab(m->tok), m->arch.n_vocab);
    return rc;
}

/* t (cols, rows) = w (rows, cols)ᵀ, in blocks that keep both sides in cache. */
static void transpose(const float *w, size_t rows, size_t cols, float *t)
{
    enum { B = 32 };
    for (size_t i0 = 0; i0 < rows; i0 += B)
        for (size_t j0 = 0; j0 < cols; j0 += B)
            for (size_t i = i0; i < i0 + B && i < rows; i++)
                for (size_t j = j0; j < j0 + B && j < cols; j++) t[j * rows + i] = w[i * cols + j];
}

/* l's float32 weights copied as (n_in, n_out); a widened copy it replaces is freed. */
static int transpose_linear(struct lsa_model *m, struct lsa_linear *l)
{
    size_t n_in = (size_t)l->n_in, n_out = (size_t)l->n_out;
    float *t = lsa_model_alloc(m, n_in * n_out);
    if (!t) return LSA_ENOMEM;
    const float *w = l->w.f32;
    transpose(w, n_out, n_in, t);
    for (size_t k = 0; k + 1 < m->n_owned; k++) /* t is the last */
        if (m->owned[k] == w) {
            free(m->owned[k]);
            m->owned[k] = t;
            m->n_owned--;
            break;
        }
    l->w.f32 = t, l->w.raw = NULL, l->in_out = true;
    return 0;
}

/*
 * Linear layers packed once for oneDNN (src/packed.h), and where it has no fast kernel, in a small model,
 * stored as (n_in, n_out), the layout OpenBLAS packs fastest. OpenBLAS packs the weights at every GEMM
 * call, and in the split forward of a model with d_model 128 at T = 128 that packing was a fifth of the
 * time; (n_in, n_out) makes those GEMMs 4-18% faster, that forward 5-9%, and oneDNN's packed weights more;
 * at d_model 512-2048 oneDNN's packed weights made the forward 13-31% faster (bench/RESULTS.md). There the
 * transposition gains within noise (0-4%) and costs time at load (0.34 s at 512, 6.6 s at 2048), so it is
 * kept to d_model <= SMALL_MAX_D. Float32 weights in memory only (not a lazily widened model), while the
 * copies take under an eighth of the memory. LSA_ONEDNN=0 keeps every layer with OpenBLAS.
 */
#define SMALL_MAX_D 256

enum { LAYER_LINEARS = 9 };

/* Every linear of a layer, bound or not. */
static void layer_linears(struct lsa_layer_w *L, struct lsa_linear *li[LAYER_LINEARS])
{
    struct lsa_linear *all[LAYER_LINEARS] = {&L->qkv, &L->q, &L->k, &L->v, &L->o, &L->gate_up, &L->gate, &L->up, &L->down};
    memcpy(li, all, sizeof all);
}

/* A layer's linears that are float32 in memory and (n_out, n_in), NULL for the others. */
static void plain_linears(struct lsa_layer_w *L, struct lsa_linear *li[LAYER_LINEARS])
{
    layer_linears(L, li);
    for (int k = 0; k < LAYER_LINEARS; k++)
        if (!li[k]->w.f32 || li[k]->in_out) li[k] = NULL;
}

/* l packed for oneDNN, bias and all, when it is float32 in memory */
static void pack_linear(struct lsa_linear *l)
{
    if (l->w.f32 && !l->packed) l->packed = lsa_packed_new(l->w.f32, l->n_in, l->n_out, l->in_out, l->b);
}

/* Separate linears a, b, c (c may be NULL) with the same inputs, stacked into one (fused) when all can be
 * packed, so that their GEMM writes dense rows: oneDNN's fast kernels take no strided output. */
static int pack_stacked(struct lsa_model *m, struct lsa_linear *fused, struct lsa_linear *a, struct lsa_linear *b,
                        struct lsa_linear *c)
{
    struct lsa_linear *part[3] = {a, b, c};
    int n_out = 0, n_in = a->n_in;
    bool biased = false;
    for (int i = 0; i < 3 && part[i]; i++) {
        if (!part[i]->w.f32 || part[i]->in_out || part[i]->n_in != n_in) return 0;
        n_out += part[i]->n_out;
        biased |= part[i]->b != NULL;
    }
    /* the biases stacked the same way (qwen2's q, k, v), zeros for a part without one */
    float *bias = biased ? lsa_model_alloc(m, (size_t)n_out) : NULL;
    float *w = !biased || bias ? lsa_model_alloc(m, (size_t)n_out * n_in) : NULL;
    if (!w) return LSA_ENOMEM;
    size_t at = 0, bat = 0;
    for (int i = 0; i < 3 && part[i]; i++) {
        memcpy(w + at, part[i]->w.f32, (size_t)part[i]->n_out * n_in * sizeof *w);
        at += (size_t)part[i]->n_out * n_in;
        for (int j = 0; bias && j < part[i]->n_out; j++) bias[bat++] = part[i]->b ? part[i]->b[j] : 0.0f;
    }
    struct lsa_packed *p = lsa_packed_new(w, n_in, n_out, false, bias);
    if (p) {
        *fused = (struct lsa_linear){{.f32 = w}, bias, n_in, n_out, false, p};
    } else { /* w and bias, the last owned copies: nothing would use them */
        free(m->owned[--m->n_owned]);
        if (bias) free(m->owned[--m->n_owned]);
    }
    return 0;
}

/* A layer's linears packed for oneDNN where it has fast kernels for them (src/packed.h): q, k, v stacked
 * into qkv, gate and up into gate_up (the forward runs a packed fused one in place of the separate ones). */
static int pack_layer(struct lsa_model *m, struct lsa_layer_w *L)
{
    int rc = 0;
    if (L->qkv.w.f32) pack_linear(&L->qkv);
    else if (L->q.w.f32) rc = pack_stacked(m, &L->qkv, &L->q, &L->k, &L->v);
    if (m->arch.gated_mlp) {
        if (L->gate_up.w.f32) pack_linear(&L->gate_up);
        else if (!rc && L->gate.w.f32) rc = pack_stacked(m, &L->gate_up, &L->gate, &L->up, NULL);
    } else {
        pack_linear(&L->up);
    }
    pack_linear(&L->o);
    pack_linear(&L->down);
    return rc;
}

/* Whether l is one of the separate linears that a packed fused one replaces in the forward. */
static bool superseded(const struct lsa_layer_w *L, const struct lsa_linear *l)
{
    return (L->qkv.packed && (l == &L->q || l == &L->k || l == &L->v)) ||
           (L->gate_up.packed && (l == &L->gate || l == &L->up));
}

static int fast_linears(struct lsa_model *m)
{
    if (m->lazy || !m->layers) return 0;
    struct lsa_linear *li[LAYER_LINEARS];
    bool small = m->arch.d_model <= SMALL_MAX_D;
    double bytes = m->head.f32 ? 4.0 * m->arch.n_vocab * m->arch.d_model : 0;
    double budget = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / 8;
    for (int i = 0; i < m->arch.n_layer; i++) {
        layer_linears(&m->layers[i], li);
        for (int k = 0; k < LAYER_LINEARS; k++)
            if (li[k]->w.f32) bytes += 4.0 * li[k]->n_in * li[k]->n_out;
    }
    if (2 * bytes > budget) return 0; /* the packed copies, and the stacked q, k, v and gate, up beside them */
    bool pack = lsa_onednn_wanted();
    /* the head too: OpenBLAS packs all of it again for every block of logits (LOGIT_BLOCK tokens) */
    if (pack && m->head.f32)
        m->head_packed = lsa_packed_new(m->head.f32, m->arch.d_model, m->arch.n_vocab, false, NULL);
    for (int i = 0; i < m->arch.n_layer; i++) {
        struct lsa_layer_w *L = &m->layers[i];
        if (pack && pack_layer(m, L)) return LSA_ENOMEM;
        plain_linears(L, li);
        for (int k = 0; k < LAYER_LINEARS; k++)
            if (small && li[k] && !li[k]->packed && !superseded(L, li[k]) && transpose_linear(m, li[k]))
                return LSA_ENOMEM;
    }
    return 0;
}

/* Load name; tokenizer (a llama2.c tokenizer.bin) only for .bin checkpoints. */
static struct lsa_model *load(const char *name, const char *tokenizer, enum lsa_widen widen)
{
    char path[PATH_MAX];
    enum source src;
    if (lsa_model_resolve(name, path, sizeof path) || detect(path, &src)) return NULL;
    if (tokenizer && src != SRC_LLAMA2C) {
        lsa_err(LSA_EINVAL, "%s: a separate tokenizer file is only used with llama2.c .bin checkpoints", path);
        return NULL;
    }
    struct lsa_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    int rc = src == SRC_HF ? load_hf(m, widen) : src == SRC_GGUF ? lsa_gguf_model_load(m) : lsa_llama2c_model_load(m, tokenizer);
    if (!rc) rc = fast_linears(m);
    if (rc) {
        lsa_model_free(m);
        return NULL;
    }
    return m;
}

struct lsa_model *lsa_model_load(const char *name) { return load(name, NULL, LSA_WIDEN_AUTO); }

struct lsa_model *lsa_model_load_opts(const char *name, const struct lsa_model_opts *o)
{
    return load(name, o->tokenizer, o->widen);
}

struct lsa_model *lsa_llama2c_load(const char *path, const char *tokenizer_path)
{
    return load(path, tokenizer_path, LSA_WIDEN_AUTO);
}

bool lsa_model_is_lazy(const struct lsa_model *m) { return m->lazy; }

const float *lsa_mat_f32(const struct lsa_mat *m, size_t n, float *scratch)
{
    if (m->f32) return m->f32;
    lsa_widen_f32(m->dt, m->raw, n, scratch);
    return scratch;
}

void lsa_mat_rows(const struct lsa_mat *m, size_t cols, size_t r0, size_t nr, float *out)
{
    if (m->f32) memcpy(out, m->f32 + r0 * cols, nr * cols * sizeof *out);
    else lsa_widen_f32(m->dt, (const char *)m->raw + r0 * cols * 2, nr * cols, out);
}

void lsa_model_free(struct lsa_model *m)
{
    if (!m) return;
    struct lsa_linear *li[LAYER_LINEARS];
    for (int i = 0; m->layers && i < m->arch.n_layer; i++) {
        layer_linears(&m->layers[i], li);
        for (int k = 0; k < LAYER_LINEARS; k++) lsa_packed_free(li[k]->packed);
    }
    lsa_packed_free(m->head_packed);
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    lsa_tokenizer_free(m->tok);
    lsa_st_close(m->st);
    lsa_gguf_close(m->gguf);
    if (m->map) munmap(m->map, m->map_size);
    free(m->path);
    free(m);
}

const struct lsa_arch *lsa_model_arch(const struct lsa_model *m) { return &m->arch; }
const struct lsa_tokenizer *lsa_model_tokenizer(const struct lsa_model *m) { return m->tok; }
const char *lsa_model_path(const struct lsa_model *m) { return m->path; }
int64_t lsa_model_n_params(const struct lsa_model *m) { return m->n_params; }
