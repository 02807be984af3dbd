#!/usr/bin/env bash
# Runs every unit test binary in BUILD/tests; each ends with cmocka's summary.
# Exits non-zero if any test binary fails. Prints a closing tally line.
set -u
B=${1:-build}
pass=0; fail=0; failed=()
for t in "$B"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue;; esac
    echo "== $t"
    if timeout 600 "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$t"); fi
done
echo "unit test binaries: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { printf 'FAILED: %s\n' "${failed[@]}"; exit 1; }
