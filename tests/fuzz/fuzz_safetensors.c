/*
 * fuzz_safetensors — the safetensors reader on hostile input. The first byte picks what the rest is:
 * even: a whole .safetensors file; odd: a model.safetensors.index.json whose shards are two small valid
 * files written once beside it (a.safetensors, b.safetensors). Every tensor that opens is widened to
 * float32 (bounded), so that a size or offset the reader accepted but got wrong shows as an ASan report.
 */
#include "fuzz_util.h"
#include "lsa/safetensors.h"

/* A valid shard: 8-byte length, JSON header, data. */
static void write_shard(const char *name, const char *tensor)
{
    char hdr[256];
    int h = snprintf(hdr, sizeof hdr,
                     "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                     "\"%s.h\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                     "\"__metadata__\":{\"format\":\"pt\"}}",
                     tensor, tensor);
    unsigned char buf[512];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)h);
    for (int i = 0; i < 22; i++) buf[8 + h + i] = (unsigned char)(i * 37);
    fz_write(name, buf, 8 + (size_t)h + 22);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        write_shard("a.safetensors", "w.a");
        write_shard("b.safetensors", "w.b");
        init = 1;
    }
    if (size < 1) return 0;
    fz_clear_error();
    const char *path = (data[0] & 1) ? fz_write("model.safetensors.index.json", data + 1, size - 1)
                                     : fz_write("x.safetensors", data + 1, size - 1);
    struct lsa_st *st = lsa_st_open(path);
    if (!st) {
        fz_check_error("lsa_st_open"); /* every failure says why, on one line */
        return 0;
    }
    static float out[1 << 16];
    for (size_t i = 0; i < lsa_st_count(st); i++) {
        const struct lsa_st_tensor *t = lsa_st_at(st, i);
        if (lsa_st_find(st, t->name) != t) abort();
        if (t->n_elem <= (int64_t)(sizeof out / sizeof out[0])) (void)lsa_st_read_f32(t, out);
    }
    lsa_st_close(st);
    return 0;
}
