#!/usr/bin/env bash
#
# 71_term_fsync.sh — an fsync(2) in flight when the daemon is told to stop
# (SIGTERM) gets its answer: 0, and the data is in the image.
#
# The journal's commit thread answers an FSYNC once the data is durable,
# after the request thread went back to the loop. On SIGTERM the loop
# ends and main unmounts, which closes the session's device; a reply still
# due then went to a closed descriptor (or to a file that took its number:
# ThreadSanitizer saw the close race the commit thread's writev), and the
# caller's fsync failed with ECONNABORTED although its data was durable.
# Now the loop's end waits for such replies (src/fuse/defer.c).
#
# The device sync is made slow by an LD_PRELOAD shim (slowsync.c: each
# fdatasync of the daemon sleeps 1.5 s while a flag file exists), so that
# the fsync is certainly still waiting for it when SIGTERM arrives.
#
# Then: SIGTERM while the loop sleeps in poll(2) ends it with exit 0.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd cc
export LC_ALL=C

SHIM=$T_DIR/slowsync.so
compile_c "$SHIM" "$T_ROOT/tests/integration/slowsync.c" -Wextra -Werror -shared -fPIC -ldl
cat >"$T_DIR/fsync.py" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"d" * 65536)
open(sys.argv[2], "w").close()          # the fsync starts now
try:
    os.fsync(fd)
    print("fsync: ok")
except OSError as e:
    print("fsync: errno %d (%s)" % (e.errno, e.strerror))
PY

IMG=$T_DIR/tf.img
M=$T_DIR/mnt
FLAG=$T_DIR/slow
make_image "$IMG" 64M

# run_case DESC [mmapfs args...]
run_case() {
    local desc=$1 n=$((++case_no)) py dpid rc
    shift
    rm -f "$FLAG" "$T_DIR/go"
    SLOWSYNC_FLAG=$FLAG LD_PRELOAD=$SHIM mount_fg "$IMG" "$M" "$T_DIR/daemon.$n.log" "$@" || return 0
    dpid=$T_DPID
    touch "$FLAG"
    "$PY" "$T_DIR/fsync.py" "$M/f$n" "$T_DIR/go" >"$T_DIR/fsync.$n.out" 2>&1 &
    py=$!
    wait_until "$desc: the writer reaches its fsync" 10 "test -e '$T_DIR/go'"
    sleep 0.5                           # the FSYNC waits in the slow fdatasync
    kill -TERM "$dpid"
    wait "$py" || true
    rc=0
    timeout 60 tail --pid="$dpid" -f /dev/null || rc=$?
    wait "$dpid" || rc=$?
    rm -f "$FLAG"
    _forget_mount "$M"
    check_eq "$desc: the fsync in flight at SIGTERM returns 0" "fsync: ok" "$(cat "$T_DIR/fsync.$n.out")"
    check_eq "$desc: the daemon exits 0 after SIGTERM" 0 "$rc"
    fsck_clean "$IMG" "$desc: fsck.mmapfs -n is clean"
    mount_image "$IMG" "$M"
    check_sh "$desc: the fsync'd data is in the image" \
        '[ "$(stat -c %s "$1")" = 65536 ] && [ "$(tr -d d <"$1" | wc -c)" = 0 ]' _ "$M/f$n"
    unmount_fs "$M"
}

case_no=0
run_case "hot loop"
run_case "libfuse's loop, one device descriptor" -o nohotloop,noclone_fd

# SIGTERM while the hot loop sleeps in poll(2): the shutdown thread's
# SIGUSR1 interrupts it after fuse_session_exit, and the loop used to
# return that EINTR as its error ("request loop failed", exit 1; one round
# in about six with spin=0, which sends the loop to poll(2) right after
# each reply). 3 MiB in the writeback cache of a file still open give
# the flush some requests.
fails=0
for round in $(seq 20); do
    mount_fg "$IMG" "$M" "$T_DIR/spin0.log" -o spin=0 || break
    exec {hold}>"$M/spin0"          # truncated: the space comes back
    head -c $((3 << 20)) /dev/urandom >&"$hold"
    kill -TERM "$T_DPID"
    rc=0
    wait "$T_DPID" || rc=$?
    exec {hold}>&-
    _forget_mount "$M"
    if [ "$rc" != 0 ] || grep -q "request loop failed" "$T_DIR/spin0.log"; then
        fails=$((fails + 1))
        t_log "round $round: exit $rc: $(tail -2 "$T_DIR/spin0.log")"
    fi
done
check_eq "SIGTERM with spin=0, 20 rounds: the daemon exits 0 every time" 0 "$fails"
fsck_clean "$IMG" "fsck.mmapfs -n after the SIGTERM rounds is clean"
t_finish
