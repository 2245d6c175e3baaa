/*
 * compare.c — overlay per-layer curves of several lsa reports (definitions in compare.h).
 */
#include "compare.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct spec {
    const char *key, *sub, *title, *ylabel;
    bool per_layer; /* per layer (x = (l + .5) / L) rather than per point (x = l / L) */
    bool delta;     /* robustness.delete: a list of objects, nll minus the baseline */
};

static const struct spec specs[] = {
    {"block_influence", NULL, "Block Influence", "1 \xe2\x88\x92 cos(x_in, x_out)", true, false},
    {"resid_norm", NULL, "Residual stream norm", "mean |x|", false, false},
    {"logit_lens", "kl_to_final", "Logit lens: KL to the final layer", "KL (nats)", false, false},
    {"logit_lens", "cross_entropy", "Logit lens: cross-entropy", "CE of the next token (nats)", false, false},
    {"robustness", "delete", "Damage of deleting one layer", "\xce\x94 NLL (nats)", true, true},
};

/* The numbers of one curve from one summary into x/y (malloc'd); 0 points when absent. */
static int extract(const cJSON *root, const struct spec *s, const char *path, double **x, double **y, int *n)
{
    *n = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, s->key);
    if (v && s->sub) v = cJSON_GetObjectItemCaseSensitive(v, s->sub);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1) return 0;
    int m = cJSON_GetArraySize(v);
    double base = 0;
    if (s->delta) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, s->key), "baseline_nll");
        if (!cJSON_IsNumber(b)) return lsa_err(LSA_EFORMAT, "%s: %s without baseline_nll", path, s->key);
        base = b->valuedouble;
    }
    *x = malloc(sizeof(double) * (size_t)m);
    *y = malloc(sizeof(double) * (size_t)m);
    if (!*x || !*y) return lsa_err(LSA_ENOMEM, "out of memory");
    int L = s->per_layer ? m : m - 1;
    for (int i = 0; i < m; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (s->delta) e = cJSON_GetObjectItemCaseSensitive(e, "nll");
        if (!cJSON_IsNumber(e) && !cJSON_IsNull(e))
            return lsa_err(LSA_EFORMAT, "%s: %s%s%s[%d] is not a number", path, s->key, s->sub ? "." : "",
                           s->sub ? s->sub : "", i);
        (*y)[i] = cJSON_IsNumber(e) ? e->valuedouble - base : (double)NAN;
        (*x)[i] = L > 0 ? (s->per_layer ? (i + 0.5) / L : (double)i / L) : 0;
    }
    *n = m;
    return 0;
}

int lsa_compare_run(const char *const *summaries, const char *const *labels, int n, struct lsa_compare_result **out)
{
    if (n < 1 || n > LSA_COMPARE_MAX) return lsa_err(LSA_EINVAL, "compare: %d summaries (1..%d)", n, LSA_COMPARE_MAX);
    struct lsa_compare_result *r = calloc(1, sizeof *r);
    cJSON *roots[LSA_COMPARE_MAX] = {0};
    int rc = 0;
    if (!r) return lsa_err(LSA_ENOMEM, "out of memory");
    r->n_models = n;
    for (int i = 0; i < n && !rc; i++) {
        char *txt;
        size_t len;
        if ((rc = lsa_read_file(summaries[i], 256u << 20, &txt, &len))) break;
        roots[i] = cJSON_Parse(txt);
        free(txt);
        const cJSON *model = roots[i] ? cJSON_GetObjectItemCaseSensitive(roots[i], "model") : NULL;
        if (!cJSON_IsObject(roots[i]) || !cJSON_IsString(model)) {
            rc = lsa_err(LSA_EFORMAT, "%s: not an lsa summary.json (no \"model\" key)", summaries[i]);
            break;
        }
        /* the model folder's name reads better in a legend than its full path */
        const char *lab = labels && labels[i] ? labels[i] : model->valuestring, *slash = strrchr(lab, '/');
        if (!(labels && labels[i]) && slash && slash[1]) lab = slash + 1;
        if (!(r->label[i] = strdup(lab))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    }
    size_t skipped_len = 0;
    for (size_t k = 0; k < sizeof specs / sizeof specs[0] && !rc; k++) {
        struct lsa_compare_curve c = {.key = specs[k].sub ? specs[k].sub : specs[k].key, .title = specs[k].title,
                                      .ylabel = specs[k].ylabel, .n_models = n};
        const char *missing = NULL;
        for (int i = 0; i < n && !rc; i++) {
            rc = extract(roots[i], &specs[k], summaries[i], &c.x[i], &c.y[i], &c.n[i]);
            if (!rc && c.n[i] == 0 && !missing) missing = summaries[i];
        }
        if (!rc && !missing) {
            r->curves[r->n_curves++] = c;
            continue;
        }
        for (int i = 0; i < n; i++) free(c.x[i]), free(c.y[i]);
        if (missing) {
            char line[1200];
            int len = snprintf(line, sizeof line, "%s%s%s: not in %s\n", specs[k].key, specs[k].sub ? "." : "",
                               specs[k].sub ? specs[k].sub : "", missing);
            if (len >= (int)sizeof line) len = (int)sizeof line - 1;
            char *s = realloc(r->skipped, skipped_len + (size_t)len + 1);
            if (!s) {
                rc = lsa_err(LSA_ENOMEM, "out of memory");
                break;
            }
            memcpy(s + skipped_len, line, (size_t)len + 1);
            r->skipped = s;
            skipped_len += (size_t)len;
        }
    }
    for (int i = 0; i < n; i++) cJSON_Delete(roots[i]);
    if (!rc && r->n_curves == 0) rc = lsa_err(LSA_EINVAL, "compare: the summaries have no curve in common");
    if (rc) {
        lsa_compare_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int lsa_compare_save(const struct lsa_compare_result *r, const char *dir)
{
    cJSON *root = cJSON_CreateObject(), *models = cJSON_AddArrayToObject(root, "models");
    for (int i = 0; i < r->n_models; i++) cJSON_AddItemToArray(models, cJSON_CreateString(r->label[i]));
    cJSON *curves = cJSON_AddObjectToObject(root, "curves");
    for (int k = 0; k < r->n_curves; k++) {
        const struct lsa_compare_curve *c = &r->curves[k];
        cJSON *arr = cJSON_AddArrayToObject(curves, c->key);
        for (int i = 0; i < c->n_models; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "relative_depth", cJSON_CreateDoubleArray(c->x[i], c->n[i]));
            cJSON_AddItemToObject(o, "value", cJSON_CreateDoubleArray(c->y[i], c->n[i]));
            cJSON_AddItemToArray(arr, o);
        }
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/compare.json", dir);
    snprintf(tmp, sizeof tmp, "%s.partial-%d", path, (int)getpid());
    FILE *f = s ? fopen(tmp, "wb") : NULL;
    int rc = 0;
    if (!f || fputs(s, f) < 0) rc = lsa_err(LSA_EIO, "%s: cannot write", path);
    if (f && fclose(f) != 0 && !rc) rc = lsa_err(LSA_EIO, "%s: write failed (disk full?)", path);
    if (!rc && rename(tmp, path) != 0) rc = lsa_err(LSA_EIO, "%s: cannot rename into place", path);
    if (rc) unlink(tmp);
    free(s);
    return rc;
}

struct fig {
    const struct lsa_compare_result *r;
    const struct lsa_compare_curve *c;
};

static int draw_curve(struct lsa_plot *p, double w, double h, const void *ctx)
{
    const struct fig *f = ctx;
    struct lsa_plot_series s[LSA_COMPARE_MAX];
    for (int i = 0; i < f->c->n_models; i++)
        s[i] = (struct lsa_plot_series){.n = f->c->n[i], .x = f->c->x[i], .y = f->c->y[i], .label = f->r->label[i],
                                        .mark = -1, .color = lsa_plot_palette(i)};
    char sub[64];
    snprintf(sub, sizeof sub, "%d models by relative depth", f->c->n_models);
    struct lsa_plot_rect rr = lsa_plot_title(p, (struct lsa_plot_rect){0, 0, w, h}, f->c->title, sub);
    struct lsa_plot_lines l = {.n_series = f->c->n_models, .s = s, .xlabel = "relative depth", .ylabel = f->c->ylabel};
    return lsa_plot_lines(p, rr, &l);
}

int lsa_compare_draw(const struct lsa_compare_result *r, const struct lsa_plot_opts *po, const char *dir)
{
    struct lsa_plot_style st = lsa_plot_style_for(po->size);
    double w = st.width, h = st.slide_h > 0 ? st.slide_h : w * 0.75;
    for (int k = 0; k < r->n_curves; k++) {
        char stem[96];
        snprintf(stem, sizeof stem, "compare-%s", r->curves[k].key);
        struct fig f = {r, &r->curves[k]};
        int rc = lsa_plot_save_formats(dir, stem, w, h, po, draw_curve, &f);
        if (rc) return rc;
    }
    return 0;
}

void lsa_compare_free(struct lsa_compare_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_models; i++) free(r->label[i]);
    for (int k = 0; k < r->n_curves; k++)
        for (int i = 0; i < r->curves[k].n_models; i++) free(r->curves[k].x[i]), free(r->curves[k].y[i]);
    free(r->skipped);
    free(r);
}
