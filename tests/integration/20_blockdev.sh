#!/usr/bin/env bash
#
# 20_blockdev.sh — mmapfs on a block device: a loop device over a 256 MiB
# file; mkfs.mmapfs takes the size from the device; mount, write and verify
# files, unmount, fsck -n, remount (with the pread backend too) and verify,
# detach; then a read-only loop device (losetup -r): read-write mount,
# mmapfs-trim and mmapfs-resize refused with exit 3, -o ro mounts.
# Skipped only where losetup does not work.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd losetup blockdev sha256sum
export LC_ALL=C

backing=$T_DIR/backing.bin
truncate -s 256M "$backing"
dev=""
if ! new_loop "$backing" dev; then
    skip_script "losetup --find --show does not work here (no loop devices?)"
fi
echo "loop device: $dev"
check_eq "device size" $((256 << 20)) "$(blockdev --getsize64 "$dev")"

mkfs_target "$dev"
pass "mkfs.mmapfs $dev (size from the device)"
check_eq "mkfs on the device leaves the backing file's size alone" $((256 << 20)) "$(stat -c %s "$backing")"

M=$T_DIR/mnt
export M
mount_image "$dev" "$M"
size=$(fs_size_bytes "$M")
check_range "statfs size comes from the device (256 MiB)" $((200 << 20)) $((256 << 20)) "$size"
check_eq "mounted from the device" "$dev" "$(awk -v m="$M" '$2 == m { print $1 }' /proc/mounts | head -1)"

# ---- write -------------------------------------------------------------------------------
check "write 40 MiB of random data" dd if=/dev/urandom of="$M/big" bs=1M count=40 conv=fsync status=none
check_sh "write 300 small files in 10 directories" '
    for d in $(seq 1 10); do
        mkdir -p "$M/dir$d"
        for f in $(seq 1 30); do head -c $((d * 997 + f * 13)) /dev/urandom > "$M/dir$d/f$f"; done
    done'
check "sparse file with data at 100 MiB" dd if=/dev/urandom of="$M/sparse" bs=4k count=1 seek=25600 status=none
check "symlink" ln -s dir1/f1 "$M/link"
check "hard link" ln "$M/big" "$M/big.hard"
check_sh "fsync from several writers at once" '
    for i in 1 2 3 4; do dd if=/dev/urandom of="$M/par$i" bs=64k count=16 conv=fsync status=none & done; wait'
file_manifest "$M" "$T_DIR/sums"
meta_manifest "$M" "$T_DIR/meta.before"
check_eq "manifest has every file" 307 "$(wc -l <"$T_DIR/sums")"
check_sh "read back before unmount" 'cd "$M" && sha256sum --quiet -c "$0"' "$T_DIR/sums"

# ---- unmount, fsck, remount with each backend -------------------------------------------
unmount_fs "$M"
fsck_clean "$dev"
mount_image "$dev" "$M"
check_sh "every file's sha256 after remount" 'cd "$M" && sha256sum --quiet -c "$0"' "$T_DIR/sums"
meta_manifest "$M" "$T_DIR/meta.after"
check "metadata after remount" diff "$T_DIR/meta.before" "$T_DIR/meta.after"
check "rm some files" rm -r "$M/dir1" "$M/big"
check_eq "hard link survives rm of the other name" 1 "$(stat -c %h "$M/big.hard")"
unmount_fs "$M"
fsck_clean "$dev" "fsck.mmapfs -n clean after rm"

mount_image "$dev" "$M" -o io=pread
check_fail "removed directory stays removed" stat "$M/dir1"
check_sh "remaining files verify with io=pread" \
    'cd "$M" && grep -v " \./dir1/" "$0" | sed "s| \./big$| ./big.hard|" | sha256sum --quiet -c -' "$T_DIR/sums"
check "write with io=pread" dd if=/dev/urandom of="$M/pread" bs=1M count=8 conv=fsync status=none
sum=$(sha256sum <"$M/pread")
unmount_fs "$M"
fsck_clean "$dev" "fsck.mmapfs -n clean after io=pread"

mount_image "$dev" "$M" -o ro
check_eq "file written with io=pread, read back with mmap (ro)" "$sum" "$(sha256sum <"$M/pread")"
check_fail "writing to a read-only mount fails" touch "$M/nope"
unmount_fs "$M"
fsck_clean "$dev" "fsck.mmapfs -n clean after a read-only mount"

# ---- one image under two names: the file and a loop device over it -------------------
# The lock (flock) is per name, so without MMP (the default of an image
# file) a mount of the file did not keep a tool or a second mount off a loop
# device over it, nor the other way round: fsck.mmapfs -y replayed the live
# journal, mkfs.mmapfs -f formatted the mounted filesystem, a second mount
# succeeded (found by hand).
twin=$T_DIR/twin.img
check "mkfs.mmapfs on an image file (no MMP)" "$MKFS" -q -s 64M -O ^mmp "$twin"
tdev=""
new_loop "$twin" tdev || fail "losetup $twin"
mount_image "$twin" "$M"
check "a file on the mounted image" dd if=/dev/urandom of="$M/f" bs=1M count=2 conv=fsync status=none
tsum=$(sha256sum <"$M/f")
rc=0; "$FSCK" -y "$tdev" >/dev/null 2>&1 || rc=$?
check_eq "file mounted: fsck.mmapfs -y on the loop device over it refused (8)" 8 "$rc"
rc=0; "$FSCK" -n "$tdev" >"$T_DIR/fsck-n.out" 2>&1 || rc=$?
check_sh "file mounted: fsck.mmapfs -n on the loop device warns it is in use" \
    'grep -q "warning: in use" "$0"' "$T_DIR/fsck-n.out"
for tool in mmapfs-trim mmapfs-resize; do
    rc=0; "$T_BUILD/$tool" "$tdev" >/dev/null 2>&1 || rc=$?
    check_eq "file mounted: $tool on the loop device over it refused (5)" 5 "$rc"
done
rc=0; "$MKFS" -q -f "$tdev" >/dev/null 2>&1 || rc=$?
check_eq "file mounted: mkfs.mmapfs -f on the loop device over it refused (5)" 5 "$rc"
mkdir -p "$T_DIR/mnt2"
"$MMAPFS" "$tdev" "$T_DIR/mnt2" >/dev/null 2>&1 || true
check_fail "file mounted: the loop device over it is not mounted a second time" \
    mountpoint -q "$T_DIR/mnt2"
if mountpoint -q "$T_DIR/mnt2"; then unmount_fs "$T_DIR/mnt2"; fi
check_eq "file mounted: its file is intact" "$tsum" "$(sha256sum <"$M/f")"
unmount_fs "$M"
mount_image "$tdev" "$M"
rc=0; "$FSCK" -y "$twin" >/dev/null 2>&1 || rc=$?
check_eq "device mounted: fsck.mmapfs -y on its backing file refused (8)" 8 "$rc"
rc=0; "$T_BUILD/mmapfs-trim" "$twin" >/dev/null 2>&1 || rc=$?
check_eq "device mounted: mmapfs-trim on its backing file refused (5)" 5 "$rc"
check_eq "device mounted: its file is intact" "$tsum" "$(sha256sum <"$M/f")"
unmount_fs "$M"
fsck_clean "$twin" "fsck.mmapfs -n clean after the refusals"
fsck_clean "$tdev" "fsck.mmapfs -n clean on the loop device too"
drop_loop "$tdev" || fail "losetup -d $tdev"

# ---- an image file under a kernel mount through a loop device -----------------------
# mkfs.ext4 refuses a file whose loop device is mounted; mkfs.mmapfs -f
# formatted it under the mounted ext4 (found by hand)
mkfs_over_loop_mount() {
    local rc=0
    "$MKFS" -q -f "$T_DIR/ext4.img" >"$T_DIR/mkfs.out" 2>&1 || rc=$?
    check_eq "ext4 mounted through a loop device: mkfs.mmapfs -f on its file refused (5)" \
        5 "$rc"
    check_sh "the refusal says it is in use" 'grep -q "in use" "$0"' "$T_DIR/mkfs.out"
    check_eq "the ext4 file system still has its magic" "53ef" \
        "$(od -An -tx1 -j 1080 -N 2 "$T_DIR/ext4.img" | tr -d " ")"
}
on_ext4 "$T_DIR/ext4mnt" mkfs_over_loop_mount

# ---- a read-only device (losetup -r): refused read-write with exit 3, -o ro works ---------
drop_loop "$dev" || fail "losetup -d $dev"
rodev=$(timeout -k 5 30 losetup --find --show -r "$backing")
T_LOOPS+=("$rodev")
check_eq "losetup -r gives a read-only device" 1 "$(blockdev --getro "$rodev")"
for tool in mmapfs-trim mmapfs-resize fsck.mmapfs; do
    args=("$rodev")
    [ "$tool" != fsck.mmapfs ] || args=(-y "$rodev")
    rc=0
    out=$("$T_BUILD/$tool" "${args[@]}" 2>&1) || rc=$?
    # fsck.mmapfs -y has its own status for "cannot repair" (8); the
    # offline tools say 3 (cannot be opened), not 4 (not mmapfs), and
    # name the cause instead of the failed shared mapping's EINVAL
    want=3
    [ "$tool" != fsck.mmapfs ] || want=8
    check_eq "$tool on a read-only device: exit $want" "$want" "$rc"
    check_sh "$tool on a read-only device says it is read-only" \
        'grep -q "Read-only file system" <<<"$0"' "$out"
done
rc=0
"$MMAPFS" "$rodev" "$M" >/dev/null 2>&1 || rc=$?
check_eq "read-write mount of a read-only device refused (exit 3)" 3 "$rc"
mount_image "$rodev" "$M" -o ro
check_eq "read-only mount of the read-only device reads the file" "$sum" "$(sha256sum <"$M/pread")"
unmount_fs "$M"
fsck_clean "$rodev" "fsck.mmapfs -n clean on the read-only device"

t_finish
