# SPDX-License-Identifier: MIT
"""The DynamoDB test tools themselves: dynalite on loopback (harness.Dynalite, scripts/dynalite.sh),
the fault-injecting proxy (tests/tools/faultproxy.py) in each mode, and the independent reader
(tests/tools/ddbcheck.py). Skipped when dynalite is not installed (scripts/install-deps.sh)."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAULTPROXY, SRCDIR, TAP, Dynalite, DYNALITE_CLI, FaultProxy, ddb_call, ddbcheck,  # noqa: E402
                     ddbcheck_available, make_tempdir, run, tmo, wait_for)

t = TAP()
available, why = Dynalite.available()
if not available:
        t.skip_all(why)

dyn = Dynalite(t).start()
T = "faultproxy"
status, reply = dyn.call("CreateTable", {
        "TableName": T, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}]})
if status != 200:
        raise RuntimeError(f"CreateTable: {status} {reply}")
proxy = FaultProxy(dyn.port, t, seed=7).start()


def conn(timeout=None):
        return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=tmo(10) if timeout is None else timeout)


def put(key, c=None, timeout=None):
        """PutItem through the proxy: (status, reply), or the exception it raised."""
        try:
                return ddb_call(proxy.port, "PutItem", {"TableName": T, "Item": {"k": {"S": key}, "v": {"S": "x"}}},
                                conn=c, timeout=timeout)
        except Exception as e:
                return e


def get(key, c=None):
        try:
                return ddb_call(proxy.port, "GetItem", {"TableName": T, "Key": {"k": {"S": key}}}, conn=c)
        except Exception as e:
                return e


def stored(key):
        """Whether dynalite holds the item (read directly, not through the proxy)."""
        status, r = dyn.call("GetItem", {"TableName": T, "Key": {"k": {"S": key}}, "ConsistentRead": True})
        return status == 200 and "Item" in r


def kind(result):
        """What the client saw: an HTTP status, "reset" (ECONNRESET), "closed" (EOF), "refused",
        "timeout", "incomplete", or the exception's name."""
        if isinstance(result, tuple):
                return result[0]
        if isinstance(result, http.client.RemoteDisconnected):
                return "closed"
        if isinstance(result, (ConnectionResetError, BrokenPipeError)):
                return "reset"
        if isinstance(result, ConnectionRefusedError):
                return "refused"
        if isinstance(result, (TimeoutError, socket.timeout)):
                return "timeout"
        if isinstance(result, http.client.IncompleteRead):
                return "incomplete"
        return type(result).__name__


def error_type(result):
        return result[1].get("__type", "") if isinstance(result, tuple) and isinstance(result[1], dict) else ""


@t.case("dynalite listens on loopback only and answers")
def _():
        listening = []
        with open("/proc/net/tcp") as f:
                for line in f.readlines()[1:]:
                        local, state = line.split()[1], line.split()[3]
                        addr, port = local.split(":")
                        if state == "0A" and int(port, 16) == dyn.port:
                                listening.append(addr)
        t.is_(listening, ["0100007F"], "dynalite's listening socket is bound to 127.0.0.1 only")
        status, r = dyn.call("ListTables", {})
        t.ok(status == 200 and T in r.get("TableNames", []), "ListTables answers directly", r)


@t.case("pass: requests and answers go through; keep-alive on both sides")
def _():
        proxy.reset_stats()
        c = conn()
        results = [kind(put(f"pass-{i}", c)) for i in range(3)]
        c.close()
        t.is_(results, [200, 200, 200], "three PutItem on one connection succeed")
        t.ok(all(stored(f"pass-{i}") for i in range(3)), "the items are in dynalite")
        s = proxy.stats()
        t.is_(s["connections"]["accepted"], 1, "one client connection for the three requests")
        t.is_(proxy.applied("pass", "PutItem", s), 3, "counted as passed, under PutItem")
        t.is_((s["forwarded"], s["upstream_status"].get("200")), (3, 3), "three forwarded, three 200 from dynalite")


@t.case("error: 500 and 503 with a DynamoDB error body, not forwarded; the connection stays usable")
def _():
        proxy.reset_stats()
        proxy.set_mode("error", target="PutItem")
        c = conn()
        r = put("err-500", c)
        t.is_(kind(r), 500, "PutItem answered 500")
        t.is_(error_type(r), "com.amazonaws.dynamodb.v20120810#InternalServerError", "__type InternalServerError")
        t.ok(isinstance(r, tuple) and r[1].get("message"), "with a message", r)
        t.is_(kind(get("pass-0", c)), 200, "GetItem (not filtered) on the same connection passes")
        proxy.set_mode("error", status=503, target="PutItem")
        r = put("err-503", c)
        c.close()
        t.is_(kind(r), 503, "503 when asked for")
        t.like(error_type(r), "#ServiceUnavailable", "__type ServiceUnavailable")
        t.ok(not stored("err-500") and not stored("err-503"), "neither request reached dynalite")
        s = proxy.stats()
        t.is_((proxy.applied("error", "PutItem", s), s["forwarded"]), (2, 1), "two errors counted, only the GetItem forwarded")
        proxy.clear()


@t.case("throttle: 400 with throttling types, only for the next N requests")
def _():
        proxy.set_mode("throttle", target="PutItem", count=2,
                       error_type=["ProvisionedThroughputExceededException", "ThrottlingException"])
        r1, r2, r3 = put("thr-1"), put("thr-2"), put("thr-3")
        t.is_((kind(r1), kind(r2), kind(r3)), (400, 400, 200), "400, 400, then the count is spent: 200")
        t.is_(error_type(r1), "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
              "first: ProvisionedThroughputExceededException")
        t.is_(error_type(r2), "com.amazon.coral.availability#ThrottlingException", "second: ThrottlingException")
        t.ok(not stored("thr-1") and not stored("thr-2") and stored("thr-3"), "only the third is stored")
        rule = proxy.rules()[0]
        t.is_((rule["hits"], rule["remaining"]), (2, 0), "the rule shows 2 hits, 0 remaining")
        proxy.clear()


@t.case("reset: the connection is reset before any answer; nothing reaches dynalite")
def _():
        proxy.reset_stats()
        proxy.set_mode("reset", target="PutItem", count=1)
        t.is_(kind(put("rst-1")), "reset", "the client sees ECONNRESET")
        t.ok(not stored("rst-1"), "not applied")
        t.is_(kind(put("rst-2")), 200, "the next request passes (count 1)")
        t.is_(proxy.applied("reset", "PutItem"), 1, "counted under reset/PutItem")
        proxy.clear()


@t.case("delay: before forwarding, or after the answer (the client times out, the write is applied)")
def _():
        proxy.set_mode("delay", delay_ms=300, count=1)
        t0 = time.monotonic()
        r = put("dly-1")
        took = time.monotonic() - t0
        t.ok(kind(r) == 200 and took >= 0.3, f"answered 200 after {took:.2f}s (>= 0.3)", r)
        proxy.set_mode("delay", delay_ms=int(tmo(1.5) * 1000), phase="response", count=1)
        r = put("dly-2", timeout=0.3)
        t.is_(kind(r), "timeout", "a client waiting 0.3 s times out")
        t.ok(wait_for(lambda: stored("dly-2"), tmo(2)), "yet the write was applied: the ambiguous case")
        proxy.clear()


@t.case("drop_response: forwarded and applied, the answer is lost (reset, close, partial)")
def _():
        proxy.reset_stats()
        seen = {}
        for how in ("reset", "close", "partial"):
                proxy.set_mode("drop_response", target="PutItem", count=1, how=how)
                seen[how] = kind(put(f"drop-{how}"))
                t.ok(stored(f"drop-{how}"), f"{how}: the item is in dynalite")
        t.is_(seen, {"reset": "reset", "close": "closed", "partial": "incomplete"},
              "the client saw a reset, an EOF, a truncated answer")
        entries = [e for e in proxy.log() if e["mode"] == "drop_response"]
        t.is_([(e["forwarded"], e["upstream_status"], e["client"]) for e in entries],
              [(True, 200, "reset"), (True, 200, "close"), (True, 200, "partial")],
              "the log shows each forwarded, answered 200 by dynalite, dropped")
        t.is_(proxy.applied("drop_response", "PutItem"), 3, "three counted")
        proxy.clear()


@t.case("blackout: open connections reset, new ones reset at once; refuse: nothing listens")
def _():
        proxy.reset_stats()
        c = conn()
        t.is_(kind(get("pass-0", c)), 200, "a keep-alive connection works before")
        proxy.set_mode("blackout")
        r = get("pass-0", c)
        c.close()
        t.ok(kind(r) in ("reset", "closed"), "its next request fails (the connection was killed)", r)
        t.ok(kind(put("bo-1")) in ("reset", "closed"), "a new connection fails")
        t.ok(not stored("bo-1"), "nothing reached dynalite")
        s = proxy.stats()
        t.ok(s["connections"]["killed"] >= 1 and s["connections"]["blackout"] >= 1,
             "counted: killed and blackout connections", s["connections"])
        t.ok(proxy.applied("blackout", "(connection)", s) >= 1, "applied.blackout[(connection)] counts them", s)
        proxy.set_mode("blackout", count=2)
        results = [kind(get("pass-0")) for _ in range(3)]
        t.ok(results[0] != 200 and results[1] != 200 and results[2] == 200, "count 2: two connections fail, then one works",
             results)
        proxy.set_mode("blackout", refuse=True)
        try:
                socket.create_connection(("127.0.0.1", proxy.port), timeout=tmo(5)).close()
                refused = False
        except ConnectionRefusedError:
                refused = True
        t.ok(refused, "refuse: connecting fails with ECONNREFUSED")
        t.ok(proxy.control("GET", "/health")["refusing"], "/health says refusing")
        proxy.clear()
        t.is_(kind(get("pass-0")), 200, "after the blackout the same port works again")


@t.case("filters: probability, body_contains, full and listed targets")
def _():
        proxy.reset_stats()
        proxy.set_mode("error", probability=0.5, target="GetItem")
        c = conn()
        results = [kind(get("pass-0", c)) for _ in range(30)]
        c.close()
        n_err = results.count(500)
        t.ok(0 < n_err < 30 and results.count(200) == 30 - n_err, f"probability 0.5: {n_err} of 30 failed", results)
        t.is_(proxy.applied("error", "GetItem"), n_err, "the counter agrees")
        proxy.set_mode("throttle", body_contains="special")
        t.is_((kind(put("special-1")), kind(put("plain-1"))), (400, 200), "body_contains picks the request")
        proxy.set_mode("error", target=["DynamoDB_20120810.GetItem", "DeleteItem"])
        t.is_((kind(get("pass-0")), kind(put("plain-2"))), (500, 200), "a full X-Amz-Target in a list matches")
        proxy.clear()


@t.case("server down and back: clients get a reset, then a kept-alive connection works again")
def _():
        proxy.reset_stats()
        c = conn()
        t.is_(kind(get("pass-0", c)), 200, "before")
        dyn.stop()
        t.is_(kind(put("down-1")), "reset", "dynalite stopped: the client's request is reset")
        t.ok(proxy.stats()["upstream_unavailable"] >= 1, "counted as upstream_unavailable")
        dyn.start()
        t.is_(kind(get("pass-0", c)), 200, "dynalite back on its port: the old client connection works")
        t.ok(stored("pass-0") and stored("dly-2"), "the data survived the restart (LevelDB directory)")
        c.close()


@t.case("control interface: bad rules refused, unknown requests, log, closing connections, retarget")
def _():
        before = proxy.rules()
        for bad in ({"mode": "explode"}, {"mode": "blackout", "target": "PutItem"}, {"mode": "error", "status": 404},
                    {"mode": "delay", "probability": 2}, {"mode": "reset", "bogus": 1}):
                try:
                        proxy.set_rules([bad])
                        t.ok(False, f"rule {json.dumps(bad)} refused")
                except RuntimeError as e:
                        t.like(str(e), ": 400 ", f"rule {json.dumps(bad)} refused with 400")
        t.is_(proxy.rules(), before, "the rules did not change")
        try:
                proxy.control("GET", "/nope")
                t.ok(False, "unknown path: 404")
        except RuntimeError as e:
                t.like(str(e), ": 404 ", "unknown path: 404")
        seq = proxy.log()[-1]["seq"] if proxy.log() else 0
        get("pass-0")
        t.is_([e["target"] for e in proxy.log(since=seq)], ["GetItem"], "/log?since= returns only newer entries")
        c = conn()
        get("pass-0", c)
        t.ok(proxy.close_connections() >= 1, "POST /connections/close closes the open connection")
        c.close()
        other = Dynalite(t, memory=True).start()
        try:
                proxy.retarget(other.port)
                t.is_(kind(get("pass-0")), 400, "PUT /target: now forwarded to another dynalite (no such table there)")
                proxy.retarget(dyn.port)
                t.is_(kind(get("pass-0")), 200, "and back")
        finally:
                other.stop()


@t.case("loopback only: the proxy refuses other addresses")
def _():
        rc, out, err = run([sys.executable, FAULTPROXY, "--target", "192.0.2.1:80"], timeout=tmo(10))
        t.ok(rc == 2 and "loopback" in err, "a non-loopback target: exit 2", (rc, out, err))
        rc, out, err = run([sys.executable, FAULTPROXY, "--target", f"127.0.0.1:{dyn.port}", "--listen", "0.0.0.0:0"],
                           timeout=tmo(10))
        t.ok(rc == 2 and "loopback" in err, "listening on all addresses: exit 2", (rc, out, err))


@t.case("scripts/dynalite.sh: start on a free port, status, stop")
def _():
        d = make_tempdir("nbdsh-")
        env = dict(os.environ, NB_DYNALITE_CLI=DYNALITE_CLI)
        script = os.path.join(SRCDIR, "scripts", "dynalite.sh")

        def sh(*args):
                p = subprocess.run([script] + list(args) + ["--dir", d], capture_output=True, text=True, env=env,
                                   timeout=tmo(30))
                return p.returncode, p.stdout, p.stderr

        rc, out, err = sh("start", "--port", "0", "--memory")
        fields = out.split()
        t.ok(rc == 0 and len(fields) == 2 and all(x.isdigit() for x in fields), "start prints PORT PID", (rc, out, err))
        if rc != 0:
                return
        port, pid = int(fields[0]), int(fields[1])
        try:
                status, r = ddb_call(port, "ListTables", {})
                t.is_(status, 200, "it answers on 127.0.0.1")
                t.is_(sh("status")[:2], (0, out), "status: the same PORT PID")
                t.is_(sh("start")[:2], (0, out), "start again: already running, same PORT PID")
        finally:
                rc, _, err = sh("stop")
        t.ok(rc == 0, "stop", err)
        t.ok(not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             "the process is gone")
        t.is_(sh("status")[0], 3, "status after stop: exit 3")


# ---- ddbcheck -------------------------------------------------------------------------------

NB = {"id": "nb-1", "user_id": "ann", "name": None, "db_conn_string": "postgresql://db/x", "revision": 4,
      "created_at": "2025-01-01T00:00:00.000Z", "updated_at": "2025-01-02T00:00:00.000Z", "ttl": 1900000000,
      "demo_version": None,
      "cells": [{"id": "c1", "type": "python", "code": "x = 1", "status": "success", "stdout": "1\n",
                 "outputs": [{"mime_type": "application/json", "data": {"a": 1.5, "b": [1, None, True], "s": "é"},
                              "metadata": {"w": 640}}],
                 "error": None, "reads": [], "writes": ["x"]},
                {"id": "c2", "type": "sql", "code": "select 1", "status": "idle", "stdout": "",
                 "outputs": [{"mime_type": "text/plain", "data": "1", "metadata": {}}],
                 "error": "boom", "reads": ["x"], "writes": []}]}


def item_of_nb():
        """The item written by hand in the seed's shape (not by ddbcheck's own code)."""
        return {"user_id": {"S": "ann"}, "notebook_id": {"S": "nb-1"}, "name": {"NULL": True},
                "db_conn_string": {"S": "postgresql://db/x"}, "revision": {"N": "4"},
                "created_at": {"S": "2025-01-01T00:00:00.000Z"}, "updated_at": {"S": "2025-01-02T00:00:00.000Z"},
                "ttl": {"N": "1900000000"}, "sync_id": {"S": "s-1"},
                "cells": {"L": [
                        {"M": {"id": {"S": "c1"}, "type": {"S": "python"}, "code": {"S": "x = 1"}, "stdout": {"S": "1\n"},
                               "outputs": {"L": [{"M": {"mime_type": {"S": "application/json"},
                                                        "data": {"M": {"a": {"N": "1.5"},
                                                                       "b": {"L": [{"N": "1"}, {"NULL": True}, {"BOOL": True}]},
                                                                       "s": {"S": "é"}}},
                                                        "metadata": {"M": {"w": {"N": "640"}}}}}]},
                               "error": {"NULL": True}, "reads": {"L": []}, "writes": {"L": [{"S": "x"}]}}},
                        {"M": {"id": {"S": "c2"}, "type": {"S": "sql"}, "code": {"S": "select 1"}, "stdout": {"S": ""},
                               "outputs": {"L": [{"M": {"mime_type": {"S": "text/plain"}, "data": {"S": "1"},
                                                        "metadata": {"M": {}}}}]},
                               "error": {"S": "boom"}, "reads": {"L": [{"S": "x"}]}, "writes": {"L": []}}}]}}


@t.case("ddbcheck: creates the seed's table, compares attribute by attribute, exit 0/1/2")
def _():
        ok, reason = ddbcheck_available()
        if not ok:
                t.skip("ddbcheck", reason)
                return
        rc, out, err = ddbcheck(dyn.endpoint, "--create-table")
        t.ok(rc == 0 and "created table notebooks" in out, "--create-table", (rc, out, err))
        status, desc = dyn.call("DescribeTable", {"TableName": "notebooks"})
        gsis = sorted(g["IndexName"] for g in desc.get("Table", {}).get("GlobalSecondaryIndexes", []))
        t.is_(gsis, ["NotebookByIdIndex", "NotebooksByUserCreatedIndex"], "with both GSIs")
        t.is_(ddbcheck(dyn.endpoint, "--create-table")[0], 0, "again: the table exists, exit 0")

        d = make_tempdir("nbdc-")
        path = os.path.join(d, "nb-1.json")
        with open(path, "w") as f:
                json.dump({"notebook": NB}, f, ensure_ascii=False, indent=1)

        def put_item(item):
                status, r = dyn.call("PutItem", {"TableName": "notebooks", "Item": item})
                if status != 200:
                        raise RuntimeError(f"PutItem: {status} {r}")

        put_item(item_of_nb())
        rc, out, err = ddbcheck(dyn.endpoint, path)
        t.ok(rc == 0 and "match" in out, "GetItem: the item matches the notebook", (rc, out, err))
        rc, out, err = ddbcheck(dyn.endpoint, "--user", "ann", path)
        t.ok(rc == 0, "--user: the partition holds exactly that notebook", (rc, out, err))

        item = item_of_nb()
        item["cells"]["L"][1]["M"]["code"] = {"S": "select 2"}
        item["cells"]["L"][0]["M"]["status"] = {"S": "success"}
        item["name"] = {"S": ""}
        item["cells"]["L"][0]["M"]["outputs"]["L"][0]["M"]["data"]["M"]["a"] = {"N": "1.25"}
        del item["sync_id"]
        put_item(item)
        rc, out, err = ddbcheck(dyn.endpoint, path)
        t.ok(rc == 1, "a changed item: exit 1", (rc, out, err))
        for needle in ('cells[1].code: table has S "select 2", expected S "select 1"',
                       "cells[0].status: unexpected attribute",
                       'name: table has S "", expected NULL',
                       "cells[0].outputs[0].data.a: table has N 1.25, expected N 1.5",
                       "sync_id: missing"):
                t.like(out, needle, f"reports {needle.split(':')[0]}")
        rc, out, err = ddbcheck(dyn.endpoint, path, "--ignore", "cells[].code", "--ignore", "cells[0].status",
                                "--ignore", "name", "--ignore", "cells[].outputs", "--no-sync-id")
        t.ok(rc == 0, "--ignore and --no-sync-id hide exactly those", (rc, out, err))

        put_item(item_of_nb())
        put_item({"user_id": {"S": "ann"}, "notebook_id": {"S": "gone"}, "revision": {"N": "1"}})
        rc, out, err = ddbcheck(dyn.endpoint, "--user", "ann", path, "--absent", "gone")
        t.ok(rc == 1 and "ann/gone: in the table" in out, "--user: an item more (an --absent one) is a difference",
             (rc, out, err))
        dyn.call("DeleteItem", {"TableName": "notebooks", "Key": {"user_id": {"S": "ann"}, "notebook_id": {"S": "gone"}}})
        t.is_(ddbcheck(dyn.endpoint, "--user", "ann", path, "--absent", "gone")[0], 0, "and fine once deleted")
        t.is_(ddbcheck(dyn.endpoint, "--user", "nobody")[0], 0, "--user with no FILE: the user must have no item")

        proxy.set_mode("throttle", count=1)
        rc, out, err = ddbcheck(proxy.endpoint, path)
        t.ok(rc == 0 and proxy.applied("throttle") >= 1, "through the proxy: botocore retries a throttled read",
             (rc, out, err))
        proxy.clear()
        rc, out, err = ddbcheck(f"http://127.0.0.1:{dyn.port}", "--table", "nope", path)
        t.ok(rc == 2 and "ResourceNotFound" in err, "a missing table: exit 2", (rc, out, err))
        proxy.set_mode("blackout", refuse=True)
        rc, out, err = ddbcheck(proxy.endpoint, path, "--attempts", "1", "--timeout", "2")
        proxy.clear()
        t.ok(rc == 2, "an unreachable endpoint: exit 2", (rc, out, err))
        rc, out, err = ddbcheck("http://192.0.2.1:8000", path)
        t.ok(rc == 2 and "loopback" in err, "a non-loopback endpoint: exit 2, nothing sent", (rc, out, err))


proxy.stop()
dyn.stop()
t.done()
