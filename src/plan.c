/*
 * plan.c — layer plans: construction, validation, parsing of the CLI's --order/--skip/--swap/--drop-*
 * specs, and a compact text form for provenance.
 */
#include "lsa/forward.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lsa_plan *lsa_plan_new(int n)
{
    if (n < 0 || n > 1 << 16) {
        lsa_err(LSA_EINVAL, "plan: %d positions", n);
        return NULL;
    }
    struct lsa_plan *p = calloc(1, sizeof *p);
    size_t k = (size_t)(n ? n : 1);
    if (p) {
        p->n = n;
        p->layer = calloc(k, sizeof *p->layer);
        p->drop_attn = calloc(k, 1);
        p->drop_mlp = calloc(k, 1);
        p->group = calloc(k, sizeof *p->group);
    }
    if (!p || !p->layer || !p->drop_attn || !p->drop_mlp || !p->group) {
        lsa_plan_free(p);
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    return p;
}

struct lsa_plan *lsa_plan_identity(int n_layer)
{
    struct lsa_plan *p = lsa_plan_new(n_layer);
    for (int i = 0; p && i < n_layer; i++) p->layer[i] = i;
    return p;
}

void lsa_plan_free(struct lsa_plan *p)
{
    if (!p) return;
    free(p->layer);
    free(p->drop_attn);
    free(p->drop_mlp);
    free(p->group);
    free(p);
}

int lsa_plan_check(const struct lsa_plan *p, int n_layer)
{
    for (int i = 0; i < p->n; i++) {
        if (p->layer[i] < 0 || p->layer[i] >= n_layer)
            return lsa_err(LSA_EINVAL, "plan: position %d runs layer %d, but the model has layers 0..%d", i,
                           p->layer[i], n_layer - 1);
        if (p->group[i] < 0) return lsa_err(LSA_EINVAL, "plan: position %d has negative group %d", i, p->group[i]);
        /* A group id must be one consecutive run, or the meaning of "parallel" is lost. */
        if (p->group[i] && i > 0 && p->group[i - 1] != p->group[i])
            for (int j = 0; j < i - 1; j++)
                if (p->group[j] == p->group[i])
                    return lsa_err(LSA_EINVAL, "plan: group %d is not one consecutive run of positions", p->group[i]);
    }
    return 0;
}

/* Parse "a,b-c,..." into a list of integers (ranges may descend). Returns count or -1. */
static int parse_list(const char *spec, const char *what, int32_t *out, int cap, int n_layer)
{
    int n = 0;
    const char *s = spec;
    while (*s) {
        char *end;
        errno = 0;
        long a = strtol(s, &end, 10), b;
        if (end == s || errno) goto bad;
        b = a;
        if (*end == '-') {
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s || errno) goto bad;
        }
        if (a < 0 || b < 0 || a >= n_layer || b >= n_layer) {
            lsa_err(LSA_EINVAL, "--%s %s: layer %ld is out of range 0..%d", what, spec, a < 0 || a >= n_layer ? a : b,
                    n_layer - 1);
            return -1;
        }
        for (long i = a;; i += a <= b ? 1 : -1) {
            if (n >= cap) {
                lsa_err(LSA_EINVAL, "--%s %s: too many entries", what, spec);
                return -1;
            }
            out[n++] = (int32_t)i;
            if (i == b) break;
        }
        if (*end == ',') end++;
        else if (*end) goto bad;
        s = end;
    }
    return n;
bad:
    lsa_err(LSA_EINVAL, "--%s %s: expected layer indices like 0,3,5-7", what, spec);
    return -1;
}

struct lsa_plan *lsa_plan_parse(int n_layer, const char *order, const char *skip, const char *swap,
                                 const char *drop_attn, const char *drop_mlp)
{
    int cap = 4 * n_layer + 16;
    int32_t *tmp = calloc((size_t)cap, sizeof *tmp);
    struct lsa_plan *p = NULL;
    if (!tmp) {
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    int n = n_layer;
    if (order && *order) {
        if ((n = parse_list(order, "order", tmp, cap, n_layer)) < 0) goto fail;
    } else {
        for (int i = 0; i < n_layer; i++) tmp[i] = i;
    }
    if (swap && *swap) {
        const char *s = swap;
        while (*s) {
            char *end;
            long a = strtol(s, &end, 10), b;
            if (end == s || *end != ':') goto badswap;
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s || (*end && *end != ',')) goto badswap;
            int ia = -1, ib = -1;
            for (int i = 0; i < n; i++) {
                if (tmp[i] == a && ia < 0) ia = i;
                if (tmp[i] == b && ib < 0) ib = i;
            }
            if (ia < 0 || ib < 0) {
                lsa_err(LSA_EINVAL, "--swap %s: layer %ld is not in the plan", swap, ia < 0 ? a : b);
                goto fail;
            }
            tmp[ia] = (int32_t)b;
            tmp[ib] = (int32_t)a;
            s = *end ? end + 1 : end;
        }
    }
    if (skip && *skip) {
        int32_t sk[1024];
        int ns = parse_list(skip, "skip", sk, 1024, n_layer);
        if (ns < 0) goto fail;
        int k = 0;
        for (int i = 0; i < n; i++) {
            bool drop = false;
            for (int j = 0; j < ns; j++) drop |= tmp[i] == sk[j];
            if (!drop) tmp[k++] = tmp[i];
        }
        n = k;
    }
    if (!(p = lsa_plan_new(n))) goto fail;
    memcpy(p->layer, tmp, (size_t)n * sizeof *tmp);
    const char *drops[2] = {drop_attn, drop_mlp};
    for (int w = 0; w < 2; w++) {
        if (!drops[w] || !*drops[w]) continue;
        int32_t dl[1024];
        int nd = parse_list(drops[w], w ? "drop-mlp" : "drop-attn", dl, 1024, n_layer);
        if (nd < 0) goto fail;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < nd; j++)
                if (p->layer[i] == dl[j]) (w ? p->drop_mlp : p->drop_attn)[i] = 1;
    }
    free(tmp);
    return p;
badswap:
    lsa_err(LSA_EINVAL, "--swap %s: expected pairs like 4:5 (comma-separated)", swap);
fail:
    free(tmp);
    lsa_plan_free(p);
    return NULL;
}

void lsa_plan_format(const struct lsa_plan *p, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (k < cap) k += (size_t)snprintf(buf + k, cap - k, __VA_ARGS__);                         \
    } while (0)
    for (int i = 0; i < p->n; i++) {
        PUT("%s%d", i ? "," : "", p->layer[i]);
        if (p->group[i]) PUT("|g%d", p->group[i]);
        if (p->drop_attn[i]) PUT("-attn");
        if (p->drop_mlp[i]) PUT("-mlp");
    }
#undef PUT
}

const char *lsa_point_name(enum lsa_point pt)
{
    switch (pt) {
    case LSA_PT_EMBED: return "embed";
    case LSA_PT_RESID_MID: return "resid_mid";
    case LSA_PT_ATTN_OUT: return "attn_out";
    case LSA_PT_MLP_OUT: return "mlp_out";
    case LSA_PT_RESID_POST: return "resid_post";
    case LSA_PT_FINAL_NORM: return "final_norm";
    }
    return "?";
}
