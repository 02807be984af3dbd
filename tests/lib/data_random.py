#!/usr/bin/env python3
"""data_random.py — seeded random data operations on two files, run in
lockstep on a reference filesystem (ext4 on a loop device) and on an
mmapfs mount, the contents compared byte for byte after every step
(tests/integration/37_data_random.sh).

usage: data_random.py --ref DIR --mnt MNT --image IMG --mmapfs BIN
                      --fsck BIN [--opts OPTS] [--seeds N,M,...]
                      [--steps N] [--verbose]    (as root)

Where posix_random.py covers the namespace, this one stays on the data
of two files, with what the page cache of a FUSE mount under the
writeback cache makes hard: shared mappings that live across the steps
(up to three, of any length, made when the file had another size; stores
and loads through them within the file, stores past the end of the file
in its last page (taken back at once: see "mstore_tail"); msync with MS_SYNC,
MS_ASYNC and MS_INVALIDATE; munmap), up to four descriptors (O_RDWR,
O_RDWR|O_DIRECT, O_RDWR|O_APPEND, O_RDONLY) for writes, reads, appends
and O_DIRECT reads and writes beside the buffered ones, truncate and
ftruncate (shrinking and growing: the tail must read as zeros), fallocate
(mode 0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE with and without KEEP_SIZE;
COLLAPSE_RANGE and INSERT_RANGE run on mmapfs alone and must fail with
EOPNOTSUPP, leaving the data: the FUSE module refuses them),
copy_file_range and sendfile between and within the files, fsync,
fdatasync, POSIX_FADV_DONTNEED, writes, truncates and mapped stores by a
second process with its own descriptor or mapping, the page cache
dropped and mmapfs remounted (all descriptors and mappings closed first;
fsck.mmapfs -n must find the image clean).

Compared after every step: each operation's result (an errno name, a
count, or a digest of the bytes read), then the size and content of both
files read through a new descriptor (on mmapfs now and then with
O_DIRECT, from the daemon after the kernel wrote back), and the bytes of
every live mapping within the file. The first difference ends the run
with the seed, the step and the last operations; rerun that seed alone
with --verbose to see every step.
"""
import ctypes, errno, mmap, os, random, sys, time

from posix_random import cerr, digest, drop_caches, ename, in_child, libc, lockstep_parser, print_failure, run_seeds
libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
PAGE = mmap.PAGESIZE
FILES = ("f0", "f1")
FD_KINDS = {"rw": os.O_RDWR, "direct": os.O_RDWR | os.O_DIRECT, "append": os.O_RDWR | os.O_APPEND,
            "ro": os.O_RDONLY}
FD_SLOTS = 4
MAP_SLOTS = 3
TOP = "data"


def aligned(n):
    """A page-aligned buffer of n bytes (O_DIRECT)."""
    return mmap.mmap(-1, max(n, PAGE))


class Side:
    def __init__(self, label, root):
        self.label = label
        self.root = root
        self.fds = [None] * FD_SLOTS      # (fd, file index, kind)
        self.maps = [None] * MAP_SLOTS    # (mmap, file index, length)

    def p(self, i):
        return os.path.join(self.root, TOP, FILES[i])

    def close_all(self):
        for i, m in enumerate(self.maps):
            if m is not None:
                m[0].close()
                self.maps[i] = None
        for i, f in enumerate(self.fds):
            if f is not None:
                os.close(f[0])
                self.fds[i] = None


def size_of(side, i):
    return os.stat(side.p(i)).st_size


class Map:
    """A shared mapping of any length (Python's mmap refuses one longer
    than the file)."""
    def __init__(self, fd, length):
        addr = libc.mmap(None, length, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        self.addr, self.length = addr, length

    def __getitem__(self, sl):
        start = sl.start or 0
        return ctypes.string_at(self.addr + start, sl.stop - start)

    def __setitem__(self, sl, data):
        ctypes.memmove(self.addr + sl.start, data, len(data))

    def close(self):
        if self.addr is not None:
            libc.munmap(self.addr, self.length)
            self.addr = None


def fd_of(side, slot):
    if side.fds[slot] is None:
        raise OSError(errno.EBADF, "slot closed")
    return side.fds[slot][0]


def run_op(side, op):
    try:
        return _run_op(side, op)
    except OSError as e:
        return "E" + ename(e.errno)


def _run_op(side, op):
    name, a = op[0], op[1:]
    if name == "open":
        slot, i, kind = a
        fd = os.open(side.p(i), FD_KINDS[kind] | os.O_CREAT, 0o644)
        if side.fds[slot] is not None:
            os.close(side.fds[slot][0])
        side.fds[slot] = (fd, i, kind)
        return "ok"
    if name == "close":
        fd = fd_of(side, a[0])
        side.fds[a[0]] = None
        os.close(fd)
        return "ok"
    if name in ("pwrite", "write"):
        slot, data = a[0], a[-1]
        fd = fd_of(side, slot)
        if side.fds[slot][2] == "direct":
            buf = aligned(len(data))
            buf[:len(data)] = data
            data = memoryview(buf)[:len(data)]
        return os.pwrite(fd, data, a[1]) if name == "pwrite" else os.write(fd, data)
    if name == "pread":
        slot, off, n = a
        fd = fd_of(side, slot)
        if side.fds[slot][2] == "direct":
            buf = aligned(n)
            got = os.preadv(fd, [memoryview(buf)[:n]], off)
            return digest(buf[:got])
        return digest(os.pread(fd, n, off))
    if name == "truncate":
        i, size = a
        os.truncate(side.p(i), size)
        return "ok"
    if name == "ftruncate":
        slot, size = a
        os.ftruncate(fd_of(side, slot), size)
        return "ok"
    if name == "fallocate":
        slot, mode, off, ln = a
        return cerr(libc.fallocate(fd_of(side, slot), mode, off, ln))
    if name == "fsync":
        os.fsync(fd_of(side, a[0]))
        return "ok"
    if name == "fdatasync":
        os.fdatasync(fd_of(side, a[0]))
        return "ok"
    if name == "dontneed":
        slot, = a
        fd = fd_of(side, slot)
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return "ok"
    if name == "copy_file_range":
        src, dst, n, soff, doff = a
        return os.copy_file_range(fd_of(side, src), fd_of(side, dst), n, soff, doff)
    if name == "sendfile":
        src, dst, n, soff, doff = a
        fd = fd_of(side, dst)
        os.lseek(fd, doff, os.SEEK_SET)
        return os.sendfile(fd, fd_of(side, src), soff, n)
    if name == "map":
        slot, i, length = a
        fd = os.open(side.p(i), os.O_RDWR)
        try:
            m = Map(fd, length)
        finally:
            os.close(fd)
        if side.maps[slot] is not None:
            side.maps[slot][0].close()
        side.maps[slot] = (m, i, length)
        return "ok"
    if name == "unmap":
        slot, = a
        if side.maps[slot] is not None:
            side.maps[slot][0].close()
            side.maps[slot] = None
        return "ok"
    if name in ("mstore", "mstore_tail"):
        # the generator keeps off + len within the file (or within its
        # last page for a store past the end) and the mapping
        slot, off, data = a
        m = side.maps[slot][0]
        m[off:off + len(data)] = data
        if name == "mstore_tail":
            # Such bytes become data when the file is extended while the
            # page is cached: on ext4 (kernel 6.18) by an O_DIRECT write,
            # on FUSE by any extension while the page is dirty (the
            # kernel writes the page back with the new size; docs/
            # LINUX.md "Stores past the end of a file"). Both sides take
            # them back: what is left is that the store itself works.
            m[off:off + len(data)] = bytes(len(data))
        return len(data)
    if name == "mload":
        slot, off, n = a
        return digest(side.maps[slot][0][off:off + n])
    if name == "msync":
        slot, flags = a
        m = side.maps[slot]
        return cerr(libc.msync(m[0].addr, m[2], flags))
    if name == "child":
        return other_process(side, a[0])
    raise ValueError("unknown operation %r" % (name,))


def other_process(side, op):
    """A second process: opens the file itself (or maps it) and runs op."""
    def child():
        other = Side(side.label, side.root)
        kind, i = op[0], op[1]
        try:
            if kind == "mstore":
                _, i, off, data = op
                fd = os.open(other.p(i), os.O_RDWR)
                m = Map(fd, off + len(data))
                os.close(fd)
                m[off:off + len(data)] = data
                m.close()
                return len(data)
            other.fds[0] = (os.open(other.p(i), os.O_RDWR), i, "rw")
            res = run_op(other, (kind, 0) + op[2:])
            other.close_all()
            return res
        except OSError as e:
            return "E" + ename(e.errno)
    return in_child(child)


def mmapfs_only(op):
    """COLLAPSE_RANGE and INSERT_RANGE: the FUSE module refuses them."""
    return op[0] == "fallocate" and op[2] & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)


# ---- the generator ----------------------------------------------------------

class Gen:
    def __init__(self, seed, ref, big):
        self.r = random.Random(seed)
        self.ref = ref
        self.big = big   # the largest offset or size

    def off(self, i=None):
        """An offset: near the end of a file, at a page boundary, or anywhere."""
        r = self.r
        size = size_of(self.ref, i) if i is not None else 0
        k = r.random()
        if k < 0.3 and size:
            return max(0, size + r.randrange(-PAGE, PAGE))
        if k < 0.5:
            return r.randrange(0, self.big // PAGE) * PAGE + r.choice((0, 0, 1, PAGE - 1))
        if k < 0.7:
            return r.randrange(0, 200)
        return r.randrange(0, self.big)

    def length(self):
        return self.r.choice((1, 7, 100, PAGE - 1, PAGE, PAGE + 1, self.r.randrange(1, 3 * PAGE),
                              self.r.randrange(1, 70000)))

    def data(self, n):
        r = self.r
        k = r.random()
        if k < 0.15:
            return bytes([r.randrange(1, 256)]) * n
        if k < 0.25:
            return bytes(n)
        return r.randbytes(n)

    def slot(self, kinds=None):
        live = [s for s, f in enumerate(self.ref.fds) if f is not None and (kinds is None or f[2] in kinds)]
        if live and self.r.random() < 0.95:
            return self.r.choice(live)
        return self.r.randrange(FD_SLOTS)

    def file_of(self, slot):
        f = self.ref.fds[slot]
        return f[1] if f is not None else None

    def op(self):
        r = self.r
        ops = (("open", 6), ("close", 2), ("pwrite", 14), ("write", 4), ("pread", 5), ("truncate", 4),
               ("ftruncate", 4), ("fallocate", 8), ("fsync", 1), ("fdatasync", 1), ("dontneed", 2),
               ("copy_file_range", 4), ("sendfile", 2), ("map", 5), ("unmap", 2), ("mstore", 14),
               ("mstore_tail", 2), ("mload", 4), ("msync", 4), ("child", 4))
        name = r.choices([o[0] for o in ops], [o[1] for o in ops])[0]
        if name == "open":
            return ("open", r.randrange(FD_SLOTS), r.randrange(len(FILES)),
                    r.choice(("rw", "rw", "direct", "append", "ro")))
        if name in ("close", "fsync", "fdatasync", "dontneed"):
            return (name, self.slot())
        if name == "pwrite":
            s = self.slot(("rw", "direct", "append", "ro"))
            f = self.file_of(s)
            if f is not None and self.ref.fds[s][2] == "direct":
                return ("pwrite", s, r.randrange(0, self.big // PAGE) * PAGE,
                        self.data(r.randrange(1, 5) * PAGE))
            return ("pwrite", s, self.off(f), self.data(self.length()))
        if name == "write":
            s = self.slot(("append",))
            if self.file_of(s) is not None and self.ref.fds[s][2] == "direct":
                return ("write", s, self.data(r.randrange(1, 5) * PAGE))
            return ("write", s, self.data(self.length()))
        if name == "pread":
            s = self.slot()
            f = self.file_of(s)
            if f is not None and self.ref.fds[s][2] == "direct":
                return ("pread", s, r.randrange(0, self.big // PAGE) * PAGE, r.randrange(1, 5) * PAGE)
            return ("pread", s, self.off(f), self.length())
        if name == "truncate":
            i = r.randrange(len(FILES))
            return ("truncate", i, self.off(i))
        if name == "ftruncate":
            s = self.slot()
            return ("ftruncate", s, self.off(self.file_of(s)))
        if name == "fallocate":
            s = self.slot()
            mode = r.choice((0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE,
                             FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_COLLAPSE_RANGE,
                             FALLOC_FL_INSERT_RANGE))
            if mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE):
                return ("fallocate", s, mode, r.randrange(0, 16) * PAGE, r.randrange(1, 8) * PAGE)
            return ("fallocate", s, mode, self.off(self.file_of(s)), self.length())
        if name in ("copy_file_range", "sendfile"):
            src, dst = self.slot(), self.slot()
            if any(self.ref.fds[x] is not None and self.ref.fds[x][2] == "direct" for x in (src, dst)):
                # O_DIRECT alignment, which ext4 asks for and FUSE does not
                # (docs/LINUX.md), is up to the source's size here
                return None
            return (name, src, dst, self.length(), self.off(self.file_of(src)), self.off(self.file_of(dst)))
        if name == "map":
            i = r.randrange(len(FILES))
            size = size_of(self.ref, i)
            length = max(PAGE, (size + PAGE - 1) // PAGE * PAGE + r.randrange(-2, 3) * PAGE)
            return ("map", r.randrange(MAP_SLOTS), i, length)
        if name == "child":
            i = r.randrange(len(FILES))
            size = size_of(self.ref, i)
            k = r.random()
            if k < 0.4:
                return ("child", ("pwrite", i, self.off(i), self.data(self.length())))
            if k < 0.6:
                return ("child", ("ftruncate", i, self.off(i)))
            if k < 0.7:
                return ("child", ("fallocate", i, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, self.off(i),
                                  self.length()))
            if size:
                off = r.randrange(size)
                return ("child", ("mstore", i, off, self.data(min(size - off, self.length()))))
            return None
        # the mapping operations: within the mapping and the file
        live = [s for s, m in enumerate(self.ref.maps) if m is not None]
        if not live:
            return None
        s = r.choice(live)
        _, i, length = self.ref.maps[s]
        size = size_of(self.ref, i)
        if name == "unmap":
            return ("unmap", s)
        if name == "msync":
            return ("msync", s, r.choice((MS_SYNC, MS_ASYNC, MS_SYNC | MS_INVALIDATE, MS_ASYNC | MS_INVALIDATE)))
        end = min(size, length)
        if name == "mstore_tail":
            # past the end of the file within its last page: never data
            if size % PAGE == 0 or size >= length:
                return None
            top = min(length, (size + PAGE - 1) // PAGE * PAGE)
            off = r.randrange(size, top)
            return ("mstore_tail", s, off, self.data(r.randrange(1, top - off + 1)))
        if end == 0:
            return None
        off = r.randrange(end) if r.random() < 0.7 else r.randrange(0, end, PAGE)
        n = min(end - off, self.length())
        if name == "mstore":
            return ("mstore", s, off, self.data(n))
        return ("mload", s, off, n)


def show_op(op):
    out = []
    for x in op[1:]:
        if isinstance(x, bytes):
            out.append("bytes[%d]" % len(x))
        elif isinstance(x, tuple):
            out.append(show_op(x))
        else:
            out.append(repr(x))
    return "%s(%s)" % (op[0], ", ".join(out))


# ---- the state ----------------------------------------------------------------

def file_state(side, i, direct):
    fd = os.open(side.p(i), os.O_RDONLY | (os.O_DIRECT if direct else 0))
    try:
        size = os.fstat(fd).st_size
        if direct:
            buf = aligned((size + PAGE - 1) // PAGE * PAGE)
            got = os.preadv(fd, [buf], 0)
            b = buf[:got]
        else:
            b = os.pread(fd, size + 1, 0)
        return size, b
    finally:
        os.close(fd)


def first_diff(a, b):
    for k in range(min(len(a), len(b))):
        if a[k] != b[k]:
            end = k
            while end < min(len(a), len(b)) and a[end] != b[end]:
                end += 1
            return "bytes %d..%d differ (ext4 %s.., mmapfs %s..)" % (k, end, a[k:k + 8].hex(), b[k:k + 8].hex())
    return "lengths %d and %d" % (len(a), len(b))


def compare(ref, mfs, direct):
    """A list of lines describing differences, empty if none."""
    lines = []
    for i in range(len(FILES)):
        try:
            rs, rb = file_state(ref, i, False)
        except FileNotFoundError:
            rs, rb = None, b""
        try:
            ms, mb = file_state(mfs, i, direct)
        except FileNotFoundError:
            ms, mb = None, b""
        if rs != ms:
            lines.append("  %s: size ext4 %s, mmapfs %s" % (FILES[i], rs, ms))
        if rb != mb:
            lines.append("  %s: content%s: %s" % (FILES[i], " (O_DIRECT)" if direct else "", first_diff(rb, mb)))
        for s in range(MAP_SLOTS):
            rm, mm = ref.maps[s], mfs.maps[s]
            if rm is None or rm[1] != i or rs is None:
                continue
            end = min(rs, rm[2])
            ra, ma = rm[0][:end], mm[0][:end]
            if ra != rb[:end]:
                lines.append("  %s: ext4 mapping %d differs from its read: %s" % (FILES[i], s, first_diff(rb, ra)))
            if ma != ra:
                lines.append("  %s: mapping %d: %s" % (FILES[i], s, first_diff(ra, ma)))
    return lines


# ---- the mmapfs mount ------------------------------------------------------------

def crash(mount, mfs):
    """fsync of both files (through new descriptors: all of the inode's
    dirty pages, mapped stores too), kill -9 of the daemon with the
    descriptors and mappings still open, then as Mount.remount(): everything
    must be there after the journal's replay."""
    for i in range(len(FILES)):
        fd = os.open(mfs.p(i), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    pids = mount.daemons()
    if len(pids) != 1:
        return "daemons of %s: %r" % (mount.a.mnt, pids)
    os.kill(pids[0], 9)
    deadline = time.time() + 60
    while mount.daemons():
        if time.time() > deadline:
            return "the daemon did not die within 60 s of kill -9"
        time.sleep(0.05)
    mfs.close_all()
    return mount.remount()


class Noise:
    """--noise: a second process that, while the steps run, does on the
    mmapfs files what must not change their data: SEEK_DATA and SEEK_HOLE
    (the daemon has the kernel write back and drop the file's pages
    first), fsync, fdatasync, POSIX_FADV_DONTNEED, buffered and O_DIRECT
    reads, stat. Stopped around a remount (it holds the files open)."""
    def __init__(self, side, seed):
        self.side, self.seed, self.pid = side, seed, None

    def start(self):
        pid = os.fork()
        if pid:
            self.pid = pid
            return
        code = 0
        try:
            libc.prctl(1, 9, 0, 0, 0)   # PR_SET_PDEATHSIG, SIGKILL: never outlives the run
            self.loop(random.Random(self.seed))
        except BaseException:
            code = 1
        os._exit(code)

    def loop(self, r):
        buf = aligned(1 << 16)
        while True:
            try:
                fd = os.open(self.side.p(r.randrange(len(FILES))),
                             os.O_RDONLY | (os.O_DIRECT if r.random() < 0.3 else 0))
            except OSError:
                time.sleep(0.001)
                continue
            try:
                for _ in range(r.randrange(1, 20)):
                    k = r.randrange(8)
                    try:
                        if k < 2:
                            os.lseek(fd, r.randrange(0, 300000), (os.SEEK_DATA, os.SEEK_HOLE)[k])
                        elif k == 2:
                            os.fsync(fd)
                        elif k == 3:
                            os.fdatasync(fd)
                        elif k == 4:
                            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                        elif k == 5:
                            os.preadv(fd, [buf], r.randrange(0, 64) * PAGE)
                        elif k == 6:
                            os.fstat(fd)
                        else:
                            time.sleep(0.0005)
                    except OSError:
                        pass
            finally:
                os.close(fd)

    def stop(self):
        if self.pid is not None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            self.pid = None


# ---- one seed ----------------------------------------------------------------------

def run_seed(seed, args, mount):
    ref = Side("ext4", args.ref)
    mfs = Side("mmapfs", args.mnt)
    for s in (ref, mfs):
        d = os.path.join(s.root, TOP)
        os.makedirs(d, exist_ok=True)
        for i in range(len(FILES)):
            with open(s.p(i), "wb"):
                pass
    gen = Gen(seed, ref, args.big)
    history = []
    noise = Noise(mfs, seed)
    if args.noise:
        noise.start()

    def failed(step, what, lines=()):
        noise.stop()
        print_failure(seed, step, what, history, lines)
        ref.close_all()
        mfs.close_all()
        return False

    for step in range(1, args.steps + 1):
        r = gen.r
        k = r.random()
        op = None
        if k < args.remount:
            how = "crash" if r.random() < args.crash else "remount"
            noise.stop()
            ref.close_all()
            if how == "crash":
                history.append("%4d fsync, kill -9, remount (fsck -n, page cache dropped)" % step)
                err = crash(mount, mfs)
            else:
                mfs.close_all()
                history.append("%4d remount (all closed and unmapped, fsck -n, page cache dropped)" % step)
                err = mount.remount()
            if err:
                return failed(step, how, [err])
            drop_caches(ref)
            if args.noise:
                noise.start()
        elif k < args.remount + 0.01:
            history.append("%4d drop caches" % step)
            drop_caches(ref)
        else:
            op = gen.op()
        direct = r.random() < 0.2
        if op is not None:
            if args.verbose:
                print("%4d %s" % (step, show_op(op)), flush=True)
            res_ref = run_op(ref, op) if not mmapfs_only(op) else None
            res_mfs = run_op(mfs, op)
            if mmapfs_only(op) and res_mfs != "EEOPNOTSUPP" and not str(res_mfs).startswith("E"):
                res_ref = "EEOPNOTSUPP"
            elif mmapfs_only(op):
                res_ref = res_mfs
            history.append("%4d %s -> %s" % (step, show_op(op), res_ref))
            if res_ref != res_mfs:
                return failed(step, "results differ", ["  ext4:   %r" % (res_ref,), "  mmapfs: %r" % (res_mfs,)] +
                              compare(ref, mfs, False))
        lines = compare(ref, mfs, direct)
        if lines:
            return failed(step, "state differs" + (" (mmapfs read with O_DIRECT)" if direct else ""), lines)
    noise.stop()
    ref.close_all()
    mfs.close_all()
    err = mount.remount()
    if err:
        return failed(args.steps, "final remount", [err])
    drop_caches(ref)
    lines = compare(ref, mfs, False)
    if lines:
        return failed(args.steps, "state differs after the final remount", lines)
    return True


def main():
    ap = lockstep_parser(__doc__, 300)
    ap.add_argument("--big", type=int, default=300000, help="the largest offset or size")
    ap.add_argument("--crash", type=float, default=0.3,
                    help="the share of remounts that kill -9 the daemon after an fsync instead")
    ap.add_argument("--noise", action="store_true", help="a second process reads, seeks and syncs meanwhile")
    return run_seeds(ap.parse_args(), run_seed, "data_random.py")


if __name__ == "__main__":
    sys.exit(main())
