/*
 * packed.c — see packed.h. A packed layer keeps oneDNN's copy of W (allocated by oneDNN, in the layout
 * its brgemm matmul chose for this shape) and the matmul primitives made for the row counts and strides
 * it has been called with. A primitive costs a few microseconds to make, as much as a small model's GEMM,
 * hence the table; once it is full, other shapes get a primitive made for the call alone.
 */
#include "packed.h"

#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHAPES 32

/* A matmul for n_tok = m rows with these strides. prim NULL: oneDNN declined it, or had only its
 * reference kernel. Never changed once set. */
struct shape {
    int m, ldx, ldy, n_threads;
    dnnl_primitive_t prim;
    size_t scratch; /* bytes of scratchpad a call needs */
};

struct lsa_packed {
    int n_in, n_out;
    dnnl_memory_desc_t wmd; /* W's packed layout, (n_in, n_out) logically */
    dnnl_memory_t w;
    dnnl_memory_desc_t bmd; /* the bias, (1, n_out), when b */
    dnnl_memory_t b;        /* the caller's bias, or NULL */
    pthread_mutex_t mu; /* guards n_shapes and the appending of shapes */
    int n_shapes;
    struct shape shape[MAX_SHAPES];
};

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

/* The matmul primitive for m rows of x (ldx apart) into y (ldy apart) with weights laid out as wmd (or
 * "any"); NULL when oneDNN cannot. With impl, the name of the kernel oneDNN chose. */
static dnnl_primitive_t matmul(const struct lsa_packed *p, int m, int ldx, int ldy, const dnnl_memory_desc_t *wmd,
                               dnnl_memory_desc_t *chosen_w, size_t *scratch, char *impl, size_t impl_cap)
{
    dnnl_memory_desc_t src, dst;
    dnnl_dims_t sd = {m, p->n_in}, ss = {ldx, 1}, dd = {m, p->n_out}, ds = {ldy, 1};
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    /* The scratchpad is the caller's: oneDNN's own is shared by every primitive unless the library was
     * built for concurrent execution, and the split forward runs matmuls on several threads at once. */
    dnnl_primitive_attr_t attr = NULL;
    bool ok = dnnl_primitive_attr_create(&attr) == dnnl_success &&
              dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
              dnnl_memory_desc_init_by_strides(&src, 2, sd, dnnl_f32, ss) == dnnl_success &&
              dnnl_memory_desc_init_by_strides(&dst, 2, dd, dnnl_f32, ds) == dnnl_success &&
              dnnl_matmul_desc_init(&desc, &src, wmd, p->b ? &p->bmd : NULL, &dst) == dnnl_success &&
              dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success;
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) return NULL;
    *scratch = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    const char *name = NULL;
    if (impl && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
        snprintf(impl, impl_cap, "%s", name);
    if (chosen_w) *chosen_w = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (dnnl_primitive_create(&prim, pd) != dnnl_success) prim = NULL;
    dnnl_primitive_desc_destroy(pd);
    return prim;
}

/* *m = oneDNN's view of the caller's array ptr: nd dims, strides in elements of dt. 0 when done. */
static int view(dnnl_memory_t *m, int nd, const dnnl_dim_t *dims, const dnnl_dim_t *strides, dnnl_data_type_t dt,
                const void *ptr)
{
    dnnl_memory_desc_t md;
    return dnnl_memory_desc_init_by_strides(&md, nd, dims, dt, strides) != dnnl_success ||
           dnnl_memory_create(m, &md, engine, (void *)ptr) != dnnl_success;
}

static int execute(dnnl_primitive_t prim, int n_args, const dnnl_exec_arg_t *args)
{
    dnnl_stream_t st;
    if (dnnl_stream_create(&st, engine, dnnl_stream_default_flags) != dnnl_success) return 1;
    int rc = dnnl_primitive_execute(prim, st, n_args, args) != dnnl_success || dnnl_stream_wait(st) != dnnl_success;
    dnnl_stream_destroy(st);
    return rc;
}

void lsa_packed_free(struct lsa_packed *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_shapes; i++)
        if (p->shape[i].prim) dnnl_primitive_destroy(p->shape[i].prim);
    if (p->w) dnnl_memory_destroy(p->w);
    if (p->b) dnnl_memory_destroy(p->b);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/*
 * oneDNN runs a primitive on the calling thread's OpenMP team and divides its work when it is made, for
 * the threads there are then: primitives are made and run on a team of the caller's n (one for the split
 * forward's threads, which share the rows), and the caller's own setting is put back for the OpenMP loops
 * elsewhere in lsa.
 */
static int set_threads(int n)
{
    int was = omp_get_max_threads();
    if (was != n) omp_set_num_threads(n);
    return was;
}

static void threads_back(int was, int n)
{
    if (was != n) omp_set_num_threads(was);
}

static struct lsa_packed *packed_new(const float *w, int n_in, int n_out, bool in_out, const float *bias)
{
    pthread_once(&engine_once, engine_init);
    if (!engine || n_in < 1 || n_out < 1) return NULL;
    struct lsa_packed *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_in = n_in, p->n_out = n_out;
    pthread_mutex_init(&p->mu, NULL);
    dnnl_dims_t bd = {1, n_out};
    if (bias && (dnnl_memory_desc_init_by_tag(&p->bmd, 2, bd, dnnl_f32, dnnl_ab) != dnnl_success ||
                 dnnl_memory_create(&p->b, &p->bmd, engine, (void *)bias) != dnnl_success)) {
        lsa_packed_free(p);
        return NULL;
    }
    /* the layout oneDNN picks for a split forward's usual rows; other row counts use the same one */
    dnnl_memory_desc_t any, plain;
    dnnl_dims_t wd = {n_in, n_out};
    char impl[64] = "";
    dnnl_primitive_t prim = NULL;
    size_t scratch = 0;
    bool ok = dnnl_memory_desc_init_by_tag(&any, 2, wd, dnnl_f32, dnnl_format_tag_any) == dnnl_success &&
              (prim = matmul(p, 64, n_in, n_out, &any, &p->wmd, &scratch, impl, sizeof impl)) != NULL &&
              strncmp(impl, "brg", 3) == 0 && /* oneDNN's own kernels, not a reference or a plain gemm */
              dnnl_memory_desc_init_by_tag(&plain, 2, wd, dnnl_f32, in_out ? dnnl_ab : dnnl_ba) == dnnl_success &&
              dnnl_memory_create(&p->w, &p->wmd, engine, DNNL_MEMORY_ALLOCATE) == dnnl_success;
    if (ok) { /* reorder W into the packed layout */
        dnnl_memory_t src = NULL;
        dnnl_primitive_desc_t rpd = NULL;
        dnnl_primitive_t ro = NULL;
        ok = dnnl_memory_create(&src, &plain, engine, (void *)w) == dnnl_success &&
             dnnl_reorder_primitive_desc_create(&rpd, &plain, engine, &p->wmd, engine, NULL) == dnnl_success &&
             dnnl_primitive_create(&ro, rpd) == dnnl_success &&
             execute(ro, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, p->w}}) == 0;
        if (ro) dnnl_primitive_destroy(ro);
        if (rpd) dnnl_primitive_desc_destroy(rpd);
        if (src) dnnl_memory_destroy(src);
    }
    if (!ok) {
        if (prim) dnnl_primitive_destroy(prim);
        lsa_packed_free(p);
        return NULL;
    }
    p->shape[p->n_shapes++] = (struct shape){64, n_in, n_out, 1, prim, scratch};
    return p;
}

/* The primitive for (m, ldx, ldy) from the table, made and added when missing; *owned when it was made
 * for this call alone (table full). NULL when oneDNN declines. */
static dnnl_primitive_t find(struct lsa_packed *p, int m, int ldx, int ldy, int n_threads, bool *owned, size_t *scratch)
{
    *owned = false;
    pthread_mutex_lock(&p->mu);
    dnnl_primitive_t prim = NULL;
    int i = 0;
    for (; i < p->n_shapes; i++) {
        const struct shape *s = &p->shape[i];
        if (s->m == m && s->ldx == ldx && s->ldy == ldy && s->n_threads == n_threads) break;
    }
    if (i < p->n_shapes) {
        prim = p->shape[i].prim, *scratch = p->shape[i].scratch;
    } else {
        char impl[64] = "";
        prim = matmul(p, m, ldx, ldy, &p->wmd, NULL, scratch, impl, sizeof impl);
        if (prim && strncmp(impl, "brg", 3) != 0) { /* oneDNN's reference kernel: far slower than OpenBLAS */
            dnnl_primitive_destroy(prim);
            prim = NULL;
        }
        if (p->n_shapes < MAX_SHAPES) p->shape[p->n_shapes++] = (struct shape){m, ldx, ldy, n_threads, prim, *scratch};
        else *owned = prim != NULL;
    }
    pthread_mutex_unlock(&p->mu);
    return prim;
}

static int run(struct lsa_packed *p, const float *x, int ldx, int n_tok, float *y, int ldy, int n_threads)
{
    bool owned;
    size_t scratch = 0;
    dnnl_primitive_t prim = find(p, n_tok, ldx, ldy, n_threads, &owned, &scratch);
    if (!prim) return 1;
    dnnl_dims_t sd = {n_tok, p->n_in}, ss = {ldx, 1}, dd = {n_tok, p->n_out}, ds = {ldy, 1};
    dnnl_dims_t pd = {(dnnl_dim_t)(scratch > 0 ? scratch : 1)}, unit = {1};
    dnnl_memory_t xs = NULL, ys = NULL, sp = NULL;
    void *buf = malloc(scratch > 0 ? scratch : 1);
    int rc = !buf || view(&xs, 2, sd, ss, dnnl_f32, x) || view(&ys, 2, dd, ds, dnnl_f32, y) ||
             view(&sp, 1, pd, unit, dnnl_u8, buf) ||
             execute(prim, p->b ? 5 : 4,
                     (dnnl_exec_arg_t[]){{DNNL_ARG_SRC, xs},
                                         {DNNL_ARG_WEIGHTS, p->w},
                                         {DNNL_ARG_DST, ys},
                                         {DNNL_ARG_SCRATCHPAD, sp},
                                         {DNNL_ARG_BIAS, p->b}});
    if (xs) dnnl_memory_destroy(xs);
    if (ys) dnnl_memory_destroy(ys);
    if (sp) dnnl_memory_destroy(sp);
    free(buf);
    if (owned) dnnl_primitive_destroy(prim);
    return rc;
}

struct lsa_packed *lsa_packed_new(const float *w, int n_in, int n_out, bool in_out, const float *bias)
{
    int was = set_threads(1);
    struct lsa_packed *p = packed_new(w, n_in, n_out, in_out, bias);
    threads_back(was, 1);
    return p;
}

int lsa_packed_run(struct lsa_packed *p, const float *x, int ldx, int n_tok, float *y, int ldy, int n_threads)
{
    n_threads = n_threads < 1 ? 1 : n_threads;
    int was = set_threads(n_threads);
    int rc = run(p, x, ldx, n_tok, y, ldy, n_threads);
    threads_back(was, n_threads);
    return rc;
}

/* Two matmuls with every dimension and stride given at the call, b plain or transposed, the scale too:
 * oneDNN's gemm-based implementation takes runtime shapes, so one primitive serves every block and head. */
static dnnl_primitive_t gemm_prim[2];
static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;

bool lsa_onednn_wanted(void)
{
    const char *env = getenv("LSA_ONEDNN");
    return !env || strcmp(env, "0") != 0;
}

static void gemm_init(void)
{
    pthread_once(&engine_once, engine_init);
    if (!engine || !lsa_onednn_wanted()) return;
    for (int t = 0; t < 2; t++) {
        const dnnl_dim_t R = DNNL_RUNTIME_DIM_VAL;
        dnnl_memory_desc_t a, b, c;
        dnnl_dims_t dims = {R, R}, rows = {R, 1}, bs = {t ? 1 : R, t ? R : 1};
        dnnl_matmul_desc_t desc;
        dnnl_primitive_attr_t attr = NULL;
        dnnl_primitive_desc_t pd = NULL;
        const char *impl = NULL;
        bool ok = dnnl_memory_desc_init_by_strides(&a, 2, dims, dnnl_f32, rows) == dnnl_success &&
                  dnnl_memory_desc_init_by_strides(&b, 2, dims, dnnl_f32, bs) == dnnl_success &&
                  dnnl_memory_desc_init_by_strides(&c, 2, dims, dnnl_f32, rows) == dnnl_success &&
                  dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c) == dnnl_success &&
                  dnnl_primitive_attr_create(&attr) == dnnl_success &&
                  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
                  dnnl_primitive_attr_set_output_scales(attr, 1, 0, (float[]){DNNL_RUNTIME_F32_VAL}) == dnnl_success &&
                  dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success &&
                  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
                  strncmp(impl, "gemm:jit", 8) == 0 && /* not the reference kernel */
                  dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)) == 0;
        if (ok && dnnl_primitive_create(&gemm_prim[t], pd) != dnnl_success) gemm_prim[t] = NULL;
        if (pd) dnnl_primitive_desc_destroy(pd);
        if (attr) dnnl_primitive_attr_destroy(attr);
    }
}

static int gemm(dnnl_primitive_t prim, bool b_t, int m, int n, int k, float alpha, const float *a, int lda,
                const float *b, int ldb, float *c, int ldc)
{
    dnnl_dims_t ad = {m, k}, as = {lda, 1}, bd = {k, n}, bs = {b_t ? 1 : ldb, b_t ? ldb : 1}, cd = {m, n},
                cs = {ldc, 1}, unit = {1};
    dnnl_memory_t x = NULL, w = NULL, y = NULL, sc = NULL;
    int rc = view(&x, 2, ad, as, dnnl_f32, a) || view(&w, 2, bd, bs, dnnl_f32, b) || view(&y, 2, cd, cs, dnnl_f32, c) ||
             view(&sc, 1, unit, unit, dnnl_f32, &alpha) ||
             execute(prim, 4,
                     (dnnl_exec_arg_t[]){{DNNL_ARG_SRC, x},
                                         {DNNL_ARG_WEIGHTS, w},
                                         {DNNL_ARG_DST, y},
                                         {DNNL_ARG_ATTR_OUTPUT_SCALES, sc}});
    if (x) dnnl_memory_destroy(x);
    if (w) dnnl_memory_destroy(w);
    if (y) dnnl_memory_destroy(y);
    if (sc) dnnl_memory_destroy(sc);
    return rc;
}

int lsa_dnnl_gemm(bool b_t, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                  float *c, int ldc, int n_threads)
{
    pthread_once(&gemm_once, gemm_init);
    dnnl_primitive_t prim = gemm_prim[b_t];
    if (!prim || m < 1 || n < 1 || k < 1) return 1;
    n_threads = n_threads < 1 ? 1 : n_threads;
    int was = set_threads(n_threads);
    int rc = gemm(prim, b_t, m, n, k, alpha, a, lda, b, ldb, c, ldc);
    threads_back(was, n_threads);
    return rc;
}
