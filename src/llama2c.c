/*
 * llama2c.c — llama2.c checkpoints (legacy v0 layout, memory-mapped) and tokenizer.bin files as lsa
 * models and tokenizers. The layouts are described in include/lsa/llama2c.h. Every count in the header is
 * checked, and the file size must be exactly what the header implies, before any weight is touched.
 */
#include "lsa/llama2c.h"
#include "model_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_BYTES 28
#define MAX_DIM (1 << 20)

static int32_t le32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static int check_config(const char *path, const unsigned char *h, size_t size, struct lsa_llama2c_config *c)
{
    if (size < HEADER_BYTES)
        return lsa_err(LSA_EFORMAT, "%s: truncated llama2.c checkpoint (%zu bytes, the header needs %d)", path, size,
                       HEADER_BYTES);
    if (memcmp(h, "ak42", 4) == 0 || le32(h) == 0x616b3432)
        return lsa_err(LSA_EUNSUP, "%s: llama2.c export version %d is not supported (only the legacy v0 layout that "
                       "run.c reads)", path, le32(h + 4));
    int v[7];
    for (int i = 0; i < 7; i++) v[i] = le32(h + 4 * i);
    static const char *names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    /* (checked before anything negates a field: -INT32_MIN overflows) */
    for (int i = 0; i < 7; i++)
        if (v[i] == 0 || v[i] < -MAX_DIM || (i != 5 && v[i] < 0) || v[i] > MAX_DIM)
            return lsa_err(LSA_EFORMAT, "%s: header field %s is %d (expected 1..%d): not a llama2.c checkpoint?", path,
                           names[i], v[i], MAX_DIM);
    *c = (struct lsa_llama2c_config){v[0], v[1], v[2], v[3], v[4], v[5] < 0 ? -v[5] : v[5], v[6], v[5] > 0};
    if (c->n_heads % c->n_kv_heads || c->dim % c->n_heads || (c->dim / c->n_heads) % 2)
        return lsa_err(LSA_EFORMAT, "%s: dim %d, n_heads %d, n_kv_heads %d do not divide into even heads", path, c->dim,
                       c->n_heads, c->n_kv_heads);
    return 0;
}

/* Floats the checkpoint holds after the header. */
static uint64_t n_floats(const struct lsa_llama2c_config *c)
{
    uint64_t d = (uint64_t)c->dim, L = (uint64_t)c->n_layers, V = (uint64_t)c->vocab_size, hs = d / (uint64_t)c->n_heads;
    uint64_t kv = d * (uint64_t)c->n_kv_heads / (uint64_t)c->n_heads, ff = (uint64_t)c->hidden_dim;
    return V * d + L * (2 * d + 2 * d * d + 2 * kv * d + 3 * ff * d) + d + (uint64_t)c->seq_len * hs +
           (c->shared_classifier ? 0 : V * d);
}

int lsa_llama2c_read_config(const char *path, struct lsa_llama2c_config *cfg)
{
    FILE *f = fopen(path, "rb");
    if (!f) return lsa_err(LSA_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char h[HEADER_BYTES];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    return check_config(path, h, n, cfg);
}

/* ---------------------------------------------------------------- tokenizer.bin */

struct lsa_tokenizer *lsa_llama2c_tokenizer_load(const char *path, int n_vocab)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lsa_err(LSA_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct lsa_tokenizer *tok = NULL;
    char **pieces = calloc((size_t)(n_vocab > 0 ? n_vocab : 1), sizeof *pieces);
    size_t *len = calloc((size_t)(n_vocab > 0 ? n_vocab : 1), sizeof *len);
    float *scores = calloc((size_t)(n_vocab > 0 ? n_vocab : 1), sizeof *scores);
    int32_t *types = calloc((size_t)(n_vocab > 0 ? n_vocab : 1), sizeof *types);
    unsigned char b[8];
    int rc = 0, i = 0;
    if (!pieces || !len || !scores || !types) rc = lsa_err(LSA_ENOMEM, "out of memory");
    else if (n_vocab < 3) rc = lsa_err(LSA_EINVAL, "%s: a llama2.c vocabulary needs at least 3 tokens", path);
    else if (fread(b, 1, 4, f) != 4) rc = lsa_err(LSA_EFORMAT, "%s: truncated tokenizer.bin (no header)", path);
    int32_t max_len = rc ? 0 : le32(b);
    if (!rc && (max_len <= 0 || max_len > (1 << 16)))
        rc = lsa_err(LSA_EFORMAT, "%s: max_token_length %d is not plausible: not a llama2.c tokenizer.bin?", path,
                     max_len);
    for (i = 0; i < n_vocab && !rc; i++) {
        if (fread(b, 1, 8, f) != 8) {
            rc = lsa_err(LSA_EFORMAT, "%s: truncated at token %d of %d (does the tokenizer match the model's "
                         "vocabulary?)", path, i, n_vocab);
            break;
        }
        memcpy(&scores[i], b, 4);
        int32_t n = le32(b + 4);
        if (n < 0 || n > max_len) {
            rc = lsa_err(LSA_EFORMAT, "%s: token %d has length %d (max_token_length is %d)", path, i, n, max_len);
            break;
        }
        /* run.c's pieces use ' ' for SentencePiece's U+2581; each space takes 3 bytes once restored */
        char *raw = malloc((size_t)n + 1), *p = malloc(3 * (size_t)n + 1);
        pieces[i] = p;
        if (!raw || !p) {
            free(raw);
            rc = lsa_err(LSA_ENOMEM, "out of memory");
            break;
        }
        if (fread(raw, 1, (size_t)n, f) != (size_t)n) {
            free(raw);
            rc = lsa_err(LSA_EFORMAT, "%s: truncated in token %d of %d", path, i, n_vocab);
            break;
        }
        raw[n] = 0;
        const char *src = raw;
        if (i == 1 && !strcmp(raw, "\n<s>\n")) src = "<s>";
        if (i == 2 && !strcmp(raw, "\n</s>\n")) src = "</s>";
        size_t k = 0, sl = src == raw ? (size_t)n : strlen(src);
        for (size_t j = 0; j < sl; j++) {
            if (src[j] == ' ') {
                memcpy(p + k, "\xe2\x96\x81", 3);
                k += 3;
            } else {
                p[k++] = src[j];
            }
        }
        len[i] = k;
        p[k] = 0;
        unsigned hx;
        char tail;
        types[i] = i == 0 ? LSA_TOKTYPE_UNKNOWN : i <= 2 ? LSA_TOKTYPE_CONTROL
                   : (k == 6 && sscanf(p, "<0x%2X%c", &hx, &tail) == 2 && tail == '>') ? LSA_TOKTYPE_BYTE
                                                                                       : LSA_TOKTYPE_NORMAL;
        free(raw);
    }
    if (!rc && fread(b, 1, 1, f) == 1)
        rc = lsa_err(LSA_EFORMAT, "%s: holds more than the model's %d tokens (a tokenizer for another vocabulary?)",
                     path, n_vocab);
    fclose(f);
    if (!rc) {
        struct lsa_tok_parts parts = {.source = path, .kind = LSA_TOK_SP_BPE, .n_vocab = n_vocab,
                                      .pieces = (const char *const *)pieces, .piece_len = len, .scores = scores,
                                      .types = types, .bos = 1, .eos = 2, .unk = 0, .add_bos = true,
                                      .add_space_prefix = true};
        tok = lsa_tokenizer_from_parts(&parts);
    }
    for (int j = 0; pieces && j < n_vocab; j++) free(pieces[j]);
    free(pieces), free(len), free(scores), free(types);
    return tok;
}

/* ---------------------------------------------------------------- checkpoint */

static int find_tokenizer(const struct lsa_model *m, char *out, size_t cap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", m->path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    struct stat st;
    snprintf(out, cap, "%stokenizer.bin", dir);
    if (stat(out, &st) == 0) return 1;
    snprintf(out, cap, "%stok%d.bin", dir, m->arch.n_vocab);
    return stat(out, &st) == 0;
}

int lsa_llama2c_model_load(struct lsa_model *m, const char *tokenizer)
{
    const char *path = m->path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lsa_err(LSA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) rc = lsa_err(LSA_EIO, "%s: not a regular file", path);
    if (!rc && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) rc = lsa_err(LSA_EIO, "%s: cannot map: %s", path, strerror(errno));
        else m->map = p, m->map_size = (size_t)st.st_size;
    }
    close(fd);
    if (rc) return rc;
    struct lsa_llama2c_config c;
    if ((rc = check_config(path, m->map, m->map_size, &c))) return rc;
    uint64_t want = HEADER_BYTES + 4 * n_floats(&c);
    if (want != m->map_size)
        return lsa_err(LSA_EFORMAT, "%s: %zu bytes, but the header (dim %d, hidden %d, %d layers, %d heads, %d kv heads, "
                       "vocab %d%s, seq_len %d) implies %llu: truncated or not a v0 llama2.c checkpoint", path,
                       m->map_size, c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
                       c.shared_classifier ? "" : " untied", c.seq_len, (unsigned long long)want);

    struct lsa_arch *a = &m->arch;
    memset(a, 0, sizeof *a);
    strcpy(a->model_type, "llama");
    strcpy(a->dtype, "F32");
    a->n_layer = c.n_layers;
    a->d_model = c.dim;
    a->n_head = c.n_heads;
    a->n_head_kv = c.n_kv_heads;
    a->d_head = c.dim / c.n_heads;
    a->d_ff = c.hidden_dim;
    a->n_vocab = c.vocab_size;
    a->n_ctx = c.seq_len;
    a->norm = LSA_NORM_RMS;
    a->norm_eps = 1e-5f;
    a->act = LSA_ACT_SILU;
    a->gated_mlp = true;
    a->pos = LSA_POS_ROPE;
    a->rope_theta = 10000.0;
    a->rope_dims = a->d_head;
    a->rope_linear_factor = 1.0;
    a->tied_head = c.shared_classifier;
    a->bos_id = 1;
    a->eos_id = 2;

    size_t d = (size_t)c.dim, L = (size_t)c.n_layers, V = (size_t)c.vocab_size, ff = (size_t)c.hidden_dim;
    size_t kv = d * (size_t)c.n_kv_heads / (size_t)c.n_heads;
    const float *w = (const float *)((const unsigned char *)m->map + HEADER_BYTES);
    const float *emb = w, *rms_att = emb + V * d, *wq = rms_att + L * d, *wk = wq + L * d * d, *wv = wk + L * kv * d;
    const float *wo = wv + L * kv * d, *rms_ffn = wo + L * d * d, *w1 = rms_ffn + L * d, *w2 = w1 + L * ff * d;
    const float *w3 = w2 + L * d * ff, *rms_final = w3 + L * ff * d;
    const float *wcls = rms_final + d + (size_t)c.seq_len * (d / (size_t)c.n_heads);
    if (!(m->layers = calloc(L, sizeof *m->layers))) return lsa_err(LSA_ENOMEM, "out of memory");
    m->tok_embd.f32 = emb;
    m->final_norm.w = rms_final;
    m->head.f32 = c.shared_classifier ? emb : wcls;
    m->n_params = (int64_t)(n_floats(&c) - (uint64_t)c.seq_len * (d / (size_t)c.n_heads));
    for (size_t l = 0; l < L; l++) {
        struct lsa_layer_w *Y = &m->layers[l];
        Y->attn_norm.w = rms_att + l * d;
        Y->mlp_norm.w = rms_ffn + l * d;
        float *q = lsa_model_alloc(m, d * d), *k = lsa_model_alloc(m, kv * d);
        if (!q || !k) return LSA_ENOMEM;
        memcpy(q, wq + l * d * d, d * d * sizeof *q);
        memcpy(k, wk + l * kv * d, kv * d * sizeof *k);
        if ((rc = lsa_rope_unpermute(q, c.n_heads, a->d_head, d)) ||
            (rc = lsa_rope_unpermute(k, c.n_kv_heads, a->d_head, d)))
            return rc;
        Y->q = (struct lsa_linear){{.f32 = q}, NULL, c.dim, c.dim, false, NULL};
        Y->k = (struct lsa_linear){{.f32 = k}, NULL, c.dim, (int)kv, false, NULL};
        Y->v = (struct lsa_linear){{.f32 = wv + l * kv * d}, NULL, c.dim, (int)kv, false, NULL};
        Y->o = (struct lsa_linear){{.f32 = wo + l * d * d}, NULL, c.dim, c.dim, false, NULL};
        Y->gate = (struct lsa_linear){{.f32 = w1 + l * ff * d}, NULL, c.dim, c.hidden_dim, false, NULL};
        Y->down = (struct lsa_linear){{.f32 = w2 + l * d * ff}, NULL, c.hidden_dim, c.dim, false, NULL};
        Y->up = (struct lsa_linear){{.f32 = w3 + l * ff * d}, NULL, c.dim, c.hidden_dim, false, NULL};
    }

    char found[PATH_MAX + 32];
    if (!tokenizer && find_tokenizer(m, found, sizeof found)) tokenizer = found;
    if (tokenizer && !(m->tok = lsa_llama2c_tokenizer_load(tokenizer, c.vocab_size))) return LSA_EFORMAT;
    return 0;
}
