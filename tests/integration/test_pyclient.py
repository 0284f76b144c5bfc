# SPDX-License-Identifier: MIT
"""The Python client (client/python, package notebookd) against a real daemon: every method with
the blocking and the asyncio client, typed errors, pipelined calls from many tasks on one
connection, watches as iterators, a daemon killed mid-call, bad inputs, what is sent for
parameters left unset (a recording stand-in daemon), pip install into a fresh venv, make install,
and the README's example run as it is written."""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILDDIR, SRCDIR, TAP, Daemon, check_serving, make_tempdir, run, short, tmo  # noqa: E402

PKG_SRC = os.path.join(SRCDIR, "client", "python")
sys.path.insert(0, os.path.join(PKG_SRC, "src"))
import notebookd  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
GUEST_UID = 65534  # bound to user "guest" in the daemon's configuration

t = TAP()
d = Daemon(t, config=f"[users]\n{GUEST_UID} = guest\n")
d.start()
SOCK = d.socket


def raises(fn, cls, *args, **kw):
        """The exception fn raises if it is a cls, else None (other outcomes are reported)."""
        try:
                fn(*args, **kw)
        except cls as e:
                return e
        except Exception as e:
                t.diag(f"expected {cls.__name__}, got {type(e).__name__}: {e}")
                return None
        t.diag(f"expected {cls.__name__}, nothing raised")
        return None


def arun(coro, timeout=60):
        async def bounded():
                return await asyncio.wait_for(coro, tmo(timeout))
        return asyncio.run(bounded())


class AsyncAsSync:
        """An AsyncClient running on a loop in a thread of its own, seen through blocking calls:
        so that one sequence of checks (exercise()) covers both clients."""

        def __init__(self, path, **kw):
                self.loop = asyncio.new_event_loop()
                self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
                self.thread.start()
                self.client = self._run(notebookd.AsyncClient(path, **kw).connect())

        def _run(self, coro):
                return asyncio.run_coroutine_threadsafe(coro, self.loop).result(tmo(30))

        def __getattr__(self, name):
                attr = getattr(self.client, name)
                if name == "iter_notebooks":
                        async def collect(**kw):
                                return [s async for s in attr(**kw)]
                        return lambda **kw: iter(self._run(collect(**kw)))
                if not callable(attr):
                        return attr
                return lambda *a, **kw: self._run(attr(*a, **kw))

        def close(self):
                self._run(self.client.close())
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(tmo(10))
                self.loop.close()


def exercise(c, user, label):
        """Every method but the watches, through client c (blocking, or AsyncAsSync)."""
        page = c.list_page(user_id=user)
        t.ok(page["provisioned"] is True and page["next_cursor"] is None, f"{label}: list_page provisions {user}",
             short(page))
        ids = [s["id"] for s in page["notebooks"]]
        t.is_(sorted(ids), [f"blank-{user}", f"demo-{user}"], f"{label}: blank and demo notebooks")

        nb = c.create("nb1", user_id=user, name="First", cells=[
                {"id": "a", "code": "x = 1", "writes": ["x"]},
                {"id": "b", "code": "y = x + 1", "reads": ["x"], "writes": ["y"],
                 "outputs": [{"mime_type": "application/json", "data": {"v": [1, 2.5, None, True]}, "metadata": {}}]}])
        t.ok(nb["id"] == "nb1" and nb["revision"] == 1 and [x["id"] for x in nb["cells"]] == ["a", "b"],
             f"{label}: create returns the notebook", short(nb))
        t.is_(nb["cells"][1]["outputs"][0]["data"], {"v": [1, 2.5, None, True]},
              f"{label}: JSON values in outputs come back as sent")
        anon = c.create(user_id=user)
        t.ok(isinstance(anon["id"], str) and len(anon["id"]) >= 32 and anon["name"] is None,
             f"{label}: create without an id gets a UUID", short(anon))

        got = c.get("nb1", user_id=user)
        t.is_(got["cells"], nb["cells"], f"{label}: get returns the cells")
        e = raises(c.create, notebookd.AlreadyExists, "nb1", user_id=user)
        t.ok(e is not None and e.code == -32014, f"{label}: AlreadyExists for an id in use")

        s = c.update("nb1", user_id=user, name="Renamed", db_conn_string="postgresql://x", ttl=4102444800,
                     expected_revision=1)
        t.ok(s["revision"] == 2 and s["name"] == "Renamed" and s["cell_count"] == 2 and "cells" not in s,
             f"{label}: update returns the summary", short(s))
        s = c.update("nb1", user_id=user, db_conn_string=None, ttl=None)
        t.ok(s["db_conn_string"] is None and s["ttl"] is None and s["name"] == "Renamed",
             f"{label}: update with None clears those fields only", short(s))
        e = raises(c.update, notebookd.RevisionConflict, "nb1", user_id=user, name="stale", expected_revision=1)
        t.ok(e is not None and e.current_revision == 3 and e.code == -32011,
             f"{label}: RevisionConflict carries current_revision", repr(e))
        t.is_(c.get("nb1", user_id=user)["name"], "Renamed", f"{label}: nothing changed by the conflict")

        r = c.create_cell("nb1", user_id=user, cell_id="c", code="z = y * 2", reads=["y"], writes=["z"],
                          expected_revision=3)
        t.ok(r["revision"] == 4 and r["position"] == 2 and r["cell"]["id"] == "c",
             f"{label}: create_cell appends", short(r))
        r = c.create_cell("nb1", user_id=user, cell_id="front", after_cell_id=None, type="sql", code="select 1")
        t.ok(r["position"] == 0 and r["cell"]["type"] == "sql", f"{label}: after_cell_id=None inserts at the front",
             short(r))
        r = c.create_cell("nb1", user_id=user, cell_id="mid", position=2, status="error", error="boom",
                          stdout="out", outputs=[{"mime_type": "text/plain", "data": "1", "metadata": {}}])
        t.ok(r["position"] == 2 and r["cell"]["error"] == "boom" and r["cell"]["stdout"] == "out",
             f"{label}: create_cell at a position with every field", short(r))
        r = c.update_cell("nb1", "mid", user_id=user, error=None, status="success", code="m = 1", writes=["m"],
                          expected_revision=r["revision"])
        t.ok(r["cell"]["error"] is None and r["cell"]["status"] == "success" and r["cell"]["code"] == "m = 1",
             f"{label}: update_cell (error=None clears the error)", short(r))
        r = c.move_cell("nb1", "mid", position=0, user_id=user)
        t.is_(r["position"], 0, f"{label}: move_cell to a position")
        r = c.move_cell("nb1", "front", after_cell_id="c", user_id=user, expected_revision=r["revision"])
        order = [x["id"] for x in c.get("nb1", user_id=user)["cells"]]
        t.is_(order, ["mid", "a", "b", "c", "front"], f"{label}: move_cell after a cell")
        r = c.delete_cell("nb1", "front", user_id=user, expected_revision=r["revision"])
        t.ok(set(r) >= {"notebook_id", "revision", "updated_at"}, f"{label}: delete_cell", short(r))
        e = raises(c.delete_cell, notebookd.NotFound, "nb1", "front", user_id=user)
        t.ok(e is not None and e.data == {"cell_id": "front"}, f"{label}: NotFound names the cell", repr(e))

        g = c.graph("nb1", user_id=user)
        t.ok(g["order"][:3] == ["mid", "a", "b"] and {"from": "a", "to": "b", "vars": ["x"]} in g["edges"],
             f"{label}: graph", short(g))

        demo = c.reset_demo(user_id=user)
        t.ok(demo["id"] == f"demo-{user}" and len(demo["cells"]) == 6 and demo["demo_version"],
             f"{label}: reset_demo returns the demo", short(demo))

        for i in range(5):
                c.create(f"page{i}", user_id=user)
        all_ids = [s["id"] for s in c.list_notebooks(user_id=user)]
        paged = [s["id"] for s in c.iter_notebooks(user_id=user, page_size=2)]
        t.ok(len(all_ids) == 9 and paged == all_ids, f"{label}: list_notebooks and iter_notebooks(page_size=2) "
             "follow next_cursor to the same list", f"{all_ids}\n{paged}")
        p1 = c.list_page(user_id=user, limit=3)
        p2 = c.list_page(user_id=user, limit=3, cursor=p1["next_cursor"])
        t.ok(len(p1["notebooks"]) == 3 and p2["provisioned"] is False and p2["notebooks"][0]["id"] == all_ids[3],
             f"{label}: list_page with limit and cursor", short(p2))

        r = c.delete("page0", user_id=user, expected_revision=1)
        t.ok(r["notebook_id"] == "page0" and isinstance(r["revision"], int), f"{label}: delete", short(r))
        e = raises(c.get, notebookd.NotFound, "page0", user_id=user)
        t.ok(e is not None and e.data == {"notebook_id": "page0"}, f"{label}: NotFound after delete", repr(e))

        e = raises(c.sync_pull, notebookd.NoRemote)
        t.ok(e is not None and e.code == -32030, f"{label}: sync_pull on a local-only daemon is NoRemote")
        t.is_(c.sync_conflicts(user_id=user), [], f"{label}: sync_conflicts (none)")
        t.is_(c.sync_conflicts("nb1", user_id=user), [], f"{label}: sync_conflicts of one notebook (none)")
        e = raises(c.sync_resolve, notebookd.NotFound, "nb1", "local", user_id=user)
        t.ok(e is not None, f"{label}: sync_resolve with nothing to resolve is NotFound")
        e = raises(c.sync_resolve, notebookd.InvalidParams, "nb1", "local", cell_id="a", field="name", user_id=user)
        t.ok(e is not None, f"{label}: sync_resolve with cell_id and field is InvalidParams")

        st = c.status()
        t.ok(st["peer"]["privileged"] is True and st["sync"] == {"mode": "local-only"} and st["pid"] == d.proc.pid,
             f"{label}: status", short(st))
        t.is_(c.call("notebook.get", user_id=user, notebook_id="nb1")["notebook"]["name"], "Renamed",
              f"{label}: call() reaches any method")
        e = raises(c.call, notebookd.MethodNotFound, "notebook.nonesuch")
        t.ok(e is not None and e.code == -32601, f"{label}: an unknown method is MethodNotFound")

        # Methods of newer daemons: checked where the daemon has them.
        try:
                h = c.history("nb1", user_id=user)
        except notebookd.MethodNotFound:
                h = None
                for name in ("history", "get(revision=)", "restore"):
                        t.skip(f"{label}: {name}", "this daemon has no notebook.history")
        if h is not None:
                t.ok(h["notebook_id"] == "nb1" and 2 in [e["revision"] for e in h["revisions"]],
                     f"{label}: history lists the kept revisions", short(h))
                below = c.history("nb1", user_id=user, before=3, limit=1)
                t.is_([e["revision"] for e in below["revisions"]], [2], f"{label}: history(before=3, limit=1)")
                now = c.get("nb1", user_id=user)
                old = c.get("nb1", user_id=user, revision=2)
                t.ok(old["revision"] == 2 and [x["id"] for x in old["cells"]] == ["a", "b"],
                     f"{label}: get(revision=2) is that revision", short(old))
                r = c.restore("nb1", 2, now["revision"], user_id=user)
                back = c.get("nb1", user_id=user)
                t.ok(r == back and back["revision"] == now["revision"] + 1 and back["cells"] == old["cells"],
                     f"{label}: restore makes revision 2 the newest, and returns the notebook", short(r))
                e = raises(c.get, notebookd.NotFound, "nb1", user_id=user, revision=999)
                t.ok(e is not None and e.param == "revision", f"{label}: get(revision=) of a revision not kept is "
                     "NotFound naming revision", repr(e))
                e = raises(c.restore, notebookd.RevisionConflict, "nb1", 2, now["revision"], user_id=user)
                t.ok(e is not None and e.current_revision == back["revision"],
                     f"{label}: restore with a stale expected_revision is a RevisionConflict")
        try:
                m = c.metrics()
        except notebookd.MethodNotFound:
                t.skip(f"{label}: metrics()", "this daemon has no daemon.metrics")
        else:
                t.ok(isinstance(m, dict) and "notebookd_" in (m.get("text") or ""),
                     f"{label}: metrics() gives the Prometheus text", short(m))


@t.case("blocking Client: every method, typed errors")
def _():
        with notebookd.Client(SOCK, timeout=tmo(30)) as c:
                exercise(c, "sync-user", "Client")
                t.ok(not c.closed, "the connection survives every error reply")


@t.case("AsyncClient: every method, typed errors")
def _():
        c = AsyncAsSync(SOCK)
        try:
                exercise(c, "async-user", "AsyncClient")
                t.ok(not c.closed, "the connection survives every error reply")
        finally:
                c.close()


@t.case("the client's user_id is sent where a method takes one and none was given")
def _():
        with notebookd.Client(SOCK, user_id="dflt") as c:
                c.list_page()
                t.ok(c.get("demo-dflt")["user_id"] == "dflt", "get() acts for the client's user_id")
                c.list_page(user_id="other-user")
                t.is_(c.get("demo-other-user", user_id="other-user")["user_id"], "other-user",
                      "a user_id given to the method wins")
                t.ok(c.status()["peer"]["uid"] == os.getuid(), "methods without user_id are not sent one")


@t.case("AsyncClient: 300 concurrent calls from many tasks on one connection, replies matched by id")
def _():
        async def go():
                async with notebookd.AsyncClient(SOCK, user_id="pipe") as c:
                        await c.list_page()
                        base = (await c.create("p"))["revision"]
                        st0 = await c.status()

                        async def writer(i):
                                r = await c.create_cell("p", cell_id=f"w{i}", code=f"v{i} = {i}")
                                return r["cell"]["id"] == f"w{i}" and r["cell"]["code"] == f"v{i} = {i}"

                        async def reader(i):
                                nb = await c.get("demo-pipe")
                                return nb["id"] == "demo-pipe"

                        async def failing(i):
                                try:
                                        await c.get(f"missing-{i}")
                                except notebookd.NotFound as e:
                                        return e.data == {"notebook_id": f"missing-{i}"}
                                return False

                        jobs = [f(i) for i in range(100) for f in (writer, reader, failing)]
                        results = await asyncio.gather(*jobs)
                        nb = await c.get("p")
                        st1 = await c.status()
                        return results, nb, base, st0, st1

        results, nb, base, st0, st1 = arun(go())
        t.ok(all(results), "every task got its own reply (right cell, right notebook, right error)",
             f"{results.count(False)} wrong")
        t.is_(len(nb["cells"]), 100, "all 100 cells are there")
        t.is_(nb["revision"], base + 100, "each write made one revision")
        reqs = st1["requests"] - st0["requests"]
        txs = st1["transactions"] - st0["transactions"]
        t.ok(txs < reqs, f"requests arrived together: {reqs} requests in {txs} transactions (group commit)")


@t.case("AsyncClient: watch() as an async iterator gets changes another client makes")
def _():
        async def go():
                async with notebookd.AsyncClient(SOCK, user_id="watcher") as c, \
                                notebookd.AsyncClient(SOCK, user_id="watcher") as other:
                        await c.list_page()
                        await c.create("w1")
                        await c.create("w2")
                        got_one, got_all = [], []
                        async with c.watch("w1") as one, c.watch() as every:
                                t.is_(one.user_id, "watcher", "the watch knows the user the daemon resolved")
                                await other.update("w1", name="a")
                                await other.create_cell("w2", code="x")
                                await other.delete("w1")
                                async for ev in one:
                                        got_one.append(ev)
                                        if ev.deleted:
                                                break
                                while len(got_all) < 3:
                                        ev = await every.get(timeout=tmo(10))
                                        if ev is None:
                                                break
                                        got_all.append(ev)
                        # After the with block the daemon no longer sends to this connection.
                        await other.create("w3")
                        st = await c.status()
                        # A plain async for subscribes by itself.
                        it = c.watch("w2")
                        first = asyncio.ensure_future(it.__anext__())
                        while it._key is None:
                                await asyncio.sleep(0.01)
                        await other.update("w2", name="again")
                        ev = await asyncio.wait_for(first, tmo(10))
                        await it.close()
                        return got_one, got_all, st, ev

        got_one, got_all, st, ev = arun(go())
        t.ok(all(isinstance(e, notebookd.NotebookChanged) for e in got_one + got_all), "events are NotebookChanged",
             short(got_one + got_all))
        t.ok(all(e.origin == "local" for e in got_one + got_all), "origin is local for changes made here")
        t.is_([(e.notebook_id, e.deleted) for e in got_one], [("w1", False), ("w1", True)],
              "the watch of one notebook gets its change and its deletion, in order")
        t.is_([(e.notebook_id, e.deleted) for e in got_all], [("w1", False), ("w2", False), ("w1", True)],
              "the watch of all the user's notebooks gets every change, in order")
        t.is_(got_one[0].revision, 2, "each event carries the revision its change made")
        t.is_(st["watches"], 0, "leaving the with blocks unwatched both on the daemon")
        t.ok(isinstance(ev, notebookd.NotebookChanged) and ev.notebook_id == "w2",
             "async for over client.watch() subscribes on its first step", short(ev))


@t.case("blocking Client: watch() as an iterator, events kept while other calls wait")
def _():
        with notebookd.Client(SOCK, user_id="bw", timeout=tmo(30)) as c, \
                        notebookd.Client(SOCK, user_id="bw") as other:
                c.list_page()
                c.create("b1")
                with c.watch("b1") as w:
                        other.update("b1", name="one")
                        c.update("b1", name="two")  # its own change, told after its reply
                        other.delete("b1")
                        evs = [next(w), next(w), next(w)]
                        t.is_([(e.revision, e.deleted) for e in evs[:2]], [(2, False), (3, False)],
                              "changes by another client and by this one, in order")
                        t.ok(evs[2].deleted, "then the deletion")
                        t.is_(w.get(timeout=0.2), None, "get(timeout) returns None when nothing comes")
                t.is_(c.status()["watches"], 0, "closing the watch unwatched on the daemon")
                t.ok(not c.closed, "the connection is still open")


@t.case("a notebook of 12 MiB comes through both clients (no 64 KiB line limit)")
def _():
        code = "x = '" + "a" * (1024 * 1024 - 10) + "'"
        with notebookd.Client(SOCK, user_id="big", timeout=tmo(60)) as c:
                c.list_page()
                c.create("big", cells=[{"id": f"c{i}", "code": code} for i in range(12)])
                nb = c.get("big")
                t.ok(len(nb["cells"]) == 12 and all(x["code"] == code for x in nb["cells"]), "Client: get")

        async def go():
                async with notebookd.AsyncClient(SOCK, user_id="big") as a:
                        nbs = await asyncio.gather(a.get("big"), a.get("big"), a.status())
                        return nbs
        nbs = arun(go())
        t.ok(all(len(n["cells"]) == 12 and n["cells"][11]["code"] == code for n in nbs[:2]),
             "AsyncClient: two at once, and a small reply after them")


# --- a stand-in daemon: what is sent, and replies the real daemon never makes -----------------

class FakeDaemon:
        """Listens on a Unix socket in a thread, records each request, and answers with
        handler(request) -> list of messages (dicts, or raw bytes lines) to send."""

        def __init__(self, handler):
                self.path = os.path.join(make_tempdir("nbpyfake-"), "fake.sock")
                self.handler = handler
                self.requests = []
                self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.srv.bind(self.path)
                self.srv.listen(4)
                self.thread = threading.Thread(target=self._serve, daemon=True)
                self.thread.start()

        def _serve(self):
                while True:
                        try:
                                conn, _ = self.srv.accept()
                        except OSError:
                                return
                        try:
                                with conn:
                                        self._talk(conn)
                        except OSError:
                                pass

        def _talk(self, conn):
                buf = b""
                while True:
                        chunk = conn.recv(65536)
                        if not chunk:
                                return
                        buf += chunk
                        while b"\n" in buf:
                                line, buf = buf.split(b"\n", 1)
                                req = json.loads(line)
                                self.requests.append(req)
                                out = self.handler(req)
                                if out is None:
                                        return  # hang up
                                for m in out:
                                        conn.sendall(m if isinstance(m, bytes) else json.dumps(m).encode() + b"\n")

        def close(self):
                self.srv.close()


def ok_reply(req, result=None):
        return [{"jsonrpc": "2.0", "id": req["id"], "result": {} if result is None else result}]


@t.case("parameters left unset are not sent; None is sent where it means something")
def _():
        fake = FakeDaemon(lambda req: ok_reply(req, {"notebook": {}}))
        with notebookd.Client(fake.path) as c:
                c.create_cell("n", code="x")
                c.create_cell("n", after_cell_id=None, user_id="u", expected_revision=None)
                c.update("n", name=None)
                c.update_cell("n", "c", error=None)
                c.list_page()
                c.status()
                c.restore("n", 3, 2)
                c.call("x.y", a=None)
        got = [(r["method"], r.get("params")) for r in fake.requests]
        t.is_(got, [("cell.create", {"notebook_id": "n", "code": "x"}),
                    ("cell.create", {"user_id": "u", "notebook_id": "n", "after_cell_id": None}),
                    ("notebook.update", {"notebook_id": "n", "name": None}),
                    ("cell.update", {"notebook_id": "n", "cell_id": "c", "error": None}),
                    ("notebook.list", None),
                    ("daemon.status", None),
                    ("notebook.restore", {"notebook_id": "n", "revision": 3, "expected_revision": 2}),
                    ("x.y", {"a": None})], "the params of each request")
        t.ok(all(r["jsonrpc"] == "2.0" and isinstance(r["id"], int) for r in fake.requests),
             "JSON-RPC 2.0 requests with integer ids")
        fake.close()


@t.case("notebook.changes_lost and a watch's own overflow are ChangesLost events")
def _():
        n_over = notebookd.MAX_QUEUED_EVENTS + 10

        def changed(rev):
                return {"jsonrpc": "2.0", "method": "notebook.changed",
                        "params": {"user_id": "u", "notebook_id": "n", "revision": rev, "deleted": False,
                                   "origin": "remote"}}

        def handler(req):
                p = req.get("params") or {}
                out = ok_reply(req, {"user_id": "u", "notebook_id": p.get("notebook_id"),
                                     "watching": req["method"] == "notebook.watch"})
                if req["method"] == "notebook.watch" and p.get("notebook_id") == "n":
                        out += [changed(1), {"jsonrpc": "2.0", "method": "notebook.changes_lost", "params": {}},
                                changed(7)]
                if req["method"] == "notebook.watch" and p.get("notebook_id") == "flood":
                        out += [changed(i) for i in range(n_over)]
                return out

        fake = FakeDaemon(handler)

        async def go():
                async with notebookd.AsyncClient(fake.path) as c:
                        w = await c.watch("n", user_id="u")
                        evs = [await w.get(tmo(5)) for _ in range(3)]
                        flood = await c.watch("flood", user_id="u")
                        await c.status()  # the flood has been read by then
                        first = await w.get(tmo(5))
                        rest = []
                        while len(w._events):
                                rest.append(await w.get(0))
                        await flood.close()
                        await w.close()
                        return evs, first, rest

        evs, first, rest = arun(go())
        t.ok(isinstance(evs[0], notebookd.NotebookChanged) and evs[0].origin == "remote"
             and isinstance(evs[1], notebookd.ChangesLost) and evs[2].revision == 7,
             "notebook.changes_lost comes between the changes around it", short(evs))
        t.ok(isinstance(first, notebookd.ChangesLost) and len(rest) == 9 and rest[-1].revision == n_over - 1,
             f"a watch not read past {notebookd.MAX_QUEUED_EVENTS} events drops them and says ChangesLost",
             f"{short(first)} then {len(rest)}")

        with notebookd.Client(fake.path) as c:
                w = c.watch("n", user_id="u")
                evs = [w.get(tmo(5)) for _ in range(3)]
                t.ok(isinstance(evs[1], notebookd.ChangesLost) and evs[2].revision == 7,
                     "the blocking client's Watch yields ChangesLost too", short(evs))
        fake.close()


@t.case("malformed replies are a ProtocolError (a ConnectionError); an id-less error answers the call")
def _():
        mode = {}

        def handler(req):
                m = mode["m"]
                if m == "not-json":
                        return [b"this is not json\n"]
                if m == "wrong-id":
                        return [{"jsonrpc": "2.0", "id": 999, "result": {}}]
                if m == "both":
                        return [{"jsonrpc": "2.0", "id": req["id"], "result": {}, "error": {"code": 1}}]
                if m == "null-id-error":
                        return [{"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": "Line too long.",
                                                                          "data": {"limit": 10}}}]
                if m == "huge":
                        return [b"{" + b" " * 5000 + b"\n"]
                if m == "hangup":
                        return None
                return ok_reply(req)

        fake = FakeDaemon(handler)
        for m in ("not-json", "wrong-id", "both", "huge", "hangup"):
                mode["m"] = m
                for kind in ("Client", "AsyncClient"):
                        cls = notebookd.ProtocolError if m != "hangup" else notebookd.ConnectionError
                        if kind == "Client":
                                c = notebookd.Client(fake.path, max_reply_bytes=1000)
                                e = raises(c.status, cls)
                                later = raises(c.status, notebookd.ConnectionError)
                                c.close()
                        else:
                                async def go():
                                        c = await notebookd.AsyncClient(fake.path, max_reply_bytes=1000).connect()
                                        try:
                                                await c.status()
                                        except Exception as ex:
                                                first = ex
                                        else:
                                                first = None
                                        try:
                                                await c.status()
                                        except Exception as ex:
                                                second = ex
                                        else:
                                                second = None
                                        await c.close()
                                        return first, second
                                e, later = arun(go())
                                e = e if isinstance(e, cls) else t.diag(repr(e))
                                later = later if isinstance(later, notebookd.ConnectionError) else None
                        t.ok(e is not None and isinstance(e, ConnectionError) and later is not None,
                             f"{kind}: {m}: {cls.__name__}, and the connection is closed")
        mode["m"] = "null-id-error"
        with notebookd.Client(fake.path) as c:
                e = raises(c.status, notebookd.LineTooLong)
                t.ok(e is not None and e.data == {"limit": 10}, "Client: an error with id null answers the call")

        async def go():
                async with notebookd.AsyncClient(fake.path) as c:
                        try:
                                await c.status()
                        except notebookd.LineTooLong as ex:
                                return ex
        t.ok(isinstance(arun(go()), notebookd.LineTooLong),
             "AsyncClient: an error with id null answers the oldest call")
        fake.close()


# --- transport failures -----------------------------------------------------------------------

@t.case("no daemon: ConnectionError with the errno, from both clients")
def _():
        missing = os.path.join(make_tempdir(), "none.sock")
        e = raises(notebookd.Client, notebookd.ConnectionError, missing)
        t.ok(e is not None and e.errno == 2 and missing in str(e), "Client: ENOENT, naming the socket", repr(e))

        async def go():
                try:
                        await notebookd.AsyncClient(missing).connect()
                except notebookd.ConnectionError as ex:
                        return ex
        e = arun(go())
        t.ok(isinstance(e, notebookd.ConnectionError) and e.errno == 2, "AsyncClient: ENOENT", repr(e))
        t.ok(isinstance(e, ConnectionError) and isinstance(e, OSError), "a built-in ConnectionError (an OSError)")
        old = os.environ.get("NOTEBOOKD_SOCKET")
        os.environ["NOTEBOOKD_SOCKET"] = SOCK
        try:
                with notebookd.Client() as c:
                        t.is_(c.socket_path, SOCK, "the socket defaults to $NOTEBOOKD_SOCKET")
        finally:
                if old is None:
                        del os.environ["NOTEBOOKD_SOCKET"]
                else:
                        os.environ["NOTEBOOKD_SOCKET"] = old
        t.is_(notebookd.default_socket_path() if os.getuid() == 0 and not old else "/run/notebookd/notebookd.sock",
              "/run/notebookd/notebookd.sock", "root's default socket is /run/notebookd/notebookd.sock")


@t.case("a daemon killed mid-call: ConnectionError for the calls in flight, the watches and later calls")
def _():
        d2 = Daemon(t)
        d2.start()

        async def go():
                c = await notebookd.AsyncClient(d2.socket, user_id="k").connect()
                await c.list_page()
                w = await c.watch()
                d2.proc.send_signal(signal.SIGSTOP)
                tasks = [asyncio.ensure_future(c.create_cell("blank-k", code=f"{i}")) for i in range(20)]
                await asyncio.sleep(0.3)
                pending = sum(not x.done() for x in tasks)
                d2.proc.kill()
                res = await asyncio.gather(*tasks, return_exceptions=True)
                try:
                        await w.get()
                        werr = None
                except Exception as ex:
                        werr = ex
                try:
                        await c.status()
                        later = None
                except Exception as ex:
                        later = ex
                await c.close()
                return pending, res, werr, later

        pending, res, werr, later = arun(go())
        d2.proc.wait(tmo(10))
        t.is_(pending, 20, "the calls were waiting when the daemon died")
        t.ok(all(isinstance(r, notebookd.ConnectionError) for r in res), "AsyncClient: each raised ConnectionError",
             short(res))
        t.ok(isinstance(werr, notebookd.ConnectionError), "the watch's iteration raised ConnectionError", repr(werr))
        t.ok(isinstance(later, notebookd.ConnectionError), "a later call raises ConnectionError", repr(later))

        d2.start()
        c = notebookd.Client(d2.socket, user_id="k")
        c.list_page()
        d2.proc.send_signal(signal.SIGSTOP)
        out = {}

        def call():
                try:
                        c.get("blank-k")
                except Exception as ex:
                        out["e"] = ex

        th = threading.Thread(target=call, daemon=True)
        th.start()
        time.sleep(0.3)
        t.ok(th.is_alive(), "the blocking call waits for the stopped daemon")
        d2.proc.kill()
        th.join(tmo(10))
        t.ok(isinstance(out.get("e"), notebookd.ConnectionError), "Client: ConnectionError", repr(out.get("e")))
        t.ok(c.closed and raises(c.status, notebookd.ConnectionError) is not None, "and the client is closed")
        d2.proc.wait(tmo(10))

        d2.start()
        c = notebookd.Client(d2.socket, user_id="k", timeout=0.3)
        c.status()
        d2.proc.send_signal(signal.SIGSTOP)
        e = raises(c.status, notebookd.Timeout)
        t.ok(isinstance(e, TimeoutError) and isinstance(e, notebookd.ConnectionError) and c.closed,
             "Client(timeout=...): Timeout (a TimeoutError and a ConnectionError), the connection closed")
        d2.proc.send_signal(signal.SIGCONT)
        check_serving(t, d2, "the daemon serves on after the client left")
        d2.stop()


# --- bad inputs -------------------------------------------------------------------------------

@t.case("bad inputs: InvalidParams naming the parameter, nothing stored; values JSON cannot hold never leave")
def _():
        with notebookd.Client(SOCK, user_id="bad") as c:
                c.list_page()
                c.create("target", name="keep", cells=[{"id": "a", "code": "x = 1"}])
                before = c.get("target")
                ids_before = [s["id"] for s in c.list_notebooks()]
                cases = [
                        ("create name=123", lambda: c.create("new1", name=123), "name"),
                        ("create cells not a list", lambda: c.create("new2", cells={"id": "a"}), "cells"),
                        # The daemon names the field ("type"), not where it is ("cells[0].type").
                        ("create a cell of an unknown type", lambda: c.create("new3", cells=[{"type": "ruby"}]),
                         ("cells", "type")),
                        ("update expected_revision='1'", lambda: c.update("target", name="x", expected_revision="1"),
                         "expected_revision"),
                        ("update ttl='soon'", lambda: c.update("target", ttl="soon"), "ttl"),
                        ("create_cell position='0'", lambda: c.create_cell("target", position="0"), "position"),
                        ("create_cell reads=[1]", lambda: c.create_cell("target", reads=[1]), "reads"),
                        ("update_cell outputs=[{}]", lambda: c.update_cell("target", "a", outputs=[{}]), "outputs"),
                        ("move_cell position=True", lambda: c.move_cell("target", "a", position=True), "position"),
                        ("a number the daemon cannot keep", lambda: c.create_cell(
                                "target", outputs=[{"mime_type": "a/b", "data": {"n": 12345678901234567890},
                                                    "metadata": {}}]), "outputs"),
                        ("call with an unknown parameter",
                         lambda: c.call("notebook.get", notebook_id="target", x=1), None),
                ]
                for desc, fn, param in cases:
                        e = raises(fn, notebookd.InvalidParams)
                        good = e is not None and e.code == -32602
                        if good and param:
                                good = (e.param or "").startswith(param if isinstance(param, tuple) else (param,))
                        t.ok(good, f"{desc}: InvalidParams" + (f" (param {param})" if param else ""), repr(e))
                for desc, fn, cls in (("a set", lambda: c.create_cell("target", reads={"x"}), TypeError),
                                      ("NaN", lambda: c.create_cell("target", outputs=[
                                              {"mime_type": "a/b", "data": {"v": float("nan")}, "metadata": {}}]),
                                       ValueError)):
                        t.ok(raises(fn, cls) is not None, f"{desc}: {cls.__name__} before anything is sent")
                t.is_(c.get("target"), before, "the notebook is unchanged")
                t.is_([s["id"] for s in c.list_notebooks()], ids_before, "no notebook was created")
                t.ok(not c.closed, "the connection is still open")
        check_serving(t, d)


# --- access -----------------------------------------------------------------------------------

@t.case("AccessDenied for a peer acting for a user it is not bound to")
def _():
        setpriv = shutil.which("setpriv")
        if os.getuid() != 0 or not setpriv:
                t.skip("AccessDenied from another uid", "needs root and setpriv to run a peer as another uid")
                return
        with notebookd.Client(SOCK) as c:
                c.list_page(user_id="alice")
                c.create("secret", user_id="alice", cells=[{"id": "c", "code": "s3cret"}])
                before = c.get("secret", user_id="alice")
        # The package, readable by the other uid.
        pkg = os.path.join(make_tempdir("nbpypkg-"), "src")
        shutil.copytree(os.path.join(PKG_SRC, "src"), pkg)
        for root, dirs, files in os.walk(pkg):
                os.chmod(root, 0o755)
                for f in files:
                        os.chmod(os.path.join(root, f), 0o644)
        script = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
import notebookd
out = {}
def name(fn):
    try:
        fn()
        return "ok"
    except notebookd.NotebookdError as e:
        return type(e).__name__
with notebookd.Client(sys.argv[2]) as c:
    out["get"] = name(lambda: c.get("secret", user_id="alice"))
    out["update"] = name(lambda: c.update("secret", user_id="alice", name="pwned"))
    out["missing"] = name(lambda: c.get("nope", user_id="alice"))
    out["own"] = name(lambda: c.list_page())
async def go():
    async with notebookd.AsyncClient(sys.argv[2], user_id="alice") as a:
        try:
            await a.delete("secret")
        except notebookd.AccessDenied as e:
            return e.code
out["async"] = asyncio.run(go())
print(json.dumps(out))
"""
        rc, out, err = run([setpriv, f"--reuid={GUEST_UID}", f"--regid={GUEST_UID}", "--clear-groups",
                            SYSTEM_PYTHON, "-c", script, pkg, SOCK], timeout=tmo(30))
        res = json.loads(out) if rc == 0 else {}
        t.ok(rc == 0, "the peer ran", f"rc {rc}\n{out}\n{err}")
        t.is_(res, {"get": "AccessDenied", "update": "AccessDenied", "missing": "AccessDenied", "own": "ok",
                    "async": -32012}, "AccessDenied for another user's notebooks, existing or not; its own user works")
        with notebookd.Client(SOCK) as c:
                t.is_(c.get("secret", user_id="alice"), before, "alice's notebook is unchanged")


# --- installation -----------------------------------------------------------------------------

@t.case("pip install --no-build-isolation into a fresh venv, offline, and import from there")
def _():
        tmp = make_tempdir("nbpyvenv-")
        # pip builds in the source tree (build/, *.egg-info): a copy, so that the tree (read-only
        # under make distcheck) stays as it is.
        src = os.path.join(tmp, "python")
        shutil.copytree(PKG_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        venv = os.path.join(tmp, "venv")
        # Debian's venv has pip and setuptools; wheel (python3-wheel), which setuptools 66 builds
        # wheels with, is the system's.
        rc, out, err = run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", venv], timeout=tmo(120))
        if rc != 0:
                t.skip("pip install into a venv", f"python3 -m venv failed (python3-venv?): {err.strip()[-300:]}")
                return
        py = os.path.join(venv, "bin", "python")
        env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        env.pop("PYTHONPATH", None)
        p = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index", src], env=env,
                           capture_output=True, text=True, timeout=tmo(300))
        t.ok(p.returncode == 0, "pip install --no-build-isolation --no-index ./client/python succeeds",
             (p.stdout + p.stderr)[-3000:])
        code = ("import json, os, sys, notebookd\n"
                "c = notebookd.Client(sys.argv[1])\n"
                "d = os.path.dirname(notebookd.__file__)\n"
                "print(json.dumps([d, sorted(os.listdir(d)), c.status()['pid']]))\n")
        p = subprocess.run([py, "-c", code, SOCK], env=env, capture_output=True, text=True, timeout=tmo(30),
                           cwd=tmp)
        res = json.loads(p.stdout) if p.returncode == 0 else None
        t.ok(res is not None and res[0].startswith(os.path.join(venv, "lib")), "the venv's python imports the "
             "installed package", p.stdout + p.stderr)
        t.ok(res is not None and "py.typed" in res[1], "py.typed is installed", short(res))
        t.ok(res is not None and res[2] == d.proc.pid, "and talks to the daemon with it")


@t.case("make install DESTDIR=...: the package in configure's pythondir, importable from there")
def _():
        pythondir = os.environ.get("NB_PYTHONDIR")
        if not pythondir:
                t.skip("make install of the Python client", "NB_PYTHONDIR not set (configure found no Python 3.10)")
                return
        destdir = make_tempdir("nbpydest-")
        make = os.environ.get("MAKE", "make")
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
        p = subprocess.run(make.split() + ["-s", "-C", BUILDDIR, "install-pkgpythonPYTHON", "install-pkgpythonDATA",
                                           "DESTDIR=" + destdir], capture_output=True, text=True, env=env,
                           timeout=tmo(120))
        t.ok(p.returncode == 0, "make install-pkgpythonPYTHON install-pkgpythonDATA exits 0", p.stdout + p.stderr)
        pkgdir = os.path.join(destdir + pythondir, "notebookd")
        files = sorted(os.listdir(pkgdir)) if os.path.isdir(pkgdir) else []
        t.ok({"__init__.py", "client.py", "aio.py", "py.typed"} <= set(files), f"installed in {pythondir}/notebookd",
             short(files))
        env = dict(os.environ, PYTHONPATH=destdir + pythondir)
        p = subprocess.run([SYSTEM_PYTHON, "-c", "import notebookd, sys; print(notebookd.__file__); "
                            "print(notebookd.Client(sys.argv[1]).status()['pid'])", SOCK],
                           env=env, capture_output=True, text=True, timeout=tmo(30), cwd=destdir)
        t.ok(p.returncode == 0 and p.stdout.startswith(pkgdir) and p.stdout.split()[-1] == str(d.proc.pid),
             "the installed package imports and works", p.stdout + p.stderr)
        prefix = os.environ.get("NB_PREFIX", "")
        if prefix in ("/usr", "/usr/local") and pythondir.startswith(prefix):
                p = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('\\n'.join(sys.path))"],
                                   capture_output=True, text=True, timeout=tmo(30))
                t.ok(pythondir in p.stdout.split("\n"), f"{pythondir} is on {SYSTEM_PYTHON}'s module path",
                     p.stdout)


# --- the README's example ---------------------------------------------------------------------

# The application's models (its models.py), which the README's example converts.
MODELS = '''
import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Union


class CellType(str, enum.Enum):
    PYTHON = "python"
    SQL = "sql"


class CellStatus(str, enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"


@dataclass
class Output:
    mime_type: str
    data: Union[str, dict, list]
    metadata: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Cell:
    id: str
    type: CellType
    code: str
    status: CellStatus = CellStatus.IDLE
    stdout: str = ""
    outputs: List[Output] = field(default_factory=list)
    error: Optional[str] = None
    reads: Set[str] = field(default_factory=set)
    writes: Set[str] = field(default_factory=set)


@dataclass
class Notebook:
    id: str
    user_id: str
    name: Optional[str] = None
    db_conn_string: Optional[str] = None
    cells: List[Cell] = field(default_factory=list)
    revision: int = 0
'''

DRIVER = '''
import asyncio, json, sys


async def main():
    await client.connect()
    nb = Notebook(id="readme-nb", user_id="readme", name="Sales",
                  cells=[Cell(id="c1", type=CellType.PYTHON, code="x = 10", writes={"x"}),
                         Cell(id="c2", type=CellType.SQL, code="select 1", reads={"x"}, status=CellStatus.SUCCESS,
                              outputs=[Output("application/json", {"rows": [[1]]}, {"n": 1})])])
    await save_notebook(nb)              # creates it
    first = nb.revision
    nb.cells[0].code = "x = 11"
    nb.cells.append(Cell(id="c3", type=CellType.PYTHON, code="y = x", reads={"x"}, writes={"y"}))
    nb.name = "Sales 2026"
    await save_notebook(nb)              # updates it
    loaded = await load_notebook("readme", "readme-nb")
    stale = Notebook(id="readme-nb", user_id="readme", revision=first)
    try:
        await save_notebook(stale)
        conflict = None
    except notebookd.RevisionConflict as e:
        conflict = e.current_revision
    await client.close()
    print(json.dumps({"first": first, "saved": nb.revision, "equal": loaded == nb, "conflict": conflict,
                      "loaded": repr(loaded)}))

asyncio.run(main())
'''


def readme_example():
        """The first python code block of the README section "Python client"."""
        with open(os.path.join(SRCDIR, "README.md")) as f:
                text = f.read()
        m = re.search(r"^## Python client\n(.*?)(?=^## )", text, re.S | re.M)
        if not m:
                return None
        block = re.search(r"```python\n(.*?)```", m.group(1), re.S)
        return block.group(1) if block else None


@t.case("the README's example (save_notebook / load_notebook) runs as written")
def _():
        code = readme_example()
        t.ok(code is not None, "README.md has a python block under \"## Python client\"")
        if code is None:
                return
        tmp = make_tempdir("nbpyreadme-")
        with open(os.path.join(tmp, "models.py"), "w") as f:
                f.write(MODELS)
        path = os.path.join(tmp, "example.py")
        with open(path, "w") as f:
                f.write(code + "\n# --- driver ---\n" + DRIVER)
        env = dict(os.environ, NOTEBOOKD_SOCKET=SOCK, PYTHONPATH=os.path.join(PKG_SRC, "src") + os.pathsep + tmp)
        p = subprocess.run([SYSTEM_PYTHON, path], env=env, capture_output=True, text=True, timeout=tmo(60))
        res = json.loads(p.stdout) if p.returncode == 0 else None
        t.ok(res is not None, "the example runs", p.stdout + p.stderr)
        if res is None:
                return
        t.ok(res["first"] == 1 and res["saved"] == 2, "save_notebook creates, then updates (one revision each)",
             short(res))
        t.ok(res["equal"], "load_notebook returns what was saved", res["loaded"])
        t.is_(res["conflict"], 2, "a save from a stale revision is a RevisionConflict with the current revision")
        with notebookd.Client(SOCK, user_id="readme") as c:
                nb = c.get("readme-nb")
                t.is_([x["code"] for x in nb["cells"]], ["x = 11", "select 1", "y = x"],
                      "the daemon holds the saved cells")


check_serving(t, d)
t.done()
