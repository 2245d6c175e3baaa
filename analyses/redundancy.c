/*
 * redundancy.c — Block Influence, the best block to drop and residual norm growth (definitions in
 * redundancy.h), derived from a similarity result; saving and figures. No I/O of its own besides
 * results and figures, and no printing.
 */
#include "redundancy.h"

#include "lsa/h5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lsa_redundancy_opts lsa_redundancy_opts_default(void) { return (struct lsa_redundancy_opts){0}; }

void lsa_redundancy_free(struct lsa_redundancy_result *r)
{
    if (!r) return;
    free(r->model);
    free(r->block_influence);
    free(r->bi_ranking);
    free(r->distance);
    free(r->best);
    free(r->resid_norm);
    free(r->norm_growth);
    free(r);
}

int lsa_redundancy_run(const struct lsa_similarity_result *sim, const struct lsa_redundancy_opts *o,
                       struct lsa_redundancy_result **out)
{
    *out = NULL;
    /* the residual points before the final norm: every point but a trailing final-normed one */
    int P = sim->n;
    while (P > 0 && sim->point_index[P - 1] < 0) P--;
    if (P < 2) return lsa_err(LSA_EINVAL, "redundancy needs at least two residual points, the capture has %d", P);
    for (int i = 1; i < P; i++)
        if (sim->point_index[i] != sim->point_index[i - 1] + 1)
            return lsa_err(LSA_EINVAL, "redundancy needs consecutive residual points, but the capture stores %s "
                           "then %s (captured with --layers?); similarity alone works on any points", sim->names[i - 1], sim->names[i]);
    int L = P - 1, n_sim = sim->n;
    struct lsa_redundancy_result *r = calloc(1, sizeof *r);
    if (!r) return lsa_err(LSA_ENOMEM, "out of memory");
    r->n_blocks = L;
    r->first = (int)sim->point_index[0];
    r->last_token = o->last_token;
    r->n_tokens = sim->n_tokens;
    r->n_last = sim->n_last;
    r->model = strdup(sim->model);
    r->block_influence = calloc((size_t)L, sizeof(double));
    r->bi_ranking = calloc((size_t)L, sizeof(int64_t));
    r->distance = calloc((size_t)(L > 1 ? L - 1 : 1) * L, sizeof(double));
    r->best = calloc((size_t)(L > 1 ? L - 1 : 1), sizeof *r->best);
    r->resid_norm = calloc((size_t)P, sizeof(double));
    r->norm_growth = calloc((size_t)L, sizeof(double));
    if (!r->model || !r->block_influence || !r->bi_ranking || !r->distance || !r->best || !r->resid_norm ||
        !r->norm_growth) {
        lsa_redundancy_free(r);
        return lsa_err(LSA_ENOMEM, "out of memory");
    }
    for (int l = 0; l < L; l++) r->block_influence[l] = 1.0 - sim->cosine[(size_t)l * n_sim + l + 1];
    /* rank by BI ascending, ties by position: insertion sort keeps it stable (L is small) */
    for (int l = 0; l < L; l++) {
        int k = l;
        while (k > 0 && r->block_influence[r->bi_ranking[k - 1]] > r->block_influence[l]) {
            r->bi_ranking[k] = r->bi_ranking[k - 1];
            k--;
        }
        r->bi_ranking[k] = l;
    }
    for (int l = 0; l < L; l++) r->bi_ranking[l] += r->first;
    const double *ang = o->last_token ? sim->angular_last : sim->angular;
    for (int n = 1; n < L; n++) {
        struct lsa_redundancy_best *b = &r->best[n - 1];
        b->n = n;
        b->start = -1;
        b->distance = NAN;
        for (int l = 0; l < L; l++) {
            double d = l + n <= L ? ang[(size_t)l * n_sim + l + n] : NAN;
            r->distance[(size_t)(n - 1) * L + l] = d;
            if (isfinite(d) && (b->start < 0 || d < b->distance)) b->start = l, b->distance = d;
        }
        b->start += r->first;
    }
    for (int i = 0; i < P; i++) r->resid_norm[i] = sim->resid_norm[i];
    for (int l = 0; l < L; l++)
        r->norm_growth[l] = r->resid_norm[l] > 0 ? r->resid_norm[l + 1] / r->resid_norm[l] : NAN;
    r->n_marked = o->n_marked > 0 ? (o->n_marked < L ? o->n_marked : L) : (L / 4 > 0 ? L / 4 : 1);
    *out = r;
    return 0;
}

int lsa_redundancy_save(const struct lsa_redundancy_result *r, struct lsa_results *res)
{
    const char *g = "redundancy";
    int L = r->n_blocks;
    int rc = lsa_results_attr_str(res, "/redundancy", "convention",
                                  "block l maps residual point l (its input; 0 = embed) to point l + 1 (its output)");
    if (!rc) rc = lsa_results_attr_int(res, "/redundancy", "first_block", r->first);
    if (!rc) rc = lsa_results_attr_int(res, "/redundancy", "n_tokens", r->n_tokens);
    if (!rc) rc = lsa_results_attr_int(res, "/redundancy", "n_sequences", r->n_last);
    if (!rc) rc = lsa_results_vector(res, g, "block_influence", L, r->block_influence, "block_influence");
    if (!rc) rc = lsa_results_attr_str(res, "/redundancy/block_influence", "definition",
                                       "BI_l = 1 - mean over tokens of cos(x_l, x_l+1) (ShortGPT, Men et al. 2024)");
    if (!rc) rc = lsa_results_ivector(res, g, "bi_ranking", L, r->bi_ranking, "bi_ranking");
    if (!rc) rc = lsa_results_attr_str(res, "/redundancy/bi_ranking", "definition",
                                       "block indices by ascending BI: most redundant first");
    if (!rc && L > 1) {
        rc = lsa_results_matrix(res, g, "distance", L - 1, L, r->distance, NULL);
        if (!rc) rc = lsa_results_attr_str(res, "/redundancy/distance", "definition",
                                           "[n-1][l] = angular distance d(x_l, x_l+n) (Gromov et al. 2024); NaN "
                                           "where l + n > L");
        if (!rc) rc = lsa_results_attr_str(res, "/redundancy/distance", "positions", r->last_token ? "last" : "all");
        double *t = malloc((size_t)(L - 1) * 3 * sizeof *t);
        if (!t && !rc) rc = lsa_err(LSA_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < L - 1; i++) {
            t[i * 3] = r->best[i].n;
            t[i * 3 + 1] = r->best[i].start;
            t[i * 3 + 2] = r->best[i].distance;
        }
        static const char *cols[3] = {"n", "start", "distance"};
        if (!rc) rc = lsa_results_table(res, g, "best_block", L - 1, 3, cols, t, "best_block");
        free(t);
        if (!rc) rc = lsa_results_attr_str(res, "/redundancy/best_block", "definition",
                                           "for n blocks: start = argmin_l d(x_l, x_l+n), the first of the n "
                                           "consecutive blocks to drop");
    } else if (!rc) {
        rc = lsa_results_json_num(res, "best_block", NAN);
    }
    if (!rc) rc = lsa_results_json_str(res, "best_block_positions", r->last_token ? "last" : "all");
    if (!rc) rc = lsa_results_vector(res, g, "resid_norm", L + 1, r->resid_norm, "resid_norm");
    if (!rc) rc = lsa_results_attr_str(res, "/redundancy/resid_norm", "definition",
                                       "mean over tokens of |x_l|, l = 0 (embed) .. L, before the final norm");
    if (!rc) rc = lsa_results_vector(res, g, "norm_growth", L, r->norm_growth, "norm_growth");
    if (!rc) rc = lsa_results_attr_str(res, "/redundancy/norm_growth", "definition", "resid_norm[l+1] / resid_norm[l]");
    return rc;
}

void lsa_redundancy_options(const struct lsa_redundancy_opts *o, const struct lsa_similarity_opts *so, char *buf,
                            size_t cap)
{
    snprintf(buf, cap, "last_token=%d n_marked=%d block_tokens=%lld", o->last_token, o->n_marked,
             (long long)so->block_tokens);
}

int lsa_redundancy_load(struct lsa_h5 *h, const char *model_path, const struct lsa_redundancy_opts *o,
                        struct lsa_redundancy_result **out)
{
    *out = NULL;
    struct lsa_redundancy_result *r = calloc(1, sizeof *r);
    if (!r) return lsa_err(LSA_ENOMEM, "out of memory");
    size_t L = 0;
    int64_t first = 0;
    double *t = NULL;
    int rc = lsa_h5_read_f64(h, "/redundancy/block_influence", &r->block_influence, &L);
    if (!rc && (L < 1 || L > 1 << 20)) rc = lsa_err(LSA_EFORMAT, "%s: /redundancy/block_influence is empty", lsa_h5_path(h));
    r->n_blocks = (int)L;
    r->last_token = o->last_token;
    if (!rc && !(r->model = lsa_path_base(model_path))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    if (!rc) rc = lsa_results_get_int(h, "/redundancy", "first_block", &first);
    r->first = (int)first;
    if (!rc) rc = lsa_results_get_int(h, "/redundancy", "n_tokens", &r->n_tokens);
    if (!rc) rc = lsa_results_get_int(h, "/redundancy", "n_sequences", &r->n_last);
    if (!rc) rc = lsa_results_get_i64(h, "/redundancy/bi_ranking", L, &r->bi_ranking);
    if (!rc) rc = lsa_results_get_f64(h, "/redundancy/resid_norm", L + 1, &r->resid_norm);
    if (!rc) rc = lsa_results_get_f64(h, "/redundancy/norm_growth", L, &r->norm_growth);
    if (!rc && L > 1) {
        rc = lsa_results_get_f64(h, "/redundancy/distance", (L - 1) * L, &r->distance);
        if (!rc) rc = lsa_results_get_f64(h, "/redundancy/best_block", (L - 1) * 3, &t);
        if (!rc && !(r->best = calloc(L - 1, sizeof *r->best))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i + 1 < L; i++)
            r->best[i] = (struct lsa_redundancy_best){(int)t[3 * i], (int)t[3 * i + 1], t[3 * i + 2]};
    } else if (!rc && (!(r->distance = calloc(1, sizeof(double))) || !(r->best = calloc(1, sizeof *r->best)))) {
        rc = lsa_err(LSA_ENOMEM, "out of memory");
    }
    free(t);
    int Li = (int)L;
    r->n_marked = o->n_marked > 0 ? (o->n_marked < Li ? o->n_marked : Li) : (Li / 4 > 0 ? Li / 4 : 1);
    if (rc) {
        lsa_redundancy_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ------------------------------------------------------------------ figures */

struct fig {
    const struct lsa_redundancy_result *r;
    char subtitle[256], subtitle_last[256];
    char (*lab)[16];         /* (L + 2) labels */
    const char **labels;     /* (L + 2): [0] the first point ("emb"), [1 + l] block l */
    const char **nlabels;    /* (L + 2): [n] = "n" */
};

static int draw_bi(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const struct lsa_redundancy_result *r = f->r;
    int L = r->n_blocks;
    bool hl[L > 0 ? L : 1];
    char rank[L > 0 ? L : 1][12];
    const char *top[L > 0 ? L : 1];
    for (int k = 0; k < L; k++) {
        int l = (int)r->bi_ranking[k] - r->first;
        hl[l] = k < r->n_marked;
        snprintf(rank[l], sizeof rank[l], "%d", k + 1);
        top[l] = rank[l];
    }
    char leg[64];
    snprintf(leg, sizeof leg, "%d lowest BI (most redundant)", r->n_marked);
    struct lsa_plot_bars b = {.n = L, .v = r->block_influence, .labels = f->labels + 1, .highlight = hl, .top_text = top,
                              .xlabel = "block", .ylabel = "Block Influence (1 \xe2\x88\x92 cos)",
                              .legend_normal = "BI (number: rank)", .legend_highlight = leg};
    struct lsa_plot_rect rr = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Block Influence", f->subtitle);
    return lsa_plot_bars(p, rr, &b);
}

static int draw_best(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const char *sub = f->r->last_token ? f->subtitle_last : f->subtitle;
    const struct lsa_redundancy_result *r = f->r;
    int L = r->n_blocks;
    /* about five block sizes, spread geometrically from 1 to L - 1 */
    int ns[8], k = 0;
    for (int i = 0; i < 5 && L > 1; i++) {
        int n = (int)lround(pow(L - 1, i / 4.0));
        if (n < 1) n = 1;
        if (k == 0 || n > ns[k - 1]) ns[k++] = n;
    }
    struct lsa_plot_series s[8];
    char names[8][24];
    double xs[8][L > 0 ? L : 1];
    for (int i = 0; i < k; i++) {
        int n = ns[i];
        for (int l = 0; l + n <= L; l++) xs[i][l] = l + r->first;
        double t = k > 1 ? 0.85 * i / (k - 1) : 0, rgb[3];
        lsa_plot_cmap(LSA_CMAP_VIRIDIS, t, rgb);
        snprintf(names[i], sizeof names[i], "n = %d", n);
        s[i] = (struct lsa_plot_series){.n = L - n + 1, .x = xs[i], .y = r->distance + (size_t)(n - 1) * L,
                                        .label = names[i], .mark = r->best[n - 1].start - r->first,
                                        .color = (unsigned)(rgb[0] * 255 + 0.5) << 16 |
                                                 (unsigned)(rgb[1] * 255 + 0.5) << 8 | (unsigned)(rgb[2] * 255 + 0.5)};
    }
    struct lsa_plot_lines pl = {.n_series = k, .s = s, .xlabel = "first dropped block l",
                                .ylabel = "angular distance d(l, l + n)",
                                .integer_x = true, .mark_label = "minimum"};
    struct lsa_plot_rect rr =
        lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h},
                       r->last_token ? "Best block to drop (last token)" : "Best block to drop (all tokens)", sub);
    return lsa_plot_lines(p, rr, &pl);
}

static int draw_table(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const struct lsa_redundancy_result *r = f->r;
    int L = r->n_blocks;
    double hi = 0;
    for (int i = 0; i < (L - 1) * L; i++)
        if (isfinite(r->distance[i])) hi = fmax(hi, r->distance[i]);
    char sub[300];
    snprintf(sub, sizeof sub, "%s \xc2\xb7 outlined: best start l for each n", r->model);
    int mark[L > 1 ? L - 1 : 1];
    for (int n = 1; n < L; n++) mark[n - 1] = r->best[n - 1].start - r->first;
    struct lsa_plot_heatmap hm = {.rows = L - 1, .cols = L, .v = r->distance, .row_labels = f->nlabels + 1,
                                  .col_labels = f->labels + 1, .xlabel = "first dropped block l",
                                  .ylabel = "blocks dropped n", .cbar_label = "angular distance d(l, l + n)",
                                  .vmin = 0, .vmax = fmax(0.1, ceil(hi * 10) / 10), .annotate = -1, .mark = mark};
    struct lsa_plot_rect rr = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h},
                                             r->last_token ? "Distance across n blocks (last token)"
                                                           : "Distance across n blocks (all tokens)",
                                             sub);
    return lsa_plot_heatmap(p, rr, &hm);
}

static int draw_norm(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const struct lsa_redundancy_result *r = f->r;
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    int L = r->n_blocks;
    double x[L + 1], one[L > 0 ? L : 1], lo = INFINITY, hi = 0;
    for (int i = 0; i <= L; i++) {
        x[i] = i;
        if (r->resid_norm[i] > 0) lo = fmin(lo, r->resid_norm[i]), hi = fmax(hi, r->resid_norm[i]);
    }
    for (int i = 0; i < L; i++) one[i] = 1;
    struct lsa_plot_rect rr = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Residual stream norm", f->subtitle);
    struct lsa_plot_rect top = {rr.x, rr.y, rr.w, rr.h * 0.55}, bot = {rr.x, rr.y + rr.h * 0.55 + st->tick * 0.5,
                                                                          rr.w, rr.h * 0.45 - st->tick * 0.5};
    /* point labels: "emb", then after block i */
    struct lsa_plot_series s1 = {.n = L + 1, .x = x, .y = r->resid_norm, .mark = -1, .color = lsa_plot_palette(0)};
    struct lsa_plot_lines l1 = {.n_series = 1, .s = &s1, .xlabel = "residual stream after block",
                                .ylabel = "mean |x|", .logy = hi > 8 * lo, .integer_x = true,
                                .xtick_labels = f->labels, .n_xtick_labels = L + 1};
    int rc = lsa_plot_lines(p, top, &l1);
    if (rc) return rc;
    double xb[L > 0 ? L : 1];
    for (int i = 0; i < L; i++) xb[i] = i + r->first;
    struct lsa_plot_series s2[2] = {
        {.n = L, .x = xb, .y = r->norm_growth, .mark = -1, .color = lsa_plot_palette(1), .label = "|x_out| / |x_in|"},
        {.n = L, .x = xb, .y = one, .mark = -1, .color = 0x999999, .dashed = true},
    };
    struct lsa_plot_lines l2 = {.n_series = 2, .s = s2, .xlabel = "block", .ylabel = "growth", .integer_x = true};
    return lsa_plot_lines(p, bot, &l2);
}

int lsa_redundancy_draw(const struct lsa_redundancy_result *r, const struct lsa_plot_opts *po, const char *dir)
{
    int L = r->n_blocks, rc;
    struct fig f = {.r = r};
    f.lab = calloc((size_t)L + 2, sizeof *f.lab);
    f.labels = calloc((size_t)L + 2, sizeof *f.labels);
    f.nlabels = calloc((size_t)L + 2, sizeof *f.nlabels);
    char(*nlab)[16] = calloc((size_t)L + 2, sizeof *nlab);
    if (!f.lab || !f.labels || !f.nlabels || !nlab) {
        free(f.lab), free(f.labels), free(f.nlabels), free(nlab);
        return lsa_err(LSA_ENOMEM, "out of memory");
    }
    /* labels[0] = "emb" (or the first point), labels[1 + l] = "l" for block l */
    for (int i = 0; i <= L + 1; i++) {
        if (i == 0 && r->first == 0) snprintf(f.lab[i], sizeof f.lab[i], "emb");
        else snprintf(f.lab[i], sizeof f.lab[i], "%d", r->first + i - 1);
        f.labels[i] = f.lab[i];
        snprintf(nlab[i], sizeof nlab[i], "%d", i);
        f.nlabels[i] = nlab[i];
    }
    char cnt[32];
    snprintf(f.subtitle, sizeof f.subtitle, "%s \xc2\xb7 %s tokens", r->model, lsa_plot_fmt_count(r->n_tokens, cnt, sizeof cnt));
    snprintf(f.subtitle_last, sizeof f.subtitle_last, "%s \xc2\xb7 last tokens of %s sequences", r->model,
             lsa_plot_fmt_count(r->n_last, cnt, sizeof cnt));
    struct lsa_plot_style st = lsa_plot_style_for(po->size);
    double w = st.width, h = st.slide_h > 0 ? st.slide_h : w * 0.68;
    rc = lsa_plot_save_formats(dir, "block_influence", w, h, po, draw_bi, &f);
    if (!rc && L > 1) rc = lsa_plot_save_formats(dir, "best_block", w, h, po, draw_best, &f);
    if (!rc && L > 1) {
        struct lsa_plot_heatmap hm = {.rows = L - 1, .cols = L, .row_labels = f.nlabels + 1, .col_labels = f.labels + 1,
                                      .xlabel = "x", .ylabel = "y", .cbar_label = "c", .vmin = 0, .vmax = 1};
        double hh = st.slide_h > 0 ? st.slide_h : lsa_plot_heatmap_fig_height(&st, w, true, &hm);
        rc = lsa_plot_save_formats(dir, "block_distance", w, hh, po, draw_table, &f);
    }
    if (!rc) rc = lsa_plot_save_formats(dir, "resid_norm", w, st.slide_h > 0 ? st.slide_h : w * 0.95, po, draw_norm, &f);
    free(f.lab), free(f.labels), free(f.nlabels), free(nlab);
    return rc;
}
