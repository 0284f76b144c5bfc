#!/usr/bin/env python3
"""Hostile local peers: each attack runs as an unprivileged uid while a well-behaved client of
another uid measures its latency. Whatever the attackers do, the daemon's peak resident memory
stays within its configured buffer budget, the good client keeps being answered, root always gets
in, and nothing stored changes.

NB_HOSTILE_SCALE (default 1) multiplies the attackers' connections and how long each attack lasts.
"""

import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TAP, Daemon, run, tmo  # noqa: E402

t = TAP()
if os.getuid() != 0:
        t.skip("hostile peers", "needs root (to run peers as other uids)")
        t.done()
SETPRIV = shutil.which("setpriv")
if not SETPRIV:
        t.skip("hostile peers", "setpriv not installed")
        t.done()

SCALE = max(1, int(os.environ.get("NB_HOSTILE_SCALE", "1")))
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
MIB = 1024 * 1024

GOOD_UID = 65531                                 # bound to alice: the well-behaved client
MALLORY_UIDS = [65534, 65530, 65529, 65528]      # bound to mallory's user_ids
STATUS_UIDS = [65520, 65521, 65522, 65523, 65524]  # bound to nothing: may only read the status

LIMITS = {
        "max_notebook_bytes": 4 * MIB,
        "output_soft_limit": 1 * MIB,
        "output_hard_limit": 8 * MIB,
        "uid_buffer_limit": 32 * MIB,
        "buffer_limit": 64 * MIB,
        "request_timeout_s": 2,
        "idle_timeout_s": 3,
}
# What the daemon may use beyond its buffers at its peak: one request's own work (a notebook of
# max_notebook_bytes as a JSON tree and as text), SQLite's page cache, the allocator's slack.
TRANSIENT = 48 * MIB

conf = "[daemon]\n" + "".join(f"{k} = {v}\n" for k, v in LIMITS.items()) + "\n[users]\n"
conf += f"{GOOD_UID} = alice\n"
conf += "".join(f"{u} = mallory{i}\n" for i, u in enumerate(MALLORY_UIDS))
d = Daemon(t, config=conf)
d.start()
os.chmod(d.socket, 0o666)

# The attackers and the good client: one script, run as other uids.
PEER = r'''
import json, socket, sys, time
mode, path = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s

def req(i, method, params):
    return (json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n").encode()

def closed_by_daemon(s, wait):
    """Whether the daemon closed s within wait seconds (reading and dropping what it sent)."""
    s.settimeout(0.2)
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            if not s.recv(1 << 20):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False

if mode == "good":
    # One request at a time, as a client would; the worst time any took.
    s, buf, worst, n, errors = conn(), b"", 0.0, 0, 0
    end = time.monotonic() + args["seconds"]
    while time.monotonic() < end:
        method, params = ("notebook.get", {"user_id": "alice", "notebook_id": args["notebook"]}) if n % 2 else ("daemon.status", {})
        t0 = time.monotonic()
        s.sendall(req(n, method, params))
        while b"\n" not in buf:
            chunk = s.recv(1 << 16)
            if not chunk:
                raise SystemExit("the daemon closed the good client's connection")
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        worst = max(worst, time.monotonic() - t0)
        errors += "error" in json.loads(line)
        n += 1
        time.sleep(0.005)
    print(json.dumps({"worst": worst, "n": n, "errors": errors}))

elif mode == "noread":
    # Many large replies asked for, none read.
    socks = []
    for c in range(args["conns"]):
        s = conn()
        try:
            s.sendall(b"".join(req(i, "notebook.get", args["params"]) for i in range(64)))
        except OSError:
            pass
        socks.append(s)
    time.sleep(args["hold"])
    print(json.dumps({"closed": sum(closed_by_daemon(s, 0.5) for s in socks), "conns": len(socks)}))

elif mode == "halfline":
    # Each connection sends most of a long line and never ends it.
    socks, sent = [], 0
    chunk = b'{"jsonrpc":"2.0","id":1,"method":"daemon.status","params":{"pad":"' + b"x" * (1 << 20)
    small = chunk[:args.get("kib", 0) * 1024]
    for c in range(args["conns"]):
        try:
            s = conn()
            socks.append(s)
            for _ in range(args["mib"]):
                s.sendall(chunk)
                sent += len(chunk)
            if small:
                s.sendall(small)
                sent += len(small)
        except OSError:
            pass
    time.sleep(args["hold"])
    closed = sum(closed_by_daemon(s, 0.5) for s in socks)
    print(json.dumps({"closed": closed, "conns": len(socks), "sent": sent}))

elif mode == "flood":
    # As many connections as the daemon takes, held open.
    socks, refused = [], 0
    for c in range(args["conns"]):
        try:
            s = conn()
            s.sendall(req(0, "daemon.status", {}))
            s.settimeout(5)
            if not s.recv(1 << 16):
                refused += 1
                s.close()
                continue
            socks.append(s)
        except OSError:
            refused += 1
    print(json.dumps({"held": len(socks), "refused": refused}), flush=True)
    time.sleep(args["hold"])

elif mode == "graph":
    # notebook.graph at its limit, pipelined, for a while.
    s, buf, n = conn(), b"", 0
    end = time.monotonic() + args["seconds"]
    while time.monotonic() < end:
        s.sendall(b"".join(req(i, "notebook.graph", args["params"]) for i in range(8)))
        got = 0
        while got < 8:
            while b"\n" not in buf:
                buf += s.recv(1 << 20)
            line, buf = buf.split(b"\n", 1)
            got += 1
            n += "result" in json.loads(line)
    print(json.dumps({"graphs": n}))
'''
peer_path = os.path.join(d.base, "peer.py")
with open(peer_path, "w") as f:
        f.write(PEER)
os.chmod(peer_path, 0o644)


def peer_argv(uid, mode, args):
        return [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", PY, peer_path, mode, d.socket,
                json.dumps(args)]


def as_peer(uid, mode, args, timeout=None):
        rc, out, err = run(peer_argv(uid, mode, args), timeout=timeout or tmo(60))
        if rc != 0:
                raise RuntimeError(f"{mode} as uid {uid}: rc {rc}\n{out}\n{err}")
        return json.loads(out.strip().splitlines()[-1])


def sanitized():
        """Whether the daemon runs under AddressSanitizer, which keeps freed memory in quarantine
        (its resident size then says nothing about what the daemon holds)."""
        with open(f"/proc/{d.proc.pid}/maps") as f:
                return "libasan" in f.read()


def check_peak(label):
        peak = vm("VmHWM")
        t.diag(f"{label}: peak resident memory {peak / MIB:.1f} MiB (before the attacks {rss_base / MIB:.1f} MiB)")
        what = f"{label}: peak memory grows by at most buffer_limit + {TRANSIENT // MIB} MiB"
        if sanitized():
                t.skip(what, "AddressSanitizer keeps freed memory in quarantine")
        else:
                t.ok(peak - rss_base <= LIMITS["buffer_limit"] + TRANSIENT, what,
                     f"grew by {(peak - rss_base) / MIB:.1f} MiB")


def vm(field):
        with open(f"/proc/{d.proc.pid}/status") as f:
                for line in f:
                        if line.startswith(field + ":"):
                                return int(line.split()[1]) * 1024
        return 0


class Good:
        """The well-behaved client, as its own uid, for the length of one attack."""

        def __init__(self, seconds, notebook="notes"):
                self.result = None
                self.error = None
                self.th = threading.Thread(target=self._run, args=(seconds, notebook))
                self.th.start()

        def _run(self, seconds, notebook):
                try:
                        self.result = as_peer(GOOD_UID, "good", {"seconds": seconds, "notebook": notebook},
                                              timeout=tmo(seconds + 60))
                except Exception as e:  # reported by check()
                        self.error = e

        def check(self, label):
                self.th.join()
                ok = self.result is not None and self.result["errors"] == 0 and self.result["n"] > 0
                t.ok(ok, f"{label}: the good client is answered throughout",
                     repr(self.error) if self.error else json.dumps(self.result))
                if self.result:
                        worst_ms = self.result["worst"] * 1000
                        worst_seen.append((worst_ms, label))
                        t.diag(f"{label}: good client's worst latency {worst_ms:.1f} ms over {self.result['n']} requests")
                        t.ok(worst_ms < tmo(1) * 1000, f"{label}: the good client waits under {tmo(1):.0f} s at worst",
                             f"{worst_ms:.0f} ms")


def root_gets_in(label):
        try:
                with d.client(timeout=tmo(5)) as c:
                        r = c.rpc("daemon.status", {})
                ok = "connections" in r
        except Exception as e:
                ok, r = False, repr(e)
        t.ok(ok, f"{label}: root connects and is answered", str(r)[:300])


def snapshot():
        with d.client() as c:
                return {(u, n["id"]): c.rpc("notebook.get", {"user_id": u, "notebook_id": n["id"]})["notebook"]
                        for u in ("alice", "mallory0")
                        for n in c.rpc("notebook.list", {"user_id": u})["notebooks"]}


worst_seen = []
root = d.client(timeout=tmo(60))
# The good client's notebook, and one of mallory's at the size limit.
root.rpc("notebook.create", {"user_id": "alice", "notebook_id": "notes",
                             "cells": [{"id": f"c{i}", "code": f"x{i} = {i}"} for i in range(20)]})
root.rpc("notebook.create", {"user_id": "alice", "notebook_id": "album",
                             "cells": [{"id": f"p{i}", "code": "p" * (MIB - 64)} for i in range(3)]})
root.rpc("notebook.create", {"user_id": "mallory0", "notebook_id": "big"})
for i in range(4):  # 96 bytes short of max_notebook_bytes
        root.rpc("cell.create", {"user_id": "mallory0", "notebook_id": "big", "code": "m" * (MIB - 64)})
root.rpc("notebook.create", {"user_id": "mallory0", "notebook_id": "graph",
                             "cells": [{"id": f"g{i}", "code": "", "reads": ["a", "b"], "writes": ["a", "b"]}
                                       for i in range(100)]})
root.rpc("notebook.create", {"user_id": "mallory0", "notebook_id": "graph-over",
                             "cells": [{"id": f"g{i}", "code": "", "reads": ["a", "b"], "writes": ["a", "b"]}
                                       for i in range(1000)]})
root.close()
BEFORE = snapshot()
rss_base = vm("VmRSS")
t.diag(f"daemon resident memory before the attacks: {rss_base / MIB:.1f} MiB")

# --- the per-notebook budget: refused, named, nothing stored ---------------------------------------
with d.client() as c:
        big = {"user_id": "mallory0", "notebook_id": "big"}
        rev = c.rpc("notebook.get", big)["notebook"]["revision"]
        r = c.call("cell.create", dict(big, code="m" * 100))
        err = r.get("error") or {}
        t.ok(err.get("code") == -32013 and "max_notebook_bytes" in err.get("message", "")
             and (err.get("data") or {}).get("limit") == LIMITS["max_notebook_bytes"],
             "an edit past max_notebook_bytes is refused with -32013, naming the limit", json.dumps(r)[:300])
        t.is_(c.rpc("notebook.get", big)["notebook"]["revision"], rev, "and the notebook is unchanged")
        r = c.call("cell.update", dict(big, cell_id=c.rpc("notebook.get", big)["notebook"]["cells"][0]["id"], code="small"))
        t.ok("result" in r, "a notebook at its limit may still shrink", json.dumps(r)[:300])
BEFORE = snapshot()

# --- 1. peers that never read their replies ---------------------------------------------------------
hold = 3 + SCALE
good = Good(hold + 2)
outs = [None] * len(MALLORY_UIDS)


def noread(i, uid):
        outs[i] = as_peer(uid, "noread", {"conns": 4 * SCALE, "hold": hold,
                                          "params": {"user_id": f"mallory{i}", "notebook_id": "big"}})


# Only mallory0 has the big notebook; the others get errors (small replies) in bulk.
ths = [threading.Thread(target=noread, args=(i, u)) for i, u in enumerate(MALLORY_UIDS)]
for th in ths:
        th.start()
for th in ths:
        th.join()
good.check("unread replies")
t.ok(outs[0] and outs[0]["closed"] == outs[0]["conns"],
     "unread replies: every connection that left megabytes unread is disconnected", json.dumps(outs[0]))
check_peak("unread replies")
root_gets_in("unread replies")

# --- 2. half lines ----------------------------------------------------------------------------------
good = Good(4 + SCALE)
outs = [None] * 2


def halfline(i, uid):
        outs[i] = as_peer(uid, "halfline", {"conns": 20 * SCALE, "mib": 15, "hold": 5 + SCALE})


ths = [threading.Thread(target=halfline, args=(i, u)) for i, u in enumerate(MALLORY_UIDS[:2])]
for th in ths:
        th.start()
for th in ths:
        th.join()
good.check("half lines")
t.ok(all(o and o["closed"] == o["conns"] for o in outs),
     "half lines: every connection holding half a request is disconnected (budget or request_timeout_s)",
     json.dumps(outs))
check_peak("half lines")

# --- 2b. many small holders past buffer_limit, while the good client reads large replies ---------
# The connection holding the most is the good client's, with one 3 MiB reply; the budget must
# take it from the uids holding the most, not from it.
good = Good(4 + SCALE, notebook="album")
outs = [None] * len(MALLORY_UIDS)


def small_halflines(i, uid):
        outs[i] = as_peer(uid, "halfline", {"conns": 250, "kib": 40, "mib": 0, "hold": 2 + SCALE})


ths = [threading.Thread(target=small_halflines, args=(i, u)) for i, u in enumerate(MALLORY_UIDS)]
for th in ths:
        th.start()
for th in ths:
        th.join()
good.check("many small holders")
t.ok(all(o and o["conns"] > 0 for o in outs), "many small holders: their connections were opened", json.dumps(outs))

# --- 3. notebook.graph at its limit -----------------------------------------------------------------
good = Good(2 + SCALE)
out = as_peer(MALLORY_UIDS[0], "graph", {"seconds": 2 + SCALE, "params": {"user_id": "mallory0", "notebook_id": "graph"}})
good.check("graphs at the link limit")
t.ok(out["graphs"] > 0, "graphs at the link limit: they are computed", json.dumps(out))
with d.client() as c:
        r = c.call("notebook.graph", {"user_id": "mallory0", "notebook_id": "graph-over"})
t.is_((r.get("error") or {}).get("code"), -32013, "a graph past the link limit is refused with -32013")

# --- 4. connection floods ---------------------------------------------------------------------------
procs = []
import subprocess  # noqa: E402

good = Good(4 + SCALE)
flood = {}
for uid in STATUS_UIDS + MALLORY_UIDS:
        p = subprocess.Popen(peer_argv(uid, "flood", {"conns": 300, "hold": 4 + SCALE}), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        procs.append((uid, p))
for uid, p in procs:
        line = p.stdout.readline()
        flood[uid] = json.loads(line) if line else None
root_gets_in("a full connection table")
with d.client() as c:
        conns = c.rpc("daemon.status", {})["connections"]
t.diag(f"flood: {conns} connections held; per uid: " + ", ".join(f"{u}: {f and f['held']}" for u, f in flood.items()))
t.ok(all(flood[u] and flood[u]["held"] <= 4 for u in STATUS_UIDS),
     "flood: a uid that may only read the status holds at most 4 connections", json.dumps(flood))
t.ok(conns <= 1024 - 32 + 3, "flood: unprivileged peers never take the 32 reserved connections", str(conns))
for uid, p in procs:
        p.wait(timeout=tmo(60))
good.check("a connection flood")

# --- 5. idle connections ----------------------------------------------------------------------------
with d.client() as c:
        c.rpc("daemon.status", {})
        c.sock.settimeout(LIMITS["idle_timeout_s"] + tmo(5))
        t0 = time.monotonic()
        try:
                eof = c.sock.recv(1) == b""
        except OSError:
                eof = False
        waited = time.monotonic() - t0
t.ok(eof and waited >= LIMITS["idle_timeout_s"] - 1.5, "an idle connection is closed after idle_timeout_s",
     f"eof {eof} after {waited:.1f} s")
with d.client() as c:
        c.rpc("notebook.watch", {"user_id": "alice", "notebook_id": "notes"})
        c.sock.settimeout(LIMITS["idle_timeout_s"] + 2)
        try:
                c.sock.recv(1)
                kept = False
        except TimeoutError:
                kept = True
t.ok(kept, "a watching connection is not closed for being idle")

# --- afterwards -------------------------------------------------------------------------------------
t.ok(snapshot() == BEFORE, "nothing stored changed")
with open(d.stderr_path) as f:
        log = f.read()
lines = [x for x in log.splitlines() if "Disconnecting" in x or "refusing" in x]
t.diag(f"{len(lines)} disconnect or refusal messages logged")
t.ok(len(lines) <= 12 * (10 + 8 * SCALE), "disconnections and refusals are logged at a limited rate", str(len(lines)))
if worst_seen:
        w, label = max(worst_seen)
        t.diag(f"worst latency of the good client over all attacks: {w:.1f} ms ({label})")
t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
