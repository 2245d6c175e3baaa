/*
 * test_plan — layer plans: parsing of the CLI specs, and invariants of the forward under interventions
 * that need no reference implementation:
 *   - the identity plan equals no plan;
 *   - dropping both sub-blocks of every layer leaves the embedding untouched;
 *   - a parallel group {a, b} gives x + (f_a(x) - x) + (f_b(x) - x), with f_a, f_b run alone;
 *   - a repeated layer equals running it twice by hand (resid_post of the first run fed again);
 *   - resid_mid = input + attn_out and resid_post = resid_mid + mlp_out at every position.
 */
#include "lsa/forward.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define MAXP 16

struct rec {
    int T, d;
    float *embed, *post[MAXP], *mid[MAXP], *attn[MAXP], *mlp[MAXP];
};

static void keep(float **slot, const float *x, size_t n)
{
    if (!*slot) *slot = malloc(n * sizeof(float));
    memcpy(*slot, x, n * sizeof(float));
}

static int hook(void *ctx, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    struct rec *r = ctx;
    size_t n = (size_t)T * d;
    r->T = T;
    r->d = d;
    switch (pt) {
    case LSA_PT_EMBED: keep(&r->embed, x, n); break;
    case LSA_PT_RESID_POST: keep(&r->post[pos], x, n); break;
    case LSA_PT_RESID_MID: keep(&r->mid[pos], x, n); break;
    case LSA_PT_ATTN_OUT: keep(&r->attn[pos], x, n); break;
    case LSA_PT_MLP_OUT: keep(&r->mlp[pos], x, n); break;
    default: break;
    }
    return 0;
}

static void rec_free(struct rec *r)
{
    free(r->embed);
    for (int i = 0; i < MAXP; i++) {
        free(r->post[i]);
        free(r->mid[i]);
        free(r->attn[i]);
        free(r->mlp[i]);
    }
    memset(r, 0, sizeof *r);
}

static void run(struct lsa_fwd *f, const int32_t *ids, int T, const struct lsa_plan *p, struct rec *r)
{
    struct lsa_fwd_request req = {.plan = p, .points = ~0u, .hook = hook, .hook_ctx = r};
    REQUIRE(lsa_fwd_run(f, ids, T, &req) == 0, "forward: %s", lsa_errmsg());
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void check_parse(void)
{
    struct lsa_plan *p = lsa_plan_parse(6, "0-2,5,4-3", NULL, NULL, NULL, NULL);
    int want[] = {0, 1, 2, 5, 4, 3};
    REQUIRE(p && p->n == 6, "parse order: %s", lsa_errmsg());
    CHECK(memcmp(p->layer, want, sizeof want) == 0, "order 0-2,5,4-3");
    lsa_plan_free(p);
    p = lsa_plan_parse(6, NULL, "1,3", "4:5", "0", "2");
    int want2[] = {0, 2, 5, 4};
    REQUIRE(p && p->n == 4, "parse skip+swap: %s", lsa_errmsg());
    CHECK(memcmp(p->layer, want2, sizeof want2) == 0, "skip 1,3 swap 4:5 gives %d,%d,%d,%d", p->layer[0], p->layer[1],
          p->layer[2], p->layer[3]);
    CHECK(p->drop_attn[0] && !p->drop_attn[1] && p->drop_mlp[1] && !p->drop_mlp[0], "drop flags");
    char buf[128];
    lsa_plan_format(p, buf, sizeof buf);
    CHECK(strcmp(buf, "0-attn,2-mlp,5,4") == 0, "format: %s", buf);
    lsa_plan_free(p);
    const char *bad[][2] = {{"0,x", NULL}, {"7", NULL}, {NULL, "-1"}, {"1--2", NULL}};
    for (size_t i = 0; i < 4; i++) {
        p = lsa_plan_parse(6, bad[i][0], bad[i][1], NULL, NULL, NULL);
        CHECK(!p && strstr(lsa_errmsg(), bad[i][0] ? bad[i][0] : bad[i][1]), "bad spec %s accepted or unclear: %s",
              bad[i][0] ? bad[i][0] : bad[i][1], lsa_errmsg());
        lsa_plan_free(p);
    }
    p = lsa_plan_parse(6, NULL, NULL, "2:9", NULL, NULL);
    CHECK(!p && strstr(lsa_errmsg(), "--swap 2:9"), "swap with absent layer: %s", lsa_errmsg());
    lsa_plan_free(p);
}

int main(void)
{
    check_parse();
    struct lsa_model *m = lsa_model_load(t_shared("fixtures/tiny-llama"));
    REQUIRE(m, "%s", lsa_errmsg());
    int32_t ids[] = {1, 403, 407, 261, 378, 285, 379, 288, 442, 331, 278, 263, 317};
    int T = (int)(sizeof ids / sizeof ids[0]), d = lsa_model_arch(m)->d_model, L = lsa_model_arch(m)->n_layer;
    size_t n = (size_t)T * d;
    struct lsa_fwd *f = lsa_fwd_new(m, T);
    REQUIRE(f, "%s", lsa_errmsg());

    struct rec base = {0}, r = {0};
    run(f, ids, T, NULL, &base);
    struct lsa_plan *id = lsa_plan_identity(L);
    run(f, ids, T, id, &r);
    CHECK(maxdiff(r.post[L - 1], base.post[L - 1], n) == 0, "identity plan differs from no plan");
    for (int p = 0; p < L; p++) {
        const float *in = p ? base.post[p - 1] : base.embed;
        float *sum = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) sum[i] = in[i] + base.attn[p][i];
        CHECK(maxdiff(sum, base.mid[p], n) < 1e-5, "position %d: resid_mid != input + attn_out", p);
        for (size_t i = 0; i < n; i++) sum[i] = base.mid[p][i] + base.mlp[p][i];
        CHECK(maxdiff(sum, base.post[p], n) < 1e-5, "position %d: resid_post != resid_mid + mlp_out", p);
        free(sum);
    }
    rec_free(&r);

    /* drop everything: the residual stream is the embedding */
    struct lsa_plan *p = lsa_plan_parse(L, NULL, NULL, NULL, "0-3", "0-3");
    run(f, ids, T, p, &r);
    CHECK(maxdiff(r.post[L - 1], base.embed, n) == 0, "all sub-blocks dropped but the residual changed");
    lsa_plan_free(p);
    rec_free(&r);

    /* parallel group {1, 2} after layer 0 */
    struct rec ra = {0}, rb = {0};
    struct lsa_plan *pa = lsa_plan_parse(L, "0,1", NULL, NULL, NULL, NULL);
    struct lsa_plan *pb = lsa_plan_parse(L, "0,2", NULL, NULL, NULL, NULL);
    run(f, ids, T, pa, &ra);
    run(f, ids, T, pb, &rb);
    p = lsa_plan_parse(L, "0,1,2", NULL, NULL, NULL, NULL);
    p->group[1] = p->group[2] = 7;
    run(f, ids, T, p, &r);
    float *want = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) want[i] = ra.post[1][i] + rb.post[1][i] - ra.post[0][i];
    double e = maxdiff(r.post[2], want, n);
    CHECK(e < 1e-5, "parallel group {1,2}: max diff %g from f1(x) + f2(x) - x", e);
    CHECK(maxdiff(r.post[1], r.post[2], n) == 0, "both members of a group report the group's output");
    printf("  parallel group: max diff %.2e\n", e);
    lsa_plan_free(p);
    rec_free(&r);

    /* repeat: 0,1,1 equals 0,1 then layer 1 on its output (parallel group of one = sequential) */
    p = lsa_plan_parse(L, "0,1,1", NULL, NULL, NULL, NULL);
    run(f, ids, T, p, &r);
    CHECK(maxdiff(r.post[1], ra.post[1], n) == 0, "repeat: prefix differs");
    CHECK(maxdiff(r.post[2], r.post[1], n) > 1e-3, "repeat: second run of layer 1 changed nothing");
    p->group[2] = 3;
    struct rec r2 = {0};
    run(f, ids, T, p, &r2);
    CHECK(maxdiff(r2.post[2], r.post[2], n) == 0, "a one-member group differs from sequential");
    free(want);
    lsa_plan_free(p);
    lsa_plan_free(pa);
    lsa_plan_free(pb);
    lsa_plan_free(id);
    rec_free(&r);
    rec_free(&r2);
    rec_free(&ra);
    rec_free(&rb);

    /* prefix reuse: skipping layer 2 = intact resid_post[1] run through positions 2.. of the skip plan */
    {
        struct lsa_plan *sk = lsa_plan_parse(L, NULL, "2", NULL, NULL, NULL);
        struct rec full = {0}, part = {0};
        run(f, ids, T, sk, &full);
        struct lsa_fwd_request rq = {.plan = sk, .points = ~0u, .hook = hook, .hook_ctx = &part,
                                     .x_start = base.post[1], .start_pos = 2};
        REQUIRE(lsa_fwd_run(f, ids, T, &rq) == 0, "%s", lsa_errmsg());
        CHECK(part.embed == NULL && part.post[1] == NULL, "a resumed run reports no prefix points");
        CHECK(maxdiff(part.post[L - 2], full.post[L - 2], n) == 0, "resumed run differs from the full skip run");
        /* logit lens at the last point = the model's own logits */
        int V = lsa_model_arch(m)->n_vocab;
        float *lg = malloc(sizeof(float) * (size_t)T * V), *lg2 = malloc(sizeof(float) * (size_t)T * V);
        struct lsa_fwd_request rl = {.logits = lg};
        REQUIRE(lsa_fwd_run(f, ids, T, &rl) == 0, "%s", lsa_errmsg());
        REQUIRE(lsa_fwd_unembed(f, base.post[L - 1], T, lg2) == 0, "%s", lsa_errmsg());
        CHECK(maxdiff(lg, lg2, (size_t)T * V) == 0, "unembed(last residual) != the forward's logits");
        rq.start_pos = 99;
        CHECK(lsa_fwd_run(f, ids, T, &rq) == LSA_EINVAL, "start position outside the plan accepted");
        free(lg), free(lg2);
        rec_free(&full);
        rec_free(&part);
        lsa_plan_free(sk);
    }

    /* a bad plan is an error, not a crash */
    p = lsa_plan_new(2);
    p->layer[1] = 99;
    struct lsa_fwd_request req = {.plan = p};
    CHECK(lsa_fwd_run(f, ids, T, &req) == LSA_EINVAL && strstr(lsa_errmsg(), "layer 99"), "bad plan: %s",
          lsa_errmsg());
    p->layer[1] = 1;
    p->group[0] = 2;
    p->group[1] = 1;
    CHECK(lsa_fwd_run(f, ids, T, &req) == 0, "distinct groups: %s", lsa_errmsg());
    lsa_plan_free(p);
    p = lsa_plan_new(3);
    p->group[0] = p->group[2] = 5;
    p->group[1] = 1;
    CHECK(lsa_plan_check(p, L) == LSA_EINVAL, "a split group is refused");
    lsa_plan_free(p);

    rec_free(&base);
    lsa_fwd_free(f);
    lsa_model_free(m);
    return t_finish("test_plan");
}
