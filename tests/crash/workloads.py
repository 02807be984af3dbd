#!/usr/bin/env python3
"""Crash-harness workloads (docs/CRASH.md).

    workloads.py NAME MNT EXPLOG SYNCED SEED [SCALE]

Runs workload NAME on the mounted recording daemon at MNT, logging its
expectations to EXPLOG through crashlib.Session (SYNCED is the recorder's
completed-barrier count file). SCALE (default 1) multiplies the number of
iterations (CRASH_LONG runs use more). `workloads.py --list` prints the
names with their image sizes, mount options and "long" for those that only
the long run (CRASH_LONG=1) includes.
"""
import ctypes
import hashlib
import mmap
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crashlib import RENAME_WHITEOUT, Session, tag_bytes  # noqa: E402

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10


# ---- applications -------------------------------------------------------------

def applog(s, n):
    """Append-and-fsync logs: one with fsync, one with fdatasync, records
    of odd sizes, now and then several appends per fsync."""
    s.mkdir("logs")
    s.fsync_dir("")
    for name in ("logs/a.log", "logs/b.log"):
        s.create(name)
    s.fsync_dir("logs")
    fds = {name: os.open(s.p(name), os.O_WRONLY) for name in ("logs/a.log", "logs/b.log")}
    try:
        for i in range(12 * n):
            name = "logs/a.log" if i % 3 else "logs/b.log"
            for _ in range(1 + (i % 4 == 0) * s.rng.randint(1, 3)):
                s.append(name, s.rng.choice([16, 100, 512, 4000, 4096, 9000, 33]), fd=fds[name])
            s.fsync(name, datasync=(name == "logs/b.log"))
    finally:
        for fd in fds.values():
            os.close(fd)


def atomic_replace(s, n):
    """Editors' atomic replace: write tmp, fsync, rename over the target,
    fsync the directory. Also rename-then-fsync-the-file (DESIGN.md
    invariant 5: the metadata to reach an fsync'd file is durable)."""
    s.mkdir("etc")
    s.fsync_dir("")
    s.create("etc/config")
    s.write("etc/config", 0, 3000)
    s.fsync("etc/config")
    s.fsync_dir("etc")
    for i in range(10 * n):
        tmp = "etc/.config.tmp%d" % i
        s.create(tmp)
        s.write(tmp, 0, s.rng.choice([100, 4096, 5000, 20000, 70000]))
        s.fsync(tmp)
        s.rename(tmp, "etc/config")
        if i % 2 == 0:
            b = s.fsync_dir("etc")
            s.note_durable("etc/config", b)
            s.note_absent(tmp, b)
        else:
            s.fsync("etc/config")
    # a second target replaced without any fsync: only rule 3 applies
    s.create("etc/other")
    for i in range(3):
        tmp = "etc/.other.tmp%d" % i
        s.create(tmp)
        s.write(tmp, 0, 6000)
        s.rename(tmp, "etc/other")
    s.fsync_dir("etc")


def dirtree(s, n):
    """mkdir/rmdir trees: build nested directories with files, fsync the
    files and the directories, then remove whole subtrees (rm -r)."""
    for r in range(3 * n):
        top = "t%d" % r
        s.mkdir(top)
        dirs = [top]
        for i in range(6):
            parent = s.rng.choice(dirs)
            d = "%s/d%d" % (parent, i)
            s.mkdir(d)
            dirs.append(d)
        files = []
        for i in range(10):
            f = "%s/f%d" % (s.rng.choice(dirs), i)
            s.create(f)
            s.write(f, 0, s.rng.choice([0, 16, 4096, 12000]))
            files.append(f)
        for f in files[::2]:
            s.fsync(f)
        for d in reversed(dirs):
            s.fsync_dir(d)
        s.fsync_dir("")
        if r % 2 == 1 or r == 3 * n - 1:
            # remove the previous tree (or this one) bottom-up
            victim = "t%d" % (r - 1 if r % 2 == 1 else r)
            for root, ds, fs in os.walk(s.p(victim), topdown=False):
                rel = os.path.relpath(root, s.mnt)
                for f in fs:
                    s.unlink(os.path.join(rel, f))
                s.rmdir(rel)
            b = s.fsync_dir("")
            s.note_absent(victim, b)


def hardlinks(s, n):
    """Hard links across directories: link, unlink some names, fsync the
    file (its link count) and the directories."""
    for d in ("a", "b", "c"):
        s.mkdir(d)
    s.fsync_dir("")
    for r in range(4 * n):
        src = "a/f%d" % r
        s.create(src)
        s.write(src, 0, 8192)
        names = [src]
        for d in ("b", "c"):
            for j in range(s.rng.randint(1, 2)):
                dst = "%s/l%d_%d" % (d, r, j)
                s.link(names[0], dst)
                names.append(dst)
        s.fsync(src)
        for d in ("a", "b", "c"):
            s.fsync_dir(d)
        drop = s.rng.sample(names, s.rng.randint(1, len(names) - 1))
        for q in drop:
            s.unlink(q)
        keep = [q for q in names if q not in drop]
        s.write(keep[0], 4096, 4096)  # same generation: identical bytes
        s.fsync(keep[0])
        for d in ("a", "b", "c"):
            s.fsync_dir(d)


def xattr_chain(s, n):
    """Many extended attributes per file (chained xattr blocks, 0.3 KiB to
    16 KiB of attributes): grow a chain over several blocks, remove every
    other attribute (blocks unlinked), grow values (entries move between
    blocks); fsync after each phase. Attributes are not in the checker's
    model: every crash image must recover, pass fsck and keep the data."""
    s.mkdir("xa")
    s.fsync_dir("")
    for r in range(n):
        f = "xa/f%d" % r
        s.create(f)
        s.write(f, 0, 8192)
        s.fsync(f)
        s.fsync_dir("xa")
        p = s.p(f)
        for i in range(300):
            os.setxattr(p, "user.a%04d" % i, b"v" * (1 + (i * 7) % 60))
        s.fsync(f)
        for i in range(0, 300, 2):
            os.removexattr(p, "user.a%04d" % i)
        s.fsync(f)
        for i in range(1, 300, 4):
            os.setxattr(p, "user.a%04d" % i, b"w" * s.rng.choice([100, 200, 400]))
        s.fsync(f)


def xattr_inode(s, n):
    """Small attribute sets kept in the inode record (docs/FORMAT.md §6,
    in-inode xattrs) next to inline data in the same record: a few short
    attributes (in the inode), more than the inode holds (a block), values
    grown into the block and shrunk back into the inode (the block freed),
    removals; fsync after most steps. Attributes are not in the checker's
    model: every crash image must recover, pass fsck and keep the data."""
    s.mkdir("xi")
    s.fsync_dir("")
    for r in range(4 * n):
        f = "xi/f%d" % r
        s.create(f)
        s.write(f, 0, s.rng.choice([1, 20, 60, 5000]))
        s.fsync(f)
        s.fsync_dir("xi")
        p = s.p(f)
        os.setxattr(p, "user.mime", b"text/plain")
        os.setxattr(p, "security.x", b"l" * s.rng.choice([4, 30]))
        s.fsync(f)
        for i in range(6):
            os.setxattr(p, "user.k%d" % i, b"v" * (5 + 3 * i))
            if s.rng.random() < 0.5:
                s.fsync(f)
        os.setxattr(p, "user.mime", b"m" * 200)
        s.fsync(f)
        for i in range(6):
            os.removexattr(p, "user.k%d" % i)
        os.setxattr(p, "user.mime", b"x")
        s.fsync(f)
        if s.rng.random() < 0.5:
            s.bump_gen(f)
            s.write(f, 0, s.rng.choice([10, 61]))
            s.fsync(f)


def truncate(s, n):
    """truncate down, up (zeros), to zero and rewrite; fsync after each."""
    s.mkdir("tr")
    s.fsync_dir("")
    for r in range(2 * n):
        f = "tr/f%d" % r
        s.create(f)
        s.write(f, 0, 200000)
        s.fsync(f)
        s.fsync_dir("tr")
        for size in (150001, 4096, 4095, 0, 70000, 1 << 20, 10):
            s.truncate(f, size)
            s.fsync(f)
            if s.rng.random() < 0.5:
                s.bump_gen(f)
                s.write(f, s.rng.choice([0, 100, 5000]), 9000)
                s.fsync(f)


def inline_grow(s, n):
    """Files across the inode-resident boundaries (docs/FORMAT.md §6):
    bytes kept in the inode grow into a block (the first write past 60
    bytes), extents kept in the inode overflow into a tree (a 5th extent:
    every other block written) and move back on truncate; then the file
    is cut to zero and starts inside the inode again. fsync after most
    steps, some steps left to the next one."""
    s.mkdir("in")
    s.fsync_dir("")
    for r in range(3 * n):
        f = "in/f%d" % r
        s.create(f)
        s.fsync_dir("in")
        s.write(f, 0, s.rng.choice([1, 20, 59, 60]))
        s.fsync(f)
        s.write(f, s.rng.choice([30, 59, 60]), s.rng.choice([1, 40, 5000]))
        s.fsync(f)
        for k in range(1, 7):
            s.write(f, k * 2 * 4096, 4096)
            if k in (4, 5) or s.rng.random() < 0.5:
                s.fsync(f)
        s.truncate(f, s.rng.choice([3 * 4096, 7 * 4096, 9 * 4096 + 100]))
        s.fsync(f, datasync=s.rng.random() < 0.5)
        s.truncate(f, 0)
        if s.rng.random() < 0.5:
            s.fsync(f)
        s.bump_gen(f)
        s.write(f, 0, s.rng.choice([10, 60, 61]))
        s.fsync(f)


def bigseq(s, n):
    """Large sequential files: 1 MiB writes, fsync every 4 MiB; then an
    overwrite of the first part with a new generation."""
    s.mkdir("big")
    s.fsync_dir("")
    f = "big/seq"
    s.create(f)
    fd = os.open(s.p(f), os.O_WRONLY)
    try:
        total = 8 * n
        for i in range(total):
            s.write(f, i << 20, 1 << 20, kind="append", fd=fd)
            if i % 4 == 3:
                s.fsync(f)
        s.fsync(f)
        s.fsync_dir("big")
        s.bump_gen(f)
        for i in range(3):
            s.write(f, i << 20, 1 << 20, fd=fd)
        s.fsync(f)
    finally:
        os.close(fd)
    s.create("big/nosync")
    s.write("big/nosync", 0, 3 << 20)


def unlink_open(s, n):
    """Unlinked-but-open files (orphans): write a big file, fsync, unlink
    it while open, keep writing to it and to other files with fsyncs;
    after a crash the orphan's space must be reclaimed."""
    s.mkdir("o")
    s.fsync_dir("")
    keepers = []
    for r in range(2 * n):
        big = "o/big%d" % r
        s.create(big)
        s.write(big, 0, 4 << 20)
        s.fsync(big)
        s.fsync_dir("o")
        fd = os.open(s.p(big), os.O_RDWR)
        s.log(t="orphan", bytes=4 << 20)
        s.unlink(big)
        b = s.fsync_dir("o")
        s.note_absent(big, b)
        # the orphan stays usable
        os.pwrite(fd, b"x" * 4096, 0)
        os.fsync(fd)
        k = "o/keep%d" % r
        s.create(k)
        for _ in range(3):
            s.append(k, 5000)
            s.fsync(k)
        keepers.append(k)
        os.close(fd)
        s.fsync_dir("o")


def _link_tmpfile(fd, path):
    """linkat(2) of the open O_TMPFILE fd to path, through /proc/self/fd."""
    libc = ctypes.CDLL(None, use_errno=True)
    src = ("/proc/self/fd/%d" % fd).encode()
    if libc.linkat(-100, src, -100, path.encode(), 0x400) != 0:    # AT_SYMLINK_FOLLOW
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


def tmpfile(s, n):
    """O_TMPFILE (docs/LINUX.md): files written with no name, then given
    one by linkat; two in three fsync'd first and their directory fsync'd
    after (the atomic publish of a complete file), the third linked with
    no fsync at all. Beside them unnamed files holding fsync'd data are
    left open, up to four at a time and four at the crash: orphans whose
    space the next mount must reclaim."""
    s.mkdir("t")
    s.fsync_dir("")
    held = []
    for i in range(6 * n):
        path = "t/f%d" % i
        s.announce(path)
        fd = os.open(s.p("t"), os.O_TMPFILE | os.O_RDWR, 0o644)
        try:
            s.write(path, 0, s.rng.choice([100, 4096, 30000, 300000]), fd=fd)
            if i % 3:
                os.fsync(fd)
            _link_tmpfile(fd, s.p(path))
        finally:
            os.close(fd)
        s.links[path] = {path}
        if i % 3:
            s.note_durable(path, s.fsync_dir("t"))
        fd = os.open(s.p("t"), os.O_TMPFILE | os.O_RDWR, 0o600)
        os.pwrite(fd, b"o" * 200000, 0)
        os.fsync(fd)
        s.log(t="orphan", bytes=200000)
        held.append(fd)
        if len(held) > 4:
            os.close(held.pop(0))
    s.fsync_dir("t")


def relog(s, n):
    """SQLite's rollback-journal pattern, bare: a new file's small data
    (it rides in the log) fsync'd, then its first block overwritten in
    place and fdatasync'd at once, again and again, then the file unlinked
    and its blocks handed to the next one. Each overwrite is acknowledged
    while the durable journal header may still name the transaction that
    logged the older bytes (docs/JOURNAL.md, "Small new data rides in the
    log", the overwrite rule)."""
    s.mkdir("j")
    s.fsync_dir("")
    for i in range(8 * n):
        name = "j/t%d" % i
        s.create(name)
        s.write(name, 0, s.rng.choice([512, 4096, 6000, 12000]))
        s.fsync(name)
        for _ in range(s.rng.randint(1, 3)):
            s.bump_gen(name)
            s.write(name, s.rng.choice([0, 28, 512]), s.rng.choice([28, 512, 4096]))
            s.fsync(name, datasync=True)
        if i % 2:
            s.unlink(name)


def _sqlite_digest(con):
    h = hashlib.sha256()
    for row in con.execute("SELECT id, v FROM t ORDER BY id"):
        h.update(b"%d:" % row[0] + row[1] + b";")
    txn = con.execute("SELECT n FROM meta").fetchone()[0]
    return txn, h.hexdigest()


def _sqlite(s, n, mode):
    d = "db"
    s.mkdir(d)
    s.fsync_dir("")
    for suffix in ("", "-wal", "-shm", "-journal"):
        s.log(t="name", dir=d, name="app.db" + suffix)
        s.log(t="untagged", path=d + "/app.db" + suffix)
    s.chg(d)
    path = d + "/app.db"
    con = sqlite3.connect(s.p(path), isolation_level=None)
    con.execute("PRAGMA journal_mode=%s" % mode)
    con.execute("PRAGMA synchronous=FULL")
    if mode == "WAL":
        con.execute("PRAGMA wal_autocheckpoint=50")
    con.execute("BEGIN")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    con.execute("CREATE TABLE meta (n INTEGER)")
    con.execute("INSERT INTO meta VALUES (0)")
    con.execute("COMMIT")
    txn, dig = _sqlite_digest(con)
    s.log(t="sqlstate", db=path, txn=txn, digest=dig)
    if mode == "WAL":
        s.log(t="sql", db=path, b=s.barrier(), txn=txn)
    next_id = 1
    for i in range(25 * n):
        con.execute("BEGIN")
        for _ in range(s.rng.randint(1, 4)):
            con.execute("INSERT INTO t VALUES (?, ?)",
                        (next_id, os.urandom(s.rng.choice([50, 600, 3000, 9000]))))
            next_id += 1
        if next_id > 3:
            victim = s.rng.randrange(1, next_id)
            con.execute("UPDATE t SET v = ? WHERE id = ?", (os.urandom(700), victim))
            if s.rng.random() < 0.3:
                con.execute("DELETE FROM t WHERE id = ?", (s.rng.randrange(1, next_id),))
        con.execute("UPDATE meta SET n = n + 1")
        con.execute("COMMIT")
        b = s.barrier()
        txn, dig = _sqlite_digest(con)
        s.log(t="sqlstate", db=path, txn=txn, digest=dig)
        if mode == "WAL":
            s.log(t="sql", db=path, b=b, txn=txn)
        else:
            # DELETE + synchronous=FULL commits by unlinking the journal
            # and does not fsync the directory (only synchronous=EXTRA
            # does): commit txn is durable once the next transaction's
            # journal was fsync'd, i.e. when commit txn+1 returns.
            s.log(t="sql", db=path, b=b, txn=txn - 1)
    if mode == "WAL":
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def sqlite_wal(s, n):
    """SQLite, journal_mode=WAL, synchronous=FULL, autocheckpoints."""
    _sqlite(s, n, "WAL")


def sqlite_rollback(s, n):
    """SQLite, rollback journal (DELETE), synchronous=FULL."""
    _sqlite(s, n, "DELETE")


def _run_threads(targets):
    """Runs the callables at once; re-raises the first exception."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(fn,)) for fn in targets]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def _make_logs(s, d, count):
    """Directory d with count empty log files, all fsync'd; their names."""
    s.mkdir(d)
    s.fsync_dir("")
    names = ["%s/log%d" % (d, i) for i in range(count)]
    for q in names:
        s.create(q)
    s.fsync_dir(d)
    return names


def concurrent(s, n):
    """Four threads appending and fsyncing their own logs at once (group
    commit: one sync serves several fsyncs), plus a creator thread."""
    names = _make_logs(s, "c", 4)

    def appender(q, seed):
        for i in range(15 * n):
            s.append(q, 1000 + (seed * 7 + i * 13) % 7000)
            s.fsync(q)

    def creator():
        for i in range(6 * n):
            q = "c/new%d" % i
            s.create(q)
            s.write(q, 0, 3000)
            s.fsync(q)
            if i % 3 == 2:
                s.fsync_dir("c")

    _run_threads([lambda q=q, i=i: appender(q, i) for i, q in enumerate(names)] + [creator])


# 4 KiB records, 4 KiB plus odd tails, and odd sizes: appends that end
# mid-block (the next one writes into an owned block: one-sync commits)
# and appends that allocate (ordered commits, two syncs).
APPEND_SIZES = [4096, 4096 + 17, 4096 + 1000, 8192 + 333, 33, 100, 1000, 5000, 12289]


def appenders8(s, n):
    """Eight threads append to their own logs and fsync (or fdatasync)
    after every record, all at once: group commit of ordered and plain
    transactions. Every acknowledged fsync's prefix must survive exactly,
    and the tags catch foreign or stale bytes past it."""
    names = _make_logs(s, "ap", 8)
    rngs = [s.rng.randrange(1 << 30) for _ in names]

    def appender(i):
        q = names[i]
        fd = os.open(s.p(q), os.O_WRONLY)
        try:
            for k in range(8 * n):
                size = APPEND_SIZES[(rngs[i] + k * 7) % len(APPEND_SIZES)]
                s.append(q, size, fd=fd)
                s.fsync(q, datasync=(i % 2 == 1))
        finally:
            os.close(fd)

    _run_threads([lambda i=i: appender(i) for i in range(len(names))])


def parallel_create(s, n):
    """Four threads create files, write them (sizes from 0 to three
    blocks, odd tails) and fsync them, each in its own directory (fsync'd
    now and then) and in one shared directory; the shared directory is
    fsync'd once they are done. fsync(file) must make the new name durable
    (invariant 5)."""
    s.mkdir("pc")
    s.mkdir("pc/shared")
    dirs = ["pc/d%d" % i for i in range(4)]
    for d in dirs:
        s.mkdir(d)
    s.fsync_dir("")
    s.fsync_dir("pc")
    sizes = [0, 100, 4096, 4097, 9000, 12288]

    def creator(i):
        for k in range(4 * n):
            own = "%s/f%d" % (dirs[i], k)
            s.create(own)
            s.write(own, 0, sizes[(i + k) % len(sizes)])
            s.fsync(own)
            shared = "pc/shared/t%d_%d" % (i, k)
            s.create(shared)
            s.write(shared, 0, sizes[(i * 3 + k) % len(sizes)])
            s.fsync(shared)
            if k % 2 == 1:
                s.fsync_dir(dirs[i])

    _run_threads([lambda i=i: creator(i) for i in range(len(dirs))])
    s.fsync_dir("pc/shared")
    s.fsync_dir("pc")


def periodic(s, n):
    """No fsync: the periodic commit (mounted with commit=1) bounds the
    loss. Each file is written and closed (close makes the kernel's
    writeback cache send the data to the daemon); from commit interval +
    2 s after the close on, every crash image must hold it exactly
    ("bound" records). Rule 3 applies throughout."""
    s.mkdir("p")
    for i in range(8 * n):
        q = "p/f%d" % i
        s.create(q)
        s.write(q, 0, 10000 + 3000 * i)
        if i % 2:
            s.truncate(q, 5000)
        s.note_bound(q, PERIODIC_COMMIT_S + 2.0)
        time.sleep(0.4)
    time.sleep(PERIODIC_COMMIT_S + 3.0)
    s.fsync_dir("p")


PERIODIC_COMMIT_S = 1


def dirsync_all(s, n):
    """`sync` then fsync of one directory is a whole-filesystem sync
    (docs/JOURNAL.md, "Group commit and the fsync path"): files created,
    written, overwritten in place, renamed and unlinked in two other
    directories, then os.sync() and an fsync of a directory none of it
    touched; from that barrier on every file's content and both
    directories' names must be there."""
    for d in ("q", "a", "b"):
        s.mkdir(d)
    s.fsync_dir("")
    files = []
    for r in range(6 * n):
        new = "a/f%d" % r
        s.create(new)
        s.write(new, 0, s.rng.choice([0, 100, 4096, 30000, 70000]))
        files.append(new)
        grown = [f for f in files[:-1] if os.path.getsize(s.p(f)) >= 8192]
        if grown:       # an overwrite in place: data only, no new block
            old = s.rng.choice(grown)
            s.bump_gen(old)
            s.write(old, s.rng.choice([0, 4096]), 4096)
        if r % 3 == 2:
            src = files.pop(0)
            dst = "b/m%d" % r
            s.rename(src, dst)
            files.append(dst)
        if r % 4 == 3:
            gone = files.pop(s.rng.randrange(len(files)))
            s.unlink(gone)
        os.sync()
        b = s.fsync_dir("q")
        for f in files:
            s.note_durable(f, b)
        for d in ("a", "b"):
            s.log(t="dir", path=d, b=b, names=sorted(os.listdir(s.p(d))))


def whiteout(s, n):
    """overlayfs' renames on its upper layer: renameat2(RENAME_WHITEOUT) of
    fsync'd files and of (empty) directories, within a directory and across two,
    some replacing a file, the directory fsync'd after every other one.
    The whiteout and the move are one transaction ("wpair")."""
    for d in ("w", "v"):
        s.mkdir(d)
    s.fsync_dir("")
    for i in range(8 * n):
        src, dst = "w/s%d" % i, ("w/t%d" if i % 3 else "v/t%d") % i
        if i % 4 == 3:
            s.mkdir(src)                    # empty: Session does not follow
        else:                               # the names under a moved directory
            s.create(src)
            s.write(src, 0, s.rng.choice([100, 4096, 9000]))
            s.fsync(src)
            if i % 4 == 2:                  # replaces a file at the target
                s.create(dst)
                s.write(dst, 0, 5000)
                s.fsync(dst)
        s.fsync_dir("w")
        s.rename(src, dst, RENAME_WHITEOUT)
        if i % 2 == 0:
            s.fsync_dir("w")
            s.fsync_dir(os.path.dirname(dst))


def meta_reuse(s, n):
    """Metadata blocks freed and handed out again as file data: on a nearly
    full image, each round builds a large directory (long names: directory
    blocks) and a long attribute chain (xattr blocks), fsyncs them, removes
    both and fsyncs the removal, then writes and fsyncs one file that takes
    the blocks just freed. Neither the checkpoint nor replay may write an
    older metadata image of such a block over its new file data (invariant
    4; docs/JOURNAL.md, "Known limits", has the lazy checkpoint this caught)."""
    s.mkdir("mr")
    s.fsync_dir("")
    st = os.statvfs(s.mnt)
    ballast = st.f_bavail * st.f_frsize - (160 << 10)
    if ballast > 0:
        s.create("mr/ballast")
        for off in range(0, ballast, 1 << 20):
            s.write("mr/ballast", off, min(1 << 20, ballast - off))
        s.fsync("mr/ballast")
    for r in range(6 * n):
        d = "mr/d%d" % r
        s.mkdir(d)
        for i in range(60):
            s.create("%s/%s%03d" % (d, "n" * 180, i), untagged=True)
        s.fsync_dir(d)
        s.fsync_dir("mr")
        x = "mr/x%d" % r
        s.create(x)
        for i in range(120):
            os.setxattr(s.p(x), "user.a%04d" % i, b"v" * 60)
        s.fsync(x)
        for name in os.listdir(s.p(d)):
            s.unlink("%s/%s" % (d, name))
        s.rmdir(d)
        s.unlink(x)
        b = s.fsync_dir("mr")
        s.note_absent(d, b)
        s.note_absent(x, b)
        # one file takes (nearly) all the free space, the blocks just freed
        # included
        st = os.statvfs(s.mnt)
        size = st.f_bavail * st.f_frsize - (24 << 10)
        f = "mr/r%d" % r
        s.create(f)
        if size > 0:
            s.write(f, 0, size)
        s.fsync(f)
        s.fsync_dir("mr")
        # and goes, so that the next round finds room
        s.unlink(f)
        s.fsync_dir("mr")


def overwrite(s, n):
    """In-place overwrites of allocated blocks (no metadata change) made durable by
    fdatasync / fsync / fsync of the directory / fsync of an untouched file, also with a
    clean fsync (nothing written) in between: the engine's data-sync skip (mmio_unsynced)."""
    s.mkdir("ow")
    s.fsync_dir("")
    for name in ("ow/a", "ow/b", "ow/c"):
        s.create(name)
        s.write(name, 0, 256 << 10)
        s.fsync(name)
    s.fsync_dir("ow")
    fds = {name: os.open(s.p(name), os.O_WRONLY) for name in ("ow/a", "ow/b", "ow/c")}
    try:
        for i in range(10 * n):
            name = s.rng.choice(["ow/a", "ow/b", "ow/c"])
            s.bump_gen(name)
            for _ in range(s.rng.randint(1, 3)):
                ln = s.rng.choice([100, 4096, 9000, 33, 70000])
                off = s.rng.randrange(0, (256 << 10) - ln)
                s.write(name, off, ln, fd=fds[name])
            how = i % 4
            if how == 0:
                s.fsync(name, datasync=True)
            elif how == 1:
                s.fsync(name)
            elif how == 2:
                os.sync()                         # pushes the kernel's cached pages
                b = s.fsync_dir("ow")
                s.note_durable(name, b)
            else:
                other = "ow/c" if name != "ow/c" else "ow/a"
                s.fsync(other, datasync=True)     # clean or not: no promise for name
                s.fsync(name, datasync=True)
            if i % 5 == 0:
                s.fsync(name, datasync=True)      # nothing written since: skip allowed
    finally:
        for fd in fds.values():
            os.close(fd)


def prealloc(s, n):
    """Writes into preallocated (unwritten) extents made durable by fdatasync: the
    unwritten->written conversion is what reading the data back needs."""
    s.mkdir("pa")
    s.fsync_dir("")
    for name in ("pa/a", "pa/b"):
        s.create(name)
        s.truncate(name, 1 << 20)
        fd = os.open(s.p(name), os.O_WRONLY)
        os.posix_fallocate(fd, 0, 1 << 20)
        os.close(fd)
        s.fsync(name)
    s.fsync_dir("pa")
    for i in range(10 * n):
        name = s.rng.choice(["pa/a", "pa/b"])
        s.bump_gen(name)
        for _ in range(s.rng.randint(1, 3)):
            ln = s.rng.choice([100, 4096, 9000, 33, 70000])
            off = s.rng.randrange(0, (1 << 20) - ln)
            s.write(name, off, ln)
        if i % 7 == 3:      # extend with preallocation past the end, then write into it
            size = os.stat(s.p(name)).st_size
            fid = s.fid_of[name]
            s.log(t="fid", fid=fid, gen=s.gen[fid], end=size + 65536)
            fd = os.open(s.p(name), os.O_WRONLY)
            os.posix_fallocate(fd, size, 65536)
            os.close(fd)
            s.write(name, size + 5000, 3000)
        s.fsync(name, datasync=(i % 2 == 0))


def _sync_dirs(s, dirs):
    """fsync each directory of dirs, then records every directory's entries
    and every file's content below them as durable (their contents were
    fsync'd before they moved: only the names changed)."""
    b = 0
    for d in dirs:
        b = s.fsync_dir(d)
    for d in dirs:
        for q in s._subtree(d):
            if os.path.isdir(s.p(q)):
                s.log(t="dir", path=q, b=b, names=sorted(os.listdir(s.p(q))))
            else:
                s.note_durable(q, b)
    return b


def _filled_dir(s, d, r):
    """A new directory d with two fsync'd files (and itself fsync'd)."""
    s.mkdir(d)
    for j in range(2):
        f = "%s/f%d" % (d, j)
        s.create(f)
        s.write(f, 0, s.rng.choice([10, 4096, 9000, 30000]))
        s.fsync(f)
    if r % 2:
        s.mkdir(d + "/sub")
        s.fsync_dir(d + "/sub")
    s.fsync_dir(d)


def renames(s, n):
    """Renames across parents, fsync'd in both (ext4: a rename is durable
    once both directories are fsync'd): a directory with files moved to
    another parent (mv d1/x d2/), moved over an empty directory there,
    renameat2(RENAME_EXCHANGE) of two files, of two directories and of a
    file with a directory, each across parents; now and then two steps
    before one sync. The parents hold long names (several directory
    blocks), removed a dozen at a time as the rounds go. Every moved file's content and every directory's
    entries must be there from the sync on; fsck checks the ".." entries
    and the parents' link counts."""
    _renames_in(s, n, ["r1", "r2", "r3"])


def _renames_in(s, n, parents, made=False):
    if not made:
        for d in parents:
            s.mkdir(d)
        s.fsync_dir("")
    # long names: the parents are directories of several blocks (a B+tree),
    # thinned out as the rounds go (nodes merge)
    fillers = {d: ["%s/%s%02d" % (d, "n" * 120, i) for i in range(60)] for d in parents}
    for d in parents:
        for q in fillers[d]:
            s.create(q, untagged=True)
    for r in range(4 * n):
        p1, p2, p3 = s.rng.sample(parents, 3)
        for q in fillers[p3][:12]:
            s.unlink(q)
        del fillers[p3][:12]
        x = "%s/x%d" % (p1, r)
        _filled_dir(s, x, r)
        s.fsync_dir(p1)
        # mv p1/x p2/
        x2 = "%s/x%d" % (p2, r)
        s.rename(x, x2)
        if r % 3 != 2:
            _sync_dirs(s, [p1, p2])
        # over an empty directory in a third parent
        e = "%s/e%d" % (p3, r)
        s.mkdir(e)
        s.fsync_dir(p3)
        s.rename(x2, e)
        _sync_dirs(s, [p2, p3])
        # two files across parents swap
        fa, fb = "%s/a%d" % (p1, r), "%s/b%d" % (p2, r)
        for f in (fa, fb):
            s.create(f)
            s.write(f, 0, s.rng.choice([100, 4096, 12000]))
            s.fsync(f)
        s.fsync_dir(p1)
        s.fsync_dir(p2)
        s.exchange(fa, fb)
        _sync_dirs(s, [p1, p2])
        # two directories across parents swap
        y = "%s/y%d" % (p1, r)
        _filled_dir(s, y, r + 1)
        s.fsync_dir(p1)
        s.exchange(y, e)
        if r % 2:
            _sync_dirs(s, [p1, p3])
        # a file and a directory swap
        s.exchange(fb, y if r % 2 else e)
        _sync_dirs(s, [p1, p2, p3])
        # and the file now in a directory is renamed back across
        if r % 2 == 0:
            s.rename(fb, "%s/back%d" % (p3, r))
            _sync_dirs(s, [p2, p3])


def _copy_range(s, src, dst):
    """copy_file_range of a range of src into dst at the same offsets (the
    tags stay valid: dst is associated with src's fid), then fdatasync."""
    size = os.stat(s.p(src)).st_size
    off = s.rng.randrange(0, size)
    ln = min(s.rng.choice([100, 4096, 20000]), size - off)
    fid = s.fid_of[dst]
    s.log(t="fid", fid=fid, gen=s.gen[fid], end=off + ln)
    s.chg(dst)
    fi, fo = os.open(s.p(src), os.O_RDONLY), os.open(s.p(dst), os.O_WRONLY)
    try:
        done = 0
        while done < ln:
            k = os.copy_file_range(fi, fo, ln - done, off + done, off + done)
            if k <= 0:
                raise OSError("copy_file_range: short copy")
            done += k
    finally:
        os.close(fi)
        os.close(fo)
    s.fsync(dst, datasync=s.rng.random() < 0.5)


def punch(s, n):
    """fallocate on fsync'd files, each made durable by fdatasync (or
    fsync): PUNCH_HOLE (whole blocks freed, partial blocks zeroed in place,
    past the end too), ZERO_RANGE with and without KEEP_SIZE (extending);
    tagged overwrites in between, also into a block a punch just zeroed.
    A third file is appended and fsync'd after every step, so blocks just
    freed are reused at once. Once the punch is durable its old bytes, or
    the reuser's, must never show through: the exact content after each
    fdatasync, and the tags in between. Small files whose bytes live in
    the inode are punched and zeroed too. Now and then a range of the
    punched file is copied (copy_file_range) into a third file and that
    is fdatasync'd. (COLLAPSE_RANGE and INSERT_RANGE:
    the FUSE kernel module refuses them, docs/LINUX.md.)"""
    s.mkdir("ph")
    s.fsync_dir("")
    names = ["ph/a", "ph/b"]
    for name in names:
        s.create(name)
        s.write(name, 0, (64 << 10) + s.rng.choice([0, 100, 4000]))
        s.fsync(name)
    s.create("ph/c")        # copy_file_range's target: a's and b's bytes
    for name in names:
        s.log(t="assoc", path="ph/c", fid=s.fid_of[name])
    s.fsync_dir("ph")
    reuse = 0
    for i in range(14 * n):
        name = names[i % 2]
        size = os.stat(s.p(name)).st_size
        fid = s.fid_of[name]
        op = s.rng.choice(["punch", "punch", "zero", "zero_keep"])
        if s.rng.random() < 0.4:
            s.bump_gen(name)
            s.write(name, s.rng.randrange(0, size), s.rng.choice([33, 4096, 9000]))
            size = os.stat(s.p(name)).st_size
        off = s.rng.randrange(0, size + 4096)
        ln = s.rng.choice([1, 100, 4096, 5000, 20000, 40000])
        if op == "zero":        # may extend the file
            s.log(t="fid", fid=fid, gen=s.gen[fid], end=off + ln)
        mode = {"punch": FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                "zero": FALLOC_FL_ZERO_RANGE,
                "zero_keep": FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE}[op]
        s.falloc(name, mode, off, ln)
        if s.rng.random() < 0.3:    # write into the range just punched
            s.write(name, off + s.rng.choice([0, 7, 4096]), s.rng.choice([16, 700]))
        s.fsync(name, datasync=(i % 3 != 0))
        if i % 3 == 1:
            _copy_range(s, name, "ph/c")
        if i % 5 == 2:      # a file whose bytes are in the inode (inline)
            small = "ph/s%d" % i
            s.create(small)
            s.write(small, 0, s.rng.choice([1, 20, 60]))
            s.fsync(small)
            off = s.rng.randrange(0, 40)
            ln = s.rng.choice([1, 10, 100])
            op = s.rng.choice([FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE])
            if op == FALLOC_FL_ZERO_RANGE:
                sfid = s.fid_of[small]
                s.log(t="fid", fid=sfid, gen=s.gen[sfid], end=off + ln)
            s.falloc(small, op, off, ln)
            s.fsync(small, datasync=True)
        # take the blocks just freed
        r = "ph/r%d" % reuse
        if not os.path.exists(s.p(r)):
            s.create(r)
        s.append(r, s.rng.choice([4096, 20000, 40000]))
        s.fsync(r)
        if i % 4 == 3:
            s.unlink(r)
            s.fsync_dir("ph")
            reuse += 1
        if os.stat(s.p(name)).st_size > (256 << 10):
            s.truncate(name, 64 << 10)
            s.fsync(name)


def attrs(s, n):
    """Metadata-only changes made durable by fsync of the file: chmod,
    chown, utimensat, setxattr (new, replaced with a value of another size:
    in the inode or in a block) and removexattr, now and then a write
    (which drops a setuid bit); a symlink replaced by
    rename (short targets in the inode, long ones in a block) made durable
    by fsync of its directory. Mode, owner, mtime, the user.* attributes
    and the target must be as fsync'd ("meta")."""
    _attrs_in(s, n, "at")


def _attrs_in(s, n, d, made=False):
    if not made:
        s.mkdir(d)
        s.fsync_dir("")
    files = ["%s/f%d" % (d, i) for i in range(3)]
    for f in files:
        s.create(f)
        s.write(f, 0, s.rng.choice([20, 5000]))
        s.fsync_meta(f)
    link = d + "/link"
    s.symlink("initial", link)
    b = s.fsync_dir(d)
    s.note_meta(link, b)
    for i in range(12 * n):
        f = s.rng.choice(files)
        for _ in range(s.rng.randint(1, 4)):
            op = s.rng.randrange(7)
            if op == 6:     # a write after a setuid chmod drops the bit (killpriv)
                s.append(f, s.rng.choice([1, 100, 3000]))
            elif op == 0:
                s.chmod(f, s.rng.choice([0o600, 0o644, 0o640, 0o755, 0o4755, 0o2711, 0o1777]))
            elif op == 1:
                s.chown(f, s.rng.randrange(0, 70000), s.rng.randrange(0, 70000))
            elif op == 2:
                s.utime(f, s.rng.randrange(0, 4 << 60))
            elif op in (3, 4):
                s.setxattr(f, "user.k%d" % s.rng.randrange(6),
                           os.urandom(s.rng.choice([1, 10, 40, 200, 1500])))
            else:
                have = [x for x in os.listxattr(s.p(f)) if x.startswith("user.")]
                if have:
                    s.removexattr(f, s.rng.choice(have))
        s.fsync_meta(f)
        if i % 2:
            tmp = "%s/.l%d" % (d, i)
            target = "t%d/" % i + "x" * s.rng.choice([1, 40, 100, 300])
            s.symlink(target, tmp)
            s.rename(tmp, link)
            b = s.fsync_dir(d)
            s.note_meta(link, b)
            s.note_absent(tmp, b)
        if i % 3 == 0:      # a directory's own attributes
            s.chmod(d, s.rng.choice([0o755, 0o700, 0o3777]))
            s.setxattr(d, "user.dir", os.urandom(s.rng.choice([3, 300])))
            b = s.fsync_dir(d)
            s.note_meta(d, b)


def ino_reuse(s, n):
    """Inode numbers freed and reused at once: a batch of files (inline
    data, one or two blocks, attributes, a hard link, odd modes) fsync'd,
    all removed and the removal fsync'd, then a new batch created in their
    place (the same inode records) and fsync'd with other sizes and no
    attributes. Two of each batch stay open across their unlink (orphans,
    written and fsync'd then), and some new files are replaced by rename
    while open (orphans too). A new file must show none of the old one's
    bytes, attributes or mode ("meta": no user.* attributes); no space may
    leak."""
    s.mkdir("ir")
    s.mkdir("ir/l")
    s.fsync_dir("")
    for r in range(2 * n):
        batch = []
        for i in range(12):
            f = "ir/g%d_%d" % (r, i)
            s.create(f)
            s.write(f, 0, s.rng.choice([0, 7, 60, 61, 4096, 9000]))
            if i % 3 == 0:
                s.setxattr(f, "user.old", os.urandom(s.rng.choice([8, 900])))
            if i % 4 == 1:
                s.chmod(f, 0o4711)
            if i % 5 == 2:
                s.link(f, "ir/l/h%d_%d" % (r, i))
            s.fsync(f)
            batch.append(f)
        s.fsync_dir("ir")
        s.fsync_dir("ir/l")
        # two of them stay open: orphans, written and fsync'd after the
        # unlink, closed once the next batch is there
        held = [os.open(s.p(f), os.O_RDWR) for f in batch[1:3]]
        for f in batch[1:3]:
            s.log(t="orphan", bytes=os.path.getsize(s.p(f)))
        for f in batch:
            s.unlink(f)
        for q in os.listdir(s.p("ir/l")):
            s.unlink("ir/l/" + q)
        b = s.fsync_dir("ir")
        b = max(b, s.fsync_dir("ir/l"))
        for f in batch:
            s.note_absent(f, b)
        for fd in held:
            os.pwrite(fd, b"o" * 5000, 0)
            os.fsync(fd)
        for i in range(12):
            f = "ir/n%d_%d" % (r, i)
            s.create(f)
            s.write(f, 0, s.rng.choice([0, 3, 59, 62, 4095, 8193]))
            s.fsync_meta(f)
            if i % 4 == 0:
                s.unlink(f)
            elif i % 4 == 2:    # replaced by rename while open: an orphan too
                held.append(os.open(s.p(f), os.O_RDONLY))
                tmp = "ir/t%d_%d" % (r, i)
                s.create(tmp)
                s.write(tmp, 0, s.rng.choice([5, 5000]))
                s.fsync(tmp)
                s.rename(tmp, f)
                b = s.fsync_dir("ir")
                s.note_durable(f, b)
                s.note_meta(f, b)
        s.fsync_dir("ir")
        for fd in held:
            os.close(fd)


def meta_mt(s, n):
    """renames, attrs and appends at once in three threads: renames across
    parents and exchanges, attribute changes, and an fsync'd log, their
    fsyncs grouped into shared commits."""
    names = _make_logs(s, "mlog", 1)
    for d in ("m1", "m2", "m3", "mat"):     # the root changes before the threads
        s.mkdir(d)
    s.fsync_dir("")

    def appender():
        for i in range(30 * n):
            s.append(names[0], APPEND_SIZES[i % len(APPEND_SIZES)])
            s.fsync(names[0], datasync=i % 2 == 1)

    _run_threads([lambda: _renames_in(s, n, ["m1", "m2", "m3"], True),
                  lambda: _attrs_in(s, n, "mat", True), appender])


def _versioned_targets(s, d):
    """Three files d/t0..t2, each put in place by renaming a temporary file
    written and fsync'd, that version logged as complete ("whole")."""
    targets = ["%s/t%d" % (d, i) for i in range(3)]
    for i, t in enumerate(targets):
        tmp = "%s/.init%d" % (d, i)
        s.create(tmp)
        s.write(tmp, 0, 3000)
        s.fsync(tmp)
        s.note_version(t, tag_bytes(s.fid_of[tmp], 1, 0, 3000))
        s.rename(tmp, t)
    return targets


def replace_nosync(s, n):
    """Replace via rename without any fsync (docs/CRASH.md, the rename row:
    the auto_da_alloc analogue): a new file is written through a
    descriptor kept open (its data still in the kernel's writeback cache)
    and renamed over an existing file, in the same directory or from
    another one, sizes from 1 byte to 50 blocks, and an unrelated file
    fsync'd before the descriptor is closed (that commit takes the rename);
    now and then the target is held open, now and then both directories
    are fsync'd. At every
    crash point each target is one of its complete versions ("whole"),
    never empty or partial; after a directory fsync, the newest one."""
    for d in ("rp", "rq"):
        s.mkdir(d)
    s.fsync_dir("")
    s.create("rq/clock")
    targets = _versioned_targets(s, "rp")
    s.fsync_dir("rp")
    for i in range(20 * n):
        t = s.rng.choice(targets)
        tmp = "%s/.n%d" % (s.rng.choice(["rp", "rq"]), i)
        s.create(tmp)
        fd = os.open(s.p(tmp), os.O_WRONLY)
        held = os.open(s.p(t), os.O_RDONLY) if i % 4 == 1 else None
        try:
            size = s.rng.choice([1, 100, 4096, 5000, 40000, 200000])
            s.write(tmp, 0, size, fd=fd)
            if i % 3 == 2:      # more data, another write
                more = s.rng.choice([10, 8192])
                s.write(tmp, size, more, kind="append", fd=fd)
                size += more
            s.note_version(t, tag_bytes(s.fid_of[tmp], 1, 0, size))
            s.rename(tmp, t)
            # an unrelated fsync commits the rename while the new data may
            # still be in the kernel (it reaches the daemon at the close)
            s.append("rq/clock", 100)
            s.fsync("rq/clock")
        finally:
            os.close(fd)
            if held is not None:
                os.close(held)
        if i % 5 == 4:
            s.fsync_dir("rq")
            b = s.fsync_dir("rp")
            for q in targets:
                s.note_durable(q, b)


def replace_fsync(s, n):
    """The classic atomic replace, checked in its window: write a temporary
    file, fsync it, rename it over the target; then the directory is
    fsync'd at once, or the renamed file is fsync'd, or nothing happens
    until a later round (an unrelated file's fsync now and then). Before
    the target's sync it is one of its complete versions ("whole"), never
    empty or mixed; after it, the new one exactly. Two more fsync'd files
    swap places by renameat2(RENAME_EXCHANGE), the directory fsync'd every
    other time: both names exist at every crash point, never as one inode
    ("xpair"), each one of the two contents; after the fsync, swapped."""
    s.mkdir("rf")
    s.fsync_dir("")
    s.create("rf/clock")
    targets = _versioned_targets(s, "rf")
    pair = ["rf/xa", "rf/xb"]
    for q, size in zip(pair, (5000, 100)):
        s.create(q)
        s.write(q, 0, size)
        s.fsync(q)
    contents = [tag_bytes(s.fid_of[q], 1, 0, size) for q, size in zip(pair, (5000, 100))]
    b = s.fsync_dir("rf")
    for q in pair:
        for c in contents:
            s.note_version(q, c)
    s.note_pair(pair[0], pair[1], b)
    for i in range(12 * n):
        t = s.rng.choice(targets)
        tmp = "rf/.t%d" % i
        s.create(tmp)
        size = s.rng.choice([1, 100, 4096, 5000, 40000, 200000])
        s.write(tmp, 0, size)
        s.fsync(tmp, datasync=s.rng.random() < 0.3)
        s.note_version(t, tag_bytes(s.fid_of[tmp], 1, 0, size))
        s.rename(tmp, t)
        how = s.rng.randrange(4)
        if how == 0:
            b = s.fsync_dir("rf")
            s.note_durable(t, b)
            s.note_absent(tmp, b)
        elif how == 1:
            s.fsync(t)
        elif how == 2:
            s.append("rf/clock", 100)
            s.fsync("rf/clock")
        if i % 3 == 1:
            s.exchange(pair[0], pair[1])
            if i % 2:
                b = s.fsync_dir("rf")
                for q in pair:
                    s.note_durable(q, b)
    b = s.fsync_dir("rf")
    for q in targets + pair:
        s.note_durable(q, b)


def extent_tree(s, n):
    """Extent maps overflowing the inode into a B+tree of several levels and
    shrinking back: every other block of a file written (hundreds of
    extents: leaves split, an internal root), fdatasync or fsync every 60
    writes; holes punched into it (extents split further), the gaps
    filled, then truncated down in steps (leaves freed, the tree collapsing
    into the inode), to a few bytes (inline) and grown again. A second file
    is appended and fsync'd meanwhile, so blocks freed by the shrink are
    reused at once."""
    s.mkdir("et")
    s.fsync_dir("")
    s.create("et/other")
    for r in range(n):
        f = "et/f%d" % r
        s.create(f)
        s.fsync_dir("et")
        nblk = 300 + 50 * r
        order = list(range(0, 2 * nblk, 2))
        if r % 2:
            s.rng.shuffle(order)
        for j, blk in enumerate(order):
            s.write(f, blk * 4096, 4096)
            if j % 60 == 59:
                s.fsync(f, datasync=j % 120 == 119)
        s.fsync(f)
        for _ in range(4):
            off = s.rng.randrange(0, 2 * nblk * 4096)
            s.falloc(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                     s.rng.choice([4096, 5000, 3 * 4096, 40000]))
            s.fsync(f, datasync=s.rng.random() < 0.5)
            s.append("et/other", s.rng.choice([4096, 20000]))
            s.fsync("et/other")
        s.bump_gen(f)
        for j, blk in enumerate(range(1, 2 * nblk, 2)):
            s.write(f, blk * 4096, 4096)
            if j % 100 == 99:
                s.fsync(f, datasync=True)
        s.fsync(f)
        for size in (nblk * 4096 + 100, 37 * 4096, 9 * 4096 + 1, 4096, 30):
            s.truncate(f, size)
            s.fsync(f, datasync=s.rng.random() < 0.5)
            s.append("et/other", s.rng.choice([4096, 40000]))
            s.fsync("et/other")
        s.bump_gen(f)
        s.write(f, 0, 50)
        s.fsync(f)
        if os.stat(s.p("et/other")).st_size > (2 << 20):
            s.truncate("et/other", 0)
            s.fsync("et/other")


def bigdir(s, n):
    """A directory growing to hundreds of long names (its B+tree index
    splits into several levels) and shrinking again: creates in batches,
    the directory fsync'd after each; files renamed within it and over
    each other; then most names removed in random order (nodes merge,
    blocks freed), fsync'd in batches, and a new batch created in the
    freed space. The entries must be exactly as of each fsync."""
    s.mkdir("bd")
    s.fsync_dir("")
    d = "bd/big"
    s.mkdir(d)
    s.fsync_dir("bd")
    live = []
    count = 0
    for r in range(n):
        for i in range(500):
            q = "%s/%s%05d" % (d, s.rng.choice("abcdefgh") * s.rng.choice([8, 100, 200]), count)
            count += 1
            s.create(q, untagged=True)
            live.append(q)
            if i % 100 == 99:
                s.fsync_dir(d)
        for i in range(40):
            a = s.rng.choice(live)
            if s.rng.random() < 0.5:
                b = "%s/r%05d_%s" % (d, count, "z" * s.rng.choice([1, 150]))
                count += 1
                live.append(b)
            else:
                b = s.rng.choice(live)
                if b == a:
                    continue
            s.log(t="untagged", path=b)
            s.rename(a, b)
            live.remove(a)
        s.fsync_dir(d)
        s.rng.shuffle(live)
        cut = len(live) * 9 // 10
        for i, q in enumerate(live[:cut]):
            s.unlink(q)
            if i % 120 == 119:
                s.fsync_dir(d)
        del live[:cut]
        s.fsync_dir(d)


def links_one(s, n):
    """Hard links added and removed, each step made durable by fsync of one
    name only (not of the directories): its link count must be as fsync'd
    and it must exist (the link that created it included)."""
    for d in ("ha", "hb", "hc"):
        s.mkdir(d)
    s.fsync_dir("")
    for r in range(5 * n):
        src = "ha/f%d" % r
        s.create(src)
        s.write(src, 0, s.rng.choice([30, 5000]))
        s.fsync(src)
        names = [src]
        for step in range(6):
            if len(names) == 1 or s.rng.random() < 0.6:
                dst = "%s/l%d_%d" % (s.rng.choice(["ha", "hb", "hc"]), r, step)
                s.link(s.rng.choice(names), dst)
                names.append(dst)
                s.fsync(dst if s.rng.random() < 0.5 else s.rng.choice(names))
            else:
                q = s.rng.choice(names)
                s.unlink(q)
                names.remove(q)
                s.fsync(s.rng.choice(names))
        if r % 2:
            for q in names:
                s.unlink(q)
            s.fsync_dir("ha")


def storm(s, n):
    """Six threads append to their own logs with fsync or fdatasync after
    every record (now and then renaming the log and fsyncing it under its
    new name) while a seventh creates, writes, renames over, links and
    unlinks small files in another directory without fsync, and fsyncs
    that directory every few steps: from each of those fsyncs on, its
    names and the files' contents must be there (a directory's fsync
    covers every completed operation and the data the daemon received,
    here at each write's close)."""
    s.mkdir("sl")
    s.mkdir("st")
    s.fsync_dir("")
    logs = ["sl/log%d" % i for i in range(6)]
    for q in logs:
        s.create(q)
    s.fsync_dir("sl")

    def appender(i):
        q = logs[i]
        for k in range(10 * n):
            s.append(q, APPEND_SIZES[(i * 5 + k * 7) % len(APPEND_SIZES)])
            s.fsync(q, datasync=(i % 2 == 1))
            if k % 7 == 6:
                nq = "sl/log%d_%d" % (i, k)
                s.rename(q, nq)
                q = nq
                s.fsync(q)

    def stormer():
        rng = s.rng.__class__(s.rng.randrange(1 << 30))
        pool = ["st/n%d" % i for i in range(12)]
        for k in range(60 * n):
            have = [q for q in pool if os.path.exists(s.p(q))]
            op = rng.randrange(5)
            if op == 0 or not have:
                q = rng.choice([x for x in pool if x not in have] or pool)
                if q not in have:
                    s.create(q)
                    s.write(q, 0, rng.choice([10, 3000, 9000, 20000]))
            elif op == 1:
                a, b = rng.choice(have), rng.choice(pool)
                if a != b and not (b in have and s.names_of(a) & s.names_of(b)):
                    s.rename(a, b)
            elif op == 2:
                q = rng.choice(have)
                s.unlink(q)
            elif op == 3:
                a, b = rng.choice(have), rng.choice(pool)
                if b not in have:
                    s.link(a, b)
            else:
                q = rng.choice(have)
                s.bump_gen(q)
                s.write(q, rng.choice([0, 4096]), rng.choice([100, 4096]))
            if k % 6 == 5:
                b = s.fsync_dir("st")
                for q in pool:
                    if os.path.exists(s.p(q)):
                        s.note_durable(q, b)

    _run_threads([lambda i=i: appender(i) for i in range(len(logs))] + [stormer])


def _sync_write(s, path, fd, off, length, flags=0):
    """A tagged write through fd that is durable when it returns (O_SYNC
    or O_DSYNC descriptor, or RWF_* flags): no fsync; the file's content
    is recorded as durable at the barrier count read right after it."""
    s.write(path, off, length, fd=fd, flags=flags)
    s.note_durable(path, s.barrier())


def syncio(s, n):
    """Writes that are durable without fsync: appends and overwrites
    through an O_DSYNC and an O_SYNC descriptor and with pwritev2's
    RWF_DSYNC and RWF_SYNC (POSIX synchronized I/O: the data, and what is
    needed to read it back, durable when the write returns), and a shared
    writable mapping written and msync'd (MS_SYNC) into holes, into
    allocated blocks and into a page past the old end after a truncate
    up. Each file's content must be there from the barrier that completed
    before the write (or msync) returned."""
    s.mkdir("sy")
    s.fsync_dir("")
    names = ["sy/dsync", "sy/sync", "sy/rwf", "sy/map"]
    for q in names:
        s.create(q)
    s.fsync_dir("sy")
    fds = {"sy/dsync": os.open(s.p("sy/dsync"), os.O_WRONLY | os.O_DSYNC),
           "sy/sync": os.open(s.p("sy/sync"), os.O_WRONLY | os.O_SYNC),
           "sy/rwf": os.open(s.p("sy/rwf"), os.O_WRONLY)}
    mfd = os.open(s.p("sy/map"), os.O_RDWR)
    msize = 64 << 10
    s.truncate("sy/map", msize)
    s.fsync("sy/map")
    mm = mmap.mmap(mfd, msize)
    try:
        for i in range(16 * n):
            q = names[i % 3]
            size = os.fstat(fds[q]).st_size
            flags = 0
            if q == "sy/rwf":
                flags = os.RWF_DSYNC if i % 2 else os.RWF_SYNC
            if size > 8192 and s.rng.random() < 0.3:
                s.bump_gen(q)
                ln = s.rng.choice([33, 4096, 5000])
                _sync_write(s, q, fds[q], s.rng.randrange(0, size - ln), ln, flags)
            else:
                _sync_write(s, q, fds[q], size, s.rng.choice(APPEND_SIZES), flags)
            # the mapping: a page or a few bytes, msync'd
            fid = s.fid_of["sy/map"]
            if i % 4 == 3:
                s.bump_gen("sy/map")
            off = s.rng.randrange(0, msize - 4096)
            ln = s.rng.choice([16, 100, 4096])
            s.log(t="fid", fid=fid, gen=s.gen[fid], end=off + ln)
            s.chg("sy/map")
            mm[off:off + ln] = tag_bytes(fid, s.gen[fid], off, ln)
            mm.flush()
            s.note_durable("sy/map", s.barrier())
            if i % 8 == 7 and msize < (256 << 10):
                mm.close()
                msize *= 2
                s.truncate("sy/map", msize)
                mm = mmap.mmap(mfd, msize)
    finally:
        mm.close()
        os.close(mfd)
        for fd in fds.values():
            os.close(fd)


def relog_busy(s, n):
    """relog with a full running transaction: two files get 80 KiB each
    in two transactions (their data rides in the log), then, with no
    fsync in between, a burst of metadata (files with long names and
    attributes created, older ones removed) and in-place overwrites of
    those blocks, fdatasync'd. The running transaction is often too full
    to log the overwritten blocks again, and its commit must then move
    the durable header past the transactions that logged the older bytes
    before the overwrite is acknowledged (docs/JOURNAL.md, head_past).
    The attribute blocks freed with the removed files become the next
    round's logged data."""
    s.mkdir("jb")
    s.mkdir("jb/m")
    s.fsync_dir("")
    made = []
    count = 0
    for r in range(6 * n):
        pair = ["jb/a%d" % r, "jb/b%d" % r]
        for q in pair:
            s.create(q)
            s.write(q, 0, 20 * 4096 - s.rng.choice([0, 100]))
            s.fsync(q, datasync=True)
        for _ in range(s.rng.choice([10, 20, 30])):
            q = "jb/m/%s%05d" % ("m" * 150, count)
            count += 1
            s.create(q, untagged=True)
            os.setxattr(s.p(q), "user.a", b"v" * s.rng.choice([300, 3000]))
            made.append(q)
        for q in pair:
            s.bump_gen(q)
            s.write(q, s.rng.choice([0, 100]), s.rng.choice([8 * 4096, 19 * 4096]))
        for q in pair:
            s.fsync(q, datasync=True)
        if len(made) > 60:
            for q in made[:40]:
                s.unlink(q)
            del made[:40]
        for q in pair[r % 2:]:
            s.unlink(q)


# ---- the journal's rare paths ----------------------------------------------------
# Each of these workloads exists to reach one path of the commit protocol
# (docs/JOURNAL.md) that the loads above never reach: it reads the
# journal's own counters (the metrics xattr) and fails when the path was
# not taken, so that a change that moves the path out of reach is seen.

def jnl_counters(s):
    """The journal's counters of the mount (trusted.mmapfs.metrics on the
    root, "jnl_" lines), without the prefix."""
    text = os.getxattr(s.mnt, "trusted.mmapfs.metrics").decode()
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("jnl_") and parts[1].isdigit():
            out[parts[0][4:]] = int(parts[1])
    return out


# The counters the run reports for every workload (docs/JOURNAL.md, "Metrics").
JNL_SHOWN = ("commits", "ordered_commits", "pipelined_commits", "data_images",
             "head_past_syncs", "wraps", "log_full_syncs")


def _reached(s, counter, what, timed=False):
    """Fails the workload unless the journal counted counter (> 0). Under
    daemon arguments of the run's own (CRASH_ARGS, e.g. -s: one thread, so
    no commit is ever pipelined) only a note is printed; also for a path
    that the threads' timing decides (timed: a slow or busy machine may
    not take it in one run, and make test must not fail for that)."""
    got = jnl_counters(s).get(counter, 0)
    if got == 0 and os.environ.get("CRASH_ARGS"):
        print("note: %s never happened under CRASH_ARGS=%s" % (what, os.environ["CRASH_ARGS"]))
    elif got == 0 and timed:
        print("note: %s never happened in this run (it depends on timing)" % what)
    elif got == 0:
        raise RuntimeError("%s never happened (jnl_%s is 0): the workload "
                           "no longer reaches that path" % (what, counter))


def pipeline(s, n):
    """Pipelined ordered commits (docs/JOURNAL.md, "Pipelined ordered
    commits"): two threads append 200 KiB to 1 MiB to their own files and
    fsync (or fdatasync) each time, so their commits are ordered (new data
    too large to ride in the log) and sync that data first; when the other
    thread's fsync asks for the running transaction during that sync, it
    is due at the commit block: it is closed before the commit's final
    sync and skips its own data sync. A third thread creates files with an
    attribute block each and fsyncs their directory every 40 creates, so
    the two closed transactions share inode table and directory blocks
    (3 to 6 per pipelined commit in a debug run). (A commit asked for by
    fewer callers than recent ones had waits for company, JOURNAL.md, and
    is then rarely due in time: one in six to ten ordered commits is
    pipelined here.) Now and then a big writer overwrites its file's start
    in place or removes an older file (the next appends reuse its blocks),
    and the creator removes its older files. The threads go on (at most 12
    big appends each, times the scale) until the journal counted three
    pipelined commits (times the scale). Every acknowledged fsync exact,
    no stale bytes in reused blocks."""
    s.mkdir("pl")
    s.mkdir("pl/m")
    s.fsync_dir("")
    s.fsync_dir("pl")
    done = threading.Event()

    def big(t):
        made = []
        for i in range(12 * n):
            if i % 3 == 0:
                q = "pl/big%d_%d" % (t, i)
                s.create(q)
                made.append(q)
            q = made[-1]
            s.append(q, s.rng.choice([300, 600, 1200]) * 1024 + s.rng.choice([0, 17, 1000]))
            if i % 3 == 2:
                s.bump_gen(q)
                s.write(q, s.rng.choice([0, 100]), s.rng.choice([4096, 20000]))
            s.fsync(q, datasync=(i % 2 == 1))
            if len(made) > 1 and i % 3 == 2:
                s.unlink(made.pop(0))
            if i >= 3 and jnl_counters(s).get("pipelined_commits", 0) >= 3 * n:
                break

    def creator():
        made = []
        i = 0
        while not done.is_set() and i < 3000 * n:
            q = "pl/m/%s%05d" % ("m" * 100, i)
            s.create(q, untagged=True)
            os.setxattr(s.p(q), "user.a", b"v" * 3000)
            made.append(q)
            i += 1
            if i % 10 == 0:
                for old in made[:-120]:
                    s.unlink(old)
                del made[:-120]
                s.fsync_dir("pl/m")

    def bigs():
        try:
            _run_threads([lambda: big(0), lambda: big(1)])
        finally:
            done.set()

    _run_threads([bigs, creator])
    _reached(s, "pipelined_commits", "a pipelined ordered commit", timed=True)


def relog_full(s, n):
    """An in-place overwrite that the running transaction has no room to
    log again (docs/JOURNAL.md, the overwrite rule, head_past). Two files
    grow by 20 blocks per fdatasync in turns (as much new data as one
    transaction of the minimum journal takes into the log), each time
    overwritten whole in place first, so each keeps all its blocks logged
    in one of the last two transactions; every third fdatasync covers an
    overwrite of both files, more blocks than a transaction of the minimum
    journal has room to log again (83 images). That commit then moves the
    durable header past the transaction with the older images before its
    commit block (head_past_syncs), and the fdatasync waits for it. Every
    acknowledged overwrite exact. After 15 fdatasyncs both files are
    removed; in the long run the next pair reuses their blocks."""
    s.mkdir("rf")
    s.fsync_dir("")
    for r in range(n):
        pair = ["rf/a%d" % r, "rf/b%d" % r]
        for q in pair:
            s.create(q)
        size = {q: 0 for q in pair}

        def overwrite(q):
            if size[q]:
                s.bump_gen(q)
                s.write(q, s.rng.choice([0, 100]), size[q] - s.rng.choice([0, 100]))

        for i in range(15):
            if i % 3 == 2:
                for q in pair:
                    overwrite(q)
                s.fsync(pair[0], datasync=True)
                s.fsync(pair[1], datasync=True)
                continue
            q = pair[i % 3]
            overwrite(q)
            s.write(q, size[q], 20 * 4096)
            size[q] += 20 * 4096
            s.fsync(q, datasync=(i % 4 != 0))
        for q in pair:
            s.unlink(q)
        s.fsync_dir("rf")
    _reached(s, "head_past_syncs", "a commit moving the header past an older image")


# Blocks overwritten per transaction of log_full, in turns: with the
# metadata of a small file created and one removed, two descriptors and
# the commit block, transactions of about 960 and 1015 log blocks on a
# 3851-block journal (3849 log blocks, at most 1023 data images per
# transaction). Three of them fill a lap of the log and the fourth goes
# to its start, where the older of the two live ones begins just too late
# when that fourth one is the larger: the header must be caught up first
# (placement as in src/journal/commit.c, the durable header two
# transactions behind). With up to 10 blocks less at random, two
# consecutive ones still take more than half of the log and the larger
# is still 40 blocks above the smaller; the larger stays below the limit
# of data images (no head_past syncs here: they would empty the window).
LOG_FULL_BLOCKS = [957, 1012]


def log_full(s, n):
    """The log too full for the next transaction (docs/JOURNAL.md, "Log
    space"), mounted with nowriteback_cache on a 3851-block journal: one
    4 MiB file is built from 128 KiB writes whose data rides in the log
    (224 new blocks per fdatasync), and then overwritten in place, a
    prefix of about 950 or 1010 blocks per fdatasync in turns. Each
    overwritten block is logged again, so the transactions take about 955
    and 1015 log blocks (LOG_FULL_BLOCKS): now and then the live window
    leaves no room for the next one, and the commit thread catches the
    header up with a sync of its own before placing it (log_full_syncs);
    the log wraps every third or fourth transaction. The loop ends once
    four such syncs (times the scale) were counted. Every acknowledged overwrite exact."""
    s.mkdir("lf")
    s.fsync_dir("")
    q = "lf/f"
    s.create(q)
    s.fsync_dir("lf")
    size, target = 0, max(LOG_FULL_BLOCKS)
    while size < target * 4096:
        if size:
            s.write(q, 0, size)             # logged again: the entries live on
        for _ in range(7):
            if size < target * 4096:
                s.write(q, size, min(32 * 4096, target * 4096 - size))
                size = os.stat(s.p(q)).st_size
        s.fsync(q, datasync=True)
    full0 = jnl_counters(s).get("log_full_syncs", 0)
    for i in range(40 * n):
        # metadata of each transaction that only replay brings back: a
        # small new file (its data in the inode), an older one removed
        small = "lf/n%d" % i
        s.create(small)
        s.write(small, 0, s.rng.choice([30, 100]))
        if i >= 4:
            s.unlink("lf/n%d" % (i - 4))
        blocks = LOG_FULL_BLOCKS[i % 2] - s.rng.randint(0, 10)
        if i % 2 == 0:
            s.bump_gen(q)
        s.write(q, 0, blocks * 4096)
        s.fsync(q, datasync=(i % 5 != 0))
        s.fsync(small)
        if i >= 8 * n and jnl_counters(s).get("log_full_syncs", 0) >= full0 + 4 * n:
            break
    _reached(s, "log_full_syncs", "a header catch-up for a full log")


# name -> (function, mount options, image size, run in the long run only
# [, mkfs options, comma-separated])
WORKLOADS = {
    "applog": (applog, "", "32M", False),
    "atomic_replace": (atomic_replace, "", "32M", False),
    "dirtree": (dirtree, "", "32M", False),
    "hardlinks": (hardlinks, "", "32M", False),
    "truncate": (truncate, "", "32M", False),
    "xattr_chain": (xattr_chain, "", "32M", False),
    "xattr_inode": (xattr_inode, "", "32M", False),
    "inline_grow": (inline_grow, "", "32M", False),
    "bigseq": (bigseq, "", "48M", False),
    "unlink_open": (unlink_open, "", "32M", False),
    "tmpfile": (tmpfile, "", "32M", False),
    "sqlite_wal": (sqlite_wal, "", "32M", False),
    "sqlite_rollback": (sqlite_rollback, "", "32M", False),
    "relog": (relog, "", "32M", False),
    "concurrent": (concurrent, "", "32M", False),
    "appenders8": (appenders8, "", "32M", False),
    "parallel_create": (parallel_create, "", "32M", False),
    "periodic": (periodic, "commit=1", "32M", False),
    "whiteout": (whiteout, "", "32M", False),
    "dirsync_all": (dirsync_all, "", "32M", False),
    "meta_reuse": (meta_reuse, "", "16M", False),
    "overwrite": (overwrite, "", "32M", False),
    "prealloc": (prealloc, "", "32M", True),
    "renames": (renames, "", "32M", True),
    "punch": (punch, "", "32M", True),
    "attrs": (attrs, "", "32M", True),
    "ino_reuse": (ino_reuse, "", "32M", True),
    "meta_mt": (meta_mt, "", "32M", True),
    "replace_nosync": (replace_nosync, "", "32M", True),
    "replace_nosync_1t": (replace_nosync, "max_threads=1", "32M", True),
    "punch_nowb": (punch, "nowriteback_cache", "32M", True),
    "attrs_nowb": (attrs, "nowriteback_cache", "32M", True),
    # the same loads on the pread/pwrite backend and with a group-commit window
    "applog_pread": (applog, "io=pread", "32M", True),
    "sqlite_wal_pread": (sqlite_wal, "io=pread", "32M", True),
    "concurrent_batched": (concurrent, "sync_delay=3000", "32M", True),
    "overwrite_nowb": (overwrite, "nowriteback_cache", "32M", True),
    "overwrite_pread": (overwrite, "io=pread", "32M", True),
    "prealloc_nowb": (prealloc, "nowriteback_cache", "32M", True),
    "replace_fsync": (replace_fsync, "", "32M", True),
    "extent_tree": (extent_tree, "", "32M", True),
    "bigdir": (bigdir, "", "32M", True),
    "links_one": (links_one, "", "32M", True),
    "storm": (storm, "", "32M", True),
    "syncio": (syncio, "", "32M", False),
    "syncio_nowb": (syncio, "nowriteback_cache", "32M", True),
    "relog_busy": (relog_busy, "", "32M", True),
    # the journal's rare paths: pipelined ordered commits, a commit moving
    # the header past an older data image, the header caught up for a full
    # log (a journal of 3851 blocks, not the minimum of 1026)
    "pipeline": (pipeline, "", "32M", False),
    "relog_full": (relog_full, "", "32M", False),
    "log_full": (log_full, "nowriteback_cache", "48M", False, "-J,3851"),
    # freed runs of 64 KiB or more punched out of the image once their
    # transaction is durable (MOUNT.md, "Discard")
    "unlink_open_discard": (unlink_open, "discard", "32M", True),
    "meta_reuse_discard": (meta_reuse, "discard", "16M", True),
    "extent_tree_discard": (extent_tree, "discard", "32M", True),
    # the formats before INODE_DATA and INODE_XATTR (FORMAT.md §2): every
    # file's data in blocks, every attribute in the xattr chain
    "inline_grow_noinl": (inline_grow, "", "32M", True, "--no-inode-data"),
    "attrs_noix": (attrs, "", "32M", True, "-O,^inode_xattr"),
    "xattr_inode_noix": (xattr_inode, "", "32M", True, "-O,^inode_xattr"),
}


def main(argv):
    if len(argv) >= 2 and argv[1] == "--list":
        for name, (_, opts, size, long_only, *mkfs) in WORKLOADS.items():
            print("%s %s %s %s %s" % (name, size, opts or "-", "long" if long_only else "all",
                                      mkfs[0] if mkfs else "-"))
        return 0
    if len(argv) not in (6, 7) or argv[1] not in WORKLOADS:
        sys.stderr.write(__doc__)
        return 2
    name, mnt, explog, synced, seed = argv[1:6]
    scale = int(argv[6]) if len(argv) == 7 else 1
    s = Session(mnt, explog, synced, int(seed))
    s.log(t="statfs0", used=s.statfs_used())
    WORKLOADS[name][0](s, scale)
    s.log(t="end", b=s.barrier())
    # which paths of the commit protocol the load took (run.sh reports it)
    try:
        c = jnl_counters(s)
    except OSError:         # not root: trusted.* is not readable
        return 0
    print("journal: " + ", ".join("%s %d" % (k, c.get(k, 0)) for k in JNL_SHOWN))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
