#!/usr/bin/env bash
#
# tests/fuzz/run.sh regress BUILD       replays tests/fuzz/regress/<target>/*
#                                       with BUILD/fuzz-replay/<target>
# tests/fuzz/run.sh fuzz BUILD SECONDS  runs every libFuzzer target of
#                                       BUILD/fuzz for SECONDS in all
# tests/fuzz/run.sh sample BUILD SECONDS the same from a fresh corpus of
#                                       every 16th seed (what make test
#                                       runs: the seeds alone would take
#                                       longer than the time given), with
#                                       a fixed libFuzzer seed (FUZZ_SEED,
#                                       default 1) so that make test
#                                       replays the same search on every
#                                       run; fuzz mode draws a new seed
#
# Fuzzing keeps its corpus in BUILD/corpus/<target> (seeded by seeds.py
# when empty; the regression inputs are read as a second corpus), its log
# in BUILD/logs/<target>.log and what it finds in BUILD/artifacts/. Exits
# non-zero when a target crashed, hung, leaked or failed an invariant:
# the input is then named, to be fixed and copied into
# tests/fuzz/regress/<target>/. docs/FUZZ.md.
set -u
here=$(cd "$(dirname "$0")" && pwd)
mode=$1
build=$2
targets="fuzz_mount fuzz_fsck fuzz_journal"
status=0

case "$mode" in
regress)
    for t in $targets; do
        files=("$here/regress/$t"/*)
        [ -e "${files[0]}" ] || continue
        start=$SECONDS
        if timeout 300 env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
            "$build/fuzz-replay/$t" "${files[@]}" >"$build/fuzz-replay/$t.log" 2>&1; then
            echo "PASS fuzz regress $t: ${#files[@]} inputs, $((SECONDS - start)) s"
        else
            echo "FAIL fuzz regress $t (log: $build/fuzz-replay/$t.log)"
            tail -n 40 "$build/fuzz-replay/$t.log"
            status=1
        fi
    done
    ;;
fuzz | sample)
    total=${3:-600}
    per=$((total / 3))
    [ "$per" -ge 1 ] || per=1
    mkdir -p "$build/logs" "$build/artifacts"
    seedopt=()
    if [ "$mode" = sample ]; then
        seedopt=(-seed="${FUZZ_SEED:-1}")
        echo "fuzz sample: libFuzzer seed ${FUZZ_SEED:-1} (FUZZ_SEED=N for another)"
    fi
    for t in $targets; do
        corpus=$build/corpus/$t
        if [ "$mode" = sample ]; then
            corpus=$build/sample-corpus/$t
            rm -rf "$corpus" "$build/sample-seeds"
            python3 "$here/seeds.py" "$build/sample-seeds" || exit 1
            mkdir -p "$corpus"
            for f in "$build/sample-seeds"/seed-*; do
                n=${f##*-}
                [ $((10#$n % 16)) -ne 0 ] || cp "$f" "$corpus"/
            done
        elif [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
            python3 "$here/seeds.py" "$corpus" || exit 1
        fi
        mkdir -p "$here/regress/$t"
        log=$build/logs/$t.log
        # -timeout: one input may take a few seconds under ASan (fsck -y
        # rounds); a hang is much longer. Leaks are detected per input.
        # libFuzzer reads the whole corpus before it looks at the clock,
        # so the outer timeout leaves room for that.
        timeout $((per + 900)) "$build/fuzz/$t" -max_total_time="$per" -timeout=25 \
            -rss_limit_mb=2560 -max_len=4096 -print_final_stats=1 "${seedopt[@]}" \
            -artifact_prefix="$build/artifacts/$t-" "$corpus" "$here/regress/$t" \
            >"$log" 2>&1
        rc=$?
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        if [ "$rc" -eq 0 ]; then
            echo "PASS fuzz $t: ${per} s, ${runs:-?} inputs, $cov"
        else
            echo "FAIL fuzz $t: exit $rc after ${runs:-?} inputs (log: $log)"
            grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: |artifact_prefix|Test unit written)' "$log" | head -n 20
            status=1
        fi
    done
    ;;
*)
    echo "usage: $0 regress BUILD | fuzz BUILD SECONDS" >&2
    exit 2
    ;;
esac
exit $status
