# SPDX-License-Identifier: MIT
"""notebookd as a process: command line, socket ownership, signals, schema version check."""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NOTEBOOKD, TAP, Daemon, check_serving, connect_retry, make_tempdir, req, run, short, tmo, wait_for, write_stream  # noqa: E402

t = TAP()
U = "dm"


@t.case("command line: --help, bad options")
def _():
        rc, out, err = run([NOTEBOOKD, "--help"], timeout=tmo(10))
        t.is_(rc, 0, "--help exits 0")
        t.ok("--state-dir" in out and "--socket" in out, "--help lists --state-dir and --socket on stdout", out + err)
        tmp = Daemon(None)
        for desc, extra in (("unknown option", ["--bogus"]),
                            ("bad --durability", ["--durability", "sometimes"]),
                            ("bad --log-level", ["--log-level", "loud"]),
                            ("missing option argument", ["--socket"]),
                            ("stray positional argument", ["extra"])):
                argv = [NOTEBOOKD, "--state-dir", tmp.state_dir] + (["--socket", tmp.socket] if extra != ["--socket"] else []) + extra
                rc, out, err = run(argv, timeout=tmo(10))
                t.is_(rc, 2, f"{desc}: exit 2")
                t.ok(err.strip() != "", f"{desc}: a message on stderr", out)
        t.ok(not os.path.exists(tmp.socket), "no socket left behind by refused command lines")
        rc, out, err = run([NOTEBOOKD, "--state-dir", tmp.state_dir, "--socket", tmp.socket, "--config",
                            os.path.join(tmp.base, "missing.conf")], timeout=tmo(10))
        t.ok(rc not in (0, "timeout") and "missing.conf" in err, "missing --config file: refused, names the file",
             f"rc {rc}\n{err}")
        bad = os.path.join(tmp.base, "bad.conf")
        with open(bad, "w") as f:
                f.write("[daemon]\ndurability = maybe\nmax_line_bytes = 12\n[users]\nnot a binding\n")
        rc, out, err = run([NOTEBOOKD, "--state-dir", tmp.state_dir, "--socket", tmp.socket, "--config", bad],
                           timeout=tmo(10))
        t.ok(rc not in (0, "timeout") and "bad.conf" in err, "invalid config file: refused with a message",
             f"rc {rc}\n{err}")


d = Daemon(t)


@t.case("start on a fresh directory; a second daemon on the same socket is refused")
def _():
        d.start()
        mode = stat.S_IMODE(os.stat(d.socket).st_mode)
        t.diag(f"socket mode {mode:04o}, state dir mode {stat.S_IMODE(os.stat(d.state_dir).st_mode):04o}")
        t.ok(stat.S_ISSOCK(os.stat(d.socket).st_mode), "socket created")
        # notebookd(8): 0600 unless the configuration lets other uids in.
        t.is_(f"{mode:04o}", "0600", "socket mode 0600 without user bindings")
        t.ok(os.path.exists(d.db), "database created in the state dir")
        d.rpc("notebook.create", {"user_id": U, "notebook_id": "keep", "cells": [{"id": "c", "code": "kept"}]})
        other = Daemon(None)  # own state dir, same socket path
        p = subprocess.run([NOTEBOOKD, "--state-dir", other.state_dir, "--socket", d.socket],
                           capture_output=True, text=True, timeout=tmo(15))
        t.ok(p.returncode != 0, "second daemon on a live socket: nonzero exit", f"rc {p.returncode}")
        t.ok(d.socket in p.stderr or "already" in p.stderr.lower() or "running" in p.stderr.lower(),
             "second daemon: a clear message", p.stderr)
        t.ok(stat.S_ISSOCK(os.stat(d.socket).st_mode), "the live daemon's socket file is still there")
        check_serving(t, d, "first daemon still serving")


@t.case("stale socket file replaced after kill -9")
def _():
        t.is_(d.kill(), -9, "kill -9")
        t.ok(os.path.exists(d.socket), "socket file left behind")
        d.start()
        nb = d.rpc("notebook.get", {"user_id": U, "notebook_id": "keep"})["notebook"]
        t.is_(nb["cells"][0]["code"], "kept", "restarted over the stale socket; data there")
        check_serving(t, d)


def stream_then_signal(sig, name):
        """A client pipelines writes; the daemon gets sig mid-stream. Every acked write must survive."""
        nbid = f"sig-{name}"
        d.rpc("notebook.create", {"user_id": U, "notebook_id": nbid})
        acked = []
        stop = threading.Event()

        def writer():
                def on_reply(j, rep):
                        if "result" in rep and rep.get("id") == j:
                                acked.append(f"c{j}")

                try:
                        write_stream(d.client(), lambda i: req("cell.create", {"user_id": U, "notebook_id": nbid,
                                                                               "cell_id": f"c{i}"}, i),
                                     stop, on_reply)
                except OSError:
                        return

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        t.ok(wait_for(lambda: len(acked) >= 100, tmo(20)), f"{name}: writes acknowledged before the signal", len(acked))
        rc = d.stop(sig)
        stop.set()
        th.join(timeout=tmo(15))
        t.is_(rc, 0, f"{name} during a stream of writes: exit 0")
        t.diag(f"{name}: {len(acked)} writes acknowledged; socket file after stop: {os.path.exists(d.socket)}")
        d.start()
        nb = d.rpc("notebook.get", {"user_id": U, "notebook_id": nbid})["notebook"]
        ids = {c["id"] for c in nb["cells"]}
        missing = [x for x in acked if x not in ids]
        t.ok(not missing, f"{name}: every acknowledged write persisted", short(missing))
        t.is_(nb["revision"], 1 + len(nb["cells"]), f"{name}: revision consistent with the stored cells")


@t.case("SIGTERM and SIGINT: exit 0, acknowledged writes persisted")
def _():
        stream_then_signal(signal.SIGTERM, "SIGTERM")
        stream_then_signal(signal.SIGINT, "SIGINT")
        # Idle daemon, with idle connections open.
        c1, c2 = d.client(), d.client()
        c1.send(b'{"jsonrpc":"2.0","id":1,"method":"daemon.st')  # half a line pending
        t.is_(d.stop(signal.SIGTERM), 0, "SIGTERM with idle and half-written connections: exit 0")
        t.ok(c2.expect_eof(timeout=tmo(5)), "connections closed at stop")
        c1.close()
        c2.close()
        d.start()
        check_serving(t, d)


@t.case("the database, its WAL and shared memory are private, even in a directory others can read")
def _():
        base = make_tempdir()
        state = os.path.join(base, "open-state")
        os.mkdir(state)
        os.chmod(state, 0o755)
        dd = Daemon(t, state_dir=state)
        dd.start()
        dd.rpc("notebook.create", {"user_id": "perm", "notebook_id": "p", "db_conn_string": "postgres://u:secret@h/db"})
        err = dd.stderr_text()
        t.ok(f"State directory {state} has mode 0755" in err, "a warning names the 0755 state directory and its mode",
             err[-2000:])
        modes = {f: stat.S_IMODE(os.stat(os.path.join(state, f)).st_mode)
                 for f in ("notebookd.db", "notebookd.db-wal", "notebookd.db-shm")}
        t.is_(modes, {f: 0o600 for f in modes}, "created 0600 in a 0755 directory")
        dd.stop()
        os.chmod(os.path.join(state, "notebookd.db"), 0o644)
        dd.start()
        t.is_(stat.S_IMODE(os.stat(os.path.join(state, "notebookd.db")).st_mode), 0o600,
              "one left readable by others is made private at the next start")
        dd.stop()


@t.case("a state directory others may read or write: a warning at start, naming it and its mode")
def _():
        base = make_tempdir()
        for mode, warned in ((0o700, False), (0o750, False), (0o770, True), (0o701, True), (0o704, True),
                             (0o1777, True)):
                state = os.path.join(base, f"state-{mode:04o}")
                os.mkdir(state)
                os.chmod(state, mode)
                dd = Daemon(t, state_dir=state)
                dd.start()
                dd.rpc("daemon.status")
                dd.stop()
                err = dd.stderr_text()
                said = f"State directory {state} has mode {mode:04o}" in err
                t.ok(said == warned, f"state directory {mode:04o}: " + ("warned" if warned else "no warning"),
                     err[-2000:])


@t.case("a database newer than the binary is refused")
def _():
        st = d.rpc("daemon.status")
        t.is_(d.stop(), 0, "stop")
        rc, out, err = d.sqlite("PRAGMA user_version;")
        orig = int(out.strip() or 0)
        t.is_(orig, st.get("schema_version"), "PRAGMA user_version is the schema_version of status")
        rc, out, err = d.sqlite("PRAGMA user_version = 999;")
        t.is_(rc, 0, "set user_version 999 with sqlite3")
        p = subprocess.run(d.argv(), capture_output=True, text=True, timeout=tmo(15))
        t.ok(p.returncode != 0, "newer database: nonzero exit", f"rc {p.returncode}")
        msg = p.stderr.lower()
        t.ok("999" in msg or "newer" in msg or "version" in msg, "newer database: clear message", p.stderr)
        t.ok(not os.path.exists(d.socket) or connect_retry(d.socket, 0.1) is None, "newer database: nothing listening")
        rc, out, err = d.sqlite("PRAGMA user_version;")
        t.is_(out.strip(), "999", "refused database left untouched")
        d.sqlite(f"PRAGMA user_version = {orig};")
        d.start()
        nb = d.rpc("notebook.get", {"user_id": U, "notebook_id": "keep"})["notebook"]
        t.is_(nb["cells"][0]["code"], "kept", "back at the right version: starts, data there")


@t.case("socket activation (LISTEN_FDS)")
def _():
        sa = shutil.which("systemd-socket-activate")
        if not sa:
                t.skip("socket activation", "systemd-socket-activate not installed")
                return
        a = Daemon(None)
        p = subprocess.Popen([sa, "-l", a.socket, NOTEBOOKD, "--state-dir", a.state_dir, "--socket", a.socket],
                             stdout=subprocess.DEVNULL, stderr=open(a.stderr_path, "wb"))
        try:
                s = connect_retry(a.socket, tmo(10))
                t.ok(s is not None, "socket-activated: socket accepts")
                if s:
                        from harness import Client
                        c = Client(a.socket, connect=False)
                        c.sock = s
                        s.settimeout(tmo(5))
                        c.timeout = tmo(5)
                        try:
                                r = c.call("daemon.status")
                        except Exception as e:
                                r = {"exception": f"{type(e).__name__}: {e}"}
                        t.ok("result" in r, "socket-activated daemon answers on the inherited socket",
                             short(r) + "\n" + a.stderr_tail())
                        c.close()
                p.send_signal(signal.SIGTERM)
                try:
                        rc = p.wait(timeout=tmo(5))
                except subprocess.TimeoutExpired:
                        rc = "no exit within 5 s"
                t.is_(rc, 0, "socket-activated daemon: SIGTERM, exit 0")
                t.ok(os.path.exists(a.socket), "socket-activated daemon leaves the inherited socket file")
        finally:
                if p.poll() is None:
                        p.kill()
                        p.wait(timeout=5)


@t.case("SIGTERM: requests already received are answered in full, even to a slow reader")
def _():
        a = Daemon(t)
        a.start()
        c = a.client()
        c.rpc("notebook.create", {"user_id": "u", "notebook_id": "big"})
        code = "x" * 100000
        reqs = [c.request("cell.create", {"user_id": "u", "notebook_id": "big", "code": code}) for _ in range(20)]
        c.send(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
        time.sleep(0.5)  # received and committed; about 2 MB of replies wait in the daemon
        a.proc.send_signal(signal.SIGTERM)
        got = []
        try:
                for _ in reqs:
                        got.append(c.read_reply(timeout=tmo(10)))
        except Exception as e:
                t.diag(f"reading replies: {type(e).__name__}: {e}")
        c.close()
        ok = len(got) == 20 and all("result" in r and len(r["result"]["cell"]["code"]) == 100000 for r in got)
        t.ok(ok, f"all 20 replies arrive whole after SIGTERM ({len(got)} read)")
        t.is_(a.proc.wait(timeout=tmo(10)), 0, "and the daemon exits 0")


t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
