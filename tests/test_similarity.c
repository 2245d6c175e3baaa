/*
 * test_similarity — the similarity and redundancy analyses against truths that do not depend on their
 * code: invariances (CKA(X, XQ) = 1 for orthogonal Q, CKA(X, cX) = 1), the unbiased minibatch CKA of
 * independent Gaussians near 0, cosine symmetry and unit diagonal, BI of identical points = 0, small
 * hand-computed cases, exact CKA against the Gram-matrix form and minibatch CKA against a naive HSIC_1,
 * and results that do not depend on the streaming block size. Synthetic captures are written here with
 * the lsa_h5w writer. Also: the capture reader's errors, figure files (PDF parses with pdfinfo, PNG
 * decodes at the requested size, SVG), and `lsa report` end to end on a small real capture.
 * Usage: test_similarity PATH_TO_LSA
 */
#include "lsa/capture_read.h"
#include "lsa/h5.h"
#include "plot.h"
#include "redundancy.h"
#include "similarity.h"
#include "testutil.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static const char *lsa_bin;
static char tmp[256];

/* ------------------------------------------------------------------ synthetic captures */

struct syn {
    int P, D, S;
    int64_t N;
    float *resid;          /* (P, N, D) */
    const int64_t *offs;   /* (S + 1) */
    int version;
    bool nan;              /* put a NaN at point 1, token N / 2 */
    int d_model_attr;      /* 0 = D */
};

static void write_capture(const char *path, const struct syn *s)
{
    struct lsa_h5w *w = lsa_h5w_create(path);
    REQUIRE(w, "%s", lsa_errmsg());
    int64_t N = s->N;
    REQUIRE(!lsa_h5w_attr_str(w, "/", "format", "lsa-capture") &&
                !lsa_h5w_attr_int(w, "/", "format_version", s->version ? s->version : 1) &&
                !lsa_h5w_attr_int(w, "/", "d_model", s->d_model_attr ? s->d_model_attr : s->D) &&
                !lsa_h5w_attr_int(w, "/", "n_layers", s->P - 1) &&
                !lsa_h5w_attr_str(w, "/", "model_path", "/synthetic/model") &&
                !lsa_h5w_attr_str(w, "/", "model_type", "synthetic") && !lsa_h5w_attr_str(w, "/", "dtype", "f32"),
            "%s", lsa_errmsg());
    int64_t d1[1] = {0}, ch1[1] = {1024};
    struct lsa_h5w_dset *tok = lsa_h5w_dset(w, "tokens", LSA_H5_I32, 1, d1, 0, ch1, 0);
    struct lsa_h5w_dset *off = lsa_h5w_dset(w, "seq_offsets", LSA_H5_I64, 1, d1, 0, ch1, 0);
    int64_t d3[3] = {s->P, 0, s->D}, ch3[3] = {1, 64, s->D};
    struct lsa_h5w_dset *res = lsa_h5w_dset(w, "resid", LSA_H5_F32, 3, d3, 1, ch3, 1);
    REQUIRE(tok && off && res, "%s", lsa_errmsg());
    int32_t *ids = calloc((size_t)N, sizeof *ids);
    int64_t st1[1] = {0}, n1[1] = {N}, ns[1] = {s->S + 1};
    REQUIRE(!lsa_h5w_write(tok, st1, n1, ids) && !lsa_h5w_write(off, st1, ns, s->offs), "%s", lsa_errmsg());
    free(ids);
    size_t total = (size_t)s->P * N * s->D;
    float *x = malloc(total * sizeof *x);
    memcpy(x, s->resid, total * sizeof *x);
    if (s->nan) x[((size_t)1 * N + N / 2) * s->D] = NAN;
    int64_t st3[3] = {0, 0, 0}, n3[3] = {s->P, N, s->D};
    REQUIRE(!lsa_h5w_write(res, st3, n3, x), "%s", lsa_errmsg());
    free(x);
    char names[64][48];
    const char *np[64];
    int64_t idx[64];
    for (int i = 0; i < s->P; i++) {
        if (i == 0) snprintf(names[i], sizeof names[i], "embed");
        else snprintf(names[i], sizeof names[i], "blocks.%d.hook_resid_post", i - 1);
        np[i] = names[i];
        idx[i] = i;
    }
    REQUIRE(!lsa_h5w_attr_strs(w, "/resid", "points", np, (size_t)s->P) &&
                !lsa_h5w_attr_i64(w, "/resid", "point_index", idx, (size_t)s->P),
            "%s", lsa_errmsg());
    REQUIRE(lsa_h5w_close(w) == 0, "%s", lsa_errmsg());
}

static uint64_t rng = 88172645463325252ull;
static double gauss(void)
{
    double u[2];
    for (int k = 0; k < 2; k++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        u[k] = ((rng >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

static struct lsa_similarity_result *run(const char *path, const struct lsa_similarity_opts *o)
{
    struct lsa_capture_reader *r = lsa_capture_read_open(path);
    REQUIRE(r, "%s", lsa_errmsg());
    struct lsa_similarity_result *res;
    REQUIRE(lsa_similarity_run(r, o, &res) == 0, "%s", lsa_errmsg());
    lsa_capture_read_close(r);
    return res;
}

#define AT(m, n, i, j) ((m)[(size_t)(i) * (n) + (j)])

static void check_near(const char *what, double got, double want, double tol)
{
    double e = fabs(got - want);
    printf("  %-44s %.12f (want %.12f, err %.2e, tol %.0e)\n", what, got, want, e, tol);
    CHECK(e <= tol, "%s = %.12f, want %.12f (err %.3e > %.0e)", what, got, want, e, tol);
}

/* ------------------------------------------------------------------ invariances */

/* f64: the CKA GEMMs in float64 (tight tolerances); otherwise float32 GEMMs, within 1e-6 of them */
static void test_invariances(bool f64)
{
    printf("invariances (N = 2048, D = 16), CKA GEMMs in %s\n", f64 ? "float64" : "float32");
    double ct = f64 ? 1e-9 : 1e-6;
    enum { P = 6, D = 16 };
    int64_t N = 2048, offs[4] = {0, 700, 1500, 2048};
    float *x = malloc((size_t)P * N * D * sizeof *x);
    double Q[D][D]; /* orthogonal: Gram-Schmidt on a Gaussian matrix */
    for (int i = 0; i < D; i++) {
        for (int k = 0; k < D; k++) Q[i][k] = gauss();
        for (int j = 0; j < i; j++) {
            double dot = 0;
            for (int k = 0; k < D; k++) dot += Q[i][k] * Q[j][k];
            for (int k = 0; k < D; k++) Q[i][k] -= dot * Q[j][k];
        }
        double nrm = 0;
        for (int k = 0; k < D; k++) nrm += Q[i][k] * Q[i][k];
        for (int k = 0; k < D; k++) Q[i][k] /= sqrt(nrm);
    }
    for (int64_t t = 0; t < N; t++) {
        float X[D], Y[D];
        for (int d = 0; d < D; d++) X[d] = (float)(gauss() * (1 + d % 3) + 2.0), Y[d] = (float)gauss();
        for (int d = 0; d < D; d++) {
            double xq = 0;
            for (int k = 0; k < D; k++) xq += X[k] * Q[k][d];
            x[((size_t)0 * N + t) * D + d] = X[d];
            x[((size_t)1 * N + t) * D + d] = (float)xq;
            x[((size_t)2 * N + t) * D + d] = 3 * X[d];
            x[((size_t)3 * N + t) * D + d] = Y[d];
            x[((size_t)4 * N + t) * D + d] = Y[d];
            x[((size_t)5 * N + t) * D + d] = -Y[d];
        }
    }
    char path[300];
    snprintf(path, sizeof path, "%s/inv.h5", tmp);
    write_capture(path, &(struct syn){.P = P, .D = D, .S = 3, .N = N, .resid = x, .offs = offs});
    struct lsa_similarity_opts o = lsa_similarity_opts_default();
    o.cka_batch = 128;
    o.cka_f64 = f64;
    struct lsa_similarity_result *r = run(path, &o);
    int n = r->n;
    CHECK(r->cka_f32 == !f64, "cka_f32 %d", r->cka_f32);
    REQUIRE(n == P && r->cka_linear && r->cka_minibatch, "n %d", n);
    /* XQ is X in rotated coordinates: CKA 1 exactly; cosine not (the mean is rotated too) */
    check_near("exact CKA(X, XQ)", AT(r->cka_linear, n, 0, 1), 1, 1e-6);
    check_near("exact CKA(X, 3X)", AT(r->cka_linear, n, 0, 2), 1, ct);
    check_near("exact CKA(Y, -Y)", AT(r->cka_linear, n, 3, 5), 1, ct);
    check_near("minibatch CKA(X, XQ)", AT(r->cka_minibatch, n, 0, 1), 1, 1e-6);
    check_near("minibatch CKA(X, 3X)", AT(r->cka_minibatch, n, 0, 2), 1, ct);
    double ub = AT(r->cka_minibatch, n, 0, 3), ex = AT(r->cka_linear, n, 0, 3);
    printf("  independent Gaussians: unbiased minibatch CKA %.4f, exact (biased) CKA %.4f\n", ub, ex);
    CHECK(fabs(ub) < 0.03, "unbiased CKA of independent Gaussians %.4f, want |.| < 0.03", ub);
    CHECK(ex > fabs(ub), "the biased exact estimate (%.4f) should exceed the unbiased one (%.4f)", ex, ub);
    double asym = 0, diag = 0;
    for (int i = 0; i < n; i++) {
        diag = fmax(diag, fabs(AT(r->cosine, n, i, i) - 1));
        for (int j = 0; j < n; j++) {
            asym = fmax(asym, fabs(AT(r->cosine, n, i, j) - AT(r->cosine, n, j, i)));
            asym = fmax(asym, fabs(AT(r->angular, n, i, j) - AT(r->angular, n, j, i)));
            asym = fmax(asym, fabs(AT(r->cka_linear, n, i, j) - AT(r->cka_linear, n, j, i)));
        }
    }
    check_near("max |C - C^T| (cosine, angular, CKA)", asym, 0, 0);
    check_near("max |C_ii - 1|", diag, 0, 1e-15);
    check_near("cos(X, 3X)", AT(r->cosine, n, 0, 2), 1, 1e-6);
    check_near("cos(Y, -Y)", AT(r->cosine, n, 3, 5), -1, 1e-6);
    check_near("angular(Y, -Y)", AT(r->angular, n, 3, 5), 1, 2e-3);
    check_near("angular(Y, Y) (identical points)", AT(r->angular, n, 3, 4), 0, 1e-3);
    check_near("angular_last over 3 sequence ends (Y, -Y)", AT(r->angular_last, n, 3, 5), 1, 2e-3);
    CHECK(r->n_last == 3, "n_last %lld, want 3", (long long)r->n_last);

    struct lsa_redundancy_result *red;
    struct lsa_redundancy_opts ro = lsa_redundancy_opts_default();
    REQUIRE(lsa_redundancy_run(r, &ro, &red) == 0, "%s", lsa_errmsg());
    check_near("BI of identical points (block 3)", red->block_influence[3], 0, 1e-6);
    CHECK(red->bi_ranking[0] == 3, "most redundant block %lld, want 3", (long long)red->bi_ranking[0]);
    check_near("BI(Y -> -Y) (block 4)", red->block_influence[4], 2, 1e-6);
    CHECK(red->bi_ranking[4] == 4, "least redundant block %lld, want 4", (long long)red->bi_ranking[4]);
    lsa_redundancy_free(red);

    /* the streaming block size must not matter (blocks of 7 straddle sequences and minibatches) */
    o.block_tokens = 7;
    struct lsa_similarity_result *r7 = run(path, &o);
    double diff = 0;
    for (int i = 0; i < n * n; i++) {
        diff = fmax(diff, fabs(r->cosine[i] - r7->cosine[i]));
        diff = fmax(diff, fabs(r->angular_last[i] - r7->angular_last[i]));
        diff = fmax(diff, fabs(r->cka_linear[i] - r7->cka_linear[i]));
        diff = fmax(diff, fabs(r->cka_minibatch[i] - r7->cka_minibatch[i]));
    }
    check_near("block of 7 tokens vs default block: max diff", diff, 0, 1e-12);
    lsa_similarity_free(r7);
    if (!f64) { /* float32 GEMMs against float64 ones on the same capture */
        o.block_tokens = 0;
        o.cka_f64 = true;
        struct lsa_similarity_result *r64 = run(path, &o);
        double dc = 0, dk = 0;
        for (int i = 0; i < n * n; i++) {
            dc = fmax(dc, fabs(r->cosine[i] - r64->cosine[i]) + fabs(r->angular[i] - r64->angular[i]));
            dk = fmax(dk, fabs(r->cka_linear[i] - r64->cka_linear[i]));
            dk = fmax(dk, fabs(r->cka_minibatch[i] - r64->cka_minibatch[i]));
        }
        check_near("cosine, angular: float32 vs float64 CKA run", dc, 0, 0);
        check_near("CKA: float32 vs float64 GEMMs, max diff", dk, 0, 1e-6);
        lsa_similarity_free(r64);
    }
    lsa_similarity_free(r);
    free(x);
}

/* ------------------------------------------------------------------ hand-computed cases */

static void test_hand(void)
{
    printf("hand-computed: 2 points, 2 tokens, 2 features\n");
    /* x0 = (1,0), (0,1); x1 = (1,1), (0,1): cos = 1/sqrt2, 1; angles pi/4, 0 */
    float x[8] = {1, 0, 0, 1, 1, 1, 0, 1};
    int64_t offs[2] = {0, 2};
    char path[300];
    snprintf(path, sizeof path, "%s/hand.h5", tmp);
    write_capture(path, &(struct syn){.P = 2, .D = 2, .S = 1, .N = 2, .resid = x, .offs = offs});
    struct lsa_similarity_opts o = lsa_similarity_opts_default();
    o.cka_batch = 0;
    struct lsa_similarity_result *r = run(path, &o);
    check_near("C[0][1] = (1/sqrt2 + 1) / 2", AT(r->cosine, 2, 0, 1), (M_SQRT1_2 + 1) / 2, 1e-12);
    check_near("A[0][1] = (1/4 + 0) / 2", AT(r->angular, 2, 0, 1), 0.125, 1e-12);
    check_near("A_last[0][1] (last token only) = 0", AT(r->angular_last, 2, 0, 1), 0, 1e-12);
    check_near("resid_norm[1] = (sqrt2 + 1) / 2", r->resid_norm[1], (M_SQRT2 + 1) / 2, 1e-12);
    CHECK(r->cka_minibatch == NULL, "cka_batch 0 computes no minibatch CKA");
    struct lsa_redundancy_result *red;
    struct lsa_redundancy_opts ro = lsa_redundancy_opts_default();
    REQUIRE(lsa_redundancy_run(r, &ro, &red) == 0, "%s", lsa_errmsg());
    check_near("BI_0 = 1 - C[0][1]", red->block_influence[0], 1 - (M_SQRT1_2 + 1) / 2, 1e-12);
    check_near("norm growth", red->norm_growth[0], (M_SQRT2 + 1) / 2, 1e-12);
    lsa_redundancy_free(red);
    lsa_similarity_free(r);

    printf("hand-computed: unit vectors at 0, 30 and 90 degrees, one token\n");
    float y[6] = {1, 0, (float)cos(M_PI / 6), (float)sin(M_PI / 6), 0, 1};
    int64_t offs1[2] = {0, 1};
    write_capture(path, &(struct syn){.P = 3, .D = 2, .S = 1, .N = 1, .resid = y, .offs = offs1});
    o.cka_max_tokens = 0;
    r = run(path, &o);
    check_near("A[0][1] = 1/6", AT(r->angular, 3, 0, 1), 1.0 / 6, 1e-7);
    check_near("A[1][2] = 1/3", AT(r->angular, 3, 1, 2), 1.0 / 3, 1e-7);
    check_near("A[0][2] = 1/2", AT(r->angular, 3, 0, 2), 0.5, 1e-7);
    REQUIRE(lsa_redundancy_run(r, &ro, &red) == 0, "%s", lsa_errmsg());
    check_near("BI_0 = 1 - cos 30", red->block_influence[0], 1 - sqrt(3) / 2, 1e-7);
    check_near("BI_1 = 1 - cos 60", red->block_influence[1], 0.5, 1e-7);
    CHECK(red->bi_ranking[0] == 0 && red->bi_ranking[1] == 1, "ranking %lld %lld", (long long)red->bi_ranking[0],
          (long long)red->bi_ranking[1]);
    CHECK(red->n_blocks == 2 && red->best[0].n == 1 && red->best[0].start == 0, "best block n=1 start %d",
          red->best[0].start);
    check_near("best block n=1 distance = 1/6", red->best[0].distance, 1.0 / 6, 1e-7);
    lsa_redundancy_free(red);
    lsa_similarity_free(r);
}

/* ------------------------------------------------------------------ CKA against naive forms */

static double naive_hsic1(const double *X, const double *Y, int n, int D)
{
    /* straight from Song et al. 2012, on uncentred data */
    double K[64][64], L[64][64], tr = 0, sk = 0, sl = 0, kl = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double a = 0, b = 0;
            for (int d = 0; d < D; d++) a += X[i * D + d] * X[j * D + d], b += Y[i * D + d] * Y[j * D + d];
            K[i][j] = i == j ? 0 : a;
            L[i][j] = i == j ? 0 : b;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) tr += K[i][j] * L[j][i], sk += K[i][j], sl += L[i][j];
    for (int i = 0; i < n; i++) {
        double ri = 0, li = 0;
        for (int j = 0; j < n; j++) ri += K[i][j], li += L[i][j];
        kl += ri * li;
    }
    return (tr + sk * sl / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * kl) / (n * (n - 3.0));
}

/* Exact linear CKA through centred Gram matrices: <HKH, HLH> / (|HKH| |HLH|). */
static double gram_cka(const double *X, const double *Y, int n, int D)
{
    static double K[64][64], L[64][64];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double a = 0, b = 0;
            for (int d = 0; d < D; d++) a += X[i * D + d] * X[j * D + d], b += Y[i * D + d] * Y[j * D + d];
            K[i][j] = a, L[i][j] = b;
        }
    double rk[64] = {0}, rl[64] = {0}, ak = 0, al = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) rk[i] += K[i][j] / n, rl[i] += L[i][j] / n, ak += K[i][j] / n / n, al += L[i][j] / n / n;
    double kl = 0, kk = 0, ll = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double kc = K[i][j] - rk[i] - rk[j] + ak, lc = L[i][j] - rl[i] - rl[j] + al;
            kl += kc * lc, kk += kc * kc, ll += lc * lc;
        }
    return kl / sqrt(kk * ll);
}

static void test_cka_forms(bool f64)
{
    printf("CKA against the Gram form and a naive HSIC_1 (N = 40, D = 5), CKA GEMMs in %s\n",
           f64 ? "float64" : "float32");
    double tol = f64 ? 1e-10 : 1e-6;
    enum { N = 40, D = 5, P = 3 };
    float x[P * N * D];
    double X[P][N * D];
    for (int t = 0; t < N; t++)
        for (int d = 0; d < D; d++) {
            double a = gauss() + 1, b = gauss();
            X[0][t * D + d] = a;
            X[1][t * D + d] = tanh(a) + 0.5 * b;
            X[2][t * D + d] = a * a - b;
        }
    for (int p = 0; p < P; p++)
        for (int i = 0; i < N * D; i++) {
            x[p * N * D + i] = (float)X[p][i];
            X[p][i] = x[p * N * D + i]; /* compare on the stored float32 values */
        }
    int64_t offs[2] = {0, N};
    char path[300];
    snprintf(path, sizeof path, "%s/forms.h5", tmp);
    write_capture(path, &(struct syn){.P = P, .D = D, .S = 1, .N = N, .resid = x, .offs = offs});
    struct lsa_similarity_opts o = lsa_similarity_opts_default();
    o.cka_batch = N; /* one minibatch of all tokens */
    o.cka_f64 = f64;
    struct lsa_similarity_result *r = run(path, &o);
    for (int i = 0; i < P; i++)
        for (int j = i + 1; j < P; j++) {
            char what[64];
            snprintf(what, sizeof what, "exact CKA[%d][%d] vs Gram form", i, j);
            check_near(what, AT(r->cka_linear, P, i, j), gram_cka(X[i], X[j], N, D), tol);
            double h = naive_hsic1(X[i], X[j], N, D), hi = naive_hsic1(X[i], X[i], N, D),
                   hj = naive_hsic1(X[j], X[j], N, D);
            snprintf(what, sizeof what, "minibatch CKA[%d][%d] vs naive HSIC_1", i, j);
            check_near(what, AT(r->cka_minibatch, P, i, j), h / sqrt(hi * hj), tol);
        }
    lsa_similarity_free(r);
}

/* ------------------------------------------------------------------ bad captures */

static void expect_open_error(const char *path, const char *needle)
{
    struct lsa_capture_reader *r = lsa_capture_read_open(path);
    int rc = 0;
    struct lsa_similarity_result *res = NULL;
    if (r) {
        struct lsa_similarity_opts o = lsa_similarity_opts_default();
        rc = lsa_similarity_run(r, &o, &res);
        lsa_similarity_free(res);
        lsa_capture_read_close(r);
    } else rc = LSA_EFORMAT;
    const char *msg = lsa_errmsg();
    printf("  %s: %s\n", path, msg);
    CHECK(rc != 0 && strstr(msg, needle) && strstr(msg, path) == msg,
          "%s: want an error containing '%s', got rc %d: %s", path, needle, rc, msg);
}

static void test_errors(void)
{
    printf("bad captures\n");
    float x[2 * 8 * 3];
    for (int i = 0; i < 48; i++) x[i] = (float)(i % 7) - 3;
    int64_t offs[2] = {0, 8};
    char path[300];
    snprintf(path, sizeof path, "%s/bad.h5", tmp);
    write_capture(path, &(struct syn){.P = 2, .D = 3, .S = 1, .N = 8, .resid = x, .offs = offs, .nan = true});
    expect_open_error(path, "non-finite value (nan) at point 1 (blocks.0.hook_resid_post), token 4");
    write_capture(path, &(struct syn){.P = 2, .D = 3, .S = 1, .N = 8, .resid = x, .offs = offs, .version = 2});
    expect_open_error(path, "format_version 2, this lsa reads version 1");
    write_capture(path, &(struct syn){.P = 2, .D = 3, .S = 1, .N = 8, .resid = x, .offs = offs, .d_model_attr = 4});
    expect_open_error(path, "/resid has 3 features, attribute d_model says 4");
    int64_t bad_offs[2] = {0, 7};
    write_capture(path, &(struct syn){.P = 2, .D = 3, .S = 1, .N = 8, .resid = x, .offs = bad_offs});
    expect_open_error(path, "/seq_offsets runs from 0 to 7");
    snprintf(path, sizeof path, "%s/missing.h5", tmp);
    expect_open_error(path, "cannot open file");
}

/* ------------------------------------------------------------------ figures */

static int draw_demo(struct lsa_plot *p, double w, double h, const void *ctx)
{
    (void)ctx;
    double v[4] = {0, 0.5, NAN, 1};
    const char *lab[2] = {"a", "b"};
    struct lsa_plot_heatmap hm = {.rows = 2, .cols = 2, .v = v, .row_labels = lab, .col_labels = lab, .vmin = 0,
                                  .vmax = 1, .xlabel = "x", .ylabel = "y", .cbar_label = "value", .annotate = 1};
    struct lsa_plot_rect r = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, "Title", "subtitle");
    return lsa_plot_heatmap(p, r, &hm);
}

static void check_pdf(const char *path, const char *size)
{
    char cmd[600], line[256];
    snprintf(cmd, sizeof cmd, "pdfinfo '%s' 2>&1", path);
    FILE *f = popen(cmd, "r");
    REQUIRE(f, "popen pdfinfo");
    bool pages = false, sized = !size;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Pages:", 6) && atoi(line + 6) == 1) pages = true;
        if (size && !strncmp(line, "Page size:", 10) && strstr(line, size)) sized = true;
    }
    int rc = pclose(f);
    CHECK(rc == 0 && pages && sized, "%s: pdfinfo exit %d, one page %d, size %s found %d", path, rc, pages,
          size ? size : "-", sized);
}

static void check_png(const char *path, int want_w, int want_h)
{
    int w = 0, h = 0;
    int rc = lsa_plot_png_size(path, &w, &h);
    CHECK(rc == 0 && w == want_w && (want_h < 0 ? h > want_w / 4 && h < want_w * 2 : h == want_h),
          "%s: %s; decoded %dx%d, want %dx%d", path, rc ? lsa_errmsg() : "ok", w, h, want_w, want_h);
}

static void test_figures(void)
{
    printf("figure files\n");
    char path[300];
    struct lsa_plot_opts o = lsa_plot_opts_default();
    o.dpi = 144;
    snprintf(path, sizeof path, "%s/demo.png", tmp);
    REQUIRE(lsa_plot_save(path, 252, 200, &o, draw_demo, NULL) == 0, "%s", lsa_errmsg());
    check_png(path, 504, 400);
    snprintf(path, sizeof path, "%s/demo.pdf", tmp);
    REQUIRE(lsa_plot_save(path, 252, 200, &o, draw_demo, NULL) == 0, "%s", lsa_errmsg());
    check_pdf(path, "252 x 200 pts");
    snprintf(path, sizeof path, "%s/demo.svg", tmp);
    REQUIRE(lsa_plot_save(path, 252, 200, &o, draw_demo, NULL) == 0, "%s", lsa_errmsg());
    FILE *f = fopen(path, "rb");
    char head[64] = {0};
    CHECK(f && fread(head, 1, sizeof head - 1, f) > 0 && strstr(head, "<?xml"), "%s: not SVG", path);
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/demo.jpg", tmp);
    CHECK(lsa_plot_save(path, 252, 200, &o, draw_demo, NULL) == LSA_EINVAL, "an unknown extension is refused");
    snprintf(path, sizeof path, "%s/demo.pdf", tmp);
    int w, h;
    CHECK(lsa_plot_png_size(path, &w, &h) == LSA_EFORMAT, "a PDF does not decode as PNG");
}

static void sh(const char *cmd)
{
    int rc = system(cmd);
    REQUIRE(rc == 0, "command failed (%d): %s", rc, cmd);
}

static void test_report(void)
{
    printf("lsa report on a small tinystories-llama-12L capture\n");
    const char *model = t_shared("models/tinystories-llama-12L"), *data = t_shared("data/tinystories-sampled-val.txt");
    char cmd[2048], cap[300], dir[300], p[400];
    snprintf(cap, sizeof cap, "%s/small.h5", tmp);
    snprintf(cmd, sizeof cmd, "head -n 6 %s > %s/six.txt && %s capture --quiet --model %s --lines %s/six.txt --out %s",
             data, tmp, lsa_bin, model, tmp, cap);
    sh(cmd);
    static const char *figs[] = {"cosine", "angular", "cka_linear", "cka_minibatch", "block_influence",
                                 "best_block", "block_distance", "resid_norm"};
    /* double column, all three formats, 150 dpi: PNG 7 in x 150 = 1050 px wide */
    snprintf(dir, sizeof dir, "%s/rep", tmp);
    snprintf(cmd, sizeof cmd, "%s report %s --out %s --quiet --size double --dpi 150 --format pdf,png,svg", lsa_bin,
             cap, dir);
    sh(cmd);
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/figures/%s.pdf", dir, figs[i]);
        check_pdf(p, "504 x");
        snprintf(p, sizeof p, "%s/figures/%s.png", dir, figs[i]);
        check_png(p, 1050, -1);
        snprintf(p, sizeof p, "%s/figures/%s.svg", dir, figs[i]);
        CHECK(access(p, R_OK) == 0, "%s missing", p);
    }
    snprintf(p, sizeof p, "%s/summary.json", dir);
    CHECK(access(p, R_OK) == 0, "%s missing", p);
    snprintf(cmd, sizeof cmd, "ls -a %s %s/figures | grep -q partial", dir, dir);
    CHECK(system(cmd) != 0, "temporary files left in %s", dir);
    /* slides, PNG only, redundancy only: 10 x 5.625 in at 100 dpi = 1000 x 563 px */
    snprintf(cmd, sizeof cmd, "%s report %s --out %s/slide --quiet --size slide --dpi 100 --format png "
             "--analyses redundancy", lsa_bin, cap, tmp);
    sh(cmd);
    for (int i = 4; i < 8; i++) {
        snprintf(p, sizeof p, "%s/slide/figures/%s.png", tmp, figs[i]);
        check_png(p, 1000, 563);
    }
    snprintf(p, sizeof p, "%s/slide/figures/cosine.png", tmp);
    CHECK(access(p, F_OK) != 0, "--analyses redundancy drew the similarity figures");
    snprintf(p, sizeof p, "%s/slide/figures/block_influence.pdf", tmp);
    CHECK(access(p, F_OK) != 0, "--format png wrote a PDF");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_similarity PATH_TO_LSA\n");
        return 2;
    }
    lsa_bin = argv[1];
    snprintf(tmp, sizeof tmp, "/tmp/lsa-test-similarity-%d", (int)getpid());
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmp);
    sh(cmd);
    test_hand();
    test_invariances(true);
    test_invariances(false);
    test_cka_forms(true);
    test_cka_forms(false);
    test_errors();
    test_figures();
    test_report();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (!t_failures) sh(cmd);
    return t_finish("test_similarity");
}
