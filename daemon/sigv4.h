/* SPDX-License-Identifier: MIT */
#pragma once

/* AWS Signature Version 4, header signing (AWS4-HMAC-SHA256 on OpenSSL's libcrypto).
 *
 * The caller builds the request it is about to send, signs it, then sends its own headers plus the
 * ones in Sigv4Result.headers. For DynamoDB that is POST / with host, content-type and x-amz-target:
 * the zero defaults of the Sigv4Request flags are what DynamoDB wants (normalised path, body hash in
 * the canonical request only, session token signed). */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct Sigv4Header {
        const char *name;
        const char *value;
} Sigv4Header;

typedef struct Sigv4Request {
        const char *method; /* "POST" */
        const char *path;   /* as sent on the wire, starting with '/'; NULL or "" mean "/" */
        const char *query;  /* what follows '?', or NULL */
        /* Every header that is sent, host included. All of them are signed, so leave out those a
         * proxy may rewrite (user-agent, content-length). x-amz-date and authorization are the
         * signer's own and refused here, as are x-amz-security-token when there is a token and
         * x-amz-content-sha256 when add_content_sha256. */
        const Sigv4Header *headers;
        size_t n_headers;
        const void *body;
        size_t body_len;
        /* S3 style (the test suite's normalize=false): sign the path as given instead of removing
         * "." and ".." segments and merging repeated slashes. Either way it is URI-encoded as given,
         * so an encoded path is encoded again, as every service but S3 wants. */
        bool keep_path;
        /* Also sign and send x-amz-content-sha256 (S3 wants it; DynamoDB does not). The body's hash
         * is in the canonical request either way. */
        bool add_content_sha256;
        /* Send the session token without signing it (some STS flows). */
        bool omit_session_token;
} Sigv4Request;

typedef struct Sigv4Credentials {
        const char *access_key_id;
        const char *secret_access_key;
        const char *session_token; /* NULL for long-term keys; "" is refused */
} Sigv4Credentials;

/* X-Amz-Date, X-Amz-Security-Token, x-amz-content-sha256, Authorization. */
#define SIGV4_HEADERS_MAX 4

typedef struct Sigv4Result {
        /* The headers to send besides the request's own, in this order: X-Amz-Date,
         * X-Amz-Security-Token (whenever there is a token, signed or not), x-amz-content-sha256 (if
         * add_content_sha256) and Authorization. Names are static strings, values are owned by the
         * result (heap, so the struct may be copied). */
        Sigv4Header headers[SIGV4_HEADERS_MAX];
        size_t n_headers;

        char amz_date[17];       /* 20150830T123600Z, also the X-Amz-Date value */
        char content_sha256[65]; /* hex SHA-256 of the body */
        char signature[65];      /* hex */
        char *authorization;     /* the Authorization value */
        /* For tests and debugging: neither holds the secret key, but both hold the session token
         * when it is signed, so do not log them. */
        char *canonical_request;
        char *string_to_sign;
} Sigv4Result;

/* Signs req for region and service ("us-east-1", "dynamodb") at time when. On success fills *ret,
 * which the caller releases with sigv4_result_done(); on failure *ret is left empty. Returns 0,
 * -EINVAL for a request that cannot be signed or sent as is (missing or empty credentials or
 * region, a header name that is not an HTTP token, a control character in a value other than a
 * folded line, a header the signer adds itself, a path not starting with '/', a time that does not
 * fit YYYYMMDD), -ENOMEM, or -EIO if libcrypto fails. Derived keys are wiped after use and nothing
 * is logged. */
int sigv4_sign(const Sigv4Request *req, const Sigv4Credentials *cred, const char *region,
               const char *service, time_t when, Sigv4Result *ret);

/* Frees what sigv4_sign() put in r (the session token copy is wiped first) and empties it.
 * Takes NULL and an empty result. */
void sigv4_result_done(Sigv4Result *r);

/* The hex SHA-256 of n bytes at p into out (64 digits and a NUL). 0, or -EIO. */
int sigv4_sha256_hex(const void *p, size_t n, char out[static 65]);
