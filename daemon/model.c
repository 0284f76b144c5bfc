/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "nb-limits.h"
#include "json-print.h"
#include "model.h"
#include "util.h"

/* Doubles hold every integer up to 2^53 exactly; JSON numbers beyond that are not integers to us. */
#define MAX_SAFE_INT 9007199254740991LL

int model_error(ModelError *e, int code, const char *param, long long limit, const char *fmt, ...)
{
        va_list ap;

        e->code = code;
        e->param = param;
        e->limit = limit;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* ---- printing ------------------------------------------------------------------------------ */

char *model_json_print(const cJSON *v, bool newline)
{
        return json_print(v, newline);
}

/* Numbers too large for a double (1e999) parse as infinity, which JSON cannot carry back. */
static bool json_all_finite(const cJSON *v)
{
        if (cJSON_IsNumber(v))
                return isfinite(v->valuedouble);
        for (const cJSON *c = v->child; c; c = c->next)
                if (!json_all_finite(c))
                        return false;
        return true;
}

/* Control characters (C0, DEL, C1), line and paragraph separators, and the bidirectional
 * controls that make text shown on a terminal or page read other than it is (U+061C, U+200E-F,
 * U+202A-E, U+2066-9). s is valid UTF-8. */
static bool has_control_chars(const char *s)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p < 0x20 || *p == 0x7f)
                        return true;
                if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
                        return true;
                if (p[0] == 0xd8 && p[1] == 0x9c)
                        return true;
                if (p[0] == 0xe2 && p[1] == 0x80 &&
                    (p[2] == 0x8e || p[2] == 0x8f || (p[2] >= 0xa8 && p[2] <= 0xae)))
                        return true;
                if (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)
                        return true;
        }
        return false;
}

bool model_id_valid(const char *s, size_t max_bytes)
{
        size_t n = strlen(s);

        return n > 0 && n <= max_bytes && !has_control_chars(s);
}

bool model_user_id_valid(const char *s)
{
        return model_id_valid(s, MAX_USER_ID_BYTES) && !strchr(s, '/');
}

int model_check_keys(const cJSON *obj, const char *const *allowed, ModelError *e)
{
        const cJSON *item;

        cJSON_ArrayForEach(item, obj)
        {
                bool found = false;

                for (const char *const *a = allowed; *a; a++)
                        if (streq(item->string, *a)) {
                                found = true;
                                break;
                        }
                /* The name lives as long as the request, which outlives the error reply. */
                if (!found)
                        return model_error(e, RPC_INVALID_PARAMS, item->string, -1,
                                           "Unknown parameter \"%.64s\".", item->string);
        }
        return 0;
}

int model_get_string(const cJSON *obj, const char *key, size_t max, bool allow_null, const char **ret,
                     bool *ret_null, ModelError *e)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        *ret = NULL;
        if (ret_null)
                *ret_null = false;
        if (!v)
                return 0;
        if (cJSON_IsNull(v) && allow_null) {
                if (ret_null)
                        *ret_null = true;
                return 1;
        }
        if (!cJSON_IsString(v))
                return model_error(e, RPC_INVALID_PARAMS, key, -1, "Parameter \"%s\" must be a string%s.",
                                   key, allow_null ? " or null" : "");
        if (strlen(v->valuestring) > max)
                return model_error(e, RPC_TOO_LARGE, key, (long long)max,
                                   "Parameter \"%s\" is longer than %zu bytes.", key, max);
        *ret = v->valuestring;
        return 1;
}

int model_get_int(const cJSON *obj, const char *key, long long min, long long max, bool allow_null,
                  long long *ret, bool *ret_null, ModelError *e)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        if (ret_null)
                *ret_null = false;
        if (!v)
                return 0;
        if (cJSON_IsNull(v) && allow_null) {
                if (ret_null)
                        *ret_null = true;
                return 1;
        }
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
            fabs(v->valuedouble) > (double)MAX_SAFE_INT)
                return model_error(e, RPC_INVALID_PARAMS, key, -1, "Parameter \"%s\" must be an integer%s.",
                                   key, allow_null ? " or null" : "");
        if (v->valuedouble < (double)min || v->valuedouble > (double)max)
                return model_error(e, RPC_INVALID_PARAMS, key, -1,
                                   "Parameter \"%s\" must be between %lld and %lld.", key, min, max);
        *ret = (long long)v->valuedouble;
        return 1;
}

static bool string_in(const char *s, const char *const *list)
{
        for (; *list; list++)
                if (streq(s, *list))
                        return true;
        return false;
}

static const char *const cell_types[] = { "python", "sql", NULL };
static const char *const cell_statuses[] = { "idle", "running", "success", "error", NULL };

/* A list of distinct variable names, first occurrence kept. */
typedef struct VarRef {
        const char *name;
        int index;
} VarRef;

static int var_ref_compare(const void *a, const void *b)
{
        const VarRef *x = a, *y = b;
        int c = strcmp(x->name, y->name);

        return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* A list of distinct variable names, first occurrence kept. Duplicates are found by sorting, so
 * a cell of MAX_VARS names costs n log n, not n squared. */
static int vars_normalise(const cJSON *v, const char *key, cJSON **ret, ModelError *e)
{
        _cleanup_(cJSON_Deletep) cJSON *out = NULL;
        _cleanup_free_ VarRef *refs = NULL;
        _cleanup_free_ bool *dup = NULL;
        const cJSON *item;
        int n, i = 0;

        if (!cJSON_IsArray(v))
                return model_error(e, RPC_INVALID_PARAMS, key, -1, "\"%s\" must be an array of strings.",
                                   key);
        n = cJSON_GetArraySize(v);
        if (n > MAX_VARS)
                return model_error(e, RPC_TOO_LARGE, key, MAX_VARS, "\"%s\" has more than %d names.", key,
                                   MAX_VARS);
        refs = calloc((size_t)n + 1, sizeof(*refs));
        dup = calloc((size_t)n + 1, sizeof(*dup));
        out = cJSON_CreateArray();
        if (!refs || !dup || !out)
                return -ENOMEM;
        cJSON_ArrayForEach(item, v)
        {
                if (!cJSON_IsString(item) || !*item->valuestring)
                        return model_error(e, RPC_INVALID_PARAMS, key, -1,
                                           "\"%s\" must be an array of non-empty strings.", key);
                if (strlen(item->valuestring) > MAX_VAR_BYTES)
                        return model_error(e, RPC_TOO_LARGE, key, MAX_VAR_BYTES,
                                           "A name in \"%s\" is longer than %d bytes.", key, MAX_VAR_BYTES);
                refs[i] = (VarRef){ item->valuestring, i };
                i++;
        }
        if (n > 1)
                qsort(refs, (size_t)n, sizeof(*refs), var_ref_compare);
        for (i = 1; i < n; i++)
                if (streq(refs[i].name, refs[i - 1].name))
                        dup[refs[i].index] = true;
        i = 0;
        cJSON_ArrayForEach(item, v)
        {
                if (!dup[i++] && !cJSON_AddItemToArray(out, cJSON_CreateString(item->valuestring)))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static int outputs_check(const cJSON *v, ModelError *e)
{
        static const char *const output_keys[] = { "mime_type", "data", "metadata", NULL };
        _cleanup_free_ char *text = NULL;
        const cJSON *o;

        if (!cJSON_IsArray(v))
                return model_error(e, RPC_INVALID_PARAMS, "outputs", -1, "\"outputs\" must be an array.");
        if (cJSON_GetArraySize(v) > MAX_OUTPUTS)
                return model_error(e, RPC_TOO_LARGE, "outputs", MAX_OUTPUTS,
                                   "A cell has at most %d outputs.", MAX_OUTPUTS);
        cJSON_ArrayForEach(o, v)
        {
                const cJSON *mime, *data, *meta;

                if (!cJSON_IsObject(o))
                        return model_error(e, RPC_INVALID_PARAMS, "outputs", -1,
                                           "Each output must be an object.");
                if (model_check_keys(o, output_keys, e) < 0) {
                        e->param = "outputs";
                        return -EINVAL;
                }
                mime = cJSON_GetObjectItemCaseSensitive(o, "mime_type");
                data = cJSON_GetObjectItemCaseSensitive(o, "data");
                meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
                if (!cJSON_IsString(mime) || !*mime->valuestring || has_control_chars(mime->valuestring))
                        return model_error(e, RPC_INVALID_PARAMS, "outputs", -1,
                                           "An output's \"mime_type\" must be a non-empty string.");
                if (strlen(mime->valuestring) > MAX_MIME_TYPE_BYTES)
                        return model_error(e, RPC_TOO_LARGE, "outputs", MAX_MIME_TYPE_BYTES,
                                           "An output's \"mime_type\" is longer than %d bytes.",
                                           MAX_MIME_TYPE_BYTES);
                if (!data || !(cJSON_IsString(data) || cJSON_IsObject(data) || cJSON_IsArray(data)))
                        return model_error(e, RPC_INVALID_PARAMS, "outputs", -1,
                                           "An output's \"data\" must be a string, an object or an array.");
                if (meta && !cJSON_IsObject(meta))
                        return model_error(e, RPC_INVALID_PARAMS, "outputs", -1,
                                           "An output's \"metadata\" must be an object.");
        }
        if (!json_all_finite(v))
                return model_error(e, RPC_INVALID_PARAMS, "outputs", -1,
                                   "A number in \"outputs\" is too large to store.");
        text = model_json_print(v, false);
        if (!text)
                return -ENOMEM;
        if (strlen(text) > MAX_OUTPUTS_BYTES)
                return model_error(e, RPC_TOO_LARGE, "outputs", MAX_OUTPUTS_BYTES,
                                   "A cell's outputs take more than %u bytes.", MAX_OUTPUTS_BYTES);
        return 0;
}

/* Outputs as stored: every output with a metadata object. */
static cJSON *outputs_normalise(const cJSON *v)
{
        cJSON *out = cJSON_Duplicate(v, true), *o;

        if (!out)
                return NULL;
        cJSON_ArrayForEach(o, out) if (!cJSON_GetObjectItemCaseSensitive(o, "metadata"))
        {
                if (!cJSON_AddObjectToObject(o, "metadata")) {
                        cJSON_Delete(out);
                        return NULL;
                }
        }
        return out;
}

static int add_string_field(cJSON *out, const cJSON *obj, const char *key, size_t max, bool allow_null,
                            const char *const *choices, unsigned *count, ModelError *e)
{
        const char *s;
        bool is_null;
        int r;

        r = model_get_string(obj, key, max, allow_null, &s, &is_null, e);
        if (r < 0)
                return r;
        if (r > 0 && s && choices && !string_in(s, choices))
                return model_error(e, RPC_INVALID_PARAMS, key, -1, "\"%s\" has an unknown value \"%.32s\".",
                                   key, s);
        if (r > 0)
                (*count)++;
        if (r > 0 && is_null)
                return cJSON_AddNullToObject(out, key) ? 0 : -ENOMEM;
        if (r > 0)
                return cJSON_AddStringToObject(out, key, s) ? 0 : -ENOMEM;
        return 0;
}

int model_cell_fields(const cJSON *obj, bool defaults, cJSON **ret, unsigned *ret_count, ModelError *e)
{
        _cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
        unsigned count = 0;
        const cJSON *v;
        int r;

        if (!out)
                return -ENOMEM;
        if ((r = add_string_field(out, obj, "type", 16, false, cell_types, &count, e)) < 0 ||
            (r = add_string_field(out, obj, "code", MAX_CODE_BYTES, false, NULL, &count, e)) < 0 ||
            (r = add_string_field(out, obj, "status", 16, false, cell_statuses, &count, e)) < 0 ||
            (r = add_string_field(out, obj, "stdout", MAX_STDOUT_BYTES, false, NULL, &count, e)) < 0 ||
            (r = add_string_field(out, obj, "error", MAX_ERROR_BYTES, true, NULL, &count, e)) < 0)
                return r;

        v = cJSON_GetObjectItemCaseSensitive(obj, "outputs");
        if (v) {
                cJSON *norm;

                r = outputs_check(v, e);
                if (r < 0)
                        return r;
                norm = outputs_normalise(v);
                if (!norm || !cJSON_AddItemToObject(out, "outputs", norm)) {
                        cJSON_Delete(norm);
                        return -ENOMEM;
                }
                count++;
        }
        for (const char *const *k = (const char *const[]){ "reads", "writes", NULL }; *k; k++) {
                cJSON *norm = NULL;

                v = cJSON_GetObjectItemCaseSensitive(obj, *k);
                if (!v)
                        continue;
                r = vars_normalise(v, *k, &norm, e);
                if (r < 0)
                        return r;
                if (!cJSON_AddItemToObject(out, *k, norm)) {
                        cJSON_Delete(norm);
                        return -ENOMEM;
                }
                count++;
        }

        if (defaults) {
                /* Fill what a create did not give, in the order cells are shown. */
                static const struct {
                        const char *key;
                        const char *value; /* NULL: JSON null; "[]": empty array */
                } defs[] = {
                        { "type", "python" }, { "code", "" },    { "status", "idle" }, { "stdout", "" },
                        { "outputs", "[]" },  { "error", NULL }, { "reads", "[]" },    { "writes", "[]" },
                };
                for (size_t i = 0; i < ELEMENTSOF(defs); i++) {
                        cJSON *item;

                        if (cJSON_GetObjectItemCaseSensitive(out, defs[i].key))
                                continue;
                        if (!defs[i].value)
                                item = cJSON_CreateNull();
                        else if (streq(defs[i].value, "[]"))
                                item = cJSON_CreateArray();
                        else
                                item = cJSON_CreateString(defs[i].value);
                        if (!item || !cJSON_AddItemToObject(out, defs[i].key, item)) {
                                cJSON_Delete(item);
                                return -ENOMEM;
                        }
                }
        }
        if (ret_count)
                *ret_count = count;
        *ret = TAKE_PTR(out);
        return 0;
}

/* ---- numbers as sent ----------------------------------------------------------------------- */

/* A decimal number reduced to what it means: sign, significant digits (no leading or trailing
 * zeros) and the power of ten of the first one. Zero has no digits. */
typedef struct Decimal {
        bool negative;
        char digits[400];
        size_t n;
        long long first;
} Decimal;

static void decimal_parse(const char *s, size_t len, Decimal *d)
{
        size_t i = 0, int_len = 0, m_end;
        long long exp = 0, power;
        bool started = false;

        *d = (Decimal){ 0 };
        if (i < len && (s[i] == '-' || s[i] == '+'))
                d->negative = s[i++] == '-';
        for (m_end = i; m_end < len && s[m_end] != 'e' && s[m_end] != 'E'; m_end++)
                ;
        while (i + int_len < m_end && s[i + int_len] != '.')
                int_len++;
        if (m_end < len) {
                size_t k = m_end + 1;
                bool neg = false;

                if (k < len && (s[k] == '-' || s[k] == '+'))
                        neg = s[k++] == '-';
                /* Digits only: any other byte would take exp below zero and on past LLONG_MIN. */
                for (; k < len && s[k] >= '0' && s[k] <= '9'; k++)
                        exp = MIN(exp * 10 + (s[k] - '0'), 1000000000LL);
                if (neg)
                        exp = -exp;
        }
        /* The digit k places after the start of the integer part stands for 10^(int_len - 1 - k),
         * a fraction digit one power lower for each place after the point. */
        power = (long long)int_len - 1 + exp;
        for (size_t k = i; k < m_end; k++) {
                if (s[k] == '.')
                        continue;
                if (s[k] != '0' || started) {
                        if (!started)
                                d->first = power;
                        started = true;
                        if (d->n < sizeof(d->digits) - 1)
                                d->digits[d->n++] = s[k];
                }
                power--;
        }
        while (d->n > 0 && d->digits[d->n - 1] == '0')
                d->n--;
        d->digits[d->n] = '\0';
}

int model_number_check(const char *text, size_t len)
{
        char buf[512], num[JSON_NUMBER_MAX];
        Decimal sent, kept;
        double v;

        if (len >= sizeof(buf))
                return -ERANGE; /* past 38 significant digits whatever they are */
        memcpy(buf, text, len);
        buf[len] = '\0';
        v = strtod(buf, NULL);
        decimal_parse(buf, len, &sent);
        if (sent.n == 0)
                return 0;
        if (!isfinite(v) || v == 0 || fabs(v) < 1e-130 || fabs(v) >= 1e126)
                return -ERANGE;
        json_number(num, v);
        decimal_parse(num, strlen(num), &kept);
        if (sent.negative != kept.negative || sent.first != kept.first || !streq(sent.digits, kept.digits))
                return -EDOM;
        return 0;
}

static int check_number(const char *tok, size_t len, const char *param, ModelError *e)
{
        int r = model_number_check(tok, len);

        if (r == -ERANGE)
                return model_error(
                        e, RPC_INVALID_PARAMS, param, -1,
                        "The number %.*s in \"%s\" is out of DynamoDB's range (1e-130 to 1e126 in "
                        "magnitude, or 0, with at most 38 significant digits).",
                        (int)MIN(len, (size_t)40), tok, param ? param : "params");
        if (r == -EDOM)
                return model_error(
                        e, RPC_INVALID_PARAMS, param, -1,
                        "The number %.*s in \"%s\" cannot be kept exactly: notebookd stores numbers "
                        "as IEEE 754 doubles (up to 17 significant digits); send it as a string.",
                        (int)MIN(len, (size_t)40), tok, param ? param : "params");
        return r;
}

static int key_cmp(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key the object v holds twice, or NULL; -ENOMEM in *ret_error. */
static const char *repeated_key(const cJSON *v, size_t n, int *ret_error)
{
        _cleanup_free_ const char **keys = NULL;
        size_t i = 0;

        if (n <= 8) {
                for (const cJSON *a = v->child; a; a = a->next)
                        for (const cJSON *b = a->next; b; b = b->next)
                                if (streq(a->string, b->string))
                                        return a->string;
                return NULL;
        }
        /* Sorted, a repeated key stands next to itself. */
        keys = malloc(n * sizeof(*keys));
        if (!keys) {
                *ret_error = -ENOMEM;
                return NULL;
        }
        for (const cJSON *c = v->child; c; c = c->next)
                keys[i++] = c->string;
        qsort(keys, n, sizeof(*keys), key_cmp);
        for (i = 1; i < n; i++)
                if (streq(keys[i - 1], keys[i]))
                        return keys[i];
        return NULL;
}

int model_check_unique_keys(const cJSON *v, ModelError *e)
{
        const char *key;
        size_t n = 0;
        int r = 0;

        if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
                return 0;
        for (const cJSON *c = v->child; c; c = c->next, n++) {
                r = model_check_unique_keys(c, e);
                if (r < 0)
                        return r;
        }
        if (!cJSON_IsObject(v) || n < 2)
                return 0;
        key = repeated_key(v, n, &r);
        if (r < 0)
                return r;
        if (key)
                return model_error(
                        e, RPC_INVALID_REQUEST, NULL, -1,
                        "The request repeats the key \"%.64s\" in one object; each key may appear once.",
                        key);
        return 0;
}

int model_check_numbers(const char *line, size_t len, const cJSON *params, ModelError *e)
{
        const char *key = NULL; /* the parameter being read: the last key seen at depth 2 */
        size_t key_len = 0;
        int depth = 0;

        for (size_t i = 0; i < len; i++) {
                char ch = line[i];

                if (ch == '"') {
                        size_t start = ++i, j;

                        while (i < len && line[i] != '"')
                                i += line[i] == '\\' ? 2 : 1;
                        /* A key is a string followed by a colon. */
                        for (j = i + 1; j < len && (line[j] == ' ' || line[j] == '\t' || line[j] == '\r');
                             j++)
                                ;
                        if (depth == 2 && j < len && line[j] == ':') {
                                key = line + start;
                                key_len = i - start;
                        }
                } else if (ch == '{' || ch == '[')
                        depth++;
                else if (ch == '}' || ch == ']')
                        depth--;
                else if (ch == '-' || (ch >= '0' && ch <= '9')) {
                        size_t start = i;

                        while (i + 1 < len && strchr("+-.eE0123456789", line[i + 1]))
                                i++;
                        /* Depth 1 holds the request's own members ("id"); parameters are deeper. */
                        if (depth >= 2) {
                                const char *param = NULL;
                                const cJSON *p;
                                int r;

                                /* The parameter's name as the request holds it, for the error. */
                                cJSON_ArrayForEach(p, params) if (key && strlen(p->string) == key_len &&
                                                                  memcmp(p->string, key, key_len) == 0)
                                        param = p->string;
                                r = check_number(line + start, i + 1 - start, param, e);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

/* ---- list cursors -------------------------------------------------------------------------- */

/* A cursor is base64url (no padding) of the JSON array [1, user_id, created_at, id]: the version of
 * this format, whose list it continues, and the key of the last row sent. It is opaque to peers;
 * nothing in it is secret (a peer may list that user anyway). */
#define CURSOR_VERSION 1

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64url_encode(const char *in, size_t n)
{
        char *out = malloc(n / 3 * 4 + 5), *p = out;
        size_t i;

        if (!out)
                return NULL;
        for (i = 0; i + 2 < n; i += 3) {
                uint32_t v = (uint32_t)(uint8_t)in[i] << 16 | (uint32_t)(uint8_t)in[i + 1] << 8 |
                             (uint8_t)in[i + 2];

                *p++ = b64url[v >> 18 & 63];
                *p++ = b64url[v >> 12 & 63];
                *p++ = b64url[v >> 6 & 63];
                *p++ = b64url[v & 63];
        }
        if (i < n) {
                uint32_t v =
                        (uint32_t)(uint8_t)in[i] << 16 | (i + 1 < n ? (uint32_t)(uint8_t)in[i + 1] << 8 : 0);

                *p++ = b64url[v >> 18 & 63];
                *p++ = b64url[v >> 12 & 63];
                if (i + 1 < n)
                        *p++ = b64url[v >> 6 & 63];
        }
        *p = '\0';
        return out;
}

static int b64url_value(char c)
{
        const char *p = c ? strchr(b64url, c) : NULL;

        return p ? (int)(p - b64url) : -1;
}

/* -EINVAL for anything but canonical unpadded base64url. */
static int b64url_decode(const char *in, char **ret, size_t *ret_len)
{
        size_t n = strlen(in), len = 0;
        uint32_t acc = 0;
        unsigned bits = 0;
        char *out;

        if (n % 4 == 1)
                return -EINVAL;
        out = malloc(n / 4 * 3 + 3);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int v = b64url_value(in[i]);

                if (v < 0) {
                        free(out);
                        return -EINVAL;
                }
                acc = acc << 6 | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[len++] = (char)(acc >> bits & 0xff);
                }
        }
        /* Bits left over must be zero, so that one key has one cursor. */
        if (acc & ((1u << bits) - 1)) {
                free(out);
                return -EINVAL;
        }
        out[len] = '\0';
        *ret = out;
        *ret_len = len;
        return 0;
}

char *model_list_cursor_format(const char *user_id, const char *created_at, const char *id)
{
        _cleanup_(cJSON_Deletep) cJSON *a = cJSON_CreateArray();
        _cleanup_free_ char *json = NULL;

        if (!a || !cJSON_AddItemToArray(a, cJSON_CreateNumber(CURSOR_VERSION)) ||
            !cJSON_AddItemToArray(a, cJSON_CreateString(user_id)) ||
            !cJSON_AddItemToArray(a, cJSON_CreateString(created_at)) ||
            !cJSON_AddItemToArray(a, cJSON_CreateString(id)))
                return NULL;
        json = model_json_print(a, false);
        if (!json)
                return NULL;
        return b64url_encode(json, strlen(json));
}

int model_list_cursor_parse(const char *cursor, const char *user_id, cJSON **ret,
                            const char **ret_created_at, const char **ret_id)
{
        _cleanup_(cJSON_Deletep) cJSON *a = NULL;
        _cleanup_free_ char *json = NULL, *again = NULL;
        const cJSON *v, *u, *c, *i;
        size_t len;
        int r;

        if (strlen(cursor) > MAX_LIST_CURSOR_BYTES)
                return -EINVAL;
        r = b64url_decode(cursor, &json, &len);
        if (r < 0)
                return r;
        if (strlen(json) != len || !utf8_is_valid(json, len))
                return -EINVAL;
        a = cJSON_ParseWithLength(json, len);
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4)
                return -EINVAL;
        v = cJSON_GetArrayItem(a, 0);
        u = cJSON_GetArrayItem(a, 1);
        c = cJSON_GetArrayItem(a, 2);
        i = cJSON_GetArrayItem(a, 3);
        if (!cJSON_IsNumber(v) || v->valuedouble != CURSOR_VERSION || !cJSON_IsString(u) ||
            !cJSON_IsString(c) || !c->valuestring[0] || !cJSON_IsString(i) ||
            !model_id_valid(i->valuestring, MAX_ID_BYTES))
                return -EINVAL;
        if (!streq(u->valuestring, user_id))
                return -EPERM;
        /* Only the daemon's own text: JSON says the same key in other ways too (blanks, escapes,
         * raw control characters, 1.0 for 1), and one key has one cursor. */
        again = model_list_cursor_format(u->valuestring, c->valuestring, i->valuestring);
        if (!again)
                return -ENOMEM;
        if (!streq(again, cursor))
                return -EINVAL;
        *ret_created_at = c->valuestring;
        *ret_id = i->valuestring;
        *ret = TAKE_PTR(a);
        return 0;
}
