/*
 * test_llama2c — llama2.c checkpoints and tokenizer.bin, and the score-based SentencePiece tokenizers built
 * by lsa_tokenizer_from_parts.
 *   1. stories260K.bin: header as documented; every weight equal to stories260K.gguf's (bit for bit).
 *   2. tok512.bin and the GGUF vocabulary give the ids of the HF tokenizer.json of the same model on every
 *      string of ../shared/fixtures/tokenizer-sp.h5 and the golden texts, and decode back to the text;
 *      "Once upon a time" is [1, 403, 407, 261, 378] as llama2.c's run.c gives it.
 *   3. An untied classifier (negative vocab_size) written here loads and runs.
 *   4. Bad inputs (generated here) give one-line errors naming the file: truncated checkpoint, size that
 *      disagrees with the header, impossible header, the "ak42" export format, a tokenizer for another
 *      vocabulary, --tokenizer with a GGUF; a .bin alone in a folder loads without a tokenizer.
 *   5. lsa info / run with --tokenizer.
 * Usage: test_llama2c OUT_DIR LSA_BINARY
 */
#include "lsa/forward.h"
#include "lsa/gguf.h"
#include "lsa/h5.h"
#include "lsa/llama2c.h"
#include "model_impl.h"
#include "testutil.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char dir[512];

static void *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(*n + 64);
    REQUIRE(fread(p, 1, *n, f) == *n, "short read %s", path);
    fclose(f);
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot write %s", path);
    REQUIRE(fwrite(p, 1, n, f) == n, "short write %s", path);
    fclose(f);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][700];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* ================================================================ 1. weights */

static void test_weights(void)
{
    const char *bin = t_shared("models/stories260K/stories260K.bin");
    struct lsa_llama2c_config c;
    REQUIRE(lsa_llama2c_read_config(bin, &c) == 0, "%s", lsa_errmsg());
    CHECK(c.dim == 64 && c.hidden_dim == 172 && c.n_layers == 5 && c.n_heads == 8 && c.n_kv_heads == 4 &&
              c.vocab_size == 512 && c.seq_len == 512 && c.shared_classifier,
          "header: %d %d %d %d %d %d %d", c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
          c.seq_len);
    struct lsa_model *a = lsa_model_load(bin), *b = lsa_model_load(t_shared("models/stories260K/stories260K.gguf"));
    REQUIRE(a && b, "load: %s", lsa_errmsg());
    CHECK(lsa_model_tokenizer(a) != NULL, "tok512.bin beside the checkpoint should be found");
    CHECK(lsa_model_n_params(a) == 260032, "parameters %lld (want 260032)", (long long)lsa_model_n_params(a));
    size_t d = 64, kv = 32, ff = 172, bad = 0, n = 0;
#define SAME(x, y, cnt) (n++, bad += memcmp((x), (y), (cnt) * sizeof(float)) != 0)
    SAME(a->tok_embd.f32, b->tok_embd.f32, 512 * d);
    SAME(a->head.f32, b->head.f32, 512 * d);
    SAME(a->final_norm.w, b->final_norm.w, d);
    for (int l = 0; l < 5; l++) {
        const struct lsa_layer_w *x = &a->layers[l], *y = &b->layers[l];
        SAME(x->q.w.f32, y->q.w.f32, d * d);
        SAME(x->k.w.f32, y->k.w.f32, kv * d);
        SAME(x->v.w.f32, y->v.w.f32, kv * d);
        SAME(x->o.w.f32, y->o.w.f32, d * d);
        SAME(x->gate.w.f32, y->gate.w.f32, ff * d);
        SAME(x->up.w.f32, y->up.w.f32, ff * d);
        SAME(x->down.w.f32, y->down.w.f32, ff * d);
        SAME(x->attn_norm.w, y->attn_norm.w, d);
        SAME(x->mlp_norm.w, y->mlp_norm.w, d);
    }
    CHECK(bad == 0, "%zu of %zu weight arrays of stories260K.bin differ from stories260K.gguf", bad, n);
    printf("stories260K.bin: header ok, %zu weight arrays equal to the GGUF's (bitwise)\n", n);
    lsa_model_free(a);
    lsa_model_free(b);
}

/* ================================================================ 2. tokenizers */

/* Encode text (with BOS) and compare with want; decode(skip_special) must give `back` (NULL: the text). */
static int encode_cmp(const struct lsa_tokenizer *tok, const char *what, const char *text, const int64_t *want,
                      size_t n_want, const char *back_want)
{
    if (!back_want) back_want = text;
    int32_t *ids;
    size_t n;
    int rc = lsa_tokenizer_encode(tok, text, strlen(text), true, &ids, &n);
    CHECK(rc == 0, "%s: encode: %s", what, lsa_errmsg());
    if (rc) return 0;
    size_t k = 0;
    while (k < n && k < n_want && ids[k] == want[k]) k++;
    bool ok = k == n && k == n_want;
    CHECK(ok, "%s: \"%s\": %zu ids vs %zu expected, first difference at %zu (%d vs %lld)", what, text, n, n_want, k,
          k < n ? ids[k] : -1, k < n_want ? (long long)want[k] : -1LL);
    char *back;
    size_t len;
    if (ok && lsa_tokenizer_decode(tok, ids, n, true, &back, &len) == 0) {
        ok = len == strlen(back_want) && !memcmp(back, back_want, len);
        CHECK(ok, "%s: decode of \"%s\" gave \"%s\", want \"%s\"", what, text, back, back_want);
        free(back);
    }
    free(ids);
    return ok;
}

static void check_h5(const struct lsa_tokenizer *tok, const char *what, const char *file, const char *group,
                     const char *ids_name)
{
    struct lsa_h5 *f = lsa_h5_open(t_shared(file));
    REQUIRE(f, "%s", lsa_errmsg());
    char **names;
    size_t n_names;
    REQUIRE(lsa_h5_list(f, group, &names, &n_names) == 0, "%s", lsa_errmsg());
    int ok = 0;
    for (size_t g = 0; g < n_names; g++) {
        char obj[256], dset[300];
        snprintf(obj, sizeof obj, "%s%s%s", strcmp(group, "/") ? group : "", strcmp(group, "/") ? "/" : "", names[g]);
        snprintf(dset, sizeof dset, "%s/%s", obj, ids_name);
        char *text;
        int64_t *want;
        size_t n_want;
        REQUIRE(lsa_h5_attr_str(f, obj, "text", &text) == 0 && lsa_h5_read_i64(f, dset, &want, &n_want) == 0, "%s",
                lsa_errmsg());
        ok += encode_cmp(tok, what, text, want, n_want, NULL);
        free(text);
        free(want);
    }
    printf("  %-12s %-38s %3d/%zu strings: ids of tokenizer.json, decode round trip\n", what, file, ok, n_names);
    CHECK(n_names > 0, "%s: no strings", file);
    lsa_h5_free_names(names, n_names);
    lsa_h5_close(f);
}

static void test_tokenizers(void)
{
    struct lsa_tokenizer *bin = lsa_llama2c_tokenizer_load(t_shared("models/stories260K/tok512.bin"), 512);
    REQUIRE(bin, "%s", lsa_errmsg());
    struct lsa_model *g = lsa_model_load(t_shared("models/stories260K/stories260K.gguf"));
    REQUIRE(g && lsa_model_tokenizer(g), "%s", lsa_errmsg());
    const struct lsa_tokenizer *gg = lsa_model_tokenizer(g);
    static const int64_t once[] = {1, 403, 407, 261, 378};
    CHECK(encode_cmp(bin, "tok512.bin", "Once upon a time", once, 5, NULL), "run.c's ids for \"Once upon a time\"");
    CHECK(encode_cmp(gg, "gguf", "Once upon a time", once, 5, NULL), "run.c's ids for \"Once upon a time\"");
    int same = 0;
    for (int32_t i = 0; i < 512; i++) {
        const char *x = lsa_tokenizer_piece(bin, i), *y = lsa_tokenizer_piece(gg, i);
        same += x && y && !strcmp(x, y);
    }
    CHECK(same == 512, "tok512.bin pieces (spaces restored to U+2581, <s>, </s>) equal the GGUF's: %d/512", same);
    CHECK(lsa_tokenizer_bos(bin) == 1 && lsa_tokenizer_eos(bin) == 2 && lsa_tokenizer_adds_bos(bin), "bos/eos");
    printf("tokenizers from parts (score-based merges) against tokenizer.json ids:\n");
    const struct lsa_tokenizer *toks[2] = {bin, gg};
    const char *names[2] = {"tok512.bin", "stories.gguf"};
    for (int k = 0; k < 2; k++) {
        check_h5(toks[k], names[k], "fixtures/tokenizer-sp.h5", "/", "ids");
        check_h5(toks[k], names[k], "fixtures/stories260K-hf/golden.h5", "texts", "input_ids");
        check_h5(toks[k], names[k], "fixtures/tiny-llama/golden.h5", "tokenizer", "ids");
    }
    /* a special token in the text is matched, as tokenizer.json's added tokens are */
    static const int64_t with_eos[] = {1, 403, 2};
    CHECK(encode_cmp(bin, "tok512.bin", "Once</s>", with_eos, 3, "Once"), "</s> in text");
    lsa_tokenizer_free(bin);
    lsa_model_free(g);
}

/* ================================================================ 3. untied classifier */

static void test_untied(void)
{
    size_t n;
    unsigned char *p = slurp(t_shared("models/stories260K/stories260K.bin"), &n);
    /* vocab_size -512, then the embedding appended again as the classifier */
    int32_t v = -512;
    memcpy(p + 20, &v, 4);
    unsigned char *q = malloc(n + 512 * 64 * 4);
    memcpy(q, p, n);
    memcpy(q + n, p + 28, 512 * 64 * 4);
    const char *path = tmp_path("untied.bin");
    write_file(path, q, n + 512 * 64 * 4);
    struct lsa_model *u = lsa_llama2c_load(path, t_shared("models/stories260K/tok512.bin"));
    struct lsa_model *t = lsa_model_load(t_shared("models/stories260K/stories260K.bin"));
    REQUIRE(u && t, "load untied: %s", lsa_errmsg());
    CHECK(!lsa_model_arch(u)->tied_head && u->head.f32 != u->tok_embd.f32, "negative vocab_size should give an untied head");
    int32_t ids[6] = {1, 403, 407, 261, 378, 11};
    float nu[6], nt[6];
    struct lsa_fwd *fu = lsa_fwd_new(u, 6), *ft = lsa_fwd_new(t, 6);
    struct lsa_fwd_request ru = {.nll = nu}, rt = {.nll = nt};
    REQUIRE(fu && ft && lsa_fwd_run(fu, ids, 6, &ru) == 0 && lsa_fwd_run(ft, ids, 6, &rt) == 0, "%s", lsa_errmsg());
    /* nll holds n_tok - 1 values; the last float of each array is never written */
    CHECK(!memcmp(nu, nt, 5 * sizeof nu[0]), "an untied classifier equal to the embedding gives the tied model's nll");
    printf("untied classifier: loads, nll equal to the tied model's (%.4f ...)\n", nu[0]);
    lsa_fwd_free(fu);
    lsa_fwd_free(ft);
    lsa_model_free(u);
    lsa_model_free(t);
    free(q);
    free(p);
}

/* ================================================================ 4. bad input */

static void expect_error(const char *label, struct lsa_model *m, const char *file, const char *phrase)
{
    CHECK(!m, "%s: loaded although it should fail", label);
    lsa_model_free(m);
    const char *msg = lsa_errmsg();
    CHECK(strstr(msg, file) && strstr(msg, phrase) && !strchr(msg, '\n'), "%s: message should name %s and say '%s': "
          "%s", label, file, phrase, msg);
    printf("  ok %-24s %s\n", label, msg);
}

static void test_bad(void)
{
    size_t n, nt;
    unsigned char *p = slurp(t_shared("models/stories260K/stories260K.bin"), &n);
    unsigned char *tk = slurp(t_shared("models/stories260K/tok512.bin"), &nt);
    const char *path = tmp_path("bad.bin"), *tok = t_shared("models/stories260K/tok512.bin");
    printf("bad input:\n");
    write_file(path, p, n - 100);
    expect_error("truncated", lsa_llama2c_load(path, tok), path, "implies 1056540");
    write_file(path, p, 10);
    expect_error("truncated header", lsa_llama2c_load(path, tok), path, "truncated");
    unsigned char *c = malloc(n + 8);
    memcpy(c, p, n);
    int32_t zero = 0, big = 1 << 22;
    memcpy(c + 8, &zero, 4);
    write_file(path, c, n);
    expect_error("n_layers 0", lsa_llama2c_load(path, tok), path, "n_layers is 0");
    memcpy(c, p, n);
    memcpy(c + 24, &big, 4);
    write_file(path, c, n);
    expect_error("seq_len huge", lsa_llama2c_load(path, tok), path, "seq_len");
    memcpy(c, "ak42", 4);
    write_file(path, c, n);
    expect_error("export v1", lsa_llama2c_load(path, tok), path, "not supported");
    memcpy(c, p, n);
    memcpy(c + 4 * 3, &(int32_t){7}, 4); /* 7 heads do not divide dim 64 */
    write_file(path, c, n);
    expect_error("heads", lsa_llama2c_load(path, tok), path, "do not divide");
    write_file(path, p, n);
    const char *short_tok = tmp_path("tok-short.bin");
    write_file(short_tok, tk, nt - 40);
    expect_error("tokenizer truncated", lsa_llama2c_load(path, short_tok), short_tok, "truncated");
    write_file(short_tok, tk, 2);
    expect_error("tokenizer header", lsa_llama2c_load(path, short_tok), short_tok, "truncated");
    unsigned char *tk2 = malloc(nt + 16);
    memcpy(tk2, tk, nt);
    memcpy(tk2 + nt, "\0\0\0\0\1\0\0\0x", 9);
    write_file(short_tok, tk2, nt + 9);
    expect_error("tokenizer too long", lsa_llama2c_load(path, short_tok), short_tok, "more than the model's 512");
    const char *gguf = t_shared("models/stories260K/stories260K.gguf");
    expect_error("--tokenizer with gguf", lsa_llama2c_load(gguf, tok), gguf, "only used with llama2.c");
    /* alone in a folder: loads, without a tokenizer */
    struct lsa_model *m = lsa_model_load(path);
    CHECK(m && !lsa_model_tokenizer(m), "a .bin alone should load without a tokenizer: %s", m ? "" : lsa_errmsg());
    lsa_model_free(m);
    free(tk2);
    free(c);
    free(p);
    free(tk);
}

/* ================================================================ 5. CLI */

static void test_cli(const char *lsa)
{
    char cmd[2048], out[8192];
    const char *bin = tmp_path("bad.bin"); /* the valid copy left by test_bad, no tokenizer beside it */
    snprintf(cmd, sizeof cmd, "%s run %s --tokenizer ../shared/models/stories260K/tok512.bin --prompt 'Once upon a "
             "time' --quiet 2>&1", lsa, bin);
    FILE *p = popen(cmd, "r");
    REQUIRE(p, "popen");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    CHECK(st == 0 && strstr(out, "tokens 5"), "lsa run --tokenizer: %s", out);
    printf("lsa run --tokenizer: %s", out);
    snprintf(cmd, sizeof cmd, "%s run %s --prompt x 2>&1", lsa, bin);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    st = pclose(p);
    CHECK(WEXITSTATUS(st) == 1 && !strncmp(out, "lsa: error: ", 12) && strstr(out, "--tokenizer"), "lsa run without a "
          "tokenizer: %s", out);
    printf("lsa run, no tokenizer: %s", out);
    snprintf(cmd, sizeof cmd, "%s info %s --tokenizer ../shared/models/stories260K/tok512.bin 2>&1", lsa, bin);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    st = pclose(p);
    CHECK(st == 0 && strstr(out, "tokenizer     bpe-sentencepiece, 512 ids"), "lsa info --tokenizer: %s", out);
    snprintf(cmd, sizeof cmd, "%s capture --model %s --tokenizer ../shared/models/stories260K/tok512.bin --prompt "
             "'Once upon a time' --out %s --quiet", lsa, bin, tmp_path("cap.h5"));
    CHECK(system(cmd) == 0, "lsa capture --tokenizer: %s", cmd);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 3, "usage: test_llama2c OUT_DIR LSA_BINARY");
    snprintf(dir, sizeof dir, "%s", argv[1]);
    mkdir(dir, 0755);
    test_weights();
    test_tokenizers();
    test_untied();
    test_bad();
    test_cli(argv[2]);
    return t_finish("test_llama2c");
}
