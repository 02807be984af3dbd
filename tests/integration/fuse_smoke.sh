#!/usr/bin/env bash
#
# fuse_smoke.sh — the mount daemon and the FUSE front end on a real mount:
# daemonised mount returning only when usable, `mount` listing, basic file
# operations (zero-copy reads after dropping caches, readdir/readdirplus,
# links, rename, xattrs, SEEK_DATA/SEEK_HOLE, concurrent fsync),
# mmapfs-stat in text and Prometheus format, the metrics xattr's rules,
# error exits (mounted twice, not mmapfs, bad options, missing paths),
# read-only and pread/nowriteback_cache mounts, SIGTERM of a foreground
# daemon with a file still open (clean image, data kept), and
# install.sh + mount.fuse3 + `mount -t fuse.mmapfs` + an fstab line.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd getfattr setfattr python3 cmp
export LC_ALL=C

IMG=$T_DIR/smoke.img
M=$T_DIR/mnt
export IMG M T_DIR
make_image "$IMG" 512M -L smoke

# Waits (up to 30 s) until no mmapfs daemon (any path: installed copies
# too, and seen from another mount namespace) has the argument MNT, a unique
# temporary path; returns 1 if one is still there.
wait_daemons_gone() {
    local mnt=$1 d arg n=0 busy exe
    while [ "$n" -lt 300 ]; do
        busy=0
        for d in /proc/[0-9]*; do
            exe=$(readlink "$d/exe" 2>/dev/null) || continue
            [ "${exe##*/}" == mmapfs ] || continue
            while IFS= read -r -d '' arg; do
                [ "$arg" != "$mnt" ] || busy=1
            done <"$d/cmdline" 2>/dev/null || true
        done
        [ "$busy" -eq 1 ] || return 0
        sleep 0.1
        n=$((n + 1))
    done
    return 1
}

# ---- options and paths that must fail before anything is mounted ---------------------
mkdir -p "$M"
check "mmapfs --version exits 0" "$MMAPFS" --version
check_sh "mmapfs --version names the format version" '"$0" -V | grep -q "on-disk format [0-9]"' "$MMAPFS"
check_sh "mmapfs --help lists the mmapfs options" \
    'out=$("$0" --help) && for o in sync_delay= io= commit= entry_timeout= attr_timeout= nowriteback_cache readdirplus= max_ratio= min_ratio= max_idle_threads= spin= latency_hold= noclone_fd nohotloop; do grep -q "$o" <<<"$out" || { echo "missing $o"; exit 1; }; done' "$MMAPFS"
check_fail "unknown -o option exits non-zero" "$MMAPFS" "$IMG" "$M" -o no_such_option
check_sh "unknown -o option: exit 2 (usage) with a message" \
    '"$0" "$1" "$2" -o no_such_option 2>"$3/err"; rc=$?; [ $rc -eq 2 ] && grep -q "no_such_option" "$3/err"' \
    "$MMAPFS" "$IMG" "$M" "$T_DIR"
check_fail "bad value io=floppy exits non-zero" "$MMAPFS" "$IMG" "$M" -o io=floppy
check_fail "bad value commit=5x exits non-zero" "$MMAPFS" "$IMG" "$M" -o commit=5x
check_fail "bad value entry_timeout=-1 exits non-zero" "$MMAPFS" "$IMG" "$M" -o entry_timeout=-1
check_fail "bad value max_idle_threads=0 exits non-zero" "$MMAPFS" "$IMG" "$M" -o max_idle_threads=0
check_fail "bad value spin=1001 exits non-zero" "$MMAPFS" "$IMG" "$M" -o spin=1001
check_fail "max_idle_threads above max_threads exits non-zero" "$MMAPFS" "$IMG" "$M" -o max_threads=4,max_idle_threads=5
check_fail "bad value min_ratio=x exits non-zero" "$MMAPFS" "$IMG" "$M" -o min_ratio=x
check_fail "unknown dash option exits non-zero" "$MMAPFS" "$IMG" "$M" --frobnicate
check_fail "a third positional argument exits non-zero" "$MMAPFS" "$IMG" "$M" extra
check_fail "missing mount point argument exits non-zero" "$MMAPFS" "$IMG"
check_fail "missing image exits non-zero" "$MMAPFS" "$T_DIR/no-such.img" "$M"
check_sh "a missing image is not created" '[ ! -e "$0" ]' "$T_DIR/no-such.img"
check_fail "mount point that is a file exits non-zero" "$MMAPFS" "$IMG" "$IMG"
check_fail "missing mount point exits non-zero" "$MMAPFS" "$IMG" "$T_DIR/no-such-dir"
truncate -s 64M "$T_DIR/zeros.img"
check_sh "image that is not mmapfs: exit 4" \
    '"$0" "$1" "$2"; [ $? -eq 4 ]' "$MMAPFS" "$T_DIR/zeros.img" "$M"
check_fail_sh "nothing got mounted by the failures above" 'mountpoint -q "$M"'

# ---- mount, listing, basic operations ------------------------------------------------------
mount_image "$IMG" "$M" -o defaults,noauto,nofail,_netdev,x-systemd.automount,comment=test
pass "mount with generic fstab options (ignored) returns when usable"
check_eq "/proc/mounts: IMAGE on MNT type fuse.mmapfs" "$IMG $M fuse.mmapfs" \
    "$(awk -v m="$M" '$2 == m { print $1, $2, $3 }' /proc/mounts)"
check_sh "mount(8) output shows the image and fuse.mmapfs" \
    'mount | grep -qF "$IMG on $M type fuse.mmapfs"'
check_sh "default_permissions is on" \
    'awk -v m="$M" '"'"'$2 == m { print $4 }'"'"' /proc/mounts | grep -q default_permissions'
check_sh "mounting the same image twice: exit 5, 'already mounted'" \
    'mkdir -p "$1/mnt2"; "$0" "$2" "$1/mnt2" 2>"$1/err2"; rc=$?; [ $rc -eq 5 ] && grep -q "already mounted" "$1/err2" && ! mountpoint -q "$1/mnt2"' \
    "$MMAPFS" "$T_DIR" "$IMG"

head -c $((5 << 20)) /dev/urandom >"$T_DIR/random.bin"
check "write 5 MiB" cp "$T_DIR/random.bin" "$M/random.bin"
check "read back (page cache)" cmp "$T_DIR/random.bin" "$M/random.bin"
sync
echo 3 >/proc/sys/vm/drop_caches
check "read back after dropping caches (zero-copy reads)" cmp "$T_DIR/random.bin" "$M/random.bin"
check_sh "O_DIRECT read matches" \
    'dd if="$M/random.bin" bs=1M iflag=direct status=none | cmp - "$T_DIR/random.bin"'
check_sh "unaligned reads match" \
    'python3 - "$M/random.bin" "$T_DIR/random.bin" <<'"'"'EOF'"'"'
import os, random, sys
a = open(sys.argv[1], "rb", buffering=0); b = open(sys.argv[2], "rb").read()
r = random.Random(7)
for _ in range(300):
    off = r.randrange(0, len(b) + 5000); n = r.randrange(1, 300000)
    a.seek(off)
    if a.read(n) != b[off:off + n]:
        sys.exit("mismatch at %d+%d" % (off, n))
EOF'
check_sh "mkdir, 1000 files, readdir counts them" \
    'mkdir "$M/many" && for i in $(seq 1 1000); do : >"$M/many/file-number-$i"; done && [ "$(ls "$M/many" | wc -l)" -eq 1000 ] && [ "$(ls -la "$M/many" | wc -l)" -eq 1003 ]'
check_sh "find and stat every entry (readdirplus)" '[ "$(find "$M/many" -type f -printf "%s\n" | wc -l)" -eq 1000 ]'
check_sh "rm -r while listing" 'rm -r "$M/many" && [ ! -e "$M/many" ]'
check_sh "symlink and readlink" 'ln -s random.bin "$M/link" && [ "$(readlink "$M/link")" == random.bin ] && cmp "$M/link" "$T_DIR/random.bin"'
check_sh "hard link shares the inode" 'ln "$M/random.bin" "$M/hard" && [ "$(stat -c %i "$M/hard")" == "$(stat -c %i "$M/random.bin")" ] && [ "$(stat -c %h "$M/hard")" -eq 2 ]'
check_sh "rename over an existing file" 'echo a >"$M/ra" && echo b >"$M/rb" && mv "$M/ra" "$M/rb" && [ "$(cat "$M/rb")" == a ] && [ ! -e "$M/ra" ]'
check_errno "renameat2 RENAME_NOREPLACE onto an existing name: EEXIST" EEXIST \
    "open('$M/x1','w').close(); open('$M/x2','w').close(); renameat2('$M/x1', '$M/x2', RENAME_NOREPLACE)"
check_errno "renameat2 RENAME_EXCHANGE swaps" OK \
    "write_file('$M/e1', b'one'); write_file('$M/e2', b'two'); renameat2('$M/e1', '$M/e2', RENAME_EXCHANGE); expect(read_file('$M/e1') == b'two' and read_file('$M/e2') == b'one', 'not swapped')"
check_errno "lookup of a missing name: ENOENT" ENOENT "os.stat('$M/does-not-exist')"
check_errno "negative lookup then create is visible" OK \
    "
try: os.stat('$M/later')
except FileNotFoundError: pass
write_file('$M/later', b'x'); expect(os.stat('$M/later').st_size == 1, 'not visible')"
check_sh "chmod, chown, touch -d with nanoseconds" \
    'f="$M/attr"; : >"$f" && chmod 0640 "$f" && chown 123:456 "$f" && touch -d "2001-02-03 04:05:06.123456789" "$f" && [ "$(stat -c "%a %u %g %y" "$f")" == "640 123 456 2001-02-03 04:05:06.123456789 +0000" ]'
check_sh "truncate shrinks and grows" 'truncate -s 100 "$M/random.bin.t" && truncate -s 10 "$M/random.bin.t" && [ "$(stat -c %s "$M/random.bin.t")" -eq 10 ]'
check_sh "mkfifo and mknod" 'mkfifo "$M/fifo" && [ -p "$M/fifo" ] && mknod "$M/null" c 1 3 && [ -c "$M/null" ]'
check_sh "user xattr set, get, list, remove" \
    'setfattr -n user.color -v blue "$M/rb" && [ "$(getfattr --only-values -n user.color "$M/rb")" == blue ] && getfattr -d "$M/rb" | grep -q user.color && setfattr -x user.color "$M/rb" && ! getfattr -n user.color "$M/rb" 2>/dev/null'
check_errno "SEEK_DATA / SEEK_HOLE on a sparse file" OK "
fd = os.open('$M/sparse', os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b'a' * 4096, 0); os.pwrite(fd, b'b' * 4096, 8 << 20); os.fsync(fd)
h = os.lseek(fd, 0, os.SEEK_HOLE); d = os.lseek(fd, h, os.SEEK_DATA)
expect(4096 <= h < (8 << 20), 'hole at %d' % h)
expect(d <= (8 << 20) and d >= h, 'data at %d' % d)
expect(os.lseek(fd, (8 << 20) + 10, os.SEEK_DATA) == (8 << 20) + 10, 'data inside')
try:
    os.lseek(fd, 9 << 20, os.SEEK_DATA); expect(False, 'no ENXIO past EOF')
except OSError as e:
    expect(e.errno == errno.ENXIO, 'errno %d' % e.errno)
os.close(fd)"
check_errno "fallocate keeps size with KEEP_SIZE (or EOPNOTSUPP)" "OK|EOPNOTSUPP" "
fd = os.open('$M/falloc', os.O_RDWR | os.O_CREAT, 0o644)
fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20); expect(os.fstat(fd).st_size == 0, 'size changed')"
check_sh "8 writers with fsync in parallel" \
    'pids=(); for i in 1 2 3 4 5 6 7 8; do ( for j in 1 2 3 4 5; do dd if=/dev/urandom of="$M/fs$i" bs=4k count=4 conv=fsync status=none || exit 1; done ) & pids+=($!); done; for p in "${pids[@]}"; do wait "$p" || exit 1; done'
check_sh "statfs (df) reports a size" 'df -k "$M" | tail -1 | awk "{ exit !(\$2 > 0) }"'

# ---- metrics: mmapfs-stat and the virtual xattr ---------------------------------------------
check "mmapfs-stat exits 0" "$MSTAT" "$M"
check_sh "mmapfs-stat prints 'name value' lines" \
    'out=$("$0" "$1") && [ -n "$out" ] && ! grep -vqE "^[A-Za-z_][A-Za-z0-9_.:]* -?[0-9]+(\.[0-9]+)?$" <<<"$out"' "$MSTAT" "$M"
check_sh "mmapfs-stat --prometheus: HELP/TYPE lines, mmapfs_ names, mountpoint label" \
    'out=$("$0" --prometheus "$1") && grep -q "^# HELP mmapfs_" <<<"$out" && grep -q "^# TYPE mmapfs_[a-z0-9_]* \(counter\|gauge\)$" <<<"$out" && grep -qF "{mountpoint=\"$1\"}" <<<"$out" && ! grep -v "^#" <<<"$out" | grep -qv "^mmapfs_"' \
    "$MSTAT" "$M"
check_fail "mmapfs-stat on a directory that is not a mount" "$MSTAT" "$T_DIR"
check_fail "mmapfs-stat on another filesystem (/proc)" "$MSTAT" /proc
check_sh "getfattr reads the metrics xattr on the root" \
    'getfattr --only-values -n trusted.mmapfs.metrics "$M" | grep -qE "^[A-Za-z_].* [0-9]+$"'
check_sh "the metrics xattr is not listed" '! getfattr -d -m - "$M" 2>/dev/null | grep -q mmapfs.metrics'
check_errno "setting the metrics xattr: EPERM" EPERM "os.setxattr('$M', 'trusted.mmapfs.metrics', b'1')"
check_errno "removing the metrics xattr: EPERM" EPERM "os.removexattr('$M', 'trusted.mmapfs.metrics')"
check_errno "the metrics xattr exists only on the root" ENODATA "os.getxattr('$M/rb', 'trusted.mmapfs.metrics')"

unmount_fs "$M" && pass "fusermount3 -u and daemon exit"
fsck_clean "$IMG" "fsck.mmapfs -n after unmount is clean"

# ---- remount: data survived; read-only; other backends ------------------------------------------
mount_image "$IMG" "$M" -o ro
check "read-only mount: data intact" cmp "$T_DIR/random.bin" "$M/random.bin"
check_errno "read-only mount: create fails with EROFS" EROFS "open('$M/new', 'w')"
check_sh "read-only mount listed ro" 'awk -v m="$M" '"'"'$2 == m { print $4 }'"'"' /proc/mounts | grep -q "^ro"'
unmount_fs "$M" && pass "unmount read-only mount"

mount_image "$IMG" "$M" -o io=pread,nowriteback_cache,commit=1,sync_delay=100,entry_timeout=0.5,attr_timeout=0
check "io=pread: data intact" cmp "$T_DIR/random.bin" "$M/random.bin"
check_sh "io=pread,nowriteback_cache: write and read back after dropping caches" \
    'cp "$T_DIR/random.bin" "$M/r2" && sync && echo 3 >/proc/sys/vm/drop_caches && cmp "$T_DIR/random.bin" "$M/r2"'
check_sh "O_APPEND without writeback cache" 'echo one >"$M/app" && echo two >>"$M/app" && [ "$(cat "$M/app")" == "$(printf "one\ntwo")" ]'
unmount_fs "$M" && pass "unmount pread mount"
fsck_clean "$IMG" "fsck.mmapfs -n after the pread mount is clean"

mount_image "$IMG" "$M" -o nohotloop,noclone_fd,max_idle_threads=2,readdirplus=auto,max_ratio=0
check_sh "nohotloop,noclone_fd,max_idle_threads=2: parallel writers, fsync, read back" \
    'for i in 1 2 3 4; do dd if="$T_DIR/random.bin" of="$M/p$i" bs=64k conv=fsync status=none & done; wait; for i in 1 2 3 4; do cmp "$T_DIR/random.bin" "$M/p$i" || exit 1; rm "$M/p$i"; done'
check_sh "readdirplus=auto: listing with attributes" '[ "$(ls -ln "$M" | awk '"'"'$9 == "random.bin" { print $5 }'"'"')" = $((5 << 20)) ]'
unmount_fs "$M" && pass "unmount noclone_fd mount"

mount_image "$IMG" "$M" -s -o max_threads=1
check_sh "single-threaded loop (-s): write, fsync, read back" \
    'dd if="$T_DIR/random.bin" of="$M/r3" bs=256k conv=fsync status=none && cmp "$T_DIR/random.bin" "$M/r3"'
check_errno "single-threaded loop: SEEK_HOLE after fsync" OK "
fd = os.open('$M/sparse', os.O_RDONLY); expect(os.lseek(fd, 0, os.SEEK_HOLE) < (8 << 20), 'no hole'); os.close(fd)"
unmount_fs "$M" && pass "unmount single-threaded mount"

# ---- SIGTERM of a foreground daemon with a file open ---------------------------------------------
T_MOUNTS+=("$M")
T_DIRTY["$IMG"]=1
"$MMAPFS" "$IMG" "$M" -f 2>"$T_DIR/fg.log" &
fg_pid=$!
wait_until "foreground daemon mounted" 30 'mountpoint -q "$M"'
head -c $((3 << 20)) /dev/urandom >"$T_DIR/open.bin"
exec {hold}>"$M/open.bin"
cat "$T_DIR/open.bin" >&"$hold"       # in the kernel's writeback cache, not flushed
check "SIGTERM to the daemon (pid $fg_pid)" kill -TERM "$fg_pid"
rc=0
timeout 60 tail --pid="$fg_pid" -f /dev/null || rc=$?
check_eq "daemon exited within 60 s of SIGTERM" 0 "$rc"
rc=0
wait "$fg_pid" || rc=$?
check_eq "daemon exit status after SIGTERM" 0 "$rc"
exec {hold}>&-
check_fail_sh "SIGTERM unmounted the mount point" 'mountpoint -q "$M"'
fsck_clean "$IMG" "fsck.mmapfs -n after SIGTERM is clean"
mount_image "$IMG" "$M"
check "data written through a file still open at SIGTERM survived" cmp "$T_DIR/open.bin" "$M/open.bin"
unmount_fs "$M" && pass "unmount after SIGTERM remount"

# ---- install.sh, mount.fuse3, mount -t fuse.mmapfs, fstab ----------------------------------------
PFX=$T_DIR/prefix
export PFX
check "install.sh into a temporary prefix" env PREFIX="$PFX" "$T_ROOT/mount-scripts/install.sh" "$T_BUILD"
check "install.sh again (idempotent)" env PREFIX="$PFX" "$T_ROOT/mount-scripts/install.sh" "$T_BUILD"
check_sh "binaries installed in PREFIX/sbin" \
    'for b in mmapfs mkfs.mmapfs fsck.mmapfs mmapfs-stat mmapfs-mount-all; do [ -x "$PFX/sbin/$b" ] || { echo "no $b"; exit 1; }; done'
check_sh "man pages installed in PREFIX/share/man/man8" '[ -f "$PFX/share/man/man8/mmapfs.8" ] && [ -f "$PFX/share/man/man8/mmapfs-stat.8" ]'
if [ -x /sbin/mount.fuse3 ]; then
    T_MOUNTS+=("$M")
    T_DIRTY["$IMG"]=1
    check "mount.fuse3 IMAGE MNT -t fuse.mmapfs (mmapfs from PATH)" \
        env PATH="$PFX/sbin:$PATH" /sbin/mount.fuse3 "$IMG" "$M" -t fuse.mmapfs -o rw,noatime,nofail
    check_eq "mounted through mount.fuse3" "$IMG $M fuse.mmapfs" \
        "$(awk -v m="$M" '$2 == m { print $1, $2, $3 }' /proc/mounts)"
    check "data readable" cmp "$T_DIR/random.bin" "$M/random.bin"
    check "umount" umount "$M"
    if wait_daemons_gone "$M"; then pass "its daemon exits"; else fail "its daemon exits"; fi
    fsck_clean "$IMG" "fsck.mmapfs -n after mount.fuse3 mount is clean"

    # mount(8) runs helpers with a fixed PATH (/usr/local/sbin, /usr/sbin, ...):
    # in a private mount namespace, bind the temporary sbin over
    # /usr/local/sbin and a temporary fstab over /etc/fstab, so nothing of
    # the system is changed.
    if unshare --mount --propagation private true 2>/dev/null; then
        printf '%s %s fuse.mmapfs defaults,noauto,nofail 0 0\n' "$IMG" "$M" >"$T_DIR/fstab"
        export IMG M PFX T_DIR
        cat >"$T_DIR/ns.sh" <<'EOF'
set -u
trap 'mountpoint -q "$M" && umount "$M"' EXIT
mount --bind "$PFX/sbin" /usr/local/sbin || exit 10
mount --bind "$T_DIR/fstab" /etc/fstab || exit 11
mount -t fuse.mmapfs "$IMG" "$M" || exit 12
[ "$(awk -v m="$M" '$2 == m { print $3 }' /proc/self/mounts)" == fuse.mmapfs ] || exit 13
cmp "$T_DIR/random.bin" "$M/random.bin" || exit 14
umount "$M" || exit 15
# the next mount needs the first daemon gone (it holds the image until then)
daemon_running() {
    local d exe arg
    for d in /proc/[0-9]*; do
        exe=$(readlink "$d/exe" 2>/dev/null) || continue
        [ "${exe##*/}" == mmapfs ] || continue
        while IFS= read -r -d '' arg; do
            [ "$arg" != "$M" ] || return 0
        done <"$d/cmdline" 2>/dev/null
    done
    return 1
}
n=0; while daemon_running && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done
mount "$M" || exit 16
[ "$(awk -v m="$M" '$2 == m { print $1, $3 }' /proc/self/mounts)" == "$IMG fuse.mmapfs" ] || exit 17
echo fstab >"$M/from-fstab" || exit 18
umount "$M" || exit 19
exit 0
EOF
        check "in a mount namespace: mount -t fuse.mmapfs and an fstab line work" \
            timeout 120 unshare --mount --propagation private bash "$T_DIR/ns.sh"
        if wait_daemons_gone "$M"; then
            pass "the namespaced daemons exit"
        else
            fail "the namespaced daemons exit"
        fi
        fsck_clean "$IMG" "fsck.mmapfs -n after mount(8) mounts is clean"
    else
        skip "mount -t fuse.mmapfs via mount(8): unshare --mount does not work here"
    fi
else
    skip "mount.fuse3 is not installed (package fuse3)"
fi
_forget_mount "$M"

t_finish
