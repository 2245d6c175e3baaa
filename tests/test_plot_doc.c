/*
 * test_plot_doc — the multi-page PDF document behind report.pdf: sections start pages, content flows onto
 * new pages when a page is full, figures saved with lsa_plot_opts.doc land in the document with their
 * caption, and the file appears only when closed (an aborted document leaves nothing). The page count is
 * read back with pdfinfo (poppler-utils).
 */
#include "plot.h"
#include "testutil.h"

#include <string.h>
#include <unistd.h>

static int box(struct lsa_plot *p, double w, double h, const void *ctx)
{
    (void)ctx;
    lsa_plot_color_hex(p, 0x3366aa);
    lsa_plot_fill_rect(p, 10, 10, w - 20, h - 20);
    lsa_plot_color(p, 0, 0, 0);
    lsa_plot_text(p, w / 2, h / 2, "figure", 12, true, 0.5, 0.5, 0);
    return 0;
}

static const char *cap(void *ctx, const char *stem)
{
    int *n = ctx;
    ++*n;
    return strcmp(stem, "fig") == 0 ? "A caption that is long enough to wrap onto a second line of the page, "
                                      "because captions say what a figure shows and how it was made."
                                    : NULL;
}

static int pdf_pages(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "pdfinfo '%s' 2>/dev/null | awk '/^Pages:/ {print $2}'", path);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f && fscanf(f, "%d", &n) != 1) n = -1;
    if (f) pclose(f);
    return n;
}

int main(void)
{
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "/tmp/lsa-test-plot-doc-%d", (int)getpid());
    REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    snprintf(path, sizeof path, "%s/doc.pdf", dir);
    struct lsa_plot_doc *d = lsa_plot_doc_open(path, "footer text");
    REQUIRE(d, "%s", lsa_errmsg());
    int n_cap = 0;
    lsa_plot_doc_set_captions(d, cap, &n_cap);
    CHECK(lsa_plot_doc_text(d, "Title page", 24, true) == 0, "text");
    const char *cells[] = {"key", "value", "model", "tiny", "layers", "4"};
    CHECK(lsa_plot_doc_table(d, 3, 2, cells) == 0, "table");
    CHECK(lsa_plot_doc_heading(d, "Section one", 0) == 0, "heading");
    CHECK(access(path, F_OK) != 0, "the PDF exists before it is closed");
    struct lsa_plot_opts po = lsa_plot_opts_default();
    po.formats = LSA_PLOT_PNG;
    po.doc = d;
    /* four tall figures cannot share one page */
    for (int i = 0; i < 4; i++) CHECK(lsa_plot_save_formats(dir, "fig", 252, 300, &po, box, NULL) == 0, "%s", lsa_errmsg());
    CHECK(n_cap == 4, "captions asked for %d figures, want 4", n_cap);
    CHECK(lsa_plot_doc_heading(d, "Section two", 0) == 0, "heading 2");
    char para[4000] = "";
    for (int i = 0; i < 60; i++) strcat(para, "A paragraph of words that wraps. ");
    CHECK(lsa_plot_doc_text(d, para, 0, false) == 0, "long text");
    int pages = lsa_plot_doc_pages(d);
    CHECK(pages >= 5, "%d pages: sections must start pages and figures must flow", pages);
    CHECK(lsa_plot_doc_close(d) == 0, "%s", lsa_errmsg());
    int read = pdf_pages(path);
    CHECK(read == pages, "pdfinfo says %d pages, the document made %d", read, pages);
    char png[320];
    snprintf(png, sizeof png, "%s/fig.png", dir);
    int w, h;
    CHECK(lsa_plot_png_size(png, &w, &h) == 0 && w == 700, "figure file written alongside (%d px wide)", w);
    printf("  document: %d pages\n", pages);

    snprintf(path, sizeof path, "%s/aborted.pdf", dir);
    d = lsa_plot_doc_open(path, NULL);
    REQUIRE(d, "%s", lsa_errmsg());
    lsa_plot_doc_text(d, "never finished", 0, false);
    lsa_plot_doc_abort(d);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c aborted", dir);
    FILE *f = popen(cmd, "r");
    int left = -1;
    if (fscanf(f, "%d", &left) != 1) left = -1;
    pclose(f);
    CHECK(left == 0, "an aborted document left %d files", left);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!t_failures) CHECK(system(cmd) == 0, "cleanup");
    return t_finish("test_plot_doc");
}
