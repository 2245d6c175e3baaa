/*
 * vexact.c — elementwise loops of the forward that must round exactly as the scalar code (and
 * transformers) does, vectorised: RMSNorm's scaling and RoPE's rotation. At -O2 GCC left them scalar on
 * the baseline x86-64, 2.5% of a d = 128 forward. This file gets -ftree-vectorize but not -ffast-math, and
 * -ffp-contract=off: an FMA in the AVX2 and AVX-512 copies would round a·b - c·d once where transformers
 * rounds each product, as the baseline copy does.
 */
#include "vmath.h"

LSA_VARIANTS void lsa_vrms_apply(float *y, const float *x, const float *w, float r, bool plus_one, size_t n)
{
    if (plus_one) /* gemma: the weight is stored minus one */
        for (size_t i = 0; i < n; i++) y[i] = x[i] * r * (1.0f + w[i]);
    else
        for (size_t i = 0; i < n; i++) y[i] = w[i] * (x[i] * r);
}

LSA_VARIANTS void lsa_vrope(float *p, const float *c, const float *s, size_t half)
{
    float *p2 = p + half;
    for (size_t i = 0; i < half; i++) {
        float x1 = p[i], x2 = p2[i];
        p[i] = x1 * c[i] - x2 * s[i];
        p2[i] = x2 * c[i] + x1 * s[i];
    }
}
