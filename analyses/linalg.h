/*
 * linalg.h — the few dense kernels the analyses need, on row-major float64 arrays (and float32 where the
 * analysis accumulates the float32 results in float64 itself). linalg.c is the only
 * analyses file that includes cblas.h (OpenBLAS), as src/ops.c is for the runtime.
 */
#ifndef LSA_ANALYSES_LINALG_H
#define LSA_ANALYSES_LINALG_H

/* c (n, n) = beta * c + a a^T, a (n, k) with row stride lda. Both triangles of c are filled. */
void lsa_la_gram(int n, int k, const double *a, int lda, double beta, double *c);
/* c (m, n) = beta * c + a^T b, a (k, m) with stride lda, b (k, n) with stride ldb, c with stride ldc. */
void lsa_la_gemm_tn(int m, int n, int k, const double *a, int lda, const double *b, int ldb, double beta, double *c,
                    int ldc);
/* Float32 versions: c (n, n) = a a^T, upper triangle only; c (m, n) = a^T b. */
void lsa_la_sgram_upper(int n, int k, const float *a, int lda, float *c);
void lsa_la_sgemm_tn(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc);

/* Set the BLAS thread count (process-wide) and return the previous one. */
int lsa_la_threads(int n);

#endif
