/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>

#include "ddb.h"
#include "model.h"
#include "util.h"

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

/* ---- values -------------------------------------------------------------------------------- */

static cJSON *av_new(const char *type, cJSON *v)
{
        cJSON *av = cJSON_CreateObject();

        if (!av || !v || !cJSON_AddItemToObject(av, type, v)) {
                cJSON_Delete(av);
                cJSON_Delete(v);
                return NULL;
        }
        return av;
}

static cJSON *av_string(const char *s)
{
        return av_new("S", cJSON_CreateString(s));
}

static cJSON *av_null(void)
{
        return av_new("NULL", cJSON_CreateTrue());
}

/* A number as DynamoDB's decimal string, printed so that it reads back as the same double. */
static cJSON *av_number(const cJSON *n)
{
        _cleanup_free_ char *text = model_json_print(n, false);

        return text ? av_new("N", cJSON_CreateString(text)) : NULL;
}

static cJSON *av_int(int64_t v)
{
        char buf[32];

        snprintf(buf, sizeof(buf), "%lld", (long long)v);
        return av_new("N", cJSON_CreateString(buf));
}

/* Any JSON value (an output's data or metadata) as an AttributeValue. */
static cJSON *av_from_json(const cJSON *v)
{
        cJSON *inner, *c;

        if (cJSON_IsString(v))
                return av_string(v->valuestring);
        if (cJSON_IsNumber(v))
                return av_number(v);
        if (cJSON_IsBool(v))
                return av_new("BOOL", cJSON_CreateBool(cJSON_IsTrue(v)));
        if (cJSON_IsNull(v))
                return av_null();
        if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
                bool obj = cJSON_IsObject(v);

                inner = obj ? cJSON_CreateObject() : cJSON_CreateArray();
                if (!inner)
                        return NULL;
                cJSON_ArrayForEach(c, v)
                {
                        cJSON *e = av_from_json(c);

                        if (!e || !(obj ? cJSON_AddItemToObject(inner, c->string, e)
                                        : cJSON_AddItemToArray(inner, e))) {
                                cJSON_Delete(e);
                                cJSON_Delete(inner);
                                return NULL;
                        }
                }
                return av_new(obj ? "M" : "L", inner);
        }
        return NULL;
}

/* An AttributeValue as plain JSON. NULL on a malformed value. */
static cJSON *av_to_json(const cJSON *av)
{
        const cJSON *v, *c;
        cJSON *out;

        if (!cJSON_IsObject(av) || !av->child || av->child->next)
                return NULL;
        v = av->child;
        if (streq(v->string, "S") && cJSON_IsString(v))
                return cJSON_CreateString(v->valuestring);
        if (streq(v->string, "N") && cJSON_IsString(v)) {
                char *end;
                double d = strtod(v->valuestring, &end);

                return *end || end == v->valuestring ? NULL : cJSON_CreateNumber(d);
        }
        if (streq(v->string, "BOOL") && cJSON_IsBool(v))
                return cJSON_CreateBool(cJSON_IsTrue(v));
        if (streq(v->string, "NULL"))
                return cJSON_CreateNull();
        if ((streq(v->string, "M") && cJSON_IsObject(v)) || (streq(v->string, "L") && cJSON_IsArray(v))) {
                bool obj = streq(v->string, "M");

                out = obj ? cJSON_CreateObject() : cJSON_CreateArray();
                if (!out)
                        return NULL;
                cJSON_ArrayForEach(c, v)
                {
                        cJSON *e = av_to_json(c);

                        if (!e || !(obj ? cJSON_AddItemToObject(out, c->string, e)
                                        : cJSON_AddItemToArray(out, e))) {
                                cJSON_Delete(e);
                                cJSON_Delete(out);
                                return NULL;
                        }
                }
                return out;
        }
        return NULL;
}

/* ---- notebooks and items ------------------------------------------------------------------- */

static bool put(cJSON *obj, const char *key, cJSON *av)
{
        if (!av)
                return false;
        if (!cJSON_AddItemToObject(obj, key, av)) {
                cJSON_Delete(av);
                return false;
        }
        return true;
}

/* A string member as S, null (or absent) as NULL. */
static cJSON *av_string_or_null(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        return cJSON_IsString(v) ? av_string(v->valuestring) : av_null();
}

static cJSON *cell_to_av(const cJSON *cell)
{
        static const char *const strings[] = { "id", "type", "code", "stdout" };
        _cleanup_(cJSON_Deletep) cJSON *m = cJSON_CreateObject();
        const cJSON *v;

        if (!m)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                v = cJSON_GetObjectItemCaseSensitive(cell, strings[i]);
                if (!cJSON_IsString(v) || !put(m, strings[i], av_string(v->valuestring)))
                        return NULL;
        }
        v = cJSON_GetObjectItemCaseSensitive(cell, "outputs");
        if (!cJSON_IsArray(v) || !put(m, "outputs", av_from_json(v)) ||
            !put(m, "error", av_string_or_null(cell, "error")))
                return NULL;
        for (const char *const *k = (const char *const[]){ "reads", "writes", NULL }; *k; k++) {
                v = cJSON_GetObjectItemCaseSensitive(cell, *k);
                if (!cJSON_IsArray(v) || !put(m, *k, av_from_json(v)))
                        return NULL;
        }
        return av_new("M", TAKE_PTR(m));
}

int ddb_item_from_notebook(const cJSON *nb, const char *sync_id, cJSON **ret_item)
{
        _cleanup_(cJSON_Deletep) cJSON *item = cJSON_CreateObject(), *cells = cJSON_CreateArray();
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(nb, "id"),
                    *user = cJSON_GetObjectItemCaseSensitive(nb, "user_id"),
                    *rev = cJSON_GetObjectItemCaseSensitive(nb, "revision"), *c, *v;

        if (!item || !cells)
                return -ENOMEM;
        if (!cJSON_IsString(id) || !cJSON_IsString(user) || !cJSON_IsNumber(rev) ||
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(nb, "cells")))
                return -EINVAL;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(nb, "cells"))
        {
                cJSON *m = cell_to_av(c);

                if (!m || !cJSON_AddItemToArray(cells, m)) {
                        cJSON_Delete(m);
                        return -EINVAL;
                }
        }
        if (!put(item, "user_id", av_string(user->valuestring)) ||
            !put(item, "notebook_id", av_string(id->valuestring)) ||
            !put(item, "name", av_string_or_null(nb, "name")) ||
            !put(item, "db_conn_string", av_string_or_null(nb, "db_conn_string")) ||
            !put(item, "revision", av_int((int64_t)rev->valuedouble)) ||
            !put(item, "cells", av_new("L", TAKE_PTR(cells))) ||
            !put(item, "created_at", av_string_or_null(nb, "created_at")) ||
            !put(item, "updated_at", av_string_or_null(nb, "updated_at")))
                return -ENOMEM;
        for (const char *const *k = (const char *const[]){ "ttl", "demo_version", NULL }; *k; k++) {
                v = cJSON_GetObjectItemCaseSensitive(nb, *k);
                if (cJSON_IsNumber(v) && !put(item, *k, av_int((int64_t)v->valuedouble)))
                        return -ENOMEM;
        }
        if (sync_id && !put(item, "sync_id", av_string(sync_id)))
                return -ENOMEM;
        *ret_item = TAKE_PTR(item);
        return 0;
}

/* The plain JSON of an item attribute of the given type ("S", "N", "L", ...), or NULL when it is
 * absent, NULL-typed, or of another type (*bad set then). */
static cJSON *attr(const cJSON *item, const char *key, const char *type, bool *bad)
{
        const cJSON *av = cJSON_GetObjectItemCaseSensitive(item, key);

        if (!av || cJSON_GetObjectItemCaseSensitive(av, "NULL"))
                return NULL;
        if (!cJSON_GetObjectItemCaseSensitive(av, type)) {
                *bad = true;
                return NULL;
        }
        return av_to_json(av);
}

static bool copy_attr(cJSON *out, const cJSON *item, const char *key, const char *out_key, const char *type,
                      bool required, bool *bad)
{
        cJSON *v = attr(item, key, type, bad);

        if (!v) {
                if (required)
                        *bad = true;
                return cJSON_AddNullToObject(out, out_key) != NULL;
        }
        if (!cJSON_AddItemToObject(out, out_key, v)) {
                cJSON_Delete(v);
                return false;
        }
        return true;
}

int ddb_notebook_from_item(const cJSON *item, cJSON **ret_notebook, char **ret_sync_id)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = cJSON_CreateObject(), *cells = NULL, *sid = NULL;
        cJSON *c;
        bool bad = false;

        if (!nb)
                return -ENOMEM;
        if (!copy_attr(nb, item, "notebook_id", "id", "S", true, &bad) ||
            !copy_attr(nb, item, "user_id", "user_id", "S", true, &bad) ||
            !copy_attr(nb, item, "name", "name", "S", false, &bad) ||
            !copy_attr(nb, item, "db_conn_string", "db_conn_string", "S", false, &bad) ||
            !copy_attr(nb, item, "revision", "revision", "N", true, &bad) ||
            !copy_attr(nb, item, "created_at", "created_at", "S", false, &bad) ||
            !copy_attr(nb, item, "updated_at", "updated_at", "S", false, &bad) ||
            !copy_attr(nb, item, "ttl", "ttl", "N", false, &bad) ||
            !copy_attr(nb, item, "demo_version", "demo_version", "N", false, &bad))
                return -ENOMEM;
        cells = attr(item, "cells", "L", &bad);
        if (bad || !cJSON_IsArray(cells))
                return -EBADMSG;
        /* Every cell must be a complete one; the status is local and starts idle. */
        cJSON_ArrayForEach(c, cells)
        {
                static const char *const strs[] = { "id", "type", "code", "stdout" };
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "error");

                if (!cJSON_IsObject(c))
                        return -EBADMSG;
                for (size_t i = 0; i < ELEMENTSOF(strs); i++)
                        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, strs[i])))
                                return -EBADMSG;
                if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c, "outputs")) ||
                    !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c, "reads")) ||
                    !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c, "writes")) ||
                    !(cJSON_IsString(e) || cJSON_IsNull(e)))
                        return -EBADMSG;
                if (!cJSON_AddStringToObject(c, "status", "idle"))
                        return -ENOMEM;
        }
        if (!cJSON_AddItemToObject(nb, "cells", TAKE_PTR(cells)))
                return -ENOMEM;
        sid = attr(item, "sync_id", "S", &bad);
        if (bad)
                return -EBADMSG;
        if (ret_sync_id) {
                *ret_sync_id = NULL;
                if (sid && !(*ret_sync_id = strdup(sid->valuestring)))
                        return -ENOMEM;
        }
        *ret_notebook = TAKE_PTR(nb);
        return 0;
}

/* ---- sizes --------------------------------------------------------------------------------- */

/* A number takes 1 byte per two significant digits, plus 1: leading and trailing zeros, sign,
 * point and exponent do not count. */
static size_t number_size(const char *s)
{
        const char *first = NULL, *last = NULL;
        size_t digits = 0;

        for (const char *p = s; *p && *p != 'e' && *p != 'E'; p++)
                if (isdigit((unsigned char)*p) && *p != '0') {
                        if (!first)
                                first = p;
                        last = p;
                }
        if (!first)
                return 1 + 1; /* zero */
        for (const char *p = first; p <= last; p++)
                digits += isdigit((unsigned char)*p) != 0;
        return (digits + 1) / 2 + 1;
}

static size_t value_size(const cJSON *av)
{
        const cJSON *v = av ? av->child : NULL, *c;
        size_t n;

        if (!v)
                return 0;
        if (streq(v->string, "S") && cJSON_IsString(v))
                return strlen(v->valuestring);
        if (streq(v->string, "N") && cJSON_IsString(v))
                return number_size(v->valuestring);
        if (streq(v->string, "BOOL") || streq(v->string, "NULL"))
                return 1;
        if (streq(v->string, "M") || streq(v->string, "L")) {
                bool map = streq(v->string, "M");

                n = 3;
                cJSON_ArrayForEach(c, v) n += 1 + value_size(c) + (map ? strlen(c->string) : 0);
                return n;
        }
        return 0;
}

size_t ddb_item_size(const cJSON *item)
{
        const cJSON *a;
        size_t n = 0;

        cJSON_ArrayForEach(a, item) n += strlen(a->string) + value_size(a);
        return n;
}

/* ---- requests ------------------------------------------------------------------------------ */

static cJSON *key_new(const char *user_id, const char *notebook_id)
{
        cJSON *key = cJSON_CreateObject();

        if (!key || !put(key, "user_id", av_string(user_id)) ||
            !put(key, "notebook_id", av_string(notebook_id))) {
                cJSON_Delete(key);
                return NULL;
        }
        return key;
}

/* The write condition: the item is absent, or still at the revision we last saw. "revision" goes
 * through a placeholder, as every attribute name in an expression here does. */
static bool add_condition(cJSON *body, int64_t base_revision)
{
        cJSON *names, *values;

        if (base_revision < 0)
                return cJSON_AddStringToObject(body, "ConditionExpression", "attribute_not_exists(#nid)") &&
                       (names = cJSON_AddObjectToObject(body, "ExpressionAttributeNames")) &&
                       cJSON_AddStringToObject(names, "#nid", "notebook_id");
        return cJSON_AddStringToObject(body, "ConditionExpression",
                                       "attribute_not_exists(#nid) OR #rev = :base") &&
               (names = cJSON_AddObjectToObject(body, "ExpressionAttributeNames")) &&
               cJSON_AddStringToObject(names, "#nid", "notebook_id") &&
               cJSON_AddStringToObject(names, "#rev", "revision") &&
               (values = cJSON_AddObjectToObject(body, "ExpressionAttributeValues")) &&
               put(values, ":base", av_int(base_revision));
}

static cJSON *body_new(const char *table)
{
        cJSON *b = cJSON_CreateObject();

        if (b && !cJSON_AddStringToObject(b, "TableName", table)) {
                cJSON_Delete(b);
                return NULL;
        }
        return b;
}

cJSON *ddb_put_item_body(const char *table, const cJSON *item, int64_t base_revision)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);

        if (!b || !cJSON_AddItemToObject(b, "Item", cJSON_Duplicate(item, true)) ||
            !add_condition(b, base_revision))
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_delete_item_body(const char *table, const char *user_id, const char *notebook_id,
                            int64_t base_revision)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);

        if (!b || !put(b, "Key", key_new(user_id, notebook_id)) || !add_condition(b, base_revision))
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_get_item_body(const char *table, const char *user_id, const char *notebook_id)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);

        if (!b || !put(b, "Key", key_new(user_id, notebook_id)) ||
            !cJSON_AddTrueToObject(b, "ConsistentRead"))
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_query_body(const char *table, const char *user_id, const cJSON *start_key, int limit)
{
        _cleanup_(cJSON_Deletep) cJSON *b = body_new(table);
        cJSON *values;

        if (!b || !cJSON_AddStringToObject(b, "KeyConditionExpression", "#uid = :uid") ||
            !cJSON_AddItemToObject(b, "ExpressionAttributeNames", cJSON_Parse("{\"#uid\":\"user_id\"}")) ||
            !(values = cJSON_AddObjectToObject(b, "ExpressionAttributeValues")) ||
            !put(values, ":uid", av_string(user_id)) || !cJSON_AddNumberToObject(b, "Limit", limit) ||
            !cJSON_AddTrueToObject(b, "ConsistentRead") ||
            (start_key && !cJSON_AddItemToObject(b, "ExclusiveStartKey", cJSON_Duplicate(start_key, true))))
                return NULL;
        return TAKE_PTR(b);
}

cJSON *ddb_create_table_body(const char *table)
{
        /* The seed's table: keys, both indexes, on demand billing. */
        static const char *const rest =
                "{\"AttributeDefinitions\":[{\"AttributeName\":\"user_id\",\"AttributeType\":\"S\"},"
                "{\"AttributeName\":\"notebook_id\",\"AttributeType\":\"S\"},"
                "{\"AttributeName\":\"created_at\",\"AttributeType\":\"S\"}],"
                "\"KeySchema\":[{\"AttributeName\":\"user_id\",\"KeyType\":\"HASH\"},"
                "{\"AttributeName\":\"notebook_id\",\"KeyType\":\"RANGE\"}],"
                "\"GlobalSecondaryIndexes\":["
                "{\"IndexName\":\"NotebookByIdIndex\",\"KeySchema\":[{\"AttributeName\":\"notebook_id\","
                "\"KeyType\":"
                "\"HASH\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}},"
                "{\"IndexName\":\"NotebooksByUserCreatedIndex\",\"KeySchema\":[{\"AttributeName\":\"user_"
                "id\","
                "\"KeyType\":\"HASH\"},{\"AttributeName\":\"created_at\",\"KeyType\":\"RANGE\"}],"
                "\"Projection\":{\"ProjectionType\":\"INCLUDE\",\"NonKeyAttributes\":[\"name\",\"updated_"
                "at\"]}}],"
                "\"BillingMode\":\"PAY_PER_REQUEST\"}";
        cJSON *b = cJSON_Parse(rest);

        if (b && !cJSON_AddStringToObject(b, "TableName", table)) {
                cJSON_Delete(b);
                return NULL;
        }
        return b;
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

/* ---- errors -------------------------------------------------------------------------------- */

DdbErrorClass ddb_error_classify(long http_status, const cJSON *body, const char **ret_type,
                                 const char **ret_message)
{
        static const struct {
                const char *type;
                DdbErrorClass cls;
        } table[] = {
                { "ConditionalCheckFailedException", DDB_CONDITIONAL_FAILED },
                { "ProvisionedThroughputExceededException", DDB_THROTTLING },
                { "ThrottlingException", DDB_THROTTLING },
                { "RequestLimitExceeded", DDB_THROTTLING },
                { "TooManyRequestsException", DDB_THROTTLING },
                { "LimitExceededException", DDB_THROTTLING },
                { "InternalServerError", DDB_RETRYABLE },
                { "InternalFailure", DDB_RETRYABLE },
                { "ServiceUnavailable", DDB_RETRYABLE },
                { "ServiceUnavailableException", DDB_RETRYABLE },
                { "RequestTimeout", DDB_RETRYABLE },
                { "RequestTimeoutException", DDB_RETRYABLE },
                { "TransactionConflictException", DDB_RETRYABLE },
                { "UnrecognizedClientException", DDB_AUTH },
                { "InvalidSignatureException", DDB_AUTH },
                { "AccessDeniedException", DDB_AUTH },
                { "ExpiredTokenException", DDB_AUTH },
                { "MissingAuthenticationToken", DDB_AUTH },
                { "MissingAuthenticationTokenException", DDB_AUTH },
                { "IncompleteSignatureException", DDB_AUTH },
                { "InvalidClientTokenId", DDB_AUTH },
                { "SignatureDoesNotMatch", DDB_AUTH },
        };
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "__type"),
                    *m = cJSON_GetObjectItemCaseSensitive(body, "message");
        const char *type = cJSON_IsString(t) ? t->valuestring : "", *hash = strrchr(type, '#');

        if (!cJSON_IsString(m))
                m = cJSON_GetObjectItemCaseSensitive(body, "Message");
        if (hash)
                type = hash + 1;
        if (ret_type)
                *ret_type = type;
        if (ret_message)
                *ret_message = cJSON_IsString(m) ? m->valuestring : "";
        if (http_status >= 200 && http_status < 300)
                return DDB_OK;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(type, table[i].type))
                        return table[i].cls;
        if (http_status >= 500 || http_status == 429)
                return http_status == 429 ? DDB_THROTTLING : DDB_RETRYABLE;
        if (http_status == 401 || http_status == 403)
                return DDB_AUTH;
        return DDB_VALIDATION;
}
