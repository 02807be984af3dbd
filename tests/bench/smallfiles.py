#!/usr/bin/env python3
"""tests/bench/smallfiles.py — small-file metadata workload for run.sh.

    smallfiles.py create DIR N   creates DIR/f0 .. DIR/f{N-1}, empty, one
                                 open(O_CREAT|O_EXCL)+close each (DIR exists)
    smallfiles.py stat DIR N     lists DIR (os.scandir) and os.stat()s every
                                 entry by path; fails unless it saw N files

One process per phase, so the interpreter's start-up (the same on both
filesystems) is paid once per phase, not once per file.
"""
import os
import sys


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


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("create", "stat"):
        sys.exit(__doc__)
    op, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    (create if op == "create" else stat_all)(d, n)


if __name__ == "__main__":
    main()
