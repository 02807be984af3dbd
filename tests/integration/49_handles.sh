#!/usr/bin/env bash
#
# 49_handles.sh — file handles (name_to_handle_at / open_by_handle_at), as
# NFS export and overlayfs (index, nfs_export) use them.
#
# tests/integration/handles.c (compiled here with cc) takes the handles of
# a file, a directory and a subdirectory, drops the kernel's caches so that
# the kernel has forgotten the inodes (FORGET sent to the daemon), and
# opens them again by handle: the kernel then asks the daemon LOOKUP(ino,
# ".") and, to reconnect a directory, LOOKUP(ino, ".."). It reads the file,
# opens a name relative to the directory, checks the subdirectory's "..",
# and checks ESTALE for a handle of an inode number not in use, of a
# deleted file, and of a deleted file whose inode number was reused (the
# generation differs), with the new inode cached and after dropping the
# caches. A handle taken before an unmount opens the file after the next
# mount, and gives ESTALE once the file is deleted. Runs on mmapfs with the default timeouts, on mmapfs with
# entry_timeout=0,attr_timeout=0, and on ext4 on a loop device (the
# reference; skipped where loop devices or mkfs.ext4 are missing).
#
# Without FUSE_CAP_EXPORT_SUPPORT every open after the caches were dropped
# fails with ESTALE.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd cc
export LC_ALL=C

HANDLES=$T_DIR/handles
compile_c "$HANDLES" "$T_ROOT/tests/integration/handles.c" -Wextra

# The ext4 reference mount is not a FUSE mount: unmount it before the
# common trap detaches the loop device under it.
E4=$T_DIR/ext4
umount_first "$E4"

# handles_on DESC DIR : runs handles.c in DIR; every line it prints becomes
# a result (ok / FAIL / skip), "info" lines are shown.
handles_on() {
    local desc=$1 dir=$2
    _run "$HANDLES" "$dir"
    results_from "$desc" "$T_OUT"
    case "$T_RC" in
    0 | 1) ;;
    *) fail "$desc: handles exited $T_RC" "$(printf '%s\n' "$T_OUT" | tail -n 3)" ;;
    esac
    HANDLES_LOG+="== $desc"$'\n'"$T_OUT"$'\n'
}
HANDLES_LOG=""

# ---- ext4 on a loop device: the reference ------------------------------------------
on_ext4 "$E4" handles_on ext4 "$E4"

# ---- mmapfs ----------------------------------------------------------------------
img=$T_DIR/handles.img
M=$T_DIR/mnt
make_image "$img" 256M
mount_image "$img" "$M"
handles_on mmapfs "$M"
echo "kept across a remount" >"$M/kept"
check "save the handle of a file" "$HANDLES" --save "$M/kept" "$T_DIR/kept.handle"
unmount_fs "$M"
mount_image "$img" "$M"
check "open a handle taken before the remount" "$HANDLES" --open "$M" "$T_DIR/kept.handle"
check_eq "it reads the file's content" "kept across a remount" "$T_OUT"
rm "$M/kept"
echo "another file" >"$M/other"
check_fail "after the file was deleted (number reused or not): fails" \
    "$HANDLES" --open "$M" "$T_DIR/kept.handle"
check_eq "with ESTALE" "open_by_handle_at: Stale file handle" "$T_OUT"
unmount_fs "$M"
mount_image "$img" "$M" -o entry_timeout=0,attr_timeout=0
mkdir -p "$M/t0"
handles_on "mmapfs timeouts 0" "$M/t0"
unmount_fs "$M"

# same results on both (the lines without numbers)
ext4_lines=$(printf '%s' "$HANDLES_LOG" | awk '/^== /{w=($2=="ext4")} w && /^(ok|FAIL) /' | sort)
mmapfs_lines=$(printf '%s' "$HANDLES_LOG" | awk '/^== /{w=($2=="mmapfs" && NF==2)} w && /^(ok|FAIL) /' | sort)
if [ -n "$ext4_lines" ]; then
    check_eq "mmapfs gives the results ext4 gives" "$ext4_lines" "$mmapfs_lines"
fi
t_finish
