#!/usr/bin/env bash
# Runs the libFuzzer binaries that `make fuzz` built, one target after another, and writes a
# table of what each run did (doc/fuzzing.md has the latest one).
#
#   scripts/fuzz-campaign.sh BUILDDIR [TARGET...]      (default: every fuzz-* in BUILDDIR/fuzz)
#
# Each target starts from its corpus in the tree (tests/fuzz/corpus/TARGET) with its dictionary
# (tests/fuzz/TARGET.dict); what it finds goes to OUT/TARGET/: corpus/ (new inputs), crash-*,
# leak-*, timeout-* (findings: add them to the tree's corpus once fixed), and the logs. OUT/summary
# gets one line per target: executions, exec/s, seconds, cov, ft, corpus size, findings.
#
# Environment:
#   NB_FUZZ_RUNS   executions per target, all jobs together (default 10000000)
#   NB_FUZZ_JOBS   parallel jobs per target, each with its share of the runs (default 1)
#   NB_FUZZ_OUT    where the results go (default /tmp/fuzz-campaign)
#   NB_FUZZ_ARGS   more libFuzzer flags, e.g. -max_total_time=600
set -uo pipefail

if [ $# -lt 1 ] || [ ! -d "$1/fuzz" ]; then
        echo "usage: $0 BUILDDIR [TARGET...]  (run 'make fuzz' in BUILDDIR first)" >&2
        exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(cd "$1/fuzz" && pwd)
shift
runs=${NB_FUZZ_RUNS:-10000000}
jobs=${NB_FUZZ_JOBS:-1}
out=${NB_FUZZ_OUT:-/tmp/fuzz-campaign}
read -r -a extra <<<"${NB_FUZZ_ARGS:-}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
        for f in "$bindir"/fuzz-*; do
                targets+=("$(basename "$f")")
        done
fi
mkdir -p "$out" || exit 1

status=0
for t in "${targets[@]}"; do
        dir=$out/$t
        mkdir -p "$dir/corpus" || exit 1
        dict=()
        [ -f "$src/tests/fuzz/$t.dict" ] && dict=(-dict="$src/tests/fuzz/$t.dict")
        printf '%s: %s executions in %s job(s), log in %s\n' "$t" "$runs" "$jobs" "$dir"
        t0=$SECONDS
        # New inputs go to the first directory; the tree's corpus is only read.
        if [ "$jobs" -gt 1 ]; then
                (cd "$dir" && "$bindir/$t" -runs=$((runs / jobs)) -jobs="$jobs" -workers="$jobs" \
                        -print_final_stats=1 -artifact_prefix="$dir/" "${dict[@]}" "${extra[@]}" \
                        corpus "$src/tests/fuzz/corpus/$t" >"$dir/main.log" 2>&1)
        else
                (cd "$dir" && "$bindir/$t" -runs="$runs" -print_final_stats=1 -artifact_prefix="$dir/" \
                        "${dict[@]}" "${extra[@]}" corpus "$src/tests/fuzz/corpus/$t" >"$dir/fuzz-0.log" 2>&1)
        fi
        rc=$?
        secs=$((SECONDS - t0))
        # Totals over the jobs' logs: executions add up, cov and ft are the best job's.
        cat "$dir"/fuzz-*.log | awk -v t="$t" -v secs="$secs" -v rc="$rc" -v dir="$dir" '
                /^stat::number_of_executed_units:/ { execs += $2 }
                /^#[0-9]+/ { for (i = 1; i <= NF; i++) {
                        if ($i == "cov:" && $(i + 1) > cov) cov = $(i + 1)
                        if ($i == "ft:" && $(i + 1) > ft) ft = $(i + 1) } }
                END {
                        cmd = "ls " dir "/corpus | wc -l"; cmd | getline corp
                        cmd = "ls " dir " | grep -c -E \"^(crash|leak|timeout|oom)-\""; cmd | getline found
                        printf "%s\texecs %d\texec/s %d\ttime %ds\tcov %d\tft %d\tcorpus %d\tfindings %d\texit %d\n",
                                t, execs, secs ? execs / secs : 0, secs, cov, ft, corp, found, rc }' |
                tee -a "$out/summary"
        [ "$rc" -eq 0 ] || status=1
done
exit $status
