/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sqlite3.h>
#include <sys/eventfd.h>

#include "demo.h"
#include "nb-limits.h"
#include "model.h"
#include "store.h"

/* Cell positions are sparse: a new cell takes the middle of the gap between its neighbours, so
 * inserting or moving a cell writes that cell only. POS_STEP apart leaves 16 halvings before a
 * notebook has to be renumbered. */
#define POS_STEP 65536

typedef enum SqlId {
        SQL_BEGIN,
        SQL_COMMIT,
        SQL_ROLLBACK,
        SQL_SAVEPOINT,
        SQL_RELEASE,
        SQL_ROLLBACK_TO,
        SQL_NB_FIND,
        SQL_NB_GET,
        SQL_NB_LIST,
        SQL_NB_LIST_AFTER,
        SQL_NB_INSERT,
        SQL_NB_REVIVE,
        SQL_NB_BUMP,
        SQL_NB_BUMP_PENDING,
        SQL_NB_SET_FIELDS,
        SQL_NB_TOMBSTONE,
        SQL_CELLS,
        SQL_CELL_GET,
        SQL_CELL_INSERT,
        SQL_CELL_UPDATE,
        SQL_CELL_DELETE,
        SQL_CELLS_DELETE_ALL,
        SQL_CELL_COUNT,
        SQL_CELL_POS,
        SQL_CELL_SET_POS,
        SQL_POS_NTH,
        SQL_POS_MAX,
        SQL_POS_MIN,
        SQL_POS_NEXT,
        SQL_POS_INDEX,
        SQL_RENUMBER,
        SQL_USER_INSERT,
        SQL_STATS,
        SQL_SYNC_READ,
        SQL_SYNC_BASE_SNAPSHOT,
        SQL_SYNC_BASE_PARTS,
        SQL_SYNC_GC_ADD,
        SQL_SYNC_GC_DROP,
        SQL_SYNC_GC_LIST,
        SQL_SYNC_DIRTY,
        SQL_SYNC_TOKEN_FIND,
        SQL_SYNC_TOKEN_ADD,
        SQL_SYNC_TOKEN_REVISION,
        SQL_SYNC_TOKEN_SNAPSHOT,
        SQL_SYNC_TOKEN_SET_SNAPSHOT,
        SQL_SYNC_TOKENS_COUNT,
        SQL_SYNC_TOKENS_DROP,
        SQL_SYNC_CONFIRM,
        SQL_SYNC_DETACH,
        SQL_SYNC_DELETED,
        SQL_SYNC_REMOVE,
        SQL_SYNC_TOMBSTONE,
        SQL_SYNC_HIGH_WATER,
        SQL_SYNC_SET_STATE,
        SQL_SYNC_INSERT,
        SQL_SYNC_REPLACE,
        SQL_SYNC_KNOWN,
        SQL_SYNC_EPOCH,
        SQL_SYNC_USERS,
        SQL_SYNC_UNSYNCED,
        SQL_SYNC_UNSYNCED_USER,
        SQL_SYNC_UNSYNCED_CONFLICTED,
        SQL_SYNC_CONFLICT_ADD,
        SQL_SYNC_CONFLICTS,
        SQL_SYNC_CONFLICT_DROP,
        SQL_SYNC_CONFLICTED,
        SQL_CELL_IDS,
        SQL_HIST_ADD,
        SQL_HIST_PRUNE,
        SQL_HIST_DROP,
        SQL_HIST_WALK,
        SQL_HIST_LIST,
        SQL_HIST_AT,
        SQL_HIST_NEWEST,
        SQL_CONFLICTS_STALE,
        _SQL_MAX,
} SqlId;

/* The oldest revision of notebook NB's history superseded at time AT or later: the one before the
 * oldest record made since AT; that record itself when it is the oldest; else NEWEST. */
#define HIST_SUPERSEDED_SINCE(NB, AT, NEWEST)                                                   \
        "coalesce((SELECT max(p.revision) FROM history p WHERE p.nb = " NB " AND p.revision < " \
        "(SELECT min(q.revision) FROM history q WHERE q.nb = " NB " AND q.at >= " AT ")), "     \
        "(SELECT min(q.revision) FROM history q WHERE q.nb = " NB " AND q.at >= " AT "), " NEWEST ")"

#define NB_COLUMNS                                                                                 \
        "id, user_id, name, db_conn_string, revision, created_at, updated_at, ttl, demo_version, " \
        "(SELECT count(*) FROM cells c WHERE c.nb = n.nb)"
#define CELL_COLUMNS "id, type, code, status, stdout, outputs, error, reads, writes"
#define UNSYNCED_COLUMNS                                                                        \
        "n.user_id, n.id, n.revision, n.base_revision, n.deleted, n.sync_state, n.sync_error, " \
        "(SELECT count(*) FROM sync_conflicts c WHERE c.user_id = n.user_id AND c.notebook_id = n.id)"

static const char *const sql_text[_SQL_MAX] = {
        [SQL_BEGIN] = "BEGIN IMMEDIATE",
        [SQL_COMMIT] = "COMMIT",
        [SQL_ROLLBACK] = "ROLLBACK",
        [SQL_SAVEPOINT] = "SAVEPOINT req",
        [SQL_RELEASE] = "RELEASE req",
        [SQL_ROLLBACK_TO] = "ROLLBACK TO req",
        [SQL_NB_FIND] = "SELECT nb, revision, deleted FROM notebooks WHERE user_id = ?1 AND id = ?2",
        [SQL_NB_GET] = "SELECT " NB_COLUMNS " FROM notebooks n WHERE nb = ?1",
        /* Pages of a list walk the index notebooks_by_user_created from the key of the last row
         * sent, never an OFFSET: a page costs its own rows whatever lies before it, and rows
         * deleted or added before the key do not shift what comes after. */
        [SQL_NB_LIST] = "SELECT " NB_COLUMNS " FROM notebooks n WHERE user_id = ?1 AND deleted = 0 "
                        "ORDER BY created_at, id LIMIT ?2",
        [SQL_NB_LIST_AFTER] = "SELECT " NB_COLUMNS " FROM notebooks n WHERE user_id = ?1 AND deleted = 0 "
                              "AND (created_at, id) > (?3, ?4) ORDER BY created_at, id LIMIT ?2",
        [SQL_NB_INSERT] = "INSERT INTO notebooks (user_id, id, name, db_conn_string, revision, created_at, "
                          "updated_at, ttl, demo_version, dirty, dirty_since) "
                          "VALUES (?1, ?2, ?3, ?4, 1 + coalesce((SELECT high FROM revisions "
                          "WHERE user_id = ?1 AND notebook_id = ?2), 0), ?5, ?5, ?6, ?7, 1, ?8)",
        [SQL_NB_REVIVE] = "UPDATE notebooks SET name = ?2, db_conn_string = ?3, revision = revision + 1, "
                          "created_at = ?4, updated_at = ?4, ttl = ?5, demo_version = ?6, deleted = 0, "
                          "dirty = 1, dirty_since = coalesce(dirty_since, ?7), sync_state = 'pending', "
                          /* The remote copy is gone already: the notebook is new to it again. */
                          "base_revision = CASE WHEN delete_gen IS NULL THEN base_revision END, "
                          "base_sync_id = CASE WHEN delete_gen IS NULL THEN base_sync_id END, "
                          "base_snapshot = CASE WHEN delete_gen IS NULL THEN base_snapshot END, "
                          "base_parts = CASE WHEN delete_gen IS NULL THEN base_parts END, "
                          "delete_gen = NULL WHERE nb = ?1 RETURNING revision",
        /* No RETURNING on the paths every edit takes: SQLite gathers RETURNING rows in a temporary
         * table, which it opens and closes for each statement. */
        [SQL_NB_BUMP] = "UPDATE notebooks SET revision = revision + 1, updated_at = ?2, dirty = 1, "
                        "dirty_since = coalesce(dirty_since, ?3), sync_state = 'pending' WHERE nb = ?1",
        /* The same for a notebook whose change is still waiting to go: its dirty mark, state and
         * the indexes over them stay as they are, so the edit writes two pages, not four. */
        [SQL_NB_BUMP_PENDING] = "UPDATE notebooks SET revision = revision + 1, updated_at = ?2 "
                                "WHERE nb = ?1 AND dirty = 1 AND sync_state = 'pending'",
        [SQL_NB_SET_FIELDS] = "UPDATE notebooks SET name = CASE WHEN ?2 THEN ?3 ELSE name END, "
                              "db_conn_string = CASE WHEN ?4 THEN ?5 ELSE db_conn_string END, "
                              "ttl = CASE WHEN ?6 THEN ?7 ELSE ttl END, "
                              "demo_version = CASE WHEN ?8 THEN ?9 ELSE demo_version END WHERE nb = ?1",
        [SQL_NB_TOMBSTONE] = "UPDATE notebooks SET deleted = 1, name = NULL, db_conn_string = NULL, "
                             "ttl = NULL, demo_version = NULL WHERE nb = ?1",
        [SQL_CELLS] = "SELECT " CELL_COLUMNS " FROM cells WHERE nb = ?1 ORDER BY pos",
        [SQL_CELL_GET] = "SELECT " CELL_COLUMNS ", pos FROM cells WHERE nb = ?1 AND id = ?2",
        [SQL_CELL_INSERT] = "INSERT INTO cells (nb, id, pos, type, code, status, stdout, outputs, error, "
                            "reads, writes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        [SQL_CELL_UPDATE] = "UPDATE cells SET type = coalesce(?3, type), code = coalesce(?4, code), "
                            "status = coalesce(?5, status), stdout = coalesce(?6, stdout), "
                            "outputs = coalesce(?7, outputs), error = CASE WHEN ?8 THEN ?9 ELSE error END, "
                            "reads = coalesce(?10, reads), writes = coalesce(?11, writes) "
                            "WHERE nb = ?1 AND id = ?2",
        [SQL_CELL_DELETE] = "DELETE FROM cells WHERE nb = ?1 AND id = ?2",
        [SQL_CELLS_DELETE_ALL] = "DELETE FROM cells WHERE nb = ?1",
        [SQL_CELL_COUNT] = "SELECT count(*) FROM cells WHERE nb = ?1",
        [SQL_CELL_POS] = "SELECT pos FROM cells WHERE nb = ?1 AND id = ?2",
        [SQL_CELL_SET_POS] = "UPDATE cells SET pos = ?3 WHERE nb = ?1 AND id = ?2",
        [SQL_POS_NTH] =
                "SELECT pos FROM cells WHERE nb = ?1 AND id IS NOT ?2 ORDER BY pos LIMIT 2 OFFSET ?3",
        [SQL_POS_MAX] = "SELECT max(pos) FROM cells WHERE nb = ?1 AND id IS NOT ?2",
        [SQL_POS_MIN] = "SELECT min(pos) FROM cells WHERE nb = ?1 AND id IS NOT ?2",
        [SQL_POS_NEXT] = "SELECT min(pos) FROM cells WHERE nb = ?1 AND id IS NOT ?2 AND pos > ?3",
        [SQL_POS_INDEX] = "SELECT count(*) FROM cells WHERE nb = ?1 AND pos < ?2",
        [SQL_RENUMBER] = "UPDATE cells SET pos = t.r * 65536 FROM (SELECT id AS cid, row_number() OVER "
                         "(ORDER BY pos) AS r FROM cells WHERE nb = ?1) AS t "
                         "WHERE cells.nb = ?1 AND cells.id = t.cid",
        [SQL_USER_INSERT] = "INSERT OR IGNORE INTO users (user_id, provisioned_at) VALUES (?1, ?2)",
        /* Kept by the triggers of sql/0003_counts.sql: two rows, however large the store. */
        [SQL_STATS] = "SELECT (SELECT value FROM counts WHERE name = 'live_notebooks'), "
                      "(SELECT value FROM counts WHERE name = 'users')",
        [SQL_SYNC_READ] =
                "SELECT nb, revision, coalesce(base_revision, -1), base_sync_id, base_gen, deleted, "
                "dirty, delete_gen IS NOT NULL, sync_state, sync_error FROM notebooks "
                "WHERE user_id = ?1 AND id = ?2",
        [SQL_SYNC_BASE_SNAPSHOT] = "SELECT base_snapshot FROM notebooks WHERE user_id = ?1 AND id = ?2",
        [SQL_SYNC_BASE_PARTS] =
                "SELECT base_parts, EXISTS (SELECT 1 FROM sync_tokens WHERE user_id = ?1 AND "
                "notebook_id = ?2 AND parts IS NOT NULL) FROM notebooks "
                "WHERE user_id = ?1 AND id = ?2",
        [SQL_SYNC_GC_ADD] = "INSERT OR IGNORE INTO sync_gc (user_id, notebook_id) VALUES (?1, ?2)",
        [SQL_SYNC_GC_DROP] = "DELETE FROM sync_gc WHERE user_id = ?1 AND notebook_id = ?2",
        [SQL_SYNC_GC_LIST] = "SELECT user_id, notebook_id FROM sync_gc",
        [SQL_SYNC_DIRTY] = "SELECT user_id, id FROM notebooks WHERE dirty = 1 ORDER BY dirty_since LIMIT ?1",
        [SQL_SYNC_TOKEN_FIND] =
                "SELECT sync_id FROM sync_tokens WHERE user_id = ?1 AND notebook_id = ?2 AND revision = ?3",
        [SQL_SYNC_TOKEN_ADD] = "INSERT INTO sync_tokens (user_id, notebook_id, sync_id, revision) "
                               "VALUES (?1, ?2, ?3, ?4)",
        [SQL_SYNC_TOKEN_REVISION] =
                "SELECT revision FROM sync_tokens WHERE user_id = ?1 AND notebook_id = ?2 AND sync_id = ?3",
        [SQL_SYNC_TOKEN_SNAPSHOT] = "SELECT snapshot, parts FROM sync_tokens WHERE user_id = ?1 AND "
                                    "notebook_id = ?2 AND sync_id = ?3",
        [SQL_SYNC_TOKEN_SET_SNAPSHOT] =
                "UPDATE sync_tokens SET snapshot = ?4, parts = ?5 WHERE user_id = ?1 "
                "AND notebook_id = ?2 AND sync_id = ?3",
        [SQL_SYNC_TOKENS_COUNT] = "SELECT count(*) FROM sync_tokens WHERE user_id = ?1 AND notebook_id = ?2",
        [SQL_SYNC_TOKENS_DROP] = "DELETE FROM sync_tokens WHERE user_id = ?1 AND notebook_id = ?2",
        [SQL_SYNC_CONFIRM] = "UPDATE notebooks SET base_revision = ?3, base_sync_id = ?4, base_snapshot = "
                             "?5, base_parts = ?10, base_gen = ?6, "
                             "delete_gen = NULL, dirty = ?7, dirty_since = CASE WHEN ?7 THEN "
                             "coalesce(dirty_since, ?8) END, "
                             "sync_state = ?9, sync_error = NULL WHERE user_id = ?1 AND id = ?2",
        [SQL_SYNC_DETACH] =
                "UPDATE notebooks SET base_revision = NULL, base_sync_id = NULL, base_snapshot = NULL, "
                "base_parts = NULL, "
                "delete_gen = NULL, dirty = 1, dirty_since = coalesce(dirty_since, ?3), "
                "sync_state = ?4, sync_error = ?5 WHERE user_id = ?1 AND id = ?2",
        [SQL_SYNC_DELETED] =
                "UPDATE notebooks SET delete_gen = ?3, base_gen = ?3, dirty = 0, dirty_since = NULL, "
                "sync_state = ?4, sync_error = NULL WHERE user_id = ?1 AND id = ?2 AND deleted = 1",
        [SQL_SYNC_HIGH_WATER] = "SELECT high FROM revisions WHERE user_id = ?1 AND notebook_id = ?2",
        [SQL_SYNC_TOMBSTONE] =
                "INSERT INTO notebooks (user_id, id, revision, created_at, updated_at, "
                "deleted, dirty, dirty_since, "
                "base_revision, base_sync_id, base_snapshot, base_gen, sync_state, base_parts) "
                "VALUES (?1, ?2, ?3, ?4, ?4, 1, 1, ?5, ?3, ?6, ?7, ?8, ?9, ?10)",
        [SQL_SYNC_REMOVE] = "DELETE FROM notebooks WHERE user_id = ?1 AND id = ?2",
        [SQL_SYNC_SET_STATE] =
                "UPDATE notebooks SET sync_state = ?3, sync_error = ?4 WHERE user_id = ?1 AND id = ?2",
        [SQL_SYNC_INSERT] =
                "INSERT INTO notebooks (user_id, id, name, db_conn_string, revision, created_at, "
                "updated_at, "
                "ttl, demo_version, dirty, dirty_since, base_revision, base_sync_id, base_snapshot, "
                "base_gen, "
                "sync_state, base_parts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                "CASE WHEN ?10 THEN ?11 END, ?12, ?13, ?14, ?15, ?16, ?17)",
        [SQL_SYNC_REPLACE] =
                "UPDATE notebooks SET name = ?3, db_conn_string = ?4, revision = ?5, created_at = ?6, "
                "updated_at = ?7, ttl = ?8, demo_version = ?9, deleted = 0, dirty = ?10, "
                "dirty_since = CASE WHEN ?10 THEN coalesce(dirty_since, ?11) END, base_revision = ?12, "
                "base_sync_id = ?13, base_snapshot = ?14, base_parts = ?17, base_gen = ?15, delete_gen = "
                "NULL, "
                "sync_state = "
                "?16, "
                "sync_error = NULL WHERE user_id = ?1 AND id = ?2",
        [SQL_SYNC_KNOWN] = "SELECT id FROM notebooks WHERE user_id = ?1 "
                           "AND (base_revision IS NOT NULL OR delete_gen IS NOT NULL)",
        [SQL_SYNC_EPOCH] = "INSERT INTO sync_meta (key, value) VALUES ('epoch', 1) "
                           "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value",
        [SQL_SYNC_USERS] = "SELECT user_id FROM users UNION SELECT user_id FROM notebooks",
        /* What daemon.status lists, in two parts merged in order (store_sync_unsynced()): the
         * first LIMIT rows of the partial index notebooks_unsynced, read in its order, and the few
         * notebooks with conflicts that are otherwise in sync. The cost is the rows returned, not
         * the number of notebooks, nor of those out of sync. */
        [SQL_SYNC_UNSYNCED] = "SELECT " UNSYNCED_COLUMNS " FROM notebooks n "
                              "WHERE (dirty = 1 OR sync_state IN ('conflict', 'error')) "
                              "ORDER BY user_id, id LIMIT ?1",
        [SQL_SYNC_UNSYNCED_USER] =
                "SELECT " UNSYNCED_COLUMNS " FROM notebooks n "
                "WHERE user_id = ?2 AND (dirty = 1 OR sync_state IN ('conflict', 'error')) "
                "ORDER BY user_id, id LIMIT ?1",
        [SQL_SYNC_UNSYNCED_CONFLICTED] =
                "SELECT " UNSYNCED_COLUMNS " FROM (SELECT DISTINCT user_id AS u, notebook_id AS i "
                "FROM sync_conflicts WHERE ?2 IS NULL OR user_id = ?2) JOIN notebooks n ON n.user_id = u "
                "AND n.id = i WHERE NOT (n.dirty = 1 OR n.sync_state IN ('conflict', 'error')) "
                "ORDER BY n.user_id, n.id LIMIT ?1",
        [SQL_SYNC_CONFLICT_ADD] =
                "INSERT INTO sync_conflicts (user_id, notebook_id, subject, copy_id, local_value, "
                "created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id, notebook_id, subject) DO UPDATE SET "
                "copy_id = excluded.copy_id, local_value = excluded.local_value, created_at = "
                "excluded.created_at",
        [SQL_SYNC_CONFLICTS] =
                "SELECT user_id, notebook_id, subject, copy_id, local_value, created_at FROM sync_conflicts "
                "WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR notebook_id = ?2) "
                "ORDER BY user_id, notebook_id, subject LIMIT ?3",
        [SQL_SYNC_CONFLICTED] =
                "SELECT count(*) FROM (SELECT DISTINCT user_id, notebook_id FROM sync_conflicts "
                "WHERE ?1 IS NULL OR user_id = ?1)",
        [SQL_SYNC_CONFLICT_DROP] = "DELETE FROM sync_conflicts WHERE user_id = ?1 AND notebook_id = ?2 "
                                   "AND (?3 IS NULL OR subject = ?3)",
        [SQL_CELL_IDS] = "SELECT id FROM cells WHERE nb = ?1 ORDER BY pos",
        [SQL_HIST_ADD] = "INSERT OR REPLACE INTO history (nb, revision, prev_revision, at, origin, fields, "
                         "cell_order, cells) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        /* The bounds, on the records of notebook ?1 whose newest is revision ?4: the newest ?2 stay,
         * and a record stays while the one after it, which superseded it, was made at ?3 or later
         * (HIST_SUPERSEDED_SINCE). The newest always stays. */
        [SQL_HIST_PRUNE] =
                "DELETE FROM history WHERE nb = ?1 AND revision < ?4 AND (revision <= coalesce("
                "(SELECT revision FROM history WHERE nb = ?1 ORDER BY revision DESC LIMIT 1 OFFSET ?2), "
                "-1) OR revision < " HIST_SUPERSEDED_SINCE("?1", "?3", "?4") ")",
        [SQL_HIST_DROP] = "DELETE FROM history WHERE nb = ?1",
        [SQL_HIST_WALK] = "SELECT revision, prev_revision, at, origin, fields, cell_order, cells "
                          "FROM history WHERE nb = ?1 AND revision > ?2 ORDER BY revision DESC",
        [SQL_HIST_LIST] = "SELECT revision, prev_revision, at, origin, fields, cell_order IS NOT NULL, "
                          "(SELECT count(*) FROM json_each(h.cells)) FROM history h WHERE nb = ?1 "
                          "ORDER BY revision DESC",
        [SQL_HIST_AT] = "SELECT at FROM history WHERE nb = ?1 AND revision = ?2",
        /* Cell conflicts whose copy cell is gone (a whole content replaced, a restore). */
        [SQL_CONFLICTS_STALE] =
                "DELETE FROM sync_conflicts WHERE (user_id, notebook_id) = (SELECT user_id, id FROM "
                "notebooks WHERE nb = ?1) AND copy_id IS NOT NULL AND copy_id NOT IN "
                "(SELECT id FROM cells WHERE nb = ?1)",
        [SQL_HIST_NEWEST] = "SELECT nb, max(revision) FROM history GROUP BY nb",
};

static void hist_clear(Store *s);

struct Store {
        sqlite3 *db;
        sqlite3_stmt *stmts[_SQL_MAX];
        int version;
        int64_t changes_at_begin;

        /* Durability "full": SQLite commits with synchronous = NORMAL (the WAL is written, not
         * synced), and a commit is made durable by an fdatasync() of the WAL file: at once by
         * store_commit(), or by the flusher thread for store_commit_deferred(), so that the loop
         * runs the next transaction while the disk syncs the last one. Commits are numbered:
         * written counts the commits that changed something, durable how many of them are synced. */
        bool full;
        int wal_fd;
        int event_fd; /* readable when the flusher made progress (or failed) */
        uint64_t written;
        pthread_mutex_t lock; /* guards what follows, shared with the flusher thread */
        pthread_cond_t wake;
        pthread_t thread;
        bool thread_started, stopping;
        uint64_t wanted, durable;
        int flush_error;

        /* What nb_max_bytes() returns to the schema's size check (0: no limit); it is lifted while
         * what another machine wrote is applied. */
        uint64_t max_notebook_bytes;
        bool size_unchecked;

        /* History (sql/0008_history.sql): its bounds, and what the change in progress records. */
        int64_t history_revisions; /* kept per notebook; 0: no history */
        uint64_t history_max_age_usec;
        struct {
                int64_t nb;       /* the notebook changing (0: no change in progress) */
                int64_t revision; /* the revision the change makes */
                cJSON *fields;    /* old values of the notebook fields it changed */
                cJSON *order;     /* the cell ids in order before it, once it changed them */
                cJSON *cells;     /* cell id: the old values of what it changed of that cell */
        } hist;
};

static int wal_sync(Store *s);

static int errno_from_sqlite(int rc)
{
        /* The only trigger that raises: an edit would take a notebook past max_notebook_bytes. */
        if (rc == SQLITE_CONSTRAINT_TRIGGER)
                return -EFBIG;
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_CANTOPEN:
                return -EACCES;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_TOOBIG:
                return -E2BIG;
        default:
                return -EIO;
        }
}

const char *store_errmsg(Store *s)
{
        return s && s->db ? sqlite3_errmsg(s->db) : "no database";
}

/* A prepared statement, reset and unbound, ready for new parameters. Every statement is prepared
 * at open (prepare_all()), so there always is one. */
static sqlite3_stmt *stmt(Store *s, SqlId id)
{
        sqlite3_stmt *st = s->stmts[id];

        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
}

static int prepare_all(Store *s, char *errbuf, size_t errlen)
{
        for (size_t i = 0; i < _SQL_MAX; i++) {
                int r = sqlite3_prepare_v3(s->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[i],
                                           NULL);

                if (r != SQLITE_OK) {
                        snprintf(errbuf, errlen, "cannot prepare statement %zu: %s", i,
                                 sqlite3_errmsg(s->db));
                        return errno_from_sqlite(r);
                }
        }
        return 0;
}

/* Runs a statement that returns no rows (or ignores them); leaves it reset. */
static int run(Store *s, sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);

        sqlite3_reset(st);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : errno_from_sqlite(rc);
}

/* Steps once: 1 row, 0 done, negative on error. The caller resets. */
static int step(Store *s, sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return errno_from_sqlite(rc);
}

/* Runs a statement whose first column of its one row is an integer (NULL reads as *null_ret). */
static int query_int(Store *s, sqlite3_stmt *st, int64_t *ret, bool *ret_null)
{
        int r = step(s, st);

        if (r > 0) {
                if (ret_null)
                        *ret_null = sqlite3_column_type(st, 0) == SQLITE_NULL;
                *ret = sqlite3_column_int64(st, 0);
                r = 0;
        } else if (r == 0)
                r = -ENODATA;
        sqlite3_reset(st);
        return r;
}

static int exec(Store *s, const char *sql)
{
        return errno_from_sqlite(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
        if (v)
                sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
        else
                sqlite3_bind_null(st, i);
}

/* Binds a JSON value's text, or NULL when v is NULL; -ENOMEM. */
/* A statement whose ?1 and ?2 are a notebook's key. */
static sqlite3_stmt *stmt_key(Store *s, SqlId id, const char *user_id, const char *notebook_id)
{
        sqlite3_stmt *st = stmt(s, id);

        bind_text(st, 1, user_id);
        bind_text(st, 2, notebook_id);
        return st;
}

static int bind_json(sqlite3_stmt *st, int i, const cJSON *v)
{
        char *text;

        if (!v) {
                sqlite3_bind_null(st, i);
                return 0;
        }
        text = model_json_print(v, false);
        if (!text)
                return -ENOMEM;
        sqlite3_bind_text(st, i, text, -1, free);
        return 0;
}

/* Binds a member that is a string, null or absent: absent and null both bind NULL. */
static void bind_member_text(sqlite3_stmt *st, int i, const cJSON *obj, const char *key)
{
        const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

        bind_text(st, i, cJSON_IsString(v) ? v->valuestring : NULL);
}

static void bind_member_int(sqlite3_stmt *st, int i, const cJSON *obj, const char *key)
{
        const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

        if (cJSON_IsNumber(v))
                sqlite3_bind_int64(st, i, (sqlite3_int64)v->valuedouble);
        else
                sqlite3_bind_null(st, i);
}

static int migrate(Store *s, char *errbuf, size_t errlen)
{
        int64_t version;
        int latest = 0, r;

        for (size_t i = 0; i < store_migrations_count; i++)
                if (store_migrations[i].version > latest)
                        latest = store_migrations[i].version;

        {
                sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
                        snprintf(errbuf, errlen, "cannot read the schema version: %s",
                                 sqlite3_errmsg(s->db));
                        return errno_from_sqlite(sqlite3_errcode(s->db));
                }
                r = query_int(s, st, &version, NULL);
                sqlite3_finalize(st);
                if (r < 0) {
                        snprintf(errbuf, errlen, "cannot read the schema version: %s",
                                 sqlite3_errmsg(s->db));
                        return r;
                }
        }
        if (version > latest) {
                snprintf(errbuf, errlen,
                         "the database has schema version %lld, newer than the %d this notebookd knows; "
                         "run a newer notebookd",
                         (long long)version, latest);
                return -EPROTONOSUPPORT;
        }
        s->version = (int)version;
        if (version == latest)
                return 0;

        /* All pending migrations and the version bump commit together or not at all. */
        r = exec(s, "BEGIN IMMEDIATE");
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < store_migrations_count; i++) {
                char pragma[64];

                if (store_migrations[i].version <= version)
                        continue;
                r = exec(s, store_migrations[i].sql);
                if (r < 0) {
                        snprintf(errbuf, errlen, "migration %s failed: %s", store_migrations[i].name,
                                 sqlite3_errmsg(s->db));
                        exec(s, "ROLLBACK");
                        return r;
                }
                snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", store_migrations[i].version);
                r = exec(s, pragma);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = exec(s, "COMMIT");
        if (r < 0) {
                exec(s, "ROLLBACK");
                goto fail;
        }
        s->version = latest;
        return 0;
fail:
        snprintf(errbuf, errlen, "cannot migrate the schema: %s", sqlite3_errmsg(s->db));
        return r;
}

static void sql_nb_max_bytes(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
        Store *s = sqlite3_user_data(ctx);

        sqlite3_result_int64(ctx, s->max_notebook_bytes == 0 || s->size_unchecked
                                          ? INT64_MAX
                                          : (sqlite3_int64)MIN(s->max_notebook_bytes, (uint64_t)INT64_MAX));
}

void store_set_max_notebook_bytes(Store *s, uint64_t max)
{
        s->max_notebook_bytes = max;
}

int store_open(const char *path, bool durability_full, Store **ret, char *errbuf, size_t errlen)
{
        _cleanup_(store_freep) Store *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->wal_fd = s->event_fd = -1;
        s->history_revisions = HISTORY_REVISIONS_DEFAULT;
        s->history_max_age_usec = (uint64_t)HISTORY_AGE_DAYS_DEFAULT * 86400 * USEC_PER_SEC;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->wake, NULL);
        r = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL);
        if (r != SQLITE_OK) {
                snprintf(errbuf, errlen, "cannot open %s: %s", path,
                         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(r));
                return errno_from_sqlite(r);
        }
        sqlite3_extended_result_codes(s->db, 1);
        /* Only we write the database. Another process holding the write lock (the sqlite3 shell)
         * makes BEGIN fail quickly; the server retries it later instead of stalling its loop. */
        sqlite3_busy_timeout(s->db, 50);
        /* Not deterministic (a reload changes it), so SQLite calls it each time the trigger runs. */
        r = sqlite3_create_function(s->db, "nb_max_bytes", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, s,
                                    sql_nb_max_bytes, NULL, NULL);
        if (r != SQLITE_OK) {
                snprintf(errbuf, errlen, "cannot set up %s: %s", path, sqlite3_errmsg(s->db));
                return errno_from_sqlite(r);
        }

        r = exec(s, "PRAGMA journal_mode = WAL");
        /* With durability full, store_commit() syncs the WAL itself (see struct Store). */
        if (r >= 0)
                r = exec(s, "PRAGMA synchronous = NORMAL");
        if (r >= 0)
                r = exec(s, "PRAGMA foreign_keys = ON");
        if (r < 0) {
                snprintf(errbuf, errlen, "cannot set up %s: %s", path, sqlite3_errmsg(s->db));
                return r;
        }
        r = migrate(s, errbuf, errlen);
        if (r < 0)
                return r;
        r = prepare_all(s, errbuf, errlen);
        if (r < 0)
                return r;
        if (durability_full) {
                _cleanup_free_ char *wal = NULL;

                /* The WAL exists once the connection has read the database (migrate() did): it
                 * stays while the connection is open. */
                if (asprintf(&wal, "%s-wal", path) < 0)
                        return -ENOMEM;
                s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
                if (s->wal_fd < 0) {
                        r = -errno;
                        snprintf(errbuf, errlen, "cannot open %s: %s", wal, strerror(-r));
                        return r;
                }
                s->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (s->event_fd < 0)
                        return -errno;
                s->full = true;
                /* What migrate() committed is durable before anything else happens. */
                r = wal_sync(s);
                if (r < 0) {
                        snprintf(errbuf, errlen, "cannot sync %s: %s", wal, strerror(-r));
                        return r;
                }
        }
        *ret = TAKE_PTR(s);
        return 0;
}

Store *store_free(Store *s)
{
        if (!s)
                return NULL;
        if (s->thread_started) {
                pthread_mutex_lock(&s->lock);
                s->stopping = true;
                pthread_cond_signal(&s->wake);
                pthread_mutex_unlock(&s->lock);
                pthread_join(s->thread, NULL);
        }
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        hist_clear(s);
        for (size_t i = 0; i < _SQL_MAX; i++)
                sqlite3_finalize(s->stmts[i]);
        sqlite3_close(s->db);
        closep(&s->wal_fd);
        closep(&s->event_fd);
        free(s);
        return NULL;
}

int store_schema_version(Store *s)
{
        return s->version;
}

int store_begin(Store *s)
{
        s->changes_at_begin = sqlite3_total_changes64(s->db);
        return run(s, stmt(s, SQL_BEGIN));
}

/* ---- durability ---------------------------------------------------------------------------- */

static void flush_note(Store *s, int error, uint64_t target)
{
        pthread_mutex_lock(&s->lock);
        if (error < 0)
                s->flush_error = error;
        else if (target > s->durable)
                s->durable = target;
        pthread_mutex_unlock(&s->lock);
        if (s->event_fd >= 0)
                (void)!write(s->event_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
}

static int wal_sync(Store *s)
{
        return fdatasync(s->wal_fd) < 0 ? -errno : 0;
}

/* Syncs the WAL here and now: everything committed so far is durable if it succeeds. */
static int sync_now(Store *s)
{
        int r = wal_sync(s);

        flush_note(s, r, s->written);
        return r;
}

static void *flusher(void *userdata)
{
        Store *s = userdata;

        pthread_mutex_lock(&s->lock);
        for (;;) {
                uint64_t target;
                int r;

                while (!s->stopping && s->wanted <= s->durable)
                        pthread_cond_wait(&s->wake, &s->lock);
                if (s->stopping || s->flush_error < 0)
                        break;
                /* Everything up to target was written before it was asked for: one fdatasync()
                 * that starts now makes all of it durable. */
                target = s->wanted;
                pthread_mutex_unlock(&s->lock);
                r = wal_sync(s);
                flush_note(s, r, target);
                pthread_mutex_lock(&s->lock);
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

/* Commits; returns whether the transaction changed anything (1) or not (0). */
static int commit_written(Store *s)
{
        int r = run(s, stmt(s, SQL_COMMIT));

        if (r < 0)
                return r;
        if (sqlite3_total_changes64(s->db) == s->changes_at_begin)
                return 0;
        s->written++;
        return 1;
}

int store_commit(Store *s)
{
        int r = commit_written(s);

        if (r <= 0 || !s->full)
                return r < 0 ? r : 0;
        return sync_now(s);
}

int store_commit_deferred(Store *s, uint64_t *ret_seq)
{
        int r = commit_written(s);

        *ret_seq = s->full ? s->written : 0;
        if (r <= 0 || !s->full)
                return r < 0 ? r : 0;
        r = 0;
        pthread_mutex_lock(&s->lock);
        if (!s->thread_started) {
                r = -pthread_create(&s->thread, NULL, flusher, s);
                s->thread_started = r == 0;
        }
        if (r == 0 && s->written > s->wanted) {
                s->wanted = s->written;
                pthread_cond_signal(&s->wake);
        }
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
                r = sync_now(s); /* no thread: sync here */
        return r < 0 ? r : 0;
}

int store_durable(Store *s, uint64_t *ret_seq)
{
        int r;

        pthread_mutex_lock(&s->lock);
        *ret_seq = s->durable;
        r = s->flush_error;
        pthread_mutex_unlock(&s->lock);
        return r;
}

int store_flush_fd(Store *s)
{
        return s->event_fd;
}

int store_flush_now(Store *s)
{
        uint64_t durable;
        int r = store_durable(s, &durable);

        if (r < 0 || !s->full || durable >= s->written)
                return r;
        return sync_now(s);
}

int store_rollback(Store *s)
{
        if (sqlite3_get_autocommit(s->db))
                return 0;
        return run(s, stmt(s, SQL_ROLLBACK));
}

int store_savepoint(Store *s)
{
        return run(s, stmt(s, SQL_SAVEPOINT));
}

int store_release(Store *s)
{
        return run(s, stmt(s, SQL_RELEASE));
}

bool store_in_transaction(Store *s)
{
        return !sqlite3_get_autocommit(s->db);
}

int store_rollback_to(Store *s)
{
        int r = run(s, stmt(s, SQL_ROLLBACK_TO));

        return r < 0 ? r : store_release(s);
}

/* ---- reading ------------------------------------------------------------------------------- */

static cJSON *column_json(sqlite3_stmt *st, int col)
{
        const char *text = (const char *)sqlite3_column_text(st, col);

        return text ? cJSON_Parse(text) : cJSON_CreateArray();
}

static cJSON *column_text_or_null(sqlite3_stmt *st, int col)
{
        const char *text = (const char *)sqlite3_column_text(st, col);

        return text ? cJSON_CreateString(text) : cJSON_CreateNull();
}

static cJSON *column_int_or_null(sqlite3_stmt *st, int col)
{
        if (sqlite3_column_type(st, col) == SQLITE_NULL)
                return cJSON_CreateNull();
        return cJSON_CreateNumber((double)sqlite3_column_int64(st, col));
}

static bool add(cJSON *obj, const char *key, cJSON *v)
{
        if (!v)
                return false;
        if (!cJSON_AddItemToObject(obj, key, v)) {
                cJSON_Delete(v);
                return false;
        }
        return true;
}

/* A cell from a row of CELL_COLUMNS. */
static cJSON *cell_from_row(sqlite3_stmt *st)
{
        _cleanup_(cJSON_Deletep) cJSON *c = cJSON_CreateObject();

        if (!c || !add(c, "id", column_text_or_null(st, 0)) || !add(c, "type", column_text_or_null(st, 1)) ||
            !add(c, "code", column_text_or_null(st, 2)) || !add(c, "status", column_text_or_null(st, 3)) ||
            !add(c, "stdout", column_text_or_null(st, 4)) || !add(c, "outputs", column_json(st, 5)) ||
            !add(c, "error", column_text_or_null(st, 6)) || !add(c, "reads", column_json(st, 7)) ||
            !add(c, "writes", column_json(st, 8)))
                return NULL;
        return TAKE_PTR(c);
}

/* A notebook summary from a row of NB_COLUMNS. */
static cJSON *summary_from_row(sqlite3_stmt *st)
{
        _cleanup_(cJSON_Deletep) cJSON *n = cJSON_CreateObject();

        if (!n || !add(n, "id", column_text_or_null(st, 0)) ||
            !add(n, "user_id", column_text_or_null(st, 1)) || !add(n, "name", column_text_or_null(st, 2)) ||
            !add(n, "db_conn_string", column_text_or_null(st, 3)) ||
            !add(n, "revision", column_int_or_null(st, 4)) ||
            !add(n, "created_at", column_text_or_null(st, 5)) ||
            !add(n, "updated_at", column_text_or_null(st, 6)) || !add(n, "ttl", column_int_or_null(st, 7)) ||
            !add(n, "demo_version", column_int_or_null(st, 8)) ||
            !add(n, "cell_count", column_int_or_null(st, 9)))
                return NULL;
        return TAKE_PTR(n);
}

static int summary_get(Store *s, int64_t nb, cJSON **ret)
{
        sqlite3_stmt *st = stmt(s, SQL_NB_GET);
        int r;

        sqlite3_bind_int64(st, 1, nb);
        r = step(s, st);
        if (r > 0) {
                *ret = summary_from_row(st);
                r = *ret ? 0 : -ENOMEM;
        } else if (r == 0)
                r = -ENOENT;
        sqlite3_reset(st);
        return r;
}

/* Steps through a bound statement, turning each row into an array element with row_fn; resets
 * the statement. */
static int rows_to_array(Store *s, sqlite3_stmt *st, cJSON *(*row_fn)(sqlite3_stmt *st), cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateArray();
        int r;

        if (!out) {
                sqlite3_reset(st);
                return -ENOMEM;
        }
        while ((r = step(s, st)) > 0) {
                cJSON *item = row_fn(st);

                if (!item || !cJSON_AddItemToArray(out, item)) {
                        cJSON_Delete(item);
                        r = -ENOMEM;
                        break;
                }
        }
        sqlite3_reset(st);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        return 0;
}

static int cells_get(Store *s, int64_t nb, cJSON **ret)
{
        sqlite3_stmt *st = stmt(s, SQL_CELLS);

        sqlite3_bind_int64(st, 1, nb);
        return rows_to_array(s, st, cell_from_row, ret);
}

static int notebook_full(Store *s, int64_t nb, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *n = NULL;
        cJSON *cells = NULL;
        int r;

        r = summary_get(s, nb, &n);
        if (r < 0)
                return r;
        cJSON_DeleteItemFromObjectCaseSensitive(n, "cell_count");
        r = cells_get(s, nb, &cells);
        if (r < 0)
                return r;
        if (!add(n, "cells", cells))
                return -ENOMEM;
        *ret = TAKE_PTR(n);
        return 0;
}

/* Finds a notebook: its row id, revision and whether it is a tombstone. -ENOENT if no row. */
static int nb_find(Store *s, const char *user_id, const char *notebook_id, int64_t *ret_nb, int64_t *ret_rev,
                   bool *ret_deleted)
{
        sqlite3_stmt *st = stmt(s, SQL_NB_FIND);
        int r;

        bind_text(st, 1, user_id);
        bind_text(st, 2, notebook_id);
        r = step(s, st);
        if (r > 0) {
                *ret_nb = sqlite3_column_int64(st, 0);
                if (ret_rev)
                        *ret_rev = sqlite3_column_int64(st, 1);
                if (ret_deleted)
                        *ret_deleted = sqlite3_column_int(st, 2);
                r = 0;
        } else if (r == 0)
                r = -ENOENT;
        sqlite3_reset(st);
        return r;
}

/* ---- history --------------------------------------------------------------------------------
 * Each change of a notebook records what it changed as the values before it (sql/0008_history.sql):
 * hist_begin() when the change starts, hist_cell()/hist_cell_fields()/hist_fields()/hist_order() or
 * hist_replace() before each write, hist_end() with the new revision. Undoing the records from the
 * newest down rebuilds an earlier revision (store_notebook_revision()). */

/* Puts item (detached, with its key) into obj, replacing the member of that key if any. */
static void json_set_member(cJSON *obj, cJSON *item)
{
        _cleanup_free_ char *key = item->string;

        item->string = NULL; /* cJSON frees the replacement's key before copying the one given */
        if (cJSON_HasObjectItem(obj, key))
                cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
        else
                cJSON_AddItemToObject(obj, key, item);
}

#define HIST_PRUNE_EVERY 16

/* Records superseded before this (realtime usec) are past the age bound (0: none is). */
static sqlite3_int64 hist_cutoff(const Store *s, uint64_t now)
{
        return s->history_max_age_usec && now > s->history_max_age_usec
                       ? (sqlite3_int64)(now - s->history_max_age_usec)
                       : 0;
}

/* Applies the bounds to notebook nb's records, newest being its newest. */
static int hist_prune(Store *s, int64_t nb, int64_t newest, uint64_t now)
{
        sqlite3_stmt *st = stmt(s, SQL_HIST_PRUNE);

        sqlite3_bind_int64(st, 1, nb);
        sqlite3_bind_int64(st, 2, s->history_revisions);
        sqlite3_bind_int64(st, 3, hist_cutoff(s, now));
        sqlite3_bind_int64(st, 4, newest);
        return run(s, st);
}

static void hist_clear(Store *s)
{
        cJSON_Delete(s->hist.fields);
        cJSON_Delete(s->hist.order);
        cJSON_Delete(s->hist.cells);
        s->hist.fields = s->hist.order = s->hist.cells = NULL;
        s->hist.nb = 0;
}

static void hist_begin(Store *s, int64_t nb, int64_t revision)
{
        hist_clear(s);
        if (s->history_revisions > 0) {
                s->hist.nb = nb;
                s->hist.revision = revision;
        }
}

static bool hist_on(const Store *s, int64_t nb)
{
        return s->hist.nb != 0 && s->hist.nb == nb;
}

/* old: the attributes of cell_id the change alters, with their values before (NULL: the change
 * creates the cell). The first record of a cell in a change is the one kept. */
static int hist_cell(Store *s, int64_t nb, const char *cell_id, const cJSON *old)
{
        cJSON *v;

        if (!hist_on(s, nb))
                return 0;
        if (!s->hist.cells && !(s->hist.cells = cJSON_CreateObject()))
                return -ENOMEM;
        if (cJSON_GetObjectItemCaseSensitive(s->hist.cells, cell_id))
                return 0;
        v = old ? cJSON_Duplicate(old, true) : cJSON_CreateNull();
        if (!v || !cJSON_AddItemToObject(s->hist.cells, cell_id, v)) {
                cJSON_Delete(v);
                return -ENOMEM;
        }
        return 0;
}

/* Whether a and b (either may be NULL) are the same JSON, exactly: cJSON_Compare() takes numbers a
 * rounding step apart for equal. Members of objects are compared in order. */
static bool json_same(const cJSON *a, const cJSON *b)
{
        const cJSON *x, *y;

        if (!a || !b)
                return a == b;
        if ((a->type & 0xff) != (b->type & 0xff))
                return false;
        if (cJSON_IsNumber(a))
                return a->valuedouble == b->valuedouble;
        if (cJSON_IsString(a))
                return streq(a->valuestring, b->valuestring);
        if (!cJSON_IsArray(a) && !cJSON_IsObject(a))
                return true; /* null, true, false */
        for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
                if ((cJSON_IsObject(a) && !streq(x->string, y->string)) || !json_same(x, y))
                        return false;
        return !x && !y;
}

/* The members of old that next gives another value (keys: those of next, or of old when next is
 * NULL), copied into *ret (NULL when none differ). */
static int json_changed(const cJSON *old, const cJSON *next, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *out = NULL;
        const cJSON *keys = next ? next : old, *i;

        *ret = NULL;
        cJSON_ArrayForEach(i, keys)
        {
                const cJSON *was = cJSON_GetObjectItemCaseSensitive(old, i->string);
                cJSON *copy;

                if (!was || streq(i->string, "id") || (next && json_same(was, i)))
                        continue;
                if (!out && !(out = cJSON_CreateObject()))
                        return -ENOMEM;
                copy = cJSON_Duplicate(was, true);
                if (!copy || !cJSON_AddItemToObject(out, i->string, copy)) {
                        cJSON_Delete(copy);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static int cell_get(Store *s, int64_t nb, const char *cell_id, cJSON **ret, int64_t *ret_pos);

/* Before cell_id's attributes in fields are set. */
static int hist_cell_fields(Store *s, int64_t nb, const char *cell_id, const cJSON *fields)
{
        _cleanup_(cJSON_Deletep) cJSON *cell = NULL, *old = NULL;
        int64_t pos;
        int r;

        if (!hist_on(s, nb))
                return 0;
        r = cell_get(s, nb, cell_id, &cell, &pos);
        if (r < 0)
                return r == -ENXIO ? 0 : r;
        if ((r = json_changed(cell, fields, &old)) < 0)
                return r;
        return old ? hist_cell(s, nb, cell_id, old) : 0;
}

/* Before the notebook fields in fields are set. */
static int hist_fields(Store *s, int64_t nb, const cJSON *fields)
{
        _cleanup_(cJSON_Deletep) cJSON *now = NULL, *old = NULL;
        cJSON *i;
        int r;

        if (!hist_on(s, nb) || !fields)
                return 0;
        if ((r = summary_get(s, nb, &now)) < 0 || (r = json_changed(now, fields, &old)) < 0)
                return r;
        if (!old)
                return 0;
        if (!s->hist.fields) {
                s->hist.fields = TAKE_PTR(old);
                return 0;
        }
        /* A field changed twice in one change keeps its first old value. */
        while ((i = old->child)) {
                cJSON_DetachItemViaPointer(old, i);
                if (cJSON_HasObjectItem(s->hist.fields, i->string))
                        cJSON_Delete(i);
                else
                        json_set_member(s->hist.fields, i);
        }
        return 0;
}

static cJSON *first_column(sqlite3_stmt *st);

/* Before the order or the set of cells changes. */
static int hist_order(Store *s, int64_t nb)
{
        sqlite3_stmt *st;

        if (!hist_on(s, nb) || s->hist.order)
                return 0;
        st = stmt(s, SQL_CELL_IDS);
        sqlite3_bind_int64(st, 1, nb);
        return rows_to_array(s, st, first_column, &s->hist.order);
}

static const cJSON *cell_by_id(const cJSON *cells, const char *id)
{
        const cJSON *c;

        cJSON_ArrayForEach(c, cells)
        {
                const cJSON *cid = cJSON_GetObjectItemCaseSensitive(c, "id");

                if (cJSON_IsString(cid) && streq(cid->valuestring, id))
                        return c;
        }
        return NULL;
}

/* Before the notebook's fields (may be NULL) and all its cells are replaced by these. */
static int hist_replace(Store *s, int64_t nb, const cJSON *fields, const cJSON *cells)
{
        _cleanup_(cJSON_Deletep) cJSON *now = NULL;
        const cJSON *c, *n;
        bool same_order;
        int r;

        if (!hist_on(s, nb))
                return 0;
        if ((r = hist_fields(s, nb, fields)) < 0 || (r = cells_get(s, nb, &now)) < 0)
                return r;
        same_order = cJSON_GetArraySize(now) == cJSON_GetArraySize(cells);
        for (c = now ? now->child : NULL, n = cells ? cells->child : NULL; c; c = c->next) {
                const char *id = cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring;
                const cJSON *next = cell_by_id(cells, id);
                _cleanup_(cJSON_Deletep) cJSON *old = NULL;

                if (same_order && (!n || !streq(cJSON_GetObjectItemCaseSensitive(n, "id")->valuestring, id)))
                        same_order = false;
                n = n ? n->next : NULL;
                /* A cell that goes keeps everything; one that stays, what changes. */
                if ((r = json_changed(c, next, &old)) < 0 || (old && (r = hist_cell(s, nb, id, old)) < 0))
                        return r;
        }
        cJSON_ArrayForEach(n, cells)
        {
                const char *id = cJSON_GetObjectItemCaseSensitive(n, "id")->valuestring;

                if (!cell_by_id(now, id) && (r = hist_cell(s, nb, id, NULL)) < 0)
                        return r;
        }
        if (!same_order && !s->hist.order) {
                _cleanup_(cJSON_Deletep) cJSON *ids = cJSON_CreateArray();

                cJSON_ArrayForEach(c, now)
                {
                        if (!ids ||
                            !cJSON_AddItemToArray(
                                    ids, cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "id"), false)))
                                return -ENOMEM;
                }
                s->hist.order = TAKE_PTR(ids);
        }
        return 0;
}

/* The change is made: its record, at revision s->hist.revision coming from prev_revision, made at
 * (the revision's updated_at), and the bounds applied. */
static int hist_end(Store *s, int64_t nb, int64_t prev_revision, const char *origin, uint64_t at)
{
        _cleanup_(freep) char *fields = NULL, *order = NULL, *cells = NULL;
        uint64_t now = now_realtime_usec();
        sqlite3_stmt *st;
        int r;

        if (!hist_on(s, nb))
                return 0;
        /* model_json_print(): numbers digit for digit, as everywhere the store writes JSON. */
        if ((s->hist.fields && !(fields = model_json_print(s->hist.fields, false))) ||
            (s->hist.order && !(order = model_json_print(s->hist.order, false))) ||
            (s->hist.cells && !(cells = model_json_print(s->hist.cells, false))))
                return -ENOMEM;
        st = stmt(s, SQL_HIST_ADD);
        sqlite3_bind_int64(st, 1, nb);
        sqlite3_bind_int64(st, 2, s->hist.revision);
        sqlite3_bind_int64(st, 3, prev_revision);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)at);
        bind_text(st, 5, origin);
        bind_text(st, 6, fields);
        bind_text(st, 7, order);
        bind_text(st, 8, cells);
        if ((r = run(s, st)) < 0)
                return r;
        /* Pruning reads the notebook's records: done when the revision passes a multiple of
         * HIST_PRUNE_EVERY (a pull may jump over one), it costs an edit little. Readers apply the
         * bound by count themselves (they read at most that many). */
        if (prev_revision / HIST_PRUNE_EVERY == s->hist.revision / HIST_PRUNE_EVERY) {
                hist_clear(s);
                return 0;
        }
        r = hist_prune(s, nb, s->hist.revision, now);
        hist_clear(s);
        return r;
}

/* A notebook's history goes with its content (a delete, a removal). */
static int hist_drop(Store *s, int64_t nb)
{
        sqlite3_stmt *st = stmt(s, SQL_HIST_DROP);

        hist_clear(s);
        sqlite3_bind_int64(st, 1, nb);
        return run(s, st);
}

/* The fields of a notebook that history records, in a new object (NULL: no memory). */
static cJSON *notebook_fields(const cJSON *notebook)
{
        static const char *const keys[] = { "name", "db_conn_string", "ttl", "demo_version" };
        _cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();

        for (size_t i = 0; out && i < ELEMENTSOF(keys); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(notebook, keys[i]);
                cJSON *copy = v ? cJSON_Duplicate(v, true) : cJSON_CreateNull();

                if (!copy || !cJSON_AddItemToObject(out, keys[i], copy)) {
                        cJSON_Delete(copy);
                        return NULL;
                }
        }
        return TAKE_PTR(out);
}

/* The live notebook a mutation applies to, with its expected revision checked. */
static int nb_for_mutation(Store *s, const char *user_id, const char *notebook_id, StoreMut *m,
                           int64_t *ret_nb)
{
        int64_t rev;
        bool deleted;
        int r;

        r = nb_find(s, user_id, notebook_id, ret_nb, &rev, &deleted);
        if (r < 0)
                return r;
        if (deleted)
                return -ENOENT;
        m->revision = rev;
        if (m->expected_revision >= 0 && m->expected_revision != rev)
                return -ESTALE;
        hist_begin(s, *ret_nb, rev + 1);
        return 0;
}

/* Every successful mutation ends here: one more revision, a new updated_at, a pending sync.
 * m->revision is the revision nb_for_mutation() read, which nothing else in this transaction
 * changes: the new one is the next. */
static int nb_bump(Store *s, int64_t nb, StoreMut *m)
{
        sqlite3_stmt *st = stmt(s, SQL_NB_BUMP_PENDING);
        uint64_t now = now_realtime_usec();
        int r;

        format_timestamp(m->updated_at, now);
        sqlite3_bind_int64(st, 1, nb);
        bind_text(st, 2, m->updated_at);
        r = run(s, st);
        if (r >= 0 && sqlite3_changes(s->db) == 0) {
                st = stmt(s, SQL_NB_BUMP);
                sqlite3_bind_int64(st, 1, nb);
                bind_text(st, 2, m->updated_at);
                sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
                r = run(s, st);
        }
        if (r < 0)
                return r;
        m->revision++;
        return hist_end(s, nb, m->revision - 1, m->origin ? m->origin : "edit", now);
}

int store_notebook_exists(Store *s, const char *user_id, const char *notebook_id)
{
        int64_t nb;
        bool deleted;
        int r;

        r = nb_find(s, user_id, notebook_id, &nb, NULL, &deleted);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        return !deleted;
}

int store_notebook_head(Store *s, const char *user_id, const char *notebook_id, int64_t *ret_revision,
                        bool *ret_deleted)
{
        int64_t nb;

        return nb_find(s, user_id, notebook_id, &nb, ret_revision, ret_deleted);
}

cJSON *store_change_record(Store *s, const char *user_id, const char *notebook_id)
{
        _cleanup_(cJSON_Deletep) cJSON *a = cJSON_CreateArray();
        int64_t revision = 0;
        bool deleted = false;
        int r;

        r = store_notebook_head(s, user_id, notebook_id, &revision, &deleted);
        if (r < 0 && r != -ENOENT)
                return NULL;
        if (!a || !cJSON_AddItemToArray(a, cJSON_CreateString(user_id)) ||
            !cJSON_AddItemToArray(a, cJSON_CreateString(notebook_id)) ||
            !cJSON_AddItemToArray(a, r == 0 ? cJSON_CreateNumber((double)revision) : cJSON_CreateNull()) ||
            !cJSON_AddItemToArray(a, cJSON_CreateBool(r == -ENOENT || deleted)))
                return NULL;
        return TAKE_PTR(a);
}

int store_notebook_list(Store *s, const char *user_id, const StoreListKey *after, unsigned limit,
                        cJSON **ret, bool *ret_more)
{
        sqlite3_stmt *st = stmt(s, after ? SQL_NB_LIST_AFTER : SQL_NB_LIST);
        cJSON *list;
        int r;

        assert(limit > 0);
        bind_text(st, 1, user_id);
        /* One row more than asked tells whether another page follows. */
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit + 1);
        if (after) {
                bind_text(st, 3, after->created_at);
                bind_text(st, 4, after->id);
        }
        r = rows_to_array(s, st, summary_from_row, &list);
        if (r < 0)
                return r;
        *ret_more = cJSON_GetArraySize(list) > (int)limit;
        if (*ret_more)
                cJSON_DeleteItemFromArray(list, (int)limit);
        *ret = list;
        return 0;
}

int store_notebook_get(Store *s, const char *user_id, const char *notebook_id, cJSON **ret)
{
        int64_t nb;
        bool deleted;
        int r;

        r = nb_find(s, user_id, notebook_id, &nb, NULL, &deleted);
        if (r < 0)
                return r;
        if (deleted)
                return -ENOENT;
        return notebook_full(s, nb, ret);
}

/* ---- cells --------------------------------------------------------------------------------- */

static int cell_count(Store *s, int64_t nb, int64_t *ret)
{
        sqlite3_stmt *st = stmt(s, SQL_CELL_COUNT);

        sqlite3_bind_int64(st, 1, nb);
        return query_int(s, st, ret, NULL);
}

static int pos_query(Store *s, SqlId id, int64_t nb, const char *exclude, const int64_t *arg, int64_t *ret,
                     bool *ret_null)
{
        sqlite3_stmt *st = stmt(s, id);

        sqlite3_bind_int64(st, 1, nb);
        bind_text(st, 2, exclude);
        if (arg)
                sqlite3_bind_int64(st, 3, *arg);
        return query_int(s, st, ret, ret_null);
}

/* The neighbours' positions around the place asked for, leaving out the cell being moved. */
static int place_neighbours(Store *s, int64_t nb, const char *exclude, const CellPlace *p, bool *has_prev,
                            int64_t *prev, bool *has_next, int64_t *next)
{
        bool is_null;
        int r;

        *has_prev = *has_next = false;
        switch (p->kind) {
        case PLACE_END:
                r = pos_query(s, SQL_POS_MAX, nb, exclude, NULL, prev, &is_null);
                *has_prev = r >= 0 && !is_null;
                return r;
        case PLACE_FRONT:
                r = pos_query(s, SQL_POS_MIN, nb, exclude, NULL, next, &is_null);
                *has_next = r >= 0 && !is_null;
                return r;
        case PLACE_AFTER: {
                sqlite3_stmt *st;

                if (streq_ptr(p->after, exclude))
                        return -ERANGE;
                st = stmt(s, SQL_CELL_POS);
                sqlite3_bind_int64(st, 1, nb);
                bind_text(st, 2, p->after);
                r = query_int(s, st, prev, NULL);
                if (r == -ENODATA)
                        return -ENXIO;
                if (r < 0)
                        return r;
                *has_prev = true;
                r = pos_query(s, SQL_POS_NEXT, nb, exclude, prev, next, &is_null);
                *has_next = r >= 0 && !is_null;
                return r;
        }
        case PLACE_INDEX: {
                int64_t count, offset = p->index > 0 ? p->index - 1 : 0;
                sqlite3_stmt *st;

                r = cell_count(s, nb, &count);
                if (r < 0)
                        return r;
                if (exclude)
                        count--;
                if (p->index < 0 || p->index > count)
                        return -ERANGE;
                st = stmt(s, SQL_POS_NTH);
                sqlite3_bind_int64(st, 1, nb);
                bind_text(st, 2, exclude);
                sqlite3_bind_int64(st, 3, offset);
                /* From index-1: the row before the place, then the one after it. */
                r = step(s, st);
                if (r > 0 && p->index > 0) {
                        *has_prev = true;
                        *prev = sqlite3_column_int64(st, 0);
                        r = step(s, st);
                }
                if (r > 0) {
                        *has_next = true;
                        *next = sqlite3_column_int64(st, 0);
                }
                sqlite3_reset(st);
                return r < 0 ? r : 0;
        }
        }
        return -EINVAL;
}

/* Picks a free position for a cell at place p; renumbers the notebook when there is no gap. */
static int place_pick(Store *s, int64_t nb, const char *exclude, const CellPlace *p, int64_t *ret)
{
        for (int attempt = 0; attempt < 2; attempt++) {
                bool has_prev, has_next;
                int64_t prev = 0, next = 0;
                int r;

                r = place_neighbours(s, nb, exclude, p, &has_prev, &prev, &has_next, &next);
                if (r < 0)
                        return r;
                if (!has_prev && !has_next)
                        *ret = POS_STEP;
                else if (!has_next)
                        *ret = prev + POS_STEP;
                else if (!has_prev)
                        *ret = next - POS_STEP;
                else if (next - prev >= 2)
                        *ret = prev + (next - prev) / 2;
                else {
                        sqlite3_stmt *st = stmt(s, SQL_RENUMBER);

                        sqlite3_bind_int64(st, 1, nb);
                        r = run(s, st);
                        if (r < 0)
                                return r;
                        continue;
                }
                return 0;
        }
        return -EIO; /* a renumbered notebook always has gaps */
}

static int cell_index(Store *s, int64_t nb, int64_t pos, int64_t *ret)
{
        sqlite3_stmt *st = stmt(s, SQL_POS_INDEX);

        sqlite3_bind_int64(st, 1, nb);
        sqlite3_bind_int64(st, 2, pos);
        return query_int(s, st, ret, NULL);
}

static int cell_insert(Store *s, int64_t nb, const cJSON *cell, int64_t pos)
{
        sqlite3_stmt *st = stmt(s, SQL_CELL_INSERT);
        int r;

        sqlite3_bind_int64(st, 1, nb);
        bind_member_text(st, 2, cell, "id");
        sqlite3_bind_int64(st, 3, pos);
        bind_member_text(st, 4, cell, "type");
        bind_member_text(st, 5, cell, "code");
        bind_member_text(st, 6, cell, "status");
        bind_member_text(st, 7, cell, "stdout");
        if ((r = bind_json(st, 8, cJSON_GetObjectItemCaseSensitive(cell, "outputs"))) < 0 ||
            (r = bind_json(st, 10, cJSON_GetObjectItemCaseSensitive(cell, "reads"))) < 0 ||
            (r = bind_json(st, 11, cJSON_GetObjectItemCaseSensitive(cell, "writes"))) < 0)
                return r;
        bind_member_text(st, 9, cell, "error");
        return run(s, st);
}

/* Inserts cells in order after whatever the notebook has. */
static int cells_insert_all(Store *s, int64_t nb, const cJSON *cells)
{
        const cJSON *c;
        int64_t pos = 0;

        cJSON_ArrayForEach(c, cells)
        {
                int r;

                pos += POS_STEP;
                r = cell_insert(s, nb, c, pos);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- notebooks ----------------------------------------------------------------------------- */

static int nb_set_fields(Store *s, int64_t nb, const cJSON *fields)
{
        static const char *const keys[] = { "name", "db_conn_string", "ttl", "demo_version" };
        sqlite3_stmt *st = stmt(s, SQL_NB_SET_FIELDS);

        sqlite3_bind_int64(st, 1, nb);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(fields, keys[i]);
                int idx = 2 + 2 * (int)i;

                sqlite3_bind_int(st, idx, v != NULL);
                if (cJSON_IsString(v))
                        bind_text(st, idx + 1, v->valuestring);
                else if (cJSON_IsNumber(v))
                        sqlite3_bind_int64(st, idx + 1, (sqlite3_int64)v->valuedouble);
                else
                        sqlite3_bind_null(st, idx + 1);
        }
        return run(s, st);
}

/* Creates a notebook row, or brings a tombstone back to life with its revision numbering kept. */
static int nb_insert(Store *s, const char *user_id, const char *notebook_id, const cJSON *fields,
                     int64_t *ret_nb, uint64_t *ret_now)
{
        uint64_t now = *ret_now = now_realtime_usec();
        char ts[TIMESTAMP_MAX];
        sqlite3_stmt *st;
        int64_t nb, rev;
        bool deleted;
        int r;

        format_timestamp(ts, now);
        r = nb_find(s, user_id, notebook_id, &nb, NULL, &deleted);
        if (r == 0 && !deleted)
                return -EEXIST;
        if (r == 0) {
                st = stmt(s, SQL_NB_REVIVE);
                sqlite3_bind_int64(st, 1, nb);
                bind_member_text(st, 2, fields, "name");
                bind_member_text(st, 3, fields, "db_conn_string");
                bind_text(st, 4, ts);
                bind_member_int(st, 5, fields, "ttl");
                bind_member_int(st, 6, fields, "demo_version");
                sqlite3_bind_int64(st, 7, (sqlite3_int64)now);
                r = query_int(s, st, &rev, NULL);
                if (r < 0)
                        return r;
                *ret_nb = nb;
                return 0;
        }
        if (r != -ENOENT)
                return r;

        st = stmt(s, SQL_NB_INSERT);
        bind_text(st, 1, user_id);
        bind_text(st, 2, notebook_id);
        bind_member_text(st, 3, fields, "name");
        bind_member_text(st, 4, fields, "db_conn_string");
        bind_text(st, 5, ts);
        bind_member_int(st, 6, fields, "ttl");
        bind_member_int(st, 7, fields, "demo_version");
        sqlite3_bind_int64(st, 8, (sqlite3_int64)now);
        r = run(s, st);
        if (r < 0)
                return r;
        *ret_nb = sqlite3_last_insert_rowid(s->db);
        return 0;
}

int store_notebook_create(Store *s, const char *user_id, const char *notebook_id, const cJSON *fields,
                          const cJSON *cells, cJSON **ret)
{
        int64_t nb = 0, revision;
        uint64_t now;
        int r;

        if (cells && cJSON_GetArraySize(cells) > MAX_CELLS)
                return -E2BIG;
        r = nb_insert(s, user_id, notebook_id, fields, &nb, &now);
        if (r < 0)
                return r;
        if (cells) {
                r = cells_insert_all(s, nb, cells);
                if (r < 0)
                        return r;
        }
        if (s->history_revisions > 0) {
                if ((r = nb_find(s, user_id, notebook_id, &nb, &revision, NULL)) < 0)
                        return r;
                hist_begin(s, nb, revision);
                if ((r = hist_end(s, nb, 0, "create", now)) < 0)
                        return r;
        }
        return ret ? notebook_full(s, nb, ret) : 0;
}

/* Drops the cell conflicts of notebook nb whose copy cell is no longer there. */
static int conflicts_stale(Store *s, int64_t nb)
{
        sqlite3_stmt *st = stmt(s, SQL_CONFLICTS_STALE);

        sqlite3_bind_int64(st, 1, nb);
        return run(s, st);
}

/* Replaces the notebook's cells (and the fields given) with what a history record can undo. */
static int nb_replace(Store *s, int64_t nb, const cJSON *fields, const cJSON *cells)
{
        sqlite3_stmt *st;
        int r;

        if (cJSON_GetArraySize(cells) > MAX_CELLS)
                return -E2BIG;
        if ((r = hist_replace(s, nb, fields, cells)) < 0)
                return r;
        st = stmt(s, SQL_CELLS_DELETE_ALL);
        sqlite3_bind_int64(st, 1, nb);
        if ((r = run(s, st)) < 0 || (r = cells_insert_all(s, nb, cells)) < 0)
                return r;
        if ((r = conflicts_stale(s, nb)) < 0)
                return r;
        return fields ? nb_set_fields(s, nb, fields) : 0;
}

int store_notebook_update(Store *s, const char *user_id, const char *notebook_id, StoreMut *m,
                          const cJSON *fields, const cJSON *cells, cJSON **ret)
{
        int64_t nb;
        int r;

        r = nb_for_mutation(s, user_id, notebook_id, m, &nb);
        if (r < 0)
                return r;
        if (cells)
                r = nb_replace(s, nb, fields, cells);
        else if ((r = hist_fields(s, nb, fields)) >= 0)
                r = nb_set_fields(s, nb, fields);
        if (r < 0)
                return r;
        r = nb_bump(s, nb, m);
        if (r < 0)
                return r;
        return ret ? summary_get(s, nb, ret) : 0;
}

int store_notebook_delete(Store *s, const char *user_id, const char *notebook_id, StoreMut *m)
{
        sqlite3_stmt *st;
        int64_t nb;
        int r;

        r = nb_for_mutation(s, user_id, notebook_id, m, &nb);
        if (r < 0)
                return r;
        /* What a deleted notebook was goes with it: a tombstone has nothing to restore. */
        if ((r = hist_drop(s, nb)) < 0)
                return r;
        st = stmt(s, SQL_CELLS_DELETE_ALL);
        sqlite3_bind_int64(st, 1, nb);
        r = run(s, st);
        if (r < 0)
                return r;
        st = stmt(s, SQL_NB_TOMBSTONE);
        sqlite3_bind_int64(st, 1, nb);
        r = run(s, st);
        if (r < 0)
                return r;
        /* Nothing is left to resolve in a notebook that is gone. */
        r = run(s, stmt_key(s, SQL_SYNC_CONFLICT_DROP, user_id, notebook_id));
        if (r < 0)
                return r;
        return nb_bump(s, nb, m);
}

static int provisioned_notebook(Store *s, const char *user_id, const char *prefix, const char *name,
                                int demo_version, int (*make_cells)(cJSON **))
{
        _cleanup_(cJSON_Deletep) cJSON *cells = NULL, *fields = NULL;
        char id[MAX_ID_BYTES + 1];
        int r;

        snprintf(id, sizeof(id), "%s-%s", prefix, user_id);
        r = store_notebook_exists(s, user_id, id);
        if (r != 0)
                return r < 0 ? r : 0; /* one the user made under this id earlier is kept */
        r = make_cells(&cells);
        if (r < 0)
                return r;
        fields = cJSON_CreateObject();
        if (!fields || !cJSON_AddStringToObject(fields, "name", name) ||
            (demo_version > 0 && !cJSON_AddNumberToObject(fields, "demo_version", demo_version)))
                return -ENOMEM;
        return store_notebook_create(s, user_id, id, fields, cells, NULL);
}

int store_provision(Store *s, const char *user_id, bool *ret_provisioned)
{
        char ts[TIMESTAMP_MAX];
        sqlite3_stmt *st = stmt(s, SQL_USER_INSERT);
        int r;

        *ret_provisioned = false;
        bind_text(st, 1, user_id);
        bind_text(st, 2, format_timestamp(ts, now_realtime_usec()));
        r = run(s, st);
        if (r < 0)
                return r;
        /* The users row and both notebooks commit together, so provisioning happens exactly once. */
        if (sqlite3_changes(s->db) == 0)
                return 0;
        r = provisioned_notebook(s, user_id, "blank", BLANK_NAME, 0, blank_cells_new);
        if (r < 0)
                return r;
        r = provisioned_notebook(s, user_id, "demo", DEMO_NAME, DEMO_VERSION, demo_cells_new);
        if (r < 0)
                return r;
        *ret_provisioned = true;
        return 0;
}

int store_demo_reset(Store *s, const char *user_id, StoreMut *m, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *cells = NULL, *fields = NULL;
        char id[MAX_ID_BYTES + 1];
        int64_t nb;
        int r;

        snprintf(id, sizeof(id), "demo-%s", user_id);
        r = demo_cells_new(&cells);
        if (r < 0)
                return r;
        fields = cJSON_CreateObject();
        if (!fields || !cJSON_AddStringToObject(fields, "name", DEMO_NAME) ||
            !cJSON_AddNumberToObject(fields, "demo_version", DEMO_VERSION))
                return -ENOMEM;

        r = nb_for_mutation(s, user_id, id, m, &nb);
        if (r == -ENOENT) {
                /* Gone or never made: create it (a tombstone keeps counting revisions). */
                if (m->expected_revision >= 0) {
                        m->revision = 0;
                        return -ESTALE;
                }
                r = store_notebook_create(s, user_id, id, fields, cells, ret);
                if (r < 0)
                        return r;
                r = nb_find(s, user_id, id, &nb, &m->revision, NULL);
                if (r < 0)
                        return r;
                return 0;
        }
        if (r < 0)
                return r;
        if ((r = nb_replace(s, nb, fields, cells)) < 0 || (r = nb_bump(s, nb, m)) < 0)
                return r;
        return ret ? notebook_full(s, nb, ret) : 0;
}

static int cell_get(Store *s, int64_t nb, const char *cell_id, cJSON **ret, int64_t *ret_pos)
{
        sqlite3_stmt *st = stmt(s, SQL_CELL_GET);
        int r;

        sqlite3_bind_int64(st, 1, nb);
        bind_text(st, 2, cell_id);
        r = step(s, st);
        if (r > 0) {
                *ret_pos = sqlite3_column_int64(st, 9);
                r = 0;
                if (ret) {
                        *ret = cell_from_row(st);
                        r = *ret ? 0 : -ENOMEM;
                }
        } else if (r == 0)
                r = -ENXIO;
        sqlite3_reset(st);
        return r;
}

int store_cell_create(Store *s, const char *user_id, const char *notebook_id, StoreMut *m, const cJSON *cell,
                      const CellPlace *place, cJSON **ret_cell, int64_t *ret_index)
{
        int64_t nb, count, pos;
        int r;

        r = nb_for_mutation(s, user_id, notebook_id, m, &nb);
        if (r < 0)
                return r;
        r = cell_count(s, nb, &count);
        if (r < 0)
                return r;
        if (count >= MAX_CELLS)
                return -E2BIG;
        r = place_pick(s, nb, NULL, place, &pos);
        if (r < 0)
                return r;
        r = cell_insert(s, nb, cell, pos);
        if (r < 0)
                return r; /* -EEXIST: the notebook already has a cell with this id */
        r = hist_cell(s, nb, cJSON_GetObjectItemCaseSensitive(cell, "id")->valuestring, NULL);
        if (r < 0)
                return r;
        r = cell_index(s, nb, pos, ret_index);
        if (r < 0)
                return r;
        r = nb_bump(s, nb, m);
        if (r < 0)
                return r;
        return ret_cell ? cell_get(s, nb, cJSON_GetObjectItemCaseSensitive(cell, "id")->valuestring,
                                   ret_cell, &pos)
                        : 0;
}

int store_cell_update(Store *s, const char *user_id, const char *notebook_id, const char *cell_id,
                      StoreMut *m, const cJSON *fields, cJSON **ret_cell, int64_t *ret_index)
{
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(fields, "error");
        sqlite3_stmt *st;
        int64_t nb, pos = 0;
        int r;

        r = nb_for_mutation(s, user_id, notebook_id, m, &nb);
        if (r < 0)
                return r;
        r = hist_cell_fields(s, nb, cell_id, fields);
        if (r < 0)
                return r;
        st = stmt(s, SQL_CELL_UPDATE);
        sqlite3_bind_int64(st, 1, nb);
        bind_text(st, 2, cell_id);
        bind_member_text(st, 3, fields, "type");
        bind_member_text(st, 4, fields, "code");
        bind_member_text(st, 5, fields, "status");
        bind_member_text(st, 6, fields, "stdout");
        sqlite3_bind_int(st, 8, error != NULL);
        bind_text(st, 9, cJSON_IsString(error) ? error->valuestring : NULL);
        if ((r = bind_json(st, 7, cJSON_GetObjectItemCaseSensitive(fields, "outputs"))) < 0 ||
            (r = bind_json(st, 10, cJSON_GetObjectItemCaseSensitive(fields, "reads"))) < 0 ||
            (r = bind_json(st, 11, cJSON_GetObjectItemCaseSensitive(fields, "writes"))) < 0)
                return r;
        r = run(s, st);
        if (r >= 0 && sqlite3_changes(s->db) == 0)
                r = -ENXIO; /* no such cell */
        if (r >= 0)
                r = nb_bump(s, nb, m);
        if (r >= 0)
                r = cell_get(s, nb, cell_id, ret_cell, &pos);
        if (r >= 0 && ret_index)
                r = cell_index(s, nb, pos, ret_index);
        return r;
}

int store_cell_delete(Store *s, const char *user_id, const char *notebook_id, const char *cell_id,
                      StoreMut *m)
{
        sqlite3_stmt *st;
        int64_t nb;
        int r;

        r = nb_for_mutation(s, user_id, notebook_id, m, &nb);
        if (r < 0)
                return r;
        if (hist_on(s, nb)) {
                _cleanup_(cJSON_Deletep) cJSON *cell = NULL, *old = NULL;
                int64_t pos;

                r = cell_get(s, nb, cell_id, &cell, &pos);
                if (r < 0)
                        return r;
                if ((r = hist_order(s, nb)) < 0 || (r = json_changed(cell, NULL, &old)) < 0 ||
                    (r = hist_cell(s, nb, cell_id, old)) < 0)
                        return r;
        }
        st = stmt(s, SQL_CELL_DELETE);
        sqlite3_bind_int64(st, 1, nb);
        bind_text(st, 2, cell_id);
        r = run(s, st);
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) == 0)
                return -ENXIO;
        if ((r = conflicts_stale(s, nb)) < 0)
                return r;
        return nb_bump(s, nb, m);
}

int store_cell_move(Store *s, const char *user_id, const char *notebook_id, const char *cell_id, StoreMut *m,
                    const CellPlace *place, int64_t *ret_index)
{
        sqlite3_stmt *st;
        int64_t nb, pos;
        int r;

        r = nb_for_mutation(s, user_id, notebook_id, m, &nb);
        if (r < 0)
                return r;
        r = cell_get(s, nb, cell_id, NULL, &pos);
        if (r < 0)
                return r;
        r = hist_order(s, nb);
        if (r < 0)
                return r;
        r = place_pick(s, nb, cell_id, place, &pos);
        if (r < 0)
                return r;
        st = stmt(s, SQL_CELL_SET_POS);
        sqlite3_bind_int64(st, 1, nb);
        bind_text(st, 2, cell_id);
        sqlite3_bind_int64(st, 3, pos);
        r = run(s, st);
        if (r < 0)
                return r;
        r = cell_index(s, nb, pos, ret_index);
        if (r < 0)
                return r;
        return nb_bump(s, nb, m);
}

/* ---- history, read and restored ------------------------------------------------------------ */

void store_set_history(Store *s, unsigned revisions, uint64_t max_age_usec)
{
        s->history_revisions = revisions;
        s->history_max_age_usec = max_age_usec;
}

static cJSON *pair_ints_from_row(sqlite3_stmt *st)
{
        _cleanup_(cJSON_Deletep) cJSON *a = cJSON_CreateArray();

        if (!a || !cJSON_AddItemToArray(a, cJSON_CreateNumber((double)sqlite3_column_int64(st, 0))) ||
            !cJSON_AddItemToArray(a, cJSON_CreateNumber((double)sqlite3_column_int64(st, 1))))
                return NULL;
        return TAKE_PTR(a);
}

int store_history_expire(Store *s)
{
        _cleanup_(cJSON_Deletep) cJSON *newest = NULL;
        uint64_t now = now_realtime_usec();
        const cJSON *i;
        int r;

        if (s->history_revisions == 0)
                return exec(s, "DELETE FROM history");
        /* In one transaction, notebook by notebook (each prune's subqueries then computed once);
         * the list read first, as the prunes delete from the table it reads. */
        r = rows_to_array(s, stmt(s, SQL_HIST_NEWEST), pair_ints_from_row, &newest);
        if (r < 0 || (r = store_begin(s)) < 0)
                return r;
        cJSON_ArrayForEach(i, newest)
        {
                r = hist_prune(s, (int64_t)cJSON_GetArrayItem(i, 0)->valuedouble,
                               (int64_t)cJSON_GetArrayItem(i, 1)->valuedouble, now);
                if (r < 0) {
                        (void)store_rollback(s);
                        return r;
                }
        }
        return store_commit(s);
}

/* Undoes one history record on notebook (the version at its revision): its cells, fields, order. */
static int hist_undo(const char *cells_text, const char *fields_text, const char *order_text,
                     cJSON *notebook)
{
        cJSON *cells = cJSON_GetObjectItemCaseSensitive(notebook, "cells");

        if (cells_text) {
                _cleanup_(cJSON_Deletep) cJSON *changed = cJSON_Parse(cells_text);
                cJSON *old;

                if (!cJSON_IsObject(changed))
                        return -EBADMSG;
                while ((old = changed->child)) {
                        _cleanup_free_ char *id = old->string;
                        cJSON *cell = (cJSON *)cell_by_id(cells, id), *i;

                        old->string = NULL;
                        cJSON_DetachItemViaPointer(changed, old);
                        if (cJSON_IsNull(old)) { /* made by this revision */
                                if (cell)
                                        cJSON_Delete(cJSON_DetachItemViaPointer(cells, cell));
                                cJSON_Delete(old);
                                continue;
                        }
                        if (!cJSON_IsObject(old)) {
                                cJSON_Delete(old);
                                return -EBADMSG;
                        }
                        /* Deleted by this revision: back, placed by the order below. */
                        if (!cell && (!(cell = cJSON_CreateObject()) || !cJSON_AddItemToArray(cells, cell) ||
                                      !cJSON_AddStringToObject(cell, "id", id))) {
                                cJSON_Delete(old);
                                return -ENOMEM;
                        }
                        while ((i = old->child))
                                json_set_member(cell, cJSON_DetachItemViaPointer(old, i));
                        cJSON_Delete(old);
                }
        }
        if (fields_text) {
                _cleanup_(cJSON_Deletep) cJSON *fields = cJSON_Parse(fields_text);
                cJSON *i;

                if (!cJSON_IsObject(fields))
                        return -EBADMSG;
                while ((i = fields->child))
                        json_set_member(notebook, cJSON_DetachItemViaPointer(fields, i));
        }
        if (order_text) {
                _cleanup_(cJSON_Deletep) cJSON *order = cJSON_Parse(order_text),
                                               *sorted = cJSON_CreateArray();
                const cJSON *id;

                if (!cJSON_IsArray(order) || !sorted)
                        return order ? -EBADMSG : -ENOMEM;
                cJSON_ArrayForEach(id, order)
                {
                        cJSON *cell =
                                cJSON_IsString(id) ? (cJSON *)cell_by_id(cells, id->valuestring) : NULL;

                        if (!cell)
                                return -EBADMSG;
                        cJSON_AddItemToArray(sorted, cJSON_DetachItemViaPointer(cells, cell));
                }
                if (cJSON_GetArraySize(cells) != 0)
                        return -EBADMSG;
                cJSON_ReplaceItemInObjectCaseSensitive(notebook, "cells", TAKE_PTR(sorted));
        }
        return 0;
}

/* The notebook as it was at revision, rebuilt from the current one and the history records above
 * revision. -ENOENT: no such live notebook; -ERANGE: revision is not in its history. */
static int nb_revision(Store *s, int64_t nb, int64_t current, int64_t revision, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *n = NULL;
        char ts[TIMESTAMP_MAX];
        sqlite3_stmt *st;
        int64_t at = -1;
        int r;

        if (revision > current || revision < 1)
                return -ERANGE;
        if ((r = notebook_full(s, nb, &n)) < 0)
                return r;
        if (revision == current) {
                *ret = TAKE_PTR(n);
                return 0;
        }
        st = stmt(s, SQL_HIST_WALK);
        sqlite3_bind_int64(st, 1, nb);
        sqlite3_bind_int64(st, 2, revision);
        /* Revision's own record is among the newest history_revisions: at most one fewer above it. */
        for (int64_t undone = 0; current > revision && (r = step(s, st)) > 0; undone++) {
                if (sqlite3_column_int64(st, 0) != current || undone + 1 >= s->history_revisions)
                        break; /* a gap, or past the bound: the revisions below are not rebuilt */
                r = hist_undo((const char *)sqlite3_column_text(st, 6),
                              (const char *)sqlite3_column_text(st, 4),
                              (const char *)sqlite3_column_text(st, 5), n);
                if (r < 0)
                        break;
                current = sqlite3_column_int64(st, 1);
        }
        sqlite3_reset(st);
        if (r < 0)
                return r;
        if (current != revision)
                return -ERANGE;
        st = stmt(s, SQL_HIST_AT);
        sqlite3_bind_int64(st, 1, nb);
        sqlite3_bind_int64(st, 2, revision);
        r = step(s, st);
        if (r > 0)
                at = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (r < 0)
                return r;
        /* A revision is in the history while its own record is: it says when it was made. */
        if (at < 0)
                return -ERANGE;
        cJSON_ReplaceItemInObjectCaseSensitive(n, "updated_at",
                                               cJSON_CreateString(format_timestamp(ts, (uint64_t)at)));
        cJSON_ReplaceItemInObjectCaseSensitive(n, "revision", cJSON_CreateNumber((double)revision));
        *ret = TAKE_PTR(n);
        return 0;
}

int store_notebook_revision(Store *s, const char *user_id, const char *notebook_id, int64_t revision,
                            cJSON **ret)
{
        int64_t nb, current;
        bool deleted;
        int r;

        r = nb_find(s, user_id, notebook_id, &nb, &current, &deleted);
        if (r < 0)
                return r;
        if (deleted)
                return -ENOENT;
        return nb_revision(s, nb, current, revision, ret);
}

static cJSON *history_entry(int64_t revision, int64_t at, const char *origin, int64_t cells,
                            const char *fields, bool order)
{
        _cleanup_(cJSON_Deletep) cJSON *e = cJSON_CreateObject(), *changed = NULL;
        char ts[TIMESTAMP_MAX];

        if (!e || !cJSON_AddNumberToObject(e, "revision", (double)revision) ||
            !add(e, "at",
                 at >= 0 ? cJSON_CreateString(format_timestamp(ts, (uint64_t)at)) : cJSON_CreateNull()) ||
            !add(e, "origin", origin ? cJSON_CreateString(origin) : cJSON_CreateNull()) ||
            !add(e, "cells_changed", cells >= 0 ? cJSON_CreateNumber((double)cells) : cJSON_CreateNull()) ||
            !cJSON_AddBoolToObject(e, "order_changed", order))
                return NULL;
        changed = cJSON_CreateArray();
        if (!changed)
                return NULL;
        if (fields) {
                _cleanup_(cJSON_Deletep) cJSON *f = cJSON_Parse(fields);
                const cJSON *i;

                cJSON_ArrayForEach(i, f)
                {
                        if (!cJSON_AddItemToArray(changed, cJSON_CreateString(i->string)))
                                return NULL;
                }
        }
        if (!add(e, "fields_changed", TAKE_PTR(changed)))
                return NULL;
        return TAKE_PTR(e);
}

int store_notebook_history(Store *s, const char *user_id, const char *notebook_id, int64_t before,
                           unsigned limit, int64_t *ret_revision, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *list = cJSON_CreateArray(), *summary = NULL;
        int64_t nb, expect, k = 0;
        sqlite3_stmt *st;
        bool deleted;
        int r;

        if (!list)
                return -ENOMEM;
        r = nb_find(s, user_id, notebook_id, &nb, &expect, &deleted);
        if (r < 0)
                return r;
        if (deleted)
                return -ENOENT;
        *ret_revision = expect;
        st = stmt(s, SQL_HIST_LIST);
        sqlite3_bind_int64(st, 1, nb);
        /* The chain from the current revision down, at most history_revisions records. */
        for (;
             (unsigned)cJSON_GetArraySize(list) < limit && k < s->history_revisions && (r = step(s, st)) > 0;
             k++) {
                cJSON *e;

                if (sqlite3_column_int64(st, 0) != expect)
                        break;
                if (before > 0 && expect >= before) {
                        expect = sqlite3_column_int64(st, 1);
                        continue;
                }
                e = history_entry(expect, sqlite3_column_int64(st, 2),
                                  (const char *)sqlite3_column_text(st, 3), sqlite3_column_int64(st, 6),
                                  (const char *)sqlite3_column_text(st, 4), sqlite3_column_int(st, 5));
                if (!e || !cJSON_AddItemToArray(list, e)) {
                        cJSON_Delete(e);
                        r = -ENOMEM;
                        break;
                }
                expect = sqlite3_column_int64(st, 1);
        }
        sqlite3_reset(st);
        if (r < 0)
                return r;
        /* The current revision has no record when history was off as it was made: listed without
         * what made it. */
        if (k == 0 && (before == 0 || *ret_revision < before)) {
                cJSON *e;

                if ((r = summary_get(s, nb, &summary)) < 0)
                        return r;
                e = history_entry(*ret_revision, -1, NULL, -1, NULL, false);
                if (!e || !cJSON_AddItemToArray(list, e)) {
                        cJSON_Delete(e);
                        return -ENOMEM;
                }
                cJSON_ReplaceItemInObjectCaseSensitive(
                        e, "at",
                        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(summary, "updated_at"), true));
        }
        *ret = TAKE_PTR(list);
        return 0;
}

int store_notebook_restore(Store *s, const char *user_id, const char *notebook_id, StoreMut *m,
                           int64_t revision, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *old = NULL, *fields = NULL;
        int64_t nb;
        int r;

        r = nb_for_mutation(s, user_id, notebook_id, m, &nb);
        if (r < 0)
                return r;
        if ((r = nb_revision(s, nb, m->revision, revision, &old)) < 0)
                return r;
        if (!(fields = notebook_fields(old)))
                return -ENOMEM;
        if ((r = nb_replace(s, nb, fields, cJSON_GetObjectItemCaseSensitive(old, "cells"))) < 0)
                return r;
        m->origin = "restore";
        if ((r = nb_bump(s, nb, m)) < 0)
                return r;
        return ret ? notebook_full(s, nb, ret) : 0;
}

int store_stats(Store *s, StoreStats *ret)
{
        sqlite3_stmt *st = stmt(s, SQL_STATS);
        int r = step(s, st);

        if (r > 0) {
                ret->notebooks = sqlite3_column_int64(st, 0);
                ret->users = sqlite3_column_int64(st, 1);
                r = 0;
        } else if (r == 0)
                r = -EIO;
        sqlite3_reset(st);
        return r;
}

/* ---- sync ---------------------------------------------------------------------------------- */

void store_sync_info_done(StoreSyncInfo *i)
{
        free(i->base_sync_id);
        free(i->sync_state);
        free(i->sync_error);
        *i = (StoreSyncInfo){ 0 };
}

static char *column_strdup(sqlite3_stmt *st, int col)
{
        const char *t = (const char *)sqlite3_column_text(st, col);

        return t ? strdup(t) : NULL;
}

int store_sync_read(Store *s, const char *user_id, const char *notebook_id, cJSON **ret_notebook,
                    StoreSyncInfo *ret_info)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_READ, user_id, notebook_id);
        StoreSyncInfo info = { 0 };
        int64_t nb = 0;
        int r;

        r = step(s, st);
        if (r > 0) {
                nb = sqlite3_column_int64(st, 0);
                info.revision = sqlite3_column_int64(st, 1);
                info.base_revision = sqlite3_column_int64(st, 2);
                info.base_sync_id = column_strdup(st, 3);
                info.base_gen = (uint64_t)sqlite3_column_int64(st, 4);
                info.deleted = sqlite3_column_int(st, 5);
                info.dirty = sqlite3_column_int(st, 6);
                info.delete_done = sqlite3_column_int(st, 7);
                info.sync_state = column_strdup(st, 8);
                info.sync_error = column_strdup(st, 9);
                r = 0;
        } else if (r == 0)
                r = -ENOENT;
        sqlite3_reset(st);
        if (r < 0)
                return r;
        if (ret_notebook) {
                *ret_notebook = NULL;
                if (!info.deleted) {
                        r = notebook_full(s, nb, ret_notebook);
                        if (r < 0) {
                                store_sync_info_done(&info);
                                return r;
                        }
                }
        }
        *ret_info = info;
        return 0;
}

/* Runs a query whose one row is one text column: 1 with *ret set (NULL for SQL NULL), 0 without a
 * row. */
/* The first n text columns of st's row, each a copy or NULL. 1, 0 (no row), or a negative error. */
static int query_texts(Store *s, sqlite3_stmt *st, char **ret, int n)
{
        int r = step(s, st);

        for (int i = 0; r > 0 && i < n; i++) {
                const char *t = (const char *)sqlite3_column_text(st, i);

                ret[i] = NULL;
                if (t && !(ret[i] = strdup(t))) {
                        while (i-- > 0)
                                ret[i] = mfree(ret[i]);
                        r = -ENOMEM;
                }
        }
        sqlite3_reset(st);
        return r;
}

static int query_text(Store *s, sqlite3_stmt *st, char **ret)
{
        return query_texts(s, st, ret, 1);
}

int store_sync_base_snapshot(Store *s, const char *user_id, const char *notebook_id, char **ret)
{
        int r = query_text(s, stmt_key(s, SQL_SYNC_BASE_SNAPSHOT, user_id, notebook_id), ret);

        return r == 0 ? -ENOENT : r < 0 ? r : 0;
}

int store_sync_base_parts(Store *s, const char *user_id, const char *notebook_id, char **ret,
                          bool *ret_unconfirmed)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_BASE_PARTS, user_id, notebook_id);
        int r = step(s, st);

        if (r > 0) {
                const char *t = (const char *)sqlite3_column_text(st, 0);

                if (ret_unconfirmed)
                        *ret_unconfirmed = sqlite3_column_int(st, 1) != 0;
                *ret = NULL;
                if (t && !(*ret = strdup(t)))
                        r = -ENOMEM;
        }
        sqlite3_reset(st);
        return r == 0 ? -ENOENT : r < 0 ? r : 0;
}

/* A row of two text columns as a pair. */
static cJSON *pair_from_row(sqlite3_stmt *st)
{
        const char *a = (const char *)sqlite3_column_text(st, 0),
                   *b = (const char *)sqlite3_column_text(st, 1);
        const char *pair[2] = { a ? a : "", b ? b : "" };

        return cJSON_CreateStringArray(pair, 2);
}

int store_sync_gc(Store *s, const char *user_id, const char *notebook_id, bool want)
{
        return run(s, stmt_key(s, want ? SQL_SYNC_GC_ADD : SQL_SYNC_GC_DROP, user_id, notebook_id));
}

int store_sync_gc_list(Store *s, cJSON **ret)
{
        return rows_to_array(s, stmt(s, SQL_SYNC_GC_LIST), pair_from_row, ret);
}

int store_sync_dirty(Store *s, int64_t max, cJSON **ret)
{
        sqlite3_stmt *st = stmt(s, SQL_SYNC_DIRTY);

        sqlite3_bind_int64(st, 1, max);
        return rows_to_array(s, st, pair_from_row, ret);
}

int store_sync_token(Store *s, const char *user_id, const char *notebook_id, int64_t revision,
                     const char *fresh, char ret[static UUID_STRING_MAX])
{
        _cleanup_free_ char *found = NULL;
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_TOKEN_FIND, user_id, notebook_id);
        int r;

        sqlite3_bind_int64(st, 3, revision);
        r = query_text(s, st, &found);
        if (r < 0)
                return r;
        if (r > 0 && found) {
                snprintf(ret, UUID_STRING_MAX, "%s", found);
                return 0;
        }
        st = stmt_key(s, SQL_SYNC_TOKEN_ADD, user_id, notebook_id);
        bind_text(st, 3, fresh);
        sqlite3_bind_int64(st, 4, revision);
        r = run(s, st);
        if (r < 0)
                return r;
        snprintf(ret, UUID_STRING_MAX, "%s", fresh);
        return 1;
}

int store_sync_token_revision(Store *s, const char *user_id, const char *notebook_id, const char *sync_id,
                              int64_t *ret_revision)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_TOKEN_REVISION, user_id, notebook_id);
        int64_t rev = -1;
        int r;

        if (!sync_id)
                return 0;
        bind_text(st, 3, sync_id);
        r = step(s, st);
        if (r > 0)
                rev = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (r > 0 && ret_revision)
                *ret_revision = rev;
        return r;
}

int store_sync_token_snapshot(Store *s, const char *user_id, const char *notebook_id, const char *sync_id,
                              const char *snapshot, const char *parts)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_TOKEN_SET_SNAPSHOT, user_id, notebook_id);

        bind_text(st, 3, sync_id);
        bind_text(st, 4, snapshot);
        bind_text(st, 5, parts);
        return run(s, st);
}

int store_sync_token_item(Store *s, const char *user_id, const char *notebook_id, const char *sync_id,
                          char **ret_snapshot, char **ret_parts)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_TOKEN_SNAPSHOT, user_id, notebook_id);
        char *v[2] = { NULL, NULL };
        int r;

        bind_text(st, 3, sync_id);
        r = query_texts(s, st, v, 2);
        *ret_snapshot = v[0];
        if (ret_parts)
                *ret_parts = v[1];
        else
                free(v[1]);
        return r;
}

int store_sync_tokens_count(Store *s, const char *user_id, const char *notebook_id)
{
        int64_t n = 0;
        int r = query_int(s, stmt_key(s, SQL_SYNC_TOKENS_COUNT, user_id, notebook_id), &n, NULL);

        return r < 0 ? r : (int)MIN(n, (int64_t)INT_MAX);
}

/* Runs st, a change of the notebook's base; then drops its tokens: the remote moved past every
 * write still unanswered, and none of them can land any more. */
static int run_new_base(Store *s, sqlite3_stmt *st, const char *user_id, const char *notebook_id)
{
        int r = run(s, st);

        return r < 0 ? r : run(s, stmt_key(s, SQL_SYNC_TOKENS_DROP, user_id, notebook_id));
}

int store_sync_confirm(Store *s, const char *user_id, const char *notebook_id, const StoreBase *base,
                       bool dirty, const char *state)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_CONFIRM, user_id, notebook_id);

        sqlite3_bind_int64(st, 3, base->revision);
        bind_text(st, 4, base->sync_id);
        bind_text(st, 5, base->snapshot);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)base->gen);
        sqlite3_bind_int(st, 7, dirty);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)now_realtime_usec());
        bind_text(st, 9, state);
        bind_text(st, 10, base->parts);
        return run_new_base(s, st, user_id, notebook_id);
}

int store_sync_detach(Store *s, const char *user_id, const char *notebook_id, const char *state,
                      const char *why)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_DETACH, user_id, notebook_id);

        sqlite3_bind_int64(st, 3, (sqlite3_int64)now_realtime_usec());
        bind_text(st, 4, state);
        bind_text(st, 5, why);
        return run_new_base(s, st, user_id, notebook_id);
}

int store_sync_deleted(Store *s, const char *user_id, const char *notebook_id, uint64_t gen,
                       const char *state)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_DELETED, user_id, notebook_id);

        sqlite3_bind_int64(st, 3, (sqlite3_int64)gen);
        bind_text(st, 4, state);
        /* The tokens stay: a write of ours still held up in the network may land after the delete,
         * and must be known as ours then. */
        return run(s, st);
}

int store_sync_remove(Store *s, const char *user_id, const char *notebook_id)
{
        int r = run(s, stmt_key(s, SQL_SYNC_CONFLICT_DROP, user_id, notebook_id));

        if (r < 0)
                return r;
        /* The trigger notebooks_gone keeps the revision high-water mark; the tokens stay. */
        return run(s, stmt_key(s, SQL_SYNC_REMOVE, user_id, notebook_id));
}

int store_sync_set_state(Store *s, const char *user_id, const char *notebook_id, const char *state,
                         const char *error)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_SET_STATE, user_id, notebook_id);

        bind_text(st, 3, state);
        bind_text(st, 4, error);
        return run(s, st);
}

int store_sync_replace(Store *s, const cJSON *notebook, const StoreBase *base, bool dirty, const char *state)
{
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(notebook, "user_id"),
                    *id = cJSON_GetObjectItemCaseSensitive(notebook, "id"),
                    *rev = cJSON_GetObjectItemCaseSensitive(notebook, "revision"),
                    *cells = cJSON_GetObjectItemCaseSensitive(notebook, "cells");
        _cleanup_(cJSON_Deletep) cJSON *fields = NULL;
        int64_t nb, prev = 0;
        sqlite3_stmt *st;
        bool deleted = true;
        uint64_t at;
        int r;

        if (!cJSON_IsString(user) || !cJSON_IsString(id) || !cJSON_IsNumber(rev) || !cJSON_IsArray(cells))
                return -EINVAL;
        if (cJSON_GetArraySize(cells) > MAX_CELLS)
                return -E2BIG;
        r = nb_find(s, user->valuestring, id->valuestring, &nb, &prev, &deleted);
        if (r < 0 && r != -ENOENT)
                return r;
        /* History: what this version changes of a live notebook. A new one, one back from a
         * tombstone, or one created anew elsewhere (another created_at) starts its history here;
         * so does one not above ours, which what history holds does not lead to. */
        if (r == 0 && !deleted && s->history_revisions > 0) {
                _cleanup_(cJSON_Deletep) cJSON *now = NULL;
                bool anew;

                if ((r = summary_get(s, nb, &now)) < 0)
                        return r;
                anew = !json_same(cJSON_GetObjectItemCaseSensitive(now, "created_at"),
                                  cJSON_GetObjectItemCaseSensitive(notebook, "created_at"));
                if ((anew || (int64_t)rev->valuedouble <= prev) && (r = hist_drop(s, nb)) < 0)
                        return r;
                if (anew)
                        prev = 0;
        }
        if (r == 0 && !deleted && prev > 0 && (int64_t)rev->valuedouble > prev) {
                hist_begin(s, nb, (int64_t)rev->valuedouble);
                if (hist_on(s, nb)) {
                        if (!(fields = notebook_fields(notebook)))
                                return -ENOMEM;
                        if ((r = hist_replace(s, nb, fields, cells)) < 0)
                                return r;
                }
                r = 0;
        } else
                prev = 0;

        st = stmt_key(s, r == 0 ? SQL_SYNC_REPLACE : SQL_SYNC_INSERT, user->valuestring, id->valuestring);
        bind_member_text(st, 3, notebook, "name");
        bind_member_text(st, 4, notebook, "db_conn_string");
        sqlite3_bind_int64(st, 5, (sqlite3_int64)rev->valuedouble);
        bind_member_text(st, 6, notebook, "created_at");
        bind_member_text(st, 7, notebook, "updated_at");
        bind_member_int(st, 8, notebook, "ttl");
        bind_member_int(st, 9, notebook, "demo_version");
        sqlite3_bind_int(st, 10, dirty);
        sqlite3_bind_int64(st, 11, (sqlite3_int64)now_realtime_usec());
        sqlite3_bind_int64(st, 12, base->revision);
        bind_text(st, 13, base->sync_id);
        bind_text(st, 14, base->snapshot);
        sqlite3_bind_int64(st, 15, (sqlite3_int64)base->gen);
        bind_text(st, 16, state);
        bind_text(st, 17, base->parts);
        r = run(s, st);
        if (r < 0)
                return r;
        r = nb_find(s, user->valuestring, id->valuestring, &nb, NULL, NULL);
        if (r < 0)
                return r;
        st = stmt(s, SQL_CELLS_DELETE_ALL);
        sqlite3_bind_int64(st, 1, nb);
        /* What the remote holds, or a merge with it, is taken whatever its size. */
        s->size_unchecked = true;
        if ((r = run(s, st)) >= 0)
                r = cells_insert_all(s, nb, cells);
        s->size_unchecked = false;
        if (r < 0)
                return r;
        if (prev == 0)
                hist_begin(s, nb, (int64_t)rev->valuedouble);
        if (parse_timestamp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(notebook, "updated_at")),
                            &at) < 0)
                at = now_realtime_usec();
        r = hist_end(s, nb, prev, dirty ? "merge" : "pull", at);
        if (r < 0)
                return r;
        return run(s, stmt_key(s, SQL_SYNC_TOKENS_DROP, user->valuestring, id->valuestring));
}

static cJSON *first_column(sqlite3_stmt *st)
{
        return column_text_or_null(st, 0);
}

int store_sync_known(Store *s, const char *user_id, cJSON **ret)
{
        sqlite3_stmt *st = stmt(s, SQL_SYNC_KNOWN);

        bind_text(st, 1, user_id);
        return rows_to_array(s, st, first_column, ret);
}

int store_sync_next_epoch(Store *s, uint64_t *ret)
{
        int64_t v = 0;
        int r = query_int(s, stmt(s, SQL_SYNC_EPOCH), &v, NULL);

        if (r < 0)
                return r;
        *ret = (uint64_t)v;
        return 0;
}

int store_sync_users(Store *s, cJSON **ret)
{
        return rows_to_array(s, stmt(s, SQL_SYNC_USERS), first_column, ret);
}

static cJSON *unsynced_from_row(sqlite3_stmt *st)
{
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();

        if (!o || !add(o, "user_id", column_text_or_null(st, 0)) ||
            !add(o, "notebook_id", column_text_or_null(st, 1)) ||
            !add(o, "revision", column_int_or_null(st, 2)) ||
            !add(o, "base_revision", column_int_or_null(st, 3)) ||
            !add(o, "deleted", cJSON_CreateBool(sqlite3_column_int(st, 4))) ||
            !add(o, "state", column_text_or_null(st, 5)) || !add(o, "error", column_text_or_null(st, 6)) ||
            !add(o, "conflicts", column_int_or_null(st, 7)))
                return NULL;
        return TAKE_PTR(o);
}

/* Orders two listings of unsynced_from_row() by (user_id, notebook_id). */
static int unsynced_cmp(const cJSON *a, const cJSON *b)
{
        int k = strcmp(cJSON_GetObjectItem(a, "user_id")->valuestring,
                       cJSON_GetObjectItem(b, "user_id")->valuestring);

        return k ? k
                 : strcmp(cJSON_GetObjectItem(a, "notebook_id")->valuestring,
                          cJSON_GetObjectItem(b, "notebook_id")->valuestring);
}

int store_sync_unsynced(Store *s, const char *user_id, int64_t max, cJSON **ret)
{
        _cleanup_(cJSON_Deletep) cJSON *out = NULL, *flagged = NULL, *conflicted = NULL;
        sqlite3_stmt *st = stmt(s, user_id ? SQL_SYNC_UNSYNCED_USER : SQL_SYNC_UNSYNCED);
        cJSON *a, *b;
        int64_t n = 0;
        int r;

        sqlite3_bind_int64(st, 1, max);
        bind_text(st, 2, user_id);
        r = rows_to_array(s, st, unsynced_from_row, &flagged);
        if (r < 0)
                return r;
        st = stmt(s, SQL_SYNC_UNSYNCED_CONFLICTED);
        sqlite3_bind_int64(st, 1, max);
        bind_text(st, 2, user_id);
        r = rows_to_array(s, st, unsynced_from_row, &conflicted);
        if (r < 0)
                return r;
        /* Both are in order and apart: merged, the first max. */
        out = cJSON_CreateArray();
        if (!out)
                return -ENOMEM;
        for (; n < max && (flagged->child || conflicted->child); n++) {
                a = flagged->child;
                b = conflicted->child;
                if (!b || (a && unsynced_cmp(a, b) < 0))
                        cJSON_AddItemToArray(out, cJSON_DetachItemViaPointer(flagged, a));
                else
                        cJSON_AddItemToArray(out, cJSON_DetachItemViaPointer(conflicted, b));
        }
        *ret = TAKE_PTR(out);
        return 0;
}

int store_sync_conflict_add(Store *s, const char *user_id, const char *notebook_id, const char *subject,
                            const char *copy_id, const cJSON *local_value)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_CONFLICT_ADD, user_id, notebook_id);
        char ts[TIMESTAMP_MAX];
        int r;

        bind_text(st, 3, subject);
        bind_text(st, 4, copy_id);
        r = local_value ? bind_json(st, 5, local_value) : 0;
        if (r < 0) {
                sqlite3_clear_bindings(st);
                return r;
        }
        if (!local_value)
                sqlite3_bind_null(st, 5);
        bind_text(st, 6, format_timestamp(ts, now_realtime_usec()));
        return run(s, st);
}

static cJSON *conflict_from_row(sqlite3_stmt *st)
{
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
        const char *subject = (const char *)sqlite3_column_text(st, 2);
        const char *colon = subject ? strchr(subject, ':') : NULL;

        if (!o || !colon || !add(o, "user_id", column_text_or_null(st, 0)) ||
            !add(o, "notebook_id", column_text_or_null(st, 1)) ||
            !add(o, startswith(subject, "cell:") ? "cell_id" : "field", cJSON_CreateString(colon + 1)) ||
            !add(o, "created_at", column_text_or_null(st, 5)))
                return NULL;
        if (sqlite3_column_type(st, 3) != SQLITE_NULL && !add(o, "copy_id", column_text_or_null(st, 3)))
                return NULL;
        if (sqlite3_column_type(st, 4) != SQLITE_NULL && !add(o, "local", column_json(st, 4)))
                return NULL;
        return TAKE_PTR(o);
}

int store_sync_conflicts(Store *s, const char *user_id, const char *notebook_id, int64_t max, cJSON **ret)
{
        sqlite3_stmt *st = stmt(s, SQL_SYNC_CONFLICTS);

        bind_text(st, 1, user_id);
        bind_text(st, 2, notebook_id);
        sqlite3_bind_int64(st, 3, max);
        return rows_to_array(s, st, conflict_from_row, ret);
}

int store_sync_conflict_drop(Store *s, const char *user_id, const char *notebook_id, const char *subject)
{
        sqlite3_stmt *st = stmt_key(s, SQL_SYNC_CONFLICT_DROP, user_id, notebook_id);
        int r;

        bind_text(st, 3, subject);
        r = run(s, st);
        return r < 0 ? r : sqlite3_changes(s->db);
}

int store_sync_conflicted(Store *s, const char *user_id)
{
        sqlite3_stmt *st = stmt(s, SQL_SYNC_CONFLICTED);
        int64_t n = 0;
        int r;

        bind_text(st, 1, user_id);
        r = query_int(s, st, &n, NULL);
        return r < 0 ? r : (int)MIN(n, (int64_t)INT_MAX);
}

int store_sync_tombstone(Store *s, const cJSON *notebook, const StoreBase *base)
{
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(notebook, "user_id"),
                    *id = cJSON_GetObjectItemCaseSensitive(notebook, "id");
        sqlite3_stmt *st;

        if (!cJSON_IsString(user) || !cJSON_IsString(id))
                return -EINVAL;
        st = stmt_key(s, SQL_SYNC_TOMBSTONE, user->valuestring, id->valuestring);
        sqlite3_bind_int64(st, 3, base->revision);
        bind_member_text(st, 4, notebook, "created_at");
        sqlite3_bind_int64(st, 5, (sqlite3_int64)now_realtime_usec());
        bind_text(st, 6, base->sync_id);
        bind_text(st, 7, base->snapshot);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)base->gen);
        bind_text(st, 9, "pending");
        bind_text(st, 10, base->parts);
        return run(s, st);
}

int store_sync_high_water(Store *s, const char *user_id, const char *notebook_id, int64_t *ret)
{
        int64_t high = -1;
        int r = query_int(s, stmt_key(s, SQL_SYNC_HIGH_WATER, user_id, notebook_id), &high, NULL);

        if (r < 0 && r != -ENODATA)
                return r;
        *ret = r == 0 ? high : -1;
        return 0;
}
