/*
 * ops.c — GEMMs through OpenBLAS (the only cblas.h include) and the elementwise kernels. Reductions
 * (norm statistics, softmax sums) accumulate in double: cheap, and it keeps lsa within rounding of
 * transformers' float32 results regardless of summation order.
 */
#include "ops.h"
#include "attn_fused.h"
#include "packed.h"
#include "vmath.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void lsa_ops_linear(const struct lsa_linear *l, const float *w, const float *x, int ldx, int n_tok, float *y, int ldy,
                    int dnnl_threads)
{
    if (l->packed && dnnl_threads > 0 && !lsa_packed_run(l->packed, x, ldx, n_tok, y, ldy, dnnl_threads))
        return; /* the bias is packed with it */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, l->in_out ? CblasNoTrans : CblasTrans, n_tok, l->n_out, l->n_in, 1.0f, x,
                ldx, w, l->in_out ? l->n_out : l->n_in, 0.0f, y, ldy);
    if (l->b)
        for (int t = 0; t < n_tok; t++) {
            float *row = y + (size_t)t * ldy;
            for (int j = 0; j < l->n_out; j++) row[j] += l->b[j];
        }
}

void lsa_ops_norm(const struct lsa_arch *a, const struct lsa_norm_w *w, const float *x, float *y, int n_tok)
{
    int d = a->d_model;
    for (int t = 0; t < n_tok; t++) {
        const float *xr = x + (size_t)t * d;
        float *yr = y + (size_t)t * d;
        if (a->norm == LSA_NORM_RMS) {
            double ss = lsa_vsumsq(xr, (size_t)d, 0.0);
            lsa_vrms_apply(yr, xr, w->w, (float)(1.0 / sqrt(ss / d + a->norm_eps)), a->norm_plus_one, (size_t)d);
        } else {
            double mean = lsa_vsum(xr, (size_t)d) / d, ss = lsa_vsumsq(xr, (size_t)d, mean);
            double r = 1.0 / sqrt(ss / d + a->norm_eps);
            for (int i = 0; i < d; i++) {
                float v = (float)((xr[i] - mean) * r);
                yr[i] = v * w->w[i] + (w->b ? w->b[i] : 0.0f);
            }
        }
    }
}

void lsa_ops_act(enum lsa_act_kind act, float *x, int n_tok, int n, int ld)
{
    for (int t = 0; t < n_tok; t++) lsa_vact(act, x + (size_t)t * ld, (size_t)n);
}

void lsa_ops_act_mul(enum lsa_act_kind act, float *x, int n_tok, int n, int ld, int off, float *out, int ld_out)
{
    for (int t = 0; t < n_tok; t++) {
        float *r = x + (size_t)t * ld;
        lsa_vact_mul(act, out + (size_t)t * ld_out, r, r + off, (size_t)n);
    }
}

void lsa_ops_rope(float *x, int ld, int head_stride, int n_heads, int n_tok, int rope_dims, const float *cos_t,
                  const float *sin_t)
{
    int half = rope_dims / 2;
    for (int t = 0; t < n_tok; t++) {
        const float *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            lsa_vrope(x + (size_t)t * ld + (size_t)h * head_stride, c, s, (size_t)half);
        }
    }
}

/* c = alpha · a · b (or bᵀ) for the attention: oneDNN's sgemm (faster on these shapes, src/packed.h), or
 * OpenBLAS. */
static void att_gemm(int dnnl_threads, bool b_t, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float *c, int ldc)
{
    if (dnnl_threads > 0 && !lsa_dnnl_gemm(b_t, m, n, k, alpha, a, lda, b, ldb, c, ldc, dnnl_threads)) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_t ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, 0.0f,
                c, ldc);
}

/* One call's worth of lsa_ops_attention's arguments, for its fused jobs. */
struct fused_call {
    const float *q, *k, *v;
    float *out;
    int ldq, q_hs, ldkv, kv_hs, ld_out, q0, n_tok, h0, nh, nb, group, d_head, window;
    float scale;
};

/* Job j of a call: a block of query rows and one head, the costliest (last) blocks first so that threads
 * finish together. */
static void fused_job(const struct fused_call *c, int j, float *area)
{
    int i0 = c->q0 + (c->nb - 1 - j / c->nh) * LSA_ATTN_BLOCK, h = c->h0 + j % c->nh, kh = h / c->group;
    int i1 = c->n_tok - i0 < LSA_ATTN_BLOCK ? c->n_tok : i0 + LSA_ATTN_BLOCK;
    lsa_attn_fused(c->q + (size_t)h * c->q_hs, c->ldq, c->k + (size_t)kh * c->kv_hs, c->v + (size_t)kh * c->kv_hs,
                   c->ldkv, c->out + (size_t)h * c->d_head, c->ld_out, i0, i1, c->d_head, c->scale, c->window, area);
}

void lsa_ops_attention(const float *q, int ldq, int q_hs, const float *k, const float *v, int ldkv, int kv_hs,
                       float *out, int ld_out, int q0, int n_tok, int h0, int h1, int n_head, int n_head_kv, int d_head,
                       float scale, int window, const struct lsa_att_scratch *scr, int dnnl_threads)
{
    int group = n_head / n_head_kv;
    /* the fused kernel runs on OpenMP's team; beside OpenBLAS's own threads it would spin against them */
    if (lsa_attn_fused_ok(d_head) && (dnnl_threads > 0 || openblas_get_num_threads() == 1)) {
        int nb = (n_tok - q0 + LSA_ATTN_BLOCK - 1) / LSA_ATTN_BLOCK, jobs = nb * (h1 - h0);
        struct fused_call c = {q, k, v, out, ldq, q_hs, ldkv, kv_hs, ld_out, q0, n_tok, h0, h1 - h0, nb, group, d_head,
                               window, scale};
        int nt = dnnl_threads < scr->n ? dnnl_threads : scr->n;
        if ((nt < jobs ? nt : jobs) > 1) {
#pragma omp parallel for num_threads(nt < jobs ? nt : jobs) schedule(dynamic)
            for (int j = 0; j < jobs; j++) fused_job(&c, j, scr->p + (size_t)omp_get_thread_num() * scr->len);
        } else {
            for (int j = 0; j < jobs; j++) fused_job(&c, j, scr->p);
        }
        return;
    }
    float *scores = scr->p;
    float inv_sum[LSA_ATTN_BLOCK];
    /* Query rows in blocks: a block only needs the keys up to its last row (causal), which halves the work
     * and bounds the scratch to (LSA_ATTN_BLOCK, T). */
    for (int i0 = q0; i0 < n_tok; i0 += LSA_ATTN_BLOCK) {
        int nb = n_tok - i0 < LSA_ATTN_BLOCK ? n_tok - i0 : LSA_ATTN_BLOCK, i1 = i0 + nb;
        int k0 = window > 0 && i0 - window + 1 > 0 ? i0 - window + 1 : 0, nk = i1 - k0;
        for (int h = h0; h < h1; h++) {
            int kh = h / group;
            att_gemm(dnnl_threads, true, nb, nk, d_head, scale, q + (size_t)i0 * ldq + (size_t)h * q_hs, ldq,
                     k + (size_t)k0 * ldkv + (size_t)kh * kv_hs, ldkv, scores, nk);
            for (int r = 0; r < nb; r++) {
                int i = i0 + r;
                float *row = scores + (size_t)r * nk;
                int lo = window > 0 && i - window + 1 > k0 ? i - window + 1 - k0 : 0, hi = i - k0; /* keys lo..hi */
                size_t n = (size_t)(hi - lo + 1);
                inv_sum[r] = (float)(1.0 / lsa_vexp_shift(row + lo, n, lsa_vmax(row + lo, n)));
                memset(row, 0, (size_t)lo * sizeof *row);
                memset(row + hi + 1, 0, (size_t)(nk - hi - 1) * sizeof *row);
            }
            /* the softmax's division after the product, on d_head numbers a row instead of nk (as flash
             * attention does; the rounding differs from softmax-then-product by an ulp or so) */
            float *o = out + (size_t)i0 * ld_out + (size_t)h * d_head;
            att_gemm(dnnl_threads, false, nb, d_head, nk, 1.0f, scores, nk, v + (size_t)k0 * ldkv + (size_t)kh * kv_hs,
                     ldkv, o, ld_out);
            for (int r = 0; r < nb; r++) lsa_vscale(o + (size_t)r * ld_out, (size_t)d_head, inv_sum[r]);
        }
    }
}

size_t lsa_ops_attention_scratch(int n_tok, int d_head)
{
    size_t gemm = (size_t)LSA_ATTN_BLOCK * (size_t)n_tok, fused = lsa_attn_fused_scratch(n_tok, d_head);
    return gemm > fused ? gemm : fused;
}

void lsa_ops_logits(const float *head, int n_rows, int d, const float *h, int n_tok, float *logits, int ld)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, n_rows, d, 1.0f, h, d, head, d, 0.0f, logits, ld);
}

int lsa_ops_blas_threads(int n)
{
    int was = openblas_get_num_threads();
    if (n > 0 && n != was) openblas_set_num_threads(n);
    return was;
}
