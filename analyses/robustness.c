/*
 * robustness.c — layer delete / swap / rearrangement sweeps (definitions in robustness.h), their
 * results, and the token windows they run on. Figures are in robustness_draw.c. No printing.
 *
 * Two passes over the windows: the first runs the intact model to rank layers (Block Influence) and find
 * the most redundant blocks (angular distance) for the removal curves; the second runs, per window, the
 * intact model once (keeping every residual point and its log-probabilities) and then every variant,
 * resuming each from the intact residual where its plan departs from the intact one.
 */
#include "robustness.h"

#include "lsa/h5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lsa_robust_opts lsa_robust_opts_default(void)
{
    return (struct lsa_robust_opts){.max_tokens = 8192, .sublayers = true, .curves = true, .random_seeds = 3,
                                    .painters = true, .reuse_prefix = true};
}

struct variant {
    struct lsa_plan *plan;
    struct lsa_robust_metrics *out; /* where the means go (may be NULL) */
    double *out_nll;                /* curves keep only the nll */
    int prefix;                     /* leading positions equal to the intact plan */
    double nll, kl, top1;           /* sums */
};

struct sweep {
    struct variant *v;
    int n, cap;
};

static struct lsa_plan *plan_of(const int *layers, int n)
{
    struct lsa_plan *p = lsa_plan_new(n);
    for (int i = 0; p && i < n; i++) p->layer[i] = layers[i];
    return p;
}

static int add(struct sweep *s, struct lsa_plan *p, struct lsa_robust_metrics *out, double *out_nll)
{
    if (!p) return LSA_ENOMEM;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        struct variant *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            lsa_plan_free(p);
            return lsa_err(LSA_ENOMEM, "out of memory");
        }
        s->v = v;
        s->cap = cap;
    }
    struct variant *v = &s->v[s->n++];
    memset(v, 0, sizeof *v);
    v->plan = p;
    v->out = out;
    v->out_nll = out_nll;
    while (v->prefix < p->n && p->layer[v->prefix] == v->prefix && !p->drop_attn[v->prefix] &&
           !p->drop_mlp[v->prefix] && !p->group[v->prefix])
        v->prefix++;
    return 0;
}

/* Layers 0..L-1 without those in drop[0..k). */
static struct lsa_plan *without(int L, const int *drop, int k)
{
    int *keep = malloc(sizeof(int) * (size_t)L), n = 0;
    if (!keep) return NULL;
    for (int i = 0; i < L; i++) {
        bool gone = false;
        for (int j = 0; j < k; j++) gone |= drop[j] == i;
        if (!gone) keep[n++] = i;
    }
    struct lsa_plan *p = plan_of(keep, n);
    free(keep);
    return p;
}

/* ---------------------------------------------------------------- pass 1: ranking */

struct rank_acc {
    int P, d;
    float *pts;     /* (P, T, d) points of the current window */
    double *bi;     /* (L) sums of cos(x_l, x_l+1) */
    double *ang;    /* (P, P) sums of angular distance */
    int64_t n;
};

static int keep_point(void *ctx, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    struct rank_acc *r = ctx;
    int slot = pt == LSA_PT_EMBED ? 0 : pos + 1;
    memcpy(r->pts + (size_t)slot * T * d, x, (size_t)T * d * sizeof *x);
    return 0;
}

static void rank_window(struct rank_acc *r, int T)
{
    int P = r->P, d = r->d;
    double *nrm = malloc(sizeof(double) * (size_t)P);
    for (int t = 0; t < T; t++) {
        for (int a = 0; a < P; a++) {
            const float *x = r->pts + ((size_t)a * T + t) * d;
            double s = 0;
            for (int i = 0; i < d; i++) s += (double)x[i] * x[i];
            nrm[a] = sqrt(s);
        }
        for (int a = 0; a < P; a++)
            for (int b = a + 1; b < P; b++) {
                const float *x = r->pts + ((size_t)a * T + t) * d, *y = r->pts + ((size_t)b * T + t) * d;
                double s = 0;
                for (int i = 0; i < d; i++) s += (double)x[i] * y[i];
                double c = nrm[a] > 0 && nrm[b] > 0 ? s / (nrm[a] * nrm[b]) : 0;
                c = c > 1 ? 1 : c < -1 ? -1 : c;
                if (b == a + 1) r->bi[a] += c;
                r->ang[a * P + b] += acos(c) / M_PI;
            }
    }
    r->n += T;
    free(nrm);
}

static int cmp_by_key(const void *a, const void *b, void *keys)
{
    const double *k = keys;
    int x = *(const int *)a, y = *(const int *)b;
    return k[x] < k[y] ? -1 : k[x] > k[y] ? 1 : x - y;
}

/* ---------------------------------------------------------------- pass 2: variants */

struct window_state {
    int P, d, V;
    float *pts;      /* (P, T, d) intact points: embed, resid_post 0..L-1 */
    float *logp;     /* (T, V) intact log-probabilities */
    int32_t *top;    /* (T) intact argmax */
    float *lg;       /* (T, V) a variant's logits */
};

static void log_softmax_rows(float *x, int T, int V, int32_t *argmax)
{
    for (int t = 0; t < T; t++) {
        float *r = x + (size_t)t * V, mx = -INFINITY;
        int am = 0;
        for (int j = 0; j < V; j++)
            if (r[j] > mx) mx = r[j], am = j;
        double s = 0;
        for (int j = 0; j < V; j++) s += expf(r[j] - mx);
        float lse = mx + (float)log(s);
        for (int j = 0; j < V; j++) r[j] -= lse;
        if (argmax) argmax[t] = am;
    }
}

/* Score a variant's logits (in w->lg) against the intact ones on tokens 0..T-2. */
static void score(struct window_state *w, const int32_t *ids, int T, struct variant *v)
{
    int V = w->V;
    for (int t = 0; t + 1 < T; t++) {
        float *q = w->lg + (size_t)t * V, mx = -INFINITY;
        const float *p = w->logp + (size_t)t * V;
        int am = 0;
        for (int j = 0; j < V; j++)
            if (q[j] > mx) mx = q[j], am = j;
        double s = 0;
        for (int j = 0; j < V; j++) s += expf(q[j] - mx);
        double lse = mx + log(s), kl = 0;
        for (int j = 0; j < V; j++) kl += exp((double)p[j]) * ((double)p[j] - ((double)q[j] - lse));
        v->nll += lse - q[ids[t + 1]];
        v->kl += kl > 0 ? kl : 0;
        v->top1 += am == w->top[t];
    }
}

int lsa_robust_run(const struct lsa_model *m, const int32_t *tokens, const int64_t *offsets, int n_seq,
                   const struct lsa_robust_opts *o, struct lsa_robust_result **outp)
{
    const struct lsa_arch *a = lsa_model_arch(m);
    int L = a->n_layer, d = a->d_model, V = a->n_vocab, P = L + 1, rc = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    *outp = NULL;
    if (o->bi_order) { /* a permutation of the layers */
        char *seen = calloc((size_t)L + 1, 1);
        if (!seen) return lsa_err(LSA_ENOMEM, "out of memory");
        for (int i = 0; i < L && !rc; i++) {
            if (o->bi_order[i] < 0 || o->bi_order[i] >= L || seen[o->bi_order[i]])
                rc = lsa_err(LSA_EINVAL, "robustness: the given BI order is not a permutation of the %d layers "
                             "(entry %d is %d)", L, i, o->bi_order[i]);
            else seen[o->bi_order[i]] = 1;
        }
        free(seen);
        if (rc) return rc;
    }
    struct lsa_robust_result *out = calloc(1, sizeof *out);
    if (!out) return lsa_err(LSA_ENOMEM, "out of memory");
    out->n_layer = L;
    out->random_seeds = o->random_seeds;

    /* windows to use, cut at max_tokens */
    int n_win = 0, max_T = 0;
    int64_t used = 0;
    for (int s = 0; s < n_seq; s++) {
        int64_t len = offsets[s + 1] - offsets[s];
        if (len < 2) continue;
        if (o->max_tokens && used + len > o->max_tokens) len = o->max_tokens - used;
        if (len < 2) break;
        n_win = s + 1;
        used += len;
        max_T = len > max_T ? (int)len : max_T;
    }
    if (!n_win) {
        free(out);
        return lsa_err(LSA_EINVAL, "robustness: no window has two tokens or more");
    }
    out->n_tokens = used;
    for (int s = 0; s < n_win; s++) out->n_windows += offsets[s + 1] - offsets[s] >= 2;
    out->model = lsa_path_base(lsa_model_path(m));
    out->bi_order_source = strdup(o->bi_order ? (o->bi_order_source ? o->bi_order_source : "given") : "these windows");
    struct lsa_fwd *f = lsa_fwd_new(m, max_T);
    struct sweep sw = {0};
    struct rank_acc r = {.P = P, .d = d};
    struct window_state w = {.P = P, .d = d, .V = V};
    struct lsa_plan *intact = lsa_plan_identity(L);
    out->del = calloc((size_t)L, sizeof *out->del);
    out->swap = calloc((size_t)(L > 1 ? L - 1 : 1), sizeof *out->swap);
    out->bi = calloc((size_t)L, sizeof *out->bi);
    out->bi_order = calloc((size_t)L, sizeof *out->bi_order);
    out->block_start = calloc((size_t)L, sizeof *out->block_start);
    r.pts = w.pts = malloc(sizeof(float) * (size_t)P * max_T * d);
    r.bi = calloc((size_t)L, sizeof *r.bi);
    r.ang = calloc((size_t)P * P, sizeof *r.ang);
    w.logp = malloc(sizeof(float) * (size_t)max_T * V);
    w.lg = malloc(sizeof(float) * (size_t)max_T * V);
    w.top = malloc(sizeof(int32_t) * (size_t)max_T);
    if (!f || !intact || !out->model || !out->bi_order_source || !out->del || !out->swap || !out->bi ||
        !out->bi_order || !out->block_start || !r.pts || !r.bi || !r.ang || !w.logp || !w.lg || !w.top) {
        rc = lsa_err(LSA_ENOMEM, "robustness: out of memory for windows of %d tokens", max_T);
        goto out;
    }

    /* pass 1: Block Influence and angular distances on the intact model */
    int64_t remaining = used;
    for (int s = 0; s < n_win && !rc; s++) {
        int T = (int)(offsets[s + 1] - offsets[s]);
        if (T > remaining) T = (int)remaining;
        if (T < 2) continue;
        remaining -= T;
        struct lsa_fwd_request req = {.points = LSA_PT_EMBED | LSA_PT_RESID_POST, .hook = keep_point, .hook_ctx = &r};
        if (!(rc = lsa_fwd_run(f, tokens + offsets[s], T, &req))) rank_window(&r, T);
    }
    if (rc) goto out;
    for (int l = 0; l < L; l++) {
        out->bi[l] = 1.0 - r.bi[l] / (double)r.n;
        out->bi_order[l] = l;
    }
    qsort_r(out->bi_order, (size_t)L, sizeof(int), cmp_by_key, out->bi);
    if (o->bi_order) memcpy(out->bi_order, o->bi_order, sizeof(int) * (size_t)L);
    for (int k = 1; k < L; k++) {
        double best = INFINITY;
        for (int l = 0; l + k < P; l++) {
            double dist = r.ang[l * P + l + k] / (double)r.n;
            if (dist < best) best = dist, out->block_start[k] = l;
        }
    }

    /* the variants */
    for (int i = 0; i < L && !rc; i++) rc = add(&sw, without(L, &i, 1), &out->del[i], NULL);
    for (int i = 0; i + 1 < L && !rc; i++) {
        struct lsa_plan *p = lsa_plan_identity(L);
        if (p) p->layer[i] = i + 1, p->layer[i + 1] = i;
        rc = add(&sw, p, &out->swap[i], NULL);
    }
    if (!rc && o->sublayers) {
        out->drop_attn = calloc((size_t)L, sizeof *out->drop_attn);
        out->drop_mlp = calloc((size_t)L, sizeof *out->drop_mlp);
        if (!out->drop_attn || !out->drop_mlp) rc = lsa_err(LSA_ENOMEM, "out of memory");
        for (int i = 0; i < L && !rc; i++) {
            struct lsa_plan *pa = lsa_plan_identity(L), *pm = lsa_plan_identity(L);
            if (pa) pa->drop_attn[i] = 1;
            if (pm) pm->drop_mlp[i] = 1;
            if (!(rc = add(&sw, pa, &out->drop_attn[i], NULL))) rc = add(&sw, pm, &out->drop_mlp[i], NULL);
            else lsa_plan_free(pm);
        }
    }
    if (!rc && o->swap_all) {
        if (!(out->swap_all = calloc((size_t)L * L, sizeof *out->swap_all))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        for (int i = 0; i < L && !rc; i++)
            for (int j = i + 1; j < L && !rc; j++) {
                struct lsa_plan *p = lsa_plan_identity(L);
                if (p) p->layer[i] = j, p->layer[j] = i;
                rc = add(&sw, p, &out->swap_all[i * L + j], NULL);
            }
    }
    int *perm = NULL;
    if (!rc && o->curves) {
        out->curve_bi = calloc((size_t)L, sizeof(double));
        out->curve_block = calloc((size_t)L, sizeof(double));
        out->curve_random = calloc((size_t)L, sizeof(double));
        perm = malloc(sizeof(int) * 2 * (size_t)L);
        if (!out->curve_bi || !out->curve_block || !out->curve_random || !perm)
            rc = lsa_err(LSA_ENOMEM, "out of memory");
        for (int k = 1; k < L && !rc; k++) {
            int *blk = perm + L;
            for (int j = 0; j < k; j++) blk[j] = out->block_start[k] + j;
            if (!(rc = add(&sw, without(L, out->bi_order, k), NULL, &out->curve_bi[k])))
                rc = add(&sw, without(L, blk, k), NULL, &out->curve_block[k]);
        }
        unsigned seed = 12345;
        for (int sd = 0; sd < o->random_seeds && !rc; sd++) {
            for (int i = 0; i < L; i++) perm[i] = i;
            for (int i = L - 1; i > 0; i--) { /* Fisher-Yates with a fixed LCG: reproducible */
                seed = seed * 1103515245u + 12345u;
                int j = (int)((seed >> 8) % (unsigned)(i + 1)), tmp = perm[i];
                perm[i] = perm[j], perm[j] = tmp;
            }
            for (int k = 1; k < L && !rc; k++) rc = add(&sw, without(L, perm, k), NULL, &out->curve_random[k]);
        }
    }
    if (!rc && o->painters && L >= 4) {
        int lo = L / 4, hi = 3 * L / 4, mid = (lo + hi) / 2, n_mid = hi - lo;
        if (!(out->painters = calloc(4, sizeof *out->painters))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        static const char *names[] = {"skip middle", "reverse middle", "repeat middle layer", "parallel middle"};
        for (int k = 0; k < 4 && !rc; k++) {
            struct lsa_plan *p;
            if (k == 0) {
                int *drop = malloc(sizeof(int) * (size_t)n_mid);
                for (int j = 0; drop && j < n_mid; j++) drop[j] = lo + j;
                p = drop ? without(L, drop, n_mid) : NULL;
                free(drop);
            } else {
                p = lsa_plan_identity(L);
                for (int j = 0; p && j < n_mid; j++) {
                    if (k == 1) p->layer[lo + j] = hi - 1 - j;
                    if (k == 2) p->layer[lo + j] = mid;
                    if (k == 3) p->group[lo + j] = 1;
                }
            }
            struct lsa_robust_named *nm = &out->painters[out->n_painters++];
            snprintf(nm->name, sizeof nm->name, "%s", names[k]);
            if (p) lsa_plan_format(p, nm->plan, sizeof nm->plan);
            rc = add(&sw, p, &nm->m, NULL);
        }
    }
    free(perm);
    if (rc) goto out;

    /* pass 2 */
    double base_nll = 0;
    int64_t n_pred = 0, done = 0, total = (int64_t)out->n_windows * sw.n;
    remaining = used;
    for (int s = 0; s < n_win && !rc; s++) {
        int T = (int)(offsets[s + 1] - offsets[s]);
        if (T > remaining) T = (int)remaining;
        if (T < 2) continue;
        remaining -= T;
        const int32_t *ids = tokens + offsets[s];
        struct lsa_fwd_request req = {.points = LSA_PT_EMBED | LSA_PT_RESID_POST, .hook = keep_point, .hook_ctx = &r,
                                      .logits = w.logp};
        if ((rc = lsa_fwd_run(f, ids, T, &req))) break;
        log_softmax_rows(w.logp, T, V, w.top);
        for (int t = 0; t + 1 < T; t++) base_nll -= w.logp[(size_t)t * V + ids[t + 1]];
        n_pred += T - 1;
        for (int k = 0; k < sw.n && !rc; k++) {
            struct variant *v = &sw.v[k];
            struct lsa_fwd_request vr = {.plan = v->plan, .logits = w.lg};
            if (o->reuse_prefix && v->prefix > 0) {
                vr.x_start = w.pts + (size_t)v->prefix * T * d;
                vr.start_pos = v->prefix;
            }
            if (!(rc = lsa_fwd_run(f, ids, T, &vr))) score(&w, ids, T, v);
            if (o->progress) o->progress(o->progress_ctx, ++done, total);
        }
    }
    if (rc) goto out;
    out->n_predicted = n_pred;
    out->baseline_nll = base_nll / (double)n_pred;
    for (int k = 0; k < sw.n; k++) {
        struct variant *v = &sw.v[k];
        struct lsa_robust_metrics mt = {v->nll / (double)n_pred, v->kl / (double)n_pred, v->top1 / (double)n_pred};
        if (v->out) *v->out = mt;
        if (v->out_nll) { /* the random curve averages its seeds */
            bool random = out->curve_random && v->out_nll >= out->curve_random && v->out_nll < out->curve_random + L;
            *v->out_nll += mt.nll / (random ? o->random_seeds : 1);
        }
    }
    if (out->curve_bi) /* k = 0 removes nothing */
        out->curve_bi[0] = out->curve_block[0] = out->curve_random[0] = out->baseline_nll;
    if (out->swap_all)
        for (int i = 0; i < L; i++) {
            out->swap_all[i * L + i] = (struct lsa_robust_metrics){out->baseline_nll, 0, 1};
            for (int j = 0; j < i; j++) out->swap_all[i * L + j] = out->swap_all[j * L + i];
        }
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
out:
    for (int k = 0; k < sw.n; k++) lsa_plan_free(sw.v[k].plan);
    free(sw.v);
    free(r.pts), free(r.bi), free(r.ang), free(w.logp), free(w.lg), free(w.top);
    lsa_plan_free(intact);
    lsa_fwd_free(f);
    if (rc) lsa_robust_free(out);
    else *outp = out;
    return rc;
}

void lsa_robust_free(struct lsa_robust_result *r)
{
    if (!r) return;
    free(r->model), free(r->bi_order_source);
    free(r->del), free(r->swap), free(r->drop_attn), free(r->drop_mlp), free(r->swap_all);
    free(r->curve_bi), free(r->curve_block), free(r->curve_random);
    free(r->bi_order), free(r->bi), free(r->block_start), free(r->painters);
    free(r);
}

/* ---------------------------------------------------------------- results */

static int save_metrics(struct lsa_results *res, const char *name, const char *key, int n, bool pairs, const int *ii,
                        const struct lsa_robust_metrics *m, double base)
{
    static const char *cols_del[4] = {"layer", "nll", "kl", "top1"};
    static const char *cols_pair[5] = {"i", "j", "nll", "kl", "top1"};
    int nc = pairs ? 5 : 4;
    double *t = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1) * nc);
    if (!t) return lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        double *row = t + (size_t)i * nc;
        int k = 0;
        row[k++] = ii ? ii[2 * i] : i;
        if (pairs) row[k++] = ii ? ii[2 * i + 1] : i + 1;
        row[k++] = m[i].nll, row[k++] = m[i].kl, row[k++] = m[i].top1;
    }
    int rc = lsa_results_table(res, "robustness", name, n, nc, pairs ? cols_pair : cols_del, t, key);
    free(t);
    char obj[64];
    snprintf(obj, sizeof obj, "/robustness/%s", name);
    if (!rc) rc = lsa_results_attr_f64(res, obj, "baseline_nll", base);
    return rc;
}

static int save_curve(struct lsa_results *res, const char *name, const char *key, int L, const double *v)
{
    static const char *cols[2] = {"k", "nll"};
    double *t = malloc(sizeof(double) * (size_t)L * 2);
    if (!t) return lsa_err(LSA_ENOMEM, "out of memory");
    for (int k = 0; k < L; k++) t[2 * k] = k, t[2 * k + 1] = v[k];
    int rc = lsa_results_table(res, "robustness", name, L, 2, cols, t, key);
    free(t);
    return rc;
}

int lsa_robust_save(const struct lsa_robust_result *r, struct lsa_results *res)
{
    const char *g = "robustness";
    int L = r->n_layer, rc;
    rc = lsa_results_attr_str(res, "/robustness", "definition",
                              "each variant re-runs the model on the same windows; nll = mean -log p(next token), "
                              "kl = mean KL(p_intact || p_variant), top1 = fraction with the intact argmax");
    if (!rc) rc = lsa_results_attr_f64(res, "/robustness", "baseline_nll", r->baseline_nll);
    if (!rc) rc = lsa_results_attr_int(res, "/robustness", "n_tokens", r->n_tokens);
    if (!rc) rc = lsa_results_attr_int(res, "/robustness", "n_predicted", r->n_predicted);
    if (!rc) rc = lsa_results_attr_int(res, "/robustness", "n_windows", r->n_windows);
    if (!rc) rc = lsa_results_attr_int(res, "/robustness", "random_seeds", r->random_seeds);
    if (!rc) rc = lsa_results_json_num(res, "robustness.baseline_nll", r->baseline_nll);
    if (!rc) rc = lsa_results_json_num(res, "robustness.baseline_ppl", exp(r->baseline_nll));
    if (!rc) rc = lsa_results_json_num(res, "robustness.n_tokens", (double)r->n_tokens);
    if (!rc) rc = lsa_results_json_num(res, "robustness.n_windows", r->n_windows);
    if (!rc) rc = save_metrics(res, "delete", "robustness.delete", L, false, NULL, r->del, r->baseline_nll);
    if (!rc) rc = save_metrics(res, "swap", "robustness.swap", L - 1, true, NULL, r->swap, r->baseline_nll);
    if (!rc && r->drop_attn)
        rc = save_metrics(res, "drop_attn", "robustness.drop_attn", L, false, NULL, r->drop_attn, r->baseline_nll);
    if (!rc && r->drop_mlp)
        rc = save_metrics(res, "drop_mlp", "robustness.drop_mlp", L, false, NULL, r->drop_mlp, r->baseline_nll);
    if (!rc && r->swap_all) {
        double *nll = malloc(sizeof(double) * (size_t)L * L * 3);
        if (!nll) return lsa_err(LSA_ENOMEM, "out of memory");
        double *kl = nll + (size_t)L * L, *top1 = kl + (size_t)L * L;
        for (int i = 0; i < L * L; i++)
            nll[i] = r->swap_all[i].nll, kl[i] = r->swap_all[i].kl, top1[i] = r->swap_all[i].top1;
        rc = lsa_results_matrix(res, g, "swap_all_nll", L, L, nll, "robustness.swap_all");
        if (!rc) rc = lsa_results_matrix(res, g, "swap_all_kl", L, L, kl, NULL);
        if (!rc) rc = lsa_results_matrix(res, g, "swap_all_top1", L, L, top1, NULL);
        if (!rc)
            rc = lsa_results_attr_str(res, "/robustness/swap_all_nll", "definition",
                                      "[i][j] = layers i and j exchanged (symmetric; the diagonal: the intact model)");
        free(nll);
    }
    if (!rc && r->curve_bi) {
        rc = save_curve(res, "removal_bi_order", "robustness.removal_curve.bi_order", L, r->curve_bi);
        if (!rc) rc = save_curve(res, "removal_best_block", "robustness.removal_curve.best_block", L, r->curve_block);
        if (!rc && r->random_seeds > 0)
            rc = save_curve(res, "removal_random", "robustness.removal_curve.random", L, r->curve_random);
        if (!rc) rc = lsa_results_attr_str(res, "/robustness/removal_bi_order", "definition",
                                           "nll with the first k layers of bi_order removed");
        if (!rc) rc = lsa_results_attr_str(res, "/robustness/removal_best_block", "definition",
                                           "nll with layers block_start[k] .. block_start[k]+k-1 removed");
        if (!rc && r->random_seeds > 0)
            rc = lsa_results_attr_str(res, "/robustness/removal_random", "definition",
                                           "nll with k layers removed in random order, mean over seeds");
    }
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)L);
    if (!iv && !rc) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < L; i++) iv[i] = r->bi_order[i];
    if (!rc) rc = lsa_results_ivector(res, g, "bi_order", L, iv, "robustness.bi_order");
    if (!rc) rc = lsa_results_attr_str(res, "/robustness/bi_order", "source", r->bi_order_source);
    if (!rc) rc = lsa_results_json_str(res, "robustness.bi_order_source", r->bi_order_source);
    for (int i = 0; !rc && i < L; i++) iv[i] = r->block_start[i];
    if (!rc) rc = lsa_results_ivector(res, g, "block_start", L, iv, NULL);
    free(iv);
    if (!rc) rc = lsa_results_vector(res, g, "bi", L, r->bi, NULL);
    if (!rc) rc = lsa_results_attr_str(res, "/robustness/bi", "definition",
                                       "Block Influence 1 - mean cos(x_l, x_l+1) on these windows");
    if (!rc && r->n_painters > 0) {
        static const char *cols[3] = {"nll", "kl", "top1"};
        double t[3 * 8];
        const char *names[8], *plans[8];
        int n = r->n_painters < 8 ? r->n_painters : 8;
        for (int i = 0; i < n; i++) {
            t[3 * i] = r->painters[i].m.nll, t[3 * i + 1] = r->painters[i].m.kl, t[3 * i + 2] = r->painters[i].m.top1;
            names[i] = r->painters[i].name, plans[i] = r->painters[i].plan;
        }
        rc = lsa_results_table(res, g, "painters", n, 3, cols, t, NULL);
        if (!rc) rc = lsa_results_attr_strs(res, "/robustness/painters", "names", names, n);
        if (!rc) rc = lsa_results_attr_strs(res, "/robustness/painters", "plans", plans, n);
        if (!rc) rc = lsa_results_json_records(res, "robustness.painters", n, 3, cols, t, "name", names);
    }
    return rc;
}

/* ---------------------------------------------------------------- reuse */

void lsa_robust_options(const struct lsa_robust_opts *o, const struct lsa_robust_windows *w, int n_layer, char *buf,
                        size_t cap)
{
    /* the windows by count, size and an FNV-1a hash of their tokens: they may come from text files */
    uint64_t fnv = w ? lsa_results_fnv1a(w->tokens, (size_t)w->n_tokens * sizeof *w->tokens) : 0;
    size_t k = (size_t)snprintf(buf, cap, "max_tokens=%lld swap_all=%d sublayers=%d curves=%d random_seeds=%d "
                                "painters=%d windows=%d/%lld/%016llx bi_order=", (long long)o->max_tokens,
                                o->swap_all, o->sublayers, o->curves, o->random_seeds, o->painters,
                                w ? w->n_seq : 0, w ? (long long)w->n_tokens : 0LL, (unsigned long long)fnv);
    /* the order itself: it came from another analysis, which may have changed */
    for (int i = 0; o->bi_order && k + 12 < cap && i < n_layer; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? "," : "", o->bi_order[i]);
    if (!o->bi_order && k + 8 < cap) snprintf(buf + k, cap - k, "windows");
}

/* Table /robustness/name (rows, nc) into metrics: its last three columns nll, kl, top1. */
static int load_metrics(struct lsa_h5 *h, const char *name, int rows, int nc, struct lsa_robust_metrics **out)
{
    char obj[64];
    snprintf(obj, sizeof obj, "/robustness/%s", name);
    double *t = NULL;
    int rc = lsa_results_get_f64(h, obj, (size_t)rows * nc, &t);
    if (!rc && !(*out = calloc((size_t)rows + 1, sizeof **out))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < rows; i++) {
        const double *row = t + (size_t)i * nc + nc - 3;
        (*out)[i] = (struct lsa_robust_metrics){row[0], row[1], row[2]};
    }
    free(t);
    return rc;
}

static int load_curve(struct lsa_h5 *h, const char *name, int L, double **out)
{
    char obj[64];
    snprintf(obj, sizeof obj, "/robustness/%s", name);
    double *t = NULL;
    int rc = lsa_results_get_f64(h, obj, (size_t)L * 2, &t);
    if (!rc && !(*out = malloc(sizeof(double) * (size_t)L))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < L; k++) (*out)[k] = t[2 * k + 1];
    free(t);
    return rc;
}

static int load_ints(struct lsa_h5 *h, const char *obj, int L, int **out)
{
    int64_t *v = NULL;
    int rc = lsa_results_get_i64(h, obj, (size_t)L, &v);
    if (!rc && !(*out = malloc(sizeof(int) * (size_t)L))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < L; i++) {
        if (v[i] < 0 || v[i] >= L) rc = lsa_err(LSA_EFORMAT, "%s: %s holds %lld, not a layer", lsa_h5_path(h), obj, (long long)v[i]);
        else (*out)[i] = (int)v[i];
    }
    free(v);
    return rc;
}

static int load_painters(struct lsa_h5 *h, struct lsa_robust_result *r)
{
    int rank = 0, rc;
    int64_t dims[LSA_H5_MAX_RANK];
    if ((rc = lsa_h5_shape(h, "/robustness/painters", &rank, dims))) return rc;
    if (rank != 2 || dims[1] != 3 || dims[0] > 8)
        return lsa_err(LSA_EFORMAT, "%s: /robustness/painters is not a table of up to 8 rows (nll, kl, top1)",
                       lsa_h5_path(h));
    int n = (int)dims[0];
    char **names = NULL, **plans = NULL;
    struct lsa_robust_metrics *m = NULL;
    rc = lsa_results_get_strs(h, "/robustness/painters", "names", (size_t)n, &names);
    if (!rc) rc = lsa_results_get_strs(h, "/robustness/painters", "plans", (size_t)n, &plans);
    if (!rc) rc = load_metrics(h, "painters", n, 3, &m);
    if (!rc && !(r->painters = calloc((size_t)n + 1, sizeof *r->painters))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        snprintf(r->painters[i].name, sizeof r->painters[i].name, "%s", names[i]);
        snprintf(r->painters[i].plan, sizeof r->painters[i].plan, "%s", plans[i]);
        r->painters[i].m = m[i];
    }
    r->n_painters = rc ? 0 : n;
    free(m);
    lsa_h5_free_names(names, names ? (size_t)n : 0);
    lsa_h5_free_names(plans, plans ? (size_t)n : 0);
    return rc;
}

int lsa_robust_load(struct lsa_h5 *h, const char *model_path, struct lsa_robust_result **out)
{
    *out = NULL;
    struct lsa_robust_result *r = calloc(1, sizeof *r);
    if (!r) return lsa_err(LSA_ENOMEM, "out of memory");
    int64_t v = 0;
    int rank = 0;
    int64_t dims[LSA_H5_MAX_RANK];
    int rc = lsa_h5_shape(h, "/robustness/delete", &rank, dims);
    if (!rc && (rank != 2 || dims[0] < 1 || dims[0] > 1 << 16))
        rc = lsa_err(LSA_EFORMAT, "%s: /robustness/delete is not a table of layers", lsa_h5_path(h));
    int L = rc ? 0 : (int)dims[0];
    r->n_layer = L;
    if (!rc && !(r->model = lsa_path_base(model_path))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    if (!rc) rc = lsa_results_get_num(h, "/robustness", "baseline_nll", &r->baseline_nll);
    if (!rc) rc = lsa_results_get_int(h, "/robustness", "n_tokens", &r->n_tokens);
    if (!rc) rc = lsa_results_get_int(h, "/robustness", "n_predicted", &r->n_predicted);
    if (!rc) rc = lsa_results_get_int(h, "/robustness", "n_windows", &v);
    r->n_windows = (int)v;
    if (!rc) rc = lsa_results_get_int(h, "/robustness", "random_seeds", &v);
    r->random_seeds = (int)v;
    if (!rc) rc = load_metrics(h, "delete", L, 4, &r->del);
    if (!rc) rc = load_metrics(h, "swap", L - 1, 5, &r->swap);
    if (!rc && lsa_h5_exists(h, "/robustness/drop_attn")) rc = load_metrics(h, "drop_attn", L, 4, &r->drop_attn);
    if (!rc && lsa_h5_exists(h, "/robustness/drop_mlp")) rc = load_metrics(h, "drop_mlp", L, 4, &r->drop_mlp);
    if (!rc && lsa_h5_exists(h, "/robustness/swap_all_nll")) {
        double *m[3] = {0};
        static const char *names[3] = {"/robustness/swap_all_nll", "/robustness/swap_all_kl", "/robustness/swap_all_top1"};
        size_t LL = (size_t)L * L;
        for (int k = 0; !rc && k < 3; k++) rc = lsa_results_get_f64(h, names[k], LL, &m[k]);
        if (!rc && !(r->swap_all = malloc(sizeof *r->swap_all * LL))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < LL; i++) r->swap_all[i] = (struct lsa_robust_metrics){m[0][i], m[1][i], m[2][i]};
        free(m[0]), free(m[1]), free(m[2]);
    }
    if (!rc && lsa_h5_exists(h, "/robustness/removal_bi_order")) {
        rc = load_curve(h, "removal_bi_order", L, &r->curve_bi);
        if (!rc) rc = load_curve(h, "removal_best_block", L, &r->curve_block);
        if (!rc && r->random_seeds > 0) rc = load_curve(h, "removal_random", L, &r->curve_random);
    }
    if (!rc) rc = load_ints(h, "/robustness/bi_order", L, &r->bi_order);
    if (!rc) rc = lsa_h5_attr_str(h, "/robustness/bi_order", "source", &r->bi_order_source);
    if (!rc) rc = load_ints(h, "/robustness/block_start", L, &r->block_start);
    if (!rc) rc = lsa_results_get_f64(h, "/robustness/bi", (size_t)L, &r->bi);
    if (!rc && lsa_h5_exists(h, "/robustness/painters")) rc = load_painters(h, r);
    if (rc) {
        lsa_robust_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---------------------------------------------------------------- windows */

void lsa_robust_windows_free(struct lsa_robust_windows *w)
{
    if (!w) return;
    free(w->tokens), free(w->offsets), free(w);
}

struct lsa_robust_windows *lsa_robust_windows_new(void)
{
    struct lsa_robust_windows *w = calloc(1, sizeof *w);
    if (w && !(w->offsets = calloc(1, sizeof *w->offsets))) {
        free(w);
        w = NULL;
    }
    if (!w) lsa_err(LSA_ENOMEM, "out of memory");
    return w;
}

/* Append one window of n ids. */
static int push(struct lsa_robust_windows *w, const int32_t *ids, int64_t n)
{
    if (w->n_tokens + n > w->cap_tok) {
        int64_t cap = w->cap_tok ? 2 * w->cap_tok : 4096;
        while (cap < w->n_tokens + n) cap *= 2;
        int32_t *t = realloc(w->tokens, sizeof(int32_t) * (size_t)cap);
        if (!t) return lsa_err(LSA_ENOMEM, "out of memory");
        w->tokens = t, w->cap_tok = cap;
    }
    if (w->n_seq + 2 > w->cap_seq) {
        int cap = w->cap_seq ? 2 * w->cap_seq : 64;
        int64_t *o = realloc(w->offsets, sizeof(int64_t) * (size_t)cap);
        if (!o) return lsa_err(LSA_ENOMEM, "out of memory");
        w->offsets = o, w->cap_seq = cap;
    }
    memcpy(w->tokens + w->n_tokens, ids, sizeof(int32_t) * (size_t)n);
    w->n_tokens += n;
    w->offsets[++w->n_seq] = w->n_tokens;
    return 0;
}

int lsa_robust_windows_add(struct lsa_robust_windows *w, const struct lsa_model *m, const char *text, size_t len,
                           const char *source, int ctx, int64_t max_tokens)
{
    const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
    const struct lsa_arch *a = lsa_model_arch(m);
    if (!tok)
        return lsa_err(LSA_EINVAL, "%s: the model %s has no tokenizer to read text with", source, lsa_model_path(m));
    if (max_tokens > 0 && w->n_tokens >= max_tokens) return 0;
    if (ctx <= 0) ctx = a->n_ctx > 0 && a->n_ctx < 1024 ? a->n_ctx : 1024;
    bool bos = lsa_tokenizer_adds_bos(tok) && lsa_tokenizer_bos(tok) >= 0;
    if (ctx < 2 + bos) return lsa_err(LSA_EINVAL, "window of %d tokens is too small", ctx);
    int32_t *ids = NULL, *win = NULL;
    size_t n = 0;
    int rc = lsa_tokenizer_encode(tok, text, len, false, &ids, &n);
    if (rc) return lsa_err_wrap(rc, "%s", source);
    int body = ctx - bos;
    if (n && !(win = malloc(sizeof(int32_t) * (size_t)ctx))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (size_t from = 0; !rc && from < n; from += (size_t)body) {
        size_t k = n - from < (size_t)body ? n - from : (size_t)body;
        int t = 0;
        if (bos) win[t++] = lsa_tokenizer_bos(tok);
        memcpy(win + t, ids + from, sizeof(int32_t) * k);
        t += (int)k;
        if (max_tokens > 0 && w->n_tokens + t > max_tokens) t = (int)(max_tokens - w->n_tokens);
        if (t < 2) break;
        rc = push(w, win, t);
        if (max_tokens > 0 && w->n_tokens >= max_tokens) break;
    }
    free(win);
    free(ids);
    return rc;
}

struct lsa_robust_windows *lsa_robust_windows_capture(const char *path, int64_t max_tokens)
{
    struct lsa_h5 *h = lsa_h5_open(path);
    if (!h) return NULL;
    struct lsa_robust_windows *w = lsa_robust_windows_new();
    int64_t *tok = NULL, *offs = NULL, *order = NULL, *da = NULL, *dm = NULL;
    size_t nt = 0, no = 0, n_order = 0, n_da = 0, n_dm = 0;
    int rc = w ? 0 : LSA_ENOMEM;
    if (!rc && !(rc = lsa_h5_read_i64(h, "/tokens", &tok, &nt))) rc = lsa_h5_read_i64(h, "/seq_offsets", &offs, &no);
    if (!rc && (no < 2 || offs[0] != 0 || offs[no - 1] != (int64_t)nt))
        rc = lsa_err(LSA_EFORMAT, "%s: /seq_offsets does not run from 0 to the %zu tokens", path, nt);
    for (size_t s = 0; !rc && s + 1 < no; s++)
        if (offs[s + 1] < offs[s]) rc = lsa_err(LSA_EFORMAT, "%s: /seq_offsets decreases at %zu", path, s);
    int32_t *ids = rc ? NULL : malloc(sizeof(int32_t) * (nt ? nt : 1));
    if (!rc && !ids) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < nt; i++) {
        if (tok[i] < 0 || tok[i] > INT32_MAX)
            rc = lsa_err(LSA_EFORMAT, "%s: token %lld at %zu", path, (long long)tok[i], i);
        else ids[i] = (int32_t)tok[i];
    }
    for (size_t s = 0; !rc && s + 1 < no; s++) {
        int64_t n = offs[s + 1] - offs[s];
        if (max_tokens > 0 && w->n_tokens + n > max_tokens) n = max_tokens - w->n_tokens;
        if (n >= 2) rc = push(w, ids + offs[s], n);
        if (max_tokens > 0 && w->n_tokens >= max_tokens) break;
    }
    /* did the capture run the intact model? (for reusing its block ranking) */
    if (!rc && !lsa_h5_attr_i64(h, "/", "layer_order", &order, &n_order) &&
        !lsa_h5_attr_i64(h, "/", "drop_attn", &da, &n_da) && !lsa_h5_attr_i64(h, "/", "drop_mlp", &dm, &n_dm) &&
        n_da == n_order && n_dm == n_order) {
        w->identity_plan = true;
        w->plan_layers = (int)n_order;
        for (size_t i = 0; i < n_order; i++) w->identity_plan &= order[i] == (int64_t)i && !da[i] && !dm[i];
    }
    free(ids), free(tok), free(offs), free(order), free(da), free(dm);
    lsa_h5_close(h);
    if (rc) {
        lsa_robust_windows_free(w);
        return NULL;
    }
    return w;
}
