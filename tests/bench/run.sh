#!/usr/bin/env bash
#
# tests/bench/run.sh [BUILD] — mmapfs against the kernel's ext4, side by side
# in the same run, reported as ratios. See docs/BENCH.md.
#
# Two filesystems of the same size in one fresh temp dir under $BENCH_TMP:
#   ext4    on a loop device over a sparse file (mkfs.ext4 without lazy init)
#   mmapfs  on a preallocated image made by BUILD/mkfs.mmapfs, mounted with
#           BUILD/mmapfs (default options)
# Every benchmark runs on both, alternating which goes first; each is repeated
# and the median kept. Both filesystems are unmounted and mounted again
# before every benchmark (and before every cold read).
#
#   ratio = mmapfs / ext4           for rates (MB/s, IOPS, transactions/s)
#   ratio = ext4 time / mmapfs time for durations and latencies
# so a ratio >= 1.0 always means "mmapfs at least as good as ext4".
# The targets ("must reach" and "aim") are printed beside the ratios; missing
# one is not a failure. For the fsync rows it also prints the fsync latency
# percentiles (p50, p99) of both filesystems and mmapfs's engine syncs per
# fsync (BUILD/mmapfs-stat before and after).
#
# The small-file rows (create, stat, rm -rf, untar) and the warm random reads
# are also measured on a third filesystem, the FUSE floor (BUILD/tests/nullfs,
# tests/bench/nullfs.c): a FUSE daemon that negotiates what mmapfs
# negotiates, answers every request at once from memory and stores nothing.
# Its ratio to ext4, in the column "FUSE floor", is the best any FUSE
# filesystem can reach on that row on this machine and kernel (docs/BENCH.md,
# "The FUSE floor").
#
# Prints the table and writes it as Markdown to $BENCH_OUT. Exits 0 unless
# something broke (a tool missing, a mount or a benchmark failing, the image
# not clean afterwards, the time budget exceeded). Needs root.
#
# Environment (defaults in brackets):
#   BENCH_OUT           Markdown output [BUILD/bench.md]
#   BENCH_TMP           parent of the temp dir holding both images [/var/tmp]
#   BENCH_FS_SIZE       size of each filesystem [3G]
#   BENCH_RUNS          repetitions of the cheap benchmarks [3]
#   BENCH_SEQ_RUNS      repetitions of the 1 GiB sequential write [3]
#   BENCH_READ_RUNS     repetitions of the cold sequential read [5]
#   BENCH_SEQ_SIZE      sequential file size [1G]
#   BENCH_RAND_SIZE     random-write file size [256M]
#   BENCH_RREAD_SIZE    file of the warm random reads [256M]
#   BENCH_RREAD_SECONDS duration of one warm random-read run [5]
#   BENCH_FSYNC_SIZE    bytes per writer in the 8-writer fsync benchmark [8M]
#   BENCH_FSYNC_JOBS    concurrent writers in that benchmark [8]
#   BENCH_FSYNC1_SIZE   bytes written by the single fsync writer [4M]
#   BENCH_SQL_TXNS      SQLite transactions per run [2000]
#   BENCH_FILES         small files [20000]
#   BENCH_UNTAR_DIRS    directories in the untar tarball [100]
#   BENCH_UNTAR_FILES   4 KiB files per directory in it [200]
#   BENCH_MIX_SECONDS   duration of each phase of the mixed benchmark [4]
#   BENCH_MIX_READERS   O_DIRECT random readers in it [4]
#   BENCH_MIX_WRITERS   write+fsync writers beside them [4]
#   BENCH_MIX_SIZE      file size of each reader [64M]
#   BENCH_MIX_WSIZE     file size of each writer (time-based, wraps) [64M]
#   BENCH_MMAPFS_OPTS   extra mmapfs -o options (e.g. io=pread) []
#   BENCH_MKFS_OPTS     extra mkfs.mmapfs options (e.g. --no-inode-data) []
#   BENCH_IDLE_POLL     1: hold a CPU latency request of 0 us for the whole
#                       run, so that idle CPUs poll instead of halting for
#                       both filesystems (docs/BENCH.md, "Idle CPUs
#                       polling"); root only [0]
#   BENCH_BUSY          N: keep N processes busy on the CPU (a shell loop
#                       each, at normal priority) for the whole run, so that
#                       both filesystems are measured on a machine whose
#                       CPUs have other work [0]
#   BENCH_MAX_SECONDS   abort if the run takes longer [1200]
#   BENCH_STEP_TIMEOUT  seconds one measured step may take [180]
#   BENCH_REV           version named in the output [git HEAD of BUILD/..]
#   BENCH_ONLY          run only these benchmarks (space-separated groups:
#                       seq randw rread fsync8 fsync1 sql small untar mix) [all]
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac

BENCH_OUT=${BENCH_OUT:-$build/bench.md}
BENCH_TMP=${BENCH_TMP:-/var/tmp}
FS_SIZE=${BENCH_FS_SIZE:-3G}
RUNS=${BENCH_RUNS:-3}
SEQ_RUNS=${BENCH_SEQ_RUNS:-3}
READ_RUNS=${BENCH_READ_RUNS:-5}
SEQ_SIZE=${BENCH_SEQ_SIZE:-1G}
RAND_SIZE=${BENCH_RAND_SIZE:-256M}
FSYNC_SIZE=${BENCH_FSYNC_SIZE:-8M}
FSYNC_JOBS=${BENCH_FSYNC_JOBS:-8}
FSYNC1_SIZE=${BENCH_FSYNC1_SIZE:-4M}
RREAD_SIZE=${BENCH_RREAD_SIZE:-256M}
RREAD_SECONDS=${BENCH_RREAD_SECONDS:-5}
SQL_TXNS=${BENCH_SQL_TXNS:-2000}
NFILES=${BENCH_FILES:-20000}
UNTAR_DIRS=${BENCH_UNTAR_DIRS:-100}
UNTAR_FILES=${BENCH_UNTAR_FILES:-200}
MIX_SECONDS=${BENCH_MIX_SECONDS:-4}
MIX_READERS=${BENCH_MIX_READERS:-4}
MIX_WRITERS=${BENCH_MIX_WRITERS:-4}
MIX_SIZE=${BENCH_MIX_SIZE:-64M}
MIX_WSIZE=${BENCH_MIX_WSIZE:-64M}
ONLY=${BENCH_ONLY:-seq randw rread fsync8 fsync1 sql small untar mix}
MAX_SECONDS=${BENCH_MAX_SECONDS:-1200}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-180}
MMAPFS_OPTS=${BENCH_MMAPFS_OPTS:-}
IDLE_POLL=${BENCH_IDLE_POLL:-0}
BUSY=${BENCH_BUSY:-0}
BUSY_PIDS=()

MKFS=$build/mkfs.mmapfs
MMAPFS=$build/mmapfs
FSCK=$build/fsck.mmapfs
MSTAT=$build/mmapfs-stat
NULLFS=$build/tests/nullfs
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || echo python3)

log() { printf '[bench %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() {
    printf 'bench: ERROR: %s\n' "$*" >&2
    exit 1
}

# ---- preconditions ------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (loop device, mount, drop_caches)"
[[ "$BUSY" =~ ^[0-9]+$ ]] || die "BENCH_BUSY=$BUSY: a number of processes"
missing=""
for c in fio sqlite3 tar losetup mkfs.ext4 mount umount mountpoint \
    fusermount3 timeout "$PY"; do
    command -v "$c" >/dev/null 2>&1 || missing+=" $c"
done
[ -z "$missing" ] || die "missing:$missing (install them with: make deps)"
for b in "$MKFS" "$MMAPFS" "$FSCK" "$MSTAT" "$NULLFS"; do
    [ -x "$b" ] || die "$b is missing (run: make all B=$build)"
done
[ -w /proc/sys/vm/drop_caches ] || die "/proc/sys/vm/drop_caches is not writable"
[ -c /dev/fuse ] || die "/dev/fuse is missing"

# ---- state and cleanup ----------------------------------------------------------
WORK=""         # temp dir: images, mount points, fio output, SQL files
LOOP=""         # the loop device this run attached (only this one is detached)
MM_PID=""       # pid of the running mmapfs daemon
FLOOR_PID=""    # pid of the running FUSE floor (nullfs)
EXT_MNT="" MM_MNT="" EXT_FILE="" MM_IMG="" FLOOR_MNT=""

# Unmounts mmapfs and waits (by its PID) for the daemon to exit: it holds the
# image until it has written the clean unmount.
mm_umount() {
    local lazy=${1:-}
    if [ -n "$MM_MNT" ] && mountpoint -q "$MM_MNT" 2>/dev/null; then
        timeout -k 5 60 fusermount3 -u "$MM_MNT" ||
            { [ -n "$lazy" ] && timeout -k 5 30 fusermount3 -u -z "$MM_MNT"; } ||
            return 1
    fi
    if [ -n "$MM_PID" ]; then
        local deadline=$((SECONDS + 60))
        while kill -0 "$MM_PID" 2>/dev/null; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                [ -n "$lazy" ] || return 1
                echo "bench: cleanup: daemon $MM_PID did not exit; SIGKILL" >&2
                kill -KILL "$MM_PID" 2>/dev/null || true
                break
            fi
            sleep 0.05
        done
        MM_PID=""
    fi
}

ext_umount() {
    local lazy=${1:-}
    if [ -n "$EXT_MNT" ] && mountpoint -q "$EXT_MNT" 2>/dev/null; then
        timeout -k 5 60 umount "$EXT_MNT" ||
            { [ -n "$lazy" ] && timeout -k 5 30 umount -l "$EXT_MNT"; } ||
            return 1
    fi
}

# The FUSE floor keeps nothing: unmounting it is all. It holds idle CPUs
# polling while mounted, so it is mounted only for its own runs.
floor_mount() {
    local i
    "$NULLFS" "$FLOOR_MNT" </dev/null >"$WORK/nullfs.log" 2>&1 &
    FLOOR_PID=$!
    for i in $(seq 200); do
        if mountpoint -q "$FLOOR_MNT"; then
            # mmapfs's share of the dirty pages (its defaults, docs/MOUNT.md
            # "Dirty pages"), so that the untar is not throttled sooner there
            local bdi
            bdi=/sys/class/bdi/$(mountpoint -d "$FLOOR_MNT")
            echo 10 >"$bdi/max_ratio" && echo 5 >"$bdi/min_ratio" ||
                die "cannot set the dirty-page share of $FLOOR_MNT ($bdi)"
            return 0
        fi
        kill -0 "$FLOOR_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/nullfs.log" >&2
    die "$NULLFS $FLOOR_MNT did not mount"
}

# on_floor CMD ARGS...: CMD with the FUSE floor mounted for it alone
on_floor() {
    floor_mount
    "$@"
    floor_umount || die "unmounting $FLOOR_MNT failed"
}

floor_umount() {
    if [ -n "$FLOOR_MNT" ] && mountpoint -q "$FLOOR_MNT" 2>/dev/null; then
        timeout -k 5 60 fusermount3 -u "$FLOOR_MNT" ||
            timeout -k 5 30 fusermount3 -u -z "$FLOOR_MNT" || return 1
    fi
    if [ -n "$FLOOR_PID" ]; then
        timeout -k 5 60 tail --pid="$FLOOR_PID" -f /dev/null || return 1
        FLOOR_PID=""
    fi
}

# BENCH_BUSY: the busy processes, started and ended by PID.
busy_start() {
    local i
    for ((i = 0; i < BUSY; i++)); do
        sh -c 'while :; do :; done' &
        BUSY_PIDS+=($!)
    done
}
busy_stop() {
    local p
    for p in "${BUSY_PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null || true
    done
    BUSY_PIDS=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    busy_stop
    floor_umount || echo "bench: cleanup: could not unmount $FLOOR_MNT" >&2
    mm_umount lazy || echo "bench: cleanup: could not unmount $MM_MNT" >&2
    ext_umount lazy || echo "bench: cleanup: could not unmount $EXT_MNT" >&2
    if [ -n "$LOOP" ]; then
        losetup -d "$LOOP" 2>/dev/null || echo "bench: cleanup: could not detach $LOOP" >&2
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if grep -q " $WORK/" /proc/mounts; then
            echo "bench: cleanup: something is still mounted under $WORK; not removing it" >&2
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'echo "bench: terminated" >&2; exit 143' TERM HUP

# Lists the PIDs of processes running $MMAPFS with the argument $1.
daemon_pids() {
    local want=$1 exe d arg
    exe=$(readlink -f "$MMAPFS")
    for d in /proc/[0-9]*; do
        [ "$(readlink "$d/exe" 2>/dev/null)" == "$exe" ] || continue
        while IFS= read -r -d '' arg; do
            if [ "$arg" == "$want" ]; then
                echo "${d#/proc/}"
                break
            fi
        done <"$d/cmdline" 2>/dev/null || true
    done
}

mm_mount() {
    local opts=()
    [ -z "$MMAPFS_OPTS" ] || opts=(-o "$MMAPFS_OPTS")
    timeout -k 5 60 "$MMAPFS" "$MM_IMG" "$MM_MNT" "${opts[@]}" </dev/null ||
        die "mmapfs $MM_IMG $MM_MNT failed"
    mountpoint -q "$MM_MNT" || die "mmapfs exited 0 but $MM_MNT is not a mount point"
    MM_PID=$(daemon_pids "$MM_MNT" | head -n 1)
    [ -n "$MM_PID" ] || die "cannot find the mmapfs daemon of $MM_MNT"
}

ext_mount() {
    timeout -k 5 60 mount -t ext4 "$LOOP" "$EXT_MNT" || die "mount -t ext4 $LOOP $EXT_MNT failed"
}

# Unmounts and mounts both filesystems again (fresh caches of their own).
remount_both() {
    mm_umount || die "unmounting $MM_MNT failed"
    ext_umount || die "unmounting $EXT_MNT failed"
    ext_mount
    mm_mount
}

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

check_budget() {
    [ "$SECONDS" -le "$MAX_SECONDS" ] ||
        die "time budget exceeded (${SECONDS}s > ${MAX_SECONDS}s, BENCH_MAX_SECONDS); aborting"
}

mnt_of() { if [ "$1" = ext4 ]; then echo "$EXT_MNT"; else echo "$MM_MNT"; fi; }

# Order of the two filesystems in repetition $1 (alternates).
order() { if [ $(($1 % 2)) -eq 1 ]; then echo "ext4 mmapfs"; else echo "mmapfs ext4"; fi; }

# ---- results ----------------------------------------------------------------------
declare -A VALS=()          # "metric|fs" -> space-separated samples
METRICS=()                  # metric ids in table order
declare -A LABEL=() UNIT=() KIND=() MUST=() AIM=()

# metric ID KIND UNIT MUST AIM LABEL
#   KIND  rate (higher is better) | time (lower is better, durations and
#         latencies) | info (mmapfs only, no ratio)
#   MUST, AIM  target ratios, or - for none
metric() {
    METRICS+=("$1")
    KIND[$1]=$2 UNIT[$1]=$3 MUST[$1]=$4 AIM[$1]=$5 LABEL[$1]=$6
}
record() { # record ID FS VALUE
    local after
    # once per measured run: its first record takes settle's note
    if [ "$2" = ext4 ] && [ -s "$WORK/holds_before" ] && after=$(mm_holds) &&
        [ -n "$after" ] && [ "$after" -gt "$(cat "$WORK/holds_before")" ]; then
        echo held >>"$WORK/held_runs"
    fi
    rm -f "$WORK/holds_before"
    VALS["$1|$2"]+="$3 "
    log "  $1 $2: $3 ${UNIT[$1]}"
}
median() {
    echo "$1" | tr -s ' ' '\n' | { grep . || true; } | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
wanted() { [[ " $ONLY " == *" $1 "* ]]; }

# Runs fio under the step timeout with JSON output into $WORK/fio.json and
# prints the values of SPECS (fio_value.py: [JOB:]DIR:FIELD, space-separated)
# on one line. run_fio SPECS FIO-ARGS...
run_fio() {
    local specs=$1
    shift
    rm -f "$WORK/fio.json"
    settle
    timeout -k 10 "$STEP_TIMEOUT" fio --output-format=json --output="$WORK/fio.json" \
        --ioengine=psync "$@" >"$WORK/fio.log" 2>&1 ||
        { cat "$WORK/fio.log" >&2; die "fio $* failed or timed out"; }
    # shellcheck disable=SC2086 # specs are words
    "$PY" "$here/fio_value.py" "$WORK/fio.json" $specs ||
        { cat "$WORK/fio.json" >&2; die "fio $* produced no usable result"; }
}

# fresh_fio ID FS FILE SPEC FIO-ARGS...: removes FILE, syncs, runs fio on
# FILE and records the value SPEC as a sample of ID on FS.
fresh_fio() {
    local id=$1 fs=$2 file=$3 spec=$4 v
    shift 4
    rm -f "$file"
    sync
    v=$(run_fio "$spec" --filename="$file" "$@")
    record "$id" "$fs" "$v"
}

# The machine's CPU latency value (PM QoS): 0 while a process, such as
# the mmapfs daemon's request loop (latency_hold=, docs/MOUNT.md "Waking
# the caller"), holds idle CPUs out of halt; empty if not readable.
cpu_latency() { od -An -td4 -N4 /dev/cpu_dma_latency 2>/dev/null | tr -d ' '; }
# The mmapfs daemon's count of holds taken (nothing if it cannot be read).
mm_holds() {
    timeout -k 5 30 "$MSTAT" "$MM_MNT" 2>/dev/null |
        awk '$1 == "fuse_cpu_latency_holds" { print $2 }'
}
# Before each measured run: notes the daemon's holds (record compares
# after an ext4 run), then waits (up to 2 s) until no hold is in force, so
# that every run, of either filesystem, starts with the machine's own idle
# policy. A run that started under a hold anyway, or an ext4 run during
# which the daemon took one (write-back reaching it, say), is counted in a
# file (the runs are in command substitutions); the header says how many.
settle() {
    local i
    [ "$IDLE_POLL" = 1 ] && return 0     # held for both by the bench itself
    [ -z "$FLOOR_PID" ] || return 0      # the FUSE floor's own hold (while mounted)
    mm_holds >"$WORK/holds_before"
    for i in $(seq 40); do
        [ "$(cpu_latency)" != 0 ] && return 0
        sleep 0.05
    done
    echo held >>"$WORK/held_runs"
}

# How many runs settle/record counted.
held_runs() { if [ -f "$WORK/held_runs" ]; then wc -l <"$WORK/held_runs"; else echo 0; fi; }

# Runs a command under the step timeout, output to $WORK/cmd.log; not timed.
run_cmd() {
    timeout -k 10 "$STEP_TIMEOUT" bash -c "$1" >"$WORK/cmd.log" 2>&1 ||
        { cat "$WORK/cmd.log" >&2; die "command failed or timed out: $1"; }
}

# Times a command (bash -c) under the step timeout; prints seconds.
time_cmd() {
    local t0 t1
    settle
    t0=$EPOCHREALTIME
    run_cmd "$1"
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

# Prints the mmapfs daemon's counters "engine-syncs fsyncs" (mmapfs-stat).
mm_counters() {
    local out
    out=$(timeout -k 5 30 "$MSTAT" "$MM_MNT") || die "mmapfs-stat $MM_MNT failed"
    awk '$1 == "mmio_syncs" { s = $2 } $1 == "fs_fsyncs" { f = $2 }
        END { if (s == "" || f == "") exit 1; print s, f }' <<<"$out" ||
        die "mmapfs-stat printed no mmio_syncs or fs_fsyncs"
}
# Engine syncs per fsync between two mm_counters outputs.
syncs_per_fsync() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
        f = y[2] - x[2]; if (f <= 0) { print "nan"; exit }
        printf "%.3f\n", (y[1] - x[1]) / f }'
}

# ---- set up both filesystems ---------------------------------------------------------
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/mmapfs-bench.XXXXXX")
EXT_FILE=$WORK/ext4.img MM_IMG=$WORK/mmapfs.img
EXT_MNT=$WORK/ext4 MM_MNT=$WORK/mmapfs FLOOR_MNT=$WORK/floor
mkdir -p "$EXT_MNT" "$MM_MNT" "$FLOOR_MNT"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "build $build, temp $WORK, size $FS_SIZE, load $load_start"
if awk -v l="${load_start%% *}" 'BEGIN { exit !(l > 1.5) }'; then
    log "WARNING: 1-minute load average $load_start > 1.5: results will be noisy"
fi

truncate -s "$FS_SIZE" "$EXT_FILE"
LOOP=$(timeout -k 5 30 losetup --find --show "$EXT_FILE") || die "losetup --find --show $EXT_FILE failed"
[ -b "$LOOP" ] || die "losetup gave $LOOP, not a block device"
timeout -k 5 120 mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$LOOP" ||
    die "mkfs.ext4 $LOOP failed"
if [ "$IDLE_POLL" = 1 ]; then
    # one PM QoS request for the whole run, dropped when the bench exits
    # (a value that is not 4 bytes long is read as hex text)
    exec {QOS_FD}>/dev/cpu_dma_latency && echo 0 >&"$QOS_FD" ||
        die "BENCH_IDLE_POLL=1: cannot hold /dev/cpu_dma_latency (root only)"
fi
# shellcheck disable=SC2086 # BENCH_MKFS_OPTS is a list of options
timeout -k 5 120 "$MKFS" -q -f ${BENCH_MKFS_OPTS:-} -s "$FS_SIZE" "$MM_IMG" ||
    die "mkfs.mmapfs ${BENCH_MKFS_OPTS:-} -s $FS_SIZE $MM_IMG failed"
ext_mount
mm_mount
busy_start
log "ext4 on $LOOP (sparse $EXT_FILE), mmapfs on $MM_IMG (preallocated, daemon pid $MM_PID)"

# ---- metrics (table order) -------------------------------------------------------------
metric fsync8 rate IOPS 1.2 2.0 "4 KiB write+fsync, $FSYNC_JOBS writers x $FSYNC_SIZE"
metric fsync8_p50 time us - - "fsync latency p50, $FSYNC_JOBS writers"
metric fsync8_p99 time us - - "fsync latency p99, $FSYNC_JOBS writers"
metric fsync8_spf info syncs/fsync - - "mmapfs engine syncs per fsync, $FSYNC_JOBS writers"
metric fsync1 rate IOPS 1.0 1.5 "4 KiB write+fsync, 1 writer x $FSYNC1_SIZE"
metric fsync1_p50 time us - - "fsync latency p50, 1 writer"
metric fsync1_p99 time us - - "fsync latency p99, 1 writer"
metric fsync1_spf info syncs/fsync - - "mmapfs engine syncs per fsync, 1 writer"
metric sqlwal rate txn/s 0.9 1.2 "SQLite WAL, synchronous=FULL, $SQL_TXNS txns"
metric sqldel rate txn/s 0.8 1.2 "SQLite DELETE, synchronous=FULL, $SQL_TXNS txns"
metric create time s 0.4 1.0 "create $NFILES empty files"
metric statc time s 0.8 1.0 "stat $NFILES files, cold caches"
metric statw time s - - "stat $NFILES files, warm caches"
metric delete time s 0.4 1.0 "rm -rf $NFILES files"
metric untar time s 0.15 0.5 "untar $UNTAR_DIRS dirs x $UNTAR_FILES files of 4 KiB, tar -xf without sync"
metric randw rate IOPS 0.3 1.0 "4 KiB random write $RAND_SIZE, buffered, end_fsync"
metric randr rate IOPS 0.8 1.0 "4 KiB random read, warm, $RREAD_SIZE file, ${RREAD_SECONDS}s"
metric seqw rate MB/s 1.0 - "sequential write $SEQ_SIZE, bs=1M, end_fsync"
metric seqr rate MB/s 1.0 - "cold sequential read $SEQ_SIZE, bs=1M"
metric mix_solo rate IOPS - - "mixed: $MIX_READERS O_DIRECT 4 KiB random readers alone, ${MIX_SECONDS}s"
metric mix_share rate % 0.8 1.0 "mixed: share of their solo rate the readers keep beside $MIX_WRITERS fsync writers"
metric mix_fsync rate IOPS 0.8 1.0 "mixed: 4 KiB write+fsync rate of the $MIX_WRITERS writers beside the readers"
metric mix_spf info syncs/fsync - - "mmapfs engine syncs per fsync, mixed"

# ---- sequential write, cold sequential read -------------------------------------------------
if wanted seq; then
    for ((r = 1; r <= SEQ_RUNS; r++)); do
        check_budget
        log "sequential write, run $r/$SEQ_RUNS"
        remount_both
        for fs in $(order "$r"); do
            fresh_fio seqw "$fs" "$(mnt_of "$fs")/seq" write:mbps --name=seqw --rw=write \
                --bs=1M --size="$SEQ_SIZE" --end_fsync=1
        done
    done
    # the file of the last write is read back, each time from freshly mounted
    # filesystems with every page cache dropped (the image's and the loop
    # device's backing file's included)
    for ((r = 1; r <= READ_RUNS; r++)); do
        check_budget
        log "cold sequential read, run $r/$READ_RUNS"
        for fs in $(order "$r"); do
            remount_both
            drop_caches
            m=$(mnt_of "$fs")
            v=$(run_fio read:mbps --name=seqr --filename="$m/seq" --rw=read --bs=1M --size="$SEQ_SIZE")
            record seqr "$fs" "$v"
        done
    done
    rm -f "$EXT_MNT/seq" "$MM_MNT/seq"
fi

# ---- 4 KiB random writes, buffered ------------------------------------------------------------
if wanted randw; then
    log "4 KiB random writes"
    remount_both
    for ((r = 1; r <= RUNS; r++)); do
        check_budget
        for fs in $(order "$r"); do
            fresh_fio randw "$fs" "$(mnt_of "$fs")/rand" write:iops --name=randw \
                --rw=randwrite --bs=4k --size="$RAND_SIZE" --end_fsync=1
        done
    done
    rm -f "$EXT_MNT/rand" "$MM_MNT/rand"
fi

# ---- 4 KiB random reads of a file in the page cache --------------------------------------------
# The file is written (fio --create_only), synced and read once with cat, so
# that it is in the page cache; the measured runs do not invalidate it
# (--invalidate=0, fio's default would drop it) and the filesystems are not
# remounted between them.
# On the FUSE floor too (its writes keep nothing, but the pages stay cached
# like mmapfs's): no request reaches either daemon, so both measure the
# kernel's page cache of a FUSE mount.
if wanted rread; then
    log "4 KiB random reads, warm"
    rread_prepare() {
        run_cmd "fio --name=rread --filename='$1/rread' --size='$RREAD_SIZE' --rw=randread \
            --create_only=1"
        run_cmd "sync; cat '$1/rread' >/dev/null"
    }
    rread_run() {
        local v
        v=$(run_fio read:iops --name=rread --filename="$2/rread" --rw=randread --bs=4k \
            --size="$RREAD_SIZE" --invalidate=0 --time_based --runtime="$RREAD_SECONDS")
        record randr "$1" "$v"
    }
    remount_both
    for fs in ext4 mmapfs; do
        rread_prepare "$(mnt_of "$fs")"
    done
    for ((r = 1; r <= RUNS; r++)); do
        check_budget
        for fs in $(order "$r"); do
            rread_run "$fs" "$(mnt_of "$fs")"
        done
    done
    rm -f "$EXT_MNT/rread" "$MM_MNT/rread"
    rread_floor() {
        rread_prepare "$FLOOR_MNT"
        for ((r = 1; r <= RUNS; r++)); do
            rread_run floor "$FLOOR_MNT"
        done
    }
    on_floor rread_floor
fi

# ---- write+fsync: 8 concurrent writers, 1 writer ----------------------------------------------------
# fsync_bench ID JOBS SIZE: each writer appends 4 KiB and fsyncs, SIZE bytes,
# in a fresh directory. Records the IOPS, fio's fsync latency percentiles
# and, for mmapfs, the engine syncs per fsync (mmapfs-stat before/after).
fsync_bench() {
    local id=$1 jobs=$2 size=$3 r fs m v iops p50 p99 c0="" c1
    log "4 KiB write+fsync, $jobs writer(s) x $size"
    remount_both
    for ((r = 1; r <= RUNS; r++)); do
        check_budget
        for fs in $(order "$r"); do
            m=$(mnt_of "$fs")
            rm -rf "$m/fsync"
            mkdir "$m/fsync"
            sync
            if [ "$fs" = mmapfs ]; then c0=$(mm_counters); fi
            v=$(run_fio "write:iops sync:p50_us sync:p99_us" --name=fsync --directory="$m/fsync" \
                --rw=write --bs=4k --size="$size" --fsync=1 --numjobs="$jobs" --group_reporting)
            read -r iops p50 p99 <<<"$v"
            record "$id" "$fs" "$iops"
            record "${id}_p50" "$fs" "$p50"
            record "${id}_p99" "$fs" "$p99"
            if [ "$fs" = mmapfs ]; then
                c1=$(mm_counters)
                record "${id}_spf" mmapfs "$(syncs_per_fsync "$c0" "$c1")"
            fi
        done
    done
    rm -rf "$EXT_MNT/fsync" "$MM_MNT/fsync"
}
if wanted fsync8; then fsync_bench fsync8 "$FSYNC_JOBS" "$FSYNC_SIZE"; fi
if wanted fsync1; then fsync_bench fsync1 1 "$FSYNC1_SIZE"; fi

# ---- SQLite, synchronous=FULL ------------------------------------------------------------------
# One sqlite3 process per run reads the whole SQL file on stdin; the database
# is removed before each run (not timed). Runs alternate between the two
# filesystems, so that a change in the machine's background load hits both.
if wanted sql; then
    for mode in WAL DELETE; do
        id=sqlwal
        [ "$mode" = WAL ] || id=sqldel
        sql=$WORK/$mode.sql
        "$here/sqlfile.sh" "$mode" "$SQL_TXNS" >"$sql"
        log "SQLite journal_mode=$mode synchronous=FULL, $SQL_TXNS transactions"
        remount_both
        for ((r = 1; r <= RUNS; r++)); do
            check_budget
            for fs in $(order "$r"); do
                db=$(mnt_of "$fs")/bench.db
                rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
                sync
                t=$(time_cmd "sqlite3 -bail '$db' < '$sql' > /dev/null")
                rows=$(timeout 30 sqlite3 "$db" 'SELECT count(*) FROM t;')
                [ "$rows" = "$SQL_TXNS" ] || die "SQLite $mode on $fs: $rows rows, expected $SQL_TXNS"
                record "$id" "$fs" "$(awk -v n="$SQL_TXNS" -v t="$t" 'BEGIN { printf "%.1f\n", n / t }')"
            done
        done
        rm -f "$EXT_MNT"/bench.db* "$MM_MNT"/bench.db*
    done
fi

# ---- small files: create, stat (cold, warm), delete -------------------------------------------
# small_files FS DIR: one run of the small-file rows in DIR (made here) on FS
small_files() {
    local fs=$1 d=$2 t
    mkdir "$d"
    sync
    t=$(time_cmd "'$PY' '$here/smallfiles.py' create '$d' $NFILES")
    record create "$fs" "$t"
    drop_caches
    t=$(time_cmd "'$PY' '$here/smallfiles.py' stat '$d' $NFILES")
    record statc "$fs" "$t"
    t=$(time_cmd "'$PY' '$here/smallfiles.py' stat '$d' $NFILES")
    record statw "$fs" "$t"
    sync
    t=$(time_cmd "rm -rf '$d'")
    record delete "$fs" "$t"
}

if wanted small; then
    log "small files: $NFILES"
    for ((r = 1; r <= RUNS; r++)); do
        check_budget
        remount_both
        for fs in $(order "$r"); do
            small_files "$fs" "$(mnt_of "$fs")/small"
        done
        on_floor small_files floor "$FLOOR_MNT/small"
    done
fi

# ---- untar: 100 directories x 200 files of 4 KiB ----------------------------------------------------
# The tarball is made once, in the temp dir (on the host filesystem, outside
# both filesystems), and read once into the page cache before every run.
# Timed: tar -xf alone, as root (so tar also sets owner, mode and mtime of
# every file), no sync. Not timed: a check of the file count, then sync,
# rm -rf and sync again.
if wanted untar; then
    tarball=$WORK/untar.tar
    ntar=$((UNTAR_DIRS * UNTAR_FILES))
    run_cmd "'$PY' '$here/smallfiles.py' tar '$tarball' $UNTAR_DIRS $UNTAR_FILES 4096"
    log "untar: $UNTAR_DIRS dirs x $UNTAR_FILES files of 4 KiB"
    # untar_run FS DIR: one timed untar into DIR (made here) on FS
    untar_run() {
        local fs=$1 d=$2 t n
        mkdir "$d"
        run_cmd "cat '$tarball' >/dev/null; sync"
        t=$(time_cmd "tar -xf '$tarball' -C '$d'")
        record untar "$fs" "$t"
        n=$(timeout -k 5 "$STEP_TIMEOUT" find "$d" -type f -size 4096c | wc -l)
        [ "$n" = "$ntar" ] || die "untar on $fs: $n files of 4 KiB, expected $ntar"
        run_cmd "sync; rm -rf '$d'; sync"
    }
    for ((r = 1; r <= RUNS; r++)); do
        check_budget
        remount_both
        for fs in $(order "$r"); do
            untar_run "$fs" "$(mnt_of "$fs")/untar"
        done
        on_floor untar_run floor "$FLOOR_MNT/untar"
    done
fi

# ---- mixed: O_DIRECT random readers, alone and beside fsync writers ------------------------------
# Each reader reads 4 KiB at random offsets of its own file with O_DIRECT,
# first alone for MIX_SECONDS, then for MIX_SECONDS beside writers that each
# append 4 KiB + fsync to their own file (fresh files every run; they wrap
# at MIX_WSIZE). Per run and filesystem: the readers' share of their solo
# rate = mixed IOPS / solo IOPS, and the writers' fsync rate.
if wanted mix; then
    log "mixed: $MIX_READERS O_DIRECT random readers, alone and beside $MIX_WRITERS fsync writers"
    remount_both
    for fs in ext4 mmapfs; do
        m=$(mnt_of "$fs")
        mkdir "$m/mixr" "$m/mixw"
        run_cmd "fio --name=readers --directory='$m/mixr' --size='$MIX_SIZE' --rw=randread \
            --numjobs=$MIX_READERS --create_only=1; sync"
    done
    for ((r = 1; r <= RUNS; r++)); do
        check_budget
        for fs in $(order "$r"); do
            m=$(mnt_of "$fs")
            readers=(--name=readers --directory="$m/mixr" --rw=randread --direct=1 --bs=4k
                --size="$MIX_SIZE" --numjobs="$MIX_READERS")
            solo=$(run_fio readers:read:iops --group_reporting --time_based \
                --runtime="$MIX_SECONDS" "${readers[@]}")
            rm -f "$m/mixw"/*
            sync
            if [ "$fs" = mmapfs ]; then c0=$(mm_counters); fi
            v=$(run_fio "readers:read:iops writers:write:iops" --group_reporting --time_based \
                --runtime="$MIX_SECONDS" "${readers[@]}" --name=writers --new_group \
                --directory="$m/mixw" --rw=write --bs=4k --size="$MIX_WSIZE" --fsync=1 \
                --numjobs="$MIX_WRITERS")
            read -r mixed wiops <<<"$v"
            record mix_solo "$fs" "$solo"
            record mix_share "$fs" "$(awk -v a="$mixed" -v b="$solo" 'BEGIN { printf "%.1f\n", 100 * a / b }')"
            record mix_fsync "$fs" "$wiops"
            if [ "$fs" = mmapfs ]; then
                c1=$(mm_counters)
                record mix_spf mmapfs "$(syncs_per_fsync "$c0" "$c1")"
            fi
        done
    done
    rm -rf "$EXT_MNT/mixr" "$EXT_MNT/mixw" "$MM_MNT/mixr" "$MM_MNT/mixw"
fi

# ---- unmount, check the mmapfs image ----------------------------------------------------------------
mm_umount || die "unmounting $MM_MNT failed"
ext_umount || die "unmounting $EXT_MNT failed"
timeout -k 5 120 "$FSCK" -n "$MM_IMG" >"$WORK/fsck.log" 2>&1 ||
    { cat "$WORK/fsck.log" >&2; die "fsck.mmapfs -n of the benchmark image is not clean"; }
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
REV=${BENCH_REV:-$(git -C "$(dirname "$build")" rev-parse --short HEAD 2>/dev/null || echo '?')}

# ---- table ------------------------------------------------------------------------------------------
fmt() {
    awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "-"; else if (v >= 100) printf "%.0f", v
        else if (v >= 10) printf "%.1f", v; else printf "%.3f", v }'
}
# target RATIO TARGET: "1.2x met" / "1.2x MISSED" (or "-")
target() {
    awk -v r="$1" -v t="$2" -v miss="$3" 'BEGIN { if (t == "-") { print "-"; exit }
        if (r == "-") { printf "%sx\n", t; exit }
        printf "%sx %s\n", t, (r + 0 >= t + 0) ? "met" : miss }'
}
# ratio_of ID VALUE EXT4: VALUE against ext4's as the table shows it ("1.23x"), or -
ratio_of() {
    case ${KIND[$1]} in
    rate) awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2fx", a / b }' ;;
    time) awk -v a="$3" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' ;;
    *) echo - ;;
    esac
}
rows=()
for id in "${METRICS[@]}"; do
    [ -n "${VALS["$id|mmapfs"]:-}" ] || continue    # benchmark not run (BENCH_ONLY)
    e=$(median "${VALS["$id|ext4"]:-}")
    m=$(median "${VALS["$id|mmapfs"]:-}")
    ratio=$(ratio_of "$id" "$m" "$e")
    floor=-
    [ -z "${VALS["$id|floor"]:-}" ] || floor=$(ratio_of "$id" "$(median "${VALS["$id|floor"]}")" "$e")
    n=$(echo "${VALS["$id|mmapfs"]}" | wc -w)
    rows+=("${LABEL[$id]} (${UNIT[$id]}, median of $n)|$(fmt "$e")|$(fmt "$m")|$ratio|$floor|$(target "${ratio%x}" "${MUST[$id]}" MISSED)|$(target "${ratio%x}" "${AIM[$id]}" "not yet")")
done

header="mmapfs vs ext4 on a loop device, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, kernel $(uname -r); load average $load_start at start, $load_end at end; mmapfs $REV${BENCH_MKFS_OPTS:+ (mkfs ${BENCH_MKFS_OPTS})}${MMAPFS_OPTS:+ (-o $MMAPFS_OPTS)}; filesystems of $FS_SIZE; ${QOS_FD:+idle CPUs held polling for both filesystems (BENCH_IDLE_POLL=1); }$([ "$BUSY" -gt 0 ] && echo "$BUSY busy processes beside both filesystems (BENCH_BUSY=$BUSY); ")$(held_runs) measured runs began under, or (ext4) overlapped, a CPU latency hold of the mmapfs daemon; total ${SECONDS}s"
note="ratio >= 1.0 means mmapfs at least as good as ext4: mmapfs/ext4 for rates, ext4/mmapfs for durations and latencies; FUSE floor: the same ratio for a FUSE daemon that answers at once and stores nothing (tests/bench/nullfs.c), the best any FUSE filesystem can reach here"

mkdir -p "$(dirname "$BENCH_OUT")"
{
    echo "$header"
    echo
    echo "$note"
    echo
    echo "| metric | ext4 | mmapfs | ratio | FUSE floor | must reach | aim |"
    echo "| --- | ---: | ---: | ---: | ---: | --- | --- |"
    for row in "${rows[@]}"; do echo "| ${row//|/ | } |"; done
    echo
    echo "Samples (ext4 / mmapfs, and / FUSE floor where timed):"
    echo
    for id in "${METRICS[@]}"; do
        [ -n "${VALS["$id|mmapfs"]:-}" ] || continue
        e=${VALS["$id|ext4"]:--}
        f=${VALS["$id|floor"]:-}
        echo "- ${LABEL[$id]}: ${e% } / ${VALS["$id|mmapfs"]% }${f:+ / ${f% }} ${UNIT[$id]}"
    done
} >"$BENCH_OUT"

echo
echo "$header"
echo "$note"
echo
{
    echo "metric|ext4|mmapfs|ratio|floor|must reach|aim"
    for row in "${rows[@]}"; do echo "$row"; done
} | awk -F'|' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
    END { for (r = 1; r <= NR; r++) { line = sprintf("%-" w[1] "s", c[r, 1])
              for (i = 2; i <= 5; i++) line = line sprintf("  %" w[i] "s", c[r, i])
              print line sprintf("  %-" w[6] "s  ", c[r, 6]) c[r, 7] } }'
echo
echo "Markdown table written to $BENCH_OUT (total ${SECONDS}s)"
