/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <stdio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"
#include "util.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SHA256_BYTES    32
#define SHA256_HEX_MAX  (2 * SHA256_BYTES + 1)

/* Character classes in plain ASCII: the C library's depend on the locale (isalnum() and tolower()
 * on a byte above 0x7f), and a signature must not. */
static bool ascii_alnum(unsigned char c)
{
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool ascii_space(unsigned char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static char ascii_lower(char c)
{
        return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Header names are tokens (checked first), so comparing them in ASCII is enough. */
static bool ascii_strcaseeq(const char *a, const char *b)
{
        for (; *a && ascii_lower(*a) == ascii_lower(*b); a++, b++)
                ;
        return ascii_lower(*a) == ascii_lower(*b);
}

static int hexval(unsigned char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* RFC 3986 unreserved: the only bytes SigV4 leaves unencoded. */
static bool unreserved(unsigned char c)
{
        return ascii_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 9110 token, what a header name or a method may be made of. */
static bool token_valid(const char *s)
{
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (!ascii_alnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
                        return false;
        return true;
}

/* A header value may hold visible characters, spaces, tabs and bytes above 0x7f; a line break only
 * when the next line is folded (starts with a space or tab). Anything else could end the header
 * early when it is sent. */
static bool header_value_valid(const char *v)
{
        for (; *v; v++) {
                unsigned char c = (unsigned char)*v;

                if (c == '\r' && v[1] == '\n')
                        continue;
                if (c == '\n') {
                        if (v[1] != ' ' && v[1] != '\t')
                                return false;
                        continue;
                }
                if ((c < 0x20 && c != '\t') || c == 0x7f)
                        return false;
        }
        return true;
}

/* A region, service or access key: printable ASCII with no space, and none of the bytes in
 * forbidden, because it goes between the '/' of the credential scope and into a header. */
static bool word_valid(const char *s, const char *forbidden)
{
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || strchr(forbidden, *s))
                        return false;
        return true;
}

static void str_put_encoded_byte(Buf *s, unsigned char c, bool keep_slash)
{
        static const char hex[] = "0123456789ABCDEF";

        if (unreserved(c) || (keep_slash && c == '/'))
                buf_putc(s, (char)c);
        else
                buf_put(s, (const char[]){ '%', hex[c >> 4], hex[c & 15] }, 3);
}

/* URI-encodes as SigV4 wants: unreserved bytes as they are, everything else %XX in upper case. */
static void str_put_encoded(Buf *s, const char *p, size_t n, bool keep_slash)
{
        for (size_t i = 0; i < n; i++)
                str_put_encoded_byte(s, (unsigned char)p[i], keep_slash);
}

/* Decodes and encodes again, so that "%e1%88%b4" and a raw U+1234 both become "%E1%88%B4" and a
 * raw space "%20". A '%' that starts no valid escape is taken as a byte and becomes "%25". */
static void str_put_reencoded(Buf *s, const char *p, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)p[i];

                if (c == '%' && i + 2 < n && hexval((unsigned char)p[i + 1]) >= 0 &&
                    hexval((unsigned char)p[i + 2]) >= 0) {
                        c = (unsigned char)(hexval((unsigned char)p[i + 1]) * 16 +
                                            hexval((unsigned char)p[i + 2]));
                        i += 2;
                }
                str_put_encoded_byte(s, c, false);
        }
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

int sigv4_sha256_hex(const void *p, size_t n, char out[static 65])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;

        if (!EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) || len != SHA256_BYTES)
                return -EIO;
        hex_encode(md, SHA256_BYTES, out);
        return 0;
}

static int hmac_sha256(const void *key, size_t key_len, const char *data,
                       unsigned char out[static SHA256_BYTES])
{
        unsigned len = 0;

        if (key_len > INT_MAX)
                return -EINVAL;
        if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, strlen(data), out, &len) ||
            len != SHA256_BYTES)
                return -EIO;
        return 0;
}

static void key_erase(unsigned char (*k)[SHA256_BYTES])
{
        OPENSSL_cleanse(*k, sizeof(*k));
}
#define _cleanup_key_ _cleanup_(key_erase)

static void erase_freep(char **p)
{
        if (*p) {
                OPENSSL_cleanse(*p, strlen(*p));
                free(*p);
        }
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request"). Every
 * intermediate key is wiped on the way out; the caller wipes the result. */
static int derive_signing_key(const char *secret, const char *date, const char *region, const char *service,
                              unsigned char key[static SHA256_BYTES])
{
        _cleanup_key_ unsigned char k_date[SHA256_BYTES], k_region[SHA256_BYTES], k_service[SHA256_BYTES];
        _cleanup_(erase_freep) char *k_secret = NULL;
        size_t len = strlen(secret);
        int r;

        k_secret = malloc(len + 5);
        if (!k_secret)
                return -ENOMEM;
        memcpy(k_secret, "AWS4", 4);
        memcpy(k_secret + 4, secret, len + 1);

        r = hmac_sha256(k_secret, len + 4, date, k_date);
        if (r >= 0)
                r = hmac_sha256(k_date, SHA256_BYTES, region, k_region);
        if (r >= 0)
                r = hmac_sha256(k_region, SHA256_BYTES, service, k_service);
        if (r >= 0)
                r = hmac_sha256(k_service, SHA256_BYTES, "aws4_request", key);
        return r;
}

/* The canonical path. Unless keep_path, "." and ".." segments are resolved and empty ones dropped
 * first (a trailing slash stays), the way botocore does it. Each segment is then URI-encoded as
 * given. */
static int put_canonical_path(Buf *s, const char *path, bool keep_path)
{
        typedef struct Segment {
                const char *p;
                size_t n;
        } Segment;
        _cleanup_free_ Segment *segs = NULL;
        size_t n = 0, len = strlen(path);

        if (keep_path) {
                str_put_encoded(s, path, len, true);
                return 0;
        }
        /* Every segment takes its '/' and at least one byte, so this is enough. */
        segs = malloc((len / 2 + 1) * sizeof(*segs));
        if (!segs)
                return -ENOMEM;
        for (const char *p = path; *p;) {
                size_t k = strcspn(p, "/");

                if (k == 0) {
                        p++;
                        continue;
                }
                if (k == 2 && p[0] == '.' && p[1] == '.') {
                        if (n > 0)
                                n--;
                } else if (!(k == 1 && p[0] == '.'))
                        segs[n++] = (Segment){ p, k };
                p += k;
        }
        buf_putc(s, '/');
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        buf_putc(s, '/');
                str_put_encoded(s, segs[i].p, segs[i].n, false);
        }
        if (n > 0 && path[len - 1] == '/')
                buf_putc(s, '/');
        return 0;
}

typedef struct QueryParam {
        Buf key, value; /* encoded */
} QueryParam;

static int param_cmp(const void *a, const void *b)
{
        const QueryParam *x = a, *y = b;
        int c = strcmp(buf_str(&x->key), buf_str(&y->key));

        return c ? c : strcmp(buf_str(&x->value), buf_str(&y->value));
}

/* The canonical query: each "key=value" (a missing '=' means an empty value) re-encoded, sorted by
 * key and then value, joined with '&'. */
static int put_canonical_query(Buf *s, const char *query)
{
        QueryParam *params = NULL;
        size_t n = 0, n_max = 1;
        int r = 0;

        if (!query || !*query)
                return 0;
        for (const char *p = query; *p; p++)
                n_max += *p == '&';
        params = calloc(n_max, sizeof(*params));
        if (!params)
                return -ENOMEM;
        for (const char *p = query; *p;) {
                size_t len = strcspn(p, "&");
                const char *eq = memchr(p, '=', len);

                if (len > 0) {
                        QueryParam *q = &params[n++];
                        size_t key_len = eq ? (size_t)(eq - p) : len;

                        str_put_reencoded(&q->key, p, key_len);
                        if (eq)
                                str_put_reencoded(&q->value, eq + 1, len - key_len - 1);
                        if (q->key.oom || q->value.oom) {
                                r = -ENOMEM;
                                break;
                        }
                }
                p += len + (p[len] == '&');
        }
        if (r >= 0) {
                qsort(params, n, sizeof(*params), param_cmp);
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                buf_putc(s, '&');
                        buf_puts(s, buf_str(&params[i].key));
                        buf_putc(s, '=');
                        buf_puts(s, buf_str(&params[i].value));
                }
        }
        for (size_t i = 0; i < n; i++) {
                buf_done(&params[i].key);
                buf_done(&params[i].value);
        }
        free(params);
        return r;
}

typedef struct CanonHeader {
        char *name;   /* lower case */
        Buf value;    /* trimmed, each run of whitespace one space */
        size_t order; /* position in the request: duplicates are joined in this order */
} CanonHeader;

typedef struct CanonHeaders {
        CanonHeader *h;
        size_t n;
} CanonHeaders;

static void canon_headers_done(CanonHeaders *c)
{
        for (size_t i = 0; i < c->n; i++) {
                free(c->h[i].name);
                buf_done(&c->h[i].value);
        }
        free(c->h);
        *c = (CanonHeaders){ 0 };
}

static int header_cmp(const void *a, const void *b)
{
        const CanonHeader *x = a, *y = b;
        int c = strcmp(x->name, y->name);

        return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Appends v trimmed, every run of whitespace (folded lines included) made one space. */
static void str_put_trimmed(Buf *s, const char *v)
{
        bool space = false, started = false;

        for (; *v; v++) {
                if (ascii_space((unsigned char)*v)) {
                        space = started;
                        continue;
                }
                if (space)
                        buf_putc(s, ' ');
                space = false;
                started = true;
                buf_putc(s, *v);
        }
        /* An empty value is a value: make sure the Buf owns a string. */
        buf_put(s, "", 0);
}

static int canon_headers_add(CanonHeaders *c, const char *name, const char *value, size_t order)
{
        CanonHeader *h = &c->h[c->n];

        *h = (CanonHeader){ .name = strdup(name), .order = order };
        c->n++;
        if (!h->name)
                return -ENOMEM;
        for (char *p = h->name; *p; p++)
                *p = ascii_lower(*p);
        str_put_trimmed(&h->value, value);
        return h->value.oom ? -ENOMEM : 0;
}

/* The headers the signer adds itself may not come with the request: they would be signed twice. */
static bool header_reserved(const char *name, const Sigv4Request *req, const Sigv4Credentials *cred)
{
        return ascii_strcaseeq(name, "x-amz-date") || ascii_strcaseeq(name, "authorization") ||
               (cred->session_token && ascii_strcaseeq(name, "x-amz-security-token")) ||
               (req->add_content_sha256 && ascii_strcaseeq(name, "x-amz-content-sha256"));
}

static int request_check(const Sigv4Request *req, const Sigv4Credentials *cred, const char *region,
                         const char *service)
{
        if (!req || !cred || !token_valid(req->method))
                return -EINVAL;
        if (!word_valid(cred->access_key_id, ",/") || !cred->secret_access_key || !*cred->secret_access_key)
                return -EINVAL;
        /* The token is sent as a header of its own: one line, nothing to fold. */
        if (cred->session_token && !word_valid(cred->session_token, ""))
                return -EINVAL;
        if (!word_valid(region, "/") || !word_valid(service, "/"))
                return -EINVAL;
        if (req->path && *req->path && req->path[0] != '/')
                return -EINVAL;
        if ((req->n_headers > 0 && !req->headers) || (req->body_len > 0 && !req->body))
                return -EINVAL;
        for (size_t i = 0; i < req->n_headers; i++) {
                const Sigv4Header *h = &req->headers[i];

                if (!token_valid(h->name) || !h->value || !header_value_valid(h->value) ||
                    header_reserved(h->name, req, cred))
                        return -EINVAL;
        }
        return 0;
}

/* Method, path, query, canonical headers, an empty line, the signed header names, the payload
 * hash; also returns the signed names for the Authorization header. */
static int build_canonical_request(const Sigv4Request *req, const Sigv4Credentials *cred,
                                   const Sigv4Result *res, Buf *canon, Buf *signed_names)
{
        _cleanup_(canon_headers_done) CanonHeaders hs = { 0 };
        size_t n_unique = 0;
        int r;

        hs.h = calloc(req->n_headers + 3, sizeof(*hs.h));
        if (!hs.h)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_headers; i++) {
                r = canon_headers_add(&hs, req->headers[i].name, req->headers[i].value, i);
                if (r < 0)
                        return r;
        }
        r = canon_headers_add(&hs, "x-amz-date", res->amz_date, req->n_headers);
        if (r >= 0 && cred->session_token && !req->omit_session_token)
                r = canon_headers_add(&hs, "x-amz-security-token", cred->session_token, req->n_headers + 1);
        if (r >= 0 && req->add_content_sha256)
                r = canon_headers_add(&hs, "x-amz-content-sha256", res->content_sha256, req->n_headers + 2);
        if (r < 0)
                return r;
        qsort(hs.h, hs.n, sizeof(*hs.h), header_cmp);

        buf_puts(canon, req->method);
        buf_putc(canon, '\n');
        r = put_canonical_path(canon, req->path && *req->path ? req->path : "/", req->keep_path);
        if (r < 0)
                return r;
        buf_putc(canon, '\n');
        r = put_canonical_query(canon, req->query);
        if (r < 0)
                return r;
        buf_putc(canon, '\n');
        /* Sorted by name and then request order, so repeated names come together, in order. */
        for (size_t i = 0; i < hs.n; i++) {
                if (i > 0 && streq(hs.h[i].name, hs.h[i - 1].name))
                        buf_putc(canon, ',');
                else {
                        buf_puts(canon, i > 0 ? "\n" : "");
                        buf_puts(canon, hs.h[i].name);
                        buf_putc(canon, ':');
                        buf_puts(signed_names, n_unique++ > 0 ? ";" : "");
                        buf_puts(signed_names, hs.h[i].name);
                }
                buf_puts(canon, buf_str(&hs.h[i].value));
        }
        buf_puts(canon, "\n\n");
        buf_puts(canon, buf_str(signed_names) ?: "");
        buf_putc(canon, '\n');
        buf_puts(canon, res->content_sha256);
        return canon->oom || signed_names->oom ? -ENOMEM : 0;
}

static int result_add_header(Sigv4Result *res, const char *name, const char *value)
{
        Sigv4Header *h = &res->headers[res->n_headers];

        h->name = name;
        h->value = strdup(value);
        if (!h->value)
                return -ENOMEM;
        res->n_headers++;
        return 0;
}

int sigv4_sign(const Sigv4Request *req, const Sigv4Credentials *cred, const char *region,
               const char *service, time_t when, Sigv4Result *ret)
{
        _cleanup_(sigv4_result_done) Sigv4Result res = { 0 };
        _cleanup_(buf_done) Buf canon = { 0 }, signed_names = { 0 }, sts = { 0 }, scope = { 0 },
                                auth = { 0 };
        _cleanup_key_ unsigned char key[SHA256_BYTES];
        unsigned char sig[SHA256_BYTES];
        char date[9], canon_hash[SHA256_HEX_MAX];
        struct tm tm;
        int r;

        *ret = (Sigv4Result){ 0 };
        r = request_check(req, cred, region, service);
        if (r < 0)
                return r;

        /* X-Amz-Date and the scope's date need a four-digit year. */
        if (!gmtime_r(&when, &tm) || tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999 ||
            strftime(res.amz_date, sizeof(res.amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16 ||
            strftime(date, sizeof(date), "%Y%m%d", &tm) != 8)
                return -EINVAL;
        r = sigv4_sha256_hex(req->body_len > 0 ? req->body : "", req->body_len, res.content_sha256);
        if (r < 0)
                return r;

        r = build_canonical_request(req, cred, &res, &canon, &signed_names);
        if (r < 0)
                return r;
        r = sigv4_sha256_hex(canon.p, canon.len, canon_hash);
        if (r < 0)
                return r;

        buf_puts(&scope, date);
        buf_putc(&scope, '/');
        buf_puts(&scope, region);
        buf_putc(&scope, '/');
        buf_puts(&scope, service);
        buf_puts(&scope, "/aws4_request");

        buf_puts(&sts, SIGV4_ALGORITHM "\n");
        buf_puts(&sts, res.amz_date);
        buf_putc(&sts, '\n');
        buf_puts(&sts, buf_str(&scope) ?: "");
        buf_putc(&sts, '\n');
        buf_puts(&sts, canon_hash);
        if (scope.oom || sts.oom)
                return -ENOMEM;

        r = derive_signing_key(cred->secret_access_key, date, region, service, key);
        if (r < 0)
                return r;
        r = hmac_sha256(key, sizeof(key), sts.p, sig);
        if (r < 0)
                return r;
        hex_encode(sig, SHA256_BYTES, res.signature);

        buf_puts(&auth, SIGV4_ALGORITHM " Credential=");
        buf_puts(&auth, cred->access_key_id);
        buf_putc(&auth, '/');
        buf_puts(&auth, scope.p);
        buf_puts(&auth, ", SignedHeaders=");
        buf_puts(&auth, signed_names.p);
        buf_puts(&auth, ", Signature=");
        buf_puts(&auth, res.signature);
        if (auth.oom)
                return -ENOMEM;

        /* The order documented in sigv4.h, which is the order botocore adds them in. */
        r = result_add_header(&res, "X-Amz-Date", res.amz_date);
        if (r >= 0 && cred->session_token)
                r = result_add_header(&res, "X-Amz-Security-Token", cred->session_token);
        if (r >= 0 && req->add_content_sha256)
                r = result_add_header(&res, "x-amz-content-sha256", res.content_sha256);
        if (r >= 0)
                r = result_add_header(&res, "Authorization", auth.p);
        if (r < 0)
                return r;

        res.authorization = TAKE_PTR(auth.p);
        res.canonical_request = TAKE_PTR(canon.p);
        res.string_to_sign = TAKE_PTR(sts.p);
        *ret = res;
        res = (Sigv4Result){ 0 };
        return 0;
}

void sigv4_result_done(Sigv4Result *r)
{
        if (!r)
                return;
        /* Wiped because one of them is the session token. */
        for (size_t i = 0; i < r->n_headers; i++) {
                char *v = (char *)r->headers[i].value;

                erase_freep(&v);
        }
        free(r->authorization);
        free(r->canonical_request);
        free(r->string_to_sign);
        *r = (Sigv4Result){ 0 };
}
