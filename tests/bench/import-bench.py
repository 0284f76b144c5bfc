# SPDX-License-Identifier: MIT
"""notebookctl import, measured: N demo-like app JSON files (default 10,000) into a fresh daemon,
then the same files again (all unchanged), each timed from notebookctl's start to its exit.

  python3 tests/bench/import-bench.py [N] [--window W] [--durability full|normal]

Binaries as for the integration tests: NOTEBOOKD and NOTEBOOKCTL, else the current directory's
build. Prints one line per run: files, seconds, files/s, and the summary notebookctl printed.
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import NOTEBOOKCTL, Daemon, make_tempdir  # noqa: E402


def main():
        ap = argparse.ArgumentParser()
        ap.add_argument("n", nargs="?", type=int, default=10000)
        ap.add_argument("--window", type=int, default=64)
        ap.add_argument("--durability", default=None)
        args = ap.parse_args()

        d = Daemon(durability=args.durability)
        d.start()
        try:
                # The demo notebook as the app would have saved it, as the template.
                rc, out, err = d.ctl("export", "demo-bench", user="bench")
                if rc != 0:
                        d.ctl("list", user="bench")
                        rc, out, err = d.ctl("export", "demo-bench", user="bench")
                if rc != 0:
                        sys.exit(f"export failed: {err}")
                demo = json.loads(out)
                src = make_tempdir("nbimport-")
                files = os.path.join(src, "notebooks")
                os.mkdir(files)
                for i in range(args.n):
                        nb = copy.deepcopy(demo)
                        nb["id"] = f"nb-{i:06d}"
                        nb["name"] = f"Notebook {i}"
                        nb["cells"][0]["code"] = f"x = {i}"
                        with open(os.path.join(files, nb["id"] + ".json"), "w") as f:
                                json.dump(nb, f, indent=2)
                size = sum(os.path.getsize(os.path.join(files, n)) for n in os.listdir(files))
                print(f"# {args.n} files, {size / args.n:.0f} bytes each on average, window {args.window}, "
                      f"durability {args.durability or 'full (default)'}")
                for label in ("first import", "second import (all unchanged)"):
                        t0 = time.monotonic()
                        p = subprocess.run([NOTEBOOKCTL, "--socket", d.socket, "--user", "bench", "import",
                                            "--quiet", "--window", str(args.window), files],
                                           capture_output=True, text=True)
                        secs = time.monotonic() - t0
                        summary = p.stdout.splitlines()[0] if p.stdout else p.stderr.strip()
                        print(f"{label}: {args.n} files in {secs:.2f} s, {args.n / secs:.0f} files/s, "
                              f"exit {p.returncode}: {summary}")
        finally:
                d.stop()


if __name__ == "__main__":
        main()
