# SPDX-License-Identifier: MIT
"""notebookctl end to end: every subcommand, tables, --json against the protocol, exit codes."""

import json
import os
import pwd
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NOTEBOOKCTL, TAP, Daemon, check_serving, ctl, free_port, make_tempdir,  # noqa: E402
                     parse_json, run, short, tmo)

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


@t.case("list: more notebooks than one page, table and --json")
def _():
        P = "cli-pages"
        raw.rpc("notebook.list", {"user_id": P})
        ids = [f"pg{i:05d}" for i in range(2600)]
        replies = raw.pipeline([{"jsonrpc": "2.0", "id": k, "method": "notebook.create",
                                 "params": {"user_id": P, "notebook_id": i, "name": f"Page {i}"}}
                                for k, i in enumerate(ids)])
        t.is_(sum("result" in r for r in replies), 2600, "2,600 notebooks made (2,602 with blank and demo)")
        want = [f"blank-{P}", f"demo-{P}"] + ids
        rc, out, err = nc("list", user=P)
        t.is_(rc, 0, "list: exit 0")
        lines = out.splitlines()
        t.ok(lines and lines[0].startswith("ID"), "one header", short(lines[:2]))
        t.is_(sum(1 for ln in lines if ln.startswith("ID ")), 1, "only one header over three pages")
        got = [ln.split()[0] for ln in lines[1:]]
        t.is_(sorted(got[:2]) + got[2:], want, "every notebook once, oldest first, over three pages")
        rc, js, err = nj("list", user=P)
        t.is_(rc, 0, "list --json: exit 0")
        t.ok(isinstance(js, dict) and set(js) == {"user_id", "provisioned", "notebooks"},
             "one JSON document with user_id, provisioned, notebooks", short(err))
        if isinstance(js, dict):
                got = [n["id"] for n in js["notebooks"]]
                t.is_(sorted(got[:2]) + got[2:], want, "--json: every notebook once, in order")
                t.is_(js["user_id"], P, "--json: user_id")
                first = raw.rpc("notebook.list", {"user_id": P})["notebooks"]
                t.is_(js["notebooks"][:1000], first, "--json: the summaries as the daemon gives them")


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
                           ("extra argument", ["list", "extra"]),
                           ("conflicts with two notebooks", ["conflicts", "a", "b"]),
                           ("resolve without a notebook", ["resolve", "--keep", "server"]),
                           ("resolve without --keep", ["resolve", "x"]),
                           ("bad --keep", ["resolve", "x", "--keep", "mine"]),
                           ("resolve CELL and --field", ["resolve", "x", "c", "--field", "name", "--keep", "local"]),
                           ("--field with --keep both", ["resolve", "x", "--field", "name", "--keep", "both"])):
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


# Conflicts are what a three-way merge leaves during sync; without a remote none happens, so these
# cases write the rows a merge would have written (sql/0002_sync_ledger.sql, sync_conflicts) into
# the database of a daemon of their own while it is stopped: the cell c1 holds the other device's
# version, c1~conflict right after it ours, and the name field stands at the other device's value.
CF_BOOKS = ("cf-list", "cf-server", "cf-local", "cf-both", "cf-field", "cf-err")
CF_TIME = "2026-11-20T08:00:00.000Z"


def conflict_daemon(books, config=None, env=None):
        cd = Daemon(t, config=config, env=env)
        cd.start()
        for nb in books:
                for args in (("create", "--id", nb, "--name", "Theirs"),
                             ("cell", "add", nb, "--id", "c1", "--code", "theirs"),
                             ("cell", "add", nb, "--id", "c1~conflict", "--after", "c1", "--code", "ours"),
                             ("cell", "add", nb, "--id", "c2", "--code", "other")):
                        rc, out, err = cd.ctl(*args, user=U)
                        if rc != 0:
                                raise RuntimeError(f"set-up: notebookctl {' '.join(args)}: rc {rc}: {err}")
        if cd.stop() != 0:
                raise RuntimeError("set-up: the daemon did not stop cleanly")
        rows = ", ".join(f"('{U}', '{nb}', 'cell:c1', 'c1~conflict', NULL, '{CF_TIME}'), "
                         f"('{U}', '{nb}', 'field:name', NULL, '\"Ours\"', '{CF_TIME}')" for nb in books)
        rc, out, err = cd.sqlite(f"INSERT INTO sync_conflicts (user_id, notebook_id, subject, copy_id, local_value, "
                                 f"created_at) VALUES {rows}")
        if rc != 0:
                raise RuntimeError(f"set-up: sqlite3: {err}")
        return cd.start()


cd = conflict_daemon(CF_BOOKS)


def cc(*args, **kw):
        kw.setdefault("user", U)
        return cd.ctl(*args, **kw)


def cj(*args, **kw):
        kw.setdefault("user", U)
        rc, out, err = cd.ctl(*args, json_out=True, **kw)
        return rc, parse_json(out), err + ("" if parse_json(out) is not None else f"\nstdout not JSON: {out!r}")


def cget(nb):
        return cd.rpc("notebook.get", {"user_id": U, "notebook_id": nb})["notebook"]


def conflicts_of(nb):
        return cd.rpc("sync.conflicts", {"user_id": U, "notebook_id": nb})["conflicts"]


def subjects(nb):
        return sorted(("cell:" + c["cell_id"]) if "cell_id" in c else ("field:" + c["field"]) for c in conflicts_of(nb))


def cells_of(nb):
        return [(c["id"], c["code"]) for c in cget(nb)["cells"]]


def cd_serving(desc):
        """After a resolve: the daemon still serves (restarted when it did not, so that the cases
        after this one still run)."""
        good, detail = cd.serving()
        t.ok(good, desc, detail + "\n" + cd.stderr_tail())
        if not good:
                cd.stop()
                cd.start()


@t.case("conflicts: table, one notebook, --json, none, unknown notebook")
def _():
        res = cc("conflicts")
        ok_rc(res, "conflicts: exit 0")
        lines = res[1].splitlines()
        t.ok(lines and lines[0].split() == ["NOTEBOOK", "WHAT", "SINCE"], "conflicts table: header", res[1])
        t.is_(len(lines), 1 + 2 * len(CF_BOOKS), "conflicts table: a line per conflict of every notebook")
        res = cc("conflicts", "cf-list")
        ok_rc(res, "conflicts NOTEBOOK: exit 0")
        lines = res[1].splitlines()[1:]
        t.is_(len(lines), 2, "conflicts NOTEBOOK: its two conflicts only")
        t.ok(any(ln.startswith("cf-list ") and "cell c1 -> c1~conflict" in ln and CF_TIME in ln for ln in lines),
             "conflicts table: the cell, its copy and the time", res[1])
        t.ok(any(ln.startswith("cf-list ") and 'field name, ours: "Ours"' in ln and CF_TIME in ln for ln in lines),
             "conflicts table: the field with our value", res[1])

        rc, js, err = cj("conflicts", "cf-list")
        t.is_(rc, 0, "conflicts --json: exit 0")
        t.is_(js, cd.rpc("sync.conflicts", {"user_id": U, "notebook_id": "cf-list"}),
              "conflicts --json: the protocol's sync.conflicts result")
        got = sorted(((js or {}).get("conflicts") or []), key=lambda c: "cell_id" in c)
        t.is_(got, [{"user_id": U, "notebook_id": "cf-list", "field": "name", "local": "Ours", "created_at": CF_TIME},
                    {"user_id": U, "notebook_id": "cf-list", "cell_id": "c1", "copy_id": "c1~conflict",
                     "created_at": CF_TIME}], "conflicts --json: both kinds with their members")
        rc, js, err = cj("conflicts")
        t.is_((rc, len((js or {}).get("conflicts") or [])), (0, 2 * len(CF_BOOKS)),
              "conflicts --json without NOTEBOOK: all")

        cd.rpc("notebook.create", {"user_id": U, "notebook_id": "cf-none"})
        res = cc("conflicts", "cf-none")
        ok_rc(res, "conflicts of a notebook without any: exit 0")
        t.is_(res[1], "No conflicts.\n", "conflicts: says there are none")
        rc, js, err = cj("conflicts", "cf-none")
        t.is_((rc, js), (0, {"conflicts": []}), "conflicts --json: an empty list")
        rc, out, err = cc("conflicts", "nope")
        t.is_(rc, 4, "conflicts of an unknown notebook: exit 4")
        t.like(err, "-32010", "conflicts of an unknown notebook: the error on stderr")


@t.case("resolve --keep server: the copy goes, the other device's version stays")
def _():
        rev = cget("cf-server")["revision"]
        res = cc("resolve", "cf-server", "c1", "--keep", "server")
        ok_rc(res, "resolve CELL --keep server: exit 0")
        nb = cget("cf-server")
        t.is_(res[1], f"Resolved 1 conflict in cf-server (revision {nb['revision']}).\n", "resolve: summary line")
        t.is_(nb["revision"], rev + 1, "resolve --keep server: one change (the copy deleted)")
        t.is_(cells_of("cf-server"), [("c1", "theirs"), ("c2", "other")],
              "resolve --keep server: copy gone, c1 as it was")
        t.is_(subjects("cf-server"), ["field:name"],
              "resolve --keep server: the cell's conflict gone, the field's left")
        t.is_(nb["name"], "Theirs", "resolve of a cell leaves the field alone")


@t.case("resolve --keep local: our content moves into the cell, the copy goes")
def _():
        rev = cget("cf-local")["revision"]
        rc, js, err = cj("resolve", "cf-local", "c1", "--keep", "local")
        t.is_(rc, 0, "resolve CELL --keep local --json: exit 0")
        cd_serving("daemon still serving after resolve --keep local")
        nb = cget("cf-local")
        t.is_(cells_of("cf-local"), [("c1", "ours"), ("c2", "other")],
              "resolve --keep local: c1 has our code, copy gone")
        t.is_(subjects("cf-local"), ["field:name"], "resolve --keep local: the cell's conflict gone")
        t.ok(isinstance(js, dict) and js.get("resolved") == 1 and js.get("notebook_id") == "cf-local"
             and js.get("revision") == nb["revision"] and nb["revision"] > rev
             and isinstance(js.get("updated_at"), str),
             "resolve --json: {notebook_id, revision, updated_at, resolved}", short(js) + err)


@t.case("resolve --keep both: the copy stays as a cell, the conflict goes")
def _():
        before = cget("cf-both")
        rc, js, err = cj("resolve", "cf-both", "c1", "--keep", "both")
        t.is_(rc, 0, "resolve CELL --keep both: exit 0")
        t.is_((js or {}).get("resolved"), 1, "resolve --keep both --json: one resolved")
        t.is_(cells_of("cf-both"), [("c1", "theirs"), ("c1~conflict", "ours"), ("c2", "other")],
              "resolve --keep both: both cells stay")
        t.is_(cget("cf-both")["revision"], before["revision"], "resolve --keep both: the notebook did not change")
        t.is_(subjects("cf-both"), ["field:name"], "resolve --keep both: the cell's conflict gone")
        t.is_(cc("resolve", "cf-both", "c1", "--keep", "both")[0], 4, "resolving it again: exit 4 (no conflict there)")


@t.case("resolve --field NAME --keep local: our value is set")
def _():
        rev = cget("cf-field")["revision"]
        res = cc("resolve", "cf-field", "--field", "name", "--keep", "local")
        ok_rc(res, "resolve --field name --keep local: exit 0")
        nb = cget("cf-field")
        t.is_((nb["name"], nb["revision"]), ("Ours", rev + 1),
              "resolve --field --keep local: the name is ours, one change")
        t.is_(res[1], f"Resolved 1 conflict in cf-field (revision {rev + 1}).\n", "resolve --field: summary line")
        t.is_(subjects("cf-field"), ["cell:c1"], "resolve --field: the field's conflict gone, the cell's left")
        t.is_(cells_of("cf-field"), [("c1", "theirs"), ("c1~conflict", "ours"), ("c2", "other")],
              "resolve --field leaves the cells alone")


@t.case("resolve errors: bad --keep, unknown notebook, no conflict there, --expect-revision")
def _():
        before, conflicts = cget("cf-err"), conflicts_of("cf-err")
        for desc, args in (("bad --keep", ["cf-err", "c1", "--keep", "mine"]), ("no --keep", ["cf-err", "c1"]),
                           ("--keep both for a field", ["cf-err", "--field", "name", "--keep", "both"])):
                rc, out, err = cc("resolve", *args)
                t.is_(rc, 2, f"resolve, {desc}: exit 2 (usage)")
                t.like(err, "--keep", f"resolve, {desc}: the message names --keep")
        t.is_((cget("cf-err"), conflicts_of("cf-err")), (before, conflicts), "usage errors changed nothing")

        rc, out, err = cc("resolve", "nope", "--keep", "server")
        t.is_(rc, 4, "resolve in an unknown notebook: exit 4")
        t.like(err, "notebook_id=nope", "resolve in an unknown notebook: says which")
        rc, out, err = cc("resolve", "cf-err", "c2", "--keep", "server")
        t.is_(rc, 4, "resolve a cell without a conflict: exit 4")
        t.like(err, "param=cell_id", "resolve a cell without a conflict: data.param names cell_id")
        rc, js, err = cj("resolve", "cf-err", "--field", "ttl", "--keep", "local")
        t.is_(rc, 4, "resolve a field without a conflict: exit 4")
        t.is_((js or {}).get("code"), -32010, "resolve --json on an error: the error object")
        t.is_(cc("resolve", "cf-none", "--keep", "server")[0], 4, "resolve in a notebook without conflicts: exit 4")

        rev = before["revision"]
        rc, out, err = cc("resolve", "cf-err", "--keep", "server", "--expect-revision", str(rev - 1))
        t.is_(rc, 5, "resolve with a stale --expect-revision: exit 5")
        t.like(err, f"current_revision={rev}", "stale --expect-revision: the current revision on stderr")
        t.is_((cget("cf-err"), conflicts_of("cf-err")), (before, conflicts),
              "a stale --expect-revision changed nothing")
        res = cc("resolve", "cf-err", "--keep", "server", "--expect-revision", str(rev))
        ok_rc(res, "resolve the whole notebook with the right --expect-revision: exit 0")
        t.like(res[1], "Resolved 2 conflicts in cf-err (revision ", "resolve the whole notebook: both conflicts")
        t.is_((conflicts_of("cf-err"), cells_of("cf-err"), cget("cf-err")["name"]),
              ([], [("c1", "theirs"), ("c2", "other")], "Theirs"), "--keep server for all: copy gone, name kept")


check_serving(t, cd, "conflict daemon still serving")
t.is_(cd.stop(), 0, "conflict daemon: SIGTERM, exit 0")


@t.case("status: conflict counts and the hint")
def _():
        # A remote nothing listens on: the daemon syncs (and so lists the notebooks not in sync)
        # without ever reaching a table, so no pull can touch the conflicts.
        conf = (f"[remote]\nendpoint = http://127.0.0.1:{free_port()}\nregion = us-east-1\n"
                "connect_timeout_ms = 200\npull_interval_s = 3600\n")
        env = {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true",
               "HOME": make_tempdir("nbhome-"), "AWS_PROFILE": None, "AWS_SESSION_TOKEN": None,
               "AWS_CONFIG_FILE": None, "AWS_SHARED_CREDENTIALS_FILE": None}
        global cd
        cd = conflict_daemon(["cf-status"], config=conf, env=env)
        res = cc("status")
        ok_rc(res, "status with conflicts: exit 0")
        line = next((ln for ln in res[1].splitlines() if f"{U}/cf-status:" in ln), "")
        t.like(line, ", 2 conflicts", "status: the notebook's line gives its conflict count")
        t.like(res[1], "Resolve with 'notebookctl conflicts' and 'notebookctl resolve'.", "status: the hint")
        rc, js, err = cj("status")
        mine = [n for n in ((js or {}).get("sync") or {}).get("notebooks") or [] if n.get("notebook_id") == "cf-status"]
        t.ok(len(mine) == 1 and mine[0].get("conflicts") == 2 and mine[0].get("state") in ("conflict", "syncing"),
             "status --json: the notebook with conflicts 2", short(js))
        ok_rc(cc("resolve", "cf-status", "--keep", "server"), "resolve them all")
        res = cc("status")
        line = next((ln for ln in res[1].splitlines() if f"{U}/cf-status:" in ln), "")
        t.ok("Resolve with" not in res[1] and "conflict" not in line, "status: no count, no hint once resolved",
             res[1])
        check_serving(t, cd, "conflict daemon with a remote still serving")
        t.is_(cd.stop(), 0, "conflict daemon with a remote: SIGTERM, exit 0")


# What no human-readable output may hold raw: C0 controls, DEL, C1 controls, the line and paragraph
# separators and the bidirectional controls (ALM, LRM, RLM, LRE..RLO, LRI..PDI). Newline is the
# output's own; tab only inside a code or output block (lines indented by four spaces).
NASTY = ("\x1b[31m\x1b]0;t\x07", "\x01\x08\x7f\r", "\x85\x9b\x9f", "\u2028\u2029", "\u061c\u200e\u200f",
         "\u202a\u202b\u202c\u202d\u202e", "\u2066\u2067\u2068\u2069")
EVIL = "ev-" + "|".join(NASTY[i] for i in (0, 2, 3, 4, 5, 6)) + "\x7f\t<"  # no NUL: it ends a C string


def raw_chars(text, block_tabs=False):
        """The characters of text that must not reach a terminal raw (a description of each)."""
        found = []
        for line in text.split("\n"):
                tab_ok = block_tabs and line.startswith("    ")
                for ch in line:
                        o = ord(ch)
                        if ch == "\t" and tab_ok:
                                continue
                        if (o < 0x20 or 0x7f <= o <= 0x9f or o == 0x61c or o in (0x200e, 0x200f)
                                        or 0x2028 <= o <= 0x202e or 0x2066 <= o <= 0x2069 or 0xdc80 <= o <= 0xdcff):
                                found.append(f"U+{o:04X}" if o < 0xdc80 else f"byte 0x{o - 0xdc00:02x}")
        return found


def ctl_bytes(*args, socket_path, user=U, json_out=False):
        """notebookctl's output as bytes decoded with surrogateescape: a byte that is not UTF-8
        shows up as U+DC80..U+DCFF, which raw_chars() reports."""
        argv = [NOTEBOOKCTL, "--socket", socket_path, "--user", user] + (["--json"] if json_out else []) + list(args)
        p = subprocess.run(argv, capture_output=True, timeout=tmo(20))
        return (p.returncode, p.stdout.decode("utf-8", "surrogateescape"),
                p.stderr.decode("utf-8", "surrogateescape"))


def no_raw(res, desc, block_tabs=False):
        rc, out, err = res
        bad = raw_chars(out, block_tabs) + raw_chars(err)
        t.ok(not bad, f"{desc}: no control, separator or bidi character raw",
             f"found {sorted(set(bad))}\nstdout: {out[:1500]!r}\nstderr: {err[:1500]!r}")


@t.case("terminal safety: controls, separators and bidi controls in what the daemon stores are escaped")
def _():
        nb = "tty"
        cells = [{"id": "tty-1", "code": "def f():\n\treturn 1  " + EVIL + "\r\n  # " + NASTY[5] + "\n",
                  "stdout": "out " + EVIL + "\nline 2\t" + NASTY[1], "error": "Traceback " + EVIL,
                  "outputs": [{"mime_type": "text/plain", "data": EVIL, "metadata": {}}]},
                 {"id": "tty-2", "code": "x"}]
        raw.rpc("notebook.create", {"user_id": U, "notebook_id": nb, "name": "name-" + EVIL,
                                    "db_conn_string": "pg://" + EVIL, "cells": cells})
        got = get(nb)
        t.is_(got["name"], "name-" + EVIL, "the daemon keeps such a name as it is")
        t.is_(got["cells"][0]["code"], cells[0]["code"], "and such code")
        s = d.socket

        res = ctl_bytes("show", nb, socket_path=s)
        t.is_(res[0], 0, "show: exit 0")
        no_raw(res, "show", block_tabs=True)
        name_line = next((ln for ln in res[1].split("\n") if ln.startswith("Name:")), "")
        for esc in ("\\x1b[31m", "\\x07", "\\u009b", "\\u2028", "\\u061c", "\\u202e", "\\u2069", "\\x7f", "\\t<"):
                t.ok(esc in name_line, f"show: the name shows {esc}", name_line)
        t.like(res[1], "    \treturn 1", "show: a tab in code stays (the code's layout)")
        t.like(res[1], "    > line 2\t", "show: and in stdout")
        t.ok("\\r" in res[1] and "\\x08" in res[1] and "\\u0085" in res[1], "show: CR, BS and NEL in code and stdout escaped",
             res[1])

        for args in (("list",), ("graph", nb), ("rename", nb, "plain"), ("cell", "edit", nb, "tty-2", "--code", "y")):
                res = ctl_bytes(*args, socket_path=s)
                t.is_(res[0], 0, f"{' '.join(args)}: exit 0")
                no_raw(res, " ".join(args))
        raw.rpc("notebook.update", {"user_id": U, "notebook_id": nb, "name": "name-" + EVIL})
        rc, out, err = ctl_bytes("list", socket_path=s)
        t.like(out, "name-ev-\\x1b[31m", "list: the name escaped")

        # Names from the command line reach the daemon as they are; only the display escapes them.
        res = ctl_bytes("create", "--id", "tty-made", "--name", "made-" + EVIL, socket_path=s)
        t.is_(res[0], 0, "create --name with controls: exit 0")
        t.is_(get("tty-made")["name"], "made-" + EVIL, "create --name: stored exactly")
        res = ctl_bytes("show", "tty\x1b[2J\u202e", socket_path=s)
        t.ok(res[0] != 0, "show of an id with controls: refused", res)
        no_raw(res, "the refusal")

        for args in (("show", nb), ("list",), ("graph", nb)):
                rc, out, err = ctl_bytes(*args, socket_path=s, json_out=True)
                js = parse_json(out)
                t.ok(rc == 0 and js is not None, f"--json {' '.join(args)}: exit 0, JSON", out[:300])
                t.ok(not raw_chars(out.replace("\n", " ").replace("\t", " ")),
                     f"--json {' '.join(args)}: nothing raw, JSON's \\u escapes instead", out[:600])
        rc, out, err = ctl_bytes("show", nb, socket_path=s, json_out=True)
        t.is_(parse_json(out), raw.rpc("notebook.get", {"user_id": U, "notebook_id": nb}),
              "--json show: still the protocol's result, exactly")


class FakeDaemon:
        """A socket that answers notebookctl's requests with replies of its own, full of what a
        terminal must not see: a daemon notebookctl cannot trust, to reach the printing of errors,
        status, conflicts and watch, and bytes that are not UTF-8."""

        def __init__(self, replies):
                self.replies = replies  # method -> list of raw lines (bytes, "%ID%" for the request id)
                self.path = os.path.join(make_tempdir(), "fake.sock")
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.bind(self.path)
                self.sock.listen(8)
                threading.Thread(target=self.serve, daemon=True).start()

        def serve(self):
                while True:
                        try:
                                conn, _ = self.sock.accept()
                        except OSError:
                                return
                        threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

        def answer(self, conn):
                with conn, conn.makefile("rb") as f:
                        for line in f:
                                rq = json.loads(line)
                                for r in self.replies.get(rq.get("method"), []):
                                        conn.sendall(r.replace(b"%ID%", str(rq.get("id")).encode()) + b"\n")
                                time.sleep(0.2)

        def close(self):
                self.sock.close()


@t.case("terminal safety: what a daemon answers (errors, status, conflicts, watch) is escaped")
def _():
        E = json.dumps(EVIL)[1:-1].encode()  # as JSON escapes
        bad_utf8 = b"\x9b\xc0\x9b\xed\xa0\x80"  # a lone C1 byte, an overlong ESC, a surrogate

        def result(obj):
                return b'{"jsonrpc":"2.0","id":%ID%,"result":' + obj + b"}"

        fake = FakeDaemon({
                "notebook.get": [b'{"jsonrpc":"2.0","id":%ID%,"error":{"code":-32010,"message":"not found: ' + E
                                 + b'","data":{"param' + E + b'":"v' + E + b'"}}}'],
                "notebook.delete": [result(b'{"notebook_id":"x' + bad_utf8 + b'","revision":3}')],
                "notebook.list": [result(b'{"user_id":"u' + E + b'","provisioned":false,"notebooks":[{"id":"i' + E
                                         + b'","name":"n' + bad_utf8 + b'","cell_count":1,"revision":1,'
                                         b'"updated_at":"t' + E + b'"}],"next_cursor":null}')],
                "notebook.graph": [result(b'{"notebook_id":"g' + E + b'","revision":1,"edges":[{"from":"a' + E
                                          + b'","to":"b' + E + b'","vars":["v' + E + b'"]}],"order":["a' + E
                                          + b'"],"cycles":[["c' + E + b'"]]}')],
                "daemon.status": [result(b'{"version":"1' + E + b'","k' + E + b'":["x' + E + b'"],"sync":{"mode":"m'
                                         + E + b'","notebooks":[{"user_id":"u' + E + b'","notebook_id":"n' + E
                                         + b'","state":"s' + E + b'","revision":1,"base_revision":0,"error":"boom'
                                         + E + b'"}]}}')],
                "sync.conflicts": [result(b'{"conflicts":[{"notebook_id":"n' + E + b'","cell_id":"c' + E
                                          + b'","copy_id":"c~' + E + b'","created_at":"t' + E + b'"},{"notebook_id":"n'
                                          + b'","field":"f' + E + b'","local":"l' + E + b'","created_at":"t"}]}')],
                "sync.resolve": [result(b'{"notebook_id":"r' + E + b'","revision":4,"resolved":1}')],
                "notebook.watch": [result(b'{"user_id":"u' + E + b'"}'),
                                   b'{"jsonrpc":"2.0","method":"notebook.changed","params":{"notebook_id":"w' + E
                                   + b'","revision":2,"origin":"o' + E + b'"}}'],
        })
        for args in (("show", "x"), ("rm", "x"), ("list",), ("graph", "g"), ("status",), ("conflicts",),
                     ("resolve", "r", "--keep", "local"), ("watch", "--count", "1")):
                res = ctl_bytes(*args, socket_path=fake.path)
                t.ok(res[0] not in ("timeout",) and (res[1] or res[2]), f"fake daemon, {' '.join(args)}: an answer",
                     res)
                no_raw(res, f"fake daemon, {' '.join(args)}")
                if args[0] in ("watch",):
                        continue
                rc, out, err = ctl_bytes(*args, socket_path=fake.path, json_out=True)
                t.ok(not raw_chars(out.replace("\n", " ").replace("\t", " ")) and not raw_chars(err),
                     f"fake daemon, --json {' '.join(args)}: nothing raw", f"{out[:800]!r}\n{err[:800]!r}")
                if out.strip():
                        t.ok(parse_json(out) is not None, f"fake daemon, --json {' '.join(args)}: valid JSON", out[:800])
        rc, out, err = ctl_bytes("show", "x", socket_path=fake.path)
        t.ok(rc == 4 and "not found: ev-\\x1b[31m" in err and "param" in err, "an error from the daemon: escaped, "
             "exit 4", err)
        rc, out, err = ctl_bytes("rm", "x", socket_path=fake.path)
        t.like(out, "x\\x9b\\xc0\\x9b\\xed\\xa0\\x80", "bytes that are not UTF-8: one \\xHH each")
        rc, out, err = ctl_bytes("rm", "x", socket_path=fake.path, json_out=True)
        t.is_((parse_json(out) or {}).get("notebook_id"), "x\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd",
              "--json: each as U+FFFD, still valid JSON")
        fake.close()


@t.case("--help everywhere")
def _():
        for args in (["--help"], ["list", "--help"], ["show", "--help"], ["create", "--help"], ["rename", "--help"],
                     ["rm", "--help"], ["cell", "--help"], ["cell", "add", "--help"], ["cell", "edit", "--help"],
                     ["cell", "rm", "--help"], ["cell", "mv", "--help"], ["graph", "--help"], ["demo-reset", "--help"],
                     ["status", "--help"], ["watch", "--help"], ["pull", "--help"], ["conflicts", "--help"],
                     ["resolve", "--help"], ["table", "--help"],
                     ["table", "create", "--help"], ["table", "check", "--help"], ["help", "table", "check"]):
                rc, out, err = run([NOTEBOOKCTL] + args, timeout=tmo(10))
                t.ok(rc == 0 and out.strip(), f"notebookctl {' '.join(args)}: exit 0, text on stdout",
                     f"rc {rc}\n{out}\n{err}")
        rc, out, err = run([NOTEBOOKCTL, "--help"], timeout=tmo(10))
        for word in ("list", "show", "create", "rename", "rm", "cell", "graph", "demo-reset", "status", "watch",
                     "pull", "conflicts", "resolve", "table create", "--json"):
                t.like(out, word, f"notebookctl --help mentions {word}")


check_serving(t, d)
raw.close()
t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
