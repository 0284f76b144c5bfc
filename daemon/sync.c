/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>

#include "ddb.h"
#include "demo.h"
#include "log.h"
#include "merge.h"
#include "model.h"
#include "nb-limits.h"
#include "partio.h"
#include "parts.h"
#include "reconcile.h"
#include "remote.h"
#include "sync.h"

/* Request-level retries follow the AWS SDKs' "standard" mode: at most 3 attempts, full jitter
 * over an exponential backoff capped at 20 s, and a retry quota that failures drain and
 * successes refill, so that an outage does not multiply the load. Past that, the loop-level
 * backoff takes over: it doubles from 1 s to 5 min and never gives up on a dirty notebook. */
#define MAX_ATTEMPTS       3
#define RETRY_BASE_USEC    (100 * USEC_PER_MSEC)
#define RETRY_MAX_USEC     (20 * USEC_PER_SEC)
#define RETRY_QUOTA        500
#define RETRY_COST         5
#define RETRY_COST_TIMEOUT 10
#define OUTAGE_MIN_USEC    (1 * USEC_PER_SEC)
#define OUTAGE_MAX_USEC    (300 * USEC_PER_SEC)
#define LOG_INTERVAL_USEC  (60 * USEC_PER_SEC) /* repeated failures are logged once a minute */
#define QUERY_PAGE_ITEMS   100
/* Failed conditions in a row (each answered by a merge) before the next push waits a little: a
 * second, more with every round, at most RACE_MAX_USEC. */
#define MAX_RACES            3
#define RACE_MAX_USEC        (30 * USEC_PER_SEC)
#define STATUS_MAX_NOTEBOOKS 1000 /* notebooks not in sync that daemon.status lists */
/* A notebook's item that does not fit in DynamoDB's 400 KB is cut down to this, its largest values
 * moved to parts (doc/sync.md, "Big notebooks"): an edit of a small cell then rewrites this much,
 * plus the parts of what changed. */
#define PARTS_ITEM_TARGET     (64u * 1024)
#define GC_RETRY_USEC         (60 * USEC_PER_SEC) /* a collection pass that failed runs again after this */
#define REF_CACHE_NOTEBOOKS   64
#define MAX_FETCHES           2                   /* big notebooks fetched at once, by all pulls */
#define NOTEBOOK_RETRY_USEC   (60 * USEC_PER_SEC) /* a notebook whose table version cannot be read */
#define UNREADABLE_RETRY_USEC (600 * USEC_PER_SEC)
/* A pass runs this long after the grace time, so that what it waited for is older than that. */
#define GC_MARGIN_USEC (1 * USEC_PER_SEC)

typedef struct Job Job;
typedef struct Pull Pull;

/* A notebook whose parts are to be collected (partio_collect()) once due. */
typedef struct Gc {
        struct Gc *next;
        Sync *sync;
        char *user_id, *notebook_id;
        uint64_t due; /* monotonic */
        bool running;
} Gc;

typedef struct SyncNote {
        struct SyncNote *next;
        uint64_t seq; /* durable once the store reaches it */
        cJSON *changed;
} SyncNote;

/* A notebook with work to do: a push (put or delete) pending or in flight. */
struct Job {
        Sync *sync;
        Job *next, *prev;
        Job *go_next;      /* in the batch a pass is starting, then waiting for its tokens to be on disk */
        uint64_t send_seq; /* the store's commit that holds its token */
        char *key;         /* user_id US notebook_id: its key in Sync.job_map */
        char *user_id, *notebook_id;
        uint64_t first_change, last_change; /* monotonic; 0: due at once */
        uint64_t not_before;                /* backoff */
        uint64_t due;                       /* its key in Sync.queue */
        size_t queue_idx; /* its place in Sync.queue, or SIZE_MAX when it does not wait to start */
        bool in_flight;
        bool blocked; /* waits for the next local change (too large, refused by the remote) */
        bool held;    /* provisioned here: waits for the user's first complete pull */
        bool failing; /* its last try failed for a reason of the remote's (no table, credentials, the
                       * user's first pull): an error in status, retried at the outage pace */
        unsigned attempt;
        unsigned races; /* failed conditions in a row: the remote keeps moving under us */
        /* The remote's answer, recorded with the others of the loop pass (Sync.answers). */
        Job *answer_next;
        bool answered;
        bool answer_reconcile; /* reconcile answer_event with answer_item, and the flight is over */
        bool answer_finish;    /* the flight is over (after the state below is recorded) */
        bool answer_free;      /* nothing left to push: freed once the pass commits */
        ReconcileEvent answer_event;
        const cJSON *answer_item;
        cJSON *answer_owned; /* answer_item when it is not item */
        const char *answer_state;
        char *answer_error;
        /* The write in flight. */
        bool deleting;
        char sync_id[UUID_STRING_MAX];
        cJSON *item; /* what a PutItem sends, whole (the table's item may name parts for some values) */
        cJSON *request;
        Parts parts;          /* the parts to write before the item: those the base's item does not name */
        size_t part_next;     /* the next of them to write */
        uint64_t parts_since; /* realtime: when the flight's first part was sent (0: none yet) */
        char *parts_refs;     /* the part references of the item sent (parts_refs()), or NULL */
        char *fetch_refs;     /* those of the item a conflict's GetItem brought, while its parts come */
        bool collect;         /* the write leaves parts of the base unnamed: collect them after it */
        bool big;             /* the notebook has or had parts */
        char *answer_parts;   /* the part references of answer_item as the table holds it */
};

struct Sync {
        sd_event *event;
        Store *store;
        Remote *remote;
        RemoteConfig conf;
        Job *jobs;
        StrMap job_map;
        /* The jobs that wait to start (not in flight, blocked or held): a binary min-heap on due. */
        Job **queue;
        size_t n_queue, queue_alloc;
        /* Answers of the remote not yet recorded: a pass records them all, and starts the jobs
         * due, in one transaction. */
        Job *answers, **answers_tail;
        sd_event_source *pass;
        /* Requests whose tokens are committed but not yet on disk (go_next), in commit order. */
        Job *unsent, **unsent_tail;
        unsigned in_flight;
        unsigned fetches; /* big notebooks of pulls whose parts are being fetched */
        sd_event_source *timer;
        sd_event_source *pull_timer;
        unsigned retry_tokens;
        /* Pull generations: each pull takes the next; a base or delete records the current one,
         * so that a pull that started before it cannot override it. The high 32 bits count the
         * daemon's starts (persisted), so generations only grow across restarts. */
        uint64_t gen;

        /* What status reports. */
        bool online;
        bool ever_contacted;
        uint64_t last_success; /* realtime */
        char last_error[256];
        char last_error_user[MAX_USER_ID_BYTES + 1]; /* whose notebook or pull it was about */
        uint64_t outage_usec;                        /* current loop-level backoff, 0 when healthy */
        uint64_t offline_until;                      /* monotonic */
        uint64_t last_log;                           /* monotonic */
        unsigned suppressed_logs;
        Pull *pulls;     /* running, at most one per user */
        bool pull_again; /* a full pull was asked for while pulls ran */
        StrMap pulled;   /* users whose notebooks were pulled completely since the start */
        uint64_t pushes, pulls_applied, merges, conflicts;
        uint64_t push_outcomes[_SYNC_PUSH_MAX]; /* but SYNC_PUSH_SUCCESS: that is pushes */
        uint64_t pulls_complete, pulls_failed, retries_request, retries_backoff;
        uint64_t parts_written, parts_fetched, parts_deleted;

        /* Notebooks the remote changed in the transaction being built (store_change_record()
         * each): watchers hear of them once it is durable. */
        cJSON *changed;
        /* The changes of committed transactions not yet durable, in commit order. */
        struct SyncNote *notes, **notes_tail;

        SyncChangeFunc change_func;
        void *change_userdata;

        /* Stopping: no new work; drain_func runs once nothing is in flight or the grace ends. */
        bool draining;
        SyncDrainFunc drain_func;
        void *drain_userdata;
        sd_event_source *drain_timer;

        char *parts_table;
        /* Per big notebook (owner), what its last split learned: the SHA-256 of each moved value's
         * text -> its reference. A value unchanged since moves by it, not encoded again. At most
         * REF_CACHE_NOTEBOOKS, the oldest dropped first. */
        cJSON *ref_cache;
        /* Table versions whose parts could not be read, by job key: {user_id, notebook_id,
         * revision, sync_id, error, local, at}. A pull does not fetch the same version again for
         * UNREADABLE_RETRY_USEC; status lists those of notebooks not held here (the others carry
         * the error in their row). */
        cJSON *unreadable;
        Gc *gcs;
        sd_event_source *gc_timer;
        /* Big notebooks (job keys) a pass was asked for since the start: the first write of each
         * after a start asks for one, for what an earlier run may have left behind (parts written
         * by a push that a crash cut short, or whose collection it did not live to run). */
        StrMap gc_asked;
};

static void sync_arm(Sync *s);
static void job_schedule(Sync *s, Job *j);
static void job_unqueue(Sync *s, Job *j);
static int job_start(Sync *s, Job *j);
static void pull_start(Sync *s, const char *user_id);
static void job_send_after(Sync *s, Job *j, uint64_t delay_usec);
static void gc_want(Sync *s, const char *user_id, const char *notebook_id);
static bool parts_left(const char *base_text, const char *next_text);

/* ---- jobs ---------------------------------------------------------------------------------- */

/* Ids never hold control characters (the protocol refuses them, and so does a pull), so the unit
 * separator keeps (user, notebook) pairs apart. */
static char *job_key(const char *user_id, const char *notebook_id)
{
        size_t a = strlen(user_id), b = strlen(notebook_id);
        char *k = malloc(a + b + 2);

        if (k) {
                memcpy(k, user_id, a);
                k[a] = '\x1f';
                memcpy(k + a + 1, notebook_id, b + 1);
        }
        return k;
}

static Job *job_find(Sync *s, const char *user_id, const char *notebook_id)
{
        _cleanup_free_ char *k = job_key(user_id, notebook_id);

        return k ? strmap_get(&s->job_map, k) : NULL;
}

static void job_clear_request(Job *j)
{
        cJSON_Delete(j->item);
        j->item = NULL;
        cJSON_Delete(j->request);
        j->request = NULL;
        parts_done(&j->parts);
        j->part_next = 0;
        j->parts_since = 0;
        j->parts_refs = mfree(j->parts_refs);
        j->fetch_refs = mfree(j->fetch_refs);
}

static void answer_clear(Job *j)
{
        j->answered = j->answer_reconcile = j->answer_finish = j->answer_free = false;
        j->answer_item = NULL;
        cJSON_Delete(j->answer_owned);
        j->answer_owned = NULL;
        j->answer_state = NULL;
        free(j->answer_error);
        j->answer_error = NULL;
        j->answer_parts = mfree(j->answer_parts);
}

static void job_free(Sync *s, Job *j)
{
        if (j->answered)
                for (Job **p = &s->answers; *p; p = &(*p)->answer_next)
                        if (*p == j) {
                                *p = j->answer_next;
                                if (!*p)
                                        s->answers_tail = p;
                                break;
                        }
        answer_clear(j);
        job_unqueue(s, j);
        if (j->prev)
                j->prev->next = j->next;
        else
                s->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        strmap_remove(&s->job_map, j->key);
        job_clear_request(j);
        free(j->key);
        free(j->user_id);
        free(j->notebook_id);
        free(j);
}

static Job *job_add(Sync *s, const char *user_id, const char *notebook_id, uint64_t now)
{
        Job *j = job_find(s, user_id, notebook_id);

        if (j)
                return j;
        j = calloc(1, sizeof(*j));
        if (!j)
                return NULL;
        j->key = job_key(user_id, notebook_id);
        j->user_id = strdup(user_id);
        j->notebook_id = strdup(notebook_id);
        if (!j->key || !j->user_id || !j->notebook_id || strmap_put(&s->job_map, j->key, j) < 0) {
                free(j->key);
                free(j->user_id);
                free(j->notebook_id);
                free(j);
                return NULL;
        }
        j->sync = s;
        j->first_change = j->last_change = now;
        j->queue_idx = SIZE_MAX;
        j->next = s->jobs;
        if (s->jobs)
                s->jobs->prev = j;
        s->jobs = j;
        job_schedule(s, j);
        return j;
}
/* When a job may start: after the debounce since the last change, but no later than the maximum
 * delay after the first one; never before its backoff is over. */
static uint64_t job_due(Sync *s, const Job *j)
{
        uint64_t due = 0;

        if (j->last_change) {
                due = j->last_change + s->conf.debounce_usec;
                due = MIN(due, j->first_change + s->conf.max_delay_usec);
        }
        return MAX(due, j->not_before);
}

/* ---- the queue of jobs waiting to start ---------------------------------------------------- */

static void queue_set(Sync *s, size_t i, Job *j)
{
        s->queue[i] = j;
        j->queue_idx = i;
}

static void queue_fix(Sync *s, size_t i)
{
        Job *j = s->queue[i];

        while (i > 0 && s->queue[(i - 1) / 2]->due > j->due) {
                queue_set(s, i, s->queue[(i - 1) / 2]);
                i = (i - 1) / 2;
        }
        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= s->n_queue)
                        break;
                if (c + 1 < s->n_queue && s->queue[c + 1]->due < s->queue[c]->due)
                        c++;
                if (s->queue[c]->due >= j->due)
                        break;
                queue_set(s, i, s->queue[c]);
                i = c;
        }
        queue_set(s, i, j);
}

static void job_unqueue(Sync *s, Job *j)
{
        size_t i = j->queue_idx;

        if (i == SIZE_MAX)
                return;
        j->queue_idx = SIZE_MAX;
        if (i != --s->n_queue) {
                queue_set(s, i, s->queue[s->n_queue]);
                queue_fix(s, i);
        }
}

/* Puts the job in the queue at the moment it may start, or takes it out if it may not start (in
 * flight, blocked, held). Called after anything that changes one of these. */
static void job_schedule(Sync *s, Job *j)
{
        if (j->in_flight || j->blocked || j->held) {
                job_unqueue(s, j);
                return;
        }
        j->due = job_due(s, j);
        if (j->queue_idx == SIZE_MAX) {
                if (s->n_queue == s->queue_alloc) {
                        size_t n = MAX(s->queue_alloc * 2, (size_t)64);
                        Job **q = reallocarray(s->queue, n, sizeof(*q));

                        if (!q) {
                                /* Not queued: it goes with the next rescan (pull timer) or change. */
                                log_oom();
                                return;
                        }
                        s->queue = q;
                        s->queue_alloc = n;
                }
                j->queue_idx = s->n_queue++;
                s->queue[j->queue_idx] = j;
        }
        queue_fix(s, j->queue_idx);
}

void sync_notify_change(Sync *s, const char *user_id, const char *notebook_id)
{
        uint64_t now = now_monotonic_usec();
        Job *j;

        if (!s)
                return;
        j = job_find(s, user_id, notebook_id);
        if (j) {
                if (!j->last_change || j->blocked)
                        j->first_change = now;
                j->last_change = now;
                j->blocked = false;
                job_schedule(s, j);
        } else if (!job_add(s, user_id, notebook_id, now)) {
                log_oom();
                return;
        }
        sync_arm(s);
}

/* The engine's own change left the notebook with something to push: at once, no debounce. */
static void job_due_now(Sync *s, const char *user_id, const char *notebook_id)
{
        Job *j = job_add(s, user_id, notebook_id, 0);

        if (!j) {
                log_oom();
                return;
        }
        j->blocked = false;
        if (!j->in_flight)
                j->last_change = j->first_change = 0;
        job_schedule(s, j);
}

/* ---- logging and health -------------------------------------------------------------------- */

/* Why a call failed, for the log and status. */
static const char *reply_reason(Sync *s, const RemoteReply *rep)
{
        static char buf[160];

        if (rep->type && streq(rep->type, "ResourceNotFoundException")) {
                snprintf(buf, sizeof(buf), "table %s does not exist ('notebookctl table create' makes it)",
                         s->conf.table);
                return buf;
        }
        return rep->message ? rep->message : "request failed";
}

/* Failures during an outage repeat for every notebook and every retry: log the first, then at
 * most one line a minute with how many were left out. */
static void sync_log_failure(Sync *s, const char *user_id, const char *notebook_id, const char *state,
                             const char *fmt, const char *a, const char *b)
{
        uint64_t now = now_monotonic_usec();
        char msg[sizeof(s->last_error)];

        snprintf(msg, sizeof(msg), fmt, a, b);
        snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
        snprintf(s->last_error_user, sizeof(s->last_error_user), "%s", user_id ? user_id : "");
        if (s->last_log && now - s->last_log < LOG_INTERVAL_USEC) {
                s->suppressed_logs++;
                return;
        }
        if (s->suppressed_logs)
                log_notebook(LOG_WARNING, 0, user_id, notebook_id, state,
                             "Sync: %s (%u similar messages suppressed)", msg, s->suppressed_logs);
        else
                log_notebook(LOG_WARNING, 0, user_id, notebook_id, state, "Sync: %s", msg);
        s->suppressed_logs = 0;
        s->last_log = now;
}

static void sync_healthy(Sync *s)
{
        uint64_t was_offline_until = s->offline_until;
        bool was_out = s->outage_usec > 0;

        if (!s->online && s->ever_contacted)
                log_info("Sync: the remote is reachable again.");
        s->online = true;
        s->ever_contacted = true;
        s->outage_usec = 0;
        s->offline_until = 0;
        /* The outage is over: what waited for its backoff (up to 5 minutes) goes now, not when the
         * backoff would have run out. */
        if (was_out) {
                for (Job *j = s->jobs; j; j = j->next)
                        if (j->not_before && j->not_before <= was_offline_until) {
                                j->not_before = 0;
                                job_schedule(s, j);
                        }
                sync_arm(s);
        }
        s->last_success = now_realtime_usec();
        if (s->retry_tokens < RETRY_QUOTA)
                s->retry_tokens++;
}

/* The remote cannot be reached (or keeps failing): everything waits, doubling up to a cap. */
static void sync_outage(Sync *s)
{
        s->online = false;
        s->ever_contacted = true;
        s->outage_usec = s->outage_usec ? MIN(s->outage_usec * 2, OUTAGE_MAX_USEC) : OUTAGE_MIN_USEC;
        s->offline_until = now_monotonic_usec() + s->outage_usec;
}

/* ---- reconciliation ------------------------------------------------------------------------- */

/* Transactions of the engine's own, between the server's batches: one per answer, one per pulled
 * page. Watchers hear of what changed once it is committed. */
static int sync_begin(Sync *s)
{
        return store_begin(s->store);
}

static void notify_changes(Sync *s, cJSON *changed)
{
        const cJSON *change;

        if (s->change_func)
                cJSON_ArrayForEach(change, changed) s->change_func(s->change_userdata, change);
        cJSON_Delete(changed);
}

/* What the transaction just committed changed: told now if it is durable (seq 0, or reached),
 * else once it is (sync_flushed()). */
static void sync_notify_watchers(Sync *s, uint64_t seq)
{
        uint64_t durable = 0;
        SyncNote *n;

        if (!s->changed)
                return;
        if (seq == 0 || (store_durable(s->store, &durable) >= 0 && durable >= seq)) {
                notify_changes(s, TAKE_PTR(s->changed));
                return;
        }
        n = calloc(1, sizeof(*n));
        if (!n) {
                /* Told now rather than never. */
                log_oom();
                notify_changes(s, TAKE_PTR(s->changed));
                return;
        }
        n->seq = seq;
        n->changed = TAKE_PTR(s->changed);
        *s->notes_tail = n;
        s->notes_tail = &n->next;
}

/* Commits (r >= 0) or rolls back the engine's transaction. ret_seq NULL: durable on return; else
 * durable once the store reaches *ret_seq (sync_flushed()). */
static int sync_commit_seq(Sync *s, int r, const char *what, uint64_t *ret_seq)
{
        if (r < 0) {
                store_rollback(s->store);
                cJSON_Delete(s->changed);
                s->changed = NULL;
        } else {
                uint64_t seq = 0;

                r = ret_seq ? store_commit_deferred(s->store, &seq) : store_commit(s->store);
                if (ret_seq)
                        *ret_seq = seq;
                if (r >= 0)
                        sync_notify_watchers(s, seq);
        }
        if (r < 0)
                log_warning_errno(r, "Sync: cannot record %s: %m", what);
        return r;
}

static int sync_commit(Sync *s, int r, const char *what)
{
        return sync_commit_seq(s, r, what, NULL);
}

/* Inside the engine's transaction: the notebook changed; its watchers hear of it as it is now. */
static void sync_changed(Sync *s, const char *user_id, const char *notebook_id)
{
        cJSON *change;

        if (!s->changed)
                s->changed = cJSON_CreateArray();
        change = s->changed ? store_change_record(s->store, user_id, notebook_id) : NULL;
        if (!change || !cJSON_AddItemToArray(s->changed, change)) {
                cJSON_Delete(change);
                log_oom();
        }
}

/* blank-USER or demo-USER as provisioning makes them (the fields and cells merging looks at), or
 * NULL for any other id. Every device provisions the same content, so it is what two devices that
 * provisioned a user on their own have in common. */
static cJSON *provisioned_notebook(const char *user_id, const char *notebook_id)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = NULL, *cells = NULL;
        char blank[MAX_ID_BYTES + 1], demo[MAX_ID_BYTES + 1];
        bool is_demo;

        snprintf(blank, sizeof(blank), "blank-%s", user_id);
        snprintf(demo, sizeof(demo), "demo-%s", user_id);
        if (!streq(notebook_id, blank) && !streq(notebook_id, demo))
                return NULL;
        is_demo = streq(notebook_id, demo);
        if ((is_demo ? demo_cells_new(&cells) : blank_cells_new(&cells)) < 0)
                return NULL;
        nb = cJSON_CreateObject();
        if (!nb || !cJSON_AddStringToObject(nb, "name", is_demo ? DEMO_NAME : BLANK_NAME) ||
            !cJSON_AddNullToObject(nb, "db_conn_string") || !cJSON_AddNullToObject(nb, "ttl") ||
            !(is_demo ? cJSON_AddNumberToObject(nb, "demo_version", DEMO_VERSION)
                      : cJSON_AddNullToObject(nb, "demo_version")) ||
            !cJSON_AddItemToObject(nb, "cells", TAKE_PTR(cells)))
                return NULL;
        return TAKE_PTR(nb);
}

/* Whether nb is exactly as provisioning made it: nothing of the user's is in it, so the copy
 * another device provisioned (and perhaps edited since) may replace it. Evidence, not a guess from
 * the id: a notebook the user changed in any way does not qualify. */
static bool pristine_provisioned(const char *user_id, const char *notebook_id, const cJSON *nb)
{
        _cleanup_(cJSON_Deletep) cJSON *want = nb ? provisioned_notebook(user_id, notebook_id) : NULL;
        const cJSON *field;

        if (!want)
                return false;
        cJSON_ArrayForEach(
                field, want) if (!cJSON_Compare(field, cJSON_GetObjectItemCaseSensitive(nb, field->string),
                                                true)) return false;
        return true;
}

/* A tombstone of blank-USER or demo-USER deleted as provisioning made it, before any sync: created
 * at revision 1 (no id history here), deleted at 2, never on the remote. */
static bool deleted_untouched(const char *user_id, const char *notebook_id, const StoreSyncInfo *info)
{
        _cleanup_(cJSON_Deletep) cJSON *provisioned = provisioned_notebook(user_id, notebook_id);

        return provisioned && info->deleted && info->base_revision < 0 && info->revision == 2;
}

/* The item's notebook and head, checked: a malformed item is refused whole. */
typedef struct Seen {
        const cJSON *item; /* whole: any parts it names joined */
        const char *parts; /* the part references of the item as the table holds it, or NULL */
        DdbItemHead head;
        cJSON *notebook;
} Seen;

static void seen_done(Seen *v)
{
        cJSON_Delete(v->notebook);
}

static int seen_init(Seen *v, const cJSON *item, const char *parts)
{
        int r;

        *v = (Seen){ .item = item, .parts = parts };
        r = ddb_item_head(item, &v->head);
        if (r < 0)
                return r;
        return ddb_notebook_from_item(item, &v->notebook, NULL);
}

/* Drops the conflicts whose cells are gone (resolved here or on another device). */
static int conflicts_prune(Sync *s, const cJSON *nb)
{
        _cleanup_(cJSON_Deletep) cJSON *list = NULL, *ids = cJSON_CreateObject();
        const char *user = cJSON_GetObjectItem(nb, "user_id")->valuestring,
                   *id = cJSON_GetObjectItem(nb, "id")->valuestring;
        const cJSON *c, *conflict;
        int r;

        if (!ids)
                return -ENOMEM;
        r = store_sync_conflicts(s->store, user, id, INT64_MAX, &list);
        if (r < 0 || cJSON_GetArraySize(list) == 0)
                return r;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(nb, "cells"))
                cJSON_AddTrueToObject(ids, cJSON_GetObjectItem(c, "id")->valuestring);
        cJSON_ArrayForEach(conflict, list)
        {
                const cJSON *cell = cJSON_GetObjectItem(conflict, "cell_id"),
                            *copy = cJSON_GetObjectItem(conflict, "copy_id");
                char subject[MAX_ID_BYTES + 8];

                if (!cell)
                        continue;
                if (cJSON_GetObjectItemCaseSensitive(ids, cell->valuestring) && copy &&
                    cJSON_GetObjectItemCaseSensitive(ids, copy->valuestring))
                        continue;
                snprintf(subject, sizeof(subject), "cell:%s", cell->valuestring);
                r = store_sync_conflict_drop(s->store, user, id, subject);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Stores notebook (the remote's version, or a merge on it) as ours, on the remote's base.
 * local_revision: the revision we hold (-1: none). A revision names one content for the clients
 * that read it (expected_revision): it never goes back, nor names other content. A remote version
 * at or below ours (another writer started the id again lower, or a merge equal to the remote's)
 * is stored one above ours and pushed. Returns 1 when there is something to push. */
static int act_take(Sync *s, const Seen *v, const cJSON *notebook, bool dirty, int64_t local_revision)
{
        _cleanup_(cJSON_Deletep) cJSON *bumped = NULL;
        _cleanup_free_ char *snapshot = model_json_print(v->item, false);
        StoreBase base = {
                .revision = v->head.revision, .sync_id = v->head.sync_id, .parts = v->parts, .gen = s->gen
        };
        const cJSON *rev = cJSON_GetObjectItemCaseSensitive(notebook, "revision");
        char ts[TIMESTAMP_MAX];
        int r;

        if (!snapshot)
                return -ENOMEM;
        if (local_revision >= 0 && cJSON_IsNumber(rev) && (int64_t)rev->valuedouble <= local_revision) {
                bumped = cJSON_Duplicate(notebook, true);
                if (!bumped)
                        return -ENOMEM;
                cJSON_ReplaceItemInObject(bumped, "revision",
                                          cJSON_CreateNumber((double)(local_revision + 1)));
                cJSON_ReplaceItemInObject(bumped, "updated_at",
                                          cJSON_CreateString(format_timestamp(ts, now_realtime_usec())));
                notebook = bumped;
                dirty = true;
        }
        base.snapshot = snapshot;
        r = store_sync_replace(s->store, notebook, &base, dirty, dirty ? "pending" : "synced");
        if (r < 0)
                return r;
        r = conflicts_prune(s, notebook);
        return r < 0 ? r : dirty;
}

/* Whether the merge changes nothing the item carries: then it is the remote's version. */
static bool merge_is_remote(const cJSON *merged, const Seen *v)
{
        _cleanup_(cJSON_Deletep) cJSON *item = NULL;

        return ddb_item_from_notebook(merged, v->head.sync_id, &item) >= 0 &&
               ddb_item_set_parent(item, v->head.parent_sync_id) >= 0 && cJSON_Compare(item, v->item, true);
}

static int act_merge(Sync *s, const char *user, const char *id, const StoreSyncInfo *info, const Seen *v)
{
        _cleanup_(cJSON_Deletep) cJSON *base = NULL, *local = NULL, *merged = NULL, *conflicts = NULL;
        _cleanup_free_ char *base_text = NULL;
        StoreSyncInfo again = { 0 };
        char ts[TIMESTAMP_MAX];
        const cJSON *c;
        bool same;
        int r;

        if (info->base_revision >= 0) {
                _cleanup_(cJSON_Deletep) cJSON *base_item = NULL;

                r = store_sync_base_snapshot(s->store, user, id, &base_text);
                if (r < 0)
                        return r;
                base_item = base_text ? cJSON_Parse(base_text) : NULL;
                if (base_item && ddb_notebook_from_item(base_item, &base, NULL) < 0)
                        base = NULL;
        }
        /* Never agreed on a version, but both provisioned this one: that content is the common
         * ancestor, so an edit on one side is a change, not a conflict with the other's copy. */
        if (!base)
                base = provisioned_notebook(user, id);
        r = store_sync_read(s->store, user, id, &local, &again);
        store_sync_info_done(&again);
        if (r < 0)
                return r;
        r = merge_notebooks(base, local, v->notebook, MAX_CELLS, MERGE_COPY_ID_BY_CONTENT, &merged,
                            &conflicts);
        if (r < 0)
                return r;
        /* Nothing of ours left to push (the remote had it all, or kept its value where both changed
         * a field): the remote's version, clean; its conflicts are recorded all the same. */
        same = merge_is_remote(merged, v);
        if (!same) {
                /* Above both sides: the merge is newer than anything either has seen. */
                cJSON_ReplaceItemInObject(
                        merged, "revision",
                        cJSON_CreateNumber((double)(MAX(info->revision, v->head.revision) + 1)));
                cJSON_ReplaceItemInObject(merged, "updated_at",
                                          cJSON_CreateString(format_timestamp(ts, now_realtime_usec())));
        }
        r = act_take(s, v, merged, !same, info->revision);
        if (r < 0 || (same && cJSON_GetArraySize(conflicts) == 0))
                return r;
        cJSON_ArrayForEach(c, conflicts)
        {
                const cJSON *cell = cJSON_GetObjectItem(c, "cell_id"),
                            *field = cJSON_GetObjectItem(c, "field");
                char subject[MAX_ID_BYTES + 8];

                snprintf(subject, sizeof(subject), "%s:%s", cell ? "cell" : "field",
                         (cell ? cell : field)->valuestring);
                r = store_sync_conflict_add(s->store, user, id, subject,
                                            cell ? cJSON_GetObjectItem(c, "copy_id")->valuestring : NULL,
                                            cell ? NULL : cJSON_GetObjectItem(c, "local"));
                if (r < 0)
                        return r;
        }
        s->merges++;
        if (cJSON_GetArraySize(conflicts) > 0) {
                s->conflicts += (uint64_t)cJSON_GetArraySize(conflicts);
                log_notebook(LOG_NOTICE, 0, user, id, "conflict",
                             "Sync: %s changed here and on another device; merged, %d conflict%s to resolve "
                             "('notebookctl conflicts').",
                             id, cJSON_GetArraySize(conflicts),
                             cJSON_GetArraySize(conflicts) == 1 ? "" : "s");
        } else
                log_notebook(LOG_INFO, 0, user, id, "pending",
                             "Sync: %s changed here and on another device; merged without conflict.", id);
        return 0;
}

/* What the remote showed of one notebook, reconciled with what we hold: runs inside the caller's
 * transaction. observed_gen: the pull's generation, or RECONCILE_GEN_NOW. item NULL with an
 * absent event; else whole, and parts the references its table item carries (NULL: none). Returns
 * the action taken, or a negative error. */
static int sync_reconcile(Sync *s, const char *user, const char *id, ReconcileEvent event, const cJSON *item,
                          const char *parts, uint64_t observed_gen)
{
        _cleanup_(seen_done) Seen v = { 0 };
        _cleanup_(cJSON_Deletep) cJSON *local = NULL;
        StoreSyncInfo info = { 0 };
        ReconcileLocal l = { 0 };
        ReconcileRemote rm = { .event = event, .observed_gen = observed_gen };
        ReconcileNotice notice;
        ReconcileAction a = RECONCILE_NONE;
        Job *j;
        int r;

        if (item) {
                r = seen_init(&v, item, parts);
                if (r < 0)
                        return r;
        }
        /* The sync columns only: most items a pull shows are what we hold, and need no more. */
        r = store_sync_read(s->store, user, id, NULL, &info);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r == 0) {
                l = (ReconcileLocal){ .exists = true,
                                      .deleted = info.deleted,
                                      .dirty = info.dirty,
                                      .has_base = info.base_revision >= 0,
                                      .delete_done = info.delete_done,
                                      .base_gen = info.base_gen };
                if (!l.deleted && !l.has_base && (startswith(id, "blank-") || startswith(id, "demo-"))) {
                        r = store_notebook_get(s->store, user, id, &local);
                        if (r < 0)
                                goto finish;
                        l.pristine = pristine_provisioned(user, id, local);
                } else if (l.deleted)
                        l.pristine = deleted_untouched(user, id, &info);
                if (item)
                        rm.is_base = l.has_base && info.base_revision == v.head.revision &&
                                     streq_ptr(info.base_sync_id, v.head.sync_id);
        }
        /* Written on a version of ours that we never heard landed: that version stood, and is the
         * base this one is to be reconciled with (taken if we have nothing newer, else merged
         * against what we wrote, so that our own write is not taken for a concurrent change). */
        if (item && l.exists && v.head.parent_sync_id &&
            !(l.has_base && streq_ptr(info.base_sync_id, v.head.parent_sync_id))) {
                _cleanup_free_ char *wrote = NULL, *wrote_parts = NULL;
                int64_t wrote_revision = -1;

                r = store_sync_token_revision(s->store, user, id, v.head.parent_sync_id, &wrote_revision);
                if (r > 0)
                        r = store_sync_token_item(s->store, user, id, v.head.parent_sync_id, &wrote,
                                                  &wrote_parts);
                if (r < 0)
                        goto finish;
                if (r > 0 && wrote) {
                        /* Recorded as seen just before this view, so that this view counts as newer. */
                        StoreBase base = { .revision = wrote_revision,
                                           .sync_id = v.head.parent_sync_id,
                                           .snapshot = wrote,
                                           .parts = wrote_parts,
                                           .gen = observed_gen == RECONCILE_GEN_NOW ? s->gen
                                                                                    : observed_gen - 1 };
                        bool dirty = info.deleted || info.revision != wrote_revision;

                        r = store_sync_confirm(s->store, user, id, &base, dirty,
                                               dirty ? "pending" : "synced");
                        if (r < 0)
                                goto finish;
                        l.has_base = true;
                        l.dirty = dirty;
                        l.delete_done = false;
                        l.base_gen = base.gen;
                        info.base_revision = wrote_revision;
                        info.dirty = dirty;
                }
        }
        if (item) {
                int64_t token_revision = -1;

                /* Ours: our token with the revision it carried (another writer may update the item
                 * in place and leave our token on a newer version). Tokens outlive the row: a
                 * write of ours may land after the notebook is gone here. */
                r = store_sync_token_revision(s->store, user, id, v.head.sync_id, &token_revision);
                if (r < 0)
                        goto finish;
                rm.ours = r > 0 && token_revision == v.head.revision;
                rm.pristine = pristine_provisioned(user, id, v.notebook);
        }
        a = reconcile(&l, &rm, &notice);
        r = 0;
        switch (a) {
        case RECONCILE_NONE:
                break;
        case RECONCILE_TAKE: {
                int64_t ours = info.revision;

                /* Gone here: numbers it had before still name what they named. */
                r = l.exists ? 0 : store_sync_high_water(s->store, user, id, &ours);
                if (r >= 0)
                        r = act_take(s, &v, v.notebook, false, ours);
        }
                if (r > 0) {
                        job_due_now(s, user, id);
                        a = RECONCILE_MERGE; /* stored above ours: something to push, like a merge */
                }
                if (r >= 0)
                        s->pulls_applied++;
                if (notice == RECONCILE_REVIVED)
                        log_notebook(LOG_NOTICE, 0, user, id, "synced",
                                     "Sync: %s was deleted here but changed on another device since; the "
                                     "change wins and the notebook is back.",
                                     id);
                break;
        case RECONCILE_CONFIRM: {
                _cleanup_free_ char *snapshot = model_json_print(item, false), *old_parts = NULL;
                StoreBase base = { .revision = v.head.revision,
                                   .sync_id = v.head.sync_id,
                                   .snapshot = snapshot,
                                   .parts = parts,
                                   .gen = s->gen };
                bool dirty = info.deleted || info.revision != v.head.revision;

                /* Our write stood, though its answer was lost: what it left unnamed is ours to
                 * collect. */
                if (rm.ours && store_sync_base_parts(s->store, user, id, &old_parts, NULL) >= 0 &&
                    parts_left(old_parts, parts))
                        gc_want(s, user, id);
                r = snapshot ? store_sync_confirm(s->store, user, id, &base, dirty,
                                                  dirty ? "pending" : "synced")
                             : -ENOMEM;
                if (r >= 0 && dirty)
                        job_due_now(s, user, id);
                goto finish; /* nothing changed for a reader */
        }
        case RECONCILE_MERGE:
                r = act_merge(s, user, id, &info, &v);
                if (r >= 0)
                        job_due_now(s, user, id);
                break;
        case RECONCILE_DELETE_LOCAL:
                r = store_sync_remove(s->store, user, id);
                log_notebook(LOG_INFO, 0, user, id, "synced",
                             "Sync: %s was deleted on another device; deleted here too.", id);
                break;
        case RECONCILE_DETACH:
                r = store_sync_detach(s->store, user, id, "pending",
                                      "deleted on another device; the edits made here since go out as a new "
                                      "notebook");
                if (r >= 0)
                        job_due_now(s, user, id);
                log_notebook(
                        LOG_NOTICE, 0, user, id, "pending",
                        "Sync: %s was deleted on another device after it was edited here; the edits are "
                        "kept and pushed again.",
                        id);
                goto finish;
        case RECONCILE_DELETED:
                r = store_sync_deleted(s->store, user, id, s->gen, "synced");
                goto finish;
        case RECONCILE_PURGE:
                r = store_sync_remove(s->store, user, id);
                goto finish;
        case RECONCILE_REDELETE: {
                _cleanup_free_ char *snapshot = model_json_print(item, false);
                StoreBase base = { .revision = v.head.revision,
                                   .sync_id = v.head.sync_id,
                                   .snapshot = snapshot,
                                   .parts = parts,
                                   .gen = s->gen };

                r = snapshot ? store_sync_tombstone(s->store, v.notebook, &base) : -ENOMEM;
                if (r >= 0)
                        job_due_now(s, user, id);
                log_notebook(
                        LOG_INFO, 0, user, id, "pending",
                        "Sync: an earlier write of %s landed after it was deleted here; deleting it again.",
                        id);
                goto finish;
        }
        default:
                r = -EINVAL;
                goto finish;
        }
        if (r >= 0 && a != RECONCILE_NONE) {
                sync_changed(s, user, id);
                j = job_find(s, user, id);
                /* Clean again, or gone: nothing left to push. */
                if (j && !j->in_flight && (a == RECONCILE_TAKE || a == RECONCILE_DELETE_LOCAL))
                        job_free(s, j);
        }
finish:
        store_sync_info_done(&info);
        if (r < 0)
                return r;
        log_notebook(LOG_DEBUG, 0, user, id, NULL, "Sync: %s %s: %s.", id, reconcile_event_to_string(event),
                     reconcile_action_to_string(a));
        return (int)a;
}

/* ---- pushing ------------------------------------------------------------------------------- */

/* Queues what the remote answered about the job; the next pass records it. */
static void answer_queue(Sync *s, Job *j)
{
        if (!j->answered) {
                j->answered = true;
                j->answer_next = NULL;
                *s->answers_tail = j;
                s->answers_tail = &j->answer_next;
        }
        sd_event_source_set_enabled(s->pass, SD_EVENT_ONESHOT);
}

/* The notebook's sync state to record with the pass; finish: and the flight is over. */
static void answer_state(Sync *s, Job *j, const char *state, const char *error, bool finish)
{
        j->answer_state = state;
        free(j->answer_error);
        j->answer_error = error ? strdup(error) : NULL;
        j->answer_finish = j->answer_finish || finish;
        answer_queue(s, j);
}

/* What the remote holds, to reconcile with the pass; the flight is over then. item is kept by
 * the job (its own PutItem's, or owned: what a GetItem returned), whole; parts: the references the
 * table's item carries. */
static void answer_reconcile(Sync *s, Job *j, ReconcileEvent event, const cJSON *item, cJSON *owned,
                             const char *parts)
{
        j->answer_reconcile = true;
        j->answer_event = event;
        j->answer_item = item;
        cJSON_Delete(j->answer_owned);
        j->answer_owned = owned;
        free(j->answer_parts);
        /* Out of memory, the base is recorded without them: its parts are then written or fetched
         * again, nothing worse. */
        j->answer_parts = parts ? strdup(parts) : NULL;
        answer_queue(s, j);
}

static void job_set_state(Sync *s, Job *j, const char *state, const char *error)
{
        int r = sync_begin(s);

        if (r >= 0)
                r = store_sync_set_state(s->store, j->user_id, j->notebook_id, state, error);
        sync_commit(s, r, "a notebook's sync state");
}

/* Whether a request of the job that failed for a passing reason gets another attempt of the
 * standard retry mode (attempts left, and the quota), and after how long (full jitter). */
static bool retry_delay(Sync *s, Job *j, const RemoteReply *rep, uint64_t *ret_delay)
{
        unsigned cost = rep->error == -ETIMEDOUT ? RETRY_COST_TIMEOUT : RETRY_COST;

        if (j->attempt + 1 >= MAX_ATTEMPTS || s->retry_tokens < cost)
                return false;
        j->attempt++;
        s->retry_tokens -= cost;
        s->retries_request++;
        *ret_delay = random_below(MIN(RETRY_MAX_USEC, RETRY_BASE_USEC << MIN(j->attempt, 20u)) + 1);
        return true;
}

/* A retryable failure: a fast retry of the same request while the quota lasts, else the
 * loop-level backoff. */
static void job_retry(Sync *s, Job *j, const RemoteReply *rep)
{
        uint64_t now = now_monotonic_usec(), delay;

        /* Parts written for an item that may never be: a pass collects them if so. */
        if (j->part_next > 0)
                gc_want(s, j->user_id, j->notebook_id);
        sync_log_failure(s, j->user_id, j->notebook_id, "pending", "%s: %s", j->notebook_id,
                         rep->message ? rep->message : "request failed");
        if (retry_delay(s, j, rep, &delay))
                j->not_before = now + delay;
        else {
                sync_outage(s);
                j->not_before = s->offline_until;
                j->attempt = 0;
                s->retries_backoff++;
        }
        j->in_flight = false;
        s->in_flight--;
        job_clear_request(j);
        job_schedule(s, j);
        answer_state(s, j, "pending", s->last_error, false);
}

/* A failure the remote or its table must be fixed for (credentials, a missing table): an error in
 * status, retried at the outage pace; or (notebook) one of this notebook's only (the table's
 * version names parts that cannot be read): retried a minute later, the others unaffected. */
static void job_fail(Sync *s, Job *j, const char *why, bool notebook)
{
        if (j->part_next > 0)
                gc_want(s, j->user_id, j->notebook_id);
        sync_log_failure(s, j->user_id, j->notebook_id, "error", "%s: %s", j->notebook_id, why);
        if (notebook)
                j->not_before = now_monotonic_usec() + NOTEBOOK_RETRY_USEC;
        else {
                sync_outage(s);
                j->not_before = s->offline_until;
        }
        j->in_flight = false;
        s->in_flight--;
        job_clear_request(j);
        j->failing = true;
        job_schedule(s, j);
        answer_state(s, j, "error", why, false);
}

static bool job_cancelled(Sync *s, Job *j, const RemoteReply *rep)
{
        /* Shutdown: the notebook stays dirty and goes out at the next start. */
        if (rep->error != -ECANCELED)
                return false;
        j->in_flight = false;
        s->in_flight--;
        job_clear_request(j);
        return true;
}

/* ---- big notebooks ------------------------------------------------------------------------- */

/* Puts back in item (the table's, naming parts) one version's values that it shares: snapshot, the
 * version joined, and refs, the references its item carried. */
static int join_version(cJSON *item, const char *refs_text, const char *snapshot)
{
        _cleanup_(cJSON_Deletep) cJSON *refs = NULL, *full = NULL;

        if (!refs_text || !snapshot)
                return 0;
        refs = cJSON_Parse(refs_text);
        full = refs ? cJSON_Parse(snapshot) : NULL;
        return full ? parts_join_known(item, refs, full) : 0;
}

/* Puts back in item the values it shares with versions held here: the base, our write it is (its
 * sync_id), or our write it was made on (its parent). What is left needs the parts table. */
static int join_known(Sync *s, const char *user, const char *id, cJSON *item)
{
        _cleanup_free_ char *refs = NULL, *snapshot = NULL, *sync_id = NULL, *parent = NULL;
        const char *const *tokens;
        DdbItemHead head;
        int r;

        r = store_sync_base_parts(s->store, user, id, &refs, NULL);
        if (r >= 0 && refs)
                r = store_sync_base_snapshot(s->store, user, id, &snapshot);
        if (r >= 0)
                r = join_version(item, refs, snapshot);
        if (r < 0 && r != -ENOENT)
                return r;
        if (ddb_item_head(item, &head) < 0)
                return 0;
        sync_id = head.sync_id ? strdup(head.sync_id) : NULL;
        parent = head.parent_sync_id ? strdup(head.parent_sync_id) : NULL;
        tokens = (const char *const[]){ sync_id, parent };
        for (size_t i = 0; i < 2; i++) {
                if (!tokens[i])
                        continue;
                refs = mfree(refs);
                snapshot = mfree(snapshot);
                r = store_sync_token_item(s->store, user, id, tokens[i], &snapshot, &refs);
                if (r > 0)
                        r = join_version(item, refs, snapshot);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Why an item's references cannot be followed (parts_check()). */
static const char *parts_why(int error)
{
        return error == -EFBIG ? "its parts claim more than notebookd takes of one notebook"
               : error == 0    ? NULL
                               : "its item has malformed part references";
}

/* The references item carries, as text to keep beside its snapshot; NULL when it names none (or
 * out of memory: then only more parts are written or fetched later). */
static char *refs_text(const cJSON *item)
{
        _cleanup_(cJSON_Deletep) cJSON *refs = parts_refs(item);

        return refs && cJSON_GetArraySize(refs) > 0 ? cJSON_PrintUnformatted(refs) : NULL;
}

/* Collection of parts no version names (partio_collect()). A pass lists the notebook's parts, which
 * DynamoDB bills by their whole size: so it runs a grace time after a write of ours that left
 * parts of the base unnamed (those are then old enough to be marked), not after every write, and
 * again a grace time later while some wait to go. One pass at a time. */
static void gc_arm(Sync *s)
{
        uint64_t next = UINT64_MAX;

        for (Gc *g = s->gcs; g; g = g->next)
                if (g->running)
                        return;
                else
                        next = MIN(next, g->due);
        if (next == UINT64_MAX || s->draining) {
                sd_event_source_set_enabled(s->gc_timer, SD_EVENT_OFF);
                return;
        }
        sd_event_source_set_time(s->gc_timer, next);
        sd_event_source_set_enabled(s->gc_timer, SD_EVENT_ONESHOT);
}

static void gc_free(Sync *s, Gc *g)
{
        for (Gc **p = &s->gcs; *p; p = &(*p)->next)
                if (*p == g) {
                        *p = g->next;
                        break;
                }
        free(g->user_id);
        free(g->notebook_id);
        free(g);
}

/* Records that a pass is asked for (want) or no longer, so that it survives a restart: inside the
 * transaction being built, or in one of its own. */
static void gc_record(Sync *s, const char *user_id, const char *notebook_id, bool want)
{
        int r;

        if (store_in_transaction(s->store)) {
                r = store_sync_gc(s->store, user_id, notebook_id, want);
                if (r < 0)
                        log_warning_errno(r, "Sync: cannot record a collection pass: %m");
                return;
        }
        r = sync_begin(s);
        if (r >= 0)
                r = store_sync_gc(s->store, user_id, notebook_id, want);
        sync_commit(s, r, "a collection pass");
}

/* A pass over the notebook's parts, at due (monotonic); record: new, it is recorded. */
static void gc_add(Sync *s, const char *user_id, const char *notebook_id, uint64_t due, bool record)
{
        _cleanup_free_ char *key = job_key(user_id, notebook_id);
        Gc *g;

        if (!key || strmap_put(&s->gc_asked, key, s) < 0)
                log_oom();
        for (g = s->gcs; g; g = g->next)
                if (streq(g->user_id, user_id) && streq(g->notebook_id, notebook_id))
                        break;
        if (!g) {
                g = calloc(1, sizeof(*g));
                if (!g || !(g->user_id = strdup(user_id)) || !(g->notebook_id = strdup(notebook_id))) {
                        if (g)
                                free(g->user_id);
                        free(g);
                        log_oom();
                        return;
                }
                g->sync = s;
                g->due = due;
                g->next = s->gcs;
                s->gcs = g;
                if (record)
                        gc_record(s, user_id, notebook_id, true);
        } else
                g->due = MIN(g->due, due); /* running: when the next pass is due */
        gc_arm(s);
}

/* A pass over the notebook's parts, a grace time from now. */
static void gc_want(Sync *s, const char *user_id, const char *notebook_id)
{
        gc_add(s, user_id, notebook_id, now_monotonic_usec() + s->conf.parts_grace_usec + GC_MARGIN_USEC,
               true);
}

static void on_collected(void *userdata, int error, bool again)
{
        Gc *g = userdata;
        Sync *s = g->sync;
        uint64_t now = now_monotonic_usec();

        g->running = false;
        if (error == -ECANCELED) {
                gc_free(s, g);
                return;
        }
        if (error < 0) {
                log_debug("Sync: collecting the parts of %s/%s failed; again in a minute.", g->user_id,
                          g->notebook_id);
                g->due = MIN(g->due, now + GC_RETRY_USEC);
        } else if (again)
                g->due = MIN(g->due, now + s->conf.parts_grace_usec);
        if (g->due == UINT64_MAX) {
                gc_record(s, g->user_id, g->notebook_id, false);
                gc_free(s, g);
        }
        gc_arm(s);
}

static int on_gc_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        Sync *s = userdata;
        uint64_t now = now_monotonic_usec();

        (void)source;
        (void)usec;
        for (Gc *g = s->gcs; g; g = g->next) {
                if (g->due > now)
                        continue;
                g->running = true;
                g->due = UINT64_MAX;
                if (partio_collect(s->remote, s->parts_table, s->conf.table, g->user_id, g->notebook_id,
                                   s->conf.parts_grace_usec, &s->parts_deleted, on_collected, g) < 0) {
                        g->running = false;
                        g->due = now + GC_RETRY_USEC;
                        continue;
                }
                return 0; /* gc_arm() runs when it ends */
        }
        gc_arm(s);
        return 0;
}

static void on_conflict_fetched(void *userdata, int error, DdbErrorClass cls, const char *message,
                                cJSON *item)
{
        Job *j = userdata;
        Sync *s = j->sync;
        RemoteReply rep = { .error = error, .cls = cls, .message = message };

        if (error == 0) {
                answer_reconcile(s, j, RECONCILE_SEEN, item, item, j->fetch_refs);
                return;
        }
        cJSON_Delete(item);
        if (job_cancelled(s, j, &rep))
                return;
        if (error == -EIO && (cls == DDB_RETRYABLE || cls == DDB_THROTTLING))
                job_retry(s, j, &rep);
        else
                job_fail(s, j, message ? message : "cannot read the parts of the table's version", true);
}

static void on_get_after_conflict(void *owner, void *userdata, RemoteReply *rep)
{
        Sync *s = owner;
        Job *j = userdata;
        cJSON *item;

        if (job_cancelled(s, j, rep))
                return;
        if (rep->cls == DDB_RETRYABLE || rep->cls == DDB_THROTTLING || rep->error < 0) {
                job_retry(s, j, rep);
                return;
        }
        if (rep->cls != DDB_OK) {
                j->blocked = true;
                answer_state(s, j, "error", rep->message, true);
                return;
        }
        /* The remote keeps moving under us: each round merges, but back off a little so that two
         * busy writers do not chase each other at full speed. */
        if (++j->races > MAX_RACES)
                j->not_before = now_monotonic_usec() +
                                MIN((uint64_t)(j->races - MAX_RACES) * OUTAGE_MIN_USEC, RACE_MAX_USEC);
        item = rep->body ? cJSON_DetachItemFromObjectCaseSensitive(rep->body, "Item") : NULL;
        free(j->fetch_refs);
        j->fetch_refs = item ? refs_text(item) : NULL;
        if (j->fetch_refs) {
                _cleanup_free_ char *owner_id = partio_owner(j->user_id, j->notebook_id);
                int r = owner_id ? join_known(s, j->user_id, j->notebook_id, item) : -ENOMEM;

                if (r >= 0)
                        r = partio_fetch(s->remote, s->parts_table, owner_id, item, &s->parts_fetched,
                                         on_conflict_fetched, j);
                if (r > 0)
                        return; /* on_conflict_fetched() goes on */
                if (r < 0) {
                        RemoteReply fail = { .error = r,
                                             .message = "cannot fetch the parts of the table's version" };

                        cJSON_Delete(item);
                        if (r == -EBADMSG || r == -EFBIG)
                                job_fail(s, j, parts_why(r), true);
                        else
                                job_retry(s, j, &fail);
                        return;
                }
        }
        answer_reconcile(s, j, item ? RECONCILE_SEEN : RECONCILE_ABSENT_GET, item, item, j->fetch_refs);
}

static void on_push_reply(void *owner, void *userdata, RemoteReply *rep)
{
        Sync *s = owner;
        Job *j = userdata;

        if (job_cancelled(s, j, rep))
                return;
        switch (rep->error < 0 ? DDB_RETRYABLE : rep->cls) {
        case DDB_OK:
                break;
        case DDB_CONDITIONAL_FAILED:
                s->push_outcomes[SYNC_PUSH_CONFLICT]++;
                break;
        case DDB_RETRYABLE:
        case DDB_THROTTLING:
                s->push_outcomes[SYNC_PUSH_RETRYABLE]++;
                break;
        default:
                s->push_outcomes[SYNC_PUSH_ERROR]++;
                break;
        }
        switch (rep->error < 0 ? DDB_RETRYABLE : rep->cls) {
        case DDB_OK:
                s->pushes++;
                if (j->collect || (j->big && !strmap_get(&s->gc_asked, j->key)))
                        gc_want(s, j->user_id, j->notebook_id);
                j->failing = false;
                j->races = 0;
                j->not_before = 0;
                if (j->deleting)
                        answer_reconcile(s, j, RECONCILE_DELETE_ACCEPTED, NULL, NULL, NULL);
                else
                        answer_reconcile(s, j, RECONCILE_SEEN, j->item, NULL, j->parts_refs);
                return;
        case DDB_CONDITIONAL_FAILED: {
                /* Someone else's write, a delete elsewhere, or ours whose answer was lost: what the
                 * remote holds now tells. */
                cJSON *get = ddb_get_item_body(s->conf.table, j->user_id, j->notebook_id);
                int r = get ? remote_call(s->remote, "GetItem", get, on_get_after_conflict, s, j) : -ENOMEM;

                cJSON_Delete(get);
                if (r < 0) {
                        RemoteReply fail = { .error = r, .message = "cannot send GetItem" };
                        job_retry(s, j, &fail);
                }
                return;
        }
        case DDB_RETRYABLE:
        case DDB_THROTTLING: {
                uint64_t delay;

                /* The item of a big notebook whose parts are written goes again by itself: building
                 * the request anew would write its parts again. */
                if (j->parts.n > 0 && retry_delay(s, j, rep, &delay)) {
                        sync_log_failure(s, j->user_id, j->notebook_id, "pending", "%s: %s", j->notebook_id,
                                         rep->message ? rep->message : "request failed");
                        job_send_after(s, j, delay);
                        return;
                }
                job_retry(s, j, rep);
                return;
        }
        case DDB_VALIDATION:
                if (!rep->type || !streq(rep->type, "ResourceNotFoundException"))
                        break;
                _fallthrough_;
        case DDB_AUTH:
                /* Credentials may be fixed or refreshed, the table created: keep trying at the
                 * outage pace. */
                job_fail(s, j, reply_reason(s, rep), false);
                return;
        default:
                break;
        }
        /* The remote refuses this item as it is: wait for the next change. */
        sync_log_failure(s, j->user_id, j->notebook_id, "error", "%s refused: %s", j->notebook_id,
                         rep->message ? rep->message : "invalid");
        j->blocked = true;
        answer_state(s, j, "error", rep->message ? rep->message : "refused by the remote", true);
}

/* Inside the pass's transaction: reconciles what the remote answered, records the notebook's sync
 * state, and ends the flight. The job stays while the notebook has something left to push
 * (changed during the flight, merged, pushed again on a new base); else it is marked to go once
 * the pass commits. A negative error: the transaction is lost. */
static int answer_record(Sync *s, Job *j, uint64_t now)
{
        int r;

        if (j->answer_reconcile) {
                const char *why = NULL;

                r = store_savepoint(s->store);
                if (r < 0)
                        return r;
                r = sync_reconcile(s, j->user_id, j->notebook_id, j->answer_event, j->answer_item,
                                   j->answer_parts, RECONCILE_GEN_NOW);
                if (r >= 0)
                        r = store_release(s->store);
                else {
                        int k = store_rollback_to(s->store);

                        if (k < 0 || !store_in_transaction(s->store))
                                return k < 0 ? k : -EIO;
                        if (r == -EBADMSG)
                                /* An item we cannot read (another program's): nothing to merge with. */
                                why = "the remote holds an item of another shape; not overwritten";
                        else if (r == -E2BIG)
                                why = "merging with the remote version would pass the cell limit";
                        else {
                                log_warning_errno(r,
                                                  "Sync: cannot record what the remote holds of %s/%s: %m",
                                                  j->user_id, j->notebook_id);
                                j->not_before = now + OUTAGE_MIN_USEC;
                        }
                        if (why) {
                                j->blocked = true;
                                j->answer_state = "error";
                                free(j->answer_error);
                                j->answer_error = strdup(why);
                        }
                        r = 0;
                }
                if (r < 0)
                        return r;
                sync_healthy(s);
                j->answer_finish = true;
        }
        if (j->answer_state) {
                r = store_sync_set_state(s->store, j->user_id, j->notebook_id, j->answer_state,
                                         j->answer_error);
                if (r < 0)
                        return r;
        }
        if (j->answer_finish) {
                bool keep = j->blocked || j->not_before;

                if (!keep) {
                        StoreSyncInfo info = { 0 };

                        r = store_sync_read(s->store, j->user_id, j->notebook_id, NULL, &info);
                        if (r < 0 && r != -ENOENT)
                                return r;
                        keep = r == 0 && info.dirty;
                        store_sync_info_done(&info);
                }
                j->in_flight = false;
                s->in_flight--;
                job_clear_request(j);
                j->attempt = 0;
                if (keep) {
                        j->last_change = j->first_change = 0; /* edits of the flight coalesced already */
                        job_schedule(s, j);
                } else
                        j->answer_free = true;
        }
        return 0;
}

static bool user_pulled(Sync *s, const char *user_id)
{
        return strmap_get(&s->pulled, user_id) != NULL;
}

/* Whether writing a version with the references next (NULL: none, or a delete) leaves parts that
 * the base's references name unnamed: the parts table then has parts to collect. */
static bool parts_left(const char *base_text, const char *next_text)
{
        _cleanup_(cJSON_Deletep) cJSON *base = base_text ? cJSON_Parse(base_text) : NULL,
                                       *next = next_text ? cJSON_Parse(next_text) : NULL;
        const cJSON *e;

        if (!base)
                return base_text != NULL; /* unreadable (out of memory): a pass finds out */
        cJSON_ArrayForEach(e, base)
        {
                if (!next || !parts_ref_within(cJSON_GetArrayItem(e, 2), next))
                        return true;
        }
        return false;
}

/* j->item does not fit in one DynamoDB item: moves its largest values to parts (j->parts, less
 * those base_parts names: the table holds the base's, and the write is conditioned on the base),
 * and returns the item to send, which names them. -E2BIG: what cannot move is too large. */
static int job_split(Sync *s, Job *j, const char *base_parts, cJSON **ret_wire)
{
        _cleanup_(cJSON_Deletep) cJSON *wire = cJSON_Duplicate(j->item, true), *known = cJSON_CreateObject(),
                                       *learned = cJSON_CreateObject(), *base = NULL;
        _cleanup_free_ char *owner = partio_owner(j->user_id, j->notebook_id);
        const cJSON *c;
        size_t k = 0;
        int r;

        if (!wire || !known || !learned || !owner)
                return -ENOMEM;
        base = base_parts ? cJSON_Parse(base_parts) : NULL;
        /* Only what the base names is known to be in the table. */
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(s->ref_cache, owner))
        {
                if (base && parts_ref_within(c, base) &&
                    !cJSON_AddItemToObject(known, c->string, cJSON_Duplicate(c, true)))
                        return -ENOMEM;
        }
        r = parts_split_known(wire, PARTS_ITEM_TARGET, known, learned, &j->parts);
        /* Small values alone may keep the item above the target: it still goes if it fits. */
        if (r == -E2BIG && ddb_item_size(wire) <= DDB_MAX_ITEM_BYTES)
                r = 0;
        if (r < 0)
                return r;
        j->parts_refs = refs_text(wire);
        if (!j->parts_refs)
                return -ENOMEM;
        cJSON_DeleteItemFromObjectCaseSensitive(s->ref_cache, owner);
        if (cJSON_GetArraySize(s->ref_cache) >= REF_CACHE_NOTEBOOKS)
                cJSON_Delete(cJSON_DetachItemViaPointer(s->ref_cache, s->ref_cache->child));
        if (cJSON_AddItemToObject(s->ref_cache, owner, learned))
                learned = NULL;
        for (size_t i = 0; i < j->parts.n; i++) {
                if (base && parts_refs_name(base, j->parts.v[i].hash)) {
                        free(j->parts.v[i].data);
                        continue;
                }
                j->parts.v[k++] = j->parts.v[i];
        }
        j->parts.n = k;
        *ret_wire = TAKE_PTR(wire);
        return 0;
}

/* Builds the request for the notebook as it is now and records its token, inside the caller's
 * transaction, which commits before anything is sent. 0: send j->request; 1: nothing to send,
 * done; -EAGAIN: held until the user's first pull; -EFBIG: cannot go as it is, blocked (the state
 * says why); -ENOENT: nothing to push; other errors: the transaction is lost. */
static int job_prepare(Sync *s, Job *j)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = NULL, *wire = NULL;
        _cleanup_free_ char *base_parts = NULL;
        bool unconfirmed = false;
        StoreSyncInfo info = { 0 };
        char fresh[UUID_STRING_MAX];
        size_t size;
        int r;

        r = store_sync_read(s->store, j->user_id, j->notebook_id, &nb, &info);
        if (r < 0)
                return r; /* -ENOENT: gone entirely, nothing to do */
        if (!info.dirty) {
                store_sync_info_done(&info);
                return -ENOENT;
        }
        j->deleting = info.deleted;
        /* Provisioned here and untouched: another device may have provisioned this user first
         * (its versions win), or deleted the notebook since (it must not come back). */
        if (!info.deleted && info.base_revision < 0 && !user_pulled(s, j->user_id) &&
            pristine_provisioned(j->user_id, j->notebook_id, nb)) {
                store_sync_info_done(&info);
                return -EAGAIN;
        }
        /* Provisioned here and deleted untouched before the user's first pull: another device's
         * untouched copy, if the pull finds one, goes too; so the tombstone waits for that pull. */
        if (deleted_untouched(j->user_id, j->notebook_id, &info) && !user_pulled(s, j->user_id)) {
                store_sync_info_done(&info);
                return -EAGAIN;
        }
        if (info.deleted && info.base_revision < 0) {
                /* Deleted before it was ever confirmed on the remote. Without a token, no write was
                 * ever sent: forget it. With one, an earlier write may stand there (its answer
                 * lost): the tombstone waits for a pull, which finds our token (and the delete goes
                 * out on it) or finds nothing. */
                int n = store_sync_tokens_count(s->store, j->user_id, j->notebook_id);

                store_sync_info_done(&info);
                if (n < 0)
                        return n;
                r = n > 0 ? store_sync_base_parts(s->store, j->user_id, j->notebook_id, &base_parts,
                                                  &unconfirmed)
                          : 0;
                if (r < 0)
                        return r;
                r = n == 0 ? store_sync_remove(s->store, j->user_id, j->notebook_id)
                           : sync_reconcile(s, j->user_id, j->notebook_id, RECONCILE_DELETE_ACCEPTED, NULL,
                                            NULL, RECONCILE_GEN_NOW);
                if (r < 0)
                        return r;
                /* A write of ours cut short may have left parts: whether it landed or not, a pass
                 * sees to them. */
                if (unconfirmed)
                        gc_want(s, j->user_id, j->notebook_id);
                if (n > 0)
                        pull_start(s, j->user_id);
                return 1;
        }

        r = uuid_v4_string(fresh);
        /* Parts the base names and the new version does not (all, for a delete) go once the write
         * stands. */
        if (r >= 0)
                r = store_sync_base_parts(s->store, j->user_id, j->notebook_id, &base_parts, &unconfirmed);
        if (r >= 0 && j->deleting)
                /* A delete leaves nothing to recognise: its outcome is the item's absence. */
                j->request = ddb_delete_item_body(s->conf.table, j->user_id, j->notebook_id,
                                                  info.base_revision, info.base_sync_id);
        else if (r >= 0) {
                /* A retry of the same revision reuses its token, so the ledger grows only with
                 * revisions actually sent. */
                r = store_sync_token(s->store, j->user_id, j->notebook_id, info.revision, fresh, j->sync_id);
                if (r >= 0)
                        r = ddb_item_from_notebook(nb, j->sync_id, &j->item);
                /* The version it is written on: whoever builds on this write, though we never hear
                 * that it landed, names it as theirs. */
                if (r >= 0 && info.base_revision >= 0)
                        r = ddb_item_set_parent(j->item, info.base_sync_id);
                if (r == -ERANGE) {
                        /* The protocol refuses such values; one stored before that cannot go out. */
                        r = store_sync_set_state(s->store, j->user_id, j->notebook_id, "error",
                                                 "holds a value DynamoDB cannot store (a number out of its "
                                                 "range, or nesting deeper than 32); kept locally");
                        j->blocked = true;
                        if (r >= 0)
                                r = -EFBIG;
                } else if (r >= 0 && (size = ddb_item_size(j->item)) > DDB_MAX_ITEM_BYTES &&
                           (r = job_split(s, j, base_parts, &wire)) == -E2BIG) {
                        char why[200];

                        snprintf(why, sizeof(why),
                                 "too large: the values too small to move to parts (under 1 KiB each, in "
                                 "many cells) take more than the %u bytes a DynamoDB item allows; kept "
                                 "locally",
                                 (unsigned)DDB_MAX_ITEM_BYTES);
                        log_notebook(LOG_WARNING, 0, j->user_id, j->notebook_id, "error",
                                     "Sync: %s/%s is %s.", j->user_id, j->notebook_id, why);
                        r = store_sync_set_state(s->store, j->user_id, j->notebook_id, "error", why);
                        j->blocked = true;
                        if (r >= 0)
                                r = -EFBIG;
                } else if (r >= 0) {
                        _cleanup_free_ char *snapshot = model_json_print(j->item, false);

                        r = snapshot ? store_sync_token_snapshot(s->store, j->user_id, j->notebook_id,
                                                                 j->sync_id, snapshot, j->parts_refs)
                                     : -ENOMEM;
                        if (r >= 0)
                                j->request = ddb_put_item_body(s->conf.table, wire ? wire : j->item,
                                                               info.base_revision, info.base_sync_id);
                }
        }
        if (r >= 0 && !j->request)
                r = -ENOMEM;
        if (r >= 0) {
                j->collect = parts_left(base_parts, j->deleting ? NULL : j->parts_refs);
                /* A write of ours not confirmed may have left parts behind too. */
                j->big = base_parts || j->parts_refs || unconfirmed;
        }
        if (r >= 0)
                r = store_sync_set_state(s->store, j->user_id, j->notebook_id, "syncing", NULL);
        store_sync_info_done(&info);
        return r;
}

/* Inside the batch's transaction: what to do with the job; 1 if its request is to go once the
 * transaction commits; a negative error if the transaction is lost. */
static int job_start(Sync *s, Job *j)
{
        int r;

        r = job_prepare(s, j);
        if (r == -ENOENT || r == 1) {
                job_clear_request(j);
                job_free(s, j);
                return 0;
        }
        if (r == -EFBIG) {
                job_clear_request(j);
                job_schedule(s, j); /* blocked */
                return 0;
        }
        if (r == -EAGAIN) {
                j->held = true;
                job_schedule(s, j);
                pull_start(s, j->user_id);
                return 0;
        }
        if (r < 0) {
                job_clear_request(j);
                return r;
        }
        j->last_change = j->first_change = 0;
        j->failing = false;
        j->in_flight = true;
        s->in_flight++;
        job_schedule(s, j);
        return 1;
}

static void on_part_reply(void *owner, void *userdata, RemoteReply *rep);

/* Sends the job's next request, after delay_usec: its parts one after another, then the item that
 * names them. */
static void job_send_after(Sync *s, Job *j, uint64_t delay_usec)
{
        int r;

        if (j->parts.n > 0 && j->part_next == j->parts.n &&
            now_realtime_usec() - j->parts_since > s->conf.parts_grace_usec / 2) {
                /* The parts went out long ago (a machine suspended, long retries): collection on
                 * another machine may take them for unused before the item names them. Write them
                 * again, with the item as it is now. */
                log_notebook(LOG_INFO, 0, j->user_id, j->notebook_id, "pending",
                             "Sync: the parts of %s were written too long ago; writing them again.",
                             j->notebook_id);
                j->in_flight = false;
                s->in_flight--;
                job_clear_request(j);
                j->not_before = 0;
                job_schedule(s, j);
                answer_state(s, j, "pending", NULL, false);
                return;
        }
        if (j->part_next < j->parts.n) {
                const Part *p = &j->parts.v[j->part_next];
                _cleanup_free_ char *owner = partio_owner(j->user_id, j->notebook_id);
                char ts[TIMESTAMP_MAX];
                uint64_t now = now_realtime_usec();
                _cleanup_(cJSON_Deletep) cJSON *body =
                        owner ? ddb_part_put_body(s->parts_table, owner, p->hash, p->data, p->size,
                                                  format_timestamp(ts, now))
                              : NULL;

                if (!j->parts_since)
                        j->parts_since = now;

                r = body ? remote_call_after(s->remote, delay_usec, "PutItem", body, on_part_reply, s, j)
                         : -ENOMEM;
        } else
                r = remote_call_after(s->remote, delay_usec, j->deleting ? "DeleteItem" : "PutItem",
                                      j->request, on_push_reply, s, j);
        if (r < 0) {
                RemoteReply fail = { .error = r, .message = "cannot send the request" };
                job_retry(s, j, &fail);
        }
}

static void job_send(Sync *s, Job *j)
{
        job_send_after(s, j, 0);
}

static void on_part_reply(void *owner, void *userdata, RemoteReply *rep)
{
        Sync *s = owner;
        Job *j = userdata;

        if (rep->error >= 0 && rep->cls == DDB_OK) {
                /* Once written, a part needs no more memory here. */
                j->parts.v[j->part_next].data = mfree(j->parts.v[j->part_next].data);
                j->part_next++;
                j->attempt = 0;
                s->parts_written++;
                job_send(s, j);
                return;
        }
        /* A part that failed for a passing reason is tried again by itself, as a request of the
         * standard retry mode: the parts written before it stand. */
        if (rep->error != -ECANCELED &&
            (rep->error < 0 || rep->cls == DDB_RETRYABLE || rep->cls == DDB_THROTTLING)) {
                uint64_t delay;

                if (retry_delay(s, j, rep, &delay)) {
                        sync_log_failure(s, j->user_id, j->notebook_id, "pending", "%s: %s", j->notebook_id,
                                         rep->message ? rep->message : "request failed");
                        job_send_after(s, j, delay);
                        return;
                }
        }
        if (rep->error >= 0 && rep->type && streq(rep->type, "ResourceNotFoundException")) {
                char why[300];

                snprintf(
                        why, sizeof(why),
                        "parts table %s does not exist ('notebookctl table create' makes it); this notebook "
                        "needs it, being larger than a DynamoDB item",
                        s->parts_table);
                job_fail(s, j, why, false);
                return;
        }
        /* Anything else as for the item itself: retried, held for the credentials, or refused. */
        on_push_reply(owner, userdata, rep);
}

/* ---- scheduling ---------------------------------------------------------------------------- */

/* A pass: the answers of the remote that arrived are recorded and the jobs that are due are
 * prepared, all in one transaction, whose commit records the tokens before any request goes. */
static void sync_pass(Sync *s)
{
        uint64_t now = now_monotonic_usec();
        Job *answers = s->answers, *done = NULL, *go = NULL, **go_tail = &go, *j, *next;
        uint64_t seq = 0;
        int r;

        s->answers = NULL;
        s->answers_tail = &s->answers;
        r = sync_begin(s);
        for (j = answers; r >= 0 && j; j = j->answer_next)
                r = answer_record(s, j, now);
        /* The answers are recorded (or lost with the transaction): the jobs are ordinary again,
         * but for those with nothing left to push, which go once the pass commits. */
        for (j = answers; j; j = next) {
                next = j->answer_next;
                if (r >= 0 && j->answer_free) {
                        j->answer_next = done;
                        done = j;
                        j->answered = false; /* it is no longer in s->answers */
                        continue;
                }
                if (r < 0 && j->in_flight && (j->answer_reconcile || j->answer_finish)) {
                        /* Not recorded: the flight ends, the notebook stays dirty and goes again. */
                        j->in_flight = false;
                        s->in_flight--;
                        job_clear_request(j);
                        j->not_before = now + OUTAGE_MIN_USEC;
                }
                answer_clear(j);
                job_schedule(s, j);
        }

        while (r >= 0 && s->n_queue > 0 && s->in_flight < s->conf.max_in_flight && s->offline_until <= now &&
               !s->draining && s->queue[0]->due <= now) {
                j = s->queue[0];
                r = job_start(s, j); /* takes it out of the queue, or frees it */
                if (r > 0) {
                        j->go_next = NULL;
                        *go_tail = j;
                        go_tail = &j->go_next;
                }
        }
        r = sync_commit_seq(s, r, "the answers and write tokens of a pass", &seq);

        for (j = done; j; j = next) {
                next = j->answer_next;
                if (r >= 0) {
                        answer_clear(j);
                        job_free(s, j);
                        continue;
                }
                /* Its end was not recorded: it stays, and looks again shortly. */
                answer_clear(j);
                j->not_before = now + OUTAGE_MIN_USEC;
                job_schedule(s, j);
        }
        for (j = go; j; j = next) {
                next = j->go_next;
                if (r >= 0) {
                        /* Sent once the token is on disk: a write we would not recognise after a
                         * power cut never goes out. */
                        j->send_seq = seq;
                        j->go_next = NULL;
                        *s->unsent_tail = j;
                        s->unsent_tail = &j->go_next;
                        continue;
                }
                /* Not recorded, not sent: the notebooks stay dirty; try again shortly. */
                j->in_flight = false;
                s->in_flight--;
                job_clear_request(j);
                j->not_before = now + OUTAGE_MIN_USEC;
                job_schedule(s, j);
        }
        sync_flushed(s);
        sync_arm(s);
}

void sync_flushed(Sync *s)
{
        uint64_t durable;

        /* A failed sync stops the daemon (the server sees it too): nothing more goes out. */
        if (store_durable(s->store, &durable) < 0)
                return;
        while (s->unsent && s->unsent->send_seq <= durable) {
                Job *j = s->unsent;

                s->unsent = j->go_next;
                if (!s->unsent)
                        s->unsent_tail = &s->unsent;
                job_send(s, j);
        }
        while (s->notes && s->notes->seq <= durable) {
                SyncNote *n = s->notes;

                s->notes = n->next;
                if (!s->notes)
                        s->notes_tail = &s->notes;
                notify_changes(s, n->changed);
                free(n);
        }
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        sync_pass(userdata);
        return 0;
}

static int on_pass(sd_event_source *source, void *userdata)
{
        sync_pass(userdata);
        return 0;
}

static void drain_done(Sync *s)
{
        SyncDrainFunc func = s->drain_func;

        if (!func)
                return;
        s->drain_func = NULL;
        s->drain_timer = sd_event_source_disable_unref(s->drain_timer);
        func(s->drain_userdata);
}

/* Sets the timer to the earliest moment a job may start. */
static void sync_arm(Sync *s)
{
        uint64_t when;

        if (s->draining) {
                sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                if (s->in_flight == 0 && !s->answers)
                        drain_done(s);
                return;
        }
        if (s->n_queue == 0 || s->in_flight >= s->conf.max_in_flight) {
                sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                return;
        }
        when = MAX(s->queue[0]->due, s->offline_until);
        sd_event_source_set_time(s->timer, MAX(when, 1));
        sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

/* ---- pulling ------------------------------------------------------------------------------- */

struct Pull {
        Pull *next;
        Sync *sync;
        char *user_id;
        cJSON *start_key;
        uint64_t gen;            /* taken when the pull started */
        StrMap seen;             /* notebook ids found so far */
        bool saw_provisioned[2]; /* blank-USER, demo-USER */
        bool saw_synced;         /* a notebook of the user that a notebookd wrote (a sync_id) */
        /* Big notebooks new here: waiting for their parts (later), or being fetched. The pull ends
         * once they are applied. */
        cJSON *later;
        unsigned fetching;
        bool pages_done; /* the last page came, or the pull failed */
        bool failed;     /* then why */
        bool cancelled;  /* shutdown: freed once nothing is in flight */
        char why[256];
};

/* A big notebook of a pull, while its parts come. */
typedef struct PullFetch {
        Pull *pull;
        char *notebook_id;
        char *refs; /* the references of the item as the table holds it */
} PullFetch;

static const char *const provisioned_prefix[2] = { "blank-", "demo-" };

/* Fetches still in flight keep it (cancelled) until the last one ends. */
static void pull_free(Pull *p)
{
        Pull **pp;

        if (!p)
                return;
        for (pp = &p->sync->pulls; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        if (p->fetching > 0) {
                p->cancelled = true;
                return;
        }
        free(p->user_id);
        cJSON_Delete(p->start_key);
        cJSON_Delete(p->later);
        strmap_done(&p->seen);
        free(p);
}

static Pull *pull_find(Sync *s, const char *user_id)
{
        for (Pull *p = s->pulls; p; p = p->next)
                if (streq(p->user_id, user_id))
                        return p;
        return NULL;
}

static int pull_page(Pull *p);

/* An item of the table this daemon cannot take as it is (a number a double would change, another
 * shape, too many cells, parts that cannot be read): the notebook's error, said once, not at every
 * pull. 0, or 1 when the notebook is not held here (nothing to record it on). */
static int pull_refused(Sync *s, const char *user, const char *id, const char *detail)
{
        StoreSyncInfo info = { 0 };
        char why[400];
        bool known;
        int r;

        snprintf(why, sizeof(why), "the table's version cannot be taken (%s); kept as it is here", detail);
        r = store_sync_read(s->store, user, id, NULL, &info);
        known = r == 0 && streq_ptr(info.sync_error, why);
        store_sync_info_done(&info);
        if (known)
                return 0;
        log_notebook(LOG_WARNING, 0, user, id, "error", "Sync: %s/%s: %s.", user, id, why);
        return r == 0 ? store_sync_set_state(s->store, user, id, "error", why) : r == -ENOENT ? 1 : r;
}

/* Records (why) or forgets (NULL) that the table's version of a notebook, item, cannot be read;
 * local: the notebook is held here. */
static void unreadable_set(Sync *s, const cJSON *item, const char *why, bool local)
{
        _cleanup_free_ char *key = NULL;
        DdbItemHead head;
        cJSON *e;

        if (ddb_item_head(item, &head) < 0 || !(key = job_key(head.user_id, head.notebook_id)))
                return;
        cJSON_DeleteItemFromObjectCaseSensitive(s->unreadable, key);
        if (!why)
                return;
        e = cJSON_CreateObject();
        if (!e || !cJSON_AddStringToObject(e, "user_id", head.user_id) ||
            !cJSON_AddStringToObject(e, "notebook_id", head.notebook_id) ||
            !cJSON_AddNumberToObject(e, "revision", (double)head.revision) ||
            !cJSON_AddStringToObject(e, "sync_id", head.sync_id ? head.sync_id : "") ||
            !cJSON_AddStringToObject(e, "error", why) || !cJSON_AddBoolToObject(e, "local", local) ||
            !cJSON_AddNumberToObject(e, "at", (double)now_monotonic_usec()) ||
            !cJSON_AddItemToObject(s->unreadable, key, e)) {
                cJSON_Delete(e);
                log_oom();
        }
}

/* Whether item is a version found unreadable lately: not fetched again yet. */
static bool unreadable_known(Sync *s, const DdbItemHead *head)
{
        _cleanup_free_ char *key = job_key(head->user_id, head->notebook_id);
        const cJSON *e = key ? cJSON_GetObjectItemCaseSensitive(s->unreadable, key) : NULL;

        return e && cJSON_GetObjectItem(e, "revision")->valuedouble == (double)head->revision &&
               streq(cJSON_GetObjectItem(e, "sync_id")->valuestring, head->sync_id ? head->sync_id : "") &&
               now_monotonic_usec() - (uint64_t)cJSON_GetObjectItem(e, "at")->valuedouble <
                       UNREADABLE_RETRY_USEC;
}

static const char *refused_why(int error)
{
        return error == -E2BIG ? "more cells than a notebook may hold"
                               : "another shape, or a number notebookd cannot keep exactly";
}

/* One item of a page, inside the page's transaction. 1: an item that names parts and is new here,
 * to apply once they are fetched (pull_fetch()). */
static int pull_apply(Sync *s, Pull *p, const cJSON *item)
{
        DdbItemHead head;
        Job *j;
        int r;

        r = ddb_item_head(item, &head);
        if (r < 0 || !streq(head.user_id, p->user_id)) {
                log_warning("Sync: ignoring a malformed item in the table of %s.", p->user_id);
                return 0;
        }
        if (strmap_put(&p->seen, head.notebook_id, p) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(provisioned_prefix); i++)
                if (startswith(head.notebook_id, provisioned_prefix[i]) &&
                    streq(head.notebook_id + strlen(provisioned_prefix[i]), head.user_id))
                        p->saw_provisioned[i] = true;
        p->saw_synced |= head.sync_id != NULL;
        j = job_find(s, head.user_id, head.notebook_id);
        if (j && j->in_flight)
                return 0; /* our own write is on its way; its answer decides */
        if (parts_named(item)) {
                StoreSyncInfo info = { 0 };
                bool base;

                /* The version we hold as the base: nothing to do (the common case, and cheap). */
                r = store_sync_read(s->store, head.user_id, head.notebook_id, NULL, &info);
                if (r < 0 && r != -ENOENT)
                        return r;
                base = r == 0 && info.base_revision == head.revision &&
                       streq_ptr(info.base_sync_id, head.sync_id) && !(info.deleted && info.delete_done);
                store_sync_info_done(&info);
                return base || unreadable_known(s, &head) ? 0 : 1;
        }
        r = sync_reconcile(s, head.user_id, head.notebook_id, RECONCILE_SEEN, item, NULL, p->gen);
        if (r == -EBADMSG || r == -E2BIG)
                r = pull_refused(s, head.user_id, head.notebook_id, refused_why(r));
        return r < 0 ? r : 0;
}

static void pull_end(Sync *s, Pull *p, bool complete, const char *why);
static void pull_done(Sync *s, Pull *p, bool complete, const char *why);

static void pull_fetch_free(PullFetch *pf)
{
        free(pf->notebook_id);
        free(pf->refs);
        free(pf);
}

/* A big notebook of the pull, whole (error 0), or why not, in a transaction of its own. */
static void pull_apply_whole(Sync *s, Pull *p, const PullFetch *pf, const cJSON *item, int error,
                             const char *message)
{
        Job *j = job_find(s, p->user_id, pf->notebook_id);
        int r = sync_begin(s);

        if (r >= 0 && !(j && j->in_flight)) {
                if (error == 0) {
                        r = sync_reconcile(s, p->user_id, pf->notebook_id, RECONCILE_SEEN, item, pf->refs,
                                           p->gen);
                        if (r == -EBADMSG || r == -E2BIG)
                                r = pull_refused(s, p->user_id, pf->notebook_id, refused_why(r));
                        unreadable_set(s, item, NULL, true);
                } else {
                        const char *why = message ? message : "its parts cannot be read";

                        /* Kept as it is here, and counted as seen: never taken for deleted. */
                        r = pull_refused(s, p->user_id, pf->notebook_id, why);
                        if (r >= 0)
                                unreadable_set(s, item, why, r == 0);
                }
        }
        if (sync_commit(s, r < 0 ? r : 0, "a pulled notebook") < 0) {
                p->failed = true;
                snprintf(p->why, sizeof(p->why), "cannot record a pulled notebook");
        }
}

/* A pull that failed fetches no more: the next one will. */
static void pull_drop_later(Pull *p)
{
        cJSON *item;

        while ((item = cJSON_DetachItemFromArray(p->later, 0)))
                cJSON_Delete(item);
}

/* Ends the pull if nothing of it is left to do. */
static void pull_fetch_check(Sync *s, Pull *p)
{
        if (p->fetching > 0)
                return;
        if (p->cancelled)
                pull_free(p);
        else if (p->pages_done && cJSON_GetArraySize(p->later) == 0)
                pull_done(s, p, !p->failed, p->why[0] ? p->why : NULL);
}

static void pull_fetch(Sync *s, Pull *p, cJSON *item);

/* Starts fetching what pulls wait for, at most MAX_FETCHES notebooks at a time in all (each holds
 * a whole notebook in memory), and ends the pulls that are done. */
static void pull_kick(Sync *s)
{
        Pull *p, *next;
        cJSON *item;

        for (p = s->pulls; p; p = next) {
                next = p->next;
                while (s->fetches < MAX_FETCHES && (item = cJSON_DetachItemFromArray(p->later, 0)))
                        pull_fetch(s, p, item);
                pull_fetch_check(s, p);
        }
}

static void on_pull_fetched(void *userdata, int error, DdbErrorClass cls, const char *message, cJSON *item)
{
        PullFetch *pf = userdata;
        Pull *p = pf->pull;
        Sync *s = p->sync;

        p->fetching--;
        s->fetches--;
        if (error == -ECANCELED)
                p->cancelled = true;
        else if (p->cancelled)
                ;
        else if (error == 0 || error == -ENOENT || error == -EBADMSG || error == -EFBIG)
                pull_apply_whole(s, p, pf, item, error, message);
        else {
                p->failed = true;
                snprintf(p->why, sizeof(p->why), "%s", message ? message : "cannot fetch parts");
                sync_log_failure(s, p->user_id, pf->notebook_id, NULL, "pull of %s: %s", p->user_id, p->why);
                if (cls == DDB_RETRYABLE || cls == DDB_THROTTLING)
                        sync_outage(s);
                pull_drop_later(p);
        }
        cJSON_Delete(item);
        pull_fetch_free(pf);
        if (p->cancelled)
                pull_fetch_check(s, p);
        else if (error != -ECANCELED)
                pull_kick(s);
}

/* Joins item (taken: a page's, naming parts) with what is known here, and fetches the rest. */
static void pull_fetch(Sync *s, Pull *p, cJSON *item)
{
        _cleanup_free_ char *owner = NULL;
        PullFetch *pf = calloc(1, sizeof(*pf));
        DdbItemHead head;
        int r = pf && ddb_item_head(item, &head) >= 0 ? 0 : -ENOMEM;

        if (r >= 0) {
                pf->pull = p;
                pf->notebook_id = strdup(head.notebook_id);
                pf->refs = refs_text(item);
                owner = partio_owner(p->user_id, head.notebook_id);
                r = pf->notebook_id && pf->refs && owner ? join_known(s, p->user_id, head.notebook_id, item)
                                                         : -ENOMEM;
        }
        if (r >= 0)
                r = partio_fetch(s->remote, s->parts_table, owner, item, &s->parts_fetched, on_pull_fetched,
                                 pf);
        if (r > 0) {
                p->fetching++;
                s->fetches++;
                return;
        }
        if (r == 0 || r == -EBADMSG || r == -EFBIG)
                /* Everything was known here; or references no reader can follow. */
                pull_apply_whole(s, p, pf, item, r, parts_why(r));
        else {
                p->failed = true;
                snprintf(p->why, sizeof(p->why), "cannot fetch the parts of a notebook: %s", strerror(-r));
        }
        cJSON_Delete(item);
        if (pf)
                pull_fetch_free(pf);
}

/* A blank-USER or demo-USER provisioned here and untouched that the table lacks, though it holds
 * notebooks of the user written by a notebookd: every notebookd provisions a user it serves, so one
 * did, and the notebook was deleted there since. It goes here too. Notebooks only the web backend
 * wrote (no sync_id) are no such evidence: then ours are pushed. */
static int forget_provisioned(Sync *s, const char *user_id, const char *prefix)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = NULL;
        char id[MAX_ID_BYTES + 1];
        StoreSyncInfo info = { 0 };
        bool pristine;
        Job *j;
        int r;

        snprintf(id, sizeof(id), "%s%s", prefix, user_id);
        j = job_find(s, user_id, id);
        if (j && j->in_flight)
                return 0;
        if (store_sync_read(s->store, user_id, id, &nb, &info) < 0)
                return 0;
        /* Revision 1: as first provisioned here, never touched, never made again by demo.reset. */
        pristine = !info.deleted && info.base_revision < 0 && info.revision == 1 &&
                   pristine_provisioned(user_id, id, nb);
        store_sync_info_done(&info);
        if (!pristine || store_sync_tokens_count(s->store, user_id, id) != 0)
                return 0;
        r = store_sync_remove(s->store, user_id, id);
        if (r < 0)
                return r;
        log_notebook(LOG_INFO, 0, user_id, id, "synced",
                     "Sync: %s was deleted on another device before this one provisioned it; removed here.",
                     id);
        if (j)
                job_free(s, j);
        sync_changed(s, user_id, id);
        return 0;
}

/* A complete pull: every notebook the remote had and that it no longer shows. */
static int pull_absent(Sync *s, Pull *p)
{
        _cleanup_(cJSON_Deletep) cJSON *known = NULL;
        const cJSON *id;
        int r;

        r = store_sync_known(s->store, p->user_id, &known);
        if (r < 0)
                return r;
        cJSON_ArrayForEach(id, known)
        {
                Job *j;

                if (strmap_get(&p->seen, id->valuestring))
                        continue;
                j = job_find(s, p->user_id, id->valuestring);
                if (j && j->in_flight)
                        continue;
                r = sync_reconcile(s, p->user_id, id->valuestring, RECONCILE_ABSENT_PULL, NULL, NULL,
                                   p->gen);
                if (r < 0)
                        return r;
        }
        if (p->saw_synced)
                for (size_t i = 0; i < ELEMENTSOF(provisioned_prefix); i++)
                        if (!p->saw_provisioned[i]) {
                                r = forget_provisioned(s, p->user_id, provisioned_prefix[i]);
                                if (r < 0)
                                        return r;
                        }
        return 0;
}

/* The end of a user's pull. complete: every page was read; else why not. */
static void pull_done(Sync *s, Pull *p, bool complete, const char *why)
{
        if (complete)
                s->pulls_complete++;
        else
                s->pulls_failed++;
        for (Job *j = s->jobs; j; j = j->next)
                if (j->held && streq(j->user_id, p->user_id)) {
                        j->held = false;
                        /* Complete: go now. Failed: try again at the outage pace (and pull again). */
                        j->not_before = complete ? 0 : s->offline_until;
                        j->failing = !complete;
                        job_schedule(s, j);
                        if (!complete) {
                                char msg[300];

                                snprintf(msg, sizeof(msg), "waits for a first complete pull of its user: %s",
                                         why ? why : "the pull failed");
                                job_set_state(s, j, "error", msg);
                        }
                }
        if (complete) {
                int r = sync_begin(s);

                if (r >= 0)
                        r = pull_absent(s, p);
                if (sync_commit(s, r, "the end of a pull") >= 0 && !user_pulled(s, p->user_id) &&
                    strmap_put(&s->pulled, p->user_id, s) < 0)
                        log_oom();
        }
        pull_free(p);
        if (!s->pulls && s->pull_again && !s->draining) {
                s->pull_again = false;
                sync_pull_now(s);
        }
        sync_arm(s);
}

static void on_query_reply(void *owner, void *userdata, RemoteReply *rep)
{
        Sync *s = owner;
        Pull *p = userdata;
        _cleanup_(cJSON_Deletep) cJSON *later = cJSON_CreateArray();
        cJSON *items, *item, *next;
        const cJSON *last;
        int r;

        if (rep->error == -ECANCELED) {
                pull_free(p);
                return;
        }
        if (rep->error < 0 || rep->cls != DDB_OK) {
                sync_log_failure(s, p->user_id, NULL, NULL, "pull of %s: %s", p->user_id,
                                 reply_reason(s, rep));
                if (rep->error < 0 || rep->cls == DDB_RETRYABLE || rep->cls == DDB_THROTTLING ||
                    (rep->type && streq(rep->type, "ResourceNotFoundException")))
                        sync_outage(s);
                pull_end(s, p, false, reply_reason(s, rep));
                return;
        }
        sync_healthy(s);
        /* A page is one transaction: one commit, however many items it brings. Big notebooks new
         * here follow, each once its parts are fetched. */
        items = cJSON_GetObjectItemCaseSensitive(rep->body, "Items");
        r = later ? sync_begin(s) : -ENOMEM;
        for (item = items ? items->child : NULL; item && r >= 0; item = next) {
                next = item->next;
                r = pull_apply(s, p, item);
                if (r == 1) {
                        r = 0;
                        cJSON_AddItemToArray(later, cJSON_DetachItemViaPointer(items, item));
                }
        }
        if (sync_commit(s, r, "a pulled page") < 0) {
                pull_end(s, p, false, "cannot record a pulled page");
                return;
        }
        while ((item = cJSON_DetachItemFromArray(later, 0)))
                cJSON_AddItemToArray(p->later, item);

        last = cJSON_GetObjectItemCaseSensitive(rep->body, "LastEvaluatedKey");
        if (last) {
                cJSON_Delete(p->start_key);
                p->start_key = cJSON_Duplicate(last, true);
                if (p->start_key && pull_page(p) >= 0) {
                        pull_kick(s);
                        return;
                }
                pull_end(s, p, false, "cannot ask for the next page");
        } else
                pull_end(s, p, true, NULL);
        pull_kick(s);
}

/* The last page came (complete), or the pull failed: it is done once its fetches are (a failed
 * pull fetches no more). */
static void pull_end(Sync *s, Pull *p, bool complete, const char *why)
{
        p->pages_done = true;
        if (!complete && !p->failed) {
                p->failed = true;
                snprintf(p->why, sizeof(p->why), "%s", why ? why : "the pull failed");
        }
        if (p->failed)
                pull_drop_later(p);
        pull_fetch_check(s, p);
}

static int pull_page(Pull *p)
{
        cJSON *q = ddb_query_body(p->sync->conf.table, p->user_id, p->start_key, QUERY_PAGE_ITEMS);
        int r;

        if (!q)
                return -ENOMEM;
        r = remote_call(p->sync->remote, "Query", q, on_query_reply, p->sync, p);
        cJSON_Delete(q);
        return r;
}

void sync_set_change_callback(Sync *s, SyncChangeFunc func, void *userdata)
{
        s->change_func = func;
        s->change_userdata = userdata;
}

static void pull_start(Sync *s, const char *user_id)
{
        Pull *p;

        if (s->draining || pull_find(s, user_id))
                return;
        p = calloc(1, sizeof(*p));
        if (!p || !(p->user_id = strdup(user_id)) || !(p->later = cJSON_CreateArray())) {
                if (p)
                        free(p->user_id);
                free(p);
                log_oom();
                return;
        }
        p->sync = s;
        p->gen = ++s->gen;
        p->next = s->pulls;
        s->pulls = p;
        if (pull_page(p) < 0)
                pull_free(p);
}

void sync_pull_now(Sync *s)
{
        _cleanup_(cJSON_Deletep) cJSON *users = NULL;
        const cJSON *u;

        if (!s)
                return;
        /* One full pull at a time; one asked for meanwhile runs when the current one ends. */
        if (s->pulls) {
                s->pull_again = true;
                return;
        }
        if (store_sync_users(s->store, &users) < 0)
                return;
        cJSON_ArrayForEach(u, users) pull_start(s, u->valuestring);
}

void sync_pull_user(Sync *s, const char *user_id)
{
        if (s)
                pull_start(s, user_id);
}

/* Adds a job for every dirty notebook the engine does not know of: at start-up all of them, later
 * any whose change notification was lost. */
static int sync_rescan(Sync *s)
{
        _cleanup_(cJSON_Deletep) cJSON *dirty = NULL;
        const cJSON *pair;
        int r;

        r = store_sync_dirty(s->store, INT64_MAX, &dirty);
        if (r < 0)
                return r;
        cJSON_ArrayForEach(pair, dirty)
        {
                const char *user = cJSON_GetArrayItem(pair, 0)->valuestring,
                           *id = cJSON_GetArrayItem(pair, 1)->valuestring;

                Job *j = job_find(s, user, id);

                if (j)
                        job_schedule(s, j); /* in case it could not be queued before */
                else if (!job_add(s, user, id, 0))
                        return -ENOMEM;
        }
        sync_arm(s);
        return 0;
}

static int on_pull_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        Sync *s = userdata;

        (void)sync_rescan(s);

        if (s->offline_until <= now_monotonic_usec())
                sync_pull_now(s);
        if (s->conf.pull_interval_usec > 0) {
                sd_event_source_set_time_relative(source, s->conf.pull_interval_usec);
                sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        }
        return 0;
}

/* ---- set-up and status --------------------------------------------------------------------- */

int sync_new(sd_event *event, Store *store, const RemoteConfig *conf, Sync **ret)
{
        _cleanup_(sync_freep) Sync *s = NULL;
        _cleanup_(cJSON_Deletep) cJSON *gcs = NULL;
        const cJSON *pair;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->store = store;
        s->conf = *conf;
        s->retry_tokens = RETRY_QUOTA;
        s->answers_tail = &s->answers;
        s->unsent_tail = &s->unsent;
        s->notes_tail = &s->notes;
        r = remote_new(event, conf, &s->remote);
        if (r < 0)
                return r;
        r = store_sync_next_epoch(store, &s->gen);
        if (r < 0)
                return r;
        s->gen <<= 32;
        r = sd_event_add_time(event, &s->timer, CLOCK_MONOTONIC, 0, 0, on_timer, s);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        r = sd_event_add_defer(event, &s->pass, on_pass, s);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(s->pass, SD_EVENT_OFF);
        r = sd_event_add_time_relative(event, &s->pull_timer, CLOCK_MONOTONIC, 0, 0, on_pull_timer, s);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &s->gc_timer, CLOCK_MONOTONIC, 0, 0, on_gc_timer, s);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(s->gc_timer, SD_EVENT_OFF);
        s->parts_table = remote_parts_table(conf);
        s->ref_cache = cJSON_CreateObject();
        s->unreadable = cJSON_CreateObject();
        if (!s->parts_table || !s->ref_cache || !s->unreadable)
                return -ENOMEM;

        /* Resume: whatever was dirty when the daemon stopped goes out at once, and the collection
         * passes asked for run shortly. */
        r = sync_rescan(s);
        if (r < 0)
                return r;
        r = store_sync_gc_list(store, &gcs);
        if (r < 0)
                return r;
        cJSON_ArrayForEach(pair, gcs)
                gc_add(s, cJSON_GetArrayItem(pair, 0)->valuestring, cJSON_GetArrayItem(pair, 1)->valuestring,
                       now_monotonic_usec() + GC_MARGIN_USEC, false);
        *ret = TAKE_PTR(s);
        return 0;
}

static int on_drain_timeout(sd_event_source *source, uint64_t usec, void *userdata)
{
        Sync *s = userdata;

        log_notice("Sync: %u write%s still in flight after the grace time; %s at the next start.",
                   s->in_flight, s->in_flight == 1 ? "" : "s",
                   s->in_flight == 1 ? "its notebook goes out" : "their notebooks go out");
        drain_done(s);
        return 0;
}

int sync_drain(Sync *s, uint64_t grace_usec, SyncDrainFunc func, void *userdata)
{
        int r;

        s->draining = true;
        s->drain_func = func;
        s->drain_userdata = userdata;
        sd_event_source_set_enabled(s->pull_timer, SD_EVENT_OFF);
        if (s->in_flight > 0) {
                log_info("Sync: waiting up to %" PRIu64 " ms for %u write%s in flight.",
                         grace_usec / USEC_PER_MSEC, s->in_flight, s->in_flight == 1 ? "" : "s");
                r = sd_event_add_time_relative(s->event, &s->drain_timer, CLOCK_MONOTONIC, grace_usec, 0,
                                               on_drain_timeout, s);
                if (r < 0) {
                        s->drain_func = NULL;
                        return r;
                }
        }
        sync_arm(s);
        return 0;
}

Sync *sync_free(Sync *s)
{
        if (!s)
                return NULL;
        /* Replies still in flight are dropped with the remote; their notebooks stay dirty and go
         * out again at the next start. */
        s->remote = remote_free(s->remote);
        while (s->jobs)
                job_free(s, s->jobs);
        free(s->queue);
        sd_event_source_disable_unref(s->timer);
        sd_event_source_disable_unref(s->pass);
        sd_event_source_disable_unref(s->pull_timer);
        sd_event_source_disable_unref(s->drain_timer);
        while (s->pulls)
                pull_free(s->pulls);
        while (s->gcs)
                gc_free(s, s->gcs);
        sd_event_source_disable_unref(s->gc_timer);
        free(s->parts_table);
        cJSON_Delete(s->ref_cache);
        cJSON_Delete(s->unreadable);
        sd_event_unref(s->event);
        strmap_done(&s->job_map);
        strmap_done(&s->pulled);
        strmap_done(&s->gc_asked);
        cJSON_Delete(s->changed);
        while (s->notes) {
                SyncNote *n = s->notes;

                s->notes = n->next;
                cJSON_Delete(n->changed);
                free(n);
        }
        free(s);
        return NULL;
}

/* Jobs waiting to go, and jobs held by an error: the notebook's (until it changes) or the
 * remote's (retried at the outage pace). */
static unsigned sync_pending(Sync *s, unsigned *ret_blocked)
{
        unsigned n = 0, blocked = 0;

        for (Job *j = s->jobs; j; j = j->next) {
                n += !j->in_flight && !j->blocked && !j->failing;
                blocked += j->blocked || j->failing;
        }
        if (ret_blocked)
                *ret_blocked = blocked;
        return n;
}

const char *sync_push_outcome_name(SyncPushOutcome o)
{
        static const char *const names[_SYNC_PUSH_MAX] = {
                [SYNC_PUSH_SUCCESS] = "success",
                [SYNC_PUSH_CONFLICT] = "conflict",
                [SYNC_PUSH_RETRYABLE] = "retryable_error",
                [SYNC_PUSH_ERROR] = "error",
        };

        return names[o];
}

void sync_metrics(Sync *s, SyncMetrics *ret)
{
        *ret = (SyncMetrics){
                .pulls_complete = s->pulls_complete,
                .pulls_failed = s->pulls_failed,
                .pulled = s->pulls_applied,
                .merges = s->merges,
                .conflicts = s->conflicts,
                .retries_request = s->retries_request,
                .retries_backoff = s->retries_backoff,
                .parts_written = s->parts_written,
                .parts_fetched = s->parts_fetched,
                .parts_deleted = s->parts_deleted,
                .in_flight = s->in_flight,
                .online = s->online,
                .remote = remote_stats(s->remote),
        };
        memcpy(ret->pushes, s->push_outcomes, sizeof(ret->pushes));
        ret->pushes[SYNC_PUSH_SUCCESS] = s->pushes;
        ret->pending = sync_pending(s, &ret->errors);
}

const char *remote_describe(Sync *s, char *buf, size_t size)
{
        snprintf(buf, size, "DynamoDB table %s at %s (region %s)", s->conf.table, remote_endpoint(s->remote),
                 remote_region(s->remote));
        return buf;
}

const char *sync_summary(Sync *s, char *buf, size_t size)
{
        if (!s)
                snprintf(buf, size, "local-only (no remote configured)");
        else
                snprintf(buf, size, "%s, %u pending, %u syncing%s%s",
                         s->online           ? "online"
                         : s->ever_contacted ? "offline"
                                             : "connecting",
                         sync_pending(s, NULL), s->in_flight,
                         s->last_error[0] && !s->online ? ", last error: " : "",
                         s->last_error[0] && !s->online ? s->last_error : "");
        return buf;
}

int sync_status(Sync *s, const char *user_id, cJSON *obj)
{
        _cleanup_(cJSON_Deletep) cJSON *unsynced = NULL;
        cJSON *sync = cJSON_AddObjectToObject(obj, "sync"), *list, *n;
        char ts[TIMESTAMP_MAX];
        unsigned pending, blocked;
        int conflicted;

        if (!sync)
                return -ENOMEM;
        if (!s)
                return cJSON_AddStringToObject(sync, "mode", "local-only") ? 0 : -ENOMEM;
        pending = sync_pending(s, &blocked);
        conflicted = store_sync_conflicted(s->store, user_id);
        if (!cJSON_AddStringToObject(sync, "mode", "dynamodb") ||
            !cJSON_AddStringToObject(sync, "table", s->conf.table) ||
            !cJSON_AddStringToObject(sync, "endpoint", remote_endpoint(s->remote)) ||
            !cJSON_AddStringToObject(sync, "state",
                                     s->online           ? "online"
                                     : s->ever_contacted ? "offline"
                                                         : "connecting") ||
            !cJSON_AddNumberToObject(sync, "pending", pending) ||
            !cJSON_AddNumberToObject(sync, "errors", blocked) ||
            !cJSON_AddNumberToObject(sync, "unresolved", conflicted < 0 ? 0 : conflicted) ||
            !cJSON_AddNumberToObject(sync, "in_flight", s->in_flight) ||
            !cJSON_AddNumberToObject(sync, "pushes", (double)s->pushes) ||
            !cJSON_AddNumberToObject(sync, "pulled", (double)s->pulls_applied) ||
            !cJSON_AddNumberToObject(sync, "merges", (double)s->merges) ||
            !cJSON_AddNumberToObject(sync, "conflicts", (double)s->conflicts) ||
            !cJSON_AddNumberToObject(sync, "parts_written", (double)s->parts_written) ||
            !cJSON_AddNumberToObject(sync, "parts_fetched", (double)s->parts_fetched) ||
            !cJSON_AddNumberToObject(sync, "parts_deleted", (double)s->parts_deleted) ||
            !(s->last_success
                      ? cJSON_AddStringToObject(sync, "last_success", format_timestamp(ts, s->last_success))
                      : cJSON_AddNullToObject(sync, "last_success")) ||
            /* A peer limited to one user sees only errors about that user's notebooks. */
            !(s->last_error[0] && (!user_id || streq(user_id, s->last_error_user))
                      ? cJSON_AddStringToObject(sync, "last_error", s->last_error)
                      : cJSON_AddNullToObject(sync, "last_error")))
                return -ENOMEM;
        if (store_sync_unsynced(s->store, user_id, STATUS_MAX_NOTEBOOKS, &unsynced) < 0)
                return -EIO;
        list = cJSON_AddArrayToObject(sync, "notebooks");
        if (!list)
                return -ENOMEM;
        while ((n = cJSON_DetachItemFromArray(unsynced, 0))) {
                const cJSON *uid = cJSON_GetObjectItem(n, "user_id"),
                            *nid = cJSON_GetObjectItem(n, "notebook_id");
                Job *j = job_find(s, uid->valuestring, nid->valuestring);

                const cJSON *nc = cJSON_GetObjectItem(n, "conflicts");

                /* The store knows dirty, error and conflicts to resolve; in flight is the engine's. */
                if (j && j->in_flight)
                        cJSON_ReplaceItemInObject(n, "state", cJSON_CreateString("syncing"));
                else if (cJSON_IsNumber(nc) && nc->valuedouble > 0)
                        cJSON_ReplaceItemInObject(n, "state", cJSON_CreateString("conflict"));
                cJSON_AddItemToArray(list, n);
        }
        /* Notebooks not held here whose table version cannot be read. */
        cJSON_ArrayForEach(n, s->unreadable)
        {
                const cJSON *uid = cJSON_GetObjectItem(n, "user_id");
                cJSON *e;

                if (cJSON_IsTrue(cJSON_GetObjectItem(n, "local")) ||
                    (user_id && !streq(user_id, uid->valuestring)) ||
                    cJSON_GetArraySize(list) >= STATUS_MAX_NOTEBOOKS)
                        continue;
                e = cJSON_CreateObject();
                if (!e || !cJSON_AddItemToArray(list, e) ||
                    !cJSON_AddStringToObject(e, "user_id", uid->valuestring) ||
                    !cJSON_AddStringToObject(e, "notebook_id",
                                             cJSON_GetObjectItem(n, "notebook_id")->valuestring) ||
                    !cJSON_AddNullToObject(e, "revision") || !cJSON_AddNullToObject(e, "base_revision") ||
                    !cJSON_AddFalseToObject(e, "deleted") || !cJSON_AddStringToObject(e, "state", "error") ||
                    !cJSON_AddStringToObject(e, "error", cJSON_GetObjectItem(n, "error")->valuestring) ||
                    !cJSON_AddNumberToObject(e, "conflicts", 0))
                        return -ENOMEM;
        }
        return 0;
}
