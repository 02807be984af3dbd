#!/usr/bin/env bash
#
# 92_reformat.sh — mkfs.mmapfs -f over an image file that held an mmapfs
# a moment ago leaves no record of it that looks live.
#
# mkfs does not write the inode table, and fsck and the inode allocator
# take a record with links, a type and a good checksum for live if it was
# created at most a second before mkfs_time (slack for the kernel's coarse
# clock). Files created right before the unmount and an immediate reformat
# fall in that second: fsck -n of the fresh image reported "inode N in use
# but free in the inode bitmap" (exit 4), and the first create on it
# marked the image as damaged. mkfs now punches the inode table of an
# existing image file (src/tools/mkfs.c, clear_inode_table); on a block
# device (a loop device here), whose table it does not clear, it waits
# until its mkfs_time is 2 s past the old filesystem's last use
# (outwait_old_records).
#
# For a sparse and a preallocated image and a block device, ROUNDS (default 3) times: mount,
# create 12 files and remove 4, unmount, reformat at once; fsck -n must be
# clean; then mount, create 12 files, unmount: fsck -n clean again (no
# damage mark). The rounds whose last create and reformat fell within the
# same second or the next (the window in which the old records passed as
# live) are counted in the output: a round outside it proves nothing.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"

rounds=${ROUNDS:-3}
img=$T_DIR/re.img
M=$T_DIR/mnt

# reformat TARGET: mkfs as the kind asks
reformat() {
    case $kind in
        blockdev) mkfs_target "$1" ;;
        *) make_image "$1" 64M $opt ;;
    esac
}

loop=""
truncate -s 64M "$T_DIR/dev.img"
new_loop "$T_DIR/dev.img" loop || loop=""
for kind in sparse preallocated blockdev; do
    opt=--sparse
    [ "$kind" = sparse ] || opt=""
    if [ "$kind" = blockdev ]; then
        if [ -z "$loop" ]; then
            echo "   blockdev: skipped: losetup does not work here"
            continue
        fi
        img=$loop
    fi
    reformat "$img"
    within=0
    for r in $(seq "$rounds"); do
        mount_image "$img" "$M"
        for i in $(seq 12); do echo "round $r file $i" > "$M/f$i"; done
        rm -f "$M/f3" "$M/f6" "$M/f9" "$M/f12"
        t0=$(date +%s)
        unmount_fs "$M" || break
        reformat "$img"
        [ $(( $(date +%s) - t0 )) -gt 1 ] || within=$((within + 1))
        fsck_clean "$img" "$kind, round $r: fsck -n clean right after the reformat"
        mount_image "$img" "$M"
        for i in $(seq 12); do echo "new $i" > "$M/n$i"; done
        check_eq "$kind, round $r: the fresh filesystem holds only the new files" \
            "lost+found n1 n10 n11 n12 n2 n3 n4 n5 n6 n7 n8 n9" "$(ls "$M" | sort | tr '\n' ' ' | sed 's/ $//')"
        unmount_fs "$M" || break
        fsck_clean "$img" "$kind, round $r: fsck -n clean after 12 creates (nothing marked damaged)"
    done
    echo "   $kind: $within of $rounds reformats within a second of the last create"
done
t_finish
