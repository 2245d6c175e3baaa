/*
 * report.h — the paper-ready outputs of `lsa report` beside results.h5 and summary.json:
 *   DIR/report.pdf  a title page (model, architecture, parameters, dtypes, corpus, lsa version and commit,
 *                   date, the exact commands), then one section per analysis: a sentence defining each
 *                   metric, its figures (vector, drawn by the same code as the figure files) and a short
 *                   table of the key numbers; page numbers in the footer.
 *   DIR/report.md   a plain index of the figures with their captions, for viewing on a code host.
 * Figures reach the report through lsa_plot_opts.doc (set it to lsa_report_doc()) while each analysis
 * saves its figure files; their captions come from one table here, keyed by the figure's stem.
 * Both files are written under temporary names and renamed by lsa_report_close; lsa_report_abort
 * removes them.
 */
#ifndef LSA_ANALYSES_REPORT_H
#define LSA_ANALYSES_REPORT_H

#include "logit_lens.h"
#include "plot.h"
#include "redundancy.h"
#include "robustness.h"
#include "similarity.h"

struct lsa_report_meta {
    const char *model;          /* model name (folder) */
    const char *model_path;
    const char *model_type;
    int n_layers, d_model;
    int64_t n_params;           /* 0 = unknown (model not loaded) */
    const char *weight_dtype;   /* stored weights, e.g. "F32", "BF16"; NULL = unknown */
    const char *act_dtype;      /* capture activations: "f16" | "f32" */
    int64_t n_tokens, n_seqs;
    const char *capture;        /* path */
    const char *capture_cmd;    /* the lsa capture command line */
    const char *report_cmd;     /* this lsa report command line */
    const char *created;        /* ISO 8601 UTC */
};

struct lsa_report;

/* Start DIR/report.pdf and DIR/report.md (DIR exists). NULL on failure. */
struct lsa_report *lsa_report_open(const char *dir, const struct lsa_report_meta *m);
/* The document that figures should be placed in (borrowed). */
struct lsa_plot_doc *lsa_report_doc(struct lsa_report *r);
/* A section: title, then one line per definition (NULL-terminated list; may be NULL). */
int lsa_report_section(struct lsa_report *r, const char *title, const char *const *definitions);
/* A small table under a heading (cells row-major, first row the header). */
int lsa_report_table(struct lsa_report *r, const char *heading, int rows, int cols, const char *const *cells);
/* An analysis that could not run, and why (listed on the title page's last lines and in report.md). */
int lsa_report_skipped(struct lsa_report *r, const char *analysis, const char *reason);
/* Caption of a figure stem (e.g. "cosine"); NULL when unknown. */
const char *lsa_report_caption(const char *stem);
/*
 * The whole report in one call: title page, then a section per analysis that ran (definitions, its
 * figures drawn into the PDF and, when figdir is set, written as files too, a table of key numbers), and
 * the analyses that did not run with why (skipped: n_skipped pairs of name, reason). Results may be NULL.
 */
struct lsa_report_parts {
    const struct lsa_similarity_result *sim;
    const struct lsa_redundancy_result *red;
    const struct lsa_lens_result *lens;
    const struct lsa_robust_result *rob;
    const char *skipped[4][2];
    int n_skipped;
};
int lsa_report_write(const char *dir, const struct lsa_report_meta *m, const struct lsa_report_parts *parts,
                     const struct lsa_plot_opts *po, const char *figdir);

int lsa_report_close(struct lsa_report *r);
void lsa_report_abort(struct lsa_report *r);

#endif
