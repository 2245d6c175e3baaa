/*
 * error.c — the thread-local last-error message behind lsa_err()/lsa_errmsg().
 * Broken invariants (bugs, not bad input) go through lsa_assert_fail, which aborts. Control characters in
 * a message (from names in hostile files) are replaced, so that every message stays one printable line.
 */
#include "lsa/lsa.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char errbuf[1024];

/* Messages quote names and values read from hostile files: a newline, escape or other control character
 * in one must not break the one-line message (nor drive the terminal), so those become '?'. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = *s == '\t' ? ' ' : '?';
}

int lsa_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    one_line(errbuf);
    return code;
}

int lsa_err_wrap(int code, const char *fmt, ...)
{
    char old[sizeof errbuf];
    memcpy(old, errbuf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n + 2 < sizeof errbuf) {
        errbuf[n] = ':';
        errbuf[n + 1] = ' ';
        /* the tail may be cut: messages are one line and short in practice */
        size_t room = sizeof errbuf - (size_t)n - 2;
        size_t len = strnlen(old, room - 1);
        memcpy(errbuf + n + 2, old, len);
        errbuf[n + 2 + len] = 0;
    }
    one_line(errbuf);
    return code;
}

const char *lsa_errmsg(void) { return errbuf[0] ? errbuf : "no error"; }

const char *lsa_strstatus(int code)
{
    switch (code) {
    case LSA_OK: return "ok";
    case LSA_EIO: return "io";
    case LSA_EFORMAT: return "format";
    case LSA_EUNSUP: return "unsupported";
    case LSA_EINVAL: return "invalid";
    case LSA_ENOMEM: return "out of memory";
    case LSA_ETEXT: return "text";
    case LSA_ENUM: return "non-finite";
    default: return "unknown";
    }
}

void lsa_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "lsa: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}
