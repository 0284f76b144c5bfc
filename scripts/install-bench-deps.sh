#!/usr/bin/env bash
# Installs the Debian 12 packages that `make bench` (tests/bench/bench.py) uses on top of
# scripts/install-deps.sh: Redis, the anchor of the single-edit figures (redis-server, and
# redis-benchmark from redis-tools), and curl, the ceiling of the sync drain. Without Redis the
# benchmark prints its anchors as "n/a"; without curl, the ceiling.
#
# Idempotent like install-deps.sh: nothing to do means no apt-get at all. Not root and something
# missing: it says what to run.
set -euo pipefail

packages=(redis-server redis-tools curl)

say() { printf 'install-bench-deps: %s\n' "$*"; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        say "this script needs Debian's dpkg and apt-get; install by hand: ${packages[*]}" >&2
        exit 1
fi

missing=()
for p in "${packages[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || missing+=("$p")
done
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
log=$(mktemp /tmp/notebookd-install-bench-deps.XXXXXX.log)
trap 'rm -f "$log"' EXIT
say "installing: ${missing[*]}"
# The Debian package starts a system redis-server; the benchmark runs its own and does not use it.
if ! { apt-get -q -y update && apt-get -q -y -o APT::Install-Recommends=false install "${missing[@]}"; } \
        >"$log" 2>&1; then
        say "apt-get failed; its output follows." >&2
        cat "$log" >&2
        exit 1
fi
say "done."
