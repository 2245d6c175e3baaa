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
#include "vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Logits are computed this many tokens at a time so that memory stays (block, n_vocab), not (T, n_vocab). */
#define LOGIT_BLOCK 64

struct lsa_fwd {
    const struct lsa_model *m;
    int max_tok;
    float *x;       /* (T, d) residual */
    float *x_in;    /* (T, d) input of a parallel group */
    float *acc;     /* (T, d) summed updates of a parallel group */
    float *h;       /* (T, d) normed input of a sub-block */
    float *mid;     /* (T, d) resid_mid */
    float *attn;    /* (T, d) attention sub-block output */
    float *mlp;     /* (T, d) MLP sub-block output */
    float *qkv;     /* (T, q_dim + 2 kv_dim) */
    float *ctx;     /* (T, q_dim) attention heads concatenated */
    float *ff;      /* (T, 2 d_ff) [gate | up] */
    float *scores;  /* (LSA_ATTN_BLOCK, T) */
    float *logits;  /* (LOGIT_BLOCK, n_vocab) */
    float *rope_cos, *rope_sin; /* (T, rope_dims / 2) */
    float *wbuf;    /* (max(largest lazy matrix, HEAD_BLOCK x d)) widened weights of a lazily loaded model */
};

/* Vocabulary rows of a lazily stored head widened at a time. */
#define HEAD_BLOCK 4096

static void *alloc_f(size_t n, int *fail)
{
    void *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) *fail = 1;
    return p;
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
    f->scores = alloc_f((size_t)LSA_ATTN_BLOCK * T, &fail);
    f->logits = alloc_f((size_t)LOGIT_BLOCK * a->n_vocab, &fail);
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
    float *bufs[] = {f->x,   f->x_in, f->acc,    f->h,      f->mid,      f->attn,    f->mlp,
                     f->qkv, f->ctx,  f->ff,     f->scores, f->logits,   f->rope_cos, f->rope_sin, f->wbuf};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(f);
}

/* y = x · Wᵀ + b for one linear layer, widening W first when the model keeps it in its stored dtype. */
static void linear(struct lsa_fwd *f, const struct lsa_linear *l, const float *x, int ldx, int T, float *y, int ldy)
{
    const float *w = lsa_mat_f32(&l->w, (size_t)l->n_in * l->n_out, f->wbuf);
    lsa_ops_linear(l, w, x, ldx, T, y, ldy);
}

/* logits (T, n_vocab; ld) = head · h, the head widened a block of vocabulary rows at a time when lazy. */
static void logits(struct lsa_fwd *f, const float *h, int T, float *out, int ld)
{
    const struct lsa_model *m = f->m;
    int V = m->arch.n_vocab, d = m->arch.d_model;
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

/* Attention sub-block of layer l on f->h; result in f->attn. */
static void attention(struct lsa_fwd *f, int l, int T)
{
    const struct lsa_arch *a = &f->m->arch;
    const struct lsa_layer_w *L = &f->m->layers[l];
    int dh = a->d_head, q_dim = a->n_head * dh, kv_dim = a->n_head_kv * dh, ld = q_dim + 2 * kv_dim;
    float *q = f->qkv, *k = f->qkv + q_dim, *v = f->qkv + q_dim + kv_dim;
    int q_hs = dh, kv_hs = dh;
    if (a->qkv_layout == LSA_QKV_SEPARATE) {
        linear(f, &L->q, f->h, a->d_model, T, q, ld);
        linear(f, &L->k, f->h, a->d_model, T, k, ld);
        linear(f, &L->v, f->h, a->d_model, T, v, ld);
    } else {
        linear(f, &L->qkv, f->h, a->d_model, T, f->qkv, ld);
        if (a->qkv_layout == LSA_QKV_PER_HEAD) { /* per head [q_h | k_h | v_h] */
            k = f->qkv + dh;
            v = f->qkv + 2 * dh;
            q_hs = kv_hs = 3 * dh;
        }
    }
    if (a->pos == LSA_POS_ROPE) {
        lsa_ops_rope(q, ld, q_hs, a->n_head, T, a->rope_dims, f->rope_cos, f->rope_sin);
        lsa_ops_rope(k, ld, kv_hs, a->n_head_kv, T, a->rope_dims, f->rope_cos, f->rope_sin);
    }
    float scale = 1.0f / sqrtf((float)dh);
    if (a->attn_scale_by_layer) scale /= (float)(l + 1);
    lsa_ops_attention(q, ld, q_hs, k, v, ld, kv_hs, f->ctx, q_dim, T, a->n_head, a->n_head_kv, dh, scale,
                      a->sliding_window, f->scores);
    linear(f, &L->o, f->ctx, q_dim, T, f->attn, a->d_model);
}

/* MLP sub-block of layer l on f->h; result in f->mlp. */
static void mlp(struct lsa_fwd *f, int l, int T)
{
    const struct lsa_arch *a = &f->m->arch;
    const struct lsa_layer_w *L = &f->m->layers[l];
    int ff = a->d_ff, d = a->d_model;
    if (a->gated_mlp) {
        if (a->gate_up_fused) {
            linear(f, &L->gate_up, f->h, d, T, f->ff, 2 * ff);
        } else {
            linear(f, &L->gate, f->h, d, T, f->ff, 2 * ff);
            linear(f, &L->up, f->h, d, T, f->ff + ff, 2 * ff);
        }
        lsa_ops_act_mul(a->act, f->ff, T, ff, 2 * ff, ff);
        linear(f, &L->down, f->ff, 2 * ff, T, f->mlp, d);
    } else {
        linear(f, &L->up, f->h, d, T, f->ff, ff);
        lsa_ops_act(a->act, f->ff, T, ff, ff);
        linear(f, &L->down, f->ff, ff, T, f->mlp, d);
    }
}

/* One plan position: out = block(in). in and out may alias. */
static int block(struct lsa_fwd *f, const struct lsa_plan *plan, int pos, const float *in, float *out, int T,
                 const struct lsa_fwd_request *req)
{
    const struct lsa_arch *a = &f->m->arch;
    int l = plan ? plan->layer[pos] : pos, d = a->d_model, rc;
    bool drop_attn = plan && plan->drop_attn[pos], drop_mlp = plan && plan->drop_mlp[pos];
    size_t n = (size_t)T * d;
    const struct lsa_layer_w *L = &f->m->layers[l];

    if (drop_attn) {
        memset(f->attn, 0, n * sizeof(float));
    } else {
        lsa_ops_norm(a, &L->attn_norm, in, f->h, T);
        attention(f, l, T);
    }
    memcpy(f->mid, in, n * sizeof(float));
    lsa_ops_add(f->mid, f->attn, n);
    if ((rc = report(req, LSA_PT_ATTN_OUT, pos, f->attn, T, d)) || (rc = report(req, LSA_PT_RESID_MID, pos, f->mid, T, d)))
        return rc;
    if (drop_mlp) {
        memset(f->mlp, 0, n * sizeof(float));
    } else {
        lsa_ops_norm(a, &L->mlp_norm, a->parallel_residual ? in : f->mid, f->h, T);
        mlp(f, l, T);
    }
    if ((rc = report(req, LSA_PT_MLP_OUT, pos, f->mlp, T, d))) return rc;
    if (out != f->mid) memcpy(out, f->mid, n * sizeof(float));
    lsa_ops_add(out, f->mlp, n);
    return 0;
}

/* log-softmax statistics of one logit row: nll of target, and the top_k ids. */
static void row_stats(const float *r, int V, int target, float *nll, int top_k, int32_t *top)
{
    if (nll) {
        float mx = -INFINITY;
        for (int j = 0; j < V; j++) mx = r[j] > mx ? r[j] : mx;
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
    for (size_t i = 0; i < (size_t)T * d; i++)
        if (!isfinite(x[i]))
            return lsa_err(LSA_ENUM, "non-finite activation (%s) after layer %d (plan position %d) at token %zu, "
                           "feature %zu", isnan(x[i]) ? "NaN" : "Inf", layer, pos, i / (size_t)d, i % (size_t)d);
    return 0;
}

int lsa_fwd_run(struct lsa_fwd *f, const int32_t *tokens, int T, const struct lsa_fwd_request *req)
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
        if (!req->allow_nonfinite &&
            (rc = check_finite(f->x, T, d, end - 1, plan ? plan->layer[end - 1] : end - 1)))
            return rc;
        for (int q = p; q < end; q++)
            if ((rc = report(req, LSA_PT_RESID_POST, q, f->x, T, d))) return rc;
        p = end;
    }

    lsa_ops_norm(a, &m->final_norm, f->x, f->h, T);
    if ((rc = report(req, LSA_PT_FINAL_NORM, -1, f->h, T, d))) return rc;
    if (!req->nll && !req->top_ids && !req->logits) return 0;
    for (int t0 = 0; t0 < T; t0 += LOGIT_BLOCK) {
        int nb = T - t0 < LOGIT_BLOCK ? T - t0 : LOGIT_BLOCK;
        float *lg = req->logits ? req->logits + (size_t)t0 * a->n_vocab : f->logits;
        logits(f, f->h + (size_t)t0 * d, nb, lg, a->n_vocab);
        for (int i = 0; i < nb; i++) {
            int t = t0 + i;
            const float *r = lg + (size_t)i * a->n_vocab;
            bool want_nll = req->nll && t + 1 < T;
            row_stats(r, a->n_vocab, want_nll ? tokens[t + 1] : 0, want_nll ? &req->nll[t] : NULL,
                      req->top_ids ? req->top_k : 0, req->top_ids ? req->top_ids + (size_t)t * req->top_k : NULL);
        }
    }
    return 0;
}

int lsa_fwd_unembed(struct lsa_fwd *f, const float *x, int T, float *out)
{
    const struct lsa_arch *a = &f->m->arch;
    if (T <= 0 || T > f->max_tok) return lsa_err(LSA_EINVAL, "unembed: %d tokens (window holds 1..%d)", T, f->max_tok);
    lsa_ops_norm(a, &f->m->final_norm, x, f->h, T);
    logits(f, f->h, T, out, a->n_vocab);
    return 0;
}

int lsa_fwd_head(struct lsa_fwd *f, const float *h, int T, float *out)
{
    const struct lsa_arch *a = &f->m->arch;
    if (T <= 0 || T > f->max_tok) return lsa_err(LSA_EINVAL, "head: %d tokens (window holds 1..%d)", T, f->max_tok);
    logits(f, h, T, out, a->n_vocab);
    return 0;
}
