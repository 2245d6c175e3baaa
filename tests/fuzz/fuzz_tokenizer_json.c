/*
 * fuzz_tokenizer_json — lsa_tokenizer_load on hostile tokenizer.json files. A tokenizer that loads is also
 * used: a few fixed texts are encoded and decoded, and every id of the vocabulary is decoded and looked
 * up, so that tables the loader built wrongly show up as ASan reports.
 */
#include "fuzz_util.h"
#include "lsa/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write("tokenizer.json", data, size);
    fz_clear_error();
    struct lsa_tokenizer *tok = lsa_tokenizer_load(path);
    if (!tok) {
        fz_check_error("lsa_tokenizer_load");
        return 0;
    }
    static const char *texts[] = {"Once upon a time, there was a cat.", " hello  world\n\t",
                                  "<s> caf\xc3\xa9 \xe2\x96\x81 </s>", "", "\xf0\x9f\x98\x80 12345 I'm",
                                  "<|endoftext|>x"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (lsa_tokenizer_encode(tok, texts[i], strlen(texts[i]), special, &ids, &n) == 0) {
                for (size_t k = 0; k < n; k++)
                    if (ids[k] < 0 || ids[k] >= lsa_tokenizer_n_vocab(tok)) abort();
                char *s = NULL;
                size_t len;
                if (lsa_tokenizer_decode(tok, ids, n, special, &s, &len) == 0 && strlen(s) != len && !memchr(s, 0, len))
                    abort();
                free(s);
            }
            free(ids);
        }
    }
    int32_t nv = lsa_tokenizer_n_vocab(tok);
    for (int32_t id = -1; id <= nv && id < 4096; id++) {
        (void)lsa_tokenizer_piece(tok, id);
        char *s = NULL;
        size_t len;
        if (lsa_tokenizer_decode(tok, &id, 1, false, &s, &len) == 0) free(s);
    }
    lsa_tokenizer_free(tok);
    return 0;
}
