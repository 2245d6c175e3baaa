/*
 * chunkread.c — see chunkread.h.
 */
#include "chunkread.h"

#include "lsa/lsa.h"
#include "half.h"
#include "threads.h"

#include <libdeflate.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One slab read: the chunks it touches, in order of slice, then chunk row. */
struct slab {
    int64_t across0, per, row_len; /* first slice, rows per chunk, elements per row */
    int64_t t0, nt;                      /* the rows read */
    int64_t k0, nk;                      /* the chunk rows touched */
    size_t elem, chunk_bytes;
    bool shuffled, deflated;
    unsigned char **raw; /* (n_chunks) as stored, pointers into the scratch */
    size_t *raw_n;
    unsigned char **inflated; /* (threads) a chunk_bytes buffer each */
    float *out;
};

struct worker {
    const struct slab *sl;
    int tid;
    int64_t first, step, n_chunks;
    int64_t bad; /* first chunk that did not inflate to its size, -1 if none */
    bool nomem;
};

static _Atomic int64_t served;

int64_t lsa_chunkread_count(void) { return served; }

/* Elements i0 .. i0 + len - 1 of a chunk of n elements whose bytes are b, as float32. Shuffled, byte j of
 * element i is at b[j * n + i]; otherwise at b[i * elem + j]; both little-endian. tmp holds len halves. */
static void widen(const struct slab *sl, const unsigned char *b, size_t n, size_t i0, size_t len, float *o,
                  uint16_t *tmp)
{
    if (sl->elem == 2) {
        const unsigned char *lo = sl->shuffled ? b + i0 : b + 2 * i0, *hi = sl->shuffled ? b + n + i0 : lo + 1;
        size_t st = sl->shuffled ? 1 : 2;
        for (size_t e = 0; e < len; e++) tmp[e] = (uint16_t)(lo[e * st] | hi[e * st] << 8);
        lsa_half_decode(tmp, o, len);
        return;
    }
    for (size_t e = 0; e < len; e++) {
        size_t i = i0 + e;
        uint32_t u = 0;
        for (size_t j = 0; j < 4; j++) u |= (uint32_t)(sl->shuffled ? b[j * n + i] : b[i * 4 + j]) << (8 * j);
        memcpy(&o[e], &u, sizeof u);
    }
}

static void *decode(void *arg)
{
    struct worker *w = arg;
    const struct slab *sl = w->sl;
    struct libdeflate_decompressor *dec = sl->deflated ? libdeflate_alloc_decompressor() : NULL;
    unsigned char *buf = sl->deflated ? sl->inflated[w->tid] : NULL;
    uint16_t *tmp = malloc((size_t)sl->row_len * sizeof *tmp);
    if ((sl->deflated && !dec) || !tmp) {
        w->nomem = true;
        w->first = w->n_chunks;
    }
    size_t n = sl->chunk_bytes / sl->elem;
    for (int64_t c = w->first; c < w->n_chunks; c += w->step) {
        const unsigned char *b = sl->raw[c];
        if (sl->deflated) {
            size_t got = 0;
            if (libdeflate_zlib_decompress(dec, sl->raw[c], sl->raw_n[c], buf, sl->chunk_bytes, &got) !=
                    LIBDEFLATE_SUCCESS ||
                got != sl->chunk_bytes) {
                if (w->bad < 0) w->bad = c;
                continue;
            }
            b = buf;
        } else if (sl->raw_n[c] != sl->chunk_bytes) {
            if (w->bad < 0) w->bad = c;
            continue;
        }
        int64_t a = c / sl->nk, k = sl->k0 + c % sl->nk; /* slice index from across0, chunk row */
        int64_t lo = k * sl->per > sl->t0 ? k * sl->per : sl->t0, hi = (k + 1) * sl->per;
        if (hi > sl->t0 + sl->nt) hi = sl->t0 + sl->nt;
        for (int64_t t = lo; t < hi; t++) {
            float *o = sl->out + ((size_t)a * (size_t)sl->nt + (size_t)(t - sl->t0)) * (size_t)sl->row_len;
            size_t i0 = (size_t)(t - k * sl->per) * (size_t)sl->row_len;
            widen(sl, b, n, i0, (size_t)sl->row_len, o, tmp);
        }
    }
    if (dec) libdeflate_free_decompressor(dec);
    free(tmp);
    return NULL;
}

/* Whether the filters are a subset of shuffle then deflate, and which. */
static bool known_filters(hid_t dcpl, bool *shuffled, bool *deflated)
{
    int nf = H5Pget_nfilters(dcpl);
    *shuffled = *deflated = false;
    if (nf < 0 || nf > 2) return false;
    for (int i = 0; i < nf; i++) {
        unsigned flags = 0, cd[8];
        size_t cd_n = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &cd_n, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE && i == 0 && !*deflated) *shuffled = true;
        else if (id == H5Z_FILTER_DEFLATE) *deflated = true;
        else return false;
    }
    return true;
}

size_t lsa_chunkread_float_elem(hid_t t)
{
    if (H5Tget_class(t) != H5T_FLOAT || H5Tget_order(t) != H5T_ORDER_LE) return 0;
    if (H5Tget_size(t) == 2 && H5Tget_ebias(t) == 15 && H5Tget_precision(t) == 16) return 2;
    if (H5Tequal(t, H5T_IEEE_F32LE) > 0) return 4;
    return 0;
}

/* The dataset's layout, when it is one this reader takes; false otherwise. */
static bool layout(hid_t d, int rank, const int64_t dims[], struct slab *sl)
{
    hid_t t = H5Dget_type(d), dcpl = H5Dget_create_plist(d);
    bool ok = t >= 0 && dcpl >= 0 && (rank == 2 || rank == 3) && H5Pget_layout(dcpl) == H5D_CHUNKED;
    hsize_t c[3] = {0, 0, 0};
    if (ok) ok = (sl->elem = lsa_chunkread_float_elem(t)) != 0 && H5Pget_chunk(dcpl, 3, c) == rank;
    if (ok) ok = known_filters(dcpl, &sl->shuffled, &sl->deflated);
    if (ok) ok = (int64_t)c[rank - 1] == dims[rank - 1] && (rank == 2 || c[0] == 1) && c[rank - 2] > 0;
    if (ok) {
        sl->per = (int64_t)c[rank - 2];
        sl->row_len = dims[rank - 1];
        sl->chunk_bytes = (size_t)sl->per * (size_t)sl->row_len * sl->elem;
    }
    if (t >= 0) H5Tclose(t);
    if (dcpl >= 0) H5Pclose(dcpl);
    return ok;
}

void lsa_chunkread_scratch_free(struct lsa_chunkread_scratch *sc)
{
    free(sc->raw);
    for (int i = 0; i < LSA_MAX_THREADS; i++) free(sc->inflated[i]);
    memset(sc, 0, sizeof *sc);
}

/* Grow *p to at least need bytes (contents not kept). */
static bool reserve(unsigned char **p, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    free(*p);
    *cap = 0;
    if (!(*p = malloc(need))) return false;
    *cap = need;
    return true;
}

int lsa_chunkread_f32(struct lsa_chunkread_scratch *sc, hid_t d, const char *path, const char *name, int rank,
                      const int64_t dims[], const int64_t start[], const int64_t count[], float *out)
{
    struct slab sl = {0};
    if (!layout(d, rank, dims, &sl) || start[rank - 1] != 0 || count[rank - 1] != dims[rank - 1]) return 1;
    int64_t nA = rank == 3 ? count[0] : 1;
    sl.across0 = rank == 3 ? start[0] : 0;
    sl.t0 = start[rank - 2], sl.nt = count[rank - 2], sl.out = out;
    if (nA == 0 || sl.nt == 0 || sl.row_len == 0) return 0;
    sl.k0 = sl.t0 / sl.per;
    sl.nk = (sl.t0 + sl.nt - 1) / sl.per + 1 - sl.k0;
    int64_t n = nA * sl.nk;
    sl.raw = malloc((size_t)n * sizeof *sl.raw);
    sl.raw_n = malloc((size_t)n * sizeof *sl.raw_n);
    int rc = sl.raw && sl.raw_n ? 0 : lsa_err(LSA_ENOMEM, "out of memory reading %s", name);
    /* sizes first, to fetch into one reused buffer; a chunk never written (fill values), an implausible
     * size or a filter skipped leaves the read to HDF5 */
    size_t total = 0;
    for (int64_t c = 0; !rc && c < n; c++) {
        hsize_t off[3] = {0, 0, 0}, sz = 0;
        off[0] = (hsize_t)(sl.across0 + c / sl.nk);
        off[rank - 2] = (hsize_t)((sl.k0 + c % sl.nk) * sl.per);
        if (H5Dget_chunk_storage_size(d, off, &sz) < 0 || sz == 0 || sz > sl.chunk_bytes + sl.chunk_bytes / 2 + 4096)
            rc = 1;
        sl.raw_n[c] = (size_t)sz;
        total += (size_t)sz;
    }
    if (!rc && !reserve(&sc->raw, &sc->raw_cap, total)) rc = lsa_err(LSA_ENOMEM, "out of memory reading %s", name);
    int nt = lsa_cores() < n ? lsa_cores() : (int)n;
    for (int i = 0; !rc && sl.deflated && i < nt; i++)
        if (!reserve(&sc->inflated[i], &sc->inflated_cap[i], sl.chunk_bytes))
            rc = lsa_err(LSA_ENOMEM, "out of memory reading %s", name);
    sl.inflated = sc->inflated;
    size_t at = 0;
    for (int64_t c = 0; !rc && c < n; c++) {
        int64_t k = sl.k0 + c % sl.nk;
        hsize_t off[3] = {0, 0, 0};
        off[0] = (hsize_t)(sl.across0 + c / sl.nk);
        off[rank - 2] = (hsize_t)(k * sl.per);
        uint32_t mask = 0;
        sl.raw[c] = sc->raw + at;
        at += sl.raw_n[c];
        if (H5Dread_chunk(d, H5P_DEFAULT, off, &mask, sl.raw[c]) < 0)
            rc = lsa_err(LSA_EFORMAT, "%s: cannot read a chunk of %s at row %lld (damaged)", path, name,
                         (long long)(k * sl.per));
        else if (mask != 0) rc = 1;
    }
    if (!rc) {
        struct worker w[LSA_MAX_THREADS];
        for (int i = 0; i < nt; i++)
            w[i] = (struct worker){.sl = &sl, .tid = i, .first = i, .step = nt, .n_chunks = n, .bad = -1};
        /* on OpenMP's team rather than threads of its own: the analyses that read (similarity, the lens)
         * run OpenMP loops between reads, whose threads spin a while after each and took the cores from
         * separate decoding threads (reading 100k tokens of d = 128: 0.46 s against 0.34 s) */
#pragma omp parallel for num_threads(nt) schedule(static, 1)
        for (int i = 0; i < nt; i++) decode(&w[i]);
        int64_t bad = -1;
        for (int i = 0; i < nt; i++) {
            if (w[i].nomem) rc = lsa_err(LSA_ENOMEM, "out of memory reading %s", name);
            if (w[i].bad >= 0 && (bad < 0 || w[i].bad < bad)) bad = w[i].bad;
        }
        if (!rc && bad >= 0) {
            char where[64];
            long long row = (long long)((sl.k0 + bad % sl.nk) * sl.per);
            if (rank == 3) snprintf(where, sizeof where, "(%lld, %lld, 0)", (long long)(sl.across0 + bad / sl.nk), row);
            else snprintf(where, sizeof where, "(%lld, 0)", row);
            rc = lsa_err(LSA_EFORMAT, "%s: %s: the chunk at %s does not %s to its %zu bytes (damaged)", path, name,
                         where, sl.deflated ? "inflate" : "hold", sl.chunk_bytes);
        }
    }
    free(sl.raw);
    free(sl.raw_n);
    if (!rc) served++;
    return rc;
}
