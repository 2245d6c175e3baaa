/*
 * vmath.c — the forward's loops that GCC vectorises only with -ffast-math: the transcendental ones
 * (softmax exponentials, activations), which it turns into calls to glibc's vector math library (libmvec:
 * expf, erff, tanhf 4, 8 or 16 floats at a time, within 1-4 ulp of the scalar functions) instead of one
 * libm call per float, and the reductions and adds around them (max, sums, scaling, residual adds).
 *
 * That needs -ffast-math on this file (CMakeLists.txt: glibc declares the vector variants only under
 * __FAST_MATH__) and a vectorising -O level; target_clones builds AVX-512, AVX2 and baseline copies picked
 * at load time. Nothing here tests for NaN, which -ffast-math would assume away: NaN and Inf flow through
 * the arithmetic (a NaN in a softmax row makes the row NaN, with or without it; the forward's check_finite
 * reports it). Sums are in double, as the scalar code had them, in a different order.
 * With another compiler (clang in the fuzz build) the same loops are simply scalar.
 */
#include "vmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

LSA_VARIANTS double lsa_vexp_shift(float *x, size_t n, float shift)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - shift);
        s += x[i];
    }
    return s;
}

LSA_VARIANTS double lsa_vexp_sum(const float *x, size_t n, float shift)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += expf(x[i] - shift);
    return s;
}

/* Plain loops, here for the vectorising flags: at -O2 GCC keeps a float max reduction scalar without
 * -ffast-math (a chain of dependent maxss, 4 cycles a float), and the max and the scaling were 10% of a
 * d = 128 capture's cycles (attention rows) and 2% of the logits' statistics; nor does it vectorise a
 * loop whose arrays may overlap (the residual adds). The max is exact in any order. */
LSA_VARIANTS float lsa_vmax(const float *x, size_t n)
{
    float m = x[0];
    for (size_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* The sums of a norm, in double as before, but in vector lanes (-ffast-math lets GCC reorder them): a
 * chain of dependent double adds, 4 cycles a float, was 3% of a d = 128 forward. */
LSA_VARIANTS double lsa_vsum(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

LSA_VARIANTS double lsa_vsumsq(const float *x, size_t n, double mean)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)x[i] - mean) * ((double)x[i] - mean);
    return s;
}

/* On the bits: -ffast-math assumes there is no NaN or Inf to find, and integer lanes do not care. A scalar
 * isfinite over the residual after every layer was 1.5% of a d = 128 forward, on one thread. */
LSA_VARIANTS bool lsa_vany_nonfinite(const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        bad |= (b & 0x7f800000u) == 0x7f800000u; /* all exponent bits set: Inf or NaN */
    }
    return bad != 0;
}

LSA_VARIANTS void lsa_vscale(float *x, size_t n, float s)
{
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

LSA_VARIANTS void lsa_vadd_to(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

LSA_VARIANTS void lsa_vact(enum lsa_act_kind act, float *x, size_t n)
{
    switch (act) {
    case LSA_ACT_SILU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case LSA_ACT_GELU:
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        break;
    case LSA_ACT_GELU_TANH:
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + tanhf(0.7978845608028654f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
        break;
    case LSA_ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
        break;
    }
}

LSA_VARIANTS void lsa_vact_mul(enum lsa_act_kind act, float *out, float *x, const float *y, size_t n)
{
    if (act == LSA_ACT_SILU) { /* the gated MLP of every llama-like model: one fused loop */
        for (size_t i = 0; i < n; i++) out[i] = x[i] / (1.0f + expf(-x[i])) * y[i];
        return;
    }
    lsa_vact(act, x, n);
    for (size_t i = 0; i < n; i++) out[i] = x[i] * y[i];
}
