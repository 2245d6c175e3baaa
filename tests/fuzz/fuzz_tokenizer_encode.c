/*
 * fuzz_tokenizer_encode — encode arbitrary bytes with the fixtures' tokenizers: GPT-2 byte-level BPE
 * (tiny-gpt2), SentencePiece-style BPE with byte fallback (tiny-llama), Qwen2's pre-tokenizer, and the
 * score-based vocabularies of stories260K (GGUF and llama2.c tokenizer.bin). Invalid UTF-8 must be
 * refused with LSA_ETEXT naming the offset; valid text must give ids inside the vocabulary, and decoding
 * them must work. The input is also decoded as an id array (out-of-range ids must be refused).
 */
#include "fuzz_util.h"
#include "lsa/llama2c.h"
#include "lsa/model.h"
#include "lsa/tokenizer.h"

#define N_TOK 5
static struct lsa_tokenizer *owned[N_TOK];
static struct lsa_model *model;
static const struct lsa_tokenizer *toks[N_TOK + 1];
static int n_toks;

static void load_all(void)
{
    static const char *json[] = {"fixtures/tiny-gpt2/tokenizer.json", "fixtures/tiny-llama/tokenizer.json",
                                 "fixtures/tiny-qwen2/tokenizer.json"};
    for (size_t i = 0; i < sizeof json / sizeof json[0]; i++) {
        if (!(owned[n_toks] = lsa_tokenizer_load(fz_shared(json[i])))) {
            fprintf(stderr, "fuzz_tokenizer_encode: %s\n", lsa_errmsg());
            abort();
        }
        toks[n_toks] = owned[n_toks];
        n_toks++;
    }
    if (!(owned[n_toks] = lsa_llama2c_tokenizer_load(fz_shared("models/stories260K/tok512.bin"), 512))) abort();
    toks[n_toks] = owned[n_toks];
    n_toks++;
    model = lsa_model_load(fz_shared("models/stories260K/stories260K.gguf"));
    if (!model || !lsa_model_tokenizer(model)) abort();
    toks[n_toks++] = lsa_model_tokenizer(model);
}

static void cleanup(void)
{
    for (int i = 0; i < N_TOK; i++) lsa_tokenizer_free(owned[i]);
    lsa_model_free(model);
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return false;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!n_toks) {
        load_all();
        atexit(cleanup);
    }
    bool valid = valid_utf8(data, size);
    for (int i = 0; i < n_toks; i++) {
        const struct lsa_tokenizer *tok = toks[i];
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = lsa_tokenizer_encode(tok, (const char *)data, size, i & 1, &ids, &n);
        if (valid != (rc == 0)) {
            fprintf(stderr, "tokenizer %d: valid UTF-8 %d but encode returned %d (%s)\n", i, valid, rc, lsa_errmsg());
            abort();
        }
        if (rc && (rc != LSA_ETEXT || !strstr(lsa_errmsg(), "UTF-8"))) abort();
        for (size_t k = 0; k < n; k++)
            if (ids[k] < 0 || ids[k] >= lsa_tokenizer_n_vocab(tok)) abort();
        if (rc == 0) {
            char *s = NULL;
            size_t len = 0;
            if (lsa_tokenizer_decode(tok, ids, n, false, &s, &len) != 0) abort();
            free(s);
        }
        free(ids);
        /* the bytes as ids */
        size_t n_ids = size / 4;
        if (n_ids) {
            int32_t *raw = malloc(n_ids * sizeof *raw);
            memcpy(raw, data, n_ids * sizeof *raw);
            char *s = NULL;
            size_t len;
            if (lsa_tokenizer_decode(tok, raw, n_ids, size & 1, &s, &len) == 0) free(s);
            free(raw);
        }
    }
    return 0;
}
