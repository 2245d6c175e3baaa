/*
 * similarity_pass.h — the one streaming pass behind lsa_similarity_run (private to analyses/): per-token
 * cosines and angles, minibatch HSIC_1 and the tokens kept for the exact CKA, fed one block at a time.
 *
 * Precision: every product of two stored activations (float32) is exact in float64, and every sum the
 * results depend on is taken in float64, except, with f32 set, inside the CKA GEMMs: centred values
 * rounded to float32, then float32 sums over at most D (minibatch Grams) or LSA_SIM_KBLOCK terms (the
 * products of two minibatch Grams; the exact CKA's tokens), summed in float64 from one call to the next.
 * That costs about 1e-6 in the CKA values and halves their time.
 */
#ifndef LSA_ANALYSES_SIMILARITY_PASS_H
#define LSA_ANALYSES_SIMILARITY_PASS_H

#include <stdbool.h>
#include <stdint.h>

/* tokens per float32 GEMM in the exact CKA before its float64 accumulation */
#define LSA_SIM_KBLOCK 512
/* slices of the packed Grams that tr(K~_i K~_j) is summed from, in parallel */
#define LSA_SIM_SLICES 8
/* tokens whose cosines and angles are computed in parallel, then summed in order */
#define LSA_SIM_TCHUNK 256
/* most minibatches held and computed together (as many as there are threads, up to this) */
#define LSA_SIM_GROUP 4

struct lsa_sim_pass {
    int n, D;
    bool f32;
    double *cos_sum, *ang_sum, *last_sum, *norm_sum; /* (n, n) upper triangles, (n) */
    double *tc, *ta, *tn; /* per-token values of LSA_SIM_TCHUNK tokens: (pairs, chunk) x 2, (n, chunk) */
    /* minibatch CKA */
    int b, fill;            /* minibatch size, tokens in the current one */
    int group, held;        /* minibatches computed together, full ones held (fill: of the next) */
    float *mb;              /* (group, n, b, D) the held minibatches as stored */
    int threads;            /* OpenMP threads the scratch below is sized for */
    void *xc;               /* (threads, b, D) one centred point, float or double */
    void *kt;               /* (threads, b, b) its Gram, float or double */
    double *mean;           /* (threads, D) */
    int64_t kp;             /* b (b - 1) / 2 */
    void *kg;               /* (group, n, kp) strict upper triangles of the Grams, float or double */
    double *rs, *tot;       /* (group, n, b) their row sums without the diagonal, (n) */
    double *trp;            /* (group, LSA_SIM_SLICES, n, n) tr from slices of kg's columns */
    float *trs;             /* (threads, n, n) float32 partial products of a slice */
    double *tr, *rr, *hsic; /* (n, n): tr(K~_i K~_j), (K~_i 1)^T (K~_j 1), sum of HSIC_1 */
    int64_t n_batches;
    /* exact CKA */
    int64_t cap, kept; /* token cap, tokens kept so far */
    float *z32;        /* (cap, n * D) with f32 */
    double *z64;       /* (cap, n * D) without */
    /* seconds spent in the per-token part and in the minibatches */
    double token_s, minibatch_s;
};

/* Zeroed sums and every buffer the pass needs; lsa_sim_pass_free frees them (also after a failure). */
int lsa_sim_pass_alloc(struct lsa_sim_pass *s, int n, int D, int b, int64_t cap, bool f32);
void lsa_sim_pass_free(struct lsa_sim_pass *s);
/* T consecutive tokens: blk (n, T, D), point-major as the capture reader gives them; last[k] is 1
 * where token k ends a sequence. */
void lsa_sim_pass_block(struct lsa_sim_pass *s, const float *blk, int64_t T, const unsigned char *last);
/* Computes the full minibatches still held (call once the last block is in). */
void lsa_sim_pass_flush(struct lsa_sim_pass *s);
/* Monotonic seconds, for the timings the pass and lsa_similarity_run keep. */
double lsa_sim_now(void);
/* Exact linear CKA (n, n) of the kept tokens into out (centres the kept tokens in place). */
int lsa_sim_pass_exact(struct lsa_sim_pass *s, double *out);

#endif
