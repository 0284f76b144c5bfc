# SPDX-License-Identifier: MIT
"""A soak of sync through random faults: for NB_SOAK_SECONDS (default 10) one client edits a few
notebooks at random (cells added, changed, moved, deleted; notebooks renamed, deleted and made
again) while the fault proxy answers a share of the requests with 5xx, throttling, resets, late
or lost answers. Then the faults stop, and the table must hold exactly what notebookctl shows,
attribute by attribute (the boto3 reader), with no conflict and no notebook left in error.
NB_SOAK_SEED replays a run."""

import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TAP, Daemon, Dynalite, FaultProxy, ddbcheck, dynamodb_test_env, short, tmo,  # noqa: E402
                     wait_for)

t = TAP()
dynamodb_test_env(t, "AKIDSOAK", "soak-secret")

SECONDS = float(os.environ.get("NB_SOAK_SECONDS", "10"))
SEED = int(os.environ.get("NB_SOAK_SEED", str(int(time.time()))))
rng = random.Random(SEED)
t.diag(f"soak: {SECONDS} s, seed {SEED} (NB_SOAK_SEED={SEED} replays it)")

dyn = Dynalite(t).start()
proxy = FaultProxy(dyn.port, t, seed=SEED).start()
st, r = dyn.call("CreateTable", {
        "TableName": "notebooks", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in ("user_id", "notebook_id")],
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                      {"AttributeName": "notebook_id", "KeyType": "RANGE"}]})
t.ok(st == 200, "the table exists", short(r))

d = Daemon(t, config=f"[remote]\nendpoint = {proxy.endpoint}\ndebounce_ms = 20\nmax_delay_ms = 200\n"
                     "pull_interval_s = 1\nconnect_timeout_ms = 500\nrequest_timeout_ms = 1500\n")
d.start()
U = "soak"
c = d.client(timeout=tmo(20))
c.rpc("notebook.list", {"user_id": U})

TARGETS = ["PutItem", "DeleteItem", "GetItem", "Query"]
proxy.set_rules([
        {"mode": "error", "target": TARGETS, "status": 503, "probability": 0.08},
        {"mode": "throttle", "target": TARGETS, "probability": 0.08},
        {"mode": "reset", "target": TARGETS, "probability": 0.05},
        {"mode": "drop_response", "target": TARGETS, "probability": 0.08},
        {"mode": "delay", "target": TARGETS, "delay_ms": 400, "probability": 0.08},
        {"mode": "delay", "target": TARGETS, "delay_ms": 2000, "phase": "response", "probability": 0.03},
])

NOTEBOOKS = [f"nb{i}" for i in range(4)]
for nb in NOTEBOOKS:
        c.rpc("notebook.create", {"user_id": U, "notebook_id": nb, "name": nb})
ops = errors = 0
deadline = time.monotonic() + SECONDS
while time.monotonic() < deadline:
        nb = rng.choice(NOTEBOOKS)
        got = c.call("notebook.get", {"user_id": U, "notebook_id": nb})
        if "error" in got:
                c.rpc("notebook.create", {"user_id": U, "notebook_id": nb, "name": f"{nb} again"})
                ops += 1
                continue
        cells = [x["id"] for x in got["result"]["notebook"]["cells"]]
        k = rng.random()
        if k < 0.35 or not cells:
                req = ("cell.create", {"code": f"x = {rng.randrange(1000)}"})
        elif k < 0.65:
                req = ("cell.update", {"cell_id": rng.choice(cells), "code": "é" * rng.randrange(1, 50)})
        elif k < 0.75:
                req = ("cell.move", {"cell_id": rng.choice(cells), "position": rng.randrange(len(cells))})
        elif k < 0.85:
                req = ("cell.delete", {"cell_id": rng.choice(cells)})
        elif k < 0.95:
                req = ("notebook.update", {"name": f"{nb} {rng.randrange(100)}"})
        else:
                req = ("notebook.delete", {})
        reply = c.call(req[0], dict({"user_id": U, "notebook_id": nb}, **req[1]))
        ops += 1
        errors += "error" in reply
        time.sleep(rng.random() * 0.05)
t.diag(f"{ops} operations, {errors} refused by the daemon")
t.is_(errors, 0, "every operation was acknowledged (the faults are the table's, not the daemon's)")
stats = proxy.stats()
proxy.clear()
t.ok(sum(n for mode, per in stats["applied"].items() if mode != "pass" for n in per.values()) > 0,
     "faults were really injected", short(stats["applied"]))


def settled():
        s = d.rpc("daemon.status")["sync"]
        return s["pending"] == 0 and s["in_flight"] == 0 and not s["notebooks"]


t.ok(wait_for(settled, tmo(120), 0.2), "once the faults stop, everything settles",
     short(d.rpc("daemon.status")["sync"]))
st = d.rpc("daemon.status")["sync"]
t.is_(st["conflicts"], 0, "no conflict: every lost answer was recognised as our own write")

live = [n["id"] for n in c.rpc("notebook.list", {"user_id": U})["notebooks"]]
docs = "".join(json.dumps(c.rpc("notebook.get", {"user_id": U, "notebook_id": nb})) + "\n" for nb in live)
gone = [nb for nb in NOTEBOOKS if nb not in live]
rc, out, err = ddbcheck(dyn.endpoint, "--user", U, *[a for nb in gone for a in ("--absent", nb)], "-", input=docs)
t.ok(rc == 0, f"the table holds exactly the {len(live)} live notebooks, attribute by attribute", out + err)

c.close()
t.is_(d.stop(), 0, "SIGTERM: exit 0")
proxy.stop()
dyn.stop()
t.done()
