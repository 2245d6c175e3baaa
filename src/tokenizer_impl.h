/*
 * tokenizer_impl.h — internals shared by src/tokenizer*.c (not a public header).
 *
 * tokenizer.c owns struct lsa_tokenizer (load, free, accessors) and the shared containers;
 * tokenizer_json.c reads the sections of tokenizer.json into it; tokenizer_encode.c runs the encode
 * pipeline (added tokens, normalizers, pre-tokenizers, BPE, post-processor) and holds the UTF-8
 * helpers; tokenizer_decode.c runs the decoder chain; tokenizer_parts.c builds a tokenizer from a
 * vocabulary another format loader read (GGUF, llama2.c).
 */
#ifndef LSA_TOKENIZER_IMPL_H
#define LSA_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "lsa/tokenizer.h"

#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- growable byte buffer and string list (scratch for the pipelines) ---- */

struct tk_buf {
    char *p;
    size_t n, cap;
};
int tk_buf_put(struct tk_buf *b, const void *src, size_t n); /* LSA_ENOMEM on failure */
int tk_buf_putc(struct tk_buf *b, char c);

/* A list of strings stored back to back in one buffer; item i is buf.p[off[i] .. off[i]+len[i]). */
struct tk_slist {
    struct tk_buf buf;
    size_t *off, *len;
    size_t n, cap;
};
int tk_slist_push(struct tk_slist *l, const char *s, size_t n);
void tk_slist_clear(struct tk_slist *l);
void tk_slist_free(struct tk_slist *l);

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if the bytes there are not one (truncated,
 * overlong, surrogate, > U+10FFFF, stray continuation). On success *cp is the code point. */
size_t tk_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
/* Byte offset of the first invalid sequence, or n when all of s[0..n) is valid UTF-8. */
size_t tk_utf8_check(const char *s, size_t n);
/* Append s[0..n) to out, replacing each maximal invalid subpart with U+FFFD (Rust's from_utf8_lossy). */
int tk_utf8_lossy(struct tk_buf *out, const char *s, size_t n);
int tk_utf8_put(struct tk_buf *out, uint32_t cp);
/* Unicode White_Space (what Rust's char::is_whitespace and Oniguruma's \s accept). */
bool tk_is_space(uint32_t cp);

/* ---- string -> id hash map (keys live in the tokenizer's pool) ---- */

struct tk_strmap {
    int32_t *slot; /* index into key_off/key_len/val, -1 empty */
    size_t n_slot;
    size_t *key_off, *key_len;
    int32_t *val;
    size_t n, cap;
};

/* Sized once for n_expected keys (the map never grows); put overwrites an existing key. */
int tk_strmap_init(struct tk_strmap *m, size_t n_expected);
void tk_strmap_put(struct tk_strmap *m, const char *pool, size_t off, size_t n, int32_t val);
void tk_strmap_free(struct tk_strmap *m);

/* ---- (id, id) -> (rank, new id) merge map ---- */

struct tk_merge {
    uint64_t key; /* (a << 32) | b; TK_PAIR_EMPTY when the slot is free */
    uint32_t rank;
    int32_t new_id;
};
#define TK_PAIR_EMPTY UINT64_MAX

/* ---- pipeline pieces ---- */

struct tk_added {
    char *content; /* the token as written in tokenizer.json (what decode emits) */
    size_t len;
    char *match; /* what is searched for: content, normalized for normalized tokens (own allocation) */
    size_t match_len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
};

enum tk_norm_type { TK_NORM_PREPEND, TK_NORM_REPLACE };
struct tk_norm {
    enum tk_norm_type type;
    char *a, *b; /* prepend: a; replace: a -> b */
    size_t a_len, b_len;
};

enum tk_behavior { TK_REMOVED, TK_ISOLATED, TK_MERGED_PREV, TK_MERGED_NEXT, TK_CONTIGUOUS };
enum tk_prepend { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER };
enum tk_pre_type { TK_PRE_BYTELEVEL, TK_PRE_METASPACE, TK_PRE_SPLIT };
struct tk_pre {
    enum tk_pre_type type;
    bool add_prefix_space, use_regex;  /* ByteLevel */
    char rep[8];                       /* Metaspace replacement (one char, UTF-8) */
    size_t rep_len;
    enum tk_prepend prepend;           /* Metaspace */
    bool split;                        /* Metaspace */
    pcre2_code *re;                    /* Split (regex), ByteLevel (GPT-2 regex) */
    char *lit;                         /* Split (string pattern) */
    size_t lit_len;
    enum tk_behavior behavior;         /* Split */
    bool invert;                       /* Split */
};

enum tk_dec_type { TK_DEC_BYTELEVEL, TK_DEC_METASPACE, TK_DEC_REPLACE, TK_DEC_BYTEFALLBACK, TK_DEC_FUSE, TK_DEC_STRIP };
struct tk_dec {
    enum tk_dec_type type;
    char *a, *b; /* Replace: a -> b */
    size_t a_len, b_len;
    uint32_t cp;       /* Strip: content char; Metaspace: replacement */
    size_t start, stop; /* Strip */
    bool prepend;       /* Metaspace: prepend_scheme != never */
};

struct lsa_tokenizer {
    char *path;
    enum lsa_tok_kind kind;

    /* vocabulary of the model: pool holds every piece NUL-terminated */
    struct tk_buf pool;
    struct tk_strmap vocab;
    size_t *piece_off;  /* (n_piece) offset into pool per id, SIZE_MAX for ids the vocab lacks */
    int32_t n_piece;    /* max model id + 1 */

    struct tk_merge *merges; /* open addressing, n_merge_slot entries */
    size_t n_merge_slot;

    /* BPE options */
    int32_t unk_id;  /* -1: no unk token */
    char *unk_token; /* set even when missing from vocab (then unk_id == -1 and encode fails if needed) */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *cont_prefix, *eow_suffix; /* NULL if unset */
    int32_t byte_id[256];          /* id of <0xNN>, -1 if absent */

    /* added tokens (matched in the text before the model sees it) */
    struct tk_added *added;
    size_t n_added;
    int32_t *added_of_id; /* (n_vocab) index into added[] per id, -1 if not an added token */
    bool added_first[2][256]; /* [normalized?][first byte of match]: some added token may start here */
    pcre2_code *word_re;      /* \w, only when some added token is single_word */

    struct tk_norm *norm;
    size_t n_norm;
    struct tk_pre *pre;
    size_t n_pre;
    struct tk_dec *dec;
    size_t n_dec;
    bool has_decoder;

    int32_t *prefix, *suffix; /* ids the post-processor puts around a single sequence */
    size_t n_prefix, n_suffix;

    int32_t bos, eos, n_vocab;

    /* GPT-2 bytes_to_unicode: byte -> UTF-8 of its char, and char -> byte (-1 if not a byte char) */
    char bl_enc[256][3];
    uint8_t bl_enc_len[256];
    int16_t bl_dec[512];
};

struct cJSON;
/* Read model, added_tokens, normalizer, pre_tokenizer, post_processor and decoder of a parsed
 * tokenizer.json (tokenizer_json.c). */
int tk_json_load(struct lsa_tokenizer *t, const struct cJSON *root);
/* The same without the model section (the vocabulary and merges are already in t): used by
 * lsa_tokenizer_from_parts, which describes its pipeline as a small tokenizer.json document. */
int tk_json_load_pipeline(struct lsa_tokenizer *t, const struct cJSON *root);
/* After the sections are read: n_vocab, the added-token index, post-processor id checks, the byte-level
 * tables (tokenizer.c). */
int tk_finish(struct lsa_tokenizer *t);

/* Merge map sized for n_expected pairs; a repeated pair takes the later rank. */
int tk_merge_init(struct lsa_tokenizer *t, size_t n_expected);
void tk_merge_put(struct lsa_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t new_id);
/* Vocabulary lookup (model vocab only); -1 if absent. */
int32_t tk_vocab_get(const struct lsa_tokenizer *t, const char *s, size_t n);
/* Merge rule for the pair (a, b), or NULL. */
const struct tk_merge *tk_merge_get(const struct lsa_tokenizer *t, int32_t a, int32_t b);
/* Append the normalizer chain's output for s[0..n) to out. */
int tk_normalize(const struct lsa_tokenizer *t, const char *s, size_t n, struct tk_buf *out);
/* The added token with this id, or NULL. */
const struct tk_added *tk_added_by_id(const struct lsa_tokenizer *t, int32_t id);

#endif
