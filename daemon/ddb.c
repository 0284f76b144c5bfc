/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "ddb.h"
#include "model.h"
#include "nb-limits.h"
#include "util.h"

/* Largest integer a double holds exactly: revisions beyond it could not round-trip. */
#define MAX_EXACT_INT 9007199254740992.0
/* An error answer larger than this is not parsed: its status decides. */
#define ERROR_BODY_MAX_BYTES (64u * 1024)

/* ---- numbers ------------------------------------------------------------------------------- */

/* A number in DynamoDB's decimal text: [+-] digits [. digits] or [+-] . digits, then an optional
 * [eE][+-]digits. first and last: the powers of ten of the first and last non-zero digits (zero
 * has none). number_scan() refuses anything else ("inf", "0x1p3", " 1", "") with -EINVAL. */
typedef struct NumberScan {
        bool negative, zero;
        long long first, last;
} NumberScan;

static int number_scan(const char *s, NumberScan *ret)
{
        const char *p = s, *int_start, *frac_start = NULL;
        size_t int_len, frac_len = 0;
        long long exp = 0;
        bool found = false;

        *ret = (NumberScan){ .zero = true };
        if (*p == '+' || *p == '-')
                ret->negative = *p++ == '-';
        int_start = p;
        while (*p >= '0' && *p <= '9')
                p++;
        int_len = (size_t)(p - int_start);
        if (*p == '.') {
                frac_start = ++p;
                while (*p >= '0' && *p <= '9')
                        p++;
                frac_len = (size_t)(p - frac_start);
        }
        if (int_len + frac_len == 0)
                return -EINVAL;
        if (*p == 'e' || *p == 'E') {
                bool neg = false;

                p++;
                if (*p == '+' || *p == '-')
                        neg = *p++ == '-';
                if (!(*p >= '0' && *p <= '9'))
                        return -EINVAL;
                /* Saturates: such a number is out of DynamoDB's range anyway. */
                for (; *p >= '0' && *p <= '9'; p++)
                        exp = MIN(exp * 10 + (*p - '0'), 1000000000LL);
                if (neg)
                        exp = -exp;
        }
        if (*p)
                return -EINVAL;

        /* The digit at index i of the integer part stands for 10^(int_len - 1 - i + exp), the one
         * at index j of the fraction for 10^(-1 - j + exp). */
        for (size_t i = 0; i < int_len + frac_len; i++) {
                char c = i < int_len ? int_start[i] : frac_start[i - int_len];
                long long power = (long long)int_len - 1 - (long long)i + exp;

                if (c == '0')
                        continue;
                if (!found)
                        ret->first = power;
                ret->last = power;
                found = true;
        }
        ret->zero = !found;
        return 0;
}

static long long floor_div2(long long v)
{
        return v >= 0 ? v / 2 : -((-v + 1) / 2);
}

size_t ddb_number_size(const char *number)
{
        NumberScan n;
        size_t size;

        if (!number || number_scan(number, &n) < 0)
                return 0;
        if (n.zero)
                return 1;
        /* Base-100 digits aligned on the decimal point: powers 2k and 2k+1 share a byte. */
        size = (size_t)(floor_div2(n.first) - floor_div2(n.last) + 1);
        size += 1;          /* exponent */
        size += n.negative; /* terminator of a negative mantissa */
        return MIN(size, (size_t)21);
}

/* A DynamoDB number as a double: finite, and integral when asked. */
static int number_to_double(const char *s, bool integral, double *ret)
{
        NumberScan n;
        double d;

        if (number_scan(s, &n) < 0)
                return -EBADMSG;
        /* A number a double would change (another writer's 25 digits) is refused, not rounded. */
        if (model_number_check(s, strlen(s)) < 0)
                return -EBADMSG;
        d = strtod(s, NULL);
        if (!isfinite(d) || (integral && (d != floor(d) || fabs(d) > MAX_EXACT_INT)))
                return -EBADMSG;
        *ret = d;
        return 0;
}

/* DynamoDB holds 1E-130 <= |x| < 1E126, and 0. */
static bool number_in_range(double d)
{
        return isfinite(d) && (d == 0 || (fabs(d) >= 1e-130 && fabs(d) < 1e126));
}

/* ---- AttributeValues from JSON ------------------------------------------------------------- */

/* Wraps v (taken over, also on failure) as {type: v}. */
static int av_new(const char *type, cJSON *v, cJSON **ret)
{
        cJSON *av;

        if (!v)
                return -ENOMEM;
        av = cJSON_CreateObject();
        if (!av || !cJSON_AddItemToObject(av, type, v)) {
                cJSON_Delete(av);
                cJSON_Delete(v);
                return -ENOMEM;
        }
        *ret = av;
        return 0;
}

static int av_string(const char *s, cJSON **ret)
{
        return av_new("S", cJSON_CreateString(s), ret);
}

static int av_null(cJSON **ret)
{
        return av_new("NULL", cJSON_CreateTrue(), ret);
}

/* A number as its exact text: the shortest that reads back as the same double. */
static int av_number(const cJSON *n, cJSON **ret)
{
        _cleanup_free_ char *text = NULL;

        if (!number_in_range(n->valuedouble))
                return -ERANGE;
        text = model_json_print(n, false);
        if (!text)
                return -ENOMEM;
        return av_new("N", cJSON_CreateString(text), ret);
}

/* Adds av (taken over, also on failure) to the object m under key, or to the array when key is
 * NULL. */
static int put(cJSON *m, const char *key, cJSON *av)
{
        if (!(key ? cJSON_AddItemToObject(m, key, av) : cJSON_AddItemToArray(m, av))) {
                cJSON_Delete(av);
                return -ENOMEM;
        }
        return 0;
}

/* Any JSON value as an AttributeValue; depth: the nesting level v gets if it is a list or map. */
static int av_from_json(const cJSON *v, unsigned depth, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *inner = NULL;
        const cJSON *c;
        bool obj;
        int r;

        if (cJSON_IsString(v))
                return av_string(v->valuestring, ret);
        if (cJSON_IsNumber(v))
                return av_number(v, ret);
        if (cJSON_IsBool(v))
                return av_new("BOOL", cJSON_CreateBool(cJSON_IsTrue(v)), ret);
        if (cJSON_IsNull(v))
                return av_null(ret);
        if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
                return -EINVAL;
        if (depth > DDB_MAX_NESTING)
                return -ERANGE;
        obj = cJSON_IsObject(v);
        inner = obj ? cJSON_CreateObject() : cJSON_CreateArray();
        if (!inner)
                return -ENOMEM;
        cJSON_ArrayForEach(c, v)
        {
                cJSON *e;

                r = av_from_json(c, depth + 1, &e);
                if (r < 0)
                        return r;
                r = put(inner, obj ? c->string : NULL, e);
                if (r < 0)
                        return r;
        }
        return av_new(obj ? "M" : "L", TAKE_PTR(inner), ret);
}

/* A string member as S; when nullable, null or absent as NULL. */
static int put_string(cJSON *m, const char *key, const cJSON *obj, const char *obj_key, bool nullable)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, obj_key);
        cJSON *av;
        int r;

        if (cJSON_IsString(v))
                r = av_string(v->valuestring, &av);
        else if (nullable && (!v || cJSON_IsNull(v)))
                r = av_null(&av);
        else
                return -EINVAL;
        return r < 0 ? r : put(m, key, av);
}

/* A list of strings (reads, writes). */
static int put_string_list(cJSON *m, const char *key, const cJSON *obj, unsigned depth)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key), *c;
        cJSON *av;
        int r;

        if (!cJSON_IsArray(v))
                return -EINVAL;
        cJSON_ArrayForEach(c, v)
        {
                if (!cJSON_IsString(c))
                        return -EINVAL;
        }
        r = av_from_json(v, depth, &av);
        return r < 0 ? r : put(m, key, av);
}

/* One output: mime_type S, data S|M|L, metadata M (depth: the output map's level). */
static int output_to_av(const cJSON *o, unsigned depth, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *m = cJSON_CreateObject();
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data"),
                    *meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        cJSON *av;
        int r;

        if (!m)
                return -ENOMEM;
        if (!cJSON_IsObject(o) || !(cJSON_IsString(data) || cJSON_IsObject(data) || cJSON_IsArray(data)) ||
            !cJSON_IsObject(meta))
                return -EINVAL;
        r = put_string(m, "mime_type", o, "mime_type", false);
        if (r < 0)
                return r;
        r = av_from_json(data, depth + 1, &av);
        if (r >= 0)
                r = put(m, "data", av);
        if (r < 0)
                return r;
        r = av_from_json(meta, depth + 1, &av);
        if (r >= 0)
                r = put(m, "metadata", av);
        if (r < 0)
                return r;
        return av_new("M", TAKE_PTR(m), ret);
}

/* One cell, a map at level 2 (the cells list is level 1); the local status stays out. */
static int cell_to_av(const cJSON *cell, cJSON **ret)
{
        static const char *const strings[] = { "id", "type", "code", "stdout" };
        _cleanup_(cJSON_Deletep) cJSON *m = cJSON_CreateObject(), *outputs = cJSON_CreateArray();
        const cJSON *v, *o;
        cJSON *av;
        int r;

        if (!m || !outputs)
                return -ENOMEM;
        if (!cJSON_IsObject(cell))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                r = put_string(m, strings[i], cell, strings[i], false);
                if (r < 0)
                        return r;
        }
        v = cJSON_GetObjectItemCaseSensitive(cell, "outputs");
        if (!cJSON_IsArray(v))
                return -EINVAL;
        cJSON_ArrayForEach(o, v)
        {
                r = output_to_av(o, 4, &av);
                if (r >= 0)
                        r = put(outputs, NULL, av);
                if (r < 0)
                        return r;
        }
        r = av_new("L", TAKE_PTR(outputs), &av);
        if (r >= 0)
                r = put(m, "outputs", av);
        if (r >= 0)
                r = put_string(m, "error", cell, "error", true);
        if (r >= 0)
                r = put_string_list(m, "reads", cell, 3);
        if (r >= 0)
                r = put_string_list(m, "writes", cell, 3);
        if (r < 0)
                return r;
        return av_new("M", TAKE_PTR(m), ret);
}

static bool is_nonempty_string(const cJSON *v)
{
        return cJSON_IsString(v) && v->valuestring[0];
}

/* ttl and demo_version: N when set, left out when null or absent. */
static int put_optional_number(cJSON *item, const cJSON *nb, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(nb, key);
        cJSON *av;
        int r;

        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsNumber(v))
                return -EINVAL;
        r = av_number(v, &av);
        return r < 0 ? r : put(item, key, av);
}

int ddb_item_from_notebook(const cJSON *nb, const char *sync_id, cJSON **ret_item)
{
        _cleanup_(cJSON_Deletep) cJSON *item = cJSON_CreateObject(), *cells = cJSON_CreateArray();
        const cJSON *rev = cJSON_GetObjectItemCaseSensitive(nb, "revision"),
                    *list = cJSON_GetObjectItemCaseSensitive(nb, "cells"), *c;
        cJSON *av;
        int r;

        if (!item || !cells)
                return -ENOMEM;
        /* Keys may not be empty strings, nor may created_at, the sort key of an index. */
        if (!cJSON_IsObject(nb) || !is_nonempty_string(cJSON_GetObjectItemCaseSensitive(nb, "id")) ||
            !is_nonempty_string(cJSON_GetObjectItemCaseSensitive(nb, "user_id")) ||
            !is_nonempty_string(cJSON_GetObjectItemCaseSensitive(nb, "created_at")) ||
            !cJSON_IsNumber(rev) || rev->valuedouble < 0 || rev->valuedouble != floor(rev->valuedouble) ||
            rev->valuedouble > MAX_EXACT_INT || !cJSON_IsArray(list))
                return -EINVAL;
        cJSON_ArrayForEach(c, list)
        {
                r = cell_to_av(c, &av);
                if (r >= 0)
                        r = put(cells, NULL, av);
                if (r < 0)
                        return r;
        }

        /* The seed's attribute order, which is also what a reader of the raw JSON sees first. */
        r = put_string(item, "user_id", nb, "user_id", false);
        if (r >= 0)
                r = put_string(item, "notebook_id", nb, "id", false);
        if (r >= 0)
                r = put_string(item, "name", nb, "name", true);
        if (r >= 0)
                r = put_string(item, "db_conn_string", nb, "db_conn_string", true);
        if (r >= 0 && (r = av_number(rev, &av)) >= 0)
                r = put(item, "revision", av);
        if (r >= 0 && (r = av_new("L", TAKE_PTR(cells), &av)) >= 0)
                r = put(item, "cells", av);
        if (r >= 0)
                r = put_string(item, "created_at", nb, "created_at", false);
        if (r >= 0)
                r = put_string(item, "updated_at", nb, "updated_at", false);
        if (r >= 0)
                r = put_optional_number(item, nb, "ttl");
        if (r >= 0)
                r = put_optional_number(item, nb, "demo_version");
        if (r >= 0 && sync_id && (r = av_string(sync_id, &av)) >= 0)
                r = put(item, "sync_id", av);
        if (r < 0)
                return r;
        *ret_item = TAKE_PTR(item);
        return 0;
}

/* ---- AttributeValues to JSON --------------------------------------------------------------- */

/* The one member of an AttributeValue ({"S": "x"}), whose name is the type; NULL when av is not
 * an object with exactly one member. */
static const cJSON *av_unwrap(const cJSON *av)
{
        if (!cJSON_IsObject(av) || !av->child || av->child->next || !av->child->string)
                return NULL;
        return av->child;
}

static bool av_is(const cJSON *v, const char *type)
{
        return v && streq(v->string, type);
}

/* The map of an {"M": {...}} AttributeValue, NULL if av is not one. */
static const cJSON *av_map(const cJSON *av)
{
        const cJSON *v = av_unwrap(av);

        return av_is(v, "M") && cJSON_IsObject(v) ? v : NULL;
}

static bool av_is_null(const cJSON *av)
{
        const cJSON *v = av_unwrap(av);

        return av_is(v, "NULL") && cJSON_IsTrue(v);
}

/* An AttributeValue of the JSON kinds (S, N, BOOL, NULL, M, L) as plain JSON. */
static int json_from_av(const cJSON *av, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *out = NULL;
        const cJSON *v = av_unwrap(av), *c;
        double d;
        int r;

        if (av_is(v, "S") && cJSON_IsString(v))
                out = cJSON_CreateString(v->valuestring);
        else if (av_is(v, "N") && cJSON_IsString(v)) {
                r = number_to_double(v->valuestring, false, &d);
                if (r < 0)
                        return r;
                out = cJSON_CreateNumber(d);
        } else if (av_is(v, "BOOL") && cJSON_IsBool(v))
                out = cJSON_CreateBool(cJSON_IsTrue(v));
        else if (av_is(v, "NULL") && cJSON_IsTrue(v))
                out = cJSON_CreateNull();
        else if ((av_is(v, "M") && cJSON_IsObject(v)) || (av_is(v, "L") && cJSON_IsArray(v))) {
                bool obj = cJSON_IsObject(v);

                out = obj ? cJSON_CreateObject() : cJSON_CreateArray();
                if (!out)
                        return -ENOMEM;
                cJSON_ArrayForEach(c, v)
                {
                        cJSON *e;

                        r = json_from_av(c, &e);
                        if (r >= 0)
                                r = put(out, obj ? c->string : NULL, e);
                        if (r < 0)
                                return r;
                }
        } else
                return -EBADMSG; /* B, sets, or not an AttributeValue */
        if (!out)
                return -ENOMEM;
        *ret = TAKE_PTR(out);
        return 0;
}

/* The value of m[key] if it is an AttributeValue of type; NULL when absent or (nullable) NULL.
 * -EBADMSG otherwise. */
static int get_typed(const cJSON *m, const char *key, const char *type, bool nullable, const cJSON **ret)
{
        const cJSON *av = cJSON_GetObjectItemCaseSensitive(m, key), *v = av_unwrap(av);

        *ret = NULL;
        if (!av || av_is_null(av))
                return nullable ? 0 : -EBADMSG;
        if (!av_is(v, type))
                return -EBADMSG;
        if (streq(type, "M")   ? !cJSON_IsObject(v)
            : streq(type, "L") ? !cJSON_IsArray(v)
                               : !cJSON_IsString(v))
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* Copies m[key] (S) to out[out_key] as a string, or null when nullable and NULL or absent. */
static int copy_string(cJSON *out, const char *out_key, const cJSON *m, const char *key, bool nullable)
{
        const cJSON *v;
        int r = get_typed(m, key, "S", nullable, &v);

        if (r < 0)
                return r;
        if (!(v ? cJSON_AddStringToObject(out, out_key, v->valuestring)
                : cJSON_AddNullToObject(out, out_key)))
                return -ENOMEM;
        return 0;
}

static int copy_number(cJSON *out, const char *out_key, const cJSON *m, const char *key, bool nullable,
                       bool integral)
{
        const cJSON *v;
        double d;
        int r = get_typed(m, key, "N", nullable, &v);

        if (r < 0)
                return r;
        if (!v)
                return cJSON_AddNullToObject(out, out_key) ? 0 : -ENOMEM;
        r = number_to_double(v->valuestring, integral, &d);
        if (r < 0)
                return r;
        return cJSON_AddNumberToObject(out, out_key, d) ? 0 : -ENOMEM;
}

/* A list attribute of strings, as a JSON array. */
static int copy_string_list(cJSON *out, const cJSON *m, const char *key)
{
        const cJSON *l, *e;
        cJSON *arr;
        int r = get_typed(m, key, "L", false, &l);

        if (r < 0)
                return r;
        arr = cJSON_AddArrayToObject(out, key);
        if (!arr)
                return -ENOMEM;
        cJSON_ArrayForEach(e, l)
        {
                const cJSON *s = av_unwrap(e);

                if (!av_is(s, "S") || !cJSON_IsString(s))
                        return -EBADMSG;
                if (!cJSON_AddItemToArray(arr, cJSON_CreateString(s->valuestring)))
                        return -ENOMEM;
        }
        return 0;
}

static int output_from_av(const cJSON *av, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
        const cJSON *m, *data, *meta;
        cJSON *v;
        int r;

        if (!o)
                return -ENOMEM;
        m = av_map(av);
        if (!m)
                return -EBADMSG;
        r = copy_string(o, "mime_type", m, "mime_type", false);
        if (r < 0)
                return r;
        data = av_unwrap(cJSON_GetObjectItemCaseSensitive(m, "data"));
        if (!(av_is(data, "S") || av_is(data, "M") || av_is(data, "L")))
                return -EBADMSG;
        r = json_from_av(cJSON_GetObjectItemCaseSensitive(m, "data"), &v);
        if (r >= 0)
                r = put(o, "data", v);
        if (r < 0)
                return r;
        r = get_typed(m, "metadata", "M", false, &meta);
        if (r >= 0)
                r = json_from_av(cJSON_GetObjectItemCaseSensitive(m, "metadata"), &v);
        if (r >= 0)
                r = put(o, "metadata", v);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int cell_from_av(const cJSON *av, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *cell = cJSON_CreateObject();
        const cJSON *m, *type, *l, *e;
        cJSON *outputs;
        int r;

        if (!cell)
                return -ENOMEM;
        m = av_map(av);
        if (!m)
                return -EBADMSG;
        r = get_typed(m, "type", "S", false, &type);
        if (r < 0)
                return r;
        if (!streq(type->valuestring, "python") && !streq(type->valuestring, "sql"))
                return -EBADMSG;
        /* The protocol's key order: id, type, code, status, stdout, outputs, error, reads, writes. */
        if ((r = copy_string(cell, "id", m, "id", false)) < 0 ||
            (r = copy_string(cell, "type", m, "type", false)) < 0 ||
            (r = copy_string(cell, "code", m, "code", false)) < 0)
                return r;
        /* Ids that could not be named through the protocol (control characters, too long) are not
         * taken in. */
        if (!model_id_valid(cJSON_GetObjectItemCaseSensitive(cell, "id")->valuestring, MAX_ID_BYTES))
                return -EBADMSG;
        if (!cJSON_AddStringToObject(cell, "status", "idle"))
                return -ENOMEM;
        if ((r = copy_string(cell, "stdout", m, "stdout", false)) < 0)
                return r;
        r = get_typed(m, "outputs", "L", false, &l);
        if (r < 0)
                return r;
        outputs = cJSON_AddArrayToObject(cell, "outputs");
        if (!outputs)
                return -ENOMEM;
        cJSON_ArrayForEach(e, l)
        {
                cJSON *o;

                r = output_from_av(e, &o);
                if (r >= 0)
                        r = put(outputs, NULL, o);
                if (r < 0)
                        return r;
        }
        if ((r = copy_string(cell, "error", m, "error", true)) < 0 ||
            (r = copy_string_list(cell, m, "reads")) < 0 || (r = copy_string_list(cell, m, "writes")) < 0)
                return r;
        *ret = TAKE_PTR(cell);
        return 0;
}

int ddb_notebook_from_item(const cJSON *item, cJSON **ret_notebook, char **ret_sync_id)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = cJSON_CreateObject();
        _cleanup_free_ char *sync_id = NULL;
        const cJSON *l, *e, *sid, *key;
        cJSON *cells;
        int r;

        if (!nb)
                return -ENOMEM;
        if (!cJSON_IsObject(item))
                return -EBADMSG;
        /* Keys: ids the protocol could name (no control characters, within the limits); another
         * writer may have put anything in the table. */
        if ((r = get_typed(item, "notebook_id", "S", false, &key)) < 0 ||
            !model_id_valid(key->valuestring, MAX_ID_BYTES) ||
            (r = get_typed(item, "user_id", "S", false, &key)) < 0 || !model_user_id_valid(key->valuestring))
                return -EBADMSG;
        if ((r = copy_string(nb, "id", item, "notebook_id", false)) < 0 ||
            (r = copy_string(nb, "user_id", item, "user_id", false)) < 0 ||
            (r = copy_string(nb, "name", item, "name", true)) < 0 ||
            (r = copy_string(nb, "db_conn_string", item, "db_conn_string", true)) < 0 ||
            (r = copy_number(nb, "revision", item, "revision", false, true)) < 0 ||
            (r = copy_string(nb, "created_at", item, "created_at", false)) < 0 ||
            (r = copy_string(nb, "updated_at", item, "updated_at", false)) < 0 ||
            (r = copy_number(nb, "ttl", item, "ttl", true, false)) < 0 ||
            (r = copy_number(nb, "demo_version", item, "demo_version", true, false)) < 0)
                return r;
        if (cJSON_GetObjectItemCaseSensitive(nb, "revision")->valuedouble < 0)
                return -EBADMSG;
        r = get_typed(item, "cells", "L", false, &l);
        if (r < 0)
                return r;
        cells = cJSON_AddArrayToObject(nb, "cells");
        if (!cells)
                return -ENOMEM;
        cJSON_ArrayForEach(e, l)
        {
                cJSON *cell;

                r = cell_from_av(e, &cell);
                if (r >= 0)
                        r = put(cells, NULL, cell);
                if (r < 0)
                        return r;
        }
        r = get_typed(item, "sync_id", "S", true, &sid);
        if (r < 0)
                return r;
        if (sid && ret_sync_id && !(sync_id = strdup(sid->valuestring)))
                return -ENOMEM;
        if (ret_sync_id)
                *ret_sync_id = TAKE_PTR(sync_id);
        *ret_notebook = TAKE_PTR(nb);
        return 0;
}

int ddb_item_set_parent(cJSON *item, const char *parent_sync_id)
{
        cJSON *av;
        int r;

        cJSON_DeleteItemFromObjectCaseSensitive(item, "parent_sync_id");
        if (!parent_sync_id)
                return 0;
        r = av_string(parent_sync_id, &av);
        return r < 0 ? r : put(item, "parent_sync_id", av);
}

int ddb_item_head(const cJSON *item, DdbItemHead *ret)
{
        const cJSON *uid, *nid, *rev, *sid, *parent, *upd;
        double d;
        int r;

        if ((r = get_typed(item, "user_id", "S", false, &uid)) < 0 ||
            (r = get_typed(item, "notebook_id", "S", false, &nid)) < 0 ||
            (r = get_typed(item, "revision", "N", false, &rev)) < 0 ||
            (r = get_typed(item, "sync_id", "S", true, &sid)) < 0 ||
            (r = get_typed(item, "parent_sync_id", "S", true, &parent)) < 0 ||
            (r = get_typed(item, "updated_at", "S", true, &upd)) < 0)
                return -EBADMSG;
        if (!uid->valuestring[0] || !nid->valuestring[0] ||
            number_to_double(rev->valuestring, true, &d) < 0 || d < 0)
                return -EBADMSG;
        *ret = (DdbItemHead){
                .user_id = uid->valuestring,
                .notebook_id = nid->valuestring,
                .revision = (int64_t)d,
                .sync_id = sid ? sid->valuestring : NULL,
                .parent_sync_id = parent ? parent->valuestring : NULL,
                .updated_at = upd ? upd->valuestring : NULL,
        };
        return 0;
}

/* ---- sizes --------------------------------------------------------------------------------- */

/* Raw bytes of base64 text: 3 per 4 characters, less the padding. */
static size_t base64_raw_size(const char *s)
{
        size_t n = strlen(s), pad = 0;

        while (n > pad && s[n - 1 - pad] == '=')
                pad++;
        return (n - pad) * 3 / 4;
}

static size_t value_size(const cJSON *av)
{
        const cJSON *v = av_unwrap(av), *c;
        size_t n = 0;

        if (!v)
                return 0;
        if (av_is(v, "S") && cJSON_IsString(v))
                return strlen(v->valuestring);
        if (av_is(v, "N") && cJSON_IsString(v))
                return ddb_number_size(v->valuestring);
        if (av_is(v, "B") && cJSON_IsString(v))
                return base64_raw_size(v->valuestring);
        if (av_is(v, "BOOL") || av_is(v, "NULL"))
                return 1;
        /* Sets: their elements, without overhead. */
        if (av_is(v, "SS") || av_is(v, "NS") || av_is(v, "BS")) {
                cJSON_ArrayForEach(c, v)
                {
                        if (!cJSON_IsString(c))
                                continue;
                        if (av_is(v, "SS"))
                                n += strlen(c->valuestring);
                        else if (av_is(v, "NS"))
                                n += ddb_number_size(c->valuestring);
                        else
                                n += base64_raw_size(c->valuestring);
                }
                return n;
        }
        if ((av_is(v, "M") && cJSON_IsObject(v)) || (av_is(v, "L") && cJSON_IsArray(v))) {
                bool map = cJSON_IsObject(v);

                n = 3;
                cJSON_ArrayForEach(c, v)
                {
                        n += 1 + (map ? strlen(c->string) : 0) + value_size(c);
                }
                return n;
        }
        return 0;
}

size_t ddb_item_size(const cJSON *item)
{
        const cJSON *a;
        size_t n = 0;

        cJSON_ArrayForEach(a, item)
        {
                n += strlen(a->string) + value_size(a);
        }
        return n;
}

/* ---- requests ------------------------------------------------------------------------------ */

static cJSON *body_new(const char *table)
{
        cJSON *b = cJSON_CreateObject();

        if (b && !cJSON_AddStringToObject(b, "TableName", table)) {
                cJSON_Delete(b);
                return NULL;
        }
        return b;
}

/* Key: {hash_name: S, range_name: S}. */
static int put_key_of(cJSON *b, const char *hash_name, const char *hash, const char *range_name,
                      const char *range)
{
        cJSON *key = cJSON_AddObjectToObject(b, "Key"), *av;
        int r;

        if (!key)
                return -ENOMEM;
        r = av_string(hash, &av);
        if (r >= 0)
                r = put(key, hash_name, av);
        if (r >= 0)
                r = av_string(range, &av);
        if (r >= 0)
                r = put(key, range_name, av);
        return r;
}

static int put_key(cJSON *b, const char *user_id, const char *notebook_id)
{
        return put_key_of(b, "user_id", user_id, "notebook_id", notebook_id);
}

/* Adds placeholder pairs ({"#nid", "notebook_id", ..., NULL}) to ExpressionAttributeNames. */
static int add_names(cJSON *b, const char *const *pairs)
{
        cJSON *names = cJSON_GetObjectItemCaseSensitive(b, "ExpressionAttributeNames");

        if (!names && !(names = cJSON_AddObjectToObject(b, "ExpressionAttributeNames")))
                return -ENOMEM;
        for (; *pairs; pairs += 2)
                if (!cJSON_AddStringToObject(names, pairs[0], pairs[1]))
                        return -ENOMEM;
        return 0;
}

/* The write condition. Without a base: no item at all. With one: the item is still the version we
 * last agreed on, named by its revision and its token together (a revision may be reused by
 * another writer after a delete, a token never is); a missing item fails the condition: it was
 * deleted elsewhere, which is not a licence to create it again. */
static int add_condition(cJSON *b, int64_t base_revision, const char *base_sync_id)
{
        cJSON *values, *av;
        char num[32];
        int r;

        if (base_revision < 0) {
                if (!cJSON_AddStringToObject(b, "ConditionExpression", "attribute_not_exists(#nid)"))
                        return -ENOMEM;
                return add_names(b, (const char *const[]){ "#nid", "notebook_id", NULL });
        }
        if (!cJSON_AddStringToObject(b, "ConditionExpression",
                                     base_sync_id ? "#rev = :base AND #sid = :sid"
                                                  : "#rev = :base AND attribute_not_exists(#sid)"))
                return -ENOMEM;
        r = add_names(b, (const char *const[]){ "#rev", "revision", "#sid", "sync_id", NULL });
        if (r < 0)
                return r;
        values = cJSON_AddObjectToObject(b, "ExpressionAttributeValues");
        if (!values)
                return -ENOMEM;
        snprintf(num, sizeof(num), "%" PRId64, base_revision);
        r = av_new("N", cJSON_CreateString(num), &av);
        if (r < 0 || (r = put(values, ":base", av)) < 0)
                return r;
        if (!base_sync_id)
                return 0;
        r = av_new("S", cJSON_CreateString(base_sync_id), &av);
        return r < 0 ? r : put(values, ":sid", av);
}

cJSON *ddb_put_item_body(const char *table, const cJSON *item, int64_t base_revision,
                         const char *base_sync_id)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);

        if (!b || put(b, "Item", cJSON_Duplicate(item, true)) < 0 ||
            add_condition(b, base_revision, base_sync_id) < 0)
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_delete_item_body(const char *table, const char *user_id, const char *notebook_id,
                            int64_t base_revision, const char *base_sync_id)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);

        if (!b || put_key(b, user_id, notebook_id) < 0 || add_condition(b, base_revision, base_sync_id) < 0)
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_get_item_body(const char *table, const char *user_id, const char *notebook_id)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);

        if (!b || put_key(b, user_id, notebook_id) < 0 || !cJSON_AddTrueToObject(b, "ConsistentRead"))
                return NULL;
        return TAKE_PTR(b);
}

static cJSON *query_body(const char *table, const char *user_id, const cJSON *start_key, int limit,
                         bool heads)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        cJSON *values, *av;

        if (!b || !cJSON_AddStringToObject(b, "KeyConditionExpression", "#uid = :uid") ||
            add_names(b, (const char *const[]){ "#uid", "user_id", NULL }) < 0 ||
            !(values = cJSON_AddObjectToObject(b, "ExpressionAttributeValues")) ||
            av_string(user_id, &av) < 0 || put(values, ":uid", av) < 0 ||
            !cJSON_AddTrueToObject(b, "ConsistentRead"))
                return NULL;
        if (heads && (!cJSON_AddStringToObject(b, "ProjectionExpression", "#uid, #nid, #rev, #sid, #upd") ||
                      add_names(b, (const char *const[]){ "#nid", "notebook_id", "#rev", "revision", "#sid",
                                                          "sync_id", "#upd", "updated_at", NULL }) < 0))
                return NULL;
        if (limit > 0 && !cJSON_AddNumberToObject(b, "Limit", limit))
                return NULL;
        if (start_key && put(b, "ExclusiveStartKey", cJSON_Duplicate(start_key, true)) < 0)
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_query_body(const char *table, const char *user_id, const cJSON *start_key, int limit)
{
        return query_body(table, user_id, start_key, limit, false);
}

cJSON *ddb_query_heads_body(const char *table, const char *user_id, const cJSON *start_key, int limit)
{
        return query_body(table, user_id, start_key, limit, true);
}

/* The seed's table, as data: ddb_table_check() checks against the same. */
static const struct {
        const char *name;
        const char *hash, *range; /* key attributes, all of type S */
        bool all;                 /* projection ALL, or INCLUDE of name and updated_at */
} seed_indexes[] = {
        { "NotebookByIdIndex", "notebook_id", NULL, true },
        { "NotebooksByUserCreatedIndex", "user_id", "created_at", false },
};
static const char *const seed_included[] = { "name", "updated_at" };

static cJSON *key_schema_new(const char *hash, const char *range)
{
        cJSON *ks = cJSON_CreateArray();

        for (int i = 0; ks && i < 2; i++) {
                const char *name = i == 0 ? hash : range;
                cJSON *e;

                if (!name)
                        continue;
                if (!(e = cJSON_CreateObject()) || put(ks, NULL, e) < 0 ||
                    !cJSON_AddStringToObject(e, "AttributeName", name) ||
                    !cJSON_AddStringToObject(e, "KeyType", i == 0 ? "HASH" : "RANGE")) {
                        cJSON_Delete(ks);
                        return NULL;
                }
        }
        return ks;
}

cJSON *ddb_create_table_body(const char *table)
{
        static const char *const attrs[] = { "user_id", "notebook_id", "created_at" };
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        cJSON *defs, *gsis, *e, *proj, *incl;

        if (!b || !(defs = cJSON_AddArrayToObject(b, "AttributeDefinitions")))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(attrs); i++)
                if (!(e = cJSON_CreateObject()) || put(defs, NULL, e) < 0 ||
                    !cJSON_AddStringToObject(e, "AttributeName", attrs[i]) ||
                    !cJSON_AddStringToObject(e, "AttributeType", "S"))
                        return NULL;
        if (put(b, "KeySchema", key_schema_new("user_id", "notebook_id")) < 0 ||
            !(gsis = cJSON_AddArrayToObject(b, "GlobalSecondaryIndexes")))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(seed_indexes); i++) {
                if (!(e = cJSON_CreateObject()) || put(gsis, NULL, e) < 0 ||
                    !cJSON_AddStringToObject(e, "IndexName", seed_indexes[i].name) ||
                    put(e, "KeySchema", key_schema_new(seed_indexes[i].hash, seed_indexes[i].range)) < 0 ||
                    !(proj = cJSON_AddObjectToObject(e, "Projection")) ||
                    !cJSON_AddStringToObject(proj, "ProjectionType",
                                             seed_indexes[i].all ? "ALL" : "INCLUDE"))
                        return NULL;
                if (!seed_indexes[i].all && (!(incl = cJSON_AddArrayToObject(proj, "NonKeyAttributes")) ||
                                             put(incl, NULL, cJSON_CreateString(seed_included[0])) < 0 ||
                                             put(incl, NULL, cJSON_CreateString(seed_included[1])) < 0))
                        return NULL;
        }
        if (!cJSON_AddStringToObject(b, "BillingMode", "PAY_PER_REQUEST"))
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_update_ttl_body(const char *table)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        cJSON *spec;

        if (!b || !(spec = cJSON_AddObjectToObject(b, "TimeToLiveSpecification")) ||
            !cJSON_AddTrueToObject(spec, "Enabled") ||
            !cJSON_AddStringToObject(spec, "AttributeName", "ttl"))
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_describe_table_body(const char *table)
{
        return body_new(table);
}

/* ---- the parts table ----------------------------------------------------------------------- */

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const unsigned char *p, size_t n)
{
        char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                             (i + 2 < n ? p[i + 2] : 0);

                *o++ = b64_digits[v >> 18 & 63];
                *o++ = b64_digits[v >> 12 & 63];
                *o++ = i + 1 < n ? b64_digits[v >> 6 & 63] : '=';
                *o++ = i + 2 < n ? b64_digits[v & 63] : '=';
        }
        *o = 0;
        return out;
}

/* Strict: length a multiple of 4, padding only at the end. -EBADMSG otherwise. */
static int base64_decode(const char *s, unsigned char **ret, size_t *ret_size)
{
        size_t n = strlen(s), pad = 0, k = 0;
        unsigned char *out;

        if (n % 4)
                return -EBADMSG;
        while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
                pad++;
        out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i += 4) {
                unsigned v = 0;

                for (size_t j = 0; j < 4; j++) {
                        const char *d = s[i + j] ? strchr(b64_digits, s[i + j]) : NULL;

                        if (i + j >= n - pad)
                                d = b64_digits; /* padding counts as zero bits */
                        else if (!d) {
                                free(out);
                                return -EBADMSG;
                        }
                        v = v << 6 | (unsigned)(d - b64_digits);
                }
                out[k++] = (unsigned char)(v >> 16);
                out[k++] = (unsigned char)(v >> 8);
                out[k++] = (unsigned char)v;
        }
        *ret = out;
        *ret_size = k - pad;
        return 0;
}

static int put_part_key(cJSON *b, const char *owner, const char *hash)
{
        return put_key_of(b, "owner", owner, "part", hash);
}

cJSON *ddb_part_put_body(const char *table, const char *owner, const char *hash, const void *data,
                         size_t size, const char *created_at)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        _cleanup_free_ char *text = base64_encode(data, size);
        cJSON *item, *av;

        if (!b || !text || !(item = cJSON_AddObjectToObject(b, "Item")) || av_string(owner, &av) < 0 ||
            put(item, "owner", av) < 0 || av_string(hash, &av) < 0 || put(item, "part", av) < 0 ||
            av_new("B", cJSON_CreateString(text), &av) < 0 || put(item, "data", av) < 0 ||
            av_string(created_at, &av) < 0 || put(item, "created_at", av) < 0)
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_part_get_body(const char *table, const char *owner, const char *hash)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);

        if (!b || put_part_key(b, owner, hash) < 0 || !cJSON_AddTrueToObject(b, "ConsistentRead"))
                return NULL;
        return TAKE_PTR(b);
}

int ddb_part_data(const cJSON *item, unsigned char **ret_data, size_t *ret_size)
{
        const cJSON *v = av_unwrap(cJSON_GetObjectItemCaseSensitive(item, "data"));

        if (!v || !av_is(v, "B") || !cJSON_IsString(v))
                return -EBADMSG;
        return base64_decode(v->valuestring, ret_data, ret_size);
}

cJSON *ddb_parts_query_body(const char *table, const char *owner, const cJSON *start_key)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        cJSON *values, *av;

        if (!b || !cJSON_AddStringToObject(b, "KeyConditionExpression", "#o = :o") ||
            !cJSON_AddStringToObject(b, "ProjectionExpression", "#p, #c, #s") ||
            add_names(b, (const char *const[]){ "#o", "owner", "#p", "part", "#c", "created_at", "#s",
                                                "stale_at", NULL }) < 0 ||
            !(values = cJSON_AddObjectToObject(b, "ExpressionAttributeValues")) ||
            av_string(owner, &av) < 0 || put(values, ":o", av) < 0 ||
            !cJSON_AddTrueToObject(b, "ConsistentRead"))
                return NULL;
        if (start_key && put(b, "ExclusiveStartKey", cJSON_Duplicate(start_key, true)) < 0)
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_part_mark_body(const char *table, const char *owner, const char *hash, const char *created_at,
                          const char *now)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        cJSON *values, *av;

        if (!b || put_part_key(b, owner, hash) < 0 ||
            !cJSON_AddStringToObject(b, "UpdateExpression", "SET #s = :now") ||
            !cJSON_AddStringToObject(b, "ConditionExpression", "#c = :c AND attribute_not_exists(#s)") ||
            add_names(b, (const char *const[]){ "#c", "created_at", "#s", "stale_at", NULL }) < 0 ||
            !(values = cJSON_AddObjectToObject(b, "ExpressionAttributeValues")) ||
            av_string(created_at, &av) < 0 || put(values, ":c", av) < 0 || av_string(now, &av) < 0 ||
            put(values, ":now", av) < 0)
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_part_delete_body(const char *table, const char *owner, const char *hash, const char *stale_at)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        cJSON *values, *av;

        if (!b || put_part_key(b, owner, hash) < 0 ||
            !cJSON_AddStringToObject(b, "ConditionExpression", "#s = :s") ||
            add_names(b, (const char *const[]){ "#s", "stale_at", NULL }) < 0 ||
            !(values = cJSON_AddObjectToObject(b, "ExpressionAttributeValues")) ||
            av_string(stale_at, &av) < 0 || put(values, ":s", av) < 0)
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_create_parts_table_body(const char *table)
{
        static const char *const attrs[] = { "owner", "part" };
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        cJSON *defs, *e;

        if (!b || !(defs = cJSON_AddArrayToObject(b, "AttributeDefinitions")))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(attrs); i++)
                if (!(e = cJSON_CreateObject()) || put(defs, NULL, e) < 0 ||
                    !cJSON_AddStringToObject(e, "AttributeName", attrs[i]) ||
                    !cJSON_AddStringToObject(e, "AttributeType", "S"))
                        return NULL;
        if (put(b, "KeySchema", key_schema_new("owner", "part")) < 0 ||
            !cJSON_AddStringToObject(b, "BillingMode", "PAY_PER_REQUEST"))
                return NULL;
        return TAKE_PTR(b);
}

/* ---- the table check ----------------------------------------------------------------------- */

typedef struct Report {
        FILE *f;
        char *text;
        size_t size;
        int count;
} Report;

/* One line: the names the answer gave may hold anything, line breaks included, so control
 * characters become '?' (the report is logged and shown one mismatch a line). */
static void report_add(Report *rep, const char *fmt, ...) _printf_(2, 3);
static void report_add(Report *rep, const char *fmt, ...)
{
        _cleanup_free_ char *line = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&line, fmt, ap);
        va_end(ap);
        if (rep->count++ > 0)
                fputc('\n', rep->f);
        if (n < 0) {
                line = NULL;
                fputs("(out of memory)", rep->f);
                return;
        }
        for (char *p = line; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        fputs(line, rep->f);
}

static const char *string_member(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The attribute a key schema gives the role ("HASH" or "RANGE"), NULL if none. */
static const char *key_of(const cJSON *schema, const char *role)
{
        const cJSON *e;

        cJSON_ArrayForEach(e, schema)
        {
                if (streq_ptr(string_member(e, "KeyType"), role))
                        return string_member(e, "AttributeName");
        }
        return NULL;
}

/* Compares a key schema with the wanted keys (range NULL: none). */
static void check_keys(Report *rep, const char *what, const cJSON *schema, const char *hash,
                       const char *range)
{
        const char *h = key_of(schema, "HASH"), *r = key_of(schema, "RANGE");

        if (!cJSON_IsArray(schema))
                report_add(rep, "%s: no key schema", what);
        else if (!h)
                report_add(rep, "%s: no partition (HASH) key; want %s", what, hash);
        else if (!streq(h, hash))
                report_add(rep, "%s: the partition (HASH) key is %s; want %s", what, h, hash);
        if (!cJSON_IsArray(schema))
                return;
        if (!range && r)
                report_add(rep, "%s: has the sort (RANGE) key %s; want none", what, r);
        else if (range && !r)
                report_add(rep, "%s: no sort (RANGE) key; want %s", what, range);
        else if (range && !streq(r, range))
                report_add(rep, "%s: the sort (RANGE) key is %s; want %s", what, r, range);
}

static bool string_in_array(const cJSON *arr, const char *s)
{
        const cJSON *e;

        cJSON_ArrayForEach(e, arr)
        {
                if (cJSON_IsString(e) && streq(e->valuestring, s))
                        return true;
        }
        return false;
}

static void check_index(Report *rep, const cJSON *gsis, size_t i, bool *ret_has_created_at)
{
        const cJSON *g, *found = NULL, *proj;
        const char *type, *name = seed_indexes[i].name;
        char what[96];

        cJSON_ArrayForEach(g, gsis)
        {
                if (streq_ptr(string_member(g, "IndexName"), name))
                        found = g;
        }
        if (!found) {
                report_add(rep, "index %s: missing (want %s%s%s, projecting %s)", name, seed_indexes[i].hash,
                           seed_indexes[i].range ? " + " : "",
                           seed_indexes[i].range ? seed_indexes[i].range : "",
                           seed_indexes[i].all ? "ALL" : "name, updated_at");
                return;
        }
        snprintf(what, sizeof(what), "index %s", name);
        check_keys(rep, what, cJSON_GetObjectItemCaseSensitive(found, "KeySchema"), seed_indexes[i].hash,
                   seed_indexes[i].range);
        if (seed_indexes[i].range && streq(seed_indexes[i].range, "created_at"))
                *ret_has_created_at = streq_ptr(
                        key_of(cJSON_GetObjectItemCaseSensitive(found, "KeySchema"), "RANGE"), "created_at");

        /* ALL serves any index; INCLUDE serves if it has what the seed's reader projects. */
        proj = cJSON_GetObjectItemCaseSensitive(found, "Projection");
        type = string_member(proj, "ProjectionType");
        if (streq_ptr(type, "ALL"))
                return;
        if (seed_indexes[i].all) {
                report_add(rep, "%s: projects %s; want ALL", what, type ? type : "nothing");
                return;
        }
        for (size_t k = 0; k < ELEMENTSOF(seed_included); k++)
                if (!streq_ptr(type, "INCLUDE") ||
                    !string_in_array(cJSON_GetObjectItemCaseSensitive(proj, "NonKeyAttributes"),
                                     seed_included[k]))
                        report_add(rep,
                                   "%s: does not project %s (projection %s; want INCLUDE name, updated_at, "
                                   "or ALL)",
                                   what, seed_included[k], type ? type : "missing");
}

/* Key attributes must be strings: check each once, where some key uses it. */
static void check_attribute_type(Report *rep, const cJSON *defs, const char *name)
{
        const cJSON *d, *found = NULL;
        const char *type;

        cJSON_ArrayForEach(d, defs)
        {
                if (streq_ptr(string_member(d, "AttributeName"), name))
                        found = d;
        }
        if (!found) {
                report_add(rep, "attribute %s: no definition; want type S", name);
                return;
        }
        type = string_member(found, "AttributeType");
        if (!streq_ptr(type, "S"))
                report_add(rep, "attribute %s: type %s; want S", name, type ? type : "missing");
}

/* The table description in a DescribeTable result checked as the notebooks table (parts false) or
 * as the parts table. */
static int table_check(const cJSON *result, bool parts, char **ret_report)
{
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(result, "Table"), *defs, *gsis;
        Report rep = { 0 };
        bool has_created_at = false;

        if (!cJSON_IsObject(t))
                t = result;
        if (!cJSON_IsObject(t) || !cJSON_GetObjectItemCaseSensitive(t, "KeySchema"))
                return -EBADMSG;
        rep.f = open_memstream(&rep.text, &rep.size);
        if (!rep.f)
                return -ENOMEM;

        defs = cJSON_GetObjectItemCaseSensitive(t, "AttributeDefinitions");
        gsis = cJSON_GetObjectItemCaseSensitive(t, "GlobalSecondaryIndexes");
        if (parts) {
                check_keys(&rep, "parts table", cJSON_GetObjectItemCaseSensitive(t, "KeySchema"), "owner",
                           "part");
                check_attribute_type(&rep, defs, "owner");
                check_attribute_type(&rep, defs, "part");
        } else {
                check_keys(&rep, "table", cJSON_GetObjectItemCaseSensitive(t, "KeySchema"), "user_id",
                           "notebook_id");
                for (size_t i = 0; i < ELEMENTSOF(seed_indexes); i++)
                        check_index(&rep, gsis, i, &has_created_at);
                check_attribute_type(&rep, defs, "user_id");
                check_attribute_type(&rep, defs, "notebook_id");
                if (has_created_at)
                        check_attribute_type(&rep, defs, "created_at");
        }

        if (fclose(rep.f) != 0) {
                free(rep.text);
                return -ENOMEM;
        }
        if (ret_report)
                *ret_report = rep.count > 0 ? TAKE_PTR(rep.text) : NULL;
        free(rep.text);
        return rep.count;
}

int ddb_table_check(const cJSON *result, char **ret_report)
{
        return table_check(result, false, ret_report);
}

int ddb_parts_table_check(const cJSON *result, char **ret_report)
{
        return table_check(result, true, ret_report);
}

/* ---- errors -------------------------------------------------------------------------------- */

const char *ddb_error_class_to_string(DdbErrorClass c)
{
        static const char *const names[] = {
                [DDB_OK] = "ok",
                [DDB_RETRYABLE] = "retryable",
                [DDB_THROTTLING] = "throttling",
                [DDB_CONDITIONAL_FAILED] = "conditional-failed",
                [DDB_VALIDATION] = "validation",
                [DDB_AUTH] = "authentication",
        };

        return (unsigned)c < ELEMENTSOF(names) ? names[c] : "unknown";
}

/* Error types, without their namespace. The SDKs' "standard" retry mode lists the transient and
 * throttling ones; the rest come from DynamoDB's API reference and the common AWS errors. */
static const struct {
        const char *type;
        DdbErrorClass cls;
} error_types[] = {
        { "ConditionalCheckFailedException", DDB_CONDITIONAL_FAILED },

        { "ProvisionedThroughputExceededException", DDB_THROTTLING },
        { "ThrottlingException", DDB_THROTTLING },
        { "Throttling", DDB_THROTTLING },
        { "ThrottledException", DDB_THROTTLING },
        { "RequestThrottled", DDB_THROTTLING },
        { "RequestThrottledException", DDB_THROTTLING },
        { "RequestLimitExceeded", DDB_THROTTLING },
        { "TooManyRequestsException", DDB_THROTTLING },
        { "LimitExceededException", DDB_THROTTLING }, /* too many concurrent control-plane operations */
        { "BandwidthLimitExceeded", DDB_THROTTLING },
        { "SlowDown", DDB_THROTTLING },
        { "TransactionInProgressException", DDB_THROTTLING },
        { "PriorRequestNotComplete", DDB_THROTTLING },

        { "InternalServerError", DDB_RETRYABLE },
        { "InternalFailure", DDB_RETRYABLE },
        { "InternalError", DDB_RETRYABLE },
        { "ServiceUnavailable", DDB_RETRYABLE },
        { "ServiceUnavailableException", DDB_RETRYABLE },
        { "RequestTimeout", DDB_RETRYABLE },
        { "RequestTimeoutException", DDB_RETRYABLE },
        { "TransactionConflictException", DDB_RETRYABLE },
        { "ReplicatedWriteConflictException", DDB_RETRYABLE },

        { "ValidationException", DDB_VALIDATION },
        { "SerializationException", DDB_VALIDATION },
        { "ResourceNotFoundException", DDB_VALIDATION },
        { "ResourceInUseException", DDB_VALIDATION },
        { "ItemCollectionSizeLimitExceededException", DDB_VALIDATION },
        { "TransactionCanceledException", DDB_VALIDATION },
        { "IdempotentParameterMismatchException", DDB_VALIDATION },
        { "UnknownOperationException", DDB_VALIDATION },
        { "InvalidAction", DDB_VALIDATION },
        { "InvalidParameterCombination", DDB_VALIDATION },
        { "InvalidParameterValue", DDB_VALIDATION },
        { "MissingParameter", DDB_VALIDATION },
        { "MalformedQueryString", DDB_VALIDATION },
        { "PayloadTooLargeException", DDB_VALIDATION },
        { "RequestEntityTooLarge", DDB_VALIDATION },

        { "UnrecognizedClientException", DDB_AUTH },
        { "InvalidSignatureException", DDB_AUTH },
        { "IncompleteSignatureException", DDB_AUTH },
        { "IncompleteSignature", DDB_AUTH },
        { "SignatureDoesNotMatch", DDB_AUTH },
        { "AccessDeniedException", DDB_AUTH },
        { "AccessDenied", DDB_AUTH },
        { "ExpiredTokenException", DDB_AUTH },
        { "ExpiredToken", DDB_AUTH },
        { "MissingAuthenticationToken", DDB_AUTH },
        { "MissingAuthenticationTokenException", DDB_AUTH },
        { "InvalidClientTokenId", DDB_AUTH },
        { "InvalidAccessKeyId", DDB_AUTH },
        { "AuthFailure", DDB_AUTH },
        { "NotAuthorized", DDB_AUTH },
        { "UnauthorizedOperation", DDB_AUTH },
        { "OptInRequired", DDB_AUTH },
        { "RequestExpired", DDB_AUTH },
        { "RequestTimeTooSkewed", DDB_AUTH },
        { "RequestInTheFuture", DDB_AUTH },
};

/* When the type is unknown or missing (a proxy's answer, another implementation), the message may
 * still tell; lower case, matched anywhere in it. */
static const struct {
        const char *words;
        DdbErrorClass cls;
} error_messages[] = {
        { "conditional request failed", DDB_CONDITIONAL_FAILED },
        { "throughput exceeds", DDB_THROTTLING },
        { "rate exceeded", DDB_THROTTLING },
        { "too many requests", DDB_THROTTLING },
        { "throttl", DDB_THROTTLING },
        { "security token", DDB_AUTH },
        { "signature", DDB_AUTH },
        { "authentication token", DDB_AUTH },
        { "not authorized", DDB_AUTH },
        { "access denied", DDB_AUTH },
        { "credential", DDB_AUTH },
        { "internal server error", DDB_RETRYABLE },
        { "service unavailable", DDB_RETRYABLE },
};

static bool contains_ci(const char *haystack, const char *lower_needle)
{
        size_t n = strlen(lower_needle);

        for (const char *p = haystack; *p; p++) {
                size_t i = 0;

                while (i < n && p[i] && (p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]) == lower_needle[i])
                        i++;
                if (i == n)
                        return true;
        }
        return false;
}

/* Copies at most size - 1 bytes, control characters as spaces, never cutting a UTF-8 sequence. */
static void copy_text(char *dst, size_t size, const char *src)
{
        size_t n = strlen(src);

        if (n >= size) {
                n = size - 1;
                while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
                        n--;
        }
        for (size_t i = 0; i < n; i++)
                dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
        dst[n] = 0;
}

static DdbErrorClass class_of_status(long status)
{
        if (status >= 500 || status == 408 || status < 200)
                return DDB_RETRYABLE; /* no proper answer, or the server's trouble */
        if (status == 429)
                return DDB_THROTTLING;
        if (status == 401 || status == 403)
                return DDB_AUTH;
        return DDB_VALIDATION; /* other 4xx, and 3xx: a wrong endpoint will not fix itself */
}

void ddb_error_parse(long http_status, const char *body, size_t len, DdbError *ret)
{
        _cleanup_(cJSON_Deletep) cJSON *json = NULL;
        const char *type = NULL, *message = NULL, *p;
        bool known = false;

        *ret = (DdbError){ .cls = DDB_OK };
        if (http_status >= 200 && http_status < 300)
                return;

        if (body && len > 0 && len <= ERROR_BODY_MAX_BYTES) {
                const char *end = NULL;

                /* The whole body must be the JSON value: cJSON would stop at its end. */
                json = cJSON_ParseWithLengthOpts(body, len, &end, false);
                while (json && end < body + len &&
                       (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
                        end++;
                if (json && end != body + len) {
                        cJSON_Delete(json);
                        json = NULL;
                }
        }
        if (cJSON_IsObject(json)) {
                static const char *const type_keys[] = { "__type", "code", "Code" };
                static const char *const message_keys[] = { "message", "Message", "errorMessage" };

                for (size_t i = 0; !type && i < ELEMENTSOF(type_keys); i++)
                        type = string_member(json, type_keys[i]);
                for (size_t i = 0; !message && i < ELEMENTSOF(message_keys); i++)
                        message = string_member(json, message_keys[i]);
        }
        /* "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"; the header form
         * may also carry ":http://internal.amazon.com/..." after the name. */
        if (type) {
                if ((p = strrchr(type, '#')))
                        type = p + 1;
                copy_text(ret->type, sizeof(ret->type), type);
                ret->type[strcspn(ret->type, ":")] = 0;
        }
        if (message && message[0])
                copy_text(ret->message, sizeof(ret->message), message);
        else if (ret->type[0])
                snprintf(ret->message, sizeof(ret->message), "%s (HTTP %ld)", ret->type, http_status);
        else
                snprintf(ret->message, sizeof(ret->message), "HTTP %ld", http_status);

        for (size_t i = 0; !known && i < ELEMENTSOF(error_types); i++)
                if (streq(ret->type, error_types[i].type)) {
                        ret->cls = error_types[i].cls;
                        known = true;
                }
        for (size_t i = 0; !known && message && i < ELEMENTSOF(error_messages); i++)
                if (contains_ci(message, error_messages[i].words)) {
                        ret->cls = error_messages[i].cls;
                        known = true;
                }
        if (!known)
                ret->cls = class_of_status(http_status);

        ret->clock_skew = ret->cls == DDB_AUTH &&
                          (streq(ret->type, "RequestTimeTooSkewed") || streq(ret->type, "RequestExpired") ||
                           streq(ret->type, "RequestInTheFuture") ||
                           (message && (contains_ci(message, "signature expired") ||
                                        contains_ci(message, "signature not yet current"))));
}

DdbErrorClass ddb_error_classify(long http_status, const char *body, size_t len)
{
        DdbError e;

        ddb_error_parse(http_status, body, len, &e);
        return e.cls;
}
