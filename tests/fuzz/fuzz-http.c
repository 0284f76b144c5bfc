/* SPDX-License-Identifier: MIT */
/* Hands the input to http_answer_header() one line at a time, as libcurl's header callback gets an
 * answer's header lines (each with its line end, status lines included), and compares what it
 * keeps with a plain model of the rules in http.h: the last header set counts, x-amzn-RequestId
 * over x-amz-request-id, names in any case, values without surrounding blanks, cut to fit. */

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "http.h"
#include "util.h"

typedef struct Model {
        char request_id[HTTP_HEADER_VALUE_MAX];
        char content_type[HTTP_HEADER_VALUE_MAX];
        char date[HTTP_HEADER_VALUE_MAX];
} Model;

static bool blank(char c)
{
        return c == ' ' || c == '\t';
}

/* The value of "name: value" if line is that header: blanks around it dropped, line end too. */
static bool model_value(const char *line, size_t len, const char *name, char *out)
{
        size_t n = strlen(name), i, k = 0;

        if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
                return false;
        for (i = n + 1; i < len && blank(line[i]); i++)
                ;
        while (len > i && (blank(line[len - 1]) || line[len - 1] == '\r' || line[len - 1] == '\n'))
                len--;
        /* A NUL ends the value, like any C string; at most HTTP_HEADER_VALUE_MAX - 1 bytes. */
        for (; i < len && line[i] && k < HTTP_HEADER_VALUE_MAX - 1; i++)
                out[k++] = line[i];
        out[k] = 0;
        return true;
}

static void model_line(Model *m, const char *line, size_t len)
{
        char v[HTTP_HEADER_VALUE_MAX];

        if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
                *m = (Model){ 0 };
                return;
        }
        if (model_value(line, len, "x-amzn-requestid", v)) {
                memcpy(m->request_id, v, sizeof(v));
        } else if (model_value(line, len, "x-amz-request-id", v)) {
                /* Only when no request id came yet in this set. */
                if (!m->request_id[0])
                        memcpy(m->request_id, v, sizeof(v));
        } else if (model_value(line, len, "content-type", v))
                memcpy(m->content_type, v, sizeof(v));
        else if (model_value(line, len, "date", v))
                memcpy(m->date, v, sizeof(v));
}

static void check_field(const char *got, const char *want)
{
        fuzz_check(memchr(got, 0, HTTP_HEADER_VALUE_MAX));
        fuzz_check(streq(got, want));
        fuzz_check(!strchr(got, '\n'));
        /* Blanks after the value may stay only where a NUL cut it short. */
        fuzz_check(!blank(got[0]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        HttpAnswerHeaders h = { 0 };
        Model m = { 0 };
        const char *s = (const char *)data;

        /* libcurl hands over one line at a time, each with its line end (the last one may lack it). */
        for (size_t start = 0; start < size;) {
                const char *nl = memchr(s + start, '\n', size - start);
                size_t len = nl ? (size_t)(nl - (s + start)) + 1 : size - start;

                http_answer_header(&h, s + start, len);
                model_line(&m, s + start, len);
                check_field(h.request_id, m.request_id);
                check_field(h.content_type, m.content_type);
                check_field(h.date, m.date);
                start += len;
        }
        return 0;
}
