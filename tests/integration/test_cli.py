# SPDX-License-Identifier: MIT
"""notebookctl end to end: every subcommand, tables, --json against the protocol, exit codes."""

import json
import os
import pwd
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NOTEBOOKCTL, TAP, Daemon, check_serving, ctl, parse_json, run, short, tmo  # noqa: E402

t = TAP()
d = Daemon(t)
d.start()
raw = d.client()
U = "cli"


def nc(*args, **kw):
        kw.setdefault("user", U)
        return d.ctl(*args, **kw)


def nj(*args, **kw):
        """notebookctl --json ...; returns (rc, parsed stdout or None, stderr)."""
        kw.setdefault("user", U)
        rc, out, err = d.ctl(*args, json_out=True, **kw)
        return rc, parse_json(out), err + ("" if parse_json(out) is not None else f"\nstdout not JSON: {out!r}")


def get(nb, user=U):
        return raw.rpc("notebook.get", {"user_id": user, "notebook_id": nb})["notebook"]


def ok_rc(res, desc):
        rc, out, err = res
        return t.ok(rc == 0, desc, f"rc {rc}\nstdout: {short(out, 1500)}\nstderr: {short(err, 1500)}")


@t.case("list and show: tables and --json")
def _():
        res = nc("list")
        ok_rc(res, "list: exit 0")
        t.like(res[1], "blank-cli", "list table: blank notebook")
        t.like(res[1], "demo-cli", "list table: demo notebook")
        t.like(res[1], "Demo Notebook", "list table: names")
        rc, js, err = nj("list")
        t.is_(rc, 0, "list --json: exit 0")
        want = raw.rpc("notebook.list", {"user_id": U})
        t.ok(isinstance(js, dict) and js.get("user_id") == U and js.get("notebooks") == want["notebooks"],
             "list --json: the protocol's result", short(js) + err)
        t.is_((js or {}).get("provisioned"), False, "list --json: provisioned false the second time")

        res = nc("show", "demo-cli")
        ok_rc(res, "show: exit 0")
        for needle in ("demo-cell-1", "demo-cell-6", "x = 10"):
                t.like(res[1], needle, f"show table: {needle}")
        rc, js, err = nj("show", "demo-cli")
        t.is_(rc, 0, "show --json: exit 0")
        t.is_((js or {}).get("notebook"), get("demo-cli"), "show --json: the protocol's notebook.get result")

        me = pwd.getpwuid(os.getuid()).pw_name
        res = d.ctl("list")  # no --user: a privileged peer acts for its login name
        ok_rc(res, "list without --user")
        t.like(res[1], f"blank-{me}", f"list without --user: {me}'s notebooks")


@t.case("create, rename, rm")
def _():
        res = nc("create", "--name", "My Book", "--id", "book")
        ok_rc(res, "create --name --id: exit 0")
        t.like(res[1] + res[2], "book", "create: prints the id")
        nb = get("book")
        t.is_((nb["name"], nb["revision"], nb["cells"]), ("My Book", 1, []), "create: stored")
        rc, js, err = nj("create", "--name", "Other")
        t.is_(rc, 0, "create --json without --id: exit 0")
        nid = ((js or {}).get("notebook") or {}).get("id")
        t.ok(nid and get(nid)["name"] == "Other", "create --json: the protocol's notebook with a new id", short(js))
        t.is_((js or {}).get("notebook"), get(nid) if nid else None, "create --json matches notebook.get")
        rc, out, err = nc("create", "--id", "book")
        t.is_(rc, 1, "create an existing id: exit 1 (daemon error)")
        t.ok(err.strip() != "", "create existing: message on stderr", out)

        ok_rc(nc("rename", "book", "New Name"), "rename: exit 0")
        t.is_(get("book")["name"], "New Name", "rename: stored")
        rc, js, err = nj("rename", "book", "Json Name")
        t.is_(rc, 0, "rename --json: exit 0")
        t.is_((js or {}).get("notebook", {}).get("name"), "Json Name", "rename --json: summary with the new name")
        t.is_(nc("rename", "--expect-revision", "1", "book", "X")[0], 5, "rename with a stale --expect-revision: exit 5")
        t.is_(get("book")["name"], "Json Name", "conflicting rename changed nothing")
        ok_rc(nc("rename", "--expect-revision", str(get("book")["revision"]), "book", "Y"),
              "rename with the right --expect-revision")
        t.is_(nc("rename", "nope", "X")[0], 4, "rename unknown notebook: exit 4")

        ok_rc(nc("rm", "book"), "rm: exit 0")
        t.error_is(raw.call("notebook.get", {"user_id": U, "notebook_id": "book"}), -32010, "rm: gone")
        t.is_(nc("rm", "book")[0], 4, "rm again: exit 4")
        if nid:
                t.is_(nc("rm", "--expect-revision", "7", nid)[0], 5, "rm with stale --expect-revision: exit 5")
                rc, js, err = nj("rm", nid)
                t.is_(rc, 0, "rm --json: exit 0")
                t.is_((js or {}).get("notebook_id"), nid, "rm --json: {notebook_id, revision}")


@t.case("cell add / edit / rm / mv")
def _():
        ok_rc(nc("create", "--id", "cells"), "create notebook for cells")
        res = nc("cell", "add", "cells", "--code", "a = 1")
        ok_rc(res, "cell add --code: exit 0")
        rc, js, err = nj("cell", "add", "cells", "--type", "sql", "--code", "select 1")
        t.is_(rc, 0, "cell add --json --type sql: exit 0")
        c2 = (js or {}).get("cell") or {}
        t.is_((c2.get("type"), c2.get("code"), (js or {}).get("position"), (js or {}).get("revision")),
              ("sql", "select 1", 1, 3), "cell add --json: the protocol's cell.create result")
        path = os.path.join(d.base, "code.py")
        file_code = "import math\n\ndef f(x):\n    return math.sqrt(x)  # \u00e9\u4e2d\n"
        with open(path, "w") as f:
                f.write(file_code)
        ok_rc(nc("cell", "add", "cells", "--file", path), "cell add --file: exit 0")
        stdin_code = "print('from stdin')\nz = 3\n"
        ok_rc(nc("cell", "add", "cells", "-", input=stdin_code), "cell add - (stdin): exit 0")
        cells = get("cells")["cells"]
        t.is_([c["code"] for c in cells], ["a = 1", "select 1", file_code, stdin_code],
              "cell add: codes stored exactly (args, file, stdin)")
        first = cells[0]["id"]
        ok_rc(nc("cell", "add", "cells", "--code", "front", "--position", "0"), "cell add --position 0")
        ok_rc(nc("cell", "add", "cells", "--code", "after-a", "--after", first), "cell add --after CELL")
        codes = [c["code"] for c in get("cells")["cells"]]
        t.is_(codes, ["front", "a = 1", "after-a", "select 1", file_code, stdin_code], "cell add: positions")
        t.is_(nc("cell", "add", "cells", "--code", "x", "--after", "nope")[0], 4, "cell add --after unknown cell: exit 4")
        t.is_(nc("cell", "add", "nope", "--code", "x")[0], 4, "cell add to unknown notebook: exit 4")
        rc = nc("cell", "add", "cells", "--code", "x", "--type", "ruby")[0]
        t.ok(rc in (1, 2), "cell add --type ruby: refused (exit 1 or 2)", rc)
        rev = get("cells")["revision"]
        t.is_(nc("cell", "add", "--expect-revision", str(rev - 1), "cells", "--code", "x")[0], 5,
              "cell add with stale --expect-revision: exit 5")

        ok_rc(nc("cell", "edit", "cells", first, "--code", "a = 2"), "cell edit --code")
        t.is_(get("cells")["cells"][1]["code"], "a = 2", "cell edit: stored")
        ok_rc(nc("cell", "edit", "cells", first, "--file", path), "cell edit --file")
        t.is_(get("cells")["cells"][1]["code"], file_code, "cell edit --file: stored")
        ok_rc(nc("cell", "edit", "cells", first, "-", input="from stdin edit"), "cell edit - (stdin)")
        t.is_(get("cells")["cells"][1]["code"], "from stdin edit", "cell edit stdin: stored")
        rc, js, err = nj("cell", "edit", "cells", first, "--code", "a = 3")
        t.is_(rc, 0, "cell edit --json")
        t.is_(((js or {}).get("cell") or {}).get("code"), "a = 3", "cell edit --json: the protocol's result")
        t.is_(nc("cell", "edit", "cells", "nope", "--code", "x")[0], 4, "cell edit unknown cell: exit 4")
        rev = get("cells")["revision"]
        t.is_(nc("cell", "edit", "--expect-revision", str(rev + 1), "cells", first, "--code", "x")[0], 5,
              "cell edit stale --expect-revision: exit 5")
        t.is_(get("cells")["cells"][1]["code"], "a = 3", "conflicting edit changed nothing")

        ids = [c["id"] for c in get("cells")["cells"]]
        ok_rc(nc("cell", "mv", "cells", ids[0], "--position", "5"), "cell mv --position")
        t.is_([c["id"] for c in get("cells")["cells"]], ids[1:] + ids[:1], "cell mv --position: order")
        ok_rc(nc("cell", "mv", "cells", ids[0], "--first"), "cell mv --first")
        t.is_([c["id"] for c in get("cells")["cells"]], ids, "cell mv --first: order")
        ok_rc(nc("cell", "mv", "cells", ids[0], "--after", ids[2]), "cell mv --after")
        t.is_([c["id"] for c in get("cells")["cells"]], [ids[1], ids[2], ids[0]] + ids[3:], "cell mv --after: order")
        rc, js, err = nj("cell", "mv", "cells", ids[0], "--position", "0")
        t.is_((rc, (js or {}).get("position")), (0, 0), "cell mv --json: position")
        t.is_(nc("cell", "mv", "cells", "nope", "--first")[0], 4, "cell mv unknown cell: exit 4")
        t.is_(nc("cell", "mv", "cells", ids[0])[0], 2, "cell mv without a place: exit 2")

        ok_rc(nc("cell", "rm", "cells", ids[0]), "cell rm")
        t.ok(ids[0] not in [c["id"] for c in get("cells")["cells"]], "cell rm: gone")
        t.is_(nc("cell", "rm", "cells", ids[0])[0], 4, "cell rm again: exit 4")
        rc, js, err = nj("cell", "rm", "cells", ids[1])
        t.is_((rc, (js or {}).get("revision")), (0, get("cells")["revision"]), "cell rm --json: revision")


@t.case("graph, demo-reset, status")
def _():
        res = nc("graph", "demo-cli")
        ok_rc(res, "graph: exit 0")
        t.like(res[1], "demo-cell-4", "graph table: mentions cells")
        t.like(res[1], "df", "graph table: mentions variables")
        rc, js, err = nj("graph", "demo-cli")
        t.is_(rc, 0, "graph --json")
        t.is_(js, raw.rpc("notebook.graph", {"user_id": U, "notebook_id": "demo-cli"}), "graph --json: the protocol's result")
        raw.rpc("notebook.create", {"user_id": U, "notebook_id": "cyc", "cells": [
                {"id": "cyc-a", "reads": ["b"], "writes": ["a"]}, {"id": "cyc-b", "reads": ["a"], "writes": ["b"]},
                {"id": "free-c", "reads": ["b"]}]})
        res = nc("graph", "cyc")
        ok_rc(res, "graph with a cycle: exit 0")
        low = res[1].lower()
        after = low[low.rfind("cycle"):] if "cycle" in low else ""
        t.ok("cyc-a" in after and "cyc-b" in after and "free-c" not in after, "graph table: lists the cycle's cells",
             res[1])
        t.is_(nc("graph", "nope")[0], 4, "graph unknown notebook: exit 4")

        orig = get("demo-cli")
        raw.rpc("cell.delete", {"user_id": U, "notebook_id": "demo-cli", "cell_id": "demo-cell-2"})
        ok_rc(nc("demo-reset"), "demo-reset: exit 0")
        t.is_(get("demo-cli")["cells"], orig["cells"], "demo-reset: content restored")
        rc, js, err = nj("demo-reset")
        t.is_(rc, 0, "demo-reset --json")
        t.is_((js or {}).get("notebook"), get("demo-cli"), "demo-reset --json: the protocol's result")
        t.is_(nc("demo-reset", "--expect-revision", "1")[0], 5, "demo-reset stale --expect-revision: exit 5")

        res = nc("status")
        ok_rc(res, "status: exit 0")
        t.like(res[1], str(d.proc.pid), "status table: pid")
        t.like(res[1], "local-only", "status table: sync mode")
        rc, js, err = nj("status")
        t.is_(rc, 0, "status --json")
        t.ok(isinstance(js, dict) and js.get("pid") == d.proc.pid and js.get("sync") == {"mode": "local-only"},
             "status --json: the protocol's daemon.status", short(js))


@t.case("exit codes: usage 2, no daemon 3")
def _():
        for desc, args in (("no command", []), ("unknown command", ["frobnicate"]), ("unknown option", ["--bogus", "list"]),
                           ("show without a notebook", ["show"]), ("rename without a name", ["rename", "x"]),
                           ("cell without a subcommand", ["cell"]), ("unknown cell subcommand", ["cell", "zap"]),
                           ("cell edit without a cell", ["cell", "edit", "x"]),
                           ("--code and --file together", ["cell", "add", "x", "--code", "a", "--file", "/dev/null"]),
                           ("bad --position", ["cell", "add", "x", "--position", "two"]),
                           ("bad --expect-revision", ["rename", "--expect-revision", "abc", "x", "y"]),
                           ("extra argument", ["list", "extra"])):
                rc, out, err = nc(*args)
                t.is_(rc, 2, f"usage error ({desc}): exit 2")
                t.ok(err.strip() != "", f"usage error ({desc}): message on stderr", out)
        missing = os.path.join(d.base, "no-such.sock")
        for args in (["list"], ["status"], ["show", "x"]):
                rc, out, err = ctl(*args, socket_path=missing)
                t.is_(rc, 3, f"{' '.join(args)} with no daemon: exit 3")
                t.like(err, "no-such.sock", f"{' '.join(args)} with no daemon: names the socket")
        rc, out, err = ctl("list", socket_path=missing, env={"NOTEBOOKD_SOCKET": d.socket})
        t.is_(rc, 3, "--socket wins over NOTEBOOKD_SOCKET")
        rc, out, err = ctl("list", user=U, env={"NOTEBOOKD_SOCKET": d.socket})
        t.is_(rc, 0, "NOTEBOOKD_SOCKET used without --socket")


@t.case("watch: one line per change, --count, --json; bad arguments")
def _():
        import subprocess
        rpc = d.rpc

        def wait_watches(n):
                deadline = time.monotonic() + tmo(10)
                while time.monotonic() < deadline and rpc("daemon.status")["watches"] != n:
                        time.sleep(0.05)
                return rpc("daemon.status")["watches"] == n

        rpc("notebook.create", {"user_id": U, "notebook_id": "watched"})
        p = subprocess.Popen([NOTEBOOKCTL, "--socket", d.socket, "--user", U, "watch", "--count", "2", "watched"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t.ok(wait_watches(1), "the watch is in place")
        rpc("notebook.update", {"user_id": U, "notebook_id": "watched", "name": "one"})
        rpc("notebook.delete", {"user_id": U, "notebook_id": "watched"})
        try:
                out, err = p.communicate(timeout=tmo(10))
        except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
        lines = out.splitlines()
        t.ok(wait_watches(0), "the watch ends with its connection")
        t.is_(p.returncode, 0, "watch --count 2 exits 0 after two changes")
        t.ok(len(lines) == 2 and "watched revision 2 (local)" in lines[0] and "watched deleted (local)" in lines[1],
             "one line per change: the revision, then the delete", out + err)
        p = subprocess.Popen([NOTEBOOKCTL, "--socket", d.socket, "--user", U, "--json", "watch", "--count", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t.ok(wait_watches(1), "the second watch is in place")
        rpc("notebook.create", {"user_id": U, "notebook_id": "watched-2"})
        out, err = p.communicate(timeout=tmo(10))
        note = json.loads(out) if out.strip() else {}
        t.is_((note.get("notebook_id"), note.get("revision"), note.get("origin")), ("watched-2", 1, "local"),
              "watch --json: one notification object per line")
        rc, out, err = ctl("watch", "--count", "0", socket_path=d.socket, user=U)
        t.is_(rc, 2, "watch --count 0: usage error")
        rc, out, err = ctl("watch", "a", "b", socket_path=d.socket, user=U)
        t.is_(rc, 2, "watch with two notebooks: usage error")
        rc, out, err = ctl("pull", socket_path=d.socket, user=U)
        t.is_(rc, 1, "pull on a local-only daemon: exit 1")
        t.like(err, "local-only", "and it says so")


@t.case("--help everywhere")
def _():
        for args in (["--help"], ["list", "--help"], ["show", "--help"], ["create", "--help"], ["rename", "--help"],
                     ["rm", "--help"], ["cell", "--help"], ["cell", "add", "--help"], ["cell", "edit", "--help"],
                     ["cell", "rm", "--help"], ["cell", "mv", "--help"], ["graph", "--help"], ["demo-reset", "--help"],
                     ["status", "--help"], ["watch", "--help"], ["pull", "--help"], ["table", "--help"],
                     ["table", "create", "--help"], ["table", "check", "--help"], ["help", "table", "check"]):
                rc, out, err = run([NOTEBOOKCTL] + args, timeout=tmo(10))
                t.ok(rc == 0 and out.strip(), f"notebookctl {' '.join(args)}: exit 0, text on stdout",
                     f"rc {rc}\n{out}\n{err}")
        rc, out, err = run([NOTEBOOKCTL, "--help"], timeout=tmo(10))
        for word in ("list", "show", "create", "rename", "rm", "cell", "graph", "demo-reset", "status", "watch",
                     "pull", "table create", "--json"):
                t.like(out, word, f"notebookctl --help mentions {word}")


check_serving(t, d)
raw.close()
t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
