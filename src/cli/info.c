/*
 * info.c — `lsa info MODEL`: what a checkpoint is, without running it.
 */
#include "cli/cli.h"
#include "lsa/model.h"

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

int lsa_cli_info(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "--help")) {
        printf("usage: lsa info MODEL\n\nPrints the architecture, dimensions, parameter count, weight dtype and "
               "tokenizer of MODEL (a Hugging Face folder or a cached model id).\n");
        return argc == 2 ? LSA_EXIT_OK : LSA_EXIT_USAGE;
    }
    struct lsa_model *m = lsa_model_load(argv[1]);
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
