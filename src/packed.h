/*
 * packed.h — a linear layer's weights packed once for oneDNN's matmul, and oneDNN's sgemm for the
 * attention (private to src/; packed.c is the only file that includes dnnl.h).
 *
 * OpenBLAS packs the weights of a GEMM into its blocked layout at every call. For a small model split
 * between threads (forward.c) that packing was 15-20% of the forward's cycles, since each thread packs every
 * matrix for its few rows. oneDNN keeps the weights in its kernels' layout from the start, and its
 * brgemm kernels run a forward's shapes faster than OpenBLAS's sgemm: 15-40% at d_model 128, and past
 * OpenBLAS's own 2048³ rate at d_model 1024-2048 (bench/RESULTS.md). Used where oneDNN has those kernels
 * (AVX-512 machines); elsewhere lsa_packed_new says no and the layer stays with OpenBLAS.
 *
 * Threads: each call runs on an OpenMP team of the n_threads the caller passes (OpenBLAS's setting at the
 * call: 1 in the split forward, whose threads share the rows), and puts the caller's OpenMP setting back.
 * A forward that runs its linears here runs its attention here too, so that OpenMP's threads and
 * OpenBLAS's do not take turns spinning beside each other.
 */
#ifndef LSA_PACKED_H
#define LSA_PACKED_H

#include <stdbool.h>

struct lsa_packed;

/* false when the user set LSA_ONEDNN=0: every GEMM then goes through OpenBLAS alone */
bool lsa_onednn_wanted(void);

/*
 * A packed copy of W, the weights of a linear layer with n_in inputs and n_out outputs: w is (n_out, n_in),
 * a torch Linear's layout, or (n_in, n_out) with in_out (GPT-2's Conv1D). bias: (n_out) added to every row
 * of the output, or NULL; it is read at each call, not copied, and must outlive the packed layer. NULL when
 * oneDNN has no brgemm kernel for it on this machine, or on any failure (no lsa error: the caller keeps
 * OpenBLAS). Free with lsa_packed_free.
 */
struct lsa_packed *lsa_packed_new(const float *w, int n_in, int n_out, bool in_out, const float *bias);
void lsa_packed_free(struct lsa_packed *p); /* NULL ok */

/*
 * y (n_tok, n_out; ldy) = x (n_tok, n_in; ldx) · W (+ bias) on n_threads. 0 when done; nonzero when oneDNN
 * declined or failed, and the caller runs the call with OpenBLAS (which writes all of y). Safe to call
 * from several threads at once.
 */
int lsa_packed_run(struct lsa_packed *p, const float *x, int ldx, int n_tok, float *y, int ldy, int n_threads);

/*
 * c (m, n; ldc) = alpha · a (m, k; lda) · b, with b (k, n; ldb), or with b_t its transpose given as (n, k; ldb),
 * by oneDNN's own sgemm on n_threads. On the attention's shapes (128 query rows, d_head 64, 128 to 1024
 * keys) it ran 4-15% faster than OpenBLAS on one thread (bench/RESULTS.md). 0 when done; nonzero when
 * oneDNN cannot (or LSA_ONEDNN=0), and the caller runs the call with OpenBLAS. Safe to call from several
 * threads at once.
 */
int lsa_dnnl_gemm(bool b_t, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                  float *c, int ldc, int n_threads);

#endif
