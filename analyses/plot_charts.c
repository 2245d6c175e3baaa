/*
 * plot_charts.c — heatmaps, bar charts and line plots built from the primitives in plot.c (no cairo
 * here). Each chart lays itself out inside a rectangle from measured text, thins tick labels that would
 * overlap, and keeps everything inside the rectangle.
 */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CAP 0.73        /* cap height in em (plot.c's text box) */
#define GREY 0x555555   /* axes, ticks */
#define LIGHT 0xE3E3E3  /* grid lines */
#define INK 0x222222    /* text */

/* ------------------------------------------------------------------ ticks and numbers */

struct ticks {
    int n;
    double v[64];
    int decimals;
};

/* About `want` round-number ticks (1, 2, 5 x 10^k) covering [lo, hi] (those inside only). */
static struct ticks nice_ticks(double lo, double hi, int want)
{
    struct ticks t = {0};
    if (!(hi > lo)) {
        t.n = 1;
        t.v[0] = lo;
        t.decimals = 2;
        return t;
    }
    double raw = (hi - lo) / (want > 1 ? want - 1 : 1), mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
    t.decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    for (double x = ceil(lo / step - 1e-9) * step; x <= hi + step * 1e-9 && t.n < 64; x += step)
        t.v[t.n++] = fabs(x) < step * 1e-9 ? 0 : x;
    return t;
}

/* Decades (and 2x, 5x when the range spans fewer than two decades) inside [lo, hi], both > 0. */
static struct ticks log_ticks(double lo, double hi)
{
    struct ticks t = {0};
    int k0 = (int)floor(log10(lo)), k1 = (int)ceil(log10(hi));
    bool fine = k1 - k0 <= 3;
    for (int k = k0; k <= k1 && t.n < 60; k++)
        for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) {
            if (!fine && m > 1) continue;
            double v = m * pow(10, k);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t.v[t.n++] = v;
        }
    t.decimals = k0 < 0 ? -k0 : 0;
    return t;
}

static void fmt_num(char *buf, size_t n, double v, int decimals)
{
    if (fabs(v) >= 1e5 || (v != 0 && fabs(v) < 1e-4)) snprintf(buf, n, "%.0e", v);
    else snprintf(buf, n, "%.*f", decimals, v);
}

static double max_label_w(const struct lsa_plot *p, const char *const *labels, int n, double size)
{
    double w = 0;
    for (int i = 0; i < n; i++)
        if (labels && labels[i]) w = fmax(w, lsa_plot_text_width(p, labels[i], size, false));
    return w;
}

/* The smallest step in 1, 2, 5, 10, 20, ... so that labels `need` apart fit into slots `slot` wide. */
static int label_step(double need, double slot)
{
    static const int steps[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
    for (int i = 0; i < 10; i++)
        if (steps[i] * slot >= need) return steps[i];
    return 1000;
}

/* Same for labels of different widths w[0..n) centred on slots: every pair of neighbours that would be
 * shown must keep `gap` between them. */
static int label_step_w(const double *w, int n, double slot, double gap)
{
    static const int steps[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
    for (int k = 0; k < 10; k++) {
        int s = steps[k];
        bool ok = true;
        for (int i = 0; ok && i + s < n; i += s) ok = (w[i] + w[i + s]) / 2 + gap <= s * slot;
        if (ok) return s;
    }
    return 1000;
}

const char *lsa_plot_fmt_count(long long n, char *buf, size_t cap)
{
    char d[32];
    int len = snprintf(d, sizeof d, "%lld", n < 0 ? -n : n), k = 0;
    char out[48];
    if (n < 0) out[k++] = '-';
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) out[k++] = ',';
        out[k++] = d[i];
    }
    out[k] = 0;
    snprintf(buf, cap, "%s", out);
    return buf;
}

/* ------------------------------------------------------------------ title */

double lsa_plot_title_height(const struct lsa_plot_style *st, bool subtitle)
{
    return st->title * 1.6 + (subtitle ? st->tick * 1.45 : 0);
}

struct lsa_plot_rect lsa_plot_title(struct lsa_plot *p, struct lsa_plot_rect r, const char *title,
                                    const char *subtitle)
{
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    double y = r.y + st->title * 0.45;
    lsa_plot_color_hex(p, INK);
    if (title) lsa_plot_text(p, r.x + r.w / 2, y, title, st->title, true, 0.5, 0, 0);
    y += st->title * 1.15;
    if (subtitle) {
        lsa_plot_color_hex(p, 0x666666);
        lsa_plot_text(p, r.x + r.w / 2, y + st->tick * 0.25, subtitle, st->tick, false, 0.5, 0, 0);
    }
    double used = lsa_plot_title_height(st, subtitle != NULL);
    return (struct lsa_plot_rect){r.x, r.y + used, r.w, r.h - used};
}

/* ------------------------------------------------------------------ heatmap */

struct hm_layout {
    double cell, x0, y0;       /* grid origin (top left) */
    double ytick_w, cbar_x, cbar_w;
    double fixed_w, fixed_h;   /* everything but the grid */
    int xstep, ystep;
    struct ticks ct;           /* colour bar ticks */
};

static void hm_layout(const struct lsa_plot *p, const struct lsa_plot_style *st, struct lsa_plot_rect r,
                      const struct lsa_plot_heatmap *hm, struct hm_layout *L)
{
    memset(L, 0, sizeof *L);
    L->ct = nice_ticks(hm->vmin, hm->vmax, 5);
    double ctw = 0;
    char buf[32];
    for (int i = 0; i < L->ct.n; i++) {
        fmt_num(buf, sizeof buf, L->ct.v[i], L->ct.decimals);
        ctw = fmax(ctw, lsa_plot_text_width(p, buf, st->tick, false));
    }
    L->ytick_w = max_label_w(p, hm->row_labels, hm->rows, st->tick);
    L->cbar_w = st->label * 0.95;
    double ylab = hm->ylabel ? st->label * 1.5 : 0, cblab = hm->cbar_label ? st->label * 1.5 : 0;
    double left = ylab + L->ytick_w + st->tick * 0.45;
    double right = st->tick * 1.1 + L->cbar_w + st->tick * 0.7 + ctw + cblab;
    double top = st->tick * 0.4, bottom = st->tick * (0.45 + CAP) + (hm->xlabel ? st->label * 1.45 : 0) + 1;
    L->fixed_w = left + right;
    L->fixed_h = top + bottom;
    L->cell = fmin((r.w - L->fixed_w) / hm->cols, (r.h - L->fixed_h) / hm->rows);
    if (L->cell < 1) L->cell = 1;
    double used_w = L->fixed_w + L->cell * hm->cols, used_h = L->fixed_h + L->cell * hm->rows;
    L->x0 = r.x + (r.w - used_w) / 2 + left;
    L->y0 = r.y + (r.h - used_h) / 2 + top;
    L->cbar_x = L->x0 + L->cell * hm->cols + st->tick * 1.1;
    double cw[4100];
    int nc = hm->cols < 4100 ? hm->cols : 4100;
    for (int j = 0; j < nc; j++)
        cw[j] = hm->col_labels && hm->col_labels[j] ? lsa_plot_text_width(p, hm->col_labels[j], st->tick, false) : 0;
    L->xstep = label_step_w(cw, nc, L->cell, st->tick * 0.35);
    L->ystep = label_step(st->tick * 1.15, L->cell);
}

double lsa_plot_heatmap_fig_height(const struct lsa_plot_style *st, double w, bool subtitle,
                                   const struct lsa_plot_heatmap *hm)
{
    struct hm_layout L;
    struct lsa_plot_rect r = {0, 0, w, 1e6};
    hm_layout(NULL, st, r, hm, &L);
    double cell = (w - L.fixed_w) / hm->cols;
    return lsa_plot_title_height(st, subtitle) + L.fixed_h + cell * hm->rows + st->tick * 0.4;
}

int lsa_plot_heatmap(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_heatmap *hm)
{
    if (hm->rows < 1 || hm->cols < 1) return lsa_err(LSA_EINVAL, "heatmap: empty matrix");
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    struct hm_layout L;
    hm_layout(p, st, r, hm, &L);
    double c = L.cell, gw = c * hm->cols, gh = c * hm->rows, span = hm->vmax - hm->vmin;
    int dec = hm->decimals > 0 ? hm->decimals : 2;
    char buf[32];
    /* annotations fit when the widest value and a line of text fit a cell */
    double aw = 0;
    for (int i = 0; i < hm->rows * hm->cols; i++) {
        if (!isfinite(hm->v[i])) continue;
        snprintf(buf, sizeof buf, "%.*f", dec, hm->v[i]);
        aw = fmax(aw, lsa_plot_text_width(p, buf, st->annot, false));
    }
    bool annotate = hm->annotate > 0 || (hm->annotate < 0 && aw + 2 <= c && st->annot * 1.4 <= c);
    for (int i = 0; i < hm->rows; i++)
        for (int j = 0; j < hm->cols; j++) {
            double v = hm->v[(size_t)i * hm->cols + j], rgb[3];
            if (!isfinite(v)) continue;
            lsa_plot_cmap(hm->cmap, span > 0 ? (v - hm->vmin) / span : 0.5, rgb);
            lsa_plot_color(p, rgb[0], rgb[1], rgb[2]);
            /* overlap neighbours by a hair so no seams show in PNG */
            lsa_plot_fill_rect(p, L.x0 + j * c, L.y0 + i * c, c + 0.05, c + 0.05);
            if (annotate) {
                double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
                lsa_plot_color_hex(p, lum < 0.45 ? 0xFFFFFF : 0x000000);
                snprintf(buf, sizeof buf, "%.*f", dec, fabs(v) < 0.5 * pow(10, -dec) ? 0.0 : v); /* no "-0.00" */
                lsa_plot_text(p, L.x0 + (j + 0.5) * c, L.y0 + (i + 0.5) * c, buf, st->annot, false, 0.5, 0.5, 0);
            }
        }
    for (int i = 0; hm->mark && i < hm->rows; i++) {
        int j = hm->mark[i];
        if (j < 0 || j >= hm->cols) continue;
        double lw = fmax(st->lw * 1.3, c * 0.08);
        lsa_plot_color_hex(p, 0xD55E00);
        lsa_plot_stroke_rect(p, L.x0 + j * c + lw / 2, L.y0 + i * c + lw / 2, c - lw, c - lw, lw);
    }
    lsa_plot_color_hex(p, GREY);
    lsa_plot_stroke_rect(p, L.x0, L.y0, gw, gh, st->lw * 0.6);
    /* tick labels: every xstep-th column, every ystep-th row */
    lsa_plot_color_hex(p, INK);
    for (int j = 0; j < hm->cols; j += L.xstep)
        if (hm->col_labels && hm->col_labels[j])
            lsa_plot_text(p, L.x0 + (j + 0.5) * c, L.y0 + gh + st->tick * 0.45, hm->col_labels[j], st->tick, false,
                          0.5, 0, 0);
    for (int i = 0; i < hm->rows; i += L.ystep)
        if (hm->row_labels && hm->row_labels[i])
            lsa_plot_text(p, L.x0 - st->tick * 0.45, L.y0 + (i + 0.5) * c, hm->row_labels[i], st->tick, false, 1, 0.5,
                          0);
    if (hm->xlabel)
        lsa_plot_text(p, L.x0 + gw / 2, L.y0 + gh + st->tick * (0.45 + CAP) + st->label * 0.55, hm->xlabel, st->label,
                      false, 0.5, 0, 0);
    if (hm->ylabel)
        lsa_plot_text(p, L.x0 - L.ytick_w - st->tick * 0.45 - st->label * 0.5, L.y0 + gh / 2, hm->ylabel, st->label,
                      false, 0.5, 1, 90);
    /* colour bar */
    lsa_plot_cmap_bar(p, L.cbar_x, L.y0, L.cbar_w, gh, hm->cmap);
    lsa_plot_color_hex(p, GREY);
    lsa_plot_stroke_rect(p, L.cbar_x, L.y0, L.cbar_w, gh, st->lw * 0.6);
    double tx = L.cbar_x + L.cbar_w, tl = st->tick * 0.35, ctw = 0;
    for (int i = 0; i < L.ct.n; i++) {
        double y = L.y0 + gh - (span > 0 ? (L.ct.v[i] - hm->vmin) / span : 0.5) * gh;
        lsa_plot_color_hex(p, GREY);
        lsa_plot_line(p, tx, y, tx + tl, y, st->lw * 0.6);
        fmt_num(buf, sizeof buf, L.ct.v[i], L.ct.decimals);
        lsa_plot_color_hex(p, INK);
        lsa_plot_text(p, tx + tl + st->tick * 0.35, y, buf, st->tick, false, 0, 0.5, 0);
        ctw = fmax(ctw, lsa_plot_text_width(p, buf, st->tick, false));
    }
    if (hm->cbar_label)
        lsa_plot_text(p, tx + tl + st->tick * 0.35 + ctw + st->label * 0.45, L.y0 + gh / 2, hm->cbar_label, st->label,
                      false, 0.5, 0, 90);
    return 0;
}

/* ------------------------------------------------------------------ axes for bars and lines */

struct axes {
    double px0, px1, py0, py1; /* plot area: left, right, top, bottom */
    double xlo, xhi, ylo, yhi; /* data range (log10 for a log y) */
    bool logy;
    bool real_x;               /* x ticks at round values instead of at integers */
    double min_left;           /* at least this much room left of the plot area (aligns stacked panels) */
};

static double ax_x(const struct axes *a, double x) { return a->px0 + (x - a->xlo) / (a->xhi - a->xlo) * (a->px1 - a->px0); }
static double ax_y(const struct axes *a, double y)
{
    if (a->logy) y = log10(y);
    return a->py1 - (y - a->ylo) / (a->yhi - a->ylo) * (a->py1 - a->py0);
}

/* x ticks at integers ix_lo..ix_hi, x = i labelled xlabels[i] (or the integer), thinned so none overlap. */
static void draw_axes(struct lsa_plot *p, struct lsa_plot_rect r, struct axes *a, int ix_lo, int ix_hi,
                      const char *const *xlabels, int n_xlabels, const char *xlabel, const char *ylabel)
{
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    struct ticks yt = a->logy ? log_ticks(pow(10, a->ylo), pow(10, a->yhi)) : nice_ticks(a->ylo, a->yhi, 5);
    char buf[32];
    double ytw = 0;
    for (int i = 0; i < yt.n; i++) {
        fmt_num(buf, sizeof buf, yt.v[i], a->logy ? (yt.v[i] < 1 ? yt.decimals : 0) : yt.decimals);
        ytw = fmax(ytw, lsa_plot_text_width(p, buf, st->tick, false));
    }
    double left = fmax(a->min_left, (ylabel ? st->label * 1.5 : 0) + ytw + st->tick * 0.8);
    double bottom = st->tick * (0.55 + CAP) + (xlabel ? st->label * 1.45 : 0) + 1;
    a->px0 = r.x + left;
    a->px1 = r.x + r.w - st->tick * 0.8;
    a->py0 = r.y + st->tick * 0.3;
    a->py1 = r.y + r.h - bottom;
    /* grid lines and y ticks */
    for (int i = 0; i < yt.n; i++) {
        double y = ax_y(a, a->logy ? yt.v[i] : yt.v[i]);
        lsa_plot_color_hex(p, LIGHT);
        lsa_plot_line(p, a->px0, y, a->px1, y, st->lw * 0.5);
        lsa_plot_color_hex(p, GREY);
        lsa_plot_line(p, a->px0 - st->tick * 0.3, y, a->px0, y, st->lw * 0.6);
        fmt_num(buf, sizeof buf, yt.v[i], a->logy ? (yt.v[i] < 1 ? yt.decimals : 0) : yt.decimals);
        lsa_plot_color_hex(p, INK);
        lsa_plot_text(p, a->px0 - st->tick * 0.5, y, buf, st->tick, false, 1, 0.5, 0);
    }
    if (a->real_x) { /* continuous x (e.g. relative depth): round tick values */
        struct ticks xt = nice_ticks(a->xlo, a->xhi, 6);
        for (int i = 0; i < xt.n; i++) {
            double x = ax_x(a, xt.v[i]);
            lsa_plot_color_hex(p, GREY);
            lsa_plot_line(p, x, a->py1, x, a->py1 + st->tick * 0.3, st->lw * 0.6);
            fmt_num(buf, sizeof buf, xt.v[i], xt.decimals);
            lsa_plot_color_hex(p, INK);
            lsa_plot_text(p, x, a->py1 + st->tick * 0.55, buf, st->tick, false, 0.5, 0, 0);
        }
        ix_hi = ix_lo - 1; /* no integer ticks */
    }
    /* x ticks at integers, thinned */
    double slot = (a->px1 - a->px0) / (a->xhi - a->xlo), xw[4100];
    int nx = ix_hi - ix_lo + 1 < 4100 ? ix_hi - ix_lo + 1 : 4100;
    for (int i = ix_lo; i < ix_lo + nx; i++) {
        const char *s = xlabels && i >= 0 && i < n_xlabels ? xlabels[i] : NULL;
        if (!s) {
            snprintf(buf, sizeof buf, "%d", i);
            s = buf;
        }
        xw[i - ix_lo] = lsa_plot_text_width(p, s, st->tick, false);
    }
    int step = label_step_w(xw, nx, slot, st->tick * 0.5);
    for (int i = ix_lo; i <= ix_hi; i++) {
        if ((i - ix_lo) % step) continue;
        double x = ax_x(a, i);
        lsa_plot_color_hex(p, GREY);
        lsa_plot_line(p, x, a->py1, x, a->py1 + st->tick * 0.3, st->lw * 0.6);
        const char *s = xlabels && i >= 0 && i < n_xlabels ? xlabels[i] : NULL;
        if (!s) {
            snprintf(buf, sizeof buf, "%d", i);
            s = buf;
        }
        lsa_plot_color_hex(p, INK);
        lsa_plot_text(p, x, a->py1 + st->tick * 0.55, s, st->tick, false, 0.5, 0, 0);
    }
    lsa_plot_color_hex(p, GREY);
    lsa_plot_line(p, a->px0, a->py1, a->px1, a->py1, st->lw * 0.7);
    lsa_plot_line(p, a->px0, a->py0, a->px0, a->py1, st->lw * 0.7);
    lsa_plot_color_hex(p, INK);
    if (xlabel)
        lsa_plot_text(p, (a->px0 + a->px1) / 2, a->py1 + st->tick * (0.55 + CAP) + st->label * 0.55, xlabel, st->label,
                      false, 0.5, 0, 0);
    if (ylabel)
        lsa_plot_text(p, r.x + st->label * 0.2, (a->py0 + a->py1) / 2, ylabel, st->label, false, 0.5, 0, 90);
}

/* One row of legend entries centred at the top of r (wrapping onto more rows when needed); returns the
 * height used. kind[i]: 0 = filled box, 1 = line with a dot, 2 = ring. */
static double legend(struct lsa_plot *p, struct lsa_plot_rect r, int n, const char *const *text, const unsigned *color,
                     const int *kind, bool draw)
{
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    double sw = st->tick * 1.8, gap = st->tick * 1.2, rowh = st->tick * 1.5, y = r.y + st->tick * 0.2;
    r.x += st->tick * 0.5; /* keep clear of the figure's edges */
    r.w -= st->tick;
    int i = 0;
    double used = 0;
    while (i < n) {
        int j = i;
        double w = 0;
        while (j < n) {
            double ew = sw + st->tick * 0.4 + lsa_plot_text_width(p, text[j], st->tick, false);
            if (j > i && w + gap + ew > r.w) break;
            w += (j > i ? gap : 0) + ew;
            j++;
        }
        double x = r.x + (r.w - w) / 2, cy = y + rowh / 2;
        for (int k = i; draw && k < j; k++) {
            lsa_plot_color_hex(p, color[k]);
            if (kind[k] == 0) lsa_plot_fill_rect(p, x + sw * 0.2, cy - st->tick * 0.35, sw * 0.6, st->tick * 0.7);
            else if (kind[k] == 1) {
                lsa_plot_line(p, x, cy, x + sw, cy, st->lw * 1.4);
                lsa_plot_marker(p, x + sw / 2, cy, st->lw * 3.2, true, st->lw);
            } else lsa_plot_marker(p, x + sw / 2, cy, st->tick * 0.8, false, st->lw * 1.2);
            lsa_plot_color_hex(p, INK);
            lsa_plot_text(p, x + sw + st->tick * 0.4, cy, text[k], st->tick, false, 0, 0.5, 0);
            x += sw + st->tick * 0.4 + lsa_plot_text_width(p, text[k], st->tick, false) + gap;
        }
        y += rowh;
        used += rowh;
        i = j;
    }
    return used + st->tick * 0.3;
}

/* ------------------------------------------------------------------ bars */

int lsa_plot_bars(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_bars *b)
{
    if (b->n < 1) return lsa_err(LSA_EINVAL, "bar chart: no bars");
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    const unsigned normal = 0x9FB3C8, accent = 0xD55E00;
    if (b->legend_normal && b->legend_highlight) {
        const char *t[2] = {b->legend_normal, b->legend_highlight};
        unsigned c[2] = {normal, accent};
        int k[2] = {0, 0};
        double h = legend(p, r, 2, t, c, k, true);
        r.y += h;
        r.h -= h;
    }
    double vmax = 0, vmin = 0;
    for (int i = 0; i < b->n; i++)
        if (isfinite(b->v[i])) vmax = fmax(vmax, b->v[i]), vmin = fmin(vmin, b->v[i]);
    if (vmax <= vmin) vmax = vmin + 1;
    /* headroom for the text above bars */
    struct axes a = {.xlo = -0.6, .xhi = b->n - 0.4, .ylo = vmin, .yhi = vmax * (b->top_text ? 1.16 : 1.05),
                     .min_left = b->min_left};
    draw_axes(p, r, &a, 0, b->n - 1, b->labels, b->n, b->xlabel, b->ylabel);
    double bw = (ax_x(&a, 1) - ax_x(&a, 0)) * 0.72;
    double tw = max_label_w(p, b->top_text, b->n, st->annot);
    bool text_fits = tw <= (ax_x(&a, 1) - ax_x(&a, 0)) * 1.02;
    for (int i = 0; i < b->n; i++) {
        if (!isfinite(b->v[i])) continue;
        double x = ax_x(&a, i), y0 = ax_y(&a, 0), y1 = ax_y(&a, b->v[i]);
        lsa_plot_color_hex(p, b->highlight && b->highlight[i] ? accent : normal);
        lsa_plot_fill_rect(p, x - bw / 2, fmin(y0, y1), bw, fabs(y1 - y0));
        if (b->top_text && b->top_text[i] && text_fits) {
            lsa_plot_color_hex(p, b->highlight && b->highlight[i] ? accent : 0x555555);
            lsa_plot_text(p, x, fmin(y0, y1) - st->annot * 0.35, b->top_text[i], st->annot, b->highlight && b->highlight[i],
                          0.5, 1, 0);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ lines */

int lsa_plot_lines(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_lines *l)
{
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < l->n_series; s++)
        for (int i = 0; i < l->s[s].n; i++) {
            double x = l->s[s].x[i], y = l->s[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (l->logy && y <= 0)) continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    if (!isfinite(xlo)) return lsa_err(LSA_EINVAL, "line plot: no finite points");
    /* legend above the axes */
    const char *text[24];
    unsigned color[24];
    int kind[24], n_leg = 0;
    for (int s = 0; s < l->n_series && n_leg < 23; s++)
        if (l->s[s].label) text[n_leg] = l->s[s].label, color[n_leg] = l->s[s].color, kind[n_leg++] = 1;
    if (l->mark_label && n_leg < 24) text[n_leg] = l->mark_label, color[n_leg] = 0x333333, kind[n_leg++] = 2;
    if (n_leg) {
        double h = legend(p, r, n_leg, text, color, kind, true);
        r.y += h;
        r.h -= h;
    }
    struct axes a = {.logy = l->logy, .real_x = !l->integer_x && xhi - xlo < 20, .min_left = l->min_left};
    double pad = (xhi - xlo) * 0.03 + (l->integer_x ? 0.3 : 0);
    a.xlo = xlo - pad;
    a.xhi = xhi + pad;
    if (l->logy) {
        a.ylo = log10(ylo);
        a.yhi = log10(yhi);
        double m = fmax((a.yhi - a.ylo) * 0.06, 0.02);
        a.ylo -= m, a.yhi += m;
    } else {
        double m = fmax((yhi - ylo) * 0.08, fabs(yhi) * 1e-3 + 1e-12);
        a.ylo = ylo - m, a.yhi = yhi + m;
        if (ylo >= 0 && a.ylo < 0) a.ylo = 0;
    }
    draw_axes(p, r, &a, (int)ceil(xlo), (int)floor(xhi), l->integer_x ? l->xtick_labels : NULL,
              l->integer_x ? l->n_xtick_labels : 0, l->xlabel, l->ylabel);
    for (int s = 0; s < l->n_series; s++) {
        const struct lsa_plot_series *se = &l->s[s];
        double xs[4100], ys[4100];
        int n = se->n < 4100 ? se->n : 4100;
        for (int i = 0; i < n; i++) {
            bool ok = isfinite(se->y[i]) && (!l->logy || se->y[i] > 0);
            xs[i] = ax_x(&a, se->x[i]);
            ys[i] = ok ? ax_y(&a, se->y[i]) : NAN;
        }
        lsa_plot_color_hex(p, se->color);
        lsa_plot_polyline(p, n, xs, ys, st->lw * 1.3, se->dashed ? st->lw * 3 : 0);
        for (int i = 0; i < n && !se->dashed; i++)
            if (isfinite(ys[i])) lsa_plot_marker(p, xs[i], ys[i], st->lw * 3.2, true, st->lw);
        if (se->mark >= 0 && se->mark < n && isfinite(ys[se->mark])) {
            lsa_plot_color_hex(p, 0x333333);
            lsa_plot_marker(p, xs[se->mark], ys[se->mark], st->tick * 1.0, false, st->lw * 1.1);
            lsa_plot_color_hex(p, se->color);
            lsa_plot_marker(p, xs[se->mark], ys[se->mark], st->lw * 3.2, true, st->lw);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ grouped bars */

int lsa_plot_grouped_bars(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_gbars *g)
{
    if (g->n < 1 || g->n_series < 1 || g->n_series > 8) return lsa_err(LSA_EINVAL, "grouped bars: %d groups of %d", g->n, g->n_series);
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    unsigned color[8];
    int kind[8];
    for (int s = 0; s < g->n_series; s++) color[s] = g->colors ? g->colors[s] : lsa_plot_palette(s), kind[s] = 0;
    double h = legend(p, r, g->n_series, g->series, color, kind, true);
    r.y += h;
    r.h -= h;
    double vmax = 0, vmin = 0;
    for (int i = 0; i < g->n * g->n_series; i++)
        if (isfinite(g->v[i])) vmax = fmax(vmax, g->v[i]), vmin = fmin(vmin, g->v[i]);
    if (vmax <= vmin) vmax = vmin + 1;
    double m = (vmax - vmin) * 0.05;
    struct axes a = {.xlo = -0.6, .xhi = g->n - 0.4, .ylo = vmin < 0 ? vmin - m : 0, .yhi = vmax + m};
    draw_axes(p, r, &a, 0, g->n - 1, g->labels, g->labels ? g->n : 0, g->xlabel, g->ylabel);
    double slot = ax_x(&a, 1) - ax_x(&a, 0), bw = slot * 0.8 / g->n_series;
    for (int s = 0; s < g->n_series; s++) {
        lsa_plot_color_hex(p, color[s]);
        for (int i = 0; i < g->n; i++) {
            double v = g->v[(size_t)s * g->n + i];
            if (!isfinite(v)) continue;
            double x = ax_x(&a, i) - slot * 0.4 + s * bw, y0 = ax_y(&a, 0), y1 = ax_y(&a, v);
            lsa_plot_fill_rect(p, x + bw * 0.06, fmin(y0, y1), bw * 0.88, fmax(fabs(y1 - y0), st->lw * 0.3));
        }
    }
    if (vmin < 0) {
        lsa_plot_color_hex(p, GREY);
        lsa_plot_line(p, a.px0, ax_y(&a, 0), a.px1, ax_y(&a, 0), st->lw * 0.6);
    }
    return 0;
}

/* ------------------------------------------------------------------ text grid */

struct tg_layout {
    double fs;                   /* cell and column-label font size */
    double cell_w, cell_h, x0, y0;
    double left, right, top, bottom;
    double ytick_w, cbar_w, ctw;
    struct ticks ct;
};

static void tg_layout(const struct lsa_plot *p, const struct lsa_plot_style *st, const struct lsa_plot_textgrid *g,
                      struct tg_layout *L)
{
    memset(L, 0, sizeof *L);
    L->fs = st->annot * 1.05;
    double tw = 0;
    for (int i = 0; g->text && i < g->rows * g->cols; i++)
        if (g->text[i]) tw = fmax(tw, lsa_plot_text_width(p, g->text[i], L->fs, g->bold && g->bold[i]));
    tw = fmax(tw, max_label_w(p, g->bottom_labels, g->cols, L->fs));
    tw = fmax(tw, max_label_w(p, g->top_labels, g->cols, L->fs));
    L->cell_w = fmax(tw + L->fs * 0.7, L->fs * 2.6);
    L->cell_h = L->fs * 2.1;
    L->ct = nice_ticks(g->vmin, g->vmax, 5);
    char buf[32];
    for (int i = 0; i < L->ct.n; i++) {
        fmt_num(buf, sizeof buf, L->ct.v[i], L->ct.decimals);
        L->ctw = fmax(L->ctw, lsa_plot_text_width(p, buf, st->tick, false));
    }
    L->ytick_w = max_label_w(p, g->row_labels, g->rows, st->tick);
    L->cbar_w = st->label * 0.95;
    L->left = (g->ylabel ? st->label * 1.5 : 0) + L->ytick_w + st->tick * 0.45 + st->tick * 0.15;
    L->right = st->tick * 1.1 + L->cbar_w + st->tick * 0.7 + L->ctw + (g->cbar_label ? st->label * 1.5 : 0);
    L->top = (g->top_labels ? L->fs * 1.7 : st->tick * 0.4) + (g->top_xlabel ? st->label * 1.4 : 0);
    L->bottom = (g->bottom_labels ? L->fs * 1.7 : st->tick * 0.4) + (g->xlabel ? st->label * 1.45 : 0) + 1;
}

void lsa_plot_textgrid_fig_size(const struct lsa_plot_style *st, double min_w, bool subtitle,
                                const struct lsa_plot_textgrid *g, double *w, double *h)
{
    struct tg_layout L;
    tg_layout(NULL, st, g, &L);
    double nat = L.left + L.right + L.cell_w * g->cols + st->tick * 0.3;
    *w = fmax(min_w, ceil(nat));
    *h = ceil(lsa_plot_title_height(st, subtitle) + L.top + L.bottom + L.cell_h * g->rows + st->tick * 0.5);
}

int lsa_plot_textgrid(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_textgrid *g)
{
    if (g->rows < 1 || g->cols < 1) return lsa_err(LSA_EINVAL, "text grid: empty");
    const struct lsa_plot_style *st = lsa_plot_get_style(p);
    struct tg_layout L;
    tg_layout(p, st, g, &L);
    double avail_w = r.w - L.left - L.right - st->tick * 0.3, avail_h = r.h - L.top - L.bottom;
    double cw = fmax(L.cell_w, fmin(avail_w / g->cols, L.cell_w * 1.8));
    if (cw * g->cols > avail_w) cw = avail_w / g->cols; /* narrower than natural: text may touch */
    double chh = fmin(avail_h / g->rows, L.cell_h * 1.5);
    double gw = cw * g->cols, gh = chh * g->rows, span = g->vmax - g->vmin;
    double x0 = r.x + (r.w - (L.left + gw + L.right)) / 2 + L.left, y0 = r.y + (r.h - (L.top + gh + L.bottom)) / 2 + L.top;
    for (int i = 0; i < g->rows; i++)
        for (int j = 0; j < g->cols; j++) {
            size_t k = (size_t)i * g->cols + j;
            double v = g->v[k], rgb[3];
            if (!isfinite(v)) continue;
            lsa_plot_cmap(g->cmap, span > 0 ? (v - g->vmin) / span : 0.5, rgb);
            lsa_plot_color(p, rgb[0], rgb[1], rgb[2]);
            lsa_plot_fill_rect(p, x0 + j * cw, y0 + i * chh, cw + 0.05, chh + 0.05);
            double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
            bool b = g->bold && g->bold[k];
            lsa_plot_color_hex(p, lum < 0.45 ? 0xFFFFFF : 0x000000);
            if (g->text && g->text[k])
                lsa_plot_text(p, x0 + (j + 0.5) * cw, y0 + (i + 0.5) * chh, g->text[k], L.fs, b, 0.5, 0.5, 0);
        }
    lsa_plot_color_hex(p, GREY);
    lsa_plot_stroke_rect(p, x0, y0, gw, gh, st->lw * 0.6);
    for (int j = 1; j < g->cols; j++) lsa_plot_line(p, x0 + j * cw, y0 + gh, x0 + j * cw, y0 + gh + L.fs * 0.35, st->lw * 0.5);
    lsa_plot_color_hex(p, INK);
    for (int j = 0; j < g->cols; j++) {
        if (g->bottom_labels && g->bottom_labels[j])
            lsa_plot_text(p, x0 + (j + 0.5) * cw, y0 + gh + L.fs * 0.5, g->bottom_labels[j], L.fs, false, 0.5, 0, 0);
        if (g->top_labels && g->top_labels[j]) {
            lsa_plot_color_hex(p, 0x666666);
            lsa_plot_text(p, x0 + (j + 0.5) * cw, y0 - L.fs * 0.5, g->top_labels[j], L.fs, false, 0.5, 1, 0);
            lsa_plot_color_hex(p, INK);
        }
    }
    int ystep = label_step(st->tick * 1.15, chh);
    for (int i = 0; i < g->rows; i += ystep)
        if (g->row_labels && g->row_labels[i])
            lsa_plot_text(p, x0 - st->tick * 0.45, y0 + (i + 0.5) * chh, g->row_labels[i], st->tick, false, 1, 0.5, 0);
    if (g->xlabel)
        lsa_plot_text(p, x0 + gw / 2, y0 + gh + L.fs * 1.7 + st->label * 0.3, g->xlabel, st->label, false, 0.5, 0, 0);
    if (g->top_xlabel)
        lsa_plot_text(p, x0 + gw / 2, y0 - (g->top_labels ? L.fs * 1.7 : 0) - st->label * 0.35, g->top_xlabel, st->label,
                      false, 0.5, 1, 0);
    if (g->ylabel)
        lsa_plot_text(p, x0 - L.ytick_w - st->tick * 0.45 - st->label * 0.5, y0 + gh / 2, g->ylabel, st->label, false,
                      0.5, 1, 90);
    /* colour bar */
    double cx = x0 + gw + st->tick * 1.1;
    lsa_plot_cmap_bar(p, cx, y0, L.cbar_w, gh, g->cmap);
    lsa_plot_color_hex(p, GREY);
    lsa_plot_stroke_rect(p, cx, y0, L.cbar_w, gh, st->lw * 0.6);
    double tx = cx + L.cbar_w, tl = st->tick * 0.35;
    char buf[32];
    for (int i = 0; i < L.ct.n; i++) {
        double y = y0 + gh - (span > 0 ? (L.ct.v[i] - g->vmin) / span : 0.5) * gh;
        lsa_plot_color_hex(p, GREY);
        lsa_plot_line(p, tx, y, tx + tl, y, st->lw * 0.6);
        fmt_num(buf, sizeof buf, L.ct.v[i], L.ct.decimals);
        lsa_plot_color_hex(p, INK);
        lsa_plot_text(p, tx + tl + st->tick * 0.35, y, buf, st->tick, false, 0, 0.5, 0);
    }
    if (g->cbar_label)
        lsa_plot_text(p, tx + tl + st->tick * 0.35 + L.ctw + st->label * 0.45, y0 + gh / 2, g->cbar_label, st->label,
                      false, 0.5, 0, 90);
    return 0;
}
