#!/usr/bin/env bash
#
# 88_btime.sh — the birth time statx(2) reports (STATX_BTIME), as `stat`
# shows it (docs/LINUX.md, "Birth time").
#
# tests/integration/btime.py checks that a new file has one, equal to its
# creation time (within the kernel's coarse clock tick), that a write,
# chmod, utimes, rename and link leave it, and that a new directory, FIFO,
# symlink and O_TMPFILE file have one. It runs on ext4 on a loop device
# (the reference; skipped where loop devices or mkfs.ext4 are missing) and
# on mmapfs, which must give the same lines. Then: the birth time is the
# same after an unmount and mount (it comes from the inode record). Last,
# on a mount with attr_timeout=0 (every statx a FUSE_STATX, every stat a
# GETATTR), two processes statx and two stat 200 files 50 times at once:
# no birth time missing or changing, no size wrong (the daemon pairs each
# STATX with its reply per thread, src/fuse/devio.c).
#
# Without the device I/O's translation (src/fuse/devio.c) libfuse 3.14
# answers the kernel's FUSE_STATX with ENOSYS and statx reports no birth
# time (`stat` prints "Birth: -").
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd stat
export LC_ALL=C

BTIME_PY=$T_ROOT/tests/integration/btime.py
E4=$T_DIR/ext4
umount_first "$E4"

on_ext4 "$E4" checker_run ext4 "$PY" "$BTIME_PY" "$E4"

img=$T_DIR/btime.img
M=$T_DIR/mnt
make_image "$img" 64M
mount_image "$img" "$M"
checker_run mmapfs "$PY" "$BTIME_PY" "$M"
check "stat prints the birth time" stat -c %w "$M/bt/kept"
check_sh "(not '-')" '[ "$1" != - ]' _ "$T_OUT"
check "btime.py --show of bt/kept" "$PY" "$BTIME_PY" --show "$M/bt/kept"
before=$T_OUT
unmount_fs "$M"
mount_image "$img" "$M"
check "btime.py --show after the remount" "$PY" "$BTIME_PY" --show "$M/bt/kept"
check_eq "the same birth time after an unmount and mount" "$before" "$T_OUT"
unmount_fs "$M"
fsck_clean "$img"

mount_image "$img" "$M" -o attr_timeout=0
mkdir "$M/h"
for i in $(seq 200); do : >"$M/h/f$i"; done
for k in 1 2 3 4; do
    timeout 120 "$PY" "$BTIME_PY" --hammer "$M/h" "$k" 50 >"$T_DIR/hammer.$k" 2>&1 &
done
wait
for k in 1 2 3 4; do
    check_eq "hammer $k (statx with the birth time: $((k % 2)))" "bad 0" "$(cat "$T_DIR/hammer.$k")"
done
unmount_fs "$M"
fsck_clean "$img"

checker_compare ext4 mmapfs
t_finish
