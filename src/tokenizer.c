/*
 * tokenizer.c — struct lsa_tokenizer's life (load, free, accessors) and the containers the tokenizer
 * files share (byte buffers, string lists, the vocabulary and merge hash maps). Reading the sections of
 * tokenizer.json is tokenizer_json.c; encoding is tokenizer_encode.c; decoding is tokenizer_decode.c.
 * BOS/EOS come from the post-processor, else from tokenizer_config.json beside tokenizer.json.
 */
#include "tokenizer_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================================================
 * Containers
 * ================================================================================================ */

int tk_buf_put(struct tk_buf *b, const void *src, size_t n)
{
    if (n == 0) return 0;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2) return lsa_err(LSA_ENOMEM, "tokenizer: buffer of %zu bytes is too large", b->n + n);
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory (%zu bytes)", cap);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    b->p[b->n] = '\0'; /* keeps every buffer usable as a C string */
    return 0;
}

int tk_buf_putc(struct tk_buf *b, char c) { return tk_buf_put(b, &c, 1); }

int tk_slist_push(struct tk_slist *l, const char *s, size_t n)
{
    if (!l->buf.p) { /* items are read as buf.p + off: the buffer must exist even when all are empty */
        int rc = tk_buf_putc(&l->buf, 0);
        if (rc) return rc;
        l->buf.n = 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        size_t *off = realloc(l->off, cap * sizeof *off);
        if (!off) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        l->off = off;
        size_t *len = realloc(l->len, cap * sizeof *len);
        if (!len) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        l->len = len;
        l->cap = cap;
    }
    size_t at = l->buf.n;
    int rc = tk_buf_put(&l->buf, s, n);
    if (rc) return rc;
    l->off[l->n] = at;
    l->len[l->n] = n;
    l->n++;
    return 0;
}

void tk_slist_clear(struct tk_slist *l)
{
    l->n = 0;
    l->buf.n = 0;
}

void tk_slist_free(struct tk_slist *l)
{
    free(l->buf.p);
    free(l->off);
    free(l->len);
    memset(l, 0, sizeof *l);
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n) p *= 2;
    return p;
}

int tk_strmap_init(struct tk_strmap *m, size_t n_expected)
{
    m->n_slot = pow2_at_least(2 * n_expected + 1);
    m->cap = n_expected ? n_expected : 1;
    m->slot = malloc(m->n_slot * sizeof *m->slot);
    m->key_off = malloc(m->cap * sizeof *m->key_off);
    m->key_len = malloc(m->cap * sizeof *m->key_len);
    m->val = malloc(m->cap * sizeof *m->val);
    if (!m->slot || !m->key_off || !m->key_len || !m->val) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < m->n_slot; i++) m->slot[i] = -1;
    return 0;
}

void tk_strmap_free(struct tk_strmap *m)
{
    free(m->slot);
    free(m->key_off);
    free(m->key_len);
    free(m->val);
}

/* Where key s lives in the map, or the free slot it would take. */
static size_t strmap_find(const struct tk_strmap *m, const char *pool, const char *s, size_t n)
{
    size_t mask = m->n_slot - 1, i = hash_bytes(s, n) & mask;
    for (;;) {
        int32_t e = m->slot[i];
        if (e < 0) return i;
        if (m->key_len[e] == n && memcmp(pool + m->key_off[e], s, n) == 0) return i;
        i = (i + 1) & mask;
    }
}

/* Insert the pool string at off (later duplicates win, as in a serde HashMap). The map never grows:
 * it was sized for every key the file holds. */
void tk_strmap_put(struct tk_strmap *m, const char *pool, size_t off, size_t n, int32_t val)
{
    size_t i = strmap_find(m, pool, pool + off, n);
    if (m->slot[i] >= 0) {
        m->val[m->slot[i]] = val;
        return;
    }
    LSA_ASSERT(m->n < m->cap);
    m->key_off[m->n] = off;
    m->key_len[m->n] = n;
    m->val[m->n] = val;
    m->slot[i] = (int32_t)m->n++;
}

int32_t tk_vocab_get(const struct lsa_tokenizer *t, const char *s, size_t n)
{
    size_t i = strmap_find(&t->vocab, t->pool.p, s, n);
    int32_t e = t->vocab.slot[i];
    return e < 0 ? -1 : t->vocab.val[e];
}

const struct tk_merge *tk_merge_get(const struct lsa_tokenizer *t, int32_t a, int32_t b)
{
    if (!t->n_merge_slot) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = t->n_merge_slot - 1, i = hash_u64(key) & mask;
    for (;;) {
        const struct tk_merge *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == TK_PAIR_EMPTY) return NULL;
        i = (i + 1) & mask;
    }
}

int tk_merge_init(struct lsa_tokenizer *t, size_t n_expected)
{
    t->n_merge_slot = pow2_at_least(2 * n_expected + 1);
    t->merges = malloc(t->n_merge_slot * sizeof *t->merges);
    if (!t->merges) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < t->n_merge_slot; i++) t->merges[i].key = TK_PAIR_EMPTY;
    return 0;
}

void tk_merge_put(struct lsa_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = t->n_merge_slot - 1, i = hash_u64(key) & mask;
    while (t->merges[i].key != TK_PAIR_EMPTY && t->merges[i].key != key) i = (i + 1) & mask;
    /* A repeated pair keeps the later rank, as collecting into a HashMap does. */
    t->merges[i].key = key;
    t->merges[i].rank = rank;
    t->merges[i].new_id = new_id;
}

const struct tk_added *tk_added_by_id(const struct lsa_tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab || t->added_of_id[id] < 0) return NULL;
    return &t->added[t->added_of_id[id]];
}
/* ================================================================================================
 * Load / free
 * ================================================================================================ */

static int parse_json(const char *path, cJSON **out)
{
    char *data;
    size_t len;
    int rc = lsa_read_file(path, (size_t)1 << 30, &data, &len);
    if (rc) return rc;
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!*out) {
        size_t at = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        rc = lsa_err(LSA_EFORMAT, "%s: invalid JSON near byte %zu of %zu", path, at, len);
    }
    free(data);
    return rc;
}

/* id of a token by content: added tokens first (as `tokenizers` resolves names), then the vocab. */
static int32_t token_id(const struct lsa_tokenizer *t, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, s, n) == 0) return t->added[i].id;
    return tk_vocab_get(t, s, n);
}

/* bos_token / eos_token from tokenizer_config.json beside tokenizer.json: a string or {"content": ...}. */
static int config_special(struct lsa_tokenizer *t, int32_t *bos, int32_t *eos)
{
    *bos = *eos = -1;
    const char *slash = strrchr(t->path, '/');
    size_t dir = slash ? (size_t)(slash - t->path) + 1 : 0;
    static const char name[] = "tokenizer_config.json";
    char *cfg = malloc(dir + sizeof name);
    if (!cfg) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    memcpy(cfg, t->path, dir);
    memcpy(cfg + dir, name, sizeof name);
    FILE *probe = fopen(cfg, "rb");
    if (!probe) { /* no config: nothing to add */
        free(cfg);
        return 0;
    }
    fclose(probe);
    cJSON *root = NULL;
    int rc = parse_json(cfg, &root);
    for (int k = 0; rc == 0 && k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, k ? "eos_token" : "bos_token");
        if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(v) && v->valuestring) *(k ? eos : bos) = token_id(t, v->valuestring);
    }
    cJSON_Delete(root);
    free(cfg);
    return rc;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest move to U+0100... */
static void init_bytelevel(struct lsa_tokenizer *t)
{
    for (int i = 0; i < 512; i++) t->bl_dec[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = printable ? (uint32_t)b : 256u + (uint32_t)extra++;
        t->bl_dec[cp] = (int16_t)b;
        if (cp < 0x80) {
            t->bl_enc[b][0] = (char)cp;
            t->bl_enc_len[b] = 1;
        } else {
            t->bl_enc[b][0] = (char)(0xC0 | (cp >> 6));
            t->bl_enc[b][1] = (char)(0x80 | (cp & 0x3F));
            t->bl_enc_len[b] = 2;
        }
    }
}

int tk_finish(struct lsa_tokenizer *t)
{
    const char *path = t->path;
    int32_t max_id = t->n_piece - 1;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id > max_id) max_id = t->added[i].id;
    t->n_vocab = max_id + 1;
    t->added_of_id = malloc((t->n_vocab ? (size_t)t->n_vocab : 1) * sizeof *t->added_of_id);
    if (!t->added_of_id) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i < t->n_vocab; i++) t->added_of_id[i] = -1;
    for (size_t i = 0; i < t->n_added; i++) t->added_of_id[t->added[i].id] = (int32_t)i; /* later wins */
    for (size_t i = 0; i < t->n_prefix; i++)
        if (t->prefix[i] >= t->n_vocab)
            return lsa_err(LSA_EFORMAT, "%s: post_processor adds id %d, vocabulary has %d", path, t->prefix[i], t->n_vocab);
    for (size_t i = 0; i < t->n_suffix; i++)
        if (t->suffix[i] >= t->n_vocab)
            return lsa_err(LSA_EFORMAT, "%s: post_processor adds id %d, vocabulary has %d", path, t->suffix[i], t->n_vocab);
    init_bytelevel(t);
    return 0;
}

static int load_all(struct lsa_tokenizer *t, const cJSON *root)
{
    int rc = tk_json_load(t, root);
    if (rc || (rc = tk_finish(t))) return rc;
    /* BOS/EOS: what the post-processor adds, else what tokenizer_config.json names. */
    int32_t cfg_bos = -1, cfg_eos = -1;
    if ((!t->n_prefix || !t->n_suffix) && (rc = config_special(t, &cfg_bos, &cfg_eos))) return rc;
    t->bos = t->n_prefix ? t->prefix[0] : cfg_bos;
    t->eos = t->n_suffix ? t->suffix[t->n_suffix - 1] : cfg_eos;
    return 0;
}

struct lsa_tokenizer *lsa_tokenizer_load(const char *path)
{
    if (!path) {
        lsa_err(LSA_EINVAL, "lsa_tokenizer_load: path is NULL");
        return NULL;
    }
    struct lsa_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        return NULL;
    }
    cJSON *root = NULL;
    int rc = parse_json(path, &root);
    if (rc == 0) rc = load_all(t, root);
    cJSON_Delete(root);
    if (rc) {
        lsa_tokenizer_free(t);
        return NULL;
    }
    return t;
}

void lsa_tokenizer_free(struct lsa_tokenizer *t)
{
    if (!t) return;
    free(t->pool.p);
    tk_strmap_free(&t->vocab);
    free(t->piece_off);
    free(t->merges);
    free(t->unk_token);
    free(t->cont_prefix);
    free(t->eow_suffix);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].match);
    }
    free(t->added);
    free(t->added_of_id);
    pcre2_code_free(t->word_re);
    for (size_t i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->norm);
    for (size_t i = 0; i < t->n_pre; i++) {
        pcre2_code_free(t->pre[i].re);
        free(t->pre[i].lit);
    }
    free(t->pre);
    for (size_t i = 0; i < t->n_dec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
    }
    free(t->dec);
    free(t->prefix);
    free(t->suffix);
    free(t->path);
    free(t);
}

/* ================================================================================================
 * Accessors
 * ================================================================================================ */

enum lsa_tok_kind lsa_tokenizer_kind(const struct lsa_tokenizer *t) { return t->kind; }

const char *lsa_tokenizer_kind_name(const struct lsa_tokenizer *t)
{
    return t->kind == LSA_TOK_BYTELEVEL_BPE ? "bpe-bytelevel" : "bpe-sentencepiece";
}

int32_t lsa_tokenizer_n_vocab(const struct lsa_tokenizer *t) { return t->n_vocab; }
int32_t lsa_tokenizer_bos(const struct lsa_tokenizer *t) { return t->bos; }
int32_t lsa_tokenizer_eos(const struct lsa_tokenizer *t) { return t->eos; }
bool lsa_tokenizer_adds_bos(const struct lsa_tokenizer *t) { return t->n_prefix > 0; }

const char *lsa_tokenizer_piece(const struct lsa_tokenizer *t, int32_t id)
{
    const struct tk_added *a = tk_added_by_id(t, id);
    if (a) return a->content;
    if (id < 0 || id >= t->n_piece || t->piece_off[id] == SIZE_MAX) return NULL;
    return t->pool.p + t->piece_off[id];
}
