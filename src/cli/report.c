/*
 * report.c — `lsa report CAPTURE.h5`: parse options, open the capture (and the model, for the logit lens
 * and robustness), run the requested analyses, write DIR/results.h5, DIR/summary.json and DIR/figures/.
 * Options, progress and messages only: the numbers and the drawing live in analyses/. Files appear under
 * their final names only when everything succeeded.
 */
#include "cli/cli.h"
#include "lsa/h5.h"
#include "report.h"
#include "logit_lens.h"
#include "lsa/capture_read.h"
#include "redundancy.h"
#include "robustness.h"
#include "similarity.h"

#include <errno.h>
#include <stdio.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "usage: lsa report CAPTURE.h5 [--out DIR] [options]\n"
    "\n"
    "Runs analyses over a capture (lsa capture) and writes DIR/results.h5, DIR/summary.json and\n"
    "DIR/figures/ (default DIR: output/<capture name>-report). summary.json keys: docs/summary-keys.md.\n"
    "\n"
    "options:\n"
    "  --out DIR              output folder (created if missing)\n"
    "  --analyses LIST        among similarity,redundancy,lens,robustness (default: all that the inputs allow)\n"
    "                           similarity: mean cosine, angular distance, linear CKA (exact and minibatch)\n"
    "                           redundancy: Block Influence and its ranking, best block to drop, norms\n"
    "                           lens: logit lens of every stored point (entropy, KL to the final output,\n"
    "                             cross-entropy, top-1 agreement, ranks) and the token grid of one sequence\n"
    "                           robustness: the model re-run with each layer deleted, adjacent layers\n"
    "                             swapped, attention or MLP removed, k layers removed; painters variants\n"
    "                         lens and robustness need the model: when it cannot be loaded they are skipped\n"
    "                         with the reason on stderr (an error when --analyses names them)\n"
    "  --model MODEL          the model for lens and robustness (default: the capture's model_path)\n"
    "  --positions all|last   angular distance over all tokens or each sequence's last token, for the\n"
    "                         summary's \"angular\" and the best block (default all); --positions A:B is\n"
    "                         read as --grid-positions A:B\n"
    "  --final                add the final-normed point to the similarity matrices\n"
    "  --cka-max-tokens N     exact linear CKA on the first N tokens (default 4096; 0 = skip)\n"
    "  --cka-batch B          minibatch size of the unbiased CKA estimator, >= 4 (default 256; 0 = skip)\n"
    "  --cka-f64              CKA GEMMs in float64: ~1e-15 instead of ~1e-6 relative, half the speed\n"
    "                         (default: float32 GEMMs summed in float64)\n"
    "  --seq S                sequence shown in the logit-lens token grid (default 0)\n"
    "  --grid-positions A:B   its positions A..B-1 (default the first 8; 12 with --size double,\n"
    "                         10 with slide: what fits the width; more widen the figure)\n"
    "  --lens-tokens N        logit lens over the first N tokens (default 0 = all)\n"
    "  --robust-tokens N      robustness on the first N tokens, whole sequences (default 8192; 0 = all)\n"
    "  --swap-all             also swap every pair of layers (L(L-1)/2 more runs) for the swap matrix\n"
    "  --text FILE            robustness on this file's text (one document) instead of the capture's\n"
    "                         tokens; repeatable, and mixable with --lines\n"
    "  --lines FILE           robustness on this file's non-empty lines (one document each)\n"
    "  --size single|double|slide   figure size: 3.5 in, 7 in wide, or 10 x 5.625 in (default single)\n"
    "  --dpi N                PNG resolution (default 200)\n"
    "  --format LIST          figure formats among pdf,png,svg (default pdf,png)\n"
    "  --no-figures           numbers only\n"
    "  --quiet                no progress and no summary (skipped analyses are still reported)\n"
    "  --force                recompute everything: by default an analysis already in DIR/results.h5 for\n"
    "                         the same capture (its tokens and file), model files, lsa version and options\n"
    "                         is read back from there instead of recomputed (figures are always redrawn)\n";

static bool parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* "A:B" with 0 <= A < B. */
static bool parse_range(const char *s, int *a, int *b)
{
    char buf[64];
    long long x, y;
    const char *c = strchr(s, ':');
    if (!c || (size_t)(c - s) >= sizeof buf) return false;
    snprintf(buf, sizeof buf, "%.*s", (int)(c - s), s);
    if (!parse_ll(buf, 0, INT_MAX - 1, &x) || !parse_ll(c + 1, 1, INT_MAX, &y) || y <= x) return false;
    *a = (int)x, *b = (int)y;
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

/* A results.h5 whose stamps match but whose numbers cannot be read back (damaged, edited): recompute. */
static void reuse_failed(const char *dir, const char *analysis)
{
    fprintf(stderr, "lsa report: cannot reuse %s from %s/results.h5 (%s); recomputing it\n", analysis, dir,
            lsa_errmsg());
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

struct progress {
    bool on, shown;
    struct timespec t0;
};

static void show_progress(void *ctx, int64_t done, int64_t total)
{
    struct progress *p = ctx;
    if (!p->on) return;
    double s = seconds_since(&p->t0), left = done > 0 ? s * (double)(total - done) / (double)done : 0;
    fprintf(stderr, "\rlsa report: robustness: %lld/%lld variant runs, %.0f s, about %.0f s left   ", (long long)done,
            (long long)total, s, left);
    fflush(stderr);
    p->shown = true;
}

/* Text inputs for robustness (--text / --lines), in the order given. */
struct input {
    bool lines;
    const char *path;
};

/* Tokenize the inputs into windows, up to max_tokens: --text whole, --lines streamed line by line. */
static int read_inputs(const struct input *in, int n_in, const struct lsa_model *m, int64_t max_tokens,
                       struct lsa_robust_windows *w)
{
    int rc = 0;
    for (int i = 0; i < n_in && !rc && (max_tokens <= 0 || w->n_tokens < max_tokens); i++) {
        if (!in[i].lines) {
            char *text;
            size_t len;
            if ((rc = lsa_read_file(in[i].path, LSA_CLI_TEXT_MAX, &text, &len))) break;
            rc = lsa_robust_windows_add(w, m, text, len, in[i].path, 0, max_tokens);
            free(text);
            continue;
        }
        bool is_stdin = !strcmp(in[i].path, "-");
        FILE *f = is_stdin ? stdin : fopen(in[i].path, "rb");
        if (!f) return lsa_err(LSA_EIO, "%s: cannot open: %s", in[i].path, strerror(errno));
        char *line = NULL, where[PATH_MAX + 32];
        size_t cap = 0, no = 0;
        ssize_t n;
        while (!rc && (max_tokens <= 0 || w->n_tokens < max_tokens) && (n = getline(&line, &cap, f)) >= 0) {
            no++;
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
            snprintf(where, sizeof where, "%s:%zu", in[i].path, no);
            if (n > 0) rc = lsa_robust_windows_add(w, m, line, (size_t)n, where, 0, max_tokens);
        }
        if (!rc && ferror(f)) rc = lsa_err(LSA_EIO, "%s: read failed", in[i].path);
        free(line);
        if (!is_stdin) fclose(f);
    }
    if (!rc && w->n_seq == 0) rc = lsa_err(LSA_EINVAL, "%s: no text to run robustness on", in[0].path);
    return rc;
}

enum { A_SIM = 1, A_RED = 2, A_LENS = 4, A_ROB = 8 };

int lsa_cli_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},        {"analyses", required_argument, 0, 'a'},
        {"positions", required_argument, 0, 'p'},  {"final", no_argument, 0, 'F'},
        {"cka-max-tokens", required_argument, 0, 'k'}, {"cka-batch", required_argument, 0, 'b'},
        {"size", required_argument, 0, 's'},       {"dpi", required_argument, 0, 'd'},
        {"format", required_argument, 0, 'f'},     {"no-figures", no_argument, 0, 'N'},
        {"quiet", no_argument, 0, 'q'},            {"force", no_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},            {"cka-f64", no_argument, 0, '6'},
        {"model", required_argument, 0, 'm'},      {"seq", required_argument, 0, 'S'},
        {"grid-positions", required_argument, 0, 'g'}, {"lens-tokens", required_argument, 0, 'l'},
        {"robust-tokens", required_argument, 0, 'r'}, {"swap-all", no_argument, 0, 'W'},
        {"text", required_argument, 0, 'T'},       {"lines", required_argument, 0, 'L'},
        {0, 0, 0, 0},
    };
    struct lsa_similarity_opts so = lsa_similarity_opts_default();
    struct lsa_redundancy_opts ro = lsa_redundancy_opts_default();
    struct lsa_lens_opts lo = lsa_lens_opts_default();
    struct lsa_robust_opts bo = lsa_robust_opts_default();
    struct lsa_plot_opts po = lsa_plot_opts_default();
    const char *out = NULL, *model_name = NULL;
    unsigned want = A_SIM | A_RED | A_LENS | A_ROB, named = 0;
    bool figures = true, quiet = false, grid_given = false, force = false;
    int grid_seq = 0, grid_a = 0, grid_b = 0, n_in = 0, c;
    struct input *in = calloc((size_t)argc + 1, sizeof *in);
    long long v;
    if (!in) return lsa_cli_fail();
    optind = 1;
#define USAGE(...)                                                                                                     \
    do {                                                                                                               \
        free(in);                                                                                                      \
        return lsa_cli_usage(__VA_ARGS__);                                                                             \
    } while (0)
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'a': {
            named = 0;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (!strcmp(tok, "similarity")) named |= A_SIM;
                else if (!strcmp(tok, "redundancy")) named |= A_RED;
                else if (!strcmp(tok, "lens") || !strcmp(tok, "logit_lens")) named |= A_LENS;
                else if (!strcmp(tok, "robustness")) named |= A_ROB;
                else USAGE("report: unknown analysis '%s' (known: similarity, redundancy, lens, robustness)", tok);
            }
            if (!named) USAGE("report: --analyses %s names no analysis", optarg);
            want = named;
            break;
        }
        case 'p':
            if (strchr(optarg, ':')) {
                if (!parse_range(optarg, &grid_a, &grid_b))
                    USAGE("report: --positions %s: use all, last or A:B with A < B", optarg);
                grid_given = true;
                break;
            }
            if (strcmp(optarg, "all") && strcmp(optarg, "last"))
                USAGE("report: --positions %s: use all or last (or A:B for the lens grid)", optarg);
            so.last_token = ro.last_token = !strcmp(optarg, "last");
            break;
        case 'F': so.with_final = true; break;
        case '6': so.cka_f64 = true; break;
        case 'k':
            if (!parse_ll(optarg, 0, INT64_MAX / 2, &v)) USAGE("report: --cka-max-tokens %s", optarg);
            so.cka_max_tokens = v;
            break;
        case 'b':
            if (!parse_ll(optarg, 0, 4096, &v) || (v > 0 && v < 4))
                USAGE("report: --cka-batch %s: use 4..4096, or 0 to skip", optarg);
            so.cka_batch = (int)v;
            break;
        case 's':
            if (lsa_plot_parse_size(optarg, &po.size)) USAGE("report: %s", lsa_errmsg());
            break;
        case 'd':
            if (!parse_ll(optarg, 10, 2400, &v)) USAGE("report: --dpi %s: use 10..2400", optarg);
            po.dpi = (double)v;
            break;
        case 'f':
            if (lsa_plot_parse_formats(optarg, &po.formats)) USAGE("report: %s", lsa_errmsg());
            break;
        case 'N': figures = false; break;
        case 'q': quiet = true; break;
        case 'R': force = true; break;
        case 'm': model_name = optarg; break;
        case 'S':
            if (!parse_ll(optarg, 0, INT_MAX, &v)) USAGE("report: --seq %s: use a sequence index >= 0", optarg);
            grid_seq = (int)v;
            break;
        case 'g':
            if (!parse_range(optarg, &grid_a, &grid_b))
                USAGE("report: --grid-positions %s: use A:B with 0 <= A < B", optarg);
            grid_given = true;
            break;
        case 'l':
            if (!parse_ll(optarg, 0, INT64_MAX / 2, &v)) USAGE("report: --lens-tokens %s", optarg);
            lo.max_tokens = v;
            break;
        case 'r':
            if (!parse_ll(optarg, 0, INT64_MAX / 2, &v) || v == 1)
                USAGE("report: --robust-tokens %s: use 0 (all) or >= 2", optarg);
            bo.max_tokens = v;
            break;
        case 'W': bo.swap_all = true; break;
        case 'T':
        case 'L': in[n_in++] = (struct input){.lines = c == 'L', .path = optarg}; break;
        case 'h':
            free(in);
            fputs(help, stdout);
            return LSA_EXIT_OK;
        default: free(in); fputs(help, stderr); return LSA_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) USAGE("report: need exactly one CAPTURE.h5 (see lsa report --help)");
    if (n_in && !(want & A_ROB)) USAGE("report: --text/--lines give robustness its text, but --analyses leaves it out");
    if (grid_given && !(want & A_LENS)) USAGE("report: --grid-positions is for the lens, but --analyses leaves it out");
#undef USAGE
    const char *capture = argv[optind];
    /* as many positions as fit the figure width at the preset's font sizes */
    if (!grid_given) grid_a = 0, grid_b = po.size == LSA_PLOT_SINGLE ? 8 : po.size == LSA_PLOT_DOUBLE ? 12 : 10;

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char dir[PATH_MAX], figdir[PATH_MAX + 16], *command = NULL;
    struct lsa_capture_reader *cap = NULL;
    struct lsa_similarity_result *sim = NULL;
    struct lsa_redundancy_result *red = NULL;
    struct lsa_lens_result *lens = NULL;
    struct lsa_robust_result *rob = NULL;
    struct lsa_report_parts parts = {0};
    char skip_why[4][700];
    int n_skip = 0;
    struct lsa_robust_windows *win = NULL;
    struct lsa_model *m = NULL;
    struct lsa_results *res = NULL;
    int *bi_order = NULL, status = LSA_EXIT_INPUT, rc;
    struct lsa_h5 *prev = NULL;
    char key_cap[LSA_RESULTS_KEY], key_model[LSA_RESULTS_KEY] = "", opt[4][8192];
    unsigned reused = 0;
    char bi_source[128];
    if (!(cap = lsa_capture_read_open(capture))) goto out;
    const struct lsa_capture_info *ci = lsa_capture_read_info(cap);

    /* the model, for lens and robustness */
    if (want & (A_LENS | A_ROB)) {
        const char *name = model_name ? model_name : ci->model_path;
        char why[600] = "";
        if (!(m = lsa_model_load(name))) snprintf(why, sizeof why, "cannot load the model: %s", lsa_errmsg());
        else if (lsa_model_arch(m)->d_model != ci->d_model)
            snprintf(why, sizeof why, "the model %s has d_model %d but the capture %d", name,
                     lsa_model_arch(m)->d_model, ci->d_model);
        if (why[0]) {
            if (model_name || (named & (A_LENS | A_ROB))) {
                lsa_err(LSA_EINVAL, "%s: %s", capture, why);
                goto out;
            }
            fprintf(stderr, "lsa report: skipping lens, robustness: %s (give --model)\n", why);
            snprintf(skip_why[n_skip], sizeof skip_why[0], "%s (give --model)", why);
            parts.skipped[n_skip][0] = "logit lens, robustness";
            parts.skipped[n_skip][1] = skip_why[n_skip];
            n_skip++;
            want &= ~(unsigned)(A_LENS | A_ROB);
            lsa_model_free(m);
            m = NULL;
        }
    }
    if (want & A_LENS) {
        int64_t o2[2];
        if (grid_seq >= ci->n_seqs) {
            lsa_err(LSA_EINVAL, "%s: --seq %d, but the capture has %lld sequences", capture, grid_seq,
                    (long long)ci->n_seqs);
            goto out;
        }
        if (lsa_capture_read_offsets(cap, grid_seq, grid_seq + 2, o2)) goto out;
        if (grid_a >= o2[1] - o2[0]) {
            lsa_err(LSA_EINVAL, "%s: --grid-positions %d:%d, but sequence %d has %lld tokens", capture, grid_a, grid_b,
                    grid_seq, (long long)(o2[1] - o2[0]));
            goto out;
        }
        lo.grid_seq = grid_seq, lo.grid_from = grid_a, lo.grid_to = grid_b;
    }

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

    /* reuse what an earlier run left in DIR/results.h5 for the same inputs and options (results.h) */
    prev = force ? NULL : lsa_results_prev_open(dir);
    if (lsa_results_input_keys(capture, m ? lsa_model_path(m) : NULL, key_cap, key_model)) goto out;
    if (!(want & A_SIM)) so.cka_max_tokens = 0, so.cka_batch = 0; /* redundancy alone needs no CKA */
    lsa_similarity_options(&so, opt[0], sizeof opt[0]);
    lsa_redundancy_options(&ro, &so, opt[1], sizeof opt[1]);
    lsa_lens_options(&lo, opt[2], sizeof opt[2]);
    if ((want & A_SIM) && lsa_results_prev_match(prev, "similarity", key_cap, opt[0])) {
        if (lsa_similarity_load(prev, ci->model_path, &so, &sim)) reuse_failed(dir, "similarity");
        else reused |= A_SIM;
    }
    if ((want & A_RED) && lsa_results_prev_match(prev, "redundancy", key_cap, opt[1])) {
        if (lsa_redundancy_load(prev, ci->model_path, &ro, &red)) reuse_failed(dir, "redundancy");
        else reused |= A_RED;
    }
    if ((want & A_LENS) && lsa_results_prev_match(prev, "logit_lens", key_model, opt[2])) {
        if (lsa_lens_load(prev, m, ci->model_path, &lens)) reuse_failed(dir, "logit_lens");
        else reused |= A_LENS;
    }

    if (!sim && ((want & A_SIM) || ((want & A_RED) && !red)) && lsa_similarity_run(cap, &so, &sim)) goto out;
    if ((want & A_RED) && !red && (rc = lsa_redundancy_run(sim, &ro, &red))) {
        if (rc != LSA_EINVAL || (named & A_RED)) {
            lsa_err_wrap(rc, "%s", capture);
            goto out;
        }
        /* e.g. a capture of selected layers: the other analyses still apply */
        fprintf(stderr, "lsa report: skipping redundancy: %s: %s\n", capture, lsa_errmsg());
        snprintf(skip_why[n_skip], sizeof skip_why[0], "%s", lsa_errmsg());
        parts.skipped[n_skip][0] = "redundancy";
        parts.skipped[n_skip][1] = skip_why[n_skip];
        n_skip++;
        want &= ~(unsigned)A_RED;
    }
    if ((want & A_LENS) && !lens && (rc = lsa_lens_run(cap, m, &lo, &lens))) goto out;
    if (want & A_ROB) {
        if (n_in) {
            if (!(win = lsa_robust_windows_new()) || read_inputs(in, n_in, m, bo.max_tokens, win)) goto out;
        } else if (!(win = lsa_robust_windows_capture(capture, bo.max_tokens))) {
            goto out;
        }
        /* the removal order from the redundancy analysis (over the whole capture) when it ranked the
         * model's own layers: the capture ran the intact model and stored every point */
        int L = lsa_model_arch(m)->n_layer;
        struct lsa_robust_windows *cw = n_in ? lsa_robust_windows_capture(capture, 2) : win;
        if (red && cw && cw->identity_plan && cw->plan_layers == L && red->first == 0 && red->n_blocks == L &&
            (bi_order = malloc(sizeof(int) * (size_t)L))) {
            for (int i = 0; i < L; i++) bi_order[i] = (int)red->bi_ranking[i];
            bo.bi_order = bi_order;
            snprintf(bi_source, sizeof bi_source, "redundancy: Block Influence over the capture's %lld tokens",
                     (long long)red->n_tokens);
            bo.bi_order_source = bi_source;
        }
        if (cw != win) lsa_robust_windows_free(cw);
        lsa_robust_options(&bo, win, L, opt[3], sizeof opt[3]);
        if (lsa_results_prev_match(prev, "robustness", key_model, opt[3])) {
            if (lsa_robust_load(prev, lsa_model_path(m), &rob)) reuse_failed(dir, "robustness");
            else reused |= A_ROB;
        }
    }
    if ((want & A_ROB) && !rob) {
        struct progress prog = {.on = !quiet && isatty(2)};
        clock_gettime(CLOCK_MONOTONIC, &prog.t0);
        bo.progress = show_progress;
        bo.progress_ctx = &prog;
        rc = lsa_robust_run(m, win->tokens, win->offsets, win->n_seq, &bo, &rob);
        if (prog.shown) fputs("\r\033[K", stderr);
        if (rc) {
            if (!n_in) lsa_err_wrap(rc, "%s", capture);
            goto out;
        }
    }

    struct lsa_results_meta meta = {.capture = capture, .model_path = ci->model_path, .model_type = ci->model_type,
                                    .n_tokens = ci->n_tokens, .command = command, .points = ci->point_names,
                                    .n_points = ci->n_points};
    lsa_h5_close(prev);
    prev = NULL;
    if (!(res = lsa_results_open(dir, &meta))) goto out;
    if ((want & A_SIM) && (lsa_similarity_save(sim, res) || lsa_results_stamp(res, "similarity", key_cap, opt[0])))
        goto out;
    if (red && (lsa_redundancy_save(red, res) || lsa_results_stamp(res, "redundancy", key_cap, opt[1]))) goto out;
    if (lens && (lsa_lens_save(lens, res) || lsa_results_stamp(res, "logit_lens", key_model, opt[2]))) goto out;
    if (rob && (lsa_robust_save(rob, res) || lsa_results_stamp(res, "robustness", key_model, opt[3]))) goto out;
    if (figures) { /* the figure files and report.pdf/report.md, drawn by the same code */
        char model_base[256], created[32], *capture_cmd = NULL;
        const char *slash = strrchr(ci->model_path, '/');
        snprintf(model_base, sizeof model_base, "%s", slash && slash[1] ? slash + 1 : ci->model_path);
        time_t now = time(NULL);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        struct lsa_h5 *h = lsa_h5_open(capture);
        if (h && lsa_h5_attr_str(h, "/", "command", &capture_cmd)) capture_cmd = NULL;
        lsa_h5_close(h);
        struct lsa_report_meta rm = {.model = model_base, .model_path = ci->model_path, .model_type = ci->model_type,
                                     .n_layers = ci->n_layers, .d_model = ci->d_model, .act_dtype = ci->dtype,
                                     .n_tokens = ci->n_tokens, .n_seqs = ci->n_seqs, .capture = capture,
                                     .capture_cmd = capture_cmd, .report_cmd = command, .created = created};
        if (m) {
            rm.n_params = lsa_model_n_params(m);
            rm.weight_dtype = lsa_model_arch(m)->dtype;
        }
        parts.sim = (want & A_SIM) ? sim : NULL;
        parts.red = red;
        parts.lens = lens;
        parts.rob = rob;
        parts.n_skipped = n_skip;
        rc = lsa_report_write(dir, &rm, &parts, &po, figdir);
        free(capture_cmd);
        if (rc) goto out;
    }
    rc = lsa_results_commit(res);
    res = NULL;
    if (rc) goto out;
    if (!quiet) {
        static const char *names[4] = {"similarity", "redundancy", "lens", "robustness"};
        char list[96] = "";
        for (int i = 0; i < 4; i++)
            if (want & (1u << i))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", names[i]);
        fprintf(stderr, "lsa report: %s: %s on a capture of %lld tokens, %d points; %.1f s\n", dir, list,
                (long long)ci->n_tokens, ci->n_points, seconds_since(&t0));
        list[0] = 0;
        for (int i = 0; i < 4; i++)
            if (reused & (1u << i))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", names[i]);
        if (list[0])
            fprintf(stderr, "lsa report: %s read back from the earlier %s/results.h5 (same inputs and options; "
                    "--force recomputes)\n", list, dir);
        if (sim && !(reused & A_SIM) && sim->token_s > 0) {
            double g = 1e-9;
            fprintf(stderr, "lsa report: similarity: reading %.2f s; per-token Grams %.2f s (%.1f GFLOP/s); minibatch "
                    "CKA %.2f s (%.1f GFLOP/s); exact CKA %.2f s (%.1f GFLOP/s); CKA GEMMs in %s\n", sim->read_s,
                    sim->token_s,
                    g * sim->token_flops / sim->token_s, sim->minibatch_s,
                    sim->minibatch_s > 0 ? g * sim->minibatch_flops / sim->minibatch_s : 0, sim->exact_s,
                    sim->exact_s > 0 ? g * sim->exact_flops / sim->exact_s : 0, sim->cka_f32 ? "float32" : "float64");
        }
        if (lens) {
            int P = lens->n_points;
            fprintf(stderr, "lsa report: lens: %lld tokens; KL to the final output %.3f (first point) .. %.3f (last "
                    "but one), top-1 agreement %.2f .. %.2f\n", (long long)lens->n_tokens, lens->kl_to_final[0],
                    lens->kl_to_final[P > 1 ? P - 2 : 0], lens->top1_agree_final[0],
                    lens->top1_agree_final[P > 1 ? P - 2 : 0]);
        }
        if (rob) {
            int L = rob->n_layer, worst = 0, best = 0;
            char secs[32] = "";
            if (!(reused & A_ROB)) snprintf(secs, sizeof secs, "; %.1f s", rob->seconds);
            for (int i = 1; i < L; i++) {
                if (rob->del[i].nll > rob->del[worst].nll) worst = i;
                if (rob->del[i].nll < rob->del[best].nll) best = i;
            }
            fprintf(stderr, "lsa report: robustness: baseline NLL %.4f (perplexity %.2f) on %lld tokens; deleting "
                    "layer %d costs %+.3f nats (most), layer %d %+.3f (least)%s\n", rob->baseline_nll,
                    exp(rob->baseline_nll), (long long)rob->n_tokens, worst, rob->del[worst].nll - rob->baseline_nll,
                    best, rob->del[best].nll - rob->baseline_nll, secs);
        }
    }
    status = LSA_EXIT_OK;
out:
    if (status) lsa_cli_fail();
    lsa_results_abort(res);
    lsa_h5_close(prev);
    lsa_robust_free(rob);
    lsa_robust_windows_free(win);
    lsa_lens_free(lens);
    lsa_redundancy_free(red);
    lsa_similarity_free(sim);
    lsa_model_free(m);
    lsa_capture_read_close(cap);
    free(bi_order);
    free(command);
    free(in);
    return status;
}
