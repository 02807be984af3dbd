#!/usr/bin/env bash
#
# 40_bigfile.sh — large files: a 5 GiB sparse file made by dd seek plus a
# small write, and a 1 GiB sequential write (bs=1M conv=fsync); content
# checked with cmp and sha256, SEEK_DATA/SEEK_HOLE, unmount, fsck -n,
# remount and verify; then rm and df shows the space back (also after a
# remount).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd dd cmp sha256sum
export LC_ALL=C

img=$T_DIR/big.img
M=$T_DIR/mnt
export M
make_image "$img" 8G
mount_image "$img" "$M"
used0=$(fs_used_bytes "$M")
export used0

# A 1 GiB source outside the mount, compared byte for byte afterwards.
src=$T_DIR/src.bin
check "make a 1 GiB random source file" dd if=/dev/urandom of="$src" bs=1M count=1024 status=none
src_sum=$(sha256sum <"$src")

# ---- 5 GiB sparse ----------------------------------------------------------------------
check "dd seek=5119M: 1 MiB at the end of a 5 GiB file" \
    dd if="$src" of="$M/sparse" bs=1M count=1 seek=5119 status=none
check_eq "sparse file size is 5 GiB" $((5 << 30)) "$(stat -c %s "$M/sparse")"
check_range "sparse file uses about 1 MiB" $((1 << 20)) $((2 << 20)) $(($(stat -c %b "$M/sparse") * 512))
check_sh "the last MiB holds the data" 'cmp <(tail -c $((1 << 20)) "$M/sparse") <(head -c $((1 << 20)) "$0")' "$src"
check_sh "the hole before it reads as zeros (first and around 4 GiB)" \
    'cmp <(head -c $((8 << 20)) "$M/sparse") <(head -c $((8 << 20)) /dev/zero) &&
     cmp <(dd if="$M/sparse" bs=1M skip=4095 count=2 status=none) <(head -c $((2 << 20)) /dev/zero)'
check_errno "SEEK_DATA/SEEK_HOLE on the 5 GiB sparse file" OK "
fd = os.open('$M/sparse', os.O_RDONLY)
expect(os.lseek(fd, 0, os.SEEK_HOLE) == 0, 'hole at 0')
d = os.lseek(fd, 0, os.SEEK_DATA)
expect(d == 5119 << 20, 'data at %d, expected %d' % (d, 5119 << 20))
h = os.lseek(fd, d, os.SEEK_HOLE)
expect(h == 5 << 30, 'hole (EOF) at %d' % h)"

# ---- 1 GiB sequential ------------------------------------------------------------------
start=$SECONDS
check "dd 1 GiB bs=1M conv=fsync into the mount" dd if="$src" of="$M/seq" bs=1M conv=fsync status=none
echo "   (1 GiB write took $((SECONDS - start))s)"
check "cmp of the 1 GiB file" cmp "$src" "$M/seq"
check_range "st_blocks covers 1 GiB" $((1 << 30)) $(((1 << 30) + (8 << 20))) $(($(stat -c %b "$M/seq") * 512))
used1=$(fs_used_bytes "$M")
check_range "df used grew by about 1 GiB + 1 MiB" $((1 << 30)) $(((1 << 30) + (64 << 20))) $((used1 - used0))
check "overwrite 16 MiB in the middle (conv=notrunc)" \
    dd if=/dev/zero of="$M/seq" bs=1M seek=500 count=16 conv=notrunc,fsync status=none
check_eq "overwrite did not change the size" $((1 << 30)) "$(stat -c %s "$M/seq")"
check "same overwrite on the source" dd if=/dev/zero of="$src" bs=1M seek=500 count=16 conv=notrunc status=none
src_sum=$(sha256sum <"$src")
check_eq "sha256 after the overwrite" "$src_sum" "$(sha256sum <"$M/seq")"

# ---- unmount, fsck, remount ------------------------------------------------------------
unmount_fs "$M"
fsck_clean "$img"
mount_image "$img" "$M"
check_eq "sha256 of the 1 GiB file after remount" "$src_sum" "$(sha256sum <"$M/seq")"
check_eq "sparse size after remount" $((5 << 30)) "$(stat -c %s "$M/sparse")"
check_sh "sparse file's data and holes after remount" \
    'cmp <(tail -c $((1 << 20)) "$M/sparse") <(head -c $((1 << 20)) "$0") &&
     cmp <(dd if="$M/sparse" bs=1M skip=5000 count=119 status=none) <(head -c $((119 << 20)) /dev/zero)' "$src"
check_errno "SEEK_DATA after remount" OK "
fd = os.open('$M/sparse', os.O_RDONLY)
expect(os.lseek(fd, 0, os.SEEK_DATA) == 5119 << 20, 'data offset')"

# ---- rm gives the space back ----------------------------------------------------------------
check "rm the big files" rm "$M/seq" "$M/sparse"
wait_until "df used back to where it started (+-4 MiB)" 30 \
    '[ $(( $(stat -f -c "%S * (%b - %f)" "$M") )) -le $((used0 + (4 << 20))) ]'
unmount_fs "$M"
fsck_clean "$img" "fsck.mmapfs -n clean after rm"
mount_image "$img" "$M"
check_range "space still free after remount" 0 $((used0 + (4 << 20))) "$(fs_used_bytes "$M")"
check_eq "the mount is empty again (but lost+found)" "" "$(ls "$M" | grep -v '^lost+found$' || true)"
t_finish
