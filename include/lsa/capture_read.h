/*
 * capture_read.h — read an "lsa-capture" v1 file (layout: capture.h, docs/capture-format.md) block by
 * block, for the analyses.
 *
 * lsa_capture_read_open validates what the analyses rely on and fails with one clear message otherwise:
 * the file exists and is HDF5 (LSA_EIO / LSA_EFORMAT), format = "lsa-capture" (LSA_EFORMAT),
 * format_version = 1 (LSA_EUNSUP), /resid is [P, N, D] with D = the d_model attribute, its `points` and
 * `point_index` attributes have P entries, /tokens is [N], /seq_offsets is [S+1] running from 0 to N,
 * /resid_final (when present) is [N, D].
 *
 * Reads return float32 whatever the stored dtype (f16 is widened exactly) and fail with LSA_ENUM when a
 * value is NaN or Inf, naming the dataset, the point and the token. Memory: the reader holds the
 * metadata only (O(P)); every read goes into the caller's buffer.
 *
 * Ownership: open returns a handle closed with lsa_capture_read_close (NULL ok); the info it returns and
 * the strings in it are borrowed until close.
 */
#ifndef LSA_CAPTURE_READ_H
#define LSA_CAPTURE_READ_H

#include "lsa/lsa.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lsa_capture_info {
    const char *path;               /* the file as opened */
    int n_points;                   /* P: stored residual points */
    int64_t n_tokens;               /* N */
    int64_t n_seqs;                 /* S */
    int d_model;                    /* D */
    int n_layers;                   /* the model's layer count (attribute) */
    const char *model_path;         /* attribute model_path */
    const char *model_type;         /* attribute model_type */
    const char *dtype;              /* "f16" | "f32" */
    const char *const *point_names; /* (P) e.g. "embed", "blocks.0.hook_resid_post" */
    const int64_t *point_index;     /* (P) index into the full list 0..n_executed (0 = embed) */
    bool has_final;                 /* /resid_final is there */
    int64_t chunk_tokens;           /* token extent of one /resid chunk: read in multiples of it */
};

struct lsa_capture_reader;

struct lsa_capture_reader *lsa_capture_read_open(const char *path);
void lsa_capture_read_close(struct lsa_capture_reader *r);
/* Borrowed until close. */
const struct lsa_capture_info *lsa_capture_read_info(const struct lsa_capture_reader *r);

/* resid[:, t0:t1, :] into out, (P, t1 - t0, D) row-major. */
int lsa_capture_read_resid(struct lsa_capture_reader *r, int64_t t0, int64_t t1, float *out);
/* resid_final[t0:t1, :] into out, (t1 - t0, D); LSA_EFORMAT when the capture has none. */
int lsa_capture_read_final(struct lsa_capture_reader *r, int64_t t0, int64_t t1, float *out);
/* seq_offsets[s0:s1] into out, (s1 - s0); s1 <= S + 1. Checked to be non-decreasing within [0, N]. */
int lsa_capture_read_offsets(struct lsa_capture_reader *r, int64_t s0, int64_t s1, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif
