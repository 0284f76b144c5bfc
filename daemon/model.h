/* SPDX-License-Identifier: MIT */
#pragma once

/* The notebook data model as the protocol carries it: error codes, and the checks that turn a
 * peer's JSON into values the store may write. Nothing here touches the database. */

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete)

/* Protocol error codes (doc/protocol.md). */
enum {
        RPC_PARSE_ERROR = -32700,
        RPC_INVALID_REQUEST = -32600,
        RPC_METHOD_NOT_FOUND = -32601,
        RPC_INVALID_PARAMS = -32602,
        RPC_INTERNAL_ERROR = -32603,
        RPC_LINE_TOO_LONG = -32000,
        RPC_TOO_DEEP = -32001,
        RPC_BAD_ENCODING = -32002,
        RPC_TRUNCATED = -32003,
        RPC_NOT_FOUND = -32010,
        RPC_CONFLICT = -32011,
        RPC_ACCESS_DENIED = -32012,
        RPC_TOO_LARGE = -32013,
        RPC_EXISTS = -32014,
        RPC_STORAGE = -32020,
        RPC_NO_REMOTE = -32030,
};

/* What is wrong with a peer's input, for the error reply. */
typedef struct ModelError {
        int code;
        const char *param; /* NULL, a static string, or a key of the request being handled */
        long long limit;   /* -1 when none */
        char message[256];
} ModelError;

int model_error(ModelError *e, int code, const char *param, long long limit, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* Serialises v compactly, like cJSON_PrintUnformatted(), but every number comes back exactly as
 * the double it is (cJSON keeps 15 digits and loses the rest): the shortest of 15 to 17 digits
 * that round-trips, integers in full. Non-finite numbers print as null; model_cell_fields() never
 * lets one in. With newline, a '\n' ends the text (a protocol line). NULL on OOM. */
char *model_json_print(const cJSON *v, bool newline);

bool model_id_valid(const char *s, size_t max_bytes);
bool model_user_id_valid(const char *s);

/* Refuses any key of obj not in the NULL-terminated list allowed (-32602). */
int model_check_keys(const cJSON *obj, const char *const *allowed, ModelError *e);

/* Looks up an optional string member: 0 absent (*ret NULL), 1 present; errors when it is not a
 * string (or null, when allow_null; then *ret is NULL and *ret_null true) or longer than max. */
int model_get_string(const cJSON *obj, const char *key, size_t max, bool allow_null, const char **ret,
                     bool *ret_null, ModelError *e);
/* Looks up an optional integer member in [min, max]: 0 absent, 1 present. */
int model_get_int(const cJSON *obj, const char *key, long long min, long long max, bool allow_null,
                  long long *ret, bool *ret_null, ModelError *e);

/* The cell fields of obj (type, code, status, stdout, outputs, error, reads, writes), checked
 * and normalised (reads/writes without duplicates). With defaults, every field is present in
 * *ret (a create); without, only those obj has (an update). *ret_count tells how many fields obj
 * gave. Other keys are not looked at. */
int model_cell_fields(const cJSON *obj, bool defaults, cJSON **ret, unsigned *ret_count, ModelError *e);

/* Every number of a request's parameters (the request line as sent; params as parsed) is kept
 * exactly or refused: its decimal value must read back digit for digit from the double that stores
 * it, and lie in DynamoDB's range (1e-130 to 1e126 in magnitude, or 0), so that what the table
 * holds is what was sent. -32602 naming the parameter otherwise. */
int model_check_numbers(const char *line, size_t len, const cJSON *params, ModelError *e);
/* Whether every object in v has each key once (JSON allows repeats, and readers disagree on which
 * one counts: the daemon and a front end could act on different user_ids). -32600 naming the key;
 * -ENOMEM. */
int model_check_unique_keys(const cJSON *v, ModelError *e);
/* The same for one number's text: 0, -ERANGE (out of DynamoDB's range), -EDOM (a double cannot
 * hold it digit for digit), -ENOMEM. */
int model_number_check(const char *text, size_t len);

/* notebook.list cursors: opaque to peers, they name the user whose list they continue and the key
 * (created_at, id) of the last notebook sent. format: NULL on OOM. parse: 0 and the key (pointing
 * into *ret, which the caller frees), -EINVAL for a cursor the daemon did not make, -EPERM for one
 * of another user's list, -ENOMEM. */
char *model_list_cursor_format(const char *user_id, const char *created_at, const char *id);
int model_list_cursor_parse(const char *cursor, const char *user_id, cJSON **ret,
                            const char **ret_created_at, const char **ret_id);
