#!/usr/bin/env bash
#
# 65_metrics_file.sh — -o metrics=PATH: the Prometheus text of the mount
# written to PATH every metrics_interval seconds, atomically, and at
# unmount; a missing directory refused at mount with a clear message.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
export LC_ALL=C

img=$T_DIR/disk.img
M=$T_DIR/mnt
P=$T_DIR/textfile
mkdir -p "$P" "$M"
make_image "$img" 256M

_run "$MMAPFS" "$img" "$M" -o metrics="$T_DIR/no-such-dir/mmapfs.prom"
check_eq "metrics= with a missing directory: usage error (exit 2)" 2 "$T_RC"
check_sh "the message names the missing directory" 'grep -q "does not exist" <<<"$1"' _ "$T_OUT"
check_fail "nothing was mounted" mountpoint -q "$M"
_run "$MMAPFS" "$img" "$M" -o metrics="$P"
check_eq "metrics= naming a directory: usage error (exit 2)" 2 "$T_RC"
_run "$MMAPFS" "$img" "$M" -o metrics="$P/m.prom",metrics_interval=0
check_eq "metrics_interval=0: usage error (exit 2)" 2 "$T_RC"

mount_image "$img" "$M" -o metrics="$P/m.prom",metrics_interval=1
check "the file exists right after the mount" test -s "$P/m.prom"
check "it is Prometheus text: HELP, TYPE, samples with the mountpoint label" \
    bash -c 'grep -q "^# TYPE mmapfs_fs_blocks_free gauge" "$1" && grep -q "^mmapfs_jnl_commits_total{mountpoint=\"$2\"} " "$1"' _ "$P/m.prom" "$M"
check "write 8 MiB" dd if=/dev/urandom of="$M/f" bs=1M count=8 conv=fsync status=none
export P
wait_until "the file is updated: fs_write_bytes reaches 8 MiB" 10 \
    'awk "\$1 ~ /^mmapfs_fs_write_bytes_total/ {exit !(\$2 >= 8388608)}" "$P/m.prom"'
check_eq "the same text as mmapfs-stat --prometheus (metric names)" \
    "$("$MSTAT" --prometheus "$M" | awk '!/^#/{sub(/\{.*/, ""); print}' | sort -u | grep -v fuse_requests | md5sum)" \
    "$(awk '!/^#/{sub(/\{.*/, ""); print}' "$P/m.prom" | sort -u | grep -v fuse_requests | md5sum)"
check_fail "no PATH.tmp left behind" test -e "$P/m.prom.tmp"
check "rm the file" rm "$M/f"
unmount_fs "$M"
check "after unmount the file holds the final counters (fs_inodes_freed 1)" \
    bash -c 'awk "\$1 ~ /^mmapfs_fs_inodes_freed_total/ {found=1; exit !(\$2 >= 1)} END {exit !found}" "$1"' _ "$P/m.prom"

# an hour between updates: only the mount's and the unmount's writes happen
mount_image "$img" "$M" -o metrics="$P/m2.prom",metrics_interval=3600
check "written at mount: no data written yet" \
    bash -c 'awk "\$1 ~ /^mmapfs_fs_write_bytes_total/ {found=1; exit !(\$2 == 0)} END {exit !found}" "$1"' _ "$P/m2.prom"
check "write 4 MiB" dd if=/dev/urandom of="$M/g" bs=1M count=4 conv=fsync status=none
unmount_fs "$M"
check "the unmount's write has the 4 MiB" \
    bash -c 'awk "\$1 ~ /^mmapfs_fs_write_bytes_total/ {found=1; exit !(\$2 >= 4194304)} END {exit !found}" "$1"' _ "$P/m2.prom"
t_finish
