"""crashlib — the workload side of the crash harness (docs/CRASH.md).

A workload runs on a mount of the recording daemon and changes files only
through a Session, which logs, to a file OUTSIDE the mount, what the
checker may expect after a crash:

  {"t":"chg", "path", "m", "kind"}   path is about to change; m = barriers
                                      completed before the change started.
                                      kind "append": only grows, the old
                                      bytes stay; "any": anything.
  {"t":"file", "path", "b", "size", "sha", "nlink"}
                                      after fsync(path) returned; b =
                                      barriers completed by then.
  {"t":"dir", "path", "b", "names"}  after fsync(dir) returned.
  {"t":"bound", "path", "time", "size", "sha", "nlink"}
                                      like "file", for every barrier that
                                      completed after time (CLOCK_MONOTONIC
                                      seconds): the periodic commit's bound.
  {"t":"absent", "path", "b"}        path was removed and its directory
                                      fsync'd.
  {"t":"name", "dir", "name"}        a name that may appear in dir.
  {"t":"assoc", "path", "fid"}       the file with tag id fid may sit at path.
  {"t":"fid", "fid", "gen", "end"}   tagged bytes up to offset end written
                                      to fid with generation gen (or
                                      truncated/extended to end).
  {"t":"untagged", "path"}           path holds untagged data (SQLite).
  {"t":"sqlstate", "db", "txn", "digest"}  a committed SQLite state.
  {"t":"sql", "db", "b", "txn"}      SQLite commit txn is durable as of b.
  {"t":"statfs0", "used"}            bytes in use on the fresh mount.
  {"t":"orphan", "bytes"}            an unlinked-but-open file of that size.
  {"t":"meta", "path", "b", "type", "mode", "uid", "gid", "mtime_ns",
   "xattrs", ["target"]}              the attributes path had when its fsync
                                      (or its directory's, for a symlink)
                                      returned: st_mode, owner, mtime, user.*
                                      attributes (name -> hex value),
                                      symlink target. Any later "chg" of
                                      path (even an append) lifts it.
  {"t":"whole", "path", "size", "sha"}
                                      a complete version of path: at every
                                      crash point a regular file at path
                                      must be one of its versions (replace
                                      via rename without fsync).
  {"t":"chg", "path", "m", "kind":"shape", "op", "pre"}
                                      a truncate or fallocate (op: {"t":
                                      "truncate", "size"} or {"t":
                                      "falloc", "mode", "off", "len"}) of
                                      a file whose content before it is
                                      saved as pre/<pre> (its sha256) next
                                      to expect.log: the file may show the
                                      content before, or the op applied to
                                      it, and nothing else (crashcheck
                                      shape_ok).
  {"t":"xpair", "a", "b", "bar"}       from barrier bar on, a and b both
                                      exist and are two different inodes at
                                      every crash point (their entries were
                                      durable by then; from then on they
                                      only swap: RENAME_EXCHANGE).
  {"t":"wpair", "src", "dst", "replace"}   src is renamed to dst with
                                      RENAME_WHITEOUT (replace: dst existed):
                                      never a whiteout at src without dst,
                                      never one inode under both names, never
                                      dst without src unless dst existed.

Crash point k (the image of barrier k plus any part of barrier k+1): a
"file"/"dir"/"absent" record with b <= k must hold exactly unless a "chg"
of the same path follows it in the log with m <= k.

Tagged data: every aligned 16-byte unit of a tagged file is
struct.pack("<HHIQ", TAG_MAGIC, gen, fid, offset) — it names its file and
its own offset, so stale or foreign bytes are recognisable.
"""
import ctypes
import ctypes.util
import hashlib
import json
import os
import random
import struct
import threading
import time

TAG_MAGIC = 0x6774
UNIT = 16
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def renameat2(src, dst, flags):
    """renameat2(2) on two paths (AT_FDCWD); OSError on failure."""
    if _libc.renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), src)


def fallocate(path, mode, off, length):
    """fallocate(2) of path with any mode (os.posix_fallocate has none)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        if _libc.fallocate(fd, ctypes.c_int(mode), ctypes.c_int64(off),
                           ctypes.c_int64(length)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def tag_bytes(fid, gen, off, length):
    """Tagged content of file fid (generation gen) for [off, off+length)."""
    if length <= 0:
        return b""
    start = off - off % UNIT
    end = off + length
    n = (end - start + UNIT - 1) // UNIT
    pack = struct.Struct("<HHIQ").pack
    blob = b"".join(pack(TAG_MAGIC, gen, fid, start + i * UNIT) for i in range(n))
    return blob[off - start:off - start + length]


def sha_file(path, limit=None):
    """(size, sha256 hex) of a file's content, or of its first limit bytes."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            want = 1 << 20
            if limit is not None:
                want = min(want, limit - size)
                if want <= 0:
                    break
            b = f.read(want)
            if not b:
                break
            h.update(b)
            size += len(b)
    return size, h.hexdigest()


class Session:
    """Logs expectations of one workload; all paths are relative to mnt."""

    def __init__(self, mnt, explog, synced, seed):
        self.mnt = mnt
        self.synced = synced
        self.rng = random.Random(seed)
        self.out = open(explog, "a", buffering=1)
        self.pre_dir = os.path.join(os.path.dirname(os.path.abspath(explog)), "pre")
        self.lock = threading.Lock()
        self.next_fid = 1
        self.fid_of = {}        # path -> fid of the file there (tagged files)
        self.gen = {}           # fid -> current generation
        self.links = {}         # path -> set of paths naming the same inode

    # ---- logging -----------------------------------------------------------
    def barrier(self):
        """Barriers completed so far (the recorder's published count)."""
        with open(self.synced) as f:
            return int(f.read().strip() or 0)

    def log(self, **rec):
        with self.lock:
            self.out.write(json.dumps(rec, sort_keys=True) + "\n")

    def p(self, rel):
        return os.path.join(self.mnt, rel)

    def chg(self, path, kind="any"):
        self.log(t="chg", path=path, m=self.barrier(), kind=kind)

    def names_of(self, path):
        return self.links.get(path, {path})

    def new_name(self, path):
        d, n = os.path.split(path)
        self.log(t="name", dir=d, name=n)
        self.chg(d)

    # ---- files -----------------------------------------------------------------
    def announce(self, path, untagged=False):
        """Logs a new file about to get the name path (created, or an
        O_TMPFILE about to be linked); returns its fid (0 untagged)."""
        self.new_name(path)
        self.chg(path)
        fid = 0
        if untagged:
            self.log(t="untagged", path=path)
        else:
            with self.lock:
                fid = self.next_fid
                self.next_fid += 1
            self.gen[fid] = 1
            self.fid_of[path] = fid
            self.log(t="assoc", path=path, fid=fid)
        return fid

    def create(self, path, untagged=False):
        """Creates (O_EXCL) a new file at path; returns its fid (0 untagged)."""
        fid = self.announce(path, untagged)
        fd = os.open(self.p(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        self.links[path] = {path}
        return fid

    def write(self, path, off, length, kind="any", fd=None, flags=0):
        """Writes tagged bytes [off, off+length) to the file at path
        (through fd if given, with pwritev2 flags RWF_* if any)."""
        fid = self.fid_of[path]
        gen = self.gen[fid]
        self.log(t="fid", fid=fid, gen=gen, end=off + length)
        for q in self.names_of(path):
            self.chg(q, kind)
        data = tag_bytes(fid, gen, off, length)
        own = fd is None
        if own:
            fd = os.open(self.p(path), os.O_WRONLY)
        try:
            done = 0
            while done < len(data):
                chunk = data[done:done + (4 << 20)]
                done += (os.pwritev(fd, [chunk], off + done, flags) if flags
                         else os.pwrite(fd, chunk, off + done))
        finally:
            if own:
                os.close(fd)

    def append(self, path, length, fd=None):
        off = os.stat(self.p(path)).st_size
        self.write(path, off, length, kind="append", fd=fd)
        return off

    def bump_gen(self, path):
        """Later writes to path carry a new generation (overwrites)."""
        fid = self.fid_of[path]
        self.gen[fid] += 1

    PRE_MAX = 8 << 20       # larger files are not saved: their shape changes are "any"

    def shape_chg(self, path, op):
        """A "chg" of kind "shape" for a truncate or fallocate op about to
        be applied to path: its current content is saved under pre/."""
        with open(self.p(path), "rb") as f:
            data = f.read(self.PRE_MAX + 1)
        if len(data) > self.PRE_MAX:
            for q in self.names_of(path):
                self.chg(q)
            return
        sha = hashlib.sha256(data).hexdigest()
        os.makedirs(self.pre_dir, exist_ok=True)
        dst = os.path.join(self.pre_dir, sha)
        if not os.path.exists(dst):
            tmp = "%s.%d.%d" % (dst, os.getpid(), threading.get_ident())
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, dst)
        for q in self.names_of(path):
            self.log(t="chg", path=q, m=self.barrier(), kind="shape", op=op, pre=sha)

    def truncate(self, path, size):
        fid = self.fid_of.get(path)
        if fid:
            self.log(t="fid", fid=fid, gen=self.gen[fid], end=size)
        self.shape_chg(path, {"t": "truncate", "size": size})
        os.truncate(self.p(path), size)

    def falloc(self, path, mode, off, length):
        """fallocate(2) of path; a ZERO_RANGE that extends the file must
        log its "fid" end first (the caller knows the generation)."""
        self.shape_chg(path, {"t": "falloc", "mode": mode, "off": off, "len": length})
        fallocate(self.p(path), mode, off, length)

    def fsync(self, path, datasync=False):
        """fsync (or fdatasync) path, then records its durable state."""
        fd = os.open(self.p(path), os.O_RDONLY)
        try:
            (os.fdatasync if datasync else os.fsync)(fd)
            b = self.barrier()
            st = os.fstat(fd)
        finally:
            os.close(fd)
        size, sha = sha_file(self.p(path))
        self.log(t="file", path=path, b=b, size=size, sha=sha, nlink=st.st_nlink)
        return b

    def note_durable(self, path, b):
        """Records path's current content as durable as of barrier b (the
        caller knows: e.g. fsync'd content renamed, then dir fsync'd)."""
        st = os.stat(self.p(path))
        size, sha = sha_file(self.p(path))
        self.log(t="file", path=path, b=b, size=size, sha=sha, nlink=st.st_nlink)

    def note_bound(self, path, within):
        """Records path's current content as durable at every barrier
        completed more than within seconds from now (periodic commit)."""
        st = os.stat(self.p(path))
        size, sha = sha_file(self.p(path))
        self.log(t="bound", path=path, time=time.monotonic() + within, size=size,
                 sha=sha, nlink=st.st_nlink)

    def fsync_dir(self, d):
        """fsync the directory d ("" = root), then records its entries."""
        fd = os.open(self.p(d) if d else self.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
            b = self.barrier()
        finally:
            os.close(fd)
        names = sorted(os.listdir(self.p(d) if d else self.mnt))
        self.log(t="dir", path=d, b=b, names=names)
        return b

    def note_absent(self, path, b):
        self.log(t="absent", path=path, b=b)

    def note_version(self, path, data):
        """Records data as a complete version of path: whenever path is a
        regular file, it holds one of them. (Given as bytes, not read
        through the mount: a close would send the kernel's cached pages.)"""
        self.log(t="whole", path=path, size=len(data), sha=hashlib.sha256(data).hexdigest())

    def note_pair(self, a, b, bar):
        """Records that a and b exist, as two inodes, at every crash point
        from barrier bar on (they were durable by then and only swap from
        then on)."""
        self.log(t="xpair", a=a, b=b, bar=bar)

    def note_meta(self, path, b):
        """Records path's attributes (mode, owner, mtime, user.* xattrs,
        symlink target) as durable as of barrier b."""
        full = self.p(path)
        st = os.lstat(full)
        rec = dict(t="meta", path=path, b=b, mode=st.st_mode, uid=st.st_uid,
                   gid=st.st_gid, mtime_ns=st.st_mtime_ns)
        if os.path.islink(full):
            rec.update(type="l", target=os.readlink(full))
        else:
            rec.update(type="d" if os.path.isdir(full) else "f",
                       xattrs={n: os.getxattr(full, n).hex()
                               for n in os.listxattr(full) if n.startswith("user.")})
        self.log(**rec)

    def fsync_meta(self, path):
        """fsync path (a regular file), then records its content and its
        attributes as durable."""
        b = self.fsync(path)
        self.note_meta(path, b)
        return b

    # ---- attributes ------------------------------------------------------------
    def chmod(self, path, mode):
        self.chg(path)
        os.chmod(self.p(path), mode)

    def chown(self, path, uid, gid):
        self.chg(path)
        os.chown(self.p(path), uid, gid)

    def utime(self, path, ns):
        """utimensat: atime and mtime to ns (nanoseconds)."""
        self.chg(path)
        os.utime(self.p(path), ns=(ns, ns))

    def setxattr(self, path, name, value):
        self.chg(path)
        os.setxattr(self.p(path), name, value)

    def removexattr(self, path, name):
        self.chg(path)
        os.removexattr(self.p(path), name)

    def symlink(self, target, path):
        self.new_name(path)
        self.chg(path)
        os.symlink(target, self.p(path))

    # ---- names ---------------------------------------------------------------------
    def unlink(self, path):
        group = self.names_of(path)
        for q in group:
            self.chg(q)
        self.chg(os.path.dirname(path))
        os.unlink(self.p(path))
        rest = group - {path}
        for q in rest:
            self.links[q] = rest
        self.links.pop(path, None)
        self.fid_of.pop(path, None)

    def link(self, src, dst):
        self.new_name(dst)
        self.chg(dst)
        for q in self.names_of(src):
            self.chg(q)
        os.link(self.p(src), self.p(dst))
        group = self.names_of(src) | {dst}
        for q in group:
            self.links[q] = group
        if src in self.fid_of:
            self.fid_of[dst] = self.fid_of[src]
            self.log(t="assoc", path=dst, fid=self.fid_of[src])

    def _subtree(self, d):
        """Paths below directory d (relative to mnt), parents first."""
        out = []
        for root, ds, fs in os.walk(self.p(d)):
            rel = os.path.relpath(root, self.mnt)
            out += [os.path.join(rel, n) for n in sorted(ds) + sorted(fs)]
        return out

    def _moving_below(self, moves):
        """Before a rename that moves directories: moves is a list of (old
        dir, new dir, [paths below old dir]). Logs the changes of every
        path below, old and new, and their new names."""
        for old, new, below in moves:
            for q in below:
                nq = new + q[len(old):]
                d, n = os.path.split(nq)
                self.log(t="name", dir=d, name=n)
                self.chg(q)
                self.chg(nq)

    def _move_below(self, moves):
        """After that rename: the paths below follow (tag associations,
        hard-link groups)."""
        def remap(q):
            for old, new, _ in moves:
                if q.startswith(old + "/"):
                    return new + q[len(old):]
            return q
        # in place (other threads add their own paths meanwhile); the two
        # subtrees of an exchange swap, so take them all out first
        fids = [(q, self.fid_of.pop(q)) for q in list(self.fid_of) if remap(q) != q]
        groups = [(q, self.links.pop(q)) for q in list(self.links) if remap(q) != q]
        for q, f in fids:
            self.fid_of[remap(q)] = f
        for q, g in groups:
            self.links[remap(q)] = g
        for q in list(self.links):      # links from outside into the subtrees
            g = self.links[q]
            if any(remap(x) != x for x in g):
                self.links[q] = {remap(x) for x in g}
        for old, new, below in moves:
            for q in below:
                nq = new + q[len(old):]
                if nq in self.fid_of:
                    self.log(t="assoc", path=nq, fid=self.fid_of[nq])

    def exchange(self, a, b):
        """renameat2(RENAME_EXCHANGE): the inodes at a and b (files or
        directories, any parents) swap places."""
        moves = []
        for x, y in ((a, b), (b, a)):
            if os.path.isdir(self.p(x)) and not os.path.islink(self.p(x)):
                moves.append((x, y, self._subtree(x)))
        for q in (a, b, os.path.dirname(a), os.path.dirname(b)):
            self.chg(q)
        for q in self.names_of(a) | self.names_of(b):
            self.chg(q)
        self._moving_below(moves)
        renameat2(self.p(a), self.p(b), RENAME_EXCHANGE)
        ga = (self.names_of(a) - {a}) | {b}
        gb = (self.names_of(b) - {b}) | {a}
        for q in ga:
            self.links[q] = ga
        for q in gb:
            self.links[q] = gb
        fa, fb = self.fid_of.pop(a, None), self.fid_of.pop(b, None)
        if fa:
            self.fid_of[b] = fa
            self.log(t="assoc", path=b, fid=fa)
        if fb:
            self.fid_of[a] = fb
            self.log(t="assoc", path=a, fid=fb)
        # the subtrees swap (one remap: neither contains the other)
        if moves:
            self._move_below(moves)

    def rename(self, src, dst, flags=0):
        """rename(2), or renameat2 with flags (RENAME_WHITEOUT: a whiteout
        stays at src, logged as a "wpair")."""
        if flags & RENAME_WHITEOUT:
            self.log(t="wpair", src=src, dst=dst, replace=os.path.lexists(self.p(dst)))
        moves = []
        if os.path.isdir(self.p(src)) and not os.path.islink(self.p(src)):
            moves.append((src, dst, self._subtree(src)))
        self.new_name(dst)
        self.chg(src)
        self.chg(dst)
        self.chg(os.path.dirname(src))
        for q in self.names_of(dst) | self.names_of(src):
            self.chg(q)
        self._moving_below(moves)
        if flags:
            renameat2(self.p(src), self.p(dst), flags)
        else:
            os.rename(self.p(src), self.p(dst))
        # dst's old inode loses a name
        old = self.names_of(dst) - {dst}
        for q in old:
            self.links[q] = old
        group = (self.names_of(src) - {src}) | {dst}
        for q in group:
            self.links[q] = group
        self.links.pop(src, None)
        if src in self.fid_of:
            self.fid_of[dst] = self.fid_of.pop(src)
            self.log(t="assoc", path=dst, fid=self.fid_of[dst])
        else:
            self.fid_of.pop(dst, None)
        if moves:
            self._move_below(moves)

    def mkdir(self, path):
        self.new_name(path)
        self.chg(path)
        os.mkdir(self.p(path))

    def rmdir(self, path):
        self.chg(path)
        self.chg(os.path.dirname(path))
        os.rmdir(self.p(path))

    def statfs_used(self):
        st = os.statvfs(self.mnt)
        return (st.f_blocks - st.f_bfree) * st.f_frsize
