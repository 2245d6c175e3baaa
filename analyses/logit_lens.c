/*
 * logit_lens.c — the logit lens over a capture, block by block (definitions in logit_lens.h), its
 * results, and readable token pieces. The figures are in lens_draw.c. No printing.
 */
#include "logit_lens.h"

#include "lsa/h5.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lsa_lens_opts lsa_lens_opts_default(void)
{
    return (struct lsa_lens_opts){.block = 128, .per_token = 4096};
}

/* ---------------------------------------------------------------- the pass */

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

static int nomem(void) { return lsa_err(LSA_ENOMEM, "logit lens: out of memory"); }

/* The grid's placement, arrays and readable labels. */
static int grid_alloc(struct lsa_lens_result *r, const struct lsa_lens_opts *o, const struct lsa_model *m,
                      const int64_t *tok, const int64_t *offs, int64_t n_seqs)
{
    int P = r->n_points;
    int gs = o->grid_seq >= 0 && o->grid_seq < n_seqs ? o->grid_seq : 0;
    int64_t g0 = offs[gs], glen = offs[gs + 1] - offs[gs];
    int from = o->grid_from >= 0 && o->grid_from < glen ? o->grid_from : 0;
    int to = o->grid_to > from ? o->grid_to : from + 16;
    if (to > glen) to = (int)glen;
    int C = to - from;
    r->grid_seq = gs;
    r->grid_from = from;
    r->grid_cols = C;
    r->grid_top = calloc((size_t)P * C + 1, sizeof *r->grid_top);
    r->grid_prob = calloc((size_t)P * C + 1, sizeof *r->grid_prob);
    r->grid_entropy = calloc((size_t)P * C + 1, sizeof *r->grid_entropy);
    r->grid_input = calloc((size_t)C + 1, sizeof *r->grid_input);
    r->grid_next = calloc((size_t)C + 1, sizeof *r->grid_next);
    r->grid_top_text = calloc((size_t)P * C + 1, sizeof *r->grid_top_text);
    r->grid_input_text = calloc((size_t)C + 1, sizeof *r->grid_input_text);
    r->grid_next_text = calloc((size_t)C + 1, sizeof *r->grid_next_text);
    if (!r->grid_top || !r->grid_prob || !r->grid_entropy || !r->grid_input || !r->grid_next || !r->grid_top_text ||
        !r->grid_input_text || !r->grid_next_text)
        return nomem();
    const struct lsa_tokenizer *tk = lsa_model_tokenizer(m);
    char buf[64];
    for (int c = 0; c < C; c++) {
        int64_t t = g0 + from + c;
        r->grid_input[c] = (int32_t)tok[t];
        r->grid_next[c] = t + 1 < offs[gs + 1] ? (int32_t)tok[t + 1] : -1;
        r->grid_input_text[c] = strdup(lsa_lens_piece_label(tk, r->grid_input[c], buf, sizeof buf));
        r->grid_next_text[c] =
            strdup(r->grid_next[c] >= 0 ? lsa_lens_piece_label(tk, r->grid_next[c], buf, sizeof buf) : "");
        if (!r->grid_input_text[c] || !r->grid_next_text[c]) return nomem();
    }
    return 0;
}

static int grid_text(struct lsa_lens_result *r, const struct lsa_model *m)
{
    const struct lsa_tokenizer *tk = lsa_model_tokenizer(m);
    char buf[64];
    for (size_t i = 0; i < (size_t)r->n_points * r->grid_cols; i++)
        if (!(r->grid_top_text[i] = strdup(lsa_lens_piece_label(tk, r->grid_top[i], buf, sizeof buf)))) return nomem();
    return 0;
}

static int result_alloc(struct lsa_lens_result *r, const struct lsa_capture_info *ci, int64_t K)
{
    int P = ci->n_points;
    r->n_points = P;
    r->model = lsa_path_base(ci->model_path);
    r->point_names = calloc((size_t)P, sizeof *r->point_names);
    if (!r->model || !r->point_names) return nomem();
    for (int l = 0; l < P; l++)
        if (!(r->point_names[l] = strdup(ci->point_names[l]))) return nomem();
    size_t pk = (size_t)P * (size_t)K + 1;
    r->kept_index = malloc(sizeof(int64_t) * ((size_t)K + 1));
    r->kept_next = malloc(sizeof(int64_t) * ((size_t)K + 1));
    r->kept_final_top1 = malloc(sizeof(int64_t) * ((size_t)K + 1));
    r->tok_entropy = malloc(sizeof(double) * pk);
    r->tok_kl = malloc(sizeof(double) * pk);
    r->tok_ce = malloc(sizeof(double) * pk);
    r->tok_true_prob = malloc(sizeof(double) * pk);
    r->tok_true_rank = malloc(sizeof(int64_t) * pk);
    r->tok_final_top1_rank = malloc(sizeof(int64_t) * pk);
    r->tok_top1 = malloc(sizeof(int64_t) * pk);
    if (!r->kept_index || !r->kept_next || !r->kept_final_top1 || !r->tok_entropy || !r->tok_kl || !r->tok_ce ||
        !r->tok_true_prob || !r->tok_true_rank || !r->tok_final_top1_rank || !r->tok_top1)
        return nomem();
    return 0;
}

/* Per-token values of scored tokens 0..K-1 are stored at [l * K + slot] as they come; at the end, with
 * fewer than K scored, the rows are packed to the final count. */
static void pack_rows(void *v, size_t elem, int P, int64_t K, int64_t n)
{
    for (int l = 1; l < P; l++) memmove((char *)v + elem * (size_t)l * n, (char *)v + elem * (size_t)l * K, elem * n);
}

int lsa_lens_run(struct lsa_capture_reader *cr, const struct lsa_model *m, const struct lsa_lens_opts *o,
                 struct lsa_lens_result **outp)
{
    const struct lsa_capture_info *ci = lsa_capture_read_info(cr);
    const struct lsa_arch *a = lsa_model_arch(m);
    int P = ci->n_points, D = ci->d_model, V = a->n_vocab, B = o->block > 0 ? o->block : 128, rc = 0;
    *outp = NULL;
    if (D != a->d_model)
        return lsa_err(LSA_EFORMAT, "%s: capture has d_model %d but the model %s has %d", ci->path, D,
                       lsa_model_path(m), a->d_model);
    int64_t N = ci->n_tokens;
    if (o->max_tokens > 0 && o->max_tokens < N) N = o->max_tokens;
    int64_t K = o->per_token > 0 ? (o->per_token < N ? o->per_token : N) : 0;
    struct lsa_lens_result *out = calloc(1, sizeof *out);
    if (!out) return nomem();

    /* tokens and sequence bounds: O(N) integers, small beside the activations */
    struct lsa_h5 *h = lsa_h5_open(ci->path);
    int64_t *tok = NULL, *offs = NULL, *hist = NULL, *slot = NULL;
    size_t nt = 0, no = 0;
    float *x = NULL, *fin = NULL, *lpf = NULL, *z = NULL;
    int *af = NULL;
    double *sum = NULL;
    struct lsa_fwd *f = NULL;
    if (!h) {
        free(out);
        return LSA_EIO;
    }
    if ((rc = lsa_h5_read_i64(h, "/tokens", &tok, &nt)) || (rc = lsa_h5_read_i64(h, "/seq_offsets", &offs, &no)))
        goto out;
    if ((int64_t)nt != ci->n_tokens || no != (size_t)ci->n_seqs + 1 || no < 2) {
        rc = lsa_err(LSA_EFORMAT, "%s: tokens/seq_offsets disagree with resid", ci->path);
        goto out;
    }
    for (size_t i = 0; i < nt; i++)
        if (tok[i] < 0 || tok[i] >= V) {
            rc = lsa_err(LSA_EFORMAT, "%s: token %lld at %zu is outside the model's vocabulary (%d): wrong model?",
                         ci->path, (long long)tok[i], i, V);
            goto out;
        }
    if ((rc = result_alloc(out, ci, K)) || (rc = grid_alloc(out, o, m, tok, offs, ci->n_seqs))) goto out;
    out->final_from_capture = ci->has_final;
    enum { S_H, S_KL, S_CE, S_TOP1, S_PROB, S_RT, S_RF, NS };
    sum = calloc((size_t)P * NS, sizeof *sum);
    hist = calloc((size_t)P * V, sizeof *hist);
    /* activations are read R tokens at a time, a multiple of the capture's chunk (each chunk is inflated
     * once), about 32 MiB; the logits B tokens at a time within that */
    int64_t R = (int64_t)((32u << 20) / ((size_t)P * D * 4));
    if (ci->chunk_tokens > 0 && R >= ci->chunk_tokens) R -= R % ci->chunk_tokens;
    if (R < B) R = B;
    if (R > N) R = N;
    x = malloc(sizeof(float) * (size_t)P * R * D);
    fin = malloc(sizeof(float) * (size_t)R * D);
    lpf = malloc(sizeof(float) * (size_t)B * V);
    z = malloc(sizeof(float) * (size_t)B * V);
    af = malloc(sizeof(int) * (size_t)B);
    slot = malloc(sizeof(int64_t) * (size_t)B);
    f = lsa_fwd_new(m, B);
    if (!sum || !hist || !x || !fin || !lpf || !z || !af || !slot || !f) {
        rc = f ? nomem() : LSA_ENOMEM;
        goto out;
    }
    int gs = out->grid_seq, from = out->grid_from, C = out->grid_cols;
    int64_t g0 = offs[gs];

    int64_t n_scored = 0, s_idx = 0;
    for (int64_t r0 = 0; r0 < N && !rc; r0 += R) {
        int64_t nr = N - r0 < R ? N - r0 : R;
        if ((rc = lsa_capture_read_resid(cr, r0, r0 + nr, x)) ||
            (ci->has_final && (rc = lsa_capture_read_final(cr, r0, r0 + nr, fin))))
            break;
        for (int64_t t0 = r0; t0 < r0 + nr && !rc; t0 += B) {
            int nb = (int)(r0 + nr - t0 < B ? r0 + nr - t0 : B);
            size_t u0 = (size_t)(t0 - r0); /* (P, nr, D): point l of token t0 + i is x[(l * nr + u0 + i) * D] */
            /* the reference distribution */
            if (ci->has_final) {
                if ((rc = lsa_fwd_head(f, fin + u0 * D, nb, lpf))) break;
            } else if ((rc = lsa_fwd_unembed(f, x + ((size_t)(P - 1) * nr + u0) * D, nb, lpf))) {
                break;
            }
            for (int i = 0; i < nb; i++) log_softmax(lpf + (size_t)i * V, V, &af[i]);
            /* which tokens of the block are scored, and their per-token slot (-1: not kept) */
            int64_t s = s_idx;
            for (int i = 0; i < nb; i++) {
                int64_t t = t0 + i;
                while (offs[s + 1] <= t) s++;
                if (t + 1 < offs[s + 1]) {
                    slot[i] = n_scored < K ? n_scored : -1;
                    if (slot[i] >= 0) {
                        out->kept_index[n_scored] = t;
                        out->kept_next[n_scored] = tok[t + 1];
                        out->kept_final_top1[n_scored] = af[i];
                    }
                    n_scored++;
                } else {
                    slot[i] = -2; /* no next token */
                }
            }
            for (int l = 0; l < P && !rc; l++) {
                if ((rc = lsa_fwd_unembed(f, x + ((size_t)l * nr + u0) * D, nb, z))) break;
                for (int i = 0; i < nb; i++) {
                    int64_t t = t0 + i;
                    bool has_next = slot[i] != -2;
                    struct row r;
                    row_stats(z + (size_t)i * V, V, lpf + (size_t)i * V, af[i], has_next ? (int)tok[t + 1] : -1, &r);
                    if (t - g0 >= from && t - g0 < from + C) {
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
                    if (slot[i] >= 0) {
                        size_t k = (size_t)l * K + (size_t)slot[i];
                        out->tok_entropy[k] = r.entropy, out->tok_kl[k] = r.kl, out->tok_ce[k] = r.ce;
                        out->tok_true_prob[k] = r.prob, out->tok_true_rank[k] = r.rank_true;
                        out->tok_final_top1_rank[k] = r.rank_final, out->tok_top1[k] = r.top1;
                    }
                }
            }
            while (s_idx + 1 < (int64_t)no - 1 && offs[s_idx + 1] <= t0 + nb) s_idx++;
        }
    }
    if (rc) goto out;
    if (n_scored == 0) {
        rc = lsa_err(LSA_EINVAL, "%s: no token has a next token to predict", ci->path);
        goto out;
    }
    if ((rc = grid_text(out, m))) goto out;
    out->n_tokens = n_scored;
    out->n_kept = n_scored < K ? n_scored : K;
    if (out->n_kept < K) {
        pack_rows(out->tok_entropy, sizeof(double), P, K, out->n_kept);
        pack_rows(out->tok_kl, sizeof(double), P, K, out->n_kept);
        pack_rows(out->tok_ce, sizeof(double), P, K, out->n_kept);
        pack_rows(out->tok_true_prob, sizeof(double), P, K, out->n_kept);
        pack_rows(out->tok_true_rank, sizeof(int64_t), P, K, out->n_kept);
        pack_rows(out->tok_final_top1_rank, sizeof(int64_t), P, K, out->n_kept);
        pack_rows(out->tok_top1, sizeof(int64_t), P, K, out->n_kept);
    }
    double **dst[] = {&out->entropy, &out->kl_to_final, &out->cross_entropy, &out->top1_agree_final,
                      &out->true_prob, &out->true_rank_mean, &out->final_top1_rank_mean};
    for (int k = 0; k < NS && !rc; k++) {
        if (!(*dst[k] = malloc(sizeof(double) * (size_t)P))) rc = nomem();
        for (int l = 0; !rc && l < P; l++) (*dst[k])[l] = sum[(size_t)l * NS + k] / (double)n_scored;
    }
    if (!rc && !(out->true_rank_median = malloc(sizeof(double) * (size_t)P))) rc = nomem();
    for (int l = 0; !rc && l < P; l++) out->true_rank_median[l] = median_of_hist(hist + (size_t)l * V, V, n_scored);
out:
    if (rc) lsa_lens_free(out);
    else *outp = out;
    lsa_fwd_free(f);
    lsa_h5_close(h);
    free(tok), free(offs), free(hist), free(slot), free(x), free(fin), free(lpf), free(z), free(af), free(sum);
    return rc;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void lsa_lens_free(struct lsa_lens_result *r)
{
    if (!r) return;
    free_strs(r->point_names, (size_t)r->n_points);
    free(r->model);
    free(r->entropy), free(r->kl_to_final), free(r->cross_entropy), free(r->top1_agree_final), free(r->true_prob);
    free(r->true_rank_median), free(r->true_rank_mean), free(r->final_top1_rank_mean);
    free(r->kept_index), free(r->kept_next), free(r->kept_final_top1);
    free(r->tok_entropy), free(r->tok_kl), free(r->tok_ce), free(r->tok_true_prob);
    free(r->tok_true_rank), free(r->tok_final_top1_rank), free(r->tok_top1);
    free(r->grid_top), free(r->grid_prob), free(r->grid_entropy), free(r->grid_input), free(r->grid_next);
    free_strs(r->grid_top_text, (size_t)r->n_points * r->grid_cols);
    free_strs(r->grid_input_text, (size_t)r->grid_cols);
    free_strs(r->grid_next_text, (size_t)r->grid_cols);
    free(r);
}

/* ---------------------------------------------------------------- results */

int lsa_lens_save(const struct lsa_lens_result *r, struct lsa_results *res)
{
    const char *g = "logit_lens";
    int P = r->n_points, C = r->grid_cols;
    int64_t K = r->n_kept;
    int rc = lsa_results_attr_strs(res, "/logit_lens", "points", (const char *const *)r->point_names, P);
    if (!rc) rc = lsa_results_attr_str(res, "/logit_lens", "definition",
                                       "logits_l,t = U FinalNorm(x_l,t), the final norm recomputed on each point; "
                                       "means over tokens that have a next token (nostalgebraist 2020)");
    if (!rc) rc = lsa_results_attr_str(res, "/logit_lens", "reference",
                                       r->final_from_capture ? "p_final from resid_final"
                                                             : "p_final from the last stored point");
    if (!rc) rc = lsa_results_attr_int(res, "/logit_lens", "n_tokens", r->n_tokens);
    if (!rc) rc = lsa_results_json_strs(res, "logit_lens.points", (const char *const *)r->point_names, P);
    if (!rc) rc = lsa_results_json_num(res, "logit_lens.n_tokens", (double)r->n_tokens);
    static const struct {
        const char *name, *json, *def;
        size_t off;
    } vec[] = {
        {"kl_to_final", "kl_to_final", "mean KL(p_final || p_l), nats", offsetof(struct lsa_lens_result, kl_to_final)},
        {"entropy", "entropy", "mean entropy of p_l, nats", offsetof(struct lsa_lens_result, entropy)},
        {"cross_entropy", "cross_entropy", "mean -log p_l(true next token), nats",
         offsetof(struct lsa_lens_result, cross_entropy)},
        {"top1_agree_final", "top1_agree_final", "fraction of tokens with argmax p_l = argmax p_final",
         offsetof(struct lsa_lens_result, top1_agree_final)},
        {"true_prob", "true_prob", "mean p_l(true next token)", offsetof(struct lsa_lens_result, true_prob)},
        {"true_rank_median", "true_token_rank_median", "median rank of the true next token under p_l (0 = top)",
         offsetof(struct lsa_lens_result, true_rank_median)},
        {"true_rank_mean", "true_token_rank_mean", "mean rank of the true next token under p_l (0 = top)",
         offsetof(struct lsa_lens_result, true_rank_mean)},
        {"final_top1_rank_mean", "final_top1_rank_mean", "mean rank of argmax p_final under p_l (0 = top)",
         offsetof(struct lsa_lens_result, final_top1_rank_mean)},
    };
    char key[96], obj[96];
    for (size_t i = 0; !rc && i < sizeof vec / sizeof vec[0]; i++) {
        const double *v = *(double *const *)((const char *)r + vec[i].off);
        snprintf(key, sizeof key, "logit_lens.%s", vec[i].json);
        snprintf(obj, sizeof obj, "/logit_lens/%s", vec[i].name);
        rc = lsa_results_vector(res, g, vec[i].name, P, v, key);
        if (!rc) rc = lsa_results_attr_str(res, obj, "definition", vec[i].def);
    }
    /* per token */
    const char *pt = "logit_lens/per_token";
    if (!rc) rc = lsa_results_attr_str(res, "/logit_lens", "per_token",
                                       "per_token/* hold the first n_kept scored tokens (capture order); "
                                       "token_index is each one's index in the capture's /tokens");
    if (!rc) rc = lsa_results_attr_int(res, "/logit_lens", "n_kept", K);
    if (!rc && K > 0) {
        rc = lsa_results_ivector(res, pt, "token_index", (int)K, r->kept_index, NULL);
        if (!rc) rc = lsa_results_ivector(res, pt, "next_token", (int)K, r->kept_next, NULL);
        if (!rc) rc = lsa_results_ivector(res, pt, "final_top1", (int)K, r->kept_final_top1, NULL);
        if (!rc) rc = lsa_results_matrix(res, pt, "entropy", P, (int)K, r->tok_entropy, NULL);
        if (!rc) rc = lsa_results_matrix(res, pt, "kl_to_final", P, (int)K, r->tok_kl, NULL);
        if (!rc) rc = lsa_results_matrix(res, pt, "cross_entropy", P, (int)K, r->tok_ce, NULL);
        if (!rc) rc = lsa_results_matrix(res, pt, "true_prob", P, (int)K, r->tok_true_prob, NULL);
        if (!rc) rc = lsa_results_imatrix(res, pt, "true_rank", P, (int)K, r->tok_true_rank);
        if (!rc) rc = lsa_results_imatrix(res, pt, "final_top1_rank", P, (int)K, r->tok_final_top1_rank);
        if (!rc) rc = lsa_results_imatrix(res, pt, "top1", P, (int)K, r->tok_top1);
    }
    /* the grid */
    if (!rc && C > 0) {
        const char *gg = "logit_lens/grid";
        size_t n = (size_t)P * C;
        double *prob = malloc(sizeof(double) * n), *ent = malloc(sizeof(double) * n);
        int64_t *top = malloc(sizeof(int64_t) * n), *in = malloc(sizeof(int64_t) * (size_t)C),
                *nx = malloc(sizeof(int64_t) * (size_t)C);
        if (!prob || !ent || !top || !in || !nx) rc = nomem();
        for (size_t i = 0; !rc && i < n; i++)
            prob[i] = r->grid_prob[i], ent[i] = r->grid_entropy[i], top[i] = r->grid_top[i];
        for (int c = 0; !rc && c < C; c++) in[c] = r->grid_input[c], nx[c] = r->grid_next[c];
        if (!rc) rc = lsa_results_imatrix(res, gg, "top1", P, C, top);
        if (!rc) rc = lsa_results_matrix(res, gg, "prob", P, C, prob, NULL);
        if (!rc) rc = lsa_results_matrix(res, gg, "entropy", P, C, ent, NULL);
        if (!rc) rc = lsa_results_ivector(res, gg, "input", C, in, NULL);
        if (!rc) rc = lsa_results_ivector(res, gg, "next", C, nx, NULL);
        if (!rc) rc = lsa_results_attr_int(res, "/logit_lens/grid", "sequence", r->grid_seq);
        if (!rc) rc = lsa_results_attr_int(res, "/logit_lens/grid", "first_position", r->grid_from);
        free(prob), free(ent), free(top), free(in), free(nx);
    }
    return rc;
}

/* ---------------------------------------------------------------- reuse */

void lsa_lens_options(const struct lsa_lens_opts *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "block=%d max_tokens=%lld per_token=%lld grid_seq=%d grid_from=%d grid_to=%d", o->block,
             (long long)o->max_tokens, (long long)o->per_token, o->grid_seq, o->grid_from, o->grid_to);
}

/* An int64 dataset of n values into int32 (the grid's token ids). */
static int get_i32(struct lsa_h5 *h, const char *obj, size_t n, int32_t *out)
{
    int64_t *v = NULL;
    int rc = lsa_results_get_i64(h, obj, n, &v);
    for (size_t i = 0; !rc && i < n; i++) {
        if (v[i] < -1 || v[i] > INT32_MAX) rc = lsa_err(LSA_EFORMAT, "%s: %s holds %lld, not a token id", lsa_h5_path(h), obj, (long long)v[i]);
        else out[i] = (int32_t)v[i];
    }
    free(v);
    return rc;
}

static int get_f32(struct lsa_h5 *h, const char *obj, size_t n, float *out)
{
    double *v = NULL;
    int rc = lsa_results_get_f64(h, obj, n, &v);
    for (size_t i = 0; !rc && i < n; i++) out[i] = (float)v[i];
    free(v);
    return rc;
}

static int load_grid(struct lsa_lens_result *r, struct lsa_h5 *h, const struct lsa_model *m)
{
    int64_t C = 0, seq = 0, from = 0;
    int rc = 0, P = r->n_points;
    if (lsa_h5_exists(h, "/logit_lens/grid")) {
        int rank = 0;
        int64_t dims[LSA_H5_MAX_RANK];
        rc = lsa_h5_shape(h, "/logit_lens/grid/input", &rank, dims);
        if (!rc && rank != 1) rc = lsa_err(LSA_EFORMAT, "%s: /logit_lens/grid/input is not a vector", lsa_h5_path(h));
        if (!rc) C = dims[0];
        if (!rc) rc = lsa_results_get_int(h, "/logit_lens/grid", "sequence", &seq);
        if (!rc) rc = lsa_results_get_int(h, "/logit_lens/grid", "first_position", &from);
    }
    if (rc) return rc;
    size_t n = (size_t)P * (size_t)C;
    r->grid_top = calloc(n + 1, sizeof *r->grid_top);
    r->grid_prob = calloc(n + 1, sizeof *r->grid_prob);
    r->grid_entropy = calloc(n + 1, sizeof *r->grid_entropy);
    r->grid_input = calloc((size_t)C + 1, sizeof *r->grid_input);
    r->grid_next = calloc((size_t)C + 1, sizeof *r->grid_next);
    r->grid_top_text = calloc(n + 1, sizeof *r->grid_top_text);
    r->grid_input_text = calloc((size_t)C + 1, sizeof *r->grid_input_text);
    r->grid_next_text = calloc((size_t)C + 1, sizeof *r->grid_next_text);
    if (!r->grid_top || !r->grid_prob || !r->grid_entropy || !r->grid_input || !r->grid_next || !r->grid_top_text ||
        !r->grid_input_text || !r->grid_next_text)
        return nomem();
    r->grid_cols = (int)C, r->grid_seq = (int)seq, r->grid_from = (int)from;
    if (C == 0) return 0;
    if (!rc) rc = get_i32(h, "/logit_lens/grid/top1", n, r->grid_top);
    if (!rc) rc = get_f32(h, "/logit_lens/grid/prob", n, r->grid_prob);
    if (!rc) rc = get_f32(h, "/logit_lens/grid/entropy", n, r->grid_entropy);
    if (!rc) rc = get_i32(h, "/logit_lens/grid/input", (size_t)C, r->grid_input);
    if (!rc) rc = get_i32(h, "/logit_lens/grid/next", (size_t)C, r->grid_next);
    const struct lsa_tokenizer *tk = lsa_model_tokenizer(m);
    char buf[64];
    for (int c = 0; !rc && c < C; c++) {
        r->grid_input_text[c] = strdup(lsa_lens_piece_label(tk, r->grid_input[c], buf, sizeof buf));
        r->grid_next_text[c] =
            strdup(r->grid_next[c] >= 0 ? lsa_lens_piece_label(tk, r->grid_next[c], buf, sizeof buf) : "");
        if (!r->grid_input_text[c] || !r->grid_next_text[c]) rc = nomem();
    }
    return rc ? rc : grid_text(r, m);
}

int lsa_lens_load(struct lsa_h5 *h, const struct lsa_model *m, const char *model_path, struct lsa_lens_result **out)
{
    *out = NULL;
    struct lsa_lens_result *r = calloc(1, sizeof *r);
    if (!r) return nomem();
    size_t P = 0;
    char *ref = NULL;
    int rc = lsa_h5_attr_strs(h, "/logit_lens", "points", &r->point_names, &P);
    r->n_points = (int)P;
    if (!rc && !(r->model = lsa_path_base(model_path))) rc = nomem();
    if (!rc) rc = lsa_results_get_int(h, "/logit_lens", "n_tokens", &r->n_tokens);
    if (!rc) rc = lsa_results_get_int(h, "/logit_lens", "n_kept", &r->n_kept);
    if (!rc && !(rc = lsa_h5_attr_str(h, "/logit_lens", "reference", &ref)))
        r->final_from_capture = !strcmp(ref, "p_final from resid_final");
    free(ref);
    static const struct {
        const char *obj;
        size_t off;
    } vec[] = {
        {"/logit_lens/entropy", offsetof(struct lsa_lens_result, entropy)},
        {"/logit_lens/kl_to_final", offsetof(struct lsa_lens_result, kl_to_final)},
        {"/logit_lens/cross_entropy", offsetof(struct lsa_lens_result, cross_entropy)},
        {"/logit_lens/top1_agree_final", offsetof(struct lsa_lens_result, top1_agree_final)},
        {"/logit_lens/true_prob", offsetof(struct lsa_lens_result, true_prob)},
        {"/logit_lens/true_rank_median", offsetof(struct lsa_lens_result, true_rank_median)},
        {"/logit_lens/true_rank_mean", offsetof(struct lsa_lens_result, true_rank_mean)},
        {"/logit_lens/final_top1_rank_mean", offsetof(struct lsa_lens_result, final_top1_rank_mean)},
        {"/logit_lens/per_token/entropy", offsetof(struct lsa_lens_result, tok_entropy)},
        {"/logit_lens/per_token/kl_to_final", offsetof(struct lsa_lens_result, tok_kl)},
        {"/logit_lens/per_token/cross_entropy", offsetof(struct lsa_lens_result, tok_ce)},
        {"/logit_lens/per_token/true_prob", offsetof(struct lsa_lens_result, tok_true_prob)},
    };
    static const struct {
        const char *obj;
        size_t off;
        bool per_point;
    } ivec[] = {
        {"/logit_lens/per_token/token_index", offsetof(struct lsa_lens_result, kept_index), false},
        {"/logit_lens/per_token/next_token", offsetof(struct lsa_lens_result, kept_next), false},
        {"/logit_lens/per_token/final_top1", offsetof(struct lsa_lens_result, kept_final_top1), false},
        {"/logit_lens/per_token/true_rank", offsetof(struct lsa_lens_result, tok_true_rank), true},
        {"/logit_lens/per_token/final_top1_rank", offsetof(struct lsa_lens_result, tok_final_top1_rank), true},
        {"/logit_lens/per_token/top1", offsetof(struct lsa_lens_result, tok_top1), true},
    };
    size_t K = (size_t)(r->n_kept > 0 ? r->n_kept : 0);
    for (size_t i = 0; !rc && i < sizeof vec / sizeof vec[0]; i++) {
        double **dst = (double **)((char *)r + vec[i].off);
        bool tok = i >= 8;
        if (tok && K == 0) rc = (*dst = calloc(1, sizeof **dst)) ? 0 : nomem();
        else rc = lsa_results_get_f64(h, vec[i].obj, tok ? P * K : P, dst);
    }
    for (size_t i = 0; !rc && i < sizeof ivec / sizeof ivec[0]; i++) {
        int64_t **dst = (int64_t **)((char *)r + ivec[i].off);
        if (K == 0) rc = (*dst = calloc(1, sizeof **dst)) ? 0 : nomem();
        else rc = lsa_results_get_i64(h, ivec[i].obj, ivec[i].per_point ? P * K : K, dst);
    }
    if (!rc) rc = load_grid(r, h, m);
    if (rc) {
        lsa_lens_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---------------------------------------------------------------- readable pieces */

/* Append s to buf at *k if it fits with room for "…"; false when it does not. */
static bool put(char *buf, size_t cap, size_t *k, const char *s, size_t n)
{
    if (*k + n + 4 > cap) return false;
    memcpy(buf + *k, s, n);
    *k += n;
    buf[*k] = 0;
    return true;
}

/* One byte as it should show: whitespace markers, printable ASCII, else <NN>. */
static bool put_byte(char *buf, size_t cap, size_t *k, unsigned b)
{
    char hex[8];
    switch (b) {
    case ' ': return put(buf, cap, k, "\xc2\xb7", 2);
    case '\n': return put(buf, cap, k, "\xe2\x86\xb5", 3);
    case '\t': return put(buf, cap, k, "\xe2\x87\xa5", 3);
    case '\r': return put(buf, cap, k, "\xe2\x8f\x8e", 3);
    default:
        if (b > 0x20 && b < 0x7f) {
            char c = (char)b;
            return put(buf, cap, k, &c, 1);
        }
        snprintf(hex, sizeof hex, "<%02X>", b & 0xffu);
        return put(buf, cap, k, hex, 4);
    }
}

/* Length of a valid UTF-8 sequence at s (n bytes left), 0 if none. */
static int utf8_len(const unsigned char *s, size_t n)
{
    int len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || (size_t)len > n || (len == 2 && s[0] < 0xc2)) return 0;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

/* GPT-2's bytes_to_unicode, inverted: the byte a code point stands for, -1 if none. */
static int bytelevel_byte(unsigned cp)
{
    if ((cp >= 0x21 && cp <= 0x7e) || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff)) return (int)cp;
    if (cp < 0x100 || cp >= 0x100 + 68) return -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        if (!printable && n++ == (int)(cp - 0x100)) return b;
    }
    return -1;
}

static unsigned decode_cp(const unsigned char *s, int len)
{
    if (len == 1) return s[0];
    unsigned cp = s[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) cp = cp << 6 | (s[i] & 0x3f);
    return cp;
}

const char *lsa_lens_piece_label(const struct lsa_tokenizer *tok, int32_t id, char *buf, size_t cap)
{
    const char *piece = tok ? lsa_tokenizer_piece(tok, id) : NULL;
    if (cap < 8) {
        if (cap) buf[0] = 0;
        return buf;
    }
    if (!piece) {
        snprintf(buf, cap, "#%d", (int)id);
        return buf;
    }
    buf[0] = 0;
    size_t k = 0, n = strlen(piece);
    const unsigned char *s = (const unsigned char *)piece;
    bool bytelevel = lsa_tokenizer_kind(tok) == LSA_TOK_BYTELEVEL_BPE, ok = true;
    unsigned char raw[256];
    size_t nr = 0;
    if (bytelevel) { /* map the piece's code points back to bytes */
        for (size_t i = 0; i < n && nr < sizeof raw;) {
            int len = utf8_len(s + i, n - i);
            int b = len ? bytelevel_byte(decode_cp(s + i, len)) : -1;
            if (b < 0) { /* an added token or something unexpected: keep it as it is */
                nr = 0;
                bytelevel = false;
                break;
            }
            raw[nr++] = (unsigned char)b;
            i += (size_t)len;
        }
    } else if (n == 6 && !strncmp(piece, "<0x", 3) && piece[5] == '>') { /* byte fallback */
        unsigned b;
        if (sscanf(piece + 3, "%2x", &b) == 1) {
            put_byte(buf, cap, &k, b);
            return buf;
        }
    }
    if (bytelevel) s = raw, n = nr;
    for (size_t i = 0; i < n && ok;) {
        if (!bytelevel && n - i >= 3 && !memcmp(s + i, "\xe2\x96\x81", 3)) { /* SentencePiece's space */
            ok = put(buf, cap, &k, "\xc2\xb7", 2);
            i += 3;
            continue;
        }
        int len = utf8_len(s + i, n - i);
        if (len > 1) ok = put(buf, cap, &k, (const char *)s + i, (size_t)len);
        else ok = put_byte(buf, cap, &k, s[i]), len = 1;
        i += (size_t)len;
    }
    if (!ok) memcpy(buf + k, "\xe2\x80\xa6", 4); /* "…" and the NUL */
    return buf;
}
