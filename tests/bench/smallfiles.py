#!/usr/bin/env python3
"""tests/bench/smallfiles.py — small-file metadata workload for run.sh.

    smallfiles.py create DIR N   creates DIR/f0 .. DIR/f{N-1}, empty, one
                                 open(O_CREAT|O_EXCL)+close each (DIR exists)
    smallfiles.py stat DIR N     lists DIR (os.scandir) and os.stat()s every
                                 entry by path; fails unless it saw N files
    smallfiles.py tar OUT D N S  writes the tarball OUT (GNU format, not
                                 compressed): directories d0 .. d{D-1}, each
                                 with files f0 .. f{N-1} of S bytes (distinct
                                 contents), mode 0644/0755, owner root, one
                                 fixed mtime

One process per phase, so the interpreter's start-up (the same on both
filesystems) is paid once per phase, not once per file.
"""
import io
import os
import sys
import tarfile


def create(d, n):
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
    for i in range(n):
        os.close(os.open(os.path.join(d, "f%d" % i), flags, 0o644))


def stat_all(d, n):
    seen = 0
    with os.scandir(d) as it:
        names = [e.name for e in it]
    for name in names:
        st = os.stat(os.path.join(d, name), follow_symlinks=False)
        if st.st_size == 0:
            seen += 1
    if seen != n:
        sys.exit("stat: saw %d empty files in %s, expected %d" % (seen, d, n))


def make_tar(out, ndirs, nfiles, size):
    mtime = 1700000000
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for d in range(ndirs):
            info = tarfile.TarInfo("d%d" % d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
            for f in range(nfiles):
                name = "d%d/f%d" % (d, f)
                line = ("%s " % name).encode()
                data = (line * (size // len(line) + 1))[:size]
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = size, 0o644, mtime
                tar.addfile(info, io.BytesIO(data))


def main():
    args = sys.argv[1:]
    if len(args) == 5 and args[0] == "tar":
        make_tar(args[1], int(args[2]), int(args[3]), int(args[4]))
    elif len(args) == 3 and args[0] in ("create", "stat"):
        (create if args[0] == "create" else stat_all)(args[1], int(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
