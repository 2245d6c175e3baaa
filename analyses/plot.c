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
