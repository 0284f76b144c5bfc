-- notebookd schema, version 8: each notebook's recent revisions (doc/storage.md, "History").
-- History is kept as reverse deltas: the row of revision R holds what R changed, as the values
-- they had before (at prev_revision), so that undoing rows from the newest down rebuilds any
-- revision still covered. A change writes only what it changed: the old values of the fields and
-- cell attributes it touched, and the cell order when that changed. Dropping the oldest rows (the
-- bounds by count and age) never breaks what the newer ones rebuild.
--   origin       what made the revision: create, edit, pull, merge, restore
--   at           when the revision was made (its updated_at), realtime usec
--   fields       JSON object: the old values of the notebook fields R changed (NULL: none)
--   cell_order   JSON array: the cell ids in order before R, when R changed the order or the set
--   cells        JSON object: for each cell R changed, the old values of the attributes it changed
--                (all of them for a cell R deleted), or null for a cell R created (NULL: none)
CREATE TABLE history (
        nb            INTEGER NOT NULL REFERENCES notebooks (nb) ON DELETE CASCADE,
        revision      INTEGER NOT NULL,
        prev_revision INTEGER NOT NULL,
        at            INTEGER NOT NULL,
        origin        TEXT NOT NULL,
        fields        TEXT,
        cell_order    TEXT,
        cells         TEXT,
        PRIMARY KEY (nb, revision)
) WITHOUT ROWID;
