#!/usr/bin/env python3
"""btime.py DIR: the birth time statx(2) reports (STATX_BTIME), one line per
check ("ok   ..." or "FAIL ..."), for 88_btime.sh to compare between ext4
and mmapfs.

  btime.py DIR              the checks below, in a new directory DIR/bt;
                            they leave DIR/bt/kept
  btime.py --show PATH      prints PATH's birth time in ns (or "none")
  btime.py --hammer DIR K R R rounds over the files of DIR: with K odd a
                            statx with the birth time and a stat of each,
                            with K even a stat only; prints "bad N" (a
                            birth time missing, changed or after the
                            ctime; a size that is not 0)
"""
import ctypes
import os
import sys
import time

AT_FDCWD, AT_SYMLINK_NOFOLLOW = -100, 0x100
STATX_BASIC_STATS, STATX_BTIME = 0x7ff, 0x800


class Ts(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_int64), ("nsec", ctypes.c_uint32), ("pad", ctypes.c_int32)]


class Statx(ctypes.Structure):
    _fields_ = [("mask", ctypes.c_uint32), ("blksize", ctypes.c_uint32),
                ("attributes", ctypes.c_uint64), ("nlink", ctypes.c_uint32),
                ("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32),
                ("mode", ctypes.c_uint16), ("pad0", ctypes.c_uint16),
                ("ino", ctypes.c_uint64), ("size", ctypes.c_uint64),
                ("blocks", ctypes.c_uint64), ("attributes_mask", ctypes.c_uint64),
                ("atime", Ts), ("btime", Ts), ("ctime", Ts), ("mtime", Ts),
                ("rest", ctypes.c_uint8 * 128)]


assert ctypes.sizeof(Statx) == 256      # struct statx, which the kernel fills whole
libc = ctypes.CDLL(None, use_errno=True)


def btime(path, follow=True):
    """Birth time in ns, or None when statx does not report one."""
    sx = Statx()
    flags = 0 if follow else AT_SYMLINK_NOFOLLOW
    if libc.statx(AT_FDCWD, path.encode(), flags, STATX_BASIC_STATS | STATX_BTIME,
                  ctypes.byref(sx)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    if not sx.mask & STATX_BTIME:
        return None
    return sx.btime.sec * 10**9 + sx.btime.nsec


def out(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)


def checks(d):
    # the kernel stamps from its coarse clock (a tick, up to 4 ms at 250 Hz,
    # behind the fine one), ext4 and mmapfs alike
    slack = 20 * 10**6
    d = os.path.join(d, "bt")
    os.mkdir(d)
    t0 = time.time_ns()
    f = os.path.join(d, "kept")
    with open(f, "w") as fh:
        fh.write("x")
    t1 = time.time_ns()
    b = btime(f)
    out(b is not None, "a new file has a birth time")
    if b is None:
        return
    out(t0 - slack <= b <= t1 + slack, "it is the time of the create")
    out(abs(os.stat(f).st_ctime_ns - b) <= slack, "within a clock tick of the first ctime")
    time.sleep(0.05)
    with open(f, "a") as fh:
        fh.write("more")
    os.chmod(f, 0o600)
    os.utime(f, ns=(10**9, 2 * 10**9))
    os.rename(f, f + ".tmp")
    os.link(f + ".tmp", os.path.join(d, "second"))
    os.rename(f + ".tmp", f)
    os.unlink(os.path.join(d, "second"))
    out(btime(f) == b, "a write, chmod, utimes, rename and link leave it")
    for name, make in (("dir", lambda p: os.mkdir(p)), ("fifo", lambda p: os.mkfifo(p)),
                       ("link", lambda p: os.symlink("kept", p))):
        p = os.path.join(d, name)
        make(p)
        bt = btime(p, follow=False)
        out(bt is not None and bt >= b, "a new %s has one too" % name)
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600)
    bt = btime("/proc/self/fd/%d" % fd)
    os.close(fd)
    out(bt is not None and bt >= b, "an O_TMPFILE file has one")


def hammer(d, k, rounds):
    """Run beside other hammers on a mount with attr_timeout=0: every
    statx is a FUSE_STATX and every stat a GETATTR, from several threads
    of the daemon at once; a STATX reply must never carry another
    request's attributes, nor a GETATTR reply become a STATX one."""
    bad, seen = 0, {}
    names = sorted(os.listdir(d))
    for _ in range(rounds):
        for name in names:
            p = os.path.join(d, name)
            if k % 2:
                b = btime(p)
                st = os.stat(p)
                bad += b is None or b > st.st_ctime_ns + 20 * 10**6 or seen.get(name, b) != b
                seen[name] = b
            else:
                st = os.stat(p)
            bad += st.st_size != 0
    print("bad", bad)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--hammer":
        hammer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--show":
        b = btime(sys.argv[2])
        print("none" if b is None else b)
    elif len(sys.argv) == 2:
        checks(sys.argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
