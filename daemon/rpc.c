/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "frame.h"
#include "graph.h"
#include "log.h"
#include "model.h"
#include "rpc.h"

#define VERSION_STRING PACKAGE_VERSION

/* One request while it is handled. */
typedef struct Call {
        Rpc *rpc;
        const RpcPeer *peer;
        const cJSON *params;
        const char *user_id; /* resolved and authorised */
        cJSON *result;
        ModelError error;
        const char *missing_id; /* for not-found errors: which id */
        bool missing_cell;
        int64_t current_revision; /* for conflicts */
        cJSON *changed;           /* see RpcReply.changed */
        cJSON *watch;             /* see RpcReply.watch */
} Call;

typedef int (*MethodFunc)(Call *c);

typedef struct Method {
        const char *name;
        MethodFunc func;
        bool writes;
        bool needs_user;
        const char *const *keys; /* allowed params */
} Method;

void rpc_reply_done(RpcReply *r)
{
        free(r->text);
        cJSON_Delete(r->abort_id);
        cJSON_Delete(r->changed);
        cJSON_Delete(r->watch);
        *r = (RpcReply){ 0 };
}

/* ---- replies ------------------------------------------------------------------------------- */

static char *print_line(cJSON *msg)
{
        return model_json_print(msg, true);
}

static cJSON *envelope(const cJSON *id)
{
        cJSON *msg = cJSON_CreateObject();

        if (!msg)
                return NULL;
        if (!cJSON_AddStringToObject(msg, "jsonrpc", "2.0") ||
            !cJSON_AddItemToObject(msg, "id", id ? cJSON_Duplicate(id, false) : cJSON_CreateNull())) {
                cJSON_Delete(msg);
                return NULL;
        }
        return msg;
}

static char *error_reply(const cJSON *id, int code, const char *message, cJSON *data /* taken */)
{
        _cleanup_(cJSON_Deletep) cJSON *msg = envelope(id), *d = data;
        cJSON *err;

        if (!msg)
                return NULL;
        err = cJSON_AddObjectToObject(msg, "error");
        if (!err || !cJSON_AddNumberToObject(err, "code", code) ||
            !cJSON_AddStringToObject(err, "message", message))
                return NULL;
        if (d && !cJSON_AddItemToObject(err, "data", TAKE_PTR(d)))
                return NULL;
        return print_line(msg);
}

char *rpc_reply_abort_text(const RpcReply *r)
{
        return error_reply(r->abort_id, RPC_STORAGE,
                           r->abort_writes ? "The database could not commit; nothing changed."
                                           : "The database could not commit the requests run with this one; "
                                             "ask again.",
                           NULL);
}

static cJSON *data_int(const char *key, long long value)
{
        cJSON *d = cJSON_CreateObject();

        if (d && !cJSON_AddNumberToObject(d, key, (double)value)) {
                cJSON_Delete(d);
                return NULL;
        }
        return d;
}

char *rpc_error_line(int code, const char *message, const char *data_key, long long data_value)
{
        return error_reply(NULL, code, message, data_key ? data_int(data_key, data_value) : NULL);
}

/* The error reply for a failed call, from what the handler recorded in c. */
static char *call_error_reply(const cJSON *id, Call *c)
{
        cJSON *data = NULL;

        if (c->error.code == RPC_CONFLICT)
                data = data_int("current_revision", c->current_revision);
        else if (c->error.code == RPC_NOT_FOUND && c->missing_id) {
                data = cJSON_CreateObject();
                if (data)
                        cJSON_AddStringToObject(data, c->missing_cell ? "cell_id" : "notebook_id",
                                                c->missing_id);
        } else if (c->error.param || c->error.limit >= 0) {
                data = cJSON_CreateObject();
                if (data && c->error.param)
                        cJSON_AddStringToObject(data, "param", c->error.param);
                if (data && c->error.limit >= 0)
                        cJSON_AddNumberToObject(data, "limit", (double)c->error.limit);
        }
        return error_reply(id, c->error.code, c->error.message, data);
}

/* Turns a store error into the protocol's. */
static int store_error(Call *c, int r, const char *notebook_id, const char *cell_id, const char *after_id)
{
        switch (r) {
        case -ENOENT:
                c->missing_id = notebook_id;
                c->missing_cell = false;
                return model_error(&c->error, RPC_NOT_FOUND, NULL, -1, "No such notebook.");
        case -ENXIO: {
                /* The cell named, or else the one to place after. */
                c->missing_id = cell_id ? cell_id : after_id;
                c->missing_cell = true;
                return model_error(&c->error, RPC_NOT_FOUND, NULL, -1, "No such cell in this notebook.");
        }
        case -ESTALE:
                return model_error(&c->error, RPC_CONFLICT, NULL, -1,
                                   "Revision conflict: the notebook is at revision %lld.",
                                   (long long)c->current_revision);
        case -EEXIST:
                return model_error(&c->error, RPC_EXISTS, NULL, -1, "%s already exists.",
                                   cell_id ? "A cell with this id" : "A notebook with this id");
        case -E2BIG:
                return model_error(&c->error, RPC_TOO_LARGE, "cells", MAX_CELLS,
                                   "A notebook has at most %d cells.", MAX_CELLS);
        case -EFBIG: {
                uint64_t max = c->rpc->config ? c->rpc->config->limits.max_notebook_bytes
                                              : limits_default.max_notebook_bytes;

                return model_error(&c->error, RPC_TOO_LARGE, NULL, (long long)max,
                                   "The notebook would be larger than max_notebook_bytes (%llu bytes of "
                                   "cells); nothing was changed.",
                                   (unsigned long long)max);
        }
        case -ERANGE:
                return model_error(&c->error, RPC_INVALID_PARAMS, after_id ? "after_cell_id" : "position",
                                   -1,
                                   after_id ? "A cell cannot be placed after itself."
                                            : "Position is out of range for this notebook.");
        case -ENOMEM:
                return model_error(&c->error, RPC_INTERNAL_ERROR, NULL, -1, "Out of memory.");
        default:
                log_error_errno(r, "Database operation failed: %s", store_errmsg(c->rpc->store));
                return model_error(&c->error, RPC_STORAGE, NULL, -1, "The database failed: %s.",
                                   strerror(-r));
        }
}

/* ---- parameters ---------------------------------------------------------------------------- */

static int get_id(Call *c, const char *key, bool required, const char **ret)
{
        int r = model_get_string(c->params, key, MAX_ID_BYTES, false, ret, NULL, &c->error);

        if (r < 0)
                return r;
        if (r == 0 && required)
                return model_error(&c->error, RPC_INVALID_PARAMS, key, -1, "Missing parameter \"%s\".", key);
        if (r > 0 && !model_id_valid(*ret, MAX_ID_BYTES))
                return model_error(&c->error, RPC_INVALID_PARAMS, key, -1,
                                   "\"%s\" must be 1 to %d bytes without control, separator or "
                                   "bidirectional characters.",
                                   key, MAX_ID_BYTES);
        return r;
}

static int get_expected(Call *c, StoreMut *m)
{
        long long v;
        int r = model_get_int(c->params, "expected_revision", 0, INT64_MAX, false, &v, NULL, &c->error);

        if (r > 0)
                m->expected_revision = v;
        return r;
}

/* position / after_cell_id, at most one; returns 0 when neither is given. */
static int get_place(Call *c, CellPlace *p)
{
        const char *after;
        bool after_null;
        long long pos;
        int r1, r2;

        r1 = model_get_int(c->params, "position", 0, MAX_CELLS, false, &pos, NULL, &c->error);
        if (r1 < 0)
                return r1;
        r2 = model_get_string(c->params, "after_cell_id", MAX_ID_BYTES, true, &after, &after_null,
                              &c->error);
        if (r2 < 0)
                return r2;
        if (r1 > 0 && r2 > 0)
                return model_error(&c->error, RPC_INVALID_PARAMS, "position", -1,
                                   "Give \"position\" or \"after_cell_id\", not both.");
        if (r1 > 0)
                *p = (CellPlace){ .kind = PLACE_INDEX, .index = pos };
        else if (r2 > 0 && after_null)
                *p = (CellPlace){ .kind = PLACE_FRONT };
        else if (r2 > 0) {
                if (!model_id_valid(after, MAX_ID_BYTES))
                        return model_error(&c->error, RPC_INVALID_PARAMS, "after_cell_id", -1,
                                           "\"after_cell_id\" is not a valid cell id.");
                *p = (CellPlace){ .kind = PLACE_AFTER, .after = after };
        } else
                *p = (CellPlace){ .kind = PLACE_END };
        return r1 > 0 || r2 > 0;
}

/* name, db_conn_string, ttl: copied into fields when present (null kept as null). */
static int get_notebook_fields(Call *c, cJSON *fields, unsigned *count)
{
        static const struct {
                const char *key;
                size_t max;
        } strs[] = { { "name", MAX_NAME_BYTES }, { "db_conn_string", MAX_CONN_STRING_BYTES } };
        long long ttl;
        bool is_null;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(strs); i++) {
                const char *s;

                r = model_get_string(c->params, strs[i].key, strs[i].max, true, &s, &is_null, &c->error);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                (*count)++;
                if (!(is_null ? cJSON_AddNullToObject(fields, strs[i].key)
                              : cJSON_AddStringToObject(fields, strs[i].key, s)))
                        return -ENOMEM;
        }
        r = model_get_int(c->params, "ttl", 0, 9007199254740991LL, true, &ttl, &is_null, &c->error);
        if (r < 0)
                return r;
        if (r > 0) {
                (*count)++;
                if (!(is_null ? cJSON_AddNullToObject(fields, "ttl")
                              : cJSON_AddNumberToObject(fields, "ttl", (double)ttl)))
                        return -ENOMEM;
        }
        return 0;
}

/* The user a request acts for: the one named or the peer's default, and whether it may. */
bool rpc_peer_may_act(const Rpc *rpc, const RpcPeer *peer, const char *user_id)
{
        const UserBinding *b = rpc->config ? config_find_uid(rpc->config, peer->uid) : NULL;

        if (peer->privileged)
                return true;
        for (size_t i = 0; b && i < b->n_user_ids; i++)
                if (streq(b->user_ids[i], user_id))
                        return true;
        return false;
}

static int resolve_user(Call *c)
{
        const UserBinding *b = c->rpc->config ? config_find_uid(c->rpc->config, c->peer->uid) : NULL;
        const char *user;
        int r;

        r = model_get_string(c->params, "user_id", MAX_USER_ID_BYTES, false, &user, NULL, &c->error);
        if (r < 0)
                return r;
        if (r > 0 && !model_user_id_valid(user))
                return model_error(&c->error, RPC_INVALID_PARAMS, "user_id", -1,
                                   "\"user_id\" must be 1 to %d bytes without control, separator or "
                                   "bidirectional characters or '/'.",
                                   MAX_USER_ID_BYTES);
        if (r == 0) {
                if (c->peer->privileged && c->peer->default_user[0])
                        user = c->peer->default_user;
                else if (b && b->n_user_ids > 0)
                        user = b->user_ids[0];
                else
                        return model_error(&c->error, RPC_ACCESS_DENIED, NULL, -1,
                                           "Access denied: no user_id is bound to uid %u.",
                                           (unsigned)c->peer->uid);
        }
        /* The same answer whatever exists: a refusal tells nothing about user's data. */
        if (!rpc_peer_may_act(c->rpc, c->peer, user))
                return model_error(&c->error, RPC_ACCESS_DENIED, NULL, -1,
                                   "Access denied: uid %u may not act for this user_id.",
                                   (unsigned)c->peer->uid);
        c->user_id = user;
        return 0;
}

/* Records that the request changed a notebook, for the sync engine and the watchers, with its
 * revision as this request left it (notifications go out once the change is durable, and must
 * not tell of later ones that are not yet). Failing to record it only delays the push: the
 * notebook is dirty in the store, and the engine rescans for those. */
static void call_changed(Call *c, const char *notebook_id)
{
        cJSON *item;

        if (!c->changed && !(c->changed = cJSON_CreateArray()))
                return (void)log_oom();
        item = store_change_record(c->rpc->store, c->user_id, notebook_id);
        if (!item || !cJSON_AddItemToArray(c->changed, item)) {
                cJSON_Delete(item);
                log_oom();
        }
}

static int result_new(Call *c)
{
        c->result = cJSON_CreateObject();
        return c->result ? 0 : -ENOMEM;
}

static int result_mut(Call *c, const char *notebook_id, const StoreMut *m)
{
        if (result_new(c) < 0 || !cJSON_AddStringToObject(c->result, "notebook_id", notebook_id) ||
            !cJSON_AddNumberToObject(c->result, "revision", (double)m->revision) ||
            !cJSON_AddStringToObject(c->result, "updated_at", m->updated_at))
                return -ENOMEM;
        return 0;
}

static bool add_item(cJSON *obj, const char *key, cJSON *item)
{
        if (!item)
                return false;
        if (!cJSON_AddItemToObject(obj, key, item)) {
                cJSON_Delete(item);
                return false;
        }
        return true;
}

/* ---- methods ------------------------------------------------------------------------------- */

#define CELL_KEYS "type", "code", "status", "stdout", "outputs", "error", "reads", "writes"

/* The key of the last summary of a page, as a cursor for the next. */
static cJSON *list_next_cursor(Call *c, const cJSON *list, bool more)
{
        const cJSON *last = cJSON_GetArrayItem(list, cJSON_GetArraySize(list) - 1);
        _cleanup_free_ char *cursor = NULL;

        if (!more || !last)
                return cJSON_CreateNull();
        cursor = model_list_cursor_format(
                c->user_id, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "created_at")),
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "id")));
        return cursor ? cJSON_CreateString(cursor) : NULL;
}

static int m_notebook_list(Call *c)
{
        _cleanup_(cJSON_Deletep) cJSON *key_holder = NULL;
        StoreListKey key = {};
        const char *cursor;
        cJSON *list = NULL;
        bool provisioned = false, more;
        long long limit = MAX_LIST_PAGE;
        int r;

        r = model_get_int(c->params, "limit", 1, MAX_LIST_PAGE, false, &limit, NULL, &c->error);
        if (r < 0)
                return r;
        /* Any length: one over MAX_LIST_CURSOR_BYTES is not a cursor we made, refused as such. */
        r = model_get_string(c->params, "cursor", SIZE_MAX, false, &cursor, NULL, &c->error);
        if (r < 0)
                return r;
        if (r > 0) {
                r = model_list_cursor_parse(cursor, c->user_id, &key_holder, &key.created_at, &key.id);
                if (r == -ENOMEM)
                        return r;
                if (r == -EPERM)
                        return model_error(&c->error, RPC_INVALID_PARAMS, "cursor", -1,
                                           "\"cursor\" continues the list of another user.");
                if (r < 0)
                        return model_error(&c->error, RPC_INVALID_PARAMS, "cursor", -1,
                                           "\"cursor\" is not one this daemon gave out.");
        } else {
                /* The first page provisions, as the one list call did before lists had pages. */
                r = store_provision(c->rpc->store, c->user_id, &provisioned);
                if (r < 0)
                        return store_error(c, r, NULL, NULL, NULL);
        }
        if (provisioned) {
                char id[MAX_ID_BYTES + 1];

                snprintf(id, sizeof(id), "blank-%s", c->user_id);
                call_changed(c, id);
                snprintf(id, sizeof(id), "demo-%s", c->user_id);
                call_changed(c, id);
                /* New here, maybe not elsewhere: what other devices stored comes in. */
                if (c->rpc->sync_pull)
                        c->rpc->sync_pull(c->rpc->sync_userdata, c->user_id);
        }
        r = store_notebook_list(c->rpc->store, c->user_id, key_holder ? &key : NULL, (unsigned)limit, &list,
                                &more);
        if (r < 0)
                return store_error(c, r, NULL, NULL, NULL);
        if (result_new(c) < 0 || !cJSON_AddStringToObject(c->result, "user_id", c->user_id) ||
            !cJSON_AddBoolToObject(c->result, "provisioned", provisioned) ||
            !add_item(c->result, "notebooks", list) ||
            !add_item(c->result, "next_cursor", list_next_cursor(c, list, more)))
                return -ENOMEM;
        return 0;
}

static int not_in_history(Call *c, long long revision)
{
        return model_error(&c->error, RPC_NOT_FOUND, "revision", -1,
                           "Revision %lld is not in this notebook's history (notebook.history lists those "
                           "kept).",
                           revision);
}

static int m_notebook_get(Call *c)
{
        const char *id;
        cJSON *nb = NULL;
        long long revision;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 ||
            (r = model_get_int(c->params, "revision", 1, INT64_MAX, false, &revision, NULL, &c->error)) < 0)
                return r;
        if (r > 0)
                r = store_notebook_revision(c->rpc->store, c->user_id, id, revision, &nb);
        else
                r = store_notebook_get(c->rpc->store, c->user_id, id, &nb);
        if (r == -ERANGE)
                return not_in_history(c, revision);
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        if (result_new(c) < 0 || !add_item(c->result, "notebook", nb))
                return -ENOMEM;
        return 0;
}

/* "cells" of notebook.create and notebook.update: complete cells, each with an id (a new UUID when
 * not given), distinct. 0 with *ret NULL when not given. */
static int get_cells(Call *c, cJSON **ret)
{
        static const char *const cell_keys[] = { "id", CELL_KEYS, NULL };
        _cleanup_(cJSON_Deletep) cJSON *cells = NULL;
        char uuid[UUID_STRING_MAX];
        const cJSON *in_cells, *in;
        int r;

        *ret = NULL;
        in_cells = cJSON_GetObjectItemCaseSensitive(c->params, "cells");
        if (!in_cells)
                return 0;
        if (!cJSON_IsArray(in_cells))
                return model_error(&c->error, RPC_INVALID_PARAMS, "cells", -1,
                                   "\"cells\" must be an array of cells.");
        if (cJSON_GetArraySize(in_cells) > MAX_CELLS)
                return model_error(&c->error, RPC_TOO_LARGE, "cells", MAX_CELLS,
                                   "A notebook has at most %d cells.", MAX_CELLS);
        cells = cJSON_CreateArray();
        if (!cells)
                return -ENOMEM;
        cJSON_ArrayForEach(in, in_cells)
        {
                cJSON *cell = NULL, *prev;
                const cJSON *cid;

                if (!cJSON_IsObject(in))
                        return model_error(&c->error, RPC_INVALID_PARAMS, "cells", -1,
                                           "Each cell must be an object.");
                if ((r = model_check_keys(in, cell_keys, &c->error)) < 0)
                        return r;
                if ((r = model_cell_fields(in, true, &cell, NULL, &c->error)) < 0)
                        return r;
                if (!cJSON_AddItemToArray(cells, cell)) {
                        cJSON_Delete(cell);
                        return -ENOMEM;
                }
                cid = cJSON_GetObjectItemCaseSensitive(in, "id");
                if (cid && (!cJSON_IsString(cid) || !model_id_valid(cid->valuestring, MAX_ID_BYTES)))
                        return model_error(&c->error, RPC_INVALID_PARAMS, "cells", -1,
                                           "A cell \"id\" must be 1 to %d bytes without control, "
                                           "separator or bidirectional characters.",
                                           MAX_ID_BYTES);
                if (!cid) {
                        if ((r = uuid_v4_string(uuid)) < 0)
                                return r;
                }
                cJSON_ArrayForEach(prev, cells)
                {
                        if (prev != cell && cid &&
                            streq(cJSON_GetObjectItem(prev, "id")->valuestring, cid->valuestring))
                                return model_error(&c->error, RPC_INVALID_PARAMS, "cells", -1,
                                                   "Two cells have the id \"%.64s\".", cid->valuestring);
                }
                if (!cJSON_AddStringToObject(cell, "id", cid ? cid->valuestring : uuid))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(cells);
        return 0;
}

static int m_notebook_create(Call *c)
{
        _cleanup_(cJSON_Deletep) cJSON *fields = cJSON_CreateObject(), *cells = NULL;
        char uuid[UUID_STRING_MAX];
        const char *id;
        unsigned count = 0;
        cJSON *nb = NULL;
        int r;

        if (!fields)
                return -ENOMEM;
        if ((r = get_id(c, "notebook_id", false, &id)) < 0)
                return r;
        if (r == 0) {
                if ((r = uuid_v4_string(uuid)) < 0)
                        return r;
                id = uuid;
        }
        if ((r = get_notebook_fields(c, fields, &count)) < 0 || (r = get_cells(c, &cells)) < 0)
                return r;
        r = store_notebook_create(c->rpc->store, c->user_id, id, fields, cells, &nb);
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        call_changed(c, id);
        if (result_new(c) < 0 || !add_item(c->result, "notebook", nb))
                return -ENOMEM;
        return 0;
}

/* A notebook's revisions that can be restored, newest first. */
static int m_notebook_history(Call *c)
{
        const char *id;
        long long limit = MAX_HISTORY_LISTED, before = 0;
        int64_t revision;
        cJSON *list = NULL;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 ||
            (r = model_get_int(c->params, "limit", 1, MAX_HISTORY_LISTED, false, &limit, NULL, &c->error)) <
                    0 ||
            (r = model_get_int(c->params, "before", 1, INT64_MAX, false, &before, NULL, &c->error)) < 0)
                return r;
        r = store_notebook_history(c->rpc->store, c->user_id, id, before, (unsigned)limit, &revision, &list);
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        if (result_new(c) < 0 || !add_item(c->result, "revisions", list) ||
            !cJSON_AddStringToObject(c->result, "notebook_id", id) ||
            !cJSON_AddNumberToObject(c->result, "revision", (double)revision))
                return -ENOMEM;
        return 0;
}

/* Makes an earlier revision's content the newest revision. */
static int m_notebook_restore(Call *c)
{
        StoreMut m = STORE_MUT_INIT;
        long long revision;
        const char *id;
        cJSON *nb = NULL;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 || (r = get_expected(c, &m)) < 0 ||
            (r = model_get_int(c->params, "revision", 1, INT64_MAX, false, &revision, NULL, &c->error)) < 0)
                return r;
        if (r == 0)
                return model_error(&c->error, RPC_INVALID_PARAMS, "revision", -1,
                                   "Missing parameter \"revision\".");
        r = store_notebook_restore(c->rpc->store, c->user_id, id, &m, revision, &nb);
        c->current_revision = m.revision;
        if (r == -ERANGE)
                return not_in_history(c, revision);
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        call_changed(c, id);
        if (result_new(c) < 0 || !add_item(c->result, "notebook", nb))
                return -ENOMEM;
        return 0;
}

static int m_notebook_update(Call *c)
{
        _cleanup_(cJSON_Deletep) cJSON *fields = cJSON_CreateObject(), *cells = NULL;
        StoreMut m = STORE_MUT_INIT;
        unsigned count = 0;
        const char *id;
        cJSON *nb = NULL;
        int r;

        if (!fields)
                return -ENOMEM;
        if ((r = get_id(c, "notebook_id", true, &id)) < 0 || (r = get_expected(c, &m)) < 0 ||
            (r = get_notebook_fields(c, fields, &count)) < 0 || (r = get_cells(c, &cells)) < 0)
                return r;
        if (count == 0 && !cells)
                return model_error(&c->error, RPC_INVALID_PARAMS, NULL, -1,
                                   "Nothing to update: give \"name\", \"db_conn_string\", \"ttl\" or "
                                   "\"cells\".");
        r = store_notebook_update(c->rpc->store, c->user_id, id, &m, fields, cells, &nb);
        c->current_revision = m.revision;
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        call_changed(c, id);
        if (result_new(c) < 0 || !add_item(c->result, "notebook", nb))
                return -ENOMEM;
        return 0;
}

static int m_notebook_delete(Call *c)
{
        StoreMut m = STORE_MUT_INIT;
        const char *id;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 || (r = get_expected(c, &m)) < 0)
                return r;
        r = store_notebook_delete(c->rpc->store, c->user_id, id, &m);
        c->current_revision = m.revision;
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        call_changed(c, id);
        if (result_new(c) < 0 || !cJSON_AddStringToObject(c->result, "notebook_id", id) ||
            !cJSON_AddNumberToObject(c->result, "revision", (double)m.revision))
                return -ENOMEM;
        return 0;
}

static int m_demo_reset(Call *c)
{
        StoreMut m = STORE_MUT_INIT;
        cJSON *nb = NULL;
        int r;

        if ((r = get_expected(c, &m)) < 0)
                return r;
        r = store_demo_reset(c->rpc->store, c->user_id, &m, &nb);
        c->current_revision = m.revision;
        if (r < 0)
                return store_error(c, r, NULL, NULL, NULL);
        call_changed(c, cJSON_GetObjectItem(nb, "id")->valuestring);
        if (result_new(c) < 0 || !add_item(c->result, "notebook", nb))
                return -ENOMEM;
        return 0;
}

static int m_cell_create(Call *c)
{
        _cleanup_(cJSON_Deletep) cJSON *cell = NULL;
        char uuid[UUID_STRING_MAX];
        StoreMut m = STORE_MUT_INIT;
        const char *id, *cell_id;
        cJSON *stored = NULL;
        CellPlace place;
        int64_t index;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 || (r = get_expected(c, &m)) < 0 ||
            (r = get_id(c, "cell_id", false, &cell_id)) < 0)
                return r;
        if (r == 0) {
                if ((r = uuid_v4_string(uuid)) < 0)
                        return r;
                cell_id = uuid;
        }
        if ((r = get_place(c, &place)) < 0 ||
            (r = model_cell_fields(c->params, true, &cell, NULL, &c->error)) < 0)
                return r;
        if (!cJSON_AddStringToObject(cell, "id", cell_id))
                return -ENOMEM;
        r = store_cell_create(c->rpc->store, c->user_id, id, &m, cell, &place, &stored, &index);
        c->current_revision = m.revision;
        if (r < 0)
                return store_error(c, r, id, r == -EEXIST ? cell_id : NULL, place.after);
        call_changed(c, id);
        if (result_mut(c, id, &m) < 0 || !cJSON_AddNumberToObject(c->result, "position", (double)index) ||
            !add_item(c->result, "cell", stored))
                return -ENOMEM;
        return 0;
}

static int m_cell_update(Call *c)
{
        _cleanup_(cJSON_Deletep) cJSON *fields = NULL;
        StoreMut m = STORE_MUT_INIT;
        const char *id, *cell_id;
        cJSON *cell = NULL;
        unsigned count;
        int64_t index;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 ||
            (r = get_id(c, "cell_id", true, &cell_id)) < 0 || (r = get_expected(c, &m)) < 0 ||
            (r = model_cell_fields(c->params, false, &fields, &count, &c->error)) < 0)
                return r;
        if (count == 0)
                return model_error(&c->error, RPC_INVALID_PARAMS, NULL, -1,
                                   "Nothing to update: give a cell field.");
        r = store_cell_update(c->rpc->store, c->user_id, id, cell_id, &m, fields, &cell, &index);
        c->current_revision = m.revision;
        if (r < 0)
                return store_error(c, r, id, cell_id, NULL);
        call_changed(c, id);
        if (result_mut(c, id, &m) < 0 || !cJSON_AddNumberToObject(c->result, "position", (double)index) ||
            !add_item(c->result, "cell", cell))
                return -ENOMEM;
        return 0;
}

static int m_cell_delete(Call *c)
{
        StoreMut m = STORE_MUT_INIT;
        const char *id, *cell_id;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 ||
            (r = get_id(c, "cell_id", true, &cell_id)) < 0 || (r = get_expected(c, &m)) < 0)
                return r;
        r = store_cell_delete(c->rpc->store, c->user_id, id, cell_id, &m);
        c->current_revision = m.revision;
        if (r < 0)
                return store_error(c, r, id, cell_id, NULL);
        call_changed(c, id);
        return result_mut(c, id, &m);
}

static int m_cell_move(Call *c)
{
        StoreMut m = STORE_MUT_INIT;
        const char *id, *cell_id;
        CellPlace place;
        int64_t index;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 ||
            (r = get_id(c, "cell_id", true, &cell_id)) < 0 || (r = get_expected(c, &m)) < 0 ||
            (r = get_place(c, &place)) < 0)
                return r;
        if (r == 0)
                return model_error(&c->error, RPC_INVALID_PARAMS, "position", -1,
                                   "Give \"position\" or \"after_cell_id\".");
        r = store_cell_move(c->rpc->store, c->user_id, id, cell_id, &m, &place, &index);
        c->current_revision = m.revision;
        if (r < 0)
                return store_error(c, r, id, r == -ERANGE ? NULL : cell_id, place.after);
        call_changed(c, id);
        if (result_mut(c, id, &m) < 0 || !cJSON_AddNumberToObject(c->result, "position", (double)index))
                return -ENOMEM;
        return 0;
}

static int m_notebook_graph(Call *c)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = NULL;
        const char *id;
        cJSON *graph = NULL, *item;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0)
                return r;
        r = store_notebook_get(c->rpc->store, c->user_id, id, &nb);
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        r = graph_compute(cJSON_GetObjectItemCaseSensitive(nb, "cells"), &graph);
        if (r == -E2BIG)
                return model_error(&c->error, RPC_TOO_LARGE, NULL, GRAPH_MAX_LINKS,
                                   "The cells share more than %u variable links; the graph is too large.",
                                   GRAPH_MAX_LINKS);
        if (r < 0)
                return model_error(&c->error, RPC_INTERNAL_ERROR, NULL, -1, "Cannot compute the graph.");
        if (result_new(c) < 0 || !cJSON_AddStringToObject(c->result, "notebook_id", id) ||
            !cJSON_AddItemToObject(c->result, "revision",
                                   cJSON_Duplicate(cJSON_GetObjectItem(nb, "revision"), false))) {
                cJSON_Delete(graph);
                return -ENOMEM;
        }
        /* Move edges, order and cycles over. */
        while ((item = graph->child)) {
                cJSON_DetachItemViaPointer(graph, item);
                cJSON_AddItemToObject(c->result, item->string, item);
        }
        cJSON_Delete(graph);
        return 0;
}

static int m_daemon_status(Call *c)
{
        Rpc *rpc = c->rpc;
        const UserBinding *b = rpc->config ? config_find_uid(rpc->config, c->peer->uid) : NULL;
        cJSON *peer, *ids;

        if (result_new(c) < 0 || !cJSON_AddStringToObject(c->result, "version", VERSION_STRING) ||
            !cJSON_AddNumberToObject(c->result, "pid", getpid()) ||
            !cJSON_AddNumberToObject(c->result, "uptime_sec",
                                     (double)((now_monotonic_usec() - rpc->started_usec) / USEC_PER_SEC)) ||
            !cJSON_AddNumberToObject(c->result, "schema_version", store_schema_version(rpc->store)) ||
            !cJSON_AddStringToObject(c->result, "durability",
                                     !rpc->config || rpc->config->durability_full ? "full" : "normal"))
                return -ENOMEM;
        /* Unprivileged peers see the per-notebook states of their default user only. */
        if (rpc->sync_status) {
                if (rpc->sync_status(rpc->sync_userdata,
                                     c->peer->privileged  ? NULL
                                     : b && b->n_user_ids ? b->user_ids[0]
                                                          : "",
                                     c->result) < 0)
                        return -ENOMEM;
        } else {
                cJSON *sync = cJSON_AddObjectToObject(c->result, "sync");

                if (!sync || !cJSON_AddStringToObject(sync, "mode", "local-only"))
                        return -ENOMEM;
        }
        /* The daemon-wide counters tell of other users' activity: for privileged peers only. */
        if (c->peer->privileged &&
            (!cJSON_AddNumberToObject(c->result, "connections", rpc->connections) ||
             !cJSON_AddNumberToObject(c->result, "watches", rpc->watches) ||
             !cJSON_AddNumberToObject(c->result, "requests", (double)rpc->requests) ||
             !cJSON_AddNumberToObject(c->result, "transactions", (double)rpc->transactions)))
                return -ENOMEM;
        peer = cJSON_AddObjectToObject(c->result, "peer");
        if (!peer || !cJSON_AddNumberToObject(peer, "uid", c->peer->uid) ||
            !cJSON_AddBoolToObject(peer, "privileged", c->peer->privileged) ||
            !(ids = cJSON_AddArrayToObject(peer, "user_ids")))
                return -ENOMEM;
        for (size_t i = 0; b && i < b->n_user_ids; i++)
                if (!cJSON_AddItemToArray(ids, cJSON_CreateString(b->user_ids[i])))
                        return -ENOMEM;
        if (c->peer->privileged) {
                StoreStats st;
                int r = store_stats(rpc->store, &st);

                if (r < 0)
                        return store_error(c, r, NULL, NULL, NULL);
                if (!cJSON_AddStringToObject(c->result, "state_dir", rpc->state_dir) ||
                    !cJSON_AddStringToObject(c->result, "database", rpc->db_path) ||
                    !cJSON_AddNumberToObject(c->result, "notebooks", (double)st.notebooks) ||
                    !cJSON_AddNumberToObject(c->result, "users", (double)st.users))
                        return -ENOMEM;
        }
        return 0;
}

/* The daemon-wide metrics (doc/protocol.md, "Metrics"): like daemon.status's daemon-wide
 * counters, they tell of other users' activity, so they are for privileged peers only. */
static int m_daemon_metrics(Call *c)
{
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        if (!c->peer->privileged)
                return model_error(&c->error, RPC_ACCESS_DENIED, NULL, -1,
                                   "Access denied: daemon.metrics is for privileged peers.");
        if (!c->rpc->metrics_render)
                return model_error(&c->error, RPC_INTERNAL_ERROR, NULL, -1, "No metrics to render.");
        r = c->rpc->metrics_render(c->rpc->metrics_userdata, METRICS_FORMAT_TEXT, &text, &len);
        if (r < 0)
                return r;
        if (result_new(c) < 0 || !cJSON_AddStringToObject(c->result, "text", text))
                return -ENOMEM;
        return 0;
}

/* ---- watches ------------------------------------------------------------------------------ */

static int peer_watch_find(const RpcPeer *peer, const char *user_id, const char *notebook_id)
{
        for (unsigned i = 0; i < peer->n_watches; i++)
                if (streq(peer->watches[i].user_id, user_id) &&
                    streq_ptr(peer->watches[i].notebook_id, notebook_id))
                        return (int)i;
        return -ENOENT;
}

int rpc_peer_apply_watch(RpcPeer *peer, const cJSON *w)
{
        bool on = cJSON_IsTrue(cJSON_GetArrayItem(w, 0));
        const char *user = cJSON_GetArrayItem(w, 1)->valuestring;
        const char *nb = cJSON_GetStringValue(cJSON_GetArrayItem(w, 2));
        int i = peer_watch_find(peer, user, nb);
        RpcWatch *n;

        if (!on) {
                if (i >= 0) {
                        free(peer->watches[i].user_id);
                        free(peer->watches[i].notebook_id);
                        peer->watches[i] = peer->watches[--peer->n_watches];
                }
                return 0;
        }
        if (i >= 0 || peer->n_watches >= MAX_WATCHES) /* watching twice is watching once */
                return 0;
        n = &peer->watches[peer->n_watches];
        n->user_id = strdup(user);
        n->notebook_id = nb ? strdup(nb) : NULL;
        if (!n->user_id || (nb && !n->notebook_id)) {
                free(n->user_id);
                free(n->notebook_id);
                return -ENOMEM;
        }
        peer->n_watches++;
        return 0;
}

void rpc_peer_done(RpcPeer *peer)
{
        for (unsigned i = 0; i < peer->n_watches; i++) {
                free(peer->watches[i].user_id);
                free(peer->watches[i].notebook_id);
        }
        peer->n_watches = 0;
}

/* notebook.watch and notebook.unwatch: the server applies the change to the connection once the
 * request has run. */
static int watch_change(Call *c, bool on)
{
        const char *id = NULL;
        int r;

        if ((r = get_id(c, "notebook_id", false, &id)) < 0)
                return r;
        if (on && c->peer->n_watches + c->peer->watches_pending >= MAX_WATCHES &&
            peer_watch_find(c->peer, c->user_id, id) < 0)
                return model_error(&c->error, RPC_TOO_LARGE, NULL, MAX_WATCHES,
                                   "A connection may hold at most %d watches.", MAX_WATCHES);
        c->watch = cJSON_CreateArray();
        if (!c->watch || !cJSON_AddItemToArray(c->watch, cJSON_CreateBool(on)) ||
            !cJSON_AddItemToArray(c->watch, cJSON_CreateString(c->user_id)) ||
            !cJSON_AddItemToArray(c->watch, id ? cJSON_CreateString(id) : cJSON_CreateNull()))
                return -ENOMEM;
        if (result_new(c) < 0 || !cJSON_AddStringToObject(c->result, "user_id", c->user_id) ||
            !(id ? cJSON_AddStringToObject(c->result, "notebook_id", id)
                 : cJSON_AddNullToObject(c->result, "notebook_id")) ||
            !cJSON_AddBoolToObject(c->result, "watching", on))
                return -ENOMEM;
        return 0;
}

static int m_notebook_watch(Call *c)
{
        return watch_change(c, true);
}

static int m_notebook_unwatch(Call *c)
{
        return watch_change(c, false);
}

/* A privileged peer pulls every user; another one its own user_ids; an unbound one nothing. */
static int m_sync_pull(Call *c)
{
        const UserBinding *b = c->rpc->config ? config_find_uid(c->rpc->config, c->peer->uid) : NULL;

        if (!c->peer->privileged && (!b || b->n_user_ids == 0))
                return model_error(&c->error, RPC_ACCESS_DENIED, NULL, -1,
                                   "Access denied: no user_id is bound to uid %u.", (unsigned)c->peer->uid);
        if (!c->rpc->sync_pull)
                return model_error(&c->error, RPC_NO_REMOTE, NULL, -1,
                                   "No remote is configured: notebookd runs local-only.");
        if (c->peer->privileged)
                c->rpc->sync_pull(c->rpc->sync_userdata, NULL);
        else
                for (size_t i = 0; i < b->n_user_ids; i++)
                        c->rpc->sync_pull(c->rpc->sync_userdata, b->user_ids[i]);
        if (result_new(c) < 0 || !cJSON_AddBoolToObject(c->result, "started", true))
                return -ENOMEM;
        return 0;
}

/* Conflicts a merge left in the user's notebooks (all of them, or notebook_id's). */
static int m_sync_conflicts(Call *c)
{
        const char *id = NULL;
        cJSON *list = NULL;
        int r;

        if ((r = get_id(c, "notebook_id", false, &id)) < 0)
                return r;
        if (id && (r = store_notebook_exists(c->rpc->store, c->user_id, id)) <= 0)
                return store_error(c, r == 0 ? -ENOENT : r, id, NULL, NULL);
        r = store_sync_conflicts(c->rpc->store, c->user_id, id, MAX_CONFLICTS_LISTED, &list);
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        if (result_new(c) < 0 || !add_item(c->result, "conflicts", list))
                return -ENOMEM;
        return 0;
}

/* Finds a cell of nb by id. */
static const cJSON *cell_of(const cJSON *nb, const char *cell_id)
{
        const cJSON *cell;

        cJSON_ArrayForEach(cell,
                           cJSON_GetObjectItemCaseSensitive(
                                   nb, "cells")) if (streq(cJSON_GetObjectItem(cell, "id")->valuestring,
                                                           cell_id)) return cell;
        return NULL;
}

/* One conflict resolved as keep says; ordinary edits, so the choice syncs like any other. */
static int resolve_one(Call *c, const char *id, const cJSON *conflict, const char *keep, StoreMut *m)
{
        const cJSON *cell = cJSON_GetObjectItem(conflict, "cell_id"),
                    *copy = cJSON_GetObjectItem(conflict, "copy_id"),
                    *field = cJSON_GetObjectItem(conflict, "field");
        char subject[MAX_ID_BYTES + 8];
        int r = 0;

        if (cell && copy && !streq(keep, "both")) {
                _cleanup_(cJSON_Deletep) cJSON *nb = NULL, *fields = NULL;
                const cJSON *copy_cell;

                r = store_notebook_get(c->rpc->store, c->user_id, id, &nb);
                if (r < 0)
                        return r;
                copy_cell = cell_of(nb, copy->valuestring);
                if (copy_cell && streq(keep, "local") && cell_of(nb, cell->valuestring)) {
                        unsigned n;

                        r = model_cell_fields(copy_cell, false, &fields, &n, &c->error);
                        if (r >= 0)
                                r = store_cell_update(c->rpc->store, c->user_id, id, cell->valuestring, m,
                                                      fields, NULL, NULL);
                        if (r < 0)
                                return r;
                        m->expected_revision = -1;
                } else if (copy_cell && streq(keep, "local")) {
                        /* The remote's version was deleted since: ours is all there is; keep it. */
                        copy_cell = NULL;
                }
                if (copy_cell) {
                        r = store_cell_delete(c->rpc->store, c->user_id, id, copy->valuestring, m);
                        if (r < 0)
                                return r;
                        m->expected_revision = -1;
                }
        } else if (field && streq(keep, "local")) {
                _cleanup_(cJSON_Deletep) cJSON *fields = cJSON_CreateObject();
                const cJSON *local = cJSON_GetObjectItem(conflict, "local");

                if (!fields ||
                    !cJSON_AddItemToObject(fields, field->valuestring,
                                           local ? cJSON_Duplicate(local, true) : cJSON_CreateNull()))
                        return -ENOMEM;
                r = store_notebook_update(c->rpc->store, c->user_id, id, m, fields, NULL, NULL);
                if (r < 0)
                        return r;
                m->expected_revision = -1;
        }
        snprintf(subject, sizeof(subject), "%s:%s", cell ? "cell" : "field",
                 (cell ? cell : field)->valuestring);
        r = store_sync_conflict_drop(c->rpc->store, c->user_id, id, subject);
        return r < 0 ? r : 0;
}

/* Resolves the conflicts of a notebook (or one of them: cell_id or field) by keeping the local
 * version, the remote's, or both (cells only: the copy stays as a cell of its own). */
static int m_sync_resolve(Call *c)
{
        _cleanup_(cJSON_Deletep) cJSON *list = NULL;
        StoreMut m = STORE_MUT_INIT;
        const char *id, *cell_id = NULL, *field = NULL, *keep;
        const cJSON *conflict;
        int64_t before = -1;
        unsigned resolved = 0;
        int r;

        if ((r = get_id(c, "notebook_id", true, &id)) < 0 ||
            (r = get_id(c, "cell_id", false, &cell_id)) < 0 || (r = get_expected(c, &m)) < 0)
                return r;
        r = model_get_string(c->params, "field", 32, false, &field, NULL, &c->error);
        if (r < 0)
                return r;
        r = model_get_string(c->params, "keep", 16, false, &keep, NULL, &c->error);
        if (r < 0)
                return r;
        if (r == 0 || (!streq(keep, "local") && !streq(keep, "server") && !streq(keep, "both")))
                return model_error(&c->error, RPC_INVALID_PARAMS, "keep", -1,
                                   "\"keep\" must be \"local\", \"server\" or \"both\".");
        if (cell_id && field)
                return model_error(&c->error, RPC_INVALID_PARAMS, "field", -1,
                                   "Give \"cell_id\" or \"field\", not both.");
        if (field && streq(keep, "both"))
                return model_error(&c->error, RPC_INVALID_PARAMS, "keep", -1,
                                   "A notebook field holds one value: keep \"local\" or \"server\".");
        r = store_notebook_head(c->rpc->store, c->user_id, id, &before, NULL);
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        if (m.expected_revision >= 0 && m.expected_revision != before) {
                c->current_revision = before;
                return store_error(c, -ESTALE, id, NULL, NULL);
        }
        r = store_sync_conflicts(c->rpc->store, c->user_id, id, MAX_CONFLICTS_LISTED, &list);
        if (r < 0)
                return store_error(c, r, id, NULL, NULL);
        cJSON_ArrayForEach(conflict, list)
        {
                const cJSON *cc = cJSON_GetObjectItem(conflict, "cell_id"),
                            *cf = cJSON_GetObjectItem(conflict, "field");

                if ((cell_id && (!cc || !streq(cc->valuestring, cell_id))) ||
                    (field && (!cf || !streq(cf->valuestring, field))))
                        continue;
                /* "both" applies to cells; fields resolved by a "both" for the whole notebook keep
                 * the remote's value, which is the one in place. */
                r = resolve_one(c, id, conflict, cf && streq(keep, "both") ? "server" : keep, &m);
                if (r < 0) {
                        c->current_revision = m.revision;
                        return c->error.code ? r : store_error(c, r, id, NULL, NULL);
                }
                resolved++;
        }
        if (resolved == 0)
                return model_error(&c->error, RPC_NOT_FOUND,
                                   cell_id ? "cell_id"
                                   : field ? "field"
                                           : NULL,
                                   -1, "No conflict to resolve there.");
        if (!m.updated_at[0]) {
                /* Only records dropped: the notebook is as it was. */
                _cleanup_(cJSON_Deletep) cJSON *nb = NULL;
                const cJSON *at;

                r = store_notebook_get(c->rpc->store, c->user_id, id, &nb);
                if (r < 0)
                        return store_error(c, r, id, NULL, NULL);
                at = cJSON_GetObjectItemCaseSensitive(nb, "updated_at");
                m.revision = before;
                snprintf(m.updated_at, sizeof(m.updated_at), "%s",
                         cJSON_IsString(at) ? at->valuestring : "");
        } else
                call_changed(c, id);
        if (result_mut(c, id, &m) < 0 || !cJSON_AddNumberToObject(c->result, "resolved", resolved))
                return -ENOMEM;
        return 0;
}

static const Method methods[] = {
        { "notebook.list", m_notebook_list, true, true,
          (const char *const[]){ "user_id", "limit", "cursor", NULL } },
        { "notebook.get", m_notebook_get, false, true,
          (const char *const[]){ "user_id", "notebook_id", "revision", NULL } },
        { "notebook.create", m_notebook_create, true, true,
          (const char *const[]){ "user_id", "notebook_id", "name", "db_conn_string", "ttl", "cells",
                                 NULL } },
        { "notebook.update", m_notebook_update, true, true,
          (const char *const[]){ "user_id", "notebook_id", "expected_revision", "name", "db_conn_string",
                                 "ttl", "cells", NULL } },
        { "notebook.history", m_notebook_history, false, true,
          (const char *const[]){ "user_id", "notebook_id", "limit", "before", NULL } },
        { "notebook.restore", m_notebook_restore, true, true,
          (const char *const[]){ "user_id", "notebook_id", "revision", "expected_revision", NULL } },
        { "notebook.delete", m_notebook_delete, true, true,
          (const char *const[]){ "user_id", "notebook_id", "expected_revision", NULL } },
        { "cell.create", m_cell_create, true, true,
          (const char *const[]){ "user_id", "notebook_id", "expected_revision", "cell_id", "position",
                                 "after_cell_id", CELL_KEYS, NULL } },
        { "cell.update", m_cell_update, true, true,
          (const char *const[]){ "user_id", "notebook_id", "cell_id", "expected_revision", CELL_KEYS,
                                 NULL } },
        { "cell.delete", m_cell_delete, true, true,
          (const char *const[]){ "user_id", "notebook_id", "cell_id", "expected_revision", NULL } },
        { "cell.move", m_cell_move, true, true,
          (const char *const[]){ "user_id", "notebook_id", "cell_id", "expected_revision", "position",
                                 "after_cell_id", NULL } },
        { "demo.reset", m_demo_reset, true, true,
          (const char *const[]){ "user_id", "expected_revision", NULL } },
        { "notebook.graph", m_notebook_graph, false, true,
          (const char *const[]){ "user_id", "notebook_id", NULL } },
        { "notebook.watch", m_notebook_watch, false, true,
          (const char *const[]){ "user_id", "notebook_id", NULL } },
        { "notebook.unwatch", m_notebook_unwatch, false, true,
          (const char *const[]){ "user_id", "notebook_id", NULL } },
        { "sync.pull", m_sync_pull, false, false, (const char *const[]){ NULL } },
        { "sync.conflicts", m_sync_conflicts, false, true,
          (const char *const[]){ "user_id", "notebook_id", NULL } },
        { "sync.resolve", m_sync_resolve, true, true,
          (const char *const[]){ "user_id", "notebook_id", "cell_id", "field", "keep", "expected_revision",
                                 NULL } },
        { "daemon.status", m_daemon_status, false, false, (const char *const[]){ NULL } },
        { "daemon.metrics", m_daemon_metrics, false, false, (const char *const[]){ NULL } },
};
_Static_assert(ELEMENTSOF(methods) < RPC_METHOD_SLOTS, "a slot per method, and one for the others");

static const int error_codes[] = {
        RPC_PARSE_ERROR,    RPC_INVALID_REQUEST, RPC_METHOD_NOT_FOUND, RPC_INVALID_PARAMS,
        RPC_INTERNAL_ERROR, RPC_LINE_TOO_LONG,   RPC_TOO_DEEP,         RPC_BAD_ENCODING,
        RPC_TRUNCATED,      RPC_NOT_FOUND,       RPC_CONFLICT,         RPC_ACCESS_DENIED,
        RPC_TOO_LARGE,      RPC_EXISTS,          RPC_STORAGE,          RPC_NO_REMOTE,
};
_Static_assert(ELEMENTSOF(error_codes) < RPC_ERROR_SLOTS, "a slot per code, and one for the others");

size_t rpc_method_slots(void)
{
        return ELEMENTSOF(methods) + 1;
}

const char *rpc_method_name(size_t i)
{
        return i < ELEMENTSOF(methods) ? methods[i].name : "other";
}

size_t rpc_error_slots(void)
{
        return ELEMENTSOF(error_codes) + 1;
}

int rpc_error_code(size_t i)
{
        return i < ELEMENTSOF(error_codes) ? error_codes[i] : 0;
}

size_t rpc_error_slot(int code)
{
        size_t i = 0;

        while (i < ELEMENTSOF(error_codes) && error_codes[i] != code)
                i++;
        return i;
}

/* ---- one request --------------------------------------------------------------------------- */

static const Method *method_find(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (streq(methods[i].name, name))
                        return &methods[i];
        return NULL;
}

/* The integers a double holds exactly, and so every client reads back as sent: +-(2^53 - 1). */
#define ID_INT_MAX 9007199254740991LL

/* 0 for a valid request id; -ERANGE for a number beyond +-ID_INT_MAX (a double that large has no
 * fraction: it is an integer out of range, or infinite); -EINVAL for any other. */
static int id_check(const cJSON *id)
{
        double d;

        if (cJSON_IsNull(id) || cJSON_IsString(id))
                return 0;
        if (!cJSON_IsNumber(id))
                return -EINVAL;
        d = id->valuedouble;
        if (d > (double)ID_INT_MAX || d < -(double)ID_INT_MAX)
                return -ERANGE;
        /* NaN passes the range test; converting it would be undefined. */
        if (isnan(d) || d != (double)(long long)d)
                return -EINVAL;
        return 0;
}

/* Runs a parsed request; the reply goes into ret (nothing for a notification). */
static int request_run(Rpc *rpc, const RpcPeer *peer, const cJSON *req, const char *line, size_t len,
                       RpcReply *ret)
{
        static const cJSON null_id = { .type = cJSON_NULL };
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id"), *v, *params;
        const Method *m;
        Call c = { .rpc = rpc, .peer = peer, .error.limit = -1 };
        bool notification = !id;
        int r;

        v = cJSON_GetObjectItemCaseSensitive(req, "jsonrpc");
        if (!cJSON_IsString(v) || !streq(v->valuestring, "2.0")) {
                model_error(&c.error, RPC_INVALID_REQUEST, NULL, -1, "\"jsonrpc\" must be \"2.0\".");
                goto fail;
        }
        r = id ? id_check(id) : 0;
        if (r < 0) {
                id = &null_id;
                if (r == -ERANGE)
                        model_error(&c.error, RPC_INVALID_REQUEST, NULL, -1,
                                    "\"id\": an integer id must be between %lld and %lld.", -ID_INT_MAX,
                                    ID_INT_MAX);
                else
                        model_error(&c.error, RPC_INVALID_REQUEST, NULL, -1,
                                    "\"id\" must be a string, an integer or null.");
                goto fail;
        }
        r = model_check_unique_keys(req, &c.error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                goto fail;
        for (v = req->child; v; v = v->next)
                if (!streq(v->string, "jsonrpc") && !streq(v->string, "id") && !streq(v->string, "method") &&
                    !streq(v->string, "params")) {
                        model_error(&c.error, RPC_INVALID_REQUEST, NULL, -1,
                                    "Unknown member \"%.64s\" in the request.", v->string);
                        goto fail;
                }
        v = cJSON_GetObjectItemCaseSensitive(req, "method");
        if (!cJSON_IsString(v)) {
                model_error(&c.error, RPC_INVALID_REQUEST, NULL, -1, "\"method\" must be a string.");
                goto fail;
        }
        m = method_find(v->valuestring);
        if (m)
                ret->method = (unsigned)(m - methods);
        if (!m) {
                model_error(&c.error, RPC_METHOD_NOT_FOUND, NULL, -1, "Unknown method \"%.64s\".",
                            v->valuestring);
                goto fail;
        }
        params = cJSON_GetObjectItemCaseSensitive(req, "params");
        if (params && !cJSON_IsObject(params)) {
                model_error(&c.error, RPC_INVALID_REQUEST, NULL, -1, "\"params\" must be an object.");
                goto fail;
        }
        c.params = params ? params : &(const cJSON){ .type = cJSON_Object };
        if (model_check_keys(c.params, m->keys, &c.error) < 0)
                goto fail;
        r = model_check_numbers(line, len, c.params, &c.error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                goto fail;
        if (m->needs_user && resolve_user(&c) < 0)
                goto fail;

        r = m->func(&c);
        if (r == -ENOMEM || (r < 0 && c.error.code == 0))
                model_error(&c.error, RPC_INTERNAL_ERROR, NULL, -1, "Internal error: %s.", strerror(-r));
        if (r < 0)
                goto fail;

        if (!notification) {
                _cleanup_(cJSON_Deletep) cJSON *msg = envelope(id);

                if (!msg || !cJSON_AddItemToObject(msg, "result", c.result)) {
                        cJSON_Delete(c.result);
                        return -ENOMEM;
                }
                c.result = NULL;
                ret->text = print_line(msg);
                if (!ret->text)
                        return -ENOMEM;
        }
        cJSON_Delete(c.result);
        ret->changed = TAKE_PTR(c.changed);
        ret->watch = TAKE_PTR(c.watch);
        /* If the batch does not commit, a write did not happen, and a read may have seen writes of
         * the batch that did not happen either: neither reply may stand. The error that replaces
         * it is made only then (rpc_reply_abort_text()). */
        if (!notification) {
                ret->abortable = true;
                ret->abort_writes = m->writes;
                ret->abort_id = cJSON_Duplicate(id, true);
                if (!ret->abort_id)
                        return -ENOMEM;
        }
        return 0;

fail:
        cJSON_Delete(c.result);
        cJSON_Delete(c.changed);
        cJSON_Delete(c.watch);
        ret->failed = true;
        rpc->method_errors[ret->method][rpc_error_slot(c.error.code)]++;
        /* A notification gets no reply, unless it is no valid request at all: then, as for a
         * line that is not JSON, the error with a null id (JSON-RPC 2.0, section 5). */
        if (notification) {
                if (c.error.code != RPC_INVALID_REQUEST)
                        return 0;
                id = &null_id;
        }
        ret->text = call_error_reply(id, &c);
        return ret->text ? 0 : -ENOMEM;
}

int rpc_handle(Rpc *rpc, const RpcPeer *peer, const char *line, size_t len, RpcReply *ret)
{
        _cleanup_(cJSON_Deletep) cJSON *req = NULL;
        int r;

        /* Counted under "other" until the request names a known method. */
        *ret = (RpcReply){ .method = ELEMENTSOF(methods) };
        rpc->requests++;

        /* Checked before parsing, so that cJSON never sees deep nesting or bytes it would accept
         * but the store must not keep (invalid UTF-8, NUL). */
        r = frame_check_line(line, len, MAX_JSON_DEPTH);
        if (r == -ELOOP)
                ret->text = rpc_error_line(RPC_TOO_DEEP, "The request nests arrays and objects too deeply.",
                                           "limit", MAX_JSON_DEPTH);
        else if (r == -E2BIG)
                ret->text = rpc_error_line(RPC_TOO_LARGE, "The request holds too many JSON values.", "limit",
                                           MAX_JSON_VALUES);
        else if (r < 0)
                ret->text = rpc_error_line(RPC_BAD_ENCODING,
                                           "The request is not valid UTF-8 or contains a NUL character.",
                                           NULL, 0);
        ret->failed = r < 0;
        if (r < 0) {
                rpc->method_requests[ret->method]++;
                rpc->method_errors[ret->method][rpc_error_slot(r == -ELOOP   ? RPC_TOO_DEEP
                                                               : r == -E2BIG ? RPC_TOO_LARGE
                                                                             : RPC_BAD_ENCODING)]++;
                return ret->text ? 0 : -ENOMEM;
        }

        /* The terminating NUL is part of the length so that cJSON refuses anything after the
         * value ("{...} {...}" on one line is not one request). */
        req = cJSON_ParseWithLengthOpts(line, len + 1, NULL, true);
        ret->failed = !cJSON_IsObject(req);
        if (ret->failed) {
                rpc->method_requests[ret->method]++;
                rpc->method_errors[ret->method]
                                  [rpc_error_slot(req ? RPC_INVALID_REQUEST : RPC_PARSE_ERROR)]++;
        }
        if (!req) {
                ret->text = rpc_error_line(RPC_PARSE_ERROR, "The request is not valid JSON.", NULL, 0);
                return ret->text ? 0 : -ENOMEM;
        }
        if (!cJSON_IsObject(req)) {
                ret->text = rpc_error_line(RPC_INVALID_REQUEST,
                                           cJSON_IsArray(req) ? "Batch requests are not supported."
                                                              : "A request must be a JSON object.",
                                           NULL, 0);
                return ret->text ? 0 : -ENOMEM;
        }
        r = request_run(rpc, peer, req, line, len, ret);
        rpc->method_requests[ret->method]++;
        return r;
}
