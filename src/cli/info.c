/*
 * info.c — `lsa info MODEL`: what a checkpoint is, without running it.
 */
#include "cli/cli.h"
#include "lsa/capture.h"
#include "lsa/h5.h"
#include "lsa/llama2c.h"
#include "lsa/model.h"

#include <stdlib.h>

#include <string.h>

static const char *norm_name(const struct lsa_arch *a)
{
    if (a->norm == LSA_NORM_LAYER) return "LayerNorm";
    return a->norm_plus_one ? "RMSNorm (1+w)" : "RMSNorm";
}

static const char *act_name(enum lsa_act_kind k)
{
    switch (k) {
    case LSA_ACT_SILU: return "silu";
    case LSA_ACT_GELU: return "gelu (erf)";
    case LSA_ACT_GELU_TANH: return "gelu (tanh)";
    case LSA_ACT_RELU: return "relu";
    }
    return "?";
}

/* Summary of a capture file written by lsa capture. */
static int info_capture(const char *path)
{
    struct lsa_h5 *f = lsa_h5_open(path);
    if (!f) return lsa_cli_fail();
    char *fmt = NULL, *model = NULL, *type = NULL, *dtype = NULL, *created = NULL, *cmd = NULL;
    int64_t *ver = NULL, *order = NULL;
    size_t n, n_order = 0;
    int status = LSA_EXIT_INPUT;
    if (lsa_h5_attr_str(f, "/", "format", &fmt) || strcmp(fmt, LSA_CAPTURE_FORMAT) != 0) {
        lsa_err(LSA_EFORMAT, "%s: not an lsa capture (no format=\"%s\" attribute)", path, LSA_CAPTURE_FORMAT);
        goto out;
    }
    if (lsa_h5_attr_i64(f, "/", "format_version", &ver, &n) || lsa_h5_attr_str(f, "/", "model_path", &model) ||
        lsa_h5_attr_str(f, "/", "model_type", &type) || lsa_h5_attr_str(f, "/", "dtype", &dtype) ||
        lsa_h5_attr_str(f, "/", "created", &created) || lsa_h5_attr_str(f, "/", "command", &cmd) ||
        lsa_h5_attr_i64(f, "/", "layer_order", &order, &n_order))
        goto out;
    int rank;
    int64_t resid[LSA_H5_MAX_RANK], offs[LSA_H5_MAX_RANK];
    if (lsa_h5_shape(f, "/resid", &rank, resid) || rank != 3 || lsa_h5_shape(f, "/seq_offsets", &rank, offs))
        goto out;
    printf("capture       %s (format %s v%lld)\n", path, fmt, (long long)ver[0]);
    printf("model         %s (%s)\n", model, type);
    printf("tokens        %lld in %lld sequences\n", (long long)resid[1], (long long)offs[0] - 1);
    printf("resid         %lld points x %lld tokens x %lld features, %s\n", (long long)resid[0], (long long)resid[1],
           (long long)resid[2], dtype);
    printf("layer order   ");
    for (size_t i = 0; i < n_order; i++) printf("%s%lld", i ? "," : "", (long long)order[i]);
    printf("\n");
    static const char *opt[] = {"/resid_mid", "/attn_out", "/mlp_out", "/logits"};
    printf("also          resid_final, nll");
    for (int i = 0; i < 4; i++)
        if (lsa_h5_exists(f, opt[i])) printf(", %s", opt[i] + 1);
    printf("\ncreated       %s\ncommand       %s\n", created, cmd);
    status = LSA_EXIT_OK;
out:
    if (status) lsa_cli_fail();
    free(fmt), free(model), free(type), free(dtype), free(created), free(cmd), free(ver), free(order);
    lsa_h5_close(f);
    return status;
}

int lsa_cli_info(int argc, char **argv)
{
    const char *tokenizer = NULL;
    if (argc == 4 && !strcmp(argv[2], "--tokenizer")) {
        tokenizer = argv[3];
        argc = 2;
    }
    if (argc != 2 || !strcmp(argv[1], "--help")) {
        printf("usage: lsa info MODEL [--tokenizer FILE] | FILE.h5\n\nPrints the architecture, dimensions, parameter "
               "count, weight dtype and tokenizer of MODEL (a Hugging Face folder, a cached model id, a GGUF file or a "
               "llama2.c .bin, whose tokenizer.bin --tokenizer names), or a summary of a capture file.\n");
        return argc == 2 ? LSA_EXIT_OK : LSA_EXIT_USAGE;
    }
    size_t len = strlen(argv[1]);
    if (len > 3 && (!strcmp(argv[1] + len - 3, ".h5") || !strcmp(argv[1] + len - 5, ".hdf5")))
        return info_capture(argv[1]);
    struct lsa_model *m = tokenizer ? lsa_llama2c_load(argv[1], tokenizer) : lsa_model_load(argv[1]);
    if (!m) return lsa_cli_fail();
    const struct lsa_arch *a = lsa_model_arch(m);
    const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
    printf("model         %s\n", lsa_model_path(m));
    printf("architecture  %s\n", a->model_type);
    printf("layers        %d\n", a->n_layer);
    printf("d_model       %d\n", a->d_model);
    printf("heads         %d (kv %d), d_head %d\n", a->n_head, a->n_head_kv, a->d_head);
    printf("d_ff          %d (%s, %s)\n", a->d_ff, a->gated_mlp ? "gated" : "plain", act_name(a->act));
    printf("norm          %s, eps %g\n", norm_name(a), (double)a->norm_eps);
    if (a->pos == LSA_POS_ROPE)
        printf("positions     RoPE, theta %g, %d of %d dims rotated%s\n", a->rope_theta, a->rope_dims, a->d_head,
               a->rope_linear_factor != 1.0 ? ", linear scaling" : "");
    else
        printf("positions     learned, %d\n", a->n_ctx);
    printf("residual      %s\n", a->parallel_residual ? "parallel (attn and mlp read the same input)" : "sequential");
    printf("vocab         %d, head %s\n", a->n_vocab, a->tied_head ? "tied to embeddings" : "untied");
    printf("context       %d\n", a->n_ctx);
    printf("parameters    %lld\n", (long long)lsa_model_n_params(m));
    printf("dtype         %s\n", a->dtype);
    if (tok)
        printf("tokenizer     %s, %d ids, bos %d%s\n", lsa_tokenizer_kind_name(tok), lsa_tokenizer_n_vocab(tok),
               lsa_tokenizer_bos(tok), lsa_tokenizer_adds_bos(tok) ? " (prepended)" : "");
    else
        printf("tokenizer     none found\n");
    lsa_model_free(m);
    return LSA_EXIT_OK;
}
