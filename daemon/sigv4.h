/* SPDX-License-Identifier: MIT */
#pragma once

/* AWS Signature Version 4 (header signing, HMAC-SHA256 on OpenSSL). */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct Sigv4Header {
        const char *name;
        const char *value;
} Sigv4Header;

typedef struct Sigv4Request {
        const char *method;
        const char *path;           /* as sent, before URI-encoding, e.g. "/" */
        const char *query;          /* after '?', or NULL */
        const Sigv4Header *headers; /* every header sent, host included; all are signed */
        size_t n_headers;
        const void *body;
        size_t body_len;
        bool keep_path;          /* S3 style: sign the path as given, without removing "." and ".." */
        bool add_content_sha256; /* also sign (and send) x-amz-content-sha256 */
        bool omit_session_token; /* the token is sent but not signed (some STS flows) */
} Sigv4Request;

typedef struct Sigv4Credentials {
        const char *access_key_id;
        const char *secret_access_key;
        const char *session_token; /* NULL for long-term keys */
} Sigv4Credentials;

typedef struct Sigv4Result {
        char amz_date[17];       /* X-Amz-Date to send, e.g. 20150830T123600Z */
        char content_sha256[65]; /* hex SHA-256 of the body (x-amz-content-sha256 when asked) */
        char signature[65];
        char *authorization;     /* the Authorization header's value */
        char *canonical_request; /* for tests and debugging; holds no secret */
        char *string_to_sign;
} Sigv4Result;

/* Signs req for region/service at time when. The caller sends, besides req's headers:
 * X-Amz-Date (amz_date), X-Amz-Security-Token (the session token, if any),
 * x-amz-content-sha256 (if add_content_sha256) and Authorization. Folded header values (with
 * newlines) are signed as one line. Returns 0, -EINVAL for a malformed request (an empty header
 * name, or one with whitespace or ':'), -ENOMEM or -EIO (libcrypto failed). Derived keys are
 * wiped from memory after use. */
int sigv4_sign(const Sigv4Request *req, const Sigv4Credentials *cred, const char *region,
               const char *service, time_t when, Sigv4Result *ret);
void sigv4_result_done(Sigv4Result *r);
