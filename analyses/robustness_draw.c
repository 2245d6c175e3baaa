/*
 * robustness_draw.c — the robustness sweep's figures (robustness.h): delta NLL per deleted layer and per
 * swapped pair (two panels), attention vs MLP removal, the removal curves, the full swap matrix and the
 * painters variants. Draws through plot.h only; no cairo, no printing.
 */
#include "robustness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fig {
    const struct lsa_robust_result *r;
    char subtitle[320];
    char (*lab)[16];      /* (L) "0".."L-1" */
    const char **labels;  /* (L) */
    char (*plab)[24];     /* (L - 1) "i\u2013i+1" */
    const char **plabels; /* (L - 1) */
    double *buf;          /* scratch (4 L) */
};

/* A panel heading at the top left of r; returns what is left below it. */
static struct lsa_plot_rect panel(struct lsa_plot *p, struct lsa_plot_rect r, const char *letter, const char *text)
{
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    lsa_plot_color_hex(p, 0x222222);
    double x = r.x + st->tick * 0.3, y = r.y + st->label * 0.25;
    lsa_plot_text(p, x, y, letter, st->label, true, 0, 0, 0);
    lsa_plot_text(p, x + lsa_plot_text_width(p, letter, st->label, true) + st->label * 0.5, y, text, st->label, false,
                  0, 0, 0);
    double used = st->label * 1.35;
    return (struct lsa_plot_rect){r.x, r.y + used, r.w, r.h - used};
}

/* Delta NLL bars with the values above them when they fit; the largest in the accent colour. */
static int delta_bars(struct lsa_plot *p, struct lsa_plot_rect r, int n, const struct lsa_robust_metrics *m,
                      double base, const char *const *labels, const char *xlabel)
{
    double v[n > 0 ? n : 1];
    bool hl[n > 0 ? n : 1];
    char txt[n > 0 ? n : 1][16];
    const char *top[n > 0 ? n : 1];
    int worst = 0;
    for (int i = 0; i < n; i++) {
        v[i] = m[i].nll - base;
        if (v[i] > v[worst]) worst = i;
    }
    for (int i = 0; i < n; i++) {
        hl[i] = i == worst;
        snprintf(txt[i], sizeof txt[i], "%+.2f", v[i]);
        if (!strcmp(txt[i], "-0.00") || !strcmp(txt[i], "+0.00")) snprintf(txt[i], sizeof txt[i], "0");
        top[i] = txt[i];
    }
    /* room for y ticks like "0.25" whatever the panel's range, so that stacked panels line up */
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    double left = st->label * 1.5 + lsa_plot_text_width(p, "0.25", st->tick, false) + st->tick * 0.8;
    struct lsa_plot_bars b = {.n = n, .v = v, .labels = labels, .highlight = hl, .top_text = top, .xlabel = xlabel,
                              .ylabel = "\xce\x94 NLL (nats)", .min_left = left};
    return lsa_plot_bars(p, r, &b);
}

static int draw_delete_swap(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const struct lsa_robust_result *r = f->r;
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    int L = r->n_layer;
    struct lsa_plot_rect rr =
        lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Deleting and swapping layers", f->subtitle);
    double gap = st->tick * 0.8, ph = (rr.h - gap) / 2;
    struct lsa_plot_rect a = {rr.x, rr.y, rr.w, ph}, b = {rr.x, rr.y + ph + gap, rr.w, ph};
    char head[96];
    snprintf(head, sizeof head, "delete one layer (baseline %.3f nats)", r->baseline_nll);
    int rc = delta_bars(p, panel(p, a, "a", head), L, r->del, r->baseline_nll, f->labels, "deleted layer");
    if (rc || L < 2) return rc;
    return delta_bars(p, panel(p, b, "b", "swap adjacent layers"), L - 1, r->swap, r->baseline_nll, f->plabels,
                      "swapped layers");
}

static int draw_sublayers(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const struct lsa_robust_result *r = f->r;
    int L = r->n_layer;
    double *v = f->buf;
    for (int i = 0; i < L; i++) {
        v[i] = r->drop_attn[i].nll - r->baseline_nll;
        v[L + i] = r->drop_mlp[i].nll - r->baseline_nll;
    }
    static const char *series[2] = {"attention removed", "MLP removed"};
    unsigned colors[2] = {lsa_plot_palette(0), lsa_plot_palette(1)};
    struct lsa_plot_gbars g = {.n = L, .n_series = 2, .v = v, .labels = f->labels, .series = series, .colors = colors,
                               .xlabel = "layer", .ylabel = "\xce\x94 NLL (nats)"};
    struct lsa_plot_rect rr =
        lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Removing one sub-block", f->subtitle);
    return lsa_plot_grouped_bars(p, rr, &g);
}

static int draw_removal(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const struct lsa_robust_result *r = f->r;
    int L = r->n_layer;
    double *x = f->buf, *base = f->buf + L, lo = INFINITY, hi = 0;
    for (int k = 0; k < L; k++) {
        x[k] = k;
        base[k] = r->baseline_nll;
        const double *c[3] = {r->curve_bi, r->curve_block, r->curve_random};
        for (int s = 0; s < (r->random_seeds > 0 ? 3 : 2); s++)
            if (isfinite(c[s][k]) && c[s][k] > 0) lo = fmin(lo, c[s][k]), hi = fmax(hi, c[s][k]);
    }
    char rnd_label[64];
    snprintf(rnd_label, sizeof rnd_label, "random order (%d seed%s)", r->random_seeds, r->random_seeds == 1 ? "" : "s");
    struct lsa_plot_series s[4] = {
        {.n = L, .x = x, .y = r->curve_bi, .label = "Block Influence order", .mark = -1, .color = lsa_plot_palette(0)},
        {.n = L,
         .x = x,
         .y = r->curve_block,
         .label = "best contiguous block",
         .mark = -1,
         .color = lsa_plot_palette(1)},
        {.n = L, .x = x, .y = base, .label = "intact", .mark = -1, .color = 0x999999, .dashed = true},
        {.n = L, .x = x, .y = r->curve_random, .label = rnd_label, .mark = -1, .color = lsa_plot_palette(2)},
    };
    struct lsa_plot_lines pl = {.n_series = r->random_seeds > 0 ? 4 : 3, .s = s, .xlabel = "layers removed k", .ylabel = "NLL (nats)",
                                .logy = hi > 6 * lo, .integer_x = true};
    struct lsa_plot_rect rr = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Removing k layers", f->subtitle);
    return lsa_plot_lines(p, rr, &pl);
}

struct swap_fig {
    const struct fig *f;
    struct lsa_plot_heatmap hm;
};

static int draw_swap_all(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct swap_fig *sf = ctx;
    struct lsa_plot_rect rr =
        lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Swapping two layers", sf->f->subtitle);
    return lsa_plot_heatmap(p, rr, &sf->hm);
}

static int save_swap_all(const struct fig *f, const struct lsa_plot_opts *po, const char *dir)
{
    const struct lsa_robust_result *r = f->r;
    int L = r->n_layer;
    double *v = malloc(sizeof(double) * (size_t)L * L), lo = 0, hi = 0;
    if (!v) return lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; i < L * L; i++) {
        v[i] = r->swap_all[i].nll - r->baseline_nll;
        lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    }
    struct swap_fig sf = {.f = f,
                          .hm = {.rows = L, .cols = L, .v = v, .row_labels = f->labels, .col_labels = f->labels,
                                 .xlabel = "layer j", .ylabel = "layer i", .cbar_label = "\xce\x94 NLL (nats)",
                                 .vmin = lo, .vmax = hi > lo ? hi : lo + 1, .cmap = LSA_CMAP_VIRIDIS, .annotate = -1,
                                 .decimals = 1}};
    struct lsa_plot_style st = lsa_plot_style_for(po->size);
    double hh = st.slide_h > 0 ? st.slide_h : lsa_plot_heatmap_fig_height(&st, st.width, true, &sf.hm);
    int rc = lsa_plot_save_formats(dir, "robustness_swap_all", st.width, hh, po, draw_swap_all, &sf);
    free(v);
    return rc;
}

static int draw_painters(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const struct lsa_robust_result *r = f->r;
    int n = r->n_painters < 8 ? r->n_painters : 8;
    struct lsa_robust_metrics m[8];
    const char *labels[8];
    static const struct {
        const char *name, *label;
    } short_names[] = {{"skip middle", "skip"}, {"reverse middle", "reverse"}, {"repeat middle layer", "repeat one"},
                       {"parallel middle", "parallel"}};
    for (int i = 0; i < n; i++) {
        m[i] = r->painters[i].m;
        labels[i] = r->painters[i].name;
        for (size_t k = 0; k < sizeof short_names / sizeof short_names[0]; k++)
            if (!strcmp(r->painters[i].name, short_names[k].name)) labels[i] = short_names[k].label;
    }
    char sub[400];
    snprintf(sub, sizeof sub, "%s \xc2\xb7 middle layers %d\xe2\x80\x93%d", f->subtitle, r->n_layer / 4,
             3 * r->n_layer / 4 - 1);
    struct lsa_plot_rect rr =
        lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Rearranging the middle layers", sub);
    return delta_bars(p, rr, n, m, r->baseline_nll, labels, "middle layers");
}

int lsa_robust_draw(const struct lsa_robust_result *r, const struct lsa_plot_opts *po, const char *dir)
{
    int L = r->n_layer, rc = 0;
    struct fig f = {.r = r};
    f.lab = calloc((size_t)L + 1, sizeof *f.lab);
    f.labels = calloc((size_t)L + 1, sizeof *f.labels);
    f.plab = calloc((size_t)L + 1, sizeof *f.plab);
    f.plabels = calloc((size_t)L + 1, sizeof *f.plabels);
    f.buf = calloc(4 * (size_t)L + 4, sizeof *f.buf);
    if (!f.lab || !f.labels || !f.plab || !f.plabels || !f.buf) {
        rc = lsa_err(LSA_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < L; i++) {
        snprintf(f.lab[i], sizeof f.lab[i], "%d", i);
        f.labels[i] = f.lab[i];
        snprintf(f.plab[i], sizeof f.plab[i], "%d\xe2\x86\x94%d", i, i + 1);
        f.plabels[i] = f.plab[i];
    }
    char cnt[32];
    snprintf(f.subtitle, sizeof f.subtitle, "%s \xc2\xb7 %s tokens in %d windows", r->model,
             lsa_plot_fmt_count(r->n_tokens, cnt, sizeof cnt), r->n_windows);
    struct lsa_plot_style st = lsa_plot_style_for(po->size);
    double w = st.width, h = st.slide_h > 0 ? st.slide_h : w * 0.68;
    rc = lsa_plot_save_formats(dir, "robustness_delete_swap", w, st.slide_h > 0 ? st.slide_h : w * 1.05, po,
                               draw_delete_swap, &f);
    if (!rc && r->drop_attn && r->drop_mlp)
        rc = lsa_plot_save_formats(dir, "robustness_sublayers", w, h, po, draw_sublayers, &f);
    if (!rc && r->curve_bi && L > 1) rc = lsa_plot_save_formats(dir, "robustness_removal", w, h, po, draw_removal, &f);
    if (!rc && r->swap_all) rc = save_swap_all(&f, po, dir);
    if (!rc && r->n_painters > 0)
        rc = lsa_plot_save_formats(dir, "robustness_painters", w, h * 0.9, po, draw_painters, &f);
out:
    free(f.lab), free(f.labels), free(f.plab), free(f.plabels), free(f.buf);
    return rc;
}
