/*
 * test_chunkstage — datasets whose chunks lsa compresses itself (lsa_h5w_dset_stage) read back through
 * HDF5's own shuffle + deflate filters equal to what was written: 3-D and 2-D, f16 and f32, chunk
 * lengths that windows straddle, windows longer than several chunks, checkpoints (flushes) in the middle
 * of a chunk, and a window written twice before it is committed (as a resumed capture does). The same
 * data written without staging (HDF5 compressing) is the reference. Then slabs of both, read through
 * lsa's own chunk reader (src/chunkread.h), against the values written; also without any filter.
 */
#include "chunkstage.h"
#include "lsa/h5.h"
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* from src/chunkread.h, whose other declarations need hdf5.h */
int64_t lsa_chunkread_count(void);

static bool noisy; /* values with random low mantissa bits, as activations have (see value) */

/* A value that depends on (slice, row, column): with runs of equal values so that deflate has work, or
 * when noisy, like activations: +-[0.5, 1) with a random 10-bit mantissa (exact in float16), whose low
 * bytes deflate cannot shrink (the staged chunks then hold stored blocks: chunkstage.c, zlib_planes),
 * scaled by 2^-e with e geometric, so that the high bytes are many symbols of skewed frequencies. */
static float value(int64_t a, int64_t t, int64_t j)
{
    if (!noisy) return (float)((a * 7 + t / 3 + j % 5) % 11) * 0.25f - 1.0f;
    uint64_t h = (uint64_t)(a * 1000003 + t * 7919 + j) * 0x9e3779b97f4a7c15ull; /* splitmix64's finaliser */
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    float m = 1.0f + (float)(h & 0x3ff) / 1024.0f;
    int e = __builtin_ctzll((h >> 11) | 1ull << 12);
    return (h & 0x400 ? -0.5f : 0.5f) * m * ldexpf(1.0f, -e);
}

struct layout {
    int rank;
    enum lsa_h5_type type;
    int64_t across, d, per;
    int compress; /* deflate level; 0 = no filters (and no staging) */
};

/* Write windows of the given lengths through `staged` and `plain`; returns rows written. */
static int64_t write_all(const struct layout *L, const char *path, bool staged, const int *win, int n_win)
{
    struct lsa_h5w *w = lsa_h5w_create(path);
    REQUIRE(w, "create %s: %s", path, lsa_errmsg());
    int64_t dims[3] = {L->across, 0, L->d}, chunk[3] = {1, L->per, L->d};
    struct lsa_h5w_dset *ds = L->rank == 3 ? lsa_h5w_dset(w, "x", L->type, 3, dims, 1, chunk, L->compress)
                                           : lsa_h5w_dset(w, "x", L->type, 2, dims + 1, 0, chunk + 1, L->compress);
    REQUIRE(ds, "dataset: %s", lsa_errmsg());
    if (staged && L->compress) REQUIRE(lsa_h5w_dset_stage(ds) == 0, "stage: %s", lsa_errmsg());
    int64_t t0 = 0;
    float *buf = malloc(sizeof(float) * 64 * (size_t)L->d);
    for (int k = 0; k < n_win; k++) {
        int64_t T = win[k];
        for (int pass = 0; pass < (k % 3 == 1 ? 2 : 1); pass++) /* every third window written twice */
            for (int64_t a = 0; a < (L->rank == 3 ? L->across : 1); a++) {
                for (int64_t t = 0; t < T; t++)
                    for (int64_t j = 0; j < L->d; j++)
                        buf[t * L->d + j] = pass == 0 && k % 3 == 1 ? -99.0f : value(a, t0 + t, j);
                int64_t st[3] = {a, t0, 0}, ct[3] = {1, T, L->d};
                int rc = L->rank == 3 ? lsa_h5w_write(ds, st, ct, buf) : lsa_h5w_write(ds, st + 1, ct + 1, buf);
                CHECK(rc == 0, "write window %d: %s", k, lsa_errmsg());
            }
        t0 += T;
        CHECK(lsa_h5w_commit(w, t0) == 0, "commit: %s", lsa_errmsg());
        if (k % 4 == 2) CHECK(lsa_h5w_flush(w) == 0, "flush: %s", lsa_errmsg());
    }
    free(buf);
    CHECK(lsa_h5w_close(w) == 0, "close: %s", lsa_errmsg());
    return t0;
}

/* Slabs through lsa_h5_read_slab_f32 (chunks inflated by lsa, chunkread.h): whole rows of ranges that
 * start and end inside chunks, one row, the partial last chunk, and a subset of the slices. */
static void slabs(const struct layout *L, struct lsa_h5 *f, int64_t N)
{
    int64_t A = L->rank == 3 ? L->across : 1;
    int64_t ranges[][4] = {{0, A, 0, N},      {0, A, 1, N - 1 > 1 ? N - 1 : N}, {0, A, N - 1, N}, {0, A, N / 2, N},
                           {A - 1, A, 3, 20}, {A > 1 ? 1 : 0, A, 0, L->per + 1}};
    float *out = malloc(sizeof(float) * (size_t)(A * N * L->d));
    size_t bad = 0;
    int64_t served = lsa_chunkread_count();
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        int64_t a0 = ranges[r][0], a1 = ranges[r][1], t0 = ranges[r][2], t1 = ranges[r][3] < N ? ranges[r][3] : N;
        int64_t st[3] = {a0, t0, 0}, ct[3] = {a1 - a0, t1 - t0, L->d};
        int rc = L->rank == 3 ? lsa_h5_read_slab_f32(f, "/x", 3, st, ct, out)
                              : lsa_h5_read_slab_f32(f, "/x", 2, st + 1, ct + 1, out);
        CHECK(rc == 0, "slab [%lld, %lld) x [%lld, %lld): %s", (long long)a0, (long long)a1, (long long)t0,
              (long long)t1, lsa_errmsg());
        for (int64_t a = a0; rc == 0 && a < a1; a++)
            for (int64_t t = t0; t < t1; t++)
                for (int64_t j = 0; j < L->d; j++)
                    bad += out[((a - a0) * (t1 - t0) + (t - t0)) * L->d + j] != value(a, t, j);
    }
    CHECK(bad == 0, "slab reads: %zu values differ", bad);
    CHECK(lsa_chunkread_count() - served == (int64_t)(sizeof ranges / sizeof ranges[0]),
          "%lld of %zu slab reads went through lsa's chunk reader", (long long)(lsa_chunkread_count() - served),
          sizeof ranges / sizeof ranges[0]);
    free(out);
}

static void round_trip(const struct layout *L, const char *dir, const int *win, int n_win)
{
    char ps[512], pp[512];
    snprintf(ps, sizeof ps, "%s/staged.h5", dir);
    snprintf(pp, sizeof pp, "%s/plain.h5", dir);
    int64_t N = write_all(L, ps, true, win, n_win);
    write_all(L, pp, false, win, n_win);
    struct lsa_h5 *fs = lsa_h5_open(ps), *fp = lsa_h5_open(pp);
    REQUIRE(fs && fp, "open: %s", lsa_errmsg());
    float *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK(lsa_h5_read_f32(fs, "/x", &a, &na) == 0, "read staged: %s", lsa_errmsg());
    CHECK(lsa_h5_read_f32(fp, "/x", &b, &nb) == 0, "read plain: %s", lsa_errmsg());
    size_t want = (size_t)(L->rank == 3 ? L->across : 1) * (size_t)N * (size_t)L->d;
    CHECK(na == want && nb == want, "sizes %zu %zu, want %zu", na, nb, want);
    size_t bad = 0;
    for (size_t i = 0; a && b && i < want && i < na && i < nb; i++) {
        int64_t j = (int64_t)(i % (size_t)L->d), t = (int64_t)(i / (size_t)L->d) % N,
                s = (int64_t)(i / (size_t)L->d / (size_t)N);
        if (a[i] != b[i] || a[i] != value(s, t, j)) bad++;
    }
    CHECK(bad == 0, "rank %d type %d per %lld: %zu values differ", L->rank, (int)L->type, (long long)L->per, bad);
    printf("rank %d, %s, chunk %lld rows, %lld rows in %d windows: %zu values read back%s\n", L->rank,
           L->type == LSA_H5_F16 ? "f16" : "f32", (long long)L->per, (long long)N, n_win, na, bad ? " WRONG" : "");
    free(a), free(b);
    slabs(L, fs, N);
    slabs(L, fp, N);
    lsa_h5_close(fs), lsa_h5_close(fp);
}

int main(void)
{
    char dir[] = "/tmp/lsa-test-chunkstage-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    static const int wins[] = {5, 13, 1, 40, 7, 7, 22, 3, 64, 9};
    static const struct layout layouts[] = {
        {3, LSA_H5_F16, 3, 6, 7, 4},  {3, LSA_H5_F32, 4, 5, 16, 4},    {2, LSA_H5_F16, 1, 9, 4, 4},
        {2, LSA_H5_F32, 1, 3, 50, 4}, {3, LSA_H5_F16, 2, 8, 1, 4},     {3, LSA_H5_F16, 3, 6, 7, 0},
        {2, LSA_H5_F32, 1, 3, 5, 0},  {3, LSA_H5_F16, 2, 512, 128, 4}, {2, LSA_H5_F32, 1, 1024, 64, 4},
    };
    for (int pass = 0; pass < 2; pass++) {
        noisy = pass == 1;
        printf("%s values\n", noisy ? "noisy" : "smooth");
        int64_t stored = lsa_stage_stored_planes(), fast = lsa_stage_fast_planes();
        for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
            round_trip(&layouts[i], dir, wins, (int)(sizeof wins / sizeof wins[0]));
        stored = lsa_stage_stored_planes() - stored;
        fast = lsa_stage_fast_planes() - fast;
        printf("  %lld byte planes of staged chunks went in stored blocks, %lld through ISA-L's level 1\n",
               (long long)stored, (long long)fast);
        /* noisy: the low bytes are noise, the high bytes few symbols without repeats; smooth: runs */
        CHECK(noisy ? stored > 0 : stored == 0, "%lld planes stored with %s values", (long long)stored,
              noisy ? "noisy" : "smooth");
        CHECK(noisy ? fast > 0 : fast == 0, "%lld planes through ISA-L's level 1 with %s values", (long long)fast,
              noisy ? "noisy" : "smooth");
    }
    /* a dataset that cannot be staged is refused with a message */
    char p[512];
    snprintf(p, sizeof p, "%s/bad.h5", dir);
    struct lsa_h5w *w = lsa_h5w_create(p);
    int64_t dims[1] = {0}, ch[1] = {8};
    struct lsa_h5w_dset *ds = lsa_h5w_dset(w, "ids", LSA_H5_I32, 1, dims, 0, ch, 4);
    CHECK(ds && lsa_h5w_dset_stage(ds) != 0 && strstr(lsa_errmsg(), "cannot be staged"), "int dataset staged: %s",
          lsa_errmsg());
    lsa_h5w_close(w);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return t_finish("test_chunkstage");
}
