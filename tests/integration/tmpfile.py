#!/usr/bin/env python3
"""tmpfile.py DIR: O_TMPFILE in DIR, one line per check ("ok   ..." or
"FAIL ..."), for 51_tmpfile.sh to compare between ext4 and mmapfs.

  tmpfile.py DIR          the checks below
  tmpfile.py --hold DIR N writes N bytes to an O_TMPFILE in DIR, prints
                          "held", and sleeps (the caller kills the daemon)
  tmpfile.py --name DIR NAME N
                          writes N bytes to an O_TMPFILE, links it as
                          DIR/NAME, fsyncs it and DIR, prints "named"
"""
import ctypes
import errno
import os
import stat
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400


def link_fd(fd, dst):
    """linkat(2) of an open file through /proc/self/fd (Python's os.link
    links the magic link itself, EXDEV)."""
    src = ("/proc/self/fd/%d" % fd).encode()
    if libc.linkat(AT_FDCWD, src, AT_FDCWD, dst.encode(), AT_SYMLINK_FOLLOW) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), dst)


def out(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)


def refused(fn, what):
    try:
        fn()
        out(False, what + " (it was allowed)")
    except OSError as e:
        out(e.errno == errno.ENOENT, "%s (%s)" % (what, errno.errorcode[e.errno]))


def pattern(n, seed):
    return bytes((i * 131 + seed) & 0xff for i in range(n))


def checks(d):
    os.umask(0o022)
    free0 = os.statvfs(d).f_ffree
    names0 = set(os.listdir(d))
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o666)
    data = pattern(300000, 7)
    os.write(fd, data)
    st = os.fstat(fd)
    out(st.st_nlink == 0, "a new O_TMPFILE has no link")
    out(stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644,
        "a regular file, mode 0666 less the umask 022")
    out(os.pread(fd, len(data), 0) == data, "it reads back what was written")
    out(set(os.listdir(d)) == names0, "the directory lists no new name")
    out(os.statvfs(d).f_ffree == free0 - 1, "it takes an inode")
    link_fd(fd, os.path.join(d, "named"))
    out(os.fstat(fd).st_nlink == 1, "linkat gives it one link")
    with open(os.path.join(d, "named"), "rb") as f:
        out(f.read() == data, "its new name reads what was written")
    out(set(os.listdir(d)) - names0 == {"named"}, "the directory lists the new name")
    os.write(fd, b"tail")
    out(os.path.getsize(os.path.join(d, "named")) == len(data) + 4,
        "writes through the first descriptor reach the named file")
    link_fd(fd, os.path.join(d, "second"))
    out(os.fstat(fd).st_nlink == 2, "a second linkat is an ordinary link")
    os.unlink(os.path.join(d, "named"))
    os.unlink(os.path.join(d, "second"))
    refused(lambda: link_fd(fd, os.path.join(d, "back")),
            "once linked and unlinked again, it cannot be linked")
    os.close(fd)

    fd = os.open(d, os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
    refused(lambda: link_fd(fd, os.path.join(d, "excl")), "O_TMPFILE|O_EXCL cannot be linked")
    os.close(fd)

    fd = os.open(os.path.join(d, "u"), os.O_CREAT | os.O_RDWR, 0o600)
    os.unlink(os.path.join(d, "u"))
    refused(lambda: link_fd(fd, os.path.join(d, "u2")),
            "a file unlinked while open cannot be linked")
    os.close(fd)

    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o600)
    os.write(fd, pattern(200000, 3))
    os.close(fd)
    for _ in range(100):                # the FORGET is asynchronous
        if os.statvfs(d).f_ffree == free0:
            break
        time.sleep(0.05)
    out(os.statvfs(d).f_ffree == free0, "closed without a name, its inode is free again")
    out(set(os.listdir(d)) == names0, "and the directory is as before")

    os.mkdir(os.path.join(d, "ro"), 0o555)
    os.setegid(65534)
    os.seteuid(65534)
    try:
        os.open(os.path.join(d, "ro"), os.O_TMPFILE | os.O_RDWR, 0o600)
        out(False, "O_TMPFILE in a directory the caller cannot write is refused")
    except OSError as e:
        out(e.errno == errno.EACCES,
            "O_TMPFILE in a directory the caller cannot write is refused (%s)"
            % errno.errorcode[e.errno])
    finally:
        os.seteuid(0)
        os.setegid(0)
    os.rmdir(os.path.join(d, "ro"))

    os.mkdir(os.path.join(d, "gone"))
    fd = os.open(os.path.join(d, "gone"), os.O_RDONLY | os.O_DIRECTORY)
    os.rmdir(os.path.join(d, "gone"))
    try:
        os.close(os.open("/proc/self/fd/%d" % fd, os.O_TMPFILE | os.O_RDWR, 0o600))
        out(False, "O_TMPFILE in a removed directory is refused")
    except OSError as e:
        out(e.errno == errno.EPERM, "O_TMPFILE in a removed directory is refused (%s)"
            % errno.errorcode[e.errno])
    os.close(fd)

    os.mkdir(os.path.join(d, "sg"))
    os.chown(os.path.join(d, "sg"), 0, 4242)
    os.chmod(os.path.join(d, "sg"), 0o2777)
    fd = os.open(os.path.join(d, "sg"), os.O_TMPFILE | os.O_RDWR, 0o600)
    out(os.fstat(fd).st_gid == 4242, "in a set-group-ID directory it takes the directory's group")
    link_fd(fd, os.path.join(d, "sg", "f"))
    os.close(fd)
    os.unlink(os.path.join(d, "sg", "f"))
    os.rmdir(os.path.join(d, "sg"))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--hold":
        fd = os.open(sys.argv[2], os.O_TMPFILE | os.O_RDWR, 0o600)
        os.write(fd, pattern(int(sys.argv[3]), 11))
        os.fsync(fd)
        print("held", flush=True)
        time.sleep(600)
    elif len(sys.argv) == 5 and sys.argv[1] == "--name":
        d, name, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o644)
        os.write(fd, pattern(n, 5))
        os.fsync(fd)
        link_fd(fd, os.path.join(d, name))
        dfd = os.open(d, os.O_RDONLY)
        os.fsync(dfd)
        print("named", flush=True)
    elif len(sys.argv) == 2:
        checks(sys.argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
