#!/usr/bin/env bash
#
# 77_mmp.sh — multi-mount protection across paths that do not share the
# local flock: the same image through a loop device and through its file.
#
# mkfs -O mmp with a 1 s heartbeat (--mmp-interval 1, so the waits stay
# short). Mount A through the loop device (daemon in the foreground, its
# PID captured). Then:
#  - a mount of the file refuses at once, naming A's host and pid;
#  - the same from another UTS namespace (another host name: what a second
#    machine looks like) refuses after watching the heartbeat change;
#  - fsck -y refuses; fsck -n warns and checks read-only;
#  - mkfs -f refuses (exit 5, one line naming host and pid), from either
#    host name, and so do mmapfs-resize and mmapfs-trim; A's files are
#    intact;
#  - kill -9 A: a mount of the file now waits out the heartbeat (about
#    2 x interval + 1 s) and takes over; writes work;
#  - its clean unmount marks the block clean, and a refused mkfs (no -f)
#    leaves it clean: the next mount (through the loop device) is
#    immediate;
#  - a mount that loses its MMP block (zeroed under it with O_DIRECT, as
#    another machine's mkfs would) stops committing: fsync gets EIO.
# docs/ROBUSTNESS.md.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd losetup unshare hostname
export LC_ALL=C

img=$T_DIR/mmp.img
RESIZE="$T_BUILD/mmapfs-resize"
TRIM="$T_BUILD/mmapfs-trim"
A=$T_DIR/a
Bm=$T_DIR/b
mkdir -p "$A" "$Bm"
make_image "$img" 64M --mmp-interval 1
loop=""
new_loop "$img" loop || skip_script "losetup does not work here"
check_sh "mkfs wrote the MMP feature" '"$0" -n "$1" >/dev/null' "$FSCK" "$img"

# Mounts TARGET on MNT with the daemon in the foreground (PID in $dpid).
mount_fg() {
    local target=$1 mnt=$2 log=$3
    T_MOUNTS+=("$mnt")
    _remember_image "$target"
    T_DIRTY["$target"]=1
    "$MMAPFS" "$target" "$mnt" -f >"$log" 2>&1 </dev/null &
    dpid=$!
    local i
    for i in $(seq 200); do
        mountpoint -q "$mnt" && return 0
        kill -0 "$dpid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# ---- A holds the image through the loop device --------------------------------------
if ! mount_fg "$loop" "$A" "$T_DIR/a.log"; then
    fail "mount A through $loop" "$(cat "$T_DIR/a.log")"
    t_finish
fi
apid=$dpid
pass "A mounted through the loop device (pid $apid)"
check "A writes" dd if=/dev/urandom of="$A/before" bs=64k count=16 conv=fsync status=none
sum_before=$(sha256sum <"$A/before")

# ---- a second mount of the file refuses, naming A ----------------------------------------
host=$(uname -n)
t0=$SECONDS
_run "$MMAPFS" "$img" "$Bm"
if [ "$T_RC" -ne 0 ] && grep -q "host $host, pid $apid" <<<"$T_OUT" && ! mountpoint -q "$Bm"; then
    pass "a mount of the file refuses, naming host $host pid $apid ($((SECONDS - t0)) s)"
else
    fail "a mount of the file refuses naming the holder" "exit $T_RC" "$T_OUT"
fi
_run unshare -u bash -c 'hostname mmp-other-host && exec "$@"' sh "$MMAPFS" "$img" "$Bm"
if [ "$T_RC" -ne 0 ] && grep -q "in use (multi-mount protection): host $host, pid $apid" <<<"$T_OUT" &&
    ! mountpoint -q "$Bm"; then
    pass "from another host name: refused after watching the live heartbeat"
else
    fail "from another host name: refused after watching the live heartbeat" "exit $T_RC" "$T_OUT"
fi
_run "$FSCK" -y "$img"
if [ "$T_RC" -eq 8 ] && grep -q "pid $apid" <<<"$T_OUT"; then
    pass "fsck -y refuses an image A holds (exit 8, names the holder)"
else
    fail "fsck -y refuses an image A holds" "exit $T_RC" "$T_OUT"
fi
_run "$FSCK" -n "$img"
if grep -q "warning: the MMP block is not released" <<<"$T_OUT" && [ "$T_RC" -lt 8 ]; then
    pass "fsck -n warns and checks read-only (exit $T_RC)"
else
    fail "fsck -n warns and checks read-only" "exit $T_RC" "$T_OUT"
fi
# mkfs over the live image: refused, -f does not override it (exit 5)
_run "$MKFS" -q -f "$img"
if [ "$T_RC" -eq 5 ] && grep -q "in use (multi-mount protection): host $host, pid $apid" <<<"$T_OUT" &&
    [ "$(grep -c . <<<"$T_OUT")" -eq 1 ]; then
    pass "mkfs -f refuses the image A holds (exit 5, one line naming host and pid)"
else
    fail "mkfs -f refuses the image A holds" "exit $T_RC" "$T_OUT"
fi
_run unshare -u bash -c 'hostname mmp-other-host && exec "$@"' sh "$MKFS" -q -f "$img"
if [ "$T_RC" -eq 5 ] && grep -q "in use (multi-mount protection): host $host, pid $apid" <<<"$T_OUT"; then
    pass "mkfs -f from another host name: refused after watching the live heartbeat"
else
    fail "mkfs -f from another host name: refused after watching the heartbeat" "exit $T_RC" "$T_OUT"
fi
for tool in "$RESIZE" "$TRIM"; do
    _run "$tool" "$img"
    if [ "$T_RC" -eq 5 ] && grep -q "in use (multi-mount protection): host $host, pid $apid" <<<"$T_OUT"; then
        pass "$(basename "$tool") refuses the image A holds (exit 5, names host and pid)"
    else
        fail "$(basename "$tool") refuses the image A holds" "exit $T_RC" "$T_OUT"
    fi
done
check_sh "A's files survived the refused mkfs" '[ "$(sha256sum <"$0")" = "$1" ]' "$A/before" "$sum_before"
check "A is still alive and writing" dd if=/dev/zero of="$A/still" bs=4k count=4 conv=fsync status=none

# ---- A dies: the next mount waits out the heartbeat and takes over --------------------------
kill -KILL "$apid"
wait "$apid" 2>/dev/null || true
timeout -k 5 30 fusermount3 -u -z "$A" 2>/dev/null || true
_forget_mount "$A"
t0=$(date +%s.%N)
if mount_fg "$img" "$Bm" "$T_DIR/b.log"; then
    took=$(echo "$(date +%s.%N) - $t0" | bc)
    pass "after kill -9 of A, a mount of the file succeeds (after ${took} s)"
    check_sh "it waited out the heartbeat (>= 2 s)" '[ "$(echo "$0 >= 2" | bc)" = 1 ]' "$took"
    check_sh "it said why it waited" 'grep -q "watching its heartbeat" "$0"' "$T_DIR/b.log"
else
    fail "after kill -9 of A, a mount of the file succeeds" "$(cat "$T_DIR/b.log")"
    t_finish
fi
bpid=$dpid
check_eq "A's fsync'd file is intact" "$sum_before" "$(sha256sum <"$Bm/before")"
check "B writes" dd if=/dev/urandom of="$Bm/after" bs=64k count=16 conv=fsync status=none

# ---- clean unmount (and a refused mkfs): the next mount is immediate -----------------------------------------------
unmount_fs "$Bm" && pass "B unmounts cleanly"
wait "$bpid" 2>/dev/null || true
# mkfs without -f is refused after it claimed the block: it must give it
# back (it used to leave it marked FSCK, and every later mount, fsck and
# mkfs was refused "being repaired by fsck.mmapfs")
_run "$MKFS" -q "$img"
if [ "$T_RC" -ne 0 ] && grep -q "use -f" <<<"$T_OUT"; then
    pass "mkfs without -f refuses the existing filesystem (exit $T_RC)"
else
    fail "mkfs without -f refuses the existing filesystem" "exit $T_RC" "$T_OUT"
fi
t0=$(date +%s.%N)
if mount_fg "$loop" "$A" "$T_DIR/a2.log"; then
    took=$(echo "$(date +%s.%N) - $t0" | bc)
    check_sh "after a clean unmount the mount is immediate (${took} s < 1.5 s)" \
        '[ "$(echo "$0 < 1.5" | bc)" = 1 ]' "$took"
else
    fail "mount through the loop device after the clean unmount" "$(cat "$T_DIR/a2.log")"
    t_finish
fi
apid=$dpid

# ---- the MMP block is overwritten under A: A stops committing -----------------------------------
check "zero the MMP block through the file (O_DIRECT)" \
    dd if=/dev/zero of="$img" bs=4096 seek=1 count=1 conv=notrunc oflag=direct status=none
sleep 2.5
check_sh "A logged that it lost the image" 'grep -q "multi-mount protection: the image was taken by another writer" "$0"' \
    "$T_DIR/a2.log"
check_errno "a write + fsync on A now fails with EIO" "EIO|EROFS" "
fd = os.open('$A/lost', os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b'x' * 4096)
os.fsync(fd)"
check "A's daemon is alive" kill -0 "$apid"
timeout -k 5 30 fusermount3 -u "$A" || true
_wait_daemon_gone "$A" 30 || true
_forget_mount "$A"
wait "$apid" 2>/dev/null || true
# The zeroed MMP block: the next mount watches it, then takes over and
# rewrites it; the filesystem itself is consistent.
if mount_fg "$img" "$Bm" "$T_DIR/b2.log"; then
    pass "a mount after the MMP block was zeroed takes over"
    check_eq "files written before are intact" "$sum_before" "$(sha256sum <"$Bm/before")"
    unmount_fs "$Bm" || true
else
    fail "a mount after the MMP block was zeroed takes over" "$(cat "$T_DIR/b2.log")"
fi
T_DIRTY["$loop"]=0     # the same image as $img, checked once through the file
t_finish
