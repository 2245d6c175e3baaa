/*
 * tokenizer_encode.c — text -> ids, following the `tokenizers` pipeline step by step:
 *   1. added tokens whose "normalized" is false are cut out of the raw text (leftmost, longest);
 *   2. every other segment is normalized on its own (so Prepend("▁") applies once per segment),
 *      then normalized added tokens are cut out of it;
 *   3. pre-tokenizers split the segments into words (ByteLevel also maps bytes to GPT-2's chars);
 *   4. BPE merges each word (lowest merge rank first, leftmost on ties) with a binary heap, so one
 *      long word (SentencePiece-style files have no pre-tokenizer) costs O(n log n);
 *   5. the post-processor puts its special tokens around the result.
 * Also the UTF-8 helpers the other tokenizer files use. Offsets/alignments are not tracked: lsa
 * only needs ids.
 */
#include "tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

/* ================================================================================================
 * UTF-8
 * ================================================================================================ */

size_t tk_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte (excludes overlongs, surrogates) */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned d = s[i];
        if (d < lo || d > hi) return 0;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (d & 0x3F);
    }
    *cp = v;
    return len;
}

/* Length of the maximal subpart of an ill-formed sequence at s (at least 1): the bytes that could
 * still have begun a valid character. Each such subpart becomes one U+FFFD, as Rust does. */
static size_t utf8_bad_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1;
    size_t i = 1;
    while (i < len && i < n && s[i] >= lo && s[i] <= hi) {
        lo = 0x80;
        hi = 0xBF;
        i++;
    }
    return i;
}

size_t tk_utf8_check(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        if (u[i] < 0x80) { /* ASCII fast path */
            i++;
            continue;
        }
        size_t l = tk_utf8_next(u + i, n - i, &cp);
        if (!l) return i;
        i += l;
    }
    return n;
}

int tk_utf8_lossy(struct tk_buf *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        size_t good = tk_utf8_check(s + i, n - i);
        rc = tk_buf_put(out, s + i, good);
        i += good;
        if (i < n && rc == 0) {
            rc = tk_buf_put(out, "\xEF\xBF\xBD", 3);
            i += utf8_bad_len(u + i, n - i);
        }
    }
    return rc;
}

int tk_utf8_put(struct tk_buf *out, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return tk_buf_put(out, b, n);
}

bool tk_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* Length of the (valid) char at s; 1 for a stray byte so that loops always advance. */
static size_t char_len(const char *s, size_t n)
{
    uint32_t cp;
    size_t l = tk_utf8_next((const unsigned char *)s, n, &cp);
    return l ? l : 1;
}

/* ================================================================================================
 * Pieces: segments of text on their way through the pipeline
 * ================================================================================================ */

struct piece {
    size_t off, len; /* in the list's buffer */
    int32_t id;      /* >= 0: an added token, final; -1: text still to tokenize */
    bool origin;     /* starts at byte 0 of the caller's text (Metaspace prepend_scheme "first") */
};

struct plist {
    struct tk_buf buf;
    struct piece *v;
    size_t n, cap;
};

static int plist_push(struct plist *l, const char *s, size_t n, int32_t id, bool origin)
{
    if (id < 0 && n == 0) return 0; /* `tokenizers` drops empty splits */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct piece *v = realloc(l->v, cap * sizeof *v);
        if (!v) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        l->v = v;
        l->cap = cap;
    }
    struct piece *p = &l->v[l->n];
    p->off = l->buf.n;
    p->len = n;
    p->id = id;
    p->origin = origin;
    int rc = tk_buf_put(&l->buf, s, n);
    if (rc == 0) l->n++;
    return rc;
}

static void plist_clear(struct plist *l)
{
    l->n = 0;
    l->buf.n = 0;
}

static void plist_free(struct plist *l)
{
    free(l->buf.p);
    free(l->v);
}

struct idvec {
    int32_t *v;
    size_t n, cap;
};

static int ids_push(struct idvec *x, int32_t id)
{
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        int32_t *v = realloc(x->v, cap * sizeof *v);
        if (!v) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = id;
    return 0;
}

/* Scratch that lives for one encode call (nothing is allocated per word once it has grown). */
struct bpe_sym {
    int32_t id, prev, next;
    uint32_t len; /* bytes covered; 0 marks a symbol merged into its left neighbour */
};
struct bpe_ent {
    uint32_t rank, pos;
    int32_t new_id;
};
struct scratch {
    struct bpe_sym *sym;
    size_t n_sym, cap_sym;
    struct bpe_ent *heap;
    size_t n_heap, cap_heap;
    struct tk_buf key, tmp;
    pcre2_match_data *md;
    struct span {
        size_t a, b;
        bool match;
    } *spans;
    size_t n_span, cap_span;
};

static void scratch_free(struct scratch *s)
{
    free(s->sym);
    free(s->heap);
    free(s->key.p);
    free(s->tmp.p);
    pcre2_match_data_free(s->md);
    free(s->spans);
}

/* ================================================================================================
 * Added tokens
 * ================================================================================================ */

static bool is_word_char(const struct lsa_tokenizer *t, struct scratch *sc, const char *s, size_t n)
{
    if (!t->word_re || n == 0) return false;
    int rc = pcre2_match(t->word_re, (PCRE2_SPTR)s, n, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, sc->md, NULL);
    return rc > 0;
}

/* Start of the char that ends at s[end]. */
static size_t char_start_before(const char *s, size_t end)
{
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* Cut the added tokens of one kind (normalized or not) out of s[0..n), as AddedVocabulary::find_matches
 * does: leftmost-longest matches, then single_word / lstrip / rstrip adjustments. */
static int split_added(const struct lsa_tokenizer *t, struct scratch *sc, bool normalized, const char *s, size_t n,
                       bool origin, struct plist *out)
{
    size_t start_offset = 0, pos = 0;
    int rc = 0;
    while (pos < n && rc == 0) {
        if (!t->added_first[normalized][(unsigned char)s[pos]]) {
            pos++;
            continue;
        }
        const struct tk_added *best = NULL;
        for (size_t i = 0; i < t->n_added; i++) {
            const struct tk_added *a = &t->added[i];
            if (a->normalized != normalized || a->match_len == 0 || a->match_len > n - pos) continue;
            if ((!best || a->match_len > best->match_len) && memcmp(s + pos, a->match, a->match_len) == 0) best = a;
        }
        if (!best) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + best->match_len;
        pos = stop; /* the search resumes after the match, whatever the strips below do */
        if (best->single_word) {
            bool start_space = start == 0;
            if (!start_space) {
                size_t cs = char_start_before(s, start);
                start_space = !is_word_char(t, sc, s + cs, start - cs);
            }
            bool stop_space = stop == n || !is_word_char(t, sc, s + stop, char_len(s + stop, n - stop));
            if (!start_space || !stop_space) continue;
        }
        if (best->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t cs = char_start_before(s, ns);
                uint32_t cp;
                if (!tk_utf8_next((const unsigned char *)s + cs, ns - cs, &cp) || !tk_is_space(cp)) break;
                ns = cs;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (best->rstrip) {
            uint32_t cp;
            size_t l;
            while (stop < n && (l = tk_utf8_next((const unsigned char *)s + stop, n - stop, &cp)) && tk_is_space(cp))
                stop += l;
        }
        if (start_offset < start) rc = plist_push(out, s + start_offset, start - start_offset, -1, origin && start_offset == 0);
        if (rc == 0) rc = plist_push(out, s + start, stop - start, best->id, false);
        start_offset = stop;
    }
    if (rc == 0 && start_offset < n) rc = plist_push(out, s + start_offset, n - start_offset, -1, origin && start_offset == 0);
    return rc;
}

/* ================================================================================================
 * Normalizer
 * ================================================================================================ */

static int replace_all(const char *s, size_t n, const char *a, size_t a_len, const char *b, size_t b_len,
                       struct tk_buf *out)
{
    size_t i = 0, from = 0;
    int rc = 0;
    while (rc == 0 && a_len && i + a_len <= n) {
        if (memcmp(s + i, a, a_len) == 0) {
            if ((rc = tk_buf_put(out, s + from, i - from)) == 0) rc = tk_buf_put(out, b, b_len);
            i += a_len;
            from = i;
        } else {
            i++;
        }
    }
    return rc ? rc : tk_buf_put(out, s + from, n - from);
}

int tk_normalize(const struct lsa_tokenizer *t, const char *s, size_t n, struct tk_buf *out)
{
    if (t->n_norm == 0) return tk_buf_put(out, s, n);
    struct tk_buf x = {0}, y = {0};
    int rc = tk_buf_put(&x, s, n);
    for (size_t k = 0; k < t->n_norm && rc == 0; k++) {
        const struct tk_norm *nm = &t->norm[k];
        y.n = 0;
        if (nm->type == TK_NORM_PREPEND) {
            if (x.n && (rc = tk_buf_put(&y, nm->a, nm->a_len)) == 0) rc = tk_buf_put(&y, x.p, x.n); /* not to "" */
        } else {
            rc = replace_all(x.p ? x.p : "", x.n, nm->a, nm->a_len, nm->b, nm->b_len, &y);
        }
        struct tk_buf sw = x;
        x = y;
        y = sw;
    }
    if (rc == 0) rc = tk_buf_put(out, x.p, x.n);
    free(x.p);
    free(y.p);
    return rc;
}

/* ================================================================================================
 * Pre-tokenizers
 * ================================================================================================ */

static int span_push(struct scratch *sc, size_t a, size_t b, bool match)
{
    if (sc->n_span == sc->cap_span) {
        size_t cap = sc->cap_span ? 2 * sc->cap_span : 64;
        struct span *v = realloc(sc->spans, cap * sizeof *v);
        if (!v) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        sc->spans = v;
        sc->cap_span = cap;
    }
    sc->spans[sc->n_span++] = (struct span){a, b, match};
    return 0;
}

/* Pattern::find_matches: spans covering s[0..n), each flagged match or not. A regex is iterated as
 * Oniguruma's find_iter does it (an empty match right where the previous match ended is skipped). */
static int find_matches(const struct lsa_tokenizer *t, struct scratch *sc, const pcre2_code *re, const char *lit,
                        size_t lit_len, const char *s, size_t n)
{
    sc->n_span = 0;
    if (n == 0) return span_push(sc, 0, 0, false);
    size_t prev = 0;
    int rc = 0;
    if (re) {
        size_t last_end = 0, last_match_end = SIZE_MAX;
        while (last_end <= n && rc == 0) {
            int m = pcre2_match(re, (PCRE2_SPTR)s, n, last_end, PCRE2_NO_UTF_CHECK, sc->md, NULL);
            if (m == PCRE2_ERROR_NOMATCH) break;
            if (m < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(m, msg, sizeof msg);
                return lsa_err(LSA_ETEXT, "%s: regex match failed: %s", t->path, (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
            size_t a = ov[0], b = ov[1];
            if (a == b && last_match_end == b) {
                last_end += last_end < n ? char_len(s + last_end, n - last_end) : 1;
                continue;
            }
            last_end = last_match_end = b;
            if (prev != a) rc = span_push(sc, prev, a, false);
            if (rc == 0) rc = span_push(sc, a, b, true);
            prev = b;
        }
    } else {
        size_t i = 0;
        while (i + lit_len <= n && rc == 0) {
            if (memcmp(s + i, lit, lit_len) == 0) {
                if (prev != i) rc = span_push(sc, prev, i, false);
                if (rc == 0) rc = span_push(sc, i, i + lit_len, true);
                i += lit_len;
                prev = i;
            } else {
                i++;
            }
        }
    }
    if (rc == 0 && prev != n) rc = span_push(sc, prev, n, false);
    return rc;
}

/* NormalizedString::split: regroup the spans by the delimiter behaviour, then emit them (empty ones
 * are dropped by plist_push). */
static int split_spans(struct scratch *sc, enum tk_behavior behavior, const char *s, bool origin, struct plist *out)
{
    struct span *v = sc->spans;
    size_t n = sc->n_span, k = 0;
    bool prev_match = false;
    switch (behavior) {
    case TK_ISOLATED:
        for (size_t i = 0; i < n; i++) v[i].match = false;
        k = n;
        break;
    case TK_REMOVED:
        k = n;
        break;
    case TK_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            bool m = v[i].match;
            if (k && m == prev_match) v[k - 1].b = v[i].b;
            else v[k++] = (struct span){v[i].a, v[i].b, false};
            prev_match = m;
        }
        break;
    case TK_MERGED_PREV:
        for (size_t i = 0; i < n; i++) {
            bool m = v[i].match;
            if (k && m && !prev_match) v[k - 1].b = v[i].b;
            else v[k++] = (struct span){v[i].a, v[i].b, false};
            prev_match = m;
        }
        break;
    case TK_MERGED_NEXT: {
        /* Folded from the right, as `tokenizers` does: a delimiter joins the text after it, but two
         * delimiters in a row stay apart. Built right-aligned in place, then read forwards. */
        size_t w = n;
        for (size_t i = n; i-- > 0;) {
            bool m = v[i].match;
            if (w < n && m && !prev_match) v[w].a = v[i].a;
            else v[--w] = (struct span){v[i].a, v[i].b, false};
            prev_match = m;
        }
        memmove(v, v + w, (n - w) * sizeof *v);
        k = n - w;
        break;
    }
    }
    int rc = 0;
    for (size_t i = 0; i < k && rc == 0; i++)
        if (!v[i].match) rc = plist_push(out, s + v[i].a, v[i].b - v[i].a, -1, origin && v[i].a == 0);
    return rc;
}

/* One pre-tokenizer applied to one text piece; the pieces it makes are appended to out. */
static int pre_one(const struct lsa_tokenizer *t, struct scratch *sc, const struct tk_pre *pr, const char *s, size_t n,
                   bool origin, struct plist *out)
{
    int rc = 0;
    struct tk_buf *tmp = &sc->tmp;
    tmp->n = 0;
    switch (pr->type) {
    case TK_PRE_BYTELEVEL: {
        if (pr->add_prefix_space && s[0] != ' ') rc = tk_buf_putc(tmp, ' ');
        if (rc == 0) rc = tk_buf_put(tmp, s, n);
        if (rc) return rc;
        size_t first = out->n;
        if (pr->use_regex) {
            if ((rc = find_matches(t, sc, pr->re, NULL, 0, tmp->p, tmp->n))) return rc;
            if ((rc = split_spans(sc, TK_ISOLATED, tmp->p, origin, out))) return rc;
        } else if ((rc = plist_push(out, tmp->p, tmp->n, -1, origin))) {
            return rc;
        }
        /* Map every byte of the new pieces to its GPT-2 char; rebuild them at the end of the buffer. */
        for (size_t i = first; i < out->n && rc == 0; i++) {
            struct piece *p = &out->v[i];
            size_t off = out->buf.n;
            for (size_t j = 0; j < p->len && rc == 0; j++) {
                unsigned char b = (unsigned char)out->buf.p[p->off + j];
                rc = tk_buf_put(&out->buf, t->bl_enc[b], t->bl_enc_len[b]);
            }
            p->off = off;
            p->len = out->buf.n - off;
        }
        return rc;
    }
    case TK_PRE_METASPACE: {
        bool starts = n >= pr->rep_len && memcmp(s, pr->rep, pr->rep_len) == 0;
        bool prepend = pr->prepend == TK_PREPEND_ALWAYS || (pr->prepend == TK_PREPEND_FIRST && origin);
        /* The prepend test looks at the text before spaces become the replacement, as the
         * replacement char itself is what it checks for; a leading space becomes one below. */
        if (prepend && !starts && s[0] != ' ') rc = tk_buf_put(tmp, pr->rep, pr->rep_len);
        if (rc == 0) rc = replace_all(s, n, " ", 1, pr->rep, pr->rep_len, tmp);
        if (rc) return rc;
        if (!pr->split) return plist_push(out, tmp->p, tmp->n, -1, origin);
        if ((rc = find_matches(t, sc, NULL, pr->rep, pr->rep_len, tmp->p, tmp->n))) return rc;
        return split_spans(sc, TK_MERGED_NEXT, tmp->p, origin, out);
    }
    case TK_PRE_SPLIT:
        if ((rc = find_matches(t, sc, pr->re, pr->lit, pr->lit_len, s, n))) return rc;
        if (pr->invert)
            for (size_t i = 0; i < sc->n_span; i++) sc->spans[i].match = !sc->spans[i].match;
        return split_spans(sc, pr->behavior, s, origin, out);
    }
    return 0;
}

/* ================================================================================================
 * BPE
 * ================================================================================================ */

static bool ent_less(const struct bpe_ent *x, const struct bpe_ent *y)
{
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static int heap_push(struct scratch *sc, uint32_t rank, uint32_t pos, int32_t new_id)
{
    if (sc->n_heap == sc->cap_heap) {
        size_t cap = sc->cap_heap ? 2 * sc->cap_heap : 64;
        struct bpe_ent *h = realloc(sc->heap, cap * sizeof *h);
        if (!h) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        sc->heap = h;
        sc->cap_heap = cap;
    }
    struct bpe_ent e = {rank, pos, new_id}, *h = sc->heap;
    size_t i = sc->n_heap++;
    while (i > 0 && ent_less(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
    return 0;
}

static struct bpe_ent heap_pop(struct scratch *sc)
{
    struct bpe_ent *h = sc->heap, top = h[0], last = h[--sc->n_heap];
    size_t n = sc->n_heap, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ent_less(&h[c + 1], &h[c])) c++;
        if (!ent_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static int sym_add(struct scratch *sc, int32_t id, size_t len)
{
    if (sc->n_sym == sc->cap_sym) {
        size_t cap = sc->cap_sym ? 2 * sc->cap_sym : 64;
        struct bpe_sym *v = realloc(sc->sym, cap * sizeof *v);
        if (!v) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        sc->sym = v;
        sc->cap_sym = cap;
    }
    int32_t k = (int32_t)sc->n_sym;
    if (k > 0) sc->sym[k - 1].next = k;
    sc->sym[sc->n_sym++] = (struct bpe_sym){id, k - 1, -1, (uint32_t)len};
    return 0;
}

/* Try the pair starting at symbol pos. */
static int push_pair(const struct lsa_tokenizer *t, struct scratch *sc, int32_t pos)
{
    const struct bpe_sym *l = &sc->sym[pos];
    if (l->next < 0) return 0;
    const struct tk_merge *m = tk_merge_get(t, l->id, sc->sym[l->next].id);
    return m ? heap_push(sc, m->rank, (uint32_t)pos, m->new_id) : 0;
}

/* BPE::merge_word + Word::merge_all for one word w[0..n); ids are appended to out. */
static int bpe_word(const struct lsa_tokenizer *t, struct scratch *sc, const char *w, size_t n, struct idvec *out)
{
    int rc;
    if (n == 0) return 0;
    if (n > UINT32_MAX / 2 || n > INT32_MAX / 2)
        return lsa_err(LSA_ETEXT, "%s: a single word of %zu bytes is too long to tokenize", t->path, n);
    if (t->ignore_merges) {
        int32_t id = tk_vocab_get(t, w, n);
        if (id >= 0) return ids_push(out, id);
    }
    sc->n_sym = 0;
    sc->n_heap = 0;
    int32_t unk = -1;   /* pending unk symbol (fused runs grow unk_len) */
    size_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = char_len(w + i, n - i);
        bool first = i == 0, last = i + cl == n;
        const char *key = w + i;
        size_t key_len = cl;
        if ((t->cont_prefix && !first) || (t->eow_suffix && last)) {
            sc->key.n = 0;
            if (t->cont_prefix && !first && (rc = tk_buf_put(&sc->key, t->cont_prefix, strlen(t->cont_prefix)))) return rc;
            if ((rc = tk_buf_put(&sc->key, w + i, cl))) return rc;
            if (t->eow_suffix && last && (rc = tk_buf_put(&sc->key, t->eow_suffix, strlen(t->eow_suffix)))) return rc;
            key = sc->key.p;
            key_len = sc->key.n;
        }
        int32_t id = tk_vocab_get(t, key, key_len);
        if (id >= 0) {
            if (unk >= 0 && (rc = sym_add(sc, unk, unk_len))) return rc;
            unk = -1;
            if ((rc = sym_add(sc, id, cl))) return rc;
        } else {
            bool done = false;
            if (t->byte_fallback) {
                size_t j = 0;
                while (j < key_len && t->byte_id[(unsigned char)key[j]] >= 0) j++;
                if (j == key_len) {
                    /* Like `tokenizers`, bytes go in without flushing a pending unk first. */
                    for (j = 0; j < key_len; j++)
                        if ((rc = sym_add(sc, t->byte_id[(unsigned char)key[j]], 1))) return rc;
                    done = true;
                }
            }
            if (!done && t->unk_token) {
                if (t->unk_id < 0) {
                    uint32_t cp = 0;
                    tk_utf8_next((const unsigned char *)w + i, cl, &cp);
                    return lsa_err(LSA_ETEXT, "%s: U+%04X is not in the vocabulary and neither is unk_token \"%s\"",
                                   t->path, (unsigned)cp, t->unk_token);
                }
                if (unk >= 0 && t->fuse_unk) {
                    unk_len += cl;
                } else {
                    if (unk >= 0 && (rc = sym_add(sc, unk, unk_len))) return rc;
                    unk = t->unk_id;
                    unk_len = cl;
                }
            }
            /* no byte fallback and no unk token: the char is dropped, as `tokenizers` does */
        }
        i += cl;
    }
    if (unk >= 0 && (rc = sym_add(sc, unk, unk_len))) return rc;

    for (size_t k = 0; k + 1 < sc->n_sym; k++)
        if ((rc = push_pair(t, sc, (int32_t)k))) return rc;
    while (sc->n_heap) {
        struct bpe_ent top = heap_pop(sc);
        struct bpe_sym *l = &sc->sym[top.pos];
        if (l->len == 0 || l->next < 0) continue;
        int32_t rpos = l->next;
        struct bpe_sym r = sc->sym[rpos];
        /* A stale entry: the pair at pos changed since it was queued. */
        const struct tk_merge *m = tk_merge_get(t, l->id, r.id);
        if (!m || m->new_id != top.new_id) continue;
        l->id = top.new_id;
        l->len += r.len;
        l->next = r.next;
        sc->sym[rpos].len = 0;
        if (r.next >= 0) sc->sym[r.next].prev = (int32_t)top.pos;
        if (l->prev >= 0 && (rc = push_pair(t, sc, l->prev))) return rc;
        if ((rc = push_pair(t, sc, (int32_t)top.pos))) return rc;
    }
    for (size_t k = 0; k < sc->n_sym; k++)
        if (sc->sym[k].len && (rc = ids_push(out, sc->sym[k].id))) return rc;
    return 0;
}

/* ================================================================================================
 * Encode
 * ================================================================================================ */

static int encode_pieces(const struct lsa_tokenizer *t, struct scratch *sc, const char *text, size_t len,
                         struct idvec *out)
{
    struct plist a = {0}, b = {0};
    int rc = 0;
    /* 1. added tokens that are matched in the raw text */
    rc = split_added(t, sc, false, text, len, true, &a);
    /* 2. normalize each remaining segment, then cut out the normalized added tokens */
    for (size_t i = 0; i < a.n && rc == 0; i++) {
        struct piece p = a.v[i];
        if (p.id >= 0) {
            rc = plist_push(&b, "", 0, p.id, false);
            continue;
        }
        sc->key.n = 0;
        if ((rc = tk_normalize(t, a.buf.p + p.off, p.len, &sc->key))) break;
        /* sc->key is reused by bpe_word later, never while this piece is alive */
        struct tk_buf norm = sc->key;
        rc = split_added(t, sc, true, norm.p ? norm.p : "", norm.n, p.origin, &b);
    }
    /* 3. pre-tokenizers, one after the other, each on every text piece */
    for (size_t k = 0; k < t->n_pre && rc == 0; k++) {
        struct plist tmp = a;
        a = b;
        b = tmp;
        plist_clear(&b);
        for (size_t i = 0; i < a.n && rc == 0; i++) {
            struct piece p = a.v[i];
            if (p.id >= 0) rc = plist_push(&b, "", 0, p.id, false);
            else rc = pre_one(t, sc, &t->pre[k], a.buf.p + p.off, p.len, p.origin, &b);
        }
    }
    /* 4. the model */
    for (size_t i = 0; i < b.n && rc == 0; i++) {
        struct piece p = b.v[i];
        rc = p.id >= 0 ? ids_push(out, p.id) : bpe_word(t, sc, b.buf.p + p.off, p.len, out);
    }
    plist_free(&a);
    plist_free(&b);
    return rc;
}

int lsa_tokenizer_encode(const struct lsa_tokenizer *t, const char *text, size_t len, bool add_special,
                         int32_t **ids, size_t *n_ids)
{
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !ids || !n_ids || (!text && len)) return lsa_err(LSA_EINVAL, "lsa_tokenizer_encode: NULL argument");
    if (!text) text = "";
    size_t bad = tk_utf8_check(text, len);
    if (bad != len)
        return lsa_err(LSA_ETEXT, "%s: input text is not valid UTF-8 at byte offset %zu (byte 0x%02X)", t->path, bad,
                       (unsigned)(unsigned char)text[bad]);

    struct scratch sc = {0};
    struct idvec out = {0};
    int rc = 0;
    if (!(sc.md = pcre2_match_data_create(4, NULL))) rc = lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; add_special && i < t->n_prefix && rc == 0; i++) rc = ids_push(&out, t->prefix[i]);
    if (rc == 0) rc = encode_pieces(t, &sc, text, len, &out);
    for (size_t i = 0; add_special && i < t->n_suffix && rc == 0; i++) rc = ids_push(&out, t->suffix[i]);
    if (rc == 0 && !out.v && !(out.v = malloc(sizeof *out.v))) rc = lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    scratch_free(&sc);
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}
