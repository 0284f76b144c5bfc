/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "metrics.h"

const double metrics_seconds_bounds[METRICS_SECONDS_N] = {
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};
const double metrics_count_bounds[METRICS_COUNT_N] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };

static const char *const type_names[] = {
        [METRICS_COUNTER] = "counter",
        [METRICS_GAUGE] = "gauge",
        [METRICS_HISTOGRAM] = "histogram",
};

static void put_printf(MetricsText *t, const char *fmt, ...) _printf_(2, 3);
static void put_printf(MetricsText *t, const char *fmt, ...)
{
        char line[512];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(line)) {
                /* Our own names and numbers never come near; a cut line would be a lie. */
                t->buf.oom = true;
                return;
        }
        buf_put(&t->buf, line, (size_t)n);
}

/* A value as both formats read it: integers exactly, others with every digit a double has. */
static void put_value(MetricsText *t, double v)
{
        if (isnan(v))
                buf_puts(&t->buf, "NaN");
        else if (isinf(v))
                buf_puts(&t->buf, v > 0 ? "+Inf" : "-Inf");
        else if (v == floor(v) && fabs(v) < 9007199254740992.0)
                put_printf(t, "%.0f", v);
        else {
                /* The shortest of 15 to 17 digits that reads back as the same double. */
                char num[32];

                for (int digits = 15; digits <= 17; digits++) {
                        snprintf(num, sizeof(num), "%.*g", digits, v);
                        if (strtod(num, NULL) == v)
                                break;
                }
                buf_puts(&t->buf, num);
        }
}

void metrics_family(MetricsText *t, const char *name, MetricsType type, const char *help)
{
        /* The classic format names a counter's family as its samples; OpenMetrics without the
         * suffix (and Prometheus 2.42's classic parser refuses a family without it). */
        const char *suffix = type == METRICS_COUNTER && t->format == METRICS_FORMAT_TEXT ? "_total" : "";

        put_printf(t, "# HELP %s%s %s\n# TYPE %s%s %s\n", name, suffix, help, name, suffix,
                   type_names[type]);
}

static void put_sample_name(MetricsText *t, const char *name, const char *suffix, const char *labels,
                            const char *extra)
{
        bool any = (labels && *labels) || extra;

        buf_puts(&t->buf, name);
        buf_puts(&t->buf, suffix);
        if (!any) {
                buf_putc(&t->buf, ' ');
                return;
        }
        buf_putc(&t->buf, '{');
        if (labels && *labels) {
                buf_puts(&t->buf, labels);
                if (extra)
                        buf_putc(&t->buf, ',');
        }
        if (extra)
                buf_puts(&t->buf, extra);
        buf_puts(&t->buf, "} ");
}

void metrics_counter(MetricsText *t, const char *name, const char *labels, double value)
{
        put_sample_name(t, name, "_total", labels, NULL);
        put_value(t, value);
        buf_putc(&t->buf, '\n');
}

void metrics_gauge(MetricsText *t, const char *name, const char *labels, double value)
{
        put_sample_name(t, name, "", labels, NULL);
        put_value(t, value);
        buf_putc(&t->buf, '\n');
}

void metrics_histogram(MetricsText *t, const char *name, const char *labels, const MetricsHistogram *h)
{
        uint64_t cumulative = 0;
        char le[64];

        for (unsigned i = 0; i <= h->n_bounds; i++) {
                cumulative += h->counts[i];
                if (i == h->n_bounds)
                        snprintf(le, sizeof(le), "le=\"+Inf\"");
                else
                        /* OpenMetrics wants a float ("1.0"), the classic format takes either. */
                        snprintf(le, sizeof(le), "le=\"%.15g%s\"", h->bounds[i],
                                 h->bounds[i] == floor(h->bounds[i]) ? ".0" : "");
                put_sample_name(t, name, "_bucket", labels, le);
                put_printf(t, "%" PRIu64 "\n", cumulative);
        }
        put_sample_name(t, name, "_sum", labels, NULL);
        put_value(t, h->sum);
        buf_putc(&t->buf, '\n');
        put_sample_name(t, name, "_count", labels, NULL);
        put_printf(t, "%" PRIu64 "\n", h->count);
}

void metrics_counter_family(MetricsText *t, const char *name, const char *help, double value)
{
        metrics_family(t, name, METRICS_COUNTER, help);
        metrics_counter(t, name, NULL, value);
}

void metrics_gauge_family(MetricsText *t, const char *name, const char *help, double value)
{
        metrics_family(t, name, METRICS_GAUGE, help);
        metrics_gauge(t, name, NULL, value);
}

int metrics_text_finish(MetricsText *t, char **ret, size_t *ret_len)
{
        if (t->format == METRICS_FORMAT_OPENMETRICS)
                buf_puts(&t->buf, "# EOF\n");
        if (!buf_str(&t->buf))
                return -ENOMEM;
        *ret_len = t->buf.len;
        *ret = t->buf.len ? TAKE_PTR(t->buf.p) : strdup("");
        t->buf = (Buf){ 0 };
        return *ret ? 0 : -ENOMEM;
}

void metrics_text_done(MetricsText *t)
{
        buf_done(&t->buf);
}

/* ---- HTTP requests ------------------------------------------------------------------------- */

static bool is_ows(char c)
{
        return c == ' ' || c == '\t';
}

/* [s, e) without blanks around. */
static void trim(const char **s, const char **e)
{
        while (*s < *e && is_ows(**s))
                (*s)++;
        while (*e > *s && is_ows((*e)[-1]))
                (*e)--;
}

static bool token_eq(const char *s, const char *e, const char *word)
{
        size_t n = strlen(word);

        return (size_t)(e - s) == n && strncasecmp(s, word, n) == 0;
}

/* q of a media range's parameters (1 when none is given; 0 for a value that is no number). */
static double accept_q(const char *s, const char *e, bool *ret_version_ok, const char *version)
{
        double q = 1;

        *ret_version_ok = true;
        while (s < e) {
                const char *semi = memchr(s, ';', (size_t)(e - s)), *end = semi ? semi : e, *eq;
                const char *ks = s, *ke, *vs, *ve = end;

                s = semi ? semi + 1 : e;
                eq = memchr(ks, '=', (size_t)(end - ks));
                if (!eq)
                        continue;
                ke = eq;
                vs = eq + 1;
                trim(&ks, &ke);
                trim(&vs, &ve);
                if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"')
                        vs++, ve--;
                if (token_eq(ks, ke, "q")) {
                        char num[16];
                        char *end_num;

                        if ((size_t)(ve - vs) >= sizeof(num))
                                return 0;
                        memcpy(num, vs, (size_t)(ve - vs));
                        num[ve - vs] = 0;
                        q = strtod(num, &end_num);
                        if (*end_num || !(q >= 0 && q <= 1))
                                return 0;
                } else if (token_eq(ks, ke, "version") && version)
                        *ret_version_ok = token_eq(vs, ve, version);
        }
        return q;
}

bool metrics_accepts_openmetrics(const char *accept, size_t len)
{
        const char *s = accept, *e = accept + len;
        double q_om = 0, q_text = 0;

        while (s < e) {
                const char *comma = memchr(s, ',', (size_t)(e - s)), *end = comma ? comma : e;
                const char *type_end = memchr(s, ';', (size_t)(end - s)), *ts = s;
                bool version_ok;
                double q;

                s = comma ? comma + 1 : e;
                if (!type_end)
                        type_end = end;
                trim(&ts, &type_end);
                if (token_eq(ts, type_end, "application/openmetrics-text")) {
                        q = accept_q(type_end, end, &version_ok, "1.0.0");
                        if (version_ok)
                                q_om = MAX(q_om, q);
                } else if (token_eq(ts, type_end, "text/plain") || token_eq(ts, type_end, "text/*") ||
                           token_eq(ts, type_end, "*/*")) {
                        q = accept_q(type_end, end, &version_ok,
                                     token_eq(ts, type_end, "text/plain") ? "0.0.4" : NULL);
                        if (version_ok)
                                q_text = MAX(q_text, q);
                }
        }
        /* A tie goes to OpenMetrics: a scraper that names it at all wants it. */
        return q_om > 0 && q_om >= q_text;
}

void metrics_http_parse(const char *head, size_t len, MetricsHttpRequest *ret)
{
        const char *e = head + len, *line_end, *sp1, *sp2, *target, *target_end, *version;
        bool get, head_method;

        *ret = (MetricsHttpRequest){ .verdict = METRICS_HTTP_BAD_REQUEST };
        line_end = memchr(head, '\n', len);
        if (!line_end)
                return;
        e = line_end;
        if (e > head && e[-1] == '\r')
                e--;
        sp1 = memchr(head, ' ', (size_t)(e - head));
        if (!sp1 || sp1 == head)
                return;
        target = sp1 + 1;
        sp2 = memchr(target, ' ', (size_t)(e - target));
        if (!sp2 || sp2 == target)
                return;
        version = sp2 + 1;
        for (const char *p = head; p < sp1; p++)
                if (!isupper((unsigned char)*p) && *p != '-')
                        return;
        if ((size_t)(e - version) != 8 || memcmp(version, "HTTP/1.", 7) != 0) {
                ret->verdict = (size_t)(e - version) >= 5 && memcmp(version, "HTTP/", 5) == 0
                                       ? METRICS_HTTP_BAD_VERSION
                                       : METRICS_HTTP_BAD_REQUEST;
                return;
        }
        if (!isdigit((unsigned char)version[7]))
                return;
        target_end = memchr(target, '?', (size_t)(sp2 - target));
        if (!target_end)
                target_end = sp2;
        get = (size_t)(sp1 - head) == 3 && memcmp(head, "GET", 3) == 0;
        head_method = (size_t)(sp1 - head) == 4 && memcmp(head, "HEAD", 4) == 0;
        if ((size_t)(target_end - target) != 8 || memcmp(target, "/metrics", 8) != 0)
                ret->verdict = METRICS_HTTP_NOT_FOUND;
        else if (!get && !head_method)
                ret->verdict = METRICS_HTTP_NOT_ALLOWED;
        else
                ret->verdict = METRICS_HTTP_OK;
        ret->head = head_method;

        /* The header lines: only Accept matters. */
        for (const char *p = line_end + 1; p < head + len;) {
                const char *nl = memchr(p, '\n', (size_t)(head + len - p)), *le = nl ? nl : head + len;
                const char *colon, *vs, *ve;

                if (le > p && le[-1] == '\r')
                        le--;
                if (le == p)
                        break; /* the blank line */
                colon = memchr(p, ':', (size_t)(le - p));
                if (!colon || colon == p || is_ows(*p)) {
                        /* No header, or an obsolete folded line (RFC 9112 5.2: may be refused). */
                        ret->verdict = METRICS_HTTP_BAD_REQUEST;
                        return;
                }
                vs = colon + 1;
                ve = le;
                trim(&vs, &ve);
                if (token_eq(p, colon, "accept") && metrics_accepts_openmetrics(vs, (size_t)(ve - vs)))
                        ret->format = METRICS_FORMAT_OPENMETRICS;
                p = nl ? nl + 1 : head + len;
        }
}
