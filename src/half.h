/*
 * half.h — float32 <-> IEEE float16 for whole arrays (private to src/): the F16C instructions where the
 * CPU has them (every x86-64 since 2013), a scalar routine elsewhere; both round to nearest even, keep
 * subnormals, and give the same bits (NaN payloads aside: a NaN stays a NaN).
 */
#ifndef LSA_HALF_H
#define LSA_HALF_H

#include <stddef.h>
#include <stdint.h>

void lsa_half_encode(const float *x, uint16_t *h, size_t n);
void lsa_half_decode(const uint16_t *h, float *x, size_t n);
/* One value, scalar. */
uint16_t lsa_half_from_float(float f);

#endif
