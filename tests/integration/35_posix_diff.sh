#!/usr/bin/env bash
#
# 35_posix_diff.sh — the same system calls on ext4 (loop device, 4 KiB
# blocks) and on mmapfs with and without the writeback cache, compared
# case by case (tests/lib/posix_diff.py): open flags, rename variants
# (NOREPLACE, EXCHANGE, WHITEOUT, over directories, into subdirectories),
# link/unlink/rmdir errors, name, symlink and path lengths, ELOOP, which of
# mtime/ctime each operation changes, utimensat, chmod/chown as nobody,
# sticky and setgid directories, set-user-ID/set-group-ID clearing (also
# by root without CAP_FSETID), trusted.* listing without CAP_SYS_ADMIN,
# sparse files and fallocate, SEEK_DATA/SEEK_HOLE, xattr limits and
# flags, ACLs (getfacl), mknod types and d_type, readdir/seekdir while
# entries change, statvfs, copy_file_range/sendfile/splice, creation
# modes under umasks. The transcripts must be equal line by line.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd setfacl getfacl
export LC_ALL=C
umask 022

DIFF="$T_ROOT/tests/lib/posix_diff.py"
E=$T_DIR/ext4
MW=$T_DIR/mnt-wb
MN=$T_DIR/mnt-nowb
make_image "$T_DIR/wb.img" 512M
make_image "$T_DIR/nowb.img" 512M
mount_image "$T_DIR/wb.img" "$MW" -o allow_other
mount_image "$T_DIR/nowb.img" "$MN" -o allow_other,nowriteback_cache

compare() {
    local c
    chmod 0755 "$E"
    check_eq "ext4 reference has 4 KiB blocks (4095-byte symlinks, 3000-byte xattrs)" \
        4096 "$(stat -f -c %S "$E")"
    for c in $("$PY" "$DIFF" --list); do
        check "$c: as on ext4" "$PY" "$DIFF" "$E" "$MW" "$MN" -k "$c"
    done
}
# 600 MiB: mkfs.ext4 takes 4 KiB blocks from 512 MiB on (sparse file)
EXT4_SIZE=600M on_ext4 "$E" compare

t_finish
