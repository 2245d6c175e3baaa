/*
 * capture.c — `lsa capture`: parse options, feed documents from files/stdin/prompts to the capture
 * writer one at a time, show progress, and make Ctrl-C leave no file behind.
 */
#include "cli/cli.h"
#include "lsa/capture.h"
#include "lsa/llama2c.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "usage: lsa capture --model MODEL [inputs] [--out FILE.h5] [options]\n"
    "\n"
    "inputs (one or more, in order; - reads standard input):\n"
    "  --text FILE          the file's whole content is one document\n"
    "  --lines FILE         each non-empty line is a document\n"
    "  --jsonl FILE         one JSON object per line; its \"text\" field (or --field NAME) is a document\n"
    "  --prompt STRING      a document given on the command line (repeatable)\n"
    "options:\n"
    "  --out FILE.h5        default output/<model>-<timestamp>.h5\n"
    "  --ctx N              window length; longer documents are cut into windows (default: model context, max 1024)\n"
    "  --max-tokens N       stop after N tokens in all\n"
    "  --bos / --no-bos     force or suppress BOS at the start of each window (default: as the tokenizer does)\n"
    "  --components LIST    resid[,mid,attn,mlp,logits] (default resid)\n"
    "  --dtype f16|f32      activation dtype on disk (default f16; nll is always f32)\n"
    "  --layers SPEC        residual points to store, e.g. 0-5,12 (0 = embedding; default all)\n"
    "  --compress 0-9       deflate level with shuffle (default 4)\n"
    "  --order LIST, --skip LIST, --swap A:B, --drop-attn LIST, --drop-mlp LIST   layer plan\n"
    "  --allow-nonfinite    store NaN/Inf activations instead of stopping (default: stop and say where)\n"
    "  --resume             continue an interrupted capture from FILE.h5.partial (same model, inputs and\n"
    "                       options): sequences already there are verified and kept, the rest computed\n"
    "  --tokenizer FILE     tokenizer.bin of a llama2.c .bin model (default: tokenizer.bin or tok<vocab>.bin beside it)\n"
    "  --quiet              no progress and no summary\n";

enum { IN_TEXT, IN_LINES, IN_JSONL, IN_PROMPT };
struct input {
    int kind;
    const char *arg;
};

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct progress {
    bool on;
    struct timespec t0;
};

static double elapsed(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void show_progress(void *ctx, int64_t done)
{
    struct progress *p = ctx;
    if (!p->on) return;
    double s = elapsed(&p->t0);
    fprintf(stderr, "\rlsa capture: %lld tokens, %.0f tokens/s, %.1f s   ", (long long)done, s > 0 ? (double)done / s : 0,
            s);
    fflush(stderr);
}

/* Whether a JSON line holds the escape \u0000 (cJSON would cut the string there without saying so). */
static bool has_nul_escape(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4)) return true;
        i++; /* skip the escaped character (\\ included) */
    }
    return false;
}

/* Feed one input's documents to the capture. */
static int feed(struct lsa_capture *cap, const struct input *in, const char *field)
{
    if (in->kind == IN_PROMPT) return lsa_capture_add(cap, in->arg, strlen(in->arg), "--prompt");
    if (in->kind == IN_TEXT) {
        size_t len;
        char *text;
        int rc0 = lsa_read_file(in->arg, LSA_CLI_TEXT_MAX, &text, &len);
        if (rc0) return rc0;
        int rc = lsa_capture_add(cap, text, len, in->arg);
        free(text);
        return rc;
    }
    FILE *f = strcmp(in->arg, "-") ? fopen(in->arg, "rb") : stdin;
    if (!f) return lsa_err(LSA_EIO, "%s: cannot open: %s", in->arg, strerror(errno));
    char *line = NULL, where[PATH_MAX + 32];
    size_t cap_line = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (!rc && !interrupted && !lsa_capture_full(cap) && (n = getline(&line, &cap_line, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        snprintf(where, sizeof where, "%s:%ld", in->arg, lineno);
        if (in->kind == IN_LINES) {
            if (n > 0) rc = lsa_capture_add(cap, line, (size_t)n, where);
            continue;
        }
        size_t k = 0;
        while (k < (size_t)n && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == (size_t)n) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, field) : NULL;
        if (j && has_nul_escape(line, (size_t)n))
            rc = lsa_err(LSA_ETEXT, "%s: \\u0000 (a NUL character) in a JSON string: text must not contain NUL", where);
        else if (!j) rc = lsa_err(LSA_EFORMAT, "%s: not valid JSON", where);
        else if (!cJSON_IsString(t)) rc = lsa_err(LSA_EFORMAT, "%s: no string field \"%s\"", where, field);
        else rc = lsa_capture_add(cap, t->valuestring, strlen(t->valuestring), where);
        cJSON_Delete(j);
    }
    if (!rc && ferror(f)) rc = lsa_err(LSA_EIO, "%s: read error: %s", in->arg, strerror(errno));
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

static unsigned parse_components(const char *s, int *bad)
{
    unsigned m = LSA_CAP_RESID;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strcmp(tok, "resid")) m |= LSA_CAP_RESID;
        else if (!strcmp(tok, "mid")) m |= LSA_CAP_MID;
        else if (!strcmp(tok, "attn")) m |= LSA_CAP_ATTN;
        else if (!strcmp(tok, "mlp")) m |= LSA_CAP_MLP;
        else if (!strcmp(tok, "logits")) m |= LSA_CAP_LOGITS;
        else *bad = 1;
    }
    return m;
}

static bool parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static void default_out(const char *model_path, char *out, size_t cap)
{
    char base[256];
    const char *p = model_path + strlen(model_path);
    while (p > model_path && p[-1] == '/') p--;
    const char *e = p;
    while (p > model_path && p[-1] != '/') p--;
    snprintf(base, sizeof base, "%.*s", (int)(e - p), p);
    char ts[32];
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", localtime(&now));
    snprintf(out, cap, "output/%s-%s.h5", base[0] ? base : "model", ts);
}

int lsa_cli_capture(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'M'},   {"text", required_argument, 0, 'T'},
        {"lines", required_argument, 0, 'L'},   {"jsonl", required_argument, 0, 'J'},
        {"prompt", required_argument, 0, 'P'},  {"field", required_argument, 0, 'F'},
        {"out", required_argument, 0, 'o'},     {"ctx", required_argument, 0, 'c'},
        {"max-tokens", required_argument, 0, 'x'}, {"bos", no_argument, 0, 'b'},
        {"no-bos", no_argument, 0, 'B'},        {"components", required_argument, 0, 'C'},
        {"dtype", required_argument, 0, 'd'},   {"layers", required_argument, 0, 'l'},
        {"compress", required_argument, 0, 'z'}, {"order", required_argument, 0, 'R'},
        {"skip", required_argument, 0, 's'},    {"swap", required_argument, 0, 'w'},
        {"drop-attn", required_argument, 0, 'a'}, {"drop-mlp", required_argument, 0, 'm'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"tokenizer", required_argument, 0, 'k'},
        {"allow-nonfinite", no_argument, 0, 'N'},
        {"resume", no_argument, 0, 'r'},
        {"checkpoint-seconds", required_argument, 0, 'S'}, /* hidden: how often FILE.partial is flushed */
        {0, 0, 0, 0},
    };
    struct lsa_capture_opts o = lsa_capture_opts_default();
    struct input *inputs = calloc((size_t)argc, sizeof *inputs);
    int n_in = 0, c, bad = 0;
    const char *model = NULL, *out = NULL, *field = "text", *order = NULL, *skip = NULL, *swap = NULL, *da = NULL,
               *dm = NULL;
    bool quiet = false;
    const char *tokenizer = NULL;
    long long v;
    if (!inputs) return lsa_cli_usage("out of memory");
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'M': model = optarg; break;
        case 'T': inputs[n_in++] = (struct input){IN_TEXT, optarg}; break;
        case 'L': inputs[n_in++] = (struct input){IN_LINES, optarg}; break;
        case 'J': inputs[n_in++] = (struct input){IN_JSONL, optarg}; break;
        case 'P': inputs[n_in++] = (struct input){IN_PROMPT, optarg}; break;
        case 'F': field = optarg; break;
        case 'o': out = optarg; break;
        case 'c':
            if (!parse_int(optarg, 1, 1 << 20, &v)) bad = c;
            o.ctx = (int)v;
            break;
        case 'x':
            if (!parse_int(optarg, 1, INT64_MAX, &v)) bad = c;
            o.max_tokens = v;
            break;
        case 'b': o.bos = 1; break;
        case 'B': o.bos = 0; break;
        case 'C': o.components = parse_components(optarg, &bad); break;
        case 'd':
            if (strcmp(optarg, "f16") && strcmp(optarg, "f32")) bad = c;
            o.f32 = !strcmp(optarg, "f32");
            break;
        case 'l': o.layers = optarg; break;
        case 'z':
            if (!parse_int(optarg, 0, 9, &v)) bad = c;
            o.compress = (int)v;
            break;
        case 'R': order = optarg; break;
        case 's': skip = optarg; break;
        case 'w': swap = optarg; break;
        case 'a': da = optarg; break;
        case 'm': dm = optarg; break;
        case 'q': quiet = true; break;
        case 'k': tokenizer = optarg; break;
        case 'N': o.allow_nonfinite = true; break;
        case 'r': o.resume = true; break;
        case 'S': {
            char *end;
            o.checkpoint_seconds = strtod(optarg, &end);
            if (end == optarg || *end || !(o.checkpoint_seconds > 0 && o.checkpoint_seconds < 1e6)) bad = c;
            break;
        }
        case 'h': free(inputs); fputs(help, stdout); return LSA_EXIT_OK;
        default: free(inputs); fputs(help, stderr); return LSA_EXIT_USAGE;
        }
        if (bad) {
            free(inputs);
            return lsa_cli_usage("capture: bad value for an option: %s", optarg ? optarg : "?");
        }
    }
    if (o.resume && !out) {
        free(inputs);
        return lsa_cli_usage("capture: --resume needs --out (the default name holds the time, so it changes)");
    }
    if (!model || optind != argc || n_in == 0) {
        free(inputs);
        return lsa_cli_usage("capture: need --model and at least one of --text, --lines, --jsonl, --prompt "
                             "(see lsa capture --help)");
    }
    /* the command line, for provenance */
    size_t cl = 16;
    for (int i = 0; i < argc; i++) cl += strlen(argv[i]) + 1;
    char *command = malloc(cl), out_buf[PATH_MAX];
    strcpy(command, "lsa");
    for (int i = 0; i < argc; i++) strcat(strcat(command, " "), argv[i]);
    o.command = command;

    int status = LSA_EXIT_INPUT, rc = 0;
    struct lsa_plan *plan = NULL;
    struct lsa_capture *cap = NULL;
    struct lsa_model *m = tokenizer ? lsa_llama2c_load(model, tokenizer) : lsa_model_load(model);
    if (!m) goto out;
    if (!(plan = lsa_plan_parse(lsa_model_arch(m)->n_layer, order, skip, swap, da, dm))) goto out;
    o.plan = plan;
    /* inputs that are files must exist before any work starts */
    for (int i = 0; i < n_in; i++) {
        if (inputs[i].kind == IN_PROMPT || !strcmp(inputs[i].arg, "-")) continue;
        struct stat st;
        if (stat(inputs[i].arg, &st) != 0) {
            lsa_err(LSA_EIO, "%s: no such file", inputs[i].arg);
            goto out;
        }
    }
    if (!out) {
        default_out(lsa_model_path(m), out_buf, sizeof out_buf);
        mkdir("output", 0755);
        out = out_buf;
    }
    struct progress prog = {.on = !quiet && isatty(2)};
    clock_gettime(CLOCK_MONOTONIC, &prog.t0);
    o.progress = show_progress;
    o.progress_ctx = &prog;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN); /* past a file size limit, a write fails (and says so) instead of killing lsa */
    if (!(cap = lsa_capture_open(out, m, &o))) goto out;
    for (int i = 0; i < n_in && !rc && !interrupted; i++) rc = feed(cap, &inputs[i], field);
    if (prog.on) fputc('\n', stderr);
    if (interrupted) {
        lsa_capture_abort(cap);
        cap = NULL;
        if (o.resume)
            fprintf(stderr, "lsa: interrupted: %s was not written; %s.partial is kept: run the same command "
                            "with --resume to continue\n", out, out);
        else fprintf(stderr, "lsa: interrupted: %s was not written\n", out);
        status = 130;
        goto out;
    }
    if (rc) goto out;
    int64_t n_tok = lsa_capture_n_tokens(cap), n_seq = lsa_capture_n_seqs(cap), n_res = lsa_capture_n_resumed(cap);
    rc = lsa_capture_finish(cap);
    cap = NULL;
    if (rc) goto out;
    struct stat st;
    double secs = elapsed(&prog.t0);
    if (!quiet)
        fprintf(stderr, "lsa capture: %s: %lld tokens in %lld sequences, %.1f MB, %.1f s (%.0f tokens/s)\n", out,
                (long long)n_tok, (long long)n_seq, stat(out, &st) == 0 ? (double)st.st_size / 1e6 : 0.0, secs,
                secs > 0 ? (double)n_tok / secs : 0.0);
    if (!quiet && o.resume)
        fprintf(stderr, "lsa capture: resumed: %lld of the %lld sequences were taken from the interrupted run\n",
                (long long)n_res, (long long)n_seq);
    status = LSA_EXIT_OK;
out:
    if (status == LSA_EXIT_INPUT) lsa_cli_fail();
    lsa_capture_abort(cap);
    lsa_plan_free(plan);
    lsa_model_free(m);
    free(command);
    free(inputs);
    return status;
}
