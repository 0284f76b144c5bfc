/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "reconcile.h"
#include "tap.h"
#include "util.h"

/* Local states, by the flags the engine reads from the store. base_gen 10: views of generation
 * 10 or older predate the base; 11 and RECONCILE_GEN_NOW come after it. */
enum {
        NONE_ROW,
        CLEAN,
        DIRTY,
        NEW,
        PRISTINE,
        TOMB,
        TOMB_NEW,
        TOMB_DONE,
        REVIVED,
        TOMB_PRISTINE,
        _LOCAL_MAX
};
static const ReconcileLocal LOCAL[_LOCAL_MAX] = {
        [NONE_ROW] = { .exists = false },
        [CLEAN] = { .exists = true, .has_base = true, .base_gen = 10 },
        [DIRTY] = { .exists = true, .dirty = true, .has_base = true, .base_gen = 10 },
        [NEW] = { .exists = true, .dirty = true },
        [PRISTINE] = { .exists = true, .dirty = true, .pristine = true },
        [TOMB] = { .exists = true, .deleted = true, .dirty = true, .has_base = true, .base_gen = 10 },
        [TOMB_NEW] = { .exists = true, .deleted = true, .dirty = true },
        [TOMB_DONE] = { .exists = true, .deleted = true, .delete_done = true, .base_gen = 10 },
        /* Created again here after a delete that went through: no base, but views from before the
         * delete are still stale. */
        [REVIVED] = { .exists = true, .dirty = true, .base_gen = 10 },
        [TOMB_PRISTINE] = { .exists = true, .deleted = true, .dirty = true, .pristine = true },
};
static const char *const LOCAL_NAME[_LOCAL_MAX] = {
        [NONE_ROW] = "no row",
        [CLEAN] = "clean",
        [DIRTY] = "dirty",
        [NEW] = "never synced",
        [PRISTINE] = "provisioned here, untouched",
        [TOMB] = "tombstone",
        [TOMB_NEW] = "tombstone never synced",
        [TOMB_DONE] = "tombstone, delete done",
        [REVIVED] = "created again after a delete",
        [TOMB_PRISTINE] = "provisioned, deleted untouched before any sync",
};

enum { STALE = 10, FRESH = 11 };
#define NOW RECONCILE_GEN_NOW

typedef struct Row {
        int local;
        ReconcileEvent event;
        uint64_t gen;
        bool is_base, ours;
        ReconcileAction want;
        ReconcileNotice notice;
        bool remote_pristine; /* the item is exactly as provisioning makes it */
} Row;

/* The table of doc/sync.md ("Reconciliation"), row by row. */
static const Row TABLE[] = {
        /* An item seen. */
        { NONE_ROW, RECONCILE_SEEN, FRESH, false, false, RECONCILE_TAKE, RECONCILE_QUIET, false },
        { NONE_ROW, RECONCILE_SEEN, STALE, false, false, RECONCILE_TAKE, RECONCILE_QUIET, false },
        { NONE_ROW, RECONCILE_SEEN, FRESH, false, true, RECONCILE_REDELETE, RECONCILE_QUIET, false },
        { CLEAN, RECONCILE_SEEN, FRESH, true, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { CLEAN, RECONCILE_SEEN, FRESH, false, false, RECONCILE_TAKE, RECONCILE_QUIET, false },
        { CLEAN, RECONCILE_SEEN, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { CLEAN, RECONCILE_SEEN, NOW, false, false, RECONCILE_TAKE, RECONCILE_QUIET, false },
        { DIRTY, RECONCILE_SEEN, FRESH, true, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { DIRTY, RECONCILE_SEEN, FRESH, false, false, RECONCILE_MERGE, RECONCILE_QUIET, false },
        { DIRTY, RECONCILE_SEEN, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { DIRTY, RECONCILE_SEEN, STALE, false, true, RECONCILE_CONFIRM, RECONCILE_QUIET, false },
        { DIRTY, RECONCILE_SEEN, NOW, false, true, RECONCILE_CONFIRM, RECONCILE_QUIET, false },
        { NEW, RECONCILE_SEEN, FRESH, false, false, RECONCILE_MERGE, RECONCILE_QUIET, false },
        { NEW, RECONCILE_SEEN, STALE, false, false, RECONCILE_MERGE, RECONCILE_QUIET, false },
        { NEW, RECONCILE_SEEN, NOW, false, true, RECONCILE_CONFIRM, RECONCILE_QUIET, false },
        { PRISTINE, RECONCILE_SEEN, FRESH, false, false, RECONCILE_TAKE, RECONCILE_QUIET, false },
        { TOMB_PRISTINE, RECONCILE_SEEN, FRESH, false, false, RECONCILE_CONFIRM, RECONCILE_QUIET, true },
        { TOMB_PRISTINE, RECONCILE_SEEN, FRESH, false, false, RECONCILE_TAKE, RECONCILE_REVIVED, false },
        { TOMB_NEW, RECONCILE_SEEN, FRESH, false, false, RECONCILE_TAKE, RECONCILE_REVIVED, true },
        { TOMB_PRISTINE, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_NONE, RECONCILE_QUIET,
          false },
        { PRISTINE, RECONCILE_SEEN, NOW, false, false, RECONCILE_TAKE, RECONCILE_QUIET, false },
        { PRISTINE, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { REVIVED, RECONCILE_SEEN, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { REVIVED, RECONCILE_SEEN, FRESH, false, false, RECONCILE_MERGE, RECONCILE_QUIET, false },
        { REVIVED, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB, RECONCILE_SEEN, FRESH, true, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB, RECONCILE_SEEN, FRESH, false, false, RECONCILE_TAKE, RECONCILE_REVIVED, false },
        { TOMB, RECONCILE_SEEN, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB, RECONCILE_SEEN, NOW, false, true, RECONCILE_CONFIRM, RECONCILE_QUIET, false },
        { TOMB_NEW, RECONCILE_SEEN, NOW, false, true, RECONCILE_CONFIRM, RECONCILE_QUIET, false },
        { TOMB_NEW, RECONCILE_SEEN, FRESH, false, false, RECONCILE_TAKE, RECONCILE_REVIVED, false },
        { TOMB_DONE, RECONCILE_SEEN, STALE, true, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB_DONE, RECONCILE_SEEN, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB_DONE, RECONCILE_SEEN, FRESH, true, false, RECONCILE_CONFIRM, RECONCILE_QUIET, false },
        { TOMB_DONE, RECONCILE_SEEN, FRESH, false, false, RECONCILE_TAKE, RECONCILE_QUIET, false },
        { TOMB_DONE, RECONCILE_SEEN, FRESH, false, true, RECONCILE_CONFIRM, RECONCILE_QUIET, false },
        /* No item where a complete pull or a GetItem looked. */
        { NONE_ROW, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { CLEAN, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_DELETE_LOCAL,
          RECONCILE_DELETED_REMOTE, false },
        { CLEAN, RECONCILE_ABSENT_PULL, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { DIRTY, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_DETACH, RECONCILE_EDIT_SURVIVED,
          false },
        { DIRTY, RECONCILE_ABSENT_GET, NOW, false, false, RECONCILE_DETACH, RECONCILE_EDIT_SURVIVED, false },
        { DIRTY, RECONCILE_ABSENT_PULL, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { NEW, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { NEW, RECONCILE_ABSENT_GET, NOW, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_PURGE, RECONCILE_QUIET, false },
        { TOMB, RECONCILE_ABSENT_GET, NOW, false, false, RECONCILE_DELETED, RECONCILE_QUIET, false },
        { TOMB, RECONCILE_ABSENT_PULL, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB_NEW, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB_DONE, RECONCILE_ABSENT_PULL, FRESH, false, false, RECONCILE_PURGE, RECONCILE_QUIET, false },
        { TOMB_DONE, RECONCILE_ABSENT_PULL, STALE, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { TOMB_DONE, RECONCILE_ABSENT_GET, NOW, false, false, RECONCILE_DELETED, RECONCILE_QUIET, false },
        /* Our DeleteItem answered. */
        { TOMB, RECONCILE_DELETE_ACCEPTED, NOW, false, false, RECONCILE_DELETED, RECONCILE_QUIET, false },
        { CLEAN, RECONCILE_DELETE_ACCEPTED, NOW, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
        { NONE_ROW, RECONCILE_DELETE_ACCEPTED, NOW, false, false, RECONCILE_NONE, RECONCILE_QUIET, false },
};

static void test_table(void)
{
        for (size_t i = 0; i < ELEMENTSOF(TABLE); i++) {
                const Row *t = &TABLE[i];
                ReconcileRemote r = { .event = t->event,
                                      .observed_gen = t->gen,
                                      .is_base = t->is_base,
                                      .ours = t->ours,
                                      .pristine = t->remote_pristine };
                ReconcileNotice notice;
                ReconcileAction a = reconcile(&LOCAL[t->local], &r, &notice);

                ok(a == t->want && notice == t->notice, "%s, %s%s%s (%s view): %s", LOCAL_NAME[t->local],
                   reconcile_event_to_string(t->event), t->is_base ? ", the base" : "",
                   t->ours ? ", our token" : "",
                   t->gen == NOW     ? "now"
                   : t->gen == STALE ? "stale"
                                     : "fresh",
                   reconcile_action_to_string(t->want));
                if (a != t->want || notice != t->notice)
                        printf("#   got %s (notice %d)\n", reconcile_action_to_string(a), notice);
        }
}

/* The invariants every combination keeps, whatever the table says. */
static void test_invariants(void)
{
        unsigned n = 0, bad = 0;

        for (unsigned bits = 0; bits < 64; bits++) {
                ReconcileLocal l = { .exists = bits & 1,
                                     .deleted = bits & 2,
                                     .dirty = bits & 4,
                                     .has_base = bits & 8,
                                     .delete_done = bits & 16,
                                     .base_gen = 10 };

                if (bits & 32)
                        continue;
                for (int e = 0; e < _RECONCILE_EVENT_MAX; e++)
                        for (int f = 0; f < 8; f++) {
                                ReconcileRemote r = { .event = e,
                                                      .observed_gen = (f & 1) ? FRESH : STALE,
                                                      .is_base = f & 2,
                                                      .ours = f & 4 };
                                ReconcileAction a = reconcile(&l, &r, NULL);
                                bool stale = !(f & 1);
                                bool live = l.exists && !l.deleted;

                                n++;
                                /* A local change is never overwritten: only merged. */
                                bad += a == RECONCILE_TAKE && live && l.dirty && !l.pristine;
                                /* A stale view overrides nothing. */
                                bad += stale && l.exists &&
                                       (a == RECONCILE_TAKE || a == RECONCILE_MERGE ||
                                        a == RECONCILE_PURGE || a == RECONCILE_DELETE_LOCAL ||
                                        a == RECONCILE_DETACH);
                                /* Nothing edited here is deleted here because of the remote. */
                                bad += a == RECONCILE_DELETE_LOCAL && (l.dirty || !live);
                                /* Only a complete pull ends a tombstone. */
                                bad += a == RECONCILE_PURGE && (e != RECONCILE_ABSENT_PULL || live);
                                /* Our own write is never a conflict. */
                                bad += l.exists && e == RECONCILE_SEEN && r.ours && a != RECONCILE_CONFIRM;
                                /* Nor brings back what is gone here. */
                                bad += !l.exists && e == RECONCILE_SEEN && r.ours && a != RECONCILE_REDELETE;
                                /* An absent item never merges, a present one never deletes. */
                                bad += e != RECONCILE_SEEN && (a == RECONCILE_MERGE || a == RECONCILE_TAKE);
                                bad += e == RECONCILE_SEEN &&
                                       (a == RECONCILE_DELETE_LOCAL || a == RECONCILE_PURGE);
                        }
        }
        ok(bad == 0, "invariants hold in all %u combinations (%u violations)", n, bad);
}

int main(void)
{
        test_table();
        test_invariants();
        return tap_done();
}
