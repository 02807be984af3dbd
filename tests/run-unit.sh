#!/usr/bin/env bash
# Runs unit test binaries of BUILD/tests; each ends with cmocka's summary.
#
#   tests/run-unit.sh BUILD             every BUILD/tests/test_*
#   tests/run-unit.sh BUILD NAME...     only BUILD/tests/NAME... (each must exist)
#
# UNIT_RUNNER, if set, is a command prefix each binary runs under (make
# check-tsan uses it for `setarch <arch> -R`). UNIT_JOBS binaries run at
# once (default: one more than the CPUs, at most 4): most of them spend
# their time in one thread or asleep (the MMP tests wait out heartbeats),
# so two at a time on two cores take about 60% of the time in series, and
# three about 85% of that (plain build 87-96 s against 104 s, ASan 99 s
# against 107-125 s, on two cores). The
# binaries whose assertions measure waits of the engine's and the
# journal's sync batching (SERIAL below) run afterwards, one at a time,
# so that a neighbour's load does not stretch what they time. Output of
# a binary is printed whole when it ends, with its time; a closing tally
# line follows. Exits non-zero if any test binary fails.
set -u
. "$(dirname "$0")/lib/pool.sh"
B=${1:-build}
shift || true
runner=(${UNIT_RUNNER:-})
jobs=${UNIT_JOBS:-$(( $(nproc 2>/dev/null || echo 1) + 1 ))}
case $jobs in ''|*[!0-9]*|0) jobs=1 ;; esac
[ "$jobs" -le 4 ] || jobs=4
SERIAL=" test_mmio test_journal test_concurrency "
# the longest first, so that the tail of the run is not one long binary
FIRST="test_fsck test_fs_mmp test_btree test_fs_dir test_fsck_repair test_shift test_resize"

if [ $# -gt 0 ]; then
    tests=()
    for n in "$@"; do tests+=("$B/tests/$n"); done
else
    tests=()
    for n in $FIRST; do [ -x "$B/tests/$n" ] && tests+=("$B/tests/$n"); done
    for t in "$B"/tests/test_*; do
        case " $FIRST " in *" ${t##*/} "*) continue ;; esac
        tests+=("$t")
    done
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/run-unit.XXXXXX") || exit 2
trap 'rm -rf "$out"' EXIT
pass=0; fail=0; failed=(); start=$SECONDS

# One binary: its output, result and time go to files named after it.
run_one() {
    local t=$1 f=$out/${1##*/} t0=$SECONDS r=ok
    timeout 600 "${runner[@]}" "$t" >"$f.log" 2>&1 || r=FAILED
    echo "$r $((SECONDS - t0))" >"$f.rc"
}

# Prints and counts one finished binary.
report() {
    local t=$1 f=$out/${1##*/} r secs
    read -r r secs <"$f.rc"
    echo "== $t"
    cat "$f.log"
    echo "-- $t: $r ($secs s)"
    if [ "$r" = ok ]; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$t"); fi
}

ready=()
for t in "${tests[@]}"; do
    case "$t" in *.d) continue;; esac
    if [ ! -x "$t" ]; then
        [ $# -gt 0 ] || continue
        echo "== $t: missing"; fail=$((fail+1)); failed+=("$t"); continue
    fi
    ready+=("$t")
done
pool_run "$jobs" "$SERIAL" "${ready[@]}"
echo "unit test binaries: $pass passed, $fail failed ($((SECONDS-start)) s)"
[ "$fail" -eq 0 ] || { printf 'FAILED: %s\n' "${failed[@]}"; exit 1; }
