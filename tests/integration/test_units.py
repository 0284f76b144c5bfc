# SPDX-License-Identifier: MIT
"""The systemd units, sysusers.d and tmpfiles.d files, and what `make install` puts where.

systemd-analyze works without systemd as PID 1, on unit files given by path:
  - `verify` passes, with nothing on stderr, on the system and the user units as built (their
    ExecStart= pointed at the daemon of this build tree), and on the installed ones with the
    installed daemon and man pages (MANPATH), which also checks every Documentation= page;
    a broken copy shows that verify does report problems here;
  - `security --offline=true` rates the system service at an exposure of 1.5 or less (a copy
    without the sandbox rates far worse, so the number is not a default);
  - `make install DESTDIR=...` puts the units, sysusers.d and tmpfiles.d files and man pages in
    the directories configure chose (passed in by AM_TESTS_ENVIRONMENT);
  - systemd-sysusers and systemd-tmpfiles --root apply the installed files to an empty tree: the
    user and groups the units name exist, the state directory the service uses is made.
The units agree with each other and with the daemon: user, socket group, socket path, state
directory, the credential names daemon/creds.c reads, and no PrivateUsers= (it would hide every
peer's uid from SO_PEERCRED).
"""

import os
import re
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NOTEBOOKD, SRCDIR, TAP, make_tempdir, short, tmo  # noqa: E402

t = TAP()
BUILDDIR = os.environ.get("NB_BUILDDIR", os.getcwd())
SBINDIR = os.environ.get("NB_SBINDIR", "/usr/local/sbin")
DIRS = {
        "system units": os.environ.get("NB_SYSTEMDSYSTEMUNITDIR", ""),
        "user units": os.environ.get("NB_SYSTEMDUSERUNITDIR", ""),
        "sysusers.d": os.environ.get("NB_SYSUSERSDIR", ""),
        "tmpfiles.d": os.environ.get("NB_TMPFILESDIR", ""),
}
MANDIR = os.environ.get("NB_MANDIR", "/usr/local/share/man")
SA = shutil.which("systemd-analyze")
if not SA:
        t.skip_all("systemd-analyze is not installed (Debian: systemd)")

# The daemon's defaults as root (notebookd(8)); the system units must match them.
SOCKET_PATH = "/run/notebookd/notebookd.sock"
STATE_DIR = "/var/lib/notebookd"
CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")

BUILT = {
        "system": (os.path.join(BUILDDIR, "systemd", "notebookd.service"),
                   os.path.join(SRCDIR, "systemd", "notebookd.socket")),
        "user": (os.path.join(BUILDDIR, "systemd", "user", "notebookd.service"),
                 os.path.join(SRCDIR, "systemd", "user", "notebookd.socket")),
}
SYSUSERS_SRC = os.path.join(SRCDIR, "systemd", "sysusers.d", "notebookd.conf")
TMPFILES_SRC = os.path.join(SRCDIR, "systemd", "tmpfiles.d", "notebookd.conf")
MAN_PAGES = ("man1/notebookctl.1", "man5/notebookd.conf.5", "man8/notebookd.8")

tmp = make_tempdir("nbunits-")


def read(path):
        with open(path) as f:
                return f.read()


def settings(path):
        """A unit file as [(section, key, value)], in order, repeated keys kept."""
        out, section = [], None
        for line in read(path).splitlines():
                line = line.strip()
                if not line or line[0] in "#;":
                        continue
                if line.startswith("[") and line.endswith("]"):
                        section = line[1:-1]
                elif "=" in line:
                        k, v = line.split("=", 1)
                        out.append((section, k.strip(), v.strip()))
        return out


def values(path, section, key):
        return [v for s, k, v in settings(path) if s == section and k == key]


def analyze_env(**extra):
        """systemd-analyze's environment: no settings of the caller's that change what it prints."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
        env.update(SYSTEMD_PAGER="cat", SYSTEMD_COLORS="0", LC_ALL="C.UTF-8")
        env.update(extra)
        return env


def analyze(args, env=None, timeout=None):
        p = subprocess.run([SA] + args, capture_output=True, text=True, env=env or analyze_env(),
                           timeout=timeout or tmo(60))
        return p.returncode, p.stdout, p.stderr


def user_env():
        # A user manager's verify needs a runtime directory; this one is the test's.
        rt = os.path.join(tmp, "runtime")
        os.makedirs(rt, mode=0o700, exist_ok=True)
        return analyze_env(XDG_RUNTIME_DIR=rt)


def copy_units(kind, service, socket_unit, daemon, where):
        """Copies a service and its socket into where/KIND/, ExecStart= pointed at daemon (a file
        that exists here: verify checks it). Returns the two paths."""
        d = os.path.join(tmp, where, kind)
        os.makedirs(d, exist_ok=True)
        text = read(service)
        installed = os.path.join(SBINDIR, "notebookd")
        text = re.sub(r"^ExecStart=" + re.escape(installed) + r"\b", "ExecStart=" + daemon, text, flags=re.M)
        svc = os.path.join(d, "notebookd.service")
        with open(svc, "w") as f:
                f.write(text)
        sock = os.path.join(d, "notebookd.socket")
        shutil.copyfile(socket_unit, sock)
        return svc, sock


def verify(kind, svc, sock, env=None, man=False):
        args = ([] if kind == "system" else ["--user"]) + ["verify"] + ([] if man else ["--man=no"])
        return analyze(args + [svc, sock], env=env or (analyze_env() if kind == "system" else user_env()))


@t.case("the services are made from their templates with the install path of the daemon")
def _():
        for kind, (svc, sock) in BUILT.items():
                t.ok(os.path.isfile(svc), f"{kind}: {svc} was built")
                t.ok(os.path.isfile(sock), f"{kind}: {sock} exists")
                if not os.path.isfile(svc):
                        continue
                text = read(svc)
                t.ok(not re.search(r"@[A-Za-z_]+@", text), f"{kind}: no @variable@ left in the service", text)
                execs = values(svc, "Service", "ExecStart")
                t.ok(len(execs) == 1 and execs[0].split()[0] == os.path.join(SBINDIR, "notebookd"),
                     f"{kind}: ExecStart= runs {SBINDIR}/notebookd", execs)


@t.case("systemd-analyze verify reports problems in this environment (control)")
def _():
        svc, sock = copy_units("system", BUILT["system"][0], BUILT["system"][1],
                               os.path.join(tmp, "no-such-notebookd"), "broken")
        with open(svc, "a") as f:
                f.write("[Service]\nNoSuchSetting=yes\n")
        rc, out, err = verify("system", svc, sock)
        t.ok(rc != 0, "verify fails on a service whose binary is missing", f"rc {rc}\n{out}{err}")
        t.like(err, "no-such-notebookd", "and names the missing binary on stderr")
        t.like(err, "NoSuchSetting", "and warns about the unknown setting")


for kind in ("system", "user"):
        @t.case(f"{kind} units: systemd-analyze verify passes with nothing on stderr")
        def _(kind=kind):
                svc, sock = copy_units(kind, *BUILT[kind], NOTEBOOKD, "build")
                rc, out, err = verify(kind, svc, sock)
                t.is_(rc, 0, f"{kind}: verify exits 0")
                t.is_(err, "", f"{kind}: verify prints nothing on stderr")
                t.is_(out, "", f"{kind}: nor on stdout")


@t.case("security --offline=true: the system service's exposure is 1.5 or less")
def _():
        svc = BUILT["system"][0]
        rc, out, err = analyze(["security", "--offline=true", "--no-pager", svc])
        m = re.search(r"Overall exposure level for notebookd\.service: (\d+\.\d+)", out)
        t.ok(rc == 0 and m, "security prints the overall exposure", f"rc {rc}\n{short(out, 4000)}{err}")
        score = float(m.group(1)) if m else 99.0
        t.diag(f"exposure of notebookd.service: {score}")
        t.ok(score <= 1.5, f"exposure {score} <= 1.5", short(out, 6000))
        rc, _, err = analyze(["security", "--offline=true", "--no-pager", "--threshold=15", svc])
        t.is_(rc, 0, "and --threshold=15 (1.5) accepts it")

        # The same service without its sandbox: the rating is not a default.
        bare = os.path.join(tmp, "bare")
        os.makedirs(bare, exist_ok=True)
        keep = ("Type", "NotifyAccess", "ExecStart", "ExecReload", "Restart", "WatchdogSec")
        lines = [f"{k}={v}" for s, k, v in settings(svc) if s == "Service" and k in keep]
        with open(os.path.join(bare, "notebookd.service"), "w") as f:
                f.write("[Service]\n" + "\n".join(lines) + "\n")
        rc, out, err = analyze(["security", "--offline=true", "--no-pager", os.path.join(bare, "notebookd.service")])
        m = re.search(r"Overall exposure level for notebookd\.service: (\d+\.\d+)", out)
        t.ok(m and float(m.group(1)) > 5, "without the sandbox the exposure is above 5 (control)",
             short(out[-300:]) + err)


@t.case("the units agree with each other, with sysusers.d and tmpfiles.d, and with the daemon")
def _():
        svc, sock = BUILT["system"]
        sysusers = [ln.split() for ln in read(SYSUSERS_SRC).splitlines() if ln.strip() and ln[0] != "#"]
        users = {f[1] for f in sysusers if f[0] == "u"}
        groups = {f[1] for f in sysusers if f[0] in ("g", "u")}
        t.is_(values(svc, "Service", "Type"), ["notify"], "Type=notify")
        t.is_(values(svc, "Service", "NotifyAccess"), ["main"], "NotifyAccess=main")
        t.ok(values(svc, "Service", "WatchdogSec") != [], "a watchdog")
        t.is_(values(svc, "Service", "Restart"), ["on-failure"], "Restart=on-failure")
        t.is_(values(svc, "Service", "ExecReload"), ["kill -HUP $MAINPID"], "reload is SIGHUP")
        user = values(svc, "Service", "User")
        t.ok(len(user) == 1 and user[0] in users and user[0] != "root",
             "runs as a non-root user that sysusers.d makes", (user, users))
        group = values(sock, "Socket", "SocketGroup")
        t.ok(len(group) == 1 and group[0] in groups, "the socket's group is made by sysusers.d", (group, groups))
        t.is_(values(sock, "Socket", "SocketMode"), ["0660"], "socket mode 0660: root and the group")
        t.is_(values(sock, "Socket", "ListenStream"), [SOCKET_PATH], "the socket is the daemon's default path")
        t.is_(values(BUILT["user"][1], "Socket", "ListenStream"), ["%t/notebookd/notebookd.sock"],
              "the user socket is where notebookctl looks: $XDG_RUNTIME_DIR/notebookd/notebookd.sock")
        t.is_(values(svc, "Service", "StateDirectory"), ["notebookd"], "StateDirectory=notebookd")
        t.like(" ".join(values(svc, "Service", "ExecStart")), "--state-dir " + STATE_DIR,
               "the daemon is given that directory")
        t.like(read(TMPFILES_SRC), f"d {STATE_DIR} 0700 {user[0] if user else '?'} ",
               "tmpfiles.d makes the same directory, private to that user")
        creds = [v.split(":")[0] for v in values(svc, "Service", "LoadCredential")]
        t.is_(sorted(creds), sorted(CREDENTIALS), "LoadCredential= gives the names daemon/creds.c reads")
        # The names source_systemd() looks for in $CREDENTIALS_DIRECTORY (test_systemd.py runs the
        # daemon on such a directory).
        creds_c = read(os.path.join(SRCDIR, "daemon", "creds.c"))
        m = re.search(r"static int source_systemd\(.*?names\[\] = \{(.*?)\};", creds_c, re.S)
        read_names = re.findall(r'"([a-z_]+)"', m.group(1)) if m else []
        t.is_(sorted(read_names), sorted(CREDENTIALS), "and daemon/creds.c reads exactly those names")
        t.is_(values(svc, "Service", "PrivateUsers"), [], "no PrivateUsers= (peers' uids must stay visible)")
        fams = " ".join(values(svc, "Service", "RestrictAddressFamilies")).split()
        t.is_(sorted(fams), ["AF_INET", "AF_INET6", "AF_UNIX"], "address families: Unix, IPv4, IPv6")
        t.is_(values(svc, "Service", "PrivateNetwork"), [], "the network stays reachable (DynamoDB)")


# --- make install ---------------------------------------------------------------------------
destdir = os.path.join(tmp, "destdir")


def installed(d, *parts):
        return os.path.join(destdir + d, *parts)


@t.case("make install DESTDIR=...: units, sysusers.d, tmpfiles.d and man pages where configure said")
def _():
        make = os.environ.get("MAKE", "make")
        # A make of its own, not a part of the make check that runs this test (jobserver).
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
        p = subprocess.run(make.split() + ["-s", "-C", BUILDDIR, "install", "DESTDIR=" + destdir],
                           capture_output=True, text=True, env=env, timeout=tmo(300))
        t.ok(p.returncode == 0, "make install exits 0", p.stdout + p.stderr)
        daemon = installed(SBINDIR, "notebookd")
        t.ok(os.access(daemon, os.X_OK), f"the daemon is in {SBINDIR}")
        expect = {
                "system units": [("notebookd.service", BUILT["system"][0]), ("notebookd.socket", BUILT["system"][1])],
                "user units": [("notebookd.service", BUILT["user"][0]), ("notebookd.socket", BUILT["user"][1])],
                "sysusers.d": [("notebookd.conf", SYSUSERS_SRC)],
                "tmpfiles.d": [("notebookd.conf", TMPFILES_SRC)],
        }
        for what, files in expect.items():
                if not DIRS[what]:
                        t.skip(f"{what} installed", "configured not to install them")
                        continue
                for name, src in files:
                        path = installed(DIRS[what], name)
                        t.ok(os.path.isfile(path) and read(path) == read(src),
                             f"{what}: {name} in {DIRS[what]}, as built", path)
        for page in MAN_PAGES:
                t.ok(os.path.isfile(installed(MANDIR, page)), f"man page {page} in {MANDIR}")
        compdir = os.environ.get("NB_BASHCOMPLETIONDIR", "")
        if not compdir:
                t.skip("bash completion installed", "configured not to install it")
        elif not os.path.exists("/usr/share/bash-completion/bash_completion"):
                t.skip("bash completion installed", "bash-completion is not installed")
        else:
                # bash-completion's own loader finds it there (XDG_DATA_DIRS: the tree's share dir).
                share = os.path.dirname(os.path.dirname(installed(compdir)))
                p = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                                    "source /usr/share/bash-completion/bash_completion; "
                                    "_completion_loader notebookctl; complete -p notebookctl"],
                                   capture_output=True, text=True, env=dict(os.environ, XDG_DATA_DIRS=share),
                                   timeout=tmo(30))
                t.ok(os.path.isfile(installed(compdir, "notebookctl")) and "-F _notebookctl notebookctl" in p.stdout,
                     f"bash completion in {compdir}, found by bash-completion's loader", p.stdout + p.stderr)


@t.case("installed units: verify passes with the installed daemon and man pages")
def _():
        daemon = installed(SBINDIR, "notebookd")
        have_man = shutil.which("man") is not None
        for kind, what in (("system", "system units"), ("user", "user units")):
                if not DIRS[what]:
                        t.skip(f"{kind}: verify the installed units", "not installed")
                        continue
                svc, sock = copy_units(kind, installed(DIRS[what], "notebookd.service"),
                                       installed(DIRS[what], "notebookd.socket"), daemon, "installed")
                base = analyze_env() if kind == "system" else user_env()
                if have_man:
                        base["MANPATH"] = installed(MANDIR)
                rc, out, err = verify(kind, svc, sock, env=base, man=have_man)
                how = "with" if have_man else "without (man is not installed)"
                t.ok(rc == 0 and err == "" and out == "",
                     f"{kind}: verify {how} the Documentation= checks: exit 0, nothing printed",
                     f"rc {rc}\n{out}{err}")


@t.case("systemd-sysusers and systemd-tmpfiles apply the installed files")
def _():
        if not DIRS["sysusers.d"] or not DIRS["tmpfiles.d"]:
                t.skip("sysusers.d and tmpfiles.d", "not installed")
                return
        for tool in ("systemd-sysusers", "systemd-tmpfiles"):
                if not shutil.which(tool):
                        t.skip(f"{tool} applies notebookd.conf", f"{tool} is not installed")
                        return
        root = os.path.abspath(destdir)
        os.makedirs(os.path.join(root, "etc"), exist_ok=True)
        # With --root, a file given by path is read as it is, not below the root.
        p = subprocess.run(["systemd-sysusers", "--root=" + root, installed(DIRS["sysusers.d"], "notebookd.conf")],
                           capture_output=True, text=True, timeout=tmo(60))
        t.ok(p.returncode == 0, "systemd-sysusers exits 0", p.stderr)
        passwd = read(os.path.join(root, "etc", "passwd")) if p.returncode == 0 else ""
        group = read(os.path.join(root, "etc", "group")) if p.returncode == 0 else ""
        m = re.search(r"^notebookd:x:(\d+):(\d+):[^:]*:" + re.escape(STATE_DIR) + r":", passwd, re.M)
        t.ok(m, "user notebookd, home " + STATE_DIR, passwd)
        t.ok(re.search(r"^notebook:x:\d+:", group, re.M), "group notebook (the socket's)", group)

        p = subprocess.run(["systemd-tmpfiles", "--root=" + root, "--create",
                            installed(DIRS["tmpfiles.d"], "notebookd.conf")],
                           capture_output=True, text=True, timeout=tmo(60))
        if os.geteuid() == 0:
                t.ok(p.returncode == 0, "systemd-tmpfiles --create exits 0", p.stderr)
        else:
                # Not root: only the chown to notebookd may fail.
                other = [ln for ln in p.stderr.splitlines() if "Operation not permitted" not in ln]
                t.ok(p.returncode in (0, 73) and not other, "systemd-tmpfiles --create: no error but chown",
                     p.stderr)
        st = os.stat(os.path.join(root, STATE_DIR.lstrip("/")))
        t.is_(stat.S_IMODE(st.st_mode), 0o700, STATE_DIR + " is made with mode 0700")
        if os.geteuid() == 0 and m:
                t.is_((st.st_uid, st.st_gid), (int(m.group(1)), int(m.group(2))), "owned by notebookd")
        else:
                t.skip("owned by notebookd", "not root")
        st = os.stat(os.path.join(root, "etc", "notebookd"))
        t.is_(stat.S_IMODE(st.st_mode), 0o755, "/etc/notebookd is made with mode 0755")


t.done()
