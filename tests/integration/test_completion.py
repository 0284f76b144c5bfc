# SPDX-License-Identifier: MIT
"""Bash completion for notebookctl (client/bash-completion/notebookctl), run in a real bash with Debian's
bash-completion, against a real daemon: every command of --help is offered, then each command's
options, the values an option lists (--type python|sql, --keep local|server|both), and notebook,
cell and revision ids asked of the daemon (for the user --user names, on the socket --socket
names). Skipped without bash-completion."""

import os
import shlex
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TAP, Daemon  # noqa: E402

t = TAP()
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
SCRIPT = os.path.join(os.environ.get("NB_SRCDIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                      "client", "bash-completion", "notebookctl")
if not os.path.exists(BASH_COMPLETION):
        t.skip_all(f"{BASH_COMPLETION} not found (scripts/install-deps.sh installs bash-completion)")

d = Daemon(t).start()
USER = "cora"
d.rpc("notebook.list", {"user_id": USER})
d.rpc("notebook.create", {"user_id": USER, "notebook_id": "alpha-one", "cells": [{"id": "c-first"}, {"id": "c-second"}]})
d.rpc("notebook.create", {"user_id": USER, "notebook_id": "alpha-two"})
d.rpc("notebook.update", {"user_id": USER, "notebook_id": "alpha-one", "name": "renamed"})
d.rpc("notebook.list", {"user_id": "other"})
d.rpc("notebook.create", {"user_id": "other", "notebook_id": "alpha-other"})


def complete(line, last=None):
        """What completion offers at the end of line (words[0] is the notebookctl under test); last:
        the word being completed, as typed (an unfinished quote, say), after line's words."""
        words = shlex.split(line) + ([""] if line.endswith(" ") else []) if last is None else \
                shlex.split(line) + [last]
        words[0] = harness.NOTEBOOKCTL
        script = (f"source {shlex.quote(BASH_COMPLETION)}\nsource {shlex.quote(SCRIPT)}\n"
                  f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\nCOMP_CWORD={len(words) - 1}\n"
                  f"COMP_LINE={shlex.quote(' '.join(words))}\nCOMP_POINT=${{#COMP_LINE}}\n"
                  "_notebookctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                           timeout=harness.tmo(30))
        return sorted(w for w in p.stdout.split("\n") if w), p.stderr


S = f"notebookctl --socket {shlex.quote(d.socket)} --user {USER}"

rc, out, err = d.ctl("--help")
commands = sorted({ln.split()[0] for ln in out.split("Commands:")[1].split("\n\n")[0].splitlines()
                   if ln.startswith("  ")})
got, err = complete("notebookctl ")
t.is_(got, commands, "every command of --help is offered, and nothing else")
got, err = complete("notebookctl hi")
t.is_(got, ["history"], "a command completes from its start")
got, err = complete("notebookctl --")
t.is_(got, ["--help", "--json", "--socket", "--user", "--version"], "global options")
got, err = complete("notebookctl cell ")
t.is_(got, ["add", "edit", "mv", "rm"], "cell's sub-commands")
got, err = complete("notebookctl table c")
t.is_(got, ["check", "create"], "table's sub-commands")

got, err = complete(f"{S} show ")
t.is_(got, ["alpha-one", "alpha-two", "blank-cora", "demo-cora"], "show: the user's notebook ids, from the daemon")
got, err = complete(f"{S} show alpha-")
t.is_(got, ["alpha-one", "alpha-two"], "ids complete from their start (another user's are not offered)")
got, err = complete(f"notebookctl --socket {shlex.quote(d.socket)} --user other rm ")
t.ok("alpha-other" in got and "alpha-one" not in got, "--user chooses whose ids", str(got))
got, err = complete(f"{S} cell edit alpha-one ")
t.is_(got, ["c-first", "c-second"], "cell edit NOTEBOOK: that notebook's cell ids")
got, err = complete(f"{S} cell edit alpha-one c-first --")
t.ok({"--code", "--type", "--status", "--outputs", "--expect-revision", "--no-error"} <= set(got),
     "cell edit's options", str(got))
got, err = complete(f"{S} cell edit alpha-one c-first --type ")
t.is_(got, ["python", "sql"], "--type offers the cell types")
got, err = complete(f"{S} cell add alpha-one --after ")
t.is_(got, ["c-first", "c-second"], "--after offers the notebook's cells")
got, err = complete(f"{S} resolve alpha-one --keep ")
t.is_(got, ["both", "local", "server"], "--keep offers what resolve keeps")
got, err = complete(f"{S} restore alpha-one ")
t.is_(got, ["1", "2"], "restore NOTEBOOK: the revisions history lists")
got, err = complete(f"{S} show alpha-one --revision ")
t.is_(got, ["1", "2"], "show --revision: the same")
got, err = complete(f"{S} cell mv alpha-one c-first --position 1 --")
t.ok("--after" in got and "--first" in got, "an option's value is skipped when counting arguments", str(got))
files = harness.make_tempdir("nbcomp-")
for name in ("app-one.json", "app-two.json", "nb.ipynb"):
        open(os.path.join(files, name), "w").close()
got, err = complete(f"{S} import {files}/app")
t.is_(got, [f"{files}/app-one.json", f"{files}/app-two.json"], "import PATH...: files")
got, err = complete(f"{S} import {files}/app-one.json {files}/n")
t.is_(got, [f"{files}/nb.ipynb"], "import: more files after the first")
got, err = complete(f"{S} export alpha-one --format ")
t.is_(got, ["ipynb", "json"], "export --format offers the formats")
got, err = complete(f"{S} export alpha-one -o {files}/nb")
t.is_(got, [f"{files}/nb.ipynb"], "export -o: a file")
got, err = complete(f"{S} help ")
t.is_(got, commands, "help offers the commands")
got, err = complete(f"{S} list --")
t.ok("--ids" in got, "list's --ids is offered", str(got))
got, err = complete(f"notebookctl --socket /nonexistent/sock show ")
t.is_(got, [], "no daemon: nothing offered, and no error printed")
t.is_(err, "", "(nothing on stderr)")

# Ids are data (they come from other machines through sync): never run, never globbed.
canary = os.path.join(harness.make_tempdir("nbcanary-"), "ran")
evil = [f"$(touch${{IFS}}{canary})", f"`touch${{IFS}}{canary}`", "GLOB*", "semi;colon", "x:y=z", "q'uote"]
d.rpc("notebook.list", {"user_id": "mal"})
for nb in evil:
        d.rpc("notebook.create", {"user_id": "mal", "notebook_id": nb})
M = f"notebookctl --socket {shlex.quote(d.socket)} --user mal"
got, err = complete(f"{M} show ")
t.ok(not os.path.exists(canary), "ids holding $(...) and backquotes are not run by completion")
t.is_(sorted(shlex.split(" ".join(got))), sorted(evil + ["blank-mal", "demo-mal"]),
      "every id is offered, quoted for the shell (a glob is not expanded)")
got, err = complete(f"{M} show x:")
t.is_([shlex.split(w)[0] for w in got], ["y=z"], "an id holding ':' completes (after the colon readline keeps)")
got, err = complete(f"{M} show q")
t.is_(shlex.split(" ".join(got)), ["q'uote"], "an id holding a quote completes, quoted")
got, err = complete(f"notebookctl --socket={shlex.quote(d.socket)} --user=mal show G")
t.is_(got, ["GLOB\\*"], "--socket=PATH and --user=USER forms are followed")

# What completion offers, typed back, completes further: quoted and escaped words are read as the
# shell reads them.
d.rpc("notebook.create", {"user_id": "mal", "notebook_id": "with space",
                          "cells": [{"id": "cell with space", "code": "x"}, {"id": "plain"}]})
got, err = complete(f"{M} show with\\ sp")
t.is_(got, ["with\\ space"], "an escaped prefix completes an id with a blank, escaped")
got, err = complete(f"{M} show", "'with sp")
t.is_(got, ["with\\ space"], "so does a quoted one")
got, err = complete(f"{M} cell edit with\\ space ")
t.is_(sorted(got), ["cell\\ with\\ space", "plain"], "cell ids of a notebook named with a blank, blanks kept")
got, err = complete(f"{M} cell edit 'with space' c")
t.is_(got, ["cell\\ with\\ space"], "and from a quoted notebook id")
got, err = complete(f"{M} cell edit GLOB\\* ")
t.is_(got, [], "an escaped glob id is read as itself (it has no cells), not expanded")

d.rpc("notebook.create", {"user_id": "mal", "notebook_id": "back\\slash"})
got, err = complete(f"{M} show", '"back\\sl')
t.is_([shlex.split(w)[0] for w in got], ["back\\slash"], "within double quotes a backslash stays, as the shell keeps it")

# A daemon that does not answer does not hold the shell.
os.kill(d.proc.pid, signal.SIGSTOP)
try:
        start = time.monotonic()
        got, err = complete(f"{S} show ")
        took = time.monotonic() - start
finally:
        os.kill(d.proc.pid, signal.SIGCONT)
t.ok(got == [] and took < 10, f"a stopped daemon: completion gives up ({took:.1f} s)")

rc, out, err = d.ctl("--user", USER, "list", "--ids")
t.is_(out.split(), ["blank-cora", "demo-cora", "alpha-one", "alpha-two"], "list --ids prints the ids, one per line")
rc, out, err = d.ctl("--user", USER, "--json", "list", "--ids")
t.is_(rc, 2, "list --ids with --json is a usage error")
t.done()
