/*
 * tokenizer_json.c — read the sections of a Hugging Face tokenizer.json (model type "BPE") into
 * struct lsa_tokenizer: model (vocab, merges, options), added_tokens, normalizer, pre_tokenizer,
 * post_processor, decoder.
 *
 * Every component the file names is either understood exactly as the `tokenizers` library
 * understands it or refused with LSA_EUNSUP naming the file and the component type; nothing is
 * silently approximated. Supported: normalizers Sequence/Prepend/Replace(String); pre-tokenizers
 * Sequence/ByteLevel/Metaspace/Split/Digits; post-processors ByteLevel/TemplateProcessing/
 * RobertaProcessing/BertProcessing/Sequence; decoders Sequence/ByteLevel/Metaspace/Replace(String)/
 * ByteFallback/Fuse/Strip. Not supported: Unigram/WordPiece/WordLevel models, Unicode normalization
 * forms (NFC, NFKC, ...), case folding, BPE dropout. The "truncation" and "padding" sections are
 * ignored because transformers' tokenizer(text) turns them off as well.
 */
#include "tokenizer_impl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================================================
 * JSON helpers
 * ================================================================================================ */

static const cJSON *jget(const cJSON *obj, const char *key) { return cJSON_GetObjectItemCaseSensitive(obj, key); }

static bool jnull(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* Optional boolean field: absent or null gives dflt; anything else but a boolean is a format error. */
static int jbool(const char *path, const cJSON *obj, const char *key, bool dflt, bool *out)
{
    const cJSON *v = jget(obj, key);
    if (jnull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return lsa_err(LSA_EFORMAT, "%s: field \"%s\" should be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Optional string field: NULL when absent or null. */
static int jstr(const char *path, const cJSON *obj, const char *key, const char **out)
{
    const cJSON *v = jget(obj, key);
    *out = NULL;
    if (jnull(v)) return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return lsa_err(LSA_EFORMAT, "%s: field \"%s\" should be a string", path, key);
    if (tk_utf8_check(v->valuestring, strlen(v->valuestring)) != strlen(v->valuestring))
        return lsa_err(LSA_EFORMAT, "%s: field \"%s\" is not valid UTF-8", path, key);
    *out = v->valuestring;
    return 0;
}

/* A non-negative integer that fits an int32 id. */
static int jid(const char *path, const cJSON *v, const char *what, int32_t *out)
{
    if (!cJSON_IsNumber(v)) return lsa_err(LSA_EFORMAT, "%s: %s should be an integer id", path, what);
    double d = v->valuedouble;
    if (!(d >= 0 && d < (double)(INT32_MAX / 2)) || d != (double)(int64_t)d)
        return lsa_err(LSA_EFORMAT, "%s: %s has id %g, expected an integer in [0, %d)", path, what, d, INT32_MAX / 2);
    *out = (int32_t)d;
    return 0;
}

static const char *jtype(const cJSON *obj)
{
    const cJSON *v = jget(obj, "type");
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* A "pattern" object {"String": "..."}; {"Regex": ...} is refused (no decoder or normalizer in the
 * supported families uses one). */
static int jpattern_string(const char *path, const cJSON *obj, const char *where, const char **out)
{
    const cJSON *pat = jget(obj, "pattern");
    if (!cJSON_IsObject(pat)) return lsa_err(LSA_EFORMAT, "%s: %s has no \"pattern\" object", path, where);
    if (jget(pat, "Regex"))
        return lsa_err(LSA_EUNSUP, "%s: %s with a Regex pattern is not supported (only String patterns)", path, where);
    int rc = jstr(path, pat, "String", out);
    if (rc) return rc;
    if (!*out || !**out) return lsa_err(LSA_EFORMAT, "%s: %s has an empty or missing String pattern", path, where);
    return 0;
}

/* ================================================================================================
 * Regexes (PCRE2 stands in for the Oniguruma engine `tokenizers` uses)
 * ================================================================================================ */

/* Oniguruma's \s is Unicode White_Space; PCRE2's (with UCP) leaves out U+0085. Spelling the class out
 * makes both agree, whatever PCRE2 version is installed. */
#define TK_WS_BODY "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

/* Rewrite \s and \S in an Oniguruma pattern to the explicit White_Space class. */
static int rewrite_ws(const char *pat, struct tk_buf *out)
{
    int rc = 0;
    bool in_class = false;
    for (size_t i = 0; pat[i] && rc == 0; i++) {
        char c = pat[i];
        if (c == '\\' && pat[i + 1]) {
            char e = pat[++i];
            if (e == 's')
                rc = tk_buf_put(out, in_class ? TK_WS_BODY : "[" TK_WS_BODY "]",
                                strlen(in_class ? TK_WS_BODY : "[" TK_WS_BODY "]"));
            else if (e == 'S' && !in_class)
                rc = tk_buf_put(out, "[^" TK_WS_BODY "]", strlen("[^" TK_WS_BODY "]"));
            else {
                char esc[2] = {'\\', e};
                rc = tk_buf_put(out, esc, 2);
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            rc = tk_buf_putc(out, c);
            if (pat[i + 1] == '^') rc = rc ? rc : tk_buf_putc(out, pat[++i]);
            if (pat[i + 1] == ']') rc = rc ? rc : tk_buf_putc(out, pat[++i]); /* a leading ] is literal */
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        rc = tk_buf_putc(out, c);
    }
    return rc;
}

static int compile_regex(const char *path, const char *onig_pat, pcre2_code **out)
{
    struct tk_buf b = {0};
    int rc = rewrite_ws(onig_pat, &b);
    if (rc) {
        free(b.p);
        return rc;
    }
    int err;
    PCRE2_SIZE erroff;
    *out = pcre2_compile((PCRE2_SPTR)(b.p ? b.p : ""), b.n, PCRE2_UTF | PCRE2_UCP, &err, &erroff, NULL);
    free(b.p);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lsa_err(LSA_EUNSUP, "%s: regex /%s/ cannot be compiled by PCRE2 (at %zu: %s)", path, onig_pat,
                       (size_t)erroff, (const char *)msg);
    }
    /* JIT is an optimisation only; the interpreter gives the same matches if it is unavailable. */
    (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return 0;
}

/* ================================================================================================
 * Model (BPE)
 * ================================================================================================ */

static int load_vocab(struct lsa_tokenizer *t, const cJSON *vocab)
{
    const char *path = t->path;
    if (!cJSON_IsObject(vocab)) return lsa_err(LSA_EFORMAT, "%s: model.vocab should be an object", path);
    size_t n = (size_t)cJSON_GetArraySize(vocab);
    int rc = tk_strmap_init(&t->vocab, n);
    if (rc) return rc;
    int32_t max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        const char *key = e->string ? e->string : "";
        char what[96];
        snprintf(what, sizeof what, "model.vocab entry \"%.60s\"", key);
        if ((rc = jid(path, e, what, &id))) return rc;
        size_t len = strlen(key);
        size_t off = t->pool.n;
        if ((rc = tk_buf_put(&t->pool, key, len)) || (rc = tk_buf_putc(&t->pool, '\0'))) return rc;
        tk_strmap_put(&t->vocab, t->pool.p, off, len, id);
        if (id > max_id) max_id = id;
    }
    t->n_piece = max_id + 1;
    t->piece_off = malloc((t->n_piece ? (size_t)t->n_piece : 1) * sizeof *t->piece_off);
    if (!t->piece_off) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i < t->n_piece; i++) t->piece_off[i] = SIZE_MAX;
    /* Map entries in file order so that, as with duplicates in a serde map, the last key for an id wins. */
    for (size_t e = 0; e < t->vocab.n; e++) t->piece_off[t->vocab.val[e]] = t->vocab.key_off[e];
    return 0;
}

static int add_merge(struct lsa_tokenizer *t, size_t rank, const char *a, size_t a_len, const char *b, size_t b_len,
                     struct tk_buf *scratch)
{
    int32_t ia = tk_vocab_get(t, a, a_len), ib = tk_vocab_get(t, b, b_len);
    if (ia < 0 || ib < 0)
        return lsa_err(LSA_EFORMAT, "%s: merge %zu (\"%.*s\" \"%.*s\"): \"%.*s\" is not in the vocabulary", t->path,
                       rank, (int)a_len, a, (int)b_len, b, ia < 0 ? (int)a_len : (int)b_len, ia < 0 ? a : b);
    /* The merged token drops the right part's continuing-subword prefix, as `tokenizers` does. */
    size_t skip = t->cont_prefix ? strlen(t->cont_prefix) : 0;
    if (skip > b_len)
        return lsa_err(LSA_EFORMAT, "%s: merge %zu: \"%.*s\" is shorter than the continuing_subword_prefix", t->path,
                       rank, (int)b_len, b);
    scratch->n = 0;
    int rc;
    if ((rc = tk_buf_put(scratch, a, a_len)) || (rc = tk_buf_put(scratch, b + skip, b_len - skip))) return rc;
    int32_t inew = tk_vocab_get(t, scratch->p ? scratch->p : "", scratch->n);
    if (inew < 0)
        return lsa_err(LSA_EFORMAT, "%s: merge %zu (\"%.*s\" \"%.*s\"): result \"%s\" is not in the vocabulary",
                       t->path, rank, (int)a_len, a, (int)b_len, b, scratch->p ? scratch->p : "");
    if (rank > UINT32_MAX - 1) return lsa_err(LSA_EFORMAT, "%s: too many merges", t->path);
    tk_merge_put(t, ia, ib, (uint32_t)rank, inew);
    return 0;
}

static int load_merges(struct lsa_tokenizer *t, const cJSON *merges)
{
    const char *path = t->path;
    if (jnull(merges)) return 0;
    if (!cJSON_IsArray(merges)) return lsa_err(LSA_EFORMAT, "%s: model.merges should be an array", path);
    int rc = tk_merge_init(t, (size_t)cJSON_GetArraySize(merges));
    if (rc) return rc;
    struct tk_buf scratch = {0};
    size_t rank = 0;
    for (const cJSON *m = merges->child; m && rc == 0; m = m->next) {
        if (cJSON_IsString(m) && m->valuestring) {
            /* Legacy "a b" form: exactly one space; "#version" header lines do not take a rank. */
            const char *s = m->valuestring;
            if (strncmp(s, "#version", 8) == 0) continue;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                rc = lsa_err(LSA_EFORMAT, "%s: merge %zu \"%s\" should be two tokens separated by one space", path,
                             rank, s);
            else
                rc = add_merge(t, rank, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), &scratch);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            const char *a = m->child->valuestring, *b = m->child->next->valuestring;
            rc = add_merge(t, rank, a, strlen(a), b, strlen(b), &scratch);
        } else {
            rc = lsa_err(LSA_EFORMAT, "%s: merge %zu should be a [\"a\", \"b\"] pair or an \"a b\" string", path, rank);
        }
        rank++;
    }
    free(scratch.p);
    return rc;
}

static int load_model(struct lsa_tokenizer *t, const cJSON *model)
{
    const char *path = t->path;
    if (!cJSON_IsObject(model)) return lsa_err(LSA_EFORMAT, "%s: no \"model\" object", path);
    const char *type = jtype(model);
    /* Old files leave the type out; `tokenizers` then recognises BPE by its merges. */
    if (!type && jget(model, "merges") && jget(model, "vocab")) type = "BPE";
    if (!type) return lsa_err(LSA_EFORMAT, "%s: model has no \"type\"", path);
    if (strcmp(type, "BPE") != 0)
        return lsa_err(LSA_EUNSUP, "%s: model type \"%s\" is not supported (supported: BPE)", path, type);
    const cJSON *dropout = jget(model, "dropout");
    if (!jnull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return lsa_err(LSA_EUNSUP, "%s: BPE dropout is not supported (it makes encoding random)", path);

    int rc;
    const char *s;
    if ((rc = jstr(path, model, "continuing_subword_prefix", &s))) return rc;
    if (s && !(t->cont_prefix = strdup(s))) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    if ((rc = jstr(path, model, "end_of_word_suffix", &s))) return rc;
    if (s && !(t->eow_suffix = strdup(s))) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    if ((rc = jbool(path, model, "fuse_unk", false, &t->fuse_unk))) return rc;
    if ((rc = jbool(path, model, "byte_fallback", false, &t->byte_fallback))) return rc;
    if ((rc = jbool(path, model, "ignore_merges", false, &t->ignore_merges))) return rc;

    if ((rc = load_vocab(t, jget(model, "vocab")))) return rc;
    if ((rc = load_merges(t, jget(model, "merges")))) return rc;

    if ((rc = jstr(path, model, "unk_token", &s))) return rc;
    t->unk_id = -1;
    if (s) {
        if (!(t->unk_token = strdup(s))) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        t->unk_id = tk_vocab_get(t, s, strlen(s));
    }
    for (int b = 0; b < 256; b++) {
        char code[8];
        snprintf(code, sizeof code, "<0x%02X>", b);
        t->byte_id[b] = tk_vocab_get(t, code, strlen(code));
    }
    return 0;
}

/* ================================================================================================
 * Added tokens
 * ================================================================================================ */

static int load_added(struct lsa_tokenizer *t, const cJSON *arr)
{
    const char *path = t->path;
    if (jnull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return lsa_err(LSA_EFORMAT, "%s: added_tokens should be an array", path);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    int rc;
    for (const cJSON *e = arr->child; e; e = e->next) {
        if (!cJSON_IsObject(e)) return lsa_err(LSA_EFORMAT, "%s: added_tokens[%zu] should be an object", path, t->n_added);
        const char *content;
        if ((rc = jstr(path, e, "content", &content))) return rc;
        if (!content) return lsa_err(LSA_EFORMAT, "%s: added_tokens[%zu] has no content", path, t->n_added);
        /* `tokenizers` ignores empty added tokens. */
        if (!*content) continue;
        struct tk_added *a = &t->added[t->n_added];
        if ((rc = jid(path, jget(e, "id"), "an added token", &a->id))) return rc;
        /* A token already in the model vocabulary keeps the model's id (what `tokenizers` does). */
        int32_t vid = tk_vocab_get(t, content, strlen(content));
        if (vid >= 0) a->id = vid;
        if ((rc = jbool(path, e, "special", false, &a->special))) return rc;
        if ((rc = jbool(path, e, "lstrip", false, &a->lstrip))) return rc;
        if ((rc = jbool(path, e, "rstrip", false, &a->rstrip))) return rc;
        if ((rc = jbool(path, e, "single_word", false, &a->single_word))) return rc;
        if ((rc = jbool(path, e, "normalized", !a->special, &a->normalized))) return rc;
        a->len = strlen(content);
        if (!(a->content = dup_bytes(content, a->len))) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        t->n_added++;
    }
    return 0;
}

/* Normalized added tokens are searched for in normalized text, so their pattern is normalized too. */
static int normalize_added(struct lsa_tokenizer *t)
{
    struct tk_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < t->n_added && rc == 0; i++) {
        struct tk_added *a = &t->added[i];
        b.n = 0;
        if (a->normalized) {
            rc = tk_normalize(t, a->content, a->len, &b);
        } else {
            rc = tk_buf_put(&b, a->content, a->len);
        }
        if (rc) break;
        a->match_len = b.n;
        if (!(a->match = dup_bytes(b.p ? b.p : "", b.n))) rc = lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        else if (a->match_len) t->added_first[a->normalized][(unsigned char)a->match[0]] = true;
        if (rc == 0 && a->single_word && !t->word_re) rc = compile_regex(t->path, "\\w", &t->word_re);
    }
    free(b.p);
    return rc;
}

/* ================================================================================================
 * Normalizer
 * ================================================================================================ */

static int push_norm(struct lsa_tokenizer *t, struct tk_norm nm)
{
    struct tk_norm *p = realloc(t->norm, (t->n_norm + 1) * sizeof *p);
    if (!p) {
        free(nm.a);
        free(nm.b);
        return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    }
    t->norm = p;
    t->norm[t->n_norm++] = nm;
    return 0;
}

static int load_normalizer(struct lsa_tokenizer *t, const cJSON *n, int depth)
{
    const char *path = t->path;
    if (jnull(n)) return 0;
    const char *type = jtype(n);
    if (!cJSON_IsObject(n) || !type) return lsa_err(LSA_EFORMAT, "%s: normalizer should be an object with a type", path);
    if (depth > 16) return lsa_err(LSA_EFORMAT, "%s: normalizers nested too deeply", path);
    int rc;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(n, "normalizers");
        if (!cJSON_IsArray(list)) return lsa_err(LSA_EFORMAT, "%s: Sequence normalizer has no \"normalizers\" array", path);
        for (const cJSON *c = list->child; c; c = c->next)
            if ((rc = load_normalizer(t, c, depth + 1))) return rc;
        return 0;
    }
    struct tk_norm nm = {0};
    const char *s;
    if (strcmp(type, "Prepend") == 0) {
        if ((rc = jstr(path, n, "prepend", &s))) return rc;
        if (!s) return lsa_err(LSA_EFORMAT, "%s: Prepend normalizer has no \"prepend\" string", path);
        nm.type = TK_NORM_PREPEND;
        nm.a_len = strlen(s);
        if (!(nm.a = dup_bytes(s, nm.a_len))) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        return push_norm(t, nm);
    }
    if (strcmp(type, "Replace") == 0) {
        const char *pat, *content;
        if ((rc = jpattern_string(path, n, "Replace normalizer", &pat))) return rc;
        if ((rc = jstr(path, n, "content", &content))) return rc;
        if (!content) return lsa_err(LSA_EFORMAT, "%s: Replace normalizer has no \"content\" string", path);
        nm.type = TK_NORM_REPLACE;
        nm.a_len = strlen(pat);
        nm.b_len = strlen(content);
        nm.a = dup_bytes(pat, nm.a_len);
        nm.b = dup_bytes(content, nm.b_len);
        if (!nm.a || !nm.b) {
            free(nm.a);
            free(nm.b);
            return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        }
        return push_norm(t, nm);
    }
    return lsa_err(LSA_EUNSUP, "%s: normalizer type \"%s\" is not supported (supported: Sequence, Prepend, Replace)",
                   path, type);
}

/* ================================================================================================
 * Pre-tokenizer
 * ================================================================================================ */

static int push_pre(struct lsa_tokenizer *t, struct tk_pre pr)
{
    struct tk_pre *p = realloc(t->pre, (t->n_pre + 1) * sizeof *p);
    if (!p) {
        pcre2_code_free(pr.re);
        free(pr.lit);
        return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    }
    t->pre = p;
    t->pre[t->n_pre++] = pr;
    return 0;
}

static int parse_behavior(const char *path, const cJSON *n, enum tk_behavior *out)
{
    const char *s;
    int rc = jstr(path, n, "behavior", &s);
    if (rc) return rc;
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    static const enum tk_behavior vals[] = {TK_REMOVED, TK_ISOLATED, TK_MERGED_PREV, TK_MERGED_NEXT, TK_CONTIGUOUS};
    for (size_t i = 0; s && i < 5; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = vals[i];
            return 0;
        }
    return lsa_err(LSA_EFORMAT, "%s: Split pre-tokenizer has behavior \"%s\", expected one of Removed, Isolated, "
                   "MergedWithPrevious, MergedWithNext, Contiguous", path, s ? s : "(none)");
}

/* GPT-2's pre-tokenization regex (what ByteLevel with use_regex applies). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int load_pre(struct lsa_tokenizer *t, const cJSON *n, int depth)
{
    const char *path = t->path;
    if (jnull(n)) return 0;
    const char *type = jtype(n);
    if (!cJSON_IsObject(n) || !type) return lsa_err(LSA_EFORMAT, "%s: pre_tokenizer should be an object with a type", path);
    if (depth > 16) return lsa_err(LSA_EFORMAT, "%s: pre_tokenizers nested too deeply", path);
    int rc;
    struct tk_pre pr = {0};
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(n, "pretokenizers");
        if (!cJSON_IsArray(list))
            return lsa_err(LSA_EFORMAT, "%s: Sequence pre_tokenizer has no \"pretokenizers\" array", path);
        for (const cJSON *c = list->child; c; c = c->next)
            if ((rc = load_pre(t, c, depth + 1))) return rc;
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        pr.type = TK_PRE_BYTELEVEL;
        if ((rc = jbool(path, n, "add_prefix_space", true, &pr.add_prefix_space))) return rc;
        if ((rc = jbool(path, n, "use_regex", true, &pr.use_regex))) return rc;
        if (pr.use_regex && (rc = compile_regex(path, GPT2_PATTERN, &pr.re))) return rc;
        t->kind = LSA_TOK_BYTELEVEL_BPE;
        return push_pre(t, pr);
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *rep, *scheme;
        if ((rc = jstr(path, n, "replacement", &rep))) return rc;
        if (!rep) rep = "\xe2\x96\x81";
        uint32_t cp;
        size_t l = tk_utf8_next((const unsigned char *)rep, strlen(rep), &cp);
        if (l == 0 || rep[l] != '\0')
            return lsa_err(LSA_EFORMAT, "%s: Metaspace replacement \"%s\" should be one character", path, rep);
        pr.type = TK_PRE_METASPACE;
        memcpy(pr.rep, rep, l);
        pr.rep_len = l;
        if ((rc = jbool(path, n, "split", true, &pr.split))) return rc;
        if ((rc = jstr(path, n, "prepend_scheme", &scheme))) return rc;
        if (scheme) {
            if (strcmp(scheme, "always") == 0) pr.prepend = TK_PREPEND_ALWAYS;
            else if (strcmp(scheme, "first") == 0) pr.prepend = TK_PREPEND_FIRST;
            else if (strcmp(scheme, "never") == 0) pr.prepend = TK_PREPEND_NEVER;
            else return lsa_err(LSA_EFORMAT, "%s: Metaspace prepend_scheme \"%s\" should be always, first or never", path, scheme);
        } else {
            /* Files written before prepend_scheme existed say add_prefix_space instead. */
            bool aps;
            if ((rc = jbool(path, n, "add_prefix_space", true, &aps))) return rc;
            pr.prepend = aps ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
        }
        return push_pre(t, pr);
    }
    if (strcmp(type, "Split") == 0) {
        pr.type = TK_PRE_SPLIT;
        const cJSON *pat = jget(n, "pattern");
        if (!cJSON_IsObject(pat)) return lsa_err(LSA_EFORMAT, "%s: Split pre-tokenizer has no \"pattern\" object", path);
        const char *re, *lit;
        if ((rc = jstr(path, pat, "Regex", &re)) || (rc = jstr(path, pat, "String", &lit))) return rc;
        if (!re && (!lit || !*lit))
            return lsa_err(LSA_EFORMAT, "%s: Split pre-tokenizer needs a Regex or a non-empty String pattern", path);
        if ((rc = parse_behavior(path, n, &pr.behavior))) return rc;
        if ((rc = jbool(path, n, "invert", false, &pr.invert))) return rc;
        if (re) {
            if ((rc = compile_regex(path, re, &pr.re))) return rc;
        } else {
            pr.lit_len = strlen(lit);
            if (!(pr.lit = dup_bytes(lit, pr.lit_len))) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        }
        return push_pre(t, pr);
    }
    if (strcmp(type, "Digits") == 0) {
        /* Digits is a Split on each numeric char: isolated one by one, or runs kept together. */
        bool individual;
        if ((rc = jbool(path, n, "individual_digits", false, &individual))) return rc;
        pr.type = TK_PRE_SPLIT;
        pr.behavior = individual ? TK_ISOLATED : TK_CONTIGUOUS;
        if ((rc = compile_regex(path, "\\p{N}", &pr.re))) return rc;
        return push_pre(t, pr);
    }
    return lsa_err(LSA_EUNSUP,
                   "%s: pre_tokenizer type \"%s\" is not supported (supported: Sequence, ByteLevel, Metaspace, Split, "
                   "Digits)", path, type);
}

/* ================================================================================================
 * Post-processor
 * ================================================================================================ */

static int push_ids(int32_t **arr, size_t *n, const int32_t *ids, size_t k, bool front)
{
    if (k == 0) return 0;
    int32_t *p = realloc(*arr, (*n + k) * sizeof *p);
    if (!p) return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    if (front) {
        memmove(p + k, p, *n * sizeof *p);
        memcpy(p, ids, k * sizeof *p);
    } else {
        memcpy(p + *n, ids, k * sizeof *p);
    }
    *arr = p;
    *n += k;
    return 0;
}

/* TemplateProcessing: the "single" template, SpecialTokens before "A" go in front, those after behind. */
static int load_template(struct lsa_tokenizer *t, const cJSON *n)
{
    const char *path = t->path;
    const cJSON *single = jget(n, "single"), *specials = jget(n, "special_tokens");
    if (!cJSON_IsArray(single)) return lsa_err(LSA_EFORMAT, "%s: TemplateProcessing has no \"single\" array", path);
    int32_t *pre = NULL, *post = NULL;
    size_t n_pre = 0, n_post = 0;
    bool seen_a = false;
    int rc = 0;
    for (const cJSON *item = single->child; item && rc == 0; item = item->next) {
        const cJSON *seq = jget(item, "Sequence"), *sp = jget(item, "SpecialToken");
        if (cJSON_IsObject(seq)) {
            seen_a = true;
            continue;
        }
        const cJSON *name = cJSON_IsObject(sp) ? jget(sp, "id") : NULL;
        if (!cJSON_IsString(name)) {
            rc = lsa_err(LSA_EFORMAT, "%s: TemplateProcessing item should be a Sequence or a SpecialToken with an id", path);
            break;
        }
        const cJSON *def = cJSON_IsObject(specials) ? jget(specials, name->valuestring) : NULL;
        const cJSON *ids = def ? jget(def, "ids") : NULL;
        if (!cJSON_IsArray(ids)) {
            rc = lsa_err(LSA_EFORMAT, "%s: TemplateProcessing uses special token \"%s\" that special_tokens does not "
                         "define", path, name->valuestring);
            break;
        }
        for (const cJSON *v = ids->child; v && rc == 0; v = v->next) {
            int32_t id;
            if ((rc = jid(path, v, "a TemplateProcessing special token", &id))) break;
            rc = seen_a ? push_ids(&post, &n_post, &id, 1, false) : push_ids(&pre, &n_pre, &id, 1, false);
        }
    }
    /* Nested processors (a Sequence) wrap what the earlier ones produced. */
    if (rc == 0) rc = push_ids(&t->prefix, &t->n_prefix, pre, n_pre, true);
    if (rc == 0) rc = push_ids(&t->suffix, &t->n_suffix, post, n_post, false);
    free(pre);
    free(post);
    return rc;
}

/* RobertaProcessing / BertProcessing: cls A sep, tokens given as ["<s>", 0]. */
static int load_cls_sep(struct lsa_tokenizer *t, const cJSON *n, const char *type)
{
    const cJSON *cls = jget(n, "cls"), *sep = jget(n, "sep");
    if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || cJSON_GetArraySize(cls) != 2 || cJSON_GetArraySize(sep) != 2)
        return lsa_err(LSA_EFORMAT, "%s: %s needs \"cls\" and \"sep\" as [token, id] pairs", t->path, type);
    int32_t cls_id, sep_id;
    int rc;
    if ((rc = jid(t->path, cls->child->next, "cls", &cls_id)) || (rc = jid(t->path, sep->child->next, "sep", &sep_id)))
        return rc;
    if ((rc = push_ids(&t->prefix, &t->n_prefix, &cls_id, 1, true))) return rc;
    return push_ids(&t->suffix, &t->n_suffix, &sep_id, 1, false);
}

static int load_post(struct lsa_tokenizer *t, const cJSON *n, int depth)
{
    const char *path = t->path;
    if (jnull(n)) return 0;
    const char *type = jtype(n);
    if (!cJSON_IsObject(n) || !type) return lsa_err(LSA_EFORMAT, "%s: post_processor should be an object with a type", path);
    if (depth > 16) return lsa_err(LSA_EFORMAT, "%s: post_processors nested too deeply", path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(n, "processors");
        if (!cJSON_IsArray(list)) return lsa_err(LSA_EFORMAT, "%s: Sequence post_processor has no \"processors\" array", path);
        int rc;
        for (const cJSON *c = list->child; c; c = c->next)
            if ((rc = load_post(t, c, depth + 1))) return rc;
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) return 0; /* only adjusts offsets, which lsa does not report */
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(t, n);
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) return load_cls_sep(t, n, type);
    return lsa_err(LSA_EUNSUP,
                   "%s: post_processor type \"%s\" is not supported (supported: Sequence, ByteLevel, TemplateProcessing, "
                   "RobertaProcessing, BertProcessing)", path, type);
}

/* ================================================================================================
 * Decoder
 * ================================================================================================ */

static int push_dec(struct lsa_tokenizer *t, struct tk_dec d)
{
    struct tk_dec *p = realloc(t->dec, (t->n_dec + 1) * sizeof *p);
    if (!p) {
        free(d.a);
        free(d.b);
        return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
    }
    t->dec = p;
    t->dec[t->n_dec++] = d;
    return 0;
}

static int one_char(const char *path, const char *s, const char *what, uint32_t *cp)
{
    size_t l = s ? tk_utf8_next((const unsigned char *)s, strlen(s), cp) : 0;
    if (l == 0 || s[l] != '\0') return lsa_err(LSA_EFORMAT, "%s: %s should be exactly one character", path, what);
    return 0;
}

static int jcount(const char *path, const cJSON *n, const char *key, size_t *out)
{
    const cJSON *v = jget(n, key);
    if (jnull(v)) {
        *out = 0;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 || v->valuedouble != (double)(long)v->valuedouble)
        return lsa_err(LSA_EFORMAT, "%s: Strip decoder field \"%s\" should be a small non-negative integer", path, key);
    *out = (size_t)v->valuedouble;
    return 0;
}

static int load_decoder(struct lsa_tokenizer *t, const cJSON *n, int depth)
{
    const char *path = t->path;
    if (jnull(n)) return 0;
    const char *type = jtype(n);
    if (!cJSON_IsObject(n) || !type) return lsa_err(LSA_EFORMAT, "%s: decoder should be an object with a type", path);
    if (depth > 16) return lsa_err(LSA_EFORMAT, "%s: decoders nested too deeply", path);
    int rc;
    struct tk_dec d = {0};
    const char *s;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(n, "decoders");
        if (!cJSON_IsArray(list)) return lsa_err(LSA_EFORMAT, "%s: Sequence decoder has no \"decoders\" array", path);
        for (const cJSON *c = list->child; c; c = c->next)
            if ((rc = load_decoder(t, c, depth + 1))) return rc;
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        d.type = TK_DEC_BYTELEVEL;
        return push_dec(t, d);
    }
    if (strcmp(type, "ByteFallback") == 0) {
        d.type = TK_DEC_BYTEFALLBACK;
        return push_dec(t, d);
    }
    if (strcmp(type, "Fuse") == 0) {
        d.type = TK_DEC_FUSE;
        return push_dec(t, d);
    }
    if (strcmp(type, "Strip") == 0) {
        d.type = TK_DEC_STRIP;
        if ((rc = jstr(path, n, "content", &s)) || (rc = one_char(path, s, "Strip decoder content", &d.cp))) return rc;
        if ((rc = jcount(path, n, "start", &d.start)) || (rc = jcount(path, n, "stop", &d.stop))) return rc;
        return push_dec(t, d);
    }
    if (strcmp(type, "Metaspace") == 0) {
        d.type = TK_DEC_METASPACE;
        if ((rc = jstr(path, n, "replacement", &s))) return rc;
        if ((rc = one_char(path, s ? s : "\xe2\x96\x81", "Metaspace replacement", &d.cp))) return rc;
        const char *scheme;
        if ((rc = jstr(path, n, "prepend_scheme", &scheme))) return rc;
        if (scheme) {
            d.prepend = strcmp(scheme, "never") != 0;
        } else {
            bool aps;
            if ((rc = jbool(path, n, "add_prefix_space", true, &aps))) return rc;
            d.prepend = aps;
        }
        return push_dec(t, d);
    }
    if (strcmp(type, "Replace") == 0) {
        const char *pat, *content;
        if ((rc = jpattern_string(path, n, "Replace decoder", &pat))) return rc;
        if ((rc = jstr(path, n, "content", &content))) return rc;
        if (!content) return lsa_err(LSA_EFORMAT, "%s: Replace decoder has no \"content\" string", path);
        d.type = TK_DEC_REPLACE;
        d.a_len = strlen(pat);
        d.b_len = strlen(content);
        d.a = dup_bytes(pat, d.a_len);
        d.b = dup_bytes(content, d.b_len);
        if (!d.a || !d.b) {
            free(d.a);
            free(d.b);
            return lsa_err(LSA_ENOMEM, "tokenizer: out of memory");
        }
        return push_dec(t, d);
    }
    return lsa_err(LSA_EUNSUP,
                   "%s: decoder type \"%s\" is not supported (supported: Sequence, ByteLevel, Metaspace, Replace, "
                   "ByteFallback, Fuse, Strip)", path, type);
}
/* ================================================================================================
 * The whole file
 * ================================================================================================ */

int tk_json_load(struct lsa_tokenizer *t, const cJSON *root)
{
    const char *path = t->path;
    if (!cJSON_IsObject(root)) return lsa_err(LSA_EFORMAT, "%s: top level should be a JSON object", path);
    int rc;
    t->kind = LSA_TOK_SP_BPE; /* until a ByteLevel pre-tokenizer says otherwise */
    if ((rc = load_model(t, jget(root, "model")))) return rc;
    return tk_json_load_pipeline(t, root);
}

int tk_json_load_pipeline(struct lsa_tokenizer *t, const cJSON *root)
{
    int rc;
    if ((rc = load_added(t, jget(root, "added_tokens")))) return rc;
    if ((rc = load_normalizer(t, jget(root, "normalizer"), 0))) return rc;
    if ((rc = normalize_added(t))) return rc;
    if ((rc = load_pre(t, jget(root, "pre_tokenizer"), 0))) return rc;
    if ((rc = load_post(t, jget(root, "post_processor"), 0))) return rc;
    const cJSON *dec = jget(root, "decoder");
    t->has_decoder = !jnull(dec);
    return load_decoder(t, dec, 0);
}
