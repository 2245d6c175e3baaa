/*
 * chunkread.h — reading a slab of a shuffle + deflate dataset off HDF5's filter pipeline (private to
 * src/; the reverse of chunkstage.h).
 *
 * HDF5 inflates chunks one at a time on the calling thread; for the analyses that read whole captures
 * that was as slow as the analysis itself. Here the raw chunks are fetched with H5Dread_chunk (serially:
 * HDF5 is not thread-safe) and inflated (libdeflate), unshuffled and widened to float32 on every core.
 * It applies to the layout lsa writes and h5py's usual one: float16 or float32 little-endian, chunked
 * whole along the last axis (and by 1 along the first of three), filters shuffle and/or deflate or none,
 * reading whole rows. Anything else is left to HDF5.
 */
#ifndef LSA_CHUNKREAD_H
#define LSA_CHUNKREAD_H

#include "threads.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Buffers reused from one read to the next (first touch of fresh pages cost more than the copy);
 * zero-initialised by the owner, freed with lsa_chunkread_scratch_free. */
struct lsa_chunkread_scratch {
    unsigned char *raw; /* the stored chunks of one read, back to back */
    size_t raw_cap;
    unsigned char *inflated[LSA_MAX_THREADS]; /* one chunk per thread */
    size_t inflated_cap[LSA_MAX_THREADS];
};
void lsa_chunkread_scratch_free(struct lsa_chunkread_scratch *sc);

/*
 * Read start..start+count of dataset d (rank 2 or 3, dims its shape, already checked to hold the range)
 * as float32 into out (row-major count). Returns 0, an lsa error (a damaged chunk, named by path and
 * name), or 1 when the dataset is not one this reader handles (nothing was written to out).
 */
int lsa_chunkread_f32(struct lsa_chunkread_scratch *sc, hid_t d, const char *path, const char *name, int rank,
                      const int64_t dims[], const int64_t start[], const int64_t count[], float *out);

/* 2 for IEEE float16 little-endian, 4 for float32 little-endian, 0 for any other type. */
size_t lsa_chunkread_float_elem(hid_t t);

/* Slab reads served by lsa_chunkread_f32 so far in this process (for tests: proof the path was taken). */
int64_t lsa_chunkread_count(void);

#endif
