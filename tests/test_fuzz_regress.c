/*
 * test_fuzz_regress — what fuzzing found (tests/fuzz), kept as regression tests. Each case rebuilds the
 * kind of input that once crashed a reader or broke its error message, feeds it to the fuzz target's own
 * entry point (compiled here without libFuzzer, so the target's checks run: one-line messages, ids in
 * range, no NaN returned), and checks the message the reader gives now. Under the ASan+UBSan build the
 * memory errors these inputs caused would abort the test.
 * Usage: test_fuzz_regress (from the repository root, ../shared beside it)
 */
#include "lsa/capture_read.h"
#include "lsa/h5.h"
#include "lsa/llama2c.h"
#include "lsa/model.h"
#include "lsa/safetensors.h"
#include "lsa/tokenizer.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

int fuzz_safetensors_one(const uint8_t *data, size_t size);
int fuzz_config_one(const uint8_t *data, size_t size);
int fuzz_tokenizer_json_one(const uint8_t *data, size_t size);
int fuzz_tokenizer_encode_one(const uint8_t *data, size_t size);
int fuzz_gguf_one(const uint8_t *data, size_t size);
int fuzz_llama2c_one(const uint8_t *data, size_t size);
int fuzz_capture_read_one(const uint8_t *data, size_t size);

static char tmp[256];

static const char *write_tmp(const char *name, const void *data, size_t n)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", tmp, name);
    FILE *f = fopen(p, "wb");
    REQUIRE(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", p);
    return p;
}

/* The message is one printable line containing phrase. */
static void check_msg(const char *label, const char *phrase)
{
    const char *m = lsa_errmsg();
    bool printable = true;
    for (const char *p = m; *p; p++) printable &= (unsigned char)*p >= 0x20 && *p != 0x7f;
    CHECK(printable && strstr(m, phrase), "%s: want one printable line containing '%s', got: %s", label, phrase, m);
    printf("  ok %s: %s\n", label, m);
}

/* An 8-byte length + JSON header safetensors file (no data). */
static size_t st_bytes(uint8_t *out, const char *json)
{
    size_t n = strlen(json);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(out + 8, json, n);
    return 8 + n;
}

/* Finding 1 (fuzz_safetensors, fuzz_config, fuzz_gguf): names and values quoted from a hostile file put
 * newlines and terminal escapes into the one-line error message. Fixed in src/error.c: control characters
 * in messages become '?'. */
static void names_with_control_characters(void)
{
    uint8_t buf[512];
    size_t n = st_bytes(buf + 1, "{\"a\\nlsa: error: b\\u001b[2J\":"
                                 "{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,4]}}");
    buf[0] = 0;
    fuzz_safetensors_one(buf, n + 1);
    CHECK(lsa_st_open(write_tmp("ctl.safetensors", buf + 1, n)) == NULL, "tensor with unknown dtype opened");
    check_msg("safetensors tensor name with a newline", "tensor a?lsa: error: b?[2J has unknown dtype Q9");

    const char *cfg = "{\"model_type\": \"llama\\r\\nfake\", \"hidden_size\": 8}";
    fuzz_config_one((const uint8_t *)cfg, strlen(cfg));
    struct lsa_arch a;
    CHECK(lsa_arch_from_config(write_tmp("config.json", cfg, strlen(cfg)), &a) != 0, "config accepted");
    check_msg("config model_type with CR LF", "unknown model_type \"llama??fake\"");

    static const uint8_t gguf[] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                   /* key "general.architecture", type string, value "ab\ncd" */
                                   20, 0, 0, 0, 0, 0, 0, 0, 'g', 'e', 'n', 'e', 'r', 'a', 'l', '.', 'a', 'r', 'c', 'h',
                                   'i', 't', 'e', 'c', 't', 'u', 'r', 'e', 8, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 'a',
                                   'b', '\n', 'c', 'd'};
    fuzz_gguf_one(gguf, sizeof gguf);
    CHECK(lsa_model_load(write_tmp("ctl.gguf", gguf, sizeof gguf)) == NULL, "gguf with unknown architecture loaded");
    check_msg("gguf architecture with a newline", "GGUF architecture \"ab?cd\" is not supported");
}

/* Finding 2 (fuzz_tokenizer_json, fuzz_tokenizer_encode, fuzz_llama2c): decoding ids whose pieces are all
 * empty computed NULL + 0 (undefined behaviour, clang's UBSan reports it) in the decoder chain. Fixed in
 * src/tokenizer.c: a string list's buffer always exists. */
static void decode_empty_pieces(void)
{
    const char *json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\":0,\"a\":1},\"merges\":[]},"
                       "\"decoder\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"x\"},\"content\":\"y\"}}";
    fuzz_tokenizer_json_one((const uint8_t *)json, strlen(json));
    struct lsa_tokenizer *tok = lsa_tokenizer_load(write_tmp("tokenizer.json", json, strlen(json)));
    CHECK(tok != NULL, "tokenizer with an empty piece: %s", lsa_errmsg());
    if (tok) {
        int32_t ids[3] = {0, 0, 0};
        char *s = NULL;
        size_t len = 99;
        CHECK(lsa_tokenizer_decode(tok, ids, 3, false, &s, &len) == 0 && s && len == 0,
              "decoding three empty pieces: rc %s, len %zu", lsa_errmsg(), len);
        free(s);
        lsa_tokenizer_free(tok);
    }
    fuzz_tokenizer_encode_one((const uint8_t *)"", 0); /* encode "" (BOS only), decode it */
    printf("  ok decode of empty pieces\n");
}

/* Finding 3 (fuzz_llama2c): a vocab_size of INT32_MIN was negated (signed overflow) before the range check.
 * Fixed in src/llama2c.c: every field is range-checked first. */
static void llama2c_int_min_vocab(void)
{
    int32_t h[7] = {8, 16, 1, 2, 2, INT32_MIN, 8};
    uint8_t buf[1 + sizeof h];
    buf[0] = 0;
    memcpy(buf + 1, h, sizeof h);
    fuzz_llama2c_one(buf, sizeof buf);
    struct lsa_llama2c_config c;
    CHECK(lsa_llama2c_read_config(write_tmp("m.bin", h, sizeof h), &c) == LSA_EFORMAT, "INT32_MIN vocab accepted");
    check_msg("llama2.c vocab_size INT32_MIN", "header field vocab_size is -2147483648");
}

/* Finding 4 (fuzz_capture_read): a string attribute stored as an array of strings was read into a single
 * pointer (stack overflow inside H5Aread). Fixed in src/h5.c: lsa_h5_attr_str wants exactly one value. */
static void string_attribute_array(void)
{
    const char *path = write_tmp("cap.h5", "", 0);
    struct lsa_h5w *w = lsa_h5w_create(path);
    REQUIRE(w, "%s", lsa_errmsg());
    const char *v[3] = {"lsa-capture", "lsa-capture", "x"};
    lsa_h5w_attr_strs(w, "/", "format", v, 3);
    CHECK(lsa_h5w_close(w) == 0, "%s", lsa_errmsg());
    struct lsa_h5 *f = lsa_h5_open(path);
    char *val = NULL;
    CHECK(f && lsa_h5_attr_str(f, "/", "format", &val) == LSA_EFORMAT && !val, "3 strings read as one");
    check_msg("format attribute holding 3 strings", "attribute format on / holds 3 values, expected one string");
    lsa_h5_close(f);
    CHECK(lsa_capture_read_open(path) == NULL, "a capture with a 3-string format attribute opened");
    check_msg("capture with a 3-string format", "not an lsa capture");
    /* the same through the fuzz recipe: shape bytes, then format = string array of 3 */
    static const uint8_t recipe[] = {1, 2, 1, 0, 4, 0, 3};
    fuzz_capture_read_one(recipe, sizeof recipe);
}

/* A GGUF writer just big enough for a one-layer llama with a 4-token vocabulary. */
struct gbuf {
    uint8_t p[8192];
    size_t n;
};
static void g_put(struct gbuf *b, const void *d, size_t n)
{
    if (b->n + n > sizeof b->p) {
        fprintf(stderr, "FAIL: gguf buffer full\n");
        exit(1);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void g_u32(struct gbuf *b, uint32_t v) { g_put(b, &v, 4); }
static void g_u64(struct gbuf *b, uint64_t v) { g_put(b, &v, 8); }
static void g_str(struct gbuf *b, const char *s)
{
    g_u64(b, strlen(s));
    g_put(b, s, strlen(s));
}
static void g_kv_u32(struct gbuf *b, const char *k, uint32_t v)
{
    g_str(b, k);
    g_u32(b, 4);
    g_u32(b, v);
}

/* Finding 5 (fuzz_gguf, after 461 s): tokenizer.ggml.token_type stored as float32 with a NaN was cast to
 * int32 (undefined behaviour). Fixed in src/gguf_model.c: token types must be integral int32 values, scores
 * finite floats. */
static const struct gbuf *tiny_gguf(const float types[4])
{
    static const char *names[] = {"token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight",
                                  "blk.0.ffn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
                                  "blk.0.attn_v.weight", "blk.0.attn_output.weight", "blk.0.ffn_gate.weight",
                                  "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"};
    static const uint64_t ne[][2] = {{8, 4}, {8, 1}, {8, 1}, {8, 1}, {8, 8}, {8, 8}, {8, 8}, {8, 8}, {8, 16},
                                     {8, 16}, {16, 8}};
    static struct gbuf b;
    b.n = 0;
    g_put(&b, "GGUF", 4);
    g_u32(&b, 3);
    g_u64(&b, 11);
    g_u64(&b, 10);
    g_str(&b, "general.architecture");
    g_u32(&b, 8);
    g_str(&b, "llama");
    g_kv_u32(&b, "llama.block_count", 1);
    g_kv_u32(&b, "llama.embedding_length", 8);
    g_kv_u32(&b, "llama.feed_forward_length", 16);
    g_kv_u32(&b, "llama.attention.head_count", 2);
    g_kv_u32(&b, "llama.context_length", 16);
    g_str(&b, "tokenizer.ggml.model");
    g_u32(&b, 8);
    g_str(&b, "llama");
    g_str(&b, "tokenizer.ggml.tokens");
    g_u32(&b, 9);
    g_u32(&b, 8);
    g_u64(&b, 4);
    g_str(&b, "<unk>");
    g_str(&b, "<s>");
    g_str(&b, "</s>");
    g_str(&b, "\xe2\x96\x81" "a");
    g_str(&b, "tokenizer.ggml.token_type"); /* float32 array: 2, NaN, 3, 1 */
    g_u32(&b, 9);
    g_u32(&b, 6);
    g_u64(&b, 4);
    g_put(&b, types, 4 * sizeof *types);
    g_kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    uint64_t off = 0;
    for (int i = 0; i < 11; i++) {
        g_str(&b, names[i]);
        g_u32(&b, ne[i][1] == 1 ? 1 : 2);
        g_u64(&b, ne[i][0]);
        if (ne[i][1] != 1) g_u64(&b, ne[i][1]);
        g_u32(&b, 0); /* F32 */
        g_u64(&b, off);
        off += ne[i][0] * ne[i][1] * 4; /* multiples of 32 bytes: aligned */
    }
    static const uint8_t zeros[32];
    g_put(&b, zeros, (32 - b.n % 32) % 32);
    float one = 1.0f;
    for (uint64_t k = 0; k < off / 4; k++) g_put(&b, &one, 4);
    return &b;
}

static void gguf_nan_token_type(void)
{
    const float good[4] = {2, 3, 3, 1}, bad[4] = {2, NAN, 3, 1};
    const struct gbuf *b = tiny_gguf(good);
    struct lsa_model *m = lsa_model_load(write_tmp("good-types.gguf", b->p, b->n));
    CHECK(m && lsa_model_tokenizer(m), "the tiny GGUF itself should load: %s", lsa_errmsg());
    lsa_model_free(m);
    b = tiny_gguf(bad);
    fuzz_gguf_one(b->p, b->n);
    CHECK(lsa_model_load(write_tmp("nan-types.gguf", b->p, b->n)) == NULL, "a NaN token type was accepted");
    check_msg("GGUF token_type NaN (float32 array)", "tokenizer.ggml.token_type[1] is nan, not a token type");
}

/* Finding 6 (fuzz_config, in the 20 s CI run): a GPT-2 config without n_inner defaults it to 4 * n_embd,
 * computed before any range check, so n_embd = 730325137 overflowed an int. Fixed in src/config.c: the
 * default is only computed for a sane n_embd, and every dimension is bounded. */
static void gpt2_huge_n_embd(void)
{
    const char *cfg = "{\"model_type\": \"gpt2\", \"n_embd\": 730325137, \"vocab_size\": 50}";
    fuzz_config_one((const uint8_t *)cfg, strlen(cfg));
    struct lsa_arch a;
    CHECK(lsa_arch_from_config(write_tmp("config.json", cfg, strlen(cfg)), &a) == LSA_EFORMAT,
          "n_embd 730325137 accepted");
    check_msg("gpt2 n_embd 730325137", "intermediate size above 1048576, or vocab size above 16777216 (found 12, 730325137");
    const char *hd = "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 50, "
                     "\"head_dim\": 999999999}";
    fuzz_config_one((const uint8_t *)hd, strlen(hd));
    CHECK(lsa_arch_from_config(write_tmp("config.json", hd, strlen(hd)), &a) == LSA_EFORMAT,
          "head_dim 999999999 accepted");
    check_msg("llama head_dim 999999999", "head_dim has an invalid value");
}

int main(void)
{
    t_shared("fixtures/tiny-llama");
    snprintf(tmp, sizeof tmp, "/tmp/lsa-test-fuzz-regress-%d", (int)getpid());
    REQUIRE(mkdir(tmp, 0755) == 0, "mkdir %s", tmp);
    names_with_control_characters();
    decode_empty_pieces();
    llama2c_int_min_vocab();
    string_attribute_array();
    gguf_nan_token_type();
    gpt2_huge_n_embd();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (!t_failures) CHECK(system(cmd) == 0, "cleanup");
    return t_finish("test_fuzz_regress");
}
