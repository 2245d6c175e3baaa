/*
 * report.c — `lsa report CAPTURE.h5`: parse options, open the capture, run the requested analyses,
 * write DIR/results.h5, DIR/summary.json and DIR/figures/. Options only: the numbers and the drawing
 * live in analyses/. Files appear under their final names only when everything succeeded.
 */
#include "cli/cli.h"
#include "lsa/capture_read.h"
#include "redundancy.h"
#include "similarity.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char help[] =
    "usage: lsa report CAPTURE.h5 [--out DIR] [options]\n"
    "\n"
    "Runs analyses over a capture (lsa capture) and writes DIR/results.h5, DIR/summary.json and\n"
    "DIR/figures/ (default DIR: output/<capture name>-report).\n"
    "\n"
    "options:\n"
    "  --out DIR              output folder (created if missing)\n"
    "  --analyses LIST        similarity,redundancy (default: both)\n"
    "                           similarity: mean cosine, angular distance, linear CKA (exact and minibatch)\n"
    "                           redundancy: Block Influence and its ranking, best block to drop, norms\n"
    "  --positions all|last   angular distance over all tokens or each sequence's last token, for the\n"
    "                         summary's \"angular\" and the best block (default all)\n"
    "  --final                add the final-normed point to the similarity matrices\n"
    "  --cka-max-tokens N     exact linear CKA on the first N tokens (default 4096; 0 = skip)\n"
    "  --cka-batch B          minibatch size of the unbiased CKA estimator, >= 4 (default 256; 0 = skip)\n"
    "  --size single|double|slide   figure size: 3.5 in, 7 in wide, or 10 x 5.625 in (default single)\n"
    "  --dpi N                PNG resolution (default 200)\n"
    "  --format LIST          figure formats among pdf,png,svg (default pdf,png)\n"
    "  --no-figures           numbers only\n"
    "  --quiet                no summary line\n";

static bool parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return lsa_err(LSA_EINVAL, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return lsa_err(LSA_EIO, "%s: cannot create folder: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return lsa_err(LSA_EIO, "%s: not a folder", path);
    return 0;
}

static void default_dir(const char *capture, char *out, size_t cap)
{
    const char *b = strrchr(capture, '/');
    b = b ? b + 1 : capture;
    size_t n = strlen(b);
    if (n > 3 && !strcmp(b + n - 3, ".h5")) n -= 3;
    else if (n > 5 && !strcmp(b + n - 5, ".hdf5")) n -= 5;
    snprintf(out, cap, "output/%.*s-report", (int)n, b);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

int lsa_cli_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},       {"analyses", required_argument, 0, 'a'},
        {"positions", required_argument, 0, 'p'}, {"final", no_argument, 0, 'F'},
        {"cka-max-tokens", required_argument, 0, 'k'}, {"cka-batch", required_argument, 0, 'b'},
        {"size", required_argument, 0, 's'},      {"dpi", required_argument, 0, 'd'},
        {"format", required_argument, 0, 'f'},    {"no-figures", no_argument, 0, 'N'},
        {"quiet", no_argument, 0, 'q'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct lsa_similarity_opts so = lsa_similarity_opts_default();
    struct lsa_redundancy_opts ro = lsa_redundancy_opts_default();
    struct lsa_plot_opts po = lsa_plot_opts_default();
    const char *out = NULL;
    bool want_sim = true, want_red = true, figures = true, quiet = false;
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'a': {
            want_sim = want_red = false;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (!strcmp(tok, "similarity")) want_sim = true;
                else if (!strcmp(tok, "redundancy")) want_red = true;
                else return lsa_cli_usage("report: unknown analysis '%s' (known: similarity, redundancy)", tok);
            }
            if (!want_sim && !want_red) return lsa_cli_usage("report: --analyses %s names no analysis", optarg);
            break;
        }
        case 'p':
            if (strcmp(optarg, "all") && strcmp(optarg, "last"))
                return lsa_cli_usage("report: --positions %s: use all or last", optarg);
            so.last_token = ro.last_token = !strcmp(optarg, "last");
            break;
        case 'F': so.with_final = true; break;
        case 'k':
            if (!parse_ll(optarg, 0, INT64_MAX / 2, &v)) return lsa_cli_usage("report: --cka-max-tokens %s", optarg);
            so.cka_max_tokens = v;
            break;
        case 'b':
            if (!parse_ll(optarg, 0, 4096, &v) || (v > 0 && v < 4))
                return lsa_cli_usage("report: --cka-batch %s: use 4..4096, or 0 to skip", optarg);
            so.cka_batch = (int)v;
            break;
        case 's':
            if (lsa_plot_parse_size(optarg, &po.size)) return lsa_cli_usage("report: %s", lsa_errmsg());
            break;
        case 'd':
            if (!parse_ll(optarg, 10, 2400, &v)) return lsa_cli_usage("report: --dpi %s: use 10..2400", optarg);
            po.dpi = (double)v;
            break;
        case 'f':
            if (lsa_plot_parse_formats(optarg, &po.formats)) return lsa_cli_usage("report: %s", lsa_errmsg());
            break;
        case 'N': figures = false; break;
        case 'q': quiet = true; break;
        case 'h': fputs(help, stdout); return LSA_EXIT_OK;
        default: fputs(help, stderr); return LSA_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) return lsa_cli_usage("report: need exactly one CAPTURE.h5 (see lsa report --help)");
    const char *capture = argv[optind];

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char dir[PATH_MAX], figdir[PATH_MAX + 16], *command = NULL;
    struct lsa_capture_reader *cap = NULL;
    struct lsa_similarity_result *sim = NULL;
    struct lsa_redundancy_result *red = NULL;
    struct lsa_results *res = NULL;
    int status = LSA_EXIT_INPUT, rc;
    if (!(cap = lsa_capture_read_open(capture))) goto out;
    const struct lsa_capture_info *ci = lsa_capture_read_info(cap);
    if (out) snprintf(dir, sizeof dir, "%s", out);
    else default_dir(capture, dir, sizeof dir);
    snprintf(figdir, sizeof figdir, "%s/figures", dir);
    if (make_dirs(dir) || (figures && make_dirs(figdir))) goto out;

    size_t cl = 16;
    for (int i = 0; i < argc; i++) cl += strlen(argv[i]) + 1;
    if (!(command = malloc(cl))) {
        lsa_err(LSA_ENOMEM, "out of memory");
        goto out;
    }
    strcpy(command, "lsa");
    for (int i = 0; i < argc; i++) strcat(strcat(command, " "), argv[i]);

    if (!want_sim) so.cka_max_tokens = 0, so.cka_batch = 0; /* redundancy alone needs no CKA */
    if (lsa_similarity_run(cap, &so, &sim)) goto out;
    if (want_red && (rc = lsa_redundancy_run(sim, &ro, &red))) {
        lsa_err_wrap(rc, "%s", capture);
        goto out;
    }
    struct lsa_results_meta meta = {.capture = capture, .model_path = ci->model_path, .model_type = ci->model_type,
                                    .n_tokens = ci->n_tokens, .command = command, .points = ci->point_names,
                                    .n_points = ci->n_points};
    if (!(res = lsa_results_open(dir, &meta))) goto out;
    if (want_sim && lsa_similarity_save(sim, res)) goto out;
    if (red && lsa_redundancy_save(red, res)) goto out;
    if (figures && want_sim && lsa_similarity_draw(sim, &po, figdir)) goto out;
    if (figures && red && lsa_redundancy_draw(red, &po, figdir)) goto out;
    rc = lsa_results_commit(res);
    res = NULL;
    if (rc) goto out;
    if (!quiet)
        fprintf(stderr, "lsa report: %s: %s%s%s over %lld tokens, %d points; %.1f s\n", dir,
                want_sim ? "similarity" : "", want_sim && red ? ", " : "", red ? "redundancy" : "",
                (long long)ci->n_tokens, ci->n_points, seconds_since(&t0));
    status = LSA_EXIT_OK;
out:
    if (status) lsa_cli_fail();
    lsa_results_abort(res);
    lsa_redundancy_free(red);
    lsa_similarity_free(sim);
    lsa_capture_read_close(cap);
    free(command);
    return status;
}
