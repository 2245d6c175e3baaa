/*
 * plot.h — publication figures with cairo. plot.c is the only file that includes cairo.h: it owns the
 * surfaces (PDF, PNG, SVG), text (cairo's toy API with DejaVu Sans, unhinted so PNG and PDF lay out
 * alike) and the drawing primitives below; plot_charts.c builds heatmaps, bar charts (single and
 * grouped), line plots and text grids (the logit-lens token grid) from those primitives only.
 *
 * Units: figure points (1/72 in), origin at the top left, y downwards. A PNG is rendered at the
 * requested dpi (pixels = inches x dpi). Size presets: single column 3.5 in wide, double column 7 in,
 * slide 10 x 5.625 in (16:9); fonts and line widths scale with the preset.
 * Colour maps: viridis (perceptually uniform, colour-blind safe) for sequential data, ColorBrewer RdBu
 * (colour-blind safe diverging) for signed data; series use viridis samples or the Okabe-Ito palette.
 *
 * Drawing is not writing (STYLE 12): draw functions get a `struct lsa_plot *` and never create files;
 * lsa_plot_save picks the surface from the path's extension, writes under a temporary name and renames
 * on success. Errors: LSA_EINVAL for bad options, LSA_EIO when a file cannot be written.
 */
#ifndef LSA_ANALYSES_PLOT_H
#define LSA_ANALYSES_PLOT_H

#include "lsa/lsa.h"

#include <stdbool.h>

enum lsa_plot_size { LSA_PLOT_SINGLE, LSA_PLOT_DOUBLE, LSA_PLOT_SLIDE };
enum { LSA_PLOT_PDF = 1u << 0, LSA_PLOT_PNG = 1u << 1, LSA_PLOT_SVG = 1u << 2 };
enum lsa_plot_cmap { LSA_CMAP_VIRIDIS, LSA_CMAP_DIVERGING };

struct lsa_plot_doc;
struct lsa_plot_opts {
    enum lsa_plot_size size; /* default single */
    double dpi;              /* PNG resolution, default 200 */
    unsigned formats;        /* mask of LSA_PLOT_PDF/PNG/SVG, default PDF | PNG */
    struct lsa_plot_doc *doc; /* when set, every figure saved is also placed in this document */
};
struct lsa_plot_opts lsa_plot_opts_default(void);
/* "single" | "double" | "slide" */
int lsa_plot_parse_size(const char *s, enum lsa_plot_size *out);
/* comma-separated "pdf,png,svg" */
int lsa_plot_parse_formats(const char *s, unsigned *out);

/* Font sizes (pt) and line width for a preset. */
struct lsa_plot_style {
    double width;       /* figure width (pt) */
    double slide_h;     /* figure height for slides (pt); 0 for column presets */
    double tick, label, title, annot, lw;
};
struct lsa_plot_style lsa_plot_style_for(enum lsa_plot_size size);

struct lsa_plot;
struct lsa_plot_rect {
    double x, y, w, h;
};
typedef int (*lsa_plot_fn)(struct lsa_plot *p, double w, double h, const void *ctx);

/* Render fn into path (.pdf, .png or .svg) of w x h points. */
int lsa_plot_save(const char *path, double w, double h, const struct lsa_plot_opts *o, lsa_plot_fn fn,
                  const void *ctx);
/* Render into dir/stem.<ext> for every format in o->formats. */
int lsa_plot_save_formats(const char *dir, const char *stem, double w, double h, const struct lsa_plot_opts *o,
                          lsa_plot_fn fn, const void *ctx);
/* Size (pixels) of a PNG file, decoding it whole; LSA_EFORMAT when it does not decode. For tests. */
int lsa_plot_png_size(const char *path, int *w, int *h);

/* ------------------------------------------------------------------ primitives (plot.c) */

const struct lsa_plot_style *lsa_plot_get_style(const struct lsa_plot *p);
void lsa_plot_color(struct lsa_plot *p, double r, double g, double b);
void lsa_plot_color_hex(struct lsa_plot *p, unsigned rgb);
void lsa_plot_fill_rect(struct lsa_plot *p, double x, double y, double w, double h);
void lsa_plot_stroke_rect(struct lsa_plot *p, double x, double y, double w, double h, double lw);
void lsa_plot_line(struct lsa_plot *p, double x0, double y0, double x1, double y1, double lw);
/* A polyline through n points; dash > 0 draws it dashed with that dash length. NaN points break it. */
void lsa_plot_polyline(struct lsa_plot *p, int n, const double *x, const double *y, double lw, double dash);
/* Circle marker of diameter d: filled, or a ring of width lw with a white inside. */
void lsa_plot_marker(struct lsa_plot *p, double x, double y, double d, bool filled, double lw);
/*
 * Text at (x, y) in the current colour. ax: 0 left, 0.5 centre, 1 right; ay: 0 top, 0.5 middle,
 * 1 bottom of the text's cap-height box (descenders hang below). angle in degrees, counter-clockwise
 * (90 for a y-axis label), turning about (x, y).
 */
void lsa_plot_text(struct lsa_plot *p, double x, double y, const char *s, double size, bool bold, double ax, double ay,
                   double angle);
/* Advance width of s at size (pt). Works without a plot (p may be NULL) for layout before drawing. */
double lsa_plot_text_width(const struct lsa_plot *p, const char *s, double size, bool bold);
void lsa_plot_cmap(enum lsa_plot_cmap m, double t, double rgb[3]);
/* The colour map as a smooth vertical bar (low values at the bottom) filling the rectangle. */
void lsa_plot_cmap_bar(struct lsa_plot *p, double x, double y, double w, double h, enum lsa_plot_cmap m);
/* Okabe-Ito palette entry i (wraps), as 0xRRGGBB. */
unsigned lsa_plot_palette(int i);

/* ------------------------------------------------------------------ charts (plot_charts.c) */

/* n with thousands separators ("28,736") into buf; returns buf. */
const char *lsa_plot_fmt_count(long long n, char *buf, size_t cap);

/* Title (bold) and an optional subtitle at the top of r; returns what is left of r below them. */
struct lsa_plot_rect lsa_plot_title(struct lsa_plot *p, struct lsa_plot_rect r, const char *title,
                                    const char *subtitle);
/* Height that lsa_plot_title takes for a style. */
double lsa_plot_title_height(const struct lsa_plot_style *st, bool subtitle);

struct lsa_plot_heatmap {
    int rows, cols;
    const double *v;                       /* (rows, cols); NaN = empty cell */
    const char *const *row_labels;         /* (rows) y tick labels, top to bottom */
    const char *const *col_labels;         /* (cols) x tick labels */
    const char *xlabel, *ylabel, *cbar_label;
    double vmin, vmax;                     /* colour range; values outside are clamped */
    enum lsa_plot_cmap cmap;
    int annotate;                          /* 1 = write values in cells, 0 = no, -1 = when they fit */
    int decimals;                          /* for annotations (default 2 when 0) */
    const int *mark;                       /* (rows) or NULL: column of a cell to outline in each row, -1 none */
};
/* Square cells, labels on both axes, colour bar with ticks and label on the right, inside r. */
int lsa_plot_heatmap(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_heatmap *hm);
/* The height of a figure of width w holding a title block and this heatmap with square cells. */
double lsa_plot_heatmap_fig_height(const struct lsa_plot_style *st, double w, bool subtitle,
                                   const struct lsa_plot_heatmap *hm);

struct lsa_plot_bars {
    int n;
    const double *v;                /* (n) */
    const char *const *labels;      /* (n) x tick labels */
    const bool *highlight;          /* (n) or NULL: bars drawn in the accent colour */
    const char *const *top_text;    /* (n) or NULL: small text above a bar (NULL entries: none) */
    const char *xlabel, *ylabel;
    const char *legend_normal, *legend_highlight; /* legend entries; NULL = no legend */
    double min_left;                /* at least this room (pt) left of the axes, to align stacked panels; 0 = as needed */
};
int lsa_plot_bars(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_bars *b);

struct lsa_plot_series {
    int n;
    const double *x, *y; /* (n); NaN y = gap */
    const char *label;   /* legend text, NULL = not in the legend */
    int mark;            /* index of a point to ring (e.g. the minimum), -1 = none */
    unsigned color;      /* 0xRRGGBB */
    bool dashed;
};
struct lsa_plot_lines {
    int n_series;
    const struct lsa_plot_series *s;
    const char *xlabel, *ylabel;
    bool logy;
    bool integer_x;                 /* ticks at integers only */
    const char *const *xtick_labels; /* with integer_x: label for x = i (i = 0..n_xtick_labels-1) */
    int n_xtick_labels;
    const char *mark_label;         /* legend entry for the ringed points, NULL = none */
    double min_left;                /* at least this room (pt) left of the axes, to align stacked panels; 0 = as needed */
};
int lsa_plot_lines(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_lines *l);

/* Bars in groups: one group per x position, one bar per series, a legend above. Negative values hang
 * below zero. */
struct lsa_plot_gbars {
    int n, n_series;
    const double *v;                /* (n_series, n) */
    const char *const *labels;      /* (n) x tick labels, NULL = the index */
    const char *const *series;      /* (n_series) legend entries */
    const unsigned *colors;         /* (n_series) 0xRRGGBB, or NULL for the Okabe-Ito palette */
    const char *xlabel, *ylabel;
};
int lsa_plot_grouped_bars(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_gbars *g);

/*
 * A grid of text cells, each filled by the colour of its value and labelled with a short text (the
 * logit-lens token grid): row labels on the left, column labels along the bottom and the top, a colour
 * bar on the right. Cells are as wide as their widest text (and any column label) needs, and grow to fill
 * a wider rectangle; text is black or white by the cell's luminance.
 */
struct lsa_plot_textgrid {
    int rows, cols;
    const double *v;                      /* (rows, cols) colour values; NaN = blank cell */
    const char *const *text;              /* (rows, cols) cell text; NULL entries = none */
    const bool *bold;                     /* (rows, cols) or NULL: text drawn bold */
    const char *const *row_labels;        /* (rows) top to bottom */
    const char *const *bottom_labels;     /* (cols) or NULL */
    const char *const *top_labels;        /* (cols) or NULL */
    const char *xlabel, *top_xlabel, *ylabel, *cbar_label;
    double vmin, vmax;
    enum lsa_plot_cmap cmap;
};
int lsa_plot_textgrid(struct lsa_plot *p, struct lsa_plot_rect r, const struct lsa_plot_textgrid *g);
/* The size (pt) of a figure holding a title block and this grid at its natural cell size, at least min_w
 * wide (the grid's cells then widen to fill it). */
void lsa_plot_textgrid_fig_size(const struct lsa_plot_style *st, double min_w, bool subtitle,
                                const struct lsa_plot_textgrid *g, double *w, double *h);


/* ------------------------------------------------------------------ documents (plot.c) */

/*
 * A multi-page vector PDF (A4 portrait) that content flows into: headings, wrapped text, tables and
 * figures, each placed below the previous one, a new page started when a block does not fit; page
 * numbers in the footer. Figures are drawn by the same functions that write the standalone files, scaled
 * to the text width, so the report and the figure files agree. Written under a temporary name and renamed
 * by lsa_plot_doc_close; lsa_plot_doc_abort removes it.
 */
struct lsa_plot_doc;

struct lsa_plot_doc *lsa_plot_doc_open(const char *path, const char *footer);
int lsa_plot_doc_close(struct lsa_plot_doc *d);   /* finish, rename, free */
void lsa_plot_doc_abort(struct lsa_plot_doc *d);  /* remove, free; NULL ok */
int lsa_plot_doc_pages(const struct lsa_plot_doc *d);
/* level 0: a section title that starts a new page; 1: a subsection heading */
int lsa_plot_doc_heading(struct lsa_plot_doc *d, const char *text, int level);
/* A paragraph wrapped to the text width; size in points (0 = body text). */
int lsa_plot_doc_text(struct lsa_plot_doc *d, const char *text, double size, bool bold);
/* A table: cells (rows, cols) row-major, the first row as the header; column widths from the contents. */
int lsa_plot_doc_table(struct lsa_plot_doc *d, int rows, int cols, const char *const *cells);
/* A figure of w x h points drawn by fn in a given size preset, scaled to fit, with an optional caption. */
int lsa_plot_doc_figure(struct lsa_plot_doc *d, double w, double h, enum lsa_plot_size size, lsa_plot_fn fn,
                        const void *ctx, const char *caption);
int lsa_plot_doc_new_page(struct lsa_plot_doc *d);
/* Captions for figures that reach the document through lsa_plot_save_formats (lsa_plot_opts.doc): called
 * with the figure's stem, returns the caption (NULL = none). */
void lsa_plot_doc_set_captions(struct lsa_plot_doc *d, const char *(*caption)(void *ctx, const char *stem),
                               void *ctx);

#endif
