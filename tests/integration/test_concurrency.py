# SPDX-License-Identifier: MIT
"""Concurrent clients: provisioning exactly once, many writers at once, conflicting writers."""

import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NBSTRESS, TAP, Daemon, check_serving, req, run, short, tmo  # noqa: E402

t = TAP()
d = Daemon(t)
d.start()


def in_parallel(n, fn):
        """Runs fn(i) in n threads released together; returns results (exceptions as values)."""
        barrier = threading.Barrier(n, timeout=tmo(20))
        out = [None] * n

        def body(i):
                try:
                        out[i] = fn(i, barrier)
                except Exception as e:
                        out[i] = e

        ths = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
        for th in ths:
                th.start()
        for th in ths:
                th.join(timeout=tmo(60))
        return out


@t.case("20 concurrent first notebook.list calls provision exactly once")
def _():
        for rnd in range(3):
                user = f"race{rnd}"
                conns = [d.client() for _ in range(20)]

                def first_list(i, barrier):
                        c = conns[i]
                        data = json.dumps(req("notebook.list", {"user_id": user}, i)).encode() + b"\n"
                        barrier.wait()
                        c.send(data)
                        return c.read_reply()

                replies = in_parallel(20, first_list)
                for c in conns:
                        c.close()
                errs = [r for r in replies if not isinstance(r, dict) or "result" not in r]
                t.ok(not errs, f"round {rnd}: 20 replies, all results", short(errs))
                good = [r["result"] for r in replies if isinstance(r, dict) and "result" in r]
                prov = [r.get("provisioned") for r in good]
                t.is_(prov.count(True), 1, f"round {rnd}: exactly one reply says provisioned=true")
                t.is_(prov.count(False), len(good) - 1, f"round {rnd}: the others say provisioned=false")
                t.ok(all([n["id"] for n in r.get("notebooks", [])] == [f"blank-{user}", f"demo-{user}"] for r in good),
                     f"round {rnd}: every reply lists exactly blank and demo",
                     short([[n["id"] for n in r.get("notebooks", [])] for r in good]))
                fin = d.rpc("notebook.list", {"user_id": user})
                t.is_([n["id"] for n in fin["notebooks"]], [f"blank-{user}", f"demo-{user}"],
                      f"round {rnd}: exactly two notebooks stored")
                t.ok(all(n["revision"] == 1 for n in fin["notebooks"]), f"round {rnd}: written once (revision 1)",
                     short(fin))
                demo = d.rpc("notebook.get", {"user_id": user, "notebook_id": f"demo-{user}"})["notebook"]
                t.is_(len(demo["cells"]), 6, f"round {rnd}: demo has six cells, not twelve")
        st = d.rpc("daemon.status")
        t.ok(st.get("users", 0) >= 3, "status counts the users", st.get("users"))


ACK = re.compile(r"^ack (\S+) (\d+) (\d+)$")


def parse_acks(out):
        acks, other = [], []
        for line in out.splitlines():
                m = ACK.match(line.strip())
                if m:
                        acks.append((m.group(1), int(m.group(2)), int(m.group(3))))
                elif line.strip():
                        other.append(line)
        return acks, other


@t.case("8 clients writing at once (nbstress): every acked write stored, revision counts every mutation")
def _():
        user, nbid, tag, clients, writes = "stress", "st", "T", 8, 500
        d.rpc("notebook.create", {"user_id": user, "notebook_id": nbid})
        t0 = time.monotonic()
        rc, out, err = run([NBSTRESS, "--socket", d.socket, "--user", user, "--notebook", nbid, "--clients",
                            str(clients), "--writes", str(writes), "--tag", tag, "--pipeline", "4"], timeout=tmo(120))
        t.diag(f"nbstress: {time.monotonic() - t0:.2f}s")
        t.is_(rc, 0, "nbstress exit 0")
        if rc != 0:
                t.diag(err[-2000:])
        acks, other = parse_acks(out)
        t.is_(len(acks), clients * writes, f"{clients * writes} acks")
        revs = [a[2] for a in acks]
        t.is_(len(set(revs)), len(revs), "every acked write has its own revision")
        nb = d.rpc("notebook.get", {"user_id": user, "notebook_id": nbid})["notebook"]
        cells = {c["id"]: c for c in nb["cells"]}
        last = {}
        for cid, i, rev in acks:
                if i >= last.get(cid, (-1, 0))[0]:
                        last[cid] = (i, rev)
        bad = []
        for cid, (i, _) in last.items():
                code = cells.get(cid, {}).get("code", "<missing>")
                m = re.match(rf"^{tag}-(\d+)-(\d+)$", code)
                if not m or int(m.group(2)) != i:
                        bad.append((cid, i, code))
        t.ok(last and not bad, "every cell holds its last acked code", short(bad))
        t.ok(len(last) >= clients, f"writes landed on at least {clients} cells", len(last))
        # Every mutation counted once: revision 1 at create, + one cell.create per client ("T-k"),
        # + every acked cell.update.
        t.is_(sorted(cells), sorted(f"{tag}-{k}" for k in range(1, clients + 1)), "one cell per client, T-k")
        t.is_(nb["revision"], 1 + clients + len(acks), "revision == 1 + creates + acked updates")
        t.is_(max(revs) if revs else None, nb["revision"], "the last acked revision is the notebook's revision")
        check_serving(t, d)


@t.case("several raw clients appending at once: no lost write, distinct revisions")
def _():
        user, nbid, n, per = "append", "ap", 8, 40
        d.rpc("notebook.create", {"user_id": user, "notebook_id": nbid})

        def writer(i, barrier):
                with d.client() as c:
                        reqs = [req("cell.create", {"user_id": user, "notebook_id": nbid, "code": f"w{i}-{j}"}, j)
                                for j in range(per)]
                        barrier.wait()
                        return c.pipeline(reqs)

        res = in_parallel(n, writer)
        errs = [r for r in res if not isinstance(r, list)]
        t.ok(not errs, "every writer finished", short(errs))
        revs = [x["result"]["revision"] for r in res if isinstance(r, list) for x in r if "result" in x]
        t.is_(len(revs), n * per, "every create acknowledged")
        t.is_(sorted(revs), list(range(2, 2 + n * per)), "revisions 2..N+1, each exactly once")
        nb = d.rpc("notebook.get", {"user_id": user, "notebook_id": nbid})["notebook"]
        t.is_(nb["revision"], 1 + n * per, "final revision")
        codes = [c["code"] for c in nb["cells"]]
        t.is_(sorted(codes), sorted(f"w{i}-{j}" for i in range(n) for j in range(per)), "every cell stored once")
        ok_order = all([c for c in codes if c.startswith(f"w{i}-")] == [f"w{i}-{j}" for j in range(per)] for i in range(n))
        t.ok(ok_order, "each client's cells in its own request order")


@t.case("conflicting writers with expected_revision: exactly one wins per round")
def _():
        user, nbid, n, rounds = "conflict", "cf", 6, 15
        d.rpc("notebook.create", {"user_id": user, "notebook_id": nbid, "cells": [{"id": "c"}]})
        conns = [d.client() for _ in range(n)]
        winners_ok = conflicts_ok = True
        detail = []
        for rnd in range(rounds):
                cur = d.rpc("notebook.get", {"user_id": user, "notebook_id": nbid})["notebook"]["revision"]
                method = ("cell.update", "notebook.update", "cell.create")[rnd % 3]

                def writer(i, barrier):
                        p = {"user_id": user, "notebook_id": nbid, "expected_revision": cur}
                        if method == "cell.update":
                                p.update(cell_id="c", code=f"r{rnd}-w{i}")
                        elif method == "notebook.update":
                                p.update(name=f"r{rnd}-w{i}")
                        else:
                                p.update(code=f"r{rnd}-w{i}")
                        data = json.dumps(req(method, p, f"{rnd}-{i}")).encode() + b"\n"
                        barrier.wait()
                        conns[i].send(data)
                        return conns[i].read_reply()

                res = in_parallel(n, writer)
                wins = [i for i, r in enumerate(res) if isinstance(r, dict) and "result" in r]
                losers = [r for r in res if isinstance(r, dict) and "error" in r]
                if len(wins) != 1:
                        winners_ok = False
                        detail.append((rnd, method, short(res)))
                        continue
                if len(losers) != n - 1 or not all(r["error"].get("code") == -32011 and
                                                    (r["error"].get("data") or {}).get("current_revision") == cur + 1
                                                    for r in losers):
                        conflicts_ok = False
                        detail.append((rnd, method, short(losers)))
                nb = d.rpc("notebook.get", {"user_id": user, "notebook_id": nbid})["notebook"]
                w = wins[0]
                stored = {"cell.update": nb["cells"][0]["code"], "notebook.update": nb["name"],
                          "cell.create": nb["cells"][-1]["code"]}[method]
                if nb["revision"] != cur + 1 or stored != f"r{rnd}-w{w}":
                        winners_ok = False
                        detail.append((rnd, method, nb["revision"], stored, w))
        for c in conns:
                c.close()
        t.ok(winners_ok, f"{rounds} rounds of {n} writers: exactly one winner each, its write stored", short(detail, 3000))
        t.ok(conflicts_ok, "the losers get -32011 with current_revision = the winner's", short(detail, 3000))
        nb = d.rpc("notebook.get", {"user_id": user, "notebook_id": nbid})["notebook"]
        t.is_(nb["revision"], 1 + rounds, "one mutation per round")
        check_serving(t, d)


@t.case("a client that does not read its replies stalls nobody else")
def _():
        user, nbid = "slow", "big"
        # About 2 MiB per reply: a few of them fill the socket buffers.
        d.rpc("notebook.create", {"user_id": user, "notebook_id": nbid,
                                  "cells": [{"code": "x" * 20000} for _ in range(100)]})
        slow = d.client()
        n = 150
        blob = b"".join(json.dumps(req("notebook.get", {"user_id": user, "notebook_id": nbid}, i)).encode() + b"\n"
                        for i in range(n))
        slow.sock.setblocking(False)
        sent = 0
        try:
                while sent < len(blob):
                        sent += slow.sock.send(blob[sent:])
        except BlockingIOError:
                pass  # the daemon stopped reading us: expected once replies pile up
        slow.sock.setblocking(True)
        slow.sock.settimeout(tmo(30))
        t.diag(f"slow client: sent {sent} of {len(blob)} bytes before the daemon stopped reading")
        time.sleep(0.3)
        t0 = time.monotonic()
        with d.client(timeout=tmo(5)) as other:
                r = other.call("notebook.list", {"user_id": user})
                w = other.call("cell.create", {"user_id": user, "notebook_id": "other", "code": "x"})
        t.ok("result" in r and time.monotonic() - t0 < tmo(2), "another client answered while one does not read",
             f"{time.monotonic() - t0:.2f}s {short(r)}")
        t.error_is(w, -32010, "another client's write path works too (unknown notebook)")
        # Now read everything: all replies, in order, complete.
        slow.sock.setblocking(True)
        got = []
        try:
                if sent < len(blob):
                        import threading as th
                        sender = th.Thread(target=lambda: slow.sock.sendall(blob[sent:]), daemon=True)
                        sender.start()
                while len(got) < n:
                        rep = slow.read_reply(timeout=tmo(30))
                        got.append((rep.get("id"), len((rep.get("result") or {}).get("notebook", {}).get("cells", []))))
        except Exception as e:
                t.diag(f"reading the slow client's replies: {type(e).__name__}: {e}")
        slow.close()
        t.is_(got, [(i, 100) for i in range(n)], f"the slow client gets all {n} replies, in order, complete")
        check_serving(t, d)


@t.case("group commit: requests that arrive together share a transaction")
def _():
        c = d.client()
        nb = c.rpc("notebook.create", {"user_id": "gc", "notebook_id": "gc", "cells": [{"id": "c"}]})["notebook"]
        before = c.rpc("daemon.status")["transactions"]
        n = 8
        conns = [d.client() for _ in range(n)]
        per = 40

        def burst(i, barrier):
                reqs = [conns[i].request("cell.update", {"user_id": "gc", "notebook_id": "gc", "cell_id": "c",
                                                         "code": f"{i}-{k}"}) for k in range(per)]
                barrier.wait()
                return conns[i].pipeline(reqs)

        replies = in_parallel(n, burst)
        ok = all(isinstance(r, list) and len(r) == per and all("result" in x for x in r) for r in replies)
        t.ok(ok, f"{n} clients x {per} pipelined writes all acknowledged", short(replies))
        for c2 in conns:
                c2.close()
        after = c.rpc("daemon.status")["transactions"]
        used = after - before - 1  # the status call itself runs in one
        t.ok(0 < used <= n * per // 4, f"{n * per} writes committed in {used} transactions (at most {n * per // 4})")
        got = c.rpc("notebook.get", {"user_id": "gc", "notebook_id": "gc"})["notebook"]
        t.is_(got["revision"], nb["revision"] + n * per, "every write counted once in the revision")
        c.close()


@t.case("watchers that hang up while another client writes are let go")
def _():
        c = d.client()
        c.rpc("notebook.create", {"user_id": "wl", "notebook_id": "wl", "cells": [{"id": "c"}]})
        base = c.rpc("daemon.status")
        stop = threading.Event()

        def writer():
                w = d.client()
                while not stop.is_set():
                        w.pipeline([w.request("cell.update", {"user_id": "wl", "notebook_id": "wl", "cell_id": "c",
                                                              "code": "x"}) for _ in range(20)])
                w.close()

        th = threading.Thread(target=writer)
        th.start()
        # Each watcher asks to watch and hangs up without reading: the notifications the daemon then
        # sends it fail, which alone must free it (its reading side may have seen nothing).
        for _ in range(50):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(d.socket)
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"notebook.watch","params":{"user_id":"wl"}}\n')
                time.sleep(0.02)
                s.close()
        time.sleep(0.5)
        stop.set()
        th.join()
        deadline = time.monotonic() + tmo(10)
        while True:
                st = c.rpc("daemon.status")
                if (st["connections"], st["watches"]) == (base["connections"], base["watches"]) or \
                   time.monotonic() > deadline:
                        break
                time.sleep(0.1)
        t.is_((st["connections"], st["watches"]), (base["connections"], base["watches"]),
              "connections and watches back to what they were")
        c.close()


@t.case("group commit across connections: 8 clients with one request each in flight share transactions")
def _():
        user, nbid, clients, writes = "gcx", "gcx", 8, 100
        d.rpc("notebook.create", {"user_id": user, "notebook_id": nbid})
        before = d.rpc("daemon.status")["transactions"]
        rc, out, err = run([NBSTRESS, "--socket", d.socket, "--user", user, "--notebook", nbid, "--clients",
                            str(clients), "--writes", str(writes), "--tag", "X", "--pipeline", "1"], timeout=tmo(120))
        t.is_(rc, 0, "nbstress exit 0")
        used = d.rpc("daemon.status")["transactions"] - before - 1
        total = clients * (writes + 1)  # a cell.create, then the updates
        # Each client waits for its reply before it sends again, so only requests of different
        # connections can share a commit: those that arrive while the loop runs a batch, and while
        # the disk syncs the last one (about 2 to 3 a commit here; one each without group commit).
        t.ok(0 < used <= total * 7 // 8, f"{total} writes from {clients} connections committed in {used} "
             f"transactions (at most {total * 7 // 8}; each its own would be {total})")


t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
