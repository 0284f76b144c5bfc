/* SPDX-License-Identifier: MIT */
#include "reconcile.h"
#include "util.h"

/* A view of the remote taken before our base (or our delete) was recorded may predate it: such a
 * view can confirm our own writes but never overrides what we know. */
static bool view_is_current(const ReconcileLocal *l, const ReconcileRemote *r)
{
        /* base_gen stays after a base is dropped (a delete done, then the id created again), so a
         * view older than that delete still counts as stale. */
        return r->observed_gen > l->base_gen;
}

static ReconcileAction reconcile_seen(const ReconcileLocal *l, const ReconcileRemote *r, bool current,
                                      ReconcileNotice *notice)
{
        if (!l->exists)
                /* Gone here, every trace but our token: a write of ours held up in the network
                 * landed after the delete. It must not bring the notebook back. */
                return r->ours ? RECONCILE_REDELETE : RECONCILE_TAKE;
        /* A token of ours can only stand there because we wrote it, however its answer was lost. */
        if (r->ours)
                return RECONCILE_CONFIRM;
        if (r->is_base) {
                /* The version we deleted, seen after the delete went through: a write of ours that
                 * landed late re-created it. Make it the base again, so the delete goes out again. */
                if (l->deleted && l->delete_done && current)
                        return RECONCILE_CONFIRM;
                return RECONCILE_NONE;
        }
        if (!current)
                return RECONCILE_NONE;
        if (l->deleted) {
                /* Deleted here as provisioning made it, before any sync: another device's untouched
                 * copy is the very content the delete saw. It goes too. */
                if (!l->has_base && !l->delete_done && l->pristine && r->pristine)
                        return RECONCILE_CONFIRM;
                /* Changed (or created again) elsewhere after the version we deleted: a delete never
                 * destroys a change it did not see. */
                if (!l->delete_done)
                        *notice = RECONCILE_REVIVED;
                return RECONCILE_TAKE;
        }
        /* Never agreed with the remote (created on both sides on their own): merge with no common
         * ancestor. A notebook provisioned here and untouched holds nothing of the user's: another
         * device provisioned first, and its version (perhaps edited since) stands. */
        if (!l->has_base)
                return l->pristine ? RECONCILE_TAKE : RECONCILE_MERGE;
        return l->dirty ? RECONCILE_MERGE : RECONCILE_TAKE;
}

static ReconcileAction reconcile_absent(const ReconcileLocal *l, const ReconcileRemote *r, bool current,
                                        ReconcileNotice *notice)
{
        if (!l->exists || !current)
                return RECONCILE_NONE;
        if (l->deleted) {
                if (!l->has_base && !l->delete_done)
                        return RECONCILE_NONE; /* never sent anywhere: the push decides */
                /* Only a complete pull ends a tombstone: a late answer to an earlier pull could
                 * otherwise bring the notebook back once the tombstone is gone. */
                return r->event == RECONCILE_ABSENT_PULL ? RECONCILE_PURGE : RECONCILE_DELETED;
        }
        if (!l->has_base)
                return RECONCILE_NONE; /* never reached the remote (or its first write is on its way) */
        if (l->dirty) {
                *notice = RECONCILE_EDIT_SURVIVED;
                return RECONCILE_DETACH;
        }
        *notice = RECONCILE_DELETED_REMOTE;
        return RECONCILE_DELETE_LOCAL;
}

ReconcileAction reconcile(const ReconcileLocal *l, const ReconcileRemote *r, ReconcileNotice *ret_notice)
{
        ReconcileNotice notice = RECONCILE_QUIET;
        bool current = view_is_current(l, r);
        ReconcileAction a = RECONCILE_NONE;

        switch (r->event) {
        case RECONCILE_SEEN:
                a = reconcile_seen(l, r, current, &notice);
                break;
        case RECONCILE_ABSENT_PULL:
        case RECONCILE_ABSENT_GET:
                a = reconcile_absent(l, r, current, &notice);
                break;
        case RECONCILE_DELETE_ACCEPTED:
                a = l->exists && l->deleted ? RECONCILE_DELETED : RECONCILE_NONE;
                break;
        default:
                break;
        }
        if (ret_notice)
                *ret_notice = notice;
        return a;
}

const char *reconcile_action_to_string(ReconcileAction a)
{
        static const char *const names[_RECONCILE_ACTION_MAX] = {
                [RECONCILE_NONE] = "none",
                [RECONCILE_TAKE] = "take",
                [RECONCILE_CONFIRM] = "confirm",
                [RECONCILE_MERGE] = "merge",
                [RECONCILE_DELETE_LOCAL] = "delete-local",
                [RECONCILE_DETACH] = "detach",
                [RECONCILE_DELETED] = "deleted",
                [RECONCILE_PURGE] = "purge",
                [RECONCILE_REDELETE] = "redelete",
        };

        return (unsigned)a < ELEMENTSOF(names) ? names[a] : "?";
}

const char *reconcile_event_to_string(ReconcileEvent e)
{
        static const char *const names[_RECONCILE_EVENT_MAX] = {
                [RECONCILE_SEEN] = "seen",
                [RECONCILE_ABSENT_PULL] = "absent-pull",
                [RECONCILE_ABSENT_GET] = "absent-get",
                [RECONCILE_DELETE_ACCEPTED] = "delete-accepted",
        };

        return (unsigned)e < ELEMENTSOF(names) ? names[e] : "?";
}
