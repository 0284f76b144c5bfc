# SPDX-License-Identifier: MIT
"""Prometheus metrics: `notebookctl metrics` (daemon.metrics) and the [metrics] HTTP listener.
Debian's promtool accepts the text; counters move by exactly what the traffic made; histograms
are cumulative and their counts agree; OpenMetrics when the scraper asks for it; the listener
answers 404, 405 and 431, drops a client that sends nothing while serving another, caps its
connections; a bad `listen` is a configuration error naming it. Then sync against dynalite behind
the fault proxy: pushes by outcome, a retry, a conflict and its merge, pulls, pending notebooks,
DynamoDB latency by operation and the capacity DynamoDB reported."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TAP, Daemon, Dynalite, FaultProxy, ctl, free_port, run, tmo  # noqa: E402

t = TAP()
PROMTOOL = shutil.which("promtool")
SETPRIV = shutil.which("setpriv")
GUEST_UID = 65534

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
        """{(name, frozenset(labels)): value} and {family: type} of a text exposition."""
        samples, types = {}, {}
        for line in text.splitlines():
                if line.startswith("# TYPE "):
                        _, _, name, typ = line.split(" ", 3)
                        types[name] = typ
                        continue
                if not line or line.startswith("#"):
                        continue
                m = SAMPLE.match(line)
                if not m:
                        raise ValueError(f"not a sample line: {line!r}")
                labels = frozenset(LABEL.findall(m.group(2) or ""))
                samples[(m.group(1), labels)] = float(m.group(3))
        return samples, types


def value(samples, name, **labels):
        return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples, name):
        """{labels (frozenset): value} of every sample of name."""
        return {k[1]: v for k, v in samples.items() if k[0] == name}


def promtool(text):
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=tmo(30))
        return p.returncode, p.stdout + p.stderr


def check_promtool(text, desc):
        if not PROMTOOL:
                t.skip(desc, "promtool not installed (Debian package prometheus)")
                return
        rc, out = promtool(text)
        t.ok(rc == 0, desc, out)


def scrape(d):
        rc, out, err = d.ctl("metrics")
        if rc != 0:
                raise AssertionError(f"notebookctl metrics: {rc} {err}")
        return out


def check_histograms(samples, types, desc):
        """Every histogram series: buckets cumulative, +Inf bucket == _count."""
        problems = []
        for fam, typ in types.items():
                if typ != "histogram":
                        continue
                by_series = {}
                for (name, labels), v in samples.items():
                        if name == fam + "_bucket":
                                rest = frozenset(kv for kv in labels if kv[0] != "le")
                                le = dict(labels)["le"]
                                by_series.setdefault(rest, []).append((float(le), v))
                for rest, buckets in by_series.items():
                        buckets.sort()
                        counts = [v for _, v in buckets]
                        if counts != sorted(counts):
                                problems.append(f"{fam}{dict(rest)}: buckets not cumulative: {buckets}")
                        if buckets[-1][0] != float("inf") or buckets[-1][1] != samples.get((fam + "_count", rest)):
                                problems.append(f"{fam}{dict(rest)}: +Inf bucket != _count")
                        if (fam + "_sum", rest) not in samples:
                                problems.append(f"{fam}{dict(rest)}: no _sum")
        t.ok(not problems, desc, "\n".join(problems))


def http_get(port, raw, timeout=None):
        """Sends raw bytes, returns (status, headers dict, body bytes) of the answer."""
        with socket.create_connection(("127.0.0.1", port), timeout=tmo(10) if timeout is None else timeout) as s:
                s.sendall(raw)
                data = b""
                while True:
                        chunk = s.recv(65536)
                        if not chunk:
                                break
                        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        return status, headers, body


def get(port, path="/metrics", method="GET", headers=()):
        req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
        return http_get(port, req.encode())


# --------------------------------------------------------------------------------------------
# A daemon without a remote

port = free_port()
d = Daemon(t, config=f"[users]\n{GUEST_UID} = guest\n\n[metrics]\nlisten = 127.0.0.1:{port}\n").start()


@t.case("notebookctl metrics: promtool accepts it, every family has HELP and TYPE")
def _():
        d.rpc("notebook.list", {"user_id": "alice"})
        text = scrape(d)
        check_promtool(text, "promtool check metrics accepts notebookctl metrics")
        samples, types = parse(text)
        helps = {ln.split(" ")[2] for ln in text.splitlines() if ln.startswith("# HELP ")}
        t.is_(helps, set(types), "a # HELP for every # TYPE")
        bad = [n for n, typ in types.items() if typ == "counter" and not n.endswith("_total")]
        t.is_(bad, [], "every counter family is named ..._total")
        t.ok(all(s[0] in types or s[0].rsplit("_", 1)[0] in types for s in samples),
             "every sample belongs to a family")
        for fam in ("notebookd_requests_total", "notebookd_request_errors_total", "notebookd_connections",
                    "notebookd_connections_accepted_total", "notebookd_commit_duration_seconds",
                    "notebookd_commit_batch_requests", "notebookd_start_time_seconds", "notebookd_notebooks"):
                t.ok(fam in types, f"family {fam}")
        t.ok("notebookd_sync_pushes_total" not in types, "no sync families without a remote")
        t.is_(value(samples, "notebookd_notebooks"), 2.0, "notebookd_notebooks: alice's blank and demo")
        t.ok(abs(value(samples, "notebookd_start_time_seconds") - time.time()) < 600, "start time is about now")
        rc, out, err = d.ctl("metrics", json_out=True)
        t.ok(rc == 0 and json.loads(out)["text"].startswith("# HELP"), "--json: the result object", out + err)


@t.case("counters move by exactly what the traffic made")
def _():
        before, _ = parse(scrape(d))
        with d.client() as c:
                for _ in range(5):
                        c.rpc("notebook.get", {"user_id": "alice", "notebook_id": "demo-alice"})
                for _ in range(3):
                        t.error_is(c.call("notebook.get", {"user_id": "alice", "notebook_id": "missing"}), -32010,
                                   "notebook.get of a missing notebook: -32010")
                t.error_is(c.call("no.such.method"), -32601, "an unknown method: -32601")
                c.send(b"{not json\n")
                t.error_is(c.read_reply(), -32700, "a line that is not JSON: -32700")
                c.rpc("cell.update", {"user_id": "alice", "notebook_id": "blank-alice",
                                      "cell_id": c.rpc("notebook.get", {"user_id": "alice", "notebook_id": "blank-alice"})
                                      ["notebook"]["cells"][0]["id"], "code": "x = 1"})
        after, types = parse(scrape(d))

        def delta(name, **labels):
                return value(after, name, **labels) - value(before, name, **labels)

        t.is_(delta("notebookd_requests_total", method="notebook.get"), 9.0,
              "notebook.get: +9 (5 found, 3 missing, 1 to find a cell)")
        t.is_(delta("notebookd_request_errors_total", method="notebook.get", code="-32010"), 3.0,
              "notebook.get errors -32010: +3")
        t.is_(delta("notebookd_requests_total", method="cell.update"), 1.0, "cell.update: +1")
        t.is_(delta("notebookd_requests_total", method="other"), 2.0, "other: +2 (unknown method, bad JSON)")
        t.is_(delta("notebookd_request_errors_total", method="other", code="-32601"), 1.0, "other -32601: +1")
        t.is_(delta("notebookd_request_errors_total", method="other", code="-32700"), 1.0, "other -32700: +1")
        t.is_(delta("notebookd_requests_total", method="daemon.metrics"), 1.0,
              "daemon.metrics: +1 (the first scrape; a scrape counts after its text is made)")
        t.is_(delta("notebookd_connections_accepted_total"), 2.0,
              "connections accepted: +2 (the client, the second notebookctl)")
        errs = sum(v for (n, _), v in after.items() if n == "notebookd_request_errors_total") - \
                sum(v for (n, _), v in before.items() if n == "notebookd_request_errors_total")
        t.is_(errs, 5.0, "no other error counted")
        reqs = sum(v for (n, _), v in after.items() if n == "notebookd_requests_total") - \
                sum(v for (n, _), v in before.items() if n == "notebookd_requests_total")
        t.is_(delta("notebookd_commit_batch_requests_sum"), reqs,
              "the group commits held every request counted, once")
        t.ok(delta("notebookd_commit_batch_requests_count") >= 1, "transactions were counted")
        t.is_(value(after, "notebookd_commit_duration_seconds_count"),
              value(after, "notebookd_commit_batch_requests_count"),
              "every transaction's latency was observed")
        check_histograms(after, types, "histograms: buckets cumulative, +Inf == _count, a _sum")


@t.case("daemon.metrics is for privileged peers")
def _():
        if os.getuid() != 0 or not SETPRIV:
                t.skip("an unprivileged peer is refused", "needs root and setpriv")
                return
        rc, out, err = run([SETPRIV, f"--reuid={GUEST_UID}", f"--regid={GUEST_UID}", "--clear-groups",
                            harness.NOTEBOOKCTL, "--socket", d.socket, "metrics"], timeout=tmo(20))
        t.is_(rc, 6, "a bound, unprivileged uid: exit 6 (access denied)")
        t.like(err, "privileged", "the message says why")


# --------------------------------------------------------------------------------------------
# HTTP

@t.case("HTTP GET /metrics: the classic text, promtool accepts it")
def _():
        status, headers, body = get(port)
        t.is_(status, 200, "200")
        t.is_(headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8", "Content-Type 0.0.4")
        t.is_(int(headers.get("content-length", -1)), len(body), "Content-Length is the body's")
        check_promtool(body.decode(), "promtool check metrics accepts the HTTP text")
        samples, types = parse(body.decode())
        t.ok("notebookd_requests_total" in types, "the same families")
        status, headers, body = get(port, method="HEAD")
        t.ok(status == 200 and body == b"" and int(headers["content-length"]) > 0, "HEAD: headers, no body")
        status, _, body = get(port, headers=["Accept: */*"])
        t.ok(status == 200 and b"# EOF" not in body, "Accept */*: the classic text")


OPENMETRICS_ACCEPT = ("Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                      "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def check_openmetrics(text):
        """The structure of an OpenMetrics text: # EOF last, counter families without _total and
        their samples with it, every sample in the family declared last, each family once."""
        t.ok(text.endswith("# EOF\n") and text.count("# EOF") == 1, "# EOF ends it, once", text[-200:])
        samples, types = parse(text)
        counters = [n for n, typ in types.items() if typ == "counter"]
        t.ok(counters and not [n for n in counters if n.endswith("_total")],
             "counter families are named without _total", counters)
        names = {s[0] for s in samples}
        t.ok(not names & set(counters) and all(n[:-6] in counters for n in names if n.endswith("_total")),
             "their samples with _total")
        t.ok(all(s[0] in types or s[0].rsplit("_", 1)[0] in types for s in samples),
             "every sample belongs to a family")
        les = {dict(k[1]).get("le") for k in samples if k[0].endswith("_bucket")}
        t.ok(all(le == "+Inf" or "." in le for le in les), "le values are floats", les)
        seen, order_ok, fam = set(), True, None
        for line in text.splitlines():
                if line.startswith("# TYPE "):
                        fam = line.split(" ")[2]
                        order_ok &= fam not in seen
                        seen.add(fam)
                elif not line.startswith("#"):
                        name = SAMPLE.match(line).group(1)
                        order_ok &= name == fam or (name.startswith(fam + "_") and
                                                    name[len(fam) + 1:] in ("total", "bucket", "sum", "count"))
        t.ok(order_ok, "each family once, its samples together")


@t.case("HTTP: OpenMetrics when the scraper asks for it")
def _():
        status, headers, body = get(port, headers=[OPENMETRICS_ACCEPT])
        t.is_(status, 200, "200")
        t.is_(headers.get("content-type"), "application/openmetrics-text; version=1.0.0; charset=utf-8",
              "Content-Type OpenMetrics 1.0.0")
        check_openmetrics(body.decode())


@t.case("HTTP errors: 404, 405, 400, oversized requests")
def _():
        t.is_(get(port, path="/")[0], 404, "GET / is 404")
        t.is_(get(port, path="/metrics/x")[0], 404, "GET /metrics/x is 404")
        status, headers, _ = get(port, method="POST")
        t.is_(status, 405, "POST /metrics is 405")
        t.is_(headers.get("allow"), "GET, HEAD", "with Allow: GET, HEAD")
        t.is_(get(port, method="DELETE")[0], 405, "DELETE /metrics is 405")
        t.is_(http_get(port, b"garbage\r\n\r\n")[0], 400, "a request line that is no request is 400")
        big = b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 20000 + b"\r\n\r\n"
        t.is_(http_get(port, big)[0], 431, "a request head over 8 KiB is 431")
        t.is_(get(port)[0], 200, "and the next scrape is served")


@t.case("HTTP: a client that sends nothing is dropped after a timeout; scrapes go on meanwhile")
def _():
        idle = socket.create_connection(("127.0.0.1", port), timeout=tmo(15))
        idle.sendall(b"GET /metr")  # half a request line, then nothing
        start = time.monotonic()
        status, _, body = get(port)
        t.ok(status == 200 and time.monotonic() - start < 2, "another scrape is served at once")
        check = d.serving()
        t.ok(check[0], "the socket's clients are served meanwhile", check[1])
        try:
                got = idle.recv(100)
        except (ConnectionResetError, socket.timeout) as e:
                got = e
        waited = time.monotonic() - start
        t.ok(got == b"" and 3 < waited < tmo(12), f"the idle client is closed after about 5 s ({waited:.1f} s)",
             repr(got))
        idle.close()


@t.case("HTTP: connections beyond 8 are closed at once")
def _():
        held = [socket.create_connection(("127.0.0.1", port), timeout=tmo(10)) for _ in range(8)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", port), timeout=tmo(10))
        try:
                got = extra.recv(100)
        except ConnectionResetError:
                got = b""
        t.is_(got, b"", "the 9th connection is closed without an answer")
        extra.close()
        for s in held:
                s.close()
        time.sleep(0.2)
        t.is_(get(port)[0], 200, "once they are closed, a scrape is served")


@t.case("a bad [metrics] listen is a configuration error naming it")
def _():
        base = harness.make_tempdir()
        for bad in ("localhost:9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:9464", "[::1]9464",
                    "127.0.0.1:9464x", "300.0.0.1:9464"):
                path = os.path.join(base, "bad.conf")
                with open(path, "w") as f:
                        f.write(f"[metrics]\nlisten = {bad}\n")
                rc, out, err = run([harness.NOTEBOOKD, "--check-config", "--config", path], timeout=tmo(10))
                t.ok(rc != 0 and f"{path}:2: listen" in err and bad in err, f"listen = {bad}: refused, named",
                     f"rc {rc}: {out}{err}")
        with open(path, "w") as f:
                f.write("[metrics]\nlisten = [::1]:9464\n")
        rc, out, err = run([harness.NOTEBOOKD, "--check-config", "--config", path], timeout=tmo(10))
        t.is_(rc, 0, "listen = [::1]:9464 is fine")
        with open(path, "w") as f:
                f.write("[metrics]\nport = 9464\n")
        rc, out, err = run([harness.NOTEBOOKD, "--check-config", "--config", path], timeout=tmo(10))
        t.ok(rc != 0 and "unknown key 'port' in section [metrics]" in err, "an unknown key in [metrics]", err)
        # A port in use: the daemon does not start, and says why.
        busy = Daemon(t, config=f"[metrics]\nlisten = 127.0.0.1:{port}\n")
        try:
                busy.start(timeout=tmo(5))
                started = True
        except RuntimeError:
                started = False
        t.ok(not started and "[metrics] listen" in busy.stderr_text(), "a port in use: no start, and why",
             busy.stderr_tail())


t.is_(d.stop(), 0, "the daemon stops cleanly (under ASan: nothing leaked)")

# --------------------------------------------------------------------------------------------
# Sync to dynalite, behind the fault proxy

available, why = Dynalite.available()
if not available:
        t.skip("sync metrics", why)
        t.done()
os.environ.update({"AWS_ACCESS_KEY_ID": "AKIDMETRICSTEST", "AWS_SECRET_ACCESS_KEY": "metrics-test-secret",
                   "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
                   "HOME": harness.make_tempdir("nbhome-")})
for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "XDG_CONFIG_HOME"):
        os.environ.pop(var, None)

dyn = Dynalite(t, memory=True).start()
proxy = FaultProxy(dyn.port, t).start()
rc, out, err = ctl("table", "create", "--endpoint", dyn.endpoint)
if rc != 0:
        t.ok(False, "table create", out + err)
        t.done()

sport = free_port()
s = Daemon(t, config=(f"[remote]\nendpoint = {proxy.endpoint}\ndebounce_ms = 50\nmax_delay_ms = 300\n"
                      f"pull_interval_s = 3600\nconnect_timeout_ms = 500\nrequest_timeout_ms = 3000\n\n"
                      f"[metrics]\nlisten = 127.0.0.1:{sport}\n")).start()


def status():
        return s.rpc("daemon.status")["sync"]


def settled():
        st = status()
        return st["pending"] == 0 and st["in_flight"] == 0 and st["state"] == "online"


def wait_settled(desc, timeout=30):
        return t.ok(harness.wait_for(settled, tmo(timeout), 0.1), desc, status())


def http_scrape():
        status_, _, body = get(sport)
        if status_ != 200:
                raise AssertionError(f"HTTP scrape: {status_}")
        return parse(body.decode())


USER = "mia"


@t.case("sync: pushes, pulls, DynamoDB latency and capacity")
def _():
        s.rpc("notebook.list", {"user_id": USER})
        wait_settled("the provisioned notebooks are pushed")
        before, _ = http_scrape()
        s.rpc("notebook.create", {"user_id": USER, "notebook_id": "m1", "name": "one"})
        wait_settled("a new notebook is pushed")
        after, types = http_scrape()
        t.is_(value(after, "notebookd_sync_pushes_total", outcome="success")
              - value(before, "notebookd_sync_pushes_total", outcome="success"), 1.0, "pushes success: +1")
        t.is_(value(after, "notebookd_sync_pushes_total", outcome="success"), float(status()["pushes"]),
              "the same count as daemon.status's pushes")
        pushes = sum(series(after, "notebookd_sync_pushes_total").values())
        t.is_(value(after, "notebookd_dynamodb_request_duration_seconds_count", operation="PutItem"), pushes,
              "one PutItem exchange per push")
        t.ok(value(after, "notebookd_dynamodb_request_duration_seconds_count", operation="Query") >= 1,
             "the pull at the start made Query requests")
        t.ok(value(after, "notebookd_dynamodb_consumed_capacity_units_total", operation="PutItem") >= pushes > 0,
             "PutItem consumed capacity, as DynamoDB reported it",
             series(after, "notebookd_dynamodb_consumed_capacity_units_total"))
        t.is_(value(after, "notebookd_sync_pending_notebooks"), 0.0, "nothing pending")
        t.is_(value(after, "notebookd_sync_online"), 1.0, "online")
        check_histograms(after, types, "histograms: buckets cumulative, +Inf == _count, a _sum")
        check_promtool(get(sport)[2].decode(), "promtool check metrics accepts it with sync families")
        check_openmetrics(get(sport, headers=[OPENMETRICS_ACCEPT])[2].decode())

        before = after
        s.rpc("sync.pull")
        t.ok(harness.wait_for(lambda: value(http_scrape()[0], "notebookd_sync_pulls_total", outcome="complete")
                              > value(before, "notebookd_sync_pulls_total", outcome="complete"), tmo(20), 0.1),
             "sync.pull: pulls complete +1")
        after, _ = http_scrape()
        t.is_(value(after, "notebookd_sync_pulls_total", outcome="complete")
              - value(before, "notebookd_sync_pulls_total", outcome="complete"), 1.0, "exactly one (one user)")
        t.is_(value(after, "notebookd_sync_pulls_total", outcome="failed"), 0.0, "none failed")


@t.case("sync: a 500 is retried, counted as a retryable push and a request retry")
def _():
        before, _ = http_scrape()
        proxy.set_mode("error", target="PutItem", count=1)
        s.rpc("notebook.update", {"user_id": USER, "notebook_id": "m1", "name": "one again"})
        wait_settled("the edit is pushed after the error")
        after, _ = http_scrape()
        t.is_(proxy.applied("error", "PutItem"), 1, "the proxy answered one PutItem with 500")

        def delta(name, **labels):
                return value(after, name, **labels) - value(before, name, **labels)

        t.is_(delta("notebookd_sync_pushes_total", outcome="retryable_error"), 1.0, "pushes retryable_error: +1")
        t.is_(delta("notebookd_sync_pushes_total", outcome="success"), 1.0, "pushes success: +1")
        t.is_(delta("notebookd_sync_retries_total", kind="request"), 1.0, "retries by the request: +1")
        t.is_(delta("notebookd_dynamodb_request_duration_seconds_count", operation="PutItem"), 2.0,
              "two PutItem exchanges")
        t.is_(delta("notebookd_dynamodb_requests_total", operation="PutItem", outcome="retryable_error"), 1.0,
              "DynamoDB requests: PutItem retryable_error +1")
        t.is_(delta("notebookd_dynamodb_requests_total", operation="PutItem", outcome="ok"), 1.0,
              "DynamoDB requests: PutItem ok +1")
        proxy.clear()


@t.case("sync: pending while DynamoDB fails, then pushed")
def _():
        proxy.set_mode("error", target="PutItem")
        s.rpc("notebook.update", {"user_id": USER, "notebook_id": "m1", "name": "pending"})
        t.ok(harness.wait_for(lambda: value(http_scrape()[0], "notebookd_sync_pending_notebooks") == 1.0
                              and proxy.applied("error", "PutItem") >= 1, tmo(10), 0.05),
             "pending notebooks: 1 while its pushes fail")
        proxy.clear()
        s.rpc("sync.pull")  # nothing to do with the push; the loop-level backoff ends by itself
        wait_settled("pushed once DynamoDB answers", timeout=60)
        t.is_(value(http_scrape()[0], "notebookd_sync_pending_notebooks"), 0.0, "pending notebooks: 0")


@t.case("sync: a conflict with another device's write is counted, merged, and its cell conflict too")
def _():
        nb = s.rpc("notebook.get", {"user_id": USER, "notebook_id": "m1"})["notebook"]
        cell = s.rpc("cell.create", {"user_id": USER, "notebook_id": "m1", "code": "base"})["cell"]["id"]
        wait_settled("the cell is pushed")
        st, item = dyn.call("GetItem", {"TableName": "notebooks", "ConsistentRead": True,
                                         "Key": {"user_id": {"S": USER}, "notebook_id": {"S": "m1"}}})
        cells = item["Item"]["cells"]["L"]
        idx = next(i for i, c in enumerate(cells) if c["M"]["id"]["S"] == cell)
        rev = int(item["Item"]["revision"]["N"])
        # Another device: its edit of the same cell, one revision on, with a write id of its own.
        st, res = dyn.call("UpdateItem", {
                "TableName": "notebooks", "Key": {"user_id": {"S": USER}, "notebook_id": {"S": "m1"}},
                "UpdateExpression": f"SET #r = :next, #c[{idx}].#code = :code, sync_id = :sid",
                "ConditionExpression": "#r = :rev",
                "ExpressionAttributeNames": {"#r": "revision", "#c": "cells", "#code": "code"},
                "ExpressionAttributeValues": {":next": {"N": str(rev + 1)}, ":rev": {"N": str(rev)},
                                              ":code": {"S": "theirs"},
                                              ":sid": {"S": "00000000-0000-4000-8000-00000000beef"}}})
        t.ok(st == 200, "another device's write is in the table", res)
        before, _ = http_scrape()
        s.rpc("cell.update", {"user_id": USER, "notebook_id": "m1", "cell_id": cell, "code": "ours"})
        wait_settled("the merge is pushed", timeout=30)
        after, _ = http_scrape()

        def delta(name, **labels):
                return value(after, name, **labels) - value(before, name, **labels)

        t.is_(delta("notebookd_sync_pushes_total", outcome="conflict"), 1.0, "pushes conflict: +1")
        t.is_(delta("notebookd_dynamodb_requests_total", operation="PutItem", outcome="conditional_check_failed"),
              1.0, "DynamoDB requests: PutItem conditional_check_failed +1")
        t.is_(delta("notebookd_sync_merges_total"), 1.0, "merges: +1")
        t.is_(delta("notebookd_sync_conflicts_total"), 1.0, "conflicts: +1 (the cell both changed)")
        t.ok(delta("notebookd_dynamodb_request_duration_seconds_count", operation="GetItem") >= 1,
             "the table's version was read (GetItem)")
        t.is_(len(s.rpc("sync.conflicts", {"user_id": USER, "notebook_id": "m1"})["conflicts"]), 1,
              "sync.conflicts lists it")
        del nb


@t.case("sync: a failed pull is counted")
def _():
        before, _ = http_scrape()
        proxy.set_mode("error", target="Query", count=1)
        s.rpc("sync.pull")
        ok = harness.wait_for(lambda: value(http_scrape()[0], "notebookd_sync_pulls_total", outcome="failed")
                              > value(before, "notebookd_sync_pulls_total", outcome="failed"), tmo(20), 0.1)
        t.ok(ok, "pulls failed: +1")
        proxy.clear()


t.is_(s.stop(), 0, "the syncing daemon stops cleanly (under ASan: nothing leaked)")
t.done()
