/*
 * file.c — reading a whole (small) file into memory: config.json, tokenizer.json, an index, a text, a
 * summary. One reader, so that size limits, read errors and the trailing NUL are handled alike.
 */
#include "lsa/lsa.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lsa_read_file(const char *path, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return lsa_err(LSA_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= max) {
            rc = lsa_err(LSA_EFORMAT, "%s: larger than %zu MiB, too large for this kind of file", path, max >> 20);
            break;
        }
        char *nb = realloc(buf, (cap = cap * 2 < max ? cap * 2 : max) + 1);
        if (!nb) free(buf);
        buf = nb;
    }
    if (!rc && !buf) rc = lsa_err(LSA_ENOMEM, "%s: out of memory reading the file", path);
    if (!rc && ferror(f)) rc = lsa_err(LSA_EIO, "%s: read failed: %s", path, strerror(errno));
    if (!is_stdin) fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

char *lsa_path_base(const char *path)
{
    const char *e = path + strlen(path);
    while (e > path && e[-1] == '/') e--;
    const char *b = e;
    while (b > path && b[-1] != '/') b--;
    char *out = strndup(b, (size_t)(e - b));
    if (!out) lsa_err(LSA_ENOMEM, "out of memory");
    return out;
}
