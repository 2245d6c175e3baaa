/*
 * run.c — `lsa run MODEL (--prompt TEXT | --text FILE) [plan options]`: tokenize, run the forward with an
 * optional layer plan, print each token with its NLL and the model's top-1 prediction, then the mean
 * NLL and perplexity. The quick check that a checkpoint loads and behaves.
 */
#include "cli/cli.h"
#include "lsa/forward.h"
#include "lsa/llama2c.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: lsa run MODEL (--prompt TEXT | --text FILE) [options]\n"
    "\n"
    "  --prompt TEXT       text to run\n"
    "  --text FILE         run the file's whole content (- for standard input)\n"
    "  --no-bos            do not let the tokenizer prepend BOS\n"
    "  --order LIST        layers to run, in order, e.g. 0-5,7,6,8-11\n"
    "  --skip LIST         layers to leave out\n"
    "  --swap A:B[,C:D]    exchange layers\n"
    "  --drop-attn LIST    skip the attention sub-block of these layers\n"
    "  --drop-mlp LIST     skip the MLP sub-block of these layers\n"
    "  --tokenizer FILE    tokenizer.bin of a llama2.c .bin MODEL (default: tokenizer.bin or tok<vocab>.bin beside it)\n"
    "  --quiet             print only the summary line\n";

int lsa_cli_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"prompt", required_argument, 0, 'p'}, {"text", required_argument, 0, 't'},
        {"no-bos", no_argument, 0, 'B'},       {"order", required_argument, 0, 'o'},
        {"skip", required_argument, 0, 's'},   {"swap", required_argument, 0, 'w'},
        {"drop-attn", required_argument, 0, 'a'}, {"drop-mlp", required_argument, 0, 'm'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {"tokenizer", required_argument, 0, 'k'},
        {0, 0, 0, 0},
    };
    const char *tokenizer = NULL;
    const char *prompt = NULL, *file = NULL, *order = NULL, *skip = NULL, *swap = NULL, *da = NULL, *dm = NULL;
    bool bos = true, quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p': prompt = optarg; break;
        case 't': file = optarg; break;
        case 'B': bos = false; break;
        case 'o': order = optarg; break;
        case 's': skip = optarg; break;
        case 'w': swap = optarg; break;
        case 'a': da = optarg; break;
        case 'm': dm = optarg; break;
        case 'q': quiet = true; break;
        case 'k': tokenizer = optarg; break;
        case 'h': fputs(help, stdout); return LSA_EXIT_OK;
        default: fputs(help, stderr); return LSA_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) return lsa_cli_usage("run: expected one MODEL argument (see lsa run --help)");
    if (!!prompt == !!file) return lsa_cli_usage("run: give exactly one of --prompt or --text");

    int status = LSA_EXIT_INPUT;
    char *text = NULL;
    int32_t *ids = NULL, *top = NULL;
    float *nll = NULL;
    struct lsa_plan *plan = NULL;
    struct lsa_fwd *f = NULL;
    size_t len = 0, n = 0;
    struct lsa_model *m = tokenizer ? lsa_llama2c_load(argv[optind], tokenizer) : lsa_model_load(argv[optind]);
    if (!m) goto out;
    const struct lsa_arch *a = lsa_model_arch(m);
    const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
    if (!tok) {
        lsa_err(LSA_EUNSUP, "%s: no tokenizer found (tokenizer.json beside a model folder, GGUF tokenizer metadata, or "
                "--tokenizer / tokenizer.bin for a llama2.c .bin)", lsa_model_path(m));
        goto out;
    }
    if (file) {
        if (lsa_read_file(file, LSA_CLI_TEXT_MAX, &text, &len)) goto out;
    } else {
        len = strlen(prompt);
    }
    if (lsa_tokenizer_encode(tok, text ? text : prompt, len, bos, &ids, &n)) {
        lsa_err_wrap(LSA_ETEXT, "%s", file ? file : "--prompt");
        goto out;
    }
    if (n == 0) {
        lsa_err(LSA_ETEXT, "%s: the text gives no tokens", file ? file : "--prompt");
        goto out;
    }
    if (a->pos == LSA_POS_LEARNED && n > (size_t)a->n_ctx) n = (size_t)a->n_ctx;
    if (!(plan = lsa_plan_parse(a->n_layer, order, skip, swap, da, dm))) goto out;
    if (!(f = lsa_fwd_new(m, (int)n))) goto out;
    nll = calloc(n, sizeof *nll);
    top = calloc(n, sizeof *top);
    if (!nll || !top) {
        lsa_err(LSA_ENOMEM, "out of memory");
        goto out;
    }
    struct lsa_fwd_request req = {.plan = plan, .nll = nll, .top_k = 1, .top_ids = top};
    if (lsa_fwd_run(f, ids, (int)n, &req)) goto out;
    double sum = 0;
    for (size_t t = 0; t + 1 < n; t++) sum += nll[t];
    if (!quiet) {
        printf("%6s %8s %10s  %-20s %s\n", "pos", "id", "nll(next)", "token", "top-1 next");
        for (size_t t = 0; t < n; t++) {
            const char *piece = lsa_tokenizer_piece(tok, ids[t]), *pred = lsa_tokenizer_piece(tok, top[t]);
            if (t + 1 < n)
                printf("%6zu %8d %10.4f  %-20s %s\n", t, ids[t], nll[t], piece ? piece : "?", pred ? pred : "?");
            else
                printf("%6zu %8d %10s  %-20s %s\n", t, ids[t], "", piece ? piece : "?", pred ? pred : "?");
        }
    }
    char pl[256];
    lsa_plan_format(plan, pl, sizeof pl);
    double mean = n > 1 ? sum / (double)(n - 1) : 0;
    printf("tokens %zu  mean nll %.4f  perplexity %.3f  plan %s\n", n, mean, exp(mean), pl);
    status = LSA_EXIT_OK;
out:
    if (status) lsa_cli_fail();
    lsa_fwd_free(f);
    lsa_plan_free(plan);
    lsa_model_free(m);
    free(text);
    free(ids);
    free(nll);
    free(top);
    return status;
}
