/* SPDX-License-Identifier: MIT */
/* Signs the request the input describes with sigv4_sign(): NUL-separated fields, a flags byte
 * first, then method, path, query, key id, secret, session token, region, service, body and header
 * name/value pairs. A request that is signed has a canonical request of the documented shape (one
 * line per part and per header name, nothing that could break a line), a signature that libcrypto
 * computes again from the string to sign, headers fit to send, and canonical parts that come back
 * the same when signed again; one that is refused is refused with -EINVAL only. */

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sigv4.h"
#include "util.h"

#define MAX_FIELDS 32

/* Times around the edges of the four-digit years that X-Amz-Date can hold. */
static const time_t times[] = { 1440938160,   0,    -1, 253402300799, 253402300800, -30610224000,
                                -30610224001, 86399 };

/* Cuts text into its lines (at most max), returns how many. */
static size_t split_lines(char *text, char **lines, size_t max)
{
        size_t n = 0;

        for (char *p = text; p && n < max; n++) {
                lines[n] = p;
                p = strchr(p, '\n');
                if (p)
                        *p++ = 0;
        }
        return n;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void hmac(const void *key, size_t key_len, const char *data, unsigned char out[32])
{
        unsigned len = 0;

        fuzz_check(HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, strlen(data), out,
                        &len) &&
                   len == 32);
}

/* The signature again, the way the AWS documentation spells it out. */
static void check_signature(const Sigv4Result *res, const char *secret, const char *region,
                            const char *service)
{
        unsigned char k[32], md[32];
        unsigned len = 0;
        char *k_secret, want[65], date[9], *sts_lines[8];
        _cleanup_free_ char *sts = strdup(res->string_to_sign);

        fuzz_check(sts);
        fuzz_check(asprintf(&k_secret, "AWS4%s", secret) >= 0);
        memcpy(date, res->amz_date, 8);
        date[8] = 0;
        hmac(k_secret, strlen(k_secret), date, k);
        free(k_secret);
        hmac(k, 32, region, k);
        hmac(k, 32, service, k);
        hmac(k, 32, "aws4_request", k);
        hmac(k, 32, res->string_to_sign, md);
        hex(md, 32, want);
        fuzz_check(streq(want, res->signature));

        /* AWS4-HMAC-SHA256, the date, the scope, the canonical request's hash. */
        fuzz_check(split_lines(sts, sts_lines, ELEMENTSOF(sts_lines)) == 4);
        fuzz_check(streq(sts_lines[0], "AWS4-HMAC-SHA256") && streq(sts_lines[1], res->amz_date));
        fuzz_check(EVP_Digest(res->canonical_request, strlen(res->canonical_request), md, &len, EVP_sha256(),
                              NULL) &&
                   len == 32);
        hex(md, 32, want);
        fuzz_check(streq(sts_lines[3], want));
}

static bool encoded_only(const char *s, const char *extra)
{
        for (; *s; s++) {
                if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
                    strchr("-._~", *s) || strchr(extra, *s))
                        continue;
                if (*s != '%' || !strchr("0123456789ABCDEF", s[1]) || !s[1] ||
                    !strchr("0123456789ABCDEF", s[2]) || !s[2])
                        return false;
                s += 2;
        }
        return true;
}

static void check_signed(const Sigv4Request *req, const Sigv4Credentials *cred, const char *region,
                         const char *service, time_t when, const Sigv4Result *res)
{
        _cleanup_free_ char *canon = strdup(res->canonical_request);
        char *lines[MAX_FIELDS * 2], *names;
        size_t n_lines, n_names = 1;
        Sigv4Result again = { 0 };

        fuzz_check(canon);
        /* Method, path, query, one line per header name, a blank line, the names, the hash. */
        n_lines = split_lines(canon, lines, ELEMENTSOF(lines));
        fuzz_check(n_lines >= 7 && n_lines < ELEMENTSOF(lines));
        fuzz_check(streq(lines[0], req->method));
        fuzz_check(lines[1][0] == '/' && encoded_only(lines[1], "/"));
        fuzz_check(encoded_only(lines[2], "=&"));
        fuzz_check(!lines[n_lines - 3][0] && streq(lines[n_lines - 1], res->content_sha256));
        names = lines[n_lines - 2];
        for (const char *p = names; *p; p++)
                n_names += *p == ';';
        fuzz_check(n_names == n_lines - 6);
        for (size_t i = 3; i < n_lines - 3; i++) {
                size_t k = strcspn(lines[i], ":");

                /* Lower case names, in order; values trimmed. */
                fuzz_check(lines[i][k] == ':');
                for (size_t j = 0; j < k; j++)
                        fuzz_check(!(lines[i][j] >= 'A' && lines[i][j] <= 'Z'));
                if (i > 3) {
                        size_t k0 = strcspn(lines[i - 1], ":");

                        /* Each name once (repeats are joined), sorted. */
                        fuzz_check(strncmp(lines[i - 1], lines[i], MIN(k0, k)) < 0 ||
                                   (strncmp(lines[i - 1], lines[i], MIN(k0, k)) == 0 && k0 < k));
                }
                fuzz_check(lines[i][k + 1] != ' ' && !strchr(lines[i] + k + 1, '\r'));
        }

        /* Sent as they are: no line breaks. */
        fuzz_check(res->n_headers >= 2 && res->n_headers <= SIGV4_HEADERS_MAX);
        for (size_t i = 0; i < res->n_headers; i++)
                fuzz_check(res->headers[i].name && res->headers[i].value &&
                           !strpbrk(res->headers[i].value, "\r\n"));
        fuzz_check(streq(res->headers[res->n_headers - 1].name, "Authorization"));
        fuzz_check(startswith(res->authorization, "AWS4-HMAC-SHA256 Credential="));
        check_signature(res, cred->secret_access_key, region, service);

        /* The same request signs the same; its canonical path and query sign as themselves (the path
         * only when nothing in it is encoded, which would be encoded again). */
        Sigv4Request req2 = *req;
        req2.query = lines[2][0] ? lines[2] : NULL;
        if (encoded_only(lines[1], "/") && !strchr(lines[1], '%') && !req->keep_path)
                req2.path = lines[1];
        fuzz_check(sigv4_sign(&req2, cred, region, service, when, &again) == 0);
        fuzz_check(streq(again.canonical_request, res->canonical_request));
        fuzz_check(streq(again.signature, res->signature));
        sigv4_result_done(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *f[MAX_FIELDS * 2] = { 0 };
        Sigv4Header headers[MAX_FIELDS];
        _cleanup_free_ char *text = NULL;
        Sigv4Result res = { 0 };
        size_t n = 0, n_headers = 0;
        uint8_t flags;
        int r;

        if (size < 1)
                return 0;
        flags = data[0];
        text = malloc(size);
        fuzz_check(text);
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;
        /* Fields end at NULs; the last one at the end of the input. */
        for (const char *p = text; p < text + size - 1 && n < ELEMENTSOF(f); p += strlen(p) + 1)
                f[n++] = p;

        for (size_t i = 10; i + 1 < n && n_headers < ELEMENTSOF(headers); i += 2)
                headers[n_headers++] = (Sigv4Header){ f[i], f[i + 1] };
        Sigv4Request req = {
                .method = f[0] ? f[0] : "POST",
                .path = f[1],
                .query = flags & 8 ? NULL : f[2],
                .headers = headers,
                .n_headers = n_headers,
                .body = f[9],
                .body_len = f[9] ? strlen(f[9]) : 0,
                .keep_path = flags & 1,
                .add_content_sha256 = flags & 2,
                .omit_session_token = flags & 4,
        };
        Sigv4Credentials cred = {
                .access_key_id = f[3] ? f[3] : "AKIDEXAMPLE",
                .secret_access_key = f[4] ? f[4] : "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                .session_token = flags & 16 ? f[5] : NULL,
        };
        const char *region = f[6] ? f[6] : "us-east-1", *service = f[7] ? f[7] : "dynamodb";
        time_t when = times[flags >> 5];

        memset(&res, 0x5a, sizeof(res));
        r = sigv4_sign(&req, &cred, region, service, when, &res);
        fuzz_check(r == 0 || r == -EINVAL);
        if (r < 0) {
                /* Left empty. */
                fuzz_check(!res.authorization && !res.canonical_request && res.n_headers == 0);
                return 0;
        }
        check_signed(&req, &cred, region, service, when, &res);
        sigv4_result_done(&res);
        fuzz_check(!res.authorization && res.n_headers == 0);
        return 0;
}
