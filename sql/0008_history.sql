-- notebookd schema, version 8: each notebook's recent revisions (doc/storage.md, "History").
-- History is kept as reverse deltas: the row of revision R holds what R changed, as the values
-- they had before (at prev_revision), so that undoing rows from the newest down rebuilds any
-- revision still covered. A change writes only what it changed: the old values of the fields and
-- cell attributes it touched, and the cell order when that changed. Dropping the oldest rows (the
-- bounds by count and age) never breaks what the newer ones rebuild.
--   origin       what made the revision: create, edit, pull, merge, restore
--   at           realtime usec of the change
--   fields       JSON object: the old values of the notebook fields R changed (NULL: none)
--   cell_order   JSON array: the cell ids in order before R, when R changed the order or the set
CREATE TABLE history (
        nb            INTEGER NOT NULL REFERENCES notebooks (nb) ON DELETE CASCADE,
        revision      INTEGER NOT NULL,
        prev_revision INTEGER NOT NULL,
        at            INTEGER NOT NULL,
        origin        TEXT NOT NULL,
        fields        TEXT,
        cell_order    TEXT,
        PRIMARY KEY (nb, revision)
) WITHOUT ROWID;

-- One row per cell that revision R of a notebook changed: old is a JSON object of the cell's
-- attributes R changed, with the values they had before (all of them for a cell R deleted), or
-- NULL for a cell R created. Rows go with their history row (the store deletes both).
CREATE TABLE history_cells (
        nb       INTEGER NOT NULL REFERENCES notebooks (nb) ON DELETE CASCADE,
        revision INTEGER NOT NULL,
        cell_id  TEXT NOT NULL,
        old      TEXT,
        PRIMARY KEY (nb, revision, cell_id)
) WITHOUT ROWID;
