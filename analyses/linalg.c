/*
 * linalg.c — thin wrappers over CBLAS for the analyses (Gram matrices, cross products). The only
 * analyses file that includes cblas.h; swapping the BLAS touches this file and src/ops.c.
 */
#include "linalg.h"

#include <cblas.h>

void lsa_la_gram(int n, int k, const double *a, int lda, double beta, double *c)
{
    if (n <= 0) return;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, 1.0, a, lda, beta, c, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) c[(long)i * n + j] = c[(long)j * n + i];
}

void lsa_la_gemm_tn(int m, int n, int k, const double *a, int lda, const double *b, int ldb, double beta, double *c,
                    int ldc)
{
    if (m <= 0 || n <= 0) return;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

double lsa_la_sumsq(long n, const double *x)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

int lsa_la_threads(int n)
{
    int was = openblas_get_num_threads();
    openblas_set_num_threads(n);
    return was;
}
