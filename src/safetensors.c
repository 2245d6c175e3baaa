/*
 * safetensors.c — open single-file and sharded safetensors checkpoints, memory-mapped, with every
 * header field validated against the file (sizes, offsets, overlap with the header, element counts).
 * It does not interpret tensor names: the model loader does.
 */
#include "lsa/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A JSON header larger than this is not a plausible safetensors file (real ones are a few MB at most). */
#define MAX_HEADER (100u << 20)

struct shard {
    char *path;
    void *map;
    size_t size;
};

struct lsa_st {
    char *path;
    struct shard *shards;
    size_t n_shards;
    struct lsa_st_tensor *t; /* sorted by name */
    size_t n;
    char **strings; /* names and dtype strings owned here */
    size_t n_strings, cap_strings;
};

static const char *keep(struct lsa_st *st, const char *s)
{
    if (st->n_strings == st->cap_strings) {
        size_t cap = st->cap_strings ? st->cap_strings * 2 : 64;
        char **v = realloc(st->strings, cap * sizeof *v);
        if (!v) return NULL;
        st->strings = v;
        st->cap_strings = cap;
    }
    char *c = strdup(s);
    if (c) st->strings[st->n_strings++] = c;
    return c;
}

static enum lsa_dtype parse_dtype(const char *s, size_t *elsize)
{
    static const struct {
        const char *name;
        size_t size;
        enum lsa_dtype dt;
    } tab[] = {
        {"F32", 4, LSA_DT_F32},     {"F16", 2, LSA_DT_F16},     {"BF16", 2, LSA_DT_BF16},
        {"F64", 8, LSA_DT_UNKNOWN}, {"I64", 8, LSA_DT_UNKNOWN}, {"I32", 4, LSA_DT_UNKNOWN},
        {"I16", 2, LSA_DT_UNKNOWN}, {"I8", 1, LSA_DT_UNKNOWN},  {"U8", 1, LSA_DT_UNKNOWN},
        {"BOOL", 1, LSA_DT_UNKNOWN}, {"F8_E4M3", 1, LSA_DT_UNKNOWN}, {"F8_E5M2", 1, LSA_DT_UNKNOWN},
        {"U16", 2, LSA_DT_UNKNOWN}, {"U32", 4, LSA_DT_UNKNOWN}, {"U64", 8, LSA_DT_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0) {
            *elsize = tab[i].size;
            return tab[i].dt;
        }
    *elsize = 0;
    return LSA_DT_UNKNOWN;
}

static int map_file(const char *path, struct shard *sh)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lsa_err(LSA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode)) {
        close(fd);
        return lsa_err(LSA_EIO, "%s: not a regular file", path);
    }
    sh->size = (size_t)stt.st_size;
    if (sh->size < 8) {
        close(fd);
        return lsa_err(LSA_EFORMAT, "%s: truncated safetensors file (%zu bytes, header length needs 8)", path,
                       sh->size);
    }
    sh->map = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (sh->map == MAP_FAILED) {
        sh->map = NULL;
        return lsa_err(LSA_EIO, "%s: cannot map: %s", path, strerror(errno));
    }
    return 0;
}

/* Parse one shard's header and append its tensors. */
static int read_shard(struct lsa_st *st, struct shard *sh)
{
    const unsigned char *p = sh->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > sh->size - 8)
        return lsa_err(LSA_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes): truncated?",
                       sh->path, (unsigned long long)hlen, sh->size);
    if (hlen > MAX_HEADER || hlen < 2)
        return lsa_err(LSA_EFORMAT, "%s: implausible header length %llu", sh->path, (unsigned long long)hlen);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lsa_err(LSA_EFORMAT, "%s: header is not a JSON object", sh->path);
    }
    const unsigned char *data = p + 8 + hlen;
    size_t data_size = sh->size - 8 - (size_t)hlen;
    int rc = 0;
    size_t count = (size_t)cJSON_GetArraySize(root);
    struct lsa_st_tensor *nt = realloc(st->t, (st->n + count + 1) * sizeof *nt);
    if (!nt) {
        cJSON_Delete(root);
        return lsa_err(LSA_ENOMEM, "%s: out of memory", sh->path);
    }
    st->t = nt;
    for (cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(off) ||
            cJSON_GetArraySize(off) != 2) {
            rc = lsa_err(LSA_EFORMAT, "%s: tensor %s: entry lacks dtype, shape or data_offsets", sh->path, e->string);
            break;
        }
        struct lsa_st_tensor *t = &st->t[st->n];
        memset(t, 0, sizeof *t);
        size_t elsize;
        t->dtype = parse_dtype(dt->valuestring, &elsize);
        t->name = keep(st, e->string);
        t->dtype_name = keep(st, dt->valuestring);
        t->file = sh->path;
        if (!t->name || !t->dtype_name) {
            rc = lsa_err(LSA_ENOMEM, "out of memory");
            break;
        }
        if (elsize == 0) {
            rc = lsa_err(LSA_EUNSUP, "%s: tensor %s has unknown dtype %s", sh->path, e->string, dt->valuestring);
            break;
        }
        int rank = cJSON_GetArraySize(shape);
        if (rank > LSA_ST_MAX_RANK) {
            rc = lsa_err(LSA_EFORMAT, "%s: tensor %s has rank %d (max %d)", sh->path, e->string, rank, LSA_ST_MAX_RANK);
            break;
        }
        t->rank = rank;
        int64_t n = 1;
        for (int i = 0; i < rank; i++) {
            cJSON *d = cJSON_GetArrayItem(shape, i);
            double v = cJSON_IsNumber(d) ? d->valuedouble : -1;
            if (v < 0 || v > (double)INT64_MAX / 2 || v != (double)(int64_t)v) {
                rc = lsa_err(LSA_EFORMAT, "%s: tensor %s has an invalid shape entry", sh->path, e->string);
                break;
            }
            t->shape[i] = (int64_t)v;
            if (t->shape[i] && n > INT64_MAX / 16 / t->shape[i]) {
                rc = lsa_err(LSA_EFORMAT, "%s: tensor %s: shape overflows", sh->path, e->string);
                break;
            }
            n *= t->shape[i];
        }
        if (rc) break;
        t->n_elem = n;
        double b = cJSON_GetArrayItem(off, 0)->valuedouble, en = cJSON_GetArrayItem(off, 1)->valuedouble;
        if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) || b < 0 ||
            en < b || en > (double)data_size) {
            rc = lsa_err(LSA_EFORMAT, "%s: tensor %s: data_offsets [%.0f, %.0f] outside the data block (%zu bytes): "
                         "truncated?", sh->path, e->string, b, en, data_size);
            break;
        }
        t->nbytes = (size_t)en - (size_t)b;
        if ((uint64_t)n * elsize != t->nbytes) {
            rc = lsa_err(LSA_EFORMAT, "%s: tensor %s: %zu bytes for %lld elements of %s", sh->path, e->string,
                         t->nbytes, (long long)n, dt->valuestring);
            break;
        }
        t->data = data + (size_t)b;
        st->n++;
    }
    cJSON_Delete(root);
    return rc;
}

static int add_shard(struct lsa_st *st, const char *path)
{
    for (size_t i = 0; i < st->n_shards; i++)
        if (strcmp(st->shards[i].path, path) == 0) return 0;
    struct shard *v = realloc(st->shards, (st->n_shards + 1) * sizeof *v);
    if (!v) return lsa_err(LSA_ENOMEM, "out of memory");
    st->shards = v;
    struct shard *sh = &st->shards[st->n_shards];
    memset(sh, 0, sizeof *sh);
    if (!(sh->path = strdup(path))) return lsa_err(LSA_ENOMEM, "out of memory");
    st->n_shards++;
    int rc = map_file(path, sh);
    return rc ? rc : read_shard(st, sh);
}

static int open_index(struct lsa_st *st, const char *index)
{
    size_t len;
    char *txt;
    int rc = lsa_read_file(index, 64u << 20, &txt, &len);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(txt, len);
    free(txt);
    cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return lsa_err(LSA_EFORMAT, "%s: not a safetensors index (no weight_map object)", index);
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", index);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    for (cJSON *e = wm->child; e && rc == 0; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || strcmp(e->valuestring, "..") == 0) {
            rc = lsa_err(LSA_EFORMAT, "%s: weight_map entry for %s is not a plain file name", index, e->string);
            break;
        }
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof p, "%s%s", dir, e->valuestring) >= sizeof p) {
            rc = lsa_err(LSA_EFORMAT, "%s: shard path too long", index);
            break;
        }
        rc = add_shard(st, p);
    }
    /* Every name the index promises must exist in its shard. */
    for (cJSON *e = wm->child; e && rc == 0; e = e->next) {
        int found = 0;
        for (size_t i = 0; i < st->n && !found; i++) found = strcmp(st->t[i].name, e->string) == 0;
        if (!found) rc = lsa_err(LSA_EFORMAT, "%s: tensor %s is listed but not in shard %s", index, e->string,
                                 e->valuestring);
    }
    cJSON_Delete(root);
    return rc;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const struct lsa_st_tensor *)a)->name, ((const struct lsa_st_tensor *)b)->name);
}

struct lsa_st *lsa_st_open(const char *path)
{
    struct lsa_st *st = calloc(1, sizeof *st);
    if (!st) {
        lsa_err(LSA_ENOMEM, "out of memory");
        return NULL;
    }
    struct stat s;
    int rc = 0;
    char p[PATH_MAX];
    if (stat(path, &s) != 0) {
        rc = lsa_err(LSA_EIO, "%s: no such file or directory", path);
    } else if (S_ISDIR(s.st_mode)) {
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        if (stat(p, &s) != 0) {
            snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
            if (stat(p, &s) != 0)
                rc = lsa_err(LSA_EIO, "%s: no model.safetensors or model.safetensors.index.json in this folder", path);
        }
    } else {
        snprintf(p, sizeof p, "%s", path);
    }
    if (rc == 0 && !(st->path = strdup(p))) rc = lsa_err(LSA_ENOMEM, "out of memory");
    if (rc == 0) {
        size_t n = strlen(p);
        if (n > 5 && strcmp(p + n - 5, ".json") == 0) rc = open_index(st, p);
        else rc = add_shard(st, p);
    }
    if (rc == 0 && st->n) {
        qsort(st->t, st->n, sizeof *st->t, cmp_tensor);
        for (size_t i = 1; i < st->n; i++)
            if (strcmp(st->t[i].name, st->t[i - 1].name) == 0) {
                rc = lsa_err(LSA_EFORMAT, "%s: tensor %s appears twice", st->path, st->t[i].name);
                break;
            }
    }
    if (rc) {
        lsa_st_close(st);
        return NULL;
    }
    return st;
}

void lsa_st_close(struct lsa_st *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n_shards; i++) {
        if (st->shards[i].map) munmap(st->shards[i].map, st->shards[i].size);
        free(st->shards[i].path);
    }
    for (size_t i = 0; i < st->n_strings; i++) free(st->strings[i]);
    free(st->strings);
    free(st->shards);
    free(st->t);
    free(st->path);
    free(st);
}

size_t lsa_st_count(const struct lsa_st *st) { return st->n; }
const struct lsa_st_tensor *lsa_st_at(const struct lsa_st *st, size_t i) { return i < st->n ? &st->t[i] : NULL; }
const char *lsa_st_path(const struct lsa_st *st) { return st->path; }

const struct lsa_st_tensor *lsa_st_find(const struct lsa_st *st, const char *name)
{
    struct lsa_st_tensor key = {.name = name};
    return st->n ? bsearch(&key, st->t, st->n, sizeof *st->t, cmp_tensor) : NULL;
}

float lsa_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float lsa_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void lsa_widen_f32(enum lsa_dtype dt, const void *src, size_t n, float *out)
{
    const unsigned char *p = src;
    switch (dt) {
    case LSA_DT_F32: memcpy(out, p, n * 4); break;
    case LSA_DT_F16:
#pragma omp parallel for if (n > (1u << 20)) schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = lsa_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case LSA_DT_BF16:
        /* a bf16 is the top half of an f32: a shift, which vectorises; big matrices (the lazy path widens
         * every matrix of a 7B model per window) are split across cores */
#pragma omp parallel for if (n > (1u << 20)) schedule(static)
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(out + i, &bits, 4);
        }
        break;
    default: LSA_ASSERT(!"lsa_widen_f32: dtype without a widening");
    }
}

int lsa_st_read_f32(const struct lsa_st_tensor *t, float *out)
{
    if (t->dtype != LSA_DT_F32 && t->dtype != LSA_DT_F16 && t->dtype != LSA_DT_BF16)
        return lsa_err(LSA_EUNSUP, "%s: tensor %s has dtype %s; lsa reads F32, F16 and BF16", t->file, t->name,
                       t->dtype_name);
    lsa_widen_f32(t->dtype, t->data, (size_t)t->n_elem, out);
    return 0;
}
