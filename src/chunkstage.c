/*
 * chunkstage.c — see chunkstage.h. Threads are started per commit and joined before it returns (a
 * commit compresses whole chunks of about a MiB each, so starting a thread costs next to nothing), and
 * they sleep in no pool between commits: nothing spins while the forward computes the next window. They
 * take chunks from one counter, so a thread slowed by another process does not hold the others up.
 *
 * Tried: compressing a window's chunks on a background thread while the next window's forward runs.
 * No gain (12.1k vs 12.1k tokens/s at d_model 128): the forward keeps both cores busy.
 */
#include "chunkstage.h"

#include "threads.h"

#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS LSA_MAX_THREADS

struct job_set {
    struct lsa_stage *s;
    int tid;
};

/* A compressing thread's own coders and scratch. */
struct slot {
    struct libdeflate_compressor *comp;
    unsigned char *isal_buf; /* (ISAL_DEF_LVL1_DEFAULT) ISA-L's level 1 tables */
    unsigned char *scratch; /* (chunk_bytes) the shuffled chunk */
};

struct lsa_stage {
    size_t elem, row_bytes, chunk_bytes;
    int64_t per, across;
    int level;
    int64_t base;       /* chunk row index of the first staged chunk row */
    int64_t n_rows;     /* staged chunk rows */
    unsigned char *buf; /* (n_rows, across, chunk_bytes) */
    int64_t committed;
    int n_threads;
    struct slot slot[MAX_THREADS]; /* one per thread */
    unsigned char **out;           /* (cap_jobs) compressed chunks */
    size_t *out_n;
    size_t out_cap, bound;
    int64_t cap_jobs;
    /* a commit's jobs: its first n_jobs staged chunks, taken by the threads from next_job */
    int64_t n_jobs;
    _Atomic int64_t next_job;
    _Atomic int failed;
};

void lsa_stage_free(struct lsa_stage *s)
{
    if (!s) return;
    for (int i = 0; i < MAX_THREADS; i++) {
        struct slot *sl = &s->slot[i];
        if (sl->comp) libdeflate_free_compressor(sl->comp);
        free(sl->isal_buf);
        free(sl->scratch);
    }
    for (int64_t j = 0; j < s->cap_jobs; j++) free(s->out[j]);
    free(s->out);
    free(s->out_n);
    free(s->buf);
    free(s);
}

struct lsa_stage *lsa_stage_new(size_t elem, size_t row_bytes, int64_t per, int64_t across, int level)
{
    if (elem == 0 || row_bytes % elem || per < 1 || across < 1 || level < 1 || level > 12) {
        lsa_err(LSA_EINVAL, "chunk stage: bad geometry");
        return NULL;
    }
    struct lsa_stage *s = calloc(1, sizeof *s);
    if (!s) {
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    s->elem = elem, s->row_bytes = row_bytes, s->per = per, s->across = across, s->level = level;
    s->chunk_bytes = row_bytes * (size_t)per;
    s->n_threads = lsa_cores();
    for (int i = 0; i < s->n_threads; i++) {
        struct slot *sl = &s->slot[i];
        if (!(sl->isal_buf = malloc(ISAL_DEF_LVL1_DEFAULT)) || !(sl->comp = libdeflate_alloc_compressor(level)) ||
            !(sl->scratch = malloc(s->chunk_bytes))) {
            lsa_stage_free(s);
            lsa_err(LSA_ENOMEM, "out of memory");
            return NULL;
        }
    }
    /* room for a stream of stored planes and a deflated rest (zlib_planes), by either coder (ISA-L's
     * stateless output is at most the input plus its stored blocks' headers) */
    size_t lb = libdeflate_zlib_compress_bound(s->slot[0].comp, s->chunk_bytes);
    size_t ib = s->chunk_bytes + 5 * (s->chunk_bytes / 65535 + 1) + 16;
    s->bound = (lb > ib ? lb : ib) + 5 * (s->chunk_bytes / 65535 + 1) + 16;
    return s;
}

int64_t lsa_stage_committed(const struct lsa_stage *s) { return s->committed; }

static unsigned char *chunk_at(const struct lsa_stage *s, int64_t row, int64_t a)
{
    return s->buf + ((size_t)row * (size_t)s->across + (size_t)a) * s->chunk_bytes;
}

int lsa_stage_put(struct lsa_stage *s, int64_t a, int64_t t0, int64_t n, const void *rows)
{
    if (a < 0 || a >= s->across || t0 < 0 || n < 0)
        return lsa_err(LSA_EINVAL, "chunk stage: write outside the dataset");
    if (n == 0) return 0;
    if (t0 / s->per < s->base)
        return lsa_err(LSA_EINVAL, "chunk stage: rows from %lld were already stored", (long long)t0);
    int64_t need = (t0 + n - 1) / s->per + 1 - s->base;
    if (need > s->n_rows) {
        size_t row_set = (size_t)s->across * s->chunk_bytes;
        unsigned char *b = realloc(s->buf, (size_t)need * row_set);
        if (!b) return lsa_err(LSA_ENOMEM, "out of memory staging chunks");
        memset(b + (size_t)s->n_rows * row_set, 0, (size_t)(need - s->n_rows) * row_set);
        s->buf = b;
        s->n_rows = need;
    }
    const unsigned char *src = rows;
    for (int64_t t = t0; t < t0 + n; t++, src += s->row_bytes)
        memcpy(chunk_at(s, t / s->per - s->base, a) + (size_t)(t % s->per) * s->row_bytes, src, s->row_bytes);
    return 0;
}

/* HDF5's shuffle filter: byte j of every element together, then byte j + 1, ... */
static void shuffle(const unsigned char *in, unsigned char *out, size_t n_bytes, size_t elem)
{
    size_t n = n_bytes / elem;
    if (elem == 1) {
        memcpy(out, in, n_bytes);
        return;
    }
    if (elem == 2) { /* float16, what captures store: the loop vectorised (byte gathers were 2% of a capture) */
        unsigned char *lo = out, *hi = out + n;
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            lo[i] = in[2 * i];
            hi[i] = in[2 * i + 1];
        }
        return;
    }
    for (size_t j = 0; j < elem; j++) {
        unsigned char *o = out + j * n;
        for (size_t i = 0; i < n; i++) o[i] = in[i * elem + j];
    }
}

/*
 * How a byte plane is best coded. Activations' planes are of three kinds (bench/RESULTS.md):
 * - the low mantissa bytes are nearly noise: deflate saves ~6% on them, by its Huffman codes alone, and
 *   takes as long on them as on the rest: stored;
 * - the sign/exponent bytes have few symbols but few repeats either: their Huffman code is all of the
 *   gain, and ISA-L's level 1 (a fast matcher, codes made for the data) makes them as small as libdeflate
 *   at level 4 does, or smaller (0.693 vs 0.712 of the size on tinystories-llama-12L), 5x as fast (404
 *   vs 82 MB/s; zlib's Huffman codes alone, used before: 0.697 at 147 MB/s);
 * - anything with repeats (runs of equal values): deflate at the level asked for.
 * Judged on four 2 KiB samples spread over the plane (its start alone misleads: the first tokens of a
 * chunk repeat more), so that a level keeps its meaning: never a file noticeably larger than that level's.
 */
enum coding { CODE_DEFLATE, CODE_FAST, CODE_STORED };

/* ISA-L's raw deflate of in at its level 1 (the last block final); 0 when out is too small. */
static size_t fast_deflate(struct slot *sl, const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
    struct isal_zstream z;
    isal_deflate_stateless_init(&z);
    z.level = 1, z.level_buf = sl->isal_buf, z.level_buf_size = ISAL_DEF_LVL1_DEFAULT;
    z.gzip_flag = IGZIP_DEFLATE, z.end_of_stream = 1, z.flush = NO_FLUSH;
    z.next_in = (uint8_t *)in, z.avail_in = (uint32_t)n;
    z.next_out = out, z.avail_out = (uint32_t)cap;
    return isal_deflate_stateless(&z) == COMP_OK ? (size_t)z.total_out : 0;
}

static enum coding plane_coding(struct slot *sl, const unsigned char *p, size_t n)
{
    enum { PIECE = 2048, PIECES = 4 };
    if (n < PIECE * PIECES * 4) return CODE_DEFLATE;
    unsigned char sample[PIECE * PIECES], tmp[PIECE * PIECES + 1024];
    for (int k = 0; k < PIECES; k++) memcpy(sample + k * PIECE, p + (n - PIECE) / (PIECES - 1) * (size_t)k, PIECE);
    size_t level = libdeflate_deflate_compress(sl->comp, sample, sizeof sample, tmp, sizeof tmp);
    if (level == 0 || level * 100 >= sizeof sample * 92) return CODE_STORED;
    size_t fast = fast_deflate(sl, sample, sizeof sample, tmp, sizeof tmp);
    return fast && fast * 100 <= level * 101 ? CODE_FAST : CODE_DEFLATE;
}

static _Atomic int64_t planes_stored, planes_fast;

int64_t lsa_stage_stored_planes(void) { return planes_stored; }
int64_t lsa_stage_fast_planes(void) { return planes_fast; }

/* A zlib stream of the shuffled chunk: its leading stored planes in stored blocks, the rest in one raw
 * deflate stream (ISA-L's when every plane of it is best so), then the Adler-32. */
static size_t zlib_planes(struct slot *sl, const unsigned char *in, size_t n_bytes, size_t elem, unsigned char *out,
                          size_t cap)
{
    size_t plane = n_bytes / elem, stored = 0;
    while (stored < n_bytes && plane_coding(sl, in + stored, plane) == CODE_STORED) stored += plane;
    bool fast = stored < n_bytes;
    for (size_t at = stored; at < n_bytes && fast; at += plane)
        fast = plane_coding(sl, in + at, plane) == CODE_FAST;
    if (stored == 0 && !fast) return libdeflate_zlib_compress(sl->comp, in, n_bytes, out, cap);
    planes_stored += (int64_t)(stored / plane);
    if (fast) planes_fast += (int64_t)((n_bytes - stored) / plane);
    size_t at = 0;
    if (cap < 2 + 5 * (stored / 65535 + 1) + stored + 4) return 0;
    out[at++] = 0x78, out[at++] = 0x9c; /* deflate, 32K window; (0x78 << 8 | 0x9c) % 31 == 0 */
    for (size_t done = 0; done < stored;) {
        size_t len = stored - done < 65535 ? stored - done : 65535;
        bool final = done + len == n_bytes;
        out[at++] = final ? 1 : 0; /* BFINAL, BTYPE = 00 (stored), then padding to the byte */
        out[at++] = (unsigned char)len, out[at++] = (unsigned char)(len >> 8);
        out[at++] = (unsigned char)~len, out[at++] = (unsigned char)(~len >> 8);
        memcpy(out + at, in + done, len);
        at += len, done += len;
    }
    if (stored < n_bytes) { /* a raw deflate stream starts on a byte boundary, its last block final */
        size_t got = fast ? fast_deflate(sl, in + stored, n_bytes - stored, out + at, cap - at - 4)
                          : libdeflate_deflate_compress(sl->comp, in + stored, n_bytes - stored, out + at, cap - at - 4);
        if (got == 0) return 0;
        at += got;
    }
    uint32_t a = libdeflate_adler32(1, in, n_bytes);
    out[at++] = (unsigned char)(a >> 24), out[at++] = (unsigned char)(a >> 16);
    out[at++] = (unsigned char)(a >> 8), out[at++] = (unsigned char)a;
    return at;
}

static void *compress_jobs(void *arg)
{
    struct job_set *js = arg;
    struct lsa_stage *s = js->s;
    for (int64_t j; (j = atomic_fetch_add(&s->next_job, 1)) < s->n_jobs;) {
        struct slot *sl = &s->slot[js->tid];
        shuffle(s->buf + (size_t)j * s->chunk_bytes, sl->scratch, s->chunk_bytes, s->elem);
        s->out_n[j] = zlib_planes(sl, sl->scratch, s->chunk_bytes, s->elem, s->out[j], s->bound);
        if (s->out_n[j] == 0) atomic_store(&s->failed, 1);
    }
    return NULL;
}

int lsa_stage_commit(struct lsa_stage *s, int64_t hi, bool partial, lsa_stage_emit emit, void *ctx)
{
    if (hi > s->committed) s->committed = hi;
    int64_t full = hi / s->per - s->base, rows = full;
    if (full > s->n_rows) full = rows = s->n_rows;
    if (full < 0) full = rows = 0;
    if (partial && hi % s->per && rows < s->n_rows && hi / s->per >= s->base) rows++;
    if (rows == 0) return 0;
    int64_t n_jobs = rows * s->across;
    if (n_jobs > s->cap_jobs) {
        unsigned char **o = realloc(s->out, (size_t)n_jobs * sizeof *o);
        if (o) s->out = o;
        size_t *on = o ? realloc(s->out_n, (size_t)n_jobs * sizeof *on) : NULL;
        if (on) s->out_n = on;
        if (!o || !on) return lsa_err(LSA_ENOMEM, "out of memory compressing chunks");
        for (int64_t j = s->cap_jobs; j < n_jobs; j++) s->out[j] = NULL;
        for (int64_t j = s->cap_jobs; j < n_jobs; j++)
            if (!(s->out[j] = malloc(s->bound))) {
                s->cap_jobs = j;
                return lsa_err(LSA_ENOMEM, "out of memory compressing chunks");
            }
        s->cap_jobs = n_jobs;
    }
    s->n_jobs = n_jobs;
    atomic_store(&s->next_job, 0);
    atomic_store(&s->failed, 0);
    int nt = n_jobs < s->n_threads ? (int)n_jobs : s->n_threads;
    struct job_set js[MAX_THREADS];
    for (int i = 0; i < nt; i++) js[i] = (struct job_set){.s = s, .tid = i};
    lsa_run_threads(nt, compress_jobs, js, sizeof js[0]);
    if (atomic_load(&s->failed)) return lsa_err(LSA_EIO, "chunk stage: deflate failed");
    int rc = 0;
    for (int64_t j = 0; j < n_jobs && !rc; j++) /* jobs run over the staged chunks in order */
        rc = emit(ctx, j % s->across, s->base + j / s->across, s->out[j], s->out_n[j]);
    if (rc || full == 0) return rc;
    size_t row_set = (size_t)s->across * s->chunk_bytes;
    memmove(s->buf, s->buf + (size_t)full * row_set, (size_t)(s->n_rows - full) * row_set);
    s->base += full;
    s->n_rows -= full;
    return 0;
}
