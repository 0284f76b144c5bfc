/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>

#include "ddb.h"
#include "log.h"
#include "model.h"
#include "nb-limits.h"
#include "remote.h"
#include "sync.h"

/* Request-level retries follow the AWS SDKs' "standard" mode: at most 3 attempts, full jitter
 * over an exponential backoff capped at 20 s, and a retry quota that failures drain and
 * successes refill, so that an outage does not multiply the load. Past that, the loop-level
 * backoff takes over: it doubles from 1 s to 5 min and never gives up on a dirty notebook. */
#define MAX_ATTEMPTS         3
#define RETRY_BASE_USEC      (100 * USEC_PER_MSEC)
#define RETRY_MAX_USEC       (20 * USEC_PER_SEC)
#define RETRY_QUOTA          500
#define RETRY_COST           5
#define RETRY_COST_TIMEOUT   10
#define OUTAGE_MIN_USEC      (1 * USEC_PER_SEC)
#define OUTAGE_MAX_USEC      (300 * USEC_PER_SEC)
#define LOG_INTERVAL_USEC    (60 * USEC_PER_SEC) /* repeated failures are logged once a minute */
#define QUERY_PAGE_ITEMS     100
#define STATUS_MAX_NOTEBOOKS 1000 /* notebooks not in sync that daemon.status lists */

typedef struct Job Job;
typedef struct Pull Pull;

/* A notebook with work to do: a push (put or delete) pending or in flight. */
struct Job {
        Job *next;
        char *user_id, *notebook_id;
        uint64_t first_change, last_change; /* monotonic; 0: due at once (found at start-up) */
        uint64_t not_before;                /* backoff */
        bool in_flight;
        bool blocked; /* waits for the next local change (too large, refused by the remote) */
        bool held;    /* provisioned here: waits for the user's first complete pull */
        bool changed; /* a change arrived while in flight */
        unsigned attempt;
        /* The write in flight. */
        bool deleting;
        int64_t revision;
        int64_t base_revision;
        char sync_id[UUID_STRING_MAX];
        /* Tokens of earlier writes whose answer never came: any of them may stand on the remote. */
        char unconfirmed[8][UUID_STRING_MAX];
        unsigned n_unconfirmed;
        char *snapshot;
        cJSON *request;
};

struct Sync {
        sd_event *event;
        Store *store;
        Remote *remote;
        RemoteConfig conf;
        Job *jobs;
        unsigned in_flight;
        sd_event_source *timer;
        sd_event_source *pull_timer;
        unsigned retry_tokens;

        /* What status reports. */
        bool online;
        bool ever_contacted;
        uint64_t last_success; /* realtime */
        char last_error[256];
        uint64_t outage_usec;   /* current loop-level backoff, 0 when healthy */
        uint64_t offline_until; /* monotonic */
        uint64_t last_log;      /* monotonic */
        unsigned suppressed_logs;
        Pull *pulls;     /* running, at most one per user */
        bool pull_again; /* a full pull was asked for while pulls ran */
        char **pulled;   /* users whose notebooks were pulled completely since the start */
        size_t n_pulled;
        uint64_t pushes, pulls_applied, conflicts;

        SyncChangeFunc change_func;
        void *change_userdata;

        /* Stopping: no new work; drain_func runs once nothing is in flight or the grace ends. */
        bool draining;
        SyncDrainFunc drain_func;
        void *drain_userdata;
        sd_event_source *drain_timer;
};

static void sync_arm(Sync *s);
static void job_start(Sync *s, Job *j);
static void pull_start(Sync *s, const char *user_id);
static bool user_pulled(Sync *s, const char *user_id);

/* ---- jobs ---------------------------------------------------------------------------------- */

static Job *job_find(Sync *s, const char *user_id, const char *notebook_id)
{
        for (Job *j = s->jobs; j; j = j->next)
                if (streq(j->user_id, user_id) && streq(j->notebook_id, notebook_id))
                        return j;
        return NULL;
}

static void job_clear_request(Job *j)
{
        free(j->snapshot);
        j->snapshot = NULL;
        cJSON_Delete(j->request);
        j->request = NULL;
}

static void job_free(Sync *s, Job *j)
{
        Job **p;

        for (p = &s->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        break;
                }
        job_clear_request(j);
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
        j->user_id = strdup(user_id);
        j->notebook_id = strdup(notebook_id);
        if (!j->user_id || !j->notebook_id) {
                free(j->user_id);
                free(j->notebook_id);
                free(j);
                return NULL;
        }
        j->first_change = j->last_change = now;
        j->next = s->jobs;
        s->jobs = j;
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
                if (j->in_flight)
                        j->changed = true;
        } else if (!job_add(s, user_id, notebook_id, now)) {
                log_oom();
                return;
        }
        sync_arm(s);
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
        if (!s->online && s->ever_contacted)
                log_info("Sync: the remote is reachable again.");
        s->online = true;
        s->ever_contacted = true;
        s->outage_usec = 0;
        s->offline_until = 0;
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

static uint64_t random_below(uint64_t n)
{
        uint64_t r = 0;

        if (n == 0)
                return 0;
        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
                r = now_monotonic_usec() * 2654435761u;
        return r % n;
}

/* ---- pushing ------------------------------------------------------------------------------- */

static int store_in_tx(Sync *s, int r)
{
        /* Engine writes are small transactions of their own, between the server's batches. */
        if (r < 0) {
                store_rollback(s->store);
                return r;
        }
        return store_commit(s->store);
}

static void job_remember_token(Job *j, const char *sync_id)
{
        for (unsigned i = 0; i < MIN(j->n_unconfirmed, ELEMENTSOF(j->unconfirmed)); i++)
                if (streq(j->unconfirmed[i], sync_id))
                        return;
        snprintf(j->unconfirmed[j->n_unconfirmed++ % ELEMENTSOF(j->unconfirmed)], UUID_STRING_MAX, "%s",
                 sync_id);
}

static bool job_token_is_ours(const Job *j, const char *sync_id)
{
        for (unsigned i = 0; i < MIN(j->n_unconfirmed, ELEMENTSOF(j->unconfirmed)); i++)
                if (streq(j->unconfirmed[i], sync_id))
                        return true;
        return false;
}

static void job_finish(Sync *s, Job *j)
{
        j->in_flight = false;
        s->in_flight--;
        job_clear_request(j);
        j->attempt = 0;
        if (j->changed) {
                /* Edits made during the flight go out in a push of their own. */
                j->changed = false;
                j->not_before = 0;
        } else if (!j->blocked && !j->not_before)
                job_free(s, j);
        sync_arm(s);
}

static void job_set_state(Sync *s, Job *j, const char *state, const char *error)
{
        int r = store_begin(s->store);

        if (r >= 0)
                r = store_sync_set_state(s->store, j->user_id, j->notebook_id, state, error);
        r = store_in_tx(s, r);
        if (r < 0)
                log_warning_errno(r, "Sync: cannot record the state of %s: %m", j->notebook_id);
}

static void job_succeeded(Sync *s, Job *j)
{
        int r = store_begin(s->store);

        if (r >= 0)
                r = j->deleting ? store_sync_delete_done(s->store, j->user_id, j->notebook_id, j->revision)
                                : store_sync_put_done(s->store, j->user_id, j->notebook_id, j->revision,
                                                      j->snapshot);
        r = store_in_tx(s, r);
        if (r < 0)
                log_error_errno(r, "Sync: cannot record that %s reached the remote: %m", j->notebook_id);
        log_notebook(LOG_DEBUG, 0, j->user_id, j->notebook_id, "synced", "Sync: %s %s revision %lld.",
                     j->deleting ? "deleted" : "stored", j->notebook_id, (long long)j->revision);
        s->pushes++;
        j->n_unconfirmed = 0;
        sync_healthy(s);
        j->not_before = 0;
        job_finish(s, j);
}

/* A retryable failure: a fast retry of the same request while the quota lasts, else the
 * loop-level backoff. */
static void job_retry(Sync *s, Job *j, const RemoteReply *rep)
{
        unsigned cost = rep->error == -ETIMEDOUT ? RETRY_COST_TIMEOUT : RETRY_COST;
        uint64_t now = now_monotonic_usec();

        sync_log_failure(s, j->user_id, j->notebook_id, "pending", "%s: %s", j->notebook_id,
                         rep->message ? rep->message : "request failed");
        j->attempt++;
        if (j->attempt < MAX_ATTEMPTS && s->retry_tokens >= cost) {
                uint64_t cap = MIN(RETRY_MAX_USEC, RETRY_BASE_USEC << MIN(j->attempt, 20u));

                s->retry_tokens -= cost;
                j->not_before = now + random_below(cap + 1);
        } else {
                sync_outage(s);
                j->not_before = s->offline_until;
                j->attempt = 0;
        }
        j->in_flight = false;
        s->in_flight--;
        job_clear_request(j);
        job_set_state(s, j, "pending", s->last_error);
        sync_arm(s);
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

/* blank-USER or demo-USER as provisioned here (revision 1), never synced: another device
 * provisioned the user first, and its versions win without a conflict (provisioning happens once
 * per user, across devices). */
static bool provisioned_here(const char *user_id, const char *notebook_id, int64_t revision,
                             int64_t base_revision)
{
        char id[MAX_ID_BYTES + 1];

        if (revision != 1 || base_revision >= 0)
                return false;
        snprintf(id, sizeof(id), "blank-%s", user_id);
        if (streq(id, notebook_id))
                return true;
        snprintf(id, sizeof(id), "demo-%s", user_id);
        return streq(id, notebook_id);
}

/* Stores the remote version nb (item as it came) locally (1), or marks the local one in conflict
 * (0); watchers are told either way. force: see store_sync_apply_remote(). Negative on failure. */
static int take_remote(Sync *s, const cJSON *nb, const cJSON *item, bool force)
{
        const char *user = cJSON_GetObjectItem(nb, "user_id")->valuestring,
                   *id = cJSON_GetObjectItem(nb, "id")->valuestring;
        _cleanup_free_ char *snapshot = model_json_print(item, false);
        int k, r = snapshot ? store_begin(s->store) : -ENOMEM;

        if (r >= 0)
                r = store_sync_apply_remote(s->store, nb, snapshot, force);
        if (r == 0) {
                s->conflicts++;
                log_notebook(LOG_NOTICE, 0, user, id, "conflict",
                             "Sync: %s changed here and on the remote; kept the local version, marked in "
                             "conflict.",
                             id);
        } else if (r > 0)
                s->pulls_applied++;
        k = store_in_tx(s, r < 0 ? r : 0);
        if (k < 0) {
                log_warning_errno(k, "Sync: cannot take over %s from the remote: %m", id);
                return k;
        }
        if (s->change_func)
                s->change_func(s->change_userdata, user, id);
        return r;
}

static void on_get_after_conflict(void *owner, void *userdata, RemoteReply *rep)
{
        Sync *s = owner;
        Job *j = userdata;
        const cJSON *item = rep->body ? cJSON_GetObjectItemCaseSensitive(rep->body, "Item") : NULL;
        const cJSON *sid = item ? cJSON_GetObjectItemCaseSensitive(item, "sync_id") : NULL;
        const cJSON *sid_s = sid ? cJSON_GetObjectItemCaseSensitive(sid, "S") : NULL;
        char why[128];

        if (job_cancelled(s, j, rep))
                return;
        if (rep->cls == DDB_RETRYABLE || rep->cls == DDB_THROTTLING || rep->error < 0) {
                job_retry(s, j, rep);
                return;
        }
        if (rep->cls != DDB_OK) {
                job_set_state(s, j, "error", rep->message);
                j->blocked = true;
                job_finish(s, j);
                return;
        }
        /* Our own write, whose answer was lost: the outcome was a success, not a conflict. */
        if ((j->deleting && !item) || (cJSON_IsString(sid_s) && streq(sid_s->valuestring, j->sync_id))) {
                job_succeeded(s, j);
                return;
        }
        /* An earlier write of ours whose answer was lost stands there: the remote is at that
         * revision, which becomes the base; what changed since goes out in the next push. */
        if (cJSON_IsString(sid_s) && job_token_is_ours(j, sid_s->valuestring)) {
                const cJSON *rev = cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(item, "revision"), "N");
                _cleanup_free_ char *snapshot = model_json_print(item, false);
                int r = cJSON_IsString(rev) && snapshot ? store_begin(s->store) : -ENOMEM;

                if (r >= 0)
                        r = store_sync_put_done(s->store, j->user_id, j->notebook_id,
                                                strtoll(rev->valuestring, NULL, 10), snapshot);
                r = store_in_tx(s, r);
                if (r < 0)
                        log_warning_errno(r, "Sync: cannot record the base of %s: %m", j->notebook_id);
                j->n_unconfirmed = 0;
                j->changed = true; /* push again at once, on the new base */
                sync_healthy(s);
                job_finish(s, j);
                return;
        }
        /* Provisioned on another device first: take its version. */
        if (item && !j->changed && !j->deleting &&
            provisioned_here(j->user_id, j->notebook_id, j->revision, j->base_revision)) {
                _cleanup_(cJSON_Deletep) cJSON *nb = NULL;

                if (ddb_notebook_from_item(item, &nb, NULL) >= 0) {
                        take_remote(s, nb, item, true);
                        sync_healthy(s);
                        job_finish(s, j);
                        return;
                }
        }
        snprintf(why, sizeof(why), "the remote holds a different version of this notebook");
        log_notebook(LOG_NOTICE, 0, j->user_id, j->notebook_id, "conflict",
                     "Sync: %s/%s is in conflict: %s.", j->user_id, j->notebook_id, why);
        s->conflicts++;
        job_set_state(s, j, "conflict", why);
        j->blocked = true;
        job_finish(s, j);
}

static void on_push_reply(void *owner, void *userdata, RemoteReply *rep)
{
        Sync *s = owner;
        Job *j = userdata;

        if (job_cancelled(s, j, rep))
                return;
        switch (rep->error < 0 ? DDB_RETRYABLE : rep->cls) {
        case DDB_OK:
                job_succeeded(s, j);
                return;
        case DDB_CONDITIONAL_FAILED: {
                /* Someone else's write, or ours whose reply was lost: the sync_id tells. */
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
        case DDB_THROTTLING:
                job_retry(s, j, rep);
                return;
        case DDB_VALIDATION:
                if (!rep->type || !streq(rep->type, "ResourceNotFoundException"))
                        break;
                _fallthrough_;
        case DDB_AUTH:
                /* Credentials may be fixed or refreshed, the table created: keep trying at the
                 * outage pace. */
                sync_log_failure(s, j->user_id, j->notebook_id, "error", "%s: %s", j->notebook_id,
                                 reply_reason(s, rep));
                sync_outage(s);
                j->not_before = s->offline_until;
                j->in_flight = false;
                s->in_flight--;
                job_clear_request(j);
                job_set_state(s, j, "error", s->last_error);
                sync_arm(s);
                return;
        default:
                /* The remote refuses this item as it is: wait for the next change. */
                sync_log_failure(s, j->user_id, j->notebook_id, "error", "%s refused: %s", j->notebook_id,
                                 rep->message ? rep->message : "invalid");
                job_set_state(s, j, "error", s->last_error);
                j->blocked = true;
                job_finish(s, j);
                return;
        }
}

/* Builds the request for the notebook as it is now and records its token before sending. */
static int job_prepare(Sync *s, Job *j)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = NULL, *item = NULL;
        StoreSyncInfo info = { 0 };
        size_t size;
        int r;

        r = store_sync_read(s->store, j->user_id, j->notebook_id, &nb, &info);
        if (r < 0)
                return r; /* -ENOENT: gone entirely, nothing to do */
        if (!info.dirty) {
                store_sync_info_done(&info);
                return -ENOENT;
        }
        /* Provisioned here and untouched: another device may have provisioned this user first
         * (its versions win), or deleted the notebook since (it must not come back). */
        if (!info.deleted &&
            provisioned_here(j->user_id, j->notebook_id, info.revision, info.base_revision) &&
            !user_pulled(s, j->user_id)) {
                store_sync_info_done(&info);
                return -EAGAIN;
        }
        j->revision = info.revision;
        j->base_revision = info.base_revision;
        j->deleting = info.deleted;
        /* The last token sent before a restart may stand on the remote too. */
        if (info.sync_id && info.sync_state && !streq(info.sync_state, "synced"))
                job_remember_token(j, info.sync_id);
        store_sync_info_done(&info);

        r = uuid_v4_string(j->sync_id);
        if (r < 0)
                return r;
        job_remember_token(j, j->sync_id);
        if (j->deleting) {
                if (j->base_revision < 0)
                        return 0; /* never reached the remote: nothing to delete there */
                j->request =
                        ddb_delete_item_body(s->conf.table, j->user_id, j->notebook_id, j->base_revision);
                if (!j->request)
                        return -ENOMEM;
        } else {
                r = ddb_item_from_notebook(nb, j->sync_id, &item);
                if (r < 0)
                        return r;
                size = ddb_item_size(item);
                if (size > DDB_MAX_ITEM_BYTES) {
                        char why[160];

                        snprintf(why, sizeof(why),
                                 "too large: the item takes %zu bytes, DynamoDB allows %u; kept locally",
                                 size, (unsigned)DDB_MAX_ITEM_BYTES);
                        log_notebook(LOG_WARNING, 0, j->user_id, j->notebook_id, "error",
                                     "Sync: %s/%s is %s.", j->user_id, j->notebook_id, why);
                        job_set_state(s, j, "error", why);
                        j->blocked = true;
                        return -EFBIG;
                }
                j->snapshot = model_json_print(item, false);
                j->request = ddb_put_item_body(s->conf.table, item, j->base_revision);
                if (!j->snapshot || !j->request)
                        return -ENOMEM;
        }
        r = store_begin(s->store);
        if (r >= 0)
                r = store_sync_begin(s->store, j->user_id, j->notebook_id, j->sync_id);
        return store_in_tx(s, r);
}

static void job_start(Sync *s, Job *j)
{
        int r;

        j->changed = false;
        j->last_change = j->first_change = 0;
        r = job_prepare(s, j);
        if (r == -ENOENT) {
                job_clear_request(j);
                job_free(s, j);
                return;
        }
        if (r == -EFBIG) {
                job_clear_request(j);
                return;
        }
        if (r == -EAGAIN) {
                job_clear_request(j);
                j->held = true;
                pull_start(s, j->user_id);
                return;
        }
        if (r < 0) {
                log_error_errno(r, "Sync: cannot prepare %s: %m", j->notebook_id);
                job_clear_request(j);
                j->not_before = now_monotonic_usec() + OUTAGE_MIN_USEC;
                return;
        }
        j->in_flight = true;
        s->in_flight++;
        if (!j->request) {
                /* A tombstone the remote never saw. */
                job_succeeded(s, j);
                return;
        }
        r = remote_call(s->remote, j->deleting ? "DeleteItem" : "PutItem", j->request, on_push_reply, s, j);
        if (r < 0) {
                RemoteReply fail = { .error = r, .message = "cannot send the request" };
                job_retry(s, j, &fail);
        }
}

/* ---- scheduling ---------------------------------------------------------------------------- */

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        Sync *s = userdata;
        uint64_t now = now_monotonic_usec();
        Job *j, *next;

        if (s->offline_until > now) {
                sync_arm(s);
                return 0;
        }
        for (j = s->jobs; j && s->in_flight < s->conf.max_in_flight; j = next) {
                next = j->next;
                if (!j->in_flight && !j->blocked && !j->held && job_due(s, j) <= now)
                        job_start(s, j);
        }
        sync_arm(s);
        return 0;
}

/* Sets the timer to the earliest moment a job may start. */
static void drain_done(Sync *s)
{
        SyncDrainFunc func = s->drain_func;

        if (!func)
                return;
        s->drain_func = NULL;
        s->drain_timer = sd_event_source_disable_unref(s->drain_timer);
        func(s->drain_userdata);
}

static void sync_arm(Sync *s)
{
        uint64_t when = UINT64_MAX;

        if (s->draining) {
                sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                if (s->in_flight == 0)
                        drain_done(s);
                return;
        }

        if (s->in_flight < s->conf.max_in_flight)
                for (Job *j = s->jobs; j; j = j->next)
                        if (!j->in_flight && !j->blocked && !j->held)
                                when = MIN(when, job_due(s, j));
        if (when != UINT64_MAX && s->offline_until > when)
                when = s->offline_until;
        if (when == UINT64_MAX) {
                sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                return;
        }
        sd_event_source_set_time(s->timer, MAX(when, 1));
        sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

/* ---- pulling ------------------------------------------------------------------------------- */

struct Pull {
        Pull *next;
        Sync *sync;
        char *user_id;
        cJSON *start_key;
        unsigned items;          /* of this user, in the pages read so far */
        bool saw_provisioned[2]; /* blank-USER, demo-USER */
};

static const char *const provisioned_prefix[2] = { "blank-", "demo-" };

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
        free(p->user_id);
        cJSON_Delete(p->start_key);
        free(p);
}

static Pull *pull_find(Sync *s, const char *user_id)
{
        for (Pull *p = s->pulls; p; p = p->next)
                if (streq(p->user_id, user_id))
                        return p;
        return NULL;
}

static bool user_pulled(Sync *s, const char *user_id)
{
        for (size_t i = 0; i < s->n_pulled; i++)
                if (streq(s->pulled[i], user_id))
                        return true;
        return false;
}

static void user_mark_pulled(Sync *s, const char *user_id)
{
        char **n, *u;

        if (user_pulled(s, user_id))
                return;
        u = strdup(user_id);
        n = u ? realloc(s->pulled, (s->n_pulled + 1) * sizeof(*n)) : NULL;
        if (!n) {
                free(u);
                log_oom();
                return;
        }
        s->pulled = n;
        s->pulled[s->n_pulled++] = u;
}

static int pull_page(Pull *p);

static void pull_apply(Sync *s, Pull *p, const cJSON *item)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = NULL, *local = NULL;
        _cleanup_free_ char *sync_id = NULL;
        StoreSyncInfo info = { 0 };
        const char *user, *id;
        bool force = false;
        int64_t rev;
        Job *j;
        int r;

        r = ddb_notebook_from_item(item, &nb, &sync_id);
        if (r < 0) {
                log_warning_errno(r, "Sync: ignoring a malformed item in the table: %m");
                return;
        }
        rev = (int64_t)cJSON_GetObjectItemCaseSensitive(nb, "revision")->valuedouble;
        user = cJSON_GetObjectItem(nb, "user_id")->valuestring;
        id = cJSON_GetObjectItemCaseSensitive(nb, "id")->valuestring;
        p->items++;
        for (size_t i = 0; i < ELEMENTSOF(provisioned_prefix); i++)
                if (startswith(id, provisioned_prefix[i]) && streq(id + strlen(provisioned_prefix[i]), user))
                        p->saw_provisioned[i] = true;
        j = job_find(s, user, id);
        if (j && j->in_flight)
                return; /* our own write is on its way; its answer decides */
        if (j && sync_id && job_token_is_ours(j, sync_id))
                return; /* an earlier write of ours whose answer was lost: the next push sorts it out */
        r = store_sync_read(s->store, user, id, &local, &info);
        if (r == 0) {
                bool skip = rev <= info.base_revision ||                               /* nothing newer */
                            (info.sync_id && sync_id && streq(info.sync_id, sync_id)); /* our own write */

                force = provisioned_here(user, id, info.revision, info.base_revision);
                store_sync_info_done(&info);
                if (skip)
                        return;
        }
        if (take_remote(s, nb, item, force) > 0 && j)
                job_free(s, j); /* clean now: nothing to push */
}

/* A pristine blank-USER or demo-USER that the table lacks, though it holds other notebooks of the
 * user: provisioned on another device and deleted there since. It goes here too. */
static void forget_provisioned(Sync *s, const char *user_id, const char *prefix)
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
                return;
        if (store_sync_read(s->store, user_id, id, &nb, &info) < 0)
                return;
        pristine = !info.deleted && provisioned_here(user_id, id, info.revision, info.base_revision);
        store_sync_info_done(&info);
        if (!pristine)
                return;
        r = store_begin(s->store);
        if (r >= 0)
                r = store_sync_forget_unsynced(s->store, user_id, id, 1);
        r = store_in_tx(s, r);
        if (r < 0) {
                log_warning_errno(r, "Sync: cannot remove %s: %m", id);
                return;
        }
        log_notebook(LOG_INFO, 0, user_id, id, "synced",
                     "Sync: %s was deleted on another device before this one provisioned it; removed here.",
                     id);
        if (j)
                job_free(s, j);
        if (s->change_func)
                s->change_func(s->change_userdata, user_id, id);
}

/* The end of a user's pull. complete: every page was read. */
static void pull_done(Sync *s, Pull *p, bool complete)
{
        for (Job *j = s->jobs; j; j = j->next)
                if (j->held && streq(j->user_id, p->user_id)) {
                        j->held = false;
                        /* Complete: go now. Failed: try again at the outage pace (and pull again). */
                        j->not_before = complete ? 0 : s->offline_until;
                }
        if (complete) {
                user_mark_pulled(s, p->user_id);
                if (p->items > 0)
                        for (size_t i = 0; i < ELEMENTSOF(provisioned_prefix); i++)
                                if (!p->saw_provisioned[i])
                                        forget_provisioned(s, p->user_id, provisioned_prefix[i]);
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
        const cJSON *items, *item, *last;

        if (rep->error == -ECANCELED) {
                pull_free(p);
                return;
        }
        if (rep->error < 0 || rep->cls != DDB_OK) {
                sync_log_failure(s, p->user_id, NULL, NULL, "pull of %s: %s", p->user_id,
                                 reply_reason(s, rep));
                if (rep->error < 0 || rep->cls == DDB_RETRYABLE || rep->cls == DDB_THROTTLING)
                        sync_outage(s);
                pull_done(s, p, false);
                return;
        }
        sync_healthy(s);
        items = cJSON_GetObjectItemCaseSensitive(rep->body, "Items");
        cJSON_ArrayForEach(item, items) pull_apply(s, p, item);

        last = cJSON_GetObjectItemCaseSensitive(rep->body, "LastEvaluatedKey");
        if (last) {
                cJSON_Delete(p->start_key);
                p->start_key = cJSON_Duplicate(last, true);
                if (p->start_key && pull_page(p) >= 0)
                        return;
                pull_done(s, p, false);
                return;
        }
        pull_done(s, p, true);
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
        if (!p || !(p->user_id = strdup(user_id))) {
                free(p);
                log_oom();
                return;
        }
        p->sync = s;
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

                if (job_find(s, user, id))
                        continue;
                if (!job_add(s, user, id, 0))
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
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->store = store;
        s->conf = *conf;
        s->retry_tokens = RETRY_QUOTA;
        r = remote_new(event, conf, &s->remote);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &s->timer, CLOCK_MONOTONIC, 0, 0, on_timer, s);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        r = sd_event_add_time_relative(event, &s->pull_timer, CLOCK_MONOTONIC, 0, 0, on_pull_timer, s);
        if (r < 0)
                return r;

        /* Resume: whatever was dirty when the daemon stopped goes out at once. */
        r = sync_rescan(s);
        if (r < 0)
                return r;
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
        sd_event_source_disable_unref(s->timer);
        sd_event_source_disable_unref(s->pull_timer);
        sd_event_source_disable_unref(s->drain_timer);
        sd_event_unref(s->event);
        for (size_t i = 0; i < s->n_pulled; i++)
                free(s->pulled[i]);
        free(s->pulled);
        free(s);
        return NULL;
}

static unsigned sync_pending(Sync *s)
{
        unsigned n = 0;

        for (Job *j = s->jobs; j; j = j->next)
                n += !j->in_flight;
        return n;
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
                         sync_pending(s), s->in_flight,
                         s->last_error[0] && !s->online ? ", last error: " : "",
                         s->last_error[0] && !s->online ? s->last_error : "");
        return buf;
}

int sync_status(Sync *s, const char *user_id, cJSON *obj)
{
        _cleanup_(cJSON_Deletep) cJSON *unsynced = NULL;
        cJSON *sync = cJSON_AddObjectToObject(obj, "sync"), *list, *n;
        char ts[TIMESTAMP_MAX];

        if (!sync)
                return -ENOMEM;
        if (!s)
                return cJSON_AddStringToObject(sync, "mode", "local-only") ? 0 : -ENOMEM;
        if (!cJSON_AddStringToObject(sync, "mode", "dynamodb") ||
            !cJSON_AddStringToObject(sync, "table", s->conf.table) ||
            !cJSON_AddStringToObject(sync, "endpoint", remote_endpoint(s->remote)) ||
            !cJSON_AddStringToObject(sync, "state",
                                     s->online           ? "online"
                                     : s->ever_contacted ? "offline"
                                                         : "connecting") ||
            !cJSON_AddNumberToObject(sync, "pending", sync_pending(s)) ||
            !cJSON_AddNumberToObject(sync, "in_flight", s->in_flight) ||
            !cJSON_AddNumberToObject(sync, "pushes", (double)s->pushes) ||
            !cJSON_AddNumberToObject(sync, "pulled", (double)s->pulls_applied) ||
            !cJSON_AddNumberToObject(sync, "conflicts", (double)s->conflicts) ||
            !(s->last_success
                      ? cJSON_AddStringToObject(sync, "last_success", format_timestamp(ts, s->last_success))
                      : cJSON_AddNullToObject(sync, "last_success")) ||
            !(s->last_error[0] ? cJSON_AddStringToObject(sync, "last_error", s->last_error)
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

                /* The store knows dirty, conflict and error; in flight is the engine's. */
                if (j && j->in_flight)
                        cJSON_ReplaceItemInObject(n, "state", cJSON_CreateString("syncing"));
                cJSON_AddItemToArray(list, n);
        }
        return 0;
}
