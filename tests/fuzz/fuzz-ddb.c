/* SPDX-License-Identifier: MIT */
/* Reads the input as a DynamoDB answer, the way remote.c and sync.c do: the first byte picks the
 * HTTP status, the rest is the body. ddb_error_parse() must classify any status and body within
 * its fixed buffers; a body that is JSON is then read as a Query page (Items, LastEvaluatedKey), a
 * GetItem answer (Item), a bare item, and a DescribeTable answer. An item that reads as a notebook
 * must make an item again that reads back as the same notebook. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ddb.h"
#include "fuzz.h"
#include "model.h"
#include "util.h"

static const long statuses[] = { 200, 201, 204, 299, 400, 401, 403, 404, 408, 413,
                                 429, 500, 502, 503, 504, 301, 100, 0,   -1,  999 };

static bool has_control(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static void check_error(long status, const char *body, size_t len)
{
        DdbError e;

        /* Garbage in the result must not pass for a terminator. */
        memset(&e, 0xa5, sizeof(e));
        ddb_error_parse(status, body, len, &e);
        fuzz_check(memchr(e.type, 0, sizeof(e.type)) && memchr(e.message, 0, sizeof(e.message)));
        fuzz_check(!has_control(e.type) && !has_control(e.message));
        fuzz_check(!strchr(e.type, '#') && !strchr(e.type, ':'));
        fuzz_check(!streq(ddb_error_class_to_string(e.cls), "unknown"));
        fuzz_check(ddb_error_classify(status, body, len) == e.cls);
        if (status >= 200 && status < 300) {
                fuzz_check(e.cls == DDB_OK && !e.type[0] && !e.message[0] && !e.clock_skew);
                return;
        }
        fuzz_check(e.cls != DDB_OK && e.message[0]);
        fuzz_check(!e.clock_skew || e.cls == DDB_AUTH);
        /* Text is cut on character boundaries: valid UTF-8 stays valid. */
        if (utf8_is_valid(body, len))
                fuzz_check(utf8_is_valid(e.type, strlen(e.type)) &&
                           utf8_is_valid(e.message, strlen(e.message)));
}

/* The same text: cJSON_Compare() cannot tell objects with repeated keys apart. */
static bool json_same(const cJSON *a, const cJSON *b)
{
        _cleanup_free_ char *ta = model_json_print(a, false), *tb = model_json_print(b, false);

        fuzz_check(ta && tb);
        return streq(ta, tb);
}

/* Every string in v is tried as a DynamoDB number. */
static void check_number_sizes(const cJSON *v)
{
        const cJSON *c;

        if (cJSON_IsString(v)) {
                size_t size = ddb_number_size(v->valuestring);
                size_t digits = strspn(v->valuestring + (v->valuestring[0] == '-'), "0123456789");

                fuzz_check(size <= 21);
                /* A plain integer is a number; "about 1 byte per two significant digits, plus 1"
                 * is never more than what it takes. */
                if (digits > 0 && !v->valuestring[digits + (v->valuestring[0] == '-')])
                        fuzz_check(size >= 1);
                return;
        }
        cJSON_ArrayForEach(c, v)
        {
                check_number_sizes(c);
        }
}

/* An item of a Query page or a GetItem answer. */
static void check_item(const cJSON *item)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = NULL, *item2 = NULL, *nb2 = NULL;
        _cleanup_free_ char *sync_id = NULL, *sync_id2 = NULL, *text = NULL;
        const cJSON *a, *created;
        DdbItemHead head;
        size_t names = 0;
        int r;

        cJSON_ArrayForEach(a, item)
        {
                names += a->string ? strlen(a->string) : 0;
        }
        fuzz_check(!cJSON_IsObject(item) || ddb_item_size(item) >= names);

        if (ddb_item_head(item, &head) == 0)
                fuzz_check(head.user_id[0] && head.notebook_id[0] && head.revision >= 0 &&
                           head.revision <= (int64_t)1 << 53);

        r = ddb_notebook_from_item(item, &nb, &sync_id);
        fuzz_check(r == 0 || r == -EBADMSG);
        if (r < 0)
                return;
        /* What the daemon stores and shows: the protocol's JSON, every number exact. */
        text = model_json_print(nb, true);
        fuzz_check(text && text[strlen(text) - 1] == '\n');

        r = ddb_item_from_notebook(nb, sync_id, &item2);
        /* DynamoDB holds neither of what the way back refuses: nesting deeper than 32 levels, nor
         * an empty created_at (an index's sort key). */
        created = cJSON_GetObjectItemCaseSensitive(nb, "created_at");
        fuzz_check(r == 0 || r == -ERANGE ||
                   (r == -EINVAL && cJSON_IsString(created) && !created->valuestring[0]));
        if (r < 0)
                return;
        fuzz_check(ddb_item_head(item2, &head) == 0);
        fuzz_check((double)head.revision == cJSON_GetObjectItemCaseSensitive(nb, "revision")->valuedouble);
        fuzz_check(streq_ptr(head.sync_id, sync_id));
        fuzz_check(ddb_item_size(item2) > 0);

        fuzz_check(ddb_notebook_from_item(item2, &nb2, &sync_id2) == 0);
        fuzz_check(json_same(nb, nb2));
        fuzz_check(streq_ptr(sync_id, sync_id2));
}

static void check_table(const cJSON *json)
{
        _cleanup_free_ char *report = NULL;
        int r = ddb_table_check(json, &report), lines = 1;

        fuzz_check(r == -EBADMSG || r >= 0);
        if (r <= 0) {
                fuzz_check(!report);
                return;
        }
        /* One line per mismatch, whatever names the answer holds. */
        fuzz_check(report);
        for (const char *p = report; *p; p++)
                lines += *p == '\n';
        fuzz_check(lines == r);
        fuzz_check(ddb_table_check(json, NULL) == r);
}

static void check_answer(const cJSON *json)
{
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(json, "Items"), *item, *last;

        /* sync.c takes the members of whatever Items is. */
        cJSON_ArrayForEach(item, items)
        {
                check_item(item);
        }
        item = cJSON_GetObjectItemCaseSensitive(json, "Item");
        if (item)
                check_item(item);
        check_item(json);

        /* The next page's request carries LastEvaluatedKey back as it came. */
        last = cJSON_GetObjectItemCaseSensitive(json, "LastEvaluatedKey");
        if (last) {
                _cleanup_(cJSON_Deletep) cJSON *q = ddb_query_heads_body("notebooks", "fuzz", last, 100);
                _cleanup_free_ char *text = NULL;

                fuzz_check(q && json_same(cJSON_GetObjectItemCaseSensitive(q, "ExclusiveStartKey"), last));
                text = model_json_print(q, false);
                fuzz_check(text);
        }

        check_table(json);
        check_number_sizes(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(cJSON_Deletep) cJSON *json = NULL;
        const char *body;
        long status;

        if (size < 1)
                return 0;
        status = statuses[data[0] % ELEMENTSOF(statuses)];
        body = (const char *)data + 1;
        size--;

        check_error(status, body, size);
        json = cJSON_ParseWithLength(body, size);
        if (json)
                check_answer(json);
        return 0;
}
