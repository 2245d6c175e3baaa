/*
 * fuzz_llama2c — llama2.c checkpoints and tokenizer.bin files on hostile input. The first byte picks:
 * even: the rest is a .bin checkpoint, loaded as a model (with the stories260K tokenizer.bin beside it
 * when the vocabulary is 512, else without a tokenizer); odd: the rest is a tokenizer.bin read for a
 * vocabulary of 3..258 tokens (the next byte, plus 3).
 */
#include "fuzz_util.h"
#include "lsa/llama2c.h"
#include "lsa/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fz_clear_error();
    if (data[0] & 1) {
        if (size < 2) return 0;
        const char *path = fz_write("t.tokbin", data + 2, size - 2);
        struct lsa_tokenizer *tok = lsa_llama2c_tokenizer_load(path, 3 + data[1]);
        if (!tok) {
            fz_check_error("lsa_llama2c_tokenizer_load");
            return 0;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if (lsa_tokenizer_encode(tok, "Once upon a time, Lily", 22, true, &ids, &n) == 0)
            for (size_t k = 0; k < n; k++)
                if (ids[k] < 0 || ids[k] >= 3 + data[1]) abort();
        char *s = NULL;
        size_t len;
        if (ids && lsa_tokenizer_decode(tok, ids, n, false, &s, &len) == 0) free(s);
        free(ids);
        lsa_tokenizer_free(tok);
        return 0;
    }
    const char *path = fz_write("m.bin", data + 1, size - 1);
    struct lsa_llama2c_config cfg;
    if (lsa_llama2c_read_config(path, &cfg) == 0) {
        if (cfg.dim <= 0 || cfg.n_heads <= 0 || cfg.n_kv_heads <= 0 || cfg.vocab_size <= 0 || cfg.dim % cfg.n_heads)
            abort();
    } else {
        fz_check_error("lsa_llama2c_read_config");
    }
    static char tok[600];
    if (!tok[0]) snprintf(tok, sizeof tok, "%s", fz_shared("models/stories260K/tok512.bin"));
    fz_clear_error();
    struct lsa_model *m = lsa_llama2c_load(path, size >= 25 && data[21] == 0 && data[22] == 2 ? tok : NULL);
    if (!m) {
        fz_check_error("lsa_llama2c_load");
        return 0;
    }
    lsa_model_free(m);
    return 0;
}
