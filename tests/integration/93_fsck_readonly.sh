#!/usr/bin/env bash
#
# 93_fsck_readonly.sh — fsck.mmapfs -n never writes to the image.
#
# An image is left with committed transactions whose journal header was
# never advanced: the daemon is killed with SIGKILL right after an fsync
# (a read-write replay would write the home blocks and a new journal
# header). Then, each time with the image's checksum before and after:
#   - fsck -n on the file: exit 0, the journal replayed "in memory", the
#     checksum unchanged (and a second -n the same);
#   - the same image on a read-only loop device (losetup -r), in a
#     read-only bind mount, as an immutable file (chattr +i), and on a
#     small tmpfs filled to the last byte: -n works (exit 0, unchanged);
#     -y is refused with one line that says to use -n (exit 8), except on
#     the full tmpfs, where it may replay into blocks already allocated;
#   - a mounted image: -n checks it with a warning line, -y refuses;
#   - finally -y replays into the image (the checksum changes) and -n is
#     clean without a replay.
# Everything it mounts, attaches or makes immutable is undone by the EXIT
# trap (common.sh: mount_other, new_loop, make_immutable).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd md5sum losetup chattr mount umount python3

img=$T_DIR/ro.img
M=$T_DIR/mnt
RO=$T_DIR/ro-bind
TMPFS=$T_DIR/full


sum() { md5sum <"$1" | cut -d' ' -f1; }

# fsck_n_unchanged DESC TARGET : fsck -n TARGET exits 0, says it replayed in
# memory, and TARGET's checksum is the same before and after.
fsck_n_unchanged() {
    local desc=$1 target=$2 before after
    before=$(sum "$target")
    _run "$FSCK" -n "$target"
    after=$(sum "$target")
    if [ "$T_RC" -eq 0 ] && [ "$before" = "$after" ] &&
        grep -q "replayed .* in memory" <<<"$T_OUT"; then
        pass "$desc"
    else
        fail "$desc" "exit $T_RC (want 0), md5 $before -> $after (want equal)"
        _tail_output "$T_OUT"
    fi
}

# fsck_y_refused DESC TARGET : fsck -y TARGET exits 8 with one line that
# says to use -n, and writes nothing.
fsck_y_refused() {
    local desc=$1 target=$2 before after
    before=$(sum "$target")
    _run "$FSCK" -y "$target"
    after=$(sum "$target")
    if [ "$T_RC" -eq 8 ] && [ "$before" = "$after" ] && [ "$(wc -l <<<"$T_OUT")" -eq 1 ] &&
        grep -q "cannot open it for writing.*use -n" <<<"$T_OUT"; then
        pass "$desc"
    else
        fail "$desc" "exit $T_RC (want 8), md5 $before -> $after (want equal)"
        _tail_output "$T_OUT"
    fi
}

# ---- an image with committed transactions to replay ---------------------------------
make_image "$img" 32M
mount_image "$img" "$M"
dpid=$(_daemon_pids "$M")
[[ "$dpid" =~ ^[0-9]+$ ]] || { fail "one daemon serves the mount" "pids: '$dpid'"; t_finish; }
check_sh "write and fsync three files" \
    'for i in 1 2 3; do "$0" -c "import os,sys; f=os.open(sys.argv[1], os.O_CREAT|os.O_WRONLY, 0o644); os.write(f, b\"x\" * 5000); os.fsync(f)" "$1/f$i" || exit 1; done' \
    "$PY" "$M"
kill -KILL "$dpid"
timeout 30 tail --pid="$dpid" -f /dev/null || true
timeout 30 fusermount3 -u "$M" 2>/dev/null || timeout 30 fusermount3 -u -z "$M" || true
_forget_mount "$M"
check_fail_sh "the dead mount is gone" 'mountpoint -q "$0"' "$M"
pristine=$(sum "$img")

# ---- the image file ------------------------------------------------------------------------
fsck_n_unchanged "fsck -n of the file: exit 0, replayed in memory, md5 unchanged" "$img"
fsck_n_unchanged "a second fsck -n: the same" "$img"
check_sh "fsck -n counts the three replayed files" '"$0" -n -v "$1" | grep -q "3 other inodes"' \
    "$FSCK" "$img"

# ---- a read-only loop device -----------------------------------------------------------
if dev=$(timeout -k 5 30 losetup -r --find --show "$img" 2>/dev/null); then
    T_LOOPS+=("$dev")
    check_eq "losetup -r: the device is read-only" 1 "$(blockdev --getro "$dev")"
    fsck_n_unchanged "fsck -n of a read-only loop device" "$dev"
    fsck_y_refused "fsck -y of a read-only loop device: refused, says -n" "$dev"
    drop_loop "$dev" || true
else
    skip "read-only loop device: losetup does not work here"
fi

# ---- a read-only bind mount ------------------------------------------------------------
mkdir -p "$T_DIR/rw" "$RO"
cp --sparse=always "$img" "$T_DIR/rw/ro.img"
if mount_other "$RO" --bind "$T_DIR/rw" && mount -o remount,bind,ro "$RO"; then
    check_fail_sh "the bind mount is read-only" 'touch "$0/x"' "$RO"
    fsck_n_unchanged "fsck -n of an image in a read-only bind mount" "$RO/ro.img"
    fsck_y_refused "fsck -y in a read-only bind mount: refused, says -n" "$RO/ro.img"
else
    skip "read-only bind mount: mount --bind failed"
fi

# ---- an immutable file -----------------------------------------------------------------------
cp --sparse=always "$img" "$T_DIR/immutable.img"
if make_immutable "$T_DIR/immutable.img"; then
    IMMUTABLE=$T_DIR/immutable.img
    check_fail_sh "the file is immutable" 'exec 3>>"$0"' "$IMMUTABLE"
    fsck_n_unchanged "fsck -n of an immutable file (chattr +i)" "$IMMUTABLE"
    fsck_y_refused "fsck -y of an immutable file: refused, says -n" "$IMMUTABLE"
else
    skip "immutable file: chattr +i not supported on this filesystem"
fi

# ---- a full host filesystem ---------------------------------------------------------------
if mount_other "$TMPFS" -t tmpfs -o size=40m tmpfs; then
    cp --sparse=always "$img" "$TMPFS/ro.img"
    dd if=/dev/zero of="$TMPFS/filler" bs=1M status=none 2>/dev/null || true
    dd if=/dev/zero of="$TMPFS/filler2" bs=4k status=none 2>/dev/null || true
    check_eq "the tmpfs is full" 0 "$(stat -f -c %a "$TMPFS")"
    check_fail_sh "no byte can be added" 'printf x >>"$0/filler"' "$TMPFS"
    fsck_n_unchanged "fsck -n of an image on a full host filesystem" "$TMPFS/ro.img"
    timeout -k 5 30 umount "$TMPFS" || true     # frees its memory now
else
    skip "full host filesystem: cannot mount a tmpfs"
fi

# ---- a mounted image -------------------------------------------------------------------------
cp --sparse=always "$img" "$T_DIR/live.img"
mount_image "$T_DIR/live.img" "$M"
check_sh "fsck -n of a mounted image: checked read-only with a warning line" \
    '"$0" -n "$1" >"$2" 2>&1; rc=$?; [ $rc -eq 0 -o $rc -eq 4 ] && grep -q "warning: in use (mounted?)" "$2"' \
    "$FSCK" "$T_DIR/live.img" "$T_DIR/live.out"
check_sh "fsck -y of a mounted image: refused (exit 8)" \
    '"$0" -y "$1" >"$2" 2>&1; [ $? -eq 8 ] && grep -q "in use (mounted?): refusing to repair" "$2"' \
    "$FSCK" "$T_DIR/live.img" "$T_DIR/live.out"
unmount_fs "$M"
fsck_clean "$T_DIR/live.img" "fsck -n of the unmounted image is clean"

# ---- repair mode still replays into the image -----------------------------------------------
check_eq "after all the -n runs the image is as the crash left it" "$pristine" "$(sum "$img")"
check "fsck -y replays the journal into the image" "$FSCK" -y "$img"
check_fail_sh "fsck -y changed the image" '[ "$(md5sum <"$0" | cut -d" " -f1)" = "$1" ]' \
    "$img" "$pristine"
check_sh "fsck -n afterwards: clean, nothing left to replay" \
    'out=$("$0" -n -v "$1") && ! grep -q replayed <<<"$out" && grep -q "3 other inodes" <<<"$out"' \
    "$FSCK" "$img"
t_finish
