-- notebookd schema, version 1.
-- Applied in one transaction at start-up; PRAGMA user_version records the version reached.

-- A notebook, live or a tombstone. Notebooks are addressed by (user_id, id) as in DynamoDB.
-- Sync state lives here from the start so that the sync engine needs no table rewrite:
--   dirty          1 when a local change has not yet reached the remote table
--   dirty_since    realtime usec of the oldest unsynced change (debounce with a maximum delay)
--   base_revision  the revision last known to be on the remote (NULL: never synced)
--   base_snapshot  the item as last synced (JSON), the common ancestor of a three-way merge
--   sync_id        idempotency token of the write in flight, to resolve ambiguous outcomes
--   deleted        1 for a tombstone: deleted locally, remote DeleteItem still to succeed
CREATE TABLE notebooks (
        nb             INTEGER PRIMARY KEY,
        user_id        TEXT NOT NULL,
        id             TEXT NOT NULL,
        name           TEXT,
        db_conn_string TEXT,
        revision       INTEGER NOT NULL CHECK (revision >= 0),
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        ttl            INTEGER,
        demo_version   INTEGER,
        deleted        INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
        dirty          INTEGER NOT NULL DEFAULT 1 CHECK (dirty IN (0, 1)),
        dirty_since    INTEGER,
        base_revision  INTEGER,
        base_snapshot  TEXT,
        sync_id        TEXT,
        sync_state     TEXT NOT NULL DEFAULT 'pending',
        sync_error     TEXT,
        UNIQUE (user_id, id)
);
CREATE INDEX notebooks_by_user_created ON notebooks (user_id, created_at, id) WHERE deleted = 0;
CREATE INDEX notebooks_dirty ON notebooks (dirty_since) WHERE dirty = 1;

-- Cells are rows, so editing one cell writes one row whatever the notebook's size. pos orders the
-- cells of a notebook; it is sparse so that inserting or moving a cell usually writes that cell
-- only (the store renumbers a notebook when two neighbours leave no gap).
CREATE TABLE cells (
        nb      INTEGER NOT NULL REFERENCES notebooks (nb) ON DELETE CASCADE,
        id      TEXT NOT NULL,
        pos     INTEGER NOT NULL,
        type    TEXT NOT NULL CHECK (type IN ('python', 'sql')),
        code    TEXT NOT NULL DEFAULT '',
        status  TEXT NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'running', 'success', 'error')),
        stdout  TEXT NOT NULL DEFAULT '',
        outputs TEXT NOT NULL DEFAULT '[]',
        error   TEXT,
        reads   TEXT NOT NULL DEFAULT '[]',
        writes  TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (nb, id)
) WITHOUT ROWID;
CREATE INDEX cells_by_pos ON cells (nb, pos);

-- Users whose blank and demo notebooks were provisioned; provisioning happens once per user.
CREATE TABLE users (
        user_id        TEXT PRIMARY KEY,
        provisioned_at TEXT NOT NULL
) WITHOUT ROWID;
