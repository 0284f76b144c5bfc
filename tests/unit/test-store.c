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
        bool prov, more;

        is_int(store_provision(s, "alice", &prov), 0, "first provisioning");
        ok(prov, "provisions");
        is_int(store_notebook_list(s, "alice", NULL, MAX_LIST_PAGE, &list, &more), 0, "list");
        is_int(cJSON_GetArraySize(list), 2, "blank and demo exist");
        ok(!more, "and nothing more");
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

/* Pages follow the key of the last row: rows deleted or created between pages do not make the
 * next page skip or repeat a notebook that was there throughout. */
static void test_list_pages(Store *s)
{
        StoreMut m = STORE_MUT_INIT;
        char id[32], at[64], key_id[32];
        StoreListKey key = { at, key_id };
        unsigned seen[30] = { 0 }, pages = 0;
        bool more = true, first = true;

        for (unsigned i = 0; i < 30; i++) {
                snprintf(id, sizeof(id), "p%02u", i);
                if (store_notebook_create(s, "pager", id, NULL, NULL, NULL) < 0)
                        break;
        }
        while (more && pages < 20) {
                _cleanup_(cJSON_Deletep) cJSON *list = NULL;
                const cJSON *n;
                int count;

                if (store_notebook_list(s, "pager", first ? NULL : &key, 7, &list, &more) < 0)
                        break;
                first = false;
                pages++;
                count = cJSON_GetArraySize(list);
                ok(count <= 7, "a page holds at most its limit");
                cJSON_ArrayForEach(n, list)
                {
                        unsigned k;

                        if (sscanf(cJSON_GetObjectItem(n, "id")->valuestring, "p%u", &k) == 1 && k < 30)
                                seen[k]++;
                }
                if (count == 0)
                        break;
                n = cJSON_GetArrayItem(list, count - 1);
                snprintf(at, sizeof(at), "%s", cJSON_GetObjectItem(n, "created_at")->valuestring);
                snprintf(key_id, sizeof(key_id), "%s", cJSON_GetObjectItem(n, "id")->valuestring);
                /* Between pages: the last row sent and one not yet sent go, a new one comes. */
                (void)store_notebook_delete(s, "pager", key_id, &m);
                m = (StoreMut)STORE_MUT_INIT;
                snprintf(id, sizeof(id), "p%02u", 29 - pages);
                (void)store_notebook_delete(s, "pager", id, &m);
                m = (StoreMut)STORE_MUT_INIT;
                snprintf(id, sizeof(id), "new%u", pages);
                (void)store_notebook_create(s, "pager", id, NULL, NULL, NULL);
        }
        ok(!more, "the last page says so");
        for (unsigned i = 0; i < 30; i++)
                if (seen[i] != 1 && i < 29 - pages) {
                        ok(false, "notebook p%02u there throughout seen %u times", i, seen[i]);
                        return;
                }
        ok(true, "every notebook there throughout was listed once, over %u pages", pages);
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
        is_int(store_notebook_update(s, "alice", "n1", &m, fields, NULL, &sum), 0,
               "update at the expected revision");
        is_int(m.revision, 2, "revision went up by one");
        is_str(cJSON_GetObjectItem(sum, "name")->valuestring, "First", "name was set");

        m = (StoreMut)STORE_MUT_INIT;
        m.expected_revision = 1;
        is_int(store_notebook_update(s, "alice", "n1", &m, fields, NULL, NULL), -ESTALE,
               "stale revision conflicts");
        is_int(m.revision, 2, "the conflict carries the current revision");
        is_int(revision_of(s, "alice", "n1"), 2, "a conflict changes nothing");

        m = (StoreMut)STORE_MUT_INIT;
        is_int(store_notebook_delete(s, "alice", "n1", &m), 0, "delete");
        is_int(m.revision, 3, "delete is a revision too");
        is_int(store_notebook_get(s, "alice", "n1", &sum), -ENOENT, "deleted notebook is gone");
        m = (StoreMut)STORE_MUT_INIT;
        is_int(store_notebook_update(s, "alice", "n1", &m, fields, NULL, NULL), -ENOENT,
               "and cannot be updated");
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
        is_int(store_notebook_update(s, "alice", "n1", &m, fields, NULL, NULL), 0, "a write inside it");
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

/* The notebooks store_sync_unsynced() lists, as "user/id user/id ...". */
static const char *unsynced_ids(Store *s, const char *user_id)
{
        static char buf[512];
        _cleanup_(cJSON_Deletep) cJSON *list = NULL;
        const cJSON *o;

        buf[0] = 0;
        if (store_sync_unsynced(s, user_id, 100, &list) < 0)
                return "(failed)";
        cJSON_ArrayForEach(o, list)
        {
                size_t n = strlen(buf);

                snprintf(buf + n, sizeof(buf) - n, "%s%s/%s", n ? " " : "",
                         cJSON_GetObjectItem(o, "user_id")->valuestring,
                         cJSON_GetObjectItem(o, "notebook_id")->valuestring);
        }
        return buf;
}

static void test_sync(Store *s)
{
        _cleanup_(cJSON_Deletep) cJSON *dirty = NULL, *nb = NULL, *fields = cJSON_CreateObject(),
                                       *remote = NULL, *unsynced = NULL, *users = NULL, *known = NULL,
                                       *conflicts = NULL, *local_name = cJSON_CreateString("ours");
        StoreSyncInfo info = { 0 };
        StoreMut m = STORE_MUT_INIT;
        char tok[UUID_STRING_MAX];
        int64_t rev = 0;
        uint64_t e1 = 0, e2 = 0;

        store_notebook_create(s, "sync", "s1", NULL, NULL, NULL);
        is_int(store_sync_dirty(s, 1000, &dirty), 0, "list dirty notebooks");
        ok(json_has(dirty, "[\"sync\",\"s1\"]"), "a new notebook is dirty");
        is_int(store_sync_read(s, "sync", "s1", &nb, &info), 0, "read for sync");
        is_int(info.base_revision, -1, "never on the remote");
        ok(info.dirty && !info.deleted && !info.delete_done && nb, "dirty, live, with its content");
        store_sync_info_done(&info);
        cJSON_Delete(TAKE_PTR(nb));

        /* The ledger: one token per revision sent, reused by a retry, kept until confirmed. */
        is_int(store_sync_token(s, "sync", "s1", 1, "tok-1", tok), 1, "a fresh token for revision 1");
        is_str(tok, "tok-1", "recorded as given");
        is_int(store_sync_token(s, "sync", "s1", 1, "tok-other", tok), 0, "a retry of revision 1 ...");
        is_str(tok, "tok-1", "... reuses its token");
        is_int(store_sync_token_revision(s, "sync", "s1", "tok-1", &rev), 1, "tok-1 is ours");
        is_int(rev, 1, "and carried revision 1");
        is_int(store_sync_token_revision(s, "sync", "s1", "tok-other", NULL), 0, "tok-other is not");
        is_int(store_sync_token_revision(s, "sync", "s1", NULL, NULL), 0, "no token is not ours");
        cJSON_AddStringToObject(fields, "name", "edited meanwhile");
        is_int(store_notebook_update(s, "sync", "s1", &m, fields, NULL, NULL), 0,
               "an edit while the write is in flight");
        is_int(store_sync_token(s, "sync", "s1", 2, "tok-2", tok), 1, "revision 2 gets a token of its own");
        is_int(store_sync_tokens_count(s, "sync", "s1"), 2, "two tokens unconfirmed");

        is_int(store_sync_confirm(
                       s, "sync", "s1",
                       &(StoreBase){ .revision = 1, .sync_id = "tok-1", .snapshot = "{}", .gen = 5 }, true,
                       "pending"),
               0, "revision 1 confirmed, still dirty");
        store_sync_read(s, "sync", "s1", NULL, &info);
        ok(info.dirty && info.base_revision == 1 && streq_ptr(info.base_sync_id, "tok-1") &&
                   info.base_gen == 5,
           "base moved to (1, tok-1) at generation 5");
        store_sync_info_done(&info);
        is_int(store_sync_tokens_count(s, "sync", "s1"), 0, "a confirmed base drops every token");
        is_int(store_sync_confirm(
                       s, "sync", "s1",
                       &(StoreBase){ .revision = 2, .sync_id = "tok-2", .snapshot = "{}", .gen = 6 }, false,
                       "synced"),
               0, "revision 2 confirmed, clean");
        store_sync_read(s, "sync", "s1", NULL, &info);
        ok(!info.dirty && info.base_revision == 2, "clean at base 2");
        is_str(info.sync_state, "synced", "state synced");
        store_sync_info_done(&info);

        /* The remote's version replaces ours or arrives; a merge is stored dirty. */
        remote = cJSON_Parse(
                "{\"id\":\"s1\",\"user_id\":\"sync\",\"name\":\"from remote\",\"revision\":7,"
                "\"created_at\":\"2026-01-01T00:00:00.000Z\",\"updated_at\":\"2026-01-02T00:00:00.000Z\","
                "\"cells\":[{\"id\":\"r\",\"type\":\"sql\",\"code\":\"select 1\",\"status\":\"idle\","
                "\"stdout\":\"\",\"outputs\":[],\"error\":null,\"reads\":[],\"writes\":[]}]}");
        is_int(store_sync_replace(s, remote,
                                  &(StoreBase){ .revision = 7, .sync_id = "x7", .snapshot = "{}", .gen = 8 },
                                  false, "synced"),
               0, "the remote version replaces the notebook");
        is_int(revision_of(s, "sync", "s1"), 7, "at the remote revision");
        is_str(cell_order(s, "sync", "s1"), "r", "with the remote cells");
        cJSON_ReplaceItemInObject(remote, "id", cJSON_CreateString("s2"));
        is_int(store_sync_replace(s, remote,
                                  &(StoreBase){ .revision = 7, .sync_id = NULL, .snapshot = "{}", .gen = 8 },
                                  false, "synced"),
               0, "a notebook only the remote had arrives");
        is_int(store_notebook_exists(s, "sync", "s2"), 1, "and is listed");
        cJSON_ReplaceItemInObject(remote, "revision", cJSON_CreateNumber(9));
        is_int(store_sync_replace(s, remote,
                                  &(StoreBase){ .revision = 8, .sync_id = "x8", .snapshot = "{}", .gen = 9 },
                                  true, "pending"),
               0, "a merge at revision 9 on base 8");
        store_sync_read(s, "sync", "s2", NULL, &info);
        ok(info.dirty && info.revision == 9 && info.base_revision == 8, "dirty at 9, base 8");
        store_sync_info_done(&info);

        /* Conflicts are listed and dropped. */
        is_int(store_sync_conflict_add(s, "sync", "s2", "cell:r", "r~conflict", NULL), 0, "a cell conflict");
        is_int(store_sync_conflict_add(s, "sync", "s2", "field:name", NULL, local_name), 0,
               "a field conflict");
        is_int(store_sync_conflicts(s, "sync", NULL, 100, &conflicts), 0, "list conflicts");
        ok(json_has(conflicts, "\"cell_id\":\"r\"") && json_has(conflicts, "\"copy_id\":\"r~conflict\"") &&
                   json_has(conflicts, "\"field\":\"name\"") && json_has(conflicts, "\"local\":\"ours\""),
           "both listed with what they keep");
        is_int(store_sync_unsynced(s, NULL, 100, &unsynced), 0, "list what is not in sync");
        ok(json_has(unsynced, "\"conflicts\":2"), "the notebook shows 2 conflicts");

        /* Listed: what is dirty, in error, or has conflicts to resolve; per user when asked. */
        is_int(store_sync_confirm(
                       s, "sync", "s2",
                       &(StoreBase){ .revision = 9, .sync_id = "x9", .snapshot = "{}", .gen = 10 }, false,
                       "synced"),
               0, "s2 in sync, its conflicts still to resolve");
        is_int(store_sync_set_state(s, "sync", "s1", "error", "refused"), 0, "s1 clean, in error");
        store_notebook_create(s, "other", "o1", NULL, NULL, NULL);
        store_notebook_create(s, "other", "o2", NULL, NULL, NULL);
        is_int(store_sync_confirm(
                       s, "other", "o2",
                       &(StoreBase){ .revision = 1, .sync_id = "y1", .snapshot = "{}", .gen = 10 }, false,
                       "synced"),
               0, "o2 clean and in sync");
        ok(strstr(unsynced_ids(s, NULL), "other/o1 ") && strstr(unsynced_ids(s, NULL), " sync/s1 sync/s2") &&
                   !strstr(unsynced_ids(s, NULL), "other/o2"),
           "all users: dirty, error and conflicts, in order");
        is_str(unsynced_ids(s, "sync"), "sync/s1 sync/s2", "one user's");
        is_str(unsynced_ids(s, "other"), "other/o1", "the other's: the dirty one, not the one in sync");
        is_int(store_sync_set_state(s, "sync", "s1", "synced", NULL), 0, "s1 back in sync");
        is_int(store_notebook_delete(s, "other", "o1", &(StoreMut)STORE_MUT_INIT), 0, "o1 deleted");
        is_str(unsynced_ids(s, "sync"), "sync/s2", "one in sync again is not");
        is_str(unsynced_ids(s, "other"), "other/o1", "a tombstone still to go is");
        is_int(store_sync_conflict_drop(s, "sync", "s2", "field:name"), 1, "one resolved");
        is_int(store_sync_conflict_drop(s, "sync", "s2", NULL), 1, "the rest dropped");

        /* Deleted elsewhere while edited here: the edit stays, new to the remote. */
        is_int(store_sync_detach(s, "sync", "s2", "pending", "deleted elsewhere"), 0, "detach");
        store_sync_read(s, "sync", "s2", NULL, &info);
        ok(info.dirty && info.base_revision == -1 && !info.base_sync_id, "dirty, no base");
        store_sync_info_done(&info);

        /* Deletes: a tombstone whose remote delete is done waits for a pull, then goes; the id keeps
         * counting above its old revisions when created again. */
        m = (StoreMut)STORE_MUT_INIT;
        store_notebook_delete(s, "sync", "s1", &m);
        store_sync_read(s, "sync", "s1", &nb, &info);
        ok(info.deleted && nb == NULL, "a deleted notebook is a tombstone without content");
        store_sync_info_done(&info);
        is_int(store_sync_deleted(s, "sync", "s1", 12, "synced"), 0, "remote delete done");
        store_sync_read(s, "sync", "s1", NULL, &info);
        ok(info.deleted && info.delete_done && !info.dirty && info.base_gen == 12 && info.base_revision == 7,
           "the tombstone stays, delete done at generation 12, base kept");
        store_sync_info_done(&info);
        is_int(store_sync_known(s, "sync", &known), 0, "notebooks the remote has had");
        ok(json_has(known, "\"s1\""), "include the tombstone");
        is_int(store_sync_remove(s, "sync", "s1"), 0, "a pull agrees: removed");
        is_int(store_sync_read(s, "sync", "s1", &nb, &info), -ENOENT, "the tombstone is gone");
        store_notebook_create(s, "sync", "s1", NULL, NULL, NULL);
        is_int(revision_of(s, "sync", "s1"), 9, "created again, it continues above revision 8");

        /* A tombstone revived after its delete went through is new to the remote. */
        store_notebook_create(s, "sync", "s3", NULL, NULL, NULL);
        store_sync_confirm(s, "sync", "s3",
                           &(StoreBase){ .revision = 1, .sync_id = "t", .snapshot = "{}", .gen = 3 }, false,
                           "synced");
        m = (StoreMut)STORE_MUT_INIT;
        store_notebook_delete(s, "sync", "s3", &m);
        store_sync_deleted(s, "sync", "s3", 4, "synced");
        store_notebook_create(s, "sync", "s3", NULL, NULL, NULL);
        store_sync_read(s, "sync", "s3", NULL, &info);
        ok(!info.deleted && info.dirty && info.base_revision == -1 && info.base_gen == 4 &&
                   info.revision == 3,
           "revived: revision 3, no base, generation kept");
        store_sync_info_done(&info);

        is_int(store_sync_next_epoch(s, &e1), 0, "an epoch");
        is_int(store_sync_next_epoch(s, &e2), 0, "another");
        ok(e2 == e1 + 1, "epochs grow");
        is_int(store_sync_users(s, &users), 0, "known users");
        ok(json_has(users, "\"sync\""), "include users with notebooks");
}

/* A database of schema 1 with a synced notebook and a write in flight: version 2 names the base by
 * its token and keeps the token in the ledger. */
static void test_migrate_v1(void)
{
        char path[sizeof(dir) + 16];
        char err[256];
        sqlite3 *db = NULL;
        Store *s = NULL;
        StoreSyncInfo info = { 0 };
        int64_t rev = 0;

        snprintf(path, sizeof(path), "%s/v1.db", dir);
        ok(sqlite3_open(path, &db) == SQLITE_OK &&
                   sqlite3_exec(db, store_migrations[0].sql, NULL, NULL, NULL) == SQLITE_OK &&
                   sqlite3_exec(
                           db,
                           "PRAGMA user_version = 1; INSERT INTO notebooks (user_id, id, revision, "
                           "created_at, "
                           "updated_at, dirty, base_revision, base_snapshot, sync_id, sync_state) VALUES "
                           "('u', 'n', 4, 'x', 'x', 1, 3, '{\"sync_id\":{\"S\":\"abc\"}}', 'tok', "
                           "'syncing')",
                           NULL, NULL, NULL) == SQLITE_OK,
           "a schema 1 database");
        sqlite3_close(db);
        ok(store_open(path, true, &s, err, sizeof(err)) == 0, "opens and migrates");
        if (!s)
                return;
        is_int(store_schema_version(s), (int)store_migrations[store_migrations_count - 1].version,
               "to the latest schema");
        {
                StoreStats st = { -1, -1 };

                is_int(store_stats(s, &st), 0, "stats");
                ok(st.notebooks == 1 && st.users == 0, "counts start from what the database holds");
        }
        is_int(store_sync_read(s, "u", "n", NULL, &info), 0, "the notebook is there");
        ok(info.base_revision == 3 && streq_ptr(info.base_sync_id, "abc") && info.dirty,
           "base (3, abc), still dirty");
        store_sync_info_done(&info);
        is_int(store_sync_token_revision(s, "u", "n", "tok", &rev), 1,
               "the token in flight is in the ledger");
        is_int(rev, 4, "with the notebook's revision");
        store_free(s);
}

static int64_t count_sql(sqlite3 *db, const char *sql)
{
        sqlite3_stmt *st = NULL;
        int64_t n = -1;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return n;
}

/* The counts of status, kept by triggers, against counting the rows, after every kind of change
 * the tests above made (creates, deletes, revivals, sync inserts and removals), and across a
 * rolled-back savepoint. */
static void test_counts(Store *s)
{
        StoreStats st = { -1, -1 }, st2 = { -1, -1 };
        sqlite3 *db = NULL;

        ok(sqlite3_open(db_path, &db) == SQLITE_OK, "a second connection");
        is_int(store_stats(s, &st), 0, "stats");
        ok(st.notebooks > 0 &&
                   st.notebooks == count_sql(db, "SELECT count(*) FROM notebooks WHERE deleted = 0"),
           "live notebooks: %lld", (long long)st.notebooks);
        ok(st.users > 0 && st.users == count_sql(db, "SELECT count(*) FROM users"), "users: %lld",
           (long long)st.users);
        sqlite3_close(db);

        store_begin(s);
        store_savepoint(s);
        (void)store_notebook_create(s, "counter", "gone", NULL, NULL, NULL);
        (void)store_provision(s, "counter", &(bool){ false });
        store_rollback_to(s);
        store_release(s);
        store_commit(s);
        is_int(store_stats(s, &st2), 0, "stats again");
        ok(st2.notebooks == st.notebooks && st2.users == st.users, "a rolled-back savepoint counts nothing");
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
        is_int(store_schema_version(s), (int)store_migrations[store_migrations_count - 1].version,
               "at the latest schema version");
        test_provision(s);
        test_revisions(s);
        test_cells(s);
        test_list_pages(s);
        test_renumber(s);
        test_cell_limit(s);
        test_savepoints(s);
        test_sync(s);
        test_counts(s);
        store_free(s);
        test_reopen_and_version();
        test_migrate_v1();
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void)!system(cmd);
        return tap_done();
}
