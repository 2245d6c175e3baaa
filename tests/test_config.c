/*
 * test_config — config.json as transformers 4.x writes it gives the same architecture as the 5.x
 * fixtures (rope settings at the top level, gpt_neox rotary_pct/rotary_emb_base, phi3
 * partial_rotary_factor); rope_scaling linear is applied and other types are refused; models named by a
 * Hugging Face id resolve in the local HF cache (HF_HOME, HF_HUB_CACHE) without network.
 */
#include "lsa/model.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <unistd.h>

static char tmp[256];

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot open %s", path);
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    REQUIRE(j, "%s: bad JSON", path);
    return j;
}

static void save_json(const char *path, cJSON *j)
{
    char *s = cJSON_Print(j);
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot write %s", path);
    fputs(s, f);
    fclose(f);
    free(s);
}

/* Rewrite a 5.x config in the 4.x layout. */
static cJSON *to_v4(cJSON *j)
{
    cJSON *rp = cJSON_DetachItemFromObject(j, "rope_parameters");
    const char *mt = cJSON_GetObjectItem(j, "model_type")->valuestring;
    if (rp) {
        double theta = cJSON_GetObjectItem(rp, "rope_theta")->valuedouble;
        cJSON *prf = cJSON_GetObjectItem(rp, "partial_rotary_factor");
        if (!strcmp(mt, "gpt_neox")) {
            cJSON_AddNumberToObject(j, "rotary_emb_base", theta);
            cJSON_AddNumberToObject(j, "rotary_pct", prf ? prf->valuedouble : 0.25);
        } else {
            cJSON_AddNumberToObject(j, "rope_theta", theta);
            if (prf) cJSON_AddNumberToObject(j, "partial_rotary_factor", prf->valuedouble);
            cJSON_AddNullToObject(j, "rope_scaling");
        }
        cJSON_Delete(rp);
    }
    cJSON_ReplaceItemInObject(j, "transformers_version", cJSON_CreateString("4.46.3"));
    return j;
}

static void check_v4(const char *fixture)
{
    char src[512], dst[512];
    snprintf(src, sizeof src, "../shared/fixtures/%s/config.json", fixture);
    snprintf(dst, sizeof dst, "%s/%s-v4.json", tmp, fixture);
    struct lsa_arch a5, a4;
    REQUIRE(lsa_arch_from_config(t_shared(src + 10), &a5) == 0, "%s", lsa_errmsg());
    cJSON *j = to_v4(load_json(src));
    save_json(dst, j);
    cJSON_Delete(j);
    int rc = lsa_arch_from_config(dst, &a4);
    CHECK(rc == 0, "%s: %s", dst, lsa_errmsg());
    CHECK(rc == 0 && memcmp(&a4, &a5, sizeof a4) == 0,
          "%s: 4.x-style config gives a different architecture (rope_theta %g vs %g, rope_dims %d vs %d)", fixture,
          a4.rope_theta, a5.rope_theta, a4.rope_dims, a5.rope_dims);
    printf("  %s: 4.x and 5.x configs agree (rope_theta %g, rope_dims %d of %d)\n", fixture, a5.rope_theta,
           a5.rope_dims, a5.d_head);
}

static void check_scaling(const char *type, int want_rc, double want_factor, bool nested)
{
    char dst[512];
    snprintf(dst, sizeof dst, "%s/scaling-%s.json", tmp, type);
    cJSON *j = load_json(t_shared("fixtures/tiny-llama/config.json"));
    if (!nested) j = to_v4(j);
    cJSON *rs = nested ? cJSON_GetObjectItem(j, "rope_parameters") : cJSON_CreateObject();
    if (nested) cJSON_ReplaceItemInObject(rs, "rope_type", cJSON_CreateString(type));
    else cJSON_AddStringToObject(rs, "type", type);
    cJSON_AddNumberToObject(rs, "factor", 4.0);
    if (!nested) cJSON_ReplaceItemInObject(j, "rope_scaling", rs);
    save_json(dst, j);
    cJSON_Delete(j);
    struct lsa_arch a;
    int rc = lsa_arch_from_config(dst, &a);
    CHECK(rc == want_rc, "rope scaling %s (%s): rc %d want %d (%s)", type, nested ? "5.x" : "4.x", rc, want_rc,
          lsa_errmsg());
    if (rc == 0) CHECK(a.rope_linear_factor == want_factor, "linear factor %g", a.rope_linear_factor);
    else CHECK(strstr(lsa_errmsg(), type) && strstr(lsa_errmsg(), dst), "message: %s", lsa_errmsg());
}

static void link_model(const char *dir, const char *fixture)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && for f in config.json model.safetensors tokenizer.json; do "
             "ln -s \"$(realpath ../shared/fixtures/%s)/$f\" '%s/'; done", dir, fixture, dir);
    REQUIRE(system(cmd) == 0, "%s", cmd);
}

static void check_hf_cache(void)
{
    char hub[512], snap[600], ref[600], p[1400];
    snprintf(hub, sizeof hub, "%s/hf-home/hub", tmp);
    snprintf(snap, sizeof snap, "%s/models--org--tiny-llama/snapshots/0123abcd", hub);
    link_model(snap, "tiny-llama");
    snprintf(ref, sizeof ref, "%s/models--org--tiny-llama/refs", hub);
    snprintf(p, sizeof p, "mkdir -p '%s' && printf '0123abcd\\n' > '%s/main'", ref, ref);
    REQUIRE(system(p) == 0, "%s", p);
    snprintf(p, sizeof p, "%s/hf-home", tmp);
    setenv("HF_HOME", p, 1);
    unsetenv("HF_HUB_CACHE");
    struct lsa_model *m = lsa_model_load("org/tiny-llama");
    CHECK(m != NULL, "HF id org/tiny-llama via HF_HOME: %s", lsa_errmsg());
    if (m) {
        CHECK(strstr(lsa_model_path(m), "snapshots/0123abcd") != NULL, "resolved to %s", lsa_model_path(m));
        CHECK(lsa_model_arch(m)->n_layer == 4, "layers %d", lsa_model_arch(m)->n_layer);
        printf("  org/tiny-llama -> %s\n", lsa_model_path(m));
        lsa_model_free(m);
    }
    setenv("HF_HUB_CACHE", hub, 1);
    setenv("HF_HOME", "/nonexistent", 1);
    char out[1024];
    CHECK(lsa_model_resolve("org/tiny-llama", out, sizeof out) == 0, "HF_HUB_CACHE: %s", lsa_errmsg());
    int rc = lsa_model_resolve("org/not-downloaded", out, sizeof out);
    CHECK(rc != 0 && strstr(lsa_errmsg(), "models--org--not-downloaded"), "missing id: rc %d, %s", rc, lsa_errmsg());
    printf("  missing id: %s\n", lsa_errmsg());
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_HOME");
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/lsa-test-config-%d", (int)getpid());
    REQUIRE(mkdir(tmp, 0755) == 0, "mkdir %s", tmp);
    const char *fx[] = {"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-mistral", "tiny-gemma", "tiny-gpt_neox",
                        "tiny-phi3", "stories260K-hf"};
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) check_v4(fx[i]);
    struct lsa_arch neox;
    REQUIRE(lsa_arch_from_config(t_shared("fixtures/tiny-gpt_neox/config.json"), &neox) == 0, "%s", lsa_errmsg());
    CHECK(neox.rope_dims == 4 && neox.parallel_residual && neox.qkv_layout == LSA_QKV_PER_HEAD,
          "gpt_neox: rope_dims %d (want 16 * 0.25 = 4)", neox.rope_dims);
    check_scaling("linear", 0, 4.0, false);
    check_scaling("linear", 0, 4.0, true);
    check_scaling("llama3", LSA_EUNSUP, 0, false);
    check_scaling("yarn", LSA_EUNSUP, 0, true);
    check_scaling("dynamic", LSA_EUNSUP, 0, false);
    check_scaling("longrope", LSA_EUNSUP, 0, true);
    check_hf_cache();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (!t_failures) CHECK(system(cmd) == 0, "cleanup");
    return t_finish("test_config");
}
