#!/usr/bin/env python3
"""Load generators and verifier of the process-crash test
(tests/integration/70_kill9.sh; docs/CRASH.md).

    kill9_load.py fsyncloop FILE LOG SEED     append tagged records, fsync each,
                                              log "end sha256-of-[0,end)" after
                                              every fsync returned
    kill9_load.py sqlite DB LOG SEED          SQLite (WAL, synchronous=FULL)
                                              transactions; log "txn digest"
                                              after every COMMIT returned
    kill9_load.py orphan FILE BYTES READY     write + fsync FILE, unlink it,
                                              fsync its directory, keep it
                                              open, touch READY, sleep
    kill9_load.py verify MNT STATE            check every log listed in STATE
                                              against the remounted MNT

The loads run until the mount dies under them (the daemon is killed): any
OSError / sqlite3 error ends them quietly with status 0. Logs are written
outside the mount, each line only after the fsync/commit returned.
STATE lists "fsync FILE LOG", "sqlite DB LOG" and "orphan" lines.
verify prints one line per problem and exits 1 if there is any.
"""
import hashlib
import os
import random
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crashlib import tag_bytes  # noqa: E402


def fsyncloop(path, log, seed):
    rng = random.Random(seed)
    fid = rng.randrange(1, 1 << 30)
    h = hashlib.sha256()
    end = 0
    with open(log, "a", buffering=1) as out:
        try:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
            while True:
                data = tag_bytes(fid, 1, end, rng.choice([16, 300, 4096, 5000, 65536]))
                os.write(fd, data)
                (os.fdatasync if rng.random() < 0.3 else os.fsync)(fd)
                end += len(data)
                h.update(data)
                out.write("%d %s\n" % (end, h.hexdigest()))
        except OSError:
            return 0


def _digest(con):
    h = hashlib.sha256()
    for row in con.execute("SELECT id, v FROM t ORDER BY id"):
        h.update(b"%d:" % row[0] + row[1] + b";")
    return h.hexdigest()


def sqlite_load(db, log, seed):
    rng = random.Random(seed)
    with open(log, "a", buffering=1) as out:
        try:
            con = sqlite3.connect(db, isolation_level=None, timeout=5)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
            con.execute("CREATE TABLE IF NOT EXISTS meta (n INTEGER)")
            if con.execute("SELECT count(*) FROM meta").fetchone()[0] == 0:
                con.execute("INSERT INTO meta VALUES (0)")
            nid = (con.execute("SELECT max(id) FROM t").fetchone()[0] or 0) + 1
            while True:
                con.execute("BEGIN")
                for _ in range(rng.randint(1, 5)):
                    con.execute("INSERT INTO t VALUES (?, ?)", (nid, os.urandom(rng.choice([40, 900, 5000]))))
                    nid += 1
                con.execute("DELETE FROM t WHERE id < ?", (nid - 200,))
                con.execute("UPDATE meta SET n = n + 1")
                con.execute("COMMIT")
                txn = con.execute("SELECT n FROM meta").fetchone()[0]
                out.write("%d %s\n" % (txn, _digest(con)))
        except (OSError, sqlite3.Error):
            return 0


def orphan(path, nbytes, ready):
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        chunk = os.urandom(1 << 20)
        for off in range(0, nbytes, 1 << 20):
            os.pwrite(fd, chunk, off)
        os.fsync(fd)
        os.unlink(path)
        dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dfd)
        os.close(dfd)
        open(ready, "w").close()
        while True:
            time.sleep(1)
    except OSError:
        return 0


def verify(mnt, state):
    probs = []
    for line in open(state):
        kind, *args = line.split()
        if kind == "fsync":
            path, log = args
            lines = [ln.split() for ln in open(log) if ln.strip()]
            if not lines:
                continue
            end, sha = int(lines[-1][0]), lines[-1][1]
            if not os.path.exists(path):
                probs.append("%s: missing; %d bytes were fsync'd" % (path, end))
                continue
            with open(path, "rb") as f:
                data = f.read(end)
            if len(data) < end:
                probs.append("%s: %d bytes, %d were fsync'd" % (path, len(data), end))
            elif hashlib.sha256(data).hexdigest() != sha:
                probs.append("%s: the first %d bytes (fsync'd) differ" % (path, end))
        elif kind == "sqlite":
            db, log = args
            states = {}
            last = None
            for ln in open(log):
                if ln.strip():
                    t, d = ln.split()
                    states[int(t)] = d
                    last = int(t)
            if last is None:
                continue
            try:
                con = sqlite3.connect(db, isolation_level=None)
                ic = con.execute("PRAGMA integrity_check").fetchall()
                if ic != [("ok",)]:
                    probs.append("%s: integrity_check %r" % (db, ic[:3]))
                    continue
                txn = con.execute("SELECT n FROM meta").fetchone()[0]
                dig = _digest(con)
                con.close()
            except sqlite3.Error as e:
                probs.append("%s: %s" % (db, e))
                continue
            if txn < last:
                probs.append("%s: at commit %d, but commit %d had returned" % (db, txn, last))
            elif txn in states and states[txn] != dig:
                probs.append("%s: content at commit %d differs from what was committed" % (db, txn))
        elif kind == "orphan":
            seen, reach = set(), 0
            for root, dirs, files in os.walk(mnt):
                for n in dirs + files + ["."]:
                    st = os.lstat(os.path.join(root, n))
                    if st.st_ino not in seen:
                        seen.add(st.st_ino)
                        reach += st.st_blocks * 512
            sv = os.statvfs(mnt)
            used = (sv.f_blocks - sv.f_bfree) * sv.f_frsize
            if used - reach > (1 << 20):
                probs.append("%d bytes in use beyond the reachable files: the unlinked-open "
                             "files of the killed mount were not reclaimed" % (used - reach))
    for p in probs:
        print(p)
    return 1 if probs else 0


def main(a):
    if len(a) == 5 and a[1] == "fsyncloop":
        return fsyncloop(a[2], a[3], int(a[4]))
    if len(a) == 5 and a[1] == "sqlite":
        return sqlite_load(a[2], a[3], int(a[4]))
    if len(a) == 5 and a[1] == "orphan":
        return orphan(a[2], int(a[3]), a[4])
    if len(a) == 4 and a[1] == "verify":
        return verify(a[2], a[3])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
