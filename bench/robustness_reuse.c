/*
 * robustness_reuse — how much prefix reuse saves in the robustness sweep: times the delete + adjacent
 * swap sweep (no sub-block, curve or painters variants) over the same windows with and without reuse,
 * checks that both give the same numbers, and prints one line each.
 *
 *   robustness_reuse MODEL CAPTURE.h5 [MAX_TOKENS [REPEATS]]
 *
 * The windows are the capture's own sequences, the first MAX_TOKENS tokens (default 8192, as lsa report).
 * Each mode runs REPEATS times (default 3), alternating, and the best time is reported.
 */
#include "robustness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: robustness_reuse MODEL CAPTURE.h5 [MAX_TOKENS [REPEATS]]\n");
        return 2;
    }
    int64_t max_tokens = argc > 3 ? atoll(argv[3]) : 8192;
    int repeats = argc > 4 ? atoi(argv[4]) : 3;
    struct lsa_model *m = lsa_model_load(argv[1]);
    struct lsa_robust_windows *w = m ? lsa_robust_windows_capture(argv[2], max_tokens) : NULL;
    if (!m || !w) {
        fprintf(stderr, "robustness_reuse: %s\n", lsa_errmsg());
        return 1;
    }
    int L = lsa_model_arch(m)->n_layer;
    double best[2] = {INFINITY, INFINITY}, nll[2] = {0, 0};
    for (int k = 0; k < 2 * repeats; k++) {
        int reuse = k % 2 == 0;
        struct lsa_robust_opts o = lsa_robust_opts_default();
        o.max_tokens = 0; /* the windows are already cut */
        o.sublayers = o.curves = o.painters = false;
        o.reuse_prefix = reuse;
        struct lsa_robust_result *r;
        double t0 = now();
        if (lsa_robust_run(m, w->tokens, w->offsets, w->n_seq, &o, &r)) {
            fprintf(stderr, "robustness_reuse: %s\n", lsa_errmsg());
            return 1;
        }
        double t = now() - t0, s = 0;
        for (int i = 0; i < L; i++) s += r->del[i].nll + (i + 1 < L ? r->swap[i].nll : 0);
        if (t < best[reuse]) best[reuse] = t;
        nll[reuse] = s;
        lsa_robust_free(r);
    }
    int n_var = 2 * L - 1;
    printf("model %s: %d layers, %lld tokens in %d windows, %d variants (delete %d + swap %d), best of %d\n",
           argv[1], L, (long long)w->n_tokens, w->n_seq, n_var, L, L - 1, repeats);
    printf("with reuse:    %.2f s (%.0f tokens/s over all variants)\n", best[1], (double)w->n_tokens * n_var / best[1]);
    printf("without reuse: %.2f s (%.0f tokens/s over all variants)\n", best[0], (double)w->n_tokens * n_var / best[0]);
    printf("speed-up %.2fx; sum of variant NLLs %s (%.9f vs %.9f)\n", best[0] / best[1],
           nll[0] == nll[1] ? "identical" : "DIFFER", nll[1], nll[0]);
    lsa_robust_windows_free(w);
    lsa_model_free(m);
    return nll[0] == nll[1] ? 0 : 1;
}
