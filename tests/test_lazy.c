/*
 * test_lazy — the memory-saving path (F16/BF16 matrices kept mapped, widened per matrix in the forward)
 * gives the same hidden states, NLL and logits as widening everything at load: on tiny-mistral (bf16), on
 * tinystories-llama-24L (f16), and on tinystories-llama-24L converted to bf16 here (round to nearest even),
 * including a tied head (tiny-qwen2 converted to bf16). Widening is exact, so the two must agree to the bit.
 */
#include "lsa/forward.h"
#include "lsa/safetensors.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

struct keep {
    float *hs;
    int n;
};

static int hook(void *ctx, enum lsa_point pt, int pos, const float *x, int T, int d)
{
    struct keep *k = ctx;
    (void)pt, (void)pos;
    memcpy(k->hs + (size_t)k->n++ * T * d, x, (size_t)T * d * sizeof *x);
    return 0;
}

/* Run the forward and return (L + 2) hidden states followed by the logits. */
static float *run(struct lsa_model *m, const int32_t *ids, int T, size_t *n_out)
{
    const struct lsa_arch *a = lsa_model_arch(m);
    size_t nh = (size_t)(a->n_layer + 2) * T * a->d_model, nl = (size_t)T * a->n_vocab;
    float *out = malloc((nh + nl) * sizeof *out);
    struct keep k = {out, 0};
    struct lsa_fwd *f = lsa_fwd_new(m, T);
    REQUIRE(f, "%s", lsa_errmsg());
    struct lsa_fwd_request req = {.points = LSA_PT_EMBED | LSA_PT_RESID_POST | LSA_PT_FINAL_NORM, .hook = hook,
                                  .hook_ctx = &k, .logits = out + nh};
    REQUIRE(lsa_fwd_run(f, ids, T, &req) == 0, "%s", lsa_errmsg());
    lsa_fwd_free(f);
    *n_out = nh + nl;
    return out;
}

static void compare(const char *dir)
{
    int32_t ids[] = {1, 403, 407, 261, 378, 285, 379, 288, 442, 331, 278, 263, 317, 265, 271, 260, 288, 301, 332, 270};
    int T = (int)(sizeof ids / sizeof ids[0]);
    struct lsa_model_opts eo = {.widen = LSA_WIDEN_EAGER}, lo = {.widen = LSA_WIDEN_LAZY};
    struct lsa_model *e = lsa_model_load_opts(dir, &eo), *l = lsa_model_load_opts(dir, &lo);
    REQUIRE(e && l, "%s: %s", dir, lsa_errmsg());
    CHECK(!lsa_model_is_lazy(e) && lsa_model_is_lazy(l), "%s: lazy flags %d %d", dir, lsa_model_is_lazy(e),
          lsa_model_is_lazy(l));
    size_t n1, n2;
    float *x = run(e, ids, T, &n1), *y = run(l, ids, T, &n2);
    double mx = 0, err = 0;
    for (size_t i = 0; i < n1; i++) {
        mx = fmax(mx, fabs(x[i]));
        err = fmax(err, fabs((double)x[i] - y[i]));
    }
    CHECK(n1 == n2 && err / mx <= 1e-6, "%s: lazy vs eager max rel diff %.3g", dir, err / mx);
    printf("  %s (%s): lazy vs eager max rel diff %.2e over %zu values\n", dir, lsa_model_arch(e)->dtype, err / mx, n1);
    free(x), free(y);
    lsa_model_free(e);
    lsa_model_free(l);
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* Write dir's weights as BF16 into out (config with dtype bfloat16, tokenizer linked). */
static void convert_bf16(const char *dir, const char *out)
{
    char cmd[2048], p[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/config.json %s/ && ln -sf \"$(realpath %s/tokenizer.json)\" %s/",
             out, dir, out, dir, out);
    REQUIRE(system(cmd) == 0, "%s", cmd);
    struct lsa_st *st = lsa_st_open(dir);
    REQUIRE(st, "%s", lsa_errmsg());
    cJSON *h = cJSON_CreateObject();
    size_t off = 0;
    for (size_t i = 0; i < lsa_st_count(st); i++) {
        const struct lsa_st_tensor *t = lsa_st_at(st, i);
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(e, "dtype", "BF16");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int r = 0; r < t->rank; r++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[r]));
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        off += (size_t)t->n_elem * 2;
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    }
    char *js = cJSON_PrintUnformatted(h);
    size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    FILE *f = fopen(p, "wb");
    REQUIRE(f, "cannot write %s", p);
    uint64_t n = hl + pad;
    fwrite(&n, 8, 1, f);
    fwrite(js, 1, hl, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    for (size_t i = 0; i < lsa_st_count(st); i++) {
        const struct lsa_st_tensor *t = lsa_st_at(st, i);
        float *w = malloc((size_t)t->n_elem * sizeof *w);
        REQUIRE(lsa_st_read_f32(t, w) == 0, "%s", lsa_errmsg());
        for (int64_t k = 0; k < t->n_elem; k++) {
            uint16_t b = to_bf16(w[k]);
            fwrite(&b, 2, 1, f);
        }
        free(w);
    }
    fclose(f);
    free(js);
    cJSON_Delete(h);
    lsa_st_close(st);
}

int main(void)
{
    compare(t_shared("fixtures/tiny-mistral"));
    compare(t_shared("models/tinystories-llama-24L"));
    char tmp[256], a[300], b[300], cmd[400];
    snprintf(tmp, sizeof tmp, "/tmp/lsa-test-lazy-%d", (int)getpid());
    snprintf(a, sizeof a, "%s/llama-24L-bf16", tmp);
    snprintf(b, sizeof b, "%s/qwen2-bf16", tmp);
    convert_bf16(t_shared("models/tinystories-llama-24L"), a);
    convert_bf16(t_shared("fixtures/tiny-qwen2"), b);
    compare(a);
    compare(b);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (!t_failures) CHECK(system(cmd) == 0, "cleanup");
    return t_finish("test_lazy");
}
