# SPDX-License-Identifier: MIT
"""Two machines, one table: each reproduction of a way sync used to diverge, as a user meets it.
Machines A and B are two notebookd (own state, own socket), each behind its own fault proxy to one
dynalite on 127.0.0.1. Every case ends with both machines identical and equal to the table (the
boto3 reader, tests/tools/ddbcheck.py, attribute by attribute)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TAP, Daemon, Dynalite, FaultProxy, ctl, ddbcheck, dynamodb_test_env, short, tmo  # noqa: E402

t = TAP()
dynamodb_test_env(t, "AKIDRECONCILE", "reconcile-secret")

dyn = Dynalite(t).start()
rc, out, err = ctl("table", "create", "--endpoint", dyn.endpoint)
if rc != 0:
        t.ok(False, "table create", out + err)
        t.done()


def conf(endpoint, pull_s=1):
        return (f"[remote]\nendpoint = {endpoint}\ndebounce_ms = 50\nmax_delay_ms = 300\n"
                f"pull_interval_s = {pull_s}\nconnect_timeout_ms = 500\nrequest_timeout_ms = 2000\n")


class Machine:
        def __init__(self, name, pull_s=1):
                self.name = name
                self.proxy = FaultProxy(dyn.port, t).start()
                self.d = Daemon(t, config=conf(self.proxy.endpoint, pull_s))
                self.d.start()

        def rpc(self, method, params=None):
                return self.d.rpc(method, params or {})

        def call(self, method, params=None):
                return self.d.call(method, params or {})

        def status(self):
                return self.rpc("daemon.status")["sync"]

        def settled(self):
                st = self.status()
                return st["pending"] == 0 and st["in_flight"] == 0

        def notebooks(self, user):
                out = {}
                for nb in self.rpc("notebook.list", {"user_id": user})["notebooks"]:
                        # Sync may delete it between the list and the get.
                        got = self.call("notebook.get", {"user_id": user, "notebook_id": nb["id"]})
                        got = got.get("result", {}).get("notebook")
                        if got is None:
                                continue
                        for c in got["cells"]:
                                c.pop("status", None)  # local: the table keeps none
                        out[nb["id"]] = got
                return out

        def has(self, user, nb):
                return "result" in self.call("notebook.get", {"user_id": user, "notebook_id": nb})


A = Machine("A")
B = Machine("B")
MACHINES = (A, B)


def wait_for(cond, timeout=20):
        return harness.wait_for(cond, tmo(timeout), 0.1)


def converge(user, timeout=60):
        """Pulls everywhere until every machine is settled and they agree twice in a row."""
        last = None

        def agreed():
                nonlocal last
                for m in MACHINES:
                        m.rpc("sync.pull")
                if not all(m.settled() for m in MACHINES):
                        return False
                views = [m.notebooks(user) for m in MACHINES]
                same = all(v == views[0] for v in views)
                ok = same and views[0] == last
                last = views[0] if same else None
                return ok

        return wait_for(agreed, timeout)


def table_matches(m, user, absent=()):
        docs = "".join(json.dumps(nb) + "\n" for nb in
                       (m.rpc("notebook.get", {"user_id": user, "notebook_id": i})["notebook"]
                        for i in m.notebooks(user)))
        args = ["--user", user] + [a for nb in absent for a in ("--absent", nb)]
        rc, out, err = ddbcheck(dyn.endpoint, *args, "-", input=docs)
        return rc == 0, out + err


def identical(user, desc, absent=(), table=True):
        t.ok(converge(user), f"{desc}: both machines settle and agree",
             short({m.name: sorted(m.notebooks(user)) for m in MACHINES}))
        if table:
                good, report = table_matches(A, user, absent)
                t.ok(good, f"{desc}: the table holds exactly what they show", report)


def item(user, nb):
        st, r = dyn.call("GetItem", {"TableName": "notebooks", "ConsistentRead": True,
                                     "Key": {"user_id": {"S": user}, "notebook_id": {"S": nb}}})
        return r.get("Item")


def start_user(user):
        """Both machines know the user, agree, and hold what provisioning made once."""
        A.rpc("notebook.list", {"user_id": user})
        t.ok(wait_for(lambda: item(user, f"demo-{user}") and A.settled()), f"{user}: provisioned on A and pushed")
        B.rpc("notebook.list", {"user_id": user})
        identical(user, f"{user}: B joins")


@t.case("a delete on A reaches B; an edit on B made without seeing the delete survives it")
def _():
        u = "del"
        start_user(u)
        A.rpc("notebook.create", {"user_id": u, "notebook_id": "n1", "name": "one"})
        A.rpc("notebook.create", {"user_id": u, "notebook_id": "n2", "name": "two"})
        identical(u, "two notebooks on both")
        A.rpc("notebook.delete", {"user_id": u, "notebook_id": "n1"})
        t.ok(wait_for(lambda: not item(u, "n1")), "A's delete reaches the table")
        t.ok(wait_for(lambda: (B.rpc("sync.pull"), not B.has(u, "n1"))[1]), "B deletes n1 too")
        # B edits n2 while partitioned; A deletes n2 meanwhile. B's edit never saw the delete.
        B.proxy.set_rules([{"mode": "blackout", "refuse": True}])
        B.rpc("notebook.update", {"user_id": u, "notebook_id": "n2", "name": "renamed on B"})
        A.rpc("notebook.delete", {"user_id": u, "notebook_id": "n2"})
        t.ok(wait_for(lambda: not item(u, "n2")), "A's delete of n2 reaches the table")
        B.proxy.clear()
        identical(u, "after the partition")
        t.ok(all(m.has(u, "n2") for m in MACHINES), "n2 survives on both: B's edit did not see the delete")
        t.is_(A.rpc("notebook.get", {"user_id": u, "notebook_id": "n2"})["notebook"]["name"], "renamed on B",
              "with B's edit")
        t.ok(not any(m.has(u, "n1") for m in MACHINES) and not item(u, "n1"), "n1 stays deleted everywhere")


@t.case("an id deleted and created again continues above its revisions; the other machine takes it")
def _():
        u = "recreate"
        start_user(u)
        A.rpc("notebook.create", {"user_id": u, "notebook_id": "r", "name": "first"})
        for i in range(4):
                A.rpc("notebook.update", {"user_id": u, "notebook_id": "r", "name": f"first {i}"})
        identical(u, "r at revision 5 on both")
        before = B.rpc("notebook.get", {"user_id": u, "notebook_id": "r"})["notebook"]["revision"]
        A.rpc("notebook.delete", {"user_id": u, "notebook_id": "r"})
        t.ok(wait_for(lambda: not item(u, "r")), "deleted in the table")
        t.ok(wait_for(lambda: (A.rpc("sync.pull"), A.settled() and "r" not in A.notebooks(u))[1]),
             "A settles without r")
        rev = A.rpc("notebook.create", {"user_id": u, "notebook_id": "r", "name": "second"})["notebook"]["revision"]
        t.ok(rev > before, f"created again at revision {rev}, above {before}")
        identical(u, "after the re-create")
        t.is_(B.rpc("notebook.get", {"user_id": u, "notebook_id": "r"})["notebook"]["name"], "second",
              "B holds the new notebook")
        # demo.reset after a delete: the same rule.
        A.rpc("notebook.delete", {"user_id": u, "notebook_id": f"demo-{u}"})
        t.ok(wait_for(lambda: not item(u, f"demo-{u}")), "demo deleted in the table")
        A.rpc("demo.reset", {"user_id": u})
        identical(u, "after demo.reset")
        t.ok(all(m.has(u, f"demo-{u}") for m in MACHINES), "the demo is back on both")


@t.case("a lost answer, failing retries and a restart: our own write is never a conflict")
def _():
        u = "lost"
        start_user(u)
        A.rpc("notebook.create", {"user_id": u, "notebook_id": "l"})
        identical(u, "l on both")
        for k in range(10):
                # Every answer lost: each write lands, the daemon never hears of it.
                A.proxy.set_rules([{"mode": "drop_response", "target": "PutItem"},
                                   {"mode": "drop_response", "target": "GetItem"}])
                A.rpc("notebook.update", {"user_id": u, "notebook_id": "l", "name": f"try {k}"})
                t.ok(wait_for(lambda: A.proxy.rules()[0].get("hits", 0) >= 1, 10), f"round {k}: a write lands, unanswered")
        A.d.kill()
        A.proxy.clear()
        A.d.start()
        identical(u, "after the restart")
        st = A.status()
        t.ok(st["conflicts"] == 0 and st["unresolved"] == 0, "no conflict", short(st))
        t.is_(A.rpc("notebook.get", {"user_id": u, "notebook_id": "l"})["notebook"]["name"], "try 9",
              "the last edit stands")


@t.case("A's write lands unanswered, B builds on it, then the app updates in place: no conflict on A")
def _():
        u = "built"
        start_user(u)
        nb = f"demo-{u}"
        A.proxy.set_rules([{"mode": "drop_response", "target": "PutItem", "count": 1},
                           {"mode": "error", "status": 500}])
        A.rpc("cell.update", {"user_id": u, "notebook_id": nb, "cell_id": "demo-cell-1", "code": "x = 'A1'"})
        code = lambda it, i: it["cells"]["L"][i]["M"]["code"]["S"] if it else None  # noqa: E731
        t.ok(wait_for(lambda: code(item(u, nb), 0) == "x = 'A1'"), "A's write is in the table, its answer lost")
        t.ok(wait_for(lambda: (B.rpc("sync.pull"), B.notebooks(u)[nb]["cells"][0]["code"] == "x = 'A1'")[1]),
             "B pulls it")
        B.rpc("cell.update", {"user_id": u, "notebook_id": nb, "cell_id": "demo-cell-1", "code": "x = 'B2'"})
        B.rpc("cell.delete", {"user_id": u, "notebook_id": nb, "cell_id": "demo-cell-6"})
        t.ok(wait_for(lambda: B.settled() and code(item(u, nb), 0) == "x = 'B2'"), "B's edits on top of it go out")
        # The app updates the item in place, as the seed's backend does: A's token stays on it.
        st, r = dyn.call("UpdateItem", {"TableName": "notebooks",
                                        "Key": {"user_id": {"S": u}, "notebook_id": {"S": nb}},
                                        "UpdateExpression": "SET #n = :n, #r = #r + :one",
                                        "ExpressionAttributeNames": {"#n": "name", "#r": "revision"},
                                        "ExpressionAttributeValues": {":n": {"S": "named by the app"},
                                                                      ":one": {"N": "1"}}})
        t.ok(st == 200, "the app renames it with UpdateItem", short(r))
        A.proxy.clear()
        identical(u, "after A reconnects")
        got = A.rpc("notebook.get", {"user_id": u, "notebook_id": nb})["notebook"]
        ids = [c["id"] for c in got["cells"]]
        t.ok(got["cells"][0]["code"] == "x = 'B2'" and "demo-cell-6" not in ids and not [i for i in ids if "~" in i],
             "B's edit and delete stand, no conflict copy", short(ids))
        t.is_(got["name"], "named by the app", "the app's rename stands")
        t.is_(A.rpc("sync.conflicts", {"user_id": u})["conflicts"], [], "A lists no conflict")


@t.case("a notebook created, its first answer lost, then deleted: it does not come back")
def _():
        u = "ghost"
        start_user(u)
        A.proxy.set_rules([{"mode": "drop_response", "target": "PutItem", "body_contains": "ghostly", "count": 1},
                           {"mode": "error", "target": "PutItem", "body_contains": "ghostly", "status": 503}])
        A.rpc("notebook.create", {"user_id": u, "notebook_id": "ghostly"})
        t.ok(wait_for(lambda: item(u, "ghostly"), 10), "the first write landed (its answer lost)")
        A.rpc("notebook.delete", {"user_id": u, "notebook_id": "ghostly"})
        A.proxy.clear()
        identical(u, "after the delete", absent=["ghostly"])
        t.ok(not item(u, "ghostly") and not any(m.has(u, "ghostly") for m in MACHINES),
             "gone from the table and from both machines")
        time.sleep(tmo(2.5))
        identical(u, "still, two pulls later", absent=["ghostly"])


@t.case("both edit different cells and the same one: merged, one conflict, resolved on B, A follows")
def _():
        u = "merge"
        start_user(u)
        nb = f"demo-{u}"
        for m in MACHINES:
                m.proxy.set_rules([{"mode": "blackout", "refuse": True}])
        A.rpc("cell.update", {"user_id": u, "notebook_id": nb, "cell_id": "demo-cell-1", "code": "x = 'A'"})
        A.rpc("cell.update", {"user_id": u, "notebook_id": nb, "cell_id": "demo-cell-3", "code": "# A only"})
        B.rpc("cell.update", {"user_id": u, "notebook_id": nb, "cell_id": "demo-cell-1", "code": "x = 'B'"})
        B.rpc("cell.update", {"user_id": u, "notebook_id": nb, "cell_id": "demo-cell-5", "code": "# B only"})
        B.rpc("cell.delete", {"user_id": u, "notebook_id": nb, "cell_id": "demo-cell-6"})
        A.proxy.clear()
        # A retried at the outage pace while blacked out: its backoff may take a while to run out.
        t.ok(wait_for(lambda: A.settled(), 90), "A pushes first")
        B.proxy.clear()
        identical(u, "after both reconnect")
        got = A.rpc("notebook.get", {"user_id": u, "notebook_id": nb})["notebook"]
        codes = {c["id"]: c["code"] for c in got["cells"]}
        ids = [c["id"] for c in got["cells"]]
        t.ok(codes.get("demo-cell-3") == "# A only" and codes.get("demo-cell-5") == "# B only",
             "edits of different cells both kept", short(codes))
        t.ok("demo-cell-6" not in ids, "B's delete of an untouched cell holds", short(ids))
        copies = [i for i in ids if i.startswith("demo-cell-1~conflict-")]
        t.ok(codes.get("demo-cell-1") == "x = 'A'" and len(copies) == 1 and codes[copies[0]] == "x = 'B'"
             and ids.index(copies[0]) == ids.index("demo-cell-1") + 1,
             "the same cell: A's (first in the table) in place, B's as the copy right after it", short(ids))
        conflicts = B.rpc("sync.conflicts", {"user_id": u})["conflicts"]
        t.ok(len(conflicts) == 1 and conflicts[0].get("copy_id") in copies,
             "B lists the conflict", short(conflicts))
        t.is_(B.status()["unresolved"], 1, "B's status counts it")
        r = B.rpc("sync.resolve", {"user_id": u, "notebook_id": nb, "keep": "local"})
        t.is_(r.get("resolved"), 1, "B resolves, keeping its own version")
        identical(u, "after the resolution")
        got = A.rpc("notebook.get", {"user_id": u, "notebook_id": nb})["notebook"]
        codes = {c["id"]: c["code"] for c in got["cells"]}
        t.ok(codes.get("demo-cell-1") == "x = 'B'" and not [i for i in codes if "~conflict" in i],
             "A has B's choice, and no copy", short(codes))
        t.is_(B.rpc("sync.conflicts", {"user_id": u})["conflicts"], [], "nothing left to resolve")


@t.case("both rename the same notebook offline: the table's name stands, ours is a listed conflict")
def _():
        u = "rename"
        start_user(u)
        nb = f"blank-{u}"
        A.proxy.set_rules([{"mode": "blackout", "refuse": True}])
        A.rpc("notebook.update", {"user_id": u, "notebook_id": nb, "name": "name from A"})
        B.rpc("notebook.update", {"user_id": u, "notebook_id": nb, "name": "name from B"})
        t.ok(wait_for(lambda: B.settled() and item(u, nb)["name"]["S"] == "name from B"), "B's name reaches the table")
        A.proxy.clear()
        identical(u, "after A reconnects")
        t.is_(A.rpc("notebook.get", {"user_id": u, "notebook_id": nb})["notebook"]["name"], "name from B",
              "the table's name stands on both")
        conflicts = A.rpc("sync.conflicts", {"user_id": u})["conflicts"]
        t.ok([c for c in conflicts if c.get("field") == "name" and c.get("local") == "name from A"],
             "A lists its own name as a conflict", short(conflicts))


@t.case("both machines provision a user while offline: one blank, one demo, no conflict")
def _():
        u = "twin"
        for m in MACHINES:
                m.proxy.set_rules([{"mode": "blackout", "refuse": True}])
        A.rpc("notebook.list", {"user_id": u})
        time.sleep(0.2)
        B.rpc("notebook.list", {"user_id": u})
        # A edits its demo while still offline; B's stays untouched.
        A.rpc("cell.update", {"user_id": u, "notebook_id": f"demo-{u}", "cell_id": "demo-cell-1", "code": "x = 11"})
        for m in MACHINES:
                m.proxy.clear()
        identical(u, "after both reconnect")
        t.is_(sorted(A.notebooks(u)), [f"blank-{u}", f"demo-{u}"], "one blank, one demo")
        codes = {c["id"]: c["code"] for c in A.notebooks(u)[f"demo-{u}"]["cells"]}
        t.is_(codes.get("demo-cell-1"), "x = 11", "A's edit of the demo is kept")
        lists = [m.rpc("sync.conflicts", {"user_id": u})["conflicts"] for m in MACHINES]
        t.ok(lists == [[], []], "no conflict on either machine", short(lists))


@t.case("a new device deletes its untouched demo before its first pull: the demo goes everywhere")
def _():
        u = "newdel"
        A.rpc("notebook.list", {"user_id": u})
        t.ok(wait_for(lambda: item(u, f"demo-{u}") and A.settled()), "A provisioned the user and pushed")
        B.proxy.set_rules([{"mode": "blackout", "refuse": True}])
        B.rpc("notebook.list", {"user_id": u})
        B.rpc("notebook.delete", {"user_id": u, "notebook_id": f"demo-{u}"})
        B.proxy.clear()
        identical(u, "after B reconnects", absent=[f"demo-{u}"])
        t.ok(not item(u, f"demo-{u}") and not any(m.has(u, f"demo-{u}") for m in MACHINES),
             "the demo is gone from the table and both machines")
        t.ok(all(m.has(u, f"blank-{u}") for m in MACHINES), "the blank stays")


@t.case("a user the web backend made (items without sync_id): provisioning here pushes blank and demo")
def _():
        u = "webonly"
        w = {"user_id": {"S": u}, "notebook_id": {"S": "w1"}, "name": {"S": "from the app"},
             "db_conn_string": {"NULL": True}, "revision": {"N": "3"}, "cells": {"L": []},
             "created_at": {"S": "2026-12-01T00:00:00.000Z"}, "updated_at": {"S": "2026-12-01T00:00:00.000Z"}}
        st, r = dyn.call("PutItem", {"TableName": "notebooks", "Item": w})
        t.ok(st == 200, "the app writes a notebook straight to the table", short(r))
        A.rpc("notebook.list", {"user_id": u})
        t.ok(wait_for(lambda: item(u, f"demo-{u}") and item(u, f"blank-{u}")),
             "no device ever provisioned the user: A's blank and demo reach the table")
        B.rpc("notebook.list", {"user_id": u})
        # (ddbcheck expects every item to carry a sync_id: the app's does not.)
        identical(u, "B joins", table=False)
        t.is_(sorted(A.notebooks(u)), sorted([f"blank-{u}", f"demo-{u}", "w1"]), "both hold the three notebooks")
        t.is_(A.rpc("notebook.get", {"user_id": u, "notebook_id": "w1"})["notebook"]["name"], "from the app",
              "the app's notebook as the app wrote it")


@t.case("a missing table: retried at the outage pace, each notebook says why")
def _():
        proxy = FaultProxy(dyn.port, t).start()
        d = Daemon(t, config=conf(proxy.endpoint).replace("[remote]\n", "[remote]\ntable = absent\n"))
        d.start()
        try:
                d.rpc("notebook.list", {"user_id": "notable"})
                d.rpc("notebook.create", {"user_id": "notable", "notebook_id": "x"})
                st = wait_for(lambda: (lambda s: s if [n for n in s["notebooks"] if n["state"] == "error"] else None)(
                        d.rpc("daemon.status")["sync"]), 10)
                t.ok(st and all("table create" in (n.get("error") or "") for n in st["notebooks"]
                                if n["state"] == "error"), "each notebook's error names the missing table", short(st))
                before = proxy.stats().get("requests", 0)
                time.sleep(tmo(5))
                n = proxy.stats().get("requests", 0) - before
                t.ok(n <= 12, f"{n} requests in 5 s: the outage pace, not a spin", short(proxy.stats()))
                t.ok(st and st["pending"] == 0 and st["errors"] >= 1, "pending counts none of them; errors does",
                     short(st))
        finally:
                d.stop()


t.done()
