#!/usr/bin/env bash
#
# 64_discard.sh — freed blocks go back to the storage.
#
#  1. -o discard: a big file and many small
#     ones written, `du` of the image grows; rm of the big file and of the
#     small ones, then the image's `du` shrinks once the freeing transaction
#     commits. The files that stay keep their bytes (sha256), fsck clean.
#  2. -o nodiscard (the default): rm leaves the image's allocation as it is; the offline
#     mmapfs-trim gives it back; fsck clean, files intact.
#  3. A loop device over a sparse file, mounted with -o discard: BLKDISCARD
#     reaches the loop driver, which punches the backing file.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd du sha256sum dd
export LC_ALL=C
TRIM="$T_BUILD/mmapfs-trim"

# allocated KiB of a file
alloc_kib() { du -k "$1" | cut -f1; }
export -f alloc_kib

img=$T_DIR/disk.img
M=$T_DIR/mnt
make_image "$img" 1G
mount_image "$img" "$M" -o discard
check "keep: 40 files of 64 KiB" bash -c 'for i in $(seq 40); do head -c 65536 /dev/urandom >"$1/keep$i"; done' _ "$M"
file_manifest "$M" "$T_DIR/keep.sum"
check "write a 200 MiB file" dd if=/dev/urandom of="$M/big" bs=1M count=200 conv=fsync status=none
check "500 small files" bash -c 'mkdir "$1/small"; for i in $(seq 500); do head -c 8192 /dev/urandom >"$1/small/f$i"; done; sync' _ "$M"
sync
full=$(alloc_kib "$img")
check_range "the image holds the data (du, KiB)" $((200 * 1024)) $((400 * 1024)) "$full"
check "rm the big file" rm "$M/big"
check "rm -r the small files" rm -r "$M/small"
sync
export img full
wait_until "du of the image shrinks by the 200 MiB after rm (discard)" 30 \
    '[ $(alloc_kib "$img") -le $((full - 190 * 1024)) ]'
check "the remaining files are intact" bash -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$M" "$T_DIR/keep.sum"
dstat=$(getfattr --only-values -n trusted.mmapfs.metrics "$M" 2>/dev/null | awk '$1=="mmio_discard_bytes"{print $2}')
check_range "mmio_discard_bytes counts what was given back" $((200 << 20)) $((1 << 30)) "${dstat:-0}"
unmount_fs "$M"
fsck_clean "$img"
mount_image "$img" "$M" -o discard
check "after remount the remaining files are intact" bash -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$M" "$T_DIR/keep.sum"
unmount_fs "$M"

# ---- nodiscard, then the offline trim ----------------------------------------------------
mount_image "$img" "$M" -o nodiscard
check "nodiscard: write a 100 MiB file" dd if=/dev/urandom of="$M/big2" bs=1M count=100 conv=fsync status=none
sync
before=$(alloc_kib "$img")
check "nodiscard: rm it" rm "$M/big2"
sync
# commit the removal (fsync of the directory) and wait until its blocks
# leave the pending list: that is where a discard would have happened
export MSTAT M
check "nodiscard: fsync the directory" "$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$M"
wait_until "nodiscard: the removed blocks are released (fs_blocks_pending_free 0)" 30 \
    '[ "$("$MSTAT" "$M" | awk '"'"'$1 == "fs_blocks_pending_free" { print $2 }'"'"')" = 0 ]'
check_eq "nodiscard: nothing discarded (mmio_discard_bytes)" 0 \
    "$("$MSTAT" "$M" | awk '$1 == "mmio_discard_bytes" { print $2 }')"
after=$(alloc_kib "$img")
check_range "nodiscard: du of the image does not shrink" $((before - 1024)) $((before + 1024)) "$after"
check_fail "mmapfs-trim refuses a mounted image" "$TRIM" "$img"
unmount_fs "$M"
check "mmapfs-trim of the unmounted image" "$TRIM" -v "$img"
trimmed=$(alloc_kib "$img")
check_range "after mmapfs-trim du shrinks by the 100 MiB" 0 $((after - 95 * 1024)) "$trimmed"
fsck_clean "$img"
mount_image "$img" "$M"
check "after trim the remaining files are intact" bash -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$M" "$T_DIR/keep.sum"
unmount_fs "$M"

# ---- a loop device --------------------------------------------------------------------------
back=$T_DIR/back.img
truncate -s 512M "$back"
if new_loop "$back" dev; then
    check "mkfs on the loop device" "$MKFS" -q -f "$dev"
    LM=$T_DIR/lmnt
    mount_image "$dev" "$LM" -o discard
    check "loop: write 100 MiB" dd if=/dev/urandom of="$LM/big" bs=1M count=100 conv=fsync status=none
    check "loop: keep a file" bash -c 'head -c 1000000 /dev/urandom >"$1/keep"; sha256sum "$1/keep" | cut -d" " -f1 >"$2"' _ "$LM" "$T_DIR/lkeep.sum"
    sync
    lfull=$(alloc_kib "$back")
    export back lfull
    check "loop: rm" rm "$LM/big"
    sync
    wait_until "loop: the backing file shrinks (BLKDISCARD reached the loop driver)" 30 \
        '[ $(alloc_kib "$back") -le $((lfull - 90 * 1024)) ]'
    check_eq "loop: the kept file is intact" "$(cat "$T_DIR/lkeep.sum")" "$(sha256sum "$LM/keep" | cut -d' ' -f1)"
    unmount_fs "$LM"
    fsck_clean "$dev"
else
    skip "loop device variant: no free loop device"
fi

t_finish
