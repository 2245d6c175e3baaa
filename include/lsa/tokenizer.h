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
 *  - lsa_tokenizer_from_parts(): vocab + merges or scores given by another format loader (GGUF, llama2.c).
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
