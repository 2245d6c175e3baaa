/*
 * tokenizer.h — text <-> token ids, exactly as the checkpoint's own tokenizer does it.
 *
 * Sources (one loader each, one encoder for all):
 *  - Hugging Face tokenizer.json, model type BPE:
 *      * byte-level BPE (GPT-2 family): ByteLevel pre-tokenizer with the GPT-2 regex (Unicode classes via
 *        PCRE2), the bytes-to-unicode map, added/special tokens such as <|endoftext|> matched in raw text;
 *      * SentencePiece-style BPE with byte fallback (Llama-2 family): normalizer Prepend("▁") +
 *        Replace(" " -> "▁") or a Metaspace pre-tokenizer; <0xNN> byte-fallback tokens; fuse_unk.
 *    Post-processor TemplateProcessing (e.g. BOS prepended) and ByteLevel are honoured.
 *  - lsa_tokenizer_from_parts(): vocab + merges or scores given by another format loader (GGUF, llama2.c):
 *      * SentencePiece-style vocabularies with scores (GGUF tokenizer.ggml.model "llama", llama2.c
 *        tokenizer.bin): encoded as the tokenizer.json of the same model is (Prepend("▁") + Replace(" ",
 *        "▁") normalizer, byte fallback, fused unk), with merges derived from the scores: every split of a
 *        normal piece into two pieces is a merge, ranked by the piece's score (highest first, equal scores
 *        leftmost first, as llama.cpp's and sentencepiece's score-based BPE does);
 *      * byte-level BPE vocabularies with merges (GGUF "gpt2") and a named pre-tokenizer.
 *
 * Encoding rejects invalid UTF-8 with LSA_ETEXT (message says the byte offset).
 * Ownership: lsa_tokenizer_load returns a tokenizer the caller frees with lsa_tokenizer_free (NULL ok).
 * lsa_tokenizer_encode returns a malloc'd id array the caller frees with free().
 */
#ifndef LSA_TOKENIZER_H
#define LSA_TOKENIZER_H

#include "lsa/lsa.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lsa_tokenizer;

enum lsa_tok_kind {
    LSA_TOK_BYTELEVEL_BPE = 1, /* GPT-2 style */
    LSA_TOK_SP_BPE = 2,        /* SentencePiece-style BPE with byte fallback */
};

/* Token types, numbered as GGUF's tokenizer.ggml.token_type (llama.cpp's llama_token_type). */
enum lsa_tok_type {
    LSA_TOKTYPE_NORMAL = 1,
    LSA_TOKTYPE_UNKNOWN = 2,
    LSA_TOKTYPE_CONTROL = 3, /* special: matched in raw text, skipped by decode(skip_special) */
    LSA_TOKTYPE_USER = 4,    /* user-defined: matched in raw text, not special */
    LSA_TOKTYPE_UNUSED = 5,
    LSA_TOKTYPE_BYTE = 6,    /* <0xNN> byte-fallback piece */
};

/* A vocabulary handed over by another format loader. Everything is borrowed for the call only. */
struct lsa_tok_parts {
    const char *source;          /* the file it came from, for messages */
    enum lsa_tok_kind kind;      /* LSA_TOK_SP_BPE (pieces + scores) or LSA_TOK_BYTELEVEL_BPE (pieces + merges) */
    int32_t n_vocab;
    const char *const *pieces;   /* (n_vocab) piece bytes, not necessarily NUL-terminated */
    const size_t *piece_len;     /* (n_vocab) */
    const float *scores;         /* (n_vocab) SP: merge priority (higher first); NULL = all equal */
    const int32_t *types;        /* (n_vocab) enum lsa_tok_type; NULL = all normal */
    const char *const *merges;   /* BYTELEVEL: (n_merges) "a b", in rank order */
    const size_t *merge_len;     /* (n_merges) */
    size_t n_merges;
    const char *pre;             /* BYTELEVEL pre-tokenizer: "gpt-2" (also NULL), "llama-bpe", "qwen2" */
    int32_t bos, eos, unk;       /* -1 when none */
    bool add_bos, add_eos;       /* what encode(add_special = true) puts around the text */
    bool add_space_prefix;       /* SP: prepend "▁" to the text (sentencepiece's add_dummy_prefix) */
};

/* Build a tokenizer from parts. NULL on failure (LSA_EFORMAT naming p->source, LSA_EUNSUP for an unknown
 * pre-tokenizer). */
struct lsa_tokenizer *lsa_tokenizer_from_parts(const struct lsa_tok_parts *p);

/* Load tokenizer.json at path. NULL on failure (lsa_errmsg names the file and problem). */
struct lsa_tokenizer *lsa_tokenizer_load(const char *path);
void lsa_tokenizer_free(struct lsa_tokenizer *tok);

enum lsa_tok_kind lsa_tokenizer_kind(const struct lsa_tokenizer *tok);
const char *lsa_tokenizer_kind_name(const struct lsa_tokenizer *tok); /* "bpe-bytelevel", "bpe-sentencepiece" */
int32_t lsa_tokenizer_n_vocab(const struct lsa_tokenizer *tok);       /* max id + 1, added tokens included */
int32_t lsa_tokenizer_bos(const struct lsa_tokenizer *tok);           /* -1 if none */
int32_t lsa_tokenizer_eos(const struct lsa_tokenizer *tok);           /* -1 if none */
/* Whether plain encode (add_special = true) prepends BOS, per the post-processor. */
bool lsa_tokenizer_adds_bos(const struct lsa_tokenizer *tok);

/*
 * Encode len bytes of UTF-8 text. add_special applies the post-processor (e.g. prepends BOS) as
 * transformers' tokenizer(text) does by default. On success *ids (malloc'd, caller frees) holds *n_ids ids.
 */
int lsa_tokenizer_encode(const struct lsa_tokenizer *tok, const char *text, size_t len, bool add_special,
                         int32_t **ids, size_t *n_ids);

/*
 * Decode ids to UTF-8 text as transformers' decode(ids, skip_special_tokens=skip_special) does.
 * *text is malloc'd and NUL-terminated (caller frees); *len excludes the NUL.
 */
int lsa_tokenizer_decode(const struct lsa_tokenizer *tok, const int32_t *ids, size_t n_ids, bool skip_special,
                         char **text, size_t *len);

/* The piece of one id as stored in the vocabulary (borrowed, lives as long as tok); NULL if out of range. */
const char *lsa_tokenizer_piece(const struct lsa_tokenizer *tok, int32_t id);

#ifdef __cplusplus
}
#endif
#endif
