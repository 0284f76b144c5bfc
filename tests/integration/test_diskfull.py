# SPDX-License-Identifier: MIT
"""A full disk: the state directory on a small tmpfs of the test's own. A batch whose COMMIT fails
answers every request in it with -32020 (what was written did not happen; what was read may have
seen it), nothing half-written stays, and the daemon serves again once there is room."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TAP, Daemon, check_serving, make_tempdir, req, short  # noqa: E402

t = TAP()
if os.getuid() != 0:
        t.skip_all("needs root to mount a tmpfs of its own")
mnt = make_tempdir("nbfull-")
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", mnt],
                  capture_output=True).returncode != 0:
        t.skip_all("cannot mount a tmpfs here")

try:
        d = Daemon(t, state_dir=os.path.join(mnt, "state"))
        d.start()
        U = "full"
        c = d.client()
        c.rpc("notebook.create", {"user_id": U, "notebook_id": "nb", "cells": [{"id": "c", "code": "small"}]})
        # Leave about 300 KiB free: a 700 KB cell fits in SQLite's page cache while the request
        # runs, and fails when COMMIT writes it out.
        st = os.statvfs(mnt)
        free = st.f_bavail * st.f_frsize
        with open(os.path.join(mnt, "filler"), "wb") as f:
                f.write(b"\0" * max(0, free - 300 * 1024))

        replies = c.pipeline([req("cell.update", {"user_id": U, "notebook_id": "nb", "cell_id": "c",
                                                  "code": "x" * 700_000}, id=1),
                              req("notebook.get", {"user_id": U, "notebook_id": "nb"}, id=2)])
        by_id = {r.get("id"): r for r in replies}
        t.error_is(by_id.get(1, {}), -32020, "the write whose COMMIT failed: -32020")
        # The read runs in the write's batch (then it may have seen the write: -32020), or, if
        # the write took the batch's time, in the next one (then it sees the notebook as it was).
        r2 = by_id.get(2, {})
        t.ok((r2.get("error") or {}).get("code") == -32020
             or (r2.get("result", {}).get("notebook", {}).get("revision") == 1),
             "a read after it: -32020, or the notebook as it was, never what it saw of that write", short(r2))
        t.ok("x" * 1000 not in json.dumps(by_id.get(2, {})), "the read's reply shows none of the lost write")

        os.unlink(os.path.join(mnt, "filler"))
        got = c.rpc("notebook.get", {"user_id": U, "notebook_id": "nb"})["notebook"]
        t.is_((got["revision"], got["cells"][0]["code"]), (1, "small"), "with room again: nothing of it stayed")
        r = c.rpc("cell.update", {"user_id": U, "notebook_id": "nb", "cell_id": "c", "code": "x" * 700_000})
        t.ok(r.get("revision") == 2, "and the same write now succeeds", short(r))
        c.close()
        check_serving(t, d)
        t.is_(d.stop(), 0, "SIGTERM: exit 0")
finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
t.done()
