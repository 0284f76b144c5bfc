-- notebookd schema, version 6.
-- The size of each notebook's cells, kept by triggers, so that an edit that would take a notebook
-- past the daemon's max_notebook_bytes is refused without adding up its cells. A cell's size is
-- the bytes of its id, code, stdout, outputs, error and variable lists.
--
-- nb_max_bytes() is a function the daemon defines on its connection: the limit, or a value no
-- notebook reaches while it applies what another machine wrote (that is never refused here).
-- Another program that edits cells must define it too.

ALTER TABLE notebooks ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;

UPDATE notebooks SET bytes = (
        SELECT total(length(CAST(id AS BLOB)) + length(CAST(code AS BLOB)) + length(CAST(stdout AS BLOB)) +
                     length(CAST(outputs AS BLOB)) + length(CAST(coalesce(error, '') AS BLOB)) +
                     length(CAST(reads AS BLOB)) + length(CAST(writes AS BLOB)))
        FROM cells WHERE cells.nb = notebooks.nb);

CREATE TRIGGER notebook_bytes_cell_insert AFTER INSERT ON cells BEGIN
        UPDATE notebooks SET bytes = bytes + length(CAST(new.id AS BLOB)) + length(CAST(new.code AS BLOB)) +
                length(CAST(new.stdout AS BLOB)) + length(CAST(new.outputs AS BLOB)) +
                length(CAST(coalesce(new.error, '') AS BLOB)) + length(CAST(new.reads AS BLOB)) +
                length(CAST(new.writes AS BLOB))
        WHERE nb = new.nb;
END;

CREATE TRIGGER notebook_bytes_cell_delete AFTER DELETE ON cells BEGIN
        UPDATE notebooks SET bytes = bytes - length(CAST(old.id AS BLOB)) - length(CAST(old.code AS BLOB)) -
                length(CAST(old.stdout AS BLOB)) - length(CAST(old.outputs AS BLOB)) -
                length(CAST(coalesce(old.error, '') AS BLOB)) - length(CAST(old.reads AS BLOB)) -
                length(CAST(old.writes AS BLOB))
        WHERE nb = old.nb;
END;

CREATE TRIGGER notebook_bytes_cell_update AFTER UPDATE OF id, code, stdout, outputs, error, reads, writes ON cells
BEGIN
        UPDATE notebooks SET bytes = bytes
                - length(CAST(old.id AS BLOB)) - length(CAST(old.code AS BLOB)) - length(CAST(old.stdout AS BLOB))
                - length(CAST(old.outputs AS BLOB)) - length(CAST(coalesce(old.error, '') AS BLOB))
                - length(CAST(old.reads AS BLOB)) - length(CAST(old.writes AS BLOB))
                + length(CAST(new.id AS BLOB)) + length(CAST(new.code AS BLOB)) + length(CAST(new.stdout AS BLOB))
                + length(CAST(new.outputs AS BLOB)) + length(CAST(coalesce(new.error, '') AS BLOB))
                + length(CAST(new.reads AS BLOB)) + length(CAST(new.writes AS BLOB))
        WHERE nb = new.nb;
END;

-- Only growth is refused: a notebook already over a lowered limit may still shrink.
CREATE TRIGGER notebook_bytes_limit BEFORE UPDATE OF bytes ON notebooks
WHEN new.bytes > old.bytes AND new.bytes > nb_max_bytes() BEGIN
        SELECT RAISE(ABORT, 'notebook too large');
END;
