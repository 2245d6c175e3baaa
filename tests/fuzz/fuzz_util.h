/*
 * fuzz_util.h — shared by the libFuzzer targets in tests/fuzz: the lsa readers take paths, so each input
 * is written to a file in a private folder (under /dev/shm when it exists: no disk I/O) and the reader
 * opens that. The folder is removed at exit. Test data (../shared) is found through $LSA_SHARED, else
 * ../shared relative to the working directory (tests/fuzz/run.sh runs from the repository root).
 */
#ifndef LSA_FUZZ_UTIL_H
#define LSA_FUZZ_UTIL_H

#include "lsa/lsa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_dir[256];

static inline void fz_cleanup(void)
{
    if (!fz_dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fz_dir);
}

/* The private folder, created on first use. */
static inline const char *fz_folder(void)
{
    if (fz_dir[0]) return fz_dir;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(fz_dir, sizeof fz_dir, "%s/lsa-fuzz-XXXXXX", base);
    if (!mkdtemp(fz_dir)) {
        perror(fz_dir);
        abort();
    }
    atexit(fz_cleanup);
    return fz_dir;
}

/* Write n bytes to <folder>/<name>; returns the path (static buffer, one per call site is enough). */
static inline const char *fz_write(const char *name, const void *data, size_t n)
{
    static char path[8][400];
    static unsigned k;
    char *p = path[k++ & 7];
    snprintf(p, sizeof path[0], "%s/%s", fz_folder(), name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(p);
        abort();
    }
    return p;
}

/* $LSA_SHARED/rel or ../shared/rel. */
static inline const char *fz_shared(const char *rel)
{
    static char buf[8][600];
    static unsigned k;
    char *p = buf[k++ & 7];
    const char *root = getenv("LSA_SHARED");
    snprintf(p, sizeof buf[0], "%s/%s", root && *root ? root : "../shared", rel);
    return p;
}

/* Call before each input: failures must then leave a message (lsa_errmsg() says "no error" otherwise). */
static inline void fz_clear_error(void) { lsa_err(0, "%s", ""); }

/* After a failure: the message must exist and be one line (no control characters). */
static inline void fz_check_error(const char *what)
{
    const char *m = lsa_errmsg();
    bool bad = !strcmp(m, "no error") || !m[0];
    for (const char *p = m; *p; p++) bad |= (unsigned char)*p < 0x20 || *p == 0x7f;
    if (bad) {
        fprintf(stderr, "%s failed with a bad message: \"%s\"\n", what, m);
        abort();
    }
}

/* A byte cursor over the fuzz input, for structured targets: reads past the end give zeros. */
struct fz_cur {
    const uint8_t *p;
    size_t n, at;
};

static inline uint8_t fz_u8(struct fz_cur *c) { return c->at < c->n ? c->p[c->at++] : 0; }

static inline uint64_t fz_u64(struct fz_cur *c, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)fz_u8(c) << (8 * i);
    return v;
}

#endif
