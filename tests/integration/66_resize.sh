#!/usr/bin/env bash
#
# 66_resize.sh — mmapfs-resize grows an unmounted filesystem offline.
#
#  1. A 128 MiB image filled to ENOSPC, grown to 1 GiB (the image file is
#     extended): mount, df shows the new size, the old files are intact,
#     300 MiB more can be written, fsck clean. Grown again to 1.5 GiB and
#     3 GiB (all within the room mkfs leaves: 64 times the size).
#  2. Refusals: a smaller SIZE (exit 10, nothing changed), a mounted image
#     (exit 5), a growth beyond mkfs's room and what the journal can give
#     up (exit 11).
#  3. The inode table grows with the size: a 64 MiB image (4096 inodes)
#     with data, its inodes used up, grown 10x to 640 MiB (40960 inodes):
#     10000 more files than before fit, the data is intact, fsck clean,
#     everything still there after a remount.
#  4. Crash at each step (MMAPFS_RESIZE_STOP_AT=1..6 makes the test build
#     of the tool, build/tests/mmapfs-resize-stop, exit
#     right after that step, without syncing or closing), growing a 128 MiB
#     image with a 4096-block journal to 16 GiB (past mkfs's 8 GiB room, so
#     the bitmap moves into the journal, the inode bitmap into the new space:
#     every step happens): fsck clean, and
#     the filesystem has the old or the new size, never anything else;
#     a second run finishes the job.
#  5. A block device (loop device over a file made larger with losetup -c).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd dd sha256sum losetup
export LC_ALL=C
RESIZE="$T_BUILD/mmapfs-resize"
RESIZE_STOP="$T_BUILD/tests/mmapfs-resize-stop"    # stops after a step (resize_stop.c)

# blocks in the filesystem, from fsck's summary "N/M blocks in use"
fs_blocks() { "$FSCK" -n "$1" | sed -n 's|.* [0-9]*/\([0-9]*\) blocks in use.*|\1|p'; }
# inodes in the filesystem, from the summary "N/M inodes"
fs_inodes() { "$FSCK" -n "$1" | sed -n 's|.* [0-9]*/\([0-9]*\) inodes,.*|\1|p'; }
# bash -c "$MAKE_FILES" _ DIR PREFIX N: empty files PREFIX1..PREFIXN in DIR,
# stopping at the first failure
MAKE_FILES='cd "$1" && for i in $(seq "$3"); do : >"$2$i" || exit 1; done'

img=$T_DIR/grow.img
M=$T_DIR/mnt
make_image "$img" 128M
mount_image "$img" "$M"
check "files before growing" bash -c 'for i in $(seq 20); do head -c 100000 /dev/urandom >"$1/f$i"; done' _ "$M"
_run dd if=/dev/urandom of="$M/fill" bs=1M count=200 status=none
check_sh "the 128 MiB image is full (ENOSPC)" '[ "$1" -ne 0 ] && grep -q "No space" <<<"$2"' _ "$T_RC" "$T_OUT"
# the manifest of what is on the image (with the writeback cache, pages
# that hit ENOSPC at writeback are in the page cache only until unmount)
unmount_fs "$M"
mount_image "$img" "$M"
file_manifest "$M" "$T_DIR/before.sum"
check_fail "resize refuses a mounted image" "$RESIZE" "$img" 1G
check_eq "exit status for a mounted image" 5 "$T_RC"
unmount_fs "$M"

check "grow to 1 GiB" "$RESIZE" "$img" 1G
check_eq "the image file is 1 GiB" $((1 << 30)) "$(stat -c %s "$img")"
check_eq "the filesystem has 262144 blocks" 262144 "$(fs_blocks "$img")"
fsck_clean "$img"
mount_image "$img" "$M"
check_range "df shows about 1 GiB" $((900 << 20)) $((1 << 30)) "$(fs_size_bytes "$M")"
check "the old files are intact" bash -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$M" "$T_DIR/before.sum"
check "300 MiB more can be written" dd if=/dev/urandom of="$M/more" bs=1M count=300 conv=fsync status=none
file_manifest "$M" "$T_DIR/after.sum"
unmount_fs "$M"
fsck_clean "$img"

check "grow to 1.5 GiB" "$RESIZE" "$img" 1536M
check "grow to 3 GiB" "$RESIZE" "$img" 3G
check_eq "the filesystem has 786432 blocks" 786432 "$(fs_blocks "$img")"
check "resize to the same size is a no-op" "$RESIZE" "$img" 3G
fsck_clean "$img"

check_fail "resize refuses to shrink" "$RESIZE" "$img" 2G
check_eq "exit status for shrinking" 10 "$T_RC"
check_eq "nothing changed after the refusal" 786432 "$(fs_blocks "$img")"
check_fail "resize refuses a growth the journal cannot give room for" "$RESIZE" "$img" 1000T
check_eq "exit status for too big" 11 "$T_RC"
check_fail "resize refuses a bad SIZE" "$RESIZE" "$img" 12Q
check_eq "exit status for a bad SIZE" 2 "$T_RC"

mount_image "$img" "$M"
check "after growing twice the files are intact" bash -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$M" "$T_DIR/after.sum"
check "write 1 GiB more" dd if=/dev/zero of="$M/gig" bs=1M count=1024 conv=fsync status=none
unmount_fs "$M"
fsck_clean "$img"

# ---- the inode table grows --------------------------------------------------------------
iimg=$T_DIR/inodes.img
make_image "$iimg" 64M
check_eq "64 MiB: 4096 inodes" 4096 "$(fs_inodes "$iimg")"
mount_image "$iimg" "$M"
check "8 MiB of data" dd if=/dev/urandom of="$M/data" bs=1M count=8 conv=fsync status=none
_run bash -c "$MAKE_FILES" _ "$M" a 5000
check_sh "the 4096 inodes run out" '[ "$1" -ne 0 ] && grep -q "No space" <<<"$2"' _ "$T_RC" "$T_OUT"
old_files=$(find "$M" -type f | wc -l)
check_range "about 4096 files" 4090 4095 "$old_files"
file_manifest "$M" "$T_DIR/inodes.sum"
unmount_fs "$M"
check "grow 10x to 640 MiB" "$RESIZE" "$iimg" 640M
check_eq "40960 inodes" 40960 "$(fs_inodes "$iimg")"
fsck_clean "$iimg"
mount_image "$iimg" "$M"
check_range "df -i shows 40960 inodes" 40960 40960 "$(stat -f -c %c "$M")"
check "10000 more files than the old inode count" bash -c "$MAKE_FILES" _ "$M" b 14096
check "the data and the old files are intact" bash -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$M" "$T_DIR/inodes.sum"
unmount_fs "$M"
fsck_clean "$iimg"
mount_image "$iimg" "$M"
check_eq "all files after a remount" $((old_files + 14096)) "$(find "$M" -type f | wc -l)"
check "a new file after a remount" touch "$M/after"
unmount_fs "$M"
fsck_clean "$iimg"
rm -f "$iimg"

# ---- a crash at each step ----------------------------------------------------------------
for step in 1 2 3 4 5 6; do
    cimg=$T_DIR/crash$step.img
    make_image "$cimg" 128M -J 4096
    mount_image "$cimg" "$M"
    check "crash $step: some files" bash -c 'for i in $(seq 5); do head -c 50000 /dev/urandom >"$1/f$i"; done' _ "$M"
    file_manifest "$M" "$T_DIR/crash.sum"
    unmount_fs "$M"
    _run env MMAPFS_RESIZE_STOP_AT=$step "$RESIZE_STOP" "$cimg" 16G
    check_eq "crash $step: the tool stopped after step $step" 99 "$T_RC"
    fsck_clean "$cimg"
    blocks=$(fs_blocks "$cimg")
    check_sh "crash $step: the old or the new size ($blocks blocks)" \
        '[ "$1" = 32768 ] || [ "$1" = 4194304 ]' _ "$blocks"
    inodes=$(fs_inodes "$cimg")
    check_sh "crash $step: the inodes of that size ($inodes)" \
        '{ [ "$1" = 32768 ] && [ "$2" = 8192 ]; } || { [ "$1" = 4194304 ] && [ "$2" = 1048576 ]; }' \
        _ "$blocks" "$inodes"
    mount_image "$cimg" "$M"
    check "crash $step: files intact" bash -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$M" "$T_DIR/crash.sum"
    unmount_fs "$M"
    check "crash $step: a second run finishes" "$RESIZE" "$cimg" 16G
    check_eq "crash $step: grown" 4194304 "$(fs_blocks "$cimg")"
    check_eq "crash $step: inodes grown" 1048576 "$(fs_inodes "$cimg")"
    fsck_clean "$cimg"
    rm -f "$cimg"
done

# ---- a block device ------------------------------------------------------------------------
back=$T_DIR/back.img
truncate -s 256M "$back"
if new_loop "$back" dev; then
    # MMP (the default on a block device): the offline tools claim the
    # block like fsck -y and release it CLEAN (docs/MOUNT.md, "Growing")
    check "mmapfs-resize takes an MMP device's block" sh -c \
        "'$MKFS' -q -f '$dev' && '$RESIZE' '$dev'"
    _run "$FSCK" -n "$dev"
    check_sh "the MMP block is released after mmapfs-resize" \
        '[ "$1" -eq 0 ] && ! grep -q "MMP block is not released" <<<"$0"' "$T_OUT" "$T_RC"
    check "mkfs on the loop device without MMP" "$MKFS" -q -f -O ^mmp "$dev"
    check "grow a device to its own size: nothing to do" "$RESIZE" "$dev"
    check_fail "a device cannot be grown past its size" "$RESIZE" "$dev" 1G
    check_eq "exit status for a too small device" 11 "$T_RC"
    truncate -s 1G "$back"
    check "losetup -c: the device sees the larger file" losetup -c "$dev"
    check "grow the device filesystem to the whole device" "$RESIZE" "$dev"
    check_eq "the device filesystem has 262144 blocks" 262144 "$(fs_blocks "$dev")"
    LM=$T_DIR/lmnt
    mount_image "$dev" "$LM"
    check "write 600 MiB on the grown device" dd if=/dev/zero of="$LM/big" bs=1M count=600 conv=fsync status=none
    unmount_fs "$LM"
    fsck_clean "$dev"
else
    skip "block device variant: no free loop device"
fi

t_finish
