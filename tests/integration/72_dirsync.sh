#!/usr/bin/env bash
#
# 72_dirsync.sh — fsync of a directory makes every change made before it
# durable, and `sync` followed by `sync MOUNTPOINT` is a whole-filesystem
# sync (docs/MOUNT.md, "sync and syncfs").
#
# Linux sends a FUSE daemon no request for sync(2) or syncfs(2): `sync`
# writes the kernel's cached pages back to the daemon, but what the daemon
# holds in its running transaction waits for the periodic commit. The mount
# uses commit=3600, so nothing but the fsync under test can commit. Each
# round: changes of every kind (new files with data, mkdir, rename, hard
# link, symlink, xattr, chmod, truncate, unlink), then `sync` and an fsync
# of one directory (round 1: a directory none of the changes touched;
# round 2: `sync MOUNTPOINT`, coreutils' fsync of the root), then kill -9
# of the daemon (a process crash keeps only what the journal committed:
# without the fsync every one of these changes is lost), fsck -n, remount
# and compare with what was there before the kill. Rounds 3 to 6: a file
# replaced through rename while its new data is still in the kernel's
# cache (below).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd sync getfattr setfattr md5sum

img=$T_DIR/ds.img
M=$T_DIR/mnt
mkdir -p "$M"
make_image "$img" 256M

# The daemon in the foreground with no periodic commit to speak of (more
# arguments after the round number go to the daemon).
start_daemon() {
    local r=$1
    shift
    mount_fg "$img" "$M" "$T_DIR/daemon.$r.log" -o commit=3600 "$@" || t_finish
}

# A listing that covers what the changes touch: names, types, link counts,
# modes, sizes, symlink targets, file contents and user xattrs.
manifest() {
    (cd "$M" && find . -path ./lost+found -prune -o -print0 | sort -z |
        while IFS= read -r -d '' p; do
            stat -c '%n %F %h %a %s' "$p"
            if [ -L "$p" ]; then readlink "$p"
            elif [ -f "$p" ]; then md5sum <"$p"; fi
            getfattr -h --absolute-names -d -m '^user\.' "$p" 2>/dev/null | grep -v '^#' || true
        done)
}

start_daemon 0
mkdir "$M/quiet" "$M/old" "$M/r1" "$M/r2"     # the rounds leave the root alone
head -c 100000 /dev/urandom >"$M/old/keep"
echo gone >"$M/old/gone"
sync
check "set-up: fsync of a directory" "$PY" -c 'import os,sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' "$M/quiet"

for round in 1 2; do
    mkdir "$M/r$round/sub"
    head -c 3000000 /dev/urandom >"$M/r$round/big"
    echo "small $round" >"$M/r$round/small"
    mv "$M/r$round/small" "$M/r$round/sub/moved"
    ln "$M/r$round/sub/moved" "$M/r$round/hard"
    ln -s "sub/moved" "$M/r$round/sym"
    setfattr -n user.round -v "$round" "$M/r$round/big"
    chmod 640 "$M/r$round/big"
    truncate -s 12345 "$M/old/keep"
    rm -f "$M/old/gone"
    before=$(manifest)
    sync
    if [ "$round" = 1 ]; then
        check "round 1: fsync of a directory the changes did not touch" \
            "$PY" -c 'import os,sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' "$M/quiet"
    else
        check "round 2: sync MOUNTPOINT (fsync of the root directory)" sync "$M"
    fi
    crash_daemon "$T_DPID" "$M" "$img" "round $round: kill -9 of the daemon"
    start_daemon "$round"
    after=$(manifest)
    check_eq "round $round: every change made before the fsync survived the kill" "$before" "$after"
done
# Rounds 3 and 4: replace via rename with no fsync of the data and the
# writer's descriptor still open, so its pages are only in the kernel's
# cache when the rename arrives; then only `sync MOUNTPOINT` (no `sync`,
# which would write the pages back itself) commits the rename. The daemon
# fetches the renamed file's pages before renaming over an existing file
# (ext4's auto_da_alloc), so the name holds the new data, never an empty
# file. Round 4 with the single-threaded loop (-s), where no second thread
# could serve that write-back: there the mount has no writeback cache, so
# the data reached the daemon with the write (until 2026-12-05 it kept the
# cache, fetched nothing and left an empty file). Rounds 5 and 6 (-o
# nowriteback_cache, -s): the data is stored through a shared mapping (no
# msync), which leaves it in the kernel's pages on every mount; until
# 2026-12-06 the daemon fetched pages only with the writeback cache, and the
# name held zeros after the kill.
# replace_round ROUND write|mmap [daemon args...]
replace_round() {
    local round=$1 how=$2
    shift 2
    [ "$#" -eq 0 ] || { unmount_fs "$M"; start_daemon "$round.pre" "$@"; }
    echo "old content" >"$M/old/replace"
    sync
    sync "$M"
    head -c 300000 /dev/urandom >"$T_DIR/new.data"
    want=$(md5sum <"$T_DIR/new.data")
    rm -f "$T_DIR/renamed"
    "$PY" -c '
import os, sys, time
import mmap
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
data = open(sys.argv[3], "rb").read()
if sys.argv[5] == "mmap":
    os.ftruncate(fd, len(data))
    m = mmap.mmap(fd, len(data))
    m[:] = data
else:
    os.write(fd, data)
os.rename(sys.argv[1], sys.argv[2])
open(sys.argv[4], "w").close()
time.sleep(60)
' "$M/old/replace.tmp" "$M/old/replace" "$T_DIR/new.data" "$T_DIR/renamed" "$how" &
    local writer=$!
    wait_until "round $round: the writer renamed its file over the old one" 10 "test -e $T_DIR/renamed"
    check "round $round: sync MOUNTPOINT (commits the rename)" sync "$M"
    crash_daemon "$T_DPID" "$M" "$img" "round $round: kill -9 of the daemon"
    kill -KILL "$writer" 2>/dev/null || true
    wait "$writer" 2>/dev/null || true
    start_daemon "$round"
    check_eq "round $round: the replaced name holds the new data" "$want" "$(md5sum <"$M/old/replace")"
}
replace_round 3 write
replace_round 4 write -s
replace_round 5 mmap -o nowriteback_cache
replace_round 6 mmap -s
unmount_fs "$M"
t_finish
