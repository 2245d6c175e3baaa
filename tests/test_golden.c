/*
 * test_golden — reproduce transformers' own outputs stored in a checkpoint folder's golden.h5:
 * token ids, every hidden state (index L is after the final norm), per-token NLL, top-1/top-5 ids, and
 * the skip_<i> / swap_<i>_<i+1> interventions (plan from the group's `order` attribute).
 * Usage: test_golden GOLDEN_DIR [--model PATH] [--tokenizer PATH] [--no-tokenizer] [--hidden-tol X]
 *                    [--nll-tol X] [--top1-tol N]
 * GOLDEN_DIR holds golden.h5 (relative to the repo root, e.g. ../shared/fixtures/tiny-llama); the model is
 * GOLDEN_DIR itself unless --model names another checkpoint of the same weights (a GGUF file, a llama2.c
 * .bin, whose tokenizer.bin --tokenizer may name). Tolerances: hidden 1e-4 x layer max |value|, NLL 1e-3
 * absolute, no top-1 differences; quantized checkpoints pass looser ones, stated where the test is
 * registered.
 */
#include "lsa/forward.h"
#include "lsa/h5.h"
#include "lsa/llama2c.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static double HIDDEN_TOL = 1e-4, NLL_TOL = 1e-3;
static int TOP1_TOL = 0;

struct collect {
    float *hs; /* (n_points, T, d): embed, resid_post of positions 0..n-2, final norm */
    int n_points, T, d;
    float *final_hidden; /* (T, d) */
};

static int hook(void *ctx, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    struct collect *c = ctx;
    int slot = pt == LSA_PT_EMBED ? 0 : pt == LSA_PT_FINAL_NORM ? c->n_points - 1 : pos + 1;
    if (pt == LSA_PT_FINAL_NORM && c->final_hidden) memcpy(c->final_hidden, x, (size_t)T * d * sizeof *x);
    if (c->hs && slot < c->n_points - (pt == LSA_PT_FINAL_NORM ? 0 : 1))
        memcpy(c->hs + (size_t)slot * T * d, x, (size_t)T * d * sizeof *x);
    return 0;
}

/* Max error of a (T, d) slab relative to the reference's max |value|. */
static double rel_err(const float *got, const float *want, size_t n, size_t *where)
{
    double mx = 0, err = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= err)) { /* NaN counts as the worst error */
            err = isnan(e) ? INFINITY : e;
            *where = i;
        }
    }
    return mx > 0 ? err / mx : err;
}

static double nll_err(const float *got, const float *want, size_t n, size_t *where)
{
    double err = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= err)) {
            err = isnan(e) ? INFINITY : e;
            *where = i;
        }
    }
    return err;
}

static void check_text(struct lsa_model *m, struct lsa_h5 *g, const char *grp, bool use_tok)
{
    const struct lsa_arch *a = lsa_model_arch(m);
    char p[1024];
    int64_t *ids64;
    size_t T;
    snprintf(p, sizeof p, "%s/input_ids", grp);
    REQUIRE(lsa_h5_read_i64(g, p, &ids64, &T) == 0, "%s", lsa_errmsg());
    int32_t *ids = malloc(T * sizeof *ids);
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)ids64[i];

    if (use_tok) {
        char *text;
        REQUIRE(lsa_h5_attr_str(g, grp, "text", &text) == 0, "%s", lsa_errmsg());
        const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
        REQUIRE(tok, "%s: model has no tokenizer", lsa_model_path(m));
        int32_t *got;
        size_t n_got;
        int rc = lsa_tokenizer_encode(tok, text, strlen(text), true, &got, &n_got);
        CHECK(rc == 0, "%s: encode failed: %s", grp, lsa_errmsg());
        if (rc == 0) {
            size_t k = 0;
            while (k < n_got && k < T && got[k] == ids[k]) k++;
            CHECK(n_got == T && k == T, "%s: token ids differ: %zu vs %zu ids, first difference at %zu", grp, n_got, T, k);
            free(got);
        }
        free(text);
    }

    int L = a->n_layer, d = a->d_model;
    struct collect c = {.n_points = L + 1, .T = (int)T, .d = d};
    c.hs = calloc((size_t)(L + 1) * T * d, sizeof(float));
    float *nll = calloc(T, sizeof *nll);
    int32_t *top = calloc(T * 5, sizeof *top);
    struct lsa_fwd *f = lsa_fwd_new(m, (int)T);
    REQUIRE(f, "%s", lsa_errmsg());
    struct lsa_fwd_request req = {.points = LSA_PT_EMBED | LSA_PT_RESID_POST | LSA_PT_FINAL_NORM, .hook = hook,
                                  .hook_ctx = &c, .nll = nll, .top_k = 5, .top_ids = top};
    REQUIRE(lsa_fwd_run(f, ids, (int)T, &req) == 0, "%s: forward: %s", grp, lsa_errmsg());

    float *hs;
    size_t n;
    snprintf(p, sizeof p, "%s/hidden_states", grp);
    REQUIRE(lsa_h5_read_f32(g, p, &hs, &n) == 0 && n == (size_t)(L + 1) * T * d, "%s: hidden_states shape", grp);
    double worst = 0;
    for (int l = 0; l <= L; l++) {
        size_t where = 0, off = (size_t)l * T * d;
        double e = rel_err(c.hs + off, hs + off, T * (size_t)d, &where);
        worst = fmax(worst, e);
        CHECK(e <= HIDDEN_TOL, "%s: hidden_states[%d] token %zu dim %zu: got %g want %g, rel err %.3g > %.0e", grp, l,
              where / d, where % d, c.hs[off + where], hs[off + where], e, HIDDEN_TOL);
    }
    float *want_nll;
    int64_t *want_top;
    snprintf(p, sizeof p, "%s/nll", grp);
    REQUIRE(lsa_h5_read_f32(g, p, &want_nll, &n) == 0 && n == T - 1, "%s: nll shape", grp);
    size_t where = 0;
    double ne = nll_err(nll, want_nll, T - 1, &where);
    CHECK(ne <= NLL_TOL, "%s: nll token %zu: got %g want %g (err %.3g > %.0e)", grp, where, nll[where],
          want_nll[where], ne, NLL_TOL);
    snprintf(p, sizeof p, "%s/top5_ids", grp);
    REQUIRE(lsa_h5_read_i64(g, p, &want_top, &n) == 0 && n == T * 5, "%s: top5 shape", grp);
    int top1_bad = 0, top5_bad = 0;
    for (size_t t = 0; t < T; t++) {
        top1_bad += top[t * 5] != want_top[t * 5];
        for (int k = 0; k < 5; k++) top5_bad += top[t * 5 + k] != want_top[t * 5 + k];
    }
    CHECK(top1_bad <= TOP1_TOL, "%s: top-1 ids differ at %d of %zu tokens (%d allowed)", grp, top1_bad, T, TOP1_TOL);
    printf("  %s: %zu tokens, hidden max rel err %.2e, nll max err %.2e, top-5 mismatches %d\n", grp, T, worst, ne,
           top5_bad);
    free(want_nll);
    free(want_top);
    free(hs);

    /* interventions */
    char **names;
    size_t n_names;
    REQUIRE(lsa_h5_list(g, grp, &names, &n_names) == 0, "%s", lsa_errmsg());
    int n_plans = 0;
    double worst_plan_h = 0, worst_plan_nll = 0;
    for (size_t i = 0; i < n_names; i++) {
        if (strncmp(names[i], "skip_", 5) && strncmp(names[i], "swap_", 5)) continue;
        char sub[600];
        snprintf(sub, sizeof sub, "%s/%s", grp, names[i]);
        int64_t *order;
        size_t n_order;
        REQUIRE(lsa_h5_attr_i64(g, sub, "order", &order, &n_order) == 0, "%s", lsa_errmsg());
        struct lsa_plan *plan = lsa_plan_new((int)n_order);
        for (size_t k = 0; k < n_order; k++) plan->layer[k] = (int32_t)order[k];
        struct collect c2 = {.n_points = 1, .T = (int)T, .d = d};
        c2.final_hidden = calloc(T * (size_t)d, sizeof(float));
        struct lsa_fwd_request r2 = {.plan = plan, .points = LSA_PT_FINAL_NORM, .hook = hook, .hook_ctx = &c2,
                                     .nll = nll};
        REQUIRE(lsa_fwd_run(f, ids, (int)T, &r2) == 0, "%s: %s", sub, lsa_errmsg());
        float *fh, *wn;
        snprintf(p, sizeof p, "%s/final_hidden", sub);
        REQUIRE(lsa_h5_read_f32(g, p, &fh, &n) == 0 && n == T * (size_t)d, "%s: final_hidden", sub);
        snprintf(p, sizeof p, "%s/nll", sub);
        REQUIRE(lsa_h5_read_f32(g, p, &wn, &n) == 0 && n == T - 1, "%s: nll", sub);
        double he = rel_err(c2.final_hidden, fh, T * (size_t)d, &where);
        CHECK(he <= HIDDEN_TOL, "%s: final_hidden rel err %.3g > %.0e at token %zu", sub, he, HIDDEN_TOL, where / d);
        double ne2 = nll_err(nll, wn, T - 1, &where);
        CHECK(ne2 <= NLL_TOL, "%s: nll err %.3g > %.0e at token %zu", sub, ne2, NLL_TOL, where);
        worst_plan_h = fmax(worst_plan_h, he);
        worst_plan_nll = fmax(worst_plan_nll, ne2);
        n_plans++;
        free(fh);
        free(wn);
        free(c2.final_hidden);
        free(order);
        lsa_plan_free(plan);
    }
    CHECK(n_plans >= 2 * a->n_layer - 1, "%s: expected skip/swap groups for every layer, found %d", grp, n_plans);
    printf("  %s: %d skip/swap plans, final hidden max rel err %.2e, nll max err %.2e\n", grp, n_plans, worst_plan_h,
           worst_plan_nll);
    lsa_h5_free_names(names, n_names);
    lsa_fwd_free(f);
    free(c.hs);
    free(nll);
    free(top);
    free(ids);
    free(ids64);
}

int main(int argc, char **argv)
{
    const char *usage = "usage: test_golden GOLDEN_DIR [--model PATH] [--tokenizer PATH] [--no-tokenizer] "
                        "[--hidden-tol X] [--nll-tol X] [--top1-tol N]";
    REQUIRE(argc >= 2, "%s", usage);
    const char *dir = argv[1], *model = argv[1], *tok = NULL;
    bool use_tok = true;
    for (int i = 2; i < argc; i++) {
        bool val = i + 1 < argc;
        if (!strcmp(argv[i], "--no-tokenizer")) use_tok = false;
        else if (!strcmp(argv[i], "--model") && val) model = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && val) tok = argv[++i];
        else if (!strcmp(argv[i], "--hidden-tol") && val) HIDDEN_TOL = atof(argv[++i]);
        else if (!strcmp(argv[i], "--nll-tol") && val) NLL_TOL = atof(argv[++i]);
        else if (!strcmp(argv[i], "--top1-tol") && val) TOP1_TOL = atoi(argv[++i]);
        else REQUIRE(0, "bad argument %s; %s", argv[i], usage);
    }
    char golden[1024];
    snprintf(golden, sizeof golden, "%s/golden.h5", dir);
    FILE *probe = fopen(golden, "rb");
    REQUIRE(probe, "required test data %s is missing (../shared must sit beside the checkout)", golden);
    fclose(probe);
    struct lsa_model *m = tok ? lsa_llama2c_load(model, tok) : lsa_model_load(model);
    REQUIRE(m, "load %s: %s", model, lsa_errmsg());
    if (model != dir) printf("model %s checked against %s (tolerances: hidden %.1e, nll %.1e, top-1 %d)\n", model,
                             golden, HIDDEN_TOL, NLL_TOL, TOP1_TOL);
    struct lsa_h5 *g = lsa_h5_open(golden);
    REQUIRE(g, "%s", lsa_errmsg());
    char **texts;
    size_t n_texts;
    REQUIRE(lsa_h5_list(g, "/texts", &texts, &n_texts) == 0 && n_texts > 0, "%s: no texts", golden);
    printf("%s: %s, %d layers, d=%d, dtype %s\n", dir, lsa_model_arch(m)->model_type, lsa_model_arch(m)->n_layer,
           lsa_model_arch(m)->d_model, lsa_model_arch(m)->dtype);
    for (size_t i = 0; i < n_texts; i++) {
        char grp[256];
        snprintf(grp, sizeof grp, "/texts/%s", texts[i]);
        check_text(m, g, grp, use_tok);
    }
    lsa_h5_free_names(texts, n_texts);
    lsa_h5_close(g);
    lsa_model_free(m);
    return t_finish(dir);
}
