-- notebookd schema, version 7: big notebooks (doc/sync.md, "Big notebooks").
-- A version whose cell values did not fit in one DynamoDB item names part items for them. Beside
-- each snapshot of a version, the references its item carried: a JSON array of
-- [cell index, attribute, reference] (NULL: the item names no parts). They tell which parts the
-- table holds for the base (a push writes only the others), and which values a later version
-- shares with it (a pull fetches only the others).
ALTER TABLE notebooks ADD COLUMN base_parts TEXT;
ALTER TABLE sync_tokens ADD COLUMN parts TEXT;
