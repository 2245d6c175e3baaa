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
 *   seq_checksums int64 [S, 3]    per sequence: FNV-1a 64 of its token ids (little-endian int32 bytes), a
 *                                 checksum of everything stored for it (implementation-defined), and a
 *                                 check of the row itself; --resume verifies what it takes back with them
 * Every dataset has an `axes` attribute naming its dimensions (point, layer, token, feature, vocab,
 * sequence). Datasets are chunked along the token axis (about 1 MiB a chunk), deflate + shuffle, except
 * nll, texts and seq_checksums (uncompressed: their chunks never move, so a crash cannot damage them).
 *
 * Files are written as <path>.partial (first built as <path>.partial-new, renamed once it can be opened)
 * and renamed to path only by lsa_capture_finish: a file at the final name is always complete. The
 * partial file is flushed to disk (fsync) between windows, every checkpoint_seconds.
 * lsa_capture_abort removes it, except in a resume run, which keeps it for another try.
 *
 * Resuming (o->resume): when <path>.partial exists, its recorded options must be this run's (model_path,
 * n_layers, d_model, n_vocab, ctx, bos, dtype, layer_order, drop_attn, drop_mlp, the stored points and the
 * optional datasets), else LSA_EINVAL says which differs. The inputs are then tokenized again; each window
 * whose token checksum differs from the interrupted run's sequence at that index is an error ("input
 * differs from the interrupted run at sequence S"); each that matches is copied from the old file, its
 * data verified against the stored checksum, into a new file, without running the forward. The first
 * window the old file cannot give back intact (a crash can damage the last partly written chunks) and all
 * after it are computed; the new file then replaces <path>.partial. The result holds the same tokens and
 * activations as an uninterrupted run. Without <path>.partial, a resume run starts afresh. While taking
 * back, the disk holds both files (the new one up to the window reached).
 * Memory is one window's activations plus the model, whatever the corpus size (plus, while taking back,
 * the decompressed chunks of the window's rows: about 2 MiB per stored row of the widest dataset).
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
    bool resume;                 /* continue the interrupted capture in <path>.partial (see below) */
    double checkpoint_seconds;   /* flush <path>.partial this often; 0 = every 10 s, or less often when
                                    flushing would take more than ~5% of the time */
    /* Called after each window with the number of tokens written so far. */
    void (*progress)(void *ctx, int64_t tokens_done);
    void *progress_ctx;
};

struct lsa_capture_opts lsa_capture_opts_default(void);

struct lsa_capture;

/* Start a capture that will be renamed to path on success. The model is borrowed. NULL on failure, among
 * others when <path>.partial exists and o->resume is not set, or when resuming finds other options. */
struct lsa_capture *lsa_capture_open(const char *path, const struct lsa_model *m, const struct lsa_capture_opts *o);
/* Tokenize one document (len bytes of UTF-8) and capture its windows. `source` names it in errors. */
int lsa_capture_add(struct lsa_capture *c, const char *text, size_t len, const char *source);
/* Whether max_tokens has been reached (further documents are ignored). */
bool lsa_capture_full(const struct lsa_capture *c);
int64_t lsa_capture_n_tokens(const struct lsa_capture *c);
int64_t lsa_capture_n_seqs(const struct lsa_capture *c);
/* Sequences taken over from the interrupted run (resume), not computed again. */
int64_t lsa_capture_n_resumed(const struct lsa_capture *c);
/* Write the closing datasets and attributes, close, rename to the final path, free c. */
int lsa_capture_finish(struct lsa_capture *c);
/* Close and remove the temporary file (a resume run keeps <path>.partial), free c. NULL ok. */
void lsa_capture_abort(struct lsa_capture *c);

#ifdef __cplusplus
}
#endif
#endif
