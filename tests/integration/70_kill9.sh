#!/usr/bin/env bash
#
# 70_kill9.sh — process crash: kill -9 the mount daemon in the middle of a
# busy workload, at a random (seeded, printed) moment, several times over.
#
# Each round: mount (daemon in the foreground, in the background, PID
# captured); start cp -a of a real tree, a SQLite loop (WAL,
# synchronous=FULL), two fsync/fdatasync loops of tagged records and a
# process holding an unlinked-but-open 8 MiB file (an orphan); each load
# logs, outside the mount, what its fsync/commit made durable. After a
# random delay: kill -9 the daemon, fusermount3 -u the dead mount, fsck -n
# (it replays the journal; must be clean), remount: every fsync'd record
# and every returned SQLite commit is there, the orphan's space came back,
# the copied tree reads; unmount, fsck -n clean. Rounds accumulate on one
# image.
#
# KILL9_SEED (default: random) fixes the delays; KILL9_ROUNDS (default 4).
# docs/CRASH.md describes what is guaranteed.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd sqlite3 cp find
LOAD="$T_ROOT/tests/crash/kill9_load.py"
seed=${KILL9_SEED:-$(( (RANDOM << 15 | RANDOM) ))}
rounds=${KILL9_ROUNDS:-4}
SRC=${KILL9_SRC:-/usr/share/doc}
echo "kill -9 test: seed $seed, $rounds rounds (replay: KILL9_SEED=$seed)"
RANDOM=$seed

img=$T_DIR/k9.img
M=$T_DIR/mnt
logs=$T_DIR/logs
state=$T_DIR/state
mkdir -p "$logs" "$M"
: >"$state"
make_image "$img" 1G
loads=()

# Stops the load processes of this round (by PID) and waits for them.
stop_loads() {
    local p
    for p in "${loads[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    for p in "${loads[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    loads=()
}

for round in $(seq "$rounds"); do
    # ---- mount with the daemon in the foreground, PID captured --------------------
    mount_fg "$img" "$M" "$T_DIR/daemon.$round.log" || break
    dpid=$T_DPID
    pass "round $round: mounted (daemon pid $dpid)"

    # ---- busy workload -------------------------------------------------------------------
    mkdir -p "$M/r$round" "$M/db"
    cp -a "$SRC" "$M/r$round/tree" 2>/dev/null &
    loads+=($!)
    "$PY" "$LOAD" sqlite "$M/db/app.db" "$logs/sqlite.log" "$((seed + round))" &
    loads+=($!)
    for i in 1 2; do
        "$PY" "$LOAD" fsyncloop "$M/r$round/log$i" "$logs/fsync.$round.$i" "$((seed + round * 10 + i))" &
        loads+=($!)
    done
    rm -f "$T_DIR/orphan.ready"
    "$PY" "$LOAD" orphan "$M/r$round/orphan" $((8 << 20)) "$T_DIR/orphan.ready" &
    loads+=($!)
    grep -q '^sqlite ' "$state" || echo "sqlite $M/db/app.db $logs/sqlite.log" >>"$state"
    for i in 1 2; do
        echo "fsync $M/r$round/log$i $logs/fsync.$round.$i" >>"$state"
    done
    grep -q '^orphan' "$state" || echo "orphan" >>"$state"

    # ---- kill -9 at a random moment ------------------------------------------------------
    for _ in $(seq 400); do
        [ -e "$T_DIR/orphan.ready" ] && break
        sleep 0.05
    done
    delay_ms=$((300 + RANDOM % 2700))
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    crash_daemon "$dpid" "$M" "$img" "round $round: kill -9 after ${delay_ms} ms of load"
    stop_loads
    # the kill must have hit a busy mount, or the round proves nothing
    n_fsync=$(cat "$logs"/fsync."$round".* | wc -l)
    n_sql=$(wc -l <"$logs/sqlite.log")
    check_range "round $round: fsync'd records before the kill ($n_fsync)" 1 100000000 "$n_fsync"
    check_range "round $round: SQLite commits so far ($n_sql)" 1 100000000 "$n_sql"
    check "round $round: the orphan was unlinked while open before the kill" test -e "$T_DIR/orphan.ready"
    t_log "round $round: $(tail -c 300 <<<"$T_OUT" | tr '\n' ' ')"

    # ---- remount and verify ---------------------------------------------------------------
    mount_image "$img" "$M"
    check "round $round: every fsync'd record, every returned SQLite commit, orphans reclaimed" \
        "$PY" "$LOAD" verify "$M" "$state"
    check_sh "round $round: the partly copied tree reads back" \
        'find "$1" -type f -print0 | xargs -0 -r cat >/dev/null' _ "$M/r$round"
    unmount_fs "$M"
    fsck_clean "$img" "round $round: fsck.mmapfs -n after the remount is clean"
done

t_finish
