/*
 * peak — OpenBLAS sgemm GFLOP/s on this machine at the current thread count: the ceiling for an f32
 * CPU forward. Usage: peak [N=2048] [reps=5]. Prints the best of reps for C = A·Bᵀ, N×N×N.
 */
#include <cblas.h>
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
    int n = argc > 1 ? atoi(argv[1]) : 2048, reps = argc > 2 ? atoi(argv[2]) : 5;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = now() - t0;
        if (r && t < best) best = t; /* the first run warms up */
    }
    printf("{\"sgemm_n\": %d, \"threads\": %d, \"gflops\": %.2f}\n", n, openblas_get_num_threads(),
           2.0 * n * n * (double)n / best / 1e9);
    free(a), free(b), free(c);
    return 0;
}
