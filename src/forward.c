/*
 * forward.c — one generic decoder-block forward driven by struct lsa_arch and a layer plan.
 *
 * Per plan position p running layer l on residual x (T, d):
 *   h = norm_attn(x); q, k, v = proj(h); rope(q, k); a = attn(q, k, v) · Wo
 *   sequential: mid = x + a;  out = mid + mlp(norm_mlp(mid))
 *   parallel residual (gpt_neox): out = x + a + mlp(norm_mlp(x))
 * Dropped sub-blocks contribute zero. Parallel plan groups: every member reads the group's input and the
 * group's output is input + the sum of the members' residual updates.
 * All activation memory is allocated once in lsa_fwd_new; a run allocates nothing.
 */
#include "lsa/forward.h"

#include "ops.h"
#include "packed.h"
#include "threads.h"
#include "vmath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Logits are computed this many tokens at a time so that memory stays (block, n_vocab), not (T, n_vocab). */
#define LOGIT_BLOCK 64

struct lsa_fwd {
    const struct lsa_model *m;
    int max_tok;
    float *x;      /* (T, d) residual */
    float *x_in;   /* (T, d) input of a parallel group */
    float *acc;    /* (T, d) summed updates of a parallel group */
    float *h;      /* (T, d) normed input of a sub-block */
    float *mid;    /* (T, d) resid_mid */
    float *attn;   /* (T, d) attention sub-block output */
    float *mlp;    /* (T, d) MLP sub-block output */
    float *qkv;    /* (T, q_dim + 2 kv_dim) */
    float *ctx;    /* (T, q_dim) attention heads concatenated */
    float *ff;     /* (T, 2 d_ff) [gate | up] */
    float *act;    /* (T, d_ff) gate·up in dense rows for a packed down, or NULL */
    float *scores; /* n_scores attention scratches of score_len floats: one for each split thread, or for each
                    * OpenMP thread of an unsplit forward's attention */
    size_t score_len;
    int n_scores;
    float *logits; /* (n_split, LOGIT_BLOCK, n_vocab) */
    int n_split;   /* > 1: a window's rows may be split among this many threads (lsa_fwd_split) */
    bool split_forced;
    struct lsa_pool *pool;      /* (n_split) when n_split > 1 */
    int cur_split;              /* threads splitting the window being run (1: none) */
    int dnnl_threads;           /* threads of a oneDNN call in the window being run (0: OpenBLAS alone) */
    float *rope_cos, *rope_sin; /* (T, rope_dims / 2) */
    float *wbuf; /* (max(largest lazy matrix, HEAD_BLOCK x d)) widened weights of a lazily loaded model */
};

/* Vocabulary rows of a lazily stored head widened at a time. */
#define HEAD_BLOCK 4096

/*
 * When rows are split (lsa_fwd_split). OpenBLAS's own threads share a GEMM well once it is large, but they
 * meet at every call, and a small model's GEMMs are many and small: at d_model 128, two OpenBLAS threads
 * ran 1.27x one, rows split 1.25-1.45x the two OpenBLAS threads; at 512, 1.04-1.12x. For a larger model,
 * each thread packs every weight matrix for its rows alone, which pays from about 512 rows a thread
 * (d_model 1024-2048 at T = 1024: 1.02-1.05x; at T = 128: 0.85-0.9x). bench/RESULTS.md has the numbers.
 */
#define SPLIT_MAX_D 512
#define SPLIT_MIN_ROWS 512

static void *alloc_f(size_t n, int *fail)
{
    void *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) *fail = 1;
    return p;
}

/*
 * Threads of the pool that may split a layer's token rows, each running its GEMMs on a one-thread OpenBLAS,
 * instead of OpenBLAS splitting every GEMM (1: never split): as many as OpenBLAS would use, so that
 * OPENBLAS_NUM_THREADS still sets how many cores lsa takes. LSA_FORWARD_SPLIT=N forces N threads (0 or 1:
 * no split) for every window long enough to split; benches and tests use it. A model whose weights
 * are widened per matrix (lazy) or whose head is not float32 is not split: those share one buffer.
 */
static int split_threads(const struct lsa_model *m, bool *forced)
{
    const char *env = getenv("LSA_FORWARD_SPLIT");
    *forced = env && *env;
    int n = *forced ? atoi(env) : lsa_ops_blas_threads(-1); /* as many as OpenBLAS may use (OPENBLAS_NUM_THREADS) */
    if (n > LSA_MAX_THREADS) n = LSA_MAX_THREADS;
    return n > 1 && !m->lazy && m->head.f32 ? n : 1;
}

struct lsa_fwd *lsa_fwd_new(const struct lsa_model *m, int max_tok)
{
    const struct lsa_arch *a = &m->arch;
    if (max_tok <= 0) {
        lsa_err(LSA_EINVAL, "forward: window of %d tokens", max_tok);
        return NULL;
    }
    if (a->pos == LSA_POS_LEARNED && max_tok > a->n_ctx) {
        lsa_err(LSA_EINVAL, "forward: %d tokens exceed the model's %d learned positions", max_tok, a->n_ctx);
        return NULL;
    }
    struct lsa_fwd *f = calloc(1, sizeof *f);
    if (!f) {
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    f->m = m;
    f->max_tok = max_tok;
    size_t T = (size_t)max_tok, d = (size_t)a->d_model;
    size_t q_dim = (size_t)a->n_head * a->d_head, kv_dim = (size_t)a->n_head_kv * a->d_head;
    int fail = 0;
    f->x = alloc_f(T * d, &fail);
    f->x_in = alloc_f(T * d, &fail);
    f->acc = alloc_f(T * d, &fail);
    f->h = alloc_f(T * d, &fail);
    f->mid = alloc_f(T * d, &fail);
    f->attn = alloc_f(T * d, &fail);
    f->mlp = alloc_f(T * d, &fail);
    f->qkv = alloc_f(T * (q_dim + 2 * kv_dim), &fail);
    f->ctx = alloc_f(T * q_dim, &fail);
    f->ff = alloc_f(T * 2 * (size_t)a->d_ff, &fail);
    if (a->gated_mlp && m->layers[0].down.packed) f->act = alloc_f(T * (size_t)a->d_ff, &fail);
    f->n_split = split_threads(m, &f->split_forced);
    if (f->n_split > 1 && !(f->pool = lsa_pool_new(f->n_split))) f->n_split = 1; /* then OpenBLAS's threads */
    size_t ns = (size_t)(f->n_split > 1 ? f->n_split : 1);
    int blas = lsa_ops_blas_threads(-1);
    f->n_scores = f->n_split > blas ? f->n_split : blas > 1 ? blas : 1;
    f->score_len = lsa_ops_attention_scratch(max_tok, a->d_head);
    f->scores = alloc_f((size_t)f->n_scores * f->score_len, &fail);
    f->logits = alloc_f(ns * LOGIT_BLOCK * a->n_vocab, &fail);
    if (m->lazy) {
        size_t head = (size_t)(a->n_vocab < HEAD_BLOCK ? a->n_vocab : HEAD_BLOCK) * d;
        f->wbuf = alloc_f(m->max_lazy > head ? m->max_lazy : head, &fail);
    }
    if (a->pos == LSA_POS_ROPE) {
        size_t half = (size_t)a->rope_dims / 2;
        f->rope_cos = alloc_f(T * half, &fail);
        f->rope_sin = alloc_f(T * half, &fail);
        if (!fail) {
            /* As transformers computes it in float32: inv_freq, then the angle, each rounded to float. */
            for (size_t i = 0; i < half; i++) {
                float inv = (float)(1.0 / pow(a->rope_theta, (double)(2 * i) / a->rope_dims));
                for (size_t t = 0; t < T; t++) {
                    float pos = (float)((double)t / a->rope_linear_factor);
                    float ang = pos * inv;
                    f->rope_cos[t * half + i] = (float)cos((double)ang);
                    f->rope_sin[t * half + i] = (float)sin((double)ang);
                }
            }
        }
    }
    if (fail) {
        lsa_fwd_free(f);
        lsa_err(LSA_ENOMEM, "forward: out of memory for a window of %d tokens", max_tok);
        return NULL;
    }
    return f;
}

void lsa_fwd_free(struct lsa_fwd *f)
{
    if (!f) return;
    float *bufs[] = {f->x,   f->x_in, f->acc,    f->h,      f->mid,      f->attn,     f->mlp, f->qkv,
                     f->ctx, f->ff,   f->scores, f->logits, f->rope_cos, f->rope_sin, f->wbuf, f->act};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    lsa_pool_free(f->pool);
    free(f);
}

/* y = x · Wᵀ + b for one linear layer, widening W first when the model keeps it in its stored dtype. */
static void linear(struct lsa_fwd *f, const struct lsa_linear *l, const float *x, int ldx, int T, float *y, int ldy)
{
    const float *w = lsa_mat_f32(&l->w, (size_t)l->n_in * l->n_out, f->wbuf);
    lsa_ops_linear(l, w, x, ldx, T, y, ldy, f->dnnl_threads);
}

/* logits (T, n_vocab; ld) = head · h, the head widened a block of vocabulary rows at a time when lazy. */
static void logits(struct lsa_fwd *f, const float *h, int T, float *out, int ld)
{
    const struct lsa_model *m = f->m;
    int V = m->arch.n_vocab, d = m->arch.d_model;
    if (m->head_packed && f->dnnl_threads > 0 && !lsa_packed_run(m->head_packed, h, d, T, out, ld, f->dnnl_threads))
        return;
    if (m->head.f32) {
        lsa_ops_logits(m->head.f32, V, d, h, T, out, ld);
        return;
    }
    for (int v0 = 0; v0 < V; v0 += HEAD_BLOCK) {
        int nv = V - v0 < HEAD_BLOCK ? V - v0 : HEAD_BLOCK;
        lsa_mat_rows(&m->head, (size_t)d, (size_t)v0, (size_t)nv, f->wbuf);
        lsa_ops_logits(f->wbuf, nv, d, h, T, out + v0, ld);
    }
}

static int report(const struct lsa_fwd_request *req, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    if (!req->hook || !(req->points & pt)) return 0;
    return req->hook(req->hook_ctx, pt, pos, x, T, d);
}

/* Rows t0..t1-1 of f->h, f->qkv, ... as a range of a layer's work. */
struct rows {
    int t0, t1;
    struct lsa_att_scratch scores; /* this range's attention scratch */
};

/* q, k, v of layer l for the rows (roped), from `in`. */
/* Where q, k and v of a row of f->qkv (at row) are, and how far apart their heads: [q | k | v], or per
 * head [q_h | k_h | v_h] (gpt_neox). ld: the row length. */
struct qkv_view {
    float *q, *k, *v;
    int ld, q_hs, kv_hs;
};

static struct qkv_view qkv_view(const struct lsa_arch *a, float *row)
{
    int dh = a->d_head, q_dim = a->n_head * dh, kv_dim = a->n_head_kv * dh;
    if (a->qkv_layout == LSA_QKV_PER_HEAD)
        return (struct qkv_view){row, row + dh, row + 2 * dh, q_dim + 2 * kv_dim, 3 * dh, 3 * dh};
    return (struct qkv_view){row, row + q_dim, row + q_dim + kv_dim, q_dim + 2 * kv_dim, dh, dh};
}

static void qkv_rows(struct lsa_fwd *f, int l, const float *in, const struct rows *r)
{
    const struct lsa_arch *a = &f->m->arch;
    const struct lsa_layer_w *L = &f->m->layers[l];
    int d = a->d_model, n = r->t1 - r->t0;
    float *h = f->h + (size_t)r->t0 * d, *row = f->qkv + (size_t)r->t0 * qkv_view(a, f->qkv).ld;
    struct qkv_view v = qkv_view(a, row);
    lsa_ops_norm(a, &L->attn_norm, in + (size_t)r->t0 * d, h, n);
    if (a->qkv_layout == LSA_QKV_SEPARATE && !L->qkv.packed) { /* packed: q, k, v stacked (model.c) */
        linear(f, &L->q, h, d, n, v.q, v.ld);
        linear(f, &L->k, h, d, n, v.k, v.ld);
        linear(f, &L->v, h, d, n, v.v, v.ld);
    } else {
        linear(f, &L->qkv, h, d, n, row, v.ld);
    }
    if (a->pos == LSA_POS_ROPE) {
        size_t half = (size_t)a->rope_dims / 2;
        const float *c = f->rope_cos + (size_t)r->t0 * half, *sn = f->rope_sin + (size_t)r->t0 * half;
        lsa_ops_rope(v.q, v.ld, v.q_hs, a->n_head, n, a->rope_dims, c, sn);
        lsa_ops_rope(v.k, v.ld, v.kv_hs, a->n_head_kv, n, a->rope_dims, c, sn);
    }
}

/* Attention of layer l for query rows q0..q1-1 and heads h0..h1-1, into f->ctx; needs q, k, v of every
 * row up to q1. */
static void heads(struct lsa_fwd *f, int l, int q0, int q1, int h0, int h1, const struct lsa_att_scratch *scores)
{
    const struct lsa_arch *a = &f->m->arch;
    struct qkv_view v = qkv_view(a, f->qkv);
    float scale = 1.0f / sqrtf((float)a->d_head);
    if (a->attn_scale_by_layer) scale /= (float)(l + 1);
    lsa_ops_attention(v.q, v.ld, v.q_hs, v.k, v.v, v.ld, v.kv_hs, f->ctx, a->n_head * a->d_head, q0, q1, h0, h1,
                      a->n_head, a->n_head_kv, a->d_head, scale, a->sliding_window, scores, f->dnnl_threads);
}

/* MLP sub-block of layer l for the rows of f->h; result in f->mlp. */
static void mlp_rows(struct lsa_fwd *f, int l, const struct rows *r)
{
    const struct lsa_arch *a = &f->m->arch;
    const struct lsa_layer_w *L = &f->m->layers[l];
    int ff = a->d_ff, d = a->d_model, n = r->t1 - r->t0, ldf = a->gated_mlp ? 2 * ff : ff;
    const float *h = f->h + (size_t)r->t0 * d;
    float *buf = f->ff + (size_t)r->t0 * ldf, *out = f->mlp + (size_t)r->t0 * d;
    /* oneDNN's fast kernels read dense rows only: a packed down reads gate·up from f->act */
    bool dense = L->down.packed && f->act;
    if (a->gated_mlp) {
        if (a->gate_up_fused || L->gate_up.packed) { /* packed: gate and up stacked (model.c) */
            linear(f, &L->gate_up, h, d, n, buf, ldf);
        } else {
            linear(f, &L->gate, h, d, n, buf, ldf);
            linear(f, &L->up, h, d, n, buf + ff, ldf);
        }
        if (dense) {
            float *act = f->act + (size_t)r->t0 * ff;
            lsa_ops_act_mul(a->act, buf, n, ff, ldf, ff, act, ff);
            linear(f, &L->down, act, ff, n, out, d);
            return;
        }
        lsa_ops_act_mul(a->act, buf, n, ff, ldf, ff, buf, ldf);
    } else {
        linear(f, &L->up, h, d, n, buf, ldf);
        lsa_ops_act(a->act, buf, n, ff, ldf);
    }
    linear(f, &L->down, buf, ldf, n, out, d);
}

/* What one plan position does. */
struct step {
    struct lsa_fwd *f;
    int l;
    bool drop_attn, drop_mlp;
    const float *in;
    float *out; /* may alias in */
    int T;
    _Atomic int next_job; /* attention jobs (block of query rows, head) taken so far */
};

/* The rest of the block for the rows, once their attention heads are there: o, mid, MLP, out. */
static void rest_rows(const struct step *s, const struct rows *r)
{
    struct lsa_fwd *f = s->f;
    const struct lsa_arch *a = &f->m->arch;
    size_t d = (size_t)a->d_model, off = (size_t)r->t0 * d, n = (size_t)(r->t1 - r->t0) * d;
    size_t q_dim = (size_t)a->n_head * a->d_head;
    if (s->drop_attn) memset(f->attn + off, 0, n * sizeof(float));
    else
        linear(f, &f->m->layers[s->l].o, f->ctx + (size_t)r->t0 * q_dim, (int)q_dim, r->t1 - r->t0, f->attn + off,
               (int)d);
    lsa_vadd_to(f->mid + off, s->in + off, f->attn + off, n);
    if (s->drop_mlp) {
        memset(f->mlp + off, 0, n * sizeof(float));
    } else {
        lsa_ops_norm(a, &f->m->layers[s->l].mlp_norm, (a->parallel_residual ? s->in : f->mid) + off, f->h + off,
                     r->t1 - r->t0);
        mlp_rows(f, s->l, r);
    }
    lsa_vadd_to(s->out + off, f->mid + off, f->mlp + off, n);
}

/* A thread's part of a split step. */
struct part {
    struct step *s;
    struct rows r;
    int phase; /* 0: q, k, v of its rows; 1: attention jobs, as many as it gets; 2: the rest of its rows */
};

/*
 * Attention is shared by jobs, not rows: its cost grows along the sequence (causal) and depends on the
 * heads' width in ways no simple count captures. A job is one block of LSA_ATTN_BLOCK query rows and one
 * head, taken from a counter, the costliest (last) blocks first, so that threads finish together.
 */
static void attention_jobs(struct step *s, const struct lsa_att_scratch *scores)
{
    int H = s->f->m->arch.n_head, n_blocks = (s->T + LSA_ATTN_BLOCK - 1) / LSA_ATTN_BLOCK;
    for (int j; (j = atomic_fetch_add(&s->next_job, 1)) < n_blocks * H;) {
        int b = n_blocks - 1 - j / H, h = j % H;
        int q1 = (b + 1) * LSA_ATTN_BLOCK < s->T ? (b + 1) * LSA_ATTN_BLOCK : s->T;
        heads(s->f, s->l, b * LSA_ATTN_BLOCK, q1, h, h + 1, scores);
    }
}

static void *run_part(void *arg)
{
    struct part *p = arg;
    if (p->phase == 1) attention_jobs(p->s, &p->r.scores);
    else if (p->r.t1 <= p->r.t0) return NULL;
    else if (p->phase == 0) qkv_rows(p->s->f, p->s->l, p->s->in, &p->r);
    else rest_rows(p->s, &p->r);
    return NULL;
}

/* Row ranges of equal size for n threads, cut at multiples of 16 rows (GEMM blocks). */
static void split_rows(int T, int n, int bound[])
{
    for (int i = 0; i < n; i++) bound[i] = (int)((int64_t)T * i / n + 8) / 16 * 16;
    bound[n] = T;
}

/* One plan position: out = block(in). in and out may alias. */
static int block(struct lsa_fwd *f, const struct lsa_plan *plan, int pos, const float *in, float *out, int T,
                 const struct lsa_fwd_request *req)
{
    const struct lsa_arch *a = &f->m->arch;
    int d = a->d_model, rc;
    struct step s = {.f = f, .l = plan ? plan->layer[pos] : pos, .in = in, .out = out, .T = T};
    s.drop_attn = plan && plan->drop_attn[pos];
    s.drop_mlp = plan && plan->drop_mlp[pos];
    int n = f->cur_split;
    if (n == 1) {
        struct rows r = {.t0 = 0, .t1 = T, .scores = {f->scores, f->score_len, f->n_scores}};
        if (!s.drop_attn) {
            qkv_rows(f, s.l, in, &r);
            heads(f, s.l, 0, T, 0, a->n_head, &r.scores);
        }
        rest_rows(&s, &r);
    } else {
        int bound[LSA_MAX_THREADS + 1];
        struct part parts[LSA_MAX_THREADS];
        split_rows(T, n, bound);
        for (int i = 0; i < n; i++)
            parts[i] = (struct part){
                .s = &s, .r = {bound[i], bound[i + 1], {f->scores + (size_t)i * f->score_len, f->score_len, 1}}};
        for (int phase = s.drop_attn ? 2 : 0; phase < 3; phase++) {
            for (int i = 0; i < n; i++) parts[i].phase = phase;
            lsa_pool_run(f->pool, run_part, parts, sizeof parts[0]);
        }
    }
    /* reported after the MLP ran: hooks only read, so they see what they would have seen before it */
    if ((rc = report(req, LSA_PT_ATTN_OUT, pos, f->attn, T, d)) ||
        (rc = report(req, LSA_PT_RESID_MID, pos, f->mid, T, d)) ||
        (rc = report(req, LSA_PT_MLP_OUT, pos, f->mlp, T, d)))
        return rc;
    return 0;
}

/* log-softmax statistics of one logit row: nll of target, and the top_k ids. */
static void row_stats(const float *r, int V, int target, float *nll, int top_k, int32_t *top)
{
    if (nll) {
        float mx = lsa_vmax(r, (size_t)V);
        double s = lsa_vexp_sum(r, (size_t)V, mx); /* terms in float, the sum in double */
        *nll = (float)(log(s) + mx - r[target]);
    }
    for (int k = 0; k < top_k; k++) top[k] = -1;
    for (int j = 0; j < V && top_k > 0; j++) {
        /* insertion into a small sorted list; ties keep the lower id first, like torch.topk in practice */
        int k = top_k;
        while (k > 0 && (top[k - 1] < 0 || r[j] > r[top[k - 1]])) k--;
        if (k >= top_k) continue;
        memmove(top + k + 1, top + k, (size_t)(top_k - k - 1) * sizeof *top);
        top[k] = j;
    }
}

/* NaN/Inf in the residual stream (a corrupt weight, an overflow): say where, so the user can look. */
static int check_finite(const float *x, int T, int d, int pos, int layer)
{
    if (!lsa_vany_nonfinite(x, (size_t)T * d)) return 0;
    for (size_t i = 0; i < (size_t)T * d; i++)
        if (!isfinite(x[i]))
            return lsa_err(LSA_ENUM,
                           "non-finite activation (%s) after layer %d (plan position %d) at token %zu, "
                           "feature %zu",
                           isnan(x[i]) ? "NaN" : "Inf", layer, pos, i / (size_t)d, i % (size_t)d);
    return 0;
}

/* The head's logits, nll and top ids of every n-th block of LOGIT_BLOCK tokens from block tid. */
struct head_part {
    struct lsa_fwd *f;
    const int32_t *tokens;
    int T;
    const struct lsa_fwd_request *req;
    int tid, n;
};

static void *head_blocks(void *arg)
{
    const struct head_part *p = arg;
    struct lsa_fwd *f = p->f;
    const struct lsa_fwd_request *req = p->req;
    int V = f->m->arch.n_vocab, d = f->m->arch.d_model, T = p->T;
    for (int t0 = p->tid * LOGIT_BLOCK; t0 < T; t0 += p->n * LOGIT_BLOCK) {
        int nb = T - t0 < LOGIT_BLOCK ? T - t0 : LOGIT_BLOCK;
        float *lg = req->logits ? req->logits + (size_t)t0 * V : f->logits + (size_t)p->tid * LOGIT_BLOCK * V;
        logits(f, f->h + (size_t)t0 * d, nb, lg, V);
        for (int i = 0; i < nb; i++) {
            int t = t0 + i;
            const float *r = lg + (size_t)i * V;
            bool want_nll = req->nll && t + 1 < T;
            row_stats(r, V, want_nll ? p->tokens[t + 1] : 0, want_nll ? &req->nll[t] : NULL,
                      req->top_ids ? req->top_k : 0, req->top_ids ? req->top_ids + (size_t)t * req->top_k : NULL);
        }
    }
    return NULL;
}

static int run(struct lsa_fwd *f, const int32_t *tokens, int T, const struct lsa_fwd_request *req)
{
    const struct lsa_model *m = f->m;
    const struct lsa_arch *a = &m->arch;
    const struct lsa_plan *plan = req->plan;
    int d = a->d_model, rc;
    size_t n = (size_t)T * d;
    if (T <= 0 || T > f->max_tok) return lsa_err(LSA_EINVAL, "forward: %d tokens (window holds 1..%d)", T, f->max_tok);
    if (req->top_k < 0 || req->top_k > 64) return lsa_err(LSA_EINVAL, "forward: top_k %d (0..64)", req->top_k);
    if (plan && (rc = lsa_plan_check(plan, a->n_layer))) return rc;
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= a->n_vocab)
            return lsa_err(LSA_EINVAL, "forward: token %d at position %d is outside the vocabulary (%d)", tokens[t], t,
                           a->n_vocab);

    int n_pos = plan ? plan->n : a->n_layer, p = 0;
    if (req->x_start) {
        if (req->start_pos < 0 || req->start_pos > n_pos)
            return lsa_err(LSA_EINVAL, "forward: start position %d outside the plan (0..%d)", req->start_pos, n_pos);
        if (req->start_pos > 0 && req->start_pos < n_pos && plan && plan->group[req->start_pos] &&
            plan->group[req->start_pos] == plan->group[req->start_pos - 1])
            return lsa_err(LSA_EINVAL, "forward: start position %d is inside a parallel group", req->start_pos);
        memcpy(f->x, req->x_start, n * sizeof(float));
        p = req->start_pos;
    } else {
        float scale = a->embed_scale ? (float)sqrt((double)d) : 1.0f;
        for (int t = 0; t < T; t++) {
            float *x = f->x + (size_t)t * d;
            lsa_mat_rows(&m->tok_embd, (size_t)d, (size_t)tokens[t], 1, x);
            for (int i = 0; i < d; i++) x[i] *= scale;
            if (m->pos_embd)
                for (int i = 0; i < d; i++) x[i] += m->pos_embd[(size_t)t * d + i];
        }
        if ((rc = report(req, LSA_PT_EMBED, -1, f->x, T, d))) return rc;
    }

    while (p < n_pos) {
        int g = plan ? plan->group[p] : 0, end = p + 1;
        while (g && end < n_pos && plan->group[end] == g) end++;
        if (end - p == 1) {
            if ((rc = block(f, plan, p, f->x, f->x, T, req))) return rc;
        } else {
            memcpy(f->x_in, f->x, n * sizeof(float));
            memset(f->acc, 0, n * sizeof(float));
            for (int q = p; q < end; q++) {
                if ((rc = block(f, plan, q, f->x_in, f->x, T, req))) return rc;
                for (size_t i = 0; i < n; i++) f->acc[i] += f->x[i] - f->x_in[i];
            }
            for (size_t i = 0; i < n; i++) f->x[i] = f->x_in[i] + f->acc[i];
        }
        if (!req->allow_nonfinite && (rc = check_finite(f->x, T, d, end - 1, plan ? plan->layer[end - 1] : end - 1)))
            return rc;
        for (int q = p; q < end; q++)
            if ((rc = report(req, LSA_PT_RESID_POST, q, f->x, T, d))) return rc;
        p = end;
    }

    lsa_ops_norm(a, &m->final_norm, f->x, f->h, T);
    if ((rc = report(req, LSA_PT_FINAL_NORM, -1, f->h, T, d))) return rc;
    if (!req->nll && !req->top_ids && !req->logits) return 0;
    int nt = f->cur_split;
    struct head_part parts[LSA_MAX_THREADS];
    for (int i = 0; i < nt; i++)
        parts[i] = (struct head_part){.f = f, .tokens = tokens, .T = T, .req = req, .tid = i, .n = nt};
    if (nt > 1) lsa_pool_run(f->pool, head_blocks, parts, sizeof parts[0]);
    else head_blocks(parts);
    return 0;
}

int lsa_fwd_split(const struct lsa_fwd *f, int n_tok)
{
    int n = f->n_split;
    if (n < 2 || n_tok < 32 * n) return 1; /* too few rows a thread to share */
    if (f->split_forced || f->m->arch.d_model <= SPLIT_MAX_D || n_tok / n >= SPLIT_MIN_ROWS) return n;
    return 1;
}

/*
 * Threads for oneDNN's calls (src/packed.h) in a window; 0: OpenBLAS alone. One in a split forward (its
 * threads share the rows) and for a model with d_model <= SPLIT_MAX_D, whose GEMMs are too small to share
 * between threads. Otherwise all of OpenBLAS's threads when the layers are packed, and none when they are
 * not: OpenMP's team and OpenBLAS's threads each spin a while after a call, and calls alternating between
 * the two leave each spinning beside the other's work.
 */
static int dnnl_threads(const struct lsa_fwd *f, bool split)
{
    if (split || f->m->arch.d_model <= SPLIT_MAX_D) return 1;
    return f->m->layers && f->m->layers[0].o.packed ? lsa_ops_blas_threads(-1) : 0;
}

int lsa_fwd_run(struct lsa_fwd *f, const int32_t *tokens, int T, const struct lsa_fwd_request *req)
{
    f->cur_split = lsa_fwd_split(f, T);
    bool split = f->cur_split > 1;
    f->dnnl_threads = dnnl_threads(f, split);
    /* split rows call one-thread GEMMs side by side; OpenBLAS's own threads would only contend */
    int was = split ? lsa_ops_blas_threads(1) : 0;
    int rc = run(f, tokens, T, req);
    if (split) lsa_ops_blas_threads(was);
    return rc;
}

int lsa_fwd_unembed(struct lsa_fwd *f, const float *x, int T, float *out)
{
    const struct lsa_arch *a = &f->m->arch;
    if (T <= 0 || T > f->max_tok) return lsa_err(LSA_EINVAL, "unembed: %d tokens (window holds 1..%d)", T, f->max_tok);
    lsa_ops_norm(a, &f->m->final_norm, x, f->h, T);
    f->dnnl_threads = dnnl_threads(f, false);
    logits(f, f->h, T, out, a->n_vocab);
    return 0;
}

int lsa_fwd_head(struct lsa_fwd *f, const float *h, int T, float *out)
{
    const struct lsa_arch *a = &f->m->arch;
    if (T <= 0 || T > f->max_tok) return lsa_err(LSA_EINVAL, "head: %d tokens (window holds 1..%d)", T, f->max_tok);
    f->dnnl_threads = dnnl_threads(f, false);
    logits(f, h, T, out, a->n_vocab);
    return 0;
}
