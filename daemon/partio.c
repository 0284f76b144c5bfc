/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "ddb.h"
#include "partio.h"
#include "parts.h"
#include "sigv4.h"
#include "util.h"

/* A part that failed for a passing reason is asked for again, as the SDKs' standard retry mode
 * does: at most 3 attempts, full jitter over an exponential backoff. */
#define FETCH_ATTEMPTS   3
#define FETCH_BASE_USEC  (100 * USEC_PER_MSEC)
#define FETCH_LIMIT_USEC (20 * USEC_PER_SEC)

char *partio_owner(const char *user_id, const char *notebook_id)
{
        char *o = NULL;

        return asprintf(&o, "%s/%s", user_id, notebook_id) < 0 ? NULL : o;
}

/* ---- fetching ------------------------------------------------------------------------------ */

typedef struct Fetch {
        Remote *remote;
        char *table, *owner;
        cJSON *item;
        Parts have;
        char **want;
        size_t n_want, next;
        unsigned attempt;
        uint64_t *fetched;
        PartioFetchFunc done;
        void *userdata;
        char message[256];
} Fetch;

static void fetch_free(Fetch *f)
{
        for (size_t i = 0; i < f->n_want; i++)
                free(f->want[i]);
        free(f->want);
        parts_done(&f->have);
        free(f->table);
        free(f->owner);
        free(f);
}

static int want_add(const char *hash, void *userdata)
{
        Fetch *f = userdata;
        char **v;

        for (size_t i = 0; i < f->n_want; i++)
                if (streq(f->want[i], hash))
                        return 0;
        v = reallocarray(f->want, f->n_want + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        f->want = v;
        if (!(v[f->n_want] = strdup(hash)))
                return -ENOMEM;
        f->n_want++;
        return 0;
}

static void fetch_finish(Fetch *f, int error, DdbErrorClass cls)
{
        if (error == 0) {
                error = parts_join(f->item, &f->have);
                if (error == -EBADMSG)
                        snprintf(f->message, sizeof(f->message),
                                 "the parts of %s do not decode to what its item names", f->owner);
        }
        f->done(f->userdata, error, cls, f->message[0] ? f->message : NULL, f->item);
        fetch_free(f);
}

static void on_fetch_reply(void *owner, void *userdata, RemoteReply *rep);

static int fetch_next(Fetch *f, uint64_t delay_usec)
{
        cJSON *body = ddb_part_get_body(f->table, f->owner, f->want[f->next]);
        int r = body ? remote_call_after(f->remote, delay_usec, "GetItem", body, on_fetch_reply, f, f)
                     : -ENOMEM;

        cJSON_Delete(body);
        return r;
}

static void on_fetch_reply(void *owner, void *userdata, RemoteReply *rep)
{
        Fetch *f = userdata;
        const char *hash = f->want[f->next];
        _cleanup_free_ unsigned char *data = NULL;
        const cJSON *item;
        char check[65];
        size_t size;
        int r;

        (void)owner;
        if (rep->error == -ECANCELED)
                return fetch_finish(f, -ECANCELED, DDB_RETRYABLE);
        if ((rep->error < 0 || rep->cls == DDB_RETRYABLE || rep->cls == DDB_THROTTLING) &&
            ++f->attempt < FETCH_ATTEMPTS) {
                r = fetch_next(f, random_below(MIN(FETCH_LIMIT_USEC, FETCH_BASE_USEC << f->attempt) + 1));
                if (r < 0)
                        fetch_finish(f, r, DDB_RETRYABLE);
                return;
        }
        if (rep->error < 0 || rep->cls != DDB_OK) {
                snprintf(f->message, sizeof(f->message), "part %.12s of %s: %s", hash, f->owner,
                         rep->type && streq(rep->type, "ResourceNotFoundException")
                                 ? "the parts table does not exist ('notebookctl table create' makes it)"
                         : rep->message ? rep->message
                                        : "request failed");
                return fetch_finish(f, -EIO, rep->error < 0 ? DDB_RETRYABLE : rep->cls);
        }
        item = cJSON_GetObjectItemCaseSensitive(rep->body, "Item");
        if (!item) {
                snprintf(f->message, sizeof(f->message), "part %.12s of %s is missing from the parts table",
                         hash, f->owner);
                return fetch_finish(f, -ENOENT, DDB_OK);
        }
        r = ddb_part_data(item, &data, &size);
        if (r >= 0)
                r = sigv4_sha256_hex(data, size, check);
        if (r >= 0 && !streq(check, hash))
                r = -EBADMSG;
        if (r == -EBADMSG)
                snprintf(f->message, sizeof(f->message),
                         "part %.12s of %s is corrupt: its bytes do not hash to its name", hash, f->owner);
        if (r >= 0)
                r = parts_add(&f->have, data, size);
        if (r >= 0)
                (*f->fetched)++;
        f->attempt = 0;
        if (r >= 0 && ++f->next < f->n_want)
                r = fetch_next(f, 0);
        if (r < 0 || f->next == f->n_want)
                fetch_finish(f, r < 0 ? r : 0, DDB_OK);
}

int partio_fetch(Remote *remote, const char *table, const char *owner, cJSON *item, uint64_t *fetched,
                 PartioFetchFunc done, void *userdata)
{
        Fetch *f = calloc(1, sizeof(*f));
        int r;

        if (!f)
                return -ENOMEM;
        *f = (Fetch){
                .remote = remote, .item = item, .fetched = fetched, .done = done, .userdata = userdata
        };
        f->table = strdup(table);
        f->owner = strdup(owner);
        r = f->table && f->owner ? parts_check(item) : -ENOMEM;
        if (r >= 0)
                r = parts_foreach_name(item, want_add, f);
        if (r >= 0 && f->n_want == 0)
                r = 0;
        else if (r >= 0)
                r = fetch_next(f, 0);
        if (r < 0 || f->n_want == 0) {
                fetch_free(f);
                return r;
        }
        return 1;
}

/* ---- collecting ---------------------------------------------------------------------------- */

typedef struct Collect {
        Remote *remote;
        char *parts_table, *table, *user_id, *notebook_id, *owner;
        char cutoff[TIMESTAMP_MAX], now[TIMESTAMP_MAX];
        cJSON *start_key;
        cJSON *list;  /* the parts listed: Query's Items */
        cJSON *named; /* hash -> true for every part the current item names */
        const cJSON *at;
        bool again;
        uint64_t *deleted;
        bool deleting; /* the request in flight is a delete */
        PartioCollectFunc done;
        void *userdata;
} Collect;

static void collect_free(Collect *c)
{
        cJSON_Delete(c->start_key);
        cJSON_Delete(c->list);
        cJSON_Delete(c->named);
        free(c->parts_table);
        free(c->table);
        free(c->user_id);
        free(c->notebook_id);
        free(c->owner);
        free(c);
}

static void collect_finish(Collect *c, int error)
{
        c->done(c->userdata, error, c->again);
        collect_free(c);
}

static const char *string_av(const cJSON *item, const char *name)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, name), "S");

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void on_collect_reply(void *owner, void *userdata, RemoteReply *rep);

static int collect_send(Collect *c, const char *target, cJSON *body)
{
        int r = body ? remote_call(c->remote, target, body, on_collect_reply, c, c) : -ENOMEM;

        cJSON_Delete(body);
        return r;
}

/* The next mark or delete among the listed parts, or the end. */
static int collect_step(Collect *c)
{
        for (; c->at; c->at = c->at->next) {
                const char *part = string_av(c->at, "part"), *created = string_av(c->at, "created_at"),
                           *stale = string_av(c->at, "stale_at");

                if (!part || cJSON_GetObjectItemCaseSensitive(c->named, part))
                        continue;
                if (stale && strcmp(stale, c->cutoff) < 0) {
                        c->at = c->at->next;
                        c->deleting = true;
                        return collect_send(c, "DeleteItem",
                                            ddb_part_delete_body(c->parts_table, c->owner, part, stale));
                }
                c->again = true;
                if (!stale && created && strcmp(created, c->cutoff) < 0) {
                        c->at = c->at->next;
                        return collect_send(
                                c, "UpdateItem",
                                ddb_part_mark_body(c->parts_table, c->owner, part, created, c->now));
                }
        }
        collect_finish(c, 0);
        return 0;
}

static int name_add(const char *hash, void *userdata)
{
        Collect *c = userdata;

        return cJSON_GetObjectItemCaseSensitive(c->named, hash) || cJSON_AddTrueToObject(c->named, hash)
                       ? 0
                       : -ENOMEM;
}

static void on_collect_reply(void *owner, void *userdata, RemoteReply *rep)
{
        Collect *c = userdata;
        cJSON *items, *item;
        const cJSON *last;
        int r = 0;

        (void)owner;
        if (rep->error == -ECANCELED)
                return collect_finish(c, -ECANCELED);
        /* A mark or delete that lost its condition: the part was written again (it is in use). */
        if (rep->error < 0 || (rep->cls != DDB_OK && (rep->cls != DDB_CONDITIONAL_FAILED || !c->named)))
                return collect_finish(c, -EIO);
        if (c->named) {
                if (c->deleting && rep->cls == DDB_OK)
                        (*c->deleted)++;
                c->deleting = false;
                r = collect_step(c);
                if (r < 0)
                        collect_finish(c, r);
                return;
        }
        items = cJSON_GetObjectItemCaseSensitive(rep->body, "Items");
        if (items) {
                /* A page of the parts list. */
                while ((item = cJSON_DetachItemFromArray(items, 0)))
                        cJSON_AddItemToArray(c->list, item);
                last = cJSON_GetObjectItemCaseSensitive(rep->body, "LastEvaluatedKey");
                cJSON_Delete(c->start_key);
                c->start_key = last ? cJSON_Duplicate(last, true) : NULL;
                if (last)
                        r = c->start_key ? collect_send(c, "Query",
                                                        ddb_parts_query_body(c->parts_table, c->owner,
                                                                             c->start_key))
                                         : -ENOMEM;
                else if (cJSON_GetArraySize(c->list) == 0)
                        return collect_finish(c, 0);
                else
                        /* Read after the list: a part written for a version published since is
                         * named by it, or young. */
                        r = collect_send(c, "GetItem",
                                         ddb_get_item_body(c->table, c->user_id, c->notebook_id));
                if (r < 0)
                        collect_finish(c, r);
                return;
        }
        /* The item (absent: deleted, then it names nothing). */
        c->named = cJSON_CreateObject();
        item = cJSON_GetObjectItemCaseSensitive(rep->body, "Item");
        r = !c->named ? -ENOMEM : item ? parts_foreach_name(item, name_add, c) : 0;
        if (r == -EBADMSG)
                /* An item we cannot read the references of: keep every part. */
                return collect_finish(c, r);
        if (r >= 0) {
                c->at = c->list->child;
                r = collect_step(c);
        }
        if (r < 0)
                collect_finish(c, r);
}

int partio_collect(Remote *remote, const char *parts_table, const char *table, const char *user_id,
                   const char *notebook_id, uint64_t grace_usec, uint64_t *deleted, PartioCollectFunc done,
                   void *userdata)
{
        Collect *c = calloc(1, sizeof(*c));
        uint64_t now = now_realtime_usec();
        int r;

        if (!c)
                return -ENOMEM;
        *c = (Collect){ .remote = remote, .deleted = deleted, .done = done, .userdata = userdata };
        format_timestamp(c->now, now);
        format_timestamp(c->cutoff, now > grace_usec ? now - grace_usec : 0);
        c->parts_table = strdup(parts_table);
        c->table = strdup(table);
        c->user_id = strdup(user_id);
        c->notebook_id = strdup(notebook_id);
        c->owner = partio_owner(user_id, notebook_id);
        c->list = cJSON_CreateArray();
        r = c->parts_table && c->table && c->user_id && c->notebook_id && c->owner && c->list
                    ? collect_send(c, "Query", ddb_parts_query_body(parts_table, c->owner, NULL))
                    : -ENOMEM;
        if (r < 0)
                collect_free(c);
        return r;
}
