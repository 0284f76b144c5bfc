# SPDX-License-Identifier: MIT
"""History and restore (doc/protocol.md, notebook.history and notebook.restore; doc/storage.md,
"History"), against real daemons.

The invariants, checked after random edits of every kind (cells created, changed, deleted and
moved, notebook fields, whole contents replaced, restores, demo resets):
  * notebook.history lists exactly the revisions within history_revisions of the current one,
    newest first, each with what made it;
  * every revision listed reads back (notebook.get with revision) exactly as it was when it was
    current, and restores to exactly that content as a new revision;
  * a revision not listed is -32010, and nothing changes.
Then: history survives a restart; the age bound drops old records at start; history_revisions = 0
keeps none; a change of one small field of a cell with a large output records that field only;
and, with two daemons syncing through dynalite, a pull and a merge are each listed and undone by a
restore, which syncs to the other machine.

Every random choice comes from one seed (NB_SEED, printed); NB_HISTORY_OPS (default 300) sets the
number of random edits."""

import copy
import json
import os
import random
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TAP, Daemon, Dynalite, tmo  # noqa: E402

t = TAP()
SEED = int(os.environ.get("NB_SEED") or random.randrange(1 << 32))
OPS = max(10, int(os.environ.get("NB_HISTORY_OPS", "300")))
t.diag(f"seed {SEED} (NB_SEED={SEED} replays it)")
rng = random.Random(SEED)
KEEP = 25
USER = "hana"


def word():
        return "".join(rng.choice("abcdefgh\u00e9\u4e2d") for _ in range(rng.randint(1, 8)))


def random_outputs():
        kinds = [
                lambda: {"mime_type": "text/plain", "data": word(), "metadata": {}},
                lambda: {"mime_type": "image/png", "data": "iVBOR" + word() * 20, "metadata": {"w": rng.randint(1, 9)}},
                lambda: {"mime_type": "application/json", "data": {"k": [1, 2.5, word()]}, "metadata": {}},
        ]
        return [rng.choice(kinds)() for _ in range(rng.randint(0, 3))]


def random_fields():
        f = {}
        if rng.random() < 0.6:
                f["code"] = word() + " = " + str(rng.randint(0, 99))
        if rng.random() < 0.3:
                f["outputs"] = random_outputs()
        if rng.random() < 0.2:
                f["status"] = rng.choice(["idle", "running", "success", "error"])
        if rng.random() < 0.2:
                f["error"] = rng.choice([None, "Traceback: " + word()])
        if rng.random() < 0.2:
                f["reads"] = sorted({word() for _ in range(rng.randint(0, 3))})
        if rng.random() < 0.2:
                f["type"] = rng.choice(["python", "sql"])
        if rng.random() < 0.2:
                f["stdout"] = word()
        return f or {"code": word()}


class Book:
        """One notebook and every version it had, by revision."""

        def __init__(self, d, nb_id):
                self.d, self.id = d, nb_id
                self.versions = {}
                self.first = None  # the oldest revision of its current life (after a delete: anew)

        def record(self):
                nb = self.d.rpc("notebook.get", {"user_id": USER, "notebook_id": self.id})["notebook"]
                self.versions[nb["revision"]] = nb
                if self.first is None:
                        self.first = nb["revision"]
                return nb

        @property
        def current(self):
                return max(r for r in self.versions if r >= self.first)


def one_edit(d, book):
        nb = book.versions[book.current]
        cells = nb["cells"]
        base = {"user_id": USER, "notebook_id": book.id}
        ops = ["cell.create", "cell.update", "notebook.update", "replace", "restore"]
        if cells:
                ops += ["cell.delete", "cell.move", "cell.update"]
        op = rng.choice(ops)
        if op == "cell.create":
                p = dict(base, position=rng.randint(0, len(cells)), **random_fields())
                if rng.random() < 0.5:
                        p["cell_id"] = f"c{rng.randrange(10**6)}"
                d.rpc("cell.create", p)
        elif op == "cell.update" and cells:
                d.rpc("cell.update", dict(base, cell_id=rng.choice(cells)["id"], **random_fields()))
        elif op == "cell.update":
                return one_edit(d, book)
        elif op == "cell.delete":
                d.rpc("cell.delete", dict(base, cell_id=rng.choice(cells)["id"]))
        elif op == "cell.move":
                d.rpc("cell.move", dict(base, cell_id=rng.choice(cells)["id"], position=rng.randrange(len(cells))))
        elif op == "notebook.update":
                f = rng.choice([{"name": word()}, {"name": None}, {"db_conn_string": "postgres://" + word()},
                                {"ttl": rng.randint(2000000000, 2100000000)}, {"ttl": None}])
                d.rpc("notebook.update", dict(base, **f))
        elif op == "replace":
                # Keep some cells (some changed), drop others, add new ones, in a new order.
                new = []
                for c in cells:
                        if rng.random() < 0.7:
                                c = dict(c)
                                if rng.random() < 0.4:
                                        c.update(random_fields())
                                new.append(c)
                for _ in range(rng.randint(0, 3)):
                        new.append(dict({"id": f"r{rng.randrange(10**6)}"}, **random_fields()))
                rng.shuffle(new)
                p = dict(base, cells=new)
                if rng.random() < 0.3:
                        p["name"] = word()
                d.rpc("notebook.update", p)
        elif op == "restore":
                listed = [e["revision"] for e in d.rpc("notebook.history", base)["revisions"]]
                target = rng.choice(listed)
                got = d.rpc("notebook.restore", dict(base, revision=target, expected_revision=book.current))
                if got["notebook"]["revision"] != book.current + 1 or \
                   content(got["notebook"]) != content(book.versions[target]):
                        t.ok(False, f"restore of {book.id} to revision {target} gives its content",
                             f"got {json.dumps(got)[:2000]}\nwant {json.dumps(book.versions[target])[:2000]}")
        return op


def content(nb):
        """A version's content: what restore brings back (not its revision or time)."""
        nb = copy.deepcopy(nb)
        for k in ("revision", "updated_at"):
                nb.pop(k, None)
        return nb


def check_history(d, book, desc, keep=KEEP):
        base = {"user_id": USER, "notebook_id": book.id}
        h = d.rpc("notebook.history", base)
        cur = book.current
        listed = [e["revision"] for e in h["revisions"]]
        want = list(range(cur, max(book.first, cur - keep + 1) - 1, -1))
        ok = h["revision"] == cur and listed == want
        bad = []
        for r in listed:
                got = d.call("notebook.get", dict(base, revision=r))
                if got.get("result", {}).get("notebook") != book.versions.get(r):
                        bad.append((r, got, book.versions.get(r)))
        gone = [r for r in book.versions if book.first <= r < want[-1]]
        for r in rng.sample(gone, min(3, len(gone))):
                e = d.call("notebook.get", dict(base, revision=r)).get("error", {})
                if e.get("code") != -32010 or e.get("data", {}).get("param") != "revision":
                        bad.append((r, e, "-32010"))
        t.ok(ok and not bad, desc,
             f"current {cur}, listed {listed}, want {want}; mismatches: " + json.dumps(bad[:2])[:3000])
        return h


# ---- random edits, one daemon ----------------------------------------------------------------

d = Daemon(t, config=f"[daemon]\nhistory_revisions = {KEEP}\n").start()
d.rpc("notebook.list", {"user_id": USER})
books = [Book(d, f"demo-{USER}"), Book(d, f"blank-{USER}")]
d.rpc("notebook.create", {"user_id": USER, "notebook_id": "third", "name": "Third",
                          "cells": [{"id": "x", "code": "x = 1"}]})
books.append(Book(d, "third"))
for b in books:
        b.record()

h = d.rpc("notebook.history", {"user_id": USER, "notebook_id": "third"})
t.is_([(e["revision"], e["origin"]) for e in h["revisions"]], [(1, "create")], "a new notebook's history: its creation")

counts = {}
for i in range(OPS):
        b = rng.choice(books)
        op = one_edit(d, b)
        counts[op] = counts.get(op, 0) + 1
        b.record()
        if (i + 1) % (OPS // 3) == 0:
                for bk in books:
                        check_history(d, bk, f"after {i + 1} random edits: {bk.id}'s history lists the last "
                                             f"{KEEP} revisions and each reads back as it was")
t.diag("edits made: " + json.dumps(counts, sort_keys=True))
t.ok(all(counts.get(op, 0) > 0 for op in ("cell.create", "cell.update", "cell.delete", "cell.move", "replace",
                                           "restore", "notebook.update")),
     "every kind of edit was made", json.dumps(counts))

# Restore every listed revision of one notebook in turn: each gives exactly that content.
b = books[2]
bad = []
for e in d.rpc("notebook.history", {"user_id": USER, "notebook_id": b.id})["revisions"][:12]:
        r = e["revision"]
        want = content(b.versions[r])
        got = d.rpc("notebook.restore", {"user_id": USER, "notebook_id": b.id, "revision": r})["notebook"]
        if content(got) != want or got["revision"] != b.current + 1:
                bad.append(r)
        b.record()
t.ok(not bad, "restoring each listed revision gives exactly its content, as a new revision", f"bad: {bad}")
h = check_history(d, b, "restores are revisions of their own, listed with origin restore")
t.is_(h["revisions"][0]["origin"], "restore", "the newest revision says it is a restore")

# Bad requests: nothing changes.
cur = b.current
for params, code, desc in [
        ({"revision": cur + 5}, -32010, "a revision above the current one"),
        ({"revision": 0}, -32602, "revision 0"),
        ({"revision": "3"}, -32602, "a revision that is not a number"),
        ({}, -32602, "no revision"),
        ({"revision": cur, "expected_revision": cur - 1}, -32011, "a stale expected_revision"),
]:
        r = d.call("notebook.restore", dict({"user_id": USER, "notebook_id": b.id}, **params))
        t.is_(r.get("error", {}).get("code"), code, f"restore with {desc}: {code}")
t.is_(d.rpc("notebook.get", {"user_id": USER, "notebook_id": b.id})["notebook"], b.versions[cur],
      "after the refused restores the notebook is as it was")
r = d.call("notebook.restore", {"user_id": USER, "notebook_id": "nope", "revision": 1})
t.is_(r.get("error", {}).get("data", {}).get("notebook_id"), "nope", "restore of a notebook that does not exist: -32010 naming it")
r = d.call("notebook.history", {"user_id": USER, "notebook_id": b.id, "limit": 3})
t.is_(len(r["result"]["revisions"]), 3, "history with limit 3 lists 3")
r = d.call("notebook.history", {"user_id": USER, "notebook_id": b.id, "limit": 0})
t.is_(r.get("error", {}).get("code"), -32602, "history with limit 0: -32602")

# A delete ends the history; the id created again starts a new one.
d.rpc("notebook.delete", {"user_id": USER, "notebook_id": b.id})
r = d.call("notebook.history", {"user_id": USER, "notebook_id": b.id})
t.is_(r.get("error", {}).get("code"), -32010, "a deleted notebook has no history")
n = d.rpc("notebook.create", {"user_id": USER, "notebook_id": b.id})["notebook"]
h = d.rpc("notebook.history", {"user_id": USER, "notebook_id": b.id})
t.is_([(e["revision"], e["origin"]) for e in h["revisions"]], [(n["revision"], "create")],
      "created again, its history starts anew (the old content is not restorable into it)")
b.versions = {}
b.first = None
b.record()

# ---- restart, age bound, no history -----------------------------------------------------------

d.restart()
for bk in books[:2]:
        check_history(d, bk, f"after a restart, {bk.id}'s history is the same")

# notebookctl: history and restore as a user runs them.
bk = books[0]
rc, out, err = d.ctl("--user", USER, "history", bk.id)
lines = out.splitlines()
t.ok(rc == 0 and lines[0].split() == ["REV", "WHEN", "ORIGIN", "CHANGED"] and lines[1].startswith(str(bk.current))
     and "(current)" in lines[1] and len(lines) == 1 + min(KEEP, bk.current - bk.first + 1),
     "notebookctl history prints one line per revision, the current one marked", out + err)
target = bk.current - 2
rc, out, err = d.ctl("--user", USER, "restore", bk.id, str(target))
t.ok(rc == 0 and f"as revision {bk.current + 1}" in out, "notebookctl restore says which revision it made", out + err)
bk.record()
t.is_(content(bk.versions[bk.current]), content(bk.versions[target]), "and the notebook has that content")
rc, out, err = d.ctl("--user", USER, "--json", "show", bk.id, "--revision", str(target))
t.ok(rc == 0 and json.loads(out)["notebook"] == bk.versions[target], "notebookctl show --revision shows that revision", err)
rc, out, err = d.ctl("--user", USER, "restore", bk.id, "1")
t.ok(rc == 4 and "not in this notebook's history" in err, "notebookctl restore of a revision not kept: exit 4, says so", out + err)
rc, out, err = d.ctl("--user", USER, "restore", bk.id)
t.is_(rc, 2, "notebookctl restore without a revision: usage error")

# The age bound, applied at start: records older than history_max_age_days go, the newest stays.
d.stop()
db = sqlite3.connect(d.db)
db.execute("UPDATE history SET at = at - 40 * 86400 * 1000000")
db.commit()
db.close()
d.set_config(f"[daemon]\nhistory_revisions = {KEEP}\nhistory_max_age_days = 30\n")
d.start()
h = d.rpc("notebook.history", {"user_id": USER, "notebook_id": bk.id})
t.is_([e["revision"] for e in h["revisions"]], [bk.current],
      "after a start, history older than history_max_age_days is gone but for the newest record")
r = d.call("notebook.get", {"user_id": USER, "notebook_id": bk.id, "revision": bk.current - 1})
t.is_(r.get("error", {}).get("code"), -32010, "and the revision before it is no longer kept")
# Age counts from when a revision stopped being current: an edit today of a notebook left alone
# for 40 days can be undone, also after a restart.
b1 = books[1]
d.rpc("cell.create", {"user_id": USER, "notebook_id": b1.id, "code": "after a long pause"})
b1.record()
d.restart()
h = d.rpc("notebook.history", {"user_id": USER, "notebook_id": b1.id})
t.is_([e["revision"] for e in h["revisions"]], [b1.current, b1.current - 1],
      "a revision made 40 days ago but current until today is kept")
t.is_(content(d.rpc("notebook.get", {"user_id": USER, "notebook_id": b1.id, "revision": b1.current - 1})["notebook"]),
      content(b1.versions[b1.current - 1]), "and it reads back (its time as moved back above)")

d.stop()
d.set_config("[daemon]\nhistory_revisions = 0\n")
d.start()
d.rpc("cell.create", {"user_id": USER, "notebook_id": bk.id, "code": "no history"})
bk.record()
h = d.rpc("notebook.history", {"user_id": USER, "notebook_id": bk.id})
t.is_([(e["revision"], e["origin"]) for e in h["revisions"]], [(bk.current, None)],
      "history_revisions = 0: only the current revision, nothing kept")
db = sqlite3.connect(d.db)
t.is_(db.execute("SELECT count(*) FROM history").fetchone()[0], 0,
      "and the database holds no history at all")
db.close()
d.stop()
d.set_config("[daemon]\nhistory_revisions = 10001\nhistory_max_age_days = x\n")
rc, out, err = harness.run([harness.NOTEBOOKD, "--check-config", "--config", d.config_path])
t.ok(rc == 1 and "history_revisions must be a number from 0 to 10000" in out + err
     and "history_max_age_days must be a number" in out + err,
     "bad history settings are configuration errors, each named", out + err)

# ---- compact: one field of a cell with a large output ----------------------------------------

d.set_config("[daemon]\n")
d.start()
big = "A" * (1024 * 1024)
d.rpc("notebook.create", {"user_id": USER, "notebook_id": "big", "cells": [
        {"id": "img", "code": "plot()", "outputs": [{"mime_type": "image/png", "data": big, "metadata": {}}]}]})
for i in range(50):
        d.rpc("cell.update", {"user_id": USER, "notebook_id": "big", "cell_id": "img", "code": f"plot({i})"})
db = sqlite3.connect(d.db)
size = db.execute("SELECT coalesce(sum(length(cells)), 0) FROM history h JOIN notebooks n ON n.nb = h.nb "
                  "WHERE n.id = 'big'").fetchone()[0]
db.close()
t.ok(size < 4096, f"50 code edits of a cell with a 1 MiB output keep {size} bytes of history (only the code)")
nb = d.rpc("notebook.get", {"user_id": USER, "notebook_id": "big", "revision": 10})["notebook"]
t.ok(nb["cells"][0]["code"] == "plot(8)" and nb["cells"][0]["outputs"][0]["data"] == big,
     "and revision 10 reads back whole")
h = d.rpc("notebook.history", {"user_id": USER, "notebook_id": "big", "before": 40, "limit": 5})
t.is_([e["revision"] for e in h["revisions"]], [39, 38, 37, 36, 35], "history with before lists the revisions below it")

# Numbers come back digit for digit (cJSON's own printer rounds some).
exact = [0.30000000000000004, 9007199254740991, 1e-120, 2.5e125, -0.1, 123456789.12345679]
d.rpc("notebook.create", {"user_id": USER, "notebook_id": "nums", "ttl": 2000000001, "cells": [
        {"id": "n", "outputs": [{"mime_type": "application/json", "data": {"v": exact}, "metadata": {"x": exact}}]}]})
first = d.rpc("notebook.get", {"user_id": USER, "notebook_id": "nums"})["notebook"]
d.rpc("cell.update", {"user_id": USER, "notebook_id": "nums", "cell_id": "n",
                      "outputs": [{"mime_type": "application/json", "data": {"v": [0.3, 1]}, "metadata": {}}]})
d.rpc("notebook.update", {"user_id": USER, "notebook_id": "nums", "cells": [
        {"id": "n", "outputs": [{"mime_type": "application/json", "data": {"v": [0.30000000000000004]},
                                 "metadata": {}}]}]})
old = d.rpc("notebook.get", {"user_id": USER, "notebook_id": "nums", "revision": 1})["notebook"]
t.is_(old, first, "numbers in outputs read back from history digit for digit")
r = d.rpc("notebook.restore", {"user_id": USER, "notebook_id": "nums", "revision": 1})["notebook"]
t.is_(r["cells"], first["cells"], "and a restore stores them so")
d.stop()

# ---- sync: a pull and a merge are listed and undone ------------------------------------------

ok, why = Dynalite.available()
if not ok:
        t.skip("sync: pulls and merges in history", why)
        t.done()
harness.dynamodb_test_env(t, "AKIDHISTTEST", "history-test-secret")
dyn = Dynalite(t).start()
rc, out, err = harness.ddbcheck(dyn.endpoint, "--create-table")
t.ok(rc == 0, "the notebooks table exists", out + err)
conf = (f"[remote]\nendpoint = {dyn.endpoint}\ndebounce_ms = 50\nmax_delay_ms = 200\npull_interval_s = 1\n"
        "connect_timeout_ms = 1000\nrequest_timeout_ms = 2000\n")
a = Daemon(t, config=conf).start()
b2 = Daemon(t, config=conf).start()
for m in (a, b2):
        m.rpc("notebook.list", {"user_id": USER})


def settled(m):
        st = m.rpc("daemon.status")["sync"]
        return st["pending"] == 0 and st["in_flight"] == 0


def wait(cond, desc, timeout=30):
        ok = harness.wait_for(cond, tmo(timeout), 0.1)
        t.ok(ok, desc)
        return ok


def get(m, rev=None):
        p = {"user_id": USER, "notebook_id": "shared"}
        if rev is not None:
                p["revision"] = rev
        return m.rpc("notebook.get", p)["notebook"]


a.rpc("notebook.create", {"user_id": USER, "notebook_id": "shared", "name": "Shared",
                          "cells": [{"id": "p", "code": "p = 1"}, {"id": "q", "code": "q = 2"}]})
wait(lambda: settled(a), "machine A pushed its notebook")
b2.rpc("sync.pull")
wait(lambda: b2.call("notebook.get", {"user_id": USER, "notebook_id": "shared"}).get("result"),
     "machine B pulled it")
before_pull = get(b2)
a.rpc("cell.update", {"user_id": USER, "notebook_id": "shared", "cell_id": "p", "code": "p = 10"})
wait(lambda: settled(a), "A pushed an edit")
b2.rpc("sync.pull")
wait(lambda: get(b2)["cells"][0]["code"] == "p = 10", "B pulled the edit")
h = b2.rpc("notebook.history", {"user_id": USER, "notebook_id": "shared"})
t.is_(h["revisions"][0]["origin"], "pull", "B's history lists the pulled version with origin pull")
t.is_(content(get(b2, before_pull["revision"])), content(before_pull), "and B's version before the pull reads back")


def offline_edit(m, method, params):
        """An edit made on m while it cannot reach the table, then m back online: its next pull
        finds the table moved on and merges."""
        m.stop()
        m.set_config(conf.replace(dyn.endpoint, "http://127.0.0.1:1"))
        m.start()
        m.rpc(method, dict({"user_id": USER, "notebook_id": "shared"}, **params))
        before = get(m)
        m.stop()
        m.set_config(conf)
        m.start()
        return before


# Both edit the same notebook: B merges.
b2.stop()
a.rpc("cell.update", {"user_id": USER, "notebook_id": "shared", "cell_id": "q", "code": "q = 20"})
wait(lambda: settled(a), "A pushed another edit while B was down")
before_merge = offline_edit(b2, "cell.create", {"cell_id": "b-own", "code": "mine = 1"})
wait(lambda: any(c["code"] == "q = 20" for c in get(b2)["cells"]) and settled(b2), "B merged A's edit with its own")
h = b2.rpc("notebook.history", {"user_id": USER, "notebook_id": "shared"})
origins = [e["origin"] for e in h["revisions"]]
t.ok("merge" in origins, "B's history lists the merge", json.dumps(h["revisions"][:4]))
merged = get(b2)
t.ok(any(c["id"] == "b-own" for c in merged["cells"]) and any(c["code"] == "q = 20" for c in merged["cells"]),
     "the merge holds both edits")
wait(lambda: a.rpc("notebook.get", {"user_id": USER, "notebook_id": "shared"})["notebook"]["revision"] ==
     merged["revision"], "A has the merge")

# Undo the merge on B: restore the revision before it. It syncs to A.
r = b2.rpc("notebook.restore", {"user_id": USER, "notebook_id": "shared", "revision": before_merge["revision"]})
t.is_(content(r["notebook"]), content(before_merge), "B restores its version from before the merge")
wait(lambda: settled(b2) and content(a.rpc("notebook.get", {"user_id": USER, "notebook_id": "shared"})["notebook"])
     == content(get(b2)), "the restore syncs: A has the same content")
h = a.rpc("notebook.history", {"user_id": USER, "notebook_id": "shared"})
t.ok(h["revisions"][0]["origin"] == "pull", "on A the restore arrived as a pull, itself undoable",
     json.dumps(h["revisions"][:3]))


def a_get():
        return a.rpc("notebook.get", {"user_id": USER, "notebook_id": "shared"})["notebook"]


def converged():
        return settled(a) and settled(b2) and content(a_get()) == content(get(b2))


# A conflicting merge, undone: its conflict goes with the copy cell it named.
wait(converged, "A and B agree")
b2.stop()
a.rpc("cell.update", {"user_id": USER, "notebook_id": "shared", "cell_id": "p", "code": "p = 'A'"})
wait(lambda: settled(a), "A pushed its version of cell p while B was down")
before_conflict = offline_edit(b2, "cell.update", {"cell_id": "p", "code": "p = 'B'"})
wait(lambda: b2.rpc("sync.conflicts", {"user_id": USER, "notebook_id": "shared"})["conflicts"],
     "B's edit of the same cell merges into a conflict")
b2.rpc("notebook.restore", {"user_id": USER, "notebook_id": "shared", "revision": before_conflict["revision"]})
t.is_(b2.rpc("sync.conflicts", {"user_id": USER, "notebook_id": "shared"})["conflicts"], [],
      "restoring the revision before the conflicting merge leaves no conflict naming a cell that is gone")
wait(converged, "and both machines converge on the restored content")

# A pull jumping past history_revisions revisions is still undone: the bound counts records.
before_jump = get(b2)
b2.stop()
conf += "[daemon]\nhistory_revisions = 3\n"
b2.set_config(conf)
for i in range(10):
        a.rpc("cell.update", {"user_id": USER, "notebook_id": "shared", "cell_id": "q", "code": f"q = {i}"})
wait(lambda: settled(a), "A made 10 edits while B was down")
b2.start()
b2.rpc("sync.pull")
wait(lambda: get(b2)["revision"] == a_get()["revision"], "B pulled them as one version")
h = b2.rpc("notebook.history", {"user_id": USER, "notebook_id": "shared"})
t.is_([(e["revision"], e["origin"]) for e in h["revisions"]][0], (a_get()["revision"], "pull"),
      "with history_revisions = 3, B lists the pull of 10 revisions at once")
t.is_(h["revisions"][1]["revision"], before_jump["revision"], "and, next, the revision before it")
t.is_(content(get(b2, before_jump["revision"])), content(before_jump),
      "and the revision before the jump reads back")
for i in range(16):
        a.rpc("cell.update", {"user_id": USER, "notebook_id": "shared", "cell_id": "q", "code": f"q = 1{i}"})
wait(lambda: settled(a), "A made 16 more edits")
b2.rpc("sync.pull")
wait(lambda: get(b2)["revision"] == a_get()["revision"], "B pulled them as one version, past a multiple of 16")
db = sqlite3.connect(b2.db)
rows = db.execute("SELECT count(*) FROM history h JOIN notebooks n ON n.nb = h.nb WHERE n.id = 'shared'").fetchone()[0]
db.close()
t.ok(rows <= 3, f"B's records past the bound were deleted at that pull ({rows} kept of history_revisions = 3)")

# Deleted and created again on A: B's history of the old notebook does not carry over.
a.rpc("notebook.delete", {"user_id": USER, "notebook_id": "shared"})
wait(lambda: settled(a), "A deleted the notebook")
a.rpc("notebook.create", {"user_id": USER, "notebook_id": "shared", "cells": [{"id": "new", "code": "anew"}]})
wait(lambda: settled(a), "A created it again")
b2.rpc("sync.pull")
wait(lambda: b2.call("notebook.get", {"user_id": USER, "notebook_id": "shared"}).get("result", {}).get(
        "notebook", {}).get("created_at") == a_get()["created_at"], "B took the new notebook")
h = b2.rpc("notebook.history", {"user_id": USER, "notebook_id": "shared"})
t.is_([e["origin"] for e in h["revisions"]], ["pull"], "its history on B starts with the pull of the new one")
t.done()
