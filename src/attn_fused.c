/*
 * attn_fused.c — causal attention for one block of query rows and one head, in AVX-512 tiles written for
 * it. The GEMM route (ops.c) spends a quarter of a small model's forward here at half the FMA rate: it
 * computes the masked half of each diagonal block, calls libmvec's expf (a call per 16 numbers, which
 * spills every vector register around it) and pays oneDNN's per-call setup four times a block. Neither
 * oneDNN 2.6 nor OpenBLAS has a fused attention to call instead.
 *
 * The scores are kept transposed, (key, query row), so that a row's softmax runs down the columns:
 * 16 rows' max and sum in the lanes of one vector, with no horizontal reductions. Every number of a row
 * is computed the same way whatever block or tile the row falls in (masked keys add exact zeros), so
 * the split forward's threads give the same bits as one thread.
 */
#include "attn_fused.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLK LSA_ATTN_BLOCK /* query rows a call, and the row stride of the scratch */
#define RT 32              /* query rows of a score tile (two vectors) */
#define KT 8               /* keys of a score tile */
#define PR 4               /* query rows of an output tile */

size_t lsa_attn_fused_scratch(int n_tok, int d_head)
{
    return 16 + (size_t)d_head * BLK + ((size_t)n_tok + KT) * BLK;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) /* GCC's pragmas and unrolling */
#include <immintrin.h>

static _Atomic int wanted = -1; /* -1: not yet read; threads that race to read it find the same */

static int cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

static int fused_wanted(void)
{
    int w = atomic_load_explicit(&wanted, memory_order_relaxed);
    if (w < 0) {
        const char *e = getenv("LSA_FUSED_ATTN");
        w = !(e && strcmp(e, "0") == 0) && cpu_has_avx512();
        atomic_store_explicit(&wanted, w, memory_order_relaxed);
    }
    return w;
}

void lsa_attn_fused_enable(bool on)
{
    atomic_store(&wanted, on && cpu_has_avx512());
}

bool lsa_attn_fused_ok(int d_head)
{
    return d_head > 0 && d_head % 16 == 0 && fused_wanted();
}

#pragma GCC push_options
#pragma GCC target("avx512f")

/*
 * e^x inline: Cody-Waite reduction by ln 2, Cephes' degree-5 polynomial for expf, 2^n by scalef. Within
 * 1.26 ulp of e^x for every float with a normal result (measured against exp in double), e^0 = 1 exactly;
 * overflow gives inf, underflow 0. libmvec's call cost more than its arithmetic.
 */
static inline __m512 vexp(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.8f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* qt (d_head, BLK) = the block's query rows transposed, rows from nb on zero */
static void transpose_q(const float *q, int ldq, int nb, int nbp, int d_head, float *qt)
{
    __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                     _mm512_set1_epi32(ldq));
    for (int r = 0; r < nbp; r += 16) {
        __mmask16 ok = nb - r >= 16 ? 0xffff : nb - r <= 0 ? 0 : (__mmask16)((1u << (nb - r)) - 1);
        const float *base = q + (size_t)r * ldq;
        for (int d = 0; d < d_head; d++)
            _mm512_store_ps(qt + (size_t)d * BLK + r,
                            _mm512_mask_i32gather_ps(_mm512_setzero_ps(), ok, idx, base + d, 4));
    }
}

/* st (KT keys, RT rows; row stride BLK) = scale · k[j]·q[r] */
static void score_tile(const float *qt, const float *const *kp, int d_head, float scale, float *st)
{
    __m512 a[KT][2];
#pragma GCC unroll 8
    for (int j = 0; j < KT; j++) a[j][0] = a[j][1] = _mm512_setzero_ps();
    for (int d = 0; d < d_head; d++) {
        __m512 q0 = _mm512_load_ps(qt + (size_t)d * BLK), q1 = _mm512_load_ps(qt + (size_t)d * BLK + 16);
#pragma GCC unroll 8
        for (int j = 0; j < KT; j++) {
            __m512 kb = _mm512_set1_ps(kp[j][d]);
            a[j][0] = _mm512_fmadd_ps(kb, q0, a[j][0]);
            a[j][1] = _mm512_fmadd_ps(kb, q1, a[j][1]);
        }
    }
    __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 8
    for (int j = 0; j < KT; j++) {
        _mm512_store_ps(st + (size_t)j * BLK, _mm512_mul_ps(a[j][0], sc));
        _mm512_store_ps(st + (size_t)j * BLK + 16, _mm512_mul_ps(a[j][1], sc));
    }
}

/* out rows 0..nr-1 (16·cv columns) = inv[r] · Σ_j p[j][r] v[j] over n keys; p's rows BLK apart, zero where
 * masked. Inlined with cv a constant, so that the accumulators stay in registers. */
static inline __attribute__((always_inline)) void out_tile(int cv, const float *p, const float *v, int ldv, int n,
                                                           const float *inv, float *out, int ldo, int nr)
{
    __m512 a[PR][4];
#pragma GCC unroll 4
    for (int r = 0; r < PR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < cv; c++) a[r][c] = _mm512_setzero_ps();
    for (int j = 0; j < n; j++) {
        __m512 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < cv; c++) vv[c] = _mm512_loadu_ps(v + (size_t)j * ldv + 16 * c);
#pragma GCC unroll 4
        for (int r = 0; r < PR; r++) {
            __m512 pb = _mm512_set1_ps(p[(size_t)j * BLK + r]);
#pragma GCC unroll 4
            for (int c = 0; c < cv; c++) a[r][c] = _mm512_fmadd_ps(pb, vv[c], a[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < PR; r++) {
        if (r >= nr) break;
        __m512 s = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 4
        for (int c = 0; c < cv; c++) _mm512_storeu_ps(out + (size_t)r * ldo + 16 * c, _mm512_mul_ps(a[r][c], s));
    }
}

/* lanes of rows row[] for which key j counts: i - window < j <= i */
static inline __mmask16 key_mask(__m512i row, int j, int window)
{
    __mmask16 ok = _mm512_cmpge_epi32_mask(row, _mm512_set1_epi32(j));
    return window > 0 ? ok & _mm512_cmplt_epi32_mask(row, _mm512_set1_epi32(j + window)) : ok;
}

/* first key any of rows i.. sees (the window's start for row i) */
static inline int first_key(int i, int window, int k0)
{
    return window > 0 && i - window + 1 > k0 ? i - window + 1 : k0;
}

void lsa_attn_fused(const float *q, int ldq, const float *k, const float *v, int ldkv, float *out, int ld_out, int i0,
                    int i1, int d_head, float scale, int window, float *scratch)
{
    int nb = i1 - i0, nbp = (nb + RT - 1) / RT * RT, k0 = first_key(i0, window, 0);
    float *qt = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *st = qt + (size_t)d_head * BLK; /* (key - k0, row) */
#define ST(j, r) (st + (size_t)((j) - k0) * BLK + (r))
    transpose_q(q + (size_t)i0 * ldq, ldq, nb, nbp, d_head, qt);
    /* scores of each row tile, keys up to its last row (the rest of the last key tile reads clamped rows and
     * is masked below) */
    for (int r0 = 0; r0 < nbp; r0 += RT) {
        int jhi = i0 + r0 + RT - 1 < i1 - 1 ? i0 + r0 + RT - 1 : i1 - 1;
        for (int j0 = first_key(i0 + r0, window, k0); j0 <= jhi; j0 += KT) {
            const float *kp[KT];
            for (int j = 0; j < KT; j++) kp[j] = k + (size_t)(j0 + j < i1 ? j0 + j : i1 - 1) * ldkv;
            score_tile(qt + r0, kp, d_head, scale, ST(j0, r0));
        }
    }
    /* softmax down the columns, 16 rows at once */
    __attribute__((aligned(64))) float inv[BLK];
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int r0 = 0; r0 < nbp; r0 += 16) {
        int jlo = first_key(i0 + r0, window, k0), jhi = i0 + r0 + 15 < i1 - 1 ? i0 + r0 + 15 : i1 - 1;
        __m512i row = _mm512_add_epi32(_mm512_set1_epi32(i0 + r0), lane);
        __m512 m = _mm512_set1_ps(-__builtin_inff()), sum = _mm512_setzero_ps();
        for (int j = jlo; j <= jhi; j++)
            m = _mm512_mask_max_ps(m, key_mask(row, j, window), m, _mm512_load_ps(ST(j, r0)));
        for (int j = jlo; j <= jhi; j++) {
            __m512 p = _mm512_maskz_mov_ps(key_mask(row, j, window), vexp(_mm512_sub_ps(_mm512_load_ps(ST(j, r0)), m)));
            _mm512_store_ps(ST(j, r0), p);
            sum = _mm512_add_ps(sum, p);
        }
        /* the division after the product, on d_head numbers a row (as flash attention does) */
        _mm512_store_ps(inv + r0, _mm512_div_ps(_mm512_set1_ps(1.0f), sum));
    }
    for (int r0 = 0; r0 < nb; r0 += PR) {
        int nr = nb - r0 < PR ? nb - r0 : PR, jlo = first_key(i0 + r0, window, k0);
        int jhi = i0 + r0 + PR - 1 < i1 - 1 ? i0 + r0 + PR - 1 : i1 - 1;
        for (int c = 0; c < d_head; c += 64) {
            const float *p = ST(jlo, r0), *vc = v + (size_t)jlo * ldkv + c;
            float *o = out + (size_t)(i0 + r0) * ld_out + c;
            int n = jhi + 1 - jlo;
            switch ((d_head - c) / 16) {
            case 1: out_tile(1, p, vc, ldkv, n, inv + r0, o, ld_out, nr); break;
            case 2: out_tile(2, p, vc, ldkv, n, inv + r0, o, ld_out, nr); break;
            case 3: out_tile(3, p, vc, ldkv, n, inv + r0, o, ld_out, nr); break;
            default: out_tile(4, p, vc, ldkv, n, inv + r0, o, ld_out, nr); break;
            }
        }
    }
#undef ST
}

#pragma GCC pop_options

#else

bool lsa_attn_fused_ok(int d_head)
{
    (void)d_head;
    return false;
}

void lsa_attn_fused_enable(bool on)
{
    (void)on;
}

void lsa_attn_fused(const float *q, int ldq, const float *k, const float *v, int ldkv, float *out, int ld_out, int i0,
                    int i1, int d_head, float scale, int window, float *scratch)
{
    (void)q, (void)ldq, (void)k, (void)v, (void)ldkv, (void)out, (void)ld_out, (void)i0, (void)i1, (void)d_head;
    (void)scale, (void)window, (void)scratch;
    abort(); /* lsa_attn_fused_ok said no */
}

#endif
