#!/usr/bin/env bash
#
# tests/crash/run.sh [BUILD] — the power-loss crash test (docs/CRASH.md).
#
# For each workload of tests/crash/workloads.py: make an image pre-filled
# with a garbage pattern (mkfs does not zero data blocks, so stale bytes are
# recognisable), mount it with the recording daemon
# (BUILD/tests/crash/mmapfs-record, which logs every page that changes
# between two engine flushes and every flush), run the workload (it logs
# what must survive a crash), unmount, then let crashcheck.py build crashed
# images from the record and recover and check each of them. The check of
# one workload runs beside the recording of the next (at most one of each
# at a time; reports are printed in workload order).
#
# Environment:
#   CRASH_SEED=N      master seed (default: random; always printed)
#   CRASH_LONG=1      the long run (make crash-test): bigger workloads,
#                     8 subsets per barrier, every pure barrier image
#   CRASH_ONLY=a,b    only these workloads
#   CRASH_ARGS="..."  more arguments for every recording daemon, after the
#                     workload's own options (e.g. "-s" or "-o io=pread");
#                     the crash images are recovered as usual
#   CRASH_PER_BARRIER, CRASH_PURE_EVERY, CRASH_FUSE_EVERY, CRASH_SCALE
#                     override the sampling (see crashcheck.py --help)
#   CRASH_CHAIN=N     also N crashes during recovery per workload: N crash
#                     images are recovered by the recording daemon and every
#                     crash image of that recovery is checked (default 0;
#                     1 in the long run)
#   CRASH_KEEP=DIR    where records and images of failures are kept
#                     (default /var/tmp/mmapfs-crash-failures)
#   CRASH_KEEP_RECORDS=1  keep every record (in CRASH_KEEP), not only failed ones
#   CRASH_SELFTEST=a,b  workloads whose record also serves the checker's
#                     self-test (crashcheck.py --violate: impossible crash
#                     images must be caught); default applog,atomic_replace
# Replay: the seed reproduces the workloads' choices and the sampling; the
# barriers themselves depend on timing, so a failure's record is kept and
# its "replay:" line re-checks the exact crash image.
# Under each workload's report: the journal's counters at its end (which
# paths of the commit protocol it took, docs/CRASH.md).
# Ends with "N passed, M failed" (crash images); exit 1 on any failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
PY=$(command -v python3)
RECORDER="$build/tests/crash/mmapfs-record"
EXTRACT="$build/tests/crash/crash_extract"
MKFS="$build/mkfs.mmapfs"
keep=${CRASH_KEEP:-/var/tmp/mmapfs-crash-failures}
selftest=${CRASH_SELFTEST:-applog,atomic_replace}

# the crash binaries (rules in tests/crash/crash.mk, which the top Makefile
# includes; naming it again with -f only made make warn of every rule twice)
rel_build=${build#"$root"/}
if ! make -s -C "$root" B="$rel_build" crash-bins >/dev/null; then
    echo "crash test: building the crash binaries failed (make crash-bins; the rules are in tests/crash/crash.mk)"
fi
for b in "$RECORDER" "$EXTRACT" "$MKFS" "$build/fsck.mmapfs" "$build/mmapfs"; do
    if [ ! -x "$b" ]; then
        echo "crash test: $b is missing (make all; the crash rules are in tests/crash/crash.mk)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
    echo "crash test: needs root, /dev/fuse and fusermount3; skipped"
    echo "0 passed, 0 failed"
    exit 77
fi

seed=${CRASH_SEED:-$(( (RANDOM << 15 | RANDOM) ))}
if [ -n "${CRASH_LONG:-}" ]; then
    scale=${CRASH_SCALE:-3} per=${CRASH_PER_BARRIER:-8} pure=${CRASH_PURE_EVERY:-1} fuse=${CRASH_FUSE_EVERY:-6}
    chain=${CRASH_CHAIN:-1}
else
    scale=${CRASH_SCALE:-1} per=${CRASH_PER_BARRIER:-3} pure=${CRASH_PURE_EVERY:-2} fuse=${CRASH_FUSE_EVERY:-8}
    chain=${CRASH_CHAIN:-0}
fi
echo "crash test: seed $seed (replay: CRASH_SEED=$seed${CRASH_LONG:+ CRASH_LONG=1}${CRASH_ARGS:+ CRASH_ARGS=\"$CRASH_ARGS\"} tests/crash/run.sh $1)"
[ -z "${CRASH_ARGS:-}" ] || echo "crash test: daemon arguments added: $CRASH_ARGS"
echo "crash test: scale $scale, $per random subset(s) per barrier, pure image every $pure barrier(s), FUSE check 1 in $fuse, $chain crash(es) during recovery"

tmp=$(mktemp -d /var/tmp/mmapfs-crash.XXXXXX)
export CRASH_TMP=/dev/shm
[ -d /dev/shm ] && [ -w /dev/shm ] || CRASH_TMP=$tmp
mnt=$tmp/mnt
mkdir -p "$mnt"
daemon_pid=""

# Unmounts and stops what this script started (by PID), removes $tmp.
cleanup() {
    # a check running in the background unmounts what it mounted itself
    # (it ignores SIGINT, as background jobs of a script do)
    [ -z "${check_pid:-}" ] || wait "$check_pid" 2>/dev/null
    if mountpoint -q "$mnt" 2>/dev/null; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || true
    fi
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        sleep 1
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

total_pass=0
total_fail=0
start=$SECONDS

# Records workload $1 (image size $2, mount options $3, mkfs options $6)
# into directory $4. 0 on success; prints the reason otherwise.
record() {
    local name=$1 size=$2 opts=$3 rec=$4 wseed=$5 mkopts=$6
    local img=$tmp/$name.img
    mkdir -p "$rec"
    # garbage pattern: never a valid tag (crashlib.TAG_MAGIC) nor zeros
    "$PY" -c 'import sys; n=int(sys.argv[2]); open(sys.argv[1],"wb").write(b"\xde\xad\xbe\xef"*(n//4))' \
        "$img" "$(numfmt --from=iec "$size")"
    local m=()
    # shellcheck disable=SC2206 # the workload's mkfs options are words
    [ "$mkopts" = "-" ] || m=(${mkopts//,/ })
    if ! "$MKFS" -q -f "${m[@]}" "$img" >"$rec/mkfs.out" 2>&1; then
        echo "mkfs.mmapfs failed: $(cat "$rec/mkfs.out")"
        return 1
    fi
    local o=()
    [ "$opts" = "-" ] || o=(-o "$opts")
    # shellcheck disable=SC2206 # CRASH_ARGS is a list of words
    o+=(${CRASH_ARGS:-})
    MMAPFS_CRASH_RECORD=$rec "$RECORDER" "$img" "$mnt" -f "${o[@]}" >"$rec/daemon.log" 2>&1 &
    daemon_pid=$!
    local i
    for i in $(seq 300); do
        mountpoint -q "$mnt" && break
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.05
    done
    if ! mountpoint -q "$mnt"; then
        echo "the recording daemon did not mount: $(tail -5 "$rec/daemon.log")"
        return 1
    fi
    local rc=0
    timeout -k 10 600 "$PY" "$here/workloads.py" "$name" "$mnt" "$rec/expect.log" \
        "$rec/synced" "$wseed" "$scale" >"$rec/workload.out" 2>&1 || rc=$?
    local urc=0
    fusermount3 -u "$mnt" 2>>"$rec/daemon.log" || urc=$?
    [ "$urc" -eq 0 ] || fusermount3 -u -z "$mnt" 2>/dev/null || true
    local drc=0
    wait "$daemon_pid" || drc=$?
    daemon_pid=""
    rm -f "$img"
    if [ "$rc" -ne 0 ]; then
        echo "the workload failed (exit $rc): $(tail -8 "$rec/workload.out")"
        return 1
    fi
    if [ -e "$rec/broken" ]; then
        echo "the record is broken: $(cat "$rec/broken")"
        return 1
    fi
    if [ "$urc" -ne 0 ] || [ "$drc" -ne 0 ]; then
        # the barriers recorded so far are still valid crash points
        echo "unmount failed (fusermount3 $urc, daemon exit $drc): $(tail -5 "$rec/daemon.log")"
        return 2
    fi
    return 0
}

# Checks the record of workload $1 (recorded in $5 s, recording result
# $4, mount options $6: the FUSE checks and the recoveries use them too)
# and prints the report into $tmp/report-$1, then "PASSED FAILED"
# into $tmp/count-$1. Runs in the background beside the next workload's
# recording: the check is mostly CPU, the recording mostly waits for its
# syncs, so on two cores the pair takes about the time of the longer.
check_record() {
    local name=$1 rec=$2 wseed=$3 rrc=$4 trec=$5 t0=$SECONDS p f tp=0 tf=0 out crc summary
    local mo=()
    [ "$6" = "-" ] || mo=(--mount-opts "$6")
    exec >"$tmp/report-$name" 2>&1
    # the commit protocol's paths the load took (workloads.py prints them)
    local jl
    jl=$(grep -m1 '^journal: ' "$rec/workload.out" 2>/dev/null)
    out=$("$PY" "$here/crashcheck.py" "$build" "$rec" --seed "$wseed" --label "$name" \
        --per-barrier "$per" --pure-every "$pure" --fuse-every "$fuse" --chain "$chain" \
        "${mo[@]}" --keep "$keep/$name-$wseed" 2>&1)
    crc=$?
    [ "$crc" -eq 0 ] && [ "$rrc" -eq 0 ] || out=${out//"$rec"/"$keep/$name-$wseed/record"}
    printf '%s\n' "$out" | grep -v '^$'
    summary=$(printf '%s\n' "$out" | tail -1)
    p=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$summary")
    f=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$summary")
    if [ -z "$p" ]; then
        echo "FAIL $name: crashcheck.py did not finish (exit $crc)"
        tf=$((tf + 1))
        p=0
        f=0
    fi
    tp=$((tp + p))
    tf=$((tf + f))
    if [[ ",$selftest," == *",$name,"* ]]; then
        # the checker must see the impossible: images with pages of
        # barrier k+2 while flush k+1 had not completed
        st=$("$PY" "$here/crashcheck.py" "$build" "$rec" --seed "$wseed" --label "$name" \
            --violate --per-barrier 2 --pure-every 0 --fuse-every 0 2>&1 | tail -1)
        if [[ "$st" == "self-test: "* ]] && [[ "$st" != "self-test: 0 "* ]]; then
            echo "ok   $name $st"
            tp=$((tp + 1))
        else
            echo "FAIL $name checker self-test: $st"
            tf=$((tf + 1))
        fi
    fi
    if [ "$crc" -ne 0 ] || [ "$rrc" -ne 0 ] || [ -n "${CRASH_KEEP_RECORDS:-}" ]; then
        mkdir -p "$keep"
        rm -rf "${keep:?}/$name-$wseed/record"
        mkdir -p "$keep/$name-$wseed"
        mv "$rec" "$keep/$name-$wseed/record"
        echo "     record kept in $keep/$name-$wseed/record (recording ${trec}s)"
    else
        rm -rf "$rec"
        echo "     ($name: recording ${trec}s, checking $((SECONDS - t0))s)"
    fi
    [ -z "$jl" ] || echo "     ($name $jl)"
    echo "$tp $tf" >"$tmp/count-$name"
}

# Waits for the check running in the background (if any), prints its
# report and adds its counts.
check_pid=""
check_name=""
collect() {
    [ -n "$check_pid" ] || return 0
    wait "$check_pid" || true
    cat "$tmp/report-$check_name"
    local p=0 f=1
    [ -s "$tmp/count-$check_name" ] && read -r p f <"$tmp/count-$check_name"
    [ -s "$tmp/count-$check_name" ] || echo "FAIL $check_name: the check did not report"
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    check_pid=""
}

mapfile -t lines < <("$PY" "$here/workloads.py" --list)
n=0
pos=0
for line in "${lines[@]}"; do
    read -r name size opts when mkopts <<<"$line"
    pos=$((pos + 1))
    # the workload's seed depends only on the master seed and its place in
    # the list, so CRASH_ONLY=name replays it
    wseed=$((seed + pos * 7919))
    if [ -n "${CRASH_ONLY:-}" ]; then
        [[ ",$CRASH_ONLY," == *",$name,"* ]] || continue
    elif [ "$when" = long ] && [ -z "${CRASH_LONG:-}" ]; then
        continue
    fi
    n=$((n + 1))
    rec=$tmp/rec-$name
    t0=$SECONDS
    rrc=0
    why=$(record "$name" "$size" "$opts" "$rec" "$wseed" "${mkopts:--}") || rrc=$?
    trec=$((SECONDS - t0))
    collect
    if [ "$rrc" -ne 0 ]; then
        echo "FAIL $name: recording: $why"
        total_fail=$((total_fail + 1))
        [ "$rrc" -eq 2 ] || continue
    fi
    check_record "$name" "$rec" "$wseed" "$rrc" "$trec" "$opts" &
    check_pid=$!
    check_name=$name
done
collect

echo "crash test: seed $seed, $n workloads, $((SECONDS - start))s"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
