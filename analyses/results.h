/*
 * results.h — where analyses put their numbers: DIR/results.h5 (one group per analysis) and
 * DIR/summary.json (a public interface: docs/summary-keys.md and the analysis headers list the keys).
 *
 * results.h5 layout: root attributes lsa_version, capture (path), model_path, model_type, n_tokens,
 * created (ISO 8601 UTC), command; then /<analysis>/<dataset> float64 / int64 arrays, with attributes
 * (definitions, conventions) on the datasets and groups.
 * summary.json: {"lsa_version", "capture", "model", "n_tokens", "points": [...], <analysis keys>...}.
 * Non-finite numbers become null in JSON (and stay NaN in results.h5).
 *
 * Both files are written under temporary names in DIR (".results.h5.partial-PID",
 * ".summary.json.partial-PID") and renamed by lsa_results_commit only; lsa_results_abort removes them.
 * Ownership: open returns a handle that commit or abort frees (abort accepts NULL).
 */
#ifndef LSA_ANALYSES_RESULTS_H
#define LSA_ANALYSES_RESULTS_H

#include "lsa/lsa.h"

#include <stdbool.h>

struct lsa_results;

struct lsa_results_meta {
    const char *capture;    /* the capture's path */
    const char *model_path; /* from the capture */
    const char *model_type;
    int64_t n_tokens;
    const char *command;    /* provenance: the command line; NULL = "" */
    const char *const *points; /* (n_points) residual point names */
    int n_points;
};

/* Start DIR/results.h5 and DIR/summary.json (DIR must exist). NULL on failure. */
struct lsa_results *lsa_results_open(const char *dir, const struct lsa_results_meta *meta);
/* Close, write summary.json, rename both to their final names, free. */
int lsa_results_commit(struct lsa_results *r);
/* Remove the temporary files and free. NULL ok. */
void lsa_results_abort(struct lsa_results *r);

/*
 * Each writes /group/name into results.h5 and, when json_key is not NULL, the same numbers into
 * summary.json under json_key (a matrix as a list of rows). The first error sticks: later calls return it.
 * Every json_key (here and below) may be a dotted path, "logit_lens.kl_to_final": the value goes into
 * nested objects, {"logit_lens": {"kl_to_final": ...}}, created as needed; a flat key is a top-level one.
 * A value already at that key is replaced.
 */
int lsa_results_matrix(struct lsa_results *r, const char *group, const char *name, int rows, int cols,
                       const double *v, const char *json_key);
int lsa_results_vector(struct lsa_results *r, const char *group, const char *name, int n, const double *v,
                       const char *json_key);
int lsa_results_ivector(struct lsa_results *r, const char *group, const char *name, int n, const int64_t *v,
                        const char *json_key);
/* A table (rows, n_cols) as a dataset with a `columns` attribute, and in JSON as a list of objects. */
int lsa_results_table(struct lsa_results *r, const char *group, const char *name, int rows, int n_cols,
                      const char *const *cols, const double *v, const char *json_key);
/* A whole int64 matrix (rows, cols) into results.h5 only. */
int lsa_results_imatrix(struct lsa_results *r, const char *group, const char *name, int rows, int cols,
                        const int64_t *v);
/* Attributes on a group or dataset of results.h5 (obj like "/similarity" or "/similarity/cosine"). */
int lsa_results_attr_str(struct lsa_results *r, const char *obj, const char *name, const char *value);
int lsa_results_attr_strs(struct lsa_results *r, const char *obj, const char *name, const char *const *v, int n);
int lsa_results_attr_int(struct lsa_results *r, const char *obj, const char *name, int64_t value);
int lsa_results_attr_f64(struct lsa_results *r, const char *obj, const char *name, double value);
/* Extra JSON-only values. */
int lsa_results_json_str(struct lsa_results *r, const char *key, const char *value);
int lsa_results_json_num(struct lsa_results *r, const char *key, double value);
int lsa_results_json_strs(struct lsa_results *r, const char *key, const char *const *v, int n);
/* JSON only: a list of rows objects {str_col: strs[i], cols[0]: v[i][0], ...}; str_col NULL = numbers only. */
int lsa_results_json_records(struct lsa_results *r, const char *key, int rows, int n_cols, const char *const *cols,
                             const double *v, const char *str_col, const char *const *strs);

/* ------------------------------------------------------------------ reuse (results_read.c)
 *
 * `lsa report` reuses an analysis from an earlier DIR/results.h5 instead of recomputing it when the
 * analysis group there carries the same `input_key` and `options` attributes as this run would write:
 *   input_key  a 128-bit hash (hex) of lsa's version and commit; the capture file's size and modification
 *              time, its /tokens, /seq_offsets and its created, command, model_path, dtype attributes; and,
 *              for analyses that run the model, the model file (or each file directly in the model folder)
 *              by name, size and modification time;
 *   options    the analysis's options that change its numbers, as text ("cka_max_tokens=4096 ...").
 */
#define LSA_RESULTS_KEY 33 /* 32 hex digits and the NUL */

/* key_capture: for analyses of the capture alone; key_model (when model is not NULL): for those that also
 * run the model. The capture is read once for both. */
int lsa_results_input_keys(const char *capture, const char *model, char key_capture[LSA_RESULTS_KEY],
                           char key_model[LSA_RESULTS_KEY]);
/* FNV-1a 64 of n bytes (the same hash, for options text that must name a token set). */
uint64_t lsa_results_fnv1a(const void *p, size_t n);
/* Put input_key and options on /group of the results being written. */
int lsa_results_stamp(struct lsa_results *r, const char *group, const char *key, const char *options);

struct lsa_h5;
/* DIR/results.h5 as left by an earlier run; NULL when there is none or it cannot be read (then nothing is
 * reused). Close with lsa_h5_close. */
struct lsa_h5 *lsa_results_prev_open(const char *dir);
/* /group in prev has this input_key and these options (prev NULL: false). */
bool lsa_results_prev_match(struct lsa_h5 *prev, const char *group, const char *key, const char *options);

/* Reads for the analyses' _load functions: a dataset of exactly n values as float64 / int64 (malloc'd, the
 * caller frees), a scalar numeric attribute, an attribute of exactly n strings (free with
 * lsa_h5_free_names). LSA_EFORMAT naming the file and object when missing or of another size. */
int lsa_results_get_f64(struct lsa_h5 *h, const char *obj, size_t n, double **out);
int lsa_results_get_i64(struct lsa_h5 *h, const char *obj, size_t n, int64_t **out);
int lsa_results_get_int(struct lsa_h5 *h, const char *obj, const char *name, int64_t *v);
int lsa_results_get_num(struct lsa_h5 *h, const char *obj, const char *name, double *v);
int lsa_results_get_strs(struct lsa_h5 *h, const char *obj, const char *name, size_t n, char ***out);

#endif
