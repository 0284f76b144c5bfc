# SPDX-License-Identifier: MIT
"""Bad input: each gets its documented error (or a clean close), the connection survives where
doc/protocol.md says so, other clients still get correct answers, nothing stored changes."""

import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TAP, Daemon, check_serving, fd_limit, req, short, tmo, wait_for  # noqa: E402

t = TAP()
LIMIT = 65536
d = Daemon(t, config=f"[daemon]\nmax_line_bytes = {LIMIT}\n")
d.start()

U = "bad"
KEEP = {"user_id": U, "notebook_id": "keep"}
with d.client() as c0:
        c0.rpc("notebook.create", dict(KEEP, name="keep", cells=[
                {"id": "k1", "code": "a = 1", "writes": ["a"]},
                {"id": "k2", "code": "b = a", "reads": ["a"], "writes": ["b"],
                 "outputs": [{"mime_type": "text/plain", "data": "1", "metadata": {}}]}]))
        SNAPSHOT = c0.rpc("notebook.get", KEEP)["notebook"]


dd = Daemon(t)  # default limits
dd.start()
with dd.client() as c0:
        c0.rpc("notebook.create", {"user_id": U, "notebook_id": "keep", "name": "keep",
                                   "cells": [{"id": "k1", "code": "a = 1"}]})
        DKEEP = dict(KEEP)
        DSNAP = c0.rpc("notebook.get", DKEEP)["notebook"]


def bad_line_default(desc, line, code, param=None):
        with dd.client() as cl:
                cl.send(line + b"\n")
                try:
                        r = cl.read_reply(timeout=tmo(30))
                except Exception as e:
                        t.ok(False, f"{desc}: {code}", f"{type(e).__name__}: {e}")
                        return None
                t.error_is(r, code, f"{desc}: {code}", param)
                rr = cl.call("notebook.get", DKEEP)
                t.ok(rr.get("result", {}).get("notebook") == DSNAP, f"{desc}: connection kept, data unchanged", short(rr))
        return r



def unchanged(desc):
        """Another connection gets correct answers and the stored notebook is as before."""
        try:
                with d.client() as oc:
                        nb = oc.rpc("notebook.get", KEEP)["notebook"]
                        st = oc.rpc("daemon.status")
                t.ok(nb == SNAPSHOT and st.get("pid") == d.proc.pid, f"{desc}: another connection served, data unchanged",
                     f"got {short(nb)}")
        except Exception as e:
                t.ok(False, f"{desc}: another connection served, data unchanged", f"{type(e).__name__}: {e}\n"
                     + d.diagnostics())


def same_conn(cl, desc):
        """The connection that sent the bad input still answers correctly."""
        try:
                r = cl.call("notebook.get", KEEP)
                t.ok(r.get("result", {}).get("notebook") == SNAPSHOT, f"{desc}: same connection still answered", short(r))
        except Exception as e:
                t.ok(False, f"{desc}: same connection still answered", f"{type(e).__name__}: {e}")


def bad_line(desc, line, code, param=None, check_id=None, data=None):
        """Sends one raw line on a fresh connection, checks the error, the connection, the daemon."""
        with d.client() as cl:
                cl.send(line + b"\n")
                try:
                        r = cl.read_reply()
                except Exception as e:
                        t.ok(False, f"{desc}: {code}", f"{type(e).__name__}: {e}")
                        unchanged(desc)
                        return None
                t.error_is(r, code, f"{desc}: {code}", param)
                t.ok(isinstance((r.get("error") or {}).get("message"), str) and r["error"]["message"],
                     f"{desc}: has a message", short(r))
                if check_id is not None:
                        t.ok("id" in r and r["id"] == check_id[0], f"{desc}: reply id {check_id[0]!r}", short(r))
                if data:
                        got = (r.get("error") or {}).get("data") or {}
                        t.is_({k: got.get(k) for k in data}, data, f"{desc}: error data")
                same_conn(cl, desc)
        unchanged(desc)
        return r


def call_raw(params, method="cell.create"):
        return json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).encode()


@t.case("framing: blank lines and CRLF")
def _():
        with d.client() as cl:
                cl.send(b"\n\r\n\n" + json.dumps(req("daemon.status", None, 1)).encode() + b"\r\n")
                r = cl.read_reply()
                t.ok(r.get("id") == 1 and "result" in r, "blank lines ignored, CRLF accepted", r)
                try:
                        extra = cl.readline(timeout=0.3)
                except TimeoutError:
                        extra = None
                t.is_(extra, None, "no reply to blank lines")


@t.case("too many JSON values in one request: -32013, before parsing")
def _():
        # 1.1 million small values in 2.2 MB: parsing them would take some 70 MB of nodes.
        line = b'{"jsonrpc":"2.0","id":1,"method":"nope","params":{"a":[' + b"0," * 1100000 + b'0]}}'
        r = bad_line_default("1.1 million values", line, -32013)
        t.ok(r is not None and r.get("error", {}).get("data", {}).get("limit") == 1000000, "data.limit says 1000000",
             short(r))


@t.case("invalid JSON: -32700")
def _():
        for i, line in enumerate([b"{", b"hello", b'{"jsonrpc":"2.0","id":1,"method":"daemon.status",}',
                                  b'{"jsonrpc":"2.0","id":1,"method":"daemon.status"', b'{"a":tru}', b"'x'",
                                  b'{"jsonrpc":"2.0","id":1,"method":"daemon.status"} {"x":1}']):
                bad_line(f"invalid JSON, case {i} {short(line, 40)}", line, -32700, check_id=(None,))


@t.case("invalid UTF-8 and NUL: -32002")
def _():
        base = b'{"jsonrpc":"2.0","id":2,"method":"notebook.get","params":{"user_id":"bad","notebook_id":"%s"}}'
        for name, bad in (("lone continuation byte", b"\x80"), ("truncated sequence", b"\xc3("),
                          ("0xff", b"\xff"), ("overlong /", b"\xc0\xaf"), ("UTF-16 surrogate", b"\xed\xa0\x80"),
                          ("above U+10FFFF", b"\xf4\x90\x80\x80")):
                bad_line(f"invalid UTF-8 ({name})", base % (b"ke" + bad + b"ep"), -32002)
        bad_line("invalid UTF-8 outside strings", b'{"jsonrpc":"2.0","id":2,"method":"daemon.status"}\xff', -32002)
        bad_line("\\u0000 escape", base % b"ke\\u0000ep", -32002)
        bad_line("\\u0000 escape in a key", b'{"jsonrpc":"2.0","id":2,"method":"daemon.status","a\\u0000":1}', -32002)
        # A raw NUL byte is valid UTF-8 but not valid JSON inside a line: either code is fine.
        with d.client() as cl:
                cl.send(base % b"ke\x00ep" + b"\n")
                r = cl.read_reply()
                t.ok((r.get("error") or {}).get("code") in (-32002, -32700), "raw NUL byte: -32002 or -32700", r)
                same_conn(cl, "raw NUL byte")
        # Valid multi-byte UTF-8 is fine.
        with d.client() as cl:
                r = cl.call("notebook.get", {"user_id": U, "notebook_id": "k\u00e9\u4e2d\U0001F600"})
                t.error_is(r, -32010, "valid multi-byte UTF-8 id: ordinary not-found")


@t.case("nesting depth: 64 fine, 65 is -32001")
def _():
        def nested(n_arrays):
                # Depth = outer object (1) + params (2) + arrays.
                return (b'{"jsonrpc":"2.0","id":3,"method":"no.such","params":{"x":' + b"[" * n_arrays + b"]" * n_arrays
                        + b"}}")
        with d.client() as cl:
                cl.send(nested(62) + b"\n")
                r = cl.read_reply()
                t.error_is(r, -32601, "depth 64: parsed (method not found)")
        bad_line("depth 65", nested(63), -32001, data={"limit": 64})
        bad_line("depth 30000 (no recursion blow-up)", b"[" * 30000 + b"]" * 30000, -32001)
        bad_line("depth 65 unterminated", b"{" + b'"a":{' * 70, -32001)


@t.case("invalid requests: -32600")
def _():
        for desc, line in (
                ("batch array", b'[{"jsonrpc":"2.0","id":1,"method":"daemon.status"}]'),
                ("empty array", b"[]"),
                ("number", b"42"),
                ("string", b'"daemon.status"'),
                ("null", b"null"),
                ("jsonrpc 1.0", b'{"jsonrpc":"1.0","id":1,"method":"daemon.status"}'),
                ("jsonrpc missing", b'{"id":1,"method":"daemon.status"}'),
                ("jsonrpc number", b'{"jsonrpc":2.0,"id":1,"method":"daemon.status"}'),
                ("method missing", b'{"jsonrpc":"2.0","id":1}'),
                ("method number", b'{"jsonrpc":"2.0","id":1,"method":5}'),
                ("id object", b'{"jsonrpc":"2.0","id":{},"method":"daemon.status"}'),
                ("id array", b'{"jsonrpc":"2.0","id":[1],"method":"daemon.status"}'),
                ("id fraction", b'{"jsonrpc":"2.0","id":1.5,"method":"daemon.status"}'),
                ("id boolean", b'{"jsonrpc":"2.0","id":true,"method":"daemon.status"}'),
                # Past any integer's range (and infinite, as 1e999 parses): refused, not converted.
                ("id 1e19", b'{"jsonrpc":"2.0","id":1e19,"method":"daemon.status"}'),
                ("id -1e19", b'{"jsonrpc":"2.0","id":-1e19,"method":"daemon.status"}'),
                ("id 1e999", b'{"jsonrpc":"2.0","id":1e999,"method":"daemon.status"}'),
                # A key given twice: readers disagree on which one counts, so neither does.
                ("method twice", b'{"jsonrpc":"2.0","id":1,"method":"daemon.status","method":"notebook.list"}'),
                ("user_id twice", b'{"jsonrpc":"2.0","id":1,"method":"notebook.list",'
                                  b'"params":{"user_id":"a","user_id":"b"}}'),
                ("a cell id twice", b'{"jsonrpc":"2.0","id":1,"method":"notebook.create","params":{"user_id":"dup",'
                                    b'"notebook_id":"dup","cells":[{"id":"x","id":"y"}]}}'),
                ("a repeat among 21 keys", b'{"jsonrpc":"2.0","id":1,"method":"notebook.create","params":{"user_id":"dup",'
                                           b'"notebook_id":"dup","cells":[{"outputs":[{"mime_type":"application/json",'
                                           b'"data":{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18,"k19":19,"k7":0}}]}]}}'),
                ("params array", b'{"jsonrpc":"2.0","id":1,"method":"notebook.list","params":["bad"]}'),
                ("params string", b'{"jsonrpc":"2.0","id":1,"method":"notebook.list","params":"bad"}'),
        ):
                bad_line(f"invalid request ({desc})", line, -32600)
        # Without an id the request cannot be answered with its id, but it is no valid notification
        # either: -32600 with a null id, and the connection goes on. A valid notification of an
        # unknown method gets nothing, as any notification.
        for desc, bad in (("jsonrpc 1.0", b'{"jsonrpc":"1.0","method":"daemon.status"}'),
                          ("method number", b'{"jsonrpc":"2.0","method":5}'),
                          ("params array", b'{"jsonrpc":"2.0","method":"notebook.list","params":[]}'),
                          ("unknown method", b'{"jsonrpc":"2.0","method":"no.such"}')):
                with d.client() as cl:
                        cl.send(bad + b"\n" + json.dumps(req("daemon.status", None, 9)).encode() + b"\n")
                        r = cl.read_reply()
                        if desc == "unknown method":
                                t.is_(r.get("id"), 9, "a notification of an unknown method: no reply")
                                continue
                        t.error_is(r, -32600, f"invalid notification ({desc}): -32600")
                        t.is_(r.get("id", "missing"), None, f"invalid notification ({desc}): id null")
                        r = cl.read_reply()
                        t.ok(r.get("id") == 9 and "result" in r, "request after an invalid notification answered", r)


@t.case("integer ids beyond 2^53 - 1: -32600 naming the range")
def _():
        rng = "between -9007199254740991 and 9007199254740991"
        for raw in (b"9007199254740992", b"-9007199254740992", b"9007199254740993", b"1e19", b"-1e300"):
                r = bad_line(f"id {raw.decode()}", b'{"jsonrpc":"2.0","id":' + raw + b',"method":"daemon.status"}',
                             -32600, check_id=(None,))
                msg = ((r or {}).get("error") or {}).get("message") or ""
                t.ok(rng in msg, f"id {raw.decode()}: the message gives the range", msg)
        for raw in (b"9007199254740991", b"-9007199254740991"):
                with d.client() as cl:
                        cl.send(b'{"jsonrpc":"2.0","id":' + raw + b',"method":"daemon.status"}\n')
                        r = cl.read_reply()
                        t.ok(r.get("id") == int(raw) and "result" in r, f"id {raw.decode()}: at the limit, answered",
                             short(r))
        r = bad_line("id 1.5", b'{"jsonrpc":"2.0","id":1.5,"method":"daemon.status"}', -32600)
        msg = ((r or {}).get("error") or {}).get("message") or ""
        t.ok("string, an integer or null" in msg and rng not in msg, "id 1.5: not an integer, says so", msg)


@t.case("unknown method: -32601")
def _():
        bad_line("unknown method", b'{"jsonrpc":"2.0","id":"m","method":"notebook.frobnicate"}', -32601, check_id=("m",))
        bad_line("empty method", b'{"jsonrpc":"2.0","id":"m","method":""}', -32601, check_id=("m",))
        bad_line("method with params", b'{"jsonrpc":"2.0","id":4,"method":"rpc.discover","params":{}}', -32601)


@t.case("invalid params: -32602")
def _():
        cases = [
                ("notebook.get without notebook_id", "notebook.get", {"user_id": U}, "notebook_id"),
                ("unknown param", "notebook.get", dict(KEEP, extra=1), "extra"),
                ("notebook_id wrong type", "notebook.get", {"user_id": U, "notebook_id": 5}, "notebook_id"),
                ("notebook_id null", "notebook.get", {"user_id": U, "notebook_id": None}, "notebook_id"),
                ("empty notebook_id", "notebook.get", {"user_id": U, "notebook_id": ""}, "notebook_id"),
                ("control character in notebook_id", "notebook.get", {"user_id": U, "notebook_id": "a\tb"}, "notebook_id"),
                ("user_id wrong type", "notebook.list", {"user_id": 1}, "user_id"),
                ("empty user_id", "notebook.list", {"user_id": ""}, "user_id"),
                ("user_id with /", "notebook.list", {"user_id": "a/b"}, "user_id"),
                ("user_id with control character", "notebook.list", {"user_id": "a\nb"}, "user_id"),
                ("C1 control in notebook_id", "notebook.get", {"user_id": U, "notebook_id": "a\u0085b"}, "notebook_id"),
                ("line separator in notebook_id", "notebook.get", {"user_id": U, "notebook_id": "a\u2028b"}, "notebook_id"),
                ("bidi override in notebook_id", "notebook.get", {"user_id": U, "notebook_id": "a\u202eb"}, "notebook_id"),
                ("bidi isolate in user_id", "notebook.list", {"user_id": "a\u2067b"}, "user_id"),
                ("right-to-left mark in cell_id", "cell.create", dict(KEEP, cell_id="c\u200f"), "cell_id"),
                ("daemon.status with a param", "daemon.status", {"x": 1}, "x"),
                ("cell type enum", "cell.create", dict(KEEP, type="ruby"), "type"),
                ("cell status enum", "cell.create", dict(KEEP, status="finished"), "status"),
                ("cell code wrong type", "cell.create", dict(KEEP, code=["x"]), "code"),
                ("cell position wrong type", "cell.create", dict(KEEP, position="1"), "position"),
                ("cell position fraction", "cell.create", dict(KEEP, position=0.5), "position"),
                ("cell unknown param", "cell.create", dict(KEEP, colour="red"), "colour"),
                ("outputs item not an object", "cell.create", dict(KEEP, outputs=["x"]), "outputs"),
                ("output metadata not an object", "cell.create",
                 dict(KEEP, outputs=[{"mime_type": "a/b", "data": "x", "metadata": []}]), "outputs"),
                ("output data a number", "cell.create",
                 dict(KEEP, outputs=[{"mime_type": "a/b", "data": 5, "metadata": {}}]), "outputs"),
                ("empty mime_type", "cell.create", dict(KEEP, outputs=[{"mime_type": "", "data": "", "metadata": {}}]),
                 "outputs"),
                ("a number a double cannot keep digit for digit", "cell.create",
                 dict(KEEP, outputs=[{"mime_type": "application/json", "data": {"v": 12345678901234567890},
                                      "metadata": {}}]), "outputs"),
                ("a 42-digit integer", "cell.create",
                 dict(KEEP, outputs=[{"mime_type": "application/json", "data": [10 ** 41 + 7], "metadata": {}}]),
                 "outputs"),
                ("1e300, beyond DynamoDB's range", "cell.create",
                 dict(KEEP, outputs=[{"mime_type": "application/json", "data": {"v": 1e300}, "metadata": {}}]),
                 "outputs"),
                ("1e-200, beyond DynamoDB's range", "cell.create",
                 dict(KEEP, outputs=[{"mime_type": "a/b", "data": "x", "metadata": {"w": 1e-200}}]), "outputs"),
                ("writes not a list", "cell.create", dict(KEEP, writes="x"), "writes"),
                ("empty variable name", "cell.create", dict(KEEP, reads=[""]), "reads"),
                ("ttl wrong type", "notebook.update", dict(KEEP, ttl="soon"), "ttl"),
                ("name wrong type", "notebook.update", dict(KEEP, name=5), "name"),
                ("expected_revision wrong type", "notebook.update", dict(KEEP, name="x", expected_revision="1"),
                 "expected_revision"),
                ("cells not a list", "notebook.create", {"user_id": U, "notebook_id": "n2", "cells": {}}, "cells"),
                ("cell in cells with bad type", "notebook.create",
                 {"user_id": U, "notebook_id": "n2", "cells": [{"type": "ruby"}]}, None),
                ("cell in cells with unknown key", "notebook.create",
                 {"user_id": U, "notebook_id": "n2", "cells": [{"colour": 1}]}, None),
        ]
        for desc, method, params, param in cases:
                bad_line(desc, call_raw(params, method), -32602, param)
        with d.client() as cl:
                t.error_is(cl.call("notebook.get", {"user_id": U, "notebook_id": "n2"}), -32010, "refused create stored nothing")


def big(n):
        return "x" * n


@t.case("values over their limits: -32013")
def _():
        K = 1024
        cases = [
                ("notebook_id 129 bytes", "notebook.get", {"user_id": U, "notebook_id": big(129)}, "notebook_id", 128),
                ("cell_id 129 bytes", "cell.create", dict(KEEP, cell_id=big(129)), "cell_id", 128),
                ("user_id 65 bytes", "notebook.list", {"user_id": big(65)}, "user_id", 64),
                ("name 1025 bytes", "notebook.update", dict(KEEP, name=big(1025)), "name", 1024),
                ("name 1025 bytes (multi-byte)", "notebook.update", dict(KEEP, name="\u00e9" * 512 + "x"), "name", 1024),
                ("db_conn_string 4097 bytes", "notebook.update", dict(KEEP, db_conn_string=big(4097)), "db_conn_string",
                 4096),
                ("code 1 MiB + 1", "cell.create", dict(KEEP, code=big(K * K + 1)), "code", K * K),
                ("stdout 1 MiB + 1", "cell.update", dict(KEEP, cell_id="k1", stdout=big(K * K + 1)), "stdout", K * K),
                ("error 64 KiB + 1", "cell.update", dict(KEEP, cell_id="k1", error=big(64 * K + 1)), "error", 64 * K),
                ("65 outputs", "cell.update",
                 dict(KEEP, cell_id="k1", outputs=[{"mime_type": "t/p", "data": "", "metadata": {}}] * 65), "outputs", 64),
                ("mime_type 256 bytes", "cell.update",
                 dict(KEEP, cell_id="k1", outputs=[{"mime_type": big(256), "data": "", "metadata": {}}]), "outputs", None),
                ("1025 reads", "cell.update", dict(KEEP, cell_id="k1", reads=[f"v{i}" for i in range(1025)]), "reads", 1024),
                ("variable name 257 bytes", "cell.update", dict(KEEP, cell_id="k1", writes=[big(257)]), "writes", None),
        ]
        # On the daemon with the default line limit: several of these lines are longer than 64 KiB.
        for desc, method, params, param, limit in cases:
                line = call_raw(params, method)
                r = bad_line_default(desc, line, -32013, param)
                if r is not None and limit is not None:
                        got = ((r.get("error") or {}).get("data") or {}).get("limit")
                        t.is_(got, limit, f"{desc}: data.limit")
        # Exactly at the limits is fine.
        with dd.client() as cl:
                nb = cl.rpc("notebook.create", {"user_id": U, "notebook_id": big(128), "name": "\u00e9" * 512,
                                                "db_conn_string": big(4096),
                                                "cells": [{"id": big(128), "code": big(K * K), "stdout": big(K * K),
                                                           "error": big(64 * K), "reads": [big(256)] + [f"r{i}" for i in range(1023)],
                                                           "outputs": [{"mime_type": big(255), "data": "", "metadata": {}}] * 64}]})
                t.is_(len(nb["notebook"]["cells"][0]["code"]), K * K, "values exactly at their limits accepted")
                t.is_(len(cl.rpc("notebook.list", {"user_id": big(64)})["notebooks"]), 2, "user_id of 64 bytes accepted")
        # An output of more than 8 MiB serialized (each piece under the line limit of this daemon).
        with dd.client() as cl:
                outs = [{"mime_type": "t/p", "data": big(K * K), "metadata": {}} for _ in range(9)]
                r = cl.call("cell.update", dict(DKEEP, cell_id="k1", outputs=outs))
                t.error_is(r, -32013, "outputs over 8 MiB serialized: -32013", "outputs")


@t.case("too many cells: -32013")
def _():
        with d.client() as cl:
                cl.rpc("notebook.create", {"user_id": U, "notebook_id": "many"})
                t0 = time.monotonic()
                reps = cl.pipeline([req("cell.create", {"user_id": U, "notebook_id": "many", "code": f"{i}"}, i)
                                    for i in range(1000)])
                t.ok(all("result" in r for r in reps), "1000 pipelined cell.create succeed",
                     [r for r in reps if "result" not in r][:2])
                t.diag(f"1000 pipelined cell.create took {time.monotonic() - t0:.2f}s")
                before = cl.rpc("notebook.get", {"user_id": U, "notebook_id": "many"})["notebook"]
                t.is_((len(before["cells"]), before["revision"]), (1000, 1001), "1000 cells, revision 1001")
                r = cl.call("cell.create", {"user_id": U, "notebook_id": "many", "code": "one too many"})
                t.error_is(r, -32013, "1001st cell: -32013")
                t.is_(((r.get("error") or {}).get("data") or {}).get("limit"), 1000, "1001st cell: data.limit 1000")
                after = cl.rpc("notebook.get", {"user_id": U, "notebook_id": "many"})["notebook"]
                t.is_(after, before, "1001st cell: nothing changed")
                cells = [{"code": ""}] * 1001
                r = cl.call("notebook.create", {"user_id": U, "notebook_id": "many2", "cells": cells})
                t.error_is(r, -32013, "notebook.create with 1001 cells: -32013", "cells")
                t.error_is(cl.call("notebook.get", {"user_id": U, "notebook_id": "many2"}), -32010, "... and nothing created")
                r = cl.rpc("notebook.create", {"user_id": U, "notebook_id": "many3", "cells": [{"code": ""}] * 1000})
                t.is_(len(r["notebook"]["cells"]), 1000, "notebook.create with 1000 cells fine")
        unchanged("too many cells")


@t.case(f"line over the limit ({LIMIT}): -32000, next line answered")
def _():
        pad = b'{"jsonrpc":"2.0","id":"big","method":"no.such","params":{"p":"'
        tail = b'"}}'
        exact = pad + b"x" * (LIMIT - len(pad) - len(tail)) + tail
        assert len(exact) == LIMIT
        with d.client() as cl:
                cl.send(exact + b"\n")
                r = cl.read_reply()
                t.error_is(r, -32601, "line of exactly the limit is parsed")
                over = pad + b"x" * (LIMIT + 1 - len(pad) - len(tail)) + tail
                cl.send(over + b"\n" + json.dumps(req("notebook.get", KEEP, "next")).encode() + b"\n")
                r = cl.read_reply()
                t.error_is(r, -32000, "line one byte over the limit: -32000")
                t.is_(((r.get("error") or {}).get("data") or {}).get("limit"), LIMIT, "-32000: data.limit")
                r = cl.read_reply()
                t.ok(r.get("id") == "next" and r.get("result", {}).get("notebook") == SNAPSHOT,
                     "next line on the same connection answered", short(r))
                # A mutation hidden in the skipped part must not be executed.
                hidden = b"y" * (LIMIT + 10) + b"\n"
                mut = json.dumps(req("notebook.update", dict(KEEP, name="hacked"), "h")).encode()
                cl.send(b"z" * (LIMIT + 100) + mut + b"\n")
                r = cl.read_reply()
                t.error_is(r, -32000, "oversize line ending in a request: -32000")
                # Sent slowly, in pieces.
                for _ in range(5):
                        cl.send(b"q" * (LIMIT // 3))
                        time.sleep(0.01)
                cl.send(hidden)
                r = cl.read_reply()
                t.error_is(r, -32000, "oversize line sent in pieces: -32000")
                same_conn(cl, "oversize lines")
        unchanged("oversize lines")


def peak_rss_kib(daemon):
        with open(f"/proc/{daemon.proc.pid}/status") as f:
                for line in f:
                        if line.startswith("VmHWM:"):
                                return int(line.split()[1])
        return 0


@t.case("a 64 MiB line is skipped, not buffered")
def _():
        before = peak_rss_kib(d)
        with d.client(timeout=tmo(60)) as cl:
                chunk = b"a" * (1 << 20)
                reps = cl.pipeline([b"".join([chunk] * 64), json.dumps(req("notebook.get", KEEP, "after")).encode()],
                                   timeout=tmo(60))
                t.error_is(reps[0], -32000, "64 MiB line: -32000")
                t.ok(reps[1].get("result", {}).get("notebook") == SNAPSHOT, "next line answered", short(reps[1]))
        grown = peak_rss_kib(d) - before
        t.ok(grown < 16 * 1024, f"peak RSS grew by {grown} KiB (< 16 MiB) for a 64 MiB line with a 64 KiB limit")


@t.case("17 MiB line against the default 16 MiB limit: -32000")
def _():
        with dd.client(timeout=tmo(60)) as cl:
                huge = b'{"jsonrpc":"2.0","id":1,"method":"cell.create","params":{"code":"' + b"x" * (17 << 20) + b'"}}'
                reps = cl.pipeline([huge, json.dumps(req("notebook.get", DKEEP, "after")).encode()], timeout=tmo(60))
                t.error_is(reps[0], -32000, "17 MiB line: -32000")
                t.is_(((reps[0].get("error") or {}).get("data") or {}).get("limit"), 16 << 20, "data.limit 16 MiB")
                t.ok(reps[1].get("id") == "after" and reps[1].get("result", {}).get("notebook") == DSNAP,
                     "next line answered, data unchanged", short(reps[1]))
        check_serving(t, dd, "default-limit daemon still serving")


@t.case("half a line, then shutdown(SHUT_WR): -32003 or a clean close")
def _():
        with d.client() as cl:
                cl.send(json.dumps(req("notebook.get", KEEP, "whole")).encode() + b"\n"
                        + b'{"jsonrpc":"2.0","id":"half","method":"notebook.update","params":{"user_id":"bad","notebook_id":"keep","name":"half')
                cl.sock.shutdown(socket.SHUT_WR)
                r = cl.read_reply()
                t.ok(r.get("id") == "whole" and "result" in r, "complete request before the half line answered", short(r))
                line = cl.readline()
                if line is not None:
                        r = json.loads(line)
                        t.error_is(r, -32003, "half line at hang-up: -32003")
                        t.ok(cl.expect_eof(), "connection closed after -32003")
                else:
                        t.ok(True, "half line at hang-up: clean close without reply")
                        t.ok(True, "connection closed")
        with d.client() as cl:
                cl.send(json.dumps(req("daemon.status", None, 1)).encode() + b"\n")
                cl.sock.shutdown(socket.SHUT_WR)
                r = cl.read_reply()
                t.ok(r.get("id") == 1 and "result" in r, "SHUT_WR after a whole line: still answered", short(r))
                t.ok(cl.expect_eof(), "then a clean close, no -32003")
        unchanged("half line + SHUT_WR")


def rst_close(s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


@t.case("abrupt hang-ups mid-request")
def _():
        # Half a request, then gone.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.socket)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"notebook.update","params":{"user_id":"bad","notebook_id":"ke')
        s.close()
        unchanged("half request then close")
        # Many requests and gone before reading any reply (the daemon writes into a closed socket).
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.socket)
        s.sendall(b"".join(json.dumps(req("notebook.get", KEEP, i)).encode() + b"\n" for i in range(300)))
        rst_close(s)
        unchanged("300 pipelined gets then close without reading")
        # A large request cut off in the middle of its payload.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.socket)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"cell.create","params":{"user_id":"bad","notebook_id":"keep","code":"'
                  + b"x" * 40000)
        rst_close(s)
        unchanged("large request cut off")
        check_serving(t, d)


@t.case("200 connections opened and closed abruptly")
def _():
        socks = []
        for i in range(200):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(d.socket)
                if i % 3 == 1:
                        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"notebook.get","params":{')
                elif i % 3 == 2:
                        s.sendall(json.dumps(req("notebook.list", {"user_id": U}, i)).encode() + b"\n")
                socks.append(s)
        for i, s in enumerate(socks):
                if i % 2:
                        rst_close(s)
                else:
                        s.close()

        def few_connections():
                try:
                        with d.client() as cl:
                                return cl.rpc("daemon.status").get("connections", 999) <= 2
                except Exception:
                        return False

        t.ok(wait_for(few_connections, tmo(10), 0.05), "daemon noticed every closed connection (status.connections)")
        unchanged("200 abrupt connections")
        check_serving(t, d)


@t.case("more than 1024 connections: the extra ones are closed at once")
def _():
        if fd_limit() < 1100:
                t.skip("more than 1024 connections", f"RLIMIT_NOFILE {fd_limit()} too low")
                return
        socks = []
        try:
                for _ in range(1024):
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.connect(dd.socket)
                        socks.append(s)
                # Let the daemon accept them all before the extra ones arrive.
                first = socks[0]
                first.settimeout(tmo(10))
                first.sendall(json.dumps(req("daemon.status", None, 1)).encode() + b"\n")
                buf = b""
                while b"\n" not in buf:
                        chunk = first.recv(65536)
                        if not chunk:
                                break
                        buf += chunk
                st = json.loads(buf.split(b"\n")[0] or b"{}").get("result", {})
                t.is_(st.get("connections"), 1024, "1024 connections served")
                extra_closed = 0
                for _ in range(8):
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.settimeout(tmo(5))
                        s.connect(dd.socket)
                        try:
                                s.sendall(json.dumps(req("daemon.status", None, 2)).encode() + b"\n")
                                extra_closed += s.recv(65536) == b""
                        except (ConnectionResetError, BrokenPipeError):
                                extra_closed += 1
                        except socket.timeout:
                                pass
                        s.close()
                t.is_(extra_closed, 8, "connections beyond 1024: closed without a reply")
                last = socks[-1]
                last.settimeout(tmo(10))
                last.sendall(json.dumps(req("notebook.get", DKEEP, 3)).encode() + b"\n")
                buf = b""
                while b"\n" not in buf:
                        chunk = last.recv(65536)
                        if not chunk:
                                break
                        buf += chunk
                r = json.loads(buf.split(b"\n")[0] or b"{}")
                t.ok(r.get("result", {}).get("notebook") == DSNAP, "the 1024th connection still served", short(r))
        finally:
                for s in socks:
                        s.close()
        good = wait_for(lambda: dd.serving(timeout=tmo(2))[0], tmo(10), 0.05)
        t.ok(good, "new connections served once the others are gone", "" if good else dd.serving()[1])


@t.case("out of file descriptors: no busy loop, serves again afterwards")
def _():
        lim = Daemon(t, argv_prefix=["prlimit", "--nofile=48:48"])
        lim.start()
        socks = []
        try:
                for _ in range(80):
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.setblocking(False)
                        try:
                                s.connect(lim.socket)
                        except BlockingIOError:
                                pass  # backlog full: fine
                        socks.append(s)
                time.sleep(0.3)
                cpu0 = lim.cpu_seconds()
                time.sleep(1.0)
                used = lim.cpu_seconds() - cpu0
                t.ok(used < 0.5, "daemon does not spin while out of descriptors", f"{used:.2f} s CPU in 1 s")
                t.ok(lim.alive(), "daemon survives running out of descriptors", lim.diagnostics())
        finally:
                for s in socks:
                        s.close()
        good = wait_for(lambda: lim.serving(timeout=tmo(1))[0], tmo(5), 0.1)
        t.ok(good, "serves again once descriptors are free", "" if good else lim.serving(timeout=tmo(1))[1])
        t.is_(lim.stop(), 0, "SIGTERM: exit 0")


@t.case("peers sending only blank lines do not hold up other peers' requests")
def _():
        import threading
        stop = []

        def spam():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(d.socket)
                try:
                        while not stop:
                                s.sendall(b"\n" * 65536)
                except OSError:
                        pass
                s.close()

        ths = [threading.Thread(target=spam, daemon=True) for _ in range(4)]
        for th in ths:
                th.start()
        time.sleep(0.3)
        c = d.client()
        t0 = time.monotonic()
        try:
                r = c.call("daemon.status", timeout=tmo(5))
        except Exception as e:
                r = {"exception": str(e)}
        took = time.monotonic() - t0
        stop.append(True)
        for th in ths:
                th.join(timeout=tmo(5))
        c.close()
        t.ok("result" in r, f"daemon.status answered while 4 peers stream blank lines ({took:.2f} s)", short(r))


t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.is_(dd.stop(), 0, "default-limit daemon: SIGTERM, exit 0")
t.done()
