/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "ddb.h"
#include "model.h"
#include "tap.h"

static const char *const NOTEBOOK = "{\"id\":\"demo-u\",\"user_id\":\"u\",\"name\":\"D\\u00e9mo\",\"db_conn_"
                                    "string\":null,\"revision\":3,"
                                    "\"created_at\":\"2026-01-01T00:00:00.000Z\",\"updated_at\":\"2026-01-"
                                    "02T00:00:00.000Z\",\"ttl\":null,"
                                    "\"demo_version\":1,\"cells\":[{\"id\":\"c1\",\"type\":\"python\","
                                    "\"code\":\"x = 10\",\"status\":\"idle\","
                                    "\"stdout\":\"\",\"outputs\":[{\"mime_type\":\"application/"
                                    "json\",\"data\":{\"a\":[0.30000000000000004,"
                                    "9007199254740991,true,null,\"s\"]},\"metadata\":{}}],\"error\":null,"
                                    "\"reads\":[],\"writes\":[\"x\"]},"
                                    "{\"id\":\"c2\",\"type\":\"sql\",\"code\":\"select "
                                    "1\",\"status\":\"idle\",\"stdout\":\"1\\n\",\"outputs\":[],"
                                    "\"error\":\"boom\",\"reads\":[\"x\"],\"writes\":[]}]}";

static char *print(const cJSON *v)
{
        return model_json_print(v, false);
}

static void test_round_trip(void)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = cJSON_Parse(NOTEBOOK), *item = NULL, *back = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *sid = NULL, *item_text = NULL;
        const cJSON *cell;

        is_int(ddb_item_from_notebook(nb, "tok", &item), 0, "a notebook becomes an item");
        item_text = print(item);
        ok(strstr(item_text, "\"user_id\":{\"S\":\"u\"}") &&
                   strstr(item_text, "\"notebook_id\":{\"S\":\"demo-u\"}"),
           "keys are user_id and notebook_id");
        ok(strstr(item_text, "\"revision\":{\"N\":\"3\"}") != NULL, "revision is a number");
        ok(strstr(item_text, "\"db_conn_string\":{\"NULL\":true}") != NULL, "null becomes NULL");
        ok(!strstr(item_text, "\"ttl\""), "an unset ttl is left out");
        ok(strstr(item_text, "\"demo_version\":{\"N\":\"1\"}") != NULL, "demo_version is kept");
        ok(strstr(item_text, "\"sync_id\":{\"S\":\"tok\"}") != NULL, "the sync_id is stored");
        ok(!strstr(item_text, "\"status\""), "the local cell status is not stored");
        ok(strstr(item_text, "{\"N\":\"0.30000000000000004\"}") &&
                   strstr(item_text, "{\"N\":\"9007199254740991\"}"),
           "numbers in outputs are exact");
        ok(strstr(item_text, "\"reads\":{\"L\":[]}") != NULL, "empty lists stay lists");
        cell = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(item, "cells"), "L"), 0);
        is_int(cJSON_GetArraySize(cJSON_GetObjectItem(cell, "M")), 8,
               "a cell has the seed's eight attributes");

        is_int(ddb_notebook_from_item(item, &back, &sid), 0, "the item reads back");
        is_str(sid, "tok", "with its sync_id");
        a = print(nb);
        b = print(back);
        /* Key order differs (cells gain status last): compare field by field through the printer. */
        ok(cJSON_Compare(nb, back, true), "the notebook comes back equal");
        if (!cJSON_Compare(nb, back, true))
                printf("# want %s\n# got  %s\n", a, b);
}

static void test_malformed(void)
{
        static const char *const bad[] = {
                "{}",
                "{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":\"n\"},\"revision\":{\"S\":\"1\"},"
                "\"cells\":{\"L\":[]}}",
                "{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":\"n\"},\"revision\":{\"N\":\"1\"},"
                "\"cells\":{\"M\":{}}}",
                "{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":\"n\"},\"revision\":{\"N\":\"1\"},"
                "\"cells\":{\"L\":[{\"M\":{\"id\":{\"S\":\"c\"}}}]}}",
                "{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":\"n\"},\"revision\":{\"N\":\"x1\"},"
                "\"cells\":{\"L\":[]}}",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(cJSON_Deletep) cJSON *item = cJSON_Parse(bad[i]), *nb = NULL;

                is_int(ddb_notebook_from_item(item, &nb, NULL), -EBADMSG, "malformed item %zu is refused",
                       i);
        }
}

static void test_sizes(void)
{
        static const struct {
                const char *item;
                size_t size;
                const char *why;
        } cases[] = {
                { "{\"a\":{\"S\":\"xyz\"}}", 4, "name 1 + string 3" },
                { "{\"k\":{\"S\":\"\\u00e9\\u20ac\"}}", 6, "strings count UTF-8 bytes: 1 + 2 + 3" },
                { "{\"n\":{\"N\":\"12345\"}}", 5, "5 significant digits: 1 + 3 + 1" },
                { "{\"n\":{\"N\":\"-0.00120\"}}", 3, "leading and trailing zeros do not count: 1 + 1 + 1" },
                { "{\"b\":{\"BOOL\":true},\"z\":{\"NULL\":true}}", 4, "bool and null: 1 byte each" },
                { "{\"l\":{\"L\":[]}}", 4, "an empty list: name + 3" },
                { "{\"l\":{\"L\":[{\"S\":\"ab\"},{\"N\":\"7\"}]}}", 1 + 3 + (1 + 2) + (1 + 2),
                  "a list: 3 + 1 per element + elements" },
                { "{\"m\":{\"M\":{\"key\":{\"S\":\"v\"}}}}", 1 + 3 + 1 + 3 + 1,
                  "a map counts its keys too" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(cJSON_Deletep) cJSON *item = cJSON_Parse(cases[i].item);

                is_int(ddb_item_size(item), cases[i].size, "size: %s", cases[i].why);
        }
}

/* 150,000 characters of three-byte UTF-8: under 400 KB by characters, over it by bytes. */
static void test_too_large(void)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = cJSON_Parse(NOTEBOOK), *item = NULL;
        size_t n = 150000;
        _cleanup_free_ char *code = malloc(3 * n + 1);
        cJSON *cell = cJSON_GetArrayItem(cJSON_GetObjectItem(nb, "cells"), 0);

        for (size_t i = 0; i < n; i++)
                memcpy(code + 3 * i, "\xe2\x82\xac", 3);
        code[3 * n] = 0;
        cJSON_ReplaceItemInObject(cell, "code", cJSON_CreateString(code));
        is_int(ddb_item_from_notebook(nb, "t", &item), 0, "a big notebook marshals");
        ok(ddb_item_size(item) > DDB_MAX_ITEM_BYTES, "its item is over 400 KB in bytes (%zu)",
           ddb_item_size(item));
}

static void test_bodies(void)
{
        _cleanup_(cJSON_Deletep) cJSON *put = NULL, *put_new = NULL, *del = NULL, *q = NULL, *ct = NULL,
                                       *item = cJSON_Parse("{\"user_id\":{\"S\":\"u\"}}");
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;

        put = ddb_put_item_body("notebooks", item, 4);
        a = print(put);
        ok(strstr(a, "\"ConditionExpression\":\"attribute_not_exists(#nid) OR #rev = :base\"") &&
                   strstr(a, "\":base\":{\"N\":\"4\"}") && strstr(a, "\"#rev\":\"revision\""),
           "PutItem is conditioned on the base revision, through placeholders");
        put_new = ddb_put_item_body("notebooks", item, -1);
        b = print(put_new);
        ok(strstr(b, "\"ConditionExpression\":\"attribute_not_exists(#nid)\"") && !strstr(b, ":base"),
           "a first PutItem must not find an item");
        del = ddb_delete_item_body("notebooks", "u", "n", 2);
        c = print(del);
        ok(strstr(c, "\"Key\":{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":\"n\"}}") &&
                   strstr(c, ":base"),
           "DeleteItem names the key and the condition");
        q = ddb_query_body("notebooks", "u", NULL, 100);
        d = print(q);
        ok(strstr(d, "\"KeyConditionExpression\":\"#uid = :uid\"") && strstr(d, "\"Limit\":100"),
           "Query pages a user's items");
        ct = ddb_create_table_body("notebooks");
        e = print(ct);
        ok(strstr(e, "NotebookByIdIndex") && strstr(e, "NotebooksByUserCreatedIndex") &&
                   strstr(e, "PAY_PER_REQUEST") &&
                   strstr(e, "\"NonKeyAttributes\":[\"name\",\"updated_at\"]"),
           "CreateTable makes the seed's table with both indexes");
}

static void test_classify(void)
{
        static const struct {
                long status;
                const char *body;
                DdbErrorClass cls;
        } cases[] = {
                { 200, "{}", DDB_OK },
                { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\"}",
                  DDB_CONDITIONAL_FAILED },
                { 400,
                  "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException\"}",
                  DDB_THROTTLING },
                { 400, "{\"__type\":\"com.amazon.coral.availability#ThrottlingException\"}",
                  DDB_THROTTLING },
                { 400, "{\"__type\":\"com.amazon.coral.validate#ValidationException\",\"message\":\"bad\"}",
                  DDB_VALIDATION },
                { 400, "{\"__type\":\"com.amazon.coral.service#UnrecognizedClientException\"}", DDB_AUTH },
                { 403, "{\"__type\":\"com.amazon.coral.service#AccessDeniedException\"}", DDB_AUTH },
                { 500, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\"}",
                  DDB_RETRYABLE },
                { 503, "not json", DDB_RETRYABLE },
                { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException\"}",
                  DDB_VALIDATION },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(cJSON_Deletep) cJSON *body = cJSON_Parse(cases[i].body);
                const char *type, *msg;

                is_int(ddb_error_classify(cases[i].status, body, &type, &msg), cases[i].cls, "%ld %s is %s",
                       cases[i].status, cases[i].body, ddb_error_class_to_string(cases[i].cls));
        }
}

int main(void)
{
        test_round_trip();
        test_malformed();
        test_sizes();
        test_too_large();
        test_bodies();
        test_classify();
        return tap_done();
}
