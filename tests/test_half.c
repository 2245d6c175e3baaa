/*
 * test_half — float32 <-> float16 over whole arrays (src/half.h), against properties rather than a second
 * implementation: every half that is not a NaN survives decode then encode; every float encodes to the
 * half nearest to it (ties to the even one, beyond the largest half to infinity), the same bits as the
 * scalar routine; NaN stays NaN; array lengths that are not a multiple of the vector width.
 */
#include "half.h"
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static bool half_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/* Whether h is a correct rounding of x: infinity from 65520 up (IEEE), else no neighbouring finite half
 * is nearer, and of two equally near the even one. */
static bool nearest(float x, uint16_t h, float hv)
{
    uint16_t mag = h & 0x7fff;
    if ((h >> 15) != (signbit(x) ? 1 : 0)) return false;
    if (fabsf(x) >= 65520.0f) return mag == 0x7c00;
    if (mag >= 0x7c00) return false;
    double e = fabs((double)x - hv);
    for (int step = -1; step <= 1; step += 2) {
        int m = mag + step;
        if (m < 0 || m >= 0x7c00) continue;
        uint16_t o = (uint16_t)((h & 0x8000) | m);
        float ov;
        lsa_half_decode(&o, &ov, 1);
        double eo = fabs((double)x - ov);
        if (eo < e || (eo == e && (mag & 1))) return false;
    }
    return true;
}

int main(void)
{
    enum { N = 1 << 20 };
    uint16_t *h = malloc(65536 * sizeof *h), *h2 = malloc(N * sizeof *h2);
    float *f = malloc(N * sizeof *f);
    REQUIRE(h && h2 && f, "out of memory");
    size_t bad = 0;
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    lsa_half_decode(h, f, 65536);
    lsa_half_encode(f, h2, 65536);
    for (uint32_t i = 0; i < 65536; i++)
        if (half_nan((uint16_t)i) ? !isnan(f[i]) || !half_nan(h2[i]) : h2[i] != i) bad++;
    CHECK(bad == 0, "%zu of 65536 halves do not survive decode + encode", bad);
    printf("  65536 halves: decode then encode gives them back (NaN stays NaN)\n");

    /* floats across every exponent: a stride through all bit patterns, plus the edges of the half range */
    size_t n = 0;
    for (uint64_t u = 0; u < 0x100000000ull && n < N - 64; u += 4099) f[n++] = bits_f((uint32_t)u);
    static const float edge[] = {65504.0f,       65519.99f,      65520.0f,       65536.0f,
                                 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f,
                                 8.940697e-08f,  1.0009766f,     1.0004883f,     -0.0f};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) f[n++] = edge[i], f[n++] = -edge[i];
    lsa_half_encode(f, h2, n);
    size_t wrong_round = 0, differ = 0, nan_lost = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(f[i])) {
            nan_lost += !half_nan(h2[i]);
            continue;
        }
        float hv;
        lsa_half_decode(&h2[i], &hv, 1);
        if (!nearest(f[i], h2[i], hv)) {
            if (wrong_round++ < 5) fprintf(stderr, "  %.9g -> 0x%04x (%.9g)\n", f[i], h2[i], hv);
        }
        differ += h2[i] != lsa_half_from_float(f[i]);
    }
    CHECK(wrong_round == 0, "%zu of %zu floats not rounded to the nearest half", wrong_round, n);
    CHECK(differ == 0, "%zu of %zu floats: array encoder and scalar routine disagree", differ, n);
    CHECK(nan_lost == 0, "%zu NaNs did not stay NaN", nan_lost);
    printf("  %zu floats over every exponent: nearest half, ties to even, same as the scalar routine\n", n);

    /* lengths around the vector width */
    for (size_t len = 0; len < 20; len++) {
        uint16_t out[20], ref[20];
        float back[20];
        for (size_t i = 0; i < len; i++) ref[i] = lsa_half_from_float(f[1000 + i]);
        lsa_half_encode(f + 1000, out, len);
        lsa_half_decode(out, back, len);
        bool ok = true;
        for (size_t i = 0; i < len; i++) {
            float b1;
            lsa_half_decode(&ref[i], &b1, 1);
            ok = ok && out[i] == ref[i] && (isnan(b1) ? isnan(back[i]) : back[i] == b1);
        }
        CHECK(ok, "length %zu differs", len);
    }
    printf("  lengths 0..19 agree with the scalar routine\n");
    free(h), free(h2), free(f);
    return t_finish("test_half");
}
