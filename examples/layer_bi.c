/*
 * layer_bi — the public C API end to end: load a checkpoint, tokenize one prompt with its own tokenizer,
 * run the forward while a hook receives every residual point, and print each layer's Block Influence
 * (ShortGPT: BI_l = 1 - mean over tokens of cos(x_l, x_{l+1}), x_0 the embedding output).
 *
 *   build/examples/layer_bi MODEL "Once upon a time, there was a little girl."
 */
#include "lsa/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct points {
    float *x; /* (n_layer + 1, T, d): embedding, then the residual after each layer */
    int T, d;
};

static int keep(void *ctx, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    struct points *p = ctx;
    int slot = pt == LSA_PT_EMBED ? 0 : pos + 1;
    memcpy(p->x + (size_t)slot * T * d, x, sizeof(float) * (size_t)T * d);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: layer_bi MODEL PROMPT\n");
        return 2;
    }
    struct lsa_model *m = lsa_model_load(argv[1]);
    if (!m) {
        fprintf(stderr, "layer_bi: %s\n", lsa_errmsg());
        return 1;
    }
    const struct lsa_arch *a = lsa_model_arch(m);
    const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
    int32_t *ids = NULL;
    size_t n = 0;
    int status = 1;
    struct lsa_fwd *f = NULL;
    struct points p = {0};
    if (!tok || lsa_tokenizer_encode(tok, argv[2], strlen(argv[2]), true, &ids, &n) || n == 0) {
        fprintf(stderr, "layer_bi: %s\n", tok ? lsa_errmsg() : "the model has no tokenizer");
        goto out;
    }
    p.T = (int)n;
    p.d = a->d_model;
    p.x = malloc(sizeof(float) * (size_t)(a->n_layer + 1) * n * a->d_model);
    if (!p.x || !(f = lsa_fwd_new(m, (int)n))) {
        fprintf(stderr, "layer_bi: %s\n", p.x ? lsa_errmsg() : "out of memory");
        goto out;
    }
    struct lsa_fwd_request req = {.points = LSA_PT_EMBED | LSA_PT_RESID_POST, .hook = keep, .hook_ctx = &p};
    if (lsa_fwd_run(f, ids, (int)n, &req)) {
        fprintf(stderr, "layer_bi: %s\n", lsa_errmsg());
        goto out;
    }
    printf("%s: %d layers, %zu tokens\nlayer  block_influence\n", argv[1], a->n_layer, n);
    for (int l = 0; l < a->n_layer; l++) {
        double sum = 0;
        for (size_t t = 0; t < n; t++) {
            const float *x = p.x + ((size_t)l * n + t) * p.d, *y = x + n * (size_t)p.d;
            double xy = 0, xx = 0, yy = 0;
            for (int i = 0; i < p.d; i++) xy += (double)x[i] * y[i], xx += (double)x[i] * x[i], yy += (double)y[i] * y[i];
            sum += xy / sqrt(xx * yy);
        }
        printf("%5d  %.6f\n", l, 1.0 - sum / (double)n);
    }
    status = 0;
out:
    lsa_fwd_free(f);
    lsa_model_free(m);
    free(ids);
    free(p.x);
    return status;
}
