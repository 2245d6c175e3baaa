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

#endif
