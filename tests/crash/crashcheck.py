#!/usr/bin/env python3
"""crashcheck — generator and checker of crashed images (docs/CRASH.md).

    crashcheck.py BUILD RECORD_DIR [options]

RECORD_DIR holds what one recorded workload left: base.img, barriers.log
(tests/crash/recorder.h), expect.log (tests/crash/crashlib.py) and
workload.txt. For each barrier k the image as of k is rebuilt (base.img plus
the pages of barriers 1..k); crash images are that image plus a random
subset of the pages of barrier k+1 (the pages the kernel may or may not have
written back when the power went), and, for some k, the pure image of k.
Every crash image is recovered and checked:
  1. fsck.mmapfs -n is clean (after journal replay);
  2. everything fsync'd before the crash is there, exactly (content, size,
     names, link counts; directories' entries; SQLite commits);
  3. no file holds bytes never written to it; no size beyond what was
     written; no unknown names; no leaked space (orphans reclaimed);
  4. it mounts and takes new writes (probe file), and unmounts cleanly.
Recovery is done four ways, chosen per image: "fsck" (fsck -n replays, then
crash_extract mounts through the fs API), "mount" (crash_extract replays at
mount), "fuse" (the real daemon, build/mmapfs, mounted and walked) and "ro"
(crash_extract mounts read-only: replay into memory, the image untouched;
no probe, no leak check, since orphans stay; then fsck -n).

Options:
  --seed N          master seed (printed; derives every subset)
  --per-barrier N   random subsets per barrier (default 1)
  --pure-every N    also check the pure image of every N-th barrier (and
                    the last); default 4; 1 = all
  --fuse-every N    about one image in N is checked through a FUSE mount
                    (default 8; 0 = never)
  --point K[:SUBSETSEED][:MODE]   check only this crash point (replay);
                    SUBSETSEED "pure" = no pages of K+1
  --keep DIR        copy failing crash images into DIR
  --mount-opts O    the workload's mount options (-o O): the "fuse" checks
                    and the recoveries of --chain mount with them too
  --work DIR        scratch directory (default: a new dir in /dev/shm)
  --violate         self-test of the checker: crash images that also hold
                    pages of barrier k+2 (impossible: flush k+1 had not
                    completed); exit 0 only if some of them are caught
Prints one line per failure and a summary "N passed, M failed"; exit 1 on
any failure.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crashlib import TAG_MAGIC, UNIT  # noqa: E402

PAGE = 4096
LEAK_SLACK = 256 << 10
RO_SHARE = 1.0 / 8      # share of the crash images recovered read-only first


# ---- the record ------------------------------------------------------------------

class Record:
    """base.img + barriers.log of one recorded run."""

    def __init__(self, d):
        self.dir = d
        if os.path.exists(os.path.join(d, "broken")):
            raise SystemExit("record %s is broken: %s" % (d, open(os.path.join(d, "broken")).read()))
        self.log_path = os.path.join(d, "barriers.log")
        self.base = os.path.join(d, "base.img")
        self.barriers = []      # index k-1: list of (page index, log offset)
        self.during = []        # index k-1: pages changed while flush k ran
        self.versions = []      # index k-1: {page: [log offsets]} intermediate
                                # versions of pages written before flush k
        with open(self.log_path, "rb") as f:
            hdr = f.read(24)
            if hdr[:8] != b"MMCRLOG1":
                raise SystemExit("%s: not a crash log" % self.log_path)
            page, self.size = struct.unpack("<QQ", hdr[8:24])
            if page != PAGE:
                raise SystemExit("%s: page size %d" % (self.log_path, page))
            pending = None
            while True:
                h = f.read(24)
                if len(h) < 24:
                    break
                tag, k, v = h[:4], struct.unpack("<Q", h[8:16])[0], h[16:24]
                if tag == b"BARR":
                    n = struct.unpack("<Q", v)[0]
                    idx = array("Q")
                    idx.frombytes(f.read(8 * n))
                    if sys.byteorder != "little":
                        idx.byteswap()
                    data_off = f.tell()
                    f.seek(n * PAGE, 1)
                    pending = (k, [(int(i), data_off + j * PAGE) for j, i in enumerate(idx)])
                elif tag == b"DONE":
                    err = struct.unpack("<q", v)[0]
                    if pending is None or pending[0] != k:
                        raise SystemExit("%s: DONE %d without its barrier" % (self.log_path, k))
                    if err:
                        raise SystemExit("%s: flush %d failed (%d); not a usable record"
                                         % (self.log_path, k, err))
                    if k != len(self.barriers) + 1:
                        raise SystemExit("%s: barrier %d out of order" % (self.log_path, k))
                    self.barriers.append(pending[1])
                    self.versions.append(pending[2] if len(pending) > 2 else {})
                    self.during.append([])
                    pending = None
                elif tag == b"VERS":
                    n = struct.unpack("<Q", v)[0]
                    idx = array("Q")
                    idx.frombytes(f.read(8 * n))
                    if sys.byteorder != "little":
                        idx.byteswap()
                    data_off = f.tell()
                    f.seek(n * PAGE, 1)
                    if pending is None or pending[0] != k:
                        raise SystemExit("%s: VERS %d without its barrier" % (self.log_path, k))
                    vers = {}
                    for j, i in enumerate(idx):
                        vers.setdefault(int(i), []).append(data_off + j * PAGE)
                    pending = (k, pending[1], vers)
                elif tag == b"DURG":
                    n = struct.unpack("<Q", v)[0]
                    idx = array("Q")
                    idx.frombytes(f.read(8 * n))
                    if sys.byteorder != "little":
                        idx.byteswap()
                    data_off = f.tell()
                    f.seek(n * PAGE, 1)
                    if k != len(self.barriers):
                        raise SystemExit("%s: DURG %d out of order" % (self.log_path, k))
                    self.during[k - 1] = [(int(i), data_off + j * PAGE) for j, i in enumerate(idx)]
                else:
                    raise SystemExit("%s: bad record at %d" % (self.log_path, f.tell() - 24))

    def apply(self, img_fd, pages):
        """Writes the given (page index, log offset) pages into img_fd."""
        with open(self.log_path, "rb") as f:
            for idx, off in pages:
                f.seek(off)
                os.pwrite(img_fd, f.read(PAGE), idx * PAGE)


# ---- expectations ---------------------------------------------------------------------

class Expect:
    """expect.log of one run, indexed for the checks."""

    def __init__(self, path, times=None, pre_dir=None):
        self.recs = [json.loads(line) for line in open(path) if line.strip()]
        self.pre_dir = pre_dir or os.path.join(os.path.dirname(path), "pre")
        # "bound" records become "file" records at the first barrier that
        # completed after their deadline (recorder's dir/times)
        done = []
        if times and os.path.exists(times):
            done = sorted((int(ns) / 1e9, int(k)) for k, ns in
                          (ln.split() for ln in open(times) if ln.strip()))
        for r in self.recs:
            if r["t"] == "bound":
                later = [k for t, k in done if t >= r["time"]]
                r["t"] = "file" if later else "unbound"
                r["b"] = later[0] if later else None
        self.by_path = {}       # path -> [rec] of chg/file/dir/absent, in order
        self.names = {}         # dir -> set of names that may appear there
        self.assoc = {}         # path -> set of fids
        self.fid_end = {}       # fid -> max end
        self.fid_gen = {}       # fid -> max generation
        self.untagged = set()
        self.sql = {}           # db -> ["sql" records: txn durable at b]
        self.sql_digest = {}    # db -> {txn: digest of the committed state}
        self.statfs0 = None
        self.orphans = 0
        self.wpairs = []        # renames with RENAME_WHITEOUT
        self.xpairs = []        # names that only swap (RENAME_EXCHANGE)
        self.meta = {}          # path -> [chg/meta records], in order
        self.wholes = {}        # path -> {(size, sha)}: its complete versions
        for r in self.recs:
            t = r["t"]
            if t in ("chg", "meta"):
                self.meta.setdefault(r["path"], []).append(r)
            if t in ("chg", "file", "dir", "absent"):
                self.by_path.setdefault(r["path"], []).append(r)
            elif t == "name":
                self.names.setdefault(r["dir"], set()).add(r["name"])
            elif t == "assoc":
                self.assoc.setdefault(r["path"], set()).add(r["fid"])
            elif t == "fid":
                self.fid_end[r["fid"]] = max(self.fid_end.get(r["fid"], 0), r["end"])
                self.fid_gen[r["fid"]] = max(self.fid_gen.get(r["fid"], 0), r["gen"])
            elif t == "untagged":
                self.untagged.add(r["path"])
            elif t == "sql":
                self.sql.setdefault(r["db"], []).append(r)
            elif t == "sqlstate":
                self.sql.setdefault(r["db"], [])
                self.sql_digest.setdefault(r["db"], {})[r["txn"]] = r["digest"]
            elif t == "statfs0":
                self.statfs0 = r["used"]
            elif t == "orphan":
                self.orphans += 1
            elif t == "wpair":
                self.wpairs.append(r)
            elif t == "xpair":
                self.xpairs.append(r)
            elif t == "whole":
                self.wholes.setdefault(r["path"], set()).add((r["size"], r["sha"]))
        self.names.setdefault("", set()).add("lost+found")

    def state_at(self, path, k):
        """(durable record or None, relaxation) at crash point k. The
        relaxation is None (exactly as durable), "append", "any", or a
        list of "shape" changes (truncate, fallocate) that followed, each
        with its content before: the file shows one of those contents, or
        one with its change applied (shape_ok)."""
        durable, relax = None, None
        for r in self.by_path.get(path, ()):
            if r["t"] == "chg":
                if durable is None or r["m"] > k:
                    continue
                shape = (r["kind"] == "shape" and durable["t"] == "file" and
                         os.path.exists(self.pre(r["pre"])))
                if shape and relax is None and r["pre"] == durable["sha"]:
                    relax = [r]
                elif shape and isinstance(relax, list):
                    relax = relax + [r]
                elif r["kind"] == "append" and relax in (None, "append"):
                    relax = "append"
                else:
                    relax = "any"
            elif r["b"] <= k:
                durable, relax = r, None
        return durable, relax

    def pre(self, sha):
        return os.path.join(self.pre_dir, sha)

    def meta_at(self, path, k):
        """The "meta" record of path that must hold exactly at crash point k,
        or None (none yet, or a change of any kind followed: an append
        changes the times too)."""
        durable = None
        for r in self.meta.get(path, ()):
            if r["t"] == "meta" and r["b"] <= k:
                durable = r
            elif r["t"] == "chg" and durable is not None and r["m"] <= k:
                durable = None
        return durable


# ---- reading a recovered tree ------------------------------------------------------------

def read_manifest(path):
    entries, statfs = {}, None
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        if "statfs" in r:
            statfs = r["statfs"]
        else:
            r["path"] = r["path"].encode("latin-1").decode("utf-8", "surrogateescape")
            entries[r["path"]] = r
    return entries, statfs


def walk_mount(mnt):
    """The manifest of a FUSE mount, like crash_extract writes it."""
    entries = {}

    def add(rel, st, target=None):
        import stat as S
        typ = "f" if S.S_ISREG(st.st_mode) else "d" if S.S_ISDIR(st.st_mode) else \
            "l" if S.S_ISLNK(st.st_mode) else "o"
        e = {"path": rel, "type": typ, "mode": st.st_mode, "nlink": st.st_nlink,
             "size": st.st_size, "ino": st.st_ino, "blocks512": st.st_blocks,
             "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
        if target is not None:
            e["target"] = target
        full = os.path.join(mnt, rel)
        e["xattrs"] = {} if typ == "l" else \
            {n: os.getxattr(full, n, follow_symlinks=False).hex()
             for n in os.listxattr(full, follow_symlinks=False) if n.startswith("user.")}
        entries[rel] = e

    add("", os.lstat(mnt))
    for root, dirs, files in os.walk(mnt):
        for n in dirs + files:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, mnt)
            st = os.lstat(full)
            add(rel, st, os.readlink(full) if os.path.islink(full) else None)
    sv = os.statvfs(mnt)
    statfs = {"bsize": sv.f_frsize, "blocks": sv.f_blocks, "bfree": sv.f_bfree,
              "files": sv.f_files, "ffree": sv.f_ffree}
    return entries, statfs


def sha_prefix(path, limit=None):
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while limit is None or n < limit:
            b = f.read(1 << 20 if limit is None else min(1 << 20, limit - n))
            if not b:
                break
            h.update(b)
            n += len(b)
    return n, h.hexdigest()


FALLOC_KEEP_SIZE = 0x01


def zero_or_same(got, pre):
    """Every byte of got (as long as pre) is 0 or pre's byte there."""
    for i in range(0, len(got), PAGE):
        g, p = got[i:i + PAGE], pre[i:i + PAGE]
        if g == p or g == bytes(len(g)):
            continue
        if any(b and b != c for b, c in zip(g, p)):
            return False
    return True


def shape_ok(got, pre, op):
    """Is got (a recovered file's content) pre with op applied? A truncate
    is all or nothing (the size, and the bytes it keeps); a fallocate's
    range may be zeroed in part (it frees and zeroes in steps, as on ext4)
    and a ZERO_RANGE may or may not have extended the file yet."""
    if op["t"] == "truncate":
        n = op["size"]
        return got == pre[:n] + bytes(max(0, n - len(pre)))
    off, end = op["off"], op["off"] + op["len"]
    sizes = {len(pre)}
    if not op["mode"] & FALLOC_KEEP_SIZE:
        sizes.add(max(len(pre), end))
    if len(got) not in sizes:
        return False
    lo, hi = min(off, len(pre)), min(end, len(pre))
    return (got[:lo] == pre[:lo] and got[hi:len(pre)] == pre[hi:] and
            zero_or_same(got[lo:hi], pre[lo:hi]) and
            got[len(pre):] == bytes(len(got) - len(pre)))


def unit_ok(u, off, allowed):
    """A unit (possibly short, at EOF) at offset off is good if each byte is
    zero or the same byte of a tag of an allowed (fid, gen) for this offset:
    writes and truncations start and end at any byte, so a unit may mix
    zeros (hole, truncated tail) and generations."""
    if u == bytes(len(u)):
        return True
    if len(u) == UNIT:
        magic, gen, fid, uoff = struct.unpack("<HHIQ", u)
        if magic == TAG_MAGIC and uoff == off and fid in allowed and 1 <= gen <= allowed[fid]:
            return True
    cands = [struct.pack("<HHIQ", TAG_MAGIC, g, f, off)
             for f, mg in allowed.items() for g in range(1, mg + 1)]
    return all(b == 0 or any(c[i] == b for c in cands) for i, b in enumerate(u))


def check_tags(path, allowed):
    """Returns a description of the first foreign/stale unit, or None."""
    words_ok = {TAG_MAGIC | (g << 16) | (f << 32)
                for f, mg in allowed.items() for g in range(1, mg + 1)}
    with open(path, "rb") as fh:
        off = 0
        while True:
            page = fh.read(PAGE)
            if not page:
                return None
            n = len(page) - len(page) % UNIT
            fast = False
            if n == PAGE:
                q = memoryview(page).cast("Q")
                if q[1::2].tolist() == list(range(off, off + PAGE, UNIT)) and \
                        set(q[0::2].tolist()) <= words_ok:
                    fast = True
                elif page == bytes(PAGE):
                    fast = True
            if not fast:
                for i in range(0, len(page), UNIT):
                    u = page[i:i + UNIT]
                    if not unit_ok(u, off + i, allowed):
                        return "foreign or stale bytes at offset %d: %s" % (off + i, u.hex())
            off += len(page)


def sql_state(files):
    """(txn, digest) of a SQLite database copied from a recovered tree,
    or raises with the reason."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("CRASH_TMP", "/dev/shm")) as td:
        db = os.path.join(td, "app.db")
        for suffix, src in files.items():
            shutil.copyfile(src, db + suffix)
        con = sqlite3.connect(db, isolation_level=None)
        try:
            ic = con.execute("PRAGMA integrity_check").fetchall()
            if ic != [("ok",)]:
                raise ValueError("integrity_check: %r" % (ic[:5],))
            h = hashlib.sha256()
            for row in con.execute("SELECT id, v FROM t ORDER BY id"):
                h.update(b"%d:" % row[0] + row[1] + b";")
            txn = con.execute("SELECT n FROM meta").fetchone()[0]
        finally:
            con.close()
        return txn, h.hexdigest()


def check_tree(exp, k, root, entries, statfs):
    """All expectation checks of crash point k against a recovered tree
    (local copy or mount at root, its manifest entries). Returns problems."""
    probs = []
    # 2. what was durable
    for path in exp.by_path:
        d, relax = exp.state_at(path, k)
        if d is None or relax == "any":
            continue
        e = entries.get(path)
        t = d["t"]
        if t == "absent":
            if relax is None and e is not None:
                probs.append("%s: removed (durable at barrier %d) but present" % (path, d["b"]))
        elif t == "dir":
            if e is None or e["type"] != "d":
                probs.append("%s: directory fsync'd at barrier %d is missing" % (path, d["b"]))
            elif relax is None:
                pre = path + "/" if path else ""
                have = sorted(p[len(pre):] for p in entries
                              if p and p.startswith(pre) and "/" not in p[len(pre):])
                if have != d["names"]:
                    probs.append("%s: entries %s, fsync'd at barrier %d as %s"
                                 % (path, have, d["b"], d["names"]))
        elif t == "file":
            if e is None or e["type"] != "f":
                probs.append("%s: file fsync'd at barrier %d (size %d) is missing"
                             % (path, d["b"], d["size"]))
                continue
            full = os.path.join(root, path)
            if isinstance(relax, list):
                with open(full, "rb") as f:
                    got = f.read()
                ok = False
                for r in relax:
                    with open(exp.pre(r["pre"]), "rb") as f:
                        pre = f.read()
                    if got == pre or shape_ok(got, pre, r["op"]):
                        ok = True
                        break
                if not ok:
                    ops = ", ".join("%s%s" % (r["op"]["t"], "" if r["op"]["t"] == "truncate"
                                              else " mode %#x" % r["op"]["mode"]) +
                                    " %s" % ({x: v for x, v in r["op"].items() if x != "t"},)
                                    for r in relax)
                    probs.append("%s: size %d is neither its fsync at barrier %d (size %d) "
                                 "nor that with the changes after it applied (%s)"
                                 % (path, len(got), d["b"], d["size"], ops))
                if e["nlink"] != d["nlink"]:
                    probs.append("%s: link count %d, fsync'd %d at barrier %d"
                                 % (path, e["nlink"], d["nlink"], d["b"]))
            elif relax is None:
                size, sha = sha_prefix(full)
                if size != d["size"] or sha != d["sha"]:
                    probs.append("%s: content differs from its fsync at barrier %d "
                                 "(size %d, expected %d)" % (path, d["b"], size, d["size"]))
                if e["size"] != d["size"]:
                    probs.append("%s: size %d, fsync'd %d at barrier %d"
                                 % (path, e["size"], d["size"], d["b"]))
                if e["nlink"] != d["nlink"]:
                    probs.append("%s: link count %d, fsync'd %d at barrier %d"
                                 % (path, e["nlink"], d["nlink"], d["b"]))
            else:
                size, sha = sha_prefix(full, d["size"])
                if size != d["size"] or sha != d["sha"]:
                    probs.append("%s: the first %d bytes (fsync'd at barrier %d) changed "
                                 "(only appends followed)" % (path, d["size"], d["b"]))
    # a rename with RENAME_WHITEOUT is all or nothing: the whiteout at the
    # source comes with the entry at the target
    for r in exp.wpairs:
        s, d = entries.get(r["src"]), entries.get(r["dst"])
        whiteout = s is not None and s["mode"] == 0o020000   # S_IFCHR | 0
        if whiteout and d is None:
            why = "a whiteout at the source, no target"
        elif s is not None and not whiteout and d is not None and s["ino"] == d["ino"]:
            why = "one inode under both names"
        elif s is None and d is not None and not r["replace"]:
            why = "the target without a whiteout at the source"
        else:
            continue
        probs.append("%s -> %s (RENAME_WHITEOUT) half done: %s" % (r["src"], r["dst"], why))
    # names that only swap: an exchange is all or nothing
    for r in exp.xpairs:
        if r["bar"] > k:
            continue
        ea, eb = entries.get(r["a"]), entries.get(r["b"])
        if ea is None or eb is None:
            probs.append("%s <-> %s (RENAME_EXCHANGE): %s missing" % (
                r["a"], r["b"], r["a"] if ea is None else r["b"]))
        elif ea["ino"] == eb["ino"]:
            probs.append("%s <-> %s (RENAME_EXCHANGE) half done: one inode under both names"
                         % (r["a"], r["b"]))
    # replaced via rename without fsync: never a partial or empty file
    for path, versions in exp.wholes.items():
        e = entries.get(path)
        if e is not None and e["type"] == "f":
            if sha_prefix(os.path.join(root, path)) not in versions:
                probs.append("%s: size %d, none of its %d complete versions (a replace "
                             "via rename without fsync half done)"
                             % (path, e["size"], len(versions)))
    # attributes fsync'd ("meta": mode, owner, mtime, user.* xattrs, symlink
    # target; only the fields the record has)
    for path in exp.meta:
        d = exp.meta_at(path, k)
        if d is None:
            continue
        e = entries.get(path)
        if e is None:
            probs.append("%s: fsync'd at barrier %d (attributes) but missing" % (path, d["b"]))
            continue
        for f in ("type", "mode", "uid", "gid", "mtime_ns", "target"):
            if f in d and e.get(f) != d[f]:
                probs.append("%s: %s is %r, fsync'd as %r at barrier %d"
                             % (path, f, e.get(f), d[f], d["b"]))
        if "xattrs" in d and e.get("xattrs") != d["xattrs"]:
            have, want = e.get("xattrs") or {}, d["xattrs"]
            diff = sorted(x for x in set(have) | set(want) if have.get(x) != want.get(x))
            probs.append("%s: attributes %s differ (bytes %s, fsync'd %s at barrier %d)"
                         % (path, diff, [len(have.get(x, "")) // 2 if x in have else None
                                         for x in diff],
                            [len(want.get(x, "")) // 2 if x in want else None for x in diff],
                            d["b"]))
    # 3. names, tags, sizes
    for path, e in entries.items():
        if not path:
            continue
        dname, name = os.path.split(path)
        if name not in exp.names.get(dname, ()):
            if not (dname == "lost+found"):
                probs.append("%s: unknown name" % path)
            continue
        if e["type"] != "f" or path in exp.untagged:
            continue
        fids = exp.assoc.get(path)
        if not fids:
            probs.append("%s: a regular file where none was ever created" % path)
            continue
        allowed = {f: exp.fid_gen.get(f, 1) for f in fids}
        limit = max(exp.fid_end.get(f, 0) for f in fids)
        if e["size"] > limit:
            probs.append("%s: size %d exceeds anything written (%d)" % (path, e["size"], limit))
        bad = check_tags(os.path.join(root, path), allowed)
        if bad:
            probs.append("%s: %s" % (path, bad))
    # SQLite commits
    for db, rs in exp.sql.items():
        req = max([r["txn"] for r in rs if r["b"] <= k], default=None)
        if db not in entries:
            if req is not None:
                probs.append("%s: database missing (commit %d durable)" % (db, req))
            continue
        files = {}
        for suffix in ("", "-wal", "-journal"):
            if db + suffix in entries:
                files[suffix] = os.path.join(root, db + suffix)
        if req is None and entries[db]["size"] == 0:
            continue
        try:
            txn, dig = sql_state(files)
        except Exception as ex:  # sqlite3 errors, integrity
            if req is None and "no such table" in str(ex):
                continue
            probs.append("%s: %s" % (db, ex))
            continue
        if req is not None and txn < req:
            probs.append("%s: at commit %d, but commit %d was durable" % (db, txn, req))
        elif exp.sql_digest[db].get(txn) != dig:
            probs.append("%s: content at commit %d is not what was committed" % (db, txn))
    # leaked space (orphans reclaimed, nothing lost)
    if exp.statfs0 is not None and statfs:
        used = (statfs["blocks"] - statfs["bfree"]) * statfs["bsize"]
        seen, reach = set(), 0
        for e in entries.values():
            if e["ino"] not in seen:
                seen.add(e["ino"])
                reach += e["blocks512"] * 512
        leak = used - reach - exp.statfs0
        if os.environ.get("CRASH_VERBOSE"):
            print("       crash point %d: %d bytes in use, %d reachable, %d at start: leak %d"
                  % (k, used, reach, exp.statfs0, leak))
        if leak > LEAK_SLACK:
            probs.append("space leak: %d bytes in use beyond the reachable files "
                         "(unlinked-open files not reclaimed?)" % leak)
    return probs


# ---- recovery ------------------------------------------------------------------------------

class Checker:
    def __init__(self, build, rec, exp, work, keep, label):
        self.build = build
        self.rec = rec
        self.exp = exp
        self.work = work
        self.keep = keep
        self.label = label
        self.fsck = os.path.join(build, "fsck.mmapfs")
        self.extract = os.path.join(build, "tests", "crash", "crash_extract")
        self.daemon = os.path.join(build, "mmapfs")
        self.passed = 0
        self.failed = 0
        self.violate = False
        self.quiet = False
        self.mount_args = []    # the workload's mount options (-o ...)

    def run(self, cmd, timeout=120):
        for attempt in range(10):
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=timeout)
                return p.returncode, p.stdout.decode(errors="replace")
            except subprocess.TimeoutExpired:
                return 124, "timed out after %ds" % timeout
            except OSError:
                # the binary is being relinked (make running meanwhile)
                if attempt == 9:
                    raise
                time.sleep(1)

    def fsck_n(self, img, when):
        rc, out = self.run([self.fsck, "-n", img])
        if rc != 0:
            return ["fsck -n %s: exit %d: %s" % (when, rc, out.strip()[-600:])]
        return []

    def via_extract(self, img, k, first_fsck):
        probs = []
        if first_fsck:
            probs += self.fsck_n(img, "before mount")
            if probs:
                return probs
        out = os.path.join(self.work, "tree")
        man = os.path.join(self.work, "manifest.json")
        shutil.rmtree(out, ignore_errors=True)
        rc, msg = self.run([self.extract, "-p", img, out, man])
        if rc != 0:
            return probs + ["crash_extract (mount, walk, new writes, unmount): exit %d: %s"
                            % (rc, msg.strip()[-600:])]
        entries, statfs = read_manifest(man)
        probs += check_tree(self.exp, k, out, entries, statfs)
        probs += self.fsck_n(img, "after mount, new writes and unmount")
        return probs

    def via_readonly(self, img, k):
        """A read-only mount: the journal replayed into memory only. The
        tree must pass the same checks (orphans stay: no leak check) and
        the image must not change, and fsck -n still finds it clean."""
        before = sha_prefix(img)
        out = os.path.join(self.work, "tree")
        man = os.path.join(self.work, "manifest.json")
        shutil.rmtree(out, ignore_errors=True)
        rc, msg = self.run([self.extract, "-r", img, out, man])
        if rc != 0:
            return ["crash_extract -r (read-only mount, walk, unmount): exit %d: %s"
                    % (rc, msg.strip()[-600:])]
        entries, _ = read_manifest(man)
        probs = ["read-only: " + p for p in check_tree(self.exp, k, out, entries, None)]
        if sha_prefix(img) != before:
            probs.append("read-only: the read-only mount changed the image")
        return probs + self.fsck_n(img, "after the read-only mount")

    def via_fuse(self, img, k):
        mnt = os.path.join(self.work, "mnt")
        os.makedirs(mnt, exist_ok=True)
        logf = open(os.path.join(self.work, "daemon.log"), "w+")
        for attempt in range(10):
            try:
                d = subprocess.Popen([self.daemon, img, mnt, "-f"] + self.mount_args,
                                     stdout=logf, stderr=logf)
                break
            except OSError:
                if attempt == 9:
                    raise
                time.sleep(1)
        probs = []
        try:
            deadline = time.time() + 30
            while not os.path.ismount(mnt):
                if d.poll() is not None or time.time() > deadline:
                    logf.seek(0)
                    return ["mmapfs did not mount the crash image (exit %s): %s"
                            % (d.poll(), logf.read()[-600:])]
                time.sleep(0.02)
            entries, statfs = walk_mount(mnt)
            probs += check_tree(self.exp, k, mnt, entries, statfs)
            probe = os.path.join(mnt, ".crash_probe")
            # 1 MiB, half the free space when less than 2 MiB is free (as
            # crash_extract does: meta_reuse keeps its image nearly full,
            # and the write-back of a probe that does not fit fails its
            # fsync, as it must)
            sv = os.statvfs(mnt)
            data = os.urandom(min(1 << 20, sv.f_bavail * sv.f_frsize // 2))
            try:
                with open(probe, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                with open(probe, "rb") as f:
                    if f.read() != data:
                        probs.append("probe file reads back wrong")
                os.unlink(probe)
            except OSError as ex:
                probs.append("new writes fail after recovery: %s" % ex)
        finally:
            if os.path.ismount(mnt):
                # this process holds nothing open there now: "busy" means
                # a process outside the test looks into the mount (a
                # find or du over /dev/shm by other work on the machine),
                # which passes; retry for a while, then name the holders
                for attempt in range(20):
                    rc, msg = self.run(["fusermount3", "-u", mnt], 60)
                    if rc == 0 or "busy" not in msg:
                        break
                    time.sleep(0.5)
                if rc != 0:
                    _, who = self.run(["fuser", "-vm", mnt], 30)
                    probs.append("fusermount3 -u: %s (held by: %s)"
                                 % (msg.strip(), " ".join(who.split())[-300:]))
                    self.run(["fusermount3", "-u", "-z", mnt], 60)
            try:
                rc = d.wait(60)
                if rc != 0:
                    logf.seek(0)
                    probs.append("mmapfs exited %d after unmount: %s" % (rc, logf.read()[-400:]))
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
                probs.append("mmapfs did not exit after unmount")
            logf.close()
        if not probs:
            probs += self.fsck_n(img, "after the FUSE mount")
        return probs

    def build_image(self, state, k, subset_seed, img):
        """Writes crash image k[+subset of k+1] (state: the image as of k) to
        img; returns (pages of k+1, intermediate versions, pages written
        during its flush) that it took."""
        shutil.copyfile(state, img)
        npages = ndur = nver = 0
        if subset_seed is not None and k < len(self.rec.barriers):
            # a crash before flush k+1 completed: any subset of its pages,
            # and, half of the time, any subset of the pages written while
            # it ran (when there were such)
            nxt = self.rec.barriers[k]
            vers = self.rec.versions[k]
            r = random.Random(subset_seed)
            frac = r.random()
            pages = [p for p in nxt if r.random() < frac]
            npages = len(pages)
            # a page written several times before flush k+1 may be on disk
            # in an intermediate version (also one whose final content
            # equals the old one)
            if vers and r.random() < 0.5:
                inter = []
                for idx in sorted(vers):
                    if r.random() < frac:
                        inter.append((idx, r.choice(vers[idx])))
                chosen = {i for i, _ in inter}
                pages = [p for p in pages if p[0] not in chosen] + inter
                nver = len(inter)
            dur = self.rec.during[k]
            if dur and r.random() < 0.5:
                frac = r.random()
                dpages = [p for p in dur if r.random() < frac]
                ndur = len(dpages)
                pages += dpages
            if self.violate and k + 1 < len(self.rec.barriers):
                # self-test only: pages of barrier k+2 without flush k+1
                # having completed, which no kernel can produce
                later = self.rec.barriers[k + 1]
                frac = r.random()
                pages += [p for p in later if r.random() < frac]
            fd = os.open(img, os.O_WRONLY)
            try:
                self.rec.apply(fd, pages)
            finally:
                os.close(fd)
        return npages, nver, ndur

    def check_image(self, state, k, subset_seed, mode):
        """Builds crash image k[+subset of k+1], recovers and checks it."""
        img = os.path.join(self.work, "crash.img")
        npages, nver, ndur = self.build_image(state, k, subset_seed, img)
        try:
            if mode == "fuse":
                probs = self.via_fuse(img, k)
            elif mode == "ro":
                probs = self.via_readonly(img, k)
            else:
                probs = self.via_extract(img, k, mode == "fsck")
        except Exception as ex:  # a harness problem is reported, not fatal
            probs = ["checker error: %s: %s" % (type(ex).__name__, ex)]
        point = "%d:%s:%s" % (k, "pure" if subset_seed is None else subset_seed, mode)
        if probs and self.quiet:
            self.failed += 1
        elif probs:
            self.failed += 1
            nb = len(self.rec.barriers)
            print("FAIL %s crash point %s (%d of %d pages of barrier %d, %d in an "
                  "intermediate version, %d of %d written during its flush):"
                  % (self.label, point, npages, len(self.rec.barriers[k]) if k < nb else 0,
                     k + 1, nver, ndur, len(self.rec.during[k]) if k < nb else 0))
            for p in probs[:12]:
                print("       " + p)
            if len(probs) > 12:
                print("       ... %d more" % (len(probs) - 12))
            print("       replay: tests/crash/crashcheck.py %s %s --point %s%s"
                  % (self.build, self.rec.dir, point,
                     " --mount-opts " + self.mount_args[1] if self.mount_args else ""))
            if self.keep:
                os.makedirs(self.keep, exist_ok=True)
                shutil.copyfile(img, os.path.join(self.keep, "%s-%s.img"
                                                  % (self.label, point.replace(":", "_"))))
        else:
            self.passed += 1
        sys.stdout.flush()
        return not probs


def check_points(ck, rec, rng, per_barrier, pure_every, fuse_every, state, chain_at=()):
    """Checks the crash images of every barrier of rec (state: a scratch
    copy of its base.img, advanced barrier by barrier). chain_at: crash
    points (k, subset seed) whose images are also saved, in order, as
    ck.work/chainN.img for check_chain."""
    K = len(rec.barriers)
    chain_at = list(chain_at)
    fd = os.open(state, os.O_WRONLY)
    try:
        for k in range(K + 1):
            todo = []
            if k == K or (pure_every and k % pure_every == 0):
                todo.append(None)
            if k < K and rec.barriers[k]:
                todo += [rng.getrandbits(32) for _ in range(per_barrier)]
            for sub in todo:
                r = rng.random()
                mode = "fuse" if fuse_every and r < 1.0 / fuse_every else \
                    ("fsck" if rng.random() < 0.5 else "mount")
                if mode != "fuse" and r > 1 - RO_SHARE:
                    mode = "ro"
                ck.check_image(state, k, sub, mode)
            for i, (ck_k, ck_sub) in enumerate(chain_at):
                if ck_k == k:
                    ck.build_image(state, k, ck_sub, os.path.join(ck.work, "chain%d.img" % i))
            if k < K:
                rec.apply(fd, rec.barriers[k])
    finally:
        os.close(fd)


def chain_expect(src, k, dst):
    """The expectations of crash point k (expect.log src) for a recording
    that starts from that crash image (dst): what was durable by barrier k
    is durable from barrier 0 on, a change that may be in the image (begun
    by k) may be there at every point, the rest never happened. Periodic
    commit bounds are left out."""
    with open(dst, "w") as out:
        for line in open(src):
            if not line.strip():
                continue
            r = json.loads(line)
            if r["t"] == "chg":
                if r["m"] > k:
                    continue
                r["m"] = 0
            elif r["t"] in ("file", "dir", "absent", "meta", "sql"):
                if r["b"] > k:
                    continue
                r["b"] = 0
            elif r["t"] == "xpair":
                if r["bar"] > k:
                    continue
                r["bar"] = 0
            elif r["t"] == "bound":
                continue
            out.write(json.dumps(r, sort_keys=True) + "\n")


def check_chain(ck, build, img, k, sub, rng, a, label):
    """A crash during recovery: mounts crash image img (point k, subset
    sub) with the recording daemon, which replays the journal and reclaims
    orphans, and unmounts it; then checks every crash image of that
    recording against what was durable at point k. Returns (passed,
    failed)."""
    point = "%d:%s" % (k, "pure" if sub is None else sub)
    # recorded where a failure keeps it (the replay lines name it)
    keep = os.path.join(ck.keep, "chain-" + point.replace(":", "_")) if ck.keep else None
    rdir = os.path.join(keep, "record") if keep else os.path.join(ck.work, "chainrec")
    shutil.rmtree(rdir, ignore_errors=True)
    os.makedirs(rdir)
    chain_expect(os.path.join(ck.rec.dir, "expect.log"), k, os.path.join(rdir, "expect.log"))
    # a mount point of its own: a daemon that did not go away must not
    # hold up the next recovery
    mnt = tempfile.mkdtemp(prefix="chainmnt.", dir=ck.work)
    recorder = os.path.join(build, "tests", "crash", "mmapfs-record")
    with open(os.path.join(rdir, "daemon.log"), "w+") as logf:
        d = subprocess.Popen([recorder, img, mnt, "-f"] + ck.mount_args, stdout=logf, stderr=logf,
                             env=dict(os.environ, MMAPFS_CRASH_RECORD=rdir))
        deadline = time.time() + 30
        while not os.path.ismount(mnt) and d.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        mounted = os.path.ismount(mnt)
        urc, umsg = ck.run(["fusermount3", "-u", mnt], 60) if mounted else (0, "")
        try:
            rc = d.wait(120)
        except subprocess.TimeoutExpired:
            d.kill()
            rc = d.wait()
        if os.path.ismount(mnt):
            ck.run(["fusermount3", "-u", "-z", mnt], 60)
        logf.seek(0)
        why = logf.read()[-400:]
        if urc:
            why += " (fusermount3 -u: exit %d: %s)" % (urc, umsg.strip()[-200:])
    if not mounted or rc != 0 or os.path.exists(os.path.join(rdir, "broken")):
        print("FAIL %s recovery of crash point %s: the recording daemon (mounted %s, exit %s%s): %s"
              % (label, point, mounted, rc, ", killed after 120 s" if rc == -9 else "", why))
        return 0, 1
    rec2 = Record(rdir)
    exp2 = Expect(os.path.join(rdir, "expect.log"), pre_dir=ck.exp.pre_dir)
    work2 = os.path.join(ck.work, "chainwork")
    shutil.rmtree(work2, ignore_errors=True)
    os.makedirs(work2)
    ck2 = Checker(build, rec2, exp2, work2, keep,
                  "%s.recovery-%s" % (label, point.replace(":", "_")))
    ck2.mount_args = ck.mount_args
    state = os.path.join(work2, "state.img")
    shutil.copyfile(rec2.base, state)
    check_points(ck2, rec2, rng, a.per_barrier, 1, a.fuse_every, state)
    print("     recovery of crash point %s: %d barriers (%d pages), %d crash images: "
          "%d passed, %d failed" % (point, len(rec2.barriers),
                                    sum(len(b) for b in rec2.barriers),
                                    ck2.passed + ck2.failed, ck2.passed, ck2.failed))
    if ck2.failed and keep:
        print("       recovery record kept in %s" % rdir)
    elif keep:
        shutil.rmtree(rdir, ignore_errors=True)
        if not os.listdir(keep):
            os.rmdir(keep)
        if not os.listdir(ck.keep):
            os.rmdir(ck.keep)
    return ck2.passed, ck2.failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("record")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--per-barrier", type=int, default=1)
    ap.add_argument("--pure-every", type=int, default=4)
    ap.add_argument("--fuse-every", type=int, default=8)
    ap.add_argument("--point", default=None)
    ap.add_argument("--keep", default=None)
    ap.add_argument("--work", default=None)
    ap.add_argument("--label", default=None)
    ap.add_argument("--mount-opts", default="",
                    help="the workload's mount options: the FUSE checks and the "
                    "recoveries of --chain mount with them too")
    ap.add_argument("--chain", type=int, default=0,
                    help="also N crashes during recovery: N crash images are mounted "
                         "by the recording daemon and every crash image of that "
                         "recovery is checked against the first crash point's expectations")
    ap.add_argument("--violate", action="store_true",
                    help="self-test: also apply pages of barrier k+2 (impossible crash states); "
                         "a working checker finds failures; exit 0 if any was found")
    a = ap.parse_args()

    build = os.path.abspath(a.build)
    rec = Record(a.record)
    exp = Expect(os.path.join(a.record, "expect.log"), os.path.join(a.record, "times"))
    seed = a.seed if a.seed is not None else random.SystemRandom().getrandbits(31)
    label = a.label or os.path.basename(os.path.normpath(a.record))
    work = a.work or tempfile.mkdtemp(prefix="mmapfs-crashcheck.",
                                      dir=os.environ.get("CRASH_TMP", "/dev/shm"))
    os.makedirs(work, exist_ok=True)
    ck = Checker(build, rec, exp, work, a.keep, label)
    ck.violate = ck.quiet = a.violate
    ck.mount_args = ["-o", a.mount_opts] if a.mount_opts else []
    ck.quiet = ck.quiet and not os.environ.get("CRASH_VERBOSE")
    K = len(rec.barriers)
    rng = random.Random(seed)
    t0 = time.time()
    state = os.path.join(work, "state.img")
    shutil.copyfile(rec.base, state)
    try:
        if a.point:
            parts = a.point.split(":")
            want = int(parts[0])
            sub = None if len(parts) < 2 or parts[1] == "pure" else int(parts[1])
            mode = parts[2] if len(parts) > 2 else "fsck"
        if a.point:
            fd = os.open(state, os.O_WRONLY)
            try:
                for k in range(min(want, K)):
                    rec.apply(fd, rec.barriers[k])
            finally:
                os.close(fd)
            if want <= K:
                if a.chain:
                    img = os.path.join(work, "chain0.img")
                    ck.build_image(state, want, sub, img)
                    p, f = check_chain(ck, build, img, want, sub, rng, a, label)
                    ck.passed += p
                    ck.failed += f
                else:
                    ck.check_image(state, want, sub, mode)
        else:
            crng = random.Random(seed ^ 0x5a5a)
            chain_at = [(k, None if crng.random() < 0.3 else crng.getrandbits(32))
                        for k in sorted(crng.randrange(1, K + 1) for _ in range(a.chain))] \
                if a.chain and K else []
            chain_at = [(k, s if k < K else None) for k, s in chain_at]
            check_points(ck, rec, rng, a.per_barrier, a.pure_every, a.fuse_every, state,
                         chain_at)
            for i, (k, sub) in enumerate(chain_at):
                p, f = check_chain(ck, build, os.path.join(work, "chain%d.img" % i), k, sub,
                                   rng, a, label)
                ck.passed += p
                ck.failed += f
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    print("%s: %d barriers (%d pages, %d intermediate versions; %d with writes during "
          "the flush), seed %d, "
          "%d crash images checked in %.1fs: %d passed, %d failed"
          % (label, K, sum(len(b) for b in rec.barriers),
             sum(len(v) for vs in rec.versions for v in vs.values()),
             sum(1 for d in rec.during if d),
             seed, ck.passed + ck.failed, time.time() - t0, ck.passed, ck.failed))
    if a.violate:
        print("self-test: %d of %d impossible crash images were caught"
              % (ck.failed, ck.passed + ck.failed))
        return 0 if ck.failed else 1
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
