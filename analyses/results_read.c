/*
 * results_read.c — the other direction of results.c: what an earlier `lsa report` left in DIR/results.h5,
 * whether it can stand for this run (input keys and options), and typed reads for the analyses' _load.
 */
#include "results.h"

#include "lsa/h5.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* FNV-1a, 64 bits, run twice with different offsets: a cache key against accidental collisions (nobody
 * gains from forging one), not a cryptographic digest. */
struct fp {
    uint64_t a, b;
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

uint64_t lsa_results_fnv1a(const void *p, size_t n) { return fnv1a(0xcbf29ce484222325ull, p, n); }

static void fp_bytes(struct fp *h, const void *p, size_t n)
{
    h->a = fnv1a(h->a, p, n);
    h->b = fnv1a(h->b, p, n);
}

/* Every item goes in with its length, so that ("ab", "c") and ("a", "bc") differ. */
static void fp_item(struct fp *h, const void *p, size_t n)
{
    uint64_t len = n;
    fp_bytes(h, &len, sizeof len);
    fp_bytes(h, p, n);
}

static void fp_str(struct fp *h, const char *s) { fp_item(h, s ? s : "", s ? strlen(s) : 0); }

static void fp_stat(struct fp *h, const char *name, const struct stat *st)
{
    int64_t v[3] = {(int64_t)st->st_size, (int64_t)st->st_mtim.tv_sec, (int64_t)st->st_mtim.tv_nsec};
    fp_str(h, name);
    fp_item(h, v, sizeof v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A model file, or the regular files directly in a model folder, by name, size and modification time:
 * reading 15 GB of weights to hash them would cost more than most analyses. */
static int fp_model(struct fp *h, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return lsa_err(LSA_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        fp_stat(h, path, &st);
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) return lsa_err(LSA_EIO, "%s: cannot list: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            char **g = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
            if (!g) rc = lsa_err(LSA_ENOMEM, "out of memory");
            else names = g;
        }
        if (!rc && !(names[n++] = strdup(e->d_name))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    }
    closedir(d);
    if (!rc) qsort(names, n, sizeof *names, cmp_str);
    char file[4096];
    for (size_t i = 0; !rc && i < n; i++) {
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) fp_stat(h, names[i], &st);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static void fp_hex(const struct fp *h, char key[LSA_RESULTS_KEY])
{
    snprintf(key, LSA_RESULTS_KEY, "%016llx%016llx", (unsigned long long)h->a, (unsigned long long)h->b);
}

int lsa_results_input_keys(const char *capture, const char *model, char key_capture[LSA_RESULTS_KEY],
                           char key_model[LSA_RESULTS_KEY])
{
    struct fp h = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    fp_str(&h, LSA_VERSION);
    fp_str(&h, lsa_commit());
    struct stat st;
    if (stat(capture, &st) != 0) return lsa_err(LSA_EIO, "%s: %s", capture, strerror(errno));
    fp_stat(&h, "capture", &st);
    struct lsa_h5 *f = lsa_h5_open(capture);
    if (!f) return LSA_EIO;
    int64_t *v = NULL;
    size_t n = 0;
    int rc = 0;
    static const char *dsets[] = {"/tokens", "/seq_offsets"};
    for (int i = 0; !rc && i < 2; i++) {
        if (!(rc = lsa_h5_read_i64(f, dsets[i], &v, &n))) fp_item(&h, v, n * sizeof *v);
        free(v);
        v = NULL;
    }
    static const char *attrs[] = {"created", "command", "model_path", "dtype", "lsa_commit"};
    for (int i = 0; !rc && i < 5; i++) {
        char *s = NULL;
        if (!lsa_h5_attr_str(f, "/", attrs[i], &s)) fp_str(&h, s); /* absent in older captures: no matter */
        else fp_str(&h, "-");
        free(s);
    }
    lsa_h5_close(f);
    if (rc) return rc;
    struct fp hm = h; /* the capture read once; the model's files on top of it */
    fp_str(&h, "no model");
    fp_hex(&h, key_capture);
    if (!model) return 0;
    fp_str(&hm, "model");
    if ((rc = fp_model(&hm, model))) return rc;
    fp_hex(&hm, key_model);
    return 0;
}

int lsa_results_stamp(struct lsa_results *r, const char *group, const char *key, const char *options)
{
    char obj[96];
    snprintf(obj, sizeof obj, "/%s", group);
    int rc = lsa_results_attr_str(r, obj, "input_key", key);
    if (!rc) rc = lsa_results_attr_str(r, obj, "options", options);
    return rc;
}

struct lsa_h5 *lsa_results_prev_open(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    struct stat st;
    if (stat(path, &st) != 0) return NULL;
    return lsa_h5_open(path); /* unreadable: NULL too, and everything is recomputed */
}

bool lsa_results_prev_match(struct lsa_h5 *prev, const char *group, const char *key, const char *options)
{
    if (!prev) return false;
    char obj[96], *k = NULL, *o = NULL;
    snprintf(obj, sizeof obj, "/%s", group);
    bool same = !lsa_h5_attr_str(prev, obj, "input_key", &k) && !lsa_h5_attr_str(prev, obj, "options", &o) &&
                !strcmp(k, key) && !strcmp(o, options);
    free(k);
    free(o);
    return same;
}

/* ------------------------------------------------------------------ typed reads for _load */

static int count_check(struct lsa_h5 *h, const char *obj, size_t got, size_t want)
{
    if (got == want) return 0;
    return lsa_err(LSA_EFORMAT, "%s: %s holds %zu values, expected %zu", lsa_h5_path(h), obj, got, want);
}

/* After a read of got values into *out: exactly want of them, else free *out and fail. */
static int sized(struct lsa_h5 *h, const char *obj, int rc, size_t got, size_t want, void **out)
{
    if (!rc && (rc = count_check(h, obj, got, want))) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int lsa_results_get_f64(struct lsa_h5 *h, const char *obj, size_t n, double **out)
{
    size_t got = 0;
    int rc = lsa_h5_read_f64(h, obj, out, &got);
    return sized(h, obj, rc, got, n, (void **)out);
}

int lsa_results_get_i64(struct lsa_h5 *h, const char *obj, size_t n, int64_t **out)
{
    size_t got = 0;
    int rc = lsa_h5_read_i64(h, obj, out, &got);
    return sized(h, obj, rc, got, n, (void **)out);
}

int lsa_results_get_int(struct lsa_h5 *h, const char *obj, const char *name, int64_t *v)
{
    int64_t *a = NULL;
    size_t n = 0;
    int rc = lsa_h5_attr_i64(h, obj, name, &a, &n);
    rc = sized(h, name, rc, n, 1, (void **)&a);
    if (!rc) *v = a[0];
    free(a);
    return rc;
}

int lsa_results_get_num(struct lsa_h5 *h, const char *obj, const char *name, double *v)
{
    double *a = NULL;
    size_t n = 0;
    int rc = lsa_h5_attr_f64(h, obj, name, &a, &n);
    rc = sized(h, name, rc, n, 1, (void **)&a);
    if (!rc) *v = a[0];
    free(a);
    return rc;
}

int lsa_results_get_strs(struct lsa_h5 *h, const char *obj, const char *name, size_t n, char ***out)
{
    size_t got = 0;
    int rc = lsa_h5_attr_strs(h, obj, name, out, &got);
    if (!rc && (rc = count_check(h, name, got, n))) {
        lsa_h5_free_names(*out, got);
        *out = NULL;
    }
    return rc;
}
