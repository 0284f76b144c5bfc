# SPDX-License-Identifier: MIT
"""Access control by SO_PEERCRED: peers running as other uids (setpriv), bound and unbound."""

import grp
import json
import os
import pwd
import shutil
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NOTEBOOKCTL, TAP, Daemon, check_serving, run, short, tmo  # noqa: E402

t = TAP()
if os.getuid() != 0:
        t.skip("access control by peer uid", "needs root (to run peers as other uids)")
        t.done()
SETPRIV = shutil.which("setpriv")
if not SETPRIV:
        t.skip("access control by peer uid", "setpriv not installed")
        t.done()

GUEST_UID = 65534   # bound to guest, guest2
UNBOUND_UID = 65533  # bound to nothing
ADMIN_UID = 65532   # unbound, but member of the admin group
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
try:
        ADMIN_GROUP = grp.getgrnam("users")
except KeyError:
        ADMIN_GROUP = None

conf = f"[users]\n{GUEST_UID} = guest, guest2\n"
if ADMIN_GROUP:
        conf = f"[daemon]\nadmin_group = {ADMIN_GROUP.gr_name}\n\n" + conf
d = Daemon(t, config=conf)
d.start()

# The socket must be reachable by other uids: the directory is 0755 (harness); the daemon chooses
# the socket's mode.
mode = stat.S_IMODE(os.stat(d.socket).st_mode)
# notebookd(8): 0666 when the configuration binds other uids (access is then by SO_PEERCRED).
t.is_(f"{mode:04o}", "0666", "socket mode 0666 when the configuration binds uids")
if mode & 0o006 != 0o006:
        t.diag("socket not writable by other uids: the test opens it up (chmod 0666) to exercise SO_PEERCRED")
        os.chmod(d.socket, 0o666)

# A raw client for another uid: reads requests (JSON lines) from argv, prints the replies as one
# JSON array.
RAW = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
reqs = json.loads(sys.argv[2])
s.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
buf, out = b"", []
while len(out) < len(reqs):
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            print(json.dumps(out)); sys.exit(3)
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    out.append(json.loads(line))
print(json.dumps(out))
"""


def as_uid(uid, argv, groups=None):
        pre = [SETPRIV, f"--reuid={uid}", f"--regid={uid}"]
        pre += [f"--groups={groups}"] if groups is not None else ["--clear-groups"]
        return run(pre + argv, timeout=tmo(20))


def rpc_as(uid, calls, groups=None, daemon=None):
        """calls: list of (method, params); returns the replies (or raises)."""
        reqs = [{"jsonrpc": "2.0", "id": i, "method": m, **({"params": p} if p is not None else {})}
                for i, (m, p) in enumerate(calls)]
        rc, out, err = as_uid(uid, [PY, "-c", RAW, (daemon or d).socket, json.dumps(reqs)], groups)
        if rc != 0:
                raise RuntimeError(f"raw client as uid {uid}: rc {rc}\n{out}\n{err}")
        return json.loads(out)


def code_of(r):
        return (r.get("error") or {}).get("code")


root = d.client()
root.rpc("notebook.list", {"user_id": "alice"})
root.rpc("notebook.create", {"user_id": "alice", "notebook_id": "secret", "cells": [{"id": "c", "code": "s3cret"}]})
ALICE_BEFORE = {n: root.rpc("notebook.get", {"user_id": "alice", "notebook_id": n})["notebook"]
                for n in ("secret", "demo-alice", "blank-alice")}

PRIV_KEYS = ("state_dir", "database", "notebooks", "users", "connections", "watches", "requests", "transactions")

# Every method that touches notebooks, against an existing and a missing target.
def attempts(user):
        calls = []
        for nb in ("secret", "demo-alice", "does-not-exist"):
                base = {"user_id": user, "notebook_id": nb}
                calls += [
                        ("notebook.get", base),
                        ("notebook.update", dict(base, name="pwned")),
                        ("notebook.delete", base),
                        ("notebook.graph", base),
                        ("cell.create", dict(base, code="pwned")),
                        ("cell.update", dict(base, cell_id="c", code="pwned")),
                        ("cell.delete", dict(base, cell_id="c")),
                        ("cell.move", dict(base, cell_id="c", position=0)),
                        ("notebook.watch", base),
                ]
        calls += [("notebook.list", {"user_id": user}), ("notebook.create", {"user_id": user, "notebook_id": "new"}),
                  ("demo.reset", {"user_id": user}), ("notebook.watch", {"user_id": user})]
        return calls


def all_denied(desc, replies):
        codes = [code_of(r) for r in replies]
        t.ok(codes and all(c == -32012 for c in codes), f"{desc}: every request -32012", short(codes, 2000))
        errs = {json.dumps({k: v for k, v in (r.get("error") or {}).items()}, sort_keys=True) for r in replies}
        # The same refusal whatever the target: one distinct error object per method at most.
        by_method = {}
        for (m, _), r in zip(attempts("x"), replies):
                by_method.setdefault(m, set()).add(json.dumps(r.get("error"), sort_keys=True))
        t.ok(all(len(v) == 1 for v in by_method.values()),
             f"{desc}: the same error whether the notebook exists or not", short(by_method, 3000))
        leaks = [e for e in errs if "secret" in e or "demo-alice" in e or "does-not-exist" in e]
        t.ok(not leaks, f"{desc}: errors name no notebook", short(leaks))


def alice_untouched(desc):
        now = {n: root.rpc("notebook.get", {"user_id": "alice", "notebook_id": n})["notebook"] for n in ALICE_BEFORE}
        t.ok(now == ALICE_BEFORE, f"{desc}: alice's notebooks unchanged")
        ids = [n["id"] for n in root.rpc("notebook.list", {"user_id": "alice"})["notebooks"]]
        t.ok("new" not in ids, f"{desc}: nothing created for alice", ids)


@t.case("unbound uid: daemon.status only")
def _():
        r = rpc_as(UNBOUND_UID, [("daemon.status", None)])[0]
        st = r.get("result") or {}
        t.ok("result" in r, "unbound uid: daemon.status works", short(r))
        t.is_(st.get("peer"), {"uid": UNBOUND_UID, "privileged": False, "user_ids": []}, "unbound: status.peer")
        t.ok(not any(k in st for k in PRIV_KEYS), "unbound: no privileged fields in status", sorted(st))
        r = rpc_as(UNBOUND_UID, [("notebook.list", None), ("notebook.list", {"user_id": "alice"}),
                                 ("notebook.get", {"notebook_id": "x"})])
        t.is_([code_of(x) for x in r], [-32012] * 3, "unbound: list (with and without user_id), get: -32012")
        all_denied("unbound uid acting as alice", rpc_as(UNBOUND_UID, attempts("alice")))
        all_denied("unbound uid acting as a user that does not exist", rpc_as(UNBOUND_UID, attempts("nobody-at-all")))
        alice_untouched("unbound uid")
        r = rpc_as(UNBOUND_UID, [("notebook.get", {"user_id": "alice", "notebook_id": "secret"}),
                                 ("notebook.get", {"user_id": "nobody-at-all", "notebook_id": "secret"})])
        t.is_(r[0].get("error"), r[1].get("error"), "same refusal for an existing and a missing user")
        check_serving(t, d)


@t.case("bound uid acts as its users only")
def _():
        r = rpc_as(GUEST_UID, [("notebook.list", None), ("notebook.list", {"user_id": "guest2"}),
                               ("notebook.create", {"notebook_id": "mine", "cells": [{"id": "g", "code": "g = 1"}]}),
                               ("cell.update", {"notebook_id": "mine", "cell_id": "g", "code": "g = 2"}),
                               ("notebook.get", {"user_id": "guest", "notebook_id": "mine"}),
                               ("daemon.status", None)])
        t.ok(all("result" in x for x in r), "guest: list, create, update, get, status succeed", short(r, 2000))
        if all("result" in x for x in r):
                t.is_((r[0]["result"]["user_id"], r[0]["result"]["provisioned"]), ("guest", True),
                      "without user_id: acts as the first bound user_id")
                t.is_([n["id"] for n in r[0]["result"]["notebooks"]], ["blank-guest", "demo-guest"], "guest provisioned")
                t.is_(r[1]["result"]["user_id"], "guest2", "second bound user_id usable")
                t.is_(r[4]["result"]["notebook"]["cells"][0]["code"], "g = 2", "guest's write stored")
                st = r[5]["result"]
                t.is_(st.get("peer"), {"uid": GUEST_UID, "privileged": False, "user_ids": ["guest", "guest2"]},
                      "guest: status.peer")
                t.ok(not any(k in st for k in PRIV_KEYS), "guest: no privileged fields in status", sorted(st))
        all_denied("guest acting as alice", rpc_as(GUEST_UID, attempts("alice")))
        all_denied("guest acting as an unknown user", rpc_as(GUEST_UID, attempts("nobody-at-all")))
        alice_untouched("guest")
        # The refusal is the same whatever exists.
        r = rpc_as(GUEST_UID, [("notebook.get", {"user_id": "alice", "notebook_id": "secret"}),
                               ("notebook.get", {"user_id": "alice", "notebook_id": "nope"}),
                               ("notebook.get", {"user_id": "nobody-at-all", "notebook_id": "nope"})])
        t.ok(r[0].get("error") == r[1].get("error") == r[2].get("error") and code_of(r[0]) == -32012,
             "guest: identical refusal for existing/missing notebook and user", short(r))
        # The connection survives refusals.
        r = rpc_as(GUEST_UID, [("notebook.get", {"user_id": "alice", "notebook_id": "secret"}),
                               ("notebook.get", {"notebook_id": "mine"})])
        t.ok(code_of(r[0]) == -32012 and "result" in r[1], "guest: connection kept after a refusal", short(r))


@t.case("root acts for anyone")
def _():
        nb = root.rpc("notebook.get", {"user_id": "guest", "notebook_id": "mine"})["notebook"]
        t.is_(nb["cells"][0]["code"], "g = 2", "root reads guest's notebook")
        r = root.rpc("cell.update", {"user_id": "guest", "notebook_id": "mine", "cell_id": "g", "code": "by root"})
        t.is_(r["cell"]["code"], "by root", "root writes guest's notebook")
        r = rpc_as(GUEST_UID, [("notebook.get", {"notebook_id": "mine"})])[0]
        t.is_(r.get("result", {}).get("notebook", {}).get("cells", [{}])[0].get("code"), "by root", "guest sees root's write")
        st = root.rpc("daemon.status")
        t.ok(st.get("peer", {}).get("privileged") is True and all(k in st for k in PRIV_KEYS),
             "root: privileged status", short(st))


@t.case("admin group members act for anyone")
def _():
        if not ADMIN_GROUP:
                t.skip("admin group", "no group 'users' on this system")
                return
        r = rpc_as(ADMIN_UID, [("notebook.get", {"user_id": "alice", "notebook_id": "secret"}), ("daemon.status", None)],
                   groups=str(ADMIN_GROUP.gr_gid))
        t.is_(r[0].get("result", {}).get("notebook", {}).get("cells", [{}])[0].get("code"), "s3cret",
              "admin group member reads alice's notebook")
        t.is_(r[1].get("result", {}).get("peer", {}).get("privileged"), True, "admin group member: privileged")
        r = rpc_as(ADMIN_UID, [("notebook.get", {"user_id": "alice", "notebook_id": "secret"})])
        t.is_(code_of(r[0]), -32012, "same uid without the group: -32012")


@t.case("notebookctl as other uids: exit code 6 on refusal")
def _():
        ctl_bin = NOTEBOOKCTL
        if as_uid(GUEST_UID, ["test", "-x", ctl_bin])[0] != 0:
                # The build tree may sit under a private directory (a clone in /root): run a copy
                # from the test's own directory, which every uid can reach.
                ctl_bin = os.path.join(d.base, "notebookctl")
                shutil.copy2(NOTEBOOKCTL, ctl_bin)
                os.chmod(d.base, 0o755)
                os.chmod(ctl_bin, 0o755)
        t.is_(as_uid(GUEST_UID, ["test", "-x", ctl_bin])[0], 0, f"notebookctl runs as uid {GUEST_UID}")
        NOTEBOOKCTL_AS = ctl_bin
        rc, out, err = as_uid(GUEST_UID, [NOTEBOOKCTL_AS, "--socket", d.socket, "list"])
        t.ok(rc == 0 and "blank-guest" in out, "guest: notebookctl list", f"rc {rc}\n{out}\n{err}")
        rc, out, err = as_uid(GUEST_UID, [NOTEBOOKCTL_AS, "--socket", d.socket, "--user", "alice", "list"])
        t.is_(rc, 6, "guest: notebookctl --user alice list exits 6")
        rc, out, err = as_uid(GUEST_UID, [NOTEBOOKCTL_AS, "--socket", d.socket, "--user", "alice", "show", "secret"])
        t.ok(rc == 6 and "s3cret" not in out + err, "guest: show alice's notebook exits 6, leaks nothing", f"rc {rc}")
        rc, out, err = as_uid(UNBOUND_UID, [NOTEBOOKCTL_AS, "--socket", d.socket, "list"])
        t.is_(rc, 6, "unbound: notebookctl list exits 6")
        rc, out, err = as_uid(UNBOUND_UID, [NOTEBOOKCTL_AS, "--socket", d.socket, "status"])
        t.is_(rc, 0, "unbound: notebookctl status exits 0")
        alice_untouched("notebookctl")


@t.case("binding by user name")
def _():
        try:
                name = pwd.getpwuid(GUEST_UID).pw_name
        except KeyError:
                t.skip("binding by user name", f"uid {GUEST_UID} has no passwd entry")
                return
        d2 = Daemon(t, config=f"[users]\n{name} = byname\n")
        d2.start()
        r = rpc_as(GUEST_UID, [("notebook.list", None), ("notebook.list", {"user_id": "guest"})], daemon=d2)
        t.is_(r[0].get("result", {}).get("user_id"), "byname", f"'{name} = byname' binds uid {GUEST_UID}")
        t.is_(code_of(r[1]), -32012, "the other daemon's binding does not apply here")
        t.is_(d2.stop(), 0, "second daemon: SIGTERM, exit 0")


# A watcher for another uid: watches its user, then prints every line it receives, one per line,
# until nothing came for 3 s.
WATCHER = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "notebook.watch",
                      "params": {"user_id": sys.argv[2]}}).encode() + b"\n")
s.settimeout(3)
f = s.makefile("rb")
try:
    for line in f:
        print(line.decode().strip(), flush=True)
except (socket.timeout, OSError):
    pass
"""


@t.case("a watch ends when a reload takes the user away from the peer")
def _():
        import signal
        import subprocess
        import time
        root.rpc("notebook.create", {"user_id": "guest", "notebook_id": "watched"})
        w = subprocess.Popen([SETPRIV, f"--reuid={GUEST_UID}", f"--regid={GUEST_UID}", "--clear-groups", PY, "-c",
                              WATCHER, d.socket, "guest"], stdout=subprocess.PIPE, text=True)
        first = json.loads(w.stdout.readline() or "{}")
        t.is_(first.get("result", {}).get("watching"), True, "uid 65534 watches guest")
        root.rpc("notebook.update", {"user_id": "guest", "notebook_id": "watched", "name": "seen"})
        note = json.loads(w.stdout.readline() or "{}")
        t.is_(note.get("params", {}).get("notebook_id"), "watched", "and is told of a change")
        d.set_config(conf.replace(f"{GUEST_UID} = guest, guest2", f"{GUEST_UID} = guest2"))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + tmo(10)
        while time.monotonic() < deadline and code_of(rpc_as(GUEST_UID, [("notebook.list", {"user_id": "guest"})])[0]) != -32012:
                time.sleep(0.1)
        t.is_(code_of(rpc_as(GUEST_UID, [("notebook.list", {"user_id": "guest"})])[0]), -32012,
              "after the reload uid 65534 may no longer act for guest")
        root.rpc("notebook.update", {"user_id": "guest", "notebook_id": "watched", "name": "unseen"})
        rest, _ = w.communicate(timeout=tmo(20))
        t.is_(rest.strip(), "", "and its watch tells it nothing more")
        d.set_config(conf)
        d.proc.send_signal(signal.SIGHUP)


# Opens N connections as another uid, holding them all; prints how many got an answer.
HOARDER = r"""
import json, socket, sys
socks, ok = [], 0
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sys.argv[1])
    socks.append(s)
    try:
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"daemon.status"}\n')
        if b'"result"' in s.recv(65536):
            ok += 1
    except OSError:
        pass
print(ok)
"""


@t.case("sync.pull: refused to an unbound uid, allowed to a bound one")
def _():
        r = rpc_as(UNBOUND_UID, [("sync.pull", None)])
        t.is_(code_of(r[0]), -32012, "unbound uid: -32012")
        r = rpc_as(GUEST_UID, [("sync.pull", None)])
        t.is_(code_of(r[0]), -32030, "bound uid: allowed (here -32030: the daemon runs local-only)")


@t.case("one local uid may not take every connection")
def _():
        rc, out, err = as_uid(GUEST_UID, [PY, "-c", HOARDER, d.socket, "300"])
        t.is_(out.strip(), "256", "uid 65534 gets 256 connections, not 300")
        t.ok("refusing one more" in d.stderr_text(), "the daemon says why")
        t.is_(d.stderr_text().count("refusing one more"), 1, "once for the 44 refusals, not 44 times")
        import time
        deadline = time.monotonic() + tmo(10)
        while time.monotonic() < deadline and root.rpc("daemon.status")["connections"] > 1:
                time.sleep(0.05)
        rc, out, err = as_uid(GUEST_UID, [PY, "-c", HOARDER, d.socket, "1"])
        t.is_(out.strip(), "1", "once they are closed, it connects again")
        check_serving(t, d)


@t.case("a uid bound to no user_id, which may only read the status, gets a few connections")
def _():
        rc, out, err = as_uid(UNBOUND_UID, [PY, "-c", HOARDER, d.socket, "10"])
        t.is_(out.strip(), "4", "uid 65533 (bound to nothing) gets 4 connections, not 10")
        # (Why is logged at most once per 10 s for all uids: the case before may have said it.)
        check_serving(t, d)


root.close()
t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
