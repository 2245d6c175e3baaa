/*
 * chunkstage.h — compression of a growing chunked dataset off HDF5's filter pipeline (private to src/).
 *
 * HDF5 compresses chunks in its filter pipeline, one at a time, on the thread that writes. For a capture
 * that is most of the time (zlib on every activation byte). A stage instead keeps the rows of the current
 * chunk rows (all the chunks that cover the same token range, one per slice of the leading axis) in
 * memory in chunk layout; once a token range is final, its full chunks are shuffled and deflated
 * in zlib format, what HDF5's shuffle + deflate filters store, on several threads, and handed back to the
 * caller to store as raw chunks (H5Dwrite_chunk in h5.c). Readers see an ordinary shuffle + deflate
 * dataset. Each byte plane of a shuffled chunk is coded the fastest way that keeps it as small as deflate
 * at the level asked for: the low mantissa bytes of activations, noise, in stored blocks; their exponent
 * bytes by ISA-L's fast level 1; anything with repeats by libdeflate at that level.
 *
 * Geometry: slices a = 0..across-1 (the leading axis of a 3-D dataset; 1 for a 2-D one), rows t = 0, 1,
 * ... along the growing axis, row_bytes per row (the last axis, whole), per rows per chunk.
 */
#ifndef LSA_CHUNKSTAGE_H
#define LSA_CHUNKSTAGE_H

#include "lsa/lsa.h"

#include <stdbool.h>
#include <stddef.h>

struct lsa_stage;

/* elem: element size in bytes (the shuffle's unit); level: deflate level 1..12. NULL with an lsa error. */
struct lsa_stage *lsa_stage_new(size_t elem, size_t row_bytes, int64_t per, int64_t across, int level);
void lsa_stage_free(struct lsa_stage *s); /* NULL ok */

/* Rows t0 .. t0 + n - 1 of slice a (n * row_bytes bytes, stored element bytes). Rows before the last
 * commit's final chunk rows are gone: LSA_EINVAL. */
int lsa_stage_put(struct lsa_stage *s, int64_t a, int64_t t0, int64_t n, const void *rows);

/* Emit one compressed chunk: slice a, chunk row k (its first row is k * per). */
typedef int (*lsa_stage_emit)(void *ctx, int64_t a, int64_t k, const void *data, size_t n);

/*
 * Rows below hi are final. Every chunk row entirely below hi is compressed, emitted (in order of k, then
 * a) and dropped from memory; with partial, the chunk row that holds row hi - 1 is also emitted as it is
 * now (rows past what was put are zero) and kept, to be emitted again when complete.
 */
int lsa_stage_commit(struct lsa_stage *s, int64_t hi, bool partial, lsa_stage_emit emit, void *ctx);

/* The highest hi committed so far. */
int64_t lsa_stage_committed(const struct lsa_stage *s);

/* Planes of shuffled chunks stored rather than deflated, and coded by ISA-L's level 1 rather than at the
 * level asked for, so far in this process (for tests). */
int64_t lsa_stage_stored_planes(void);
int64_t lsa_stage_fast_planes(void);

#endif
