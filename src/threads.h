/*
 * threads.h — short-lived worker threads for the parts around the BLAS (private to src/). Threads are
 * started per call and joined before it returns, so none spin between calls and take cores from
 * OpenBLAS, as an OpenMP team would.
 */
#ifndef LSA_THREADS_H
#define LSA_THREADS_H

#include <stddef.h>

#define LSA_MAX_THREADS 16

/* Online cores, at least 1 and at most LSA_MAX_THREADS. */
int lsa_cores(void);
/* fn(args + i * size) for i in 0..n-1 (n <= LSA_MAX_THREADS), on n threads counting the caller's; the
 * share of a thread that cannot be started runs on the caller. Returns after all of them. */
void lsa_run_threads(int n, void *(*fn)(void *), void *args, size_t size);

/*
 * A pool for work split many times a second (the layers of a forward): its n - 1 threads wait for the next
 * call spinning for up to LSA_POOL_SPIN_US, then asleep, so that between calls that follow closely no
 * thread has to be woken (waking one costs tens of microseconds on a VM), and between runs none spins.
 * NULL with an lsa error when threads cannot be had; free with lsa_pool_free (NULL ok).
 */
#define LSA_POOL_SPIN_US 200
struct lsa_pool;
struct lsa_pool *lsa_pool_new(int n);
void lsa_pool_free(struct lsa_pool *p);
/* As lsa_run_threads with the pool's n: fn(args + i * size) on the caller (i = 0) and each thread. */
void lsa_pool_run(struct lsa_pool *p, void *(*fn)(void *), void *args, size_t size);

#endif
