/*
 * logit_lens.c — the logit lens over a capture, block by block (definitions in logit_lens.h).
 */
#include "logit_lens.h"

#include "lsa/h5.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lsa_lens_opts lsa_lens_opts_default(void)
{
    return (struct lsa_lens_opts){.block = 128};
}

/* Statistics of one logit row against the reference distribution (log-probs lpf, its argmax af). */
struct row {
    double lse, entropy, kl, ce, prob;
    int top1;
    int64_t rank_true, rank_final;
};

static void row_stats(const float *z, int V, const float *lpf, int af, int next, struct row *r)
{
    float mx = -INFINITY;
    int am = 0;
    for (int j = 0; j < V; j++)
        if (z[j] > mx) mx = z[j], am = j;
    double s = 0;
    for (int j = 0; j < V; j++) s += expf(z[j] - mx);
    double lse = mx + log(s), h = 0, kl = 0;
    int64_t rt = 0, rf = 0;
    float zt = next >= 0 ? z[next] : 0, zf = z[af];
    for (int j = 0; j < V; j++) {
        double lp = (double)z[j] - lse, p = exp(lp);
        h -= p * lp;
        if (lpf) kl += exp((double)lpf[j]) * ((double)lpf[j] - lp);
        rt += z[j] > zt;
        rf += z[j] > zf;
    }
    r->lse = lse;
    r->entropy = h;
    r->kl = kl > 0 ? kl : 0;
    r->ce = next >= 0 ? lse - zt : 0;
    r->prob = next >= 0 ? exp(zt - lse) : 0;
    r->top1 = am;
    r->rank_true = rt;
    r->rank_final = rf;
}

static void log_softmax(float *z, int V, int *argmax)
{
    float mx = -INFINITY;
    int am = 0;
    for (int j = 0; j < V; j++)
        if (z[j] > mx) mx = z[j], am = j;
    double s = 0;
    for (int j = 0; j < V; j++) s += expf(z[j] - mx);
    float lse = mx + (float)log(s);
    for (int j = 0; j < V; j++) z[j] -= lse;
    *argmax = am;
}

static double median_of_hist(const int64_t *h, int V, int64_t n)
{
    int64_t acc = 0;
    for (int j = 0; j < V; j++) {
        acc += h[j];
        if (2 * acc >= n) {
            if (2 * acc > n || n % 2) return j;
            for (int k = j + 1; k < V; k++) /* n even and the lower middle ends a bin: average with the next */
                if (h[k]) return 0.5 * (j + k);
            return j;
        }
    }
    return 0;
}

int lsa_lens_run(struct lsa_capture_reader *cr, const struct lsa_model *m, const struct lsa_lens_opts *o,
                 struct lsa_lens_result *out)
{
    const struct lsa_capture_info *ci = lsa_capture_read_info(cr);
    const struct lsa_arch *a = lsa_model_arch(m);
    int P = ci->n_points, D = ci->d_model, V = a->n_vocab, B = o->block > 0 ? o->block : 128, rc = 0;
    memset(out, 0, sizeof *out);
    if (D != a->d_model)
        return lsa_err(LSA_EFORMAT, "%s: capture has d_model %d but the model %s has %d", ci->path, D,
                       lsa_model_path(m), a->d_model);
    int64_t N = ci->n_tokens;
    if (o->max_tokens && o->max_tokens < N) N = o->max_tokens;
    out->n_points = P;

    /* tokens and sequence bounds: O(N) integers, small beside the activations */
    struct lsa_h5 *h = lsa_h5_open(ci->path);
    int64_t *tok = NULL, *offs = NULL, *hist = NULL;
    size_t nt = 0, no = 0;
    float *x = NULL, *fin = NULL, *lpf = NULL, *z = NULL;
    int *af = NULL;
    double *sum = NULL;
    struct lsa_fwd *f = NULL;
    if (!h) return LSA_EIO;
    if ((rc = lsa_h5_read_i64(h, "/tokens", &tok, &nt)) || (rc = lsa_h5_read_i64(h, "/seq_offsets", &offs, &no)))
        goto out;
    if ((int64_t)nt != ci->n_tokens || no != (size_t)ci->n_seqs + 1) {
        rc = lsa_err(LSA_EFORMAT, "%s: tokens/seq_offsets disagree with resid", ci->path);
        goto out;
    }
    for (size_t i = 0; i < nt; i++)
        if (tok[i] < 0 || tok[i] >= V) {
            rc = lsa_err(LSA_EFORMAT, "%s: token %lld at %zu is outside the model's vocabulary (%d): wrong model?",
                         ci->path, (long long)tok[i], i, V);
            goto out;
        }
    enum { S_H, S_KL, S_CE, S_TOP1, S_PROB, S_RT, S_RF, NS };
    sum = calloc((size_t)P * NS, sizeof *sum);
    hist = calloc((size_t)P * V, sizeof *hist);
    x = malloc(sizeof(float) * (size_t)P * B * D);
    fin = malloc(sizeof(float) * (size_t)B * D);
    lpf = malloc(sizeof(float) * (size_t)B * V);
    z = malloc(sizeof(float) * (size_t)B * V);
    af = malloc(sizeof(int) * (size_t)B);
    f = lsa_fwd_new(m, B);
    if (!sum || !hist || !x || !fin || !lpf || !z || !af || !f) {
        rc = lsa_err(LSA_ENOMEM, "logit lens: out of memory");
        goto out;
    }
    /* grid placement */
    int gs = o->grid_seq >= 0 && o->grid_seq < ci->n_seqs ? o->grid_seq : 0;
    int64_t g0 = offs[gs], glen = offs[gs + 1] - offs[gs];
    int from = o->grid_from >= 0 && o->grid_from < glen ? o->grid_from : 0;
    int to = o->grid_to > from ? o->grid_to : from + 24;
    if (to > glen) to = (int)glen;
    int C = to - from;
    out->grid_seq = gs;
    out->grid_from = from;
    out->grid_cols = C;
    out->grid_top = calloc((size_t)P * C + 1, sizeof *out->grid_top);
    out->grid_prob = calloc((size_t)P * C + 1, sizeof *out->grid_prob);
    out->grid_entropy = calloc((size_t)P * C + 1, sizeof *out->grid_entropy);
    out->grid_input = calloc((size_t)C + 1, sizeof *out->grid_input);
    out->grid_next = calloc((size_t)C + 1, sizeof *out->grid_next);
    if (!out->grid_top || !out->grid_prob || !out->grid_entropy || !out->grid_input || !out->grid_next) {
        rc = lsa_err(LSA_ENOMEM, "logit lens: out of memory");
        goto out;
    }
    for (int c = 0; c < C; c++) {
        int64_t t = g0 + from + c;
        out->grid_input[c] = (int32_t)tok[t];
        out->grid_next[c] = t + 1 < offs[gs + 1] ? (int32_t)tok[t + 1] : -1;
    }

    int64_t n_scored = 0, s_idx = 0;
    for (int64_t t0 = 0; t0 < N && !rc; t0 += B) {
        int nb = (int)(N - t0 < B ? N - t0 : B);
        if ((rc = lsa_capture_read_resid(cr, t0, t0 + nb, x))) break;
        /* the reference distribution */
        if (ci->has_final) {
            if ((rc = lsa_capture_read_final(cr, t0, t0 + nb, fin)) || (rc = lsa_fwd_head(f, fin, nb, lpf))) break;
        } else if ((rc = lsa_fwd_unembed(f, x + (size_t)(P - 1) * nb * D, nb, lpf))) {
            break;
        }
        for (int i = 0; i < nb; i++) log_softmax(lpf + (size_t)i * V, V, &af[i]);
        for (int l = 0; l < P && !rc; l++) {
            if ((rc = lsa_fwd_unembed(f, x + (size_t)l * nb * D, nb, z))) break;
            int64_t s = s_idx;
            for (int i = 0; i < nb; i++) {
                int64_t t = t0 + i;
                while (offs[s + 1] <= t) s++;
                bool has_next = t + 1 < offs[s + 1];
                struct row r;
                row_stats(z + (size_t)i * V, V, lpf + (size_t)i * V, af[i], has_next ? (int)tok[t + 1] : -1, &r);
                if (s == gs && t - g0 >= from && t - g0 < to) {
                    size_t cell = (size_t)l * C + (size_t)(t - g0 - from);
                    out->grid_top[cell] = r.top1;
                    out->grid_prob[cell] = (float)exp((double)z[(size_t)i * V + r.top1] - r.lse);
                    out->grid_entropy[cell] = (float)r.entropy;
                }
                if (!has_next) continue;
                double *sm = sum + (size_t)l * NS;
                sm[S_H] += r.entropy, sm[S_KL] += r.kl, sm[S_CE] += r.ce, sm[S_TOP1] += r.top1 == af[i];
                sm[S_PROB] += r.prob, sm[S_RT] += (double)r.rank_true, sm[S_RF] += (double)r.rank_final;
                hist[(size_t)l * V + r.rank_true]++;
                if (l == 0) n_scored++;
            }
        }
        while (s_idx + 1 < (int64_t)no - 1 && offs[s_idx + 1] <= t0 + nb) s_idx++;
    }
    if (rc) goto out;
    if (n_scored == 0) {
        rc = lsa_err(LSA_EINVAL, "%s: no token has a next token to predict", ci->path);
        goto out;
    }
    out->n_tokens = n_scored;
    double **dst[] = {&out->entropy, &out->kl_to_final, &out->cross_entropy, &out->top1_agree_final,
                      &out->true_prob, &out->true_rank_mean, &out->final_top1_rank_mean};
    for (int k = 0; k < NS && !rc; k++) {
        if (!(*dst[k] = malloc(sizeof(double) * (size_t)P))) rc = lsa_err(LSA_ENOMEM, "out of memory");
        for (int l = 0; !rc && l < P; l++) (*dst[k])[l] = sum[(size_t)l * NS + k] / (double)n_scored;
    }
    if (!rc && !(out->true_rank_median = malloc(sizeof(double) * (size_t)P))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int l = 0; !rc && l < P; l++) out->true_rank_median[l] = median_of_hist(hist + (size_t)l * V, V, n_scored);
out:
    if (rc) lsa_lens_free(out);
    lsa_fwd_free(f);
    lsa_h5_close(h);
    free(tok), free(offs), free(hist), free(x), free(fin), free(lpf), free(z), free(af), free(sum);
    return rc;
}

void lsa_lens_free(struct lsa_lens_result *r)
{
    if (!r) return;
    free(r->entropy), free(r->kl_to_final), free(r->cross_entropy), free(r->top1_agree_final), free(r->true_prob);
    free(r->true_rank_median), free(r->true_rank_mean), free(r->final_top1_rank_mean);
    free(r->grid_top), free(r->grid_prob), free(r->grid_entropy), free(r->grid_input), free(r->grid_next);
    memset(r, 0, sizeof *r);
}
