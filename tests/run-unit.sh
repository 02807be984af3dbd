#!/usr/bin/env bash
# Runs unit test binaries of BUILD/tests; each ends with cmocka's summary.
#
#   tests/run-unit.sh BUILD             every BUILD/tests/test_*
#   tests/run-unit.sh BUILD NAME...     only BUILD/tests/NAME... (each must exist)
#
# UNIT_RUNNER, if set, is a command prefix each binary runs under (make
# check-tsan uses it for `setarch <arch> -R`). Prints each binary's time
# and a closing tally line; exits non-zero if any test binary fails.
set -u
B=${1:-build}
shift || true
runner=(${UNIT_RUNNER:-})
if [ $# -gt 0 ]; then
    tests=()
    for n in "$@"; do tests+=("$B/tests/$n"); done
else
    tests=("$B"/tests/test_*)
fi
pass=0; fail=0; failed=(); start=$SECONDS
for t in "${tests[@]}"; do
    case "$t" in *.d) continue;; esac
    if [ ! -x "$t" ]; then
        [ $# -gt 0 ] || continue
        echo "== $t: missing"; fail=$((fail+1)); failed+=("$t"); continue
    fi
    echo "== $t"
    t0=$SECONDS
    if timeout 600 "${runner[@]}" "$t"; then pass=$((pass+1)); r=ok; else fail=$((fail+1)); failed+=("$t"); r=FAILED; fi
    echo "-- $t: $r ($((SECONDS-t0)) s)"
done
echo "unit test binaries: $pass passed, $fail failed ($((SECONDS-start)) s)"
[ "$fail" -eq 0 ] || { printf 'FAILED: %s\n' "${failed[@]}"; exit 1; }
