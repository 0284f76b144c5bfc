/* SPDX-License-Identifier: MIT */
#pragma once

/* HTTP requests on the event loop: one libcurl multi handle driven by sd-event (sockets, a
 * timer, and a defer source that hands finished transfers to their callbacks). Connections are
 * kept alive and reused; TLS verification is always on. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

typedef struct Http Http;

typedef struct HttpOptions {
        const char *ca_file;           /* NULL: the system's CA store */
        uint64_t connect_timeout_usec; /* 0: 5 s */
        uint64_t total_timeout_usec;   /* 0: 30 s */
        size_t max_body;               /* 0: 16 MiB; a longer answer fails with -EFBIG */
} HttpOptions;

typedef struct HttpResult {
        int error;        /* 0: an HTTP answer came (any status); else a negative errno:
                           * -ECONNREFUSED, -ETIMEDOUT, -ECONNRESET, -EHOSTUNREACH, -EPROTO (TLS),
                           * -EFBIG, -ECANCELED (http_free), -EIO */
        bool maybe_sent;  /* with error: the request may have reached the server (ambiguous) */
        bool tls_failure; /* with -EPROTO: the certificate did not verify */
        long status;
        const char *body; /* NUL-terminated; valid during the callback */
        size_t body_len;
        const char *request_id; /* x-amzn-RequestId, or "" */
        const char *error_text; /* libcurl's description of error, or "" */
} HttpResult;

typedef void (*HttpDoneFunc)(void *userdata, const HttpResult *result);

int http_new(sd_event *event, const HttpOptions *options, Http **ret);
/* Every transfer still running is stopped; its callback runs with -ECANCELED. */
Http *http_free(Http *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(Http *, http_free)

/* Starts a request. headers: "Name: value" strings, NULL-terminated. The body is copied. The
 * callback runs once, later, never from inside this call. */
int http_request(Http *h, const char *method, const char *url, const char *const *headers, const void *body,
                 size_t body_len, HttpDoneFunc cb, void *userdata);

/* Connections opened so far (to tell reuse from reconnects in tests and status). */
unsigned http_connections_opened(Http *h);
