/*
 * test_robustness — the delete/swap sweep against transformers' own skip_<i> / swap_<i>_<i+1> NLLs in
 * every golden file (mean NLL within 1e-4 per text), with and without prefix reuse (which must agree
 * exactly); KL >= 0 and top-1 agreement in [0, 1]; and the removal curves start at the baseline. Also:
 * a removal order given from outside (and a bad one refused), and text cut into windows as lsa capture does.
 */
#include "lsa/h5.h"
#include "robustness.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static double golden_mean(struct lsa_h5 *g, const char *path)
{
    float *v;
    size_t n;
    REQUIRE(lsa_h5_read_f32(g, path, &v, &n) == 0, "%s", lsa_errmsg());
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    free(v);
    return s / (double)n;
}

static void check_model(const char *dir)
{
    char golden[512];
    snprintf(golden, sizeof golden, "%s/golden.h5", dir);
    struct lsa_model *m = lsa_model_load(dir);
    REQUIRE(m, "%s", lsa_errmsg());
    struct lsa_h5 *g = lsa_h5_open(golden);
    REQUIRE(g, "%s", lsa_errmsg());
    int L = lsa_model_arch(m)->n_layer;
    char **texts;
    size_t n_texts;
    REQUIRE(lsa_h5_list(g, "/texts", &texts, &n_texts) == 0, "%s", lsa_errmsg());
    double worst = 0;
    for (size_t k = 0; k < n_texts; k++) {
        char p[600];
        int64_t *ids64;
        size_t T;
        snprintf(p, sizeof p, "/texts/%s/input_ids", texts[k]);
        REQUIRE(lsa_h5_read_i64(g, p, &ids64, &T) == 0, "%s", lsa_errmsg());
        int32_t *ids = malloc(T * sizeof *ids);
        for (size_t i = 0; i < T; i++) ids[i] = (int32_t)ids64[i];
        int64_t offs[2] = {0, (int64_t)T};
        struct lsa_robust_opts o = lsa_robust_opts_default();
        o.random_seeds = 1;
        struct lsa_robust_result *rp, *rp2;
        REQUIRE(lsa_robust_run(m, ids, offs, 1, &o, &rp) == 0, "%s", lsa_errmsg());
        o.reuse_prefix = false;
        REQUIRE(lsa_robust_run(m, ids, offs, 1, &o, &rp2) == 0, "%s", lsa_errmsg());
        const struct lsa_robust_result r = *rp, r2 = *rp2;
        snprintf(p, sizeof p, "/texts/%s/nll", texts[k]);
        double e = fabs(r.baseline_nll - golden_mean(g, p));
        worst = fmax(worst, e);
        CHECK(e < 1e-4, "%s text %s: baseline nll %.6f vs golden %.6f", dir, texts[k], r.baseline_nll,
              golden_mean(g, p));
        for (int i = 0; i < L; i++) {
            snprintf(p, sizeof p, "/texts/%s/skip_%d/nll", texts[k], i);
            double want = golden_mean(g, p);
            e = fabs(r.del[i].nll - want);
            worst = fmax(worst, e);
            CHECK(e < 1e-4, "%s text %s: delete %d nll %.6f vs golden %.6f", dir, texts[k], i, r.del[i].nll, want);
            CHECK(r.del[i].nll == r2.del[i].nll && r.del[i].kl == r2.del[i].kl,
                  "delete %d: prefix reuse changes the result", i);
            CHECK(r.del[i].kl >= 0 && r.del[i].top1 >= 0 && r.del[i].top1 <= 1, "delete %d: kl %g top1 %g", i,
                  r.del[i].kl, r.del[i].top1);
            if (i + 1 < L) {
                snprintf(p, sizeof p, "/texts/%s/swap_%d_%d/nll", texts[k], i, i + 1);
                want = golden_mean(g, p);
                e = fabs(r.swap[i].nll - want);
                worst = fmax(worst, e);
                CHECK(e < 1e-4, "%s text %s: swap %d,%d nll %.6f vs golden %.6f", dir, texts[k], i, i + 1,
                      r.swap[i].nll, want);
                CHECK(r.swap[i].nll == r2.swap[i].nll, "swap %d: prefix reuse changes the result", i);
            }
            CHECK(r.drop_attn[i].nll == r2.drop_attn[i].nll && r.drop_mlp[i].nll == r2.drop_mlp[i].nll,
                  "drop %d: prefix reuse changes the result", i);
        }
        CHECK(r.curve_bi[0] == r.baseline_nll && r.curve_block[0] == r.baseline_nll, "curves start at the baseline");
        CHECK(fabs(r.curve_block[1] - r.del[r.block_start[1]].nll) < 1e-9, "best block of 1 = that layer's deletion");
        CHECK(fabs(r.curve_bi[1] - r.del[r.bi_order[0]].nll) < 1e-9, "first BI removal = that layer's deletion");
        lsa_robust_free(rp);
        lsa_robust_free(rp2);
        free(ids);
        free(ids64);
    }
    printf("  %s: %zu texts, %d layers, max |mean nll - golden| %.2e\n", dir, n_texts, L, worst);
    lsa_h5_free_names(texts, n_texts);
    lsa_h5_close(g);
    lsa_model_free(m);
}

/* A given BI order drives the BI curve; a non-permutation is refused; windows from text. */
static void check_extras(void)
{
    struct lsa_model *m = lsa_model_load(t_shared("fixtures/tiny-llama"));
    REQUIRE(m, "%s", lsa_errmsg());
    int L = lsa_model_arch(m)->n_layer;
    struct lsa_robust_windows *w = lsa_robust_windows_new();
    REQUIRE(w, "%s", lsa_errmsg());
    const char *text = "Once upon a time there was a little dog who liked to run in the park with his friends.";
    REQUIRE(lsa_robust_windows_add(w, m, text, strlen(text), "text", 8, 0) == 0, "%s", lsa_errmsg());
    const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
    int32_t *ids;
    size_t n;
    REQUIRE(lsa_tokenizer_encode(tok, text, strlen(text), false, &ids, &n) == 0, "%s", lsa_errmsg());
    bool bos = lsa_tokenizer_adds_bos(tok) && lsa_tokenizer_bos(tok) >= 0;
    int body = 8 - bos;
    CHECK(w->n_seq == (int)((n + body - 1) / body), "%zu tokens in windows of %d: %d windows", n, body, w->n_seq);
    for (int s = 0; s < w->n_seq; s++) {
        int64_t len = w->offsets[s + 1] - w->offsets[s];
        CHECK(len <= 8 && (!bos || w->tokens[w->offsets[s]] == lsa_tokenizer_bos(tok)), "window %d: %lld tokens", s,
              (long long)len);
    }
    printf("  windows: %zu tokens -> %d windows of <= 8 (%s BOS each)\n", n, w->n_seq, bos ? "with" : "without");
    free(ids);
    lsa_robust_windows_free(w);
    w = lsa_robust_windows_new();
    REQUIRE(lsa_robust_windows_add(w, m, text, strlen(text), "text", 8, 11) == 0, "%s", lsa_errmsg());
    CHECK(w->n_tokens == 11 && w->n_seq == 2, "max_tokens 11: %lld tokens in %d windows", (long long)w->n_tokens,
          w->n_seq);

    struct lsa_robust_opts o = lsa_robust_opts_default();
    o.random_seeds = 1, o.sublayers = o.painters = false;
    int order[16], bad[16];
    for (int i = 0; i < L; i++) order[i] = L - 1 - i, bad[i] = 0;
    o.bi_order = bad;
    struct lsa_robust_result *r = NULL;
    CHECK(lsa_robust_run(m, w->tokens, w->offsets, w->n_seq, &o, &r) == LSA_EINVAL && !r, "a bad order is refused");
    printf("  bad order: %s\n", lsa_errmsg());
    o.bi_order = order;
    o.bi_order_source = "test";
    REQUIRE(lsa_robust_run(m, w->tokens, w->offsets, w->n_seq, &o, &r) == 0, "%s", lsa_errmsg());
    CHECK(r->curve_bi[1] == r->del[L - 1].nll && r->bi_order[0] == L - 1 && !strcmp(r->bi_order_source, "test"),
          "the given order drives the BI curve");
    CHECK(r->n_tokens == 11 && r->n_windows == 2 && r->n_predicted == 9, "%lld tokens, %d windows, %lld predicted",
          (long long)r->n_tokens, r->n_windows, (long long)r->n_predicted);
    lsa_robust_free(r);
    lsa_robust_windows_free(w);
    lsa_model_free(m);
}

int main(void)
{
    check_extras();
    const char *dirs[] = {"fixtures/tiny-gpt2",    "fixtures/tiny-llama",     "fixtures/tiny-qwen2",
                          "fixtures/tiny-mistral", "fixtures/tiny-gemma",     "fixtures/tiny-gpt_neox",
                          "fixtures/tiny-phi3",    "fixtures/stories260K-hf", "models/tinystories-llama-12L",
                          "models/tinystories-gpt2-12L"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) check_model(t_shared(dirs[i]));
    return t_finish("test_robustness");
}
