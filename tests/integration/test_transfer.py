# SPDX-License-Identifier: MIT
"""notebookctl import and export: the app's JSON files and Jupyter notebooks, in and out.

Random notebooks come from a seeded generator: the seed is printed; NB_SEED=N replays a run.
Every .ipynb written is checked with nbformat.validate (Debian's python3-nbformat)."""

import base64
import json
import os
import pty
import random
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NOTEBOOKCTL, TAP, Daemon, check_serving, make_tempdir, parse_json, short,  # noqa: E402
                     tmo)

try:
        import nbformat
except ImportError:  # PYTHON3 is not Debian's: validate through it
        nbformat = None

t = TAP()
d = Daemon(t)
d.start()
raw = d.client()
WORK = make_tempdir("nbtransfer-")
SEED = int(os.environ.get("NB_SEED", str(int(time.time() * 1000) % 1000000007)))
t.diag(f"NB_SEED={SEED}")
rng = random.Random(SEED)
DEFAULT_USER = "root" if os.getuid() == 0 else None  # a privileged peer acts for its login's name


def nc(*args, user=None, **kw):
        return d.ctl(*args, user=user, **kw)


def nj(*args, user=None, **kw):
        rc, out, err = d.ctl(*args, user=user, json_out=True, **kw)
        return rc, parse_json(out), err + ("" if parse_json(out) is not None else f"\nstdout: {short(out)}")


def rpc(method, params):
        return raw.rpc(method, params)


def call(method, params):
        return raw.call(method, params)


def get(nb, user):
        r = call("notebook.get", {"user_id": user, "notebook_id": nb})
        return r.get("result", {}).get("notebook")


def write(path, obj=None, text=None):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
                f.write(text if text is not None else json.dumps(obj, indent=2))
        return path


CELL_KEYS = ("id", "type", "code", "status", "stdout", "outputs", "error", "reads", "writes")


def content(nb, ttl=True):
        """What import and export carry of a notebook: name, connection string, (ttl,) cells."""
        c = {"name": nb["name"], "db_conn_string": nb["db_conn_string"],
             "cells": [{k: cell[k] for k in CELL_KEYS} for cell in nb["cells"]]}
        if ttl:
                c["ttl"] = nb["ttl"]
        return c


def app_cell(i, **kw):
        c = {"id": f"c{i}", "type": "python", "code": f"v{i} = {i}", "status": "success", "stdout": f"{i}\n",
             "outputs": [{"mime_type": "text/plain", "data": str(i), "metadata": {}}], "error": None,
             "reads": [], "writes": [f"v{i}"]}
        c.update(kw)
        return c


def app_file(nb_id, user="alice", ncells=3, **kw):
        nb = {"id": nb_id, "user_id": user, "name": f"Name {nb_id}", "db_conn_string": None,
              "cells": [app_cell(i) for i in range(ncells)], "revision": 7}
        if user is None:
                del nb["user_id"]
        nb.update(kw)
        return nb


def results(js):
        return {os.path.basename(r["path"]): r for r in (js or {}).get("results", [])}


def validate_ipynb(path):
        """(ok, detail): nbformat.validate of the file."""
        if nbformat is not None:
                try:
                        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
                        nbformat.validate(nb)
                        return True, ""
                except Exception as e:  # noqa: BLE001
                        return False, f"{type(e).__name__}: {short(str(e), 2000)}"
        p = subprocess.run(["/usr/bin/python3", "-c",
                            "import sys, nbformat; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))",
                            path], capture_output=True, text=True)
        return p.returncode == 0, p.stderr


# --------------------------------------------------------------------------------------------
# The seed's backend/storage.py load_notebook, re-implemented: what the old app reads of a file.

class Output:
        def __init__(self, mime_type, data, metadata):
                assert isinstance(mime_type, str)
                assert isinstance(data, (str, dict, list))
                assert isinstance(metadata, dict)
                self.mime_type, self.data, self.metadata = mime_type, data, metadata


class Cell:
        def __init__(self, d):
                self.id = d["id"]
                self.type = {"python": "python", "sql": "sql"}[d["type"]]  # CellType(...)
                self.code = d["code"]
                self.status = {"idle", "running", "success", "error"} & {d.get("status", "idle")}
                assert self.status, "CellStatus"
                self.stdout = d.get("stdout", "")
                self.outputs = [Output(o["mime_type"], o["data"], o.get("metadata", {})) for o in d.get("outputs", [])]
                self.error = d.get("error")
                self.reads = set(d.get("reads", []))
                self.writes = set(d.get("writes", []))


def seed_load_notebook(path, legacy_user="legacy"):
        with open(path) as f:
                data = json.load(f)
        nb = {"id": data["id"], "user_id": data.get("user_id", legacy_user), "name": data.get("name"),
              "db_conn_string": data.get("db_conn_string"),
              "cells": [Cell(c) for c in data.get("cells", [])], "revision": data.get("revision", 0)}
        return nb


# --------------------------------------------------------------------------------------------
# Random notebooks

UNICODE = ["é", "ß", "日本語", "😀", "עברית", "\u0301", "Ω", "\t", "\n", "\\", "\"", "'", "%", "{}", "\u00a0"]


def rtext(n=20, lines=True):
        parts = []
        for _ in range(rng.randint(0, n)):
                r = rng.random()
                if r < 0.5:
                        parts.append(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 =+()[]:.,"))
                elif r < 0.8:
                        parts.append(rng.choice(UNICODE if lines else [u for u in UNICODE if u not in "\t\n"]))
                elif lines:
                        parts.append("\n")
        return "".join(parts)


def rjson(depth=0):
        r = rng.random()
        if depth > 2 or r < 0.3:
                return rng.choice([rtext(8), rng.randint(-1000, 1000), 0.5, True, False, None])
        if r < 0.65:
                return {rtext(6, False) or "k": rjson(depth + 1) for _ in range(rng.randint(0, 3))}
        return [rjson(depth + 1) for _ in range(rng.randint(0, 3))]


def routput():
        kind = rng.choice(["text", "html", "png", "json", "json-list", "vnd", "svg", "structured-text", "latex"])
        md = rng.choice([{}, {}, {"width": rng.randint(1, 900)}, {"note": rtext(5), "nested": {"a": [1, 2]}}])
        if kind == "text":
                return {"mime_type": "text/plain", "data": rtext(40), "metadata": md}
        if kind == "html":
                return {"mime_type": "text/html", "data": f"<table><tr><td>{rtext(10)}</td></tr></table>",
                        "metadata": md}
        if kind == "png":
                return {"mime_type": "image/png",
                        "data": base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.randint(1, 90)))).decode(),
                        "metadata": md}
        if kind == "svg":
                return {"mime_type": "image/svg+xml", "data": "<svg xmlns='http://www.w3.org/2000/svg'/>", "metadata": md}
        if kind == "json":
                return {"mime_type": "application/json", "data": {"v": rjson(), "s": rtext(5)}, "metadata": md}
        if kind == "json-list":
                return {"mime_type": "application/json", "data": [rjson(), rjson()], "metadata": md}
        if kind == "vnd":
                return {"mime_type": "application/vnd.plotly.v1+json", "data": {"data": [{"x": [1, 2], "y": [3, 4]}],
                                                                               "layout": {}}, "metadata": md}
        if kind == "latex":
                return {"mime_type": "text/latex", "data": "$x^2$", "metadata": md}
        # a text type whose data is structured: nbformat holds it as JSON text
        return {"mime_type": rng.choice(["text/plain", "application/x-custom"]),
                "data": rng.choice([{"a": rjson()}, [1, "two", rjson()]]), "metadata": md}


def rid(i):
        return rng.choice([f"cell-{i}", f"c{i}-{rng.randrange(10**6)}", f"id with spaces {i}", f"ünï.{i}",
                           f"{'x' * 100}{i}", f"a/b:{i}"])


def random_notebook(nb_id, with_ttl=True):
        cells = []
        for i in range(rng.randint(0, 8)):
                typ = rng.choice(["python", "python", "sql"])
                code = rtext(60)
                if rng.random() < 0.15:
                        code = "%%sql\n" + code  # a Python cell that starts like a SQL one
                if typ == "sql" and rng.random() < 0.2:
                        code = rng.choice(["", "\n", "SELECT 1"])
                status = rng.choice(["idle", "running", "success", "error"])
                err = None
                if status == "error" or rng.random() < 0.1:
                        err = rng.choice([f"Traceback (most recent call last):\n  File \"<cell>\", line 1\nNameError: name '{rtext(3, False)}' is not defined",
                                          rtext(20), "ZeroDivisionError: division by zero", "", "\n\n"])
                names = list({rtext(4, False) or "v" for _ in range(rng.randint(0, 4))})
                cells.append({"id": rid(i) if rng.random() < 0.5 else f"r{i}", "type": typ, "code": code,
                              "status": status, "stdout": rtext(30) if rng.random() < 0.5 else "",
                              "outputs": [routput() for _ in range(rng.randint(0, 4))], "error": err,
                              "reads": names[:2], "writes": names[2:]})
        # ids must be distinct within a notebook
        seen = set()
        for c in cells:
                while c["id"] in seen:
                        c["id"] += "+"
                seen.add(c["id"])
        p = {"notebook_id": nb_id, "name": rng.choice([None, rtext(20, False) or "n"]),
             "db_conn_string": rng.choice([None, "postgresql://u@localhost/db", rtext(10, False)]),
             "cells": cells}
        if with_ttl:
                p["ttl"] = rng.choice([None, 2000000000, 1900000000])
        return p


# --------------------------------------------------------------------------------------------

@t.case("app files with and without user_id; --user; the daemon's default user")
def _():
        src = os.path.join(WORK, "app1")
        write(os.path.join(src, "own.json"), app_file("own", user="alice"))
        write(os.path.join(src, "legacy.json"), app_file("legacy", user=None))
        rc, js, err = nj("import", src, user="bob")
        t.is_(rc, 0, "import of a directory: exit 0")
        t.is_((js or {}).get("imported"), 2, "both imported", )
        own, legacy = get("own", "alice"), get("legacy", "bob")
        t.ok(own is not None, "a file's own user_id decides: alice's notebook, though --user bob")
        t.ok(get("own", "bob") is None, "nothing under bob for that file")
        t.ok(legacy is not None, "a legacy file (no user_id) goes to --user")
        want = app_file("own")
        t.is_(content(own, ttl=False), {"name": want["name"], "db_conn_string": None, "cells": want["cells"]},
              "stored content is the file's, every cell field")
        t.is_(own["revision"], 1, "the app's revision is not carried over: a new notebook starts at 1")
        if DEFAULT_USER:
                src2 = os.path.join(WORK, "app1b")
                write(os.path.join(src2, "legacy2.json"), app_file("legacy2", user=None))
                rc, out, err = nc("import", src2)
                t.is_(rc, 0, "legacy file without --user: exit 0")
                t.ok(get("legacy2", DEFAULT_USER) is not None, f"goes to the daemon's default user ({DEFAULT_USER})")
        else:
                t.skip("legacy file without --user", "not root")


@t.case("idempotence: a second run changes nothing and says so")
def _():
        src = os.path.join(WORK, "idem")
        for i in range(20):
                write(os.path.join(src, f"n{i}.json"), app_file(f"idem-{i}", user="carol", ncells=i % 4))
        rc, out, err = nc("import", src)
        t.is_(rc, 0, "first run: exit 0")
        t.like(out, "20 imported", "first run: 20 imported")
        revs = {i: get(f"idem-{i}", "carol")["revision"] for i in range(20)}
        rc, out, err = nc("import", src)
        t.is_(rc, 0, "second run: exit 0")
        t.like(out, "0 imported, 0 replaced, 20 unchanged, 0 skipped", "second run: all unchanged")
        t.like(out, "Nothing to do", "second run says there was nothing to do")
        t.is_({i: get(f"idem-{i}", "carol")["revision"] for i in range(20)}, revs, "revisions unchanged")
        rc, js, err = nj("import", src)
        t.ok(rc == 0 and all(r["result"] == "unchanged" for r in js["results"]) and len(js["results"]) == 20,
             "--json: every file unchanged", short(js))


@t.case("a notebook that exists with other content is skipped, unless --replace")
def _():
        src = os.path.join(WORK, "differ")
        f = write(os.path.join(src, "d.json"), app_file("differ", user="dave"))
        rc, out, err = nc("import", f)
        t.is_(rc, 0, "imported")
        before = get("differ", "dave")
        nb = app_file("differ", user="dave")
        nb["cells"][1]["code"] = "changed = True"
        write(f, nb)
        rc, js, err = nj("import", f)
        t.is_(rc, 1, "differing content: exit 1")
        r = results(js).get("d.json", {})
        t.ok(r.get("result") == "skipped" and "other content" in (r.get("reason") or "")
             and "--replace" in r.get("reason", ""), "named as skipped with the reason", short(js))
        t.is_(get("differ", "dave"), before, "stored notebook untouched")
        rc, out, err = nc("import", f)
        t.like(out, "skipped", "text summary lists it")
        t.like(out, "d.json: notebook differ exists with other content", "with path and reason")

        # ttl counts only where the file gives one
        rpc("notebook.update", {"user_id": "dave", "notebook_id": "differ", "ttl": 2000000000})
        write(f, app_file("differ", user="dave"))
        rc, out, err = nc("import", f)
        t.ok(rc == 0 and "1 unchanged" in out, "a ttl set here does not make an app file (no ttl) differ",
             out + err)

        nb["name"] = "Renamed"
        nb["cells"].append(app_cell(9, type="sql", code="SELECT 9"))
        write(f, nb)
        rev = get("differ", "dave")["revision"]
        rc, out, err = nc("import", "--replace", f)
        t.is_(rc, 0, "--replace: exit 0")
        t.like(out, "1 replaced", "--replace: replaced")
        after = get("differ", "dave")
        t.is_(after["revision"], rev + 1, "--replace: one revision")
        t.is_(content(after, ttl=False), {"name": "Renamed", "db_conn_string": None, "cells": nb["cells"]},
              "--replace: the file's name and cells")
        t.is_(after["ttl"], 2000000000, "--replace: a ttl the file does not give stays")
        rc, out, err = nc("import", "--replace", f)
        t.ok(rc == 0 and "1 unchanged" in out, "--replace again: unchanged", out)


@t.case("bad files are named with their reason and nothing of them is stored")
def _():
        src = os.path.join(WORK, "bad")
        write(os.path.join(src, "good.json"), app_file("bad-good", user="erin"))
        write(os.path.join(src, "notjson.json"), text="{\"id\": \"bad-nj\", \"cells\": [")
        write(os.path.join(src, "garbage.json"), text="hello\x00world")
        write(os.path.join(src, "array.json"), text="[1, 2]")
        write(os.path.join(src, "wrongtype.json"), app_file("bad-wt", user="erin", cells={"a": 1}))
        nb = app_file("bad-code", user="erin")
        nb["cells"][2]["code"] = 42
        write(os.path.join(src, "codeint.json"), nb)
        nb = app_file("bad-type", user="erin")
        nb["cells"][1]["type"] = "markdown"
        write(os.path.join(src, "celltype.json"), nb)
        nb = app_file("bad-big", user="erin")
        nb["cells"][2]["code"] = "x" * (1024 * 1024 + 1)  # over the daemon's 1 MiB per code
        write(os.path.join(src, "bigcode.json"), nb)
        nb = app_file("bad-late", user="erin", ncells=5)
        nb["cells"][4]["reads"] = ["r" * 300]  # the last cell over a limit: nothing of the file stored
        write(os.path.join(src, "latebad.json"), nb)
        # each cell within the limits, the whole over the 16 MiB request line: the daemon skips the
        # line, and the files after it still go through on the same connection
        write(os.path.join(src, "bigline.json"),
              app_file("bad-line", user="erin", cells=[app_cell(i, code="y" * 900000) for i in range(19)]))
        huge = os.path.join(src, "huge.json")
        with open(huge, "w") as fh:
                fh.truncate(40 * 1024 * 1024)  # sparse: its size alone makes it too large
        write(os.path.join(src, "dupkey.json"),
              text='{"id": "bad-dup", "user_id": "erin", "cells": [], "cells": [{"id": "a", "type": "python", "code": ""}]}')
        os.mkfifo(os.path.join(src, "fifo.json"))
        write(os.path.join(src, "README.txt"), text="not a notebook")
        write(os.path.join(src, ".hidden.json"), text="nope")
        os.makedirs(os.path.join(src, "sub"), exist_ok=True)
        write(os.path.join(src, "sub", "deep.json"), app_file("bad-deep", user="erin"))

        rc, js, err = nj("import", src)
        t.is_(rc, 1, "a skipped file: exit 1")
        r = results(js)
        t.is_(sorted(r), sorted(["good.json", "notjson.json", "garbage.json", "array.json", "wrongtype.json",
                                 "codeint.json", "celltype.json", "bigcode.json", "latebad.json", "huge.json",
                                 "deep.json", "dupkey.json", "fifo.json", "bigline.json"]),
              "every .json file named, subdirectories too; other and hidden files left out")
        t.is_((js or {}).get("ignored"), 1, "README.txt counted as ignored")
        expect = {"good.json": ("imported", None), "deep.json": ("imported", None),
                  "notjson.json": ("skipped", "not JSON"), "garbage.json": ("skipped", "not JSON"),
                  "array.json": ("skipped", "not an object"), "wrongtype.json": ("skipped", "\"cells\" is not a list"),
                  "codeint.json": ("skipped", "cells[2]: \"code\" is not a string"),
                  "celltype.json": ("skipped", "not python or sql"),
                  "bigcode.json": ("skipped", "too large"), "latebad.json": ("skipped", "reads"),
                  "huge.json": ("skipped", "too large"), "dupkey.json": ("skipped", "\"cells\" is repeated"),
                  "fifo.json": ("skipped", "not a regular file"), "bigline.json": ("skipped", "too large")}
        for name, (res, needle) in expect.items():
                got = r.get(name, {})
                t.ok(got.get("result") == res and (needle is None or needle in (got.get("reason") or "")),
                     f"{name}: {res}" + (f" ({needle})" if needle else ""), short(got))
        for nb_id in ("bad-wt", "bad-code", "bad-type", "bad-big", "bad-late", "bad-nj", "bad-dup", "bad-line"):
                t.ok(get(nb_id, "erin") is None, f"nothing stored for {nb_id}")
        t.ok(get("bad-good", "erin") is not None and get("bad-deep", "erin") is not None,
             "the good files of the directory are stored")
        rc, out, err = nc("import", src)
        t.like(out, "skipped ", "text summary: skipped lines")
        t.like(out, "huge.json: too large", "text summary names huge.json with its reason")
        rc, out, err = nc("import", os.path.join(WORK, "does-not-exist.json"))
        t.ok(rc == 1 and "cannot open" in out, "a missing file: skipped, exit 1", out + err)


@t.case("1500 files, pipelined")
def _():
        src = os.path.join(WORK, "many")
        os.makedirs(src)
        n = 1500
        for i in range(n):
                with open(os.path.join(src, f"m{i:05d}.json"), "w") as f:
                        json.dump(app_file(f"many-{i}", user="frank", ncells=6), f, indent=2)
        t0 = time.monotonic()
        rc, out, err = nc("import", "--quiet", src, timeout=tmo(120))
        secs = time.monotonic() - t0
        t.is_(rc, 0, f"{n} files: exit 0")
        t.like(out, f"{n} imported", f"{n} imported")
        t.diag(f"{n} files in {secs:.2f} s, {n / secs:.0f} files/s")
        t.ok(secs < tmo(15), f"{n} files within 15 s ({secs:.2f} s)")
        t0 = time.monotonic()
        rc, out, err = nc("import", "--window", "1", "--quiet", src, timeout=tmo(120))
        t.ok(rc == 0 and f"{n} unchanged" in out, "again with --window 1: all unchanged", out)
        t.diag(f"unchanged check without pipelining: {time.monotonic() - t0:.2f} s")


@t.case("progress only on a terminal")
def _():
        src = os.path.join(WORK, "prog")
        for i in range(300):
                write(os.path.join(src, f"p{i}.json"), app_file(f"prog-{i}", user="gina", ncells=2))
        master, slave = pty.openpty()
        p = subprocess.run([NOTEBOOKCTL, "--socket", d.socket, "import", src], stdout=subprocess.PIPE,
                           stderr=slave, text=True, timeout=tmo(60))
        os.close(slave)
        chunks = []
        while True:
                try:
                        b = os.read(master, 65536)
                except OSError:
                        break
                if not b:
                        break
                chunks.append(b)
        os.close(master)
        tty = b"".join(chunks).decode(errors="replace")
        t.ok(p.returncode == 0 and "files/s" in tty and "/300 files" in tty and "\r" in tty,
             "stderr a terminal: a progress line (count, rate)", repr(tty[-300:]))
        rc, out, err = nc("import", src)
        t.ok(rc == 0 and err == "", "stderr not a terminal: no progress", repr(err))
        master, slave = pty.openpty()
        p = subprocess.run([NOTEBOOKCTL, "--socket", d.socket, "import", "--quiet", src], stdout=subprocess.PIPE,
                           stderr=slave, text=True, timeout=tmo(60))
        os.close(slave)
        os.set_blocking(master, False)
        try:
                left = os.read(master, 65536)
        except OSError:
                left = b""
        os.close(master)
        t.ok(p.returncode == 0 and b"files/s" not in left, "--quiet: none on a terminal either", repr(left))


FOREIGN = {
        "nbformat": 4, "nbformat_minor": 4,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
                {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "\n", "Some *text*"]},
                {"cell_type": "code", "metadata": {}, "execution_count": 3, "source": ["x = 1\n", "print(x)"],
                 "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]},
                             {"output_type": "stream", "name": "stderr", "text": "warn\n"}]},
                {"cell_type": "code", "metadata": {}, "execution_count": 4, "source": "%%sql\nSELECT * FROM t",
                 "outputs": [{"output_type": "execute_result", "execution_count": 4, "metadata": {},
                              "data": {"text/plain": ["a\n", "b"], "text/html": "<b>a</b>"}}]},
                {"cell_type": "code", "metadata": {}, "execution_count": None, "source": "img()",
                 "outputs": [{"output_type": "display_data", "metadata": {"image/png": {"width": 10}},
                              "data": {"image/png": "iVBORw0KGgo=\n", "application/json": {"a": [1, 2]}}}]},
                {"cell_type": "code", "metadata": {}, "execution_count": 5, "source": "1/0",
                 "outputs": [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero",
                              "traceback": ["Traceback", "ZeroDivisionError: division by zero"]}]},
                {"cell_type": "raw", "metadata": {}, "source": "raw text"},
        ],
}


@t.case(".ipynb import: a Jupyter notebook not written by notebookctl")
def _():
        f = write(os.path.join(WORK, "jup", "My Analysis.ipynb"), FOREIGN)
        rc, js, err = nj("import", f, user="hank")
        t.is_(rc, 0, "exit 0")
        r = results(js).get("My Analysis.ipynb", {})
        t.ok(r.get("result") == "imported" and "comment" in (r.get("note") or ""),
             "imported, with a note on markdown and raw cells", short(js))
        nb = get("My Analysis", "hank")
        t.ok(nb is not None, "notebook id from the file name")
        if nb is None:
                return
        t.is_(nb["name"], "My Analysis", "name from the file name")
        c = nb["cells"]
        t.is_([x["id"] for x in c], [f"cell-{i}" for i in range(1, 7)], "cell ids cell-N without nbformat 4.5 ids")
        t.is_((c[0]["type"], c[0]["code"]), ("python", "# # Title\n#\n# Some *text*"), "markdown: a comment cell")
        t.is_((c[1]["code"], c[1]["stdout"], c[1]["status"]), ("x = 1\nprint(x)", "1\nwarn\n", "success"),
              "code cell: source joined, streams in stdout, executed: success")
        t.is_((c[2]["type"], c[2]["code"]), ("sql", "SELECT * FROM t"), "%%sql cell: a SQL cell")
        t.is_(c[2]["outputs"], [{"mime_type": "text/plain", "data": "a\nb", "metadata": {}},
                                {"mime_type": "text/html", "data": "<b>a</b>", "metadata": {}}],
              "execute_result: one output per MIME type")
        t.is_(c[3]["outputs"], [{"mime_type": "image/png", "data": "iVBORw0KGgo=\n", "metadata": {"width": 10}},
                                {"mime_type": "application/json", "data": {"a": [1, 2]}, "metadata": {}}],
              "display_data: image base64, JSON as JSON, metadata per type")
        t.is_(c[3]["status"], "idle", "never executed: idle")
        t.is_((c[4]["status"], c[4]["error"]), ("error", "Traceback\nZeroDivisionError: division by zero"),
              "error output: error status and text")
        t.is_(c[5]["code"], "# raw text", "raw: a comment cell")
        rc, out, err = nc("import", f, user="hank")
        t.ok(rc == 0 and "1 unchanged" in out, "again: unchanged", out)
        bad = dict(FOREIGN, nbformat=3)
        f3 = write(os.path.join(WORK, "jup", "old.ipynb"), bad)
        rc, out, err = nc("import", f3, user="hank")
        t.ok(rc == 1 and "nbformat" in out, "nbformat 3: skipped with reason", out)


def load_export(nb_id, user, fmt):
        path = os.path.join(WORK, "exp", f"{user}-{nb_id}.{fmt}".replace("/", "_"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rc, out, err = nc("export", nb_id, "--format", fmt, "-o", path, user=user)
        return rc, path, err


@t.case("export json: the app's file format, read back by the app's load_notebook")
def _():
        rpc("notebook.list", {"user_id": "ivy"})
        rc, path, err = load_export("demo-ivy", "ivy", "json")
        t.is_(rc, 0, "export -o: exit 0")
        t.is_(sorted(os.listdir(os.path.dirname(path))), [os.path.basename(path)], "no temporary file left")
        with open(path) as f:
                data = json.load(f)
        t.is_(list(data), ["id", "user_id", "name", "db_conn_string", "cells", "revision"],
              "exactly storage.py's fields")
        t.is_(list(data["cells"][0]), list(CELL_KEYS), "cells with exactly the Cell fields")
        try:
                nb = seed_load_notebook(path)
                good = nb["id"] == "demo-ivy" and nb["user_id"] == "ivy" and len(nb["cells"]) == 6
                t.ok(good, "load_notebook reads it", short(data))
        except Exception as e:  # noqa: BLE001
                t.ok(False, "load_notebook reads it", repr(e))
        demo = get("demo-ivy", "ivy")
        t.is_(data["cells"], content(demo)["cells"], "cells as stored")
        t.is_(data["revision"], demo["revision"], "revision as stored")
        rc, out, err = nc("export", "demo-ivy", user="ivy")
        t.ok(rc == 0 and json.loads(out) == data, "without -o: the same on stdout")
        rpc("notebook.create", {"user_id": "ivy", "notebook_id": "bidi", "name": "a\u202eb\u0085c\x7f",
                                "cells": [{"code": "x = '\u2066'"}]})
        rc, out, err = nc("export", "bidi", user="ivy")
        t.ok(rc == 0 and not any(ch in out for ch in "\u202e\u0085\x7f\u2066")
             and json.loads(out)["name"] == "a\u202eb\u0085c\x7f",
             "on stdout, bidi and control characters as \\u escapes: the same value", repr(out[:200]))
        rc, out, err = nc("export", "no-such", user="ivy")
        t.is_(rc, 4, "unknown notebook: exit 4")
        rc, out, err = nc("export", "demo-ivy", "--format", "xml", user="ivy")
        t.is_(rc, 2, "bad --format: exit 2")


def roundtrip(nb_id, user, fmt, desc):
        before = get(nb_id, user)
        rc, path, err = load_export(nb_id, user, fmt)
        if not t.ok(rc == 0, f"{desc}: export {fmt}", err):
                return
        if fmt == "ipynb":
                good, detail = validate_ipynb(path)
                t.ok(good, f"{desc}: nbformat.validate", detail)
        else:
                try:
                        seed_load_notebook(path)
                        t.ok(True, f"{desc}: load_notebook reads it")
                except Exception as e:  # noqa: BLE001
                        t.ok(False, f"{desc}: load_notebook reads it", repr(e))
        rpc("notebook.delete", {"user_id": user, "notebook_id": nb_id})
        rc, out, err = nc("import", path, user="someone-else" if fmt == "json" else None)
        after = get(nb_id, user)
        t.ok(rc == 0 and after is not None, f"{desc}: import {fmt}", out + err)
        if after is not None:
                t.is_(content(after, ttl=fmt == "ipynb"), content(before, ttl=fmt == "ipynb"),
                      f"{desc}: import(export(x)) == x ({fmt})")
                rc, out, err = nc("import", path)
                t.ok(rc == 0 and "1 unchanged" in out, f"{desc}: importing the export again: unchanged", out)


@t.case("export ipynb of the demo: valid nbformat 4.5, SQL and outputs mapped")
def _():
        rpc("notebook.list", {"user_id": "jo"})
        rc, path, err = load_export("demo-jo", "jo", "ipynb")
        t.is_(rc, 0, "exit 0")
        good, detail = validate_ipynb(path)
        t.ok(good, "nbformat.validate", detail)
        with open(path) as f:
                j = json.load(f)
        t.is_((j["nbformat"], j["nbformat_minor"]), (4, 5), "nbformat 4.5")
        t.is_(j["metadata"]["kernelspec"]["name"], "python3", "python3 kernel spec")
        t.is_(j["metadata"]["notebookd"]["id"], "demo-jo", "notebook fields in metadata notebookd")
        nb = {"notebook_id": "mapped", "user_id": "jo", "cells": [
                {"id": "q", "type": "sql", "code": "SELECT 1", "status": "success", "stdout": "hi\n",
                 "outputs": [{"mime_type": "text/html", "data": "<p>x</p>", "metadata": {}},
                             {"mime_type": "image/png", "data": "iVBORw0KGgo=", "metadata": {}},
                             {"mime_type": "application/json", "data": {"k": [1]}, "metadata": {}},
                             {"mime_type": "text/plain", "data": "plain", "metadata": {}}],
                 "error": "Traceback:\nValueError: bad", "reads": ["a"], "writes": []}]}
        rpc("notebook.create", nb)
        rc, path, err = load_export("mapped", "jo", "ipynb")
        with open(path) as f:
                cell = json.load(f)["cells"][0]
        t.is_(cell["source"], "%%sql\nSELECT 1", "SQL cell: %%sql cell magic first")
        t.is_(cell["metadata"]["notebookd"]["type"], "sql", "and type sql in its metadata")
        outs = cell["outputs"]
        t.is_([o["output_type"] for o in outs], ["stream", "display_data", "display_data", "display_data",
                                                  "display_data", "error"], "stream, display_data by MIME, error")
        t.is_(outs[0]["text"], "hi\n", "stdout as a stream")
        t.is_(outs[2]["data"], {"image/png": "iVBORw0KGgo="}, "image as base64")
        t.is_(outs[3]["data"], {"application/json": {"k": [1]}}, "JSON as JSON")
        t.is_((outs[5]["ename"], outs[5]["evalue"]), ("ValueError", "bad"), "error: ename and evalue")
        t.is_(cell["metadata"]["notebookd"]["status"], "success", "status in metadata")
        good, detail = validate_ipynb(path)
        t.ok(good, "nbformat.validate", detail)


@t.case("round trip: import(export(x)) == x for the demo, both formats")
def _():
        rpc("notebook.list", {"user_id": "kim"})
        roundtrip("demo-kim", "kim", "json", "demo")
        roundtrip("demo-kim", "kim", "ipynb", "demo")


@t.case("round trip and validation: random notebooks, both formats")
def _():
        for i in range(12):
                p = random_notebook(f"rand-{i}", with_ttl=True)
                p["user_id"] = "lee"
                r = call("notebook.create", p)
                if not t.ok("result" in r, f"random notebook {i} created", short(r)):
                        continue
                roundtrip(f"rand-{i}", "lee", "ipynb", f"random {i}")
                if get(f"rand-{i}", "lee") is not None:
                        # the app's format has no ttl: clear it so the json round trip is whole
                        rpc("notebook.update", {"user_id": "lee", "notebook_id": f"rand-{i}", "ttl": None})
                        roundtrip(f"rand-{i}", "lee", "json", f"random {i}")


@t.case("export --all -o DIR, and the directory imported back")
def _():
        u = "nora"
        rpc("notebook.list", {"user_id": u})
        for i in range(1100):  # more than one page of notebook.list
                rpc("notebook.create", {"user_id": u, "notebook_id": f"all-{i}", "cells": [{"code": f"x = {i}"}]})
        rpc("notebook.create", {"user_id": u, "notebook_id": "a/b%c", "name": "slash"})
        rpc("notebook.create", {"user_id": u, "notebook_id": ".dot", "name": "dot"})
        out_dir = os.path.join(WORK, "all-json")
        rc, js, err = nj("export", "--all", "-o", out_dir, user=u)
        t.is_(rc, 0, "export --all: exit 0")
        names = sorted(os.listdir(out_dir))
        t.is_(len(names), 1104, "one file per notebook (1100 + blank + demo + 2)")
        t.ok("a%2Fb%25c.json" in names and "%2Edot.json" in names, "'/', '%' and a leading '.' escaped",
             short(names[:5]))
        t.is_((js or {}).get("exported"), 1104, "--json: counts")
        rc, out, err = nc("import", out_dir, user="someone")
        t.ok(rc == 0 and "1104 unchanged" in out, "importing the directory back: all unchanged", out)
        out_dir = os.path.join(WORK, "all-ipynb")
        rc, out, err = nc("export", "--all", "--format", "ipynb", "-o", out_dir, user=u)
        t.ok(rc == 0 and "1104 notebooks exported" in out, "export --all --format ipynb", out + err)
        bad = []
        for n in ["demo-nora.ipynb", "a%2Fb%25c.ipynb", "all-7.ipynb"]:
                good, detail = validate_ipynb(os.path.join(out_dir, n))
                if not good:
                        bad.append((n, detail))
        t.ok(not bad, "nbformat.validate on a sample", short(bad))
        rc, out, err = nc("import", out_dir, user=u)
        t.ok(rc == 0 and "1104 unchanged" in out, "importing the .ipynb directory back: all unchanged", out)
        rc, out, err = nc("export", "--all", user=u)
        t.is_(rc, 2, "--all without -o: exit 2")


@t.case("--replace sends the revision it read; a concurrent edit is reported, not overwritten")
def _():
        # A stand-in daemon: the notebook exists (-32014) at revision 5 with other content, and
        # changes again before the update arrives (-32011).
        f = write(os.path.join(WORK, "race", "r.json"), app_file("race", user="pat"))
        path = os.path.join(WORK, "race.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        seen = []

        def serve():
                conn, _ = srv.accept()
                conn.settimeout(tmo(10))
                buf = b""
                while True:
                        while b"\n" not in buf:
                                b = conn.recv(65536)
                                if not b:
                                        conn.close()
                                        return
                                buf += b
                        line, buf = buf.split(b"\n", 1)
                        req = json.loads(line)
                        seen.append(req)
                        m, rid = req["method"], req["id"]
                        if m == "notebook.create":
                                rep = {"error": {"code": -32014, "message": "Notebook already exists."}}
                        elif m == "notebook.get":
                                nb = dict(app_file("race", user="pat"), revision=5, ttl=None)
                                nb["cells"] = nb["cells"][:1]
                                rep = {"result": {"notebook": nb}}
                        else:
                                rep = {"error": {"code": -32011, "message": "Revision conflict.",
                                                 "data": {"current_revision": 6}}}
                        rep.update(jsonrpc="2.0", id=rid)
                        conn.sendall(json.dumps(rep).encode() + b"\n")

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        rc, out, err = d.ctl("--socket", path, "import", "--replace", f)
        th.join(tmo(10))
        srv.close()
        t.is_([r["method"] for r in seen], ["notebook.create", "notebook.get", "notebook.update"],
              "create, then get, then update")
        upd = seen[-1]["params"] if seen else {}
        t.ok(upd.get("expected_revision") == 5 and upd.get("cells") == app_file("race")["cells"]
             and upd.get("user_id") == "pat" and upd.get("name") == "Name race",
             "the update: expected_revision as read, the file's name and cells", short(upd))
        t.is_(rc, 1, "a concurrent change: exit 1")
        t.like(out, "r.json: notebook race changed while it was being replaced", "named with the reason")


@t.case("an unprivileged peer: files of other users refused, legacy files go to its own user")
def _():
        setpriv = shutil.which("setpriv")
        if os.getuid() != 0 or not setpriv:
                t.skip("unprivileged import", "needs root and setpriv")
                return
        uid = 65534
        d2 = Daemon(t, config=f"[users]\n{uid} = quinn\n")
        d2.start()
        try:
                os.chmod(d2.socket, 0o666)
                src = os.path.join(WORK, "unpriv")
                write(os.path.join(src, "other.json"), app_file("other", user="alice"))
                write(os.path.join(src, "mine.json"), app_file("mine", user="quinn"))
                write(os.path.join(src, "legacy.json"), app_file("legacy", user=None))
                for root, dirs, files in os.walk(src):
                        os.chmod(root, 0o755)
                        for n in files:
                                os.chmod(os.path.join(root, n), 0o644)
                os.chmod(WORK, 0o755)
                rc, out, err = d2.ctl("import", src, prefix=[setpriv, f"--reuid={uid}", f"--regid={uid}",
                                                             "--clear-groups"])
                t.is_(rc, 1, "exit 1: a file skipped")
                t.like(out, "other.json: access denied for user alice", "another user's file: access denied")
                t.like(out, "2 imported", "its own and the legacy file imported")
                c2 = d2.client()
                got = {n: c2.call("notebook.get", {"user_id": u, "notebook_id": n}).get("result") is not None
                       for n, u in (("mine", "quinn"), ("legacy", "quinn"), ("other", "alice"))}
                c2.close()
                t.is_(got, {"mine": True, "legacy": True, "other": False},
                      "legacy file under the peer's bound user; nothing for alice")
        finally:
                d2.stop()


@t.case("the daemon unreachable: exit 3")
def _():
        f = write(os.path.join(WORK, "down", "x.json"), app_file("down", user="m"))
        rc, out, err = d.ctl("--socket", os.path.join(WORK, "no.sock"), "import", f)
        t.is_(rc, 3, "import: exit 3")
        rc, out, err = d.ctl("--socket", os.path.join(WORK, "no.sock"), "export", "x")
        t.is_(rc, 3, "export: exit 3")
        rc, out, err = nc("import")
        t.is_(rc, 2, "import without a path: exit 2")


@t.case("the connection lost in the middle: exit 3, the files not imported named")
def _():
        src = os.path.join(WORK, "lost")
        for i in range(200):
                write(os.path.join(src, f"l{i:03d}.json"), app_file(f"lost-{i}", user="m"))
        path = os.path.join(WORK, "lost.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)

        def serve():
                conn, _ = srv.accept()
                conn.settimeout(tmo(10))
                got = b""
                while got.count(b"\n") < 3:
                        b = conn.recv(65536)
                        if not b:
                                break
                        got += b
                # answers the first request, then hangs up
                first = json.loads(got.split(b"\n")[0])
                conn.sendall(json.dumps({"jsonrpc": "2.0", "id": first["id"], "result": {"notebook": {}}}).encode()
                             + b"\n")
                conn.close()

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        rc, js, err = d.ctl("--socket", path, "--json", "import", src)
        th.join(tmo(10))
        srv.close()
        js = parse_json(js)
        t.is_(rc, 3, "exit 3")
        r = (js or {}).get("results", [])
        # The client may meet the hang-up while sending, before it reads the one reply.
        t.ok(len(r) == 200 and all(x["result"] == "skipped" for x in r[1:])
             and all("connection failed" in (x.get("reason") or "") for x in r if x["result"] == "skipped")
             and "may or may not be stored" in (r[1].get("reason") or "")
             and r[-1].get("reason") == "not imported: the connection failed",
             "the summary: in flight, maybe stored; not sent, not imported", short(js))
        t.like(err, "import:", "the failure on stderr")


@t.case("numbers digit for digit through show --json, export and import")
def _():
        # cJSON's own printer keeps 15 digits when they come within a rounding step: these change.
        exact = [0.30000000000000004, 9007199254740991, 1.0000000000000002, 123456789.12345679, -2.5e-120]
        outputs = [{"mime_type": "application/json", "data": {"v": exact}, "metadata": {"m": exact}}]
        rpc("notebook.create", {"user_id": "numbers", "notebook_id": "exact", "cells": [{"id": "c", "outputs": outputs}]})
        want = get("exact", "numbers")
        rc, js, err = nj("--user", "numbers", "show", "exact")
        t.ok(rc == 0 and js["notebook"]["cells"][0]["outputs"] == outputs, "show --json prints them exactly", err)
        for fmt in ("json", "ipynb"):
                path = os.path.join(WORK, f"exact.{fmt}")
                rc, out, err = nc("--user", "numbers", "export", "exact", "--format", fmt, "-o", path)
                rpc("notebook.delete", {"user_id": "numbers", "notebook_id": "exact"})
                rc2, out2, err2 = nc("--user", "numbers", "import", path)
                got = get("exact", "numbers")
                t.ok(rc == 0 and rc2 == 0 and got is not None and content(got, ttl=False) == content(want, ttl=False),
                     f"export --format {fmt}, delete, import: the same numbers", err + err2)


@t.case("--help")
def _():
        for args in (["import", "--help"], ["export", "--help"], ["help", "import"]):
                p = subprocess.run([NOTEBOOKCTL] + args, capture_output=True, text=True, timeout=tmo(10))
                t.ok(p.returncode == 0 and "Usage:" in p.stdout, f"notebookctl {' '.join(args)}")
        p = subprocess.run([NOTEBOOKCTL, "--help"], capture_output=True, text=True, timeout=tmo(10))
        t.ok("import PATH" in p.stdout and "export NOTEBOOK" in p.stdout, "notebookctl --help lists both")


check_serving(t, d)
raw.close()
t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
