/*
 * fuzz_gguf — the GGUF reader and the GGUF model loader on hostile files. Everything the reader accepts
 * is used: every metadata value read through the typed getters, every tensor of a bounded size
 * dequantized, and the file loaded as a model (architecture, weights and the tokenizer built from
 * tokenizer.ggml.*), whose tokenizer then encodes a short text.
 */
#include "fuzz_util.h"
#include "lsa/gguf.h"
#include "lsa/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write("m.gguf", data, size);
    fz_clear_error();
    struct lsa_gguf *g = lsa_gguf_open(path);
    if (!g) {
        fz_check_error("lsa_gguf_open");
        return 0;
    }
    for (size_t i = 0; i < lsa_gguf_n_kv(g); i++) {
        const struct lsa_gguf_kv *kv = lsa_gguf_kv_at(g, i);
        if (lsa_gguf_find_kv(g, kv->key) == NULL) abort();
        int64_t v;
        double d;
        bool b;
        struct lsa_gguf_str s;
        (void)lsa_gguf_get_int(g, kv->key, 0, &v);
        (void)lsa_gguf_get_float(g, kv->key, 0, &d);
        (void)lsa_gguf_get_bool(g, kv->key, false, &b);
        if (lsa_gguf_get_str(g, kv->key, &s) == 0 && s.p && s.n) (void)(volatile char)s.p[s.n - 1];
        if (kv->type == LSA_GGUF_ARRAY && kv->elem != LSA_GGUF_STRING && kv->n)
            (void)lsa_gguf_arr_num(kv, kv->n - 1);
        if (kv->elem == LSA_GGUF_STRING)
            for (uint64_t k = 0; k < kv->n; k++)
                if (kv->str[k].n) (void)(volatile char)kv->str[k].p[kv->str[k].n - 1];
    }
    static float out[1 << 16];
    for (size_t i = 0; i < lsa_gguf_n_tensors(g); i++) {
        const struct lsa_gguf_tensor *t = lsa_gguf_tensor_at(g, i);
        if (lsa_gguf_find_tensor(g, t->name) != t) abort();
        if (t->n_elem <= (int64_t)(sizeof out / sizeof out[0])) (void)lsa_gguf_read_f32(g, t, out);
    }
    lsa_gguf_close(g);

    fz_clear_error();
    struct lsa_model *m = lsa_model_load(path);
    if (!m) {
        fz_check_error("lsa_model_load");
        return 0;
    }
    const struct lsa_tokenizer *tok = lsa_model_tokenizer(m);
    if (tok) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (lsa_tokenizer_encode(tok, "Once upon a time <s> caf\xc3\xa9", 27, true, &ids, &n) == 0)
            for (size_t k = 0; k < n; k++)
                if (ids[k] < 0 || ids[k] >= lsa_model_arch(m)->n_vocab) abort();
        free(ids);
    }
    lsa_model_free(m);
    return 0;
}
