/*
 * test_ops — the attention kernel against a naive reference written here (causal softmax(q·kᵀ·scale)·v per
 * head, double precision), for lengths that span several query blocks, with GQA, with a fused per-head
 * layout (head strides), and with a sliding window; RoPE against its closed form on one pair; and RoPE's and
 * RMSNorm's vector loops against the same arithmetic rounded product by product.
 */
#include "attn_fused.h"
#include "ops.h"
#include "testutil.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xffff) / 65535.0f - 0.5f) * 2.0f;
}

static void naive(const float *q, int ldq, int q_hs, const float *k, const float *v, int ldkv, int kv_hs, float *out,
                  int T, int H, int Hkv, int dh, float scale, int window)
{
    double *p = malloc(sizeof(double) * T);
    for (int h = 0; h < H; h++) {
        int kh = h / (H / Hkv);
        for (int i = 0; i < T; i++) {
            int lo = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
            double mx = -INFINITY, sum = 0;
            for (int j = lo; j <= i; j++) {
                double s = 0;
                for (int c = 0; c < dh; c++)
                    s += (double)q[(size_t)i * ldq + h * q_hs + c] * k[(size_t)j * ldkv + kh * kv_hs + c];
                p[j] = s * scale;
                mx = fmax(mx, p[j]);
            }
            for (int j = lo; j <= i; j++) sum += p[j] = exp(p[j] - mx);
            for (int c = 0; c < dh; c++) {
                double o = 0;
                for (int j = lo; j <= i; j++) o += p[j] / sum * v[(size_t)j * ldkv + kh * kv_hs + c];
                out[(size_t)i * H * dh + h * dh + c] = (float)o;
            }
        }
    }
    free(p);
}

/* route 0: the GEMMs through OpenBLAS; 1: through oneDNN where it can (src/packed.h); 2: the fused kernel
 * (src/attn_fused.h) where the CPU and d_head allow it, else route 1; 3: the same on two OpenMP threads */
static void case_(int T, int H, int Hkv, int dh, int window, bool per_head, int route)
{
    int dnnl = route == 0 ? 0 : route == 3 ? 2 : 1;
    lsa_attn_fused_enable(route >= 2);
    bool fused = lsa_attn_fused_ok(dh);
    unsigned seed = (unsigned)(T * 31 + H * 7 + window);
    int q_dim = H * dh, kv_dim = Hkv * dh, ld = q_dim + 2 * kv_dim;
    float *qkv = malloc(sizeof(float) * (size_t)T * ld);
    for (size_t i = 0; i < (size_t)T * ld; i++) qkv[i] = frand(&seed);
    const float *q = qkv, *k = qkv + q_dim, *v = qkv + q_dim + kv_dim;
    int q_hs = dh, kv_hs = dh;
    if (per_head) { /* [q_h | k_h | v_h] per head, as gpt_neox */
        k = qkv + dh;
        v = qkv + 2 * dh;
        q_hs = kv_hs = 3 * dh;
    }
    float *got = calloc((size_t)T * q_dim, sizeof(float)), *want = calloc((size_t)T * q_dim, sizeof(float));
    size_t len = lsa_ops_attention_scratch(T, dh);
    struct lsa_att_scratch scr = {malloc(sizeof(float) * len * 2), len, 2}, *scores = &scr;
    float scale = 1.0f / sqrtf((float)dh);
    lsa_ops_attention(q, ld, q_hs, k, v, ld, kv_hs, got, q_dim, 0, T, 0, H, H, Hkv, dh, scale, window, scores, dnnl);
    naive(q, ld, q_hs, k, v, ld, kv_hs, want, T, H, Hkv, dh, scale, window);
    double err = 0;
    for (size_t i = 0; i < (size_t)T * q_dim; i++) err = fmax(err, fabs((double)got[i] - want[i]));
    CHECK(err < 1e-5, "attention T=%d H=%d/%d dh=%d window=%d per_head=%d route=%d: max abs err %.3g", T, H, Hkv, dh,
          window, per_head, route, err);
    const char *how = fused ? (dnnl > 1 ? "fused, 2 threads" : "fused") : dnnl ? "oneDNN" : "OpenBLAS";
    printf("  attention T=%d heads %d/%d d_head %d window %d%s, %s: max abs err %.2e\n", T, H, Hkv, dh, window,
           per_head ? " per-head layout" : "", how, err);
    /* one block of rows and one head at a time, last block first, as a forward split among threads
     * computes them: bit for bit the whole; and rows cut off the block grid: within rounding */
    float *split = calloc((size_t)T * q_dim, sizeof(float));
    for (int b = (T - 1) / LSA_ATTN_BLOCK; b >= 0; b--)
        for (int h = 0; h < H; h++) {
            int r1 = (b + 1) * LSA_ATTN_BLOCK < T ? (b + 1) * LSA_ATTN_BLOCK : T;
            lsa_ops_attention(q, ld, q_hs, k, v, ld, kv_hs, split, q_dim, b * LSA_ATTN_BLOCK, r1, h, h + 1, H, Hkv, dh,
                              scale, window, scores, dnnl);
        }
    CHECK(memcmp(split, got, sizeof(float) * (size_t)T * q_dim) == 0, "attention T=%d by block and head differs", T);
    int s0 = T / 3;
    lsa_ops_attention(q, ld, q_hs, k, v, ld, kv_hs, split, q_dim, 0, s0, 0, H, H, Hkv, dh, scale, window, scores, dnnl);
    lsa_ops_attention(q, ld, q_hs, k, v, ld, kv_hs, split, q_dim, s0, T, 0, H, H, Hkv, dh, scale, window, scores, dnnl);
    double dev = 0;
    for (size_t i = 0; i < (size_t)T * q_dim; i++) dev = fmax(dev, fabs((double)split[i] - got[i]));
    /* the fused kernel computes each row alike in any block: bit for bit there too */
    CHECK(fused ? dev == 0 : dev < 1e-6, "attention T=%d split at %d (%s): max abs deviation %.3g from the whole", T,
          s0, fused ? "fused" : "GEMMs", dev);
    free(split);
    free(qkv), free(got), free(want), free(scr.p);
}

/* float(a·b) for floats a, b: the double product is exact, so this is the product rounded once, whatever
 * the compiler contracts */
static float mulf(float a, float b) { return (float)((double)a * b); }

/* RoPE and RMSNorm's scaling round every product to float before the next operation, as transformers does;
 * their vectorised copies (src/vexact.c) must not fuse a multiply and an add. Lengths around the vector
 * widths, so that the AVX-512 or AVX2 loop and its remainder both run. */
static void exact_rounding(void)
{
    unsigned seed = 7;
    for (int half = 1; half <= 41; half += 4) {
        float p[82], want[82], c[41], sn[41];
        for (int i = 0; i < 2 * half; i++) p[i] = frand(&seed) * 3;
        for (int i = 0; i < half; i++) c[i] = frand(&seed), sn[i] = frand(&seed);
        for (int i = 0; i < half; i++) {
            float x1 = p[i], x2 = p[i + half];
            want[i] = mulf(x1, c[i]) - mulf(x2, sn[i]);
            want[i + half] = mulf(x2, c[i]) + mulf(x1, sn[i]);
        }
        lsa_vrope(p, c, sn, (size_t)half);
        CHECK(memcmp(p, want, sizeof(float) * 2 * half) == 0, "rope (half %d) not rounded product by product", half);
    }
    for (int n = 1; n <= 70; n += 3) {
        float x[70], w[70], y[70], want[70], r = 1.0f / 3.0f;
        for (int i = 0; i < n; i++) x[i] = frand(&seed) * 5, w[i] = frand(&seed);
        for (int plus_one = 0; plus_one < 2; plus_one++) {
            for (int i = 0; i < n; i++)
                want[i] = plus_one ? mulf(mulf(x[i], r), 1.0f + w[i]) : mulf(w[i], mulf(x[i], r));
            lsa_vrms_apply(y, x, w, r, plus_one, (size_t)n);
            CHECK(memcmp(y, want, sizeof(float) * n) == 0, "rms scaling (n %d, plus_one %d) not as rounded", n,
                  plus_one);
        }
    }
}

int main(void)
{
    for (int route = 0; route < 4; route++) {
        case_(1, 2, 1, 8, 0, false, route);
        case_(LSA_ATTN_BLOCK, 4, 2, 16, 0, false, route);
        case_(2 * LSA_ATTN_BLOCK + 37, 4, 2, 16, 0, false, route);
        case_(2 * LSA_ATTN_BLOCK + 37, 4, 1, 8, 50, false, route);
        case_(LSA_ATTN_BLOCK + 5, 4, 4, 8, LSA_ATTN_BLOCK + 3, false, route);
        case_(LSA_ATTN_BLOCK + 70, 3, 3, 8, 0, true, route);
        /* every width of the fused kernel's output tiles (d_head 16 · 1..4, and past 64), windows inside a
         * block and across blocks, GQA, lengths off the tile grids */
        case_(3 * LSA_ATTN_BLOCK + 11, 2, 1, 32, 0, false, route);
        case_(2 * LSA_ATTN_BLOCK + 1, 2, 2, 48, 77, false, route);
        case_(4 * LSA_ATTN_BLOCK, 2, 2, 64, 0, false, route);
        case_(LSA_ATTN_BLOCK + 45, 4, 2, 80, LSA_ATTN_BLOCK + 20, false, route);
        case_(LSA_ATTN_BLOCK + 9, 2, 1, 128, 0, true, route);
        case_(31, 1, 1, 16, 5, false, route);
    }
    lsa_attn_fused_enable(true);
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) /* where src/attn_fused.c builds the kernel */
    CHECK(lsa_attn_fused_ok(64) == !!__builtin_cpu_supports("avx512f"), "fused attention not as the CPU allows");
#endif
    CHECK(!lsa_attn_fused_ok(8) && !lsa_attn_fused_ok(24), "fused attention taken for d_head not a multiple of 16");

    /* RoPE on one head: pair (x_i, x_{i+half}) rotated by angle t * theta^(-2i/dims) */
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, c[4 * 2], s[4 * 2];
    int T = 2, dims = 8, half = 4;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double ang = t * pow(10000.0, -2.0 * i / dims);
            c[t * half + i] = (float)cos(ang);
            s[t * half + i] = (float)sin(ang);
        }
    float y[16];
    memcpy(y, x, sizeof x);
    memcpy(y + 8, x, sizeof x);
    lsa_ops_rope(y, 8, 8, 1, T, dims, c, s);
    CHECK(memcmp(y, x, sizeof x) == 0, "position 0 is not rotated");
    double e = 0;
    for (int i = 0; i < half; i++) {
        double ang = pow(10000.0, -2.0 * i / dims);
        e = fmax(e, fabs(y[8 + i] - (x[i] * cos(ang) - x[i + half] * sin(ang))));
        e = fmax(e, fabs(y[8 + i + half] - (x[i + half] * cos(ang) + x[i] * sin(ang))));
    }
    CHECK(e < 1e-6, "rope closed form: err %.3g", e);
    exact_rounding();
    return t_finish("test_ops");
}
