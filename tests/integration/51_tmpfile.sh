#!/usr/bin/env bash
#
# 51_tmpfile.sh — open(2) with O_TMPFILE, and linkat(2) of such a file
# (docs/LINUX.md, "O_TMPFILE").
#
# tests/integration/tmpfile.py checks a new O_TMPFILE (no link, its mode,
# its data, no new name in the directory, an inode taken), linkat through
# /proc/self/fd (one link, the data under the new name, later writes
# reaching it, a second link), what cannot be linked (O_TMPFILE|O_EXCL, a
# linked tmpfile unlinked again, a file unlinked while open), the inode
# freed at close when it got no name, EACCES in a directory the caller
# cannot write, EPERM in a removed directory, and the group of a
# set-group-ID directory. It runs on ext4
# on a loop device (the reference; skipped where loop devices or mkfs.ext4
# are missing) and on mmapfs, which must give the same lines.
#
# Then a crash: a tmpfile named and fsynced, another held open with 4 MB,
# kill -9 of the daemon. The named one keeps its data; the held one is an
# orphan the next mount frees (inodes and blocks as before it).
#
# Without the device I/O's translation (src/fuse/devio.c) libfuse 3.14
# answers the kernel's FUSE_TMPFILE with ENOSYS and every O_TMPFILE fails
# with EOPNOTSUPP.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd df md5sum
export LC_ALL=C

TMPFILE_PY=$T_ROOT/tests/integration/tmpfile.py
E4=$T_DIR/ext4
umount_first "$E4"

# ---- ext4 on a loop device: the reference ------------------------------------------
on_ext4 "$E4" checker_run ext4 "$PY" "$TMPFILE_PY" "$E4"

# ---- mmapfs ----------------------------------------------------------------------
img=$T_DIR/tmpfile.img
M=$T_DIR/mnt
make_image "$img" 256M
mount_image "$img" "$M"
checker_run mmapfs "$PY" "$TMPFILE_PY" "$M"
unmount_fs "$M"
fsck_clean "$img"

checker_compare ext4 mmapfs

# ---- a crash: one tmpfile named and fsynced, one held open -----------------------
mount_fg "$img" "$M" "$T_DIR/daemon.log" || t_finish
dpid=$T_DPID
used0=$(df --output=iused,used "$M" | tail -n 1)
check "a tmpfile named as 'kept' and fsynced" "$PY" "$TMPFILE_PY" --name "$M" kept 500000
kept_sum=$(md5sum <"$M/kept")
"$PY" "$TMPFILE_PY" --hold "$M" 4000000 >"$T_DIR/hold.out" 2>&1 &
hold=$!
wait_until "another tmpfile written and held open" 30 "grep -q held '$T_DIR/hold.out'"
check_eq "the held one takes an inode of its own" \
    "$(($(echo "$used0" | awk '{print $1}') + 2))" "$(df --output=iused "$M" | tail -n 1 | tr -d ' ')"
crash_daemon "$dpid" "$M" "$img" "kill -9 with an O_TMPFILE open"
kill "$hold" 2>/dev/null || true
wait "$hold" 2>/dev/null || true
mount_image "$img" "$M"
check_eq "after the next mount: the held tmpfile is gone, 'kept' stays" \
    "$(($(echo "$used0" | awk '{print $1}') + 1))" "$(df --output=iused "$M" | tail -n 1 | tr -d ' ')"
check_eq "'kept' reads what was written" "$kept_sum" "$(md5sum <"$M/kept")"
rm "$M/kept"
# (the kernel's FORGET of the removed file, which frees it, comes a little later)
wait_until "with 'kept' removed, inodes and blocks in use are as before ($used0)" 10 \
    "[ \"\$(df --output=iused,used '$M' | tail -n 1 | tr -s ' ')\" = '$(echo "$used0" | tr -s ' ')' ]"
unmount_fs "$M"
fsck_clean "$img"
t_finish
