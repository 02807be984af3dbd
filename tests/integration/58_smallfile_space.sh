#!/usr/bin/env bash
#
# 58_smallfile_space.sh — small files cost no more than on ext4 (inode-
# resident extents and data, docs/FORMAT.md §6). On a new image: a file of
# a few bytes owns no block (st_blocks 0), a 4 KiB file exactly one
# (8 sectors), a short symlink none, an 8 MiB file with 2 MiB punched out
# 6144 KiB (du -k, as on ext4). `cp -a` of a real tree (/usr/share/doc,
# SPACE_TREE to choose another) takes no more space (df used, before and
# after) on mmapfs than on ext4 with 4 KiB blocks on a loop device in the
# same run. An image made with --no-inode-data (the format before the
# feature) keeps the old representation (a tiny file: data block + tree
# root, 16 sectors), mounts read-write and checks clean.
# In-inode xattrs (docs/FORMAT.md §6, incompat 0x8): an empty file with one
# small user xattr owns no block, a 4 KiB file with one is 8 sectors, a
# one-named-entry ACL needs no block either; more than the inode holds
# takes one xattr block, removing it gives it back. An image made with
# -O ^inode_xattr keeps every xattr in a block (8 sectors more).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd python3 fallocate du

TREE=${SPACE_TREE:-/usr/share/doc}
[ -d "$TREE" ] || skip_script "no $TREE to copy"
img=$T_DIR/disk.img mnt=$T_DIR/mnt E4=$T_DIR/ext4

# blocks512 FILE : st_blocks after the data reached the filesystem.
blocks512() {
    sync "$1"
    stat -c %b "$1"
}

# ---- representation on a new image -----------------------------------------
make_image "$img" 1G
mount_image "$img" "$mnt"
echo hi >"$mnt/tiny"
check_eq "a 3-byte file owns no block (st_blocks)" 0 "$(blocks512 "$mnt/tiny")"
check_eq "the 3-byte file reads back" hi "$(cat "$mnt/tiny")"
head -c 4096 /dev/urandom >"$mnt/f4k"
check_eq "a 4 KiB file is one block (8 sectors)" 8 "$(blocks512 "$mnt/f4k")"
head -c 60 /dev/zero | tr '\0' x >"$mnt/f60"
printf y >>"$mnt/f60"
check_eq "a 61-byte file (grown past the inode) is one block" 8 "$(blocks512 "$mnt/f60")"
check_eq "the 61-byte file reads back" "$(printf '%060dy' 0 | tr 0 x)" "$(cat "$mnt/f60")"
ln -s ../some/target "$mnt/sl"
check_eq "a short symlink owns no block" 0 "$(stat -c %b "$mnt/sl")"
check_eq "the short symlink reads back" ../some/target "$(readlink "$mnt/sl")"
check "8 MiB file" dd if=/dev/urandom of="$mnt/punch" bs=1M count=8 status=none
check "punch 2 MiB out of it" fallocate -p -o 3145728 -l 2097152 "$mnt/punch"
sync "$mnt/punch"
check_eq "8 MiB with a 2 MiB hole: du -k 6144 (as ext4)" 6144 "$(du -k "$mnt/punch" | cut -f1)"
for i in $(seq 1 6); do
    check "write block $i of a sparse file" dd if=/dev/urandom of="$mnt/sparse" bs=4k \
        seek=$((i * 2)) count=1 conv=notrunc status=none
done
check_eq "6 extents: 6 blocks + one tree node" 56 "$(blocks512 "$mnt/sparse")"
check "truncate to 4 extents" truncate -s $((9 * 4096)) "$mnt/sparse"
check_eq "4 extents back in the inode: 4 blocks, no node" 32 "$(blocks512 "$mnt/sparse")"

# ---- in-inode xattrs ----------------------------------------------------------
# "${xattr_cmd[@]}" set|get|rm FILE NAME [VALUE]: os.setxattr & co.; get prints the
# value. A program (check runs it under timeout), not a shell function.
XATTR_PY='import os, sys
op, path, name = sys.argv[1:4]
if op == "set":
    os.setxattr(path, name, sys.argv[4].encode())
elif op == "get":
    print(os.getxattr(path, name).decode())
else:
    os.removexattr(path, name)'
xattr_cmd=(python3 -c "$XATTR_PY")
: >"$mnt/x0"
check "set user.foo=bar on an empty file" "${xattr_cmd[@]}" set "$mnt/x0" user.foo bar
check_eq "an empty file with one small xattr owns no block (st_blocks)" 0 \
    "$(blocks512 "$mnt/x0")"
head -c 4096 /dev/urandom >"$mnt/x4k"
check "set user.foo=bar on a 4 KiB file" "${xattr_cmd[@]}" set "$mnt/x4k" user.foo bar
check_eq "a 4 KiB file with one small xattr is 8 sectors" 8 "$(blocks512 "$mnt/x4k")"
if command -v setfacl >/dev/null; then
    : >"$mnt/xacl"
    check "setfacl -m u:nobody:r (one named entry)" setfacl -m u:nobody:r "$mnt/xacl"
    check_eq "a file with a one-entry ACL owns no block" 0 "$(blocks512 "$mnt/xacl")"
fi
for i in 1 2 3 4 5 6; do
    check "set user.long$i (20 bytes)" "${xattr_cmd[@]}" set "$mnt/x0" "user.long$i" \
        01234567890123456789
done
check_eq "xattrs beyond the inode's room take one block" 8 "$(blocks512 "$mnt/x0")"
for i in 1 2 3 4 5 6; do
    check "remove user.long$i" "${xattr_cmd[@]}" rm "$mnt/x0" "user.long$i"
done
check_eq "the emptied xattr block is freed" 0 "$(blocks512 "$mnt/x0")"
unmount_fs "$mnt"
mount_image "$img" "$mnt"
check_eq "the in-inode xattr reads back after a remount" bar \
    "$("${xattr_cmd[@]}" get "$mnt/x0" user.foo)"
check_eq "the 4 KiB file's xattr reads back" bar "$("${xattr_cmd[@]}" get "$mnt/x4k" user.foo)"
rm -f "$mnt/tiny" "$mnt/f4k" "$mnt/f60" "$mnt/sl" "$mnt/punch" "$mnt/sparse" "$mnt/x0" \
    "$mnt/x4k" "$mnt/xacl"
sync -f "$mnt"

# ---- cp -a of a real tree: mmapfs against ext4 ------------------------------
m0=$(fs_used_bytes "$mnt")
check "cp -a $TREE to mmapfs" timeout -k 5 600 cp -a "$TREE" "$mnt/tree"
sync -f "$mnt"
m1=$(fs_used_bytes "$mnt")
mdu=$(du -sk "$mnt/tree" | cut -f1)
check "the copy on mmapfs is complete" diff -r --no-dereference "$TREE" "$mnt/tree"

e_used=""
e_du=""
ext4_copy() {
    local e0 e1
    e0=$(fs_used_bytes "$E4")
    check "cp -a $TREE to ext4" timeout -k 5 600 cp -a "$TREE" "$E4/tree"
    sync -f "$E4"
    e1=$(fs_used_bytes "$E4")
    e_used=$((e1 - e0))
    e_du=$(du -sk "$E4/tree" | cut -f1)
}
EXT4_SIZE=1G on_ext4 "$E4" ext4_copy
m_used=$((m1 - m0))
t_log "cp -a $TREE: used space mmapfs $((m_used / 1024)) KiB (du -sk $mdu), ext4 $(( ${e_used:-0} / 1024 )) KiB (du -sk ${e_du:-?})"
if [ -n "$e_used" ]; then
    check_range "mmapfs uses no more space than ext4 for the tree (bytes)" 0 "$e_used" "$m_used"
fi
unmount_fs "$mnt"
fsck_clean "$img"

# ---- the format before the feature -------------------------------------------
old=$T_DIR/old.img omnt=$T_DIR/old
make_image "$old" 256M --no-inode-data -O ^inode_xattr
mount_image "$old" "$omnt"
echo hi >"$omnt/tiny"
check_eq "old format: a 3-byte file has a data block and a tree root" 16 \
    "$(blocks512 "$omnt/tiny")"
ln -s ../some/target "$omnt/sl"
check_eq "old format: a short symlink has a block and a tree root" 16 \
    "$(stat -c %b "$omnt/sl")"
check "old format: set user.foo=bar" "${xattr_cmd[@]}" set "$omnt/tiny" user.foo bar
check_eq "old format: the xattr takes a block (16 + 8 sectors)" 24 "$(blocks512 "$omnt/tiny")"
check_sh "old format: small files, growth, truncate" \
    'for i in $(seq 1 20); do echo "$i" >"$1/s$i"; done
     head -c 20000 /dev/urandom >"$1/g" && truncate -s 10 "$1/g"' _ "$omnt"
unmount_fs "$omnt"
fsck_clean "$old" "old-format image: fsck -n clean"
mount_image "$old" "$omnt"
check_eq "old format: read back after remount" hi "$(cat "$omnt/tiny")"
check_eq "old format: the xattr reads back after remount" bar \
    "$("${xattr_cmd[@]}" get "$omnt/tiny" user.foo)"
unmount_fs "$omnt"
t_finish
