/*
 * test_split — a forward whose layers are split by token rows among 2 and 3 threads (LSA_FORWARD_SPLIT=N;
 * small models split among the cores by default) against the same forward on one row range with
 * OpenBLAS's threads (LSA_FORWARD_SPLIT=1): every reported point, the NLL, the top ids and the logits, for several
 * architectures (sequential and parallel residual, fused and separate q/k/v, sliding window), window
 * lengths that split unevenly or not at all, and plans with dropped sub-blocks, a repeated layer and a
 * parallel group. Each row goes through the same arithmetic either way (the attention GEMMs through oneDNN's
 * sgemm when split, OpenBLAS's when not: src/packed.h), so the two must agree to rounding.
 */
#include "lsa/forward.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Every value the hook sees, in the order it sees them. */
struct tape {
    float *v;
    size_t n, cap;
};

static int record(void *ctx, enum lsa_point pt, int pos, const float *x, int n_tok, int d_model)
{
    (void)pt, (void)pos;
    struct tape *t = ctx;
    size_t n = (size_t)n_tok * d_model;
    if (t->n + n > t->cap) {
        size_t cap = (t->n + n) * 2;
        float *v = realloc(t->v, cap * sizeof *v);
        REQUIRE(v, "out of memory");
        t->v = v, t->cap = cap;
    }
    memcpy(t->v + t->n, x, n * sizeof *x);
    t->n += n;
    return 0;
}

struct out {
    struct tape tape;
    float *nll, *logits;
    int32_t *top;
};

static void run(const struct lsa_model *m, const char *split, const int32_t *ids, int T, const struct lsa_plan *plan,
                struct out *o)
{
    setenv("LSA_FORWARD_SPLIT", split, 1);
    struct lsa_fwd *f = lsa_fwd_new(m, T);
    REQUIRE(f, "%s", lsa_errmsg());
    int want = T >= 32 * atoi(split) ? atoi(split) : 1;
    CHECK(lsa_fwd_split(f, T) == want, "LSA_FORWARD_SPLIT=%s, T=%d: %d threads", split, T, lsa_fwd_split(f, T));
    int V = lsa_model_arch(m)->n_vocab;
    memset(o, 0, sizeof *o);
    o->nll = calloc((size_t)T, sizeof *o->nll);
    o->logits = calloc((size_t)T * V, sizeof *o->logits);
    o->top = calloc((size_t)T * 5, sizeof *o->top);
    REQUIRE(o->nll && o->logits && o->top, "out of memory");
    struct lsa_fwd_request req = {.plan = plan,
                                  .points = LSA_PT_EMBED | LSA_PT_RESID_MID | LSA_PT_ATTN_OUT | LSA_PT_MLP_OUT |
                                            LSA_PT_RESID_POST | LSA_PT_FINAL_NORM,
                                  .hook = record,
                                  .hook_ctx = &o->tape,
                                  .nll = o->nll,
                                  .top_k = 5,
                                  .top_ids = o->top,
                                  .logits = o->logits};
    REQUIRE(lsa_fwd_run(f, ids, T, &req) == 0, "%s", lsa_errmsg());
    lsa_fwd_free(f);
    /* and once more without logits asked for: the head's per-thread scratch */
    setenv("LSA_FORWARD_SPLIT", split, 1);
    f = lsa_fwd_new(m, T);
    REQUIRE(f, "%s", lsa_errmsg());
    float *nll2 = calloc((size_t)T, sizeof *nll2);
    struct lsa_fwd_request req2 = {.plan = plan, .nll = nll2};
    REQUIRE(lsa_fwd_run(f, ids, T, &req2) == 0, "%s", lsa_errmsg());
    for (int t = 0; t + 1 < T; t++) CHECK(nll2[t] == o->nll[t], "nll without logits differs at token %d", t);
    free(nll2);
    lsa_fwd_free(f);
}

static double rel_dev(const float *a, const float *b, size_t n)
{
    double mx = 0, dev = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)a[i]));
        dev = fmax(dev, fabs((double)a[i] - b[i]));
    }
    return mx > 0 ? dev / mx : dev;
}

static void free_out(struct out *o) { free(o->tape.v), free(o->nll), free(o->logits), free(o->top); }

static void compare(const struct lsa_model *m, const char *what, const char *n, const int32_t *ids, int T,
                    const struct lsa_plan *plan)
{
    struct out one, split;
    run(m, "1", ids, T, plan, &one);
    run(m, n, ids, T, plan, &split);
    int V = lsa_model_arch(m)->n_vocab;
    REQUIRE(one.tape.n == split.tape.n, "%s T=%d: %zu vs %zu reported values", what, T, one.tape.n, split.tape.n);
    double d_pts = rel_dev(one.tape.v, split.tape.v, one.tape.n);
    double d_log = rel_dev(one.logits, split.logits, (size_t)T * V);
    double d_nll = 0;
    for (int t = 0; t + 1 < T; t++) d_nll = fmax(d_nll, fabs((double)one.nll[t] - split.nll[t]));
    int top_diff = 0;
    for (int i = 0; i < T * 5; i++) top_diff += one.top[i] != split.top[i];
    bool same = memcmp(one.tape.v, split.tape.v, one.tape.n * sizeof(float)) == 0;
    printf("  %-34s %s threads T=%4d: points %.2e, logits %.2e, nll %.2e, top ids differing %d%s\n", what, n, T, d_pts,
           d_log, d_nll, top_diff, same ? " (points bit-identical)" : "");
    CHECK(d_pts < 1e-5, "%s T=%d: points deviate by %.3g of their largest value", what, T, d_pts);
    CHECK(d_log < 1e-5, "%s T=%d: logits deviate by %.3g", what, T, d_log);
    CHECK(d_nll < 1e-4, "%s T=%d: nll deviates by %.3g", what, T, d_nll);
    CHECK(top_diff <= T / 50, "%s T=%d: %d top ids differ", what, T, top_diff);
    free_out(&one), free_out(&split);
}

static void check_model(const char *rel)
{
    const char *dir = t_shared(rel);
    struct lsa_model *m = lsa_model_load(dir);
    REQUIRE(m, "%s", lsa_errmsg());
    const struct lsa_arch *a = lsa_model_arch(m);
    int L = a->n_layer, Tmax = 300;
    if (a->pos == LSA_POS_LEARNED && a->n_ctx < Tmax) Tmax = a->n_ctx;
    int32_t *ids = malloc((size_t)Tmax * sizeof *ids);
    uint32_t s = 12345;
    for (int t = 0; t < Tmax; t++) {
        s = s * 1664525u + 1013904223u;
        ids[t] = (int32_t)((s >> 8) % (uint32_t)a->n_vocab);
    }
    char what[256];
    int Ts[] = {Tmax, 100, 77, 64, 33}; /* 33: too short to split */
    for (size_t k = 0; k < sizeof Ts / sizeof Ts[0]; k++) {
        snprintf(what, sizeof what, "%s", rel);
        compare(m, what, "2", ids, Ts[k] < Tmax ? Ts[k] : Tmax, NULL);
        compare(m, what, "3", ids, Ts[k] < Tmax ? Ts[k] : Tmax, NULL);
    }
    /* layer 1 twice, attention of 0 and MLP of 2 dropped, positions 3 and 4 in parallel */
    struct lsa_plan *p = lsa_plan_new(L + 1);
    REQUIRE(p, "%s", lsa_errmsg());
    for (int i = 0; i <= L; i++) p->layer[i] = i <= 1 ? i : i - 1;
    p->drop_attn[0] = 1;
    p->drop_mlp[2] = 1;
    if (L >= 4) p->group[3] = p->group[4] = 1;
    REQUIRE(lsa_plan_check(p, L) == 0, "%s", lsa_errmsg());
    snprintf(what, sizeof what, "%s, plan", rel);
    compare(m, what, "2", ids, Tmax, p);
    compare(m, what, "3", ids, Tmax, p);
    lsa_plan_free(p);
    free(ids);
    lsa_model_free(m);
}

int main(void)
{
    check_model("models/tinystories-llama-12L");
    check_model("models/tinystories-gpt2-12L");
    check_model("fixtures/tiny-gpt_neox");
    check_model("fixtures/tiny-mistral");
    check_model("fixtures/tiny-phi3");
    check_model("fixtures/tiny-gemma");
    check_model("fixtures/tiny-qwen2");
    return t_finish("test_split");
}
