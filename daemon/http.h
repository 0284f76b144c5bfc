/* SPDX-License-Identifier: MIT */
#pragma once

/* HTTP requests on the event loop: one libcurl multi handle driven by sd-event (a source per
 * socket that libcurl names, one timer, and a defer source that hands finished transfers to their
 * callbacks, so that no callback of ours ever runs inside libcurl). Connections are kept alive and
 * reused; a connection the server closed while idle is simply replaced by a new one. TLS
 * verification is always on. Proxies from the environment, redirects and every protocol but
 * http and https are refused. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

#define HTTP_DEFAULT_CONNECT_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define HTTP_DEFAULT_TOTAL_TIMEOUT_USEC   (30 * USEC_PER_SEC)
#define HTTP_DEFAULT_LOW_SPEED_LIMIT      1                   /* bytes per second ... */
#define HTTP_DEFAULT_LOW_SPEED_TIME_USEC  (10 * USEC_PER_SEC) /* ... over this long */
#define HTTP_DEFAULT_MAX_BODY_BYTES       ((size_t)16 * 1024 * 1024)

typedef struct Http Http;
typedef struct HttpRequest HttpRequest;

typedef struct HttpOptions {
        const char *ca_file;           /* PEM bundle to verify servers with; NULL: the system's store */
        uint64_t connect_timeout_usec; /* 0: HTTP_DEFAULT_CONNECT_TIMEOUT_USEC */
        uint64_t total_timeout_usec;   /* the whole transfer; 0: HTTP_DEFAULT_TOTAL_TIMEOUT_USEC */
        /* A transfer slower than low_speed_limit bytes/s for low_speed_time_usec (libcurl counts
         * whole seconds, rounded up here) fails with -ETIMEDOUT. 0: the defaults above. */
        uint32_t low_speed_limit;
        uint64_t low_speed_time_usec;
        size_t max_body_bytes; /* 0: HTTP_DEFAULT_MAX_BODY_BYTES; a longer answer fails with -EFBIG */
} HttpOptions;

typedef struct HttpHeader {
        const char *name;  /* no ':', CR or LF */
        const char *value; /* no CR or LF; "" sends the header with an empty value */
} HttpHeader;

typedef struct HttpRequestSpec {
        const char *method; /* "GET", "POST", "PUT", ...; NULL: GET without a body, else POST */
        const char *url;    /* http:// or https:// */
        const HttpHeader *headers;
        size_t n_headers;
        const void *body; /* copied by http_request() */
        size_t body_len;
        /* Per request, 0: the Http's. The metadata services want short ones. */
        uint64_t connect_timeout_usec;
        uint64_t total_timeout_usec;
} HttpRequestSpec;

typedef struct HttpResult {
        /* 0: an HTTP answer came, whatever its status. Otherwise a negative errno:
         * -ECONNREFUSED (or the connect(2) errno: -EHOSTUNREACH, -ENETUNREACH, ...), -ETIMEDOUT
         * (connect, total or low-speed timeout), -ECONNRESET (the connection broke or closed
         * without an answer), -EPROTO (TLS), -EFBIG (answer over max_body_bytes), -EHOSTDOWN
         * (name did not resolve), -EPROTONOSUPPORT, -EINVAL (bad URL), -EBADMSG (not HTTP),
         * -ENOMEM, -ECANCELED (http_free()), -EIO (anything else). */
        int error;
        /* The request may have reached the server: always with error == 0; with an error, when
         * any of it was sent before the failure, so that the outcome is unknown. false means it
         * certainly was not processed. libcurl sends a request again, once, on a fresh
         * connection when a reused one turns out to have been closed before any answer byte. */
        bool maybe_sent;
        bool tls_verify_failed; /* with -EPROTO: the server's certificate did not verify */
        long status;            /* HTTP status, with error == 0 */
        const char *body;       /* NUL-terminated (the NUL is not counted); never NULL */
        size_t body_len;
        const char *request_id;   /* x-amzn-RequestId (or x-amz-request-id), else "" */
        const char *content_type; /* else "" */
        const char *date;         /* the Date header (for clock-skew checks), else "" */
        const char *error_text;   /* for people: libcurl's description of error, else "" */
        uint64_t total_usec;      /* from start to end of the transfer */
} HttpResult;

/* What a request keeps of its answer's headers: the values of the last set (after a 100 Continue
 * or a resend), without surrounding blanks, cut to fit. */
#define HTTP_HEADER_VALUE_MAX 256
typedef struct HttpAnswerHeaders {
        char request_id[HTTP_HEADER_VALUE_MAX]; /* x-amzn-RequestId, else x-amz-request-id */
        char content_type[HTTP_HEADER_VALUE_MAX];
        char date[HTTP_HEADER_VALUE_MAX];
} HttpAnswerHeaders;

/* Takes one header line as libcurl hands it over (a status line, or "Name: value" with its CRLF,
 * in any case), into h. Pure: the fuzzers and tests call it. */
void http_answer_header(HttpAnswerHeaders *h, const char *line, size_t len);

/* The result and its strings are valid during the call only. The request is freed after the
 * callback returns. A callback may start and cancel requests; it must not call http_free(). */
typedef void (*HttpDoneFunc)(const HttpResult *result, void *userdata);

int http_new(sd_event *event, const HttpOptions *options, Http **ret);
/* Stops every transfer still running; each callback runs once more, with -ECANCELED, so that
 * owners can release what they hold. Takes NULL. */
Http *http_free(Http *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(Http *, http_free)

/* Starts a request. The callback runs exactly once, later from the event loop, never from inside
 * this call, unless the request is cancelled first. ret (may be NULL) receives a handle that is
 * valid until the callback returns or http_request_cancel(). A negative return (-EINVAL for a
 * bad spec, -ENOMEM) means nothing started and no callback will run. */
int http_request(Http *h, const HttpRequestSpec *spec, HttpDoneFunc cb, void *userdata, HttpRequest **ret);

/* Stops the request; its callback will not run. Takes NULL. Inside the request's own callback it
 * does nothing (the request is finished already). */
void http_request_cancel(HttpRequest *r);

/* Connections opened so far: tells reuse from reconnects in tests and status. */
unsigned http_connections_opened(const Http *h);
/* Requests started and not yet finished or cancelled. */
unsigned http_requests_pending(const Http *h);
