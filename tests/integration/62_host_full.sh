#!/usr/bin/env bash
#
# 62_host_full.sh — a sparse image on a host filesystem that fills up.
#
# A 40 MiB tmpfs holds a 256 MiB --sparse image (mkfs allocates only its
# journal and metadata region) and a 4 MiB host file that can be deleted
# later to give space back. The mount fills: files are written until the
# HOST is full, long before the image is. Writers must get ENOSPC (or
# EIO), never a dead daemon (ENOTCONN); the mount stays usable: ls, stat,
# reading what was written, rm (deletes commit: the journal does not need
# host space), mkdir; with the host still full, a write and a create take
# the blocks and the inode that rm freed. Then host space is freed (the
# host file and some of the filesystem's files), writes work again,
# unmount, fsck.mmapfs -n is clean, a remount works, and every file whose
# write and fsync succeeded is intact. -o nowriteback_cache, so that
# ENOSPC comes from write(2) itself (60_enospc.sh covers the writeback
# cache); then the default mount: an endless writer stops near the host's
# full point. docs/ROBUSTNESS.md.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd sha256sum
export LC_ALL=C

host=$T_DIR/host
mount_other "$host" -t tmpfs -o size=40M tmpfs || skip_script "cannot mount a tmpfs here"
img=$host/sparse.img
M=$T_DIR/mnt
# mkfs first compares what it will allocate with the host's free space: a
# fallocate that fails with ENOSPC keeps what it took, which would leave
# the host full. Both refusals leave the host as it was.
used0=$(du -sk "$host" | cut -f1)
check_sh "mkfs -s 1G (preallocated) on a 40 MiB host: exit 9, naming the free space" '
    out=$("$0" -q -s 1G "$1/big.img" 2>&1); rc=$?
    [ $rc -eq 9 ] && echo "$out" | grep -q "MiB free" || { echo "rc=$rc $out"; exit 1; }' "$MKFS" "$host"
check_sh "mkfs --sparse -s 64G (128 MiB of journal) on a 40 MiB host: exit 9" '
    out=$("$0" -q --sparse -s 64G "$1/big.img" 2>&1); rc=$?
    [ $rc -eq 9 ] || { echo "rc=$rc $out"; exit 1; }' "$MKFS" "$host"
check_eq "the refused mkfs runs left the host as it was (KiB used)" "$used0" "$(du -sk "$host" | cut -f1)"
check_fail "no image file left behind" test -e "$host/big.img"

make_image "$img" 256M
check_range "mkfs --sparse allocated the journal and metadata only (KiB on the host)" \
    1024 8192 "$(du -k "$img" | cut -f1)"
check "a 4 MiB host file to free later" dd if=/dev/zero of="$host/spare" bs=1M count=4 status=none
# In the foreground, for its messages (daemonised they go to syslog).
dlog=$T_DIR/daemon.log
mount_fg "$img" "$M" "$dlog" -o nowriteback_cache || t_finish
dpid=$T_DPID

# ---- fill the host -------------------------------------------------------------------
sums=$T_DIR/sums
check_errno "files of 1 MiB until the host is full: ENOSPC" "ENOSPC|EIO" "
import hashlib
n = 0
with open('$sums', 'w') as log:
    while n < 400:
        p = '$M/f%03d' % n
        data = os.urandom(1 << 20)
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.write('%s %s\n' % (hashlib.sha256(data).hexdigest(), p))
        log.flush()
        n += 1"
nfiles=$(wc -l <"$sums")
t_log "$nfiles files of 1 MiB fit before the host was full; tmpfs: $(df -k "$host" | tail -1)"
check_range "the host filled before the image (files written)" 10 40 "$nfiles"
check "the daemon is alive" kill -0 "$dpid"
# A df of the mount still shows most of the image free: without a word
# from the daemon nothing told the ENOSPC of a full host from a full
# filesystem. One line (at most one a minute while the host stays full).
check_sh "the daemon says the host is full, once" \
    'n=$(grep -c "the host filesystem is full" "$0"); [ "$n" -eq 1 ] || { cat "$0"; exit 1; }' "$dlog"
check_errno "another write when the host is full: ENOSPC" "ENOSPC|EIO" "
fd = os.open('$M/more', os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, os.urandom(1 << 20))
os.fsync(fd)"
check "the mount is usable when the host is full: ls -la" ls -la "$M"
check "stat of a written file" stat "$M/f000"
check_sh "the written files read back intact" 'cd / && sha256sum -c --quiet "$0"' "$sums"
# (a directory whose inode comes after those of the files removed below)
check "mkdir while the host has some room" mkdir "$M/late"
check "rm commits while the host is full" rm -f "$M/more" "$M/f000" "$M/f001"
check_errno "mkdir while the host is full works or gives ENOSPC" "OK|ENOSPC" "os.mkdir('$M/dir')"
grep -v "/f000$\|/f001$" "$sums" >"$sums.kept"
# The host has a little room left (less than the 1 MiB the last write
# wanted): take it, so that nothing below gets host space from outside.
dd if=/dev/zero of="$host/pad" bs=4k status=none 2>/dev/null || true
check_eq "the host is full (KiB available)" 0 "$(df -k --output=avail "$host" | tail -1 | tr -d ' ')"
# The removed files' blocks are free in the image and still allocated on
# the host: a write may take them with the host still full. The allocator
# chose blocks by the image's bitmap alone, found a hole, and the write
# failed with ENOSPC until host space was freed outside the mount.
check "a 1 MiB write on the full host takes the blocks rm freed" \
    dd if=/dev/urandom of="$M/reused" bs=1M count=1 conv=fsync status=none
reused_sum=$(sha256sum <"$M/reused" 2>/dev/null || echo missing)
# Inodes likewise: the inode table is reserved a block at a time, and a
# new inode is searched from its directory's inode on; in a directory made
# last, past every freed inode, a create failed with ENOSPC once the search
# reached a table block the host does not hold, whatever was removed.
check_errno "empty files on the full host until ENOSPC" ENOSPC "
for i in range(400):
    open('$M/late/e%03d' % i, 'w').close()"
check "rm a written file on the full host" rm -f "$M/f002"
check "a new file on the full host takes the inode rm freed" touch "$M/late/newfile"
grep -v "/f002$" "$sums.kept" >"$sums.tmp" && mv "$sums.tmp" "$sums.kept"

# ---- free host space: writing works again ------------------------------------------------
check "free the host file" rm -f "$host/spare" "$host/pad"
check "write 2 MiB after host space came back" \
    dd if=/dev/urandom of="$M/after" bs=1M count=2 conv=fsync status=none
after_sum=$(sha256sum <"$M/after" 2>/dev/null || echo missing)
check "the daemon is still alive" kill -0 "$dpid"
unmount_fs "$M" && pass "unmount"
fsck_clean "$img"
mount_image "$img" "$M" -o nowriteback_cache
check_sh "after a remount every fsync'd file is intact" 'cd / && sha256sum -c --quiet "$0"' "$sums.kept"
check_eq "the file written after space came back is intact" "$after_sum" "$(sha256sum <"$M/after")"
check_eq "the file written into the freed blocks on the full host is intact" "$reused_sum" "$(sha256sum <"$M/reused")"
unmount_fs "$M"

# ---- the writeback cache (default mount) on a host that fills ------------------------------
# The kernel's cache takes write(2) up to the mount's dirty-page cap; what
# it holds past the full point is lost at write-back (docs/MOUNT.md "Dirty
# pages"). The cap follows the free space, and for a sparse image that is
# the host's free space when it is the less: it followed the image's alone,
# so here (3 MB free on the host, 200 MiB free in the image) an endless
# writer stopped at 37 MB, the 34 MB past the host's full point lost.
# Daemonised, with syslog(3) recorded in a file (syslog_shim.c): the
# daemon's stdio goes to /dev/null, and what the filesystem core says on
# stderr must reach syslog (it went to /dev/null with the rest).
# (Not for a sanitizer build: its runtime must come first in LD_PRELOAD.)
slog=$T_DIR/syslog.txt
if grep -q __asan_init "$MMAPFS"; then
    slog=
    mount_image "$img" "$M"
else
    compile_c "$T_DIR/syslog_shim.so" "$(dirname "$0")/syslog_shim.c" -shared -fPIC
    : >"$slog"
    mmapfs_real=$MMAPFS
    MMAPFS=$T_DIR/mmapfs-syslog
    printf '#!/bin/sh\nSYSLOG_SHIM_FILE=%q LD_PRELOAD=%q exec %q "$@"\n' \
        "$slog" "$T_DIR/syslog_shim.so" "$mmapfs_real" >"$MMAPFS"
    chmod +x "$MMAPFS"
    mount_image "$img" "$M"
    MMAPFS=$mmapfs_real
fi
if [ -w "/sys/class/bdi/$(mountpoint -d "$M")/max_bytes" ]; then
    host_avail=$(( $(stat -f -c "%a * %S" "$host") ))
    _run timeout 60 dd if=/dev/zero of="$M/endless" bs=1M
    if [ "$T_RC" -ne 0 ] && [ "$T_RC" -ne 124 ] && grep -q "No space left on device" <<<"$T_OUT"; then
        pass "writeback cache: an endless writer on a filling host gets ENOSPC"
    else
        fail "writeback cache: an endless writer on a filling host gets ENOSPC" "got: exit $T_RC"
        _tail_output "$T_OUT"
    fi
    # the image's blocks freed above (f000, f001, more: 3 MiB) are on the
    # host already and take no host space
    check_range "writeback cache: the endless writer stops within 8 MiB of the host's full point" \
        0 $((host_avail + (8 << 20))) "$(stat -c %s "$M/endless")"
    if [ -n "$slog" ]; then
        check_sh "daemonised: the host-full line reaches syslog" \
            'grep -q "the host filesystem is full" "$0" || { cat "$0"; exit 1; }' "$slog"
    else
        skip "daemonised: the host-full line reaches syslog: a sanitizer build"
    fi
    check "writeback cache: rm the endless file" rm -f "$M/endless"
    check "writeback cache: a write on the full host takes the blocks rm freed" \
        dd if=/dev/urandom of="$M/after2" bs=1M count=2 conv=fsync status=none
    check_sh "writeback cache: every fsync'd file is intact" 'cd / && sha256sum -c --quiet "$0"' "$sums.kept"
else
    skip "writeback cache on a filling host: the mount's max_bytes is not writable here (not root, or a kernel before 6.2)"
fi
unmount_fs "$M"
fsck_clean "$img" "fsck.mmapfs -n clean after the writeback cache part"
t_finish
