-- notebookd schema, version 4.
-- The notebooks not in sync (daemon.status lists them): found through a partial index instead of
-- a scan of every notebook, so that a status call costs what is out of sync, not the store's size.
CREATE INDEX notebooks_unsynced ON notebooks (user_id, id)
        WHERE dirty = 1 OR sync_state IN ('conflict', 'error');
