/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"
#include "util.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* A growing string; a failed allocation is remembered and reported once at the end. */
typedef struct Str {
        char *p;
        size_t len, alloc;
        bool oom;
} Str;

static void str_put(Str *s, const char *p, size_t n)
{
        if (s->oom)
                return;
        if (s->len + n + 1 > s->alloc) {
                size_t want = MAX(s->alloc * 2, s->len + n + 64);
                char *q = realloc(s->p, want);

                if (!q) {
                        s->oom = true;
                        return;
                }
                s->p = q;
                s->alloc = want;
        }
        memcpy(s->p + s->len, p, n);
        s->len += n;
        s->p[s->len] = 0;
}

static void str_puts(Str *s, const char *p)
{
        str_put(s, p, strlen(p));
}

static void str_putc(Str *s, char c)
{
        str_put(s, &c, 1);
}

static bool unreserved(unsigned char c)
{
        return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* URI-encodes bytes as SigV4 wants: unreserved characters as they are, everything else %XX
 * (upper case hex); '/' is kept when keep_slash. */
static void str_put_encoded(Str *s, const char *p, size_t n, bool keep_slash)
{
        static const char hex[] = "0123456789ABCDEF";

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)p[i];

                if (unreserved(c) || (keep_slash && c == '/'))
                        str_putc(s, (char)c);
                else {
                        char e[3] = { '%', hex[c >> 4], hex[c & 15] };
                        str_put(s, e, 3);
                }
        }
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char)tolower((unsigned char)c);
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* Percent-decodes p[0..n) into a new string (invalid escapes are kept as they are). */
static char *percent_decode(const char *p, size_t n, size_t *ret_len)
{
        char *out = malloc(n + 1);
        size_t k = 0;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
                        out[k++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
                        i += 2;
                } else
                        out[k++] = p[i];
        }
        out[k] = 0;
        *ret_len = k;
        return out;
}

static void hex_encode(const unsigned char *d, size_t n, char *out)
{
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hex[d[i] >> 4];
                out[2 * i + 1] = hex[d[i] & 15];
        }
        out[2 * n] = 0;
}

static int sha256_hex(const void *p, size_t n, char out[static 65])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;

        if (!EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) || len != 32)
                return -EIO;
        hex_encode(md, 32, out);
        return 0;
}

static int hmac(const void *key, size_t key_len, const char *data, unsigned char out[static 32])
{
        unsigned len = 0;

        if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, strlen(data), out, &len) ||
            len != 32)
                return -EIO;
        return 0;
}

/* The canonical path: "." and ".." segments resolved and repeated slashes merged (unless
 * keep_path), then each segment URI-encoded. */
static int canonical_path(Str *s, const char *path, bool keep_path)
{
        _cleanup_free_ char *copy = NULL;
        const char **segs = NULL;
        size_t n = 0, cap = 0;
        bool trailing;
        char *save = NULL;

        if (!path || !*path)
                path = "/";
        if (keep_path) {
                str_put_encoded(s, path, strlen(path), true);
                return 0;
        }
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        trailing = path[strlen(path) - 1] == '/';
        for (char *seg = strtok_r(copy, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
                if (streq(seg, "."))
                        continue;
                if (streq(seg, "..")) {
                        if (n > 0)
                                n--;
                        continue;
                }
                if (n == cap) {
                        const char **p = realloc(segs, (cap = cap ? cap * 2 : 8) * sizeof(*segs));

                        if (!p) {
                                free(segs);
                                return -ENOMEM;
                        }
                        segs = p;
                }
                segs[n++] = seg;
        }
        str_putc(s, '/');
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        str_putc(s, '/');
                str_put_encoded(s, segs[i], strlen(segs[i]), false);
        }
        if (trailing && n > 0)
                str_putc(s, '/');
        free(segs);
        return 0;
}

typedef struct QueryParam {
        char *key, *value; /* encoded */
} QueryParam;

static int param_cmp(const void *a, const void *b)
{
        const QueryParam *x = a, *y = b;
        int c = strcmp(x->key, y->key);

        return c ? c : strcmp(x->value, y->value);
}

/* Re-encodes one part of a query: decoded first, so "%E1%88%B4" stays as it is and "a b" gets
 * encoded. */
static char *query_part(const char *p, size_t n)
{
        _cleanup_free_ char *dec = NULL;
        Str s = { 0 };
        size_t len;

        dec = percent_decode(p, n, &len);
        if (!dec)
                return NULL;
        str_put_encoded(&s, dec, len, false);
        if (!s.p && !s.oom)
                str_put(&s, "", 0);
        if (s.oom) {
                free(s.p);
                return NULL;
        }
        return s.p;
}

static int canonical_query(Str *s, const char *query)
{
        QueryParam *params = NULL;
        size_t n = 0, cap = 0;
        int r = 0;

        for (const char *p = query; p && *p;) {
                const char *end = strchr(p, '&'), *eq;
                size_t len = end ? (size_t)(end - p) : strlen(p);

                if (len > 0) {
                        eq = memchr(p, '=', len);
                        if (n == cap) {
                                QueryParam *q = realloc(params, (cap = cap ? cap * 2 : 8) * sizeof(*params));
                                if (!q) {
                                        r = -ENOMEM;
                                        break;
                                }
                                params = q;
                        }
                        params[n].key = query_part(p, eq ? (size_t)(eq - p) : len);
                        params[n].value = eq ? query_part(eq + 1, len - (size_t)(eq - p) - 1) : strdup("");
                        n++;
                        if (!params[n - 1].key || !params[n - 1].value) {
                                r = -ENOMEM;
                                break;
                        }
                }
                p += len + (end ? 1 : 0);
        }
        if (r >= 0) {
                if (n > 0)
                        qsort(params, n, sizeof(*params), param_cmp);
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                str_putc(s, '&');
                        str_puts(s, params[i].key);
                        str_putc(s, '=');
                        str_puts(s, params[i].value);
                }
        }
        for (size_t i = 0; i < n; i++) {
                free(params[i].key);
                free(params[i].value);
        }
        free(params);
        return r;
}

typedef struct CanonHeader {
        char *name; /* lower case */
        Str value;  /* trimmed, whitespace collapsed, duplicates joined with ',' */
        size_t order;
} CanonHeader;

static int header_cmp(const void *a, const void *b)
{
        const CanonHeader *x = a, *y = b;
        int c = strcmp(x->name, y->name);

        return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

/* Appends value trimmed, with every run of whitespace (folded lines included) made one space. */
static void put_trimmed(Str *s, const char *v)
{
        bool space = false, started = false;

        for (; *v; v++) {
                if (isspace((unsigned char)*v)) {
                        space = started;
                        continue;
                }
                if (space)
                        str_putc(s, ' ');
                space = false;
                started = true;
                str_putc(s, *v);
        }
}

static bool header_name_valid(const char *n)
{
        if (!n || !*n)
                return false;
        for (; *n; n++)
                if (isspace((unsigned char)*n) || *n == ':' || (unsigned char)*n < 0x20)
                        return false;
        return true;
}

int sigv4_sign(const Sigv4Request *req, const Sigv4Credentials *cred, const char *region,
               const char *service, time_t when, Sigv4Result *ret)
{
        Str canon = { 0 }, signed_names = { 0 }, sts = { 0 }, auth = { 0 };
        size_t n_extra = 3, n = 0, n_unique = 0;
        CanonHeader *hs = NULL;
        unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
        char date[9], scope[256], hash[65];
        _cleanup_free_ char *secret_key = NULL;
        struct tm tm;
        int r;

        *ret = (Sigv4Result){ 0 };
        if (!req || !cred || !cred->access_key_id || !cred->secret_access_key || !region || !service ||
            !req->method)
                return -EINVAL;
        for (size_t i = 0; i < req->n_headers; i++)
                if (!header_name_valid(req->headers[i].name) || !req->headers[i].value)
                        return -EINVAL;

        gmtime_r(&when, &tm);
        strftime(ret->amz_date, sizeof(ret->amz_date), "%Y%m%dT%H%M%SZ", &tm);
        strftime(date, sizeof(date), "%Y%m%d", &tm);
        snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, region, service);
        r = sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0, ret->content_sha256);
        if (r < 0)
                return r;

        /* The headers signed: the request's and the ones signing adds. */
        hs = calloc(req->n_headers + n_extra, sizeof(*hs));
        if (!hs)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_headers + n_extra; i++) {
                const char *name, *value;

                if (i < req->n_headers) {
                        name = req->headers[i].name;
                        value = req->headers[i].value;
                } else if (i == req->n_headers) {
                        name = "x-amz-date";
                        value = ret->amz_date;
                } else if (i == req->n_headers + 1) {
                        if (!cred->session_token || req->omit_session_token)
                                continue;
                        name = "x-amz-security-token";
                        value = cred->session_token;
                } else {
                        if (!req->add_content_sha256)
                                continue;
                        name = "x-amz-content-sha256";
                        value = ret->content_sha256;
                }
                hs[n].name = strdup(name);
                if (!hs[n].name) {
                        r = -ENOMEM;
                        goto finish;
                }
                for (char *c = hs[n].name; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
                put_trimmed(&hs[n].value, value);
                hs[n].order = i;
                n++;
        }
        qsort(hs, n, sizeof(*hs), header_cmp);

        /* Canonical request: method, path, query, headers (duplicates joined), signed names, hash. */
        str_puts(&canon, req->method);
        str_putc(&canon, '\n');
        r = canonical_path(&canon, req->path, req->keep_path);
        if (r < 0)
                goto finish;
        str_putc(&canon, '\n');
        r = canonical_query(&canon, req->query);
        if (r < 0)
                goto finish;
        str_putc(&canon, '\n');
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && streq(hs[i].name, hs[i - 1].name)) {
                        str_putc(&canon, ',');
                } else {
                        if (i > 0)
                                str_putc(&canon, '\n');
                        str_puts(&canon, hs[i].name);
                        str_putc(&canon, ':');
                        if (n_unique++ > 0)
                                str_putc(&signed_names, ';');
                        str_puts(&signed_names, hs[i].name);
                }
                if (hs[i].value.p)
                        str_puts(&canon, hs[i].value.p);
        }
        str_puts(&canon, "\n\n");
        str_puts(&canon, signed_names.p ? signed_names.p : "");
        str_putc(&canon, '\n');
        str_puts(&canon, ret->content_sha256);
        if (canon.oom || signed_names.oom) {
                r = -ENOMEM;
                goto finish;
        }

        r = sha256_hex(canon.p, canon.len, hash);
        if (r < 0)
                goto finish;
        str_puts(&sts, ALGORITHM "\n");
        str_puts(&sts, ret->amz_date);
        str_putc(&sts, '\n');
        str_puts(&sts, scope);
        str_putc(&sts, '\n');
        str_puts(&sts, hash);

        /* The signing key: HMAC chained over date, region, service and "aws4_request". */
        if (asprintf(&secret_key, "AWS4%s", cred->secret_access_key) < 0) {
                secret_key = NULL;
                r = -ENOMEM;
                goto finish;
        }
        if ((r = hmac(secret_key, strlen(secret_key), date, k1)) < 0 || (r = hmac(k1, 32, region, k2)) < 0 ||
            (r = hmac(k2, 32, service, k3)) < 0 || (r = hmac(k3, 32, "aws4_request", k4)) < 0 ||
            (r = sts.oom ? -ENOMEM : 0) < 0 || (r = hmac(k4, 32, sts.p, sig)) < 0)
                goto finish;
        hex_encode(sig, 32, ret->signature);

        str_puts(&auth, ALGORITHM " Credential=");
        str_puts(&auth, cred->access_key_id);
        str_putc(&auth, '/');
        str_puts(&auth, scope);
        str_puts(&auth, ", SignedHeaders=");
        str_puts(&auth, signed_names.p);
        str_puts(&auth, ", Signature=");
        str_puts(&auth, ret->signature);
        if (auth.oom) {
                r = -ENOMEM;
                goto finish;
        }
        ret->authorization = TAKE_PTR(auth.p);
        ret->canonical_request = TAKE_PTR(canon.p);
        ret->string_to_sign = TAKE_PTR(sts.p);
        r = 0;

finish:
        if (secret_key)
                OPENSSL_cleanse(secret_key, strlen(secret_key));
        OPENSSL_cleanse(k1, sizeof(k1));
        OPENSSL_cleanse(k2, sizeof(k2));
        OPENSSL_cleanse(k3, sizeof(k3));
        OPENSSL_cleanse(k4, sizeof(k4));
        for (size_t i = 0; i < n; i++) {
                free(hs[i].name);
                free(hs[i].value.p);
        }
        free(hs);
        free(canon.p);
        free(signed_names.p);
        free(sts.p);
        free(auth.p);
        if (r < 0)
                sigv4_result_done(ret);
        return r;
}

void sigv4_result_done(Sigv4Result *r)
{
        free(r->authorization);
        free(r->canonical_request);
        free(r->string_to_sign);
        *r = (Sigv4Result){ 0 };
}
