-- notebookd schema, version 5.
-- Tables whose rows carry large values (a cell's code and outputs, a write's item, a conflict's
-- local value) become rowid tables. In a WITHOUT ROWID table the whole row is the b-tree key, so
-- interior pages hold copies of whole rows and every look-up compares against them, assembling
-- rows of kilobytes from their overflow pages: one large cell slowed down every edit of every
-- notebook. In a rowid table the large values stay in the leaves; the keys are indexed apart.
-- Columns, constraints and order are unchanged.

CREATE TABLE cells_rowid (
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
        UNIQUE (nb, id)
);
INSERT INTO cells_rowid (nb, id, pos, type, code, status, stdout, outputs, error, reads, writes)
        SELECT nb, id, pos, type, code, status, stdout, outputs, error, reads, writes FROM cells ORDER BY nb, pos;
DROP TABLE cells;
ALTER TABLE cells_rowid RENAME TO cells;
CREATE INDEX cells_by_pos ON cells (nb, pos);

CREATE TABLE sync_tokens_rowid (
        user_id     TEXT NOT NULL,
        notebook_id TEXT NOT NULL,
        sync_id     TEXT NOT NULL,
        revision    INTEGER NOT NULL,
        snapshot    TEXT,
        UNIQUE (user_id, notebook_id, sync_id)
);
INSERT INTO sync_tokens_rowid (user_id, notebook_id, sync_id, revision, snapshot)
        SELECT user_id, notebook_id, sync_id, revision, snapshot FROM sync_tokens;
DROP TABLE sync_tokens;
ALTER TABLE sync_tokens_rowid RENAME TO sync_tokens;

CREATE TABLE sync_conflicts_rowid (
        user_id     TEXT NOT NULL,
        notebook_id TEXT NOT NULL,
        subject     TEXT NOT NULL,
        copy_id     TEXT,
        local_value TEXT,
        created_at  TEXT NOT NULL,
        UNIQUE (user_id, notebook_id, subject)
);
INSERT INTO sync_conflicts_rowid (user_id, notebook_id, subject, copy_id, local_value, created_at)
        SELECT user_id, notebook_id, subject, copy_id, local_value, created_at FROM sync_conflicts;
DROP TABLE sync_conflicts;
ALTER TABLE sync_conflicts_rowid RENAME TO sync_conflicts;
