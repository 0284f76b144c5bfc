/* SPDX-License-Identifier: MIT */
#pragma once

/* The local store: notebooks and cells in SQLite. The store owns the database; everyone else goes
 * through these functions. Errors are negative errno:
 *   -ENOENT  no such notebook
 *   -ENXIO   no such cell (the cell named, or the one to place after)
 *   -EEXIST  the notebook or cell id is taken
 *   -ESTALE  expected_revision did not match; StoreMut.revision holds the current one
 *   -E2BIG   a notebook would have more than MAX_CELLS cells
 *   -ERANGE  a position is out of range
 *   -ENOSPC, -EIO, -EROFS, -EBUSY, -EBADMSG: the database failed (see store_errmsg())
 * Notebook and cell values are the protocol's JSON (doc/protocol.md). */

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "util.h"

typedef struct Store Store;

typedef struct StoreMigration {
        int version;
        const char *name;
        const char *sql;
} StoreMigration;

/* Generated from sql/ at build time (sql-embedded.c). */
extern const StoreMigration store_migrations[];
extern const size_t store_migrations_count;

/* Opens (creating if needed) the database at path, applies pending migrations in one transaction.
 * A database written by a newer notebookd gives -EPROTONOSUPPORT. On failure a message for the
 * user is written to errbuf. */
int store_open(const char *path, bool durability_full, Store **ret, char *errbuf, size_t errlen);

/* Edits that would take a notebook's cells past max bytes fail with -EFBIG (0: no limit, the
 * default). Only growth is refused; what the sync engine applies from the remote never is. */
void store_set_max_notebook_bytes(Store *s, uint64_t max);
/* History: each notebook keeps a record of each of its last revisions (the newest revisions
 * records, less those superseded more than max_age_usec ago; 0: no age bound), holding what each
 * change altered, so that any of them can be rebuilt (store_notebook_revision()) and restored.
 * revisions 0: none kept. The default is HISTORY_REVISIONS_DEFAULT for HISTORY_AGE_DAYS_DEFAULT. */
void store_set_history(Store *s, unsigned revisions, uint64_t max_age_usec);
/* Applies those bounds to every notebook's records (deletes them all when none are kept), in one
 * transaction: done at start, as a notebook's own are pruned as it changes. */
int store_history_expire(Store *s);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free)

int store_schema_version(Store *s);
const char *store_errmsg(Store *s);

/* Group commit: the server opens one transaction per batch of requests and one savepoint per
 * request, so a failed request undoes only its own writes. */
int store_begin(Store *s);
/* Commits; with durability full, what it wrote is on disk when it returns. */
int store_commit(Store *s);
/* Commits, and returns at once: what it wrote is on disk once store_durable() reaches *ret_seq
 * (0: at once). With durability full a thread syncs the WAL meanwhile, and store_flush_fd()
 * becomes readable each time it got further (read it to reset it). */
int store_commit_deferred(Store *s, uint64_t *ret_seq);
/* How far commits are on disk; a negative errno if syncing failed (nothing after is durable). */
int store_durable(Store *s, uint64_t *ret_seq);
int store_flush_fd(Store *s);
/* Syncs what store_commit_deferred() committed, here and now. */
int store_flush_now(Store *s);
int store_rollback(Store *s);
int store_savepoint(Store *s);
int store_release(Store *s);
int store_rollback_to(Store *s);
/* False once SQLite has rolled a transaction back on its own (SQLITE_FULL, I/O errors). */
bool store_in_transaction(Store *s);

/* In and out of every mutation. */
typedef struct StoreMut {
        int64_t expected_revision; /* in: -1 for no check */
        int64_t revision;          /* out: the new revision, or the current one on -ESTALE */
        char updated_at[TIMESTAMP_MAX];
        const char *origin; /* in: what history says made the revision (NULL: "edit") */
} StoreMut;
#define STORE_MUT_INIT                  \
        {                               \
                .expected_revision = -1 \
        }

/* Where a cell goes. */
typedef enum PlaceKind {
        PLACE_END,
        PLACE_FRONT,
        PLACE_INDEX, /* index: the 0-based index the cell ends up at */
        PLACE_AFTER, /* after: the id of the cell it follows */
} PlaceKind;
typedef struct CellPlace {
        PlaceKind kind;
        int64_t index;
        const char *after;
} CellPlace;

/* Provisions blank-{user} and demo-{user} unless done before for this user. */
int store_provision(Store *s, const char *user_id, bool *ret_provisioned);

/* Where a page of a list starts: after the row with this key (created_at, id). */
typedef struct StoreListKey {
        const char *created_at;
        const char *id;
} StoreListKey;

/* Array of at most limit notebook summaries, ordered by created_at, id, after the key after (NULL:
 * from the first); *ret_more tells whether more follow. */
int store_notebook_list(Store *s, const char *user_id, const StoreListKey *after, unsigned limit,
                        cJSON **ret, bool *ret_more);
int store_notebook_get(Store *s, const char *user_id, const char *notebook_id, cJSON **ret);
int store_notebook_exists(Store *s, const char *user_id, const char *notebook_id);
/* A notebook's revision, and whether it is a tombstone (deleted, the delete not yet synced). 0, or
 * -ENOENT when there is no such row. */
int store_notebook_head(Store *s, const char *user_id, const char *notebook_id, int64_t *ret_revision,
                        bool *ret_deleted);
/* What a watcher is told of a change, as of now (inside the transaction that made it):
 * [user_id, notebook_id, revision or null (the tombstone is gone too), deleted]. NULL: no memory
 * or a failed read. */
cJSON *store_change_record(Store *s, const char *user_id, const char *notebook_id);

/* fields: optional "name", "db_conn_string", "ttl", "demo_version" (each may be JSON null);
 * cells: array of complete cells, each with an "id" (or NULL). Returns the new notebook. */
int store_notebook_create(Store *s, const char *user_id, const char *notebook_id, const cJSON *fields,
                          const cJSON *cells, cJSON **ret);
/* fields: any of "name", "db_conn_string", "ttl" (null clears); cells (or NULL): complete cells,
 * each with an "id", that replace all of the notebook's. Returns the summary. */
int store_notebook_update(Store *s, const char *user_id, const char *notebook_id, StoreMut *m,
                          const cJSON *fields, const cJSON *cells, cJSON **ret);
/* Leaves a tombstone for the sync engine; the notebook is gone for every reader. */
int store_notebook_delete(Store *s, const char *user_id, const char *notebook_id, StoreMut *m);
/* The notebook as it was at revision, rebuilt from history: -ERANGE when revision is not in it. */
int store_notebook_revision(Store *s, const char *user_id, const char *notebook_id, int64_t revision,
                            cJSON **ret);
/* At most limit revisions the notebook can be restored to, newest first (the current one first;
 * before > 0: only those below it), each {revision, at, origin, cells_changed, fields_changed,
 * order_changed}: when and what made it (origin create, edit, pull, merge or restore; null, with
 * cells_changed null, for a current revision made while history was off). *ret_revision: the
 * current revision. */
int store_notebook_history(Store *s, const char *user_id, const char *notebook_id, int64_t before,
                           unsigned limit, int64_t *ret_revision, cJSON **ret);
/* Makes the content of revision (cells, name, db_conn_string, ttl, demo_version) the notebook's
 * newest revision: an edit like any other, which syncs. -ERANGE: revision not in history. */
int store_notebook_restore(Store *s, const char *user_id, const char *notebook_id, StoreMut *m,
                           int64_t revision, cJSON **ret);
/* Rewrites demo-{user} to the current demo content, recreating it if needed. */
int store_demo_reset(Store *s, const char *user_id, StoreMut *m, cJSON **ret);

/* cell: complete cell fields (see model_cell_fields() with defaults) plus "id". *ret_cell is the
 * cell as stored. */
int store_cell_create(Store *s, const char *user_id, const char *notebook_id, StoreMut *m, const cJSON *cell,
                      const CellPlace *place, cJSON **ret_cell, int64_t *ret_index);
/* fields: the fields to change. *ret_cell is the cell after the change, *ret_index its index
 * (either may be NULL). */
int store_cell_update(Store *s, const char *user_id, const char *notebook_id, const char *cell_id,
                      StoreMut *m, const cJSON *fields, cJSON **ret_cell, int64_t *ret_index);
int store_cell_delete(Store *s, const char *user_id, const char *notebook_id, const char *cell_id,
                      StoreMut *m);
int store_cell_move(Store *s, const char *user_id, const char *notebook_id, const char *cell_id, StoreMut *m,
                    const CellPlace *place, int64_t *ret_index);

/* Kept up to date with every change, so reading them costs the same however many there are. */
typedef struct StoreStats {
        int64_t notebooks; /* live ones */
        int64_t users;     /* provisioned */
} StoreStats;
int store_stats(Store *s, StoreStats *ret);

/* ---- sync ------------------------------------------------------------------------------------
 * The sync engine's view of a notebook. Each call is one statement or runs inside the caller's
 * transaction; the engine wraps a sequence in store_begin()/store_commit() itself. */

typedef struct StoreSyncInfo {
        int64_t revision;
        int64_t base_revision; /* the revision the remote holds; -1: the remote never had it */
        char *base_sync_id;    /* the sync_id of that version (NULL: none) */
        uint64_t base_gen;     /* the pull generation when the base or the delete was recorded */
        bool deleted;          /* a tombstone */
        bool dirty;            /* changed since the base (a tombstone: the delete still to send) */
        bool delete_done;      /* a tombstone whose remote copy is gone, until a pull agrees */
        char *sync_state;
        char *sync_error;
} StoreSyncInfo;
void store_sync_info_done(StoreSyncInfo *i);

/* A version of the notebook the remote holds: its revision and token, the item as JSON (the
 * common ancestor of a later merge), and the engine's pull generation when it was seen. */
typedef struct StoreBase {
        int64_t revision;
        const char *sync_id;
        const char *snapshot;
        const char *parts; /* the part references its item carried (parts_refs()), or NULL */
        uint64_t gen;
} StoreBase;

/* The notebook as the remote should hold it (*ret_notebook NULL for a tombstone; ret_notebook
 * itself may be NULL), and its sync columns. -ENOENT when there is no row at all. */
int store_sync_read(Store *s, const char *user_id, const char *notebook_id, cJSON **ret_notebook,
                    StoreSyncInfo *ret_info);
/* The item as last agreed with the remote (*ret NULL when there is none), and the part references
 * its item in the table carried (*ret NULL: none), and whether a write token of ours not yet
 * confirmed carried some (its parts may be in the parts table with no item naming them). */
int store_sync_base_snapshot(Store *s, const char *user_id, const char *notebook_id, char **ret);
int store_sync_base_parts(Store *s, const char *user_id, const char *notebook_id, char **ret,
                          bool *ret_unconfirmed);
/* Notebooks a collection pass of the parts table is asked for (want), or no longer; and the list,
 * an array of [user_id, notebook_id]. */
int store_sync_gc(Store *s, const char *user_id, const char *notebook_id, bool want);
int store_sync_gc_list(Store *s, cJSON **ret);
/* Dirty notebooks, oldest change first, at most max: an array of [user_id, notebook_id]. */
int store_sync_dirty(Store *s, int64_t max, cJSON **ret);

/* The write token of revision: the one recorded for it before (a retry reuses it, returns 0), or
 * fresh, recorded now (returns 1). Recorded before the write is sent, kept until the remote is seen
 * past it. */
int store_sync_token(Store *s, const char *user_id, const char *notebook_id, int64_t revision,
                     const char *fresh, char ret[static UUID_STRING_MAX]);
/* 1 if sync_id (may be NULL) is a token of ours not yet confirmed, with the revision it carried. */
int store_sync_token_revision(Store *s, const char *user_id, const char *notebook_id, const char *sync_id,
                              int64_t *ret_revision);
int store_sync_tokens_count(Store *s, const char *user_id, const char *notebook_id);
/* The item a token's write carried, and the part references of what went to the table (NULL:
 * none): recorded before it is sent; read back (1, *ret_snapshot NULL if never recorded; 0: no such
 * token) once a newer version shows it stood. ret_parts may be NULL. */
int store_sync_token_snapshot(Store *s, const char *user_id, const char *notebook_id, const char *sync_id,
                              const char *snapshot, const char *parts);
int store_sync_token_item(Store *s, const char *user_id, const char *notebook_id, const char *sync_id,
                          char **ret_snapshot, char **ret_parts);

/* The remote holds base (our own write, or a version we already hold): dirty says whether we have
 * more to send. The notebook's tokens are dropped. */
int store_sync_confirm(Store *s, const char *user_id, const char *notebook_id, const StoreBase *base,
                       bool dirty, const char *state);
/* Replaces (or creates) the notebook with notebook's fields and cells at notebook's revision, on
 * base: the remote's version taken over (clean), or a merge to push (dirty). */
int store_sync_replace(Store *s, const cJSON *notebook, const StoreBase *base, bool dirty,
                       const char *state);
/* The remote copy was deleted elsewhere: the notebook becomes new to the remote (dirty). */
int store_sync_detach(Store *s, const char *user_id, const char *notebook_id, const char *state,
                      const char *why);
/* A tombstone's remote copy is gone since generation gen. */
int store_sync_deleted(Store *s, const char *user_id, const char *notebook_id, uint64_t gen,
                       const char *state);
/* The highest revision the id had in a row gone since (-1: none). */
int store_sync_high_water(Store *s, const char *user_id, const char *notebook_id, int64_t *ret);
/* A tombstone on base, for a notebook gone here whose remote copy must go too (notebook: the
 * remote's version, for its key and created_at). */
int store_sync_tombstone(Store *s, const cJSON *notebook, const StoreBase *base);
/* Drops the row (a tombstone done with, or a notebook deleted elsewhere), keeping its revision
 * high-water mark so that the id, created again, continues above it, and its write tokens. */
int store_sync_remove(Store *s, const char *user_id, const char *notebook_id);
int store_sync_set_state(Store *s, const char *user_id, const char *notebook_id, const char *state,
                         const char *error);
/* Ids of user_id's notebooks the remote has had (a base, or a delete done): an array of strings. */
int store_sync_known(Store *s, const char *user_id, cJSON **ret);
/* One more than at the last start: the high part of the engine's pull generations. */
int store_sync_next_epoch(Store *s, uint64_t *ret);
/* Users with local notebooks or provisioned here: an array of strings. */
int store_sync_users(Store *s, cJSON **ret);
/* For status: notebooks not in sync (dirty, in error, or with conflicts to resolve), of user_id
 * (NULL: every user), at most max, each {user_id, notebook_id, revision, base_revision, deleted,
 * state, error, conflicts}. */
int store_sync_unsynced(Store *s, const char *user_id, int64_t max, cJSON **ret);

/* Conflicts a merge left: subject "cell:ID" (copy_id: the cell that keeps our version) or
 * "field:NAME" (local_value: ours). Listed as {user_id, notebook_id, cell_id | field, copy_id?,
 * local?, created_at}; user_id or notebook_id NULL: all. drop: subject NULL drops all of the
 * notebook's; returns how many went. */
int store_sync_conflict_add(Store *s, const char *user_id, const char *notebook_id, const char *subject,
                            const char *copy_id, const cJSON *local_value);
int store_sync_conflicts(Store *s, const char *user_id, const char *notebook_id, int64_t max, cJSON **ret);
int store_sync_conflict_drop(Store *s, const char *user_id, const char *notebook_id, const char *subject);
/* How many notebooks (of user_id; NULL: all) have conflicts to resolve. */
int store_sync_conflicted(Store *s, const char *user_id);
