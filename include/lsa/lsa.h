/*
 * lsa.h — status codes, the error-message accessor and shared small types.
 *
 * Contract: every fallible lsa function returns 0 on success or a negative LSA_E* code, and records a
 * one-line message (naming the file and the object, expected vs found) that lsa_errmsg() returns until
 * the next failing call on the same thread. Constructors return NULL on failure and set the message the
 * same way. Library code never prints and never exits.
 */
#ifndef LSA_LSA_H
#define LSA_LSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSA_VERSION "0.1.0"

enum lsa_status {
    LSA_OK = 0,
    LSA_EIO = -1,      /* a file could not be opened, read, mapped or written */
    LSA_EFORMAT = -2,  /* a file is malformed: truncated, bad header, wrong shapes, bad JSON */
    LSA_EUNSUP = -3,   /* well-formed but not supported: unknown architecture, dtype, rope type */
    LSA_EINVAL = -4,   /* a caller-supplied value is out of range (bad plan, bad option) */
    LSA_ENOMEM = -5,   /* an allocation failed */
    LSA_ETEXT = -6,    /* input text is not valid UTF-8 or cannot be tokenized */
    LSA_ENUM = -7,     /* NaN or Inf where finite numbers are required */
};

/*
 * Read a whole file ("-" = standard input) into a malloc'd, NUL-terminated buffer (*len excludes the NUL;
 * the caller frees *data). Files larger than max bytes are refused with LSA_EFORMAT.
 */
int lsa_read_file(const char *path, size_t max, char **data, size_t *len);

/* The last component of a path, trailing slashes ignored ("a/b/model/" -> "model"); malloc'd, caller frees;
 * NULL (LSA_ENOMEM) when out of memory. Names models and captures in titles and legends. */
char *lsa_path_base(const char *path);

/* The git commit this lsa was built from ("unknown" outside a checkout). */
const char *lsa_commit(void);

/* Record a printf-style message and return code, so callers can write `return lsa_err(...)`. */
int lsa_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "<prefix>: " (adds context on the way up); returns code. */
int lsa_err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last recorded message; borrowed, valid until the next lsa_err on this thread. */
const char *lsa_errmsg(void);
/* A short name for a status code ("io", "format", ...). */
const char *lsa_strstatus(int code);

#define LSA_ASSERT(x)                                                                              \
    do {                                                                                           \
        if (!(x)) lsa_assert_fail(__FILE__, __LINE__, #x);                                         \
    } while (0)
_Noreturn void lsa_assert_fail(const char *file, int line, const char *expr);

#ifdef __cplusplus
}
#endif
#endif
