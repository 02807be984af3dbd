#!/usr/bin/env python3
"""errno_check.py EXPECT CODE — runs a snippet of Python and checks its errno.

EXPECT is "OK" (the snippet must finish without an exception) or one or more
errno names separated by "|" (the snippet must raise OSError with one of
them, e.g. "EPERM|EACCES"; compared by number, so EOPNOTSUPP matches
ENOTSUP). Exit 0 when the expectation holds, 1 otherwise,
with a message that says what happened instead.

The snippet runs with os, errno, stat, sys and these helpers in scope:
  renameat2(old, new, flags)   the renameat2(2) system call (AT_FDCWD paths)
  RENAME_NOREPLACE, RENAME_EXCHANGE
  fallocate(fd, mode, offset, length)   fallocate(2)
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_ZERO_RANGE, FALLOC_FL_INSERT_RANGE
  expect(cond, message)        raises AssertionError(message) if not cond
  read_file(path), write_file(path, data)   whole-file bytes helpers
An AssertionError always fails the check, whatever EXPECT says.
"""
import ctypes
import ctypes.util
import errno
import os
import stat
import sys

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20


def _raise_errno(what, path=None):
    err = ctypes.get_errno()
    raise OSError(err, "%s: %s" % (what, os.strerror(err)), path)


def renameat2(old, new, flags):
    """renameat2(AT_FDCWD, old, AT_FDCWD, new, flags); OSError on failure."""
    fn = _libc.renameat2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                   ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        _raise_errno("renameat2", old)


def fallocate(fd, mode, offset, length):
    """fallocate(2) with 64-bit offsets; OSError on failure."""
    fn = _libc.fallocate64
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    if fn(fd, mode, offset, length) != 0:
        _raise_errno("fallocate")


def expect(cond, message):
    """Fails the check with message unless cond holds."""
    if not cond:
        raise AssertionError(message)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) != 3:
        print("usage: errno_check.py EXPECT CODE", file=sys.stderr)
        return 2
    expect_spec, code = sys.argv[1], sys.argv[2]
    wanted = expect_spec.split("|")
    for name in wanted:
        if name != "OK" and not hasattr(errno, name):
            print("unknown errno name %r" % name, file=sys.stderr)
            return 2
    scope = dict(globals())
    try:
        exec(compile(code, "<check>", "exec"), scope)
    except AssertionError as e:
        print("assertion failed: %s" % e)
        return 1
    except OSError as e:
        got = errno.errorcode.get(e.errno, str(e.errno))
        if any(name != "OK" and getattr(errno, name) == e.errno for name in wanted):
            return 0
        print("expected %s, got %s (%s)" % (expect_spec, got, e))
        return 1
    if "OK" in wanted:
        return 0
    print("expected %s, got success" % expect_spec)
    return 1


if __name__ == "__main__":
    sys.exit(main())
