#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The whole-file JSON store that notebookd replaces, as the anchor of the notebook-size figure
(P3) of tests/bench/bench.py.

The application before notebookd kept each notebook in backend/notebooks/{id}.json and saved it
after every mutation with backend/storage.py's save_notebook(): the whole notebook serialized with
json.dump(data, f, indent=2) into a tempfile.NamedTemporaryFile in the same directory, then
os.replace() over the old file; no fsync. Loading was json.load() of that file.

    filestore.py --dir DIR --cells N --code-bytes B [--seconds S] [--warmup S] [--mode rmw|save]

writes one notebook of N cells, each with B bytes of code, then edits the code of its middle cell
for S seconds after a warm-up, one edit after the other:
  rmw   (default) each edit reads the file (json.load), changes the cell and the revision, and
        saves the whole notebook as save_notebook() does;
  save  the notebook stays in memory, as the application's NOTEBOOKS dict held it; each edit
        changes it and saves the whole notebook (the application's own path; no read).
Prints one line: edits=N seconds=S rate=R p50_ms=X p99_ms=Y file_bytes=F
Standard library only."""

import argparse
import json
import os
import sys
import tempfile
import time


def make_cell(i, code_bytes):
        """A cell as the application serialized it: code of code_bytes bytes (ASCII)."""
        head = f"x{i} = {i} + 1\n"
        code = (head + "# " + "y" * code_bytes)[:code_bytes] if code_bytes > len(head) else head[:code_bytes]
        return {"id": f"cell-{i}", "type": "python", "code": code, "status": "idle", "stdout": "", "outputs": [],
                "error": None, "reads": [], "writes": [f"x{i}"]}


def make_notebook(notebook_id, user_id, n_cells, code_bytes):
        """The application's serialized notebook (storage.py: cells flattened into dicts, sets as
        lists, the graph and kernel left out)."""
        return {"id": notebook_id, "user_id": user_id, "name": f"{n_cells} cells", "db_conn_string": None,
                "revision": 1, "cells": [make_cell(i, code_bytes) for i in range(n_cells)]}


def save_notebook(directory, data):
        """storage.py's save_notebook(): temporary file in the same directory, json.dump with
        indent=2, os.replace over the notebook's file. No fsync, as there."""
        path = os.path.join(directory, f"{data['id']}.json")
        with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as f:
                json.dump(data, f, indent=2)
                tmp = f.name
        os.replace(tmp, path)
        return path


def load_notebook(directory, notebook_id):
        with open(os.path.join(directory, f"{notebook_id}.json")) as f:
                return json.load(f)


def main():
        ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        ap.add_argument("--dir", required=True)
        ap.add_argument("--cells", type=int, required=True)
        ap.add_argument("--code-bytes", type=int, required=True)
        ap.add_argument("--seconds", type=float, default=5)
        ap.add_argument("--warmup", type=float, default=1)
        ap.add_argument("--mode", choices=("rmw", "save"), default="rmw")
        a = ap.parse_args()
        if a.cells < 1 or a.code_bytes < 1 or a.seconds <= 0 or a.warmup < 0:
                ap.error("--cells and --code-bytes must be at least 1, --seconds above 0")

        os.makedirs(a.dir, exist_ok=True)
        nb_id = "bench-filestore"
        mem = make_notebook(nb_id, "bench", a.cells, a.code_bytes)
        path = save_notebook(a.dir, mem)
        target = a.cells // 2
        lat = []
        k = 0
        t = time.monotonic()
        t_measure = t + a.warmup
        t_end = t_measure + a.seconds
        t_first = t_last = None
        while t < t_end:
                data = load_notebook(a.dir, nb_id) if a.mode == "rmw" else mem
                data["cells"][target]["code"] = f"x = {k} * 2"
                data["revision"] += 1
                save_notebook(a.dir, data)
                k += 1
                t1 = time.monotonic()
                if t >= t_measure:
                        if t_first is None:
                                t_first = t
                        lat.append(t1 - t)
                        t_last = t1
                t = t1
        seconds = (t_last - t_first) if lat else a.seconds
        lat.sort()
        n = len(lat)
        print(f"edits={n} seconds={seconds:.3f} rate={n / seconds:.1f} "
              f"p50_ms={lat[n // 2] * 1e3 if n else 0:.3f} p99_ms={lat[int(n * 0.99)] * 1e3 if n else 0:.3f} "
              f"file_bytes={os.path.getsize(path)}")
        return 0


if __name__ == "__main__":
        sys.exit(main())
