# SPDX-License-Identifier: MIT
"""kill -9 in the middle of a stream of writes, restart: every acknowledged write is there and the
database passes PRAGMA integrity_check. NB_CRASH_ROUNDS sets the number of rounds (default 3)."""

import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NBSTRESS, TAP, Daemon, check_serving, req, short, tmo, write_stream  # noqa: E402

t = TAP()
ROUNDS = int(os.environ.get("NB_CRASH_ROUNDS", "3"))
d = Daemon(t)
d.start()
U = "crash"
d.rpc("notebook.create", {"user_id": U, "notebook_id": "stress"})
ACK = re.compile(r"^ack (\S+) (\d+) (\d+)$")


class Stress:
        """nbstress in the background; its ack lines collected as they come."""

        def __init__(self, tag):
                self.acks = []
                self.other = []
                self.proc = subprocess.Popen([NBSTRESS, "--socket", d.socket, "--user", U, "--notebook", "stress",
                                              "--clients", "4", "--writes", "1000000", "--tag", tag, "--pipeline", "8"],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                self.th = threading.Thread(target=self.reader, daemon=True)
                self.th.start()

        def reader(self):
                for line in self.proc.stdout:
                        m = ACK.match(line.strip())
                        if m:
                                self.acks.append((m.group(1), int(m.group(2)), int(m.group(3))))
                        elif line.strip():
                                self.other.append(line)

        def finish(self):
                try:
                        rc = self.proc.wait(timeout=tmo(20))
                except subprocess.TimeoutExpired:
                        self.proc.kill()
                        rc = "timeout"
                self.th.join(timeout=tmo(10))
                return rc, self.proc.stderr.read()


class PyWriter:
        """A raw client of our own beside nbstress: pipelined cell.create and cell.update, each
        acknowledged one recorded."""

        def __init__(self, tag):
                self.tag = tag
                self.nb = f"py-{tag}"  # a notebook per round: never near the cell limit
                d.rpc("notebook.create", {"user_id": U, "notebook_id": self.nb, "cells": [{"id": "target", "code": "start"}]})
                self.created = []      # acked new cell ids
                self.last_update = -1  # highest acked update index
                self.error = None
                self.stop = False
                self.th = threading.Thread(target=self.body, daemon=True)
                self.th.start()

        def request(self, i):
                if i % 2:
                        return req("cell.update", {"user_id": U, "notebook_id": self.nb, "cell_id": "target",
                                                   "code": f"{self.tag}-{i}"}, i)
                return req("cell.create", {"user_id": U, "notebook_id": self.nb, "cell_id": f"{self.tag}-{i}",
                                           "code": "x"}, i)

        def on_reply(self, j, rep):
                if rep.get("id") != j or "result" not in rep:
                        self.error = f"unexpected reply for {j}: {short(rep)}"
                        return False
                if j % 2:
                        self.last_update = max(self.last_update, j)
                else:
                        self.created.append(f"{self.tag}-{j}")
                return True

        def body(self):
                try:
                        write_stream(d.client(), self.request, lambda: self.stop, self.on_reply)
                except (ConnectionError, OSError):
                        return
                except Exception as e:
                        self.error = f"{type(e).__name__}: {e}"


def integrity(desc):
        rc, out, err = d.sqlite("PRAGMA integrity_check;")
        t.ok(rc == 0 and out.strip() == "ok", f"{desc}: PRAGMA integrity_check ok", f"rc {rc} out {out!r} err {err!r}")


for rnd in range(ROUNDS):
        def one_round(rnd=rnd):
                tag = f"r{rnd}"
                if rnd == 2:
                        d.durability = "normal"  # a process crash loses nothing with synchronous=NORMAL either
                want = 150 + 350 * (rnd % 4)
                st = Stress(tag)
                pw = PyWriter(tag)
                deadline = time.monotonic() + tmo(30)
                while len(st.acks) < want and time.monotonic() < deadline and st.proc.poll() is None:
                        time.sleep(0.005)
                t.ok(len(st.acks) >= want, f"round {rnd}: {want} acks before the kill", f"{len(st.acks)} acks; "
                     f"nbstress rc {st.proc.poll()}")
                t.is_(d.kill(), -9, f"round {rnd}: kill -9 during the writes")
                rc, err = st.finish()
                pw.stop = True
                pw.th.join(timeout=tmo(15))
                t.is_(rc, 3, f"round {rnd}: nbstress exits 3 when the connection drops")
                t.ok(pw.error is None, f"round {rnd}: raw writer saw only correct replies", pw.error)
                acks = list(st.acks)
                t.diag(f"round {rnd}: {len(acks)} nbstress acks, {len(pw.created)} raw creates, "
                       f"last raw update {pw.last_update}")

                d.start()
                nb = d.rpc("notebook.get", {"user_id": U, "notebook_id": "stress"})["notebook"]
                cells = {c["id"]: c["code"] for c in nb["cells"]}
                last = {}
                for cid, i, rev in acks:
                        last[cid] = max(last.get(cid, -1), i)
                lost = []
                for cid, i in last.items():
                        m = re.match(rf"^{tag}-(\d+)-(\d+)$", cells.get(cid, ""))
                        if not m or int(m.group(2)) < i:
                                lost.append((cid, i, cells.get(cid)))
                t.ok(last and not lost, f"round {rnd}: every cell holds its last acked write (or a later one)",
                     short(lost))
                maxrev = max((a[2] for a in acks), default=0)
                t.ok(nb["revision"] >= maxrev, f"round {rnd}: revision >= last acked revision",
                     f"{nb['revision']} < {maxrev}")

                py = d.rpc("notebook.get", {"user_id": U, "notebook_id": pw.nb})["notebook"]
                pids = {c["id"] for c in py["cells"]}
                missing = [x for x in pw.created if x not in pids]
                t.ok(pw.created and not missing, f"round {rnd}: every acked cell.create present", short(missing))
                code = next((c["code"] for c in py["cells"] if c["id"] == "target"), "")
                m = re.match(rf"^{tag}-(\d+)$", code)
                t.ok(pw.last_update < 0 or (m and int(m.group(1)) >= pw.last_update),
                     f"round {rnd}: last acked cell.update present", f"stored {code!r}, acked {pw.last_update}")
                integrity(f"round {rnd}")
                check_serving(t, d, f"round {rnd}: daemon serves after restart")

        t.run(f"crash round {rnd}", one_round)


def trace_writes(n):
        """n writes, one at a time, with strace watching the daemon's threads: returns the number of
        fdatasync() calls seen and the writes that were not received, synced, then answered; None
        if strace cannot attach (ptrace not permitted here)."""
        import tempfile
        trace = os.path.join(tempfile.mkdtemp(prefix="nbstrace-"), "trace")
        c = d.client()
        c.rpc("cell.create", {"user_id": U, "notebook_id": "stress", "cell_id": "durable"})
        st = subprocess.Popen(["strace", "-f", "-s", "4096", "-e", "trace=fdatasync,sendto,recvfrom", "-o", trace,
                               "-p", str(d.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        attached = st.stderr.readline()  # "strace: Process N attached" once it watches
        if "attached" not in attached:
                st.wait(timeout=tmo(10))
                c.close()
                t.diag(f"strace: {attached.strip()}")
                return None
        for i in range(n):
                c.rpc("cell.update", {"user_id": U, "notebook_id": "stress", "cell_id": "durable", "code": f"durable-{i}"})
        c.rpc("cell.delete", {"user_id": U, "notebook_id": "stress", "cell_id": "durable"})
        c.close()
        time.sleep(0.2)
        st.terminate()
        st.wait(timeout=tmo(10))
        lines = open(trace).read().splitlines()
        syncs, open_sync = [], {}  # (first line, last line) of each fdatasync
        for k, line in enumerate(lines):
                pid = line.split(" ", 1)[0]
                if "fdatasync(" in line:
                        if "<unfinished" in line:
                                open_sync[pid] = k
                        else:
                                syncs.append((k, k))
                elif "<... fdatasync resumed>" in line and pid in open_sync:
                        syncs.append((open_sync.pop(pid), k))
        bad = []
        for i in range(n):
                code = f'\\"code\\":\\"durable-{i}\\"'
                recv = next((k for k, line in enumerate(lines) if "recvfrom(" in line and code in line), None)
                send = next((k for k, line in enumerate(lines) if "sendto(" in line and code in line), None)
                if recv is None or send is None or not any(recv < a and b < send for a, b in syncs):
                        bad.append((i, recv, send))
        return len(syncs), bad


@t.case("durability full: a write is answered only after an fdatasync() that began once it was received ended")
def _():
        """Power loss keeps what was synced, which a kill -9 cannot show. So the order of the system
        calls is watched: the request arrives (recvfrom), the WAL is synced (fdatasync, by whichever
        thread), then the reply goes (sendto). With durability normal nothing is synced: the same
        check must see that."""
        import shutil
        if not shutil.which("strace"):
                t.ok(False, "strace is installed (scripts/install-deps.sh)")
                return
        for durability, want_synced in ((None, True), ("normal", False)):
                d.stop()
                d.durability = durability
                d.start()
                traced = trace_writes(20)
                label = durability or "full"
                if traced is None:
                        t.skip(f"{label}: writes answered after their sync", "strace cannot attach here (ptrace)")
                        continue
                n_syncs, bad = traced
                if want_synced:
                        t.ok(n_syncs and not bad, f"{label}: each of 20 writes received, synced, then answered "
                             f"({n_syncs} syncs)", short(bad))
                else:
                        t.is_(len(bad), 20, f"{label}: the check sees the 20 writes answered without a sync")
        d.stop()
        d.durability = None
        d.start()


@t.case("after the crashes: clean stop")
def _():
        nb = d.rpc("notebook.get", {"user_id": U, "notebook_id": "stress"})["notebook"]
        r = d.rpc("cell.create", {"user_id": U, "notebook_id": "stress", "code": "final"})
        t.is_(r["revision"], nb["revision"] + 1, "writes continue with the next revision")
        t.is_(d.stop(), 0, "SIGTERM: exit 0")
        integrity("after SIGTERM")
        d.start()
        nb2 = d.rpc("notebook.get", {"user_id": U, "notebook_id": "stress"})["notebook"]
        t.is_((nb2["revision"], nb2["cells"][-1]["code"]), (r["revision"], "final"), "the last write survived the restart")
        t.is_(d.stop(), 0, "SIGTERM: exit 0")


t.done()
