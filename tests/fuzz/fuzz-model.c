/* SPDX-License-Identifier: MIT */
/* model.c's checks of what peers send, straight (fuzz-rpc reaches them through a request, which
 * stops most inputs early). The first byte picks one, the rest is its text:
 *   0  a number's text: one that is kept prints back as the same double, and is kept again;
 *   1  any JSON: model_json_print() is one protocol line that parses back to the same value,
 *      every number bit for bit; repeated keys are found exactly where they are;
 *   2  a cell's fields, for a create and for an update: what is taken is normalised, and taking
 *      it again changes nothing;
 *   3  a notebook.list cursor: one that is taken is the one the daemon makes for its key;
 *   4  a request line: its numbers are checked as rpc.c does;
 *   5  an id: a valid one is UTF-8 without control characters, within its limit. */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "model.h"
#include "nb-limits.h"
#include "util.h"

static bool same_text(const cJSON *a, const cJSON *b)
{
        _cleanup_free_ char *ta = model_json_print(a, false), *tb = model_json_print(b, false);

        fuzz_check(ta && tb);
        return streq(ta, tb);
}

/* The same tree, numbers bit for bit (less the sign of zero, which print drops). */
static void check_same_values(const cJSON *a, const cJSON *b)
{
        const cJSON *x, *y;

        fuzz_check((a->type & 0xff) == (b->type & 0xff));
        if (cJSON_IsNumber(a)) {
                if (isfinite(a->valuedouble))
                        fuzz_check(a->valuedouble == b->valuedouble &&
                                   (a->valuedouble != 0 || b->valuedouble == 0));
                return;
        }
        if (cJSON_IsString(a))
                fuzz_check(streq(a->valuestring, b->valuestring));
        for (x = a->child, y = b->child; x && y; x = x->next, y = y->next) {
                if (cJSON_IsObject(a))
                        fuzz_check(streq(x->string, y->string));
                check_same_values(x, y);
        }
        fuzz_check(!x && !y);
}

static bool all_finite(const cJSON *v)
{
        if (cJSON_IsNumber(v))
                return isfinite(v->valuedouble);
        for (const cJSON *c = v->child; c; c = c->next)
                if (!all_finite(c))
                        return false;
        return true;
}

/* Whether some object in v holds a key twice, the slow way. */
static bool has_repeats(const cJSON *v)
{
        for (const cJSON *c = v->child; c; c = c->next) {
                if (has_repeats(c))
                        return true;
                if (cJSON_IsObject(v))
                        for (const cJSON *d = c->next; d; d = d->next)
                                if (streq(c->string, d->string))
                                        return true;
        }
        return false;
}

static void check_number(const char *text, size_t len)
{
        _cleanup_(cJSON_Deletep) cJSON *n = NULL, *back = NULL;
        _cleanup_free_ char *printed = NULL;
        const char *end = NULL;
        int r = model_number_check(text, len);

        fuzz_check(r == 0 || r == -ERANGE || r == -EDOM);
        if (r < 0)
                return;
        /* Kept: what a JSON number with this text holds prints back as the same double. */
        n = cJSON_ParseWithLengthOpts(text, len, &end, false);
        if (!cJSON_IsNumber(n) || end != text + len)
                return;
        printed = model_json_print(n, false);
        fuzz_check(printed);
        if (!isfinite(n->valuedouble)) {
                fuzz_check(streq(printed, "null"));
                return;
        }
        back = cJSON_Parse(printed);
        fuzz_check(cJSON_IsNumber(back) && back->valuedouble == n->valuedouble);
        fuzz_check(model_number_check(printed, strlen(printed)) == 0);
}

static void check_json(const cJSON *v)
{
        _cleanup_(cJSON_Deletep) cJSON *back = NULL;
        _cleanup_free_ char *line = model_json_print(v, true);
        ModelError e = { 0 };
        size_t n;
        int r;

        fuzz_check(line);
        /* One protocol line: the newline at the end is the only one. */
        n = strlen(line);
        fuzz_check(n >= 2 && line[n - 1] == '\n' && !memchr(line, '\n', n - 1));
        back = cJSON_ParseWithLength(line, n);
        fuzz_check(back);
        if (all_finite(v))
                check_same_values(v, back);
        fuzz_check(same_text(v, back));

        r = model_check_unique_keys(v, &e);
        fuzz_check(r == 0 || r == -EINVAL);
        fuzz_check((r < 0) == has_repeats(v));
        if (r < 0)
                fuzz_check(e.code == RPC_INVALID_REQUEST && e.message[0]);
}

static void check_cell(const cJSON *obj)
{
        static const char *const fields[] = { "type",    "code",  "status", "stdout",
                                              "outputs", "error", "reads",  "writes" };

        /* rpc.c refuses a request that repeats a key before it looks at any cell. */
        if (has_repeats(obj))
                return;

        for (int defaults = 0; defaults <= 1; defaults++) {
                _cleanup_(cJSON_Deletep) cJSON *out = NULL, *again = NULL;
                ModelError e = { 0 };
                unsigned count = 0, count2 = 0;
                const cJSON *c;
                int r = model_cell_fields(obj, defaults, &out, &count, &e);

                fuzz_check(r == 0 || r == -EINVAL);
                if (r < 0) {
                        fuzz_check(e.code && e.message[0] && !out);
                        continue;
                }
                fuzz_check(cJSON_IsObject(out) && count <= ELEMENTSOF(fields));
                for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                        fuzz_check(!defaults || cJSON_GetObjectItemCaseSensitive(out, fields[i]));
                /* reads and writes: strings, each once. */
                for (const char *const *k = (const char *const[]){ "reads", "writes", NULL }; *k; k++)
                        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(out, *k))
                        {
                                fuzz_check(cJSON_IsString(c));
                                for (const cJSON *d = c->next; d; d = d->next)
                                        fuzz_check(!streq(c->valuestring, d->valuestring));
                        }
                fuzz_check(all_finite(out));
                /* Normalised: taking what was taken changes nothing (but the order of the fields,
                 * which follows the order they were given in). */
                fuzz_check(model_cell_fields(out, defaults, &again, &count2, &e) == 0);
                fuzz_check(cJSON_Compare(out, again, true));
        }
}

static void check_cursor(const char *cursor)
{
        static const char *const users[] = { "alice", "fuzz" };

        for (size_t u = 0; u < ELEMENTSOF(users); u++) {
                _cleanup_(cJSON_Deletep) cJSON *key = NULL;
                _cleanup_free_ char *again = NULL;
                const char *created_at, *id;
                int r = model_list_cursor_parse(cursor, users[u], &key, &created_at, &id);

                fuzz_check(r == 0 || r == -EINVAL || r == -EPERM);
                if (r < 0) {
                        fuzz_check(!key);
                        continue;
                }
                fuzz_check(created_at[0] && model_id_valid(id, MAX_ID_BYTES));
                /* One key, one cursor. */
                again = model_list_cursor_format(users[u], created_at, id);
                fuzz_check(again && streq(again, cursor));
        }
}

static void check_request(const char *line, size_t len)
{
        _cleanup_(cJSON_Deletep) cJSON *req = NULL;
        const cJSON *params;
        ModelError e = { 0 };
        int r;

        /* As rpc.c: a line without NULs (frame.c refuses them) that parses as an object, whose
         * params are an object or absent. */
        if (memchr(line, 0, len))
                return;
        req = cJSON_ParseWithLength(line, len);
        params = cJSON_GetObjectItemCaseSensitive(req, "params");
        if (!cJSON_IsObject(req) || (params && !cJSON_IsObject(params)))
                return;
        r = model_check_numbers(line, len, params ? params : &(const cJSON){ .type = cJSON_Object }, &e);
        fuzz_check(r == 0 || r == -EINVAL);
        if (r < 0)
                fuzz_check(e.code == RPC_INVALID_PARAMS && e.message[0]);
}

static void check_id(const char *s)
{
        size_t n = strlen(s);

        if (model_id_valid(s, MAX_ID_BYTES)) {
                fuzz_check(n > 0 && n <= MAX_ID_BYTES);
                for (const char *p = s; *p; p++)
                        fuzz_check((unsigned char)*p >= 0x20 && *p != 0x7f);
        }
        if (model_user_id_valid(s))
                fuzz_check(n <= MAX_USER_ID_BYTES && !strchr(s, '/') && model_id_valid(s, MAX_ID_BYTES));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(cJSON_Deletep) cJSON *json = NULL;
        _cleanup_free_ char *text = NULL;
        size_t len;

        if (size < 1)
                return 0;
        len = size - 1;
        text = malloc(len + 1);
        fuzz_check(text);
        memcpy(text, data + 1, len);
        text[len] = 0;

        switch (data[0] % 6) {
        case 0:
                check_number(text, len);
                break;
        case 1:
        case 2:
                json = cJSON_ParseWithLength(text, len);
                if (!json)
                        break;
                if (data[0] % 6 == 1)
                        check_json(json);
                else
                        check_cell(json);
                break;
        case 3:
                check_cursor(text);
                break;
        case 4:
                check_request(text, len);
                break;
        default:
                check_id(text);
                break;
        }
        return 0;
}
