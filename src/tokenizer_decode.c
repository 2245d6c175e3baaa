/*
 * tokenizer_decode.c — ids -> text, as `tokenizers`' Tokenizer::decode does it: each id becomes its
 * token string (added tokens by content; special ones left out when asked; unknown ids dropped), the
 * decoder chain rewrites the list of strings, and the result is their concatenation (joined with
 * spaces when the file has no decoder). transformers' clean_up_tokenization_spaces is not applied
 * (its default is off for these tokenizers).
 */
#include "tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

/* ByteLevel: every char of a token back to its byte (a token with a char outside the map is taken
 * as raw UTF-8), then the whole byte string read as UTF-8 with U+FFFD for broken sequences. */
static int dec_bytelevel(const struct lsa_tokenizer *t, const struct tk_slist *in, struct tk_slist *out)
{
    struct tk_buf bytes = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const char *s = in->buf.p + in->off[i];
        size_t n = in->len[i], at = bytes.n;
        bool mapped = true;
        for (size_t j = 0; j < n && rc == 0;) {
            uint32_t cp;
            size_t l = tk_utf8_next((const unsigned char *)s + j, n - j, &cp);
            if (!l || cp >= 512 || t->bl_dec[cp] < 0) {
                mapped = false;
                break;
            }
            rc = tk_buf_putc(&bytes, (char)(unsigned char)t->bl_dec[cp]);
            j += l;
        }
        if (rc == 0 && !mapped) {
            bytes.n = at;
            rc = tk_buf_put(&bytes, s, n);
        }
    }
    struct tk_buf text = {0};
    if (rc == 0) rc = tk_utf8_lossy(&text, bytes.p ? bytes.p : "", bytes.n);
    if (rc == 0) rc = tk_slist_push(out, text.p ? text.p : "", text.n);
    free(bytes.p);
    free(text.p);
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ByteFallback: runs of <0xNN> tokens become the string they spell, or one U+FFFD per byte when that
 * is not valid UTF-8. */
static int dec_bytefallback(const struct tk_slist *in, struct tk_slist *out)
{
    struct tk_buf run = {0};
    size_t run_n = 0;
    int rc = 0;
    for (size_t i = 0; i <= in->n && rc == 0; i++) {
        const char *s = i < in->n ? in->buf.p + in->off[i] : NULL;
        size_t n = i < in->n ? in->len[i] : 0;
        int hi = -1, lo = -1;
        if (s && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
            /* u8::from_str_radix, which `tokenizers` uses, also takes a '+' sign: "<0x+A>" is 0x0A */
            hi = s[3] == '+' ? 0 : hexval(s[3]);
            lo = hexval(s[4]);
        }
        if (hi >= 0 && lo >= 0) {
            rc = tk_buf_putc(&run, (char)(hi * 16 + lo));
            run_n++;
            continue;
        }
        if (run_n) {
            if (tk_utf8_check(run.p, run.n) == run.n) {
                rc = tk_slist_push(out, run.p, run.n);
            } else {
                for (size_t k = 0; k < run_n && rc == 0; k++) rc = tk_slist_push(out, "\xEF\xBF\xBD", 3);
            }
            run.n = 0;
            run_n = 0;
        }
        if (s && rc == 0) rc = tk_slist_push(out, s, n);
    }
    free(run.p);
    return rc;
}

/* Strip: up to `start` leading and `stop` trailing copies of one char, per token. */
static int dec_strip(const struct tk_dec *d, const struct tk_slist *in, struct tk_slist *out)
{
    int rc = 0;
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const char *s = in->buf.p + in->off[i];
        size_t n = in->len[i], a = 0, b = n;
        uint32_t cp;
        size_t l;
        for (size_t k = 0; k < d->start && a < n; k++) {
            l = tk_utf8_next((const unsigned char *)s + a, n - a, &cp);
            if (!l || cp != d->cp) break;
            a += l;
        }
        for (size_t k = 0; k < d->stop && b > a; k++) {
            size_t c = b - 1;
            while (c > a && ((unsigned char)s[c] & 0xC0) == 0x80) c--;
            l = tk_utf8_next((const unsigned char *)s + c, b - c, &cp);
            if (!l || cp != d->cp) break;
            b = c;
        }
        rc = tk_slist_push(out, s + a, b - a);
    }
    return rc;
}

/* Metaspace: the replacement char becomes a space, except in the first token (where the
 * pre-tokenizer prepended it) unless prepend_scheme is "never". */
static int dec_metaspace(const struct tk_dec *d, const struct tk_slist *in, struct tk_slist *out)
{
    struct tk_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const char *s = in->buf.p + in->off[i];
        size_t n = in->len[i];
        b.n = 0;
        for (size_t j = 0; j < n && rc == 0;) {
            uint32_t cp;
            size_t l = tk_utf8_next((const unsigned char *)s + j, n - j, &cp);
            if (!l) l = 1, cp = UINT32_MAX;
            if (cp == d->cp) {
                if (!(i == 0 && d->prepend)) rc = tk_buf_putc(&b, ' ');
            } else {
                rc = tk_buf_put(&b, s + j, l);
            }
            j += l;
        }
        if (rc == 0) rc = tk_slist_push(out, b.p ? b.p : "", b.n);
    }
    free(b.p);
    return rc;
}

static int dec_replace(const struct tk_dec *d, const struct tk_slist *in, struct tk_slist *out)
{
    struct tk_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const char *s = in->buf.p + in->off[i];
        size_t n = in->len[i], from = 0;
        b.n = 0;
        for (size_t j = 0; j + d->a_len <= n && rc == 0;) {
            if (memcmp(s + j, d->a, d->a_len) == 0) {
                if ((rc = tk_buf_put(&b, s + from, j - from)) == 0) rc = tk_buf_put(&b, d->b, d->b_len);
                j += d->a_len;
                from = j;
            } else {
                j++;
            }
        }
        if (rc == 0) rc = tk_buf_put(&b, s + from, n - from);
        if (rc == 0) rc = tk_slist_push(out, b.p ? b.p : "", b.n);
    }
    free(b.p);
    return rc;
}

static int dec_fuse(const struct tk_slist *in, struct tk_slist *out)
{
    int rc = tk_slist_push(out, "", 0);
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        rc = tk_buf_put(&out->buf, in->buf.p + in->off[i], in->len[i]);
        out->len[0] += in->len[i];
    }
    return rc;
}

int lsa_tokenizer_decode(const struct lsa_tokenizer *t, const int32_t *ids, size_t n_ids, bool skip_special,
                         char **text, size_t *len)
{
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text || !len || (!ids && n_ids)) return lsa_err(LSA_EINVAL, "lsa_tokenizer_decode: NULL argument");
    struct tk_slist a = {0}, b = {0};
    int rc = 0;
    for (size_t i = 0; i < n_ids && rc == 0; i++) {
        int32_t id = ids[i];
        if (id < 0) {
            rc = lsa_err(LSA_EINVAL, "%s: cannot decode id %d at position %zu (ids are >= 0)", t->path, id, i);
            break;
        }
        const struct tk_added *ad = tk_added_by_id(t, id);
        if (ad) {
            if (!(skip_special && ad->special)) rc = tk_slist_push(&a, ad->content, ad->len);
            continue;
        }
        /* An id with no token is left out, as `tokenizers` does. */
        const char *piece = lsa_tokenizer_piece(t, id);
        if (piece) rc = tk_slist_push(&a, piece, strlen(piece));
    }
    for (size_t k = 0; k < t->n_dec && rc == 0; k++) {
        const struct tk_dec *d = &t->dec[k];
        tk_slist_clear(&b);
        switch (d->type) {
        case TK_DEC_BYTELEVEL: rc = dec_bytelevel(t, &a, &b); break;
        case TK_DEC_BYTEFALLBACK: rc = dec_bytefallback(&a, &b); break;
        case TK_DEC_FUSE: rc = dec_fuse(&a, &b); break;
        case TK_DEC_STRIP: rc = dec_strip(d, &a, &b); break;
        case TK_DEC_METASPACE: rc = dec_metaspace(d, &a, &b); break;
        case TK_DEC_REPLACE: rc = dec_replace(d, &a, &b); break;
        }
        struct tk_slist tmp = a;
        a = b;
        b = tmp;
    }
    struct tk_buf res = {0};
    for (size_t i = 0; i < a.n && rc == 0; i++) {
        if (i && !t->has_decoder) rc = tk_buf_putc(&res, ' ');
        if (rc == 0) rc = tk_buf_put(&res, a.buf.p + a.off[i], a.len[i]);
    }
    if (rc == 0 && !res.p && !(res.p = calloc(1, 1))) rc = lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    tk_slist_free(&a);
    tk_slist_free(&b);
    if (rc) {
        free(res.p);
        return rc;
    }
    *text = res.p;
    *len = res.n;
    return 0;
}
