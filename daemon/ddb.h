/* SPDX-License-Identifier: MIT */
#pragma once

/* DynamoDB's JSON protocol, without the network: notebooks to items and back, item sizes by
 * DynamoDB's rules, request bodies, and what an error answer means. */

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define DDB_MAX_ITEM_BYTES (400u * 1024)

typedef enum DdbErrorClass {
        DDB_OK,
        DDB_RETRYABLE,          /* 5xx, internal errors, timeouts: try again */
        DDB_THROTTLING,         /* slow down, then try again */
        DDB_CONDITIONAL_FAILED, /* the condition did not hold: someone else wrote (or we did) */
        DDB_VALIDATION,         /* the request itself is wrong: retrying cannot help */
        DDB_AUTH,               /* credentials or permissions */
} DdbErrorClass;

const char *ddb_error_class_to_string(DdbErrorClass c);

/* The item for a notebook in the protocol's shape (doc/protocol.md), exactly as the seed stores
 * it: user_id, notebook_id, name, db_conn_string, revision, cells (without the local-only
 * "status"), created_at, updated_at, ttl and demo_version when set, plus sync_id.
 * -EINVAL if the notebook lacks a field, -ENOMEM. */
int ddb_item_from_notebook(const cJSON *notebook, const char *sync_id, cJSON **ret_item);

/* The reverse: a protocol notebook (cells "idle") and the item's sync_id (NULL if it has none).
 * -EBADMSG for an item of the wrong shape. */
int ddb_notebook_from_item(const cJSON *item, cJSON **ret_notebook, char **ret_sync_id);

/* The item's size by DynamoDB's rules: UTF-8 bytes of names and strings, numbers by significant
 * digits, 3 bytes plus 1 per element for lists and maps. */
size_t ddb_item_size(const cJSON *item);

/* Request bodies. base_revision < 0: the remote never had the item, so the write must not find
 * one. */
cJSON *ddb_put_item_body(const char *table, const cJSON *item, int64_t base_revision);
cJSON *ddb_delete_item_body(const char *table, const char *user_id, const char *notebook_id,
                            int64_t base_revision);
cJSON *ddb_get_item_body(const char *table, const char *user_id, const char *notebook_id);
/* One page of a user's items; start_key: LastEvaluatedKey of the previous page, or NULL. */
cJSON *ddb_query_body(const char *table, const char *user_id, const cJSON *start_key, int limit);
cJSON *ddb_create_table_body(const char *table);
cJSON *ddb_update_ttl_body(const char *table);
cJSON *ddb_describe_table_body(const char *table);

/* Classifies an answer: HTTP status and body. *ret_type (may be NULL) gets the short error type,
 * e.g. "ConditionalCheckFailedException", and *ret_message its message (both static or pointing
 * into a buffer owned by the caller's parsed body: copy them to keep them). */
DdbErrorClass ddb_error_classify(long http_status, const cJSON *body, const char **ret_type,
                                 const char **ret_message);
