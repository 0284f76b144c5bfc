-- notebookd schema, version 7: big notebooks (doc/sync.md, "Big notebooks").
-- A version whose cell values did not fit in one DynamoDB item names part items for them. Beside
-- each snapshot of a version, the references its item carried: a JSON array of
-- [cell index, attribute, reference] (NULL: the item names no parts). They tell which parts the
-- table holds for the base (a push writes only the others), and which values a later version
-- shares with it (a pull fetches only the others).
ALTER TABLE notebooks ADD COLUMN base_parts TEXT;
ALTER TABLE sync_tokens ADD COLUMN parts TEXT;

-- Notebooks whose parts a collection pass is to look at (doc/sync.md, "Collection"): kept so that
-- a pass asked for survives a restart. A row goes when a pass finds nothing left to wait for.
CREATE TABLE sync_gc (
        user_id     TEXT NOT NULL,
        notebook_id TEXT NOT NULL,
        PRIMARY KEY (user_id, notebook_id)
) WITHOUT ROWID;
