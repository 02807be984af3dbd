#!/usr/bin/env python3
"""early.py DIR N: another process looks the moment an unlink, an rmdir,
a utimensat, a chmod or a rename over a file returns (docs/JOURNAL.md, "Early answers": the
daemon answers those from inside the operation, before it has written its
changes). Prints "errors: K" and the first errors; exit 1 if K > 0.

A changer process (the parent) does, for i in 0..N-1: unlink DIR/f<i>,
set the times of DIR/g<i>, chmod DIR/g<i>, rmdir DIR/s<i>, rename
DIR/a<i> over DIR/b<i>, and after
each tells an observer (a child) through a pipe and waits for its
acknowledgement. The observer, a process of its own (its requests are
not the changer's: the daemon has to notify the kernel of what the
changer did to attributes the observer was answered), checks at once:

  unlink  the name is gone (stat: ENOENT), and an open descriptor of the
          file it holds (every other file) shows no link and still reads
          the file's bytes;
  times   stat shows exactly the times set;
  chmod   stat shows the mode set;
  rmdir   the name is gone; every 50th time the whole listing of DIR is
          what the changer left;
  rename  the old name is gone, the new one reads the moved file's bytes.
"""
import os
import struct
import sys


def content(i):
    return (b"%06d" % i) * 600


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    for i in range(n):
        with open(os.path.join(d, "f%d" % i), "wb") as f:
            f.write(content(i))
        open(os.path.join(d, "g%d" % i), "wb").close()
        os.mkdir(os.path.join(d, "s%d" % i))
        with open(os.path.join(d, "a%d" % i), "wb") as f:
            f.write(b"A" + content(i))
        with open(os.path.join(d, "b%d" % i), "wb") as f:
            f.write(b"B")
    held = {i: os.open(os.path.join(d, "f%d" % i), os.O_RDONLY) for i in range(0, n, 2)}
    # warm the observer's view: its answers carry the attributes it checks
    for i in range(n):
        os.stat(os.path.join(d, "g%d" % i))
    os.stat(d)

    to_obs_r, to_obs_w = os.pipe()
    ack_r, ack_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(to_obs_w)
        os.close(ack_r)
        errors = []

        def err(msg):
            if len(errors) < 20:
                errors.append(msg)
            errors_count[0] += 1

        errors_count = [0]
        gone = set()
        while True:
            msg = os.read(to_obs_r, 5)
            if len(msg) < 5:
                break
            op, i = msg[:1], struct.unpack("<I", msg[1:])[0]
            if op == b"u":
                p = os.path.join(d, "f%d" % i)
                try:
                    os.stat(p)
                    err("f%d still there after its unlink returned" % i)
                except FileNotFoundError:
                    pass
                if i in held:
                    st = os.fstat(held[i])
                    if st.st_nlink != 0:
                        err("f%d: open descriptor shows %d links after the unlink" % (i, st.st_nlink))
                    data = os.pread(held[i], len(content(i)) + 10, 0)
                    if data != content(i):
                        err("f%d: open descriptor reads other bytes after the unlink" % i)
                gone.add("f%d" % i)
            elif op == b"t":
                st = os.stat(os.path.join(d, "g%d" % i))
                want = (1000000000 + i * 1000 + 7, 2000000000 + i * 1000 + 9)
                if (st.st_atime_ns, st.st_mtime_ns) != want:
                    err("g%d: times %d %d, set %d %d" % (i, st.st_atime_ns, st.st_mtime_ns, *want))
            elif op == b"m":
                st = os.stat(os.path.join(d, "g%d" % i))
                if st.st_mode & 0o7777 != 0o600 + (i % 2) * 0o40:
                    err("g%d: mode %o after chmod %o" % (i, st.st_mode & 0o7777,
                                                         0o600 + (i % 2) * 0o40))
            elif op == b"r":
                if os.path.lexists(os.path.join(d, "a%d" % i)):
                    err("a%d still there after its rename returned" % i)
                with open(os.path.join(d, "b%d" % i), "rb") as f:
                    if f.read() != b"A" + content(i):
                        err("b%d: not the renamed file's bytes" % i)
                gone.add("a%d" % i)
            elif op == b"d":
                p = os.path.join(d, "s%d" % i)
                if os.path.lexists(p):
                    err("s%d still there after its rmdir returned" % i)
                gone.add("s%d" % i)
                if i % 50 == 0:
                    want = {"%s%d" % (k, j) for k in "fgsab" for j in range(n)} - gone
                    have = set(os.listdir(d))
                    if have != want:
                        err("listing after rmdir s%d: %d names too many, %d missing" %
                            (i, len(have - want), len(want - have)))
            os.write(ack_w, b"k")
        print("errors: %d" % errors_count[0])
        for e in errors:
            print("  " + e)
        sys.stdout.flush()
        os._exit(1 if errors_count[0] else 0)

    os.close(to_obs_r)
    os.close(ack_w)

    def tell(op, i):
        os.write(to_obs_w, op + struct.pack("<I", i))
        if os.read(ack_r, 1) != b"k":
            raise SystemExit("observer gone")

    for i in range(n):
        os.unlink(os.path.join(d, "f%d" % i))
        tell(b"u", i)
        os.utime(os.path.join(d, "g%d" % i),
                 ns=(1000000000 + i * 1000 + 7, 2000000000 + i * 1000 + 9))
        tell(b"t", i)
        os.chmod(os.path.join(d, "g%d" % i), 0o600 + (i % 2) * 0o40)
        tell(b"m", i)
        os.rename(os.path.join(d, "a%d" % i), os.path.join(d, "b%d" % i))
        tell(b"r", i)
        os.rmdir(os.path.join(d, "s%d" % i))
        tell(b"d", i)
    os.close(to_obs_w)
    _, status = os.waitpid(pid, 0)
    for fd in held.values():
        os.close(fd)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
