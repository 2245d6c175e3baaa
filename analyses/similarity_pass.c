/*
 * similarity_pass.c — the streaming pass of the similarity analysis (similarity_pass.h says what it
 * keeps and how precise it is).
 */
#include "similarity_pass.h"

#include "linalg.h"
#include "lsa/lsa.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* AVX-512, AVX2 and baseline copies of the loops below, picked at load time (as in src/vmath.c) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VARIANTS __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VARIANTS
#endif

void lsa_sim_pass_free(struct lsa_sim_pass *s)
{
    free(s->cos_sum), free(s->ang_sum), free(s->last_sum), free(s->norm_sum), free(s->tc), free(s->ta), free(s->tn);
    free(s->mb), free(s->xc), free(s->kt), free(s->trp), free(s->trs), free(s->mean), free(s->kg), free(s->rs),
        free(s->tot), free(s->tr);
    free(s->rr), free(s->hsic), free(s->z32), free(s->z64);
    memset(s, 0, sizeof *s);
}

int lsa_sim_pass_alloc(struct lsa_sim_pass *s, int n, int D, int b, int64_t cap, bool f32)
{
    memset(s, 0, sizeof *s);
    size_t nn = (size_t)n * n, pairs = (size_t)n * (n + 1) / 2;
    s->n = n, s->D = D, s->b = b, s->cap = cap, s->f32 = f32;
    s->threads = omp_get_max_threads();
    s->cos_sum = calloc(nn, sizeof(double));
    s->ang_sum = calloc(nn, sizeof(double));
    s->last_sum = calloc(nn, sizeof(double));
    s->norm_sum = calloc((size_t)n, sizeof(double));
    s->tc = malloc(pairs * LSA_SIM_TCHUNK * sizeof(double));
    s->ta = malloc(pairs * LSA_SIM_TCHUNK * sizeof(double));
    s->tn = malloc((size_t)n * LSA_SIM_TCHUNK * sizeof(double));
    bool ok = s->cos_sum && s->ang_sum && s->last_sum && s->norm_sum && s->tc && s->ta && s->tn;
    if (ok && b > 0) {
        size_t bb = (size_t)b * b, th = (size_t)s->threads;
        s->group = s->threads < LSA_SIM_GROUP ? s->threads : LSA_SIM_GROUP;
        size_t gn = (size_t)s->group * n;
        s->mb = malloc(gn * b * D * sizeof(float));
        size_t el = f32 ? sizeof(float) : sizeof(double);
        s->kp = (int64_t)b * (b - 1) / 2;
        s->xc = malloc(th * b * D * el);
        s->kt = malloc(th * bb * el);
        s->mean = malloc(th * D * sizeof(double));
        s->kg = malloc(gn * s->kp * el);
        s->trp = malloc((size_t)s->group * LSA_SIM_SLICES * nn * sizeof(double));
        s->trs = f32 ? malloc(th * nn * sizeof(float)) : NULL;
        s->rs = malloc(gn * b * sizeof(double));
        s->tot = malloc((size_t)n * sizeof(double));
        s->tr = calloc(nn, sizeof(double));
        s->rr = calloc(nn, sizeof(double));
        s->hsic = calloc(nn, sizeof(double));
        ok = s->mb && s->xc && s->kt && s->mean && s->kg && s->trp && (s->trs || !f32) && s->rs && s->tot && s->tr &&
             s->rr && s->hsic;
    }
    if (ok && cap > 0) {
        size_t z = (size_t)cap * n * D;
        ok = f32 ? (s->z32 = malloc(z * sizeof(float))) != NULL : (s->z64 = malloc(z * sizeof(double))) != NULL;
    }
    return ok ? 0
              : lsa_err(LSA_ENOMEM, "similarity: out of memory (minibatch %d, exact CKA on %lld tokens)", b,
                        (long long)cap);
}

double lsa_sim_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* x . y in float64: products of two floats are exact there, and the simd reduction keeps it vectorised. */
static inline double dot(const float *x, const float *y, int D)
{
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int d = 0; d < D; d++) acc += (double)x[d] * (double)y[d];
    return acc;
}

/* Norms, cosines and angles of token k0 + k of the block into the chunk's column k. */
VARIANTS static void one_token(struct lsa_sim_pass *s, const float *blk, int64_t T, int64_t k0, int k)
{
    int n = s->n, D = s->D;
    const size_t C = LSA_SIM_TCHUNK;
    for (int i = 0; i < n; i++) {
        const float *x = blk + ((size_t)i * T + k0 + k) * D;
        s->tn[i * C + k] = sqrt(dot(x, x, D));
    }
    size_t p = 0;
    for (int i = 0; i < n; i++) {
        const float *x = blk + ((size_t)i * T + k0 + k) * D;
        double ni = s->tn[i * C + k];
        for (int j = i; j < n; j++, p++) {
            double nj = s->tn[j * C + k], cs;
            if (ni == 0 || nj == 0) cs = 0;
            else if (i == j) cs = 1;
            else cs = dot(x, blk + ((size_t)j * T + k0 + k) * D, D) / (ni * nj);
            s->tc[p * C + k] = cs;
            s->ta[p * C + k] = acos(cs > 1 ? 1 : cs < -1 ? -1 : cs) / M_PI;
        }
    }
}

/* Cosine, angle and norms of tokens [k0, k0 + c) of the block, on all cores; then summed in token order so
 * that neither the block size nor the thread count changes a bit of the result. */
static void tokens(struct lsa_sim_pass *s, const float *blk, int64_t T, int64_t k0, int c, const unsigned char *last)
{
    int n = s->n;
    const size_t C = LSA_SIM_TCHUNK;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < c; k++) one_token(s, blk, T, k0, k);
    size_t p = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < c; k++) s->norm_sum[i] += s->tn[i * C + k];
        for (int j = i; j < n; j++, p++) {
            double cs = s->cos_sum[i * n + j], as = s->ang_sum[i * n + j], ls = s->last_sum[i * n + j];
            for (int k = 0; k < c; k++) {
                cs += s->tc[p * C + k];
                as += s->ta[p * C + k];
                if (last[k0 + k]) ls += s->ta[p * C + k];
            }
            s->cos_sum[i * n + j] = cs, s->ang_sum[i * n + j] = as, s->last_sum[i * n + j] = ls;
        }
    }
}

/* Gram k (b, b; upper triangle) -> its strict upper triangle packed into kp (row after row), and the
 * row sums of k without its diagonal added into r: float32 kept as float32 (exact), float64 as is. */
#define DEFINE_PACK(name, T)                                                                                           \
    static inline void name(const T *k, int b, T *kp, double *r)                                                       \
    {                                                                                                                  \
        size_t at = 0;                                                                                                 \
        for (int t = 0; t < b; t++) {                                                                                  \
            const T *row = k + (size_t)t * b;                                                                          \
            double sum = 0;                                                                                            \
            _Pragma("omp simd reduction(+ : sum)") for (int u = t + 1; u < b; u++)                                     \
            {                                                                                                          \
                kp[at + u - t - 1] = row[u];                                                                           \
                r[u] += row[u];                                                                                        \
                sum += row[u];                                                                                         \
            }                                                                                                          \
            r[t] += sum;                                                                                               \
            at += (size_t)(b - t - 1);                                                                                 \
        }                                                                                                              \
    }
DEFINE_PACK(pack_f32, float)
DEFINE_PACK(pack_f64, double)

/* Row i of the held minibatches (point i % n of minibatch i / n): the strict upper triangle of its centred
 * Gram K (the diagonal is what HSIC_1 leaves out) packed into kg's row i, and the row sums of K without its
 * diagonal into rs's row i. */
VARIANTS static void minibatch_point(struct lsa_sim_pass *s, int i, int tid)
{
    int b = s->b, D = s->D;
    size_t bb = (size_t)b * b;
    const float *x = s->mb + (size_t)i * b * D;
    double *m = s->mean + (size_t)tid * D, *r = s->rs + (size_t)i * b;
    /* centre (HSIC_1 is translation invariant, so this only keeps the Gram's entries small), row by row */
    for (int d = 0; d < D; d++) m[d] = 0;
    for (int t = 0; t < b; t++)
#pragma omp simd
        for (int d = 0; d < D; d++) m[d] += x[(size_t)t * D + d];
    for (int d = 0; d < D; d++) m[d] /= b;
    for (int t = 0; t < b; t++) r[t] = 0;
    if (s->f32) {
        float *xc = (float *)s->xc + (size_t)tid * b * D, *k = (float *)s->kt + tid * bb;
        for (int t = 0; t < b; t++)
#pragma omp simd
            for (int d = 0; d < D; d++) xc[(size_t)t * D + d] = (float)(x[(size_t)t * D + d] - m[d]);
        lsa_la_sgram_upper(b, D, xc, D, k);
        pack_f32(k, b, (float *)s->kg + (size_t)i * s->kp, r);
    } else {
        double *xc = (double *)s->xc + (size_t)tid * b * D, *k = (double *)s->kt + tid * bb;
        for (int t = 0; t < b; t++)
#pragma omp simd
            for (int d = 0; d < D; d++) xc[(size_t)t * D + d] = x[(size_t)t * D + d] - m[d];
        lsa_la_gram(b, D, xc, D, 0.0, k);
        pack_f64(k, b, (double *)s->kg + (size_t)i * s->kp, r);
    }
}

/* Slice sl of LSA_SIM_SLICES of held minibatch g's packed entries: <triu K_i, triu K_j> over it for all
 * pairs, into out (n, n, upper triangle). Float32 Grams are multiplied LSA_SIM_KBLOCK entries at a time in
 * float32 and summed in float64, as the exact CKA does with tokens. */
static void tr_slice(struct lsa_sim_pass *s, int g, int sl, int tid, double *out)
{
    int n = s->n;
    size_t nn = (size_t)n * n, at = (size_t)g * n * s->kp;
    int64_t lo = s->kp * sl / LSA_SIM_SLICES, hi = s->kp * (sl + 1) / LSA_SIM_SLICES;
    if (!s->f32) {
        if (hi > lo) lsa_la_gram(n, (int)(hi - lo), (double *)s->kg + at + lo, (int)s->kp, 0.0, out);
        else memset(out, 0, nn * sizeof(double));
        return;
    }
    float *part = s->trs + (size_t)tid * nn;
    memset(out, 0, nn * sizeof(double));
    for (int64_t k0 = lo; k0 < hi; k0 += LSA_SIM_KBLOCK) {
        int len = (int)(hi - k0 < LSA_SIM_KBLOCK ? hi - k0 : LSA_SIM_KBLOCK);
        lsa_la_sgram_upper(n, len, (float *)s->kg + at + k0, (int)s->kp, part);
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) out[i * n + j] += part[i * n + j];
    }
}

static void minibatch_sums(struct lsa_sim_pass *s, int g);

/* The held full minibatches in s->mb: add HSIC_1 of every pair, minibatch by minibatch. */
static void minibatches(struct lsa_sim_pass *s)
{
    int n = s->n, held = s->held;
    size_t nn = (size_t)n * n;
    /* one point of one minibatch per thread, each GEMM on one thread (lsa_similarity_run sets BLAS to one
     * thread): the minibatches are held in groups so that the points (13 for a 12-layer model) share out
     * evenly (13 of 26 each on two cores, where one minibatch left a core waiting for a seventh of the
     * time). Then tr(K~_i K~_j) = 2 <triu K_i, triu K_j> for all pairs in slices of the entries, a fixed
     * number of them whatever the thread count, so that the sums do not depend on it */
#pragma omp parallel
    {
#pragma omp for schedule(dynamic)
        for (int gi = 0; gi < held * n; gi++) minibatch_point(s, gi, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int gs = 0; gs < held * LSA_SIM_SLICES; gs++)
            tr_slice(s, gs / LSA_SIM_SLICES, gs % LSA_SIM_SLICES, omp_get_thread_num(), s->trp + gs * nn);
    }
    for (int g = 0; g < held; g++) minibatch_sums(s, g);
    s->held = 0;
}

/* HSIC_1 of every pair of held minibatch g, from its tr slices and row sums, added to s->hsic. */
static void minibatch_sums(struct lsa_sim_pass *s, int g)
{
    int n = s->n, b = s->b;
    size_t nn = (size_t)n * n;
    const double *trp = s->trp + (size_t)g * LSA_SIM_SLICES * nn, *rs = s->rs + (size_t)g * n * b;
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            double v = 0;
            for (int sl = 0; sl < LSA_SIM_SLICES; sl++) v += trp[sl * nn + (size_t)i * n + j];
            s->tr[(size_t)i * n + j] = s->tr[(size_t)j * n + i] = 2 * v;
        }
    lsa_la_gram(n, b, rs, b, 0.0, s->rr);
    for (int i = 0; i < n; i++) {
        s->tot[i] = 0;
        for (int t = 0; t < b; t++) s->tot[i] += rs[(size_t)i * b + t];
    }
    double bd = b;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            size_t ij = (size_t)i * n + j;
            s->hsic[ij] += (s->tr[ij] + s->tot[i] * s->tot[j] / ((bd - 1) * (bd - 2)) - 2.0 / (bd - 2) * s->rr[ij]) /
                           (bd * (bd - 3));
        }
    s->n_batches++;
}

void lsa_sim_pass_block(struct lsa_sim_pass *s, const float *blk, int64_t T, const unsigned char *last)
{
    int n = s->n, D = s->D;
    size_t row = (size_t)D * sizeof(float);
    double t0 = lsa_sim_now();
    for (int64_t k0 = 0; k0 < T; k0 += LSA_SIM_TCHUNK)
        tokens(s, blk, T, k0, (int)(T - k0 < LSA_SIM_TCHUNK ? T - k0 : LSA_SIM_TCHUNK), last);
    s->token_s += lsa_sim_now() - t0;
    for (int64_t k = 0; k < T; k++) {
        if (s->b > 0) {
            float *mb = s->mb + (size_t)s->held * n * s->b * D;
            for (int i = 0; i < n; i++)
                memcpy(mb + ((size_t)i * s->b + s->fill) * D, blk + ((size_t)i * T + k) * D, row);
            if (++s->fill == s->b) {
                s->fill = 0;
                if (++s->held == s->group) lsa_sim_pass_flush(s);
            }
        }
        if (s->kept < s->cap) {
            size_t at = (size_t)s->kept++ * n * D;
            for (int i = 0; i < n; i++) {
                const float *x = blk + ((size_t)i * T + k) * D;
                if (s->f32) memcpy(s->z32 + at + (size_t)i * D, x, row);
                else
                    for (int d = 0; d < D; d++) s->z64[at + (size_t)i * D + d] = x[d];
            }
        }
    }
}

void lsa_sim_pass_flush(struct lsa_sim_pass *s)
{
    if (s->held == 0) return;
    double t1 = lsa_sim_now();
    minibatches(s);
    s->minibatch_s += lsa_sim_now() - t1;
}

/* ||X_i^T X_j||_F^2 for j in [j0, j0 + gj), from the centred kept tokens, into fro's row i and column i. */
static void cross_fro(struct lsa_sim_pass *s, int i, int j0, int gj, double *cross, float *cross32, double *fro)
{
    int n = s->n, D = s->D, w = n * D;
    int64_t m = s->kept;
    size_t len = (size_t)D * gj * D;
    if (s->f32) {
        memset(cross, 0, len * sizeof *cross);
        for (int64_t t0 = 0; t0 < m; t0 += LSA_SIM_KBLOCK) {
            int kb = (int)(m - t0 < LSA_SIM_KBLOCK ? m - t0 : LSA_SIM_KBLOCK);
            const float *z = s->z32 + (size_t)t0 * w;
            lsa_la_sgemm_tn(D, gj * D, kb, z + (size_t)i * D, w, z + (size_t)j0 * D, w, cross32, gj * D);
            for (size_t e = 0; e < len; e++) cross[e] += cross32[e];
        }
    } else {
        lsa_la_gemm_tn(D, gj * D, (int)m, s->z64 + (size_t)i * D, w, s->z64 + (size_t)j0 * D, w, 0.0, cross, gj * D);
    }
    for (int jj = 0; jj < gj; jj++) {
        double f = 0;
        for (int a = 0; a < D; a++)
            for (int c = 0; c < D; c++) {
                double v = cross[(size_t)a * gj * D + (size_t)jj * D + c];
                f += v * v;
            }
        fro[(size_t)i * n + j0 + jj] = fro[(size_t)(j0 + jj) * n + i] = f;
    }
}

int lsa_sim_pass_exact(struct lsa_sim_pass *s, double *out)
{
    int n = s->n, D = s->D, w = n * D;
    int64_t m = s->kept;
    /* group the j's so that one GEMM gives X_i^T [X_j .. X_j+g) with a bounded scratch */
    int g = (int)fmax(1, fmin(n, (double)(1 << 22) / ((double)D * D)));
    size_t len = (size_t)D * D * g;
    double *cross = malloc(len * sizeof(double)), *fro = malloc((size_t)n * n * sizeof(double)),
           *mean = calloc((size_t)w, sizeof(double));
    float *cross32 = s->f32 ? malloc(len * sizeof(float)) : NULL;
    if (!cross || !fro || !mean || (s->f32 && !cross32)) {
        free(cross), free(fro), free(mean), free(cross32);
        return lsa_err(LSA_ENOMEM, "similarity: out of memory for exact CKA");
    }
    /* centre every column, row by row */
    for (int64_t t = 0; t < m; t++)
        for (int c = 0; c < w; c++) mean[c] += s->f32 ? s->z32[t * w + c] : s->z64[t * w + c];
    for (int c = 0; c < w; c++) mean[c] /= (double)m;
    for (int64_t t = 0; t < m; t++)
        for (int c = 0; c < w; c++)
            if (s->f32) s->z32[t * w + c] = (float)(s->z32[t * w + c] - mean[c]);
            else s->z64[t * w + c] -= mean[c];
    for (int i = 0; i < n; i++)
        for (int j0 = i; j0 < n; j0 += g) cross_fro(s, i, j0, j0 + g <= n ? g : n - j0, cross, cross32, fro);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double den = sqrt(fro[i * n + i]) * sqrt(fro[j * n + j]);
            out[i * n + j] = den > 0 ? fro[i * n + j] / den : NAN;
        }
    free(cross), free(fro), free(mean), free(cross32);
    return 0;
}
