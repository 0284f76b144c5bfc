#!/usr/bin/env bash
# Installs the Debian 12 packages that notebookd needs to build, run and test.
#
# Idempotent: when every package is already installed it does nothing (no apt-get at all), so it
# is cheap to call from quickstart.sh and test.sh on every run. Otherwise, as root, it runs
# `apt-get update` once and installs what is missing, quietly: apt's progress goes to a log file
# that is printed only if something fails. Not root and something missing: it says what to run.
#
# NB_EXTRA_PACKAGES (space-separated) adds packages to the list, e.g. for a local experiment.
set -euo pipefail

packages=(
        # build
        build-essential autoconf automake libtool pkg-config
        libsqlite3-dev libcurl4-openssl-dev libcjson-dev libsystemd-dev libssl-dev
        # run and test: the sqlite3 shell (integrity checks), /usr/bin/python3 (integration tests,
        # standard library only), util-linux (setpriv, setsid), systemd-socket-activate
        # (LISTEN_FDS tests), procps (ps/pgrep in tests and quickstart diagnostics)
        sqlite3 python3 util-linux systemd procps
        # lint stage of test.sh
        clang-format cppcheck
)
# shellcheck disable=SC2206 # word splitting is the point
packages+=(${NB_EXTRA_PACKAGES:-})

say() { printf 'install-deps: %s\n' "$*"; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        say "this script needs Debian's dpkg and apt-get (Debian 12 \"bookworm\" is supported)." >&2
        say "install these packages (or their equivalents) by hand: ${packages[*]}" >&2
        exit 1
fi

missing_packages() {
        local p status
        for p in "${packages[@]}"; do
                status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
                [ "$status" = installed ] || printf '%s\n' "$p"
        done
}

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -eq 0 ]; then
        say "all ${#packages[@]} packages already installed."
        exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
        say "missing packages: ${missing[*]}" >&2
        say "installing them needs root. Run as root (or with sudo):" >&2
        say "    apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/notebookd-install-deps.XXXXXX.log)
trap 'rm -f "$log"' EXIT
apt_opts=(-q -y -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

fail() {
        say "$1 failed; its output follows." >&2
        cat "$log" >&2
        exit 1
}

say "installing: ${missing[*]}"
# One update per run, and only because something is missing: the package lists of a fresh
# machine may be empty or stale.
apt-get "${apt_opts[@]}" update >"$log" 2>&1 || fail "apt-get update"
apt-get "${apt_opts[@]}" install "${missing[@]}" >>"$log" 2>&1 || fail "apt-get install"

mapfile -t still < <(missing_packages)
if [ ${#still[@]} -ne 0 ]; then
        say "still not installed after apt-get: ${still[*]}" >&2
        cat "$log" >&2
        exit 1
fi
say "done."
