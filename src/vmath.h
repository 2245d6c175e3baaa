/*
 * vmath.h — vectorised exponentials, activations, reductions and adds for the forward (private to src/;
 * vmath.c says how).
 */
#ifndef LSA_VMATH_H
#define LSA_VMATH_H

#include "lsa/model.h"

#include <stddef.h>

/* x[i] = expf(x[i] - shift); returns the sum of the new x[i] (in double). */
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
void lsa_vadd(float *y, const float *x, size_t n);
/* x[i] = act(x[i]). */
void lsa_vact(enum lsa_act_kind act, float *x, size_t n);
/* out[i] = act(x[i]) * y[i]; out may be x (x is overwritten in any case unless the act is SiLU). */
void lsa_vact_mul(enum lsa_act_kind act, float *out, float *x, const float *y, size_t n);

#endif
