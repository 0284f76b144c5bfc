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
        libsqlite3-dev libcurl4-openssl-dev libcjson-dev libsystemd-dev libssl-dev zlib1g-dev
        # run and test: the sqlite3 shell (integrity checks), /usr/bin/python3 (integration tests,
        # standard library only), util-linux (setpriv, setsid), systemd-socket-activate
        # (LISTEN_FDS tests), procps (ps/pgrep in tests and quickstart diagnostics),
        # python3-botocore (test-sigv4 compares signatures with botocore's signer), strace (the
        # crash test watches that a write is answered only after its commit was synced)
        sqlite3 python3 util-linux systemd procps python3-botocore strace
        # lint stage of test.sh
        clang-format cppcheck
        # the ubsan-clang stage of test.sh, and make fuzz (libFuzzer and the sanitizers' runtimes)
        clang libclang-rt-dev
        # DynamoDB tests and the quick start: dynalite (npm, pinned in tests/dynalite, installed
        # below) runs on Debian's nodejs; boto3 is the independent reader (tests/tools/ddbcheck.py,
        # run with /usr/bin/python3)
        nodejs npm python3-boto3
        # the notebook world: nbformat validates exports; promtool (package prometheus) checks the
        # metrics text; pip, setuptools, wheel and venv install the Python client offline; bash's
        # completion framework loads notebookctl's completion
        python3-nbformat prometheus python3-pip python3-setuptools python3-wheel python3-venv
        bash-completion
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
        local p status provided
        # What installed packages provide counts as installed: a nodejs from elsewhere (NodeSource)
        # provides npm, and conflicts with Debian's.
        provided=" $(dpkg-query -W -f='${db:Status-Status} ${Provides}\n' 2>/dev/null |
                sed -n 's/^installed //p' | sed 's/ ([^)]*)//g' | tr ',\n' '  ') "
        for p in "${packages[@]}"; do
                status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
                [ "$status" = installed ] || [[ "$provided" == *" $p "* ]] || printf '%s\n' "$p"
        done
}

# dynalite, the loopback DynamoDB of the tests and the quick start: `npm ci` of the versions that
# tests/dynalite/package-lock.json pins, only when node_modules is missing or came from another
# lock file (so an installed tree needs no network). --ignore-scripts: nothing is built or fetched
# beyond the registry's packages (the LevelDB binding ships prebuilt N-API binaries).
install_dynalite() {
        local dir want stamp npm_log
        dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/dynalite
        [ -f "$dir/package-lock.json" ] || return 0
        want=$(sha256sum <"$dir/package-lock.json")
        stamp=$dir/node_modules/.notebookd-lock-sha256
        if [ -f "$dir/node_modules/dynalite/cli.js" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
                say "dynalite already installed (tests/dynalite/node_modules)."
                return 0
        fi
        say "installing dynalite: npm ci in tests/dynalite"
        npm_log=$(mktemp /tmp/notebookd-npm-ci.XXXXXX.log)
        if ! npm ci --prefix "$dir" --ignore-scripts --prefer-offline --no-audit --no-fund \
                --loglevel=error >"$npm_log" 2>&1; then
                say "npm ci failed; its output follows." >&2
                cat "$npm_log" >&2
                rm -f "$npm_log"
                exit 1
        fi
        rm -f "$npm_log"
        printf '%s\n' "$want" >"$stamp"
}

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -eq 0 ]; then
        say "all ${#packages[@]} packages already installed."
        install_dynalite
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
install_dynalite
say "done."
