/* SPDX-License-Identifier: MIT */
#include "nb-limits.h"
#include "model.h"
#include "tap.h"

static cJSON *parse(const char *s)
{
        cJSON *j = cJSON_Parse(s);

        if (!j)
                tap_diag("unparsable test input");
        return j;
}

/* Runs model_cell_fields on JSON text; returns the error code (0 on success). */
static int cell_code(const char *json, bool defaults, cJSON **ret, unsigned *count)
{
        _cleanup_(cJSON_Deletep) cJSON *in = parse(json);
        ModelError e = { 0 };
        cJSON *out = NULL;
        int r;

        r = model_cell_fields(in, defaults, &out, count, &e);
        if (ret)
                *ret = out;
        else
                cJSON_Delete(out);
        return r < 0 ? e.code : 0;
}

static void test_ids(void)
{
        char big[MAX_ID_BYTES + 2];

        ok(model_id_valid("7c9e6679-7425-40de-944b-e07fc1f90ae7", MAX_ID_BYTES), "uuid is a valid id");
        ok(!model_id_valid("", MAX_ID_BYTES), "empty id is refused");
        ok(!model_id_valid("a\nb", MAX_ID_BYTES), "control character is refused");
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        ok(!model_id_valid(big, MAX_ID_BYTES), "id over the limit is refused");
        big[MAX_ID_BYTES] = 0;
        ok(model_id_valid(big, MAX_ID_BYTES), "id at the limit is accepted");
        ok(model_user_id_valid("user_37U0GVSi47Y4pucE7h9iZVesr4b"), "Clerk user id is valid");
        ok(!model_user_id_valid("a/b"), "slash in user_id is refused");
}

static void test_cell_defaults(void)
{
        cJSON *c = NULL;
        unsigned count = 99;

        is_int(cell_code("{}", true, &c, &count), 0, "empty create is fine");
        is_int(count, 0, "no field was given");
        is_str(cJSON_GetObjectItem(c, "type")->valuestring, "python", "type defaults to python");
        is_str(cJSON_GetObjectItem(c, "status")->valuestring, "idle", "status defaults to idle");
        is_str(cJSON_GetObjectItem(c, "code")->valuestring, "", "code defaults to empty");
        ok(cJSON_IsNull(cJSON_GetObjectItem(c, "error")), "error defaults to null");
        ok(cJSON_IsArray(cJSON_GetObjectItem(c, "outputs")), "outputs default to []");
        is_int(cJSON_GetArraySize(c), 8, "every cell field is present");
        cJSON_Delete(c);
}

static void test_cell_update(void)
{
        cJSON *c = NULL;
        unsigned count;

        is_int(cell_code("{\"code\":\"x = 1\",\"error\":null,\"reads\":[\"a\",\"b\",\"a\"]}", false, &c,
                         &count),
               0, "partial update is fine");
        is_int(count, 3, "three fields given");
        is_int(cJSON_GetArraySize(c), 3, "only given fields are present");
        ok(cJSON_IsNull(cJSON_GetObjectItem(c, "error")), "error null clears it");
        is_int(cJSON_GetArraySize(cJSON_GetObjectItem(c, "reads")), 2, "duplicate names are removed");
        is_str(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "reads"), 1)->valuestring, "b", "order is kept");
        cJSON_Delete(c);

        is_int(cell_code("{\"outputs\":[{\"mime_type\":\"text/plain\",\"data\":\"1\"}]}", false, &c, NULL),
               0, "an output without metadata is fine");
        ok(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "outputs"), 0),
                                              "metadata")),
           "metadata is added as an empty object");
        cJSON_Delete(c);
        is_int(cell_code("{\"outputs\":[{\"mime_type\":\"application/json\",\"data\":{\"a\":[1]}},"
                         "{\"mime_type\":\"x\",\"data\":[1,2],\"metadata\":{\"k\":1}}]}",
                         false, NULL, NULL),
               0, "object and array data are fine");
}

static void test_cell_errors(void)
{
        static const struct {
                const char *json;
                int code;
                const char *what;
        } cases[] = {
                { "{\"type\":\"ruby\"}", RPC_INVALID_PARAMS, "unknown type" },
                { "{\"type\":1}", RPC_INVALID_PARAMS, "type not a string" },
                { "{\"status\":\"done\"}", RPC_INVALID_PARAMS, "unknown status" },
                { "{\"code\":null}", RPC_INVALID_PARAMS, "code null" },
                { "{\"error\":5}", RPC_INVALID_PARAMS, "error a number" },
                { "{\"reads\":\"x\"}", RPC_INVALID_PARAMS, "reads not an array" },
                { "{\"reads\":[1]}", RPC_INVALID_PARAMS, "reads with a number" },
                { "{\"writes\":[\"\"]}", RPC_INVALID_PARAMS, "writes with an empty name" },
                { "{\"outputs\":{}}", RPC_INVALID_PARAMS, "outputs not an array" },
                { "{\"outputs\":[{\"data\":\"x\"}]}", RPC_INVALID_PARAMS, "output without mime_type" },
                { "{\"outputs\":[{\"mime_type\":\"t\"}]}", RPC_INVALID_PARAMS, "output without data" },
                { "{\"outputs\":[{\"mime_type\":\"t\",\"data\":1}]}", RPC_INVALID_PARAMS, "numeric data" },
                { "{\"outputs\":[{\"mime_type\":\"t\",\"data\":\"\",\"metadata\":[]}]}", RPC_INVALID_PARAMS,
                  "metadata an array" },
                { "{\"outputs\":[{\"mime_type\":\"t\",\"data\":\"\",\"extra\":1}]}", RPC_INVALID_PARAMS,
                  "unknown output key" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                is_int(cell_code(cases[i].json, false, NULL, NULL), cases[i].code, "%s is refused",
                       cases[i].what);
}

static void test_limits(void)
{
        _cleanup_(cJSON_Deletep) cJSON *obj = cJSON_CreateObject(), *vars = cJSON_CreateArray(),
                                       *outs = cJSON_CreateArray();
        _cleanup_free_ char *code = malloc(MAX_CODE_BYTES + 2);
        ModelError e = { 0 };
        cJSON *out = NULL;

        memset(code, 'x', MAX_CODE_BYTES + 1);
        code[MAX_CODE_BYTES + 1] = 0;
        cJSON_AddStringToObject(obj, "code", code);
        is_int(model_cell_fields(obj, false, &out, NULL, &e), -EINVAL, "code over 1 MiB is refused");
        is_int(e.code, RPC_TOO_LARGE, "with the too-large code");
        is_str(e.param, "code", "naming the parameter");
        is_int(e.limit, MAX_CODE_BYTES, "and the limit");

        cJSON_DeleteItemFromObject(obj, "code");
        for (int i = 0; i <= MAX_VARS; i++) {
                char name[16];

                snprintf(name, sizeof(name), "v%d", i);
                cJSON_AddItemToArray(vars, cJSON_CreateString(name));
        }
        cJSON_AddItemToObject(obj, "reads", TAKE_PTR(vars));
        is_int(model_cell_fields(obj, false, &out, NULL, &e), -EINVAL, "too many reads are refused");
        is_int(e.code, RPC_TOO_LARGE, "with the too-large code");

        cJSON_DeleteItemFromObject(obj, "reads");
        for (int i = 0; i <= MAX_OUTPUTS; i++) {
                cJSON *o = cJSON_CreateObject();

                cJSON_AddStringToObject(o, "mime_type", "text/plain");
                cJSON_AddStringToObject(o, "data", "");
                cJSON_AddItemToArray(outs, o);
        }
        cJSON_AddItemToObject(obj, "outputs", TAKE_PTR(outs));
        is_int(model_cell_fields(obj, false, &out, NULL, &e), -EINVAL, "too many outputs are refused");
        is_int(e.code, RPC_TOO_LARGE, "with the too-large code");
}

static void test_params(void)
{
        _cleanup_(cJSON_Deletep) cJSON *p =
                parse("{\"s\":\"abc\",\"n\":null,\"i\":42,\"f\":1.5,\"big\":1e300,\"neg\":-1,\"x\":true}");
        static const char *const allowed[] = { "s", "n", "i", "f", "big", "neg", NULL };
        ModelError e = { 0 };
        const char *s;
        long long v;
        bool is_null;

        is_int(model_check_keys(p, allowed, &e), -EINVAL, "an unknown key is refused");
        ok(strstr(e.message, "\"x\"") != NULL, "and named in the message");
        is_int(model_get_string(p, "s", 10, false, &s, NULL, &e), 1, "string present");
        is_str(s, "abc", "string value");
        is_int(model_get_string(p, "s", 2, false, &s, NULL, &e), -EINVAL, "string over its limit");
        is_int(e.code, RPC_TOO_LARGE, "is too large");
        is_int(model_get_string(p, "missing", 10, false, &s, NULL, &e), 0, "absent string");
        is_int(model_get_string(p, "n", 10, true, &s, &is_null, &e), 1, "null accepted where allowed");
        ok(is_null && !s, "and reported as null");
        is_int(model_get_string(p, "n", 10, false, &s, NULL, &e), -EINVAL, "null refused where not allowed");
        is_int(model_get_int(p, "i", 0, 100, false, &v, NULL, &e), 1, "integer present");
        is_int(v, 42, "integer value");
        is_int(model_get_int(p, "f", 0, 100, false, &v, NULL, &e), -EINVAL, "fraction refused");
        is_int(model_get_int(p, "big", 0, INT64_MAX, false, &v, NULL, &e), -EINVAL, "huge number refused");
        is_int(model_get_int(p, "neg", 0, 100, false, &v, NULL, &e), -EINVAL, "below minimum refused");
        is_int(model_get_int(p, "s", 0, 100, false, &v, NULL, &e), -EINVAL,
               "string where an integer is due");
}

static void test_print(void)
{
        static const char *const exact[] = {
                "[0.30000000000000004,9007199254740991,-9007199254740991,1.7976931348623157e+308]",
                "[4.94065645841247e-324,0.1,100,0,1e+100,1.2345678901234568e+20]",
                "{\"s\":\"q\\\"b\\\\n\\n\\t\\u0001\\u001f\u00e9\",\"a\":[true,false,null,{}],\"e\":[]}",
        };
        _cleanup_(cJSON_Deletep) cJSON *inf =
                parse("{\"outputs\":[{\"mime_type\":\"t\",\"data\":[1e999]}]}");
        ModelError e = { 0 };
        cJSON *out = NULL;

        for (size_t i = 0; i < ELEMENTSOF(exact); i++) {
                _cleanup_(cJSON_Deletep) cJSON *v = parse(exact[i]);
                _cleanup_free_ char *text = model_json_print(v, false);

                is_str(text, exact[i], "prints back exactly (case %zu)", i);
        }
        {
                _cleanup_(cJSON_Deletep) cJSON *v = parse("[-0, -0.0]");
                _cleanup_free_ char *text = model_json_print(v, false);

                is_str(text, "[0,0]", "negative zero prints as 0, as DynamoDB keeps it");
        }
        {
                _cleanup_(cJSON_Deletep) cJSON *v = parse("{\"id\":1}");
                _cleanup_free_ char *line = model_json_print(v, true);

                is_str(line, "{\"id\":1}\n", "a protocol line ends with a newline");
        }
        is_int(model_cell_fields(inf, false, &out, NULL, &e), -EINVAL,
               "a number beyond double range is refused");
        is_int(e.code, RPC_INVALID_PARAMS, "as an invalid parameter");
}

/* Runs model_check_numbers() on {"jsonrpc":"2.0","id":ID,"params":{"ttl":1,"outputs":[{"data":N}]}}. */
static int numbers(const char *id, const char *n, ModelError *e)
{
        char line[600];
        cJSON *req, *params;
        int r;

        snprintf(line, sizeof(line),
                 "{\"jsonrpc\":\"2.0\",\"id\":%s,\"params\":{\"ttl\":1,\"outputs\":[{\"data\":{\"v\":[%s]}}]"
                 "}}",
                 id, n);
        req = cJSON_Parse(line);
        params = cJSON_GetObjectItem(req, "params");
        *e = (ModelError){ .limit = -1 };
        r = model_check_numbers(line, strlen(line), params, e);
        /* The parameter named must outlive the call: it points into the parsed request. */
        if (r < 0)
                ok(e->param && streq(e->param, "outputs"), "%s: the error names \"outputs\"", n);
        cJSON_Delete(req);
        return r;
}

static void test_numbers(void)
{
        static const char *const exact[] = { "0",
                                             "-0",
                                             "1",
                                             "0.1",
                                             "123.4500",
                                             "1e22",
                                             "1E+22",
                                             "1e125",
                                             "9.99e125",
                                             "1e-130",
                                             "-1.5e-7",
                                             "0.30000000000000004",
                                             "9007199254740991",
                                             "0.000",
                                             "00.5e1",
                                             "-0.0e-500" };
        static const char *const refused[] = { "12345678901234567890",
                                               "123456789012345678901234567890123456789012",
                                               "9007199254740993",
                                               "1e126",
                                               "-1e126",
                                               "1e300",
                                               "1e-131",
                                               "1e-400",
                                               "0.1000000000000000055511151231257827" };
        ModelError e;

        for (size_t i = 0; i < ELEMENTSOF(exact); i++)
                is_int(numbers("1", exact[i], &e), 0, "%s is kept exactly", exact[i]);
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                is_int(numbers("1", refused[i], &e), -EINVAL, "%s is refused", refused[i]);
                is_int(e.code, RPC_INVALID_PARAMS, "%s: -32602", refused[i]);
        }
        is_int(numbers("12345678901234567890", "1", &e), 0, "the request's own id is not a parameter");
        ok(numbers("1", "1e300", &e) < 0 && strstr(e.message, "range"), "out of range says so: %s",
           e.message);
        ok(numbers("1", "12345678901234567890", &e) < 0 && strstr(e.message, "exactly"),
           "too many digits says so: %s", e.message);
        ok(numbers("1", "\"1e300\", 2", &e) == 0, "a number inside a string is text");
}

static void test_list_cursor(void)
{
        _cleanup_(cJSON_Deletep) cJSON *holder = NULL;
        _cleanup_free_ char *cur =
                model_list_cursor_format("alice", "2026-01-01T00:00:00.000Z", "nb \"1\" é");
        _cleanup_free_ char *tampered = NULL;
        const char *at = NULL, *id = NULL;
        static const char *const bad[] = { "", "x", "AAAA", "eyJ", "W10", "WzEsImEiLCJiIiwiYyJd=", "!!!!",
                                           /* [2,"alice","a","b"]: a version we never made */
                                           "WzIsImFsaWNlIiwiYSIsImIiXQ",
                                           /* the same key written otherwise than the daemon does:
                                            * blanks, an escape, a raw control character, 1.0 */
                                           "WzEsICJhbGljZSIsICJhIiwgImIiXQ",
                                           "WzEsImFsaWNlIiwiXHUwMDYxIiwiYiJd", "WzEsImFsaWNlIiwiYQ8iLCJiIl0",
                                           "WzEuMCwiYWxpY2UiLCJhIiwiYiJd" };

        ok(cur != NULL, "a cursor is made");
        ok(cur && strspn(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                           strlen(cur),
           "in the base64url alphabet");
        is_int(model_list_cursor_parse(cur, "alice", &holder, &at, &id), 0, "it parses back");
        ok(streq_ptr(at, "2026-01-01T00:00:00.000Z") && streq_ptr(id, "nb \"1\" é"), "to the same key");
        is_int(model_list_cursor_parse(cur, "bob", &(cJSON *){ NULL }, &at, &id), -EPERM,
               "another user's cursor is refused");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                is_int(model_list_cursor_parse(bad[i], "alice", &(cJSON *){ NULL }, &at, &id), -EINVAL, "%s",
                       bad[i]);
        tampered = strdup(cur);
        tampered[strlen(tampered) - 1] = tampered[strlen(tampered) - 1] == 'A' ? 'B' : 'A';
        ok(model_list_cursor_parse(tampered, "alice", &(cJSON *){ NULL }, &at, &id) < 0,
           "a cursor with its last character changed is refused");
}

/* Strings of every length up to 40 with one byte that needs an escape (or a UTF-8 sequence) at
 * every offset: printed, then parsed back equal. The printer looks at eight bytes at a time, so
 * this puts the byte at each place in a word and in the tail. */
static void test_print_escapes(void)
{
        static const char *const special[] = { "\"",   "\\",   "\n",       "\t",           "\x01",
                                               "\x1f", "\x7f", "\xc3\xa9", "\xe2\x80\xae", " " };
        int bad = 0, n = 0;

        for (size_t k = 0; k < ELEMENTSOF(special); k++)
                for (int len = 0; len <= 40; len++)
                        for (int at = 0; at <= len; at++) {
                                char s[64];
                                cJSON *v, *back;
                                char *text;

                                memset(s, 'a', (size_t)len);
                                s[len] = 0;
                                memmove(s + at + strlen(special[k]), s + at, (size_t)(len - at) + 1);
                                memcpy(s + at, special[k], strlen(special[k]));
                                v = cJSON_CreateString(s);
                                text = model_json_print(v, false);
                                back = text ? cJSON_Parse(text) : NULL;
                                if (!cJSON_IsString(back) || strcmp(back->valuestring, s) != 0)
                                        bad++;
                                n++;
                                cJSON_Delete(back);
                                cJSON_Delete(v);
                                free(text);
                        }
        ok(bad == 0, "print: %d strings with a byte to escape at every offset parse back equal (%d differ)",
           n, bad);
}

int main(void)
{
        test_list_cursor();
        test_print_escapes();
        test_numbers();
        test_print();
        test_ids();
        test_cell_defaults();
        test_cell_update();
        test_cell_errors();
        test_limits();
        test_params();
        return tap_done();
}
