#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""faultproxy: an HTTP/1.1 reverse proxy on loopback that injects faults between a DynamoDB
client (notebookd) and a DynamoDB-compatible server (dynalite). Standard library only.

    faultproxy.py --target 127.0.0.1:PORT [--listen 127.0.0.1:0] [--control 127.0.0.1:0]
                  [--rule JSON]... [--seed N] [--log-bodies]

The first line on stdout is "PORT CONTROL_PORT" (the ports actually bound; 0 picks free ones),
printed once both sockets listen. Every address (listen, control, target) must be loopback.
SIGTERM or SIGINT stops it. Both sides are keep-alive: each client connection has its own
upstream connection, reopened when the server closed it.

Faults are rules, tried in order on each request; the first that matches decides, no match
passes the request through. A rule is a JSON object:

    mode          pass | error | throttle | reset | delay | drop_response | blackout
    target        only requests whose X-Amz-Target is this operation ("PutItem", or the full
                  "DynamoDB_20120810.PutItem"), or one of a list of them; default: any
    body_contains only requests whose body contains this string (e.g. a notebook id)
    probability   0..1, chance that a matching request is hit (default 1)
    count         hit only the next N matching requests, then the rule is spent (default: no
                  limit); "remaining" shows what is left, "hits" how often it applied
    delay_ms      wait this long first (any mode; the whole point of mode "delay")
    phase         delay only: "request" (default: before forwarding) or "response" (after the
                  server answered, before relaying: the request is applied, the answer is late)
    status        error only: 500 (default) or 503 (or any 5xx)
    error_type    error/throttle: DynamoDB error name or full __type; a list rotates through its
                  names. error: InternalServerError (500) / ServiceUnavailable (503);
                  throttle: ProvisionedThroughputExceededException (also ThrottlingException,
                  RequestLimitExceeded)
    message       the error body's "message"
    how           drop_response only: "reset" (default: RST), "close" (FIN) or "partial" (the
                  status line, headers and half the body, then FIN: a truncated answer)
    refuse        blackout only: also close the listening socket, so that connecting fails with
                  ECONNREFUSED, until the rule is removed (no count or probability then)

What each mode does with a matching request:
    pass           forwards it (useful before other rules, to exempt a target)
    error          answers 5xx with {"__type": "com.amazonaws.dynamodb.v20120810#...", "message"}
                   without forwarding
    throttle       answers 400 with a throttling __type without forwarding
    reset          resets the connection (SO_LINGER 0) without forwarding or answering
    delay          waits delay_ms, then forwards
    drop_response  forwards, reads the whole answer (the server applied the request), then drops
                   it: the ambiguous outcome
    blackout       the endpoint is down: when installed, every open client connection is reset;
                   while active, each new connection is reset as soon as it is accepted (count and
                   probability count connections); with refuse, nothing listens at all. A blackout
                   rule takes no target or body_contains.
Any other rule matching a request on a connection still open is applied per request as usual.

Control interface: HTTP/1.1 + JSON on the control port (loopback), one request per connection:
    GET    /health              {"ok": true, "port": P, "target": "127.0.0.1:T", "pid": N}
    GET    /rules               {"rules": [rule + id, hits, remaining]}
    PUT    /rules               body: a rule or a list of rules, replacing all; {"ids": [...]}
    POST   /rules               body: a rule or a list, appended; {"ids": [...]}
    DELETE /rules               removes every rule (everything passes again)
    DELETE /rules/ID            removes one rule
    GET    /stats               counters, see below
    DELETE /stats               zeroes the counters and the log (rules keep their hits)
    GET    /log?since=SEQ       {"entries": [...], "next": SEQ}: one entry per request
    POST   /connections/close   body {"how": "close"|"reset"}: ends every open client connection
                                (a server closing idle keep-alive connections); {"closed": n}
    PUT    /target              body {"target": "127.0.0.1:PORT"}: forward there from now on
    POST   /config              body {"log_bodies": bool, "seed": N}
An invalid rule gets 400 with {"error": "..."} and changes nothing.

GET /stats:
    {"requests": N, "targets": {"PutItem": n, ...},            every request read, by target
     "applied": {"pass": {"PutItem": n}, "error": {...}, ...},   what was done, by mode, target
     "forwarded": N, "upstream_status": {"200": n, "400": n},
     "upstream_unavailable": N,       the server could not be reached: the client got a reset
     "connections": {"accepted": N, "open": N, "blackout": N, "killed": N}}
A request without X-Amz-Target counts under "-"; a connection reset at accept by a blackout
counts under applied.blackout["(connection)"]. Log entries: {"seq", "time", "target", "mode",
"rule", "forwarded", "upstream_status", "client"} where client is the status sent, or "reset",
"close", "partial"; plus "body" (first 64 KiB) with --log-bodies.

Example (shell):
    exec 3< <(tests/tools/faultproxy.py --target 127.0.0.1:4567); read -r port ctl <&3
    curl -s -X PUT 127.0.0.1:$ctl/rules -d '{"mode":"throttle","target":"PutItem","count":3}'
    curl -s 127.0.0.1:$ctl/stats
"""

import argparse
import asyncio
import collections
import ipaddress
import itertools
import json
import os
import random
import signal
import socket
import struct
import sys
import time
import urllib.parse
import uuid

MODES = ("pass", "error", "throttle", "reset", "delay", "drop_response", "blackout")
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
LOG_ENTRIES = 10000
LOG_BODY_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 5
DDB_PREFIX = "com.amazonaws.dynamodb.v20120810#"
ERROR_TYPES = {
        "InternalServerError": DDB_PREFIX + "InternalServerError",
        "ServiceUnavailable": DDB_PREFIX + "ServiceUnavailable",
        "ProvisionedThroughputExceededException": DDB_PREFIX + "ProvisionedThroughputExceededException",
        "RequestLimitExceeded": DDB_PREFIX + "RequestLimitExceeded",
        "ThrottlingException": "com.amazon.coral.availability#ThrottlingException",
}
MESSAGES = {
        "InternalServerError": "Internal server error (injected by faultproxy)",
        "ServiceUnavailable": "Service unavailable (injected by faultproxy)",
        "ProvisionedThroughputExceededException":
                "The level of configured provisioned throughput for the table was exceeded. "
                "Consider increasing your provisioning level with the UpdateTable API.",
        "RequestLimitExceeded": "Throughput exceeds the current throughput limit for your account.",
        "ThrottlingException": "Rate of requests exceeds the allowed throughput.",
}
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
# Hop-by-hop headers: they describe one connection, so they are not passed on.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect"}


class HTTPError(Exception):
        """A malformed message from a peer: the connection is closed."""


def loopback_addr(text, what):
        """'HOST:PORT' or '[V6]:PORT' -> (host, port); refuses anything that is not loopback."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
                raise ValueError(f"{what}: expected HOST:PORT, got {text!r}")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if host == "localhost":
                host = "127.0.0.1"
        try:
                ip = ipaddress.ip_address(host)
        except ValueError:
                raise ValueError(f"{what}: {host!r} is not an IP address (loopback only)") from None
        if not ip.is_loopback:
                raise ValueError(f"{what}: {host} is not a loopback address; faultproxy only uses loopback")
        return host, int(port)


def fmt_addr(host, port):
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------------------------
# Rules

class Rule:
        _ids = itertools.count(1)
        KEYS = {"mode", "target", "body_contains", "probability", "count", "delay_ms", "phase",
                "status", "error_type", "message", "how", "refuse", "id", "hits", "remaining"}

        def __init__(self, d):
                if not isinstance(d, dict):
                        raise ValueError("a rule is a JSON object")
                unknown = set(d) - self.KEYS
                if unknown:
                        raise ValueError(f"unknown rule keys: {sorted(unknown)}")
                self.mode = d.get("mode")
                if self.mode not in MODES:
                        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
                t = d.get("target")
                if t is None:
                        self.targets = None
                elif isinstance(t, str) and t:
                        self.targets = {t}
                elif isinstance(t, list) and t and all(isinstance(x, str) and x for x in t):
                        self.targets = set(t)
                else:
                        raise ValueError("target: an operation name or a non-empty list of them")
                self.body_contains = d.get("body_contains")
                if self.body_contains is not None and not isinstance(self.body_contains, str):
                        raise ValueError("body_contains: a string")
                self.probability = d.get("probability", 1)
                if isinstance(self.probability, bool) or not isinstance(self.probability, (int, float)) \
                                or not 0 <= self.probability <= 1:
                        raise ValueError("probability: a number from 0 to 1")
                self.count = d.get("count")
                if self.count is not None and (isinstance(self.count, bool) or not isinstance(self.count, int)
                                               or self.count < 0):
                        raise ValueError("count: a non-negative integer")
                self.remaining = self.count
                self.delay_ms = d.get("delay_ms", 0)
                if isinstance(self.delay_ms, bool) or not isinstance(self.delay_ms, (int, float)) \
                                or self.delay_ms < 0:
                        raise ValueError("delay_ms: a non-negative number")
                self.phase = d.get("phase", "request")
                if self.phase not in ("request", "response"):
                        raise ValueError("phase: request or response")
                if self.phase == "response" and self.mode != "delay":
                        raise ValueError("phase applies to mode delay only")
                self.status = d.get("status", 500 if self.mode == "error" else 400)
                if self.mode == "error" and (not isinstance(self.status, int) or not 500 <= self.status <= 599):
                        raise ValueError("status: a 5xx code")
                et = d.get("error_type")
                if et is None:
                        et = ["ProvisionedThroughputExceededException"] if self.mode == "throttle" else \
                             ["ServiceUnavailable" if self.status == 503 else "InternalServerError"]
                elif isinstance(et, str):
                        et = [et]
                if not isinstance(et, list) or not et or not all(isinstance(x, str) and x for x in et):
                        raise ValueError("error_type: a name or a non-empty list of names")
                self.error_types = et
                self.message = d.get("message")
                if self.message is not None and not isinstance(self.message, str):
                        raise ValueError("message: a string")
                self.how = d.get("how", "reset")
                if self.how not in ("reset", "close", "partial"):
                        raise ValueError("how: reset, close or partial")
                self.refuse = bool(d.get("refuse", False))
                if self.mode == "blackout":
                        if self.targets is not None or self.body_contains is not None:
                                raise ValueError("a blackout takes no target or body_contains: it hits connections")
                        if self.refuse and (self.count is not None or self.probability != 1):
                                raise ValueError("a refusing blackout lasts until removed: no count or probability")
                elif self.refuse:
                        raise ValueError("refuse applies to mode blackout only")
                self.id = next(Rule._ids)
                self.hits = 0
                self.rotation = 0

        def to_json(self):
                d = {"id": self.id, "mode": self.mode, "hits": self.hits}
                if self.targets is not None:
                        d["target"] = sorted(self.targets)
                if self.body_contains is not None:
                        d["body_contains"] = self.body_contains
                if self.probability != 1:
                        d["probability"] = self.probability
                if self.count is not None:
                        d["count"] = self.count
                        d["remaining"] = self.remaining
                if self.delay_ms:
                        d["delay_ms"] = self.delay_ms
                if self.mode == "delay":
                        d["phase"] = self.phase
                if self.mode == "error":
                        d["status"] = self.status
                if self.mode in ("error", "throttle"):
                        d["error_type"] = self.error_types
                if self.message is not None:
                        d["message"] = self.message
                if self.mode == "drop_response":
                        d["how"] = self.how
                if self.mode == "blackout":
                        d["refuse"] = self.refuse
                return d

        def spent(self):
                return self.remaining is not None and self.remaining <= 0

        def matches(self, names, body):
                """names: the request's operation, short and full ("PutItem", "DynamoDB_20120810.PutItem")."""
                if self.spent():
                        return False
                if self.targets is not None and not self.targets & names:
                        return False
                if self.body_contains is not None and self.body_contains.encode() not in body:
                        return False
                return True

        def take(self, rng):
                """Rolls the probability; on a hit counts it. True when the rule applies."""
                if self.probability < 1 and rng.random() >= self.probability:
                        return False
                self.hits += 1
                if self.remaining is not None:
                        self.remaining -= 1
                return True

        def next_error_type(self):
                name = self.error_types[self.rotation % len(self.error_types)]
                self.rotation += 1
                short = name.rsplit("#", 1)[-1]
                full = name if "#" in name else ERROR_TYPES.get(name, DDB_PREFIX + name)
                return full, self.message or MESSAGES.get(short, f"{short} (injected by faultproxy)")


def parse_rules(body):
        obj = json.loads(body or b"null")
        if isinstance(obj, dict) and "rules" in obj and "mode" not in obj:
                obj = obj["rules"]
        items = obj if isinstance(obj, list) else [obj]
        return [Rule(x) for x in items]


# --------------------------------------------------------------------------------------------
# HTTP/1.1 messages

class Message:
        def __init__(self, start, headers, body):
                self.start = start      # request or status line, without CRLF (str)
                self.headers = headers  # [(name, value)] as received
                self.body = body        # bytes, de-chunked

        def header(self, name):
                name = name.lower()
                for k, v in self.headers:
                        if k.lower() == name:
                                return v
                return None

        def tokens(self, name):
                v = self.header(name) or ""
                return {t.strip().lower() for t in v.split(",") if t.strip()}


async def read_head(reader):
        """The start line and headers; None on a clean EOF before any byte."""
        try:
                data = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
                if not e.partial.strip():
                        return None
                raise HTTPError("connection closed inside a message head") from None
        except asyncio.LimitOverrunError:
                raise HTTPError("message head too large") from None
        lines = data[:-4].decode("latin-1").split("\r\n")
        while lines and not lines[0]:  # tolerated empty lines between messages
                lines.pop(0)
        if not lines:
                raise HTTPError("empty message head")
        headers = []
        for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                        raise HTTPError(f"bad header line {line!r}")
                headers.append((name, value.strip()))
        return lines[0], headers


async def read_body(reader, msg, until_eof=False):
        te = msg.tokens("transfer-encoding")
        if "chunked" in te:
                chunks = []
                total = 0
                while True:
                        size_line = (await reader.readuntil(b"\r\n")).split(b";")[0].strip()
                        try:
                                size = int(size_line, 16)
                        except ValueError:
                                raise HTTPError(f"bad chunk size {size_line!r}") from None
                        if size == 0:
                                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                                        pass  # trailers are dropped
                                break
                        total += size
                        if total > MAX_BODY_BYTES:
                                raise HTTPError("body too large")
                        chunks.append(await reader.readexactly(size))
                        if await reader.readexactly(2) != b"\r\n":
                                raise HTTPError("chunk without CRLF")
                return b"".join(chunks)
        cl = msg.header("content-length")
        if cl is not None:
                if not cl.isdigit() or int(cl) > MAX_BODY_BYTES:
                        raise HTTPError(f"bad Content-Length {cl!r}")
                return await reader.readexactly(int(cl))
        if until_eof:
                return await reader.read(MAX_BODY_BYTES)
        return b""


def encode(start, headers, body, connection=None):
        """A message with the given headers (hop-by-hop ones dropped) and a Content-Length."""
        out = [start]
        for k, v in headers:
                lk = k.lower()
                if lk in HOP_BY_HOP or lk in ("transfer-encoding", "content-length"):
                        continue
                out.append(f"{k}: {v}")
        out.append(f"Content-Length: {len(body)}")
        if connection:
                out.append(f"Connection: {connection}")
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body


def json_response(status, obj, close=False, extra=()):
        body = json.dumps(obj).encode()
        headers = [("Content-Type", "application/json")] + list(extra)
        return encode(f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", headers, body,
                      "close" if close else "keep-alive")


def set_linger0(writer):
        sock = writer.get_extra_info("socket")
        if sock is not None:
                try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                        pass


def reset(writer):
        """Closes with an RST (SO_LINGER 0): the peer's next read fails with ECONNRESET."""
        set_linger0(writer)
        writer.transport.abort()


# --------------------------------------------------------------------------------------------
# The proxy

class Upstream:
        def __init__(self):
                self.reader = self.writer = None

        def usable(self):
                return self.writer is not None and not self.writer.is_closing() and not self.reader.at_eof()

        def close(self):
                if self.writer is not None:
                        self.writer.transport.abort()
                self.reader = self.writer = None


class Conn:
        def __init__(self, writer):
                self.writer = writer
                self.task = asyncio.current_task()
                self.upstream = Upstream()


class Proxy:
        def __init__(self, listen, target, seed=None, log_bodies=False):
                self.listen_host, self.listen_port = listen
                self.target = target
                self.rng = random.Random(seed)
                self.log_bodies = log_bodies
                self.rules = []
                self.conns = set()
                self.server = None
                self.refusing = False
                self.seq = 0
                self.reset_stats()

        def reset_stats(self):
                self.stats = {"requests": 0, "targets": collections.Counter(),
                              "applied": collections.defaultdict(collections.Counter), "forwarded": 0,
                              "upstream_status": collections.Counter(), "upstream_unavailable": 0,
                              "connections": collections.Counter()}
                self.log = collections.deque(maxlen=LOG_ENTRIES)

        def stats_json(self):
                s = self.stats
                return {"requests": s["requests"], "targets": dict(s["targets"]),
                        "applied": {m: dict(c) for m, c in s["applied"].items()},
                        "forwarded": s["forwarded"], "upstream_status": dict(s["upstream_status"]),
                        "upstream_unavailable": s["upstream_unavailable"],
                        "connections": {"accepted": s["connections"]["accepted"], "open": len(self.conns),
                                        "blackout": s["connections"]["blackout"],
                                        "killed": s["connections"]["killed"]}}

        async def start(self):
                self.server = await asyncio.start_server(self.handle, self.listen_host, self.listen_port,
                                                         reuse_address=True, limit=MAX_HEADER_BYTES)
                self.listen_port = self.server.sockets[0].getsockname()[1]

        # ---- rules ----

        def set_rules(self, rules, append):
                self.rules = (self.rules + rules) if append else rules
                if any(r.mode == "blackout" for r in rules):
                        self.kill_all(reset_=True)
                return self.apply_listener()

        async def apply_listener(self):
                """Closes or reopens the listening socket as refusing blackouts come and go."""
                want_refuse = any(r.mode == "blackout" and r.refuse for r in self.rules)
                if want_refuse and not self.refusing:
                        self.refusing = True
                        self.server.close()
                        await self.server.wait_closed()
                elif not want_refuse and self.refusing:
                        self.refusing = False
                        await self.start()

        def kill_all(self, reset_):
                n = 0
                for c in list(self.conns):
                        if reset_:
                                reset(c.writer)
                        else:
                                c.writer.close()
                        c.upstream.close()
                        if c.task is not None:
                                c.task.cancel()
                        n += 1
                self.stats["connections"]["killed"] += n
                return n

        def match(self, names, body):
                for r in self.rules:
                        if r.mode != "blackout" and r.matches(names, body) and r.take(self.rng):
                                return r
                return None

        def blackout_at_accept(self):
                for r in self.rules:
                        if r.mode == "blackout" and not r.spent() and r.take(self.rng):
                                return r
                return None

        # ---- client connections ----

        async def handle(self, reader, writer):
                conn = Conn(writer)
                self.stats["connections"]["accepted"] += 1
                r = self.blackout_at_accept()
                if r is not None:
                        self.stats["connections"]["blackout"] += 1
                        self.stats["applied"]["blackout"]["(connection)"] += 1
                        self.add_log({"target": "(connection)", "mode": "blackout", "rule": r.id,
                                      "forwarded": False, "upstream_status": None, "client": "reset"})
                        reset(writer)
                        return
                self.conns.add(conn)
                try:
                        while await self.serve_one(conn, reader, writer):
                                pass
                except (HTTPError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                        reset(writer)
                except (ConnectionError, OSError, asyncio.CancelledError):
                        pass
                finally:
                        self.conns.discard(conn)
                        conn.upstream.close()
                        if not writer.is_closing():
                                writer.close()

        def add_log(self, entry):
                self.seq += 1
                entry = {"seq": self.seq, "time": round(time.time(), 3), **entry}
                self.log.append(entry)
                return entry

        async def serve_one(self, conn, reader, writer):
                """Reads, judges and answers one request; False when the connection is done."""
                head = await read_head(reader)
                if head is None:
                        return False
                req = Message(head[0], head[1], b"")
                parts = req.start.split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                        raise HTTPError(f"bad request line {req.start!r}")
                if "100-continue" in req.tokens("expect"):
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                req.body = await read_body(reader, req)
                keep = "close" not in req.tokens("connection") and parts[2] != "HTTP/1.0"

                full_target = req.header("x-amz-target")
                target = full_target.rsplit(".", 1)[-1] if full_target else "-"
                self.stats["requests"] += 1
                self.stats["targets"][target] += 1
                rule = self.match({target, full_target or target}, req.body)
                mode = rule.mode if rule else "pass"
                self.stats["applied"][mode][target] += 1
                entry = {"target": target, "mode": mode, "rule": rule.id if rule else None,
                         "forwarded": False, "upstream_status": None, "client": None}
                if self.log_bodies:
                        entry["body"] = req.body[:LOG_BODY_BYTES].decode("utf-8", "replace")
                entry = self.add_log(entry)

                if rule and rule.delay_ms and not (mode == "delay" and rule.phase == "response"):
                        await asyncio.sleep(rule.delay_ms / 1000)

                if mode in ("error", "throttle"):
                        full, message = rule.next_error_type()
                        status = rule.status if mode == "error" else 400
                        body = json.dumps({"__type": full, "message": message}).encode()
                        headers = [("x-amzn-RequestId", uuid.uuid4().hex.upper()),
                                   ("Content-Type", "application/x-amz-json-1.0")]
                        writer.write(encode(f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", headers, body,
                                            "keep-alive" if keep else "close"))
                        await writer.drain()
                        entry["client"] = status
                        return keep
                if mode == "reset":
                        entry["client"] = "reset"
                        reset(writer)
                        return False

                resp = await self.forward(conn, req)
                if resp is None:
                        self.stats["upstream_unavailable"] += 1
                        entry["client"] = "reset"
                        reset(writer)
                        return False
                entry["forwarded"] = True
                status = int(resp.start.split(" ")[1])
                entry["upstream_status"] = status
                self.stats["forwarded"] += 1
                self.stats["upstream_status"][str(status)] += 1

                if mode == "delay" and rule.phase == "response":
                        await asyncio.sleep(rule.delay_ms / 1000)
                if mode == "drop_response":
                        entry["client"] = rule.how
                        if rule.how == "reset":
                                reset(writer)
                                return False
                        if rule.how == "partial":
                                data = encode(resp.start, resp.headers, resp.body, "keep-alive")
                                head_len = data.index(b"\r\n\r\n") + 4
                                writer.write(data[:head_len + len(resp.body) // 2])
                                await writer.drain()
                        # A FIN, not an RST: what was sent is read before the EOF.
                        writer.close()
                        return False
                writer.write(encode(resp.start, resp.headers, resp.body, "keep-alive" if keep else "close"))
                await writer.drain()
                entry["client"] = status
                return keep

        async def forward(self, conn, req):
                """Sends req upstream and returns the response, or None if the server cannot be
                reached. A kept-alive connection the server closed meanwhile is reopened, and the
                request sent again only when nothing of an answer had come back on it."""
                up = conn.upstream
                for attempt in range(2):
                        reused = up.usable()
                        if not reused:
                                up.close()
                                try:
                                        up.reader, up.writer = await asyncio.wait_for(
                                                asyncio.open_connection(*self.target, limit=MAX_HEADER_BYTES),
                                                CONNECT_TIMEOUT_S)
                                except (OSError, asyncio.TimeoutError):
                                        up.close()
                                        return None
                        try:
                                up.writer.write(encode(req.start, req.headers, req.body, "keep-alive"))
                                await up.writer.drain()
                                while True:
                                        head = await read_head(up.reader)
                                        if head is None:
                                                raise ConnectionResetError("server closed before answering")
                                        resp = Message(head[0], head[1], b"")
                                        code = resp.start.split(" ")
                                        if len(code) < 2 or not code[1].isdigit():
                                                raise HTTPError(f"bad status line {resp.start!r}")
                                        if not 100 <= int(code[1]) < 200:
                                                break
                                no_body = int(code[1]) in (204, 304) or req.start.startswith("HEAD ")
                                framed = resp.header("content-length") is not None or \
                                        "chunked" in resp.tokens("transfer-encoding")
                                resp.body = b"" if no_body else await read_body(up.reader, resp, until_eof=True)
                                if "close" in resp.tokens("connection") or (not framed and not no_body):
                                        up.close()
                                return resp
                        except (ConnectionError, OSError, HTTPError, asyncio.IncompleteReadError) as e:
                                up.close()
                                if reused and attempt == 0 and isinstance(e, ConnectionError):
                                        continue
                                return None
                return None

        # ---- control interface ----

        async def control(self, reader, writer):
                try:
                        head = await read_head(reader)
                        if head is None:
                                return
                        req = Message(head[0], head[1], b"")
                        req.body = await read_body(reader, req)
                        method, path = req.start.split(" ")[:2]
                        try:
                                status, obj = await self.control_request(method, path, req.body)
                        except (ValueError, json.JSONDecodeError) as e:
                                status, obj = 400, {"error": str(e)}
                        writer.write(json_response(status, obj, close=True))
                        await writer.drain()
                except (HTTPError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                        pass
                finally:
                        writer.close()

        async def control_request(self, method, path, body):
                url = urllib.parse.urlsplit(path)
                query = urllib.parse.parse_qs(url.query)
                p = url.path.rstrip("/") or "/"
                if p == "/health" and method == "GET":
                        return 200, {"ok": True, "port": self.listen_port, "target": fmt_addr(*self.target),
                                     "pid": os.getpid(), "refusing": self.refusing}
                if p == "/rules":
                        if method == "GET":
                                return 200, {"rules": [r.to_json() for r in self.rules]}
                        if method in ("PUT", "POST"):
                                rules = parse_rules(body)
                                await self.set_rules(rules, append=(method == "POST"))
                                return 200, {"ids": [r.id for r in rules]}
                        if method == "DELETE":
                                await self.set_rules([], append=False)
                                return 200, {"rules": []}
                if p.startswith("/rules/") and method == "DELETE":
                        rid = p[len("/rules/"):]
                        keep = [r for r in self.rules if str(r.id) != rid]
                        if len(keep) == len(self.rules):
                                return 404, {"error": f"no rule {rid}"}
                        self.rules = keep
                        await self.apply_listener()
                        return 200, {"rules": [r.to_json() for r in self.rules]}
                if p == "/stats":
                        if method == "GET":
                                return 200, self.stats_json()
                        if method == "DELETE":
                                self.reset_stats()
                                return 200, self.stats_json()
                if p == "/log" and method == "GET":
                        since = int(query.get("since", ["0"])[0])
                        entries = [e for e in self.log if e["seq"] > since]
                        return 200, {"entries": entries, "next": self.seq}
                if p == "/connections/close" and method == "POST":
                        how = (json.loads(body) if body.strip() else {}).get("how", "close")
                        if how not in ("close", "reset"):
                                raise ValueError("how: close or reset")
                        return 200, {"closed": self.kill_all(reset_=(how == "reset"))}
                if p == "/target" and method == "PUT":
                        self.target = loopback_addr(json.loads(body)["target"], "target")
                        for c in self.conns:
                                c.upstream.close()
                        return 200, {"target": fmt_addr(*self.target)}
                if p == "/config" and method == "POST":
                        cfg = json.loads(body)
                        if "log_bodies" in cfg:
                                self.log_bodies = bool(cfg["log_bodies"])
                        if "seed" in cfg:
                                self.rng.seed(cfg["seed"])
                        return 200, {"log_bodies": self.log_bodies}
                return 404, {"error": f"no such control request: {method} {p}"}


async def main_async(args):
        listen = loopback_addr(args.listen, "--listen")
        control = loopback_addr(args.control, "--control")
        target = loopback_addr(args.target, "--target")
        proxy = Proxy(listen, target, seed=args.seed, log_bodies=args.log_bodies)
        rules = []
        for text in args.rule:
                rules += parse_rules(text.encode())
        await proxy.start()
        ctl = await asyncio.start_server(proxy.control, control[0], control[1], reuse_address=True,
                                         limit=MAX_HEADER_BYTES)
        await proxy.set_rules(rules, append=False)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        print(f"{proxy.listen_port} {ctl.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
        ctl.close()
        if not proxy.refusing:
                proxy.server.close()
        proxy.kill_all(reset_=False)


def main():
        ap = argparse.ArgumentParser(description="HTTP/1.1 fault-injecting reverse proxy (loopback only)",
                                     epilog="See the module docstring (the head of this file) for rules and the control interface.")
        ap.add_argument("--target", required=True, help="HOST:PORT of the server (loopback)")
        ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on (default 127.0.0.1:0)")
        ap.add_argument("--control", default="127.0.0.1:0", help="HOST:PORT of the control interface")
        ap.add_argument("--rule", action="append", default=[], help="a rule (JSON object or list) to start with")
        ap.add_argument("--seed", type=int, default=None, help="seed for probabilities")
        ap.add_argument("--log-bodies", action="store_true", help="keep request bodies in the log")
        args = ap.parse_args()
        try:
                asyncio.run(main_async(args))
        except (ValueError, json.JSONDecodeError) as e:
                print(f"faultproxy: {e}", file=sys.stderr)
                sys.exit(2)
        except OSError as e:
                print(f"faultproxy: {e}", file=sys.stderr)
                sys.exit(1)


if __name__ == "__main__":
        main()
