#!/usr/bin/env bash
#
# 46_acl.sh — POSIX ACLs as on ext4. One probe (setfacl/getfacl, access as
# a second user, default ACLs inherited by files, directories, FIFOs and
# device nodes, chmod of a file with an ACL, an ACL equivalent to a mode,
# set-group-ID after a setfacl by an owner outside the group and by root,
# the umask with and without a default ACL, invalid ACL values, a default
# ACL on a file) runs on ext4 on a loop device (the reference) and on
# mmapfs; the transcripts must be equal, and again after a remount. The
# second user is nobody (uid/gid 65534, no supplementary groups). With
# -o noacl the ACL names are refused and the umask still applies.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd setfacl getfacl getfattr python3 mknod

# as the second user: prints "ok" or "denied"
as2() {
    if timeout 30 "${AS_NOBODY[@]}" "$@" >/dev/null 2>&1; then echo ok; else echo denied; fi
}

# errno of a raw setxattr (python), e.g. EINVAL; "OK" when it succeeds
raw_setxattr() {
    python3 - "$@" <<'PY'
import errno, os, sys
path, name, hexval = sys.argv[1:4]
try:
    os.setxattr(path, name, bytes.fromhex(hexval))
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}

# probe DIR : the transcript of every step, relative paths only.
probe() {
    local top=$1/acl
    rm -rf "$top"
    mkdir -p "$top"
    chmod 0755 "$top"
    cd "$top"
    umask 022
    echo "== access ACL"
    echo hello >f
    chmod 0640 f
    echo "read before: $(as2 cat f)"
    setfacl -m u:nobody:r f
    getfacl f
    stat -c 'mode %a' f
    echo "read with u:nobody:r: $(as2 cat f)"
    echo "write with u:nobody:r: $(as2 bash -c 'echo x >>f')"
    setfacl -m u:nobody:- f
    getfacl f
    echo "read with u:nobody:-: $(as2 cat f)"
    setfacl -m u:nobody:rw,g::r f
    echo "write with u:nobody:rw: $(as2 bash -c 'echo x >>f')"
    echo "== chmod of a file with an ACL"
    chmod 0604 f
    getfacl f
    echo "read after chmod 604 (mask ---): $(as2 cat f)"
    chmod 0664 f
    getfacl f
    echo "== an ACL equivalent to a mode is the mode"
    touch e
    setfacl -m u::rwx,g::r,o::- e
    stat -c 'mode %a' e
    getfattr -m - -d e 2>&1 | sed 's/^# file: .*/# file/'
    setfacl -b f
    getfacl f
    stat -c 'mode %a' f
    echo "== setfacl by an owner outside the file's group drops set-group-ID"
    touch s t
    chown nobody:1001 s t
    chmod 2770 s t
    echo "setfacl as owner nobody: $(as2 setfacl -m u:1001:r s)"
    setfacl -m u:1001:r t
    stat -c '%n mode %a' s t
    echo "== default ACLs"
    mkdir d
    setfacl -d -m u:nobody:rwx,g::rx,o::- d
    getfacl d
    touch d/file
    mkdir d/sub
    mkfifo d/fifo
    mknod d/null c 1 3
    ln -s file d/link
    for n in file sub fifo null; do
        stat -c "%n mode %a" "d/$n"
        getfacl "d/$n"
    done
    echo "create in d/sub as nobody: $(as2 touch d/sub/by-nobody)"
    getfacl d/sub/by-nobody
    getfattr -h -m - -d d/link 2>&1 | sed 's/^# file: .*/# file/'
    echo "== umask without a default ACL"
    umask 027
    touch u-file
    mkdir u-dir
    stat -c "%n mode %a" u-file u-dir
    umask 077
    touch d/masked-file
    stat -c "%n mode %a" d/masked-file
    umask 022
    echo "== invalid values"
    echo "garbage: $(raw_setxattr f system.posix_acl_access 6761726261676500)"
    echo "version 1: $(raw_setxattr f system.posix_acl_access 0100000001000600ffffffff04000400ffffffff20000400ffffffff)"
    echo "no other entry: $(raw_setxattr f system.posix_acl_access 0200000001000600ffffffff04000400ffffffff)"
    echo "named without mask: $(raw_setxattr f system.posix_acl_access 0200000001000600ffffffff020004003930000004000400ffffffff20000400ffffffff)"
    echo "two owners: $(raw_setxattr f system.posix_acl_access 0200000001000600ffffffff01000600ffffffff04000400ffffffff20000400ffffffff)"
    echo "ids not sorted: $(raw_setxattr f system.posix_acl_access 0200000001000600ffffffff020004003a300000020004003930000004000400ffffffff10000400ffffffff20000400ffffffff)"
    echo "torn entry: $(raw_setxattr f system.posix_acl_access 0200000001000600ffffffff04000400ffffffff20000400ffffffff0100)"
    echo "valid raw: $(raw_setxattr f system.posix_acl_access 0200000001000600ffffffff020004003930000004000400ffffffff10000400ffffffff20000400ffffffff)"
    getfacl -n f
    echo "default ACL on a file: $(raw_setxattr f system.posix_acl_default 0200000001000600ffffffff04000400ffffffff20000400ffffffff)"
    echo "setfacl -d on a file: $(setfacl -d -m u:nobody:r f >/dev/null 2>&1 && echo ok || echo refused)"
    cd /
}

# listing DIR : getfacl of every entry of the tree, in name order.
listing() {
    (cd "$1/acl" && find . | LC_ALL=C sort | while read -r p; do getfacl -P "$p" 2>&1; done)
}

ext4_probe() {
    probe "$T_DIR/ext4" >"$T_DIR/ext4.out" 2>&1
    listing "$T_DIR/ext4" >"$T_DIR/ext4.list"
    check_sh "ext4 reference: u:nobody:r lets nobody read a 0640 file" \
        'grep -qx "read with u:nobody:r: ok" "$0"' "$T_DIR/ext4.out"
}
on_ext4 "$T_DIR/ext4" ext4_probe
[ -s "$T_DIR/ext4.out" ] || { t_log "no ext4 reference"; t_finish; }

img=$T_DIR/acl.img
make_image "$img" 128M
M=$T_DIR/mnt
mount_image "$img" "$M" -o allow_other
probe "$M" >"$T_DIR/mmapfs.out" 2>&1
if diff -u "$T_DIR/ext4.out" "$T_DIR/mmapfs.out" >"$T_DIR/diff" 2>&1; then
    pass "mmapfs: ACL transcript equals ext4's ($(wc -l <"$T_DIR/ext4.out") lines)"
else
    fail "mmapfs: ACL transcript equals ext4's" "$(cat "$T_DIR/diff")"
fi
check_sh "mmapfs: u:nobody:- denies nobody" \
    'grep -qx "read with u:nobody:-: denied" "$0"' "$T_DIR/mmapfs.out"
unmount_fs "$M"
mount_image "$img" "$M" -o allow_other
check_eq "mmapfs: the same ACLs after a remount" "$(cat "$T_DIR/ext4.list")" "$(listing "$M")"
check_sh "mmapfs: listxattr shows the inherited access ACL" \
    'getfattr -m - "$0/acl/d/file" | grep -qx system.posix_acl_access' "$M"
unmount_fs "$M"

# noacl: ACL names refused, umask applied by the kernel
mount_image "$img" "$M" -o allow_other,noacl
check_fail "noacl: setfacl is refused" setfacl -m u:nobody:r "$M/acl/e"
check_sh "noacl: ACL names are not listed (as ext4 noacl)" \
    'out=$(getfattr -m - "$0/acl/d/file") && ! grep -q posix_acl <<<"$out"' "$M"
check_sh "noacl: the umask applies" 'cd "$0" && umask 027 && touch n && [ "$(stat -c %a n)" = 640 ]' "$M"
unmount_fs "$M"

t_finish
