/*
 * compare.h — several models (or variants of one: f32 vs its q8_0 GGUF, intact vs pruned) side by side:
 * per-layer curves read from their summary.json files, overlaid on a shared axis of relative depth so
 * that models of different depth line up.
 *
 * Relative depth: a residual point l of a model with L layers (0 = embedding, L = after the last layer)
 * sits at l / L; a per-layer quantity of layer l (Block Influence, deletion damage) at (l + 0.5) / L.
 * Curves drawn when every summary has them:
 *   block_influence          per layer (ShortGPT)
 *   resid_norm               per point
 *   logit_lens.kl_to_final   per point; logit_lens.cross_entropy per point
 *   robustness.delete        per layer: nll − baseline_nll
 */
#ifndef LSA_ANALYSES_COMPARE_H
#define LSA_ANALYSES_COMPARE_H

#include "plot.h"

#define LSA_COMPARE_MAX 16

struct lsa_compare_curve {
    const char *key;   /* summary key, e.g. "block_influence" */
    const char *title; /* figure title */
    const char *ylabel;
    int n_models;
    int n[LSA_COMPARE_MAX];      /* points per model */
    double *x[LSA_COMPARE_MAX];  /* relative depth */
    double *y[LSA_COMPARE_MAX];
};

struct lsa_compare_result {
    int n_models;
    char *label[LSA_COMPARE_MAX];
    int n_curves;
    struct lsa_compare_curve curves[8];
    char *skipped; /* curves not drawn and why (newline-separated), or NULL */
};

/* Read the summaries (labels may be NULL: each summary's "model" name). */
int lsa_compare_run(const char *const *summaries, const char *const *labels, int n, struct lsa_compare_result **out);
/* DIR/compare.json (the aligned curves) */
int lsa_compare_save(const struct lsa_compare_result *r, const char *dir);
/* DIR/compare-<key>.<ext> */
int lsa_compare_draw(const struct lsa_compare_result *r, const struct lsa_plot_opts *po, const char *dir);
void lsa_compare_free(struct lsa_compare_result *r);

#endif
