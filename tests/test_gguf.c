/*
 * test_gguf — the GGUF reader and GGUF checkpoints as models.
 *   1. stories260K.gguf: header, metadata and tensor infos as documented in its PROVENANCE.md; every
 *      weight equals the HF-layout stories260K-hf after the q/k rows are un-permuted (bit for bit).
 *   2. Every HF fixture is written here as a GGUF the way convert_hf_to_gguf.py lays it out (llama q/k rows
 *      permuted to interleaved RoPE pairs, gemma norms + 1, gpt2 Conv1D transposed, gpt_neox qkv reordered to
 *      [q|k|v], phi3 names), keeping the stored dtype (F32/F16/BF16); tiny-llama also with Q8_0 matrices.
 *      The golden_*-gguf ctests then run test_golden on these files (this test is their fixture setup).
 *   3. A synthetic 256-wide model with Q4_K and Q8_0 matrices loads and runs, and gives the same outputs as
 *      the same model written in F32 with the dequantized values.
 *   4. Corrupt files (generated here) give one-line errors naming the file and the problem.
 * Usage: test_gguf OUT_DIR LSA_BINARY
 */
#include "lsa/forward.h"
#include "lsa/gguf.h"
#include "lsa/h5.h"
#include "lsa/safetensors.h"
#include "model_impl.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ================================================================ a small GGUF writer */

struct buf {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        REQUIRE(b->p, "out of memory");
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct buf *b, const char *s, size_t n)
{
    put_u64(b, n);
    put(b, s, n);
}

struct wt { /* one tensor to write */
    char name[96];
    uint32_t type, n_dims;
    uint64_t ne[5];
    const void *data;
    size_t nbytes;
    int64_t offset; /* -1: placed by the writer */
};

struct gw {
    uint32_t version, align;
    struct buf kv;
    uint64_t n_kv;
    struct wt *t;
    size_t n_t; /* tensors point at caller memory kept alive until written */
};

static void kv_key(struct gw *w, const char *key, uint32_t type)
{
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
    w->n_kv++;
}
static void kv_str(struct gw *w, const char *key, const char *s)
{
    kv_key(w, key, LSA_GGUF_STRING);
    put_str(&w->kv, s, strlen(s));
}
static void kv_u32(struct gw *w, const char *key, uint32_t v)
{
    kv_key(w, key, LSA_GGUF_U32);
    put_u32(&w->kv, v);
}
static void kv_f32(struct gw *w, const char *key, float v)
{
    kv_key(w, key, LSA_GGUF_F32);
    put(&w->kv, &v, 4);
}
static void kv_bool(struct gw *w, const char *key, bool v)
{
    kv_key(w, key, LSA_GGUF_BOOL);
    unsigned char c = v;
    put(&w->kv, &c, 1);
}

static size_t vsize(uint32_t t)
{
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sz[t] : 0;
}

/* Copy a metadata entry read from another file. */
static void kv_copy(struct gw *w, const struct lsa_gguf_kv *kv)
{
    kv_key(w, kv->key, kv->type);
    if (kv->type == LSA_GGUF_ARRAY) {
        put_u32(&w->kv, kv->elem);
        put_u64(&w->kv, kv->n);
    }
    if (kv->elem == LSA_GGUF_STRING)
        for (uint64_t i = 0; i < kv->n; i++) put_str(&w->kv, kv->str[i].p, kv->str[i].n);
    else
        put(&w->kv, kv->data, kv->n * vsize(kv->elem));
}

static struct wt *tensor(struct gw *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                         const void *data, size_t nbytes)
{
    w->t = realloc(w->t, (w->n_t + 1) * sizeof *w->t);
    struct wt *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t i = 0; i < n_dims && i < 5; i++) t->ne[i] = ne[i];
    t->data = data;
    t->nbytes = nbytes;
    t->offset = -1;
    return t;
}

static struct buf gw_build(struct gw *w)
{
    struct buf b = {0}, data = {0};
    uint32_t a = w->align ? w->align : 32;
    put(&b, "GGUF", 4);
    put_u32(&b, w->version ? w->version : 3);
    put_u64(&b, w->n_t);
    put_u64(&b, w->n_kv);
    put(&b, w->kv.p, w->kv.n);
    for (size_t i = 0; i < w->n_t; i++) {
        struct wt *t = &w->t[i];
        while (data.n % a) put(&data, "", 1);
        uint64_t off = t->offset >= 0 ? (uint64_t)t->offset : data.n;
        put(&data, t->data, t->nbytes);
        put_str(&b, t->name, strlen(t->name));
        put_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&b, t->ne[d]);
        put_u32(&b, t->type);
        put_u64(&b, off);
    }
    while (b.n % a) put(&b, "", 1);
    put(&b, data.p, data.n);
    free(data.p);
    return b;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot write %s", path);
    REQUIRE(fwrite(p, 1, n, f) == n, "short write %s", path);
    fclose(f);
}

static void gw_write(struct gw *w, const char *path)
{
    struct buf b = gw_build(w);
    write_file(path, b.p, b.n);
    free(b.p);
}

static void gw_free(struct gw *w)
{
    free(w->kv.p);
    free(w->t);
    memset(w, 0, sizeof *w);
}

/* ================================================================ numbers */

static uint16_t to_f16(float f) /* round to nearest even, as ggml's GGML_FP32_TO_FP16 */
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
    if (e == 0xff) return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
    int ee = (int)e - 127 + 15;
    if (ee >= 31) return (uint16_t)(sign | 0x7c00);
    if (ee <= 0) {
        if (ee < -10) return (uint16_t)sign;
        m |= 0x800000;
        int shift = 14 - ee;
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((uint32_t)ee << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

/* ggml's quantize_row_q8_0_ref: d = amax / 127, q = round(x / d). */
static void quant_q8_0(const float *x, int64_t n, unsigned char *out)
{
    for (int64_t b = 0; b < n / 32; b++, x += 32, out += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        uint16_t h = to_f16(d);
        memcpy(out, &h, 2);
        for (int j = 0; j < 32; j++) out[2 + j] = (unsigned char)(int8_t)roundf(x[j] * id);
    }
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* ================================================================ 1. stories260K.gguf */

static void test_stories(void)
{
    const char *path = t_shared("models/stories260K/stories260K.gguf");
    struct lsa_gguf *g = lsa_gguf_open(path);
    REQUIRE(g, "%s", lsa_errmsg());
    CHECK(lsa_gguf_version(g) == 3 && lsa_gguf_n_kv(g) == 19 && lsa_gguf_n_tensors(g) == 48,
          "header: version %u, %zu keys, %zu tensors (want 3, 19, 48)", lsa_gguf_version(g), lsa_gguf_n_kv(g),
          lsa_gguf_n_tensors(g));
    CHECK(lsa_gguf_alignment(g) == 32 && lsa_gguf_data_offset(g) == 14176, "alignment %u, data at %llu (want 32, 14176)",
          lsa_gguf_alignment(g), (unsigned long long)lsa_gguf_data_offset(g));
    int64_t v;
    double eps;
    struct lsa_gguf_str s;
    CHECK(lsa_gguf_get_int(g, "llama.feed_forward_length", 0, &v) == 0 && v == 172, "feed_forward_length %lld", (long long)v);
    CHECK(lsa_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", 0, &eps) == 0 && (float)eps == 1e-5f,
          "rms eps %g", eps);
    CHECK(lsa_gguf_get_str(g, "tokenizer.ggml.model", &s) == 0 && s.n == 5 && !memcmp(s.p, "llama", 5), "tokenizer model");
    CHECK(lsa_gguf_get_int(g, "general.architecture", 0, &v) == LSA_EFORMAT && strstr(lsa_errmsg(), "should be an integer"),
          "a string read as an integer is an error: %s", lsa_errmsg());
    const struct lsa_gguf_kv *toks = lsa_gguf_find_kv(g, "tokenizer.ggml.tokens");
    CHECK(toks && toks->n == 512 && toks->str[259].n > 0, "512 tokens");
    const struct lsa_gguf_tensor *t = lsa_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    CHECK(t && t->n_dims == 2 && t->ne[0] == 172 && t->ne[1] == 64 && t->type == LSA_GGML_F32 && t->offset == 355840,
          "blk.0.ffn_down.weight info");
    lsa_gguf_close(g);

    /* the GGUF model, un-permuted, is the HF model bit for bit */
    struct lsa_model *a = lsa_model_load(path), *b = lsa_model_load(t_shared("fixtures/stories260K-hf"));
    REQUIRE(a && b, "load: %s", lsa_errmsg());
    size_t d = 64, kv = 32, ff = 172, bad = 0, n = 0;
#define SAME(x, y, cnt)                                                                                            \
    do {                                                                                                           \
        n++;                                                                                                       \
        if (memcmp((x), (y), (cnt) * sizeof(float))) bad++;                                                        \
    } while (0)
    SAME(a->tok_embd.f32, b->tok_embd.f32, 512 * d);
    SAME(a->head.f32, b->head.f32, 512 * d);
    SAME(a->final_norm.w, b->final_norm.w, d);
    for (int l = 0; l < 5; l++) {
        const struct lsa_layer_w *x = &a->layers[l], *y = &b->layers[l];
        SAME(x->q.w.f32, y->q.w.f32, d * d);
        SAME(x->k.w.f32, y->k.w.f32, kv * d);
        SAME(x->v.w.f32, y->v.w.f32, kv * d);
        SAME(x->o.w.f32, y->o.w.f32, d * d);
        SAME(x->gate.w.f32, y->gate.w.f32, ff * d);
        SAME(x->up.w.f32, y->up.w.f32, ff * d);
        SAME(x->down.w.f32, y->down.w.f32, ff * d);
        SAME(x->attn_norm.w, y->attn_norm.w, d);
        SAME(x->mlp_norm.w, y->mlp_norm.w, d);
    }
    CHECK(bad == 0, "%zu of %zu weight arrays of stories260K.gguf differ from stories260K-hf", bad, n);
    printf("stories260K.gguf: header, metadata and %zu weight arrays equal to the HF layout (bitwise)\n", n);
    lsa_model_free(a);
    lsa_model_free(b);
}

/* ================================================================ 2. HF fixtures → GGUF */

enum xform { X_NONE, X_PERM_Q, X_PERM_K, X_PLUS_ONE, X_TRANSPOSE, X_NEOX_QKV };

/* HF name → GGUF name and the reordering convert_hf_to_gguf.py applies. false: not written. */
static bool map_name(const char *mt, const char *hf, char *out, size_t cap, enum xform *x)
{
    static const char *rules[][3] = {
        /* HF suffix after the layer index, GGUF name, transform (as text) */
        {"input_layernorm", "attn_norm", ""},        {"post_attention_layernorm", "ffn_norm", ""},
        {"self_attn.q_proj", "attn_q", "q"},         {"self_attn.k_proj", "attn_k", "k"},
        {"self_attn.v_proj", "attn_v", ""},          {"self_attn.o_proj", "attn_output", ""},
        {"self_attn.qkv_proj", "attn_qkv", ""},      {"mlp.gate_proj", "ffn_gate", ""},
        {"mlp.up_proj", "ffn_up", ""},               {"mlp.down_proj", "ffn_down", ""},
        {"mlp.gate_up_proj", "ffn_up", ""},          {"ln_1", "attn_norm", ""},
        {"ln_2", "ffn_norm", ""},                    {"attn.c_attn", "attn_qkv", "t"},
        {"attn.c_proj", "attn_output", "t"},         {"mlp.c_fc", "ffn_up", "t"},
        {"mlp.c_proj", "ffn_down", "t"},             {"attention.query_key_value", "attn_qkv", "n"},
        {"attention.dense", "attn_output", ""},      {"mlp.dense_h_to_4h", "ffn_up", ""},
        {"mlp.dense_4h_to_h", "ffn_down", ""},
    };
    static const char *top[][2] = {
        {"model.embed_tokens", "token_embd"}, {"model.norm", "output_norm"},          {"lm_head", "output"},
        {"transformer.wte", "token_embd"},    {"transformer.wpe", "position_embd"},   {"transformer.ln_f", "output_norm"},
        {"gpt_neox.embed_in", "token_embd"},  {"gpt_neox.final_layer_norm", "output_norm"}, {"embed_out", "output"},
    };
    bool llama = !strcmp(mt, "llama") || !strcmp(mt, "mistral"), gemma = !strcmp(mt, "gemma");
    const char *dot = strrchr(hf, '.');
    if (!dot || (strcmp(dot, ".weight") && strcmp(dot, ".bias"))) return false;
    *x = X_NONE;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strncmp(hf, top[i][0], strlen(top[i][0])) && hf + strlen(top[i][0]) == dot) {
            snprintf(out, cap, "%s%s", top[i][1], dot);
            if (gemma && !strcmp(top[i][1], "output_norm")) *x = X_PLUS_ONE;
            return true;
        }
    const char *p = strstr(hf, "layers.");
    p = p ? p + 7 : (p = strstr(hf, ".h.")) ? p + 3 : NULL;
    if (!p) return false;
    int layer = atoi(p);
    p = strchr(p, '.') + 1;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (!strncmp(p, rules[i][0], strlen(rules[i][0])) && p + strlen(rules[i][0]) == dot) {
            snprintf(out, cap, "blk.%d.%s%s", layer, rules[i][1], dot);
            char c = rules[i][2][0];
            if (c == 'q' && llama) *x = X_PERM_Q;
            if (c == 'k' && llama) *x = X_PERM_K;
            if (c == 't' && !strcmp(dot, ".weight")) *x = X_TRANSPOSE;
            if (c == 'n') *x = X_NEOX_QKV;
            if (gemma && strstr(rules[i][1], "norm")) *x = X_PLUS_ONE;
            return true;
        }
    return false;
}

/* Reorder rows (rows of row_bytes): HF half-split → interleaved pairs, per head of dh rows. */
static void permute_rows(unsigned char *dst, const unsigned char *src, size_t rows, size_t row_bytes, int dh)
{
    int half = dh / 2;
    for (size_t r = 0; r < rows; r++) {
        size_t h = r / (size_t)dh, w = r % (size_t)dh; /* destination row within head: w = 2i + j */
        size_t from = h * (size_t)dh + (w % 2) * (size_t)half + w / 2;
        memcpy(dst + r * row_bytes, src + from * row_bytes, row_bytes);
    }
}

static const char *fixtures[] = {"tiny-llama", "tiny-qwen2", "tiny-mistral", "tiny-gemma", "tiny-gpt2", "tiny-gpt_neox",
                                 "tiny-phi3"};

/* Tokenizer of tiny-gpt2 from its tokenizer.json (tokens by id, merges, <|endoftext|> as control). */
static void gpt2_tokenizer(struct gw *w, const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    FILE *f = fopen(p, "rb");
    REQUIRE(f, "cannot read %s", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *txt = malloc((size_t)n + 1);
    REQUIRE(fread(txt, 1, (size_t)n, f) == (size_t)n, "short read");
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(txt, (size_t)n);
    free(txt);
    REQUIRE(root, "bad json %s", p);
    cJSON *model = cJSON_GetObjectItem(root, "model"), *vocab = cJSON_GetObjectItem(model, "vocab");
    cJSON *merges = cJSON_GetObjectItem(model, "merges");
    int nv = cJSON_GetArraySize(vocab);
    const char **tok = calloc((size_t)nv, sizeof *tok);
    for (cJSON *e = vocab->child; e; e = e->next) tok[(int)e->valuedouble] = e->string;
    kv_str(w, "tokenizer.ggml.model", "gpt2");
    kv_str(w, "tokenizer.ggml.pre", "gpt-2");
    kv_key(w, "tokenizer.ggml.tokens", LSA_GGUF_ARRAY);
    put_u32(&w->kv, LSA_GGUF_STRING);
    put_u64(&w->kv, (uint64_t)nv);
    for (int i = 0; i < nv; i++) put_str(&w->kv, tok[i], strlen(tok[i]));
    kv_key(w, "tokenizer.ggml.token_type", LSA_GGUF_ARRAY);
    put_u32(&w->kv, LSA_GGUF_I32);
    put_u64(&w->kv, (uint64_t)nv);
    for (int i = 0; i < nv; i++) put_u32(&w->kv, strcmp(tok[i], "<|endoftext|>") ? 1 : 3);
    kv_key(w, "tokenizer.ggml.merges", LSA_GGUF_ARRAY);
    put_u32(&w->kv, LSA_GGUF_STRING);
    put_u64(&w->kv, (uint64_t)cJSON_GetArraySize(merges));
    char m[512];
    for (cJSON *e = merges->child; e; e = e->next) {
        if (cJSON_IsString(e)) snprintf(m, sizeof m, "%s", e->valuestring);
        else snprintf(m, sizeof m, "%s %s", e->child->valuestring, e->child->next->valuestring);
        put_str(&w->kv, m, strlen(m));
    }
    kv_u32(w, "tokenizer.ggml.bos_token_id", 50256);
    kv_u32(w, "tokenizer.ggml.eos_token_id", 50256);
    free(tok);
    cJSON_Delete(root);
}

/* Write fixture `name` as GGUF; q8: F32 matrices whose rows are whole Q8_0 blocks become Q8_0, other F32
 * matrices F16 (norms and biases stay F32). */
static void convert(const char *name, const char *out, bool q8)
{
    char dir[256], cfg[300];
    snprintf(dir, sizeof dir, "../shared/fixtures/%s", name);
    t_shared(dir + 10);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    struct lsa_arch a;
    REQUIRE(lsa_arch_from_config(cfg, &a) == 0, "%s", lsa_errmsg());
    struct lsa_st *st = lsa_st_open(dir);
    REQUIRE(st, "%s", lsa_errmsg());
    const char *mt = a.model_type;
    const char *arch = !strcmp(mt, "mistral") ? "llama" : !strcmp(mt, "gpt_neox") ? "gptneox" : mt;
    bool ln = a.norm == LSA_NORM_LAYER;
    struct gw w = {.version = 3, .align = q8 ? 64 : 32};
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    kv_str(&w, "general.architecture", arch);
    if (q8) kv_u32(&w, "general.alignment", 64);
    kv_u32(&w, KEY("block_count"), (uint32_t)a.n_layer);
    kv_u32(&w, KEY("context_length"), (uint32_t)a.n_ctx);
    kv_u32(&w, KEY("embedding_length"), (uint32_t)a.d_model);
    kv_u32(&w, KEY("feed_forward_length"), (uint32_t)a.d_ff);
    kv_u32(&w, KEY("attention.head_count"), (uint32_t)a.n_head);
    kv_u32(&w, KEY("attention.head_count_kv"), (uint32_t)a.n_head_kv);
    kv_f32(&w, KEY(ln ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon"), a.norm_eps);
    if (a.pos == LSA_POS_ROPE) {
        kv_u32(&w, KEY("rope.dimension_count"), (uint32_t)a.rope_dims);
        kv_f32(&w, KEY("rope.freq_base"), (float)a.rope_theta);
    }
    if (!strcmp(mt, "gemma")) kv_u32(&w, KEY("attention.key_length"), (uint32_t)a.d_head);
    if (!strcmp(mt, "gpt_neox")) kv_bool(&w, KEY("use_parallel_residual"), a.parallel_residual);
    if (!strcmp(mt, "gpt2")) {
        gpt2_tokenizer(&w, dir);
    } else { /* the tiny SentencePiece fixtures share stories260K's vocabulary: copy its tokenizer metadata */
        struct lsa_gguf *src = lsa_gguf_open(t_shared("models/stories260K/stories260K.gguf"));
        REQUIRE(src, "%s", lsa_errmsg());
        for (size_t i = 0; i < lsa_gguf_n_kv(src); i++)
            if (!strncmp(lsa_gguf_kv_at(src, i)->key, "tokenizer.", 10)) kv_copy(&w, lsa_gguf_kv_at(src, i));
        lsa_gguf_close(src);
    }
    void **bufs = calloc(lsa_st_count(st), sizeof *bufs);
    for (size_t i = 0; i < lsa_st_count(st); i++) {
        const struct lsa_st_tensor *t = lsa_st_at(st, i);
        char gname[96];
        enum xform x;
        if (!map_name(mt, t->name, gname, sizeof gname, &x)) continue;
        if (!strcmp(gname, "output.weight") && a.tied_head) continue;
        size_t es = t->dtype == LSA_DT_F32 ? 4 : 2, rows = t->rank == 2 ? (size_t)t->shape[0] : (size_t)t->shape[0];
        size_t cols = t->rank == 2 ? (size_t)t->shape[1] : 1;
        unsigned char *d = malloc(t->nbytes + 1);
        const unsigned char *s = t->data;
        bufs[i] = d;
        switch (x) {
        case X_PERM_Q: case X_PERM_K: permute_rows(d, s, rows, cols * es, a.d_head); break;
        case X_TRANSPOSE:
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++) memcpy(d + (c * rows + r) * es, s + (r * cols + c) * es, es);
            rows = cols;
            cols = (size_t)t->shape[0];
            break;
        case X_NEOX_QKV: { /* per head [q_h | k_h | v_h] → [q | k | v] */
            size_t dh = (size_t)a.d_head, H = (size_t)a.n_head;
            for (size_t r = 0; r < rows; r++) {
                size_t h = r / (3 * dh), part = (r / dh) % 3, i2 = r % dh;
                memcpy(d + (part * H * dh + h * dh + i2) * cols * es, s + r * cols * es, cols * es);
            }
            break;
        }
        case X_PLUS_ONE:
            REQUIRE(es == 4, "gemma norms are F32 here");
            for (size_t e = 0; e < rows; e++) ((float *)(void *)d)[e] = ((const float *)t->data)[e] + 1.0f;
            break;
        default: memcpy(d, s, t->nbytes);
        }
        uint32_t type = t->dtype == LSA_DT_F32 ? LSA_GGML_F32 : t->dtype == LSA_DT_F16 ? LSA_GGML_F16 : LSA_GGML_BF16;
        size_t nbytes = t->nbytes;
        if (q8 && t->rank == 2 && t->dtype == LSA_DT_F32) {
            unsigned char *qd = malloc(rows * cols * 2 + 64);
            if (cols % 32 == 0) {
                quant_q8_0((const float *)(void *)d, (int64_t)(rows * cols), qd);
                type = LSA_GGML_Q8_0;
                nbytes = rows * cols / 32 * 34;
            } else {
                for (size_t e = 0; e < rows * cols; e++) {
                    uint16_t h = to_f16(((const float *)(void *)d)[e]);
                    memcpy(qd + 2 * e, &h, 2);
                }
                type = LSA_GGML_F16;
                nbytes = rows * cols * 2;
            }
            free(d);
            bufs[i] = d = qd;
        }
        uint64_t ne[2] = {cols, rows};
        if (t->rank == 1) ne[0] = rows;
        tensor(&w, gname, type, t->rank == 2 ? 2 : 1, ne, d, nbytes);
    }
    gw_write(&w, out);
    printf("wrote %s (%zu tensors%s)\n", out, w.n_t, q8 ? ", Q8_0 where rows are whole blocks, else F16" : "");
    for (size_t i = 0; i < lsa_st_count(st); i++) free(bufs[i]);
    free(bufs);
    gw_free(&w);
    lsa_st_close(st);
}

/* The byte-level tokenizer rebuilt from GGUF metadata gives tokenizer.json's ids on every fixture string. */
static void check_gpt2_tokenizer(const char *gguf)
{
    struct lsa_model *m = lsa_model_load(gguf);
    REQUIRE(m && lsa_model_tokenizer(m), "%s: %s", gguf, lsa_errmsg());
    const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
    CHECK(lsa_tokenizer_kind(tok) == LSA_TOK_BYTELEVEL_BPE && !lsa_tokenizer_adds_bos(tok), "gpt2 tokenizer kind");
    struct lsa_h5 *f = lsa_h5_open(t_shared("fixtures/tokenizer-gpt2.h5"));
    REQUIRE(f, "%s", lsa_errmsg());
    char **names;
    size_t n_names;
    int ok = 0;
    REQUIRE(lsa_h5_list(f, "/", &names, &n_names) == 0, "%s", lsa_errmsg());
    for (size_t g = 0; g < n_names; g++) {
        char dset[300], *text, *back;
        int64_t *want;
        int32_t *ids;
        size_t n_want, n, len;
        snprintf(dset, sizeof dset, "%s/ids", names[g]);
        REQUIRE(lsa_h5_attr_str(f, names[g], "text", &text) == 0 && lsa_h5_read_i64(f, dset, &want, &n_want) == 0,
                "%s", lsa_errmsg());
        REQUIRE(lsa_tokenizer_encode(tok, text, strlen(text), true, &ids, &n) == 0, "%s", lsa_errmsg());
        bool same = n == n_want;
        for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
        REQUIRE(lsa_tokenizer_decode(tok, ids, n, false, &back, &len) == 0, "%s", lsa_errmsg());
        same = same && len == strlen(text) && !memcmp(back, text, len);
        CHECK(same, "%s: \"%s\": ids or decode differ from tokenizer.json's", gguf, text);
        ok += same;
        free(text), free(want), free(ids), free(back);
    }
    printf("  gpt2 tokenizer from GGUF metadata: %d/%zu strings of tokenizer-gpt2.h5 give tokenizer.json's ids and "
           "decode back\n", ok, n_names);
    lsa_h5_free_names(names, n_names);
    lsa_h5_close(f);
    lsa_model_free(m);
}

/* ================================================================ 3. a synthetic Q4_K / Q8_0 model */

/* Write a one-layer llama, d = 256, with `qtype` blocks (random but valid) or their F32 dequantization. */
/* variant 1: embedding_length disagrees with the tensors; 2: an unknown tokenizer model; 3: no block_count;
 * 4: an unknown architecture. */
static void synth(const char *path, bool quantized, uint32_t attn_type, int variant)
{
    enum { D = 256, FF = 512, V = 512, H = 4 };
    struct gw w = {.version = 2};
    kv_str(&w, "general.architecture", variant == 4 ? "mamba" : "llama");
    if (variant != 3) kv_u32(&w, "llama.block_count", 1);
    kv_u32(&w, "llama.context_length", 64);
    kv_u32(&w, "llama.embedding_length", variant == 1 ? 128 : D);
    if (variant == 2) kv_str(&w, "tokenizer.ggml.model", "bert");
    kv_u32(&w, "llama.feed_forward_length", FF);
    kv_u32(&w, "llama.attention.head_count", H);
    kv_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    static const struct {
        const char *name;
        int rows, cols;
        uint32_t type; /* 0: use attn_type */
    } mats[] = {{"token_embd.weight", V, D, LSA_GGML_Q8_0}, {"blk.0.attn_q.weight", D, D, 0},
                {"blk.0.attn_k.weight", D, D, 0},            {"blk.0.attn_v.weight", D, D, 0},
                {"blk.0.attn_output.weight", D, D, LSA_GGML_Q4_K}, {"blk.0.ffn_gate.weight", FF, D, LSA_GGML_Q8_0},
                {"blk.0.ffn_up.weight", FF, D, LSA_GGML_Q4_K}, {"blk.0.ffn_down.weight", D, FF, LSA_GGML_Q8_0},
                {"output.weight", V, D, LSA_GGML_Q4_K}};
    void *keep[16] = {0};
    int nk = 0;
    rng = 12345;
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        uint32_t type = mats[i].type ? mats[i].type : attn_type;
        size_t n = (size_t)mats[i].rows * mats[i].cols, bb = lsa_ggml_block_bytes(type);
        size_t nb = n / (size_t)lsa_ggml_block_elems(type);
        unsigned char *q = malloc(nb * bb);
        for (size_t k = 0; k < nb * bb; k++) q[k] = (unsigned char)rnd();
        for (size_t b = 0; b < nb; b++) { /* small scales so that activations stay moderate */
            uint16_t d = to_f16(type == LSA_GGML_Q8_0 ? 1.0f / 1024 : 1.0f / 4096), m = to_f16(1.0f / 8192);
            unsigned char *blk = q + b * bb;
            if (type == LSA_GGML_Q8_0 || type == LSA_GGML_IQ4_NL) memcpy(blk, &d, 2);
            if (type == LSA_GGML_Q4_K) {
                memcpy(blk, &d, 2);
                memcpy(blk + 2, &m, 2);
            }
        }
        uint64_t ne[2] = {(uint64_t)mats[i].cols, (uint64_t)mats[i].rows};
        if (quantized) {
            tensor(&w, mats[i].name, type, 2, ne, q, nb * bb);
            keep[nk++] = q;
        } else {
            float *f = malloc(n * sizeof *f);
            if (lsa_ggml_dequantize(type, q, (int64_t)n, f)) memset(f, 0, n * sizeof *f);
            tensor(&w, mats[i].name, LSA_GGML_F32, 2, ne, f, n * sizeof *f);
            keep[nk++] = f;
            free(q);
        }
    }
    static float ones[D];
    for (int i = 0; i < D; i++) ones[i] = 1.0f + (float)(i % 7) / 16;
    uint64_t ne1[1] = {D};
    tensor(&w, "blk.0.attn_norm.weight", LSA_GGML_F32, 1, ne1, ones, sizeof ones);
    tensor(&w, "blk.0.ffn_norm.weight", LSA_GGML_F32, 1, ne1, ones, sizeof ones);
    tensor(&w, "output_norm.weight", LSA_GGML_F32, 1, ne1, ones, sizeof ones);
    gw_write(&w, path);
    for (int i = 0; i < nk; i++) free(keep[i]);
    gw_free(&w);
}

static void run_model(struct lsa_model *m, float *nll, float *final, int T)
{
    int32_t ids[16];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 37 + 5) % 512);
    struct lsa_fwd *f = lsa_fwd_new(m, T);
    REQUIRE(f, "%s", lsa_errmsg());
    struct lsa_fwd_request r = {.nll = nll, .logits = final};
    REQUIRE(lsa_fwd_run(f, ids, T, &r) == 0, "forward: %s", lsa_errmsg());
    lsa_fwd_free(f);
}

static void test_quantized_model(const char *dir)
{
    char pq[512], pf[512];
    snprintf(pq, sizeof pq, "%s/synth-q4k-q8.gguf", dir);
    snprintf(pf, sizeof pf, "%s/synth-f32.gguf", dir);
    synth(pq, true, LSA_GGML_Q4_K, 0);
    synth(pf, false, LSA_GGML_Q4_K, 0);
    struct lsa_model *q = lsa_model_load(pq), *f = lsa_model_load(pf);
    REQUIRE(q && f, "load: %s", lsa_errmsg());
    CHECK(!strcmp(lsa_model_arch(q)->dtype, "Q4_K") || !strcmp(lsa_model_arch(q)->dtype, "Q8_0"), "dtype %s",
          lsa_model_arch(q)->dtype);
    enum { T = 12 };
    static float nq[T], nf[T], lq[T * 512], lf[T * 512];
    run_model(q, nq, lq, T);
    run_model(f, nf, lf, T);
    double err = 0;
    bool finite = true;
    for (int i = 0; i < T * 512; i++) {
        err = fmax(err, fabs((double)lq[i] - lf[i]));
        finite = finite && isfinite(lq[i]);
    }
    CHECK(finite && err == 0, "Q4_K/Q8_0 model vs its F32 dequantization: logits max diff %g (want 0)", err);
    printf("synthetic Q4_K + Q8_0 model (dtype %s): runs, logits equal to the F32 twin (max diff %g), nll[0] %.4f\n",
           lsa_model_arch(q)->dtype, err, nq[0]);
    lsa_model_free(q);
    lsa_model_free(f);

    /* an unsupported type is refused at load, naming the tensor and the type */
    snprintf(pq, sizeof pq, "%s/synth-iq4nl.gguf", dir);
    static const char *phrase[] = {"tensor blk.0.attn_q.weight has type IQ4_NL", "token_embd.weight has ne [256,512",
                                   "tokenizer.ggml.model \"bert\" is not supported", "llama.block_count is missing",
                                   "architecture \"mamba\" is not supported"};
    for (int v = 0; v < 5; v++) {
        synth(pq, true, v ? LSA_GGML_Q4_K : LSA_GGML_IQ4_NL, v);
        q = lsa_model_load(pq);
        CHECK(!q && strstr(lsa_errmsg(), phrase[v]) && strstr(lsa_errmsg(), pq) && !strchr(lsa_errmsg(), '\n'),
              "model error %d should say '%s': %s", v, phrase[v], lsa_errmsg());
        printf("  ok: %s\n", lsa_errmsg());
        lsa_model_free(q);
    }
}

/* ================================================================ 4. corrupt files */

static char bad_path[600];

static void expect_bad(const char *label, const void *p, size_t n, const char *phrase)
{
    write_file(bad_path, p, n);
    struct lsa_gguf *g = lsa_gguf_open(bad_path);
    CHECK(!g, "%s: opened although corrupt", label);
    lsa_gguf_close(g);
    const char *msg = lsa_errmsg();
    CHECK(strstr(msg, bad_path) && strstr(msg, phrase) && !strchr(msg, '\n'), "%s: message should name the file and "
          "say '%s': %s", label, phrase, msg);
    /* the model loader says the same */
    struct lsa_model *m = lsa_model_load(bad_path);
    CHECK(!m && strstr(lsa_errmsg(), phrase), "%s: lsa_model_load: %s", label, lsa_errmsg());
    lsa_model_free(m);
    printf("  ok %-22s %s\n", label, msg);
}

/* A small valid file, then one change per case. */
static struct buf base(int variant)
{
    static float data[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    struct gw w = {.version = variant == 1 ? 1 : 3};
    kv_str(&w, "general.architecture", "llama");
    if (variant == 2) { /* array of arrays */
        kv_key(&w, "x.nested", LSA_GGUF_ARRAY);
        put_u32(&w.kv, LSA_GGUF_ARRAY);
        put_u64(&w.kv, 1);
    }
    uint64_t ne_a[2] = {4, 2}, ne_b[1] = {8};
    tensor(&w, "a.weight", LSA_GGML_F32, 2, ne_a, data, 32);
    tensor(&w, variant == 3 ? "a.weight" : "b.weight", LSA_GGML_F32, 1, ne_b, data + 8, 32);
    struct wt *a = &w.t[0], *b = &w.t[1]; /* tensor() may move the array: take the pointers last */
    if (variant == 4) b->offset = 1 << 20;                         /* out of range */
    if (variant == 5) b->offset = 36;                              /* misaligned */
    if (variant == 6) a->n_dims = 5, a->ne[2] = a->ne[3] = a->ne[4] = 1;
    if (variant == 7) a->ne[0] = a->ne[1] = 1ull << 40;            /* product overflows */
    if (variant == 8) a->type = 99;                                /* unknown type */
    if (variant == 9) b->offset = 0;                               /* overlaps a */
    struct buf out = gw_build(&w);
    gw_free(&w);
    return out;
}

static void test_corrupt(const char *dir)
{
    snprintf(bad_path, sizeof bad_path, "%s/bad.gguf", dir);
    struct buf b = base(0);
    write_file(bad_path, b.p, b.n);
    struct lsa_gguf *g = lsa_gguf_open(bad_path);
    CHECK(g && lsa_gguf_n_tensors(g) == 2, "the uncorrupted base file opens: %s", g ? "" : lsa_errmsg());
    if (g) {
        float x[8];
        CHECK(lsa_gguf_read_f32(g, lsa_gguf_find_tensor(g, "b.weight"), x) == 0 && x[7] == 16, "base data");
    }
    lsa_gguf_close(g);
    unsigned char *c = malloc(b.n);
    uint64_t huge = 1ull << 60;
#define CASE(label, phrase, edit)                                                                                  \
    do {                                                                                                           \
        memcpy(c, b.p, b.n);                                                                                       \
        edit;                                                                                                      \
        expect_bad(label, c, b.n, phrase);                                                                         \
    } while (0)
    CASE("bad magic", "bad magic", c[0] = 'X');
    CASE("tensor count huge", "tensor count", memcpy(c + 8, &huge, 8));
    CASE("metadata count huge", "metadata count", memcpy(c + 16, &huge, 8));
    CASE("key length past end", "past the end", memcpy(c + 24, &huge, 8));
    CASE("value string past end", "past the end", memcpy(c + 24 + 8 + 20 + 4, &huge, 8));
    expect_bad("truncated data", b.p, b.n - 8, "outside the data section");
    expect_bad("truncated header", b.p, 30, "truncated or corrupt");
    static const struct {
        const char *label, *phrase;
    } v[] = {{"", ""},
             {"version 1", "version 1 is not supported"},
             {"array of arrays", "array of arrays"},
             {"duplicate names", "duplicate tensor name a.weight"},
             {"offset out of range", "outside the data section"},
             {"misaligned data", "misaligned"},
             {"n_dims 5", "5 dimensions"},
             {"shape overflow", "overflows"},
             {"unknown type", "unknown ggml type 99"},
             {"overlapping tensors", "overlap"}};
    for (int k = 1; k < 10; k++) {
        struct buf e = base(k);
        expect_bad(v[k].label, e.p, e.n, v[k].phrase);
        free(e.p);
    }
    /* every byte changed and every prefix: an error or a valid file, never a crash (run under ASan) */
    int opened = 0, tries = 0;
    static const int vals[] = {0x00, 0xFF, 0x7F, 0x80, -1};
    for (size_t i = 0; i < b.n; i++)
        for (int k = 0; k < 6; k++) {
            memcpy(c, b.p, b.n);
            size_t len = b.n;
            if (k < 5) c[i] = (unsigned char)(vals[k] < 0 ? c[i] ^ 1 : vals[k]);
            else len = i;
            write_file(bad_path, c, len);
            struct lsa_gguf *h = lsa_gguf_open(bad_path);
            tries++;
            for (size_t t = 0; h && t < lsa_gguf_n_tensors(h); t++) {
                const struct lsa_gguf_tensor *ti = lsa_gguf_tensor_at(h, t);
                float *x = malloc((size_t)ti->n_elem * sizeof *x + 4);
                (void)lsa_gguf_read_f32(h, ti, x);
                free(x);
            }
            opened += h != NULL;
            lsa_gguf_close(h);
        }
    printf("  %d corrupted variants (bytes changed, prefixes): %d still valid, the rest refused, no crash\n", tries,
           opened);
    free(c);
    free(b.p);
}

/* ================================================================ CLI */

static void test_cli(const char *lsa, const char *dir)
{
    char cmd[2048], out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s info %s/tiny-llama-q8_0.gguf 2>&1", lsa, dir);
    FILE *p = popen(cmd, "r");
    REQUIRE(p, "popen");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    CHECK(st == 0 && strstr(out, "dtype         Q8_0") && strstr(out, "architecture  llama"), "lsa info on a Q8_0 "
          "GGUF: %s", out);
    snprintf(cmd, sizeof cmd, "%s capture --model %s/tiny-llama-q8_0.gguf --prompt 'Once upon a time' --out %s/cap.h5 "
             "--quiet 2>&1", lsa, dir, dir);
    CHECK(system(cmd) == 0, "lsa capture on a GGUF: %s", cmd);
    snprintf(cmd, sizeof cmd, "%s info %s 2>&1", lsa, bad_path);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    st = pclose(p);
    CHECK(WEXITSTATUS(st) == 1 && !strncmp(out, "lsa: error: ", 12) && strchr(out, '\n') == out + n - 1,
          "lsa info on a corrupt GGUF: exit %d, %s", WEXITSTATUS(st), out);
    printf("lsa info: %s", out);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 3, "usage: test_gguf OUT_DIR LSA_BINARY");
    const char *dir = argv[1];
    mkdir(dir, 0755);
    test_stories();
    char out[600];
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        snprintf(out, sizeof out, "%s/%s.gguf", dir, fixtures[i]);
        convert(fixtures[i], out, false);
        struct lsa_model *m = lsa_model_load(out);
        CHECK(m, "%s: %s", out, lsa_errmsg());
        lsa_model_free(m);
    }
    snprintf(out, sizeof out, "%s/tiny-gpt2.gguf", dir);
    check_gpt2_tokenizer(out);
    snprintf(out, sizeof out, "%s/tiny-llama-q8_0.gguf", dir);
    convert("tiny-llama", out, true);
    test_quantized_model(dir);
    test_corrupt(dir);
    test_cli(argv[2], dir);
    return t_finish("test_gguf");
}
