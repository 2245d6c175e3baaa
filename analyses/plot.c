/*
 * plot.c — the cairo door: surfaces and files (PDF, PNG, SVG), size presets, text, colour maps and the
 * drawing primitives declared in plot.h. The only file in the project that includes cairo.h. Charts
 * (heatmap, bars, lines) live in plot_charts.c and draw through these primitives only.
 */
#include "plot.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FONT "DejaVu Sans"
#define CAP_HEIGHT 0.73 /* DejaVu Sans cap height, in em */

struct lsa_plot {
    cairo_t *cr;
    struct lsa_plot_style st;
};

struct lsa_plot_opts lsa_plot_opts_default(void)
{
    return (struct lsa_plot_opts){.size = LSA_PLOT_SINGLE, .dpi = 200, .formats = LSA_PLOT_PDF | LSA_PLOT_PNG};
}

int lsa_plot_parse_size(const char *s, enum lsa_plot_size *out)
{
    if (!strcmp(s, "single")) *out = LSA_PLOT_SINGLE;
    else if (!strcmp(s, "double")) *out = LSA_PLOT_DOUBLE;
    else if (!strcmp(s, "slide")) *out = LSA_PLOT_SLIDE;
    else return lsa_err(LSA_EINVAL, "--size %s: use single, double or slide", s);
    return 0;
}

int lsa_plot_parse_formats(const char *s, unsigned *out)
{
    unsigned m = 0;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 3 && !strncmp(p, "pdf", 3)) m |= LSA_PLOT_PDF;
        else if (n == 3 && !strncmp(p, "png", 3)) m |= LSA_PLOT_PNG;
        else if (n == 3 && !strncmp(p, "svg", 3)) m |= LSA_PLOT_SVG;
        else return lsa_err(LSA_EINVAL, "--format %s: use a comma-separated list of pdf, png, svg", s);
        p += n;
        if (*p == ',') p++;
    }
    if (!m) return lsa_err(LSA_EINVAL, "--format %s: no format given", s);
    *out = m;
    return 0;
}

struct lsa_plot_style lsa_plot_style_for(enum lsa_plot_size size)
{
    switch (size) {
    case LSA_PLOT_DOUBLE: return (struct lsa_plot_style){504, 0, 8, 9, 10.5, 6.5, 1.0};
    case LSA_PLOT_SLIDE: return (struct lsa_plot_style){720, 405, 13, 15, 19, 10, 1.8};
    default: return (struct lsa_plot_style){252, 0, 6.5, 7.5, 8.5, 5.2, 0.8};
    }
}

const struct lsa_plot_style *lsa_plot_get_style(const struct lsa_plot *p) { return &p->st; }

/* ------------------------------------------------------------------ text */

/* cairo keeps the fonts it resolved (and their fontconfig patterns) in static caches; release them at
 * exit so that leak checkers see a clean process. */
static void release_fonts(void) { cairo_debug_reset_static_data(); }

static void set_font(cairo_t *cr, double size, bool bold)
{
    static bool hooked;
    if (!hooked) {
        hooked = true;
        atexit(release_fonts);
    }
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* Unhinted metrics: text advances are the same at every resolution, so PNG and PDF lay out alike. */
static void set_font_options(cairo_t *cr)
{
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
}

double lsa_plot_text_width(const struct lsa_plot *p, const char *s, double size, bool bold)
{
    cairo_t *cr = p ? p->cr : NULL;
    cairo_surface_t *sf = NULL;
    if (!cr) { /* measure on a scratch surface */
        sf = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
        cr = cairo_create(sf);
        set_font_options(cr);
    }
    cairo_save(cr);
    set_font(cr, size, bold);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_restore(cr);
    if (sf) {
        cairo_destroy(cr);
        cairo_surface_destroy(sf);
    }
    return e.x_advance;
}

void lsa_plot_text(struct lsa_plot *p, double x, double y, const char *s, double size, bool bold, double ax, double ay,
                   double angle)
{
    cairo_t *cr = p->cr;
    cairo_save(cr);
    set_font(cr, size, bold);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_translate(cr, x, y);
    if (angle != 0) cairo_rotate(cr, -angle * M_PI / 180.0);
    cairo_move_to(cr, -ax * e.x_advance, (1.0 - ay) * CAP_HEIGHT * size);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

/* ------------------------------------------------------------------ colour */

void lsa_plot_color(struct lsa_plot *p, double r, double g, double b) { cairo_set_source_rgb(p->cr, r, g, b); }

void lsa_plot_color_hex(struct lsa_plot *p, unsigned c)
{
    cairo_set_source_rgb(p->cr, ((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0);
}

/* viridis (van der Walt & Smith, CC0) sampled at entries 0, 16, ..., 240, 255 of its 256-entry table */
static const double viridis[17][3] = {
    {0.267004, 0.004874, 0.329415}, {0.282327, 0.094955, 0.417331}, {0.278826, 0.175490, 0.483397},
    {0.258965, 0.251537, 0.524736}, {0.229739, 0.322361, 0.545706}, {0.199430, 0.387607, 0.554642},
    {0.172719, 0.448791, 0.557885}, {0.149039, 0.508051, 0.557250}, {0.127568, 0.566949, 0.550556},
    {0.120638, 0.625828, 0.533488}, {0.157851, 0.683765, 0.501686}, {0.246070, 0.738910, 0.452024},
    {0.369214, 0.788888, 0.382914}, {0.515992, 0.831158, 0.294279}, {0.678489, 0.863742, 0.189503},
    {0.845561, 0.887322, 0.099702}, {0.993248, 0.906157, 0.143936},
};
static const double viridis_at[17] = {0,         16 / 255.,  32 / 255.,  48 / 255.,  64 / 255.,  80 / 255.,
                                      96 / 255., 112 / 255., 128 / 255., 144 / 255., 160 / 255., 176 / 255.,
                                      192 / 255., 208 / 255., 224 / 255., 240 / 255., 1};
/* ColorBrewer RdBu (11 classes), blue for low, red for high */
static const unsigned rdbu[11] = {0x053061, 0x2166ac, 0x4393c3, 0x92c5de, 0xd1e5f0, 0xf7f7f7,
                                  0xfddbc7, 0xf4a582, 0xd6604d, 0xb2182b, 0x67001f};

void lsa_plot_cmap(enum lsa_plot_cmap m, double t, double rgb[3])
{
    if (!(t >= 0)) t = 0; /* NaN too */
    if (t > 1) t = 1;
    if (m == LSA_CMAP_DIVERGING) {
        double u = t * 10;
        int i = u >= 10 ? 9 : (int)u;
        double f = u - i;
        for (int k = 0; k < 3; k++) {
            double a = ((rdbu[i] >> (16 - 8 * k)) & 255) / 255.0, b = ((rdbu[i + 1] >> (16 - 8 * k)) & 255) / 255.0;
            rgb[k] = a + f * (b - a);
        }
        return;
    }
    int i = 0;
    while (i < 15 && t > viridis_at[i + 1]) i++;
    double f = (t - viridis_at[i]) / (viridis_at[i + 1] - viridis_at[i]);
    for (int k = 0; k < 3; k++) rgb[k] = viridis[i][k] + f * (viridis[i + 1][k] - viridis[i][k]);
}

unsigned lsa_plot_palette(int i)
{
    static const unsigned okabe_ito[7] = {0x0072B2, 0xD55E00, 0x009E73, 0xCC79A7, 0xE69F00, 0x56B4E9, 0x000000};
    return okabe_ito[((i % 7) + 7) % 7];
}

/* ------------------------------------------------------------------ shapes */

void lsa_plot_fill_rect(struct lsa_plot *p, double x, double y, double w, double h)
{
    cairo_rectangle(p->cr, x, y, w, h);
    cairo_fill(p->cr);
}

void lsa_plot_stroke_rect(struct lsa_plot *p, double x, double y, double w, double h, double lw)
{
    cairo_set_line_width(p->cr, lw);
    cairo_rectangle(p->cr, x, y, w, h);
    cairo_stroke(p->cr);
}

void lsa_plot_line(struct lsa_plot *p, double x0, double y0, double x1, double y1, double lw)
{
    cairo_set_line_width(p->cr, lw);
    cairo_move_to(p->cr, x0, y0);
    cairo_line_to(p->cr, x1, y1);
    cairo_stroke(p->cr);
}

void lsa_plot_polyline(struct lsa_plot *p, int n, const double *x, const double *y, double lw, double dash)
{
    cairo_t *cr = p->cr;
    cairo_save(cr);
    cairo_set_line_width(cr, lw);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    if (dash > 0) {
        double d[2] = {dash, dash * 0.7};
        cairo_set_dash(cr, d, 2, 0);
    }
    bool pen = false;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            pen = false;
            continue;
        }
        if (pen) cairo_line_to(cr, x[i], y[i]);
        else cairo_move_to(cr, x[i], y[i]);
        pen = true;
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

void lsa_plot_marker(struct lsa_plot *p, double x, double y, double d, bool filled, double lw)
{
    cairo_t *cr = p->cr;
    cairo_new_sub_path(cr);
    cairo_arc(cr, x, y, d / 2, 0, 2 * M_PI);
    if (filled) {
        cairo_fill(cr);
        return;
    }
    cairo_pattern_t *src = cairo_get_source(cr);
    cairo_pattern_reference(src);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill_preserve(cr);
    cairo_set_source(cr, src);
    cairo_pattern_destroy(src);
    cairo_set_line_width(cr, lw);
    cairo_stroke(cr);
}

void lsa_plot_cmap_bar(struct lsa_plot *p, double x, double y, double w, double h, enum lsa_plot_cmap m)
{
    /* a vertical gradient, lowest value at the bottom; stops dense enough to follow the map */
    cairo_pattern_t *g = cairo_pattern_create_linear(0, y + h, 0, y);
    for (int i = 0; i <= 64; i++) {
        double rgb[3];
        lsa_plot_cmap(m, i / 64.0, rgb);
        cairo_pattern_add_color_stop_rgb(g, i / 64.0, rgb[0], rgb[1], rgb[2]);
    }
    cairo_save(p->cr);
    cairo_set_source(p->cr, g);
    cairo_rectangle(p->cr, x, y, w, h);
    cairo_fill(p->cr);
    cairo_restore(p->cr);
    cairo_pattern_destroy(g);
}

/* ------------------------------------------------------------------ files */

struct lsa_plot_doc;
static const char *doc_caption(const struct lsa_plot_doc *d, const char *stem);

static int surface_error(cairo_surface_t *s, const char *path)
{
    cairo_status_t st = cairo_surface_status(s);
    if (st == CAIRO_STATUS_SUCCESS) return 0;
    return lsa_err(st == CAIRO_STATUS_NO_MEMORY ? LSA_ENOMEM : LSA_EIO, "%s: cannot write figure: %s", path,
                   cairo_status_to_string(st));
}

int lsa_plot_save(const char *path, double w, double h, const struct lsa_plot_opts *o, lsa_plot_fn fn,
                  const void *ctx)
{
    const char *ext = strrchr(path, '.');
    enum { PDF, PNG, SVG } kind;
    if (ext && !strcmp(ext, ".pdf")) kind = PDF;
    else if (ext && !strcmp(ext, ".png")) kind = PNG;
    else if (ext && !strcmp(ext, ".svg")) kind = SVG;
    else return lsa_err(LSA_EINVAL, "%s: figure name must end in .pdf, .png or .svg", path);
    if (!(w > 0 && h > 0 && w < 1e5 && h < 1e5)) return lsa_err(LSA_EINVAL, "%s: bad figure size %gx%g", path, w, h);
    if (kind == PNG && !(o->dpi >= 10 && o->dpi <= 2400))
        return lsa_err(LSA_EINVAL, "--dpi %g: use 10..2400", o->dpi);
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return lsa_err(LSA_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.partial-%d", path, (int)getpid());

    double scale = kind == PNG ? o->dpi / 72.0 : 1.0;
    cairo_surface_t *sf;
    if (kind == PDF) sf = cairo_pdf_surface_create(tmp, w, h);
    else if (kind == SVG) sf = cairo_svg_surface_create(tmp, w, h);
    else sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)ceil(w * scale), (int)ceil(h * scale));
    int rc = surface_error(sf, path);
    if (!rc && kind == PDF) {
        cairo_pdf_surface_set_metadata(sf, CAIRO_PDF_METADATA_CREATOR, "lsa " LSA_VERSION);
    }
    cairo_t *cr = cairo_create(sf);
    if (!rc) {
        struct lsa_plot p = {cr, lsa_plot_style_for(o->size)};
        cairo_scale(cr, scale, scale);
        set_font_options(cr);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rc = fn(&p, w, h, ctx);
        if (!rc && cairo_status(cr) != CAIRO_STATUS_SUCCESS)
            rc = lsa_err(LSA_EIO, "%s: drawing failed: %s", path, cairo_status_to_string(cairo_status(cr)));
    }
    cairo_destroy(cr);
    if (!rc && kind == PNG && cairo_surface_write_to_png(sf, tmp) != CAIRO_STATUS_SUCCESS)
        rc = lsa_err(LSA_EIO, "%s: cannot write PNG (folder missing or disk full?)", path);
    cairo_surface_finish(sf);
    if (!rc) rc = surface_error(sf, path);
    cairo_surface_destroy(sf);
    if (!rc && rename(tmp, path) != 0) rc = lsa_err(LSA_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

int lsa_plot_save_formats(const char *dir, const char *stem, double w, double h, const struct lsa_plot_opts *o,
                          lsa_plot_fn fn, const void *ctx)
{
    static const char *ext[3] = {"pdf", "png", "svg"};
    if (o->doc) {
        int rc = lsa_plot_doc_figure(o->doc, w, h, o->size, fn, ctx, doc_caption(o->doc, stem));
        if (rc) return rc;
    }
    for (int i = 0; i < 3; i++) {
        if (!(o->formats & (1u << i))) continue;
        size_t n = strlen(dir) + strlen(stem) + 8;
        char *path = malloc(n);
        if (!path) return lsa_err(LSA_ENOMEM, "out of memory");
        snprintf(path, n, "%s/%s.%s", dir, stem, ext[i]);
        int rc = lsa_plot_save(path, w, h, o, fn, ctx);
        free(path);
        if (rc) return rc;
    }
    return 0;
}

int lsa_plot_png_size(const char *path, int *w, int *h)
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    cairo_status_t st = cairo_surface_status(s);
    int rc = 0;
    if (st == CAIRO_STATUS_FILE_NOT_FOUND) rc = lsa_err(LSA_EIO, "%s: cannot open file", path);
    else if (st != CAIRO_STATUS_SUCCESS) rc = lsa_err(LSA_EFORMAT, "%s: not a PNG: %s", path, cairo_status_to_string(st));
    else {
        *w = cairo_image_surface_get_width(s);
        *h = cairo_image_surface_get_height(s);
    }
    cairo_surface_destroy(s);
    return rc;
}

/* ------------------------------------------------------------------ documents */

#define DOC_W 595.28 /* A4 portrait, points */
#define DOC_H 841.89
#define DOC_MARGIN 56.0
#define DOC_BODY 10.0 /* body text size */

struct lsa_plot_doc {
    char *path, *tmp, *footer;
    cairo_surface_t *sf;
    cairo_t *cr;
    double y;     /* where the next block goes */
    int page;     /* pages begun */
    bool fresh;   /* nothing drawn on the current page yet */
    const char *(*caption)(void *ctx, const char *stem);
    void *caption_ctx;
};

static double doc_text_w(void) { return DOC_W - 2 * DOC_MARGIN; }
static double doc_bottom(void) { return DOC_H - DOC_MARGIN; }

static void doc_footer(struct lsa_plot_doc *d)
{
    struct lsa_plot p = {d->cr, lsa_plot_style_for(LSA_PLOT_DOUBLE)};
    char buf[64];
    snprintf(buf, sizeof buf, "%d", d->page);
    cairo_set_source_rgb(d->cr, 0.45, 0.45, 0.45);
    lsa_plot_text(&p, DOC_W / 2, DOC_H - DOC_MARGIN / 2, buf, 8.5, false, 0.5, 0.5, 0);
    if (d->footer) lsa_plot_text(&p, DOC_MARGIN, DOC_H - DOC_MARGIN / 2, d->footer, 8.5, false, 0, 0.5, 0);
    cairo_set_source_rgb(d->cr, 0, 0, 0);
}

int lsa_plot_doc_new_page(struct lsa_plot_doc *d)
{
    if (d->page > 0) {
        doc_footer(d);
        cairo_show_page(d->cr);
    }
    d->page++;
    d->y = DOC_MARGIN;
    d->fresh = true;
    return surface_error(d->sf, d->path);
}

struct lsa_plot_doc *lsa_plot_doc_open(const char *path, const char *footer)
{
    struct lsa_plot_doc *d = calloc(1, sizeof *d);
    size_t n = strlen(path) + 32;
    if (!d || !(d->path = strdup(path)) || !(d->tmp = malloc(n)) || (footer && !(d->footer = strdup(footer)))) {
        lsa_plot_doc_abort(d);
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(d->tmp, n, "%s.partial-%d", path, (int)getpid());
    d->sf = cairo_pdf_surface_create(d->tmp, DOC_W, DOC_H);
    if (surface_error(d->sf, path)) {
        lsa_plot_doc_abort(d);
        return NULL;
    }
    cairo_pdf_surface_set_metadata(d->sf, CAIRO_PDF_METADATA_CREATOR, "lsa " LSA_VERSION);
    d->cr = cairo_create(d->sf);
    set_font_options(d->cr);
    lsa_plot_doc_new_page(d);
    return d;
}

void lsa_plot_doc_abort(struct lsa_plot_doc *d)
{
    if (!d) return;
    if (d->cr) cairo_destroy(d->cr);
    if (d->sf) {
        cairo_surface_finish(d->sf);
        cairo_surface_destroy(d->sf);
    }
    if (d->tmp) unlink(d->tmp);
    free(d->path), free(d->tmp), free(d->footer), free(d);
}

int lsa_plot_doc_close(struct lsa_plot_doc *d)
{
    doc_footer(d);
    cairo_show_page(d->cr);
    cairo_destroy(d->cr);
    d->cr = NULL;
    cairo_surface_finish(d->sf);
    int rc = surface_error(d->sf, d->path);
    cairo_surface_destroy(d->sf);
    d->sf = NULL;
    if (!rc && rename(d->tmp, d->path) != 0)
        rc = lsa_err(LSA_EIO, "%s: cannot rename into place: %s", d->path, strerror(errno));
    if (!rc) {
        free(d->tmp);
        d->tmp = NULL;
    }
    lsa_plot_doc_abort(d);
    return rc;
}

int lsa_plot_doc_pages(const struct lsa_plot_doc *d) { return d->page; }

void lsa_plot_doc_set_captions(struct lsa_plot_doc *d, const char *(*caption)(void *ctx, const char *stem), void *ctx)
{
    d->caption = caption;
    d->caption_ctx = ctx;
}

/* Make room for a block of height h: a new page when it does not fit below what is there. */
static int doc_room(struct lsa_plot_doc *d, double h)
{
    if (!d->fresh && d->y + h > doc_bottom()) return lsa_plot_doc_new_page(d);
    return 0;
}

/* Break text into lines no wider than w at size; calls line(ctx, start, len) for each. Returns the count. */
static int wrap(const char *text, double w, double size, bool bold, void (*line)(void *, const char *, size_t),
                void *ctx)
{
    int n = 0;
    const char *s = text;
    char buf[2048];
    while (*s) {
        size_t best = 0, i = 0;
        while (s[i] && s[i] != '\n') {
            size_t j = i;
            while (s[j] && s[j] != ' ' && s[j] != '\n') j++;
            if (j >= sizeof buf) break;
            memcpy(buf, s, j);
            buf[j] = 0;
            if (best && lsa_plot_text_width(NULL, buf, size, bold) > w) break;
            best = j;
            i = s[j] == ' ' ? j + 1 : j;
        }
        if (!best) best = strcspn(s, "\n") < sizeof buf ? strcspn(s, "\n") : sizeof buf - 1;
        if (line) line(ctx, s, best);
        n++;
        s += best;
        while (*s == ' ') s++;
        if (*s == '\n') s++;
    }
    return n;
}

struct text_ctx {
    struct lsa_plot_doc *d;
    double size;
    bool bold;
};

static void draw_line(void *ctx, const char *s, size_t n)
{
    struct text_ctx *t = ctx;
    struct lsa_plot p = {t->d->cr, lsa_plot_style_for(LSA_PLOT_DOUBLE)};
    char buf[2048];
    memcpy(buf, s, n < sizeof buf ? n : sizeof buf - 1);
    buf[n < sizeof buf ? n : sizeof buf - 1] = 0;
    doc_room(t->d, t->size * 1.35);
    cairo_set_source_rgb(t->d->cr, 0.1, 0.1, 0.1);
    lsa_plot_text(&p, DOC_MARGIN, t->d->y, buf, t->size, t->bold, 0, 0, 0);
    t->d->y += t->size * 1.35;
    t->d->fresh = false;
}

int lsa_plot_doc_text(struct lsa_plot_doc *d, const char *text, double size, bool bold)
{
    struct text_ctx t = {d, size > 0 ? size : DOC_BODY, bold};
    wrap(text, doc_text_w(), t.size, bold, draw_line, &t);
    d->y += t.size * 0.5;
    return surface_error(d->sf, d->path);
}

int lsa_plot_doc_heading(struct lsa_plot_doc *d, const char *text, int level)
{
    int rc = 0;
    if (level == 0 && !d->fresh) rc = lsa_plot_doc_new_page(d);
    double size = level == 0 ? 18 : 13;
    if (!rc) rc = doc_room(d, size * 3);
    if (!rc && !d->fresh) d->y += size * 0.6;
    struct text_ctx t = {d, size, true};
    if (!rc) wrap(text, doc_text_w(), size, true, draw_line, &t);
    if (!rc) d->y += size * 0.4;
    return rc ? rc : surface_error(d->sf, d->path);
}

int lsa_plot_doc_table(struct lsa_plot_doc *d, int rows, int cols, const char *const *cells)
{
    if (rows < 1 || cols < 1 || cols > 16) return lsa_err(LSA_EINVAL, "table of %d x %d", rows, cols);
    double size = 9, rh = size * 1.7, cw[16] = {0}, total = 0;
    for (int c = 0; c < cols; c++) {
        for (int r = 0; r < rows; r++) {
            const char *s = cells[r * cols + c] ? cells[r * cols + c] : "";
            cw[c] = fmax(cw[c], lsa_plot_text_width(NULL, s, size, r == 0) + size * 1.6);
        }
        total += cw[c];
    }
    double scale = total > doc_text_w() ? doc_text_w() / total : 1;
    struct lsa_plot p = {d->cr, lsa_plot_style_for(LSA_PLOT_DOUBLE)};
    int rc = doc_room(d, rh * (rows < 4 ? rows : 4));
    for (int r = 0; r < rows && !rc; r++) {
        if ((rc = doc_room(d, rh))) break;
        double x = DOC_MARGIN;
        if (r % 2 == 0 && r > 0) {
            cairo_set_source_rgb(d->cr, 0.95, 0.95, 0.95);
            cairo_rectangle(d->cr, DOC_MARGIN, d->y, total * scale, rh);
            cairo_fill(d->cr);
        }
        for (int c = 0; c < cols; c++) {
            const char *s = cells[r * cols + c] ? cells[r * cols + c] : "";
            cairo_set_source_rgb(d->cr, 0.1, 0.1, 0.1);
            lsa_plot_text(&p, x + size * 0.8 * scale, d->y + rh / 2, s, size * scale, r == 0, 0, 0.5, 0);
            x += cw[c] * scale;
        }
        d->y += rh;
        if (r == 0) {
            cairo_set_source_rgb(d->cr, 0.3, 0.3, 0.3);
            cairo_set_line_width(d->cr, 0.6);
            cairo_move_to(d->cr, DOC_MARGIN, d->y);
            cairo_line_to(d->cr, DOC_MARGIN + total * scale, d->y);
            cairo_stroke(d->cr);
        }
        d->fresh = false;
    }
    d->y += size;
    return rc ? rc : surface_error(d->sf, d->path);
}

int lsa_plot_doc_figure(struct lsa_plot_doc *d, double w, double h, enum lsa_plot_size size, lsa_plot_fn fn,
                        const void *ctx, const char *caption)
{
    /* column figures grow to most of the text width, wide ones shrink to it; none taller than a page */
    double avail = doc_bottom() - DOC_MARGIN - (caption ? 40 : 0);
    double s = fmin(doc_text_w() * (size == LSA_PLOT_SINGLE ? 0.78 : 1.0) / w, avail / h);
    double cap_h = 0;
    if (caption) cap_h = wrap(caption, doc_text_w(), 9, false, NULL, NULL) * 9 * 1.35 + 6;
    int rc = doc_room(d, h * s + cap_h + 8);
    if (rc) return rc;
    cairo_t *cr = d->cr;
    cairo_save(cr);
    cairo_translate(cr, DOC_MARGIN + (doc_text_w() - w * s) / 2, d->y);
    cairo_scale(cr, s, s);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    struct lsa_plot p = {cr, lsa_plot_style_for(size)};
    rc = fn(&p, w, h, ctx);
    cairo_restore(cr);
    d->y += h * s + 6;
    d->fresh = false;
    if (!rc && caption) {
        struct text_ctx t = {d, 9, false};
        wrap(caption, doc_text_w(), 9, false, draw_line, &t);
    }
    d->y += 8;
    return rc ? rc : surface_error(d->sf, d->path);
}

static const char *doc_caption(const struct lsa_plot_doc *d, const char *stem)
{
    return d->caption ? d->caption(d->caption_ctx, stem) : NULL;
}
