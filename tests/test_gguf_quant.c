/*
 * test_gguf_quant — ggml block dequantization, bit for bit.
 *
 * For Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K and Q8_K, known float data is quantized here with
 * ggml's reference algorithm (quantize_row_*_ref, written out again in this file), which also yields the
 * integer quants and scales before they are packed. The value each element must dequantize to is computed
 * from those integers with ggml's dequantization formula (same float operations, same order) and compared
 * bitwise with lsa_ggml_dequantize on the packed blocks; the reconstruction error against the original
 * data is printed as a sanity check. Q2_K and Q3_K are checked on blocks packed here from random fields
 * with power-of-two scales (every product exact, so the expected value does not depend on operation
 * order); F16 and BF16 on known bit patterns.
 */
#include "lsa/gguf.h"
#include "lsa/safetensors.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define QK_K 256
#define NB 6 /* super-blocks of test data */
#define N (NB * QK_K)
#define MAXI(a, b) ((a) > (b) ? (a) : (b))
#define MINI(a, b) ((a) < (b) ? (a) : (b))

static float X[N];      /* the data */
static float want[N];   /* what it must dequantize to */
static float got[N];
static uint8_t blk[N * 2];

static uint16_t to_f16(float f) /* round to nearest even, as GGML_FP32_TO_FP16 */
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
    if (e == 0xff) return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
    int ee = (int)e - 127 + 15;
    if (ee >= 31) return (uint16_t)(sign | 0x7c00);
    if (ee <= 0) {
        if (ee < -10) return (uint16_t)sign;
        m |= 0x800000;
        int shift = 14 - ee;
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((uint32_t)ee << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}
static float h2f(uint16_t h) { return lsa_f16_to_f32(h); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

static int nearest_int(float fval) /* ggml's: round half to even via the float mantissa */
{
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float frand(void) { return (float)(rnd() % 2000001) / 1000000.0f - 1.0f; }

/* ================================================================ type-0 / type-1 blocks of 32 */

static size_t q8_0(void)
{
    for (int b = 0; b < N / 32; b++) {
        const float *x = X + 32 * b;
        uint8_t *y = blk + 34 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        uint16_t h = to_f16(d);
        put16(y, h);
        for (int j = 0; j < 32; j++) {
            int q = (int)roundf(x[j] * id);
            y[2 + j] = (uint8_t)(int8_t)q;
            want[32 * b + j] = (float)q * h2f(h);
        }
    }
    return 34;
}

/* Q4_0 and Q5_0: d = max / -(2^(bits-1)), q = x/d + offset. */
static size_t q_0(int bits)
{
    const int off = 1 << (bits - 1), top = (1 << bits) - 1;
    const size_t bs = bits == 4 ? 18 : 22;
    for (int b = 0; b < N / 32; b++) {
        const float *x = X + 32 * b;
        uint8_t *y = blk + bs * (size_t)b;
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
        const float d = max / (float)-off, id = d ? 1.0f / d : 0.0f;
        uint16_t h = to_f16(d);
        put16(y, h);
        uint32_t qh = 0;
        uint8_t *qs = y + (bits == 4 ? 2 : 6);
        for (int j = 0; j < 16; j++) {
            int q0 = MINI(top, (int8_t)(x[j] * id + ((float)off + 0.5f)));
            int q1 = MINI(top, (int8_t)(x[j + 16] * id + ((float)off + 0.5f)));
            qs[j] = (uint8_t)((q0 & 0xF) | (q1 & 0xF) << 4);
            qh |= (uint32_t)((q0 >> 4) & 1) << j | (uint32_t)((q1 >> 4) & 1) << (j + 16);
            want[32 * b + j] = (float)(q0 - off) * h2f(h);
            want[32 * b + j + 16] = (float)(q1 - off) * h2f(h);
        }
        if (bits == 5) memcpy(y + 2, &qh, 4);
    }
    return bs;
}

/* Q4_1 and Q5_1: d = (max - min) / (2^bits - 1), x = q * d + min. */
static size_t q_1(int bits)
{
    const int top = (1 << bits) - 1;
    const size_t bs = bits == 4 ? 20 : 24;
    for (int b = 0; b < N / 32; b++) {
        const float *x = X + 32 * b;
        uint8_t *y = blk + bs * (size_t)b;
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < 32; j++) min = fminf(min, x[j]), max = fmaxf(max, x[j]);
        const float d = (max - min) / (float)top, id = d ? 1.0f / d : 0.0f;
        uint16_t hd = to_f16(d), hm = to_f16(min);
        put16(y, hd);
        put16(y + 2, hm);
        uint32_t qh = 0;
        uint8_t *qs = y + (bits == 4 ? 4 : 8);
        for (int j = 0; j < 16; j++) {
            int q0 = (uint8_t)((x[j] - min) * id + 0.5f), q1 = (uint8_t)((x[j + 16] - min) * id + 0.5f);
            if (bits == 4) q0 = MINI(15, q0), q1 = MINI(15, q1);
            qs[j] = (uint8_t)((q0 & 0xF) | (q1 & 0xF) << 4);
            qh |= (uint32_t)((q0 >> 4) & 1) << j | (uint32_t)((q1 >> 4) & 1) << (j + 16);
            want[32 * b + j] = (float)q0 * h2f(hd) + h2f(hm);
            want[32 * b + j + 16] = (float)q1 * h2f(hd) + h2f(hm);
        }
        if (bits == 5) memcpy(y + 4, &qh, 4);
    }
    return bs;
}

/* ================================================================ K-quants: ggml's helpers */

static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAXI(0, MINI(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_error += weights[i] * diff * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = MAXI(0, MINI(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D, this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += weights[i] * diff * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* make_qx_quants with rmse_type 1 and no importance weights. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax < 1e-15f) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = MAXI(-nmax, MINI(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = MAXI(-nmax, MINI(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + MAXI(-nmax, MINI(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q4_K (bits 4) and Q5_K (bits 5): 8 sub-blocks of 32 with 6-bit scales and mins. */
static size_t qk_45(int bits)
{
    const int nmax = (1 << bits) - 1;
    const size_t bs = bits == 4 ? 144 : 176;
    for (int b = 0; b < NB; b++) {
        const float *x = X + QK_K * b;
        uint8_t *y = blk + bs * (size_t)b, L[QK_K], Laux[32], ls[8], lm[8];
        float weights[32], mins[8], scales[8], max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                         bits == 4 ? -1.f : -0.5f, 0.1f, bits == 4 ? 20 : 15);
            max_scale = fmaxf(max_scale, scales[j]);
            max_min = fmaxf(max_min, mins[j]);
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        uint8_t *sc = y + 4;
        for (int j = 0; j < 8; j++) {
            ls[j] = (uint8_t)MINI(63, (uint8_t)nearest_int(inv_scale * scales[j]));
            lm[j] = (uint8_t)MINI(63, (uint8_t)nearest_int(inv_min * mins[j]));
            if (j < 4) {
                sc[j] = ls[j];
                sc[j + 4] = lm[j];
            } else {
                sc[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
                sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
                sc[j] |= (uint8_t)((lm[j] >> 4) << 6);
            }
        }
        uint16_t hd = to_f16(max_scale / 63.f), hm = to_f16(max_min / 63.f);
        put16(y, hd);
        put16(y + 2, hm);
        for (int j = 0; j < 8; j++) {
            const float d = h2f(hd) * ls[j];
            if (!d) continue;
            const float dm = h2f(hm) * lm[j];
            for (int ii = 0; ii < 32; ii++)
                L[32 * j + ii] = (uint8_t)MAXI(0, MINI(nmax, nearest_int((x[32 * j + ii] + dm) / d)));
        }
        uint8_t *qh = y + 16, *q = y + (bits == 4 ? 16 : 48);
        if (bits == 5) memset(qh, 0, 32);
        for (int j = 0, s = 0; j < QK_K; j += 64, q += 32, s += 2)
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) l1 -= 16, qh[l] |= (uint8_t)(1 << s);
                if (l2 > 15) l2 -= 16, qh[l] |= (uint8_t)(2 << s);
                q[l] = (uint8_t)(l1 | l2 << 4);
            }
        for (int e = 0; e < QK_K; e++) {
            const int j = e / 32;
            const float d1 = h2f(hd) * ls[j], m1 = h2f(hm) * lm[j];
            want[QK_K * b + e] = d1 * L[e] - m1;
        }
    }
    return bs;
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales. */
static size_t qk_6(void)
{
    for (int b = 0; b < NB; b++) {
        const float *x = X + QK_K * b;
        uint8_t *y = blk + 210 * (size_t)b;
        int8_t L[QK_K], *sc = (int8_t *)(y + 192);
        float scales[16], max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs) max_abs = fabsf(scales[ib]), max_scale = scales[ib];
        }
        REQUIRE(max_abs >= 1e-15f, "test data block %d is all zero", b);
        float iscale = -128.f / max_scale;
        uint16_t hd = to_f16(1 / iscale);
        put16(y + 208, hd);
        for (int ib = 0; ib < 16; ib++) sc[ib] = (int8_t)MINI(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; j++) {
            float d = h2f(hd) * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(MAXI(-32, MINI(31, nearest_int(x[16 * j + ii] / d))) + 32);
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const int a0 = L[j + l], a1 = L[j + l + 32], a2 = L[j + l + 64], a3 = L[j + l + 96];
                ql[l] = (uint8_t)((a0 & 0xF) | (a2 & 0xF) << 4);
                ql[l + 32] = (uint8_t)((a1 & 0xF) | (a3 & 0xF) << 4);
                qh[l] = (uint8_t)((a0 >> 4) | (a1 >> 4) << 2 | (a2 >> 4) << 4 | (a3 >> 4) << 6);
            }
        for (int e = 0; e < QK_K; e++) want[QK_K * b + e] = h2f(hd) * sc[e / 16] * (float)(L[e] - 32);
    }
    return 210;
}

/* Q8_K: one f32 scale per 256, q = nearest(-127 x / max). */
static size_t qk_8(void)
{
    for (int b = 0; b < NB; b++) {
        const float *x = X + QK_K * b;
        uint8_t *y = blk + 292 * (size_t)b;
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
        const float iscale = -127.f / max, d = 1 / iscale;
        memcpy(y, &d, 4);
        for (int j = 0; j < QK_K; j++) {
            int v = MINI(127, nearest_int(iscale * x[j]));
            y[4 + j] = (uint8_t)(int8_t)v;
            want[QK_K * b + j] = d * (float)v;
        }
        for (int j = 0; j < 16; j++) {
            int16_t s = 0;
            for (int i = 0; i < 16; i++) s = (int16_t)(s + (int8_t)y[4 + 16 * j + i]);
            memcpy(y + 260 + 2 * j, &s, 2);
        }
    }
    return 292;
}

/* ================================================================ Q2_K / Q3_K from random fields */

static size_t qk_2(void)
{
    for (int b = 0; b < NB; b++) {
        uint8_t *y = blk + 84 * (size_t)b;
        for (int i = 0; i < 80; i++) y[i] = (uint8_t)rnd();
        put16(y + 80, to_f16(1.0f / 64));
        put16(y + 82, to_f16(1.0f / 128));
        for (int e = 0; e < QK_K; e++) {
            int n = e / 128, k = (e % 128) / 32, half = (e % 32) / 16, l = e % 16;
            uint8_t sc = y[n * 8 + k * 2 + half];
            int q = (y[16 + n * 32 + half * 16 + l] >> (2 * k)) & 3;
            want[QK_K * b + e] = (float)(sc & 0xF) / 64 * (float)q - (float)(sc >> 4) / 128;
        }
    }
    return 84;
}

static size_t qk_3(void)
{
    for (int b = 0; b < NB; b++) {
        uint8_t *y = blk + 110 * (size_t)b, *s = y + 96;
        for (int i = 0; i < 108; i++) y[i] = (uint8_t)rnd();
        put16(y + 108, to_f16(1.0f / 32));
        for (int e = 0; e < QK_K; e++) {
            int n = e / 128, k = (e % 128) / 32, half = (e % 32) / 16, l = e % 16, j = n * 8 + k * 2 + half;
            int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4), hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
            int q = (y[32 + n * 32 + half * 16 + l] >> (2 * k)) & 3;
            if (!(y[half * 16 + l] & (1 << (n * 4 + k)))) q -= 4;
            want[QK_K * b + e] = (float)((lo | hi << 4) - 32) / 32 * (float)q;
        }
    }
    return 110;
}

/* ================================================================ driver */

static void check(const char *name, uint32_t type, size_t (*make)(void), double tol)
{
    size_t bs = make();
    REQUIRE(lsa_ggml_block_bytes(type) == bs, "%s: block size %zu, expected %zu", name, lsa_ggml_block_bytes(type), bs);
    REQUIRE(lsa_ggml_dequantize(type, blk, N, got) == 0, "%s: %s", name, lsa_errmsg());
    int bad = -1;
    double err = 0;
    for (int i = 0; i < N; i++) {
        if (bad < 0 && memcmp(&got[i], &want[i], 4)) bad = i;
        err = fmax(err, fabs((double)got[i] - X[i]));
    }
    CHECK(bad < 0, "%s: element %d dequantizes to %.9g, ggml's formula gives %.9g", name, bad, bad < 0 ? 0 : got[bad],
          bad < 0 ? 0 : want[bad]);
    if (tol > 0) CHECK(err <= tol, "%s: reconstruction error %.4g > %.4g", name, err, tol);
    printf("  %-5s %d elements bit-identical to ggml's formula%s", name, N, tol > 0 ? "" : " (random fields)\n");
    if (tol > 0) printf(", max |x - deq(q(x))| = %.4f\n", err);
}

static size_t q4_0(void) { return q_0(4); }
static size_t q5_0(void) { return q_0(5); }
static size_t q4_1(void) { return q_1(4); }
static size_t q5_1(void) { return q_1(5); }
static size_t q4_k(void) { return qk_45(4); }
static size_t q5_k(void) { return qk_45(5); }

int main(void)
{
    for (int i = 0; i < N; i++) X[i] = frand() * (1.0f + (float)((i / 32) % 5)); /* blocks of differing range */
    for (int i = 0; i < 32; i++) X[i] = 0.25f;                                       /* a constant block */
    printf("dequantization (%d elements of data in [-5, 5])\n", N);
    /* tolerances: half a quantization step of the widest block, with the 6-bit scale rounding for K-quants */
    check("Q8_0", LSA_GGML_Q8_0, q8_0, 5.0 / 127);
    check("Q4_0", LSA_GGML_Q4_0, q4_0, 5.0 / 8 * 1.01);
    check("Q5_0", LSA_GGML_Q5_0, q5_0, 5.0 / 16 * 1.01);
    check("Q4_1", LSA_GGML_Q4_1, q4_1, 10.0 / 15);
    check("Q5_1", LSA_GGML_Q5_1, q5_1, 10.0 / 31);
    check("Q4_K", LSA_GGML_Q4_K, q4_k, 10.0 / 15);
    check("Q5_K", LSA_GGML_Q5_K, q5_k, 10.0 / 31);
    check("Q6_K", LSA_GGML_Q6_K, qk_6, 5.0 / 32);
    check("Q8_K", LSA_GGML_Q8_K, qk_8, 5.0 / 127);
    check("Q2_K", LSA_GGML_Q2_K, qk_2, 0);
    check("Q3_K", LSA_GGML_Q3_K, qk_3, 0);

    /* F16 / BF16 bit patterns */
    static const uint16_t h[] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x8400, 0x3555};
    static const float hv[] = {1.0f, -2.0f, 5.9604644775390625e-08f, 65504.0f, -6.103515625e-05f, 0.333251953125f};
    static const uint16_t bf[] = {0x3F80, 0xC0A0, 0x0000, 0x4049};
    static const float bv[] = {1.0f, -5.0f, 0.0f, 3.140625f};
    float o[6];
    REQUIRE(lsa_ggml_dequantize(LSA_GGML_F16, h, 6, o) == 0, "%s", lsa_errmsg());
    for (int i = 0; i < 6; i++) CHECK(o[i] == hv[i], "F16 0x%04X -> %.9g, want %.9g", h[i], o[i], hv[i]);
    REQUIRE(lsa_ggml_dequantize(LSA_GGML_BF16, bf, 4, o) == 0, "%s", lsa_errmsg());
    for (int i = 0; i < 4; i++) CHECK(o[i] == bv[i], "BF16 0x%04X -> %.9g, want %.9g", bf[i], o[i], bv[i]);
    printf("  F16, BF16 known bit patterns\n");

    /* refusals */
    CHECK(lsa_ggml_dequantize(LSA_GGML_IQ4_NL, blk, 32, o) == LSA_EUNSUP && strstr(lsa_errmsg(), "IQ4_NL"),
          "IQ4_NL should be refused by name: %s", lsa_errmsg());
    CHECK(lsa_ggml_dequantize(LSA_GGML_Q4_K, blk, 100, got) == LSA_EINVAL, "a partial block should be refused");
    CHECK(lsa_ggml_type_name(LSA_GGML_Q6_K) && !strcmp(lsa_ggml_type_name(LSA_GGML_Q6_K), "Q6_K") &&
              !lsa_ggml_type_name(77), "type names");
    return t_finish("test_gguf_quant");
}
