/*
 * gguf.c — open a GGUF file (v2/v3), memory-mapped, and validate everything in it before use: magic,
 * version, counts against the bytes left, string lengths, metadata types, tensor dimensions, shape
 * products (overflow), block sizes, alignment, and each tensor's data lying inside the file without
 * overlapping another. It does not interpret metadata or tensor names: gguf_model.c does.
 */
#include "lsa/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest key or tensor name accepted (llama.cpp allows 63-byte names; keys are short too). */
#define MAX_NAME 256

struct lsa_gguf {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version, alignment;
    uint64_t data_off;
    struct lsa_gguf_kv *kv;
    size_t n_kv;
    struct lsa_gguf_tensor *t; /* in file order */
    size_t n_t;
    const struct lsa_gguf_tensor **sorted; /* tensors sorted by name */
};

/* ---------------------------------------------------------------- cursor over the mapping */

struct cur {
    const struct lsa_gguf *g;
    size_t at;
    int rc; /* first error */
};

static bool need(struct cur *c, uint64_t n, const char *what)
{
    if (c->rc) return false;
    if (n > c->g->size - c->at) {
        c->rc = lsa_err(LSA_EFORMAT, "%s: %s at byte %zu runs past the end of the file (%zu bytes): truncated?",
                        c->g->path, what, c->at, c->g->size);
        return false;
    }
    return true;
}

static uint64_t rd_le(struct cur *c, int bytes, const char *what)
{
    if (!need(c, (uint64_t)bytes, what)) return 0;
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | c->g->map[c->at + (size_t)i];
    c->at += (size_t)bytes;
    return v;
}

static uint32_t rd_u32(struct cur *c, const char *what) { return (uint32_t)rd_le(c, 4, what); }
static uint64_t rd_u64(struct cur *c, const char *what) { return rd_le(c, 8, what); }

static struct lsa_gguf_str rd_str(struct cur *c, const char *what)
{
    struct lsa_gguf_str s = {NULL, 0};
    uint64_t n = rd_u64(c, what);
    if (c->rc) return s;
    if (n > c->g->size - c->at) {
        c->rc = lsa_err(LSA_EFORMAT, "%s: %s has length %llu, past the end of the file (%zu bytes left at byte %zu)",
                        c->g->path, what, (unsigned long long)n, c->g->size - c->at, c->at);
        return s;
    }
    s.p = (const char *)c->g->map + c->at;
    s.n = n;
    c->at += (size_t)n;
    return s;
}

static char *dup_name(struct cur *c, struct lsa_gguf_str s, const char *what)
{
    if (c->rc) return NULL;
    if (s.n > MAX_NAME || memchr(s.p, 0, (size_t)s.n)) {
        c->rc = lsa_err(LSA_EFORMAT, "%s: %s \"%.40s\" is longer than %d bytes or contains a NUL byte", c->g->path,
                        what, s.n ? s.p : "", MAX_NAME);
        return NULL;
    }
    char *p = malloc((size_t)s.n + 1);
    if (!p) {
        c->rc = lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(p, s.p, (size_t)s.n);
    p[s.n] = 0;
    return p;
}

/* ---------------------------------------------------------------- metadata */

static size_t vtype_size(uint32_t t)
{
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof sz / sizeof sz[0] ? sz[t] : 0;
}

static const char *vtype_name(uint32_t t)
{
    static const char *nm[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64",
                               "i64", "f64"};
    return t < sizeof nm / sizeof nm[0] ? nm[t] : "?";
}

static int read_kv(struct cur *c, struct lsa_gguf_kv *kv, uint64_t index)
{
    const char *path = c->g->path;
    char what[64];
    snprintf(what, sizeof what, "metadata key %llu", (unsigned long long)index);
    kv->key = dup_name(c, rd_str(c, what), what);
    uint32_t type = rd_u32(c, "metadata value type");
    if (c->rc) return c->rc;
    if (type > LSA_GGUF_F64)
        return lsa_err(LSA_EFORMAT, "%s: metadata %s has unknown value type %u", path, kv->key, type);
    kv->type = kv->elem = (enum lsa_gguf_vtype)type;
    kv->n = 1;
    if (type == LSA_GGUF_ARRAY) {
        uint32_t et = rd_u32(c, "array element type");
        kv->n = rd_u64(c, "array length");
        if (c->rc) return c->rc;
        if (et == LSA_GGUF_ARRAY)
            return lsa_err(LSA_EFORMAT, "%s: metadata %s is an array of arrays (not allowed)", path, kv->key);
        if (et > LSA_GGUF_F64)
            return lsa_err(LSA_EFORMAT, "%s: metadata %s is an array of unknown type %u", path, kv->key, et);
        kv->elem = (enum lsa_gguf_vtype)et;
    }
    if (kv->elem == LSA_GGUF_STRING) {
        /* each string takes at least its 8-byte length: bound the count before allocating */
        if (kv->n > (c->g->size - c->at) / 8)
            return lsa_err(LSA_EFORMAT, "%s: metadata %s claims %llu strings, more than the %zu bytes left can hold",
                           path, kv->key, (unsigned long long)kv->n, c->g->size - c->at);
        if (!(kv->str = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->str)))
            return lsa_err(LSA_ENOMEM, "%s: out of memory for metadata %s", path, kv->key);
        char label[MAX_NAME + 32];
        snprintf(label, sizeof label, "metadata %s", kv->key);
        for (uint64_t i = 0; i < kv->n && !c->rc; i++) kv->str[i] = rd_str(c, label);
        return c->rc;
    }
    size_t es = vtype_size(kv->elem);
    if (kv->n > (c->g->size - c->at) / es)
        return lsa_err(LSA_EFORMAT, "%s: metadata %s claims %llu values of %s, past the end of the file", path,
                       kv->key, (unsigned long long)kv->n, vtype_name(kv->elem));
    kv->data = c->g->map + c->at;
    c->at += (size_t)kv->n * es;
    return 0;
}

const struct lsa_gguf_kv *lsa_gguf_find_kv(const struct lsa_gguf *g, const char *key)
{
    for (size_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

static double num_at(enum lsa_gguf_vtype t, const uint8_t *p)
{
    uint64_t u = 0;
    size_t n = vtype_size(t);
    for (size_t i = n; i-- > 0;) u = (u << 8) | p[i];
    switch (t) {
    case LSA_GGUF_U8: case LSA_GGUF_U16: case LSA_GGUF_U32: case LSA_GGUF_U64: case LSA_GGUF_BOOL: return (double)u;
    case LSA_GGUF_I8: return (double)(int8_t)u;
    case LSA_GGUF_I16: return (double)(int16_t)u;
    case LSA_GGUF_I32: return (double)(int32_t)u;
    case LSA_GGUF_I64: return (double)(int64_t)u;
    case LSA_GGUF_F32: {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, 4);
        return f;
    }
    case LSA_GGUF_F64: {
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    default: return 0;
    }
}

double lsa_gguf_arr_num(const struct lsa_gguf_kv *kv, uint64_t i)
{
    return kv->data ? num_at(kv->elem, (const uint8_t *)kv->data + i * vtype_size(kv->elem)) : 0;
}

static bool is_int(enum lsa_gguf_vtype t) { return t <= LSA_GGUF_I32 || t == LSA_GGUF_BOOL || t == LSA_GGUF_U64 || t == LSA_GGUF_I64; }

int lsa_gguf_get_int(const struct lsa_gguf *g, const char *key, int64_t def, int64_t *out)
{
    const struct lsa_gguf_kv *kv = lsa_gguf_find_kv(g, key);
    *out = def;
    if (!kv) return 0;
    if (kv->type == LSA_GGUF_ARRAY || !is_int(kv->type))
        return lsa_err(LSA_EFORMAT, "%s: metadata %s should be an integer, found %s", g->path, key,
                       vtype_name(kv->type));
    const uint8_t *p = kv->data;
    if (kv->type == LSA_GGUF_U64) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--) u = (u << 8) | p[i];
        if (u > (uint64_t)INT64_MAX) return lsa_err(LSA_EFORMAT, "%s: metadata %s is out of range", g->path, key);
        *out = (int64_t)u;
    } else if (kv->type == LSA_GGUF_I64) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--) u = (u << 8) | p[i];
        *out = (int64_t)u;
    } else {
        *out = (int64_t)num_at(kv->type, p);
    }
    return 0;
}

int lsa_gguf_get_float(const struct lsa_gguf *g, const char *key, double def, double *out)
{
    const struct lsa_gguf_kv *kv = lsa_gguf_find_kv(g, key);
    *out = def;
    if (!kv) return 0;
    if (kv->type == LSA_GGUF_ARRAY || kv->type == LSA_GGUF_STRING || kv->type == LSA_GGUF_BOOL)
        return lsa_err(LSA_EFORMAT, "%s: metadata %s should be a number, found %s", g->path, key,
                       vtype_name(kv->type));
    *out = num_at(kv->type, kv->data);
    return 0;
}

int lsa_gguf_get_bool(const struct lsa_gguf *g, const char *key, bool def, bool *out)
{
    int64_t v;
    int rc = lsa_gguf_get_int(g, key, def, &v);
    *out = v != 0;
    return rc;
}

int lsa_gguf_get_str(const struct lsa_gguf *g, const char *key, struct lsa_gguf_str *s)
{
    const struct lsa_gguf_kv *kv = lsa_gguf_find_kv(g, key);
    s->p = NULL;
    s->n = 0;
    if (!kv) return 0;
    if (kv->type != LSA_GGUF_STRING)
        return lsa_err(LSA_EFORMAT, "%s: metadata %s should be a string, found %s", g->path, key, vtype_name(kv->type));
    *s = kv->str[0];
    return 0;
}

/* ---------------------------------------------------------------- tensor infos */

static int read_tensor(struct cur *c, struct lsa_gguf_tensor *t, uint64_t index)
{
    const char *path = c->g->path;
    char what[64];
    snprintf(what, sizeof what, "tensor name %llu", (unsigned long long)index);
    t->name = dup_name(c, rd_str(c, what), what);
    uint32_t nd = rd_u32(c, "tensor dimension count");
    if (c->rc) return c->rc;
    if (nd < 1 || nd > LSA_GGUF_MAX_DIMS)
        return lsa_err(LSA_EFORMAT, "%s: tensor %s has %u dimensions (1 to %d allowed)", path, t->name, nd,
                       LSA_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    for (int i = 0; i < LSA_GGUF_MAX_DIMS; i++) t->ne[i] = 1;
    int64_t n = 1;
    for (uint32_t i = 0; i < nd; i++) {
        uint64_t d = rd_u64(c, "tensor dimension");
        if (c->rc) return c->rc;
        if (d > (uint64_t)INT64_MAX)
            return lsa_err(LSA_EFORMAT, "%s: tensor %s has dimension %u of %llu", path, t->name, i,
                           (unsigned long long)d);
        t->ne[i] = (int64_t)d;
        if (d && n > INT64_MAX / (int64_t)d)
            return lsa_err(LSA_EFORMAT, "%s: tensor %s: the product of its shape overflows", path, t->name);
        n *= (int64_t)d;
    }
    t->n_elem = n;
    t->type = rd_u32(c, "tensor type");
    t->offset = rd_u64(c, "tensor offset");
    if (c->rc) return c->rc;
    int64_t be = lsa_ggml_block_elems(t->type);
    size_t bb = lsa_ggml_block_bytes(t->type);
    if (!be) return lsa_err(LSA_EFORMAT, "%s: tensor %s has unknown ggml type %u", path, t->name, t->type);
    if (t->ne[0] % be)
        return lsa_err(LSA_EFORMAT, "%s: tensor %s (%s) has %lld columns, not a multiple of the block size %lld", path,
                       t->name, lsa_ggml_type_name(t->type), (long long)t->ne[0], (long long)be);
    if ((uint64_t)(n / be) > (uint64_t)SIZE_MAX / bb)
        return lsa_err(LSA_EFORMAT, "%s: tensor %s: byte size overflows", path, t->name);
    t->nbytes = (size_t)(n / be) * bb;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const struct lsa_gguf_tensor *const *)a)->name, (*(const struct lsa_gguf_tensor *const *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
    uint64_t x = (*(const struct lsa_gguf_tensor *const *)a)->offset, y = (*(const struct lsa_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(const struct lsa_gguf_kv *const *)a)->key, (*(const struct lsa_gguf_kv *const *)b)->key);
}

/* Data section: aligned start, every tensor aligned, inside the file, no two overlapping. */
static int place_tensors(struct lsa_gguf *g, size_t end_of_infos)
{
    uint64_t a = g->alignment;
    g->data_off = (end_of_infos + a - 1) / a * a;
    if (g->data_off > g->size && g->n_t)
        return lsa_err(LSA_EFORMAT, "%s: data section would start at byte %llu, past the end of the file (%zu bytes)",
                       g->path, (unsigned long long)g->data_off, g->size);
    uint64_t data_size = g->data_off <= g->size ? g->size - g->data_off : 0;
    for (size_t i = 0; i < g->n_t; i++) {
        struct lsa_gguf_tensor *t = &g->t[i];
        if (t->offset % a)
            return lsa_err(LSA_EFORMAT, "%s: tensor %s data offset %llu is not a multiple of the alignment %u "
                           "(misaligned data)", g->path, t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return lsa_err(LSA_EFORMAT, "%s: tensor %s data [%llu, +%zu) lies outside the data section (%llu bytes): "
                           "offset out of range or file truncated", g->path, t->name, (unsigned long long)t->offset,
                           t->nbytes, (unsigned long long)data_size);
        t->data = g->map + g->data_off + t->offset;
    }
    const struct lsa_gguf_tensor **ord = malloc((g->n_t ? g->n_t : 1) * sizeof *ord);
    if (!ord) return lsa_err(LSA_ENOMEM, "out of memory");
    for (size_t i = 0; i < g->n_t; i++) ord[i] = &g->t[i];
    qsort(ord, g->n_t, sizeof *ord, cmp_offset);
    int rc = 0;
    for (size_t i = 1; i < g->n_t && !rc; i++) {
        const struct lsa_gguf_tensor *p = ord[i - 1], *q = ord[i];
        if (p->offset + p->nbytes > q->offset)
            rc = lsa_err(LSA_EFORMAT, "%s: tensors %s and %s overlap in the data section", g->path, p->name, q->name);
    }
    free(ord);
    return rc;
}

static int parse(struct lsa_gguf *g)
{
    struct cur c = {.g = g};
    if (g->size < 4 || memcmp(g->map, "GGUF", 4) != 0)
        return lsa_err(LSA_EFORMAT, "%s: not a GGUF file (bad magic: expected \"GGUF\")", g->path);
    c.at = 4;
    g->version = rd_u32(&c, "version");
    uint64_t n_t = rd_u64(&c, "tensor count"), n_kv = rd_u64(&c, "metadata count");
    if (c.rc) return c.rc;
    if (g->version == 1)
        return lsa_err(LSA_EFORMAT, "%s: GGUF version 1 is not supported (versions 2 and 3 are)", g->path);
    if ((g->version & 0xFFFF) == 0 && (g->version >> 24) >= 2 && (g->version >> 24) <= 3)
        return lsa_err(LSA_EUNSUP, "%s: big-endian GGUF is not supported", g->path);
    if (g->version < 2 || g->version > 3)
        return lsa_err(LSA_EFORMAT, "%s: unknown GGUF version %u (versions 2 and 3 are supported)", g->path,
                       g->version);
    /* every tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes, every key-value 8 + 4 + 1 */
    size_t left = g->size - c.at;
    if (n_t > left / 32)
        return lsa_err(LSA_EFORMAT, "%s: tensor count %llu is more than the file's %zu bytes can hold: truncated or corrupt", g->path,
                       (unsigned long long)n_t, g->size);
    if (n_kv > left / 13)
        return lsa_err(LSA_EFORMAT, "%s: metadata count %llu is more than the file's %zu bytes can hold: truncated or corrupt", g->path,
                       (unsigned long long)n_kv, g->size);
    g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
    g->t = calloc(n_t ? (size_t)n_t : 1, sizeof *g->t);
    g->sorted = malloc((n_t ? (size_t)n_t : 1) * sizeof *g->sorted);
    if (!g->kv || !g->t || !g->sorted) return lsa_err(LSA_ENOMEM, "%s: out of memory", g->path);
    int rc = 0;
    for (uint64_t i = 0; i < n_kv && !rc; i++) {
        rc = read_kv(&c, &g->kv[i], i);
        g->n_kv++;
    }
    if (rc) return rc;
    const struct lsa_gguf_kv **keys = malloc((g->n_kv ? g->n_kv : 1) * sizeof *keys);
    if (!keys) return lsa_err(LSA_ENOMEM, "out of memory");
    for (size_t i = 0; i < g->n_kv; i++) keys[i] = &g->kv[i];
    qsort(keys, g->n_kv, sizeof *keys, cmp_key);
    for (size_t i = 1; i < g->n_kv && !rc; i++)
        if (strcmp(keys[i]->key, keys[i - 1]->key) == 0)
            rc = lsa_err(LSA_EFORMAT, "%s: metadata key %s appears twice", g->path, keys[i]->key);
    free(keys);
    if (rc) return rc;
    int64_t align;
    if ((rc = lsa_gguf_get_int(g, "general.alignment", LSA_GGUF_DEFAULT_ALIGNMENT, &align))) return rc;
    if (align <= 0 || align > (1 << 30) || (align & (align - 1)))
        return lsa_err(LSA_EFORMAT, "%s: general.alignment %lld is not a power of two", g->path, (long long)align);
    g->alignment = (uint32_t)align;
    for (uint64_t i = 0; i < n_t && !rc; i++) {
        rc = read_tensor(&c, &g->t[i], i);
        g->n_t++;
    }
    if (rc) return rc;
    for (size_t i = 0; i < g->n_t; i++) g->sorted[i] = &g->t[i];
    qsort(g->sorted, g->n_t, sizeof *g->sorted, cmp_name);
    for (size_t i = 1; i < g->n_t; i++)
        if (strcmp(g->sorted[i]->name, g->sorted[i - 1]->name) == 0)
            return lsa_err(LSA_EFORMAT, "%s: duplicate tensor name %s", g->path, g->sorted[i]->name);
    return place_tensors(g, c.at);
}

struct lsa_gguf *lsa_gguf_open(const char *path)
{
    struct lsa_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    int rc = 0, fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0) rc = lsa_err(LSA_EIO, "%s: cannot open: %s", path, strerror(errno));
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) rc = lsa_err(LSA_EIO, "%s: not a regular file", path);
    else if (st.st_size < 24) rc = lsa_err(LSA_EFORMAT, "%s: truncated GGUF file (%lld bytes, the header needs 24)",
                                           path, (long long)st.st_size);
    if (!rc) {
        g->size = (size_t)st.st_size;
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) rc = lsa_err(LSA_EIO, "%s: cannot map: %s", path, strerror(errno));
        else g->map = m;
    }
    if (fd >= 0) close(fd);
    /* a short file with the wrong magic is "not GGUF" rather than "truncated" */
    if (rc == LSA_EFORMAT && !g->map) {
        unsigned char head[4] = {0};
        FILE *f = fopen(path, "rb");
        size_t n = f ? fread(head, 1, 4, f) : 0;
        if (f) fclose(f);
        if (n < 4 || memcmp(head, "GGUF", 4))
            rc = lsa_err(LSA_EFORMAT, "%s: not a GGUF file (bad magic: expected \"GGUF\")", path);
    }
    if (!rc) rc = parse(g);
    if (rc) {
        lsa_gguf_close(g);
        return NULL;
    }
    return g;
}

void lsa_gguf_close(struct lsa_gguf *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free((char *)g->kv[i].key);
        free(g->kv[i].str);
    }
    for (size_t i = 0; i < g->n_t; i++) free((char *)g->t[i].name);
    free(g->kv);
    free(g->t);
    free(g->sorted);
    if (g->map) munmap((void *)g->map, g->size);
    free(g->path);
    free(g);
}

const char *lsa_gguf_path(const struct lsa_gguf *g) { return g->path; }
uint32_t lsa_gguf_version(const struct lsa_gguf *g) { return g->version; }
uint32_t lsa_gguf_alignment(const struct lsa_gguf *g) { return g->alignment; }
uint64_t lsa_gguf_data_offset(const struct lsa_gguf *g) { return g->data_off; }
size_t lsa_gguf_n_kv(const struct lsa_gguf *g) { return g->n_kv; }
const struct lsa_gguf_kv *lsa_gguf_kv_at(const struct lsa_gguf *g, size_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }
size_t lsa_gguf_n_tensors(const struct lsa_gguf *g) { return g->n_t; }
const struct lsa_gguf_tensor *lsa_gguf_tensor_at(const struct lsa_gguf *g, size_t i)
{
    return i < g->n_t ? &g->t[i] : NULL;
}

const struct lsa_gguf_tensor *lsa_gguf_find_tensor(const struct lsa_gguf *g, const char *name)
{
    size_t lo = 0, hi = g->n_t;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(g->sorted[mid]->name, name);
        if (c == 0) return g->sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int lsa_gguf_read_f32(const struct lsa_gguf *g, const struct lsa_gguf_tensor *t, float *out)
{
    if (!lsa_ggml_type_supported(t->type))
        return lsa_err(LSA_EUNSUP, "%s: tensor %s has type %s, which lsa cannot dequantize (supported: F32, F16, "
                       "BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K)", g->path, t->name,
                       lsa_ggml_type_name(t->type));
    int rc = lsa_ggml_dequantize(t->type, t->data, t->n_elem, out);
    return rc ? lsa_err_wrap(rc, "%s: tensor %s", g->path, t->name) : 0;
}
