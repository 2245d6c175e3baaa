/*
 * compare.c — `lsa compare A/summary.json B/summary.json ...`: overlay the per-layer curves of several
 * reports by relative depth (analyses/compare.h). Options only.
 */
#include "cli/cli.h"
#include "compare.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
    "usage: lsa compare SUMMARY.json SUMMARY.json ... [--out DIR] [--labels A,B,...] [options]\n"
    "\n"
    "Overlays the per-layer curves of several `lsa report` results (block influence, residual norm, logit\n"
    "lens KL and cross-entropy, deletion damage) by relative depth, so that models of different depth line up.\n"
    "Writes DIR/compare.json and DIR/compare-<curve>.{pdf,png} (default DIR: output/compare).\n"
    "\n"
    "  --out DIR              output folder (created if missing)\n"
    "  --labels A,B,...       legend names (default: each summary's model name)\n"
    "  --size single|double|slide, --dpi N, --format pdf,png,svg   as for lsa report\n";

int lsa_cli_compare(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},  {"labels", required_argument, 0, 'l'},
        {"size", required_argument, 0, 's'}, {"dpi", required_argument, 0, 'd'},
        {"format", required_argument, 0, 'f'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct lsa_plot_opts po = lsa_plot_opts_default();
    const char *out = "output/compare";
    char *labels_buf = NULL;
    const char *labels[LSA_COMPARE_MAX] = {0};
    int c, n_labels = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'l':
            free(labels_buf);
            labels_buf = strdup(optarg);
            n_labels = 0;
            for (char *t = strtok(labels_buf, ","); t && n_labels < LSA_COMPARE_MAX; t = strtok(NULL, ","))
                labels[n_labels++] = t;
            break;
        case 's':
            if (lsa_plot_parse_size(optarg, &po.size)) return free(labels_buf), lsa_cli_usage("compare: %s", lsa_errmsg());
            break;
        case 'd': {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || v < 10 || v > 2400) return free(labels_buf), lsa_cli_usage("compare: --dpi %s: use 10..2400", optarg);
            po.dpi = v;
            break;
        }
        case 'f':
            if (lsa_plot_parse_formats(optarg, &po.formats))
                return free(labels_buf), lsa_cli_usage("compare: %s", lsa_errmsg());
            break;
        case 'h': free(labels_buf); fputs(help, stdout); return LSA_EXIT_OK;
        default: free(labels_buf); fputs(help, stderr); return LSA_EXIT_USAGE;
        }
    }
    int n = argc - optind;
    if (n < 1 || n > LSA_COMPARE_MAX) {
        free(labels_buf);
        return lsa_cli_usage("compare: give 1 to %d summary.json files (see lsa compare --help)", LSA_COMPARE_MAX);
    }
    if (n_labels && n_labels != n) {
        free(labels_buf);
        return lsa_cli_usage("compare: %d labels for %d summaries", n_labels, n);
    }
    struct lsa_compare_result *r = NULL;
    int status = LSA_EXIT_INPUT;
    char figdir[4096];
    snprintf(figdir, sizeof figdir, "%s", out);
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        lsa_err(LSA_EIO, "%s: cannot create folder: %s", out, strerror(errno));
        goto done;
    }
    if (lsa_compare_run((const char *const *)(argv + optind), n_labels ? labels : NULL, n, &r) ||
        lsa_compare_save(r, out) || lsa_compare_draw(r, &po, figdir))
        goto done;
    if (r->skipped) fprintf(stderr, "lsa compare: curves not drawn:\n%s", r->skipped);
    fprintf(stderr, "lsa compare: %s: %d curves for %d models\n", out, r->n_curves, r->n_models);
    status = LSA_EXIT_OK;
done:
    if (status) lsa_cli_fail();
    lsa_compare_free(r);
    free(labels_buf);
    return status;
}
