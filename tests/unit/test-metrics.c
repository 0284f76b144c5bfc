/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "metrics.h"
#include "tap.h"

static char *render(MetricsFormat format, const MetricsHistogram *h)
{
        MetricsText t = { .format = format };
        char *text = NULL;
        size_t len = 0;

        metrics_family(&t, "nb_requests", METRICS_COUNTER, "Requests.");
        metrics_counter(&t, "nb_requests", "method=\"a\"", 3);
        metrics_counter(&t, "nb_requests", "method=\"b\"", 0.5);
        metrics_gauge_family(&t, "nb_open", "Open things.", 7);
        metrics_family(&t, "nb_seconds", METRICS_HISTOGRAM, "Durations.");
        metrics_histogram(&t, "nb_seconds", "op=\"x\"", h);
        if (metrics_text_finish(&t, &text, &len) < 0)
                text = NULL;
        metrics_text_done(&t);
        ok(text && strlen(text) == len, "the length is the text's");
        return text;
}

static void test_histogram(void)
{
        MetricsHistogram h = METRICS_HISTOGRAM_SECONDS;
        MetricsHistogram c = METRICS_HISTOGRAM_COUNT;

        metrics_histogram_observe(&h, 0.0005); /* on a bound: in its bucket */
        metrics_histogram_observe(&h, 0.0007);
        metrics_histogram_observe(&h, 100);
        ok(h.counts[0] == 1 && h.counts[1] == 1 && h.counts[METRICS_SECONDS_N] == 1 && h.count == 3,
           "a value goes into the first bucket whose bound it does not exceed, past the last into +Inf");
        ok(h.sum > 100.0011 && h.sum < 100.0013, "the sum adds up");
        metrics_histogram_observe(&c, 1);
        metrics_histogram_observe(&c, 3);
        metrics_histogram_observe(&c, 1024);
        ok(c.counts[0] == 1 && c.counts[2] == 1 && c.counts[METRICS_COUNT_N - 1] == 1,
           "counts by powers of two");
}

static void test_text(void)
{
        MetricsHistogram h = METRICS_HISTOGRAM_SECONDS;
        char *text;

        metrics_histogram_observe(&h, 0.003);
        metrics_histogram_observe(&h, 2);
        text = render(METRICS_FORMAT_TEXT, &h);
        ok(text && strstr(text, "# HELP nb_requests_total Requests.\n# TYPE nb_requests_total counter\n"),
           "classic: a counter's family is named with _total");
        ok(text && strstr(text, "\nnb_requests_total{method=\"a\"} 3\n"), "classic: an integer counter");
        ok(text && strstr(text, "\nnb_requests_total{method=\"b\"} 0.5\n"), "classic: a fractional counter");
        ok(text && strstr(text, "# TYPE nb_open gauge\nnb_open 7\n"), "classic: a gauge without labels");
        ok(text && strstr(text, "nb_seconds_bucket{op=\"x\",le=\"0.0025\"} 0\n"
                                "nb_seconds_bucket{op=\"x\",le=\"0.005\"} 1\n"),
           "classic: buckets with le after the labels");
        ok(text && strstr(text, "nb_seconds_bucket{op=\"x\",le=\"2.5\"} 2\n"), "buckets are cumulative");
        ok(text && strstr(text, "nb_seconds_bucket{op=\"x\",le=\"60.0\"} 2\n"
                                "nb_seconds_bucket{op=\"x\",le=\"+Inf\"} 2\n"
                                "nb_seconds_sum{op=\"x\"} 2.003\n"
                                "nb_seconds_count{op=\"x\"} 2\n"),
           "+Inf, sum and count close a histogram");
        ok(text && !strstr(text, "# EOF"), "classic: no # EOF");
        free(text);

        text = render(METRICS_FORMAT_OPENMETRICS, &h);
        ok(text && strstr(text, "# HELP nb_requests Requests.\n# TYPE nb_requests counter\n"
                                "nb_requests_total{method=\"a\"} 3\n"),
           "OpenMetrics: a counter's family is named without _total, its samples with it");
        ok(text && strlen(text) > 6 && streq(text + strlen(text) - 6, "# EOF\n"),
           "OpenMetrics: ends with # EOF");
        free(text);
}

static void test_accept(void)
{
#define ACCEPTS(s) metrics_accepts_openmetrics((s), strlen(s))
        ok(ACCEPTS("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                   "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
           "Prometheus' Accept gets OpenMetrics");
        ok(ACCEPTS("application/openmetrics-text"), "OpenMetrics without a version");
        ok(ACCEPTS("Application/OpenMetrics-Text; version=\"1.0.0\""), "case and quoting do not matter");
        ok(!ACCEPTS("application/openmetrics-text;version=0.0.1"), "only OpenMetrics 1.0.0 is served");
        ok(!ACCEPTS("application/openmetrics-text;q=0"), "q=0 refuses it");
        ok(!ACCEPTS("text/plain;version=0.0.4,application/openmetrics-text;q=0.5"),
           "a higher q for the text format wins");
        ok(!ACCEPTS("*/*"), "*/* gets the classic text");
        ok(!ACCEPTS(""), "no Accept gets the classic text");
        ok(!ACCEPTS("application/openmetrics-text;q=abc"), "a q that is no number is 0");
#undef ACCEPTS
}

static void test_http(void)
{
        MetricsHttpRequest r;

#define PARSE(s) metrics_http_parse((s), strlen(s), &r)
        PARSE("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        ok(r.verdict == METRICS_HTTP_OK && !r.head && r.format == METRICS_FORMAT_TEXT, "GET /metrics");
        PARSE("GET /metrics?x=1 HTTP/1.0\nAccept: application/openmetrics-text\n\n");
        ok(r.verdict == METRICS_HTTP_OK && r.format == METRICS_FORMAT_OPENMETRICS,
           "a query is ignored, bare LFs and HTTP/1.0 are fine, Accept is read");
        PARSE("HEAD /metrics HTTP/1.1\r\n\r\n");
        ok(r.verdict == METRICS_HTTP_OK && r.head, "HEAD");
        PARSE("POST /metrics HTTP/1.1\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_NOT_ALLOWED, "POST /metrics is 405");
        PARSE("GET / HTTP/1.1\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_NOT_FOUND, "another path is 404");
        PARSE("GET /metricsx HTTP/1.1\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_NOT_FOUND, "a longer path is 404");
        PARSE("GET /metrics HTTP/2.0\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_BAD_VERSION, "HTTP/2.0 is 505");
        PARSE("GET /metrics\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_BAD_REQUEST, "no version is 400");
        PARSE("get /metrics HTTP/1.1\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_BAD_REQUEST, "a lower-case method is 400");
        PARSE("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_BAD_REQUEST, "a header line without ':' is 400");
        PARSE("GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_BAD_REQUEST, "a folded header line is 400");
        PARSE("\r\n\r\n");
        is_int(r.verdict, METRICS_HTTP_BAD_REQUEST, "an empty request line is 400");
#undef PARSE
}

int main(void)
{
        test_histogram();
        test_text();
        test_accept();
        test_http();
        return tap_done();
}
