# SPDX-License-Identifier: MIT
"""Sync to a DynamoDB-compatible server (dynalite on 127.0.0.1): pushes converge, bursts are
coalesced, an outage is waited out, newer remote versions are pulled, conflicts are kept, and a
restart resumes pending work. Skipped when dynalite is not installed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TAP, Daemon, make_tempdir, short, tmo  # noqa: E402

t = TAP()

# The dynalite every DynamoDB test runs (harness: NB_DYNALITE_CLI, which make check sets).
available, why = harness.Dynalite.available()
if not available:
        t.skip_all(why)

# Credentials for the signer; dynalite does not check them. No metadata lookups, ever.
os.environ.update({"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "test-secret",
                   "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1"})
for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        os.environ.pop(var, None)


def free_port():
        with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return s.getsockname()[1]


class Dynalite:
        def __init__(self):
                self.port = free_port()
                self.path = make_tempdir("nbdyn-")
                self.proc = None

        def start(self):
                self.proc = subprocess.Popen([harness.NODE, harness.DYNALITE_CLI, "--host", "127.0.0.1", "--port",
                                              str(self.port), "--path", self.path, "--createTableMs", "0",
                                              "--deleteTableMs", "0"],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.monotonic() + tmo(20)
                while time.monotonic() < deadline:
                        try:
                                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                                return
                        except OSError:
                                time.sleep(0.1)
                raise RuntimeError("dynalite did not start")

        def stop(self):
                if self.proc and self.proc.poll() is None:
                        self.proc.send_signal(signal.SIGTERM)
                        self.proc.wait(timeout=10)

        def call(self, target, body):
                """One DynamoDB call, as an independent client (dynalite does not verify signatures)."""
                req = urllib.request.Request(
                        f"http://127.0.0.1:{self.port}/", data=json.dumps(body).encode(), method="POST",
                        headers={"Content-Type": "application/x-amz-json-1.0",
                                 "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                                 "X-Amz-Target": f"DynamoDB_20120810.{target}",
                                 "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/"
                                                  "dynamodb/aws4_request, SignedHeaders=host, Signature=00"})
                try:
                        with urllib.request.urlopen(req, timeout=10) as r:
                                return json.loads(r.read() or b"{}")
                except urllib.error.HTTPError as e:
                        return {"error": json.loads(e.read() or b"{}")}

        def item(self, user, nb):
                return self.call("GetItem", {"TableName": "notebooks", "ConsistentRead": True,
                                             "Key": {"user_id": {"S": user}, "notebook_id": {"S": nb}}}).get("Item")


def plain(av):
        """An AttributeValue as plain JSON."""
        (k, v), = av.items()
        if k == "S" or k == "BOOL":
                return v
        if k == "N":
                return int(v) if v.lstrip("-").isdigit() else float(v)
        if k == "NULL":
                return None
        if k == "L":
                return [plain(x) for x in v]
        return {a: plain(b) for a, b in v.items()}


def av(v):
        if v is None:
                return {"NULL": True}
        if isinstance(v, bool):
                return {"BOOL": v}
        if isinstance(v, (int, float)):
                return {"N": json.dumps(v)}
        if isinstance(v, str):
                return {"S": v}
        if isinstance(v, list):
                return {"L": [av(x) for x in v]}
        return {"M": {k: av(x) for k, x in v.items()}}


CELL_KEYS = ("id", "type", "code", "stdout", "outputs", "error", "reads", "writes")


def compare(item, nb):
        """Differences between a table item and the notebook as notebookctl shows it."""
        if item is None:
                return ["no item"]
        got = {k: plain(v) for k, v in item.items()}
        want = {"user_id": nb["user_id"], "notebook_id": nb["id"], "name": nb["name"],
                "db_conn_string": nb["db_conn_string"], "revision": nb["revision"],
                "created_at": nb["created_at"], "updated_at": nb["updated_at"],
                "cells": [{k: c[k] for k in CELL_KEYS} for c in nb["cells"]]}
        for k in ("ttl", "demo_version"):
                if nb.get(k) is not None:
                        want[k] = nb[k]
        diffs = [f"{k}: table {short(got.get(k), 120)} != local {short(v, 120)}" for k, v in want.items()
                 if got.get(k) != v]
        extra = set(got) - set(want) - {"sync_id", "parent_sync_id"}
        if extra:
                diffs.append(f"unexpected attributes {sorted(extra)}")
        if not isinstance(got.get("sync_id"), str):
                diffs.append("no sync_id")
        return diffs


def wait_for(cond, timeout):
        return harness.wait_for(cond, tmo(timeout), 0.1)


dyn = Dynalite()
dyn.start()
created = dyn.call("CreateTable", {
        "TableName": "notebooks", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"}
                                 for a in ("user_id", "notebook_id", "created_at")],
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                      {"AttributeName": "notebook_id", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
                {"IndexName": "NotebookByIdIndex", "KeySchema": [{"AttributeName": "notebook_id", "KeyType": "HASH"}],
                 "Projection": {"ProjectionType": "ALL"}},
                {"IndexName": "NotebooksByUserCreatedIndex",
                 "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                               {"AttributeName": "created_at", "KeyType": "RANGE"}],
                 "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name", "updated_at"]}}]})
t.ok("TableDescription" in created, "the test table exists", short(created))

CONF = (f"[remote]\nendpoint = http://127.0.0.1:{dyn.port}\ndebounce_ms = 50\nmax_delay_ms = 300\n"
        "pull_interval_s = 1\nconnect_timeout_ms = 500\nrequest_timeout_ms = 3000\n")
d = Daemon(t, config=CONF)
d.start()


def show(nb, user="alice"):
        return d.rpc("notebook.get", {"user_id": user, "notebook_id": nb})["notebook"]


def synced(nb, user="alice"):
        local = show(nb, user)
        return not compare(dyn.item(user, nb), local)


@t.case("provisioned notebooks reach the table, in the seed's shape")
def _():
        d.rpc("notebook.list", {"user_id": "alice"})
        for nb in ("blank-alice", "demo-alice"):
                t.ok(wait_for(lambda: synced(nb), 10), f"{nb}: the table item equals the local notebook",
                     "\n".join(compare(dyn.item("alice", nb), show(nb))))
        st = d.rpc("daemon.status")["sync"]
        t.is_(st.get("mode"), "dynamodb", "status: mode dynamodb")
        t.ok(wait_for(lambda: d.rpc("daemon.status")["sync"].get("pending") == 0, 5), "status: nothing pending")


@t.case("a burst of edits is coalesced and converges")
def _():
        before = dyn.item("alice", "demo-alice")
        c = d.client()
        for i in range(30):
                c.rpc("cell.update", {"user_id": "alice", "notebook_id": "demo-alice", "cell_id": "demo-cell-1",
                                      "code": f"x = {i}"})
        c.close()
        t.ok(wait_for(lambda: synced("demo-alice"), 10), "the table holds the last edit",
             "\n".join(compare(dyn.item("alice", "demo-alice"), show("demo-alice"))))
        pushes = d.rpc("daemon.status")["sync"]["pushes"]
        t.ok(pushes < 2 + 30, f"30 edits took far fewer than 30 writes ({pushes} pushes in all)")
        t.ok(before is not None, "there was an earlier version")


@t.case("an outage is waited out; nothing acknowledged is lost")
def _():
        dyn.stop()
        for i in range(5):
                d.rpc("cell.create", {"user_id": "alice", "notebook_id": "blank-alice", "code": f"offline {i}"})
        st = wait_for(lambda: (lambda s: s if s.get("state") == "offline" else None)(d.rpc("daemon.status")["sync"]),
                      10)
        # The pull that finds the endpoint gone may say "offline" while the edits' write is still
        # in flight (its token waiting to be on disk, or its connection failing): work either way.
        t.ok(st and st.get("pending", 0) + st.get("in_flight", 0) >= 1, "status: offline, with pending work",
             short(st))
        t.ok(st and st.get("last_error"), "status: says why", short(st))
        dyn.start()
        t.ok(wait_for(lambda: synced("blank-alice"), 60), "after the outage the table catches up",
             "\n".join(compare(dyn.item("alice", "blank-alice"), show("blank-alice"))))
        t.ok(wait_for(lambda: d.rpc("daemon.status")["sync"].get("state") == "online", 10), "status: online again")


@t.case("a newer version written elsewhere is pulled into a clean notebook")
def _():
        local = show("blank-alice")
        item = {k: av(v) for k, v in (("user_id", "alice"), ("notebook_id", "blank-alice"),
                                      ("name", "Renamed elsewhere"), ("db_conn_string", None),
                                      ("revision", local["revision"] + 5), ("created_at", local["created_at"]),
                                      ("updated_at", "2026-12-01T00:00:00.000Z"), ("sync_id", "other-device"))}
        item["cells"] = av([{k: c[k] for k in CELL_KEYS} for c in local["cells"][:1]])
        r = dyn.call("PutItem", {"TableName": "notebooks", "Item": item})
        t.ok("error" not in r, "another device writes revision +5", short(r))
        got = wait_for(lambda: (lambda n: n if n["revision"] == local["revision"] + 5 else None)(show("blank-alice")),
                       10)
        t.ok(got and got["name"] == "Renamed elsewhere" and len(got["cells"]) == 1,
             "the local notebook takes the remote version", short(got))


@t.case("changed here and there: merged; a field both changed is a conflict until resolved")
def _():
        local = show("demo-alice")
        item = dyn.item("alice", "demo-alice")
        item["revision"] = {"N": str(local["revision"] + 3)}
        item["sync_id"] = {"S": "other-device-2"}
        item["name"] = {"S": "Remote name"}
        item["cells"]["L"][0]["M"]["code"] = {"S": "x = 'remote edit'"}
        # Edit first, then write remotely within the debounce, so that the push finds the remote
        # moved on: both sides changed.
        d.rpc("notebook.update", {"user_id": "alice", "notebook_id": "demo-alice", "name": "Local name"})
        d.rpc("cell.update", {"user_id": "alice", "notebook_id": "demo-alice", "cell_id": "demo-cell-2",
                              "code": "y = 'local edit'"})
        dyn.call("PutItem", {"TableName": "notebooks", "Item": item})
        st = wait_for(lambda: [n for n in d.rpc("daemon.status")["sync"].get("notebooks", [])
                               if n["notebook_id"] == "demo-alice" and n["state"] == "conflict"], 10)
        t.ok(st, "status lists demo-alice in conflict", short(d.rpc("daemon.status")["sync"]))
        got = show("demo-alice")
        codes = {c["id"]: c["code"] for c in got["cells"]}
        t.is_(got["name"], "Remote name", "the remote's name stands")
        t.ok(codes.get("demo-cell-1") == "x = 'remote edit'" and codes.get("demo-cell-2") == "y = 'local edit'",
             "edits to different cells are both kept", short(codes))
        conflicts = d.rpc("sync.conflicts", {"user_id": "alice", "notebook_id": "demo-alice"})["conflicts"]
        t.ok(len(conflicts) == 1 and conflicts[0].get("field") == "name" and conflicts[0].get("local") == "Local name",
             "the local name is kept as a conflict", short(conflicts))
        t.ok(wait_for(lambda: synced("demo-alice"), 20), "the merge reaches the table",
             "\n".join(compare(dyn.item("alice", "demo-alice"), show("demo-alice"))))
        r = d.rpc("sync.resolve", {"user_id": "alice", "notebook_id": "demo-alice", "field": "name", "keep": "local"})
        t.is_(r.get("resolved"), 1, "resolved, keeping the local name")
        t.is_(show("demo-alice")["name"], "Local name", "the local name is back")
        t.is_(d.rpc("sync.conflicts", {"user_id": "alice"})["conflicts"], [], "no conflict left")
        t.ok(wait_for(lambda: synced("demo-alice"), 20), "and the table has it",
             "\n".join(compare(dyn.item("alice", "demo-alice"), show("demo-alice"))))


@t.case("a restart resumes pending work")
def _():
        dyn.stop()
        d.rpc("cell.create", {"user_id": "alice", "notebook_id": "blank-alice", "code": "written while down"})
        t.is_(d.stop(), 0, "daemon stops cleanly with work pending")
        dyn.start()
        d.start()
        t.ok(wait_for(lambda: synced("blank-alice"), 20), "the pending edit reaches the table after the restart",
             "\n".join(compare(dyn.item("alice", "blank-alice"), show("blank-alice"))))


@t.case("deleting a notebook deletes its item")
def _():
        d.rpc("notebook.create", {"user_id": "alice", "notebook_id": "short-lived"})
        t.ok(wait_for(lambda: synced("short-lived"), 10), "created remotely")
        d.rpc("notebook.delete", {"user_id": "alice", "notebook_id": "short-lived"})
        t.ok(wait_for(lambda: dyn.item("alice", "short-lived") is None, 10), "and deleted remotely")


@t.case("through faults (lost answers, throttling, 5xx, resets): converges, no spurious conflict")
def _():
        try:
                from harness import FaultProxy
        except ImportError:
                t.skip("fault injection", "harness has no FaultProxy")
                return
        proxy = FaultProxy(dyn.port, t)
        proxy.start()
        conf = CONF.replace(f"http://127.0.0.1:{dyn.port}", proxy.endpoint)
        d2 = Daemon(t, config=conf)
        d2.start()
        try:
                proxy.set_rules([
                        {"mode": "drop_response", "target": "PutItem", "count": 3},
                        {"mode": "throttle", "target": "PutItem", "count": 3},
                        {"mode": "error", "target": "PutItem", "count": 2},
                        {"mode": "reset", "target": "PutItem", "count": 2},
                ])
                d2.rpc("notebook.list", {"user_id": "faulty"})
                for i in range(12):
                        d2.rpc("cell.update", {"user_id": "faulty", "notebook_id": "demo-faulty",
                                               "cell_id": "demo-cell-1", "code": f"x = {i}"})
                        time.sleep(0.15)

                def converged():
                        local = d2.rpc("notebook.get", {"user_id": "faulty", "notebook_id": "demo-faulty"})["notebook"]
                        return not compare(dyn.item("faulty", "demo-faulty"), local)

                t.ok(wait_for(converged, 60), "the table ends equal to the local notebook")
                st = d2.rpc("daemon.status")["sync"]
                t.ok(not [n for n in st.get("notebooks", []) if n["state"] == "conflict"] and st["conflicts"] == 0,
                     "no notebook was marked in conflict by its own lost writes", short(st))
                t.ok(proxy.applied("drop_response") >= 1, "answers were really dropped",
                     short(proxy.stats()))
        finally:
                t.is_(d2.stop(), 0, "the daemon behind the proxy stops cleanly")
                proxy.stop()


t.is_(d.stop(), 0, "SIGTERM: exit 0")
dyn.stop()
t.done()
