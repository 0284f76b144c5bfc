# SPDX-License-Identifier: MIT
"""Shared pieces of the integration tests (standard library only, Python 3.11).

  TAP      the test protocol: ok/is_/skip, cases that catch exceptions, plan at the end, exit
           status nonzero if anything failed
  Daemon   notebookd on a fresh temporary state directory and socket
  Client   a raw protocol connection: bytes in, reply lines out, rpc() helpers
  ctl()    runs notebookctl and returns (rc, stdout, stderr)

Binaries come from the environment that Makefile.am's AM_TESTS_ENVIRONMENT sets (NOTEBOOKD,
NOTEBOOKCTL, NBSTRESS); outside `make check` they default to the current directory's build.
Every wait is bounded.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BUILDDIR = os.environ.get("NB_BUILDDIR", os.getcwd())
NOTEBOOKD = os.environ.get("NOTEBOOKD", os.path.join(BUILDDIR, "notebookd"))
NOTEBOOKCTL = os.environ.get("NOTEBOOKCTL", os.path.join(BUILDDIR, "notebookctl"))
NBSTRESS = os.environ.get("NBSTRESS", os.path.join(BUILDDIR, "tests", "tools", "nbstress"))
SRCDIR = os.environ.get("NB_SRCDIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# Multiplies every timeout (for slow machines, sanitizers, valgrind).
TIMEOUT_SCALE = float(os.environ.get("NB_TIMEOUT_SCALE", "1"))


def tmo(seconds):
        return seconds * TIMEOUT_SCALE


# --------------------------------------------------------------------------------------------
# TAP

class TAP:
        def __init__(self):
                self.n = 0
                self.failed = 0
                self.case_name = None
                self.on_failure = []  # callables returning diagnostic text (daemon logs)
                sys.stdout.reconfigure(line_buffering=True)
                # An exception outside any case (set-up code) or a hang still ends in valid TAP: a
                # failed test, the plan, a nonzero exit status.
                sys.excepthook = self._unhandled
                signal.signal(signal.SIGALRM, self._timed_out)
                signal.alarm(int(tmo(float(os.environ.get("NB_TEST_TIMEOUT", "300")))))
                raise_fd_limit()

        def _unhandled(self, typ, value, tb):
                self.ok(False, "unhandled exception outside a test case",
                        "".join(traceback.format_exception(typ, value, tb)))
                self.dump_failure_diags()
                self.done()

        def _timed_out(self, signum, frame):
                self.ok(False, "the test file took longer than NB_TEST_TIMEOUT",
                        "".join(traceback.format_stack(frame)))
                self.dump_failure_diags()
                self.done()

        def diag(self, text):
                for line in str(text).splitlines() or [""]:
                        print("# " + line)

        def ok(self, cond, desc, diag=None):
                self.n += 1
                desc = desc.replace("#", "\\#").replace("\n", " ")
                if cond:
                        print(f"ok {self.n} - {desc}")
                        return True
                self.failed += 1
                print(f"not ok {self.n} - {desc}")
                if self.case_name:
                        self.diag(f"in case: {self.case_name}")
                if diag is not None:
                        self.diag(diag if isinstance(diag, str) else repr(diag))
                return False

        def is_(self, got, expected, desc):
                return self.ok(got == expected, desc, f"     got: {short(got)}\nexpected: {short(expected)}")

        def isnt(self, got, unexpected, desc):
                return self.ok(got != unexpected, desc, f"got: {short(got)} (must differ)")

        def like(self, text, needle, desc):
                return self.ok(needle in (text or ""), desc, f"missing {needle!r} in:\n{short(text, 2000)}")

        def error_is(self, reply, code, desc, param=None):
                """reply is a whole JSON-RPC reply object; checks it is an error with this code
                (and, if given, data.param)."""
                err = reply.get("error") if isinstance(reply, dict) else None
                good = isinstance(err, dict) and err.get("code") == code and "result" not in reply
                if good and param is not None:
                        # The parameter at fault, or a part of it ("outputs[2].mime_type").
                        got = err.get("data").get("param") if isinstance(err.get("data"), dict) else None
                        good = isinstance(got, str) and (got == param or got.startswith(param + ".")
                                                         or got.startswith(param + "["))
                want = f"error {code}" + (f" param={param}" if param else "")
                return self.ok(good, desc, f"expected {want}, got: {short(reply)}")

        def skip(self, desc, reason):
                self.n += 1
                print(f"ok {self.n} - {desc} # SKIP {reason}")

        def dump_failure_diags(self):
                for f in self.on_failure:
                        try:
                                self.diag(f())
                        except Exception as e:  # diagnostics must never hide the failure itself
                                self.diag(f"(diagnostics failed: {e})")

        def case(self, name):
                """Decorator: runs the function at once as a named group of assertions. An
                exception inside counts as one failed test; the file goes on."""
                def deco(fn):
                        self.run(name, fn)
                        return fn
                return deco

        def run(self, name, fn, *args):
                self.case_name = name
                failed_before = self.failed
                try:
                        fn(*args)
                except Exception:
                        self.ok(False, f"{name}: raised an exception", traceback.format_exc())
                finally:
                        self.case_name = None
                if self.failed != failed_before:
                        self.dump_failure_diags()

        def done(self):
                print(f"1..{self.n}")
                if self.failed:
                        self.diag(f"{self.failed} of {self.n} tests failed")
                cleanup_all()
                sys.stdout.flush()
                os._exit(1 if self.failed else 0)

        def skip_all(self, reason):
                print(f"1..0 # SKIP {reason}")
                cleanup_all()
                sys.stdout.flush()
                os._exit(0)


def raise_fd_limit():
        """Soft RLIMIT_NOFILE up to the hard one: tests open more than 1024 connections, and the
        daemons started from here inherit the limit."""
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
                try:
                        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
                except (ValueError, OSError):
                        pass


def fd_limit():
        import resource
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def short(v, limit=600):
        s = v if isinstance(v, str) else repr(v)
        if len(s) > limit:
                return s[:limit] + f"... ({len(s)} chars)"
        return s


# --------------------------------------------------------------------------------------------
# Temporary directories and processes, cleaned up at exit

_tempdirs = []
_daemons = []


def make_tempdir(prefix="nbit-"):
        # Short paths: a Unix socket path must fit in sun_path (108 bytes). 0755 so that a test
        # running a peer as another uid can reach the socket inside.
        base = os.environ.get("NB_TMPDIR", "/tmp")
        d = tempfile.mkdtemp(prefix=prefix, dir=base)
        os.chmod(d, 0o755)
        _tempdirs.append(d)
        return d


def cleanup_all():
        """Kills leftover daemons and removes the temporary directories (kept with NB_KEEP=1)."""
        for d in list(_daemons):
                if d.proc and d.proc.poll() is None:
                        try:
                                d.proc.kill()
                                d.proc.wait(timeout=5)
                        except Exception:
                                pass
        if os.environ.get("NB_KEEP"):
                if _tempdirs:
                        print(f"# kept temporary directories: {' '.join(_tempdirs)}")
                return
        for d in _tempdirs:
                shutil.rmtree(d, ignore_errors=True)
        _tempdirs.clear()


atexit.register(cleanup_all)


# --------------------------------------------------------------------------------------------
# Raw protocol client

class RpcError(Exception):
        def __init__(self, error, reply=None):
                self.error = error or {}
                self.code = self.error.get("code")
                self.message = self.error.get("message")
                self.data = self.error.get("data")
                self.reply = reply
                super().__init__(f"RPC error {self.code}: {self.message} (data={self.data})")


class Client:
        def __init__(self, path, timeout=None, connect=True):
                self.path = path
                self.timeout = tmo(10) if timeout is None else timeout
                self.sock = None
                self.buf = b""
                self.next_id = 1
                if connect:
                        self.connect()

        def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(self.timeout)
                self.sock.connect(self.path)
                self.buf = b""
                return self

        def close(self):
                if self.sock:
                        self.sock.close()
                        self.sock = None

        def __enter__(self):
                return self

        def __exit__(self, *a):
                self.close()

        def send(self, data):
                if isinstance(data, str):
                        data = data.encode()
                self.sock.sendall(data)

        def send_obj(self, obj):
                self.send(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

        def readline(self, timeout=None):
                """One reply line (bytes, without the newline). None at EOF (a partial line at
                EOF is returned as is). Raises TimeoutError."""
                deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
                while b"\n" not in self.buf:
                        left = deadline - time.monotonic()
                        if left <= 0:
                                raise TimeoutError(f"no reply line within the timeout; have {short(self.buf)}")
                        self.sock.settimeout(left)
                        try:
                                chunk = self.sock.recv(1 << 20)
                        except socket.timeout:
                                raise TimeoutError(f"no reply line within the timeout; have {short(self.buf)}")
                        except ConnectionResetError:
                                chunk = b""
                        finally:
                                self.sock.settimeout(self.timeout)
                        if not chunk:
                                rest, self.buf = self.buf, b""
                                return rest or None
                        self.buf += chunk
                line, self.buf = self.buf.split(b"\n", 1)
                return line

        def read_reply(self, timeout=None):
                line = self.readline(timeout)
                if line is None:
                        raise ConnectionError("connection closed by the daemon, no reply")
                return json.loads(line)

        def expect_eof(self, timeout=None):
                """True if the daemon closes the connection (with nothing more to read)."""
                try:
                        line = self.readline(timeout)
                except TimeoutError:
                        return False
                return line is None

        def request(self, method, params=None, id=None, jsonrpc="2.0"):
                if id is None:
                        id = self.next_id
                        self.next_id += 1
                req = {"jsonrpc": jsonrpc, "id": id, "method": method}
                if params is not None:
                        req["params"] = params
                return req

        def call(self, method, params=None, id=None, timeout=None):
                """Sends one request; returns the whole reply object (result or error)."""
                req = self.request(method, params, id)
                self.send_obj(req)
                reply = self.read_reply(timeout)
                if reply.get("id") != req["id"]:
                        raise AssertionError(f"reply id {reply.get('id')!r} for request id {req['id']!r}: {short(reply)}")
                return reply

        def rpc(self, method, params=None, timeout=None):
                """Sends one request; returns its result or raises RpcError."""
                reply = self.call(method, params, timeout=timeout)
                if "error" in reply:
                        raise RpcError(reply["error"], reply)
                if "result" not in reply:
                        raise AssertionError(f"reply without result or error: {short(reply)}")
                return reply["result"]

        def pipeline(self, requests, timeout=None):
                """Sends many requests in as few writes as possible while reading the replies
                (a sender thread, so neither side can block the other). requests are objects or
                raw lines (bytes); returns the replies in arrival order, as many as there are
                requests with an id."""
                lines = []
                expected = 0
                for r in requests:
                        if isinstance(r, (bytes, bytearray)):
                                lines.append(bytes(r) if r.endswith(b"\n") else bytes(r) + b"\n")
                                expected += 1
                        else:
                                lines.append(json.dumps(r, separators=(",", ":")).encode() + b"\n")
                                if "id" in r:
                                        expected += 1
                blob = b"".join(lines)
                err = []

                def sender():
                        try:
                                self.sock.sendall(blob)
                        except Exception as e:
                                err.append(e)

                th = threading.Thread(target=sender, daemon=True)
                th.start()
                replies = []
                deadline = time.monotonic() + (tmo(60) if timeout is None else timeout)
                while len(replies) < expected:
                        left = deadline - time.monotonic()
                        if left <= 0:
                                raise TimeoutError(f"pipeline: {len(replies)} of {expected} replies")
                        replies.append(self.read_reply(timeout=left))
                th.join(timeout=tmo(10))
                if err:
                        raise err[0]
                return replies


def connect_retry(path, timeout):
        """Connects as soon as the socket accepts; None after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                        s.connect(path)
                        return s
                except OSError:
                        s.close()
                        time.sleep(0.02)
        return None


# --------------------------------------------------------------------------------------------
# The daemon

class Daemon:
        def __init__(self, tap=None, config=None, durability=None, log_level=None, extra_args=(),
                     state_dir=None, socket_path=None, base=None, argv_prefix=(), env=None):
                """config: text of a notebookd.conf written next to the state dir (or None).
                env: variables to set in the daemon's environment (a value of None removes one)."""
                self.tap = tap
                self.base = base or make_tempdir()
                self.state_dir = state_dir or os.path.join(self.base, "state")
                self.socket = socket_path or os.path.join(self.base, "nb.sock")
                self.db = os.path.join(self.state_dir, "notebookd.db")
                self.config_path = None
                if config is not None:
                        self.set_config(config)
                self.durability = durability
                self.log_level = log_level or os.environ.get("NB_LOG_LEVEL")
                self.extra_args = list(extra_args)
                self.argv_prefix = list(argv_prefix)  # e.g. prlimit: must exec the daemon (same pid)
                self.env = dict(env or {})
                self.proc = None
                self.stderr_path = os.path.join(self.base, "notebookd.stderr")
                self.starts = 0
                _daemons.append(self)
                if tap is not None:
                        tap.on_failure.append(self.diagnostics)

        def set_config(self, text):
                self.config_path = os.path.join(self.base, "notebookd.conf")
                with open(self.config_path, "w") as f:
                        f.write(text)
                os.chmod(self.config_path, 0o644)

        def argv(self):
                a = self.argv_prefix + [NOTEBOOKD, "--state-dir", self.state_dir, "--socket", self.socket]
                if self.config_path:
                        a += ["--config", self.config_path]
                if self.durability:
                        a += ["--durability", self.durability]
                if self.log_level:
                        a += ["--log-level", self.log_level]
                return a + self.extra_args

        def spawn(self, argv=None):
                """Starts notebookd without waiting. Returns the Popen."""
                self.starts += 1
                errf = open(self.stderr_path, "ab")
                errf.write(f"--- start {self.starts}: {' '.join(argv or self.argv())}\n".encode())
                errf.flush()
                self.proc = subprocess.Popen(argv or self.argv(), stdin=subprocess.DEVNULL,
                                             stdout=errf, stderr=errf, close_fds=True, env=self.environ())
                errf.close()
                return self.proc

        def environ(self):
                """The daemon's environment: ours with self.env applied."""
                e = dict(os.environ)
                for k, v in self.env.items():
                        if v is None:
                                e.pop(k, None)
                        else:
                                e[k] = v
                return e

        def start(self, timeout=None):
                """Starts notebookd and waits until the socket accepts a connection (bounded)."""
                if self.proc and self.proc.poll() is None:
                        raise RuntimeError("daemon already running")
                self.spawn()
                deadline = time.monotonic() + (tmo(10) if timeout is None else timeout)
                while time.monotonic() < deadline:
                        if self.proc.poll() is not None:
                                raise RuntimeError(f"notebookd exited with {self.proc.returncode} at start-up:\n"
                                                   + self.stderr_tail())
                        s = connect_retry(self.socket, 0.05)
                        if s:
                                s.close()
                                return self
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise RuntimeError("notebookd did not accept connections within the timeout:\n" + self.stderr_tail())

        def alive(self):
                return self.proc is not None and self.proc.poll() is None

        def stop(self, sig=signal.SIGTERM, timeout=None):
                """Sends sig and waits; returns the exit status (negative: killed by a signal)."""
                if not self.proc:
                        return None
                if self.proc.poll() is None:
                        self.proc.send_signal(sig)
                try:
                        return self.proc.wait(timeout=tmo(15) if timeout is None else timeout)
                except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(timeout=5)
                        return "timeout"

        def kill(self):
                """kill -9; returns the status."""
                return self.stop(signal.SIGKILL)

        def restart(self):
                if self.alive():
                        self.stop()
                return self.start()

        def client(self, timeout=None):
                return Client(self.socket, timeout=timeout)

        def cpu_seconds(self):
                """User + system CPU time the daemon has used so far."""
                with open(f"/proc/{self.proc.pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        def rpc(self, method, params=None):
                with self.client() as c:
                        return c.rpc(method, params)

        def call(self, method, params=None):
                with self.client() as c:
                        return c.call(method, params)

        def ctl(self, *args, **kw):
                return ctl(*args, socket_path=self.socket, **kw)

        def stderr_text(self, limit=64 * 1024):
                """The end of the daemon's stderr (a runaway daemon can write gigabytes)."""
                try:
                        with open(self.stderr_path, "rb") as f:
                                f.seek(0, os.SEEK_END)
                                size = f.tell()
                                f.seek(max(0, size - limit))
                                text = f.read().decode(errors="replace")
                                if size > limit:
                                        text = f"[... {size - limit} bytes before ...]\n" + text.split("\n", 1)[-1]
                                return text
                except OSError:
                        return ""

        def stderr_tail(self, lines=40):
                t = self.stderr_text().splitlines()
                return "\n".join(t[-lines:])

        def diagnostics(self):
                state = "running" if self.alive() else f"exited ({self.proc.returncode if self.proc else 'never started'})"
                return f"notebookd {self.socket}: {state}; stderr tail:\n{self.stderr_tail()}"

        def serving(self, timeout=None):
                """(bool, detail): the process is alive and a new connection gets a correct
                daemon.status reply."""
                if not self.alive():
                        return False, f"daemon not running (status {self.proc.returncode if self.proc else None})"
                try:
                        with self.client(timeout=tmo(10) if timeout is None else timeout) as c:
                                r = c.rpc("daemon.status")
                                if r.get("pid") != self.proc.pid:
                                        return False, f"daemon.status pid {r.get('pid')} != {self.proc.pid}"
                                return True, ""
                except Exception as e:
                        return False, f"{type(e).__name__}: {e}"

        def sqlite(self, sql, timeout=None):
                """Runs the sqlite3 CLI on the database; returns (rc, stdout, stderr)."""
                p = subprocess.run(["sqlite3", self.db, sql], capture_output=True, text=True,
                                   timeout=tmo(30) if timeout is None else timeout)
                return p.returncode, p.stdout, p.stderr


def check_serving(t, d, desc="daemon still serving"):
        good, detail = d.serving()
        return t.ok(good, desc, detail)


# --------------------------------------------------------------------------------------------
# notebookctl and other processes

def ctl(*args, socket_path=None, user=None, json_out=False, input=None, timeout=None, env=None,
        preexec=None, prefix=()):
        """Runs notebookctl [--socket S] [--user U] [--json] args...; returns (rc, out, err).
        prefix: command words put in front (setpriv ...)."""
        argv = list(prefix) + [NOTEBOOKCTL]
        if socket_path:
                argv += ["--socket", socket_path]
        if user:
                argv += ["--user", user]
        if json_out:
                argv += ["--json"]
        argv += [str(a) for a in args]
        e = dict(os.environ)
        if env:
                e.update(env)
        try:
                p = subprocess.run(argv, input=input, capture_output=True, text=True, env=e,
                                   timeout=tmo(20) if timeout is None else timeout)
        except subprocess.TimeoutExpired as ex:
                return "timeout", ex.stdout or "", ex.stderr or ""
        return p.returncode, p.stdout, p.stderr


def run(argv, timeout=None, input=None):
        try:
                p = subprocess.run(argv, input=input, capture_output=True, text=True,
                                   timeout=tmo(30) if timeout is None else timeout)
        except subprocess.TimeoutExpired as ex:
                return "timeout", ex.stdout or "", ex.stderr or ""
        return p.returncode, p.stdout, p.stderr


def parse_json(text):
        try:
                return json.loads(text)
        except Exception:
                return None


def write_stream(client, make_request, stop, on_reply, window=8):
        """Keeps window requests in flight on client (make_request(i) builds request i, with id i)
        until stop (a threading.Event, or a callable) says so, then reads what is still owed.
        on_reply(i, reply) gets each reply in order; it returns False to end the stream. Returns
        when done, or at EOF (the daemon went away)."""
        stopped = stop.is_set if hasattr(stop, "is_set") else stop
        i, pending = 0, []
        while not stopped() or pending:
                while not stopped() and len(pending) < window:
                        client.send_obj(make_request(i))
                        pending.append(i)
                        i += 1
                line = client.readline(timeout=tmo(10))
                if line is None:
                        return
                if on_reply(pending.pop(0), json.loads(line)) is False:
                        return


def wait_for(pred, timeout, interval=0.02):
        """Calls pred until it returns something true (returned) or timeout seconds passed (then
        its last value)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
                v = pred()
                if v:
                        return v
                time.sleep(interval)
        return pred()


def req(method, params=None, id=None):
        r = {"jsonrpc": "2.0", "method": method}
        if id is not None:
                r["id"] = id
        if params is not None:
                r["params"] = params
        return r


def strip_volatile(nb):
        """A notebook as far as its stored content goes (for before/after comparisons)."""
        return json.loads(json.dumps(nb, sort_keys=True))


# --------------------------------------------------------------------------------------------
# DynamoDB on loopback: dynalite, the fault-injecting proxy, the independent reader
#
#   Dynalite     dynalite (tests/dynalite, installed by scripts/install-deps.sh) on a free
#                127.0.0.1 port with its LevelDB data in a temporary directory; available() says
#                whether it can run here (else: t.skip_all(reason))
#   FaultProxy   tests/tools/faultproxy.py in front of a port, driven through its control port
#   ddb_call()   one raw DynamoDB JSON request (dummy signature: dynalite checks none)
#   ddbcheck()   tests/tools/ddbcheck.py (boto3) run with /usr/bin/python3

NODE = os.environ.get("NB_NODE", "node")
# make check sets NB_DYNALITE_CLI from configure --with-dynalite (make distcheck: the source tree's).
DYNALITE_CLI = os.environ.get("NB_DYNALITE_CLI", os.path.join(SRCDIR, "tests", "dynalite", "node_modules",
                                                               "dynalite", "cli.js"))
FAULTPROXY = os.path.join(SRCDIR, "tests", "tools", "faultproxy.py")
DDBCHECK = os.path.join(SRCDIR, "tests", "tools", "ddbcheck.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-boto3


def free_port(host="127.0.0.1"):
        """A port nothing listens on right now (another process may take it before it is used)."""
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
                s.bind((host, 0))
                return s.getsockname()[1]


def port_open(port, host="127.0.0.1", timeout=0.2):
        try:
                with socket.create_connection((host, port), timeout=timeout):
                        return True
        except OSError:
                return False


def file_tail(path, lines=40, limit=64 * 1024):
        try:
                with open(path, "rb") as f:
                        f.seek(0, os.SEEK_END)
                        f.seek(max(0, f.tell() - limit))
                        return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
                return ""


def ddb_call(port, operation, payload, timeout=None, conn=None, host="127.0.0.1"):
        """POSTs one DynamoDB request (X-Amz-Target DynamoDB_20120810.<operation>) to host:port;
        returns (status, parsed JSON body or the raw text). conn: an http.client connection to
        reuse (keep-alive). Connection errors propagate (ConnectionResetError, ...)."""
        import http.client
        body = json.dumps(payload).encode()
        own = conn is None
        if own:
                conn = http.client.HTTPConnection(host, port, timeout=tmo(10) if timeout is None else timeout)
        try:
                conn.request("POST", "/", body=body, headers={
                        "Content-Type": "application/x-amz-json-1.0",
                        "X-Amz-Target": f"DynamoDB_20120810.{operation}",
                        "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDTEST/20250101/us-east-1/dynamodb/aws4_request, "
                                         "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64})
                resp = conn.getresponse()
                data = resp.read().decode(errors="replace")
        finally:
                if own:
                        conn.close()
        try:
                return resp.status, json.loads(data)
        except ValueError:
                return resp.status, data


class Dynalite:
        def __init__(self, tap=None, base=None, memory=False, extra_args=()):
                self.base = base or make_tempdir("nbdyn-")
                self.data_dir = os.path.join(self.base, "dynalite-db")
                self.log_path = os.path.join(self.base, "dynalite.log")
                self.memory = memory
                self.extra_args = list(extra_args)
                self.port = None
                self.proc = None
                _daemons.append(self)  # killed by cleanup_all()
                if tap is not None:
                        tap.on_failure.append(self.diagnostics)

        @staticmethod
        def available():
                """(True, "") when node and the installed dynalite are there, else (False, why)."""
                if not shutil.which(NODE):
                        return False, f"{NODE} not found (scripts/install-deps.sh installs nodejs)"
                if not DYNALITE_CLI:
                        return False, "dynalite left out (configure --without-dynalite, or NB_DYNALITE_CLI empty)"
                if not os.path.isfile(DYNALITE_CLI):
                        return False, f"dynalite not installed ({DYNALITE_CLI}; scripts/install-deps.sh runs npm ci)"
                return True, ""

        @property
        def endpoint(self):
                return f"http://127.0.0.1:{self.port}"

        def argv(self, port):
                a = [NODE, DYNALITE_CLI, "--host", "127.0.0.1", "--port", str(port),
                     "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
                if not self.memory:
                        a += ["--path", self.data_dir]
                return a + self.extra_args

        def start(self, timeout=None):
                """Starts dynalite (on the port it had before, if any, so that a restart keeps the
                endpoint) and waits until it accepts connections. Returns self."""
                if self.alive():
                        raise RuntimeError("dynalite already running")
                fixed = self.port is not None
                for _ in range(1 if fixed else 3):
                        port = self.port if fixed else free_port()
                        with open(self.log_path, "ab") as log:
                                log.write(f"--- start on 127.0.0.1:{port}\n".encode())
                                log.flush()
                                self.proc = subprocess.Popen(self.argv(port), stdin=subprocess.DEVNULL, stdout=log,
                                                             stderr=log, close_fds=True)
                        deadline = time.monotonic() + (tmo(20) if timeout is None else timeout)
                        while time.monotonic() < deadline and self.proc.poll() is None:
                                if port_open(port):
                                        self.port = port
                                        return self
                                time.sleep(0.05)
                        if self.proc.poll() is None:
                                self.proc.kill()
                                self.proc.wait(timeout=5)
                                raise RuntimeError(f"dynalite did not accept connections on {port}:\n" + self.log_tail())
                        if "EADDRINUSE" not in self.log_tail():
                                break
                raise RuntimeError(f"dynalite exited with {self.proc.returncode} at start-up:\n" + self.log_tail())

        def alive(self):
                return self.proc is not None and self.proc.poll() is None

        def stop(self, sig=signal.SIGTERM, timeout=None):
                if not self.proc:
                        return None
                if self.proc.poll() is None:
                        self.proc.send_signal(sig)
                try:
                        return self.proc.wait(timeout=tmo(10) if timeout is None else timeout)
                except subprocess.TimeoutExpired:
                        self.proc.kill()
                        return self.proc.wait(timeout=5)

        def restart(self):
                self.stop()
                return self.start()

        def pause(self):
                """SIGSTOP: connections are still accepted (by the kernel), nothing is answered."""
                self.proc.send_signal(signal.SIGSTOP)

        def resume(self):
                self.proc.send_signal(signal.SIGCONT)

        def call(self, operation, payload, timeout=None):
                return ddb_call(self.port, operation, payload, timeout=timeout)

        def log_tail(self, lines=40):
                return file_tail(self.log_path, lines)

        def diagnostics(self):
                state = "running" if self.alive() else f"exited ({self.proc.returncode if self.proc else 'never started'})"
                return f"dynalite on port {self.port}: {state}; log tail:\n{self.log_tail()}"


class FaultProxy:
        """tests/tools/faultproxy.py in front of 127.0.0.1:target_port. Rules and counters: see
        that file's head. set_mode("throttle", target="PutItem", count=3) replaces every rule with
        one; add_rule() appends; clear() lets everything pass."""

        def __init__(self, target_port, tap=None, seed=None, log_bodies=False, rules=(), base=None):
                self.target_port = target_port
                self.seed = seed
                self.log_bodies = log_bodies
                self.initial_rules = list(rules)
                self.base = base or make_tempdir("nbfp-")
                self.stderr_path = os.path.join(self.base, "faultproxy.stderr")
                self.port = self.control_port = None
                self.proc = None
                _daemons.append(self)
                if tap is not None:
                        tap.on_failure.append(self.diagnostics)

        @property
        def endpoint(self):
                return f"http://127.0.0.1:{self.port}"

        def start(self, timeout=None):
                import select
                argv = [sys.executable, FAULTPROXY, "--target", f"127.0.0.1:{self.target_port}"]
                if self.seed is not None:
                        argv += ["--seed", str(self.seed)]
                if self.log_bodies:
                        argv += ["--log-bodies"]
                for r in self.initial_rules:
                        argv += ["--rule", json.dumps(r)]
                with open(self.stderr_path, "ab") as err:
                        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                     stderr=err, close_fds=True)
                deadline = time.monotonic() + (tmo(10) if timeout is None else timeout)
                line = b""
                while not line.endswith(b"\n"):
                        left = deadline - time.monotonic()
                        if left <= 0 or self.proc.poll() is not None:
                                self.proc.kill()
                                self.proc.wait(timeout=5)
                                raise RuntimeError("faultproxy did not start:\n" + file_tail(self.stderr_path))
                        if select.select([self.proc.stdout], [], [], left)[0]:
                                b = os.read(self.proc.stdout.fileno(), 1)
                                if not b:
                                        continue
                                line += b
                self.port, self.control_port = (int(x) for x in line.split())
                return self

        def alive(self):
                return self.proc is not None and self.proc.poll() is None

        def stop(self, timeout=None):
                if not self.proc:
                        return None
                if self.proc.poll() is None:
                        self.proc.terminate()
                try:
                        return self.proc.wait(timeout=tmo(10) if timeout is None else timeout)
                except subprocess.TimeoutExpired:
                        self.proc.kill()
                        return self.proc.wait(timeout=5)

        def control(self, method, path, body=None):
                """One control request; returns the JSON answer, raises RuntimeError on an error."""
                import http.client
                conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=tmo(10))
                try:
                        data = None if body is None else json.dumps(body).encode()
                        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
                        resp = conn.getresponse()
                        obj = json.loads(resp.read() or b"null")
                finally:
                        conn.close()
                if resp.status != 200:
                        raise RuntimeError(f"faultproxy {method} {path}: {resp.status} {obj}")
                return obj

        def set_mode(self, mode, **rule):
                """Replaces every rule by this one ("pass" without options: clears); its id."""
                if mode == "pass" and not rule:
                        self.clear()
                        return None
                return self.control("PUT", "/rules", [dict(rule, mode=mode)])["ids"][0]

        def add_rule(self, mode, **rule):
                return self.control("POST", "/rules", [dict(rule, mode=mode)])["ids"][0]

        def set_rules(self, rules):
                return self.control("PUT", "/rules", list(rules))["ids"]

        def remove_rule(self, rule_id):
                return self.control("DELETE", f"/rules/{rule_id}")

        def clear(self):
                return self.control("DELETE", "/rules")

        def rules(self):
                return self.control("GET", "/rules")["rules"]

        def stats(self):
                return self.control("GET", "/stats")

        def applied(self, mode, target=None, stats=None):
                """How often mode was applied (to target, or to any)."""
                per = (stats or self.stats())["applied"].get(mode, {})
                return sum(per.values()) if target is None else per.get(target, 0)

        def reset_stats(self):
                return self.control("DELETE", "/stats")

        def log(self, since=0):
                return self.control("GET", f"/log?since={since}")["entries"]

        def close_connections(self, how="close"):
                return self.control("POST", "/connections/close", {"how": how})["closed"]

        def retarget(self, port):
                self.target_port = port
                return self.control("PUT", "/target", {"target": f"127.0.0.1:{port}"})

        def diagnostics(self):
                state = "running" if self.alive() else f"exited ({self.proc.returncode if self.proc else 'never started'})"
                text = f"faultproxy on port {self.port} (control {self.control_port}) -> {self.target_port}: {state}"
                if self.alive():
                        try:
                                text += "\nrules: " + json.dumps(self.rules()) + "\nstats: " + json.dumps(self.stats())
                        except Exception as e:
                                text += f"\n(control interface: {e})"
                return text + "\nstderr tail:\n" + file_tail(self.stderr_path)


def dynamodb_test_env(tap, key_id, secret):
        """For a test against dynalite with the boto3 reader: skips the whole test when either is
        missing; otherwise sets credentials for the signer (dynalite checks none), turns instance
        metadata off and hides the machine's own AWS configuration (a fresh HOME)."""
        for available in (Dynalite.available, ddbcheck_available):
                ok, why = available()
                if not ok:
                        tap.skip_all(why)
        os.environ.update({"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
                           "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
                           "HOME": make_tempdir("nbhome-")})
        for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
                    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "XDG_CONFIG_HOME"):
                os.environ.pop(var, None)


def ddbcheck_available():
        """(True, "") when /usr/bin/python3 has boto3, else (False, why)."""
        if not os.access(SYSTEM_PYTHON, os.X_OK):
                return False, f"{SYSTEM_PYTHON} not found"
        p = subprocess.run([SYSTEM_PYTHON, "-c", "import boto3"], capture_output=True)
        if p.returncode != 0:
                return False, "python3-boto3 is not installed (scripts/install-deps.sh)"
        return True, ""


def ddbcheck(endpoint, *args, input=None, timeout=None):
        """Runs tests/tools/ddbcheck.py --endpoint ENDPOINT args...; returns (rc, out, err)."""
        return run([SYSTEM_PYTHON, DDBCHECK, "--endpoint", endpoint] + [str(a) for a in args],
                   timeout=timeout, input=input)
