/*
 * llama2c.h — Karpathy's llama2.c checkpoints (the legacy "version 0" layout that run.c reads) and its
 * tokenizer.bin.
 *
 * Checkpoint (.bin, little-endian): 7 int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len (a negative vocab_size means the classifier is stored separately, else it is the embedding);
 * then float32 arrays, each row-major: token_embedding (vocab, dim), rms_att (layers, dim),
 * wq (layers, dim, dim), wk (layers, kv_dim, dim), wv (layers, kv_dim, dim), wo (layers, dim, dim),
 * rms_ffn (layers, dim), w1 (layers, hidden, dim), w2 (layers, dim, hidden), w3 (layers, hidden, dim),
 * rms_final (dim), freq_cis_real and freq_cis_imag (seq_len, head_size/2 each; unused), and wcls
 * (vocab, dim) when the classifier is separate. kv_dim = dim * n_kv_heads / n_heads. The file size must
 * be exactly what the header implies. Attention uses interleaved RoPE pairs (Meta's layout); q and k rows
 * are reordered at load into the half-split order of the Hugging Face layout, so the model equals its HF
 * conversion. RMSNorm epsilon 1e-5, RoPE theta 10000, SwiGLU, as run.c.
 * The export formats "ak42" version 1 and 2 are recognised and refused (LSA_EUNSUP).
 *
 * tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 length, bytes. Pieces use a
 * plain space where SentencePiece has "▁"; ids 0, 1, 2 are <unk>, BOS ("\n<s>\n") and EOS
 * ("\n</s>\n"), and <0xNN> pieces are byte fallback, as run.c assumes. It is read into a SentencePiece-
 * style tokenizer (lsa_tokenizer_from_parts) that prepends BOS and the dummy-prefix space, as run.c does.
 *
 * Ownership: lsa_llama2c_load returns a model freed with lsa_model_free; lsa_llama2c_tokenizer_load a
 * tokenizer freed with lsa_tokenizer_free.
 */
#ifndef LSA_LLAMA2C_H
#define LSA_LLAMA2C_H

#include "lsa/model.h"
#include "lsa/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lsa_llama2c_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    bool shared_classifier; /* vocab_size in the file was positive */
};

/* Read and check the header of a .bin checkpoint (vocab_size is made positive). */
int lsa_llama2c_read_config(const char *path, struct lsa_llama2c_config *cfg);

/*
 * Load a .bin checkpoint with the tokenizer at tokenizer_path, or, when it is NULL, tokenizer.bin or
 * tok<vocab_size>.bin beside the checkpoint (no tokenizer when neither exists). lsa_model_load(path) is
 * the same as lsa_llama2c_load(path, NULL) for a .bin file.
 */
struct lsa_model *lsa_llama2c_load(const char *path, const char *tokenizer_path);

/* Read a tokenizer.bin holding exactly n_vocab tokens. */
struct lsa_tokenizer *lsa_llama2c_tokenizer_load(const char *path, int n_vocab);

#ifdef __cplusplus
}
#endif
#endif
