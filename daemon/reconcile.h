/* SPDX-License-Identifier: MIT */
#pragma once

/* The sync policy in one place: given what we hold of a notebook, what the remote table shows of
 * it and how fresh that view is, one action. Every path of the engine that learns something of
 * the remote (a push answered, a GetItem after a failed condition, a pull page, the end of a
 * complete pull) asks here and does what it is told; nothing else decides. Pure: no store, no
 * network, no clock. doc/sync.md ("Reconciliation") has the same table in prose, and
 * tests/unit/test-reconcile.c walks every row.
 *
 * Freshness is counted in pull generations: the engine numbers every pull it starts (and a GetItem
 * counts as a view newer than everything). A view of the remote taken before our base was set, or
 * before our delete went through, may be stale and never overrides them. */

#include <stdbool.h>
#include <stdint.h>

/* Observed after every base and delete recorded so far (a GetItem sent after a failed write). */
#define RECONCILE_GEN_NOW UINT64_MAX

typedef struct ReconcileLocal {
        bool exists;       /* a row, live or tombstone */
        bool deleted;      /* a tombstone */
        bool dirty;        /* changed since the base (for a tombstone: the delete still to send) */
        bool has_base;     /* the remote held a version of ours (base_revision, base_sync_id) */
        bool delete_done;  /* tombstone whose remote copy is gone, awaiting a pull that agrees */
        bool pristine;     /* provisioned here (blank-USER, demo-USER) and unchanged since: nothing of
                            * the user's to keep; for a tombstone: deleted so, before any sync */
        uint64_t base_gen; /* generation when the base (or the delete) was recorded */
} ReconcileLocal;

typedef enum ReconcileEvent {
        RECONCILE_SEEN,            /* an item: in a pull page or a GetItem answer */
        RECONCILE_ABSENT_PULL,     /* a complete pull did not find the notebook */
        RECONCILE_ABSENT_GET,      /* a GetItem found no item */
        RECONCILE_DELETE_ACCEPTED, /* our conditional DeleteItem succeeded */
        _RECONCILE_EVENT_MAX,
} ReconcileEvent;

typedef struct ReconcileRemote {
        ReconcileEvent event;
        uint64_t observed_gen; /* the pull's generation, or RECONCILE_GEN_NOW */
        bool is_base;          /* the item is the version of our base (same revision and sync_id) */
        bool ours;             /* the item carries a write token of ours not yet confirmed */
        bool pristine;         /* the item is a provisioned notebook exactly as provisioning makes it */
} ReconcileRemote;

typedef enum ReconcileAction {
        RECONCILE_NONE,         /* nothing to do (already agreed, or the view is stale) */
        RECONCILE_TAKE,         /* store the remote version, clean: our copy had nothing of its own */
        RECONCILE_CONFIRM,      /* our own write stands: it becomes the base; later edits stay dirty */
        RECONCILE_MERGE,        /* both sides changed: three-way merge against the base, push it */
        RECONCILE_DELETE_LOCAL, /* deleted elsewhere and untouched here: delete it here too */
        RECONCILE_DETACH,       /* deleted elsewhere, edited here: forget the base, push as new */
        RECONCILE_DELETED,      /* our delete (or another's) is done: the tombstone awaits a pull */
        RECONCILE_PURGE,        /* a pull after the delete agrees: drop the tombstone */
        RECONCILE_REDELETE,     /* a write of ours landed after the notebook was gone here: delete it */
        _RECONCILE_ACTION_MAX,
} ReconcileAction;

/* What to tell the user besides the action, if anything. */
typedef enum ReconcileNotice {
        RECONCILE_QUIET,
        RECONCILE_REVIVED,        /* deleted here, changed elsewhere since: the change wins */
        RECONCILE_EDIT_SURVIVED,  /* deleted elsewhere, edited here: the edit is pushed again */
        RECONCILE_DELETED_REMOTE, /* deleted on another device: deleted here */
} ReconcileNotice;

ReconcileAction reconcile(const ReconcileLocal *local, const ReconcileRemote *remote,
                          ReconcileNotice *ret_notice);

const char *reconcile_action_to_string(ReconcileAction a);
const char *reconcile_event_to_string(ReconcileEvent e);
