/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <sqlite3.h>

#include "demo.h"
#include "nb-limits.h"
#include "model.h"
#include "store.h"
#include "tap.h"

static char dir[] = "/tmp/nb-test-store-XXXXXX";
static char db_path[256];

static Store *open_store(void)
{
        char err[256] = "";
        Store *s = NULL;
        int r = store_open(db_path, true, &s, err, sizeof(err));

        if (r < 0)
                printf("# store_open: %s\n", err);
        return s;
}

static cJSON *cell_new(const char *id, const char *code)
{
        cJSON *c = NULL;
        _cleanup_(cJSON_Deletep) cJSON *in = cJSON_CreateObject();
        ModelError e;

        cJSON_AddStringToObject(in, "code", code);
        if (model_cell_fields(in, true, &c, NULL, &e) < 0)
                return NULL;
        cJSON_AddStringToObject(c, "id", id);
        return c;
}

/* The ids of a notebook's cells, joined with commas, for compact checks of order. */
static const char *cell_order(Store *s, const char *user, const char *nb)
{
        static char buf[4096];
        _cleanup_(cJSON_Deletep) cJSON *n = NULL;
        const cJSON *c;

        buf[0] = 0;
        if (store_notebook_get(s, user, nb, &n) < 0)
                return "(missing)";
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(n, "cells"))
        {
                if (buf[0])
                        strcat(buf, ",");
                strncat(buf, cJSON_GetObjectItem(c, "id")->valuestring, 64);
        }
        return buf;
}

static int64_t revision_of(Store *s, const char *user, const char *nb)
{
        _cleanup_(cJSON_Deletep) cJSON *n = NULL;

        if (store_notebook_get(s, user, nb, &n) < 0)
                return -1;
        return (int64_t)cJSON_GetObjectItem(n, "revision")->valuedouble;
}

static void test_provision(Store *s)
{
        _cleanup_(cJSON_Deletep) cJSON *list = NULL, *demo = NULL;
        StoreMut m = STORE_MUT_INIT;
        bool prov;

        is_int(store_provision(s, "alice", &prov), 0, "first provisioning");
        ok(prov, "provisions");
        is_int(store_notebook_list(s, "alice", &list), 0, "list");
        is_int(cJSON_GetArraySize(list), 2, "blank and demo exist");
        is_int(store_notebook_get(s, "alice", "demo-alice", &demo), 0, "demo can be read");
        is_int(cJSON_GetArraySize(cJSON_GetObjectItem(demo, "cells")), 6, "demo has six cells");
        is_int(cJSON_GetObjectItem(demo, "demo_version")->valueint, DEMO_VERSION, "demo_version set");
        is_int(cJSON_GetObjectItem(demo, "revision")->valueint, 1, "a new notebook is at revision 1");

        is_int(store_notebook_delete(s, "alice", "demo-alice", &m), 0, "demo deleted");
        is_int(store_provision(s, "alice", &prov), 0, "second provisioning");
        ok(!prov, "does nothing");
        is_int(store_notebook_exists(s, "alice", "demo-alice"), 0, "a deleted demo is not re-created");
        is_int(store_notebook_exists(s, "bob", "demo-alice"), 0, "notebooks belong to their user");
}

static void test_revisions(Store *s)
{
        _cleanup_(cJSON_Deletep) cJSON *fields = cJSON_CreateObject(), *sum = NULL, *nb = NULL;
        StoreMut m = STORE_MUT_INIT;

        is_int(store_notebook_create(s, "alice", "n1", NULL, NULL, &nb), 0, "create n1");
        is_int(store_notebook_create(s, "alice", "n1", NULL, NULL, NULL), -EEXIST,
               "a live id cannot be reused");
        is_int(store_notebook_create(s, "bob", "n1", NULL, NULL, NULL), 0,
               "another user may use the same id");

        cJSON_AddStringToObject(fields, "name", "First");
        m.expected_revision = 1;
        is_int(store_notebook_update(s, "alice", "n1", &m, fields, &sum), 0,
               "update at the expected revision");
        is_int(m.revision, 2, "revision went up by one");
        is_str(cJSON_GetObjectItem(sum, "name")->valuestring, "First", "name was set");

        m = (StoreMut)STORE_MUT_INIT;
        m.expected_revision = 1;
        is_int(store_notebook_update(s, "alice", "n1", &m, fields, NULL), -ESTALE,
               "stale revision conflicts");
        is_int(m.revision, 2, "the conflict carries the current revision");
        is_int(revision_of(s, "alice", "n1"), 2, "a conflict changes nothing");

        m = (StoreMut)STORE_MUT_INIT;
        is_int(store_notebook_delete(s, "alice", "n1", &m), 0, "delete");
        is_int(m.revision, 3, "delete is a revision too");
        is_int(store_notebook_get(s, "alice", "n1", &sum), -ENOENT, "deleted notebook is gone");
        m = (StoreMut)STORE_MUT_INIT;
        is_int(store_notebook_update(s, "alice", "n1", &m, fields, NULL), -ENOENT, "and cannot be updated");
        is_int(store_notebook_create(s, "alice", "n1", NULL, NULL, NULL), 0, "the id can be created again");
        is_int(revision_of(s, "alice", "n1"), 4, "revision numbering continues over a tombstone");
}

static void test_cells(Store *s)
{
        StoreMut m = STORE_MUT_INIT;
        CellPlace end = { .kind = PLACE_END }, front = { .kind = PLACE_FRONT };
        _cleanup_(cJSON_Deletep) cJSON *a = cell_new("a", "x = 1"), *b = cell_new("b", "y = x"),
                                       *c = cell_new("c", ""), *upd = cJSON_CreateObject(), *ret = NULL;
        int64_t idx = -1, rev;

        store_notebook_create(s, "carol", "nb", NULL, NULL, NULL);
        is_int(store_cell_create(s, "carol", "nb", &m, a, &end, NULL, &idx), 0, "append a");
        is_int(idx, 0, "at index 0");
        is_int(store_cell_create(s, "carol", "nb", &m, b, &front, NULL, &idx), 0, "b at the front");
        is_int(store_cell_create(s, "carol", "nb", &m, c, &(CellPlace){ .kind = PLACE_AFTER, .after = "b" },
                                 &ret, &idx),
               0, "c after b");
        is_int(idx, 1, "c is at index 1");
        is_str(cJSON_GetObjectItem(ret, "id")->valuestring, "c", "the stored cell is returned");
        is_str(cell_order(s, "carol", "nb"), "b,c,a", "order is b, c, a");
        is_int(store_cell_create(s, "carol", "nb", &m, c, &end, NULL, &idx), -EEXIST, "duplicate cell id");
        is_int(store_cell_create(s, "carol", "nb", &m, a, &(CellPlace){ .kind = PLACE_AFTER, .after = "zz" },
                                 NULL, &idx),
               -ENXIO, "after a missing cell");
        is_int(store_cell_create(s, "carol", "nb", &m, a, &(CellPlace){ .kind = PLACE_INDEX, .index = 9 },
                                 NULL, &idx),
               -ERANGE, "index past the end");

        rev = revision_of(s, "carol", "nb");
        m = (StoreMut)STORE_MUT_INIT;
        is_int(store_cell_move(s, "carol", "nb", "a", &m, &(CellPlace){ .kind = PLACE_INDEX, .index = 0 },
                               &idx),
               0, "move a to the front");
        is_str(cell_order(s, "carol", "nb"), "a,b,c", "order is a, b, c");
        is_int(m.revision, rev + 1, "a move is one revision");
        is_int(store_cell_move(s, "carol", "nb", "a", &m, &(CellPlace){ .kind = PLACE_INDEX, .index = 2 },
                               &idx),
               0, "move a to the end by index");
        is_int(idx, 2, "a ends at index 2");
        is_str(cell_order(s, "carol", "nb"), "b,c,a", "order is b, c, a again");
        is_int(store_cell_move(s, "carol", "nb", "a", &m, &(CellPlace){ .kind = PLACE_AFTER, .after = "a" },
                               &idx),
               -ERANGE, "a cell cannot follow itself");

        cJSON_AddStringToObject(upd, "code", "x = 2");
        cJSON_AddNullToObject(upd, "error");
        m = (StoreMut)STORE_MUT_INIT;
        cJSON_Delete(TAKE_PTR(ret));
        is_int(store_cell_update(s, "carol", "nb", "a", &m, upd, &ret, &idx), 0, "update a");
        is_str(cJSON_GetObjectItem(ret, "code")->valuestring, "x = 2", "code changed");
        is_str(cJSON_GetObjectItem(ret, "type")->valuestring, "python", "type kept");
        is_int(store_cell_update(s, "carol", "nb", "zz", &m, upd, NULL, &idx), -ENXIO,
               "update a missing cell");
        is_int(store_cell_delete(s, "carol", "nb", "b", &m), 0, "delete b");
        is_int(store_cell_delete(s, "carol", "nb", "b", &m), -ENXIO, "delete it again");
        is_str(cell_order(s, "carol", "nb"), "c,a", "order is c, a");
}

/* Inserting again and again at the same place exhausts the gaps and forces a renumbering. */
static void test_renumber(Store *s)
{
        char expect[4096] = "first", id[16];
        bool in_order = true;

        store_notebook_create(s, "dave", "nb", NULL, NULL, NULL);
        {
                _cleanup_(cJSON_Deletep) cJSON *c = cell_new("first", "");
                StoreMut m = STORE_MUT_INIT;
                int64_t idx;

                store_cell_create(s, "dave", "nb", &m, c, &(CellPlace){ .kind = PLACE_END }, NULL, &idx);
                cJSON_Delete(c);
                c = cell_new("last", "");
                store_cell_create(s, "dave", "nb", &m, c, &(CellPlace){ .kind = PLACE_END }, NULL, &idx);
        }
        for (int i = 40; i >= 1; i--) {
                _cleanup_(cJSON_Deletep) cJSON *c = NULL;
                StoreMut m = STORE_MUT_INIT;
                int64_t idx = -1;

                snprintf(id, sizeof(id), "c%02d", i);
                c = cell_new(id, "");
                if (store_cell_create(s, "dave", "nb", &m, c,
                                      &(CellPlace){ .kind = PLACE_INDEX, .index = 1 }, NULL, &idx) < 0 ||
                    idx != 1)
                        in_order = false;
        }
        for (int i = 1; i <= 40; i++) {
                snprintf(id, sizeof(id), ",c%02d", i);
                strcat(expect, id);
        }
        strcat(expect, ",last");
        ok(in_order, "40 inserts at index 1 all land at index 1");
        is_str(cell_order(s, "dave", "nb"), expect, "order survives renumbering");
}

static void test_cell_limit(Store *s)
{
        _cleanup_(cJSON_Deletep) cJSON *cells = cJSON_CreateArray(), *extra = cell_new("extra", "");
        StoreMut m = STORE_MUT_INIT;
        int64_t idx;

        for (int i = 0; i < MAX_CELLS; i++) {
                char id[16];

                snprintf(id, sizeof(id), "c%d", i);
                cJSON_AddItemToArray(cells, cell_new(id, "pass"));
        }
        is_int(store_notebook_create(s, "erin", "full", NULL, cells, NULL), 0,
               "a notebook of MAX_CELLS cells");
        is_int(store_cell_create(s, "erin", "full", &m, extra, &(CellPlace){ .kind = PLACE_END }, NULL,
                                 &idx),
               -E2BIG, "one cell more is refused");
        cJSON_AddItemToArray(cells, cell_new("one-more", ""));
        is_int(store_notebook_create(s, "erin", "fuller", NULL, cells, NULL), -E2BIG,
               "creating with too many cells is refused");
}

static void test_savepoints(Store *s)
{
        _cleanup_(cJSON_Deletep) cJSON *fields = cJSON_CreateObject();
        StoreMut m = STORE_MUT_INIT;

        cJSON_AddStringToObject(fields, "name", "undone");
        is_int(store_begin(s), 0, "begin");
        is_int(store_savepoint(s), 0, "savepoint");
        is_int(store_notebook_update(s, "alice", "n1", &m, fields, NULL), 0, "a write inside it");
        is_int(store_rollback_to(s), 0, "roll back to the savepoint");
        is_int(store_savepoint(s), 0, "second savepoint");
        is_int(store_notebook_create(s, "alice", "kept", NULL, NULL, NULL), 0, "another write");
        is_int(store_release(s), 0, "release");
        is_int(store_commit(s), 0, "commit");
        is_int(revision_of(s, "alice", "n1"), 4, "the rolled back write is gone");
        is_int(store_notebook_exists(s, "alice", "kept"), 1, "the released write is kept");
}

static bool json_has(const cJSON *v, const char *needle)
{
        _cleanup_free_ char *text = model_json_print(v, false);

        return text && strstr(text, needle);
}

static void test_sync(Store *s)
{
        _cleanup_(cJSON_Deletep) cJSON *dirty = NULL, *nb = NULL, *fields = cJSON_CreateObject(),
                                       *remote = NULL, *unsynced = NULL, *users = NULL;
        StoreSyncInfo info = { 0 };
        StoreMut m = STORE_MUT_INIT;

        store_notebook_create(s, "sync", "s1", NULL, NULL, NULL);
        is_int(store_sync_dirty(s, 1000, &dirty), 0, "list dirty notebooks");
        ok(json_has(dirty, "[\"sync\",\"s1\"]"), "a new notebook is dirty");
        is_int(store_sync_read(s, "sync", "s1", &nb, &info), 0, "read for sync");
        is_int(info.base_revision, -1, "never on the remote");
        ok(info.dirty && !info.deleted && nb, "dirty, live, with its content");
        store_sync_info_done(&info);
        cJSON_Delete(TAKE_PTR(nb));

        is_int(store_sync_begin(s, "sync", "s1", "tok-1"), 0, "record the token before sending");
        cJSON_AddStringToObject(fields, "name", "edited meanwhile");
        is_int(store_notebook_update(s, "sync", "s1", &m, fields, NULL), 0,
               "an edit while the write is in flight");
        is_int(store_sync_put_done(s, "sync", "s1", 1, "{}"), 0, "revision 1 reached the remote");
        store_sync_read(s, "sync", "s1", &nb, &info);
        ok(info.dirty && info.base_revision == 1, "still dirty, base moved to 1");
        is_str(info.sync_id, "tok-1", "the token is kept");
        store_sync_info_done(&info);
        cJSON_Delete(TAKE_PTR(nb));
        is_int(store_sync_put_done(s, "sync", "s1", 2, "{}"), 0, "revision 2 reached the remote");
        store_sync_read(s, "sync", "s1", &nb, &info);
        ok(!info.dirty && info.base_revision == 2, "clean at base 2");
        is_str(info.sync_state, "synced", "state synced");
        store_sync_info_done(&info);
        cJSON_Delete(TAKE_PTR(nb));

        /* A newer remote version replaces the clean notebook; a dirty one is kept, in conflict. */
        remote = cJSON_Parse(
                "{\"id\":\"s1\",\"user_id\":\"sync\",\"name\":\"from remote\",\"revision\":7,"
                "\"created_at\":\"2026-01-01T00:00:00.000Z\",\"updated_at\":\"2026-01-02T00:00:00.000Z\","
                "\"cells\":[{\"id\":\"r\",\"type\":\"sql\",\"code\":\"select 1\",\"status\":\"idle\","
                "\"stdout\":\"\",\"outputs\":[],\"error\":null,\"reads\":[],\"writes\":[]}]}");
        is_int(store_sync_apply_remote(s, remote, "{}", false), 1,
               "a clean notebook takes the remote version");
        is_int(revision_of(s, "sync", "s1"), 7, "at the remote revision");
        is_str(cell_order(s, "sync", "s1"), "r", "with the remote cells");
        cJSON_ReplaceItemInObject(remote, "id", cJSON_CreateString("s2"));
        is_int(store_sync_apply_remote(s, remote, "{}", false), 1, "a notebook only the remote had arrives");
        is_int(store_notebook_exists(s, "sync", "s2"), 1, "and is listed");
        m = (StoreMut)STORE_MUT_INIT;
        store_notebook_update(s, "sync", "s1", &m, fields, NULL);
        cJSON_ReplaceItemInObject(remote, "id", cJSON_CreateString("s1"));
        cJSON_ReplaceItemInObject(remote, "revision", cJSON_CreateNumber(9));
        is_int(store_sync_apply_remote(s, remote, "{}", false), 0, "a dirty notebook keeps its own version");
        store_sync_read(s, "sync", "s1", &nb, &info);
        is_str(info.sync_state, "conflict", "and is marked in conflict");
        is_int(info.revision, 8, "nothing local was lost");
        store_sync_info_done(&info);
        cJSON_Delete(TAKE_PTR(nb));
        is_int(store_sync_unsynced(s, NULL, 100, &unsynced), 0, "list what is not in sync");
        ok(json_has(unsynced, "\"state\":\"conflict\""), "the conflict is listed");
        cJSON_ReplaceItemInObject(remote, "revision", cJSON_CreateNumber(10));
        is_int(store_sync_apply_remote(s, remote, "{}", true), 1,
               "forced, the remote version replaces a dirty one");
        store_sync_read(s, "sync", "s1", &nb, &info);
        ok(info.revision == 10 && !info.dirty && streq_ptr(info.sync_state, "synced"),
           "clean, synced, at 10");
        store_sync_info_done(&info);
        cJSON_Delete(TAKE_PTR(nb));

        /* Deletes: a tombstone goes when the remote delete of its revision succeeded. */
        m = (StoreMut)STORE_MUT_INIT;
        store_notebook_delete(s, "sync", "s2", &m);
        store_sync_read(s, "sync", "s2", &nb, &info);
        ok(info.deleted && nb == NULL, "a deleted notebook is a tombstone without content");
        store_sync_info_done(&info);
        is_int(store_sync_delete_done(s, "sync", "s2", m.revision), 0, "remote delete done");
        is_int(store_sync_read(s, "sync", "s2", &nb, &info), -ENOENT, "the tombstone is gone");
        is_int(store_sync_users(s, &users), 0, "known users");
        ok(json_has(users, "\"sync\""), "include users with notebooks");
}

static void test_reopen_and_version(void)
{
        Store *s = open_store();
        sqlite3 *db;
        char err[256] = "";
        int r;

        ok(s != NULL, "reopening an existing database");
        is_int(s ? store_schema_version(s) : -1, (int)store_migrations[store_migrations_count - 1].version,
               "at the latest schema version");
        is_int(s ? store_notebook_exists(s, "alice", "kept") : -1, 1, "data survives reopening");
        store_free(s);

        ok(sqlite3_open(db_path, &db) == SQLITE_OK &&
                   sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL) == SQLITE_OK,
           "mark the database as written by a newer version");
        sqlite3_close(db);
        s = NULL;
        r = store_open(db_path, true, &s, err, sizeof(err));
        is_int(r, -EPROTONOSUPPORT, "a newer database is refused");
        ok(strstr(err, "999") != NULL, "the message names the version");
        ok(s == NULL, "and no store is returned");
}

int main(void)
{
        char cmd[300];
        Store *s;

        if (!mkdtemp(dir))
                return 1;
        snprintf(db_path, sizeof(db_path), "%s/test.db", dir);
        s = open_store();
        ok(s != NULL, "a new database opens and migrates");
        if (!s)
                return tap_done();
        is_int(store_schema_version(s), 1, "schema version 1");
        test_provision(s);
        test_revisions(s);
        test_cells(s);
        test_renumber(s);
        test_cell_limit(s);
        test_savepoints(s);
        test_sync(s);
        store_free(s);
        test_reopen_and_version();
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void)!system(cmd);
        return tap_done();
}
