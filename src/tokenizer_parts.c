/*
 * tokenizer_parts.c — lsa_tokenizer_from_parts: a tokenizer from a vocabulary that another format
 * loader read (GGUF tokenizer.ggml.*, llama2.c tokenizer.bin), run by the same encoder and decoder as
 * tokenizer.json files.
 *
 * The vocabulary and merges are filled in directly; the rest of the pipeline (added tokens, normalizer,
 * pre-tokenizer, decoder) is described as the small tokenizer.json document that Hugging Face's own
 * conversion of the same vocabulary would contain, and read by the tokenizer.json loader, so that there
 * is one implementation of each pipeline step.
 *
 * SentencePiece-style vocabularies carry scores instead of merges. Score-based BPE (sentencepiece,
 * llama.cpp's "llama" tokenizer, llama2.c) repeatedly merges the adjacent pair whose concatenation is the
 * highest-scoring piece, the leftmost on ties. The same happens here by turning every split of a normal
 * piece into two pieces into a merge rule whose rank is the piece's score rank (equal scores share a
 * rank, and the encoder takes the leftmost of equal ranks).
 */
#include "tokenizer_impl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xe2\x96\x81" /* U+2581, SentencePiece's space */

/* ---------------------------------------------------------------- vocabulary */

static int build_vocab(struct lsa_tokenizer *t, const struct lsa_tok_parts *p)
{
    int rc = tk_strmap_init(&t->vocab, (size_t)p->n_vocab);
    if (rc) return rc;
    t->n_piece = p->n_vocab;
    if (!(t->piece_off = malloc((size_t)p->n_vocab * sizeof *t->piece_off)))
        return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i < p->n_vocab; i++) {
        if (!p->pieces[i] && p->piece_len[i])
            return lsa_err(LSA_EFORMAT, "%s: token %d has no text", t->path, i);
        size_t off = t->pool.n;
        if ((rc = tk_buf_put(&t->pool, p->pieces[i], p->piece_len[i])) || (rc = tk_buf_putc(&t->pool, '\0')))
            return rc;
        t->piece_off[i] = off;
    }
    /* keys are added once the pool has stopped moving; a repeated piece maps to its last id */
    for (int32_t i = 0; i < p->n_vocab; i++) tk_strmap_put(&t->vocab, t->pool.p, t->piece_off[i], p->piece_len[i], i);
    for (int b = 0; b < 256; b++) {
        char code[8];
        snprintf(code, sizeof code, "<0x%02X>", b);
        t->byte_id[b] = tk_vocab_get(t, code, strlen(code));
    }
    return 0;
}

static int32_t type_of(const struct lsa_tok_parts *p, int32_t id)
{
    return p->types ? p->types[id] : LSA_TOKTYPE_NORMAL;
}

/* ---------------------------------------------------------------- merges */

struct scored {
    float s; /* NaN counts as the lowest score */
    int32_t id;
};

static int by_score_desc(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->id < y->id ? -1 : 1;
}

/* Every split of a normal piece into two pieces of the vocabulary, ranked by the piece's score. */
static int merges_from_scores(struct lsa_tokenizer *t, const struct lsa_tok_parts *p)
{
    int32_t n = p->n_vocab, n_target = 0;
    struct scored *order = malloc((size_t)n * sizeof *order);
    uint32_t *rank = malloc((size_t)n * sizeof *rank);
    if (!order || !rank) {
        free(order);
        free(rank);
        return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    }
    for (int32_t i = 0; i < n; i++) {
        if (type_of(p, i) != LSA_TOKTYPE_NORMAL || p->piece_len[i] < 2 ||
            tk_vocab_get(t, t->pool.p + t->piece_off[i], p->piece_len[i]) != i)
            continue;
        float s = p->scores ? p->scores[i] : 0.0f;
        order[n_target++] = (struct scored){s == s ? s : -INFINITY, i};
    }
    qsort(order, (size_t)n_target, sizeof *order, by_score_desc);
    uint32_t r = 0;
    for (int32_t k = 0; k < n_target; k++) {
        if (k > 0 && order[k].s != order[k - 1].s) r++;
        rank[order[k].id] = r;
    }
    int rc = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        size_t count = 0;
        for (int32_t k = 0; k < n_target; k++) {
            int32_t id = order[k].id;
            const char *s = t->pool.p + t->piece_off[id];
            size_t len = p->piece_len[id];
            for (size_t cut = 1; cut < len; cut++) {
                int32_t a = tk_vocab_get(t, s, cut), b = tk_vocab_get(t, s + cut, len - cut);
                if (a < 0 || b < 0) continue;
                if (pass == 1) tk_merge_put(t, a, b, rank[id], id);
                count++;
            }
        }
        if (pass == 0) rc = tk_merge_init(t, count);
    }
    free(order);
    free(rank);
    return rc;
}

/* "a b" merge strings in rank order (GGUF tokenizer.ggml.merges). */
static int merges_from_list(struct lsa_tokenizer *t, const struct lsa_tok_parts *p)
{
    int rc = tk_merge_init(t, p->n_merges);
    struct tk_buf cat = {0};
    for (size_t r = 0; r < p->n_merges && rc == 0; r++) {
        const char *m = p->merges[r];
        size_t n = p->merge_len[r];
        const char *sp = n > 1 ? memchr(m + 1, ' ', n - 1) : NULL;
        if (!sp) {
            rc = lsa_err(LSA_EFORMAT, "%s: merge %zu \"%.*s\" should be two tokens separated by a space", t->path, r,
                         (int)(n > 60 ? 60 : n), m);
            break;
        }
        size_t la = (size_t)(sp - m), lb = n - la - 1;
        int32_t a = tk_vocab_get(t, m, la), b = tk_vocab_get(t, sp + 1, lb);
        cat.n = 0;
        if ((rc = tk_buf_put(&cat, m, la)) || (rc = tk_buf_put(&cat, sp + 1, lb))) break;
        int32_t c = a >= 0 && b >= 0 ? tk_vocab_get(t, cat.p, cat.n) : -1;
        if (c < 0) {
            rc = lsa_err(LSA_EFORMAT, "%s: merge %zu \"%.*s\": a part or the result is not in the vocabulary", t->path,
                         r, (int)(n > 60 ? 60 : n), m);
            break;
        }
        if (r > UINT32_MAX - 1) rc = lsa_err(LSA_EFORMAT, "%s: too many merges", t->path);
        else tk_merge_put(t, a, b, (uint32_t)r, c);
    }
    free(cat.p);
    return rc;
}

/* ---------------------------------------------------------------- the pipeline as tokenizer.json */

static cJSON *obj_type(cJSON *parent_arr, const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    if (parent_arr) cJSON_AddItemToArray(parent_arr, o);
    return o;
}

static void add_replace(cJSON *arr, const char *from, const char *to)
{
    cJSON *r = obj_type(arr, "Replace");
    cJSON *pat = cJSON_AddObjectToObject(r, "pattern");
    cJSON_AddStringToObject(pat, "String", from);
    cJSON_AddStringToObject(r, "content", to);
}

static int describe(struct lsa_tokenizer *t, const struct lsa_tok_parts *p, cJSON *root)
{
    /* control and unknown tokens are special added tokens, user-defined ones plain added tokens */
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    struct tk_buf b = {0};
    int rc = 0;
    for (int32_t i = 0; i < p->n_vocab && rc == 0; i++) {
        int32_t ty = type_of(p, i);
        bool special = ty == LSA_TOKTYPE_CONTROL || ty == LSA_TOKTYPE_UNKNOWN;
        if ((!special && ty != LSA_TOKTYPE_USER) || !p->piece_len[i] || memchr(p->pieces[i], 0, p->piece_len[i]))
            continue;
        b.n = 0;
        if ((rc = tk_buf_put(&b, p->pieces[i], p->piece_len[i]))) break;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", b.p);
        cJSON_AddBoolToObject(a, "special", special);
        cJSON_AddBoolToObject(a, "normalized", false);
        cJSON_AddItemToArray(added, a);
    }
    free(b.p);
    if (rc) return rc;
    if (p->kind == LSA_TOK_SP_BPE) {
        cJSON *norm = obj_type(NULL, "Sequence"), *nl = cJSON_AddArrayToObject(norm, "normalizers");
        if (p->add_space_prefix) cJSON_AddStringToObject(obj_type(nl, "Prepend"), "prepend", SPACE_MARK);
        add_replace(nl, " ", SPACE_MARK);
        cJSON_AddItemToObject(root, "normalizer", norm);
        cJSON *dec = obj_type(NULL, "Sequence"), *dl = cJSON_AddArrayToObject(dec, "decoders");
        add_replace(dl, SPACE_MARK, " ");
        obj_type(dl, "ByteFallback");
        obj_type(dl, "Fuse");
        if (p->add_space_prefix) {
            cJSON *s = obj_type(dl, "Strip");
            cJSON_AddStringToObject(s, "content", " ");
            cJSON_AddNumberToObject(s, "start", 1);
            cJSON_AddNumberToObject(s, "stop", 0);
        }
        cJSON_AddItemToObject(root, "decoder", dec);
        return 0;
    }
    if (p->pre && strcmp(p->pre, "gpt-2") != 0 && strcmp(p->pre, "gpt2") != 0)
        return lsa_err(LSA_EUNSUP, "%s: pre-tokenizer \"%s\" is not supported (supported: gpt-2)", t->path, p->pre);
    cJSON *pre = obj_type(NULL, "ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", false);
    cJSON_AddBoolToObject(pre, "use_regex", true);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddItemToObject(root, "decoder", obj_type(NULL, "ByteLevel"));
    return 0;
}

/* ---------------------------------------------------------------- entry point */

static int check_parts(const char *src, const struct lsa_tok_parts *p)
{
    if (p->kind != LSA_TOK_SP_BPE && p->kind != LSA_TOK_BYTELEVEL_BPE)
        return lsa_err(LSA_EINVAL, "%s: unknown tokenizer kind %d", src, (int)p->kind);
    if (p->n_vocab <= 0 || p->n_vocab > INT32_MAX / 2 || !p->pieces || !p->piece_len)
        return lsa_err(LSA_EFORMAT, "%s: tokenizer vocabulary is empty or too large (%d tokens)", src, p->n_vocab);
    if (p->n_merges && (!p->merges || !p->merge_len)) return lsa_err(LSA_EINVAL, "%s: merges missing", src);
    const int32_t ids[3] = {p->bos, p->eos, p->unk};
    static const char *what[3] = {"BOS", "EOS", "unknown"};
    for (int k = 0; k < 3; k++)
        if (ids[k] < -1 || ids[k] >= p->n_vocab)
            return lsa_err(LSA_EFORMAT, "%s: %s token id %d is outside the vocabulary (%d tokens)", src, what[k],
                           ids[k], p->n_vocab);
    if (p->add_bos && p->bos < 0) return lsa_err(LSA_EFORMAT, "%s: BOS is to be added but there is no BOS id", src);
    if (p->add_eos && p->eos < 0) return lsa_err(LSA_EFORMAT, "%s: EOS is to be added but there is no EOS id", src);
    return 0;
}

struct lsa_tokenizer *lsa_tokenizer_from_parts(const struct lsa_tok_parts *p)
{
    const char *src = p && p->source ? p->source : "tokenizer";
    if (!p) {
        lsa_err(LSA_EINVAL, "lsa_tokenizer_from_parts: NULL parts");
        return NULL;
    }
    int rc = check_parts(src, p);
    if (rc) return NULL;
    struct lsa_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(src))) {
        free(t);
        lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        return NULL;
    }
    t->kind = p->kind;
    t->unk_id = -1;
    cJSON *root = NULL;
    rc = build_vocab(t, p);
    if (!rc && p->unk >= 0) {
        t->unk_id = p->unk;
        if (!(t->unk_token = strdup(t->pool.p + t->piece_off[p->unk]))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    }
    if (!rc && p->kind == LSA_TOK_SP_BPE) {
        t->byte_fallback = t->fuse_unk = true;
        rc = merges_from_scores(t, p);
    } else if (!rc) {
        rc = merges_from_list(t, p);
    }
    if (!rc && !(root = cJSON_CreateObject())) rc = lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    if (!rc) rc = describe(t, p, root);
    if (!rc) rc = tk_json_load_pipeline(t, root);
    if (!rc && p->add_bos) {
        if (!(t->prefix = malloc(sizeof *t->prefix))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        else t->prefix[t->n_prefix++] = p->bos;
    }
    if (!rc && p->add_eos) {
        if (!(t->suffix = malloc(sizeof *t->suffix))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        else t->suffix[t->n_suffix++] = p->eos;
    }
    if (!rc) rc = tk_finish(t);
    cJSON_Delete(root);
    if (rc) {
        lsa_tokenizer_free(t);
        return NULL;
    }
    t->bos = p->bos;
    t->eos = p->eos;
    return t;
}
