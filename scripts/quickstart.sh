#!/usr/bin/env bash
# Quick start: installs what notebookd needs, builds it, starts a local DynamoDB-compatible server
# (dynalite, on 127.0.0.1, data kept in a directory) with the notebooks table, starts the daemon in
# the background with its default state directory and socket, pointed at that server, and shows
# what it does through notebookctl, down to the edited notebook arriving in the table.
#
# Safe to run again: a daemon started by an earlier run is stopped first (its data is kept), the
# build is incremental, dynalite is reused if it runs, and the demonstration resets the demo
# notebook before changing it.
#
# notebookd and dynalite are left running; the end of the output says how to stop them.
# NB_QUICKSTART_LOCAL_ONLY=1 leaves dynalite out: notebookd then runs local-only.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$(pwd)
build=$src/build

if [ -t 1 ]; then
        bold=$'\033[1m' dim=$'\033[2m' reset=$'\033[0m'
else
        bold='' dim='' reset=''
fi
heading() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
note() { printf '%s%s%s\n' "$dim" "$*" "$reset"; }
die() {
        printf 'quickstart: %s\n' "$*" >&2
        exit 1
}

# --- where things go ----------------------------------------------------------------------------
# The daemon picks its own defaults (notebookd(8)); the script only needs to know them to say
# where things are. Its own pid file and log sit beside them.
user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
        state_dir=/var/lib/notebookd
        socket=/run/notebookd/notebookd.sock
        pidfile=/run/notebookd-quickstart.pid
        logfile=/var/log/notebookd-quickstart.log
else
        state_base=${XDG_STATE_HOME:-$HOME/.local/state}
        state_dir=$state_base/notebookd
        socket=${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/notebookd/notebookd.sock}
        pidfile=$state_base/notebookd-quickstart.pid
        logfile=$state_base/notebookd-quickstart.log
        mkdir -p "$state_base"
fi
daemon_args=()
ctl_args=()
if [ -z "$socket" ]; then
        # No XDG_RUNTIME_DIR (a login without a systemd user session): name a socket explicitly.
        socket=$state_dir/notebookd.sock
        daemon_args=(--socket "$socket")
        ctl_args=(--socket "$socket")
fi

# --- 1. dependencies and build ------------------------------------------------------------------
heading "Installing the build dependencies (Debian packages)"
scripts/install-deps.sh

heading "Building notebookd and notebookctl in build/"
if [ -f config.status ]; then
        die "the source tree was configured in place (./config.status exists); run 'make distclean' here first."
fi
note "autoreconf -fi"
autoreconf -fi 2>&1 | { grep -v '^configure.ac:[0-9]*: installing\|^Makefile.am: installing' || true; }
mkdir -p "$build"
if [ ! -f "$build/Makefile" ]; then
        note "configure (log: build/config.log)"
        (cd "$build" && ../configure --quiet)
fi
note "make -j$(nproc)"
make -C "$build" -j"$(nproc)" --no-print-directory
notebookd=$build/notebookd
notebookctl=$build/notebookctl

ctl() { "$notebookctl" ${ctl_args[@]+"${ctl_args[@]}"} "$@"; }
# An argument as a user would type it: bare if it is plain, else in single quotes.
quote() {
        if [[ "$1" =~ ^[A-Za-z0-9_./,:=@%+-]+$ ]]; then
                printf '%s' "$1"
        else
                printf "'%s'" "${1//\'/\'\\\'\'}"
        fi
}
# Shows the command as a user would type it.
show_cmd() {
        local a
        printf '%s$ build/notebookctl' "$bold"
        for a in ${ctl_args[@]+"${ctl_args[@]}"} "$@"; do
                printf ' %s' "$(quote "$a")"
        done
        printf '%s\n' "$reset"
}
show_run() {
        show_cmd "$@"
        ctl "$@" </dev/null
}

# --- 2. the table --------------------------------------------------------------------------------
# dynalite stands in for DynamoDB; it does not check signatures, but notebookd signs every request
# all the same, so stand-in credentials are needed. notebookd and notebookctl inherit them.
endpoint=
if [ "${NB_QUICKSTART_LOCAL_ONLY:-0}" != 1 ]; then
        heading "Starting dynalite, a DynamoDB-compatible server, on loopback"
        read -r dyn_port dyn_pid < <(scripts/dynalite.sh start)
        endpoint=http://127.0.0.1:$dyn_port
        export AWS_ENDPOINT_URL_DYNAMODB=$endpoint AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
                AWS_ACCESS_KEY_ID=quickstart AWS_SECRET_ACCESS_KEY=quickstart-not-a-secret
        unset AWS_SESSION_TOKEN AWS_PROFILE
        note "dynalite answers on $endpoint (pid $dyn_pid)"

        heading "Creating the notebooks table (keys, both indexes, on-demand billing)"
        show_cmd table create --endpoint "$endpoint"
        ctl table create --endpoint "$endpoint" </dev/null
fi

# --- 3. the daemon ------------------------------------------------------------------------------
heading "Starting notebookd${endpoint:+, syncing to $endpoint}"
if [ -f "$pidfile" ]; then
        old=$(cat "$pidfile" 2>/dev/null || true)
        if [[ "$old" =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$old/comm" 2>/dev/null || true)" = notebookd ]; then
                note "stopping the daemon an earlier quick start left running (pid $old)"
                kill -TERM "$old" 2>/dev/null || true
                for _ in $(seq 100); do
                        kill -0 "$old" 2>/dev/null || break
                        sleep 0.1
                done
                if kill -0 "$old" 2>/dev/null; then
                        note "pid $old did not stop within 10 s; sending SIGKILL (acknowledged writes are safe)"
                        kill -KILL "$old" 2>/dev/null || true
                        sleep 0.5
                fi
        fi
        rm -f "$pidfile"
fi

pid=
if ctl status >/dev/null 2>&1; then
        # Someone else's daemon (a service, another terminal) already serves the default socket;
        # a second one would refuse to start there, so use it.
        note "a notebookd not started by this script already answers on $socket; using it."
else
        mkdir -p "$(dirname "$logfile")"
        printf '\n--- quickstart %s ---\n' "$(date -Is)" >>"$logfile"
        note "${endpoint:+AWS_ENDPOINT_URL_DYNAMODB=$endpoint }$notebookd ${daemon_args[*]-} (log: $logfile)"
        # setsid: the daemon outlives this script and the terminal; its own session, no stdin.
        setsid "$notebookd" ${daemon_args[@]+"${daemon_args[@]}"} </dev/null >>"$logfile" 2>&1 &
        pid=$!
        echo "$pid" >"$pidfile"
        ready=
        for _ in $(seq 200); do
                if ! kill -0 "$pid" 2>/dev/null; then
                        rm -f "$pidfile"
                        printf 'quickstart: notebookd exited during start-up; the end of its log:\n' >&2
                        tail -n 20 "$logfile" >&2
                        exit 1
                fi
                if ctl status >/dev/null 2>&1; then
                        ready=1
                        break
                fi
                sleep 0.1
        done
        if [ -z "$ready" ]; then
                printf 'quickstart: notebookd (pid %s) did not answer on %s within 20 s; its log:\n' "$pid" "$socket" >&2
                tail -n 20 "$logfile" >&2
                exit 1
        fi
        note "notebookd is running (pid $pid) and answers on $socket"
fi

# --- 4. the demonstration -----------------------------------------------------------------------
demo=demo-$user
blank=blank-$user
had_demo=
if ctl show "$demo" >/dev/null 2>&1; then
        had_demo=1
fi

if [ -z "$had_demo" ]; then
        heading "1. List your notebooks (user '$user'). The first list provisions $blank and $demo."
else
        heading "1. List your notebooks (user '$user'; $blank and $demo were provisioned by an earlier run)"
fi
show_run list

if [ -n "$had_demo" ] || ! ctl show "$demo" >/dev/null 2>&1; then
        heading "   Reset $demo to the original demo content, undoing the earlier run's changes"
        show_cmd demo-reset
        ctl demo-reset </dev/null >/dev/null
        note "(done; the revision keeps counting up: it is the same notebook)"
fi

heading "2. Show the demo notebook: six cells, with the variables each reads and writes"
show_run show "$demo"

heading "3. Add a cell at the end (the reply comes once the change is committed to disk)"
show_run cell add "$demo" --id quickstart-z --code 'z = x * y'

heading "4. Edit that cell: new code, and the variables it reads (x, y, df) and writes (z)"
note "(notebookd does not run code; a front end reports what each cell reads and writes)"
show_run cell edit "$demo" quickstart-z --code 'z = x * y + len(df)' --reads x,y,df --writes z

heading "5. The dependency graph: which cell feeds which, in a topological order"
show_run graph "$demo"

heading "6. History: every revision is kept for a while; undo the edit by restoring the one before it"
show_run history "$demo" --limit 3
before=$(ctl history "$demo" --limit 2 </dev/null | awk 'NR == 3 { print $1 }')
if [ -n "$before" ]; then
        show_run restore "$demo" "$before"
        note "(a restore is an edit like any other: a new revision, synced, itself undoable)"
fi

heading "7. Daemon status"
show_run status
# One field of `notebookctl --json status`, by a Python expression on s.
status_field() {
        ctl --json status </dev/null |
                /usr/bin/python3 -c 'import json, sys; s = json.load(sys.stdin); print(eval(sys.argv[1], {}, {"s": s}))' "$1"
}
database=$(status_field 's.get("database", "")' || true)
mode=$(status_field 's["sync"].get("mode", "")' || true)
syncs_to=$(status_field 's["sync"].get("endpoint", "")' || true)

if [ -n "$endpoint" ] && [ "${syncs_to%/}" != "$endpoint" ]; then
        note "(the notebookd answering here syncs ${syncs_to:+to $syncs_to, }not to $endpoint: the sync steps are left out)"
elif [ -n "$endpoint" ]; then
        heading "8. Sync: the edited notebooks arrive in the DynamoDB table"
        note "(notebookd coalesces a burst of edits into one write, conditioned on the revision the"
        note " table holds; waiting until nothing is pending)"
        synced=
        for _ in $(seq 150); do
                if [ "$(status_field 's["sync"]["pending"] + s["sync"]["in_flight"]' 2>/dev/null)" = 0 ]; then
                        synced=1
                        break
                fi
                sleep 0.2
        done
        [ -n "$synced" ] || die "the notebooks did not reach $endpoint within 30 s; see $logfile"
        printf '%s$ /usr/bin/python3 tests/tools/ddbcheck.py --endpoint %s --user %s --dump%s\n' \
                "$bold" "$endpoint" "$user" "$reset"
        note "(an independent reader, boto3: the items of user '$user' in the table, in short)"
        /usr/bin/python3 tests/tools/ddbcheck.py --endpoint "$endpoint" --user "$user" --dump |
                /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
        item = json.loads(line)
        print("  %-14s revision %-3s %d cells  name %r" % (item["notebook_id"], item["revision"],
              len(item.get("cells", [])), item.get("name")))'

        heading "9. The item matches the notebook notebookd holds, attribute by attribute"
        ctl --json show "$demo" </dev/null >"$build/quickstart-demo.json"
        printf '%s$ build/notebookctl --json show %s | /usr/bin/python3 tests/tools/ddbcheck.py --endpoint %s -%s\n' \
                "$bold" "$demo" "$endpoint" "$reset"
        /usr/bin/python3 tests/tools/ddbcheck.py --endpoint "$endpoint" - <"$build/quickstart-demo.json"
fi

# --- 5. where things are ------------------------------------------------------------------------
heading "notebookd keeps running in the background"
if [ -n "$pid" ]; then
        ctl_hint="build/notebookctl${ctl_args[*]:+ ${ctl_args[*]}}"
        cat <<EOF
  pid       $pid   (also in $pidfile)
  socket    $socket
  database  ${database:-$state_dir/notebookd.db}
  log       $logfile

  Try:      $ctl_hint --help
            $ctl_hint show $blank
  Stop it:  kill $pid        (or: kill \$(cat $pidfile))
            SIGTERM stops it cleanly; everything acknowledged is on disk.
  Again:    ./scripts/quickstart.sh   (stops this daemon first; the data is kept)
  Watch:    $ctl_hint watch   (changes as they happen, made here or pulled from the table)
EOF
        if [ -n "$endpoint" ]; then
                cat <<EOF

  dynalite  $endpoint (pid $dyn_pid)
  Stop it:  scripts/dynalite.sh stop   (the table's data is kept for the next start)
EOF
        fi
else
        cat <<EOF
  This script used a notebookd it did not start, so it leaves it alone.
  socket    $socket
EOF
fi
