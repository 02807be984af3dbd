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
#   ratio = ext4 time / mmapfs time for durations (seconds)
# so a ratio >= 1.0 always means "mmapfs at least as good as ext4".
# Targets are printed beside the ratios; missing one is not a failure.
#
# Prints the table and writes it as Markdown to $BENCH_OUT. Exits 0 unless
# something broke (a tool missing, a mount or a benchmark failing, the image
# not clean afterwards, the time budget exceeded). Needs root.
#
# Environment (defaults in brackets):
#   BENCH_OUT          Markdown output [BUILD/bench.md]
#   BENCH_TMP          parent of the temp dir holding both images [/var/tmp]
#   BENCH_FS_SIZE      size of each filesystem [3G]
#   BENCH_RUNS         repetitions of the cheap benchmarks [3]
#   BENCH_SEQ_RUNS     repetitions of the 1 GiB sequential write [3]
#   BENCH_READ_RUNS    repetitions of the cold sequential read [5]
#   BENCH_SEQ_SIZE     sequential file size [1G]
#   BENCH_RAND_SIZE    random-write file size [256M]
#   BENCH_FSYNC_SIZE   bytes per writer in the fsync benchmark [8M]
#   BENCH_FSYNC_JOBS   concurrent writers in the fsync benchmark [8]
#   BENCH_SQL_TXNS     SQLite transactions per run [2000]
#   BENCH_FILES        small files [20000]
#   BENCH_MMAPFS_OPTS  extra mmapfs -o options (e.g. io=pread) []
#   BENCH_MAX_SECONDS  abort if the run takes longer [570]
#   BENCH_STEP_TIMEOUT seconds one measured step may take [180]
#   BENCH_REV          version named in the output [git HEAD of BUILD/..]
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
SQL_TXNS=${BENCH_SQL_TXNS:-2000}
NFILES=${BENCH_FILES:-20000}
MAX_SECONDS=${BENCH_MAX_SECONDS:-570}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-180}
MMAPFS_OPTS=${BENCH_MMAPFS_OPTS:-}

MKFS=$build/mkfs.mmapfs
MMAPFS=$build/mmapfs
FSCK=$build/fsck.mmapfs
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || echo python3)

log() { printf '[bench %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() {
    printf 'bench: ERROR: %s\n' "$*" >&2
    exit 1
}

# ---- preconditions ------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (loop device, mount, drop_caches)"
missing=""
for c in fio sqlite3 losetup mkfs.ext4 mount umount mountpoint \
    fusermount3 timeout "$PY"; do
    command -v "$c" >/dev/null 2>&1 || missing+=" $c"
done
[ -z "$missing" ] || die "missing:$missing (install them with: make deps)"
for b in "$MKFS" "$MMAPFS" "$FSCK"; do
    [ -x "$b" ] || die "$b is missing (run: make all B=$build)"
done
[ -w /proc/sys/vm/drop_caches ] || die "/proc/sys/vm/drop_caches is not writable"
[ -c /dev/fuse ] || die "/dev/fuse is missing"

# ---- state and cleanup ----------------------------------------------------------
WORK=""         # temp dir: images, mount points, fio output, SQL files
LOOP=""         # the loop device this run attached (only this one is detached)
MM_PID=""       # pid of the running mmapfs daemon
EXT_MNT="" MM_MNT="" EXT_FILE="" MM_IMG=""

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

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
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
declare -A LABEL=() UNIT=() KIND=() TARGET=()

# metric ID KIND(rate|time) UNIT TARGET LABEL
metric() {
    METRICS+=("$1")
    KIND[$1]=$2 UNIT[$1]=$3 TARGET[$1]=$4 LABEL[$1]=$5
}
record() { # record ID FS VALUE
    VALS["$1|$2"]+="$3 "
    log "  $1 $2: $3 ${UNIT[$1]}"
}
median() {
    echo "$1" | tr -s ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Runs fio under a timeout with JSON output into $WORK/fio.json; prints the
# value FIELD (iops|mbps) of direction DIR (read|write).
run_fio() {
    local dir=$1 field=$2
    shift 2
    rm -f "$WORK/fio.json"
    timeout -k 10 "$STEP_TIMEOUT" fio --output-format=json --output="$WORK/fio.json" \
        --ioengine=psync "$@" >"$WORK/fio.log" 2>&1 ||
        { cat "$WORK/fio.log" >&2; die "fio $* failed or timed out"; }
    "$PY" "$here/fio_value.py" "$WORK/fio.json" "$dir" "$field" ||
        { cat "$WORK/fio.json" >&2; die "fio $* produced no usable result"; }
}

# Times a command (bash -c) under the step timeout; prints seconds.
time_cmd() {
    local t0 t1
    t0=$EPOCHREALTIME
    timeout -k 10 "$STEP_TIMEOUT" bash -c "$1" >"$WORK/cmd.log" 2>&1 ||
        { cat "$WORK/cmd.log" >&2; die "command failed or timed out: $1"; }
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

# ---- set up both filesystems ---------------------------------------------------------
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/mmapfs-bench.XXXXXX")
EXT_FILE=$WORK/ext4.img MM_IMG=$WORK/mmapfs.img
EXT_MNT=$WORK/ext4 MM_MNT=$WORK/mmapfs
mkdir -p "$EXT_MNT" "$MM_MNT"

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
timeout -k 5 120 "$MKFS" -q -f -s "$FS_SIZE" "$MM_IMG" || die "mkfs.mmapfs -s $FS_SIZE $MM_IMG failed"
ext_mount
mm_mount
log "ext4 on $LOOP (sparse $EXT_FILE), mmapfs on $MM_IMG (preallocated, daemon pid $MM_PID)"

# ---- metrics (table order) -------------------------------------------------------------
metric seqw rate MB/s 1.0 "sequential write $SEQ_SIZE, bs=1M, end_fsync"
metric seqr rate MB/s 1.0 "cold sequential read $SEQ_SIZE, bs=1M"
metric randw rate IOPS 1.0 "4 KiB random write $RAND_SIZE, buffered, end_fsync"
metric fsync rate IOPS 2.0 "4 KiB write+fsync, $FSYNC_JOBS writers x $FSYNC_SIZE"
metric sqlwal rate txn/s 1.2 "SQLite WAL, synchronous=FULL, $SQL_TXNS txns"
metric sqldel rate txn/s 1.2 "SQLite DELETE, synchronous=FULL, $SQL_TXNS txns"
metric create time s 0.5 "create $NFILES empty files"
metric statc time s 0.5 "stat $NFILES files, cold caches"
metric statw time s 0.5 "stat $NFILES files, warm caches"
metric delete time s 0.5 "rm -rf $NFILES files"

# ---- 1+2. sequential write, cold sequential read -------------------------------------------
for ((r = 1; r <= SEQ_RUNS; r++)); do
    check_budget
    log "sequential write, run $r/$SEQ_RUNS"
    remount_both
    for fs in $(order "$r"); do
        m=$(mnt_of "$fs")
        rm -f "$m/seq"
        sync
        v=$(run_fio write mbps --name=seqw --filename="$m/seq" --rw=write --bs=1M \
            --size="$SEQ_SIZE" --end_fsync=1)
        record seqw "$fs" "$v"
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
        v=$(run_fio read mbps --name=seqr --filename="$m/seq" --rw=read --bs=1M --size="$SEQ_SIZE")
        record seqr "$fs" "$v"
    done
done
rm -f "$EXT_MNT/seq" "$MM_MNT/seq"

# ---- 3. 4 KiB random writes, buffered --------------------------------------------------------
log "4 KiB random writes"
remount_both
for ((r = 1; r <= RUNS; r++)); do
    check_budget
    for fs in $(order "$r"); do
        m=$(mnt_of "$fs")
        rm -f "$m/rand"
        sync
        v=$(run_fio write iops --name=randw --filename="$m/rand" --rw=randwrite --bs=4k \
            --size="$RAND_SIZE" --end_fsync=1)
        record randw "$fs" "$v"
    done
done
rm -f "$EXT_MNT/rand" "$MM_MNT/rand"

# ---- 4. fsync with concurrent writers ----------------------------------------------------------
log "fsync, $FSYNC_JOBS concurrent writers"
remount_both
for ((r = 1; r <= RUNS; r++)); do
    check_budget
    for fs in $(order "$r"); do
        m=$(mnt_of "$fs")
        rm -rf "$m/fsync"
        mkdir "$m/fsync"
        sync
        v=$(run_fio write iops --name=fsync --directory="$m/fsync" --rw=write --bs=4k \
            --size="$FSYNC_SIZE" --fsync=1 --numjobs="$FSYNC_JOBS" --group_reporting)
        record fsync "$fs" "$v"
    done
done
rm -rf "$EXT_MNT/fsync" "$MM_MNT/fsync"

# ---- 5. SQLite, synchronous=FULL ------------------------------------------------------------------
# One sqlite3 process per run reads the whole SQL file on stdin; the database
# is removed before each run (not timed). Runs alternate between the two
# filesystems, so that a change in the machine's background load hits both.
for mode in WAL DELETE; do
    id=sqlwal
    [ "$mode" = WAL ] || id=sqldel
    sql=$WORK/$mode.sql
    {
        echo "PRAGMA journal_mode=$mode;"
        echo "PRAGMA synchronous=FULL;"
        echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
        for ((i = 1; i <= SQL_TXNS; i++)); do
            echo "BEGIN; INSERT INTO t(v) VALUES('row $i: a small payload of about one hundred bytes, as a log line or a key-value pair would be'); COMMIT;"
        done
    } >"$sql"
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

# ---- 6. small files: create, stat (cold, warm), delete -------------------------------------------
log "small files: $NFILES"
for ((r = 1; r <= RUNS; r++)); do
    check_budget
    remount_both
    for fs in $(order "$r"); do
        d=$(mnt_of "$fs")/small
        mkdir "$d"
        sync
        record create "$fs" "$(time_cmd "'$PY' '$here/smallfiles.py' create '$d' $NFILES")"
        drop_caches
        record statc "$fs" "$(time_cmd "'$PY' '$here/smallfiles.py' stat '$d' $NFILES")"
        record statw "$fs" "$(time_cmd "'$PY' '$here/smallfiles.py' stat '$d' $NFILES")"
        sync
        record delete "$fs" "$(time_cmd "rm -rf '$d'")"
    done
done

# ---- unmount, check the mmapfs image ----------------------------------------------------------------
mm_umount || die "unmounting $MM_MNT failed"
ext_umount || die "unmounting $EXT_MNT failed"
timeout -k 5 120 "$FSCK" -n "$MM_IMG" >"$WORK/fsck.log" 2>&1 ||
    { cat "$WORK/fsck.log" >&2; die "fsck.mmapfs -n of the benchmark image is not clean"; }
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
REV=${BENCH_REV:-$(git -C "$(dirname "$build")" rev-parse --short HEAD 2>/dev/null || echo '?')}

# ---- table ------------------------------------------------------------------------------------------
fmt() { awk -v v="$1" 'BEGIN { if (v >= 100) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.3f", v }'; }
rows=()
for id in "${METRICS[@]}"; do
    e=$(median "${VALS["$id|ext4"]:-}")
    m=$(median "${VALS["$id|mmapfs"]:-}")
    if [ "${KIND[$id]}" = rate ]; then
        ratio=$(awk -v a="$m" -v b="$e" 'BEGIN { printf "%.2f", a / b }')
    else
        ratio=$(awk -v a="$e" -v b="$m" 'BEGIN { printf "%.2f", a / b }')
    fi
    met=$(awk -v r="$ratio" -v t="${TARGET[$id]}" 'BEGIN { print (r >= t) ? "met" : "MISSED" }')
    n=$(echo "${VALS["$id|ext4"]:-}" | wc -w)
    rows+=("${LABEL[$id]} (${UNIT[$id]}, median of $n)|$(fmt "$e")|$(fmt "$m")|${ratio}x|>= ${TARGET[$id]}x ($met)")
done

header="mmapfs vs ext4 on a loop device, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, kernel $(uname -r); load average $load_start at start, $load_end at end; mmapfs $REV (binaries in $build); filesystems of $FS_SIZE under $BENCH_TMP"
note="ratio >= 1.0 means mmapfs at least as good as ext4: mmapfs/ext4 for rates, ext4 time / mmapfs time for durations"

mkdir -p "$(dirname "$BENCH_OUT")"
{
    echo "$header"
    echo
    echo "$note"
    echo
    echo "| metric | ext4 | mmapfs | ratio | target |"
    echo "| --- | ---: | ---: | ---: | --- |"
    for row in "${rows[@]}"; do echo "| ${row//|/ | } |"; done
    echo
    echo "Samples (ext4 / mmapfs):"
    echo
    for id in "${METRICS[@]}"; do
        echo "- ${LABEL[$id]}: ${VALS["$id|ext4"]% } / ${VALS["$id|mmapfs"]% } ${UNIT[$id]}"
    done
} >"$BENCH_OUT"

echo
echo "$header"
echo "$note"
echo
{
    echo "metric|ext4|mmapfs|ratio|target"
    for row in "${rows[@]}"; do echo "$row"; done
} | awk -F'|' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
    END { for (r = 1; r <= NR; r++) { line = sprintf("%-" w[1] "s", c[r, 1])
              for (i = 2; i <= 4; i++) line = line sprintf("  %" w[i] "s", c[r, i])
              print line "  " c[r, 5] } }'
echo
echo "Markdown table written to $BENCH_OUT (total ${SECONDS}s)"
