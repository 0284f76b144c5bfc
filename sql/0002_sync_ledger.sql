-- notebookd schema, version 2: the sync ledger (doc/sync.md, "What is recorded where").
--
-- The version the remote holds is named by its revision and its sync_id together: revisions of
-- one id may be reused by another writer after a delete, tokens never are.
--   base_sync_id  the sync_id of the item at base_revision (NULL: the item carries none)
--   base_gen      the engine's pull generation when the base (or the delete) was recorded: only a
--                 pull started after it may override it
--   delete_gen    tombstone whose remote copy is known gone since that generation; the row stays
--                 until a complete pull started later agrees (NULL: the delete is still to go)
ALTER TABLE notebooks ADD COLUMN base_sync_id TEXT;
ALTER TABLE notebooks ADD COLUMN base_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notebooks ADD COLUMN delete_gen INTEGER;
UPDATE notebooks SET base_sync_id = json_extract(base_snapshot, '$.sync_id.S')
        WHERE base_snapshot IS NOT NULL AND json_valid(base_snapshot);

-- Every write token sent and not yet confirmed, with the revision it carried. A retry of the same
-- revision reuses its token; all of a notebook's go when the remote is seen at a newer base. They
-- outlive a notebook's row: a write held up in the network may land after a delete, and is known
-- as ours then (and deleted again).
CREATE TABLE sync_tokens (
        user_id     TEXT NOT NULL,
        notebook_id TEXT NOT NULL,
        sync_id     TEXT NOT NULL,
        revision    INTEGER NOT NULL,
        snapshot    TEXT, -- the item the write carried: a base to merge on once it is known to stand
        PRIMARY KEY (user_id, notebook_id, sync_id)
) WITHOUT ROWID;
INSERT INTO sync_tokens (user_id, notebook_id, sync_id, revision) SELECT user_id, id, sync_id, revision FROM notebooks
        WHERE sync_id IS NOT NULL AND sync_state <> 'synced';
ALTER TABLE notebooks DROP COLUMN sync_id;

-- The highest revision an id ever had here or was seen with on the remote, kept after its row is
-- gone, so that a notebook created again under the same id continues above it.
CREATE TABLE revisions (
        user_id     TEXT NOT NULL,
        notebook_id TEXT NOT NULL,
        high        INTEGER NOT NULL,
        PRIMARY KEY (user_id, notebook_id)
) WITHOUT ROWID;
CREATE TRIGGER notebooks_gone AFTER DELETE ON notebooks BEGIN
        INSERT INTO revisions VALUES (old.user_id, old.id, max(old.revision, coalesce(old.base_revision, 0)))
                ON CONFLICT (user_id, notebook_id) DO UPDATE SET high = max(high, excluded.high);
END;

-- Conflicts a merge left for the user to resolve: a cell both sides changed differently (the
-- remote's version under its id, ours as the copy copy_id beside it), or a notebook field
-- ("name", "db_conn_string", "ttl", "demo_version": the remote's value stands, ours is local).
CREATE TABLE sync_conflicts (
        user_id     TEXT NOT NULL,
        notebook_id TEXT NOT NULL,
        subject     TEXT NOT NULL, -- "cell:ID" or "field:NAME"
        copy_id     TEXT,
        local_value TEXT,          -- JSON
        created_at  TEXT NOT NULL,
        PRIMARY KEY (user_id, notebook_id, subject)
) WITHOUT ROWID;

-- Small values of the engine: "epoch", the high part of pull generations, one more at each start.
CREATE TABLE sync_meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
) WITHOUT ROWID;
