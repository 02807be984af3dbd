#!/usr/bin/env bash
#
# 30_posix_errno.sh — POSIX error codes and semantics through a real mount,
# checked with small Python snippets (tests/lib/errno_check.py): ENOENT,
# EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, ENAMETOOLONG, ELOOP, EXDEV, EINVAL,
# renameat2 NOREPLACE/EXCHANGE, permissions as a non-root user (EACCES,
# sticky directories, setgid inheritance, suid cleared on write), EFBIG,
# fallocate modes, SEEK_DATA/SEEK_HOLE, unlinked-but-open files, statvfs,
# files larger than 4 GiB.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd setpriv setfattr
export LC_ALL=C
umask 022

img=$T_DIR/a.img
img2=$T_DIR/b.img
M=$T_DIR/mnt
M2=$T_DIR/mnt2
make_image "$img" 2G
make_image "$img2" 1G
mount_image "$img" "$M" -o allow_other
mount_image "$img2" "$M2"
chmod 0755 "$M"
export M M2

# The snippets see the mount points as M and M2.
ERRNO_PRELUDE="M = '$M'; M2 = '$M2'
"
# e DESC EXPECT 'python' : check_errno as root.
e() {
    check_errno "$@"
}
# e_nobody DESC EXPECT 'python' : check_errno as uid/gid 65534 (nobody).
e_nobody() {
    check_errno_as_nobody "$@"
}

mkdir "$M/d" "$M/d/sub" "$M/full" "$M/empty"
echo content >"$M/file"
echo other >"$M/full/x"

# ---- ENOENT ----------------------------------------------------------------------------
e "stat of a missing name: ENOENT" ENOENT 'os.stat(M + "/nope")'
e "open of a missing file: ENOENT" ENOENT 'os.open(M + "/nope", os.O_RDONLY)'
e "create under a missing directory: ENOENT" ENOENT 'os.open(M + "/nodir/f", os.O_CREAT | os.O_WRONLY, 0o644)'
e "unlink of a missing name: ENOENT" ENOENT 'os.unlink(M + "/nope")'
e "rmdir of a missing name: ENOENT" ENOENT 'os.rmdir(M + "/nope")'
e "rename of a missing name: ENOENT" ENOENT 'os.rename(M + "/nope", M + "/nope2")'
e "link to a missing file: ENOENT" ENOENT 'os.link(M + "/nope", M + "/nope2")'
e "readlink of a missing name: ENOENT" ENOENT 'os.readlink(M + "/nope")'
e "dangling symlink open: ENOENT" ENOENT 'os.symlink("nowhere", M + "/dangling"); os.open(M + "/dangling", os.O_RDONLY)'

# ---- EEXIST ----------------------------------------------------------------------------
e "mkdir of an existing directory: EEXIST" EEXIST 'os.mkdir(M + "/d")'
e "mkdir over an existing file: EEXIST" EEXIST 'os.mkdir(M + "/file")'
e "link onto an existing name: EEXIST" EEXIST 'os.link(M + "/file", M + "/full/x")'
e "O_CREAT|O_EXCL on an existing file: EEXIST" EEXIST 'os.open(M + "/file", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)'
e "symlink onto an existing name: EEXIST" EEXIST 'os.symlink("x", M + "/file")'
e "mknod onto an existing name: EEXIST" EEXIST 'os.mkfifo(M + "/d")'
e "O_CREAT|O_EXCL on a dangling symlink: EEXIST" EEXIST 'os.open(M + "/dangling", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)'

# ---- ENOTEMPTY, EISDIR, ENOTDIR -----------------------------------------------------------
e "rmdir of a non-empty directory: ENOTEMPTY" ENOTEMPTY 'os.rmdir(M + "/full")'
e "rename a directory over a non-empty one: ENOTEMPTY" "ENOTEMPTY|EEXIST" 'os.rename(M + "/empty", M + "/full")'
e "rename a directory over an empty one works" OK '
os.mkdir(M + "/e1"); os.mkdir(M + "/e2"); open(M + "/e1/in", "w").close()
os.rename(M + "/e1", M + "/e2")
expect(os.path.exists(M + "/e2/in") and not os.path.exists(M + "/e1"), "e2 must now hold e1 content")'
e "unlink of a directory: EISDIR" "EISDIR" 'os.unlink(M + "/d")'
e "open a directory for writing: EISDIR" EISDIR 'os.open(M + "/d", os.O_WRONLY)'
e "open a directory O_RDWR|O_CREAT: EISDIR" EISDIR 'os.open(M + "/d", os.O_RDWR | os.O_CREAT, 0o644)'
e "rename a file over a directory: EISDIR" EISDIR 'os.rename(M + "/file", M + "/empty")'
e "path through a file: ENOTDIR" ENOTDIR 'os.stat(M + "/file/x")'
e "create through a file: ENOTDIR" ENOTDIR 'os.open(M + "/file/x", os.O_CREAT | os.O_WRONLY, 0o644)'
e "rmdir of a file: ENOTDIR" ENOTDIR 'os.rmdir(M + "/file")'
e "O_DIRECTORY on a file: ENOTDIR" ENOTDIR 'os.open(M + "/file", os.O_RDONLY | os.O_DIRECTORY)'
e "rename a directory over a file: ENOTDIR" ENOTDIR 'os.rename(M + "/empty", M + "/file")'
e "rmdir of \".\": EINVAL" EINVAL 'os.rmdir(M + "/d/.")'

# ---- names -------------------------------------------------------------------------------
e "256-byte name: ENAMETOOLONG" ENAMETOOLONG 'open(M + "/" + "n" * 256, "w")'
e "256-byte name in mkdir: ENAMETOOLONG" ENAMETOOLONG 'os.mkdir(M + "/" + "n" * 256)'
e "256-byte name in stat: ENAMETOOLONG" ENAMETOOLONG 'os.stat(M + "/" + "n" * 256)'
e "256-byte name as rename target: ENAMETOOLONG" ENAMETOOLONG 'os.rename(M + "/file", M + "/" + "n" * 256)'
e "255-byte name works (create, stat, list, rename, unlink)" OK '
n = "n" * 254 + "5"
write_file(M + "/" + n, b"long")
expect(os.stat(M + "/" + n).st_size == 4, "size of the long-named file")
expect(n in os.listdir(M), "readdir shows the 255-byte name")
os.rename(M + "/" + n, M + "/d/" + n)
expect(read_file(M + "/d/" + n) == b"long", "content after rename")
os.unlink(M + "/d/" + n)'
e "names with odd bytes (UTF-8, newline, spaces)" OK '
for n in ["é☃ x", "a\nb", " lead", "trail ", "-dash", "x" * 200 + "\u00e9" * 27]:
    p = os.fsencode(M) + b"/" + n.encode()
    write_file(p, n.encode())
    expect(n.encode() in [os.fsencode(x) for x in os.listdir(M)], "listed: %r" % n)
    expect(read_file(p) == n.encode(), "content: %r" % n)
    os.unlink(p)'
e "symlink target of 4095 bytes works" OK '
os.symlink("t" * 4095, M + "/longlink"); expect(len(os.readlink(M + "/longlink")) == 4095, "readlink length")'
e "symlink target of 4096 bytes: ENAMETOOLONG" ENAMETOOLONG 'os.symlink("t" * 4096, M + "/toolong")'

# ---- ELOOP --------------------------------------------------------------------------------
e "symlink loop: ELOOP" ELOOP 'os.symlink("loop2", M + "/loop1"); os.symlink("loop1", M + "/loop2"); os.stat(M + "/loop1")'
e "O_NOFOLLOW on a symlink: ELOOP" ELOOP 'os.symlink("file", M + "/tofile"); os.open(M + "/tofile", os.O_RDONLY | os.O_NOFOLLOW)'
e "self-referencing symlink: ELOOP" ELOOP 'os.symlink("self", M + "/self"); open(M + "/self")'

# ---- rename ----------------------------------------------------------------------------
e "rename across two mmapfs mounts: EXDEV" EXDEV 'os.rename(M + "/file", M2 + "/file")'
e "link across two mmapfs mounts: EXDEV" EXDEV 'os.link(M + "/file", M2 + "/file")'
e "rename a directory into its own subdirectory: EINVAL" EINVAL 'os.rename(M + "/d", M + "/d/sub/d2")'
e "rename a directory into itself: EINVAL" EINVAL 'os.rename(M + "/d", M + "/d/d")'
e "rename to itself is a no-op" OK 'os.rename(M + "/file", M + "/file"); expect(read_file(M + "/file") == b"content\n", "content kept")'
e "rename over a hard link of itself keeps both names" OK '
os.link(M + "/file", M + "/file.l"); os.rename(M + "/file", M + "/file.l")
expect(os.path.exists(M + "/file") and os.stat(M + "/file").st_nlink == 2, "POSIX: rename of two links to one file does nothing")
os.unlink(M + "/file.l")'
e "rename replaces an existing file atomically" OK '
write_file(M + "/r1", b"one"); write_file(M + "/r2", b"two"); ino = os.stat(M + "/r1").st_ino
os.rename(M + "/r1", M + "/r2")
expect(read_file(M + "/r2") == b"one" and os.stat(M + "/r2").st_ino == ino and not os.path.exists(M + "/r1"), "r2 is r1 now")'
e "renameat2 RENAME_NOREPLACE onto an existing name: EEXIST" EEXIST '
write_file(M + "/n1", b"1"); write_file(M + "/n2", b"2"); renameat2(M + "/n1", M + "/n2", RENAME_NOREPLACE)'
e "RENAME_NOREPLACE left both files alone" OK 'expect(read_file(M + "/n1") == b"1" and read_file(M + "/n2") == b"2", "both unchanged")'
e "renameat2 RENAME_NOREPLACE onto a free name works" OK '
renameat2(M + "/n1", M + "/n3", RENAME_NOREPLACE)
expect(read_file(M + "/n3") == b"1" and not os.path.exists(M + "/n1"), "moved")'
e "renameat2 RENAME_EXCHANGE swaps two files" OK '
write_file(M + "/x1", b"first"); write_file(M + "/x2", b"second")
i1, i2 = os.stat(M + "/x1").st_ino, os.stat(M + "/x2").st_ino
renameat2(M + "/x1", M + "/x2", RENAME_EXCHANGE)
expect(read_file(M + "/x1") == b"second" and read_file(M + "/x2") == b"first", "contents swapped")
expect(os.stat(M + "/x1").st_ino == i2 and os.stat(M + "/x2").st_ino == i1, "inodes swapped")'
e "renameat2 RENAME_EXCHANGE swaps a file and a directory across directories" OK '
os.mkdir(M + "/xd"); write_file(M + "/xd/inner", b"i"); write_file(M + "/d/xf", b"f")
renameat2(M + "/xd", M + "/d/xf", RENAME_EXCHANGE)
expect(os.path.isdir(M + "/d/xf") and read_file(M + "/d/xf/inner") == b"i", "directory moved into d")
expect(read_file(M + "/xd") == b"f", "file moved to the top")
expect(os.listdir(M + "/d/xf") == ["inner"], "directory content intact")'
e "RENAME_EXCHANGE updates the parent of a moved directory" OK '
os.rename(M + "/d/xf", M + "/d/xf2")
expect(os.stat(M + "/d/xf2/..").st_ino == os.stat(M + "/d").st_ino, "xf2/.. is d")'
e "renameat2 RENAME_EXCHANGE with a missing target: ENOENT" ENOENT 'renameat2(M + "/x1", M + "/x-missing", RENAME_EXCHANGE)'
e "renameat2 with both flags: EINVAL" EINVAL 'renameat2(M + "/x1", M + "/x2", RENAME_EXCHANGE | RENAME_NOREPLACE)'

# ---- extended attribute names (as ext4) --------------------------------------------------
e "setxattr in an unknown namespace: EOPNOTSUPP" EOPNOTSUPP 'os.setxattr(M + "/file", "bogus.x", b"1")'
e "setxattr system.foo: EOPNOTSUPP" EOPNOTSUPP 'os.setxattr(M + "/file", "system.foo", b"1")'
e "setxattr of a name without a namespace: EOPNOTSUPP" EOPNOTSUPP 'os.setxattr(M + "/file", "plain", b"1")'
e "setxattr user. with nothing after the prefix: EINVAL" EINVAL 'os.setxattr(M + "/file", "user.", b"1")'
e "getxattr in an unknown namespace: EOPNOTSUPP" EOPNOTSUPP 'os.getxattr(M + "/file", "bogus.x")'
e "getxattr trusted. with nothing after the prefix: EINVAL" EINVAL 'os.getxattr(M + "/file", "trusted.")'
e "removexattr in an unknown namespace: EOPNOTSUPP" EOPNOTSUPP 'os.removexattr(M + "/file", "bogus.x")'
e "the three namespaces take names" OK '
for ns in ("user.", "trusted.", "security."):
    os.setxattr(M + "/file", ns + "n", b"v")
    expect(os.getxattr(M + "/file", ns + "n") == b"v", ns + "n reads back")
    os.removexattr(M + "/file", ns + "n")
expect(os.listxattr(M + "/file") == [], "none left: %r" % os.listxattr(M + "/file"))'

# ---- permissions as nobody ---------------------------------------------------------------
P=$M/perm
mkdir -m 0755 "$P"
echo secret >"$P/private"
chmod 0600 "$P/private"
echo shared >"$P/readonly"
chmod 0644 "$P/readonly"
mkdir -m 1777 "$P/sticky"
echo rootfile >"$P/sticky/rootfile"
chmod 0666 "$P/sticky/rootfile"
mkdir -m 0755 "$P/sgid"
chown 0:4321 "$P/sgid"
chmod 2775 "$P/sgid"
echo suid >"$P/suid"
chmod 4777 "$P/suid"
e_nobody "nobody reads a 0600 root file: EACCES" EACCES 'open(M + "/perm/private").read()'
e_nobody "nobody writes a 0644 root file: EACCES" EACCES 'open(M + "/perm/readonly", "a")'
e_nobody "nobody reads a 0644 root file" OK 'expect(open(M + "/perm/readonly").read() == "shared\n", "content")'
e_nobody "nobody creates in a 0755 root directory: EACCES" EACCES 'open(M + "/perm/new", "w")'
e_nobody "nobody mkdir in a 0755 root directory: EACCES" EACCES 'os.mkdir(M + "/perm/newdir")'
e_nobody "nobody unlinks in a 0755 root directory: EACCES" EACCES 'os.unlink(M + "/perm/readonly")'
e_nobody "nobody chmods a root file: EPERM" EPERM 'os.chmod(M + "/perm/readonly", 0o777)'
e_nobody "nobody chowns a root file: EPERM" EPERM 'os.chown(M + "/perm/readonly", 65534, 65534)'
e_nobody "nobody sets times of a root file: EPERM" "EPERM|EACCES" 'os.utime(M + "/perm/readonly", (0, 0))'
e_nobody "nobody sets a user xattr on a root file: EACCES|EPERM" "EACCES|EPERM" 'os.setxattr(M + "/perm/readonly", "user.x", b"1")'
setfattr -n trusted.hidden -v 1 "$P/readonly"
setfattr -n user.shown -v 1 "$P/readonly"
e_nobody "nobody lists the xattrs of a root file: trusted.* left out, as on ext4" OK '
names = os.listxattr(M + "/perm/readonly")
expect(names == ["user.shown"], "names: %r" % names)'
e "root lists them all" OK '
names = sorted(os.listxattr(M + "/perm/readonly"))
expect(names == ["trusted.hidden", "user.shown"], "names: %r" % names)'
# root without CAP_SYS_ADMIN (a container's root, by default): as on ext4,
# no trusted.* names, whose values the kernel refuses it (rsync -X failed
# with "lgetxattr(...,"trusted.hidden",0) failed: No data available")
_run setpriv --bounding-set=-sys_admin -- "$PY" "$ERRNO_CHECK" OK "${ERRNO_PRELUDE}
names = os.listxattr(M + '/perm/readonly')
try:
    os.getxattr(M + '/perm/readonly', 'trusted.hidden')
    expect(False, 'CAP_SYS_ADMIN was not dropped')
except OSError as e:
    expect(e.errno == errno.ENODATA, 'getxattr: %r' % e)
expect(names == ['user.shown'], 'names: %r' % names)"
if [ "$T_RC" -eq 0 ]; then
    pass "root without CAP_SYS_ADMIN lists the xattrs: trusted.* left out, as on ext4"
else
    fail "root without CAP_SYS_ADMIN lists the xattrs: trusted.* left out, as on ext4"
    _tail_output "$T_OUT"
fi
setfattr -x trusted.hidden "$P/readonly"
setfattr -x user.shown "$P/readonly"
e_nobody "nobody deletes root's file in a sticky 1777 directory: EPERM" "EPERM|EACCES" 'os.unlink(M + "/perm/sticky/rootfile")'
e_nobody "nobody renames root's file in a sticky directory: EPERM" "EPERM|EACCES" 'os.rename(M + "/perm/sticky/rootfile", M + "/perm/sticky/mine")'
e_nobody "nobody creates and deletes its own file in the sticky directory" OK '
write_file(M + "/perm/sticky/own", b"mine")
st = os.stat(M + "/perm/sticky/own")
expect((st.st_uid, st.st_gid) == (65534, 65534), "owner of a new file is the caller: %r" % ((st.st_uid, st.st_gid),))
os.unlink(M + "/perm/sticky/own")'
check_eq "root's file in the sticky directory still there" "rootfile" "$(cat "$P/sticky/rootfile")"
echo in-sgid >"$P/sgid/file"
mkdir "$P/sgid/subdir"
check_eq "file in a setgid directory gets the directory's group" 4321 "$(stat -c %g "$P/sgid/file")"
check_eq "subdirectory gets the group and inherits setgid" "4321 2755" "$(stat -c '%g %a' "$P/sgid/subdir")"
check "nobody may write the 4777 file" "${AS_NOBODY[@]}" bash -c 'echo x >> "$0"' "$P/suid"
check_eq "suid bit cleared after a write by another user" "777" "$(stat -c %a "$P/suid")"
echo sgid-exec >"$P/sgidx"
chmod 2777 "$P/sgidx"
check "nobody writes a 2777 file" "${AS_NOBODY[@]}" bash -c 'echo x >> "$0"' "$P/sgidx"
check_eq "setgid (with group exec) cleared after a write by another user" "777" "$(stat -c %a "$P/sgidx")"
check "chown root file to nobody" chown 65534:65534 "$P/readonly"
e_nobody "nobody, now the owner, chmods its file" OK 'os.chmod(M + "/perm/readonly", 0o600)'
e_nobody "nobody cannot give its file away: EPERM" EPERM 'os.chown(M + "/perm/readonly", 0, 0)'
e_nobody "access(2) answers by mode bits" OK '
expect(not os.access(M + "/perm/private", os.R_OK), "no read access to 0600 root file")
expect(os.access(M + "/perm/sticky", os.W_OK), "write access to 1777 directory")'

# ---- sizes: EFBIG, > 4 GiB -------------------------------------------------------------
e "truncate to 2^47 bytes: EFBIG" EFBIG 'open(M + "/big", "w").close(); os.truncate(M + "/big", 1 << 47)'
check_fail "truncate -s 2^47 fails" truncate -s $((1 << 47)) "$M/big"
# With the kernel's writeback cache the limit is only seen when the data is
# written back (docs/MOUNT.md): pwrite or, at the latest, fsync says EFBIG.
e "pwrite past the maximum file size (2^46), then fsync: EFBIG" EFBIG '
fd = os.open(M + "/big", os.O_WRONLY); os.pwrite(fd, b"x", 1 << 46); os.fsync(fd)'
e "truncate to just under the maximum file size works" OK '
os.truncate(M + "/big", (1 << 46) - 4096); expect(os.stat(M + "/big").st_size == (1 << 46) - 4096, "size")
os.truncate(M + "/big", 0)'
e "write at 5 GiB, read back, size right" OK '
fd = os.open(M + "/five", os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"beyond-4GiB", 5 << 30)
os.pwrite(fd, b"ABCD", (4 << 30) - 2)
os.fsync(fd); os.close(fd)
st = os.stat(M + "/five")
expect(st.st_size == (5 << 30) + 11, "size %d" % st.st_size)
expect(st.st_blocks * 512 < (64 << 20), "sparse: %d blocks" % st.st_blocks)
fd = os.open(M + "/five", os.O_RDONLY)
expect(os.pread(fd, 11, 5 << 30) == b"beyond-4GiB", "data at 5 GiB")
expect(os.pread(fd, 8, (4 << 30) - 4) == b"\0\0ABCD\0\0", "data across the 4 GiB boundary")
expect(os.pread(fd, 4096, 3 << 30) == bytes(4096), "hole reads zeros")
expect(os.pread(fd, 100, (5 << 30) + 5) == b"d-4GiB", "short read at EOF")'

# st_blocks once the data is in: with the writeback cache the kernel keeps
# its attributes over the write-back and fsync, so the daemon drops them
# when a write-back first allocates for a file (then, while the file keeps
# growing, they go out with a 0.1 s timeout: docs/MOUNT.md); before, fstat
# of a 1 MiB file written and fsync'd (or fdatasync'd) and still open
# showed 0 blocks.
e "st_blocks of a written, fsync'd, still open file counts its blocks" OK '
for sync in (os.fsync, os.fdatasync):
    name = M + "/blk_" + sync.__name__
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"b" * (1 << 20)); sync(fd)
    expect(os.fstat(fd).st_blocks >= 2048, "%s: fstat %d" % (sync.__name__, os.fstat(fd).st_blocks))
    expect(os.stat(name).st_blocks >= 2048, "%s: stat" % sync.__name__)
    os.close(fd)
for sync in (os.fsync, os.fdatasync):
    os.unlink(M + "/blk_" + sync.__name__)'

# ---- fallocate -------------------------------------------------------------------------
e "fallocate 16 MiB allocates blocks and sets the size" OK '
fd = os.open(M + "/falloc", os.O_RDWR | os.O_CREAT, 0o644)
fallocate(fd, 0, 0, 16 << 20)
st = os.fstat(fd)
expect(st.st_size == 16 << 20, "size %d" % st.st_size)
expect(st.st_blocks * 512 >= 16 << 20, "blocks %d" % st.st_blocks)
expect(os.pread(fd, 65536, 1 << 20) == bytes(65536), "reads zeros")'
e "fallocate KEEP_SIZE leaves the size" OK '
fd = os.open(M + "/falloc", os.O_RDWR)
fallocate(fd, FALLOC_FL_KEEP_SIZE, 16 << 20, 4 << 20)
st = os.fstat(fd)
expect(st.st_size == 16 << 20, "size %d" % st.st_size)
expect(st.st_blocks * 512 >= 20 << 20, "blocks %d" % st.st_blocks)'
e "fallocate PUNCH_HOLE frees blocks and reads zeros" OK '
fd = os.open(M + "/falloc", os.O_RDWR)
os.pwrite(fd, b"\xff" * (8 << 20), 0)
before = os.fstat(fd).st_blocks
fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 << 20, 2 << 20)
st = os.fstat(fd)
expect(st.st_size == 16 << 20, "size kept")
# The punch splits an extent in two; when that overflows the 4 extents the
# inode holds, the file gets one tree node block (as on ext4): 8 sectors.
expect(st.st_blocks <= before - (2 << 20) // 512 + 8, "blocks %d -> %d" % (before, st.st_blocks))
expect(os.pread(fd, 2 << 20, 1 << 20) == bytes(2 << 20), "hole reads zeros")
expect(os.pread(fd, 4, (1 << 20) - 4) == b"\xff" * 4, "data before the hole")
expect(os.pread(fd, 4, 3 << 20) == b"\xff" * 4, "data after the hole")'
e "fallocate ZERO_RANGE zeroes data" OK '
fd = os.open(M + "/falloc", os.O_RDWR)
fallocate(fd, FALLOC_FL_ZERO_RANGE, 4 << 20, 4096 * 3 + 100)
expect(os.pread(fd, 4096 * 3 + 100, 4 << 20) == bytes(4096 * 3 + 100), "zeroed")
expect(os.pread(fd, 4, (4 << 20) + 4096 * 3 + 100) == b"\xff" * 4, "after the range untouched")'
e "fallocate COLLAPSE_RANGE: EOPNOTSUPP" EOPNOTSUPP '
fd = os.open(M + "/falloc", os.O_RDWR); fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 1 << 20)'
e "fallocate INSERT_RANGE: EOPNOTSUPP" EOPNOTSUPP '
fd = os.open(M + "/falloc", os.O_RDWR); fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 1 << 20)'

# ---- SEEK_DATA / SEEK_HOLE -------------------------------------------------------------
e "SEEK_DATA/SEEK_HOLE on a sparse file" OK '
fd = os.open(M + "/holes", os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"a" * 4096, 0)
os.pwrite(fd, b"b" * 4096, 1 << 20)
os.ftruncate(fd, 4 << 20)
expect(os.lseek(fd, 0, os.SEEK_DATA) == 0, "data at 0")
h = os.lseek(fd, 0, os.SEEK_HOLE)
expect(4096 <= h <= 1 << 20, "first hole at %d" % h)
d = os.lseek(fd, 8192, os.SEEK_DATA)
expect(d == 1 << 20, "next data at %d" % d)
h = os.lseek(fd, 1 << 20, os.SEEK_HOLE)
expect((1 << 20) + 4096 <= h <= 4 << 20, "hole after the second block at %d" % h)
expect(os.lseek(fd, (4 << 20) - 1, os.SEEK_HOLE) == (4 << 20) - 1, "inside the trailing hole")'
e "SEEK_DATA past the last data: ENXIO" ENXIO '
fd = os.open(M + "/holes", os.O_RDONLY); os.lseek(fd, 2 << 20, os.SEEK_DATA)'
e "SEEK_HOLE at EOF: ENXIO" ENXIO '
fd = os.open(M + "/holes", os.O_RDONLY); os.lseek(fd, 4 << 20, os.SEEK_HOLE)'
e "SEEK_DATA in a file that is all hole: ENXIO" ENXIO '
fd = os.open(M + "/allhole", os.O_RDWR | os.O_CREAT, 0o644); os.ftruncate(fd, 1 << 20); os.lseek(fd, 0, os.SEEK_DATA)'

# ---- unlinked but open -------------------------------------------------------------------
e "unlinked-but-open file stays usable, its space returns after close" OK '
import time
def used():
    s = os.statvfs(M); return (s.f_blocks - s.f_bfree) * s.f_frsize
base = used()
fd = os.open(M + "/orphan", os.O_RDWR | os.O_CREAT, 0o644)
data = os.urandom(1 << 20) * 48
os.write(fd, data); os.fsync(fd)
grown = used()
expect(grown - base >= 40 << 20, "used grew by %d" % (grown - base))
os.unlink(M + "/orphan")
expect(not os.path.exists(M + "/orphan"), "name gone")
expect(os.fstat(fd).st_nlink == 0, "nlink 0")
expect(os.pread(fd, len(data), 0) == data, "readable after unlink")
os.pwrite(fd, b"tail", len(data)); os.fsync(fd)
expect(os.pread(fd, 4, len(data)) == b"tail", "writable after unlink")
expect(used() - base >= 40 << 20, "space still held while open")
os.close(fd)
deadline = time.time() + 20
while used() - base > 4 << 20 and time.time() < deadline:
    time.sleep(0.2)
expect(used() - base <= 4 << 20, "space returned after close: %d bytes still used" % (used() - base))'
e "an unlinked-but-open directory" OK '
os.mkdir(M + "/gone"); fd = os.open(M + "/gone", os.O_RDONLY); os.rmdir(M + "/gone")
expect(os.fstat(fd).st_nlink == 0, "nlink 0 after rmdir")
os.close(fd)'
e "creating in a removed directory: ENOENT" ENOENT '
os.mkdir(M + "/gone2"); os.chdir(M + "/gone2"); os.rmdir(M + "/gone2"); open("x", "w")'

# ---- statvfs, readdir ------------------------------------------------------------------
e "statvfs: f_namemax 255, sane sizes" OK '
s = os.statvfs(M)
expect(s.f_namemax == 255, "f_namemax %d" % s.f_namemax)
expect(s.f_bsize > 0 and s.f_frsize > 0, "block sizes %d %d" % (s.f_bsize, s.f_frsize))
expect(0 < s.f_bavail <= s.f_bfree <= s.f_blocks, "block counts %d %d %d" % (s.f_bavail, s.f_bfree, s.f_blocks))
expect(0 < s.f_ffree <= s.f_files, "inode counts %d %d" % (s.f_ffree, s.f_files))
expect(abs(s.f_blocks * s.f_frsize - (2 << 30)) <= (2 << 30) // 10, "size %d" % (s.f_blocks * s.f_frsize))'
e "readdir while deleting returns every entry exactly once" OK '
os.mkdir(M + "/many")
names = set("entry-%04d" % i for i in range(2000))
for n in names: open(M + "/many/" + n, "w").close()
seen = []
with os.scandir(M + "/many") as it:
    for i, ent in enumerate(it):
        seen.append(ent.name)
        os.unlink(M + "/many/" + ent.name)
expect(len(seen) == len(set(seen)), "no duplicates: %d names, %d unique" % (len(seen), len(set(seen))))
expect(set(seen) == names, "all seen: %d missing" % len(names - set(seen)))
os.rmdir(M + "/many")'
e "directory st_nlink and readdir types" OK '
os.mkdir(M + "/types"); os.mkdir(M + "/types/dir"); open(M + "/types/reg", "w").close()
os.symlink("reg", M + "/types/lnk"); os.mkfifo(M + "/types/fifo")
kinds = {e.name: (e.is_dir(follow_symlinks=False), e.is_symlink(), e.is_file(follow_symlinks=False)) for e in os.scandir(M + "/types")}
expect(kinds == {"dir": (True, False, False), "reg": (False, False, True), "lnk": (False, True, False), "fifo": (False, False, False)}, repr(kinds))
expect(os.stat(M + "/types").st_nlink == 3, "nlink %d" % os.stat(M + "/types").st_nlink)'
e "timestamps: write updates mtime/ctime, read does not change mtime" OK '
import time
p = M + "/times"; write_file(p, b"x"); s1 = os.stat(p); time.sleep(0.05)
with open(p, "ab") as f: f.write(b"y")
s2 = os.stat(p)
expect(s2.st_mtime_ns > s1.st_mtime_ns and s2.st_ctime_ns > s1.st_ctime_ns, "mtime/ctime advanced")
read_file(p)
expect(os.stat(p).st_mtime_ns == s2.st_mtime_ns, "read leaves mtime")
os.utime(p, ns=(1, 2)); s3 = os.stat(p)
expect((s3.st_atime_ns, s3.st_mtime_ns) == (1, 2), "utime ns %r" % ((s3.st_atime_ns, s3.st_mtime_ns),))
p2 = M + "/times-dir"; os.mkdir(p2); d1 = os.stat(p2); time.sleep(0.05); open(p2 + "/f", "w").close()
expect(os.stat(p2).st_mtime_ns > d1.st_mtime_ns, "directory mtime advanced on create")'
e "O_APPEND writes go to the end; O_TRUNC truncates" OK '
p = M + "/append"; write_file(p, b"12345")
fd = os.open(p, os.O_WRONLY | os.O_APPEND); os.lseek(fd, 0, os.SEEK_SET); os.write(fd, b"678"); os.close(fd)
expect(read_file(p) == b"12345678", "appended")
os.close(os.open(p, os.O_WRONLY | os.O_TRUNC)); expect(os.stat(p).st_size == 0, "truncated")'

unmount_fs "$M"
unmount_fs "$M2"
fsck_clean "$img"
fsck_clean "$img2"
mount_image "$img" "$M"
e "after remount: >4 GiB file, ownership, setgid dir, orphan gone" OK '
fd = os.open(M + "/five", os.O_RDONLY)
expect(os.pread(fd, 11, 5 << 30) == b"beyond-4GiB", "data at 5 GiB")
expect(os.stat(M + "/perm/sgid/subdir").st_gid == 4321, "subdir group")
expect(os.stat(M + "/perm/sgid").st_mode & 0o7777 == 0o2775, "setgid dir mode")
expect(not os.path.exists(M + "/orphan"), "orphan gone")'
unmount_fs "$M"
fsck_clean "$img" "fsck.mmapfs -n clean after remount"
t_finish
