#!/usr/bin/env python3
"""posix_diff.py — the same sequences of system calls on several
filesystems, transcripts compared line by line (tests/integration/
35_posix_diff.sh: ext4 on a loop device against mmapfs).

usage: posix_diff.py REF_ROOT ROOT... [-k case,case]   (as root)
       posix_diff.py --list                             (the case names)

Each case runs in a fresh directory of each root, in a child process
(umask 022), and records return values and errno names, stat fields
(mode, nlink, uid, gid, size, rdev; st_blocks of files over 60 bytes),
which of mtime/ctime changed across an operation (atime is left out:
reads never move it on FUSE, docs/LINUX.md), directory listings with
d_type, xattr lists and values, getfacl output and statvfs fields; parts
run as uid 65534 or 1000, or as root without CAP_SYS_ADMIN or CAP_FSETID.
Differences documented in docs/LINUX.md and docs/MOUNT.md are not probed
(ext4's 16 TiB file limit and time range, FS_IOC_* ioctls,
FIFO times, how many xattrs fit, st_blocks before write-back). Prints
each differing line; exit 1 if any. POSIX_DIFF_VERBOSE=1 prints the
reference transcript too.
"""
import ctypes, ctypes.util, errno, json, os, stat, subprocess, sys, time, traceback

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
libc.lgetxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.lgetxattr.restype = ctypes.c_ssize_t
libc.llistxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.llistxattr.restype = ctypes.c_ssize_t
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]
libc.rewinddir.argtypes = [ctypes.c_void_p]
libc.mknod.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_ulong]
libc.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_ulong), ("d_off", ctypes.c_long), ("d_reclen", ctypes.c_ushort),
                ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]


DT = {0: "UNK", 1: "FIFO", 2: "CHR", 4: "DIR", 6: "BLK", 8: "REG", 10: "LNK", 12: "SOCK", 14: "WHT"}


def cerr(rc):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def renameat2(a, b, flags):
    return cerr(libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), flags))


def mknod(p, mode, dev=0):
    return cerr(libc.mknod(os.fsencode(p), mode, dev))


def linkat(ofd, op, nfd, np, flags):
    return cerr(libc.linkat(ofd, os.fsencode(op), nfd, os.fsencode(np), flags))


def lgetxattr_n(p, name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = cerr(libc.lgetxattr(os.fsencode(p), name.encode(), buf if size else None, size))
    return n, buf.raw[:n] if size else None


def llistxattr_n(p, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = cerr(libc.llistxattr(os.fsencode(p), buf if size else None, size))
    return n, (sorted(buf.raw[:n].split(b"\0")[:-1]) if size else None)


UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


def utimensat(dirfd, p, times, flags=0):
    if times is None:
        arr = None
    else:
        arr = (ctypes.c_long * 4)(*[x for t in times for x in t])
    return cerr(libc.utimensat(dirfd, os.fsencode(p) if p is not None else None, arr, flags))


def fallocate(fd, mode, off, ln):
    return cerr(libc.fallocate(fd, mode, off, ln))


def readdir_raw(p):
    d = libc.opendir(os.fsencode(p))
    if not d:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    out = []
    try:
        while True:
            ctypes.set_errno(0)
            ent = libc.readdir(d)
            if not ent:
                break
            de = Dirent.from_address(ent)
            out.append((de.d_name.decode(errors="surrogateescape"), DT.get(de.d_type, str(de.d_type))))
    finally:
        libc.closedir(d)
    return sorted(out)


def fmt_mode(m):
    return "%s%04o" % ({stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c",
                        stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}.get(stat.S_IFMT(m), "?"),
                       stat.S_IMODE(m))


def fmt_stat(s, blocks=True):
    d = stat.S_ISDIR(s.st_mode)
    parts = ["mode=" + fmt_mode(s.st_mode), "nlink=%d" % s.st_nlink, "uid=%d" % s.st_uid, "gid=%d" % s.st_gid]
    if not d:
        parts.append("size=%d" % s.st_size)
        if blocks and (s.st_size > 60 or not (stat.S_ISREG(s.st_mode) or stat.S_ISLNK(s.st_mode))):
            parts.append("blocks=%d" % s.st_blocks)
    if stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
        parts.append("rdev=%d:%d" % (os.major(s.st_rdev), os.minor(s.st_rdev)))
    return " ".join(parts)


def fmtv(v):
    if isinstance(v, os.stat_result):
        return fmt_stat(v)
    if isinstance(v, bytes) and len(v) > 64:
        return "bytes[%d]" % len(v)
    if isinstance(v, str) and len(v) > 64:
        return "str[%d]" % len(v)
    if isinstance(v, (list, tuple)) and len(repr(v)) > 3000:
        return "%s[%d]" % (type(v).__name__, len(v))
    return repr(v)


def in_child(body):
    """Runs body(lines) in a child process, which appends its transcript
    to lines; returns them (an exception ends them with an EXC line)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        lines = []
        try:
            body(lines)
        except Exception:
            lines.append("EXC " + traceback.format_exc().replace("\n", " | "))
        os.write(wfd, json.dumps(lines).encode())
        os._exit(0)
    os.close(wfd)
    data = b""
    while True:
        b = os.read(rfd, 1 << 20)
        if not b:
            break
        data += b
    os.close(rfd)
    os.waitpid(pid, 0)
    return json.loads(data) if data else ["<child died>"]


class Ctx:
    def __init__(self, root):
        self.root = root
        self.lines = []

    def out(self, *a):
        self.lines.append(" ".join(str(x) for x in a))

    def times(self, paths):
        r = {}
        for p in paths:
            try:
                s = os.lstat(p)
                r[p] = (s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns, s.st_ino)
            except OSError as e:
                r[p] = None
        return r

    def op(self, label, fn, watch=(), nap=True):
        """Run fn, record result/errno; for each watched path, record which times changed."""
        if isinstance(watch, str):
            watch = (watch,)
        before = self.times(watch)
        if nap and watch:
            time.sleep(0.012)
        try:
            v = fn()
            res = "-> " + fmtv(v)
        except OSError as e:
            res = "ERR " + errno.errorcode.get(e.errno, str(e.errno))
        after = self.times(watch)
        ch = []
        for p in watch:
            b, a = before[p], after[p]
            if b is None or a is None:
                ch.append("%s:%s" % (p, "gone" if a is None and b is not None else ("new" if b is None and a is not None else "none")))
            elif b[3] != a[3]:
                ch.append("%s:other-inode" % p)
            else:
                ch.append("%s:%s" % (p, "".join(c for c, x, y in zip("mc", b[1:3], a[1:3]) if x != y) or "-"))
        self.out(label, res, ("[" + " ".join(ch) + "]") if watch else "")
        return res

    def st(self, p, label=None, blocks=True, rough=False):
        """rough: st_blocks to the nearest 256 KiB (extent tree blocks
        are counted on both, but their number differs)"""
        try:
            s = os.lstat(p)
            if rough:
                self.out("stat", label or p, fmt_stat(s, False), "blocks~%dK" % (round(s.st_blocks / 512) * 256))
                return
            self.out("stat", label or p, fmt_stat(s, blocks))
        except OSError as e:
            self.out("stat", label or p, "ERR", errno.errorcode[e.errno])

    def ls(self, p="."):
        try:
            self.out("ls", p, readdir_raw(p))
        except OSError as e:
            self.out("ls", p, "ERR", errno.errorcode[e.errno])

    def xattrs(self, p):
        try:
            names = sorted(os.listxattr(p, follow_symlinks=False))
            vals = []
            for n in names:
                try:
                    vals.append((n, fmtv(os.getxattr(p, n, follow_symlinks=False))))
                except OSError as e:
                    vals.append((n, "ERR " + errno.errorcode[e.errno]))
            self.out("xattrs", p, vals)
        except OSError as e:
            self.out("xattrs", p, "ERR", errno.errorcode[e.errno])

    def facl(self, p):
        r = subprocess.run(["getfacl", "-n", "-p", p], capture_output=True, text=True)
        self.out("getfacl", p, r.returncode, r.stdout.replace("\n", " | "), r.stderr.strip())

    def as_user(self, fn, uid=65534, gid=65534, groups=(), drop_caps=()):
        """Run fn(self) in a child as uid/gid (without the capabilities
        drop_caps, for uid 0); its lines are appended here."""
        def body(lines):
            os.setgroups(list(groups))
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if drop_caps:
                drop_capabilities(drop_caps)
            self.lines = lines
            fn(self)
        for l in in_child(body):
            self.lines.append("[uid %d%s] %s" % (uid, " -caps" if drop_caps else "", l))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


CAP_FSETID, CAP_SYS_ADMIN = 4, 21


def drop_capabilities(caps):
    """Removes caps from this process's effective and permitted sets."""
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    cerr(libc.capget(ctypes.byref(hdr), data))
    for cap in caps:
        data[cap // 32].effective &= ~(1 << (cap % 32))
        data[cap // 32].permitted &= ~(1 << (cap % 32))
    cerr(libc.capset(ctypes.byref(hdr), data))


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def on_fd(p, flags, fn):
    """fn(fd) on a new descriptor of p, closed afterwards."""
    fd = os.open(p, flags)
    try:
        return fn(fd)
    finally:
        os.close(fd)


def wf(p, data=b"x", mode=0o644):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data)
    os.close(fd)


# ----------------------------------------------------------------------------------------
# cases (run with cwd = a fresh, empty directory of the filesystem under test, umask 022)

@case
def open_flags(c):
    wf("f", b"hello")
    os.symlink("nowhere", "dangle")
    os.symlink("f", "lf")
    os.mkdir("d")
    c.op("O_TRUNC on file", lambda: os.close(os.open("f", os.O_WRONLY | os.O_TRUNC)), watch=("f", "."))
    c.st("f")
    wf("f", b"hello")
    c.op("O_TRUNC|O_RDONLY", lambda: os.close(os.open("f", os.O_RDONLY | os.O_TRUNC)), watch=("f",))
    c.st("f")
    wf("f", b"hello")
    c.op("O_TRUNC on empty file", lambda: (os.truncate("f", 0), os.close(os.open("f", os.O_WRONLY | os.O_TRUNC))), watch="f")

    def app():
        fd = os.open("f", os.O_WRONLY | os.O_APPEND)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"AB")
        p = os.lseek(fd, 0, os.SEEK_CUR)
        os.pwrite(fd, b"Z", 0)
        os.close(fd)
        return p, open("f", "rb").read()
    wf("f", b"hello")
    c.op("O_APPEND write+pwrite", app, watch="f")
    c.op("O_CREAT|O_EXCL dangling", lambda: os.open("dangle", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    c.op("O_CREAT dangling (creates target)", lambda: os.close(os.open("dangle", os.O_CREAT | os.O_WRONLY, 0o600)), watch=".")
    c.st("nowhere")
    c.op("O_NOFOLLOW symlink", lambda: os.open("lf", os.O_RDONLY | os.O_NOFOLLOW))
    c.op("O_NOFOLLOW|O_PATH symlink", lambda: fmt_stat(os.fstat(os.open("lf", os.O_PATH | os.O_NOFOLLOW))))
    c.op("O_DIRECTORY file", lambda: os.open("f", os.O_RDONLY | os.O_DIRECTORY))
    c.op("O_DIRECTORY symlink->file", lambda: os.open("lf", os.O_RDONLY | os.O_DIRECTORY))
    c.op("O_CREAT dir", lambda: os.open("d", os.O_CREAT | os.O_RDONLY, 0o644))
    c.op("O_CREAT|O_EXCL dir", lambda: os.open("d", os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o644))
    c.op("O_CREAT|O_DIRECTORY new", lambda: os.open("newd", os.O_CREAT | os.O_DIRECTORY | os.O_RDONLY, 0o644))
    c.st("newd")
    c.op("O_WRONLY dir", lambda: os.open("d", os.O_WRONLY))
    c.op("O_RDONLY|O_TRUNC dir", lambda: os.open("d", os.O_RDONLY | os.O_TRUNC))

    c.op("write on O_RDONLY", lambda: on_fd("f", os.O_RDONLY, lambda fd: os.write(fd, b"x")), watch="f")
    c.op("ftruncate on O_RDONLY", lambda: on_fd("f", os.O_RDONLY, lambda fd: os.ftruncate(fd, 0)), watch="f")
    c.op("read on O_WRONLY", lambda: on_fd("f", os.O_WRONLY, lambda fd: os.read(fd, 1)))

    def opath():
        fd = os.open("f", os.O_PATH)
        r = []
        for nm, f in [("read", lambda: os.read(fd, 1)), ("write", lambda: os.write(fd, b"1")),
                      ("fstat", lambda: fmt_stat(os.fstat(fd))), ("fchmod", lambda: os.fchmod(fd, 0o600)),
                      ("fchown", lambda: os.fchown(fd, 0, 0)), ("ftruncate", lambda: os.ftruncate(fd, 0)),
                      ("fgetxattr", lambda: os.getxattr(fd, "user.x")),
                      ("flistxattr", lambda: os.listxattr(fd)),
                      ("futimens", lambda: utimensat(fd, None, None)),
                      ("fsync", lambda: os.fsync(fd)),
                      ("fstatvfs", lambda: os.fstatvfs(fd).f_namemax),
                      ("AT_EMPTY_PATH futimens", lambda: utimensat(fd, b"", None, 0x1000)),
                      ("fchdir", lambda: os.fchdir(fd))]:
            try:
                r.append((nm, fmtv(f())))
            except OSError as e:
                r.append((nm, errno.errorcode[e.errno]))
        os.close(fd)
        return r
    c.op("O_PATH ops", opath)

    def opath_dir():
        fd = os.open("d", os.O_PATH | os.O_DIRECTORY)
        r = []
        try:
            fd2 = os.open("x", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
            os.close(fd2)
            r.append(sorted(os.listdir("d")))
            r.append(fmtv(os.stat("x", dir_fd=fd)))
        finally:
            os.close(fd)
        return r
    c.op("O_PATH dir as dirfd", opath_dir)
    c.op("open O_RDWR|O_CREAT 0 mode then write", lambda: (os.write(os.open("m0", os.O_RDWR | os.O_CREAT, 0), b"ab")))
    c.st("m0")
    c.op("O_NOATIME as owner", lambda: os.close(os.open("f", os.O_RDONLY | os.O_NOATIME)))
    c.op("open name/ on file", lambda: os.open("f/", os.O_RDONLY))
    c.op("O_CREAT name/ new", lambda: os.open("newf/", os.O_CREAT | os.O_WRONLY, 0o644))
    c.op("open dangling/ ", lambda: os.open("dangle/", os.O_RDONLY))
    c.op("O_EXCL no O_CREAT existing", lambda: os.close(os.open("f", os.O_RDONLY | os.O_EXCL)))
    c.ls()


@case
def rename_basic(c):
    os.mkdir("a"); os.mkdir("b"); os.mkdir("a/sub"); os.mkdir("b/e"); os.mkdir("b/ne"); wf("b/ne/x")
    wf("f"); os.link("f", "f2"); wf("g"); os.mkdir("a/sub/deep")
    w = (".", "a", "b", "a/sub", "b/e")
    c.op("dir over empty dir", lambda: os.rename("a/sub", "b/e"), watch=w + ("b/e/..",))
    for p in (".", "a", "b", "b/e"):
        c.st(p)
    c.op("b/e/.. is b", lambda: os.stat("b/e/..").st_ino == os.stat("b").st_ino)
    c.op("dir over non-empty", lambda: os.rename("b/e", "b/ne"), watch=("b", "b/ne"))
    c.op("dir onto itself", lambda: os.rename("a", "a"), watch=("a", "."))
    c.op("file onto itself", lambda: os.rename("f", "f"), watch=("f", "."))
    c.op("file onto hardlink", lambda: os.rename("f", "f2"), watch=("f", "f2", "."))
    c.st("f"); c.st("f2")
    c.op("into own subdir", lambda: os.rename("b", "b/e/x"))
    c.op("into own subdir deep", lambda: os.rename("b", "b/e/deep/x"))
    c.op("file over dir", lambda: os.rename("g", "b/e"))
    c.op("dir over file", lambda: os.rename("b/e", "g"))
    c.op("file over file (replace)", lambda: os.rename("g", "f2"), watch=("g", "f2", "f", "."))
    c.st("f")
    c.op("rename to dot", lambda: os.rename("a", "."))
    c.op("rename dotdot", lambda: os.rename("b/e/..", "x"))
    c.op("rename dot", lambda: os.rename("a/.", "x"))
    c.op("rename onto dot target", lambda: os.rename("a", "b/."))
    c.op("rename trailing slash file", lambda: os.rename("f", "nf/"))
    c.op("rename trailing slash dir", lambda: os.rename("a/", "a2/"))
    c.op("rename missing", lambda: os.rename("zz", "yy"))
    c.op("rename to path under file", lambda: os.rename("f", "f2/x"))
    c.op("rename name 256", lambda: os.rename("f", "n" * 256))
    c.op("rename name 255", lambda: os.rename("f", "n" * 255), watch=".")
    c.ls()
    for p in (".", "a", "a2", "b", "b/e", "b/ne"):
        c.st(p)


@case
def rename_flags(c):
    os.mkdir("p"); os.mkdir("q"); os.mkdir("p/d"); wf("q/f", b"ff"); os.mkdir("p/d/in")
    wf("a", b"a"); wf("b", b"b")
    w = ("p", "q", "p/d", "q/f")
    c.op("NOREPLACE existing", lambda: renameat2("a", "b", RENAME_NOREPLACE), watch=("a", "b", "."))
    c.op("NOREPLACE new", lambda: renameat2("a", "c", RENAME_NOREPLACE), watch=("a", "."))
    c.op("EXCHANGE missing", lambda: renameat2("c", "zz", RENAME_EXCHANGE))
    c.op("EXCHANGE dir<->file across", lambda: renameat2("p/d", "q/f", RENAME_EXCHANGE), watch=w)
    for x in ("p", "q", "p/d", "q/f", "q/f/in"):
        c.st(x)
    c.op("q/f/.. is q", lambda: os.stat("q/f/..").st_ino == os.stat("q").st_ino)
    c.op("q/f/in/.. is q/f", lambda: os.stat("q/f/in/..").st_ino == os.stat("q/f").st_ino)
    c.op("EXCHANGE same", lambda: renameat2("c", "c", RENAME_EXCHANGE), watch=("c", "."))
    c.op("EXCHANGE hardlinks", lambda: (os.link("c", "c2"), renameat2("c", "c2", RENAME_EXCHANGE)), watch=("c", "."))
    c.op("EXCHANGE dir into own subtree", lambda: renameat2("q", "q/f/in", RENAME_EXCHANGE))
    c.op("EXCHANGE|NOREPLACE", lambda: renameat2("b", "c", RENAME_EXCHANGE | RENAME_NOREPLACE))
    c.op("WHITEOUT|EXCHANGE", lambda: renameat2("b", "c", RENAME_EXCHANGE | RENAME_WHITEOUT))
    c.op("WHITEOUT file", lambda: renameat2("b", "wb", RENAME_WHITEOUT), watch=("b", "."))
    c.st("b"); c.st("wb")
    c.op("WHITEOUT dir over empty dir", lambda: (os.mkdir("w1"), os.mkdir("w2"), renameat2("w1", "w2", RENAME_WHITEOUT)), watch=".")
    c.st("w1"); c.st(".")
    c.op("WHITEOUT|NOREPLACE existing", lambda: renameat2("c", "wb", RENAME_WHITEOUT | RENAME_NOREPLACE))
    c.op("flags 8", lambda: renameat2("c", "zz", 8))
    c.op("EXCHANGE file<->emptydir same dir", lambda: (os.mkdir("ed"), renameat2("c", "ed", RENAME_EXCHANGE)), watch=(".", "c", "ed"))
    c.st("."); c.st("c"); c.st("ed")
    c.ls()
    c.ls("q")
    c.ls("p")


@case
def link_unlink(c):
    os.mkdir("d"); wf("f"); os.mkdir("ne"); wf("ne/x"); os.symlink("f", "lf"); os.symlink("d", "ld")
    c.op("link dir", lambda: os.link("d", "d2"))
    c.op("unlink dir", lambda: os.unlink("d"))
    c.op("rmdir nonempty", lambda: os.rmdir("ne"))
    c.op("rmdir .", lambda: os.rmdir("d/."))
    c.op("rmdir ..", lambda: os.rmdir("d/.."))
    c.op("rmdir cwd .", lambda: os.rmdir("."))
    c.op("mkdir existing", lambda: os.mkdir("d"))
    c.op("mkdir existing file", lambda: os.mkdir("f"))
    c.op("mkdir existing symlink", lambda: os.mkdir("lf"))
    c.op("mkdir dangling symlink", lambda: (os.symlink("nn", "dl"), os.mkdir("dl")))
    c.op("rmdir symlink to dir", lambda: os.rmdir("ld"))
    c.op("rmdir symlink to dir/", lambda: os.rmdir("ld/"))
    c.op("unlink symlink to dir/", lambda: os.unlink("ld/"))
    c.op("unlink file/", lambda: os.unlink("f/"))
    c.op("rmdir file", lambda: os.rmdir("f"))
    c.op("link symlink (no follow)", lambda: os.link("lf", "lf2", follow_symlinks=False), watch=("lf", "."))
    c.st("lf2")
    c.op("link symlink follow", lambda: os.link("lf", "ff2", follow_symlinks=True), watch=("f",))
    c.st("f")
    c.op("link to existing", lambda: os.link("f", "ff2"))
    c.op("link to name/", lambda: os.link("f", "new/"))
    c.op("unlink hardlink", lambda: os.unlink("ff2"), watch=("f", "."))
    c.st("f")
    c.op("mkdir 255", lambda: os.mkdir("d" * 255), watch=".")
    c.op("mkdir 256", lambda: os.mkdir("d" * 256))
    c.op("create 255", lambda: wf("f" * 255))
    c.op("symlink name 256", lambda: os.symlink("x", "s" * 256))
    c.op("symlink 4095", lambda: os.symlink("t" * 4095, "l4095"))
    c.st("l4095")
    c.op("readlink 4095", lambda: len(os.readlink("l4095")))
    c.op("symlink 4096", lambda: os.symlink("t" * 4096, "l4096"))
    c.op("symlink empty", lambda: os.symlink("", "lempty"))
    c.op("symlink 60", lambda: os.symlink("t" * 60, "l60"))
    c.st("l60")
    c.op("symlink 59", lambda: os.symlink("t" * 59, "l59"))
    c.st("l59")
    c.op("symlink 61", lambda: os.symlink("t" * 61, "l61"))
    c.st("l61")
    c.op("symlink 500", lambda: os.symlink("t" * 500, "l500"))
    c.st("l500")
    # path length
    os.makedirs("/".join(["p" * 200] * 5))
    c.op("path 1005 stat", lambda: fmt_stat(os.stat("/".join(["p" * 200] * 5))))
    deep = "/".join(["q" * 250] * 16)
    c.op("path 4015 mkdirs", lambda: os.makedirs(deep))
    c.op("path 4015+ stat of 4096-char path", lambda: os.stat(deep + "/" + "z" * (4095 - len(deep) - 1)))
    c.op("path 4096 chars", lambda: os.stat(deep + "/" + "z" * (4096 - len(deep) - 1)))
    c.op("ELOOP chain 40", lambda: ([os.symlink("c%d" % (i + 1), "c%d" % i) for i in range(41)], wf("c41"), os.stat("c0"))[-1])
    c.op("ELOOP chain 39->ok", lambda: fmt_stat(os.stat("c2")))
    c.op("ELOOP chain from c1", lambda: fmt_stat(os.stat("c1")))
    c.op("symlink to self", lambda: (os.symlink("me", "me"), os.stat("me")))
    c.op("lchown symlink", lambda: os.lchown("lf", 5, 6), watch=("lf",))
    c.st("lf")
    c.op("chmod follows symlink", lambda: os.chmod("lf", 0o600), watch=("lf", "f"))
    c.st("f"); c.st("lf")
    c.op("lchmod symlink", lambda: os.chmod("lf", 0o600, follow_symlinks=False))
    c.ls()


@case
def times_ops(c):
    wf("f", b"12345")
    os.mkdir("d")
    w = ("f", ".")
    time.sleep(0.02)
    c.op("read file (relatime)", lambda: open("f", "rb").read(), watch=w)
    c.op("read file again", lambda: open("f", "rb").read(), watch=w)
    c.op("write", lambda: (lambda fd: (os.write(fd, b"zz"), os.close(fd)))(os.open("f", os.O_WRONLY)), watch=w)
    c.op("write 0 bytes", lambda: (lambda fd: (os.write(fd, b""), os.close(fd)))(os.open("f", os.O_WRONLY)), watch=w)
    c.op("truncate up", lambda: os.truncate("f", 100), watch=w)
    c.st("f")
    c.op("truncate down", lambda: os.truncate("f", 10), watch=w)
    c.op("ftruncate same", lambda: (lambda fd: (os.ftruncate(fd, 10), os.close(fd)))(os.open("f", os.O_WRONLY)), watch=w)
    c.op("chmod", lambda: os.chmod("f", 0o640), watch=w)
    c.op("chmod same", lambda: os.chmod("f", 0o640), watch=w)
    c.op("chown same", lambda: os.chown("f", 0, 0), watch=w)
    c.op("chown -1 -1", lambda: os.chown("f", -1, -1), watch=w)
    c.op("setxattr", lambda: os.setxattr("f", "user.a", b"1"), watch=w)
    c.op("getxattr", lambda: os.getxattr("f", "user.a"), watch=w)
    c.op("listxattr", lambda: os.listxattr("f"), watch=w)
    c.op("removexattr", lambda: os.removexattr("f", "user.a"), watch=w)
    c.op("removexattr missing", lambda: os.removexattr("f", "user.a"), watch=w)
    c.op("link", lambda: os.link("f", "f2"), watch=w)
    c.op("unlink link", lambda: os.unlink("f2"), watch=w)
    c.op("rename in dir", lambda: os.rename("f", "g"), watch=("g", "."))
    c.op("rename to d", lambda: os.rename("g", "d/g"), watch=("d/g", ".", "d"))
    c.op("rename dir", lambda: os.rename("d", "e"), watch=("e", "."))
    c.op("mkdir in e", lambda: os.mkdir("e/sub"), watch=("e", "."))
    c.op("rename subdir across", lambda: os.rename("e/sub", "sub"), watch=("e", ".", "sub"))
    c.op("readdir", lambda: len(os.listdir("e")), watch=("e",))
    c.op("readdir again", lambda: len(os.listdir("e")), watch=("e",))
    c.op("utimensat NOW both", lambda: utimensat(AT_FDCWD, "e/g", None), watch=("e/g",))
    c.op("utimensat OMIT both", lambda: utimensat(AT_FDCWD, "e/g", ((0, UTIME_OMIT), (0, UTIME_OMIT))), watch=("e/g",))
    c.op("utimensat NOW,OMIT", lambda: utimensat(AT_FDCWD, "e/g", ((0, UTIME_NOW), (0, UTIME_OMIT))), watch=("e/g",))
    c.op("utimensat OMIT,NOW", lambda: utimensat(AT_FDCWD, "e/g", ((0, UTIME_OMIT), (0, UTIME_NOW))), watch=("e/g",))
    c.op("utimensat explicit", lambda: utimensat(AT_FDCWD, "e/g", ((1000, 5), (2000, 7))), watch=("e/g",))
    c.op("times explicit", lambda: (os.stat("e/g").st_atime_ns, os.stat("e/g").st_mtime_ns))
    c.op("utimensat explicit,OMIT", lambda: utimensat(AT_FDCWD, "e/g", ((3000, 1), (0, UTIME_OMIT))), watch=("e/g",))
    c.op("times", lambda: (os.stat("e/g").st_atime_ns, os.stat("e/g").st_mtime_ns))
    c.op("utimensat bad nsec", lambda: utimensat(AT_FDCWD, "e/g", ((1, 1000000000), (0, UTIME_OMIT))))
    c.op("utimensat negative", lambda: utimensat(AT_FDCWD, "e/g", ((-5, 0), (-100, 0))))
    c.op("times neg", lambda: (os.stat("e/g").st_atime_ns, os.stat("e/g").st_mtime_ns))
    c.op("utimensat symlink nofollow", lambda: (os.symlink("e/g", "lg"), utimensat(AT_FDCWD, "lg", ((5, 0), (6, 0)), 0x100)), watch=("lg", "e/g"))
    c.op("times lg", lambda: (os.lstat("lg").st_atime_ns, os.lstat("lg").st_mtime_ns))

    def futimens_opath():
        fd = os.open("e/g", os.O_PATH)
        try:
            return utimensat(fd, None, None)
        finally:
            os.close(fd)
    c.op("futimens O_PATH", futimens_opath, watch=("e/g",))

    def futimens_opath_empty():
        fd = os.open("e/g", os.O_PATH)
        try:
            return utimensat(fd, b"", ((7, 0), (8, 0)), 0x1000)
        finally:
            os.close(fd)
    c.op("utimensat O_PATH AT_EMPTY_PATH", futimens_opath_empty, watch=("e/g",))
    c.op("times", lambda: (os.stat("e/g").st_atime_ns, os.stat("e/g").st_mtime_ns))

    def futimens_ro():
        fd = os.open("e/g", os.O_RDONLY)
        try:
            return utimensat(fd, None, ((9, 0), (10, 0)))
        finally:
            os.close(fd)
    c.op("futimens O_RDONLY", futimens_ro, watch=("e/g",))
    c.op("mknod fifo", lambda: os.mkfifo("fifo"), watch=(".",))
    c.op("symlink", lambda: os.symlink("x", "sl"), watch=(".",))
    c.op("unlink fifo", lambda: os.unlink("fifo"), watch=(".",))
    c.op("rmdir", lambda: os.rmdir("sub"), watch=(".",))
    c.op("fallocate", lambda: (lambda fd: (fallocate(fd, 0, 0, 8192), os.close(fd)))(os.open("e/g", os.O_RDWR)), watch=("e/g",))
    c.op("fallocate keep", lambda: (lambda fd: (fallocate(fd, 1, 0, 16384), os.close(fd)))(os.open("e/g", os.O_RDWR)), watch=("e/g",))
    c.op("punch", lambda: (lambda fd: (fallocate(fd, 3, 0, 4096), os.close(fd)))(os.open("e/g", os.O_RDWR)), watch=("e/g",))
    c.st("e/g")
    c.op("O_TRUNC open", lambda: os.close(os.open("e/g", os.O_WRONLY | os.O_TRUNC)), watch=("e/g",))
    c.op("O_TRUNC open again (size 0)", lambda: os.close(os.open("e/g", os.O_WRONLY | os.O_TRUNC)), watch=("e/g",))
    c.op("O_CREAT existing", lambda: os.close(os.open("e/g", os.O_WRONLY | os.O_CREAT)), watch=("e/g", "e"))
    c.op("mmap write", lambda: mmap_write("e/g"), watch=("e/g",))


def mmap_write(p):
    import mmap
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, 4096)
    time.sleep(0.012)
    m = mmap.mmap(fd, 4096)
    m[0:3] = b"abc"
    m.flush()
    m.close()
    os.close(fd)


@case
def perms_nobody(c):
    os.chmod(".", 0o777)
    wf("rootf", b"r")
    wf("nf", b"n", 0o666)
    os.chown("nf", 65534, 65534)
    os.mkdir("sticky", 0o1777)
    os.chmod("sticky", 0o1777)
    wf("sticky/rootf", mode=0o666)
    os.mkdir("sg", 0o2777)
    os.chmod("sg", 0o2777)
    os.chown("sg", 0, 100)

    def body(c):
        c.op("chmod root file", lambda: os.chmod("rootf", 0o777))
        c.op("chown root file", lambda: os.chown("rootf", 65534, 65534))
        c.op("chown own file to root", lambda: os.chown("nf", 0, -1))
        c.op("chgrp own file to 0", lambda: os.chown("nf", -1, 0))
        c.op("chgrp own file to own gid", lambda: os.chown("nf", -1, 65534), watch=("nf",))
        c.op("chown own file -1 -1", lambda: os.chown("nf", -1, -1), watch=("nf",))
        c.op("chmod own g+s (not member)", lambda: os.chmod("nf", 0o2755), watch=("nf",))
        c.st("nf")
        c.op("chmod own u+s", lambda: os.chmod("nf", 0o4755), watch=("nf",))
        c.st("nf")
        c.op("chmod own +t", lambda: os.chmod("nf", 0o1755), watch=("nf",))
        c.st("nf")
        c.op("utimensat NOW on root file (writable)", lambda: utimensat(AT_FDCWD, "rootf", None))
        c.op("utimensat explicit on root file", lambda: utimensat(AT_FDCWD, "rootf", ((1, 0), (2, 0))))
        c.op("utimensat NOW,OMIT root file", lambda: utimensat(AT_FDCWD, "rootf", ((0, UTIME_NOW), (0, UTIME_OMIT))))
        c.op("unlink in sticky not owner", lambda: os.unlink("sticky/rootf"))
        c.op("rename in sticky not owner", lambda: os.rename("sticky/rootf", "sticky/z"))
        c.op("rename over in sticky", lambda: (wf("sticky/mine"), os.rename("sticky/mine", "sticky/rootf"))[1])
        c.op("create in sg", lambda: wf("sg/nb"))
        c.st("sg/nb")
        c.op("mkdir in sg", lambda: os.mkdir("sg/nd"))
        c.st("sg/nd")
        c.op("create g+s in sg not member", lambda: os.close(os.open("sg/sgx", os.O_CREAT | os.O_WRONLY, 0o2775)))
        c.st("sg/sgx")
        c.op("mkdir g+s", lambda: os.mkdir("sgd", 0o2777))
        c.st("sgd")
        c.op("O_NOATIME not owner", lambda: os.open("rootf", os.O_RDONLY | os.O_NOATIME))
        c.op("setxattr user. on root file", lambda: os.setxattr("rootf", "user.x", b"1"))
        c.op("setxattr trusted. own", lambda: os.setxattr("nf", "trusted.x", b"1"))
        c.op("getxattr trusted.", lambda: os.getxattr("nf", "trusted.x"))
        c.op("setxattr security. own", lambda: os.setxattr("nf", "security.x", b"1"))
        c.op("listxattr nf", lambda: sorted(os.listxattr("nf")))
        c.op("link root file (protected_hardlinks)", lambda: os.link("rootf", "rl"))
        c.op("mknod chr", lambda: mknod("chr", stat.S_IFCHR | 0o644, os.makedev(1, 3)))
        c.op("mknod fifo", lambda: mknod("fifo", stat.S_IFIFO | 0o644))
        c.op("mknod whiteout", lambda: mknod("wh", stat.S_IFCHR, 0))
        c.op("rename whiteout", lambda: renameat2("nf", "nf2", RENAME_WHITEOUT))
        c.op("truncate root file", lambda: os.truncate("rootf", 0))
    os.chmod("rootf", 0o646)
    os.chown("sticky/rootf", 0, 0)
    c.as_user(body)
    c.st("nf"); c.st("sticky/rootf"); c.st("sticky/mine")
    c.ls()
    c.xattrs("nf")


@case
def setid_clear(c):
    os.chmod(".", 0o777)
    for m in (0o4755, 0o2755, 0o2745, 0o6777, 0o2666):
        n = "f%o" % m
        wf(n, b"abc", 0o777)
        os.chown(n, 65534, 0)
        os.chmod(n, m)
    os.mkdir("dd", 0o2775); os.chmod("dd", 0o6775)

    def body(c):
        for m in (0o4755, 0o2755, 0o2745, 0o6777, 0o2666):
            n = "f%o" % m
            c.op("write " + n, lambda: (lambda fd: (os.write(fd, b"Q"), os.close(fd)))(os.open(n, os.O_WRONLY)))
            c.st(n)
    c.as_user(body)
    for m in (0o4755, 0o2755, 0o6777):
        n = "g%o" % m
        wf(n, b"abc")
        os.chmod(n, m)
        c.op("chown root " + n, lambda: os.chown(n, 0, 100))
        c.st(n)
        os.chmod(n, m)
        c.op("chown -1 -1 root " + n, lambda: os.chown(n, -1, -1))
        c.st(n)
        os.chmod(n, m)
        c.op("truncate root " + n, lambda: os.truncate(n, 1))
        c.st(n)
    c.op("chown dir", lambda: os.chown("dd", 65534, 65534))
    c.st("dd")


@case
def sparse_blocks(c):
    fd = os.open("s", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"x" * 4096, 1 << 20)
    os.fsync(fd)
    c.st("s", rough=True)
    os.ftruncate(fd, 10 << 20)
    os.fsync(fd)
    c.st("s", rough=True)
    steps = [("fallocate 1M at 2M", lambda: fallocate(fd, 0, 2 << 20, 1 << 20)),
             ("fallocate keep past eof", lambda: fallocate(fd, 1, 20 << 20, 1 << 20)),
             ("punch 2M..2.5M", lambda: fallocate(fd, 3, 2 << 20, 512 << 10)),
             ("zero range 5M..6M", lambda: fallocate(fd, 0x10, 5 << 20, 1 << 20)),
             ("truncate to 1M+100", lambda: os.ftruncate(fd, (1 << 20) + 100))]
    for label, f in steps:
        c.op(label, f)
        os.fsync(fd)
        c.st("s", rough=True)
    c.op("seek data 0", lambda: os.lseek(fd, 0, os.SEEK_DATA))
    c.op("seek hole 1M", lambda: os.lseek(fd, 1 << 20, os.SEEK_HOLE))
    c.op("seek data past eof", lambda: os.lseek(fd, 2 << 20, os.SEEK_DATA))
    c.op("fallocate len 0", lambda: fallocate(fd, 0, 0, 0))
    c.op("fallocate neg", lambda: fallocate(fd, 0, -1, 10))
    c.op("punch without keep", lambda: fallocate(fd, 2, 0, 4096))
    c.op("fallocate unknown mode", lambda: fallocate(fd, 0x80, 0, 4096))
    os.close(fd)
    c.op("fallocate O_RDONLY", lambda: (lambda fd: fallocate(fd, 0, 0, 4096))(os.open("s", os.O_RDONLY)))
    c.op("fallocate O_APPEND punch", lambda: (lambda fd: fallocate(fd, 3, 0, 4096))(os.open("s", os.O_WRONLY | os.O_APPEND)))
    c.op("fallocate dir", lambda: (lambda fd: fallocate(fd, 0, 0, 4096))(os.open(".", os.O_RDONLY)))
    wf("small", b"y" * 100)
    os.sync()
    c.st("small")
    wf("e0", b"")
    c.st("e0")
    fd = os.open("fa", os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, 0, 0, 100)
    c.st("fa", rough=True)
    fallocate(fd, 1, 0, 10000)
    c.st("fa", rough=True)
    os.close(fd)


@case
def xattr_limits(c):
    wf("f")
    os.mkdir("d")
    os.symlink("f", "l")
    os.mkfifo("p")
    c.op("set user.a", lambda: os.setxattr("f", "user.a", b"hello"), watch="f")
    c.op("get small buf", lambda: lgetxattr_n("f", "user.a", 3))
    c.op("get exact buf", lambda: lgetxattr_n("f", "user.a", 5))
    c.op("get size 0", lambda: lgetxattr_n("f", "user.a", 0))
    c.op("get missing", lambda: lgetxattr_n("f", "user.zz", 10))
    c.op("get missing size0", lambda: lgetxattr_n("f", "user.zz", 0))
    c.op("set empty value", lambda: os.setxattr("f", "user.e", b""))
    c.op("get empty", lambda: lgetxattr_n("f", "user.e", 10))
    c.op("get empty size0", lambda: lgetxattr_n("f", "user.e", 0))
    c.op("CREATE existing", lambda: os.setxattr("f", "user.a", b"x", os.XATTR_CREATE))
    c.op("REPLACE missing", lambda: os.setxattr("f", "user.b", b"x", os.XATTR_REPLACE))
    c.op("CREATE|REPLACE", lambda: os.setxattr("f", "user.a", b"x", os.XATTR_CREATE | os.XATTR_REPLACE))
    c.op("REPLACE existing", lambda: os.setxattr("f", "user.a", b"bye", os.XATTR_REPLACE))
    c.op("flags 4", lambda: os.setxattr("f", "user.a", b"bye", 4))
    c.op("list size0", lambda: llistxattr_n("f", 0))
    c.op("list small", lambda: llistxattr_n("f", 5))
    c.op("list exact", lambda: llistxattr_n("f", llistxattr_n("f", 0)[0]))
    c.op("name 255", lambda: os.setxattr("f", "user." + "n" * 250, b"1"))
    c.op("name 256", lambda: os.setxattr("f", "user." + "n" * 251, b"1"))
    c.op("get name 256", lambda: os.getxattr("f", "user." + "n" * 251))
    c.op("remove name 256", lambda: os.removexattr("f", "user." + "n" * 251))
    c.op("name empty", lambda: os.setxattr("f", "", b"1"))
    c.op("name user.", lambda: os.setxattr("f", "user.", b"1"))
    c.op("get user.", lambda: os.getxattr("f", "user."))
    c.op("value 65536", lambda: os.setxattr("f", "user.big", b"v" * 65536))
    c.op("value 65537", lambda: os.setxattr("f", "user.big", b"v" * 65537))
    c.op("value 3000", lambda: os.setxattr("f", "user.v3k", b"v" * 3000))
    c.op("get 3000", lambda: len(os.getxattr("f", "user.v3k")))
    c.op("value 8000", lambda: os.setxattr("f", "user.v8k", b"v" * 8000))
    c.op("remove missing", lambda: os.removexattr("f", "user.nope"))
    c.op("user. on symlink", lambda: os.setxattr("l", "user.s", b"1", follow_symlinks=False))
    c.op("user. on fifo", lambda: os.setxattr("p", "user.s", b"1"))
    c.op("user. on dir", lambda: os.setxattr("d", "user.s", b"1"))
    c.op("trusted. on symlink", lambda: os.setxattr("l", "trusted.s", b"1", follow_symlinks=False))
    c.op("security. on f", lambda: os.setxattr("f", "security.s", b"1"))
    c.op("system.foo", lambda: os.setxattr("f", "system.foo", b"1"))
    c.op("get system.posix_acl_access none", lambda: os.getxattr("f", "system.posix_acl_access"))
    c.op("get system.posix_acl_default file", lambda: os.getxattr("f", "system.posix_acl_default"))
    c.op("get system.posix_acl_default dir none", lambda: os.getxattr("d", "system.posix_acl_default"))
    c.op("remove acl none", lambda: os.removexattr("f", "system.posix_acl_access"))
    c.op("set acl empty value", lambda: os.setxattr("f", "system.posix_acl_access", b""))
    c.op("set default acl empty value dir", lambda: os.setxattr("d", "system.posix_acl_default", b""))
    c.op("set acl on symlink", lambda: os.setxattr("l", "system.posix_acl_access", b"\x02\0\0\0", follow_symlinks=False))
    c.op("get security.capability", lambda: os.getxattr("f", "security.capability"))
    c.op("set bad security.capability", lambda: os.setxattr("f", "security.capability", b"xx"))
    c.xattrs("f"); c.xattrs("d"); c.xattrs("l"); c.xattrs("p")
    c.op("list", lambda: llistxattr_n("f", 4096)[1])


@case
def acls(c):
    wf("f")
    os.mkdir("d")
    r = subprocess.run(["setfacl", "-m", "u:65534:rw,g:100:r", "f"], capture_output=True, text=True)
    c.out("setfacl", r.returncode, r.stderr)
    c.facl("f"); c.st("f")
    r = subprocess.run(["setfacl", "-d", "-m", "u:65534:rwx,m::rx", "d"], capture_output=True, text=True)
    c.out("setfacl -d", r.returncode, r.stderr)
    c.facl("d")
    os.mkdir("d/sub")
    wf("d/file", mode=0o666)
    os.mkfifo("d/fifo", 0o666)
    os.symlink("x", "d/sym")
    for p in ("d/sub", "d/file", "d/fifo", "d/sym"):
        c.facl(p); c.st(p)
    c.op("chmod 0600", lambda: os.chmod("f", 0o600))
    c.facl("f")
    c.op("chmod 0775 on d/sub", lambda: os.chmod("d/sub", 0o775))
    c.facl("d/sub")
    r = subprocess.run(["setfacl", "-m", "u::rwx,g::r,o::-", "f"], capture_output=True, text=True)
    c.facl("f"); c.st("f")
    r = subprocess.run(["setfacl", "-b", "f"], capture_output=True, text=True)
    c.facl("f"); c.st("f"); c.xattrs("f")
    c.xattrs("d")
    c.op("rename into d (acl kept)", lambda: os.rename("f", "d/moved"))
    c.facl("d/moved")
    c.op("mknod chr in d", lambda: mknod("d/chr", stat.S_IFCHR | 0o666, os.makedev(1, 7)))
    c.facl("d/chr"); c.st("d/chr")
    c.op("whiteout in d", lambda: renameat2("d/file", "d/file2", RENAME_WHITEOUT))
    c.facl("d/file"); c.st("d/file")


@case
def mknod_types(c):
    c.op("fifo", lambda: mknod("fifo", stat.S_IFIFO | 0o640), watch=".")
    c.op("sock", lambda: mknod("sock", stat.S_IFSOCK | 0o640))
    c.op("chr", lambda: mknod("chr", stat.S_IFCHR | 0o640, os.makedev(4, 64)))
    c.op("blk", lambda: mknod("blk", stat.S_IFBLK | 0o640, os.makedev(7, 200)))
    c.op("chr big dev", lambda: mknod("chr2", stat.S_IFCHR | 0o640, os.makedev(4095, 1048575)))
    c.op("reg via mknod", lambda: mknod("reg", stat.S_IFREG | 0o640))
    c.op("mode 0 -> reg", lambda: mknod("reg0", 0o640))
    c.op("dir via mknod", lambda: mknod("dd", stat.S_IFDIR | 0o755))
    c.op("bad type", lambda: mknod("bad", 0o170000 | 0o644))
    c.op("fifo existing", lambda: mknod("fifo", stat.S_IFIFO | 0o640))
    c.op("chr with suid", lambda: mknod("chrs", stat.S_IFCHR | 0o6777, os.makedev(1, 3)))
    os.mkdir("d")
    wf("f")
    os.symlink("f", "l")
    import socket
    s = socket.socket(socket.AF_UNIX)
    c.op("bind socket", lambda: s.bind("usock"))
    s.close()
    for p in ("fifo", "sock", "chr", "blk", "chr2", "reg", "reg0", "chrs", "usock", "d", "f", "l"):
        c.st(p)
    c.ls()
    c.op("open fifo nonblock wronly", lambda: os.open("fifo", os.O_WRONLY | os.O_NONBLOCK))
    c.op("open sock", lambda: os.open("sock", os.O_RDONLY))
    c.op("truncate fifo", lambda: os.truncate("fifo", 0))
    c.op("truncate chr", lambda: os.truncate("chr", 0))
    c.op("truncate dir", lambda: os.truncate("d", 0))
    c.op("truncate symlink->f", lambda: os.truncate("l", 1))
    c.op("truncate negative", lambda: os.truncate("f", -1))
    c.op("truncate huge", lambda: os.truncate("f", 1 << 62))
    c.st("f")
    c.op("truncate 0", lambda: os.truncate("f", 0))


@case
def readdir_offsets(c):
    os.mkdir("d")
    N = 3000
    for i in range(N):
        wf("d/f%05d" % i, b"")
    d = libc.opendir(b"d")
    seen = {}
    pos = []
    dup = 0
    n = 0
    removed = set()
    added = 0
    while True:
        ent = libc.readdir(d)
        if not ent:
            break
        de = Dirent.from_address(ent)
        nm = de.d_name.decode()
        if nm in seen:
            dup += 1
        seen[nm] = 1
        n += 1
        if n % 7 == 0:
            pos.append(libc.telldir(d))
        if n % 3 == 0:
            # unlink one not yet seen (from the end) and add a new name
            j = N - 1 - (n // 3)
            if j >= 0 and ("f%05d" % j) not in seen:
                os.unlink("d/f%05d" % j)
                removed.add("f%05d" % j)
            wf("d/new%05d" % n, b"")
            added += 1
    missing = [("f%05d" % i) for i in range(N) if ("f%05d" % i) not in seen and ("f%05d" % i) not in removed]
    c.out("readdir concurrent dup", dup, "missing", len(missing), missing[:5])
    # seekdir back to saved positions: the entry read must be one that exists
    bad = 0
    for p in pos[:50]:
        libc.seekdir(d, p)
        ent = libc.readdir(d)
        if ent:
            nm = Dirent.from_address(ent).d_name.decode()
            if not os.path.lexists("d/" + nm):
                bad += 1
    c.out("seekdir to unlinked positions bad", bad)
    libc.closedir(d)
    # telldir/seekdir stability across opens
    d = libc.opendir(b"d")
    offs = []
    for i in range(100):
        ent = libc.readdir(d)
        offs.append((libc.telldir(d), Dirent.from_address(ent).d_name.decode()))
    libc.closedir(d)
    d = libc.opendir(b"d")
    ok = 0
    for i in range(0, 99):
        libc.seekdir(d, offs[i][0])
        ent = libc.readdir(d)
        if ent and Dirent.from_address(ent).d_name.decode() == offs[i + 1][1]:
            ok += 1
    libc.closedir(d)
    c.out("seekdir across opens matches", ok)
    # . and .. d_type
    c.out("dot entries", [x for x in readdir_raw("d") if x[0] in (".", "..")])


@case
def statfs(c):
    s = os.statvfs(".")
    c.out("statvfs", s.f_bsize, s.f_frsize, s.f_namemax)
    st = os.statvfs(".")
    c.out("blocks>0", st.f_blocks > 0, st.f_bfree <= st.f_blocks, st.f_bavail <= st.f_bfree, st.f_files > 0, st.f_ffree <= st.f_files, st.f_favail == st.f_ffree)
    wf("f")
    fd = os.open("f", os.O_RDONLY)
    c.out("fstatvfs", os.fstatvfs(fd).f_namemax)
    os.close(fd)
    c.op("pathconf NAME_MAX", lambda: os.pathconf(".", "PC_NAME_MAX"))
    c.op("pathconf PATH_MAX", lambda: os.pathconf(".", "PC_PATH_MAX"))
    c.op("st_blksize", lambda: os.stat("f").st_blksize)
    c.op("dir st_blksize", lambda: os.stat(".").st_blksize)


@case
def dir_nlink(c):
    os.mkdir("a")
    c.st("a")
    for i in range(3):
        os.mkdir("a/s%d" % i)
    c.st("a")
    wf("a/f")
    c.st("a")
    os.rmdir("a/s0")
    c.st("a")
    os.rename("a/s1", "s1")
    c.st("a"); c.st(".")
    os.rename("s1", "a/s2")
    c.st("a"); c.st(".")
    c.op("rmdir with open fd then fstat", rmdir_open)


def rmdir_open():
    os.mkdir("rr")
    fd = os.open("rr", os.O_RDONLY)
    os.rmdir("rr")
    s = fmt_stat(os.fstat(fd))
    r = []
    for nm, f in [("create in removed", lambda: os.open("x", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)),
                  ("mkdir in removed", lambda: os.mkdir("x", dir_fd=fd)),
                  ("listdir removed", lambda: os.listdir(fd)),
                  ("stat .. via fd", lambda: os.stat("..", dir_fd=fd).st_ino == os.stat(".").st_ino),
                  ]:
        try:
            r.append((nm, fmtv(f())))
        except OSError as e:
            r.append((nm, errno.errorcode[e.errno]))
    os.close(fd)
    return s, r


@case
def unlinked_open(c):
    wf("f", b"data")
    os.link("f", "g")
    fd = os.open("f", os.O_RDWR)
    os.unlink("f")
    c.out("fstat after 1 unlink", fmt_stat(os.fstat(fd)))
    os.unlink("g")
    c.out("fstat after last unlink", fmt_stat(os.fstat(fd)))
    c.op("linkat AT_EMPTY_PATH unlinked", lambda: linkat(fd, b"", AT_FDCWD, b"back", 0x1000))
    c.op("link via /proc fd", lambda: linkat(AT_FDCWD, ("/proc/self/fd/%d" % fd).encode(), AT_FDCWD, b"back2", 0x400))
    c.op("fchmod unlinked", lambda: os.fchmod(fd, 0o600))
    c.op("fsetxattr unlinked", lambda: os.setxattr(fd, "user.q", b"1"))
    c.op("flistxattr unlinked", lambda: os.listxattr(fd))
    c.op("ftruncate unlinked", lambda: os.ftruncate(fd, 10000))
    c.out("fstat", fmt_stat(os.fstat(fd)))
    os.close(fd)
    wf("h", b"x")
    fd = os.open("h", os.O_RDONLY)
    c.op("linkat AT_EMPTY_PATH linked", lambda: linkat(fd, b"", AT_FDCWD, b"h2", 0x1000))
    c.st("h")
    os.close(fd)
    c.ls()


@case
def seek_unwritten(c):
    fd = os.open("f", os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, 0, 0, 1 << 20)
    c.st("f", rough=True)
    for off in (0, 4096, (1 << 20) - 1, 1 << 20):
        c.op("SEEK_DATA %d" % off, lambda: os.lseek(fd, off, os.SEEK_DATA))
        c.op("SEEK_HOLE %d" % off, lambda: os.lseek(fd, off, os.SEEK_HOLE))
    os.pwrite(fd, b"x", 65536)
    for off in (0, 65536, 65537):
        c.op("after write SEEK_DATA %d" % off, lambda: os.lseek(fd, off, os.SEEK_DATA))
        c.op("after write SEEK_HOLE %d" % off, lambda: os.lseek(fd, off, os.SEEK_HOLE))
    os.fsync(fd)
    for off in (0, 65536, 65537):
        c.op("after fsync SEEK_DATA %d" % off, lambda: os.lseek(fd, off, os.SEEK_DATA))
        c.op("after fsync SEEK_HOLE %d" % off, lambda: os.lseek(fd, off, os.SEEK_HOLE))
    fallocate(fd, 1, 2 << 20, 1 << 20)
    c.op("keep_size SEEK_DATA 1M", lambda: os.lseek(fd, 1 << 20, os.SEEK_DATA))
    c.op("keep_size SEEK_HOLE 70000", lambda: os.lseek(fd, 70000, os.SEEK_HOLE))
    c.op("read unwritten", lambda: os.pread(fd, 8, 100))
    os.ftruncate(fd, 3 << 20)
    c.op("after extend SEEK_DATA 1M", lambda: os.lseek(fd, 1 << 20, os.SEEK_DATA))
    c.op("after extend read 2M", lambda: os.pread(fd, 8, 2 << 20))
    c.st("f", rough=True)
    os.close(fd)
    fd = os.open("g", os.O_RDWR | os.O_CREAT, 0o644)
    c.op("empty SEEK_DATA 0", lambda: os.lseek(fd, 0, os.SEEK_DATA))
    c.op("empty SEEK_HOLE 0", lambda: os.lseek(fd, 0, os.SEEK_HOLE))
    os.write(fd, b"abc")
    c.op("inline SEEK_DATA 0", lambda: os.lseek(fd, 0, os.SEEK_DATA))
    c.op("inline SEEK_HOLE 0", lambda: os.lseek(fd, 0, os.SEEK_HOLE))
    c.op("inline SEEK_DATA 3", lambda: os.lseek(fd, 3, os.SEEK_DATA))
    c.op("inline SEEK_HOLE 2", lambda: os.lseek(fd, 2, os.SEEK_HOLE))
    os.ftruncate(fd, 100000)
    c.op("inline+ext SEEK_HOLE 0", lambda: os.lseek(fd, 0, os.SEEK_HOLE))
    c.op("inline+ext SEEK_DATA 5", lambda: os.lseek(fd, 5, os.SEEK_DATA))
    os.fsync(fd)
    c.op("inline+ext fsync SEEK_HOLE 0", lambda: os.lseek(fd, 0, os.SEEK_HOLE))
    c.op("inline+ext fsync SEEK_DATA 5", lambda: os.lseek(fd, 5, os.SEEK_DATA))
    c.op("SEEK_HOLE neg", lambda: os.lseek(fd, -1, os.SEEK_HOLE))
    c.op("SEEK_DATA at size", lambda: os.lseek(fd, 100000, os.SEEK_DATA))
    c.op("SEEK_HOLE at size", lambda: os.lseek(fd, 100000, os.SEEK_HOLE))
    c.op("SEEK_HOLE size-1", lambda: os.lseek(fd, 99999, os.SEEK_HOLE))
    os.close(fd)
    fd = os.open(".", os.O_RDONLY)
    c.op("dir SEEK_DATA", lambda: os.lseek(fd, 0, os.SEEK_DATA))
    os.close(fd)


@case
def statfs_deltas(c):
    os.sync()
    s0 = os.statvfs(".")
    for i in range(10):
        wf("f%d" % i, b"")
    os.mkdir("d")
    os.symlink("x" * 100, "l")
    os.sync()
    s1 = os.statvfs(".")
    c.out("files used delta", s0.f_ffree - s1.f_ffree, "favail delta", s0.f_favail - s1.f_favail)
    fd = os.open("big", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"z" * (1 << 20))
    os.fsync(fd)
    os.close(fd)
    os.sync()
    s2 = os.statvfs(".")
    c.out("blocks delta ~256", 250 <= (s1.f_bfree - s2.f_bfree) * s2.f_frsize // 4096 <= 262, (s1.f_bfree - s2.f_bfree))
    os.unlink("big")
    os.sync()
    fd = os.open(".", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    time.sleep(0.2)
    s3 = os.statvfs(".")
    c.out("blocks back", abs(s3.f_bfree - s1.f_bfree) <= 2, s3.f_bfree - s1.f_bfree)

@case
def rename_more(c):
    for d in ("p", "q", "p/d1", "q/d2", "p/d1/x", "q/d2/y", "p/wd", "p/wd/z"):
        os.mkdir(d)
    wf("p/f"); os.link("p/f", "q/fl")
    def dots():
        for x in ("p", "q", "q/d1", "p/d2", "p/d1", "q/d2", "q/nw", "p/wd"):
            try:
                s = os.stat(x)
                c.out("dir", x, "nlink", s.st_nlink, "..ok", os.stat(x + "/..").st_ino == os.stat(os.path.dirname(x) or ".").st_ino)
            except OSError as e:
                c.out("dir", x, errno.errorcode[e.errno])
    c.op("EXCHANGE dir<->dir across", lambda: renameat2("p/d1", "q/d2", RENAME_EXCHANGE), watch=("p", "q"))
    dots()
    c.op("x/.. after exchange", lambda: os.stat("q/d2/x/..").st_ino == os.stat("q/d2").st_ino)
    c.op("rename over hardlink across dirs", lambda: os.rename("p/f", "q/fl"), watch=("p", "q", "p/f"))
    c.st("p/f"); c.st("q/fl")
    c.op("WHITEOUT dir across", lambda: renameat2("p/wd", "q/nw", RENAME_WHITEOUT), watch=("p", "q"))
    c.st("p/wd"); c.st("q/nw")
    dots()
    c.ls("p"); c.ls("q")
    c.op("NOREPLACE dir onto empty dir", lambda: (os.mkdir("e1"), os.mkdir("e2"), renameat2("e1", "e2", RENAME_NOREPLACE))[-1])
    c.op("rename onto whiteout (chr)", lambda: os.rename("q/fl", "p/wd"), watch=("p", "q"))
    c.st("p/wd")
    c.op("rename dir onto whiteout", lambda: os.rename("e1", "p/wd"))
    c.op("EXCHANGE with whiteout", lambda: renameat2("e2", "p/wd", RENAME_EXCHANGE))
    c.st("e2"); c.st("p/wd")
    dots()
    # rename a directory that is open (fd) and use the fd afterwards
    os.mkdir("od"); wf("od/in")
    fd = os.open("od", os.O_RDONLY)
    c.op("rename open dir", lambda: os.rename("od", "q/od2"))
    c.op("openat via fd after move", lambda: os.stat("in", dir_fd=fd).st_size)
    c.op("stat .. via fd after move", lambda: os.stat("..", dir_fd=fd).st_ino == os.stat("q").st_ino)
    os.close(fd)
    # unlink while a child process has cwd there
    c.op("rmdir of cwd-held dir", lambda: (os.mkdir("cw"), os.rmdir("cw")))
    c.op("rename dir to long name 255", lambda: os.rename("q/od2", "q/" + "L" * 255))
    c.ls("q")
    # replace a directory that has an open fd
    os.mkdir("tgt")
    fd = os.open("tgt", os.O_RDONLY)
    os.mkdir("src")
    c.op("rename dir over empty dir with open fd", lambda: os.rename("src", "tgt"))
    c.op("fstat replaced dir", lambda: fmt_stat(os.fstat(fd)))
    c.op("create in replaced dir", lambda: os.open("zz", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    c.op("listdir replaced dir", lambda: os.listdir(fd))
    os.close(fd)

@case
def create_modes(c):
    os.chmod(".", 0o777)
    os.mkdir("sg"); os.chmod("sg", 0o2777); os.chown("sg", 0, 100)
    os.mkdir("sgacl"); os.chmod("sgacl", 0o2777); os.chown("sgacl", 0, 100)
    subprocess.run(["setfacl", "-d", "-m", "u::rwx,g::rwx,o::rwx", "sgacl"], check=True)

    def body(c):
        for um in (0o022, 0o000, 0o077):
            os.umask(um)
            for where in (".", "sg", "sgacl"):
                for kind in ("file", "dir", "fifo"):
                    for mode in (0o7777, 0o2775, 0o4755, 0o1777, 0o0666):
                        n = "%s/%s_%d_%03o_%04o" % (where, kind, os.getuid(), um, mode)
                        if kind == "file":
                            f = lambda: os.close(os.open(n, os.O_CREAT | os.O_WRONLY, mode))
                        elif kind == "dir":
                            f = lambda: os.mkdir(n, mode)
                        else:
                            f = lambda: mknod(n, stat.S_IFIFO | mode)
                        r = c.op("create", f)
                        try:
                            s = os.lstat(n)
                            c.out(n, fmt_mode(s.st_mode), s.st_uid, s.st_gid)
                        except OSError as e:
                            c.out(n, errno.errorcode[e.errno])
    c.as_user(body)
    c.as_user(body, uid=0, gid=0)
    c.as_user(body, uid=1000, gid=100)
    for um in (0o022, 0o000):
        os.umask(um)
        c.op("symlink", lambda: os.symlink("x", "sym%03o" % um))
        c.st("sym%03o" % um)
        c.op("symlink in sgacl", lambda: os.symlink("x", "sgacl/sym%03o" % um))
        c.st("sgacl/sym%03o" % um)
        c.facl("sgacl/sym%03o" % um)
    c.op("chmod 7777 dir as root", lambda: os.chmod("sg", 0o7777))
    c.st("sg")
    c.op("chmod symlink-follow 7777", lambda: os.chmod("sym022", 0o7777))

def sh(c, *cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    c.out("$", " ".join(cmd), "rc", r.returncode, r.stdout.replace("\n", " | ")[:300], r.stderr.strip()[:200])


@case
def acls_more(c):
    wf("f"); os.mkdir("d"); os.mkdir("d2")
    steps = [
        ("setfacl", "-m", "u:65534:rwx,g:100:rx,m::rwx", "f"),
        ("setfacl", "-m", "m::r", "f"),
        ("chmod", "g+w", "f"),
        ("setfacl", "-x", "u:65534", "f"),
        ("setfacl", "-x", "g:100", "f"),
        ("setfacl", "-m", "u::r,g::-,o::x", "f"),
        ("setfacl", "-n", "-m", "u:65534:rwx", "f"),
        ("chmod", "2775", "f"),
        ("setfacl", "-m", "u:1000:r", "f"),
        ("chmod", "0", "f"),
        ("setfacl", "--set", "u::rw,g::r,o::r", "f"),
        ("setfacl", "-m", "d:u:65534:rw", "d"),
        ("setfacl", "-m", "u:65534:rwx", "d"),
        ("chmod", "700", "d"),
        ("setfacl", "-k", "d"),
        ("setfacl", "-m", "d:u::rwx,d:g::rx,d:o::-", "d"),
        ("setfacl", "-m", "d:m::r", "d2"),
        ("setfacl", "-b", "d"),
        ("setfacl", "-m", "d:u:65534:r", "f"),
    ]
    for st in steps:
        sh(c, *st)
        c.facl(st[-1]); c.st(st[-1])
        c.xattrs(st[-1])
    os.mkdir("d2/sub"); wf("d2/file")
    c.facl("d2"); c.facl("d2/sub"); c.facl("d2/file"); c.st("d2/file")

    def nobody(c):
        acl = b"\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff\x04\x00\x04\x00\xff\xff\xff\xff\x20\x00\x04\x00\xff\xff\xff\xff"
        c.op("nobody setfacl on root file", lambda: os.setxattr("f", "system.posix_acl_access", acl))
        c.op("nobody removes acl of root file", lambda: os.removexattr("f", "system.posix_acl_access"))
        c.op("nobody reads acl", lambda: len(os.getxattr("f", "system.posix_acl_access")))
    c.as_user(nobody)

@case
def times_more(c):
    os.mkdir("d"); os.mkdir("d/s"); wf("d/f", b"abc"); os.symlink("f", "d/l"); os.mkfifo("d/p")
    time.sleep(0.02)
    W = ("d", "d/s", "d/f", "d/l", "d/p")
    c.op("chmod dir", lambda: os.chmod("d/s", 0o700), watch=W)
    c.op("chown dir", lambda: os.chown("d/s", 1, 1), watch=W)
    c.op("setxattr dir", lambda: os.setxattr("d/s", "user.x", b"1"), watch=W)
    c.op("setxattr symlink trusted", lambda: os.setxattr("d/l", "trusted.x", b"1", follow_symlinks=False), watch=W)
    c.op("lchown symlink", lambda: os.lchown("d/l", 1, 1), watch=W)
    c.op("chmod fifo", lambda: os.chmod("d/p", 0o600), watch=W)
    c.op("utimensat dir NOW", lambda: utimensat(AT_FDCWD, "d/s", None), watch=W)
    c.op("utimensat symlink NOW nofollow", lambda: utimensat(AT_FDCWD, "d/l", None, 0x100), watch=W)
    c.op("rename dir same parent", lambda: os.rename("d/s", "d/s2"), watch=W + ("d/s2",))
    c.op("rename symlink", lambda: os.rename("d/l", "d/l2"), watch=W + ("d/l2",))
    c.op("rename fifo", lambda: os.rename("d/p", "d/p2"), watch=W + ("d/p2",))
    c.op("link fifo", lambda: os.link("d/p2", "d/p3"), watch=("d", "d/p2"))
    c.op("unlink fifo link", lambda: os.unlink("d/p3"), watch=("d", "d/p2"))
    c.op("symlink in d", lambda: os.symlink("q", "d/l3"), watch=("d",))
    c.op("mkdir in s2", lambda: os.mkdir("d/s2/x"), watch=("d", "d/s2"))
    c.op("rmdir in s2", lambda: os.rmdir("d/s2/x"), watch=("d", "d/s2"))
    c.op("open O_CREAT existing dir entry", lambda: os.close(os.open("d/f", os.O_CREAT | os.O_RDONLY)), watch=("d", "d/f"))
    c.op("O_CREAT new", lambda: os.close(os.open("d/new", os.O_CREAT | os.O_RDONLY, 0o644)), watch=("d",))
    c.op("O_CREAT|O_TRUNC new", lambda: os.close(os.open("d/new2", os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)), watch=("d",))
    c.op("stat new2 times equal", lambda: (lambda s: (s.st_atime_ns == s.st_mtime_ns == s.st_ctime_ns))(os.stat("d/new2")))
    c.op("stat new times equal", lambda: (lambda s: (s.st_atime_ns == s.st_mtime_ns == s.st_ctime_ns))(os.stat("d/new")))
    c.op("mkdir times equal", lambda: (os.mkdir("d/nd"), (lambda s: (s.st_atime_ns == s.st_mtime_ns == s.st_ctime_ns))(os.stat("d/nd")))[1])
    c.op("symlink times equal", lambda: (os.symlink("abc", "d/nl"), (lambda s: (s.st_atime_ns == s.st_mtime_ns == s.st_ctime_ns))(os.lstat("d/nl")))[1])
    c.op("dir mtime==ctime after create", lambda: (lambda s: s.st_mtime_ns == s.st_ctime_ns)(os.stat("d")))
    c.op("ftruncate extend O_WRONLY", lambda: (lambda fd: (os.ftruncate(fd, 5000), os.close(fd)))(os.open("d/f", os.O_WRONLY)), watch=("d/f",))
    c.op("pwrite beyond eof", lambda: (lambda fd: (os.pwrite(fd, b"x", 10000), os.close(fd)))(os.open("d/f", os.O_WRONLY)), watch=("d/f",))
    c.op("fallocate keep (no size change)", lambda: (lambda fd: (fallocate(fd, 1, 0, 4096), os.close(fd)))(os.open("d/f", os.O_WRONLY)), watch=("d/f",))
    c.op("fallocate extend", lambda: (lambda fd: (fallocate(fd, 0, 0, 20000), os.close(fd)))(os.open("d/f", os.O_WRONLY)), watch=("d/f",))
    c.op("zero range", lambda: (lambda fd: (fallocate(fd, 0x10, 0, 4096), os.close(fd)))(os.open("d/f", os.O_WRONLY)), watch=("d/f",))
    c.op("zero range keep past eof", lambda: (lambda fd: (fallocate(fd, 0x11, 30000, 4096), os.close(fd)))(os.open("d/f", os.O_WRONLY)), watch=("d/f",))
    c.op("punch past eof", lambda: (lambda fd: (fallocate(fd, 3, 40000, 4096), os.close(fd)))(os.open("d/f", os.O_WRONLY)), watch=("d/f",))
    c.st("d/f", blocks=False)
    c.op("rename dir across (moved dir times)", lambda: os.rename("d/s2", "s3"), watch=("d", ".", "s3"))
    c.op("rmdir", lambda: os.rmdir("s3"), watch=(".",))
    c.op("unlink last link of open file", lambda: unlink_open("d/f"), watch=("d",))


def unlink_open(p):
    fd = os.open(p, os.O_RDWR)
    s0 = os.fstat(fd)
    time.sleep(0.012)
    os.unlink(p)
    s1 = os.fstat(fd)
    os.close(fd)
    return [c for c, a, b in zip("amc", (s0.st_atime_ns, s0.st_mtime_ns, s0.st_ctime_ns), (s1.st_atime_ns, s1.st_mtime_ns, s1.st_ctime_ns)) if a != b], s1.st_nlink

@case
def copy_range(c):
    wf("a", bytes(range(256)) * 64)
    wf("b", b"")
    fa = os.open("a", os.O_RDWR); fb = os.open("b", os.O_RDWR)
    c.op("cfr a->b 1000", lambda: os.copy_file_range(fa, fb, 1000, 10, 5))
    c.op("b content", lambda: open("b", "rb").read()[:20])
    c.st("b", blocks=False)
    c.op("cfr past eof", lambda: os.copy_file_range(fa, fb, 100, 1 << 20, 0))
    c.op("cfr overlapping same file", lambda: os.copy_file_range(fa, fa, 4096, 0, 100))
    c.op("cfr non-overlapping same file", lambda: os.copy_file_range(fa, fa, 100, 0, 8192))
    c.op("a head", lambda: open("a", "rb").read()[8190:8200])
    c.op("cfr huge len", lambda: os.copy_file_range(fa, fb, 1 << 62, 0, 0))
    c.st("b", blocks=False)
    c.op("cfr to O_APPEND", lambda: (lambda fd: os.copy_file_range(fa, fd, 10))(os.open("b", os.O_WRONLY | os.O_APPEND)))
    c.op("cfr from O_WRONLY", lambda: (lambda fd: os.copy_file_range(fd, fb, 10))(os.open("a", os.O_WRONLY)))
    c.op("cfr to O_RDONLY", lambda: (lambda fd: os.copy_file_range(fa, fd, 10))(os.open("b", os.O_RDONLY)))
    os.mkdir("d")
    c.op("cfr from dir", lambda: (lambda fd: os.copy_file_range(fd, fb, 10))(os.open("d", os.O_RDONLY)))
    c.op("sendfile", lambda: os.sendfile(fb, fa, 0, 300))
    c.st("b", blocks=False)
    c.op("splice via pipe", lambda: splice_test(fa, fb))
    c.st("b", blocks=False)
    c.op("FICLONE", lambda: __import__("fcntl").ioctl(fb, 0x40049409, fa))
    c.op("FIONREAD on file", lambda: __import__("fcntl").ioctl(fa, 0x541B, b"\0" * 4))
    c.op("times unchanged src", lambda: None, watch=("a",))
    os.close(fa); os.close(fb)


def splice_test(fa, fb):
    r, w = os.pipe()
    n = os.splice(fa, w, 500, offset_src=3)
    m = os.splice(r, fb, n, offset_dst=20000)
    os.close(r); os.close(w)
    return n, m

@case
def long_names(c):
    wf("f"); os.mkdir("d"); os.symlink("f", "l")
    for n in (256, 1024, 1025, 4000):
        nm = "n" * n
        c.op("create %d" % n, lambda: os.open(nm, os.O_CREAT | os.O_WRONLY, 0o644))
        c.op("open %d" % n, lambda: os.open(nm, os.O_RDONLY))
        c.op("mkdir %d" % n, lambda: os.mkdir(nm))
        c.op("mknod %d" % n, lambda: os.mkfifo(nm))
        c.op("symlink %d" % n, lambda: os.symlink("x", nm))
        c.op("symlink target name %d" % n, lambda: os.symlink(nm, "t%d" % n))
        c.op("readlink %d" % n, lambda: len(os.readlink("t%d" % n)))
        c.op("stat via symlink %d" % n, lambda: os.stat("t%d" % n))
        c.op("link %d" % n, lambda: os.link("f", nm))
        c.op("rename to %d" % n, lambda: os.rename("f", nm))
        c.op("rename from %d" % n, lambda: os.rename(nm, "g"))
        c.op("unlink %d" % n, lambda: os.unlink(nm))
        c.op("rmdir %d" % n, lambda: os.rmdir(nm))
        c.op("stat %d" % n, lambda: os.stat(nm))
        c.op("d/stat %d" % n, lambda: os.stat("d/" + nm))
        c.op("setxattr name %d" % n, lambda: os.setxattr("f", "user." + "x" * (n - 5), b"1"))
        c.op("getxattr name %d" % n, lambda: os.getxattr("f", "user." + "x" * (n - 5)))
        c.op("removexattr name %d" % n, lambda: os.removexattr("f", "user." + "x" * (n - 5)))
        c.op("renameat2 exchange %d" % n, lambda: renameat2("f", nm, RENAME_EXCHANGE))
    c.ls()


@case
def caps_root(c):
    """root without CAP_SYS_ADMIN / CAP_FSETID (a container's root)"""
    os.chmod(".", 0o777)
    wf("x")
    os.setxattr("x", "trusted.t", b"1")
    os.setxattr("x", "user.u", b"2")
    for n, m in (("t4777", 0o4777), ("t2767", 0o2767), ("w2767", 0o2767), ("w6766", 0o6766),
                 ("n4777", 0o4777), ("n2666", 0o2666)):
        wf(n, b"abc")
        os.chown(n, 1000, 100)
        os.chmod(n, m)

    def nosysadmin(c):
        c.op("listxattr", lambda: sorted(os.listxattr("x")))
        c.op("getxattr trusted", lambda: os.getxattr("x", "trusted.t"))

    def nofsetid(c):
        c.op("truncate t4777", lambda: os.truncate("t4777", 1))
        c.op("truncate t2767", lambda: os.truncate("t2767", 1))
        c.op("write w2767", lambda: (lambda fd: (os.write(fd, b"Q"), os.close(fd)))(os.open("w2767", os.O_WRONLY)))
        c.op("write w6766", lambda: (lambda fd: (os.write(fd, b"Q"), os.close(fd)))(os.open("w6766", os.O_WRONLY)))
        c.op("chown -1 -1 w6766", lambda: os.chown("w6766", -1, -1))

    def fsetid(c):
        c.op("truncate n4777", lambda: os.truncate("n4777", 1))
        c.op("truncate n2666", lambda: os.truncate("n2666", 1))
    c.as_user(nosysadmin, uid=0, gid=0, drop_caps=(CAP_SYS_ADMIN,))
    c.as_user(nofsetid, uid=0, gid=0, drop_caps=(CAP_FSETID,))
    for n in ("t4777", "t2767", "w2767", "w6766"):
        c.st(n)
    # a non-root caller with CAP_FSETID: keep it across setresuid
    def keep_fsetid():
        PR_SET_KEEPCAPS = 8
        libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
    def body(lines):
        keep_fsetid()
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        hdr = _CapHeader(0x20080522, 0)
        data = (_CapData * 2)()
        data[0].effective = data[0].permitted = 1 << CAP_FSETID
        cerr(libc.capset(ctypes.byref(hdr), data))
        sub = Ctx(c.root)
        sub.lines = lines
        fsetid(sub)
    for l in in_child(body):
        c.out("[uid 65534 +fsetid]", l)
    for n in ("n4777", "n2666"):
        c.st(n)

if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--list"]:
        print("\n".join(CASES))
        sys.exit(0)
    only = None
    if "-k" in args:
        i = args.index("-k")
        only = args[i + 1].split(",")
        del args[i:i + 2]
    roots = args
    os.umask(0o022)
    ndiff = 0
    stamp = "%d" % os.getpid()
    for name, fn in CASES.items():
        if only and name not in only:
            continue
        outs = []
        for r in roots:
            d = os.path.join(r, "c_%s_%s" % (name, stamp))
            os.mkdir(d)

            def body(lines):
                c = Ctx(r)
                c.lines = lines
                os.chdir(d)
                fn(c)
            outs.append(in_child(body))
        ref = outs[0]
        for r, o in zip(roots[1:], outs[1:]):
            n = max(len(ref), len(o))
            for i in range(n):
                a = ref[i] if i < len(ref) else "<none>"
                b = o[i] if i < len(o) else "<none>"
                if a != b:
                    ndiff += 1
                    print("== %s [%s] line %d" % (name, os.path.basename(r), i))
                    print("  ref: " + a)
                    print("  got: " + b)
        if os.environ.get("POSIX_DIFF_VERBOSE"):
            print("\n".join("%s: %s" % (name, l) for l in ref))
    print("differences:", ndiff)
    sys.exit(1 if ndiff else 0)
