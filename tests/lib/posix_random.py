#!/usr/bin/env python3
"""posix_random.py — seeded random system calls, the same sequence run in
lockstep on a reference filesystem (ext4 on a loop device) and on an
mmapfs mount, compared after every step (tests/integration/
36_posix_random.sh).

usage: posix_random.py --ref DIR --mnt MNT --image IMG --mmapfs BIN
                       --fsck BIN [--opts OPTS] [--seeds N,M,...]
                       [--steps N] [--dir NAME] [--verbose]    (as root)

Every seed works in a fresh directory "rnd" (--dir) of each root with a
small tree: names from a pool of four, at most three levels deep, so the
same paths are hit again and again. One step is one operation chosen by
the seeded generator: open (O_CREAT, O_EXCL, O_TRUNC, O_APPEND,
O_DIRECTORY, O_NOFOLLOW) into one of four descriptor slots, close,
write, pwrite (also far past EOF, making holes), read, pread, lseek
(SEEK_DATA and SEEK_HOLE too), truncate, ftruncate, fallocate (default,
KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE), fsync, fdatasync, writes through a
shared mapping with msync, copy_file_range, rename (plain,
RENAME_NOREPLACE, RENAME_EXCHANGE), link, unlink, mkdir, rmdir,
symlink, readlink, chmod, chown, set/get/list/removexattr (user.*,
XATTR_CREATE/REPLACE, values of 0 bytes to a few KiB), mkfifo,
utimensat, stat, O_DIRECT reads and writes of whole pages, scattered
writes or punches (up to 150 in one file: extents split and merge),
directories of up to 120 entries created, renamed and removed at once,
and some of these as uid 1000 or 65534 (opens with writes, truncate,
chmod, chown, utimensat, unlink, rename, mkdir, xattrs: permission
checks and set-ID clearing; the mount needs allow_other); and now and
then a remount of mmapfs with `fsck.mmapfs -n` of the image in between
(which must be clean) and the page cache dropped.

Compared after every step: the return value or errno name (and the
bytes read), then the state of the whole tree: for each path its type,
mode, nlink, uid, gid, size (not of directories: mmapfs counts entries,
ext4 bytes), symlink target, content, xattr names and values, and the
entries of each directory with their d_type. On some steps ("timed", a
pause before them so that the clocks tick) also which paths had mtime
and ctime changed by the step, except FIFOs (docs/LINUX.md "FIFO
times") and writes through a mapping (ext4 stamps the time at the page
fault, FUSE at write-back) and truncate(2) to the size a file has (the
FUSE module under the writeback cache stamps nothing then, docs/MOUNT.md).
Not compared: inode numbers, st_blocks,
atime, time values (but utimensat reads back the times it set).

Kernel-imposed differences are not compared but still run on mmapfs,
which must fail and leave the tree as it was: FALLOC_FL_COLLAPSE_RANGE
and FALLOC_FL_INSERT_RANGE (the FUSE module refuses them, EOPNOTSUPP,
after the VFS's own checks). O_TMPFILE (opened and closed) is compared
like any operation since mmapfs has it (it was EOPNOTSUPP before
2026-12-06; docs/LINUX.md). Where
SEEK_DATA and SEEK_HOLE land is each filesystem's choice, so each side's
answer is checked on its own (no byte that is not zero in a hole it
reports); lseek of a directory past SEEK_SET/SEEK_CUR is not compared
(docs/LINUX.md "lseek limits").

The first difference ends the run (exit 1) with the seed, the step, the
last operations and the differing state; rerun with that seed alone and
--verbose to see every step.
"""
import argparse, ctypes, ctypes.util, errno, fcntl, hashlib, mmap, os, random, shutil, stat, subprocess, sys, time

from posix_diff import readdir_raw   # sorted [(name, d_type name)], "." and ".." too

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
libc.syncfs.argtypes = [ctypes.c_int]
O_TMPFILE = getattr(os, "O_TMPFILE", 0o20200000)

NAMES = ("a", "b", "c", "d")
SLOTS = 4
XATTRS = ("user.x", "user.y", "user.z")
IDS = (0, 1000, 65534)
TOP = "rnd"
# ext4 (4 KiB blocks, 256-byte inodes) keeps an inode's xattrs in the
# inode and one block; mmapfs chains blocks without limit (docs/LINUX.md
# "Extended attributes"). The generator keeps every inode under this many
# bytes of names and values, where both take them all.
XATTR_BUDGET = 3400


def ename(e):
    return errno.errorcode.get(e, str(e))


def cerr(rc):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


# ---- the operations -----------------------------------------------------------
#
# Each operation is a tuple (name, args...) made by Gen.op() from the seeded
# generator; run_op() performs it on one side and returns a value that is
# compared between the sides (an errno name for a failure).

class Side:
    def __init__(self, label, root, top=TOP):
        self.label = label
        self.root = root
        self.top = top
        self.fds = [None] * SLOTS

    def p(self, rel):
        assert not rel.startswith("/") and ".." not in rel.split("/")
        return os.path.join(self.root, self.top, rel) if rel else os.path.join(self.root, self.top)

    def close_all(self):
        for i, fd in enumerate(self.fds):
            if fd is not None:
                os.close(fd)
                self.fds[i] = None


def fd_of(side, slot):
    fd = side.fds[slot]
    if fd is None:
        raise OSError(errno.EBADF, "slot closed")
    return fd


# Operations that return nothing: (side, args) -> None.
SIMPLE_OPS = {
    "ftruncate": lambda side, a: os.ftruncate(fd_of(side, a[0]), a[1]),
    "truncate": lambda side, a: os.truncate(side.p(a[0]), a[1]),
    "fsync": lambda side, a: os.fsync(fd_of(side, a[0])),
    "fdatasync": lambda side, a: os.fdatasync(fd_of(side, a[0])),
    "link": lambda side, a: os.link(side.p(a[0]), side.p(a[1]), follow_symlinks=False),
    "unlink": lambda side, a: os.unlink(side.p(a[0])),
    "mkdir": lambda side, a: os.mkdir(side.p(a[0]), a[1]),
    "rmdir": lambda side, a: os.rmdir(side.p(a[0])),
    "symlink": lambda side, a: os.symlink(a[0], side.p(a[1])),
    "mkfifo": lambda side, a: os.mkfifo(side.p(a[0]), a[1]),
    "chmod": lambda side, a: os.chmod(side.p(a[0]), a[1]),
    "chown": lambda side, a: os.chown(side.p(a[0]), a[1], a[2], follow_symlinks=a[3]),
    "removexattr": lambda side, a: os.removexattr(side.p(a[0]), a[1], follow_symlinks=False),
    "setxattr": lambda side, a: os.setxattr(side.p(a[0]), a[1], a[2], a[3], follow_symlinks=False),
}


def run_op(side, op):
    try:
        return _run_op(side, op)
    except OSError as e:
        return "E" + ename(e.errno)


def _run_op(side, op):
    name, a = op[0], op[1:]
    P = side.p
    if name in SIMPLE_OPS:
        SIMPLE_OPS[name](side, a)
        return "ok"
    if name == "open":
        slot, rel, flags, mode = a
        fd = os.open(P(rel), flags | os.O_NONBLOCK, mode)
        if side.fds[slot] is not None:
            os.close(side.fds[slot])
        side.fds[slot] = fd
        return "ok"
    if name == "close":
        fd = fd_of(side, a[0])
        side.fds[a[0]] = None
        os.close(fd)
        return "ok"
    if name == "write":
        slot, data = a
        return os.write(fd_of(side, slot), data)
    if name == "pwrite":
        slot, data, off = a
        return os.pwrite(fd_of(side, slot), data, off)
    if name == "read":
        slot, n = a
        return digest(os.read(fd_of(side, slot), n))
    if name == "pread":
        slot, n, off = a
        return digest(os.pread(fd_of(side, slot), n, off))
    if name == "lseek":
        slot, off, whence = a
        fd = fd_of(side, slot)
        try:
            pos = os.lseek(fd, off, whence)
        except OSError as e:
            # no data after off: valid if only zeros follow (ext4 may have
            # them in unwritten extents, mmapfs in holes)
            if e.errno != errno.ENXIO or whence != os.SEEK_DATA or off >= os.fstat(fd).st_size:
                raise
            return Seek(None, seek_valid(fd, off, whence, None))
        if whence in (os.SEEK_DATA, os.SEEK_HOLE):
            return Seek(pos, seek_valid(fd, off, whence, pos))
        return pos
    if name == "fallocate":
        slot, mode, off, ln = a
        return cerr(libc.fallocate(fd_of(side, slot), mode, off, ln))
    if name == "mmap_write":
        slot, frac, data = a
        fd = fd_of(side, slot)
        size = os.fstat(fd).st_size
        if not stat.S_ISREG(os.fstat(fd).st_mode) or size == 0:
            return "skip"
        off = int(frac * size) % size
        data = data[:size - off]
        try:
            m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except ValueError:
            return "EINVAL"
        try:
            m[off:off + len(data)] = data
            m.flush()
        finally:
            m.close()
        return len(data)
    if name == "copy_file_range":
        src, dst, n, soff, doff = a
        return os.copy_file_range(fd_of(side, src), fd_of(side, dst), n, soff, doff)
    if name == "rename":
        src, dst, flags = a
        return cerr(libc.renameat2(AT_FDCWD, os.fsencode(P(src)), AT_FDCWD, os.fsencode(P(dst)), flags))
    if name == "readlink":
        return os.readlink(P(a[0]))
    if name == "utimens":
        rel, ns, follow = a
        if ns is None:
            os.utime(P(rel), None, follow_symlinks=follow)
            return "ok"
        os.utime(P(rel), ns=ns, follow_symlinks=follow)
        s = os.stat(P(rel), follow_symlinks=follow)
        return (s.st_atime_ns, s.st_mtime_ns)
    if name == "getxattr":
        return digest(os.getxattr(P(a[0]), a[1], follow_symlinks=False))
    if name == "listxattr":
        return sorted(os.listxattr(P(a[0]), follow_symlinks=False))
    if name == "stat":
        s = os.stat(P(a[0]), follow_symlinks=a[1])
        return stat_key(s)
    if name == "fstat":
        return stat_key(os.fstat(fd_of(side, a[0])))
    if name == "tmpfile":
        dirrel, mode = a
        fd = os.open(P(dirrel), O_TMPFILE | os.O_RDWR, mode)
        os.close(fd)
        return "ok"
    if name in ("openw", "direct_write", "direct_read"):
        return with_fd(P, name, a)
    if name == "as_user":
        return as_user(side, a[0], a[1], a[2])
    if name == "scatter":
        # many small writes or punches in one file: extents split and merge
        slot, mode, spots = a
        fd = fd_of(side, slot)
        for off, x in spots:
            if mode == "write":
                os.pwrite(fd, x, off)
            else:
                cerr(libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, x))
        return "ok"
    if name == "populate":
        # a directory of many entries: creates (or with unlink, removes)
        # names n000.. in it, or renames them to m000..
        rel, how, n = a
        for i in range(n):
            f = os.path.join(P(rel), "n%03d" % i)
            if how == "create":
                os.close(os.open(f, os.O_CREAT | os.O_WRONLY | os.O_NONBLOCK, 0o644))
            elif how == "unlink":
                os.unlink(f)
            else:
                os.rename(f, os.path.join(P(rel), "m%03d" % i))
        return "ok"
    raise ValueError("unknown operation %r" % (name,))


def with_fd(P, name, a):
    """The operations that open a file of their own: openw (an open, a
    pwrite if there is data, a close), direct_write and direct_read
    (O_DIRECT through a page-aligned buffer, as ext4 needs)."""
    if name == "openw":
        rel, flags, mode, off, data = a
    elif name == "direct_write":
        (rel, off, data), flags, mode = a, os.O_WRONLY | os.O_DIRECT, 0
    else:
        (rel, off, n), flags, mode = a, os.O_RDONLY | os.O_DIRECT, 0
    fd = os.open(P(rel), flags | os.O_NONBLOCK, mode)
    try:
        if name == "openw":
            return os.pwrite(fd, data, off) if data else "ok"
        if name == "direct_read":
            buf = mmap.mmap(-1, max(n, 4096))
            got = os.preadv(fd, [memoryview(buf)[:n]], off)
            return digest(buf[:got])
        buf = mmap.mmap(-1, max(len(data), 4096))
        buf[:len(data)] = data
        return os.pwrite(fd, memoryview(buf)[:len(data)], off)
    finally:
        os.close(fd)


def as_user(side, uid, gid, op):
    """Runs op in a child with uid and gid (no supplementary groups, so
    without root's capabilities); returns its result."""
    def child():
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        return run_op(Side(side.label, side.root, side.top), op)
    return in_child(child)


def in_child(fn):
    """Runs fn() in a child process; returns the repr of its result
    ("'EXC'" if it raised)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        res = "EXC"
        try:
            os.close(rfd)
            res = fn()
        finally:
            os.write(wfd, repr(res).encode())
            os._exit(0)
    os.close(wfd)
    out = b""
    while True:
        b = os.read(rfd, 65536)
        if not b:
            break
        out += b
    os.close(rfd)
    os.waitpid(pid, 0)
    return "%s" % out.decode()


class Seek:
    """Where SEEK_DATA/SEEK_HOLE landed, and whether that is a valid answer."""
    def __init__(self, pos, verdict):
        self.pos, self.verdict = pos, verdict

    def __repr__(self):
        return "%s (%s)" % ("ENXIO" if self.pos is None else self.pos, self.verdict)


def seek_valid(fd, off, whence, pos):
    """Where SEEK_DATA and SEEK_HOLE land is the filesystem's choice
    (ext4 counts an unwritten extent as data when the page cache has its
    pages), so each side is checked on its own: no byte that is not zero
    in what it reports as a hole, a position within the file."""
    rfd = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)
    try:
        size = os.fstat(rfd).st_size
        if pos is None:   # SEEK_DATA found none
            pos = size
        elif not off <= pos <= size or (whence == os.SEEK_DATA and pos == size):
            return "position %d outside [%d, %d)" % (pos, off, size)
        if whence == os.SEEK_DATA:
            start, end = off, pos
        else:
            start = pos
            try:
                end = os.lseek(rfd, pos, os.SEEK_DATA)
            except OSError:
                end = size
        b = os.pread(rfd, end - start, start)
        if b.count(0) != len(b):
            return "data at %d in the hole %d..%d" % (start + len(b) - len(b.lstrip(b"\0")), start, end)
        return "valid"
    finally:
        os.close(rfd)


def digest(b):
    return "%d:%s" % (len(b), hashlib.sha1(b).hexdigest()[:16])


def stat_key(s):
    m = s.st_mode
    key = ("%o" % m, s.st_nlink, s.st_uid, s.st_gid)
    if not stat.S_ISDIR(m):
        key += (s.st_size,)
    return key


# Operations that mmapfs cannot do for reasons of the kernel (see the top
# of this file): collapse and insert run on mmapfs alone.
def mmapfs_only(op):
    return op[0] == "fallocate" and op[2] & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)


def same_size_truncate(ref, op):
    """A truncate(2) of a regular file to the size it has (before the step)."""
    if op[0] != "truncate":
        return False
    try:
        s = os.stat(ref.p(op[1]))
    except OSError:
        return False
    return stat.S_ISREG(s.st_mode) and s.st_size == op[2]


def uncompared(ref, op):
    """Operations whose results differ by design: lseek on a directory
    beyond SEEK_SET/SEEK_CUR (the FUSE module's generic_file_llseek ends a
    directory at its st_size, on mmapfs its number of entries; ext4's
    hashed directories at 2^63-1: docs/LINUX.md "lseek limits")."""
    if op[0] == "lseek" and op[3] not in (os.SEEK_SET, os.SEEK_CUR):
        fd = ref.fds[op[1]]
        return fd is not None and stat.S_ISDIR(os.fstat(fd).st_mode)
    return False


# ---- the generator ----------------------------------------------------------------

class Gen:
    def __init__(self, seed, ref):
        self.r = random.Random(seed)
        self.ref = ref   # the reference side: the generator may look at its state
        self.types = {}   # its paths after the last step: S_IFMT, set by run_seed

    def path(self, depth=None):
        """Mostly a path that exists on the reference, or a new name in an
        existing directory; else any path of the pool."""
        r = self.r
        k = r.random()
        if depth is None and self.types and k < 0.75:
            p = r.choice(sorted(self.types))
            if k < 0.45 or p.count("/") >= 2:
                return p
            dirs = sorted(d for d, t in self.types.items() if t == stat.S_IFDIR and d.count("/") < 2)
            d = r.choice(dirs + [""])
            return (d + "/" if d else "") + r.choice(NAMES)
        depth = depth or r.choice((1, 1, 2, 2, 3))
        return "/".join(r.choice(NAMES) for _ in range(depth))

    def banded(self, bands):
        """A number below the bound of the first (cumulative probability,
        bound) band the draw falls in."""
        k = self.r.random()
        for cum, bound in bands:
            if k < cum:
                return self.r.randrange(0, bound)
        return None

    def size(self):
        """An offset or a file size: mostly small, at most 4 MiB."""
        n = self.banded(((0.15, 130), (0.5, 9000), (0.8, 300000), (0.95, 4 << 20)))
        return self.r.choice((0, 4096, 8192, 65536, 1 << 20)) if n is None else n

    def length(self):
        """A byte count for a read or a write."""
        return self.banded(((0.4, 100), (0.85, 10000), (1.0, 70000)))

    def data(self, n):
        r = self.r
        k = r.random()
        if k < 0.2:
            return bytes([r.randrange(256)]) * n
        if k < 0.3:
            return bytes(n)   # zeros: must not be taken for a hole's
        return r.randbytes(n)

    def slot(self, want=None):
        """Mostly a slot with a descriptor open on the reference; for
        want "r" or "w" mostly one of a regular file open for that."""
        r = self.r
        fit = []
        for i, fd in enumerate(self.ref.fds):
            if fd is None:
                continue
            acc = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
            if want is None or (stat.S_ISREG(os.fstat(fd).st_mode) and
                                acc in ((os.O_RDONLY, os.O_RDWR) if want == "r" else (os.O_WRONLY, os.O_RDWR))):
                fit.append(i)
        if fit and r.random() < 0.9:
            return r.choice(fit)
        return r.randrange(SLOTS)

    def mode(self):
        r = self.r
        return r.choice((0o644, 0o600, 0o755, 0o777, 0o000, 0o4755, 0o2755, 0o6777, 0o1777, 0o2644,
                         r.randrange(0o10000)))

    def xattr_value(self, rel, xname):
        """A value size that keeps the inode within XATTR_BUDGET on the reference."""
        r = self.r
        used = 0
        try:
            p = self.ref.p(rel)
            for n in os.listxattr(p, follow_symlinks=False):
                if n != xname:
                    used += len(n) + 32 + len(os.getxattr(p, n, follow_symlinks=False))
        except OSError:
            pass
        room = max(0, XATTR_BUDGET - used - len(xname) - 32)
        n = r.choice((0, 1, r.randrange(1, 64), r.randrange(1, 1200), r.randrange(1, 4000)))
        return self.data(min(n, room))

    def op(self, forced=None):
        r = self.r
        ops = (("open", 14), ("close", 4), ("write", 8), ("pwrite", 8), ("read", 3), ("pread", 3),
               ("lseek", 4), ("ftruncate", 3), ("truncate", 2), ("fallocate", 6), ("fsync", 1),
               ("fdatasync", 1), ("mmap_write", 3), ("copy_file_range", 3), ("rename", 8),
               ("link", 3), ("unlink", 4), ("mkdir", 5), ("rmdir", 3), ("symlink", 3), ("readlink", 1),
               ("chmod", 2), ("chown", 2), ("setxattr", 5), ("getxattr", 2), ("listxattr", 1),
               ("removexattr", 2), ("mkfifo", 1), ("utimens", 2), ("stat", 2), ("fstat", 1),
               ("tmpfile", 1), ("direct_write", 2), ("direct_read", 1), ("as_user", 8),
               ("scatter", 3), ("populate", 1))
        name = forced or r.choices([o[0] for o in ops], [o[1] for o in ops])[0]
        if name == "open":
            acc = r.choice((os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_RDWR, os.O_RDWR))
            flags = acc
            for f, pr in ((os.O_CREAT, 0.6), (os.O_EXCL, 0.15), (os.O_TRUNC, 0.15), (os.O_APPEND, 0.15),
                          (os.O_DIRECTORY, 0.05), (os.O_NOFOLLOW, 0.05)):
                if r.random() < pr:
                    flags |= f
            files = sorted(p for p, t in self.types.items() if t == stat.S_IFREG)
            p = r.choice(files) if files and r.random() < 0.5 else self.path()
            return ("open", r.randrange(SLOTS), p, flags, self.mode())
        if name == "close":
            return ("close", self.slot())
        if name == "write":
            return ("write", self.slot("w"), self.data(self.length()))
        if name == "pwrite":
            return ("pwrite", self.slot("w"), self.data(self.length()), self.size())
        if name == "read":
            return ("read", self.slot("r"), self.length())
        if name == "pread":
            return ("pread", self.slot("r"), self.length(), self.size())
        if name == "lseek":
            whence = r.choice((os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, os.SEEK_DATA, os.SEEK_DATA,
                               os.SEEK_HOLE, os.SEEK_HOLE))
            off = self.size()
            if whence in (os.SEEK_CUR, os.SEEK_END) and r.random() < 0.5:
                off = -r.randrange(0, 10000)
            return ("lseek", self.slot(), off, whence)
        if name == "ftruncate":
            return ("ftruncate", self.slot("w"), self.size())
        if name == "truncate":
            return ("truncate", self.path(), self.size())
        if name == "fallocate":
            mode = r.choice((0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE,
                             FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
                             FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE))
            if mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE) or r.random() < 0.3:
                off = r.randrange(0, 64) * 4096
                ln = r.randrange(0, 16) * 4096
            else:
                off = self.size()
                ln = self.length() if r.random() < 0.7 else self.size()
            return ("fallocate", self.slot("w"), mode, off, ln)
        if name in ("fsync", "fdatasync", "fstat", "close"):
            return (name, self.slot())
        if name == "mmap_write":
            return ("mmap_write", self.slot("w"), r.random(), self.data(self.length()))
        if name == "copy_file_range":
            return ("copy_file_range", self.slot("r"), self.slot("w"), self.length(), self.size(), self.size())
        if name == "rename":
            flags = r.choice((0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE))
            src = self.path()
            k = r.random()
            if k < 0.1:
                dst = src
            elif k < 0.2:
                dst = src + "/" + r.choice(NAMES)   # into itself
            elif k < 0.3 and "/" in src:
                dst = src.rsplit("/", 1)[0]          # onto its parent
            else:
                dst = self.path()
            return ("rename", src, dst, flags)
        if name == "link":
            return ("link", self.path(), self.path())
        if name in ("unlink", "rmdir", "readlink", "listxattr"):
            return (name, self.path())
        if name == "mkdir":
            return ("mkdir", self.path(), r.choice((0o755, 0o700, 0o777, 0o2755, 0o1777)))
        if name == "symlink":
            # Never absolute nor with "..": with "." links in the tree a
            # path can climb out of the test directory (and the two
            # roots differ there: lost+found).
            target = r.choice(("a", "b", "d/a", "x", "a/b/c", ".", "c/", "a/."))
            return ("symlink", target, self.path())
        if name == "mkfifo":
            return ("mkfifo", self.path(), r.choice((0o644, 0o600, 0o666)))
        if name == "chmod":
            return ("chmod", self.path(), self.mode())
        if name == "chown":
            return ("chown", self.path(), r.choice(IDS + (-1,)), r.choice(IDS + (-1,)), r.random() < 0.7)
        if name == "utimens":
            def t():
                k = r.random()
                # within ext4's range (1901..2446, docs/LINUX.md)
                if k < 0.6:
                    return r.randrange(-2 ** 31, 2 ** 33) * 10 ** 9 + r.randrange(10 ** 9)
                return r.randrange(0, 2 ** 31) * 10 ** 9
            return ("utimens", self.path(), (t(), t()), r.random() < 0.7)
        if name == "setxattr":
            rel = self.path()
            xname = r.choice(XATTRS)
            flags = r.choice((0, 0, os.XATTR_CREATE, os.XATTR_REPLACE))
            return ("setxattr", rel, xname, self.xattr_value(rel, xname), flags)
        if name in ("getxattr", "removexattr"):
            return (name, self.path(), r.choice(XATTRS))
        if name == "stat":
            return ("stat", self.path(), r.random() < 0.5)
        if name == "tmpfile":
            return ("tmpfile", r.choice(("", self.path(1))), 0o600)
        if name == "direct_write":
            return ("direct_write", self.file(), r.randrange(0, 80) * 4096,
                    self.data(r.randrange(1, 5) * 4096))
        if name == "direct_read":
            return ("direct_read", self.file(), r.randrange(0, 80) * 4096, r.randrange(1, 5) * 4096)
        if name == "scatter":
            mode = r.choice(("write", "write", "punch"))
            top = r.choice((70000, 1 << 20, 4 << 20))
            unit = r.choice((1, 4096))
            spots = []
            for _ in range(r.randrange(1, 150)):
                off = r.randrange(0, top // unit) * unit
                if mode == "write":
                    spots.append((off, self.data(r.randrange(1, 3) * unit if unit > 1 else r.randrange(1, 9000))))
                else:
                    spots.append((off, r.randrange(1, 4) * unit if unit > 1 else r.randrange(1, 9000)))
            return ("scatter", self.slot("w"), mode, tuple(spots))
        if name == "populate":
            dirs = sorted(p for p, t in self.types.items() if t == stat.S_IFDIR)
            return ("populate", r.choice(dirs) if dirs else self.path(), r.choice(("create", "unlink", "rename")),
                    r.randrange(1, 120))
        if name == "as_user":
            return ("as_user", r.choice((1000, 65534)), r.choice((1000, 65534)), self.user_op())
        raise ValueError(name)

    def file(self):
        """Mostly an existing regular file of the reference."""
        files = sorted(p for p, t in self.types.items() if t == stat.S_IFREG)
        return self.r.choice(files) if files and self.r.random() < 0.8 else self.path()

    def user_op(self):
        """An operation for a user without privileges: permission checks,
        set-user-ID and set-group-ID clearing, sticky directories."""
        r = self.r
        k = r.choice(("openw", "openw", "openw", "truncate", "chmod", "chown", "utimens", "utimens_now",
                      "unlink", "rename", "mkdir", "setxattr", "removexattr", "rmdir", "symlink", "link"))
        if k == "openw":
            flags = r.choice((os.O_WRONLY, os.O_RDWR, os.O_RDONLY)) | r.choice((0, os.O_CREAT, os.O_TRUNC,
                                                                              os.O_APPEND, os.O_CREAT | os.O_EXCL))
            return ("openw", self.file(), flags, self.mode(), self.size() if r.random() < 0.5 else 0,
                    self.data(r.choice((0, 1, self.length()))))
        if k == "truncate":
            return ("truncate", self.file(), self.size())
        if k == "chown":
            return ("chown", self.path(), r.choice(IDS + (-1,)), r.choice(IDS + (-1,)), r.random() < 0.7)
        if k == "utimens_now":
            return ("utimens", self.path(), None, True)
        if k == "unlink":
            return ("unlink", self.path())
        if k == "rmdir":
            return ("rmdir", self.path())
        if k == "rename":
            return ("rename", self.path(), self.path(), r.choice((0, RENAME_NOREPLACE, RENAME_EXCHANGE)))
        if k == "symlink":
            return ("symlink", "a", self.path())
        if k == "link":
            return ("link", self.path(), self.path())
        return self.op(k)


def show_op(op):
    out = []
    for x in op:
        if isinstance(x, bytes):
            out.append("bytes[%d]" % len(x))
        elif isinstance(x, tuple) and x and isinstance(x[0], str):
            out.append(show_op(x))
        elif isinstance(x, tuple) and len(repr(x)) > 200:
            out.append("(%d items)" % len(x))
        elif isinstance(x, int) and op[0] == "open" and x is op[3]:
            out.append(open_flags(x))
        else:
            out.append(repr(x))
    return "%s(%s)" % (op[0], ", ".join(out[1:]))


def open_flags(f):
    names = [n for n in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_EXCL", "O_TRUNC", "O_APPEND", "O_DIRECTORY",
                         "O_NOFOLLOW") if f & getattr(os, n)]
    return "|".join(names) or "O_RDONLY"


# ---- the state of a tree --------------------------------------------------------------

CHUNK = 1 << 16
_zero_digests = {}


def zero_digest(n):
    if n not in _zero_digests:
        _zero_digests[n] = hashlib.sha1(bytes(n)).digest()
    return _zero_digests[n]


def data_ranges(fd, size):
    """[(start, end)] of the file that SEEK_DATA/SEEK_HOLE call data."""
    out, pos = [], 0
    while pos < size:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        pos = h
    return out


def file_content(path, direct):
    """Content digest of a regular file, the same whatever its holes: a
    digest of the digests of its 64 KiB chunks. direct=True reads every
    chunk with O_DIRECT (on FUSE from the daemon, after the kernel wrote
    back its dirty pages); otherwise chunks that SEEK_DATA/SEEK_HOLE put
    wholly in a hole are taken as zeros without reading them (their
    answers are checked on their own by the lseek operation)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (os.O_DIRECT if direct else 0))
    try:
        size = os.fstat(fd).st_size
        data = [(0, size)] if direct else data_ranges(fd, size)
        h = hashlib.sha1()
        for c in range(0, size, CHUNK):
            n = min(CHUNK, size - c)
            if any(d < c + n and e > c for d, e in data):
                b = os.pread(fd, n, c)
                if len(b) != n:
                    return "short read of %d at %d: %d" % (n, c, len(b))
                h.update(hashlib.sha1(b).digest())
            else:
                h.update(zero_digest(n))
        return "%d:%s" % (size, h.hexdigest()[:16])
    finally:
        os.close(fd)


def snapshot(side, direct=False):
    """{relative path: (description tuple, (mtime_ns, ctime_ns))} of the tree."""
    out = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        p = side.p(rel)
        s = os.lstat(p)
        m = s.st_mode
        d = [stat_key(s)]
        if stat.S_ISLNK(m):
            d.append(os.readlink(p))
        elif stat.S_ISREG(m):
            d.append(file_content(p, direct))
        if not stat.S_ISLNK(m):
            xs = []
            for n in sorted(os.listxattr(p, follow_symlinks=False)):
                xs.append((n, digest(os.getxattr(p, n, follow_symlinks=False))))
            d.append(tuple(xs))
        if stat.S_ISDIR(m):
            entries = readdir_raw(p)
            d.append(tuple(entries))
            names = [n for n, _ in entries if n not in (".", "..")]
            todo.extend(os.path.join(rel, n) if rel else n for n in names)
        out[rel or "."] = (tuple(d), (s.st_mtime_ns, s.st_ctime_ns, s.st_ino), stat.S_IFMT(m))
    return out


def state_diff(a, b, la, lb):
    lines = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if x is None or y is None or x[0] != y[0]:
            lines.append("  %s: %s %s" % (k, la, x[0] if x else "missing"))
            lines.append("  %s: %s %s" % (k, lb, y[0] if y else "missing"))
    return lines


def time_changes(before, after, op):
    """{path: 'm'/'c'/'mc'/''} for the paths that name the same inode
    before and after."""
    out = {}
    for k in after:
        if k not in before or before[k][1][2] != after[k][1][2] or after[k][2] == stat.S_IFIFO:
            continue
        b, a = before[k][1], after[k][1]
        out[k] = ("m" if a[0] != b[0] else "") + ("c" if a[1] != b[1] else "")
    return out


# ---- the mmapfs mount -------------------------------------------------------------------

class Mount:
    def __init__(self, args):
        self.a = args

    def daemons(self):
        exe = os.path.realpath(self.a.mmapfs)
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.path.realpath("/proc/%s/exe" % d) != exe:
                    continue
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if os.fsencode(self.a.mnt) in argv:
                pids.append(int(d))
        return pids

    def remount(self):
        """Unmounts mmapfs, checks the image with fsck.mmapfs -n, mounts it
        again; returns None or a description of what failed."""
        a = self.a
        r = subprocess.run(["fusermount3", "-u", a.mnt], capture_output=True, text=True, timeout=60)
        if r.returncode:
            return "fusermount3 -u: " + r.stderr.strip()
        deadline = time.time() + 60
        while self.daemons():
            if time.time() > deadline:
                return "the daemon did not exit within 60 s of the unmount"
            time.sleep(0.05)
        r = subprocess.run([a.fsck, "-n", a.image], capture_output=True, text=True, timeout=120)
        if r.returncode:
            return "fsck.mmapfs -n exit %d:\n%s%s" % (r.returncode, r.stdout, r.stderr)
        cmd = [a.mmapfs, a.image, a.mnt] + (["-o", a.opts] if a.opts else [])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode or not os.path.ismount(a.mnt):
            return "mount: exit %d %s" % (r.returncode, r.stderr.strip())
        return None


def drop_caches(ref):
    fd = os.open(ref.root, os.O_RDONLY)
    try:
        libc.syncfs(fd)
    finally:
        os.close(fd)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def print_failure(seed, step, what, history, lines):
    print("FAIL seed %d step %d: %s" % (seed, step, what))
    for h in history[-25:]:
        print("    " + h)
    for line in lines:
        print(line)


# ---- one seed ------------------------------------------------------------------------------

def run_seed(seed, args, mount):
    ref = Side("ext4", args.ref, args.dir)
    mfs = Side("mmapfs", args.mnt, args.dir)
    for s in (ref, mfs):
        shutil.rmtree(s.p(""), ignore_errors=True)
        os.mkdir(s.p(""))
        os.chmod(s.p(""), 0o777)   # as_user operations may create here
    gen = Gen(seed, ref)
    history = []
    before = {ref: snapshot(ref), mfs: snapshot(mfs)}

    def failed(step, what, lines=()):
        print_failure(seed, step, what, history, lines)
        ref.close_all()
        mfs.close_all()
        return False

    for step in range(1, args.steps + 1):
        r = gen.r
        k = r.random()
        if k < args.remount:
            ref.close_all()
            mfs.close_all()
            history.append("%4d remount (fds closed, fsck -n, page cache dropped)" % step)
            err = mount.remount()
            if err:
                return failed(step, "remount", [err])
            drop_caches(ref)
            op = None
        elif k < args.remount + 0.01:
            history.append("%4d drop caches" % step)
            drop_caches(ref)
            op = None
        else:
            gen.types = {k: v[2] for k, v in before[ref].items() if k != "."}
            op = gen.op()
        timed = op is not None and r.random() < 0.3 and op[0] != "mmap_write"
        direct = r.random() < 0.2
        if timed and same_size_truncate(ref, op):
            # truncate(2) to the size a regular file has: the FUSE module
            # under the writeback cache changes no time and sends none,
            # ext4 stamps both (docs/MOUNT.md, 87_timestamps.sh)
            timed = False
        if op is not None:
            if timed:
                time.sleep(0.012)
            res_ref = "E*" if mmapfs_only(op) else run_op(ref, op)
            res_mfs = run_op(mfs, op)
            if mmapfs_only(op):
                # Before the FUSE module refuses the mode (EOPNOTSUPP), the
                # VFS checks the descriptor, the file type and the range.
                res_ref = res_mfs if str(res_mfs).startswith("E") else "E<any>"
            if uncompared(ref, op):
                res_ref = res_mfs = "(not compared)"
                for side in (ref, mfs):   # and not carried on
                    os.lseek(side.fds[op[1]], 0, os.SEEK_SET)
            history.append("%4d %s%s -> %s" % (step, show_op(op), " [timed]" if timed else "", res_ref))
            if args.verbose:
                print(history[-1], flush=True)
            if isinstance(res_ref, Seek) and isinstance(res_mfs, Seek):
                # both SEEK_DATA/SEEK_HOLE landed: each must be valid; the
                # descriptors go on from the same offset
                os.lseek(mfs.fds[op[1]], os.lseek(ref.fds[op[1]], 0, os.SEEK_CUR), os.SEEK_SET)
                res_ref, res_mfs = res_ref.verdict, res_mfs.verdict
            if res_ref != res_mfs:
                lines = state_diff(snapshot(ref), snapshot(mfs), "ext4  ", "mmapfs")
                return failed(step, "results differ", ["  ext4:   %r" % (res_ref,), "  mmapfs: %r" % (res_mfs,)] +
                              (["  and the state after it:"] + lines if lines else []))
        after = {ref: snapshot(ref), mfs: snapshot(mfs, direct)}
        lines = state_diff(after[ref], after[mfs], "ext4  ", "mmapfs")
        if lines:
            return failed(step, "state differs" + (" (mmapfs read with O_DIRECT)" if direct else ""), lines)
        if timed:
            cr = time_changes(before[ref], after[ref], op)
            cm = time_changes(before[mfs], after[mfs], op)
            if cr != cm:
                diff = []
                for k in sorted(set(cr) | set(cm)):
                    if cr.get(k) != cm.get(k):
                        diff.append("  %s: ext4 %r, mmapfs %r" % (k, cr.get(k), cm.get(k)))
                        for side in (ref, mfs):
                            b, a = before[side].get(k), after[side].get(k)
                            diff.append("    %-6s mtime, ctime before %s, after %s" % (
                                side.label, b[1][:2] if b else "-", a[1][:2] if a else "-"))
                return failed(step, "mtime/ctime changes differ", diff)
        before = after
    ref.close_all()
    mfs.close_all()
    err = mount.remount()
    if err:
        return failed(args.steps, "final remount", [err])
    drop_caches(ref)
    lines = state_diff(snapshot(ref), snapshot(mfs), "ext4  ", "mmapfs")
    if lines:
        return failed(args.steps, "state differs after the final remount", lines)
    return True


def lockstep_parser(doc, steps):
    """The options of a lockstep run against an mmapfs mount (also
    data_random.py's)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--ref", required=True)
    ap.add_argument("--mnt", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--mmapfs", required=True)
    ap.add_argument("--fsck", required=True)
    ap.add_argument("--opts", default="")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--remount", type=float, default=0.01, help="probability of a remount per step")
    ap.add_argument("--verbose", action="store_true")
    return ap


def run_seeds(args, run_seed, prog):
    """Runs run_seed(seed, args, mount) for each of --seeds up to the
    first failure; the exit status."""
    mount = Mount(args)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    ok = 0
    for seed in seeds:
        t = time.time()
        if run_seed(seed, args, mount):
            ok += 1
            print("ok   seed %d: %d steps (%.1f s)" % (seed, args.steps, time.time() - t), flush=True)
        else:
            print("rerun: %s ... --seeds %d --steps %d --verbose" % (prog, seed, args.steps))
            break
    print("%d passed, %d failed" % (ok, 0 if ok == len(seeds) else 1))
    return 0 if ok == len(seeds) else 1


def main():
    ap = lockstep_parser(__doc__, 200)
    ap.add_argument("--dir", default=TOP, help="the test directory in each root")
    args = ap.parse_args()
    os.umask(0o022)
    return run_seeds(args, run_seed, "posix_random.py")


if __name__ == "__main__":
    sys.exit(main())
