# SPDX-License-Identifier: MIT
"""Every protocol method through raw lines on the socket (doc/protocol.md)."""

import json
import os
import pwd
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TAP, Daemon, check_serving, req, short  # noqa: E402

t = TAP()
d = Daemon(t)
d.start()
c = d.client()

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NOTEBOOK_KEYS = {"id", "user_id", "name", "db_conn_string", "revision", "created_at", "updated_at", "ttl",
                 "demo_version", "cells"}
SUMMARY_KEYS = (NOTEBOOK_KEYS - {"cells"}) | {"cell_count"}
CELL_KEYS = {"id", "type", "code", "status", "stdout", "outputs", "error", "reads", "writes"}

DEMO = [
        ("demo-cell-1", [], ["x"]),
        ("demo-cell-2", ["x"], ["y"]),
        ("demo-cell-3", ["x", "y"], ["plt", "np", "t", "fig", "ax"]),
        ("demo-cell-4", ["x", "y"], ["pd", "df"]),
        ("demo-cell-5", ["df"], ["px", "line_chart"]),
        ("demo-cell-6", ["df"], ["alt", "bar_chart"]),
]


def call(method, params=None):
        return c.call(method, params)


def rpc(method, params=None):
        return c.rpc(method, params)


def get(user, nb):
        return rpc("notebook.get", {"user_id": user, "notebook_id": nb})["notebook"]


def err_code(reply):
        return (reply.get("error") or {}).get("code")


def err_data(reply):
        return (reply.get("error") or {}).get("data") or {}


def tick():
        # updated_at has millisecond resolution: make sure the next mutation gets a later one.
        time.sleep(0.003)


def mutated(before_rev, before_ts, res, desc):
        """A mutation result: revision +1, updated_at moved on."""
        t.is_(res.get("revision"), before_rev + 1, f"{desc}: revision +1")
        ts = res.get("updated_at")
        t.ok(isinstance(ts, str) and TS.match(ts) and ts > before_ts, f"{desc}: updated_at advanced",
             f"before {before_ts}, after {ts}")


@t.case("notebook.list provisions blank and demo once")
def _():
        r = rpc("notebook.list", {"user_id": "alice"})
        t.is_(r.get("user_id"), "alice", "list: user_id echoed")
        t.is_(r.get("provisioned"), True, "first list: provisioned=true")
        nbs = r.get("notebooks") or []
        t.is_([n.get("id") for n in nbs], ["blank-alice", "demo-alice"], "first list: blank and demo, in order")
        by = {n["id"]: n for n in nbs}
        for n in nbs:
                t.is_(set(n.keys()), SUMMARY_KEYS, f"summary {n['id']}: keys")
                t.is_(n.get("revision"), 1, f"summary {n['id']}: revision 1")
                t.ok(TS.match(n.get("created_at") or ""), f"summary {n['id']}: created_at format", n.get("created_at"))
                t.is_(n.get("user_id"), "alice", f"summary {n['id']}: user_id")
        t.is_(by.get("demo-alice", {}).get("cell_count"), 6, "demo: 6 cells")
        t.is_(by.get("blank-alice", {}).get("cell_count"), 1, "blank: 1 cell")
        t.is_(by.get("demo-alice", {}).get("demo_version"), 1, "demo: demo_version 1")
        t.is_(by.get("blank-alice", {}).get("demo_version"), None, "blank: demo_version null")

        r2 = rpc("notebook.list", {"user_id": "alice"})
        t.is_(r2.get("provisioned"), False, "second list: provisioned=false")
        t.is_(r2.get("notebooks"), nbs, "second list: same notebooks")

        demo = get("alice", "demo-alice")
        t.is_(set(demo.keys()), NOTEBOOK_KEYS, "demo notebook: keys")
        t.is_(demo.get("name"), "Demo Notebook", "demo: name")
        cells = demo.get("cells") or []
        t.is_([(x.get("id"), x.get("reads"), x.get("writes")) for x in cells],
              [(i, list(r), list(w)) for i, r, w in DEMO], "demo: six cells with reads/writes")
        t.ok(all(set(x.keys()) == CELL_KEYS for x in cells), "demo cells: keys", [sorted(x.keys()) for x in cells])
        t.ok(all(x["type"] == "python" and x["status"] == "idle" and x["outputs"] == [] and x["error"] is None
                 and x["stdout"] == "" for x in cells), "demo cells: python, idle, no outputs")
        t.is_(cells[0].get("code") if cells else None, "x = 10", "demo cell 1 code")
        blank = get("alice", "blank-alice")
        bc = blank.get("cells") or []
        t.ok(len(bc) == 1 and bc[0]["type"] == "python" and bc[0]["code"] == "", "blank: one empty python cell", bc)

        # Deleting does not bring them back.
        r = rpc("notebook.delete", {"user_id": "alice", "notebook_id": "demo-alice"})
        t.is_(r.get("notebook_id"), "demo-alice", "delete demo: notebook_id")
        r3 = rpc("notebook.list", {"user_id": "alice"})
        t.is_(r3.get("provisioned"), False, "list after deleting demo: provisioned=false")
        t.is_([n["id"] for n in r3.get("notebooks", [])], ["blank-alice"], "list after deleting demo: demo not re-created")
        rpc("notebook.delete", {"user_id": "alice", "notebook_id": "blank-alice"})
        r4 = rpc("notebook.list", {"user_id": "alice"})
        t.is_((r4.get("provisioned"), r4.get("notebooks")), (False, []), "list after deleting both: empty, not provisioned")

        # A privileged peer (root, or the daemon's own uid) without user_id acts for its login name.
        me = pwd.getpwuid(os.getuid()).pw_name
        r5 = rpc("notebook.list")
        t.is_(r5.get("user_id"), me, f"privileged peer without user_id acts as {me}")
        t.is_([n["id"] for n in r5.get("notebooks", [])], [f"blank-{me}", f"demo-{me}"], f"{me}: provisioned")


@t.case("notebook.list order: created_at, then id")
def _():
        U = "order"
        rpc("notebook.create", {"user_id": U, "notebook_id": "zz"})
        tick()
        rpc("notebook.create", {"user_id": U, "notebook_id": "aa"})
        tick()
        r = rpc("notebook.list", {"user_id": U})
        t.is_([n["id"] for n in r["notebooks"]], ["zz", "aa", f"blank-{U}", f"demo-{U}"],
              "list: by created_at, ties (the provisioned pair) by id")
        t.is_(r["provisioned"], True, "a user with notebooks of its own is still provisioned on its first list")


@t.case("notebook.create / get / update / delete")
def _():
        U = "carol"
        cells = [{"id": "c1", "code": "a = 1", "writes": ["a"]},
                 {"code": "select 1", "type": "sql", "reads": ["a"], "status": "success", "stdout": "out"}]
        r = rpc("notebook.create", {"user_id": U, "notebook_id": "nb1", "name": "First",
                                    "db_conn_string": "postgres://h/db", "ttl": 2000000000, "cells": cells})
        nb = r.get("notebook") or {}
        t.is_(set(nb.keys()), NOTEBOOK_KEYS, "create: notebook keys")
        t.is_((nb.get("id"), nb.get("user_id"), nb.get("name"), nb.get("db_conn_string"), nb.get("ttl"),
               nb.get("revision"), nb.get("demo_version")),
              ("nb1", U, "First", "postgres://h/db", 2000000000, 1, None), "create: fields, revision 1")
        t.ok(TS.match(nb.get("created_at") or "") and nb.get("created_at") == nb.get("updated_at"),
             "create: created_at == updated_at, ISO with ms", (nb.get("created_at"), nb.get("updated_at")))
        cs = nb.get("cells") or []
        t.is_(len(cs), 2, "create: two cells")
        if len(cs) == 2:
                t.is_(cs[0], {"id": "c1", "type": "python", "code": "a = 1", "status": "idle", "stdout": "",
                              "outputs": [], "error": None, "reads": [], "writes": ["a"]}, "create: cell 1 with defaults")
                t.ok(isinstance(cs[1].get("id"), str) and len(cs[1]["id"]) >= 8, "create: cell 2 gets an id", cs[1])
                t.is_((cs[1].get("type"), cs[1].get("code"), cs[1].get("status"), cs[1].get("stdout"), cs[1].get("reads")),
                      ("sql", "select 1", "success", "out", ["a"]), "create: cell 2 fields")
        t.is_(get(U, "nb1"), nb, "get returns what create returned")

        r = rpc("notebook.create", {"user_id": U})
        nb2 = r.get("notebook") or {}
        t.ok(re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", nb2.get("id") or ""),
             "create without id: a UUID", nb2.get("id"))
        t.is_((nb2.get("name"), nb2.get("db_conn_string"), nb2.get("ttl"), nb2.get("cells")), (None, None, None, []),
              "create without fields: nulls and no cells")
        t.error_is(call("notebook.create", {"user_id": U, "notebook_id": "nb1"}), -32014, "create existing id: -32014")

        lst = rpc("notebook.list", {"user_id": U})
        ids = [n["id"] for n in lst["notebooks"]]
        t.ok("nb1" in ids and nb2.get("id") in ids, "list shows created notebooks", ids)

        tick()
        r = rpc("notebook.update", {"user_id": U, "notebook_id": "nb1", "name": "Renamed"})
        s = r.get("notebook") or {}
        t.is_(set(s.keys()), SUMMARY_KEYS, "update: returns a summary")
        t.is_((s.get("name"), s.get("cell_count"), s.get("db_conn_string")), ("Renamed", 2, "postgres://h/db"),
              "update name: changed, others kept")
        mutated(1, nb["updated_at"], s, "update name")
        t.is_(s.get("created_at"), nb["created_at"], "update: created_at unchanged")
        tick()
        r = rpc("notebook.update", {"user_id": U, "notebook_id": "nb1", "db_conn_string": "sqlite:///x", "ttl": 5})
        s2 = r["notebook"]
        t.is_((s2.get("db_conn_string"), s2.get("ttl"), s2.get("name")), ("sqlite:///x", 5, "Renamed"),
              "update db_conn_string + ttl")
        mutated(2, s["updated_at"], s2, "update db_conn_string + ttl")
        tick()
        r = rpc("notebook.update", {"user_id": U, "notebook_id": "nb1", "name": None, "db_conn_string": None, "ttl": None})
        s3 = r["notebook"]
        t.is_((s3.get("name"), s3.get("db_conn_string"), s3.get("ttl")), (None, None, None), "update with nulls clears")
        mutated(3, s2["updated_at"], s3, "update clearing")
        g = get(U, "nb1")
        t.is_((g["name"], g["revision"], g["cells"]), (None, 4, nb["cells"]), "get after updates: cells untouched")
        t.error_is(call("notebook.update", {"user_id": U, "notebook_id": "nb1"}), -32602, "update without fields: -32602")
        t.is_(get(U, "nb1")["revision"], 4, "failed update changes nothing")

        tick()
        r = rpc("notebook.delete", {"user_id": U, "notebook_id": "nb1"})
        t.is_((r.get("notebook_id"), r.get("revision")), ("nb1", 5), "delete: notebook_id, revision +1")
        gr = call("notebook.get", {"user_id": U, "notebook_id": "nb1"})
        t.error_is(gr, -32010, "get after delete: -32010")
        t.is_(err_data(gr).get("notebook_id"), "nb1", "not found: data.notebook_id")
        ids = [n["id"] for n in rpc("notebook.list", {"user_id": U})["notebooks"]]
        t.ok("nb1" not in ids, "delete: gone from list", ids)
        t.error_is(call("notebook.delete", {"user_id": U, "notebook_id": "nb1"}), -32010, "delete again: -32010")
        t.error_is(call("notebook.update", {"user_id": U, "notebook_id": "nb1", "name": "x"}), -32010,
                   "update deleted: -32010")
        r = rpc("notebook.create", {"user_id": U, "notebook_id": "nb1", "name": "again"})
        t.is_(r["notebook"].get("revision"), 6, "re-create continues revision numbering")
        t.is_(r["notebook"].get("cells"), [], "re-created notebook is empty")


@t.case("cell.create at a position, after a cell, at the front")
def _():
        U = "dave"
        nb = rpc("notebook.create", {"user_id": U, "notebook_id": "cells"})["notebook"]
        rev, ts = nb["revision"], nb["updated_at"]

        def create(desc, exp_pos, **p):
                nonlocal rev, ts
                tick()
                r = rpc("cell.create", dict({"user_id": U, "notebook_id": "cells"}, **p))
                t.is_(r.get("notebook_id"), "cells", f"{desc}: notebook_id")
                t.is_(r.get("position"), exp_pos, f"{desc}: position {exp_pos}")
                mutated(rev, ts, r, desc)
                rev, ts = r.get("revision", rev + 1), r.get("updated_at", ts)
                return r.get("cell") or {}

        a = create("append to empty", 0, code="A")
        t.is_(set(a.keys()), CELL_KEYS, "cell.create: cell keys")
        t.is_((a.get("type"), a.get("status"), a.get("stdout"), a.get("outputs"), a.get("error"), a.get("reads"),
               a.get("writes")), ("python", "idle", "", [], None, [], []), "cell.create: defaults")
        create("append", 1, code="B")
        create("position 0", 0, code="F", position=0)
        create("after A", 2, code="M", after_cell_id=a["id"])
        create("after null (front)", 0, code="Z", after_cell_id=None)
        create("position == count (append)", 5, code="E", position=5)
        create("position in the middle", 3, code="Q", position=3, cell_id="q-cell", type="sql")
        codes = [x["code"] for x in get(U, "cells")["cells"]]
        t.is_(codes, ["Z", "F", "A", "Q", "M", "B", "E"], "cells in the expected order")

        def refused(desc, ecode, eparam=None, **p):
                r = call("cell.create", dict({"user_id": U, "notebook_id": "cells", "code": "bad"}, **p))
                t.error_is(r, ecode, desc, eparam)
                return r

        refused("position > count: -32602", -32602, "position", position=8)
        refused("position < 0: -32602", -32602, "position", position=-1)
        refused("position and after_cell_id: -32602", -32602, position=0, after_cell_id=a["id"])
        r = refused("after unknown cell: -32010", -32010, after_cell_id="nope")
        t.is_(err_data(r).get("cell_id"), "nope", "after unknown cell: data.cell_id")
        refused("existing cell_id: -32014", -32014, cell_id="q-cell")
        r = call("cell.create", {"user_id": U, "notebook_id": "missing", "code": "x"})
        t.error_is(r, -32010, "cell.create in unknown notebook: -32010")
        t.is_(err_data(r).get("notebook_id"), "missing", "data.notebook_id")
        g = get(U, "cells")
        t.is_(([x["code"] for x in g["cells"]], g["revision"]), (codes, rev), "refused creates change nothing")


@t.case("cell.update: every field")
def _():
        U = "erin"
        nb = rpc("notebook.create", {"user_id": U, "notebook_id": "upd",
                                     "cells": [{"id": "u0", "code": "first"}, {"id": "u1", "code": "x = 1"},
                                               {"id": "u2", "code": "last"}]})["notebook"]
        rev, ts = nb["revision"], nb["updated_at"]
        expect = dict(nb["cells"][1])

        def update(desc, **fields):
                nonlocal rev, ts
                tick()
                r = rpc("cell.update", dict({"user_id": U, "notebook_id": "upd", "cell_id": "u1"}, **fields))
                mutated(rev, ts, r, desc)
                rev, ts = r.get("revision", rev + 1), r.get("updated_at", ts)
                t.is_(r.get("position"), 1, f"{desc}: position")
                expect.update(fields)
                t.is_(r.get("cell"), expect, f"{desc}: cell as expected")
                return r

        update("code", code="y = 2\nprint(y)")
        update("type sql", type="sql")
        update("type python", type="python")
        for st in ("running", "success", "error", "idle"):
                update(f"status {st}", status=st)
        update("stdout", stdout="hello\nworld\n")
        outs = [{"mime_type": "text/plain", "data": "10", "metadata": {}},
                {"mime_type": "application/json", "data": {"a": [1, 2, {"b": None}], "s": "x"}, "metadata": {"k": "v"}},
                {"mime_type": "application/vnd.table", "data": [1, "two", {"three": 3.5}, [True, False]], "metadata": {}},
                {"mime_type": "image/png", "data": "iVBORw0KGgo=", "metadata": {"width": 10}}]
        update("outputs string/object/array data", outputs=outs)
        update("error set", error="Traceback (most recent call last):\nNameError: x")
        update("error clear", error=None)
        update("reads", reads=["a", "b"])
        update("writes", writes=["y", "z"])
        update("several fields at once", code="z = a + b", status="success", writes=["z"])
        tick()
        r = rpc("cell.update", {"user_id": U, "notebook_id": "upd", "cell_id": "u1", "reads": ["q", "p", "q", "p", "r"]})
        t.is_(r.get("cell", {}).get("reads"), ["q", "p", "r"], "reads: duplicates removed, order kept")
        expect["reads"] = ["q", "p", "r"]
        rev += 1
        update("outputs cleared", outputs=[])
        g = get(U, "upd")
        t.is_(g["cells"], [nb["cells"][0], expect, nb["cells"][2]], "get: updated cell stored, neighbours untouched")
        t.is_(g["revision"], rev, "get: revision")

        def refused(desc, ecode, eparam=None, **p):
                r = call("cell.update", dict({"user_id": U, "notebook_id": "upd", "cell_id": "u1"}, **p))
                t.error_is(r, ecode, desc, eparam)
                return r

        refused("no field: -32602", -32602)
        refused("bad type: -32602", -32602, "type", type="ruby")
        refused("bad status: -32602", -32602, "status", status="done")
        refused("code not a string: -32602", -32602, "code", code=5)
        refused("outputs not an array: -32602", -32602, "outputs", outputs={"mime_type": "text/plain"})
        refused("output without mime_type: -32602", -32602, "outputs", outputs=[{"data": "x", "metadata": {}}])
        refused("reads with a non-string: -32602", -32602, "reads", reads=["a", 1])
        refused("error not string/null: -32602", -32602, "error", error=5)
        r = call("cell.update", {"user_id": U, "notebook_id": "upd", "cell_id": "nope", "code": "x"})
        t.error_is(r, -32010, "unknown cell: -32010")
        t.is_(err_data(r).get("cell_id"), "nope", "unknown cell: data.cell_id")
        t.is_(get(U, "upd"), g, "refused updates change nothing")


@t.case("cell.delete and cell.move")
def _():
        U = "frank"
        nb = rpc("notebook.create", {"user_id": U, "notebook_id": "mv",
                                     "cells": [{"id": i, "code": i} for i in ("a", "b", "c", "d", "e")]})["notebook"]
        rev, ts = nb["revision"], nb["updated_at"]

        def order():
                return [x["id"] for x in get(U, "mv")["cells"]]

        tick()
        r = rpc("cell.delete", {"user_id": U, "notebook_id": "mv", "cell_id": "c"})
        t.is_(r.get("notebook_id"), "mv", "cell.delete: notebook_id")
        mutated(rev, ts, r, "cell.delete")
        rev, ts = rev + 1, r.get("updated_at", ts)
        t.is_(order(), ["a", "b", "d", "e"], "cell.delete: cell gone")
        r = call("cell.delete", {"user_id": U, "notebook_id": "mv", "cell_id": "c"})
        t.error_is(r, -32010, "cell.delete again: -32010")
        t.is_(err_data(r).get("cell_id"), "c", "cell.delete again: data.cell_id")

        def move(desc, exp_order, exp_pos, **p):
                nonlocal rev, ts
                tick()
                r = rpc("cell.move", dict({"user_id": U, "notebook_id": "mv"}, **p))
                mutated(rev, ts, r, desc)
                rev, ts = r.get("revision", rev + 1), r.get("updated_at", ts)
                t.is_(r.get("position"), exp_pos, f"{desc}: position")
                t.is_(order(), exp_order, f"{desc}: order")

        move("move to position 0", ["e", "a", "b", "d"], 0, cell_id="e", position=0)
        move("move to last position", ["a", "b", "d", "e"], 3, cell_id="e", position=3)
        move("move down to position 2", ["b", "d", "a", "e"], 2, cell_id="a", position=2)
        move("move after a cell", ["b", "a", "e", "d"], 3, cell_id="d", after_cell_id="e")
        move("move after a cell (upwards)", ["b", "e", "a", "d"], 1, cell_id="e", after_cell_id="b")
        move("move after null (front)", ["d", "b", "e", "a"], 0, cell_id="d", after_cell_id=None)
        move("move to its own position", ["d", "b", "e", "a"], 1, cell_id="b", position=1)

        def refused(desc, ecode, eparam=None, **p):
                t.error_is(call("cell.move", dict({"user_id": U, "notebook_id": "mv"}, **p)), ecode, desc, eparam)

        refused("move to position == count: -32602", -32602, "position", cell_id="a", position=4)
        refused("move after itself: -32602", -32602, None, cell_id="a", after_cell_id="a")
        refused("move without position or after_cell_id: -32602", -32602, None, cell_id="a")
        refused("move with both: -32602", -32602, None, cell_id="a", position=0, after_cell_id="b")
        refused("move unknown cell: -32010", -32010, None, cell_id="zz", position=0)
        refused("move after unknown cell: -32010", -32010, None, cell_id="a", after_cell_id="zz")
        g = get(U, "mv")
        t.is_(([x["id"] for x in g["cells"]], g["revision"]), (["d", "b", "e", "a"], rev), "refused moves change nothing")


@t.case("expected_revision: match succeeds, mismatch is -32011 and changes nothing")
def _():
        U = "gina"
        rpc("notebook.create", {"user_id": U, "notebook_id": "er", "cells": [{"id": "k1"}, {"id": "k2"}]})
        ops = [
                ("notebook.update", {"name": "n"}),
                ("cell.create", {"code": "new", "cell_id": "k3"}),
                ("cell.update", {"cell_id": "k1", "code": "changed"}),
                ("cell.move", {"cell_id": "k1", "position": 2}),
                ("cell.delete", {"cell_id": "k2"}),
        ]
        for method, p in ops:
                before = get(U, "er")
                cur = before["revision"]
                for bad in (cur - 1, cur + 1):
                        r = call(method, dict({"user_id": U, "notebook_id": "er", "expected_revision": bad}, **p))
                        t.error_is(r, -32011, f"{method} expected_revision {bad} (current {cur}): -32011")
                        t.is_(err_data(r).get("current_revision"), cur, f"{method} conflict: data.current_revision")
                t.is_(get(U, "er"), before, f"{method} conflict: nothing changed")
                r = rpc(method, dict({"user_id": U, "notebook_id": "er", "expected_revision": cur}, **p))
                got = r.get("revision", (r.get("notebook") or {}).get("revision"))
                t.is_(got, cur + 1, f"{method} with matching expected_revision: succeeds")
        cur = get(U, "er")["revision"]
        r = call("notebook.delete", {"user_id": U, "notebook_id": "er", "expected_revision": cur + 5})
        t.error_is(r, -32011, "notebook.delete mismatch: -32011")
        t.is_(err_data(r).get("current_revision"), cur, "notebook.delete conflict: data.current_revision")
        t.is_(get(U, "er")["revision"], cur, "notebook.delete conflict: still there")
        r = rpc("notebook.delete", {"user_id": U, "notebook_id": "er", "expected_revision": cur})
        t.is_(r.get("revision"), cur + 1, "notebook.delete with matching expected_revision")
        t.error_is(call("notebook.update", {"user_id": U, "notebook_id": "er", "name": "x", "expected_revision": "1"}),
                   -32602, "expected_revision not an integer: -32602", "expected_revision")


def edge_set(edges):
        return sorted((e.get("from"), e.get("to"), tuple(sorted(e.get("vars") or []))) for e in edges or [])


@t.case("notebook.graph: edges, order, cycles")
def _():
        U = "hank"
        cells = [
                {"id": "g1", "writes": ["a"]},
                {"id": "g2", "reads": ["a"], "writes": ["b", "e"]},
                {"id": "g3", "reads": ["b", "e", "d"], "writes": ["c"]},
                {"id": "g4", "reads": ["c"], "writes": ["d"]},
                {"id": "g5", "reads": ["x"], "writes": ["x"]},
                {"id": "g6", "reads": ["a", "c", "unknown"]},
        ]
        rpc("notebook.create", {"user_id": U, "notebook_id": "gr", "cells": cells})
        g = rpc("notebook.graph", {"user_id": U, "notebook_id": "gr"})
        t.is_((g.get("notebook_id"), g.get("revision")), ("gr", 1), "graph: notebook_id and revision")
        t.is_(edge_set(g.get("edges")),
              sorted([("g1", "g2", ("a",)), ("g2", "g3", ("b", "e")), ("g4", "g3", ("d",)), ("g3", "g4", ("c",)),
                      ("g1", "g6", ("a",)), ("g3", "g6", ("c",))]), "graph: edges (no self edge)")
        t.is_(g.get("cycles"), [["g3", "g4"]], "graph: one cycle, self-reading cell is not one")
        t.is_(g.get("order"), ["g1", "g2", "g5", "g6"], "graph: topological order of the cells not on a cycle")

        # Tie-break by notebook position: independent cells keep their order.
        rpc("notebook.create", {"user_id": U, "notebook_id": "gr2", "cells": [
                {"id": "p1", "reads": ["v"]}, {"id": "p2", "writes": ["w"]}, {"id": "p3", "writes": ["v"]},
                {"id": "p4", "reads": ["w"]}]})
        g = rpc("notebook.graph", {"user_id": U, "notebook_id": "gr2"})
        t.is_(edge_set(g.get("edges")), sorted([("p3", "p1", ("v",)), ("p2", "p4", ("w",))]), "graph 2: edges")
        t.is_(g.get("order"), ["p2", "p3", "p1", "p4"], "graph 2: order, ties by position")
        t.is_(g.get("cycles"), [], "graph 2: no cycles")

        rpc("notebook.list", {"user_id": U})
        g = rpc("notebook.graph", {"user_id": U, "notebook_id": f"demo-{U}"})
        t.is_(edge_set(g.get("edges")),
              sorted([("demo-cell-1", "demo-cell-2", ("x",)), ("demo-cell-1", "demo-cell-3", ("x",)),
                      ("demo-cell-2", "demo-cell-3", ("y",)), ("demo-cell-1", "demo-cell-4", ("x",)),
                      ("demo-cell-2", "demo-cell-4", ("y",)), ("demo-cell-4", "demo-cell-5", ("df",)),
                      ("demo-cell-4", "demo-cell-6", ("df",))]), "demo graph: edges")
        t.is_(g.get("order"), [f"demo-cell-{i}" for i in range(1, 7)], "demo graph: order")
        t.is_(g.get("cycles"), [], "demo graph: no cycles")
        g = rpc("notebook.graph", {"user_id": U, "notebook_id": f"blank-{U}"})
        t.is_((g.get("edges"), g.get("order"), g.get("cycles")), ([], ["blank-cell-1"], []), "blank graph")
        t.error_is(call("notebook.graph", {"user_id": U, "notebook_id": "nope"}), -32010, "graph of unknown notebook: -32010")


@t.case("demo.reset restores the demo")
def _():
        U = "ivan"
        rpc("notebook.list", {"user_id": U})
        orig = get(U, f"demo-{U}")
        rpc("notebook.update", {"user_id": U, "notebook_id": f"demo-{U}", "name": "mine"})
        rpc("cell.update", {"user_id": U, "notebook_id": f"demo-{U}", "cell_id": "demo-cell-1", "code": "x = 99",
                            "outputs": [{"mime_type": "text/plain", "data": "99", "metadata": {}}]})
        rpc("cell.delete", {"user_id": U, "notebook_id": f"demo-{U}", "cell_id": "demo-cell-4"})
        rpc("cell.create", {"user_id": U, "notebook_id": f"demo-{U}", "code": "extra"})
        rpc("cell.move", {"user_id": U, "notebook_id": f"demo-{U}", "cell_id": "demo-cell-6", "position": 0})
        cur = get(U, f"demo-{U}")["revision"]
        r = call("demo.reset", {"user_id": U, "expected_revision": cur - 1})
        t.error_is(r, -32011, "demo.reset with stale expected_revision: -32011")
        t.is_(err_data(r).get("current_revision"), cur, "demo.reset conflict: current_revision")
        tick()
        r = rpc("demo.reset", {"user_id": U, "expected_revision": cur})
        nb = r.get("notebook") or {}
        t.is_((nb.get("id"), nb.get("name"), nb.get("demo_version"), nb.get("cells")),
              (f"demo-{U}", orig["name"], orig["demo_version"], orig["cells"]), "demo.reset: content restored")
        t.is_(nb.get("revision"), cur + 1, "demo.reset: revision +1")
        t.is_(get(U, f"demo-{U}"), nb, "demo.reset: get agrees")
        d1 = rpc("notebook.delete", {"user_id": U, "notebook_id": f"demo-{U}"})
        r = rpc("demo.reset", {"user_id": U})
        nb = r.get("notebook") or {}
        t.is_((nb.get("cells"), nb.get("revision")), (orig["cells"], d1["revision"] + 1),
              "demo.reset after delete: recreated, numbering continues")
        ids = [n["id"] for n in rpc("notebook.list", {"user_id": U})["notebooks"]]
        t.ok(f"demo-{U}" in ids, "demo.reset after delete: listed again", ids)


@t.case("daemon.status")
def _():
        s = rpc("daemon.status")
        for k, typ in (("version", str), ("pid", int), ("uptime_sec", (int, float)), ("schema_version", int),
                       ("durability", str), ("sync", dict), ("connections", int), ("requests", int),
                       ("transactions", int), ("peer", dict), ("state_dir", str), ("database", str),
                       ("notebooks", int), ("users", int)):
                t.ok(isinstance(s.get(k), typ) and not isinstance(s.get(k), bool), f"status.{k} is {typ}", s.get(k))
        t.is_(s.get("pid"), d.proc.pid, "status: pid")
        t.ok(s.get("schema_version", 0) >= 1, "status: schema_version >= 1")
        t.is_(s.get("durability"), "full", "status: durability full by default")
        t.is_(s.get("sync"), {"mode": "local-only"}, "status: sync local-only")
        peer = s.get("peer") or {}
        t.is_((peer.get("uid"), peer.get("privileged")), (os.getuid(), True), "status: peer uid, privileged")
        t.ok(isinstance(peer.get("user_ids"), list), "status: peer.user_ids is a list", peer)
        t.is_(os.path.realpath(s.get("state_dir", "")), os.path.realpath(d.state_dir), "status: state_dir")
        t.is_(os.path.realpath(s.get("database", "")), os.path.realpath(d.db), "status: database")
        t.ok(s.get("connections", 0) >= 1, "status: counts this connection")
        rpc("notebook.list", {"user_id": "status-user"})
        s2 = rpc("daemon.status")
        t.is_(s2.get("users"), s.get("users", 0) + 1, "status: users +1 after a new user's first list")
        t.is_(s2.get("notebooks"), s.get("notebooks", 0) + 2, "status: notebooks +2 (blank, demo)")
        t.ok(s2.get("requests", 0) >= s.get("requests", 0) + 2, "status: requests counted", (s.get("requests"), s2.get("requests")))
        t.ok(s2.get("transactions", 0) > s.get("transactions", 0), "status: transactions counted")
        d2 = Daemon(t, durability="normal")
        d2.start()
        s3 = d2.rpc("daemon.status")
        t.is_(s3.get("durability"), "normal", "status: --durability normal")
        t.is_(d2.stop(), 0, "second daemon: SIGTERM, exit 0")


@t.case("pipelining: 200 requests in one write, answered in order")
def _():
        U = "pipe"
        rpc("notebook.create", {"user_id": U, "notebook_id": "p"})
        reqs, ids = [], []
        for i in range(200):
                rid = i if i % 2 == 0 else f"s-{i}"
                ids.append(rid)
                if i % 4 == 0:
                        reqs.append(req("notebook.get", {"user_id": U, "notebook_id": "p"}, rid))
                elif i % 4 == 3:
                        reqs.append(req("notebook.graph", {"user_id": U, "notebook_id": "p"}, rid))
                else:
                        reqs.append(req("cell.create", {"user_id": U, "notebook_id": "p", "code": f"c{i}"}, rid))
        with d.client() as pc:
                replies = pc.pipeline(reqs)
        t.is_([r.get("id") for r in replies], ids, "200 replies in request order with matching ids")
        t.ok(all(r.get("jsonrpc") == "2.0" and "result" in r for r in replies), "every reply a jsonrpc 2.0 result",
             [r for r in replies if "result" not in r][:3])
        revs = [r["result"]["revision"] for r, q in zip(replies, reqs) if q["method"] == "cell.create" and "result" in r]
        t.is_(revs, list(range(2, 2 + 100)), "cell.create revisions 2..101 in request order")
        seen = [r["result"]["notebook"]["revision"] for r, q in zip(replies, reqs)
                if q["method"] == "notebook.get" and "result" in r]
        t.ok(seen == sorted(seen) and len(seen) == 50, "gets observe a non-decreasing revision", seen)
        nb = get(U, "p")
        t.is_([x["code"] for x in nb["cells"]], [q["params"]["code"] for q in reqs if q["method"] == "cell.create"],
              "cells stored in request order")


@t.case("notifications get no reply but are executed")
def _():
        U = "notif"
        rpc("notebook.create", {"user_id": U, "notebook_id": "n"})
        with d.client() as nc:
                nc.send_obj(req("cell.create", {"user_id": U, "notebook_id": "n", "code": "from-notification"}))
                nc.send_obj(req("no.such.method", {}))
                nc.send_obj(req("cell.create", {"user_id": U, "notebook_id": "n", "bogus": 1}))
                nc.send_obj(req("notebook.get", {"user_id": U, "notebook_id": "n"}, id="after"))
                r = nc.read_reply()
                t.is_(r.get("id"), "after", "the first reply is for the request after three notifications")
                t.is_([x["code"] for x in r.get("result", {}).get("notebook", {}).get("cells", [])],
                      ["from-notification"], "notification was executed (before the next request)")
                nc.send_obj({"jsonrpc": "2.0", "id": None, "method": "daemon.status"})
                r = nc.read_reply()
                t.ok("id" in r and r["id"] is None and "result" in r, "id null is a request and gets a reply", r)
                try:
                        extra = nc.readline(timeout=0.3)
                except TimeoutError:
                        extra = b"(none)"
                t.is_(extra, b"(none)", "no stray replies")


@t.case("two users with the same notebook id are separate")
def _():
        a = rpc("notebook.create", {"user_id": "u-one", "notebook_id": "same", "name": "one's"})["notebook"]
        b = rpc("notebook.create", {"user_id": "u-two", "notebook_id": "same", "name": "two's",
                                    "cells": [{"id": "c", "code": "two"}]})["notebook"]
        t.is_((a["user_id"], b["user_id"]), ("u-one", "u-two"), "both created")
        t.is_(get("u-one", "same")["name"], "one's", "user one sees own notebook")
        t.is_(get("u-two", "same")["name"], "two's", "user two sees own notebook")
        rpc("cell.update", {"user_id": "u-two", "notebook_id": "same", "cell_id": "c", "code": "changed"})
        t.is_((get("u-one", "same")["revision"], get("u-one", "same")["cells"]), (1, []), "other user's edit not visible")
        rpc("notebook.delete", {"user_id": "u-one", "notebook_id": "same"})
        t.is_(get("u-two", "same")["cells"][0]["code"], "changed", "delete by one leaves the other's")
        t.error_is(call("cell.update", {"user_id": "u-one", "notebook_id": "same", "cell_id": "c", "code": "x"}), -32010,
                   "cell of the other user's notebook not found")


@t.case("group commit: a failing request in a batch undoes only itself")
def _():
        U = "batch"
        rpc("notebook.create", {"user_id": U, "notebook_id": "b", "cells": [{"id": "first"}]})
        P = {"user_id": U, "notebook_id": "b"}
        reqs = [
                req("cell.create", dict(P, cell_id="a", code="a"), 1),
                req("cell.create", dict(P, cell_id="first"), 2),                  # exists: -32014
                req("cell.create", dict(P, cell_id="b", code="b"), 3),
                req("cell.update", dict(P, cell_id="a", code="x", expected_revision=1), 4),  # stale: -32011
                req("notebook.create", {"user_id": U, "notebook_id": "half",
                                        "cells": [{"id": "h1"}, {"id": "h1"}]}, 5),  # duplicate ids: refused
                req("cell.move", dict(P, cell_id="nope", position=0), 6),         # -32010
                req("cell.create", dict(P, cell_id="c", code="c"), 7),
                req("cell.update", dict(P, cell_id="b", code="B"), 8),
        ]
        with d.client() as bc:
                reps = bc.pipeline(reqs)
        t.is_([r.get("id") for r in reps], list(range(1, 9)), "batch: replies in order")
        t.is_([(r.get("error") or {}).get("code") for r in reps], [None, -32014, None, -32011, (reps[4].get("error") or {}).get("code") or "no error", -32010, None, None],
              "batch: each request succeeds or fails on its own")
        t.ok((reps[4].get("error") or {}).get("code") in (-32014, -32602), "notebook.create with duplicate cell ids refused",
             reps[4])
        t.is_([r["result"]["revision"] for r in reps if "result" in r], [2, 3, 4, 5], "batch: revisions of the successes")
        nb = get(U, "b")
        t.is_([(x["id"], x["code"]) for x in nb["cells"]], [("first", ""), ("a", "a"), ("b", "B"), ("c", "c")],
              "batch: the successes stored, nothing of the failures")
        t.error_is(call("notebook.get", {"user_id": U, "notebook_id": "half"}), -32010, "refused create left nothing")


@t.case("numbers in outputs round-trip exactly")
def _():
        U = "num"
        rpc("notebook.create", {"user_id": U, "notebook_id": "n", "cells": [{"id": "c"}]})
        values = [0, -1, 1.5, 0.1, 0.30000000000000004, 1e-07, 123456789012, 9007199254740991,
                  -9007199254740991, 9.99e125, 1e-130, -2.5e-100, 123456789.12345678]
        # Every one of these is exactly a double: a store that keeps JSON numbers as doubles must
        # give back the same value (printing 17 significant digits where 15 do not round-trip).
        outs = [{"mime_type": "application/json", "data": {"v": values}, "metadata": {"m": values[4]}}]
        r = rpc("cell.update", {"user_id": U, "notebook_id": "n", "cell_id": "c", "outputs": outs})
        got = (r.get("cell", {}).get("outputs") or [{}])[0]
        bad = [(a, b) for a, b in zip(values, (got.get("data") or {}).get("v", [])) if a != b]
        t.ok(not bad and got.get("metadata") == outs[0]["metadata"], "cell.update reply: numbers exact (value, got)",
             short(bad))
        stored = get(U, "n")["cells"][0]["outputs"][0]
        bad = [(a, b) for a, b in zip(values, stored.get("data", {}).get("v", [])) if a != b]
        t.ok(not bad and stored.get("metadata") == outs[0]["metadata"], "notebook.get: numbers stored exactly (value, got)",
             short(bad))
        # What DynamoDB could not hold is refused, naming the parameter, and nothing changes.
        for v in (1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, 1e126, 12345678901234567890):
                r = call("cell.update", {"user_id": U, "notebook_id": "n", "cell_id": "c",
                                         "outputs": [{"mime_type": "application/json", "data": [v], "metadata": {}}]})
                t.error_is(r, -32602, f"{v!r}: refused", "outputs")
        t.is_(get(U, "n")["cells"][0]["outputs"][0], stored, "the stored outputs did not change")


def make_notebooks(conn, user, ids, **fields):
        """notebook.create for each id, pipelined over one connection; returns how many succeeded."""
        replies = conn.pipeline([req("notebook.create", dict({"user_id": user, "notebook_id": i}, **fields), id=k)
                                 for k, i in enumerate(ids)])
        return sum("result" in r for r in replies)


def list_all(conn, user, limit, between=None):
        """Follows next_cursor to the end; returns (ids in order, pages). between(page_no, reply) runs
        after each page but the last."""
        ids, pages, cursor = [], 0, None
        while True:
                p = {"user_id": user, "limit": limit}
                if cursor is not None:
                        p["cursor"] = cursor
                r = conn.rpc("notebook.list", p)
                pages += 1
                ids += [n["id"] for n in r["notebooks"]]
                cursor = r["next_cursor"]
                if cursor is None or pages > 10000:
                        return ids, pages
                if between:
                        between(pages, r)


@t.case("notebook.list pages: limit bounds, default 1000, next_cursor null at the end")
def _():
        U = "pager"
        rpc("notebook.list", {"user_id": U})
        t.is_(make_notebooks(c, U, [f"p{i:05d}" for i in range(2998)]), 2998, "2,998 notebooks made (3,000 with "
              "blank and demo)")
        r = rpc("notebook.list", {"user_id": U})
        t.is_(len(r["notebooks"]), 1000, "without limit a page holds 1000")
        t.ok(isinstance(r["next_cursor"], str) and r["next_cursor"], "and next_cursor is a string")
        t.is_(r["provisioned"], False, "provisioned false")
        r2 = rpc("notebook.list", {"user_id": U, "limit": 1000, "cursor": r["next_cursor"]})
        r3 = rpc("notebook.list", {"user_id": U, "limit": 1000, "cursor": r2["next_cursor"]})
        t.is_(len(r3["notebooks"]), 1000, "the third page is full")
        t.is_(r3["next_cursor"], None, "and the last: next_cursor null, nothing is left")
        whole = [n["id"] for n in r["notebooks"] + r2["notebooks"] + r3["notebooks"]]
        t.is_(len(set(whole)), 3000, "3,000 distinct notebooks over three pages")
        t.ok(whole[:2] == [f"blank-{U}", f"demo-{U}"] or sorted(whole[:2]) == [f"blank-{U}", f"demo-{U}"],
             "oldest first", short(whole[:3]))
        for k in (0, -1, 1001, 1.5, "10", None, True):
                t.error_is(call("notebook.list", {"user_id": U, "limit": k}), -32602, f"limit {k!r} is refused",
                           "limit")
        r = rpc("notebook.list", {"user_id": U, "limit": 1})
        t.is_(len(r["notebooks"]), 1, "limit 1: one notebook")
        ids, pages = list_all(c, U, 7)
        t.is_(ids, whole, "pages of 7: the same notebooks in the same order")
        t.is_(pages, (3000 + 6) // 7, "in ceil(3000 / 7) pages")
        ids, pages = list_all(c, U, 1000)
        t.is_(pages, 3, "exactly three pages of 1000: the last one says it is the last")
        empty = rpc("notebook.list", {"user_id": "pager-empty"})
        t.is_(len(empty["notebooks"]), 2, "a new user: blank and demo")
        t.is_(empty["next_cursor"], None, "one page, next_cursor null")
        t.is_(empty["provisioned"], True, "the first page provisions")


@t.case("notebook.list pages: creates and deletes between pages skip or repeat nothing")
def _():
        U = "pager-churn"
        rpc("notebook.list", {"user_id": U})
        base = [f"c{i:05d}" for i in range(3000)]
        t.is_(make_notebooks(c, U, base), 3000, "3,000 notebooks made")
        everyone = [f"blank-{U}", f"demo-{U}"] + base
        deleted, created = set(), []
        other = d.client()

        def churn(page, r):
                # From another connection: delete the last one sent, one further on, one already
                # sent; create new ones (some sorting before the cursor by id, same millisecond or
                # not).
                last = r["notebooks"][-1]["id"]
                victims = [last, base[min(len(base) - 1, 700 * page + 350)], base[max(0, 250 * page - 100)]]
                for v in victims:
                        if v not in deleted:
                                res = other.call("notebook.delete", {"user_id": U, "notebook_id": v})
                                if "result" in res:
                                        deleted.add(v)
                for k in range(3):
                        nid = f"{'a' if k == 0 else 'z'}-new-{page}-{k}"
                        if "result" in other.call("notebook.create", {"user_id": U, "notebook_id": nid}):
                                created.append(nid)

        ids, pages = list_all(c, U, 250, churn)
        other.close()
        throughout = [i for i in everyone if i not in deleted]
        seen = set(ids)
        t.is_(len(ids), len(seen), "no notebook listed twice")
        missing = [i for i in throughout if i not in seen]
        t.is_(missing, [], f"every notebook there throughout was listed ({len(throughout)} over {pages} pages)")
        t.ok(seen <= set(everyone) | set(created), "nothing listed that never existed")
        t.is_([i for i in ids if i in set(throughout)], throughout, "in created_at, id order")


@t.case("notebook.list: a cursor the daemon did not make, or another user's, is -32602 naming cursor")
def _():
        U = "pager-bad"
        rpc("notebook.list", {"user_id": U})
        make_notebooks(c, U, [f"b{i}" for i in range(5)])
        r = rpc("notebook.list", {"user_id": U, "limit": 2})
        good = r["next_cursor"]
        bad = ["", "x", "!!!!", good[:-1], good + "A", good[:-1] + ("A" if good[-1] != "A" else "B"),
               "W10", "WzEsInBhZ2VyLWJhZCJd", "a" * 20000, 12, None, ["x"], {"a": 1}]
        for b in bad:
                t.error_is(call("notebook.list", {"user_id": U, "cursor": b}), -32602, f"cursor {short(b, 40)!r}",
                           "cursor")
        t.error_is(call("notebook.list", {"user_id": "pager-other", "cursor": good}), -32602,
                   "another user's cursor", "cursor")
        r2 = rpc("notebook.list", {"user_id": U, "limit": 2, "cursor": good})
        t.is_([n["id"] for n in r2["notebooks"]], ["b0", "b1"], "the good cursor still works after all that")
        t.error_is(call("notebook.list", {"user_id": U, "page": 2}), -32602, "unknown parameters are still refused")
        # A cursor outlives its notebook: the next page starts after where it was.
        rpc("notebook.delete", {"user_id": U, "notebook_id": "b1"})
        r3 = rpc("notebook.list", {"user_id": U, "limit": 10, "cursor": r2["next_cursor"]})
        t.is_([n["id"] for n in r3["notebooks"]], ["b2", "b3", "b4"], "a cursor whose notebook was deleted")
        t.is_(r3["next_cursor"], None, "last page")


@t.case("request ids echoed exactly")
def _():
        with d.client() as ic:
                for rid in (0, -1, 1, 2**31, 2**53 - 1, -(2**53 - 1), "", "x" * 300, "\u00e9\u4e2d"):
                        ic.send(b'{"jsonrpc":"2.0","id":' + json.dumps(rid).encode()
                                + b',"method":"daemon.status"}\n')
                        r = ic.read_reply()
                        t.ok(r.get("id") == rid and type(r.get("id")) is type(rid) and "result" in r,
                             f"id {short(rid, 30)} echoed exactly", short(r, 200))
                for raw in (b"9007199254740993", b"9223372036854775807", b"-9223372036854775809"):
                        ic.send(b'{"jsonrpc":"2.0","id":' + raw + b',"method":"daemon.status"}\n')
                        line = ic.readline()
                        r = json.loads(line)
                        t.ok(("result" in r and line.startswith(b'{"jsonrpc":"2.0","id":' + raw + b",")) or
                             (r.get("error") or {}).get("code") == -32600,
                             f"id {raw.decode()} beyond 2^53: echoed exactly or -32600, never altered", line[:120])


@t.case("not found: -32010 everywhere")
def _():
        U = "nf"
        rpc("notebook.create", {"user_id": U, "notebook_id": "exists", "cells": [{"id": "c"}]})
        for method, p, key in (
                ("notebook.get", {"notebook_id": "x"}, "notebook_id"),
                ("notebook.update", {"notebook_id": "x", "name": "n"}, "notebook_id"),
                ("notebook.delete", {"notebook_id": "x"}, "notebook_id"),
                ("notebook.graph", {"notebook_id": "x"}, "notebook_id"),
                ("cell.create", {"notebook_id": "x"}, "notebook_id"),
                ("cell.update", {"notebook_id": "x", "cell_id": "c", "code": "1"}, "notebook_id"),
                ("cell.delete", {"notebook_id": "x", "cell_id": "c"}, "notebook_id"),
                ("cell.move", {"notebook_id": "x", "cell_id": "c", "position": 0}, "notebook_id"),
                ("cell.update", {"notebook_id": "exists", "cell_id": "x", "code": "1"}, "cell_id"),
                ("cell.delete", {"notebook_id": "exists", "cell_id": "x"}, "cell_id"),
                ("cell.move", {"notebook_id": "exists", "cell_id": "x", "position": 0}, "cell_id"),
        ):
                r = call(method, dict({"user_id": U}, **p))
                t.error_is(r, -32010, f"{method} on unknown {key}: -32010")
                t.is_(err_data(r).get(key), "x", f"{method}: data.{key}")
        t.is_(get(U, "exists")["revision"], 1, "nothing changed")
        check_serving(t, d)


def next_line(conn, timeout=0.5):
        """The next line the daemon sends, or None if none comes within timeout."""
        try:
                return conn.readline(timeout=timeout)
        except TimeoutError:
                return None


@t.case("notebook.watch: notifications after each committed change, until unwatch")
def _():
        U = "watcher"
        rpc("notebook.create", {"user_id": U, "notebook_id": "w1"})
        rpc("notebook.create", {"user_id": U, "notebook_id": "w2"})
        w = d.client()
        r = w.rpc("notebook.watch", {"user_id": U, "notebook_id": "w1"})
        t.is_(r, {"user_id": U, "notebook_id": "w1", "watching": True}, "watch one notebook")
        rev = rpc("notebook.update", {"user_id": U, "notebook_id": "w1", "name": "n"})["notebook"]["revision"]
        note = json.loads(w.readline(timeout=5))
        t.is_(note, {"jsonrpc": "2.0", "method": "notebook.changed",
                     "params": {"user_id": U, "notebook_id": "w1", "revision": rev, "deleted": False,
                                "origin": "local"}}, "a change by another client is announced, with its revision")
        rpc("notebook.update", {"user_id": U, "notebook_id": "w2", "name": "n"})
        extra = next_line(w)
        t.is_(extra, None, "a change to another notebook is not")
        t.is_(w.rpc("notebook.watch", {"user_id": U})["notebook_id"], None, "watch all the user's notebooks")
        t.is_(w.rpc("notebook.watch", {"user_id": U})["watching"], True, "watching twice is watching once")
        # The watcher's own change: the reply first, then the notification.
        w.send_obj(req("notebook.delete", {"user_id": U, "notebook_id": "w2"}, id=77))
        first, second = json.loads(w.readline(timeout=5)), json.loads(w.readline(timeout=5))
        t.is_(first.get("id"), 77, "the reply to a change comes before its notification")
        t.is_((second["params"]["notebook_id"], second["params"]["deleted"]), ("w2", True), "a delete is announced")
        # w1 is watched twice (alone and through the user): one notification per change.
        rpc("cell.create", {"user_id": U, "notebook_id": "w1"})
        json.loads(w.readline(timeout=5))
        extra = next_line(w)
        t.is_(extra, None, "one notification per change, however many watches match")
        t.is_(w.rpc("notebook.unwatch", {"user_id": U})["watching"], False, "unwatch the user")
        t.is_(w.rpc("notebook.unwatch", {"user_id": U, "notebook_id": "w1"})["watching"], False, "unwatch w1")
        t.is_(w.rpc("notebook.unwatch", {"user_id": U, "notebook_id": "never"})["watching"], False,
              "unwatching what is not watched is not an error")
        rpc("notebook.update", {"user_id": U, "notebook_id": "w1", "name": "m"})
        extra = next_line(w)
        t.is_(extra, None, "after unwatch, nothing")
        for i in range(64):
                w.rpc("notebook.watch", {"user_id": U, "notebook_id": f"n{i}"})
        t.error_is(w.call("notebook.watch", {"user_id": U, "notebook_id": "one-more"}), -32013,
                   "the 65th watch: -32013")
        t.is_(w.rpc("notebook.watch", {"user_id": U, "notebook_id": "n7"})["watching"], True,
              "at the limit, watching one of them again is still watching once")
        t.error_is(w.call("notebook.watch", {"user_id": U, "notebook_id": "x" * 129}), -32013,
                   "an oversize notebook_id: -32013")
        t.error_is(w.call("notebook.watch", {"user_id": U, "extra": 1}), -32602, "an unknown parameter: -32602")
        t.error_is(w.call("sync.pull"), -32030, "sync.pull without a remote: -32030")
        w.close()
        check_serving(t, d)


@t.case("notebook.watch: its reply comes before any notification, and each notification tells the revision of its change")
def _():
        U = "watch-order"
        c = d.client()
        c.rpc("notebook.create", {"user_id": U, "notebook_id": "wo", "cells": [{"id": "c"}]})
        stop = threading.Event()

        def writer():
                w = d.client()
                while not stop.is_set():
                        w.pipeline([w.request("cell.update", {"user_id": U, "notebook_id": "wo", "cell_id": "c",
                                                              "code": "x"}) for _ in range(20)])
                w.close()

        th = threading.Thread(target=writer)
        th.start()
        firsts = []
        try:
                for _ in range(20):
                        w = d.client()
                        w.send_obj(w.request("notebook.watch", {"user_id": U}, id="watch"))
                        firsts.append(json.loads(w.readline()))
                        w.close()
        finally:
                stop.set()
                th.join()
        bad = [f for f in firsts if f.get("id") != "watch"]
        t.ok(not bad, "20 watchers under a stream of writes: the first line each gets is its watch reply", short(bad))

        # The watcher's own pipelined writes: the k-th notification tells the revision of the k-th
        # write's reply (not a later one), and comes after it.
        w = d.client()
        w.rpc("notebook.watch", {"user_id": U, "notebook_id": "wo"})
        w.sock.sendall(b"".join(json.dumps(w.request("cell.update", {"user_id": U, "notebook_id": "wo",
                                                                      "cell_id": "c", "code": f"k{i}"})).encode() + b"\n"
                                for i in range(50)))
        replies, notes, early = [], [], []
        while len(replies) < 50 or len(notes) < 50:
                m = json.loads(w.readline())
                if m.get("method") == "notebook.changed":
                        notes.append(m["params"]["revision"])
                        if len(notes) > len(replies):
                                early.append(m["params"]["revision"])
                else:
                        replies.append(m["result"]["revision"])
        t.is_(notes, replies, "one notification per write, in order, each with its write's revision")
        t.is_(early, [], "no notification before the reply of the write it tells of")
        w.close()
        c.close()


@t.case("a watcher that does not read: its notifications are left out, then it is told so")
def _():
        U = "flood"
        rpc("notebook.create", {"user_id": U, "notebook_id": "f"})
        w = d.client()
        w.rpc("notebook.watch", {"user_id": U})
        # About 20,000 notifications of ~130 bytes: well past the 1 MiB backlog, while w reads none.
        writer = d.client()
        acked = 0
        for k in range(20):
                replies = writer.pipeline([req("notebook.update", {"user_id": U, "notebook_id": "f", "name": f"n{k}.{i}"},
                                               id=i) for i in range(1000)])
                acked += sum("result" in r for r in replies)
        t.is_(acked, 20000, "20,000 updates acknowledged meanwhile")
        kinds, lost_at = [], None
        while True:
                line = next_line(w, timeout=2)
                if line is None:
                        break
                msg = json.loads(line)
                kinds.append(msg.get("method"))
                if msg.get("method") == "notebook.changes_lost":
                        lost_at = len(kinds)
        # What waited for it is bounded by the backlog limit (1 MiB, plus what the socket holds).
        queued = kinds.count("notebook.changed")
        t.ok(queued < 15000, f"the notifications queued for it are bounded ({queued} of 20,000 changes)")
        t.ok(lost_at is not None and lost_at == len(kinds), "notebook.changes_lost comes last, after the backlog",
             short(kinds[-3:]))
        t.is_(w.rpc("notebook.get", {"user_id": U, "notebook_id": "f"})["notebook"]["name"], "n19.999",
              "the watcher's connection still serves it")
        rpc("notebook.update", {"user_id": U, "notebook_id": "f", "name": "after"})
        note = json.loads(w.readline(timeout=5))
        t.is_(note.get("method"), "notebook.changed", "and it is told of later changes again")
        w.close()
        writer.close()


c.close()
t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
