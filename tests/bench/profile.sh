#!/usr/bin/env bash
#
# tests/bench/profile.sh WORKLOAD [BUILD] — where the time of one benchmark
# of tests/bench/run.sh goes on mmapfs. Measurements only.
#
# Mounts a fresh preallocated mmapfs image (BENCH_FS_SIZE, default 3G) under
# BENCH_TMP (default /var/tmp), runs WORKLOAD once (same parameters as
# run.sh) and records, at the same time:
#   - every FUSE request the kernel sends to this mount, by opcode
#     (tracepoint fuse:fuse_request_send, filtered on this connection);
#   - perf record -g of the daemon (-p PID): CPU samples of its threads;
#   - perf record -g of the workload process and its children (the
#     application side: syscalls, page cache, waiting for the daemon);
#   - the daemon's counters (mmapfs-stat) after the workload.
# Writes a text report to $PROFILE_OUT (default BUILD/bench-profile-WORKLOAD.txt)
# and keeps the perf data files next to it (*.perf.data).
#
# WORKLOAD: seqw randw fsync sqlwal sqldel create statc delete
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
workload=${1:-}
build=${2:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
case "$workload" in
seqw | randw | fsync | sqlwal | sqldel | create | statc | delete) ;;
*)
    echo "usage: $0 seqw|randw|fsync|sqlwal|sqldel|create|statc|delete [BUILD]" >&2
    exit 2
    ;;
esac
OUT=${PROFILE_OUT:-$build/bench-profile-$workload.txt}
FS_SIZE=${BENCH_FS_SIZE:-3G}
NFILES=${BENCH_FILES:-20000}
SQL_TXNS=${BENCH_SQL_TXNS:-2000}
FREQ=${PROFILE_FREQ:-1999}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || echo python3)
MMAPFS=$build/mmapfs MKFS=$build/mkfs.mmapfs MSTAT=$build/mmapfs-stat

die() {
    echo "profile: ERROR: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root"
for c in perf fio sqlite3 fusermount3 mountpoint timeout "$PY"; do
    command -v "$c" >/dev/null 2>&1 || die "missing: $c (make deps)"
done
for b in "$MMAPFS" "$MKFS" "$MSTAT"; do [ -x "$b" ] || die "$b is missing (make all)"; done

WORK="" MNT="" MM_PID="" PERF_PIDS=()
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM HUP
    for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PERF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$MNT" ] && mountpoint -q "$MNT"; then
        timeout -k 5 60 fusermount3 -u "$MNT" || timeout -k 5 30 fusermount3 -u -z "$MNT" || true
    fi
    if [ -n "$MM_PID" ]; then
        for _ in $(seq 600); do kill -0 "$MM_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$MM_PID" 2>/dev/null && kill -KILL "$MM_PID" 2>/dev/null
    fi
    if [ -n "$WORK" ] && ! grep -q " $WORK/" /proc/mounts; then rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/mmapfs-profile.XXXXXX")
MNT=$WORK/mnt
mkdir -p "$MNT" "$(dirname "$OUT")"
timeout -k 5 120 "$MKFS" -q -f -s "$FS_SIZE" "$WORK/img" || die "mkfs.mmapfs failed"
timeout -k 5 60 "$MMAPFS" "$WORK/img" "$MNT" </dev/null || die "mount failed"
exe=$(readlink -f "$MMAPFS")
for d in /proc/[0-9]*; do
    [ "$(readlink "$d/exe" 2>/dev/null)" == "$exe" ] || continue
    if tr '\0' '\n' <"$d/cmdline" 2>/dev/null | grep -qxF "$MNT"; then MM_PID=${d#/proc/}; fi
done
[ -n "$MM_PID" ] || die "daemon of $MNT not found"
# the FUSE connection id in the tracepoint is the kernel dev_t (major << 20 | minor)
IFS=: read -r maj min < <(mountpoint -d "$MNT")
conn=$(((maj << 20) | min))

# ---- workload preparation (not recorded) and the command that is ------------------
sql=$WORK/w.sql
case "$workload" in
sqlwal | sqldel)
    mode=WAL
    [ "$workload" = sqlwal ] || mode=DELETE
    "$here/sqlfile.sh" "$mode" "$SQL_TXNS" >"$sql"
    ;;
statc | delete)
    mkdir "$MNT/small"
    "$PY" "$here/smallfiles.py" create "$MNT/small" "$NFILES"
    sync
    echo 3 >/proc/sys/vm/drop_caches
    [ "$workload" = statc ] || "$PY" "$here/smallfiles.py" stat "$MNT/small" "$NFILES"
    ;;
create) mkdir "$MNT/small" ;;
fsync) mkdir "$MNT/fsync" ;;
esac
sync
# shellcheck disable=SC2016 # expanded by the inner sh
sqlite_sh='sqlite3 -bail "$1" < "$2" > /dev/null'
fio=(fio --ioengine=psync --output-format=normal)
case "$workload" in
seqw) cmd=("${fio[@]}" --name=seqw --filename="$MNT/seq" --rw=write --bs=1M --size=1G --end_fsync=1) ;;
randw) cmd=("${fio[@]}" --name=randw --filename="$MNT/rand" --rw=randwrite --bs=4k --size=256M --end_fsync=1) ;;
fsync) cmd=("${fio[@]}" --name=fsync --directory="$MNT/fsync" --rw=write --bs=4k --size=8M --fsync=1 --numjobs=8 --group_reporting) ;;
sqlwal | sqldel) cmd=(sh -c "$sqlite_sh" - "$MNT/bench.db" "$sql") ;;
create) cmd=("$PY" "$here/smallfiles.py" create "$MNT/small" "$NFILES") ;;
statc) cmd=("$PY" "$here/smallfiles.py" stat "$MNT/small" "$NFILES") ;;
delete) cmd=(rm -rf "$MNT/small") ;;
esac

# ---- record ------------------------------------------------------------------------------
perf record -q -g -e fuse:fuse_request_send --filter "connection == $conn" -a \
    -o "$WORK/fuse.data" >/dev/null 2>&1 &
PERF_PIDS+=($!)
perf record -q -F "$FREQ" -g -p "$MM_PID" -o "$WORK/daemon.data" >/dev/null 2>&1 &
PERF_PIDS+=($!)
sleep 1 # let both recorders attach
t0=$EPOCHREALTIME
timeout -k 10 300 perf record -q -F "$FREQ" -g -o "$WORK/app.data" -- "${cmd[@]}" >"$WORK/workload.log" 2>&1 ||
    { cat "$WORK/workload.log" >&2; die "workload failed"; }
t1=$EPOCHREALTIME
sleep 0.5 # writeback the workload left behind is part of it (fsync'd benchmarks leave none)
for p in "${PERF_PIDS[@]}"; do kill -INT "$p"; done
for p in "${PERF_PIDS[@]}"; do wait "$p" || true; done
PERF_PIDS=()
"$MSTAT" "$MNT" >"$WORK/counters.txt" 2>&1 || echo "(mmapfs-stat failed)" >"$WORK/counters.txt"

# ---- report --------------------------------------------------------------------------------------
base=${OUT%.txt}
set +o pipefail # head ends the pipes of perf report early
{
    echo "profile of '$workload' on mmapfs ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "command: ${cmd[*]}"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "wall time of the workload: %.3f s\n", b - a }'
    echo
    echo "== FUSE requests sent to this mount, by opcode (tracepoint fuse:fuse_request_send)"
    perf script -i "$WORK/fuse.data" -F trace 2>/dev/null |
        sed -n 's/.*opcode [0-9]* (\([A-Z_0-9]*\)).*/\1/p' | sort | uniq -c | sort -rn
    echo
    echo "== FUSE requests by opcode and kernel call site (first two callers ... the syscall or worker that sent it)"
    perf script -i "$WORK/fuse.data" 2>/dev/null | awk -f "$here/fuse_callers.awk" | sort -rn | head -n 25
    echo
    echo "== CPU samples at $FREQ Hz (cpu-clock): daemon $(perf script -i "$WORK/daemon.data" -F tid 2>/dev/null | wc -l)," \
        "workload $(perf script -i "$WORK/app.data" -F tid 2>/dev/null | wc -l)"
    echo
    echo "== daemon: top symbols by self time"
    perf report -i "$WORK/daemon.data" --stdio --no-children --sort dso,sym -g none --percent-limit 1 2>/dev/null |
        grep -v '^#' | grep . | head -n 40
    echo
    echo "== daemon: top call chains (children, inclusive)"
    perf report -i "$WORK/daemon.data" --stdio --children --sort sym -g none --percent-limit 4 2>/dev/null |
        grep -v '^#' | grep . | head -n 40
    echo
    echo "== workload process: top symbols by self time"
    perf report -i "$WORK/app.data" --stdio --no-children --sort dso,sym -g none --percent-limit 1.5 2>/dev/null |
        grep -v '^#' | grep . | head -n 30
    echo
    echo "== mmapfs-stat after the workload"
    cat "$WORK/counters.txt"
    echo
    echo "== workload output"
    tail -n 40 "$WORK/workload.log"
} >"$OUT"
cp "$WORK/daemon.data" "$base.daemon.perf.data"
cp "$WORK/app.data" "$base.app.perf.data"
echo "report: $OUT (perf data: $base.daemon.perf.data, $base.app.perf.data)"
