/*
 * peak — sgemm GFLOP/s on this machine at the current thread count: the ceiling for an f32 CPU forward.
 * Usage: peak [N=2048] [reps=5] [M K [nt|nn] [copies=1]]. Prints the best of reps for C = A·Bᵀ, N×N×N, by
 * OpenBLAS and by oneDNN's matmul with B packed once as lsa packs a layer's weights (src/packed.h),
 * "gflops" being the better of the two (oneDNN passes OpenBLAS on AVX-512 machines); or, with M K,
 * OpenBLAS alone on (M, N) = (M, K)·W, the shape of a linear layer on M tokens (bench/gemm_shapes.sh):
 * W stored (N, K) and used transposed ("nt", a torch Linear's layout) or stored (K, N) ("nn", the layout
 * lsa keeps a small model's layers in). copies > 1 cycles through that many weight matrices, so that each
 * comes from memory, not cache, as a forward's weights do (bench/weight_layout.sh).
 */
#include "packed.h"

#include <cblas.h>
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

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2048, reps = argc > 2 ? atoi(argv[2]) : 5;
    int m = argc > 4 ? atoi(argv[3]) : n, k = argc > 4 ? atoi(argv[4]) : n;
    int nn = argc > 5 && strcmp(argv[5], "nn") == 0, copies = argc > 6 ? atoi(argv[6]) : 1;
    if (n < 1 || m < 1 || k < 1 || reps < 1 || copies < 1) {
        fprintf(stderr, "usage: peak [N=2048] [reps=5] [M K [nt|nn] [copies=1]]\n");
        return 2;
    }
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k * copies),
          *c = malloc(sizeof(float) * m * n);
    if (!a || !b || !c) {
        fprintf(stderr, "peak: out of memory\n");
        return 1;
    }
    for (long i = 0; i < (long)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (long i = 0; i < (long)n * k * copies; i++) b[i] = (float)(i % 5) * 0.1f;
    /* small shapes are timed in batches of calls, so that each timing spans a millisecond or more */
    int batch = (int)(2e6 / ((double)m * n * k)) + 1;
    if (batch < copies) batch = copies;
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        for (int i = 0; i < batch; i++) {
            const float *w = b + (size_t)(i % copies) * n * k;
            if (nn) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, w, n, 0.0f, c, n);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
        }
        double t = (now() - t0) / batch;
        if (r && t < best) best = t; /* the first run warms up */
    }
    if (argc > 4)
        printf("{\"m\": %d, \"n\": %d, \"k\": %d, \"layout\": \"%s\", \"copies\": %d, \"threads\": %d, \"gflops\": %.2f}\n",
               m, n, k, nn ? "nn" : "nt", copies, openblas_get_num_threads(), 2.0 * m * n * (double)k / best / 1e9);
    else {
        double blas = 2.0 * n * n * (double)n / best / 1e9, dnnl = 0;
        struct lsa_packed *p = lsa_packed_new(b, n, n, false, NULL);
        for (int r = 0; p && r < reps + 1; r++) {
            double t0 = now();
            if (lsa_packed_run(p, a, n, n, c, n, openblas_get_num_threads())) break;
            double g = 2.0 * n * n * (double)n / (now() - t0) / 1e9;
            if (r && g > dnnl) dnnl = g;
        }
        lsa_packed_free(p);
        printf("{\"sgemm_n\": %d, \"threads\": %d, \"gflops\": %.2f, \"openblas_gflops\": %.2f, "
               "\"onednn_gflops\": %.2f}\n",
               n, openblas_get_num_threads(), blas > dnnl ? blas : dnnl, blas, dnnl);
    }
    free(a), free(b), free(c);
    return 0;
}
