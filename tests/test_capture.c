/*
 * test_capture — `lsa capture` end to end against transformers' golden outputs: for every fixture and
 * golden text, capture the text with --dtype f32 and compare tokens, every residual point, resid_final
 * and nll; with --order from a skip_/swap_ group compare nll and resid_final with that group. Also the
 * f16 default (within f16 rounding), --layers selection, windows (--ctx) and the seq_offsets bookkeeping.
 * Usage: test_capture PATH_TO_LSA
 */
#include "lsa/h5.h"
#include "testutil.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static const char *lsa_bin;
static char tmp[256];

static void sh(const char *cmd)
{
    int rc = system(cmd);
    REQUIRE(rc == 0, "command failed (%d): %s", rc, cmd);
}

static double rel_err(const float *got, const float *want, size_t n)
{
    double mx = 0, err = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        err = isnan(e) ? INFINITY : fmax(err, e);
    }
    return mx > 0 ? err / mx : err;
}

static float *read_f32(struct lsa_h5 *f, const char *name, size_t want)
{
    float *v;
    size_t n;
    REQUIRE(lsa_h5_read_f32(f, name, &v, &n) == 0, "%s", lsa_errmsg());
    REQUIRE(n == want, "%s: %s has %zu values, want %zu", lsa_h5_path(f), name, n, want);
    return v;
}

static void check_fixture(const char *dir)
{
    char golden[512], cmd[4096], text_path[512], out[512];
    snprintf(golden, sizeof golden, "%s/golden.h5", dir);
    struct lsa_h5 *g = lsa_h5_open(golden);
    REQUIRE(g, "%s", lsa_errmsg());
    char **texts;
    size_t n_texts;
    REQUIRE(lsa_h5_list(g, "/texts", &texts, &n_texts) == 0, "%s", lsa_errmsg());
    for (size_t k = 0; k < n_texts; k++) {
        char grp[300], p[1024];
        snprintf(grp, sizeof grp, "/texts/%s", texts[k]);
        char *text;
        REQUIRE(lsa_h5_attr_str(g, grp, "text", &text) == 0, "%s", lsa_errmsg());
        snprintf(text_path, sizeof text_path, "%s/text-%zu.txt", tmp, k);
        FILE *fp = fopen(text_path, "wb");
        fputs(text, fp);
        fclose(fp);
        free(text);
        snprintf(out, sizeof out, "%s/cap.h5", tmp);
        snprintf(cmd, sizeof cmd, "%s capture --quiet --model %s --text %s --dtype f32 --out %s", lsa_bin, dir,
                 text_path, out);
        sh(cmd);
        struct lsa_h5 *c = lsa_h5_open(out);
        REQUIRE(c, "%s", lsa_errmsg());
        int64_t *ids, *tok64;
        size_t T, n;
        snprintf(p, sizeof p, "%s/input_ids", grp);
        REQUIRE(lsa_h5_read_i64(g, p, &ids, &T) == 0, "%s", lsa_errmsg());
        REQUIRE(lsa_h5_read_i64(c, "/tokens", &tok64, &n) == 0, "%s", lsa_errmsg());
        CHECK(n == T && memcmp(ids, tok64, T * 8) == 0, "%s %s: captured tokens differ from input_ids", dir, grp);
        int rank;
        int64_t dims[LSA_H5_MAX_RANK];
        REQUIRE(lsa_h5_shape(c, "/resid", &rank, dims) == 0 && rank == 3 && dims[1] == (int64_t)T, "resid shape");
        size_t P = (size_t)dims[0], D = (size_t)dims[2];
        snprintf(p, sizeof p, "%s/hidden_states", grp);
        float *hs = read_f32(g, p, P * T * D); /* golden has L+1 = P entries; the last is after the final norm */
        float *resid = read_f32(c, "/resid", P * T * D);
        float *fin = read_f32(c, "/resid_final", T * D);
        double worst = 0;
        for (size_t l = 0; l + 1 < P; l++) worst = fmax(worst, rel_err(resid + l * T * D, hs + l * T * D, T * D));
        worst = fmax(worst, rel_err(fin, hs + (P - 1) * T * D, T * D));
        CHECK(worst <= 1e-4, "%s %s: hidden states rel err %.3g", dir, grp, worst);
        float *nll = read_f32(c, "/nll", T);
        snprintf(p, sizeof p, "%s/nll", grp);
        float *want_nll = read_f32(g, p, T - 1);
        double ne = 0;
        for (size_t t = 0; t + 1 < T; t++) ne = fmax(ne, fabs((double)nll[t] - want_nll[t]));
        CHECK(ne <= 1e-3 && isnan(nll[T - 1]), "%s %s: nll err %.3g, last %g (want NaN)", dir, grp, ne, nll[T - 1]);
        printf("  %s %s: %zu tokens, %zu points, hidden rel err %.2e, nll err %.2e\n", dir, grp, T, P, worst, ne);
        free(hs), free(resid), free(fin), free(nll), free(want_nll), free(tok64);
        lsa_h5_close(c);

        /* one skip and one swap group through --order */
        const char *groups[] = {"skip_1", "swap_0_1"};
        for (int gi = 0; gi < 2; gi++) {
            char sub[400], order[256] = "";
            snprintf(sub, sizeof sub, "%s/%s", grp, groups[gi]);
            int64_t *ord;
            size_t no;
            REQUIRE(lsa_h5_attr_i64(g, sub, "order", &ord, &no) == 0, "%s", lsa_errmsg());
            for (size_t i = 0; i < no; i++)
                snprintf(order + strlen(order), sizeof order - strlen(order), "%s%lld", i ? "," : "", (long long)ord[i]);
            snprintf(cmd, sizeof cmd, "%s capture --quiet --model %s --text %s --dtype f32 --order %s --out %s",
                     lsa_bin, dir, text_path, order, out);
            sh(cmd);
            c = lsa_h5_open(out);
            REQUIRE(c, "%s", lsa_errmsg());
            int64_t *lo;
            size_t nlo;
            REQUIRE(lsa_h5_attr_i64(c, "/", "layer_order", &lo, &nlo) == 0, "%s", lsa_errmsg());
            CHECK(nlo == no && memcmp(lo, ord, no * 8) == 0, "%s: layer_order attribute is not the plan", sub);
            fin = read_f32(c, "/resid_final", T * D);
            nll = read_f32(c, "/nll", T);
            snprintf(p, sizeof p, "%s/final_hidden", sub);
            float *wf = read_f32(g, p, T * D);
            snprintf(p, sizeof p, "%s/nll", sub);
            want_nll = read_f32(g, p, T - 1);
            double he = rel_err(fin, wf, T * D);
            ne = 0;
            for (size_t t = 0; t + 1 < T; t++) ne = fmax(ne, fabs((double)nll[t] - want_nll[t]));
            CHECK(he <= 1e-4 && ne <= 1e-3, "%s: --order %s: final rel err %.3g, nll err %.3g", sub, order, he, ne);
            free(fin), free(nll), free(wf), free(want_nll), free(lo), free(ord);
            lsa_h5_close(c);
        }
        free(ids);
    }
    lsa_h5_free_names(texts, n_texts);
    lsa_h5_close(g);
}

/* Default f16, --layers, windows: the bookkeeping that goldens do not cover. */
static void check_windows(void)
{
    char cmd[4096], out[512], f32[512];
    const char *model = t_shared("models/tinystories-llama-12L");
    const char *text = t_shared("data/tinystories-sampled-val.txt");
    snprintf(f32, sizeof f32, "%s/full.h5", tmp);
    snprintf(out, sizeof out, "%s/win.h5", tmp);
    snprintf(cmd, sizeof cmd, "head -n 3 %s > %s/three.txt && %s capture --quiet --model %s --lines %s/three.txt "
             "--dtype f32 --out %s && %s capture --quiet --model %s --lines %s/three.txt --ctx 64 --layers 0,3-4,12 "
             "--out %s", text, tmp, lsa_bin, model, tmp, f32, lsa_bin, model, tmp, out);
    sh(cmd);
    struct lsa_h5 *a = lsa_h5_open(f32), *b = lsa_h5_open(out);
    REQUIRE(a && b, "%s", lsa_errmsg());
    int64_t *offa, *offb, *toka, *tokb;
    size_t na, nb, nta, ntb;
    REQUIRE(!lsa_h5_read_i64(a, "/seq_offsets", &offa, &na) && !lsa_h5_read_i64(b, "/seq_offsets", &offb, &nb), "offs");
    REQUIRE(!lsa_h5_read_i64(a, "/tokens", &toka, &nta) && !lsa_h5_read_i64(b, "/tokens", &tokb, &ntb), "tokens");
    CHECK(na == 4 && offa[0] == 0 && offa[3] == (int64_t)nta, "3 lines give 3 sequences: %zu offsets", na);
    /* windows of 64 with BOS: 63 content tokens each, BOS (id 1) first in every window */
    bool ok = offb[0] == 0 && offb[nb - 1] == (int64_t)ntb;
    for (size_t s = 0; s + 1 < nb; s++) ok &= offb[s + 1] - offb[s] <= 64 && offb[s + 1] > offb[s] && tokb[offb[s]] == 1;
    CHECK(ok, "windows: offsets or BOS wrong (%zu sequences)", nb - 1);
    size_t content_a = nta - 3, content_b = ntb - (nb - 1);
    CHECK(content_a == content_b, "windows keep every content token: %zu vs %zu", content_b, content_a);
    int rank;
    int64_t dims[LSA_H5_MAX_RANK];
    REQUIRE(lsa_h5_shape(b, "/resid", &rank, dims) == 0, "shape");
    CHECK(dims[0] == 4, "--layers 0,3-4,12 stores 4 points, found %lld", (long long)dims[0]);
    int64_t *pidx;
    size_t np;
    REQUIRE(lsa_h5_attr_i64(b, "/resid", "point_index", &pidx, &np) == 0, "%s", lsa_errmsg());
    CHECK(np == 4 && pidx[0] == 0 && pidx[1] == 3 && pidx[2] == 4 && pidx[3] == 12, "point_index");
    /* the first window's f16 values equal the f32 capture's within f16 rounding */
    size_t D = (size_t)dims[2], T0 = (size_t)offb[1];
    float *ra, *rb;
    size_t n;
    REQUIRE(!lsa_h5_read_f32(a, "/resid", &ra, &n) && !lsa_h5_read_f32(b, "/resid", &rb, &n), "resid");
    double worst = 0;
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < T0 * D; i++) {
            double x = ra[(size_t)pidx[k] * nta * D + i], y = rb[(size_t)k * ntb * D + i];
            worst = fmax(worst, fabs(x - y) / fmax(fabs(x), 1e-2));
        }
    CHECK(worst < 1e-3, "f16 point values differ from f32 by %.3g relative (f16 rounding is 4.9e-4)", worst);
    printf("  windows: %zu sequences from 3 lines at --ctx 64; f16 vs f32 max rel diff %.2e\n", nb - 1, worst);
    free(offa), free(offb), free(toka), free(tokb), free(pidx), free(ra), free(rb);
    lsa_h5_close(a);
    lsa_h5_close(b);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_capture PATH_TO_LSA");
    lsa_bin = argv[1];
    snprintf(tmp, sizeof tmp, "/tmp/lsa-test-capture-%d", (int)getpid());
    REQUIRE(mkdir(tmp, 0755) == 0, "mkdir %s", tmp);
    const char *fx[] = {"fixtures/tiny-gpt2",    "fixtures/tiny-llama", "fixtures/tiny-qwen2",
                        "fixtures/tiny-mistral", "fixtures/tiny-gemma", "fixtures/tiny-gpt_neox",
                        "fixtures/tiny-phi3",    "fixtures/stories260K-hf"};
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) check_fixture(t_shared(fx[i]));
    check_windows();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (!t_failures) sh(cmd);
    return t_finish("test_capture");
}
