/*
 * threads.c — see threads.h.
 */
#include "threads.h"

#include "lsa/lsa.h"

#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int lsa_cores(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores > LSA_MAX_THREADS ? LSA_MAX_THREADS : (int)cores;
}

void lsa_run_threads(int n, void *(*fn)(void *), void *args, size_t size)
{
    pthread_t th[LSA_MAX_THREADS];
    bool started[LSA_MAX_THREADS] = {0};
    char *a = args;
    if (n > LSA_MAX_THREADS) n = LSA_MAX_THREADS;
    for (int i = 1; i < n; i++) started[i] = pthread_create(&th[i], NULL, fn, a + (size_t)i * size) == 0;
    if (n > 0) fn(a);
    for (int i = 1; i < n; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else fn(a + (size_t)i * size);
    }
}

struct lsa_pool {
    int n;
    pthread_t th[LSA_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic unsigned gen; /* bumped per call */
    _Atomic int pending;  /* threads still running the current call */
    _Atomic bool quit;
    void *(*fn)(void *);
    char *args;
    size_t size;
    int started;
};

struct worker {
    struct lsa_pool *p;
    int i;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static void pause_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

/* A wait's k-th look: briefly spin, then give the core to whatever else runs (a capture's compression
 * while the other thread of a split layer finishes) and look again. */
static void relax(int k)
{
    if (k < 1000) pause_cpu();
    else sched_yield();
}

/* Until gen differs from seen: spin a while, then sleep on the condition. */
static unsigned wait_gen(struct lsa_pool *p, unsigned seen)
{
    unsigned g;
    double until = 0;
    for (int k = 0; (g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->quit); k++) {
        if ((k & 63) == 0) {
            double t = now_us();
            if (until == 0) until = t + LSA_POOL_SPIN_US;
            else if (t > until) break;
        }
        relax(k);
    }
    if (g != seen) return g;
    pthread_mutex_lock(&p->mu);
    while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *pool_main(void *arg)
{
    struct worker *w = arg;
    struct lsa_pool *p = w->p;
    unsigned seen = 0;
    for (;;) {
        seen = wait_gen(p, seen);
        if (atomic_load(&p->quit)) break;
        p->fn(p->args + (size_t)w->i * p->size);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    free(w);
    return NULL;
}

struct lsa_pool *lsa_pool_new(int n)
{
    if (n < 1) n = 1;
    if (n > LSA_MAX_THREADS) n = LSA_MAX_THREADS;
    struct lsa_pool *p = calloc(1, sizeof *p);
    if (!p) {
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 1; i < n; i++) {
        struct worker *w = malloc(sizeof *w);
        if (w) *w = (struct worker){p, i};
        if (!w || pthread_create(&p->th[i], NULL, pool_main, w) != 0) {
            free(w);
            lsa_pool_free(p);
            lsa_err(LSA_ENOMEM, "cannot start %d threads", n);
            return NULL;
        }
        p->started = i;
    }
    return p;
}

void lsa_pool_free(struct lsa_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->started; i++) pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void lsa_pool_run(struct lsa_pool *p, void *(*fn)(void *), void *args, size_t size)
{
    p->fn = fn, p->args = args, p->size = size;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu); /* the lock orders the bump before a sleeper's recheck */
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(args);
    for (int k = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; k++) relax(k);
}
