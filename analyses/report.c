/*
 * report.c — report.pdf and report.md (see report.h): the title page, sections, tables, captions.
 * The drawing is plot.c's document API; this file decides what the report says.
 */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lsa_report {
    struct lsa_plot_doc *doc;
    FILE *md;
    char *md_path, *md_tmp;
    int n_figures;
};

static const struct {
    const char *stem, *caption;
} captions[] = {
    {"cosine", "Mean cosine similarity between the residual stream at every pair of points (embedding, then after "
               "each block), averaged over tokens. Neighbouring layers of a deep model are often very similar."},
    {"angular", "Angular distance arccos(cos)/\xcf\x80 between every pair of residual points, averaged per token "
                "(Gromov et al. 2024)."},
    {"cka_linear", "Linear CKA between residual points on the first tokens, exact (Kornblith et al. 2019): "
                   "similarity of representations invariant to rotation and scale."},
    {"cka_minibatch", "Linear CKA with the unbiased minibatch estimator over the whole capture (Nguyen et al. "
                      "2021)."},
    {"block_influence", "Block Influence BI = 1 \xe2\x88\x92 mean cos(x_in, x_out) of each block (ShortGPT, Men et "
                        "al. 2024); the lowest are the most redundant, marked in colour with their rank."},
    {"best_block", "Angular distance between the input of a block of n layers and its output, by the block's first "
                   "layer; the minimum (ringed) is the block whose removal should hurt least (Gromov et al. 2024)."},
    {"block_distance", "The whole table d(l, l+n) of angular distances: rows n, columns the first dropped block; "
                       "the best start of each n outlined."},
    {"resid_norm", "Mean norm of the residual stream after each block, and its growth ratio per block (the "
                   "'curse of depth' papers)."},
    {"logit_lens_grid", "Logit lens on one sequence: the top-1 token that each layer's residual decodes to through the "
                  "final norm and unembedding, coloured by its probability (nostalgebraist 2020)."},
    {"logit_lens_curves", "Logit lens per layer: KL divergence to the model's output distribution, entropy, "
                    "cross-entropy of the true next token and top-1 agreement with the final layer."},
    {"robustness_delete_swap", "Damage of deleting each layer and of swapping each adjacent pair: increase of the "
                               "mean NLL over the intact model (Lad et al. 2024; Gromov et al. 2024)."},
    {"robustness_swap_all", "Mean NLL after swapping every pair of layers i, j."},
    {"robustness_removal", "Mean NLL when k layers are removed: in Block Influence order, as the best contiguous "
                          "block, and in random order (mean over seeds)."},
    {"robustness_sublayers", "Damage of removing only the attention or only the MLP sub-block of each layer (He "
                             "et al. 2024, What Matters in Transformers)."},
    {"robustness_painters", "The middle half of the layers skipped, reversed, replaced by repeats of the middle "
                            "layer, or run in parallel (Sun et al. 2024, Transformer Layers as Painters)."},
};

const char *lsa_report_caption(const char *stem)
{
    for (size_t i = 0; i < sizeof captions / sizeof captions[0]; i++)
        if (!strcmp(captions[i].stem, stem)) return captions[i].caption;
    return NULL;
}

/* Every figure placed in the PDF is also listed in report.md with its caption. */
static const char *caption_and_index(void *ctx, const char *stem)
{
    struct lsa_report *r = ctx;
    const char *c = lsa_report_caption(stem);
    fprintf(r->md, "![%s](figures/%s.png)\n\n%s\n\n", stem, stem, c ? c : "");
    r->n_figures++;
    return c;
}

static void md_escape_line(FILE *f, const char *s)
{
    for (; *s; s++) fputc(*s == '\n' ? ' ' : *s, f);
}

struct lsa_report *lsa_report_open(const char *dir, const struct lsa_report_meta *m)
{
    struct lsa_report *r = calloc(1, sizeof *r);
    size_t n = strlen(dir) + 48;
    char *pdf = malloc(n);
    if (!r || !pdf || !(r->md_path = malloc(n)) || !(r->md_tmp = malloc(n + 16))) {
        free(pdf);
        lsa_report_abort(r);
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(pdf, n, "%s/report.pdf", dir);
    snprintf(r->md_path, n, "%s/report.md", dir);
    snprintf(r->md_tmp, n + 16, "%s.partial-%d", r->md_path, (int)getpid());
    char footer[256];
    snprintf(footer, sizeof footer, "lsa %s \xc2\xb7 %s", LSA_VERSION, m->model);
    r->doc = lsa_plot_doc_open(pdf, footer);
    free(pdf);
    if (!r->doc || !(r->md = fopen(r->md_tmp, "w"))) {
        if (r->doc) lsa_err(LSA_EIO, "%s: cannot write", r->md_tmp);
        lsa_report_abort(r);
        return NULL;
    }
    lsa_plot_doc_set_captions(r->doc, caption_and_index, r);

    /* title page */
    struct lsa_plot_doc *d = r->doc;
    char line[1024], cnt[32], cnt2[32];
    int rc = lsa_plot_doc_text(d, "Layer-level analysis report", 24, true);
    if (!rc) rc = lsa_plot_doc_text(d, m->model, 16, false);
    const char *rows[2 * 12];
    char params[48] = "not loaded";
    if (m->n_params > 0) snprintf(params, sizeof params, "%s", lsa_plot_fmt_count(m->n_params, cnt, sizeof cnt));
    char arch[96], corpus[128], when[64];
    snprintf(arch, sizeof arch, "%s, %d layers, d_model %d", m->model_type, m->n_layers, m->d_model);
    snprintf(corpus, sizeof corpus, "%s tokens in %s sequences", lsa_plot_fmt_count(m->n_tokens, cnt, sizeof cnt),
             lsa_plot_fmt_count(m->n_seqs, cnt2, sizeof cnt2));
    snprintf(line, sizeof line, "weights %s, activations %s", m->weight_dtype ? m->weight_dtype : "?",
             m->act_dtype ? m->act_dtype : "?");
    snprintf(when, sizeof when, "%s", m->created ? m->created : "");
    char version[96];
    snprintf(version, sizeof version, "lsa %s (commit %s)", LSA_VERSION, lsa_commit());
    const char *kv[][2] = {{"model", m->model_path}, {"architecture", arch},  {"parameters", params},
                           {"dtype", line},          {"corpus", corpus},      {"capture", m->capture},
                           {"report made", when},    {"software", version}};
    int nr = 0;
    rows[nr++] = "";
    rows[nr++] = "";
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        rows[nr++] = kv[i][0];
        rows[nr++] = kv[i][1] ? kv[i][1] : "";
    }
    if (!rc) rc = lsa_plot_doc_table(d, nr / 2, 2, rows);
    if (!rc) rc = lsa_plot_doc_text(d, "Commands", 12, true);
    if (!rc && m->capture_cmd) rc = lsa_plot_doc_text(d, m->capture_cmd, 8.5, false);
    if (!rc && m->report_cmd) rc = lsa_plot_doc_text(d, m->report_cmd, 8.5, false);
    fprintf(r->md, "# Layer-level analysis report: %s\n\n", m->model);
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) fprintf(r->md, "- **%s**: %s\n", kv[i][0], kv[i][1] ? kv[i][1] : "");
    fprintf(r->md, "\n```\n%s\n%s\n```\n\nThe full report with tables is `report.pdf`; each figure below is also in "
            "`figures/` as PDF.\n\n", m->capture_cmd ? m->capture_cmd : "", m->report_cmd ? m->report_cmd : "");
    if (rc) {
        lsa_report_abort(r);
        return NULL;
    }
    return r;
}

struct lsa_plot_doc *lsa_report_doc(struct lsa_report *r) { return r->doc; }

int lsa_report_section(struct lsa_report *r, const char *title, const char *const *definitions)
{
    int rc = lsa_plot_doc_heading(r->doc, title, 0);
    fprintf(r->md, "## %s\n\n", title);
    for (int i = 0; !rc && definitions && definitions[i]; i++) {
        rc = lsa_plot_doc_text(r->doc, definitions[i], 9.5, false);
        fputs("- ", r->md);
        md_escape_line(r->md, definitions[i]);
        fputc('\n', r->md);
    }
    fputc('\n', r->md);
    return rc;
}

int lsa_report_table(struct lsa_report *r, const char *heading, int rows, int cols, const char *const *cells)
{
    int rc = heading ? lsa_plot_doc_heading(r->doc, heading, 1) : 0;
    if (!rc) rc = lsa_plot_doc_table(r->doc, rows, cols, cells);
    if (heading) fprintf(r->md, "**%s**\n\n", heading);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++) {
            fputs("| ", r->md);
            md_escape_line(r->md, cells[i * cols + c] ? cells[i * cols + c] : "");
            fputc(' ', r->md);
        }
        fputs("|\n", r->md);
        if (i == 0) {
            for (int c = 0; c < cols; c++) fputs("|---", r->md);
            fputs("|\n", r->md);
        }
    }
    fputc('\n', r->md);
    return rc;
}

int lsa_report_skipped(struct lsa_report *r, const char *analysis, const char *reason)
{
    char buf[1200];
    snprintf(buf, sizeof buf, "Not run: %s \xe2\x80\x94 %s", analysis, reason);
    fprintf(r->md, "> %s\n\n", buf);
    return lsa_plot_doc_text(r->doc, buf, 9.5, false);
}

int lsa_report_close(struct lsa_report *r)
{
    int rc = 0;
    if (fclose(r->md) != 0) rc = lsa_err(LSA_EIO, "%s: write failed (disk full?)", r->md_tmp);
    r->md = NULL;
    if (!rc) rc = lsa_plot_doc_close(r->doc);
    else lsa_plot_doc_abort(r->doc);
    r->doc = NULL;
    if (!rc && rename(r->md_tmp, r->md_path) != 0) rc = lsa_err(LSA_EIO, "%s: cannot rename into place", r->md_path);
    lsa_report_abort(r);
    return rc;
}

void lsa_report_abort(struct lsa_report *r)
{
    if (!r) return;
    lsa_plot_doc_abort(r->doc);
    if (r->md) fclose(r->md);
    if (r->md_tmp) unlink(r->md_tmp);
    free(r->md_path), free(r->md_tmp), free(r);
}

/* ------------------------------------------------------------------ the sections */

/* A table builder over fixed-size cells, wide enough for two point names and an arrow
 * ("blocks.10.hook_resid_post → blocks.11.hook_resid_post"); a longer cell is cut. */
#define TABLE_CELL 96
struct table {
    int rows, cols;
    char cell[32][6][TABLE_CELL];
    const char *ptr[32 * 6];
};

static void trow(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trow(struct table *t, const char *fmt, ...)
{
    /* fmt holds the row's cells separated by '|' */
    if (t->rows >= 32) return;
    char buf[6 * TABLE_CELL];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *s = buf;
    for (int c = 0; c < t->cols; c++) {
        char *bar = strchr(s, '|');
        if (bar) *bar = 0;
        size_t len = strlen(s) < sizeof t->cell[0][0] ? strlen(s) : sizeof t->cell[0][0] - 1;
        memcpy(t->cell[t->rows][c], s, len);
        t->cell[t->rows][c][len] = 0;
        s = bar ? bar + 1 : s + strlen(s);
    }
    t->rows++;
}

static int emit(struct lsa_report *r, const char *heading, struct table *t)
{
    for (int i = 0; i < t->rows; i++)
        for (int c = 0; c < t->cols; c++) t->ptr[i * t->cols + c] = t->cell[i][c];
    return lsa_report_table(r, heading, t->rows, t->cols, t->ptr);
}

static int similarity_section(struct lsa_report *r, const struct lsa_similarity_result *s,
                              const struct lsa_plot_opts *po, const char *figdir)
{
    static const char *defs[] = {
        "Cosine: C[i][j] = mean over tokens of cos(x_i, x_j), x the residual stream before the final norm at each "
        "point (embedding, then after each block).",
        "Angular distance: arccos(cos)/\xcf\x80 averaged per token (Gromov et al. 2024).",
        "Linear CKA: ||Y\xe1\xb5\x80X||\xc2\xb2 / (||X\xe1\xb5\x80X|| ||Y\xe1\xb5\x80Y||) on token-centred X, Y "
        "(Kornblith et al. 2019); exact on the first tokens, and the unbiased minibatch estimator (Nguyen et al. "
        "2021) over all.",
        NULL};
    int rc = lsa_report_section(r, "Layer similarity", defs);
    if (!rc && figdir) rc = lsa_similarity_draw(s, po, figdir);
    if (rc) return rc;
    struct table t = {.cols = 3};
    trow(&t, "points|cosine|linear CKA (exact)");
    int n = s->n;
    for (int i = 0; i + 1 < n && t.rows < 9; i++) /* neighbouring points: how much each block changes */
        trow(&t, "%s \xe2\x86\x92 %s|%.3f|%s", s->names[i], s->names[i + 1], s->cosine[i * n + i + 1], "");
    if (s->cka_linear)
        for (int i = 1; i < t.rows; i++)
            snprintf(t.cell[i][2], sizeof t.cell[0][0], "%.3f", s->cka_linear[(i - 1) * n + i]);
    return emit(r, "Neighbouring points", &t);
}

static int redundancy_section(struct lsa_report *r, const struct lsa_redundancy_result *d,
                              const struct lsa_plot_opts *po, const char *figdir)
{
    static const char *defs[] = {
        "Block Influence: BI_l = 1 \xe2\x88\x92 mean over tokens of cos(x_l, x_l+1), the change a block makes to "
        "the residual stream (ShortGPT, Men et al. 2024); low BI = redundant.",
        "Best block of n: the l minimising the angular distance between x_l and x_l+n (Gromov et al. 2024).",
        "Residual norm: mean |x| at each point, and its growth ratio per block.",
        NULL};
    int rc = lsa_report_section(r, "Redundancy", defs);
    if (!rc && figdir) rc = lsa_redundancy_draw(d, po, figdir);
    if (rc) return rc;
    int L = d->n_blocks;
    struct table t = {.cols = 3};
    trow(&t, "rank|block|Block Influence");
    for (int i = 0; i < L && i < 5; i++)
        trow(&t, "%d|%lld|%.4f", i + 1, (long long)d->bi_ranking[i], d->block_influence[d->bi_ranking[i] - d->first]);
    rc = emit(r, "Most redundant blocks (lowest Block Influence)", &t);
    if (rc || L < 2) return rc;
    struct table b = {.cols = 3};
    trow(&b, "block size n|first block|angular distance");
    int ns[4] = {1, 2, 4, L / 4};
    for (int k = 0; k < 4; k++) {
        int n = ns[k];
        if (n < 1 || n > L - 1 || (k == 3 && (n == 1 || n == 2 || n == 4))) continue;
        trow(&b, "%d|%d|%.4f", n, d->best[n - 1].start, d->best[n - 1].distance);
    }
    return emit(r, "Best block to drop", &b);
}

static int lens_section(struct lsa_report *r, const struct lsa_lens_result *l, const struct lsa_plot_opts *po,
                        const char *figdir)
{
    static const char *defs[] = {
        "Logit lens: each residual point decoded through the final norm (its statistics recomputed) and the "
        "unembedding (nostalgebraist 2020; Belrose et al. 2023).",
        "KL to final: KL(p_final \xe2\x80\x96 p_l) in nats; cross-entropy: \xe2\x88\x92log p_l of the true next "
        "token; top-1 agreement: share of tokens whose argmax equals the model's.",
        NULL};
    int rc = lsa_report_section(r, "Logit lens", defs);
    if (!rc && figdir) rc = lsa_lens_draw(l, po, figdir);
    if (rc) return rc;
    struct table t = {.cols = 5};
    trow(&t, "point|KL to final|entropy|cross-entropy|top-1 agreement");
    int P = l->n_points, step = P > 12 ? (P + 11) / 12 : 1;
    for (int i = 0; i < P; i += step)
        trow(&t, "%s|%.3f|%.3f|%.3f|%.3f", l->point_names[i], l->kl_to_final[i], l->entropy[i], l->cross_entropy[i],
             l->top1_agree_final[i]);
    if ((P - 1) % step)
        trow(&t, "%s|%.3f|%.3f|%.3f|%.3f", l->point_names[P - 1], l->kl_to_final[P - 1], l->entropy[P - 1],
             l->cross_entropy[P - 1], l->top1_agree_final[P - 1]);
    return emit(r, "Per point (nats)", &t);
}

static int robustness_section(struct lsa_report *r, const struct lsa_robust_result *b, const struct lsa_plot_opts *po,
                              const char *figdir)
{
    static const char *defs[] = {
        "Each variant re-runs the model on the same windows; NLL is the mean \xe2\x88\x92log p of the true next "
        "token, KL is KL(p_intact \xe2\x80\x96 p_variant), top-1 the share of tokens whose argmax is unchanged "
        "(Lad et al. 2024; Gromov et al. 2024; ShortGPT; Painters, Sun et al. 2024).",
        NULL};
    int rc = lsa_report_section(r, "Robustness to deleting and swapping layers", defs);
    if (!rc && figdir) rc = lsa_robust_draw(b, po, figdir);
    if (rc) return rc;
    int L = b->n_layer, *order = malloc(sizeof(int) * (size_t)L);
    if (!order) return lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; i < L; i++) order[i] = i;
    for (int i = 0; i < L; i++) /* by damage, largest first (L is small: selection sort) */
        for (int j = i + 1; j < L; j++)
            if (b->del[order[j]].nll > b->del[order[i]].nll) {
                int tmp = order[i];
                order[i] = order[j], order[j] = tmp;
            }
    struct table t = {.cols = 4};
    trow(&t, "deleted layer|\xce\x94 NLL|KL|top-1 agreement");
    for (int i = 0; i < L && i < 5; i++)
        trow(&t, "%d|%+.4f|%.4f|%.3f", order[i], b->del[order[i]].nll - b->baseline_nll, b->del[order[i]].kl,
             b->del[order[i]].top1);
    for (int i = L - 3 > 5 ? L - 3 : 5; i < L; i++)
        trow(&t, "%d|%+.4f|%.4f|%.3f", order[i], b->del[order[i]].nll - b->baseline_nll, b->del[order[i]].kl,
             b->del[order[i]].top1);
    free(order);
    char head[160];
    snprintf(head, sizeof head, "Most and least damaging deletions (baseline NLL %.4f, perplexity %.2f)", b->baseline_nll,
             exp(b->baseline_nll));
    rc = emit(r, head, &t);
    if (rc || !b->n_painters) return rc;
    struct table p = {.cols = 4};
    trow(&p, "variant|\xce\x94 NLL|KL|top-1 agreement");
    for (int i = 0; i < b->n_painters; i++)
        trow(&p, "%s|%+.4f|%.4f|%.3f", b->painters[i].name, b->painters[i].m.nll - b->baseline_nll, b->painters[i].m.kl,
             b->painters[i].m.top1);
    return emit(r, "Middle layers rearranged (Transformer Layers as Painters)", &p);
}

int lsa_report_write(const char *dir, const struct lsa_report_meta *m, const struct lsa_report_parts *parts,
                     const struct lsa_plot_opts *po, const char *figdir)
{
    struct lsa_report *r = lsa_report_open(dir, m);
    if (!r) return LSA_EIO;
    struct lsa_plot_opts o = *po;
    o.doc = lsa_report_doc(r);
    int rc = 0;
    for (int i = 0; i < parts->n_skipped && !rc; i++) rc = lsa_report_skipped(r, parts->skipped[i][0], parts->skipped[i][1]);
    if (!rc && parts->sim) rc = similarity_section(r, parts->sim, &o, figdir);
    if (!rc && parts->red) rc = redundancy_section(r, parts->red, &o, figdir);
    if (!rc && parts->lens) rc = lens_section(r, parts->lens, &o, figdir);
    if (!rc && parts->rob) rc = robustness_section(r, parts->rob, &o, figdir);
    if (rc) {
        lsa_report_abort(r);
        return rc;
    }
    return lsa_report_close(r);
}
