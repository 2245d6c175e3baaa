/*
 * bench_forward — forward throughput of lsa on one model: tokens/s and effective GFLOP/s
 * (2 × matmul params × tokens + attention 2·2·T²·d_head·heads·layers / 2 for the causal half, / time),
 * keeping every hidden state as PyTorch's output_hidden_states does.
 * Usage: bench_forward MODEL T [reps=3]. Prints one JSON line.
 */
#include "lsa/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

struct keep {
    float *hs;
    size_t slot;
};

static int hook(void *ctx, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    struct keep *k = ctx;
    (void)pt;
    (void)pos;
    memcpy(k->hs + k->slot++ * (size_t)T * d, x, (size_t)T * d * sizeof *x);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_forward MODEL T [reps]\n");
        return 2;
    }
    int T = atoi(argv[2]), reps = argc > 3 ? atoi(argv[3]) : 3;
    double t0 = now();
    struct lsa_model *m = lsa_model_load(argv[1]);
    if (!m) {
        fprintf(stderr, "bench_forward: %s\n", lsa_errmsg());
        return 1;
    }
    double t_load = now() - t0;
    const struct lsa_arch *a = lsa_model_arch(m);
    struct lsa_fwd *f = lsa_fwd_new(m, T);
    if (!f) {
        fprintf(stderr, "bench_forward: %s\n", lsa_errmsg());
        return 1;
    }
    int32_t *ids = malloc(sizeof *ids * T);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 7919u + 13u) % (unsigned)a->n_vocab);
    struct keep k = {.hs = malloc(sizeof(float) * (size_t)(a->n_layer + 2) * T * a->d_model)};
    float *nll = malloc(sizeof(float) * T);
    struct lsa_fwd_request req = {.points = LSA_PT_EMBED | LSA_PT_RESID_POST | LSA_PT_FINAL_NORM, .hook = hook,
                                  .hook_ctx = &k, .nll = nll};
    double best = 1e30, warm = now();
    /* Warm up for half a second first (forward_torch.py does the same): OpenBLAS's threads spin for about
     * 0.1 s after they start, taking a core from the forward's own threads, and caches fill. Steady state
     * is what a capture of a corpus runs in. */
    for (int r = -1; r < reps; r++) {
        k.slot = 0;
        double s = now();
        if (lsa_fwd_run(f, ids, T, &req)) {
            fprintf(stderr, "bench_forward: %s\n", lsa_errmsg());
            return 1;
        }
        double e = now() - s;
        if (r < 0 && now() - warm < 0.5) r--; /* still warming up */
        else if (r >= 0 && e < best) best = e;
    }
    int64_t d = a->d_model, q = (int64_t)a->n_head * a->d_head, kv = (int64_t)a->n_head_kv * a->d_head;
    double mat = (double)a->n_layer * (double)(d * (q + 2 * kv) + q * d + (a->gated_mlp ? 3 : 2) * d * a->d_ff) +
                 (double)a->n_vocab * d;
    double attn = (double)a->n_layer * a->n_head * 2.0 * 2.0 * (double)T * T * a->d_head / 2.0;
    double flops = 2.0 * mat * T + attn;
    printf("{\"model\": \"%s\", \"d_model\": %d, \"n_layer\": %d, \"T\": %d, \"seconds\": %.5f, \"tokens_per_s\": %.1f, "
           "\"gflops\": %.2f, \"load_s\": %.3f}\n",
           argv[1], a->d_model, a->n_layer, T, best, T / best, flops / best / 1e9, t_load);
    lsa_fwd_free(f);
    lsa_model_free(m);
    free(ids), free(k.hs), free(nll);
    return 0;
}
