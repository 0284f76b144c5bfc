-- notebookd schema, version 3: the counts daemon.status reports, kept as rows.
--
-- Counting the notebooks on every status call reads every row of a large store (tens of ms for
-- 100,000 notebooks, with the event loop held). Triggers keep the counts in the transaction of
-- each change instead, so a rolled-back request or batch takes its counting back with it, and a
-- status call reads two rows.
--   live_notebooks  notebooks with deleted = 0, every user
--   users           rows of users (users provisioned here)
CREATE TABLE counts (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counts (name, value) VALUES
        ('live_notebooks', (SELECT count(*) FROM notebooks WHERE deleted = 0)),
        ('users', (SELECT count(*) FROM users));

CREATE TRIGGER counts_notebook_insert AFTER INSERT ON notebooks WHEN new.deleted = 0 BEGIN
        UPDATE counts SET value = value + 1 WHERE name = 'live_notebooks';
END;
CREATE TRIGGER counts_notebook_delete AFTER DELETE ON notebooks WHEN old.deleted = 0 BEGIN
        UPDATE counts SET value = value - 1 WHERE name = 'live_notebooks';
END;
-- A tombstone (deleted 0 -> 1) or a revival (1 -> 0).
CREATE TRIGGER counts_notebook_deleted AFTER UPDATE OF deleted ON notebooks
        WHEN old.deleted IS NOT new.deleted BEGIN
        UPDATE counts SET value = value + old.deleted - new.deleted WHERE name = 'live_notebooks';
END;
CREATE TRIGGER counts_user_insert AFTER INSERT ON users BEGIN
        UPDATE counts SET value = value + 1 WHERE name = 'users';
END;
CREATE TRIGGER counts_user_delete AFTER DELETE ON users BEGIN
        UPDATE counts SET value = value - 1 WHERE name = 'users';
END;
