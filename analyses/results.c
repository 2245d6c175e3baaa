/*
 * results.c — results.h5 (through the lsa_h5w writer) and summary.json (through cJSON), written under
 * temporary names and renamed together on commit. Knows nothing about any particular analysis.
 */
#include "results.h"

#include "lsa/h5.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct lsa_results {
    struct lsa_h5w *w;
    cJSON *json;
    char *h5_tmp, *h5_final, *json_tmp, *json_final;
    int err;
};

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static void free_paths(struct lsa_results *r)
{
    free(r->h5_tmp);
    free(r->h5_final);
    free(r->json_tmp);
    free(r->json_final);
    free(r);
}

void lsa_results_abort(struct lsa_results *r)
{
    if (!r) return;
    if (r->w) lsa_h5w_close(r->w);
    cJSON_Delete(r->json);
    if (r->h5_tmp) unlink(r->h5_tmp);
    if (r->json_tmp) unlink(r->json_tmp);
    free_paths(r);
}

static int fail(struct lsa_results *r, int code)
{
    if (!r->err) r->err = code;
    return code;
}

static int nomem(struct lsa_results *r) { return fail(r, lsa_err(LSA_ENOMEM, "out of memory")); }

struct lsa_results *lsa_results_open(const char *dir, const struct lsa_results_meta *m)
{
    struct lsa_results *r = calloc(1, sizeof *r);
    char tmp[64];
    if (!r) {
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(tmp, sizeof tmp, ".results.h5.partial-%d", (int)getpid());
    r->h5_tmp = join(dir, tmp);
    snprintf(tmp, sizeof tmp, ".summary.json.partial-%d", (int)getpid());
    r->json_tmp = join(dir, tmp);
    r->h5_final = join(dir, "results.h5");
    r->json_final = join(dir, "summary.json");
    r->json = cJSON_CreateObject();
    if (!r->h5_tmp || !r->json_tmp || !r->h5_final || !r->json_final || !r->json) {
        lsa_err(LSA_ENOMEM, "out of memory");
        lsa_results_abort(r);
        return NULL;
    }
    if (!(r->w = lsa_h5w_create(r->h5_tmp))) {
        lsa_err_wrap(LSA_EIO, "%s", dir);
        lsa_results_abort(r);
        return NULL;
    }
    char created[32];
    time_t now = time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    int rc = lsa_h5w_attr_str(r->w, "/", "lsa_version", LSA_VERSION);
    if (!rc) rc = lsa_h5w_attr_str(r->w, "/", "capture", m->capture);
    if (!rc) rc = lsa_h5w_attr_str(r->w, "/", "model_path", m->model_path);
    if (!rc) rc = lsa_h5w_attr_str(r->w, "/", "model_type", m->model_type);
    if (!rc) rc = lsa_h5w_attr_int(r->w, "/", "n_tokens", m->n_tokens);
    if (!rc) rc = lsa_h5w_attr_str(r->w, "/", "created", created);
    if (!rc) rc = lsa_h5w_attr_str(r->w, "/", "command", m->command ? m->command : "");
    if (!rc && m->n_points > 0) rc = lsa_h5w_attr_strs(r->w, "/", "points", m->points, (size_t)m->n_points);
    cJSON *pts = cJSON_CreateArray();
    if (!rc && (!pts || !cJSON_AddStringToObject(r->json, "lsa_version", LSA_VERSION) ||
                !cJSON_AddStringToObject(r->json, "capture", m->capture) ||
                !cJSON_AddStringToObject(r->json, "model", m->model_path) ||
                !cJSON_AddStringToObject(r->json, "model_type", m->model_type) ||
                !cJSON_AddNumberToObject(r->json, "n_tokens", (double)m->n_tokens)))
        rc = lsa_err(LSA_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < m->n_points; i++) {
        cJSON *s = cJSON_CreateString(m->points[i]);
        if (!s || !cJSON_AddItemToArray(pts, s)) rc = lsa_err(LSA_ENOMEM, "out of memory");
    }
    if (pts && (rc || !cJSON_AddItemToObject(r->json, "points", pts))) {
        cJSON_Delete(pts);
        if (!rc) rc = lsa_err(LSA_ENOMEM, "out of memory");
    }
    if (rc) {
        lsa_results_abort(r);
        return NULL;
    }
    return r;
}

int lsa_results_commit(struct lsa_results *r)
{
    int rc = r->err;
    int rc_close = lsa_h5w_close(r->w);
    r->w = NULL;
    if (!rc) rc = rc_close;
    char *text = rc ? NULL : cJSON_Print(r->json);
    if (!rc && !text) rc = lsa_err(LSA_ENOMEM, "out of memory");
    if (!rc) {
        FILE *f = fopen(r->json_tmp, "wb");
        if (!f) rc = lsa_err(LSA_EIO, "%s: cannot create: %s", r->json_tmp, strerror(errno));
        else {
            fputs(text, f);
            fputc('\n', f);
            if (fclose(f) != 0) rc = lsa_err(LSA_EIO, "%s: write failed (disk full?)", r->json_tmp);
        }
    }
    free(text);
    if (!rc && rename(r->h5_tmp, r->h5_final) != 0)
        rc = lsa_err(LSA_EIO, "%s: cannot rename into place: %s", r->h5_final, strerror(errno));
    if (!rc && rename(r->json_tmp, r->json_final) != 0)
        rc = lsa_err(LSA_EIO, "%s: cannot rename into place: %s", r->json_final, strerror(errno));
    if (rc) {
        lsa_results_abort(r);
        return rc;
    }
    cJSON_Delete(r->json);
    free_paths(r);
    return 0;
}

static char *dset_name(const char *group, const char *name)
{
    size_t n = strlen(group) + strlen(name) + 3;
    char *s = malloc(n);
    if (s) snprintf(s, n, "/%s/%s", group[0] == '/' ? group + 1 : group, name);
    return s;
}

static cJSON *json_numbers(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber(v[i]); /* NaN / Inf print as null */
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* Put item at key, a dotted path ("logit_lens.kl_to_final"): intermediate objects are created on the
 * way (or replace a non-object found there), and an item already at the last name is replaced. */
static int json_put(struct lsa_results *r, const char *key, cJSON *item)
{
    if (!item) return nomem(r);
    cJSON *obj = r->json;
    char name[256];
    const char *k = key, *dot;
    while ((dot = strchr(k, '.')) != NULL) {
        size_t n = (size_t)(dot - k);
        if (n == 0 || n >= sizeof name) {
            cJSON_Delete(item);
            return fail(r, lsa_err(LSA_EINVAL, "summary.json key '%s': empty or too long component", key));
        }
        memcpy(name, k, n);
        name[n] = 0;
        cJSON *next = cJSON_GetObjectItemCaseSensitive(obj, name);
        if (!cJSON_IsObject(next)) {
            cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
            if (!(next = cJSON_AddObjectToObject(obj, name))) {
                cJSON_Delete(item);
                return nomem(r);
            }
        }
        obj = next;
        k = dot + 1;
    }
    if (!*k) {
        cJSON_Delete(item);
        return fail(r, lsa_err(LSA_EINVAL, "summary.json key '%s' ends with a dot", key));
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, k);
    if (!cJSON_AddItemToObject(obj, k, item)) {
        cJSON_Delete(item);
        return nomem(r);
    }
    return 0;
}

static int write_f64(struct lsa_results *r, const char *group, const char *name, int rank, const int64_t *dims,
                     const double *v)
{
    if (r->err) return r->err;
    char *full = dset_name(group, name);
    if (!full) return nomem(r);
    int rc = lsa_h5w_array_f64(r->w, full, rank, dims, v);
    free(full);
    return rc ? fail(r, rc) : 0;
}

int lsa_results_matrix(struct lsa_results *r, const char *group, const char *name, int rows, int cols,
                       const double *v, const char *json_key)
{
    int64_t dims[2] = {rows, cols};
    int rc = write_f64(r, group, name, 2, dims, v);
    if (rc || !json_key) return rc;
    cJSON *m = cJSON_CreateArray();
    for (int i = 0; m && i < rows; i++) {
        cJSON *row = json_numbers(v + (size_t)i * cols, cols);
        if (!row || !cJSON_AddItemToArray(m, row)) {
            cJSON_Delete(row);
            cJSON_Delete(m);
            m = NULL;
        }
    }
    return json_put(r, json_key, m);
}

int lsa_results_vector(struct lsa_results *r, const char *group, const char *name, int n, const double *v,
                       const char *json_key)
{
    int64_t dims[1] = {n};
    int rc = write_f64(r, group, name, 1, dims, v);
    if (rc || !json_key) return rc;
    return json_put(r, json_key, json_numbers(v, n));
}

int lsa_results_ivector(struct lsa_results *r, const char *group, const char *name, int n, const int64_t *v,
                        const char *json_key)
{
    if (r->err) return r->err;
    char *full = dset_name(group, name);
    if (!full) return nomem(r);
    int64_t dims[1] = {n};
    int rc = lsa_h5w_array_i64(r->w, full, 1, dims, v);
    free(full);
    if (rc) return fail(r, rc);
    if (!json_key) return 0;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber((double)v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            a = NULL;
        }
    }
    return json_put(r, json_key, a);
}

/* rows objects {str_col: strs[i] (when str_col), cols[j]: v[i][j]...}; NULL when out of memory. */
static cJSON *json_records(int rows, int n_cols, const char *const *cols, const double *v, const char *str_col,
                           const char *const *strs)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < rows; i++) {
        cJSON *o = cJSON_CreateObject();
        bool ok = o && cJSON_AddItemToArray(a, o);
        if (!ok) cJSON_Delete(o);
        if (ok && str_col) ok = cJSON_AddStringToObject(o, str_col, strs[i] ? strs[i] : "");
        for (int j = 0; ok && j < n_cols; j++) ok = cJSON_AddNumberToObject(o, cols[j], v[(size_t)i * n_cols + j]);
        if (!ok) {
            cJSON_Delete(a);
            a = NULL;
        }
    }
    return a;
}

int lsa_results_table(struct lsa_results *r, const char *group, const char *name, int rows, int n_cols,
                      const char *const *cols, const double *v, const char *json_key)
{
    int64_t dims[2] = {rows, n_cols};
    int rc = write_f64(r, group, name, 2, dims, v);
    char *full = dset_name(group, name);
    if (!full) return nomem(r);
    if (!rc) rc = lsa_results_attr_strs(r, full, "columns", cols, n_cols);
    free(full);
    if (rc || !json_key) return rc;
    return json_put(r, json_key, json_records(rows, n_cols, cols, v, NULL, NULL));
}

int lsa_results_imatrix(struct lsa_results *r, const char *group, const char *name, int rows, int cols,
                        const int64_t *v)
{
    if (r->err) return r->err;
    char *full = dset_name(group, name);
    if (!full) return nomem(r);
    int64_t dims[2] = {rows, cols};
    int rc = lsa_h5w_array_i64(r->w, full, 2, dims, v);
    free(full);
    return rc ? fail(r, rc) : 0;
}

int lsa_results_json_records(struct lsa_results *r, const char *key, int rows, int n_cols, const char *const *cols,
                             const double *v, const char *str_col, const char *const *strs)
{
    if (r->err) return r->err;
    return json_put(r, key, json_records(rows, n_cols, cols, v, str_col, strs));
}

/* Attributes may go on a group before any dataset made it: create a top-level group on demand. */
static int ensure_group(struct lsa_results *r, const char *obj)
{
    if (strcmp(obj, "/") == 0 || strchr(obj + 1, '/')) return 0;
    return lsa_h5w_group(r->w, obj);
}

int lsa_results_attr_str(struct lsa_results *r, const char *obj, const char *name, const char *value)
{
    if (r->err) return r->err;
    int rc = ensure_group(r, obj);
    if (!rc) rc = lsa_h5w_attr_str(r->w, obj, name, value);
    return rc ? fail(r, rc) : 0;
}

int lsa_results_attr_strs(struct lsa_results *r, const char *obj, const char *name, const char *const *v, int n)
{
    if (r->err) return r->err;
    int rc = ensure_group(r, obj);
    if (!rc) rc = lsa_h5w_attr_strs(r->w, obj, name, v, (size_t)n);
    return rc ? fail(r, rc) : 0;
}

int lsa_results_attr_int(struct lsa_results *r, const char *obj, const char *name, int64_t value)
{
    if (r->err) return r->err;
    int rc = ensure_group(r, obj);
    if (!rc) rc = lsa_h5w_attr_int(r->w, obj, name, value);
    return rc ? fail(r, rc) : 0;
}

int lsa_results_attr_f64(struct lsa_results *r, const char *obj, const char *name, double value)
{
    if (r->err) return r->err;
    int rc = ensure_group(r, obj);
    if (!rc) rc = lsa_h5w_attr_f64(r->w, obj, name, value);
    return rc ? fail(r, rc) : 0;
}

int lsa_results_json_str(struct lsa_results *r, const char *key, const char *value)
{
    if (r->err) return r->err;
    return json_put(r, key, cJSON_CreateString(value));
}

int lsa_results_json_num(struct lsa_results *r, const char *key, double value)
{
    if (r->err) return r->err;
    return json_put(r, key, cJSON_CreateNumber(value));
}

int lsa_results_json_strs(struct lsa_results *r, const char *key, const char *const *v, int n)
{
    if (r->err) return r->err;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateString(v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            a = NULL;
        }
    }
    return json_put(r, key, a);
}
