# SPDX-License-Identifier: MIT
"""Sync as a user meets it, against dynalite on 127.0.0.1 behind the fault-injecting proxy:
`notebookctl table create|check`; starting with the endpoint down and converging once it is up;
delays, late answers and blackouts in the middle of a stream of edits (no acknowledged edit lost,
no spurious conflict, retries bounded); a notebook over DynamoDB's 400 KB item limit synced through
the parts table, and one whose small values alone pass it kept locally with a clear error; changes from another machine pulled on demand and announced to watchers.
After each convergence the independent reader (boto3, tests/tools/ddbcheck.py) reads the user's
whole partition and checks it against `notebookctl --json show`, attribute by attribute."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (TAP, Daemon, Dynalite, FaultProxy, NOTEBOOKCTL, ctl, ddbcheck, dynamodb_test_env,  # noqa: E402
                     free_port, make_tempdir, short, tmo)

t = TAP()
dynamodb_test_env(t, "AKIDREMOTETEST", "remote-test-secret")

dyn = Dynalite(t).start()
proxy = FaultProxy(dyn.port, t).start()


def conf(endpoint, pull_s=1):
        return (f"[remote]\nendpoint = {endpoint}\ndebounce_ms = 50\nmax_delay_ms = 300\n"
                f"pull_interval_s = {pull_s}\nconnect_timeout_ms = 500\nrequest_timeout_ms = 2000\n")


def wait_for(cond, timeout):
        return harness.wait_for(cond, tmo(timeout), 0.1)


def sync_status(d):
        return d.rpc("daemon.status")["sync"]


def settled(d):
        st = sync_status(d)
        return st["pending"] == 0 and st["in_flight"] == 0


def check_user(d, user, absent=()):
        """ddbcheck over the user's whole partition against every notebook notebookctl shows.
        Returns (ok, report)."""
        rc, out, err = d.ctl("list", user=user, json_out=True)
        if rc != 0:
                return False, f"list: {rc} {err}"
        docs = []
        for nb in json.loads(out)["notebooks"]:
                rc, out, err = d.ctl("show", nb["id"], user=user, json_out=True)
                if rc != 0:
                        return False, f"show {nb['id']}: {rc} {err}"
                docs.append(out)
        args = ["--user", user] + [a for nb in absent for a in ("--absent", nb)]
        rc, out, err = ddbcheck(dyn.endpoint, *args, "-", input="".join(docs))
        return rc == 0, out + err


# --------------------------------------------------------------------------------------------
# notebookctl table

def table(*args, json_out=False):
        return ctl("table", *args, json_out=json_out)


@t.case("table check before the table exists: exit 4, and how to make it")
def _():
        rc, out, err = table("check", "--endpoint", dyn.endpoint)
        t.is_(rc, 4, "exit status 4 (not found)")
        t.like(err, "table create", "the error says how to create it")


@t.case("table create makes the seed's table; check says it fits")
def _():
        rc, out, err = table("create", "--endpoint", dyn.endpoint)
        t.is_(rc, 0, "create: exit 0")
        t.like(out, "Created table notebooks", "it says it created the table")
        t.like(out, "Created table notebooks-parts", "and the parts table")
        t.like(out, "Parts table notebooks-parts (for notebooks larger than a DynamoDB item): ACTIVE",
               "which the report shows")
        t.like(out, "TTL: unsupported", "and that this endpoint has no TTL")
        t.like(out, "It fits", "and checks the result")
        st, desc = dyn.call("DescribeTable", {"TableName": "notebooks"})
        tab = desc.get("Table", {}) if isinstance(desc, dict) else {}
        t.is_(sorted((k["AttributeName"], k["KeyType"]) for k in tab.get("KeySchema", [])),
              [("notebook_id", "RANGE"), ("user_id", "HASH")], "keys user_id (HASH), notebook_id (RANGE)")
        gsis = {g["IndexName"]: g for g in tab.get("GlobalSecondaryIndexes", [])}
        t.is_(sorted(gsis), ["NotebookByIdIndex", "NotebooksByUserCreatedIndex"], "both indexes")
        t.is_(gsis.get("NotebooksByUserCreatedIndex", {}).get("Projection", {}).get("NonKeyAttributes"),
              ["name", "updated_at"], "the created-at index includes name and updated_at")
        t.is_(tab.get("BillingModeSummary", {}).get("BillingMode"), "PAY_PER_REQUEST", "on-demand billing")

        rc, out, err = table("check", "--endpoint", dyn.endpoint, json_out=True)
        res = json.loads(out) if rc == 0 else {}
        t.ok((rc, res.get("fits"), res.get("problems"), res.get("status")) == (0, True, [], "ACTIVE"),
             "check --json: fits, no problems, ACTIVE", out + err)
        t.is_((res.get("parts_table"), res.get("parts_status")), ("notebooks-parts", "ACTIVE"),
              "check --json: the parts table and its status")
        st, desc = dyn.call("DescribeTable", {"TableName": "notebooks-parts"})
        t.is_(sorted((k["AttributeName"], k["KeyType"]) for k in desc.get("Table", {}).get("KeySchema", [])),
              [("owner", "HASH"), ("part", "RANGE")], "the parts table's keys: owner (HASH), part (RANGE)")
        rc, out, err = table("create", "--endpoint", dyn.endpoint)
        t.is_(rc, 0, "create again: exit 0")
        t.like(out, "exists already", "an existing table is left as it is")


@t.case("table check on a table that does not fit: exit 1, every problem named")
def _():
        st, r = dyn.call("CreateTable", {
                "TableName": "wrongtable", "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}]})
        t.ok(st == 200, "a table with the wrong keys and no indexes", short(r))
        rc, out, err = table("check", "--endpoint", dyn.endpoint, "--table", "wrongtable", json_out=True)
        res = json.loads(out) if out else {}
        t.is_((rc, res.get("fits")), (1, False), "exit 1, fits false")
        problems = "\n".join(res.get("problems", []))
        for word in ("notebook_id", "NotebookByIdIndex", "NotebooksByUserCreatedIndex"):
                t.like(problems, word, f"a problem names {word}")


@t.case("table commands: unreachable endpoint, bad configuration, bad options")
def _():
        rc, out, err = table("check", "--endpoint", f"http://127.0.0.1:{free_port()}")
        t.is_(rc, 3, "nothing listening: exit 3")
        t.like(err, "connect", "and says it could not connect")
        bad = os.path.join(make_tempdir(), "bad.conf")
        with open(bad, "w") as f:
                f.write("[remote]\ndebounce_ms = soon\n")
        rc, out, err = table("check", "--config", bad)
        t.is_(rc, 1, "an invalid configuration: exit 1")
        t.like(err, "bad.conf:2", "the error names the file and line")
        good = os.path.join(make_tempdir(), "good.conf")
        with open(good, "w") as f:
                f.write(f"[remote]\nendpoint = {dyn.endpoint}\n")
        rc, out, err = table("check", "--config", good)
        t.ok(rc == 0, "the endpoint comes from the configuration's [remote]", err)
        rc, out, err = ctl("table", "check", "--endpoint", dyn.endpoint,
                           env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
        t.is_(rc, 6, "no credentials anywhere: exit 6")
        t.like(err, "No AWS credentials", "and it says so")
        rc, out, err = table("check", "--wait", "3", "--endpoint", dyn.endpoint)
        t.is_(rc, 2, "--wait belongs to create: usage error")
        rc, out, err = table("frobnicate")
        t.is_(rc, 2, "an unknown table command: usage error")


@t.case("configured before the table exists: a clear error, then it syncs once the table is made")
def _():
        early = Daemon(t, config=conf(dyn.endpoint).replace("[remote]\n", "[remote]\ntable = latertable\n"))
        early.start()
        try:
                early.rpc("notebook.list", {"user_id": "early"})
                st = wait_for(lambda: (lambda s: s if s["last_error"] else None)(sync_status(early)), 10)
                t.like((st or {}).get("last_error") or "", "table create", "status: the table is missing, and how to make it")
                rc, out, err = table("create", "--endpoint", dyn.endpoint, "--table", "latertable")
                t.ok(rc == 0, "the table is made afterwards", out + err)
                t.ok(wait_for(lambda: settled(early) and sync_status(early)["state"] == "online", 40),
                     "the waiting notebooks go out without another edit", short(sync_status(early)))
        finally:
                t.is_(early.stop(), 0, "that daemon stops cleanly")


# --------------------------------------------------------------------------------------------
# Offline start, faults, convergence

d = Daemon(t, config=conf(proxy.endpoint))


@t.case("started with the endpoint down: edits go on, then converge when it comes up")
def _():
        rule = proxy.set_mode("blackout", refuse=True)
        d.start()
        d.rpc("notebook.list", {"user_id": "olga"})
        for i in range(6):
                d.rpc("cell.update", {"user_id": "olga", "notebook_id": "demo-olga", "cell_id": "demo-cell-1",
                                      "code": f"x = {i}  # offline"})
        d.rpc("notebook.create", {"user_id": "olga", "notebook_id": "made-offline", "name": "Offline"})
        st = wait_for(lambda: (lambda s: s if s["last_error"] else None)(sync_status(d)), 10)
        t.ok(st and st["state"] != "online" and st["pending"] + st["in_flight"] >= 3,
             "status: not online, three notebooks waiting, with the reason", short(st))
        t.is_(d.rpc("notebook.get", {"user_id": "olga", "notebook_id": "demo-olga"})["notebook"]["cells"][0]["code"],
              "x = 5  # offline", "the edits are served locally meanwhile")
        proxy.remove_rule(rule)
        t.ok(wait_for(lambda: settled(d), 60), "after the endpoint is up, nothing is pending", short(sync_status(d)))
        good, report = check_user(d, "olga")
        t.ok(good, "the table holds exactly olga's notebooks, attribute by attribute", report)
        t.is_(sync_status(d)["state"], "online", "status: online")


@t.case("delays and late answers: converges, and a late answer is not a conflict")
def _():
        proxy.reset_stats()
        proxy.set_rules([
                # Past request_timeout_ms: the write is applied, its answer never arrives in time.
                {"mode": "delay", "target": "PutItem", "delay_ms": 2600, "phase": "response", "count": 1},
                {"mode": "delay", "target": "PutItem", "delay_ms": 700, "count": 2},
        ])
        for i in range(8):
                d.rpc("cell.update", {"user_id": "olga", "notebook_id": "demo-olga", "cell_id": "demo-cell-2",
                                      "code": f"y = x + {i}"})
                time.sleep(0.5)
        t.ok(wait_for(lambda: settled(d) and not [r for r in proxy.rules() if r.get("remaining")], 60),
             "every delay was applied and everything settled", short(proxy.rules()))
        good, report = check_user(d, "olga")
        t.ok(good, "the table equals the local notebooks", report)
        st = sync_status(d)
        t.is_(st["conflicts"], 0, "no conflict from a late answer to our own write")
        proxy.clear()


@t.case("a blackout in the middle of a stream of edits: nothing lost, retries bounded")
def _():
        proxy.reset_stats()
        for i in range(10):
                if i == 3:
                        proxy.set_mode("blackout")
                d.rpc("cell.create", {"user_id": "olga", "notebook_id": "made-offline", "code": f"n = {i}"})
                time.sleep(0.1)
        time.sleep(3)
        stats = proxy.stats()
        tries = stats["connections"]["accepted"]
        t.ok(tries <= 40, f"during 4 s of blackout the daemon tried {tries} connections (bounded, no spin)",
             short(stats))
        st = sync_status(d)
        t.ok(st["pending"] + st["in_flight"] >= 1, "the notebook is waiting meanwhile", short(st))
        proxy.clear()
        t.ok(wait_for(lambda: settled(d), 90), "after the blackout everything goes out", short(sync_status(d)))
        nb = d.rpc("notebook.get", {"user_id": "olga", "notebook_id": "made-offline"})["notebook"]
        codes = [c["code"] for c in nb["cells"]]
        t.ok(all(f"n = {i}" in codes for i in range(10)), "every acknowledged cell is there", short(codes))
        good, report = check_user(d, "olga")
        t.ok(good, "and the table holds them all, attribute by attribute", report)
        t.is_(sync_status(d)["conflicts"], 0, "no conflict")


@t.case("a lost answer, then failures while pulls run: still no conflict")
def _():
        # The write is applied but its answer lost; the retries then fail for a while, so the
        # notebook waits, not in flight, while pulls (every second) see our own earlier write in
        # the table. That write is ours (its sync_id), not another device's.
        before = sync_status(d)["conflicts"]
        for k in range(3):
                nb = f"lost-{k}"
                d.rpc("notebook.create", {"user_id": "olga", "notebook_id": nb})
                t.ok(wait_for(lambda: settled(d), 20), f"{nb}: synced")
                proxy.set_rules([{"mode": "drop_response", "target": "PutItem", "count": 1},
                                 {"mode": "error", "target": "PutItem", "status": 503, "count": 5}])
                d.rpc("notebook.update", {"user_id": "olga", "notebook_id": nb, "name": "changed"})
                # A pull may find our write (its token) before the retries run out: then no more
                # retries are needed at all.
                t.ok(wait_for(lambda: proxy.rules()[0].get("remaining") == 0
                              and (not proxy.rules()[1].get("remaining") or settled(d)), 60),
                     f"{nb}: the answer was dropped, then retries failed or a pull found the write",
                     short(proxy.rules()))
                proxy.clear()
                t.ok(wait_for(lambda: settled(d), 60), f"{nb}: then it settles", short(sync_status(d)))
        st = sync_status(d)
        t.is_(st["conflicts"] - before, 0, "no conflict")
        good, report = check_user(d, "olga")
        t.ok(good, "and the table matches", report)


@t.case("a notebook over 400 KB syncs through the parts table; one whose small values alone pass it: "
        "a clear error, kept locally, synced once it shrinks")
def _():
        # 205,000 two-byte characters: 410,000 bytes of UTF-8, over DynamoDB's 400 KB (409,600
        # bytes), while dynalite (which counts characters) would have taken it whole.
        big = "é" * 205000
        d.rpc("notebook.create", {"user_id": "olga", "notebook_id": "huge", "name": "Huge"})
        t.ok(wait_for(lambda: settled(d), 20), "the small notebook is synced first")
        d.rpc("cell.create", {"user_id": "olga", "notebook_id": "huge", "cell_id": "big", "code": big})
        t.ok(wait_for(lambda: settled(d), 20), "the big cell is synced", short(sync_status(d)))
        st, item = dyn.call("GetItem", {"TableName": "notebooks", "ConsistentRead": True,
                                        "Key": {"user_id": {"S": "olga"}, "notebook_id": {"S": "huge"}}})
        cells = item.get("Item", {}).get("cells", {}).get("L", [])
        t.ok(cells and "code_ref" in cells[-1]["M"] and "code" not in cells[-1]["M"],
             "the table's item names parts for its code", short(item))
        good, report = check_user(d, "olga")
        t.ok(good, "and the boto3 reader reassembles it, equal to notebookctl show", report)

        # 450 cells of 950 bytes of code: no value is worth a part, and together they pass 400 KB.
        d.rpc("cell.update", {"user_id": "olga", "notebook_id": "huge", "cell_id": "big", "code": "small again"})
        t.ok(wait_for(lambda: settled(d), 20), "shrunk back")
        c = d.client()
        replies = c.pipeline([{"jsonrpc": "2.0", "id": i, "method": "cell.create",
                               "params": {"user_id": "olga", "notebook_id": "huge", "cell_id": f"s{i}",
                                          "code": "x" * 950}} for i in range(450)])
        c.close()
        t.ok(all("result" in r for r in replies), "450 small cells added")
        entry = wait_for(lambda: [n for n in sync_status(d)["notebooks"]
                                  if n["notebook_id"] == "huge" and n["state"] == "error"], 20)
        t.ok(entry and "too large" in (entry[0]["error"] or ""), "status: huge is in error, 'too large'",
             short(sync_status(d)))
        rc, out, err = d.ctl("status", user="olga")
        t.like(out, "too large", "notebookctl status says so")
        got = d.rpc("notebook.get", {"user_id": "olga", "notebook_id": "huge"})["notebook"]
        t.is_(len(got["cells"]), 451, "the local notebook keeps every cell")
        st, item = dyn.call("GetItem", {"TableName": "notebooks", "ConsistentRead": True,
                                        "Key": {"user_id": {"S": "olga"}, "notebook_id": {"S": "huge"}}})
        t.ok(len(item.get("Item", {}).get("cells", {}).get("L", [])) == 1, "the table still has the earlier version",
             short(item))
        c = d.client()
        c.pipeline([{"jsonrpc": "2.0", "id": i, "method": "cell.delete",
                     "params": {"user_id": "olga", "notebook_id": "huge", "cell_id": f"s{i}"}} for i in range(400)])
        c.close()
        t.ok(wait_for(lambda: settled(d), 20), "once it shrinks, it syncs", short(sync_status(d)))
        good, report = check_user(d, "olga")
        t.ok(good, "and the table matches", report)


@t.case("a change from another machine: pulled on demand, watchers are told")
def _():
        # The other machine: its own daemon and state, straight to the table.
        other = Daemon(t, config=conf(dyn.endpoint, pull_s=3600))
        other.start()
        try:
                t.ok(wait_for(lambda: other.rpc("notebook.list", {"user_id": "olga"})["notebooks"]
                              and other.call("notebook.get", {"user_id": "olga", "notebook_id": "made-offline"})
                              .get("result"), 20),
                     "the other machine pulled olga's notebooks at start")
                watcher = subprocess.Popen([NOTEBOOKCTL, "--socket", d.socket, "--user", "olga", "--json", "watch",
                                            "--count", "1", "made-offline"], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
                t.ok(wait_for(lambda: d.rpc("daemon.status")["watches"] == 1, 10), "the watch is in place")
                r = other.rpc("notebook.update", {"user_id": "olga", "notebook_id": "made-offline",
                                                  "name": "Renamed on the other machine"})
                rev = r["notebook"]["revision"]
                t.ok(wait_for(lambda: settled(other), 20), "the other machine pushed its change")
                rc, out, err = d.ctl("pull")
                t.ok(rc == 0, "notebookctl pull: exit 0", err)
                try:
                        out, err = watcher.communicate(timeout=tmo(20))
                except subprocess.TimeoutExpired:
                        watcher.kill()
                        out, err = watcher.communicate()
                note = json.loads(out) if out.strip() else {}
                t.ok((watcher.returncode, note.get("notebook_id"), note.get("revision"), note.get("origin")) ==
                     (0, "made-offline", rev, "remote"), "the watcher got notebook.changed, origin remote",
                     out + err)
                got = d.rpc("notebook.get", {"user_id": "olga", "notebook_id": "made-offline"})["notebook"]
                t.is_((got["name"], got["revision"]), ("Renamed on the other machine", rev),
                      "this machine took the newer version")
                t.is_(sync_status(other)["conflicts"], 0, "the other machine saw no conflict")
                good, report = check_user(other, "olga")
                t.ok(good, "and the table holds its notebooks exactly", report)
        finally:
                t.is_(other.stop(), 0, "the other daemon stops cleanly")


@t.case("SIGTERM with a write in flight: a bounded grace time, nothing lost")
def _():
        g = Daemon(t, config=conf(proxy.endpoint).replace("request_timeout_ms = 2000", "request_timeout_ms = 60000"))
        g.start()
        g.rpc("notebook.list", {"user_id": "greta"})
        t.ok(wait_for(lambda: settled(g), 20), "greta's notebooks are synced")

        def stop_with_write_in_flight(rule):
                proxy.set_rules([rule])
                g.rpc("notebook.update", {"user_id": "greta", "notebook_id": "blank-greta", "name": rule["mode"]
                                          + str(rule["delay_ms"])})
                t.ok(wait_for(lambda: sync_status(g)["in_flight"] == 1, 10), "a write is in flight")
                start = time.monotonic()
                status = g.stop()
                return status, time.monotonic() - start

        # The answer comes within the grace time: the daemon waits for it.
        status, took = stop_with_write_in_flight({"mode": "delay", "target": "PutItem", "delay_ms": 1500,
                                                  "phase": "response"})
        t.is_(status, 0, "exit 0")
        t.ok(took >= 1.0, f"it waited for the answer ({took:.1f} s)")
        proxy.clear()
        g.start()
        st = sync_status(g)
        t.ok(not [n for n in st["notebooks"] if n["notebook_id"] == "blank-greta"],
             "after the restart the notebook is known to be synced: the answer was not lost", short(st))

        # The answer would come too late: the daemon stops after the grace time; the notebook goes
        # out at the next start.
        status, took = stop_with_write_in_flight({"mode": "delay", "target": "PutItem", "delay_ms": 30000})
        t.is_(status, 0, "exit 0")
        t.ok(took < tmo(12), f"it stopped after the grace time ({took:.1f} s), not after the write")
        proxy.clear()
        g.start()
        t.ok(wait_for(lambda: settled(g), 30), "after the restart the pending write goes out")
        good, report = check_user(g, "greta")
        t.ok(good, "and the table matches", report)
        t.is_(g.stop(), 0, "stops cleanly")


@t.case("two devices: provisioned once, a delete made elsewhere is honoured, no false conflicts")
def _():
        d.rpc("notebook.list", {"user_id": "zed"})
        t.ok(wait_for(lambda: settled(d), 20), "device A provisioned zed and synced")
        d.rpc("notebook.delete", {"user_id": "zed", "notebook_id": "demo-zed"})
        t.ok(wait_for(lambda: settled(d), 20), "device A deleted demo-zed, and the delete went out")
        other = Daemon(t, config=conf(dyn.endpoint, pull_s=3600))
        other.start()
        try:
                first = other.rpc("notebook.list", {"user_id": "zed"})
                t.ok(first["provisioned"], "device B provisions zed locally on its first list")
                t.ok(wait_for(lambda: settled(other) and not [
                        n for n in other.rpc("notebook.list", {"user_id": "zed"})["notebooks"]
                        if n["id"] == "demo-zed"], 20),
                     "device B drops its own demo-zed: it was deleted on A", short(sync_status(other)))
                st, item = dyn.call("GetItem", {"TableName": "notebooks", "ConsistentRead": True,
                                                "Key": {"user_id": {"S": "zed"}, "notebook_id": {"S": "demo-zed"}}})
                t.ok("Item" not in item, "and does not bring it back to the table", short(item))
                blank = other.rpc("notebook.get", {"user_id": "zed", "notebook_id": "blank-zed"})["notebook"]
                t.is_(blank["created_at"], d.rpc("notebook.get", {"user_id": "zed", "notebook_id": "blank-zed"})
                      ["notebook"]["created_at"], "B's blank-zed is A's (taken from the table)")
                # Edit what came from the table, and pull at once: the table has not moved, so this is
                # no conflict.
                other.rpc("notebook.update", {"user_id": "zed", "notebook_id": "blank-zed", "name": "B's name"})
                rc, out, err = other.ctl("pull")
                t.ok(rc == 0, "B pulls right after its edit", err)
                t.ok(wait_for(lambda: settled(other), 20), "B's edit goes out", short(sync_status(other)))
                t.is_(sync_status(other)["conflicts"], 0, "B saw no conflict at any point")
                good, report = check_user(other, "zed", absent=["demo-zed"])
                t.ok(good, "the table holds B's notebooks exactly", report)
                d.ctl("pull")
                t.ok(wait_for(lambda: d.rpc("notebook.get", {"user_id": "zed", "notebook_id": "blank-zed"})
                              ["notebook"]["name"] == "B's name", 20), "A takes B's edit on its next pull")
        finally:
                t.is_(other.stop(), 0, "device B stops cleanly")


@t.case("sync.pull without a remote: a clear error")
def _():
        local = Daemon(t)
        local.start()
        rc, out, err = local.ctl("pull")
        t.is_(rc, 1, "exit 1")
        t.like(err, "local-only", "it says the daemon runs local-only")
        local.stop()


t.is_(d.stop(), 0, "SIGTERM: exit 0")
proxy.stop()
dyn.stop()
t.done()
