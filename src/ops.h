/*
 * ops.h — the numeric kernels of the forward (private to src/). ops.c is the only file that includes
 * cblas.h. Matrices are row-major float32 with explicit leading dimensions so that views into fused
 * buffers (q, k, v side by side; gate and up side by side) need no copies.
 */
#ifndef LSA_OPS_H
#define LSA_OPS_H

#include "model_impl.h"

/* The kernels work on the rows they are given. In a forward split by tokens (forward.c) each thread runs
 * them on its own rows with one-thread GEMMs; otherwise the elementwise ones run on one thread between
 * GEMMs that use all of OpenBLAS's threads (an OpenMP team for them was slower at every size: its threads
 * spin after each region and take cores from OpenBLAS's; bench/RESULTS.md). */

/* The GEMMs below go through oneDNN (src/packed.h) on dnnl_threads threads where it can, or with 0 through
 * OpenBLAS alone. */

/* y (T, n_out; ldy) = x (T, n_in; ldx) · Wᵀ + b, with W = w (l->w as float32) laid out as l says: through
 * l->packed when there is one */
void lsa_ops_linear(const struct lsa_linear *l, const float *w, const float *x, int ldx, int n_tok, float *y, int ldy,
                    int dnnl_threads);
/* y (T, d) = norm(x (T, d)) per the arch (RMS or Layer, gemma's 1 + w); x and y may alias. */
void lsa_ops_norm(const struct lsa_arch *a, const struct lsa_norm_w *w, const float *x, float *y, int n_tok);
/* In place over n columns of each of T rows (ld apart). */
void lsa_ops_act(enum lsa_act_kind act, float *x, int n_tok, int n, int ld);
/* out[t, j] (ld_out apart) = act(x[t, j]) * x[t, off + j] for j < n (gated MLP over a [gate | up] buffer).
 * out may be x (ld_out = ld); the gate columns of x are scratch. */
void lsa_ops_act_mul(enum lsa_act_kind act, float *x, int n_tok, int n, int ld, int off, float *out, int ld_out);
/*
 * Rotate the first rope_dims of each of n_heads heads in place (half-split, as transformers'
 * rotate_half). x: row t at x + t*ld, head h at + h*head_stride. cos/sin: (T, rope_dims/2).
 */
void lsa_ops_rope(float *x, int ld, int head_stride, int n_heads, int n_tok, int rope_dims, const float *cos_t,
                  const float *sin_t);
/* Query rows per attention block. */
#define LSA_ATTN_BLOCK 128
/* Floats of scratch lsa_ops_attention needs for n_tok tokens and heads of d_head, a thread. */
size_t lsa_ops_attention_scratch(int n_tok, int d_head);
/* n areas of len floats, one for each thread that may share an attention call. */
struct lsa_att_scratch {
    float *p;
    size_t len;
    int n;
};

/*
 * Causal multi-head attention. Head h reads q + h*q_hs, kv head h / (n_head / n_head_kv) from k and v
 * at + kh*kv_hs; out head h to out + h*d_head (ld_out). window > 0 limits each query to its last window
 * keys. Only query rows q0..n_tok-1 and heads h0..h1-1 are computed (each row reads keys from 0); row t
 * of q, k, v and out is at t*ld as for q0 = 0. Rows are taken in blocks of LSA_ATTN_BLOCK from q0: with
 * q0 a multiple of it, every row comes out as from the whole call, bit for bit. scr: areas of at least
 * lsa_ops_attention_scratch(n_tok, d_head) floats. dnnl_threads > 0: oneDNN's GEMMs or the fused kernel
 * (src/attn_fused.h) on up to that many OpenMP threads (and scr->n); 0: OpenBLAS's threads, or the fused
 * kernel on one thread when OpenBLAS has only one.
 */
void lsa_ops_attention(const float *q, int ldq, int q_hs, const float *k, const float *v, int ldkv, int kv_hs,
                       float *out, int ld_out, int q0, int n_tok, int h0, int h1, int n_head, int n_head_kv, int d_head,
                       float scale, int window, const struct lsa_att_scratch *scr, int dnnl_threads);
/* logits (n_tok, n_rows; ld) = h (n_tok, d) · headᵀ for n_rows rows of the head (a vocabulary slice) */
void lsa_ops_logits(const float *head, int n_rows, int d, const float *h, int n_tok, float *logits, int ld);
/* Threads OpenBLAS may use from now on (n <= 0: unchanged); returns the number before. */
int lsa_ops_blas_threads(int n);

#endif
