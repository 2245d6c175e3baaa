/*
 * gguf_quant.c — ggml tensor types: names, block sizes, and dequantization to float32.
 *
 * Each supported type is widened exactly as ggml's reference dequantize_row_<type> does it, with the same
 * float operations in the same order (the build uses ISO C, so no multiply-add is contracted), so the
 * values are bit-identical to what ggml computes. Block layouts (little-endian, f16 = IEEE half):
 *   Q4_0  32 el, 18 B: f16 d; u8 qs[16]            x = (nibble - 8) * d; low nibbles are elements 0..15
 *   Q4_1  32 el, 20 B: f16 d, m; u8 qs[16]         x = nibble * d + m
 *   Q5_0  32 el, 22 B: f16 d; u8 qh[4]; u8 qs[16]  5th bit of element j is bit j of qh; x = (q - 16) * d
 *   Q5_1  32 el, 24 B: f16 d, m; u8 qh[4]; qs[16]  x = q * d + m
 *   Q8_0  32 el, 34 B: f16 d; i8 qs[32]            x = q * d
 *   Q2_K 256 el, 84 B: u8 scales[16] (4-bit scale | 4-bit min); u8 qs[64]; f16 d, dmin
 *   Q3_K 256 el, 110 B: u8 hmask[32]; u8 qs[64]; u8 scales[12] (6-bit, packed); f16 d
 *   Q4_K 256 el, 144 B: f16 d, dmin; u8 scales[12] (8 x 6-bit scale and min, packed); u8 qs[128]
 *   Q5_K 256 el, 176 B: as Q4_K, then u8 qh[32] before qs[128]
 *   Q6_K 256 el, 210 B: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
 *   Q8_K 256 el, 292 B: f32 d; i8 qs[256]; i16 bsums[16]   x = d * q
 * Types lsa knows the size of but cannot widen (Q8_1, the IQ and TQ families, MXFP4, integer types) are
 * refused with LSA_EUNSUP; the GGUF reader still validates their sizes.
 */
#include "lsa/gguf.h"
#include "lsa/safetensors.h"

#include <string.h>

#define QK_K 256

static const struct {
    uint32_t type;
    const char *name;
    int64_t elems;
    size_t bytes;
    bool supported;
} types[] = {
    {0, "F32", 1, 4, true},       {1, "F16", 1, 2, true},         {2, "Q4_0", 32, 18, true},
    {3, "Q4_1", 32, 20, true},    {6, "Q5_0", 32, 22, true},      {7, "Q5_1", 32, 24, true},
    {8, "Q8_0", 32, 34, true},    {9, "Q8_1", 32, 36, false},     {10, "Q2_K", QK_K, 84, true},
    {11, "Q3_K", QK_K, 110, true}, {12, "Q4_K", QK_K, 144, true}, {13, "Q5_K", QK_K, 176, true},
    {14, "Q6_K", QK_K, 210, true}, {15, "Q8_K", QK_K, 292, true}, {16, "IQ2_XXS", QK_K, 66, false},
    {17, "IQ2_XS", QK_K, 74, false}, {18, "IQ3_XXS", QK_K, 98, false}, {19, "IQ1_S", QK_K, 50, false},
    {20, "IQ4_NL", 32, 18, false}, {21, "IQ3_S", QK_K, 110, false}, {22, "IQ2_S", QK_K, 82, false},
    {23, "IQ4_XS", QK_K, 136, false}, {24, "I8", 1, 1, false},      {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},     {27, "I64", 1, 8, false},       {28, "F64", 1, 8, false},
    {29, "IQ1_M", QK_K, 56, false}, {30, "BF16", 1, 2, true},      {34, "TQ1_0", QK_K, 54, false},
    {35, "TQ2_0", QK_K, 66, false}, {39, "MXFP4", 32, 17, false},
};

static int find_type(uint32_t type)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == type) return (int)i;
    return -1;
}

const char *lsa_ggml_type_name(uint32_t type)
{
    int i = find_type(type);
    return i < 0 ? NULL : types[i].name;
}

int64_t lsa_ggml_block_elems(uint32_t type)
{
    int i = find_type(type);
    return i < 0 ? 0 : types[i].elems;
}

size_t lsa_ggml_block_bytes(uint32_t type)
{
    int i = find_type(type);
    return i < 0 ? 0 : types[i].bytes;
}

bool lsa_ggml_type_supported(uint32_t type)
{
    int i = find_type(type);
    return i >= 0 && types[i].supported;
}

/* ---------------------------------------------------------------- little-endian fields */

static float f16(const uint8_t *p) { return lsa_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static float f32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The j-th 6-bit scale and min of a Q4_K/Q5_K block (ggml's get_scale_min_k4). */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ---------------------------------------------------------------- one block each */

static void deq_q4_0(const uint8_t *b, float *y)
{
    const float d = f16(b);
    for (int j = 0; j < 16; j++) {
        const int x0 = (b[2 + j] & 0x0F) - 8, x1 = (b[2 + j] >> 4) - 8;
        y[j] = (float)x0 * d;
        y[j + 16] = (float)x1 * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y)
{
    const float d = f16(b), m = f16(b + 2);
    for (int j = 0; j < 16; j++) {
        const int x0 = b[4 + j] & 0x0F, x1 = b[4 + j] >> 4;
        y[j] = (float)x0 * d + m;
        y[j + 16] = (float)x1 * d + m;
    }
}

static void deq_q5_0(const uint8_t *b, float *y)
{
    const float d = f16(b);
    const uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const int h0 = (int)(((qh >> j) << 4) & 0x10), h1 = (int)((qh >> (j + 12)) & 0x10);
        const int x0 = ((qs[j] & 0x0F) | h0) - 16, x1 = ((qs[j] >> 4) | h1) - 16;
        y[j] = (float)x0 * d;
        y[j + 16] = (float)x1 * d;
    }
}

static void deq_q5_1(const uint8_t *b, float *y)
{
    const float d = f16(b), m = f16(b + 2);
    const uint32_t qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const int h0 = (int)(((qh >> j) << 4) & 0x10), h1 = (int)((qh >> (j + 12)) & 0x10);
        const int x0 = (qs[j] & 0x0F) | h0, x1 = (qs[j] >> 4) | h1;
        y[j] = (float)x0 * d + m;
        y[j + 16] = (float)x1 * d + m;
    }
}

static void deq_q8_0(const uint8_t *b, float *y)
{
    const float d = f16(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

static void deq_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *scales = b, *q = b + 16;
    const float d = f16(b + 80), min = f16(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                const uint8_t sc = scales[is++];
                const float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
            }
        }
        q += 32;
    }
}

static void deq_q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hm = b, *q = b + 32, *s = b + 96;
    const float d_all = f16(b + 108);
    /* 16 6-bit scales: low 4 bits in s[0..7] (two per byte), high 2 bits in s[8..11] */
    int8_t scales[16];
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        scales[j] = (int8_t)((lo | hi << 4) - 32);
    }
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                const float dl = d_all * (float)scales[is++];
                for (int l = 0; l < 16; l++) {
                    const int k = l + 16 * half;
                    const int v = ((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
                    *y++ = dl * (float)v;
                }
            }
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}

static void deq_q4_k(const uint8_t *b, float *y)
{
    const float d = f16(b), min = f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    uint8_t sc, m;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
        scale_min_k4(is, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = min * (float)m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = min * (float)m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
}

static void deq_q5_k(const uint8_t *b, float *y)
{
    const float d = f16(b), min = f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t sc, m, u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32) {
        scale_min_k4(is, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = min * (float)m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = min * (float)m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

static void deq_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = f16(b + 208);
    for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

static void deq_q8_k(const uint8_t *b, float *y)
{
    const float d = f32(b);
    for (int j = 0; j < QK_K; j++) y[j] = d * (float)(int8_t)b[4 + j];
}

int lsa_ggml_dequantize(uint32_t type, const void *src, int64_t n, float *out)
{
    int k = find_type(type);
    if (k < 0 || !types[k].supported)
        return lsa_err(LSA_EUNSUP, "ggml type %s (%u) cannot be read by lsa (supported: F32, F16, BF16, Q4_0, Q4_1, "
                       "Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K)", k < 0 ? "?" : types[k].name, type);
    if (n < 0 || n % types[k].elems)
        return lsa_err(LSA_EINVAL, "%lld elements are not a whole number of %s blocks (%lld each)", (long long)n,
                       types[k].name, (long long)types[k].elems);
    const uint8_t *p = src;
    void (*block)(const uint8_t *, float *) = NULL;
    switch (type) {
    case LSA_GGML_F32:
        memcpy(out, p, (size_t)n * 4);
        return 0;
    case LSA_GGML_F16:
        for (int64_t i = 0; i < n; i++) out[i] = f16(p + 2 * i);
        return 0;
    case LSA_GGML_BF16:
        for (int64_t i = 0; i < n; i++) out[i] = lsa_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case LSA_GGML_Q4_0: block = deq_q4_0; break;
    case LSA_GGML_Q4_1: block = deq_q4_1; break;
    case LSA_GGML_Q5_0: block = deq_q5_0; break;
    case LSA_GGML_Q5_1: block = deq_q5_1; break;
    case LSA_GGML_Q8_0: block = deq_q8_0; break;
    case LSA_GGML_Q2_K: block = deq_q2_k; break;
    case LSA_GGML_Q3_K: block = deq_q3_k; break;
    case LSA_GGML_Q4_K: block = deq_q4_k; break;
    case LSA_GGML_Q5_K: block = deq_q5_k; break;
    case LSA_GGML_Q6_K: block = deq_q6_k; break;
    case LSA_GGML_Q8_K: block = deq_q8_k; break;
    }
    LSA_ASSERT(block);
    int64_t nb = n / types[k].elems;
    for (int64_t i = 0; i < nb; i++) block(p + (size_t)i * types[k].bytes, out + i * types[k].elems);
    return 0;
}
