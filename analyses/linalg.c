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

void lsa_la_sgram_upper(int n, int k, const float *a, int lda, float *c)
{
    if (n > 0) cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, 1.0f, a, lda, 0.0f, c, n);
}

void lsa_la_sgemm_tn(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc)
{
    if (m > 0 && n > 0) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}

int lsa_la_threads(int n)
{
    int was = openblas_get_num_threads();
    openblas_set_num_threads(n);
    return was;
}
