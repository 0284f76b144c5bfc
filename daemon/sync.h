/* SPDX-License-Identifier: MIT */
#pragma once

/* The sync engine: pushes changed notebooks to DynamoDB with revision-conditioned writes, pulls
 * newer remote versions, and never gives up on a dirty notebook. See doc/sync.md. */

#include <stdint.h>
#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "remote.h"
#include "store.h"
#include "util.h"

typedef struct Sync Sync;

/* Starts the engine on a configured remote: resumes all pending work and pulls once. */
int sync_new(sd_event *event, Store *store, const RemoteConfig *remote, Sync **ret);
Sync *sync_free(Sync *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Sync *, sync_free)

/* A committed local change to a notebook: schedules its push (debounced). */
void sync_notify_change(Sync *s, const char *user_id, const char *notebook_id);
/* The store made more commits durable: the requests whose tokens they hold go out. */
void sync_flushed(Sync *s);

/* Called after a notebook changed because of the remote: a newer version taken over, or marked in
 * conflict. */
/* change: a store_change_record(), taken when the engine changed the notebook; called once that
 * change is durable. */
typedef void (*SyncChangeFunc)(void *userdata, const cJSON *change);
void sync_set_change_callback(Sync *s, SyncChangeFunc func, void *userdata);

/* Stopping: starts no more work and calls func(userdata) once no write is in flight, or after
 * grace_usec at the latest (perhaps before sync_drain() returns). What did not go out stays dirty
 * and goes out at the next start. Then free the engine. */
typedef void (*SyncDrainFunc)(void *userdata);
int sync_drain(Sync *s, uint64_t grace_usec, SyncDrainFunc func, void *userdata);

/* Pulls every known user's notebooks now. */
void sync_pull_now(Sync *s);
/* Pulls one user's notebooks now: a user seen here for the first time may have notebooks from
 * other devices. */
void sync_pull_user(Sync *s, const char *user_id);

/* Adds the "sync" object of daemon.status to obj. With user_id, per-notebook states are limited
 * to that user's notebooks. s may be NULL: local-only. */
int sync_status(Sync *s, const char *user_id, cJSON *obj);

/* How the pushes of notebooks ended (a PutItem or DeleteItem of the item): written, refused by
 * the condition (the remote moved on: a merge follows), failed for a passing reason (retried), or
 * refused for good (credentials, the table, the item itself). */
typedef enum SyncPushOutcome {
        SYNC_PUSH_SUCCESS,
        SYNC_PUSH_CONFLICT,
        SYNC_PUSH_RETRYABLE,
        SYNC_PUSH_ERROR,
        _SYNC_PUSH_MAX,
} SyncPushOutcome;

/* The engine's counts since the start, for the daemon's metrics (the same daemon.status tells). */
typedef struct SyncMetrics {
        uint64_t pushes[_SYNC_PUSH_MAX];
        uint64_t pulls_complete, pulls_failed; /* pulls of one user's notebooks */
        uint64_t pulled;                       /* versions a pull took in */
        uint64_t merges, conflicts;
        uint64_t retries_request; /* another attempt of the standard retry mode */
        uint64_t retries_backoff; /* left to the loop-level backoff */
        uint64_t parts_written, parts_fetched, parts_deleted;
        unsigned pending, errors, in_flight;
        bool online;
        const RemoteStats *remote;
} SyncMetrics;
const char *sync_push_outcome_name(SyncPushOutcome o);
void sync_metrics(Sync *s, SyncMetrics *ret);

/* Where the engine syncs to, for the start-up log line. */
const char *remote_describe(Sync *s, char *buf, size_t size);

/* One line for humans, e.g. "online, 0 pending" (for logs and STATUS=). */
const char *sync_summary(Sync *s, char *buf, size_t size);
