/*
 * testutil.h — tiny helpers shared by the plain-C test programs under ctest.
 * A test prints what it compares; a failed check prints where and by how much and makes the program
 * exit non-zero. Missing ../shared data is a failure, never a skip.
 */
#ifndef LSA_TESTUTIL_H
#define LSA_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int t_failures;
static int t_checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        t_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            t_failures++;                                                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Abort the test program now (for failures that make the rest meaningless). */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        int req_ok_ = !!(cond);                                                                    \
        CHECK(req_ok_, __VA_ARGS__);                                                               \
        if (!req_ok_) exit(1);                                                                     \
    } while (0)

/* The shared test data must be there: say what is missing and fail. */
static inline const char *t_shared(const char *rel)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, sizeof buf[0], "../shared/%s", rel);
    struct stat st;
    if (stat(p, &st) != 0) {
        fprintf(stderr, "FAIL: required test data %s is missing (tests run from the repo root, with ../shared "
                        "beside the checkout)\n", p);
        exit(1);
    }
    return p;
}

static inline int t_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, t_checks, t_failures);
    return t_failures ? 1 : 0;
}

#endif
