/*
 * test_tokenizer.c — the tokenizer against what Hugging Face `tokenizers` produced for the fixtures:
 * ids for every string in ../shared/fixtures/tokenizer-{gpt2,sp}.h5 and the tokenizer/ and texts/
 * groups of tiny-{gpt2,llama}/golden.h5, decode round trips, added tokens inside text, tokenizer.json
 * variants written under /tmp (Metaspace pre-tokenizer, "a b" merges, no byte fallback), malformed
 * files, invalid UTF-8, and a 200 KB text that must encode fast.
 */
#include "lsa/h5.h"
#include "lsa/tokenizer.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Text with control chars and non-ASCII bytes escaped, for failure messages. */
static const char *show(const char *s, size_t n)
{
    static char buf[4][512];
    static int k;
    char *o = buf[k++ & 3];
    size_t j = 0;
    for (size_t i = 0; i < n && j + 8 < sizeof buf[0]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') o[j++] = (char)c;
        else j += (size_t)snprintf(o + j, sizeof buf[0] - j, "\\x%02x", c);
    }
    if (j + 8 >= sizeof buf[0]) j += (size_t)snprintf(o + j, sizeof buf[0] - j, "...");
    o[j] = '\0';
    return o;
}

/* Compare ids; on mismatch say where. Returns true when equal. */
static bool same_ids(const char *what, const char *text, const int32_t *got, size_t n_got, const int64_t *want,
                     size_t n_want)
{
    size_t i = 0;
    while (i < n_got && i < n_want && got[i] == want[i]) i++;
    bool ok = i == n_got && i == n_want;
    CHECK(ok, "%s: text \"%s\": ids differ at position %zu: got %d, expected %lld (lengths %zu vs %zu)", what,
          show(text, strlen(text)), i, i < n_got ? got[i] : -1, i < n_want ? (long long)want[i] : -1LL, n_got, n_want);
    return ok;
}

static void encode_ok(const struct lsa_tokenizer *tok, const char *text, size_t len, bool add_special, int32_t **ids,
                      size_t *n)
{
    int rc = lsa_tokenizer_encode(tok, text, len, add_special, ids, n);
    REQUIRE(rc == 0, "encode \"%s\" failed: %s", show(text, len), lsa_errmsg());
}

static char *decode_ok(const struct lsa_tokenizer *tok, const int32_t *ids, size_t n, bool skip, size_t *len)
{
    char *out = NULL;
    int rc = lsa_tokenizer_decode(tok, ids, n, skip, &out, len);
    REQUIRE(rc == 0, "decode failed: %s", lsa_errmsg());
    return out;
}

enum fix_kind { FIX_GPT2, FIX_SP };

/* Every group under `group` of an HDF5 fixture: attribute text, dataset ids_name. Encode must match; decode
 * must give the text back (GPT-2: always; SP: with skip_special, the BOS left out and the Strip decoder
 * removing the space that Prepend("▁") added; without skip_special, "<s>" then that space stays). */
static int check_h5(const struct lsa_tokenizer *tok, const char *file, const char *group, const char *ids_name,
                    enum fix_kind kind)
{
    struct lsa_h5 *f = lsa_h5_open(t_shared(file));
    REQUIRE(f, "open %s: %s", file, lsa_errmsg());
    char **names = NULL;
    size_t n_names = 0;
    REQUIRE(lsa_h5_list(f, group, &names, &n_names) == 0, "list %s in %s: %s", group, file, lsa_errmsg());
    int n_ok = 0;
    for (size_t g = 0; g < n_names; g++) {
        char obj[256], dset[300];
        snprintf(obj, sizeof obj, "%s%s%s", strcmp(group, "/") ? group : "", strcmp(group, "/") ? "/" : "", names[g]);
        snprintf(dset, sizeof dset, "%s/%s", obj, ids_name);
        char *text = NULL;
        int64_t *want = NULL;
        size_t n_want = 0;
        REQUIRE(lsa_h5_attr_str(f, obj, "text", &text) == 0, "%s: %s", file, lsa_errmsg());
        REQUIRE(lsa_h5_read_i64(f, dset, &want, &n_want) == 0, "%s: %s", file, lsa_errmsg());
        size_t len = strlen(text);

        int32_t *ids = NULL;
        size_t n = 0;
        encode_ok(tok, text, len, true, &ids, &n);
        char what[400];
        snprintf(what, sizeof what, "%s %s", file, obj);
        bool ok = same_ids(what, text, ids, n, want, n_want);

        size_t dlen;
        char *back = decode_ok(tok, ids, n, kind == FIX_SP, &dlen);
        CHECK(dlen == len && memcmp(back, text, len) == 0, "%s: decode gave \"%s\", expected \"%s\"", what,
              show(back, dlen), show(text, len));
        ok = ok && dlen == len && memcmp(back, text, len) == 0;
        free(back);
        if (kind == FIX_SP) {
            back = decode_ok(tok, ids, n, false, &dlen);
            char expect[4096];
            snprintf(expect, sizeof expect, "<s>%s%s", len ? " " : "", text);
            CHECK(strcmp(back, expect) == 0, "%s: decode(skip_special=false) gave \"%s\", expected \"%s\"", what,
                  show(back, dlen), show(expect, strlen(expect)));
            free(back);
        }
        n_ok += ok;
        free(ids);
        free(want);
        free(text);
    }
    printf("  %-38s %-10s %2d/%zu strings: ids identical, decode round trip exact\n", file, group, n_ok, n_names);
    lsa_h5_free_names(names, n_names);
    lsa_h5_close(f);
    return (int)n_names;
}

/* ---------------------------------------------------------------------------------------------------------
 * tokenizer.json variants
 * --------------------------------------------------------------------------------------------------------- */

static cJSON *read_json(const char *path)
{
    FILE *fp = fopen(path, "rb");
    REQUIRE(fp, "open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    REQUIRE(buf && fread(buf, 1, (size_t)n, fp) == (size_t)n, "read %s", path);
    fclose(fp);
    cJSON *j = cJSON_ParseWithLength(buf, (size_t)n);
    free(buf);
    REQUIRE(j, "parse %s", path);
    return j;
}

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    REQUIRE(fp && fputs(text, fp) >= 0 && fclose(fp) == 0, "write %s", path);
}

static const char *write_json(const char *name, const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    REQUIRE(s, "print json");
    const char *p = tmp_path(name);
    write_text(p, s);
    free(s);
    return p;
}

static void replace_item(cJSON *obj, const char *key, const char *json)
{
    cJSON *v = cJSON_Parse(json);
    REQUIRE(v, "bad test json %s", json);
    cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
}

static struct lsa_tokenizer *load_ok(const char *path)
{
    struct lsa_tokenizer *t = lsa_tokenizer_load(path);
    REQUIRE(t, "load %s: %s", path, lsa_errmsg());
    return t;
}

/* ids of text through tok (no specials) */
static size_t enc(const struct lsa_tokenizer *tok, const char *text, int32_t *out, size_t cap)
{
    int32_t *ids;
    size_t n;
    encode_ok(tok, text, strlen(text), false, &ids, &n);
    REQUIRE(n <= cap, "too many ids");
    memcpy(out, ids, n * sizeof *ids);
    free(ids);
    return n;
}

static bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && memcmp(a, b, na * sizeof *a) == 0;
}

/* The fixture strings encoded by a Metaspace variant must give the fixture ids, except that a text starting
 * with a space differs on purpose: Metaspace turns that space into the "▁" and prepends none, where the
 * Prepend normalizer adds one more. Such a text must give what the fixture tokenizer gives without the
 * space (or just "▁" for " "). */
static void check_sp_variant(const char *what, const struct lsa_tokenizer *tok, const struct lsa_tokenizer *sp)
{
    struct lsa_h5 *f = lsa_h5_open(t_shared("fixtures/tokenizer-sp.h5"));
    REQUIRE(f, "%s", lsa_errmsg());
    char **names;
    size_t n_names;
    REQUIRE(lsa_h5_list(f, "/", &names, &n_names) == 0, "%s", lsa_errmsg());
    int n_ok = 0;
    for (size_t g = 0; g < n_names; g++) {
        char *text;
        int64_t *want;
        size_t n_want, n;
        char dset[64];
        snprintf(dset, sizeof dset, "%s/ids", names[g]);
        REQUIRE(lsa_h5_attr_str(f, names[g], "text", &text) == 0 && lsa_h5_read_i64(f, dset, &want, &n_want) == 0,
                "%s", lsa_errmsg());
        int32_t *ids;
        encode_ok(tok, text, strlen(text), true, &ids, &n);
        if (text[0] == ' ') {
            int32_t *ref;
            size_t n_ref;
            encode_ok(sp, text + 1, strlen(text + 1), true, &ref, &n_ref);
            free(want);
            REQUIRE((want = malloc((n_ref + 1) * sizeof *want)), "oom");
            for (size_t i = 0; i < n_ref; i++) want[i] = ref[i];
            n_want = n_ref;
            if (!text[1]) want[n_want++] = 410; /* " " alone is "▁"; the normalizer leaves "" alone */
            free(ref);
        }
        n_ok += same_ids(what, text, ids, n, want, n_want);
        free(ids);
        free(want);
        free(text);
    }
    printf("  %-49s %2d/%zu strings: ids identical\n", what, n_ok, n_names);
    lsa_h5_free_names(names, n_names);
    lsa_h5_close(f);
}

/* Byte-level files of the Llama-3 / Qwen2 shape: the regex as a Split pre-tokenizer followed by ByteLevel
 * without its own regex. With GPT-2's regex that must be GPT-2. Also Digits. */
static void test_gpt2_variants(const struct lsa_tokenizer *gpt2)
{
    cJSON *j = read_json(t_shared("fixtures/tiny-gpt2/tokenizer.json"));
    replace_item(j, "pre_tokenizer",
                 "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                 "\"'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+| ?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
                 "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                 "\"trim_offsets\":true,\"use_regex\":false}]}");
    struct lsa_tokenizer *split = load_ok(write_json("gpt2_split.json", j));
    printf("  GPT-2 with Sequence[Split(GPT-2 regex, Isolated), ByteLevel(use_regex=false)]:\n");
    check_h5(split, "fixtures/tokenizer-gpt2.h5", "/", "ids", FIX_GPT2);

    replace_item(j, "pre_tokenizer",
                 "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                 "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}]}");
    struct lsa_tokenizer *digits = load_ok(write_json("gpt2_digits.json", j));
    int32_t a[64], b[64];
    size_t na = enc(digits, "x 2024!", a, 64), nb = 0;
    static const char *parts[] = {"x ", "2", "0", "2", "4", "!"};
    for (size_t i = 0; i < 6; i++) nb += enc(gpt2, parts[i], b + nb, 64 - nb);
    CHECK(ids_eq(a, na, b, nb), "Digits(individual) + ByteLevel on \"x 2024!\": %zu ids, pieces give %zu", na, nb);
    lsa_tokenizer_free(split);
    lsa_tokenizer_free(digits);
    cJSON_Delete(j);
}

static void test_variants(const struct lsa_tokenizer *sp)
{
    const char *src = t_shared("fixtures/tiny-llama/tokenizer.json");

    /* 1. Metaspace pre-tokenizer instead of the Prepend+Replace normalizer (newer Llama files). With
     * split false and prepend_scheme first it is the same pipeline; merges as "a b" strings too. */
    cJSON *j = read_json(src);
    replace_item(j, "normalizer", "null");
    replace_item(j, "pre_tokenizer",
                 "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\",\"split\":false}");
    cJSON *merges = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "model"), "merges");
    cJSON *legacy = cJSON_CreateArray();
    cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        char line[256];
        snprintf(line, sizeof line, "%s %s", m->child->valuestring, m->child->next->valuestring);
        cJSON_AddItemToArray(legacy, cJSON_CreateString(line));
    }
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "model"), "merges", legacy);
    struct lsa_tokenizer *ms = load_ok(write_json("metaspace_first.json", j));
    check_sp_variant("Metaspace(first, split=false), \"a b\" merges", ms, sp);
    CHECK(lsa_tokenizer_kind(ms) == LSA_TOK_SP_BPE, "Metaspace tokenizer kind %s", lsa_tokenizer_kind_name(ms));
    CHECK(lsa_tokenizer_eos(ms) == -1, "no tokenizer_config.json beside the variant: eos should be -1, got %d",
          lsa_tokenizer_eos(ms));

    /* With "first", a segment after an added token gets no "▁" (checked below); the normalizer gives one to
     * each segment. */
    int32_t a[256], b[256], c[256];
    size_t na = enc(ms, "<s>Hello world", a, 256), nb = enc(ms, "Hello world", b, 256);
    size_t nc = enc(sp, "Hello world", c, 256);
    CHECK(ids_eq(b, nb, c, nc), "Metaspace first: \"Hello world\" should match the normalizer's ids");
    cJSON_Delete(j);

    /* 2. prepend_scheme "always" (and the legacy add_prefix_space form) gives "▁" to every segment, like the
     * normalizer does. */
    j = read_json(src);
    replace_item(j, "normalizer", "null");
    replace_item(j, "pre_tokenizer", "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"add_prefix_space\":true,"
                                     "\"split\":false}");
    struct lsa_tokenizer *always = load_ok(write_json("metaspace_always.json", j));
    check_sp_variant("Metaspace(add_prefix_space=true, split=false)", always, sp);
    na = enc(always, "Hi</s>there you", a, 256);
    nb = enc(sp, "Hi</s>there you", b, 256);
    CHECK(ids_eq(a, na, b, nb), "Metaspace always vs normalizer differ on \"Hi</s>there you\"");
    cJSON_Delete(j);

    /* 3. split true: words are cut before each "▁" (MergedWithNext), so the result is the words
     * tokenized one by one. */
    j = read_json(src);
    replace_item(j, "normalizer", "null");
    replace_item(j, "pre_tokenizer",
                 "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"always\",\"split\":true}");
    replace_item(j, "decoder", "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"always\","
                               "\"split\":true}");
    struct lsa_tokenizer *split = load_ok(write_json("metaspace_split.json", j));
    replace_item(j, "pre_tokenizer",
                 "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"never\",\"split\":false}");
    struct lsa_tokenizer *word = load_ok(write_json("metaspace_never.json", j));
    na = enc(ms, "<s>Hello world", a, 256);
    nb = enc(word, "Hello world", b, 256);
    CHECK(na == nb + 1 && a[0] == 1 && ids_eq(a + 1, na - 1, b, nb),
          "Metaspace first: \"<s>Hello world\" should be [1] + ids of \"Hello\xe2\x96\x81world\"");
    static const char *words[][8] = {
        {"Once upon a  time", "\xe2\x96\x81Once", "\xe2\x96\x81upon", "\xe2\x96\x81" "a", "\xe2\x96\x81",
         "\xe2\x96\x81time", NULL},
        {" lead and trail  ", "\xe2\x96\x81lead", "\xe2\x96\x81" "and", "\xe2\x96\x81trail",
         "\xe2\x96\x81", "\xe2\x96\x81", NULL},
    };
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        na = enc(split, words[k][0], a, 256);
        nb = 0;
        for (size_t w = 1; words[k][w]; w++) nb += enc(word, words[k][w], b + nb, 256 - nb);
        CHECK(ids_eq(a, na, b, nb), "Metaspace split=true on \"%s\": %zu ids, words one by one give %zu",
              words[k][0], na, nb);
    }
    /* the Metaspace decoder drops every "▁" of the first token and turns the others into spaces */
    na = enc(split, "Hello world", a, 256);
    size_t dlen;
    char *d = decode_ok(split, a, na, true, &dlen);
    CHECK(strcmp(d, "Hello world") == 0, "Metaspace decoder gave \"%s\"", d);
    free(d);
    cJSON_Delete(j);

    /* 4. no byte fallback: unknown chars become <unk> (id 0), fused into one when fuse_unk is set. */
    j = read_json(src);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    replace_item(model, "byte_fallback", "false");
    struct lsa_tokenizer *fused = load_ok(write_json("nofallback_fused.json", j));
    replace_item(model, "fuse_unk", "false");
    struct lsa_tokenizer *unfused = load_ok(write_json("nofallback.json", j));
    const char *unknown = "\xc3\xaf\xc3\xaf\xc3\xaf" "e"; /* "ïïïe": ï is not in the vocabulary */
    na = enc(fused, unknown, a, 256);
    nb = enc(unfused, unknown, b, 256);
    CHECK(na == 3 && a[0] == 410 && a[1] == 0 && a[2] != 0, "fuse_unk: \"ïïïe\" should be [410, 0, e], got %zu ids", na);
    CHECK(nb == 5 && b[0] == 410 && b[1] == 0 && b[2] == 0 && b[3] == 0 && b[4] == a[2],
          "no fuse_unk: \"ïïïe\" should be [410, 0, 0, 0, e], got %zu ids", nb);
    cJSON_Delete(j);

    /* 5. tokenizer_config.json beside the file supplies EOS (and BOS when the post-processor has none). */
    j = read_json(src);
    replace_item(j, "post_processor", "null");
    const char *plain = write_json("tokenizer.json", j);
    write_text(tmp_path("tokenizer_config.json"), "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\"}");
    struct lsa_tokenizer *cfg = load_ok(plain);
    CHECK(lsa_tokenizer_bos(cfg) == 1 && lsa_tokenizer_eos(cfg) == 2 && !lsa_tokenizer_adds_bos(cfg),
          "config-only specials: bos %d eos %d adds_bos %d, expected 1 2 0", lsa_tokenizer_bos(cfg),
          lsa_tokenizer_eos(cfg), lsa_tokenizer_adds_bos(cfg));
    na = enc(cfg, "Hi", a, 256);
    int32_t *ids;
    size_t n;
    encode_ok(cfg, "Hi", 2, true, &ids, &n);
    CHECK(ids_eq(ids, n, a, na), "without a post-processor add_special adds nothing");
    free(ids);
    write_text(tmp_path("tokenizer_config.json"), "{\"eos_token\": ");
    struct lsa_tokenizer *bad = lsa_tokenizer_load(plain);
    CHECK(!bad && strstr(lsa_errmsg(), "tokenizer_config.json"), "a broken tokenizer_config.json should be named: %s",
          lsa_errmsg());
    lsa_tokenizer_free(bad);
    unlink(tmp_path("tokenizer_config.json")); /* the variants after this one have no config beside them */
    cJSON_Delete(j);

    lsa_tokenizer_free(ms);
    lsa_tokenizer_free(always);
    lsa_tokenizer_free(split);
    lsa_tokenizer_free(word);
    lsa_tokenizer_free(fused);
    lsa_tokenizer_free(unfused);
    lsa_tokenizer_free(cfg);
}

/* ---------------------------------------------------------------------------------------------------------
 * Bad input
 * --------------------------------------------------------------------------------------------------------- */

static void expect_load_fail(const char *path, const char *what, const char *needle1, const char *needle2)
{
    struct lsa_tokenizer *t = lsa_tokenizer_load(path);
    const char *msg = lsa_errmsg();
    CHECK(!t && strstr(msg, path) && strstr(msg, needle1) && (!needle2 || strstr(msg, needle2)),
          "%s: expected a failure naming %s and \"%s\"; got %s (%s)", what, path, needle1, t ? "success" : "failure", msg);
    if (!t) printf("  %-34s -> %s\n", what, msg);
    lsa_tokenizer_free(t);
}

static void test_bad_files(void)
{
    const char *src = t_shared("fixtures/tiny-llama/tokenizer.json");
    expect_load_fail(tmp_path("does-not-exist.json"), "missing file", "cannot open", NULL);
    write_text(tmp_path("bad.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,}}");
    expect_load_fail(tmp_path("bad.json"), "invalid JSON", "invalid JSON", NULL);
    write_text(tmp_path("empty.json"), "");
    expect_load_fail(tmp_path("empty.json"), "empty file", "invalid JSON", NULL);

    cJSON *j = read_json(src);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    replace_item(model, "type", "\"Unigram\"");
    expect_load_fail(write_json("unigram.json", j), "model type Unigram", "Unigram", "not supported");
    replace_item(model, "type", "\"BPE\"");
    replace_item(j, "pre_tokenizer", "{\"type\": \"Whitespace\"}");
    expect_load_fail(write_json("whitespace.json", j), "pre_tokenizer Whitespace", "Whitespace", "not supported");
    replace_item(j, "pre_tokenizer", "null");
    replace_item(j, "normalizer", "{\"type\": \"NFKC\"}");
    expect_load_fail(write_json("nfkc.json", j), "normalizer NFKC", "NFKC", "not supported");
    replace_item(j, "normalizer", "null");
    replace_item(j, "decoder", "{\"type\": \"WordPiece\"}");
    expect_load_fail(write_json("wordpiece.json", j), "decoder WordPiece", "WordPiece", "not supported");
    replace_item(j, "decoder", "null");
    replace_item(model, "dropout", "0.1");
    expect_load_fail(write_json("dropout.json", j), "BPE dropout", "dropout", NULL);
    replace_item(model, "dropout", "null");
    replace_item(model, "merges", "[[\"\\u2581\", \"zzz\"]]");
    expect_load_fail(write_json("badmerge.json", j), "merge of unknown token", "zzz", "not in the vocabulary");
    replace_item(model, "merges", "[\"a b c\"]");
    expect_load_fail(write_json("badmerge2.json", j), "malformed merge string", "a b c", NULL);
    replace_item(model, "merges", "[]");
    replace_item(model, "vocab", "{\"a\": -3}");
    expect_load_fail(write_json("badid.json", j), "negative id", "id", NULL);
    cJSON_Delete(j);
}

static void test_bad_text(const struct lsa_tokenizer *tok)
{
    static const struct {
        const char *s;
        size_t n, off;
        const char *what;
    } cases[] = {
        {"\xff", 1, 0, "0xff byte"},
        {"ab\xe2\x82", 4, 2, "truncated 3-byte sequence"},
        {"\xc0\xaf", 2, 0, "overlong '/'"},
        {"x\xe0\x80\xaf", 4, 1, "overlong 3-byte"},
        {"abc\xed\xa0\x80", 6, 3, "UTF-16 surrogate"},
        {"ok \xf4\x90\x80\x80", 7, 3, "above U+10FFFF"},
        {"hi\x80", 3, 2, "stray continuation byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 99;
        int rc = lsa_tokenizer_encode(tok, cases[i].s, cases[i].n, true, &ids, &n);
        char needle[64];
        snprintf(needle, sizeof needle, "offset %zu", cases[i].off);
        CHECK(rc == LSA_ETEXT && ids == NULL && n == 0 && strstr(lsa_errmsg(), needle),
              "%s: expected LSA_ETEXT naming \"%s\"; got rc %d, message: %s", cases[i].what, needle, rc, lsa_errmsg());
        if (i == 0) printf("  invalid UTF-8 -> %s\n", lsa_errmsg());
    }
    /* NUL is valid UTF-8 */
    int32_t *ids;
    size_t n;
    CHECK(lsa_tokenizer_encode(tok, "a\0b", 3, false, &ids, &n) == 0 && n >= 3, "text with a NUL byte: %s",
          lsa_errmsg());
    free(ids);
    int32_t neg = -5;
    char *text;
    size_t len;
    CHECK(lsa_tokenizer_decode(tok, &neg, 1, false, &text, &len) == LSA_EINVAL && !text, "negative id should be refused");
}

/* ---------------------------------------------------------------------------------------------------------
 * Long text
 * --------------------------------------------------------------------------------------------------------- */

static void test_long(const struct lsa_tokenizer *sp, const struct lsa_tokenizer *gpt2)
{
    static const char unit[] = " Once upon a time, there was a little girl named Lily. She loved to play outside.";
    size_t ulen = sizeof unit - 1, reps = 200 * 1024 / ulen + 1, len = reps * ulen;
    char *big = malloc(len + 1);
    REQUIRE(big, "oom");
    for (size_t r = 0; r < reps; r++) memcpy(big + r * ulen, unit, ulen);
    big[len] = '\0';

    /* SentencePiece-style: the whole text is one BPE word. */
    int32_t *ids;
    size_t n;
    double t0 = now_s();
    encode_ok(sp, big, len, true, &ids, &n);
    double dt = now_s() - t0;
    size_t dlen;
    char *back = decode_ok(sp, ids, n, true, &dlen);
    CHECK(dlen == len && memcmp(back, big, len) == 0, "SP: decode(encode(200 KB)) differs from the input");
    /* The unit starts with a space (a "▁" once normalized) and no merge joins "." with "▁", so the
     * long text is the unit's tokens repeated; the leading "▁" of the first unit doubles ("▁▁"). */
    int32_t *u;
    size_t nu;
    encode_ok(sp, unit + 1, ulen - 1, false, &u, &nu); /* "▁Once ..." */
    bool rep_ok = n == 1 + 1 + reps * nu && ids[0] == 1 && ids[1] == 410;
    for (size_t r = 0; rep_ok && r < reps; r++) rep_ok = memcmp(ids + 2 + r * nu, u, nu * sizeof *u) == 0;
    CHECK(rep_ok, "SP: 200 KB text should be <s> ▁ then %zu x the unit's %zu ids; got %zu ids", reps, nu, n);
    CHECK(dt < 5.0, "SP: encoding %zu bytes took %.2f s", len, dt);
    printf("  SP   encode %zu bytes -> %zu ids in %.3f s; round trip exact; = repeated unit: %s\n", len, n, dt,
           rep_ok ? "yes" : "no");
    free(back);
    free(ids);
    free(u);

    /* GPT-2: words never span units, so the ids are the unit's ids repeated. */
    t0 = now_s();
    encode_ok(gpt2, big, len, true, &ids, &n);
    dt = now_s() - t0;
    encode_ok(gpt2, unit, ulen, false, &u, &nu);
    rep_ok = n == reps * nu;
    for (size_t r = 0; rep_ok && r < reps; r++) rep_ok = memcmp(ids + r * nu, u, nu * sizeof *u) == 0;
    CHECK(rep_ok, "GPT-2: 200 KB text should be %zu x the unit's %zu ids; got %zu ids", reps, nu, n);
    back = decode_ok(gpt2, ids, n, false, &dlen);
    CHECK(dlen == len && memcmp(back, big, len) == 0, "GPT-2: decode(encode(200 KB)) differs from the input");
    CHECK(dt < 5.0, "GPT-2: encoding %zu bytes took %.2f s", len, dt);
    printf("  GPT2 encode %zu bytes -> %zu ids in %.3f s; round trip exact; = repeated unit: %s\n", len, n, dt,
           rep_ok ? "yes" : "no");
    free(back);
    free(ids);
    free(u);
    free(big);
}

/* ---------------------------------------------------------------------------------------------------------
 * BPE against the definition: merge the adjacent pair of lowest merge rank, leftmost on ties, until none
 * is left. Done naively (quadratic) from tokenizer.json on random strings full of ties ("aaaa", "▁▁▁").
 * --------------------------------------------------------------------------------------------------------- */

static int naive_rank(const cJSON *merges, const char *a, const char *b)
{
    int r = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        if (strcmp(m->child->valuestring, a) == 0 && strcmp(m->child->next->valuestring, b) == 0) return r;
        r++;
    }
    return -1;
}

/* Symbols of "▁" + text with spaces as "▁" (what the normalizer makes), merged naively; ids into out. */
static size_t naive_bpe(const cJSON *vocab, const cJSON *merges, const char *text, int32_t *out)
{
    static char sym[4096][64];
    size_t n = 0;
    strcpy(sym[n++], "\xe2\x96\x81");
    for (const char *p = text; *p; p++) {
        if (*p == ' ') strcpy(sym[n++], "\xe2\x96\x81");
        else sym[n][0] = *p, sym[n++][1] = '\0';
    }
    for (;;) {
        int best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            int r = naive_rank(merges, sym[i], sym[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) best = r, at = i;
        }
        if (best < 0) break;
        size_t la = strlen(sym[at]), lb = strlen(sym[at + 1]);
        if (la + lb >= sizeof sym[0]) {
            fprintf(stderr, "FAIL: naive BPE: symbol too long\n");
            exit(1);
        }
        memcpy(sym[at] + la, sym[at + 1], lb + 1);
        memmove(sym[at + 1], sym[at + 2], (n - at - 2) * sizeof sym[0]);
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(vocab, sym[i]);
        if (!cJSON_IsNumber(id)) {
            fprintf(stderr, "FAIL: naive BPE: \"%s\" not in the vocabulary\n", sym[i]);
            exit(1);
        }
        out[i] = (int32_t)id->valuedouble;
    }
    return n;
}

static void test_bpe_reference(const struct lsa_tokenizer *sp)
{
    cJSON *j = read_json(t_shared("fixtures/tiny-llama/tokenizer.json"));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    static const char alphabet[] = "aaaeeehhtttnoosll  .";
    uint64_t seed = 12345;
    int n_ok = 0, n_cases = 300;
    static int32_t want[4096], got[4096];
    char text[1024];
    for (int c = 0; c < n_cases; c++) {
        size_t len = 1 + (size_t)(c % 30 == 0 ? 400 : c % 60);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            text[i] = alphabet[(seed >> 33) % (sizeof alphabet - 1)];
        }
        text[len] = '\0';
        size_t nw = naive_bpe(vocab, merges, text, want), ng = enc(sp, text, got, 4096);
        bool ok = ids_eq(got, ng, want, nw);
        CHECK(ok, "BPE vs naive reference on \"%s\": %zu ids vs %zu", show(text, len), ng, nw);
        n_ok += ok;
    }
    printf("  %d/%d random strings (up to 401 chars): heap BPE = naive lowest-rank-leftmost BPE\n", n_ok, n_cases);
    cJSON_Delete(j);
}

/* ---------------------------------------------------------------------------------------------------------
 * Added tokens inside text, and small decoder cases
 * --------------------------------------------------------------------------------------------------------- */

static void test_added(const struct lsa_tokenizer *sp, const struct lsa_tokenizer *gpt2)
{
    int32_t a[512], b[512];
    size_t na, nb;
    /* HF normalizes each segment between added tokens on its own: "Hello</s>world" is "▁Hello" </s> "▁world". */
    na = enc(sp, "Hello</s>world", a, 512);
    nb = enc(sp, "Hello", b, 512);
    b[nb++] = 2;
    nb += enc(sp, "world", b + nb, 512 - nb);
    CHECK(ids_eq(a, na, b, nb), "SP: \"Hello</s>world\" should be enc(Hello) 2 enc(world)");
    na = enc(sp, "<s><s>", a, 512);
    CHECK(na == 2 && a[0] == 1 && a[1] == 1, "SP: \"<s><s>\" should be [1, 1]");
    size_t dlen;
    int32_t hw[] = {1, 2};
    char *d = decode_ok(sp, hw, 2, false, &dlen);
    CHECK(strcmp(d, "<s></s>") == 0, "SP: decode [1, 2] gave \"%s\"", d);
    free(d);
    d = decode_ok(sp, hw, 2, true, &dlen);
    CHECK(dlen == 0, "SP: decode [1, 2] skipping specials gave \"%s\"", d);
    free(d);
    /* byte fallback tokens that are not UTF-8 decode to one U+FFFD each */
    const char *p0 = lsa_tokenizer_piece(sp, 3);
    CHECK(p0 && strcmp(p0, "<0x00>") == 0, "SP: piece 3 is \"%s\", expected <0x00>", p0 ? p0 : "(null)");
    int32_t ff[] = {3 + 0xE2, 3 + 0x82, 410, 3 + 0xC3, 3 + 0xA9};
    d = decode_ok(sp, ff, 5, true, &dlen);
    CHECK(strcmp(d, "\xef\xbf\xbd\xef\xbf\xbd \xc3\xa9") == 0, "SP: decode <0xE2><0x82>\xe2\x96\x81<0xC3><0xA9> gave \"%s\"",
          show(d, dlen));
    free(d);

    na = enc(gpt2, "a<|endoftext|> b", a, 512);
    nb = enc(gpt2, "a", b, 512);
    b[nb++] = 50256;
    nb += enc(gpt2, " b", b + nb, 512 - nb);
    CHECK(ids_eq(a, na, b, nb), "GPT-2: \"a<|endoftext|> b\" should be enc(a) 50256 enc( b)");
    na = enc(gpt2, "<|endoftext|><|endoftext|", a, 512);
    CHECK(na > 1 && a[0] == 50256 && a[1] != 50256, "GPT-2: only the complete <|endoftext|> is the added token");
    int32_t eot[] = {50256, 0};
    d = decode_ok(gpt2, eot, 2, true, &dlen);
    CHECK(strcmp(d, "!") == 0, "GPT-2: decode [50256, 0] skipping specials gave \"%s\"", d);
    free(d);
    /* a lone lead byte decodes to U+FFFD (from_utf8_lossy): "â" is the token of byte 0xE2 */
    int32_t lead = -1;
    for (int32_t id = 0; id < 256 && lead < 0; id++)
        if (strcmp(lsa_tokenizer_piece(gpt2, id), "\xc3\xa2") == 0) lead = id;
    int32_t half[] = {lead, lead, 0};
    d = decode_ok(gpt2, half, 3, false, &dlen);
    CHECK(lead >= 0 && strcmp(d, "\xef\xbf\xbd\xef\xbf\xbd!") == 0, "GPT-2: decode [\"\xc3\xa2\", \"\xc3\xa2\", \"!\"] gave \"%s\"",
          show(d, dlen));
    free(d);
    int32_t out_of_range[] = {50257, 100000, 0};
    d = decode_ok(gpt2, out_of_range, 3, false, &dlen);
    CHECK(strcmp(d, "!") == 0, "GPT-2: ids beyond the vocabulary are left out, got \"%s\"", d);
    free(d);
}

static void test_meta(const struct lsa_tokenizer *sp, const struct lsa_tokenizer *gpt2)
{
    CHECK(lsa_tokenizer_kind(gpt2) == LSA_TOK_BYTELEVEL_BPE && strcmp(lsa_tokenizer_kind_name(gpt2), "bpe-bytelevel") == 0,
          "gpt2 kind %s", lsa_tokenizer_kind_name(gpt2));
    CHECK(lsa_tokenizer_kind(sp) == LSA_TOK_SP_BPE && strcmp(lsa_tokenizer_kind_name(sp), "bpe-sentencepiece") == 0,
          "llama kind %s", lsa_tokenizer_kind_name(sp));
    CHECK(lsa_tokenizer_n_vocab(gpt2) == 50257, "gpt2 n_vocab %d, expected 50257", lsa_tokenizer_n_vocab(gpt2));
    CHECK(lsa_tokenizer_n_vocab(sp) == 512, "llama n_vocab %d, expected 512", lsa_tokenizer_n_vocab(sp));
    CHECK(lsa_tokenizer_bos(gpt2) == 50256 && lsa_tokenizer_eos(gpt2) == 50256 && !lsa_tokenizer_adds_bos(gpt2),
          "gpt2 bos %d eos %d adds_bos %d, expected 50256 50256 0", lsa_tokenizer_bos(gpt2), lsa_tokenizer_eos(gpt2),
          lsa_tokenizer_adds_bos(gpt2));
    CHECK(lsa_tokenizer_bos(sp) == 1 && lsa_tokenizer_eos(sp) == 2 && lsa_tokenizer_adds_bos(sp),
          "llama bos %d eos %d adds_bos %d, expected 1 2 1", lsa_tokenizer_bos(sp), lsa_tokenizer_eos(sp),
          lsa_tokenizer_adds_bos(sp));
    const char *p = lsa_tokenizer_piece(gpt2, 50256);
    CHECK(p && strcmp(p, "<|endoftext|>") == 0, "gpt2 piece 50256 is %s", p ? p : "(null)");
    p = lsa_tokenizer_piece(gpt2, 220);
    CHECK(p && strcmp(p, "\xc4\xa0") == 0, "gpt2 piece 220 should be \"Ġ\" (a space)");
    CHECK(!lsa_tokenizer_piece(gpt2, -1) && !lsa_tokenizer_piece(gpt2, 50257), "out-of-range pieces should be NULL");
    printf("  gpt2: %s, n_vocab %d, bos %d, eos %d, adds_bos %d; llama: %s, n_vocab %d, bos %d, eos %d, adds_bos %d\n",
           lsa_tokenizer_kind_name(gpt2), lsa_tokenizer_n_vocab(gpt2), lsa_tokenizer_bos(gpt2), lsa_tokenizer_eos(gpt2),
           lsa_tokenizer_adds_bos(gpt2), lsa_tokenizer_kind_name(sp), lsa_tokenizer_n_vocab(sp), lsa_tokenizer_bos(sp),
           lsa_tokenizer_eos(sp), lsa_tokenizer_adds_bos(sp));
}

static void cleanup_tmp(void)
{
    static const char *files[] = {"metaspace_first.json", "metaspace_always.json", "metaspace_split.json",
                                  "metaspace_never.json", "nofallback_fused.json", "nofallback.json", "tokenizer.json",
                                  "tokenizer_config.json", "bad.json", "empty.json", "unigram.json", "whitespace.json",
                                  "nfkc.json", "wordpiece.json", "dropout.json", "badmerge.json", "badmerge2.json",
                                  "badid.json", "gpt2_split.json", "gpt2_digits.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(tmp_path(files[i]));
    rmdir(tmpdir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lsa-test-tokenizer-XXXXXX");
    REQUIRE(mkdtemp(tmpdir), "mkdtemp failed");

    double t0 = now_s();
    struct lsa_tokenizer *gpt2 = lsa_tokenizer_load(t_shared("fixtures/tiny-gpt2/tokenizer.json"));
    REQUIRE(gpt2, "load tiny-gpt2: %s", lsa_errmsg());
    struct lsa_tokenizer *sp = lsa_tokenizer_load(t_shared("fixtures/tiny-llama/tokenizer.json"));
    REQUIRE(sp, "load tiny-llama: %s", lsa_errmsg());
    printf("loaded both tokenizers in %.3f s\n", now_s() - t0);

    printf("metadata:\n");
    test_meta(sp, gpt2);
    printf("fixtures (encode with add_special; decode: GPT-2 keeps specials, SP skips them):\n");
    int n = 0;
    n += check_h5(gpt2, "fixtures/tokenizer-gpt2.h5", "/", "ids", FIX_GPT2);
    n += check_h5(sp, "fixtures/tokenizer-sp.h5", "/", "ids", FIX_SP);
    n += check_h5(gpt2, "fixtures/tiny-gpt2/golden.h5", "tokenizer", "ids", FIX_GPT2);
    n += check_h5(sp, "fixtures/tiny-llama/golden.h5", "tokenizer", "ids", FIX_SP);
    n += check_h5(gpt2, "fixtures/tiny-gpt2/golden.h5", "texts", "input_ids", FIX_GPT2);
    n += check_h5(sp, "fixtures/tiny-llama/golden.h5", "texts", "input_ids", FIX_SP);
    CHECK(n >= 100, "expected at least 100 fixture strings, found %d", n);
    /* the other checkpoints' own tokenizer.json files (same SentencePiece vocabulary, separately saved) */
    static const char *others[] = {"stories260K-hf", "tiny-gemma", "tiny-gpt_neox", "tiny-mistral", "tiny-phi3",
                                   "tiny-qwen2"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char path[256], golden[256];
        snprintf(path, sizeof path, "fixtures/%s/tokenizer.json", others[i]);
        snprintf(golden, sizeof golden, "fixtures/%s/golden.h5", others[i]);
        struct lsa_tokenizer *o = lsa_tokenizer_load(t_shared(path));
        CHECK(o, "load %s: %s", path, lsa_errmsg());
        if (o) check_h5(o, golden, "texts", "input_ids", FIX_SP);
        if (o) check_h5(o, golden, "tokenizer", "ids", FIX_SP);
        lsa_tokenizer_free(o);
    }
    printf("BPE merge order:\n");
    test_bpe_reference(sp);
    printf("added tokens and decoder details:\n");
    test_added(sp, gpt2);
    printf("tokenizer.json variants:\n");
    test_variants(sp);
    test_gpt2_variants(gpt2);
    printf("bad files:\n");
    test_bad_files();
    printf("bad text:\n");
    test_bad_text(sp);
    test_bad_text(gpt2);
    printf("long text:\n");
    test_long(sp, gpt2);

    lsa_tokenizer_free(gpt2);
    lsa_tokenizer_free(sp);
    lsa_tokenizer_free(NULL);
    cleanup_tmp();
    return t_finish("test_tokenizer");
}
