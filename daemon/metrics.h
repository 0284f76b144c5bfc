/* SPDX-License-Identifier: MIT */
#pragma once

/* Prometheus metrics: fixed-bucket histograms that the modules keep next to their other counters,
 * and a writer of the text exposition formats (the classic text format 0.0.4 and OpenMetrics
 * 1.0.0) that daemon.metrics and the [metrics] listener render them with (doc/protocol.md,
 * "Metrics"). Nothing here allocates or takes a lock when a value is observed; the text is built
 * only when asked for. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Upper bounds of a histogram's buckets, ascending; a last bucket, +Inf, is implied. */
#define METRICS_MAX_BOUNDS 16

/* Seconds, from half a millisecond (a commit of the WAL in memory) to a minute (a DynamoDB request
 * that times out). */
#define METRICS_SECONDS_N 16
extern const double metrics_seconds_bounds[METRICS_SECONDS_N];
/* Counts by powers of two, 1 to 1024 (a group commit holds at most 1024 requests). */
#define METRICS_COUNT_N 11
extern const double metrics_count_bounds[METRICS_COUNT_N];

typedef struct MetricsHistogram {
        const double *bounds;
        unsigned n_bounds;
        uint64_t counts[METRICS_MAX_BOUNDS + 1]; /* per bucket, not cumulative; the last is +Inf */
        uint64_t count;
        double sum;
} MetricsHistogram;

#define METRICS_HISTOGRAM_SECONDS \
        ((MetricsHistogram){ .bounds = metrics_seconds_bounds, .n_bounds = METRICS_SECONDS_N })
#define METRICS_HISTOGRAM_COUNT \
        ((MetricsHistogram){ .bounds = metrics_count_bounds, .n_bounds = METRICS_COUNT_N })

/* A bucket holds the values up to and including its bound (Prometheus' "le"). */
static inline void metrics_histogram_observe(MetricsHistogram *h, double v)
{
        unsigned i = 0;

        while (i < h->n_bounds && v > h->bounds[i])
                i++;
        h->counts[i]++;
        h->count++;
        h->sum += v;
}

typedef enum MetricsFormat {
        METRICS_FORMAT_TEXT,        /* text/plain; version=0.0.4 */
        METRICS_FORMAT_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
} MetricsFormat;

#define METRICS_CONTENT_TYPE_TEXT        "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_CONTENT_TYPE_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* The text being written: families, each with its # HELP and # TYPE, then its samples. Names and
 * label values are the caller's constants (method names, error codes, operation names): they are
 * written as they are, so they must need no escaping (no '"', '\\' or newline; test_metrics runs
 * promtool over what the daemon writes). A failed allocation is remembered and reported by
 * metrics_text_finish(). */
typedef struct MetricsText {
        MetricsFormat format;
        Buf buf;
} MetricsText;

typedef enum MetricsType {
        METRICS_COUNTER,
        METRICS_GAUGE,
        METRICS_HISTOGRAM,
} MetricsType;

/* Starts a family. A counter's name is given without "_total": its samples take the suffix, and so
 * does the family in the classic format (OpenMetrics names the family without it). */
void metrics_family(MetricsText *t, const char *name, MetricsType type, const char *help);
/* One sample of the current family; labels is NULL or 'key="value",...' without braces. */
void metrics_counter(MetricsText *t, const char *name, const char *labels, double value);
void metrics_gauge(MetricsText *t, const char *name, const char *labels, double value);
void metrics_histogram(MetricsText *t, const char *name, const char *labels, const MetricsHistogram *h);
/* The whole family of a counter or gauge without labels. */
void metrics_counter_family(MetricsText *t, const char *name, const char *help, double value);
void metrics_gauge_family(MetricsText *t, const char *name, const char *help, double value);

/* Ends the text (OpenMetrics: "# EOF") and hands it over, NUL-terminated. 0 or -ENOMEM. */
int metrics_text_finish(MetricsText *t, char **ret, size_t *ret_len);
void metrics_text_done(MetricsText *t);

/* ---- the HTTP listener's requests ----------------------------------------------------------- */

/* What a request asks for, from its request line and headers. */
typedef enum MetricsHttpVerdict {
        METRICS_HTTP_OK,          /* GET or HEAD /metrics */
        METRICS_HTTP_BAD_REQUEST, /* 400 */
        METRICS_HTTP_NOT_FOUND,   /* 404 */
        METRICS_HTTP_NOT_ALLOWED, /* 405 */
        METRICS_HTTP_BAD_VERSION, /* 505 */
} MetricsHttpVerdict;

typedef struct MetricsHttpRequest {
        MetricsHttpVerdict verdict;
        bool head;            /* HEAD: the headers of the answer only */
        MetricsFormat format; /* from Accept */
} MetricsHttpRequest;

/* Parses a request head (request line and header lines, up to and including the blank line;
 * len bytes, without a NUL). Pure. */
void metrics_http_parse(const char *head, size_t len, MetricsHttpRequest *ret);

/* Whether an Accept header's value asks for OpenMetrics 1.0.0 before the classic text format. */
bool metrics_accepts_openmetrics(const char *accept, size_t len);
