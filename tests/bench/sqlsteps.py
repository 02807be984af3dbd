#!/usr/bin/env python3
"""tests/bench/sqlsteps.py — one SQLite transaction in journal_mode=DELETE,
synchronous=FULL, replayed step by step with the system calls sqlite3 makes
(seen with strace on Debian 12's sqlite3 3.40), each step timed.

    sqlsteps.py DIR N [MMAPFS_STAT]

Replays N transactions on DIR/x.db (created, 4 pages) and prints the mean
microseconds of each step. With MMAPFS_STAT (the path of mmapfs-stat) and
DIR on mmapfs, it then replays 50 more transactions between two readings of the
daemon's counters and prints the FUSE requests (by kind) and device syncs
one transaction cost. Run it on mmapfs and on ext4 in turn:
the difference per step is where a row of make bench loses its time.

Per transaction sqlite3 opens DIR/x.db-journal (O_CREAT), writes the
journal header and the pages it will change, fdatasync()s the journal,
opens the directory and fdatasync()s it (the journal's name is new), writes
the journal header's page count, fdatasync()s the journal again, writes
the changed pages into the database, fdatasync()s it, closes and unlinks
the journal.
"""
import os
import subprocess
import sys
import time

def steps(d, db):
    """The transaction as (name, action) pairs; the actions share fds."""
    jpath = os.path.join(d, "x.db-journal")
    fd = {}

    def open_journal():
        fd["j"] = os.open(jpath, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write_journal():
        os.pwrite(fd["j"], b"j" * 512, 0)
        os.pwrite(fd["j"], b"k" * 8204, 512)

    def open_dir():
        fd["d"] = os.open(d, os.O_RDONLY | os.O_CLOEXEC)

    def write_db():
        os.pwrite(db, b"d" * 4096, 0)
        os.pwrite(db, b"e" * 4096, 4096)

    return [
        ("open journal", open_journal),
        ("write journal", write_journal),
        ("fdatasync journal", lambda: os.fdatasync(fd["j"])),
        ("open dir", open_dir),
        ("fdatasync dir", lambda: os.fdatasync(fd["d"])),
        ("close dir", lambda: os.close(fd["d"])),
        ("write journal header", lambda: os.pwrite(fd["j"], b"h" * 12, 0)),
        ("fdatasync journal again", lambda: os.fdatasync(fd["j"])),
        ("write db", write_db),
        ("fdatasync db", lambda: os.fdatasync(db)),
        ("close journal", lambda: os.close(fd["j"])),
        ("unlink journal", lambda: os.unlink(jpath)),
    ]


def txn(step_list, mark):
    """One transaction; mark(i) is called as step i ends."""
    for i, (_, action) in enumerate(step_list):
        action()
        mark(i)


def counters(stat_tool, d):
    out = subprocess.run([stat_tool, d], capture_output=True, text=True, check=True).stdout
    c = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and (f[0].startswith("fuse_req_") or f[0] == "mmio_syncs"):
            c[f[0]] = int(f[1])
    return c


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    d, n = sys.argv[1], int(sys.argv[2])
    db = os.open(os.path.join(d, "x.db"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.pwrite(db, b"x" * 4096 * 4, 0)
    os.fdatasync(db)

    step_list = steps(d, db)
    names = [name for name, _ in step_list]
    total = [0.0] * len(names)
    t = [0.0]

    def mark(i):
        now = time.perf_counter()
        total[i] += now - t[0]
        t[0] = now

    for _ in range(n):
        t[0] = time.perf_counter()
        txn(step_list, mark)
    print("%-26s %10s" % ("step", "us/txn"))
    for i, name in enumerate(names):
        print("%-26s %10.1f" % (name, total[i] / n * 1e6))
    print("%-26s %10.1f" % ("total", sum(total) / n * 1e6))

    if len(sys.argv) == 4:
        # Whole transactions only: reading the counters between steps
        # (a process start and a GETXATTR) changes what the kernel sends.
        reps = 50
        before = counters(sys.argv[3], d)
        for _ in range(reps):
            txn(step_list, lambda i: None)
        after = counters(sys.argv[3], d)
        parts = []
        for k in sorted(after):
            delta = after[k] - before.get(k, 0) - (1 if k == "fuse_req_getxattr" else 0)
            if delta:
                parts.append("%s %.2g" % (k.replace("fuse_req_", "").replace("mmio_", ""),
                                          delta / reps))
        print("\nper transaction (mean of %d): %s" % (reps, ", ".join(parts)))
    os.close(db)
    os.unlink(os.path.join(d, "x.db"))


if __name__ == "__main__":
    main()
