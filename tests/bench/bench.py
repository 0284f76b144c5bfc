#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""notebookd's benchmark: `make bench`, or tests/bench/bench.py with the paths below.

Starts its own notebookd daemons, redis-server and dynalite on temporary directories under /tmp,
measures each figure and, in the same run, the anchor it is compared with, and prints a table:
the figure, its anchor, their ratio and the target (doc/performance.md says what each one
means). Figures are reported, never judged: the exit status says only whether the benchmark
itself ran.

  P1  durable single-cell edits, 8 clients x 1 in flight (and with --durability normal)
      anchor: Redis SET over a Unix socket, redis-benchmark -c 8
  P2  pipelined edits, 8 clients x 16 in flight
      anchor: raw SQLite (tests/bench/sqlitebench), the daemon's settings, 16 and 128 rows/commit;
      and the same edits with history off (history_revisions = 0), for what history costs
  P3  one cell edited in notebooks of 6, 100 and 1,000 cells and of 1 MB (50 cells x 20 KiB)
      anchor: the application's whole-file JSON store (tests/bench/filestore.py)
  P4  sync drain of N dirty notebooks of ~2 KB to dynalite: PutItem/s, daemon CPU per PutItem
      anchor: curl --parallel --parallel-max 8 PutItem of the same items to the same dynalite
  P5  notebook.list of a user with 100,000 notebooks: time, daemon RSS before/after, empty RSS
  S   P1 at 1 ... 64 clients, notebookd and Redis

Environment (make bench sets the paths): NOTEBOOKD, NOTEBOOKCTL, NBBENCH, SQLITEBENCH (else
NB_BUILDDIR/..., default the source tree's build/), NB_SRCDIR, NB_BENCH_RUNS (runs per figure,
the median is shown; default 3), NB_BENCH_SECONDS (measured seconds per run, default 5),
NB_BENCH_QUICK=1 (as --quick: 1 run of 1 s, smaller P4 and P5, fewer scaling points),
NB_BENCH_P4_NOTEBOOKS, NB_BENCH_P5_NOTEBOOKS, NB_NODE, NB_DYNALITE_CLI (see scripts/dynalite.sh).
Standard library only."""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import filestore  # noqa: E402

SRCDIR = os.environ.get("NB_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("NB_BUILDDIR") or os.path.join(SRCDIR, "build")
NOTEBOOKD = os.environ.get("NOTEBOOKD") or os.path.join(BUILDDIR, "notebookd")
NOTEBOOKCTL = os.environ.get("NOTEBOOKCTL") or os.path.join(BUILDDIR, "notebookctl")
NBBENCH = os.environ.get("NBBENCH") or os.path.join(BUILDDIR, "tests", "bench", "nbbench")
SQLITEBENCH = os.environ.get("SQLITEBENCH") or os.path.join(BUILDDIR, "tests", "bench", "sqlitebench")
DYNALITE_SH = os.path.join(SRCDIR, "scripts", "dynalite.sh")
FILESTORE = os.path.join(HERE, "filestore.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")

USER = "bench"
P3_SIZES = [("6 cells", 6, 64), ("100 cells", 100, 64), ("1,000 cells", 1000, 64),
            ("1 MB (50 x 20 KiB)", 50, 20 * 1024)]
TARGETS = {
        "P1": "P1 >= 0.3x Redis SET at 8 clients",
        "P2": "P2 >= 1.0x raw SQLite at 16 rows/commit",
        "P3": "P3 1 MB >= 30x file store and >= 0.8x the 6-cell figure",
        "P4": "P4 >= 0.8x the curl ceiling, <= 0.3 ms daemon CPU per PutItem",
        "P5": "P5 RSS after the list within 2x the empty daemon's",
}

_procs = []  # every process we started (Popen), stopped at exit
_tmpdirs = []


def say(text):
        print(f"bench: {text}", file=sys.stderr, flush=True)


class BenchError(Exception):
        pass


def mktemp(prefix):
        d = tempfile.mkdtemp(prefix=f"nbbench-{prefix}-", dir="/tmp")
        _tmpdirs.append(d)
        return d


def cleanup(keep=False):
        for p in reversed(_procs):
                if p.poll() is None:
                        p.terminate()
                        try:
                                p.wait(timeout=10)
                        except subprocess.TimeoutExpired:
                                p.kill()
                                p.wait()
        if not keep:
                for d in _tmpdirs:
                        shutil.rmtree(d, ignore_errors=True)


def kv(line):
        """key=value pairs of a tool's output line, numbers as floats."""
        out = {}
        for tok in line.split():
                k, _, v = tok.partition("=")
                try:
                        out[k] = float(v)
                except ValueError:
                        out[k] = v
        return out


def proc_cpu_seconds(pid):
        """utime + stime of a process, from /proc/PID/stat."""
        with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid, key):
        with open(f"/proc/{pid}/status") as f:
                for line in f:
                        if line.startswith(key + ":"):
                                return int(line.split()[1])
        return None


# --------------------------------------------------------------------------------------------
# notebookd

class Rpc:
        """One connection to a daemon: call() one request at a time, or pipeline() many."""

        def __init__(self, path, timeout=600):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                self.buf = b""
                self.next_id = 1

        def close(self):
                self.sock.close()

        def readline(self):
                while b"\n" not in self.buf:
                        chunk = self.sock.recv(1 << 20)
                        if not chunk:
                                raise BenchError("the daemon closed the connection")
                        self.buf += chunk
                line, _, self.buf = self.buf.partition(b"\n")
                return json.loads(line)

        def call(self, method, params=None):
                req = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
                self.next_id += 1
                if params is not None:
                        req["params"] = params
                self.sock.sendall(json.dumps(req).encode() + b"\n")
                reply = self.readline()
                if "error" in reply:
                        raise BenchError(f"{method}: {json.dumps(reply['error'])[:400]}")
                return reply["result"]

        def pipeline(self, method, params_iter, window=48):
                """Sends one request per params, keeping at most window unanswered (under the
                daemon's per-connection limit); returns how many succeeded, raises on an error."""
                sent = done = 0
                it = iter(params_iter)
                exhausted = False
                while not exhausted or done < sent:
                        # Top the window up once half of it drained: fewer, larger writes.
                        if not exhausted and sent - done <= window // 2:
                                batch = []
                                while sent - done < window:
                                        try:
                                                p = next(it)
                                        except StopIteration:
                                                exhausted = True
                                                break
                                        req = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": p}
                                        self.next_id += 1
                                        batch.append(json.dumps(req).encode() + b"\n")
                                        sent += 1
                                if batch:
                                        self.sock.sendall(b"".join(batch))
                        if done == sent:
                                continue
                        # At least one reply, then every one already received.
                        while True:
                                reply = self.readline()
                                done += 1
                                if "error" in reply:
                                        raise BenchError(f"{method}: {json.dumps(reply['error'])[:400]}")
                                if done == sent or b"\n" not in self.buf:
                                        break
                return done


class Daemon:
        def __init__(self, name, durability=None, state_dir=None, config=None, env=None):
                self.base = mktemp(name)
                self.state_dir = state_dir or os.path.join(self.base, "state")
                self.socket = os.path.join(self.base, "nb.sock")
                self.durability = durability
                self.config_text = config
                self.env = env
                self.proc = None
                self.log = os.path.join(self.base, "notebookd.log")

        def start(self, timeout=60):
                argv = [NOTEBOOKD, "--state-dir", self.state_dir, "--socket", self.socket]
                if self.durability:
                        argv += ["--durability", self.durability]
                if self.config_text is not None:
                        path = os.path.join(self.base, "notebookd.conf")
                        with open(path, "w") as f:
                                f.write(self.config_text)
                        argv += ["--config", path]
                with open(self.log, "ab") as log:
                        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                     env=self.env, close_fds=True)
                _procs.append(self.proc)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                        if self.proc.poll() is not None:
                                raise BenchError(f"notebookd exited with {self.proc.returncode}; log {self.log}:\n"
                                                 + self.log_tail())
                        try:
                                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                                s.connect(self.socket)
                                s.close()
                                return self
                        except OSError:
                                s.close()
                                time.sleep(0.01)
                raise BenchError(f"notebookd did not accept connections within {timeout} s")

        def stop(self):
                if self.proc and self.proc.poll() is None:
                        self.proc.terminate()
                        try:
                                self.proc.wait(timeout=30)
                        except subprocess.TimeoutExpired:
                                self.proc.kill()
                                self.proc.wait()

        def log_tail(self, n=20):
                try:
                        with open(self.log, errors="replace") as f:
                                return "".join(f.readlines()[-n:])
                except OSError:
                        return ""

        @property
        def pid(self):
                return self.proc.pid

        def rpc(self, timeout=600):
                return Rpc(self.socket, timeout)

        def call(self, method, params=None):
                c = self.rpc()
                try:
                        return c.call(method, params)
                finally:
                        c.close()

        def cpu(self):
                return proc_cpu_seconds(self.pid)

        def rss_kb(self):
                return proc_status_kb(self.pid, "VmRSS")

        def hwm_kb(self):
                return proc_status_kb(self.pid, "VmHWM")


def create_notebook(d, notebook_id, n_cells, code_bytes):
        """Creates (user USER) a notebook shaped like filestore.py's; returns the middle cell's id."""
        nb = filestore.make_notebook(notebook_id, USER, n_cells, code_bytes)
        cells = [{k: c[k] for k in ("id", "type", "code", "reads", "writes")} for c in nb["cells"]]
        d.call("notebook.create", {"user_id": USER, "notebook_id": notebook_id, "name": nb["name"], "cells": cells})
        return cells[n_cells // 2]["id"]


def nbbench(d, notebook_id, cell_id, clients, pipeline, cfg):
        argv = [NBBENCH, "--socket", d.socket, "--user", USER, "--notebook", notebook_id, "--cell", cell_id,
                "--clients", str(clients), "--pipeline", str(pipeline), "--seconds", str(cfg.seconds),
                "--warmup", str(cfg.warmup), "--method", "update"]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=cfg.seconds + cfg.warmup + 120)
        if p.returncode != 0:
                raise BenchError(f"nbbench failed ({p.returncode}): {p.stderr.strip()}\n{d.log_tail()}")
        r = kv(p.stdout.strip().splitlines()[-1])
        return {"rate": r["rate"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "per_commit": r["per_commit"]}


# --------------------------------------------------------------------------------------------
# Redis

class Redis:
        def __init__(self):
                self.server = shutil.which("redis-server")
                self.bench = shutil.which("redis-benchmark")
                self.proc = None
                self.est = {}  # clients -> requests/s seen, to size the next run

        def available(self):
                return bool(self.server and self.bench)

        def start(self):
                self.base = mktemp("redis")
                self.socket = os.path.join(self.base, "redis.sock")
                # No TCP (port 0), no persistence: the in-memory ceiling of a request/reply store.
                argv = [self.server, "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
                        "--save", "", "--appendonly", "no", "--dir", self.base, "--daemonize", "no",
                        "--logfile", os.path.join(self.base, "redis.log")]
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, close_fds=True)
                _procs.append(self.proc)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                        if self.proc.poll() is not None:
                                raise BenchError("redis-server exited at start-up")
                        if os.path.exists(self.socket):
                                try:
                                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                                        s.connect(self.socket)
                                        s.sendall(b"PING\r\n")
                                        if s.recv(64).startswith(b"+PONG"):
                                                s.close()
                                                return self
                                        s.close()
                                except OSError:
                                        pass
                        time.sleep(0.05)
                raise BenchError("redis-server did not answer within 20 s")

        def run(self, clients, cfg):
                """redis-benchmark SET, sized from the last rate seen to last about cfg.seconds."""
                est = self.est.get(clients) or max(self.est.values(), default=20000)
                n = max(2000, int(est * cfg.seconds))
                p = subprocess.run([self.bench, "-s", self.socket, "-c", str(clients), "-t", "set", "-d", "16",
                                    "-n", str(n), "--csv"], capture_output=True, text=True, timeout=600)
                if p.returncode != 0:
                        raise BenchError(f"redis-benchmark failed: {p.stderr.strip()}")
                rows = [line.replace('"', "").split(",") for line in p.stdout.strip().splitlines()]
                head, vals = rows[0], rows[-1]
                r = dict(zip(head, vals))
                rate = float(r["rps"])
                self.est[clients] = rate
                return {"rate": rate, "p50_ms": float(r["p50_latency_ms"]), "p99_ms": float(r["p99_latency_ms"])}


# --------------------------------------------------------------------------------------------
# Measuring: runs interleaved, the median shown

def median_of(runs):
        """The run with the median rate (the lower middle for an even count), and all rates."""
        ok = [r for r in runs if r is not None]
        if not ok:
                return None
        s = sorted(ok, key=lambda r: r["rate"])
        med = dict(s[(len(s) - 1) // 2])
        med["runs"] = [r["rate"] for r in ok]
        return med


def measure(group, runs):
        """group: name -> function returning a result dict with "rate" (or None: n/a). The runs go
        round-robin over the group (A B C A B C ...) so that a slow patch of the shared machine
        does not fall on one figure only. Returns name -> median result (or None)."""
        results = {name: [] for name in group}
        for i in range(runs):
                for name, fn in group.items():
                        say(f"  {name} (run {i + 1}/{runs})")
                        results[name].append(fn())
        return {name: median_of(rs) for name, rs in results.items()}


# --------------------------------------------------------------------------------------------
# The figures

def p1_p2_p3_scaling(cfg, redis, R):
        full = Daemon("full").start()
        normal = Daemon("normal", durability="normal").start()
        # The cost of history (doc/storage.md, "History"): the same edits with none kept.
        nohist = Daemon("nohistory", config="[daemon]\nhistory_revisions = 0\n").start()
        cell_full = create_notebook(full, "p1", 6, 64)
        cell_normal = create_notebook(normal, "p1", 6, 64)
        cell_nohist = create_notebook(nohist, "p1", 6, 64)
        redis_ok = redis.available()
        if redis_ok:
                redis.start()
        else:
                say("redis-server or redis-benchmark not found (scripts/install-bench-deps.sh): Redis anchors n/a")

        say("P1: single-cell edits, 8 clients x 1 in flight")
        R["P1"] = measure({
                "notebookd": lambda: nbbench(full, "p1", cell_full, 8, 1, cfg),
                "notebookd_normal": lambda: nbbench(normal, "p1", cell_normal, 8, 1, cfg),
                "redis": (lambda: redis.run(8, cfg)) if redis_ok else (lambda: None),
        }, cfg.runs)

        say("P2: pipelined edits, 8 clients x 16 in flight")
        sqldir = mktemp("sqlite")

        def sqlite(rows, sync="full"):
                p = subprocess.run([SQLITEBENCH, "--db", os.path.join(sqldir, f"bench-{rows}-{sync}.db"),
                                    "--rows-per-commit", str(rows), "--seconds", str(cfg.seconds),
                                    "--warmup", str(cfg.warmup), "--synchronous", sync],
                                   capture_output=True, text=True, timeout=cfg.seconds + cfg.warmup + 120)
                if p.returncode != 0:
                        raise BenchError(f"sqlitebench failed: {p.stderr.strip()}")
                r = kv(p.stdout.strip())
                return {"rate": r["rate"], "p50_ms": r["commit_p50_ms"], "p99_ms": r["commit_p99_ms"],
                        "per_commit": float(rows)}

        R["P2"] = measure({
                "notebookd": lambda: nbbench(full, "p1", cell_full, 8, 16, cfg),
                "notebookd_normal": lambda: nbbench(normal, "p1", cell_normal, 8, 16, cfg),
                "notebookd_nohistory": lambda: nbbench(nohist, "p1", cell_nohist, 8, 16, cfg),
                "sqlite16": lambda: sqlite(16),
                "sqlite128": lambda: sqlite(128),
        }, cfg.runs)

        say("P3: one cell edited in notebooks of growing size")
        fsdir = mktemp("filestore")

        def fstore(n_cells, code_bytes, mode):
                p = subprocess.run([sys.executable, FILESTORE, "--dir", os.path.join(fsdir, f"{n_cells}-{code_bytes}"),
                                    "--cells", str(n_cells), "--code-bytes", str(code_bytes), "--seconds",
                                    str(cfg.seconds), "--warmup", str(cfg.warmup), "--mode", mode],
                                   capture_output=True, text=True, timeout=cfg.seconds + cfg.warmup + 120)
                if p.returncode != 0:
                        raise BenchError(f"filestore.py failed: {p.stderr.strip()}")
                r = kv(p.stdout.strip())
                return {"rate": r["rate"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "file_bytes": r["file_bytes"]}

        R["P3"] = {}
        for label, n_cells, code_bytes in P3_SIZES:
                nb_id = f"p3-{n_cells}-{code_bytes}"
                cell = create_notebook(full, nb_id, n_cells, code_bytes)
                say(f" P3 {label}")
                R["P3"][label] = measure({
                        "notebookd": lambda nb_id=nb_id, cell=cell: nbbench(full, nb_id, cell, 8, 1, cfg),
                        # One client, one edit at a time: the file store's own pattern.
                        "notebookd_1": lambda nb_id=nb_id, cell=cell: nbbench(full, nb_id, cell, 1, 1, cfg),
                        "filestore_rmw": lambda n=n_cells, b=code_bytes: fstore(n, b, "rmw"),
                        "filestore_save": lambda n=n_cells, b=code_bytes: fstore(n, b, "save"),
                }, cfg.runs)

        say("S: P1 at growing client counts")
        R["S"] = {}
        for k in cfg.scaling:
                R["S"][str(k)] = measure({
                        "notebookd": lambda k=k: nbbench(full, "p1", cell_full, k, 1, cfg),
                        "redis": (lambda k=k: redis.run(k, cfg)) if redis_ok else (lambda: None),
                }, cfg.runs)

        full.stop()
        normal.stop()
        nohist.stop()
        if redis.proc:
                redis.proc.terminate()
                redis.proc.wait()


# P4 ------------------------------------------------------------------------------------------

def p4_env(home):
        """The daemon's and notebookctl's environment for dynalite: credentials for the signer
        (dynalite checks none), no instance metadata lookup, none of the machine's AWS settings:
        nothing but 127.0.0.1 is ever contacted."""
        e = dict(os.environ)
        for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
                    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_DEFAULT_REGION", "XDG_CONFIG_HOME",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
                e.pop(var, None)
        e.update({"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                  "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1", "HOME": home})
        return e


def ddb(port, operation, payload, conn=None):
        import http.client
        own = conn is None
        if own:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
                conn.request("POST", "/", body=json.dumps(payload).encode(), headers=ddb_headers(operation))
                resp = conn.getresponse()
                data = resp.read()
        finally:
                if own:
                        conn.close()
        if resp.status != 200:
                raise BenchError(f"dynalite {operation}: {resp.status} {data[:300]!r}")
        return json.loads(data)


def ddb_headers(operation):
        # dynalite checks that a request is signed, not the signature (as the tests rely on).
        return {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{operation}",
                "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/dynamodb/aws4_request, "
                                 "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64}


def p4_notebook(i):
        """A notebook of about 2 KB as a DynamoDB item: three cells of ~500 bytes of code."""
        return {"user_id": USER, "notebook_id": f"p4-{i:06d}", "name": f"sync {i}",
                "cells": [{k: c[k] for k in ("id", "type", "code", "reads", "writes")}
                          for c in (filestore.make_cell(j, 500) for j in range(3))]}


def p4(cfg, R):
        node = os.environ.get("NB_NODE", "node")
        cli = os.environ.get("NB_DYNALITE_CLI") or os.path.join(SRCDIR, "tests", "dynalite", "node_modules", "dynalite",
                                                                 "cli.js")
        if not shutil.which(node) or not os.path.isfile(cli):
                say(f"P4 skipped: dynalite not installed ({cli}; scripts/install-deps.sh)")
                R["P4"] = None
                return
        curl = shutil.which("curl")
        dyndir = mktemp("dynalite")
        p = subprocess.run([DYNALITE_SH, "start", "--dir", dyndir, "--port", "0", "--memory"], capture_output=True,
                           text=True, timeout=120)
        if p.returncode != 0:
                raise BenchError(f"scripts/dynalite.sh start failed: {p.stderr.strip()}")
        port, dyn_pid = (int(x) for x in p.stdout.split())
        try:
                home = mktemp("home")
                env = p4_env(home)
                n = cfg.p4_notebooks
                runs = []
                for run in range(cfg.runs):
                        say(f"P4: drain of {n} notebooks (run {run + 1}/{cfg.runs})")
                        runs.append(p4_run(cfg, run, n, port, dyn_pid, env, curl))
                R["P4"] = {"notebookd": median_of([r["notebookd"] for r in runs]),
                           "curl": median_of([r["curl"] for r in runs]) if curl else None,
                           "notebooks": n}
        finally:
                subprocess.run([DYNALITE_SH, "stop", "--dir", dyndir], capture_output=True, timeout=60)


def p4_run(cfg, run, n, port, dyn_pid, env, curl):
        table = f"bench-p4-{run}"
        endpoint = f"http://127.0.0.1:{port}"
        conf = f"[remote]\nendpoint = {endpoint}\ntable = {table}\nregion = us-east-1\n"
        # A local-only daemon makes the notebooks (dirty: never pushed), then one with [remote]
        # starts on the same state and drains them: start-up resumes pending pushes.
        d = Daemon(f"p4-{run}", config=conf, env=env)
        local = Daemon(f"p4-{run}-local", state_dir=d.state_dir, env=env).start()
        c = local.rpc()
        c.pipeline("notebook.create", (p4_notebook(i) for i in range(n)))
        c.close()
        local.stop()
        p = subprocess.run([NOTEBOOKCTL, "table", "create", "--endpoint", endpoint, "--table", table, "--region",
                            "us-east-1", "--wait", "60"], capture_output=True, text=True, env=env, timeout=120)
        if p.returncode != 0:
                raise BenchError(f"notebookctl table create failed: {p.stdout} {p.stderr}")

        # Measured from the daemon's exec to the first status that shows nothing pending: its
        # start-up (opening the database, the first pull of an empty table) counts against it.
        t0 = time.monotonic()
        d.start()
        dcpu0 = proc_cpu_seconds(dyn_pid)
        c = d.rpc()
        deadline = t0 + 600
        # Polled every 100 ms: daemon.status lists up to 1000 notebooks not in sync, a cost the
        # daemon's CPU figure includes (doc/performance.md).
        while True:
                s = c.call("daemon.status")["sync"]
                if s["pending"] == 0 and s["in_flight"] == 0 and s["pushes"] >= n:
                        break
                if time.monotonic() > deadline:
                        raise BenchError(f"P4: still {s['pending']} pending after 600 s; last error {s['last_error']}")
                time.sleep(0.1)
        t_end = time.monotonic()
        cpu1, dcpu1 = d.cpu(), proc_cpu_seconds(dyn_pid)
        c.close()
        puts = s["pushes"]
        secs = t_end - t0
        nb = {"rate": puts / secs, "puts": puts, "seconds": secs, "cpu_ms_per_put": cpu1 * 1e3 / puts,
              "cpu_seconds": cpu1, "dynalite_cpu_ms_per_put": (dcpu1 - dcpu0) * 1e3 / puts,
              "last_error": s.get("last_error")}
        d.stop()

        # The anchor: the same items, copied from the table, PutItem'ed to a second table with the
        # daemon's condition for a first push, by curl with 8 transfers at once.
        items = []
        scan = {"TableName": table}
        while True:
                page = ddb(port, "Scan", scan)
                items += page["Items"]
                if "LastEvaluatedKey" not in page:
                        break
                scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if len(items) < n:
                raise BenchError(f"P4: the table holds {len(items)} items, {n} expected")
        nb["item_bytes"] = statistics.mean(len(json.dumps(it)) for it in items)
        if not curl:
                return {"notebookd": nb, "curl": None}
        curl_table = table + "-curl"
        subprocess.run([NOTEBOOKCTL, "table", "create", "--endpoint", endpoint, "--table", curl_table, "--region",
                        "us-east-1", "--wait", "60"], capture_output=True, text=True, env=env, timeout=120, check=True)
        cdir = mktemp(f"curl-{run}")
        cfgfile = os.path.join(cdir, "curl.conf")
        with open(cfgfile, "w") as f:
                for i, it in enumerate(items):
                        body = os.path.join(cdir, f"{i}.json")
                        with open(body, "w") as b:
                                json.dump({"TableName": curl_table, "Item": it,
                                           "ConditionExpression": "attribute_not_exists(#nid)",
                                           "ExpressionAttributeNames": {"#nid": "notebook_id"}}, b)
                        if i:
                                f.write("next\n")
                        f.write(f'url = "{endpoint}/"\ndata-binary = "@{body}"\noutput = "/dev/null"\n'
                                'write-out = "%{http_code}\\n"\n')
                        for k, v in ddb_headers("PutItem").items():
                                f.write(f'header = "{k}: {v}"\n')
        dcpu0 = proc_cpu_seconds(dyn_pid)
        ru0 = os.times()
        t = time.monotonic()
        p = subprocess.run([curl, "--silent", "--parallel", "--parallel-max", "8", "--config", cfgfile],
                           capture_output=True, text=True, timeout=600)
        secs = time.monotonic() - t
        ru1 = os.times()
        dcpu1 = proc_cpu_seconds(dyn_pid)
        codes = p.stdout.split()
        ok = codes.count("200")
        if ok != len(items):
                raise BenchError(f"P4 curl: {ok} of {len(items)} PutItem answered 200 ({p.stderr.strip()[:300]})")
        cu = {"rate": ok / secs, "puts": ok, "seconds": secs,
              "curl_cpu_ms_per_put": ((ru1.children_user - ru0.children_user)
                                      + (ru1.children_system - ru0.children_system)) * 1e3 / ok,
              "dynalite_cpu_ms_per_put": (dcpu1 - dcpu0) * 1e3 / ok}
        shutil.rmtree(cdir, ignore_errors=True)
        return {"notebookd": nb, "curl": cu}


# P5 ------------------------------------------------------------------------------------------

def list_all(d, user):
        """notebook.list of user, following next_cursor when the reply has one (paged replies);
        returns (seconds, notebooks, pages)."""
        c = d.rpc()
        try:
                t = time.monotonic()
                params = {"user_id": user}
                count = pages = 0
                while True:
                        r = c.call("notebook.list", params)
                        count += len(r["notebooks"])
                        pages += 1
                        cursor = r.get("next_cursor")
                        if not cursor:
                                break
                        params = {"user_id": user, "cursor": cursor}
                return time.monotonic() - t, count, pages
        finally:
                c.close()


def p5(cfg, R):
        n = cfg.p5_notebooks
        empty = Daemon("p5-empty").start()
        empty.call("daemon.status")
        empty_rss = empty.rss_kb()
        empty.stop()

        d = Daemon("p5").start()
        say(f"P5: creating {n} notebooks")
        t = time.monotonic()
        c = d.rpc()
        c.pipeline("notebook.create", ({"user_id": "p5", "notebook_id": f"p5-{i:06d}", "name": f"notebook {i}",
                                        "cells": [{"id": "c", "code": f"x = {i}"}]} for i in range(n)))
        c.close()
        create_s = time.monotonic() - t
        # The list is measured on a fresh daemon over the full database: what it holds then is
        # what serving the list costs, not what creating the notebooks left behind.
        d.stop()
        d.start()
        d.call("daemon.status")
        before = d.rss_kb()
        times = []
        after = None
        for i in range(cfg.runs):
                say(f"P5: notebook.list of {n} (run {i + 1}/{cfg.runs})")
                secs, count, pages = list_all(d, "p5")
                if count < n:
                        raise BenchError(f"P5: notebook.list returned {count} notebooks, {n} expected")
                times.append(secs)
                if after is None:
                        after = d.rss_kb()
        R["P5"] = {"notebooks": n, "create_seconds": create_s, "create_rate": n / create_s,
                   "list_seconds": statistics.median(times), "list_runs": times, "pages": pages, "listed": count,
                   "rss_empty_kb": empty_rss, "rss_before_kb": before, "rss_after_kb": after,
                   "rss_after_all_kb": d.rss_kb(), "hwm_kb": d.hwm_kb()}
        d.stop()


# --------------------------------------------------------------------------------------------
# Output

def machine():
        m = {"nproc": os.cpu_count(), "kernel": platform.release(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}
        try:
                with open("/proc/cpuinfo") as f:
                        m["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                                        "unknown")
        except OSError:
                m["cpu"] = "unknown"
        # The disk under /tmp: its file system, and whether the kernel says it rotates.
        try:
                st = os.stat("/tmp")
                dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
                with open("/proc/self/mountinfo") as f:
                        for line in f:
                                parts = line.split()
                                if parts[2] == dev and parts[4] in ("/tmp", "/"):
                                        sep = parts.index("-")
                                        m["tmp_fs"] = f"{parts[sep + 1]} on {parts[sep + 2]}"
                                        if parts[4] == "/tmp":
                                                break
                name = os.path.basename(os.path.realpath(f"/sys/dev/block/{dev}"))
                rot = f"/sys/block/{name}/queue/rotational"
                if not os.path.exists(rot):
                        rot = os.path.join(os.path.realpath(f"/sys/dev/block/{dev}"), "..", "queue", "rotational")
                with open(rot) as f:
                        m["disk"] = f"{name}, " + ("rotational" if f.read().strip() == "1" else "non-rotational")
        except (OSError, StopIteration, ValueError):
                m.setdefault("disk", "unknown")
        return m


def fmt_rate(r, unit="/s"):
        if r is None:
                return "n/a"
        return f"{r:,.0f}{unit}" if r >= 100 else f"{r:,.1f}{unit}"


def fmt_ms(v):
        return "n/a" if v is None else f"{v:.3f}"


def ratio(a, b):
        if a is None or b is None or not b:
                return "n/a"
        return f"{a / b:.2f}x"


def rate_of(res):
        return res["rate"] if res else None


def table(R):
        rows = []  # (id, figure, value, p50, p99, per_commit, anchor, anchor value, ratio, target)

        def row(fid, figure, res, anchor_name, anchor, target="", value=None, rat=None):
                rows.append((fid, figure, value or fmt_rate(rate_of(res)),
                             fmt_ms(res.get("p50_ms")) if res else "n/a", fmt_ms(res.get("p99_ms")) if res else "n/a",
                             f"{res['per_commit']:.2f}" if res and res.get("per_commit") is not None else "",
                             anchor_name, fmt_rate(rate_of(anchor)) if anchor_name else "",
                             rat if rat is not None else (ratio(rate_of(res), rate_of(anchor)) if anchor_name else ""),
                             target))

        if "P1" in R:
                p = R["P1"]
                row("P1", "cell.update, 8 clients x 1, durable", p["notebookd"], "Redis SET -c 8", p["redis"],
                    ">= 0.3x")
                row("P1", "cell.update, 8 x 1, durability=normal", p["notebookd_normal"], "Redis SET -c 8",
                    p["redis"])
        if "P2" in R:
                p = R["P2"]
                row("P2", "cell.update, 8 clients x 16, durable", p["notebookd"], "SQLite 16 rows/commit",
                    p["sqlite16"], ">= 1.0x")
                row("P2", "", p["notebookd"], "SQLite 128 rows/commit", p["sqlite128"])
                row("P2", "cell.update, 8 x 16, durability=normal", p["notebookd_normal"], "SQLite 16 rows/commit",
                    p["sqlite16"])
                row("P2", "cell.update, 8 x 16, durable", p["notebookd"], "history_revisions = 0",
                    p["notebookd_nohistory"])
        if "P3" in R:
                six = R["P3"].get(P3_SIZES[0][0], {}).get("notebookd")
                for label, _, _ in P3_SIZES:
                        p = R["P3"].get(label)
                        if not p:
                                continue
                        big = label.startswith("1 MB")
                        row("P3", f"edit in {label}, 8 x 1", p["notebookd"], "file store, read-modify-write",
                            p["filestore_rmw"], ">= 30x" if big else "")
                        row("P3", "", p["notebookd"], "file store, save only", p["filestore_save"])
                        row("P3", f"edit in {label}, 1 x 1", p["notebookd_1"], "file store, read-modify-write",
                            p["filestore_rmw"])
                        if label != P3_SIZES[0][0]:
                                rows.append(("P3", "", "", "", "", "", "same, 6-cell notebook", fmt_rate(rate_of(six)),
                                             ratio(rate_of(p["notebookd"]), rate_of(six)), ">= 0.8x" if big else ""))
        if R.get("P4"):
                p = R["P4"]
                nb, cu = p["notebookd"], p["curl"]
                row("P4", f"sync drain, {p['notebooks']} notebooks (PutItem/s)", nb, "curl --parallel-max 8", cu,
                    ">= 0.8x")
                rows.append(("P4", "daemon CPU per PutItem", f"{nb['cpu_ms_per_put']:.3f} ms", "", "", "", "", "", "",
                             "<= 0.3 ms"))
                rows.append(("P4", "dynalite CPU per PutItem", f"{nb['dynalite_cpu_ms_per_put']:.3f} ms", "", "", "",
                             "same, from curl",
                             f"{cu['dynalite_cpu_ms_per_put']:.3f} ms" if cu else "n/a", "", ""))
                rows.append(("P4", "mean item size", f"{nb['item_bytes']:,.0f} B", "", "", "", "", "", "", ""))
        if R.get("P5"):
                p = R["P5"]
                rows.append(("P5", f"notebook.list of {p['notebooks']:,} ({p['pages']} page(s))",
                             f"{p['list_seconds'] * 1e3:,.0f} ms", "", "", "", "first call (cold)",
                             f"{p['list_runs'][0] * 1e3:,.0f} ms", "", ""))
                rows.append(("P5", "RSS before the list", f"{p['rss_before_kb'] / 1024:,.1f} MiB", "", "", "",
                             "empty daemon", f"{p['rss_empty_kb'] / 1024:,.1f} MiB",
                             f"{p['rss_before_kb'] / p['rss_empty_kb']:.2f}x", ""))
                rows.append(("P5", "RSS after the list", f"{p['rss_after_kb'] / 1024:,.1f} MiB", "", "", "",
                             "empty daemon", f"{p['rss_empty_kb'] / 1024:,.1f} MiB",
                             f"{p['rss_after_kb'] / p['rss_empty_kb']:.2f}x", "<= 2x"))
                rows.append(("P5", "peak RSS (VmHWM)", f"{p['hwm_kb'] / 1024:,.1f} MiB", "", "", "", "empty daemon",
                             f"{p['rss_empty_kb'] / 1024:,.1f} MiB", f"{p['hwm_kb'] / p['rss_empty_kb']:.2f}x", ""))
                rows.append(("P5", "notebook.create, pipelined (setup)", fmt_rate(p["create_rate"]), "", "", "", "",
                             "", "", ""))
        if R.get("S"):
                for k, p in R["S"].items():
                        row("S", f"cell.update, {k} client(s) x 1, durable", p["notebookd"], f"Redis SET -c {k}",
                            p["redis"])

        head = ("", "figure", "value", "p50 ms", "p99 ms", "req/commit", "anchor", "anchor value", "ratio", "target")
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        lines = []
        fmtrow = lambda r: "  ".join(str(c).rjust(w) if i in (2, 3, 4, 5, 7, 8) else str(c).ljust(w)  # noqa: E731
                                     for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        lines.append(fmtrow(head))
        lines.append("  ".join("-" * w for w in widths))
        last = None
        for r in rows:
                if last is not None and r[0] != last:
                        lines.append("")
                last = r[0]
                lines.append(fmtrow(r))
        return "\n".join(lines)


def anchors_p50(R):
        """Redis's latencies are shown with the anchor; the table's p50/p99 columns are notebookd's."""
        out = []
        if R.get("P1") and R["P1"].get("redis"):
                r = R["P1"]["redis"]
                out.append(f"Redis SET -c 8: p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms")
        if R.get("S"):
                parts = [f"{k}: {p['redis']['p50_ms']:.3f}" for k, p in R["S"].items() if p.get("redis")]
                if parts:
                        out.append("Redis SET p50 ms by clients: " + ", ".join(parts))
        return out


def report(R, m, conf, out):
        print(f"notebookd benchmark, {'quick' if conf['quick'] else 'full'} run: median of {conf['runs']} run(s) of "
              f"{conf['seconds']:g} s (+{conf['warmup']:g} s warm-up), {conf.get('elapsed_seconds', '?')} s in all",
              file=out)
        print(f"machine: {m['nproc']} x {m['cpu']}, Linux {m['kernel']}, /tmp: {m.get('tmp_fs', '?')} "
              f"({m.get('disk', 'unknown')}), {m['date']}", file=out)
        print(file=out)
        print(table(R), file=out)
        for line in anchors_p50(R):
                print(line, file=out)
        print(file=out)
        print("targets (reported, not enforced):", file=out)
        for t in TARGETS.values():
                print(f"  {t}", file=out)


def main():
        ap = argparse.ArgumentParser(description="notebookd's benchmark (doc/performance.md)")
        ap.add_argument("--quick", action="store_true", default=os.environ.get("NB_BENCH_QUICK") == "1",
                        help="a fast smoke run: 1 run of 1 s each, smaller P4 and P5 (NB_BENCH_QUICK=1)")
        ap.add_argument("--json", metavar="FILE", help="write every result, machine-readable, to FILE")
        ap.add_argument("--only", metavar="LIST", default="P1,P2,P3,P4,P5,S",
                        help="comma-separated figures to run (P1,P2,P3 and S share daemons; default all)")
        ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
        ap.add_argument("--show", metavar="FILE", help="print the table of a --json FILE again; run nothing")
        a = ap.parse_args()
        if a.show:
                with open(a.show) as f:
                        saved = json.load(f)
                report(saved["results"], saved["machine"], saved["config"], None)
                return 0

        class Cfg:
                pass

        cfg = Cfg()
        cfg.runs = int(os.environ.get("NB_BENCH_RUNS", "1" if a.quick else "3"))
        cfg.seconds = float(os.environ.get("NB_BENCH_SECONDS", "1" if a.quick else "5"))
        cfg.warmup = min(1.0, max(0.2, cfg.seconds / 5))
        cfg.p4_notebooks = int(os.environ.get("NB_BENCH_P4_NOTEBOOKS", "300" if a.quick else "3000"))
        cfg.p5_notebooks = int(os.environ.get("NB_BENCH_P5_NOTEBOOKS", "5000" if a.quick else "100000"))
        cfg.scaling = [1, 8, 64] if a.quick else [1, 2, 4, 8, 16, 32, 64]
        only = set(a.only.upper().split(","))

        for path in (NOTEBOOKD, NOTEBOOKCTL, NBBENCH, SQLITEBENCH):
                if not os.access(path, os.X_OK):
                        say(f"{path} not found: build first (make bench builds everything it needs)")
                        return 2

        def on_signal(signum, frame):
                raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_signal)
        R = {}
        t0 = time.monotonic()
        try:
                if only & {"P1", "P2", "P3", "S"}:
                        # They share the daemons; all four run when any is asked for.
                        p1_p2_p3_scaling(cfg, Redis(), R)
                if "P4" in only:
                        p4(cfg, R)
                if "P5" in only:
                        p5(cfg, R)
        except (BenchError, subprocess.SubprocessError, OSError) as e:
                say(f"failed: {e}")
                cleanup(a.keep)
                return 1
        except KeyboardInterrupt:
                say("interrupted")
                cleanup(a.keep)
                return 130
        cleanup(a.keep)

        m = machine()
        conf = {"runs": cfg.runs, "seconds": cfg.seconds, "warmup": cfg.warmup, "quick": a.quick,
                "p4_notebooks": cfg.p4_notebooks, "p5_notebooks": cfg.p5_notebooks,
                "elapsed_seconds": round(time.monotonic() - t0)}
        if a.json:
                with open(a.json, "w") as f:
                        json.dump({"machine": m, "config": conf, "targets": TARGETS, "results": R}, f, indent=2)
                        f.write("\n")
        report(R, m, conf, None)
        return 0


if __name__ == "__main__":
        sys.exit(main())
