#!/usr/bin/env bash
# Builds notebookd and runs the whole test suite, as CI does (.ci/run runs exactly this).
#
#   1. build/       -Werror build, `make check`, then `make distcheck` (the release tarball builds,
#                   passes its tests from a read-only source tree, installs and uninstalls cleanly)
#   2. build-asan/  the same suite under AddressSanitizer (with LeakSanitizer) and UBSan
#   3. lint         the tree is formatted by .clang-format, and cppcheck finds nothing
#   4. build-clang/ the same suite built by clang (-Werror) under clang's UBSan, which checks more
#                   than gcc's (float-cast-overflow among others); any finding fails its test
#
# Every stage runs even when an earlier one failed (a stage is skipped only when what it needs
# failed), so one run shows every problem. Exits non-zero if anything failed. It ends with each
# test or test point that was skipped, in which suite and why, then the closing line
# "tests: N passed, N failed, N skipped", counted over every suite that ran (distcheck's too).
#
# Environment:
#   NB_JOBS             parallel make jobs (default 2)
#   NB_STAGES           stages to run, space-separated, from: check distcheck asan lint
#                       ubsan-clang (default: all five)
#   NB_STEP_TIMEOUT     seconds one step (configure, build, check ...) may take (default 1800)
#   NB_FUZZ_ITERATIONS  fuzz campaign length, NB_CRASH_ROUNDS kill -9 rounds: passed through to
#                       the tests, which keep short defaults; raise them for a long campaign.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
src=$(pwd)
jobs=${NB_JOBS:-2}
stages=${NB_STAGES:-check distcheck asan lint ubsan-clang}
step_timeout=${NB_STEP_TIMEOUT:-1800}

# A test must never wait for a terminal.
exec </dev/null

started=$SECONDS
failed=()
results=()

heading() { printf '\n==== %s ====\n' "$*"; }
has_stage() { [[ " $stages " == *" $1 "* ]]; }

# step NAME COMMAND...: runs COMMAND with a time limit (killing its whole process group when it
# is over), records the outcome, returns its status.
step() {
        local name=$1 rc t0=$SECONDS
        shift
        heading "$name"
        printf '+ %s\n' "$*"
        if declare -F "$1" >/dev/null; then
                "$@"
        else
                timeout -k 30 "$step_timeout" "$@"
        fi
        rc=$?
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
                printf 'test.sh: "%s" took longer than %ss (NB_STEP_TIMEOUT) and was stopped.\n' \
                        "$name" "$step_timeout"
        fi
        if [ $rc -eq 0 ]; then
                results+=("ok      $name ($((SECONDS - t0))s)")
        else
                results+=("FAILED  $name (exit $rc, $((SECONDS - t0))s)")
                failed+=("$name")
        fi
        return $rc
}
skip() { results+=("skipped $1 (needs: $2)"); }

# Prints a test-suite.log (automake's report of every failed test, with its log), capped so
# that a runaway log cannot drown the rest of the output.
show_log() {
        local f=$1 max=4000
        [ -f "$f" ] || return 0
        heading "$f"
        head -n $max "$f"
        if [ "$(wc -l <"$f")" -gt $max ]; then
                printf '[... %s cut after %d lines; see the file for the rest]\n' "$f" $max
        fi
}

# Adds a suite's automake summary ("# PASS:  n" ...) to the totals, and its skipped tests and test
# points, with their reasons, to the list shown at the end. FILE is the suite's test-suite.log
# (which holds the logs of every test that skipped anything), or make's output for a suite whose
# test-suite.log is gone (distcheck deletes its tree on success): then the summary is the one after
# "Testsuite summary", and the skips are make's "SKIP:" lines.
n_pass=0 n_fail=0 n_skip=0
skips=()
count() {
        local f=$1 label=$2 key val line
        [ -f "$f" ] || return 0
        while read -r key val; do
                case $key in
                PASS: | XFAIL:) n_pass=$((n_pass + val)) ;;
                FAIL: | XPASS: | ERROR:) n_fail=$((n_fail + val)) ;;
                SKIP:) n_skip=$((n_skip + val)) ;;
                esac
        done < <(sed 's/\x1b\[[0-9;]*m//g' "$f" |
                awk '/^Testsuite summary/ { n = 0; seen = 1 } { lines[++n] = $0 }
                     END { for (i = 1; i <= n; i++) print lines[i] }' |
                sed -n 's/^# \([A-Z]*:\) *\([0-9][0-9]*\)$/\1 \2/p' | head -n 7)
        # "SKIP: TEST N - WHAT # SKIP WHY" for a test point, "SKIP: TEST - WHY" for a whole test; a
        # "SKIP: TEST" underlined with "=" heads that test's log in a test-suite.log.
        while IFS= read -r line; do
                skips+=("$label: $line")
        done < <(sed 's/\x1b\[[0-9;]*m//g' "$f" |
                awk '{ lines[NR] = $0 }
                     END { for (i = 1; i <= NR; i++)
                             if (lines[i] ~ /^SKIP: / && lines[i + 1] !~ /^==*$/) print lines[i] }' |
                sed -e 's/^SKIP: //' -e 's/ # SKIP:\{0,1\}[[:space:]]*$/: (no reason given)/' \
                        -e 's/ # SKIP:\{0,1\}[[:space:]]*/: /' -e 's/^\([^ ]*\) - /\1: /' -e 's/^\([^ :]*\)$/\1: (no reason given)/')
}

check_suite() {
        local dir=$1 name=$2
        rm -f "$dir/test-suite.log"
        if step "$name" make -C "$dir" -j"$jobs" check; then
                :
        else
                show_log "$dir/test-suite.log"
        fi
        count "$dir/test-suite.log" "$dir/"
}

# distcheck repeats configure, build, check, install and distclean in a copy of the tarball: its
# output goes to build/distcheck.log, and only its test summary and verdict are shown (all of the
# log's end, and the failed tests' logs, when it fails).
distcheck() {
        local name="make distcheck (build/)" log=build/distcheck.log f
        # shellcheck disable=SC2016 # expanded by the inner shell
        if step "$name" bash -c 'make -C build -j"$1" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror >"$2" 2>&1' \
                _ "$jobs" "$log"; then
                grep -B1 -A9 '^Testsuite summary' "$log" || true
                grep -A2 'archives ready for distribution' "$log" || true
        else
                heading "end of $log"
                tail -n 150 "$log"
                for f in build/notebookd-*/_build/sub/test-suite.log; do
                        show_log "$f"
                done
        fi
        count "$log" "distcheck"
}

# configure_in DIR ARGS...: configures DIR with ARGS, starting from an empty DIR unless it was
# configured with exactly these ARGS before: objects built with other flags (say by quickstart.sh,
# without -Werror) must not be reused, since make does not rebuild them when only flags change.
configure_in() {
        local dir=$1 stamp
        shift
        stamp="$*"
        if [ -f "$dir/Makefile" ] && [ "$(cat "$dir/.nb-configure-args" 2>/dev/null)" = "$stamp" ]; then
                echo "$dir/ is configured with these arguments already; make reconfigures it if needed."
                return 0
        fi
        rm -rf "$dir" && mkdir -p "$dir" || return
        env -C "$dir" ../configure --quiet "$@" || return
        printf '%s\n' "$stamp" >"$dir/.nb-configure-args"
}

heading "dependencies"
if ! scripts/install-deps.sh; then
        echo "test.sh: installing the dependencies failed; nothing can be built." >&2
        exit 1
fi

if [ -f config.status ]; then
        echo "test.sh: the source tree was configured in place (./config.status exists); out-of-tree" >&2
        echo "builds refuse such a tree. Run 'make distclean' in $src first." >&2
        exit 1
fi

step "autoreconf" autoreconf -fi || {
        echo "test.sh: autoreconf failed; nothing can be built." >&2
        exit 1
}

# --- 1. -Werror build, tests, distcheck -----------------------------------------------------------
if has_stage check || has_stage distcheck; then
        if step "configure (build/, --enable-werror)" configure_in build --enable-werror; then
                if step "build (build/)" make -C build -j"$jobs"; then
                        if has_stage check; then
                                check_suite build "make check (build/)"
                        fi
                        if has_stage distcheck; then
                                if [ ${#failed[@]} -eq 0 ]; then
                                        distcheck
                                else
                                        skip "make distcheck (build/)" "make check passing"
                                fi
                        fi
                else
                        skip "tests (build/)" "a successful build"
                fi
        else
                tail -n 60 build/config.log 2>/dev/null
                skip "build and tests (build/)" "configure"
        fi
fi

# --- 3. lint: formatting and cppcheck -------------------------------------------------------------
lint() {
        local files rc=0
        mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find daemon client tests -name '*.[ch]')
        clang-format --dry-run --Werror "${files[@]}" || rc=1
        # cppcheck does not read system headers here; cJSON.h is given so that its macros are known.
        cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
                --include=/usr/include/cjson/cJSON.h -I daemon -I client --suppress=missingIncludeSystem --inline-suppr daemon client tests/tools || rc=1
        return $rc
}
if has_stage lint; then
        step "lint (clang-format, cppcheck)" lint
fi

# --- 2. AddressSanitizer + UBSan ------------------------------------------------------------------
if has_stage asan; then
        asan_cflags="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        # Sanitized binaries run a few times slower: stretch the integration tests' timeouts.
        export NB_TIMEOUT_SCALE=${NB_TIMEOUT_SCALE:-3}
        # configure's own test programs run with these options as well; they are leak-free.
        if step "configure (build-asan/, ASan+UBSan)" configure_in build-asan CFLAGS="$asan_cflags" \
                LDFLAGS="-fsanitize=address,undefined"; then
                if step "build (build-asan/)" make -C build-asan -j"$jobs"; then
                        check_suite build-asan "make check (build-asan/, ASan+UBSan)"
                else
                        skip "make check (build-asan/)" "a successful build"
                fi
        else
                tail -n 60 build-asan/config.log 2>/dev/null
                skip "build and tests (build-asan/)" "configure"
        fi
fi

# --- 4. clang, UBSan -------------------------------------------------------------------------------
if has_stage ubsan-clang; then
        # float-cast-overflow is part of clang's undefined, named anyway: a double out of an
        # integer's range must never be converted silently (revisions, ttl, counts).
        ubsan_clang_cflags="-O1 -g -fno-omit-frame-pointer -fsanitize=undefined -fsanitize=float-cast-overflow -fno-sanitize-recover=all"
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        export NB_TIMEOUT_SCALE=${NB_TIMEOUT_SCALE:-2}
        if step "configure (build-clang/, clang UBSan)" configure_in build-clang --enable-werror CC=clang \
                CFLAGS="$ubsan_clang_cflags" LDFLAGS="-fsanitize=undefined"; then
                if step "build (build-clang/)" make -C build-clang -j"$jobs"; then
                        check_suite build-clang "make check (build-clang/, clang UBSan)"
                else
                        skip "make check (build-clang/)" "a successful build"
                fi
        else
                tail -n 60 build-clang/config.log 2>/dev/null
                skip "build and tests (build-clang/)" "configure"
        fi
fi

heading "summary ($((SECONDS - started))s)"
printf '%s\n' "${results[@]}"
if [ ${#failed[@]} -ne 0 ]; then
        printf '\ntest.sh: FAILED:'
        printf ' [%s]' "${failed[@]}"
        printf '\n'
fi
# Every skip, with its reason, so that none goes unseen; then the closing line CI reads: test points
# across the suites that ran (build/, distcheck's build of the tarball, build-asan/; TAP: one per
# "ok"/"not ok" line, a test that skips as a whole counts one).
if [ "$n_skip" -gt 0 ] || [ ${#skips[@]} -gt 0 ]; then
        printf '\nskipped:\n'
        [ ${#skips[@]} -eq 0 ] || printf '  %s\n' "${skips[@]}"
        if [ ${#skips[@]} -ne "$n_skip" ]; then
                printf '  (%d skips counted, %d found with a reason in the logs)\n' "$n_skip" ${#skips[@]}
        fi
fi
printf '\ntests: %d passed, %d failed, %d skipped\n' "$n_pass" "$n_fail" "$n_skip"
[ ${#failed[@]} -eq 0 ]
