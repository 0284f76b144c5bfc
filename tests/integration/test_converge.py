# SPDX-License-Identifier: MIT
"""Convergence of multi-machine sync, checked by invariants over a seeded random workload.

One dynalite on 127.0.0.1; per seed a fresh user and NB_CONVERGE_MACHINES (default 3) daemons,
each with its own state directory and socket, each behind its own fault proxy to that dynalite,
all syncing the user's notebooks (debounce 20 ms, pull every second). For NB_CONVERGE_SECONDS
(default 15) one driver does random operations on random machines: cells created, updated,
deleted and moved, notebooks renamed, created, deleted and created again under a deleted id,
demo.reset; a "web backend" PutItems items straight into dynalite (a cell's code or the name
changed, revision + 1, a new sync_id, parent_sync_id the one it read, conditioned on the
revision and sync_id it read); the
proxies partition machines (blackouts, refused connections), lose answers, fail and throttle
requests; daemons are restarted (SIGTERM) and killed (SIGKILL, down for a while, then started
again on the same state directory).

Every mutation is sent with expected_revision = the revision of a notebook.get just before it, so
the notebook the operation acted on (its "view") is known (invariant (5) checks that a revision
names one content); an operation refused for a stale revision is not acknowledged and not
recorded. Every code and name written is a unique token. Late in the workload some deletes
retire their notebook (nothing touches it again), and at its end one shared and one private
notebook are deleted and retired, so that invariant (3) has deletes to check.

Then the faults stop, every daemon runs, and all are asked to pull until every one is settled
(nothing pending or in flight, no notebook in error) and nothing changes over two rounds. The
invariants, one TAP point each per seed:

 (1) every machine holds the same notebooks, field by field (only the cells' "status" is local),
     and the table holds exactly those (tests/tools/ddbcheck.py, the boto3 reader);
 (2) every acknowledged cell write survives: its token is the code of that cell, or of one of its
     conflict copies (ID~conflict...), on every machine and in the table, unless a later
     acknowledged operation whose view held the token removed it: an update or delete of the
     cell that held it, a notebook.delete or demo.reset of the notebook. A delete that did not see
     an edit does not excuse it (DESIGN.md: "a delete that did not see a later edit does not
     destroy it"; a cell deleted on one side and edited on the other survives).
     Names: every acknowledged name token is the final name, or the "local" value of a name
     conflict that sync.conflicts lists on some machine, unless replaced later: by a rename whose
     view had it as the name, by a newer name written on the same machine, or by any
     notebook.delete or demo.reset of that notebook (a name conflict is listed on one machine
     only, so a delete elsewhere cannot have seen it);
 (3) a notebook deleted and not touched by any acknowledged operation afterwards is gone from every
     machine and from the table, when nothing unseen could revive it: a private notebook (only its
     owner machine ever touches it) deleted by its owner, or a shared one deleted when every running
     machine held it clean at the table's revision (checked just before, nothing else running);
 (4) a notebook that only one machine (never the web writer) ever changed has no conflict copy
     and no entry in any machine's sync.conflicts;
 (5) on each machine a notebook's revision number names one content: every notebook.get the test
     makes is remembered, and the same revision read again must show the same name and cells
     (else expected_revision cannot tell a client that what it read has changed under it).

Seeds: NB_CONVERGE_SEED=N runs seed N (NB_CONVERGE_SEEDS of them from N on, default 1); else
NB_CONVERGE_SEEDS random seeds (default 3). The seed fixes every choice the driver makes; timing
(pulls, retries, the proxies' coin flips against request order) still varies between runs.
A failure prints the seed, the replay command, and per notebook what each machine and the table
hold, a timeline of the acknowledged operations and of every PutItem, DeleteItem and GetItem each
machine sent about it (the proxies keep the bodies; NB_CONVERGE_TRACE=0 turns that off), and the
daemons' log lines about it, between markers ("=== seconds notebook #step ...") that the test
writes into every daemon's log at each acknowledged operation. NB_KEEP=1 keeps the state
directories and the full logs. NB_CONVERGE_LOG_LEVEL sets the daemons' log level (debug).
The daemons must settle within NB_CONVERGE_HEAL_S (60) seconds once the faults stop."""

import datetime
import json
import os
import random
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (TAP, Daemon, Dynalite, FaultProxy, ddbcheck, dynamodb_test_env,  # noqa: E402
                     short, tmo)

ENV_SEED = os.environ.get("NB_CONVERGE_SEED")
N_SEEDS = int(os.environ.get("NB_CONVERGE_SEEDS", "1" if ENV_SEED else "3"))
SECONDS = float(os.environ.get("NB_CONVERGE_SECONDS", "15"))
N_MACHINES = max(2, int(os.environ.get("NB_CONVERGE_MACHINES", "3")))
LOG_LEVEL = os.environ.get("NB_CONVERGE_LOG_LEVEL", "debug")
# The proxies keep every request (body included) for the diagnostics of a failure.
TRACE = os.environ.get("NB_CONVERGE_TRACE", "1") != "0"
# After the faults stop, every machine must settle within HEAL_SOON seconds; past that the test
# waits up to HEAL_LIMIT (more than the daemon's longest backoff, 5 min) so that the invariants are
# still checked on what it converges to.
HEAL_SOON = float(os.environ.get("NB_CONVERGE_HEAL_S", "60"))
HEAL_LIMIT = max(HEAL_SOON, 330.0)
# Set-up, workload, healing and checks take about SECONDS + 30 s per seed; one slow healing fits.
# A later slow healing gets what is left of the budget once the other seeds' share is set aside.
PER_SEED = SECONDS + 60
os.environ.setdefault("NB_TEST_TIMEOUT", str(int(60 + N_SEEDS * PER_SEED + HEAL_LIMIT)))
BUDGET_END = time.monotonic() + 0.9 * float(os.environ["NB_TEST_TIMEOUT"]) * float(os.environ.get("NB_TIMEOUT_SCALE", "1"))

t = TAP()
dynamodb_test_env(t, "AKIDCONVERGE", "converge-secret")

if ENV_SEED:
        SEEDS = [int(ENV_SEED) + k for k in range(N_SEEDS)]
else:
        SEEDS = [random.SystemRandom().randrange(1, 1 << 31) for _ in range(N_SEEDS)]

TABLE = "notebooks"
TARGETS = ["PutItem", "DeleteItem", "GetItem", "Query"]
WRITES = ["PutItem", "DeleteItem"]
STALE, NOT_FOUND, EXISTS = -32011, -32010, -32014

dyn = Dynalite(t, memory=True).start()
st, r = dyn.call("CreateTable", {
        "TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in ("user_id", "notebook_id")],
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                      {"AttributeName": "notebook_id", "KeyType": "RANGE"}]})
if st != 200:
        t.ok(False, "the table exists", short(r))
        t.done()


def conf(endpoint):
        return (f"[remote]\nendpoint = {endpoint}\ntable = {TABLE}\ndebounce_ms = 20\nmax_delay_ms = 200\n"
                "pull_interval_s = 1\nconnect_timeout_ms = 500\nrequest_timeout_ms = 1500\n")


def now_iso():
        d = datetime.datetime.now(datetime.timezone.utc)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------------------------
# The table, read and written directly (consistent reads, no proxy)

def table_item(user, nb):
        st, r = dyn.call("GetItem", {"TableName": TABLE, "ConsistentRead": True,
                                     "Key": {"user_id": {"S": user}, "notebook_id": {"S": nb}}})
        if st != 200:
                raise RuntimeError(f"GetItem {nb}: {st} {short(r)}")
        return r.get("Item")


def table_items(user):
        items, start = {}, None
        while True:
                q = {"TableName": TABLE, "ConsistentRead": True, "KeyConditionExpression": "#u = :u",
                     "ExpressionAttributeNames": {"#u": "user_id"},
                     "ExpressionAttributeValues": {":u": {"S": user}}}
                if start:
                        q["ExclusiveStartKey"] = start
                st, r = dyn.call("Query", q)
                if st != 200:
                        raise RuntimeError(f"Query {user}: {st} {short(r)}")
                for it in r.get("Items", []):
                        items[it["notebook_id"]["S"]] = it
                start = r.get("LastEvaluatedKey")
                if not start:
                        return items


def item_view(item):
        """What the table holds of a notebook, in the same shape as view_of()."""
        if item is None:
                return None
        name = item.get("name", {})
        return {"rev": int(item["revision"]["N"]), "name": name.get("S"),
                "cells": [(c["M"]["id"]["S"], c["M"]["code"]["S"]) for c in item.get("cells", {}).get("L", [])]}


def view_of(nb):
        """The part of a protocol notebook the invariants look at."""
        if nb is None:
                return None
        return {"rev": nb["revision"], "name": nb["name"], "cells": [(c["id"], c["code"]) for c in nb["cells"]]}


def show_view(v):
        if v is None:
                return "(absent)"
        cells = " ".join(f"{cid}={code if code.isprintable() and ' ' not in code else short(json.dumps(code), 30)}"
                         for cid, code in v["cells"])
        return f"rev {v['rev']} name {v['name']!r} cells[{len(v['cells'])}]: {cells}"


def normalize(nb):
        """A notebook as every machine must hold it: the cells' "status" is local."""
        nb = json.loads(json.dumps(nb))
        for c in nb.get("cells", []):
                c.pop("status", None)
        return nb


def diff_notebooks(a, b):
        """Short lines naming what differs between two normalized notebooks."""
        out = []
        for k in sorted(set(a) | set(b)):
                if k == "cells":
                        continue
                if a.get(k) != b.get(k):
                        out.append(f"{k}: {short(a.get(k), 80)} vs {short(b.get(k), 80)}")
        ca, cb = a.get("cells", []), b.get("cells", [])
        ida, idb = [c["id"] for c in ca], [c["id"] for c in cb]
        if ida != idb:
                out.append(f"cell ids: {ida} vs {idb}")
        byb = {c["id"]: c for c in cb}
        for c in ca:
                o = byb.get(c["id"])
                if o is not None and o != c:
                        keys = [k for k in sorted(set(c) | set(o)) if c.get(k) != o.get(k)]
                        out.append(f"cell {c['id']}: " + ", ".join(f"{k} {short(c.get(k), 60)} vs {short(o.get(k), 60)}"
                                                                   for k in keys))
        return out


# --------------------------------------------------------------------------------------------
# A machine: a fault proxy and a daemon behind it

class Machine:
        def __init__(self, run, idx):
                self.run = run
                self.idx = idx
                self.name = f"m{idx}"
                self.proxy = FaultProxy(dyn.port, None, seed=run.seed * 16 + idx, log_bodies=TRACE).start()
                self.d = Daemon(None, config=conf(self.proxy.endpoint), log_level=LOG_LEVEL)
                self.client = None
                self.up = False
                self.down_until = None   # killed: started again at this time
                self.fault_until = None  # a fault is active until then
                self.fault = None

        def start(self):
                self.d.start(timeout=tmo(20))
                self.up = True
                self.down_until = None
                self.client = None

        def disconnect(self):
                if self.client:
                        self.client.close()
                        self.client = None

        def call(self, method, params=None):
                """The whole reply, or None when the daemon could not be reached (recorded as an
                unexpected problem)."""
                try:
                        if self.client is None:
                                self.client = self.d.client(timeout=tmo(20))
                        return self.client.call(method, params if params is not None else {})
                except (OSError, ConnectionError, TimeoutError, ValueError) as e:
                        self.disconnect()
                        alive = self.d.alive()
                        self.run.unexpected.append(f"{self.name}: {method}: {type(e).__name__}: {e}"
                                                   + ("" if alive else f" (daemon exited: {self.d.proc.returncode})"))
                        if not alive:
                                self.run.deaths.append(f"{self.name} exited with {self.d.proc.returncode} on its own")
                                self.up = False
                                self.start()
                        return None

        def rpc(self, method, params=None):
                r = self.call(method, params)
                if r is None or "error" in r:
                        raise RuntimeError(f"{self.name}: {method} {short(params)}: {short(r)}")
                return r["result"]

        def stop(self, sig=signal.SIGTERM):
                self.disconnect()
                st = self.d.stop(sig)
                self.up = False
                return st

        def status(self):
                return self.rpc("daemon.status")["sync"]


# --------------------------------------------------------------------------------------------
# One seed

class Run:
        def __init__(self, seed):
                self.seed = seed
                self.rng = random.Random(seed)
                self.user = f"cv{seed}"
                self.machines = []
                self.seq = 0
                self.ops = []            # acknowledged operations, in order
                self.unexpected = []     # errors that are not the workload's own (stale, not found)
                self.deaths = []         # daemons that exited on their own
                self.counts = {}
                self.shared = [f"blank-{self.user}", f"demo-{self.user}"]
                self.private = {}        # notebook id -> owner index
                self.next_shared = 0
                self.failed_points = []
                # Late in the workload some deletes retire their notebook: nothing touches it again,
                # so that invariant (3) has deletes to check.
                self.retire_after = None
                self.retired = set()
                self.last_rev = None
                self.t0 = time.time()
                self.rev_seen = {}     # (machine, notebook, revision) -> (view, when first seen)
                self.rev_clashes = []  # the same three, two contents
                self.proxy_logs = {}

        def count(self, what):
                self.counts[what] = self.counts.get(what, 0) + 1

        def up_machines(self):
                return [m for m in self.machines if m.up]

        # ---- recording ---------------------------------------------------------------------

        def record(self, who, kind, nb, view, **kw):
                kw.setdefault("rev", self.last_rev)
                op = dict(seq=self.seq, who=who, kind=kind, nb=nb, view=view, t=time.time(), **kw)
                self.ops.append(op)
                # A marker in every daemon's log, so that its lines can be read against the workload.
                line = f"=== {op['t'] - self.t0:.3f} {nb} {self.show_op(op)}\n".encode(errors="replace")
                for m in self.machines:
                        try:
                                with open(m.d.stderr_path, "ab") as f:
                                        f.write(line)
                        except OSError:
                                pass
                return op

        def ops_on(self, nb):
                return [op for op in self.ops if op["nb"] == nb]

        # ---- the workload -----------------------------------------------------------------

        def token(self, who, what="v"):
                return f"{what}{self.seed % 100000}.{self.seq}.{who}"

        def get(self, m, nb):
                """(view, raw reply): the notebook on m, view None when m has no live notebook nb."""
                r = m.call("notebook.get", {"user_id": self.user, "notebook_id": nb})
                if r is None:
                        return None, None
                if "error" in r:
                        if r["error"]["code"] != NOT_FOUND:
                                self.unexpected.append(f"{m.name}: notebook.get {nb}: {short(r)}")
                        return None, r
                view = view_of(r["result"]["notebook"])
                self.observe(m.name, nb, view, f"notebook.get at step #{self.seq}")
                return view, r

        def observe(self, who, nb, view, when):
                """Invariant (5): on one machine a revision number names one content, or
                expected_revision could not tell a client that what it read has changed."""
                key = (who, nb, view["rev"])
                seen = self.rev_seen.get(key)
                if seen is None:
                        self.rev_seen[key] = (view, when)
                elif (seen[0]["name"], seen[0]["cells"]) != (view["name"], view["cells"]):
                        self.rev_clashes.append((key, seen, (view, when)))
                        self.rev_seen[key] = (view, when)

        def mutate(self, m, method, params):
                """Sends a mutation; its result when acknowledged, None when refused for a reason the
                workload expects (stale revision, gone, exists) or an unexpected one (recorded)."""
                r = m.call(method, dict(params, user_id=self.user))
                if r is None:
                        return None
                if "error" in r:
                        code = r["error"].get("code")
                        if code in (STALE, NOT_FOUND, EXISTS):
                                self.count(f"refused {code}")
                        else:
                                self.unexpected.append(f"{m.name}: {method} {short(params)}: {short(r)}")
                        return None
                res = r["result"]
                self.last_rev = res["revision"] if "revision" in res else res.get("notebook", {}).get("revision")
                return res

        def op_create_notebook(self, m, nb, first=False):
                name = self.token(m.name, "n")
                cells = [{"id": f"c{self.seq}x{k}", "code": self.token(m.name, f"v{k}x")}
                         for k in range(self.rng.randrange(0 if not first else 1, 3))]
                res = self.mutate(m, "notebook.create", {"notebook_id": nb, "name": name, "cells": cells})
                if res is None:
                        return False
                self.record(m.name, "create", nb, None, name=name, cells=[(c["id"], c["code"]) for c in cells])
                self.count("notebook.create")
                return True

        def quiet(self, nb):
                """True when every machine runs and holds nb clean at the table's revision, or does not
                have it at all and has nothing of it to push: nobody holds an edit of nb unseen."""
                if len(self.up_machines()) != len(self.machines):
                        return False
                item = table_item(self.user, nb)
                if item is None:
                        return False
                rev = int(item["revision"]["N"])
                for m in self.machines:
                        st = m.status()
                        if st["in_flight"] or [x for x in st["notebooks"] if x["notebook_id"] == nb]:
                                return False
                        v, _ = self.get(m, nb)
                        if v is None or v["rev"] != rev:
                                return False
                return True

        def op_web(self):
                """The web backend: a cell's code or the name of an item, written straight to the
                table, conditioned on what it read."""
                live = [nb for nb in self.shared if nb not in self.retired]
                if not live:
                        return
                nb = self.rng.choice(live)
                want_name = self.rng.random() < 0.3
                pick = self.rng.random()
                item = table_item(self.user, nb)
                if item is None or "sync_id" not in item:
                        return
                view = item_view(item)
                new = json.loads(json.dumps(item))
                rev = int(item["revision"]["N"])
                op = {}
                if want_name or not view["cells"]:
                        op["name"] = self.token("web", "n")
                        new["name"] = {"S": op["name"]}
                        kind = "rename"
                else:
                        i = int(pick * len(view["cells"]))
                        op["cell"] = view["cells"][i][0]
                        op["code"] = self.token("web")
                        new["cells"]["L"][i]["M"]["code"] = {"S": op["code"]}
                        kind = "update"
                new["revision"] = {"N": str(rev + 1)}
                new["sync_id"] = {"S": "web-" + str(uuid.UUID(int=self.rng.getrandbits(128), version=4))}
                new["parent_sync_id"] = item["sync_id"]  # the version it was written on (doc/sync.md)
                new["updated_at"] = {"S": now_iso()}
                st, r = dyn.call("PutItem", {
                        "TableName": TABLE, "Item": new, "ConditionExpression": "#r = :r AND #s = :s",
                        "ExpressionAttributeNames": {"#r": "revision", "#s": "sync_id"},
                        "ExpressionAttributeValues": {":r": {"N": str(rev)}, ":s": item["sync_id"]}})
                if st == 200:
                        self.record("web", kind, nb, view, rev=rev + 1, sync_id=new["sync_id"]["S"][:12], **op)
                        self.count(f"web {kind}")
                elif isinstance(r, dict) and "ConditionalCheckFailed" in str(r.get("__type")):
                        self.count("web refused")
                else:
                        self.unexpected.append(f"web PutItem {nb}: {st} {short(r)}")

        def op_machine(self):
                ups = self.up_machines()
                m = self.rng.choice(ups)
                mine = [nb for nb, owner in self.private.items() if owner == m.idx and nb not in self.retired]
                shared = [nb for nb in self.shared if nb not in self.retired]
                if self.rng.random() < 0.3 and mine or not shared:
                        if not mine:
                                return
                        nb = self.rng.choice(mine)
                else:
                        nb = self.rng.choice(shared)
                k = self.rng.random()
                sub = self.rng.random()
                view, _ = self.get(m, nb)
                if view is None:
                        if k < 0.6:
                                if nb == f"demo-{self.user}" and k < 0.3:
                                        if self.mutate(m, "demo.reset", {}) is not None:
                                                self.record(m.name, "reset", nb, None)
                                                self.count("demo.reset (gone)")
                                else:
                                        self.op_create_notebook(m, nb)
                        return
                rev = view["rev"]
                cells = view["cells"]
                base = {"notebook_id": nb, "expected_revision": rev}
                cell = cells[int(sub * len(cells))][0] if cells else None
                if len(cells) > 30 and k < 0.5:
                        k = 0.62  # keep notebooks small: delete instead
                if k < 0.26 or not cells:
                        cid = f"c{self.seq}"
                        code = self.token(m.name)
                        p = dict(base, cell_id=cid, code=code)
                        w = self.rng.random()
                        if w < 0.4 and cells:
                                p["position"] = self.rng.randrange(len(cells) + 1)
                        elif w < 0.7 and cells:
                                p["after_cell_id"] = self.rng.choice(cells)[0]
                        if self.mutate(m, "cell.create", p) is not None:
                                self.record(m.name, "create_cell", nb, view, cell=cid, code=code)
                                self.count("cell.create")
                elif k < 0.58:
                        code = self.token(m.name)
                        if self.mutate(m, "cell.update", dict(base, cell_id=cell, code=code)) is not None:
                                self.record(m.name, "update", nb, view, cell=cell, code=code)
                                self.count("cell.update")
                elif k < 0.70:
                        if self.mutate(m, "cell.delete", dict(base, cell_id=cell)) is not None:
                                self.record(m.name, "delete_cell", nb, view, cell=cell)
                                self.count("cell.delete")
                elif k < 0.78:
                        p = dict(base, cell_id=cell, position=self.rng.randrange(len(cells)))
                        if self.mutate(m, "cell.move", p) is not None:
                                self.record(m.name, "move", nb, view, cell=cell)
                                self.count("cell.move")
                elif k < 0.86:
                        name = self.token(m.name, "n")
                        if self.mutate(m, "notebook.update", dict(base, name=name)) is not None:
                                self.record(m.name, "rename", nb, view, name=name)
                                self.count("notebook.update")
                elif k < 0.90 and nb == f"demo-{self.user}":
                        if self.mutate(m, "demo.reset", {"expected_revision": rev}) is not None:
                                self.record(m.name, "reset", nb, view)
                                self.count("demo.reset")
                elif k < 0.93:
                        verified = False
                        retire = self.rng.random() < 0.5 and time.monotonic() >= self.retire_after
                        if nb not in self.private and (sub < 0.5 or retire):
                                verified = harness.wait_for(lambda: self.quiet(nb), tmo(6 if retire else 2.5), 0.2)
                                self.count("verified delete" if verified else "unverified delete")
                                # What the delete acts on is what the machine holds now, after the wait.
                                view, _ = self.get(m, nb)
                                if view is None:
                                        return
                                base["expected_revision"] = view["rev"]
                        if self.mutate(m, "notebook.delete", base) is not None:
                                self.record(m.name, "delete", nb, view, verified=bool(verified))
                                self.count("notebook.delete")
                                if retire:
                                        self.retired.add(nb)
                                        self.count("retired")

        def expire_faults(self):
                """Ends the faults whose time is up, starts the machines whose down time is over."""
                now = time.monotonic()
                for m in self.machines:
                        if m.fault_until is not None and now >= m.fault_until:
                                m.proxy.clear()
                                m.fault_until = m.fault = None
                        if not m.up and m.down_until is not None and now >= m.down_until:
                                m.start()
                                self.count("started again")

        def step_faults(self):
                self.expire_faults()
                now = time.monotonic()
                for m in self.machines:
                        if m.fault is None and self.rng.random() < 0.04:
                                kind = self.rng.choice(["partition", "refuse", "lossy", "lost answers", "throttle",
                                                        "slow"])
                                dur = self.rng.uniform(0.5, 4.0)
                                rules = {
                                        "partition": [{"mode": "blackout"}],
                                        "refuse": [{"mode": "blackout", "refuse": True}],
                                        "lossy": [
                                                {"mode": "error", "target": TARGETS, "status": 503, "probability": 0.1},
                                                {"mode": "throttle", "target": TARGETS, "probability": 0.1},
                                                {"mode": "reset", "target": TARGETS, "probability": 0.05},
                                                {"mode": "drop_response", "target": TARGETS, "probability": 0.1},
                                                {"mode": "delay", "target": TARGETS, "delay_ms": 300, "probability": 0.1}],
                                        "lost answers": [{"mode": "drop_response", "target": WRITES, "probability": 0.6}],
                                        "throttle": [{"mode": "throttle", "target": TARGETS, "probability": 0.7}],
                                        "slow": [{"mode": "delay", "target": TARGETS, "delay_ms": 1200,
                                                  "phase": "response", "probability": 0.5}],
                                }[kind]
                                m.proxy.set_rules(rules)
                                m.fault, m.fault_until = kind, now + dur
                                self.count(f"fault {kind}")
                ups = self.up_machines()
                x = self.rng.random()
                if len(ups) >= 2 and x < 0.012:
                        m = self.rng.choice(ups)
                        if x < 0.006:
                                st = m.stop(signal.SIGTERM)
                                if st != 0:
                                        self.unexpected.append(f"{m.name}: SIGTERM: exit status {st}")
                                m.start()
                                self.count("restart")
                        else:
                                m.stop(signal.SIGKILL)
                                m.down_until = time.monotonic() + self.rng.uniform(0.2, 3.0)
                                self.count("kill -9")

        def workload(self, seconds):
                deadline = time.monotonic() + seconds
                self.retire_after = time.monotonic() + seconds * 0.65
                while time.monotonic() < deadline:
                        self.seq += 1
                        self.step_faults()
                        x = self.rng.random()
                        if x < 0.07:
                                self.op_web()
                        elif x < 0.09 and self.next_shared < 6:
                                nb = f"s{self.next_shared}"
                                if self.op_create_notebook(self.rng.choice(self.up_machines()), nb):
                                        self.shared.append(nb)
                                        self.next_shared += 1
                        else:
                                self.op_machine()
                        time.sleep(self.rng.random() * 0.04)
                self.final_deletes()

        def final_deletes(self):
                """One shared notebook (once every machine holds it clean at the table's revision, the
                faults running out meanwhile) and one machine's private notebook are deleted and
                retired, so that every seed checks invariant (3)."""
                self.seq += 1
                shared = [nb for nb in self.shared if nb not in self.retired]
                if shared:
                        nb = self.rng.choice(shared)
                        m = self.rng.choice(self.machines)
                        quiet = harness.wait_for(lambda: self.expire_faults() or self.quiet(nb), tmo(10), 0.2)
                        self.count("final shared delete " + ("verified" if quiet else "not verified"))
                        view, _ = self.get(m, nb) if m.up else (None, None)
                        if quiet and view is not None and self.mutate(m, "notebook.delete", {
                                        "notebook_id": nb, "expected_revision": view["rev"]}) is not None:
                                self.record(m.name, "delete", nb, view, verified=True)
                                self.retired.add(nb)
                self.seq += 1
                mine = [(nb, owner) for nb, owner in sorted(self.private.items()) if nb not in self.retired]
                if mine:
                        nb, owner = self.rng.choice(mine)
                        m = self.machines[owner]
                        if not m.up:
                                m.start()
                                self.count("started again")
                        view, _ = self.get(m, nb)
                        if view is not None and self.mutate(m, "notebook.delete", {
                                        "notebook_id": nb, "expected_revision": view["rev"]}) is not None:
                                self.record(m.name, "delete", nb, view, verified=False)
                                self.retired.add(nb)
                                self.count("final private delete")

        # ---- settling ---------------------------------------------------------------------

        @staticmethod
        def busy(st):
                """The notebooks a status lists that are not in sync: pending, being synced, in error,
                or (listed as "conflict") with a revision the table does not hold yet."""
                return [x for x in st["notebooks"] if x["state"] in ("pending", "syncing", "error")
                        or x["deleted"] or x["revision"] != x["base_revision"]]

        def settled_one(self, m):
                st = m.status()
                return st["pending"] == 0 and st["in_flight"] == 0 and not self.busy(st)

        def all_settled(self):
                return all(self.settled_one(m) for m in self.machines)

        def snapshot(self):
                """{machine: {id: normalized notebook}}, plus "table": {id: item}."""
                snap = {}
                for m in self.machines:
                        ids = [n["id"] for n in m.rpc("notebook.list", {"user_id": self.user})["notebooks"]]
                        snap[m.name] = {}
                        for nb in ids:
                                r = m.call("notebook.get", {"user_id": self.user, "notebook_id": nb})
                                if r and "result" in r:
                                        snap[m.name][nb] = normalize(r["result"]["notebook"])
                                        self.observe(m.name, nb, view_of(r["result"]["notebook"]), "after healing")
                snap["table"] = table_items(self.user)
                return snap

        def unsettled(self):
                """Per machine, what keeps it from being settled (empty when all are)."""
                out = []
                for m in self.machines:
                        st = m.status()
                        busy = [f"{x['notebook_id']} {x['state']} rev {x['revision']} base {x['base_revision']}"
                                + (f" ({x['error']})" if x.get("error") else "")
                                for x in self.busy(st)]
                        if st["pending"] or st["in_flight"] or busy:
                                out.append(f"{m.name}: {st['state']}, pending {st['pending']}, in flight {st['in_flight']}, "
                                           f"last error {st['last_error']!r}: {busy}")
                return out

        def heal(self, soon, limit):
                """Faults off, every daemon up, pulls until all are settled and a snapshot stays the same
                over two rounds. Returns (stable within soon, stable within limit, seconds taken, snapshot,
                what was unsettled at soon)."""
                for m in self.machines:
                        m.proxy.clear()
                        m.fault = m.fault_until = None
                        if not m.up:
                                m.start()
                start = time.monotonic()
                prev, late = None, None
                while time.monotonic() - start < limit:
                        if late is None and time.monotonic() - start >= soon:
                                late = self.unsettled() or ["settled, but still changing"]
                        for m in self.machines:
                                m.rpc("sync.pull", {})
                        left = (soon if late is None else limit) - (time.monotonic() - start)
                        harness.wait_for(self.all_settled, max(0.0, left), 0.2)
                        time.sleep(1.2)  # at least one more periodic pull everywhere
                        if not self.all_settled():
                                continue
                        snap = self.snapshot()
                        if snap == prev:
                                took = time.monotonic() - start
                                return late is None and took <= soon, True, took, snap, late
                        prev = snap
                return False, False, time.monotonic() - start, self.snapshot(), late or self.unsettled()

        # ---- diagnostics ------------------------------------------------------------------

        def history(self, nb, limit=60):
                lines = []
                for op in self.ops_on(nb)[-limit:]:
                        lines.append((op["t"], "  " + self.show_op(op)))
                return lines

        def show_op(self, op):
                extra = {k: v for k, v in op.items() if k not in ("seq", "who", "kind", "nb", "view", "t", "rev")}
                seen = "-" if op["view"] is None else op["view"]["rev"]
                text = (f"#{op['seq']} {op['who']} {op['kind']} (rev {seen} -> {op['rev']}) "
                        + " ".join(f"{k}={v}" for k, v in extra.items()))
                if op["kind"] in ("delete", "reset") and op["view"] is not None:
                        text += f"; it saw name {op['view']['name']!r} cells " + ",".join(
                                cid + ("=" + c if c.isprintable() and " " not in c else "") for cid, c in op["view"]["cells"])
                return text

        def log_lines(self, m, needle, limit=60):
                try:
                        with open(m.d.stderr_path, "rb") as f:
                                text = f.read().decode(errors="replace")
                except OSError:
                        return []
                hits = []
                for ln in text.splitlines():
                        if not (ln.startswith("--- start") or (needle in ln and not ln.endswith(" seen: none.")
                                                               and not (ln.startswith("=== ") and ln.split(" ")[2] != needle))):
                                continue
                        if hits and hits[-1][0] == ln:
                                hits[-1][1] += 1
                        else:
                                hits.append([ln, 1])
                return [ln + (f" (x{n})" if n > 1 else "") for ln, n in hits[-limit:]]

        def describe(self, nb, snap):
                out = [f"notebook {nb}:"]
                for m in self.machines:
                        v = view_of(snap.get(m.name, {}).get(nb))
                        out.append(f"  {m.name}: {show_view(v)}")
                out.append(f"  table: {show_view(item_view(snap.get('table', {}).get(nb)))}")
                for m in self.machines:
                        try:
                                cf = [c for c in m.rpc("sync.conflicts", {"user_id": self.user})["conflicts"]
                                      if c["notebook_id"] == nb]
                                if cf:
                                        out.append(f"  {m.name} conflicts: {short(cf, 400)}")
                        except Exception as e:
                                out.append(f"  {m.name} conflicts: ({e})")
                events = self.history(nb) + self.trace(nb)
                events.sort(key=lambda e: e[0])
                what = "each machine's requests about it through its proxy" if TRACE else "no requests: NB_CONVERGE_TRACE=0"
                out.append(f"  timeline (seconds since the seed's start): acknowledged operations (#seq) and {what};"
                           f" the last {min(len(events), 120)} of {len(events)}:")
                out += [f"  {tm - self.t0:8.3f} {line}" for tm, line in events[-120:]]
                for m in self.machines:
                        lines = self.log_lines(m, nb)
                        out.append(f"  {m.name} log about {nb} ({m.d.stderr_path}):")
                        out += ["    " + ln[:300] for ln in lines]
                return "\n".join(out)

        def proxy_log(self, m):
                if m.name not in self.proxy_logs:
                        try:
                                self.proxy_logs[m.name] = m.proxy.log(0) if m.proxy.alive() else []
                        except Exception:
                                self.proxy_logs[m.name] = []
                return self.proxy_logs[m.name]

        def trace(self, nb):
                """(time, line) for each PutItem, DeleteItem and GetItem about nb that a machine sent
                through its proxy: what it wrote, on which condition, and what came of it."""
                out = []
                for m in self.machines:
                        for e in self.proxy_log(m):
                                if e.get("target") not in ("PutItem", "DeleteItem", "GetItem") or "body" not in e:
                                        continue
                                try:
                                        b = json.loads(e["body"])
                                except ValueError:
                                        continue
                                item = b.get("Item") or b.get("Key") or {}
                                if item.get("notebook_id", {}).get("S") != nb:
                                        continue
                                vals = b.get("ExpressionAttributeValues", {})
                                cond = ""
                                if "ConditionExpression" in b:
                                        cond = (" if " + ("absent" if ":base" not in vals else
                                                          f"rev {vals[':base']['N']} sid {vals.get(':sid', {}).get('S', '-')[:8]}"))
                                what = ""
                                if e["target"] == "PutItem":
                                        v = item_view(item)
                                        what = (f" rev {v['rev']} sid {item.get('sync_id', {}).get('S', '-')[:8]} "
                                                f"name {v['name']!r} cells " + ",".join(
                                                        cid + ("=" + c if c.isprintable() and " " not in c else "")
                                                        for cid, c in v["cells"]))
                                fate = (f"{e['mode']}, table answered {e['upstream_status']}, daemon got {e['client']}"
                                        if e["mode"] != "pass" else
                                        f"table answered {e['upstream_status']}"
                                        + ("" if e["client"] == e["upstream_status"] else f", daemon got {e['client']}"))
                                out.append((e["time"], f"  {m.name} {e['target']}{what}{cond}: {fate}"))
                return out

        def point(self, cond, desc, diag=None):
                if not t.ok(cond, f"seed {self.seed}: {desc}", diag):
                        self.failed_points.append(desc)

        # ---- the invariants ---------------------------------------------------------------

        def check(self, snap):
                names = [m.name for m in self.machines]
                holders = names + ["table"]
                conflicts = {m.name: m.rpc("sync.conflicts", {"user_id": self.user})["conflicts"] for m in self.machines}
                final = {h: {} for h in holders}
                for m in names:
                        for nb, doc in snap[m].items():
                                final[m][nb] = view_of(doc)
                for nb, it in snap["table"].items():
                        final["table"][nb] = item_view(it)
                bad_nbs = set()

                # (1) identical everywhere, field by field, and equal to the table.
                ref = snap[names[0]]
                diffs = []
                for m in names[1:]:
                        for nb in sorted(set(ref) | set(snap[m])):
                                a, b = ref.get(nb), snap[m].get(nb)
                                if a is None or b is None:
                                        diffs.append(f"{nb}: {names[0]} {'has' if a else 'lacks'} it, "
                                                     f"{m} {'has' if b else 'lacks'} it")
                                        bad_nbs.add(nb)
                                elif a != b:
                                        diffs += [f"{nb} {names[0]} vs {m}: {x}" for x in diff_notebooks(a, b)]
                                        bad_nbs.add(nb)
                self.point(not diffs, "(1) every machine holds the same notebooks, field by field",
                           "\n".join(diffs[:40]) + ("\n" + "\n\n".join(self.describe(nb, snap)
                                                                       for nb in sorted(bad_nbs)[:3]) if diffs else ""))
                # ddbcheck wants the protocol's cells, status included: put it back (it is not compared).
                docs = "".join(json.dumps({"notebook": dict(ref[nb], cells=[dict(c, status="idle") for c in ref[nb]["cells"]])})
                               + "\n" for nb in sorted(ref))
                rc, out, err = ddbcheck(dyn.endpoint, "--table", TABLE, "--user", self.user, "-", input=docs)
                bad = sorted({ln.split(":")[0].split("/", 1)[-1] for ln in out.splitlines() if ln.startswith(self.user + "/")})
                self.point(rc == 0, f"(1) the table holds exactly what {names[0]} holds (ddbcheck)",
                           out + err + "\n" + "\n\n".join(self.describe(nb, snap) for nb in bad[:3]))

                # (2) cell writes.
                missing = []
                for op in self.ops:
                        writes = []
                        if op["kind"] in ("create_cell", "update"):
                                writes = [(op["cell"], op["code"])]
                        elif op["kind"] == "create":
                                writes = op["cells"]
                        for cell, code in writes:
                                if self.cell_superseded(op, cell, code):
                                        continue
                                where = []
                                for h in holders:
                                        v = final[h].get(op["nb"])
                                        if v is None:
                                                where.append(f"{h}: notebook absent")
                                        elif not any(code == c and (cid == cell or cid.startswith(cell + "~conflict"))
                                                     for cid, c in v["cells"]):
                                                other = [cid for cid, c in v["cells"] if c == code]
                                                where.append(f"{h}: not in {cell} or its copies"
                                                             + (f" (but in {other})" if other else ""))
                                if where:
                                        missing.append((op, cell, code, where))
                diag = "\n".join(f"#{op['seq']} {op['who']} {op['kind']} {op['nb']}/{cell} = {code}: " + "; ".join(w)
                                 for op, cell, code, w in missing[:30])
                for nb in sorted({op["nb"] for op, _, _, _ in missing})[:3]:
                        diag += "\n\n" + self.describe(nb, snap)
                self.point(not missing, f"(2) every acknowledged cell write that no later operation saw and "
                           f"replaced is there ({sum(1 for op in self.ops if op['kind'] in ('create_cell', 'update', 'create'))} writes)",
                           f"{len(missing)} lost:\n{diag}" if missing else None)

                # (2) names.
                lost = []
                for op in self.ops:
                        name = op.get("name") if op["kind"] in ("rename", "create") else None
                        if not name or self.name_superseded(op, name):
                                continue
                        present = [h for h in holders if (final[h].get(op["nb"]) or {}).get("name") == name]
                        listed = [m for m in names for c in conflicts[m]
                                  if c["notebook_id"] == op["nb"] and c.get("field") == "name" and c.get("local") == name]
                        if not present and not listed:
                                lost.append(op)
                diag = "\n".join(f"#{op['seq']} {op['who']} {op['kind']} {op['nb']} name {op['name']!r}: final names "
                                 + ", ".join(f"{h} {(final[h].get(op['nb']) or {}).get('name')!r}" for h in holders)
                                 for op in lost[:20])
                for nb in sorted({op["nb"] for op in lost})[:2]:
                        diag += "\n\n" + self.describe(nb, snap)
                self.point(not lost, "(2) every acknowledged name not replaced later is the name or a listed conflict",
                           diag if lost else None)

                # (3) deletes nobody undid.
                revived = []
                checked = 0
                for op in self.ops:
                        if op["kind"] != "delete":
                                continue
                        later = [x for x in self.ops_on(op["nb"]) if x["seq"] > op["seq"]]
                        sole = op["nb"] in self.private and all(x["who"] == op["who"] for x in self.ops_on(op["nb"]))
                        if later or not (sole or op["verified"]):
                                continue
                        checked += 1
                        where = [h for h in holders if final[h].get(op["nb"]) is not None]
                        if where:
                                revived.append((op, where))
                diag = "\n".join(f"#{op['seq']} {op['who']} deleted {op['nb']} "
                                 f"({'verified quiet' if op['verified'] else 'private'}), still on {where}"
                                 for op, where in revived)
                for nb in sorted({op["nb"] for op, _ in revived})[:2]:
                        diag += "\n\n" + self.describe(nb, snap)
                self.point(not revived, f"(3) a notebook deleted with nothing unseen and not touched since is gone "
                           f"everywhere ({checked} such deletes)", diag if revived else None)

                # (4) no conflict where one machine alone changed a notebook.
                spurious = []
                alone = 0
                for nb in sorted({op["nb"] for op in self.ops}):
                        who = {op["who"] for op in self.ops_on(nb)}
                        if len(who) != 1 or "web" in who:
                                continue
                        alone += 1
                        copies = [f"{h}: {cid}" for h in holders for cid, _ in (final[h].get(nb) or {"cells": []})["cells"]
                                  if "~conflict" in cid]
                        listed = [f"{m}: {c}" for m in names for c in conflicts[m] if c["notebook_id"] == nb]
                        if copies or listed:
                                spurious.append((nb, copies, listed))
                diag = "\n".join(f"{nb}: copies {copies}, listed {short(listed, 300)}" for nb, copies, listed in spurious)
                for nb, _, _ in spurious[:2]:
                        diag += "\n\n" + self.describe(nb, snap)
                self.point(not spurious, f"(4) no conflict in a notebook only one machine changed ({alone} such)",
                           diag if spurious else None)
                # (5) one revision, one content.
                diag = ""
                for (who, nb, rev), (v1, w1), (v2, w2) in self.rev_clashes[:5]:
                        diag += (f"{who} {nb} revision {rev}:\n  {w1}: {show_view(v1)}\n  {w2}: {show_view(v2)}\n")
                for nb in sorted({key[1] for key, _, _ in self.rev_clashes})[:2]:
                        diag += "\n" + self.describe(nb, snap)
                self.point(not self.rev_clashes, f"(5) on each machine a notebook's revision number never named two "
                           f"different contents ({len(self.rev_seen)} revisions read)",
                           f"{len(self.rev_clashes)} clashes:\n{diag}" if self.rev_clashes else None)
                return conflicts

        def cell_superseded(self, w, cell, code):
                """Whether an acknowledged operation after w acted on a view in which code was there and
                removed it: replaced the code of the cell holding it, deleted that cell, deleted or reset
                the notebook; or reset the demo notebook where it was gone (no expected_revision can be
                given then, so what it acted on is not known)."""
                for x in self.ops_on(w["nb"]):
                        if x["seq"] <= w["seq"]:
                                continue
                        if x["kind"] == "reset" and x["view"] is None:
                                return True  # a reset of a demo gone here: sent without expected_revision
                        if x["view"] is None:
                                continue
                        held = [cid for cid, c in x["view"]["cells"] if c == code]
                        if not held:
                                continue
                        if x["kind"] in ("delete", "reset"):
                                return True
                        if x["kind"] in ("update", "delete_cell") and x.get("cell") in held:
                                return True
                return False

        def name_superseded(self, w, name):
                """Whether a later acknowledged operation replaced the name written by w: a rename whose
                view had it as the name, a later name written on the same machine (its newer value takes
                the place of the older one, in the name or in that machine's conflict list), or any
                delete or reset of the notebook (a name conflict is listed on one machine only, so a delete
                elsewhere cannot have seen it)."""
                for x in self.ops_on(w["nb"]):
                        if x["seq"] <= w["seq"]:
                                continue
                        if x["kind"] in ("delete", "reset"):
                                return True
                        if x["kind"] == "rename" and x["view"] is not None and x["view"]["name"] == name:
                                return True
                        if x["kind"] in ("rename", "create") and x["who"] == w["who"] != "web":
                                return True
                return False


def run_seed(seed):
        run = Run(seed)
        t.diag(f"seed {seed}: {N_MACHINES} machines, {SECONDS:g} s of workload, user {run.user}")
        knobs = "".join(f"{k}={os.environ[k]} " for k in ("NB_CONVERGE_SECONDS", "NB_CONVERGE_MACHINES",
                                                           "NB_CONVERGE_HEAL_S", "NB_TIMEOUT_SCALE")
                        if os.environ.get(k))
        replay = f"NB_CONVERGE_SEED={seed} {knobs}make check TESTS=tests/integration/test_converge.py"
        completed = False
        try:
                for i in range(N_MACHINES):
                        run.machines.append(Machine(run, i))
                for m in run.machines:
                        m.start()
                        m.rpc("notebook.list", {"user_id": run.user})
                # Notebooks of everyone's, and one private notebook per machine.
                for i in range(2):
                        run.seq += 1
                        nb = f"s{run.next_shared}"
                        if run.op_create_notebook(run.rng.choice(run.machines), nb, first=True):
                                run.shared.append(nb)
                                run.next_shared += 1
                for m in run.machines:
                        run.seq += 1
                        nb = f"p{m.idx}"
                        if run.op_create_notebook(m, nb, first=True):
                                run.private[nb] = m.idx

                def agreed():
                        if not run.all_settled():
                                return False
                        views = [{n["id"]: n["revision"] for n in m.rpc("notebook.list", {"user_id": run.user})["notebooks"]}
                                 for m in run.machines]
                        return all(v == views[0] for v in views) and len(views[0]) == len(run.shared) + len(run.private)
                for m in run.machines:
                        m.rpc("sync.pull", {})
                good = harness.wait_for(agreed, tmo(30), 0.2)
                run.point(good, "set-up: every machine provisioned the user and holds the same notebooks",
                          short([m.rpc("notebook.list", {"user_id": run.user}) for m in run.machines], 2000))

                start = time.monotonic()
                run.workload(SECONDS)
                stats = [m.proxy.stats() for m in run.machines]
                injected = sum(n for s in stats for mode, per in s["applied"].items() if mode != "pass"
                               for n in per.values())
                t.diag(f"seed {seed}: {run.seq} steps in {time.monotonic() - start:.1f} s, {len(run.ops)} acknowledged; "
                       f"{injected} faults injected; " + ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items())))
                run.point(not run.unexpected and not run.deaths,
                          "the workload: every daemon answered, none died on its own, no unexpected error",
                          "\n".join(run.deaths + run.unexpected[:20]))

                later = len(SEEDS) - SEEDS.index(seed) - 1
                limit = max(tmo(HEAL_SOON), min(tmo(HEAL_LIMIT), BUDGET_END - time.monotonic() - later * tmo(PER_SEED)))
                soon, stable, took, snap, late = run.heal(tmo(HEAL_SOON), limit)
                run.point(soon, f"healed: within {HEAL_SOON:g} s every machine settled (nothing pending or in flight, "
                          f"no notebook in error) and nothing changed over two rounds (took {took:.0f} s)",
                          f"at {HEAL_SOON:g} s:\n" + "\n".join(late or []) + "\n" + (
                                  f"settled and stable after {took:.0f} s" if stable else
                                  f"still not settled after {took:.0f} s; the checks below see the state of then"))
                sts = {m.name: m.status() for m in run.machines}
                t.diag(f"seed {seed}: " + "; ".join(
                        f"{n}: pushes {s['pushes']} pulled {s['pulled']} merges {s.get('merges')} conflicts {s['conflicts']}"
                        for n, s in sts.items()))
                run.check(snap)
                deaths = [m.name for m in run.machines if not m.d.alive()]
                run.point(not deaths, "no daemon died during healing and checks", short(deaths))
                completed = True
        finally:
                if run.failed_points or not completed:
                        t.diag(f"seed {seed} failed ({', '.join(run.failed_points)}); replay: {replay}")
                for m in run.machines:
                        st = m.stop()
                        if st not in (0, None):
                                t.diag(f"{m.name}: SIGTERM at the end: exit status {st}")
                        m.proxy.stop()


t.diag(f"seeds: {' '.join(str(s) for s in SEEDS)}")
for seed in SEEDS:
        t.run(f"seed {seed}", run_seed, seed)
dyn.stop()
t.done()
