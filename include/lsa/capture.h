/*
 * capture.h — stream a model's activations over a corpus into an HDF5 file (format "lsa-capture" v1).
 *
 * Layout (a public interface: docs/capture-format.md; changing it bumps format_version):
 *   root attributes  format="lsa-capture", format_version=1, lsa_version, model_path, model_type,
 *                    n_layers, d_model, n_vocab, n_heads, dtype (activation dtype: "f16"|"f32"),
 *                    weight_dtype, created (ISO 8601 UTC), command, layer_order, drop_attn, drop_mlp
 *                    (int arrays: the plan that ran), tokenizer (kind), ctx, bos, n_tokens, n_sequences
 *   tokens        int32 [N]       all token ids, sequences concatenated
 *   seq_offsets   int64 [S+1]     sequence s is tokens[seq_offsets[s] : seq_offsets[s+1]]
 *   texts         str   [S]       each sequence's source text (the window's decoded text when cut)
 *   resid         f16|f32 [P,N,D] residual points before the final norm: index 0 = embed (input to the
 *                                 first executed layer), l = after the l-th executed layer; attribute
 *                                 `points` names each (TransformerLens names), `point_index` the index
 *                                 into the full list 0..n_executed when --layers selects a subset
 *   resid_final   f16|f32 [N,D]   after the final norm (what the unembedding sees)
 *   resid_mid, attn_out, mlp_out  [L,N,D] per executed layer, when requested
 *   logits        f32 [N,V]       when requested
 *   nll           f32 [N]         -log p(next token); NaN at the last token of each sequence
 * Every dataset has an `axes` attribute naming its dimensions (point, layer, token, feature, vocab,
 * sequence). Datasets are chunked along the token axis (about 1 MiB a chunk), deflate + shuffle.
 *
 * Files are written under a temporary name in the output's folder and renamed only by
 * lsa_capture_finish; lsa_capture_abort removes the temporary file. Memory is one window's activations
 * plus the model, whatever the corpus size.
 */
#ifndef LSA_CAPTURE_H
#define LSA_CAPTURE_H

#include "lsa/forward.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LSA_CAPTURE_FORMAT "lsa-capture"
#define LSA_CAPTURE_VERSION 1

enum lsa_capture_component {
    LSA_CAP_RESID = 1u << 0,
    LSA_CAP_MID = 1u << 1,
    LSA_CAP_ATTN = 1u << 2,
    LSA_CAP_MLP = 1u << 3,
    LSA_CAP_LOGITS = 1u << 4,
};

struct lsa_capture_opts {
    int ctx;                     /* window length in tokens; 0 = model context capped at 1024 */
    int64_t max_tokens;          /* stop after this many tokens in all; 0 = no limit */
    int bos;                     /* -1 = as the tokenizer's post-processor says, 0 = never, 1 = always */
    unsigned components;         /* mask of enum lsa_capture_component; resid is always written */
    bool f32;                    /* activations as float32 instead of float16 */
    const char *layers;          /* residual points to store, e.g. "0-5,12"; NULL = all */
    int compress;                /* deflate level 0..9 */
    const struct lsa_plan *plan; /* NULL = identity */
    const char *command;         /* provenance: the command line */
    bool allow_nonfinite;        /* keep going (and store) when activations are NaN/Inf */
    /* Called after each window with the number of tokens written so far. */
    void (*progress)(void *ctx, int64_t tokens_done);
    void *progress_ctx;
};

struct lsa_capture_opts lsa_capture_opts_default(void);

struct lsa_capture;

/* Start a capture that will be renamed to path on success. The model is borrowed. NULL on failure. */
struct lsa_capture *lsa_capture_open(const char *path, const struct lsa_model *m, const struct lsa_capture_opts *o);
/* Tokenize one document (len bytes of UTF-8) and capture its windows. `source` names it in errors. */
int lsa_capture_add(struct lsa_capture *c, const char *text, size_t len, const char *source);
/* Whether max_tokens has been reached (further documents are ignored). */
bool lsa_capture_full(const struct lsa_capture *c);
int64_t lsa_capture_n_tokens(const struct lsa_capture *c);
int64_t lsa_capture_n_seqs(const struct lsa_capture *c);
/* Write the closing datasets and attributes, close, rename to the final path, free c. */
int lsa_capture_finish(struct lsa_capture *c);
/* Close and remove the temporary file, free c. NULL ok. */
void lsa_capture_abort(struct lsa_capture *c);

#ifdef __cplusplus
}
#endif
#endif
