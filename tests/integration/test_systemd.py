# SPDX-License-Identifier: MIT
"""notebookd as a systemd service, without systemd as PID 1.

The test binds its own NOTIFY_SOCKET and reads what the daemon tells the service manager:
READY=1 (only once the socket accepts), STATUS=, WATCHDOG=1 at the period WATCHDOG_USEC asks for,
RELOADING=1 and READY=1 around a SIGHUP, STOPPING=1. systemd-socket-activate starts the daemon on
the first connection. SIGTERM in the middle of writes from several clients loses no acknowledged
write. SIGHUP applies a changed log level and [users] binding, says what needs a restart, and
keeps the old settings when the new file is broken. --check-config reports every problem. No
AWS secret appears in any log line, at debug level, whichever source the credentials come from.
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NOTEBOOKD, TAP, Client, Daemon, check_serving, connect_retry, free_port,  # noqa: E402
                     make_tempdir, req, run, short, tmo, wait_for, write_stream)

t = TAP()
U = "sd"
WATCHDOG_USEC = 400000
# Variables of the test's own environment that must not reach a daemon (a developer's AWS setup).
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION", "AWS_DEFAULT_REGION",
            "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "CREDENTIALS_DIRECTORY", "WATCHDOG_PID", "WATCHDOG_USEC",
            "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "JOURNAL_STREAM")


class Notify:
        """A NOTIFY_SOCKET of our own: every datagram, with the time it arrived."""

        def __init__(self, base):
                self.path = os.path.join(base, "notify")
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self.sock.bind(self.path)
                self.sock.settimeout(0.1)
                self.messages = []  # (monotonic seconds, text)
                self.cond = threading.Condition()
                self.closed = False
                threading.Thread(target=self._reader, daemon=True).start()

        def _reader(self):
                while not self.closed:
                        try:
                                data = self.sock.recv(65536)
                        except socket.timeout:
                                continue
                        except OSError:
                                return
                        with self.cond:
                                self.messages.append((time.monotonic(), data.decode(errors="replace")))
                                self.cond.notify_all()

        def close(self):
                self.closed = True

        def snapshot(self):
                with self.cond:
                        return list(self.messages)

        def mark(self):
                """The index of the next message, for wait(since=...)."""
                with self.cond:
                        return len(self.messages)

        def wait(self, prefix, timeout, since=0):
                """The index of the first message from since on that starts with prefix, or None."""
                deadline = time.monotonic() + timeout
                with self.cond:
                        while True:
                                for i in range(since, len(self.messages)):
                                        if self.messages[i][1].startswith(prefix):
                                                return i
                                left = deadline - time.monotonic()
                                if left <= 0:
                                        return None
                                self.cond.wait(left)

        def text(self, i):
                with self.cond:
                        return self.messages[i][1]

        def fields(self, i):
                return dict(line.split("=", 1) for line in self.text(i).split("\n") if "=" in line)

        def times(self, text, since=0):
                with self.cond:
                        return [at for at, m in self.messages[since:] if m == text]

        def dump(self):
                t0 = self.messages[0][0] if self.messages else 0
                return "\n".join(f"{at - t0:7.3f} {m!r}" for at, m in self.snapshot())


def notify_daemon(tap, env=None, **kw):
        """A Daemon with its own NOTIFY_SOCKET (and no inherited service-manager variables)."""
        base = make_tempdir()
        n = Notify(base)
        e = {v: None for v in AWS_VARS}
        e["NOTIFY_SOCKET"] = n.path
        e.update(env or {})
        d = Daemon(tap, base=base, env=e, **kw)
        tap.on_failure.append(lambda: "notifications:\n" + n.dump())
        return d, n


def stderr_has(d, needle, timeout):
        return wait_for(lambda: needle in d.stderr_text(), timeout)


# --------------------------------------------------------------------------------------------

@t.case("--check-config: every problem with its line, the file named, exit status")
def _():
        base = make_tempdir()
        rc, out, err = run([NOTEBOOKD, "--help"], timeout=tmo(10))
        t.ok(rc == 0 and "--check-config" in out, "--help lists --check-config", out)

        good = os.path.join(base, "good.conf")
        with open(good, "w") as f:
                f.write("[daemon]\nlog_level = debug\ndurability = normal\n[users]\n0 = root-user\n"
                        "[remote]\nenabled = no\ntable = notebooks\n")
        rc, out, err = run([NOTEBOOKD, "--check-config", "--config", good], timeout=tmo(10))
        t.is_(rc, 0, "valid file: exit 0")
        t.ok(good in out and "OK" in out, "valid file: names the file and says OK", out + err)
        t.is_(err, "", "valid file: nothing on stderr")

        bad = os.path.join(base, "bad.conf")
        with open(bad, "w") as f:
                f.write("[daemon]\n"                 # 1
                        "durability = maybe\n"       # 2
                        "max_line_bytes = 12\n"      # 3
                        "colour = blue\n"            # 4
                        "[users]\n"                  # 5
                        "not a binding\n"            # 6
                        "[remote]\n"                 # 7
                        "debounce_ms = 9000\n"       # 8
                        "max_delay_ms = 10\n"        # 9
                        "[nonsense]\n")              # 10
        state = os.path.join(base, "state")
        sock = os.path.join(base, "nb.sock")
        rc, out, err = run([NOTEBOOKD, "--check-config", "--config", bad, "--state-dir", state, "--socket", sock],
                           timeout=tmo(10))
        t.is_(rc, 1, "invalid file: exit 1")
        for line, what in ((2, "durability"), (3, "max_line_bytes"), (4, "colour"), (6, "key = value"),
                           (9, "max_delay_ms"), (10, "nonsense")):
                t.ok(any(ln.startswith(f"{bad}:{line}: ") and what in ln for ln in err.splitlines()),
                     f"invalid file: {bad}:{line} reported ({what})", err)
        t.ok("6 problems" in err, "invalid file: the count of problems, naming the file", err)
        t.ok(not os.path.exists(state) and not os.path.exists(sock), "--check-config starts nothing")

        missing = os.path.join(base, "missing.conf")
        rc, out, err = run([NOTEBOOKD, "--check-config", "--config", missing], timeout=tmo(10))
        t.ok(rc == 1 and missing in err, "a named file that does not exist: exit 1, named", f"rc {rc}\n{err}")
        rc, out, err = run([NOTEBOOKD, "--check-config", "--config", base], timeout=tmo(10))
        t.ok(rc == 1 and base in err, "a directory: exit 1, named", f"rc {rc}\n{err}")
        rc, out, err = run([NOTEBOOKD, "--check-config", "--bogus"], timeout=tmo(10))
        t.is_(rc, 2, "--check-config with a bad option: exit 2 (usage)")

        if os.getuid() != 0:
                env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(base, "xdg"))
                p = subprocess.run([NOTEBOOKD, "--check-config"], capture_output=True, text=True, env=env,
                                   timeout=tmo(10))
                t.ok(p.returncode == 0 and os.path.join(base, "xdg", "notebookd", "notebookd.conf") in p.stdout,
                     "no --config and no default file: exit 0, names the default path", p.stdout + p.stderr)
        elif not os.path.exists("/etc/notebookd/notebookd.conf"):
                rc, out, err = run([NOTEBOOKD, "--check-config"], timeout=tmo(10))
                t.ok(rc == 0 and "/etc/notebookd/notebookd.conf" in out and "defaults" in out,
                     "no --config and no default file: exit 0, names the default path", out + err)
        if os.getuid() == 0 and shutil.which("setpriv"):
                # What the unit relies on: a daemon that is not root, given XDG_CONFIG_HOME=/etc, reads
                # /etc/notebookd/notebookd.conf. Here with a directory of the test's.
                xdg = os.path.join(base, "etc")
                os.makedirs(os.path.join(xdg, "notebookd"), mode=0o755)
                conf_path = os.path.join(xdg, "notebookd", "notebookd.conf")
                with open(conf_path, "w") as f:
                        f.write("[daemon]\nlog_level = sometimes\n")
                os.chmod(conf_path, 0o644)
                os.chmod(xdg, 0o755)
                env = dict(os.environ, XDG_CONFIG_HOME=xdg)
                as_nobody = [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"]
                daemon_bin = NOTEBOOKD
                if subprocess.run(as_nobody + ["test", "-x", daemon_bin]).returncode != 0:
                        # The build tree may sit under a private directory: run a copy from ours.
                        daemon_bin = os.path.join(base, "notebookd")
                        shutil.copy2(NOTEBOOKD, daemon_bin)
                        os.chmod(daemon_bin, 0o755)
                p = subprocess.run(as_nobody + [daemon_bin, "--check-config"], capture_output=True, text=True,
                                   env=env, timeout=tmo(10))
                t.ok(p.returncode == 1 and f"{conf_path}:2" in p.stderr,
                     "as a user that is not root, with XDG_CONFIG_HOME=/etc-like: that file is the one read",
                     f"rc {p.returncode}\n{p.stdout}{p.stderr}")


@t.case("sd_notify: READY=1 once serving, STATUS=, WATCHDOG=1 at the period, RELOADING=1, STOPPING=1")
def _():
        d, n = notify_daemon(t, env={"WATCHDOG_USEC": str(WATCHDOG_USEC)})
        d.spawn()
        i = n.wait("READY=1", tmo(15))
        t.ok(i is not None, "READY=1 received", d.stderr_tail())
        if i is None:
                return
        # Ready means serving: the first attempt to connect succeeds, the store is open.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
                s.connect(d.socket)
                connected = True
        except OSError as e:
                connected = e
        s.close()
        t.is_(connected, True, "at READY=1 the socket already accepts")
        t.ok(os.path.exists(d.db), "at READY=1 the database exists")
        status = n.fields(i).get("STATUS", "")
        t.ok(status.startswith("Serving") and "local-only" in status, "READY=1 comes with STATUS=Serving..., local-only",
             status)
        t.ok(n.wait("STOPPING=1", 0) is None and n.wait("RELOADING=1", 0) is None, "nothing else before")

        # The event loop keeps the watchdog: sd-event pings from the loop, at most every quarter of
        # the period and, when idle, after half to three quarters of it.
        time.sleep(2.5)
        pings = n.times("WATCHDOG=1", since=i)
        gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
        period = WATCHDOG_USEC / 1e6
        t.ok(len(pings) >= 4, f"WATCHDOG=1 keeps coming ({len(pings)} in 2.5 s)", n.dump())
        if gaps:
                median = gaps[len(gaps) // 2]
                t.diag(f"watchdog gaps: min {gaps[0]:.3f} s, median {median:.3f} s, max {gaps[-1]:.3f} s")
                t.ok(period / 4 - 0.03 <= median <= period * 3 / 4 + 0.05,
                     f"WATCHDOG=1 at a quarter to three quarters of the {period} s period (median {median:.3f} s)")
                t.ok(gaps[-1] < period * 1.5, f"no gap near a missed deadline (longest {gaps[-1]:.3f} s)")

        # STATUS= follows the number of clients (refreshed every 2 s, sent when it changed).
        mark = n.mark()
        c1, c2 = d.client(), d.client()
        j = n.wait("STATUS=Serving, 2 clients", tmo(6), since=mark)
        t.ok(j is not None, "STATUS= updated: two clients", n.dump())
        c1.close()
        c2.close()

        # The watchdog catches a hung loop: a stopped process sends nothing.
        os.kill(d.proc.pid, signal.SIGSTOP)
        time.sleep(0.1)
        mark = n.mark()
        time.sleep(period * 2)
        t.is_(n.times("WATCHDOG=1", since=mark), [], "a stopped loop sends no WATCHDOG=1")
        os.kill(d.proc.pid, signal.SIGCONT)
        t.ok(n.wait("WATCHDOG=1", tmo(2), since=mark) is not None, "pings again once the loop runs")

        mark = n.mark()
        d.proc.send_signal(signal.SIGHUP)
        r = n.wait("RELOADING=1", tmo(5), since=mark)
        t.ok(r is not None and "MONOTONIC_USEC" in n.fields(r), "SIGHUP: RELOADING=1 with MONOTONIC_USEC")
        t.ok(r is not None and n.wait("READY=1", tmo(5), since=r + 1) is not None, "then READY=1")

        mark = n.mark()
        t.is_(d.stop(signal.SIGTERM), 0, "SIGTERM: exit 0")
        k = n.wait("STOPPING=1", 0, since=mark)
        t.ok(k is not None, "STOPPING=1 received", n.dump())
        t.ok(k is not None and n.fields(k).get("STATUS", "").startswith("Stopping"), "with STATUS=Stopping...")
        n.close()


@t.case("sd_notify: WATCHDOG_PID of another process means no watchdog")
def _():
        d, n = notify_daemon(t, env={"WATCHDOG_USEC": str(WATCHDOG_USEC), "WATCHDOG_PID": "1"})
        d.spawn()
        i = n.wait("READY=1", tmo(15))
        t.ok(i is not None, "READY=1 received", d.stderr_tail())
        time.sleep(1.2)
        t.is_(n.times("WATCHDOG=1"), [], "no WATCHDOG=1 when the watchdog is for another pid")
        t.is_(d.stop(), 0, "exit 0")
        n.close()


@t.case("socket activation: started by the first connection, serves the inherited socket")
def _():
        sa = shutil.which("systemd-socket-activate")
        if not sa:
                t.skip("socket activation", "systemd-socket-activate not installed")
                return
        base = make_tempdir()
        n = Notify(base)
        t.on_failure.append(lambda: "notifications (socket activation):\n" + n.dump())
        a = Daemon(None, base=base)
        # systemd-socket-activate passes on only the variables named with -E.
        argv = [sa, "-l", a.socket, "-E", f"NOTIFY_SOCKET={n.path}", "-E", f"WATCHDOG_USEC={WATCHDOG_USEC}"]
        for v in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
                if v in os.environ:
                        argv += ["-E", v]
        argv += [NOTEBOOKD, "--state-dir", a.state_dir, "--socket", os.path.join(base, "unused.sock")]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(a.stderr_path, "wb"))
        try:
                t.ok(wait_for(lambda: os.path.exists(a.socket), tmo(10)), "the socket is bound before any daemon runs")
                time.sleep(0.3)
                t.ok(n.wait("READY=1", 0) is None and not os.path.exists(a.db),
                     "nothing started before the first connection")
                s = connect_retry(a.socket, tmo(10))
                t.ok(s is not None, "first connection accepted")
                if s is None:
                        return
                c = Client(a.socket, connect=False)
                c.sock = s
                c.timeout = tmo(10)
                s.settimeout(c.timeout)
                st = c.rpc("daemon.status")
                t.is_(st.get("pid"), p.pid, "the first connection is served by notebookd (exec'd in place)")
                c.rpc("notebook.create", {"user_id": U, "notebook_id": "activated"})
                c.close()
                t.ok(n.wait("READY=1", tmo(5)) is not None, "READY=1 from the activated daemon")
                t.ok(n.wait("WATCHDOG=1", tmo(5)) is not None, "WATCHDOG=1 from the activated daemon")
                t.ok(not os.path.exists(os.path.join(base, "unused.sock")), "--socket ignored under activation")
                t.like(a.stderr_text(), f"ready: socket {a.socket},", "the log names the socket it serves")
                with Client(a.socket, timeout=tmo(10)) as c2:
                        nb = c2.rpc("notebook.get", {"user_id": U, "notebook_id": "activated"})["notebook"]
                        t.is_(nb["id"], "activated", "a second connection to the inherited socket is served")
                mark = n.mark()
                p.send_signal(signal.SIGTERM)
                try:
                        rc = p.wait(timeout=tmo(15))
                except subprocess.TimeoutExpired:
                        rc = "no exit"
                t.is_(rc, 0, "SIGTERM: exit 0")
                t.ok(n.wait("STOPPING=1", tmo(1), since=mark) is not None, "STOPPING=1")
                t.ok(os.path.exists(a.socket), "the inherited socket file is left to its owner")
        finally:
                if p.poll() is None:
                        p.kill()
                        p.wait(timeout=5)
                n.close()


@t.case("SIGTERM in a stream of writes from several clients: every acknowledged write kept")
def _():
        d, n = notify_daemon(t)
        d.start()
        writers = 4
        for w in range(writers):
                d.rpc("notebook.create", {"user_id": U, "notebook_id": f"term-{w}"})
        acked = [[] for _ in range(writers)]
        stop = threading.Event()

        def writer(w):
                def on_reply(j, rep):
                        if "result" in rep and rep.get("id") == j:
                                acked[w].append(f"c{j}")

                try:
                        write_stream(d.client(timeout=tmo(10)),
                                     lambda i: req("cell.create", {"user_id": U, "notebook_id": f"term-{w}",
                                                                   "cell_id": f"c{i}", "code": f"x = {i}"}, i),
                                     stop, on_reply)
                except (OSError, TimeoutError, ValueError):
                        return

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
        for th in threads:
                th.start()
        t.ok(wait_for(lambda: all(len(a) >= 50 for a in acked), tmo(30)), "every client has writes acknowledged",
             [len(a) for a in acked])
        mark = n.mark()
        rc = d.stop(signal.SIGTERM)
        stop.set()
        for th in threads:
                th.join(timeout=tmo(15))
        t.is_(rc, 0, "SIGTERM during the writes: exit 0")
        t.ok(n.wait("STOPPING=1", 0, since=mark) is not None, "STOPPING=1 sent")
        t.diag(f"acknowledged per client: {[len(a) for a in acked]}")
        d.start()
        for w in range(writers):
                nb = d.rpc("notebook.get", {"user_id": U, "notebook_id": f"term-{w}"})["notebook"]
                ids = {c["id"] for c in nb["cells"]}
                missing = [x for x in acked[w] if x not in ids]
                t.ok(not missing, f"client {w}: every acknowledged write is there after the restart", short(missing))
                t.is_(nb["revision"], 1 + len(nb["cells"]), f"client {w}: revision matches the stored cells")
        t.is_(d.stop(), 0, "stop")
        n.close()


@t.case("SIGHUP: log level and [users] applied, restart-only settings reported, a broken file changes nothing")
def _():
        d, n = notify_daemon(t, config="[daemon]\nlog_level = info\n")
        d.start()
        mode0 = stat.S_IMODE(os.stat(d.socket).st_mode)
        t.is_(f"{mode0:04o}", "0600", "no bindings: socket 0600")
        with d.client() as c:
                c.rpc("daemon.status")
        time.sleep(0.2)
        t.ok("Connection from" not in d.stderr_text(), "at info, connections are not logged")

        def reload(text):
                d.set_config(text)
                mark = n.mark()
                d.proc.send_signal(signal.SIGHUP)
                r = n.wait("RELOADING=1", tmo(10), since=mark)
                return r is not None and n.wait("READY=1", tmo(10), since=r + 1) is not None

        guest = 65534
        t.ok(reload(f"[daemon]\nlog_level = debug\nmax_line_bytes = 65536\n[users]\n{guest} = guest\n"),
             "reload: RELOADING=1, then READY=1")
        t.ok(stderr_has(d, "Reloaded", tmo(5)), "the reload is logged", d.stderr_tail())
        with d.client() as c:
                c.rpc("daemon.status")
        t.ok(stderr_has(d, "Connection from", tmo(5)), "log_level = debug applied: connections are logged",
             d.stderr_tail())
        t.ok(stderr_has(d, "max_line_bytes changed; it needs a restart", tmo(5)),
             "a restart-only setting is reported as needing a restart", d.stderr_tail())
        mode1 = stat.S_IMODE(os.stat(d.socket).st_mode)
        t.is_(f"{mode1:04o}", "0666", "a binding appeared: socket 0666, for other uids to connect")

        setpriv = shutil.which("setpriv")
        probe = ("import json, socket, sys\n"
                 "s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
                 "s.sendall(json.dumps({'jsonrpc': '2.0', 'id': 1, 'method': 'notebook.list',"
                 " 'params': {'user_id': 'guest'}}).encode() + b'\\n')\n"
                 "buf = b''\n"
                 "while b'\\n' not in buf:\n"
                 "    chunk = s.recv(65536)\n"
                 "    if not chunk: break\n"
                 "    buf += chunk\n"
                 "print(buf.decode().strip())\n")

        def as_guest():
                rc, out, err = run([setpriv, f"--reuid={guest}", f"--regid={guest}", "--clear-groups",
                                    sys.executable, "-c", probe, d.socket], timeout=tmo(20))
                try:
                        return json.loads(out)
                except ValueError:
                        return {"rc": rc, "out": out, "err": err}

        can_switch = os.getuid() == 0 and setpriv
        if can_switch:
                rep = as_guest()
                t.ok("result" in rep, "the new [users] binding applies: uid 65534 may act for guest", short(rep))
        else:
                t.skip("the new [users] binding applies", "needs root and setpriv")

        # A broken file: every problem logged with its line, nothing changes.
        before = d.stderr_text(1 << 24)
        t.ok(reload("[daemon]\nlog_level = loud\n[users]\nno-such-user-xyz = x\n"),
             "broken file: still RELOADING=1, then READY=1")
        t.ok(stderr_has(d, "keeping the settings in use", tmo(5)), "broken file: says the old settings are kept",
             d.stderr_tail())
        after = d.stderr_text(1 << 24)[len(before):]
        t.ok(f"{d.config_path}:2:" in after and f"{d.config_path}:4:" in after,
             "broken file: every problem logged with file:line", after)
        t.ok(d.alive(), "broken file: the daemon runs on")
        n_before = d.stderr_text().count("Connection from")
        with d.client() as c:
                c.rpc("daemon.status")
        t.ok(wait_for(lambda: d.stderr_text().count("Connection from") > n_before, tmo(5)),
             "broken file: the log level stays debug")
        t.is_(f"{stat.S_IMODE(os.stat(d.socket).st_mode):04o}", "0666", "broken file: the socket mode stays")
        if can_switch:
                rep = as_guest()
                t.ok("result" in rep, "broken file: the binding stays", short(rep))

        # Back to no bindings and info: both applied.
        t.ok(reload("[daemon]\nlog_level = info\n"), "reload back")
        if can_switch:
                rep = as_guest()
                t.ok("result" not in rep, "binding removed: uid 65534 refused", short(rep))
        t.is_(f"{stat.S_IMODE(os.stat(d.socket).st_mode):04o}", "0600", "no bindings again: socket 0600")
        st = d.rpc("daemon.status")
        t.is_(st.get("durability"), "full", "status unchanged by the reloads")
        check_serving(t, d)
        t.is_(d.stop(), 0, "stop")
        n.close()


def secrets_case(name, key_id, secret, token, env, files=()):
        """Runs the daemon at debug level with credentials from one source, syncing to a closed
        loopback port (so it signs, fails, retries and logs), reloads it, stops it; then searches
        every line it wrote and every notification for the secrets."""
        port = free_port()
        base = make_tempdir()
        home = os.path.join(base, "home")
        os.makedirs(home)
        for path, text in files:
                path = path.replace("@BASE@", base)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                        f.write(text)
                os.chmod(path, 0o600)
        e = {v: None for v in AWS_VARS}
        e.update({"HOME": home, "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
                  "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{port}",
                  "AWS_CONFIG_FILE": os.path.join(home, "no-config"),
                  "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "no-credentials")})
        e.update({k: v.replace("@BASE@", base) for k, v in env.items()})
        n = Notify(base)
        e["NOTIFY_SOCKET"] = n.path
        d = Daemon(t, base=base, env=e, log_level="debug", config="[remote]\ndebounce_ms = 0\nmax_delay_ms = 0\n")
        d.start()
        d.rpc("notebook.create", {"user_id": U, "notebook_id": f"secret-{name}",
                                  "cells": [{"id": "c1", "code": "x = 1"}]})
        d.rpc("cell.create", {"user_id": U, "notebook_id": f"secret-{name}", "cell_id": "c2"})
        t.ok(stderr_has(d, f"Using AWS credentials from the {name}", tmo(10)) and stderr_has(d, f"key id {key_id}", 0),
             f"{name}: the credentials were loaded from there", d.stderr_tail())
        failed = wait_for(lambda: (d.rpc("daemon.status").get("sync") or {}).get("last_error"), tmo(15), 0.2)
        st = d.rpc("daemon.status")
        t.ok(failed, f"{name}: the push was signed, sent and failed (closed port)", short(st.get("sync")))
        ready = n.wait("READY=1", 0)
        t.ok(ready is not None and "local-only" not in n.fields(ready).get("STATUS", "local-only"),
             f"{name}: STATUS= tells the sync state, not local-only", n.dump())
        t.ok(n.wait("STATUS=Serving", tmo(6)) is not None and
             wait_for(lambda: any("last error" in m for _, m in n.snapshot()), tmo(6)),
             f"{name}: STATUS= follows the sync state (the last error shows)", n.dump())
        d.proc.send_signal(signal.SIGHUP)
        stderr_has(d, "Reloaded", tmo(5))
        t.is_(d.stop(), 0, f"{name}: stop")
        n.close()
        everything = d.stderr_text(1 << 24) + "\n" + n.dump() + "\n" + json.dumps(st)
        for label, s in (("secret access key", secret), ("session token", token)):
                if not s:
                        continue
                leaked = [ln for ln in everything.splitlines() if s in ln or s[:12] in ln]
                t.ok(not leaked, f"{name}: the {label} is in no log line, notification or status", short(leaked))
        t.diag(f"{name}: {len(everything.splitlines())} lines searched")


@t.case("no secret in any log: credentials from the environment, a credentials file, systemd credentials")
def _():
        secret = "nbSECRETenv0123456789abcdefghijklmnopqrstu"
        token = "nbTOKENenv" + "Zx9" * 40
        secrets_case("environment", "AKIDNBTESTENV", secret, token,
                     {"AWS_ACCESS_KEY_ID": "AKIDNBTESTENV", "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token})
        secret = "nbSECRETfile0123456789abcdefghijklmnopqrst"
        token = "nbTOKENfile" + "Qw8" * 40
        secrets_case("shared credentials file", "AKIDNBTESTFILE", secret, token, {"AWS_SHARED_CREDENTIALS_FILE": "@BASE@/aws/credentials",
                                                         "AWS_PROFILE": "nbtest"},
                     files=[("@BASE@/aws/credentials",
                             f"[nbtest]\naws_access_key_id = AKIDNBTESTFILE\naws_secret_access_key = {secret}\n"
                             f"aws_session_token = {token}\n")])
        secret = "nbSECRETsystemd0123456789abcdefghijklmnop"
        secrets_case("systemd credentials", "AKIDNBTESTSYSTEMD", secret, None, {"CREDENTIALS_DIRECTORY": "@BASE@/creds"},
                     files=[("@BASE@/creds/aws_access_key_id", "AKIDNBTESTSYSTEMD\n"),
                            ("@BASE@/creds/aws_secret_access_key", secret + "\n")])


t.done()
