/* SPDX-License-Identifier: MIT */
/* The request heads the [metrics] listener parses: any bytes make a verdict, an OK one only for
 * GET or HEAD of /metrics, and an Accept header's value alone gives the same choice of format. */

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "metrics.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* An exact-size copy, so that a read past the end is caught. */
        char *head = malloc(size ? size : 1);
        MetricsHttpRequest r;

        fuzz_check(head);
        memcpy(head, data, size);
        metrics_http_parse(head, size, &r);
        fuzz_check(r.verdict >= METRICS_HTTP_OK && r.verdict <= METRICS_HTTP_BAD_VERSION);
        fuzz_check(r.format == METRICS_FORMAT_TEXT || r.format == METRICS_FORMAT_OPENMETRICS);
        if (r.verdict == METRICS_HTTP_OK) {
                bool get = size >= 13 && memcmp(head, "GET /metrics", 12) == 0 &&
                           (head[12] == ' ' || head[12] == '?');
                bool hd = size >= 14 && memcmp(head, "HEAD /metrics", 13) == 0 &&
                          (head[13] == ' ' || head[13] == '?');

                fuzz_check(get || hd);
                fuzz_check(r.head == hd);
        }
        (void)metrics_accepts_openmetrics(head, size);
        free(head);
        return 0;
}
