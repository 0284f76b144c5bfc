/* SPDX-License-Identifier: MIT */
#pragma once

/* DynamoDB's JSON protocol (X-Amz-Target DynamoDB_20120810.*), without the network: notebooks
 * to items and back, item sizes by DynamoDB's rules, request bodies, the table check, and what
 * an error answer means. Pure functions: nothing here signs, sends or logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* DynamoDB refuses an item larger than this (names and values, by ddb_item_size()). */
#define DDB_MAX_ITEM_BYTES (400 * 1024)
/* DynamoDB refuses lists and maps nested deeper than this. */
#define DDB_MAX_NESTING 32

/* ---- items ------------------------------------------------------------------------------- */

/* The item for a protocol notebook (doc/protocol.md) in AttributeValue JSON, in the seed's shape:
 * user_id S, notebook_id S, name S|NULL, db_conn_string S|NULL, revision N, cells L of M (id,
 * type, code, stdout S; outputs L of M {mime_type S, data S|M|L, metadata M}; error S|NULL;
 * reads, writes L of S; no status: it is local), created_at S, updated_at S, ttl N and
 * demo_version N only when set, and sync_id S when sync_id is not NULL. Numbers keep their exact
 * text (model_json_print()).
 * -EINVAL: not a complete protocol notebook (a key or created_at empty, a field missing or of the
 * wrong type); -ERANGE: a value DynamoDB cannot hold (a number beyond its range, nesting deeper
 * than DDB_MAX_NESTING); -ENOMEM. */
int ddb_item_from_notebook(const cJSON *notebook, const char *sync_id, cJSON **ret_item);

/* The reverse: the protocol notebook (every cell "idle") and the item's sync_id (NULL when it has
 * none; ret_sync_id may be NULL). Types are checked strictly, every attribute written by
 * ddb_item_from_notebook() is required (NULL and absent are the same for the nullable ones);
 * attributes it does not know are ignored. -EBADMSG for an item of another shape, -ENOMEM. */
int ddb_notebook_from_item(const cJSON *item, cJSON **ret_notebook, char **ret_sync_id);

/* What a pull needs to know of an item; the strings point into the item. */
typedef struct DdbItemHead {
        const char *user_id;
        const char *notebook_id;
        int64_t revision;
        const char *sync_id;        /* NULL when absent */
        const char *parent_sync_id; /* the sync_id of the version this one was written on, or NULL */
        const char *updated_at;     /* NULL when absent */
} DdbItemHead;

/* Names the version an item was written on (parent_sync_id S; NULL: none), so that a device whose
 * own write that was, though it never heard so, can tell the new version descends from it. */
int ddb_item_set_parent(cJSON *item, const char *parent_sync_id);
/* Reads the head of an item, whole or projected by ddb_query_heads_body(). -EBADMSG. */
int ddb_item_head(const cJSON *item, DdbItemHead *ret);

/* The item's size in bytes by the rules of the developer guide ("Item sizes and formats"): the
 * UTF-8 bytes of every attribute name plus its value's size; S: UTF-8 bytes; B: raw bytes; N:
 * see ddb_number_size(); BOOL, NULL: 1; L, M: 3, plus 1 per element, plus the elements (a map's
 * element: its key's UTF-8 bytes and its value); SS, NS, BS: the sum of their elements. A value
 * of no known type counts 0 (DynamoDB would refuse the item anyway). */
size_t ddb_item_size(const cJSON *item);

/* The size of a number in DynamoDB's decimal text ("-1.5E3"), 0 if it is not one. The guide gives
 * "about 1 byte per two significant digits, plus 1"; exactly, the digits are stored in base 100
 * aligned on the decimal point (so "1.5" takes two digit bytes: 01|50), leading and trailing zero
 * pairs dropped, plus an exponent byte and, for a negative number, a terminator byte; zero takes
 * 1 byte, nothing more than 21. Never less than the guide's estimate. */
size_t ddb_number_size(const char *number);

/* ---- request bodies: TableName first, the caller serialises; NULL on OOM --------------------- */

/* Every attribute name an expression mentions goes through a #placeholder (#nid, #rev, #uid...),
 * whether or not it is a reserved word ("name", "data", "ttl" are), so no list of reserved words
 * needs to be right. */

/* PutItem of item (copied), conditioned on the remote still holding our base: with base_revision
 * < 0 (the remote never had it) "attribute_not_exists(#nid)"; else "#rev = :base AND #sid = :sid"
 * ("... AND attribute_not_exists(#sid)" when base_sync_id is NULL: the base item had no token). A
 * missing item fails the condition: deleted elsewhere, not free to create. */
cJSON *ddb_put_item_body(const char *table, const cJSON *item, int64_t base_revision,
                         const char *base_sync_id);
/* DeleteItem of the key, conditioned the same way. */
cJSON *ddb_delete_item_body(const char *table, const char *user_id, const char *notebook_id,
                            int64_t base_revision, const char *base_sync_id);
/* GetItem of the whole item, strongly consistent. */
cJSON *ddb_get_item_body(const char *table, const char *user_id, const char *notebook_id);
/* One page of a user's whole items, strongly consistent. start_key: the previous page's
 * LastEvaluatedKey, or NULL for the first page; limit <= 0: no Limit. */
cJSON *ddb_query_body(const char *table, const char *user_id, const cJSON *start_key, int limit);
/* The same, projected to what a pull compares (user_id, notebook_id, revision, sync_id,
 * updated_at: see ddb_item_head()); a pull then fetches whole items only for what changed. */
cJSON *ddb_query_heads_body(const char *table, const char *user_id, const cJSON *start_key, int limit);
/* CreateTable for the seed's table: PK user_id S, SK notebook_id S; GSIs NotebookByIdIndex (HASH
 * notebook_id, ALL) and NotebooksByUserCreatedIndex (HASH user_id, RANGE created_at S, INCLUDE
 * name, updated_at); PAY_PER_REQUEST. */
cJSON *ddb_create_table_body(const char *table);
/* UpdateTimeToLive: enabled on "ttl". */
cJSON *ddb_update_ttl_body(const char *table);
/* DescribeTable (also the body of DescribeTimeToLive). */
cJSON *ddb_describe_table_body(const char *table);

/* ---- the parts table (doc/sync.md, "Big notebooks") ------------------------------------------ */

/* A part item: owner S (HASH: "user_id/notebook_id"; a user_id has no '/'), part S (RANGE: the hex
 * SHA-256 of data), data B, created_at S (ISO 8601, UTC). */

/* PutItem of a part, unconditional: one name is one content, and writing it again refreshes its
 * created_at, which keeps a collection that started before from removing it. */
cJSON *ddb_part_put_body(const char *table, const char *owner, const char *hash, const void *data,
                         size_t size, const char *created_at);
/* GetItem of a part, strongly consistent: it was written before any item that names it. */
cJSON *ddb_part_get_body(const char *table, const char *owner, const char *hash);
/* The bytes of a part item (GetItem's "Item"), in a new buffer. -EBADMSG: not a part item. */
int ddb_part_data(const cJSON *item, unsigned char **ret_data, size_t *ret_size);
/* One page of an owner's parts, projected to part, created_at and stale_at, strongly consistent. */
cJSON *ddb_parts_query_body(const char *table, const char *owner, const cJSON *start_key);
/* UpdateItem of a part no version names: stale_at = now, only if it is still the write of created_at
 * (a part written again since is in use) and not marked yet. */
cJSON *ddb_part_mark_body(const char *table, const char *owner, const char *hash, const char *created_at,
                          const char *now);
/* DeleteItem of a part, only if it is still marked stale_at (a part written again since is not). */
cJSON *ddb_part_delete_body(const char *table, const char *owner, const char *hash, const char *stale_at);
/* CreateTable of a parts table: owner S HASH, part S RANGE, PAY_PER_REQUEST. */
cJSON *ddb_create_parts_table_body(const char *table);

/* Whether an existing table (a DescribeTable result, {"Table": {...}}, or its "Table" member)
 * serves as the seed's table: key schema, key attribute types, both GSIs with their keys and
 * projections (an index projecting ALL, or INCLUDE with more attributes, also serves). Returns
 * the number of mismatches, 0 when it fits; *ret_report (may be NULL) gets one line per mismatch
 * ("\n"-separated, no final newline), NULL when there is none. -EBADMSG when the answer describes
 * no table, -ENOMEM. */
int ddb_table_check(const cJSON *describe_table_result, char **ret_report);
/* The same for a parts table: keys owner (HASH, S) and part (RANGE, S). */
int ddb_parts_table_check(const cJSON *describe_table_result, char **ret_report);

/* ---- errors -------------------------------------------------------------------------------- */

typedef enum DdbErrorClass {
        DDB_OK,
        DDB_RETRYABLE,          /* 5xx, internal errors, timeouts: try again */
        DDB_THROTTLING,         /* slow down, then try again */
        DDB_CONDITIONAL_FAILED, /* the condition did not hold: someone else wrote (or we did) */
        DDB_VALIDATION,         /* the request itself is wrong: retrying cannot help */
        DDB_AUTH,               /* credentials, signature or permissions */
} DdbErrorClass;

const char *ddb_error_class_to_string(DdbErrorClass c);

#define DDB_ERROR_TYPE_MAX    96
#define DDB_ERROR_MESSAGE_MAX 256

/* An answer, read. */
typedef struct DdbError {
        DdbErrorClass cls;
        /* The error type without its namespace ("ConditionalCheckFailedException"), "" if none. */
        char type[DDB_ERROR_TYPE_MAX];
        /* The server's message, control characters replaced and cut (at a UTF-8 boundary) to fit;
         * when the server gave none, what the status says ("HTTP 503"). "" for a success. */
        char message[DDB_ERROR_MESSAGE_MAX];
        /* The signature was refused because the clocks disagree ("Signature expired"): fix the
         * clock offset and sign again. */
        bool clock_skew;
} DdbError;

/* Reads an answer: status and body (not necessarily NUL-terminated; anything, HTML from a proxy
 * included). The "__type" field decides ("com.amazonaws.dynamodb.v20120810#
 * ConditionalCheckFailedException"); without a known one, the message and then the status do
 * (5xx, 408: retryable; 429: throttling; 401, 403: authentication; other 4xx: validation). Any 2xx
 * is DDB_OK. */
void ddb_error_parse(long http_status, const char *body, size_t len, DdbError *ret);
DdbErrorClass ddb_error_classify(long http_status, const char *body, size_t len);
