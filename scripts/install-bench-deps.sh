#!/usr/bin/env bash
# Installs what `make bench` (tests/bench/bench.py) needs: everything scripts/install-deps.sh
# installs (dynalite for the sync drain among it), and on top Redis, the anchor of the single-edit
# figures (redis-server, and redis-benchmark from redis-tools), and curl, the ceiling of the sync
# drain. Without Redis the benchmark prints its anchors as "n/a"; without curl, the ceiling.
# Idempotent, like install-deps.sh. (The Debian package starts a system redis-server; the
# benchmark runs its own and does not use it.)
set -euo pipefail

NB_EXTRA_PACKAGES="${NB_EXTRA_PACKAGES:-} redis-server redis-tools curl" \
        exec "$(dirname "$0")/install-deps.sh" "$@"
