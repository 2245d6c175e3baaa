/*
 * vmath.h — vectorised exponentials, activations, reductions and adds for the forward (private to src/;
 * vmath.c says how).
 */
#ifndef LSA_VMATH_H
#define LSA_VMATH_H

#include "lsa/model.h"

#include <stddef.h>

/* x[i] = expf(x[i] - shift); returns the sum of the new x[i] (in double). */
/* AVX-512, AVX2 and baseline copies of a loop, picked at load time (GCC on x86-64) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LSA_VARIANTS __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LSA_VARIANTS
#endif

double lsa_vexp_shift(float *x, size_t n, float shift);
/* The sum of expf(x[i] - shift) (in double), x unchanged. */
double lsa_vexp_sum(const float *x, size_t n, float shift);
/* The largest x[i], n >= 1 (NaN is not looked for: check_finite in the forward reports it). */
float lsa_vmax(const float *x, size_t n);
/* The sum of x[i], and of (x[i] - mean)², in double. */
double lsa_vsum(const float *x, size_t n);
double lsa_vsumsq(const float *x, size_t n, double mean);
/* Whether any x[i] is Inf or NaN. */
bool lsa_vany_nonfinite(const float *x, size_t n);
/* x[i] *= s. */
void lsa_vscale(float *x, size_t n, float s);
/* y[i] += x[i]. */
/* y = a + b over n floats; y may be a or b */
void lsa_vadd_to(float *y, const float *a, const float *b, size_t n);
/* x[i] = act(x[i]). */
void lsa_vact(enum lsa_act_kind act, float *x, size_t n);
/* out[i] = act(x[i]) * y[i]; out may be x (x is overwritten in any case unless the act is SiLU). */
void lsa_vact_mul(enum lsa_act_kind act, float *out, float *x, const float *y, size_t n);

/* vexact.c: rounded as the scalar loops are. y = w·(x·r) (plus_one: x·r·(1 + w)) over n floats. */
void lsa_vrms_apply(float *y, const float *x, const float *w, float r, bool plus_one, size_t n);
/* Rotates p[0..half) with p[half..2 half) by the angles' cos c and sin s (transformers' rotate_half). */
void lsa_vrope(float *p, const float *c, const float *s, size_t half);

#endif
