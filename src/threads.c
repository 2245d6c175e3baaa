/*
 * threads.c — see threads.h.
 */
#include "threads.h"

#include <pthread.h>
#include <stdbool.h>
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
