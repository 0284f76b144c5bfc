#!/usr/bin/env bash
# Starts and stops dynalite, the DynamoDB-compatible server that the quick start and the tests run
# on loopback (DESIGN.md, "Testing against real parts"). scripts/install-deps.sh installs it with
# `npm ci` in tests/dynalite, whose package-lock.json pins every version (dynalite 4.0.0: it
# declares node >= 20, yet runs on Debian 12's nodejs 18, which this project uses; npm ci only
# warns about that).
#
#   scripts/dynalite.sh start  [--dir DIR] [--port PORT] [--memory] [-- DYNALITE_OPTIONS...]
#   scripts/dynalite.sh stop   [--dir DIR]
#   scripts/dynalite.sh status [--dir DIR]
#
# start: runs dynalite in the background, in its own session (it outlives this script and the
# terminal), listening on 127.0.0.1 only, tables ACTIVE at once (--createTableMs 0, and the same
# for delete and update), and waits until it accepts connections (NB_DYNALITE_TIMEOUT seconds,
# default 20). Prints "PORT PID" on stdout, and where everything is on stderr. Already running
# with this DIR: prints its "PORT PID" and leaves it alone.
#   --dir DIR   its directory: LevelDB data in DIR/db (kept across restarts), DIR/dynalite.pid,
#               DIR/dynalite.port, DIR/dynalite.log. Default: $NB_DYNALITE_DIR, else
#               /var/lib/notebookd-dynalite for root and
#               ${XDG_STATE_HOME:-~/.local/state}/notebookd-dynalite for other users.
#   --port N    default $NB_DYNALITE_PORT, else 4567; 0 picks a free port.
#   --memory    keeps the tables in memory only (gone when it stops).
#   after --     passed on to dynalite (--maxItemSizeKb, --verbose, ...).
# stop: SIGTERM (SIGKILL after 10 s) to the pid in DIR/dynalite.pid, if it is that dynalite.
# status: prints "PORT PID" and exits 0 when it runs, exits 3 when it does not.
#
# Environment: NB_NODE (node binary, default node), NB_DYNALITE_CLI (dynalite's cli.js, default
# tests/dynalite/node_modules/dynalite/cli.js). Exit status 1 on failure, 2 on a bad command line.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
node=${NB_NODE:-node}
cli=${NB_DYNALITE_CLI:-$src/tests/dynalite/node_modules/dynalite/cli.js}
timeout_s=${NB_DYNALITE_TIMEOUT:-20}

say() { printf 'dynalite.sh: %s\n' "$*" >&2; }
die() {
        say "$*"
        exit 1
}
usage() {
        say "usage: $0 start|stop|status [--dir DIR] [--port PORT] [--memory] [-- DYNALITE_OPTIONS...]"
        exit 2
}

[ $# -ge 1 ] || usage
cmd=$1
shift
if [ "$(id -u)" -eq 0 ]; then
        dir=${NB_DYNALITE_DIR:-/var/lib/notebookd-dynalite}
else
        dir=${NB_DYNALITE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/notebookd-dynalite}
fi
port=${NB_DYNALITE_PORT:-4567}
port_given=false
memory=false
extra=()
while [ $# -gt 0 ]; do
        case $1 in
        --dir) [ $# -ge 2 ] || usage; dir=$2; shift 2 ;;
        --port) [ $# -ge 2 ] || usage; port=$2; port_given=true; shift 2 ;;
        --memory) memory=true; shift ;;
        --) shift; extra=("$@"); break ;;
        *) usage ;;
        esac
done
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -gt 65535 ]; then
        die "--port: not a port number: $port"
fi
pidfile=$dir/dynalite.pid
portfile=$dir/dynalite.port
logfile=$dir/dynalite.log

# The pid of the dynalite that DIR/dynalite.pid names, if it still runs (a pid reused by another
# process does not count).
running_pid() {
        local pid
        pid=$(cat "$pidfile" 2>/dev/null) || return 1
        [[ "$pid" =~ ^[0-9]+$ ]] || return 1
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q dynalite || return 1
        printf '%s\n' "$pid"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
        "$node" -e 'const s = require("net").createServer();
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

do_stop() {
        local pid _
        if ! pid=$(running_pid); then
                rm -f "$pidfile" "$portfile"
                say "not running (dir $dir)."
                return 0
        fi
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
                say "pid $pid did not stop within 10 s; sending SIGKILL."
                kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile" "$portfile"
        say "stopped pid $pid."
}

# One attempt at starting on $1; prints the pid; returns 1 if dynalite exited (its log says why).
start_on() {
        local p=$1 pid deadline path_args=()
        $memory || path_args=(--path "$dir/db")
        printf -- '--- %s: starting on 127.0.0.1:%s\n' "$(date -Is)" "$p" >>"$logfile"
        # setsid: its own session, so that it outlives this script and the terminal.
        setsid "$node" "$cli" --host 127.0.0.1 --port "$p" ${path_args[@]+"${path_args[@]}"} \
                --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 ${extra[@]+"${extra[@]}"} \
                </dev/null >>"$logfile" 2>&1 &
        pid=$!
        deadline=$((SECONDS + timeout_s))
        while [ $SECONDS -lt $deadline ]; do
                if ! kill -0 "$pid" 2>/dev/null; then
                        return 1
                fi
                if listening "$p"; then
                        printf '%s\n' "$pid"
                        return 0
                fi
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        die "dynalite did not accept connections on 127.0.0.1:$p within ${timeout_s}s; log: $logfile"
}

do_start() {
        local pid p _ where
        if pid=$(running_pid); then
                p=$(cat "$portfile" 2>/dev/null || true)
                if $port_given && [ "$port" != 0 ] && [ "$port" != "$p" ]; then
                        die "already running on port $p (pid $pid, dir $dir); stop it first."
                fi
                say "already running: http://127.0.0.1:$p (pid $pid, dir $dir)."
                printf '%s %s\n' "$p" "$pid"
                return 0
        fi
        [ -f "$cli" ] || die "dynalite is not installed ($cli missing): run scripts/install-deps.sh"
        command -v "$node" >/dev/null 2>&1 || die "node not found: run scripts/install-deps.sh"
        mkdir -p "$dir"
        for _ in 1 2 3; do
                p=$port
                [ "$port" != 0 ] || p=$(free_port) || die "could not find a free port"
                if pid=$(start_on "$p"); then
                        printf '%s\n' "$pid" >"$pidfile"
                        printf '%s\n' "$p" >"$portfile"
                        where="in $dir/db"
                        ! $memory || where="in memory"
                        say "listening on http://127.0.0.1:$p (pid $pid; data $where; log $logfile)"
                        printf '%s %s\n' "$p" "$pid"
                        return 0
                fi
                # A port picked here may have been taken meanwhile: try another.
                if [ "$port" != 0 ] || ! tail -n 20 "$logfile" | grep -q EADDRINUSE; then
                        break
                fi
        done
        say "dynalite exited at start-up; the end of $logfile:"
        tail -n 20 "$logfile" >&2
        exit 1
}

case $cmd in
start) do_start ;;
stop) do_stop ;;
status)
        if pid=$(running_pid); then
                printf '%s %s\n' "$(cat "$portfile" 2>/dev/null || true)" "$pid"
        else
                exit 3
        fi
        ;;
*) usage ;;
esac
