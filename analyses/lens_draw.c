/*
 * lens_draw.c — the logit lens's figures (logit_lens.h): the token grid of one sequence and the
 * per-point curves. Draws through plot.h only; no cairo, no printing.
 */
#include "logit_lens.h"
#include "similarity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRID_CHARS 9 /* token texts in the grid are cut to this many characters */

struct fig {
    const struct lsa_lens_result *r;
    char subtitle[320];
    char (*lab)[24];     /* (P) point labels */
    const char **labels; /* (P) */
    double *x;           /* (P) 0..P-1 */
};

/* s cut to n characters (UTF-8) with "…", into buf. */
static const char *cut(const char *s, int n, char *buf, size_t cap)
{
    size_t k = 0;
    int chars = 0;
    while (s[k] && chars < n) {
        size_t len = 1;
        while ((s[k + len] & 0xc0) == 0x80) len++;
        k += len;
        chars++;
    }
    if (!s[k] || k + 4 > cap) {
        snprintf(buf, cap, "%.*s", (int)k, s);
        return buf;
    }
    /* n characters and more: keep n - 1 and the ellipsis */
    size_t keep = 0;
    for (int c = 0; c < n - 1; c++) {
        size_t len = 1;
        while ((s[keep + len] & 0xc0) == 0x80) len++;
        keep += len;
    }
    snprintf(buf, cap, "%.*s\xe2\x80\xa6", (int)keep, s);
    return buf;
}

struct grid_fig {
    struct lsa_plot_textgrid g;
    char title[96], subtitle[320], subtitle2[160];
};

static int draw_grid(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct grid_fig *gf = ctx;
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    struct lsa_plot_rect r = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, gf->title, gf->subtitle);
    lsa_plot_color_hex(p, 0x666666); /* a second subtitle line: the key */
    lsa_plot_text(p, w / 2, r.y + st->tick * 0.1, gf->subtitle2, st->tick, false, 0.5, 0, 0);
    r.y += st->tick * 1.45, r.h -= st->tick * 1.45;
    return lsa_plot_textgrid(p, r, &gf->g);
}

static int save_grid(const struct lsa_lens_result *r, const struct fig *f, const struct lsa_plot_opts *po,
                     const char *dir)
{
    int P = r->n_points, C = r->grid_cols, rc = 0;
    if (C < 1) return 0;
    size_t n = (size_t)P * C;
    double *v = malloc(sizeof(double) * n);
    bool *bold = malloc(sizeof(bool) * n);
    char (*txt)[48] = malloc(sizeof *txt * (n + 2 * (size_t)C));
    const char **text = malloc(sizeof(char *) * (n + 2 * (size_t)C)), **rows = malloc(sizeof(char *) * (size_t)P);
    struct grid_fig *gf = calloc(1, sizeof *gf);
    if (!v || !bold || !txt || !text || !rows || !gf) {
        rc = lsa_err(LSA_ENOMEM, "out of memory");
        goto out;
    }
    /* rows top to bottom: the last point first, the embedding at the bottom next to the inputs */
    for (int i = 0; i < P; i++) {
        int l = P - 1 - i;
        rows[i] = f->labels[l];
        for (int c = 0; c < C; c++) {
            size_t src = (size_t)l * C + c, dst = (size_t)i * C + c;
            v[dst] = r->grid_prob[src];
            bold[dst] = r->grid_next[c] >= 0 && r->grid_top[src] == r->grid_next[c];
            text[dst] = cut(r->grid_top_text[src], GRID_CHARS, txt[dst], sizeof txt[dst]);
        }
    }
    for (int c = 0; c < C; c++) {
        text[n + c] = cut(r->grid_input_text[c], GRID_CHARS, txt[n + c], sizeof txt[0]);
        text[n + C + c] = cut(r->grid_next_text[c], GRID_CHARS, txt[n + C + c], sizeof txt[0]);
    }
    gf->g = (struct lsa_plot_textgrid){.rows = P, .cols = C, .v = v, .text = text, .bold = bold, .row_labels = rows,
                                       .bottom_labels = text + n, .top_labels = text + n + C,
                                       .xlabel = "input token", .top_xlabel = "true next token",
                                       .ylabel = "residual stream after block", .cbar_label = "p(top-1 token)",
                                       .vmin = 0, .vmax = 1, .cmap = LSA_CMAP_VIRIDIS};
    snprintf(gf->title, sizeof gf->title, "Logit lens: top-1 token per layer");
    snprintf(gf->subtitle, sizeof gf->subtitle, "%s \xc2\xb7 sequence %d, positions %d\xe2\x80\x93%d", r->model,
             r->grid_seq, r->grid_from, r->grid_from + C - 1);
    snprintf(gf->subtitle2, sizeof gf->subtitle2,
             "bold: top-1 = true next token \xc2\xb7 \xe2\x80\x9c\xc2\xb7\xe2\x80\x9d = space");
    struct lsa_plot_style st = lsa_plot_style_for(po->size);
    double w, h;
    lsa_plot_textgrid_fig_size(&st, st.width, true, &gf->g, &w, &h);
    /* the subtitles must fit too */
    h += st.tick * 1.45;
    w = fmax(w, ceil(lsa_plot_text_width(NULL, gf->subtitle, st.tick, false) + st.tick * 2));
    w = fmax(w, ceil(lsa_plot_text_width(NULL, gf->subtitle2, st.tick, false) + st.tick * 2));
    if (st.slide_h > 0) h = fmax(h, st.slide_h);
    rc = lsa_plot_save_formats(dir, "logit_lens_grid", w, h, po, draw_grid, gf);
out:
    free(v), free(bold), free(txt), free(text), free(rows), free(gf);
    return rc;
}

static int draw_curves(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    const struct lsa_lens_result *r = f->r;
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    int P = r->n_points;
    struct lsa_plot_rect rr = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Logit lens by layer", f->subtitle);
    double gap = st->tick * 0.6, top_h = (rr.h - gap) * 0.56;
    struct lsa_plot_rect top = {rr.x, rr.y, rr.w, top_h}, bot = {rr.x, rr.y + top_h + gap, rr.w, rr.h - top_h - gap};
    struct lsa_plot_series s1[3] = {
        {.n = P, .x = f->x, .y = r->kl_to_final, .label = "KL(p_final \xe2\x80\x96 p_l)", .mark = -1,
         .color = lsa_plot_palette(0)},
        {.n = P, .x = f->x, .y = r->cross_entropy, .label = "cross-entropy", .mark = -1, .color = lsa_plot_palette(1)},
        {.n = P, .x = f->x, .y = r->entropy, .label = "entropy", .mark = -1, .color = lsa_plot_palette(2)},
    };
    /* the same room left of both panels, so that their x axes line up */
    double left = st->label * 1.5 + lsa_plot_text_width(p, "10.0", st->tick, false) + st->tick * 0.8;
    struct lsa_plot_lines l1 = {.n_series = 3, .s = s1, .ylabel = "nats", .integer_x = true,
                                .xtick_labels = f->labels, .n_xtick_labels = P, .min_left = left};
    int rc = lsa_plot_lines(p, top, &l1);
    if (rc) return rc;
    struct lsa_plot_series s2[2] = {
        {.n = P, .x = f->x, .y = r->top1_agree_final, .label = "top-1 = final top-1", .mark = -1,
         .color = lsa_plot_palette(3)},
        {.n = P, .x = f->x, .y = r->true_prob, .label = "p(true next token)", .mark = -1, .color = lsa_plot_palette(4)},
    };
    struct lsa_plot_lines l2 = {.n_series = 2, .s = s2, .xlabel = "residual stream after block", .ylabel = "fraction",
                                .integer_x = true, .xtick_labels = f->labels, .n_xtick_labels = P, .min_left = left};
    return lsa_plot_lines(p, bot, &l2);
}

int lsa_lens_draw(const struct lsa_lens_result *r, const struct lsa_plot_opts *po, const char *dir)
{
    int P = r->n_points, rc;
    struct fig f = {.r = r};
    f.lab = calloc((size_t)P, sizeof *f.lab);
    f.labels = calloc((size_t)P, sizeof *f.labels);
    f.x = calloc((size_t)P, sizeof *f.x);
    if (!f.lab || !f.labels || !f.x) {
        free(f.lab), free(f.labels), free(f.x);
        return lsa_err(LSA_ENOMEM, "out of memory");
    }
    for (int l = 0; l < P; l++) {
        f.labels[l] = lsa_similarity_point_label(r->point_names[l], f.lab[l], sizeof f.lab[l]);
        f.x[l] = l;
    }
    char cnt[32];
    snprintf(f.subtitle, sizeof f.subtitle, "%s \xc2\xb7 %s tokens", r->model,
             lsa_plot_fmt_count(r->n_tokens, cnt, sizeof cnt));
    rc = save_grid(r, &f, po, dir);
    struct lsa_plot_style st = lsa_plot_style_for(po->size);
    if (!rc)
        rc = lsa_plot_save_formats(dir, "logit_lens_curves", st.width, st.slide_h > 0 ? st.slide_h : st.width * 0.95,
                                   po, draw_curves, &f);
    free(f.lab), free(f.labels), free(f.x);
    return rc;
}
