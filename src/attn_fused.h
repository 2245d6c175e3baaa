/*
 * attn_fused.h — causal attention of one block of query rows and one head in a single pass (AVX-512; private
 * to src/, called by lsa_ops_attention). attn_fused.c says why.
 */
#ifndef LSA_ATTN_FUSED_H
#define LSA_ATTN_FUSED_H

#include "ops.h"

#include <stdbool.h>
#include <stddef.h>

/* Whether lsa_attn_fused can run heads of d_head here: a multiple of 16, a CPU with AVX-512F, and
 * LSA_FUSED_ATTN not set to 0 (which keeps the GEMM route, for comparison). */
bool lsa_attn_fused_ok(int d_head);
/* Turns the fused route on (where the CPU has it) or off for the rest of the process, whatever
 * LSA_FUSED_ATTN says: for tests that compare the routes. */
void lsa_attn_fused_enable(bool on);
/* Floats of scratch lsa_attn_fused needs for up to n_tok keys. */
size_t lsa_attn_fused_scratch(int n_tok, int d_head);
/*
 * out rows i0..i1-1 (at most LSA_ATTN_BLOCK; ld_out apart) = softmax(scale · q kᵀ, causal, window > 0:
 * the last window keys only) · v, for one head: q, k, v and out point at the head's first column of row 0,
 * rows ldq / ldkv apart.
 */
void lsa_attn_fused(const float *q, int ldq, const float *k, const float *v, int ldkv, float *out, int ld_out, int i0,
                    int i1, int d_head, float scale, int window, float *scratch);

#endif
