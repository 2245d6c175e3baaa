/*
 * half.c — see half.h.
 */
#include "half.h"

#include "lsa/safetensors.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_F16C_PATH 1
#endif

uint16_t lsa_half_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
    int exp = (int)((x >> 23) & 0xff);
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0)); /* inf / nan */
    int e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00); /* overflow to inf */
    if (e <= 0) {                                  /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - e;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (uint32_t)e << 10 | mant >> 13, rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry into the exponent: still correct */
    return (uint16_t)(sign | h);
}

#ifdef HAVE_F16C_PATH
__attribute__((target("avx,f16c"))) static void encode_f16c(const float *x, uint16_t *h, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) h[i] = lsa_half_from_float(x[i]);
}

__attribute__((target("avx,f16c"))) static void decode_f16c(const uint16_t *h, float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) x[i] = lsa_f16_to_f32(h[i]);
}

/* CPUID leaf 1: F16C, AVX and OSXSAVE; then XGETBV: the OS saves the YMM registers. (GCC's
 * __builtin_cpu_supports knows "f16c", clang 14's does not.) */
static int has_f16c(void)
{
    static int known = -1; /* a benign race: every thread computes the same answer */
    if (known < 0) {
        unsigned a, b, c, d, lo, hi;
        int ok = __get_cpuid(1, &a, &b, &c, &d) && (c >> 27 & 1) && (c >> 28 & 1) && (c >> 29 & 1);
        if (ok) {
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            ok = (lo & 6) == 6;
        }
        known = ok;
    }
    return known;
}
#endif

void lsa_half_encode(const float *x, uint16_t *h, size_t n)
{
#ifdef HAVE_F16C_PATH
    if (has_f16c()) {
        encode_f16c(x, h, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) h[i] = lsa_half_from_float(x[i]);
}

void lsa_half_decode(const uint16_t *h, float *x, size_t n)
{
#ifdef HAVE_F16C_PATH
    if (has_f16c()) {
        decode_f16c(h, x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = lsa_f16_to_f32(h[i]);
}
