/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-print.h"

/* A growing string; oom is set (and the text dropped at the end) when memory runs out. */
typedef struct Out {
        char *p;
        size_t len, cap;
        bool oom;
} Out;

static void out_put(Out *b, const char *s, size_t n)
{
        char *p;
        size_t cap;

        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                p = realloc(b->p, cap);
                if (!p) {
                        b->oom = true;
                        return;
                }
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
}

static void out_puts(Out *b, const char *s)
{
        out_put(b, s, strlen(s));
}

/* How many bytes from s on need no escape in a JSON string (none of the controls, '"' or '\\'),
 * eight at a time: code and outputs are mostly such runs, megabytes long. */
static size_t plain_run(const char *s, size_t n)
{
        const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
        size_t i = 0;

        for (; i + 8 <= n; i += 8) {
                uint64_t x, q, bs;

                memcpy(&x, s + i, 8);
                q = x ^ (ones * '"');
                bs = x ^ (ones * '\\');
                /* Whether any byte is below 0x20, or zero in q or bs (equal to '"' or '\\'): exact
                 * as a yes or no, which is all that is asked (the bytes are then looked at one by
                 * one). */
                if ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs)
                        break;
        }
        for (; i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c < 0x20 || c == '"' || c == '\\')
                        break;
        }
        return i;
}

static void print_string(Out *b, const char *s)
{
        const char *end = s + strlen(s);

        out_put(b, "\"", 1);
        while (s < end) {
                size_t n = plain_run(s, (size_t)(end - s));
                char esc[8];

                out_put(b, s, n);
                s += n;
                if (s == end)
                        break;
                switch (*s) {
                case '"':
                        out_puts(b, "\\\"");
                        break;
                case '\\':
                        out_puts(b, "\\\\");
                        break;
                case '\n':
                        out_puts(b, "\\n");
                        break;
                case '\r':
                        out_puts(b, "\\r");
                        break;
                case '\t':
                        out_puts(b, "\\t");
                        break;
                default:
                        snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char)*s);
                        out_puts(b, esc);
                }
                s++;
        }
        out_put(b, "\"", 1);
}

void json_number(char buf[static JSON_NUMBER_MAX], double d)
{
        if (!isfinite(d))
                snprintf(buf, JSON_NUMBER_MAX, "null");
        else if (d == 0)
                snprintf(buf, JSON_NUMBER_MAX, "0"); /* -0 too: DynamoDB has no negative zero */
        else if (d == floor(d) && fabs(d) < 1e17)
                snprintf(buf, JSON_NUMBER_MAX, "%.0f", d);
        else
                for (int prec = 15; prec <= 17; prec++) {
                        snprintf(buf, JSON_NUMBER_MAX, "%.*g", prec, d);
                        if (strtod(buf, NULL) == d)
                                break;
                }
}

static void print_number(Out *b, double d)
{
        char num[JSON_NUMBER_MAX];

        json_number(num, d);
        out_puts(b, num);
}

static void put_tabs(Out *b, int n)
{
        for (int i = 0; i < n; i++)
                out_put(b, "\t", 1);
}

/* depth < 0: compact; else cJSON_Print()'s layout at this depth (objects one member a line,
 * indented with tabs; arrays on one line). */
static void print_value(Out *b, const cJSON *v, int depth)
{
        const cJSON *c;

        if (cJSON_IsNull(v))
                out_puts(b, "null");
        else if (cJSON_IsFalse(v))
                out_puts(b, "false");
        else if (cJSON_IsTrue(v))
                out_puts(b, "true");
        else if (cJSON_IsNumber(v))
                print_number(b, v->valuedouble);
        else if (cJSON_IsString(v))
                print_string(b, v->valuestring ? v->valuestring : "");
        else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
                bool obj = cJSON_IsObject(v), lines = obj && depth >= 0;

                out_put(b, obj ? "{" : "[", 1);
                for (c = v->child; c; c = c->next) {
                        if (c != v->child)
                                out_puts(b, depth >= 0 && !obj ? ", " : ",");
                        if (lines) {
                                out_put(b, "\n", 1);
                                put_tabs(b, depth + 1);
                        }
                        if (obj) {
                                print_string(b, c->string ? c->string : "");
                                out_puts(b, lines ? ":\t" : ":");
                        }
                        print_value(b, c, depth < 0 ? -1 : depth + 1);
                }
                if (lines) {
                        out_put(b, "\n", 1);
                        put_tabs(b, depth);
                }
                out_put(b, obj ? "}" : "]", 1);
        } else
                out_puts(b, "null"); /* raw and invalid items never come from parsing */
}

static char *print_done(Out *b)
{
        if (b->oom) {
                free(b->p);
                return NULL;
        }
        return b->p;
}

char *json_print(const cJSON *v, bool newline)
{
        Out b = { 0 };

        print_value(&b, v, -1);
        if (newline)
                out_put(&b, "\n", 1);
        return print_done(&b);
}

char *json_print_indented(const cJSON *v)
{
        Out b = { 0 };

        print_value(&b, v, 0);
        return print_done(&b);
}
