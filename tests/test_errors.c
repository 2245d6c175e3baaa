/*
 * test_errors — bad input gives a clear one-line error naming the file and the problem, and a non-zero
 * exit from the CLI; never a crash. Each case is generated here from a good fixture (nothing binary is
 * committed): missing config.json, unknown model_type, truncated safetensors, header length past the end
 * of the file, a tensor shape that disagrees with the config, a missing tensor, an unsupported dtype,
 * invalid UTF-8 text, bad JSON, bad config values, unsupported rope scaling.
 * Usage: test_errors PATH_TO_LSA_BINARY
 */
#include "lsa/model.h"
#include "lsa/safetensors.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[256];
static const char *lsa_bin;

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot write %s", path);
    fwrite(data, 1, n, f);
    fclose(f);
}

static void *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(*n + 1);
    REQUIRE(fread(p, 1, *n, f) == *n, "short read %s", path);
    ((char *)p)[*n] = 0;
    fclose(f);
    return p;
}

/* A fresh model folder copied from a fixture; returns its path. */
static const char *model_copy(const char *name, const char *fixture)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp %s/config.json %s/model.safetensors %s/tokenizer.json '%s'/",
             dir, dir, fixture, fixture, fixture, dir);
    REQUIRE(system(cmd) == 0, "%s", cmd);
    return dir;
}

/* Library check: load fails, and the message names the file and contains `phrase`. */
static void expect_load_error(const char *dir, const char *file_in_msg, const char *phrase)
{
    struct lsa_model *m = lsa_model_load(dir);
    CHECK(m == NULL, "%s: loaded although it should fail (%s)", dir, phrase);
    if (m) {
        lsa_model_free(m);
        return;
    }
    const char *msg = lsa_errmsg();
    CHECK(strstr(msg, file_in_msg) != NULL, "message does not name %s: %s", file_in_msg, msg);
    CHECK(strstr(msg, phrase) != NULL, "message does not say '%s': %s", phrase, msg);
    CHECK(strchr(msg, '\n') == NULL, "message is not one line: %s", msg);
    printf("  ok: %s\n", msg);
}

/* CLI check: exit status 1 and exactly one stderr line starting "lsa: error: " that contains phrase. */
static void expect_cli_error(const char *args, const char *phrase)
{
    char cmd[4096], out[8192] = "";
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 >/dev/null", lsa_bin, args);
    FILE *p = popen(cmd, "r");
    REQUIRE(p, "popen");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    int lines = 0;
    for (char *c = out; *c; c++) lines += *c == '\n';
    CHECK(code == 1, "lsa %s: exit %d, want 1 (stderr: %s)", args, code, out);
    CHECK(lines == 1 && strncmp(out, "lsa: error: ", 12) == 0, "lsa %s: want one 'lsa: error:' line, got: %s", args, out);
    CHECK(strstr(out, phrase) != NULL, "lsa %s: stderr lacks '%s': %s", args, phrase, out);
}

static void set_config(const char *dir, const char *key, cJSON *value)
{
    char p[600];
    size_t n;
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *txt = read_file(p, &n);
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    if (value) cJSON_ReplaceItemInObject(root, key, value);
    else cJSON_DeleteItemFromObject(root, key);
    char *s = cJSON_Print(root);
    write_file(p, s, strlen(s));
    free(s);
    cJSON_Delete(root);
}

/* Rewrite model.safetensors with its JSON header changed by `edit` (string replace old -> new, same length
 * not required: offsets are relative to the end of the header). */
static void edit_header(const char *dir, const char *old, const char *new_)
{
    char p[600];
    size_t n;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unsigned char *buf = read_file(p, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    char *hdr = malloc(hlen + 1);
    memcpy(hdr, buf + 8, hlen);
    hdr[hlen] = 0;
    char *at = strstr(hdr, old);
    REQUIRE(at, "header of %s lacks %s", p, old);
    size_t nh = hlen - strlen(old) + strlen(new_);
    unsigned char *out = malloc(8 + nh + (n - 8 - hlen));
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(nh >> (8 * i));
    size_t pre = (size_t)(at - hdr);
    memcpy(out + 8, hdr, pre);
    memcpy(out + 8 + pre, new_, strlen(new_));
    memcpy(out + 8 + pre + strlen(new_), at + strlen(old), hlen - pre - strlen(old));
    memcpy(out + 8 + nh, buf + 8 + hlen, n - 8 - hlen);
    write_file(p, out, 8 + nh + (n - 8 - hlen));
    free(out);
    free(hdr);
    free(buf);
}

/* Overwrite element `at` of an F32 tensor in model.safetensors with value v. */
static void poke_f32(const char *dir, const char *tensor, size_t at, float v)
{
    char p[600];
    size_t n;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unsigned char *buf = read_file(p, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    cJSON *h = cJSON_ParseWithLength((const char *)buf + 8, hlen);
    cJSON *t = cJSON_GetObjectItem(h, tensor);
    REQUIRE(t, "%s: no tensor %s", p, tensor);
    size_t off = 8 + hlen + (size_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valuedouble;
    memcpy(buf + off + 4 * at, &v, 4);
    write_file(p, buf, n);
    cJSON_Delete(h);
    free(buf);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_errors PATH_TO_LSA");
    lsa_bin = argv[1];
    const char *llama = t_shared("fixtures/tiny-llama");
    snprintf(tmp, sizeof tmp, "/tmp/lsa-test-errors-%d", (int)getpid());
    REQUIRE(mkdir(tmp, 0755) == 0, "mkdir %s", tmp);
    char arg[1024];
    const char *d;

    d = model_copy("no-config", llama);
    snprintf(arg, sizeof arg, "%s/config.json", d);
    unlink(arg);
    expect_load_error(d, d, "config.json is missing");
    snprintf(arg, sizeof arg, "info %s", d);
    expect_cli_error(arg, "config.json is missing");

    d = model_copy("unknown-arch", llama);
    set_config(d, "model_type", cJSON_CreateString("mamba"));
    expect_load_error(d, "config.json", "unknown model_type \"mamba\"");
    snprintf(arg, sizeof arg, "info %s", d);
    expect_cli_error(arg, "unknown model_type");

    d = model_copy("truncated", llama);
    snprintf(arg, sizeof arg, "%s/model.safetensors", d);
    REQUIRE(truncate(arg, 500000) == 0, "truncate");
    expect_load_error(d, "model.safetensors", "truncated?");
    snprintf(arg, sizeof arg, "run %s --prompt hi", d);
    expect_cli_error(arg, "model.safetensors");

    d = model_copy("short-file", llama);
    snprintf(arg, sizeof arg, "%s/model.safetensors", d);
    REQUIRE(truncate(arg, 5) == 0, "truncate");
    expect_load_error(d, "model.safetensors", "truncated safetensors file");

    d = model_copy("header-past-end", llama);
    snprintf(arg, sizeof arg, "%s/model.safetensors", d);
    {
        FILE *f = fopen(arg, "r+b");
        unsigned char big[8] = {0, 0, 0, 0x10, 0, 0, 0, 0};
        fwrite(big, 1, 8, f);
        fclose(f);
    }
    expect_load_error(d, "model.safetensors", "header length 268435456 runs past the end of the file");
    snprintf(arg, sizeof arg, "info %s", d);
    expect_cli_error(arg, "runs past the end");

    d = model_copy("bad-json-header", llama);
    edit_header(d, "{", "[");
    expect_load_error(d, "model.safetensors", "header is not a JSON object");

    d = model_copy("wrong-shape", llama);
    set_config(d, "intermediate_size", cJSON_CreateNumber(100));
    expect_load_error(d, "model.safetensors", "has shape [176,64], config says [100,64]");
    snprintf(arg, sizeof arg, "info %s", d);
    expect_cli_error(arg, "config says");

    d = model_copy("missing-tensor", llama);
    edit_header(d, "model.norm.weight", "model.nrm.weight");
    expect_load_error(d, "model.safetensors", "tensor model.norm.weight is missing");

    d = model_copy("unsupported-dtype", llama);
    edit_header(d, "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64]", "\"model.norm.weight\":{\"dtype\":\"I32\",\"shape\":[64]");
    expect_load_error(d, "model.safetensors", "dtype I32");

    d = model_copy("unknown-dtype", llama);
    edit_header(d, "\"model.norm.weight\":{\"dtype\":\"F32\"", "\"model.norm.weight\":{\"dtype\":\"Q9\"");
    expect_load_error(d, "model.safetensors", "unknown dtype Q9");

    d = model_copy("zero-heads", llama);
    set_config(d, "num_attention_heads", cJSON_CreateNumber(0));
    expect_load_error(d, "config.json", "must all be > 0");

    d = model_copy("heads-not-divisible", llama);
    set_config(d, "num_key_value_heads", cJSON_CreateNumber(3));
    expect_load_error(d, "config.json", "not a multiple of 3 key/value heads");

    d = model_copy("yarn", llama);
    {
        cJSON *rp = cJSON_CreateObject();
        cJSON_AddStringToObject(rp, "rope_type", "yarn");
        cJSON_AddNumberToObject(rp, "factor", 4);
        cJSON_AddNumberToObject(rp, "rope_theta", 10000);
        set_config(d, "rope_parameters", rp);
    }
    expect_load_error(d, "config.json", "rope scaling type \"yarn\" is not implemented");

    d = model_copy("bad-config-json", llama);
    snprintf(arg, sizeof arg, "%s/config.json", d);
    write_file(arg, "{\"model_type\": ", 15);
    expect_load_error(d, "config.json", "not a valid JSON object");

    d = model_copy("bad-tokenizer-json", llama);
    snprintf(arg, sizeof arg, "%s/tokenizer.json", d);
    write_file(arg, "{\"model\": [", 11);
    expect_load_error(d, "tokenizer.json", "");

    expect_load_error("/nonexistent/model/dir", "/nonexistent/model/dir", "no such file or directory");
    expect_cli_error("info /nonexistent/model/dir", "/nonexistent/model/dir");

    /* invalid UTF-8 text */
    snprintf(arg, sizeof arg, "%s/bad-utf8.txt", tmp);
    write_file(arg, "Once upon \xff\xfe a time", 20);
    char a2[2048];
    snprintf(a2, sizeof a2, "run %s --text %s", llama, arg);
    expect_cli_error(a2, "bad-utf8.txt");
    snprintf(a2, sizeof a2, "run %s --prompt \"$(printf 'ok \\303\\050')\"", llama);
    expect_cli_error(a2, "UTF-8");
    snprintf(a2, sizeof a2, "run %s --text /nonexistent/story.txt", llama);
    expect_cli_error(a2, "/nonexistent/story.txt");

    /* NaN in a weight: the capture stops and says where, unless --allow-nonfinite */
    d = model_copy("nan-weight", llama);
    poke_f32(d, "model.layers.1.mlp.down_proj.weight", 5, NAN);
    snprintf(a2, sizeof a2, "capture --model %s --prompt 'Once upon a time' --out %s/nan.h5", d, tmp);
    expect_cli_error(a2, "non-finite activation (NaN) after layer 1 (plan position 1) at token 0");
    snprintf(a2, sizeof a2, "%s/nan.h5", tmp);
    CHECK(access(a2, F_OK) != 0, "a capture that stopped on NaN left %s", a2);
    snprintf(a2, sizeof a2, "%s capture --quiet --allow-nonfinite --model %s --prompt 'Once upon a time' --out %s/nan.h5",
             lsa_bin, d, tmp);
    CHECK(system(a2) == 0, "--allow-nonfinite capture failed");

    /* bad plans are usage-level input errors with a clear message */
    snprintf(a2, sizeof a2, "run %s --prompt hi --skip 9", llama);
    expect_cli_error(a2, "--skip 9: layer 9 is out of range 0..3");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (!t_failures) CHECK(system(cmd) == 0, "cleanup");
    return t_finish("test_errors");
}
